"""Hand-derived closed forms (docs/theory.md §3 and §5, linear regression)."""
import sympy as sp
import pytest

import smfsym
from conftest import is_zero_matrix


def test_gaussian_quadratic_math_section_3():
    x, s = sp.Symbol("x"), sp.Symbol("s", positive=True)
    eta = sp.Symbol("eta", positive=True)
    xi = smfsym.normal("xi", std=s)
    p = smfsym.Problem((x - xi) ** 2 / 2, [x])
    assert sp.simplify(p.F - (x**2 + s**2) / 2) == 0
    assert p.sigma == sp.Matrix([[s**2]])
    ce = p.chaos()
    assert ce.exact
    coeffs = dict(zip(ce.indices, ce.coefficients))
    # only f_1 depends on x; f_2 = s^2/sqrt(2) has a vanishing gradient and is dropped
    assert ce.indices == ((1,),)
    assert sp.simplify(coeffs[(1,)] + s * x) == 0
    full = smfsym.Problem((x - xi) ** 2 / 2, [x])
    from smfsym.symbolic.noise_expansion import _polynomial_expansion

    # f_2 appears among the coefficients before dropping constant ones
    raw = _polynomial_expansion(full, full.loss, full.data, [None])
    assert sp.simplify(raw.coefficients[0] + s * x) == 0
    for eq in (smfsym.sme(p, order=2), smfsym.smf(p, order=2)):
        assert sp.simplify(eq.drift[0] + (1 + eta / 2) * x) == 0
    assert smfsym.smf(p).diffusion == sp.Matrix([[sp.sqrt(eta) * s]])
    assert smfsym.sme(p).diffusion == sp.Matrix([[sp.sqrt(eta) * s]])
    assert smfsym.sme(p, order=1).drift == sp.Matrix([[-x]])


def test_chaos_f2_of_gaussian_quadratic():
    """f_2 = E[f He_2/sqrt 2] = s^2/sqrt(2), via the public expectation."""
    x, s = sp.Symbol("x"), sp.Symbol("s", positive=True)
    xi = smfsym.normal("xi", std=s)
    e2 = xi.law.orthonormal_polynomials(2)[2]
    f2 = smfsym.expectation((x - xi) ** 2 / 2 * e2)
    assert sp.simplify(f2 - s**2 / sp.sqrt(2)) == 0


@pytest.mark.parametrize("d", [1, 3])
def test_linear_regression_identity_features(d):
    x = sp.symbols(f"x0:{d}")
    s = sp.Symbol("s", positive=True)
    a = smfsym.normal("a", d)
    eps = smfsym.normal("eps", std=s)
    p = smfsym.Problem((sum(ai * xi for ai, xi in zip(a, x)) - eps) ** 2 / 2, x)
    X = sp.Matrix(x)
    r2 = (X.T * X)[0, 0]
    assert sp.expand(p.F - (r2 + s**2) / 2) == 0
    assert is_zero_matrix(p.grad_F - X)
    assert is_zero_matrix(p.hessian - sp.eye(d))
    assert is_zero_matrix(p.sigma - ((r2 + s**2) * sp.eye(d) + X * X.T))
    y = sp.symbols(f"y0:{d}")
    Y = sp.Matrix(y)
    assert is_zero_matrix(p.cross_covariance(y) - ((X.T * Y)[0, 0] + s**2) * sp.eye(d) - Y * X.T)


def test_linear_regression_correlated_features_isserlis():
    x = sp.symbols("x0:2")
    c = sp.Symbol("c")
    C = sp.Matrix([[2, c], [c, 1]])
    a = smfsym.normal("a", 2, cov=C)
    eps = smfsym.normal("eps", std=sp.Rational(1, 3))
    p = smfsym.Problem((a[0] * x[0] + a[1] * x[1] - eps) ** 2 / 2, x)
    X = sp.Matrix(x)
    q = (X.T * C * X)[0, 0]
    assert sp.expand(p.F - (q + sp.Rational(1, 9)) / 2) == 0
    # Isserlis: Cov(a a^T x, a a^T x) = (x^T C x) C + C x x^T C
    assert is_zero_matrix(p.sigma - ((q + sp.Rational(1, 9)) * C + C * X * X.T * C))
    # whitened chaos expansion still satisfies Parseval exactly (numeric c)
    pn = smfsym.Problem((a[0] * x[0] + a[1] * x[1] - eps) ** 2 / 2, x)
    num = {c: sp.Rational(1, 2)}
    flow = smfsym.smf(pn)
    assert is_zero_matrix((flow.noise_covariance() - flow.eta * pn.sigma).xreplace(num))


def test_rademacher_math_section_5():
    x, y = sp.symbols("x y")
    eta = sp.Symbol("eta", positive=True)
    r = smfsym.rademacher("r")
    p = smfsym.Problem((1 + r) * x**2 / 2, [x])
    assert p.F == x**2 / 2
    assert p.sigma == sp.Matrix([[x**2]])
    eq = smfsym.sme(p)
    assert eq.diffusion == sp.Matrix([[sp.sqrt(eta) * sp.Abs(x)]])
    assert eq.nondifferentiable() == [sp.Abs(x)]
    flow = smfsym.smf(p)
    assert flow.diffusion == sp.Matrix([[-sp.sqrt(eta) * x]])
    assert flow.nondifferentiable() == []
    # two points, one noise: SMF gives eta x y = eta Sigma(x, y); SME gives eta |x||y|
    assert flow.two_point_covariance([y]) == sp.Matrix([[eta * x * y]])
    assert sp.expand(eta * p.cross_covariance([y])[0, 0] - eta * x * y) == 0
    assert eq.two_point_covariance([y]) == sp.Matrix([[eta * sp.Abs(x) * sp.Abs(y)]])
    assert sp.simplify(flow.drift[0] + (1 + eta / 2) * x) == 0


def test_generator_of_ou():
    x = sp.Symbol("x")
    ou = smfsym.SDE([-x], [[2]], state=[x])
    assert sp.expand(ou.generator(x**2) - (-2 * x**2 + 4)) == 0
    assert ou.generator(x) == -x


def test_batch_scaling_iid_and_without_replacement():
    import numpy as np

    x = sp.Symbol("x")
    s = sp.Symbol("s", positive=True)
    xi = smfsym.normal("xi", std=s)
    B = sp.Symbol("B", positive=True, integer=True)
    p = smfsym.Problem((x - xi) ** 2 / 2, [x], batch_size=B)
    assert sp.simplify(p.sigma[0, 0] - s**2 / B) == 0
    flow = smfsym.smf(p)
    assert sp.simplify(flow.noise_covariance()[0, 0] - flow.eta * s**2 / B) == 0
    data = np.array([[0.0], [1.0], [3.0], [4.0]])
    (z,) = smfsym.empirical(data, ["z"])
    full = smfsym.Problem((x - z) ** 2 / 2, [x])
    wor = smfsym.Problem((x - z) ** 2 / 2, [x], batch_size=2, sampling="without_replacement")
    factor = sp.Rational(4 - 2, 2 * (4 - 1))
    assert abs(float(wor.sigma[0, 0]) - float(factor) * float(full.sigma[0, 0])) < 1e-12
    assert abs(float(full.sigma[0, 0]) - np.var(data)) < 1e-12
