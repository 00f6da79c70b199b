"""A law parameter left symbolic inside a numeric data mean (docs/theory.md §8).

The mean's quadrature nodes move with the parameter, so the parameter is a free symbol of the
mean, a substitution reaches the rule (not only the integrand), and a derivative in it is not
passed under the rule (it stays unevaluated rather than reading 0).
"""
import pickle

import numpy as np
import pytest
import sympy as sp
import sympy.stats as st
from scipy.integrate import quad

import smfsym
from smfsym.data.means import DataMean
from smfsym.symbolic.lambdify import compile_exprs

m = sp.Symbol("m", real=True)
x = sp.Symbol("x")


def _problem(mean):
    return smfsym.Problem(sp.log(1 + sp.exp(x * smfsym.normal("a", mean=mean))), params=[x])


def _reference_F(x_value, mean):
    """E log(1 + e^{x a}), a ~ N(mean, 1), by adaptive quadrature (scipy), independent of the Gauss rules."""
    dens = lambda a: np.exp(-(a - mean) ** 2 / 2) / np.sqrt(2 * np.pi)
    return quad(lambda a: np.logaddexp(0.0, x_value * a) * dens(a), -30 + mean, 30 + mean, epsabs=1e-13)[0]


def test_a_symbolic_law_parameter_is_a_free_symbol_of_the_mean():
    F = _problem(m).F
    assert F.atoms(DataMean)
    assert F.free_symbols == {x, m}


def test_substituting_the_parameter_moves_the_rule():
    F = _problem(m).F
    at_one = F.subs(m, 1)
    assert at_one.free_symbols == {x}
    value = float(at_one.subs(x, 0.5).evalf())
    # the rule is refined to quad_rtol (1e-10 relative by default); 1e-8 leaves room for scipy's own error
    assert value == pytest.approx(_reference_F(0.5, 1.0), rel=1e-8)
    assert value != pytest.approx(_reference_F(0.5, 0.0), rel=1e-3)  # the unsubstituted law's value differs
    # xreplace (what the compilers bind `values` with) records the same number
    assert F.xreplace({m: sp.Integer(1)}) == at_one


def test_substitution_and_values_and_a_numeric_law_agree_bitwise():
    states = np.linspace(-2, 2, 7)[:, None]
    symbolic = _problem(m)
    numeric = _problem(1)
    by_subs = compile_exprs([symbolic.grad_F[0].subs(m, 1)], [x])(states)[0]
    by_values = compile_exprs([symbolic.grad_F[0]], [x], values={m: 1.0})(states)[0]
    direct = compile_exprs([numeric.grad_F[0]], [x])(states)[0]
    np.testing.assert_array_equal(by_subs, direct)
    np.testing.assert_array_equal(by_values, direct)


def test_a_recorded_value_wins_over_values():
    F = _problem(m).F.subs(m, 1)
    states = np.array([[0.5]])
    assert compile_exprs([F], [x], values={m: 3.0})(states)[0][0] == pytest.approx(_reference_F(0.5, 1.0), rel=1e-8)


def test_a_derivative_in_the_law_parameter_is_not_zero():
    F = _problem(m).F
    dF = sp.diff(F, m)
    assert dF != 0
    assert dF.atoms(sp.Derivative), dF  # unevaluated: the rule's nodes depend on m
    # a derivative in the parameters still passes under the mean
    assert not sp.diff(F, x).atoms(sp.Derivative)
    # once m has a number the mean no longer depends on it
    assert sp.diff(F.subs(m, 1), m) == 0


@pytest.mark.parametrize("value", [sp.Symbol("k"), 2 * m, sp.oo, sp.I, sp.nan])
def test_a_law_parameter_takes_numbers_only(value):
    F = _problem(m).F
    with pytest.raises(ValueError, match=r"law parameter m .*number only"):
        F.subs(m, value)


def test_a_recorded_value_survives_pickling_and_is_printed():
    F = _problem(m).F.subs(m, sp.Rational(1, 2))
    (mean,) = F.atoms(DataMean)
    assert pickle.loads(pickle.dumps(mean)) == mean
    assert mean.fixed_values == {m: 0.5}
    assert "m=1/2" in str(mean)
    assert mean.describe_rule().endswith(", m=1/2")  # as the derivation's data-mean definitions name it
    assert "m=\\frac{1}{2}" in sp.latex(mean)
    # the data symbol stays bound: giving a a value leaves the recorded mean alone
    a = next(iter(mean.data_symbols))
    assert mean.subs(a, 3) == mean


r = sp.Symbol("r", positive=True)
q = sp.Symbol("q", positive=True)


@pytest.mark.parametrize("ours,theirs", [
    (lambda: smfsym.exponential("e", rate=r), lambda: st.Exponential("e", r)),
    (lambda: smfsym.gamma("e", 2, 1 / r), lambda: st.Gamma("e", 2, 1 / r)),
    (lambda: smfsym.normal("e", std=1 / r), lambda: st.Normal("e", 0, 1 / r)),
    pytest.param(lambda: smfsym.beta("e", r, q), lambda: st.Beta("e", r, q), id="beta",
                 marks=pytest.mark.slow),  # 3 s in sympy.stats
], ids=["exponential", "gamma", "normal", None])
def test_polynomial_losses_under_laws_whose_moments_are_rational_in_their_parameters(ours, theirs):
    """F and Sigma against sympy.stats; these laws used to crash every polynomial loss (an internal
    'expected an expression convertible to a polynomial ... got 1/r' from sympy 1.14's rings)."""
    e, E_ = ours(), theirs()
    loss = lambda z: (x - z) ** 2 / 2 + x**3 * z**2 / 3  # noqa: E731
    p = smfsym.Problem(loss(e), [x])
    assert sp.simplify(p.F - st.E(loss(E_))) == 0
    g = sp.diff(loss(E_), x)
    assert sp.simplify(p.sigma[0, 0] - (st.E(g**2) - st.E(g) ** 2)) == 0
