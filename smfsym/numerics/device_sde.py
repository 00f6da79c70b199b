"""An SDE's steps on an array back end other than numpy (issue 19; :mod:`smfsym.backends`).

The same schemes as :mod:`smfsym.numerics.solvers` (Euler-Maruyama and the simplified weak Taylor 2.0
scheme, with the same regrouping of terms), written in the back end's namespace only: the hoisted
drift, noise action and directional derivatives of :class:`~smfsym.numerics.compiled_sde.NumericSDE`
are lambdified for that namespace, states and increments stay on the device, and no numpy function
touches a device array. Increments come laid out as ``(k, m, P)`` (draw, noise column, path), so each
column is contiguous over the paths.

Supported: explicit-matrix noise (Euler, weak2 and tamed Euler), and data-set noise (an SMF on an empirical law:
Euler); data means over data sets and finite laws are exact sums on the device. A matrix square root
(the SME with ``sqrt`` noise) and quadrature means over continuous laws are refused with a ValueError
naming the back end.
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


class DeviceSDE:
    """The hoisted plans of a :class:`NumericSDE` compiled for ``backend``, and the device steps.

    Parameters
    ----------
    nsde : NumericSDE
    backend : smfsym.backends.Backend
    """

    def __init__(self, nsde: NumericSDE, backend):
        if nsde.kind == "sqrt":
            raise ValueError(f"`backend={backend.name!r}` simulates SDEs with explicit noise columns (a matrix or a "
                             "data set); this SDE's noise is a matrix square root: use backend='numpy'.")
        self.nsde, self.backend, self.xp = nsde, backend, backend.xp
        self.d, self.m = nsde.d, nsde.m

    def per_path_bytes(self, x0) -> int:
        """Working memory of one path in one step on the device, a bound: the increments (as drawn and as
        mapped), and one temporary per array operation of the compiled terms (a lambdified function keeps
        its common subexpressions until it returns; weak2 evaluates on up to two stacked directions), or
        a data set's (rows, d) block."""
        npts = int(np.prod(x0.shape[:-1]))
        if self.nsde.kind == "template":
            return 8 * npts * min(self.nsde.data.shape[0], ROWS) * (self.d + 12)
        plans = [p for p in ("euler_plan", "weak2_plan") if p in self.__dict__]
        ops = max([sum(self.__dict__[p].op_counts().values()) for p in plans], default=0)
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
        if self.nsde.kind == "template":
            if scheme != "euler":
                raise ValueError(f"`scheme`: backend={self.backend.name!r} runs data-set noise with 'euler' only so "
                                 f"far; got {scheme!r} (use backend='numpy' for {scheme} on a data set).")
            self.template_plan
            return
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
        plan = self.euler_plan
        xc = self._cols(X)
        H = plan.front_values(xc)
        b = plan.term("drift", xc, H)
        if not self.m:
            return self._stack([xc[i] + dt * b[i] for i in range(self.d)])
        N = plan.term("noise", xc, H, self._dir_cols(Z[0, ...], X))
        sq = math.sqrt(dt)
        return self._stack([xc[i] + dt * b[i] + sq * N[i] for i in range(self.d)])

    def tamed(self, X, dt: float, Z):
        """Increment-tamed Euler (:class:`~smfsym.numerics.solvers.TamedEuler`): X + D / (1 + sqrt(dt) |D|),
        D = b dt + sigma(X) sqrt(dt) Z[0]; an infinite increment becomes its direction / sqrt(dt)."""
        xp, d = self.xp, self.d
        plan = self.euler_plan
        xc = self._cols(X)
        H = plan.front_values(xc)
        b = plan.term("drift", xc, H)
        sq = math.sqrt(dt)
        D = [dt * b[i] for i in range(d)]
        if self.m:
            N = plan.term("noise", xc, H, self._dir_cols(Z[0, ...], X))
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
