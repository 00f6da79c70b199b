"""Bad input gets a clear error naming the argument (issue 2, part 8)."""
import numpy as np
import pytest
import sympy as sp
import sympy.stats as st

import smfsym

x, y = sp.symbols("x y")


def test_params_must_be_distinct_symbols():
    z = smfsym.normal("z")
    with pytest.raises(ValueError, match="`params` must be distinct symbols; repeated"):
        smfsym.Problem((x - z) ** 2, [x, x])
    with pytest.raises(TypeError, match="`params` must contain only sympy symbols"):
        smfsym.Problem((x - z) ** 2, [x, 2])
    with pytest.raises(ValueError, match="`params` must be ordinary symbols, not data symbols"):
        smfsym.Problem((x - z) ** 2, [x, z])


def test_unknown_symbols_are_listed():
    z = smfsym.normal("z")
    lam, mu = sp.symbols("lam mu")
    with pytest.raises(ValueError, match="neither parameters, data nor declared constants: lam, mu"):
        smfsym.Problem((x - z) ** 2 + lam * x**2 + mu, [x])
    p = smfsym.Problem((x - z) ** 2 + lam * x**2, [x], constants=[lam])
    assert lam in p.F.free_symbols


def test_loss_must_depend_on_parameters():
    z = smfsym.normal("z")
    with pytest.raises(ValueError, match="does not depend on the parameters"):
        smfsym.Problem(z**2, [x])


def test_laws_without_moments():
    with pytest.raises(ValueError, match="Cauchy.*no mean or variance"):
        smfsym.Problem((x - st.Cauchy("c", 0, 1)) ** 2, [x])
    t = smfsym.student_t("t", 3)
    with pytest.raises(ValueError, match="moments only up to order 2, but Sigma needs order 4"):
        smfsym.Problem((x - t) ** 2, [x])
    smfsym.Problem((x - smfsym.student_t("t5", 5)) ** 2, [x])  # 5 > 4: fine


def test_unsupported_law_lists_supported():
    with pytest.raises(ValueError, match="not supported; supported laws: Normal"):
        smfsym.Problem((x - st.Poisson("k", 2)) ** 2, [x])


def test_empirical_data_validation():
    with pytest.raises(ValueError, match="`data` contains 1 NaN"):
        smfsym.empirical([[1.0, np.nan], [0.0, 1.0]], "a b")
    with pytest.raises(ValueError, match="`names` must name every column"):
        smfsym.empirical(np.zeros((4, 3)), "a b")
    with pytest.raises(ValueError, match=r"`data` must be an \(M, k\) array"):
        smfsym.empirical(np.zeros((2, 2, 2)), "a b")
    # weights are relative (finite, >= 0, positive sum) and normalised
    (a,) = smfsym.empirical(np.arange(3.0)[:, None], "a", weights=[0.5, 0.5, 0.5])
    np.testing.assert_allclose(a.law.weights, [1 / 3] * 3)
    with pytest.raises(ValueError, match="`weights` must have a positive sum"):
        smfsym.empirical(np.zeros((3, 1)), "a", weights=[0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="`weights` must have one entry per row"):
        smfsym.empirical(np.zeros((3, 1)), "a", weights=[0.5, 0.5])


def test_law_parameters_checked_only_when_provably_wrong():
    with pytest.raises(ValueError, match="`std` must be positive"):
        smfsym.normal("z", std=-1)
    smfsym.normal("z", std=sp.Symbol("s"))  # unknown sign: passes
    with pytest.raises(ValueError, match="`weights` must be summing to 1"):
        smfsym.categorical("k", [0, 1], [sp.Rational(1, 2), sp.Rational(1, 3)])
    with pytest.raises(ValueError, match="`p` must be in"):
        smfsym.bernoulli("b", 2)
    with pytest.raises(ValueError, match="`b` must be greater than a"):
        smfsym.uniform("u", 2, 1)
    with pytest.raises(ValueError, match="`cov` must be positive definite"):
        smfsym.normal("a", 2, cov=[[1, 2], [2, 1]])


def test_nondifferentiable_pieces_warn_where():
    z = smfsym.normal("z")
    with pytest.warns(smfsym.NonDifferentiableWarning, match=r"Abs\((x - z|z - x)\)"):
        smfsym.Problem(sp.Abs(x - z), [x])
    with pytest.warns(smfsym.NonDifferentiableWarning, match="Max"):
        smfsym.Problem(sp.Max(0, 1 - z * x), [x])


def test_duplicate_names_rejected():
    a1 = smfsym.normal("a")
    a2 = smfsym.normal("a")
    with pytest.raises(ValueError, match="sharing the name"):
        smfsym.Problem((x - a1 - a2) ** 2, [x])


def test_bad_order_and_problem():
    z = smfsym.normal("z")
    p = smfsym.Problem((x - z) ** 2, [x])
    with pytest.raises(ValueError, match="`order` must be 1 or 2; got 3"):
        smfsym.smf(p, order=3)
    with pytest.raises(TypeError, match="`problem` must be a smfsym.Problem"):
        smfsym.sme("not a problem")
    with pytest.raises(ValueError, match="`batch_size` must be a positive integer"):
        smfsym.Problem((x - z) ** 2, [x], batch_size=0)
    with pytest.raises(ValueError, match="`y` must have 1 symbols"):
        p.cross_covariance(sp.symbols("y0:2"))
