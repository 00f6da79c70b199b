"""Schedule and momentum studies: bounded exact solvers and their cost estimate (issue #15, "Trust").

A steep schedule is solved (or refused naming `schedule`), never a RuntimeError; a huge one is refused
before solving with the estimated work; `estimate_optimizer_cost` sizes the studies of a spec's [check]
in seconds, exact and Monte Carlo.
"""
import math
import time

import pytest
import sympy as sp

import smfsym
from smfsym.optimizers import Schedule
from smfsym.studies.optimizer_weak_error import schedule_weak_error
from smfsym.limits import ResourceLimitError
from smfsym.spec import spec_from_dict
from smfsym.studies.cost import estimate_optimizer_cost

x = sp.Symbol("x")
t = sp.Symbol("t")


def _ou():
    return smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x])  # grad F = x


@pytest.mark.timeout(60)
def test_steep_schedule_is_solved_exactly():
    """u = exp(-1000 t) used to end in a RuntimeError from the moment ODE; gf has a closed form."""
    st = schedule_weak_error(_ou(), Schedule(sp.exp(-1000 * t), t), x**2, [1.0], 1.0, [0.1, 0.05],
                             models=["gf", "smf2"])
    assert st.meta["method"] == "exact"
    U = (1 - math.exp(-1000.0)) / 1000  # int_0^1 u: dx = -u x dt gives x0 exp(-U)
    for r in st.rows:
        assert math.isfinite(r["value"]) and math.isfinite(r["sgd"])
        if r["model"] == "gf":
            assert r["value"] == pytest.approx(math.exp(-2 * U), rel=1e-10)
    # SGD: one step of size eta u(0) = eta, then steps eta exp(-1000 k eta) < 1e-40: E x_1^2 = (1 - eta)^2 + eta^2
    sgd = {r["eta"]: r["sgd"] for r in st.rows}
    assert sgd[0.1] == pytest.approx((1 - 0.1) ** 2 + 0.1**2, rel=1e-12)


@pytest.mark.timeout(60)
def test_schedule_with_a_pole_is_refused_naming_schedule():
    with pytest.raises(ValueError, match="`schedule`") as info:
        schedule_weak_error(_ou(), Schedule(1 / (t - sp.Rational(1, 2)) ** 2, t), x**2, [1.0], 1.0, [0.1, 0.05],
                            models=["smf1"])
    assert not isinstance(info.value, RuntimeError)


@pytest.mark.timeout(30)
def test_huge_schedule_is_refused_before_solving_with_the_estimate():
    """u = 10^6 used to hang `check` (the moment ODE crawls at rtol 1e-13): now refused in a second or two."""
    t0 = time.perf_counter()
    with pytest.raises(ResourceLimitError, match=r"would take about [\d,]+ steps.*`schedule`"):
        schedule_weak_error(_ou(), Schedule(sp.Integer(10**6)), x**2, [1.0], 1.0, [0.1, 0.05], models=["smf1"])
    assert time.perf_counter() - t0 < 10


@pytest.mark.timeout(30)
def test_exact_scheduled_sgd_work_is_bounded():
    """20,000 steps on the 9 monomials of x^8: over MAX_SCHEDULE_WORK, refused before any product."""
    t0 = time.perf_counter()
    with pytest.raises(ResourceLimitError, match=r"20,000 steps on 9 monomials.*method='montecarlo'"):
        schedule_weak_error(_ou(), Schedule(1 / (1 + t), t), x**8, [1.0], 1.0, [1e-4, 5e-5], models=["smf1"])
    assert time.perf_counter() - t0 < 10


def _check(**keys):
    doc = {"problem": {"params": ["x0", "x1"], "loss": "(a0*x0 + a1*x1 - eps)**2 / 2"},
           "data": {"a": {"law": "normal", "dim": 2}, "eps": {"law": "normal", "std": 0.5}},
           "check": {"phi": "x0**2 + x1", "x0": [1.0, -0.5], "t_end": 1.0, "models": ["gf", "smf1", "smf2"],
                     **keys}}
    spec = spec_from_dict(doc)
    return spec.problem, spec.check


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
@pytest.mark.timeout(120)
@pytest.mark.parametrize("keys", [dict(schedule="(1 + cos(pi * t)) / 2 + 1/10", etas=[0.04, 0.02, 0.01]),
                                  dict(optimizer="heavy_ball", friction=1.5, etas=[0.01, 0.0025, 0.000625])])
@pytest.mark.parametrize("method", ["auto", "montecarlo"])
def test_estimate_optimizer_cost_sizes_schedule_and_momentum_studies_quickly(keys, method):
    problem, check = _check(method=method, n_paths=100_000, **keys)
    t0 = time.perf_counter()
    est = estimate_optimizer_cost(problem, check)
    elapsed = time.perf_counter() - t0
    assert est.study == ("schedule" if "schedule" in keys else "momentum")
    assert est.method == ("exact" if method == "auto" else "montecarlo")
    assert set(est.parts) == {"sgd", "gf", "smf1", "smf2"}
    assert all(v >= 0 for v in est.parts.values()) and est.seconds == pytest.approx(sum(est.parts.values()))
    if method == "montecarlo":
        # the noisy models dominate: 100,000 paths at dt = step/8, three runs each (dt, dt/2)
        assert est.parts["smf1"] > est.parts["gf"] and est.seconds > 1
    assert elapsed < 15  # "a second or two" on a quiet machine; the bound leaves room for a shared one


@pytest.mark.timeout(30)
def test_estimate_optimizer_cost_refuses_what_the_study_refuses():
    problem, check = _check(schedule="10**6", etas=[0.04, 0.02])
    with pytest.raises(ResourceLimitError, match="`schedule`"):
        estimate_optimizer_cost(problem, check)
    problem, check = _check(optimizer="heavy_ball", etas=[0.01, 0.0025])
    with pytest.raises(ValueError, match="`etas` must be distinct"):  # (the spec refuses them too)
        estimate_optimizer_cost(problem, dict(check, etas=[0.01, 0.01]))
    with pytest.raises(ValueError, match=r"`etas`: SGD's step h = sqrt\(eta\) must divide `t_end` = 1.*0\.02"):
        estimate_optimizer_cost(problem, dict(check, etas=[0.01, 0.02]))  # h = 0.1414 does not divide t_end
    with pytest.raises(ValueError, match="plain SGD"):
        estimate_optimizer_cost(*_check(etas=[0.1, 0.05]))


# --- audit 3, finding 7: every optimizer simulator and study bounds its work before it starts ---------------

def _bound_cases():
    from smfsym.optimizers import constant, cosine, Momentum
    from smfsym.optimizers.regimes import malladi_rmsprop, simulate_regime
    from smfsym.optimizers.svag import simulate_svag
    from smfsym.studies.optimizer_weak_error import momentum_weak_error
    from smfsym.studies.svag_study import svag_study
    p = _ou()
    rms = smfsym.rmsprop(p)
    mc = smfsym.Numerics(method="montecarlo")
    steps = r"`n_steps` = 1000000000000 is over the bound of 1000000000: raise `max_steps`"
    work = r"the Monte Carlo work is [\d.e+]+ path-steps .*over `max_path_steps` = 1e\+11"
    return [
        ("simulate_update_map", lambda: smfsym.simulate_update_map(rms, [1, 1], 10**12, 1e-12, n_paths=10), steps),
        ("simulate_regime", lambda: simulate_regime(malladi_rmsprop(p), [1, 1], 10**12, 1e-6), steps),
        ("simulate_svag", lambda: simulate_svag(rms, 10**18, [1, 1], 0.5, 0.1, n_paths=100),
         r"`l` \* `t_end` / h \(SVAG steps, l = 10{18}, h = 0.1\) = 5e\+18 is over the bound of 1000000000"),
        ("simulate_sgd_schedule", lambda: smfsym.simulate_sgd_schedule(p, constant(), [1.0], 10**12, 1e-12), steps),
        ("simulate_momentum_sgd", lambda: smfsym.simulate_momentum_sgd(p, [1.0], 10**12, 1e-12, 0.0), steps),
        ("svag_study huge l", lambda: svag_study(p, x, [1.0], 1.0, 0.5, ls=[2, 10**18], reference=(0.3, 0.0)),
         work),
        ("svag_study many paths", lambda: svag_study(p, x, [1.0], 1.0, 0.5, ls=[2, 10**9], n_paths=10**6),
         r"path-steps \(1000000 paths x \(2e\+09 SVAG steps .* \+ 12 steps of the SME reference\)\)"),
        ("update_map_weak_error", lambda: smfsym.update_map_weak_error(rms, x**2, [1.0, 1.0], 1.0, [1e-7, 2e-7],
                                                                       n_paths=10**6), work),
        ("schedule_weak_error", lambda: schedule_weak_error(p, cosine(2, 0.2), x**2, [1.0], 1.0, [1e-7, 2e-7],
                                                            n_paths=10**6, numerics=mc), work),
        ("momentum_weak_error", lambda: momentum_weak_error(p, x**2, [1.0], 1.0, [1e-10, 4e-10],
                                                            Momentum(friction=1.0), n_paths=10**6, numerics=mc),
         work),
        ("scaling_rule_study", lambda: smfsym.scaling_rule_study(p, x**2, [1.0], 1.0, eta=1e-4, n_paths=10**7),
         work),
    ]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name,call,message", _bound_cases(), ids=[c[0] for c in _bound_cases()])
def test_runs_over_the_step_or_work_bound_are_refused_before_they_start(name, call, message):
    """Each of these ran for minutes or hit a raw MemoryError; now refused in well under a second."""
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=message):
        call()
    assert time.perf_counter() - t0 < 5


@pytest.mark.timeout(60)
def test_max_steps_and_max_path_steps_can_be_raised_or_lowered():
    from smfsym.optimizers.svag import simulate_svag
    p = _ou()
    with pytest.raises(ValueError, match="over the bound of 7: lower `l` or `t_end`, or raise `max_steps`"):
        simulate_svag(p, 4, [1.0], 1.0, 0.5, n_paths=10, options=smfsym.RunOptions(max_steps=7))
    assert simulate_svag(p, 4, [1.0], 1.0, 0.5, n_paths=10, options=smfsym.RunOptions(max_steps=8)).n_steps == 8
    with pytest.raises(ValueError, match=r"path-steps .*over `max_path_steps` = 1e\+03"):
        schedule_weak_error(p, Schedule(1 / (1 + t), t), x**2, [1.0], 1.0, [0.5, 0.25], n_paths=100,
                            models=["smf1"], numerics=smfsym.Numerics(method="montecarlo"),
                            options=smfsym.RunOptions(max_path_steps=1e3))
    with pytest.raises(ValueError, match=r"path-steps .*over `max_path_steps` = 1e\+03"):
        smfsym.scaling_rule_study(p, x**2, [1.0], 1.0, optimizer="sgd", eta=0.125, ks=[1, 4], n_paths=200,
                                  options=smfsym.RunOptions(max_path_steps=1e3, progress=False))
    with pytest.raises(ValueError, match="`max_path_steps` must be a positive finite number; got 0"):
        smfsym.RunOptions(max_path_steps=0)
    with pytest.raises(ValueError, match="`max_path_steps`: simulate_svag does not take it"):
        simulate_svag(p, 4, [1.0], 1.0, 0.5, n_paths=10, options=smfsym.RunOptions(max_path_steps=1e3))
    with pytest.raises(TypeError, match="unexpected keyword argument 'max_path_steps'"):
        smfsym.scaling_rule_study(p, x**2, [1.0], 1.0, optimizer="sgd", eta=0.125, ks=[1, 4], max_path_steps=1e3)
