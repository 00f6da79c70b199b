"""Running the engine's seed blocks on ``concurrent.futures`` executors and Dask clusters.

smfsym has no scheduler of its own: ``executor=`` takes any
:class:`concurrent.futures.Executor` (a :class:`~concurrent.futures.ProcessPoolExecutor`, a Dask
``Client.get_executor()``) or a Dask ``distributed.Client`` itself. A run is cut into tasks of whole
4096-path seed blocks (docs/theory.md §8); a task carries data only: the pickled recipe of the
step (the symbolic SDE or Problem, the numbers, the scheme), the grid, the seed and the block range.
A worker process compiles a recipe once and keeps it in :data:`_COMPILED`, keyed by the SHA-256 of
the pickled recipe, so later tasks of the same run (and of runs with the same recipe) skip both
the unpickling of the sympy expressions and the compilation.

Each task sends back its states and, per seed block, the count, mean and sum of squared deviations
of every streamed statistic; these are merged here in block order, exactly as a serial run merges
them, so results are bitwise identical whatever the executor, the number of workers and the task
size. A Dask worker lost mid-run has its task rerun by Dask: the task is a pure function of its
blocks, so the numbers do not change.

Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``; that also freezes glibc's mmap
threshold, so each numpy temporary over 128 KiB is a fresh mmap with page faults on every step
(several times slower; BENCHMARKS.md, "Executors (issue 9)"). Start the cluster with
``dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None})`` (or that
key in the workers' Dask configuration) to keep glibc's defaults.
"""
from __future__ import annotations

import concurrent.futures as cf
import hashlib
import os
import pickle
import time
from collections import OrderedDict

import numpy as np

from .engine import BLOCK, BlowUpError, _Recorder, block_label, run_blocks

__all__ = ["check_executor", "check_picklable_functions", "run_on_executor", "TASKS_PER_RUN"]

#: Default number of tasks a run is cut into (fewer if it has fewer seed blocks): enough to keep
#: a few dozen workers busy and balance uneven ones, few enough that per-task overhead is noise.
TASKS_PER_RUN = 16
#: Compiled recipes kept per worker process (most recently used).
_CACHE_SIZE = 8
_COMPILED: "OrderedDict[str, object]" = OrderedDict()
#: Errors a task re-raises with the same type and the block range appended to the message.
_RELABELLED = (MemoryError, ValueError, TypeError, ArithmeticError, KeyError, IndexError, RuntimeError)


def check_executor(executor):
    """``executor`` as a :class:`concurrent.futures.Executor` (a Dask Client gives its own).

    Examples
    --------
    >>> from concurrent.futures import ThreadPoolExecutor
    >>> with ThreadPoolExecutor(1) as ex:
    ...     check_executor(ex) is ex
    True
    >>> check_executor(4)
    Traceback (most recent call last):
    ...
    TypeError: `executor` must be a concurrent.futures.Executor (e.g. ProcessPoolExecutor(2)) or a dask.distributed Client; got int.
    """
    if isinstance(executor, cf.Executor):
        return executor
    get = getattr(executor, "get_executor", None)
    if callable(get) and callable(getattr(executor, "submit", None)):
        # pure=False: a task is a computation with a seed, not a cacheable function of its arguments
        return get(pure=False)
    raise TypeError("`executor` must be a concurrent.futures.Executor (e.g. ProcessPoolExecutor(2)) or a "
                    f"dask.distributed Client; got {type(executor).__name__}.")


def check_picklable_functions(functions: dict, argument: str | None = None) -> None:
    """Refuse streamed statistics that cannot travel to a worker process by pickle.

    Lambdas and functions defined inside other functions are refused even where cloudpickle
    (Dask) would copy them: what they close over would be copied silently, not shared.
    ``argument`` names the user's argument in the message (default ``functions[name]``).

    Examples
    --------
    >>> check_picklable_functions({"sq": lambda X: X ** 2})
    Traceback (most recent call last):
    ...
    TypeError: `functions['sq']` must be a module-level function to run on an executor (it is pickled to the worker processes); got a lambda. Define it with `def` at the top level of a module.
    """
    for name, fn in functions.items():
        qual = getattr(fn, "__qualname__", "") or ""
        what = None
        if qual == "<lambda>" or qual.endswith(".<lambda>"):
            what = "a lambda"
        elif "<locals>" in qual:
            what = f"the local function {qual}"
        else:
            try:
                pickle.dumps(fn)
            except Exception as exc:  # noqa: BLE001 - any pickling failure means the same thing here
                what = f"{type(fn).__name__} that cannot be pickled ({type(exc).__name__}: {exc})"
        if what is not None:
            arg = argument or f"functions[{name!r}]"
            raise TypeError(f"`{arg}` must be a module-level function to run on an executor (it "
                            f"is pickled to the worker processes); got {what}. Define it with `def` at the top "
                            "level of a module.")


def _compiled(key: str, payload: bytes):
    step = _COMPILED.get(key)
    if step is None:
        step = pickle.loads(payload).build()
        _COMPILED[key] = step
        while len(_COMPILED) > _CACHE_SIZE:
            _COMPILED.popitem(last=False)
    else:
        _COMPILED.move_to_end(key)
    return step


def run_task(key: str, payload: bytes, job: dict, first: int, count: int) -> dict:
    """Simulate seed blocks ``first .. first + count - 1`` on a worker (one chunk); module-level so it pickles."""
    label = block_label(first, count, job["n_paths"])
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        cached = key in _COMPILED
        step = _compiled(key, payload)
        t1 = time.perf_counter()
        nt = len(job["save_index"])
        recs = {name: _Recorder(nt) for name in ["state", *job["functions"]]}
        lo, hi = first * BLOCK, min(job["n_paths"], (first + count) * BLOCK)
        states = np.empty((nt, hi - lo) + job["x0"].shape) if job["store"] else None
        bad, first_bad = run_blocks(step, job, first, count, count, recs, states, path_offset=lo)
    except BlowUpError:
        raise  # its message already names the blocks
    except _RELABELLED as exc:
        try:
            relabelled = type(exc)(f"{exc} (on a worker, {label})")
        except Exception:  # noqa: BLE001 - an exception type with another signature travels as it is
            raise exc from None
        raise relabelled from None
    return dict(first=first, records={n: r.records for n, r in recs.items()}, states=states, bad=bad,
                first_bad=first_bad, compile_seconds=0.0 if cached else t1 - t0,
                run_seconds=time.perf_counter() - t1, cpu_seconds=time.process_time() - c0, pid=os.getpid())


def run_on_executor(executor, task, job: dict, n_blocks: int, chunk_blocks: int, chunk_given: bool, accs: dict,
                    states, progress, scheme: str):
    """Submit the run's tasks, merge what they send back in block order; the executor half of ``engine.run``.

    Returns ``(paths lost, first (step, time) of a loss, timings)``.
    """
    from .engine import _progress

    try:
        payload = pickle.dumps(task, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # noqa: BLE001
        raise TypeError(f"the simulation cannot be sent to an executor: its recipe does not pickle "
                        f"({type(exc).__name__}: {exc}); a custom scheme must be a module-level class.") from None
    key = hashlib.sha256(payload).hexdigest()
    per_task = chunk_blocks if chunk_given else min(chunk_blocks, max(1, -(-n_blocks // TASKS_PER_RUN)))
    ranges = [(b0, min(per_task, n_blocks - b0)) for b0 in range(0, n_blocks, per_task)]
    t0 = time.perf_counter()
    futures = [executor.submit(run_task, key, payload, job, b0, nb) for b0, nb in ranges]
    bar = _progress(progress, len(futures), scheme)
    bad_total, first_bad = 0, None
    timing = dict(n_tasks=len(futures), blocks_per_task=per_task, compile_seconds=[], run_seconds=[],
                  cpu_seconds=[], pids=set())
    try:
        for fut in futures:  # in block order: the merge must see blocks in the order of a serial run
            out = fut.result()
            b0 = out["first"]
            for name, rec in out["records"].items():
                acc = accs[name]
                for k, blocks in enumerate(rec):
                    for r in blocks:
                        acc.merge(k, r)
            if states is not None:
                lo = b0 * BLOCK
                states[:, lo:lo + out["states"].shape[1]] = out["states"]
            bad_total += out["bad"]
            if out["first_bad"] is not None and (first_bad is None or out["first_bad"][0] < first_bad[0]):
                first_bad = out["first_bad"]
            timing["compile_seconds"].append(out["compile_seconds"])
            timing["run_seconds"].append(out["run_seconds"])
            timing["cpu_seconds"].append(out["cpu_seconds"])
            timing["pids"].add(out["pid"])
            if bar is not None:
                bar.update(1)
    except BaseException:
        for fut in futures:
            fut.cancel()
        raise
    finally:
        if bar is not None:
            bar.close()
    timing["wall_seconds"] = time.perf_counter() - t0
    timing["n_workers_seen"] = len(timing.pop("pids"))
    return bad_total, first_bad, timing
