"""An SDE's steps on an array back end other than numpy (issue 19; :mod:`smfsym.backends`).

The same schemes as :mod:`smfsym.numerics.solvers` (Euler-Maruyama and the simplified weak Taylor 2.0
scheme, with the same regrouping of terms), written in the back end's namespace only: the hoisted
drift, noise action and directional derivatives of :class:`~smfsym.numerics.compiled_sde.NumericSDE`
are lambdified for that namespace, states and increments stay on the device, and no numpy function
touches a device array. Increments come laid out as ``(k, m, P)`` (draw, noise column, path), so each
column is contiguous over the paths.

Supported: explicit-matrix noise (SDEs, the SMF and SME with explicit columns) without data means in
the coefficients; other SDEs are refused with a ValueError naming the back end.
"""
from __future__ import annotations

import math
from functools import cached_property

from ..data.means import DataMean
from ..symbolic.lambdify import HoistedExprs
from .compiled_sde import NumericSDE

__all__ = ["DeviceSDE", "DEVICE_SCHEMES"]

#: The schemes with a device step.
DEVICE_SCHEMES = ("euler", "weak2")


class DeviceSDE:
    """The hoisted plans of a :class:`NumericSDE` compiled for ``backend``, and the device steps.

    Parameters
    ----------
    nsde : NumericSDE
    backend : smfsym.backends.Backend
    """

    def __init__(self, nsde: NumericSDE, backend):
        name = backend.name
        if nsde.kind != "matrix":
            raise ValueError(f"`backend={name!r}` simulates SDEs with an explicit noise matrix; this SDE's noise "
                             f"is {nsde.kind!r} (a matrix square root or a data set): use backend='numpy'.")
        exprs = list(nsde.drift_exprs) + list(nsde.noise_exprs)
        if any(getattr(e, "atoms", None) and e.atoms(DataMean) for e in exprs):
            raise ValueError(f"`backend={name!r}` evaluates no data means yet (this SDE's coefficients contain "
                             "expectations over a law without a closed form): use backend='numpy'.")
        self.nsde, self.backend, self.xp = nsde, backend, backend.xp
        self.d, self.m = nsde.d, nsde.m

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
        self.euler_plan if scheme == "euler" else self.weak2_plan

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
        plan = self.euler_plan
        xc = self._cols(X)
        H = plan.front_values(xc)
        b = plan.term("drift", xc, H)
        if not self.m:
            return self._stack([xc[i] + dt * b[i] for i in range(self.d)])
        N = plan.term("noise", xc, H, self._dir_cols(Z[0, ...], X))
        sq = math.sqrt(dt)
        return self._stack([xc[i] + dt * b[i] + sq * N[i] for i in range(self.d)])

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
