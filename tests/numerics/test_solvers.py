"""Weak orders measured, not assumed: fitted slopes on SDEs with exact moments."""
import numpy as np
import pytest
import sympy as sp

import smfsym
from smfsym.numerics.solvers import EulerMaruyama, WeakTaylor2
from linear_sde import exact_moments, fitted_order, linear_sde, scheme_moments

CASES = {
    "gbm": ([[-0.5]], [0.0], [[[0.6]]], [[0.0]], [1.0]),
    "ou_multiplicative": ([[-1.0]], [0.3], [[[0.4]]], [[0.5]], [1.5]),
    "linear_2d_noncommuting": ([[-1.0, 0.5], [-0.3, -0.8]], [0.2, 0.0],
                               [[[0.3, 0.0], [0.0, -0.2]], [[0.0, 0.4], [0.2, 0.0]]],
                               [[0.1, 0.0], [0.0, 0.3]], [1.0, -0.5]),
}
T = 1.0
N_STEPS = [4, 8, 16, 32]


def phi(mean, S):
    """E phi for phi(x) = |x|^2 + sum(x)."""
    return np.trace(S) + mean.sum()


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("solver", [EulerMaruyama(), WeakTaylor2()])
def test_weak_order_fitted_slope(case, solver):
    A, a, Bs, bs, x0 = CASES[case]
    sde = linear_sde(A, a, Bs, bs)
    if case == "linear_2d_noncommuting":
        Bm = [np.array(B) for B in Bs]
        assert not np.allclose(Bm[0] @ Bm[1], Bm[1] @ Bm[0])  # the columns do not commute
    ref = phi(*exact_moments(np.array(A), np.array(a), [np.array(B) for B in Bs],
                             [np.array(b) for b in bs], np.array(x0), T))
    dts, errs = [], []
    for n in N_STEPS:
        errs.append(abs(phi(*scheme_moments(solver, sde, x0, T, n)) - ref))
        dts.append(T / n)
    slope = fitted_order(dts, errs)
    assert abs(slope - solver.weak_order) < 0.3, (case, solver, slope, errs)


def test_simulate_matches_exact_scheme_moments_within_standard_error():
    """The Monte Carlo plumbing (seeds, blocks, draws) feeds the solver its Gaussians correctly."""
    A, a, Bs, bs, x0 = CASES["linear_2d_noncommuting"]
    sde = linear_sde(A, a, Bs, bs)
    for scheme in ("euler", "weak2"):
        solver = smfsym.numerics.solvers.get_solver(scheme)
        mean, S = scheme_moments(solver, sde, x0, T, 4)
        res = smfsym.simulate(sde, x0, T, dt=0.25, n_paths=100_000, scheme=scheme, seed=11,
                              functions={"phi": lambda X: (X**2).sum(-1) + X.sum(-1)})
        est, se = res.mean("phi")[0], res.sem("phi")[0]
        assert abs(est - phi(mean, S)) < 5 * se  # 5 standard errors


def test_weak2_refuses_numeric_square_root():
    x = sp.symbols("x0:2")
    a = smfsym.normal("a", 2)
    p = smfsym.Problem((a[0] * x[0] + a[1] * x[1] + a[0] * a[1]) ** 2 / 2, x)
    sme = smfsym.sme(p)
    assert sme.noise_kind == "sqrt"
    with pytest.raises(ValueError, match="weak order-2 scheme needs the diffusion as an explicit matrix"):
        smfsym.simulate(sme, [1.0, 0.0], 0.1, eta=0.1, n_paths=10, scheme="weak2", seed=0)
    res = smfsym.simulate(sme, [1.0, 0.0], 0.1, eta=0.1, n_paths=10, scheme="euler", seed=0)
    assert res.success


def test_solver_registry():
    assert isinstance(smfsym.numerics.solvers.get_solver("EM"), EulerMaruyama)
    assert isinstance(smfsym.numerics.solvers.get_solver(WeakTaylor2), WeakTaylor2)
    with pytest.raises(ValueError, match="`scheme` must be one of"):
        smfsym.numerics.solvers.get_solver("rk4")


def _one_step_mean(solver, sde, x, h, phi_fn, points=4):
    """E_Z phi(step(x, h, Z)), exact: the step is polynomial (degree <= 3) in its Gaussian inputs."""
    import itertools

    from smfsym.numerics.compiled_sde import NumericSDE

    nsde = NumericSDE(sde)
    solver.prepare(nsde)
    k, m = solver.n_draws, nsde.m
    z, w = np.polynomial.hermite_e.hermegauss(points)
    idx = np.array(list(itertools.product(range(points), repeat=k * m)))
    Z = z[idx].reshape(-1, k, m)
    W = np.prod((w / w.sum())[idx], axis=1)
    X = np.tile(np.asarray(x, float), (Z.shape[0], 1))
    return W @ phi_fn(solver.step(nsde, X, h, Z))


@pytest.mark.slow
@pytest.mark.parametrize("solver", [EulerMaruyama(), WeakTaylor2()])
def test_local_weak_error_on_nonlinear_noncommuting_sde(solver):
    """One-step error against the generator's Taylor expansion phi + h L phi + h^2/2 L^2 phi.

    Weak order p means local error O(h^(p+1)): slope 2 for Euler, 3 for weak Taylor 2.0.
    """
    x1, x2 = sp.symbols("x1 x2")
    drift = [-x1 + sp.sin(x2), -x2**3 / 3 + x1 / 2]
    diffusion = [[sp.cos(x2), sp.Rational(3, 10)], [x1 / 2, sp.sin(x1) / 5 + x2 / 4]]
    sde = smfsym.SDE(drift, diffusion, state=[x1, x2])
    x0 = {x1: 0.7, x2: -0.4}
    # (for phi = x1 the weak-2 step's mean equals the expansion to rounding: nothing to fit).
    # Quadratic and cubic phi check the increments' second and third moments; the step is of
    # degree <= 3 in its Gaussians, so phi(step) has degree <= 9: a 5-point rule is exact.
    for phi in (x1 * x2, x2**2, x1**2, x1**2 * x2, x2**3):
        L1 = sde.generator(phi)
        L2 = sde.generator(L1)
        taylor = [float(phi.subs(x0)), float(L1.subs(x0)), float(L2.subs(x0))]
        fn = sp.lambdify([x1, x2], phi)
        hs = np.array([0.05, 0.025, 0.0125, 0.00625])
        errs = [abs(_one_step_mean(solver, sde, [0.7, -0.4], h, lambda X: fn(X[:, 0], X[:, 1]), points=5)
                    - (taylor[0] + h * taylor[1] + h**2 / 2 * taylor[2])) for h in hs]
        slope = np.polyfit(np.log(hs), np.log(errs), 1)[0]
        assert abs(slope - (solver.weak_order + 1)) < 0.3, (phi, slope, errs)
