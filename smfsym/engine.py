"""Chunked, reproducible Monte Carlo driver shared by the SDE and SGD simulators.

Paths are grouped in fixed blocks of :data:`BLOCK` paths; block b draws from
its own generator ``SeedSequence(entropy, spawn_key=(b,))``, so the numbers
do not depend on how blocks are grouped into chunks (chunk sizes are rounded
to whole blocks). Chunks bound the memory; statistics are streamed per block
and merged in block order, so they too are bitwise independent of the chunking
(docs/theory.md §8).

The time grid is never materialised: :class:`StepGrid` holds runs of equal
steps and yields step sizes lazily, so a horizon of 10**8 steps costs nothing
before the first step.
"""
from __future__ import annotations

import functools
import hashlib
import io
import math
import numbers
import pickle
import sys
import threading
from collections import OrderedDict, namedtuple
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from .streaming import _Acc, _Values, block_stats

__all__ = ["SimulationResult", "BlowUpError", "BLOCK", "resolve_seed", "StepGrid", "check_int",
           "check_positive", "draw_discrete", "run_blocks", "block_stats", "block_label", "content_key",
           "compiled", "compiled_content", "remember", "cache_info", "cache_clear", "CacheInfo", "COMPILE_CACHE_SIZE"]

#: Paths per random stream: chunk sizes are rounded up to whole blocks.
BLOCK = 4096
#: Default bound on stored states (bytes); larger requests are refused.
MAX_STORED_BYTES = 4 * 2**30
#: Default working-set target per chunk (bytes).
CHUNK_BYTES = 64 * 2**20
#: A state beyond this magnitude counts as blown up, like inf and NaN: a path there has diverged, and
#: averaging it would give a finite but meaningless number (phi = x^2 of it already overflows).
DIVERGED = 1e100
#: Default bound on the number of solver steps (``max_steps`` raises it).
MAX_STEPS = 10**9


#: Compiled objects kept per process (least recently used dropped first): numeric SDEs and compiled
#: gradients in the calling process, whole compiled steps on executor workers. A study's cells (models x
#: etas, each with its coupled run) fit many times over.
COMPILE_CACHE_SIZE = 32
_COMPILED: "OrderedDict[str, Any]" = OrderedDict()
_COMPILED_LOCK = threading.Lock()
_COUNTS = {"hits": 0, "misses": 0}
CacheInfo = namedtuple("CacheInfo", ["hits", "misses", "maxsize", "currsize"])


@functools.lru_cache(maxsize=None)
def _cached_properties(cls) -> frozenset:
    return frozenset(name for klass in cls.__mro__ for name, attr in vars(klass).items()
                     if isinstance(attr, functools.cached_property))


class _KeyPickler(pickle.Pickler):
    """Pickles for keys: an object's ``functools.cached_property`` values are left out (they are functions
    of the rest of its state), so a Problem whose derived quantities were computed meanwhile keeps its key.
    The bytes are hashed, never unpickled."""

    def reducer_override(self, obj):
        names = _cached_properties(type(obj)) if hasattr(obj, "__dict__") else frozenset()
        if not names:
            return NotImplemented
        state = obj.__getstate__()
        if not isinstance(state, dict):
            return NotImplemented
        return type(obj), (), {k: v for k, v in state.items() if k not in names}


def content_key(*parts, payload: bytes | None = None) -> str:
    """SHA-256 of ``parts``, each pickled on its own (or of ``payload``, a recipe already pickled): the cache
    key of what they compile to.

    Sympy expressions, numbers and data arrays pickle by value, so a difference anywhere gives another
    key and a cache hit is always the same computation. Pickle also records which objects are shared
    (the same symbol object in two places is written once): each part is pickled alone, so an equal but
    not identical object in one part (a symbol given in ``values``) cannot change another part's bytes.
    One object keeps its key (cached properties are not part of the content, see :class:`_KeyPickler`);
    an equal SDE built again may not, which costs one compilation more.
    """
    digest = hashlib.sha256()
    if payload is not None:
        digest.update(payload)
    for part in parts:
        buf = io.BytesIO()
        _KeyPickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(part)
        digest.update(len(buf.getbuffer()).to_bytes(8, "little"))
        digest.update(buf.getbuffer())
    return digest.hexdigest()


def compiled(key: str, make: Callable[[], Any]):
    """The object cached under ``key``, made by ``make()`` on the first request (LRU, :data:`COMPILE_CACHE_SIZE`).

    The one compile cache of smfsym: :func:`smfsym.simulate` and :func:`smfsym.simulate_sgd` keep their
    compiled SDEs and gradients here, executor workers their compiled steps (:mod:`smfsym.executors`).
    Keys come from :func:`content_key`; a cached object must not change with use (it is shared by
    every later call with the same key, and by threads). A ``make()`` that raises caches nothing.

    Examples
    --------
    >>> cache_clear()
    >>> compiled("k", lambda: [1]) is compiled("k", lambda: [2])
    True
    >>> cache_info()
    CacheInfo(hits=1, misses=1, maxsize=32, currsize=1)
    >>> cache_clear()
    """
    with _COMPILED_LOCK:
        if key in _COMPILED:
            _COMPILED.move_to_end(key)
            _COUNTS["hits"] += 1
            return _COMPILED[key]
    obj = make()  # outside the lock: compiling may take seconds and may itself use the cache
    with _COMPILED_LOCK:
        _COUNTS["misses"] += 1
    return remember(key, obj)


def compiled_content(parts: tuple, make: Callable[[], Any]):
    """``compiled(content_key(*parts), make)``; ``make()`` uncached (counted as a miss) when a part does not
    pickle (a sympy ``implemented_function`` carries a Python callable): without its content no key
    could tell two such objects apart, so they are never shared."""
    try:
        key = content_key(*parts)
    except Exception:  # noqa: BLE001 - any pickling failure means the same: no content key
        obj = make()
        with _COMPILED_LOCK:
            _COUNTS["misses"] += 1
        return obj
    return compiled(key, make)


def remember(key: str, obj):
    """Put ``obj`` in the compile cache under ``key`` (not counted as a miss); returns the cached object,
    which is the one already there if another thread made it meanwhile."""
    with _COMPILED_LOCK:
        obj = _COMPILED.setdefault(key, obj)
        _COMPILED.move_to_end(key)
        while len(_COMPILED) > COMPILE_CACHE_SIZE:
            _COMPILED.popitem(last=False)
    return obj


def cache_info() -> CacheInfo:
    """Hits, misses, size bound and current size of the compile cache (as ``functools.lru_cache``)."""
    with _COMPILED_LOCK:
        return CacheInfo(_COUNTS["hits"], _COUNTS["misses"], COMPILE_CACHE_SIZE, len(_COMPILED))


def cache_clear() -> None:
    """Empty the compile cache and reset its counters."""
    with _COMPILED_LOCK:
        _COMPILED.clear()
        _COUNTS.update(hits=0, misses=0)


class BlowUpError(FloatingPointError):
    """A simulation produced non-finite states."""


def check_int(value, name: str, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``; bools, floats and strings are refused.

    Examples
    --------
    >>> check_int(3, "n_paths")
    3
    >>> check_int(True, "n_paths")
    Traceback (most recent call last):
    ...
    TypeError: `n_paths` must be an integer; got True (bool).
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"`{name}` must be an integer; got {value!r} ({type(value).__name__}).")
    if value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}; got {value!r}.")
    return int(value)


def check_positive(value, name: str, allow_none: bool = False):
    """``value`` as a positive finite float; sympy numbers are converted, symbolic ones refused.

    Examples
    --------
    >>> import sympy as sp
    >>> check_positive(sp.Rational(1, 10), "eta")
    0.1
    >>> check_positive(-1.0, "t_end")
    Traceback (most recent call last):
    ...
    ValueError: `t_end` must be positive and finite; got -1.0.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or isinstance(value, (str, bytes)):
        raise TypeError(f"`{name}` must be a positive number; got {value!r} ({type(value).__name__}).")
    try:
        import sympy as sp

        if isinstance(value, sp.Basic):
            if value.free_symbols:
                raise TypeError(f"`{name}` must be a number; got the symbolic {value} (give a numeric value).")
            value = complex(value)
            if value.imag != 0:
                raise ValueError(f"`{name}` must be a real number; got {value}.")
            value = value.real
        out = float(value)
    except (TypeError, ValueError) as exc:
        if str(exc).startswith(f"`{name}`"):
            raise
        raise TypeError(f"`{name}` must be a positive number; got {value!r} ({type(value).__name__}).") from None
    if not math.isfinite(out) or out <= 0:
        raise ValueError(f"`{name}` must be positive and finite; got {value!r}.")
    return out


def resolve_seed(seed) -> np.random.SeedSequence:
    """An int, None, SeedSequence or Generator as a SeedSequence (recorded in results)."""
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, np.random.Generator):
        return np.random.SeedSequence(seed.integers(0, 2**63, size=4).tolist())
    if isinstance(seed, (bool, np.bool_)):
        raise TypeError(f"`seed` must be an int, a SeedSequence or a Generator; got {seed!r} (bool).")
    if seed is None or isinstance(seed, (int, np.integer)):
        if seed is not None and seed < 0:
            raise ValueError(f"`seed` must be a non-negative integer; got {seed}.")
        return np.random.SeedSequence(None if seed is None else int(seed))
    raise TypeError(f"`seed` must be an int, a SeedSequence or a Generator; got {type(seed).__name__}.")


def block_generators(ss: np.random.SeedSequence, first: int, count: int) -> list:
    return [np.random.Generator(np.random.PCG64(
        np.random.SeedSequence(ss.entropy, spawn_key=tuple(ss.spawn_key) + (b,))))
        for b in range(first, first + count)]


class StepGrid:
    """A lazy time grid: runs of equal steps, one run between consecutive save times.

    Iterating yields the step sizes; ``len`` is the number of steps; :meth:`time`
    is the time after step n. Nothing of size n_steps is ever allocated.

    Examples
    --------
    >>> g = StepGrid.from_saves([0.5, 1.0], 0.2)
    >>> len(g), g.save_index, [round(h, 6) for h in g]
    (6, [3, 6], [0.166667, 0.166667, 0.166667, 0.166667, 0.166667, 0.166667])
    >>> round(g.time(4), 12)
    0.666666666667
    """

    def __init__(self, runs, save_index, times):
        self.runs = [(int(n), float(h), float(t0)) for n, h, t0 in runs]  # (count, step, start time)
        self.save_index = list(save_index)
        self.times = np.asarray(times, dtype=float)
        self._n = sum(n for n, _, _ in self.runs)

    @classmethod
    def from_saves(cls, saves, dt: float) -> "StepGrid":
        """Equal steps <= dt between consecutive sorted save times (the rule of ``simulate.grid``)."""
        runs, index, prev, total = [], [], 0.0, 0
        for s in saves:
            s = float(s)
            n = int(math.ceil((s - prev) / dt - 1e-9)) if s > prev else 0
            if n:
                runs.append((n, (s - prev) / n, prev))
            total += n
            index.append(total)
            prev = s
        return cls(runs, index, saves)

    @classmethod
    def uniform(cls, n_steps: int, h: float, save_index) -> "StepGrid":
        """``n_steps`` equal steps h (SGD); times are step * h."""
        return cls([(n_steps, h, 0.0)] if n_steps else [], save_index, np.asarray(save_index, dtype=float) * h)

    def __len__(self) -> int:
        return self._n

    def __iter__(self) -> Iterator[float]:
        for n, h, _ in self.runs:
            for _ in range(n):
                yield h

    @property
    def max_step(self) -> float:
        return max((h for _, h, _ in self.runs), default=0.0)

    def time(self, n: int) -> float:
        """Time after step n (1-based), without summing step sizes."""
        done = 0
        for cnt, h, t0 in self.runs:
            if n <= done + cnt:
                return t0 + (n - done) * h
            done += cnt
        return self.runs[-1][2] + self.runs[-1][0] * self.runs[-1][1] if self.runs else 0.0


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
        at every saved time; ``"state"`` is always there. Accumulated per seed
        block and merged in block order: bitwise identical for every ``chunk_size``.
    seed : SeedSequence
        Reproduces the run.
    scheme, dt, n_steps : str, float, int
    success, message : bool, str
        False with the reason when paths blew up and were masked.
    n_nonfinite : int
        Paths lost to non-finite states (masked); ``lost_fraction`` = n_nonfinite / n_paths.
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

    @property
    def lost_fraction(self) -> float:
        """Fraction of paths masked after becoming non-finite."""
        return self.n_nonfinite / self.n_paths

    def mean(self, name: str = "state") -> np.ndarray:
        """Streamed mean of a statistic at every saved time."""
        return self.stats[name]["mean"]

    def sem(self, name: str = "state") -> np.ndarray:
        """Standard error of :meth:`mean` (sample std / sqrt(n))."""
        return self.stats[name]["sem"]

    def to_xarray(self):
        """The result as an ``xarray.Dataset`` (dims time, path, [point,] coord); needs xarray."""

        return simulation_to_xarray(self)

    def __repr__(self):
        shape = None if self.states is None else self.states.shape
        return (f"SimulationResult(scheme={self.scheme!r}, t={np.round(self.t, 6).tolist()}, states={shape}, "
                f"success={self.success}, message={self.message!r})")


def _in_notebook() -> bool:
    """True inside a Jupyter kernel (stderr is no terminal there, but tqdm.auto draws widgets)."""
    shell = sys.modules.get("IPython")
    try:
        ip = shell.get_ipython() if shell is not None else None
    except Exception:  # an IPython too old or half-imported: no widgets
        return False
    return ip is not None and "IPKernelApp" in getattr(ip, "config", {})


def _progress(progress, total, desc):
    """A tqdm bar over ``total`` path-steps (paths x solver steps), or None when progress is off.

    Serial runs and executors count the same unit (a serial chunk adds its paths at every step, a
    finished task adds its paths x steps), so the bar and its rate read the same either way.
    """
    # default (None): bars on an interactive terminal and in notebooks; logs get the studies' lines
    show = (sys.stderr.isatty() or _in_notebook()) if progress is None else bool(progress)
    if not show:
        return None
    from tqdm.auto import tqdm

    # delay: only runs longer than a couple of seconds ever show a bar
    return tqdm(total=total, desc=desc, mininterval=0.5, leave=False, delay=0.0 if progress else 2.0,
                unit="path-steps", unit_scale=True)


def run(*, x0: np.ndarray, n_paths: int, step_sizes, save_index: list, times: np.ndarray,
        step: Callable, seed, chunk_size: int | None, functions: Mapping | None, store: bool,
        on_nonfinite: str, progress, scheme: str, dt_label: float, time_label: str = "t",
        step_times=None, max_memory: int = MAX_STORED_BYTES, per_path_bytes: int | None = None,
        blowup_threshold: float | None = None, executor=None, task=None,
        keep_values: bool = False) -> SimulationResult:
    """Run ``step(X, h, gens, sizes)`` over ``step_sizes`` for all paths, chunk by chunk.

    ``step_sizes`` is an array or a :class:`StepGrid` (streamed); ``per_path_bytes``
    is the caller's estimate of the working memory of one path in one step (state
    copies, noise draws, data-set columns), from which the chunk size is chosen.
    A path with a state entry beyond ``blowup_threshold`` (default :data:`DIVERGED`)
    counts as blown up, like inf and NaN.

    With an ``executor`` (a ``concurrent.futures.Executor`` or a Dask ``Client``), ``task`` is a
    picklable recipe with ``build() -> step`` that each worker compiles once (see
    :mod:`smfsym.executors`); groups of whole seed blocks are simulated there and their per-block
    statistics merged here in block order, so every number equals the serial run's. A task whose
    ``provides_functions`` is true builds the streamed statistics on the worker too (``build()``'s step
    has a ``functions`` dict with the same names), so ``functions`` here need not pickle.

    ``keep_values=True`` also returns the per-path values of every streamed statistic,
    ``extra["values"][name]`` of shape ``(n_times, n_paths, ...)`` (NaN on masked paths).
    """
    n_paths = check_int(n_paths, "n_paths")
    if on_nonfinite not in ("raise", "mask"):
        raise ValueError(f"`on_nonfinite` must be 'raise' or 'mask'; got {on_nonfinite!r}.")
    if not isinstance(store, (bool, np.bool_)):
        raise TypeError(f"`store` must be True or False; got {store!r}.")
    if functions is not None and not isinstance(functions, Mapping):
        raise TypeError(f"`functions` must be a mapping name -> callable; got {type(functions).__name__}.")
    functions = dict(functions or {})
    for name, fn in functions.items():
        if not isinstance(name, str) or name == "state":
            raise ValueError(f"`functions` keys must be names other than 'state'; got {name!r}.")
        if not callable(fn):
            raise TypeError(f"`functions[{name!r}]` must be callable; got {type(fn).__name__}.")
    if executor is not None:
        from .executors import check_executor, check_picklable_functions

        executor = check_executor(executor)
        if task is None or not hasattr(task, "build"):
            raise TypeError("`task` must be a picklable recipe with build() -> step when an executor is used.")
        if not getattr(task, "provides_functions", False):
            check_picklable_functions(functions)
    ss = resolve_seed(seed)
    diverged = DIVERGED if blowup_threshold is None else check_positive(blowup_threshold, "blowup_threshold")
    state_shape = x0.shape
    nt = len(save_index)
    state_size = int(np.prod(state_shape))
    nbytes = nt * n_paths * state_size * 8
    if store and nbytes > max_memory:
        raise MemoryError(
            f"storing {nt} x {n_paths} x {state_shape} states needs {nbytes / 2**30:.2f} GiB, over the "
            f"{max_memory / 2**30:.2f} GiB bound: pass store=False and stream statistics with "
            "`functions={name: f(states)}` (or raise `max_memory`)."
        )
    per_path = max(state_size * 8 * 24, int(per_path_bytes or 0))
    chunk_given = chunk_size is not None
    if chunk_size is None:
        chunk_size = max(BLOCK, CHUNK_BYTES // per_path)
    chunk_size = check_int(chunk_size, "chunk_size")
    chunk_blocks = max(1, -(-int(chunk_size) // BLOCK))
    n_blocks = -(-n_paths // BLOCK)
    states = np.empty((nt, n_paths) + state_shape) if store else None
    accs = {name: _Acc(nt) for name in ["state", *functions]}
    n_steps = len(step_sizes)
    if step_times is None and isinstance(step_sizes, StepGrid):
        step_times = step_sizes.time
    elif step_times is not None and not callable(step_times):
        step_times = _ArrayTimes(step_times)
    if executor is not None and step_times is not None and not _picklable_times(step_times):
        step_times = None  # only labels error messages; on a worker steps are then named by index
    job = dict(x0=x0, n_paths=n_paths, step_sizes=step_sizes, save_index=list(save_index), ss=ss,
               functions=functions, store=store, on_nonfinite=on_nonfinite, diverged=diverged,
               time_label=time_label, step_times=step_times)
    values = _Values(nt, n_paths) if keep_values else None
    if executor is not None:
        from .executors import run_on_executor

        bad_total, first_bad, timing = run_on_executor(executor, task, job, n_blocks, chunk_blocks, chunk_given,
                                                       accs, states, progress, scheme, values, step=step)
    else:
        timing = None
        bar = _progress(progress, n_steps * n_paths, scheme)
        try:
            bad_total, first_bad = run_blocks(step, job, 0, n_blocks, chunk_blocks, accs, states, bar,
                                              values=values)
        finally:
            if bar is not None:
                bar.close()
    stats = {name: acc.result() for name, acc in accs.items()}
    success = bad_total == 0
    msg = "ok" if success else (
        f"{bad_total} of {n_paths} paths ({bad_total / n_paths:.2%}) became non-finite or diverged beyond {diverged:.3g} (first at step "
        f"{first_bad[0]}, {time_label} = {first_bad[1]:.6g}) and were masked (NaN in states, left out of stats)")
    res = SimulationResult(t=np.asarray(times, dtype=float), states=states, stats=stats, seed=ss, scheme=scheme,
                           dt=float(dt_label), n_steps=n_steps, n_paths=n_paths, success=success, message=msg,
                           n_nonfinite=bad_total)
    if timing is not None:
        res.extra["executor"] = timing
    if values is not None:
        res.extra["values"] = values.arrays
    if first_bad is not None:
        res.extra.update(first_nonfinite_step=first_bad[0], first_nonfinite_time=first_bad[1])
    return res


# The increment draws live in draws.py (re-exported here: engine.draw_discrete / engine.draw_normal).
from .draws import draw_discrete, draw_normal  # noqa: E402,F401


def _picklable_times(step_times) -> bool:
    return step_times is float or isinstance(step_times, _ArrayTimes) or (
        getattr(step_times, "__self__", None) is not None and isinstance(step_times.__self__, StepGrid))


class _ArrayTimes:
    """Time after step n from an array of step times (picklable, unlike a closure)."""

    def __init__(self, arr):
        self.arr = np.asarray(arr, dtype=float)

    def __call__(self, n: int) -> float:
        return float(self.arr[n - 1])


def block_label(first: int, count: int, n_paths: int) -> str:
    """``"seed blocks a-b (paths p-q)"``: where in the run a chunk or a task lies."""
    last = first + count - 1
    blocks = f"seed block {first}" if count == 1 else f"seed blocks {first}-{last}"
    return f"{blocks} (paths {first * BLOCK}-{min(n_paths, (last + 1) * BLOCK) - 1})"


def run_blocks(step, job: dict, first: int, count: int, chunk_blocks: int, accs: dict, states, bar=None,
               path_offset: int = 0, values: _Values | None = None):
    """Simulate seed blocks ``first .. first + count - 1`` chunk by chunk; the loop of :func:`run`.

    Statistics go to ``accs`` (merging :class:`_Acc` or recording :class:`_Recorder`) in block
    order; stored states to ``states[:, lo - path_offset : hi - path_offset]`` (per-path statistics to
    ``values`` at the same rows); ``bar`` advances by the chunk's paths at every step. Returns the number
    of paths lost and the first (step, time) of a loss.
    """
    x0, n_paths, ss = job["x0"], job["n_paths"], job["ss"]
    step_sizes, save_index, functions = job["step_sizes"], job["save_index"], job["functions"]
    store, on_nonfinite, diverged = job["store"], job["on_nonfinite"], job["diverged"]
    time_label, step_times = job["time_label"], job["step_times"]
    state_shape = x0.shape
    nt = len(save_index)
    bad_total, first_bad = 0, None
    for b0 in range(first, first + count, chunk_blocks):
        nb = min(chunk_blocks, first + count - b0)
        lo = b0 * BLOCK
        hi = min(n_paths, (b0 + nb) * BLOCK)
        sizes = [min(BLOCK, n_paths - (b0 + i) * BLOCK) for i in range(nb)]
        gens = block_generators(ss, b0, nb)
        X = np.broadcast_to(x0, (hi - lo,) + state_shape).copy()
        ok = np.ones(hi - lo, dtype=bool)

        def save(k):
            if store:
                states[k, lo - path_offset:hi - path_offset] = np.where(
                    ok.reshape((-1,) + (1,) * len(state_shape)), X, np.nan)
            accs["state"].add(k, X, ok, sizes)
            for name, fn in functions.items():
                v = np.asarray(fn(X), dtype=float)
                accs[name].add(k, v, ok, sizes)
                if values is not None:
                    values.put(name, k, lo - path_offset, v, ok)

        si = 0
        while si < nt and save_index[si] == 0:
            save(si)
            si += 1
        for n, h in enumerate(step_sizes, start=1):
            # blow-up is detected and reported below (step, time, fraction): numpy's own
            # overflow warnings would only repeat it less precisely
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                X = step(X, h, gens, sizes)
            # max |X| <= diverged, without an |X| temporary; NaN propagates into max/min, failing the test
            if X.size and not (X.max() <= diverged and X.min() >= -diverged):
                with np.errstate(invalid="ignore"):
                    bad = ~(np.abs(X) <= diverged).reshape(X.shape[0], -1).all(axis=1) & ok
                if bad.any():
                    t_bad = step_times(n) if step_times is not None else n
                    frac = bad.sum() / X.shape[0]
                    if on_nonfinite == "raise":
                        raise BlowUpError(
                            f"non-finite state at step {n} ({time_label} = {t_bad:.6g}) in {frac:.2%} of the "
                            f"paths of this chunk ({bad.sum()} of {X.shape[0]}, {block_label(b0, nb, n_paths)}; "
                            f"|state| > {diverged:.3g} counts as non-finite); reduce `dt`/`eta`, use a tamed "
                            "scheme (scheme='tamed') or pass on_nonfinite='mask' to drop those paths."
                        )
                    if first_bad is None or n < first_bad[0]:
                        first_bad = (n, t_bad)
                    bad_total += int(bad.sum())
                    ok &= ~bad
                X = np.where(ok.reshape((-1,) + (1,) * len(state_shape)), X, 0.0)  # masked paths: zeros, unused
            while si < nt and save_index[si] == n:
                save(si)
                si += 1
            if bar is not None:
                bar.update(hi - lo)
    return bad_total, first_bad


def simulation_to_xarray(result):
    """A :class:`SimulationResult` as an ``xarray.Dataset`` (xarray is optional).

    Dimensions: ``time``, ``path``, ``point`` (n-point runs only) and ``coord``;
    the streamed means and standard errors are variables over ``time`` (and the
    other non-path dimensions).
    """
    try:
        import xarray as xr
    except ImportError:  # pragma: no cover - optional
        raise ImportError("`to_xarray` needs xarray: pip install xarray") from None
    data_vars = {}
    if result.states is not None:
        dims = ("time", "path", "point", "coord") if result.states.ndim == 4 else ("time", "path", "coord")
        data_vars["state"] = (dims, result.states)
    for name, st in result.stats.items():
        mean = np.asarray(st["mean"])
        dims = ("time",) + tuple(f"{name}_dim{i}" for i in range(mean.ndim - 1))
        if name == "state":
            dims = ("time", "point", "coord") if mean.ndim == 3 else ("time", "coord")
        data_vars[f"{name}_mean"] = (dims, mean)
        data_vars[f"{name}_sem"] = (dims, np.asarray(st["sem"]))
    attrs = {"scheme": result.scheme, "dt": result.dt, "n_steps": result.n_steps, "n_paths": result.n_paths,
             "success": int(result.success), "message": result.message,
             "seed_entropy": str(result.seed.entropy), "seed_spawn_key": str(tuple(result.seed.spawn_key))}
    return xr.Dataset(data_vars, coords={"time": np.asarray(result.t)}, attrs=attrs)
