"""Simulating SDEs (gradient flow, SME, SMF) and their n-point motions."""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np
import sympy as sp

from ._checks import numeric_values
from .engine import SimulationResult, draw_normal, run
from .numeric import NumericSDE
from .sde import SDE
from .solvers import get_solver

__all__ = ["simulate", "prepare_x0", "time_grid"]


def prepare_x0(x0, d: int) -> np.ndarray:
    """``x0`` as (d,) or (n, d) float array, validated."""
    try:
        arr = np.array(x0, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"`x0` must be numeric, of shape ({d},) or (n, {d}); got {x0!r}.") from None
    if d == 1 and arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim not in (1, 2) or arr.shape[-1] != d:
        raise ValueError(f"`x0` must have shape ({d},) or (n, {d}) (n starting points); got {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError("`x0` must be finite.")
    return arr


def time_grid(t_end: float, dt: float, save_at) -> tuple:
    """Step sizes, save indices and times: equal steps <= dt between consecutive save times."""
    if not np.isfinite(t_end) or t_end <= 0:
        raise ValueError(f"`t_end` must be positive; got {t_end!r}.")
    if not np.isfinite(dt) or dt <= 0:
        raise ValueError(f"`dt` must be positive; got {dt!r}.")
    saves = np.array([t_end] if save_at is None else np.atleast_1d(np.asarray(save_at, dtype=float)))
    if saves.size == 0:
        raise ValueError("`save_at` must hold at least one time.")
    out = saves[(saves < 0) | (saves > t_end * (1 + 1e-12))]
    if out.size:
        raise ValueError(f"`save_at` times must lie in [0, t_end = {t_end}]; got {out.tolist()}.")
    return grid(np.unique(np.clip(saves, 0, t_end)), dt)


def grid(saves, dt):
    """Equal steps <= dt between consecutive sorted save times; the save indices (also in generated code)."""
    steps, index, prev = [], [], 0.0
    for s in saves:
        n = int(np.ceil((s - prev) / dt - 1e-9)) if s > prev else 0
        steps += [(s - prev) / n] * n
        index.append(len(steps))
        prev = s
    return np.array(steps), index, saves


def _known_symbols(sde) -> set:
    known = set(sde.free_symbols)
    if isinstance(sde.eta, sp.Symbol):
        known.add(sde.eta)
    if sde.problem is not None:
        known |= set(sde.problem.law_parameters) | set(sde.problem.constants)
    return known


def simulate(sde: SDE, x0, t_end: float, *, eta: float | None = None, n_paths: int = 10_000,
             dt: float | None = None, scheme: Any = "euler", seed=None, save_at: Sequence[float] | None = None,
             values: Mapping | None = None, chunk_size: int | None = None,
             functions: Mapping[str, Callable] | None = None, store: bool = True,
             on_nonfinite: str = "raise", progress: bool | None = None) -> SimulationResult:
    """Simulate an SDE (or its n-point motion) by Monte Carlo.

    Parameters
    ----------
    sde : SDE
        From :func:`smfsym.sme`, :func:`smfsym.smf`, :func:`smfsym.gradient_flow` or built by hand.
    x0 : array_like, shape (d,) or (n, d)
        Start; an (n, d) array runs the n-point motion: n starts driven by the same noise.
    t_end : float
        Horizon (SGD step k corresponds to t = k eta).
    eta : float, optional
        The learning rate, substituted for ``sde.eta``.
    n_paths : int
    dt : float, optional
        Solver step, independent of eta (default eta / 10).
    scheme : str, Solver class or instance
        "euler" (weak order 1) or "weak2" (weak order 2).
    seed : int, SeedSequence or Generator
        Same seed, same numbers, whatever ``chunk_size``.
    save_at : sequence of float, optional
        Times to save (default ``[t_end]``); the grid is adapted to hit them.
    values : mapping, optional
        Numbers for constants and law parameters.
    functions : mapping name -> callable, optional
        Statistics streamed at every saved time: ``f(states)`` with states of shape
        ``(P, [n,] d)`` returning ``(P,)`` or ``(P, k)``.
    store : bool
        Keep all states (bounded by memory; stream with ``store=False``).
    on_nonfinite : {"raise", "mask"}
    progress : bool, optional
        tqdm bar; default only on an interactive terminal.

    Examples
    --------
    >>> import sympy as sp, smfsym
    >>> x = sp.Symbol("x")
    >>> xi = smfsym.normal("xi")
    >>> flow = smfsym.smf(smfsym.Problem((x - xi) ** 2 / 2, [x]), order=2)
    >>> res = smfsym.simulate(flow, x0=[1.0], t_end=1.0, eta=0.1, n_paths=2000, seed=1)
    >>> res.states.shape, res.success
    ((1, 2000, 1), True)
    """
    if not isinstance(sde, SDE):
        raise TypeError(f"`sde` must be a smfsym.SDE; got {type(sde).__name__}.")
    vals = numeric_values(values, _known_symbols(sde))
    if eta is not None:
        if not np.isfinite(eta) or eta <= 0:
            raise ValueError(f"`eta` must be positive; got {eta!r}.")
        vals[sde.eta] = float(eta)
    elif isinstance(sde.eta, sp.Symbol) and sde.eta in sde.free_symbols:
        raise ValueError(f"`eta` must be given: the SDE's coefficients contain {sde.eta}.")
    if dt is None:
        if eta is None:
            raise ValueError("`dt` must be given when `eta` is not (the default dt is eta / 10).")
        dt = eta / 10
    x0 = prepare_x0(x0, sde.dim)
    steps, index, times = time_grid(float(t_end), float(dt), save_at)
    solver = get_solver(scheme)
    nsde = NumericSDE(sde, vals)
    solver.prepare(nsde)
    if sde.chaos is not None and not sde.chaos.exact:
        from .chaos import warn_if_low

        warn_if_low(sde.chaos, np.atleast_2d(x0), vals)
    m, k = nsde.m, solver.n_draws

    def step(X, h, gens, sizes):
        Z = draw_normal(gens, sizes, (k, m)) if m else np.zeros((X.shape[0], k, 0))
        return solver.step(nsde, X, h, Z)

    res = run(x0=x0, n_paths=n_paths, step_sizes=steps, save_index=index, times=times, step=step, seed=seed,
              chunk_size=chunk_size, functions=functions, store=store, on_nonfinite=on_nonfinite,
              progress=progress, scheme=solver.name, dt_label=float(steps.max()) if steps.size else float(dt),
              step_times=np.cumsum(steps))
    res.extra.update(model=sde.model, order=sde.order, weak_order=solver.weak_order)
    return res
