"""Continuous laws: Normal, Uniform, Exponential, Gamma, Beta, Student-t, correlated Gaussian vectors."""
from __future__ import annotations

import itertools
from typing import Any, Sequence

import numpy as np
import sympy as sp

from ..._checks import require, to_float
from .base import Law, UnivariateLaw, _s

__all__ = ["Normal", "Uniform", "Exponential", "Gamma", "Beta", "StudentT", "MultivariateNormal"]



class Normal(UnivariateLaw):
    r"""Scalar Gaussian :math:`N(\mu, \sigma^2)`; basis He_k((xi-mu)/sigma)/sqrt(k!)."""

    family = "Normal"
    parameter_names = ('mean', 'std')

    def __init__(self, name: str, mean: Any = 0, std: Any = 1):
        self._set_parameters(name, ("std",), mean=mean, std=std)

    def _moment(self, n):
        mu, s = self.mean, self.std
        return sp.expand(sum(sp.binomial(n, k) * mu ** (n - k) * s**k * sp.factorial2(k - 1)
                             for k in range(0, n + 1, 2)))

    def _orthonormal(self, n):
        z = (self.symbol - self.mean) / self.std
        return [sp.expand(sp.hermite_prob(k, z) / sp.sqrt(sp.factorial(k))) for k in range(n + 1)]

    def _quadrature(self, n_points, values=None):
        from scipy.special import roots_hermitenorm  # here, not at import: scipy.special takes 0.1-0.3 s to load

        z, w = roots_hermitenorm(int(n_points))
        mu = to_float(self.mean, values, f"the mean of {self.symbol}")
        s = to_float(self.std, values, f"the std of {self.symbol}")
        return (mu + s * z)[:, None], w / w.sum()

    def _latex_law(self):
        return r"\mathcal{N}\left(" + sp.latex(self.mean) + ", " + sp.latex(self.std**2) + r"\right)"


class Uniform(UnivariateLaw):
    """Uniform law on [a, b]; basis: normalised Legendre polynomials."""

    family = "Uniform"
    parameter_names = ('a', 'b')
    _ordered = (("a", "b"),)

    def __init__(self, name: str, a: Any = 0, b: Any = 1):
        self._set_parameters(name, a=a, b=b,
                             check=lambda law: require(law.b > law.a, "b", f"greater than a = {law.a}", b))

    def _moment(self, n):
        a, b = self.a, self.b
        return sp.factor(sp.cancel((b ** (n + 1) - a ** (n + 1)) / ((n + 1) * (b - a))))

    def _orthonormal(self, n):
        t = 2 * (self.symbol - self.a) / (self.b - self.a) - 1
        return [sp.expand(sp.sqrt(2 * k + 1) * sp.legendre(k, t)) for k in range(n + 1)]

    def _quadrature(self, n_points, values=None):
        t, w = np.polynomial.legendre.leggauss(n_points)
        a = to_float(self.a, values, f"the lower end of {self.symbol}")
        b = to_float(self.b, values, f"the upper end of {self.symbol}")
        return (a + (b - a) * (t + 1) / 2)[:, None], w / w.sum()

    def _latex_law(self):
        return r"\mathcal{U}\left[" + sp.latex(self.a) + ", " + sp.latex(self.b) + r"\right]"


class Exponential(UnivariateLaw):
    """Exponential law with ``rate``; basis: Laguerre polynomials L_k(rate xi)."""

    family = "Exponential"
    parameter_names = ('rate',)

    def __init__(self, name: str, rate: Any = 1):
        self._set_parameters(name, ("rate",), rate=rate)

    def _moment(self, n):
        return sp.factorial(n) / self.rate**n

    def _orthonormal(self, n):
        return [sp.expand(sp.laguerre(k, self.rate * self.symbol)) for k in range(n + 1)]

    # scipy's Laguerre weights are finite up to 256 points and NaN at 512 (numpy's laggauss: NaN from 200)
    max_quadrature_points = 256

    def _quadrature(self, n_points, values=None):
        from scipy.special import roots_laguerre

        t, w = roots_laguerre(int(n_points))
        r = to_float(self.rate, values, f"the rate of {self.symbol}")
        return (t / r)[:, None], w / w.sum()

    def _latex_law(self):
        return r"\mathrm{Exp}\left(" + sp.latex(self.rate) + r"\right)"


class Gamma(UnivariateLaw):
    """Gamma law (shape k, scale theta); basis: generalised Laguerre L_n^(k-1)(xi/theta)."""

    family = "Gamma"
    parameter_names = ('shape', 'scale')

    def __init__(self, name: str, shape: Any, scale: Any = 1):
        self._set_parameters(name, ("shape", "scale"), shape=shape, scale=scale)

    def _moment(self, n):
        return sp.expand(self.scale**n * sp.rf(self.shape, n))

    def _orthonormal(self, n):
        k, th = self.shape, self.scale
        out = []
        for m in range(n + 1):
            norm = sp.sqrt(sp.factorial(m) / sp.rf(k, m))
            out.append(sp.expand(norm * sp.assoc_laguerre(m, k - 1, self.symbol / th)))
        return out

    max_quadrature_points = 256  # as Exponential: generalised Laguerre weights are NaN at 512 points

    def _quadrature(self, n_points, values=None):
        from scipy.special import roots_genlaguerre

        k = to_float(self.shape, values, f"the shape of {self.symbol}")
        th = to_float(self.scale, values, f"the scale of {self.symbol}")
        t, w = roots_genlaguerre(n_points, k - 1)
        with np.errstate(all="ignore"):
            w = w / w.sum()
        if not (np.all(np.isfinite(t)) and np.all(np.isfinite(w))):
            # scipy's weights sum to Gamma(k), which overflows from k ~ 171.6 (w / w.sum() is then NaN): the
            # normalised weights from the recurrence instead; the old route is kept wherever it is finite
            t, w = genlaguerre_golub_welsch(int(n_points), k - 1)
        return (th * t)[:, None], w

    def _latex_law(self):
        # shape k and scale theta named (Gamma(a, b) is also written shape-rate); no words: the printer relabels
        # a user's multi-letter symbols (`shape`, `scale`) everywhere in this string
        return r"\Gamma\left(k = " + sp.latex(self.shape) + r",\ \theta = " + sp.latex(self.scale) + r"\right)"


def genlaguerre_golub_welsch(n: int, alpha: float):
    r"""Gauss rule of the weight :math:`x^\alpha e^{-x}` on :math:`(0, \infty)` with weights summing to 1.

    Golub-Welsch: the nodes are the eigenvalues of the Jacobi matrix of the monic generalised Laguerre
    recurrence (diagonal :math:`2i + \alpha + 1`, off-diagonal :math:`\sqrt{i (i + \alpha)}`), the weights
    the squared first components of its normalised eigenvectors. Nothing of the size of
    :math:`\Gamma(\alpha + 1)` is formed, so it holds for every shape.
    """
    from scipy.linalg import eigh_tridiagonal

    i = np.arange(n, dtype=float)
    diag = 2.0 * i + alpha + 1.0
    off = np.sqrt(i[1:] * (i[1:] + alpha))
    if n == 1:
        return diag.copy(), np.ones(1)
    t, v = eigh_tridiagonal(diag, off)
    w = v[0, :] ** 2
    return t, w / w.sum()


class Beta(UnivariateLaw):
    """Beta(a, b) on [0, 1]; basis: normalised Jacobi P_n^(b-1, a-1)(2 xi - 1)."""

    family = "Beta"
    parameter_names = ('a', 'b')

    def __init__(self, name: str, a: Any, b: Any):
        self._set_parameters(name, ("a", "b"), a=a, b=b)

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

    def _quadrature(self, n_points, values=None):
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
    parameter_names = ('nu',)

    def __init__(self, name: str, nu: Any):
        self._set_parameters(name, ("nu",), nu=nu)
        if not self.nu.is_number:
            # which moments exist depends on nu (E t^k needs nu > k): with nu symbolic, E t and E t^3 read 0 and
            # E t^2 = nu/(nu - 2) whatever nu is, and no moment check can run
            raise ValueError(f"`nu` must be a number: which moments of a Student-t law exist depends on it "
                             f"(E t^k needs nu > k); got the symbolic {self.nu}.")

    def max_moment(self):
        if self.nu.is_number:
            return int(sp.ceiling(self.nu)) - 1
        return None

    def _moment(self, n):
        if n % 2:
            return sp.S.Zero
        m = n // 2
        return sp.factor(self.nu**m * sp.Mul(*[(2 * i - 1) / (self.nu - 2 * i) for i in range(1, m + 1)]))

    def _quadrature(self, n_points, values=None):
        # Gauss-Legendre on the probability scale: heavy tails have no classical Gauss rule.
        from scipy.stats import t as tdist

        nu = to_float(self.nu, values, f"the degrees of freedom of {self.symbol}")
        u, w = np.polynomial.legendre.leggauss(n_points)
        return tdist.ppf((u + 1) / 2, nu)[:, None], w / w.sum()

    def _latex_law(self):
        return r"t_{" + sp.latex(self.nu) + "}"


class MultivariateNormal(Law):
    """Correlated Gaussian vector N(mean, cov); moments by Isserlis, basis after whitening."""

    family = "MultivariateNormal"

    def __init__(self, names: Sequence[str], mean, cov):
        k = len(names)
        self.mean = sp.ImmutableMatrix([_s(m, "mean") for m in sp.flatten(list(mean))])
        cov = cov.tolist() if isinstance(cov, (np.ndarray, sp.MatrixBase)) else cov
        try:
            self.cov = sp.ImmutableMatrix([[_s(c, "cov") for c in row] for row in cov])
        except TypeError as exc:
            if "`cov`" in str(exc):
                raise
            raise TypeError(f"`cov` must be a {k}x{k} matrix of numbers or sympy expressions; got {cov!r}.") \
                from None
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
        self._make_symbols(names, "names")
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

    def _check_numeric(self, values) -> None:
        cov = np.array([[to_float(c, values, "the covariance of a Gaussian vector") for c in row]
                        for row in self.cov.tolist()])
        ev = np.linalg.eigvalsh(cov)
        if not ev.min() > 0:
            self._refuse_value("the covariance", self.cov.tolist(), float(ev.min()),
                               "positive definite (its smallest eigenvalue is shown)")

    def _quadrature(self, n_points, values=None):
        from scipy.special import roots_hermitenorm  # here, not at import: scipy.special takes 0.1-0.3 s to load

        z, w = roots_hermitenorm(int(n_points))
        grid = np.array(list(itertools.product(z, repeat=self.dim)))
        wt = np.prod(np.array(list(itertools.product(w / w.sum(), repeat=self.dim))), axis=1)
        mu = np.array([to_float(m, values, "the mean of a Gaussian vector") for m in self.mean])
        cov = np.array([[to_float(c, values, "the covariance of a Gaussian vector") for c in row]
                        for row in self.cov.tolist()])
        return mu + grid @ np.linalg.cholesky(cov).T, wt

    def _latex_law(self):
        return r"\mathcal{N}\left(" + sp.latex(self.mean) + ", " + sp.latex(self.cov) + r"\right)"
