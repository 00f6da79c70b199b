"""Small validation helpers shared by every module.

Validation follows sympy.stats: a condition on a symbolic quantity raises only
when it is *provably* false, so symbolic parameters pass through untouched.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import sympy as sp


def _refuse_strings(x: Any, argument: str) -> None:
    if isinstance(x, (str, bytes)):
        raise TypeError(f"`{argument}` must be a number or a sympy expression, not a string ({x!r:.60}); "
                        "strings become sympy only through smfsym.spec.parse_expression.")
    if isinstance(x, (list, tuple, set, frozenset)):
        for v in x:
            _refuse_strings(v, argument)
    elif isinstance(x, dict):
        for k, v in x.items():
            _refuse_strings(k, argument)
            _refuse_strings(v, argument)
    elif isinstance(x, np.ndarray) and x.dtype.kind in "OUSV":
        for v in x.ravel():
            _refuse_strings(v, argument)


def as_expr(x: Any, argument: str = "expression", **kwargs) -> Any:
    """``sympy.sympify`` that never parses a string, however deeply nested (docs/theory.md §8).

    The only route from text to sympy is :func:`smfsym.spec.parse_expression`
    (an allow-list translator); every other conversion in the package goes through here.

    Examples
    --------
    >>> as_expr([1, 2.5])
    [1, 2.50000000000000]
    >>> as_expr("__import__('os')")
    Traceback (most recent call last):
    ...
    TypeError: `expression` must be a number or a sympy expression, not a string ("__import__('os')"); strings become sympy only through smfsym.spec.parse_expression.
    """
    _refuse_strings(x, argument)
    return sp.sympify(x, **kwargs)


def provably_false(condition: Any) -> bool:
    """True only when sympy can prove ``condition`` false."""
    cond = as_expr(condition, "condition")
    return cond is sp.false or cond == sp.false


def require(condition: Any, argument: str, expected: str, given: Any) -> None:
    """Raise ``ValueError`` when ``condition`` is provably false."""
    if provably_false(condition):
        raise ValueError(f"`{argument}` must be {expected}; got {given!r}.")


def to_float(expr: Any, values: Mapping[sp.Symbol, float] | None, what: str) -> float:
    """Evaluate ``expr`` to a float, substituting ``values``; name what is missing."""
    e = as_expr(expr, what)
    if values:
        e = e.xreplace({as_expr(k, "values"): as_expr(v, "values") for k, v in values.items()})
    free = e.free_symbols
    if free:
        names = ", ".join(sorted(str(s) for s in free))
        raise ValueError(
            f"{what} depends on the symbol(s) {names}; give numeric values with "
            f"`values={{...}}`."
        )
    return float(e)


def as_symbol_tuple(items: Any, argument: str) -> tuple[sp.Symbol, ...]:
    """Flatten ``items`` into a tuple of distinct sympy symbols."""
    if isinstance(items, sp.Symbol):
        items = (items,)
    try:
        flat = list(sp.flatten(list(items) if not isinstance(items, sp.MatrixBase) else list(items)))
    except TypeError:
        raise TypeError(
            f"`{argument}` must be a symbol or a sequence of sympy symbols; got {items!r}."
        ) from None
    bad = [p for p in flat if not isinstance(p, sp.Symbol)]
    if bad:
        raise TypeError(
            f"`{argument}` must contain only sympy symbols; got {bad!r} "
            f"(of type {', '.join(sorted({type(b).__name__ for b in bad}))})."
        )
    seen: set = set()
    dup = [p for p in flat if p in seen or seen.add(p)]
    if dup:
        raise ValueError(f"`{argument}` must be distinct symbols; repeated: {dup!r}.")
    return tuple(flat)


def numeric_values(values: Mapping | None, known=None) -> dict[sp.Symbol, float]:
    """Normalise a ``values`` mapping (symbol or name -> number).

    A name is resolved against the ``known`` symbols (which may carry assumptions,
    e.g. ``positive=True``), so ``{"s": 2.0}`` binds the problem's own ``s``.
    """
    by_name = {str(s): s for s in (known or ())}
    out: dict[sp.Symbol, float] = {}
    for k, v in (values or {}).items():
        if isinstance(k, str):
            if known is not None and k not in by_name:
                raise ValueError(
                    f"`values` names {k!r}, which is not a symbol of the problem; its symbols are "
                    f"{sorted(by_name)}."
                )
            key = by_name.get(k, sp.Symbol(k))
        else:
            key = k
        if not isinstance(key, sp.Symbol):
            raise TypeError(f"`values` keys must be symbols or names; got {k!r}.")
        try:
            out[key] = float(v)
        except (TypeError, ValueError):
            raise TypeError(f"`values[{k}]` must be a number; got {v!r}.") from None
    return out


def finite_array(a: Any, argument: str, ndim: int | None = None) -> np.ndarray:
    arr = np.asarray(a, dtype=float)
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"`{argument}` must be a {ndim}-d array; got shape {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        n_bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"`{argument}` contains {n_bad} NaN or infinite value(s).")
    return arr


def as_number_or_expr(value: Any, argument: str, *, positive: bool = False) -> sp.Expr:
    """A scalar sympy expression from a number or sympy object; never parses a string.

    Numbers (python, numpy or sympy) must be finite (and positive if asked);
    symbolic expressions pass unless provably non-positive.
    """
    if isinstance(value, (str, bytes)):
        raise TypeError(f"`{argument}` must be a number or a sympy expression, not a string; got {value!r}.")
    if isinstance(value, (bool, np.bool_)) or value is sp.true or value is sp.false:
        raise TypeError(f"`{argument}` must be a number or a sympy expression, not a boolean; got {value!r}.")
    if isinstance(value, (int, float, np.integer, np.floating)):
        e = sp.Float(float(value)) if isinstance(value, (float, np.floating)) else sp.Integer(int(value))
        if isinstance(value, (float, np.floating)) and not np.isfinite(float(value)):
            raise ValueError(f"`{argument}` must be finite; got {value!r}.")
    elif isinstance(value, sp.Expr):
        e = value
    else:
        raise TypeError(f"`{argument}` must be a number or a sympy expression; got {value!r} "
                        f"(of type {type(value).__name__}).")
    if e.has(sp.nan, sp.oo, -sp.oo, sp.zoo):
        raise ValueError(f"`{argument}` must be finite; got {e}.")
    if e.is_number and e.is_real is False:
        raise ValueError(f"`{argument}` must be real; got {e}.")
    if positive and (e.is_positive is False):
        raise ValueError(f"`{argument}` must be positive; got {e}.")
    return e
