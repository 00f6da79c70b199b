"""Data-set sums as linear algebra: losses that see the parameters through linear forms of a row.

For an empirical law (M rows xi_i, weights w_i) the SMF needs, at every step and for every path,
data-set sums: the means in the drift, sum_i w_i e(x, xi_i), and the noise action
sum_i sqrt(w_i) u_i r(x, xi_i) (docs/theory.md §3). When the loss is a function of linear forms of
the row, f(x, xi) = l(<a(xi), x>, xi) (logistic regression, GLMs, ...), every such summand is a sum
of *per-row scalars* s_t(mu, xi), functions of the margins mu_q = <a_q(xi), x>, times data-only
coefficients c_t(xi). Then, per block of paths,

- the margins of all rows are one matmul X A^T (paths x rows),
- each distinct scalar s_t is evaluated once on that (paths x rows) array,
- the means are S_t @ (w c_t) and the noise action (S_t * sqrt(w) U) @ B_t: matmuls again.

:func:`split_linear_forms` detects the shape symbolically (at compile time); :class:`RowSums`
holds the numeric plan. Where a loss has no such shape the general evaluation stays (one
lambdified integrand per (path, row) and output, see :mod:`smfsym.numerics.compiled_sde`).

Determinism: BLAS matmuls do not give a row's result independently of the matrix it sits in, so
paths go in blocks of a fixed size (:attr:`RowSums.block`, fixed by the data set alone), the last one
padded with zero states: a path's numbers do not depend on how many paths are passed at once
(for a given BLAS library and thread setting).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import sympy as sp

from ..symbolic.lambdify import lambdify_safe
from ..data.means import DataMean

__all__ = ["split_linear_forms", "LinearFormSplit", "RowSums"]

#: Working-set target of one block of paths (bytes): the (paths x rows) arrays of one block.
BLOCK_BYTES = 32 * 2**20
#: Largest block of paths (a power of two dividing the engine's seed block, so blocks align with it).
MAX_BLOCK = 512
#: Data rows per chunk (fixed: a path's sums, accumulated chunk after chunk, do not depend on the paths).
LA_ROWS = 32768


def _is_linear(e, xset) -> bool:
    """True when ``e`` is a linear homogeneous form in the state symbols with state-free coefficients
    (conservative: a form whose value at 0 is not syntactically 0 is not taken)."""
    used = e.free_symbols & xset
    if not used or isinstance(e, DataMean):
        return False
    if not isinstance(e, (sp.Add, sp.Mul, sp.Symbol)):
        return False
    for xi in used:
        if sp.diff(e, xi).free_symbols & xset:
            return False
    return e.xreplace({xi: 0 for xi in used}) == 0


class LinearFormSplit:
    """Margins found in a set of expressions, and a substitution that introduces them.

    ``margins[q]`` is a linear form <a_q(xi), x>; :meth:`substitute` replaces every occurrence by
    the symbol ``mu[q]`` (times a data-only factor), recursively. With ``factor_data`` the common
    data factor of a form is taken out (y z . x and z . x are one margin z . x); without it only
    the numeric factor is (fewer operations per row where that gives no more margins).
    """

    def __init__(self, state: Sequence[sp.Symbol], data_symbols: Sequence[sp.Symbol], factor_data: bool = True):
        self.factor_data = factor_data
        self.state = tuple(state)
        self.xset = set(self.state)
        self.data_symbols = tuple(data_symbols)
        self.margins: list = []
        self.mu: list = []
        self._index: dict = {}

    def _margin(self, form):
        if form not in self._index:
            self._index[form] = len(self.margins)
            self.margins.append(form)
            self.mu.append(sp.Symbol(f"_smfsym_mu{len(self.mu)}"))
        return self.mu[self._index[form]]

    def substitute(self, e):
        """``e`` with every maximal linear form of the state replaced by a margin symbol."""
        if not (e.free_symbols & self.xset):
            return e
        if isinstance(e, DataMean):
            raise ValueError("a data mean inside a per-row expression")
        if _is_linear(e, self.xset):
            # y z0 x0 + y z1 x1, -2 y (z . x) and z^2 x0: the margin is the form with its common data
            # factor taken out (z . x, x0), so one direction read with different data scalings (the
            # y of a logistic loss, the z of a squared one) is one margin, one matmul
            # (factor_data=False keeps the data factor in the margin: y (z . x) as one matmul saves a
            # product per (path, row) where every occurrence has the same factor)
            if not self.factor_data:
                coeff, rest = e.as_coeff_Mul()
                return coeff * self._margin(sp.expand(rest))
            data, form = sp.factor_terms(sp.expand(e)).as_independent(*self.state, as_Add=False)
            return data * self._margin(form)
        if e.is_Atom:
            return e
        if isinstance(e, sp.Add):
            lin = [a for a in e.args if _is_linear(a, self.xset)]
            if len(lin) > 1:  # an affine form a . x + b: the margin is a . x, not one margin per term
                rest = [self.substitute(a) for a in e.args if a not in lin]
                return sp.Add(self.substitute(sp.Add(*lin)), *rest)
        return e.func(*[self.substitute(a) for a in e.args])

    def coefficients(self, values) -> np.ndarray:
        """The margins' coefficient rows a_q(xi_i) on the data set: shape (q, M, d)."""
        data = np.asarray(values, dtype=float)
        M = data.shape[0]
        out = np.zeros((len(self.margins), M, len(self.state)))
        for q, form in enumerate(self.margins):
            for j, xj in enumerate(self.state):
                c = sp.diff(form, xj)
                if c != 0:
                    fn = lambdify_safe(list(self.data_symbols), c)
                    out[q, :, j] = np.broadcast_to(fn(*[data[:, k] for k in range(data.shape[1])]), (M,))
        return out


def factor_terms(e, scalar_syms) -> list:
    """``e`` as a list of (data-only coefficient, per-row scalar) pairs, summing to ``e``.

    The scalar of a term is the product of its factors that contain ``scalar_syms`` (margins,
    directional margins, state), the coefficient the product of the others (numbers and data).
    """
    scalar_syms = set(scalar_syms)
    out = []
    for term in sp.Add.make_args(sp.expand_mul(e)):
        if term == 0:
            continue
        coef, scal = [], []
        for f in sp.Mul.make_args(term):
            (scal if f.free_symbols & scalar_syms else coef).append(f)
        out.append((sp.Mul(*coef), sp.Mul(*scal)))
    return out


def split_linear_forms(split: LinearFormSplit, exprs_lists: dict, scalar_syms=(), state_ok=()):
    """Factor lists of per-row expressions into per-row scalars times data-only coefficients.

    ``exprs_lists`` maps a name to a list of expressions in the state (or, already substituted,
    the margins) and the data symbols, no data means. Returns ``(pool, coefs)``: ``pool`` the
    distinct scalar expressions shared by all lists (in the margin symbols, ``scalar_syms`` and the
    data) and ``coefs[name][t]`` a dict output index -> data-only coefficient of pool entry t;
    None when some scalar still reads the state outside a margin (allowed for the lists named in
    ``state_ok``: means, whose integrands may carry data-free terms such as a regulariser's).
    """
    pool, index, coefs = [], {}, {}
    for name, exprs in exprs_lists.items():
        coef: dict = {}
        for k, e in enumerate(exprs):
            sub = split.substitute(e)
            if sub.free_symbols & split.xset and name not in state_ok:
                return None
            for c, s in factor_terms(sub, set(split.mu) | set(scalar_syms) | split.xset):
                if s not in index:
                    index[s] = len(pool)
                    pool.append(s)
                t = index[s]
                coef.setdefault(t, {})
                coef[t][k] = coef[t].get(k, 0) + c
        coefs[name] = coef
    return pool, coefs


# ---------------------------------------------------------------------------- numeric kernels
# Plain functions of a plan dict (arrays and callables): smfsym runs them, and generated code
# (smfsym.codegen) embeds their source verbatim, so both give the same numbers.


def la_fill(values, where, shape):
    """An array of ``shape`` with ``values[i]`` (a number or a column over the rows) written at the
    index ``where[i]`` (a tuple whose None entry is the row axis)."""
    out = np.zeros(shape)
    for v, idx in zip(values, where):
        key = tuple(slice(None) if i is None else i for i in idx)
        out[key] = v
    return out


def la_margins(plan, Xf):
    """The margins of states ``Xf`` (n, d): q arrays (n, M), views of one matmul."""
    mu = Xf @ plan["At"]
    M = plan["M"]
    return [mu[:, q * M:(q + 1) * M] for q in range(plan["q"])]


def la_scalars(plan, fn, mu, nu, Xf):
    """The per-row scalars ``fn`` on (n, M) margins, directional margins ``nu`` and states ``Xf``."""
    xc = [Xf[:, j:j + 1] for j in range(Xf.shape[1])]
    outs = fn(*mu, *nu, *plan["dcols"], *xc)
    shape = mu[0].shape
    return [o if np.shape(o) == shape else np.broadcast_to(o, shape) for o in outs]


def la_sums(mats, S, n, n_out, U=None):
    """sum_t S_t @ B_t over the rows (``mats``: (t, B_t), weights folded in), or sum_t (S_t * U) @ B_t."""
    out = None
    for t, B in mats:
        r = (S[t] if U is None else S[t] * U) @ B
        out = r if out is None else out + r
    return np.zeros((n, n_out)) if out is None else out


def la_add(acc, r):
    """``acc + r``, with None for an empty accumulator (the first chunk's sum is taken as it is)."""
    return r if acc is None else acc + r


def la_blocks(X, G, *arrays):
    """(a, b, Xf, arrays) per block of G paths: the block's states flattened to (G * points, d) and,
    like ``arrays`` (paths first), zero-padded to a full block, so every matmul has one shape
    whatever the number of paths (a BLAS result depends on the shape of the product)."""
    P = X.shape[0]
    for a in range(0, P, G):
        b = min(P, a + G)
        blk = [X[a:b]] + [arr[a:b] for arr in arrays]
        if b - a < G:
            blk = [np.concatenate([y, np.zeros((G - (b - a),) + y.shape[1:])]) for y in blk]
        yield a, b, blk[0].reshape(-1, X.shape[-1]), blk[1:]


def la_chunks(plan, rows, outputs):
    """The plan cut into chunks of ``rows`` data rows: one plan per chunk (its margins' coefficients,
    data columns, weights and the ``outputs``' matrices), so the (paths x rows) arrays stay bounded."""
    M, q = plan["M"], plan["q"]
    At = plan["At"].reshape(-1, q, M)
    out = []
    for r0 in range(0, M, rows):
        r1 = min(M, r0 + rows)
        c = {"M": r1 - r0, "q": q, "r0": r0, "r1": r1, "sqrt_w": plan["sqrt_w"][r0:r1],
             "At": np.ascontiguousarray(At[:, :, r0:r1].reshape(At.shape[0], -1)),
             "dcols": [dc[:, r0:r1] for dc in plan["dcols"]]}
        for name in outputs:
            mats, n_out = plan[name]
            c[name] = ([(t, B[r0:r1]) for t, B in mats], n_out)
        out.append(c)
    return out


def la_block_sums(plan, fn, name, Xf, U=None, Vf=None):
    """Output ``name`` for one block of states ``Xf`` summed over the rows, chunk after chunk:
    per-row scalars ``fn`` on the margins (and the directional margins of ``Vf``), contracted with the
    increments ``U`` (n, M) or, without them, weighted means."""
    n = Xf.shape[0]
    out = None
    for c in plan["chunks"]:
        nu = () if Vf is None else la_margins(c, Vf)
        S = la_scalars(c, fn, la_margins(c, Xf), nu, Xf)
        out = la_add(out, la_sums(c[name][0], S, n, c[name][1], None if U is None else U[:, c["r0"]:c["r1"]]))
    return out


def la_drift_noise_sums(plan, X, Z0):
    """The data-set sums of one Euler step at states X (P, [n,] d): the data means (P * n, n_means)
    and, for increments Z0 (P, M) (or None), sum_i sqrt(w_i) Z0_i (P, 1) and the per-row noise
    terms sum_i sqrt(w_i) Z0_i r(X, xi_i) (P * n, d), block by block of paths, chunk by chunk of rows
    (the per-row scalars once for means and noise)."""
    npts = int(np.prod(X.shape[1:-1]))
    n_means, d = plan["means"][1], plan["rows0"][1]
    means = np.empty((X.shape[0] * npts, n_means))
    total = rows = None
    if Z0 is not None:
        rows = np.empty((X.shape[0] * npts, d))
        total = np.empty((X.shape[0], 1))
    for a, b, Xf, blk in la_blocks(X, plan["block"], *([] if Z0 is None else [Z0])):
        n = Xf.shape[0]
        acc_m = acc_r = acc_t = None
        for c in plan["chunks"]:
            S = la_scalars(c, plan["pool"], la_margins(c, Xf), (), Xf)
            acc_m = la_add(acc_m, la_sums(c["means"][0], S, n, n_means))
            if Z0 is not None:
                Uc = blk[0][:, c["r0"]:c["r1"]]
                acc_t = la_add(acc_t, Uc @ c["sqrt_w"])
                Ub = Uc if npts == 1 else np.repeat(Uc, npts, axis=0)  # one increment per path
                acc_r = la_add(acc_r, la_sums(c["rows0"][0], S, n, d, Ub))
        means[a * npts:b * npts] = acc_m[:(b - a) * npts]
        if Z0 is not None:
            total[a:b] = acc_t[:b - a]
            rows[a * npts:b * npts] = acc_r[:(b - a) * npts]
    return means, total, rows


class RowSums:
    """Numeric plan of the data-set sums of one SDE in linear-algebra form.

    Parameters
    ----------
    split : LinearFormSplit
        The margins (their coefficient rows are evaluated on ``data`` once).
    data, weights : arrays (M, k), (M,)
    stages : mapping stage -> (pool, dir_syms, outputs)
        ``pool`` the scalar expressions of the stage (evaluated together, one lambdify with common
        subexpressions), ``dir_syms`` the directional-margin symbols they read (nu_q = <a_q(xi), v>),
        ``outputs`` a mapping name -> (coef, n_out, fold): ``coef[t]`` maps an output index to
        the data-only coefficient of pool entry t; ``fold`` is "w" (means: the weights w_i folded
        into the coefficients) or "sqrt_w" (noise actions: sqrt(w_i) folded in).

    Attributes
    ----------
    plan : dict
        Arrays and callables the kernels (:func:`la_drift_noise_sums`, ...) read; the stage "x"
        scalars are ``plan["pool"]``, each output's ``(mats, n_out)`` is ``plan[name]``.
    """

    def __init__(self, split: LinearFormSplit, data, weights, stages: dict):
        self.split = split
        data = np.asarray(data, dtype=float)
        M = data.shape[0]
        self.q = len(split.margins)
        self.stage_exprs = stages
        plan = {"M": M, "q": self.q, "dcols": [data[None, :, j] for j in range(data.shape[1])],
                "sqrt_w": np.sqrt(np.asarray(weights, dtype=float))[:, None]}
        # every coefficient of a kind in one lambdified list (common subexpressions, as generated code prints it)
        entries, where = self.margin_coefficients()
        dcols = [data[:, j] for j in range(data.shape[1])]
        vals = lambdify_safe(list(split.data_symbols), entries)(*dcols) if entries else []
        plan["At"] = np.ascontiguousarray(la_fill(vals, where, (self.q, M, len(split.state)))
                                          .reshape(self.q * M, -1).T)
        n_arrays = 4
        self.fns = {}
        for stage, (pool, dirs, outputs) in stages.items():
            args = self.pool_args(dirs)
            self.fns[stage] = lambdify_safe(args, list(pool)) if pool else None
            for name, (coef, n_out, fold) in outputs.items():
                entries, where = self.output_coefficients(coef)
                vals = lambdify_safe(list(split.data_symbols), entries)(*dcols) if entries else []
                f = np.asarray(weights, dtype=float) if fold == "w" else plan["sqrt_w"][:, 0]
                plan[name] = (la_output_mats(vals, where, M, n_out, f), n_out)
            n_arrays = max(n_arrays, len(pool) + 2 * self.q + 3)
        plan["pool"] = self.fns.get("x")
        plan["chunks"] = la_chunks(plan, LA_ROWS, [name for _, _, outs in stages.values() for name in outs])
        per_path = min(M, LA_ROWS) * 8 * n_arrays
        block = MAX_BLOCK
        while block > 16 and block * per_path > BLOCK_BYTES:
            block //= 2
        plan["block"] = block
        #: paths per block (fixed by the data set alone)
        self.block = block
        self.plan = plan

    def pool_args(self, dirs=()) -> list:
        """Arguments of a stage's scalars: margins, directional margins, data, state."""
        s = self.split
        return list(s.mu) + list(dirs) + list(s.data_symbols) + list(s.state)

    def margin_coefficients(self):
        """The margins' coefficients a_qj(xi) as one list, and where each goes in (q, M, d)."""
        entries, where = [], []
        for q, form in enumerate(self.split.margins):
            for j, xj in enumerate(self.split.state):
                c = sp.diff(form, xj)
                if c != 0:
                    entries.append(c)
                    where.append((q, None, j))
        return entries, where

    @staticmethod
    def output_coefficients(coef):
        """An output's data-only coefficients as one list, and where each goes in (t, M, n_out)."""
        entries, where = [], []
        for t, col in sorted(coef.items()):
            for k, c in sorted(col.items()):
                entries.append(c)
                where.append((t, None, k))
        return entries, where

    def block_sums(self, stage, name, Xf, U=None, Vf=None) -> np.ndarray:
        """Output ``name`` of ``stage`` for one block of states (see :func:`la_block_sums`)."""
        fn = self.fns[stage]
        if fn is None:
            return np.zeros((Xf.shape[0], self.plan[name][1]))
        return la_block_sums(self.plan, fn, name, Xf, U, Vf)


def la_output_mats(vals, where, M, n_out, fold):
    """(t, B_t) per pool entry t used by an output: B_t (M, n_out) with ``fold`` (w or sqrt(w)) folded in."""
    ts = sorted({w[0] for w in where})
    full = la_fill(vals, where, (max(ts) + 1 if ts else 0, M, n_out))
    return [(t, full[t] * fold[:, None]) for t in ts]


def la_drift_noise(plan, X, Z0, factor, scale, coef_fn):
    """Drift and data-set noise action of one Euler step: ``coef_fn(X, means)`` evaluates the drift
    and the noise column's row-free part C0, stacked (..., 2 d), on the data means (a list, in the
    plan's order); the noise is factor * scale (C0 sum_i sqrt(w_i) Z0_i + rows)."""
    means, total, rows = la_drift_noise_sums(plan, X, Z0)
    mv = [means[:, j].reshape(X.shape[:-1]) for j in range(means.shape[1])]
    bc = coef_fn(X, mv)
    d = X.shape[-1]
    if Z0 is None:
        return bc[..., :d], None
    total = total.reshape(X.shape[:1] + (1,) * (X.ndim - 1))
    return bc[..., :d], (factor * scale) * (bc[..., d:] * total + rows.reshape(X.shape))


#: The kernels generated code embeds (in this order).
KERNELS = (la_fill, la_output_mats, la_margins, la_scalars, la_sums, la_add, la_blocks, la_chunks, la_drift_noise_sums,
           la_drift_noise)
