"""SGD, learning-rate schedules and heavy-ball/Nesterov momentum rebuilt as update maps (issue 18, item 2):
their SMEs and SMFs of orders 1 and 2 equal smfsym's own (symbolically), and the optimizer simulated
through ``simulate_update_map`` gives the numbers of ``simulate_sgd``, ``simulate_sgd_schedule`` and
``simulate_momentum_sgd``.

Random streams: every one of these simulators runs on the one driver (``montecarlo.driver.run``) and draws a
batch-1 sample per path and step with the same samplers from the same path-block generators, so the samples
coincide exactly. The arithmetic does not: the update map evaluates its compiled update expression (for
momentum (1 - lambda sqrt(eta)) p - sqrt(eta) g, with lambda = (1 - beta) / sqrt(eta)), the SGD rules
beta v - eta g on unscaled velocities, SGD x - eta * g(x) with g compiled on its own (the map's update is one
compiled expression, x - eta (a x + y - z) a, in another order of operations), and a schedule's time is t + eta
summed step by step, not k eta. So the states agree to rounding (relative 1e-13 to 1e-11 after 30-40 steps),
not bit for bit.
"""
import numpy as np
import pytest
import sympy as sp

import smfsym
from smfsym.optimizers import (TIME, Schedule, cosine, exponential_decay, friction, momentum_model,
                               scheduled_model, simulate_momentum_sgd, simulate_sgd_schedule, step_decay)
from smfsym.optimizers.update_map import momentum_map, schedule_map, sgd_map, simulate_update_map
from smfsym.symbolic.sde import MatrixSqrt


def _noise_cov(sde):
    """D D^T of an SDE's noise (scale^2 Sigma for a numeric root), expanded."""
    if isinstance(sde.diffusion, MatrixSqrt):
        M = sde.diffusion.sigma * sde.diffusion.scale**2
    else:
        D = sp.Matrix(sde.diffusion)
        M = D * D.T
    return sp.Matrix(M).applyfunc(lambda e: sp.simplify(sp.expand(e)))


def _same(A, B):
    return all(sp.simplify(sp.expand(e)) == 0 for e in sp.Matrix(A) - sp.Matrix(B))


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("kind", ["smf", "sme", "gf"])
@pytest.mark.parametrize("u", [1 / (1 + TIME), exponential_decay(sp.Rational(1, 2)).expr])
def test_schedule_map_gives_the_scheduled_models(regression, order, kind, u):
    m = schedule_map(regression, u)
    mine = m.gradient_flow(order) if kind == "gf" else getattr(m, kind)(order)
    ref = scheduled_model(regression, Schedule(u), kind, order)
    assert mine.state == ref.state
    assert _same(mine.drift, ref.drift)
    if kind != "gf":
        assert _same(_noise_cov(mine), _noise_cov(ref))


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("kind", ["smf", "sme", "gf"])
@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_map_gives_the_momentum_models(regression, order, kind, nesterov):
    """The map's order-2 model is momentum_model's without its optional noise correction (see momentum_map)."""
    m = momentum_map(regression, nesterov=nesterov)
    mine = m.gradient_flow(order) if kind == "gf" else getattr(m, kind)(order)
    kw = {} if kind == "gf" else dict(noise_correction=False)
    ref = momentum_model(regression, kind, order, nesterov=nesterov, **kw)
    assert mine.state == ref.state
    assert _same(mine.drift, ref.drift)
    if kind != "gf":
        assert _same(_noise_cov(mine), _noise_cov(ref))


def test_momentum_map_with_a_number_for_the_friction(regression):
    lam = sp.Rational(3, 2)
    m = momentum_map(regression, lam=lam)
    ref = momentum_model(regression, "smf", 2, lam=lam, noise_correction=False)
    assert m.constants == () and _same(m.smf(2).drift, ref.drift)


def test_builtin_map_refusals(regression):
    with pytest.raises(ValueError, match="`schedule` must be smooth"):
        schedule_map(regression, step_decay(0.5, 1.0))
    with pytest.raises(ValueError, match="`schedule`: its time symbol"):
        schedule_map(regression, Schedule(1 / (1 + sp.Symbol("x")), t=sp.Symbol("x")))
    with pytest.raises(ValueError, match="`lam`"):
        momentum_map(regression, lam=-1)


@pytest.fixture(scope="module")
def quartic():
    x = sp.Symbol("x")
    return smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2 + x**4 / 20, [x])


@pytest.mark.parametrize("x0", [[1.0, -0.5], [[1.0, -0.5], [0.2, 0.3]]], ids=["one start", "two starts"])
def test_sgd_map_simulates_simulate_sgd(regression, x0):
    a = simulate_update_map(sgd_map(regression), x0, 30, 0.1, n_paths=200, seed=5, save_at=[10, 30])
    b = smfsym.simulate_sgd(regression, x0, 30, 0.1, n_paths=200, seed=5, save_at=[10, 30])
    assert np.allclose(a.states, b.states, rtol=1e-13, atol=1e-14)
    assert np.allclose(a.t, b.t)


@pytest.mark.parametrize("sch", [cosine(4.0, floor=0.1), exponential_decay(1.0)], ids=["cosine", "exp"])
def test_schedule_map_simulates_simulate_sgd_schedule(quartic, sch):
    a = simulate_update_map(schedule_map(quartic, sch), [1.5, 0.0], 40, 0.05, n_paths=300, seed=7,
                            save_at=[20, 40])
    b = simulate_sgd_schedule(quartic, sch, [1.5], 40, 0.05, n_paths=300, seed=7, save_at=[20, 40])
    assert np.allclose(a.states[..., 0], b.states[..., 0], rtol=1e-12, atol=1e-13)
    assert np.allclose(a.states[..., 1], [[1.0], [2.0]], rtol=1e-12)  # the map's clock: t = k eta


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("x0", [[1.0], [[1.0], [-0.4]]], ids=["one start", "two starts"])
def test_momentum_map_simulates_simulate_momentum_sgd(quartic, nesterov, x0):
    eta, beta = 0.04, 0.7
    lam = friction(beta, eta)
    m = momentum_map(quartic, nesterov=nesterov)
    z0 = np.concatenate([np.atleast_2d(x0), np.full_like(np.atleast_2d(x0), 0.5)], axis=-1)
    z0 = z0[0] if np.ndim(x0) == 1 else z0
    a = simulate_update_map(m, z0, 40, eta, n_paths=300, seed=11, save_at=[20, 40], values={"lambda": lam})
    rule = smfsym.optimizers.Momentum(beta=beta, nesterov=nesterov)
    b = simulate_momentum_sgd(quartic, x0, 40, eta, rule, v0=0.5 * np.sqrt(eta) * np.ones_like(np.array(x0)),
                              n_paths=300, seed=11, save_at=[20, 40])
    assert np.allclose(a.states, b.states, rtol=1e-11, atol=1e-12)
    assert np.allclose(a.t, b.t)  # both in t = k sqrt(eta)
