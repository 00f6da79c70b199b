"""The optimised steps (issue 9, part 6) against straightforward reference evaluations.

The weak order-2 step hoists state-only subterms, regroups the Kloeden-Platen formula by
linearity and stacks directions; here it is compared, to rounding, with the formula evaluated
term by term from sympy Jacobians and Hessians written out in this file (no code shared with
smfsym.numerics.compiled_sde), on a nonlinear SDE with non-commuting noise.
"""
import numpy as np
import pytest
import sympy as sp

import smfsym
from smfsym.numerics.solvers import EulerMaruyama, TamedEuler, WeakTaylor2
from smfsym.symbolic.lambdify import HoistedExprs
from smfsym.montecarlo.increments import _TRIPLES, draw_discrete
from smfsym.numerics.compiled_sde import NumericSDE

x1, x2 = sp.symbols("x1 x2")
DRIFT = [-x1 + sp.sin(x2), -x2**3 / 3 + x1 / 2]
DIFFUSION = [[sp.cos(x2), sp.Rational(3, 10), x1 * x2 / 4], [x1 / 2, sp.sin(x1) / 5 + x2 / 4, sp.exp(-x1**2)]]
RTOL = 1e-12  # rounding of the regrouped sums: a few ulps of the largest term


def _sde():
    return smfsym.SDE(DRIFT, DIFFUSION, state=[x1, x2])


def _numeric_derivatives():
    """b, Jb, Hb, sigma, J sigma, H sigma as numpy functions of one state (independent of smfsym)."""
    xs = [x1, x2]
    b = sp.Matrix(DRIFT)
    S = sp.Matrix(DIFFUSION)
    d, m = S.shape
    f = {
        "b": sp.lambdify(xs, b, "numpy"),
        "Jb": sp.lambdify(xs, b.jacobian(xs), "numpy"),
        "Hb": sp.lambdify(xs, [sp.hessian(b[i], xs) for i in range(d)], "numpy"),
        "S": sp.lambdify(xs, S, "numpy"),
        "JS": sp.lambdify(xs, [[[sp.diff(S[i, k], xj) for xj in xs] for k in range(m)] for i in range(d)], "numpy"),
        "HS": sp.lambdify(xs, [[sp.hessian(S[i, k], xs).tolist() for k in range(m)] for i in range(d)], "numpy"),
    }
    return {k: (lambda fn: lambda x: np.array(fn(*x), dtype=float))(fn) for k, fn in f.items()}


def reference_weak2(x, dt, Z, F):
    """The simplified weak Taylor 2.0 step of the WeakTaylor2 docstring, term by term, for one path."""
    b, Jb, Hb = F["b"](x).ravel(), F["Jb"](x), F["Hb"](x)
    S, JS, HS = F["S"](x), F["JS"](x), F["HS"](x)  # S[l,k], JS[l,k,i], HS[l,k,i,j]
    dW = np.sqrt(dt) * Z[0]
    zeta, alpha, beta = Z[1], Z[2], Z[3]

    def D_b(v):  # D_v b
        return Jb @ v

    def D2_b(w):  # D^2_w b
        return np.einsum("lij,i,j->l", Hb, w, w)

    def D_g(v, u):  # D_v (sigma u), u fixed
        return np.einsum("lki,i,k->l", JS, v, u)

    def D2_g(w, u):
        return np.einsum("lkij,i,j,k->l", HS, w, w, u)

    s_dW, s_zeta = S @ dW, S @ zeta
    ito = sum(JS[:, j, :] @ S[:, j] for j in range(S.shape[1]))  # sum_j D_{sigma_j} sigma_j
    return (x + b * dt + s_dW
            + dt**2 / 2 * (D_b(b) + 0.5 * D2_b(s_zeta))
            + dt / 2 * (D_g(b, dW) + 0.5 * D2_g(s_zeta, dW) + D_b(s_dW))
            + 0.5 * (D_g(s_dW, dW) - dt * ito
                     + dt / np.sqrt(2.0) * (D_g(S @ alpha, beta) - D_g(S @ beta, alpha))))


def _stepper_layout(Z):
    """Z (P, k, m) as the stepper lays it out: a view of a (k, m, P) array."""
    buf = np.ascontiguousarray(Z.transpose(1, 2, 0))
    return buf.transpose(2, 0, 1)


def test_weak2_step_equals_the_kloeden_platen_formula_term_by_term():
    rng = np.random.default_rng(7)
    P, dt = 40, 0.03
    X = rng.normal(size=(P, 2))
    Z = rng.normal(size=(P, 4, 3))
    nsde = NumericSDE(_sde())
    solver = WeakTaylor2()
    solver.prepare(nsde)
    F = _numeric_derivatives()
    ref = np.array([reference_weak2(X[p], dt, Z[p], F) for p in range(P)])
    for layout in (Z, _stepper_layout(Z)):
        got = solver.step(nsde, X, dt, layout)
        np.testing.assert_allclose(got, ref, rtol=RTOL, atol=RTOL * np.abs(ref).max())
    # n-point states (P, n, d): each point of a path moves with that path's increments
    Xn = rng.normal(size=(P, 3, 2))
    got = solver.step(nsde, Xn, dt, _stepper_layout(Z))
    ref = np.array([[reference_weak2(Xn[p, j], dt, Z[p], F) for j in range(3)] for p in range(P)])
    np.testing.assert_allclose(got, ref, rtol=RTOL, atol=RTOL * np.abs(ref).max())


def test_euler_step_equals_the_direct_formula():
    rng = np.random.default_rng(8)
    P, dt = 30, 0.02
    X = rng.normal(size=(P, 2))
    Z = rng.normal(size=(P, 1, 3))
    F = _numeric_derivatives()
    ref = np.array([X[p] + F["b"](X[p]).ravel() * dt + F["S"](X[p]) @ (np.sqrt(dt) * Z[p, 0]) for p in range(P)])
    got = EulerMaruyama().step(NumericSDE(_sde()), X, dt, _stepper_layout(Z))
    np.testing.assert_allclose(got, ref, rtol=RTOL, atol=RTOL * np.abs(ref).max())


def test_tamed_step_equals_the_direct_formula():
    """X + D / (1 + sqrt(dt) |D|), D = b dt + sigma sqrt(dt) Z (docs/theory.md §9): a taming without the sqrt(dt)
    survived every test of tests/numerics in the default tier (audit 16, M4)."""
    rng = np.random.default_rng(9)
    P, dt = 30, 0.02
    X = 3 * rng.normal(size=(P, 2))  # large states: the taming matters (|D| sqrt(dt) of order 0.1)
    Z = rng.normal(size=(P, 1, 3))
    F = _numeric_derivatives()
    D = [F["b"](X[p]).ravel() * dt + F["S"](X[p]) @ (np.sqrt(dt) * Z[p, 0]) for p in range(P)]
    ref = np.array([X[p] + D[p] / (1 + np.sqrt(dt) * np.linalg.norm(D[p])) for p in range(P)])
    got = TamedEuler().step(NumericSDE(_sde()), X, dt, _stepper_layout(Z))
    np.testing.assert_allclose(got, ref, rtol=RTOL, atol=RTOL * np.abs(ref).max())
    assert np.max(np.abs(got - EulerMaruyama().step(NumericSDE(_sde()), X, dt, _stepper_layout(Z)))) > 1e-3


def _unhoisted_weak2(nsde, X, dt, Z):
    """The formula with the compiled derivative terms of smfsym, one evaluation per term (the
    pre-hoisting step): checks hoisting where data means sit inside the coefficients."""
    T, cols, u = nsde.weak2_terms, nsde.cols, nsde._ucols
    b = nsde.drift(X)
    dW = np.sqrt(dt) * Z[:, 0]
    zeta, alpha, beta = Z[:, 1], Z[:, 2], Z[:, 3]
    s = [nsde.noise(X, U) for U in (dW, zeta, alpha, beta)]
    xc = cols(X)
    L0b = T["da"].evaluate(xc + cols(b)) + 0.5 * T["d2a"].evaluate(xc + cols(s[1]))
    L0g = T["dg"].evaluate(xc + cols(b) + u(dW, X)) + 0.5 * T["d2g"].evaluate(xc + cols(s[1]) + u(dW, X))
    Ljb = T["da"].evaluate(xc + cols(s[0]))
    dgg = T["dg"].evaluate(xc + cols(s[0]) + u(dW, X))
    area = T["dg"].evaluate(xc + cols(s[2]) + u(beta, X)) - T["dg"].evaluate(xc + cols(s[3]) + u(alpha, X))
    return (X + dt * b + s[0] + 0.5 * dt**2 * L0b + 0.5 * dt * (L0g + Ljb)
            + 0.5 * (dgg - dt * T["ito"].evaluate(xc) + dt / np.sqrt(2.0) * area))


def test_weak2_step_with_data_means_equals_the_unhoisted_formula():
    a, x = smfsym.normal("a"), sp.Symbol("x")
    flow = smfsym.smf(smfsym.Problem(sp.log(1 + sp.exp(-a * x)), [x]), order=2)
    nsde = NumericSDE(flow, {flow.eta: 0.1})
    solver = WeakTaylor2()
    solver.prepare(nsde)
    rng = np.random.default_rng(9)
    X = rng.normal(size=(25, 1))
    Z = rng.normal(size=(25, 4, nsde.m))
    ref = _unhoisted_weak2(nsde, X, 0.05, Z)
    got = solver.step(nsde, X, 0.05, _stepper_layout(Z))
    np.testing.assert_allclose(got, ref, rtol=RTOL, atol=RTOL * np.abs(ref).max())


def test_hoisted_front_is_evaluated_once_per_state_and_backs_see_no_state_only_work():
    x, u = sp.symbols("x u")
    h = HoistedExprs({"g": ([sp.exp(x) * sp.sin(x) * u + 2 * x * u**2], [u]), "f": ([sp.exp(x) * sp.sin(x)], ())},
                     [x])
    # the state-only subterms become front outputs shared by both lists; the back of g is linear in them
    assert len(h.hoisted) == 2 and h.op_counts()["f"] == 0
    assert h.op_counts()["g"] <= 5  # h0*u + h1*u**2 (h1 = 2x): no exp or sin per direction
    xs = np.array([0.3, -1.2])
    H = h.front_values([xs])
    U = np.array([[1.0, 2.0], [-0.5, 0.25], [3.0, 0.0]])  # three directions stacked
    got = h.term("g", [xs], H, [U])[0]
    np.testing.assert_allclose(got, np.exp(xs) * np.sin(xs) * U + 2 * xs * U**2, rtol=1e-14)
    np.testing.assert_allclose(h.term("f", [xs], H)[0], np.exp(xs) * np.sin(xs), rtol=1e-15)


def test_weak2_computes_each_data_mean_once_per_step(monkeypatch):
    from smfsym.symbolic.lambdify import CompiledExprs

    a, x = smfsym.normal("a"), sp.Symbol("x")
    flow = smfsym.smf(smfsym.Problem(sp.log(1 + sp.exp(-a * x)), [x]), order=2)
    nsde = NumericSDE(flow, {flow.eta: 0.1})
    solver = WeakTaylor2()
    solver.prepare(nsde)
    n_means = len(nsde.weak2_plan.front.means)
    assert n_means >= 2 and all(not b.means for b in nsde.weak2_plan.backs.values())
    calls = []
    orig = CompiledExprs.mean_values
    monkeypatch.setattr(CompiledExprs, "mean_values",
                        lambda self, cols, cache=None: calls.append(len(self.means)) or orig(self, cols, cache))
    rng = np.random.default_rng(1)
    solver.step(nsde, rng.normal(size=(10, 1)), 0.05, rng.normal(size=(10, 4, nsde.m)))
    assert sum(calls) == n_means


def test_three_point_table_is_exact_and_draws_are_column_contiguous():
    # row b < 216 = 6^3 holds the three base-6 digits of b, each mapped to -sqrt3, +sqrt3, 0, 0, 0, 0
    three = np.array([-np.sqrt(3.0), np.sqrt(3.0), 0.0, 0.0, 0.0, 0.0])
    expect = np.array([[three[b // 36], three[(b // 6) % 6], three[b % 6]] for b in range(216)])
    assert np.array_equal(_TRIPLES, expect)
    for col in _TRIPLES.T:  # per digit: -sqrt3, +sqrt3 36 times each, 0 144 times (probabilities 1/6, 1/6, 2/3)
        vals, counts = np.unique(np.round(col, 12), return_counts=True)
        assert counts.tolist() == [36, 144, 36] and np.allclose(vals, [-np.sqrt(3), 0, np.sqrt(3)])
    Z = draw_discrete(np.random.default_rng(2), 1001, ("three", "two"), 5)
    assert Z.shape == (1001, 2, 5) and Z[:, 0, 3].flags["C_CONTIGUOUS"] and Z[:, 1, 4].flags["C_CONTIGUOUS"]
    # the same generator state gives the same draws (the rejection loop is deterministic)
    assert np.array_equal(Z, draw_discrete(np.random.default_rng(2), 1001, ("three", "two"), 5))


@pytest.mark.parametrize("scheme", ["euler", "weak2"])
def test_gaussian_paths_agree_with_the_unoptimised_step_to_rounding(scheme):
    """Same seed, Gaussian increments: the draws are unchanged, the step differs by reassociation only."""
    sde = _sde()
    res = smfsym.simulate(sde, [0.3, -0.2], 0.2, dt=0.05, n_paths=300, seed=4, scheme=scheme)
    nsde = NumericSDE(sde)
    from smfsym.engine import block_generators, resolve_seed

    g = block_generators(resolve_seed(4), 0, 1)[0]
    X = np.tile([0.3, -0.2], (300, 1))
    for _ in range(4):
        Z = g.standard_normal((300, 4 if scheme == "weak2" else 1, 3))
        X = _unhoisted_weak2(nsde, X, 0.05, Z) if scheme == "weak2" else (
            X + 0.05 * nsde.drift(X) + nsde.noise(X, np.sqrt(0.05) * Z[:, 0]))
    np.testing.assert_allclose(res.states[-1], X, rtol=1e-11, atol=1e-12)


def test_a_numeric_root_of_a_non_finite_sigma_is_a_reported_blow_up_not_a_crash():
    """Sigma(x) = [[1 + sqrt(x0), 1/10], [1/10, 1]] leaves the reals where x0 < 0: those paths get a NaN noise
    and the driver reports them (step, fraction of paths), instead of eigh failing for the whole block."""
    import sympy as sp

    import smfsym
    from smfsym.montecarlo.checks import BlowUpError
    from smfsym.symbolic.sde import MatrixSqrt

    x0, x1 = sp.symbols("x0 x1")
    S = sp.Matrix([[1 + sp.sqrt(x0), sp.Rational(1, 10)], [sp.Rational(1, 10), 1]])
    sde = smfsym.SDE(sp.Matrix([-1, 0]), MatrixSqrt(S, sp.Integer(1)), [x0, x1])
    with pytest.raises(BlowUpError, match=r"non-finite state at step \d+ .* of the paths"):
        smfsym.simulate(sde, [0.3, 0.0], 0.5, dt=0.05, n_paths=2000, seed=1, scheme="euler")
    r = smfsym.simulate(sde, [0.3, 0.0], 0.5, dt=0.05, n_paths=2000, seed=1, scheme="euler",
                        options=smfsym.RunOptions(on_nonfinite="mask"))
    assert 0 < r.lost_fraction < 1 and np.isfinite(r.mean()).all()
