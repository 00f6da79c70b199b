"""Numeric kernels of the mean-field simulators (docs/theory.md §6).

Everything is one pass over the data like a full-batch gradient: the unit and its
gradient are evaluated on (paths, particles, nodes) for a slice of paths at a
time, the output Phi(z_j) is their mean over particles, and every update is a
contraction sum_j coef_j grad phi(theta_i, z_j) with per-node coefficients
(batched matrix-vector products). Noise columns are never formed: the Gaussian
increments are contracted first (docs/theory.md §6).
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from ..symbolic.lambdify import CompiledExprs
from .factored import FactoredExprs

__all__ = ["Kernel"]

#: Elements of one (paths, particles, nodes) slab per evaluation: sized for the cache.
SLAB_ELEMENTS = 2**19
#: Largest (particles x nodes x factors) grid of one path held at once; beyond it the particles
#: are taken in chunks, in two passes (the unit is evaluated twice, memory stays bounded).
MAX_GRID_ELEMENTS = 2**21


class Kernel:
    """Compiled unit, gradient, Hessian and loss derivatives of a MeanFieldProblem (factored, see factored.py)."""

    def __init__(self, net, values: Mapping | None = None):
        self.net = net
        self.p = p = net.n_params
        vals = dict(values or {})
        self.vals = vals
        self.input_index = [net.data.index(s) for s in net.inputs]
        grad = list(net.unit_gradient)
        self.g0 = FactoredExprs([net.unit], net.params, net.inputs, vals)
        self.g1 = FactoredExprs([net.unit, *grad], net.params, net.inputs, vals)
        self._g2 = None
        out = net.output
        self.dl = CompiledExprs([net.dloss], (out,), vals, net.data)
        self.loss = CompiledExprs([net.loss], (out,), vals, net.data)
        self._d2l = None

    @property
    def d2l(self) -> CompiledExprs:
        if self._d2l is None:
            self._d2l = CompiledExprs([self.net.d2loss], (self.net.output,), self.vals, self.net.data)
        return self._d2l

    @property
    def g2(self) -> FactoredExprs:
        """phi, grad phi and the Hessian entries H[r, s] (index 1 + p + r p + s)."""
        if self._g2 is None:
            H = self.net.unit_hessian
            self._g2 = FactoredExprs([self.net.unit, *self.net.unit_gradient,
                                      *[H[r, s] for r in range(self.p) for s in range(self.p)]],
                                     self.net.params, self.net.inputs, self.vals)
        return self._g2

    # ------------------------------------------------------------------ pieces

    def slices(self, P: int, N: int, M: int, factors: int | None = None):
        k = (self.g1.nB + 1) if factors is None else factors
        step = max(1, SLAB_ELEMENTS // max(1, N * M * k))
        return [slice(lo, min(P, lo + step)) for lo in range(0, P, step)]

    def rule_cols(self, nodes: np.ndarray):
        """Input columns (1, 1, M) and data columns (1, M) of a rule."""
        z = [np.ascontiguousarray(nodes[:, i])[None, None, :] for i in self.input_index]
        d = [np.ascontiguousarray(nodes[:, i])[None, :] for i in range(nodes.shape[1])]
        return z, d

    def _zf(self, d):
        return [d[i] for i in self.input_index]

    def output(self, X: np.ndarray, zcols: list) -> np.ndarray:
        """Network output Phi(z_j) (P, M) for states (P, N, p); zcols (1, 1, M) or (P, 1, M)."""
        zf = [c[:, 0, :] for c in zcols]
        N, M = X.shape[1], zf[0].shape[-1]
        step = max(1, SLAB_ELEMENTS // max(1, M * (self.g0.nB + 1)))
        if N <= step:
            return self.g0.mean_over_particles(0, self.g0.evaluate(X, zcols, zf))
        # wide networks: the particle sum in chunks, memory bounded by the slab
        return sum(self.g0.mean_over_particles(0, self.g0.evaluate(X[:, lo:lo + step], zcols, zf))
                   * (min(N, lo + step) - lo) for lo in range(0, N, step)) / N

    def _grads(self, fx, vals, coef):
        out = np.empty(vals[0][0].shape[:2] + (self.p,))
        for r in range(self.p):
            out[..., r] = fx.contract(1 + r, vals, coef)
        return out

    def _second(self, fx, vals, u, G, w, dl, d2l, scale):
        """scale * sum_j w_j [dl_j Hess phi(X_i, z_j) u_i + d2l_j dPhi_j grad phi(X_i, z_j)], dPhi along G."""
        p = self.p
        dPhi = sum(fx.mean_over_particles(1 + r, vals, weights=G[..., r]) for r in range(p))
        out = self._grads(fx, vals, scale * w * d2l * dPhi)
        cw = scale * w * dl
        for r in range(p):
            for s_ in range(p):
                out[..., r] += u[..., s_] * fx.contract(1 + p + r * p + s_, vals, cw)
        return out

    # ------------------------------------------------------------------ fields on a rule

    def field(self, X, nodes, weights):
        """Order-1 particle field G (P, N, p) on a rule."""
        return self._order1(X, nodes, lambda dl, sl: -dl * weights)

    def _order1(self, X, nodes, coef_fn):
        """sum_j coef_j grad phi(X_i, z_j) with coef = coef_fn(dl (P, M), path slice).

        Paths are taken a few at a time; when one path's (N x M) grid is over the slab size the
        particles are taken in chunks too, in two passes (the output first, then the contraction).
        """
        z, d = self.rule_cols(nodes)
        zf = self._zf(d)
        fx = self.g1
        P, N, M = X.shape[0], X.shape[1], nodes.shape[0]
        out = np.empty_like(X)
        k = fx.nB + 1
        if N * M * k <= MAX_GRID_ELEMENTS:
            for sl in self.slices(P, N, M, k):
                vals = fx.evaluate(X[sl], z, zf)
                dl = self.dl.evaluate([fx.mean_over_particles(0, vals)], d)[..., 0]
                out[sl] = self._grads(fx, vals, coef_fn(dl, sl))
            return out
        step = max(1, SLAB_ELEMENTS // (M * k))
        chunks = [slice(lo, min(N, lo + step)) for lo in range(0, N, step)]
        for i in range(P):
            sl = slice(i, i + 1)
            Phi = sum(self.g0.mean_over_particles(0, self.g0.evaluate(X[sl, c], z, zf)) * (c.stop - c.start)
                      for c in chunks) / N
            coef = coef_fn(self.dl.evaluate([Phi], d)[..., 0], sl)
            for c in chunks:
                out[sl, c] = self._grads(fx, fx.evaluate(X[sl, c], z, zf), coef)
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
        if order == 1:
            def coef_fn(dl, sl):
                coef = -h * w * dl
                if dbeta is not None:
                    db = dbeta[sl]
                    coef = coef + scale * (w * (db @ sw)[:, None] - sw * db) * dl
                return coef
            return self._order1(X, nodes, coef_fn)
        fx = self.g2
        out = np.empty_like(X)
        for sl in self.slices(X.shape[0], X.shape[1], nodes.shape[0], fx.nB + 1):
            vals = fx.evaluate(X[sl], z, self._zf(d))
            Phi = fx.mean_over_particles(0, vals)  # (Ps, M)
            dl = self.dl.evaluate([Phi], d)[..., 0]
            coef = -h * w * dl
            if dbeta is not None:
                db = dbeta[sl]
                S = db @ sw  # (Ps,)
                coef = coef + scale * (w * S[:, None] - sw * db) * dl
            out[sl] = self._grads(fx, vals, coef)
            G = self._grads(fx, vals, -w * dl)
            d2l = self.d2l.evaluate([Phi], d)[..., 0]
            # G - (eta/2) DG G = G + (eta/2) sum_j w_j [dl_j H G + d2l_j dPhi_j grad phi]
            out[sl] += self._second(fx, vals, G, G, w, dl, d2l, h * eta / 2)
        return out

    def sgd_increment(self, X, data: list, eta: float) -> np.ndarray:
        """-eta/B sum_b dl(Phi(z_b), y_b) grad phi(theta_i, z_b): data columns (P, B) in ``net.data`` order."""
        B = data[0].shape[1]
        out = np.empty_like(X)
        for sl in self.slices(X.shape[0], X.shape[1], B):
            ds = [c[sl] for c in data]
            zf = self._zf(ds)
            vals = self.g1.evaluate(X[sl], [c[:, None, :] for c in zf], zf)
            Phi = self.g1.mean_over_particles(0, vals)  # (Ps, B)
            dl = self.dl.evaluate([Phi], ds)[..., 0]
            out[sl] = self._grads(self.g1, vals, -(eta / B) * dl)
        return out

    def dg(self, X: np.ndarray, u: np.ndarray, nodes, weights) -> np.ndarray:
        """DG(X) u, the derivative of the particle field along u, both (P, N, p).

        (DG u)_i = -sum_j w_j [dl_j Hess phi(X_i, z_j) u_i + d2l_j dPhi_j grad phi(X_i, z_j)],
        dPhi_j = mean_k grad phi(X_k, z_j) . u_k (the interaction through the output).
        """
        z, d = self.rule_cols(nodes)
        out = np.empty_like(X)
        fx = self.g2
        for sl in self.slices(X.shape[0], X.shape[1], nodes.shape[0], fx.nB + 1):
            vals = fx.evaluate(X[sl], z, self._zf(d))
            Phi = fx.mean_over_particles(0, vals)
            dl = self.dl.evaluate([Phi], d)[..., 0]
            d2l = self.d2l.evaluate([Phi], d)[..., 0]
            out[sl] = self._second(fx, vals, u[sl], u[sl], weights, dl, d2l, -1.0)
        return out

    # ------------------------------------------------------------------ diagnostics (one state)

    def _grad_grid(self, theta, nodes):
        z, d = self.rule_cols(nodes)
        vals = self.g1.evaluate(theta[None], z, self._zf(d))
        Phi = self.g1.mean_over_particles(0, vals)
        dl = self.dl.evaluate([Phi], d)[..., 0][0]  # (M,)
        return [self.g1.full(1 + r, vals)[0] * dl for r in range(self.p)]  # p x (N, M)

    def noise_variance(self, theta: np.ndarray, nodes, weights) -> float:
        """sum_i tr Cov_xi(grad v(mu, theta_i, xi)) on a weighted set of nodes, one particle state (N, p)."""
        total = 0.0
        for g in self._grad_grid(theta, nodes):
            mean = g @ weights
            total += float(np.sum((g * g) @ weights - mean**2))
        return total

    def noise_projection(self, X: np.ndarray, lam: np.ndarray, nodes, weights) -> float:
        """sum_j w_j (sum_i lam_i . (grad v(X_i, xi_j) - grad V(X_i)))^2 for one state (N, p)."""
        proj = sum(lam[:, r] @ g for r, g in enumerate(self._grad_grid(X, nodes)))  # (M,)
        return float(weights @ (proj - weights @ proj) ** 2)
