"""An SDE's steps on an array back end other than numpy (issue 19; :mod:`smfsym.backends`).

The same schemes as :mod:`smfsym.numerics.solvers` (Euler-Maruyama and the simplified weak Taylor 2.0
scheme, with the same regrouping of terms), written in the back end's namespace only: the hoisted
drift, noise action and directional derivatives of :class:`~smfsym.numerics.compiled_sde.NumericSDE`
are lambdified for that namespace, states and increments stay on the device, and no numpy function
touches a device array. Increments come laid out as ``(k, m, P)`` (draw, noise column, path), so each
column is contiguous over the paths.

Supported: explicit-matrix noise (Euler, weak2 and tamed Euler), data-set noise (an SMF on an empirical law:
Euler and weak2, the data-set sums in row chunks of ``ROWS`` as numpy's general path) and the SME's matrix
square root sqrt(eta) Sigma(x)^{1/2} (Euler and tamed Euler; numpy refuses weak2 there too: the root is
not differentiable where Sigma is singular). The root is numpy's: a batched ``xp.linalg.eigh`` per path,
eigenvalues down to -1e-8 times the largest |eigenvalue| clipped to 0, clearly negative ones a FloatingPointError
(one scalar comes back to the host per step for that check), a non-finite Sigma a NaN noise that the
driver reports as a lost path. Data means over data sets and finite laws are exact sums on the device;
quadrature means over continuous laws are refused with a ValueError naming the back end.
"""
from __future__ import annotations

import math
from functools import cached_property

import numpy as np

from ..symbolic.lambdify import CompiledExprs, HoistedExprs
from .compiled_sde import ROWS, NumericSDE

__all__ = ["DeviceSDE", "DEVICE_SCHEMES"]

#: The schemes with a device step.
DEVICE_SCHEMES = ("euler", "weak2", "tamed")
#: Largest batch of one ``xp.linalg.eigh`` call: CuPy runs a stacked eigh as cuSOLVER's syevjBatched, whose
#: workspace is about 1,050 elements per matrix (d <= 32) counted in a 32-bit int, so one call over 2**21 paths
#: fails (CUSOLVER_STATUS_INVALID_VALUE, cupy/cupy#7261) and one over 2**20 takes 8 GiB; 2**16 paths: 0.5 GiB.
EIGH_BATCH = 2**16


class DeviceSDE:
    """The hoisted plans of a :class:`NumericSDE` compiled for ``backend``, and the device steps.

    Parameters
    ----------
    nsde : NumericSDE
    backend : smfsym.backends.Backend
    """

    def __init__(self, nsde: NumericSDE, backend):
        self.nsde, self.backend, self.xp = nsde, backend, backend.xp
        self.d, self.m = nsde.d, nsde.m

    def per_path_bytes(self, x0) -> int:
        """Working memory of one path in one step on the device, a bound: the increments (as drawn and as
        mapped), and one temporary per array operation of the compiled terms (a lambdified function keeps
        its common subexpressions until it returns; weak2 evaluates on up to two stacked directions), or
        a data set's (rows, d) block."""
        npts = int(np.prod(x0.shape[:-1]))
        if self.nsde.kind == "template":
            rows = self.__dict__["dataset_weak2_plan"][1] if "dataset_weak2_plan" in self.__dict__ else ()
            ops = max([ce.op_count for ce in rows], default=0)
            return 8 * npts * min(self.nsde.data.shape[0], ROWS) * (self.d + 12 + 2 * ops)
        plans = [p for p in ("euler_plan", "weak2_plan") if p in self.__dict__]
        ops = max([sum(self.__dict__[p].op_counts().values()) for p in plans], default=0)
        if "sqrt_plan" in self.__dict__:  # Sigma, its eigenvectors, the root (d x d each), the eigenvalues
            ops = self.sqrt_plan.op_count
            return 8 * (4 * 3 * self.m + npts * (2 * ops + 8 * self.d * self.d + 64 * self.d))
        return 8 * (4 * 3 * self.m + npts * (2 * ops + 64 * self.d))

    @cached_property
    def euler_plan(self) -> HoistedExprs:
        n = self.nsde
        return HoistedExprs({"drift": (n.drift_exprs, ()), "noise": (n.noise_exprs, n.u)}, n.x, n.values,
                            backend=self.backend)

    @cached_property
    def weak2_plan(self) -> HoistedExprs:
        n = self.nsde
        E = n._weak2_exprs
        v, w, u = E["v"], E["w"], n.u
        return HoistedExprs({"drift": (n.drift_exprs, ()), "ito": (E["ito"], ()), "noise": (n.noise_exprs, u),
                             "da": (E["da"], v), "d2a": (E["d2a"], w), "dg": (E["dg"], v + u),
                             "d2g": (E["d2g"], w + u)}, n.x, n.values, backend=self.backend)

    def prepare(self, scheme: str) -> None:
        """Compile the plan of ``scheme`` (errors show before a run starts)."""
        if scheme not in DEVICE_SCHEMES:
            raise ValueError(f"`scheme`: backend={self.backend.name!r} runs {list(DEVICE_SCHEMES)}; got {scheme!r}.")
        kind = self.nsde.kind
        if kind == "template" and scheme == "tamed":
            raise ValueError(f"`scheme`: backend={self.backend.name!r} runs data-set noise with 'euler' and 'weak2'; "
                             f"got {scheme!r} (use backend='numpy' for {scheme} on a data set).")
        if kind == "template":
            self.dataset_weak2_plan if scheme == "weak2" else self.template_plan
        elif kind == "sqrt":
            if scheme == "weak2":
                self.nsde._weak2_exprs  # numpy's refusal: the weak order-2 scheme needs an explicit matrix
            self.sqrt_plan
        else:
            self.weak2_plan if scheme == "weak2" else self.euler_plan

    @cached_property
    def template_plan(self):
        """Data-set noise (docs/theory.md §3): drift and the row-free part C0 of the noise column in one
        compilation (their data means on the device), the per-row part r, the data columns, sqrt(w)."""
        n, b = self.nsde, self.backend
        c0, r = n._template_parts
        front = CompiledExprs(list(n.drift_exprs) + list(c0), n.x, n.values, backend=b)
        rows = CompiledExprs(r, n.x, n.values, n.sde.diffusion.law.symbols, backend=b)
        if rows.means and not rows.means_use_only(self.d):  # pragma: no cover - a mean of a row-dependent term
            raise ValueError(f"`backend={b.name!r}`: a data mean inside a per-row term of the noise; use backend='numpy'.")
        data = [b.asarray(n.data[:, j]) for j in range(n.data.shape[1])]
        return front, rows, data, b.asarray(n.sqrt_w)

    @cached_property
    def dataset_weak2_plan(self):
        """The weak order-2 terms of data-set noise (:attr:`NumericSDE._dataset_weak2_exprs`) on the device: the
        hoisted row-free terms (data means as exact sums), the per-row parts r, D_v r, D^2_w r, the data
        columns and sqrt(w)."""
        n, b = self.nsde, self.backend
        E = n._dataset_weak2_exprs
        plan = HoistedExprs(E["terms"], n.x, n.values, backend=b)
        rows = [CompiledExprs(e, st, n.values, E["data"], backend=b) for e, st in E["rows"]]
        data = [b.asarray(n.data[:, j]) for j in range(n.data.shape[1])]
        return plan, rows, data, b.asarray(n.sqrt_w)

    @cached_property
    def sqrt_plan(self) -> CompiledExprs:
        """Drift and the d x d entries of Sigma (row by row) of an SDE with ``sqrt`` noise, one compilation."""
        n = self.nsde
        return CompiledExprs(list(n.drift_exprs) + list(n.sigma_exprs), n.x, n.values, backend=self.backend)

    def root(self, S):
        """Symmetric square root of Sigma ``S`` (..., d, d) on the device, as numpy's
        :meth:`NumericSDE.sqrt_sigma`: a batched eigh, eigenvalues down to -1e-8 times the largest clipped to
        0, a clearly negative one a FloatingPointError, a non-finite Sigma a NaN root (the driver then
        reports the path as lost) instead of eigh failing on it. The bound is max(1e-8, 64 eps) times the
        largest |eigenvalue|: numpy's 1e-8 in float64, 64 eps (7.6e-6, the size of eigh's own rounding) in float32.

        Examples
        --------
        >>> import sympy as sp, smfsym
        >>> from smfsym.backends import get_backend
        >>> from smfsym.symbolic.sde import MatrixSqrt
        >>> x, y = sp.symbols("x y")
        >>> S = sp.Matrix([[2, x], [x, 2]])
        >>> sde = smfsym.SDE([0, 0], MatrixSqrt(S, sp.Integer(1)), [x, y])
        >>> b = get_backend("array_api_strict")
        >>> R = DeviceSDE(NumericSDE(sde), b).root(b.asarray([[[2.0, 1.0], [1.0, 2.0]]]))
        >>> np.round(b.to_numpy(R @ R), 12).tolist()
        [[[2.0, 1.0], [1.0, 2.0]]]
        >>> DeviceSDE(NumericSDE(sde), b).root(b.asarray([[[1.0, 2.0], [2.0, 1.0]]]))
        Traceback (most recent call last):
        ...
        FloatingPointError: Sigma(x) has clearly negative eigenvalues (min -1) at some state: it is not a covariance there (backend 'array_api_strict').
        """
        xp = self.xp
        finite = xp.all(xp.isfinite(S), axis=(-2, -1))
        fin = xp.reshape(finite, tuple(finite.shape) + (1, 1))
        lam, V = self._eigh(xp.where(fin, S, 0.0))
        scale = xp.max(xp.abs(lam), axis=-1, keepdims=True)
        tol = max(1e-8, 64 * float(xp.finfo(lam.dtype).eps))  # 1e-8 in float64, as numpy's
        neg = lam < -tol * xp.maximum(scale, 1e-300)
        if bool(xp.any(neg)):  # one host copy per step (CuPy's batched eigh synchronises for its info too)
            raise FloatingPointError(
                f"Sigma(x) has clearly negative eigenvalues (min {float(xp.min(lam)):.3g}) at some state: "
                f"it is not a covariance there (backend {self.backend.name!r}).")
        R = xp.matmul(V * xp.sqrt(xp.maximum(lam, 0.0))[..., None, :], xp.matrix_transpose(V))
        return xp.where(fin, R, float("nan"))

    def _eigh(self, S):
        """``xp.linalg.eigh`` of a stack of matrices, in batches of at most :data:`EIGH_BATCH` (each matrix's
        decomposition is its own: the numbers do not depend on the batching)."""
        xp = self.xp
        lead, dd = tuple(S.shape[:-2]), tuple(S.shape[-2:])
        n = math.prod(lead)
        if n <= EIGH_BATCH:
            return xp.linalg.eigh(S)
        flat = xp.reshape(S, (n,) + dd)
        parts = [xp.linalg.eigh(flat[i:min(n, i + EIGH_BATCH), ...]) for i in range(0, n, EIGH_BATCH)]
        lam = xp.concat([p[0] for p in parts], axis=0)
        V = xp.concat([p[1] for p in parts], axis=0)
        return xp.reshape(lam, lead + dd[-1:]), xp.reshape(V, lead + dd)

    def _drift_noise(self, X, xc, Z0):
        """Drift b(X) and noise action sigma(X) Z0 (d arrays each; noise None without noise columns) for
        matrix or ``sqrt`` noise; ``Z0`` (m, P)."""
        if self.nsde.kind == "sqrt":
            xp, d = self.xp, self.d
            vals = self.sqrt_plan.evaluate_list(xc)
            lead = tuple(X.shape[:-1])
            S = xp.reshape(xp.stack(vals[d:], axis=-1), lead + (d, d))
            z = xp.reshape(xp.permute_dims(Z0, (1, 0)), (X.shape[0],) + (1,) * (X.ndim - 2) + (d, 1))
            N = xp.matmul(self.root(S), z)[..., 0] * self.nsde.scale
            return vals[:d], [N[..., i] for i in range(d)]
        plan = self.euler_plan
        H = plan.front_values(xc)
        b = plan.term("drift", xc, H)
        if not self.m:
            return b, None
        return b, plan.term("noise", xc, H, self._dir_cols(Z0, X))

    def euler_template(self, X, dt: float, Z):
        """Euler on data-set noise sigma(X) u = scale sum_i sqrt(w_i) u_i (C0(X) + r(X, xi_i)); ``Z`` (1, M, P).
        Rows in chunks of ``ROWS`` (the sums accumulate in row order, so they do not depend on the paths'
        chunking)."""
        xp, d = self.xp, self.d
        front, rows, data, sw = self.template_plan
        xc = self._cols(X)
        vals = front.evaluate_list(xc)
        b, C0 = vals[:d], vals[d:]
        P, M = X.shape[0], sw.shape[0]
        tail = (1,) * (X.ndim - 2)
        wU = xp.permute_dims(Z[0, ...], (1, 0)) * sw  # (P, M)
        total = xp.reshape(xp.sum(wU, axis=1), (P,) + tail)
        xr = [xp.reshape(c, tuple(c.shape) + (1,)) for c in xc]  # (P, [n,] 1) against rows (R,)
        mv = [xp.reshape(v, tuple(v.shape) + (1,)) for v in rows.mean_values(xc)] if rows.means else []
        acc = [C0[i] * total for i in range(d)]
        for r0 in range(0, M, ROWS):
            r1 = min(M, r0 + ROWS)
            R = rows.evaluate_list(xr + [c[r0:r1] for c in data], mean_vals=mv,
                                   shape=tuple(X.shape[:-1]) + (r1 - r0,))
            w = xp.reshape(wU[:, r0:r1], (P,) + tail + (r1 - r0,))
            acc = [acc[i] + xp.sum(R[i] * w, axis=-1) for i in range(d)]
        sq = math.sqrt(dt) * self.nsde.scale
        return self._stack([xc[i] + dt * b[i] + sq * acc[i] for i in range(d)])

    # ------------------------------------------------------------------ helpers

    def _cols(self, X) -> list:
        return [X[..., i] for i in range(self.d)]

    def _dir_cols(self, Z, X) -> list:
        """Columns of increments ``Z`` (..., m, P) as m arrays (..., P[, 1...]) broadcasting against the
        state columns of X (P, [n,] d): an n-point motion shares each path's increment."""
        xp = self.xp
        tail = (1,) * (X.ndim - 2)
        out = []
        for k in range(Z.shape[-2]):
            c = Z[..., k, :]
            out.append(xp.reshape(c, tuple(c.shape) + tail) if tail else c)
        return out

    def _stack(self, cols):
        return self.xp.stack(cols, axis=-1)

    # ------------------------------------------------------------------ steps

    def euler(self, X, dt: float, Z):
        """X + b dt + sigma(X) sqrt(dt) Z[0]; ``Z`` of shape (k, m, P)."""
        if self.nsde.kind == "template":
            return self.euler_template(X, dt, Z)
        xc = self._cols(X)
        b, N = self._drift_noise(X, xc, None if Z is None else Z[0, ...])
        if N is None:
            return self._stack([xc[i] + dt * b[i] for i in range(self.d)])
        sq = math.sqrt(dt)
        return self._stack([xc[i] + dt * b[i] + sq * N[i] for i in range(self.d)])

    def tamed(self, X, dt: float, Z):
        """Increment-tamed Euler (:class:`~smfsym.numerics.solvers.TamedEuler`): X + D / (1 + sqrt(dt) |D|),
        D = b dt + sigma(X) sqrt(dt) Z[0]; an infinite increment becomes its direction / sqrt(dt)."""
        xp, d = self.xp, self.d
        xc = self._cols(X)
        b, N = self._drift_noise(X, xc, None if Z is None else Z[0, ...])
        sq = math.sqrt(dt)
        D = [dt * b[i] for i in range(d)]
        if N is not None:
            D = [D[i] + sq * N[i] for i in range(d)]
        norm2 = D[0] * D[0]
        for i in range(1, d):
            norm2 = norm2 + D[i] * D[i]
        norm = xp.sqrt(norm2)
        inf = xp.isinf(norm)
        return self._stack([xc[i] + xp.where(inf, xp.sign(D[i]) / sq, D[i] / (1.0 + sq * norm)) for i in range(d)])

    def weak2(self, X, dt: float, Z):
        """The simplified weak Taylor 2.0 step of :class:`~smfsym.numerics.solvers.WeakTaylor2`, on the device;
        ``Z`` of shape (4, m, P): dW / sqrt(dt), zeta, alpha, beta."""
        if self.nsde.kind == "template":
            return self.weak2_template(X, dt, Z)
        plan, d = self.weak2_plan, self.d
        xc = self._cols(X)
        H = plan.front_values(xc)
        b = plan.term("drift", xc, H)
        if not self.m:
            Db_b = plan.term("da", xc, H, b)
            return self._stack([xc[i] + dt * b[i] + 0.5 * dt**2 * Db_b[i] for i in range(d)])
        sq = math.sqrt(dt)
        N01 = plan.term("noise", xc, H, self._dir_cols(Z[0:2, ...], X))  # d arrays (2, P[, n])
        N23 = plan.term("noise", xc, H, self._dir_cols(Z[2:4, ...], X))
        v = [dt * b[i] + sq * N01[i][0, ...] for i in range(d)]
        z0 = self._dir_cols(Z[0, ...], X)
        acc = [xc[i] + v[i] for i in range(d)]

        def add(c, terms):
            for i in range(d):
                acc[i] = acc[i] + c * terms[i]

        add(0.5 * dt, plan.term("da", xc, H, v))
        add(0.5 * sq, plan.term("dg", xc, H, v + z0))
        add(-0.5 * dt, plan.term("ito", xc, H))
        s_zeta = [N01[i][1, ...] for i in range(d)]
        if not plan.is_zero("d2a"):
            add(0.25 * dt**2, plan.term("d2a", xc, H, s_zeta))
        if not plan.is_zero("d2g"):
            add(0.25 * dt * sq, plan.term("d2g", xc, H, s_zeta + z0))
        # Levy-area surrogate: directions (sigma alpha, sigma beta) against increments (beta, alpha)
        swapped = self.xp.stack([Z[3, ...], Z[2, ...]], axis=0)
        area = plan.term("dg", xc, H, [N23[i] for i in range(d)] + self._dir_cols(swapped, X))
        c = 0.5 * dt / math.sqrt(2.0)
        return self._stack([acc[i] + c * (area[i][0, ...] - area[i][1, ...]) for i in range(d)])

    # ------------------------------------------------------------------ weak order 2 on data-set noise

    def _row_sums(self, ce, X, xc, wU, dirs=()) -> list:
        """sum_i wU[:, i] e(X, [V,] xi_i) for the per-row expressions ``ce`` (d arrays shaped like a state
        column): rows in chunks of ``ROWS``, accumulated in row order (a path's sums do not depend on the
        chunking of the paths). ``wU`` (P, M); ``dirs``: direction columns shaped like the state's."""
        xp = self.xp
        _, _, data, _ = self.dataset_weak2_plan
        P, M = wU.shape
        tail = (1,) * (X.ndim - 2)
        xr = [xp.reshape(c, tuple(c.shape) + (1,)) for c in list(xc) + list(dirs)]
        mv = [xp.reshape(v, tuple(v.shape) + (1,)) for v in ce.mean_values(list(xc) + list(dirs))] if ce.means else []
        acc = None
        for r0 in range(0, M, ROWS):
            r1 = min(M, r0 + ROWS)
            R = ce.evaluate_list(xr + [c[r0:r1] for c in data], mean_vals=mv, shape=tuple(X.shape[:-1]) + (r1 - r0,))
            w = xp.reshape(wU[:, r0:r1], (P,) + tail + (r1 - r0,))
            part = [xp.sum(R[i] * w, axis=-1) for i in range(self.d)]
            acc = part if acc is None else [acc[i] + part[i] for i in range(self.d)]
        return acc

    def dataset_action(self, X, xc, H, U, order: int, V=None) -> list:
        """D^order_V (sigma(X) U) for data-set noise (numpy's :meth:`NumericSDE.dataset_action`, one
        direction): ``U`` (M, P), ``V`` d arrays (order 1, 2); d arrays shaped like a state column."""
        xp, d = self.xp, self.d
        plan, rows, _, sw = self.dataset_weak2_plan
        dirs = [] if order == 0 else list(V)
        C = plan.term(("c0", "dc0", "d2c0")[order], xc, H, dirs)
        wU = xp.permute_dims(U, (1, 0)) * sw  # (P, M)
        total = xp.reshape(xp.sum(wU, axis=1), (X.shape[0],) + (1,) * (X.ndim - 2))
        S = self._row_sums(rows[order], X, xc, wU, dirs)
        return [self.nsde.scale * (C[i] * total + S[i]) for i in range(d)]

    def weak2_template(self, X, dt: float, Z):
        """The weak order-2 step on data-set noise (numpy's ``WeakTaylor2._step_dataset``, the same terms in
        the same order); ``Z`` (4, M, P): dW / sqrt(dt), zeta, alpha, beta."""
        plan, d = self.dataset_weak2_plan[0], self.d
        xc = self._cols(X)
        H = plan.front_values(xc)
        sq = math.sqrt(dt)
        N0, Nz, Na, Nb = (self.dataset_action(X, xc, H, Z[k, ...], 0) for k in range(4))
        b = plan.term("drift", xc, H)
        v = [dt * b[i] + sq * N0[i] for i in range(d)]  # dt b + sigma dW
        G10 = self.dataset_action(X, xc, H, Z[0, ...], 1, v)
        Gab = self.dataset_action(X, xc, H, Z[3, ...], 1, Na)  # D_{sigma alpha}(sigma beta)
        Gba = self.dataset_action(X, xc, H, Z[2, ...], 1, Nb)
        G2 = self.dataset_action(X, xc, H, Z[0, ...], 2, Nz)
        da, ito, d2a = plan.term("da", xc, H, v), plan.term("ito", xc, H), plan.term("d2a", xc, H, Nz)
        c = 0.5 * dt / math.sqrt(2.0)
        out = []
        for i in range(d):
            o = xc[i] + v[i]
            o = o + 0.5 * dt * da[i]
            o = o + 0.5 * sq * G10[i]
            o = o + -0.5 * dt * ito[i]
            o = o + 0.25 * dt**2 * d2a[i]
            o = o + 0.25 * dt * sq * G2[i]
            out.append(o + c * (Gab[i] - Gba[i]))
        return self._stack(out)
