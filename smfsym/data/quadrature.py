"""Numeric rules for data means that are not polynomial in the data (docs/theory.md §8).

A :class:`QuadratureRule` is a tensor product of each law's Gauss rule (or the
rows of a data set, or a finite support); :class:`AdaptiveMean` evaluates it
for a batch of states with an n- against 2n-point error estimate, refining per
state up to the caps of :class:`~smfsym.Limits` and warning
(:class:`~smfsym.QuadratureWarning`) when the tolerance is not met.
:func:`stable_form` rewrites integrands that overflow at far nodes.
"""
from __future__ import annotations

import itertools
import warnings
from typing import Sequence

import numpy as np
import sympy as sp

from .laws import Law
from ..limits import Limits, QuadratureWarning, as_limits, refuse
from .._checks import as_expr, to_float

__all__ = ["QuadratureRule", "AdaptiveMean", "stable_form", "confirm_cancelling"]

# Numeric rules are kept in a registry so that DataMean's sympy args stay plain
# (a Str key): sympy rebuilds expressions from their args in subs and diff.
_RULES: dict[str, "QuadratureRule"] = {}

#: The Gauss rule of each continuous law family (Student-t: Gauss-Legendre on its quantile function).
GAUSS_RULES = {"Normal": "Gauss-Hermite", "MultivariateNormal": "Gauss-Hermite", "Uniform": "Gauss-Legendre",
               "Exponential": "Gauss-Laguerre", "Gamma": "Gauss-Laguerre", "Beta": "Gauss-Jacobi",
               "StudentT": "Gauss-Legendre on the quantile"}


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
        """The rule's name: each law's rule and, for the continuous ones, the points it is refined over.

        Examples
        --------
        >>> import smfsym
        >>> QuadratureRule([smfsym.normal("a").law, smfsym.bernoulli("b").law], 16).describe()
        'adaptive Gauss-Hermite (16 to 512 points) x exact sum over Bernoulli'
        """
        levels = self.levels()
        span = f"{levels[0]} points" if len(levels) == 1 else f"{levels[0]} to {levels[-1]} points"
        per = " per coordinate" if self.n_continuous > 1 else ""
        parts, named = [], False
        for law in self.laws:
            if law.family == "Empirical":
                parts.append(f"data set (M={law.size})")
            elif law.is_finite:
                parts.append(f"exact sum over {law.family}")
            else:
                kind = GAUSS_RULES.get(law.family, "Gauss")
                if not named:  # the span is said once, after the first continuous law's rule
                    kind = ("adaptive " if len(levels) > 1 else "") + kind
                    named = True
                parts.append(kind)
        if named:
            last = max(i for i, law in enumerate(self.laws) if not law.is_finite)
            parts[last] += f" ({span}{per}{'' if len(levels) > 1 else ', not error-checked'})"
        return " x ".join(parts)

    def levels(self) -> list:
        """The points per continuous coordinate the rule is evaluated with: n, 2n, 4n, ... up to the caps
        (``Limits.max_quad_points``, the laws' own largest Gauss rules, ``Limits.max_nodes``)."""
        n, k = self.n_points, self.n_continuous
        if not k:
            return [n]
        caps = [law.max_quadrature_points for law in self.laws if law.max_quadrature_points is not None]
        most = min([self.limits.max_quad_points] + caps)
        out = [n]
        while True:
            n2 = 2 * n
            if n2 > most or n2 ** k * self._finite_size > self.limits.max_nodes:
                return out
            out.append(n2)
            n = n2

    def describe_laws(self, values=None) -> str:
        """The laws of the rule with their parameters (and the numbers ``values`` gives them), for messages."""
        parts = []
        for law in self.laws:
            names = ", ".join(s.name for s in law.symbols)
            keys = getattr(law, "parameter_names", ())
            params = list(law.parameters)
            if keys and len(keys) == len(params):
                shown = []
                for key, p in zip(keys, params):
                    text = f"{key}={p}"
                    if values and getattr(p, "free_symbols", None):
                        try:
                            text += f" = {to_float(p, values, key):g}"
                        except (TypeError, ValueError):
                            pass
                    shown.append(text)
                parts.append(f"{law.family}({names}; {', '.join(shown)})")
            else:
                parts.append(f"{law.family}({names})" if law.family != "Empirical" else f"data set (M={law.size})")
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


def rule_sums(fn, nodes, weights, cols, checked):
    """Per state, the rule's sum of ``fn`` (and of ``|fn|`` when ``checked``), and the number of finite
    states whose sum is not finite.

    ``cols`` are the state columns (P,), ``nodes`` (Q, k), ``weights`` (Q,). States are taken in
    blocks of at most ``_CHUNK_ELEMENTS`` (state, node) pairs, and each sum is a row-wise reduction
    (not a BLAS gemv), so a state's mean does not depend on its batch. Generated code embeds this
    very function (smfsym.io.codegen_means), so both give the same numbers.
    """
    P = cols[0].shape[0] if cols else 1
    Q = nodes.shape[0]
    out = np.empty(P)
    scale = np.empty(P) if checked else None
    step = max(1, _CHUNK_ELEMENTS // max(Q, 1))
    node_cols = [nodes[None, :, j] for j in range(nodes.shape[1])]
    bad = 0
    for lo in range(0, P, step):
        hi = min(P, lo + step)
        args = [c[lo:hi, None] for c in cols] + node_cols
        with np.errstate(all="ignore"):
            val = np.broadcast_to(np.asarray(fn(*args), dtype=float), (hi - lo, Q))
            out[lo:hi] = np.sum(val * weights, axis=1)
            if checked:
                scale[lo:hi] = np.sum(np.abs(val) * weights, axis=1)
        nonfinite = ~np.isfinite(out[lo:hi])
        if nonfinite.any():
            ok_state = np.all([np.isfinite(c[lo:hi]) for c in cols], axis=0) if cols else True
            bad += int(np.count_nonzero(nonfinite & ok_state))
    return out, scale, bad


#: A state whose mean is below this fraction of its E|integrand| (more than 90% of the integrand's mass
#: cancels: the positive and negative parts agree to within 10%) is not accepted on one n- against 2n-point
#: agreement alone: two symmetric rules that both miss a feature (E tanh(50 (a - 0.1)) under N(0, 1): no node of
#: the 16- or 32-point Gauss-Hermite rule lies in (0, 0.1)) both cancel to ~0 and agree, and a mean that small
#: against its scale is exactly what that looks like. Means of one sign (losses, probabilities) never pay the check.
CANCELLATION = 0.1


def confirm_cancelling(evaluate, sub, n, fine, fscale, err, done, atol, rtol):
    """``(err, done)`` after checking the states accepted at ``n`` points whose mean cancels.

    A state with ``done`` and ``|fine| < CANCELLATION * fscale`` is evaluated once more with ``n - 1``
    points per coordinate (the other parity: an odd Gauss rule has a node at the centre of a symmetric law)
    and stays accepted only if that value agrees with ``fine`` to the same tolerance; its error is the
    larger of the two differences. The value of an accepted state is ``fine`` either way.
    ``evaluate(cols, n)`` returns the rule's sums at ``n`` points. Generated code embeds this very function
    (smfsym.io.codegen_means), so both refine alike.
    """
    check = done & (np.abs(fine) < CANCELLATION * fscale)
    if not np.any(check):
        return err, done
    idx = np.flatnonzero(check)
    other = evaluate([c[idx] for c in sub], n - 1)[0]
    err, done = err.copy(), done.copy()
    err[idx] = np.maximum(err[idx], np.abs(other - fine[idx]))
    done[idx] = ~(err[idx] > atol + rtol * fscale[idx])  # NaN counts as done (warned)
    return err, done


class AdaptiveMean:
    """E over a rule's nodes for a batch of states, refined per state (docs/theory.md §8).

    For every state the n-point and 2n-point rules are compared; where
    ``|Q_2n - Q_n| > quad_atol + quad_rtol Q_2n[|f|]`` (the scale is the mean of the
    integrand's absolute value, so cancelling means are judged fairly) the state is re-evaluated with
    4n, 8n, ... points. A state accepted while ``|Q_2n| < CANCELLATION Q_2n[|f|]`` (heavy cancellation,
    where two symmetric rules can agree by missing the same feature) must also agree with the
    ``2n - 1``-point rule of the other parity (:func:`confirm_cancelling`), or it is refined further, up to ``Limits.max_quad_points`` per coordinate and
    ``Limits.max_nodes`` in all. The value returned is the finest rule's. A state
    whose estimate still misses the tolerance triggers a :class:`QuadratureWarning`
    naming the estimate; an integrand that overflows at the nodes (while the state
    is finite) warns too. Each state's value depends on that state only, so results
    do not depend on how paths are chunked. Finite laws and data sets are exact sums
    and are not refined.

    Examples
    --------
    >>> import numpy as np, sympy as sp, smfsym
    >>> from smfsym.data.means import QuadratureRule
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
            # a rule computed past its range (NaN weights, or none left) summed to an exact 0 that the
            # refinement then took as converged: refuse it instead of dropping the NaNs
            if not (np.all(np.isfinite(w)) and np.all(np.isfinite(nodes[w > 0]))
                    and abs(float(np.sum(w[w > 0])) - 1.0) < 1e-8):
                raise ArithmeticError(f"the {n}-point rule of {self.rule.describe()} over {self.rule.describe_laws(self.values)} "
                                      "could not be computed (non-finite nodes or weights): this is a bug, please "
                                      "report it")
            keep = w > 0  # far Gauss nodes whose weight underflowed: 0 * inf must not make NaN
            self._nodes[n] = (nodes[keep], w[keep])
        return self._nodes[n]

    def _eval(self, cols, n):
        nodes, weights = self._rule(n)
        out, scale, bad = rule_sums(self.fn, nodes, weights, cols, self.rule.is_quadrature)
        if bad:
            warnings.warn(
                f"the integrand of a data mean ({self.rule.describe()}) overflowed or was undefined at some "
                f"nodes for {bad} of {out.shape[0]} finite state(s): the mean is NaN there. Rewrite the loss in a "
                "numerically stable form (e.g. log(1 + exp(z)) rather than a ratio of exponentials).",
                QuadratureWarning, stacklevel=3,
            )
        return out, scale

    def __call__(self, cols):
        cols = [np.asarray(c, dtype=float) for c in cols]
        levels = self.rule.levels()  # [n] for a rule without continuous laws: an exact sum
        est, scale = self._eval(cols, levels[0])
        if len(levels) == 1:
            if self.rule.is_quadrature:
                self._warn_unchecked()
            self.last_error = None if not self.rule.is_quadrature else np.full(est.shape, np.nan)
            return est
        todo = np.arange(est.shape[0])
        err = np.full(est.shape, np.inf)
        lim = self.limits
        before = np.full(est.shape, np.inf)  # each state's previous change: is the refinement converging?
        for n in levels[1:]:
            before[todo] = err[todo]
            sub = [c[todo] for c in cols] if cols else cols
            fine, fscale = self._eval(sub, n) if cols else self._eval(cols, n)
            e = np.abs(fine - est[todo])
            est[todo] = fine
            err[todo] = e
            scale[todo] = fscale
            done = ~(e > lim.quad_atol + lim.quad_rtol * fscale)  # NaN counts as done (warned)
            e, done = confirm_cancelling(self._eval, sub, n, fine, fscale, e, done,
                                         lim.quad_atol, lim.quad_rtol)
            err[todo] = e
            todo = todo[~done]
            if todo.size == 0:
                break
        self.last_error = err
        missed = np.isfinite(est) & (err > lim.quad_atol + lim.quad_rtol * scale)
        if np.any(missed):
            rel = float(np.max(err[missed] / np.maximum(scale[missed], lim.quad_atol)))
            # The last change estimates the error of the finer rule only where the rules converge fast (then
            # it is an upper bound); changes that hardly shrink (a jump or kink in the integrand) mean the
            # finest rule can still be several times that far from the mean (docs/theory.md §8).
            with np.errstate(invalid="ignore", divide="ignore"):
                ratio = float(np.nanmax(np.where(missed, err / before, np.nan)))
            slow = (f" The last two refinements changed the mean by similar amounts (ratio up to {ratio:.2g}): "
                    "the rules have not begun to converge, so the actual error can be several times this "
                    "estimate." if ratio > 0.5 else "")
            warnings.warn(
                f"a quadrature mean ({self.rule.describe()}) "
                f"missed its tolerance at {int(missed.sum())} of {est.size} state(s): estimated error up to "
                f"{rel:.2g} relative to E|integrand| (tolerance quad_rtol={lim.quad_rtol:g}, quad_atol={lim.quad_atol:g})."
                f"{slow} "
                "The integrand is probably sharp or not smooth (a kink, a root at the edge of the support); "
                + (f"{levels[-1]} points is the most the Gauss rule of {self._capped_by()} is computed with, so "
                   "rewrite the integrand, or use a data set." if self._capped_by() else
                   "raise `Limits.max_quad_points` / `Limits.max_nodes`, or use a data set."),
                QuadratureWarning, stacklevel=3,
            )
        return est

    def _capped_by(self) -> str:
        """The laws whose own bound on Gauss points stopped the refinement (empty: the Limits did)."""
        caps = {law.max_quadrature_points for law in self.rule.laws if law.max_quadrature_points is not None}
        if not caps or min(caps) >= self.limits.max_quad_points:
            return ""
        return ", ".join(f"{law.family}({', '.join(s.name for s in law.symbols)})" for law in self.rule.laws
                         if law.max_quadrature_points == min(caps))

    def _warn_unchecked(self):
        if not getattr(self, "_warned_unchecked", False):
            self._warned_unchecked = True
            warnings.warn(
                f"a quadrature mean ({self.rule.describe()}) cannot be error-checked: doubling its points "
                "would exceed `Limits.max_quad_points` or `Limits.max_nodes`.",
                QuadratureWarning, stacklevel=4,
            )


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
