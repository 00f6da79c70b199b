"""Executors (issue 9): a run on worker processes gives bitwise the numbers of the serial run.

Serial vs ProcessPoolExecutor(2) (spawned processes: fresh interpreters, other hash seeds) vs a
Dask LocalCluster of two worker processes started here; identical states and streamed statistics
(np.array_equal) for simulate, simulate_sgd, a Monte Carlo weak-error study and a multipoint study,
and across task sizes. Worker failures come back as the local error types naming the blocks.
"""
from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest
import sympy as sp

import smfsym
import smfsym.montecarlo.driver
import smfsym.montecarlo.executors
from smfsym.engine import BLOCK, BlowUpError
from smfsym.studies.common import PhiFunction

x = sp.Symbol("x")
XI = smfsym.normal("xi")
PROBLEM = smfsym.Problem((x - XI) ** 2 / 2 + x**4 / 20, [x])
#: Three full seed blocks and a partial one: the partial block must travel and merge like the others.
N_PATHS = 3 * BLOCK + 123


def square(X):
    return X[..., 0] ** 2


def refuse_on_workers(X):
    raise ValueError("`X` was refused on purpose")


def _same_result(a, b):
    assert (a.states is None) == (b.states is None)
    if a.states is not None:
        assert np.array_equal(a.states, b.states, equal_nan=True)
    assert a.stats.keys() == b.stats.keys()
    for name in a.stats:
        for q in ("mean", "sem", "n"):
            assert np.array_equal(a.stats[name][q], b.stats[name][q], equal_nan=True), (name, q)
    assert (a.n_nonfinite, a.message) == (b.n_nonfinite, b.message)


@pytest.fixture(scope="module")
def pool():
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as ex:
        yield ex


@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None,
                                  silence_logs=40) as cluster, distributed.Client(cluster) as client:
        yield client


@pytest.fixture(scope="module")
def executors(pool, dask_client):
    return {"pool": pool, "dask": dask_client, "dask-executor": dask_client.get_executor(pure=False)}


@pytest.fixture(scope="module")
def flow():
    return smfsym.smf(PROBLEM, order=2)


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
def test_simulate_identical_on_every_executor(executors, flow):
    kw = dict(x0=[1.0], t_end=0.6, eta=0.1, n_paths=N_PATHS, seed=3, scheme="weak2", save_at=[0.0, 0.3, 0.6],
              functions={"square": square, "phi": PhiFunction(x**2 + x, [x], {})})
    serial = smfsym.simulate(flow, **kw)
    for name, ex in executors.items():
        res = smfsym.simulate(flow, executor=ex, **kw)
        _same_result(serial, res)
        assert res.extra["executor"]["n_tasks"] == 4, name
    # task sizes (rounded to whole blocks): two blocks per task (the last one partial), all in one task
    for chunk in (5000, 100_000):
        _same_result(serial, smfsym.simulate(flow, executor=executors["pool"], chunk_size=chunk, **kw))
    kw.update(increments="discrete", store=False)
    _same_result(smfsym.simulate(flow, **kw), smfsym.simulate(flow, executor=executors["dask"], **kw))


def test_simulate_sgd_identical_on_every_executor(executors):
    kw = dict(n_paths=N_PATHS, seed=5, save_at=[3, 8], batch_size=2, functions={"square": square})
    starts = [[1.0], [-0.5]]  # n-point mode: (P, 2, 1) states
    serial = smfsym.simulate_sgd(PROBLEM, starts, 8, 0.1, **kw)
    for ex in executors.values():
        _same_result(serial, smfsym.simulate_sgd(PROBLEM, starts, 8, 0.1, executor=ex, **kw))


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
@pytest.mark.filterwarnings("ignore:the order of")
def test_weak_error_identical_on_executors(executors):
    kw = dict(models=["sme1", "smf2"], method="montecarlo", n_paths=BLOCK + 7, seed=11)
    serial = smfsym.weak_error(PROBLEM, x**2, [1.0], 0.4, [0.2, 0.1], **kw)
    for name in ("pool", "dask"):
        st = smfsym.weak_error(PROBLEM, x**2, [1.0], 0.4, [0.2, 0.1], executor=executors[name], **kw)
        assert st.table == serial.table, name
    # a callable phi travels too when it is a module-level function
    kw.update(models=["sme1"])
    st = smfsym.weak_error(PROBLEM, square, [1.0], 0.4, [0.2, 0.1], executor=executors["pool"], **kw)
    assert st.table == smfsym.weak_error(PROBLEM, square, [1.0], 0.4, [0.2, 0.1], **kw).table


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
def test_multipoint_identical_on_executors(executors):
    kw = dict(eta=0.1, t_end=0.3, models=["sme1_shared", "smf2"], n_paths=BLOCK + 50, seed=2)
    serial = smfsym.multipoint(PROBLEM, [[1.0], [-1.0]], **kw)
    for name in ("pool", "dask"):
        st = smfsym.multipoint(PROBLEM, [[1.0], [-1.0]], executor=executors[name], **kw)
        assert st.table == serial.table, name


def test_blowup_on_a_worker_is_the_local_error(executors):
    sde = smfsym.gradient_flow(smfsym.Problem(-x**4, [x]))  # x' = 4 x^3 explodes before t = 1
    kw = dict(x0=[1.0], t_end=1.0, dt=0.01, n_paths=2 * BLOCK, seed=0, chunk_size=BLOCK)
    with pytest.raises(BlowUpError) as local:
        smfsym.simulate(sde, **kw)
    assert f"{2 * BLOCK} of {2 * BLOCK}, the first in seed block 0; none was lost earlier" in str(local.value)
    for ex in executors.values():
        with pytest.raises(BlowUpError) as remote:
            smfsym.simulate(sde, executor=ex, **kw)
        assert str(remote.value) == str(local.value)
    # masked: the same count and message, from the workers' per-block tallies
    kw.update(on_nonfinite="mask", store=False)
    _same_result(smfsym.simulate(sde, **kw), smfsym.simulate(sde, executor=executors["pool"], **kw))


def test_value_error_on_a_worker_names_the_blocks(executors, flow):
    kw = dict(x0=[1.0], t_end=0.2, eta=0.1, n_paths=BLOCK + 1, seed=0, functions={"bad": refuse_on_workers})
    for ex in (executors["pool"], executors["dask"]):
        with pytest.raises(ValueError, match=r"`X` was refused on purpose \(on a worker, seed block 0 \(paths 0-4095\)\)"):
            smfsym.simulate(flow, executor=ex, **kw)


def test_refusals_before_any_work(pool, flow):
    kw = dict(x0=[1.0], t_end=0.2, eta=0.1, n_paths=100, seed=0)
    with pytest.raises(TypeError, match=r"`functions\['sq'\]` must be a module-level function .* got a lambda"):
        smfsym.simulate(flow, executor=pool, functions={"sq": lambda X: X[:, 0] ** 2}, **kw)

    def local(X):
        return X[:, 0]

    with pytest.raises(TypeError, match=r"`functions\['loc'\]` .* got the local function"):
        smfsym.simulate_sgd(PROBLEM, [1.0], 2, 0.1, n_paths=100, functions={"loc": local}, executor=pool)
    with pytest.raises(TypeError, match=r"`executor` must be a concurrent.futures.Executor .* got int"):
        smfsym.simulate(flow, executor=2, **kw)
    with pytest.raises(TypeError, match=r"`phi` must be a module-level function .* got a lambda"):
        smfsym.weak_error(PROBLEM, lambda X: X[:, 0], [1.0], 0.4, [0.2, 0.1], method="montecarlo", executor=pool)
    with pytest.raises(TypeError, match=r"`executor` must be"):
        smfsym.weak_error(PROBLEM, x**2, [1.0], 0.4, [0.2], executor="tcp://scheduler:8786")  # an address is not a Client
    # the memory bound on stored states is checked here, before anything is submitted
    with pytest.raises(MemoryError, match="over the"):
        smfsym.simulate(flow, executor=pool, max_memory=100, **kw)


SMALL_CHECK = """
[problem]
params = ["x"]
loss = "(x**2 - 1)**2 / 4 + x**2 * z / 2 - s * x"

[problem.constants]
s = 0.2

[data.z]
law = "normal"
std = 0.5

[check]
phi = "x"
x0 = [0.5]
t_end = 0.8
etas = [0.4, 0.2]
models = ["sme1"]
method = "montecarlo"
n_paths = 5000
seed = 1
"""


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:the order of")
def test_cli_check_workers_and_scheduler_give_the_serial_summary(tmp_path, dask_client, capsys):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from smfsym.cli import main

    spec = tmp_path / "dw.toml"
    spec.write_text(SMALL_CHECK)
    assert main(["check", str(spec), "-o", str(tmp_path / "serial")]) == 0
    assert main(["check", str(spec), "-o", str(tmp_path / "dask"), "--scheduler", dask_client.scheduler.address]) == 0
    env = dict(os.environ, PYTHONPATH=str(Path(smfsym.__file__).parent.parent))
    res = subprocess.run([sys.executable, "-m", "smfsym", "check", str(spec), "-o", str(tmp_path / "pool"),
                          "--workers", "2"], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    # non-interactive: no bar, but the study's progress lines, one per run, with the executor too
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("weak_error: ")]
    assert len(lines) == 4 and "(4/4)" in lines[-1], res.stderr
    serial = json.loads((tmp_path / "serial" / "summary.json").read_text())
    assert serial["method"] == "montecarlo"
    for name in ("dask", "pool"):
        assert json.loads((tmp_path / name / "summary.json").read_text()) == serial, name
    capsys.readouterr()
    for bad in (["--workers", "0"], ["--workers", "2", "--scheduler", "tcp://localhost:1"]):
        with pytest.raises(SystemExit) as exit_:
            main(["check", str(spec), "-o", str(tmp_path / "x"), *bad])
        assert exit_.value.code == 2
    assert "--workers" in capsys.readouterr().err


def test_progress_counts_path_steps_as_futures_complete(executors, flow, capsys, monkeypatch):
    """The bar counts paths x steps, serial and on executors alike, and advances as each task completes."""
    import smfsym.engine as engine

    kw = dict(x0=[1.0], t_end=0.3, eta=0.1, n_paths=N_PATHS, seed=0, chunk_size=BLOCK, progress=True, store=False)
    serial = smfsym.simulate(flow, **kw)
    total = N_PATHS * serial.n_steps
    assert f"/{total / 1e3:.0f}k [" in capsys.readouterr().err  # a real tqdm bar on stderr, in path-steps

    class Bar:
        def __init__(self, total):
            self.total, self.updates, self.closed = total, [], False

        def update(self, n):
            self.updates.append(n)

        def close(self):
            self.closed = True

    bars = []
    fake = lambda progress, total, desc: bars.append(Bar(total)) or bars[-1]  # noqa: E731
    # the driver draws the serial bar, the executor half its own
    monkeypatch.setattr(smfsym.montecarlo.driver, "_progress", fake)
    monkeypatch.setattr(smfsym.montecarlo.executors, "_progress", fake)
    smfsym.simulate(flow, **kw)
    # serial: each chunk (one block here) adds its paths at every step
    assert bars[0].total == total and sum(bars[0].updates) == total and bars[0].closed
    assert len(bars[0].updates) == 4 * serial.n_steps
    for name in ("pool", "dask"):
        smfsym.simulate(flow, executor=executors[name], **kw)
        bar = bars[-1]
        # one update per finished task (4 tasks of one block), the same total
        assert bar.total == total and bar.closed, name
        assert sorted(bar.updates) == sorted([BLOCK * serial.n_steps] * 3 + [123 * serial.n_steps]), name


@pytest.mark.slow  # a subprocess that imports smfsym twice over (about 3 s)
def test_a_script_without_the_main_guard_is_told_so(tmp_path):
    """Spawned workers import the script; without `if __name__ == "__main__":` each fails while it starts and
    the pool breaks before any task runs. The error said only "usually out of memory" (audit 7, finding 5)."""
    import subprocess
    import sys
    script = tmp_path / "no_guard.py"
    script.write_text(
        "import sympy as sp, smfsym\n"
        "x = sp.Symbol('x')\n"
        "flow = smfsym.smf(smfsym.Problem((1 + smfsym.rademacher('r')) * x**2 / 2, [x]))\n"
        "smfsym.simulate(flow, [1.0], 0.2, eta=0.1, n_paths=5000, seed=0,\n"
        "                options=smfsym.RunOptions(executor=smfsym.process_pool(2, max_retries=0)))\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode != 0
    assert "WorkerLostError" in out.stderr and "0 of 2 tasks" in out.stderr
    assert 'outside `if __name__ == "__main__":` makes every worker fail while it starts' in out.stderr
