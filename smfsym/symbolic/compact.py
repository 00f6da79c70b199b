"""Compact, paper-style forms of derived vectors and matrices, checked against the expanded ones.

What a paper prints for linear regression is Sigma(x) = (|x|^2 + s^2) I + x x^T,
not a d x d array of polynomials. This module recognises the two structures
that recur in SGD noise and drifts,

* a vector that is a scalar multiple of the parameter vector (or of another
  named vector): b(x) = c(x) u, and
* a symmetric matrix that is a scalar multiple of the identity plus a multiple
  of one outer product: S(x) = alpha(x) I + c(x) u u^T,

and only returns a compact form after checking symbolically that it expands to
the original (``verified`` is the result of that check). It also decides,
where it can prove it, that a covariance is bounded below by a positive
multiple of the identity, so that its square root is smooth (docs/theory.md §2).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import sympy as sp

__all__ = ["CompactForm", "compact_vector", "compact_matrix", "bounded_below"]


@dataclass(frozen=True)
class CompactForm:
    """``scalar * I + coeff * u u^T`` (matrix) or ``coeff * u`` (vector), with the check it passed.

    Attributes
    ----------
    scalar : sympy.Expr
        The multiple of the identity (zero for vectors).
    coeff : sympy.Expr
        The multiple of the outer product (matrix) or of the vector itself.
    u : tuple
        The vector, as given by the caller (usually the parameters).
    u_name : str
        Its LaTeX name (``x``).
    verified : bool
        Whether the compact form was checked to expand to the original.
    """

    scalar: sp.Expr
    coeff: sp.Expr
    u: tuple
    u_name: str
    kind: str
    verified: bool

    def expand(self) -> sp.ImmutableMatrix:
        """The full matrix (or column) the compact form stands for."""
        u = sp.Matrix(self.u)
        if self.kind == "vector":
            return sp.ImmutableMatrix(self.coeff * u)
        return sp.ImmutableMatrix(self.scalar * sp.eye(len(self.u)) + self.coeff * u * u.T)

    def latex(self, printer=sp.latex) -> str:
        u = self.u_name
        norm = r"|" + u + r"|^2"
        if self.kind == "vector":
            return _times(self.coeff, u, printer)
        n = len(self.u)
        parts = []
        if self.scalar != 0:
            parts.append(_times(self.scalar, rf"I_{{{n}}}", printer, norm=(self.u, norm)))
        if self.coeff != 0:
            outer = u + " " + u + r"^{\top}"
            parts.append(_times(self.coeff, outer, printer, norm=(self.u, norm)))
        out = " + ".join(parts) if parts else "0"
        return out.replace("+ -", "- ")


def _norm_sq(u) -> sp.Expr:
    return sp.Add(*[v**2 for v in u])


def _scalar_latex(c: sp.Expr, printer, norm=None) -> str:
    """LaTeX of a scalar, writing the sum of squares of ``u`` as ``|u|^2`` where it appears whole."""
    if norm is not None:
        u, name = norm
        expanded = sp.expand(c)
        # c = k |u|^2 + rest, with rest free of the squares u_i^2 that |u|^2 is made of
        k = expanded.coeff(u[0], 2) if len(u) else 0
        if k != 0 and not k.free_symbols & set(u):
            rest = sp.expand(expanded - k * _norm_sq(u))
            if all(rest.coeff(v, 2) == 0 for v in u):
                head = name if k == 1 else ("-" + name if k == -1 else printer(k) + " " + name)
                if rest == 0:
                    return head
                tail = printer(rest)
                return head + ("" if tail.startswith("-") else " + ") + tail
    return printer(c)


def _times(c: sp.Expr, thing: str, printer, norm=None) -> str:
    if c.could_extract_minus_sign():
        return "-" + _times(-c, thing, printer, norm)
    if c == 1:
        return thing
    if c == -1:
        return "-" + thing
    s = _scalar_latex(c, printer, norm)
    if isinstance(c, sp.Add) or ("+" in s or "-" in s.lstrip("-")):
        return r"\left(" + s + r"\right) " + thing
    return s + " " + thing


def _simplify(e):
    return sp.expand(sp.cancel(sp.together(e)))


def compact_vector(v, u: Sequence[sp.Symbol], u_name: str = "x") -> CompactForm | None:
    """``v = c u`` with one scalar ``c`` (checked), or None.

    Examples
    --------
    >>> import sympy as sp
    >>> x, eta = sp.symbols("x0:2"), sp.Symbol("eta")
    >>> cf = compact_vector([-(1 + eta / 2) * x[0], -(1 + eta / 2) * x[1]], x)
    >>> cf.latex()
    '-\\\\left(\\\\frac{\\\\eta}{2} + 1\\\\right) x'
    >>> cf.verified
    True
    """
    v = list(sp.Matrix(v))
    u = tuple(u)
    if len(v) != len(u) or len(u) < 2 or any(e == 0 for e in v):
        return None
    c = _simplify(v[0] / u[0])
    if c.has(sp.zoo, sp.nan):
        return None
    cf = CompactForm(sp.Integer(0), c, u, u_name, "vector", False)
    ok = all(sp.expand(a - b) == 0 for a, b in zip(cf.expand(), v))
    return CompactForm(sp.Integer(0), c, u, u_name, "vector", True) if ok else None


def compact_matrix(M, u: Sequence[sp.Symbol], u_name: str = "x") -> CompactForm | None:
    """``M = alpha I + c u u^T`` (checked entry by entry after expansion), or None.

    Examples
    --------
    >>> import sympy as sp
    >>> x = sp.symbols("x0:3")
    >>> S = sp.Matrix(3, 3, lambda i, j: x[i] * x[j] + (sum(v**2 for v in x) + 1) * int(i == j))
    >>> cf = compact_matrix(S, x)
    >>> cf.latex()
    '\\\\left(|x|^2 + 1\\\\right) I_{3} + x x^{\\\\top}'
    >>> cf.expand() == sp.ImmutableMatrix(S)
    True
    """
    M = sp.Matrix(M)
    u = tuple(u)
    n = len(u)
    if M.shape != (n, n) or n < 2:
        return None
    off = M[0, 1]
    c = _simplify(off / (u[0] * u[1])) if off != 0 else sp.Integer(0)
    alpha = _simplify(M[0, 0] - c * u[0] ** 2)
    cf = CompactForm(alpha, c, u, u_name, "matrix", False)
    full = cf.expand()
    if any(sp.expand(full[i, j] - M[i, j]) != 0 for i in range(n) for j in range(n)):
        return None
    return CompactForm(alpha, c, u, u_name, "matrix", True)


def _real(expr, symbols):
    """Replace symbols without a realness assumption by real ones (parameters are real)."""
    rep = {s: sp.Symbol(s.name, real=True) for s in symbols if s.is_real is None}
    return expr.xreplace(rep)


def bounded_below(S, x: Sequence[sp.Symbol]) -> bool:
    """True when ``S(x) >= c I`` for some constant c > 0 and all real x is *proved*.

    Proof routes, in order: a 1 x 1 matrix whose entry minus its infimum over
    constant terms is a sum of even powers; a diagonal matrix entry by entry; the
    compact form ``alpha(x) I + c u u^T`` with ``c >= 0`` and ``alpha(x) >= alpha_0 > 0``.
    False means "not proved", not "degenerate".

    Examples
    --------
    >>> import sympy as sp
    >>> x = sp.symbols("x0:2")
    >>> bounded_below(sp.Matrix([[x[0]**2 + sp.Rational(1, 4)]]), x[:1])
    True
    >>> bounded_below(sp.Matrix([[x[0]**2]]), x[:1])
    False
    """
    S = sp.Matrix(S)
    x = tuple(x)
    if S.shape == (1, 1):
        return _positive_floor(S[0, 0], x)
    if S.is_diagonal():
        return all(_positive_floor(S[i, i], x) for i in range(S.shape[0]))
    cf = compact_matrix(S, x)
    if cf is None:
        return False
    return _nonnegative(cf.coeff, x) and _positive_floor(cf.scalar, x)


def _nonnegative(e, x) -> bool:
    e = _real(sp.expand(e), x)
    return bool(e.is_nonnegative) or e == 0


def _positive_floor(e, x) -> bool:
    """e(x) >= c > 0 for all real x: a positive constant plus a sum of non-negative terms."""
    e = _real(sp.expand(e), x)
    xs = {v for v in e.free_symbols if v.name in {s.name for s in x}}
    const = sum((t for t in sp.Add.make_args(e) if not t.free_symbols & xs), sp.Integer(0))
    rest = e - const
    return bool(const.is_positive) and (rest == 0 or bool(rest.is_nonnegative))
