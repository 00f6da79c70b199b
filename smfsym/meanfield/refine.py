"""Choosing the DD-SMF's data rule by what the observable needs (docs/theory.md §6).

A Gauss rule of ``n_points`` per continuous coordinate carries the DD-SMF's drift and its
cylindrical noise. How much of the *total* noise variance it captures is not what Var[R]
depends on: Var[R(mu_t)] / eta -> (1/B) int sum_j w_j (lambda . (grad v - grad V)(xi_j))^2 ds
(the linearisation, :mod:`smfsym.meanfield.linearisation`) weighs the noise by the adjoint
lambda of the risk, i.e. by its projection on the directions the risk feels, and a coarse rule
can get the total right (to 0.1%) and that projection wrong by tens of percent. So the rule is
refined until the two things the study measures stop moving:

- lim Var[R(mu_T)] / eta of the linearisation (the DD-SMF's fluctuations to leading order), and
- R(mu_T) of the deterministic limit (its mean to leading order), on the fixed risk rule,

both computed on the rule n = 4, 6, 8, 10, 12, 15, 19, ... at the initial particles. A level n_k
is accepted when its values agree with both neighbours n_{k-1} and n_{k+1} within the relative
tolerance ``tol`` (two agreements in a row: one can be a chance crossing of an oscillating
sequence, which is what Gauss rules on non-polynomial integrands give at small n). When the
budget (``max_points`` per coordinate, or the rule size ``max_nodes``) stops the refinement first,
the finest level is used and :class:`RuleResolutionWarning` says by how much it still moved.
"""
from __future__ import annotations

import warnings
from typing import Mapping

import numpy as np

from .._checks import numeric_values
from .data import MAX_NODES, data_rule
from .kernel import Kernel
from .linearisation import linearise
from .observables import Observables
from .particles import check_particles
from .result import check_net, positive

__all__ = ["RuleResolutionWarning", "CapturedNoiseWarning", "refine_rule", "check_rule", "rule_levels",
           "check_risk_rule"]


class RuleResolutionWarning(UserWarning):
    """The DD-SMF's data rule is not resolved for the observable: its Var[R] (and mean) may be off."""


#: The former name (the diagnostic was the captured total noise variance); the same class.
CapturedNoiseWarning = RuleResolutionWarning

#: Default relative tolerance on lim Var[R]/eta and on the limit's risk between successive rules.
RULE_TOL = 0.02
#: Default largest ``n_points`` tried by the refinement.
RULE_BUDGET = 64


def rule_levels(start: int = 4, stop: int = RULE_BUDGET) -> list:
    """n = 4, 6, 8, 10, 12, 15, 19, 24, 30, ...: steps of 2, then about 25% (ints up to ``stop``)."""
    out = [int(start)]
    while True:
        n = max(out[-1] + 2, int(round(out[-1] * 1.25)))
        if n > stop:
            return out
        out.append(n)


def _level_values(ker, obs, theta, t_end, dt, net, n, vals, B, max_nodes=MAX_NODES) -> dict | None:
    """lim Var/eta and the limit's risk on the rule of ``n`` points (None when over ``max_nodes``)."""
    try:
        rule = data_rule(net, n, vals, max_nodes=max_nodes)
    except ValueError:
        return None
    lin, X = linearise(ker, theta, t_end, dt, rule, B)
    return {"n_points": int(n), "lin_var": lin, "risk": float(obs.risk(X[None])[0]), "rule": rule.description}


def _rel(a: dict, b: dict) -> dict:
    """Relative changes of the two monitored quantities from level a to level b."""
    return {k: abs(b[k] - a[k]) / max(abs(b[k]), 1e-300) for k in ("lin_var", "risk")}


def _setup(net, theta0, t_end, dt, values, risk_points):
    check_net(net)
    theta = check_particles(theta0, net.n_params)
    t_end = positive(t_end, "t_end")
    dt = min(t_end / 10, 0.1) if dt is None else positive(dt, "dt")  # RK4 stays stable on long horizons
    vals = numeric_values(values, set(net.law_parameters) | set(net.constants))
    ker = Kernel(net, vals)
    risk_rule = data_rule(net, risk_points if any(not law.is_finite for law in net.laws) else None, vals)
    return theta, t_end, dt, vals, ker, Observables(net, ker, ["risk"], risk_rule)


#: Relative tolerance of the population risk's Gauss rule against one of four times its points.
RISK_TOL = 1e-3


def check_risk_rule(net, theta, risk_points: int, values: Mapping | None = None, *, tol: float = RISK_TOL,
                    stacklevel: int = 2) -> dict | None:
    """Compare the risk of the particles ``theta`` on the Gauss rule of ``risk_points`` with the rule of four times
    as many points (capped by ``MAX_NODES``) and warn (:class:`RuleResolutionWarning`) when they differ by more
    than ``tol`` relative: the risk, its mean and its variance are evaluated on that rule (audit 13: 16 points put
    the teacher network's E R 4.4% too high, unflagged). None for a data law without a continuous coordinate.
    """
    vals = numeric_values(values, set(net.law_parameters) | set(net.constants))
    if all(law.is_finite for law in net.laws):
        return None
    ker = Kernel(net, vals)
    X = check_particles(theta, net.n_params)[None]
    risks = {}
    for n in (int(risk_points), 4 * int(risk_points)):
        try:
            rule = data_rule(net, n, vals)
        except ValueError:  # four times the points over MAX_NODES: nothing finer to compare with
            return None
        risks[n] = float(Observables(net, ker, ["risk"], rule).risk(X)[0])
    coarse, fine = risks[int(risk_points)], risks[4 * int(risk_points)]
    change = abs(coarse - fine) / max(abs(fine), 1e-300)
    if change > tol:
        warnings.warn(f"the population risk's rule (Gauss, {int(risk_points)} points per coordinate) is not resolved: "
                      f"at the initial particles R = {coarse:.6g} against {fine:.6g} on {4 * int(risk_points)} points "
                      f"({change:.2%} apart, tolerance {tol:.2%}); every E R and Var[R] of the study is evaluated on "
                      "it: raise `risk_points` (Observe(risk_points=...), or [meanfield.check] risk_points).",
                      RuleResolutionWarning, stacklevel=stacklevel)
    return {"risk_points": int(risk_points), "risk": coarse, "risk_fine": fine, "change": change}


def _check_tol(tol):
    tol = positive(tol, "rule_tol")
    if tol >= 1:
        raise ValueError(f"`rule_tol` must be a relative tolerance in (0, 1); got {tol!r}.")
    return tol


def refine_rule(net, theta0, t_end: float, *, tol: float = RULE_TOL, max_points: int = RULE_BUDGET,
                start: int = 4, dt: float | None = None, values: Mapping | None = None, risk_points: int = 16,
                max_nodes: int = MAX_NODES, warn: bool = True, stacklevel: int = 2) -> dict:
    """Refine the DD-SMF's Gauss rule until lim Var[R]/eta and the limit's risk settle (module docstring).

    Parameters
    ----------
    net : MeanFieldProblem
    theta0 : array (N, p)
        The initial particles of the study.
    t_end : float
        The time at which Var[R] and the risk are compared.
    tol : float
        Relative tolerance between successive rules (both quantities).
    max_points : int
        Budget: the largest ``n_points`` tried (the rule is also kept under ``max_nodes`` nodes).
    start : int
        The first ``n_points``.
    dt : float, optional
        Time step of the linearisation (default ``min(t_end / 10, 0.1)``; its O(dt^2) error is the same at
        every level, so it hardly enters the differences).
    risk_points : int
        Gauss points per coordinate of the risk (the same fixed rule at every level).
    warn : bool
        Issue :class:`RuleResolutionWarning` when the budget stops the refinement first.
    stacklevel : int
        Of the warning (2: the caller of this function).

    Returns
    -------
    dict
        ``n_points`` (the accepted level), ``converged``, ``tol``, ``levels`` (per level: n_points,
        lin_var, risk, rule), ``changes`` (relative changes between successive levels), ``exact``.

    Examples
    --------
    >>> import sympy as sp, smfsym
    >>> from smfsym.meanfield.refine import refine_rule
    >>> a, w, out = sp.symbols("a w out")
    >>> z = smfsym.normal("z")
    >>> net = smfsym.MeanFieldProblem(a * sp.tanh(w * z), (a, w), out, (out - sp.tanh(2 * z)) ** 2 / 2)
    >>> r = refine_rule(net, smfsym.particles(net, 50, seed=0), 0.5)
    >>> r["converged"], r["n_points"] >= 4
    (True, True)
    """
    check_net(net)
    tol = _check_tol(tol)
    if all(law.is_finite for law in net.laws):
        return {"n_points": None, "exact": True, "converged": True, "tol": tol, "levels": [], "changes": []}
    for name, v in (("max_points", max_points), ("start", start)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
            raise ValueError(f"`{name}` must be a positive integer; got {v!r}.")
    theta, t_end, dt, vals, ker, obs = _setup(net, theta0, t_end, dt, values, risk_points)
    done, changes = [], []
    for n in rule_levels(start, max(start, max_points)):
        level = _level_values(ker, obs, theta, t_end, dt, net, n, vals, net.batch_size, max_nodes)
        if level is None:
            if not done:
                raise ValueError(f"the first rule (`n_points` = {start}) is already over `max_nodes` = {max_nodes}.")
            break
        done.append(level)
        if len(done) >= 2:
            changes.append(_rel(done[-2], done[-1]))
        if len(changes) >= 2 and all(max(c.values()) <= tol for c in changes[-2:]):
            return {"n_points": done[-2]["n_points"], "exact": False, "converged": True, "tol": tol,
                    "levels": done, "changes": changes}
    last = changes[-1] if changes else {"lin_var": float("nan"), "risk": float("nan")}
    if warn:
        warnings.warn(
            f"the DD-SMF's data rule did not settle within the budget (`rule_budget` = {max_points} points per "
            f"coordinate, at most {max_nodes} nodes): from n_points = {done[-2]['n_points'] if len(done) > 1 else '-'}"
            f" to {done[-1]['n_points']} lim Var[R]/eta moved by {last['lin_var']:.1%} and the limit's risk by "
            f"{last['risk']:.1%} (tolerance {tol:.1%}); using n_points = {done[-1]['n_points']}: the DD-SMF's "
            "Var[R] may be off by about as much; raise `rule_budget` (or `max_nodes`) or `rule_tol`.",
            RuleResolutionWarning, stacklevel=stacklevel)
    return {"n_points": done[-1]["n_points"], "exact": False, "converged": False, "tol": tol, "levels": done,
            "changes": changes}


def check_rule(net, theta0, t_end: float, n_points: int, *, tol: float = RULE_TOL, dt: float | None = None,
               values: Mapping | None = None, risk_points: int = 16, max_nodes: int = MAX_NODES,
               warn: bool = True, stacklevel: int = 2) -> dict:
    """Compare a given ``n_points`` with the next finer level (see :func:`refine_rule`); warn beyond ``tol``.

    Returns the same keys as :func:`refine_rule`; ``converged`` is whether both quantities moved by
    at most ``tol`` from ``n_points`` to the next level.
    """
    check_net(net)
    tol = _check_tol(tol)
    if all(law.is_finite for law in net.laws):
        return {"n_points": n_points, "exact": True, "converged": True, "tol": tol, "levels": [], "changes": []}
    theta, t_end, dt, vals, ker, obs = _setup(net, theta0, t_end, dt, values, risk_points)
    finer = rule_levels(int(n_points), 2 * int(n_points) + 2)[1]
    here = _level_values(ker, obs, theta, t_end, dt, net, int(n_points), vals, net.batch_size, max_nodes)
    there = _level_values(ker, obs, theta, t_end, dt, net, finer, vals, net.batch_size, max_nodes)
    if here is None:
        raise ValueError(f"the data rule of `n_points` = {n_points} is over `max_nodes` = {max_nodes}.")
    if there is None:  # the finer rule is over max_nodes: nothing to compare with
        return {"n_points": int(n_points), "exact": False, "converged": None, "tol": tol, "levels": [here],
                "changes": []}
    ch = _rel(here, there)
    ok = max(ch.values()) <= tol
    if warn and not ok:
        warnings.warn(
            f"the DD-SMF's data rule ({here['rule']}) is not resolved for the risk: from n_points = {n_points} to "
            f"{finer} lim Var[R]/eta moves by {ch['lin_var']:.1%} and the limit's risk by {ch['risk']:.1%} "
            f"(tolerance {tol:.1%}); the DD-SMF's Var[R] may be off by about as much: raise `n_points` "
            "(or pass n_points='auto').", RuleResolutionWarning, stacklevel=stacklevel)
    return {"n_points": int(n_points), "exact": False, "converged": ok, "tol": tol, "levels": [here, there],
            "changes": [ch]}
