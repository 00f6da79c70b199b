"""Numeric form of an SDE: compiled drift, noise action and derivative terms.

Compiled once per simulation (never inside the time loop). The noise enters
only through its *action* sigma(x) u on an increment u, compiled as d
expressions in (x, u), so the d x m matrix is never materialised for
explicit-matrix noise; the weak order-2 solver also gets the symbolic
directional derivatives it needs (docs/theory.md §9; Kloeden-Platen ch. 14).
The steps use :attr:`NumericSDE.euler_plan` / :attr:`NumericSDE.weak2_plan`: every
state-only subterm of every term hoisted into one front evaluated once per step
(:class:`~smfsym.symbolic.lambdify.HoistedExprs`), the rest evaluated on stacked directions.

Data-set noise (an SMF on an empirical law, M explicit columns) is a sum over the rows; where the
loss reads the parameters through linear forms of the row, those sums are matmuls
(:attr:`NumericSDE.la`, :mod:`smfsym.numerics.linear_forms`), elsewhere one lambdified per-row term in
chunks of rows. Weak order 2 works on both: the derivatives of the noise columns and the
Ito-Stratonovich vector are data-set sums too (:meth:`NumericSDE.dataset_action`).
"""
from __future__ import annotations

from functools import cached_property
from typing import Mapping

import numpy as np
import sympy as sp

from .._checks import numeric_values
from ..symbolic.lambdify import CompiledExprs, HoistedExprs
from ..symbolic.sde import SDE
from .._checks import as_expr
from .linear_forms import LinearFormSplit, split_linear_forms, RowSums
from .linear_forms import la_blocks
from .linear_forms import la_drift_noise
from ..data.means import DataMean

__all__ = ["NumericSDE"]

#: Data rows per chunk of the data-set noise action (fixed: per-path sums must not depend on chunking).
ROWS = 1024
#: Working-set target of one path sub-batch of the data-set noise action (bytes).
TEMPLATE_BYTES = 32 * 2**20
#: The linear-algebra form is taken with at most d + this many distinct per-row scalars in the noise
#: (the general path evaluates d outputs per row; a constant or a bare margin costs next to nothing).
MAX_EXTRA_SCALARS = 3


def _vec(name, n):
    return tuple(sp.Dummy(f"{name}{i}") for i in range(n))


def _first_second(f, x, v, w):
    """D_v f and D^2_w f of the expressions ``f`` in the state ``x``, symbolic.

    First derivatives once, second ones only of non-zero first ones and for i <= j (the Hessian
    is symmetric): a quarter of the d^3 sympy diffs, or none.
    """
    d = len(x)
    J = [[sp.diff(fl, xi) if xi in fl.free_symbols else sp.S.Zero for xi in x] for fl in f]
    D1 = [sum((v[i] * J[l][i] for i in range(d) if J[l][i] != 0), sp.S.Zero) for l in range(len(f))]
    D2 = []
    for l in range(len(f)):
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


class NumericSDE:
    """An SDE with every symbol but the state bound to a number.

    Parameters
    ----------
    sde : SDE
    values : mapping
        Numbers for constants, law parameters and the learning rate.
    linear_algebra : bool or None
        Data-set noise only: evaluate the data-set sums as matmuls over the margins when the loss
        sees the parameters through linear forms of the row (:mod:`smfsym.numerics.linear_forms`). None
        (default): where that shape is detected; False: the general per-row evaluation; True:
        required (ValueError where the shape is absent).
    """

    def __init__(self, sde: SDE, values: Mapping | None = None, linear_algebra: bool | None = None):
        if linear_algebra not in (None, True, False):
            raise ValueError(f"`linear_algebra` must be None, True or False; got {linear_algebra!r}.")
        self.linear_algebra = linear_algebra
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
        if mean_vals is None and self.kind == "template" and self.la is not None:
            return self.drift_noise(X, None)[0]
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
        if self.la is not None:
            return self.drift_noise(X, U)[1]
        return self._template_noise(X, U)

    def _template_noise(self, X, U):
        """scale * sum_i sqrt(w_i) U_i (grad F - grad f(X, xi_i)), in bounded memory (general path)."""
        return self.scale * self._row_sums(self._column, X, U * self.sqrt_w)

    def _row_sums(self, ce, X, wU, extra=()):
        """sum_i wU_i e(X, [V,] xi_i) for the compiled per-row expressions ``ce``, in bounded memory.

        Paths go in sub-batches and data rows in chunks of ROWS, both of sizes fixed
        by the data set alone, never by how many paths the caller passes: the
        per-path sums (accumulated chunk after chunk, in row order) are then the same
        numbers for every chunking of the paths. The data means inside ``ce`` are
        evaluated once per sub-batch, not once per row chunk. ``extra``: direction
        columns shaped like the state's (they follow the state symbols in ``ce``).
        """
        M = self.data.shape[0]
        rows = min(M, ROWS)
        per_path = max(1, int(np.prod(X.shape[1:-1]))) * rows * self.d * 8 * 4
        sub = max(1, TEMPLATE_BYTES // per_path)
        out = np.empty(X.shape)
        for a in range(0, X.shape[0], sub):
            Xs = X[a:a + sub]
            xc = [c[..., None] for c in self.cols(Xs)] + [c[a:a + sub][..., None] for c in extra]
            means = ce.mean_values(xc)
            acc = np.zeros(Xs.shape)
            for r0 in range(0, M, rows):
                dc = [self.data[r0:r0 + rows, j] for j in range(self.data.shape[1])]
                cols = ce.evaluate(xc, dc, means)  # (p, [n,] R, d)
                Ub = wU[a:a + sub, r0:r0 + rows]
                Ub = Ub.reshape(Ub.shape[:1] + (1,) * (X.ndim - 2) + Ub.shape[1:])
                acc += np.einsum("...kd,...k->...d", cols, Ub)
            out[a:a + sub] = acc
        return out

    def columns(self, X):
        """Data-set noise columns grad F - grad f(x, xi_i), shape (..., M, d)."""
        xc = [c[..., None] for c in self.cols(X)]
        dc = [self.data[:, j] for j in range(self.data.shape[1])]
        return self._column.evaluate(xc, dc)

    def sqrt_sigma(self, X):
        """Symmetric square root of Sigma(X) by batched eigh, tiny negative eigenvalues clipped."""
        S = self._sigma.evaluate(self.cols(X)).reshape(X.shape[:-1] + (self.d, self.d))
        finite = np.isfinite(S).all(axis=(-2, -1))
        if not finite.all():
            # a state outside Sigma's domain (a second moment below 0 under sqrt, say): NaN noise for those
            # paths, so the driver reports them (step, time, fraction) instead of eigh failing on NaN
            R = self._root_of(np.where(finite[..., None, None], S, 0.0))
            return np.where(finite[..., None, None], R, np.nan)
        return self._root_of(S)

    @staticmethod
    def _root_of(S):
        """Symmetric square root of finite covariance matrices S (..., d, d)."""
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
        """The directional derivatives of the weak order-2 scheme, symbolic (docs/theory.md §9)."""
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

        da, d2a = _first_second(a, x, v, w)
        dg, d2g = _first_second(g, x, v, w)
        D = self.diffusion_matrix
        # sum_j D_{sigma_j} sigma_j; only the state symbols an entry contains can have a non-zero derivative
        ito = [sp.expand(sum((D[i, k] * sp.diff(D[l, k], x[i]) for k in range(m) for i in range(d)
                              if D[i, k] != 0 and x[i] in D[l, k].free_symbols), sp.S.Zero)) for l in range(d)]
        return {"v": v, "w": w, "da": da, "d2a": d2a, "dg": dg, "d2g": d2g, "ito": ito}

    # ------------------------------------------------------------------ data-set noise (template)

    @cached_property
    def _template_parts(self):
        """The noise column split as C0(x) + r(x, xi): its row-free part (data means, state) and its
        per-row part (the terms that read the data symbols)."""
        syms = set(self.sde.diffusion.law.symbols)
        c0, r = [], []
        for e in self.column_exprs:
            terms = sp.Add.make_args(e)
            r.append(sp.Add(*[t for t in terms if t.free_symbols & syms]))
            c0.append(sp.Add(*[t for t in terms if not (t.free_symbols & syms)]))
        return c0, r

    @cached_property
    def la(self):
        """The linear-algebra plan of the Euler step's data-set sums (drift means, noise action),
        or None where the loss has no linear-form shape or ``linear_algebra=False``."""
        if self.kind != "template" or self.linear_algebra is False:
            return None
        return self._row_sums_plan([self._drift_c0], (0,))

    def _row_sums_plan(self, mean_ces, orders):
        """A :class:`~smfsym.numerics.linear_forms.RowSums` for the data means of ``mean_ces`` and the per-row
        noise terms of the given derivative orders (0: r, 1: D_v r, 2: D^2_w r); None (or ValueError
        with ``linear_algebra=True``) where the shape is absent."""
        try:  # margins with their data factors first (cheapest where it gives few margins), then factored
            return self._row_sums_plan_with(mean_ces, orders, factor_data=False)
        except ValueError:
            return self._row_sums_plan_with(mean_ces, orders, factor_data=True, strict=self.linear_algebra)

    def _row_sums_plan_with(self, mean_ces, orders, factor_data, strict=True):

        law = self.sde.diffusion.law
        split = LinearFormSplit(self.x, law.symbols, factor_data)
        nodes = []
        for ce in mean_ces:
            nodes += [n for n in ce.mean_nodes if n not in nodes]
        why = None
        if any(set(n.data_symbols) != set(law.symbols) for n in nodes):
            why = "a data mean reads other data than the data set"
        rows = self._template_parts[1]
        stages = {}
        try:
            found = None if why else split_linear_forms(split, {"means": [n.expr for n in nodes], "rows0": rows},
                                                            state_ok=("means",))
            if found is None:
                why = why or "the per-row terms read the parameters outside linear forms of the row"
            else:
                pool, coefs = found
                if not split.margins:
                    why = "no linear form of the parameters in the per-row terms"
                elif len(split.margins) > self.d or len(coefs["rows0"]) > self.d + MAX_EXTRA_SCALARS:
                    why = "more margins or per-row scalars than the general path evaluates (no gain)"
                else:
                    stages["x"] = (pool, (), {"means": (coefs["means"], len(nodes), "w"),
                                              "rows0": (coefs["rows0"], self.d, "sqrt_w")})
                    nu = [sp.Symbol(f"_smfsym_nu{q}") for q in range(len(split.margins))]
                    R = [split.substitute(e) for e in rows]
                    for k in (1, 2):
                        if k not in orders:
                            continue
                        if k == 1:
                            Rk = [sum((sp.diff(e, mu) * n for mu, n in zip(split.mu, nu)), sp.S.Zero) for e in R]
                        else:
                            Rk = [sum((sp.diff(e, m1, m2) * n1 * n2 for m1, n1 in zip(split.mu, nu)
                                       for m2, n2 in zip(split.mu, nu)), sp.S.Zero) for e in R]
                        p_k, c_k = split_linear_forms(split, {f"rows{k}": Rk}, nu)
                        stages["v" if k == 1 else "w"] = (p_k, nu, {f"rows{k}": (c_k[f"rows{k}"], self.d, "sqrt_w")})
        except ValueError as err:  # a data mean inside a per-row term
            why = str(err)
        if why:
            if strict:
                raise ValueError(f"`linear_algebra=True` but the data-set sums have no linear-algebra form: {why}.")
            return None
        plan = RowSums(split, self.data, law.weights, stages)
        plan.mean_nodes = nodes
        return plan

    def la_means(self, plan, X) -> dict:
        """The data means of ``plan`` at states X (P, [n,] d) by matmuls: node -> array (P, [n])."""

        npts = int(np.prod(X.shape[1:-1]))
        out = np.empty((X.shape[0] * npts, len(plan.mean_nodes)))
        for a, b, Xf, _ in la_blocks(X, plan.block):
            out[a * npts:b * npts] = plan.block_sums("x", "means", Xf)[:(b - a) * npts]
        return {n: out[:, j].reshape(X.shape[:-1]) for j, n in enumerate(plan.mean_nodes)}

    def drift_noise(self, X, Z0, factor: float = 1.0):
        """Drift b(X) and data-set noise action sigma(X) (factor Z0) (Z0 of shape (P, M), or None for
        the drift alone) in one pass over the data: on the linear-algebra path the per-row scalars
        are evaluated once for both, and ``factor`` scales the d outputs, not the M inputs."""

        plan = self.la
        if plan is None:
            return self.drift(X), (None if Z0 is None else self._template_noise(X, factor * Z0))
        index = {n: j for j, n in enumerate(plan.mean_nodes)}
        ce = self._drift_c0

        def coef_fn(X, mv):
            return ce.evaluate(self.cols(X), mean_vals=[mv[index[n]] for n in ce.mean_nodes])

        return la_drift_noise(plan.plan, X, Z0, factor, self.scale, coef_fn)

    @cached_property
    def _drift_c0(self):
        """Drift and the noise column's row-free part C0, in one compilation (one call per step)."""
        return CompiledExprs(list(self.drift_exprs) + list(self._template_parts[0]), self.x, self.values)

    # ------------------------------------------------------------------ weak order 2 on data-set noise

    @cached_property
    def _dataset_weak2(self):
        """The weak order-2 terms of data-set noise (:attr:`_dataset_weak2_exprs`) compiled for numpy: the
        hoisted plan of the row-free terms and the per-row parts r, D_v r, D^2_w r."""
        E = self._dataset_weak2_exprs
        plan = HoistedExprs(E["terms"], self.x, self.values)
        rows = [CompiledExprs(e, s, self.values, E["data"]) for e, s in E["rows"]]
        return plan, rows

    @cached_property
    def _dataset_weak2_exprs(self) -> dict:
        """Symbolic terms of the weak order-2 step for data-set noise sigma(x) u = scale sum_i
        sqrt(w_i) u_i c(x, xi_i), c = C0(x) + r(x, xi) (docs/theory.md §3): the drift terms, the
        row-free parts C0, D_v C0, D^2_w C0 and the Ito-Stratonovich vector
        sum_i D_{sigma_i} sigma_i = scale^2 E[(D c) c] as data means (a data-set sum too), and the
        per-row parts r, D_v r, D^2_w r: ``terms`` (for a :class:`HoistedExprs`), ``rows`` (expressions,
        state symbols) and the ``data`` symbols (compiled for numpy by :attr:`_dataset_weak2`, for an array
        back end by :class:`~smfsym.numerics.device_sde.DeviceSDE`)."""
        bad = self.sde.nondifferentiable()
        if bad:
            raise ValueError(
                f"the weak order-2 scheme differentiates the coefficients, which are not differentiable here "
                f"({', '.join(map(str, bad))}); use scheme='euler'."
            )

        x, d = self.x, self.d
        v, w = _vec("v", d), _vec("w", d)
        c0, r = self._template_parts
        law = self.sde.diffusion.law
        nodes = set().union(*[e.atoms(DataMean) for e in list(c0) + list(self.drift_exprs)])
        nodes = [n for n in nodes if set(n.data_symbols) == set(law.symbols)]
        if not nodes:
            raise ValueError("the weak order-2 scheme on data-set noise needs the data means of grad F in the "
                             "noise columns; none found. Use scheme='euler'.")
        key = sorted(nodes, key=sp.default_sort_key)[0].args[2].name

        def E(e):
            return DataMean(e, law.symbols, key)

        Jc = [[sp.diff(c, xk) for xk in x] for c in c0]
        Jr = [[sp.diff(e, xk) for xk in x] for e in r]
        s2 = sp.Float(self.scale) ** 2
        ito = [s2 * (sum((c0[k] * Jc[l][k] + c0[k] * E(Jr[l][k]) + E(r[k]) * Jc[l][k] for k in range(d)), sp.S.Zero)
                     + E(sum((r[k] * Jr[l][k] for k in range(d)), sp.S.Zero))) for l in range(d)]
        da, d2a = _first_second(self.drift_exprs, x, v, w)
        dc0, d2c0 = _first_second(c0, x, v, w)
        r1, r2 = _first_second(r, x, v, w)
        terms = {"drift": (self.drift_exprs, ()), "ito": (ito, ()), "da": (da, v), "d2a": (d2a, w),
                 "c0": (c0, ()), "dc0": (dc0, v), "d2c0": (d2c0, w)}
        return {"terms": terms, "rows": [(r, x), (r1, x + v), (r2, x + w)], "data": law.symbols}

    @property
    def dataset_weak2_plan(self) -> HoistedExprs:
        """The weak order-2 terms of data-set noise that do not sum over rows (hoisted front)."""
        return self._dataset_weak2[0]

    @cached_property
    def la_weak2(self):
        """Linear-algebra plan of the weak order-2 step's data-set sums (means of the hoisted front,
        r, D_v r and D^2_w r through the margins), or None (see :attr:`la`)."""
        if self.linear_algebra is False:
            return None
        return self._row_sums_plan([self.dataset_weak2_plan.front], (0, 1, 2))

    def dataset_front(self, X, xc):
        """The hoisted front of :attr:`dataset_weak2_plan` at X (data means by matmuls where they can be)."""
        plan, la = self.dataset_weak2_plan, self.la_weak2
        if la is None:
            return plan.front_values(xc, self.shared_means(plan.front, X, {}))
        mv = self.la_means(la, X)
        return plan.front_values(xc, [mv[n] for n in plan.front.mean_nodes])

    def dataset_action(self, X, xc, H, U, order: int, V=None) -> np.ndarray:
        """D^order_V (sigma(X) U) for data-set noise, directions stacked: U (K, P, M), V (K, P, [n,] d)
        (order 1, 2); returns (K, P, [n,] d). ``H``: :meth:`dataset_front` at X."""
        plan, ces = self.dataset_weak2_plan, self._dataset_weak2[1]
        la = self.la_weak2
        K, d = U.shape[0], self.d
        tail = (1,) * (X.ndim - 1)
        name = ("c0", "dc0", "d2c0")[order]
        out = np.empty((K,) + X.shape)
        for k in range(K):
            dirs = [] if order == 0 else [V[k][..., j] for j in range(d)]
            C = np.stack(plan.term(name, xc, H, dirs), axis=-1)
            total = np.sum(U[k] * self.sqrt_w, axis=-1).reshape(X.shape[:1] + tail)  # row-wise: batch-independent
            if la is None:
                rows = self._row_sums(ces[order], X, U[k] * self.sqrt_w, dirs)
            else:
                rows = self._la_rows(la, X, U[k], order, None if order == 0 else V[k])
            out[k] = self.scale * (C * total + rows)
        return out

    def _la_rows(self, la, X, U, order, V):
        """sum_i sqrt(w_i) U_i D^order_V r(X, xi_i) by matmuls over the margins and directional margins."""

        npts = int(np.prod(X.shape[1:-1]))
        rows = np.empty((X.shape[0] * npts, self.d))
        for a, b, Xf, blk in la_blocks(X, la.block, *((U,) if V is None else (U, V))):
            Ub = blk[0] if npts == 1 else np.repeat(blk[0], npts, axis=0)
            Vf = None if order == 0 else blk[1].reshape(-1, self.d)
            rows[a * npts:b * npts] = la.block_sums(("x", "v", "w")[order], f"rows{order}", Xf, Ub, Vf)[:(b - a) * npts]
        return rows.reshape(X.shape)
