r"""Momentum SGD (heavy ball, Nesterov) and its SME / SMF in the underdamped scaling (docs/theory.md §7).

The optimiser, with velocity v and momentum beta:

    v_{k+1} = beta v_k - eta grad f(y_k, xi_{k+1}),   x_{k+1} = x_k + v_{k+1},
    y_k = x_k (heavy ball)   or   y_k = x_k + beta v_k (Nesterov).

Scaling regime: h = sqrt(eta), 1 - beta = lambda h with a fixed friction lambda > 0, time
t = k h and scaled velocity p = v / h. Then p_{k+1} = p_k - h (lambda p_k + grad f), x_{k+1} =
x_k + h p_{k+1}: a chain with step h whose limit is the underdamped (second-order) equation
below. This is the regime in which momentum changes the dynamics at leading order; with beta
fixed as eta -> 0 momentum SGD is, at order 1, plain SGD with learning rate eta / (1 - beta).
Li, Tai and E (2019) treat momentum SGD by the same one-step moment matching; the equations
here are derived in docs/theory.md §7 and checked by exact weak orders in the tests.

Models on the state (x, p), with c = Sigma^{1/2} (SME) or the noise columns c_k = -grad f_k of the
cylindrical noise (SMF, docs/theory.md §3), kappa = +1 (heavy ball) or -1 (Nesterov):

order 1:  dX = P dt,
          dP = -(lambda P + grad F) dt + sqrt(h) c dW;
order 2:  dX = [P - h/2 (lambda P + grad F)] dt  [+ h^{3/2}/2 c dW],
          dP = [-(lambda P + grad F) + h/2 (kappa Hess F P - lambda (lambda P + grad F))] dt
               + sqrt(h) [c  (+ h lambda/2 c - kappa h/2 D_P c)] dW.

Weak orders 1 and 2 in h = sqrt(eta). The drift terms are what order 2 needs (the one-step means and
second moments must agree to O(h^3), and SGD's second moments are h^2 Sigma in the velocity block plus
O(h^3)). The bracketed noise terms (``noise_correction``, D_P c the derivative of the noise coefficient
along P) match SGD's one-step covariance to O(h^4) as well: covariances, themselves O(h), then carry a
relative error O(h^2) instead of O(h).
"""
from __future__ import annotations

import numbers
import warnings
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import sympy as sp

from ..symbolic.noise_expansion import NoiseTemplate
from ..montecarlo.options import RunOptions, run_settings, user_stacklevel
from ..montecarlo.result import SimulationResult
from ..symbolic.models import default_eta, sme as _sme, smf as _smf
from ..symbolic.problem import Problem
from ..symbolic.sde import SDE, MatrixSqrt
from .._checks import as_expr
from ..symbolic.latex import sde_lines, wrap
from ..simulation import sgd as _sgd
from .._checks import numeric_values
from ..simulation.sde import prepare_x0
from .schedules import sgd_run_arguments

__all__ = ["Momentum", "momentum_model", "simulate_momentum_sgd", "friction", "beta_for", "momentum_latex",
           "DEFAULT_FRICTION", "momentum_rule"]

#: The friction symbol lambda (1 - beta = lambda sqrt(eta)).
DEFAULT_FRICTION = sp.Symbol("lambda", positive=True)


def friction(beta: float, eta: float) -> float:
    """lambda = (1 - beta) / sqrt(eta): the friction of momentum ``beta`` at learning rate ``eta``."""
    if not (0 <= beta < 1):
        raise ValueError(f"`beta` must lie in [0, 1); got {beta!r}.")
    if not (np.isfinite(eta) and eta > 0):
        raise ValueError(f"`eta` must be positive; got {eta!r}.")
    return (1.0 - beta) / np.sqrt(eta)


def beta_for(lam: float, eta: float) -> float:
    """beta = 1 - lambda sqrt(eta), the momentum that keeps the friction ``lam`` fixed."""
    b = 1.0 - float(lam) * np.sqrt(float(eta))
    if not (0 <= b < 1):
        raise ValueError(f"friction {lam!r} at eta = {eta!r} gives beta = {b:.4g} outside [0, 1): lower `eta`.")
    return b


@dataclass(frozen=True)
class Momentum:
    r"""The momentum rule: heavy ball or Nesterov, with a fixed ``beta`` or a fixed ``friction``.

    One object in place of the keywords ``beta``/``lam``, ``nesterov``, ``scaled`` and
    ``noise_correction`` (issue 16), taken by :func:`simulate_momentum_sgd` and
    :func:`smfsym.momentum_weak_error`.

    Parameters
    ----------
    beta : float in [0, 1), optional
        The momentum, the same at every learning rate.
    friction : float, optional
        lambda > 0 with 1 - beta = lambda sqrt(eta) (the underdamped scaling of docs/theory.md §7):
        beta then depends on eta (:func:`beta_for`). Give exactly one of ``beta`` and ``friction``;
        the studies, which vary eta, need the friction.
    nesterov : bool
        Nesterov's gradient at x + beta v (default: heavy ball, at x).
    scaled : bool
        States are (x, v / sqrt(eta)), the models' (X, P) (default), or (x, v). The studies compare in
        the scaled state.
    noise_correction : bool, optional
        The order-2 models' noise correction (see :func:`momentum_model`; default there); SGD ignores it.

    Examples
    --------
    >>> Momentum(beta=0.9).beta_at(0.01)
    0.9
    >>> round(Momentum(friction=1.0, nesterov=True).beta_at(0.01), 12)
    0.9
    >>> Momentum(beta=0.9, friction=1.0)
    Traceback (most recent call last):
    ...
    ValueError: give exactly one of `beta` and `friction`; got beta=0.9, friction=1.0.
    """

    beta: float | None = None
    friction: float | None = None
    nesterov: bool = False
    scaled: bool = True
    noise_correction: bool | None = None

    def __post_init__(self):
        if (self.beta is None) == (self.friction is None):
            raise ValueError(f"give exactly one of `beta` and `friction`; got beta={self.beta!r}, "
                             f"friction={self.friction!r}.")
        if self.beta is not None and not (isinstance(self.beta, (int, float, np.floating))
                                          and not isinstance(self.beta, bool) and 0 <= self.beta < 1):
            raise ValueError(f"`beta` must be a number in [0, 1); got {self.beta!r}.")
        if self.friction is not None:
            ok = isinstance(self.friction, numbers.Real) and not isinstance(self.friction, bool)
            if not (ok and np.isfinite(float(self.friction)) and float(self.friction) > 0):
                raise ValueError(f"`friction` (lambda, 1 - beta = lambda sqrt(eta)) must be a positive number; "
                                 f"got {self.friction!r}.")
        for name in ("nesterov", "scaled"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"`{name}` must be True or False; got {getattr(self, name)!r}.")
        if self.noise_correction is not None and not isinstance(self.noise_correction, (bool, np.bool_)):
            raise TypeError(f"`noise_correction` must be True, False or None; got {self.noise_correction!r}.")

    def beta_at(self, eta: float) -> float:
        """beta at the learning rate ``eta``: the given one, or 1 - friction sqrt(eta)."""
        return float(self.beta if self.beta is not None else beta_for(self.friction, eta))


#: Old keywords of the momentum entry points -> the Momentum field they fill.
_RULE_KEYWORDS = {"beta": "beta", "lam": "friction", "nesterov": "nesterov", "scaled": "scaled",
                  "noise_correction": "noise_correction"}


def momentum_rule(caller: str, momentum, legacy: dict, keywords: Sequence[str], number: str = "beta") -> Momentum:
    """``momentum`` (a :class:`Momentum`, or a number: its ``number`` field) with the old keywords among
    ``keywords`` popped from ``legacy`` (a ``DeprecationWarning``, the same numbers).

    Examples
    --------
    >>> momentum_rule("f", 0.5, {}, ("beta",))
    Momentum(beta=0.5, friction=None, nesterov=False, scaled=True, noise_correction=None)
    """
    old = {_RULE_KEYWORDS[k]: legacy.pop(k) for k in list(legacy) if k in keywords}
    if isinstance(momentum, Momentum):
        if old:
            raise TypeError(f"`{next(iter(old))}` is given twice, as a keyword and in `momentum`; give it in "
                            "`momentum`.")
        return momentum
    if momentum is not None:
        if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real):
            raise TypeError(f"`momentum` must be a smfsym.optimizers.Momentum or a number (its {number}); "
                            f"got {type(momentum).__name__}.")
        if number in old:
            raise TypeError(f"`{number}` is given twice, as `momentum` and as a keyword.")
        old = {number: momentum, **old}
        shown = [k for k in old if k != number]
    else:
        shown = list(old)
    if not any(k in old for k in ("beta", "friction")):
        raise TypeError(f"{caller}() missing the momentum rule: give "
                        f"`momentum=smfsym.optimizers.Momentum({number}=...)`.")
    if shown:
        key = next(k for k, f in _RULE_KEYWORDS.items() if f == shown[0])
        warnings.warn(f"{caller}({key}=...): the momentum rule goes in "
                      f"`momentum=smfsym.optimizers.Momentum({shown[0]}=...)`; the keywords go in the next release.",
                      DeprecationWarning, stacklevel=user_stacklevel())
    return Momentum(**old)


def _momentum_symbols(problem: Problem):
    names = {s.name for s in problem.loss.free_symbols} | {p.name for p in problem.params}
    out = []
    for p in problem.params:
        name = "p_" + p.name
        while name in names:
            name += "_"
        out.append(sp.Symbol(name, real=True))
    return tuple(out)


def momentum_model(problem: Problem, kind: str = "smf", order: int = 2, *, nesterov: bool = False,
                   eta: Any = None, lam: Any = None, degree: int | None = None,
                   velocity: Sequence[sp.Symbol] | None = None, noise_correction: bool | None = None) -> SDE:
    r"""The SME or SMF of momentum SGD in the scaling 1 - beta = lambda sqrt(eta), t = k sqrt(eta).

    State (x, p) with p = v / sqrt(eta); see the module docstring and docs/theory.md §7.

    Parameters
    ----------
    problem : Problem
    kind : {"smf", "sme", "gf"}
        "gf" is the noise-free (heavy-ball ODE) model.
    order : {1, 2}
        Weak order in h = sqrt(eta).
    nesterov : bool
        Nesterov's gradient at x + beta v (same order-1 model; other order-2 terms).
    eta, lam : symbol or number, optional
        Learning rate and friction (default symbols eta, lambda).
    velocity : sequence of sympy.Symbol, optional
        Names for p (default p_x for a parameter x).
    noise_correction : bool, optional
        Order 2 only (default: on for the SMF, off for the SME). The order-2 drift alone gives weak
        order 2; the noise correction also matches SGD's one-step covariance to O(h^4), so that
        covariances, which are themselves O(h), come out with relative error O(h^2) instead of O(h).
        It differentiates the noise coefficient, which a numeric Sigma^{1/2} does not allow.

    Examples
    --------
    >>> import sympy as sp, smfsym
    >>> from smfsym.optimizers import momentum_model
    >>> x = sp.Symbol("x")
    >>> p = smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x])
    >>> m = momentum_model(p, "smf", order=1)
    >>> m.state, list(m.drift)
    ((x, p_x), [p_x, -lambda*p_x - x])
    >>> m.diffusion.T
    Matrix([[0, eta**(1/4)]])
    """
    if not isinstance(problem, Problem):
        raise TypeError(f"`problem` must be a smfsym.Problem; got {type(problem).__name__}.")
    if order not in (1, 2):
        raise ValueError(f"`order` must be 1 or 2; got {order!r}.")
    if kind not in ("smf", "sme", "gf"):
        raise ValueError(f"`kind` must be 'smf', 'sme' or 'gf'; got {kind!r}.")
    eta = default_eta() if eta is None else as_expr(eta)
    lam = DEFAULT_FRICTION if lam is None else as_expr(lam)
    x = problem.params
    d = len(x)
    P = _momentum_symbols(problem) if velocity is None else tuple(velocity)
    if len(P) != d or not all(isinstance(s, sp.Symbol) for s in P):
        raise ValueError(f"`velocity` must be {d} sympy symbols; got {velocity!r}.")
    h = sp.sqrt(eta)
    kappa = -1 if nesterov else 1
    g = problem.grad_F
    Pm = sp.Matrix(P)
    fr = lam * Pm + sp.Matrix(g)  # lambda P + grad F
    if order == 1:
        bx, bp = Pm, -fr
    else:
        bx = Pm - h / 2 * fr
        bp = -fr + h / 2 * (kappa * sp.Matrix(problem.hessian) * Pm - lam * fr)
    drift = [sp.expand(e) for e in list(bx) + list(bp)]
    state = tuple(x) + P
    name = ("nesterov" if nesterov else "heavy-ball") + " momentum " + kind
    kw = dict(eta=eta, model=name, order=order, problem=problem)
    if kind == "gf":
        return SDE(drift, None, state, **kw)
    root_h = eta ** sp.Rational(1, 4)
    if noise_correction is None:
        noise_correction = order == 2 and kind == "smf"
    if noise_correction and order != 2:
        raise ValueError("`noise_correction` applies to order 2 only.")

    def lift(C):  # noise coefficient c (d x m, functions of x) -> the 2d x m diffusion
        C = sp.Matrix(C)
        if not noise_correction:
            return sp.Matrix.vstack(sp.zeros(*C.shape), root_h * C)
        DPC = sp.Matrix(C.shape[0], C.shape[1], lambda i, k: sum(sp.diff(C[i, k], xi) * pi for xi, pi in zip(x, P)))
        top = root_h * h / 2 * C
        bottom = root_h * ((1 + h * lam / 2) * C - kappa * h / 2 * DPC)
        return sp.Matrix.vstack(top, bottom).applyfunc(sp.expand)

    if kind == "sme":
        base = _sme(problem, 1, eta)
        if base.noise_kind == "sqrt":
            if noise_correction:
                raise ValueError("`noise_correction` needs the derivative of Sigma^{1/2}, which has no closed form "
                                 "here (numeric matrix square root); use kind='smf' or noise_correction=False.")
            S = sp.zeros(2 * d, 2 * d)
            S[d:, d:] = base.diffusion.sigma
            return SDE(drift, MatrixSqrt(sp.ImmutableMatrix(S), root_h), state, **kw)
        C = sp.Matrix(base.diffusion) / sp.sqrt(eta)
        return SDE(drift, sp.ImmutableMatrix(lift(C.applyfunc(sp.simplify))), state, **kw)
    base = _smf(problem, 1, eta, degree=degree)
    if base.noise_kind == "template":
        # data-set columns scale * sqrt(w_i) (grad F - grad f(x, xi_i)): lift the symbolic column, scale kept apart
        lifted = lift(sp.Matrix(base.diffusion.column)) / root_h
        # without the noise correction the columns are (0, C): L = (0; I); with it they hold D_P C, data-dependent
        L = False if noise_correction else sp.ImmutableMatrix(sp.Matrix.vstack(sp.zeros(d, d), sp.eye(d)))
        return SDE(drift, NoiseTemplate(sp.ImmutableMatrix(lifted), base.diffusion.law, L), state, chaos=base.chaos,
                   noise_scale=base.noise_scale / sp.sqrt(eta) * root_h, **kw)
    C = sp.Matrix(base.diffusion) / sp.sqrt(eta)
    return SDE(drift, sp.ImmutableMatrix(lift(C)), state, chaos=base.chaos, **kw)


def momentum_latex(sde: SDE, environment: str | None = "aligned") -> str:
    r"""LaTeX of a momentum model in the style of :func:`smfsym.symbolic.latex.sde_lines`, with the regime stated."""

    lines = sde_lines(sde)
    lines.insert(1, r"&\text{scaling: } 1-\beta = \lambda\sqrt{\eta},\ t = k\sqrt{\eta},\ P = v/\sqrt{\eta}")
    return wrap(lines, environment)


def simulate_momentum_sgd(problem: Problem, x0, n_steps: int, eta: float, momentum: Momentum | float | None = None,
                          *, v0=None, n_paths: int = 10_000, seed=None, save_at=None, batch_size: int | None = None,
                          values: Mapping | None = None, options: RunOptions | None = None,
                          **legacy) -> SimulationResult:
    r"""Simulate momentum SGD; an (n, d) ``x0`` runs n chains sharing their samples (n-point motion).

    v_{k+1} = beta v_k - eta grad f(y_k, xi), x_{k+1} = x_k + v_{k+1}, y_k = x_k or x_k + beta v_k.

    Parameters
    ----------
    x0 : array_like (d,) or (n, d)
    momentum : Momentum or float
        The rule (:class:`Momentum`: ``beta`` or ``friction``, ``nesterov``, ``scaled``: states
        (x, v / sqrt(eta)), the models' (X, P), or (x, v)); a number is ``Momentum(beta=number)``.
        The keywords ``beta``, ``nesterov`` and ``scaled`` still work for one release (a
        ``DeprecationWarning``, the same numbers).
    v0 : array_like, optional
        Initial velocity (default 0), same shape as ``x0``.
    Other parameters as for :func:`smfsym.simulate_sgd`; ``result.t`` is step * sqrt(eta).

    Examples
    --------
    beta = 0 is plain SGD:

    >>> import numpy as np, sympy as sp, smfsym
    >>> from smfsym.optimizers import simulate_momentum_sgd
    >>> x = sp.Symbol("x")
    >>> p = smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x])
    >>> a = simulate_momentum_sgd(p, [1.0], 5, 0.1, 0.0, n_paths=50, seed=2)
    >>> b = smfsym.simulate_sgd(p, [1.0], 5, 0.1, n_paths=50, seed=2)
    >>> bool(np.allclose(a.states[..., 0], b.states[..., 0], rtol=1e-14))
    True
    >>> rule = smfsym.optimizers.Momentum(friction=1.0, nesterov=True)
    >>> c = simulate_momentum_sgd(p, [1.0], 5, 0.1, rule, n_paths=50)
    >>> c.extra["nesterov"], round(c.extra["beta"], 6)
    (True, 0.683772)
    """
    legacy = dict(legacy)
    rule = momentum_rule("simulate_momentum_sgd", momentum, legacy, ("beta", "nesterov", "scaled"))
    (chunk_size, max_memory, max_steps, on_nonfinite, blowup_threshold, executor, progress, save_at, functions,
     store) = run_settings("simulate_momentum_sgd", options, save_at, legacy, backends=True)

    if not isinstance(problem, Problem):
        raise TypeError(f"`problem` must be a smfsym.Problem; got {type(problem).__name__}.")
    if not np.isfinite(eta) or eta <= 0:
        raise ValueError(f"`eta` must be positive; got {eta!r}.")
    beta, nesterov, scaled = rule.beta_at(eta), bool(rule.nesterov), bool(rule.scaled)
    B, idx = sgd_run_arguments(problem, n_steps, batch_size, save_at, max_steps)
    vals = numeric_values(values, _sgd.problem_symbols(problem))
    d = problem.dim
    x0 = prepare_x0(x0, d)
    v0 = np.zeros_like(x0) if v0 is None else np.array(v0, dtype=float)
    if v0.shape != x0.shape or not np.all(np.isfinite(v0)):
        raise ValueError(f"`v0` must be finite with the shape of `x0` {x0.shape}; got {v0.shape}.")
    h = float(np.sqrt(eta))
    unit = h if scaled else 1.0
    z0 = np.concatenate([x0, v0 / unit], axis=-1)
    task = _sgd.SGDTask(problem, eta, B, vals, _sgd.MomentumRule(beta, eta, nesterov, unit, d))
    res = _sgd.run_rule(task, z0, np.full(n_steps, h), idx, np.array(idx) * h, dict(
        n_paths=n_paths, seed=seed, chunk_size=chunk_size, functions=functions, store=store,
        on_nonfinite=on_nonfinite, progress=progress, max_steps=max_steps, blowup_threshold=blowup_threshold,
        max_memory=max_memory, executor=executor, backend=options.backend if options is not None else "numpy",
        scheme="momentum-sgd", dt_label=h))
    res.extra.update(steps=np.array(idx), batch_size=B, beta=beta, nesterov=nesterov, scaled=scaled,
                     friction=(1 - beta) / h)
    return res
