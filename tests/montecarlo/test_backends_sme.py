"""SMEs (noise sqrt(eta) Sigma(x)^{1/2}, a numeric matrix square root) and the weak order-2 scheme on data-set
noise on the array back ends (issue 19), on the stand-in device ``array_api_strict``. Statistics are compared
with numpy's within ``Z_MAX`` = 5 standard errors of the difference (independent streams: the numbers differ
between back ends by design); the device steps are compared with numpy's on the same increments (to rounding)."""
import itertools

import numpy as np
import pytest
import sympy as sp

import smfsym
from smfsym import RunOptions, SaveAt
from smfsym.backends import get_backend
from smfsym.montecarlo.checks import BlowUpError
from smfsym.numerics.solvers import get_solver
from smfsym.simulation.sde import device_stepper, numeric_sde
from smfsym.symbolic.sde import MatrixSqrt

from backend_cases import problem  # noqa: F401 (fixture)
from backend_cases import X0, Z_MAX, run_smf, square, zscores

AAS = "array_api_strict"


@pytest.fixture(scope="module")
def smes(problem):
    """The SMEs of order 1 and 2 of the d = 3 regression: Sigma(x) is not diagonal, so the noise is the
    numeric root."""
    out = {k: smfsym.sme(problem, order=k) for k in (1, 2)}
    assert all(s.noise_kind == "sqrt" for s in out.values())
    return out


@pytest.fixture(scope="module")
def dataset_flow():
    """A logistic regression SMF on a data set of 100 rows (d = 2): data-set noise, data means in the drift."""
    d, M = 2, 100
    rng = np.random.default_rng(0)
    data = np.column_stack([rng.normal(size=(M, d)), rng.choice([-1.0, 1.0], M)])
    syms = smfsym.empirical(data, [f"z{i}" for i in range(d)] + ["y"])
    x = sp.symbols(f"x0:{d}")
    loss = sp.log(1 + sp.exp(-syms[d] * sum(a * b for a, b in zip(x, syms[:d]))))
    flow = smfsym.smf(smfsym.Problem(loss, x), order=1)
    assert flow.noise_kind == "template"
    return flow


def run_dataset(flow, backend, scheme="weak2", increments="gaussian", n_paths=4096, chunk_size=None, store=False):
    return smfsym.simulate(flow, x0=[0.5, -0.5], t_end=0.4, eta=0.2, dt=0.1, n_paths=n_paths, seed=1, scheme=scheme,
                           increments=increments, save_at=SaveAt(at=[0.2, 0.4], functions={"sq": square}, store=store),
                           options=RunOptions(backend=backend, chunk_size=chunk_size))


# -- the device steps are numpy's steps: same increments in, same states out (to rounding)

@pytest.mark.parametrize("order,scheme", [(1, "euler"), (2, "tamed")])
@pytest.mark.parametrize("npoint", [False, True])
def test_device_sme_step_equals_the_numpy_step(smes, order, scheme, npoint):
    sme, solver, b = smes[order], get_solver(scheme), get_backend(AAS)
    vals = {sme.eta: 0.1}
    dev = device_stepper(sme, vals, solver, "gaussian", b).dev
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 2, 3) if npoint else (64, 3))
    Z = rng.normal(size=(64, 1, 3))
    ref = solver.step(numeric_sde(sme, vals), X, 0.01, Z)
    out = getattr(dev, scheme)(b.asarray(X), 0.01, b.asarray(np.transpose(Z, (1, 2, 0))))
    np.testing.assert_allclose(b.to_numpy(out), ref, rtol=1e-12, atol=1e-14)


def test_device_root_is_numpys_root():
    """The symmetric root of the device (eigh, clipping) against numpy's on PSD matrices, a singular one
    (a tiny negative eigenvalue from rounding, clipped) and a non-finite one (NaN root)."""
    from smfsym.numerics.compiled_sde import NumericSDE
    from smfsym.numerics.device_sde import DeviceSDE

    x0, x1 = sp.symbols("x0 x1")
    sde = smfsym.SDE([0, 0], MatrixSqrt(sp.Matrix([[1, x0], [x0, 1]]), sp.Integer(1)), [x0, x1])
    b = get_backend(AAS)
    dev = DeviceSDE(NumericSDE(sde, {}), b)
    rng = np.random.default_rng(2)
    A = rng.normal(size=(50, 3, 3))
    S = np.concatenate([A @ np.swapaxes(A, -1, -2), np.ones((1, 3, 3)), np.full((1, 3, 3), np.nan)])
    ref = np.full(S.shape, np.nan)
    ref[:-1] = NumericSDE._root_of(S[:-1])
    out = b.to_numpy(dev.root(b.asarray(S)))
    np.testing.assert_allclose(out, ref, rtol=1e-11, atol=1e-12)
    assert np.isnan(out[-1]).all() and np.isfinite(out[:-1]).all()


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
def test_device_dataset_weak2_step_equals_the_numpy_step(dataset_flow):
    """Against numpy's step on its linear-algebra path and on its general path (both to rounding), for one
    state per path and for a two-point motion."""
    solver, b = get_solver("weak2"), get_backend(AAS)
    vals = {dataset_flow.eta: 0.2}
    dev = device_stepper(dataset_flow, vals, solver, "gaussian", b).dev
    general = smfsym.numerics.compiled_sde.NumericSDE(dataset_flow, vals, linear_algebra=False)
    rng = np.random.default_rng(1)
    for shape in ((32, 2), (32, 2, 2)):
        X, Z = rng.normal(size=shape), rng.normal(size=(32, 4, dev.m))
        out = b.to_numpy(dev.weak2(b.asarray(X), 0.05, b.asarray(np.transpose(Z, (1, 2, 0)))))
        for nsde in (numeric_sde(dataset_flow, vals), general):
            np.testing.assert_allclose(out, solver.step(nsde, X, 0.05, Z), rtol=1e-11, atol=1e-13)
    assert numeric_sde(dataset_flow, vals).la_weak2 is not None  # the first reference is the matmul path


# -- statistics against numpy

@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
@pytest.mark.parametrize("order,scheme,increments", [(1, "euler", "gaussian"), (2, "euler", "discrete"),
                                                     (2, "tamed", "gaussian"), (1, "tamed", "discrete")])
def test_sme_agrees_with_numpy(smes, order, scheme, increments):
    ref = run_smf(smes[order], "numpy", scheme, increments)
    dev = run_smf(smes[order], AAS, scheme, increments)
    assert dev.extra["backend"] == AAS and dev.success
    z = zscores(ref, dev)
    assert z.max() < Z_MAX, z


@pytest.mark.slow  # multi-second: the default tier keeps the step-equality tests
def test_sme_n_point_motion_agrees_with_numpy(smes):
    x0 = np.array([X0, [0.0, 1.0, 1.0]])
    ref, dev = run_smf(smes[2], "numpy", x0=x0), run_smf(smes[2], AAS, x0=x0)
    z = zscores(ref, dev)
    assert z.max() < Z_MAX, z


@pytest.mark.parametrize("increments", ["gaussian", "discrete"])
def test_sme_weak2_with_an_explicit_root_agrees_with_numpy(increments):
    """Where Sigma is diagonal the SME's root is explicit (here diag(1 + x^2, 1 + y^2), smooth), so weak2 runs;
    with the numeric root weak2 is refused on both back ends (numpy's message)."""
    x, y = sp.symbols("x y")
    a, c = smfsym.normal("a"), smfsym.normal("c")
    p = smfsym.Problem((x**2 + y**2) / 2 + a * (x**3 / 3 + x) + c * (y**3 / 3 + y), [x, y])
    sme = smfsym.sme(p, order=2)
    assert sme.noise_kind == "matrix" and not sme.nondifferentiable()
    runs = [run_smf(sme, b, "weak2", increments, x0=[0.5, -0.3]) for b in ("numpy", AAS)]
    z = zscores(*runs)
    assert z.max() < Z_MAX, z


@pytest.mark.slow  # multi-second: the default tier keeps the step-equality tests
@pytest.mark.parametrize("increments", ["gaussian", "discrete"])
def test_dataset_weak2_agrees_with_numpy(dataset_flow, increments):
    z = zscores(run_dataset(dataset_flow, "numpy", increments=increments),
                run_dataset(dataset_flow, AAS, increments=increments))
    assert z.max() < Z_MAX, z


def test_sme_in_float32_runs_and_agrees_with_numpy(smes):
    """float32 (asked for, with its warning): the root's clipping bound follows the precision (a float64 bound
    would call eigh's rounding a negative eigenvalue); the means agree with numpy's within Z_MAX SE."""
    from smfsym.backends import ArrayApiStrictBackend, Float32Warning

    with pytest.warns(Float32Warning):
        b32 = ArrayApiStrictBackend(dtype="float32")
    dev = run_smf(smes[1], b32)
    assert dev.success and dev.extra["dtype"] == "float32"
    z = zscores(run_smf(smes[1], "numpy"), dev)
    assert z.max() < Z_MAX, z


# -- the same numbers whatever the chunking, on one back end

@pytest.mark.parametrize("scheme,increments", [("euler", "gaussian"), ("tamed", "discrete")])
def test_sme_same_numbers_across_chunk_sizes(smes, scheme, increments):
    n = 2 * 4096 + 100  # a partial last block
    a, b = (run_smf(smes[2], AAS, scheme, increments, n_paths=n, chunk_size=c, store=True) for c in (4096, 3 * 4096))
    np.testing.assert_array_equal(a.states, b.states)
    for name in ("state", "sq"):
        np.testing.assert_array_equal(a.stats[name]["mean"], b.stats[name]["mean"])
        np.testing.assert_array_equal(a.stats[name]["sem"], b.stats[name]["sem"])


@pytest.mark.slow  # multi-second: the default tier keeps the step-equality tests
def test_dataset_weak2_same_numbers_across_chunk_sizes(dataset_flow):
    n = 4096 + 50
    a, b = (run_dataset(dataset_flow, AAS, increments="discrete", n_paths=n, chunk_size=c, store=True)
            for c in (4096, 2 * 4096))
    np.testing.assert_array_equal(a.states, b.states)
    np.testing.assert_array_equal(a.stats["sq"]["mean"], b.stats["sq"]["mean"])


# -- Sigma that is not a covariance: reported as on numpy

def root_sde(sigma):
    x0, x1 = sp.symbols("x0 x1")
    return smfsym.SDE(sp.Matrix([-1, 0]), MatrixSqrt(sp.Matrix(sigma(x0)), sp.Integer(1)), [x0, x1])


def test_a_non_psd_sigma_is_refused_as_on_numpy():
    """Sigma = [[1, x0], [x0, 1]] has the eigenvalue 1 - |x0| < 0 from the start [2, 0]: a FloatingPointError
    naming the eigenvalue on both back ends, never a NaN result."""
    sde = root_sde(lambda x0: [[1, x0], [x0, 1]])
    for b in ("numpy", AAS):
        for mode in ("raise", "mask"):
            with pytest.raises(FloatingPointError, match=r"negative eigenvalues \(min -1\) .* not a covariance"):
                smfsym.simulate(sde, [2.0, 0.0], 0.2, dt=0.05, n_paths=100, seed=1,
                                options=RunOptions(backend=b, on_nonfinite=mode))


@pytest.mark.filterwarnings("error::RuntimeWarning")  # reported as a lost path, not as numpy's warnings
def test_a_non_finite_sigma_is_a_reported_blow_up_as_on_numpy():
    """Sigma = [[1 + sqrt(x0), 1/10], [1/10, 1]] leaves the reals where x0 < 0: those paths get a NaN noise and
    the driver reports them (BlowUpError; with on_nonfinite='mask' counted): the lost fractions agree within
    Z_MAX binomial standard errors of the difference."""
    sde = root_sde(lambda x0: [[1 + sp.sqrt(x0), sp.Rational(1, 10)], [sp.Rational(1, 10), 1]])
    kw = dict(x0=[0.3, 0.0], t_end=0.5, dt=0.05, n_paths=4096, seed=1)
    lost = []
    for b in ("numpy", AAS):
        with pytest.raises(BlowUpError, match=r"non-finite state at step \d+ .* of the paths"):
            smfsym.simulate(sde, **kw, options=RunOptions(backend=b))
        r = smfsym.simulate(sde, **kw, save_at=SaveAt(store=False), options=RunOptions(backend=b, on_nonfinite="mask"))
        assert 0 < r.lost_fraction < 1 and np.isfinite(r.mean()).all()
        lost.append(r.lost_fraction)
    p = np.mean(lost)
    assert abs(lost[0] - lost[1]) < Z_MAX * np.sqrt(2 * p * (1 - p) / kw["n_paths"]), lost


# -- studies

@pytest.mark.slow  # multi-second: the default tier keeps the step-equality tests
@pytest.mark.filterwarnings("ignore::smfsym.OrderWarning")
def test_weak_error_study_with_smes_on_the_back_end():
    """sme1 and sme2 of a d = 2 regression (non-diagonal Sigma: the numeric root) in a Monte Carlo weak-error
    study on the stand-in device: each row's values within Z_MAX standard errors of numpy's."""
    x = sp.symbols("x0:2")
    a = smfsym.normal("a", 2)
    p = smfsym.Problem((a[0] * x[0] + a[1] * x[1] - smfsym.normal("eps", std=sp.Rational(1, 2))) ** 2 / 2, x)
    kw = dict(models=["sme1", "sme2"], n_paths=8192, seed=3, numerics=smfsym.Numerics(method="montecarlo"))
    args = (p, x[0] ** 2 + x[1], [1.0, -0.5], 0.4, [0.2, 0.1])
    ref = smfsym.weak_error(*args, options=RunOptions(progress=False), **kw)
    dev = smfsym.weak_error(*args, options=RunOptions(progress=False, backend=AAS), **kw)
    assert {r["model"] for r in dev.rows} == {"sme1", "sme2"}
    for r0, r1 in zip(ref.rows, dev.rows):
        assert r0["value"] != r1["value"]  # other streams: the device ran
        for key, se in (("value", "value_se"), ("sgd", "sgd_se")):
            assert abs(r0[key] - r1[key]) < Z_MAX * np.hypot(r0[se], r1[se]), (key, r0, r1)


# -- the weak order of the device's data-set weak2 step

def _one_step_mean(dev, backend, x, h, phi_fn, points):
    """E_Z phi(device weak2 step(x, h, Z)), exact: the step is polynomial of degree <= 3 in its Gaussians."""
    k, m = 4, dev.m
    z, w = np.polynomial.hermite_e.hermegauss(points)
    idx = np.array(list(itertools.product(range(points), repeat=k * m)))
    Z = z[idx].reshape(-1, k, m)
    W = np.prod((w / w.sum())[idx], axis=1)
    X = np.tile(np.asarray(x, float), (Z.shape[0], 1))
    out = dev.weak2(backend.asarray(X), float(h), backend.asarray(np.transpose(Z, (1, 2, 0))))
    return W @ phi_fn(backend.to_numpy(out))


@pytest.mark.slow  # compiles the weak order-2 terms of an order-2 SMF (symbolic derivatives of data means)
def test_device_dataset_weak2_local_error_has_order_three():
    """One-step error of the device's weak2 on a data-set SMF against phi + h L phi + h^2/2 L^2 phi (the
    generator's expansion, data means exact): the fitted slope of log error against log h is 3 (within 0.3),
    the local order of a weak order-2 scheme. Two rows, d = 1: the 4 x 2 Gaussian inputs are integrated
    exactly (5-point rule)."""
    from smfsym.symbolic.lambdify import CompiledExprs

    (z, y) = smfsym.empirical(np.array([[1.3, 1.0], [-0.4, -1.0]]), "z y", weights=[0.3, 0.7])
    x = sp.Symbol("x")
    flow = smfsym.smf(smfsym.Problem(sp.log(1 + sp.exp(-y * z * x)) + x**2 / 10, [x]), order=2)
    eta, x0, b = 0.5, 0.8, get_backend(AAS)
    dev = device_stepper(flow, {flow.eta: eta}, get_solver("weak2"), "gaussian", b).dev
    bound = flow.subs({flow.eta: eta})
    hs = np.array([0.2, 0.1, 0.05, 0.025])
    for phi in (x**2, x**3):
        L1 = bound.generator(phi)
        L2 = bound.generator(L1)
        taylor = [float(v[0]) for v in CompiledExprs([phi, L1, L2], [x])(np.array([[x0]])).T]
        fn = sp.lambdify([x], phi)
        errs = [abs(_one_step_mean(dev, b, [x0], h, lambda X: fn(X[:, 0]), 5)
                    - (taylor[0] + h * taylor[1] + h**2 / 2 * taylor[2])) for h in hs]
        slope = np.polyfit(np.log(hs), np.log(errs), 1)[0]
        assert abs(slope - 3) < 0.3, (phi, slope, errs)


def test_cupy_names_fill_matrix_transpose():
    """CuPy 13 has no ``matrix_transpose`` (the root's V^T): the namespace wrapper fills it from ``swapaxes``."""
    import types

    from smfsym.backends import _ArrayAPINames

    mod = types.ModuleType("cupy_like")
    mod.swapaxes = np.swapaxes
    A = np.arange(12.0).reshape(2, 2, 3)
    np.testing.assert_array_equal(_ArrayAPINames(mod).matrix_transpose(A), np.swapaxes(A, -1, -2))
