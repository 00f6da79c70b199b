"""Expectations over the data law (MATH.md section 1).

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
import warnings
from typing import Iterable, Sequence

import numpy as np
import sympy as sp
from sympy.polys.polyerrors import CoercionFailed, GeneratorsError, PolynomialError

from .laws import DataSymbol, Law
from .safeguards import Limits, QuadratureWarning, as_limits, check_products, check_size, estimate_size, refuse
from ._checks import as_expr

__all__ = ["DataMean", "expectation", "covariance", "data_symbols", "laws_of", "QuadratureRule"]

# Numeric rules are kept in a registry so that DataMean's sympy args stay plain
# (a Str key): sympy rebuilds expressions from their args in subs and diff.
_RULES: dict[str, "QuadratureRule"] = {}

#: Largest tensor grid used by default for a Gauss rule (points in total).
DEFAULT_MAX_NODES = 4096
#: Largest product of finite supports summed exactly in closed form.
MAX_EXACT_SUPPORT = 256


class QuadratureRule:
    """A numeric rule over a tuple of independent laws (tensor product).

    ``n_points`` is the starting number of points per continuous coordinate;
    :meth:`evaluator` refines it per state until the n- and 2n-point rules agree
    to the tolerance of ``limits`` (docs/theory.md §8).
    """

    def __init__(self, laws: Sequence[Law], n_points: int, limits: Limits | None = None):
        self.laws = tuple(laws)
        self.n_points = int(n_points)
        self.limits = as_limits(limits)
        k = self.n_continuous
        if k and self.n_points ** k * self._finite_size > self.limits.max_nodes:
            refuse(f"a quadrature rule over {k} continuous coordinate(s) with {self.n_points} points each",
                   self.n_points ** k * self._finite_size, "max_nodes", self.limits.max_nodes)
        self.key = "|".join(l.symbols[0]._token for l in self.laws) + f"#{self.n_points}#{hash(self.limits)}"
        _RULES[self.key] = self

    @property
    def n_continuous(self) -> int:
        return sum(law.dim for law in self.laws if not law.is_finite)

    @property
    def _finite_size(self) -> int:
        out = 1
        for law in self.laws:
            if law.is_finite:
                out *= law.size if law.family == "Empirical" else len(law.values)
        return out

    @property
    def symbols(self) -> tuple:
        return tuple(s for law in self.laws for s in law.symbols)

    def describe(self) -> str:
        parts = []
        for law in self.laws:
            if law.family == "Empirical":
                parts.append(f"data set (M={law.size})")
            elif law.is_finite:
                parts.append(f"exact sum over {law.family}")
            else:
                kind = {"Normal": "Gauss-Hermite", "MultivariateNormal": "Gauss-Hermite",
                        "Uniform": "Gauss-Legendre", "Exponential": "Gauss-Laguerre",
                        "Gamma": "Gauss-Laguerre", "Beta": "Gauss-Jacobi",
                        "StudentT": "Gauss-Legendre (quantile)"}.get(law.family, "Gauss")
                parts.append(f"{kind}({self.n_points})")
        return " x ".join(parts)

    @property
    def is_quadrature(self) -> bool:
        """True when the rule approximates (some law is continuous)."""
        return any(not law.is_finite for law in self.laws)

    def nodes(self, values=None, n_points: int | None = None):
        """Tensor-product nodes ``(Q, k)`` and weights ``(Q,)`` with numeric parameters."""
        n = self.n_points if n_points is None else int(n_points)
        rules = [law.quadrature(n, values) for law in self.laws]
        nodes = [np.asarray(r[0], dtype=float) for r in rules]
        weights = [np.asarray(r[1], dtype=float) for r in rules]
        idx = np.array(list(itertools.product(*[range(len(w)) for w in weights])))
        cols = [n[idx[:, i]] for i, n in enumerate(nodes)]
        w = np.prod(np.stack([wt[idx[:, i]] for i, wt in enumerate(weights)]), axis=0)
        return np.concatenate(cols, axis=1), w

    def evaluator(self, fn, values=None) -> "AdaptiveMean":
        """The numeric mean of ``fn(*state_cols, *data_cols)`` over this rule, with error control."""
        return AdaptiveMean(self, fn, values)

    def __reduce__(self):
        return (_rebuild_rule, (self.laws, self.n_points, self.limits))


def _rebuild_rule(laws, n_points, limits):
    return QuadratureRule(laws, n_points, limits)


#: Elements of one (states x nodes) block evaluated at once.
_CHUNK_ELEMENTS = 4_000_000


class AdaptiveMean:
    """E over a rule's nodes for a batch of states, refined per state (docs/theory.md §8).

    For every state the n-point and 2n-point rules are compared; where
    ``|Q_2n - Q_n| > quad_atol + quad_rtol Q_2n[|f|]`` (the scale is the mean of the
    integrand's absolute value, so cancelling means are judged fairly) the state is re-evaluated with
    4n, 8n, ... points, up to ``Limits.max_quad_points`` per coordinate and
    ``Limits.max_nodes`` in all. The value returned is the finest rule's. A state
    whose estimate still misses the tolerance triggers a :class:`QuadratureWarning`
    naming the estimate; an integrand that overflows at the nodes (while the state
    is finite) warns too. Each state's value depends on that state only, so results
    do not depend on how paths are chunked. Finite laws and data sets are exact sums
    and are not refined.

    Examples
    --------
    >>> import numpy as np, sympy as sp, smfsym
    >>> from smfsym.expectation import QuadratureRule
    >>> a = smfsym.normal("a")
    >>> rule = QuadratureRule([a.law], 8)
    >>> mean = rule.evaluator(lambda x, z: np.cos(x * z))
    >>> bool(abs(mean([np.array([1.0])])[0] - np.exp(-0.5)) < 1e-9)
    True
    """

    def __init__(self, rule: QuadratureRule, fn, values=None):
        self.rule, self.fn, self.values = rule, fn, values
        self.limits = rule.limits
        self._nodes: dict = {}
        self.last_error: np.ndarray | None = None

    def _rule(self, n):
        if n not in self._nodes:
            nodes, w = self.rule.nodes(self.values, n)
            keep = w > 0  # far Gauss nodes whose weight underflowed: 0 * inf must not make NaN
            self._nodes[n] = (nodes[keep], w[keep])
        return self._nodes[n]

    def _levels(self):
        n, k = self.rule.n_points, self.rule.n_continuous
        out = [n]
        while True:
            n2 = 2 * n
            if n2 > self.limits.max_quad_points or n2 ** k * self.rule._finite_size > self.limits.max_nodes:
                return out
            out.append(n2)
            n = n2

    def _eval(self, cols, n):
        nodes, weights = self._rule(n)
        P = cols[0].shape[0] if cols else 1
        Q = nodes.shape[0]
        out = np.empty(P)
        checked = self.rule.is_quadrature
        scale = np.empty(P) if checked else None
        step = max(1, _CHUNK_ELEMENTS // max(Q, 1))
        node_cols = [nodes[None, :, j] for j in range(nodes.shape[1])]
        bad = 0
        for lo in range(0, P, step):
            hi = min(P, lo + step)
            args = [c[lo:hi, None] for c in cols] + node_cols
            with np.errstate(all="ignore"):
                val = np.broadcast_to(np.asarray(self.fn(*args), dtype=float), (hi - lo, Q))
                # row-wise reductions, not BLAS gemv: a state's mean must not depend on its batch
                out[lo:hi] = np.sum(val * weights, axis=1)
                if checked:
                    scale[lo:hi] = np.sum(np.abs(val) * weights, axis=1)
            nonfinite = ~np.isfinite(out[lo:hi])
            if nonfinite.any():
                ok_state = np.all([np.isfinite(c[lo:hi]) for c in cols], axis=0) if cols else True
                bad += int(np.count_nonzero(nonfinite & ok_state))
        if bad:
            warnings.warn(
                f"the integrand of a data mean ({self.rule.describe()}) overflowed or was undefined at some "
                f"nodes for {bad} of {P} finite state(s): the mean is NaN there. Rewrite the loss in a "
                "numerically stable form (e.g. log(1 + exp(z)) rather than a ratio of exponentials).",
                QuadratureWarning, stacklevel=3,
            )
        return out, scale

    def __call__(self, cols):
        cols = [np.asarray(c, dtype=float) for c in cols]
        levels = self._levels() if self.rule.is_quadrature else [self.rule.n_points]
        est, scale = self._eval(cols, levels[0])
        if len(levels) == 1:
            if self.rule.is_quadrature:
                self._warn_unchecked()
            self.last_error = None if not self.rule.is_quadrature else np.full(est.shape, np.nan)
            return est
        todo = np.arange(est.shape[0])
        err = np.full(est.shape, np.inf)
        lim = self.limits
        for n in levels[1:]:
            sub = [c[todo] for c in cols] if cols else cols
            fine, fscale = self._eval(sub, n) if cols else self._eval(cols, n)
            e = np.abs(fine - est[todo])
            est[todo] = fine
            err[todo] = e
            scale[todo] = fscale
            done = ~(e > lim.quad_atol + lim.quad_rtol * fscale)  # NaN counts as done (warned)
            todo = todo[~done]
            if todo.size == 0 or not cols:
                break
        self.last_error = err
        missed = np.isfinite(est) & (err > lim.quad_atol + lim.quad_rtol * scale)
        if np.any(missed):
            rel = float(np.max(err[missed] / np.maximum(scale[missed], lim.quad_atol)))
            warnings.warn(
                f"a quadrature mean ({self.rule.describe()}, refined to {levels[-1]} points per coordinate) "
                f"missed its tolerance at {int(missed.sum())} of {est.size} state(s): estimated error up to "
                f"{rel:.2g} relative to E|integrand| (tolerance quad_rtol={lim.quad_rtol:g}, quad_atol={lim.quad_atol:g}). "
                "The integrand is probably sharp (large weights); raise `Limits.max_quad_points` / "
                "`Limits.max_nodes`, or use a data set.",
                QuadratureWarning, stacklevel=3,
            )
        return est

    def _warn_unchecked(self):
        if not getattr(self, "_warned_unchecked", False):
            self._warned_unchecked = True
            warnings.warn(
                f"a quadrature mean ({self.rule.describe()}) cannot be error-checked: doubling its points "
                "would exceed `Limits.max_quad_points` or `Limits.max_nodes`.",
                QuadratureWarning, stacklevel=4,
            )


class DataMean(sp.Expr):
    r"""An unevaluated mean over the data, computed numerically by a named rule.

    ``DataMean(expr, (xi_1, ..., xi_k), key)`` is :math:`\mathbb{E}_\xi[expr]` where
    the data symbols are bound. Derivatives in the parameters pass under the mean.
    """

    is_commutative = True

    def __new__(cls, expr, syms, key):
        expr = as_expr(expr)
        if expr == 0:
            return sp.S.Zero
        syms = sp.Tuple(*syms)
        if not (expr.free_symbols & set(syms)):
            return expr
        return sp.Expr.__new__(cls, expr, syms, sp.core.symbol.Str(str(key)))

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
    def free_symbols(self):
        return self.expr.free_symbols - set(self.data_symbols)

    def _eval_derivative(self, s):
        return DataMean(sp.diff(self.expr, s), self.data_symbols, self.args[2].name)

    def _eval_is_real(self):
        return self.expr.is_real

    def _latex(self, printer):
        note = self.rule.describe()
        return (r"\mathbb{E}^{\text{" + note + r"}}_{" + ",".join(printer._print(s) for s in self.data_symbols)
                + r"}\left[" + printer._print(self.expr) + r"\right]")

    def _sympystr(self, printer):
        return f"E[{printer._print(self.expr)}; {self.rule.describe()}]"

    def __reduce_ex__(self, protocol):
        # the rule lives in a registry: ship it along so the mean works in another process
        return (_rebuild_mean, (self.expr, self.data_symbols, self.rule))

    def __reduce__(self):
        return self.__reduce_ex__(2)


def _rebuild_mean(expr, syms, rule):
    return DataMean(expr, syms, rule.key)


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
    """Cached joint moments of monomials over independent law blocks."""

    def __init__(self, syms: Sequence[DataSymbol]):
        self.syms = tuple(syms)
        blocks: dict = {}
        for pos, s in enumerate(self.syms):
            blocks.setdefault(id(s.law), (s.law, []))[1].append((pos, s.index))
        self.blocks = list(blocks.values())
        self.cache: dict = {}

    def __call__(self, monom: tuple) -> sp.Expr:
        m = self.cache.get(monom)
        if m is None:
            m = sp.S.One
            for law, members in self.blocks:
                powers = [0] * law.dim
                for pos, idx in members:
                    powers[idx] = monom[pos]
                if any(powers):
                    m = m * law.moment(tuple(powers))
                    if m == 0:
                        break
            m = sp.expand(m)
            self.cache[monom] = m
        return m


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
    m = moments(monom)
    try:
        return dom.from_sympy(m)
    except CoercionFailed:
        raise _NeedEX from None


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


def _is_exp(e):
    return isinstance(e, sp.exp)


def stable_form(expr):
    """Rewrite overflow-prone forms for numeric means (docs/theory.md §8).

    ``log(1 + exp(g))`` becomes ``logaddexp(0, g)`` (whose derivative is the stable
    ``1/(1 + exp(-g))``), and ``exp(m g) / (1 + exp(g))**k`` with ``0 < m <= k``
    becomes ``(1 + exp(-g))**-m (1 + exp(g))**(m - k)``: the same function, but no
    inf/inf at the far Gauss nodes of a sharp integrand.

    Examples
    --------
    >>> import sympy as sp
    >>> z = sp.Symbol("z")
    >>> stable_form(sp.exp(z) / (1 + sp.exp(z)))
    1/(1 + exp(-z))
    >>> stable_form(sp.log(1 + sp.exp(-z)))
    logaddexp(0, -z)
    """
    from sympy.codegen.numpy_nodes import logaddexp

    def one_plus_exp(b):
        if b.is_Add and len(b.args) == 2 and sp.S.One in b.args:
            other = b.args[0] if b.args[1] == 1 else b.args[1]
            if _is_exp(other):
                return other.args[0]
        return None

    def rewrite(e):
        if not e.args:
            return e
        args = [rewrite(a) for a in e.args]
        e = e.func(*args) if args != list(e.args) else e
        if isinstance(e, sp.log):
            g = one_plus_exp(e.args[0])
            if g is not None:
                return logaddexp(sp.S.Zero, g)
        if e.is_Mul:
            factors = list(e.args)
            for i, a in enumerate(factors):
                if not _is_exp(a):
                    continue
                for j, b in enumerate(factors):
                    if j == i or not (b.is_Pow and b.exp.is_Integer and b.exp < 0):
                        continue
                    g = one_plus_exp(b.base)
                    if g is None:
                        continue
                    m = sp.simplify(a.args[0] / g)
                    k = -b.exp
                    if m.is_Integer and 0 < m <= k:
                        rest = [f for n, f in enumerate(factors) if n not in (i, j)]
                        new = (1 + sp.exp(-g)) ** (-m) * (1 + sp.exp(g)) ** (m - k)
                        return sp.Mul(*rest, new)
        return e

    return rewrite(as_expr(expr))


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
    return DataMean(stable_form(expr) if rule.is_quadrature else expr, all_syms, rule.key)


def expectation(expr, *, n_points: int | None = None, limits: Limits | None = None):
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

    Examples
    --------
    >>> import sympy as sp, smfsym
    >>> from smfsym.expectation import expectation
    >>> x = sp.Symbol("x")
    >>> xi = smfsym.normal("xi", std=2)
    >>> expectation((x - xi) ** 2 / 2)
    x**2/2 + 2
    """
    if isinstance(expr, sp.MatrixBase):
        return expr.applyfunc(lambda e: expectation(e, n_points=n_points, limits=limits))
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
        return _numeric_mean(expr, syms, n_points, limits)
    moments = _Moments(syms)
    try:
        return dom.to_sympy(mean_terms(list(polys[0].as_dict(native=True).items()), dom, moments))
    except _NeedEX:
        return sp.expand(sum(as_expr(c) * moments(m) for m, c in polys[0].as_dict(native=False).items()))


def covariance(u: Sequence, v: Sequence | None = None, *, n_points: int | None = None,
               limits: Limits | None = None) -> sp.ImmutableMatrix:
    """Covariance matrix ``E[(u - Eu)(v - Ev)^T]`` over the data law.

    With ``v`` omitted the result is symmetric and only half is computed.
    Sizes are checked against ``limits`` first (docs/theory.md §8).
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
    check_products(products, limits, "the covariance", "covariance")
    polys, dom = _polys(u + v, syms)
    if polys is None:
        mu = [expectation(e, n_points=n_points, limits=limits) for e in u]
        mv = mu if sym else [expectation(e, n_points=n_points, limits=limits) for e in v]
        out = sp.zeros(n, m)
        for i in range(n):
            for j in range(i if sym else 0, m):
                out[i, j] = expectation(u[i] * v[j], n_points=n_points, limits=limits) - mu[i] * mv[j]
                if sym:
                    out[j, i] = out[i, j]
        return sp.ImmutableMatrix(out)
    moments = _Moments(syms)
    try:
        return _poly_covariance(polys[:n], polys[n:], dom, moments, sym)
    except _NeedEX:
        polys = [sp.Poly(p.as_expr(), *syms, domain="EX") for p in polys]
        return _poly_covariance(polys[:n], polys[n:], sp.EX, moments, sym)


def _poly_covariance(pu, pv, dom, moments, sym):
    tu = [list(p.as_dict(native=True).items()) for p in pu]
    tv = tu if sym else [list(p.as_dict(native=True).items()) for p in pv]
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


def covariance_terms(tu, tv, dom, moments, sym):
    """Covariance matrix of ring-term polynomials (see :func:`covariance`)."""

    def add(a, b):
        return tuple(i + j for i, j in zip(a, b))

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
                    c = _moment_in(dom, moments, add(a, b)) - ma * mean_v[j][b]
                    if c:
                        total += ca * cb * c
            out[i][j] = dom.to_sympy(total)
            if sym:
                out[j][i] = out[i][j]
    return sp.ImmutableMatrix(out)
