"""Audit 14, F1: numeric `values` for a loss's constants (every spec with [problem] constants) switched exact
moments off: a regularised quadratic ran Monte Carlo (errors of 1e-3 under their standard errors, orders
unresolved) where the same problem with the number written in is exact. The studies bind such constants
into the problem for the exact route (Problem.bind_constants); values for a law's parameters still simulate."""
import pytest
import sympy as sp

import smfsym
from smfsym.optimizers import Momentum, Schedule, TIME
from smfsym.simulation.exact import NotClosedError
from smfsym.studies.cost import estimate_cost

x, lam = sp.symbols("x lam")
QUIET = smfsym.RunOptions(progress=False)


def _pair():
    xi = smfsym.normal("xi", std=sp.Rational(1, 2))
    written = smfsym.Problem((x - xi) ** 2 / 2 + sp.Rational(1, 8) * x**2 / 2, [x])
    named = smfsym.Problem((x - xi) ** 2 / 2 + lam * x**2 / 2, [x], constants=[lam])
    return written, named


def _errors(study):
    return [r["error"] for r in study.table]


def test_weak_error_binds_a_constant_and_stays_exact():
    written, named = _pair()
    a = smfsym.weak_error(written, x**2, [1.0], 1.0, [0.1, 0.05], models=["sme2", "smf2"], options=QUIET)
    b = smfsym.weak_error(named, x**2, [1.0], 1.0, [0.1, 0.05], models=["sme2", "smf2"], values={lam: 0.125},
                          options=QUIET)
    assert a.meta["method"] == b.meta["method"] == "exact"
    assert _errors(b) == pytest.approx(_errors(a), rel=1e-12, abs=1e-18)
    # method="exact" is no longer refused, and the cost estimate agrees that nothing is simulated
    c = smfsym.weak_error(named, x**2, [1.0], 1.0, [0.1, 0.05], models=["smf2"], values={"lam": 0.125},
                          numerics=smfsym.Numerics(method="exact"), options=QUIET)
    assert c.meta["method"] == "exact"
    assert estimate_cost(named, x**2, [1.0], 1.0, [0.1, 0.05], models=["smf2"], values={lam: 0.125}).seconds == 0
    # the problem passed in is untouched (its constant is still a symbol)
    assert lam in named.F.free_symbols


def test_schedule_and_momentum_studies_bind_a_constant_and_stay_exact():
    written, named = _pair()
    sch = Schedule(1 / (1 + TIME))
    a = smfsym.schedule_weak_error(written, sch, x**2, [1.0], 0.4, [0.2, 0.1], options=QUIET)
    b = smfsym.schedule_weak_error(named, sch, x**2, [1.0], 0.4, [0.2, 0.1], values={lam: 0.125}, options=QUIET)
    assert {r["method"] for r in a.table} == {r["method"] for r in b.table} == {"exact"}
    assert _errors(b) == pytest.approx(_errors(a), rel=1e-12, abs=1e-18)
    a = smfsym.momentum_weak_error(written, x**2, [1.0], 0.4, [1 / 25, 1 / 100], momentum=Momentum(friction=1.5),
                                   options=QUIET)
    b = smfsym.momentum_weak_error(named, x**2, [1.0], 0.4, [1 / 25, 1 / 100], momentum=Momentum(friction=1.5),
                                   values={lam: 0.125},
                                   options=QUIET)
    assert {r["method"] for r in b.table} == {"exact"}
    assert _errors(b) == pytest.approx(_errors(a), rel=1e-12, abs=1e-18)


def test_values_of_a_law_parameter_still_simulate_and_exact_says_why():
    s = sp.Symbol("s", positive=True)
    p = smfsym.Problem((x - smfsym.normal("xi", std=s)) ** 2 / 2, [x])
    with pytest.raises(NotClosedError, match="bind only constants of the loss"):
        smfsym.weak_error(p, x**2, [1.0], 1.0, [0.1, 0.05], models=["smf2"], values={s: 0.5},
                          numerics=smfsym.Numerics(method="exact"), options=QUIET)


def test_bind_constants_refuses_what_it_cannot_bind():
    s = sp.Symbol("s", positive=True)
    p = smfsym.Problem((x - smfsym.normal("xi", std=s)) ** 2 / 2 + lam * x**2, [x], constants=[lam])
    with pytest.raises(ValueError, match="not a constant of the loss"):
        p.bind_constants({s: 1.0})
    for bad in (float("nan"), True, "1"):
        with pytest.raises(TypeError, match="finite real number"):
            p.bind_constants({lam: bad})
    bound = p.bind_constants({lam: 0.1})
    assert bound.constants == () and bound.F.coeff(x, 2) == sp.Rational(1, 2) + sp.Rational(0.1)



def test_values_that_leave_a_constant_unbound_are_refused_by_name():
    """Audit 17, F1: with constants lam and mu and values for lam only, the exact route ran with mu symbolic
    (a ValueError about converting '-0.1*mu', a NotClosedError, and an estimate of 'exact moments'); it is not
    taken, and the studies say which constant needs a number, as they did before."""
    mu = sp.Symbol("mu")
    xi = smfsym.normal("xi", std=sp.Rational(1, 2))
    p = smfsym.Problem((x - xi) ** 2 / 2 + lam * x**2 / 2 + mu * x, [x], constants=[lam, mu])
    for run in (lambda: smfsym.weak_error(p, x**2, [1.0], 1.0, [0.1, 0.05], models=["smf2"], values={lam: 0.25},
                                          options=QUIET),
                lambda: smfsym.schedule_weak_error(p, Schedule(1 / (1 + TIME)), x**2, [1.0], 0.4, [0.2, 0.1],
                                                   values={lam: 0.25}, options=QUIET),
                lambda: smfsym.momentum_weak_error(p, x**2, [1.0], 0.4, [1 / 25, 1 / 100], values={lam: 0.25},
                                                   momentum=Momentum(friction=1.5), options=QUIET)):
        with pytest.raises(ValueError, match=r"`values` must give numbers for \['mu'\]"):
            run()
    assert estimate_cost(p, x**2, [1.0], 1.0, [0.1, 0.05], models=["smf2"], values={lam: 0.25, mu: 0.5}).seconds == 0


def test_a_constant_in_phi_is_bound_too():
    """Audit 17, F2: phi = x^2 + lam x with lam bound ran Monte Carlo (and method='exact' was refused) although
    the spec reference lets [check] phi use constants: phi takes the same rationals as the loss."""
    written, named = _pair()
    a = smfsym.weak_error(written, x**2 + x / 8, [1.0], 1.0, [0.1, 0.05], models=["smf2"], options=QUIET)
    b = smfsym.weak_error(named, x**2 + lam * x, [1.0], 1.0, [0.1, 0.05], models=["smf2"], values={lam: 0.125},
                          numerics=smfsym.Numerics(method="exact"), options=QUIET)
    assert _errors(b) == pytest.approx(_errors(a), rel=1e-12, abs=1e-18)
    sch = Schedule(1 / (1 + TIME))
    a = smfsym.schedule_weak_error(written, sch, x**2 + x / 8, [1.0], 0.4, [0.2, 0.1], options=QUIET)
    b = smfsym.schedule_weak_error(named, sch, x**2 + lam * x, [1.0], 0.4, [0.2, 0.1], values={lam: 0.125},
                                   options=QUIET)
    assert {r["method"] for r in b.table} == {"exact"} and _errors(b) == pytest.approx(_errors(a), rel=1e-12)


def test_binding_does_not_repeat_the_problems_warnings():
    """Audit 17, F7: the bound copy re-ran the constructor's checks, so a kinked loss warned twice."""
    import warnings

    xr = sp.Symbol("x", real=True)
    xi = smfsym.normal("xi", std=sp.Rational(1, 2))
    with pytest.warns(smfsym.NonDifferentiableWarning):
        p = smfsym.Problem((xr - xi) ** 2 / 2 + lam * sp.Abs(xr), [xr], constants=[lam])
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        smfsym.weak_error(p, xr**2, [1.0], 1.0, [0.1, 0.05], models=["gf"], values={lam: 0.1}, n_paths=64,
                          options=QUIET)
    assert not [w for w in seen if issubclass(w.category, smfsym.NonDifferentiableWarning)]
