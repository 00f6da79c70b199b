"""A worker process lost mid-run (issue 9, part 3): rerun without changing the numbers, or a clear error.

The fault is injected here, not in smfsym: the executors below wrap the task function so that the
task holding a given seed block kills its worker process with ``os._exit`` on its first attempt only
("first" is a marker file created atomically, visible across processes). Three cases:
(a) smfsym's own pool (``smfsym.process_pool``) is rebuilt and the unfinished blocks rerun: bitwise
the serial result; (b) the user's own ProcessPoolExecutor cannot be rebuilt by smfsym: a
WorkerLostError naming the lost blocks and the remedy; (c) a Dask LocalCluster (2 worker processes)
reschedules the task of the killed worker itself: bitwise the serial result; a task that kills its
worker more often than the scheduler's allowed-failures is a WorkerLostError naming its blocks.
"""
from __future__ import annotations

import multiprocessing
import os
import re
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import pytest
import sympy as sp

import smfsym
from smfsym.engine import BLOCK
from smfsym.montecarlo.executors import ProcessPool, WorkerLostError

x = sp.Symbol("x")
PROBLEM = smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2 + x**4 / 20, [x])
FLOW = smfsym.smf(PROBLEM, order=2)
#: one seed block per task (chunk_size=BLOCK): four tasks, the last one a partial block
KW = dict(x0=[1.0], t_end=0.4, eta=0.1, n_paths=3 * BLOCK + 123, seed=7, scheme="weak2", save_at=[0.2, 0.4],
          chunk_size=BLOCK)
KILLED_BLOCK = 2
SPAWN = multiprocessing.get_context("spawn")
FORK = multiprocessing.get_context("fork")


def square(X):
    return X[..., 0] ** 2


def kill_first_attempt(marker, block, always, fn, key, payload, job, first, count):
    """The engine's task, except that the task holding ``block`` kills its worker (first attempt only)."""
    if first <= block < first + count:
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            if always:
                os._exit(1)
        else:
            os.close(fd)
            os._exit(1)
    return fn(key, payload, job, first, count)


class KillingPool(ProcessPool):
    """smfsym's rebuildable pool with the fault injected into every submitted task."""

    def __init__(self, marker, always=False, mp_context=SPAWN, **kw):
        super().__init__(2, mp_context=mp_context, **kw)
        self.fault = (str(marker), KILLED_BLOCK, always)

    def submit(self, fn, /, *args, **kwargs):
        return super().submit(kill_first_attempt, *self.fault, fn, *args, **kwargs)


class KillingUserPool(ProcessPoolExecutor):
    """A plain ProcessPoolExecutor of the user's, with the same fault."""

    def __init__(self, marker):
        super().__init__(2, mp_context=FORK)  # forked: quicker to start than spawned (the case (a) pool)
        self.fault = (str(marker), KILLED_BLOCK, False)

    def submit(self, fn, /, *args, **kwargs):
        return super().submit(kill_first_attempt, *self.fault, fn, *args, **kwargs)


def _same(a, b):
    assert np.array_equal(a.states, b.states, equal_nan=True)
    for name in a.stats:
        for q in ("mean", "sem", "n"):
            assert np.array_equal(a.stats[name][q], b.stats[name][q]), (name, q)


@pytest.fixture(scope="module")
def serial():
    return smfsym.simulate(FLOW, functions={"square": square}, **KW)


def _blocks_named(message):
    """The seed blocks a message names ("seed block 2", "seed blocks 1-3")."""
    out = set()
    for a, b in re.findall(r"seed blocks? (\d+)(?:-(\d+))?", message):
        out |= set(range(int(a), int(b or a) + 1))
    return out


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
def test_lost_worker_of_smfsyms_pool_is_rerun_with_the_same_numbers(tmp_path, serial):
    marker = tmp_path / "killed"
    with KillingPool(marker) as pool:
        res = smfsym.simulate(FLOW, functions={"square": square}, executor=pool, **KW)
        assert marker.exists()  # the worker really died
        assert pool.rebuilds == 1 and res.extra["executor"]["rebuilds"] == 1
        assert 1 <= res.extra["executor"]["tasks_rerun"] <= 4
        _same(serial, res)
        # the rebuilt pool stays usable for the next run
        _same(serial, smfsym.simulate(FLOW, functions={"square": square}, executor=pool, **KW))
    # a task that kills its worker on every attempt: bounded retries, then the error naming its block
    with KillingPool(tmp_path / "always", always=True, max_retries=1, mp_context=FORK) as pool:
        with pytest.raises(WorkerLostError, match=r"rebuilt its pool 1 times .*`max_retries` = 1.*`chunk_size`") as err:
            smfsym.simulate(FLOW, executor=pool, **KW)
        assert KILLED_BLOCK in _blocks_named(str(err.value))


def test_lost_worker_of_the_users_pool_is_a_clear_error(tmp_path):
    with KillingUserPool(tmp_path / "killed") as pool:
        with pytest.raises(WorkerLostError) as err:
            smfsym.simulate(FLOW, executor=pool, **KW)
    msg = str(err.value)
    assert isinstance(err.value, BrokenProcessPool)  # code catching the pool's own error still does
    assert re.search(r"a worker process died .* were unfinished; [0-3] of 4 tasks \([0-3] of 4 seed blocks\) had "
                     r"finished\. .*cannot rebuild a pool it did not create: pass `executor=smfsym.process_pool\(n\)`"
                     r".* or a Dask Client", msg), msg
    assert KILLED_BLOCK in _blocks_named(msg)


@pytest.mark.slow  # seconds: the slow tier (CI runs both)
def test_killed_dask_worker_changes_no_number(tmp_path, serial):
    distributed = pytest.importorskip("distributed")
    import dask
    from distributed.cfexecutor import ClientExecutor

    class KillingDaskExecutor(ClientExecutor):
        def __init__(self, client, marker, always=False):
            super().__init__(client, pure=False)
            self.fault = (str(marker), KILLED_BLOCK, always)

        def submit(self, fn, /, *args, **kwargs):
            return super().submit(kill_first_attempt, *self.fault, fn, *args, **kwargs)

    # the scheduler reruns a task whose worker died once; a second death of the same task is final
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}), \
            distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None,
                                     silence_logs=50) as cluster, distributed.Client(cluster) as client:
        res = smfsym.simulate(FLOW, functions={"square": square},
                              executor=KillingDaskExecutor(client, tmp_path / "killed"), **KW)
        assert (tmp_path / "killed").exists()
        _same(serial, res)
        with pytest.raises(WorkerLostError, match=r"Dask lost the worker running seed block 2 \(paths 8192-12287\) .*"
                                                  r"allowed-failures.*`chunk_size`"):
            smfsym.simulate(FLOW, executor=KillingDaskExecutor(client, tmp_path / "always", always=True), **KW)


@pytest.mark.parametrize("kw,exc,needle", [
    (dict(max_workers=0), ValueError, "`max_workers` must be an integer >= 1; got 0."),
    (dict(max_workers="2"), TypeError, "`max_workers` must be an integer; got '2' (str)."),
    (dict(max_workers=2, max_retries=-1), ValueError, "`max_retries` must be an integer >= 0; got -1."),
    (dict(max_workers=2, max_retries=1.5), TypeError, "`max_retries` must be an integer"),
    (dict(max_workers=2, mp_context="threads"), ValueError, "`mp_context` must be one of"),
    (dict(max_workers=2, mp_context=3), TypeError, "`mp_context` must be a start method name"),
])
def test_process_pool_refuses_bad_arguments(kw, exc, needle):
    with pytest.raises(exc) as err:
        smfsym.process_pool(**kw)
    assert needle in str(err.value)
