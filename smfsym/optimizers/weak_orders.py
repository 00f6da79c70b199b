r"""Weak-error studies for schedules and momentum, exact where the moments close (docs/theory.md §4, §7).

Exact mode (loss quadratic in the parameters, polynomial in the data, polynomial test function):

- SGD with a schedule: E phi(x_n) = (P_{eta_0} P_{eta_1} ... P_{eta_{n-1}} phi)(x_0), a product of the
  one-step operators of :func:`~smfsym.optimizers.batch_sgd_operator` at eta_k = eta u(k eta),
  in 40-digit arithmetic;
- the time-inhomogeneous model: the moment vector m(t) = E[monomials(X_t)] solves the linear ODE
  m' = A(t)^T m with A(t) the generator's matrix on the polynomials in x (t is a parameter of the
  coefficients), integrated with DOP853 at rtol 1e-13 (an error far below the weak errors measured);
- momentum SGD: the one-step operator on polynomials in (x, p), and the momentum model's generator
  (time-homogeneous on (x, p)): a matrix power and a matrix exponential as in :mod:`smfsym.exact`.

Monte Carlo otherwise, with the SGD and model runs on independent seeds and the solver's own error
estimated from runs at dt and dt/2 (as :func:`smfsym.weak_error`). Fitted orders use
:func:`smfsym.studies.fit_order`; results are :class:`smfsym.WeakErrorStudy` objects.
"""
from __future__ import annotations

import warnings
from typing import Mapping, Sequence

import mpmath
import numpy as np
import sympy as sp

from ..compile import CompiledExprs
from ..exact import NotClosedError, PolynomialSpace, affine_in_params, exact_sde_mean, rational
from ..expectation import expectation
from ..persist import Order
from ..problem import Problem
from ..sde import SDE
from ..solvers import get_solver
from ..studies import OrderWarning, WeakErrorStudy, default_scheme, fit_order
from ..studies.common import increments_for
from ..studies.richardson import coupled_expectation
from ..studies.weak_error_study import _mc_method
from .minibatch_exact import MAX_EXACT_STEPS, _mp, batch_sgd_operator, check_space_size
from .momentum import beta_for, momentum_model, simulate_momentum_sgd
from .schedules import _as_schedule, scheduled_model, simulate_sgd_schedule, with_time
from .._checks import as_expr

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


def exact_schedule_sgd_mean(problem: Problem, schedule, phi, x0, eta, n_steps: int) -> float:
    r"""E phi(x_n) for SGD with eta_k = eta u(k eta), exactly (docs/theory.md §7).

    Examples
    --------
    >>> import sympy as sp, smfsym
    >>> from smfsym.optimizers import exact_schedule_sgd_mean, Schedule, TIME
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
    e = sp.Symbol("eta_k")
    Psym = batch_sgd_operator(problem, space, e)
    f = sp.lambdify(e, sp.Matrix(Psym), "mpmath")
    eta_r = rational(eta)
    with mpmath.workdps(DIGITS):
        c = mpmath.matrix([mpmath.mpf(str(sp.N(v, DIGITS))) for v in space.coords(phi, "test function")])
        for k in reversed(range(int(n_steps))):
            uk = sp.N(sch.expr.subs(sch.t, k * eta_r), DIGITS)
            if not (uk.is_real and uk > 0):
                raise ValueError(f"`schedule` must be positive at every step; u({float(k * eta_r):.6g}) = {uk}.")
            c = mpmath.matrix(f(mpmath.mpf(str(eta_r.p)) / eta_r.q * mpmath.mpf(str(uk)))) * c
        return float(sum(a * b for a, b in zip(space.at(np.atleast_1d(x0)), c)))


def exact_time_dependent_mean(sde: SDE, phi, x0, eta, t_end: float, params: Sequence[sp.Symbol] | None = None,
                              t0: float = 0.0) -> float:
    r"""E phi(X_T) for a model on the augmented state (x, t) by the moment ODE m' = A(t)^T m.

    ``params`` are the polynomial variables (default: every state variable but the last, t).
    """
    from scipy.integrate import solve_ivp

    params = tuple(sde.state[:-1] if params is None else params)
    tsym = sde.state[-1]
    phi = _check_phi(phi, params)
    space = PolynomialSpace(params, _degree(phi, params))
    check_space_size(len(space.exps), "the moment ODE")
    sub = sde.subs({sde.eta: rational(eta)})
    cols = [space.coords(sub.generator(m), "generator image of a monomial") for m in space.monomials]
    n = len(cols)
    A = sp.Matrix(n, n, lambda i, j: cols[j][i])
    if A.free_symbols - {tsym}:
        raise NotClosedError(f"the generator has symbols {sorted(map(str, A.free_symbols - {tsym}))} besides {tsym}.")
    fA = sp.lambdify(tsym, A.T, "numpy")
    m0 = np.array([float(v) for v in space.at(np.atleast_1d(np.asarray(x0, float))[: len(params)])])
    sol = solve_ivp(lambda t, m: np.asarray(fA(t), dtype=float) @ m, (t0, t0 + float(t_end)), m0, method="DOP853",
                    rtol=1e-13, atol=1e-16)
    if not sol.success:
        raise RuntimeError(f"the moment ODE failed: {sol.message}")
    c = np.array([float(v) for v in space.coords(phi, "test function")])
    return float(c @ sol.y[:, -1])


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

def _parse(name: str):
    table = {"gf": ("gf", 1), "gf1": ("gf", 1), "gf2": ("gf", 2), "sme1": ("sme", 1), "sme2": ("sme", 2),
             "smf1": ("smf", 1), "smf2": ("smf", 2)}
    if name not in table:
        raise ValueError(f"`models` entries must be among {sorted(table)}; got {name!r}.")
    return table[name]


def _phi_on(phi, params, vals, d):
    if callable(phi):
        return lambda X: phi(X[..., :d])
    ce = CompiledExprs([as_expr(phi)], params, vals)
    return lambda X: ce.evaluate([X[..., i] for i in range(d)])[..., 0]


def _orders(rows, models, exact, resolve, xkey="eta"):
    out = {}
    for m in models:
        rs = [r for r in rows if r["model"] == m]
        if exact:
            keep = [r for r in rs if abs(r["error"]) > 1e-12 * max(1.0, abs(r["sgd"]))]
            s, lo, hi = fit_order([r[xkey] for r in keep], [r["error"] for r in keep])
        else:
            keep = [r for r in rs if abs(r["error"]) > resolve * r["se"]]
            s, lo, hi = fit_order([r[xkey] for r in keep], [r["error"] for r in keep], [r["se"] for r in keep])
            if len(keep) < 2:
                warnings.warn(f"the order of {m} cannot be resolved: only {len(keep)} of {len(rs)} errors exceed "
                              f"{resolve} standard errors; raise `n_paths` or use larger etas.", OrderWarning,
                              stacklevel=3)
        out[m] = Order(s, lo, hi, len(keep))
    return out


def _exact_ok(problem, phi, vals):
    if callable(phi) or vals:
        return False
    e = as_expr(phi)
    return (not (e.free_symbols - set(problem.params)) and e.is_polynomial(*problem.params)
            and problem.is_polynomial and affine_in_params(problem))


def _mc_model(sde, z0, t, eta, f, n_paths, seed, dt, vals, progress):
    """E phi of a model by Monte Carlo: coupled dt / dt/2 runs, Richardson-extrapolated (docs/theory.md §9)."""
    slv = get_solver(default_scheme(sde))
    inc = increments_for(slv, "auto") if sde.n_noise else "gaussian"
    r = coupled_expectation(sde, z0, t, eta=eta, dt=dt, n_paths=n_paths if sde.n_noise else 1, solver=slv,
                            phi=f, seed=seed, values=vals, increments=inc, progress=progress)
    return r["value"], r["se"], abs(r["correction"]), _mc_method(slv.name, inc, dt, True)


def schedule_weak_error(problem: Problem, schedule, phi, x0, t_end: float, etas: Sequence[float], *,
                        models: Sequence[str] = ("smf1", "smf2"), method: str = "auto", seed=0,
                        n_paths: int = 200_000, dt_fraction: float = 0.125, values: Mapping | None = None,
                        progress: bool | None = None, resolve: float = 3.0) -> WeakErrorStudy:
    r"""Weak error of the scheduled models against SGD with eta_k = eta u(k eta) (docs/theory.md §7).

    Exact when the moments close (see the module docstring), Monte Carlo otherwise. SGD runs
    k = round(t_end / eta) steps; models are compared at t = k eta.

    Examples
    --------
    >>> import sympy as sp, smfsym
    >>> from smfsym.optimizers import schedule_weak_error, cosine
    >>> x = sp.Symbol("x")
    >>> p = smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x])
    >>> st = schedule_weak_error(p, cosine(2, 0.2), x**2, [1.0], 1.0, [0.1, 0.05, 0.025])
    >>> [round(st.orders[m].slope) for m in ("smf1", "smf2")]
    [1, 2]
    """
    from .._checks import numeric_values
    from ..sgd import problem_symbols

    if not isinstance(problem, Problem):
        raise TypeError(f"`problem` must be a smfsym.Problem; got {type(problem).__name__}.")
    if method not in ("auto", "exact", "montecarlo"):
        raise ValueError(f"`method` must be 'auto', 'exact' or 'montecarlo'; got {method!r}.")
    sch = _as_schedule(schedule)
    etas = sorted((float(e) for e in etas), reverse=True)
    if len(etas) < 2 or any(not np.isfinite(e) or e <= 0 for e in etas):
        raise ValueError(f"`etas` must hold at least two positive learning rates; got {etas}.")
    vals = numeric_values(values, problem_symbols(problem))
    x0 = np.atleast_1d(np.asarray(x0, dtype=float))
    if x0.shape != (problem.dim,):
        raise ValueError(f"`x0` must have shape ({problem.dim},); got {x0.shape}.")
    sdes = {m: scheduled_model(problem, sch, *_parse(m)) for m in models}
    use_exact = method != "montecarlo" and _exact_ok(problem, phi, vals)
    if method == "exact" and not use_exact:
        raise NotClosedError("`method='exact'` needs grad f affine in x, a loss polynomial in the data, a "
                             "polynomial phi and no numeric `values`; use method='montecarlo'.")
    rows, ts = [], []
    d = problem.dim
    for i, eta in enumerate(etas):
        k = max(1, int(round(t_end / eta)))
        t = k * eta
        ts.append(t)
        if use_exact:
            sgd_val = exact_schedule_sgd_mean(problem, sch, phi, x0, eta, k)
            for m, sde in sdes.items():
                val = exact_time_dependent_mean(sde, phi, with_time(x0), eta, t)
                rows.append(dict(eta=eta, t=t, model=m, sgd=sgd_val, sgd_se=0.0, value=val, value_se=0.0,
                                 error=val - sgd_val, se=0.0, method="exact", solver_error=0.0, lost=0.0, lost_sgd=0.0))
            continue
        f = _phi_on(phi, problem.params, vals, d)
        s_sgd, s_sde = np.random.SeedSequence(seed).spawn(len(etas))[i].spawn(2)
        r = simulate_sgd_schedule(problem, sch, x0, k, eta, n_paths=n_paths, seed=s_sgd, functions={"phi": f},
                                  store=False, values=vals, progress=progress)
        sgd_val, sgd_se = float(r.mean("phi")[-1]), float(r.sem("phi")[-1])
        for m, sde in sdes.items():
            val, vse, serr, how = _mc_model(sde, with_time(x0), t, eta, f, n_paths, s_sde, eta * dt_fraction,
                                               vals, progress)
            rows.append(dict(eta=eta, t=t, model=m, sgd=sgd_val, sgd_se=sgd_se, value=val, value_se=vse,
                             error=val - sgd_val, se=float(np.hypot(vse, sgd_se)),
                             method=how, solver_error=serr, lost=0.0, lost_sgd=0.0))  # blow-ups raise: nothing is masked
    orders = _orders(rows, list(models), use_exact, resolve)
    return WeakErrorStudy(problem, phi, etas, list(models), rows, orders, ts,
                          meta=dict(method="exact" if use_exact else "montecarlo", n_paths=n_paths, seed=seed,
                                    schedule=str(sch.expr)))


def momentum_weak_error(problem: Problem, phi, x0, t_end: float, etas: Sequence[float], lam: float, *,
                        models: Sequence[str] = ("smf1", "smf2"), nesterov: bool = False, p0=None,
                        noise_correction: bool | None = None,
                        method: str = "auto", seed=0, n_paths: int = 200_000, dt_fraction: float = 0.125,
                        values: Mapping | None = None, progress: bool | None = None,
                        resolve: float = 3.0) -> WeakErrorStudy:
    r"""Weak error of the momentum models against momentum SGD with beta = 1 - lam sqrt(eta) (docs/theory.md §7).

    The chain's step is h = sqrt(eta): SGD runs k = round(t_end / h) steps, models are compared at
    t = k h, and the fitted orders are slopes against h (the weak orders of the models: 1 and 2).
    The rows carry both ``eta`` and ``h``; ``study.etas`` holds the learning rates. ``p0`` is the
    initial *scaled* velocity P = v / sqrt(eta) (default 0), held fixed across the etas so that every
    eta approximates the same continuous problem (SGD starts from v_0 = sqrt(eta) p0).
    ``noise_correction`` is passed to :func:`momentum_model` for the order-2 models.

    Examples
    --------
    >>> import sympy as sp, smfsym
    >>> from smfsym.optimizers import momentum_weak_error
    >>> x = sp.Symbol("x")
    >>> p = smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x])
    >>> st = momentum_weak_error(p, x**2, [1.0], 1.0, [1/100, 1/400, 1/1600], lam=1.0)
    >>> [round(st.orders[m].slope) for m in ("smf1", "smf2")]
    [1, 2]
    """
    from .._checks import numeric_values
    from ..sgd import problem_symbols

    if not isinstance(problem, Problem):
        raise TypeError(f"`problem` must be a smfsym.Problem; got {type(problem).__name__}.")
    if method not in ("auto", "exact", "montecarlo"):
        raise ValueError(f"`method` must be 'auto', 'exact' or 'montecarlo'; got {method!r}.")
    if not (np.isfinite(lam) and lam > 0):
        raise ValueError(f"`lam` (the friction) must be positive; got {lam!r}.")
    etas = sorted((float(e) for e in etas), reverse=True)
    if len(etas) < 2 or any(not np.isfinite(e) or e <= 0 for e in etas):
        raise ValueError(f"`etas` must hold at least two positive learning rates; got {etas}.")
    vals = numeric_values(values, problem_symbols(problem))
    d = problem.dim
    x0 = np.atleast_1d(np.asarray(x0, dtype=float))
    if x0.shape != (d,):
        raise ValueError(f"`x0` must have shape ({d},); got {x0.shape}.")
    p0 = np.zeros(d) if p0 is None else np.atleast_1d(np.asarray(p0, dtype=float))
    if p0.shape != (d,) or not np.all(np.isfinite(p0)):
        raise ValueError(f"`p0` must be finite with shape ({d},); got {p0.shape}.")
    lam_r = rational(lam)
    sdes = {m: momentum_model(problem, *_parse(m), nesterov=nesterov, lam=lam_r,
                              noise_correction=noise_correction if _parse(m)[1] == 2 else None) for m in models}
    state = next(iter(sdes.values())).state
    use_exact = method != "montecarlo" and _exact_ok(problem, phi, vals) and problem.batch_size == 1
    if method == "exact" and not use_exact:
        raise NotClosedError("`method='exact'` needs grad f affine in x, a loss polynomial in the data, batch "
                             "size 1, a polynomial phi and no numeric `values`; use method='montecarlo'.")
    rows, ts = [], []
    for i, eta in enumerate(etas):
        h = float(np.sqrt(eta))
        beta = beta_for(lam, eta)
        k = max(1, int(round(t_end / h)))
        t = k * h
        ts.append(t)
        z0 = np.concatenate([x0, p0])
        if use_exact:
            h_r = sp.sqrt(rational(eta))
            sgd_val = exact_momentum_sgd_mean(problem, phi, state, z0, eta, 1 - lam_r * h_r, k, nesterov=nesterov)
            for m, sde in sdes.items():
                space = PolynomialSpace(sde.state, _degree(phi, state))
                val = exact_sde_mean(sde, phi, z0, eta, rational(k) * h_r if h_r.is_Rational else t, space)
                rows.append(dict(eta=eta, h=h, t=t, model=m, sgd=sgd_val, sgd_se=0.0, value=val, value_se=0.0,
                                 error=val - sgd_val, se=0.0, method="exact", solver_error=0.0, lost=0.0, lost_sgd=0.0))
            continue
        f = _phi_on(phi, problem.params, vals, d)
        s_sgd, s_sde = np.random.SeedSequence(seed).spawn(len(etas))[i].spawn(2)
        r = simulate_momentum_sgd(problem, x0, k, eta, beta, v0=h * p0, nesterov=nesterov, n_paths=n_paths, seed=s_sgd,
                                  functions={"phi": f}, store=False, values=vals, progress=progress)
        sgd_val, sgd_se = float(r.mean("phi")[-1]), float(r.sem("phi")[-1])
        for m, sde in sdes.items():
            val, vse, serr, how = _mc_model(sde, z0, t, eta, f, n_paths, s_sde, h * dt_fraction, vals, progress)
            rows.append(dict(eta=eta, h=h, t=t, model=m, sgd=sgd_val, sgd_se=sgd_se, value=val, value_se=vse,
                             error=val - sgd_val, se=float(np.hypot(vse, sgd_se)),
                             method=how, solver_error=serr, lost=0.0, lost_sgd=0.0))  # blow-ups raise: nothing is masked
    orders = _orders(rows, list(models), use_exact, resolve, xkey="h")
    return WeakErrorStudy(problem, phi, etas, list(models), rows, orders, ts,
                          meta=dict(method="exact" if use_exact else "montecarlo", n_paths=n_paths, seed=seed,
                                    friction=float(lam), nesterov=nesterov, orders_in="h = sqrt(eta)"))
