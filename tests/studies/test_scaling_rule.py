"""Scaling rules (linear for SGD, square-root for RMSprop and Adam in Malladi et al.'s regime): the rule keeps
the SDE's parameters, and the square-root rule keeps E phi of RMSprop within its standard errors across
k = 1, 4, 16 where the naive rule (batch only) moves it by many."""
import math

import numpy as np
import pytest
import sympy as sp

import smfsym
from smfsym.studies.scaling_rule_study import (ScalingRuleStudy, rule_exponents, scaling_rule,
                                               scaling_rule_study, sde_parameters)

x = sp.Symbol("x")
QUIET = smfsym.RunOptions(progress=False)
BASE = {"sgd": {"eta": 0.1, "batch": 8},
        "rmsprop": {"eta": 0.01, "batch": 8, "beta": 0.999, "eps": 1e-6},
        "adam": {"eta": 0.01, "batch": 8, "beta1": 0.99, "beta2": 0.999, "eps": 1e-6}}


@pytest.mark.parametrize("optimizer", sorted(BASE))
@pytest.mark.parametrize("k", [4, 16])
def test_the_rule_keeps_the_sdes_parameters_and_the_naive_change_does_not(optimizer, k):
    base = sde_parameters(optimizer, BASE[optimizer])
    scaled = sde_parameters(optimizer, scaling_rule(optimizer, BASE[optimizer], k))
    naive = sde_parameters(optimizer, scaling_rule(optimizer, BASE[optimizer], k, rule="naive"))
    assert set(scaled) == set(base) and all(math.isclose(scaled[n], base[n], rel_tol=1e-12) for n in base)
    assert any(not math.isclose(naive[n], base[n], rel_tol=1e-3) for n in base)


def test_rules_derived_from_the_sde_are_the_published_ones():
    """Solving for the powers of k that keep the SDE's parameters gives the linear rule for SGD and the
    square-root rule (eta sqrt(k), (1 - beta) k, eps / sqrt(k)) for RMSprop and Adam."""
    half = sp.Rational(1, 2)
    assert rule_exponents("sgd") == {"eta": 1}
    assert rule_exponents("rmsprop") == {"eta": half, "1-beta": 1, "eps": -half}
    assert rule_exponents("adam") == {"eta": half, "1-beta1": 1, "1-beta2": 1, "eps": -half}


def test_square_root_rule_has_the_papers_form():
    h = scaling_rule("rmsprop", BASE["rmsprop"], 4)
    assert math.isclose(h["eta"], 0.02) and math.isclose(1 - h["beta"], 0.004) and math.isclose(h["eps"], 5e-7)
    assert h["batch"] == 32 and BASE["rmsprop"]["eta"] == 0.01  # the caller's mapping is untouched


def test_refusals_name_the_argument():
    p = smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x])
    with pytest.raises(ValueError, match="`optimizer`"):
        scaling_rule("lamb", BASE["sgd"], 4)
    with pytest.raises(ValueError, match="`k` = 2000.*1 - beta"):
        scaling_rule("rmsprop", BASE["rmsprop"], 2000)
    with pytest.raises(ValueError, match="`rule`"):
        scaling_rule("sgd", BASE["sgd"], 4, rule="cubic")
    with pytest.raises(ValueError, match="`ks` must start at 1"):
        scaling_rule_study(p, x**2, [1.0], 1.0, optimizer="sgd", eta=0.125, ks=[2, 4])
    with pytest.raises(ValueError, match="`hyper` for sgd"):
        scaling_rule_study(p, x**2, [1.0], 1.0, optimizer="sgd", eta=0.125, hyper={"beta": 0.9})
    with pytest.raises(ValueError, match="`hyper\\['beta'\\]` must be in \\(0, 1\\)"):
        scaling_rule_study(p, x**2, [1.0], 1.0, eta=0.125, hyper={"beta": 1.5})
    with pytest.raises(ValueError, match="`t_end` = 0.3 must be a multiple"):
        scaling_rule_study(p, x**2, [1.0], 0.3, optimizer="sgd", eta=0.125)
    with pytest.raises(ValueError, match="`phi` must be an expression"):
        scaling_rule_study(p, x**2 + sp.Symbol("q"), [1.0], 1.0, optimizer="sgd", eta=0.125)
    with pytest.raises(TypeError, match="`problem`"):
        scaling_rule_study("p", x**2, [1.0], 1.0, optimizer="sgd", eta=0.125)
    with pytest.raises(ValueError, match="`n_paths` must be at least 2"):
        scaling_rule_study(p, x**2, [1.0], 1.0, optimizer="sgd", eta=0.125, n_paths=1)


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
def test_square_root_rule_keeps_rmsprop_where_the_naive_rule_does_not(tmp_path):
    """RMSprop on (x - xi)^2 / 2, xi ~ N(0, 64), x0 = 1, phi = x^2, t = 1; at k = 1: eta = 1/16, B = 1,
    1 - beta = 1/256 (c = 1), eps = 8 (eps0 = 1/2, sigma0 = 1/16: sigma0 Sigma^{1/2} = 1/2), 256 steps.
    With the square-root rule (16 steps at k = 16) every shift of E phi from k = 1 stays under 4 of its
    standard errors (measured: under 1 SE, about 1e-3, the rule's discretisation error at eta^2 = 1/16
    being smaller than the 100,000-path SE of 9e-4); with the batch alone changed the shift exceeds 20 SE
    at k = 4 and 16 (measured 130 and 190 SE: the SDE's noise sigma0 falls by sqrt(k))."""
    p = smfsym.Problem((x - smfsym.normal("xi", std=8)) ** 2 / 2, [x])
    st = scaling_rule_study(p, x**2, [1.0], 1.0, optimizer="rmsprop", eta=1 / 16,
                            hyper={"beta": 1 - 1 / 256, "eps": 8.0}, n_paths=100_000, seed=1, options=QUIET)
    assert [r["steps"] for r in st.rule_rows("square_root")] == [256, 64, 16]
    assert [r["steps"] for r in st.rule_rows("naive")] == [256, 256, 256]
    for r in st.rule_rows("square_root")[1:]:
        assert abs(r["shift"]) < 4 * r["shift_se"], r
    for r in st.rule_rows("naive")[1:]:
        assert abs(r["shift"]) > 20 * r["shift_se"], r
    assert st.max_shift("square_root")[0] < 4 < 20 < st.max_shift("naive")[0]
    back = smfsym.load_study(st.save(tmp_path / "rule.json"))
    assert isinstance(back, ScalingRuleStudy) and repr(back.rows) == repr(st.rows)
    assert "square root" in st.to_latex() and "naive" in str(st)


def test_same_seed_same_numbers_and_input_untouched():
    p = smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x])
    x0 = np.array([1.0])
    hyper = {"beta1": 0.99, "beta2": 0.99, "eps": 1.0}
    a = scaling_rule_study(p, x**2, x0, 0.25, optimizer="adam", eta=0.125, hyper=hyper, ks=[1, 4], n_paths=300,
                           seed=5, options=QUIET)
    b = scaling_rule_study(p, x**2, x0, 0.25, optimizer="adam", eta=0.125, hyper=hyper, ks=[1, 4], n_paths=300,
                           seed=5, options=QUIET)
    assert [r["value"] for r in a.rows] == [r["value"] for r in b.rows]
    assert np.array_equal(x0, [1.0]) and hyper == {"beta1": 0.99, "beta2": 0.99, "eps": 1.0}
    assert [r["steps"] for r in a.rows] == [16, 4, 16, 16] and a.meta["rule"] == "square_root"


def test_linear_rule_keeps_sgd_where_the_naive_rule_does_not():
    """SGD on (x - xi)^2 / 2, xi ~ N(0, 1), from x0 = 0, phi = x^2, t = 1, eta = 1/256, B = 1: E phi is the
    noise's, (eta / B) (1 - (1 - eta)^{2n}) / (2 - eta) ~ (eta / B)(1 - e^{-2}) / 2. The linear rule keeps
    eta / B, so E phi moves only by its discretisation, about 4% at k = 16 (eta = 1/16), under the 4 SE
    bound (4,000 paths: a relative SE of 2.2% per run); the naive rule divides it by k (a shift of 75% and
    94%, over 20 SE)."""
    p = smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x])
    st = scaling_rule_study(p, x**2, [0.0], 1.0, optimizer="sgd", eta=1 / 256, n_paths=4000, seed=2,
                            options=QUIET)
    assert [r["steps"] for r in st.rule_rows("linear")] == [256, 64, 16]
    for r in st.rule_rows("linear")[1:]:
        assert abs(r["shift"]) < 4 * r["shift_se"], r
    for r in st.rule_rows("naive")[1:]:
        assert abs(r["shift"]) > 20 * r["shift_se"], r
