"""Momentum SGD and its SME / SMF in the scaling 1 - beta = lambda sqrt(eta) (docs/theory.md §7)."""
import warnings

import numpy as np
import pytest
import sympy as sp

import smfsym
from smfsym.simulation.exact import PolynomialSpace, exact_sde_mean
from smfsym import Numerics
from smfsym.optimizers import Momentum
from smfsym.optimizers import beta_for, friction, momentum_latex, momentum_model, simulate_momentum_sgd
from smfsym.studies.optimizer_weak_error import exact_momentum_sgd_mean, momentum_weak_error
from smfsym.studies.momentum_multipoint import npoint_model
from smfsym.studies.optimizer_weak_error import _momentum_step_map
from smfsym.studies import fit_order

x, y = sp.symbols("x y")
ETAS = [1 / 100, 1 / 400, 1 / 1600]  # h = 1/10, 1/20, 1/40: orders are slopes against h


@pytest.fixture(scope="module")
def rademacher():
    r = smfsym.rademacher("r")
    return smfsym.Problem((1 + r) * x**2 / 2, [x])


def test_beta_zero_is_plain_sgd(regression):
    a = simulate_momentum_sgd(regression, [1.0, -0.5], 6, 0.1, 0.0, n_paths=3000, seed=9)
    b = smfsym.simulate_sgd(regression, [1.0, -0.5], 6, 0.1, n_paths=3000, seed=9)
    assert np.allclose(a.states[..., :2], b.states, rtol=1e-13, atol=1e-15)


@pytest.mark.slow  # seconds: the slow tier (CI runs both)
@pytest.mark.parametrize("nesterov,correction", [(False, None), (True, False)])
def test_exact_orders_state_dependent_noise(regression, nesterov, correction):
    """Exact weak errors of E x^2 + y: slopes 1 and 2 in h = sqrt(eta), heavy ball (noise-corrected SMF) and
    Nesterov (drift correction only: enough for order 2)."""
    st = momentum_weak_error(regression, x**2 + y, [1.0, -0.5, 0.5, 0.0], 1.0, ETAS + [1 / 6400],
                             Momentum(friction=1.5, nesterov=nesterov, noise_correction=correction))
    assert st.meta["method"] == "exact"
    assert abs(st.orders["smf1"].slope - 1) < 0.15
    assert abs(st.orders["smf2"].slope - 2) < 0.15


def test_exact_orders_sme_closed_form_root():
    p = smfsym.Problem((x - smfsym.normal("xi", std=2)) ** 2 / 2, [x])
    st = momentum_weak_error(p, x**2, [1.0], 1.0, ETAS + [1 / 6400], 1.0, models=["sme1", "sme2"])
    assert abs(st.orders["sme1"].slope - 1) < 0.15
    assert abs(st.orders["sme2"].slope - 2) < 0.15
    assert "vs log h (h = sqrt(eta))" in repr(st)  # momentum orders are fitted in h, and say so


@pytest.mark.parametrize("nesterov", [False, True])
def test_order2_drift_terms_are_needed(regression, nesterov):
    """Swapping the heavy-ball and Nesterov curvature terms (kappa Hess F P) costs the order: not decoration."""
    lam = sp.Rational(3, 2)
    right = momentum_model(regression, "smf", 2, lam=lam, nesterov=nesterov)
    wrong = momentum_model(regression, "smf", 2, lam=lam, nesterov=not nesterov)
    phi, z0 = x, [0.0, 0.0, 2.0, 0.0]
    space = PolynomialSpace(right.state, 1)
    errs_ok, errs_wrong = [], []
    for eta in ETAS:
        er = sp.nsimplify(eta)
        hr = sp.sqrt(er)
        k = int(1 / hr)
        sgd = exact_momentum_sgd_mean(regression, phi, right.state, z0, er, 1 - lam * hr, k, nesterov=nesterov)
        errs_ok.append(exact_sde_mean(right, phi, z0, er, 1, space) - sgd)
        errs_wrong.append(exact_sde_mean(wrong, phi, z0, er, 1, space) - sgd)
    hs = np.sqrt(ETAS)
    assert abs(fit_order(hs, errs_ok)[0] - 2) < 0.15
    # the swapped model is order 1 (pre-asymptotic slope between 0.7 and 1.1 here) and far worse
    assert fit_order(hs, errs_wrong)[0] < 1.5
    assert abs(errs_wrong[-1]) > 10 * abs(errs_ok[-1])


def test_exact_momentum_sgd_matches_monte_carlo(regression):
    eta, lam = 0.04, 1.5
    beta, k = beta_for(lam, eta), 8
    exact = exact_momentum_sgd_mean(regression, x * y + x**2, momentum_model(regression, "smf", 1).state,
                                    [1.0, -0.5, 0.5, 0.0], eta, sp.Rational(7, 10), k)
    r = simulate_momentum_sgd(regression, [1.0, -0.5], k, eta, beta, v0=[0.1, 0.0], n_paths=100_000, seed=3,
                              store=False, functions={"phi": lambda s: s[..., 0] * s[..., 1] + s[..., 0] ** 2})
    assert beta == pytest.approx(0.7)
    assert abs(r.mean("phi")[-1] - exact) < 4 * r.sem("phi")[-1]


def test_parseval_for_the_momentum_noise(regression):
    """The SMF velocity noise of two points has covariance sqrt(eta) Sigma(x, x') (order 1), none on x."""
    m = momentum_model(regression, "smf", 1)
    yy = sp.symbols("u v q w")
    C = m.two_point_covariance(yy)
    S = regression.cross_covariance(yy[:2])
    d = 2
    assert sp.simplify(C[d:, d:] - sp.sqrt(m.eta) * S) == sp.zeros(2, 2)
    assert C[:d, :] == sp.zeros(d, 2 * d)
    assert momentum_model(regression, "smf", 2, noise_correction=False).two_point_covariance(yy) == C
    # with the order-2 noise correction the difference is O(eta), one factor sqrt(eta) below the leading term
    m2 = momentum_model(regression, "smf", 2)
    e = sp.Symbol("e", positive=True)
    diff = (m2.two_point_covariance(yy) - C).subs(m2.eta, e**4).applyfunc(sp.expand)
    assert all(sp.Poly(v, e).monoms()[-1][0] >= 4 for v in diff if v != 0)
    assert any(v != 0 for v in diff)


@pytest.mark.parametrize("nesterov", [False, True])
def test_the_noise_correction_is_the_theorys_covariance(regression, nesterov):
    """docs/theory.md §7: with h = sqrt(eta) the corrected SMF's noise covariance is h a with a_xp = h/2 Sigma and
    a_pp = Sigma + h (lambda Sigma - kappa/2 p . grad Sigma) + O(h^2) (kappa = 1 heavy ball, -1 Nesterov), and
    a_xx = O(h^2). The tests above checked only that the correction is O(eta) and not zero: (1 + h lambda) in
    place of (1 + h lambda / 2) survived them (audit 16, M5). Exact series in e = eta^(1/4)."""
    lam = sp.Rational(3, 2)
    m2 = momentum_model(regression, "smf", 2, lam=lam, nesterov=nesterov)
    d, kappa = regression.dim, -1 if nesterov else 1
    x, p = m2.state[:d], m2.state[d:]
    e = sp.Symbol("e", positive=True)
    a = (m2.noise_covariance() / sp.sqrt(m2.eta)).subs(m2.eta, e**4).applyfunc(sp.expand)
    S = sp.Matrix(regression.sigma)
    dS = sp.zeros(d, d)
    for xi, pi in zip(x, p):
        dS += pi * S.diff(xi)

    def coeff(M, k):
        return M.applyfunc(lambda v: sp.expand(v).coeff(e, k))

    assert coeff(a[:d, :d], 0) == sp.zeros(d, d) and coeff(a[:d, :d], 2) == sp.zeros(d, d)
    assert (coeff(a[:d, d:], 0), sp.simplify(coeff(a[:d, d:], 2) - S / 2)) == (sp.zeros(d, d), sp.zeros(d, d))
    assert sp.simplify(coeff(a[d:, d:], 0) - S) == sp.zeros(d, d)
    assert sp.simplify(coeff(a[d:, d:], 2) - (lam * S - sp.Rational(kappa, 2) * dS)) == sp.zeros(d, d)


def _npoint_exact(problem, order, eta, lam, phis, T=1):
    m = momentum_model(problem, "smf", order, lam=lam)
    M, blocks = npoint_model(m, 2)
    z0 = [1, 0, -1, 0]
    space = PolynomialSpace(M.state, 2)
    return [exact_sde_mean(M, phi(blocks), z0, eta, T, space) for phi in phis]


def test_npoint_exact_orders_rademacher(rademacher):
    """Two starts sharing samples: E[X(1) X(-1)] of the momentum SMF against momentum SGD, exact: slopes 1 and 2."""
    lam = 1
    errs = {1: [], 2: []}
    for eta in ETAS:
        er = sp.nsimplify(eta)
        h = sp.sqrt(er)
        p_sym = momentum_model(rademacher, "smf", 1).state[1:]
        maps, st = _momentum_step_map(rademacher, p_sym, er, 1 - lam * h, False, points=2)
        sgd = exact_momentum_sgd_mean(rademacher, st[0] * st[2], st, [1, 0, -1, 0], er, 1 - lam * h, int(1 / h),
                                      step_map=maps)
        for order in (1, 2):
            (val,) = _npoint_exact(rademacher, order, er, lam, [lambda b: b[0][0] * b[1][0]])
            errs[order].append(val - sgd)
    hs = np.sqrt(ETAS)
    assert abs(fit_order(hs, errs[1])[0] - 1) < 0.15
    assert abs(fit_order(hs, errs[2])[0] - 2) < 0.15


@pytest.mark.slow  # seconds: the slow tier (CI runs both)
def test_npoint_monte_carlo_smf_matches_sgd_and_shared_sme_does_not(rademacher):
    """Covariance of X(1), X(-1) at t = 1, eta = 1/1600: momentum SGD (shared samples) vs the order-2 SMF
    within 4.5 SE; the shared-W SME gets the sign of the correlation wrong (> 20 SE away)."""
    eta, lam = 1 / 1600, 1.0
    h = np.sqrt(eta)
    k = int(round(1 / h))
    # model error of the covariance, exact: far below the Monte Carlo standard error used here
    c_sgd, c_smf = _cov_exact(rademacher, eta, lam, k)
    n = 20_000
    x0 = [[1.0], [-1.0]]
    cov = {"cov": lambda s: s[:, 0, 0] * s[:, 1, 0]}
    r = simulate_momentum_sgd(rademacher, x0, k, eta, beta_for(lam, eta), n_paths=n, seed=21, save_at=[k])
    a = r.states[-1]
    smf = momentum_model(rademacher, "smf", 2, lam=1)
    sme = momentum_model(rademacher, "sme", 1, lam=1)
    out = {}
    for name, sde, scheme in (("smf", smf, "weak2"), ("sme", sme, "euler")):
        rr = smfsym.simulate(sde, [[1.0, 0.0], [-1.0, 0.0]], k * h, eta=eta, dt=h / 8, scheme=scheme, n_paths=n,
                             seed=22)
        out[name] = rr.states[-1]

    def cov_se(s):
        u, v = s[:, 0, 0], s[:, 1, 0]
        w = (u - u.mean()) * (v - v.mean())
        return w.mean(), w.std(ddof=1) / np.sqrt(w.size)

    cs, ss = cov_se(a)
    cm, sm = cov_se(out["smf"])
    ce, se_ = cov_se(out["sme"])
    assert abs(c_smf - c_sgd) < 0.25 * np.hypot(ss, sm)
    assert abs(cs - c_sgd) < 4.5 * ss  # the simulator against the exact SGD covariance
    assert abs(cm - cs) < 4.5 * np.hypot(ss, sm)
    assert ce - cs > 20 * np.hypot(ss, se_)  # shared W: positively correlated, SGD: exactly anti-correlated
    assert np.corrcoef(a[:, 0, 0], a[:, 1, 0])[0, 1] == pytest.approx(-1, abs=1e-12)
    assert np.corrcoef(out["smf"][:, 0, 0], out["smf"][:, 1, 0])[0, 1] == pytest.approx(-1, abs=1e-9)


def _cov_exact(problem, eta, lam, k):
    er = sp.nsimplify(eta)
    h = sp.sqrt(er)
    p_sym = momentum_model(problem, "smf", 1).state[1:]
    maps, st = _momentum_step_map(problem, p_sym, er, 1 - lam * h, False, points=2)
    z0 = [1, 0, -1, 0]
    e = lambda phi: exact_momentum_sgd_mean(problem, phi, st, z0, er, 1 - lam * h, k, step_map=maps)
    c_sgd = e(st[0] * st[2]) - e(st[0]) * e(st[2])
    v = _npoint_exact(problem, 2, er, lam, [lambda b: b[0][0] * b[1][0], lambda b: b[0][0], lambda b: b[1][0]],
                      T=sp.nsimplify(k) * h)
    return c_sgd, v[0] - v[1] * v[2]


def test_latex_states_the_regime(regression):
    tex = momentum_latex(momentum_model(regression, "smf", 2))
    assert r"\lambda\sqrt{\eta}" in tex and r"\begin{aligned}" in tex and "momentum" in tex


def test_data_set_and_matrix_sqrt_noise():
    rng = np.random.default_rng(0)
    z, w = smfsym.empirical(rng.normal(size=(6, 2)), "z w")
    p = smfsym.Problem(sp.log(1 + sp.exp(-w * (x * z + y))), [x, y])
    for order in (1, 2):
        m = momentum_model(p, "smf", order, lam=1)
        assert m.noise_kind == "template" and m.dim == 4
        res = smfsym.simulate(m, [0.1, 0.2, 0.0, 0.0], 0.2, eta=0.01, n_paths=64, seed=0)
        assert res.success and np.isfinite(res.states).all()
    a = smfsym.normal("a")
    b = smfsym.normal("b")
    q = smfsym.Problem((a * x + b * y - a * b) ** 2 / 2, [x, y])
    m = momentum_model(q, "sme", 2, lam=1)
    assert m.noise_kind == "sqrt"
    res = smfsym.simulate(m, [0.1, 0.2, 0.0, 0.0], 0.2, eta=0.01, n_paths=64, seed=0)
    assert res.success and np.isfinite(res.states).all()


@pytest.mark.parametrize("call,exc,match", [
    (lambda p: friction(1.0, 0.1), ValueError, "`beta` must lie in"),
    (lambda p: beta_for(20, 0.1), ValueError, "outside"),
    (lambda p: simulate_momentum_sgd(p, [1.0, 0.0], 3, 0.1, 1.2), ValueError, "`beta` must be a number"),
    (lambda p: simulate_momentum_sgd(p, [1.0, 0.0], 3, 0.1, 0.5, v0=[1.0]), ValueError, "`v0` must be finite"),
    (lambda p: momentum_model(p, "smf", 3), ValueError, "`order` must be 1 or 2"),
    (lambda p: momentum_model(p, "adam"), ValueError, "`kind` must be"),
    (lambda p: momentum_model(p, velocity=[x]), ValueError, "`velocity` must be 2"),
    (lambda p: momentum_weak_error(p, x, [1.0, 0.0], 1.0, [0.01, 0.0025], -1), ValueError, "friction"),
    (lambda p: momentum_weak_error(p, x, [1.0, 0.0], 1.0, [0.01], 1), ValueError, "at least two"),
])
def test_bad_input(regression, call, exc, match):
    with pytest.raises(exc, match=match):
        call(regression)


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
def test_monte_carlo_study_agrees_with_exact(regression):
    kw = dict(models=["smf2"], momentum=Momentum(friction=1.5))
    ex = momentum_weak_error(regression, x * y, [1.0, -0.5, 0.5, 0.0], 1.0, [1 / 25, 1 / 100], **kw)
    with pytest.warns(smfsym.OrderWarning, match="cannot be resolved"):  # two etas, errors near the noise
        mc = momentum_weak_error(regression, x * y, [1.0, -0.5, 0.5, 0.0], 1.0, [1 / 25, 1 / 100], n_paths=10_000,
                                 seed=5, numerics=Numerics(method="montecarlo", dt_fraction=0.25), **kw)
    assert mc.meta["method"] == "montecarlo"
    for a, b in zip(ex.rows, mc.rows):
        assert b["se"] > 0
        assert abs(a["error"] - b["error"]) < 4 * b["se"] + b["solver_error"], (a, b)


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
def test_momentum_multipoint_exact_non_product_noise():
    """Sigma(x, y) = 9xy/8 + 5/4 is not Sigma(x)^{1/2} Sigma(y)^{1/2}: the order-2 momentum SMF's two-point
    product is order 2 in h, its covariance (itself O(h)) order 3 with the noise correction."""
    from smfsym.studies.momentum_multipoint import momentum_multipoint

    a = smfsym.normal("a", mean=1, std=sp.Rational(1, 2))
    p = smfsym.Problem((a * x - smfsym.normal("z")) ** 2 / 2, [x])
    st = momentum_multipoint(p, [[1.0], [-2.0]], 1.0, ETAS, lam=1.0, models=["smf2"], stats=["product", "covariance"])
    assert abs(st.orders[("smf2", "product")].slope - 2) < 0.15
    assert abs(st.orders[("smf2", "covariance")].slope - 3) < 0.15
    with pytest.raises(smfsym.simulation.exact.NotClosedError, match="not polynomial"):
        momentum_multipoint(p, [[1.0], [-2.0]], 1.0, ETAS[:2], lam=1.0, models=["sme1"])
    with pytest.raises(ValueError, match="`starts` must be two finite points"):
        momentum_multipoint(p, [[1.0]], 1.0, ETAS, lam=1.0)


@pytest.mark.parametrize("etas,lam,exc,match", [
    # rows at t = 1.039, 0.990 and 1.0 were compared and fitted together
    ([0.01, 0.03, 0.02], 1.0, ValueError, r"`etas`: SGD's step h = sqrt\(eta\) must divide `t_end` = 1 .*0\.03"),
    ([0.01, 0.01], 1.0, ValueError, "`etas` must be distinct"),  # gave NaN orders
    ([0.01, 0.0025], True, TypeError, "`lam` must be a positive number; got True"),  # sympy's BooleanAtom error
    ([0.01, 0.0025], sp.Symbol("q"), TypeError, "`lam` must be a number; got the symbolic q"),
])
def test_momentum_multipoint_refuses_rows_at_other_horizons_and_bad_friction(etas, lam, exc, match):
    from smfsym.studies.momentum_multipoint import momentum_multipoint

    p = smfsym.Problem((smfsym.normal("a", mean=1, std=sp.Rational(1, 2)) * x - smfsym.normal("z")) ** 2 / 2, [x])
    with pytest.raises(exc, match=match):
        momentum_multipoint(p, [[1.0], [-1.0]], 1.0, etas, lam, models=["smf2"], stats=["covariance"])


def test_unknown_kind_is_one_clear_message():
    """The message was two strings by a misplaced quote (found when the imports were hoisted)."""
    x = sp.Symbol("x")
    p = smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x])
    for build in (lambda: momentum_model(p, "ode"),
                  lambda: smfsym.scheduled_model(p, smfsym.Schedule(sp.Integer(1), sp.Symbol("t")), kind="ode")):
        with pytest.raises(ValueError) as info:
            build()
        assert len(info.value.args) == 1 and "must be 'smf', 'sme' or 'gf'; got 'ode'" in str(info.value)


def test_momentum_keywords_warn_and_give_the_numbers_of_the_rule_object(regression):
    """The old keywords (beta, nesterov, scaled; lam, nesterov, noise_correction, p0) still work for one release,
    with a DeprecationWarning, and give bitwise the numbers of ``Momentum`` (issue 16)."""
    with pytest.warns(DeprecationWarning, match=r"momentum=smfsym\.optimizers\.Momentum\(nesterov=\.\.\.\)"):
        old = simulate_momentum_sgd(regression, [1.0, -0.5], 6, 0.1, 0.6, nesterov=True, scaled=False, n_paths=500,
                                    seed=4)
    new = simulate_momentum_sgd(regression, [1.0, -0.5], 6, 0.1, Momentum(beta=0.6, nesterov=True, scaled=False),
                                n_paths=500, seed=4)
    assert np.array_equal(old.states, new.states) and old.extra["scaled"] is False
    with pytest.warns(DeprecationWarning, match=r"Momentum\(beta=\.\.\.\)"):
        kw = simulate_momentum_sgd(regression, [1.0, -0.5], 6, 0.1, beta=0.6, n_paths=500, seed=4)
    assert np.array_equal(kw.states, simulate_momentum_sgd(regression, [1.0, -0.5], 6, 0.1, 0.6, n_paths=500,
                                                           seed=4).states)
    args = (regression, x * y, [1.0, -0.5], 0.4, [1 / 25, 1 / 100])
    run = dict(models=["smf2"], n_paths=2000, seed=5, numerics=Numerics(method="montecarlo"),
               options=smfsym.RunOptions(progress=False))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", smfsym.OrderWarning)  # two etas, errors near the noise
        with pytest.warns(DeprecationWarning) as record:
            old = momentum_weak_error(*args, lam=1.5, nesterov=True, noise_correction=False, p0=[0.5, 0.0], **run)
        new = momentum_weak_error(*args[:2], [1.0, -0.5, 0.5, 0.0], *args[3:],
                                  Momentum(friction=1.5, nesterov=True, noise_correction=False), **run)
    messages = " ".join(str(w.message) for w in record)
    assert "Momentum(friction=...)" in messages and "goes in `x0` = (x, P)" in messages
    assert [(r["value"], r["sgd"], r["se"]) for r in old.rows] == [(r["value"], r["sgd"], r["se"]) for r in new.rows]
    assert old.meta == new.meta


@pytest.mark.parametrize("call,exc,match", [
    (lambda p: simulate_momentum_sgd(p, [1.0, 0.0], 3, 0.1, Momentum(beta=0.5), nesterov=True), TypeError,
     "`nesterov` is given twice"),
    (lambda p: simulate_momentum_sgd(p, [1.0, 0.0], 3, 0.1), TypeError, "missing the momentum rule"),
    (lambda p: simulate_momentum_sgd(p, [1.0, 0.0], 3, 0.1, "0.5"), TypeError, "`momentum` must be a smfsym"),
    (lambda p: Momentum(beta=0.5, friction=1.0), ValueError, "exactly one of `beta` and `friction`"),
    (lambda p: Momentum(friction=1.0, nesterov="yes"), TypeError, "`nesterov` must be True or False"),
    (lambda p: momentum_weak_error(p, x, [1.0, 0.0], 1.0, [0.01, 0.0025], Momentum(beta=0.9)), ValueError,
     "must give the friction"),
    (lambda p: momentum_weak_error(p, x, [1.0, 0.0], 1.0, [0.01, 0.0025], Momentum(friction=1.0, scaled=False)),
     ValueError, "`momentum.scaled`"),
    (lambda p: momentum_weak_error(p, x, [1.0, 0.0, 0.5], 1.0, [0.01, 0.0025], 1.0), ValueError, "`x0` must be"),
])
def test_bad_momentum_rule(regression, call, exc, match):
    with pytest.raises(exc, match=match):
        call(regression)
