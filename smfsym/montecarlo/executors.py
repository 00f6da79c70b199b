"""Running the engine's seed blocks on ``concurrent.futures`` executors and Dask clusters.

smfsym has no scheduler of its own: ``executor=`` takes any
:class:`concurrent.futures.Executor` (a :class:`~concurrent.futures.ProcessPoolExecutor`, a Dask
``Client.get_executor()``) or a Dask ``distributed.Client`` itself. A run is cut into tasks of whole
4096-path seed blocks (docs/theory.md §8); a task carries data only: the pickled recipe of the
step (the symbolic SDE or Problem, the numbers, the scheme), the grid, the seed and the block range.
A worker process compiles a recipe once and keeps it in smfsym's one compile cache
(:func:`smfsym.montecarlo.cache.compiled`, least recently used dropped first), keyed by the SHA-256 of the
pickled recipe, so later tasks of the same run (and of runs with the same recipe) skip both the
unpickling of the sympy expressions and the compilation. In a thread pool the workers share the
calling process's cache: the run's recipe is already compiled there.

Each task sends back its states and, per seed block, the count, mean and sum of squared deviations
of every streamed statistic; these are merged here in block order, exactly as a serial run merges
them, so results are bitwise identical whatever the executor, the number of workers and the task
size.

A worker lost mid-run (the OOM killer, a segfault, ``os._exit``) does not change the numbers either:
a task is a pure function of its blocks, so rerunning it gives the same bytes.

- Dask reschedules the tasks of a dead worker itself, up to the scheduler's
  ``distributed.scheduler.allowed-failures`` times (default 3) per task; after that its
  ``KilledWorker`` comes back here as a :class:`WorkerLostError` naming the blocks. (Dask's
  ``retries=`` is not used: it reruns tasks that *raised*, and ours raise only deterministic errors.)
- A :class:`concurrent.futures.ProcessPoolExecutor` cannot: once a worker dies the pool is broken
  for good. A pool smfsym created, :func:`process_pool` (the CLI's ``--workers N``), is rebuilt and
  only the unfinished seed blocks are resubmitted, at most ``max_retries`` (default 2) times per run.
  A pool of the user's own cannot be rebuilt by smfsym: the run stops with a :class:`WorkerLostError`
  that names the lost blocks and the remedy.

Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``; that also freezes glibc's mmap
threshold, so each numpy temporary over 128 KiB is a fresh mmap with page faults on every step
(several times slower; BENCHMARKS.md, "Executors (issue 9)"). Start the cluster with
``dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None})`` (or that
key in the workers' Dask configuration) to keep glibc's defaults.
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import pickle
import sys
import time
from concurrent.futures.process import BrokenProcessPool

from typing import Mapping

import numpy as np

from .blocks import run_blocks
from .cache import compiled, content_key, remember
from .checks import BlowUpError, blowup_error, check_int
from .progress import _progress
from .seeds import BLOCK, block_label
from .statistics import _Recorder, _Values

__all__ = ["check_executor", "checked_executor", "check_picklable_functions", "run_on_executor", "TASKS_PER_RUN", "process_pool",
           "ProcessPool", "WorkerLostError", "MAX_RETRIES"]

#: Default number of tasks a run is cut into (fewer if it has fewer seed blocks): enough to keep
#: a few dozen workers busy and balance uneven ones, few enough that per-task overhead is noise.
TASKS_PER_RUN = 16
#: Errors a task re-raises with the same type and the block range appended to the message.
_RELABELLED = (MemoryError, ValueError, TypeError, ArithmeticError, KeyError, IndexError, RuntimeError)
#: Default number of times a :class:`ProcessPool` is rebuilt in one run after losing a worker.
MAX_RETRIES = 2


class WorkerLostError(BrokenProcessPool):
    """A worker process died mid-run and its seed blocks could not be rerun (the message says why and what to do).

    A subclass of :class:`concurrent.futures.process.BrokenProcessPool`, so code that catches
    the pool's own error keeps working.
    """


class ProcessPool(cf.Executor):
    """A process pool that smfsym may rebuild when a worker dies; use it like a ProcessPoolExecutor.

    Made by :func:`process_pool`. A run on it that loses a worker process (the OOM killer, a
    segfault, ``os._exit``) shuts the broken pool down, starts a new one with the same
    arguments and resubmits only the seed blocks that had not finished, at most ``max_retries``
    times per run; the per-block results are merged in block order, so the numbers are bitwise
    those of a serial run. ``rebuilds`` counts the rebuilds over the pool's life.
    """

    def __init__(self, max_workers: int | None = None, *, mp_context=None, max_retries: int = MAX_RETRIES):
        if max_workers is not None:
            max_workers = check_int(max_workers, "max_workers")
        self.max_retries = check_int(max_retries, "max_retries", minimum=0)
        if mp_context is None or isinstance(mp_context, str):
            methods = multiprocessing.get_all_start_methods()
            if mp_context is not None and mp_context not in methods:
                raise ValueError(f"`mp_context` must be one of {methods} or a multiprocessing context; "
                                 f"got {mp_context!r}.")
            mp_context = multiprocessing.get_context(mp_context or "spawn")
        elif not hasattr(mp_context, "Process"):
            raise TypeError(f"`mp_context` must be a start method name or a multiprocessing context; got "
                            f"{type(mp_context).__name__}.")
        self._args = (max_workers, mp_context)
        self._pool = cf.ProcessPoolExecutor(max_workers, mp_context=mp_context)
        self.rebuilds = 0

    @property
    def max_workers(self) -> int:
        return self._pool._max_workers

    def submit(self, fn, /, *args, **kwargs):
        return self._pool.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)

    def rebuild(self) -> None:
        """Replace the (broken) pool by a fresh one with the same arguments."""
        old = self._pool
        old.shutdown(wait=False, cancel_futures=True)
        self._pool = cf.ProcessPoolExecutor(self._args[0], mp_context=self._args[1])
        self.rebuilds += 1

    def __repr__(self):
        return f"ProcessPool(max_workers={self.max_workers}, max_retries={self.max_retries}, rebuilds={self.rebuilds})"


def process_pool(max_workers: int | None = None, *, mp_context=None, max_retries: int = MAX_RETRIES) -> ProcessPool:
    """A local process pool for ``executor=`` that survives the loss of a worker process.

    Like ``concurrent.futures.ProcessPoolExecutor(max_workers)`` (and a context manager like it),
    but when a worker dies mid-run smfsym rebuilds the pool and reruns only the unfinished seed
    blocks, at most ``max_retries`` times per run (default 2), with bitwise the numbers of an
    uninterrupted run. Keep one pool for many runs: each worker compiles a recipe once.

    Parameters
    ----------
    max_workers : int, optional
        Number of worker processes (default: the number of CPUs).
    mp_context : str or multiprocessing context, optional
        Start method of the workers (default "spawn": fresh interpreters, safe in threaded programs).
    max_retries : int
        Rebuilds allowed in one run before a :class:`WorkerLostError` is raised.

    Examples
    --------
    >>> with process_pool(2) as ex:
    ...     ex.max_workers, ex.max_retries
    (2, 2)
    """
    return ProcessPool(max_workers, mp_context=mp_context, max_retries=max_retries)


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
    TypeError: `executor` must be a concurrent.futures.Executor (e.g. smfsym.process_pool(2)) or a dask.distributed Client; got int.
    """
    if isinstance(executor, cf.Executor):
        return executor
    get = getattr(executor, "get_executor", None)
    if callable(get) and callable(getattr(executor, "submit", None)):
        # pure=False: a task is a computation with a seed, not a cacheable function of its arguments
        return get(pure=False)
    raise TypeError("`executor` must be a concurrent.futures.Executor (e.g. smfsym.process_pool(2)) or a "
                    f"dask.distributed Client; got {type(executor).__name__}.")


def checked_executor(executor, functions=None):
    """``executor`` checked (None stays None), and the streamed ``functions`` checked to travel to its
    workers (module-level functions, pickled): the one check every simulator makes before a run."""
    if executor is None:
        return None
    executor = check_executor(executor)
    if isinstance(functions, Mapping):
        check_picklable_functions(dict(functions))
    return executor


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


def run_task(key: str, payload: bytes, job: dict, first: int, count: int) -> dict:
    """Simulate seed blocks ``first .. first + count - 1`` on a worker (one chunk); module-level so it pickles."""
    label = block_label(first, count, job["n_paths"])
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        built = []

        def build():
            built.append(True)
            return pickle.loads(payload).build()

        step = compiled(key, build)
        t1 = time.perf_counter()
        if any(fn is None for fn in job["functions"].values()):  # the recipe builds them (provides_functions)
            job = dict(job, functions={name: step.functions[name] for name in job["functions"]})
        nt = len(job["save_index"])
        recs = {name: _Recorder(nt) for name in ["state", *job["functions"]]}
        lo, hi = first * BLOCK, min(job["n_paths"], (first + count) * BLOCK)
        states = np.empty((nt, hi - lo) + job["x0"].shape) if job["store"] else None
        values = _Values(nt, hi - lo) if job.get("keep_values") else None
        try:
            bad, first_bad = run_blocks(step, job, first, count, count, recs, states, path_offset=lo, values=values)
        finally:
            # the step stays cached for later tasks; its draw buffers need not (up to tens of MiB each)
            getattr(step, "release_buffers", lambda: None)()
    except BlowUpError:
        raise  # its message already names the blocks
    except _RELABELLED as exc:
        try:
            relabelled = type(exc)(f"{exc} (on a worker, {label})")
        except Exception:  # noqa: BLE001 - an exception type with another signature travels as it is
            raise exc from None
        raise relabelled from None
    return dict(first=first, records={n: r.records for n, r in recs.items()}, states=states, bad=bad,
                first_bad=first_bad, values=None if values is None else values.arrays,
                compile_seconds=t1 - t0 if built else 0.0, run_seconds=time.perf_counter() - t1,
                cpu_seconds=time.process_time() - c0, pid=os.getpid())


def _is_killed_worker(exc: BaseException) -> bool:
    distributed = sys.modules.get("distributed")
    killed = getattr(distributed, "KilledWorker", None)
    return killed is not None and isinstance(exc, killed)


def _lost_label(ranges: list, lost: list, n_paths: int, most: int = 4) -> str:
    """The lost tasks' blocks, adjacent ranges merged: "seed blocks 4-7 (paths ...), seed block 12 (...)"."""
    spans = []
    for i in sorted(lost):
        b0, nb = ranges[i]
        if spans and spans[-1][0] + spans[-1][1] == b0:
            spans[-1][1] += nb
        else:
            spans.append([b0, nb])
    text = ", ".join(block_label(b0, nb, n_paths) for b0, nb in spans[:most])
    return text + (f" and {len(spans) - most} more ranges" if len(spans) > most else "")


def run_on_executor(executor, task, job: dict, n_blocks: int, chunk_blocks: int, chunk_given: bool, accs: dict,
                    states, progress, scheme: str, values: _Values | None = None, step=None):
    """Submit the run's tasks, merge what they send back in block order; the executor half of ``engine.run``.

    Tasks are collected as they finish (the progress bar advances by each task's path-steps); their
    states and per-path values go straight to their rows, their per-block statistics are merged
    once every earlier task has been merged, and an error is raised in block order, like a serial
    run's. Tasks lost with a worker process are rerun on a rebuilt :class:`ProcessPool` (see the
    module docstring). Returns ``(paths lost, first (step, time) of a loss, timings)``.

    ``step``, the step this process built from ``task``, is cached under the recipe's key: the tasks
    of a thread pool (which share this process's cache) then run it without unpickling the recipe.
    """
    try:
        payload = pickle.dumps(task, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # noqa: BLE001
        raise TypeError(f"the simulation cannot be sent to an executor: its recipe does not pickle "
                        f"({type(exc).__name__}: {exc}); a custom scheme must be a module-level class.") from None
    key = content_key(payload=payload)
    if step is not None:
        remember(key, step)
    if getattr(task, "provides_functions", False):
        job = dict(job, functions=dict.fromkeys(job["functions"]))  # built on the worker: only names travel
    job = dict(job, keep_values=values is not None)
    per_task = chunk_blocks if chunk_given else min(chunk_blocks, max(1, -(-n_blocks // TASKS_PER_RUN)))
    ranges = [(b0, min(per_task, n_blocks - b0)) for b0 in range(0, n_blocks, per_task)]
    run = _ExecutorRun(executor, key, payload, job, ranges, n_blocks, states, values)
    run.timing["blocks_per_task"] = per_task
    t0 = time.perf_counter()
    run.bar = _progress(progress, run.n_paths * run.n_steps, scheme)
    try:
        run.start()
        while run.merged < len(ranges):
            if not run.pending and run.results[run.merged] is None:  # pragma: no cover - every task is tracked
                raise RuntimeError(f"internal error: task {run.merged} of the run was neither pending nor finished")
            if run.pending:
                run.wait_and_rerun()
            run.merge_ready(accs)
    except BaseException:
        for fut in run.pending:
            fut.cancel()
        raise
    finally:
        if run.bar is not None:
            run.bar.close()
    timing = run.timing
    timing["wall_seconds"] = time.perf_counter() - t0
    timing["n_workers_seen"] = len(timing.pop("pids"))
    return run.bad_total, run.first_bad, timing


class _ExecutorRun:
    """The state of one run on an executor: its tasks (seed-block ranges), what is pending, what has
    finished, and what has been merged (in block order)."""

    def __init__(self, executor, key, payload, job, ranges, n_blocks, states, values):
        self.executor, self.key, self.payload, self.job, self.ranges = executor, key, payload, job, ranges
        self.n_blocks, self.states, self.values = n_blocks, states, values
        self.n_paths, self.n_steps = job["n_paths"], len(job["step_sizes"])
        self.owned = isinstance(executor, ProcessPool)
        self.results: list = [None] * len(ranges)  # per task: its output, or the error to raise in block order
        self.pending: dict = {}  # future -> task index
        self.bad_total, self.first_bad, self.merged, self.bar = 0, None, 0, None
        self.timing = dict(n_tasks=len(ranges), compile_seconds=[], run_seconds=[], cpu_seconds=[], pids=set(),
                           rebuilds=0, tasks_rerun=0)

    def submit(self, indices):
        for i in indices:
            self.pending[self.executor.submit(run_task, self.key, self.payload, self.job, *self.ranges[i])] = i

    def start(self):
        try:
            self.submit(range(len(self.ranges)))
        except cf.BrokenExecutor:
            if not self.owned:
                raise self.lost_error(list(range(len(self.ranges))), _NOT_OURS) from None
            self.executor.rebuild()
            self.timing["rebuilds"] += 1
            self.pending.clear()
            self.submit(range(len(self.ranges)))

    def collect(self, fut, i) -> bool:
        """Store a finished task's outcome; False when its worker was lost (the task must be rerun)."""
        try:
            out = fut.result()
        except cf.BrokenExecutor:
            return False
        except BaseException as exc:  # noqa: BLE001 - raised later, in block order
            if _is_killed_worker(exc):
                exc = WorkerLostError(
                    f"Dask lost the worker running {_lost_label(self.ranges, [i], self.n_paths)} as many times as "
                    f"its scheduler allows (distributed.scheduler.allowed-failures; {type(exc).__name__}: {exc}). A "
                    "task that kills its worker every time is usually out of memory: pass a smaller `chunk_size` "
                    "(paths per task) or give the workers more memory.")
            self.results[i] = exc
            return True
        lo = out["first"] * BLOCK
        if self.states is not None:
            self.states[:, lo:lo + out["states"].shape[1]] = out["states"]
        if self.values is not None:
            for name, arr in out["values"].items():
                self.values.put_rows(name, lo, arr)
        out["states"] = out["values"] = None
        self.results[i] = out
        for name in ("compile_seconds", "run_seconds", "cpu_seconds"):
            self.timing[name].append(out[name])
        self.timing["pids"].add(out["pid"])
        if self.bar is not None:
            self.bar.update((min(self.n_paths, lo + self.ranges[i][1] * BLOCK) - lo) * self.n_steps)
        return True

    def lost_error(self, lost: list, why: str) -> WorkerLostError:
        ok = [i for i, r in enumerate(self.results) if r is True or isinstance(r, dict)]  # merged or waiting
        finished, done_blocks = len(ok), sum(self.ranges[i][1] for i in ok)
        startup = "" if finished else (
            " No task finished, so the workers may never have started: a spawned worker imports the script that "
            "made the pool, and a script that does its work outside `if __name__ == \"__main__\":` makes every "
            "worker fail while it starts (Python's RuntimeError about the 'bootstrapping phase' is printed above "
            "then); put the script's work under that guard.")
        return WorkerLostError(
            f"a worker process died (killed by the OOM killer or a signal, a segfault, os._exit) while "
            f"{_lost_label(self.ranges, lost, self.n_paths)} were unfinished; {finished} of {len(self.ranges)} "
            f"tasks ({done_blocks} of {self.n_blocks} seed blocks) had finished. {why}{startup}")

    def wait_and_rerun(self):
        """Take in the tasks that finish next; rerun those lost with a worker on a rebuilt pool."""
        pending = self.pending
        done, _ = cf.wait(list(pending), return_when=cf.FIRST_COMPLETED)
        lost = [pending[f] for f in done if not self.collect(f, pending[f])]
        for f in done:
            del pending[f]
        if not lost:
            return
        # a broken pool fails every task it still holds: take them all in before rebuilding
        cf.wait(list(pending))
        lost += [i for f, i in pending.items() if not self.collect(f, i)]
        pending.clear()
        if not self.owned:
            raise self.lost_error(lost, _NOT_OURS)
        if self.timing["rebuilds"] >= self.executor.max_retries:
            raise self.lost_error(lost, f"smfsym rebuilt its pool {self.timing['rebuilds']} times in this run "
                                  f"(`max_retries` = {self.executor.max_retries}) and a worker died again: a "
                                  "task that kills its worker every time is usually out of memory; pass a "
                                  "smaller `chunk_size` (paths per task) or fewer workers.")
        self.executor.rebuild()
        self.timing["rebuilds"] += 1
        self.timing["tasks_rerun"] += len(lost)
        self.submit(sorted(lost))

    def merge_ready(self, accs: dict):
        """Merge, in block order, every finished task that all earlier ones precede."""
        while self.merged < len(self.ranges) and self.results[self.merged] is not None:
            out = self.results[self.merged]
            if isinstance(out, BaseException):
                raise self.earliest_blowup() if getattr(out, "loss", None) is not None else out
            for name, rec in out["records"].items():
                acc = accs[name]
                for k, blocks in enumerate(rec):
                    for r in blocks:
                        acc.merge(k, r)
            self.bad_total += out["bad"]
            if out["first_bad"] is not None and (self.first_bad is None or out["first_bad"][0] < self.first_bad[0]):
                self.first_bad = out["first_bad"]
            self.results[self.merged] = True  # merged: its records are freed
            self.merged += 1

    def earliest_blowup(self) -> BlowUpError:
        """The first unmerged task's blow-up need not be the run's first: a task of later blocks may lose
        paths at an earlier step. Take in the tasks still running; report the earliest loss of all, as a
        serial run does."""
        while self.pending:
            self.wait_and_rerun()
        loss = None
        for out in self.results[self.merged:]:
            if isinstance(out, BlowUpError) and out.loss is not None:
                loss = out.loss.earliest(loss)
        return blowup_error(loss, self.job)


_NOT_OURS = ("A concurrent.futures pool that lost a worker accepts no more work, and smfsym cannot rebuild a pool it "
             "did not create: pass `executor=smfsym.process_pool(n)` (smfsym rebuilds it and reruns only the "
             "unfinished seed blocks, with the same numbers) or a Dask Client (which reschedules lost tasks itself).")
