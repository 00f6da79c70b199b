"""Infinite means and covariances are refused: the tail-growth rule of smfsym.data.tails (docs/theory.md §8).

Each case states what the rule says and is checked against it; a few are
checked against direct integration too.
"""
import warnings

import numpy as np
import pytest
import sympy as sp
from scipy import integrate, stats

import smfsym
from smfsym.data.tails import growth

x = sp.Symbol("x")


def _outcome(loss, params=(x,)):
    with warnings.catch_warnings():
        warnings.simplefilter("error", smfsym.TailWarning)
        try:
            smfsym.Problem(loss, list(params))
        except smfsym.TailWarning:
            return "warn"
        except ValueError as exc:
            if "is infinite" in str(exc) or "moments only up to" in str(exc):
                return "raise"
            raise
    return "ok"


RATE = sp.Symbol("rate", positive=True)


def _laws():
    return dict(n=smfsym.normal("n", std=2), t3=smfsym.student_t("t3", 3), t15=smfsym.student_t("t15", 1.5),
                t1=smfsym.student_t("t1", 1), e2=smfsym.exponential("e2", 2), g=smfsym.gamma("g", 2, 1),
                u=smfsym.uniform("u", -1, 1), b=smfsym.beta("b", 2, 3), r=smfsym.rademacher("r"),
                er=smfsym.exponential("er", RATE), gr=smfsym.gamma("gr", 2, 1 / RATE))


CASES = [
    # (loss builder, expected outcome, why)
    (lambda L: sp.log(1 + sp.exp(-x * L["n"])), "ok", "logistic grows linearly; Gaussian has all moments"),
    (lambda L: sp.log(1 + sp.exp(-x * L["t3"])), "ok", "linear growth, gradient ~|t|: needs nu > 2"),
    (lambda L: sp.log(1 + sp.exp(-x * L["t15"])), "raise", "Sigma needs E t^2, nu = 1.5"),
    (lambda L: sp.log(1 + sp.exp(-x * L["t1"])), "raise", "F needs E|t|, nu = 1"),
    (lambda L: 1 / (1 + sp.exp(-x * L["t1"])), "raise", "sigmoid bounded but its gradient is ~|t|"),
    (lambda L: sp.sin(x * L["t15"]), "raise", "gradient t cos(x t): E t^2 infinite"),
    (lambda L: sp.sin(x + L["t1"]), "ok", "bounded loss and gradient"),
    (lambda L: sp.tanh(x) * sp.Abs(L["t3"]) ** sp.Rational(3, 2), "raise", "|t|^3 for Sigma, nu = 3"),
    (lambda L: sp.tanh(x) * sp.Abs(L["t3"]) ** sp.Rational(1, 2), "ok", "|t|^1 for Sigma, nu = 3"),
    (lambda L: sp.cosh(L["t3"]) * x**2, "raise", "Student-t admits no exponential"),
    (lambda L: x * sp.exp(L["e2"] / 2), "ok", "exp(xi/2)^2 = exp(xi) < exp(2 xi)"),
    (lambda L: x * sp.exp(L["e2"]), "raise", "Sigma needs exp(2 xi): rate 2 not < 2"),
    (lambda L: x * sp.exp(3 * L["e2"]), "raise", "F needs exp(3 xi): rate 3 > 2"),
    (lambda L: x * sp.exp(-5 * L["e2"]), "ok", "decays"),
    (lambda L: x * sp.exp(sp.Rational(2, 5) * L["g"]), "ok", "Gamma(2, 1): 2 * 0.4 < 1"),
    (lambda L: x * sp.exp(sp.Rational(3, 5) * L["g"]), "raise", "Gamma(2, 1): 2 * 0.6 >= 1"),
    (lambda L: x * sp.exp(10 * L["n"]), "ok", "Gaussian admits any exp(linear)"),
    (lambda L: x * sp.exp(L["n"] ** 2), "warn", "super-exponential under a Gaussian: undecided"),
    (lambda L: sp.exp(x * L["e2"]), "warn", "rate x: finite only for x < 1, undecided"),
    (lambda L: x * sp.exp(50 * L["u"]) + sp.exp(x * L["b"]), "ok", "bounded support"),
    (lambda L: sp.exp(x * L["r"]) * sp.exp(L["r"] ** 9), "ok", "finite law"),
    (lambda L: x * sp.gamma(L["t3"]), "warn", "no rule for the gamma function"),
    # a symbolic rate decides nothing about polynomial growth (it warned "the coefficient rate is not a number")
    (lambda L: sp.tanh(x * L["er"]) + sp.log(1 + sp.exp(x * L["gr"])), "ok", "linear growth, any rate > 0"),
    (lambda L: x * sp.exp(L["er"]), "warn", "exp(xi) under Exp(rate): finite only for rate > 2, undecided"),
]


@pytest.mark.parametrize("i", range(len(CASES)))
def test_tail_rule_outcomes(i):
    build, expected, why = CASES[i]
    assert _outcome(build(_laws())) == expected, why


def test_infinite_covariance_message_names_law_and_term():
    t = smfsym.student_t("tt", 1.5)
    with pytest.raises(ValueError, match=r"Sigma is infinite.*StudentT.*tt") as exc:
        smfsym.Problem(sp.log(1 + sp.exp(-x * t)), [x])
    assert "docs/theory.md §8" in str(exc.value)


def test_rule_agrees_with_direct_integration():
    # E[(d/dx log(1 + exp(-x t)))^2] at x = 1 is E[t^2 sigma(-t)^2]: its tail integral over
    # t in [-1e6, -1e3] is negligible when the covariance exists and large when it does not
    for nu in (3.0, 1.5):
        tail = integrate.quad(lambda z: z**2 * stats.logistic.sf(z) ** 2 * stats.t(nu).pdf(z), -1e6, -1e3,
                              limit=200)[0]
        t = smfsym.student_t(f"tq{int(nu * 10)}", nu)
        rule = _outcome(sp.log(1 + sp.exp(-x * t)))
        assert rule == ("ok" if tail < 1e-2 else "raise"), (nu, tail, rule)


def test_growth_primitives():
    xi = sp.Symbol("xi", real=True)
    assert growth(xi**3 + sp.sin(xi), xi) == (0.0, 3.0)
    assert growth(sp.exp(2 * xi) * xi, xi, +1) == (2.0, 1.0)
    assert growth(sp.exp(2 * xi) * xi, xi, -1) == (-2.0, 1.0)
    assert growth(sp.log(1 + sp.exp(3 * xi)), xi, +1) == (0.0, 1.0)
    assert growth(1 / (1 + sp.exp(-xi)), xi) == (0.0, 0.0)
    assert growth(sp.sqrt(1 + xi**2), xi) == (0.0, 1.0)


def test_polynomial_losses_keep_their_moment_check():
    # docs/theory.md §8: F needs the loss's degree below m, Sigma twice the gradient's (m = 3 for Student-t(3))
    t = smfsym.student_t("tp", 3)
    with pytest.raises(ValueError, match=r"moments only up to order 2, but Sigma needs order 4 \(grad f has degree 2"):
        smfsym.Problem(x * t**2, [x])
    with pytest.raises(ValueError, match=r"moments only up to order 2, but F needs order 3 \(the loss has degree 3"):
        smfsym.Problem((x - t) ** 2 + t**3, [x])


def test_heavy_tailed_label_noise_builds_every_model():
    """Linear regression with Student-t(3) label noise: grad f = x - t needs E t^2 only (it was refused, the check
    doubling the loss's degree, not the gradient's). F = x^2/2 + 3/2 and Sigma = Var t = 3 by hand; the SMF's one
    column is -sqrt(3) (its chaos coefficient without the parameter-free t^2/2, whose E[t^2 e_1] needs E t^3)."""
    t = smfsym.student_t("tl", 3)
    p = smfsym.Problem((x - t) ** 2 / 2, [x])
    assert sp.simplify(p.F - (x**2 / 2 + sp.Rational(3, 2))) == 0 and p.sigma == sp.Matrix([[3]])
    flow = smfsym.smf(p, order=2)
    assert flow.chaos.exact and sp.simplify((flow.diffusion * flow.diffusion.T)[0] - 3 * flow.eta) == 0
    assert smfsym.sme(p, order=2).diffusion == sp.Matrix([[sp.sqrt(3) * sp.sqrt(flow.eta)]])


def test_expectation_and_covariance_apply_the_rule_directly():
    from smfsym.data.means import covariance, expectation

    t15, e2 = smfsym.student_t("td", 1.5), smfsym.exponential("ed", 2)
    with pytest.raises(ValueError, match="is infinite"):
        expectation(sp.exp(3 * e2))
    with pytest.raises(ValueError, match="the covariance is infinite"):
        covariance([sp.atan(t15) * t15])  # E t^2 = oo at nu = 1.5
    assert expectation(sp.exp(e2)).free_symbols == set()  # E exp(xi) = 2 exists
    with pytest.warns(smfsym.TailWarning):
        expectation(sp.exp(x * e2))


def test_student_t_with_a_symbolic_nu_is_refused():
    # E t and E t^3 came back as 0 for any nu (they need nu > 1, nu > 3), and E t^2 crashed inside sympy's rings
    nu = sp.Symbol("nu", positive=True)
    with pytest.raises(ValueError, match=r"`nu` must be a number: which moments .* got the symbolic nu"):
        smfsym.student_t("ts", nu)
    assert smfsym.expectation(smfsym.student_t("tn", sp.Rational(7, 2)) ** 2) == sp.Rational(7, 3)  # numbers pass


@pytest.mark.parametrize("make,expr,where", [
    # by hand: E 1/u = int_0^1 du/u = oo; E 1/a^2 under N(0, 1) = oo; E 1/e = oo under Exp(1); under Beta(1/2, 1/2)
    # the density ~ t^(-1/2) at 0, so E 1/b = oo
    (lambda: smfsym.uniform("us", 0, 1), lambda s: 1 / s, "0"),
    (lambda: smfsym.normal("ns"), lambda s: s**-2, "0"),
    (lambda: smfsym.exponential("es", 1), lambda s: 1 / s, "0"),
    (lambda: smfsym.beta("bs", sp.Rational(1, 2), sp.Rational(1, 2)), lambda s: 1 / s, "0"),
    (lambda: smfsym.uniform("um", -1, 1), lambda s: 1 / (s - sp.Rational(1, 2)), "1/2"),
    # the upper end was skipped: E 1/(1 - u) = 13.6 with only a QuadratureWarning
    (lambda: smfsym.uniform("uu", 0, 1), lambda s: 1 / (1 - s), "1"),
    (lambda: smfsym.beta("bu", 2, sp.Rational(1, 2)), lambda s: 1 / (1 - s), "1"),
])
def test_a_pole_inside_the_support_is_refused(make, expr, where):
    """Quadrature returned finite numbers for these (E 1/u = 13.6, E 1/a^2 = 27.4), with at most a warning."""
    s = make()
    with pytest.raises(ValueError, match=rf"is infinite: .* is singular at {s} = {where} in the support"):
        smfsym.expectation(expr(s))


def test_poles_that_leave_the_mean_finite_or_are_not_proven_pass():
    # E 1/g under Gamma(3) = 1/2 (density ~ t^2 at 0), a pole outside the support, and a pole that moves with x
    g, u, a = smfsym.gamma("gs", 3), smfsym.uniform("ug", 0, 1), smfsym.normal("ag")
    with warnings.catch_warnings():  # 1/t against t^2 e^-t: Gauss-Laguerre converges slowly, and warns so
        warnings.simplefilter("ignore", smfsym.QuadratureWarning)
        warnings.simplefilter("error", smfsym.TailWarning)  # the tail of 1/g decays; its pole is analysed
        assert abs(float(smfsym.expectation(1 / g)) - 0.5) < 1e-4
    assert abs(float(smfsym.expectation(1 / (u + 1))) - np.log(2)) < 1e-9
    # Beta(1, 3) at its upper end: density 3 (1 - t)^2, so E 1/(1 - b) = 3/2, finite (integrated by hand)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", smfsym.TailWarning)
        warnings.simplefilter("ignore", smfsym.QuadratureWarning)
        assert abs(float(smfsym.expectation(1 / (1 - smfsym.beta("b13", 1, 3)))) - 1.5) < 1e-6
    smfsym.Problem((x - a) ** 2 / (2 * (1 + a**2)), [x])  # no real pole
    # f = x^2/2 - x/a: its 1/a^2 cancels, but E|x/a| = oo too (a principal value is not a mean)
    with pytest.raises(ValueError, match=r"F = E f is infinite: .* like \|ag\|\^-1, so its mean"):
        smfsym.Problem((x - 1 / a) ** 2 / 2 - 1 / (2 * a**2), [x])
    # Beta(2, 2): density 6 t (1 - t), so E 1/b = 3 (F exists) but E 1/b^2 = oo (Sigma does not)
    b = smfsym.beta("bt", 2, 2)
    with pytest.raises(ValueError, match=r"Sigma is infinite: .* like \|bt\|\^-1, so its square"):
        smfsym.Problem(x**2 / 2 + x / b, [x])
