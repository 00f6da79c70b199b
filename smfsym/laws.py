"""Data laws: the distribution nu of one data sample xi (MATH.md section 1).

One class per law plus a short factory (as in ``sympy.stats``). A factory
returns the *data symbols* that stand for the sample's coordinates; they enter
the loss like ordinary sympy symbols and carry their law with them, so a
:class:`~smfsym.Problem` finds the data law from the loss alone.

Each law knows
- its moments (exactly, symbolically in its parameters) -- for fast expectations,
- an orthonormal polynomial basis of L^2(law) (Hermite, Legendre, Laguerre,
  Jacobi, discrete Gram-Schmidt) -- for the cylindrical-noise expansion, MATH.md s.3,
- a numeric Gauss rule -- for expectations of non-polynomial expressions,
- a numpy sampler -- for SGD.

Parameters may be symbolic; they are checked only where a condition is provably
false, and need numeric ``values`` only when sampling or integrating numerically.
"""
from __future__ import annotations

import hashlib
import itertools
from functools import lru_cache
from typing import Any, Mapping, Sequence

import numpy as np
import sympy as sp

from ._checks import finite_array, require, to_float

__all__ = [
    "DataSymbol",
    "Law",
    "UnivariateLaw",
    "Normal",
    "MultivariateNormal",
    "Uniform",
    "Finite",
    "Exponential",
    "Gamma",
    "Beta",
    "StudentT",
    "Empirical",
    "normal",
    "uniform",
    "bernoulli",
    "rademacher",
    "categorical",
    "exponential",
    "gamma",
    "beta",
    "student_t",
    "empirical",
    "law_from_sympy_stats",
    "SUPPORTED_LAWS",
]

SUPPORTED_LAWS = (
    "Normal (scalar, vector, correlated), Uniform, Bernoulli, Rademacher, "
    "categorical/finite, Exponential, Gamma, Beta, Student-t, empirical data sets; "
    "from sympy.stats: Normal, Uniform, Bernoulli, DiscreteUniform, FiniteRV, Die, "
    "Exponential, Gamma, Beta, StudentT"
)

_counter = itertools.count()


def _rebuild_data_symbol(name, law, index, token, assumptions):
    return DataSymbol(name, law, index, token, **assumptions)


class DataSymbol(sp.Symbol):
    """A symbol for one coordinate of a data sample; ``.law`` is its law.

    Two data symbols are equal only if they were made together, even if their
    names agree.
    """

    __slots__ = ("law", "index", "_token")

    def __new__(cls, name: str, law: "Law", index: int, token: str, **assumptions):
        assumptions.setdefault("real", True)
        obj = sp.Symbol.__xnew__(cls, name, **assumptions)
        obj.law = law
        obj.index = index
        obj._token = token
        return obj

    def _hashable_content(self):
        return super()._hashable_content() + (self._token,)

    def __reduce__(self):
        return (_rebuild_data_symbol,
                (self.name, self.law, self.index, self._token, self._assumptions_orig))


def _s(x: Any) -> sp.Expr:
    return sp.sympify(x, rational=True) if isinstance(x, float) else sp.sympify(x)


class Law:
    """Base class of a data law over ``symbols`` (one block of coordinates)."""

    family = "law"
    is_finite = False
    symbols: tuple

    def _make_symbols(self, names: Sequence[str]) -> tuple:
        token = f"{next(_counter)}"
        self.symbols = tuple(DataSymbol(n, self, i, token) for i, n in enumerate(names))
        return self.symbols

    @property
    def dim(self) -> int:
        return len(self.symbols)

    @property
    def parameters(self) -> tuple:
        """The law's own parameters (sympy expressions)."""
        return ()

    @property
    def free_symbols(self) -> set:
        out: set = set()
        for p in self.parameters:
            out |= sp.sympify(p).free_symbols
        return out

    def max_moment(self) -> int | None:
        """Highest moment order known to exist (``None``: all exist)."""
        return None

    def moment(self, powers: tuple) -> sp.Expr:  # pragma: no cover - abstract
        raise NotImplementedError

    def sample(self, rng: np.random.Generator, n: int, values: Mapping | None = None) -> np.ndarray:
        """``n`` samples, shape (n, k), with numpy's Generator methods (parameters from ``values``)."""
        from .samplers import samplers_for

        (sampler,) = samplers_for([self], values)
        return sampler(rng, n).T

    def quadrature(self, n_points: int, values: Mapping | None = None):
        """Numeric rule ``(nodes (Q, k), weights (Q,))`` with weights summing to 1."""
        raise NotImplementedError  # pragma: no cover

    def latex(self) -> str:
        return sp.latex(sp.Tuple(*self.symbols)) + r" \sim " + self._latex_law()

    def _latex_law(self) -> str:
        return r"\mathrm{" + self.family + "}"

    def __repr__(self) -> str:
        names = ", ".join(s.name for s in self.symbols)
        return f"{type(self).__name__}({names}; {', '.join(map(str, self.parameters))})"


class UnivariateLaw(Law):
    """A law of one scalar coordinate, with its own orthonormal polynomials."""

    @property
    def symbol(self) -> DataSymbol:
        return self.symbols[0]

    def moment(self, powers) -> sp.Expr:
        n = powers[0] if isinstance(powers, tuple) else int(powers)
        return self._moment_cached(int(n))

    @lru_cache(maxsize=None)
    def _moment_cached(self, n: int) -> sp.Expr:
        if n == 0:
            return sp.S.One
        top = self.max_moment()
        if top is not None and n > top:
            raise ValueError(
                f"the {n}-th moment of {self!r} does not exist (moments exist up to order {top}); "
                "the loss needs it for F, grad F or Sigma."
            )
        return self._moment(n)

    def _moment(self, n: int) -> sp.Expr:  # pragma: no cover - abstract
        raise NotImplementedError

    def max_basis_degree(self) -> int | None:
        """Largest degree of an orthonormal polynomial (``None``: unbounded)."""
        top = self.max_moment()
        return None if top is None else top // 2

    def orthonormal_polynomials(self, n: int) -> list:
        """Orthonormal polynomials p_0 = 1, ..., p_n of L^2(law) in :attr:`symbol`."""
        return list(self._ortho_cached(int(n)))

    @lru_cache(maxsize=None)
    def _ortho_cached(self, n: int) -> tuple:
        return tuple(self._orthonormal(n))

    def _orthonormal(self, n: int) -> list:
        return self._gram_schmidt(n)

    def _gram_schmidt(self, n: int) -> list:
        """Orthonormalise 1, xi, ..., xi^n with the moment functional (discrete laws, Student-t)."""
        xi = self.symbol
        top = self.max_basis_degree()
        if top is not None and n > top:
            n = top
        out: list = []
        for k in range(n + 1):
            p = xi**k
            for q in out:
                p = p - self.expect_poly(p * q) * q
            p = sp.expand(p)
            norm2 = sp.simplify(self.expect_poly(p * p))
            if norm2 == 0:
                break  # the support is exhausted: no more independent functions
            out.append(sp.expand(p / sp.sqrt(norm2)))
        return out

    def expect_poly(self, expr) -> sp.Expr:
        """Exact mean of a polynomial in :attr:`symbol` (through moments)."""
        poly = sp.Poly(sp.expand(expr), self.symbol)
        return sp.expand(sum(c * self.moment(m[0]) for m, c in poly.terms()))

    def monomial_coefficients(self, n: int, degree: int) -> list:
        """``c[m][j] = E[xi^m p_j(xi)]`` for m <= n, j <= degree: monomials in the basis."""
        ps = self.orthonormal_polynomials(degree)
        xi = self.symbol
        return [[sp.simplify(self.expect_poly(xi**m * p)) for p in ps] for m in range(n + 1)]


# --------------------------------------------------------------------------- continuous


class Normal(UnivariateLaw):
    r"""Scalar Gaussian :math:`N(\mu, \sigma^2)`; basis He_k((xi-mu)/sigma)/sqrt(k!)."""

    family = "Normal"

    def __init__(self, name: str, mean: Any = 0, std: Any = 1):
        self.mean, self.std = _s(mean), _s(std)
        require(self.std > 0, "std", "positive", std)
        self._make_symbols([name])

    @property
    def parameters(self):
        return (self.mean, self.std)

    def _moment(self, n):
        mu, s = self.mean, self.std
        return sp.expand(sum(sp.binomial(n, k) * mu ** (n - k) * s**k * sp.factorial2(k - 1)
                             for k in range(0, n + 1, 2)))

    def _orthonormal(self, n):
        z = (self.symbol - self.mean) / self.std
        return [sp.expand(sp.hermite_prob(k, z) / sp.sqrt(sp.factorial(k))) for k in range(n + 1)]

    def quadrature(self, n_points, values=None):
        z, w = np.polynomial.hermite_e.hermegauss(n_points)
        mu = to_float(self.mean, values, f"the mean of {self.symbol}")
        s = to_float(self.std, values, f"the std of {self.symbol}")
        return (mu + s * z)[:, None], w / w.sum()

    def _latex_law(self):
        return r"\mathcal{N}\left(" + sp.latex(self.mean) + ", " + sp.latex(self.std**2) + r"\right)"


class Uniform(UnivariateLaw):
    """Uniform law on [a, b]; basis: normalised Legendre polynomials."""

    family = "Uniform"

    def __init__(self, name: str, a: Any = 0, b: Any = 1):
        self.a, self.b = _s(a), _s(b)
        require(self.b > self.a, "b", f"greater than a = {self.a}", b)
        self._make_symbols([name])

    @property
    def parameters(self):
        return (self.a, self.b)

    def _moment(self, n):
        a, b = self.a, self.b
        return sp.factor(sp.cancel((b ** (n + 1) - a ** (n + 1)) / ((n + 1) * (b - a))))

    def _orthonormal(self, n):
        t = 2 * (self.symbol - self.a) / (self.b - self.a) - 1
        return [sp.expand(sp.sqrt(2 * k + 1) * sp.legendre(k, t)) for k in range(n + 1)]

    def quadrature(self, n_points, values=None):
        t, w = np.polynomial.legendre.leggauss(n_points)
        a = to_float(self.a, values, f"the lower end of {self.symbol}")
        b = to_float(self.b, values, f"the upper end of {self.symbol}")
        return (a + (b - a) * (t + 1) / 2)[:, None], w / w.sum()

    def _latex_law(self):
        return r"\mathcal{U}\left[" + sp.latex(self.a) + ", " + sp.latex(self.b) + r"\right]"


class Exponential(UnivariateLaw):
    """Exponential law with ``rate``; basis: Laguerre polynomials L_k(rate xi)."""

    family = "Exponential"

    def __init__(self, name: str, rate: Any = 1):
        self.rate = _s(rate)
        require(self.rate > 0, "rate", "positive", rate)
        self._make_symbols([name])

    @property
    def parameters(self):
        return (self.rate,)

    def _moment(self, n):
        return sp.factorial(n) / self.rate**n

    def _orthonormal(self, n):
        return [sp.expand(sp.laguerre(k, self.rate * self.symbol)) for k in range(n + 1)]

    def quadrature(self, n_points, values=None):
        t, w = np.polynomial.laguerre.laggauss(n_points)
        r = to_float(self.rate, values, f"the rate of {self.symbol}")
        return (t / r)[:, None], w / w.sum()

    def _latex_law(self):
        return r"\mathrm{Exp}\left(" + sp.latex(self.rate) + r"\right)"


class Gamma(UnivariateLaw):
    """Gamma law (shape k, scale theta); basis: generalised Laguerre L_n^(k-1)(xi/theta)."""

    family = "Gamma"

    def __init__(self, name: str, shape: Any, scale: Any = 1):
        self.shape, self.scale = _s(shape), _s(scale)
        require(self.shape > 0, "shape", "positive", shape)
        require(self.scale > 0, "scale", "positive", scale)
        self._make_symbols([name])

    @property
    def parameters(self):
        return (self.shape, self.scale)

    def _moment(self, n):
        return sp.expand(self.scale**n * sp.rf(self.shape, n))

    def _orthonormal(self, n):
        k, th = self.shape, self.scale
        out = []
        for m in range(n + 1):
            norm = sp.sqrt(sp.factorial(m) / sp.rf(k, m))
            out.append(sp.expand(norm * sp.assoc_laguerre(m, k - 1, self.symbol / th)))
        return out

    def quadrature(self, n_points, values=None):
        from scipy.special import roots_genlaguerre

        k = to_float(self.shape, values, f"the shape of {self.symbol}")
        th = to_float(self.scale, values, f"the scale of {self.symbol}")
        t, w = roots_genlaguerre(n_points, k - 1)
        return (th * t)[:, None], w / w.sum()

    def _latex_law(self):
        return r"\Gamma\left(" + sp.latex(self.shape) + ", " + sp.latex(self.scale) + r"\right)"


class Beta(UnivariateLaw):
    """Beta(a, b) on [0, 1]; basis: normalised Jacobi P_n^(b-1, a-1)(2 xi - 1)."""

    family = "Beta"

    def __init__(self, name: str, a: Any, b: Any):
        self.a, self.b = _s(a), _s(b)
        require(self.a > 0, "a", "positive", a)
        require(self.b > 0, "b", "positive", b)
        self._make_symbols([name])

    @property
    def parameters(self):
        return (self.a, self.b)

    def _moment(self, n):
        a, b = self.a, self.b
        return sp.factor(sp.Mul(*[(a + r) / (a + b + r) for r in range(n)]))

    def _orthonormal(self, n):
        a, b = self.a, self.b
        out = []
        for m in range(n + 1):
            if m == 0:
                out.append(sp.S.One)
                continue
            norm2 = (sp.rf(a, m) * sp.rf(b, m)
                     / ((2 * m + a + b - 1) * sp.rf(a + b, m - 1) * sp.factorial(m)))
            p = sp.jacobi(m, b - 1, a - 1, 2 * self.symbol - 1)
            out.append(sp.expand(p / sp.sqrt(sp.factor(norm2))))
        return out

    def quadrature(self, n_points, values=None):
        from scipy.special import roots_jacobi

        a = to_float(self.a, values, f"the parameter a of {self.symbol}")
        b = to_float(self.b, values, f"the parameter b of {self.symbol}")
        t, w = roots_jacobi(n_points, b - 1, a - 1)
        return ((t + 1) / 2)[:, None], w / w.sum()

    def _latex_law(self):
        return r"\mathrm{Beta}\left(" + sp.latex(self.a) + ", " + sp.latex(self.b) + r"\right)"


class StudentT(UnivariateLaw):
    """Student-t with ``nu`` degrees of freedom: moments exist only below order nu."""

    family = "StudentT"

    def __init__(self, name: str, nu: Any):
        self.nu = _s(nu)
        require(self.nu > 0, "nu", "positive", nu)
        self._make_symbols([name])

    @property
    def parameters(self):
        return (self.nu,)

    def max_moment(self):
        if self.nu.is_number:
            return int(sp.ceiling(self.nu)) - 1
        return None

    def _moment(self, n):
        if n % 2:
            return sp.S.Zero
        m = n // 2
        return sp.factor(self.nu**m * sp.Mul(*[(2 * i - 1) / (self.nu - 2 * i) for i in range(1, m + 1)]))

    def quadrature(self, n_points, values=None):
        # Gauss-Legendre on the probability scale: heavy tails have no classical Gauss rule.
        from scipy.stats import t as tdist

        nu = to_float(self.nu, values, f"the degrees of freedom of {self.symbol}")
        u, w = np.polynomial.legendre.leggauss(n_points)
        return tdist.ppf((u + 1) / 2, nu)[:, None], w / w.sum()

    def _latex_law(self):
        return r"t_{" + sp.latex(self.nu) + "}"


# --------------------------------------------------------------------------- finite


class Finite(UnivariateLaw):
    """A finite law: ``values`` with probabilities ``weights`` (Bernoulli, Rademacher, categorical)."""

    family = "Finite"
    is_finite = True

    def __init__(self, name: str, values: Sequence, weights: Sequence | None = None, family: str = "Finite"):
        vals = [_s(v) for v in values]
        if len(vals) == 0:
            raise ValueError("`values` must hold at least one point; got an empty sequence.")
        if weights is None:
            weights = [sp.Rational(1, len(vals))] * len(vals)
        ws = [_s(w) for w in weights]
        if len(ws) != len(vals):
            raise ValueError(f"`weights` must have one entry per value ({len(vals)}); got {len(ws)}.")
        for w in ws:
            require(w >= 0, "weights", "non-negative", w)
        total = sp.simplify(sum(ws))
        require(sp.Eq(total, 1), "weights", "summing to 1", f"{list(weights)} (sum {total})")
        self.values, self.weights, self.family = tuple(vals), tuple(ws), family
        self._make_symbols([name])

    @property
    def parameters(self):
        return self.values + self.weights

    def _moment(self, n):
        return sp.expand(sum(w * v**n for v, w in zip(self.values, self.weights)))

    def max_basis_degree(self):
        return len(set(self.values)) - 1

    def quadrature(self, n_points=None, values=None):
        v = np.array([to_float(a, values, f"a value of {self.symbol}") for a in self.values])
        w = np.array([to_float(a, values, f"a weight of {self.symbol}") for a in self.weights])
        return v[:, None], w

    def _latex_law(self):
        if self.family == "Rademacher":
            return r"\mathrm{Rademacher}"
        if self.family == "Bernoulli":
            return r"\mathrm{Bernoulli}\left(" + sp.latex(self.weights[1]) + r"\right)"
        pairs = ", ".join(f"{sp.latex(v)}: {sp.latex(w)}" for v, w in zip(self.values, self.weights))
        return r"\mathrm{Cat}\left\{" + pairs + r"\right\}"


# --------------------------------------------------------------------------- blocks


class MultivariateNormal(Law):
    """Correlated Gaussian vector N(mean, cov); moments by Isserlis, basis after whitening."""

    family = "MultivariateNormal"

    def __init__(self, names: Sequence[str], mean, cov):
        k = len(names)
        self.mean = sp.ImmutableMatrix(mean)
        self.cov = sp.ImmutableMatrix(cov)
        if self.mean.shape != (k, 1):
            raise ValueError(f"`mean` must have {k} entries; got shape {self.mean.shape}.")
        if self.cov.shape != (k, k):
            raise ValueError(f"`cov` must be a {k}x{k} matrix; got shape {self.cov.shape}.")
        if self.cov != self.cov.T:
            raise ValueError(f"`cov` must be symmetric; got {self.cov.tolist()}.")
        if not self.cov.free_symbols:
            ev = np.linalg.eigvalsh(np.array(self.cov.evalf(), dtype=float))
            if ev.min() <= 0:
                raise ValueError(
                    f"`cov` must be positive definite; got eigenvalues {np.round(ev, 6).tolist()}."
                )
        self._make_symbols(names)
        self._centered: dict = {}

    @property
    def parameters(self):
        return tuple(self.mean) + tuple(self.cov)

    def _centered_moment(self, a: tuple) -> sp.Expr:
        # Isserlis recursion: E[z_i z^b] = sum_j C_ij b_j E[z^(b - e_j)].
        if a in self._centered:
            return self._centered[a]
        if sum(a) == 0:
            return sp.S.One
        if sum(a) % 2:
            return sp.S.Zero
        i = next(j for j, p in enumerate(a) if p)
        b = list(a)
        b[i] -= 1
        total = sp.S.Zero
        for j, bj in enumerate(b):
            if bj:
                c = list(b)
                c[j] -= 1
                total += self.cov[i, j] * bj * self._centered_moment(tuple(c))
        total = sp.expand(total)
        self._centered[a] = total
        return total

    def moment(self, powers: tuple) -> sp.Expr:
        powers = tuple(int(p) for p in powers)
        if all(m == 0 for m in self.mean):
            return self._centered_moment(powers)
        total = sp.S.Zero
        for b in itertools.product(*[range(p + 1) for p in powers]):
            coef = sp.Mul(*[sp.binomial(p, q) * mu ** (p - q) for p, q, mu in zip(powers, b, self.mean)])
            total += coef * self._centered_moment(tuple(b))
        return sp.expand(total)

    def whitening(self) -> sp.ImmutableMatrix:
        """Lower Cholesky factor L with cov = L L^T (xi = mean + L z, z ~ N(0, I))."""
        return sp.ImmutableMatrix(self.cov.cholesky(hermitian=False))

    def quadrature(self, n_points, values=None):
        z, w = np.polynomial.hermite_e.hermegauss(n_points)
        grid = np.array(list(itertools.product(z, repeat=self.dim)))
        wt = np.prod(np.array(list(itertools.product(w / w.sum(), repeat=self.dim))), axis=1)
        mu = np.array([to_float(m, values, "the mean of a Gaussian vector") for m in self.mean])
        cov = np.array([[to_float(c, values, "the covariance of a Gaussian vector") for c in row]
                        for row in self.cov.tolist()])
        return mu + grid @ np.linalg.cholesky(cov).T, wt

    def _latex_law(self):
        return r"\mathcal{N}\left(" + sp.latex(self.mean) + ", " + sp.latex(self.cov) + r"\right)"


class Empirical(Law):
    """An empirical data set: M numeric samples (rows), columns named by symbols.

    It stays numeric: its means are weighted sums over the rows, never M
    symbolic terms.
    """

    family = "Empirical"
    is_finite = True

    def __init__(self, data, names: Sequence[str], weights=None):
        arr = np.array(data, dtype=float, copy=True)
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2:
            raise ValueError(f"`data` must be an (M, k) array; got shape {arr.shape}.")
        if arr.shape[1] != len(names):
            raise ValueError(
                f"`names` must name every column of `data`: data has {arr.shape[1]} column(s), "
                f"names has {len(names)}."
            )
        if arr.shape[0] == 0:
            raise ValueError("`data` must hold at least one sample; got 0 rows.")
        finite_array(arr, "data")
        if weights is None:
            w = np.full(arr.shape[0], 1.0 / arr.shape[0])
        else:
            w = finite_array(weights, "weights", ndim=1).copy()
            if w.shape[0] != arr.shape[0]:
                raise ValueError(f"`weights` must have one entry per row ({arr.shape[0]}); got {w.shape[0]}.")
            if np.any(w < 0):
                raise ValueError("`weights` must be non-negative.")
            if abs(w.sum() - 1.0) > 1e-10:
                raise ValueError(f"`weights` must sum to 1; got sum {w.sum()!r}.")
        arr.setflags(write=False)
        w.setflags(write=False)
        self.data, self.weights = arr, w
        self.key = hashlib.sha1(arr.tobytes() + w.tobytes()).hexdigest()[:12]
        self._make_symbols(names)
        self._moments: dict = {}

    @property
    def size(self) -> int:
        return self.data.shape[0]

    @property
    def parameters(self):
        return ()

    def moment(self, powers: tuple) -> sp.Expr:
        powers = tuple(int(p) for p in powers)
        if powers not in self._moments:
            v = float(self.weights @ np.prod(self.data ** np.array(powers), axis=1))
            self._moments[powers] = sp.Float(v)
        return self._moments[powers]

    def quadrature(self, n_points=None, values=None):
        return self.data, self.weights

    def _latex_law(self):
        return r"\hat\nu_{" + str(self.size) + "}"

    def __repr__(self):
        return f"Empirical({', '.join(s.name for s in self.symbols)}; M={self.size})"


# --------------------------------------------------------------------------- factories


def _names(name: str, dim: int | None) -> list[str]:
    if not isinstance(name, str) or not name:
        raise TypeError(f"`name` must be a non-empty string; got {name!r}.")
    return [name] if dim is None else [f"{name}{i}" for i in range(dim)]


def normal(name: str, dim: int | None = None, *, mean: Any = 0, std: Any = None,
           var: Any = None, cov: Any = None):
    r"""Gaussian data: a scalar, an independent vector, or a correlated vector.

    Parameters
    ----------
    name : str
        Symbol name; a vector of ``dim`` gets names ``name0, name1, ...``.
    dim : int, optional
        Vector length; ``None`` for a scalar.
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
    if dim is not None and (not isinstance(dim, (int, np.integer)) or dim < 1):
        raise ValueError(f"`dim` must be a positive integer or None; got {dim!r}.")
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
        C = sp.Matrix(cov) if not isinstance(cov, (int, float, sp.Expr)) else sp.Matrix([[cov]])
        if C.shape != (k, k):
            raise ValueError(f"`cov` must be a {k}x{k} matrix; got shape {C.shape}.")
        C = C.applyfunc(lambda c: _s(c))
        off_diag_zero = all(C[i, j] == 0 for i in range(k) for j in range(k) if i != j)
        if not off_diag_zero:
            law = MultivariateNormal(names, [_s(m) for m in means], C)
            return law.symbols if dim is not None else law.symbols[0]
        stds = [sp.sqrt(C[i, i]) for i in range(k)]
    elif var is not None:
        stds = [sp.sqrt(_s(v)) for v in per_coord(var, "var")]
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
    p = _s(p)
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
        Sample weights summing to 1 (uniform by default).

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

    name = str(rv.symbol) if hasattr(rv, "symbol") else str(rv)
    dist = getattr(rv.pspace, "distribution", None)
    if isinstance(dist, NormalDistribution):
        return Normal(name, dist.mean, dist.std).symbol
    if isinstance(dist, UniformDistribution):
        return Uniform(name, dist.left, dist.right).symbol
    if isinstance(dist, ExponentialDistribution):
        return Exponential(name, dist.rate).symbol
    if isinstance(dist, GammaDistribution):
        return Gamma(name, dist.k, dist.theta).symbol
    if isinstance(dist, BetaDistribution):
        return Beta(name, dist.alpha, dist.beta).symbol
    if isinstance(dist, StudentTDistribution):
        return StudentT(name, dist.nu).symbol
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
