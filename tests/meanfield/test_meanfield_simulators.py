"""Mean field, simulators (issue 8): N = 1 reductions, one-step moments, determinism, bad input."""
import numpy as np
import pytest
import sympy as sp

import smfsym
from smfsym.meanfield import DataRule, captured_noise_variance, data_rule
from smfsym.symbolic.lambdify import compile_exprs
from smfsym.meanfield.kernel import Kernel
from smfsym.symbolic.models import modified_drift

a, w, v, out = sp.symbols("a w v out")


def tanh_data_net(M=16, seed=0, batch_size=1):
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(M, 2))
    Y = np.tanh(Z[:, 0] - Z[:, 1]) + 0.1 * rng.normal(size=M)
    z0, z1, y = smfsym.empirical(np.column_stack([Z, Y]), "z0 z1 y")
    return smfsym.MeanFieldProblem(a * sp.tanh(w * z0 + v * z1), (a, w, v), out, (out - y) ** 2 / 2,
                                   batch_size=batch_size)


def gauss_teacher_net():
    z = smfsym.normal("z", 2)
    return smfsym.MeanFieldProblem(a * sp.tanh(w * z[0] + v * z[1]), (a, w, v), out,
                                   (out - sp.tanh(z[0] - z[1])) ** 2 / 2)


@pytest.mark.parametrize("make", [tanh_data_net, gauss_teacher_net])
def test_width_one_sgd_is_simulate_sgd(make):
    net = make()
    th = np.array([[0.3, 0.8, -0.5]])
    mf = smfsym.simulate_meanfield_sgd(net, th, eta=0.1, n_steps=30, n_paths=300, seed=7, save_every=10, store=True)
    ref = smfsym.simulate_sgd(net.single_neuron_problem(), th[0], n_steps=30, eta=0.1, n_paths=300, seed=7,
                              save_at=[0, 10, 20, 30])
    # same samples, same update; only the association of the product d_out l * grad phi may differ (ulps)
    np.testing.assert_allclose(mf.sim.states[:, :, 0, :], ref.states, rtol=1e-12, atol=1e-14)


def _smf_coefficients(net, theta, eta, order):
    """Drift and noise covariance of the finite-dimensional SMF of the N = 1 problem at theta."""
    prob = net.single_neuron_problem()
    e = sp.Symbol("eta", positive=True)
    drift = np.array([c[0] for c in compile_exprs(list(modified_drift(prob, order, e)), prob.params, {e: eta})(theta[None])])
    law = prob.laws[0]
    g = sp.lambdify(list(prob.params) + list(law.symbols), list(prob.grad_f))
    G = np.array([np.broadcast_to(c, (law.size,)) for c in g(*theta, *law.data.T)])  # (p, M)
    mean = G @ law.weights
    cov = ((G - mean[:, None]) * law.weights) @ (G - mean[:, None]).T
    return np.array(drift, dtype=float), eta * cov


@pytest.mark.parametrize("order", [1, 2])
def test_width_one_ddsmf_coefficients_are_the_smf(order):
    net = tanh_data_net()
    rule = data_rule(net)
    ker = Kernel(net)
    th = np.array([[0.3, 0.8, -0.5]])
    eta, h = 0.1, 1.0
    drift, cov = _smf_coefficients(net, th[0], eta, order)
    X = th[None]
    mean = ker.ddsmf_increment(X, h, None, rule.nodes, rule.weights, eta, order=order)[0, 0]
    np.testing.assert_allclose(mean, drift, rtol=1e-10, atol=1e-13)
    # the increment is linear in dbeta: its columns give the noise covariance exactly
    eye = np.eye(rule.size)
    cols = np.stack([ker.ddsmf_increment(X, h, eye[j][None], rule.nodes, rule.weights, eta, order=order)[0, 0] - mean
                     for j in range(rule.size)], axis=1)
    np.testing.assert_allclose(cols @ cols.T, cov, rtol=1e-10, atol=1e-14)


def test_width_one_ddsmf_law_matches_smf_simulation():
    net = tanh_data_net()
    th = np.array([[0.3, 0.8, -0.5]])
    eta, P = 0.1, 4000
    dd = smfsym.simulate_ddsmf(net, th, eta=eta, t_end=1.0, dt=0.05, n_paths=P, seed=3, store=True,
                               observables=["moments"])
    flow = smfsym.smf(net.single_neuron_problem(), order=1)
    ref = smfsym.simulate(flow, th[0], t_end=1.0, eta=eta, dt=0.05, n_paths=P, seed=4)
    x, y = dd.sim.states[-1, :, 0, :], ref.states[-1]
    se = np.sqrt(x.var(0) / P + y.var(0) / P)
    assert np.all(np.abs(x.mean(0) - y.mean(0)) < 5 * se)  # same law: means within 5 standard errors
    assert np.all(np.abs(x.var(0) / y.var(0) - 1) < 5 * np.sqrt(4 / P))  # variance ratio SE ~ sqrt(2/P + 2/P)


@pytest.mark.parametrize("batch_size", [1, 3])
def test_one_step_moments_ddsmf_euler_equal_sgd(batch_size):
    """At a fixed particle state, one Euler step of size eta of the DD-SMF has the mean and covariance
    of one mean-field SGD step (exact enumeration over the data rows), to rounding."""
    net = tanh_data_net(M=12, batch_size=1)
    rule = data_rule(net)
    ker = Kernel(net)
    rng = np.random.default_rng(1)
    N, eta = 20, 0.05
    X = rng.normal(size=(1, N, 3))
    # SGD: each row as the sample of one "path"
    data = [np.ascontiguousarray(rule.nodes[:, k])[:, None] for k in range(rule.nodes.shape[1])]
    steps = ker.sgd_increment(np.repeat(X, rule.size, axis=0), data, eta).reshape(rule.size, -1)
    sgd_mean = rule.weights @ steps
    c = steps - sgd_mean
    sgd_cov = (c * rule.weights[:, None]).T @ c / batch_size  # B i.i.d. samples: covariance / B
    mean = ker.ddsmf_increment(X, eta, None, rule.nodes, rule.weights, eta, batch_size=batch_size).ravel()
    eye = np.eye(rule.size) * np.sqrt(eta)  # dbeta_j = sqrt(h) e_j
    cols = np.stack([ker.ddsmf_increment(X, eta, eye[j][None], rule.nodes, rule.weights, eta,
                                         batch_size=batch_size).ravel() - mean for j in range(rule.size)], axis=1)
    np.testing.assert_allclose(mean, sgd_mean, rtol=1e-11, atol=1e-15)
    np.testing.assert_allclose(cols @ cols.T, sgd_cov, rtol=1e-9, atol=1e-16)
    # forgetting the centring term w_j S would add the outer product of the mean step
    assert np.abs(np.outer(sgd_mean, sgd_mean)).max() > 1e-3 * np.abs(sgd_cov).max()


def test_same_seed_same_numbers_whatever_the_chunking():
    net = tanh_data_net()
    th = smfsym.particles(net, 30, seed=0)
    r1 = smfsym.simulate_ddsmf(net, th, eta=0.05, t_end=0.5, n_paths=5000, seed=9, observables=["risk", "moments"])
    r2 = smfsym.simulate_ddsmf(net, th, eta=0.05, t_end=0.5, n_paths=5000, seed=9, chunk_size=1,
                               observables=["risk", "moments"])
    np.testing.assert_array_equal(r1.observables["risk"], r2.observables["risk"])
    s1 = smfsym.simulate_meanfield_sgd(net, th, eta=0.05, n_steps=10, n_paths=5000, seed=9)
    s2 = smfsym.simulate_meanfield_sgd(net, th, eta=0.05, n_steps=10, n_paths=5000, seed=9, chunk_size=100)
    np.testing.assert_array_equal(s1.observables["risk"], s2.observables["risk"])


def test_observables_and_limit():
    net = tanh_data_net()
    th = smfsym.particles(net, 50, seed=0)
    th_copy = th.copy()
    mf = smfsym.simulate_meanfield_limit(net, th, 1.0, save_at=[0.0, 0.5, 1.0],
                                         observables=["risk", "output_at", "moments"], inputs=[[0.0, 1.0], [1.0, 0.0]])
    np.testing.assert_array_equal(th, th_copy)  # inputs are not mutated
    assert mf.observables["output_at"].shape == (3, 1, 2) and mf.observables["moments"].shape == (3, 1, 6)
    assert np.all(mf.var("risk") == 0)  # deterministic: no fluctuations
    R = mf.mean("risk")[:, 0]
    assert R[2] < R[1] < R[0]  # gradient flow decreases the risk
    # the output at an input is the particle mean of the unit
    Phi = np.mean(th[:, 0] * np.tanh(th[:, 1] * 0.0 + th[:, 2] * 1.0))
    assert abs(mf.observables["output_at"][0, 0, 0] - Phi) < 1e-14
    # RK4 against a much finer step
    fine = smfsym.simulate_meanfield_limit(net, th, 1.0, dt=0.002)
    assert abs(fine.mean("risk")[-1, 0] - R[2]) < 1e-8


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
def test_data_rule_and_captured_noise_variance():
    net = gauss_teacher_net()
    th = smfsym.particles(net, 200, law={"a": ("normal", 0, 1)}, seed=0)
    with pytest.raises(ValueError, match="`n_points` must be given"):
        data_rule(net)
    with pytest.raises(ValueError, match="would have 1000000 nodes"):
        data_rule(net, n_points=1000)
    ratios = []
    for n in (2, 4, 12):
        c = captured_noise_variance(net, th, data_rule(net, n_points=n), n_samples=40_000, seed=1)
        ratios.append(c)
    assert abs(ratios[-1]["ratio"] - 1) < 5 * ratios[-1]["ratio_se"]  # 12 points per axis: all of it, within 5 SE
    assert abs(ratios[0]["ratio"] - 1) > 5 * ratios[0]["ratio_se"]  # 2 points: visibly short


def test_bad_simulation_input():
    net = tanh_data_net()
    th = smfsym.particles(net, 10, seed=0)
    with pytest.raises(ValueError, match=r"`theta0` must have shape \(N, 3\)"):
        smfsym.simulate_meanfield_sgd(net, th[:, :2], eta=0.1, n_steps=2)
    bad = th.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="`theta0` must be finite; it holds 1 NaN"):
        smfsym.simulate_ddsmf(net, bad, eta=0.1, t_end=1.0)
    with pytest.raises(ValueError, match=r"`theta0` must have shape \(N, 3\) with N >= 1"):
        smfsym.simulate_meanfield_limit(net, np.zeros((0, 3)), 1.0)
    with pytest.raises(ValueError, match="`n` must be a positive integer"):
        smfsym.particles(net, 0)
    with pytest.raises(ValueError, match="`eta` must be a positive number"):
        smfsym.simulate_meanfield_sgd(net, th, eta=-0.1, n_steps=2)
    with pytest.raises(ValueError, match="`observables` must be among"):
        smfsym.simulate_ddsmf(net, th, eta=0.1, t_end=1.0, observables=["loss"])
    with pytest.raises(ValueError, match="`order` must be 1 or 2"):
        smfsym.simulate_ddsmf(net, th, eta=0.1, t_end=1.0, order=3)
    with pytest.raises(ValueError, match="`law\\['a'\\]` must be"):
        smfsym.particles(net, 5, law={"a": ("cauchy", 0, 1)})
    with pytest.raises(ValueError, match="`save_at` times must be multiples of eta"):
        smfsym.simulate_meanfield_sgd(net, th, eta=0.1, n_steps=10, save_at=[0.25])
    with pytest.raises(ValueError, match=r"would evaluate the unit 1e\+13 times .* over `max_work`"):
        smfsym.simulate_meanfield_sgd(net, smfsym.particles(net, 10**5, seed=0), eta=0.1, n_steps=10**4,
                                      n_paths=10**4)
    with pytest.raises(ValueError, match="over `max_work` = 100"):
        smfsym.simulate_ddsmf(net, th, eta=0.1, t_end=1.0, max_work=100)
    z = smfsym.normal("z")
    lin = smfsym.MeanFieldProblem(a * w * z, (a, w), out, (out - z) ** 2 / 2)
    with pytest.raises(smfsym.BlowUpError, match=r"non-finite state at step \d+ .* of the paths"):
        smfsym.simulate_meanfield_sgd(lin, np.full((5, 2), 3.0), eta=5.0, n_steps=400, n_paths=4, seed=0)


def test_order2_drift_local_error_of_the_mean_is_order_eta3():
    """One SGD step has mean X + eta G(X) exactly. The drift flow of the DD-SMF over time eta matches it
    to O(eta^2) with the drift G and to O(eta^3) with G - (eta/2) DG G (noise enters the mean at O(eta^3)),
    with N interacting particles: fitted slopes of the local error against eta."""
    net = tanh_data_net(M=12)
    rule = data_rule(net)
    ker = Kernel(net)
    X = np.random.default_rng(2).normal(size=(1, 30, 3))
    G = ker.field(X, rule.nodes, rule.weights)
    etas = np.array([0.2, 0.1, 0.05])
    for order, target in ((1, 2.0), (2, 3.0)):
        errs = []
        for eta in etas:
            b = lambda Y: ker.ddsmf_increment(Y, 1.0, None, rule.nodes, rule.weights, eta, order=order)  # noqa: E731
            Y, n = X.copy(), 40
            h = eta / n
            for _ in range(n):  # RK4, error O(eta h^4): far below the local errors measured
                k1 = b(Y)
                k2 = b(Y + h / 2 * k1)
                k3 = b(Y + h / 2 * k2)
                k4 = b(Y + h * k3)
                Y = Y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
            errs.append(np.abs(Y - (X + eta * G)).max())
        slope = np.polyfit(np.log(etas), np.log(errs), 1)[0]
        assert abs(slope - target) < 0.15, (order, slope, errs)


def test_held_out_risk_rule():
    net = tanh_data_net()
    th = smfsym.particles(net, 40, seed=0)
    law = net.laws[0]
    held = DataRule.from_rows(net, law.data[:8])
    r = smfsym.simulate_meanfield_limit(net, th, 0.2, risk_rule=held)
    Phi = (th[:, 0, None] * np.tanh(np.outer(th[:, 1], law.data[:8, 0]) + np.outer(th[:, 2], law.data[:8, 1]))).mean(0)
    r0 = smfsym.simulate_meanfield_limit(net, th, 0.2, risk_rule=held, save_at=[0.0])
    assert abs(r0.mean("risk")[0, 0] - np.mean((Phi - law.data[:8, 2]) ** 2 / 2)) < 1e-14
    assert r.mean("risk")[-1, 0] < r0.mean("risk")[0, 0]
    with pytest.raises(ValueError, match=r"`rows` must have shape \(M, 3\)"):
        DataRule.from_rows(net, law.data[:, :2])


def test_particle_chunked_pass_equals_single_pass(monkeypatch):
    """Wide networks take the particles in chunks (two passes): same numbers to rounding."""
    import smfsym.meanfield.kernel as K

    net = tanh_data_net(M=32)
    th = smfsym.particles(net, 700, seed=0)
    r1 = smfsym.simulate_ddsmf(net, th, 0.05, 0.2, n_paths=3, seed=1, observables=["moments", "risk"])
    monkeypatch.setattr(K, "MAX_GRID_ELEMENTS", 2**10)
    monkeypatch.setattr(K, "SLAB_ELEMENTS", 2**12)
    r2 = smfsym.simulate_ddsmf(net, th, 0.05, 0.2, n_paths=3, seed=1, observables=["moments", "risk"])
    np.testing.assert_allclose(r1.observables["moments"], r2.observables["moments"], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(r1.observables["risk"], r2.observables["risk"], rtol=1e-12)


def test_wide_output_in_particle_chunks_equals_direct_sum():
    net = tanh_data_net(M=16)
    ker = Kernel(net)
    th = smfsym.particles(net, 50_000, seed=0)
    z, _ = ker.rule_cols(data_rule(net).nodes)
    direct = (th[:, 0, None] * np.tanh(np.outer(th[:, 1], z[0].ravel()) + np.outer(th[:, 2], z[1].ravel()))).mean(0)
    np.testing.assert_allclose(ker.output(th[None], z)[0], direct, rtol=1e-10, atol=1e-14)
