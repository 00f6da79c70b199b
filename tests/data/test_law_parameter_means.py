"""A law parameter left symbolic inside a numeric data mean (docs/theory.md §8).

The mean's quadrature nodes move with the parameter, so the parameter is a free symbol of the
mean, a substitution reaches the rule (not only the integrand), and a derivative in it is not
passed under the rule (it stays unevaluated rather than reading 0).
"""
import pickle
import re

import numpy as np
import pytest
import sympy as sp
import sympy.stats as st
from scipy.integrate import quad
from scipy.optimize import brentq

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


_LIMITS = smfsym.Limits()


def _rule_tolerance(reference):
    """The error a data mean's rule is refined to: quad_atol + quad_rtol E|f| (docs/theory.md §8); the
    integrand log(1 + e^{x a}) is positive, so E|f| is the mean itself."""
    return _LIMITS.quad_atol + _LIMITS.quad_rtol * abs(reference)


def test_a_symbolic_law_parameter_is_a_free_symbol_of_the_mean():
    F = _problem(m).F
    assert F.atoms(DataMean)
    assert F.free_symbols == {x, m}
    # sympy's structural queries see it too (has, as_independent and Poly walk the args)
    assert F.has(m) and F.has_free(m)
    F1 = F.subs(x, 1)
    assert F1.as_independent(m) == (1, F1)  # all of it depends on m (it read (F1, 1): a constant in m)
    with pytest.raises(sp.PolynomialError):  # not a polynomial in m (it read one, with F1 a constant coefficient)
        sp.Poly(m * F1 + 1, m)
    # a root in a law parameter is found numerically (sympy's solve knows no inverse of a numeric mean)
    root = brentq(lambda v: float(F1.subs(m, v).evalf()) - 1, 0, 1, xtol=1e-12)
    assert _reference_F(1.0, root) == pytest.approx(1, abs=_rule_tolerance(1.0))  # F1(root) = 1 up to the rule


def test_substituting_the_parameter_moves_the_rule():
    F = _problem(m).F
    at_one = F.subs(m, 1)
    assert at_one.free_symbols == {x}
    value = float(at_one.subs(x, 0.5).evalf())
    ref = _reference_F(0.5, 1.0)
    assert value == pytest.approx(ref, abs=_rule_tolerance(ref))
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


def test_a_substituted_value_and_values_must_agree():
    """A mean substituted with m = 1 compiled with values={m: 3} used to take m = 1 silently (and a generated
    module's SGD sampler m = 3)."""
    F = _problem(m).F.subs(m, 1)
    states = np.array([[0.5]])
    ref = _reference_F(0.5, 1.0)
    assert compile_exprs([F], [x], values={m: 1.0})(states)[0][0] == pytest.approx(ref, abs=_rule_tolerance(ref))
    with pytest.raises(ValueError, match=r"`values` gives the law parameter m = 3, but a data mean was substituted "
                                         r"with m = 1"):
        compile_exprs([F], [x], values={m: 3.0})(states)
    flow = smfsym.gradient_flow(_problem(m)).subs({m: 1})
    with pytest.raises(ValueError, match="substituted with m = 1"):
        smfsym.codegen(flow, eta=0.01, values={m: 3.0})


def test_a_law_parameter_may_be_renamed_or_rescaled():
    """subs(m, 2*k) re-expresses the law parameter (sympy's Subs and as_finite_difference do such substitutions)."""
    k = sp.Symbol("k", real=True)
    F = _problem(m).F
    G = F.subs(m, 2 * k)
    assert G.free_symbols == {x, k}
    ref = _reference_F(0.5, 1.0)
    assert float(G.subs({k: 0.5, x: 0.5}).evalf()) == pytest.approx(ref, abs=_rule_tolerance(ref))
    states = np.array([[0.5]])
    assert compile_exprs([G], [x], values={k: 0.5})(states)[0][0] == pytest.approx(ref, abs=_rule_tolerance(ref))
    # the derivative in m, taken numerically by a central difference of the substituted means
    dF = sp.diff(F, m).as_finite_difference(sp.Rational(1, 1000))
    got = float(dF.subs({m: 0.3, x: 0.5}).evalf())
    lo, hi = _reference_F(0.5, 0.2995), _reference_F(0.5, 0.3005)
    # each mean within its rule's tolerance: the quotient within their sum over the step
    assert got == pytest.approx((hi - lo) / 1e-3, abs=(_rule_tolerance(lo) + _rule_tolerance(hi)) / 1e-3)
    assert sp.diff(F, m).subs(m, 1).doit() != 0  # a Subs of the unevaluated derivative, not an error


def test_a_derivative_in_the_law_parameter_is_not_zero():
    F = _problem(m).F
    dF = sp.diff(F, m)
    assert dF != 0
    assert dF.atoms(sp.Derivative), dF  # unevaluated: the rule's nodes depend on m
    # a derivative in the parameters still passes under the mean
    assert not sp.diff(F, x).atoms(sp.Derivative)
    # once m has a number the mean no longer depends on it
    assert sp.diff(F.subs(m, 1), m) == 0


@pytest.mark.parametrize("value", [sp.oo, -sp.oo, sp.I, 1 + sp.I, sp.nan, sp.zoo, sp.Symbol("k", imaginary=True)])
def test_a_law_parameter_takes_finite_real_values_only(value):
    F = _problem(m).F
    with pytest.raises(ValueError, match=r"law parameter m of a data mean must be given a finite real value"):
        F.subs(m, value)


def test_a_recorded_value_survives_pickling_and_is_printed():
    F = _problem(m).F.subs(m, sp.Rational(1, 2))
    (mean,) = F.atoms(DataMean)
    assert pickle.loads(pickle.dumps(mean)) == mean
    assert mean.law_parameters == (m,) and mean.law_values == (sp.Rational(1, 2),)
    assert mean.rule_values() == {m: 0.5}
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


s_ = sp.Symbol("s")
p_ = sp.Symbol("p")


def _laws_with_symbolic_parameters():
    """(law, bad numbers, what the refusal names) for every family with a checkable symbolic parameter."""
    return [
        (lambda: smfsym.exponential("e", rate=r), {r: -2}, "the rate of the Exponential law of e (r) must be positive"),
        (lambda: smfsym.normal("e", std=s_), {s_: -1}, "the std of the Normal law of e (s) must be positive"),
        (lambda: smfsym.gamma("e", s_, 2), {s_: 0}, "the shape of the Gamma law of e (s) must be positive"),
        (lambda: smfsym.beta("e", 2, s_), {s_: -0.5}, "the b of the Beta law of e (s) must be positive"),
        (lambda: smfsym.uniform("e", s_, 1), {s_: 2}, "the b of the Uniform law of e (1) must be greater than a = 2"),
        (lambda: smfsym.bernoulli("e", p_), {p_: 1.5}, "a weight of the Bernoulli law of e (1 - p) must be non-negative"),
    ]


@pytest.mark.parametrize("make,bad,message", _laws_with_symbolic_parameters(),
                         ids=["exponential", "normal", "gamma", "beta", "uniform", "bernoulli"])
def test_numbers_given_to_law_parameters_are_checked_as_the_factories_check_them(make, bad, message):
    """exponential(rate=-2) is refused; rate=r with r = -2 given later used to give a meaningless mean (1.5)."""
    e = make()
    loss = sp.log(1 + sp.exp(x * e * (1 + smfsym.normal("z") ** 2)))  # not polynomial: a numeric mean
    p = smfsym.Problem(loss, [x])
    with pytest.raises(ValueError, match=re.escape(message)):
        p.F.subs(bad)  # at the substitution
    with pytest.raises(ValueError, match=re.escape(message)):
        compile_exprs([p.F], [x], values=bad)(np.array([[0.5]]))  # at compilation with `values`
    with pytest.raises(ValueError, match=re.escape(message)):
        smfsym.simulate_sgd(p, [0.5], 2, 0.1, n_paths=4, seed=0, values=bad)  # SGD's sampler


def test_a_symbolic_covariance_is_checked_at_its_numbers():
    c = sp.Symbol("c")
    a = smfsym.normal("a", 2, cov=[[1, c], [c, 1]])
    p = smfsym.Problem(sp.log(1 + sp.exp(x * a[0] * a[1])), [x])
    assert compile_exprs([p.F], [x], values={c: 0.5})(np.array([[0.1]]))[0][0] > 0
    with pytest.raises(ValueError, match="covariance of the MultivariateNormal law of a0, a1 .* positive definite"):
        compile_exprs([p.F], [x], values={c: 2.0})(np.array([[0.1]]))


def test_compiling_a_derivative_in_a_law_parameter_says_what_to_do():
    """It failed with sympy's "Can't calculate derivative wrt 0.5" once `values` had been bound."""
    dF = sp.diff(_problem(m).F, m)
    with pytest.raises(ValueError, match=r"derivative of a numeric data mean in the law parameter\(s\) m .*"
                                         r"as_finite_difference"):
        compile_exprs([dF], [x], values={m: 0.5})
