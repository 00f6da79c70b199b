"""The CuPy back end on a CUDA device (issue 19): skipped without CuPy or a device (CI has none);
``benchmarks/gpu_check.sh`` runs these on a GPU machine. Tolerances as in test_backends.py: ``Z_MAX`` = 5
standard errors of the difference of two independent estimates.

A dry run on the CPU: ``SMFSYM_FAKE_CUPY=1 python -m pytest tests/montecarlo/test_backends_gpu.py`` runs these
on tests/fake_cupy.py (CuPy's names and signatures, numpy underneath; minutes on 2 cores) to catch a wrong name
or signature before a GPU is lent."""
import os
import sys

import numpy as np
import pytest
import sympy as sp

import smfsym
from smfsym import RunOptions
from smfsym.backends import get_backend

from backend_cases import flow, problem  # noqa: F401 (fixtures)
from backend_cases import Z_MAX, assert_weak_error_agrees, run_sgd, run_smf, zscores


if os.environ.get("SMFSYM_FAKE_CUPY"):  # the CPU dry run (tests/fake_cupy.py)
    from fake_cupy import make_fake_cupy

    sys.modules["cupy"] = make_fake_cupy(os.environ["SMFSYM_FAKE_CUPY"] if os.environ["SMFSYM_FAKE_CUPY"] in
                                         ("13", "14", "14.2") else "13")


def _cuda() -> bool:
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001 - not installed, no driver, no device
        return False


pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not _cuda(), reason="needs CuPy and a CUDA device")]


def test_device_memory_is_read():
    b = get_backend("cupy")
    assert b.free_memory() > 2**20
    x = b.asarray([1.0, 2.0])
    assert type(x).__module__.startswith("cupy") and b.to_numpy(x * 2).tolist() == [2.0, 4.0]


@pytest.mark.parametrize("scheme", ["euler", "weak2"])
@pytest.mark.parametrize("increments", ["gaussian", "discrete"])
def test_simulate_on_the_gpu_agrees_with_numpy(flow, scheme, increments):
    dev = run_smf(flow, "cupy", scheme, increments, n_paths=50_000)
    assert dev.success and dev.extra["backend"] == "cupy"
    z = zscores(run_smf(flow, "numpy", scheme, increments, n_paths=50_000), dev)
    assert z.max() < Z_MAX, z


def test_sgd_on_the_gpu_agrees_with_numpy(problem):
    z = zscores(run_sgd(problem, "numpy", n_paths=50_000), run_sgd(problem, "cupy", n_paths=50_000))
    assert z.max() < Z_MAX, z


@pytest.mark.parametrize("scheme,increments", [("euler", "gaussian"), ("weak2", "discrete")])
def test_same_numbers_across_chunk_sizes_on_the_gpu(flow, scheme, increments):
    n = 3 * 4096 + 100
    a = run_smf(flow, "cupy", scheme, increments, n_paths=n, chunk_size=4096, store=True)
    b = run_smf(flow, "cupy", scheme, increments, n_paths=n, chunk_size=4 * 4096, store=True)
    np.testing.assert_array_equal(a.states, b.states)
    np.testing.assert_array_equal(a.stats["sq"]["mean"], b.stats["sq"]["mean"])


def test_weak_error_study_on_the_gpu():
    assert_weak_error_agrees("cupy", n_paths=200_000)


def test_float32_on_the_gpu_warns_and_runs(flow):
    from smfsym.backends import CupyBackend, Float32Warning

    with pytest.warns(Float32Warning):
        b = CupyBackend(dtype="float32")
    r = run_smf(flow, b, n_paths=50_000)
    z = zscores(run_smf(flow, "numpy", n_paths=50_000), r)
    assert r.success and z.max() < Z_MAX, z


@pytest.mark.parametrize("method", ["ddsmf", "sgd"])
def test_meanfield_on_the_gpu_agrees_with_numpy(method):
    """The mean-field DD-SMF and SGD (N = 50 particles of a tanh teacher network) against numpy: the risk's
    mean and variance over paths within Z_MAX SE of the difference; the same numbers across chunk sizes."""
    from smfsym.meanfield import MeanFieldNumerics, MeanFieldOptions

    a, w, out = sp.symbols("a w out")
    z = smfsym.normal("z")
    net = smfsym.MeanFieldProblem(a * sp.tanh(w * z), (a, w), out, (out - sp.tanh(2 * z)) ** 2 / 2)
    th = smfsym.particles(net, 50, seed=0)

    def go(backend, chunk_size=None, n_paths=9000):
        opts = MeanFieldOptions(backend=backend, chunk_size=chunk_size, progress=False)
        if method == "ddsmf":
            return smfsym.simulate_ddsmf(net, th, eta=0.1, t_end=0.5, n_paths=n_paths, seed=2, options=opts,
                                         numerics=MeanFieldNumerics(n_points=8))
        return smfsym.simulate_meanfield_sgd(net, th, eta=0.1, n_steps=5, n_paths=n_paths, seed=2, options=opts)

    dev, ref = go("cupy"), go("numpy")
    assert dev.sim.extra["backend"] == "cupy"
    sd, sr = dev.summary("risk"), ref.summary("risk")
    for stat, se in (("mean", "sem"), ("var", "var_se")):
        assert abs(sd[stat][-1, 0] - sr[stat][-1, 0]) < Z_MAX * np.hypot(sd[se][-1, 0], sr[se][-1, 0]), stat
    np.testing.assert_array_equal(go("cupy", 4096).observables["risk"], go("cupy", 3 * 4096).observables["risk"])


def test_generated_cupy_module_reproduces_smfsym_on_the_gpu(problem, flow, tmp_path):
    """The CuPy twin of tests/io/test_codegen_device.py: the module of ``codegen(..., backend="cupy")`` (cuRAND
    Philox per seed block, states on the GPU) gives smfsym's cupy numbers for the same seed (one chunk each:
    the same kernels on the same sizes, so bitwise)."""
    src = smfsym.codegen(flow, eta=0.1, backend="cupy", path=tmp_path / "sim_gpu.py")
    assert "import cupy" in src
    ns = {}
    exec(compile(src, "sim_gpu.py", "exec"), ns)  # our own generated module
    t, st = ns["simulate"]([1.0, 0.5, -0.5], 0.3, 5000, 3, save_at=[0.15, 0.3])
    ref = smfsym.simulate(flow, [1.0, 0.5, -0.5], 0.3, eta=0.1, n_paths=5000, seed=3, save_at=[0.15, 0.3],
                          options=RunOptions(backend="cupy"))
    assert type(st) is np.ndarray and np.array_equal(st, ref.states)
    t, st = ns["simulate_sgd"]([1.0, 0.5, -0.5], 4, 5000, 3, save_at=[2, 4])
    ref = smfsym.simulate_sgd(problem, [1.0, 0.5, -0.5], 4, 0.1, n_paths=5000, seed=3, save_at=[2, 4],
                              options=RunOptions(backend="cupy"))
    assert np.array_equal(st, ref.states)
    # weak2 with discrete increments (cuRAND's integers), and the SME's numeric root (CuPy's batched eigh)
    st = ns["simulate"]([1.0, 0.5, -0.5], 0.3, 5000, 3, scheme="weak2", increments="discrete")[1]
    ref = smfsym.simulate(flow, [1.0, 0.5, -0.5], 0.3, eta=0.1, n_paths=5000, seed=3, scheme="weak2",
                          increments="discrete", options=RunOptions(backend="cupy"))
    assert np.array_equal(st, ref.states)
    sme = smfsym.sme(problem, order=1)
    ns = {}
    exec(compile(smfsym.codegen(sme, eta=0.1, backend="cupy"), "sme_gpu.py", "exec"), ns)
    st = ns["simulate"]([1.0, 0.5, -0.5], 0.3, 5000, 3)[1]
    ref = smfsym.simulate(sme, [1.0, 0.5, -0.5], 0.3, eta=0.1, n_paths=5000, seed=3, options=RunOptions(backend="cupy"))
    assert np.all(np.isfinite(st)) and np.array_equal(st, ref.states)


@pytest.mark.parametrize("order,scheme,increments", [(1, "euler", "gaussian"), (2, "tamed", "discrete")])
def test_sme_with_the_numeric_root_on_the_gpu_agrees_with_numpy(problem, order, scheme, increments):
    """The SME's noise sqrt(eta) Sigma(x)^{1/2} by CuPy's batched eigh (tests/montecarlo/test_backends_sme.py)."""
    sme = smfsym.sme(problem, order=order)
    assert sme.noise_kind == "sqrt"
    dev = run_smf(sme, "cupy", scheme, increments, n_paths=50_000)
    assert dev.success and dev.extra["backend"] == "cupy"
    z = zscores(run_smf(sme, "numpy", scheme, increments, n_paths=50_000), dev)
    assert z.max() < Z_MAX, z


def test_dataset_weak2_on_the_gpu_agrees_with_numpy():
    from smfsym import SaveAt
    from backend_cases import square

    rng = np.random.default_rng(0)
    data = np.column_stack([rng.normal(size=(200, 2)), rng.choice([-1.0, 1.0], 200)])
    z0, z1, y = smfsym.empirical(data, ["z0", "z1", "y"])
    x = sp.symbols("x0:2")
    flow = smfsym.smf(smfsym.Problem(sp.log(1 + sp.exp(-y * (x[0] * z0 + x[1] * z1))), x), order=1)
    runs = [smfsym.simulate(flow, x0=[0.5, -0.5], t_end=0.4, eta=0.2, dt=0.1, n_paths=50_000, seed=1, scheme="weak2",
                            save_at=SaveAt(at=[0.2, 0.4], functions={"sq": square}, store=False),
                            options=RunOptions(backend=b)) for b in ("numpy", "cupy")]
    z = zscores(*runs)
    assert z.max() < Z_MAX, z


@pytest.mark.filterwarnings("ignore::smfsym.OrderWarning")
def test_schedule_and_momentum_studies_on_the_gpu():
    """The CuPy twin of tests/optimizers/test_optimizer_backends.py: a step-decay schedule (a Piecewise on the
    device) and Nesterov momentum, every row within Z_MAX standard errors of numpy's."""
    from smfsym.optimizers import Momentum, step_decay
    from smfsym.studies.optimizer_weak_error import momentum_weak_error, schedule_weak_error

    x = sp.Symbol("x")
    p = smfsym.Problem((x - smfsym.normal("xi", std=sp.Rational(1, 2))) ** 2 / 2, [x])
    kw = dict(models=["smf1", "smf2"], n_paths=200_000, seed=3, numerics=smfsym.Numerics(method="montecarlo"))
    for run in (lambda o: schedule_weak_error(p, step_decay(0.5, 0.25), x**2, [1.0], 0.5, [0.125, 0.0625], options=o,
                                              **kw),
                lambda o: momentum_weak_error(p, x**2, [1.0, 0.5], 0.5, [1 / 16, 1 / 64],
                                              Momentum(friction=1.0, nesterov=True), options=o, **kw)):
        ref, dev = run(RunOptions(progress=False)), run(RunOptions(progress=False, backend="cupy"))
        assert dev.meta["backend"] == "cupy"
        for r0, r1 in zip(ref.rows, dev.rows):
            for key, se in (("value", "value_se"), ("sgd", "sgd_se")):
                assert abs(r0[key] - r1[key]) < Z_MAX * np.hypot(r0[se], r1[se]), (key, r0, r1)
