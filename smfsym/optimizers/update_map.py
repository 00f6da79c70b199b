"""Optimizers as symbolic update maps, and their modified equations and flows (docs/theory.md §10).

An optimizer step is a map on a state z (the parameters x, then any auxiliary variables: a
momentum m, a second-moment estimate v, the time t),

    z_{k+1} = U(z_k, xi_{k+1}; eta),

written as sympy expressions. With the expansion parameter h (h = eta, or h = sqrt(eta) for
momentum in the underdamped scaling) smfsym expands the increment,

    U(z, xi; eta) - z = h A(z, xi) + h^2 B(z, xi) + O(h^3),

and derives, with a = E A, b = E B, S = Cov A and the noise coefficients A_k = E[A e_k]:

    SME order 1:  dZ = a dt                          + sqrt(h) S^{1/2} dW
    SME order 2:  dZ = (a + h (b - (Da) a / 2)) dt    + sqrt(h) S^{1/2} dW
    SMF:          the same drifts, noise sqrt(h) sum_k A_k(Z) dbeta_k   (sum_k A_k A_k^T = S),

with time t = k h. The means, the covariance and the noise coefficients are those of a *lifted*
problem whose per-sample loss is u . A(z, xi) in new parameters u: its F is u . a, its gradient
a, its Sigma Cov(A), and its chaos columns E[A e_k]. So every data law smfsym knows (closed-form
moments, finite laws, Gauss rules, data sets) and every safeguard (sizes, infinite moments) serve
update maps unchanged.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np
import sympy as sp

from .._checks import as_expr, as_number_or_expr, as_symbol_tuple, numeric_values
from ..symbolic.noise_expansion import NoiseTemplate
from ..symbolic.lambdify import CompiledExprs, compile_exprs
from ..montecarlo.checks import CHAIN_REMEDY, check_int, check_positive, check_steps
from ..montecarlo.driver import Job, Paths, run
from ..montecarlo.grid import StepGrid
from ..montecarlo.options import RunOptions, SaveAt, run_settings
from ..montecarlo.result import SimulationResult
from ..montecarlo.seeds import resolve_seed
from ..symbolic.models import default_eta
from ..symbolic.problem import Problem
from ..data.samplers import samplers_for
from ..symbolic.sde import SDE, MatrixSqrt
from ..simulation.sde import check_save_steps, prepare_x0
from .momentum import DEFAULT_FRICTION, _momentum_symbols
from .schedules import _as_schedule
from ..simulation.device_sgd import _DeviceSampler
from ..backends import get_backend

__all__ = ["UpdateMap", "sgd_map", "schedule_map", "momentum_map", "rmsprop", "adam", "simulate_update_map",
           "EXPANSIONS"]

#: How the expansion parameter h relates to the learning rate: h = eta**(1/p).
EXPANSIONS = {"eta": 1, "sqrt_eta": 2}

_H = sp.Symbol("h", positive=True)


def _bad(e) -> bool:
    return bool(e.has(sp.zoo, sp.nan, sp.oo, -sp.oo))


def _regularise(expr: sp.Expr, h: sp.Symbol) -> sp.Expr:
    """Replace each power whose exponent blows up at h = 0 (a bias correction (1 - c h)^(t/h)) by
    its series to O(h^3): the rest is then analytic in h and expands by differentiation."""
    sub = {}
    for p in expr.atoms(sp.Pow, sp.exp):
        exponent = p.exp if isinstance(p, sp.Pow) else p.args[0]
        if exponent.has(h) and _bad(exponent.subs(h, 0)):
            sub[p] = sp.expand(sp.series(p, h, 0, 3).removeO())
    return expr.xreplace(sub) if sub else expr


def _taylor(expr: sp.Expr, h: sp.Symbol) -> tuple:
    """(c0, c1, c2) with expr = c0 + c1 h + c2 h^2 + O(h^3), by derivatives at h = 0."""
    expr = _regularise(expr, h)
    d1 = sp.diff(expr, h)
    out = (expr.subs(h, 0), d1.subs(h, 0), sp.diff(d1, h).subs(h, 0) / 2)
    if any(_bad(c) or c.has(h) for c in out):
        raise ValueError(f"the update {expr} has no expansion c0 + c1 h + c2 h^2 + O(h^3) in h: "
                         "the modified equations need an update that is smooth in the learning rate.")
    return out


class UpdateMap:
    r"""One optimizer step as a symbolic map z -> U(z, xi; eta) (docs/theory.md §10).

    Parameters
    ----------
    problem : Problem
        The per-sample loss and the data law (batch size 1: the update draws one sample).
    state : sequence of sympy.Symbol
        The optimizer's state: ``problem.params`` first, then auxiliary variables.
    update : sequence of sympy expressions
        U(z, xi; eta), the next state, in the state, the data symbols of the loss, ``eta`` and
        ``constants``.
    expansion : {"eta", "sqrt_eta"}
        The expansion parameter h (time t = k h): the learning rate, or its square root
        (momentum in the underdamped scaling).
    constants : sequence of sympy.Symbol
        Hyper-parameters left symbolic (give numbers with ``values=`` when simulating).
    eta : sympy.Symbol, optional
        The learning-rate symbol in ``update`` (default ``Symbol("eta", positive=True)``).
    name : str
        A label (``"sgd"``, ``"rmsprop"``, ...).

    Attributes
    ----------
    A, B : sympy.ImmutableMatrix
        The per-sample increments of orders h and h^2.
    a, b : sympy.ImmutableMatrix
        Their means over the data law.

    Examples
    --------
    SGD is the map x -> x - eta grad f; its modified equations are smfsym's:

    >>> import sympy as sp, smfsym
    >>> x = sp.Symbol("x")
    >>> p = smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x])
    >>> eta = sp.Symbol("eta", positive=True)
    >>> m = smfsym.UpdateMap(p, [x], [x - eta * (x - p.data[0])])
    >>> m.A == sp.Matrix([p.data[0] - x]), m.B
    (True, Matrix([[0]]))
    >>> m.smf(2).drift
    Matrix([[-eta*x/2 - x]])
    """

    def __init__(self, problem: Problem, state: Sequence[sp.Symbol], update: Sequence, *,
                 expansion: str = "eta", constants: Sequence[sp.Symbol] = (), eta: Any = None,
                 name: str = "custom"):
        if not isinstance(problem, Problem):
            raise TypeError(f"`problem` must be a smfsym.Problem; got {type(problem).__name__}.")
        if problem.batch_size != 1:
            raise ValueError(f"`problem` must have batch size 1 for an update map (the update draws one "
                             f"sample); got batch_size = {problem.batch_size}.")
        self.problem = problem
        self.state = as_symbol_tuple(state, "state")
        d = len(problem.params)
        if self.state[:d] != tuple(problem.params):
            raise ValueError(f"`state` must start with the problem's parameters {list(problem.params)}; "
                             f"got {list(self.state)}.")
        if len(set(self.state)) != len(self.state):
            raise ValueError(f"`state` must not repeat a symbol; got {list(self.state)}.")
        update = [as_expr(u, "update") for u in update]
        if len(update) != len(self.state):
            raise ValueError(f"`update` must have one entry per state variable ({len(self.state)}); "
                             f"got {len(update)}.")
        if not isinstance(expansion, str) or expansion not in EXPANSIONS:
            raise ValueError(f"`expansion` must be one of {sorted(EXPANSIONS)}; got {expansion!r}.")
        self.expansion = expansion
        self.eta = default_eta() if eta is None else eta
        if not isinstance(self.eta, sp.Symbol):
            raise TypeError(f"`eta` must be a sympy Symbol; got {self.eta!r}.")
        self.constants = as_symbol_tuple(constants, "constants")
        allowed = (set(self.state) | set(problem.data) | set(problem.constants) | set(problem.law_parameters)
                   | set(self.constants) | {self.eta})
        stray = sorted({str(s) for u in update for s in u.free_symbols} - {str(s) for s in allowed})
        if stray:
            raise ValueError(f"`update` uses symbols that are neither state, data, eta nor constants: {stray}.")
        self.update = sp.ImmutableMatrix(update)
        self.name = str(name)
        self._expand()

    # ------------------------------------------------------------------ expansion

    @property
    def h(self) -> sp.Expr:
        """The expansion parameter as a function of eta."""
        return self.eta ** sp.Rational(1, EXPANSIONS[self.expansion])

    def _expand(self):
        p = EXPANSIONS[self.expansion]
        inc = [(u - z).xreplace({self.eta: _H**p}) for u, z in zip(self.update, self.state)]
        A, B = [], []
        for z, e in zip(self.state, inc):
            c0, c1, c2 = _taylor(e, _H)
            if sp.simplify(c0) != 0:
                raise ValueError(f"the update of {z} does not reduce to {z} as eta -> 0 (it moves by {c0}): "
                                 "an update map must be the identity plus O(h).")
            A.append(c1)
            B.append(c2)
        self.A, self.B = sp.ImmutableMatrix(A), sp.ImmutableMatrix(B)

    # ------------------------------------------------------------------ means and noise

    def _freeze(self, expr: sp.Expr) -> sp.Expr:
        """``expr`` with every maximal data-free subterm replaced by a plain symbol.

        Means over the data then see a small polynomial (or function) of the data with symbolic
        coefficients; a bias correction sqrt(v / (1 - exp(-c t))) is not expanded or integrated."""
        data = set(self.problem.data)
        if not (expr.free_symbols & data):
            if expr.is_Number or expr.is_Symbol:
                return expr
            if expr not in self._frozen:
                self._frozen[expr] = sp.Symbol(f"_umap_c{len(self._frozen)}", real=True)
            return self._frozen[expr]
        if expr.is_Atom:
            return expr
        return expr.func(*[self._freeze(a) for a in expr.args])

    def _thaw(self, obj):
        back = {v: k for k, v in self._frozen.items()}
        return obj.xreplace(back)

    @property
    def lifted(self) -> Problem:
        """The problem with loss u . A(z, xi) in new parameters u (see the module docstring), its
        data-free subterms frozen to symbols (:meth:`_freeze`; results are thawed)."""
        if getattr(self, "_lifted", None) is None:
            self._frozen = {}
            u = [sp.Symbol(f"_lift_u{i}") for i in range(len(self.state))]
            loss = sum((ui * self._freeze(Ai) for ui, Ai in zip(u, self.A)), sp.S.Zero)
            if not (loss.free_symbols & set(u)):
                raise ValueError("the update map's increment A vanishes: nothing moves at order h.")
            others = sorted((loss.free_symbols - set(u) - set(self.problem.data)
                             - set(self.problem.law_parameters)), key=str)
            self._lifted = Problem(loss, u, constants=others, n_points=self.problem.n_points,
                                   limits=self.problem.limits)
        return self._lifted

    @property
    def a(self) -> sp.ImmutableMatrix:
        """E A(z, xi): the drift of order 1."""
        return sp.ImmutableMatrix(self._thaw(self.lifted.grad_F))

    @property
    def b(self) -> sp.ImmutableMatrix:
        """E B(z, xi)."""
        self.lifted  # noqa: B018 - sets up the frozen subterms
        return sp.ImmutableMatrix([self._thaw(self.problem.mean(self._freeze(e))) if e != 0 else sp.S.Zero
                                   for e in self.B])

    @property
    def covariance(self) -> sp.ImmutableMatrix:
        """S(z) = Cov A(z, xi)."""
        return sp.ImmutableMatrix(self._thaw(self.lifted.sigma))

    def cross_covariance(self, y) -> sp.ImmutableMatrix:
        """Cov(A(z, xi), A(y, xi)): the increments' covariance at two states under one sample (the two-point
        covariance of the SMF's noise, divided by h; :meth:`covariance` at y = z).

        Examples
        --------
        >>> import sympy as sp, smfsym
        >>> x, y = sp.symbols("x y")
        >>> m = smfsym.sgd_map(smfsym.Problem((x - smfsym.normal("a")) ** 2 / 2, [x]))
        >>> m.cross_covariance([y])
        Matrix([[1]])
        """
        ys = as_symbol_tuple(y, "y")
        if len(ys) != len(self.state):
            raise ValueError(f"`y` must have {len(self.state)} symbols; got {len(ys)}.")
        sub = dict(zip(self.state, ys))
        a, a_y = self.a, self.a.xreplace(sub)
        A_y = [e.xreplace(sub) for e in self.A]
        n = len(self.state)
        return sp.ImmutableMatrix(n, n, lambda i, j: sp.expand(self.problem.mean(self.A[i] * A_y[j])
                                                               - a[i] * a_y[j]))

    def drift(self, order: int) -> sp.ImmutableMatrix:
        """a (order 1) or a + h (b - (Da) a / 2) (order 2), with h written in eta."""
        _check_order(order)
        a = self.a
        if order == 1:
            return a
        Da = a.jacobian(self.state)
        corr = self.b - Da * a / 2
        return sp.ImmutableMatrix([a[i] + self.h * corr[i] for i in range(len(self.state))])

    # ------------------------------------------------------------------ models

    def _sde(self, drift, diffusion, kind, order, **kw) -> SDE:
        sde = SDE(drift, diffusion, self.state, eta=self.eta, model=f"{self.name}_{kind}", order=order,
                  problem=None, **kw)
        sde.update_map = self
        return sde

    def sme(self, order: int = 2) -> SDE:
        """dZ = drift dt + sqrt(h) S(Z)^{1/2} dW (the root numeric unless S is diagonal)."""
        _check_order(order)
        S = self.covariance
        n = len(self.state)
        root = sp.sqrt(self.h)
        if all(S[i, j] == 0 for i in range(n) for j in range(n) if i != j):
            diffusion = sp.ImmutableMatrix(sp.diag(*[root * sp.sqrt(S[i, i]) for i in range(n)]))
        else:
            diffusion = MatrixSqrt(S, root)
        return self._sde(self.drift(order), diffusion, "sme", order)

    def smf(self, order: int = 2, degree: int | None = None) -> SDE:
        """dZ = drift dt + sqrt(h) sum_k A_k(Z) dbeta_k, A_k = E[A e_k] (the lifted chaos columns)."""
        _check_order(order)
        ce = self.lifted.chaos(degree)
        root = sp.sqrt(self.h)
        if ce.template is not None:
            tmpl = NoiseTemplate(sp.ImmutableMatrix(self.A - self.a), ce.template.law)
            return self._sde(self.drift(order), tmpl, "smf", order, chaos=ce, noise_scale=root)
        columns = sp.ImmutableMatrix(root * self._thaw(ce.columns))
        chaos = ce if ce.exact else _StateExpansion(ce, self._thaw(ce.columns), self.covariance, self.state)
        return self._sde(self.drift(order), columns, "smf", order, chaos=chaos)

    def gradient_flow(self, order: int = 1) -> SDE:
        """The noiseless drift of order 1 or 2."""
        _check_order(order)
        return self._sde(self.drift(order), None, "gf", order)

    def __repr__(self) -> str:
        return (f"UpdateMap({self.name!r}, state={list(self.state)}, h={self.h}, "
                f"A={list(self.A)}, B={list(self.B)})")

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_lifted"] = None  # rebuilt on demand (cached properties of sympy objects)
        state.pop("_frozen", None)
        return state


class _StateExpansion:
    """A truncated noise expansion of the lifted problem, read on the optimizer's state.

    The lifted problem's parameters are the multipliers u, and its data-free subterms are frozen to
    symbols; what :func:`smfsym.simulate` checks before it runs (the share of trace Cov A that the
    truncated columns capture, :func:`~smfsym.symbolic.noise_expansion.warn_if_low`) is a function of
    the state z. Everything else is the lifted expansion's.
    """

    def __init__(self, expansion, columns: sp.Matrix, covariance: sp.Matrix, state: tuple):
        self._expansion, self._state = expansion, state
        self._num = sum((c**2 for c in columns), sp.S.Zero)
        self._den = sp.trace(covariance)

    def __getattr__(self, name):
        if name.startswith("_"):  # (unpickling looks for hooks before _expansion is set)
            raise AttributeError(name)
        return getattr(self._expansion, name)

    def captured_fraction(self, z, values=None) -> float:
        """trace(sum_k A_k A_k^T) / trace(Cov A) at the state ``z`` (numeric)."""
        fn = compile_exprs([self._num, self._den], self._state, values=values)
        out = fn(np.atleast_2d(np.asarray(z, dtype=float)))
        a, b = float(np.ravel(out[0])[0]), float(np.ravel(out[1])[0])
        return 1.0 if b == 0 else a / b


def _check_order(order):
    if isinstance(order, bool) or order not in (1, 2):
        raise ValueError(f"`order` must be 1 or 2; got {order!r}.")


# ---------------------------------------------------------------------- built-in maps


def sgd_map(problem: Problem, eta: Any = None) -> UpdateMap:
    """SGD, x -> x - eta grad f(x, xi) (docs/theory.md §1)."""
    eta = default_eta() if eta is None else eta

    def rule(g):
        return [x - eta * gi for x, gi in zip(problem.params, g)]

    return _compact(UpdateMap(problem, problem.params, rule(problem.grad_f), eta=eta, name="sgd"), rule)


def schedule_map(problem: Problem, schedule: Any, eta: Any = None) -> UpdateMap:
    r"""SGD with a learning-rate schedule, (x, t) -> (x - eta u(t) grad f(x, xi), t + eta) (docs/theory.md §7).

    The state is (x, t) with the schedule's time symbol, as in
    :func:`~smfsym.optimizers.schedules.scheduled_model`, whose SME and SMF of orders 1 and 2 this
    map reproduces; simulated from t_0 = 0 it is :func:`~smfsym.optimizers.simulate_sgd_schedule`.

    Parameters
    ----------
    problem : Problem
    schedule : Schedule or sympy expression in :data:`~smfsym.optimizers.schedules.TIME`
        A smooth u (pieces make the increment non-smooth in t; the expansion is refused).
    eta : sympy.Symbol, optional

    Examples
    --------
    >>> import sympy as sp, smfsym
    >>> from smfsym.optimizers.update_map import schedule_map
    >>> from smfsym.optimizers import TIME
    >>> x = sp.Symbol("x")
    >>> m = schedule_map(smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x]), 1 / (1 + TIME))
    >>> m.state, list(m.A)
    ((x, t), [-(-xi + x)/(t + 1), 1])
    """
    sch = _as_schedule(schedule)
    eta = default_eta() if eta is None else eta
    t = sch.t
    if t in set(problem.params) | set(problem.data) or t.name in {s.name for s in problem.loss.free_symbols}:
        raise ValueError(f"`schedule`: its time symbol {t} also appears in the problem; build the schedule "
                         "with another symbol, e.g. Schedule(expr, t=sp.Symbol('tau')).")
    if not sch.is_smooth:
        raise ValueError(f"`schedule` must be smooth for an update map (u = {sch.expr} has pieces): the "
                         "expansion in eta needs u differentiable; use scheduled_model for piecewise schedules.")

    def rule(g):
        return [x - eta * sch.expr * gi for x, gi in zip(problem.params, g)] + [t + eta]

    return _compact(UpdateMap(problem, tuple(problem.params) + (t,), rule(problem.grad_f), eta=eta,
                              name="schedule"), rule)


def momentum_map(problem: Problem, lam: Any = None, *, nesterov: bool = False, eta: Any = None) -> UpdateMap:
    r"""Heavy-ball (or Nesterov) momentum in the scaling 1 - beta = lambda sqrt(eta), t = k sqrt(eta).

    With h = sqrt(eta) and p = v / h: p <- (1 - lambda h) p - h grad f(y, xi), x <- x + h p (the
    new p), y = x (heavy ball) or y = x + (1 - lambda h) h p (Nesterov), as in
    :func:`~smfsym.optimizers.simulate_momentum_sgd` with ``scaled=True`` and
    beta = 1 - lambda sqrt(eta). Its drifts of orders 1 and 2 and its noise are those of
    :func:`~smfsym.optimizers.momentum_model` without ``noise_correction`` (that correction, a term
    of order h^{3/2} in the noise, is beyond what weak order 2 needs and beyond this map's B).

    Parameters
    ----------
    problem : Problem
    lam : sympy expression or number, optional
        The friction lambda (default the symbol ``lambda``: give it with ``values=`` to simulate).
    nesterov : bool
    eta : sympy.Symbol, optional

    Examples
    --------
    >>> import sympy as sp, smfsym
    >>> from smfsym.optimizers.update_map import momentum_map
    >>> x = sp.Symbol("x")
    >>> m = momentum_map(smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x]), lam=2)
    >>> m.state, list(m.A), list(m.B)
    ((x, p_x), [p_x, xi - 2*p_x - x], [xi - 2*p_x - x, 0])
    """
    eta = default_eta() if eta is None else eta
    lam = DEFAULT_FRICTION if lam is None else as_number_or_expr(lam, "lam", positive=True)
    h = sp.sqrt(eta)
    P = _momentum_symbols(problem)
    shift = {x: x + (1 - lam * h) * h * p for x, p in zip(problem.params, P)} if nesterov else {}

    def rule(grad):
        g = [gi.xreplace(shift) for gi in grad]
        p_new = [(1 - lam * h) * p - h * gi for p, gi in zip(P, g)]
        return [x + h * pn for x, pn in zip(problem.params, p_new)] + p_new

    return _compact(UpdateMap(problem, tuple(problem.params) + P, rule(problem.grad_f), expansion="sqrt_eta",
                              eta=eta, name="nesterov" if nesterov else "heavy_ball",
                              constants=[lam] if isinstance(lam, sp.Symbol) else []), rule)


def _compact(umap: UpdateMap, rule: Callable) -> UpdateMap:
    """Give a built-in map the update its simulator compiles: ``rule`` at the loss's unexpanded gradient
    (:attr:`Problem.grad_f_compact`, a (a.x - y) rather than its d^2 expanded terms). Equal to
    ``umap.update``, which the expansion reads; only the cost of a step differs."""
    umap.step_update = sp.ImmutableMatrix(rule(umap.problem.grad_f_compact))
    return umap


def _aux(problem: Problem, prefix: str) -> tuple:
    return tuple(sp.Symbol(f"{prefix}_{x.name}", positive=True) for x in problem.params)


def rmsprop(problem: Problem, c: Any = 1, eps: Any = sp.Rational(1, 10), eta: Any = None) -> UpdateMap:
    r"""RMSprop in PyTorch's convention with 1 - beta = c eta, t = k eta (docs/theory.md §10).

    v <- v + c eta (g^2 - v) (updated first), x <- x - eta g / (sqrt(v) + eps), elementwise, g the
    per-sample gradient. ``eps`` is outside the root, as in ``torch.optim.RMSprop``. The state is
    (x, v) with v named ``v_<x>``; v must stay positive (start it at v_0 > 0).
    """
    eta = default_eta() if eta is None else eta
    c, eps = as_number_or_expr(c, "c", positive=True), as_number_or_expr(eps, "eps", positive=True)
    v = _aux(problem, "v")

    def rule(g):
        v_new = [vi + c * eta * (gi**2 - vi) for vi, gi in zip(v, g)]
        return [x - eta * gi / (sp.sqrt(vn) + eps) for x, gi, vn in zip(problem.params, g, v_new)] + v_new

    umap = _compact(UpdateMap(problem, tuple(problem.params) + v, rule(problem.grad_f), eta=eta, name="rmsprop",
                              constants=[s for s in (c, eps) if isinstance(s, sp.Symbol)]), rule)
    umap.rates = {"1 - beta": c}
    return umap


def adam(problem: Problem, c1: Any = 1, c2: Any = 1, eps: Any = sp.Rational(1, 10), eta: Any = None) -> UpdateMap:
    r"""Adam in PyTorch's convention with 1 - beta_i = c_i eta, t = k eta (docs/theory.md §10).

    m <- m + c1 eta (g - m), v <- v + c2 eta (g^2 - v), then
    x <- x - eta (m / (1 - beta1^k)) / (sqrt(v / (1 - beta2^k)) + eps) with k = t / eta + 1 the step
    count after the update, t the time before it (``eps`` outside the root, bias correction on). The state is
    (x, m, v, t); the bias correction is singular at t = 0, so simulations start at t_0 > 0
    (:func:`simulate_update_map` refuses t_0 <= 0 for this map).
    """
    eta = default_eta() if eta is None else eta
    c1, c2 = as_number_or_expr(c1, "c1", positive=True), as_number_or_expr(c2, "c2", positive=True)
    eps = as_number_or_expr(eps, "eps", positive=True)
    m, v = _aux(problem, "m"), _aux(problem, "v")
    m = tuple(sp.Symbol(s.name) for s in m)  # a momentum can be negative
    t = sp.Symbol("t", positive=True)
    k = (t + eta) / eta
    bc1 = 1 - (1 - c1 * eta) ** k
    bc2 = 1 - (1 - c2 * eta) ** k

    def rule(g):
        m_new = [mi + c1 * eta * (gi - mi) for mi, gi in zip(m, g)]
        v_new = [vi + c2 * eta * (gi**2 - vi) for vi, gi in zip(v, g)]
        x_new = [x - eta * (mn / bc1) / (sp.sqrt(vn / bc2) + eps) for x, mn, vn in zip(problem.params, m_new, v_new)]
        return x_new + m_new + v_new + [t + eta]

    umap = _compact(UpdateMap(problem, tuple(problem.params) + m + v + (t,), rule(problem.grad_f), eta=eta,
                              name="adam", constants=[s for s in (c1, c2, eps) if isinstance(s, sp.Symbol)]), rule)
    umap.time_symbol = t
    umap.rates = {"1 - beta1": c1, "1 - beta2": c2}
    return umap


# ---------------------------------------------------------------------- the optimizer itself


def _check_start(umap: UpdateMap, z0: np.ndarray, eta: float, vals: Mapping):
    """Refuse what the optimizer cannot start from: Adam at t <= 0 (bias correction singular), a state
    variable declared positive (a second moment) below 0, and 1 - beta = c eta outside (0, 1), where
    the moving average stops being one (v can then turn negative and sqrt(v) is NaN)."""
    t_sym = getattr(umap, "time_symbol", None)
    if t_sym is not None:
        col = z0[..., umap.state.index(t_sym)]
        if np.any(col <= 0):
            raise ValueError(f"`z0`: the {umap.name} map's time {t_sym} must start above 0 (its bias "
                             f"correction is singular at t = 0); got {col.tolist()}.")
    for i, z in enumerate(umap.state):
        if z.is_positive and z != t_sym and np.any(z0[..., i] < 0):
            raise ValueError(f"`z0`: the {umap.name} map's {z} is declared positive (a second moment) and must "
                             f"start at 0 or above; got {z0[..., i].tolist()}.")
    for name, c in getattr(umap, "rates", {}).items():
        rate = as_expr(as_expr(c, name).xreplace(dict(vals)), name) * eta
        if rate.is_number and not 0 < float(rate) < 1:
            raise ValueError(f"`eta`: {umap.name}'s {name} = {c} eta = {float(rate):.4g} must lie in (0, 1) "
                             f"(beta in (0, 1)); lower `eta`, got {eta!r}.")


class UpdateMapStep:
    """One compiled optimizer step z <- U(z, xi; eta) on a batch of states (picklable: no closure)."""

    def __init__(self, umap: UpdateMap, eta: float, values: Mapping):
        self.umap, self.eta, self.values = umap, float(eta), dict(values)
        self.samplers = samplers_for(umap.problem.laws, values)
        syms = [s for smp in self.samplers for s in smp.symbols]
        bound = dict(values)
        bound[umap.eta] = self.eta
        exprs = getattr(umap, "step_update", None)
        self.update = CompiledExprs(list(umap.update if exprs is None else exprs), umap.state, bound, syms)

    def __call__(self, X, h, gens, sizes):
        cols = []
        for smp in self.samplers:
            k = len(smp.symbols)
            arr = np.concatenate([smp(g, s).reshape(k, s) for g, s in zip(gens, sizes)], axis=1)
            cols += list(arr)
        ZT = np.moveaxis(X, -1, 0)
        if X.ndim == 3:  # n starts sharing the samples: data (P,) -> (P, 1)
            cols = [c[:, None] for c in cols]
        return self.update.evaluate(list(ZT), cols)  # shape of X: the output axis comes last


class DeviceUpdateMapStep:
    """:class:`UpdateMapStep` on an array back end (:mod:`smfsym.backends`): one sample per path and step
    drawn on the device from each seed block's stream, the update lambdified for the back end."""

    def __init__(self, umap: UpdateMap, eta: float, values: Mapping, backend):
        self.backend, self.xp = backend, backend.xp
        self.samplers = [_DeviceSampler(law, values, backend) for law in umap.problem.laws]
        syms = [s for smp in self.samplers for s in smp.symbols]
        bound = dict(values)
        bound[umap.eta] = float(eta)
        exprs = getattr(umap, "step_update", None)  # the built-ins' unexpanded gradient, as on numpy
        self.update = CompiledExprs(list(umap.update if exprs is None else exprs), umap.state, bound, syms,
                                    backend=backend)

    def __call__(self, X, h, gens, sizes):
        xp, cols = self.xp, []
        for smp in self.samplers:
            parts = [smp(g, s, 1) for g, s in zip(gens, sizes)]  # (k, s, 1) each
            arr = parts[0] if len(parts) == 1 else xp.concat(parts, axis=1)
            cols += [arr[j, :, 0] if X.ndim == 2 else arr[j, ...] for j in range(arr.shape[0])]  # (P,) or (P, 1)
        out = self.update.evaluate_list([X[..., i] for i in range(X.shape[-1])] + cols, mean_vals=[],
                                        shape=tuple(X.shape[:-1]))
        return xp.stack(out, axis=-1)


class UpdateMapTask:
    """What a worker needs to rebuild the step."""

    def __init__(self, umap: UpdateMap, eta: float, values: Mapping):
        self.umap, self.eta, self.values = umap, eta, dict(values)

    def build(self) -> UpdateMapStep:
        return UpdateMapStep(self.umap, self.eta, self.values)


def simulate_update_map(umap: UpdateMap, z0, n_steps: int, eta: float, *, n_paths: int = 10_000, seed=None,
                        save_at=None, values: Mapping | None = None, options: RunOptions | None = None,
                        **legacy) -> SimulationResult:
    """Simulate the optimizer itself: z_{k+1} = U(z_k, xi_{k+1}; eta), vectorised over paths.

    ``result.t`` is step * h (h = eta, or sqrt(eta) for ``expansion="sqrt_eta"``), the time of the
    modified equations. An (n, dim) ``z0`` runs n chains that share their samples. Other arguments
    are as for :func:`smfsym.simulate_sgd` (``RunOptions(backend=...)`` included).
    """
    (chunk_size, max_memory, max_steps, on_nonfinite, blowup_threshold, executor, progress, save_at, functions,
     store) = run_settings("simulate_update_map", options, save_at, legacy,
                           supported=("chunk_size", "max_memory", "max_steps", "on_nonfinite", "blowup_threshold",
                                      "executor", "progress"), backends=True)
    backend = get_backend(options.backend if options is not None else "numpy")
    if not isinstance(umap, UpdateMap):
        raise TypeError(f"`umap` must be a smfsym.UpdateMap; got {type(umap).__name__}.")
    eta = check_positive(eta, "eta")
    n_steps = check_steps(check_int(n_steps, "n_steps"), max_steps)
    n_paths = check_int(n_paths, "n_paths")
    seed = resolve_seed(seed)
    known = (set(umap.problem.law_parameters) | set(umap.problem.constants) | set(umap.constants))
    vals = numeric_values(values, known)
    z0 = prepare_x0(z0, len(umap.state), "z0")
    _check_start(umap, z0, eta, vals)
    idx = [n_steps] if save_at is None else check_save_steps(save_at, n_steps)
    h = eta ** (1.0 / EXPANSIONS[umap.expansion])
    task = UpdateMapTask(umap, eta, vals)
    step = task.build()
    if backend.name != "numpy":
        step = DeviceUpdateMapStep(umap, eta, vals, backend)
    grid = StepGrid.uniform(n_steps, h, idx)
    per_path = 8 * 8 * (len(umap.state) + len(step.update.data_symbols)) * (z0.shape[0] if z0.ndim == 2 else 1)
    job = Job(step=step, step_sizes=grid, save_index=idx, times=grid.times, scheme=umap.name, dt_label=h,
              time_label="t", task=task, per_path_bytes=per_path, remedy=CHAIN_REMEDY)
    run_options = RunOptions(chunk_size=chunk_size, on_nonfinite=on_nonfinite, progress=progress,
                             max_memory=max_memory, blowup_threshold=blowup_threshold, executor=executor,
                             backend=backend)
    res = run(job, z0, paths=Paths(n_paths, seed), save=SaveAt(functions=functions, store=store),
              options=run_options)
    res.extra.update(steps=np.array(idx), eta=eta)
    return res
