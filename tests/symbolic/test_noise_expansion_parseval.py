"""Parseval: the SMF noise reproduces eta Sigma(x) and eta Sigma(x, y) exactly (docs/theory.md §3).

Property-based over random polynomial losses and data laws.
"""
import pytest
import sympy as sp
from hypothesis import HealthCheck, assume, given, settings, strategies as st

import smfsym
from conftest import is_zero_matrix

LAW_MAKERS = [
    lambda n: smfsym.normal(n, std=sp.Rational(3, 2)),
    lambda n: smfsym.normal(n, mean=1),
    lambda n: smfsym.uniform(n, -1, 2),
    lambda n: smfsym.bernoulli(n, sp.Rational(1, 3)),
    lambda n: smfsym.rademacher(n),
    lambda n: smfsym.exponential(n, 2),
    lambda n: smfsym.gamma(n, 2, 1),
    lambda n: smfsym.beta(n, 2, 2),
    lambda n: smfsym.categorical(n, [-1, 0, 2], [sp.Rational(1, 4), sp.Rational(1, 4), sp.Rational(1, 2)]),
    lambda n: smfsym.student_t(n, 11),
    # a correlated Gaussian pair: the expansion whitens it first
    lambda n: smfsym.normal(n, 2, cov=[[1, sp.Rational(1, 2)], [sp.Rational(1, 2), 2]]),
]


@st.composite
def polynomial_problems(draw):
    x = sp.symbols("x0:2")
    laws = draw(st.lists(st.sampled_from(range(len(LAW_MAKERS))), min_size=1, max_size=2))
    data = []
    for i, k in enumerate(laws):
        made = LAW_MAKERS[k](f"z{i}")
        data += list(made) if isinstance(made, tuple) else [made]
    loss = sp.S.Zero
    n_terms = draw(st.integers(2, 4))
    for _ in range(n_terms):
        c = draw(st.integers(-3, 3).filter(lambda v: v != 0))
        xm = sp.Mul(*[xi ** draw(st.integers(0, 2)) for xi in x])
        dm = sp.Mul(*[z ** draw(st.integers(0, 2)) for z in data])
        loss += c * xm * dm
    # keep the data degree <= 4 (Student-t with 11 degrees of freedom has moments up to 10)
    loss = sp.expand(loss)
    loss = sum((t for t in sp.Add.make_args(loss) if sp.Poly(t, *data).total_degree() <= 4), sp.S.Zero)
    loss += x[0] ** 2
    # a drawn -x0**2 term can cancel the one added: such a loss has nothing to learn (Problem refuses it)
    assume(loss.free_symbols & set(x))
    return smfsym.Problem(loss, x)


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(polynomial_problems())
def test_smf_noise_covariance_equals_eta_sigma(problem):
    flow = smfsym.smf(problem)
    assert flow.chaos.exact
    assert is_zero_matrix(flow.noise_covariance() - flow.eta * problem.sigma)
    y = sp.symbols("y0:2")
    assert is_zero_matrix(flow.two_point_covariance(y) - flow.eta * problem.cross_covariance(y))


def test_correlated_gaussian_parseval_symbolic_cov():
    x = sp.symbols("x0:2")
    C = sp.Matrix([[1, sp.Rational(1, 2)], [sp.Rational(1, 2), 2]])
    a = smfsym.normal("a", 2, cov=C, mean=[1, 0])
    p = smfsym.Problem((a[0] * x[0] + a[1] ** 2 * x[1]) ** 2, x)
    flow = smfsym.smf(p)
    assert is_zero_matrix(flow.noise_covariance() - flow.eta * p.sigma)
