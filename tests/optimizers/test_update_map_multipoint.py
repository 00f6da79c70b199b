"""Two-point statistics of RMSprop (issue 18): the SMF of an update map reproduces the joint law of optimizer runs
from two starts that share their samples; an SME driven by one shared Brownian motion does not.

RMSprop (c = 1, eps = 0.1) on f = (x - r)^2 / 2 with a Rademacher r, started at z = (x, v) = (-0.5, 1) and
(1, 1.5). The two runs draw the same r at every step (``simulate_update_map`` with z0 of shape (2, 2)). The
gradient noise -r enters x's increments with the same sign at both starts, but the noise of g^2 = x^2 - 2 x r + 1
enters v's with the sign of x: the two v's move against each other, Cov(V(z1), V(z2)) < 0. The SMF's noise
coefficients A_k(z) = E[A(z, xi) e_k] carry that sign (one noise column, e_1 = r); the SME's principal root
S(z)^{1/2} does not (the root's off-diagonal entry flips with x, its diagonal does not), so with one shared
Brownian motion its covariances come out with the wrong sign.

Tolerances. Each covariance is estimated by the mean of (a - mean a)(b - mean b) over 20,000 paths; its standard
error is that of the mean (the influence function of the sample covariance), and the SMF's against the
optimizer's is judged by z = (value - reference) / hypot(se, se_ref). The SMF's own bias is O(eta^2) in these
covariances (weak order 2; measured about 1e-4, some 2 standard errors, at eta = 1/80 over t = 0.5: it shrinks
like eta^2, the standard error like eta / sqrt(n)), so |z| < 4.5 holds with margin and fails for a noise
coefficient of the wrong sign or size (the shared SME's z is about 100).
"""
import numpy as np
import pytest
import sympy as sp

import smfsym
from smfsym.numerics.solvers import get_solver
from smfsym.optimizers.update_map import rmsprop, simulate_update_map
from smfsym.studies.richardson import coupled_run

ETA, T_END, N_PATHS = 1 / 80, 0.5, 20_000
STARTS = np.array([[-0.5, 1.0], [1.0, 1.5]])


def _cov(a, b):
    """Cov(a, b) with the standard error of its influence function's mean."""
    c = (a - a.mean()) * (b - b.mean())
    return float(c.mean()), float(c.std(ddof=1) / np.sqrt(c.size))


def _statistics(Z):
    """Cov(X1, X2), Cov(V1, V2) and Cov(X1, V2) of final joint states (P, 2, 2)."""
    return {"x1 x2": _cov(Z[:, 0, 0], Z[:, 1, 0]), "v1 v2": _cov(Z[:, 0, 1], Z[:, 1, 1]),
            "x1 v2": _cov(Z[:, 0, 0], Z[:, 1, 1])}


@pytest.fixture(scope="module")
def umap():
    x = sp.Symbol("x")
    return rmsprop(smfsym.Problem((x - smfsym.rademacher("r")) ** 2 / 2, [x]), c=1, eps=sp.Rational(1, 10))


@pytest.fixture(scope="module")
def optimizer(umap):
    k = int(round(T_END / ETA))
    res = simulate_update_map(umap, STARTS, k, ETA, n_paths=N_PATHS, seed=1)
    assert res.states.shape == (1, N_PATHS, 2, 2)
    return _statistics(res.states[-1])


def _two_point_model(sde, scheme, increments, n_paths=N_PATHS):
    """The model's two-point motion from STARTS (one noise for both points), at dt = eta and eta/2 coupled;
    returns the fine run's statistics and the largest coarse-fine gap (the solver's error, Richardson)."""
    rr = coupled_run(sde, STARTS, T_END, eta=ETA, dt=ETA, n_paths=n_paths, solver=get_solver(scheme), seed=2,
                     increments=increments, store=True, progress=False)
    fine, coarse = _statistics(rr.states[-1][:, 1]), _statistics(rr.states[-1][:, 0])
    return fine, max(abs(fine[k][0] - coarse[k][0]) for k in fine)


def _z(mine, ref):
    return (mine[0] - ref[0]) / np.hypot(mine[1], ref[1])


def test_the_optimizer_runs_share_their_samples(umap, optimizer):
    """The premise: x's move together, v's against each other (Cov(V1, V2) < 0 beyond 10 standard errors)."""
    assert optimizer["x1 x2"][0] > 10 * optimizer["x1 x2"][1]
    assert optimizer["v1 v2"][0] < -10 * optimizer["v1 v2"][1]


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
@pytest.mark.parametrize("order", [1, 2])
def test_rmsprop_smf_reproduces_two_point_covariances(umap, optimizer, order):
    stats, solver_gap = _two_point_model(umap.smf(order), "weak2", "discrete")
    for name, ref in optimizer.items():
        assert abs(_z(stats[name], ref)) < 4.5, (name, stats[name], ref)
        assert solver_gap < stats[name][1]  # the solver's own error is below one standard error


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
def test_rmsprop_sme_with_shared_noise_gets_the_signs_wrong(umap, optimizer):
    """The shared-noise SME's three covariances have the opposite sign to the optimizer's, each beyond 4 SE."""
    stats, _ = _two_point_model(umap.sme(2), "euler", "gaussian", n_paths=5_000)  # z is about 50 here
    for name, ref in optimizer.items():
        assert np.sign(stats[name][0]) == -np.sign(ref[0]), (name, stats[name], ref)
        assert abs(stats[name][0]) > 4 * stats[name][1]
        assert abs(_z(stats[name], ref)) > 20
