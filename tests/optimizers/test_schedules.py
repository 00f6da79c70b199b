"""Learning-rate schedules: SGD, time-inhomogeneous SME/SMF, exact weak orders (docs/theory.md §7)."""
import numpy as np
import pytest
import sympy as sp

import smfsym
from smfsym.simulation.exact import PolynomialSpace, exact_sde_mean
from smfsym.optimizers import TIME, Schedule, constant, cosine, exponential_decay, scheduled_model, simulate_sgd_schedule, step_decay, warmup, with_time
from smfsym.studies.optimizer_weak_error import exact_schedule_sgd_mean, exact_time_dependent_mean, schedule_weak_error

x, y = sp.symbols("x y")
ETAS = [0.04, 0.02, 0.01, 0.005]  # order-1 errors have an eta^2 part of opposite sign: stay asymptotic


@pytest.fixture(scope="module")
def gauss():
    return smfsym.Problem((x - smfsym.normal("xi", std=sp.Rational(3, 2))) ** 2 / 2, [x])


@pytest.fixture(scope="module")
def regression():
    a = smfsym.normal("a", mean=1, std=sp.Rational(1, 2))
    z = smfsym.normal("z")
    return smfsym.Problem((a * x + y - z) ** 2 / 2 + y**2 / 4, [x, y])


@pytest.mark.parametrize("kw", [dict(), dict(batch_size=3, chunk_size=4096, save_at=[0, 3, 7]),
                                dict(x0=[[1.0], [-2.0]])])
def test_constant_schedule_reproduces_simulate_sgd_bit_for_bit(gauss, kw):
    kw = dict(kw)
    x0 = kw.pop("x0", [1.0])
    a = simulate_sgd_schedule(gauss, constant(), x0, 7, 0.1, n_paths=5000, seed=4, **kw)
    b = smfsym.simulate_sgd(gauss, x0, 7, 0.1, n_paths=5000, seed=4, **kw)
    assert a.states.shape == b.states.shape
    assert np.array_equal(a.states, b.states)
    assert np.array_equal(a.t, b.t)


def test_constant_schedule_models_are_todays_models(gauss, regression):
    for p in (gauss, regression):
        for kind, build in (("smf", smfsym.smf), ("sme", smfsym.sme)):
            for order in (1, 2):
                m = scheduled_model(p, constant(), kind, order)
                base = build(p, order)
                assert all(sp.simplify(a - b) == 0 for a, b in zip(m.drift[: p.dim], base.drift))
                assert m.drift[p.dim] == 1
                if base.noise_kind == "matrix":
                    gap = sp.simplify(sp.Matrix(m.diffusion)[: p.dim, :] - base.diffusion)
                    assert gap == sp.zeros(*base.diffusion.shape)
                    assert all(e == 0 for e in sp.Matrix(m.diffusion)[p.dim, :])


def test_constant_schedule_reproduces_weak_error_numbers(regression):
    """Exact SGD values identical to smfsym.weak_error's; model values to the moment-ODE tolerance."""
    phi = x * y + y**2
    etas = [0.1, 0.05]
    new = schedule_weak_error(regression, constant(), phi, [1.0, -0.5], 1.0, etas, models=["smf1", "smf2"])
    old = smfsym.weak_error(regression, phi, [1.0, -0.5], 1.0, etas, models=["smf1", "smf2"])
    for r_new in new.rows:
        r_old = next(r for r in old.rows if r["eta"] == r_new["eta"] and r["model"] == r_new["model"])
        assert r_new["sgd"] == pytest.approx(r_old["sgd"], rel=1e-14, abs=1e-15)
        assert r_new["value"] == pytest.approx(r_old["value"], rel=1e-10, abs=1e-12)


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
@pytest.mark.parametrize("schedule", [cosine(2, sp.Rational(1, 5)), Schedule(1 / (1 + TIME)), exponential_decay(0.7)])
def test_exact_orders_on_gaussian_quadratic(gauss, schedule):
    st = schedule_weak_error(gauss, schedule, x**2, [1.0], 1.0, ETAS, models=["gf", "smf1", "smf2", "sme2"])
    assert st.meta["method"] == "exact"
    for m, target in (("gf", 1), ("smf1", 1), ("smf2", 2), ("sme2", 2)):
        assert abs(st.orders[m].slope - target) < 0.15, (m, st.orders[m])


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
def test_exact_orders_with_state_dependent_noise(regression):
    st = schedule_weak_error(regression, cosine(2, sp.Rational(1, 5)), x**2 + x * y, [1.0, -0.5], 1.0,
                             [0.05, 0.025, 0.0125, 0.00625], models=["smf2"])
    assert abs(st.orders["smf2"].slope - 2) < 0.15


def test_the_derivative_term_is_needed(gauss):
    """Without -eta u'/2 grad F the scheduled order-2 drift is only order 1: the term is not decoration."""
    sch = exponential_decay(2)
    m2 = scheduled_model(gauss, sch, "smf", 2)
    du = sch.derivative
    wrong_drift = list(m2.drift)
    wrong_drift[0] = sp.expand(wrong_drift[0] - m2.eta * du / 2 * gauss.grad_F[0])
    wrong = smfsym.SDE(wrong_drift, m2.diffusion, m2.state, eta=m2.eta)
    errs_ok, errs_wrong = [], []
    for eta in ETAS:
        k = round(1 / eta)
        sgd = exact_schedule_sgd_mean(gauss, sch, x**2, [1.0], eta, k)
        errs_ok.append(exact_time_dependent_mean(m2, x**2, [1.0, 0.0], eta, k * eta) - sgd)
        errs_wrong.append(exact_time_dependent_mean(wrong, x**2, [1.0, 0.0], eta, k * eta) - sgd)
    from smfsym.studies import fit_order

    assert abs(fit_order(ETAS, errs_ok)[0] - 2) < 0.15
    assert abs(fit_order(ETAS, errs_wrong)[0] - 1) < 0.15


def test_moment_ode_matches_matrix_exponential_for_constant_schedule(gauss):
    m = scheduled_model(gauss, constant(2), "smf", 2)
    base = smfsym.smf(smfsym.Problem(gauss.loss, [x]), 2)
    # u = 2 at eta is the plain SMF at eta' = 2 eta run to time 2 t: drift -2 (grad F + eta Hess F grad F)
    # and noise 2 sqrt(eta) = sqrt(2 eta) sqrt(2) (the time change s = 2 t scales dW by sqrt 2)
    v1 = exact_time_dependent_mean(m, x**2, [1.0, 0.0], 0.05, 1.0)
    v2 = exact_sde_mean(base, x**2, [1.0], 0.1, 2.0, PolynomialSpace([x], 2))
    assert v2 == pytest.approx(v1, rel=1e-10)


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
def test_simulators_agree_with_exact_moments(gauss):
    """Monte Carlo of scheduled SGD and of the scheduled SMF (weak2 on the augmented state) within 4 SE."""
    sch, eta, k = cosine(1, sp.Rational(1, 5)), 0.1, 10
    f = {"x2": lambda s: s[..., 0] ** 2}
    r = simulate_sgd_schedule(gauss, sch, [1.0], k, eta, n_paths=100_000, seed=1, store=False, functions=f)
    exact = exact_schedule_sgd_mean(gauss, sch, x**2, [1.0], eta, k)
    assert abs(r.mean("x2")[-1] - exact) < 4 * r.sem("x2")[-1]
    m = scheduled_model(gauss, sch, "smf", 2)
    rs = smfsym.simulate(m, with_time([1.0]), 1.0, eta=eta, dt=eta / 4, scheme="weak2", n_paths=100_000, seed=2,
                         store=False, functions=f)
    exact_m = exact_time_dependent_mean(m, x**2, [1.0, 0.0], eta, 1.0)
    assert abs(rs.mean("x2")[-1] - exact_m) < 4 * rs.sem("x2")[-1]


def test_weak2_solver_uses_the_time_derivatives():
    """Noise-free scheduled flow dx = -u(t) x: weak2 converges at order 2 in dt, Euler at order 1."""
    p = smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x])
    sch = Schedule(1 + sp.sin(3 * TIME) / 2)
    m = scheduled_model(p, sch, "gf", 1)
    exact = float(sp.exp(-sp.integrate(sch.expr, (TIME, 0, 1))))
    from smfsym.studies import fit_order

    dts = [0.04, 0.02, 0.01, 0.005]
    for scheme, target in (("weak2", 2), ("euler", 1)):
        errs = [smfsym.simulate(m, [1.0, 0.0], 1.0, eta=0.1, dt=h, scheme=scheme, n_paths=1, seed=0).states[-1, 0, 0]
                - exact for h in dts]
        assert abs(fit_order(dts, errs)[0] - target) < 0.15, (scheme, errs)


def test_schedule_helpers():
    sd = step_decay(0.5, 1.0)
    assert sd.values(0.25, 9).tolist() == [1] * 4 + [0.5] * 4 + [0.25]
    assert not sd.is_smooth and cosine(3).is_smooth
    w = warmup(constant(), 1.0, start=0.1)
    assert w.values(0.5, 4).tolist() == pytest.approx([0.1, 0.55, 1.0, 1.0])
    assert constant().is_constant and not cosine(3).is_constant
    # a step decay model simulates (Piecewise in t: the default scheme is euler)
    m = scheduled_model(smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x]), sd, "smf", 2)
    assert m.nondifferentiable()


@pytest.mark.parametrize("make,match", [
    (lambda p: Schedule(TIME + sp.Symbol("c")), "time symbol t only"),
    (lambda p: simulate_sgd_schedule(p, Schedule(1 - TIME), [1.0], 30, 0.1), "positive and finite"),
    (lambda p: scheduled_model(p, constant(), "adam"), "`kind` must be"),
    (lambda p: scheduled_model(p, constant(), "smf", 3), "`order` must be 1 or 2"),
    # (refused by the Problem itself now, before any schedule sees it: t is the models' time)
    (lambda p: scheduled_model(smfsym.Problem((TIME - smfsym.normal("q")) ** 2, [TIME]), constant()),
     r"the name\(s\) \['t'\] are the models' own"),
    (lambda p: cosine(-1), "`horizon` must be positive"),
    (lambda p: simulate_sgd_schedule(p, constant(), [1.0], 0, 0.1), "`n_steps`"),
    (lambda p: simulate_sgd_schedule(p, constant(), [1.0], 3, float("nan")), "`eta` must be positive"),
])
def test_bad_input(gauss, make, match):
    with pytest.raises(ValueError, match=match):
        make(gauss)


#: audit 3 (9): what used to be accepted, then failed with a raw traceback or ran as another schedule
BAD_SCHEDULES = [
    (sp.nan, ValueError, "`expr` must be finite (no NaN or infinity); got nan"),
    (float("nan"), ValueError, "`expr` must be finite"),
    (sp.oo, ValueError, "`expr` must be finite"),
    (-sp.oo, ValueError, "`expr` must be finite"),
    (float("inf"), ValueError, "`expr` must be finite"),
    (sp.zoo, ValueError, "`expr` must be finite"),
    (1 / (1 + TIME) + sp.oo * TIME, ValueError, "`expr` must be finite"),
    (0, ValueError, "`expr` must be positive (a learning-rate multiplier u > 0); got 0"),
    (0.0, ValueError, "`expr` must be positive"),
    (-1, ValueError, "`expr` must be positive"),
    (-sp.pi, ValueError, "`expr` must be positive"),
    (sp.I, ValueError, "`expr` must be a real number or an expression in t; got the non-real I"),
    (1 + sp.I, ValueError, "non-real"),
    (True, TypeError, "`expr` must be a sympy expression in the time symbol; got the boolean True"),
    (False, TypeError, "got the boolean False"),
    (sp.true, TypeError, "got the boolean True"),
    (np.bool_(True), TypeError, "got the boolean"),
    (TIME > 1, TypeError, "got the boolean"),
]


@pytest.mark.parametrize("expr,exc,match", BAD_SCHEDULES, ids=[repr(b[0]) for b in BAD_SCHEDULES])
def test_schedule_refuses_what_is_no_learning_rate_multiplier(expr, exc, match):
    with pytest.raises(exc) as info:
        Schedule(expr, TIME)
    assert match in str(info.value), str(info.value)


@pytest.mark.parametrize("expr", [-1 - TIME, -TIME**2, -sp.exp(TIME), -(1 + TIME) ** 2])
def test_scheduled_model_refuses_a_provably_non_positive_schedule(gauss, expr):
    """Schedule(-1) gave a gradient-ascent model; a symbolic u <= 0 on [0, oo) is refused the same way."""
    with pytest.raises(ValueError, match=r"`schedule` must be positive on t >= 0"):
        scheduled_model(gauss, Schedule(expr, TIME), kind="sme")


@pytest.mark.parametrize("expr", [1 - TIME, 1 / (1 + TIME), sp.exp(-TIME), sp.cos(TIME) + 2, 3 * sp.pi / 4])
def test_symbolic_or_positive_schedules_still_pass(gauss, expr):
    """Only what sympy proves non-positive is refused (1 - t is positive at the start)."""
    assert scheduled_model(gauss, Schedule(expr, TIME), kind="sme").state == (x, TIME)


def test_bad_types():
    with pytest.raises(TypeError, match="`expr` must be a sympy expression"):
        Schedule(object())
    with pytest.raises(TypeError, match="`expr` must be a sympy expression"):
        Schedule("1/(1 + t)")  # strings are never parsed
    with pytest.raises(ValueError, match="time symbol s only"):
        Schedule(sp.Symbol("s") * sp.Symbol("c"), t=sp.Symbol("s"))
    own = sp.Symbol("t")  # no assumptions: a different symbol from TIME, adopted as the time variable
    assert Schedule(1 / (1 + own)).t == own
    with pytest.raises(TypeError, match="`t` must be a sympy Symbol"):
        Schedule(1, t="t")
    with pytest.raises(TypeError, match="`schedule` must be a Schedule"):
        scheduled_model(smfsym.Problem((x - smfsym.normal("xi")) ** 2, [x]), "cosine")


def test_latex_names_the_schedule(gauss):
    from smfsym.optimizers import scheduled_latex

    sch = cosine(2, sp.Rational(1, 5))
    tex = scheduled_latex(scheduled_model(gauss, sch, "smf", 2), sch)
    assert r"\begin{aligned}" in tex and "u(t) &=" in tex and r"\sin" in tex  # the u' term is printed


@pytest.mark.filterwarnings("ignore::smfsym.OrderWarning")  # two etas, errors near the noise: orders are not the point
def test_monte_carlo_study_agrees_with_exact(gauss):
    """method='montecarlo': each error within 4 SE of the exact one. The models' values are
    Richardson-extrapolated (the weak2 solver's O(dt^2) error removed, O(dt^3) left), so no
    allowance for the solver's error is added to the tolerance."""
    sch = Schedule(1 / (1 + TIME))
    kw = dict(models=["smf2"], t_end=1.0)
    ex = schedule_weak_error(gauss, sch, x**2, [1.0], etas=[0.2, 0.1], **kw)
    mc = schedule_weak_error(gauss, sch, x**2, [1.0], etas=[0.2, 0.1], method="montecarlo", n_paths=20_000, seed=3,
                             dt_fraction=0.25, **kw)
    assert mc.meta["method"] == "montecarlo"
    for a, b in zip(ex.rows, mc.rows):
        assert b["se"] > 0 and "extrapolated" in b["method"]
        assert abs(a["error"] - b["error"]) < 4 * b["se"], (a, b)


@pytest.mark.parametrize("save_at,match", [([5, 2], "strictly increasing"), ([2, 2], "strictly increasing"),
                                           ([2.5], "integer step"), ([99], "n_steps")])
def test_schedule_and_momentum_sgd_refuse_bad_save_steps(save_at, match):
    x = sp.Symbol("x")
    p = smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x])
    with pytest.raises(ValueError, match=match):
        smfsym.simulate_sgd_schedule(p, smfsym.optimizers.constant(), [1.0], 10, 0.1, n_paths=4, save_at=save_at)
    with pytest.raises(ValueError, match=match):
        smfsym.simulate_momentum_sgd(p, [1.0], 10, 0.1, 0.5, n_paths=4, save_at=save_at)
