"""Exact mini-batch SGD moments (B > 1): brute-force enumeration and Monte Carlo (docs/theory.md §4)."""
import itertools

import numpy as np
import pytest
import sympy as sp

import smfsym
from smfsym.simulation.exact import PolynomialSpace, sgd_operator
from smfsym.optimizers import batch_sgd_operator, exact_batch_sgd_mean

x, y = sp.symbols("x y")


def _data_problem():
    rng = np.random.default_rng(7)
    data = rng.normal(size=(5, 2))
    z, w = smfsym.empirical(data, "z w")
    # two parameters, gradient affine in them, data-dependent Hessian
    loss = (x * z + y - w) ** 2 / 2 + x * y * z / 3
    return data, smfsym.Problem(loss, [x, y]), (z, w)


def _brute(problem, data, syms, space, eta, B, sampling):
    """P phi by enumerating every batch (ordered tuples for i.i.d., subsets without replacement)."""
    M = len(data)
    g = problem.grad_f
    batches = (list(itertools.combinations(range(M), B)) if sampling == "without_replacement"
               else list(itertools.product(range(M), repeat=B)))
    rows = [g.xreplace({syms[0]: data[i, 0], syms[1]: data[i, 1]}) for i in range(M)]
    maps = [{p: p - sp.Rational(eta) / B * sum(rows[i][j] for i in T) for j, p in enumerate(problem.params)}
            for T in batches]
    cols = [space.coords(sp.expand(sp.Add(*[m.xreplace(mp) for mp in maps]) / len(batches)))
            for m in space.monomials]
    return np.array([[float(cols[j][i]) for j in range(len(cols))] for i in range(len(cols))])


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
@pytest.mark.parametrize("B,sampling", [(2, "without_replacement"), (3, "without_replacement"),
                                        (5, "without_replacement"), (2, "iid"), (3, "iid")])
def test_equals_enumeration_on_a_data_set(B, sampling):
    data, p, syms = _data_problem()
    space = PolynomialSpace(p.params, 2 if len(data) ** B > 100 else 3)  # keep the enumeration cheap
    P = np.array(batch_sgd_operator(p, space, sp.Rational(1, 10), B, sampling), dtype=float)
    Q = _brute(p, data, syms, space, sp.Rational(1, 10), B, sampling)
    assert np.allclose(P, Q, rtol=1e-10, atol=1e-12)


def test_batch_one_equals_sgd_operator():
    _, p, _ = _data_problem()
    space = PolynomialSpace(p.params, 2)
    a = np.array(batch_sgd_operator(p, space, sp.Rational(1, 8), 1, "iid"), dtype=float)
    b = np.array(sgd_operator(p, space, sp.Rational(1, 8)), dtype=float)
    assert np.allclose(a, b, rtol=1e-12, atol=1e-14)


def test_without_replacement_variance_factor():
    """One-step variance = eta^2 (M - B)/(B (M - 1)) Sigma (finite-population correction)."""
    data, p, _ = _data_problem()
    M, B, eta = 5, 2, sp.Rational(1, 10)
    space = PolynomialSpace(p.params, 2)
    P = batch_sgd_operator(p, space, eta, B, "without_replacement")
    # E x'^2 - (E x')^2 at the point (x, y): read the images of x and x^2 as polynomials
    mono = space.monomials
    ex = sum(P[i][space.exps.index((1, 0))] * mono[i] for i in range(len(mono)))
    ex2 = sum(P[i][space.exps.index((2, 0))] * mono[i] for i in range(len(mono)))
    var = sp.expand(ex2 - ex**2)
    expect = sp.expand(eta**2 * sp.Rational(M - B, B * (M - 1)) * p.sigma[0, 0])
    pt = {x: 0.3, y: -1.2}
    assert abs(float(var.subs(pt)) - float(expect.subs(pt))) < 1e-12


def test_symbolic_iid_batch_size_divides_variance():
    B = sp.Symbol("B", positive=True, integer=True)
    a = smfsym.normal("a", mean=1, std=sp.Rational(1, 2))
    xi = smfsym.normal("xi")
    p = smfsym.Problem((a * x - xi) ** 2 / 2, [x])
    space = PolynomialSpace([x], 2)
    eta = sp.Symbol("eta")
    P = batch_sgd_operator(p, space, eta, B, "iid")
    ex = P[1][1] * x + P[0][1]
    ex2 = P[2][2] * x**2 + P[1][2] * x + P[0][2]
    assert sp.simplify(ex2 - ex**2 - eta**2 * p.sigma[0, 0] / B) == 0


def test_monte_carlo_gaussian_iid_batches_within_4se():
    """Exact E x^2 after 10 steps with B = 4 against simulate_sgd (400k paths; |diff| < 4 SE)."""
    a = smfsym.normal("a", mean=1, std=sp.Rational(1, 2))
    xi = smfsym.normal("xi")
    p = smfsym.Problem((a * x - xi) ** 2 / 2 + x**2 / 4, [x])
    for phi, idx in ((x, lambda s: s[..., 0]), (x**2, lambda s: s[..., 0] ** 2)):
        exact = exact_batch_sgd_mean(p, phi, [1.5], 0.2, 10, batch_size=4)
        res = smfsym.simulate_sgd(p, [1.5], 10, 0.2, n_paths=200_000, seed=11, batch_size=4, store=False,
                                  functions={"phi": idx})
        m, se = res.mean("phi")[-1], res.sem("phi")[-1]
        assert abs(m - exact) < 4 * se, (phi, m, exact, se)


def test_monte_carlo_without_replacement_within_4se():
    data, p, _ = _data_problem()
    pw = smfsym.Problem(p.loss, p.params, batch_size=3, sampling="without_replacement")
    exact = exact_batch_sgd_mean(pw, x * y + y**2, [1.0, -0.5], 0.3, 6)
    res = smfsym.simulate_sgd(pw, [1.0, -0.5], 6, 0.3, n_paths=100_000, seed=5, store=False,
                              functions={"phi": lambda s: s[..., 0] * s[..., 1] + s[..., 1] ** 2})
    assert abs(res.mean("phi")[-1] - exact) < 4 * res.sem("phi")[-1]


@pytest.mark.parametrize("kw,match", [
    (dict(batch_size=0), "`batch_size` must be a positive integer"),
    (dict(batch_size=9, sampling="without_replacement"), "at most the data set size"),
    (dict(sampling="bootstrap"), "`sampling` must be"),
])
def test_bad_input(kw, match):
    _, p, _ = _data_problem()
    with pytest.raises(ValueError, match=match):
        batch_sgd_operator(p, PolynomialSpace(p.params, 2), 0.1, **kw)


def test_not_closed_and_iid_law_without_replacement():
    xi = smfsym.normal("xi")
    with pytest.raises(smfsym.simulation.exact.NotClosedError):
        batch_sgd_operator(smfsym.Problem((x - xi) ** 4, [x]), PolynomialSpace([x], 2), 0.1, 2)
    with pytest.raises(ValueError, match="empirical data set"):
        batch_sgd_operator(smfsym.Problem((x - xi) ** 2, [x]), PolynomialSpace([x], 2), 0.1, 2,
                           "without_replacement")


def test_work_is_bounded_before_it_starts():
    xs = sp.symbols("x0:30")
    xi = smfsym.normal("xi")
    p = smfsym.Problem(sum((v - xi) ** 2 for v in xs) / 2, list(xs))
    with pytest.raises(ValueError, match="monomials exceed the bound"):
        batch_sgd_operator(p, PolynomialSpace(xs, 3), 0.1, 2)  # C(33, 3) = 5456 monomials
    with pytest.raises(ValueError, match="`space` degree must be at most"):
        batch_sgd_operator(smfsym.Problem((x - xi) ** 2, [x]), PolynomialSpace([x], 9), 0.1, 2)
    with pytest.raises(ValueError, match="`n_steps` must be at most"):
        exact_batch_sgd_mean(smfsym.Problem((x - xi) ** 2, [x]), x, [1.0], 0.1, 10**7)


@pytest.mark.parametrize("sampling", ["iid", "without_replacement"])
def test_weak_error_is_exact_for_mini_batches(sampling):
    """method='exact' covers B > 1: the study's SGD values equal the mini-batch operator's."""
    rng = np.random.default_rng(4)
    data = rng.normal(size=(6, 2))
    u, v = smfsym.empirical(data, ["u", "v"])
    x = sp.Symbol("x")
    p = smfsym.Problem((x * u - v) ** 2 / 2, [x], batch_size=3, sampling=sampling)
    st = smfsym.weak_error(p, x**2, [1.0], 1.0, [0.2, 0.1], models=["smf1"], method="exact")
    assert st.meta["method"] == "exact"
    for r in st.rows:
        k = int(round(1.0 / r["eta"]))
        assert r["sgd"] == pytest.approx(exact_batch_sgd_mean(p, x**2, [1.0], r["eta"], k), rel=1e-12)


def test_problem_refuses_weighted_rows_without_replacement():
    """Audit 8, finding 1: a weighted data set sampled without replacement was accepted; grad F used the weights,
    Sigma the equal-weight factor, and simulate_sgd uniform subsets (one-step mean 1.333 against 0.8 predicted)."""
    x = sp.Symbol("x", real=True)
    (z,) = smfsym.empirical(np.array([[0.0], [1.0], [4.0]]), "z", weights=[0.7, 0.2, 0.1])
    with pytest.raises(ValueError, match=r"`sampling='without_replacement'` needs equally weighted rows.*0\.1.*0\.7"):
        smfsym.Problem((x - z) ** 2 / 2, [x], batch_size=2, sampling="without_replacement")
    smfsym.Problem((x - z) ** 2 / 2, [x], batch_size=2)  # i.i.d. sampling honours the weights
