"""The Monte Carlo driver shared by every simulator: chunking, seed blocks, streaming, executors, blow-up
reports (docs/theory.md §8)."""
from __future__ import annotations

import warnings
from typing import Any, Callable, Mapping, NamedTuple

import numpy as np

from ..backends import get_backend
from .blocks import run_blocks
from .device import device_chunk_blocks, run_blocks_device
from .checks import DIVERGED, SDE_REMEDY, check_int, check_positive
from .executors import check_executor, check_picklable_functions, run_on_executor
from .grid import StepGrid
from .options import RunOptions, SaveAt
from .progress import _progress
from .result import SimulationResult
from .seeds import BLOCK, resolve_seed
from .statistics import _Acc, _Values

__all__ = ["run", "Job", "Paths", "MAX_STORED_BYTES", "CHUNK_BYTES"]

#: Default bound on stored states (bytes); larger requests are refused.
MAX_STORED_BYTES = 4 * 2**30
#: Default working-set target per chunk (bytes).
CHUNK_BYTES = 64 * 2**20


class Job(NamedTuple):
    """What a run computes, besides its paths: the step (with the picklable recipe executors rebuild it
    from), the time grid (step sizes, saved step indices and their times) and its labels."""

    step: Callable
    step_sizes: Any
    save_index: list
    times: Any
    scheme: str
    dt_label: float
    time_label: str = "t"
    step_times: Any = None
    task: Any = None
    per_path_bytes: int | None = None
    #: the ways out a blow-up report names (they must be settings this run takes)
    remedy: str = SDE_REMEDY


class Paths(NamedTuple):
    """How many paths, from which seed (blocks of :data:`~smfsym.montecarlo.seeds.BLOCK` paths each)."""

    n: int
    seed: Any


def run(job: Job, x0, *, paths: Paths, save: SaveAt, options: RunOptions) -> SimulationResult:
    """Run ``job`` from ``x0`` on ``paths`` paths: what to keep in ``save``, how to run in ``options``.

    The one Monte Carlo driver of every simulator: seed blocks, chunks bounded in memory, streamed
    statistics merged in block order, blow-up reports, executors (docs/theory.md §8). On a back end other
    than numpy (``options.backend``, :mod:`smfsym.backends`) the loop runs there
    (:func:`~smfsym.montecarlo.device.run_blocks_device`); ``job.step`` is then a step of that back end.
    """
    backend = get_backend(options.backend)
    if backend.name != "numpy":
        return _run_device(job, x0, paths=paths, save=save, options=options, backend=backend)
    return _run(x0=x0, n_paths=paths.n, seed=paths.seed, step=job.step, step_sizes=job.step_sizes,
                save_index=job.save_index, times=job.times, scheme=job.scheme, dt_label=job.dt_label,
                time_label=job.time_label, step_times=job.step_times, task=job.task,
                per_path_bytes=job.per_path_bytes, remedy=job.remedy, functions=save.functions, store=save.store,
                keep_values=save.keep_values, chunk_size=options.chunk_size, on_nonfinite=options.on_nonfinite,
                progress=options.progress, max_memory=options.max_memory,
                blowup_threshold=options.blowup_threshold, executor=options.executor)


def _check_stored(nt: int, n_paths: int, state_shape: tuple, max_memory: int) -> None:
    """Refuse, before any work, stored states over ``max_memory`` bytes (sizes in readable units)."""
    nbytes = nt * n_paths * int(np.prod(state_shape)) * 8
    if nbytes > max_memory:
        raise MemoryError(
            f"storing {nt} x {n_paths} x {tuple(state_shape)} states needs {_size(nbytes)}, over the "
            f"{_size(max_memory)} bound (`max_memory`): pass store=False and stream statistics with "
            "`functions={name: f(states)}` (or raise `max_memory`).")


def _size(nbytes: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.3g} {unit}"
    return f"{int(nbytes)} bytes"


def _run(*, x0: np.ndarray, n_paths: int, step_sizes, save_index: list, times: np.ndarray,
        step: Callable, seed, chunk_size: int | None, functions: Mapping | None, store: bool,
        on_nonfinite: str, progress, scheme: str, dt_label: float, time_label: str = "t",
        step_times=None, max_memory: int = MAX_STORED_BYTES, per_path_bytes: int | None = None,
        blowup_threshold: float | None = None, executor=None, task=None,
        keep_values: bool = False, remedy: str = SDE_REMEDY) -> SimulationResult:
    """Run ``step(X, h, gens, sizes)`` over ``step_sizes`` for all paths, chunk by chunk.

    ``step_sizes`` is an array or a :class:`StepGrid` (streamed); ``per_path_bytes``
    is the caller's estimate of the working memory of one path in one step (state
    copies, noise draws, data-set columns), from which the chunk size is chosen.
    A path with a state entry beyond ``blowup_threshold`` (default :data:`DIVERGED`)
    counts as blown up, like inf and NaN.

    With an ``executor`` (a ``concurrent.futures.Executor`` or a Dask ``Client``), ``task`` is a
    picklable recipe with ``build() -> step`` that each worker compiles once (see
    :mod:`smfsym.montecarlo.executors`); groups of whole seed blocks are simulated there and their per-block
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
    if store:
        _check_stored(nt, n_paths, state_shape, max_memory)
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
               time_label=time_label, step_times=step_times, remedy=remedy)
    values = _Values(nt, n_paths) if keep_values else None
    if executor is not None:

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
    success, msg = _outcome(stats, times, bad_total, first_bad, n_paths, diverged, time_label)
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


def _run_device(job: Job, x0, *, paths: Paths, save: SaveAt, options: RunOptions, backend) -> SimulationResult:
    """:func:`run` on an array back end: the same checks, seed blocks, merged statistics and reports.

    ``save.keep_values`` brings back the per-path values of the streamed statistics at the saved times
    (small arrays, one copy per save and chunk; the states stay on the device unless ``save.store``)."""
    if options.executor is not None:
        raise ValueError(f"`executor`: backend={backend.name!r} runs in this process on its device; pass "
                         "executor=None (one process drives one device).")
    n_paths = check_int(paths.n, "n_paths")
    functions = dict(save.functions or {})
    ss = resolve_seed(paths.seed)
    diverged = DIVERGED if options.blowup_threshold is None else check_positive(options.blowup_threshold,
                                                                                 "blowup_threshold")
    top = float(np.finfo(backend.dtype_name).max)
    diverged = min(diverged, top)  # float32 holds nothing beyond 3.4e38: the bound that applies is reported
    if np.any(np.abs(x0) > top):
        raise ValueError(f"`x0` has entries beyond {top:.3g}, the largest {backend.dtype_name} number: they would "
                         f"start as inf on backend {backend.name!r}.")
    nt, state_size = len(job.save_index), int(np.prod(x0.shape))
    if save.store:
        _check_stored(nt, n_paths, x0.shape, options.max_memory)
    per_path = max(state_size * 8 * 24, int(job.per_path_bytes or 0))
    chunk_blocks = device_chunk_blocks(backend, per_path, options.chunk_size, CHUNK_BYTES)
    step_times = job.step_times
    if step_times is None and isinstance(job.step_sizes, StepGrid):
        step_times = job.step_sizes.time
    elif step_times is not None and not callable(step_times):
        step_times = _ArrayTimes(step_times)
    spec = dict(x0=x0, n_paths=n_paths, step_sizes=job.step_sizes, save_index=list(job.save_index), ss=ss,
                functions=functions, store=save.store, on_nonfinite=options.on_nonfinite, diverged=diverged,
                time_label=job.time_label, step_times=step_times, remedy=job.remedy)
    states = np.empty((nt, n_paths) + x0.shape) if save.store else None
    accs = {name: _Acc(nt) for name in ["state", *functions]}
    values = _Values(nt, n_paths) if save.keep_values else None
    bar = _progress(options.progress, len(job.step_sizes) * n_paths, job.scheme)
    try:
        bad_total, first_bad = run_blocks_device(job.step, spec, backend, 0, -(-n_paths // BLOCK), chunk_blocks,
                                                 accs, states, bar, values=values)
    finally:
        if bar is not None:
            bar.close()
    stats = {name: acc.result() for name, acc in accs.items()}
    success, msg = _outcome(stats, job.times, bad_total, first_bad, n_paths, diverged, job.time_label)
    res = SimulationResult(t=np.asarray(job.times, dtype=float), states=states, stats=stats, seed=ss,
                           scheme=job.scheme, dt=float(job.dt_label), n_steps=len(job.step_sizes), n_paths=n_paths,
                           success=success, message=msg, n_nonfinite=bad_total)
    res.extra.update(backend=backend.name, dtype=backend.dtype_name, chunk_paths=chunk_blocks * BLOCK)
    if values is not None:
        res.extra["values"] = values.arrays
    if first_bad is not None:
        res.extra.update(first_nonfinite_step=first_bad[0], first_nonfinite_time=first_bad[1])
    return res


def _outcome(stats: dict, times, bad_total: int, first_bad, n_paths: int, diverged: float, time_label: str):
    """``(success, message)`` of a run: its lost paths, and any streamed statistic that is NaN or infinite
    where paths were kept. Such a statistic is the user's function failing on finite states (log x at
    x < 0, x^4 overflowing below the blow-up threshold): the state check does not see it, so it is named
    here, with a warning, instead of coming back as a quiet NaN with ``success=True``."""
    parts = []
    if bad_total:
        parts.append(f"{bad_total} of {n_paths} paths ({bad_total / n_paths:.2%}) became non-finite or diverged "
                     f"beyond {diverged:.3g} (first at step {first_bad[0]}, {time_label} = {first_bad[1]:.6g}) and "
                     "were masked (NaN in states, left out of stats)")
    times = np.asarray(times, dtype=float)
    for name, st in stats.items():
        if name == "state":  # a kept state is finite and within the threshold: its mean is finite
            continue
        n = np.asarray(st["n"])
        bad = (n > 0) & ~np.all(np.isfinite(np.reshape(st["mean"], (len(n), -1))), axis=1)
        if bad.any():
            at = ", ".join(f"{t:.6g}" for t in times[bad][:4]) + (" ..." if bad.sum() > 4 else "")
            sentence = (f"`functions[{name!r}]` is NaN or infinite on paths whose states are finite ({time_label} = "
                        f"{at}): its mean and standard error there are not numbers; make the function finite on "
                        "the states the run reaches (or check their range)")
            warnings.warn(sentence + ".", RuntimeWarning, stacklevel=4)
            parts.append(sentence)
    return not parts, "; ".join(parts) if parts else "ok"


def _picklable_times(step_times) -> bool:
    return step_times is float or isinstance(step_times, _ArrayTimes) or (
        getattr(step_times, "__self__", None) is not None and isinstance(step_times.__self__, StepGrid))


class _ArrayTimes:
    """Time after step n from an array of step times (picklable, unlike a closure)."""

    def __init__(self, arr):
        self.arr = np.asarray(arr, dtype=float)

    def __call__(self, n: int) -> float:
        return float(self.arr[n - 1])
