"""Agreement with sympy.stats.E on small cases and with Monte Carlo for non-polynomial losses."""

import numpy as np
import pytest
import sympy as sp
import sympy.stats as st

import smfsym
from smfsym.data.means import DataMean
from smfsym.symbolic.lambdify import compile_exprs


@pytest.mark.parametrize("make_ours,make_theirs", [
    (lambda: smfsym.normal("z", mean=1, std=2), lambda: st.Normal("z", 1, 2)),
    (lambda: smfsym.uniform("z", 0, 1), lambda: st.Uniform("z", 0, 1)),
    (lambda: smfsym.bernoulli("z", sp.Rational(1, 3)), lambda: st.Bernoulli("z", sp.Rational(1, 3))),
])
@pytest.mark.slow
def test_against_sympy_stats_E(make_ours, make_theirs):
    x = sp.symbols("x0:2")
    z, Z = make_ours(), make_theirs()
    a = smfsym.normal("a")
    A = st.Normal("a", 0, 1)

    def loss(zz, aa):
        return (x[0] * aa + x[1] * zz - zz * aa) ** 2 / 2 + x[0] * x[1] * zz

    p = smfsym.Problem(loss(z, a), x)
    f_ref = loss(Z, A)
    F_ref = st.E(f_ref)
    assert sp.simplify(p.F - F_ref) == 0
    g = [sp.diff(f_ref, v) for v in x]
    for i in range(2):
        for j in range(2):
            ref = st.E(g[i] * g[j]) - st.E(g[i]) * st.E(g[j])
            assert sp.simplify(p.sigma[i, j] - ref) == 0


def _logistic():
    w = sp.symbols("w0:2")
    z = smfsym.normal("z", 2)
    y = smfsym.rademacher("y")
    return w, z, y, sp.log(1 + sp.exp(-y * (w[0] * z[0] + w[1] * z[1])))


def test_logistic_gaussian_quadrature_against_monte_carlo():
    w, z, y, f = _logistic()
    p = smfsym.Problem(f, w)
    assert isinstance(p.F, DataMean)
    assert "Gauss-Hermite" in sp.latex(p.F)
    w0 = np.array([0.7, -1.2])
    fn = compile_exprs([p.F, p.grad_F[0], p.sigma[0, 0], p.sigma[0, 1]], w)
    F, g0, s00, s01 = (float(v[0]) for v in fn(w0[None, :]))
    rng = np.random.default_rng(7)
    n = 400_000
    Z = rng.standard_normal((n, 2))
    Y = rng.choice([-1.0, 1.0], n)
    m = -Y * (Z @ w0)
    f_s = np.logaddexp(0, m)
    sig = 1 / (1 + np.exp(-m))
    g = -(Y * sig)[:, None] * Z
    for est, samples in [(F, f_s), (g0, g[:, 0]), (s00, (g[:, 0] - g[:, 0].mean()) ** 2),
                         (s01, (g[:, 0] - g[:, 0].mean()) * (g[:, 1] - g[:, 1].mean()))]:
        se = samples.std() / np.sqrt(n)
        assert abs(est - samples.mean()) < 5 * se, (est, samples.mean(), se)  # 5 standard errors


def test_logistic_empirical_data_is_exact_mean_and_matches_monte_carlo():
    rng = np.random.default_rng(3)
    M = 500
    data = np.column_stack([rng.normal(size=(M, 2)), rng.choice([-1.0, 1.0], M)])
    before = data.copy()
    w = sp.symbols("w0:2")
    z0, z1, y = smfsym.empirical(data, "z0 z1 y")
    p = smfsym.Problem(sp.log(1 + sp.exp(-y * (w[0] * z0 + w[1] * z1))), w)
    assert np.array_equal(data, before)  # nothing the user passes is mutated
    assert "M=500" in str(p.F)
    w0 = np.array([0.3, 0.8])
    F = compile_exprs([p.F], w)(w0[None, :])[0][0]
    exact = np.mean(np.logaddexp(0, -data[:, 2] * (data[:, :2] @ w0)))
    assert F == pytest.approx(exact, rel=1e-12)
    # Monte Carlo over resampled rows: within 5 standard errors of the data mean
    n = 100_000
    rows = data[rng.integers(0, M, n)]
    vals = np.logaddexp(0, -rows[:, 2] * (rows[:, :2] @ w0))
    assert abs(vals.mean() - F) < 5 * vals.std() / np.sqrt(n)


def test_truncated_expansion_reports_captured_fraction_and_warns():
    w, z, y, f = _logistic()
    p = smfsym.Problem(f, w)
    ce = p.chaos(degree=1)
    assert not ce.exact
    frac1 = ce.captured_fraction([2.0, -1.0])
    frac3 = p.chaos(degree=3).captured_fraction([2.0, -1.0])
    assert 0 < frac1 < frac3 <= 1 + 1e-9
    from smfsym.symbolic.noise_expansion import TruncationWarning, warn_if_low

    with pytest.warns(TruncationWarning, match="captures only"):
        warn_if_low(ce, [2.0, -1.0], threshold=0.999)


def test_finite_law_nonpolynomial_is_exact_sum():
    x = sp.Symbol("x")
    r = smfsym.rademacher("r")
    p = smfsym.Problem(sp.exp(r * x), [x])
    assert sp.simplify(p.F - sp.cosh(x)) == 0 or sp.simplify(p.F - (sp.exp(x) + sp.exp(-x)) / 2) == 0
    flow = smfsym.smf(p)
    assert flow.chaos.exact
    assert sp.simplify(flow.noise_covariance()[0, 0] - flow.eta * p.sigma[0, 0]) == 0
