"""The optimizer studies on the array back ends (issue 19 item 3), tested on the stand-in device of
``array_api_strict`` (it refuses implicit numpy conversion, so a hidden host copy in a loop fails here).

- agreement with numpy: every compared mean within ``Z_MAX`` = 5 standard errors of the difference of the
  two independent estimates (tests/backend_cases.py: below 1e-5 false alarms over the entries of a test);
- the same numbers whatever the chunking: bitwise, on one back end (a seed block draws from its own stream);
- the spec's [check] ``scheme`` and ``increments`` reach the Monte Carlo models of the schedule and momentum
  studies, and ``smfsym check`` runs a shipped schedule and momentum spec with ``--backend``;
- momentum_multipoint (exact moments only) refuses a back end by name.
"""
import json

import numpy as np
import pytest
import sympy as sp

import smfsym
from smfsym import Numerics, RunOptions, SaveAt
from smfsym.montecarlo import driver
from smfsym.optimizers import Momentum, cosine, rmsprop
from smfsym.optimizers.regimes import malladi_adam, malladi_rmsprop, simulate_regime
from smfsym.optimizers.svag import simulate_svag
from smfsym.studies.momentum_multipoint import momentum_multipoint
from smfsym.studies.optimizer_weak_error import momentum_weak_error, schedule_weak_error
from smfsym.studies.scaling_rule_study import scaling_rule_study
from smfsym.studies.svag_study import svag_study

from backend_cases import Z_MAX, square, zscores

AAS = "array_api_strict"
x = sp.Symbol("x")
MC = Numerics(method="montecarlo")


def _problem():
    return smfsym.Problem((x - smfsym.normal("xi", std=sp.Rational(1, 2))) ** 2 / 2, [x])


def _opts(backend):
    return RunOptions(progress=False, backend=backend)


def _agree(ref, dev, pairs=(("value", "value_se"), ("sgd", "sgd_se"))):
    """Every row's estimates within Z_MAX standard errors of their difference (+1e-12: exact zeros)."""
    assert len(ref.rows) == len(dev.rows)
    for r0, r1 in zip(ref.rows, dev.rows):
        for key, se in pairs:
            assert abs(r0[key] - r1[key]) <= Z_MAX * np.hypot(r0[se], r1[se]) + 1e-12, (key, r0, r1)


def _one_block(backend, per_path, chunk_size, host_bytes) -> int:
    """In place of the driver's chunk choice: one seed block per chunk (counting its calls)."""
    _one_block.calls.append(backend.name)
    return 1


_one_block.calls = []


def _rows_equal(a, b, keys):
    for r0, r1 in zip(a.rows, b.rows):
        assert [r0[k] for k in keys] == [r1[k] for k in keys], (r0, r1)


# -- schedule and momentum studies

def _schedule(backend, n_paths=8192, **kw):
    return schedule_weak_error(_problem(), cosine(2, 0.2), x**2, [1.0], 0.5, [0.25, 0.125], models=["smf1", "smf2"],
                               n_paths=n_paths, seed=3, numerics=kw.pop("numerics", MC), options=_opts(backend), **kw)


def _momentum(backend, n_paths=8192, nesterov=False, **kw):
    return momentum_weak_error(_problem(), x**2, [1.0, 0.5], 0.5, [1 / 16, 1 / 64],
                               Momentum(friction=1.0, nesterov=nesterov), models=["smf1", "smf2"], n_paths=n_paths,
                               seed=3, numerics=kw.pop("numerics", MC), options=_opts(backend), **kw)


@pytest.mark.slow  # multi-second study; the step-decay schedule study stays in the default tier
@pytest.mark.filterwarnings("ignore::smfsym.OrderWarning")
def test_schedule_weak_error_agrees_with_numpy():
    ref, dev = _schedule("numpy"), _schedule(AAS)
    assert dev.meta["backend"] == AAS and "backend" not in ref.meta
    _agree(ref, dev)


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
@pytest.mark.filterwarnings("ignore::smfsym.OrderWarning")
@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_weak_error_agrees_with_numpy(nesterov):
    ref, dev = _momentum("numpy", nesterov=nesterov), _momentum(AAS, nesterov=nesterov)
    assert dev.meta["backend"] == AAS
    _agree(ref, dev)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::smfsym.OrderWarning")
@pytest.mark.parametrize("study", [_schedule, _momentum])
def test_optimizer_studies_give_the_same_numbers_in_any_chunking(study, monkeypatch):
    n = 2 * 4096 + 100  # three seed blocks, the last one partial: one chunk by default
    whole = study(AAS, n_paths=n)
    monkeypatch.setattr(driver, "device_chunk_blocks", _one_block)
    blocks = study(AAS, n_paths=n)
    assert _one_block.calls  # the device loop ran, one seed block per chunk
    _rows_equal(whole, blocks, ("sgd", "sgd_se", "value", "value_se", "solver_error"))


def test_exact_mode_runs_no_monte_carlo_on_any_backend():
    """Exact moments simulate nothing: the same numbers on every back end, and no back end in the meta."""
    a, b = (_schedule(be, numerics=Numerics(method="exact")) for be in ("numpy", AAS))
    assert a.meta["method"] == "exact" and "backend" not in b.meta
    _rows_equal(a, b, ("sgd", "value"))


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
@pytest.mark.filterwarnings("ignore::smfsym.OrderWarning")
@pytest.mark.parametrize("study", [_schedule, _momentum])
def test_scheme_and_increments_reach_the_models(study):
    """Numerics(scheme=..., increments=...) choose the models' solver (the default: weak2, discrete)."""
    labels = {"montecarlo (weak2, discrete, dt=": Numerics(method="montecarlo"),
              "montecarlo (weak2, dt=": Numerics(method="montecarlo", increments="gaussian"),
              "montecarlo (euler, dt=": Numerics(method="montecarlo", scheme="euler", increments="gaussian")}
    for label, numerics in labels.items():  # the rows' method names the scheme, and "discrete" increments
        rows = study("numpy", n_paths=200, numerics=numerics).rows
        assert all(r["method"].startswith(label) for r in rows), (label, [r["method"] for r in rows])
    with pytest.raises(ValueError, match="`increments`"):
        study("numpy", n_paths=200, numerics=Numerics(method="montecarlo", increments="uniform"))


# -- SVAG and the scaling regimes

def _sgd_problem():
    return smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x])


def _svag(backend, chunk_size=None, n_paths=8192, umap=None, z0=(1.0, 1.0)):
    return simulate_svag(rmsprop(_problem()) if umap is None else umap, 4, list(z0), 0.5, 0.125, n_paths=n_paths,
                         seed=1, save_at=SaveAt(at=[4, 16], functions={"sq": square}, store=False),
                         options=RunOptions(backend=backend, chunk_size=chunk_size))


def _regime(backend, rmap, z0, chunk_size=None, n_paths=8192):
    return simulate_regime(rmap, z0, 16, 0.25, n_paths=n_paths, seed=0,
                           save_at=SaveAt(at=[8, 16], functions={"sq": square}, store=False),
                           options=RunOptions(backend=backend, chunk_size=chunk_size))


REGIMES = {"rmsprop": (malladi_rmsprop, [1.0, 1.0]), "adam": (malladi_adam, [1.0, 0.0, 1.0, 0.1])}


def test_simulate_svag_agrees_with_numpy():
    for kw in (dict(), dict(umap=_sgd_problem(), z0=[[1.0], [0.0]])):  # RMSprop; SGD from two starts sharing samples
        ref, dev = _svag("numpy", **kw), _svag(AAS, **kw)
        assert dev.extra["backend"] == AAS
        z = zscores(ref, dev)
        assert z.max() < Z_MAX, z


@pytest.mark.parametrize("name", sorted(REGIMES))
def test_simulate_regime_agrees_with_numpy(name):
    build, z0 = REGIMES[name]
    rmap = build(_sgd_problem())
    z = zscores(_regime("numpy", rmap, z0), _regime(AAS, rmap, z0))
    assert z.max() < Z_MAX, z


def test_svag_and_regime_runs_give_the_same_numbers_in_any_chunking():
    n = 2 * 4096 + 7
    a, b = _svag(AAS, 4096, n), _svag(AAS, 3 * 4096, n)
    rmap, z0 = malladi_adam(_sgd_problem()), REGIMES["adam"][1]
    c, d = _regime(AAS, rmap, z0, 4096, n), _regime(AAS, rmap, z0, 3 * 4096, n)
    for u, v in ((a, b), (c, d)):
        for name in ("state", "sq"):
            np.testing.assert_array_equal(u.stats[name]["mean"], v.stats[name]["mean"])
            np.testing.assert_array_equal(u.stats[name]["sem"], v.stats[name]["sem"])


def _svag_study(backend):
    return svag_study(_sgd_problem(), x**2, [1.0], 1.0, 0.5, ls=[2, 8], n_paths=8192, seed=4, options=_opts(backend))


def _scaling(backend, optimizer="rmsprop"):
    return scaling_rule_study(_sgd_problem(), x**2, [1.0], 1.0, optimizer=optimizer, eta=0.25, ks=[1, 4],
                              n_paths=4096, seed=2, options=_opts(backend))


@pytest.mark.filterwarnings("ignore::smfsym.OrderWarning")
def test_svag_study_agrees_with_numpy():
    """SVAG and the SME's coupled reference on the device: E phi and the reference within Z_MAX SE."""
    ref, dev = _svag_study("numpy"), _svag_study(AAS)
    assert dev.meta["backend"] == AAS and "backend" not in ref.meta
    _agree(ref, dev, (("value", "value_se"), ("sme", "sme_se")))


@pytest.mark.parametrize("optimizer", ["sgd", "rmsprop"])
def test_scaling_rule_study_agrees_with_numpy(optimizer):
    ref, dev = _scaling("numpy", optimizer), _scaling(AAS, optimizer)
    assert dev.meta["backend"] == AAS
    _agree(ref, dev, (("value", "se"),))


@pytest.mark.filterwarnings("ignore::smfsym.OrderWarning")
def test_svag_and_scaling_studies_give_the_same_numbers_in_any_chunking(monkeypatch):
    whole = (_svag_study(AAS), _scaling(AAS))
    monkeypatch.setattr(driver, "device_chunk_blocks", _one_block)
    blocks = (_svag_study(AAS), _scaling(AAS))
    _rows_equal(whole[0], blocks[0], ("value", "value_se", "sme", "sme_se"))
    _rows_equal(whole[1], blocks[1], ("value", "se"))


def test_svag_study_of_rmsprop_computes_its_sme_reference_on_the_backend():
    """RMSprop's SME has a matrix square root of Sigma, which the device computes too
    (tests/montecarlo/test_backends_sme.py): the study's SVAG values and its SME reference agree with numpy's
    within Z_MAX SE; with the reference given, it is used as it is."""
    args = (rmsprop(_problem()), x**2, [1.0, 1.0], 0.5, 0.125)
    with pytest.warns(smfsym.OrderWarning):
        dev = svag_study(*args, ls=[2, 4], n_paths=4096, options=_opts(AAS))
        ref = svag_study(*args, ls=[2, 4], n_paths=4096, options=_opts("numpy"))
    assert dev.meta["backend"] == AAS and dev.meta["reference"].startswith("sme1")
    _agree(ref, dev, pairs=(("value", "value_se"), ("sme", "sme_se")))
    st = svag_study(*args, ls=[2, 4], reference=(0.5, 0.0), n_paths=4096, options=_opts(AAS))
    assert [r["l"] for r in st.rows] == [2, 4] and all(r["sme"] == 0.5 for r in st.rows)


def test_progress_keyword_still_works_and_options_take_the_backend():
    with pytest.warns(DeprecationWarning, match=r"svag_study\(progress=...\): run settings go in"):
        svag_study(_sgd_problem(), x, [1.0], 1.0, 0.5, ls=[1, 2], reference=(0.5, 0.0), n_paths=64, progress=False)
    with pytest.raises(TypeError, match="`progress` is given twice"):
        scaling_rule_study(_sgd_problem(), x**2, [1.0], 1.0, optimizer="sgd", eta=0.25, ks=[1, 4], n_paths=64,
                           options=RunOptions(), progress=False)
    with pytest.raises(ValueError, match="`on_nonfinite`: svag_study does not take it"):
        svag_study(_sgd_problem(), x, [1.0], 1.0, 0.5, ls=[1, 2], options=RunOptions(on_nonfinite="mask"))


def test_momentum_multipoint_refuses_a_backend_by_name():
    """Exact moments only: nothing to run on a device, so the option is refused (never silently ignored)."""
    args = (smfsym.Problem((1 + smfsym.rademacher("r")) * x**2 / 2, [x]), [[1.0], [-1.0]], 0.4, [1 / 25, 1 / 100], 1.5)
    with pytest.raises(ValueError, match="`backend`: momentum_multipoint computes exact moments.*'array_api_strict'"):
        momentum_multipoint(*args, options=RunOptions(backend=AAS))
    with pytest.raises(ValueError, match="`on_nonfinite`: momentum_multipoint does not take it"):
        momentum_multipoint(*args, options=RunOptions(on_nonfinite="mask"))


# -- specs and the command line

#: the shipped specs' [check] is their last table: these lines extend it
MONTE_CARLO = '\nmethod = "montecarlo"\nscheme = "euler"\nincrements = "gaussian"\n'


def _spec_file(tmp_path, name: str, extra: str = MONTE_CARLO):
    from smfsym.cli import SHIPPED

    text = (SHIPPED / f"{name}.toml").read_text()
    assert text.rstrip().splitlines()[-1].split("=")[0].strip() in ("schedule", "friction")  # [check] comes last
    path = tmp_path / f"{name}.toml"
    path.write_text(text + extra)
    return path


@pytest.mark.filterwarnings("ignore::smfsym.OrderWarning")
@pytest.mark.parametrize("name", ["cosine_schedule", "heavy_ball"])
def test_spec_scheme_and_increments_reach_the_study(name, tmp_path):
    """[check] scheme = "euler", increments = "gaussian": the models run Euler with Gaussian increments."""
    from smfsym.spec import load_spec
    from smfsym.spec.checks import run_check_study

    spec = load_spec(_spec_file(tmp_path, name))
    c = dict(spec.check, n_paths=256, etas=[0.25, 0.125] if name == "cosine_schedule" else [1 / 16, 1 / 64],
             models=["smf2"])
    study = run_check_study(spec, c, RunOptions(progress=False))
    assert study.meta["method"] == "montecarlo"
    assert all(r["method"].startswith("montecarlo (euler, dt=") for r in study.rows), study.rows


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::smfsym.OrderWarning")
@pytest.mark.parametrize("name,etas", [("cosine_schedule", "0.25,0.125"), ("heavy_ball", "0.0625,0.015625")])
def test_command_line_checks_a_shipped_optimizer_spec_on_the_backend(name, etas, tmp_path, capsys):
    """`smfsym check <shipped spec> --backend array_api_strict`: as shipped (exact moments: nothing to run on
    the device, the same orders as numpy) and with its [check] turned to Monte Carlo (Euler, Gaussian)."""
    from smfsym.cli import main

    out = tmp_path / "exact"
    assert main(["check", name, "--backend", AAS, "--n-paths", "512", "--quiet", "-o", str(out)]) == 0
    assert json.loads((out / "summary.json").read_text())["method"] == "exact"
    out = tmp_path / "mc"
    assert main(["check", str(_spec_file(tmp_path, name)), "--backend", AAS, "--n-paths", "4096", "--etas", etas,
                 "--models", "smf1", "--quiet", "--yes", "-o", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == "montecarlo" and len(summary["rows"]) == 2
    assert all(r["method"].startswith("montecarlo (euler, dt=") for r in summary["rows"]), summary["rows"]
    assert json.loads((out / "weak_error.json").read_text())["fields"]["meta"]["backend"] == AAS


# -- piecewise schedules (sympy prints a Piecewise with numpy's select and logical_and.reduce)

def test_piecewise_expressions_evaluate_on_the_backend():
    from smfsym.backends import get_backend
    from smfsym.symbolic.lambdify import CompiledExprs

    t = sp.Symbol("t")
    u = sp.Piecewise((1, t < sp.Rational(1, 4)), (2 * x, (t < 1) & (x > 0)), (3 * x, (t < 2) | (x < -5)),
                     (sp.Rational(1, 16), True))
    ts, xs = np.array([0.1, 0.5, 0.5, 1.5, 3.0, 3.0]), np.array([1.0, 2.0, -1.0, -1.0, -6.0, 1.0])
    host = CompiledExprs([u * x], (t, x), {}).evaluate_list([ts, xs])[0]
    b = get_backend(AAS)
    dev = CompiledExprs([u * x], (t, x), {}, backend=b).evaluate_list([b.asarray(ts), b.asarray(xs)], mean_vals=[],
                                                                      shape=(6,))[0]
    assert b.to_numpy(dev).tolist() == host.tolist() == [1.0, 8.0, 3.0, 3.0, 108.0, 1 / 16]


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
@pytest.mark.filterwarnings("ignore::smfsym.OrderWarning")
def test_step_decay_schedule_agrees_with_numpy():
    from smfsym.optimizers import step_decay

    kw = dict(models=["smf2"], n_paths=4096, seed=5, numerics=MC)
    ref, dev = (schedule_weak_error(_problem(), step_decay(0.5, 0.25), x**2, [1.0], 0.5, [0.125, 0.0625],
                                    options=_opts(b), **kw) for b in ("numpy", AAS))
    _agree(ref, dev)


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
def test_the_device_step_compiles_the_built_ins_unexpanded_update_as_numpy_does():
    """Adam's update at the loss's unexpanded gradient (a (a.x - y), not its d^2 expanded terms): the device
    step compiles what the numpy step compiles, fewer array operations (kernels on a GPU) than the expanded
    update (a 1.7x faster step on array_api_strict, BENCHMARKS.md)."""
    from smfsym.backends import get_backend
    from smfsym.optimizers import adam
    from smfsym.optimizers.update_map import DeviceUpdateMapStep, UpdateMapStep

    a = [smfsym.normal(f"a{i}") for i in range(3)]
    xs = sp.symbols("x0:3")
    p = smfsym.Problem((sum(ai * xi for ai, xi in zip(a, xs)) - smfsym.normal("e")) ** 2 / 2, list(xs))
    umap = adam(p, c1=1, c2=1, eps=sp.Rational(1, 10))
    dev = DeviceUpdateMapStep(umap, 0.05, {}, get_backend(AAS))
    host = UpdateMapStep(umap, 0.05, {})
    assert dev.update.op_count == host.update.op_count
    saved, umap.step_update = umap.step_update, None  # the expanded update, which the device step compiled before
    try:
        expanded = DeviceUpdateMapStep(umap, 0.05, {}, get_backend(AAS))
    finally:
        umap.step_update = saved
    assert dev.update.op_count < expanded.update.op_count
