"""The deterministic mean-field limit (eta -> 0): the particle ODE dX^i = G(mu^N, X^i) dt (docs/theory.md §6).

Integrated with the classical Runge-Kutta scheme (order 4) on the data rule; it
has no noise, so one path. It starts from the same particles as SGD and the DD-SMF.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from ..backends import get_backend
from ..montecarlo.driver import Job, Paths, run
from ..montecarlo.options import RunOptions, SaveAt
from .ddsmf import _rule
from .data import DataRule
from .options import Observe, meanfield_settings
from .result import MeanFieldResult, check_work, finish, save_grid, setup

__all__ = ["simulate_meanfield_limit"]


def simulate_meanfield_limit(net, theta0, t_end: float, *, dt: float = 0.02, save_at=None,
                             rule: DataRule | None = None, n_points: int | None = None,
                             values: Mapping | None = None, observe: Observe | None = None,
                             options: RunOptions | None = None, **legacy) -> MeanFieldResult:
    """Integrate the deterministic mean-field particle ODE with RK4 (one path, zero variance).

    ``save_at`` (times, or a :class:`~smfsym.SaveAt` that may ``store`` the states), ``rule`` or
    ``n_points`` (the data rule), ``observe`` (:class:`smfsym.meanfield.Observe`) and ``options``
    (``max_memory``, ``max_steps``, ``blowup_threshold``, ``progress`` (default off) and, in a
    :class:`smfsym.meanfield.MeanFieldOptions`, ``max_work``) as for :func:`simulate_ddsmf` (on numpy
    only: ``options.backend`` other than numpy is refused; one deterministic path has no per-path work for
    a device); the old
    keywords (``observables``, ``risk_rule``, ``risk_points``, ``inputs``, ``store``, ``max_work``) still
    work for one release, with a ``DeprecationWarning`` and the same numbers.

    Examples
    --------
    >>> import sympy as sp, smfsym
    >>> a, w, out = sp.symbols("a w out")
    >>> z = smfsym.normal("z")
    >>> net = smfsym.MeanFieldProblem(a * sp.tanh(w * z), (a, w), out, (out - sp.tanh(2 * z)) ** 2 / 2)
    >>> th = smfsym.particles(net, 100, seed=0)
    >>> mf = smfsym.simulate_meanfield_limit(net, th, t_end=1.0, save_at=[0.0, 1.0], n_points=12)
    >>> bool(mf.mean("risk")[1, 0] < mf.mean("risk")[0, 0])
    True
    """
    if options is not None and get_backend(options.backend).name != "numpy":
        raise ValueError(f"`backend`: simulate_meanfield_limit runs on numpy only (a deterministic ODE of one "
                         f"particle system: no paths to spread over a device); got {options.backend!r}. "
                         "meanfield_study(options=...(backend=...)) runs SGD and the DD-SMF there and the limit here.")
    cfg = meanfield_settings("simulate_meanfield_limit", legacy, observe=observe, save_at=save_at, options=options,
                             supported=("max_memory", "max_steps", "blowup_threshold", "progress"))
    o = cfg.observe
    theta0, vals, kernel, obs = setup(net, theta0, values, o.observables, o.risk_rule, o.risk_points, o.inputs)
    rule = _rule(net, rule, n_points, vals)
    nodes, weights = rule.nodes, rule.weights
    with np.errstate(invalid="ignore", divide="ignore"):  # simulate.grid divides 0/0 for a save at t = 0
        steps, index, times = save_grid(t_end, dt, cfg.at)

    check_work(len(steps), 1, theta0.shape[0], 4 * rule.size, cfg.options.max_work, "the mean-field limit")

    def G(X):
        return kernel.field(X, nodes, weights)

    def step(X, h, gens, sizes):
        k1 = G(X)
        k2 = G(X + h / 2 * k1)
        k3 = G(X + h / 2 * k2)
        k4 = G(X + h * k3)
        return X + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)

    job = Job(step=step, step_sizes=steps, save_index=index, times=times, scheme="meanfield-limit-rk4",
              dt_label=float(steps.max()) if steps.size else float(dt), step_times=np.cumsum(steps))
    run_options = cfg.options.replace(progress=bool(cfg.options.progress))  # one path: no bar unless asked
    res = run(job, theta0, paths=Paths(1, 0), save=SaveAt(functions=obs.functions(), store=cfg.store),
              options=run_options)
    return finish(res, obs, "limit", None, theta0.shape[0], rule=rule.description, rule_size=rule.size)
