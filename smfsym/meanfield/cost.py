"""The cost of a mean-field study, estimated before it runs (the command line refuses studies estimated
over its limit): the study's runs timed on a few steps and paths, then multiplied out."""
from __future__ import annotations

import math
import time
import warnings
from typing import Mapping, Sequence

import numpy as np

from ..montecarlo.options import RunOptions
from ..studies.cost import CostEstimate, _estimate, _run_cost, _step_costs, _warm_up, n_chunks
from .ddsmf import simulate_ddsmf
from .limit import simulate_meanfield_limit
from .options import MeanFieldNumerics, Observe, initial_particles, meanfield_settings, refuse_unused
from .particles import particles
from .sgd import simulate_meanfield_sgd
from .study import _captured

__all__ = ["estimate_meanfield_cost"]


def estimate_meanfield_cost(net, theta0=None, *, etas: Sequence[float], t_end: float,
                            widths: Sequence[int] | None = None, n_paths: int = 64,
                            methods: Sequence[str] = ("sgd", "ddsmf", "limit"), values: Mapping | None = None,
                            observe: Observe | None = None, numerics: MeanFieldNumerics | None = None,
                            **legacy) -> CostEstimate:
    """Estimate the wall time of :func:`meanfield_study` with the same arguments, before running it.

    For every width, each simulator (mean-field SGD, the DD-SMF at dt = eta, the RK4 limit)
    is timed on a few steps at the study's particles and a few paths; SGD and the DD-SMF
    take t_end / eta steps per eta, the limit t_end / limit_dt steps once. ``theta0``, ``observe`` and
    ``numerics`` (its ``order``, ``n_points`` and ``limit_dt``) as for the study (``n_points="auto"``, the
    default: the rule is refined first, as the study does, and its time counted); the old keywords
    (``observables``, ``n_saves``, ``risk_points``, ``particle_law``, ``particle_seed``, ``ddsmf_order``,
    ``n_points``, ``limit_dt``) still work for one release, with a ``DeprecationWarning``.

    Examples
    --------
    >>> import sympy as sp, smfsym
    >>> a, w, out = sp.symbols("a w out")
    >>> z = smfsym.normal("z")
    >>> net = smfsym.MeanFieldProblem(a * sp.tanh(w * z), (a, w), out, (out - sp.tanh(2 * z)) ** 2 / 2)
    >>> from smfsym.meanfield import estimate_meanfield_cost
    >>> from smfsym.meanfield import MeanFieldNumerics
    >>> c = estimate_meanfield_cost(net, etas=[0.1, 0.05], t_end=0.5, widths=[20], n_paths=8,
    ...                             numerics=MeanFieldNumerics(n_points=8))
    >>> sorted(c.parts)
    ['captured noise', 'ddsmf N=20', 'limit N=20', 'sgd N=20']
    """
    legacy = dict(legacy)
    theta0, drawn = initial_particles("estimate_meanfield_cost", theta0, legacy)
    cfg = meanfield_settings("estimate_meanfield_cost", legacy, observe=observe, numerics=numerics, saves=False,
                             numerics_names={"ddsmf_order": "order", "n_points": "n_points", "limit_dt": "limit_dt"},
                             observe_names=("observables", "n_saves", "risk_points"), supported=())
    refuse_unused("estimate_meanfield_cost", cfg.numerics, MeanFieldNumerics(),
                  ("dt", "richardson", "scheme", "rule", "rule_tol", "rule_budget"), "numerics")
    n_points, limit_dt, ddsmf_order = cfg.numerics.n_points, cfg.numerics.limit_dt, cfg.numerics.order
    etas = [float(e) for e in etas]
    if not etas or any(not (math.isfinite(e) and e > 0) for e in etas):
        raise ValueError(f"`etas` must be positive numbers; got {etas!r}.")
    if widths is None:
        if theta0 is None:
            raise ValueError("give `theta0` (initial particles) or `widths` (particles drawn per width).")
        theta0 = np.asarray(theta0, dtype=float)
        starts = {theta0.shape[0]: theta0}
    else:
        starts = {int(n): particles(net, int(n), drawn.law, seed=drawn.seed) for n in widths}
    common = dict(values=values, observe=Observe(observables=cfg.observe.observables,
                                                 risk_points=cfg.observe.risk_points))
    quiet = RunOptions(progress=False)
    rule_seconds = None
    if "ddsmf" in methods or "limit" in methods:
        # as the study: the rule is resolved ("auto": refined) at the first width's particles first, and the runs
        # use the number of points it settles on
        t1 = time.perf_counter()
        with warnings.catch_warnings():  # the study warns about it itself
            warnings.simplefilter("ignore")
            n_points = _captured(net, starts[next(iter(starts))], n_points, values)["n_points"]
        rule_seconds = time.perf_counter() - t1
    eta_min = min(etas)
    steps = {e: max(1, int(round(t_end / e))) for e in etas}
    # the probes run short horizons: a few saves, as the study's runs save n_saves + 1 times
    t0 = time.perf_counter()
    _warm_up()
    costs, parts = {}, {}
    for N, th in starts.items():
        state = th.size
        if "limit" in methods:
            key = f"limit N={N}"
            costs[key] = _step_costs(lambda P, n: simulate_meanfield_limit(
                net, th, n * limit_dt, dt=limit_dt, n_points=n_points, **common), 1, t_end / limit_dt)
            parts[key] = _run_cost(costs[key], 1, max(1, int(math.ceil(t_end / limit_dt - 1e-9))), calls=1)
        key = f"sgd N={N}"
        costs[key] = _step_costs(lambda P, n: simulate_meanfield_sgd(
            net, th, eta_min, n, n_paths=P, seed=0, options=quiet, **common), n_paths, min(steps.values()), p0=8)
        parts[key] = sum(_run_cost(costs[key], n_paths, k, n_chunks(n_paths, state), calls=1) for k in steps.values())
        if "ddsmf" in methods:
            key = f"ddsmf N={N}"
            costs[key] = _step_costs(lambda P, n: simulate_ddsmf(
                net, th, eta_min, n * eta_min, n_paths=P, seed=0, options=quiet, **common,
                numerics=MeanFieldNumerics(order=ddsmf_order, n_points=n_points)), n_paths, min(steps.values()), p0=8)
            parts[key] = sum(_run_cost(costs[key], n_paths, k, n_chunks(n_paths, state), calls=1)
                             for k in steps.values())
    if rule_seconds is not None:  # the study resolves its rule (and reports the captured noise) at the start
        key = "captured noise"
        costs[key] = (rule_seconds, 0.0, 0.0)
        parts[key] = costs[key][0]
    return _estimate(costs, parts, t0, "meanfield")
