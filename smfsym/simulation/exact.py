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

import mpmath
import sympy as sp

from ..data.means import expectation
from .minibatch_exact import batch_sgd_operator
from .polynomial_space import DIGITS, NotClosedError, PolynomialSpace, affine_in_params, rational  # noqa: F401 (re-exported)
from ..symbolic.problem import Problem

__all__ = ["NotClosedError", "PolynomialSpace", "sgd_operator", "generator_matrix", "exact_sgd_mean",
           "exact_sde_mean", "model_closes", "real_generator"]

def sgd_operator(problem: Problem, space: PolynomialSpace, eta) -> list:
    """Matrix (exact) of P phi = E phi(x - eta grad f(x, xi)) on ``space``.

    Mini-batches (i.i.d., or without replacement from a data set) go through
    :func:`smfsym.simulation.minibatch_exact.batch_sgd_operator` (docs/theory.md §4).
    """
    if problem.batch_size != 1:
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
