import pytest
"""Data-set noise (numeric basis, M-column template) and the SME's numeric square root."""
import numpy as np
import sympy as sp

import smfsym
from smfsym.data.means import DataMean
from smfsym.symbolic.lambdify import CompiledExprs
from smfsym.numerics.compiled_sde import NumericSDE


def _data(M=30, seed=0):
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.normal(size=(M, 2)), rng.choice([-1.0, 1.0], M)])


def test_polynomial_loss_on_data_numeric_basis_is_exact():
    z0, z1, y = smfsym.empirical(_data(), "z0 z1 y")
    w = sp.symbols("w0:2")
    p = smfsym.Problem((w[0] * z0 + w[1] * z1 - y) ** 2 / 2 + w[0] ** 2 * z1**2, w)
    flow = smfsym.smf(p)
    assert flow.chaos.exact and flow.noise_kind == "matrix"
    diff = (flow.noise_covariance() - flow.eta * p.sigma).applyfunc(sp.expand)
    coeffs = [abs(float(c)) for e in diff for c in sp.Poly(e, *w, flow.eta).coeffs()] if any(diff) else [0.0]
    assert max(coeffs) < 1e-10  # Parseval, up to float rounding of the data moments


def test_nonpolynomial_loss_on_data_template_columns_reproduce_sigma():
    data = _data()
    z0, z1, y = smfsym.empirical(data, "z0 z1 y")
    w = sp.symbols("w0:2")
    p = smfsym.Problem(sp.log(1 + sp.exp(-y * (w[0] * z0 + w[1] * z1))), w)
    flow = smfsym.smf(p, order=1)
    assert flow.noise_kind == "template" and flow.n_noise == 30
    ns = NumericSDE(flow, {flow.eta: 1.0})
    X = np.array([[0.3, -0.7], [1.0, 2.0]])
    cols = ns.columns(X) * ns.sqrt_w[None, :, None]  # (P, M, d)
    gram = np.einsum("pmi,pmj->pij", cols, cols)
    S = CompiledExprs(list(p.sigma), w)(X).reshape(2, 2, 2)
    assert np.allclose(gram, S, rtol=1e-12, atol=1e-14)
    # and directly from the data, independently of smfsym's data means
    m = -data[:, 2] * (data[:, :2] @ X[0])
    g = -(data[:, 2] / (1 + np.exp(-m)))[:, None] * data[:, :2]
    assert np.allclose(S[0], np.cov(g.T, bias=True), rtol=1e-12)


@pytest.mark.slow
def test_sme_numeric_square_root_matches_smf_one_point_law():
    xs = sp.symbols("x0:2")
    a = smfsym.normal("a", 2)
    p = smfsym.Problem((a[0] * xs[0] + a[1] * xs[1] - 1) ** 2 / 2, xs)
    sme, smf = smfsym.sme(p, order=1), smfsym.smf(p, order=1)
    assert sme.noise_kind == "sqrt"
    ns = NumericSDE(sme, {sme.eta: 0.1})
    X = np.array([[1.0, -2.0], [0.0, 0.0], [0.5, 0.3]])
    R = ns.sqrt_sigma(X)
    S = CompiledExprs(list(p.sigma), xs)(X).reshape(3, 2, 2)
    assert np.allclose(R @ R, S, atol=1e-12) and np.allclose(R, R.transpose(0, 2, 1))
    n = 100_000
    f = {"r2": lambda X: (X**2).sum(-1)}
    r1 = smfsym.simulate(sme, [1.0, -2.0], 1.0, eta=0.1, n_paths=n, seed=1, functions=f, store=False)
    r2 = smfsym.simulate(smf, [1.0, -2.0], 1.0, eta=0.1, n_paths=n, seed=2, functions=f, store=False)
    # the same generator: E|X_1|^2 agrees within 5 combined standard errors
    assert abs(r1.mean("r2")[0] - r2.mean("r2")[0]) < 5 * np.hypot(r1.sem("r2")[0], r2.sem("r2")[0])


def test_numeric_square_root_in_three_dimensions():
    """The root is V sqrt(Lambda) V^T: with d = 2 numpy's eigenvectors came out symmetric, so a V sqrt(Lambda) V
    (no transpose) passed every check of the root (audit 16, M6). d = 3, a non-diagonal Sigma(x) of rank 3:
    R R = Sigma and R = R^T to rounding."""
    xs = sp.symbols("x0:3")
    a = smfsym.normal("a", 3)
    eps = smfsym.normal("eps", std=sp.Rational(1, 2))
    p = smfsym.Problem((a[0] * xs[0] + a[1] * xs[1] + a[2] * xs[2] - eps) ** 2 / 2 + a[0] * a[1] * xs[2], xs)
    ns = NumericSDE(smfsym.sme(p, order=1), {smfsym.sme(p, order=1).eta: 0.1})
    X = np.array([[1.0, -2.0, 0.5], [0.3, 0.7, -1.1], [0.0, 0.0, 0.0]])
    R = ns.sqrt_sigma(X)
    S = CompiledExprs(list(p.sigma), xs)(X).reshape(3, 3, 3)
    assert np.max(np.abs(S - np.eye(3) * S[:, :1, :1])) > 0.1  # not a multiple of the identity
    np.testing.assert_allclose(R @ R, S, atol=1e-12)
    np.testing.assert_allclose(R, R.transpose(0, 2, 1), atol=1e-12)


def _logistic_on_weighted_rows():
    data = np.array([[0.5, -1.2, 1.0], [1.5, 0.3, -1.0], [-0.7, 0.8, 1.0], [0.2, 0.1, -1.0], [1.1, -0.4, 1.0]])
    weights = np.array([1.0, 2.0, 0.5, 1.5, 1.0])
    z1, z2, y = smfsym.empirical(data, "z1 z2 y", weights=weights)
    x = sp.symbols("x0:2")
    return smfsym.Problem(sp.log(1 + sp.exp(-y * (x[0] * z1 + x[1] * z2))), x), x, data, weights / weights.sum()


def _grad_f_rows(data, at):
    """grad_x log(1 + exp(-y x.z)) on every row, written by hand (independent of smfsym's means)."""
    m = data[:, 2] * (data[:, :2] @ at)
    return -(data[:, 2] / (1 + np.exp(m)))[:, None] * data[:, :2]


def test_dataset_template_columns_written_out_satisfy_parseval_against_hand_gradients():
    # `chaos().columns` of a data set with a non-polynomial loss used to be an empty d x 0 matrix
    # (its Gram matrix read 0, not Sigma): it now holds the M columns sqrt(w_i)(grad f_i - grad F)
    p, x, data, w = _logistic_on_weighted_rows()
    expansion = p.chaos()
    assert expansion.template is not None and expansion.columns.shape == (2, 5) and expansion.n_columns == 5
    at, other = np.array([0.3, -0.2]), np.array([-0.8, 0.4])
    C = [np.array(expansion.columns.subs(dict(zip(x, pt))).evalf(), dtype=float) for pt in (at, other)]
    G = [_grad_f_rows(data, pt) for pt in (at, other)]
    by_hand = [((g - w @ g) * np.sqrt(w)[:, None]).T for g in G]
    assert np.allclose(C[0], by_hand[0], rtol=1e-12, atol=1e-14)
    cross = C[0] @ C[1].T  # Parseval: Sigma(x, y) = sum_i c_i(x) c_i(y)^T
    expected = sum(wi * np.outer(g0 - w @ G[0], g1 - w @ G[1]) for wi, g0, g1 in zip(w, G[0], G[1]))
    assert np.allclose(cross, expected, rtol=1e-12, atol=1e-14)


def test_dataset_template_columns_refused_beyond_max_noise_columns():
    z, = smfsym.empirical(np.linspace(-1.0, 1.0, 40)[:, None], "z")
    x = sp.Symbol("x")
    p = smfsym.Problem(sp.log(1 + sp.exp(-z * x)), [x], limits=smfsym.Limits(max_noise_columns=30))
    expansion = p.chaos()
    assert expansion.n_columns == 40  # the simulators' template is still there
    with pytest.raises(smfsym.ResourceLimitError, match=r"40 noise columns.*`max_noise_columns` = 30"):
        expansion.columns


def test_a_data_row_put_into_the_template_column_leaves_the_data_mean_bound():
    # grad F(x) - grad f(x, xi) holds E_xi[...]: a row given to xi must not reach inside the mean
    # (it did: `.subs(row)` turned E_xi[g(x, xi)] into g(x, row), a wrong column)
    p, x, data, w = _logistic_on_weighted_rows()
    column = p.chaos().template.column
    syms = {s.name: s for s in smfsym.data.means.data_symbols(column)}
    row = {syms["z1"]: data[1, 0], syms["z2"]: data[1, 1], syms["y"]: data[1, 2]}
    at = np.array([0.3, -0.2])
    G = _grad_f_rows(data, at)
    expected = w @ G - G[1]
    for substituted in (column.subs(row), column.xreplace({k: sp.Float(v) for k, v in row.items()})):
        value = np.array(substituted.subs(dict(zip(x, at))).evalf(), dtype=float).ravel()
        assert np.allclose(value, expected, rtol=1e-12, atol=1e-14)


def test_a_data_mean_without_free_parameters_evaluates_to_the_rule_sum():
    p, x, data, w = _logistic_on_weighted_rows()
    at = np.array([0.3, -0.2])
    grad_F = p.grad_F.subs(dict(zip(x, at)))
    assert grad_F.free_symbols == set()
    assert np.allclose(np.array(grad_F.evalf(), dtype=float).ravel(), w @ _grad_f_rows(data, at), rtol=1e-12)
    assert p.grad_F[0].evalf().free_symbols == set(x)  # with x free there is no number: left as it is


def test_a_parameter_free_erf_mean_evaluates():
    # numpy's printer wrote math.erf (scalars only): evalf left E[erf(a)^2] unevaluated and float() failed
    a = smfsym.normal("aerf")
    value = float(smfsym.expectation(sp.erf(a) ** 2).evalf())
    from scipy import integrate, special, stats

    exact = integrate.quad(lambda t: special.erf(t) ** 2 * stats.norm.pdf(t), -12, 12, epsabs=1e-13)[0]
    assert abs(value - exact) < 1e-9


def test_schedule_and_momentum_models_on_a_data_set_report_their_own_noise_covariance():
    """Audit 15, F4: a scheduled or momentum SMF on a data set (a loss not polynomial in the data) reported the
    plain problem's eta Sigma, d x d for a state of d + 1 or 2d entries (the schedule's u(t)^2 ignored; the
    generator raised IndexError). Checked against the Gram matrix of the model's own M columns, evaluated row
    by row from the data array; the noise-corrected momentum SMF (columns that differentiate along p) refuses."""
    from smfsym.optimizers import Schedule, TIME, momentum_model, scheduled_model
    data = np.array([[0.5], [1.5], [-1.0], [0.25]])
    z, = smfsym.empirical(data, "z")
    x, y = sp.symbols("x y")
    p = smfsym.Problem(sp.log(1 + sp.exp(-z * x)), [x])
    at_x, eta = 0.3, 0.01
    for model, second in [(scheduled_model(p, Schedule(1 / (1 + TIME)), "smf", order=1), 1.0),
                          (momentum_model(p, "smf", order=1), 0.7)]:
        point = {x: sp.Float(at_x), model.eta: sp.Float(eta), model.state[1]: sp.Float(second)}  # t, or p_x
        column = model.diffusion.column.xreplace(point) * model.noise_scale.xreplace(point)
        column = column.xreplace({m: m.evalf() for m in column.atoms(DataMean)})  # grad F: a number here
        col = sp.lambdify([z], list(column))
        cols = np.array([[float(c) for c in col(row[0])] for row in data])  # (M, dim)
        gram = cols.T @ cols / len(data)
        got = np.array(model.noise_covariance().xreplace(point).evalf(), dtype=float)
        assert got.shape == (model.dim, model.dim)
        np.testing.assert_allclose(got, gram, rtol=1e-12, atol=1e-15)
        gen = model.generator(x ** 2)  # 1/2 a_xx * 2 + drift_x * 2x
        assert abs(float(gen.xreplace(point).evalf()) - float(2 * at_x * model.drift[0].xreplace(point).evalf())
                   - gram[0, 0]) < 1e-12
        ys = [y] + [sp.Symbol(f"y{i}") for i in range(1, model.dim)]
        two = model.two_point_covariance(ys).xreplace({**point, **dict(zip(ys, [at_x] + [point.get(s, 0.7) for s in
                                                                                       model.state[1:]]))})
        np.testing.assert_allclose(np.array(two.evalf(), dtype=float), gram, rtol=1e-12, atol=1e-15)
    corrected = momentum_model(p, "smf", order=2)
    with pytest.raises(NotImplementedError, match="noise_covariance.*no closed form"):
        corrected.noise_covariance()
