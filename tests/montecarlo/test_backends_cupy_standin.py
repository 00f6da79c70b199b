"""The CuPy back end's code path on a CPU stand-in (issue 19): no GPU runs in CI, so ``CupyBackend`` (its
namespace with the Array API names CuPy 13 lacks filled in, its cuRAND Philox streams, host copies, free
memory, the generated cupy modules) runs here on tests/fake_cupy.py: CuPy's real names (read from its
``__init__.py`` at v13.0.0 .. v14.2.0) and signatures, its own array type refusing host numpy operands, numpy
underneath.

- every ``xp.<name>`` of the device modules, and what sympy's numpy printer emits, resolves on CuPy 13, 14.0
  and 14.2 (a name only the Array API or array_api_strict has fails here, not on the first GPU run);
- the streams are cuRAND's Philox4x32-10 by its rng type (161), and every draw has CuPy's dtype;
- the simulators through ``backend="cupy"`` agree with numpy: every compared mean within ``Z_MAX`` = 5
  standard errors of the difference of two independent estimates (tests/backend_cases.py), and give the same
  numbers in any chunking (bitwise, one back end); the SME root's eigh in batches gives the numbers unbatched.
"""
import pathlib
import re

import numpy as np
import pytest
import sympy as sp

import smfsym
from smfsym import Numerics, RunOptions, SaveAt
from smfsym.backends import _PHILOX, _ArrayAPINames, _Namespace, get_backend

from backend_cases import flow, problem  # noqa: F401 (fixtures)
from backend_cases import X0, Z_MAX, run_sgd, run_smf, square, zscores
from fake_cupy import CURAND, fake_cupy, make_fake_cupy  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow  # 7 s in all; CI runs it in the slow tier

ROOT = pathlib.Path(smfsym.__file__).parent
#: the modules whose code runs on a device namespace
DEVICE_MODULES = ["backends.py", "montecarlo/device.py", "montecarlo/increments.py", "numerics/device_sde.py",
                  "simulation/device_sgd.py", "optimizers/update_map.py", "optimizers/svag.py",
                  "studies/richardson.py", "meanfield/device.py", "symbolic/lambdify.py", "io/codegen_device.py"]
#: array_api_strict's own (its stand-in device and host copy), and ``xp.f`` of a docstring
NOT_CUPY = {"Device", "__array_namespace_info__", "f"}


def _used_names() -> set:
    names = set()
    for f in DEVICE_MODULES:
        names |= set(re.findall(r"\bxp\.([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)", (ROOT / f).read_text()))
    return names - NOT_CUPY


def _resolves(ns, dotted: str) -> bool:
    try:
        for part in dotted.split("."):
            ns = getattr(ns, part)
    except AttributeError:
        return False
    return True


@pytest.mark.parametrize("version", ["13", "14", "14.2"])
def test_every_name_the_device_code_uses_exists_in_cupy(version):
    used = _used_names()
    assert {"concat", "astype", "linalg.eigh", "random.RandomState", "cuda.runtime.memGetInfo"} <= used
    missing = sorted(n for n in used if not _resolves(_ArrayAPINames(make_fake_cupy(version)), n))
    assert not missing, f"CuPy {version} lacks {missing}: fill them in smfsym.backends._ArrayAPINames"
    raw = make_fake_cupy(version)
    lacks = {n for n in ("concat", "permute_dims", "astype", "bool", "pow", "matrix_transpose") if not hasattr(raw, n)}
    assert lacks == {"13": {"concat", "permute_dims", "astype", "bool", "pow", "matrix_transpose"},
                     "14": {"matrix_transpose"}, "14.2": set()}[version]


def test_what_sympys_numpy_printer_emits_resolves_on_cupy_13():
    import sympy.printing.numpy as spn

    names = {v.split(".")[-1] for v in list(spn._known_functions_numpy.values()) +
             list(spn._known_constants_numpy.values())}
    names |= {"select", "logical_and", "logical_or", "logical_not", "equal", "not_equal", "less", "less_equal",
              "greater", "greater_equal", "maximum", "minimum", "amax", "amin", "sign", "real", "imag", "mod",
              "floor", "ceil", "sinc", "heaviside", "sqrt", "exp", "log", "pi", "e", "nan", "inf"}
    ns = _Namespace(_ArrayAPINames(make_fake_cupy("13")), np.float64)
    assert sorted(n for n in names if not _resolves(ns, n)) == []
    x = ns.asarray(np.array([-1.0, 0.5, 2.0]))
    pw = ns.select([ns.less(x, 0), ns.logical_and.reduce((ns.greater(x, 0), ns.less(x, 1))), True], [0, x, 1])
    assert type(pw).__module__ == "cupy" and np.asarray(pw.get()).tolist() == [0.0, 0.5, 1.0]
    assert ns.sqrt(4) == 2.0 and type(ns.sqrt(4)) is float  # constants on the host


def test_cupy_streams_are_curands_philox_with_cupys_dtypes(fake_cupy):
    assert _PHILOX == CURAND["CURAND_RNG_PSEUDO_PHILOX4_32_10"] == 161
    with pytest.raises(fake_cupy.cuda.CURANDError):  # what the old constant 106 would have met on a GPU
        fake_cupy.random.RandomState(1, method=106)
    b = get_backend("cupy")
    g = b.generator(np.random.SeedSequence(3))
    assert g.g.method == 161
    z, u, i = g.standard_normal((2, 3)), g.random((4,)), g.integers(6, (2, 5))
    assert all(type(a).__module__ == "cupy" for a in (z, u, i))
    assert (z.dtype, u.dtype, i.dtype, z.shape, i.shape) == (np.float64, np.float64, np.int64, (2, 3), (2, 5))
    assert 0 <= int(i.min()) and int(i.max()) < 6
    again = b.generator(np.random.SeedSequence(3)).standard_normal((2, 3))
    np.testing.assert_array_equal(b.to_numpy(z), b.to_numpy(again))
    x = sp.Symbol("x")
    src = smfsym.codegen(smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x]), eta=0.1, backend="cupy")
    assert "method=161)" in src and "method=106" not in src


@pytest.mark.parametrize("scheme,increments", [("euler", "gaussian"), ("weak2", "discrete"), ("tamed", "gaussian")])
def test_simulate_through_cupy_agrees_with_numpy(fake_cupy, flow, scheme, increments):
    dev = run_smf(flow, "cupy", scheme, increments)
    assert dev.success and dev.extra["backend"] == "cupy"
    z = zscores(run_smf(flow, "numpy", scheme, increments), dev)
    assert z.max() < Z_MAX, z


def test_same_numbers_across_chunk_sizes_through_cupy(fake_cupy, flow):
    n = 2 * 4096 + 100
    a = run_smf(flow, "cupy", "weak2", "discrete", n_paths=n, chunk_size=4096, store=True)
    b = run_smf(flow, "cupy", "weak2", "discrete", n_paths=n, chunk_size=3 * 4096, store=True)
    assert np.all(np.isfinite(a.states))
    np.testing.assert_array_equal(a.states, b.states)
    np.testing.assert_array_equal(a.stats["sq"]["mean"], b.stats["sq"]["mean"])


def test_sme_root_through_cupy_in_eigh_batches(fake_cupy, problem, monkeypatch):
    """The SME's sqrt(eta) Sigma^{1/2} by a batched eigh, in batches of EIGH_BATCH matrices (CuPy's syevjBatched
    workspace overflows a 32-bit count beyond about 2**21 matrices): the numbers of one batch, bitwise."""
    from smfsym.numerics import device_sde

    sme = smfsym.sme(problem, order=1)
    n = 4096 + 50
    whole = run_smf(sme, "cupy", n_paths=n, store=True)
    monkeypatch.setattr(device_sde, "EIGH_BATCH", 1000)
    batched = run_smf(sme, "cupy", n_paths=n, store=True)
    np.testing.assert_array_equal(whole.states, batched.states)
    z = zscores(run_smf(sme, "numpy", n_paths=n), whole)
    assert z.max() < Z_MAX, z


def test_dataset_noise_and_sgd_through_cupy(fake_cupy, problem):
    rng = np.random.default_rng(0)
    data = np.column_stack([rng.normal(size=(120, 2)), rng.choice([-1.0, 1.0], 120)])
    z0, z1, y = smfsym.empirical(data, ["z0", "z1", "y"])
    x = sp.symbols("x0:2")
    dflow = smfsym.smf(smfsym.Problem(sp.log(1 + sp.exp(-y * (x[0] * z0 + x[1] * z1))), x), order=1)
    for scheme in ("euler", "weak2"):
        runs = [smfsym.simulate(dflow, x0=[0.5, -0.5], t_end=0.2, eta=0.2, dt=0.1, n_paths=4096, seed=1, scheme=scheme,
                                save_at=SaveAt(at=[0.1, 0.2], functions={"sq": square}, store=False),
                                options=RunOptions(backend=b)) for b in ("numpy", "cupy")]
        z = zscores(*runs)
        assert z.max() < Z_MAX, (scheme, z)
    z = zscores(run_sgd(problem, "numpy"), run_sgd(problem, "cupy"))
    assert z.max() < Z_MAX, z


@pytest.mark.filterwarnings("ignore::smfsym.OrderWarning")
def test_weak_error_and_multipoint_through_cupy(fake_cupy):
    x = sp.Symbol("x")
    p = smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x])
    kw = dict(models=["smf1"], n_paths=8192, seed=3, numerics=Numerics(method="montecarlo"))
    ref, dev = (smfsym.weak_error(p, x**2, [1.0], 0.4, [0.2, 0.1], options=RunOptions(progress=False, backend=b), **kw)
                for b in ("numpy", "cupy"))
    for r0, r1 in zip(ref.rows, dev.rows):
        assert abs(r0["value"] - r1["value"]) < Z_MAX * np.hypot(r0["value_se"], r1["value_se"]), (r0, r1)
    q = smfsym.Problem((1 + smfsym.rademacher("r")) * x**2 / 2, [x])
    mk = dict(eta=0.1, t_end=0.5, psi="covariance", n_paths=4096, models=["smf2"], seed=5)
    ref, dev = (smfsym.multipoint(q, [[-1.0], [1.0]], **mk, options=RunOptions(backend=b, progress=False))
                for b in ("numpy", "cupy"))
    for m in ("sgd", "smf2"):
        a, b = ref.value(m, "covariance"), dev.value(m, "covariance")
        assert abs(a["value"] - b["value"]) < Z_MAX * np.hypot(a["se"], b["se"]), (m, a, b)


@pytest.mark.filterwarnings("ignore::smfsym.OrderWarning")
def test_optimizer_update_maps_through_cupy(fake_cupy):
    """Momentum and schedule studies, RMSprop's SVAG and Adam's scaling regime (the update maps on the device)."""
    from smfsym.optimizers import Momentum, cosine, rmsprop
    from smfsym.optimizers.regimes import malladi_adam, simulate_regime
    from smfsym.optimizers.svag import simulate_svag
    from smfsym.studies.optimizer_weak_error import momentum_weak_error, schedule_weak_error

    x = sp.Symbol("x")
    p = smfsym.Problem((x - smfsym.normal("xi", std=sp.Rational(1, 2))) ** 2 / 2, [x])
    kw = dict(models=["smf1"], n_paths=4096, seed=3, numerics=Numerics(method="montecarlo"))
    for run in (lambda o: schedule_weak_error(p, cosine(2, 0.2), x**2, [1.0], 0.5, [0.25, 0.125], options=o, **kw),
                lambda o: momentum_weak_error(p, x**2, [1.0, 0.5], 0.5, [1 / 16, 1 / 64], Momentum(friction=1.0, nesterov=True),
                                              options=o, **kw)):
        ref, dev = run(RunOptions(progress=False)), run(RunOptions(progress=False, backend="cupy"))
        assert dev.meta["backend"] == "cupy"
        for r0, r1 in zip(ref.rows, dev.rows):
            for key, se in (("value", "value_se"), ("sgd", "sgd_se")):
                assert abs(r0[key] - r1[key]) <= Z_MAX * np.hypot(r0[se], r1[se]) + 1e-12, (key, r0, r1)
    sa = SaveAt(at=[4, 8], functions={"sq": square}, store=False)
    svag = [simulate_svag(rmsprop(p), 4, [1.0, 1.0], 0.5, 0.125, n_paths=4096, seed=1, save_at=sa,
                          options=RunOptions(backend=b)) for b in ("numpy", "cupy")]
    q = smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x])
    regime = [simulate_regime(malladi_adam(q), [1.0, 0.0, 1.0, 0.1], 8, 0.25, n_paths=4096, seed=0, save_at=sa,
                              options=RunOptions(backend=b)) for b in ("numpy", "cupy")]
    for ref, dev in (svag, regime):
        z = zscores(ref, dev)
        assert z.max() < Z_MAX, z


def test_meanfield_through_cupy(fake_cupy):
    """DD-SMF and mean-field SGD (N = 20 particles of a tanh teacher network): the risk's mean within Z_MAX SE of
    numpy's; the same numbers across chunk sizes."""
    from smfsym.meanfield import MeanFieldNumerics, MeanFieldOptions

    a, w, out = sp.symbols("a w out")
    z = smfsym.normal("z")
    net = smfsym.MeanFieldProblem(a * sp.tanh(w * z), (a, w), out, (out - sp.tanh(2 * z)) ** 2 / 2)
    th = smfsym.particles(net, 20, seed=0)

    def go(method, backend, chunk_size=None, n_paths=3000):
        opts = MeanFieldOptions(backend=backend, chunk_size=chunk_size, progress=False)
        if method == "ddsmf":
            return smfsym.simulate_ddsmf(net, th, eta=0.1, t_end=0.3, n_paths=n_paths, seed=2, options=opts,
                                         numerics=MeanFieldNumerics(n_points=6))
        return smfsym.simulate_meanfield_sgd(net, th, eta=0.1, n_steps=3, n_paths=n_paths, seed=2, options=opts)

    for method in ("ddsmf", "sgd"):
        dev, ref = go(method, "cupy"), go(method, "numpy")
        assert dev.sim.extra["backend"] == "cupy"
        sd, sr = dev.summary("risk"), ref.summary("risk")
        assert abs(sd["mean"][-1, 0] - sr["mean"][-1, 0]) < Z_MAX * np.hypot(sd["sem"][-1, 0], sr["sem"][-1, 0])
        np.testing.assert_array_equal(go(method, "cupy", 4096, 4096 + 30).observables["risk"],
                                      go(method, "cupy", 3 * 4096, 4096 + 30).observables["risk"])


def test_free_memory_counts_the_pools_unused_blocks(fake_cupy):
    b = get_backend("cupy")
    fake_cupy.free[0], fake_cupy.pool_free[0] = 2**30, 2**28
    assert b.free_memory() == 2**30 + 2**28
    del fake_cupy.get_default_memory_pool  # a CuPy without the pool API: the driver's number alone
    assert get_backend("cupy").free_memory() == 2**30


def test_cupy_backend_refuses_a_machine_without_a_device(monkeypatch):
    mod = make_fake_cupy()
    mod.cuda.runtime.getDeviceCount = lambda: 0
    monkeypatch.setitem(__import__("sys").modules, "cupy", mod)
    with pytest.raises(RuntimeError, match="no CUDA device is usable"):
        get_backend("cupy").xp
