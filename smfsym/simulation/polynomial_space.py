"""The finite linear algebra of exact moments (docs/theory.md §4): polynomials of bounded degree in
the parameters, as coordinates on their monomials, and the test that the moments close."""
from __future__ import annotations

import itertools
from typing import Sequence

import mpmath
import sympy as sp

from ..symbolic.problem import Problem
from .._checks import as_expr

__all__ = ["DIGITS", "NotClosedError", "PolynomialSpace", "affine_in_params", "rational"]

DIGITS = 40


class NotClosedError(ValueError):
    """The polynomial space is not invariant: exact moments do not close."""


def rational(v) -> sp.Rational:
    """A float as the rational it was typed as (0.05 -> 1/20)."""
    return sp.nsimplify(as_expr(v), rational=True)


class PolynomialSpace:
    """Monomials of total degree <= n in the parameters, with coordinates."""

    def __init__(self, params: Sequence[sp.Symbol], degree: int):
        self.params = tuple(params)
        self.degree = int(degree)
        self.exps = [e for total in range(self.degree + 1)
                     for e in _exponents(len(self.params), total)]
        self.index = {e: i for i, e in enumerate(self.exps)}

    @property
    def monomials(self):
        return [sp.Mul(*[p**k for p, k in zip(self.params, e)]) for e in self.exps]

    def coords(self, expr, what="expression") -> list:
        poly = sp.Poly(sp.expand(expr), *self.params)
        out = [sp.S.Zero] * len(self.exps)
        for e, c in poly.terms():
            if e not in self.index:
                raise NotClosedError(
                    f"the {what} has degree {sum(e)} > {self.degree}: polynomials of degree {self.degree} are "
                    "not invariant (is grad f affine in the parameters?)"
                )
            out[self.index[e]] = c
        return out

    def at(self, x0) -> list:
        x0 = [mpmath.mpf(float(v)) for v in x0]
        return [mpmath.fprod([xi**k for xi, k in zip(x0, e)]) for e in self.exps]


def _exponents(d, total):
    for combo in itertools.combinations_with_replacement(range(d), total):
        e = [0] * d
        for c in combo:
            e[c] += 1
        yield tuple(e)


def affine_in_params(problem: Problem) -> bool:
    """True when grad f(x, xi) is affine in x (the case where moments close)."""
    try:
        return all(sp.Poly(g, *problem.params).total_degree() <= 1 for g in problem.grad_f)
    except sp.PolynomialError:
        return False
