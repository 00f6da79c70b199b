"""Numeric form of an SDE: compiled drift, noise action and derivative terms.

Compiled once per simulation (never inside the time loop). The noise enters
only through its *action* sigma(x) u on an increment u, compiled as d
expressions in (x, u), so the d x m matrix is never materialised for
explicit-matrix noise; the weak order-2 solver also gets the symbolic
directional derivatives it needs (docs/theory.md §3; Kloeden-Platen ch. 14).
The steps use :attr:`NumericSDE.euler_plan` / :attr:`NumericSDE.weak2_plan`: every
state-only subterm of every term hoisted into one front evaluated once per step
(:class:`~smfsym.compile.HoistedExprs`), the rest evaluated on stacked directions.
"""
from __future__ import annotations

from functools import cached_property
from typing import Mapping

import numpy as np
import sympy as sp

from ._checks import numeric_values
from .compile import CompiledExprs, HoistedExprs
from .sde import SDE
from ._checks import as_expr

__all__ = ["NumericSDE"]

#: Data rows per chunk of the data-set noise action (fixed: per-path sums must not depend on chunking).
ROWS = 1024
#: Working-set target of one path sub-batch of the data-set noise action (bytes).
TEMPLATE_BYTES = 32 * 2**20


def _vec(name, n):
    return tuple(sp.Dummy(f"{name}{i}") for i in range(n))


class NumericSDE:
    """An SDE with every symbol but the state bound to a number.

    Parameters
    ----------
    sde : SDE
    values : mapping
        Numbers for constants, law parameters and the learning rate.
    """

    def __init__(self, sde: SDE, values: Mapping | None = None):
        self.sde = sde
        vals = numeric_values(values)
        self.values = vals
        self.x = sde.state
        self.d = sde.dim
        self.kind = sde.noise_kind
        self.m = sde.n_noise
        bound = {as_expr(k): sp.Float(v) for k, v in vals.items()}
        # bound expressions here; compiled (lambdified) only when first evaluated, so codegen,
        # which needs the expressions alone, compiles nothing
        self.drift_exprs = [e.xreplace(bound) for e in sde.drift]
        if self.kind == "matrix":
            D = sde.diffusion.xreplace(bound)
            self.u = _vec("u", self.m)
            self.noise_exprs = [sum((D[i, k] * self.u[k] for k in range(self.m) if D[i, k] != 0), sp.S.Zero)
                                for i in range(self.d)]
            self.diffusion_matrix = D
        elif self.kind == "sqrt":
            self.sigma_exprs = list(sde.diffusion.sigma.xreplace(bound))
            self.scale = float(sde.diffusion.scale.xreplace(bound))
        else:
            law = sde.diffusion.law
            self.data = law.data
            self.sqrt_w = np.sqrt(law.weights)
            self.scale = float(sde.noise_scale.xreplace(bound))
            self.column_exprs = list(sde.diffusion.column.xreplace(bound))

    @cached_property
    def _drift(self):
        return CompiledExprs(self.drift_exprs, self.x, self.values)

    @cached_property
    def _noise(self):
        return CompiledExprs(self.noise_exprs, self.x + self.u, self.values)

    @cached_property
    def _sigma(self):
        return CompiledExprs(self.sigma_exprs, self.x, self.values)

    @cached_property
    def _column(self):
        return CompiledExprs(self.column_exprs, self.x, self.values, self.sde.diffusion.law.symbols)

    # ------------------------------------------------------------------ evaluation

    @staticmethod
    def cols(X):
        return [X[..., i] for i in range(X.shape[-1])]

    @staticmethod
    def state_cols(X):
        """The state's coordinates as contiguous arrays (one copy of X: every later read is contiguous)."""
        Xt = np.ascontiguousarray(np.moveaxis(X, -1, 0))
        return list(Xt)

    @staticmethod
    def dir_cols(U, X, axis: bool = False):
        """Columns of increments for the hoisted terms: ``U`` of shape (P, m) gives m arrays (P,);
        with ``axis=True``, ``U`` of shape (P, K, m) gives m arrays (K, P) (K directions stacked).
        For n-point states X (P, n, d) a trailing axis broadcasts each path's increment to its points.
        Contiguous when U is a view of a (K, m, P) array (how the stepper lays out its draws)."""
        tail = (None,) * (X.ndim - 2)
        if axis:
            return [U[:, :, k].T[(Ellipsis,) + tail] for k in range(U.shape[-1])]
        return [U[(slice(None), k) + tail] for k in range(U.shape[-1])]

    def drift(self, X: np.ndarray, mean_vals=None) -> np.ndarray:
        return self._drift.evaluate(self.cols(X), mean_vals=mean_vals)

    def _ucols(self, U, X):
        # U is (P, m); X may be (P, n, d): one increment per path, shared by its points
        extra = X.ndim - 2
        return [U[(slice(None), k) + (None,) * extra] for k in range(U.shape[1])]

    def shared_means(self, ce, X: np.ndarray, cache: dict | None = None):
        """The data means of ``ce`` at X, to reuse across evaluations at X along other directions;
        None when there are none or they read more than X (then each evaluation computes its own).
        ``cache`` (one dict per X) also shares a mean between compilations that contain it."""
        if not ce.means or not ce.means_use_only(self.d):
            return None
        return ce.mean_values(self.cols(X) + [np.zeros(())] * (len(ce.state) - self.d), cache)

    def noise(self, X: np.ndarray, U: np.ndarray, mean_vals=None) -> np.ndarray:
        """sigma(X) U for increments U of shape (P, m); ``mean_vals``: ``shared_means(self._noise, X)``."""
        if self.kind == "matrix":
            if self.m == 0:
                return np.zeros_like(X)
            return self._noise.evaluate(self.cols(X) + self._ucols(U, X), mean_vals=mean_vals)
        if self.kind == "sqrt":
            return self.scale * np.einsum("...ij,...j->...i", self.sqrt_sigma(X),
                                          U.reshape(U.shape[:1] + (1,) * (X.ndim - 2) + U.shape[1:]))
        return self._template_noise(X, U)

    def _template_noise(self, X, U):
        """scale * sum_i sqrt(w_i) U_i (grad F - grad f(X, xi_i)), in bounded memory.

        Paths go in sub-batches and data rows in chunks of ROWS, both of sizes fixed
        by the data set alone, never by how many paths the caller passes: the
        per-path sums (accumulated chunk after chunk, in row order) are then the same
        numbers for every chunking of the paths. The data means inside grad F are
        evaluated once per sub-batch, not once per row chunk.
        """
        M = self.data.shape[0]
        rows = min(M, ROWS)
        per_path = max(1, int(np.prod(X.shape[1:-1]))) * rows * self.d * 8 * 4
        sub = max(1, TEMPLATE_BYTES // per_path)
        out = np.empty(X.shape)
        wU = U * self.sqrt_w
        for a in range(0, X.shape[0], sub):
            Xs = X[a:a + sub]
            xc = [c[..., None] for c in self.cols(Xs)]
            means = self._column.mean_values(xc)
            acc = np.zeros(Xs.shape)
            for r0 in range(0, M, rows):
                dc = [self.data[r0:r0 + rows, j] for j in range(self.data.shape[1])]
                cols = self._column.evaluate(xc, dc, means)  # (p, [n,] R, d)
                Ub = wU[a:a + sub, r0:r0 + rows]
                Ub = Ub.reshape(Ub.shape[:1] + (1,) * (X.ndim - 2) + Ub.shape[1:])
                acc += np.einsum("...kd,...k->...d", cols, Ub)
            out[a:a + sub] = acc
        return self.scale * out

    def columns(self, X):
        """Data-set noise columns grad F - grad f(x, xi_i), shape (..., M, d)."""
        xc = [c[..., None] for c in self.cols(X)]
        dc = [self.data[:, j] for j in range(self.data.shape[1])]
        return self._column.evaluate(xc, dc)

    def sqrt_sigma(self, X):
        """Symmetric square root of Sigma(X) by batched eigh, tiny negative eigenvalues clipped."""
        S = self._sigma.evaluate(self.cols(X)).reshape(X.shape[:-1] + (self.d, self.d))
        lam, V = np.linalg.eigh(S)
        scale = np.max(np.abs(lam), axis=-1, keepdims=True)
        neg = lam < -1e-8 * np.maximum(scale, 1e-300)
        if np.any(neg):
            raise FloatingPointError(
                f"Sigma(x) has clearly negative eigenvalues (min {lam.min():.3g}) at some state: "
                "it is not a covariance there."
            )
        lam = np.clip(lam, 0.0, None)
        return np.einsum("...ij,...j,...kj->...ik", V, np.sqrt(lam), V)

    # ------------------------------------------------------------------ weak order-2 terms

    @cached_property
    def euler_plan(self) -> HoistedExprs:
        """Drift and noise action with their state-only parts hoisted (matrix noise)."""
        return HoistedExprs({"drift": (self.drift_exprs, ()), "noise": (self.noise_exprs, self.u)}, self.x,
                            self.values)

    @cached_property
    def weak2_plan(self) -> HoistedExprs:
        """Every term of the weak order-2 step, state-only parts hoisted into one front
        (computed once per step, not once per direction)."""
        E = self._weak2_exprs
        v, w, u = E["v"], E["w"], self.u
        return HoistedExprs({"drift": (self.drift_exprs, ()), "ito": (E["ito"], ()), "noise": (self.noise_exprs, u),
                             "da": (E["da"], v), "d2a": (E["d2a"], w), "dg": (E["dg"], v + u),
                             "d2g": (E["d2g"], w + u)}, self.x, self.values)

    @cached_property
    def weak2_terms(self):
        """Compiled directional derivatives for the simplified weak Taylor 2.0 scheme."""
        E = self._weak2_exprs
        x, v, w, vals = self.x, E["v"], E["w"], self.values
        return {
            "da": CompiledExprs(E["da"], x + v, vals),
            "d2a": CompiledExprs(E["d2a"], x + w, vals),
            "dg": CompiledExprs(E["dg"], x + v + self.u, vals),
            "d2g": CompiledExprs(E["d2g"], x + w + self.u, vals),
            "ito": CompiledExprs(E["ito"], x, vals),
        }

    @cached_property
    def _weak2_exprs(self):
        """The directional derivatives of the weak order-2 scheme, symbolic (docs/theory.md §2)."""
        if self.kind != "matrix":
            raise ValueError(
                f"the weak order-2 scheme needs the diffusion as an explicit matrix; this SDE's noise is "
                f"'{self.kind}'. Use scheme='euler' (or an SMF, whose noise columns are explicit)."
            )
        bad = self.sde.nondifferentiable()
        if bad:
            raise ValueError(
                f"the weak order-2 scheme differentiates the coefficients, which are not differentiable here "
                f"({', '.join(map(str, bad))}); use scheme='euler'."
            )
        x, d, m = self.x, self.d, self.m
        v, w = _vec("v", d), _vec("w", d)
        a, g = self.drift_exprs, self.noise_exprs

        def first_second(f):
            # D_v f and D^2_w f: first derivatives once, second ones only of non-zero first ones and
            # for i <= j (the Hessian is symmetric): a quarter of the d^3 sympy diffs, or none
            J = [[sp.diff(fl, xi) if xi in fl.free_symbols else sp.S.Zero for xi in x] for fl in f]
            D1 = [sum((v[i] * J[l][i] for i in range(d) if J[l][i] != 0), sp.S.Zero) for l in range(d)]
            D2 = []
            for l in range(d):
                terms = []
                for i in range(d):
                    if J[l][i] == 0:
                        continue
                    for j in range(i, d):
                        # diff(f, xi, xj) in one call, as before: sympy keeps the factored form there
                        # (cheaper integrands for data means than differentiating J again)
                        h = sp.diff(f[l], x[i], x[j]) if x[j] in J[l][i].free_symbols else 0
                        if h != 0:
                            terms.append((1 if i == j else 2) * w[i] * w[j] * h)
                D2.append(sp.Add(*terms))
            return D1, D2

        da, d2a = first_second(a)
        dg, d2g = first_second(g)
        D = self.diffusion_matrix
        # sum_j D_{sigma_j} sigma_j; only the state symbols an entry contains can have a non-zero derivative
        ito = [sp.expand(sum((D[i, k] * sp.diff(D[l, k], x[i]) for k in range(m) for i in range(d)
                              if D[i, k] != 0 and x[i] in D[l, k].free_symbols), sp.S.Zero)) for l in range(d)]
        return {"v": v, "w": w, "da": da, "d2a": d2a, "dg": dg, "d2g": d2g, "ito": ito}
