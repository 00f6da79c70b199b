"""The driver's block loop on an array back end other than numpy (issue 19; :mod:`smfsym.backends`).

States, increments, the step, the blow-up checks and the per-block statistics stay on the device; what
comes back to the host is, at each saved time, every seed block's ``(count, mean, M2)`` (merged here in
block order by the same :class:`~smfsym.montecarlo.statistics._Acc` as numpy's), the stored states when
``store=True`` asks for them, and at the end of a chunk the number of lost paths. Blow-up is tracked
per path on the device without a host round trip per step (the step of each path's loss is kept); with
``on_nonfinite="raise"`` it is found at the next saved time or the chunk's end, and reported as numpy's
loop does: the earliest step over all chunks (the later chunks run to that step only), whatever the chunking.

Seed block b draws from ``backend.generator(SeedSequence(entropy, spawn_key=(b,)))``: the same seed
gives the same numbers on one back end and device whatever the chunk size.
"""
from __future__ import annotations

import numpy as np

from .checks import FirstLoss, blowup_error, check_per_path
from .seeds import BLOCK

__all__ = ["device_generators", "run_blocks_device", "device_chunk_blocks"]

#: Share of the device's free memory a chunk's working set may take.
DEVICE_SHARE = 0.5
#: Largest chunk on a device (paths): beyond this the kernels are saturated and the host loop idle.
MAX_DEVICE_CHUNK = 2**22


def device_generators(backend, ss: np.random.SeedSequence, first: int, count: int) -> list:
    """The random streams of seed blocks ``first .. first + count - 1`` on ``backend``."""
    return [backend.generator(np.random.SeedSequence(ss.entropy, spawn_key=tuple(ss.spawn_key) + (b,)))
            for b in range(first, first + count)]


def device_chunk_blocks(backend, per_path: int, chunk_size: int | None, host_bytes: int) -> int:
    """Seed blocks per chunk: ``chunk_size`` if given, else from the device's free memory (or
    ``host_bytes`` where the back end uses the host's memory). MemoryError when not even one path fits."""
    if chunk_size is not None:
        return max(1, -(-int(chunk_size) // BLOCK))
    free = backend.free_memory()
    budget = host_bytes if free is None else int(free * DEVICE_SHARE)
    if free is not None and per_path > budget:  # on the host the budget is a target (numpy runs such paths too)
        raise MemoryError(f"one path needs about {per_path / 2**20:.1f} MiB of working memory on backend "
                          f"{backend.name!r}, over the {budget / 2**20:.1f} MiB of its free memory available for a "
                          "chunk: the state or the noise of this run is too large for the device.")
    paths = min(MAX_DEVICE_CHUNK, budget // per_path) if free is not None else max(BLOCK, budget // per_path)
    return max(1, paths // BLOCK)


def _block_stats(backend, vals, ok, sizes) -> list:
    """``(count, mean, M2)`` of each seed block's finite paths, computed on the device and brought back
    together (three copies per call, not three per block); None for a block with no finite path."""
    xp = backend.xp
    counts, means, m2s, lo = [], [], [], 0
    tail = (1,) * (vals.ndim - 1)
    if vals.dtype != xp.float64:  # float32 states: the sums of squares overflow float32 beyond a spread of 1.8e19
        vals = xp.astype(vals, xp.float64)
    for s in sizes:
        v, o = vals[lo:lo + s, ...], ok[lo:lo + s]
        lo += s
        mask = xp.reshape(o, (s,) + tail) if tail else o
        nb = xp.sum(xp.astype(o, xp.float64))
        v = xp.where(mask, v, 0.0)
        mb = xp.sum(v, axis=0) / xp.maximum(nb, 1.0)
        dev = xp.where(mask, v - mb, 0.0)
        counts.append(nb)
        means.append(mb)
        m2s.append(xp.sum(dev * dev, axis=0))
    n = backend.to_numpy(xp.stack(counts))
    mean = backend.to_numpy(xp.stack(means))
    m2 = backend.to_numpy(xp.stack(m2s))
    return [None if n[i] == 0 else (int(n[i]), mean[i], m2[i]) for i in range(len(sizes))]


class _Chunk:
    """One chunk's device state: paths, alive mask and the step at which each lost path was lost."""

    def __init__(self, backend, x0, P):
        xp = backend.xp
        self.backend, self.xp = backend, xp
        self.X = backend.zeros((P,) + tuple(x0.shape)) + x0
        self.ok = backend.full((P,), True, dtype=xp.bool)
        self.lost_at = backend.full((P,), 0, dtype=xp.int64)  # 0: alive; n: lost at step n

    def mask(self):
        return self.xp.reshape(self.ok, (self.ok.shape[0],) + (1,) * (self.X.ndim - 1))

    def check(self, n: int, diverged: float):
        """Mark paths beyond ``diverged`` (or non-finite) after step n as lost; zero them (unused after)."""
        xp, X = self.xp, self.X
        diverged = min(diverged, float(xp.finfo(X.dtype).max))  # a bound over float32's range: inf or NaN only
        fine = xp.all(xp.reshape(xp.abs(X) <= diverged, (X.shape[0], -1)), axis=1)
        self.lost_at = xp.where(self.ok & ~fine, n, self.lost_at)
        self.ok = self.ok & fine
        self.X = xp.where(self.mask(), X, 0.0)

    def losses(self):
        """(paths lost, first step of a loss, paths lost at that step): one host copy."""
        xp = self.xp
        lost = self.lost_at > 0
        n_lost = int(xp.sum(xp.astype(lost, xp.int64)))
        if n_lost == 0:
            return 0, None, 0
        first = int(xp.min(xp.where(lost, self.lost_at, xp.iinfo(self.lost_at.dtype).max)))
        return n_lost, first, int(xp.sum(xp.astype(self.lost_at == first, xp.int64)))

    def first_row_lost_at(self, n: int) -> int:
        return int(self.xp.argmax(self.xp.astype(self.lost_at == n, self.xp.int8)))


def run_blocks_device(step, job: dict, backend, first: int, count: int, chunk_blocks: int, accs: dict, states,
                      bar=None, values=None):
    """:func:`~smfsym.montecarlo.blocks.run_blocks` on ``backend``: the same arguments and results.

    ``values`` (a :class:`~smfsym.montecarlo.statistics._Values`, ``keep_values``) also receives every
    streamed statistic's per-path values at the saved times (copied to the host there, NaN on lost paths)."""
    n_paths, ss, functions = job["n_paths"], job["ss"], job["functions"]
    save_index, store, diverged = job["save_index"], job["store"], job["diverged"]
    x0 = backend.asarray(job["x0"])
    nt = len(save_index)
    bad_total, first_bad = 0, None
    loss, limit = None, len(job["step_sizes"])  # raise mode, as numpy's loop: the earliest loss, steps to follow
    for b0 in range(first, first + count, chunk_blocks):
        nb = min(chunk_blocks, first + count - b0)
        lo, hi = b0 * BLOCK, min(n_paths, (b0 + nb) * BLOCK)
        sizes = [min(BLOCK, n_paths - (b0 + i) * BLOCK) for i in range(nb)]
        gens = device_generators(backend, ss, b0, nb)
        ch = _Chunk(backend, x0, hi - lo)
        si, found = 0, None
        for n, h in enumerate(job["step_sizes"], start=1):
            if n > limit:
                break
            if n == 1:
                while si < nt and save_index[si] == 0:
                    _save(backend, ch, si, job, accs, states, lo, hi, sizes, functions, store, values)
                    si += 1
            # as numpy's loop: blow-up is reported below, not as the host library's warnings (array_api_strict
            # computes with numpy: a NaN root of a Sigma outside its domain would warn there)
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                ch.X = step(ch.X, h, gens, sizes)
            ch.check(n, diverged)
            if si < nt and save_index[si] == n and (found := _first_loss(ch, job, b0)) is not None:
                break
            while si < nt and save_index[si] == n:
                _save(backend, ch, si, job, accs, states, lo, hi, sizes, functions, store, values)
                si += 1
            if bar is not None:
                bar.update(hi - lo)
        while found is None and si < nt:  # a grid without steps: every save is at the start
            _save(backend, ch, si, job, accs, states, lo, hi, sizes, functions, store, values)
            si += 1
        found = found or _first_loss(ch, job, b0)
        if found is not None:
            loss, limit = found.earliest(loss), found.step
            continue
        lost, step_lost, _ = ch.losses()
        if lost:
            st = job["step_times"]
            if first_bad is None or step_lost < first_bad[0]:
                first_bad = (step_lost, st(step_lost) if st is not None else step_lost)
            bad_total += lost
    if loss is not None:
        raise blowup_error(loss, job, backend.name)
    return bad_total, first_bad


def _first_loss(ch: _Chunk, job: dict, b0: int) -> FirstLoss | None:
    """Raise mode: the chunk's first loss (its step, the paths lost then, their first seed block), checked
    at saved times and the chunk's end (one host copy each), not at every step."""
    if job["on_nonfinite"] != "raise":
        return None
    lost, n, at_n = ch.losses()
    if not lost:
        return None
    st = job["step_times"]
    return FirstLoss(n, st(n) if st is not None else n, at_n, b0 + ch.first_row_lost_at(n) // BLOCK)


def _save(backend, ch: _Chunk, k: int, job, accs, states, lo, hi, sizes, functions, store, values=None) -> None:
    xp = backend.xp
    ok = None if values is None or not functions else backend.to_numpy(xp.astype(ch.ok, backend.dtype)) > 0.5
    if store:
        states[k, lo:hi] = backend.to_numpy(xp.where(ch.mask(), ch.X, float("nan")))
    for rec in _block_stats(backend, ch.X, ch.ok, sizes):
        accs["state"].merge(k, rec)
    for name, fn in functions.items():
        try:
            v = fn(ch.X)
        except (RuntimeError, TypeError) as exc:  # numpy called on device arrays: the library's own words
            raise TypeError(f"`functions[{name!r}]` failed on arrays of the back end {backend.name!r} ({exc}); write "
                            "it with the array's own operators or its namespace, X.__array_namespace__(), not "
                            "numpy.") from exc
        if not isinstance(v, type(ch.X)):
            raise TypeError(f"`functions[{name!r}]` must return an array of the back end {backend.name!r} (write it "
                            f"with the array's own operators or its namespace, X.__array_namespace__()); got "
                            f"{type(v).__name__}.")
        check_per_path(name, tuple(v.shape), ch.X.shape[0])
        if v.dtype != backend.dtype:
            v = xp.astype(v, backend.dtype)
        for rec in _block_stats(backend, v, ch.ok, sizes):
            accs[name].merge(k, rec)
        if values is not None:
            values.put(name, k, lo, backend.to_numpy(v), ok)
