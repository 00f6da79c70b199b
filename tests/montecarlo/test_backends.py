"""The array back-end layer (issue 19) on the CPU: the registry, and the device code path on
``array_api_strict`` (arrays on its stand-in device, which numpy refuses to convert: a hidden host copy
in the loop fails here). Statistics are compared with numpy's within ``Z_MAX`` = 5 standard errors of
the difference (independent streams: the numbers differ between back ends by design)."""
import importlib
import warnings

import numpy as np
import pytest
import sympy as sp

import smfsym
from smfsym import RunOptions, SaveAt
from smfsym.backends import BACKENDS, ArrayApiStrictBackend, Float32Warning, get_backend
from smfsym.numerics.solvers import EulerMaruyama

from backend_cases import flow, problem  # noqa: F401 (fixtures)
from backend_cases import X0, Z_MAX, run_sgd, run_smf, square, zscores
from fake_cupy import fake_cupy  # noqa: F401 (fixture)

AAS = "array_api_strict"


# -- registry

def test_registry_names_instances_and_classes():
    assert {"numpy", "cupy", AAS} <= set(BACKENDS)
    for name in BACKENDS:
        assert get_backend(name).name == name
    b = ArrayApiStrictBackend()
    assert get_backend(b) is b
    assert get_backend(ArrayApiStrictBackend).name == AAS
    assert RunOptions(backend="cupy").backend == "cupy"  # naming a back end imports nothing


def test_a_backend_pickles_without_its_module():
    import pickle

    b = ArrayApiStrictBackend()
    b.zeros(2)  # imported
    c = pickle.loads(pickle.dumps(RunOptions(backend=b))).backend
    assert c.name == AAS and c.dtype_name == "float64"
    assert b.to_numpy(b.asarray([1.0])).tolist() == c.to_numpy(c.asarray([1.0])).tolist() == [1.0]


def test_unknown_backend_names_the_argument_and_the_known_names():
    with pytest.raises(ValueError, match=r"`backend` must be one of \['array_api_strict', 'cupy', 'jax', 'numpy'\]"):
        get_backend("cuda")
    with pytest.raises(ValueError, match="`backend`"):
        RunOptions(backend="torchh")


def test_missing_library_names_the_extra(monkeypatch):
    real = importlib.import_module

    def fake(name, *args):
        if name == "cupy":
            raise ImportError("No module named 'cupy'")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", fake)
    with pytest.raises(ImportError, match=r'pip install "smfsym\[gpu\]"'):
        get_backend("cupy").xp


def test_the_stand_in_device_refuses_host_conversion():
    b = get_backend(AAS)
    with pytest.raises(RuntimeError, match="NumPy array"):
        np.asarray(b.zeros(3))
    assert b.to_numpy(b.asarray([1.0, 2.0])).tolist() == [1.0, 2.0]


def test_float32_only_when_asked_with_a_warning(flow):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert get_backend(AAS).dtype_name == "float64"
    with pytest.warns(Float32Warning, match="1e-5"):
        b32 = ArrayApiStrictBackend(dtype="float32")
    r = run_smf(flow, b32, n_paths=4096)
    assert r.success and r.extra["dtype"] == "float32"
    with pytest.raises(ValueError, match="`dtype`"):
        ArrayApiStrictBackend(dtype="float16")


# -- statistics against numpy

@pytest.mark.parametrize("scheme", ["euler", "weak2", "tamed"])
@pytest.mark.parametrize("increments", ["gaussian", "discrete"])
def test_simulate_agrees_with_numpy(flow, scheme, increments):
    ref = run_smf(flow, "numpy", scheme, increments)
    dev = run_smf(flow, AAS, scheme, increments)
    assert dev.extra["backend"] == AAS and dev.success
    z = zscores(ref, dev)
    assert z.max() < Z_MAX, z


def test_simulate_sgd_agrees_with_numpy(problem):
    z = zscores(run_sgd(problem, "numpy"), run_sgd(problem, AAS))
    assert z.max() < Z_MAX, z


def test_sgd_with_finite_and_uniform_laws(problem):
    x, y = sp.symbols("x y")
    r, u = smfsym.rademacher("r"), smfsym.uniform("u", 0, 2)
    p = smfsym.Problem((x - r) ** 2 / 2 + (y - u) ** 2 / 2 + x * y / 4, [x, y])
    runs = [smfsym.simulate_sgd(p, x0=[1.0, -1.0], n_steps=5, eta=0.2, n_paths=8192, seed=4, batch_size=1,
                                save_at=SaveAt(functions={"sq": square}, store=False), options=RunOptions(backend=b))
            for b in ("numpy", AAS)]
    z = zscores(*runs)
    assert z.max() < Z_MAX, z


def test_n_point_motion_agrees_with_numpy(flow):
    x0 = np.array([X0, [0.0, 1.0, 1.0]])
    ref, dev = run_smf(flow, "numpy", x0=x0), run_smf(flow, AAS, x0=x0, store=True)
    assert dev.states.shape == (2, 8192, 2, 3)
    z = zscores(ref, dev)
    assert z.max() < Z_MAX, z


# -- the same numbers whatever the chunking, on one back end

@pytest.mark.parametrize("scheme,increments", [("euler", "gaussian"), ("weak2", "discrete")])
def test_same_numbers_across_chunk_sizes(flow, scheme, increments):
    n = 2 * 4096 + 100  # a partial last block
    a = run_smf(flow, AAS, scheme, increments, n_paths=n, chunk_size=4096, store=True)
    b = run_smf(flow, AAS, scheme, increments, n_paths=n, chunk_size=3 * 4096, store=True)
    np.testing.assert_array_equal(a.states, b.states)
    for name in ("state", "sq"):
        np.testing.assert_array_equal(a.stats[name]["mean"], b.stats[name]["mean"])
        np.testing.assert_array_equal(a.stats[name]["sem"], b.stats[name]["sem"])


def test_sgd_same_numbers_across_chunk_sizes(problem):
    a, b = (run_sgd(problem, AAS, n_paths=2 * 4096 + 7, chunk_size=c) for c in (4096, 3 * 4096))
    np.testing.assert_array_equal(a.stats["sq"]["mean"], b.stats["sq"]["mean"])


# -- studies

@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
@pytest.mark.filterwarnings("ignore::smfsym.OrderWarning")
def test_weak_error_study_runs_on_the_back_end():
    x = sp.Symbol("x")
    p = smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x])
    kw = dict(models=["smf1"], n_paths=8192, seed=3, numerics=smfsym.Numerics(method="montecarlo"))
    ref = smfsym.weak_error(p, x**2, [1.0], 1.0, [0.2, 0.1], options=RunOptions(progress=False), **kw)
    dev = smfsym.weak_error(p, x**2, [1.0], 1.0, [0.2, 0.1], options=RunOptions(progress=False, backend=AAS), **kw)
    for r0, r1 in zip(ref.rows, dev.rows):
        for key, se in (("value", "value_se"), ("sgd", "sgd_se")):
            assert abs(r0[key] - r1[key]) < Z_MAX * np.hypot(r0[se], r1[se]), (key, r0, r1)


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
@pytest.mark.filterwarnings("ignore::smfsym.OrderWarning")
def test_update_map_weak_error_runs_on_the_back_end():
    """RMSprop's study on the stand-in device (the optimizer and the SMF's coupled runs there): the same
    statistics as numpy within Z_MAX standard errors of the difference, row by row."""
    from smfsym.optimizers import rmsprop

    x = sp.Symbol("x")
    m = rmsprop(smfsym.Problem((x - smfsym.normal("xi", std=sp.Rational(1, 2))) ** 2 / 2, [x]))
    kw = dict(models=["gf", "smf1"], n_paths=8192, seed=3)
    args = (m, x**2, [1.0, 1.0], 0.25, [0.125, 0.0625])
    ref = smfsym.update_map_weak_error(*args, options=RunOptions(progress=False), **kw)
    dev = smfsym.update_map_weak_error(*args, options=RunOptions(progress=False, backend=AAS), **kw)
    assert dev.meta["backend"] == AAS and ref.meta["backend"] == "numpy"
    for r0, r1 in zip(ref.rows, dev.rows):
        for key, se in (("value", "value_se"), ("sgd", "sgd_se")):
            assert abs(r0[key] - r1[key]) < Z_MAX * np.hypot(r0[se], r1[se]) + 1e-12, (key, r0, r1)


# -- blow-up, refusals

class CustomEuler(EulerMaruyama):
    """A user's scheme: numpy only (the device runs the built-in euler, weak2 and tamed steps)."""

    name = "custom_euler"


def host_values(X):
    return np.zeros(X.shape[0])


def test_blow_up_is_reported_as_on_numpy():
    x = sp.Symbol("x")
    p = smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x])
    kw = dict(x0=[1.0], n_steps=40, eta=3.0, n_paths=4096, seed=0, batch_size=1)
    for b in ("numpy", AAS):
        with pytest.raises(smfsym.BlowUpError, match=r"non-finite state at step \d+ \(t = [0-9.e+-]+\)"):
            smfsym.simulate_sgd(p, **kw, options=RunOptions(backend=b, blowup_threshold=1e3))
    res = [smfsym.simulate_sgd(p, **kw, options=RunOptions(backend=b, blowup_threshold=1e3, on_nonfinite="mask"))
           for b in ("numpy", AAS)]
    for r in res:
        assert not r.success and r.n_nonfinite == 4096 and "became non-finite" in r.message
    # |x_k| grows like 2^k: every path is lost within a step or two of the same step on both back ends
    assert abs(res[0].extra["first_nonfinite_step"] - res[1].extra["first_nonfinite_step"]) <= 3


def test_refusals_name_the_backend(flow, problem):
    with pytest.raises(TypeError, match=r"`functions\['bad'\]` must return an array of the back end"):
        smfsym.simulate(flow, x0=X0, t_end=0.1, eta=0.1, n_paths=10, save_at=SaveAt(functions={"bad": host_values}),
                        options=RunOptions(backend=AAS))
    with pytest.raises(ValueError, match="`executor`"):
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(1) as ex:
            smfsym.simulate(flow, x0=X0, t_end=0.1, eta=0.1, n_paths=10, options=RunOptions(backend=AAS, executor=ex))
    with pytest.raises(ValueError, match="`scheme`: backend='array_api_strict'"):
        smfsym.simulate(flow, x0=X0, t_end=0.1, eta=0.1, n_paths=10, scheme=CustomEuler, options=RunOptions(backend=AAS))
    with pytest.raises(ValueError, match="weak order-2 scheme needs the diffusion as an explicit matrix"):
        smfsym.simulate(smfsym.sme(problem, order=1), x0=X0, t_end=0.1, eta=0.1, n_paths=10, scheme="weak2",
                        options=RunOptions(backend=AAS))
    # a study that does not run on the back ends yet refuses the option by name (never a silent numpy run)
    from smfsym.studies.options import study_settings

    with pytest.raises(ValueError, match="`backend`: multipoint_rates does not take it; got 'array_api_strict'"):
        study_settings("multipoint_rates", None, RunOptions(backend=AAS), {}, supported=("progress",))


# -- the CuPy back end's wiring, on a stand-in module (tests/fake_cupy.py: numpy with CuPy 13's names only)

@pytest.mark.parametrize("scheme,increments", [("euler", "discrete"), ("weak2", "gaussian")])
def test_cupy_backend_wiring_on_a_stand_in(fake_cupy, flow, scheme, increments):
    dev = run_smf(flow, "cupy", scheme, increments)
    assert dev.extra["backend"] == "cupy"
    # chunks from the device's free memory (half of the stand-in's 1 GiB), not the host's 64 MiB
    assert dev.extra["chunk_paths"] > 8192
    z = zscores(run_smf(flow, "numpy", scheme, increments), dev)
    assert z.max() < Z_MAX, z


def test_cupy_sgd_wiring_and_a_path_too_large_for_the_device(fake_cupy, problem):
    z = zscores(run_sgd(problem, "numpy"), run_sgd(problem, "cupy"))
    assert z.max() < Z_MAX, z
    fake_cupy.free[0] = 1000
    with pytest.raises(MemoryError, match="one path needs about .* on backend 'cupy'"):
        run_sgd(problem, "cupy")


def test_multipoint_study_on_the_back_end():
    x = sp.Symbol("x")
    p = smfsym.Problem((1 + smfsym.rademacher("r")) * x**2 / 2, [x])
    kw = dict(eta=0.1, t_end=1.0, psi="covariance", n_paths=8192, models=["smf2"], seed=5)
    ref, dev = (smfsym.multipoint(p, [[-1.0], [1.0]], **kw, options=RunOptions(backend=b, progress=False))
                for b in ("numpy", AAS))
    for m in ("sgd", "smf2"):
        a, b = ref.value(m, "covariance"), dev.value(m, "covariance")
        assert abs(a["value"] - b["value"]) < Z_MAX * np.hypot(a["se"], b["se"]), (m, a, b)
    # the printed study says where its numbers came from (the same seed gives other numbers there)
    assert dev.header().endswith("8,192 paths on array_api_strict (float64)"), dev.header()
    assert ref.header().endswith("8,192 paths"), ref.header()


def test_command_line_backend_option(tmp_path, capsys):
    from smfsym.cli import main

    with pytest.raises(SystemExit):
        main(["check", "rademacher", "--backend", "cuda", "-o", str(tmp_path / "o")])
    assert "invalid choice: 'cuda'" in capsys.readouterr().err
    assert main(["check", "rademacher", "--backend", AAS, "--workers", "2", "-o", str(tmp_path / "o")]) != 0
    assert "--backend runs the Monte Carlo on one device" in capsys.readouterr().err


# -- data-set noise and data means on the device

@pytest.fixture(scope="module")
def dataset_flow():
    d, M = 3, 300
    rng = np.random.default_rng(0)
    data = np.column_stack([rng.normal(size=(M, d)), rng.choice([-1.0, 1.0], M)])
    syms = smfsym.empirical(data, [f"z{i}" for i in range(d)] + ["y"])
    x = sp.symbols(f"x0:{d}")
    loss = sp.log(1 + sp.exp(-syms[d] * sum(a * b for a, b in zip(x, syms[:d]))))
    return smfsym.smf(smfsym.Problem(loss, x), order=1)


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
def test_dataset_smf_euler_agrees_with_numpy(dataset_flow):
    runs = [smfsym.simulate(dataset_flow, x0=[0.5, -0.5, 0.2], t_end=0.3, eta=0.2, dt=0.05, n_paths=8192, seed=1,
                            save_at=SaveAt(at=[0.15, 0.3], functions={"sq": square}, store=False),
                            options=RunOptions(backend=b)) for b in ("numpy", AAS)]
    z = zscores(*runs)
    assert z.max() < Z_MAX, z


def test_what_the_device_does_not_run_yet_is_refused_by_name(dataset_flow):
    with pytest.raises(ValueError, match="data-set noise with 'euler' and 'weak2'; got 'tamed'"):
        smfsym.simulate(dataset_flow, x0=[0.5, -0.5, 0.2], t_end=0.1, eta=0.2, n_paths=10, scheme="tamed",
                        options=RunOptions(backend=AAS))
    x = sp.Symbol("x")
    flow = smfsym.smf(smfsym.Problem(sp.log(1 + sp.exp(-smfsym.normal("a") * x)), [x]), order=1)
    with pytest.raises(ValueError, match="quadrature over a continuous law"):
        smfsym.simulate(flow, x0=[0.5], t_end=0.1, eta=0.1, n_paths=10, options=RunOptions(backend=AAS))


def test_discrete_increments_on_the_device_have_the_declared_laws():
    from smfsym.montecarlo.device import device_generators
    from smfsym.montecarlo.increments import draw_device

    b = get_backend(AAS)
    gens = device_generators(b, np.random.SeedSequence(3), 0, 2)
    Z = b.to_numpy(draw_device(b, gens, [4096, 4096], 2, 5, ("three", "two")))
    assert Z.shape == (2, 5, 8192)
    three, two = Z[0].ravel(), Z[1].ravel()
    assert set(np.round(three**2, 12)) == {0.0, 3.0} and set(two) == {-1.0, 1.0}
    n = three.size
    # frequencies within 5 binomial standard errors: P(0) = 2/3, P(+1) = 1/2
    assert abs(np.mean(three == 0) - 2 / 3) < 5 * np.sqrt(2 / 9 / n)
    assert abs(np.mean(two == 1) - 0.5) < 5 * np.sqrt(0.25 / n)


@pytest.mark.parametrize("rule", ["schedule", "momentum", "nesterov"])
def test_optimizer_rules_agree_with_numpy(problem, rule):
    from smfsym.optimizers import constant, simulate_momentum_sgd, simulate_sgd_schedule

    kw = dict(n_paths=8192, seed=6, batch_size=1, save_at=SaveAt(at=[3, 6], functions={"sq": square}, store=False))
    runs = []
    for b in ("numpy", AAS):
        if rule == "schedule":
            runs.append(simulate_sgd_schedule(problem, constant(), X0, 6, 0.1, options=RunOptions(backend=b), **kw))
        else:
            runs.append(simulate_momentum_sgd(problem, X0, 6, 0.1, 0.5, nesterov=rule == "nesterov",
                                              options=RunOptions(backend=b), **kw))
    z = zscores(*runs)
    assert z.max() < Z_MAX, z


def test_cupy_fuse_option_wiring_on_a_stand_in(fake_cupy, flow):
    from smfsym.backends import CupyBackend

    b = CupyBackend(fuse=True)
    dev = run_smf(flow, b, "weak2", "discrete", n_paths=4096)
    assert fake_cupy.fused and b.fuse_failures == 0
    z = zscores(run_smf(flow, "numpy", "weak2", "discrete", n_paths=4096), dev)
    assert z.max() < Z_MAX, z


# -- the device steps are the numpy steps: same increments in, same states out (to rounding)

@pytest.mark.parametrize("scheme", ["euler", "weak2", "tamed"])
@pytest.mark.parametrize("npoint", [False, True])
def test_device_step_equals_the_numpy_step_on_the_same_increments(flow, scheme, npoint):
    from smfsym.numerics.solvers import get_solver
    from smfsym.simulation.sde import device_stepper, numeric_sde

    solver, b = get_solver(scheme), get_backend(AAS)
    vals = {flow.eta: 0.1}
    dev = device_stepper(flow, vals, solver, "gaussian", b).dev
    rng = np.random.default_rng(0)
    P, m = 64, dev.m
    X = rng.normal(size=(P, 2, 3) if npoint else (P, 3))
    Z = rng.normal(size=(P, solver.n_draws, m))
    ref = solver.step(numeric_sde(flow, vals), X, 0.01, Z)
    out = getattr(dev, scheme)(b.asarray(X), 0.01, b.asarray(np.transpose(Z, (1, 2, 0))))
    np.testing.assert_allclose(b.to_numpy(out), ref, rtol=1e-12, atol=1e-14)


def test_device_dataset_step_equals_the_numpy_step(dataset_flow):
    from smfsym.numerics.solvers import get_solver
    from smfsym.simulation.sde import device_stepper, numeric_sde

    solver, b = get_solver("euler"), get_backend(AAS)
    vals = {dataset_flow.eta: 0.2}
    dev = device_stepper(dataset_flow, vals, solver, "gaussian", b).dev
    rng = np.random.default_rng(1)
    X, Z = rng.normal(size=(32, 3)), rng.normal(size=(32, 1, dev.m))
    ref = solver.step(numeric_sde(dataset_flow, vals), X, 0.05, Z)
    out = dev.euler(b.asarray(X), 0.05, b.asarray(np.transpose(Z, (1, 2, 0))))
    np.testing.assert_allclose(b.to_numpy(out), ref, rtol=1e-11, atol=1e-13)


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
@pytest.mark.parametrize("name", ["rmsprop", "adam"])
def test_update_maps_agree_with_numpy(problem, name):
    umap = getattr(smfsym, name)(problem)
    dim = len(umap.state)
    z0 = np.concatenate([X0, np.full(dim - 3, 0.1)])
    runs = [smfsym.simulate_update_map(umap, z0, 6, 0.1, n_paths=8192, seed=8,
                                       save_at=SaveAt(at=[3, 6], functions={"sq": square}, store=False),
                                       options=RunOptions(backend=b)) for b in ("numpy", AAS)]
    z = zscores(*runs)
    assert z.max() < Z_MAX, z


@pytest.mark.slow
def test_command_line_check_runs_on_the_back_end(tmp_path):
    import json

    from smfsym.cli import main

    out = tmp_path / "o"
    assert main(["check", "rademacher", "--backend", AAS, "--n-paths", "4096", "--models", "smf1", "--quiet",
                 "-o", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows"] and summary["multipoint"]


def test_float32_statistics_are_summed_in_float64(flow):
    """States near 1e30 are finite in float32, but their squared spread is not: the standard errors came back
    inf from a run that said 'ok'. The block sums are now taken in float64."""
    with pytest.warns(Float32Warning):
        b32 = ArrayApiStrictBackend(dtype="float32")
    r32 = smfsym.simulate(flow, [1e30, -0.5, 0.2], 0.3, eta=0.1, n_paths=300, seed=1, options=RunOptions(backend=b32))
    r64 = smfsym.simulate(flow, [1e30, -0.5, 0.2], 0.3, eta=0.1, n_paths=300, seed=1, options=RunOptions(backend=AAS))
    assert r32.success and np.all(np.isfinite(r32.sem()))
    np.testing.assert_allclose(r32.sem(), r64.sem(), rtol=1e-5)  # float32 states: about 7 digits


def test_backend_arguments_are_normalised_or_refused_by_name():
    from smfsym.backends import Backend, CupyBackend

    with pytest.warns(Float32Warning):
        b = ArrayApiStrictBackend(dtype=np.dtype("float32"))  # used to crash on first use
    assert b.dtype_name == "float32" and b.dtype == b.xp.float32
    assert ArrayApiStrictBackend(dtype=np.float64).dtype_name == "float64"
    with pytest.raises(ValueError, match="`dtype` must be 'float64' or 'float32'; got 'float16'"):
        ArrayApiStrictBackend(dtype=np.float16)
    with pytest.raises(TypeError, match="`fuse` must be True or False; got 'no'"):
        CupyBackend(fuse="no")  # bool("no") is True
    with pytest.raises(ValueError, match="`backend` must be one of"):
        get_backend(Backend)  # the abstract class names no library


@pytest.mark.parametrize("backend", ["numpy", AAS])
def test_a_blow_up_names_only_ways_out_the_run_takes(backend):
    """SGD has no `dt` and no scheme; the device used to send users to numpy for a tamed scheme it has."""
    y, z = sp.Symbol("y"), smfsym.normal("z")
    p = smfsym.Problem((y * z) ** 4 / 4 + y**2 / 2, [y])
    opts = RunOptions(backend=backend)
    with pytest.raises(smfsym.BlowUpError, match=r"non-finite state at step 5 .*\); reduce `eta` or pass "
                                                 r"on_nonfinite='mask' to drop those paths\.$") as info:
        smfsym.simulate_sgd(p, [3.0], 200, 0.5, n_paths=100, seed=0, options=opts)
    assert "dt" not in str(info.value) and "scheme" not in str(info.value)
    with pytest.raises(smfsym.BlowUpError, match=r"at step 4 \(t = 0.2\).*reduce `dt`/`eta`, use a tamed scheme "
                                                 r"\(scheme='tamed'\) or pass on_nonfinite='mask'") as info:
        smfsym.simulate(smfsym.smf(p), [3.0], 2.0, eta=0.5, n_paths=100, seed=0, options=opts)
    assert "backend='numpy'" not in str(info.value)


@pytest.mark.filterwarnings("ignore::smfsym.OrderWarning")
def test_a_saved_study_records_the_back_end_its_numbers_came_from(tmp_path):
    """The same seed gives other numbers on another back end: a saved study read as numpy's was misleading."""
    x = sp.Symbol("x")
    p = smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x])
    kw = dict(models=["smf1"], n_paths=64, seed=3, numerics=smfsym.Numerics(method="montecarlo"))
    dev = smfsym.weak_error(p, x**2, [1.0], 0.4, [0.2, 0.1], options=RunOptions(progress=False, backend=AAS), **kw)
    assert (dev.meta["backend"], dev.meta["dtype"]) == (AAS, "float64")
    dev.save(tmp_path / "w.json")
    assert smfsym.load_study(tmp_path / "w.json").meta["backend"] == AAS
    ref = smfsym.weak_error(p, x**2, [1.0], 0.4, [0.2, 0.1], options=RunOptions(progress=False), **kw)
    assert "backend" not in ref.meta  # numpy, the default, as before
    mp = smfsym.multipoint(p, [[1.0], [-1.0]], eta=0.1, t_end=0.2, n_paths=64, seed=0,
                           options=RunOptions(progress=False, backend=AAS))
    assert mp.meta["backend"] == AAS


def test_a_host_back_end_takes_paths_larger_than_its_chunk_target():
    """On the host the 64 MiB chunk size is a target, as on numpy (a 200,000-particle mean field was refused
    on array_api_strict and ran on numpy); a device refuses a path larger than its free memory."""
    from smfsym.montecarlo.device import device_chunk_blocks

    class Host:
        name = "host"

        def free_memory(self):
            return None

    class Device(Host):
        name = "device"

        def free_memory(self):
            return 2**20

    assert device_chunk_blocks(Host(), 2**27, None, 64 * 2**20) == 1
    with pytest.raises(MemoryError, match="one path needs about 128.0 MiB of working memory on backend 'device'"):
        device_chunk_blocks(Device(), 2**27, None, 64 * 2**20)


@pytest.mark.parametrize("backend", ["numpy", AAS])
def test_streamed_functions_that_cannot_serve_are_named(flow, backend):
    def run(fn):
        return smfsym.simulate(flow, X0, 0.1, eta=0.1, n_paths=50, seed=0,
                               save_at=SaveAt(at=[0.1], functions={"g": fn}, store=False),
                               options=RunOptions(backend=backend))

    with pytest.raises(ValueError, match=r"`functions\['g'\]` must return one value per path, an array of shape "
                                         r"\(50, \.\.\.\) for states of 50 paths; got shape \(3,\)"):
        run(lambda X: X[:3, 0])
    if backend == AAS:  # numpy on device arrays: the library's refusal, named
        with pytest.raises(TypeError, match=r"`functions\['g'\]` failed on arrays of the back end 'array_api_strict'"):
            run(lambda X: np.sum(X, axis=-1))


def test_a_device_array_as_x0_is_named():
    xp = pytest.importorskip("array_api_strict")
    flow_ = smfsym.smf(smfsym.Problem((sp.Symbol("x") - smfsym.normal("xi")) ** 2 / 2, [sp.Symbol("x")]))
    on_device = xp.asarray([1.0], device=xp.Device("device1"))
    with pytest.raises(TypeError, match=r"`x0` must be on the host .* got an array of array_api_strict on its device"):
        smfsym.simulate(flow_, on_device, 0.1, eta=0.1, n_paths=10, options=RunOptions(backend=AAS))


def test_float32_reports_the_bound_it_applies_and_refuses_an_x0_it_cannot_hold(flow):
    with pytest.warns(Float32Warning):
        b32 = ArrayApiStrictBackend(dtype="float32")
    with pytest.raises(ValueError, match=r"`x0` has entries beyond 3.4e\+38, the largest float32 number"):
        smfsym.simulate(flow, [1e39, -0.5, 0.2], 0.1, eta=0.1, n_paths=20, seed=1, options=RunOptions(backend=b32))
    with pytest.raises(smfsym.BlowUpError, match=r"\|state\| > 3.4e\+38 counts as non-finite"):
        smfsym.simulate(flow, [3e38, -0.5, 0.2], 0.3, eta=0.1, n_paths=20, seed=1, options=RunOptions(backend=b32))
