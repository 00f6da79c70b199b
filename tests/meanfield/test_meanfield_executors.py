"""Mean field on executors (issue 9): bitwise the serial numbers on a process pool and a Dask cluster.

simulate_meanfield_sgd, simulate_ddsmf (also Richardson-coupled) and meanfield_study with ``executor=``
against the serial run,
same seed: per-path observables, streamed state statistics and stored particles are compared with
np.array_equal (no tolerance). Runs span two seed blocks, so results of two tasks are merged. The
workers build the network from plain data (nothing compiled travels), and a blow-up on a worker is
the serial run's error, naming the block. `smfsym check` on a [meanfield] spec honours
--workers / --scheduler.
"""
from __future__ import annotations

import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest
import sympy as sp

import smfsym
from smfsym.engine import BLOCK, BlowUpError

a, w, out = sp.symbols("a w out")
N_PATHS = BLOCK + 60  # two seed blocks: two tasks, the second partial


def teacher_net():
    z = smfsym.normal("z")
    return smfsym.MeanFieldProblem(a * sp.tanh(w * z), (a, w), out, (out - sp.tanh(2 * z)) ** 2 / 2)


def data_net():
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(12, 1))
    z, y = smfsym.empirical(np.column_stack([Z[:, 0], np.tanh(2 * Z[:, 0])]), "z y")
    return smfsym.MeanFieldProblem(a * sp.tanh(w * z), (a, w), out, (out - y) ** 2 / 2, batch_size=2)


@pytest.fixture(scope="module")
def executors():
    distributed = pytest.importorskip("distributed")
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool, \
            distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None,
                                     silence_logs=40) as cluster, distributed.Client(cluster) as client:
        yield {"pool": pool, "dask": client}


def _same(r, s):
    assert r.observables.keys() == s.observables.keys()
    for name in r.observables:
        assert r.observables[name].shape[:2] == (len(r.t), r.sim.n_paths)
        assert np.array_equal(r.observables[name], s.observables[name]), name
    for name in r.sim.stats:
        for q in ("mean", "sem", "n"):
            assert np.array_equal(r.sim.stats[name][q], s.sim.stats[name][q]), (name, q)
    assert (r.sim.states is None) == (s.sim.states is None)
    if r.sim.states is not None:
        assert np.array_equal(r.sim.states, s.sim.states)


@pytest.mark.slow  # over 10 s on a shared 2-core machine
def test_meanfield_simulators_identical_on_every_executor(executors):
    net = teacher_net()
    th = smfsym.particles(net, 6, seed=0)
    obs = dict(observables=["risk", "output_at", "moments"], inputs=[[0.5], [-1.0]], risk_points=8)
    sgd_kw = dict(n_paths=N_PATHS, seed=4, save_every=2, chunk_size=BLOCK, **obs)
    dd_kw = dict(n_paths=N_PATHS, seed=4, n_points=8, order=2, save_at=[0.2, 0.4], store=True, **obs)
    sgd = smfsym.simulate_meanfield_sgd(net, th, 0.1, 4, **sgd_kw)
    dd = smfsym.simulate_ddsmf(net, th, 0.1, 0.4, **dd_kw)
    rich_kw = dict(dd_kw, richardson=True, store=False)  # the coupled coarse/fine run (order 2's default)
    rich = smfsym.simulate_ddsmf(net, th, 0.1, 0.4, **rich_kw)
    dnet = data_net()
    dth = smfsym.particles(dnet, 5, seed=1)
    dsgd = smfsym.simulate_meanfield_sgd(dnet, dth, 0.2, 3, n_paths=N_PATHS, seed=2, observables=["risk"])
    for name, ex in executors.items():
        r = smfsym.simulate_meanfield_sgd(net, th, 0.1, 4, executor=ex, **sgd_kw)
        _same(sgd, r)
        assert r.sim.extra["executor"]["n_tasks"] == 2, name
        _same(dd, smfsym.simulate_ddsmf(net, th, 0.1, 0.4, executor=ex, **dd_kw))
        r = smfsym.simulate_ddsmf(net, th, 0.1, 0.4, executor=ex, **rich_kw)
        _same(rich, r)
        for name in rich.info["coarse"]:
            assert np.array_equal(rich.info["coarse"][name], r.info["coarse"][name]), name
        # a data set with mini-batches of 2 (the samplers travel as data too)
        _same(dsgd, smfsym.simulate_meanfield_sgd(dnet, dth, 0.2, 3, n_paths=N_PATHS, seed=2, observables=["risk"],
                                                  executor=ex))
    # compiled once per worker process, cached by the recipe's content hash (the same in every call): the
    # pool ran this recipe above on at least one of its two processes, so three more runs compile at most
    # once in all (a hash that changed per call would compile in every run)
    compiles = [sum(c > 0 for c in smfsym.simulate_meanfield_sgd(net, th, 0.1, 4, executor=executors["pool"],
                                                                   **sgd_kw).sim.extra["executor"]["compile_seconds"])
                for _ in range(3)]
    assert sum(compiles) <= 1, compiles
    # the observables are variable across paths (the comparison is not of constants)
    assert np.var(sgd.observables["risk"][-1]) > 0 and np.var(dd.observables["risk"][-1]) > 0


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
def test_blowup_on_a_worker_is_the_serial_error(executors):
    net = teacher_net()
    th = smfsym.particles(net, 4, seed=0) * [1, 20]  # saturated units: SGD at eta = 200 explodes
    kw = dict(n_paths=BLOCK + 1, seed=0, chunk_size=BLOCK)
    with pytest.raises(BlowUpError) as local:
        smfsym.simulate_meanfield_sgd(net, th, 200.0, 100, **kw)
    assert "of 4097, the first in seed block 0; none was lost earlier" in str(local.value)  # the whole run
    with pytest.raises(BlowUpError) as remote:
        smfsym.simulate_meanfield_sgd(net, th, 200.0, 100, executor=executors["pool"], **kw)
    assert str(remote.value) == str(local.value)
    with pytest.raises(TypeError, match=r"`executor` must be a concurrent.futures.Executor"):
        smfsym.simulate_ddsmf(net, th, 0.1, 0.2, executor="tcp://scheduler:8786")


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
@pytest.mark.filterwarnings("ignore::smfsym.CapturedNoiseWarning")
def test_meanfield_study_identical_on_executors(executors):
    net = teacher_net()
    kw = dict(etas=[0.2, 0.1], widths=[5], t_end=0.4, n_paths=N_PATHS, n_points=8, risk_points=8, n_saves=2,
              seed=3)
    serial = smfsym.meanfield_study(net, **kw)
    for name, ex in executors.items():
        st = smfsym.meanfield_study(net, executor=ex, **kw)
        assert st.table == serial.table, name
        for m in ("sgd", "ddsmf"):  # both simulators ran on the executor, two tasks per cell
            assert st.results[(m, 0.1, 5)].sim.extra["executor"]["n_tasks"] == 2, (name, m)
        for key, res in serial.results.items():
            for obs_name in res.observables:
                assert np.array_equal(res.observables[obs_name], st.results[key].observables[obs_name]), (name, key)


MEANFIELD_SPEC = """
[meanfield]
params = ["a", "w"]
output = "out"
unit = "a * tanh(w * z)"
loss = "(out - tanh(2*z))**2 / 2"

[meanfield.particles]
a = ["normal", 0.0, 0.1]
w = ["normal", 0.0, 1.0]

[meanfield.check]
etas = [0.2, 0.1]
t_end = 0.4
widths = [6]
n_paths = 4200
n_saves = 2
seed = 2
n_points = 8

[data.z]
law = "normal"
"""


@pytest.mark.slow  # over 10 s on a shared 2-core machine
@pytest.mark.filterwarnings("ignore::smfsym.CapturedNoiseWarning")
def test_cli_meanfield_check_on_workers_and_scheduler(tmp_path, executors, capsys, monkeypatch):
    import smfsym.montecarlo.driver
    import smfsym.montecarlo.executors
    from smfsym.cli import main

    calls = []
    run_on_executor = smfsym.montecarlo.executors.run_on_executor

    def counting(executor, *args, **kw):
        calls.append(type(executor).__name__)
        return run_on_executor(executor, *args, **kw)

    # the driver looks it up in its own namespace
    monkeypatch.setattr(smfsym.montecarlo.driver, "run_on_executor", counting)

    spec = tmp_path / "mf.toml"
    spec.write_text(MEANFIELD_SPEC)
    runs = {"serial": ["--quiet"], "workers": ["--workers", "2"],
            "dask": ["--scheduler", executors["dask"].scheduler.address]}
    errs = {}
    for name, flags in runs.items():
        assert main(["check", str(spec), "-o", str(tmp_path / name), *flags]) == 0, name
        errs[name] = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("meanfield: ")]
    # progress lines on stderr (non-interactive: no bars), one per run, with executors too; none with --quiet
    assert errs["serial"] == []
    for name in ("workers", "dask"):
        assert len(errs[name]) == 5 and errs[name][0].startswith("meanfield: limit N=6 (1/5)"), errs[name]
        assert errs[name][-1].startswith("meanfield: ddsmf eta=0.1 N=6 (4200 paths) (5/5)"), errs[name]
    # 2 etas x (SGD + DD-SMF) on smfsym's pool (--workers) and on Dask; none in the serial run
    assert calls == ["ProcessPool"] * 4 + ["ClientExecutor"] * 4
    serial = json.loads((tmp_path / "serial" / "summary.json").read_text())
    assert serial["meanfield"]["meta"]["n_paths"] == 4200
    for name in ("workers", "dask"):
        assert json.loads((tmp_path / name / "summary.json").read_text()) == serial, name
