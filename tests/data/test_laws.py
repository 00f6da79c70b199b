"""Laws: moments against scipy.stats, orthonormal bases, samplers, sympy.stats input."""
import numpy as np
import pytest
import scipy.stats as ss
import sympy as sp
import sympy.stats as st

import smfsym
from smfsym.symbolic.lambdify import compile_exprs

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


# --------------------------------------------------------------------------- weighted data sets


def _weighted_set(rng):
    data = rng.normal(size=(7, 2))
    w = rng.uniform(0.1, 3.0, size=7)  # relative weights, normalised by empirical()
    return data, w, w / w.sum()


def test_empirical_weights_honoured_in_F_sigma_and_chaos():
    rng = np.random.default_rng(3)
    data, w_raw, w = _weighted_set(rng)
    z, y = smfsym.empirical(data, "z y", weights=w_raw)
    x0, x1 = sp.symbols("x0 x1")
    p = smfsym.Problem((x0 * z + x1 - y) ** 2 / 2, [x0, x1])
    pt = {x0: 0.7, x1: -0.3}
    # hand sums over the rows
    r = 0.7 * data[:, 0] - 0.3 - data[:, 1]
    F_hand = np.sum(w * r**2 / 2)
    G = np.stack([r * data[:, 0], r], axis=1)  # per-row gradients
    gbar = w @ G
    S_hand = (G - gbar).T @ ((G - gbar) * w[:, None])
    assert abs(float(p.F.subs(pt)) - F_hand) < 1e-12
    np.testing.assert_allclose(np.array(p.sigma.subs(pt), dtype=float), S_hand, atol=1e-12)
    # chaos columns reproduce the weighted Sigma (Parseval)
    C = np.array(p.chaos().columns.subs(pt), dtype=float)
    np.testing.assert_allclose(C @ C.T, S_hand, atol=1e-10)
    # an unweighted set gives a different answer (the weights are not ignored)
    z2, y2 = smfsym.empirical(data, "z y")
    p2 = smfsym.Problem((x0 * z2 + x1 - y2) ** 2 / 2, [x0, x1])
    assert abs(float(p2.F.subs(pt)) - F_hand) > 1e-3


def test_empirical_weights_honoured_for_non_polynomial_losses():
    rng = np.random.default_rng(4)
    data, w_raw, w = _weighted_set(rng)
    z, y = smfsym.empirical(data, "z y", weights=w_raw)
    x0 = sp.Symbol("x0")
    p = smfsym.Problem(sp.log(1 + sp.exp(-x0 * z * y)), [x0])
    f = compile_exprs([p.F, p.sigma[0, 0]], [x0])
    F, S = (float(v[0]) for v in f(np.array([[0.8]])))
    m = -0.8 * data[:, 0] * data[:, 1]
    g = -data[:, 0] * data[:, 1] / (1 + np.exp(-m))
    assert abs(F - w @ np.logaddexp(0, m)) < 1e-12
    assert abs(S - (w @ g**2 - (w @ g) ** 2)) < 1e-12
    # the SMF noise template of a data set carries the weights through sqrt(w_i) columns
    assert np.allclose(p.chaos().template.law.weights, w)


def test_empirical_sampler_draws_rows_with_their_weights():
    data = np.array([[0.0], [1.0], [2.0]])
    (z,) = smfsym.empirical(data, "z", weights=[1, 2, 7])
    draws = z.law.sample(np.random.default_rng(5), 40_000)[:, 0]
    for value, p in zip((0.0, 1.0, 2.0), (0.1, 0.2, 0.7)):
        freq = np.mean(draws == value)
        se = np.sqrt(p * (1 - p) / draws.size)
        assert abs(freq - p) < 5 * se  # 5 standard errors of a binomial frequency


@pytest.mark.timeout(20)
def test_a_256_value_categorical_sets_up_and_samples_fast():
    """Issue #15 §3.4: the sampler built the law's repr once per parameter (quadratic): 93 s to set up."""
    import time

    from smfsym.data.samplers import samplers_for

    n = 256
    t0 = time.perf_counter()
    z = smfsym.categorical("z", [sp.Rational(i, 10) for i in range(n)])
    for _ in range(5):  # the SGD simulator and the cost estimate build their samplers repeatedly
        (smp,) = samplers_for([z.law])
    draws = smp(np.random.default_rng(3), 40_000)[0]
    x = sp.Symbol("x")
    res = smfsym.simulate_sgd(smfsym.Problem((x - z) ** 2 / 2, [x]), x0=[0.0], n_steps=3, eta=0.1, n_paths=64,
                              seed=1)
    elapsed = time.perf_counter() - t0
    assert elapsed < 2.0, f"setting up and sampling a {n}-value categorical took {elapsed:.1f} s"
    assert set(np.unique(draws)) <= {i / 10 for i in range(n)} and len(np.unique(draws)) == n
    mean, sd = (n - 1) / 20, np.sqrt((n**2 - 1) / 12) / 10  # discrete uniform on {0, ..., 25.5}
    assert abs(draws.mean() - mean) < 5 * sd / np.sqrt(draws.size)  # 5 standard errors
    assert np.isfinite(res.mean()).all()
