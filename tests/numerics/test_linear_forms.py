"""Data-set SMFs: the linear-algebra form of the data-set sums, and weak order 2 on data-set noise."""
import itertools

import numpy as np
import pytest
import sympy as sp

import smfsym
from smfsym.symbolic.lambdify import CompiledExprs
from smfsym.data.means import DataMean
from smfsym.numerics.compiled_sde import NumericSDE
from smfsym.numerics.solvers import EulerMaruyama, WeakTaylor2


def _logistic(M=40, d=2, seed=0, bias=False, extra=0):
    rng = np.random.default_rng(seed)
    data = np.column_stack([rng.normal(size=(M, d)), rng.choice([-1.0, 1.0], M)])
    syms = smfsym.empirical(data, [f"z{i}" for i in range(d)] + ["y"], weights=rng.uniform(0.5, 1.5, M))
    z, y = syms[:d], syms[d]
    x = sp.symbols(f"x0:{d}")
    margin = sum(a * b for a, b in zip(x, z)) + (sp.Rational(1, 3) * y if bias else 0)
    return smfsym.Problem(sp.log(1 + sp.exp(-y * margin)) + extra, x), data


def _pair(flow, eta=0.1):
    vals = {flow.eta: eta}
    return NumericSDE(flow, vals), NumericSDE(flow, vals, linear_algebra=False)


def test_logistic_loss_is_detected_as_one_margin():
    p, _ = _logistic(bias=True)
    la, general = _pair(smfsym.smf(p, order=2))
    assert la.la is not None and general.la is None
    assert len(la.la.split.margins) == 1  # y <z, x> (the bias y/3 is not a margin: it does not read x)
    assert la.la.block in (16, 32, 64, 128, 256, 512)


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("points", [None, 3])
def test_linear_algebra_euler_step_equals_general_path(order, points):
    p, _ = _logistic(M=300, bias=True)
    la, general = _pair(smfsym.smf(p, order=order))
    rng = np.random.default_rng(1)
    P = 300  # one full block and a padded one
    X = rng.normal(size=(P, 2) if points is None else (P, points, 2))
    Z = rng.normal(size=(P, 1, 300))
    e = EulerMaruyama()
    a, b = e.step(la, X, 0.05, Z), e.step(general, X, 0.05, Z)
    assert np.max(np.abs(a - b)) < 1e-12 and np.max(np.abs(a - X)) > 1e-2
    # the drift and noise action alone, too
    assert np.max(np.abs(la.drift(X) - general.drift(X))) < 1e-12
    assert np.max(np.abs(la.noise(X, Z[:, 0]) - general.noise(X, Z[:, 0]))) < 1e-12
    # a path's numbers do not depend on how many paths are passed at once (fixed BLAS shapes)
    assert np.array_equal(e.step(la, X[:7], 0.05, Z[:7]), a[:7])


@pytest.mark.slow  # compiles the weak order-2 terms (symbolic derivatives of data means): 20-60 s
def test_linear_algebra_weak2_step_equals_general_path():
    p, _ = _logistic(M=50, bias=True)
    la, general = _pair(smfsym.smf(p, order=2))
    s = WeakTaylor2()
    s.prepare(la)
    assert la.la_weak2 is not None and set(la.la_weak2.fns) == {"x", "v", "w"}
    rng = np.random.default_rng(2)
    for shape in ((41, 2), (41, 2, 2)):
        X = rng.normal(size=shape)
        Z = rng.normal(size=(41, 4, 50))
        a, b = s.step(la, X, 0.05, Z), s.step(general, X, 0.05, Z)
        assert np.max(np.abs(a - b)) < 1e-12 and np.max(np.abs(a - X)) > 1e-2
        assert np.array_equal(s.step(la, X[:5], 0.05, Z[:5]), a[:5])


def _at_row(e, law, row):
    """``e`` on one data row, leaving the data means (which bind the data symbols) alone."""
    means = {m: sp.Dummy() for m in e.atoms(DataMean)}
    e = e.xreplace(means).xreplace(dict(zip(law.symbols, map(sp.Float, row))))
    return e.xreplace({v: k for k, v in means.items()})


def test_weak2_on_data_set_noise_equals_the_matrix_scheme_quickly():
    """The slow test below on a loss whose terms compile in a fraction of a second (x^2/2 + x^3 cos(z)/3 on four
    rows: noise columns with non-zero first and second derivatives, so every term of the data-set step counts):
    the default tier ran no data-set weak order-2 step, and a wrong factor on its Ito-Stratonovich or
    second-derivative term survived it (audit 16, M3). Rounding tolerance: the same arithmetic regrouped."""
    data = np.array([[0.3], [-1.1], [0.8], [1.7]])
    z, = smfsym.empirical(data, "z")
    x = sp.Symbol("x")
    flow = smfsym.smf(smfsym.Problem(x**2 / 2 + x**3 * sp.cos(z) / 3, [x]), order=2)
    assert flow.noise_kind == "template"
    law = flow.diffusion.law
    D = sp.Matrix(1, 4, lambda r, c: flow.noise_scale * sp.sqrt(sp.Float(law.weights[c]))
                  * _at_row(flow.diffusion.column[r], law, data[c]))
    matrix = smfsym.SDE(flow.drift, D, flow.state, eta=flow.eta)
    ns, nm = NumericSDE(flow, {flow.eta: 0.1}), NumericSDE(matrix, {flow.eta: 0.1})
    rng = np.random.default_rng(3)
    X, Z = rng.normal(size=(9, 1)), rng.normal(size=(9, 4, 4))
    for s in (WeakTaylor2(), EulerMaruyama()):
        a, b = s.step(ns, X, 0.05, Z), s.step(nm, X, 0.05, Z)
        assert np.max(np.abs(a - b)) < 1e-12 and np.max(np.abs(a - X)) > 1e-2


@pytest.mark.slow  # compiles the weak order-2 terms (symbolic derivatives of data means): 20-60 s
@pytest.mark.parametrize("linear_algebra", [None, False])
def test_weak2_on_data_set_noise_equals_the_explicit_matrix_scheme(linear_algebra):
    """The data-set weak order-2 step is the verified matrix scheme (tests/numerics/test_solvers.py) applied to
    the M columns written out as an explicit d x M matrix: the same numbers to rounding."""
    p, data = _logistic(M=6)
    flow = smfsym.smf(p, order=2)
    law = flow.diffusion.law
    D = sp.Matrix(2, 6, lambda r, c: flow.noise_scale * sp.sqrt(sp.Float(law.weights[c]))
                  * _at_row(flow.diffusion.column[r], law, data[c]))
    matrix = smfsym.SDE(flow.drift, D, flow.state, eta=flow.eta)
    vals = {flow.eta: 0.1}
    ns, nm = NumericSDE(flow, vals, linear_algebra=linear_algebra), NumericSDE(matrix, vals)
    assert (ns.la is None) == (linear_algebra is False)
    rng = np.random.default_rng(3)
    X, Z = rng.normal(size=(9, 2)), rng.normal(size=(9, 4, 6))
    for s in (WeakTaylor2(), EulerMaruyama()):
        a, b = s.step(ns, X, 0.05, Z), s.step(nm, X, 0.05, Z)
        assert np.max(np.abs(a - b)) < 1e-12 and np.max(np.abs(a - X)) > 1e-2


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
def test_loss_without_linear_forms_keeps_the_general_path():
    p, _ = _logistic(M=20, extra=0)
    x = p.params
    law_syms = [s for s in p.loss.free_symbols if s not in set(p.params)]
    z0 = sorted(law_syms, key=str)[0]
    q = smfsym.Problem(p.loss + sp.sin(x[0] * x[1] * z0), p.params)  # x0 x1 z0: not a linear form
    flow = smfsym.smf(q, order=1)
    assert flow.noise_kind == "template"
    auto = NumericSDE(flow, {flow.eta: 0.1})
    assert auto.la is None
    with pytest.raises(ValueError, match="`linear_algebra=True` but the data-set sums have no linear-algebra form"):
        NumericSDE(flow, {flow.eta: 0.1}, linear_algebra=True).la
    with pytest.raises(ValueError, match="`linear_algebra` must be None, True or False; got 'yes'"):
        NumericSDE(flow, {flow.eta: 0.1}, linear_algebra="yes")
    # weak order 2 runs on the general path (and agrees with Euler's drift there)
    rng = np.random.default_rng(4)
    X, Z = rng.normal(size=(5, 2)), rng.normal(size=(5, 4, 20))
    out = WeakTaylor2().step(auto, X, 0.01, Z)
    assert np.all(np.isfinite(out)) and np.max(np.abs(out - X)) > 1e-3


def _one_step_mean(nsde, x, h, phi_fn, points):
    """E_Z phi(weak2 step(x, h, Z)), exact: the step is polynomial of degree <= 3 in its Gaussians."""
    s = WeakTaylor2()
    s.prepare(nsde)
    k, m = s.n_draws, nsde.m
    z, w = np.polynomial.hermite_e.hermegauss(points)
    idx = np.array(list(itertools.product(range(points), repeat=k * m)))
    Z = z[idx].reshape(-1, k, m)
    W = np.prod((w / w.sum())[idx], axis=1)
    X = np.tile(np.asarray(x, float), (Z.shape[0], 1))
    return W @ phi_fn(s.step(nsde, X, h, Z))


@pytest.mark.slow  # compiles the weak order-2 terms (symbolic derivatives of data means): 20-60 s
def test_weak2_local_error_on_data_set_noise_has_order_three():
    """One-step error of weak2 on a data-set SMF against phi + h L phi + h^2/2 L^2 phi (the generator's
    expansion, data means evaluated exactly): O(h^3), the local order of a weak order-2 scheme.
    Two rows, d = 1: the 4 x 2 Gaussian inputs are integrated exactly (5-point rule, phi of degree 3)."""
    (z, y) = smfsym.empirical(np.array([[1.3, 1.0], [-0.4, -1.0]]), "z y", weights=[0.3, 0.7])
    x = sp.Symbol("x")
    p = smfsym.Problem(sp.log(1 + sp.exp(-y * z * x)) + x**2 / 10, [x])
    flow = smfsym.smf(p, order=2)
    assert flow.noise_kind == "template"
    eta = 0.5
    bound = flow.subs({flow.eta: eta})
    nsde = NumericSDE(flow, {flow.eta: eta})
    assert nsde.la_weak2 is not None
    x0 = 0.8
    hs = np.array([0.2, 0.1, 0.05, 0.025])
    for phi in (x**2, x**3):
        L1 = bound.generator(phi)
        L2 = bound.generator(L1)
        taylor = [float(v[0]) for v in CompiledExprs([phi, L1, L2], [x])(np.array([[x0]])).T]
        fn = sp.lambdify([x], phi)
        errs = [abs(_one_step_mean(nsde, [x0], h, lambda X: fn(X[:, 0]), 5)
                    - (taylor[0] + h * taylor[1] + h**2 / 2 * taylor[2])) for h in hs]
        slope = np.polyfit(np.log(hs), np.log(errs), 1)[0]
        assert abs(slope - 3) < 0.3, (phi, slope, errs)


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
def test_generated_module_takes_the_linear_algebra_form_and_matches_smfsym():
    """The generated module's Euler step uses the same kernels; its paths are smfsym's (to rounding),
    with the data set embedded or passed in with set_data (the matrices are rebuilt from it)."""
    import types

    for M, order in ((40, 2), (600, 1)):  # 600 x 4 numbers are passed in, not embedded
        p, data = _logistic(M=M, bias=True)
        flow = smfsym.smf(p, order=order)
        src = smfsym.codegen(flow, eta=0.1)
        assert "def drift_noise(" in src and "def la_drift_noise(" in src and "import smfsym" not in src
        mod = types.ModuleType("generated")
        exec(compile(src, "generated", "exec"), mod.__dict__)
        law = flow.diffusion.law
        if M > 100:
            with pytest.raises(ValueError, match="call set_data"):
                mod.simulate([0.5, -0.2], 0.02, 10, 3, dt=0.01)
            mod.set_data(_data0=law.data, _weights0=law.weights)
        for x0 in ([0.5, -0.2], [[0.5, -0.2], [0.1, 0.3]]):
            _, st = mod.simulate(x0, 0.05, 300, 3, dt=0.01)
            ref = smfsym.simulate(flow, x0, 0.05, eta=0.1, dt=0.01, n_paths=300, seed=3)
            np.testing.assert_allclose(st, ref.states, rtol=1e-12, atol=1e-14)
            assert np.max(np.abs(st[-1] - np.asarray(x0))) > 1e-2


def test_linear_algebra_path_in_row_chunks_on_a_large_data_set():
    """More rows than one chunk (LA_ROWS): sums accumulated chunk after chunk equal the general path."""
    from smfsym.numerics.linear_forms import LA_ROWS

    M = LA_ROWS + 5000
    p, _ = _logistic(M=M)
    la, general = _pair(smfsym.smf(p, order=1))
    assert len(la.la.plan["chunks"]) == 2
    rng = np.random.default_rng(5)
    X, Z = rng.normal(size=(20, 2)), rng.normal(size=(20, 1, M))
    e = EulerMaruyama()
    a, b = e.step(la, X, 0.05, Z), e.step(general, X, 0.05, Z)
    assert np.max(np.abs(a - b)) < 1e-12 and np.max(np.abs(a - X)) > 1e-3
    assert np.array_equal(e.step(la, X[:3], 0.05, Z[:3]), a[:3])


@pytest.mark.slow  # 200,000 coupled paths, 64 + 14 weak order-2 steps each: about 20 s
def test_weak2_on_a_data_set_smf_has_global_weak_order_two():
    """Global weak order of weak2 on a data-set SMF2 against a fine-step reference of the SDE itself.

    Each coarse step of size h = k h_ref uses the sum of its k fine dW (scaled), the other draws of
    its first fine step: coupled, so the errors E[X_h^2 - X_ref^2] are resolved (>= 3 standard errors
    at every h). The slope of log|error| on log h, fitted by weighted least squares (weights from
    each error's standard error), must be 2 within max(4 slope standard errors, 0.3); Euler on the
    same harness fits 1.15 +- 0.005, far outside."""
    (z, y) = smfsym.empirical(np.array([[1.5, 1.0], [-0.5, 1.0], [0.8, -1.0]]), "z y")
    x = sp.Symbol("x")
    p = smfsym.Problem(sp.log(1 + sp.exp(-y * z * x)) + x**2 / 10, [x])
    flow = smfsym.smf(p, order=2)
    ns = NumericSDE(flow, {flow.eta: 1.0})
    assert ns.la_weak2 is not None
    s = WeakTaylor2()
    T, KREF, ks, n = 1.0, 64, (32, 16, 8), 20_000
    rng = np.random.default_rng(7)
    diffs = {k: [] for k in ks}
    for _ in range(10):
        Zf = rng.standard_normal((KREF, n, 4, 3))
        X = np.full((n, 1), 1.0)
        for j in range(KREF):
            X = s.step(ns, X, T / KREF, Zf[j])
        for k in ks:
            Xc = np.full((n, 1), 1.0)
            for j in range(KREF // k):
                Z = Zf[j * k].copy()
                Z[:, 0] = Zf[j * k:(j + 1) * k, :, 0].sum(0) / np.sqrt(k)
                Xc = s.step(ns, Xc, k * T / KREF, Z)
            diffs[k].append(Xc[:, 0] ** 2 - X[:, 0] ** 2)
    d = [np.concatenate(diffs[k]) for k in ks]
    err = np.abs([v.mean() for v in d])
    se = np.array([v.std() / np.sqrt(v.size) for v in d])
    assert np.all(err > 3 * se), (err, se)
    h = np.array(ks) * T / KREF
    w = (err / se) ** 2  # 1 / var(log|err|), delta method
    A = np.vstack([np.log(h), np.ones_like(h)]).T
    cov = np.linalg.inv(A.T @ (A * w[:, None]))
    slope = (cov @ (A.T @ (w * np.log(err))))[0]
    slope_se = np.sqrt(cov[0, 0])
    assert abs(slope - 2) < max(4 * slope_se, 0.3), (slope, slope_se, err, se)
