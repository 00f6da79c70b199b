r"""signSGD, normalised SGD and clipped SGD as update maps, where the law of the data makes them smooth (issue 18).

Their increments A(x, xi) = -sign(g), -g / |g|, -clip(g, -C, C) (g = grad f(x, xi)) are not smooth in x, but
their means over a Gaussian law are: with g_i = M_i(x) + s_i(x) Z, Z ~ N(0, 1),

    E sign(g_i)        = erf(M_i / (sqrt(2) s_i)),
    E clip(g_i, -C, C) = M_i (Phi(b) - Phi(a)) + s_i (phi(a) - phi(b)) + C (1 - Phi(b)) - C Phi(a),
    a = (-C - M_i) / s_i,  b = (C - M_i) / s_i,

and E clip^2 likewise (Phi, phi: the standard normal distribution function and density). These are the
closed forms used here, for a gradient *linear* in Gaussian data, one coordinate at a time; coordinates
must draw on disjoint data (then they are independent and S is diagonal). Everything else is refused
with its reason: under a finite law (Rademacher, a data set) E sign(g) jumps where a value of g crosses
0, and E clip(g) has kinks, so Da and the order-2 drift do not exist there; under another continuous law,
or with coordinates sharing their data (orthant probabilities of correlated Gaussians), there is no
closed form here. The SMF is refused too: the noise coefficients E[sign(g) e_k] of a non-polynomial
function of the data form an infinite chaos series.

The models are those of :class:`~smfsym.optimizers.update_map.UpdateMap` (B = 0 for these maps: the
order-2 drift is a - (h/2) (Da) a), the SME's noise diagonal and explicit; the optimizer is simulated from
the exact update by :func:`~smfsym.optimizers.update_map.simulate_update_map`.
"""
from __future__ import annotations

from typing import Any

import sympy as sp

from .._checks import as_number_or_expr
from ..data.laws.continuous import Normal
from ..data.laws.finite import Finite
from ..data.laws.empirical import Empirical
from ..symbolic.models import default_eta
from ..symbolic.problem import Problem
from .update_map import UpdateMap

__all__ = ["sign_sgd_map", "normalized_sgd_map", "clipped_sgd_map"]


def _Phi(z):
    return (1 + sp.erf(z / sp.sqrt(2))) / 2


def _phi(z):
    return sp.exp(-z**2 / 2) / sp.sqrt(2 * sp.pi)


def _gaussian_linear(problem: Problem, what: str) -> list:
    """[(M_i, s_i)] with g_i = M_i + s_i Z_i, Z_i independent standard normals, or a refusal naming the reason."""
    laws = problem.laws
    if any(isinstance(law, (Finite, Empirical)) for law in laws):
        raise ValueError(f"`problem`: {what}'s mean increment is not smooth under a finite law (a data set, "
                         "Rademacher, categorical): E sign(g) jumps, and E clip(g) has kinks, where a value of the "
                         "gradient crosses 0 (or the clip level), so the modified equations do not exist there.")
    if not all(isinstance(law, Normal) for law in laws):
        names = sorted({type(law).__name__ for law in laws if not isinstance(law, Normal)})
        raise ValueError(f"`problem`: {what} is built in closed form for Gaussian data only (univariate normal "
                         f"laws); got {names}.")
    out, used = [], set()
    for i, gi in enumerate(problem.grad_f):
        data = [s for s in problem.data if gi.has(s)]
        if not data:
            raise ValueError(f"`problem`: coordinate {i} of the gradient has no noise; E {what}(g) is then "
                             "{what}(grad F), which jumps (or kinks) where grad F crosses 0.".format(what=what))
        if used & set(data):
            raise ValueError(f"`problem`: the gradient's coordinates share data {sorted(map(str, used & set(data)))}: "
                             f"the covariance of {what}(g_i), {what}(g_j) for correlated Gaussians has no closed "
                             "form here; give each coordinate its own data.")
        used |= set(data)
        poly = sp.Poly(sp.expand(gi), *data)
        if poly.total_degree() > 1:
            raise ValueError(f"`problem`: coordinate {i} of the gradient is not linear in the data ({gi}); "
                             f"the closed form of E {what}(g) needs a Gaussian g.")
        M = poly.coeff_monomial(1)
        var = sp.S.Zero
        for s in data:
            law = s.law
            beta = poly.coeff_monomial(s)
            M += beta * law.mean
            var += beta**2 * law.std**2
        out.append((M, sp.sqrt(var)))
    return out


class _GaussianClosedFormMap(UpdateMap):
    """An update map whose mean and covariance of A come from closed forms (diagonal S, B = 0)."""

    def _set_moments(self, mean: list, second: list):
        d = len(mean)
        self._a = sp.ImmutableMatrix(mean)
        self._cov = sp.ImmutableMatrix(sp.diag(*[second[i] - mean[i] ** 2 for i in range(d)]))

    @property
    def a(self) -> sp.ImmutableMatrix:
        return self._a

    @property
    def b(self) -> sp.ImmutableMatrix:
        return sp.ImmutableMatrix(sp.zeros(len(self.state), 1))

    @property
    def covariance(self) -> sp.ImmutableMatrix:
        return self._cov

    def smf(self, order: int = 2, degree: int | None = None):
        raise ValueError(f"`{self.name}`: no SMF: the noise coefficients E[A e_k] of a non-polynomial function "
                         "of the data form an infinite chaos series; use the SME (sme(order)).")


def sign_sgd_map(problem: Problem, eta: Any = None) -> UpdateMap:
    r"""signSGD, x -> x - eta sign(grad f(x, xi)) coordinatewise, for a gradient linear in Gaussian data.

    a_i = -erf(M_i / (sqrt(2) s_i)), S = diag(1 - a_i^2), B = 0 (see the module docstring for the
    conditions and the refusals).

    Examples
    --------
    >>> import sympy as sp, smfsym
    >>> from smfsym.optimizers.nonsmooth_maps import sign_sgd_map
    >>> x = sp.Symbol("x")
    >>> m = sign_sgd_map(smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x]))
    >>> m.a, m.covariance
    (Matrix([[-erf(sqrt(2)*x/2)]]), Matrix([[1 - erf(sqrt(2)*x/2)**2]]))
    """
    return _sign_like(problem, eta, "sign", "sign_sgd")


def normalized_sgd_map(problem: Problem, eta: Any = None) -> UpdateMap:
    r"""Normalised SGD, x -> x - eta g / |g|; in one dimension it is signSGD. In d > 1, E[g / |g|] for a
    Gaussian g has no closed form here: refused."""
    if problem.dim != 1:
        raise ValueError(f"`problem`: normalised SGD is built for one parameter only (g / |g| = sign(g)); "
                         f"E[g / |g|] over a {problem.dim}-dimensional Gaussian g has no closed form here.")
    return _sign_like(problem, eta, "sign", "normalized_sgd")


def _sign_like(problem, eta, what, name):
    if not isinstance(problem, Problem):
        raise TypeError(f"`problem` must be a smfsym.Problem; got {type(problem).__name__}.")
    moments = _gaussian_linear(problem, what)
    eta = default_eta() if eta is None else eta
    update = [x - eta * sp.sign(gi) for x, gi in zip(problem.params, problem.grad_f)]
    umap = _GaussianClosedFormMap(problem, problem.params, update, eta=eta, name=name)
    mean = [-sp.erf(M / (sp.sqrt(2) * s)) for M, s in moments]
    umap._set_moments(mean, [sp.S.One] * len(mean))
    return umap


def clipped_sgd_map(problem: Problem, clip: Any, eta: Any = None) -> UpdateMap:
    r"""SGD with the gradient clipped coordinatewise to [-C, C] (``torch.nn.utils.clip_grad_value_``), for a
    gradient linear in Gaussian data: the mean and variance of clip(g_i) in closed form (module docstring).

    Examples
    --------
    >>> import sympy as sp, smfsym
    >>> from smfsym.optimizers.nonsmooth_maps import clipped_sgd_map
    >>> x = sp.Symbol("x")
    >>> m = clipped_sgd_map(smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x]), clip=1)
    >>> round(float(m.a[0].subs(x, 0)), 12), round(float(m.a[0].subs(x, 50)), 6)
    (0.0, -1.0)
    """
    if not isinstance(problem, Problem):
        raise TypeError(f"`problem` must be a smfsym.Problem; got {type(problem).__name__}.")
    C = as_number_or_expr(clip, "clip", positive=True)
    moments = _gaussian_linear(problem, "clip")
    eta = default_eta() if eta is None else eta
    update = [x - eta * sp.Max(-C, sp.Min(C, gi)) for x, gi in zip(problem.params, problem.grad_f)]
    umap = _GaussianClosedFormMap(problem, problem.params, update, eta=eta, name="clipped_sgd",
                                  constants=[C] if isinstance(C, sp.Symbol) else [])
    mean, second = [], []
    for M, s in moments:
        lo, hi = (-C - M) / s, (C - M) / s
        inside = _Phi(hi) - _Phi(lo)
        m1 = M * inside + s * (_phi(lo) - _phi(hi)) + C * (1 - _Phi(hi)) - C * _Phi(lo)
        m2 = ((M**2 + s**2) * inside + 2 * M * s * (_phi(lo) - _phi(hi)) + s**2 * (lo * _phi(lo) - hi * _phi(hi))
              + C**2 * (1 - _Phi(hi) + _Phi(lo)))
        mean.append(-m1)
        second.append(m2)
    umap._set_moments(mean, second)
    return umap
