"""Base classes of the data laws: :class:`DataSymbol`, :class:`Law`, :class:`UnivariateLaw`.

See :mod:`smfsym.data.laws` for the overview.
"""
from __future__ import annotations

import itertools
import uuid
from functools import lru_cache
from typing import Any, Mapping, Sequence

import numpy as np
import sympy as sp
from ..._checks import as_expr, require, to_float
from ..._checks import as_number_or_expr
from ..samplers import samplers_for

__all__ = ["DataSymbol", "Law", "UnivariateLaw", "SUPPORTED_LAWS", "check_law_name"]

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


def _s(x: Any, argument: str = "a law parameter") -> sp.Expr:
    """A law parameter as a sympy expression: finite numbers or sympy objects, never strings.

    Floats become exact rationals (moments stay exact); NaN and infinities are refused.
    """

    e = as_number_or_expr(x, argument)
    if isinstance(x, (float, np.floating)):
        return as_expr(float(x), rational=True)
    return e


def check_law_name(name, argument: str = "name") -> str:
    """A data symbol's name: a Python identifier that is not a keyword, so that printed, compiled and generated
    code can name it (``"x y"`` or ``"1x"`` would make a symbol no generated simulator can name).

    Examples
    --------
    >>> check_law_name("xi0")
    'xi0'
    >>> check_law_name("x y")
    Traceback (most recent call last):
    ...
    ValueError: `name` must be a Python identifier (letters, digits and _, not starting with a digit, not a keyword), so that generated code can name the data symbol; got 'x y'.
    """
    import keyword

    if not isinstance(name, str) or not name:
        raise TypeError(f"`{argument}` must be a non-empty string; got {name!r}.")
    if not name.isidentifier() or keyword.iskeyword(name):
        raise ValueError(f"`{argument}` must be a Python identifier (letters, digits and _, not starting with a "
                         f"digit, not a keyword), so that generated code can name the data symbol; got {name!r}.")
    return name


class Law:
    """Base class of a data law over ``symbols`` (one block of coordinates)."""

    family = "law"
    is_finite = False
    #: the most points per coordinate the law's Gauss rule is computed reliably with (None: no bound below
    #: ``Limits.max_quad_points``); refinement stops there and warns if the mean is not resolved yet
    max_quadrature_points: int | None = None
    symbols: tuple

    def _make_symbols(self, names: Sequence[str], argument: str = "name") -> tuple:
        names = [check_law_name(n, argument) for n in names]
        # creation order first (stable sorting), then a random part: a law unpickled in another
        # process must never share its token (and so its symbols' identity) with a local law
        token = f"{next(_counter):012d}-{uuid.uuid4().hex[:16]}"
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
            out |= as_expr(p).free_symbols
        return out

    def max_moment(self) -> int | None:
        """Highest moment order known to exist (``None``: all exist)."""
        return None

    def moment(self, powers: tuple) -> sp.Expr:  # pragma: no cover - abstract
        raise NotImplementedError

    def sample(self, rng: np.random.Generator, n: int, values: Mapping | None = None) -> np.ndarray:
        """``n`` samples, shape (n, k), with numpy's Generator methods (parameters from ``values``)."""

        (sampler,) = samplers_for([self], values)
        return sampler(rng, n).T

    def quadrature(self, n_points: int | None = None, values: Mapping | None = None):
        """Numeric rule ``(nodes (Q, k), weights (Q,))`` with weights summing to 1.

        Numbers given to symbolic parameters (``values``, or a substitution recorded on a data mean) are
        checked first as the factory checks its arguments (:meth:`check_values`).
        """
        self.check_values(values)
        return self._quadrature(n_points, values)

    def _quadrature(self, n_points, values):  # pragma: no cover - abstract
        raise NotImplementedError

    def check_values(self, values: Mapping | None) -> None:
        """Refuse numbers for the law's symbolic parameters that its factory would have refused
        (``exponential(rate=r)`` with ``r = -2``: a negative rate, accepted later, gave a meaningless mean)."""
        if not self.free_symbols:
            return  # numeric parameters: checked when the law was made
        self._check_numeric(values)

    def _check_numeric(self, values) -> None:
        """Raise ``ValueError`` if the parameters at ``values`` are out of range (subclasses)."""

    def _refuse_value(self, what: str, expr, value: float, expected: str) -> None:
        names = ", ".join(s.name for s in self.symbols[:4])
        raise ValueError(f"{what} of the {self.family} law of {names} ({expr}) must be {expected}; got {value:g} "
                         f"(a number given by `values` or a substitution).")

    def latex(self) -> str:
        return sp.latex(sp.Tuple(*self.symbols)) + r" \sim " + self._latex_law()

    def _latex_law(self) -> str:
        return r"\mathrm{" + self.family + "}"

    def __repr__(self) -> str:
        names = ", ".join(s.name for s in self.symbols)
        return f"{type(self).__name__}({names}; {', '.join(map(str, self.parameters))})"


class UnivariateLaw(Law):
    """A law of one scalar coordinate, with its own orthonormal polynomials."""

    #: the names of the law's parameters, in the order of :attr:`parameters`
    parameter_names: tuple = ()

    def _set_parameters(self, name: str, positive: tuple = (), check=None, **values) -> None:
        """Store each parameter as a sympy expression, refuse a provably non-positive one of
        ``positive`` (symbolic parameters pass) or one that ``check(self)`` refuses, and only
        then make the law's data symbol."""
        for key, value in values.items():
            setattr(self, key, _s(value, key))
        for key in positive:
            require(getattr(self, key) > 0, key, "positive", values[key])
        if check is not None:
            check(self)
        self._positive = tuple(positive)
        self._make_symbols([name])

    #: the parameters that must be positive (set by :meth:`_set_parameters`), and the ``(smaller, larger)``
    #: pairs that must be ordered (a uniform law's ends): what :meth:`check_values` checks at numbers
    _positive: tuple = ()
    _ordered: tuple = ()

    def _check_numeric(self, values) -> None:
        num = {key: to_float(getattr(self, key), values, f"the {key} of {self.symbol}")
               for key in self.parameter_names}
        for key in self._positive:
            if not num[key] > 0:
                self._refuse_value(f"the {key}", getattr(self, key), num[key], "positive")
        for lo, hi in self._ordered:
            if not num[hi] > num[lo]:
                self._refuse_value(f"the {hi}", getattr(self, hi), num[hi], f"greater than {lo} = {num[lo]:g}")

    @property
    def parameters(self) -> tuple:
        return tuple(getattr(self, key) for key in self.parameter_names)

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
                "a mean over the data needs it (F, grad F, Sigma, or E phi of a study)."
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
        # coefficient vectors times a moment table: no expansion of xi^m p_j (n^2 of them)
        coeffs = [sp.Poly(p, xi).all_coeffs()[::-1] for p in ps]
        top = n + max(len(c) for c in coeffs) - 1
        mom = [self.moment(k) for k in range(top + 1)]
        tidy = sp.simplify if self.free_symbols else sp.expand
        return [[tidy(sp.Add(*[c * mom[m + i] for i, c in enumerate(cs)])) for cs in coeffs]
                for m in range(n + 1)]
