"""The cylindrical-noise expansion of the loss (docs/theory.md §3).

With an orthonormal basis e_0 = 1, e_1, ... of L^2(nu), the SMF noise is
-sqrt(eta) sum_k grad f_k(x) dbeta_k with the chaos coefficients
f_k(x) = E[f(x, xi) e_k(xi)], and Parseval gives
sum_k grad f_k(x) grad f_k(y)^T = Sigma(x, y).

Bases: tensor products of each coordinate's orthonormal polynomials (Hermite,
Legendre, Laguerre, Jacobi, discrete Gram-Schmidt); correlated Gaussians are
whitened first; an empirical data set gets a numeric orthonormal basis of the
span of the data monomials in the loss (exact for polynomial losses) or, for
other losses, the indicator basis e_i = 1_{xi_i} / sqrt(w_i) with M columns.
"""
from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import sympy as sp

from ..data.means import expectation, is_polynomial_in
from ..data.laws import Empirical, MultivariateNormal, Normal
from .._checks import as_expr
from ..limits import _comb_capped, refuse
from ..data.means import data_symbols
from .lambdify import compile_exprs

__all__ = ["ChaosExpansion", "NoiseTemplate", "chaos_expansion", "TruncationWarning"]

#: Default truncation degree for losses that are not polynomial in the data.
DEFAULT_DEGREE = 3


class TruncationWarning(UserWarning):
    """A truncated expansion captures too little of the gradient-noise variance."""


@dataclass(frozen=True)
class NoiseTemplate:
    r"""M numeric noise columns sqrt(w_i) (grad F(x) - grad f(x, xi_i)) of a data set.

    ``column`` is grad F(x) - grad f(x, xi) as a d x 1 matrix in the parameters
    and the data symbols; the simulators evaluate it on every row. A model built on
    a problem's noise (a schedule's, momentum's) changes the column; ``lift`` says how,
    for the covariance the SDE reports: None for the problem's own column, a matrix L
    free of the data when ``column = L (grad F - grad f)`` (its covariance is then
    L Sigma L^T), and False when no such L exists (the covariance is refused by name).
    """

    column: sp.ImmutableMatrix
    law: Empirical
    lift: Any = None

    @property
    def n_columns(self) -> int:
        return self.law.size


@dataclass(frozen=True)
class ChaosExpansion:
    """Chaos coefficients f_k, their gradients (the noise columns), and exactness.

    Attributes
    ----------
    indices : tuple
        Labels of the basis functions kept (multi-indices, or ``("pc", k)`` for
        numeric data-set bases).
    basis : tuple
        e_k as sympy expressions in the data symbols (``None`` where numeric).
    coefficients : tuple
        f_k(x) = E[f e_k], sympy expressions.
    columns : sympy.ImmutableMatrix
        d x m matrix whose k-th column is grad f_k(x) (before the batch scaling);
        columns that vanish identically are dropped. For a data set whose loss is not
        polynomial in the data (``template`` set) the M columns
        sqrt(w_i) (grad f(x, xi_i) - grad F(x)) are written out on first use, up to
        ``Limits.max_noise_columns`` of them; the simulators never need them (they evaluate
        ``template`` on the rows).
    exact : bool
        True when sum_k grad f_k grad f_k^T = Sigma exactly (finite expansion).
    degree : int or None
        Total degree of the basis kept.
    template : NoiseTemplate or None
        For non-polynomial losses on a data set: the column as a function of the data row
        (``indices``, ``basis`` and ``coefficients`` are then empty).

    Examples
    --------
    Parseval on a data set, whatever the loss: the columns' Gram matrix is Sigma.

    >>> import numpy as np, sympy as sp, smfsym
    >>> x = sp.Symbol("x")
    >>> z, = smfsym.empirical(np.array([[0.5], [1.5], [-1.0]]), "z")
    >>> problem = smfsym.Problem(sp.log(1 + sp.exp(-z * x)), [x])
    >>> expansion = problem.chaos()
    >>> expansion.columns.shape
    (1, 3)
    >>> at = {x: 0.3}
    >>> gram = float((expansion.columns * expansion.columns.T)[0].subs(at).evalf())
    >>> bool(abs(gram - float(problem.sigma[0].subs(at).evalf())) < 1e-12)
    True
    """

    problem: Any = field(repr=False)
    indices: tuple
    basis: tuple
    coefficients: tuple
    _columns: sp.ImmutableMatrix = field(repr=False)
    exact: bool
    degree: int | None
    template: NoiseTemplate | None = None

    @property
    def n_columns(self) -> int:
        return self.template.n_columns if self.template is not None else self._columns.shape[1]

    @property
    def columns(self) -> sp.ImmutableMatrix:
        return self._columns if self.template is None else self._template_columns

    @cached_property
    def _template_columns(self) -> sp.ImmutableMatrix:
        law, column = self.template.law, self.template.column
        limit = self.problem.limits.max_noise_columns
        if law.size > limit:
            refuse(f"writing out the {law.size} noise columns of a data set (the simulators evaluate "
                   f"`template` row by row instead)", law.size, "max_noise_columns", limit)
        # the column is grad F - grad f(x, xi); its data means keep xi bound (DataMean), so a row goes
        # only where xi is free
        cols = [-sp.sqrt(sp.Float(w)) * column.xreplace({s: sp.Float(v) for s, v in zip(law.symbols, row)})
                for row, w in zip(law.data, law.weights)]
        return sp.ImmutableMatrix.hstack(*cols)

    def covariance(self) -> sp.ImmutableMatrix:
        """sum_k grad f_k grad f_k^T (equals Sigma / batch factor when exact)."""
        C = self.columns
        return sp.ImmutableMatrix((C * C.T).applyfunc(sp.expand))

    def captured_fraction(self, x, values=None) -> float:
        """trace(sum_k grad f_k grad f_k^T) / trace(Sigma) at the point ``x`` (numeric)."""
        if self.exact:
            return 1.0

        p = self.problem
        C = self.columns
        num = sum(C[i, j] ** 2 for i in range(C.shape[0]) for j in range(C.shape[1]))
        den = sp.trace(p.sigma) / p.batch_factor
        fn = compile_exprs([num, den], p.params, values=values)
        out = fn(np.atleast_2d(np.asarray(x, dtype=float)))
        a, b = float(out[0][0]), float(out[1][0])
        return 1.0 if b == 0 else a / b


def _whiten(loss, laws):
    """Replace correlated Gaussian blocks by mean + L z with independent z ~ N(0, 1)."""
    sub = {}
    for law in laws:
        if isinstance(law, MultivariateNormal):
            L = law.whitening()
            zs = [Normal(f"{s.name}_w", 0, 1).symbol for s in law.symbols]
            for i, s in enumerate(law.symbols):
                sub[s] = law.mean[i] + sum(L[i, j] * zs[j] for j in range(law.dim))
    return (loss.xreplace(sub) if sub else loss), sub


def _term_derivative(t, p):
    """d t / d p for one term of a sum: c * p**n directly, anything else through sympy's diff."""
    indep, dep = t.as_independent(p, as_Add=False)
    if dep == p:
        return indep
    if dep.is_Pow and dep.base == p and dep.exp.is_Integer and dep.exp > 0:
        return sp.Mul(indep, dep.exp, p ** (dep.exp - 1))
    return sp.diff(t, p)


def _derivative(fk, p):
    """sp.expand(sp.diff(fk, p)), term by term: sympy's Derivative machinery on each product of
    an expanded polynomial cost most of the expansion at d = 50 (the result is the same tree)."""
    return sp.expand(sp.Add(*[_term_derivative(t, p) for t in sp.Add.make_args(fk) if p in t.free_symbols]))


def _columns(coeffs, params):
    cols, keep = [], []
    for k, fk in enumerate(coeffs):
        free = fk.free_symbols  # a coefficient involves few parameters: the others give 0 at no cost
        g = [_derivative(fk, p) if p in free else sp.S.Zero for p in params]
        if any(e is not sp.S.Zero and e != 0 for e in g):  # most entries are the zero singleton
            cols.append(g)
            keep.append(k)
    d = len(params)
    # from a flat row-major list: a per-entry callback cost 5x more at d = 50 (66,000 entries)
    M = (sp.ImmutableMatrix(d, len(cols), [cols[j][i] for i in range(d) for j in range(len(cols))]) if cols
         else sp.ImmutableMatrix.zeros(d, 0))
    return M, keep


def _multi_indices(k, degree, caps):
    for total in range(1, degree + 1):
        for combo in itertools.combinations_with_replacement(range(k), total):
            a = [0] * k
            for c in combo:
                a[c] += 1
            if all(cap is None or ai <= cap for ai, cap in zip(a, caps)):
                yield tuple(a)


def _check_columns(problem, n_columns, what):
    lim = problem.limits
    if n_columns > lim.max_noise_columns:
        refuse(f"the chaos expansion ({what}) has too many noise columns", n_columns, "max_noise_columns",
               lim.max_noise_columns)


def chaos_expansion(problem, degree: int | None = None) -> ChaosExpansion:
    """The chaos expansion of ``problem``'s loss (docs/theory.md §3).

    The number of noise columns is estimated before anything is built and refused
    beyond ``problem.limits.max_noise_columns`` (docs/theory.md §8).

    Parameters
    ----------
    problem : Problem
    degree : int, optional
        Truncation degree of the basis for losses that are not polynomial in the
        data (default 3). Polynomial losses are expanded exactly and ignore it.

    Examples
    --------
    docs/theory.md §3: xi ~ N(0, s^2), f = (x - xi)^2 / 2 gives f_1 = -s x and
    f_2 = s^2/sqrt(2); f_2 does not depend on x, so its column vanishes and is
    dropped, leaving a single noise column -s:

    >>> import sympy as sp, smfsym
    >>> x, s = sp.Symbol("x"), sp.Symbol("s", positive=True)
    >>> xi = smfsym.normal("xi", std=s)
    >>> ce = smfsym.Problem((x - xi) ** 2 / 2, [x]).chaos()
    >>> ce.indices, ce.coefficients
    (((1,),), (-s*x,))
    >>> ce.columns
    Matrix([[-s]])
    """
    laws = problem.laws
    if degree is not None and (isinstance(degree, bool) or not isinstance(degree, (int, np.integer))
                               or degree < 1):
        raise ValueError(f"`degree` must be a positive integer; got {degree!r}.")
    if any(isinstance(l, Empirical) for l in laws):
        if len(laws) != 1:
            raise NotImplementedError(
                "the chaos expansion of a loss that mixes an empirical data set with other laws is not "
                f"supported; got laws {list(laws)}. Put all data in the data set."
            )
        return _empirical_expansion(problem, laws[0])
    loss, _ = _whiten(problem.loss, laws)

    coords = data_symbols(loss)
    if not coords:  # deterministic loss: no gradient noise at all
        return ChaosExpansion(problem, (), (), (), sp.ImmutableMatrix.zeros(problem.dim, 0), True, 0)
    caps = [s.law.max_basis_degree() for s in coords]
    terms = _ring_terms_of(problem, loss, coords)
    if terms is not None or is_polynomial_in(loss, coords):
        return _polynomial_expansion(problem, loss, coords, caps, terms)
    all_finite = all(s.law.is_finite for s in coords)
    if all_finite:
        deg = sum(caps)
        exact = True
    else:
        deg = DEFAULT_DEGREE if degree is None else int(degree)
        exact = False
    k = len(coords)
    _check_columns(problem, _comb_capped(k + deg, deg) - 1, f"{k} coordinate(s), degree {deg}")
    idx = list(_multi_indices(k, deg, caps))
    basis = []
    for a in idx:
        e = sp.S.One
        for s, ai in zip(coords, a):
            if ai:
                e = e * s.law.orthonormal_polynomials(ai)[ai]
        basis.append(sp.expand(e))
    # E[f e_k] exists when E f^2 does (Cauchy-Schwarz, e_k in L^2): Problem checked that
    coeffs = [expectation(loss * e, n_points=problem.n_points, limits=problem.limits, check_tails=False)
              for e in basis]
    cols, keep = _columns(coeffs, problem.params)
    return ChaosExpansion(problem, tuple(idx[k] for k in keep), tuple(basis[k] for k in keep),
                          tuple(coeffs[k] for k in keep), cols, exact, deg)


def _ring_terms_of(problem, loss, coords):
    """The loss's terms (data monomial, sympy coefficient) from the problem's sparse ring, when it
    has one for this very loss and these coordinates (no whitening): expanding the loss again into a
    Poly cost more than the rest of the expansion at d = 50. None otherwise."""
    if loss is not problem.loss or tuple(coords) != tuple(problem.data) or problem._ring is None:
        return None
    terms, _, dom, _ = problem._ring
    return [(m, dom.to_sympy(c)) for m, c in terms]


def _lacks_moments(terms, coords, caps) -> bool:
    """Whether projecting the loss's monomials onto the basis needs moments a law lacks: xi^a against
    e_j (j <= the basis degree) needs E xi^(a + j)."""
    for i, s in enumerate(coords):
        top = s.law.max_moment()
        if top is None:
            continue
        n = max((m[i] for m, _ in terms), default=0)
        if n + (n if caps[i] is None else min(n, caps[i])) > top:
            return True
    return False


def _polynomial_expansion(problem, loss, coords, caps, terms=None):
    # ``terms``: the loss's (data monomial, coefficient) pairs if already known
    if terms is None:
        terms = _ring_terms_of(problem, loss, coords)
    if terms is None:
        terms = sp.Poly(loss, *coords).terms()
    if _lacks_moments(terms, coords, caps):
        # f's own coefficients need moments the law lacks (f = (x - t)^2/2 under Student-t(3): E[f e_1] needs
        # E t^3), while grad f's need only what Sigma needs: expand f without its parameter-free terms, which
        # carry no gradient (the columns are the same; the coefficients lose a constant each)
        params = set(problem.params)
        terms = [(m, c) for m, c in terms if as_expr(c).free_symbols & params]
    total_degree = max((sum(m) for m, _ in terms), default=0)
    maxpow = [max((m[i] for m, _ in terms), default=0) for i in range(len(coords))]
    bound = 1
    for n, cap in zip(maxpow, caps):
        bound *= (n if cap is None else min(n, cap)) + 1
    bound = min(bound, _comb_capped(len(coords) + total_degree, total_degree)) - 1
    _check_columns(problem, bound, f"degree {total_degree} in {len(coords)} coordinate(s)")
    tables = []
    for s, n, cap in zip(coords, maxpow, caps):
        deg = n if cap is None else min(n, cap)
        tables.append(s.law.monomial_coefficients(n, deg))
    acc: dict = {}
    for monom, c in terms:
        choices = [[(j, t) for j, t in enumerate(tables[i][a]) if t != 0] for i, a in enumerate(monom)]
        for combo in itertools.product(*choices):
            k = tuple(j for j, _ in combo)
            if not any(k):
                continue
            w = sp.Mul(*[t for _, t in combo])
            acc.setdefault(k, []).append(c * w)
    idx = sorted(acc, key=lambda k: (sum(k), tuple(-v for v in k)))
    coeffs = [sp.expand(sp.Add(*acc[k])) for k in idx]
    cols, keep = _columns(coeffs, problem.params)
    basis = []
    for k in keep:
        e = sp.S.One
        for s, ai in zip(coords, idx[k]):
            if ai:
                e = e * s.law.orthonormal_polynomials(ai)[ai]
        basis.append(sp.expand(e))
    return ChaosExpansion(problem, tuple(idx[k] for k in keep), tuple(basis),
                          tuple(coeffs[k] for k in keep), cols, True, total_degree)


def _empirical_expansion(problem, law):
    syms = law.symbols
    loss = problem.loss
    if not is_polynomial_in(loss, syms):
        grad_F = problem.grad_F
        tmpl = NoiseTemplate(sp.ImmutableMatrix(grad_F - problem.grad_f), law)
        return ChaosExpansion(problem, (), (), (), sp.ImmutableMatrix.zeros(problem.dim, 0), True, None, tmpl)
    # Numeric orthonormal basis of span{psi_m - E psi_m} over the data monomials psi_m of f.
    poly = sp.Poly(loss, *syms)
    terms = [(m, c) for m, c in poly.terms() if any(m)]
    if not terms:
        return ChaosExpansion(problem, (), (), (), sp.ImmutableMatrix.zeros(problem.dim, 0), True, 0)
    psi = np.stack([np.prod(law.data ** np.array(m), axis=1) for m, _ in terms], axis=1)
    w = law.weights
    centered = psi - w @ psi
    gram = (centered * w[:, None]).T @ centered
    lam, V = np.linalg.eigh(gram)
    keep = lam > max(lam.max(), 0.0) * 1e-12
    B = V[:, keep] * np.sqrt(lam[keep])
    coeffs = []
    for k in range(B.shape[1]):
        coeffs.append(sp.expand(sum(c * sp.Float(B[m, k]) for m, (_, c) in enumerate(terms))))
    cols, kept = _columns(coeffs, problem.params)
    return ChaosExpansion(problem, tuple(("pc", k) for k in kept), tuple(None for _ in kept),
                          tuple(coeffs[k] for k in kept), cols, True, poly.total_degree())


def warn_if_low(expansion: ChaosExpansion, x, values=None, threshold: float = 0.9) -> float:
    """Warn (TruncationWarning) when the captured variance at ``x`` is below ``threshold``."""
    frac = expansion.captured_fraction(x, values)
    if frac < threshold:
        warnings.warn(
            f"the truncated expansion (degree {expansion.degree}) captures only {frac:.1%} of trace Sigma "
            f"at x = {np.asarray(x).tolist()}; raise `degree`.",
            TruncationWarning, stacklevel=3,
        )
    return frac
