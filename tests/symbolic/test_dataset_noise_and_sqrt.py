import pytest
"""Data-set noise (numeric basis, M-column template) and the SME's numeric square root."""
import numpy as np
import sympy as sp

import smfsym
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
