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
lambdified integrand per (path, row) and output, see :mod:`smfsym.numeric`).

Determinism: BLAS matmuls do not give a row's result independently of the matrix it sits in, so
paths go in blocks of a fixed size (:attr:`RowSums.block`, fixed by the data set alone), the last one
padded with zero states: a path's numbers do not depend on how many paths are passed at once
(for a given BLAS library and thread setting).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import sympy as sp

from .compile import lambdify_safe
from .expectation import DataMean

__all__ = ["split_linear_forms", "LinearFormSplit", "RowSums"]

#: Working-set target of one block of paths (bytes): the (paths x rows) arrays of one block.
BLOCK_BYTES = 32 * 2**20
#: Largest block of paths (a power of two dividing the engine's seed block, so blocks align with it).
MAX_BLOCK = 256


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
    the symbol ``mu[q]`` (times a data-only factor), recursively.
    """

    def __init__(self, state: Sequence[sp.Symbol], data_symbols: Sequence[sp.Symbol]):
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
        if _is_linear(e, self.xset) and e.free_symbols & set(self.data_symbols):
            # -y (z . x) and -2 y (z . x) are multiples of one margin y (z . x) (the expanded form
            # is the key: two spellings of one form are one margin)
            coeff, rest = e.as_coeff_Mul()
            return coeff * self._margin(sp.expand(rest))
        if e.is_Atom:
            return e
        if isinstance(e, sp.Add):
            lin = [a for a in e.args if _is_linear(a, self.xset) and a.free_symbols & set(self.data_symbols)]
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
            sub = split.substitute(sp.sympify(e))
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
    """

    def __init__(self, split: LinearFormSplit, data, weights, stages: dict):
        self.split = split
        self.data = np.asarray(data, dtype=float)
        self.weights = np.asarray(weights, dtype=float)
        self.sqrt_w = np.sqrt(self.weights)
        M = self.M = self.data.shape[0]
        A = split.coefficients(self.data)  # (q, M, d)
        self.q = A.shape[0]
        #: one matmul gives all margins: X (n, d) @ At (d, q*M)
        self.At = np.ascontiguousarray(A.reshape(self.q * M, -1).T)
        dcols = [self.data[:, j] for j in range(self.data.shape[1])]
        self._dcols = [c[None, :] for c in dcols]
        self.stages, self.outputs = {}, {}
        n_arrays = 4
        for stage, (pool, dirs, outputs) in stages.items():
            args = list(split.mu) + list(dirs) + list(split.data_symbols) + list(split.state)
            self.stages[stage] = lambdify_safe(args, list(pool)) if pool else None
            for name, (coef, n_out, fold) in outputs.items():
                f = self.weights if fold == "w" else self.sqrt_w
                mats = []
                for t, col in sorted(coef.items()):
                    B = np.zeros((M, n_out))
                    for k, c in col.items():
                        B[:, k] = np.broadcast_to(lambdify_safe(list(split.data_symbols), c)(*dcols), (M,))
                    mats.append((t, B * f[:, None]))
                self.outputs[name] = (stage, mats, n_out)
            n_arrays = max(n_arrays, len(pool) + 2 * self.q + 3)
        per_path = M * 8 * n_arrays
        block = MAX_BLOCK
        while block > 16 and block * per_path > BLOCK_BYTES:
            block //= 2
        #: paths per block (fixed by the data set alone)
        self.block = block

    def margins(self, Xf) -> list:
        """Margins of states ``Xf`` (n, d): q arrays (n, M) (views of one matmul)."""
        mu = Xf @ self.At
        return [mu[:, q * self.M:(q + 1) * self.M] for q in range(self.q)]

    def scalars(self, stage, mu, nu=(), Xf=None) -> list:
        """The pool of ``stage`` on (n, M) margins (and directional margins ``nu``; the states ``Xf``
        (n, d) for scalars that read them outside a margin)."""
        fn = self.stages[stage]
        if fn is None:
            return []
        xc = [Xf[:, j:j + 1] for j in range(Xf.shape[1])] if Xf is not None else [None] * len(self.split.state)
        outs = fn(*mu, *nu, *self._dcols, *xc)
        shape = mu[0].shape
        return [o if np.shape(o) == shape else np.broadcast_to(o, shape) for o in outs]

    def sums(self, name, S, n, U=None) -> np.ndarray:
        """Output ``name`` summed over the rows for ``n`` states: sum_t S_t @ B_t (means, weights
        folded in), or sum_t (S_t * U) @ B_t for increments ``U`` (n, M) (sqrt(w) folded in)."""
        _, mats, n_out = self.outputs[name]
        out = np.zeros((n, n_out))
        for t, B in mats:
            out += (S[t] if U is None else S[t] * U) @ B
        return out

    def total(self, U) -> np.ndarray:
        """sum_i sqrt(w_i) U_i for a block of increments (n, M): shape (n, 1)."""
        return U @ self.sqrt_w[:, None]
