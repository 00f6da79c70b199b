"""Expectations over the data law (docs/theory.md §1).

Polynomials in the data are averaged exactly through moments (Isserlis for
correlated Gaussians, moment tables for the other laws, weighted sums for
finite laws and data sets), in a sparse polynomial ring so that large
derivations stay fast. Anything else becomes a :class:`DataMean`: an
unevaluated mean, still symbolic in the parameters, that names its numeric
rule (a Gauss rule matched to the law, or the rows of a data set) and is
evaluated numerically when lambdified.
"""
from __future__ import annotations

import itertools
import operator
from typing import Iterable, Sequence

import numpy as np
import sympy as sp
from sympy.polys.polyerrors import CoercionFailed, GeneratorsError, PolynomialError

from .laws import DataSymbol
from .quadrature import _RULES, AdaptiveMean, QuadratureRule, stable_form  # noqa: F401 - re-exported
from ..limits import Limits, as_limits, check_products, check_size, estimate_size
from .._checks import as_expr, to_float
from .tails import check_tails as _tails

__all__ = ["DataMean", "expectation", "covariance", "data_symbols", "laws_of", "QuadratureRule"]


#: Largest tensor grid used by default for a Gauss rule (points in total).
DEFAULT_MAX_NODES = 4096
#: Largest product of finite supports summed exactly in closed form.
MAX_EXACT_SUPPORT = 256


class DataMean(sp.Expr):
    r"""An unevaluated mean over the data, computed numerically by a named rule.

    ``DataMean(expr, (xi_1, ..., xi_k), key)`` is :math:`\mathbb{E}_\xi[expr]` where
    the data symbols are bound. Derivatives in the parameters pass under the mean.

    A law parameter left symbolic (``normal("a", mean=m)``) is an argument of the mean (the last one,
    with the other parameters of its rule's laws): its rule's nodes move with ``m``, so ``m`` is a free
    symbol, ``subs``/``xreplace`` of ``m`` reach the rule (the value given is recorded and checked as the
    law's factory checks its arguments), ``has``, ``as_independent`` and ``Poly`` see it, and a derivative
    in ``m`` stays unevaluated: it does not pass under a rule whose nodes depend on ``m`` (docs/theory.md §8).
    """

    is_commutative = True

    def __new__(cls, expr, syms, key, law_values=None):
        expr = as_expr(expr)
        if expr == 0:
            return sp.S.Zero
        syms = sp.Tuple(*syms)
        if not (expr.free_symbols & set(syms)):
            return _plain(expr)  # (no data left, e.g. at x = 0: logaddexp(0, 0) is log(2))
        refuse_dirac_deltas([expr], set(syms))
        # every numeric mean's integrand is in the overflow-safe form, whoever rebuilt it (a derivative, sp.factor,
        # sp.simplify): exp(a x)/(1 + exp(a x)) is inf/inf at the far nodes of a rule, 1/(1 + exp(-a x)) is not
        expr = stable_form(expr)
        key = str(key)
        args = [expr, syms, sp.core.symbol.Str(key)]
        params = _law_parameters(_RULES[key])
        if params:  # what each law parameter stands for here: itself until a substitution gives it a value
            values = params if law_values is None else tuple(law_values)
            if len(values) != len(params):
                raise ValueError(f"`law_values` must give one value per law parameter {list(params)}; got "
                                 f"{len(values)}.")
            values = tuple(_law_value(p, v) for p, v in zip(params, values))
            _check_law_numbers(_RULES[key], dict(zip(params, values)))
            args.append(sp.Tuple(*values))
        return sp.Expr.__new__(cls, *args)

    @property
    def expr(self):
        return self.args[0]

    @property
    def data_symbols(self) -> tuple:
        return tuple(self.args[1])

    @property
    def rule(self) -> QuadratureRule:
        return _RULES[self.args[2].name]

    @property
    def law_parameters(self) -> tuple:
        """The symbols of the rule's law parameters, in the order of :attr:`law_values`."""
        return _law_parameters(self.rule)

    @property
    def law_values(self) -> tuple:
        """What each law parameter stands for in this mean (the parameter itself unless substituted)."""
        return tuple(self.args[3]) if len(self.args) > 3 else ()

    def _substituted(self) -> dict:
        return {p: v for p, v in zip(self.law_parameters, self.law_values) if v != p}

    def rule_values(self, values=None) -> dict:
        """``values`` with the numbers the rule's law parameters take in this mean (a substituted parameter
        evaluated at ``values``): what the rule's nodes are computed with; the integrand takes ``values``."""
        out = dict(values or {})
        for p, v in self._substituted().items():
            if v.is_number and p in out and float(out[p]) != float(v):
                # e.g. an SDE substituted with m = 1 simulated with values={m: 3}: SGD would sample m = 3
                raise ValueError(f"`values` gives the law parameter {p} = {float(out[p]):g}, but a data mean was "
                                 f"substituted with {p} = {v} ({self}); give one value (drop it from `values`, or "
                                 f"do not substitute).")
            out[p] = to_float(v, values, f"the law parameter {p} (= {v}) of a data mean")
        return out

    @property
    def free_symbols(self):
        out = self.expr.free_symbols - set(self.data_symbols)
        for v in self.law_values:
            out |= v.free_symbols
        return out

    def _eval_derivative(self, s):
        if any(s in v.free_symbols for v in self.law_values):
            return None  # the rule's nodes move with s: sympy keeps Derivative(E[...], s) unevaluated
        return DataMean(sp.diff(self.expr, s), self.data_symbols, self.args[2].name, self.law_values or None)

    # The data symbols are bound (like an integral's variable): a value given to xi outside the mean,
    # e.g. a data row put into grad F(x) - grad f(x, xi), must leave E_xi[...] alone.
    def _eval_evalf(self, prec):
        if self.free_symbols:  # still depends on parameters: no number yet
            return None
        fn = sp.lambdify(self.rule.symbols, self.expr, numpy_modules([self.expr]))
        try:
            value = self.rule.evaluator(fn, self.rule_values() or None)([])[0]
        except (TypeError, NameError):  # a function neither numpy nor scipy.special evaluates: no number (sympy's
            return None  # way of saying so; compiling the mean names the function)
        return sp.Float(float(value))  # a float64 rule sum: 15 digits at most, whatever `prec` asks

    def _eval_subs(self, old, new):
        if getattr(old, "free_symbols", set()) & set(self.data_symbols):
            return self
        return None  # sympy substitutes in the args: the integrand and the law parameters' values

    def _xreplace(self, rule):
        if not isinstance(rule, dict):  # a sympy Transform (powdenest, limit): a rewrite by pattern, not a substitution
            return super()._xreplace(rule)
        if self in rule:
            return rule[self], True
        bound = set(self.data_symbols)
        if any(isinstance(k, sp.Basic) and k.free_symbols & bound for k in rule):
            rule = {k: v for k, v in rule.items() if not (isinstance(k, sp.Basic) and k.free_symbols & bound)}
            if not rule:
                return self, False
        return super()._xreplace(rule)

    def _eval_nseries(self, x, n, logx, cdir=0):
        # a Taylor polynomial in a parameter: the derivatives pass under the mean (docs/theory.md §1)
        if any(x in v.free_symbols for v in self.law_values):
            raise NotImplementedError(f"a series of a numeric data mean in its law parameter {x} (the rule's "
                                      "nodes move with it) is not available; expand in the parameters instead.")
        def exact(m):  # a coefficient polynomial in the data is a moment: closed form, not a rule's sum
            out = expectation(m.expr, check_tails=False)
            return out.xreplace(m._substituted()) if m._substituted() else out

        terms, d = [], self
        for k in range(n):
            c = d.subs(x, 0)
            c = c.replace(lambda e: isinstance(e, DataMean) and is_polynomial_in(e.expr, e.data_symbols), exact)
            terms.append(c / sp.factorial(k) * x**k)
            d = d.diff(x)
        return sp.Add(*terms) + sp.Order(x**n, x)

    def _no_printed_form(self, printer=None):
        raise TypeError("a numeric data mean (smfsym's DataMean) has no form sympy.lambdify can print: compile it "
                        "with smfsym.symbolic.lambdify.compile_exprs(exprs, state, values=...), simulate the SDE "
                        "(smfsym.simulate), or evaluate one number with .subs(...).evalf().")

    _numpycode = _scipycode = _pythoncode = _mpmathcode = _no_printed_form

    def _eval_is_real(self):
        return self.expr.is_real

    def _latex(self, printer):
        note = r"\text{" + self.rule.describe() + "}"
        # substituted law parameters: the rule's nodes are taken at these values
        note += "".join(f", {printer._print(p)}={printer._print(v)}" for p, v in self._substituted().items())
        return (r"\mathbb{E}^{" + note + r"}_{" + ",".join(printer._print(s) for s in self.data_symbols)
                + r"}\left[" + printer._print(self.expr) + r"\right]")

    def describe_rule(self) -> str:
        """The rule's name, with the values substitutions gave the law's parameters (``Gauss-Hermite(16), m=1``)."""
        return self.rule.describe() + "".join(f", {p}={v}" for p, v in self._substituted().items())

    def _sympystr(self, printer):
        return f"E[{printer._print(self.expr)}; {self.describe_rule()}]"

    def __reduce_ex__(self, protocol):
        # the rule lives in a registry: ship it along so the mean works in another process
        return (_rebuild_mean, (self.expr, self.data_symbols, self.rule, self.law_values or None))

    def __reduce__(self):
        return self.__reduce_ex__(2)


def _rebuild_mean(expr, syms, rule, law_values=None):
    return DataMean(expr, syms, rule.key, law_values)


def _plain(expr):
    """``expr`` with the overflow-safe nodes of :func:`stable_form` written back as sympy functions (once no data is
    left in a mean they are plain numbers or expressions, and sympy evaluates and simplifies these)."""
    from sympy.codegen.numpy_nodes import logaddexp

    if not expr.has(logaddexp):
        return expr
    return expr.replace(lambda e: isinstance(e, logaddexp), lambda e: sp.log(sp.exp(e.args[0]) + sp.exp(e.args[1])))


def numpy_modules(exprs):
    """``sympy.lambdify``'s ``modules`` for numpy arrays: numpy, with scipy.special where ``exprs`` hold special
    functions numpy lacks (sympy would print ``math.gamma``, which takes scalars only and failed on arrays)."""
    from sympy.printing.numpy import _known_functions_scipy_special

    names = set()
    for e in exprs:
        if isinstance(e, sp.Basic):
            names |= {type(f).__name__ for f in e.atoms(sp.Function)}
    if names & (set(_known_functions_scipy_special) - {"erf", "erfc"}):
        return ["scipy", "numpy"]  # scipy's printer: scipy.special.gamma, .jv, ...
    if names & {"erf", "erfc"}:
        from scipy import special  # numpy has no erf (sympy would print math.erf, scalar only)

        return [{"erf": special.erf, "erfc": special.erfc}, "numpy"]
    return "numpy"


def refuse_law_derivatives(exprs) -> None:
    """Refuse to compile a derivative of a data mean in a law parameter (it stays unevaluated, see
    :class:`DataMean`), with what to do instead; compilers call this before binding ``values``."""
    for e in exprs:
        if not isinstance(e, sp.Basic):
            continue
        for d in e.atoms(sp.Derivative):
            if d.atoms(DataMean):
                names = ", ".join(str(v) for v, _ in d.variable_count)
                raise ValueError(
                    f"a derivative of a numeric data mean in the law parameter(s) {names} has no numeric form here "
                    f"(its rule's nodes move with {names}): differentiate a closed form, or take a difference "
                    f"quotient (Derivative.as_finite_difference); got {str(d)[:200]}.")


class KinkError(ValueError):
    """A Dirac delta, the derivative of a kink of the loss or unit, where a number is needed (refused)."""

    def __init__(self, message: str, deltas: str = ""):
        super().__init__(message)
        #: the Dirac deltas found, as printed (for a caller that words its own message)
        self.deltas = deltas


def refuse_dirac_deltas(exprs, data=None) -> None:
    """Refuse a Dirac delta (or its derivatives), the distributional derivative of a kink (Abs, Max, sign,
    Heaviside) of the loss: ``data`` given, one whose argument holds a data symbol (its mean is a density at the
    kink, which no Gauss rule resolves); otherwise any (no numeric form). The gradient of a kinked loss has none,
    so order-1 models stand; the Hessian, the order-2 models and their noise derivatives need one."""
    for e in exprs:
        if not isinstance(e, sp.Basic):
            continue
        deltas = [d for d in e.atoms(sp.DiracDelta) if data is None or d.free_symbols & set(data)]
        if deltas:
            shown = ", ".join(sorted(str(d) for d in deltas)[:3])
            where = ("its mean over the data is a density at the kink, which no numeric rule of smfsym resolves"
                     if data is not None else "it has no numeric form")
            raise KinkError(
                f"`loss`: a derivative of a kink (Abs, Max, sign, Heaviside) of the loss is a Dirac delta ({shown}); "
                f"{where}, so it is refused. The gradient of such a loss needs none: the order-1 SME/SMF "
                "(--models sme1,smf1) and SGD stand; the Hessian and the order-2 models need a smooth loss, e.g. "
                "sqrt((x - z)**2 + eps**2) for Abs(x - z) (docs/theory.md §8, numeric means).", shown)


def _law_parameters(rule) -> tuple:
    out: set = set()
    for law in rule.laws:
        out |= law.free_symbols
    return tuple(sorted(out, key=sp.default_sort_key))


def _law_value(param, value):
    """A value given to a law parameter inside a data mean: a finite real number or a real expression."""
    v = as_expr(value, f"the law parameter {param}")
    if v.is_extended_real is False or v.has(sp.oo, -sp.oo, sp.zoo, sp.nan) or (v.is_number and not v.is_real):
        raise ValueError(f"the law parameter {param} of a data mean must be given a finite real value (its rule's "
                         f"nodes are computed there); got {value!r}.")
    return v


def _check_law_numbers(rule, given: dict) -> None:
    """Check the laws whose parameters all have numbers in ``given`` as their factories check their arguments."""
    numbers = {p: v for p, v in given.items() if v.is_number}
    if not numbers:
        return
    for law in rule.laws:
        if law.free_symbols and law.free_symbols <= set(numbers):
            law.check_values({p: float(numbers[p]) for p in law.free_symbols})


def data_symbols(expr) -> tuple:
    """Data symbols of ``expr`` (including those bound in DataMeans), in a stable order."""
    atoms = set()
    for e in (expr if isinstance(expr, (list, tuple, sp.MatrixBase)) else [expr]):
        atoms |= as_expr(e).atoms(DataSymbol)
    return tuple(sorted(atoms, key=lambda s: (s._token, s.index)))


def laws_of(syms: Iterable[DataSymbol]) -> tuple:
    seen: dict = {}
    for s in syms:
        seen.setdefault(id(s.law), s.law)
    return tuple(sorted(seen.values(), key=lambda l: l.symbols[0]._token))


class _Moments:
    """Cached joint moments of monomials over independent law blocks.

    Each distinct monomial's moment is built once (``__call__``, a sympy
    expression) and converted into a polynomial ring once per ring
    (:meth:`in_ring`): a covariance meets the same monomial many times, and the
    conversion from sympy dominated large derivations before it was memoised.
    ``conversions`` counts the conversions actually done (at most one per distinct
    monomial and ring; zero moments need none), for ``benchmarks/bench_symbolic.py --profile``.
    """

    def __init__(self, syms: Sequence[DataSymbol]):
        self.syms = tuple(syms)
        blocks: dict = {}
        for pos, s in enumerate(self.syms):
            blocks.setdefault(id(s.law), (s.law, []))[1].append((pos, s.index))
        self.blocks = list(blocks.values())
        # position -> number of its independent law block (data of distinct laws are independent)
        self.block_of = [0] * len(self.syms)
        for b, (_, members) in enumerate(self.blocks):
            for pos, _ in members:
                self.block_of[pos] = b
        self.cache: dict = {}
        self._rings: dict = {}
        self._supports: dict = {}
        self._zeros: dict = {}
        self.conversions = 0

    def __call__(self, monom: tuple) -> sp.Expr:
        m = self.cache.get(monom)
        if m is None:
            m = sp.S.One
            for b in self.support(monom):  # only the blocks the monomial involves
                m = m * self._block_moment(b, monom)
                if m == 0:
                    break
            if not m.is_Number:
                m = sp.expand(m)
            self.cache[monom] = m
        return m

    def in_ring(self, dom, monom: tuple):
        """The moment of ``monom`` as an element of ``dom`` (raises _NeedEX if it is not one)."""
        # keyed by id: hashing a polynomial-ring domain costs more than the look-up itself
        entry = self._rings.get(id(dom))
        if entry is None:
            entry = self._rings[id(dom)] = (dom, {})
        cache = entry[1]
        hit = cache.get(monom)
        if hit is None:
            m = self(monom)
            if m is sp.S.Zero:  # most joint moments of a covariance vanish (odd Gaussian moments)
                hit = dom.zero
            else:
                try:
                    hit = dom.from_sympy(m)
                # a moment not polynomial in the law's parameters (1/r of Exp(r)): sympy 1.14's rings raise
                # ValueError where earlier ones raised CoercionFailed; either way the mean is taken over EX
                except (CoercionFailed, ValueError):
                    raise _NeedEX from None
                self.conversions += 1
            cache[monom] = hit
        return hit

    def _block_moment(self, b: int, monom: tuple) -> sp.Expr:
        law, members = self.blocks[b]
        powers = [0] * law.dim
        for pos, idx in members:
            powers[idx] = monom[pos]
        return law.moment(tuple(powers))

    def zero_blocks(self, monom: tuple) -> frozenset:
        """Blocks in which ``monom``'s own moment is zero (an odd power of a centred Gaussian, ...).

        Paired with a monomial that does not involve such a block, the joint moment keeps that
        zero factor (the blocks are independent), and so does the product of the means.
        """
        hit = self._zeros.get(monom)
        if hit is None:
            hit = self._zeros[monom] = frozenset(b for b in self.support(monom) if self._block_moment(b, monom) == 0)
        return hit

    def support(self, monom: tuple) -> tuple:
        """The independent law blocks ``monom`` involves (sorted block numbers)."""
        hit = self._supports.get(monom)
        if hit is None:
            hit = self._supports[monom] = tuple(sorted({self.block_of[i] for i, k in enumerate(monom) if k}))
        return hit


def _domain(exprs, syms, moments_syms):
    # Data-set moments are floats: keep them floats instead of huge rationals.
    base = sp.RR if any(law.family == "Empirical" for law in laws_of(syms)) else sp.QQ
    gens = set()
    for e in exprs:
        gens |= e.free_symbols
    gens |= moments_syms
    gens -= set(syms)
    gens = sorted(gens, key=sp.default_sort_key)
    return base[tuple(gens)] if gens else base


def _polys(exprs, syms):
    """Polys of ``exprs`` in ``syms`` over one sparse ring, or None if not polynomial."""
    exprs = [as_expr(e) for e in exprs]
    law_syms = set()
    for law in laws_of(syms):
        law_syms |= law.free_symbols
    try:
        dom = _domain(exprs, syms, law_syms)
        return [sp.Poly(e, *syms, domain=dom) for e in exprs], dom
    except (CoercionFailed, GeneratorsError):
        pass
    except PolynomialError:
        return None, None
    try:
        return [sp.Poly(e, *syms, domain="EX") for e in exprs], sp.EX
    except PolynomialError:
        return None, None


def is_polynomial_in(expr, syms) -> bool:
    if not syms:
        return True
    try:
        sp.Poly(expr, *syms)
        return True
    except PolynomialError:
        return False


def _moment_in(dom, moments, monom):
    return moments.in_ring(dom, monom)


class _NeedEX(Exception):
    pass


def _default_points(syms) -> int:
    # starting size; AdaptiveMean doubles it per state until the tolerance is met
    k = sum(1 for law in laws_of(syms) if not law.is_finite for _ in law.symbols)
    if k == 0:
        return 1
    return int(max(3, min(16, np.floor(DEFAULT_MAX_NODES ** (1.0 / k)))))


def _finite_support(laws):
    size = 1
    for law in laws:
        if not law.is_finite or law.family == "Empirical":
            return None
        size *= len(law.values)
    return size if size <= MAX_EXACT_SUPPORT else None


def _numeric_mean(expr, syms, n_points=None, limits=None):
    laws = laws_of(syms)
    if _finite_support(laws) is not None:
        # Exact: a finite law's mean is a finite sum (symbolic in its weights).
        total = sp.S.Zero
        supports = [list(zip(law.values, law.weights)) for law in laws]
        for combo in itertools.product(*supports):
            sub = {law.symbol: v for law, (v, _) in zip(laws, combo)}
            w = sp.Mul(*[w for _, w in combo])
            total += w * expr.xreplace(sub)
        return total
    all_syms = tuple(s for law in laws for s in law.symbols)
    rule = QuadratureRule(laws, n_points or _default_points(syms), limits)
    return DataMean(expr, all_syms, rule.key)  # (in the overflow-safe form: DataMean rewrites it)


def expectation(expr, *, n_points: int | None = None, limits: Limits | None = None, check_tails: bool = True):
    """Mean of ``expr`` over the law of its data symbols.

    Exact through moments when ``expr`` is a polynomial in the data; an exact
    finite sum for finite laws; otherwise a :class:`DataMean` (numeric rule,
    refined to the tolerance of ``limits`` when evaluated).

    Parameters
    ----------
    expr : sympy expression or matrix
    n_points : int, optional
        Starting points per coordinate of the Gauss rule (non-polynomial ``expr``).
    limits : smfsym.Limits, optional
        Size limits checked before expanding (docs/theory.md §8): a
        :class:`~smfsym.ResourceLimitError` names the one exceeded.
    check_tails : bool, default True
        Apply the tail-growth rule of :mod:`smfsym.data.tails` to a non-polynomial
        ``expr``: raise if its mean is infinite, warn if undecided. (Polynomials
        are checked through the laws' moments.) :class:`~smfsym.Problem` checks its
        loss once and passes False for the means it derives.

    Examples
    --------
    >>> import sympy as sp, smfsym
    >>> from smfsym.data.means import expectation
    >>> x = sp.Symbol("x")
    >>> xi = smfsym.normal("xi", std=2)
    >>> expectation((x - xi) ** 2 / 2)
    x**2/2 + 2
    """
    if isinstance(expr, sp.MatrixBase):
        return expr.applyfunc(lambda e: expectation(e, n_points=n_points, limits=limits, check_tails=check_tails))
    if isinstance(expr, str):
        raise TypeError("`expr` must be a sympy expression, not a string (strings are never parsed here).")
    expr = as_expr(expr)
    syms = data_symbols(expr)
    if not syms:
        return expr
    limits = as_limits(limits)
    est = estimate_size(expr, syms, expr.free_symbols - set(syms))
    check_size(est, limits, what="the expression", where="expectation")
    polys, dom = _polys([expr], syms)
    if polys is None:
        if check_tails:

            _tails(expr, (), syms, stacklevel=3, names=(f"E[{expr}]", ""))
        return _numeric_mean(expr, syms, n_points, limits)
    moments = _Moments(syms)
    try:
        return dom.to_sympy(mean_terms(list(polys[0].as_dict(native=True).items()), dom, moments))
    except _NeedEX:
        return sp.expand(sum(as_expr(c) * moments(m) for m, c in polys[0].as_dict(native=False).items()))


def covariance(u: Sequence, v: Sequence | None = None, *, n_points: int | None = None,
               limits: Limits | None = None, check_tails: bool = True) -> sp.ImmutableMatrix:
    """Covariance matrix ``E[(u - Eu)(v - Ev)^T]`` over the data law.

    With ``v`` omitted the result is symmetric and only half is computed.
    Sizes are checked against ``limits`` first, and non-polynomial entries
    against the tail-growth rule (second moments) unless ``check_tails`` is
    False (docs/theory.md §8). For exact polynomial means, ``max_products``
    bounds the pairs of terms that share an independent law block (the others
    are never formed, see :func:`covariance_products`), counted on the expanded
    entries when the estimate over all pairs is larger.
    """
    u = [as_expr(e) for e in u]
    sym = v is None
    v = u if sym else [as_expr(e) for e in v]
    syms = data_symbols(u + v)
    n, m = len(u), len(v)
    if not syms:
        return sp.ImmutableMatrix.zeros(n, m)
    limits = as_limits(limits)
    sizes = []
    for e in u + v:
        est = estimate_size(e, syms, e.free_symbols - set(syms))
        check_size(est, limits, what="a covariance entry", where="covariance")
        sizes.append(est.terms)
    if sym:
        products = sum(sizes[i] * sizes[j] for i in range(n) for j in range(i, n))
    else:
        products = sum(a * b for a in sizes[:n] for b in sizes[n:])
    # The estimate counts every pair of terms. Exact polynomial means form only the pairs that share an
    # independent law block: when the estimate is over the limit, count those on the expanded entries
    # (each bounded by max_terms) before refusing; with a single law block nothing would be saved.
    if products > limits.max_products and len(laws_of(syms)) == 1:
        check_products(products, limits, "the covariance", "covariance")
    polys, dom = _polys(u + v, syms)
    if polys is None or not _exact_ring(dom):
        check_products(products, limits, "the covariance", "covariance")
    if polys is None:
        if check_tails:

            _tails(sp.S.Zero, u + ([] if sym else v), syms, stacklevel=3, names=("", "the covariance"))
        kw = dict(n_points=n_points, limits=limits, check_tails=False)
        mu = [expectation(e, **kw) for e in u]
        mv = mu if sym else [expectation(e, **kw) for e in v]
        out = sp.zeros(n, m)
        for i in range(n):
            for j in range(i if sym else 0, m):
                out[i, j] = expectation(u[i] * v[j], **kw) - mu[i] * mv[j]
                if sym:
                    out[j, i] = out[i, j]
        return sp.ImmutableMatrix(out)
    moments = _Moments(syms)
    try:
        return _poly_covariance(polys[:n], polys[n:], dom, moments, sym, limits, products)
    except _NeedEX:
        check_products(products, limits, "the covariance", "covariance")  # EX forms every pair
        polys = [sp.Poly(p.as_expr(), *syms, domain="EX") for p in polys]
        return _poly_covariance(polys[:n], polys[n:], sp.EX, moments, sym)


def _poly_covariance(pu, pv, dom, moments, sym, limits=None, estimate=0):
    tu = [list(p.as_dict(native=True).items()) for p in pu]
    tv = tu if sym else [list(p.as_dict(native=True).items()) for p in pv]
    if limits is not None and estimate > limits.max_products:
        check_products(covariance_products(tu, tv, dom, moments, sym), limits, "the covariance", "covariance")
    return covariance_terms(tu, tv, dom, moments, sym)


def ring_terms(expr, syms, extra_gens=()):
    """``(terms, domain)``: expr as monomial -> coefficient in a sparse ring, or ``(None, None)``."""
    try:
        dom = _domain([as_expr(expr)], syms, set().union(*[l.free_symbols for l in laws_of(syms)], set(extra_gens)))
        poly = sp.Poly(expr, *syms, domain=dom)
    except (CoercionFailed, GeneratorsError, PolynomialError):
        return None, None
    return list(poly.as_dict(native=True).items()), dom


def mean_terms(terms, dom, moments):
    """E of a ring-term polynomial (raises _NeedEX if a moment leaves the ring)."""
    total = dom.zero
    for monom, c in terms:
        total += c * _moment_in(dom, moments, monom)
    return total


def _exact_ring(dom) -> bool:
    """True when sums in ``dom`` do not depend on their order (rationals, polynomials over them)."""
    return getattr(dom, "domain", dom) in (sp.QQ, sp.ZZ)


def _block_counts(terms, moments) -> dict:
    """block -> how many of ``terms`` (ring terms of one entry) involve that independent law block."""
    counts: dict = {}
    for monom, _ in terms:
        for b in moments.support(monom):
            counts[b] = counts.get(b, 0) + 1
    return counts


def covariance_products(tu, tv, dom, moments, sym) -> int:
    """Term products :func:`covariance_terms` may form, counted before any is formed.

    In an exact ring only pairs of terms that share an independent law block are
    formed (other pairs have covariance exactly zero); the count is
    sum over blocks and entry pairs of (terms of u_i in the block) * (terms of
    v_j in the block), an upper bound, capped by the count of all pairs. Otherwise
    every pair of terms is formed.
    """
    n = len(tu)
    su, sv = [len(t) for t in tu], [len(t) for t in tv]
    if sym:
        dense = sum(su[i] * sum(su[i:]) for i in range(n))
    else:
        dense = sum(su) * sum(sv)
    if not _exact_ring(dom):
        return dense
    cu = [_block_counts(t, moments) for t in tu]
    cv = cu if sym else [_block_counts(t, moments) for t in tv]
    total = 0
    for b in set().union(*cu, *cv):
        xs = [c.get(b, 0) for c in cu]
        if sym:  # sum over i <= j of x_i x_j
            total += (sum(xs) ** 2 + sum(x * x for x in xs)) // 2
        else:
            total += sum(xs) * sum(c.get(b, 0) for c in cv)
    return min(total, dense)  # a pair over several shared blocks is counted once per block


def covariance_terms(tu, tv, dom, moments, sym):
    """Covariance matrix of ring-term polynomials (see :func:`covariance`).

    Entry (i, j) is the sum over term pairs (a of u_i, b of v_j) of
    c_a c_b (E xi^(a+b) - E xi^a E xi^b). Moments are memoised per monomial
    (:meth:`_Moments.in_ring`). In an exact ring the sum is taken over pairs of
    distinct *monomials* that share an independent law block: a pair over disjoint
    blocks has centred moment exactly zero, and each pair's centred moment is
    formed once for all the entries it feeds (linear regression with d independent
    features: about d^3 moment look-ups and d^2 products instead of d^4 products).
    In a floating-point ring every pair is visited in the original order, so the
    rounding is as it always was.
    """
    if _exact_ring(dom):
        return _sparse_covariance(tu, tv, dom, moments, sym)
    return _dense_covariance(tu, tv, dom, moments, sym)


def _dense_covariance(tu, tv, dom, moments, sym):
    mean_u = [{a: _moment_in(dom, moments, a) for a, _ in t} for t in tu]
    mean_v = mean_u if sym else [{a: _moment_in(dom, moments, a) for a, _ in t} for t in tv]
    n, m = len(tu), len(tv)
    out = [[None] * m for _ in range(n)]
    for i in range(n):
        for j in range(i if sym else 0, m):
            total = dom.zero
            for a, ca in tu[i]:
                ma = mean_u[i][a]
                for b, cb in tv[j]:
                    c = _moment_in(dom, moments, tuple(p + q for p, q in zip(a, b))) - ma * mean_v[j][b]
                    if c:
                        total += ca * cb * c
            out[i][j] = dom.to_sympy(total)
            if sym:
                out[j][i] = out[i][j]
    return sp.ImmutableMatrix(out)


def _rows_by_monomial(terms, moments) -> dict:
    """monomial -> [(entry, coefficient)] over the entries' terms; constants (no data) are left out."""
    rows: dict = {}
    for i, t in enumerate(terms):
        for a, c in t:
            if moments.support(a):
                rows.setdefault(a, []).append((i, c))
    return rows


def _sparse_covariance(tu, tv, dom, moments, sym):
    n, m = len(tu), len(tv)
    rows_u = _rows_by_monomial(tu, moments)
    rows_v = rows_u if sym else _rows_by_monomial(tv, moments)
    by_block: dict = {}  # independent block -> monomials of v that involve it
    for b in rows_v:
        for blk in moments.support(b):
            by_block.setdefault(blk, []).append(b)
    mean_v = {b: moments.in_ring(dom, b) for b in rows_v}
    acc = [[dom.zero] * m for _ in range(n)]
    blocks = {b: frozenset(moments.support(b)) for b in rows_v}
    zeros = {b: moments.zero_blocks(b) for b in rows_v}
    for a, ra in rows_u.items():
        supp = moments.support(a)
        sa, za = frozenset(supp), moments.zero_blocks(a)
        ma = moments.in_ring(dom, a)
        if len(supp) == 1:
            cands = by_block.get(supp[0], ())
        else:
            cands = dict.fromkeys(b for blk in supp for b in by_block.get(blk, ()))
        for b in cands:
            zb = zeros[b]
            if (za and not za <= blocks[b]) or (zb and not zb <= sa):
                continue  # a zero factor in a block only one side involves: E xi^(a+b) = E xi^a E xi^b = 0
            c = moments.in_ring(dom, tuple(map(operator.add, a, b)))
            mb = mean_v[b]
            if ma and mb:
                c = c - ma * mb
            if not c:
                continue
            rb = rows_v[b]
            for i, ca in ra:
                for j, cb in rb:
                    if not sym or i <= j:
                        acc[i][j] += ca * cb * c
    out = [[None] * m for _ in range(n)]
    for i in range(n):
        for j in range(i if sym else 0, m):
            out[i][j] = dom.to_sympy(acc[i][j])
            if sym:
                out[j][i] = out[i][j]
    return sp.ImmutableMatrix(out)
