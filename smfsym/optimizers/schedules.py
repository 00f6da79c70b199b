r"""Learning-rate schedules: SGD with eta_k = eta u(k eta) and its SME / SMF (docs/theory.md §7).

The schedule u is a sympy expression in a time symbol t. The continuous models are
time-inhomogeneous; they are returned as autonomous :class:`~smfsym.SDE` objects on the
augmented state (x, t) with dt/dt = 1 and no noise on t, so :func:`smfsym.simulate`, both
solvers and the exact generator machinery work unchanged (the weak order-2 solver's
derivatives along the drift then contain the t-derivatives of the coefficients).

Order-2 drift (derived in docs/theory.md §7 from the one-step expansion):

    b(x, t) = -(u(t) - eta u'(t) / 2) grad F(x) - eta/2 u(t)^2 Hess F(x) grad F(x),

noise sqrt(eta) u(t) Sigma(x)^{1/2} dW (SME) or -sqrt(eta) u(t) sum_k grad f_k(x) dbeta_k (SMF).
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import sympy as sp

from ..symbolic.noise_expansion import NoiseTemplate
from ..montecarlo.options import RunOptions, run_settings
from ..montecarlo.result import SimulationResult
from ..symbolic.models import default_eta, smf as _smf
from ..symbolic.problem import Problem
from ..symbolic.sde import SDE, MatrixSqrt
from .._checks import as_expr, require
from ..simulation.exact import rational
from ..symbolic.models import sme as _sme
from ..symbolic.latex import sde_lines, wrap
from ..montecarlo.checks import check_int, check_steps
from ..simulation.sde import check_save_steps
from ..simulation import sgd as _sgd
from ..simulation.sde import prepare_x0
from .._checks import numeric_values

__all__ = ["Schedule", "constant", "step_decay", "cosine", "exponential_decay", "warmup", "scheduled_model",
           "scheduled_latex",
           "simulate_sgd_schedule", "with_time", "TIME"]

#: The default time symbol of schedules.
TIME = sp.Symbol("t", nonnegative=True)


def _check_schedule_expr(expr) -> None:
    """Refuse what is no learning-rate multiplier: a non-expression, NaN or an infinity anywhere, and a
    constant that is not a positive real number (``expr`` named; symbolic schedules are checked on
    [0, oo) by :func:`scheduled_model` and at every SGD step by :meth:`Schedule.values`)."""
    if not isinstance(expr, sp.Expr):
        raise TypeError(f"`expr` must be a sympy expression in the time symbol; got {expr!r} "
                        f"({type(expr).__name__}).")
    if expr.has(sp.nan, sp.zoo, sp.oo, -sp.oo):
        raise ValueError(f"`expr` must be finite (no NaN or infinity); got {expr}.")
    if expr.free_symbols:
        return
    try:
        value = complex(expr.evalf())
    except (TypeError, ValueError):
        return  # not evaluable here: Schedule.values checks every step's value
    if value.imag != 0 and expr.is_extended_real is not True:
        raise ValueError(f"`expr` must be a real number or an expression in t; got the non-real {expr}.")
    if not (np.isfinite(value.real) and value.real > 0):
        raise ValueError(f"`expr` must be positive (a learning-rate multiplier u > 0); got {expr}.")


class Schedule:
    r"""A learning-rate schedule u(t): SGD step k uses eta_k = eta u(k eta).

    Parameters
    ----------
    expr : sympy expression or number
        u as an expression in ``t`` only (no other free symbols).
    t : sympy.Symbol, optional
        The time symbol (default: the expression's only free symbol, else :data:`TIME`).
    name : str, optional

    Examples
    --------
    >>> import sympy as sp
    >>> from smfsym.optimizers import Schedule, TIME
    >>> u = Schedule(1 / (1 + TIME))
    >>> u.derivative
    -1/(t + 1)**2
    >>> u.values(0.5, 3).round(3).tolist()
    [1.0, 0.667, 0.5]
    """

    def __init__(self, expr: Any, t: sp.Symbol | None = None, name: str | None = None):
        if t is not None and not isinstance(t, sp.Symbol):
            raise TypeError(f"`t` must be a sympy Symbol; got {type(t).__name__}.")
        if isinstance(expr, (bool, np.bool_, sp.logic.boolalg.Boolean)):
            raise TypeError(f"`expr` must be a sympy expression in the time symbol; got the boolean {expr!r}.")
        if isinstance(expr, str) or not isinstance(expr, (sp.Basic, int, float)):
            # strings are not parsed: a schedule is an expression built by the caller
            raise TypeError(f"`expr` must be a sympy expression in the time symbol; got {expr!r}.")
        self.expr = as_expr(expr)
        _check_schedule_expr(self.expr)
        free = self.expr.free_symbols
        # an expression in one symbol of the caller's own (say Symbol("t") without assumptions) uses that symbol
        self.t = t if t is not None else (next(iter(free)) if len(free) == 1 else TIME)
        extra = self.expr.free_symbols - {self.t}
        if extra:
            raise ValueError(f"`expr` must depend on the time symbol {self.t} only; it also has "
                             f"{sorted(map(str, extra))}.")
        self.name = name or f"u({self.t}) = {self.expr}"
        self._f = sp.lambdify(self.t, self.expr, "numpy")

    @property
    def derivative(self) -> sp.Expr:
        """u'(t) (zero almost everywhere for piecewise-constant schedules)."""
        return sp.diff(self.expr, self.t)

    @property
    def is_constant(self) -> bool:
        return self.t not in self.expr.free_symbols

    @property
    def is_smooth(self) -> bool:
        """False when u has pieces (step decay, warm-up kinks): order 2 needs jumps on the SGD grid."""
        return not self.expr.atoms(sp.Piecewise, sp.Heaviside, sp.floor, sp.ceiling, sp.Min, sp.Max)

    def values(self, eta: float, n_steps: int) -> np.ndarray:
        """u(k eta) for k = 0, ..., n_steps - 1, checked positive and finite."""
        ts = np.arange(int(n_steps), dtype=float) * float(eta)
        u = np.broadcast_to(np.asarray(self._f(ts), dtype=float), ts.shape).copy()
        bad = ~np.isfinite(u) | (u <= 0)
        if bad.any():
            k = int(np.argmax(bad))
            raise ValueError(f"`schedule` must be positive and finite at every SGD step; u({ts[k]:.6g}) = {u[k]!r} "
                             f"(step {k}).")
        return u

    def __repr__(self) -> str:
        return f"Schedule({self.expr})"


def constant(value: float = 1) -> Schedule:
    """u(t) = value: plain SGD with learning rate eta * value."""
    return Schedule(rational(value), name=f"constant {value}")


def exponential_decay(rate: float, t: sp.Symbol | None = None) -> Schedule:
    """u(t) = exp(-rate t) (smooth)."""
    t = TIME if t is None else t
    return Schedule(sp.exp(-rational(rate) * t), t, name=f"exponential decay, rate {rate}")


def cosine(horizon: float, floor: float = 0.0, t: sp.Symbol | None = None) -> Schedule:
    """Cosine annealing u(t) = floor + (1 - floor)(1 + cos(pi t / horizon)) / 2 (smooth; keep floor > 0
    if the horizon is reached, since u must stay positive)."""
    t = TIME if t is None else t
    T, a = rational(horizon), rational(floor)
    if not T > 0:
        raise ValueError(f"`horizon` must be positive; got {horizon!r}.")
    return Schedule(a + (1 - a) * (1 + sp.cos(sp.pi * t / T)) / 2, t, name=f"cosine to {floor} at t = {horizon}")


def step_decay(factor: float, every: float, n_drops: int = 10, t: sp.Symbol | None = None) -> Schedule:
    """u(t) = factor^j on [j every, (j + 1) every): piecewise constant, n_drops drops.

    Weak order 2 holds only when the drops fall on the SGD grid (``every`` a multiple of eta).
    """
    t = TIME if t is None else t
    f, e = rational(factor), rational(every)
    if not (0 < f and e > 0):
        raise ValueError(f"`factor` and `every` must be positive; got {factor!r}, {every!r}.")
    pieces = [(f**j, t < (j + 1) * e) for j in range(int(n_drops))] + [(f**int(n_drops), True)]
    return Schedule(sp.Piecewise(*pieces), t, name=f"step decay x{factor} every {every}")


def warmup(base: Schedule, duration: float, start: float = 0.1) -> Schedule:
    """Linear warm-up from ``start`` to ``base`` over [0, duration], then ``base`` (kinked at ``duration``)."""
    d, s = rational(duration), rational(start)
    if not (d > 0 and s > 0):
        raise ValueError(f"`duration` and `start` must be positive; got {duration!r}, {start!r}.")
    t = base.t
    ramp = (s + (1 - s) * t / d) * base.expr.subs(t, d)
    return Schedule(sp.Piecewise((ramp, t < d), (base.expr, True)), t, name=f"warm-up {duration}, then {base.name}")


def _as_schedule(schedule) -> Schedule:
    if isinstance(schedule, Schedule):
        return schedule
    if isinstance(schedule, (int, float, sp.Expr)):
        return Schedule(schedule)
    raise TypeError(f"`schedule` must be a Schedule or a sympy expression in t; got {type(schedule).__name__}.")


def scheduled_drift(problem: Problem, schedule: Schedule, order: int, eta) -> list:
    """-u grad F (order 1); -(u - eta u'/2) grad F - eta/2 u^2 Hess F grad F (order 2), docs/theory.md §7."""
    u, du = schedule.expr, schedule.derivative
    g = problem.grad_F
    if order == 1:
        return [-u * g[i] for i in range(problem.dim)]
    Hg = problem.hessian * g
    return [-(u - eta * du / 2) * g[i] - eta / 2 * u**2 * Hg[i] for i in range(problem.dim)]


def _check_positive_schedule(sch: Schedule) -> None:
    """Refuse a schedule sympy proves non-positive (or non-real) on t >= 0; undecided ones pass (their values
    are checked at every SGD step)."""
    tau = sp.Dummy("t", nonnegative=True)
    try:
        positive = sch.expr.subs(sch.t, tau) > 0
    except TypeError:  # sympy refuses to compare a non-real expression
        raise ValueError(f"`schedule` must be real on t >= 0; got {sch.expr}.") from None
    require(positive, "schedule", "positive on t >= 0 (u(t) > 0: a learning-rate multiplier)", sch.expr)


def scheduled_model(problem: Problem, schedule, kind: str = "smf", order: int = 2, eta: Any = None,
                    degree: int | None = None) -> SDE:
    r"""The SME, SMF or gradient flow of SGD with the learning-rate schedule u (docs/theory.md §7).

    Returned on the augmented state (x, t): simulate it from ``with_time(x0)``.

    Parameters
    ----------
    problem : Problem
    schedule : Schedule or sympy expression in :data:`TIME`
    kind : {"smf", "sme", "gf"}
    order : {1, 2}
    eta : sympy symbol or number, optional
    degree : int, optional
        Chaos truncation degree (SMF of a loss not polynomial in the data).

    Examples
    --------
    >>> import sympy as sp, smfsym
    >>> from smfsym.optimizers import scheduled_model, Schedule, TIME
    >>> x = sp.Symbol("x")
    >>> p = smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x])
    >>> m = scheduled_model(p, Schedule(1 / (1 + TIME)), "smf", order=2)
    >>> m.state
    (x, t)
    >>> sp.simplify(m.drift[0] + (1 / (1 + TIME) + m.eta / (1 + TIME) ** 2) * x)  # u' and u^2 terms add up
    0
    >>> m.diffusion
    Matrix([
    [sqrt(eta)/(t + 1)],
    [                0]])
    """
    if not isinstance(problem, Problem):
        raise TypeError(f"`problem` must be a smfsym.Problem; got {type(problem).__name__}.")
    sch = _as_schedule(schedule)
    if order not in (1, 2):
        raise ValueError(f"`order` must be 1 or 2; got {order!r}.")
    if kind not in ("smf", "sme", "gf"):
        raise ValueError(f"`kind` must be 'smf', 'sme' or 'gf'; got {kind!r}.")
    t = sch.t
    _check_positive_schedule(sch)
    clash = {t} & (set(problem.params) | set(problem.constants) | set(problem.law_parameters) | set(problem.data))
    if clash or t.name in {s.name for s in problem.loss.free_symbols}:
        raise ValueError(f"`schedule` time symbol {t} also appears in the problem; build the schedule with "
                         "another symbol, e.g. Schedule(expr, t=sp.Symbol('tau')).")
    eta = default_eta() if eta is None else as_expr(eta)
    d = problem.dim
    u = sch.expr
    drift = scheduled_drift(problem, sch, order, eta) + [sp.S.One]
    state = tuple(problem.params) + (t,)
    kw = dict(eta=eta, model=f"{kind} with a learning-rate schedule", order=order, problem=problem)
    if kind == "gf":
        return SDE(drift, None, state, **kw)
    if kind == "sme":

        base = _sme(problem, 1, eta)
        if base.noise_kind == "sqrt":
            S = sp.zeros(d + 1, d + 1)
            S[:d, :d] = u**2 * base.diffusion.sigma  # (u Sigma^{1/2})^2 with u > 0
            diff = MatrixSqrt(sp.ImmutableMatrix(S), base.diffusion.scale)
        else:
            diff = sp.ImmutableMatrix(sp.Matrix.vstack(u * sp.Matrix(base.diffusion), sp.zeros(1, base.n_noise)))
        return SDE(drift, diff, state, **kw)
    base = _smf(problem, 1, eta, degree=degree)
    if base.noise_kind == "template":
        col = sp.ImmutableMatrix(list(u * base.diffusion.column) + [0])
        lift = sp.ImmutableMatrix(sp.Matrix.vstack(u * sp.eye(d), sp.zeros(1, d)))
        return SDE(drift, NoiseTemplate(col, base.diffusion.law, lift), state, chaos=base.chaos,
                   noise_scale=base.noise_scale, **kw)
    diff = sp.ImmutableMatrix(sp.Matrix.vstack(u * sp.Matrix(base.diffusion), sp.zeros(1, base.n_noise)))
    return SDE(drift, diff, state, chaos=base.chaos, **kw)


def scheduled_latex(sde: SDE, schedule, environment: str | None = "aligned") -> str:
    r"""LaTeX of a scheduled model (:func:`smfsym.symbolic.latex.sde_lines` style) with the schedule u(t) stated.

    Examples
    --------
    >>> import sympy as sp, smfsym
    >>> from smfsym.optimizers import scheduled_model, scheduled_latex, exponential_decay
    >>> x = sp.Symbol("x")
    >>> p = smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x])
    >>> tex = scheduled_latex(scheduled_model(p, exponential_decay(1)), exponential_decay(1))
    >>> r"u(t) &= e^{- t}" in tex
    True
    """

    sch = _as_schedule(schedule)
    lines = sde_lines(sde)
    lines.insert(1, r"u(" + sp.latex(sch.t) + r") &= " + sp.latex(sch.expr)
                 + r", \qquad \eta_k = \eta\,u(k\eta),\ \text{state } (x, t),\ \mathrm{d}t/\mathrm{d}t = 1")
    return wrap(lines, environment)


def with_time(x0, t0: float = 0.0) -> np.ndarray:
    """Append the time coordinate to start point(s) (d,) or (n, d) for the augmented SDE."""
    arr = np.array(x0, dtype=float)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    tcol = np.full(arr.shape[:-1] + (1,), float(t0))
    return np.concatenate([arr, tcol], axis=-1)


def sgd_run_arguments(problem: Problem, n_steps, batch_size, save_at, max_steps) -> tuple[int, list]:
    """Checked batch size and save steps of an SGD-type run (no silent sorting, merging or rounding);
    ``n_steps`` over ``max_steps`` is refused here, before the run's per-step arrays are allocated."""

    n_steps = check_steps(check_int(n_steps, "n_steps"), max_steps)
    B = check_int(problem.batch_size if batch_size is None else batch_size, "batch_size")
    if save_at is None:
        return B, [n_steps]
    return B, check_save_steps(save_at, n_steps)


def simulate_sgd_schedule(problem: Problem, schedule, x0, n_steps: int, eta: float, *, n_paths: int = 10_000,
                          seed=None, save_at=None, batch_size: int | None = None,
                          values: Mapping | None = None, options: RunOptions | None = None, **legacy) -> SimulationResult:
    r"""SGD with a schedule, x_{k+1} = x_k - eta u(k eta) grad f(x_k, xi_{k+1}) (docs/theory.md §7).

    Same arguments and seeds as :func:`smfsym.simulate_sgd`: a constant schedule u = 1
    reproduces it bit for bit. ``result.t`` is step * eta.

    Examples
    --------
    >>> import sympy as sp, smfsym
    >>> from smfsym.optimizers import simulate_sgd_schedule, constant
    >>> x = sp.Symbol("x")
    >>> p = smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x])
    >>> a = simulate_sgd_schedule(p, constant(), [1.0], 20, 0.1, n_paths=100, seed=3)
    >>> b = smfsym.simulate_sgd(p, [1.0], 20, 0.1, n_paths=100, seed=3)
    >>> bool((a.states == b.states).all())
    True
    """
    (chunk_size, max_memory, max_steps, on_nonfinite, blowup_threshold, executor, progress, save_at, functions,
     store) = run_settings("simulate_sgd_schedule", options, save_at, legacy, backends=True)

    if not isinstance(problem, Problem):
        raise TypeError(f"`problem` must be a smfsym.Problem; got {type(problem).__name__}.")
    sch = _as_schedule(schedule)
    if not np.isfinite(eta) or eta <= 0:
        raise ValueError(f"`eta` must be positive; got {eta!r}.")
    B, idx = sgd_run_arguments(problem, n_steps, batch_size, save_at, max_steps)
    vals = numeric_values(values, _sgd.problem_symbols(problem))
    x0 = prepare_x0(x0, problem.dim)
    # the engine hands each step its step size: eta_k = eta u(k eta) rides along as that size
    etas = float(eta) * sch.values(eta, n_steps)
    task = _sgd.SGDTask(problem, eta, B, vals, _sgd.ScheduledRate())
    res = _sgd.run_rule(task, x0, etas, idx, np.array(idx) * eta, dict(
        n_paths=n_paths, seed=seed, chunk_size=chunk_size, functions=functions, store=store,
        on_nonfinite=on_nonfinite, progress=progress, max_steps=max_steps, blowup_threshold=blowup_threshold,
        max_memory=max_memory, executor=executor, backend=options.backend if options is not None else "numpy",
        scheme="sgd", dt_label=eta))
    res.extra.update(steps=np.array(idx), batch_size=B, schedule=str(sch.expr), step_sizes=etas)
    return res
