"""Malladi et al.'s regime (1 - beta = c eta^2, eps = eps0/eta, noise sigma0/eta, t = k eta^2) for RMSprop
and Adam, and SGD with scaled noise: the SDEs are the paper's, the discrete optimizer is simulated from the
same map, and RMSprop's SDE is a weak approximation of order 1 in h = eta^2 (fitted slope)."""
import warnings

import numpy as np
import pytest
import sympy as sp

import smfsym
from smfsym.optimizers.regimes import (RegimeMap, SkewnessWarning, malladi_adam, malladi_rmsprop, noisy_sgd,
                                      simulate_regime)
from smfsym.studies.common import fit_order
from smfsym.symbolic.sde import MatrixSqrt

x, y = sp.symbols("x y")
QUIET = smfsym.RunOptions(progress=False)


@pytest.fixture(scope="module")
def quad():
    return smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x])


def test_rmsprop_sde_is_the_papers(quad):
    """dX = -(grad F dt + sigma0 Sigma^{1/2} dW) / (sigma0 sqrt(u) + eps0), du = c (Sigma - u) dt."""
    c, s0, e0 = sp.symbols("c sigma0 eps0", positive=True)
    m = malladi_rmsprop(quad, c=c, sigma0=s0, eps0=e0)
    u = m.state[1]
    P = s0 * sp.sqrt(u) + e0
    sde = m.sde()
    assert sp.simplify(sde.drift[0] + x / P) == 0 and sp.simplify(sde.drift[1] - c * (1 - u)) == 0
    assert sp.simplify(sde.diffusion[0, 0] ** 2 - s0**2 / P**2) == 0 and sde.diffusion[1, 0] == 0
    assert m.time_power == 2 and set(m.constants) == {c, s0, e0}


def test_rmsprop_update_is_raw_rmsprop_in_u(quad):
    """With v = sigma^2 u, sigma = sigma0/eta, eps = eps0/eta, 1 - beta = c eta^2, the map's step is
    PyTorch's RMSprop step (v first, eps outside the root) on a gradient with noise scaled by sigma."""
    eta, xi = sp.Symbol("eta", positive=True), quad.data[0]
    c, s0, e0 = sp.Rational(3, 2), sp.Rational(1, 2), sp.Rational(1, 5)
    m = malladi_rmsprop(quad, c=c, sigma0=s0, eps0=e0)
    u = m.state[1]
    sigma, eps, beta = s0 / eta, e0 / eta, 1 - c * eta**2
    g = x + sigma * (x - xi - x)
    v_new = beta * sigma**2 * u + (1 - beta) * g**2
    x_new = x - eta * g / (sp.sqrt(v_new) + eps)
    point = {x: sp.Rational(7, 10), u: sp.Rational(9, 10), xi: sp.Rational(-1, 3), eta: sp.Rational(1, 4)}
    assert abs(sp.N((m.update[0] - x_new).xreplace(point), 30)) < 1e-25
    assert abs(sp.N((m.update[1] - v_new / sigma**2).xreplace(point), 30)) < 1e-25


def test_adam_sde_and_time(quad):
    m = malladi_adam(quad, c1=2, c2=1, sigma0=1, eps0=sp.Rational(1, 10))
    xs, ms, us, t = m.state
    assert m.time_symbol == t and m.update[3] == t + m.eta**2
    sde = m.sde()
    g1, g2 = 1 - sp.exp(-2 * t), 1 - sp.exp(-t)
    want = -(sp.sqrt(g2) / g1) * ms / (sp.sqrt(us) + sp.sqrt(g2) / 10)
    assert sp.simplify(sde.drift[0] - want) == 0
    assert sp.simplify(sde.drift[1] - 2 * (x - ms)) == 0 and sde.drift[3] == 1
    assert sde.diffusion[1, 0] == 2 and sde.diffusion[0, 0] == 0  # sigma0 c1 Sigma^{1/2} drives m only


def test_non_diagonal_noise_is_a_matrix_sqrt():
    a = smfsym.normal("a")
    p = smfsym.Problem((x + y - a) ** 2 / 2 + a * x * y, [x, y])
    m = malladi_rmsprop(p)
    D = m.sde().diffusion
    assert isinstance(D, MatrixSqrt) and D.sigma.shape == (4, 4) and D.sigma[2, 2] == 0


def test_noisy_sgd_sde_depends_on_eta_over_batch(quad):
    s = sp.Symbol("sigma", positive=True)
    sde = noisy_sgd(quad, sigma=s).sde()
    assert sp.simplify(sde.diffusion[0, 0] ** 2 - sde.eta * s**2) == 0 and sde.drift[0] == -x


def test_simulation_times_inputs_and_refusals(quad):
    m = malladi_rmsprop(quad, c=1, sigma0=1, eps0=1)
    z0 = np.array([1.0, 0.0])  # v = 0: PyTorch's start
    r = simulate_regime(m, z0, 8, 0.5, n_paths=64, seed=0, save_at=[4, 8], options=QUIET)
    assert np.allclose(r.t, [1.0, 2.0]) and np.array_equal(z0, [1.0, 0.0])
    again = simulate_regime(m, z0, 8, 0.5, n_paths=64, seed=0, save_at=[4, 8], options=QUIET)
    assert np.array_equal(r.states, again.states)
    assert np.array_equal(m.simulate(z0, 8, 0.5, n_paths=64, seed=0, save_at=[4, 8], options=QUIET).states, r.states)
    with pytest.raises(TypeError, match="`rmap`"):
        simulate_regime(quad, [1.0], 4, 0.5)
    with pytest.raises(ValueError, match="`eta`"):
        simulate_regime(m, z0, 4, -0.5)
    with pytest.raises(ValueError, match="`values` must give numbers.*c"):
        simulate_regime(malladi_rmsprop(quad, c=sp.Symbol("c")), z0, 4, 0.5)
    with pytest.raises(ValueError, match="`problem` must have batch size 1"):
        malladi_rmsprop(smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x], batch_size=4))
    with pytest.raises(ValueError, match="`time_power`"):
        RegimeMap(quad, [x], [x], [0], None, time_power=3)
    with pytest.raises(ValueError, match="`state` must start with"):
        RegimeMap(quad, [y], [y], [0], None, time_power=1)
    with pytest.raises(ValueError, match="`update` uses symbols.*'q'"):
        RegimeMap(quad, [x], [x + sp.Symbol("q")], [0], None, time_power=1)
    with pytest.raises(smfsym.BlowUpError, match=r"non-finite state at step \d+ .* of the paths"):
        simulate_regime(noisy_sgd(quad), [1.0], 400, 3.0, n_paths=16, seed=0, options=QUIET)


def test_adam_discrete_runs_from_zero_time(quad):
    m = malladi_adam(quad, c1=1, c2=1, sigma0=1, eps0=sp.Rational(1, 2))
    r = simulate_regime(m, [1.0, 0.0, 0.0, 0.0], 16, 0.25, n_paths=2000, seed=1, options=QUIET)
    Z = r.states[-1]
    assert np.allclose(Z[:, 3], 1.0) and np.all(np.isfinite(Z)) and float(np.mean(Z[:, 0])) < 1.0


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
def test_rmsprop_weak_error_is_order_one_in_eta_squared(quad):
    """RMSprop (c = 1, sigma0 = 1/2, eps0 = 1/2) on (x - xi)^2 / 2, xi ~ N(0, 1), from x0 = 1, u0 = 1 = Sigma:
    the SDE keeps u = 1, so X is an Ornstein-Uhlenbeck process with P = sigma0 + eps0 = 1 and
    E X_t^2 = x0^2 e^{-2t} + sigma0^2 (1 - e^{-2t}) / 2 exactly. Against 10^6 optimizer paths per eta
    (eta = 1/2, 1/(2 sqrt 2), 1/4: h = eta^2 = 1/4, 1/8, 1/16, t = 1) every error is resolved (> 5 SE:
    measured about 0.010, 0.005, 0.0025 against SE 3e-4) and the fitted slope in h is 1 within its 95%
    interval (or 0.15 of it)."""
    m = malladi_rmsprop(quad, c=1, sigma0=sp.Rational(1, 2), eps0=sp.Rational(1, 2))
    t_end = 1.0
    exact = np.exp(-2 * t_end) + 0.125 * (1 - np.exp(-2 * t_end))  # sigma0^2 / (2 P) = 1/8
    hs, errs, ses = [], [], []
    for i, eta in enumerate([0.5, 0.5 / np.sqrt(2), 0.25]):
        n = int(round(t_end / eta**2))
        r = simulate_regime(m, [1.0, 1.0], n, eta, n_paths=1_000_000, seed=10 + i, options=QUIET,
                            save_at=smfsym.SaveAt(functions={"phi": lambda Z: Z[:, 0] ** 2}, store=False))
        hs.append(eta**2)
        errs.append(float(r.mean("phi")[-1]) - exact)
        ses.append(float(r.sem("phi")[-1]))
    assert all(abs(e) > 5 * s for e, s in zip(errs, ses)), (errs, ses)
    fit = fit_order(hs, errs, ses)
    assert fit.n_used == 3 and abs(fit[0] - 1) < 0.15 and fit[2] < 2, fit  # and order 2 excluded


def _one_step_moments(m, point, data_mean):
    """E of dx, du, dx^2, dx du, dx^3 over one exact step at ``point``, as coefficients of eta^0 .. eta^3."""
    eta = m.eta
    dx, du = [(new - z).xreplace(point) for new, z in zip(m.update, m.state)]

    def moment(expr):
        ser = sp.series(expr, eta, 0, 4).removeO()
        return [data_mean(sp.expand(ser.coeff(eta, k))) for k in range(4)]

    return [moment(e) for e in (dx, du, dx**2, dx * du, dx**3)]


def _close(got, want):
    return all(abs(float(sp.N(g - w, 30))) < 1e-20 for g, w in zip(got, want))


def test_rmsprop_one_step_moments_match_the_sde_to_weak_order_one():
    """One exact step against the SDE over time h = eta^2, on x^4/20 + (x - xi)^2/2 + xi x^2/4 with
    xi ~ N(0, 1/4) (Sigma = (x/2 - 1)^2 / 4 depends on x; the noise is symmetric), at a rational state, as
    series in eta in exact arithmetic: E dx = h b_x + O(eta^4), E du = h b_u + O(eta^4),
    E dx^2 = h (D D^T)_xx + O(eta^4), E dx du = O(eta^4), E dx^3 = O(eta^4): the moment conditions of weak
    order 1 in h."""
    xi = smfsym.normal("xi", std=sp.Rational(1, 2))
    p = smfsym.Problem(x**4 / 20 + (x - xi) ** 2 / 2 + xi * x**2 / 4, [x])
    m = malladi_rmsprop(p, c=sp.Rational(3, 2), sigma0=sp.Rational(1, 2), eps0=sp.Rational(1, 5))
    point = {x: sp.Rational(7, 10), m.state[1]: sp.Rational(4, 5)}
    sde = m.sde()
    b = [e.xreplace(point) for e in sde.drift]
    DDt = (sde.diffusion * sde.diffusion.T).xreplace(point)
    mx, mu, mxx, mxu, mxxx = _one_step_moments(m, point, p.mean)
    assert _close(mx, [0, 0, b[0], 0]) and _close(mu, [0, 0, b[1], 0])
    assert _close(mxx, [0, 0, DDt[0, 0], 0])
    assert _close(mxu, [0, 0, 0, 0]) and _close(mxxx, [0, 0, 0, 0])


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
def test_skewed_noise_adds_an_eta_cubed_drift_and_is_reported():
    """With skewed gradient noise z the mean step gains eta^3 sigma0 c P'(u) / P(u)^2 E[z^3] (the noise of x
    meets that of the same step's v): over 1/eta^2 steps an error O(eta) = O(sqrt h), so the SDE is then of
    weak order 1/2 only. malladi_rmsprop warns, naming the third moment."""
    a = smfsym.normal("a", mean=1, std=sp.Rational(1, 2))
    p = smfsym.Problem((a * x - 1) ** 2 / 2, [x])
    c, s0, e0 = sp.Rational(3, 2), sp.Rational(1, 2), sp.Rational(1, 5)
    with pytest.warns(SkewnessWarning, match="third moment"):
        m = malladi_rmsprop(p, c=c, sigma0=s0, eps0=e0)
    point = {x: sp.Rational(7, 10), m.state[1]: sp.Rational(4, 5)}
    z = (p.grad_f[0] - p.grad_F[0]).xreplace(point)
    u = point[m.state[1]]
    P, dP = s0 * sp.sqrt(u) + e0, s0 / (2 * sp.sqrt(u))
    mx = _one_step_moments(m, point, p.mean)[0]
    want = s0 * c * dP / P**2 * p.mean(sp.expand(z**3))
    assert want != 0 and _close(mx[3:], [want])


def test_adam_reports_skewed_noise_which_couples_m_and_u():
    """Audit 15, F2: one sample moves Adam's m and u, so skewed gradient noise z gives their increments the
    covariance c1 c2 sigma0 eta^3 E[z^3] per step (O(sqrt h) over a unit of time; the SDE's u has no noise).
    malladi_adam said nothing (the docs said Adam does not see the skew); it warns as malladi_rmsprop does,
    and stays quiet for symmetric noise."""
    a = smfsym.normal("a", mean=1, std=sp.Rational(1, 2))
    p = smfsym.Problem((a * x - 1) ** 2 / 2, [x])
    c1, c2, s0 = sp.Rational(3, 2), sp.Rational(1, 2), sp.Rational(1, 2)
    with pytest.warns(SkewnessWarning, match="malladi_adam.*third moment"):
        m = malladi_adam(p, c1=c1, c2=c2, sigma0=s0)
    point = dict(zip(m.state, [sp.Rational(7, 10), sp.Rational(1, 3), sp.Rational(4, 5), sp.Rational(1, 2)]))
    dm, du = [(m.update[i] - m.state[i]).xreplace(point) for i in (1, 2)]
    ser = sp.series(sp.expand(dm * du), m.eta, 0, 4).removeO()
    z = (p.grad_f[0] - p.grad_F[0]).xreplace(point)
    skew = p.mean(sp.expand(z**3))
    assert skew != 0 and _close([p.mean(sp.expand(ser.coeff(m.eta, 3)))], [c1 * c2 * s0 * skew])
    with warnings.catch_warnings():
        warnings.simplefilter("error", SkewnessWarning)
        malladi_adam(smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x]))


@pytest.mark.slow  # a few seconds: the slow tier (CI runs both)
def test_adam_one_step_moments_match_the_sde_to_weak_order_one():
    """Adam's exact step (bias corrections 1 - (1 - c eta^2)^{t/eta^2 + 1}, expanded through their logarithm)
    against the SDE over h = eta^2 at t = 1/2, on the symmetric-noise loss above: every mean is h times the
    drift up to O(eta^4), E dm^2 = h sigma0^2 c1^2 Sigma, E dx dm = O(eta^4)."""
    xi = smfsym.normal("xi", std=sp.Rational(1, 2))
    p = smfsym.Problem(x**4 / 20 + (x - xi) ** 2 / 2 + xi * x**2 / 4, [x])
    m = malladi_adam(p, c1=sp.Rational(3, 2), c2=sp.Rational(1, 2), sigma0=sp.Rational(1, 2), eps0=sp.Rational(1, 5))
    eta = m.eta
    point = dict(zip(m.state, [sp.Rational(7, 10), sp.Rational(1, 3), sp.Rational(4, 5), sp.Rational(1, 2)]))
    d = [(new - z).xreplace(point) for new, z in zip(m.update, m.state)]

    def moment(expr):
        sub = {q: sp.exp(sp.series(q.exp * sp.log(q.base), eta, 0, 6).removeO())
               for q in expr.atoms(sp.Pow) if q.exp.has(eta) and q.base.has(eta)}
        ser = sp.series(expr.xreplace(sub), eta, 0, 4).removeO()
        return [p.mean(sp.expand(ser.coeff(eta, k))) for k in range(4)]

    sde = m.sde()
    b = [e.xreplace(point) for e in sde.drift]
    DDt = (sde.diffusion * sde.diffusion.T).xreplace(point)
    for i in range(4):
        assert _close(moment(d[i]), [0, 0, b[i], 0]), i
    assert _close(moment(d[1] ** 2), [0, 0, DDt[1, 1], 0]) and _close(moment(d[0] * d[1]), [0, 0, 0, 0])


@pytest.mark.slow  # a few seconds: the slow tier (CI runs both)
def test_correlated_noise_sde_tracks_the_optimizer():
    """Two parameters with correlated, state-dependent noise (Sigma not diagonal: the SDE's noise is a
    MatrixSqrt of the state covariance): at t = 1/2 the SDE's means of x, y and u (Euler, dt = 1/400) and the
    optimizer's (eta = 1/20, h = 1/400, 200 steps) agree within 5 standard errors of their difference
    (20,000 paths each). The O(h) bias (largest in u: E[eta^2 g^2 / sigma0^2] exceeds diag Sigma by
    h |grad F|^2, about 4.5e-3 at h = 1/100) is about 1.1e-3 here, below the 4e-3 resolution."""
    a = smfsym.normal("a")
    p = smfsym.Problem((x + y - a) ** 2 / 2 + a * x * y, [x, y])
    m = malladi_rmsprop(p)
    z0 = [1.0, 0.5, 1.0, 1.0]
    sde = smfsym.simulate(m.sde(), z0, 0.5, dt=1 / 400, n_paths=20_000, seed=0, options=QUIET).states[-1]
    opt = m.simulate(z0, 200, 0.05, n_paths=20_000, seed=1, options=QUIET).states[-1]
    se = np.hypot(sde.std(axis=0), opt.std(axis=0)) / np.sqrt(20_000)
    assert np.all(np.abs(sde.mean(axis=0) - opt.mean(axis=0)) < 5 * se + 1e-12), (sde.mean(axis=0), opt.mean(axis=0), se)
