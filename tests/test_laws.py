"""Laws: moments against scipy.stats, orthonormal bases, samplers, sympy.stats input."""
import numpy as np
import pytest
import scipy.stats as ss
import sympy as sp
import sympy.stats as st

import smfsym

LAWS = [
    (lambda: smfsym.normal("z", mean=1, std=2), ss.norm(1, 2)),
    (lambda: smfsym.uniform("u", -1, 3), ss.uniform(-1, 4)),
    (lambda: smfsym.exponential("e", 2), ss.expon(scale=0.5)),
    (lambda: smfsym.gamma("g", 3, sp.Rational(1, 2)), ss.gamma(3, scale=0.5)),
    (lambda: smfsym.beta("b", 2, 3), ss.beta(2, 3)),
    (lambda: smfsym.bernoulli("c", sp.Rational(1, 3)), ss.bernoulli(1 / 3)),
    (lambda: smfsym.student_t("t", 9), ss.t(9)),
    (lambda: smfsym.categorical("k", [0, 1, 5], [sp.Rational(1, 2), sp.Rational(1, 3), sp.Rational(1, 6)]),
     ss.rv_discrete(values=([0, 1, 5], [1 / 2, 1 / 3, 1 / 6]))),
]


@pytest.mark.parametrize("make,ref", LAWS)
def test_moments_match_scipy(make, ref):
    law = make().law
    for n in range(1, 5):
        assert float(law.moment(n)) == pytest.approx(ref.moment(n), rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("make,ref", LAWS)
def test_bases_are_orthonormal(make, ref):
    law = make().law
    ps = law.orthonormal_polynomials(3)
    for i, p in enumerate(ps):
        for j, q in enumerate(ps):
            assert sp.simplify(law.expect_poly(p * q) - (1 if i == j else 0)) == 0


@pytest.mark.parametrize("make,ref", LAWS)
def test_quadrature_integrates_polynomials(make, ref):
    law = make().law
    nodes, w = law.quadrature(8)
    assert w.sum() == pytest.approx(1.0)
    for n in range(1, 5):
        if law.family == "StudentT":
            continue  # quantile rule: not exact for polynomials
        assert w @ nodes[:, 0] ** n == pytest.approx(float(law.moment(n)), rel=1e-9)


@pytest.mark.parametrize("make,ref", LAWS)
def test_sampler_mean_within_standard_error(make, ref):
    law = make().law
    rng = np.random.default_rng(1)
    n = 200_000
    sample = law.sample(rng, n)[:, 0]
    se = ref.std() / np.sqrt(n)
    assert abs(sample.mean() - ref.mean()) < 5 * se  # 5 standard errors


def test_symbolic_parameters_stay_symbolic():
    s = sp.Symbol("s")
    law = smfsym.normal("z", std=s).law
    assert law.moment(4) == 3 * s**4
    a, b = sp.symbols("a b")
    assert sp.simplify(smfsym.uniform("u", a, b).law.moment(1) - (a + b) / 2) == 0


def test_hermite_legendre_laguerre_closed_forms():
    z = smfsym.normal("z")
    assert sp.expand(z.law.orthonormal_polynomials(2)[2] - (z**2 - 1) / sp.sqrt(2)) == 0
    u = smfsym.uniform("u", -1, 1)
    assert sp.expand(u.law.orthonormal_polynomials(1)[1] - sp.sqrt(3) * u) == 0
    e = smfsym.exponential("e")
    assert e.law.orthonormal_polynomials(1)[1] == 1 - e


def test_finite_basis_stops_at_support_size():
    r = smfsym.rademacher("r")
    assert len(r.law.orthonormal_polynomials(5)) == 2


@pytest.mark.parametrize("rv,ours", [
    (lambda: st.Normal("n", 1, 2), lambda: smfsym.normal("n", mean=1, std=2)),
    (lambda: st.Uniform("u", 0, 2), lambda: smfsym.uniform("u", 0, 2)),
    (lambda: st.Exponential("e", 3), lambda: smfsym.exponential("e", 3)),
    (lambda: st.Gamma("g", 2, 3), lambda: smfsym.gamma("g", 2, 3)),
    (lambda: st.Beta("b", 2, 5), lambda: smfsym.beta("b", 2, 5)),
    (lambda: st.Bernoulli("c", sp.Rational(1, 4)), lambda: smfsym.bernoulli("c", sp.Rational(1, 4))),
    (lambda: st.Die("d", 4), lambda: smfsym.categorical("d", [1, 2, 3, 4])),
    (lambda: st.DiscreteUniform("k", [1, 3, 7]), lambda: smfsym.categorical("k", [1, 3, 7])),
    (lambda: st.FiniteRV("f", {0: sp.Rational(1, 3), 2: sp.Rational(2, 3)}),
     lambda: smfsym.categorical("f", [0, 2], [sp.Rational(1, 3), sp.Rational(2, 3)])),
])
def test_sympy_stats_random_symbols_are_accepted(rv, ours):
    x = sp.Symbol("x")
    p1 = smfsym.Problem((x - rv()) ** 2 * x / 2, [x])
    p2 = smfsym.Problem((x - ours()) ** 2 * x / 2, [x])
    assert sp.simplify(p1.F - p2.F) == 0
    assert sp.simplify(p1.sigma[0, 0] - p2.sigma[0, 0]) == 0
