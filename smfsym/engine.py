"""Chunked, reproducible Monte Carlo driver shared by the SDE and SGD simulators.

Paths are grouped in fixed blocks of :data:`BLOCK` paths; block b draws from
its own generator ``SeedSequence(entropy, spawn_key=(b,))``, so the numbers
do not depend on how blocks are grouped into chunks (chunk sizes are rounded
to whole blocks). Chunks bound the memory; statistics can be streamed.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np

__all__ = ["SimulationResult", "BlowUpError", "BLOCK", "resolve_seed"]

#: Paths per random stream: chunk sizes are rounded up to whole blocks.
BLOCK = 4096
#: Default bound on stored states (bytes); larger requests are refused.
MAX_STORED_BYTES = 4 * 2**30
#: Default working-set target per chunk (bytes).
CHUNK_BYTES = 64 * 2**20


class BlowUpError(FloatingPointError):
    """A simulation produced non-finite states."""


def resolve_seed(seed) -> np.random.SeedSequence:
    """An int, None, SeedSequence or Generator as a SeedSequence (recorded in results)."""
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, np.random.Generator):
        return np.random.SeedSequence(seed.integers(0, 2**63, size=4).tolist())
    if seed is None or isinstance(seed, (int, np.integer)):
        if seed is not None and seed < 0:
            raise ValueError(f"`seed` must be a non-negative integer; got {seed}.")
        return np.random.SeedSequence(None if seed is None else int(seed))
    raise TypeError(f"`seed` must be an int, a SeedSequence or a Generator; got {type(seed).__name__}.")


def block_generators(ss: np.random.SeedSequence, first: int, count: int) -> list:
    return [np.random.Generator(np.random.PCG64(
        np.random.SeedSequence(ss.entropy, spawn_key=tuple(ss.spawn_key) + (b,))))
        for b in range(first, first + count)]


@dataclass
class SimulationResult:
    """What a simulation returns.

    Attributes
    ----------
    t : ndarray (n_times,)
        Saved times (for SGD: step * eta).
    states : ndarray or None
        ``(n_times, n_paths, [n_points,] d)``; None when streamed (``store=False``).
    stats : dict
        Streamed means and standard errors: ``stats[name] = {"mean", "sem", "n"}``
        at every saved time; ``"state"`` is always there.
    seed : SeedSequence
        Reproduces the run.
    scheme, dt, n_steps : str, float, int
    success, message : bool, str
        False with the reason when paths blew up and were masked.
    """

    t: np.ndarray
    states: np.ndarray | None
    stats: dict
    seed: np.random.SeedSequence
    scheme: str
    dt: float
    n_steps: int
    n_paths: int
    success: bool = True
    message: str = "ok"
    n_nonfinite: int = 0
    extra: dict = field(default_factory=dict)

    def mean(self, name: str = "state") -> np.ndarray:
        """Streamed mean of a statistic at every saved time."""
        return self.stats[name]["mean"]

    def sem(self, name: str = "state") -> np.ndarray:
        """Standard error of :meth:`mean` (sample std / sqrt(n))."""
        return self.stats[name]["sem"]

    def to_xarray(self):
        """The result as an ``xarray.Dataset`` (dims time, path, [point,] coord); needs xarray."""
        from .persist import simulation_to_xarray

        return simulation_to_xarray(self)

    def __repr__(self):
        shape = None if self.states is None else self.states.shape
        return (f"SimulationResult(scheme={self.scheme!r}, t={np.round(self.t, 6).tolist()}, states={shape}, "
                f"success={self.success}, message={self.message!r})")


class _Acc:
    """Streamed sums and sums of squares of a statistic at each of ``nt`` saved times."""

    def __init__(self, nt: int):
        self.s = [None] * nt
        self.s2 = [None] * nt
        self.n = np.zeros(nt)

    def add(self, k, vals, ok):
        v = np.where(ok.reshape(ok.shape + (1,) * (vals.ndim - 1)), vals, 0.0)
        with np.errstate(over="ignore"):  # exploding (finite) paths give an infinite variance, not a warning
            s, s2 = v.sum(axis=0), (v * v).sum(axis=0)
        self.s[k] = s if self.s[k] is None else self.s[k] + s
        self.s2[k] = s2 if self.s2[k] is None else self.s2[k] + s2
        self.n[k] += ok.sum()

    def result(self):
        mean = np.stack([s / n for s, n in zip(self.s, self.n)])
        var = np.stack([s2 / n for s2, n in zip(self.s2, self.n)]) - mean**2
        n = self.n.reshape((-1,) + (1,) * (mean.ndim - 1))
        sem = np.sqrt(np.clip(var, 0, None) * n / np.maximum(n - 1, 1) / n)
        return {"mean": mean, "sem": sem, "n": self.n.copy()}


def _progress(progress, total, desc):
    show = sys.stderr.isatty() if progress is None else bool(progress)
    if not show:
        return None
    from tqdm.auto import tqdm

    # delay: only runs longer than a couple of seconds ever show a bar
    return tqdm(total=total, desc=desc, mininterval=0.5, leave=False, delay=0.0 if progress else 2.0)


def run(*, x0: np.ndarray, n_paths: int, step_sizes: np.ndarray, save_index: list, times: np.ndarray,
        step: Callable, seed, chunk_size: int | None, functions: Mapping | None, store: bool,
        on_nonfinite: str, progress, scheme: str, dt_label: float, time_label: str = "t",
        step_times: np.ndarray | None = None, max_memory: int = MAX_STORED_BYTES) -> SimulationResult:
    """Run ``step(X, h, gens, sizes)`` over ``step_sizes`` for all paths, chunk by chunk."""
    if not isinstance(n_paths, (int, np.integer)) or n_paths < 1:
        raise ValueError(f"`n_paths` must be a positive integer; got {n_paths!r}.")
    if on_nonfinite not in ("raise", "mask"):
        raise ValueError(f"`on_nonfinite` must be 'raise' or 'mask'; got {on_nonfinite!r}.")
    functions = dict(functions or {})
    for name, fn in functions.items():
        if not callable(fn):
            raise TypeError(f"`functions[{name!r}]` must be callable; got {type(fn).__name__}.")
    ss = resolve_seed(seed)
    state_shape = x0.shape
    nt = len(save_index)
    nbytes = nt * n_paths * int(np.prod(state_shape)) * 8
    if store and nbytes > max_memory:
        raise MemoryError(
            f"storing {nt} x {n_paths} x {state_shape} states needs {nbytes / 2**30:.2f} GiB, over the "
            f"{max_memory / 2**30:.2f} GiB bound: pass store=False and stream statistics with "
            "`functions={name: f(states)}` (or raise `max_memory`)."
        )
    per_path = int(np.prod(state_shape)) * 8 * 24
    if chunk_size is None:
        chunk_size = max(BLOCK, CHUNK_BYTES // per_path)
    if not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ValueError(f"`chunk_size` must be a positive integer; got {chunk_size!r}.")
    chunk_blocks = max(1, -(-int(chunk_size) // BLOCK))
    n_blocks = -(-n_paths // BLOCK)
    states = np.empty((nt, n_paths) + state_shape) if store else None
    accs = {name: _Acc(nt) for name in ["state", *functions]}
    n_steps = len(step_sizes)
    bar = _progress(progress, n_steps * (-(-n_blocks // chunk_blocks)), scheme)
    bad_total, first_bad = 0, None
    for b0 in range(0, n_blocks, chunk_blocks):
        nb = min(chunk_blocks, n_blocks - b0)
        lo = b0 * BLOCK
        hi = min(n_paths, (b0 + nb) * BLOCK)
        sizes = [min(BLOCK, n_paths - (b0 + i) * BLOCK) for i in range(nb)]
        gens = block_generators(ss, b0, nb)
        X = np.broadcast_to(x0, (hi - lo,) + state_shape).copy()
        ok = np.ones(hi - lo, dtype=bool)

        def save(k):
            if store:
                states[k, lo:hi] = np.where(ok.reshape((-1,) + (1,) * len(state_shape)), X, np.nan)
            accs["state"].add(k, X, ok)
            for name, fn in functions.items():
                accs[name].add(k, np.asarray(fn(X), dtype=float), ok)

        si = 0
        while si < nt and save_index[si] == 0:
            save(si)
            si += 1
        for n, h in enumerate(step_sizes, start=1):
            # blow-up is detected and reported below (step, time, fraction): numpy's own
            # overflow warnings would only repeat it less precisely
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                X = step(X, h, gens, sizes)
            if not np.isfinite(np.sum(X)):  # one reduction; NaN and inf propagate through the sum
                bad = ~np.isfinite(X).reshape(X.shape[0], -1).all(axis=1) & ok
                if bad.any():
                    t_bad = step_times[n - 1] if step_times is not None else n
                    frac = bad.sum() / X.shape[0]
                    if on_nonfinite == "raise":
                        raise BlowUpError(
                            f"non-finite state at step {n} ({time_label} = {t_bad:.6g}) in {frac:.2%} of the "
                            f"paths of this chunk ({bad.sum()} of {X.shape[0]}); reduce `dt`/`eta` or pass "
                            "on_nonfinite='mask' to drop those paths."
                        )
                    if first_bad is None:
                        first_bad = (n, t_bad)
                    bad_total += int(bad.sum())
                    ok &= ~bad
                X = np.where(np.isfinite(X), X, 0.0)  # masked paths carry zeros, never used
            while si < nt and save_index[si] == n:
                save(si)
                si += 1
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    stats = {name: acc.result() for name, acc in accs.items()}
    success = bad_total == 0
    msg = "ok" if success else (
        f"{bad_total} of {n_paths} paths ({bad_total / n_paths:.2%}) became non-finite (first at step "
        f"{first_bad[0]}, {time_label} = {first_bad[1]:.6g}) and were masked (NaN in states, left out of stats)")
    return SimulationResult(t=np.asarray(times, dtype=float), states=states, stats=stats, seed=ss, scheme=scheme,
                            dt=float(dt_label), n_steps=n_steps, n_paths=n_paths, success=success, message=msg,
                            n_nonfinite=bad_total)


def draw_normal(gens, sizes, shape) -> np.ndarray:
    """Standard normals ``(sum(sizes),) + shape``, block by block."""
    return np.concatenate([g.standard_normal((s,) + tuple(shape)) for g, s in zip(gens, sizes)], axis=0)
