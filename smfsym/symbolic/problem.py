"""The problem: a per-sample loss f(x, xi) and the law of xi (docs/theory.md §1).

:class:`Problem` derives, lazily and once each, the full loss F = E f, its
gradient and Hessian, the gradient-noise covariance Sigma(x), the
cross-covariance Sigma(x, y) and the chaos expansion of f (docs/theory.md §3),
all scaled for the batch size.
"""
from __future__ import annotations

import math
import numbers
import sys
import warnings
from functools import cached_property
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import sympy as sp

from .._checks import as_symbol_tuple
from ..data.means import (
    _Moments, _NeedEX, covariance, covariance_products, covariance_terms, data_symbols, expectation,
    is_polynomial_in, laws_of, mean_terms, ring_terms,
)
from ..data.laws import DataSymbol, Empirical, law_from_sympy_stats
from ..limits import as_limits, check_products, check_size, estimate_size, expression_depth, refuse
from .._checks import as_expr
from ..data.tails import check_tails
from .noise_expansion import chaos_expansion
from .latex import problem_latex

__all__ = ["Problem", "NonDifferentiableWarning"]

_NONSMOOTH = (sp.Abs, sp.Max, sp.Min, sp.sign, sp.Heaviside, sp.Piecewise, sp.floor, sp.ceiling)


class NonDifferentiableWarning(UserWarning):
    """The loss has pieces that are not differentiable in the parameters."""


#: names the SDEs give their own symbols (the learning rate, time): a loss may not use them
MODEL_SYMBOL_NAMES = frozenset({"eta", "t"})


def _replace_sympy_stats(loss):
    # A loss can hold sympy.stats random symbols only if the caller imported sympy.stats; importing
    # it here otherwise cost about 0.25 s per process (most of a d = 10 derivation).
    rv = sys.modules.get("sympy.stats.rv")
    if rv is None:
        return loss
    rvs = loss.atoms(rv.RandomSymbol)
    if not rvs:
        return loss
    return loss.xreplace({rv: law_from_sympy_stats(rv) for rv in rvs})


_UNEVALUATED = (sp.Integral, sp.Derivative, sp.Subs, sp.Sum, sp.Product, sp.Limit, sp.Order)


def _check_loss_atoms(loss):
    """Refuse what has no numeric meaning as a real loss: NaN/infinite constants, complex numbers,
    undefined functions and unevaluated operators (docs/theory.md §8)."""
    bad = [a for a in (sp.nan, sp.oo, -sp.oo, sp.zoo) if loss.has(a)]
    if bad or any(not n.is_finite for n in loss.atoms(sp.Float)):
        raise ValueError(f"`loss` must be finite; it contains {', '.join(map(str, bad)) or 'a NaN/infinite float'}.")
    if loss.has(sp.I):
        raise ValueError("`loss` must be real; it contains the imaginary unit I.")
    undef = sorted({str(type(f)) for f in loss.atoms(sp.core.function.AppliedUndef)})
    if undef:
        raise ValueError(f"`loss` contains undefined function(s) {undef}: give them an explicit formula.")
    ops = sorted({type(a).__name__ for a in loss.atoms(*_UNEVALUATED)})
    if ops:
        raise ValueError(f"`loss` contains unevaluated {', '.join(ops)}: evaluate it first (e.g. .doit()).")


def _batch_size(b):
    if isinstance(b, (bool, np.bool_)) or b is sp.true or b is sp.false:
        raise TypeError(f"`batch_size` must be a positive integer, not a boolean; got {b!r}.")
    if isinstance(b, str):
        raise TypeError(f"`batch_size` must be a positive integer or a sympy symbol; got the string {b!r}.")
    if isinstance(b, (int, np.integer)):
        b = sp.Integer(int(b))
    elif isinstance(b, sp.Basic):
        pass
    else:
        raise TypeError(f"`batch_size` must be a positive integer or a sympy symbol; got {b!r} "
                        f"(of type {type(b).__name__}).")
    if not isinstance(b, sp.Expr) or (b.is_number and not (b.is_Integer and b >= 1)):
        raise ValueError(f"`batch_size` must be a positive integer; got {b!r}.")
    if not b.is_number and b.is_positive is False:
        raise ValueError(f"`batch_size` must be positive; got {b!r}, which is not.")
    taken = sorted({s.name for s in b.free_symbols} & MODEL_SYMBOL_NAMES)
    if taken:  # Sigma / B would print sqrt(eta)/sqrt(eta) and compile as the learning rate
        raise ValueError(f"`batch_size`: the name(s) {taken} are the models' own (eta: the learning rate, t: time); "
                         f"rename the symbol (e.g. B); got {b!r}.")
    return b


def exact_rationals(values: Mapping) -> dict:
    """``{symbol: sympy.Rational}``: each number of ``values`` as the exact rational of its double (what the
    simulators compute with), for exact moments of a problem whose constants ``values`` binds."""
    out = {}
    for key, value in dict(values).items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
            raise TypeError(f"`values[{key}]` must be a finite real number; got {value!r}.")
        out[key] = sp.Rational(float(value))
    return out


class Problem:
    r"""A learning problem: per-sample loss, parameters, data law, batch size.

    Parameters
    ----------
    loss : sympy expression
        The per-sample loss f(x, xi). Its data symbols (made with
        :func:`smfsym.normal` and friends, or ``sympy.stats`` random symbols)
        define the data law; independent laws multiply.
    params : sequence of sympy.Symbol
        The parameters x, in order.
    constants : sequence of sympy.Symbol, optional
        Other symbols allowed in the loss (regularisation weights, ...); law
        parameters are always allowed. No parameter, constant or law parameter
        may be named ``eta`` or ``t``: the models' learning rate and time are.
    batch_size : int or sympy.Symbol, default 1
        Mini-batch size B: Sigma is divided by B (docs/theory.md §1).
    sampling : {"iid", "without_replacement"}
        How batches are drawn; without replacement (from an empirical data set
        of M points) scales Sigma by (M - B) / (B (M - 1)).
    n_points : int, optional
        Points per coordinate of the Gauss rules used for non-polynomial losses
        (the starting size: quadrature means are refined to the tolerance of ``limits``).
    limits : smfsym.Limits, optional
        Resource limits checked before any expansion or integration starts
        (docs/theory.md §8); a :class:`~smfsym.ResourceLimitError` names the limit to raise.

    Notes
    -----
    Refused with a clear error (docs/theory.md §8): law parameters that depend on
    the parameters (the law of the data cannot move with x), distinct symbols that
    print the same, a symbol both parameter and constant, a loss whose size
    estimate exceeds ``limits``, and means or covariances that do not exist (moment
    and tail-growth rule, :func:`smfsym.data.tails.check_tails`).

    Examples
    --------
    The Gaussian quadratic example of docs/theory.md §3:

    >>> import sympy as sp, smfsym
    >>> x, s = sp.Symbol("x"), sp.Symbol("s", positive=True)
    >>> xi = smfsym.normal("xi", std=s)
    >>> p = smfsym.Problem((x - xi) ** 2 / 2, params=[x])
    >>> p.F
    s**2/2 + x**2/2
    >>> p.sigma
    Matrix([[s**2]])
    """

    def __init__(self, loss: Any, params: Iterable[sp.Symbol], *, constants: Iterable[sp.Symbol] = (),
                 batch_size: Any = 1, sampling: str = "iid", n_points: int | None = None,
                 limits: Any = None):
        self.limits = as_limits(limits)
        if isinstance(loss, str):
            raise TypeError("`loss` must be a sympy expression, not a string (strings are never parsed here).")
        try:
            loss = sp.sympify(loss, strict=True)
        except (sp.SympifyError, TypeError) as exc:
            raise TypeError(f"`loss` must be a sympy expression; got {loss!r}.") from exc
        if not isinstance(loss, sp.Expr) or getattr(loss, "is_Matrix", False) or getattr(loss, "shape", ()):
            raise TypeError(f"`loss` must be a scalar sympy expression; got {type(loss).__name__}.")
        _check_loss_atoms(loss)
        depth = expression_depth(loss)
        if depth > self.limits.max_depth:
            refuse("the loss is nested too deeply", depth, "max_depth", self.limits.max_depth)
        loss = _replace_sympy_stats(loss)
        self.params = as_symbol_tuple(params, "params")
        if not self.params:
            raise ValueError("`params` must name at least one parameter; got an empty sequence.")
        dparams = [p for p in self.params if isinstance(p, DataSymbol)]
        if dparams:
            raise ValueError(f"`params` must be ordinary symbols, not data symbols; got {dparams!r}.")
        self.constants = as_symbol_tuple(constants, "constants")
        both = sorted(map(str, set(self.params) & set(self.constants)))
        if both:
            raise ValueError(f"`constants` must not repeat parameters; {both} are in both.")
        self.loss = loss
        self.data = data_symbols(loss)
        self.laws = laws_of(self.data)
        law_params: set = set()
        for law in self.laws:
            moving = law.free_symbols & set(self.params)
            if moving:
                raise ValueError(
                    f"the law of {', '.join(s.name for s in law.symbols)} ({law!r}) depends on the "
                    f"parameter(s) {sorted(map(str, moving))}: the data law must not move with the trained "
                    "parameters (SGD samples from a fixed law). Use a constant, or reparametrise the loss "
                    "(e.g. std=s with xi = s * z, z ~ N(0, 1))."
                )
            law_params |= law.free_symbols
        self.law_parameters = tuple(sorted(law_params, key=sp.default_sort_key))
        self._check_names(law_params)
        unknown = loss.free_symbols - set(self.params) - set(self.data) - set(self.constants) - law_params
        if unknown:
            names = ", ".join(sorted(map(str, unknown)))
            raise ValueError(
                f"`loss` contains symbols that are neither parameters, data nor declared constants: "
                f"{names}. Add them to `params` or `constants`, or make them data with smfsym.normal(...) etc."
            )
        if not (loss.free_symbols & set(self.params)):
            raise ValueError(
                f"`loss` does not depend on the parameters {self.params}: there is nothing to learn."
            )
        self._check_size()
        self._warn_nonsmooth()
        self.batch_size = _batch_size(batch_size)
        if not isinstance(sampling, str) or sampling not in ("iid", "without_replacement"):
            raise ValueError(f"`sampling` must be 'iid' or 'without_replacement'; got {sampling!r}.")
        self.sampling = sampling
        if sampling == "without_replacement":
            if len(self.laws) != 1 or not isinstance(self.laws[0], Empirical):
                raise ValueError(
                    "`sampling='without_replacement'` needs the data to be one empirical data set; "
                    f"got laws {list(self.laws)}."
                )
            w = [float(v) for v in self.laws[0].weights]
            if self.laws[0].is_weighted:  # the (M - B)/(B (M - 1)) factor and the sampler assume equal weights
                raise ValueError("`sampling='without_replacement'` needs equally weighted rows (uniform subsets "
                                 f"of the data set); the data set has unequal weights "
                                 f"(from {min(w):.3g} to {max(w):.3g}). Use sampling='iid' for weighted rows.")
            M = self.laws[0].size
            if self.batch_size.is_number and self.batch_size > M:
                raise ValueError(f"`batch_size` must be at most the data set size {M}; got {batch_size!r}.")
        if n_points is not None and (isinstance(n_points, bool) or not isinstance(n_points, (int, np.integer))
                                     or not 1 <= n_points <= self.limits.max_quad_points):
            raise ValueError(f"`n_points` must be an integer in [1, {self.limits.max_quad_points}] "
                             f"(`Limits.max_quad_points`); got {n_points!r}.")
        self.n_points = None if n_points is None else int(n_points)
        self._check_moments()

    # ------------------------------------------------------------------ checks

    def _check_names(self, law_params=()):
        allsyms = (list(self.params) + list(self.data) + list(self.constants) + sorted(law_params, key=str)
                   + sorted(self.loss.free_symbols, key=str))
        reserved = sorted({s.name for s in allsyms if s.name.startswith("_smfsym")})
        if reserved:
            raise ValueError(f"symbol names starting with '_smfsym' are reserved for generated code; got {reserved}.")
        # (data symbols are bound by the means: a law named t never meets the time of a schedule)
        taken = sorted({s.name for s in allsyms if s.name in MODEL_SYMBOL_NAMES and not isinstance(s, DataSymbol)})
        if taken:
            raise ValueError(f"`loss`: the name(s) {taken} are the models' own (eta: the learning rate, t: time), "
                             "and a symbol of the loss with that name would print and compile as theirs; rename it "
                             "(e.g. eta0, lr, t0).")
        names: dict = {}
        for s in allsyms:
            names.setdefault(s.name, []).append(s)
        dup = sorted(n for n, v in names.items() if len(set(v)) > 1)
        if dup:
            kinds = []
            for n in dup:
                roles = []
                for s in dict.fromkeys(names[n]):
                    roles.append("data" if isinstance(s, DataSymbol) else "parameter" if s in self.params
                                 else "constant" if s in self.constants else "law parameter"
                                 if s in law_params else "a symbol with other assumptions")
                kinds.append(f"{n!r} ({' / '.join(roles)})")
            raise ValueError(
                f"`loss` has distinct symbols sharing the name(s) {', '.join(kinds)}: they would print and "
                "compile as one name. Rename them (e.g. two data laws both called 'a', or a constant named "
                "like a data variable)."
            )

    def _check_size(self):
        est = estimate_size(self.loss, self.data, set(self.params) | set(self.constants))
        check_size(est, self.limits)
        self.size_estimate = est

    def _warn_nonsmooth(self):
        pieces = [a for a in self.loss.atoms(*_NONSMOOTH) if a.free_symbols & set(self.params)]
        pw = [a for a in self.loss.atoms(sp.Piecewise)]
        pieces += [a for a in pw if a not in pieces]
        if pieces:
            where = "; ".join(sorted(str(p) for p in pieces))
            warnings.warn(
                f"the loss is not differentiable in the parameters at: {where}. Gradients use "
                "sympy's a.e. derivative; SME/SMF theory assumes a smooth loss.",
                NonDifferentiableWarning, stacklevel=3,
            )

    def _checked_gradient(self) -> sp.ImmutableMatrix:
        """grad_x f of the loss as written. A kink (Abs, sign, ...) in a parameter that sympy takes for complex
        differentiates to Derivative(re(x), x): refused here, naming the parameter, instead of failing later
        in code generation."""
        grad = sp.ImmutableMatrix([sp.diff(self.loss, p) for p in self.params])
        for p, g in zip(self.params, grad):
            left = sorted({str(d) for d in g.atoms(sp.Derivative)})
            if left:
                raise ValueError(
                    f"`params`: the derivative of `loss` in {p} is left unevaluated ({', '.join(left)}) because sympy "
                    f"takes {p} for complex; declare it real, e.g. sympy.Symbol({str(p)!r}, real=True).")
        return grad

    def _check_moments(self):
        if not self.is_polynomial:

            check_tails(self.loss, self.grad_f_compact, self.data)
            return
        degs = self._data_degrees
        if not any(s.law.max_moment() is not None for s in self.data):
            return
        grad_degs = self._gradient_data_degrees
        for i, s in enumerate(self.data):
            top = s.law.max_moment()
            # F needs the loss's degree; Sigma = Cov(grad f) twice the gradient's (docs/theory.md §8), which is
            # lower where the top power of xi comes without a parameter ((x - xi)^2/2: F needs E xi^2, Sigma too)
            need = max(degs[i], 2 * grad_degs[i])
            if top is not None and need > top:
                what = (f"Sigma needs order {need} (grad f has degree {grad_degs[i]} in {s})" if need > degs[i] else
                        f"F needs order {need} (the loss has degree {degs[i]} in {s})")
                raise ValueError(f"the law of {s} ({s.law!r}) has moments only up to order {top}, but {what}.")

    # ------------------------------------------------------------------ basics

    def bind_constants(self, values: Mapping) -> "Problem":
        """A copy with declared constants of the loss replaced by numbers (the exact rationals of the doubles).

        What the exact moments need where a run binds ``values`` (the studies bind a spec's constants so):
        the copy's moments are then numbers, and its numbers those the simulators get from ``values``. Only
        constants of the loss can be bound here; a law's parameter or a symbolic batch size raises
        ``ValueError`` naming it.

        Examples
        --------
        >>> import sympy as sp, smfsym
        >>> x, lam = sp.symbols("x lam")
        >>> p = smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2 + lam * x**2 / 2, [x], constants=[lam])
        >>> p.bind_constants({lam: 0.5}).F
        3*x**2/4 + 1/2
        """
        fixed = set(self.law_parameters) | set(as_expr(self.batch_size).free_symbols)
        for key in dict(values):
            if key not in self.constants or key in fixed:
                raise ValueError(f"`values`: {key} is not a constant of the loss only (the constants: "
                                 f"{list(self.constants)}; law parameters and the batch size are not bound here).")
        bound = exact_rationals(values)
        return Problem(self.loss.xreplace(bound), self.params,
                       constants=[c for c in self.constants if c not in bound], batch_size=self.batch_size,
                       sampling=self.sampling, n_points=self.n_points, limits=self.limits)

    @property
    def dim(self) -> int:
        return len(self.params)

    @cached_property
    def is_polynomial(self) -> bool:
        """True when the loss is a polynomial in the data (exact moments, finite expansion)."""
        return self._ring is not None or is_polynomial_in(self.loss, self.data)

    @cached_property
    def _data_degrees(self) -> tuple:
        if self._ring is not None:
            monoms = [m for m, _ in self._ring[0]]
        else:
            monoms = list(sp.Poly(self.loss, *self.data).monoms())
        return tuple(max((m[i] for m in monoms), default=0) for i in range(len(self.data)))

    @cached_property
    def _gradient_data_degrees(self) -> tuple:
        """The degree of grad_x f in each data symbol (polynomial losses)."""
        if self._ring is not None:
            monoms = [m for g in self._ring[1] for m, _ in g]
        else:
            monoms = [m for g in self.grad_f if g != 0 for m in sp.Poly(g, *self.data).monoms()]
        return tuple(max((m[i] for m in monoms), default=0) for i in range(len(self.data)))

    @cached_property
    def degree(self) -> int | None:
        """Total degree of the loss in the data (``None`` if not polynomial)."""
        if not self.data:
            return 0
        if not self.is_polynomial:
            return None
        monoms = [m for m, _ in self._ring[0]] if self._ring is not None else sp.Poly(self.loss, *self.data).monoms()
        return max((sum(m) for m in monoms), default=0)

    @cached_property
    def batch_factor(self) -> sp.Expr:
        """The factor that multiplies Sigma for the batch size and sampling scheme."""
        B = self.batch_size
        if self.sampling == "without_replacement":
            M = self.laws[0].size
            return (M - B) / (B * (M - 1))
        return 1 / B

    def mean(self, expr) -> sp.Expr:
        """Mean of any expression (or matrix) over the data law."""
        return expectation(as_expr(expr), n_points=self.n_points, limits=self.limits)

    def _mean(self, expr):
        # derived means of the loss: its tails were checked once in __init__
        return expectation(expr, n_points=self.n_points, limits=self.limits, check_tails=False)

    # ------------------------------------------------------------------ derived objects

    @cached_property
    def _ring(self):
        """The loss and its gradient as sparse polynomials in the data with coefficients in a
        polynomial ring of the parameters (fast path), or None."""
        if not self.data:
            return None
        terms, dom = ring_terms(self.loss, self.data, self.params)
        if terms is None or not hasattr(dom, "ring"):
            return None
        gens = {str(g): (k, g) for k, g in enumerate(dom.gens)}
        # which generators each coefficient involves: a term is differentiated only in those
        # (a d-parameter regression has d^2/2 terms of 2 parameters each, not d^3 derivatives)
        present = [{k for expv in c for k, e in enumerate(expv) if e} for _, c in terms]
        grads = []
        for p in self.params:
            k, g = gens[str(p)]
            derivs = ((m, c.diff(g)) for (m, c), ks in zip(terms, present) if k in ks)
            grads.append([(m, dc) for m, dc in derivs if dc])
        return terms, grads, dom, _Moments(self.data)

    def _ring_to_expr(self, terms, dom):
        return sp.Add(*[dom.to_sympy(c) * sp.Mul(*[s**k for s, k in zip(self.data, m)]) for m, c in terms])

    @cached_property
    def grad_f(self) -> sp.ImmutableMatrix:
        """Per-sample gradient grad_x f(x, xi), a d x 1 matrix."""
        if self._ring is not None:
            _, grads, dom, _ = self._ring
            return sp.ImmutableMatrix([self._ring_to_expr(g, dom) for g in grads])
        return self._checked_gradient()

    @cached_property
    def grad_f_compact(self) -> sp.ImmutableMatrix:
        """grad_x f differentiated from the loss as written (unexpanded): the form SGD evaluates.

        Equal to :attr:`grad_f`; keeping the loss's factored shape (a (a.x - y) rather than
        its d^2 expanded terms) makes the numeric SGD step as cheap as hand-written code.
        """
        return self._checked_gradient()

    @cached_property
    def F(self) -> sp.Expr:
        """The full loss F(x) = E f(x, xi)."""
        if self._F_ring is not None:
            return self._ring[2].to_sympy(self._F_ring)
        return self._mean(self.loss)

    @cached_property
    def _F_ring(self):
        if self._ring is None:
            return None
        terms, _, dom, moments = self._ring
        try:
            return mean_terms(terms, dom, moments)
        except _NeedEX:
            return None

    @cached_property
    def grad_F(self) -> sp.ImmutableMatrix:
        """grad F, a d x 1 matrix."""
        if self._F_ring is not None:
            dom = self._ring[2]
            gens = {str(g): g for g in dom.gens}
            return sp.ImmutableMatrix([dom.to_sympy(self._F_ring.diff(gens[str(p)])) for p in self.params])
        return sp.ImmutableMatrix([sp.expand(sp.diff(self.F, p)) if self.is_polynomial else sp.diff(self.F, p)
                                   for p in self.params])

    @cached_property
    def hessian(self) -> sp.ImmutableMatrix:
        """Hess F, a symmetric d x d matrix."""
        g = self.grad_F
        d = self.dim
        H = sp.zeros(d, d)
        for i in range(d):
            for j in range(i, d):
                H[i, j] = H[j, i] = sp.diff(g[i], self.params[j])
        return sp.ImmutableMatrix(H)

    @cached_property
    def sigma(self) -> sp.ImmutableMatrix:
        """Gradient-noise covariance Sigma(x), batch-scaled (docs/theory.md §1)."""
        if self._ring is not None:
            _, grads, dom, moments = self._ring
            check_products(covariance_products(grads, grads, dom, moments, True), self.limits, "Sigma")
            try:
                return self._scale(covariance_terms(grads, grads, dom, moments, True))
            except _NeedEX:
                pass
        S = covariance(list(self.grad_f), n_points=self.n_points, limits=self.limits, check_tails=False)
        return self._scale(S)

    def _scale(self, S):
        f = self.batch_factor
        return S if f == 1 else sp.ImmutableMatrix(S.applyfunc(lambda e: f * e))

    def cross_covariance(self, y: Sequence[sp.Symbol]) -> sp.ImmutableMatrix:
        r"""Sigma(x, y) = E[(grad f(x) - grad F(x)) (grad f(y) - grad F(y))^T], batch-scaled.

        Parameters
        ----------
        y : sequence of sympy.Symbol
            A second parameter point, one symbol per parameter, not among the parameters.

        Examples
        --------
        >>> import sympy as sp, smfsym
        >>> x, y = sp.symbols("x y")
        >>> r = smfsym.rademacher("r")
        >>> smfsym.Problem((1 + r) * x**2 / 2, [x]).cross_covariance([y])
        Matrix([[x*y]])
        """
        ys = as_symbol_tuple(y, "y")
        if len(ys) != self.dim:
            raise ValueError(f"`y` must have {self.dim} symbols (one per parameter); got {len(ys)}.")
        clash = set(ys) & (set(self.params) | self.loss.free_symbols)
        if clash:
            raise ValueError(f"`y` must be new symbols; {sorted(map(str, clash))} already appear in the problem.")
        gy = self.grad_f.xreplace(dict(zip(self.params, ys)))
        return self._scale(covariance(list(self.grad_f), list(gy), n_points=self.n_points, limits=self.limits,
                                      check_tails=False))

    def chaos(self, degree: int | None = None):
        """The cylindrical-noise (chaos) expansion of the loss, docs/theory.md §3.

        See :func:`smfsym.chaos_expansion`.
        """

        return chaos_expansion(self, degree=degree)

    # ------------------------------------------------------------------ display

    def latex(self) -> str:
        """The problem and its derived objects as an ``aligned`` LaTeX block."""

        return problem_latex(self)

    def _repr_latex_(self) -> str:
        return "$$" + self.latex() + "$$"

    def __getstate__(self):
        # The sparse polynomial ring cached in _ring does not pickle; it is rebuilt on demand.
        state = dict(self.__dict__)
        state.pop("_ring", None)
        state.pop("_F_ring", None)
        return state

    def __repr__(self) -> str:
        laws = ", ".join(repr(l) for l in self.laws)
        return f"Problem(loss={self.loss}, params={self.params}, data=[{laws}], batch_size={self.batch_size})"
