"""Numeric means stay in the overflow-safe form whoever rebuilds them (docs/theory.md §8).

exp(a x)/(1 + exp(a x)) is inf/inf = NaN at the far nodes of a Gauss rule (and at data rows with a large
|a x|); 1/(1 + exp(-a x)) is not. Found by audit 5: sp.factor in the SME's closed-form square root, the
derivative of a mean (Hessians, every order-2 drift), sp.simplify, and data-set means all lost that form.
References: numpy's logaddexp / expit over the data rows; scipy's quad for the Gaussian means.
"""
import warnings

import numpy as np
import pytest
import sympy as sp
from scipy.integrate import quad
from scipy.special import expit

import smfsym
from smfsym.symbolic.lambdify import compile_exprs

x = sp.Symbol("x")


def _logistic_gaussian():
    return smfsym.Problem(sp.log(1 + sp.exp(x * smfsym.normal("a"))), params=[x])


def _gauss_mean(fn):
    return quad(lambda a: fn(a) * np.exp(-a * a / 2) / np.sqrt(2 * np.pi), -40, 40, points=[0.0], limit=400)[0]


def test_the_sme_noise_of_a_logistic_loss_is_finite_far_out():
    p = _logistic_gaussian()
    sme = smfsym.sme(p, order=1)
    states = np.array([[5.0], [10.0], [20.0], [60.0]])
    # beyond |x| = 10 the integrands' kink at a = 0 is too sharp for the rule's 1e-6: it warns, and is finite
    with pytest.warns(smfsym.QuadratureWarning, match="missed its tolerance at 2 of 4"):
        noise, root = compile_exprs([sme.diffusion[0].subs(sme.eta, 1), sp.sqrt(p.sigma[0, 0])], [x])(states)
    assert np.all(np.isfinite(noise)), noise  # was NaN from |x| = 10 (sp.factor rewrote the integrands)
    np.testing.assert_array_equal(noise, root)
    limits = smfsym.Limits()
    for xv, got in zip(states[:2, 0], noise[:2]):  # the states the rule resolved
        e1 = _gauss_mean(lambda a: a * expit(a * xv))
        e2 = _gauss_mean(lambda a: (a * expit(a * xv)) ** 2)
        # each mean within quad_atol + quad_rtol E|integrand|; propagated through sqrt(e2 - e1^2)
        t1 = limits.quad_atol + limits.quad_rtol * _gauss_mean(lambda a: abs(a * expit(a * xv)))
        t2 = limits.quad_atol + limits.quad_rtol * e2
        sd = np.sqrt(e2 - e1**2)
        assert got == pytest.approx(sd, abs=(t2 + 2 * abs(e1) * t1) / (2 * sd))


def test_derivatives_and_simplify_keep_the_safe_form():
    p = _logistic_gaussian()
    flow = smfsym.smf(p, order=2)
    states = np.array([[30.0], [-30.0], [100.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", smfsym.QuadratureWarning)  # the Hessian's spike at a = 0 is sharp there
        hess, drift = compile_exprs([p.hessian[0, 0], flow.drift[0].subs(flow.eta, 0.1)], [x])(states)
    assert np.all(np.isfinite(hess)) and np.all(np.isfinite(drift)), (hess, drift)  # NaN from |x| = 30
    F = p.F
    # sympy's simplify rebuilds the mean from a log(exp(a x) + 1): still evaluated without overflow
    value = float(F.subs(x, 50).evalf())
    limits = smfsym.Limits()  # two evaluations of a positive mean, each within quad_atol + quad_rtol * F
    assert float(sp.simplify(F).subs(x, 50).evalf()) == pytest.approx(
        value, abs=2 * (limits.quad_atol + limits.quad_rtol * value))


def test_a_logistic_loss_over_a_data_set_does_not_overflow():
    rows = np.array([[1.0, 1.0], [-2.0, 1.0], [0.5, -1.0]])
    z, y = smfsym.empirical(rows, "z y")
    p = smfsym.Problem(sp.log(1 + sp.exp(-y * z * x)), params=[x])
    margins = -rows[:, 1] * rows[:, 0]
    for xv in (400.0, -400.0, 3.0):  # exact sums over three rows: equal to numpy's up to rounding
        F, g = compile_exprs([p.F, p.grad_F[0]], [x])(np.array([[xv]]))
        assert F[0] == pytest.approx(np.mean(np.logaddexp(0.0, margins * xv)), rel=1e-14)
        assert g[0] == pytest.approx(np.mean(margins * expit(margins * xv)), rel=1e-14)

