"""Exact moments (docs/theory.md §4): no Monte Carlo.

For a loss whose gradient is affine in the parameters, polynomial test
functions of degree n stay polynomials of degree <= n under the one-step SGD
operator (P phi)(x) = E phi(x - eta grad f(x, xi)) and under the generator L
of the SME/SMF. So E phi(x_k) = (P^k phi)(x_0) and E phi(X_t) = (e^{tL} phi)(x_0)
are finite linear algebra on the monomials of degree <= n: the operators are
built exactly (rational eta, exact moments) and powered / exponentiated in
40-digit arithmetic (mpmath).
"""
from __future__ import annotations

import itertools
from typing import Sequence

import mpmath
import sympy as sp

from .expectation import expectation
from .problem import Problem
from ._checks import as_expr

__all__ = ["NotClosedError", "PolynomialSpace", "sgd_operator", "generator_matrix", "exact_sgd_mean",
           "exact_sde_mean", "model_closes", "real_generator"]

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


def sgd_operator(problem: Problem, space: PolynomialSpace, eta) -> list:
    """Matrix (exact) of P phi = E phi(x - eta grad f(x, xi)) on ``space``.

    Mini-batches (i.i.d., or without replacement from a data set) go through
    :func:`smfsym.optimizers.batch_sgd_operator` (docs/theory.md §4).
    """
    if problem.batch_size != 1:
        from .optimizers import batch_sgd_operator

        try:
            return batch_sgd_operator(problem, space, eta)
        except ValueError as exc:  # e.g. unequal weights without replacement: not closed here
            raise NotClosedError(str(exc)) from None
    if not problem.is_polynomial:
        raise NotClosedError("exact moments need a loss polynomial in the data.")
    eta = rational(eta)
    step = {p: p - eta * g for p, g in zip(problem.params, problem.grad_f)}
    cols = [space.coords(expectation(sp.expand(m.xreplace(step))), "SGD image of a monomial")
            for m in space.monomials]
    return [[cols[j][i] for j in range(len(cols))] for i in range(len(cols))]


def real_generator(sde, phi) -> sp.Expr:
    """L phi with the state read as real: |x|^2 = x^2.

    An SME's noise Sigma^{1/2} may hold |x| (f = (1 + xi) x^2 / 2, xi = +-1: sqrt(eta) |x|), but
    the generator needs only a = sigma sigma^T, where |x|^2 is x^2 for the real state. Symbols
    declared without ``real=True`` would leave ``Abs(x)**2`` standing (not a polynomial), so the
    state is replaced by real stand-ins and back.
    """
    real = {v: sp.Dummy(v.name, real=True) for v in sde.state if v.is_real is not True}
    img = sde.generator(phi)
    if not real:
        return img
    return sp.expand(img.xreplace(real)).xreplace({d: v for v, d in real.items()})


def generator_matrix(sde, space: PolynomialSpace, eta) -> list:
    """Matrix (exact) of the generator L on ``space``, with the learning rate substituted.

    Raises :class:`NotClosedError` when an image leaves ``space`` or is not a polynomial.
    """
    sub = sde.subs({sde.eta: rational(eta)})
    cols = []
    for m in space.monomials:
        img = real_generator(sub, m)
        try:
            cols.append(space.coords(img, "generator image of a monomial"))
        except (sp.PolynomialError, sp.polys.polyerrors.GeneratorsError):
            raise NotClosedError(f"the generator image of {m} is not polynomial in {list(space.params)} "
                                 f"({img}): a non-polynomial noise covariance or drift.") from None
    return [[cols[j][i] for j in range(len(cols))] for i in range(len(cols))]


def model_closes(sde, space: PolynomialSpace, eta) -> str | None:
    """None when the generator of ``sde`` maps ``space`` into itself (exact moments apply), else why not."""
    if set(sde.state) != set(space.params):
        return "its state differs from the parameters"
    try:
        generator_matrix(sde, space, eta)
    except NotClosedError as exc:
        return str(exc)
    return None


def _mp(M):
    return mpmath.matrix([[mpmath.mpf(sp.Rational(c).p) / sp.Rational(c).q if c.is_Rational else mpmath.mpf(str(sp.N(c, DIGITS)))
                           for c in row] for row in M])


def exact_sgd_mean(problem, phi, x0, eta, n_steps, space=None) -> float:
    """E phi(x_k) after ``n_steps`` SGD steps from ``x0``, exactly (40 digits)."""
    space = space or PolynomialSpace(problem.params, _degree(phi, problem.params))
    with mpmath.workdps(DIGITS):
        P = _mp(sgd_operator(problem, space, eta))
        c = mpmath.matrix([mpmath.mpf(str(sp.N(v, DIGITS))) for v in space.coords(phi, "test function")])
        v = (P**int(n_steps)) * c
        return float(sum(a * b for a, b in zip(space.at(x0), v)))


def exact_sde_mean(sde, phi, x0, eta, t, space=None) -> float:
    """E phi(X_t) for the SDE from ``x0``, exactly (40-digit matrix exponential)."""
    space = space or PolynomialSpace(sde.state, _degree(phi, sde.state))
    with mpmath.workdps(DIGITS):
        L = _mp(generator_matrix(sde, space, eta))
        c = mpmath.matrix([mpmath.mpf(str(sp.N(v, DIGITS))) for v in space.coords(phi, "test function")])
        v = mpmath.expm(L * mpmath.mpf(str(rational(t)))) * c
        return float(sum(a * b for a, b in zip(space.at(x0), v)))


def _degree(phi, params):
    return sp.Poly(sp.expand(phi), *params).total_degree()
