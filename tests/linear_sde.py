"""Helpers: exact moments of linear SDEs and of a solver's one-step map on them.

For dX = (A X + a) dt + sum_k (B_k X + b_k) dW_k the first and second moments
solve a linear ODE (matrix exponential). A solver step on such an SDE is
affine in X and polynomial in its Gaussian inputs Z, so its moments are exact
with a Gauss-Hermite rule over Z: weak errors with no sampling noise.
"""
import itertools

import numpy as np
import scipy.linalg as sla
import sympy as sp

import smfsym
from smfsym.numerics.compiled_sde import NumericSDE


def linear_sde(A, a, Bs, bs):
    d = len(a)
    x = sp.symbols(f"x0:{d}")
    X = sp.Matrix(x)
    drift = sp.Matrix(A) * X + sp.Matrix(a)
    cols = [sp.Matrix(B) * X + sp.Matrix(b) for B, b in zip(Bs, bs)]
    D = sp.Matrix.hstack(*cols)
    return smfsym.SDE(drift, D, state=x)


def exact_moments(A, a, Bs, bs, x0, T):
    """Mean and second-moment matrix of the linear SDE at time T."""
    d = len(a)
    At = np.zeros((d + 1, d + 1))
    At[:d, :d], At[:d, d] = A, a
    L = np.kron(np.eye(d + 1), At) + np.kron(At, np.eye(d + 1))
    for B, b in zip(Bs, bs):
        Bt = np.zeros((d + 1, d + 1))
        Bt[:d, :d], Bt[:d, d] = B, b
        L += np.kron(Bt, Bt)
    y0 = np.append(x0, 1.0)
    S = (sla.expm(L * T) @ np.outer(y0, y0).reshape(-1)).reshape(d + 1, d + 1)
    return S[:d, d], S[:d, :d]


def scheme_moments(solver, sde, x0, T, n_steps, points=4):
    """Exact mean and second moment of ``solver`` after n_steps on a linear SDE."""
    nsde = NumericSDE(sde)
    solver.prepare(nsde)
    k, m, d = solver.n_draws, nsde.m, nsde.d
    z, w = np.polynomial.hermite_e.hermegauss(points)
    w = w / w.sum()
    dims = k * m
    idx = np.array(list(itertools.product(range(points), repeat=dims)))
    Z = z[idx].reshape(-1, k, m)
    W = np.prod(w[idx], axis=1)
    dt = T / n_steps
    Q = Z.shape[0]
    c = solver.step(nsde, np.zeros((Q, d)), dt, Z)
    Acols = [solver.step(nsde, np.tile(np.eye(d)[i], (Q, 1)), dt, Z) - c for i in range(d)]
    Aq = np.stack(Acols, axis=2)  # (Q, d, d)
    EA, Ec = W @ Aq.reshape(Q, -1), W @ c
    EA = EA.reshape(d, d)
    mean, S = np.array(x0, float), np.outer(x0, x0)
    for _ in range(n_steps):
        AS = np.einsum("qij,jk,qlk->qil", Aq, S, Aq)
        Am = Aq @ mean
        cross = np.einsum("qi,qj->qij", Am, c)
        S = np.einsum("q,qij->ij", W, AS + cross + cross.transpose(0, 2, 1) + np.einsum("qi,qj->qij", c, c))
        mean = EA @ mean + Ec
    return mean, S


def fitted_order(dts, errs):
    return np.polyfit(np.log(dts), np.log(errs), 1)[0]
