"""Bounded work: size estimates refuse oversized derivations before they start (docs/theory.md §8).

Hangs are guarded with pytest-timeout markers; the one timing assertion is on the CPU time of two
refusals (issue 17: refused in under 0.1 s).
"""
import time

import pytest
import sympy as sp

import smfsym
from smfsym.data.means import covariance, expectation
from smfsym.limits import estimate_size

x0, x1, c = sp.symbols("x0 x1 c")


def _limit_named(exc_info, name):
    msg = str(exc_info.value)
    assert f"`{name}`" in msg and f"smfsym.Limits({name}=...)" in msg, msg
    # the message names a field that exists
    assert name in smfsym.Limits.__dataclass_fields__


@pytest.mark.timeout(20)
def test_huge_power_in_parameter_refused_fast():
    xi = smfsym.normal("xi")
    with pytest.raises(smfsym.ResourceLimitError, match="10,000,000,000") as e:
        smfsym.Problem(x0 ** (10**10) + xi * x0, [x0])
    _limit_named(e, "max_param_degree")


@pytest.mark.timeout(20)
@pytest.mark.parametrize("params", [[x0], [x0, x1]])
def test_high_degree_regression_refused_fast(params):
    a0, eps = smfsym.normal("a0"), smfsym.normal("eps")
    loss = (a0 * x0 - eps) ** 200 if len(params) == 1 else (a0 * x0 + x1 - eps) ** 200
    with pytest.raises(smfsym.ResourceLimitError, match="degree 200 in the data") as e:
        smfsym.Problem(loss, params)
    _limit_named(e, "max_data_degree")


@pytest.mark.timeout(20)
def test_too_many_monomials_and_products_refused():
    a = smfsym.normal("a", 6)
    loss = sum(ai * x0 ** (i + 1) for i, ai in enumerate(a)) ** 16  # C(21, 16) > 20,000 monomials
    with pytest.raises(smfsym.ResourceLimitError, match="monomials") as e:
        smfsym.Problem(loss, [x0])
    _limit_named(e, "max_terms")
    a0, eps = smfsym.normal("a0"), smfsym.normal("eps")
    p = smfsym.Problem((a0 * x0 + x1 - eps) ** 40, [x0, x1],  # 861 terms: fine to state and expand
                       limits=smfsym.Limits(max_data_degree=40))
    with pytest.raises(smfsym.ResourceLimitError, match="term products") as e:
        p.sigma  # but Sigma pairs ~800-term gradients over the same two laws: ~3.7 million products
    _limit_named(e, "max_products")
    # (linear regression stays inside up to d = 70: ~2.5 d^3 pairs share a block; tests/test_sparse_covariance.py)


@pytest.mark.timeout(60)
def test_limits_can_be_raised_explicitly():
    a0, eps = smfsym.normal("a0"), smfsym.normal("eps")
    loss = (a0 * x0 - eps) ** 6
    with pytest.raises(smfsym.ResourceLimitError):
        smfsym.Problem(loss, [x0], limits=smfsym.Limits(max_data_degree=5))
    p = smfsym.Problem(loss, [x0], limits=smfsym.Limits(max_data_degree=6))
    # E (a x - e)^6 = 15 (x^2 + 1)^3 for independent standard Gaussians
    assert sp.expand(p.F - 15 * (x0**2 + 1) ** 3) == 0


def test_limits_validated():
    for bad in (0, -1, 1.5, True, "10", None):
        with pytest.raises(ValueError, match="`Limits.max_terms`"):
            smfsym.Limits(max_terms=bad)
    with pytest.raises(ValueError, match="`Limits.quad_rtol`"):
        smfsym.Limits(quad_rtol=float("nan"))
    with pytest.raises(TypeError, match="`limits`"):
        smfsym.Problem(x0**2 + smfsym.normal("z") * x0, [x0], limits={"max_terms": 3})


@pytest.mark.timeout(20)
def test_chaos_noise_columns_bounded():
    a = smfsym.normal("u", 3)
    p = smfsym.Problem(sp.cos(x0 * (a[0] + a[1] + a[2])), [x0],
                       limits=smfsym.Limits(max_noise_columns=50))
    with pytest.raises(smfsym.ResourceLimitError, match="noise columns") as e:
        p.chaos(degree=6)  # C(9, 6) - 1 = 83 columns
    _limit_named(e, "max_noise_columns")


@pytest.mark.timeout(20)
def test_quadrature_nodes_bounded():
    z = smfsym.normal("z", 4)
    p = smfsym.Problem(sp.log(1 + sp.exp(x0 * (z[0] + z[1] + z[2] + z[3]))), [x0], n_points=32)
    with pytest.raises(smfsym.ResourceLimitError, match="max_nodes"):
        p.F  # 32^4 > 100,000 nodes


@pytest.mark.timeout(20)
def test_expectation_and_covariance_bounded():
    z = smfsym.normal("zz")
    with pytest.raises(smfsym.ResourceLimitError, match="expectation"):
        expectation((z * x0 + 1) ** 100)
    with pytest.raises(smfsym.ResourceLimitError, match="max_products"):
        covariance([(z + x0 + x1) ** 30] * 3, limits=smfsym.Limits(max_products=10_000))


def test_size_estimates_are_upper_bounds():
    a, e = sp.symbols("a e")
    for expr, data in [((a * x0 - e) ** 7, [a, e]), ((a + e + x0 + 1) ** 5 * (a - x1) ** 3, [a, e]),
                       (a**3 * e + x0**2 * (a + e) ** 4 - c, [a, e])]:
        est = estimate_size(expr, data, [x0, x1, c])
        poly = sp.Poly(sp.expand(expr), *data, x0, x1, c)
        assert est.terms >= len(poly.terms())
        assert est.data_degree == sp.Poly(sp.expand(expr), *data).total_degree()
        assert est.param_degree >= sp.Poly(sp.expand(expr), x0, x1, c).total_degree()
    # a non-polynomial dependence on the data is reported as such
    assert estimate_size(sp.exp(a) * x0, [a], [x0]).data_degree is None


@pytest.mark.timeout(20)
def test_deeply_nested_expression_refused_cleanly():
    z = smfsym.normal("deep")
    e = z * x0
    for _ in range(300):
        e = sp.sin(e)
    with pytest.raises(smfsym.ResourceLimitError, match="nested too deeply.*`max_depth` = 100"):
        smfsym.Problem(e, [x0])  # a clear refusal naming the limit, not a RecursionError or another ValueError


def test_every_limit_named_in_a_message_exists():
    import pathlib
    import re

    src = "\n".join(p.read_text() for p in pathlib.Path(smfsym.__file__).parent.rglob("*.py"))
    named = set(re.findall(r"Limits\.(\w+)", src)) | set(re.findall(r"Limits\((\w+)=", src))
    named |= set(re.findall(r'refuse\([^)]*?"(max_\w+)"', src, flags=re.S))
    fields = set(smfsym.Limits.__dataclass_fields__)
    assert named and named - {"replace"} <= fields, named - fields


@pytest.mark.timeout(20)
def test_hostile_inputs_refused_within_a_tenth_of_a_second():
    """Refusals are decided from size estimates, before any expansion (CPU time, so other jobs do not count)."""
    a0, eps, xi = smfsym.normal("a0"), smfsym.normal("eps"), smfsym.normal("xi")
    for make in (lambda: smfsym.Problem(x0 ** (10**10) + xi * x0, [x0]),
                 lambda: smfsym.Problem((a0 * x0 - eps) ** 200, [x0])):
        t0 = time.process_time()
        with pytest.raises(smfsym.ResourceLimitError):
            make()
        assert time.process_time() - t0 < 0.1
