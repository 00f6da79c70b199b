r"""Scaling regimes whose SDE is not an expansion of the update map: Malladi et al.'s regime for
RMSprop and Adam, and SGD with a scaled gradient noise (docs/theory.md §11).

Malladi, Lyu, Panigrahi, Arora (NeurIPS 2022) take, for a learning rate eta,

    1 - beta = c eta^2,   eps = eps_0 / eta,   gradient noise of scale sigma = sigma_0 / eta,

(small batches: the mini-batch gradient is grad F + sigma (grad f - grad F), sigma = 1/sqrt(B) for a
batch of B samples of the problem's law) and time t = k eta^2. With u = v / sigma^2 (the second-moment
estimate in units of the noise) the optimizer converges weakly, with order 1 in eta^2, to

    RMSprop:  dX = -P^{-1} (grad F dt + sigma_0 Sigma^{1/2} dW),   du = c (diag Sigma - u) dt,
              P = sigma_0 diag(u)^{1/2} + eps_0,
    Adam:     dX = -(sqrt(g2) / g1) P^{-1} m dt,   dm = c1 (grad F - m) dt + sigma_0 c1 Sigma^{1/2} dW,
              du = c2 (diag Sigma - u) dt,   P = sigma_0 diag(u)^{1/2} + eps_0 sqrt(g2),
              g_i = 1 - exp(-c_i t),

Sigma the covariance of one sample's gradient. The increment of one step is O(eta) = O(sqrt(h)) in
its noise and O(h) in its mean (h = eta^2), so it is *not* an :class:`~smfsym.optimizers.update_map.UpdateMap`
(whose increments are h A + h^2 B and whose SDE noise vanishes as h -> 0): here the SDE does not depend on
eta at all. A :class:`RegimeMap` therefore carries the exact discrete update (simulated with the update
maps' compiled step, :class:`~smfsym.optimizers.update_map.UpdateMapStep`, on the Monte Carlo driver) and
the SDE in closed form, both in one state, so that one starting point serves both.
"""
from __future__ import annotations

import warnings
from typing import Any, Mapping, Sequence

import numpy as np
import sympy as sp

from .._checks import as_expr, as_number_or_expr, as_symbol_tuple, numeric_values
from ..montecarlo.checks import CHAIN_REMEDY, check_int, check_positive, check_steps
from ..montecarlo.driver import Job, Paths, run
from ..montecarlo.grid import StepGrid
from ..montecarlo.options import RunOptions, SaveAt, run_settings
from ..montecarlo.result import SimulationResult
from ..montecarlo.seeds import resolve_seed
from ..simulation.sde import check_save_steps, prepare_x0
from ..symbolic.models import default_eta
from ..symbolic.problem import Problem
from ..symbolic.sde import SDE, MatrixSqrt
from ..backends import get_backend
from .update_map import DeviceUpdateMapStep, UpdateMapTask

__all__ = ["RegimeMap", "malladi_rmsprop", "malladi_adam", "noisy_sgd", "simulate_regime", "SkewnessWarning"]


class SkewnessWarning(UserWarning):
    """The gradient noise is skewed: Malladi et al.'s RMSprop SDE is then of weak order 1/2 only in eta^2."""


def _check_skewness(problem: Problem, name: str) -> None:
    """Warn when a coordinate of the gradient noise has a third moment that is not identically 0.

    In RMSprop the noise sigma0 z / eta of a step meets the same step's v: the mean increment of x gains
    eta^3 sigma0 c P'(u) / P(u)^2 E[z^3], an error O(eta) = O(sqrt h) over the 1/eta^2 steps to a time
    (Malladi et al. assume the skewness small). In Adam the same sample moves m and u: their increments
    gain the covariance c1 c2 sigma0 eta^3 E[z^3], again O(sqrt h) over a unit of time. Checked where it
    is cheap: losses polynomial in the data.
    """
    if not problem.is_polynomial:
        return
    skewed = [str(x) for x, g, G in zip(problem.params, problem.grad_f, problem.grad_F)
              if sp.expand(problem.mean(sp.expand((g - G) ** 3))) != 0]
    if skewed:
        warnings.warn(f"{name}: the gradient noise of {skewed} has a third moment that is not 0: the step's mean "
                      "(RMSprop) or the covariance of m and v (Adam) gains an eta^3 term and the SDE is then a weak "
                      "approximation of order 1/2 in h = eta^2, not 1 "
                      "(its order 1 needs symmetric, or low-skewness, noise).", SkewnessWarning, stacklevel=3)


class RegimeMap:
    r"""An optimizer step in a scaling regime, with its limit SDE in closed form.

    Parameters
    ----------
    problem : Problem
        Per-sample loss and data law (batch size 1: the batch enters through the noise scale).
    state : sequence of sympy.Symbol
        ``problem.params`` first, then auxiliary variables.
    update : sequence of sympy expressions
        The exact next state, in the state, the data, ``eta`` and ``constants``.
    sde_drift, sde_diffusion :
        The limit SDE's coefficients in the state (and constants): drift, and a matrix or
        :class:`~smfsym.symbolic.sde.MatrixSqrt`.
    time_power : int
        Time per step is eta**time_power (1: t = k eta; 2: Malladi's t = k eta^2).
    constants : sequence of sympy.Symbol
        Hyper-parameters left symbolic (numbers go in ``values=``).
    eta : sympy.Symbol
    name : str
    time_symbol : sympy.Symbol, optional
        A state variable holding the time (Adam's bias correction: its SDE is singular at t = 0).

    Examples
    --------
    >>> import sympy as sp, smfsym
    >>> from smfsym.optimizers.regimes import malladi_rmsprop
    >>> x = sp.Symbol("x")
    >>> m = malladi_rmsprop(smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x]), c=1, sigma0=1, eps0=1)
    >>> list(m.sde().drift)
    [-x/(sqrt(u_x) + 1), 1 - u_x]
    """

    def __init__(self, problem: Problem, state: Sequence[sp.Symbol], update: Sequence, sde_drift: Sequence,
                 sde_diffusion: Any, *, time_power: int, constants: Sequence[sp.Symbol] = (), eta: Any = None,
                 name: str = "custom", time_symbol: sp.Symbol | None = None):
        if not isinstance(problem, Problem):
            raise TypeError(f"`problem` must be a smfsym.Problem; got {type(problem).__name__}.")
        self.problem = problem
        self.state = as_symbol_tuple(state, "state")
        d = len(problem.params)
        if self.state[:d] != tuple(problem.params) or len(set(self.state)) != len(self.state):
            raise ValueError(f"`state` must start with the problem's parameters {list(problem.params)} and not "
                             f"repeat a symbol; got {list(self.state)}.")
        self.eta = default_eta() if eta is None else eta
        self.update = sp.ImmutableMatrix([as_expr(u, "update") for u in update])
        if self.update.shape[0] != len(self.state):
            raise ValueError(f"`update` must have one entry per state variable ({len(self.state)}); "
                             f"got {self.update.shape[0]}.")
        allowed = {str(s) for s in (set(self.state) | set(problem.data) | set(problem.constants)
                                    | set(problem.law_parameters) | set(constants) | {self.eta})}
        stray = sorted({str(s) for s in self.update.free_symbols} - allowed)
        if stray:
            raise ValueError(f"`update` uses symbols that are neither state, data, eta nor constants: {stray}.")
        if time_power not in (1, 2):
            raise ValueError(f"`time_power` must be 1 (t = k eta) or 2 (t = k eta^2); got {time_power!r}.")
        self.time_power = time_power
        self.constants = tuple(constants)
        self.name = str(name)
        self.time_symbol = time_symbol
        self._sde = SDE(sde_drift, sde_diffusion, self.state, eta=self.eta, model=f"{self.name}_sde", order=1)
        self._sde.regime_map = self

    def sde(self) -> SDE:
        """The regime's limit SDE (weak order 1 in the time step h = eta**time_power)."""
        return self._sde

    def step_time(self, eta: float) -> float:
        """The time one step takes: eta or eta^2."""
        return float(eta) ** self.time_power

    def simulate(self, z0, n_steps: int, eta: float, **kwargs) -> SimulationResult:
        """The discrete optimizer: :func:`simulate_regime` on this map."""
        return simulate_regime(self, z0, n_steps, eta, **kwargs)

    def __repr__(self) -> str:
        return f"RegimeMap({self.name!r}, state={list(self.state)}, t = k eta^{self.time_power})"


def _noisy_gradient(problem: Problem, scale: sp.Expr) -> list:
    """grad F + scale (grad f - grad F): a per-sample gradient whose noise is multiplied by ``scale``."""
    if problem.batch_size != 1:
        raise ValueError(f"`problem` must have batch size 1 (the batch enters through the noise scale: "
                         f"sigma = 1/sqrt(B)); got batch_size = {problem.batch_size}.")
    return [G + scale * (g - G) for g, G in zip(problem.grad_f, problem.grad_F)]


def _aux(problem: Problem, prefix: str, positive: bool = True) -> tuple:
    return tuple(sp.Symbol(f"{prefix}_{x.name}", positive=True) if positive else sp.Symbol(f"{prefix}_{x.name}")
                 for x in problem.params)


def _noise_root(problem: Problem):
    """Sigma^{1/2} as an explicit diagonal matrix when Sigma is diagonal, else None."""
    S = problem.sigma
    d = S.shape[0]
    if all(S[i, j] == 0 for i in range(d) for j in range(d) if i != j):
        return sp.diag(*[sp.sqrt(S[i, i]) for i in range(d)])
    return None


def _diffusion(problem: Problem, rows: Sequence[int], n: int, left: Sequence[sp.Expr]):
    """n x d diffusion whose row rows[i] is left[i] * (Sigma^{1/2})_i (zero elsewhere); a MatrixSqrt of
    the state covariance when Sigma is not diagonal."""
    d = len(problem.params)
    root = _noise_root(problem)
    if root is not None:
        D = sp.zeros(n, d)
        for i, r in enumerate(rows):
            for j in range(d):
                D[r, j] = left[i] * root[i, j]
        return sp.ImmutableMatrix(D)
    S = problem.sigma
    C = sp.zeros(n, n)
    for i, r in enumerate(rows):
        for j, s in enumerate(rows):
            C[r, s] = left[i] * left[j] * S[i, j]
    return MatrixSqrt(sp.ImmutableMatrix(C), sp.S.One)


def _hyper(value, name):
    return as_number_or_expr(value, name, positive=True)


def _symbols_of(*values) -> list:
    return [v for v in values if isinstance(v, sp.Symbol)]


def malladi_rmsprop(problem: Problem, c: Any = 1, sigma0: Any = 1, eps0: Any = sp.Rational(1, 10),
                    eta: Any = None) -> RegimeMap:
    r"""RMSprop in Malladi et al.'s regime: 1 - beta = c eta^2, eps = eps0 / eta, noise sigma0 / eta, t = k eta^2.

    PyTorch's convention (v updated first, ``eps`` outside the root). The state is (x, u) with
    u = v / sigma^2 (named ``u_<x>``); a run from v = 0 (PyTorch's start) is u_0 = 0. The SDE is of weak
    order 1 in eta^2 for symmetric gradient noise; skewed noise adds an eta^3 term to the mean step (order
    1/2 only), reported by a :class:`SkewnessWarning` (checked for losses polynomial in the data).

    Examples
    --------
    >>> import sympy as sp, smfsym
    >>> x = sp.Symbol("x")
    >>> m = malladi_rmsprop(smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x]), c=2, sigma0=1, eps0=1)
    >>> m.update[1]
    2*eta**2*(eta**2*(-xi/eta + x)**2 - u_x) + u_x
    """
    eta = default_eta() if eta is None else eta
    c, sigma0, eps0 = _hyper(c, "c"), _hyper(sigma0, "sigma0"), _hyper(eps0, "eps0")
    _check_skewness(problem, "malladi_rmsprop")
    u = _aux(problem, "u")
    g = _noisy_gradient(problem, sigma0 / eta)
    u_new = [ui + c * eta**2 * (eta**2 * gi**2 / sigma0**2 - ui) for ui, gi in zip(u, g)]
    x_new = [x - eta**2 * gi / (sigma0 * sp.sqrt(un) + eps0) for x, gi, un in zip(problem.params, g, u_new)]
    P = [sigma0 * sp.sqrt(ui) + eps0 for ui in u]
    S = problem.sigma
    d = len(problem.params)
    drift = [-G / p for G, p in zip(problem.grad_F, P)] + [c * (S[i, i] - u[i]) for i in range(d)]
    diffusion = _diffusion(problem, range(d), 2 * d, [-sigma0 / p for p in P])
    return RegimeMap(problem, tuple(problem.params) + u, x_new + u_new, drift, diffusion, time_power=2,
                     constants=_symbols_of(c, sigma0, eps0), eta=eta, name="malladi_rmsprop")


def malladi_adam(problem: Problem, c1: Any = 1, c2: Any = 1, sigma0: Any = 1, eps0: Any = sp.Rational(1, 10),
                 eta: Any = None) -> RegimeMap:
    r"""Adam in Malladi et al.'s regime: 1 - beta_i = c_i eta^2, eps = eps0 / eta, noise sigma0 / eta, t = k eta^2.

    PyTorch's convention (moments updated first, bias corrections 1 - beta_i^k with k the step count
    after the update, ``eps`` outside the root). The state is (x, m, u, t) with u = v / sigma^2 and t
    the time; the SDE's bias corrections 1 - exp(-c_i t) make it singular at t = 0, so runs of the SDE
    start at t_0 > 0 (the discrete optimizer starts anywhere, t = 0 included). As for RMSprop, the SDE is of
    weak order 1 in eta^2 for symmetric gradient noise: the same sample drives m and u, so skewed noise gives
    them a covariance c1 c2 sigma0 eta^3 E[z^3] per step (O(sqrt h) over a unit of time, where the SDE has
    none), reported by a :class:`SkewnessWarning`.
    """
    eta = default_eta() if eta is None else eta
    c1, c2 = _hyper(c1, "c1"), _hyper(c2, "c2")
    sigma0, eps0 = _hyper(sigma0, "sigma0"), _hyper(eps0, "eps0")
    _check_skewness(problem, "malladi_adam")
    m, u = _aux(problem, "m", positive=False), _aux(problem, "u")
    t = sp.Symbol("t", nonnegative=True)
    g = _noisy_gradient(problem, sigma0 / eta)
    m_new = [mi + c1 * eta**2 * (gi - mi) for mi, gi in zip(m, g)]
    u_new = [ui + c2 * eta**2 * (eta**2 * gi**2 / sigma0**2 - ui) for ui, gi in zip(u, g)]
    k = t / eta**2 + 1
    bc1, bc2 = 1 - (1 - c1 * eta**2) ** k, 1 - (1 - c2 * eta**2) ** k
    x_new = [x - eta**2 * (mn / bc1) / (sigma0 * sp.sqrt(un / bc2) + eps0)
             for x, mn, un in zip(problem.params, m_new, u_new)]
    g1, g2 = 1 - sp.exp(-c1 * t), 1 - sp.exp(-c2 * t)
    P = [sigma0 * sp.sqrt(ui) + eps0 * sp.sqrt(g2) for ui in u]
    S = problem.sigma
    d = len(problem.params)
    drift = ([-(sp.sqrt(g2) / g1) * mi / p for mi, p in zip(m, P)] + [c1 * (G - mi) for G, mi in zip(problem.grad_F, m)]
             + [c2 * (S[i, i] - u[i]) for i in range(d)] + [sp.S.One])
    diffusion = _diffusion(problem, range(d, 2 * d), 3 * d + 1, [sigma0 * c1] * d)
    return RegimeMap(problem, tuple(problem.params) + m + u + (t,), x_new + m_new + u_new + [t + eta**2], drift,
                     diffusion, time_power=2, constants=_symbols_of(c1, c2, sigma0, eps0), eta=eta,
                     name="malladi_adam", time_symbol=t)


def noisy_sgd(problem: Problem, sigma: Any = 1, eta: Any = None) -> RegimeMap:
    r"""SGD with its gradient noise multiplied by ``sigma`` (a batch of B samples: sigma = 1/sqrt(B)), t = k eta.

    Its SDE of order 1, dX = -grad F dt + sqrt(eta) sigma Sigma^{1/2} dW, depends on eta and B only through
    eta / B: the linear scaling rule.

    Examples
    --------
    >>> import sympy as sp, smfsym
    >>> x = sp.Symbol("x")
    >>> noisy_sgd(smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x]), sigma=sp.Rational(1, 2)).sde().diffusion
    Matrix([[-sqrt(eta)/2]])
    """
    eta = default_eta() if eta is None else eta
    sigma = _hyper(sigma, "sigma")
    g = _noisy_gradient(problem, sigma)
    d = len(problem.params)
    x_new = [x - eta * gi for x, gi in zip(problem.params, g)]
    diffusion = _diffusion(problem, range(d), d, [-sp.sqrt(eta) * sigma] * d)
    return RegimeMap(problem, problem.params, x_new, [-G for G in problem.grad_F], diffusion, time_power=1,
                     constants=_symbols_of(sigma), eta=eta, name="noisy_sgd")


def simulate_regime(rmap: RegimeMap, z0, n_steps: int, eta: float, *, n_paths: int = 10_000, seed=None,
                    save_at=None, values: Mapping | None = None, options: RunOptions | None = None) -> SimulationResult:
    """Simulate the discrete optimizer of a :class:`RegimeMap`, vectorised over paths.

    ``result.t`` is step * eta**time_power (the SDE's time). ``save_at`` holds step numbers (or a
    :class:`~smfsym.SaveAt` of them). Blow-ups raise :class:`smfsym.BlowUpError` (or are masked and
    counted with ``RunOptions(on_nonfinite="mask")``), never returned as NaN. ``RunOptions(backend=...)``
    runs the steps on an array back end (:mod:`smfsym.backends`; the samples are drawn there), as
    :func:`smfsym.simulate_update_map` does.

    Examples
    --------
    >>> import sympy as sp, smfsym
    >>> x = sp.Symbol("x")
    >>> m = malladi_rmsprop(smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x]))
    >>> r = simulate_regime(m, [1.0, 1.0], 16, 0.25, n_paths=100, seed=0)
    >>> float(r.t[-1])
    1.0
    """
    (chunk_size, max_memory, max_steps, on_nonfinite, blowup_threshold, executor, progress, save_at, functions,
     store) = run_settings("simulate_regime", options, save_at, {},
                           supported=("chunk_size", "max_memory", "max_steps", "on_nonfinite", "blowup_threshold",
                                      "executor", "progress"), backends=True)
    backend = get_backend(options.backend if options is not None else "numpy")
    if not isinstance(rmap, RegimeMap):
        raise TypeError(f"`rmap` must be a smfsym RegimeMap (e.g. malladi_rmsprop(problem)); got "
                        f"{type(rmap).__name__}.")
    eta = check_positive(eta, "eta")
    n_steps, n_paths = check_steps(check_int(n_steps, "n_steps"), max_steps), check_int(n_paths, "n_paths")
    seed = resolve_seed(seed)
    known = set(rmap.problem.law_parameters) | set(rmap.problem.constants) | set(rmap.constants)
    vals = numeric_values(values, known)
    missing = sorted(str(s) for s in rmap.constants if s not in vals)
    if missing:
        raise ValueError(f"`values` must give numbers for the map's constants {missing}.")
    z0 = prepare_x0(z0, len(rmap.state), "z0")
    idx = [n_steps] if save_at is None else check_save_steps(save_at, n_steps)
    h = rmap.step_time(eta)
    task = UpdateMapTask(rmap, eta, vals)
    step = task.build()
    if backend.name != "numpy":  # the same update, lambdified for the back end; samples drawn on the device
        step = DeviceUpdateMapStep(rmap, eta, vals, backend)
    grid = StepGrid.uniform(n_steps, h, idx)
    per_path = 8 * 8 * (len(rmap.state) + len(step.update.data_symbols)) * (z0.shape[0] if z0.ndim == 2 else 1)
    job = Job(step=step, step_sizes=grid, save_index=idx, times=grid.times, scheme=rmap.name, dt_label=h,
              time_label="t", task=task, per_path_bytes=per_path, remedy=CHAIN_REMEDY)
    opts = RunOptions(chunk_size=chunk_size, on_nonfinite=on_nonfinite, progress=progress, max_memory=max_memory,
                      blowup_threshold=blowup_threshold, executor=executor, backend=backend)
    res = run(job, z0, paths=Paths(n_paths, seed), save=SaveAt(functions=functions, store=store), options=opts)
    res.extra.update(steps=np.array(idx), eta=eta)
    return res
