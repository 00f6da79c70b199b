"""Numerical safeguards: resource limits checked before work starts (docs/theory.md §8).

Every derivation estimates the size of what it is about to build -- the degree
of the loss in the data and in the parameters, the number of monomials after
expansion (multinomial counts, never by expanding), the number of products the
covariance Sigma needs, the number of chaos noise columns and of quadrature
nodes -- and refuses with :class:`ResourceLimitError` when an estimate exceeds
its limit. The limits are the fields of :class:`Limits`; raise them with
``Problem(..., limits=smfsym.Limits(max_terms=...))``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Iterable

import sympy as sp
from ._checks import as_expr

__all__ = ["Limits", "ResourceLimitError", "QuadratureWarning", "SizeEstimate", "estimate_size",
           "DEFAULT_LIMITS"]


class ResourceLimitError(ValueError):
    """A derivation would exceed a resource limit (see :class:`Limits`)."""


class QuadratureWarning(UserWarning):
    """A quadrature mean did not reach its error tolerance (docs/theory.md §8)."""


@dataclass(frozen=True)
class Limits:
    """Upper bounds on the work a derivation may start (docs/theory.md §8).

    Parameters
    ----------
    max_data_degree : int, default 32
        Total degree of the loss in the data symbols (polynomial losses; Sigma
        needs moments of twice this order; the chaos expansion of (a x - e)**25
        already takes seconds).
    max_param_degree : int, default 256
        Total degree of the loss in the parameters (and constants).
    max_terms : int, default 20000
        Monomials of the expanded loss (in data and parameters), bounded by
        multinomial counts before anything is expanded.
    max_products : int, default 1000000
        Term-by-term products the covariance Sigma needs, counted on the expanded
        gradient (itself bounded by ``max_terms``) before any product: pairs of
        terms of grad_i f and grad_j f (i <= j) whose data monomials share an
        independent law block (the other pairs have covariance zero and are never
        formed; for moments that are floats, every pair). Linear regression with d
        independent Gaussian features needs about 2.5 d^3, so it derives up to
        d = 70 by default; a 2-parameter loss of degree 40 in two data laws needs
        3.7 million and is refused.
    max_noise_columns : int, default 2000
        Columns of a chaos (cylindrical-noise) expansion.
    max_nodes : int, default 100000
        Nodes of a tensor-product quadrature rule (all coordinates together).
    quad_rtol, quad_atol : float, default 1e-6, 1e-9
        Tolerance of quadrature means: the n-point and 2n-point rules must agree
        to ``quad_atol + quad_rtol * E|integrand|``.
    max_quad_points : int, default 512
        Largest number of points per coordinate the refinement may reach.
    max_depth : int, default 100
        Nesting depth of the loss's expression tree (sympy differentiates and
        prints recursively; deeper trees would end in a RecursionError).

    Examples
    --------
    >>> import smfsym
    >>> smfsym.Limits(max_terms=10).max_terms
    10
    """

    max_data_degree: int = 32
    max_param_degree: int = 256
    max_terms: int = 20_000
    max_products: int = 1_000_000
    max_noise_columns: int = 2_000
    max_nodes: int = 100_000
    quad_rtol: float = 1e-6
    quad_atol: float = 1e-9
    max_quad_points: int = 512
    max_depth: int = 100

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name.startswith("quad_"):
                ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
                want = "a finite number >= 0"
            else:
                ok = isinstance(v, int) and not isinstance(v, bool) and v >= 1
                want = "a positive integer"
            if not ok:
                raise ValueError(f"`Limits.{f.name}` must be {want}; got {v!r}.")

    def replace(self, **changes) -> "Limits":
        return replace(self, **changes)


DEFAULT_LIMITS = Limits()


def as_limits(limits) -> Limits:
    if limits is None:
        return DEFAULT_LIMITS
    if not isinstance(limits, Limits):
        raise TypeError(f"`limits` must be a smfsym.Limits; got {type(limits).__name__}.")
    return limits


def refuse(what: str, estimate, limit_name: str, limit_value, where: str = "Problem") -> None:
    raise ResourceLimitError(
        f"{what}: estimated {estimate:,} exceeds the limit `{limit_name}` = {limit_value:,}. "
        f"Simplify the input, or raise the limit explicitly with "
        f"`{where}(..., limits=smfsym.Limits({limit_name}=...))`."
    )


@dataclass(frozen=True)
class SizeEstimate:
    """Upper bounds for an expression before expansion (see :func:`estimate_size`)."""

    data_degree: int | None   # None: not polynomial in the data
    param_degree: int
    terms: int


_CAP = 10**30  # counts beyond any limit are clipped (the estimate only has to exceed the limit)


def _comb_capped(n: int, k: int) -> int:
    if k < 0 or n < 0:
        return 0
    k = min(k, n - k)
    if k > 200:  # the count is astronomically above any limit
        return _CAP
    out = 1
    for i in range(k):
        out = out * (n - i) // (i + 1)
        if out > _CAP:
            return _CAP
    return out


def expression_depth(expr) -> int:
    """Nesting depth of a sympy tree, computed without recursion."""
    best, stack = 0, [(as_expr(expr), 1)]
    seen: set = set()
    while stack:
        e, d = stack.pop()
        best = max(best, d)
        for a in e.args:
            if isinstance(a, sp.Basic) and (a, d + 1) not in seen:
                seen.add((a, d + 1))
                stack.append((a, d + 1))
    return best


def estimate_size(expr, data: Iterable[sp.Symbol], params: Iterable[sp.Symbol]) -> SizeEstimate:
    """Bounds on the degree in the data and parameters and on the monomial count after expansion.

    Sums add term counts, products multiply them, an integer power ``b**n`` of a
    ``T``-term base has at most ``binomial(T + n - 1, n)`` monomials, and no
    expansion has more monomials than there are of its degree in its variables.
    Nothing is expanded, so ``x**(10**10)`` is sized in microseconds.

    Examples
    --------
    >>> import sympy as sp
    >>> a, e, x = sp.symbols("a e x")
    >>> estimate_size((a * x - e) ** 200, [a, e], [x])
    SizeEstimate(data_degree=200, param_degree=200, terms=201)
    """
    data = set(data)
    params = set(params)
    memo: dict = {}

    def walk(e):
        # returns (data degree or None, param degree, terms)
        hit = memo.get(e)
        if hit is not None:
            return hit
        if e in data:
            out = (1, 0, 1)
        elif e.is_Symbol:
            out = (0, 1 if e in params else 0, 1)
        elif e.is_Number or not e.free_symbols:
            out = (0, 0, 1)
        elif e.is_Add:
            parts = [walk(a) for a in e.args]
            dd = None if any(p[0] is None for p in parts) else max(p[0] for p in parts)
            out = (dd, max(p[1] for p in parts), min(_CAP, sum(p[2] for p in parts)))
        elif e.is_Mul:
            parts = [walk(a) for a in e.args]
            dd = None if any(p[0] is None for p in parts) else sum(p[0] for p in parts)
            t = 1
            for p in parts:
                t = min(_CAP, t * p[2])
            out = (dd, sum(p[1] for p in parts), t)
        elif e.is_Pow and e.exp.is_Integer and e.exp >= 0:
            n = int(e.exp)
            bd, bp, bt = walk(e.base)
            t = 1 if bt == 1 else _comb_capped(bt + n - 1, n) if n <= 10**6 else _CAP
            v = len(e.base.free_symbols)
            deg = (bd or 0) * n + bp * n
            if deg < 10**6:
                t = min(t, _comb_capped(v + deg, v))
            out = (None if bd is None else bd * n, bp * n, t)
        else:
            # an atom of the expansion (a function, a non-integer power): polynomial in the
            # parameters only if it contains no data; its parameter degree counts as 1
            has_data = bool(e.free_symbols & data)
            out = (None if has_data else 0, 1 if e.free_symbols & params else 0, 1)
        memo[e] = out
        return out

    try:
        dd, pd, t = walk(as_expr(expr))
    except RecursionError:
        raise ResourceLimitError("the expression is nested too deeply to be sized (Python recursion limit)") \
            from None
    return SizeEstimate(dd, pd, t)


def check_size(est: SizeEstimate, limits: Limits, what: str = "the loss", where: str = "Problem") -> None:
    """Refuse (ResourceLimitError) when an estimate exceeds ``limits``."""
    if est.data_degree is not None and est.data_degree > limits.max_data_degree:
        refuse(f"{what} has total degree {est.data_degree} in the data", est.data_degree,
               "max_data_degree", limits.max_data_degree, where)
    if est.param_degree > limits.max_param_degree:
        refuse(f"{what} has total degree {est.param_degree} in the parameters", est.param_degree,
               "max_param_degree", limits.max_param_degree, where)
    if est.terms > limits.max_terms:
        refuse(f"{what} expands to too many monomials", est.terms, "max_terms", limits.max_terms, where)


def check_products(products: int, limits: Limits, what: str, where: str = "Problem") -> None:
    """Refuse when a covariance needs more term-by-term products than ``limits.max_products``."""
    if products > limits.max_products:
        refuse(f"{what} needs too many term products", products, "max_products", limits.max_products, where)
