"""lim_{eta -> 0} Var[R(mu_t)] / eta without Monte Carlo: the linearisation around the deterministic path.

docs/theory.md §6. Write the particles as Theta = bar Theta + sqrt(eta) Y with bar Theta the
deterministic mean-field path (dbar Theta = G dt). To first order
dY = DG(bar Theta) Y dt + sigma(bar Theta) dW, so Var[R(Theta_t)] / eta -> grad R^T Cov(Y_t) grad R.
With the adjoint lambda(s) (d lambda / ds = -DG^T lambda, lambda(t) = grad R(bar Theta_t);
DG = -N Hess R is symmetric) this is

    lim Var/eta = (1/B) int_0^t sum_j w_j (sum_i lambda_i(s) . (grad v - grad V)(bar Theta_s, xi_j))^2 ds,

computed on the data rule: RK4 forward, Heun backward, trapezoid in time (all O(dt^2)).
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from .._checks import numeric_values
from .data import DataRule
from .ddsmf import _rule
from .kernel import Kernel
from .particles import check_particles
from .result import check_net, positive

__all__ = ["linearised_variance", "linearise"]


def linearised_variance(net, theta0, t_end: float, *, dt: float = 0.01, rule: DataRule | None = None,
                        n_points: int | None = None, values: Mapping | None = None,
                        batch_size: int | None = None) -> float:
    """lim_{eta -> 0} Var[R(mu_t)] / eta at t = ``t_end`` (risk on the same rule as the dynamics).

    Examples
    --------
    >>> import sympy as sp, smfsym
    >>> from smfsym.meanfield.linearisation import linearised_variance
    >>> a, w, out = sp.symbols("a w out")
    >>> z = smfsym.normal("z")
    >>> net = smfsym.MeanFieldProblem(a * sp.tanh(w * z), (a, w), out, (out - sp.tanh(2 * z)) ** 2 / 2)
    >>> th = smfsym.particles(net, 50, seed=0)
    >>> bool(linearised_variance(net, th, 0.5, n_points=12) > 0)
    True
    """
    check_net(net)
    theta0 = check_particles(theta0, net.n_params)
    vals = numeric_values(values, set(net.law_parameters) | set(net.constants))
    ker = Kernel(net, vals)
    rule = _rule(net, rule, n_points, vals)
    B = net.batch_size if batch_size is None else int(batch_size)
    return linearise(ker, theta0, positive(t_end, "t_end"), positive(dt, "dt"), rule, B)[0]


def linearise(ker: Kernel, theta0: np.ndarray, t_end: float, dt: float, rule: DataRule, B: int):
    """(lim Var[R]/eta at ``t_end``, the deterministic path's particles at ``t_end``) on ``rule``.

    Arguments already checked (see :func:`linearised_variance`).
    """
    nodes, w = rule.nodes, rule.weights
    n = max(1, int(np.ceil(t_end / dt - 1e-9)))
    h = t_end / n
    G = lambda X: ker.field(X[None], nodes, w)[0]  # noqa: E731
    path = [theta0]
    X = theta0
    for _ in range(n):
        k1 = G(X)
        k2 = G(X + h / 2 * k1)
        k3 = G(X + h / 2 * k2)
        k4 = G(X + h * k3)
        X = X + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        if not np.all(np.isfinite(X)):
            raise FloatingPointError(f"the deterministic path blew up at t = {len(path) * h:.4g}.")
        path.append(X)
    N = theta0.shape[0]
    DG = lambda X, u: ker.dg(X[None], u[None], nodes, w)[0]  # noqa: E731
    lam = -G(path[-1]) / N  # grad R = -(1/N) G
    q = [ker.noise_projection(path[-1], lam, nodes, w)]
    for k in range(n - 1, -1, -1):
        k1 = DG(path[k + 1], lam)
        k2 = DG(path[k], lam + h * k1)
        lam = lam + h / 2 * (k1 + k2)
        q.append(ker.noise_projection(path[k], lam, nodes, w))
    q = np.array(q[::-1])
    return float(h * (q.sum() - 0.5 * (q[0] + q[-1])) / B), path[-1]
