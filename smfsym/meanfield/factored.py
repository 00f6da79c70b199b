"""Expressions in (theta, z) split as sums of A(theta) B(theta, z) C(z) for cheap contractions (docs/theory.md §6).

Why: a mean-field step contracts grad phi(theta_i, z_j) against per-node
coefficients. Written as sum_t A_t(theta_i) [sum_j B_t(theta_i, z_j) (C_t(z_j) coef_j)],
only the joint factors B (e.g. 1 - tanh(w.z)^2) are evaluated on the
(particles x nodes) grid, once, and shared by every gradient component; the
factors of theta alone or z alone never are. This is what a hand-written numpy
step does (a (1 - T^2) @ (coef z) instead of forming a (1 - T^2) z per component).
"""
from __future__ import annotations

import numpy as np
import sympy as sp

from ..symbolic.lambdify import CompiledExprs
from .._checks import as_expr

__all__ = ["FactoredExprs"]


class FactoredExprs:
    """Expressions e_r = sum_t A_t(theta) B_t(theta, z) C_t(z); B_t = 1 when absent."""

    def __init__(self, exprs, params, inputs, values, backend=None):
        self.params, self.inputs = tuple(params), tuple(inputs)
        P, Z = set(params), set(inputs)
        A, B, C = [], [], []

        def index(lst, e):
            for k, f in enumerate(lst):
                if f == e:
                    return k
            lst.append(e)
            return len(lst) - 1

        self.terms = []
        for e in exprs:
            e = sp.factor_terms(as_expr(e))
            terms = []
            for term in sp.Add.make_args(e):
                if term == 0:
                    continue
                fa, fb, fc = [], [], []
                for f in sp.Mul.make_args(term):
                    fs = f.free_symbols
                    (fb if (fs & P and fs & Z) else fa if not (fs & Z) else fc).append(f)
                b = sp.Mul(*fb)
                terms.append((index(A, sp.Mul(*fa)), None if b == 1 else index(B, b), index(C, sp.Mul(*fc))))
            self.terms.append(terms)
        self.nA, self.nB, self.nC = len(A), len(B), len(C)
        # bilinear pieces sum_k a_k(theta) c_k(z) inside joint factors (w.z, ...) become one batched
        # matmul (particles x k) @ (k x nodes) instead of k elementwise products on the grid
        lin_forms = []
        for e in B:
            for sub in sp.preorder_traversal(e):
                if isinstance(sub, sp.Add) and sub not in lin_forms and self._bilinear(sub, P, Z) is not None:
                    lin_forms.append(sub)
        lin_forms.sort(key=lambda f: -len(f.args))
        self.lin_syms = [sp.Symbol(f"_smfsym_lin{k}") for k in range(len(lin_forms))]
        repl = dict(zip(lin_forms, self.lin_syms))
        B = [e.xreplace(repl) for e in B]
        la, lc = [], []
        for f in lin_forms:
            pairs = self._bilinear(f, P, Z)
            la.append([a for a, _ in pairs])
            lc.append([c for _, c in pairs])
        # ``backend``: lambdified for an array back end's namespace (smfsym.meanfield.device); None: numpy
        kw = {} if backend is None else {"backend": backend}
        self._lin = [(CompiledExprs(a, self.params, values, **kw), CompiledExprs(c, self.inputs, values, **kw))
                     for a, c in zip(la, lc)]
        self._A = CompiledExprs(A, self.params, values, **kw) if A else None
        self._B = CompiledExprs(B, tuple(self.params) + tuple(self.lin_syms), values, self.inputs, **kw) if B else None
        self._C = CompiledExprs(C, self.inputs, values, **kw) if C else None

    @staticmethod
    def _bilinear(e, P, Z):
        """[(a(theta), c(z))] when e = sum a c with at least two terms, else None."""
        pairs = []
        for term in e.args:
            fa, fc = [], []
            for f in sp.Mul.make_args(term):
                fs = f.free_symbols
                if fs & P and fs & Z:
                    return None
                (fc if fs & Z else fa).append(f)
            if not fa or not any(f.free_symbols & P for f in fa) or not fc:
                return None
            pairs.append((sp.Mul(*fa), sp.Mul(*fc)))
        return pairs if len(pairs) >= 2 else None

    @staticmethod
    def _raw(ce, cols, shape):
        """The compiled outputs as a list of arrays of ``shape`` (no copy into a slab)."""
        outs = ce.fn(*cols)
        return [o if np.shape(o) == shape else np.broadcast_to(o, shape) for o in outs]

    def evaluate(self, X: np.ndarray, zcols: list, zcols_flat: list):
        """Factor values: A list of (P, N), B list of (P, N, M), C list of (P or 1, M).

        ``zcols`` broadcast against (P, N, M) (shape (1, 1, M) or (P, 1, M)); ``zcols_flat``
        are the same columns without the particle axis ((1, M) or (P, M)).
        """
        th = [X[..., r] for r in range(X.shape[-1])]
        PN = X.shape[:2]
        flat_shape = np.broadcast_shapes(*[c.shape for c in zcols_flat]) if zcols_flat else (1, 1)
        M = flat_shape[-1]
        A = self._raw(self._A, th, PN) if self._A is not None else None
        C = self._raw(self._C, zcols_flat, flat_shape) if self._C is not None else None
        B = None
        if self._B is not None:
            lins = []
            for ca, cc in self._lin:
                a = np.stack(self._raw(ca, th, PN), axis=-1)  # (P, N, k)
                c = np.stack(self._raw(cc, zcols_flat, flat_shape), axis=-2)  # (P or 1, k, M)
                lins.append(np.matmul(a, c))
            B = self._raw(self._B, [t[..., None] for t in th] + lins + list(zcols), PN + (M,))
        return A, B, C

    def mean_over_particles(self, r, vals, weights=None):
        """(1/N) sum_i weights_i e_r(theta_i, z_j): (P, M). ``weights`` (P, N) or None."""
        A, B, C = vals
        N = A[0].shape[1]
        out = 0.0
        for a, b, c in self.terms[r]:
            wa = A[a] if weights is None else A[a] * weights
            if b is None:
                s = wa.sum(axis=1)[:, None]
            elif B[b].shape[-1] == 1:
                s = np.einsum("pn,pn->p", wa, B[b][..., 0])[:, None]
            else:  # contiguous rows: matmul on a strided view falls back to a slow loop
                s = np.matmul(np.ascontiguousarray(wa)[:, None, :], B[b])[:, 0, :]
            out = out + s * C[c]
        return out / N

    def contract(self, r, vals, coef):
        """sum_j e_r(theta_i, z_j) coef[P, j]: (P, N)."""
        A, B, C = vals
        out = 0.0
        for a, b, c in self.terms[r]:
            cc = C[c] * coef  # (P, M)
            if b is None:
                s = cc.sum(axis=1)[:, None]
            elif cc.shape[1] == 1:  # one sample (SGD, B = 1): a product, not a matrix-vector call
                s = B[b][..., 0] * cc
            else:
                s = np.matmul(B[b], cc[:, :, None])[..., 0]
            out = out + A[a] * s
        return np.broadcast_to(out, A[0].shape[:2])

    def full(self, r, vals):
        """e_r on the grid (P, N, M) (diagnostics only: materialises the grid)."""
        A, B, C = vals
        out = 0.0
        for a, b, c in self.terms[r]:
            t = A[a][:, :, None] * C[c][:, None, :]
            out = out + (t if b is None else t * B[b])
        return out
