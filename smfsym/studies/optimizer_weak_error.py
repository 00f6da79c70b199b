r"""Weak-error studies for schedules and momentum, exact where the moments close (docs/theory.md §4, §7).

Exact mode (loss quadratic in the parameters, polynomial in the data, polynomial test function):

- SGD with a schedule: E phi(x_n) = (P_{eta_0} P_{eta_1} ... P_{eta_{n-1}} phi)(x_0), a product of the
  one-step operators of :func:`~smfsym.optimizers.batch_sgd_operator` at eta_k = eta u(k eta),
  in 40-digit arithmetic;
- the time-inhomogeneous model: the moment vector m(t) = E[monomials(X_t)] solves the linear ODE
  m' = A(t)^T m with A(t) the generator's matrix on the polynomials in x (t is a parameter of the
  coefficients), integrated with DOP853 at rtol 1e-13 (an error far below the weak errors measured);
- momentum SGD: the one-step operator on polynomials in (x, p), and the momentum model's generator
  (time-homogeneous on (x, p)): a matrix power and a matrix exponential as in :mod:`smfsym.simulation.exact`.

Monte Carlo otherwise, with the SGD and model runs on independent seeds and the solver's own error
estimated from runs at dt and dt/2 (as :func:`smfsym.weak_error`). Fitted orders use
:func:`smfsym.studies.fit_order`; results are :class:`smfsym.studies.WeakErrorStudy` objects.
"""
from __future__ import annotations

import math
import warnings
from typing import Mapping, Sequence

import mpmath
import numpy as np
import sympy as sp

from ..montecarlo.options import RunOptions, SaveAt, user_stacklevel
from ..simulation.exact import NotClosedError, PolynomialSpace, affine_in_params, exact_sde_mean, rational
from ..data.means import expectation
from ..data.tails import check_phi_tails
from ..symbolic.model_names import MODEL_REGISTRY
from ..symbolic.problem import Problem
from ..limits import ResourceLimitError
from ..symbolic.sde import SDE
from .options import Numerics, study_settings
from .common import PhiFunction, backend_meta, check_study_work, orders_from_rows
from ..montecarlo.checks import check_positive
from .weak_error_study import WeakErrorStudy
from .common import (bind_for_exact, check_increments, check_scheme, increments_for, scheme_for, seed_record,
                     study_seed)
from ..backends import get_backend
from .richardson import coupled_expectation
from .weak_error_study import _mc_method, check_etas, check_models
from ..simulation.minibatch_exact import MAX_EXACT_STEPS, _mp, batch_sgd_operator, check_space_size
from ..simulation.sgd import problem_symbols
from ..optimizers.momentum import Momentum, beta_for, momentum_model, momentum_rule, simulate_momentum_sgd
from ..optimizers.schedules import _as_schedule, scheduled_model, simulate_sgd_schedule, with_time
from .._checks import as_expr, numeric_values

__all__ = ["exact_schedule_sgd_mean", "exact_time_dependent_mean", "exact_momentum_sgd_mean",
           "schedule_weak_error", "momentum_weak_error"]

DIGITS = 40


def _degree(phi, params) -> int:
    return max(sp.Poly(sp.expand(phi), *params).total_degree(), 0)


def _check_phi(phi, params):
    phi = as_expr(phi)
    if phi.free_symbols - set(params) or not phi.is_polynomial(*params):
        raise NotClosedError(f"`phi` must be a polynomial in {tuple(params)} for exact moments; got {phi}.")
    return phi


class _MCSettings:
    """How a schedule or momentum study runs its Monte Carlo: the models' scheme and increments, the SDE
    step as a fraction of the chain's, and the run options of the optimizer's and the models' runs (the
    back end included: ``RunOptions(backend=...)`` runs both on the device)."""

    def __init__(self, solver, increments: str, dt_fraction: float, run: RunOptions):
        self.solver, self.increments, self.dt_fraction, self.run = solver, increments, dt_fraction, run
        self.backend = get_backend(run.backend)

    def phi(self, phi, params, vals, d):
        """phi on the chain's states (compiled for the back end too where it is not numpy)."""
        return _phi_on(phi, params, vals, d, None if self.backend.name == "numpy" else self.backend)


def _optimizer_settings(caller: str, problem, numerics, options, legacy) -> tuple:
    """``(method, resolve, mc)`` of a schedule or momentum study, checked; ``mc`` a :class:`_MCSettings`."""
    settings = study_settings(caller, numerics, options, legacy,
                              supported=("method", "scheme", "increments", "dt_fraction", "resolve", "executor",
                                         "progress", "backend", "max_path_steps"))
    if not isinstance(problem, Problem):
        raise TypeError(f"`problem` must be a smfsym.Problem; got {type(problem).__name__}.")
    if settings["method"] not in ("auto", "exact", "montecarlo"):
        raise ValueError(f"`method` must be 'auto', 'exact' or 'montecarlo'; got {settings['method']!r}.")
    run = RunOptions(executor=settings["executor"], progress=settings["progress"], backend=settings["backend"])
    mc = _MCSettings(check_scheme(settings["scheme"]), check_increments(settings["increments"]),
                     settings["dt_fraction"], run)
    mc.max_path_steps = settings["max_path_steps"]  # the study's work bound (its runs do not take it)
    return settings["method"], settings["resolve"], mc


def exact_schedule_sgd_mean(problem: Problem, schedule, phi, x0, eta, n_steps: int) -> float:
    r"""E phi(x_n) for SGD with eta_k = eta u(k eta), exactly (docs/theory.md §7).

    Examples
    --------
    >>> import sympy as sp, smfsym
    >>> from smfsym.optimizers import Schedule, TIME
    >>> from smfsym.studies.optimizer_weak_error import exact_schedule_sgd_mean
    >>> x = sp.Symbol("x")
    >>> p = smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x])
    >>> round(exact_schedule_sgd_mean(p, Schedule(1 / (1 + TIME)), x, [1.0], 0.5, 2), 12)  # (1 - 1/2)(1 - 1/3)
    0.333333333333
    """
    sch = _as_schedule(schedule)
    phi = _check_phi(phi, problem.params)
    if not isinstance(n_steps, (int, np.integer)) or not 0 <= n_steps <= MAX_EXACT_STEPS:
        raise ValueError(f"`n_steps` must be an integer in [0, {MAX_EXACT_STEPS}] in exact mode; got {n_steps!r}.")
    space = PolynomialSpace(problem.params, _degree(phi, problem.params))
    check_schedule_work(int(n_steps), len(space.exps), eta)
    e = sp.Symbol("eta_k")
    Psym = batch_sgd_operator(problem, space, e)
    f = sp.lambdify(e, sp.Matrix(Psym), "mpmath")
    eta_r = rational(eta)
    # a smooth u is evaluated by mpmath directly (a sympy substitution per step costs ~5 ms); pieces keep the
    # exact rational comparison of the substitution, so that a drop on the SGD grid falls on the right step
    fu = sp.lambdify(sch.t, sch.expr, "mpmath") if sch.is_smooth else None
    with mpmath.workdps(DIGITS):
        eta_mp = mpmath.mpf(eta_r.p) / eta_r.q
        c = mpmath.matrix([mpmath.mpf(str(sp.N(v, DIGITS))) for v in space.coords(phi, "test function")])
        for k in reversed(range(int(n_steps))):
            if fu is not None:
                uk = fu(mpmath.mpf(k) * eta_mp)
                ok = isinstance(uk, (mpmath.mpf, int)) and mpmath.isfinite(uk) and uk > 0
            else:
                uk = sp.N(sch.expr.subs(sch.t, k * eta_r), DIGITS)
                ok = bool(uk.is_real and uk.is_finite and uk > 0)
                uk = mpmath.mpf(str(uk)) if ok else uk
            if not ok:
                raise ValueError(f"`schedule` must be positive and finite at every step; u({float(k * eta_r):.6g}) "
                                 f"= {uk}.")
            c = mpmath.matrix(f(eta_mp * uk)) * c
        out = float(sum(a * b for a, b in zip(space.at(np.atleast_1d(x0)), c)))
    if not np.isfinite(out):
        raise ValueError(f"SGD with the `schedule` diverges at eta = {float(eta):g}: its exact E phi after "
                         f"{n_steps} steps is {out} (the steps eta u(k eta) are too large for the loss's curvature).")
    return out


#: Most work (steps x (monomials^2 + 50)) an exact product of scheduled SGD steps may take: each step builds
#: its one-step matrix in 40-digit arithmetic (about 10 microseconds per entry and 0.5 ms per step, so the
#: bound is some 20 seconds).
MAX_SCHEDULE_WORK = 2_000_000


def check_schedule_work(n_steps: int, n_monomials: int, eta) -> int:
    """The work of an exact scheduled SGD product, refused (ResourceLimitError) above MAX_SCHEDULE_WORK."""
    work = int(n_steps) * (int(n_monomials) ** 2 + 50)
    if work > MAX_SCHEDULE_WORK:
        raise ResourceLimitError(
            f"exact moments of SGD with a schedule at eta = {float(eta):g}: {n_steps:,} steps on {n_monomials} "
            f"monomials, work {work:,} over the bound {MAX_SCHEDULE_WORK:,} (each step builds its own matrix); "
            "raise the smallest of `etas`, lower `t_end` or phi's degree, or use method='montecarlo'.")
    return work


#: Most DOP853 steps the moment ODE of a scheduled model may take (12 evaluations of A(t) m each; about
#: 20,000 steps take seconds). The count is estimated before solving (:func:`moment_ode_work`) and enforced
#: while solving.
MAX_ODE_STEPS = 20_000
#: Points at which A(t) is sampled along the horizon to estimate the moment ODE's work.
WORK_SAMPLES = 1025


class MomentODE:
    r"""The moment ODE m' = A(t)^T m of a model on the augmented state (x, t), ready to solve.

    Built (symbolically) and sized before any solving: :attr:`work` is the estimated number of
    DOP853 steps over the horizon (see :func:`moment_ode_work`), refused above :data:`MAX_ODE_STEPS`
    with :class:`~smfsym.ResourceLimitError`; coefficients that are not finite on the horizon are
    refused with a ValueError naming the schedule.
    """

    def __init__(self, sde: SDE, phi, eta, t_end: float, params: Sequence[sp.Symbol] | None = None,
                 t0: float = 0.0, what: str = "the model"):
        self.params = tuple(sde.state[:-1] if params is None else params)
        self.tsym = sde.state[-1]
        self.phi = _check_phi(phi, self.params)
        self.space = PolynomialSpace(self.params, _degree(self.phi, self.params))
        check_space_size(len(self.space.exps), "the moment ODE")
        sub = sde.subs({sde.eta: rational(eta)})
        cols = [self.space.coords(sub.generator(m), "generator image of a monomial") for m in self.space.monomials]
        n = len(cols)
        A = sp.Matrix(n, n, lambda i, j: cols[j][i])
        if A.free_symbols - {self.tsym}:
            raise NotClosedError(f"the generator has symbols {sorted(map(str, A.free_symbols - {self.tsym}))} "
                                 f"besides {self.tsym}.")
        self.t0, self.t_end, self.what, self.eta = float(t0), float(t_end), what, float(eta)
        self.fA = sp.lambdify(self.tsym, A.T, "numpy")
        try:
            self.work, self.stiffness = moment_ode_work(self.fA, self.t0, self.t_end, what, self.eta)
        except _NotFinite:
            # exp(1000 t) exp(-2000 t) evaluates to inf * 0 = nan in floats, exp(-1000 t) does not: combine the
            # exponentials (only here: the combined form rounds differently, and finite coefficients keep theirs)
            A = A.applyfunc(lambda e: sp.powsimp(sp.expand(e, power_exp=False), combine="exp"))
            self.fA = sp.lambdify(self.tsym, A.T, "numpy")
            self.work, self.stiffness = moment_ode_work(self.fA, self.t0, self.t_end, what, self.eta)

    def solve(self, x0) -> float:
        """E phi(X_T) from x0 (the parameters; a trailing time coordinate is ignored)."""
        from scipy.integrate import solve_ivp

        m0 = np.array([float(v) for v in self.space.at(np.atleast_1d(np.asarray(x0, float))[: len(self.params)])])
        budget = 12 * 4 * MAX_ODE_STEPS  # the estimate may be off by a small factor; a hang may not

        calls = [0]

        def rhs(t, m):
            calls[0] += 1
            if calls[0] > budget:
                raise _OverBudget
            return np.asarray(self.fA(t), dtype=float) @ m

        try:
            sol = solve_ivp(rhs, (self.t0, self.t0 + self.t_end), m0, method="DOP853", rtol=1e-13, atol=1e-16)
        except _OverBudget:
            raise ResourceLimitError(f"the moment ODE of {self.what} at eta = {self.eta:g} took over {budget:,} "
                                     f"evaluations (estimated {self.work:,} steps): the `schedule` makes it stiff; "
                                     "lower the schedule's size or rate, or use method='montecarlo'.") from None
        if not sol.success or not np.all(np.isfinite(sol.y[:, -1])):
            raise ValueError(f"the moment ODE of {self.what} at eta = {self.eta:g} failed ({sol.message}, last "
                             f"t = {sol.t[-1]:.6g}): check the `schedule` (its size and rate) or use "
                             "method='montecarlo'.")
        c = np.array([float(v) for v in self.space.coords(self.phi, "test function")])
        return float(c @ sol.y[:, -1])


class _OverBudget(Exception):
    pass


class _NotFinite(ValueError):
    """Coefficients of a moment ODE that are not finite somewhere on the horizon (a ValueError naming the schedule)."""


def moment_ode_work(fA, t0: float, t_end: float, what: str = "the model", eta: float = float("nan")) -> tuple:
    r"""(estimated DOP853 steps, S) for m' = A(t)^T m on [t0, t0 + t_end], before solving; refused above
    :data:`MAX_ODE_STEPS`.

    S = \int |A(t)|_inf dt (sampled at :data:`WORK_SAMPLES` points, each cell charged its larger end)
    bounds the log-growth of the moments and the stiffness. DOP853 at rtol 1e-13 takes about 8 steps
    per unit of S while the solution varies and, once stiff components have decayed, about one step per
    5 units (its stability interval): the estimate 10 + 8 min(S, 20) + S / 5 (measured on
    m' = -a m: 10, 73, 127, 1675 steps for a = 1, 10, 100, 10^4 against 18, 92, 190, 2170 estimated).
    """
    ts = np.linspace(t0, t0 + t_end, WORK_SAMPLES)
    norms = np.empty(ts.size)
    with np.errstate(all="ignore"):
        for i, t in enumerate(ts):
            a = np.asarray(fA(t), dtype=float)
            if not np.all(np.isfinite(a)):
                raise _NotFinite(f"the moment ODE of {what} at eta = {eta:g} has coefficients that are not finite at "
                                 f"t = {t:.6g}: check the `schedule` (u and u' must be finite on [0, t_end]).")
            norms[i] = np.abs(a).sum(axis=1).max()
    S = float(np.sum(np.maximum(norms[1:], norms[:-1])) * (ts[1] - ts[0]))
    steps = int(math.ceil(10 + 8 * min(S, 20.0) + S / 5))
    if steps > MAX_ODE_STEPS:
        worst = float(ts[int(np.argmax(norms))])
        raise ResourceLimitError(
            f"the moment ODE of {what} at eta = {eta:g} would take about {steps:,} steps (over the bound "
            f"{MAX_ODE_STEPS:,}): its generator reaches |A(t)| = {norms.max():.3g} at t = {worst:.6g} (integral "
            f"{S:.3g} over the horizon), which the `schedule` sets (the order-2 drift has eta u^2 and eta u'); "
            "lower the schedule's size or rate, or use method='montecarlo'.")
    return steps, S


def exact_time_dependent_mean(sde: SDE, phi, x0, eta, t_end: float, params: Sequence[sp.Symbol] | None = None,
                              t0: float = 0.0) -> float:
    r"""E phi(X_T) for a model on the augmented state (x, t) by the moment ODE m' = A(t)^T m.

    ``params`` are the polynomial variables (default: every state variable but the last, t). The
    work is estimated before solving and bounded (:class:`MomentODE`).
    """
    return MomentODE(sde, phi, eta, t_end, params, t0).solve(x0)


def _momentum_step_map(problem: Problem, P, eta, beta, nesterov: bool, points: int = 1):
    """(x, p) -> (x', p') symbolically for ``points`` copies sharing the sample; p = v / sqrt(eta)."""
    h = sp.sqrt(rational(eta))
    beta = rational(beta)
    x = problem.params
    d = len(x)
    maps, states = {}, []
    for a in range(points):
        xa = x if points == 1 else tuple(sp.Symbol(f"{s.name}__{a}", real=True) for s in x)
        pa = P if points == 1 else tuple(sp.Symbol(f"{s.name}__{a}", real=True) for s in P)
        y = [xa[i] + (beta * h * pa[i] if nesterov else 0) for i in range(d)]
        g = problem.grad_f.xreplace(dict(zip(x, y))) if points > 1 or nesterov else problem.grad_f
        pn = [beta * pa[i] - h * g[i] for i in range(d)]
        for i in range(d):
            maps[xa[i]] = xa[i] + h * pn[i]
            maps[pa[i]] = pn[i]
        states += list(xa) + list(pa)
    return maps, tuple(states)


def exact_momentum_sgd_mean(problem: Problem, phi, state: Sequence[sp.Symbol], z0, eta, beta, n_steps: int, *,
                            nesterov: bool = False, step_map=None) -> float:
    r"""E phi(z_n) for momentum SGD on z = (x, p), p = v / sqrt(eta), exactly (40 digits).

    ``state`` names the variables of ``phi`` (the model's state, or an n-point stack with
    ``step_map`` from the n-point builder).
    """
    if problem.batch_size != 1:
        raise NotClosedError("exact momentum SGD moments are implemented for batch size 1.")
    if not (problem.is_polynomial and affine_in_params(problem)):
        raise NotClosedError("exact moments need a loss polynomial in the data with grad f affine in x.")
    state = tuple(state)
    phi = _check_phi(phi, state)
    if step_map is None:
        d = problem.dim
        step_map, _ = _momentum_step_map(problem, state[d:], eta, beta, nesterov)
    if not isinstance(n_steps, (int, np.integer)) or not 0 <= n_steps <= MAX_EXACT_STEPS:
        raise ValueError(f"`n_steps` must be an integer in [0, {MAX_EXACT_STEPS}] in exact mode; got {n_steps!r}.")
    space = PolynomialSpace(state, _degree(phi, state))
    check_space_size(len(space.exps), "momentum SGD's state space")
    cols = [space.coords(expectation(sp.expand(m.xreplace(step_map))), "momentum SGD image of a monomial")
            for m in space.monomials]
    n = len(cols)
    with mpmath.workdps(DIGITS):
        Pm = _mp([[cols[j][i] for j in range(n)] for i in range(n)], DIGITS)
        c = mpmath.matrix([mpmath.mpf(str(sp.N(v, DIGITS))) for v in space.coords(phi, "test function")])
        v = (Pm ** int(n_steps)) * c
        return float(sum(a * b for a, b in zip(space.at(np.asarray(z0, float).ravel()), v)))


# --------------------------------------------------------------------------- studies

def study_steps(t_end, etas, step: str = "eta") -> tuple:
    """Checked (t_end, etas largest first, SGD step counts) of a schedule or momentum study.

    ``etas`` as :func:`smfsym.studies.weak_error_study.check_etas` wants them (distinct, positive);
    every eta's SGD step (eta, or h = sqrt(eta) for momentum: ``step="h"``) must reach ``t_end`` in a
    whole number of steps, so that every row compares at the same time t_end.
    """
    t_end = check_positive(t_end, "t_end")
    etas = check_etas(etas)
    steps, bad = [], []
    for e in etas:
        size = math.sqrt(e) if step == "h" else e
        k = round(t_end / size)
        if k < 1 or abs(k * size - t_end) > 1e-9 * t_end:
            bad.append(f"{e:g} (t_end / {step} = {t_end / size:.6g})")
        steps.append(int(k))
    if bad:
        what = "h = sqrt(eta)" if step == "h" else "eta"
        raise ValueError(f"`etas`: SGD's step {what} must divide `t_end` = {t_end:g} (every row is compared at "
                         f"t_end); these do not: {', '.join(bad)}.")
    return t_end, etas, steps


def schedule_models(problem: Problem, schedule, models: Sequence[str]) -> dict:
    """The SDEs :func:`schedule_weak_error` compares with scheduled SGD, by model name (``smfsym derive`` prints
    them for a spec with a schedule)."""
    sch = _as_schedule(schedule)
    return {m: scheduled_model(problem, sch, *_parse(m)) for m in check_models(models, set(_MODELS))}


def momentum_models(problem: Problem, models: Sequence[str], momentum: Momentum) -> dict:
    """The SDEs :func:`momentum_weak_error` compares with momentum SGD, by model name (the noise correction
    goes to the order-2 models only)."""
    lam = rational(momentum.friction)
    return {m: momentum_model(problem, *_parse(m), nesterov=bool(momentum.nesterov), lam=lam,
                              noise_correction=momentum.noise_correction if _parse(m)[1] == 2 else None)
            for m in check_models(models, set(_MODELS))}


def _parse(name: str):
    table = {**MODEL_REGISTRY, "gf1": MODEL_REGISTRY["gf"]}
    if name not in table:
        raise ValueError(f"`models` entries must be among {sorted(table)}; got {name!r}.")
    return table[name]


class _OnParameters:
    """phi of the parameters x on an augmented state (x, v) or (x, t); picklable, so that it travels to
    executor workers (a sympy phi as its expression, :class:`~smfsym.studies.common.PhiFunction`)."""

    def __init__(self, phi, d: int):
        self.phi, self.d = phi, d

    def __call__(self, X):
        return self.phi(X[..., :self.d])


def _phi_on(phi, params, vals, d, backend=None):
    return _OnParameters(phi if callable(phi) else PhiFunction(as_expr(phi), params, vals, backend), d)


def _exact_ok(problem, phi, vals):
    if callable(phi) or vals:
        return False
    e = as_expr(phi)
    return (not (e.free_symbols - set(problem.params)) and e.is_polynomial(*problem.params)
            and problem.is_polynomial and affine_in_params(problem))


def exact_problem(problem, phi, vals, method: str = "auto"):
    """``(problem, phi)`` whose moments the exact route computes, or None where it does not apply: the
    arguments themselves, or, where ``vals`` binds the constants of the loss and nothing else (a spec's
    ``constants``), both with them substituted (:func:`~.common.bind_for_exact`; as
    :func:`~.weak_error_study.exact_route`)."""
    if method == "montecarlo":
        return None
    if _exact_ok(problem, phi, vals):
        return problem, phi
    bound = bind_for_exact(problem, phi, vals)
    return bound if bound is not None and _exact_ok(*bound, {}) else None


def _mc_model(sde, z0, t, eta, f, n_paths, seed, dt, vals, run: RunOptions, solver=None, increments="auto"):
    """E phi of a model by Monte Carlo: coupled dt / dt/2 runs, Richardson-extrapolated (docs/theory.md §9);
    ``solver`` None: :func:`default_scheme`; ``increments`` as :func:`increments_for` takes them."""
    slv = scheme_for(sde, solver)
    inc = increments_for(slv, increments) if sde.n_noise else "gaussian"
    r = coupled_expectation(sde, z0, t, eta=eta, dt=dt, n_paths=n_paths if sde.n_noise else 1, solver=slv,
                            phi=f, seed=seed, values=vals, increments=inc,
                            options=run if sde.n_noise else run.replace(executor=None))
    return r["value"], r["se"], abs(r["correction"]), _mc_method(slv.name, inc, dt, True)


def schedule_weak_error(problem: Problem, schedule, phi, x0, t_end: float, etas: Sequence[float], *,
                        models: Sequence[str] = ("smf1", "smf2"), seed=0, n_paths: int = 200_000,
                        values: Mapping | None = None, numerics: Numerics | None = None,
                        options: RunOptions | None = None, **legacy) -> WeakErrorStudy:
    r"""Weak error of the scheduled models against SGD with eta_k = eta u(k eta) (docs/theory.md §7).

    Exact when the moments close (see the module docstring), Monte Carlo otherwise. SGD runs
    k = round(t_end / eta) steps; models are compared at t = k eta.

    ``numerics`` (a :class:`~smfsym.Numerics`): ``method``, and for the Monte Carlo the models' ``scheme``
    and ``increments`` (their defaults: weak order 2 where it applies, with its discrete increments),
    ``dt_fraction`` and ``resolve``. ``options`` (a :class:`~smfsym.RunOptions`): ``progress``,
    ``executor`` and ``backend`` (SGD's and the models' runs on an array back end, :mod:`smfsym.backends`;
    exact moments run nothing there), and ``max_path_steps``: the bound on the Monte Carlo work, paths x steps
    over all etas (SGD once, each model with noise at dt and dt/2), as in :func:`smfsym.multipoint_rates`:
    estimated and refused before anything runs.

    Examples
    --------
    >>> import sympy as sp, smfsym
    >>> from smfsym.optimizers import cosine
    >>> from smfsym.studies.optimizer_weak_error import schedule_weak_error
    >>> x = sp.Symbol("x")
    >>> p = smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x])
    >>> st = schedule_weak_error(p, cosine(2, 0.2), x**2, [1.0], 1.0, [0.1, 0.05, 0.025])
    >>> [round(st.orders[m].slope) for m in ("smf1", "smf2")]
    [1, 2]
    """
    method, resolve, mc = _optimizer_settings("schedule_weak_error", problem, numerics, options, legacy)
    root = study_seed(seed)  # checked before any work; spawned from here, never from the caller's object
    sch = _as_schedule(schedule)
    t_end, etas, steps = study_steps(t_end, etas)
    vals = numeric_values(values, problem_symbols(problem))
    x0 = _check_x0(x0, problem.dim)
    check_phi_tails(problem, phi)  # names phi (the exact moments would blame the loss)
    sdes = schedule_models(problem, sch, models)
    exact = exact_problem(problem, phi, vals, method)
    use_exact = exact is not None
    bound, exact_phi = exact if use_exact else (None, None)
    if method == "exact" and not use_exact:
        raise NotClosedError("`method='exact'` needs grad f affine in x, a loss polynomial in the data, a "
                             "polynomial phi and `values` that bind only constants of the loss; use "
                             "method='montecarlo'.")
    # exact mode: every moment ODE is built and sized, and every SGD product's work bounded, before any runs
    exact_sdes = sdes if bound is problem or not use_exact else schedule_models(bound, sch, models)
    odes = _schedule_odes(bound, exact_sdes, exact_phi, etas, steps, t_end) if use_exact else {}
    if not use_exact:
        check_study_work(mc.max_path_steps, n_paths, steps, [m for m, sde in sdes.items() if sde.n_noise],
                         mc.dt_fraction)
    rows, ts = [], []
    per_eta = root.spawn(len(etas))
    d = problem.dim
    for i, (eta, k) in enumerate(zip(etas, steps)):
        t = k * eta
        ts.append(t)
        if use_exact:
            sgd_val = exact_schedule_sgd_mean(bound, sch, exact_phi, x0, eta, k)
            for m, sde in sdes.items():
                val = odes[m, eta].solve(x0)
                rows.append(dict(eta=eta, t=t, model=m, sgd=sgd_val, sgd_se=0.0, value=val, value_se=0.0,
                                 error=val - sgd_val, se=0.0, method="exact", solver_error=0.0, lost=0.0, lost_sgd=0.0))
            continue
        f = mc.phi(phi, problem.params, vals, d)
        s_sgd, s_sde = per_eta[i].spawn(2)
        r = simulate_sgd_schedule(problem, sch, x0, k, eta, n_paths=n_paths, seed=s_sgd, values=vals,
                                  save_at=SaveAt(functions={"phi": f}, store=False),
                                  options=mc.run)
        sgd_val, sgd_se = float(r.mean("phi")[-1]), float(r.sem("phi")[-1])
        for m, sde in sdes.items():
            val, vse, serr, how = _mc_model(sde, with_time(x0), t, eta, f, n_paths, s_sde, eta * mc.dt_fraction,
                                            vals, mc.run, mc.solver, mc.increments)
            rows.append(dict(eta=eta, t=t, model=m, sgd=sgd_val, sgd_se=sgd_se, value=val, value_se=vse,
                             error=val - sgd_val, se=float(np.hypot(vse, sgd_se)),
                             method=how, solver_error=serr, lost=0.0, lost_sgd=0.0))  # blow-ups raise: nothing is masked
    orders = orders_from_rows(rows, list(models), use_exact, resolve)
    return WeakErrorStudy(problem, phi, etas, list(models), rows, orders, ts,
                          meta=dict(_meta(use_exact, n_paths, seed_record(root), x0, t_end, mc, resolve), schedule=str(sch.expr)))


_MODELS = (*MODEL_REGISTRY, "gf1")


def _check_x0(x0, d: int) -> np.ndarray:
    x0 = np.atleast_1d(np.asarray(x0, dtype=float))
    if x0.shape != (d,) or not np.all(np.isfinite(x0)):
        raise ValueError(f"`x0` must be finite with shape ({d},); got {x0.shape}.")
    return x0


def _meta(exact: bool, n_paths, seed, x0, t_end, mc: _MCSettings, resolve) -> dict:
    """A study's meta: the method, x0 and t_end (the table's head), and the Monte Carlo settings only when used
    (the back end named where it is not numpy; exact moments run no Monte Carlo, on any back end), ``resolve``
    among them (the order fits' rule, with which ``load_study`` refits them)."""
    out = dict(method="exact" if exact else "montecarlo", x0=[float(v) for v in x0], t_end=float(t_end))
    if not exact:
        out.update(n_paths=n_paths, seed=seed, resolve=float(resolve))
        out.update(backend_meta(mc.backend))
    return out


def _schedule_odes(problem, sdes: dict, phi, etas, steps, t_end) -> dict:
    """The moment ODE of every (model, eta), sized (refused above the bounds), and SGD's work checked."""
    space = PolynomialSpace(problem.params, _degree(_check_phi(phi, problem.params), problem.params))
    for eta, k in zip(etas, steps):
        if k > MAX_EXACT_STEPS:
            raise ValueError(f"`etas`: {k:,} SGD steps at eta = {eta:g} exceed {MAX_EXACT_STEPS:,} in exact mode; "
                             "raise the smallest of `etas` or use method='montecarlo'.")
        check_schedule_work(k, len(space.exps), eta)
    return {(m, eta): MomentODE(sde, phi, eta, k * eta, params=problem.params, what=f"model {m}")
            for eta, k in zip(etas, steps) for m, sde in sdes.items()}


def _momentum_study_rule(momentum, legacy: dict) -> Momentum:
    """The study's momentum rule (a friction: beta changes with eta), the old keywords popped from ``legacy``."""
    rule = momentum_rule("momentum_weak_error", momentum, legacy, ("lam", "nesterov", "noise_correction"),
                         number="friction")
    if rule.friction is None:
        raise ValueError(f"`momentum` must give the friction (beta = 1 - friction sqrt(eta) changes with eta); "
                         f"got beta={rule.beta!r}.")
    if not rule.scaled:
        raise ValueError("`momentum.scaled`: the study compares in the models' scaled state (x, v / sqrt(eta)); "
                         "got False.")
    return rule


def _momentum_start(x0, p0, problem) -> tuple:
    """``(x0, p0)`` of a momentum study from ``x0`` (d,) or (2d,) = (x, P), or the old keyword ``p0``."""
    if not isinstance(problem, Problem):
        raise TypeError(f"`problem` must be a smfsym.Problem; got {type(problem).__name__}.")
    d = problem.dim
    if p0 is not None:
        warnings.warn("momentum_weak_error(p0=...): the initial scaled velocity goes in `x0` = (x, P), the "
                      "models' state; the keyword goes in the next release.", DeprecationWarning,
                      stacklevel=user_stacklevel())
        p0 = np.atleast_1d(np.asarray(p0, dtype=float))
        if p0.shape != (d,) or not np.all(np.isfinite(p0)):
            raise ValueError(f"`p0` must be finite with shape ({d},); got {p0.shape}.")
    z = np.atleast_1d(np.asarray(x0, dtype=float))
    if z.shape == (2 * d,) and p0 is None:
        if not np.all(np.isfinite(z)):
            raise ValueError(f"`x0` must be finite; got {z.tolist()}.")
        return z[:d], z[d:]
    return _check_x0(x0, d), (np.zeros(d) if p0 is None else p0)


def momentum_weak_error(problem: Problem, phi, x0, t_end: float, etas: Sequence[float],
                        momentum: Momentum | float | None = None, *, models: Sequence[str] = ("smf1", "smf2"),
                        seed=0, n_paths: int = 200_000, values: Mapping | None = None,
                        numerics: Numerics | None = None, options: RunOptions | None = None,
                        **legacy) -> WeakErrorStudy:
    r"""Weak error of the momentum models against momentum SGD with beta = 1 - lam sqrt(eta) (docs/theory.md §7).

    The chain's step is h = sqrt(eta): SGD runs k = round(t_end / h) steps, models are compared at
    t = k h, and the fitted orders are slopes against h (the weak orders of the models: 1 and 2).
    The rows carry both ``eta`` and ``h``; ``study.etas`` holds the learning rates.

    ``momentum`` is a :class:`smfsym.optimizers.Momentum` with the ``friction`` lambda (held fixed, so beta
    changes with eta), ``nesterov`` and ``noise_correction`` (passed to :func:`momentum_model` for the order-2
    models); a number is the friction. ``x0`` is the start x (d,), with the *scaled* velocity P = v /
    sqrt(eta) = 0, or the models' whole state (x, P) (2d,): P held fixed across the etas so that every
    eta approximates the same continuous problem (SGD starts from v_0 = sqrt(eta) P). The keywords
    ``lam``, ``nesterov``, ``noise_correction`` and ``p0`` still work for one release (a
    ``DeprecationWarning``, the same numbers). ``numerics`` and ``options`` (``max_path_steps`` counted in
    SGD steps of h) as for :func:`schedule_weak_error`
    (``RunOptions(backend=...)`` runs momentum SGD and the models on an array back end).

    Examples
    --------
    >>> import sympy as sp, smfsym
    >>> from smfsym.studies.optimizer_weak_error import momentum_weak_error
    >>> x = sp.Symbol("x")
    >>> p = smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x])
    >>> rule = smfsym.optimizers.Momentum(friction=1.0)
    >>> st = momentum_weak_error(p, x**2, [1.0], 1.0, [1/100, 1/400, 1/1600], rule)
    >>> [round(st.orders[m].slope) for m in ("smf1", "smf2")]
    [1, 2]
    """
    legacy = dict(legacy)
    rule = _momentum_study_rule(momentum, legacy)
    lam, nesterov, noise_correction = rule.friction, bool(rule.nesterov), rule.noise_correction
    x0, p0 = _momentum_start(x0, legacy.pop("p0", None), problem)
    method, resolve, mc = _optimizer_settings("momentum_weak_error", problem, numerics, options, legacy)
    root = study_seed(seed)  # checked before any work; spawned from here, never from the caller's object
    t_end, etas, steps = study_steps(t_end, etas, "h")
    for e in etas:
        beta_for(lam, e)  # beta in [0, 1) at every eta, before anything runs
    models = check_models(models, set(_MODELS))
    check_phi_tails(problem, phi)  # names phi (the exact moments would blame the loss)
    vals = numeric_values(values, problem_symbols(problem))
    lam_r = rational(lam)
    sdes = momentum_models(problem, models, Momentum(friction=lam, nesterov=nesterov,
                                                     noise_correction=noise_correction))
    state = next(iter(sdes.values())).state
    exact = exact_problem(problem, phi, vals, method) if problem.batch_size == 1 else None
    use_exact = exact is not None
    bound, exact_phi = exact if use_exact else (None, None)
    if method == "exact" and not use_exact:
        raise NotClosedError("`method='exact'` needs grad f affine in x, a loss polynomial in the data, batch "
                             "size 1 (exact momentum moments with mini-batches are not built), a polynomial phi "
                             "and `values` that bind only constants of the loss; use method='montecarlo'.")
    exact_sdes = sdes if bound is problem or not use_exact else momentum_models(
        bound, models, Momentum(friction=lam, nesterov=nesterov, noise_correction=noise_correction))
    if use_exact and steps[-1] > MAX_EXACT_STEPS:
        raise ValueError(f"`etas`: {steps[-1]:,} SGD steps at eta = {etas[-1]:g} exceed {MAX_EXACT_STEPS:,} in exact "
                         "mode; raise the smallest of `etas` or use method='montecarlo'.")
    if not use_exact:
        check_study_work(mc.max_path_steps, n_paths, steps, [m for m, sde in sdes.items() if sde.n_noise],
                         mc.dt_fraction, what="momentum SGD")
    rows, ts = [], []
    per_eta = root.spawn(len(etas))
    for i, (eta, k) in enumerate(zip(etas, steps)):
        h = float(np.sqrt(eta))
        beta = beta_for(lam, eta)
        t = k * h
        ts.append(t)
        z0 = np.concatenate([x0, p0])
        if use_exact:
            h_r = sp.sqrt(rational(eta))
            sgd_val = exact_momentum_sgd_mean(bound, exact_phi, state, z0, eta, 1 - lam_r * h_r, k, nesterov=nesterov)
            for m, sde in exact_sdes.items():
                space = PolynomialSpace(sde.state, _degree(exact_phi, state))
                val = exact_sde_mean(sde, exact_phi, z0, eta, rational(k) * h_r if h_r.is_Rational else t, space)
                rows.append(dict(eta=eta, h=h, t=t, model=m, sgd=sgd_val, sgd_se=0.0, value=val, value_se=0.0,
                                 error=val - sgd_val, se=0.0, method="exact", solver_error=0.0, lost=0.0, lost_sgd=0.0))
            continue
        f = mc.phi(phi, problem.params, vals, problem.dim)
        s_sgd, s_sde = per_eta[i].spawn(2)
        r = simulate_momentum_sgd(problem, x0, k, eta, Momentum(beta=beta, nesterov=nesterov), v0=h * p0,
                                  n_paths=n_paths,
                                  seed=s_sgd, values=vals, save_at=SaveAt(functions={"phi": f}, store=False),
                                  options=mc.run)
        sgd_val, sgd_se = float(r.mean("phi")[-1]), float(r.sem("phi")[-1])
        for m, sde in sdes.items():
            val, vse, serr, how = _mc_model(sde, z0, t, eta, f, n_paths, s_sde, h * mc.dt_fraction, vals, mc.run,
                                            mc.solver, mc.increments)
            rows.append(dict(eta=eta, h=h, t=t, model=m, sgd=sgd_val, sgd_se=sgd_se, value=val, value_se=vse,
                             error=val - sgd_val, se=float(np.hypot(vse, sgd_se)),
                             method=how, solver_error=serr, lost=0.0, lost_sgd=0.0))  # blow-ups raise: nothing is masked
    orders = orders_from_rows(rows, list(models), use_exact, resolve, xkey="h")
    return WeakErrorStudy(problem, phi, etas, list(models), rows, orders, ts,
                          meta=dict(_meta(use_exact, n_paths, seed_record(root), x0, t_end, mc, resolve), friction=float(lam),
                                    nesterov=nesterov, orders_in="h = sqrt(eta)"))
