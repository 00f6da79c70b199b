"""The distribution-dependent SMF as an N-particle system (docs/theory.md §6, docs/theory.md §6).

dX^i = b(X)^i dt + sqrt(eta / B) sum_j sqrt(w_j) (grad V - grad v(., ., xi_j))(mu^N, X^i) dbeta_j,
one set of M Brownian motions shared by all particles, on a rule of the data law
(exact for a data set). The noise is applied as
sum_j (w_j S - sqrt(w_j) dbeta_j) d_out l_j grad phi(X^i, z_j), S = sum_k sqrt(w_k) dbeta_k:
the increments are contracted before any gradient is touched.

Drift: order 1, b = G = -grad V; order 2, b = G - (eta/2) DG G.

Weak orders: the Euler scheme has weak order 1 in its step dt (Kloeden-Platen 14.1).
Against SGD the flow is a weak approximation of order 1 (order=1) or 2 (order=2) in
eta; with dt = eta the Euler step reproduces one SGD step's mean and covariance
exactly, so the total error against SGD stays O(eta) for ``order=1``. The order-2
flow's advantage shows only when the solver error is smaller (dt << eta).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from ..engine import draw_normal, run
from .data import DataRule, data_rule
from .result import MeanFieldResult, check_work, finish, positive, save_grid, setup

__all__ = ["simulate_ddsmf", "SCHEMES"]

SCHEMES = {"euler": 1.0}


def _rule(net, rule, n_points, vals):
    if rule is None:
        return data_rule(net, n_points, vals)
    if not isinstance(rule, DataRule):
        raise TypeError(f"`rule` must be a DataRule (smfsym.data_rule); got {type(rule).__name__}.")
    if rule.nodes.shape[1] != len(net.data):
        raise ValueError(f"`rule` must have one column per data symbol {[str(s) for s in net.data]}; "
                         f"got {rule.nodes.shape[1]}.")
    return rule


def simulate_ddsmf(net, theta0, eta: float, t_end: float, *, n_paths: int = 64, seed=None,
                   dt: float | None = None, scheme: str = "euler", order: int = 1,
                   save_at: Sequence[float] | None = None, rule: DataRule | None = None,
                   n_points: int | None = None, batch_size: int | None = None, values: Mapping | None = None,
                   observables: Sequence[str] = ("risk",), risk_rule=None, risk_points: int = 16, inputs=None,
                   store: bool = False, chunk_size: int | None = None,
                   progress: bool | None = None, max_work: float | None = None) -> MeanFieldResult:
    """Simulate the DD-SMF particle system of width N = len(theta0).

    Parameters
    ----------
    net : MeanFieldProblem
    theta0 : array_like (N, p)
        Initial particles, the same on every path.
    eta : float
        Learning rate of the SGD it models (noise sqrt(eta), order-2 drift).
    t_end : float
    dt : float, optional
        Euler step (default eta: one step per SGD step).
    scheme : {"euler"}
        Euler-Maruyama, weak order 1 in dt.
    order : {1, 2}
        Drift G or G - (eta/2) DG G.
    save_at : sequence of float, optional
        Times to save (default ``[t_end]``).
    rule, n_points : DataRule or int, optional
        The data rule of the noise and drift (default: ``data_rule(net, n_points)``).

    Other parameters are as for :func:`simulate_meanfield_sgd`.

    Examples
    --------
    >>> import sympy as sp, smfsym
    >>> a, w, out = sp.symbols("a w out")
    >>> z = smfsym.normal("z")
    >>> net = smfsym.MeanFieldProblem(a * sp.tanh(w * z), (a, w), out, (out - sp.tanh(2 * z)) ** 2 / 2)
    >>> th = smfsym.particles(net, 100, seed=0)
    >>> res = smfsym.simulate_ddsmf(net, th, eta=0.05, t_end=1.0, n_paths=8, seed=1, n_points=12)
    >>> res.observables["risk"].shape, res.info["rule"]
    ((1, 8, 1), 'Gauss-Hermite(12)')
    """
    theta0, vals, kernel, obs = setup(net, theta0, values, observables, risk_rule, risk_points, inputs)
    eta = positive(eta, "eta")
    dt = eta if dt is None else positive(dt, "dt")
    if scheme not in SCHEMES:
        raise ValueError(f"`scheme` must be one of {sorted(SCHEMES)}; got {scheme!r}.")
    if order not in (1, 2):
        raise ValueError(f"`order` must be 1 or 2; got {order!r}.")
    B = net.batch_size if batch_size is None else batch_size
    if not isinstance(B, (int, np.integer)) or isinstance(B, bool) or B < 1:
        raise ValueError(f"`batch_size` must be a positive integer; got {batch_size!r}.")
    rule = _rule(net, rule, n_points, vals)
    nodes, weights = rule.nodes, rule.weights
    with np.errstate(invalid="ignore", divide="ignore"):  # simulate.grid divides 0/0 for a save at t = 0
        steps, index, times = save_grid(t_end, dt, save_at)
    M = rule.size
    check_work(len(steps), n_paths, theta0.shape[0], M * order, max_work, "the DD-SMF")

    def step(X, h, gens, sizes):
        dbeta = np.sqrt(h) * draw_normal(gens, sizes, (M,))
        return X + kernel.ddsmf_increment(X, h, dbeta, nodes, weights, eta, order=order, batch_size=int(B))

    res = run(x0=theta0, n_paths=n_paths, step_sizes=steps, save_index=index, times=times, step=step, seed=seed,
              chunk_size=chunk_size, functions=obs.functions(), store=store, on_nonfinite="raise",
              progress=progress, scheme=f"ddsmf-{scheme}", dt_label=float(steps.max()) if steps.size else float(dt),
              step_times=np.cumsum(steps))
    return finish(res, obs, "ddsmf", eta, theta0.shape[0], order=order, scheme=scheme,
                  weak_order=SCHEMES[scheme], rule=rule.description, rule_size=M, rule_exact=rule.exact,
                  batch_size=int(B))
