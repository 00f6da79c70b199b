"""Numeric kernels of the mean-field simulators (docs/theory.md §6).

Everything is one pass over the data like a full-batch gradient: the unit and its
gradient are evaluated on (paths, particles, nodes) for a slice of paths at a
time, the output Phi(z_j) is their mean over particles, and every update is a
contraction sum_j coef_j grad phi(theta_i, z_j) with per-node coefficients
(batched matrix-vector products). Noise columns are never formed: the Gaussian
increments are contracted first (MATH.md section 6).
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import sympy as sp

from ..compile import CompiledExprs

__all__ = ["Kernel"]

#: Elements of one (paths, particles, nodes) slab per evaluation: bounds the working set.
SLAB_ELEMENTS = 2**21


class Kernel:
    """Compiled unit, gradient, Hessian-vector product and loss derivatives of a MeanFieldProblem."""

    def __init__(self, net, values: Mapping | None = None):
        self.net = net
        self.p = net.n_params
        vals = dict(values or {})
        self.input_index = [net.data.index(s) for s in net.inputs]
        self.unit = CompiledExprs([net.unit, *net.unit_gradient], net.params, vals, net.inputs)
        out = net.output
        self.dl = CompiledExprs([net.dloss], (out,), vals, net.data)
        self.loss = CompiledExprs([net.loss], (out,), vals, net.data)
        self.vals = vals
        self._d2l = None
        self._hvp = None

    @property
    def d2l(self) -> CompiledExprs:
        if self._d2l is None:
            self._d2l = CompiledExprs([self.net.d2loss], (self.net.output,), self.vals, self.net.data)
        return self._d2l

    @property
    def hvp(self) -> CompiledExprs:
        """Hess_theta phi(theta, z) u, compiled in (theta, u, z)."""
        if self._hvp is None:
            u = [sp.Symbol(f"_smfsym_u{r}") for r in range(self.p)]
            H = self.net.unit_hessian
            exprs = [sum(H[r, s] * u[s] for s in range(self.p)) for r in range(self.p)]
            self._hvp = CompiledExprs(exprs, tuple(self.net.params) + tuple(u), self.vals, self.net.inputs)
        return self._hvp

    # ------------------------------------------------------------------ pieces

    def slices(self, P: int, N: int, M: int):
        step = max(1, SLAB_ELEMENTS // max(1, N * M * (self.p + 1)))
        return [slice(lo, min(P, lo + step)) for lo in range(0, P, step)]

    def unit_eval(self, X: np.ndarray, zcols: list) -> np.ndarray:
        """(P, N, M, 1 + p): phi and grad phi at every particle and node; zcols broadcast to (P, 1, M)."""
        return self.unit.evaluate([X[..., r, None] for r in range(self.p)], zcols)

    @staticmethod
    def contract(E: np.ndarray, coef: np.ndarray, first: int = 1) -> np.ndarray:
        """sum_j coef[P, j] E[P, N, j, first + r] for every r: (P, N, p)."""
        p = E.shape[-1] - first
        out = np.empty(E.shape[:2] + (p,))
        for r in range(p):
            out[..., r] = np.matmul(E[..., first + r], coef[:, :, None])[..., 0]
        return out

    def output(self, X: np.ndarray, zcols: list) -> np.ndarray:
        """Network output Phi(z_j) (P, M) for states (P, N, p)."""
        th = [X[..., r, None] for r in range(self.p)]
        phi = self._unit_only.evaluate(th, zcols)[..., 0]
        return phi.mean(axis=1)

    @property
    def _unit_only(self):
        if not hasattr(self, "_uo"):
            self._uo = CompiledExprs([self.net.unit], self.net.params, self.vals, self.net.inputs)
        return self._uo

    # ------------------------------------------------------------------ fields on a rule

    def rule_cols(self, nodes: np.ndarray):
        z = [np.ascontiguousarray(nodes[:, i])[None, None, :] for i in self.input_index]
        d = [np.ascontiguousarray(nodes[:, i])[None, :] for i in range(nodes.shape[1])]
        return z, d

    def field(self, X, nodes, weights):
        """Order-1 particle field G (P, N, p) on a rule."""
        z, d = self.rule_cols(nodes)
        out = np.empty_like(X)
        for sl in self.slices(X.shape[0], X.shape[1], nodes.shape[0]):
            E = self.unit_eval(X[sl], z)
            Phi = E[..., 0].mean(axis=1)
            dl = self.dl.evaluate([Phi], d)[..., 0]
            out[sl] = self.contract(E, -dl * weights)
        return out

    def ddsmf_increment(self, X, h: float, dbeta: np.ndarray | None, nodes, weights, eta: float,
                        order: int = 1, batch_size: int = 1) -> np.ndarray:
        """Euler increment of the DD-SMF on a rule: h b(X) + sqrt(eta/B) sum_j (w_j S - sqrt(w_j) dbeta_j) dl_j grad phi_j.

        ``dbeta`` (P, M) are the Brownian increments (variance h); None gives the drift only.
        """
        z, d = self.rule_cols(nodes)
        w = weights
        sw = np.sqrt(w)
        scale = np.sqrt(eta / batch_size)
        out = np.empty_like(X)
        for sl in self.slices(X.shape[0], X.shape[1], nodes.shape[0]):
            Xs = X[sl]
            E = self.unit_eval(Xs, z)
            Phi = E[..., 0].mean(axis=1)  # (Ps, M)
            dl = self.dl.evaluate([Phi], d)[..., 0]
            coef = -h * w * dl
            if dbeta is not None:
                db = dbeta[sl]
                S = db @ sw  # (Ps,)
                coef = coef + scale * (w * S[:, None] - sw * db) * dl
            if order == 1:
                out[sl] = self.contract(E, coef)
                continue
            G = self.contract(E, -w * dl)  # (Ps, N, p)
            # output derivative along G: dPhi_j = mean_i grad phi(theta_i, z_j) . G_i
            dPhi = sum(np.matmul(G[..., r][:, None, :], E[..., 1 + r])[:, 0, :] for r in range(self.p)) / Xs.shape[1]
            d2l = self.d2l.evaluate([Phi], d)[..., 0]
            coef = coef + h * eta / 2 * w * d2l * dPhi
            Hu = self.hvp.evaluate([Xs[..., r, None] for r in range(self.p)] + [G[..., r, None] for r in range(self.p)], z)
            out[sl] = self.contract(E, coef) + self.contract(Hu, h * eta / 2 * w * dl, first=0)
        return out

    def sgd_increment(self, X, data: list, eta: float) -> np.ndarray:
        """-eta/B sum_b dl(Phi(z_b), y_b) grad phi(theta_i, z_b): data columns (P, B) in ``net.data`` order."""
        z = [data[i][:, None, :] for i in self.input_index]
        B = data[0].shape[1]
        out = np.empty_like(X)
        for sl in self.slices(X.shape[0], X.shape[1], B):
            E = self.unit_eval(X[sl], [c[sl] for c in z])
            Phi = E[..., 0].mean(axis=1)  # (Ps, B)
            dl = self.dl.evaluate([Phi], [c[sl] for c in data])[..., 0]
            out[sl] = self.contract(E, -(eta / B) * dl)
        return out

    # ------------------------------------------------------------------ diagnostics

    def noise_variance(self, theta: np.ndarray, nodes, weights) -> float:
        """sum_i tr Cov_xi(grad v(mu, theta_i, xi)) on a weighted set of nodes, one particle state (N, p)."""
        z, d = self.rule_cols(nodes)
        E = self.unit_eval(theta[None], z)
        Phi = E[..., 0].mean(axis=1)
        dl = self.dl.evaluate([Phi], d)[..., 0][0]  # (M,)
        g = E[0, :, :, 1:] * dl[None, :, None]  # (N, M, p), one state only
        mean = np.einsum("nmr,m->nr", g, weights)
        second = np.einsum("nmr,m->nr", g * g, weights)
        return float(np.sum(second - mean**2))

    def dg(self, X: np.ndarray, u: np.ndarray, nodes, weights) -> np.ndarray:
        """DG(X) u, the derivative of the particle field along u, both (P, N, p).

        (DG u)_i = -sum_j w_j [dl_j Hess phi(X_i, z_j) u_i + d2l_j dPhi_j grad phi(X_i, z_j)],
        dPhi_j = mean_k grad phi(X_k, z_j) . u_k (the interaction through the output).
        """
        z, d = self.rule_cols(nodes)
        out = np.empty_like(X)
        for sl in self.slices(X.shape[0], X.shape[1], nodes.shape[0]):
            Xs, us = X[sl], u[sl]
            E = self.unit_eval(Xs, z)
            Phi = E[..., 0].mean(axis=1)
            dl = self.dl.evaluate([Phi], d)[..., 0]
            d2l = self.d2l.evaluate([Phi], d)[..., 0]
            dPhi = sum(np.matmul(us[..., r][:, None, :], E[..., 1 + r])[:, 0, :] for r in range(self.p)) / Xs.shape[1]
            Hu = self.hvp.evaluate([Xs[..., r, None] for r in range(self.p)] + [us[..., r, None] for r in range(self.p)], z)
            out[sl] = -self.contract(E, weights * d2l * dPhi) - self.contract(Hu, weights * dl, first=0)
        return out

    def noise_projection(self, X: np.ndarray, lam: np.ndarray, nodes, weights) -> float:
        """sum_j w_j (sum_i lam_i . (grad v(X_i, xi_j) - grad V(X_i)))^2 for one state (N, p)."""
        z, d = self.rule_cols(nodes)
        E = self.unit_eval(X[None], z)
        Phi = E[..., 0].mean(axis=1)
        dl = self.dl.evaluate([Phi], d)[..., 0][0]
        proj = sum(lam[:, r] @ E[0, :, :, 1 + r] for r in range(self.p)) * dl  # (M,)
        return float(weights @ (proj - weights @ proj) ** 2)
