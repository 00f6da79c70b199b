"""Exact two-point moments for :func:`smfsym.multipoint_rates` (docs/theory.md §4, "Several starting points", §5).

The two-point SGD chain with a shared sample and the SDE two-point motions (one noise, or one Brownian
motion per point) act on the polynomials of degree <= 2 in the stacked state when grad f is affine in
the parameters: a matrix power and a matrix exponential there, built symbolically in eta once and
evaluated in 40-digit arithmetic per eta.
"""
from __future__ import annotations

import math

import mpmath
import sympy as sp

from ..simulation.exact import DIGITS, NotClosedError, PolynomialSpace, _mp, affine_in_params, rational
from ..data.means import expectation
from ..symbolic.sde import SDE
from .common import build_model
from .momentum_multipoint import npoint_model

__all__ = ["MAX_EXACT_MONOMIALS"]


def _stacked_symbols(params, n):
    # the same names and assumptions as optimizers.npoint_model, so SGD and SDE spaces share their symbols
    return [tuple(sp.Symbol(f"{p.name}__{a}", real=True) for p in params) for a in range(n)]


def _stat_polys(blocks):
    """The monomials each exact statistic needs, in the stacked variables of the first two points."""
    xa, xb = blocks[0], blocks[1]
    return {"ma": xa[0], "mb": xb[0], "paa": xa[0] ** 2, "pbb": xb[0] ** 2, "pab": xa[0] * xb[0],
            "sq": sp.expand(sum((u - v) ** 2 for u, v in zip(xa, xb)))}


def _stats_from_moments(m, names):
    cov = m["pab"] - m["ma"] * m["mb"]
    va, vb = m["paa"] - m["ma"] ** 2, m["pbb"] - m["mb"] ** 2
    out = {"product": m["pab"], "covariance": cov, "sqdist": m["sq"]}
    out["correlation"] = cov / mpmath.sqrt(va * vb) if va > 0 and vb > 0 else mpmath.mpf("nan")
    res = {}
    for name, kind in names.items():  # user name -> built-in statistic
        v = float(out[kind])
        if math.isinf(v) or (math.isnan(v) and kind != "correlation"):
            raise FloatingPointError(f"the exact {kind} is {v} in double precision (the moments overflow): use "
                                     "smaller `starts` or a shorter `t_end`.")
        res[name] = v
    return res


def _moments(space, matrix_fn, z0, polys):
    """Values of the polynomials ``polys`` after the evolution ``matrix_fn`` (acting on coordinates)."""
    with mpmath.workdps(DIGITS):
        row = mpmath.matrix([space.at(z0)])
        out = {}
        for key, p in polys.items():
            c = mpmath.matrix([mpmath.mpf(sp.Rational(v).p) / sp.Rational(v).q for v in space.coords(p, "statistic")])
            out[key] = (row * matrix_fn(c))[0, 0]
        return out


def _substituted(problem, values):
    sub = {} if not values else {k: rational(v) for k, v in values.items()}
    grads = [sp.expand(g.xreplace(sub)) for g in problem.grad_f]
    return sub, grads


#: Largest polynomial space (monomials of degree <= 2 in the two-point state, C(2d + 2, 2)) built exactly;
#: beyond it (d > 10) the symbolic operators cost minutes and "auto" simulates instead.
MAX_EXACT_MONOMIALS = 231


def _transpose(cols):
    return [[cols[j][i] for j in range(len(cols))] for i in range(len(cols))]


def _numeric(M, eta_sym, eta):
    er = rational(eta)
    return _mp([[c.xreplace({eta_sym: er}) if c.free_symbols else c for c in row] for row in M])


def _sgd_matrix(problem, blocks, values, eta_sym):
    """The two-point SGD one-step operator (shared sample) on degree <= 2, symbolic in eta."""
    if problem.batch_size != 1 or not problem.is_polynomial or not affine_in_params(problem):
        raise NotClosedError("exact two-point SGD moments need grad f affine in the parameters, a loss polynomial "
                             "in the data and batch size 1.")
    _, grads = _substituted(problem, values)
    step = {}
    for blk in blocks:
        sub = dict(zip(problem.params, blk))
        for v, g in zip(blk, grads):
            step[v] = v - eta_sym * g.xreplace(sub)
    space = PolynomialSpace([v for b in blocks for v in b], 2)
    cols = []
    for mono in space.monomials:
        img = expectation(sp.expand(mono.xreplace(step)))
        extra = sorted(str(s) for s in img.free_symbols if s not in space.params and s != eta_sym)
        if extra:
            raise NotClosedError(f"the loss has symbols without numbers ({', '.join(extra)}): pass `values` for "
                                 "exact moments.")
        cols.append(space.coords(img, "SGD image of a monomial"))
    return space, _transpose(cols)


def _exact_sgd(op, blocks, z0, eta, k, names, eta_sym):
    """Exact statistics of the two-point SGD chain (shared sample) after k steps."""
    space, M = op
    with mpmath.workdps(DIGITS):
        Pk = _numeric(M, eta_sym, eta) ** int(k)
        return _stats_from_moments(_moments(space, lambda c: Pk * c, z0, _stat_polys(blocks)), names)


def _two_point_sde(problem, model, values):
    """The two-point motion of ``model`` as one SDE (shared or independent noise) and its state blocks."""

    base, _, coupling = model.partition("_")
    sde = build_model(problem, base)
    if values:
        sde = sde.subs({k: rational(v) for k, v in values.items()})
    if sde.noise_kind != "matrix":
        raise NotClosedError(f"model {model!r} has no explicit polynomial noise columns.")
    if coupling != "independent":
        return npoint_model(sde, 2)
    blocks, drift, D = _stacked_symbols(sde.state, 2), [], []
    for a, blk in enumerate(blocks):
        sub = dict(zip(sde.state, blk))
        drift += [e.xreplace(sub) for e in sde.drift]
        D.append(sde.diffusion.xreplace(sub))
    diffusion = sp.diag(*D)  # block diagonal: one Brownian motion per point
    return SDE(drift, diffusion, [v for b in blocks for v in b], eta=sde.eta, model=f"{model}, 2-point",
               order=sde.order, problem=sde.problem), blocks


def _generator(two):
    """The two-point generator on degree <= 2, symbolic in the model's eta; refuses a non-polynomial one."""
    M, blocks = two
    space = PolynomialSpace(M.state, 2)
    try:
        cols = [space.coords(M.generator(m), "generator image of a monomial") for m in space.monomials]
    except sp.PolynomialError:
        raise NotClosedError("the two-point generator is not polynomial (Sigma^{1/2} in the noise).") from None
    L = _transpose(cols)
    if any(c.free_symbols - {M.eta} for row in L for c in row):
        raise NotClosedError("the two-point generator has free symbols: pass `values`.")
    return space, L, M.eta, blocks


def _exact_sde(gen, z0, eta, t, names):
    space, L, eta_sym, blocks = gen
    with mpmath.workdps(DIGITS):
        E = mpmath.expm(_numeric(L, eta_sym, eta) * mpmath.mpf(rational(t).p) / rational(t).q)
        return _stats_from_moments(_moments(space, lambda c: E * c, z0, _stat_polys(blocks)), names)
