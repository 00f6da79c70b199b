"""Ordinary sympy operations on a numeric data mean give the number or a clear refusal (audit 5)."""
import numpy as np
import pytest
import sympy as sp
from scipy.integrate import quad
from scipy.special import gamma as gamma_fn, jv

import smfsym
from smfsym.symbolic.lambdify import compile_exprs

x = sp.Symbol("x")


def _gauss_mean(fn):
    return quad(lambda a: fn(a) * np.exp(-a * a / 2) / np.sqrt(2 * np.pi), -40, 40, limit=200)[0]


def test_a_taylor_series_in_a_parameter_passes_under_the_mean():
    F = smfsym.Problem(sp.log(1 + sp.exp(x * smfsym.normal("a"))), params=[x]).F
    # E log(1 + e^{x a}) = log 2 + x E[a]/2 + x^2 E[a^2]/8 + O(x^4) (E a^3 = 0): moments in closed form
    assert sp.series(F, x, 0, 4) == sp.log(2) + x**2 / 8 + sp.O(x**4)


def test_sympy_lambdify_says_how_to_compile_a_mean():
    F = smfsym.Problem(sp.log(1 + sp.exp(x * smfsym.normal("a"))), params=[x]).F
    with pytest.raises(TypeError, match="compile_exprs"):
        sp.lambdify(x, F)(1.0)  # it was sympy's "Unsupported by SciPyPrinter: DataMean"


@pytest.mark.parametrize("integrand,reference", [
    (lambda a: sp.gamma(2 + sp.tanh(a)), lambda a: gamma_fn(2 + np.tanh(a))),
    (lambda a: sp.besselj(0, a), lambda a: jv(0, a)),
], ids=["gamma", "besselj"])
@pytest.mark.filterwarnings("ignore::smfsym.TailWarning")  # no tail rule for gamma/besselj: undecided, warned
def test_special_functions_in_an_integrand_evaluate(integrand, reference):
    """evalf returned the mean unevaluated (a swallowed TypeError: sympy printed math.gamma, scalar only) and
    compiling failed ("only 0-dimensional arrays", a NameError for besselj)."""
    G = smfsym.Problem(x**2 * integrand(smfsym.normal("a")), params=[x]).F
    ref = 0.49 * _gauss_mean(reference)
    limits = smfsym.Limits()  # the rule is refined to quad_atol + quad_rtol E|integrand| (docs/theory.md §8)
    tol = limits.quad_atol + limits.quad_rtol * 0.49 * _gauss_mean(lambda a: abs(reference(a)))
    assert float(G.subs(x, 0.7).evalf()) == pytest.approx(ref, abs=tol)
    assert compile_exprs([G], [x])(np.array([[0.7]]))[0][0] == pytest.approx(ref, abs=tol)


def test_pattern_rewrites_pass_through_a_mean():
    """sympy's Transform rules (powdenest, and limit through it) are not substitutions: they used to crash in the
    mean's bound-symbol check ("'int' object has no attribute 'is_Pow'")."""
    F = smfsym.Problem(sp.log(1 + sp.exp(x * smfsym.normal("a"))) + sp.sqrt(x**4), params=[x]).F
    assert sp.powdenest(F, force=True) != F  # sqrt(x**4) -> x**2 outside; the mean is rewritten, not refused
    assert float(sp.powdenest(F, force=True).subs(x, 0.5).evalf()) == pytest.approx(float(F.subs(x, 0.5).evalf()))
    with pytest.raises(NotImplementedError):  # sympy's gruntz knows no mean: its own refusal, not an AttributeError
        sp.limit(F, x, 0)
