"""Mean field, fluctuations (issue 8): Var[R] of order eta for SGD and the DD-SMF, matching; the
deterministic limit has none; no 1/N decay in the width; the linearisation gives lim Var/eta.

Tolerances: 5 standard errors of the variance estimates (SE from the sample fourth moment); slopes
within 4 of their propagated standard errors.
"""
import numpy as np
import pytest
import sympy as sp

import smfsym
from smfsym.meanfield.linearisation import linearised_variance

a, w, v, out = sp.symbols("a w v out")
T_END = 1.0


@pytest.fixture(scope="module")
def net():
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(64, 2))
    Y = np.tanh(Z[:, 0] - Z[:, 1]) + 0.1 * rng.normal(size=64)
    z0, z1, y = smfsym.empirical(np.column_stack([Z, Y]), "z0 z1 y")
    return smfsym.MeanFieldProblem(a * sp.tanh(w * z0 + v * z1), (a, w, v), out, (out - y) ** 2 / 2)


def slope(etas, var, se):
    """Weighted least-squares slope of log Var against log eta and its standard error."""
    x, yv, s = np.log(etas), np.log(var), se / var
    W = 1 / s**2
    xm = (W * x).sum() / W.sum()
    b = (W * (x - xm) * yv).sum() / (W * (x - xm) ** 2).sum()
    return b, np.sqrt(1 / (W * (x - xm) ** 2).sum())


@pytest.mark.slow  # over 10 s on a shared 2-core machine
def test_fluctuations_sgd_ddsmf_limit(net):
    th = smfsym.particles(net, 1000, law={"a": ("normal", 0, 0.1)}, seed=0)
    etas = np.array([0.04, 0.02, 0.01])
    P = 128
    res = {"sgd": [], "dd": []}
    for i, eta in enumerate(etas):  # a seed per eta: independent estimates for the slope fit
        s = smfsym.simulate_meanfield_sgd(net, th, eta=eta, n_steps=int(round(T_END / eta)), n_paths=P, seed=10 + i)
        d = smfsym.simulate_ddsmf(net, th, eta=eta, t_end=T_END, n_paths=P, seed=20 + i)
        res["sgd"].append(s.summary())
        res["dd"].append(d.summary())
    for s, d in zip(res["sgd"], res["dd"]):
        se = np.hypot(s["var_se"], d["var_se"])[-1, 0]
        assert abs(s["var"][-1, 0] - d["var"][-1, 0]) < 5 * se
        assert abs(s["mean"][-1, 0] - d["mean"][-1, 0]) < 5 * np.hypot(s["sem"], d["sem"])[-1, 0]
    for key in res:
        var = np.array([r["var"][-1, 0] for r in res[key]])
        se = np.array([r["var_se"][-1, 0] for r in res[key]])
        b, sb = slope(etas, var, se)
        assert abs(b - 1) < 4 * sb, (key, b, sb)
    mf = smfsym.simulate_meanfield_limit(net, th, T_END)
    assert mf.var()[-1, 0] == 0
    # linearisation around the deterministic path: lim Var/eta without Monte Carlo
    L = linearised_variance(net, th, T_END, dt=0.02)
    s = res["sgd"][-1]
    assert abs(s["var"][-1, 0] / etas[-1] - L) < 5 * s["var_se"][-1, 0] / etas[-1]


@pytest.mark.slow  # over 10 s on a shared 2-core machine
def test_width_does_not_kill_the_fluctuations(net):
    eta, P = 0.02, 128
    var = {}
    for n in (1000, 10_000):
        th = smfsym.particles(net, n, law={"a": ("normal", 0, 0.1)}, seed=0)
        s = smfsym.simulate_meanfield_sgd(net, th, eta=eta, n_steps=int(round(T_END / eta)), n_paths=P, seed=3).summary()
        var[n] = (s["var"][-1, 0], s["var_se"][-1, 0])
    ratio = var[10_000][0] / var[1000][0]
    # the log-ratio's standard error from the two variances' (delta method); 5 of them around 0 (no decay), and
    # 1/N fluctuations (ratio 0.1) excluded by as many
    se_log = np.hypot(var[10_000][1] / var[10_000][0], var[1000][1] / var[1000][0])
    assert abs(np.log(ratio)) < 5 * se_log and np.log(ratio) - np.log(0.1) > 5 * se_log, (ratio, se_log)
    # averaged over initial draws, lim Var/eta settles to a nonzero limit (linearisation, no Monte Carlo)
    lims = {n: [linearised_variance(net, smfsym.particles(net, n, law={"a": ("normal", 0, 0.1)}, seed=k), T_END,
                                    dt=0.05) for k in range(3)] for n in (300, 3000)}
    m300, m3000 = np.mean(lims[300]), np.mean(lims[3000])
    assert m3000 > 0 and 0.7 < m3000 / m300 < 1.4
    assert np.std(lims[3000]) < np.std(lims[300])  # the draw matters less as N grows


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
def test_rule_convergence_for_a_continuous_law():
    z = smfsym.normal("z", 2)
    gnet = smfsym.MeanFieldProblem(a * sp.tanh(w * z[0] + v * z[1]), (a, w, v), out,
                                   (out - sp.tanh(z[0] - z[1])) ** 2 / 2)
    th = smfsym.particles(gnet, 200, law={"a": ("normal", 0, 0.1)}, seed=0)
    L = [linearised_variance(gnet, th, T_END, dt=0.05, n_points=n) for n in (4, 8, 16, 32)]
    d = np.abs(np.diff(L))
    assert d[2] < d[1] < d[0] and d[2] < 0.05 * L[-1], L
    # and the limit is SGD's (which samples the Gaussian law itself), within 5 standard errors
    eta = 0.01
    s = smfsym.simulate_meanfield_sgd(gnet, th, eta=eta, n_steps=100, n_paths=400, seed=5, risk_points=32).summary()
    assert abs(s["var"][-1, 0] / eta - L[-1]) < 5 * s["var_se"][-1, 0] / eta + d[2], (s["var"][-1, 0] / eta, L)
