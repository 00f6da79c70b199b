"""Factories (as in ``sympy.stats``) and the translation of ``sympy.stats`` random symbols."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import sympy as sp

from ..._checks import require
from .base import SUPPORTED_LAWS, DataSymbol, _s, check_law_name
from .continuous import Beta, Exponential, Gamma, MultivariateNormal, Normal, StudentT, Uniform
from .empirical import Empirical
from .finite import Finite

__all__ = ["normal", "uniform", "bernoulli", "rademacher", "categorical", "exponential", "gamma",
           "beta", "student_t", "empirical", "law_from_sympy_stats", "MAX_LAW_DIM"]



#: Largest ``dim`` of one data law made by a factory: each coordinate is a sympy symbol with its own law
#: block, and a Problem derives F and Sigma over every one of them (linear regression derives up to d = 70
#: by default), so 10^4 is far beyond any derivation, and ``dim = 10**18`` is refused before any symbol is made.
MAX_LAW_DIM = 10_000


def _names(name: str, dim: int | None) -> list[str]:
    """The data symbols' names, ``name`` or ``name0, ..., name{dim-1}``; the one check of every factory's
    ``name`` and ``dim``."""
    if dim is not None and (isinstance(dim, (bool, np.bool_)) or not isinstance(dim, (int, np.integer))
                            or dim < 1):
        raise ValueError(f"`dim` must be a positive integer or None; got {dim!r}.")
    if dim is not None and dim > MAX_LAW_DIM:
        raise ValueError(f"`dim` must be at most {MAX_LAW_DIM:,} (MAX_LAW_DIM: one sympy symbol per coordinate); "
                         f"got {dim!r}.")
    check_law_name(name, "name")
    return [name] if dim is None else [f"{name}{i}" for i in range(dim)]


def normal(name: str, dim: int | None = None, *, mean: Any = 0, std: Any = None,
           var: Any = None, cov: Any = None):
    r"""Gaussian data: a scalar, an independent vector, or a correlated vector.

    Parameters
    ----------
    name : str
        Symbol name; a vector of ``dim`` gets names ``name0, name1, ...``.
    dim : int, optional
        Vector length (at most :data:`MAX_LAW_DIM`); ``None`` for a scalar.
    mean : scalar or sequence
        Mean (may be symbolic).
    std, var : scalar or sequence, optional
        Standard deviation(s) or variance(s) of independent coordinates.
    cov : matrix, optional
        Covariance of a correlated vector (symmetric, positive definite).

    Returns
    -------
    DataSymbol or tuple of DataSymbol

    Examples
    --------
    >>> import sympy as sp, smfsym
    >>> a = smfsym.normal("a", 2)
    >>> a
    (a0, a1)
    >>> eps = smfsym.normal("eps", std=sp.Symbol("s", positive=True))
    >>> eps.law.std
    s
    """
    if sum(x is not None for x in (std, var, cov)) > 1:
        raise ValueError("give at most one of `std`, `var` and `cov`.")
    names = _names(name, dim)
    k = len(names)

    def per_coord(v, arg):
        if v is None:
            return [None] * k
        if isinstance(v, (list, tuple, np.ndarray, sp.MatrixBase)):
            v = list(sp.flatten(list(v)))
            if len(v) != k:
                raise ValueError(f"`{arg}` must have {k} entries; got {len(v)}.")
            return v
        return [v] * k

    means = per_coord(mean, "mean")
    if cov is not None:
        if isinstance(cov, (np.ndarray, sp.MatrixBase)):
            cov = cov.tolist()
        rows = [[cov]] if not isinstance(cov, (list, tuple)) else cov
        try:
            C = sp.Matrix([[_s(c, "cov") for c in (row if isinstance(row, (list, tuple)) else [row])]
                           for row in rows])
        except ValueError as exc:
            if "`cov`" in str(exc):
                raise
            raise ValueError(f"`cov` must be a {k}x{k} matrix; got {cov!r}.") from None
        if C.shape != (k, k):
            raise ValueError(f"`cov` must be a {k}x{k} matrix; got shape {C.shape}.")
        off_diag_zero = all(C[i, j] == 0 for i in range(k) for j in range(k) if i != j)
        if not off_diag_zero:
            law = MultivariateNormal(names, [_s(m, "mean") for m in means], C)
            return law.symbols if dim is not None else law.symbols[0]
        stds = [sp.sqrt(C[i, i]) for i in range(k)]
    elif var is not None:
        stds = [sp.sqrt(_s(v, "var")) for v in per_coord(var, "var")]
    else:
        stds = [1 if s is None else s for s in per_coord(std, "std")]
    syms = tuple(Normal(n, m, s).symbol for n, m, s in zip(names, means, stds))
    return syms if dim is not None else syms[0]


def _iid(factory, name, dim, *args):
    syms = tuple(factory(n, *args).symbol for n in _names(name, dim))
    return syms if dim is not None else syms[0]


def uniform(name: str, a: Any = 0, b: Any = 1, dim: int | None = None):
    """Uniform data on [a, b] (i.i.d. coordinates if ``dim`` is given).

    >>> import smfsym
    >>> u = smfsym.uniform("u", -1, 1)
    >>> u.law.moment(2)
    1/3
    """
    return _iid(Uniform, name, dim, a, b)


def bernoulli(name: str, p: Any = sp.Rational(1, 2), dim: int | None = None):
    """Bernoulli(p) data on {0, 1}.

    >>> import sympy as sp, smfsym
    >>> smfsym.bernoulli("b", sp.Rational(1, 4)).law.moment(3)
    1/4
    """
    p = _s(p, "p")
    require(p >= 0, "p", "in [0, 1]", p)
    require(p <= 1, "p", "in [0, 1]", p)
    return _iid(lambda n: Finite(n, [0, 1], [1 - p, p], family="Bernoulli"), name, dim)


def rademacher(name: str, dim: int | None = None):
    """Rademacher data: +1 or -1 with probability 1/2 each.

    >>> import smfsym
    >>> smfsym.rademacher("r").law.moment(2)
    1
    """
    half = sp.Rational(1, 2)
    return _iid(lambda n: Finite(n, [-1, 1], [half, half], family="Rademacher"), name, dim)


def categorical(name: str, values: Sequence, weights: Sequence | None = None, dim: int | None = None):
    """Finite data: ``values`` with probabilities ``weights`` (uniform by default)."""
    return _iid(lambda n: Finite(n, values, weights, family="Categorical"), name, dim)


def exponential(name: str, rate: Any = 1, dim: int | None = None):
    """Exponential(rate) data."""
    return _iid(Exponential, name, dim, rate)


def gamma(name: str, shape: Any, scale: Any = 1, dim: int | None = None):
    """Gamma(shape, scale) data."""
    return _iid(Gamma, name, dim, shape, scale)


def beta(name: str, a: Any, b: Any, dim: int | None = None):
    """Beta(a, b) data on [0, 1]."""
    return _iid(Beta, name, dim, a, b)


def student_t(name: str, nu: Any, dim: int | None = None):
    """Student-t data with ``nu`` degrees of freedom."""
    return _iid(StudentT, name, dim, nu)


def empirical(data, names: Sequence[str] | str, weights=None) -> tuple:
    """An empirical data set: returns one data symbol per column.

    Parameters
    ----------
    data : array_like, shape (M, k)
        The samples (features and labels); copied, never modified.
    names : sequence of str, or a str as for ``sympy.symbols``
        Column names.
    weights : array_like, shape (M,), optional
        Sample weights: finite, non-negative, with a positive sum; normalised to
        sum to 1 (uniform by default). They weight F, Sigma, the chaos columns
        and the SGD sampler alike.

    Examples
    --------
    >>> import numpy as np, smfsym
    >>> z, y = smfsym.empirical(np.array([[0.0, 1.0], [2.0, -1.0]]), "z y")
    >>> z.law.size
    2
    """
    if isinstance(names, str):
        names = [str(s) for s in sp.symbols(names, seq=True)]
    return Empirical(data, list(names), weights).symbols


# --------------------------------------------------------------------------- sympy.stats


def law_from_sympy_stats(rv) -> DataSymbol:
    """Translate a ``sympy.stats`` random symbol into a smfsym data symbol."""
    from sympy.stats.crv_types import (BetaDistribution, CauchyDistribution, ExponentialDistribution,
                                       GammaDistribution, NormalDistribution, StudentTDistribution,
                                       UniformDistribution)
    from sympy.stats.frv import SingleFiniteDistribution

    # sympy.stats distribution -> the smfsym law with the same parameters
    translations = {
        NormalDistribution: lambda d: Normal(name, d.mean, d.std),
        UniformDistribution: lambda d: Uniform(name, d.left, d.right),
        ExponentialDistribution: lambda d: Exponential(name, d.rate),
        GammaDistribution: lambda d: Gamma(name, d.k, d.theta),
        BetaDistribution: lambda d: Beta(name, d.alpha, d.beta),
        StudentTDistribution: lambda d: StudentT(name, d.nu),
    }
    name = str(rv.symbol) if hasattr(rv, "symbol") else str(rv)
    dist = getattr(rv.pspace, "distribution", None)
    for kind, translate in translations.items():
        if isinstance(dist, kind):
            return translate(dist).symbol
    if isinstance(dist, CauchyDistribution):
        raise ValueError(
            f"the data law of {name!r} (Cauchy) has no mean or variance: F and Sigma do not exist."
        )
    if isinstance(dist, SingleFiniteDistribution):
        d = dict(dist.dict)
        return Finite(name, list(d.keys()), list(d.values()), family=type(dist).__name__.replace("Distribution", "")).symbol
    raise ValueError(
        f"the data law of {name!r} ({type(dist).__name__ if dist is not None else type(rv).__name__}) "
        f"is not supported; supported laws: {SUPPORTED_LAWS}."
    )
