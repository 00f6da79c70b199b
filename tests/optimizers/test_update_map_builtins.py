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
    """D D^T of an SDE's noise (scale^2 Sigma for a numeric root)."""
    if isinstance(sde.diffusion, MatrixSqrt):
        return sp.Matrix(sde.diffusion.sigma * sde.diffusion.scale**2)
    D = sp.Matrix(sde.diffusion)
    return D * D.T


def _same(A, B):
    return all(sp.simplify(sp.expand(e)) == 0 for e in sp.Matrix(A) - sp.Matrix(B))


def _same_at_points(A, B):
    """A = B at two rational points of their symbols, to 30 digits (a closed-form matrix root squared
    does not simplify back in reasonable time)."""
    diff = sp.Matrix(A) - sp.Matrix(B)
    syms = sorted(diff.free_symbols, key=str)
    for k in (1, 2):
        pt = {s: sp.Rational(2 + k * i, 7 + i) for i, s in enumerate(syms)}
        if any(abs(sp.N(e.xreplace(pt), 30)) > 1e-25 for e in diff):
            return False
    return True


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
        assert _same_at_points(_noise_cov(mine), _noise_cov(ref))


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
        assert _same_at_points(_noise_cov(mine), _noise_cov(ref))


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


# ---------------------------------------------------------------- start-up and degenerate points (issue 18, item 3)


@pytest.fixture(scope="module")
def gaussian():
    x = sp.Symbol("x")
    return smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x])


def test_optimizer_start_refusals(gaussian):
    from smfsym.optimizers.update_map import adam, rmsprop

    with pytest.raises(ValueError, match=r"`eta`: rmsprop's 1 - beta = 4 eta = 1.2 must lie in \(0, 1\)"):
        simulate_update_map(rmsprop(gaussian, c=4), [1.0, 1.0], 3, 0.3, n_paths=10)
    with pytest.raises(ValueError, match=r"`eta`: rmsprop's 1 - beta = c eta = 1.2"):
        simulate_update_map(rmsprop(gaussian, c=sp.Symbol("c")), [1.0, 1.0], 3, 0.3, n_paths=10, values={"c": 4})
    with pytest.raises(ValueError, match=r"`eta`: adam's 1 - beta2 = 20 eta = 2"):
        simulate_update_map(adam(gaussian, c2=20), [1.0, 0.0, 1.0, 0.1], 3, 0.1, n_paths=10)
    with pytest.raises(ValueError, match="`z0`: the rmsprop map's v_x is declared positive"):
        simulate_update_map(rmsprop(gaussian), [[1.0, 1.0], [1.0, -0.5]], 3, 0.1, n_paths=10)
    with pytest.raises(ValueError, match="`z0`: the adam map's time t must start above 0"):
        simulate_update_map(adam(gaussian), [1.0, 0.0, 1.0, 0.0], 3, 0.1, n_paths=10)


def test_rmsprop_starts_from_v_zero_as_pytorch_does(gaussian):
    """v_0 = 0 is PyTorch's start: with eps > 0 the optimizer's step is defined there and v stays >= 0."""
    from smfsym.optimizers.update_map import rmsprop

    r = simulate_update_map(rmsprop(gaussian), [1.0, 0.0], 20, 0.1, n_paths=500, seed=0, save_at=[1, 20])
    assert np.isfinite(r.states).all() and (r.states[..., 1] >= 0).all()


@pytest.mark.parametrize("kind", ["sme", "smf"])
def test_model_leaving_v_positive_is_reported_not_nan(gaussian, kind):
    """Near v = 0 the models' noise drives v below 0, where sqrt(v) is NaN: the run stops with the step and the
    fraction of paths (the SME's numeric root used to fail inside eigh instead)."""
    from smfsym.optimizers.update_map import rmsprop

    with pytest.raises(smfsym.BlowUpError, match=r"non-finite state at step \d+ \(t = [0-9.]+\) in [0-9.]+% of the "
                                                  r"paths .*\(\d+ of 2000"):
        smfsym.simulate(getattr(rmsprop(gaussian), kind)(1), [1.0, 0.05], 1.0, dt=0.1, eta=0.5, n_paths=2000,
                        seed=0)


@pytest.mark.parametrize("kind", ["sme", "smf"])
def test_adam_models_from_t_zero_are_reported_not_nan(gaussian, kind):
    """Adam's models at t = 0 divide by the bias correction 1 - exp(-c t) = 0: every path is reported non-finite
    at the first step (the optimizer and update_map_weak_error refuse t_0 <= 0 before running)."""
    from smfsym.optimizers.update_map import adam

    with pytest.raises(smfsym.BlowUpError, match=r"non-finite state at step 1 .* in 100.00% of the paths"):
        smfsym.simulate(getattr(adam(gaussian), kind)(1), [1.0, 0.0, 1.0, 0.0], 0.5, dt=0.05, eta=0.1, n_paths=100,
                        seed=0)


def test_update_map_study_names_the_second_moment_on_blow_up(gaussian):
    from smfsym.optimizers.update_map import rmsprop
    from smfsym.studies.update_map_study import update_map_weak_error

    with pytest.raises(smfsym.BlowUpError, match=r"model sme1 .* at eta = 0.5: non-finite state at step .*"
                                                 r"The rmsprop map's v_x must stay above 0"):
        update_map_weak_error(rmsprop(gaussian), sp.Symbol("x") ** 2, [1.0, 0.05], 1.0, [0.5, 0.25],
                              models=["sme1"], n_paths=2000)


def test_numeric_root_outside_the_domain_gives_nan_for_those_paths_only():
    """A two-parameter RMSprop's SME has a 4 x 4 numeric root: at a state with v < 0 its Sigma is all NaN, on
    which eigh raises; those paths get NaN noise (the driver then reports them), the others their root."""
    from smfsym.numerics.compiled_sde import NumericSDE
    from smfsym.optimizers.update_map import rmsprop

    x1, x2 = sp.symbols("x1 x2")
    p = smfsym.Problem((x1 - smfsym.normal("a")) ** 2 / 2 + (x2 - smfsym.normal("b")) ** 2, [x1, x2])
    num = NumericSDE(rmsprop(p).sme(1), {smfsym.symbolic.models.default_eta(): 0.1})
    X = np.array([[1.0, 0.5, 1.0, 2.0], [1.0, 0.5, -0.2, 2.0], [0.3, -1.0, 0.5, 0.7]])
    with np.errstate(invalid="ignore"):  # sqrt(v) at v < 0: the NaN this test is about
        R = num.sqrt_sigma(X)
    assert np.isnan(R[1]).all() and np.isfinite(R[[0, 2]]).all()
    S = num._sigma.evaluate(num.cols(X[[0, 2]])).reshape(2, 4, 4)
    assert np.allclose(R[[0, 2]] @ R[[0, 2]], S, atol=1e-12)


# ------------------------------------------------------------ signSGD, normalised and clipped SGD (issue 18, item 2)


@pytest.fixture(scope="module")
def two_gaussian():
    """Independent coordinates: g_1 = x1 - xi1, g_2 = (2 x2 - xi2 - 1/2), xi1 ~ N(1/2, 1/4), xi2 ~ N(0, 1)."""
    x1, x2 = sp.symbols("x1 x2")
    xi1 = smfsym.normal("xi1", mean=sp.Rational(1, 2), std=sp.Rational(1, 2))
    xi2 = smfsym.normal("xi2")
    return smfsym.Problem((x1 - xi1) ** 2 / 2 + (2 * x2 - xi2 - sp.Rational(1, 2)) ** 2 / 4, [x1, x2])


def _integrated(fn, mean, std):
    """E fn(mean + std Z) and Var, by quadrature split at the kinks of sign and of clip at 1 (an independent
    route to the closed forms)."""
    from scipy import integrate, stats

    cuts = sorted([(-mean - 1) / std, -mean / std, (1 - mean) / std])
    pieces = list(zip([-np.inf] + cuts, cuts + [np.inf]))

    def moment(k):
        return sum(integrate.quad(lambda z: fn(mean + std * z) ** k * stats.norm.pdf(z), a, b)[0] for a, b in pieces)

    m1 = moment(1)
    return m1, moment(2) - m1**2


@pytest.mark.parametrize("kind", ["sign", "clip"])
def test_sign_and_clip_closed_forms_against_quadrature(two_gaussian, kind):
    from smfsym.optimizers.nonsmooth_maps import clipped_sgd_map, sign_sgd_map

    m = sign_sgd_map(two_gaussian) if kind == "sign" else clipped_sgd_map(two_gaussian, clip=1)
    fn = np.sign if kind == "sign" else (lambda g: np.clip(g, -1, 1))
    x1, x2 = two_gaussian.params
    for pt in ({x1: 0.3, x2: -0.2}, {x1: 1.7, x2: 0.6}):
        means_stds = [(pt[x1] - 0.5, 0.5), (2 * pt[x2] - 0.5, 1.0)]  # g_i = M_i + s_i Z
        for i, (M, s) in enumerate(means_stds):
            mean, var = _integrated(fn, M, s)
            assert float(m.a[i].subs(pt)) == pytest.approx(-mean, abs=1e-10)
            assert float(m.covariance[i, i].subs(pt)) == pytest.approx(var, abs=1e-10)
        assert m.covariance[0, 1] == 0 and list(m.b) == [0, 0]


def test_sign_map_simulates_the_sign_update(gaussian):
    from smfsym.optimizers.nonsmooth_maps import normalized_sgd_map, sign_sgd_map

    a = simulate_update_map(sign_sgd_map(gaussian), [0.3], 10, 0.1, n_paths=200, seed=4)
    b = simulate_update_map(normalized_sgd_map(gaussian), [0.3], 10, 0.1, n_paths=200, seed=4)
    g = np.random.default_rng(np.random.SeedSequence(4).spawn(1)[0])
    xs = np.full(200, 0.3)
    for _ in range(10):
        xs = xs - 0.1 * np.sign(xs - g.standard_normal(200))
    assert np.allclose(a.states[-1, :, 0], xs, atol=1e-12) and np.array_equal(a.states, b.states)


def test_nonsmooth_map_refusals(two_gaussian):
    from smfsym.optimizers.nonsmooth_maps import clipped_sgd_map, normalized_sgd_map, sign_sgd_map

    x, y = sp.symbols("x y")
    with pytest.raises(ValueError, match="not smooth under a finite law.*jumps"):
        sign_sgd_map(smfsym.Problem((x - smfsym.rademacher("r")) ** 2 / 2, [x]))
    with pytest.raises(ValueError, match="not smooth under a finite law"):
        clipped_sgd_map(smfsym.Problem((x - smfsym.empirical(np.array([[0.0], [1.0]]), "z")[0]) ** 2 / 2, [x]), 1)
    with pytest.raises(ValueError, match=r"Gaussian data only .*\['Uniform'\]"):
        sign_sgd_map(smfsym.Problem((x - smfsym.uniform("u")) ** 2 / 2, [x]))
    with pytest.raises(ValueError, match="not linear in the data"):
        sign_sgd_map(smfsym.Problem((x - smfsym.normal("xi")) ** 4 / 4, [x]))
    with pytest.raises(ValueError, match="share data"):
        sign_sgd_map(smfsym.Problem((x + y - smfsym.normal("xi")) ** 2 / 2, [x, y]))
    with pytest.raises(ValueError, match="coordinate 1 of the gradient has no noise"):
        sign_sgd_map(smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2 + y**2, [x, y]))
    with pytest.raises(ValueError, match="normalised SGD is built for one parameter"):
        normalized_sgd_map(two_gaussian)
    with pytest.raises(ValueError, match="`clip`"):
        clipped_sgd_map(two_gaussian, clip=-1)
    with pytest.raises(ValueError, match="no SMF: .*infinite chaos series"):
        sign_sgd_map(two_gaussian).smf(1)


@pytest.mark.slow  # a few seconds: the slow tier (CI runs both)
def test_clipped_sgd_sme_orders():
    """Clipped SGD (C = 1) on (x - xi)^2 / 2, xi ~ N(0, 1/4), from x = 2 (the clip is active at first), phi = x,
    t_end = 1, 20,000 paths: sme1's errors are resolved (> 4 SE) with slope 1 (within 0.3); sme2's, O(eta^2),
    stay within 3 SE at every eta and below a quarter of sme1's at eta = 1/4."""
    from smfsym.optimizers.nonsmooth_maps import clipped_sgd_map
    from smfsym.studies.options import Numerics
    from smfsym.studies.update_map_study import update_map_weak_error
    import warnings

    x = sp.Symbol("x")
    m = clipped_sgd_map(smfsym.Problem((x - smfsym.normal("xi", std=sp.Rational(1, 2))) ** 2 / 2, [x]), clip=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", smfsym.OrderWarning)
        st = update_map_weak_error(m, x, [2.0], 1.0, [0.25, 0.125, 0.0625], models=["sme1", "sme2"],
                                   n_paths=20_000, seed=0, progress=False, numerics=Numerics(dt_fraction=0.5))
    one = [r for r in st.rows if r["model"] == "sme1"]
    two = [r for r in st.rows if r["model"] == "sme2"]
    assert all(abs(r["error"]) > 4 * r["se"] for r in one)
    assert abs(st.orders["sme1"][0] - 1) < 0.3
    assert all(abs(r["error"]) < 3 * r["se"] for r in two)
    assert abs(two[0]["error"]) < abs(one[0]["error"]) / 4
