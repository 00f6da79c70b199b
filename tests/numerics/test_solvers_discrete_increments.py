"""Discrete increments (Kloeden-Platen 14.1-14.2): weak orders re-measured exactly on the Gaussian tests' SDEs."""
import itertools

import numpy as np
import pytest
import sympy as sp

import smfsym
from smfsym.numerics.solvers import EulerMaruyama, WeakTaylor2
from linear_sde import exact_moments, fitted_order, linear_sde
from smfsym.engine import draw_discrete
from smfsym.numerics.compiled_sde import NumericSDE
from test_solvers import CASES, N_STEPS, phi

NODES = {"two": (np.array([-1.0, 1.0]), np.array([0.5, 0.5])),
         "three": (np.array([-np.sqrt(3.0), 0.0, np.sqrt(3.0)]), np.array([1 / 6, 2 / 3, 1 / 6]))}


def discrete_scheme_moments(solver, sde, x0, T, n_steps):
    """Exact mean and second moment after n_steps: the step is affine in X on a linear SDE, and the
    discrete increments take finitely many values, enumerated with their probabilities."""
    nsde = NumericSDE(sde)
    solver.prepare(nsde)
    k, m, d = solver.n_draws, nsde.m, nsde.d
    per_dim = [NODES[kind] for kind in solver.discrete for _ in range(m)]
    combos = list(itertools.product(*[range(len(z)) for z, _ in per_dim]))
    Z = np.array([[per_dim[i][0][c] for i, c in enumerate(combo)] for combo in combos]).reshape(-1, k, m)
    W = np.array([np.prod([per_dim[i][1][c] for i, c in enumerate(combo)]) for combo in combos])
    dt = T / n_steps
    Q = Z.shape[0]
    c = solver.step(nsde, np.zeros((Q, d)), dt, Z)
    Aq = np.stack([solver.step(nsde, np.tile(np.eye(d)[i], (Q, 1)), dt, Z) - c for i in range(d)], axis=2)
    EA, Ec = (W @ Aq.reshape(Q, -1)).reshape(d, d), W @ c
    mean, S = np.array(x0, float), np.outer(x0, x0)
    for _ in range(n_steps):
        Am = Aq @ mean
        cross = np.einsum("qi,qj->qij", Am, c)
        S = np.einsum("q,qij->ij", W, np.einsum("qij,jk,qlk->qil", Aq, S, Aq) + cross + cross.transpose(0, 2, 1)
                      + np.einsum("qi,qj->qij", c, c))
        mean = EA @ mean + Ec
    return mean, S


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("solver", [EulerMaruyama(), WeakTaylor2()])
def test_discrete_weak_order_fitted_slope(case, solver):
    A, a, Bs, bs, x0 = CASES[case]
    sde = linear_sde(A, a, Bs, bs)
    ref = phi(*exact_moments(np.array(A), np.array(a), [np.array(B) for B in Bs], [np.array(b) for b in bs],
                             np.array(x0), 1.0))
    errs = [abs(phi(*discrete_scheme_moments(solver, sde, x0, 1.0, n)) - ref) for n in N_STEPS]
    slope = fitted_order([1.0 / n for n in N_STEPS], errs)
    assert abs(slope - solver.weak_order) < 0.3, (case, solver, slope, errs)


def test_simulate_with_discrete_increments_matches_the_exact_discrete_moments():
    """The plumbing: the engine's discrete draws are the variables enumerated above (5 standard errors)."""
    A, a, Bs, bs, x0 = CASES["linear_2d_noncommuting"]
    sde = linear_sde(A, a, Bs, bs)
    for scheme in ("euler", "weak2"):
        solver = smfsym.numerics.solvers.get_solver(scheme)
        mean, S = discrete_scheme_moments(solver, sde, x0, 1.0, 4)
        res = smfsym.simulate(sde, x0, 1.0, dt=0.25, n_paths=100_000, scheme=scheme, seed=11, increments="discrete",
                              functions={"phi": lambda X: (X**2).sum(-1) + X.sum(-1)})
        assert abs(res.mean("phi")[0] - phi(mean, S)) < 5 * res.sem("phi")[0]
        assert res.extra["increments"] == "discrete"


def test_discrete_draws_have_the_declared_moments_and_are_chunk_invariant():
    Z = draw_discrete(np.random.default_rng(5), 200_000, ("three", "two"), 3)
    n = Z.shape[0] * Z.shape[2]
    for j, (m2, m4) in enumerate([(1.0, 3.0), (1.0, 1.0)]):
        v = Z[:, j].ravel()
        assert abs(v.mean()) < 5 * np.sqrt(m2 / n)
        assert abs((v**2).mean() - m2) <= 5 * np.sqrt((m4 - m2**2) / n)  # exactly 1 for two-point
    x = sp.Symbol("x")
    flow = smfsym.smf(smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x]))
    kw = dict(eta=0.1, n_paths=5000, seed=3, increments="discrete", store=False)
    a = smfsym.simulate(flow, [1.0], 1.0, chunk_size=1, **kw)
    b = smfsym.simulate(flow, [1.0], 1.0, chunk_size=10_000, **kw)
    assert a.stats["state"]["mean"].tobytes() == b.stats["state"]["mean"].tobytes()
    with pytest.raises(ValueError, match="`increments` must be 'gaussian' or 'discrete'"):
        smfsym.simulate(flow, [1.0], 1.0, eta=0.1, increments="bits")


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
def test_studies_accept_discrete_increments():
    r = smfsym.rademacher("r")
    x = sp.Symbol("x")
    p = smfsym.Problem((1 + r) * x**2 / 2, [x])
    mp = smfsym.multipoint(p, [[-1.0], [1.0]], eta=0.1, t_end=1.0, psi=["product"], models=["smf2"], n_paths=20_000,
                           seed=0, increments="discrete")
    assert abs(mp.value("smf2", "product")["z"]) < 5
    st = smfsym.weak_error(smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x]), x**2, [1.0], 1.0, [0.2, 0.1],
                           models=["smf2"], method="montecarlo", n_paths=20_000, seed=0, increments="discrete")
    assert st.meta["increments"] == "discrete"
    assert all(abs(r["error"]) < 5 * r["se"] + 0.01 for r in st.rows)  # O(eta^2) model error at most ~0.01
