"""Do the mean and the covariance exist? A tail-growth rule for non-polynomial losses.

docs/theory.md §8. For each data symbol xi and each direction of its support
(xi -> +oo, xi -> -oo), the loss and each gradient entry are bounded by
C exp(r |xi|) |xi|^p (the *growth* (r, p), compared lexicographically), found
structurally from the expression tree:

- constants and bounded functions (sin, cos, tanh, atan, erf, sign, Heaviside,
  1/b with b >= 1 provably, e.g. the sigmoid 1/(1 + exp(-z))): (0, 0);
- xi: (0, 1); sums: the maximum; products: rates and degrees add;
  b**q (q > 0): (q r, q p);  Abs, Max, Min: as their arguments;
- exp(g) with g linear in xi (coefficient a): rate a in the direction +oo, -a in -oo;
  g of higher degree: rate +oo or -oo (by the sign of the leading coefficient);
  cosh, sinh: exp of +-g;
- log(b): (0, 1) when b grows or decays exponentially (log(1 + exp(z)) grows
  linearly), else (0, 0) (log factors ignored);
- anything else, or a rate whose sign depends on symbols: undecided.

The mean needs E[growth] < oo, the covariance E[growth^2] < oo (rates and
degrees doubled). Per law:

- bounded support (Uniform, Beta, finite laws, data sets): always finite;
- Normal (also correlated): any finite exponential rate; rate +oo undecided;
- Exponential(rate lam): rate r < lam; Gamma(shape, scale th): r < 1/th;
- Student-t(nu): no exponential rate r > 0; degree p < nu. An exponential exp(c xi) whose
  coefficient c is symbolic (a parameter; not identically 0, or sympy would have dropped it)
  grows exponentially in one of the two directions wherever c != 0: infinite there.

Studies need more: E phi(x_k) for a polynomial test function phi of degree q needs moments of
order q times the data degree of the gradient (one SGD step moves x by eta grad f; the last step
alone makes phi(x_k) a polynomial of that degree in the last sample), which
:func:`check_phi_tails` checks against the same per-law rules.

A violation raises ``ValueError``; an undecided case warns (:class:`TailWarning`).
Singularities at finite points (e.g. log(xi) at 0) are not analysed.
"""
from __future__ import annotations

import math
import warnings

import sympy as sp
from .._checks import as_expr

__all__ = ["TailWarning", "growth", "check_tails", "check_phi_tails"]

_INF = math.inf
_BOUNDED = (sp.sin, sp.cos, sp.tanh, sp.atan, sp.erf, sp.sign, sp.Heaviside, sp.erfc)


class TailWarning(UserWarning):
    """The tail-growth rule could not decide whether a mean or covariance exists."""


class _Undecided(Exception):
    pass


def _num(x):
    x = as_expr(x)
    if x.is_number:
        v = float(x)
        if math.isfinite(v):
            return v
    raise _Undecided(f"the coefficient {x} is not a number")


# Under a Gaussian law every exponential rate is integrable, so a linear exponent whose
# coefficient is symbolic (a parameter) only has to be known finite: it stands in as this.
_SYMBOLIC_FINITE_RATE = 1e300


def growth(expr, xi, direction: int = 1, symbolic_rates: bool = False) -> tuple:
    """Growth ``(rate, degree)`` of ``|expr|`` as ``xi -> direction * oo`` (see the module docstring).

    Raises ``_Undecided`` (internal) when the rule cannot decide. With
    ``symbolic_rates`` a linear exponent with a symbolic coefficient counts as a
    finite (huge) rate, which is all a Gaussian tail needs.

    Examples
    --------
    >>> import sympy as sp
    >>> xi, x = sp.symbols("xi x", real=True)
    >>> growth(sp.log(1 + sp.exp(-2 * xi)), xi, +1), growth(sp.log(1 + sp.exp(-2 * xi)), xi, -1)
    ((0.0, 0.0), (0.0, 1.0))
    >>> growth(sp.exp(3 * xi) * xi**2, xi, -1)
    (-3.0, 2.0)
    """
    e = as_expr(expr)
    if xi not in e.free_symbols:
        return (0.0, 0.0)
    if e == xi:
        return (0.0, 1.0)
    if e.is_Add:
        return max(growth(a, xi, direction, symbolic_rates) for a in e.args)
    if e.is_Mul:
        r = p = 0.0
        for a in _cancel_logistic(e.args):
            ra, pa = growth(a, xi, direction, symbolic_rates)
            r, p = r + ra, p + pa
        return (r, p)
    if e.is_Pow:
        b, q = e.base, e.exp
        if xi in q.free_symbols:
            raise _Undecided(f"the exponent of {e} depends on the data")
        qv = _num(q)
        if qv > 0:
            rb, pb = growth(b, xi, direction, symbolic_rates)
            return (qv * rb, qv * pb)
        if qv == 0:
            return (0.0, 0.0)
        if (b - 1).is_nonnegative or _away_from_zero(b, xi):
            return (0.0, 0.0)  # 1 / b with b >= 1, or |b| >= c > 0: bounded
        rb, pb = growth(b, xi, direction, symbolic_rates)
        if (rb, pb) > (0.0, 0.0) and _numeric_polynomial(b, xi):
            # 1/b -> 0 in this tail; b's real roots (poles at finite points) are the pole rule's (_singular_mean)
            return (0.0, 0.0)
        if (rb, pb) > (0.0, 0.0) and b.is_positive:
            raise _Undecided(f"{e} decays; its lower bound is not analysed")
        if b.free_symbols - {xi}:
            raise _Undecided(f"{e} may have a pole that moves with the parameters; such poles are not analysed "
                             "(docs/theory.md §8): the mean may be infinite")
        raise _Undecided(f"{e} may be singular")
    if isinstance(e, sp.exp):
        return _exp_growth(e.args[0], xi, direction, symbolic_rates)
    if isinstance(e, (sp.cosh, sp.sinh)):
        g = e.args[0]
        return max(_exp_growth(g, xi, direction, symbolic_rates), _exp_growth(-g, xi, direction, symbolic_rates))
    if isinstance(e, sp.log):
        # any finite exponential rate of the argument makes the logarithm grow linearly
        rb, pb = growth(e.args[0], xi, direction, True)
        if rb != 0:
            return (0.0, 1.0) if math.isfinite(rb) else _undecided_log(e)
        return (0.0, 0.0)
    if isinstance(e, (sp.Abs, sp.re, sp.im)):
        return growth(e.args[0], xi, direction, symbolic_rates)
    if isinstance(e, (sp.Max, sp.Min)):
        return max(growth(a, xi, direction, symbolic_rates) for a in e.args)
    if isinstance(e, _BOUNDED) and all(a.is_real is not False for a in e.args):
        return (0.0, 0.0)
    if isinstance(e, sp.Piecewise):
        return max(growth(a, xi, direction, symbolic_rates) for a, _ in e.args)
    raise _Undecided(f"no growth rule for {type(e).__name__}")


def _numeric_polynomial(b, xi) -> bool:
    """Whether ``b`` is a polynomial in ``xi`` alone with number coefficients (its roots are known numbers)."""
    if b.free_symbols != {xi} or not b.is_polynomial(xi):
        return False
    return all(c.is_number for c in sp.Poly(b, xi).all_coeffs())


def _bounded_reciprocal(expr, xi) -> bool:
    """Whether ``expr`` holds 1 / b (b depending on xi) that the growth rule bounded instead of measuring."""
    return any(a.exp.is_negative and xi in a.base.free_symbols and ((a.base - 1).is_nonnegative
                                                                     or _away_from_zero(a.base, xi))
               for a in expr.atoms(sp.Pow))


def _away_from_zero(b, xi) -> bool:
    """Whether |b| >= c > 0 as xi varies: b is a positive term free of xi plus terms with non-negative real
    parts (non-negative multiples of one principal square root of anything, absolute values, non-negative
    expressions), as in an adaptive optimizer's 1 / (eps + sigma sqrt(v))."""
    if not b.is_Add:
        return False
    terms = sp.Add.make_args(b)
    if not any(xi not in t.free_symbols and t.is_positive for t in terms):
        return False
    for t in terms:
        if t.is_nonnegative or isinstance(t, sp.Abs):
            continue
        factors = sp.Mul.make_args(t)
        roots = [f for f in factors if f.is_Pow and f.exp == sp.S.Half]  # Re sqrt(z) >= 0 (principal branch)
        if len(roots) != 1 or not all(f.is_nonnegative for f in factors if f is not roots[0]):
            return False
    return True


def _cancel_logistic(factors):
    """Drop pairs exp(g) * B**(-q), q >= 1, B >= 1 + exp(g): their product lies in (0, 1]."""
    factors = list(factors)
    for i, a in enumerate(factors):
        if not isinstance(a, sp.exp):
            continue
        for j, b in enumerate(factors):
            if j == i or not (b.is_Pow and b.exp.is_number and b.exp <= -1 and b.base.is_Add):
                continue
            if a in b.base.args and (b.base - a - 1).is_nonnegative:
                rest = [f for k, f in enumerate(factors) if k not in (i, j)]
                if b.exp != -1:
                    rest.append(b.base ** (b.exp + 1))
                return _cancel_logistic(rest)
    return factors


def _undecided_log(e):
    raise _Undecided(f"the argument of {e} grows faster than exponentially")


def _exp_growth(g, xi, direction, symbolic_rates=False):
    try:
        poly = sp.Poly(g, xi)
    except sp.PolynomialError:
        rg, pg = growth(g, xi, direction, symbolic_rates)
        if (rg, pg) <= (0.0, 0.0):
            return (0.0, 0.0)  # exp of a bounded function
        raise _Undecided(f"exp({g}) of a non-polynomial exponent") from None
    deg = poly.degree()
    if deg <= 0:
        return (0.0, 0.0)
    if deg == 1 and symbolic_rates and not poly.LC().is_number:
        return (_SYMBOLIC_FINITE_RATE, 0.0)
    lead = _num(poly.LC()) * (direction ** deg)
    if deg == 1:
        return (lead, 0.0)
    return (_INF, 0.0) if lead > 0 else (-_INF, 0.0)


def _directions(law):
    fam = law.family
    if fam in ("Uniform", "Beta", "Finite", "Bernoulli", "Rademacher", "Categorical", "Empirical") \
            or law.is_finite:
        return ()
    if fam in ("Exponential", "Gamma"):
        return (1,)
    return (1, -1)


def _admits(law, rate, degree, power) -> str | None:
    """None if E[(exp(rate t) t^degree)^power] is finite under ``law``'s tail, else the reason."""
    r, p = rate * power, degree * power
    fam = law.family
    if r < 0 or (r == 0 and p == 0):
        return None
    if fam in ("Normal", "MultivariateNormal"):
        if math.isfinite(r):
            return None
        raise _Undecided("super-exponential growth under a Gaussian law")
    if fam in ("Exponential", "Gamma") and r == 0:
        return None  # polynomial growth: every moment of an exponential or gamma law exists, whatever its rate
    if fam == "Exponential":
        lam = _num(law.rate)
        return None if r < lam else f"exponential growth exp({r:g} xi) is not integrable against exp(-{lam:g} xi)"
    if fam == "Gamma":
        lam = 1.0 / _num(law.scale)
        return None if r < lam else f"exponential growth exp({r:g} xi) is not integrable against exp(-{lam:g} xi)"
    if fam == "StudentT":
        nu = _num(law.nu)
        if r >= _SYMBOLIC_FINITE_RATE:
            return ("an exponential exp(c * xi) with a symbolic coefficient c grows exponentially as xi -> +oo or "
                    "-oo wherever c != 0, which no Student-t tail integrates: infinite for every parameter value "
                    "with c != 0")
        if r > 0:
            return f"exponential growth (rate {r:g}) is not integrable against a Student-t tail"
        return None if p < nu else f"growth |xi|^{p:g} needs moments of order {p:g}, but only those below {nu:g} exist"
    raise _Undecided(f"no tail rule for the law family {fam}")


def _law_growth(e, xi, direction, law) -> tuple:
    """:func:`growth` of ``e`` as seen by ``law``'s tail.

    A linear exponent with a symbolic coefficient is undecided in one direction (its sign is
    unknown) but decided for laws whose verdict does not depend on it: any finite rate is
    integrable against a Gaussian, and none against a Student-t law, whose two tails are both
    checked (a non-zero coefficient is positive in one of the directions).
    """
    try:
        return growth(e, xi, direction)
    except _Undecided:
        if law.family not in ("Normal", "MultivariateNormal", "StudentT"):
            raise
        return growth(e, xi, direction, symbolic_rates=True)


def _realified(exprs, data):
    """Parameters and constants as real symbols: lets sympy prove e.g. 1 + exp(x xi) >= 1."""
    exprs = [as_expr(e) for e in exprs]
    free = set().union(*[e.free_symbols for e in exprs]) - set(data) if exprs else set()
    real = {s: sp.Symbol(s.name, real=True) for s in free if s.is_real is not True}
    return [e.xreplace(real) for e in exprs]


def check_phi_tails(problem, phi, *, stacklevel: int = 3, state=None, moves=None) -> None:
    """Raise if E phi(x_k) of SGD is provably infinite under the data law; warn if undecided.

    ``phi`` is a study's test function: for a polynomial of degree q in the parameters, one
    SGD step x - eta grad f(x, xi) makes phi(x_k) a polynomial in the last sample xi whose
    growth is that of grad f to the power q, so E phi(x_k) needs E[growth(grad f)^q] < oo
    (docs/theory.md §8): q times the data degree of the gradient against the number of finite
    moments of the law (Student-t(5): orders below 5). This is necessary, not sufficient (earlier
    steps compound when grad f is not affine in x). Callables and non-polynomial phi are not
    analysed. Any optimizer written as an update map z -> U(z, xi) is checked the same way with
    ``state`` (its state symbols, phi's variables) and ``moves`` (the entries of U(z, xi) - z).

    Examples
    --------
    >>> import sympy as sp, smfsym
    >>> x = sp.Symbol("x")
    >>> p = smfsym.Problem((smfsym.student_t("a", 5) * x - smfsym.normal("y")) ** 2 / 2, [x])
    >>> check_phi_tails(p, x**2)  # grad f = a (a x - y): E a^4 < oo
    >>> check_phi_tails(p, x**4)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: E phi(x_k) is infinite for phi = x**4 ...
    """
    variables = tuple(problem.params if state is None else state)
    if not isinstance(phi, sp.Expr) or not phi.free_symbols & set(variables):
        return
    try:
        q = sp.Poly(sp.expand(phi), *variables).total_degree()
    except sp.PolynomialError:
        return  # not polynomial in the parameters: not analysed
    if q == 0:
        return
    grads = _realified(problem.grad_f_compact if moves is None else moves, problem.data)
    step = ("one SGD step moves x by eta grad f, and the gradient entry" if moves is None else
            "one optimizer step moves the state by U(z, xi) - z, and its entry")
    undecided = []
    for xi in problem.data:
        law = xi.law
        for direction in _directions(law):
            side = "+oo" if direction > 0 else "-oo"
            for g in grads:
                try:
                    r, p = _law_growth(g, xi, direction, law)
                    bad = _admits(law, r, p, q)
                except _Undecided as why:
                    undecided.append(f"{xi} -> {side} ({why})")
                    continue
                if bad and _bounded_reciprocal(g, xi):
                    # 1 / b with b bounded away from 0 counts as growth 0, an upper bound when b grows too
                    # (RMSprop's g / (eps + sqrt(v)) is bounded): not a proof that the mean is infinite
                    undecided.append(f"{xi} -> {side} ({g} grows at most like |{xi}|^{p:g}, which would need "
                                     f"{bad}; its reciprocal factors may make it smaller)")
                    continue
                if bad:
                    raise ValueError(
                        f"E phi(x_k) is infinite for phi = {phi} (degree {q} in the {'parameters' if state is None else 'state'}): {step} {g} "
                        f"grows like |{xi}|^{p:g}"
                        + (f" exp({r:g} |{xi}|)" if 0 < r < _SYMBOLIC_FINITE_RATE else "")
                        + f" as {xi} -> {side}, so phi(x_k) needs its {q}-th power integrable under the law of "
                        f"{xi} ({law!r}): {bad} (tail-growth rule, docs/theory.md §8). Use a test function of lower "
                        "degree (or a bounded one) or a law with more finite moments.")
    if undecided:
        warnings.warn(
            f"cannot decide whether E phi(x_k) exists for phi = {phi}: " + "; ".join(dict.fromkeys(undecided))
            + ". Monte Carlo means of an infinite moment are meaningless.", TailWarning, stacklevel=stacklevel)


def check_step_phi_tails(problem, phi, state, update, *, stacklevel: int = 3) -> None:
    """:func:`check_phi_tails` for an optimizer written as an update map z -> U(z, xi) (``update``) on
    ``state``: the moves U - z of phi's own variables (Adam's step counter moves by 1 whatever the data)."""
    own = phi.free_symbols if isinstance(phi, sp.Expr) else set()
    check_phi_tails(problem, phi, stacklevel=stacklevel + 1, state=state,
                    moves=[u - z for u, z in zip(update, state) if z in own])


def _support(law):
    """(low, high, k_low, k_high): the support of a continuous univariate law with numeric parameters, and the
    density's exponents at its ends ((t - low)^k_low, (high - t)^k_high; 0 where it is positive there); None where
    not known."""
    fam, num = law.family, (lambda v: float(v) if as_expr(v).is_number else None)
    if fam in ("Normal", "StudentT"):
        return (-math.inf, math.inf, 0.0, 0.0)
    if fam == "Exponential":
        return (0.0, math.inf, 0.0, 0.0)
    if fam == "Gamma" and num(law.shape) is not None:
        return (0.0, math.inf, num(law.shape) - 1, 0.0)
    if fam == "Uniform" and None not in (num(law.a), num(law.b)):
        return (num(law.a), num(law.b), 0.0, 0.0)
    if fam == "Beta" and None not in (num(law.a), num(law.b)):
        return (0.0, 1.0, num(law.a) - 1, num(law.b) - 1)
    return None


def _singular_mean(e, xi, law, power) -> str | None:
    """Why E|e|^power is infinite when e is a rational function of xi whose denominator has a real root r in
    the support, where the numerator does not vanish: |e| ~ c |xi - r|^-m there, and the density ~ (t - low)^k
    at an end (k = 0 inside), so the mean needs m power < 1 + k. None when this does not prove it."""
    support = _support(law) if law.dim == 1 else None
    if support is None:
        return None
    num, den = sp.cancel(sp.together(e)).as_numer_denom()
    if xi not in den.free_symbols or not (num.is_polynomial(xi) and den.is_polynomial(xi)):
        return None
    poly = sp.Poly(den, xi)
    if any(not c.is_number for c in poly.all_coeffs()):
        return None  # roots that move with the parameters: not analysed
    low, high, k_low, k_high = support
    for root, m in sp.roots(poly, filter="R").items():
        r = float(root)
        if not (low <= r <= high):
            continue
        at = sp.simplify(num.subs(xi, root))
        if at == 0 or at.is_zero:  # the numerator may cancel the pole for some parameters: not a proof
            continue
        need = 1 + (k_low if r == low else k_high if r == high else 0.0)
        if m * power >= need:
            near = f"|{xi}|" if root == 0 else f"|{xi} - {root}|"
            return (f"{e} is singular at {xi} = {root} in the support of {xi}, like {near}^-{m}, so its "
                    f"{'mean' if power == 1 else 'square'} is not integrable there")
    return None


def check_tails(loss, grad, data, *, stacklevel: int = 4, names: tuple = ("F = E f", "Sigma")) -> None:
    """Raise if F = E f or Sigma = Cov(grad f) provably does not exist; warn if undecided.

    Parameters
    ----------
    loss : sympy expression
    grad : sequence of sympy expressions (the gradient entries)
    data : sequence of DataSymbol
    names : (str, str)
        What the first and second moments are called in messages.
    """
    undecided = []
    loss, *grad = _realified([loss, *grad], data)
    for xi in data:
        law = xi.law
        for what, exprs, power in ((names[0], [loss], 1), (names[1], list(grad), 2)):
            for e in exprs:
                why = _singular_mean(e, xi, law, power) if not law.is_finite else None
                if why:
                    raise ValueError(f"{what} is infinite: {why} (docs/theory.md §8). Keep the data away from the "
                                     "pole (shift the denominator or use a law that avoids it).")
        for direction in _directions(law):
            side = "+oo" if direction > 0 else "-oo"
            for what, exprs, power in ((names[0], [loss], 1), (names[1], list(grad), 2)):
                for e in exprs:
                    try:
                        bad = _admits(law, *_law_growth(e, xi, direction, law), power)
                    except _Undecided as why:
                        undecided.append(f"{what} in {xi} -> {side} ({why})")
                        continue
                    if bad:
                        raise ValueError(
                            f"{what} is infinite (for some parameter values at least): the law of {xi} "
                            f"({law!r}) has too heavy a tail for "
                            f"{e} as {xi} -> {side}: {bad} (tail-growth rule, docs/theory.md §8)."
                        )
    if undecided:
        warnings.warn(
            "cannot decide whether the mean and covariance of the loss exist: "
            + "; ".join(dict.fromkeys(undecided))
            + ". Check the moments by hand; numeric means may be meaningless if they are infinite.",
            TailWarning, stacklevel=stacklevel,
        )
