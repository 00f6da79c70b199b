"""Order-2 DD-SMF (issue 15): with the coupled Richardson extrapolation (the study's default at order 2) the
order-2 flow is closer to SGD's mean than the order-1 flow; the extrapolated moments; the coupled run's
determinism.

Tolerances: the difference of |bias| must exceed 4 standard errors of its estimate. The two DD-SMF runs
share their Brownian increments (same cell seed: common random numbers), so their difference is nearly
noise-free; the sign of each bias against SGD's mean is not assumed, so SGD's standard error enters the
bound with the worst-case factor 2.
"""
import numpy as np
import pytest
import sympy as sp

import smfsym
from smfsym.meanfield.observables import summarize

a, w, v, out = sp.symbols("a w v out")


def data_net(batch_size=64):
    """A data set of 16 rows: the rule is the law itself (no rule error), a batch of 64 keeps the noise small
    against the O(eta) drift correction the order-2 flow adds."""
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(16, 2))
    z0, z1, y = smfsym.empirical(np.column_stack([Z, np.tanh(2 * Z[:, 0] - Z[:, 1])]), "z0 z1 y")
    return smfsym.MeanFieldProblem(a * sp.tanh(w * z0 + v * z1), (a, w, v), out, (out - y) ** 2 / 2,
                                   batch_size=batch_size)


def _extrapolated(res):
    """Per-path 2 R(fine) - R(coarse) at the final time (Euler: c = 1)."""
    return 2 * res.observables["risk"][-1, :, 0] - res.info["coarse"]["risk"][-1, :, 0]


def _bias_gap(eta, P, seed):
    """(|b1| - |b2|, its SE, b1, b2): biases of the order-1 and order-2 flows against SGD's mean at t = 1."""
    kw = dict(etas=[eta], widths=[50], t_end=1.0, n_paths=P, n_saves=1, seed=seed, methods=["sgd", "ddsmf"],
              progress=False)
    net = data_net()
    st2 = smfsym.meanfield_study(net, ddsmf_order=2, **kw)  # default at order 2: Richardson, dt = eta
    st1 = smfsym.meanfield_study(net, ddsmf_order=1, ddsmf_richardson=True, **kw)  # the order-1 flow itself
    assert st2.meta["ddsmf_richardson"] is True and st1.meta["ddsmf_order"] == 1
    sgd1, sgd2 = st1.results[("sgd", eta, 50)], st2.results[("sgd", eta, 50)]
    np.testing.assert_array_equal(sgd1.observables["risk"], sgd2.observables["risk"])  # same cell seed
    s = sgd1.summary()
    m_sgd, se_sgd = s["mean"][-1, 0], s["sem"][-1, 0]
    y1, y2 = _extrapolated(st1.results[("ddsmf", eta, 50)]), _extrapolated(st2.results[("ddsmf", eta, 50)])
    assert st2.rows[0]["mean_ddsmf"] == pytest.approx(y2.mean(), rel=1e-12)  # the study's rows: the same means
    b1, b2 = y1.mean() - m_sgd, y2.mean() - m_sgd
    # |b1| - |b2| = sign(b1) y1 - sign(b2) y2 (paired paths) + (sign(b2) - sign(b1)) m_sgd
    d = np.sign(b1) * y1 - np.sign(b2) * y2
    return abs(b1) - abs(b2), np.sqrt(d.var(ddof=1) / P + (2 * se_sgd) ** 2), b1, b2


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
def test_order2_beats_order1_against_sgd():
    gap, se, b1, b2 = _bias_gap(0.1, 1024, 5)  # measured: gap 1.5e-3, 8.8 SE
    assert gap > 4 * se, (b1, b2, se)


@pytest.mark.slow
def test_order2_beats_order1_at_smaller_eta():
    for eta in (0.1, 0.05):
        gap, se, b1, b2 = _bias_gap(eta, 4096, 6)
        assert gap > 4 * se, (eta, b1, b2, se)


def test_extrapolated_moments():
    rng = np.random.default_rng(1)
    f = rng.normal(size=(2, 500, 1))
    plain = summarize(f)
    same = summarize(f, f, 1.0)  # coarse == fine: nothing to extrapolate
    for k in ("mean", "var", "sem"):
        np.testing.assert_allclose(same[k], plain[k], rtol=1e-12)
    g = f + 0.1 * rng.normal(size=f.shape) + 0.05
    ex = summarize(f, g, 1.0)
    np.testing.assert_allclose(ex["mean"], (2 * f - g).mean(axis=1), rtol=1e-12)
    # E R^2 and E R extrapolate linearly; the variance is their combination (unbiased up to O(1/n^2))
    m2 = (2 * f**2 - g**2).mean(axis=1)
    y = (2 * f - g).mean(axis=1)
    np.testing.assert_allclose(ex["var"], m2 - y**2 + (2 * f - g).var(axis=1, ddof=1) / 500, rtol=1e-12)
    assert np.all(ex["var_se"] > 0)


def test_coupled_run_is_deterministic_and_chunk_independent():
    net = data_net(batch_size=1)
    th = smfsym.particles(net, 8, seed=0)
    kw = dict(n_paths=4100, seed=9, order=2, richardson=True, save_at=[0.1, 0.2], progress=False)
    r1 = smfsym.simulate_ddsmf(net, th, 0.1, 0.2, **kw)
    r2 = smfsym.simulate_ddsmf(net, th, 0.1, 0.2, chunk_size=4096, **kw)
    np.testing.assert_array_equal(r1.observables["risk"], r2.observables["risk"])
    np.testing.assert_array_equal(r1.info["coarse"]["risk"], r2.info["coarse"]["risk"])
    assert r1.info["richardson"] and r1.info["richardson_c"] == 1.0 and r1.sim.scheme == "ddsmf-euler-richardson"
    # fine and coarse are different discretisations of the same paths: close, not equal
    fine, coarse = r1.observables["risk"], r1.info["coarse"]["risk"]
    assert not np.array_equal(fine, coarse) and np.max(np.abs(fine - coarse)) < 0.05 * np.mean(np.abs(fine))
    with pytest.raises(TypeError, match="`richardson` must be True or False"):
        smfsym.simulate_ddsmf(net, th, 0.1, 0.2, richardson="yes")
