r"""Exact SGD moments for mini-batches B >= 1, i.i.d. or without replacement (docs/theory.md §4).

For a gradient affine in the parameters, one step with batch mean gradient
x' = x - (eta / B) S, S = sum_{b in batch} grad f(x, xi_b), maps polynomials of degree n to
polynomials of degree n. Expanding x'^alpha needs the moments E[S^beta], |beta| <= n, of the
batch sum. Writing S^beta as a sum over tuples of batch members and grouping the factors by a
set partition pi of the |beta| factor positions (factors in one block come from the same member):

- i.i.d. batches:  E[S^beta] = sum_pi (B)_{|pi|} prod_{blocks} m(gamma_block),
- without replacement from M equally weighted rows: a given set of r distinct rows lies in the
  batch with probability (B)_r / (M)_r, and sums over distinct rows follow from plain sums by
  Moebius inversion on the partition lattice:
  E[S^beta] = sum_pi (B)_{|pi|} / (M)_{|pi|} sum_{sigma >= pi} mu(pi, sigma) prod_{g in sigma} M m(gamma_g),
  mu(pi, sigma) = prod_g (-1)^{k_g - 1} (k_g - 1)!  (k_g blocks of pi merged into g),

with m(gamma) = E[prod_i (d_i f)^{gamma_i}] the one-sample moments and (B)_r the falling factorial.
No enumeration of the C(M, B) batches is needed; the tests compare with that enumeration.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import mpmath
import sympy as sp
from sympy.utilities.iterables import multiset_partitions

from .polynomial_space import NotClosedError, PolynomialSpace, affine_in_params, rational
from ..data.means import expectation
from ..data.laws import Empirical
from ..symbolic.problem import Problem
from .._checks import as_expr

__all__ = ["batch_sgd_operator", "exact_batch_sgd_mean", "batch_sum_moment"]

#: Largest test-function degree handled (Bell(8) = 4140 partitions per moment).
MAX_DEGREE = 8
#: Largest polynomial space (number of monomials) the exact operators are built on.
MAX_MONOMIALS = 2000
#: Most steps an exact product of one-step operators is taken over.
MAX_EXACT_STEPS = 100_000


def check_space_size(n: int, what: str) -> None:
    """Refuse, before any work, a polynomial space too large for exact linear algebra."""
    if n > MAX_MONOMIALS:
        raise ValueError(f"{what}: {n} monomials exceed the bound {MAX_MONOMIALS} of exact mode (the matrices "
                         f"cost {n}^3 operations per product); lower the test function's degree or use Monte Carlo.")


@lru_cache(maxsize=None)
def _set_partitions(n: int) -> tuple:
    if n == 0:
        return ((),)
    return tuple(tuple(tuple(b) for b in p) for p in multiset_partitions(list(range(n))))


def _moebius(coarse) -> int:
    return math.prod((-1) ** (len(g) - 1) * math.factorial(len(g) - 1) for g in coarse)


def _check(problem, batch_size, sampling):
    if not isinstance(problem, Problem):
        raise TypeError(f"`problem` must be a smfsym.Problem; got {type(problem).__name__}.")
    B = problem.batch_size if batch_size is None else as_expr(batch_size)
    if B.is_number and (not B.is_integer or B < 1):
        raise ValueError(f"`batch_size` must be a positive integer; got {batch_size!r}.")
    sampling = problem.sampling if sampling is None else sampling
    if sampling not in ("iid", "without_replacement"):
        raise ValueError(f"`sampling` must be 'iid' or 'without_replacement'; got {sampling!r}.")
    if not problem.is_polynomial:
        raise NotClosedError("exact moments need a loss polynomial in the data.")
    if not affine_in_params(problem):
        raise NotClosedError("exact moments need grad f affine in the parameters (a loss quadratic in them).")
    M = None
    if sampling == "without_replacement":
        if len(problem.laws) != 1 or not isinstance(problem.laws[0], Empirical):
            raise ValueError("`sampling='without_replacement'` needs the data to be one empirical data set; "
                             f"got laws {list(problem.laws)}.")
        law = problem.laws[0]
        if float(max(law.weights) - min(law.weights)) > 1e-12 * float(max(law.weights)):
            raise ValueError("`sampling='without_replacement'` needs equally weighted rows; the data set has "
                             "unequal weights.")
        M = law.size
        if B.is_number and B > M:
            raise ValueError(f"`batch_size` must be at most the data set size {M}; got {B}.")
    return B, sampling, M


class _Moments:
    """One-sample moments m(gamma) = E[prod_i g_i^gamma_i] of the gradient, cached."""

    def __init__(self, problem: Problem):
        self.g = list(problem.grad_f)
        self.cache: dict = {}

    def __call__(self, gamma: tuple) -> sp.Expr:
        if gamma not in self.cache:
            e = sp.Mul(*[gi**k for gi, k in zip(self.g, gamma) if k])
            self.cache[gamma] = sp.expand(expectation(sp.expand(e)))
        return self.cache[gamma]


def batch_sum_moment(beta: tuple, moments, B, sampling: str, M: int | None) -> sp.Expr:
    """E[S^beta] for the batch sum S of B gradients (formulas in the module docstring)."""
    positions = [i for i, k in enumerate(beta) for _ in range(k)]
    d = len(beta)

    def gamma(block):
        out = [0] * d
        for pos in block:
            out[positions[pos]] += 1
        return tuple(out)

    total = sp.S.Zero
    for part in _set_partitions(len(positions)):
        r = len(part)
        if sampling == "iid":
            total += sp.ff(B, r) * sp.Mul(*[moments(gamma(b)) for b in part])
            continue
        if B.is_number and r > B:
            continue  # (B)_r = 0
        inner = sp.S.Zero
        for coarse in _set_partitions(r):
            merged = [tuple(p for j in g for p in part[j]) for g in coarse]
            inner += _moebius(coarse) * sp.Mul(*[M * moments(gamma(m)) for m in merged])
        total += sp.ff(B, r) / sp.ff(M, r) * inner
    return sp.expand(total)


def batch_sgd_operator(problem: Problem, space: PolynomialSpace, eta: Any, batch_size: Any = None,
                       sampling: str | None = None) -> list:
    r"""Matrix (exact) of P phi(x) = E phi(x - eta/B sum_b grad f(x, xi_b)) on ``space``.

    Same layout as :func:`smfsym.simulation.exact.sgd_operator` (entry [i][j] is the coefficient of
    monomial i in the image of monomial j), which it equals for B = 1.

    Parameters
    ----------
    problem : Problem
        Loss polynomial in the data, gradient affine in the parameters.
    space : PolynomialSpace
    eta : number or sympy expression
        Floats are read as the rationals they were typed as.
    batch_size : int or sympy Symbol, optional
        Default: the problem's. A symbol is allowed for i.i.d. batches.
    sampling : {"iid", "without_replacement"}, optional
        Default: the problem's.

    Examples
    --------
    i.i.d. batches divide the one-step variance by B (docs/theory.md §1):

    >>> import sympy as sp, smfsym
    >>> from smfsym.simulation.exact import PolynomialSpace
    >>> from smfsym.optimizers import batch_sgd_operator
    >>> x, B, eta = sp.Symbol("x"), sp.Symbol("B", positive=True, integer=True), sp.Symbol("eta")
    >>> p = smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x])
    >>> P = batch_sgd_operator(p, PolynomialSpace([x], 2), eta, batch_size=B)
    >>> sp.factor(P[0][2])  # constant part of E x'^2: eta^2 Var(xi) / B
    eta**2/B
    """
    B, sampling, M = _check(problem, batch_size, sampling)
    if space.degree > MAX_DEGREE:
        raise ValueError(f"`space` degree must be at most {MAX_DEGREE} (set partitions grow like Bell numbers); "
                         f"got {space.degree}.")
    check_space_size(len(space.exps), "`space`")
    if tuple(space.params) != tuple(problem.params):
        raise ValueError(f"`space` must be over the problem's parameters {problem.params}; got {space.params}.")
    eta = rational(eta) if not isinstance(eta, sp.Basic) or eta.is_number else eta
    moments = _Moments(problem)
    smom: dict = {}
    x = problem.params
    cols = []
    for alpha in space.exps:
        img = sp.S.Zero
        for beta in _below(alpha):
            if beta not in smom:
                smom[beta] = batch_sum_moment(beta, moments, B, sampling, M)
            c = math.prod(math.comb(a, b) for a, b in zip(alpha, beta))
            xm = sp.Mul(*[xi**(a - b) for xi, a, b in zip(x, alpha, beta)])
            img += c * xm * (-eta / B) ** sum(beta) * smom[beta]
        cols.append(space.coords(sp.expand(img), "batch SGD image of a monomial"))
    n = len(cols)
    return [[cols[j][i] for j in range(n)] for i in range(n)]


def _below(alpha):
    import itertools

    return itertools.product(*[range(a + 1) for a in alpha])


def _mp(M, digits):
    out = mpmath.matrix(len(M), len(M[0]))
    for i, row in enumerate(M):
        for j, c in enumerate(row):
            c = as_expr(c)
            out[i, j] = (mpmath.mpf(c.p) / c.q) if c.is_Rational else mpmath.mpf(str(sp.N(c, digits)))
    return out


def exact_batch_sgd_mean(problem: Problem, phi, x0, eta, n_steps: int, batch_size: Any = None,
                         sampling: str | None = None, digits: int = 40) -> float:
    r"""E phi(x_k) after ``n_steps`` mini-batch SGD steps from ``x0``, exactly (``digits``-digit power).

    Examples
    --------
    Full-batch without replacement (B = M) is gradient descent: no variance.

    >>> import numpy as np, sympy as sp, smfsym
    >>> from smfsym.optimizers import exact_batch_sgd_mean
    >>> x = sp.Symbol("x")
    >>> (z,) = smfsym.empirical(np.array([[0.0], [1.0], [3.0]]), "z")
    >>> p = smfsym.Problem((x - z) ** 2 / 2, [x])
    >>> m1 = exact_batch_sgd_mean(p, x, [0.0], 0.5, 4, batch_size=3, sampling="without_replacement")
    >>> m2 = exact_batch_sgd_mean(p, x**2, [0.0], 0.5, 4, batch_size=3, sampling="without_replacement")
    >>> round(m1, 10), abs(round(m2 - m1**2, 12))
    (1.25, 0.0)
    """
    import numpy as np

    params = problem.params
    phi = as_expr(phi)
    if phi.free_symbols - set(params) or not phi.is_polynomial(*params):
        raise NotClosedError(f"`phi` must be a polynomial in the parameters {params}; got {phi}.")
    if not isinstance(n_steps, (int, np.integer)) or n_steps < 0:
        raise ValueError(f"`n_steps` must be a non-negative integer; got {n_steps!r}.")
    if n_steps > MAX_EXACT_STEPS:
        raise ValueError(f"`n_steps` must be at most {MAX_EXACT_STEPS} in exact mode; got {n_steps}.")
    space = PolynomialSpace(params, max(sp.Poly(phi, *params).total_degree(), 0))
    x0 = np.atleast_1d(np.asarray(x0, dtype=float))
    if x0.shape != (len(params),):
        raise ValueError(f"`x0` must have shape ({len(params)},); got {x0.shape}.")
    with mpmath.workdps(digits):
        P = _mp(batch_sgd_operator(problem, space, eta, batch_size, sampling), digits)
        c = mpmath.matrix([mpmath.mpf(str(sp.N(v, digits))) for v in space.coords(phi, "test function")])
        v = (P ** int(n_steps)) * c
        return float(sum(a * b for a, b in zip(space.at(x0), v)))
