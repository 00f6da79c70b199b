"""The allow-list expression parser: the only route from a spec string to a sympy object.

A string is parsed by :func:`ast.parse` (which builds a tree and evaluates
nothing) and translated node by node: numbers, declared names, ``+ - * / **``,
unary signs and calls to :data:`ALLOWED_FUNCTIONS`. Everything else is refused
before sympy sees it. Work is bounded before it is done (docs/theory.md §8):

- text length <= :data:`MAX_TEXT`, tokens <= :data:`MAX_TOKENS` (counted on the raw
  text before parsing; about a 2,000-term sum), tree size <= :data:`MAX_NODES`, nesting
  depth <= :data:`MAX_DEPTH` (long flat sums and products are flattened
  iteratively, so a 1,000-term sum has depth 1);
- integer literals below ``10**MAX_LITERAL_DIGITS``, float literals finite;
- numeric exponents at most :data:`MAX_EXPONENT` in absolute value, and an
  exact number raised to a power may not exceed :data:`MAX_NUMBER_BITS` bits;
- identifiers that Unicode NFKC normalisation would fold (Python folds
  ``ｘ0`` into ``x0``) are refused on the raw text, naming both spellings;
- ``#`` is refused (Python would read the rest of the string as a comment and drop
  it silently), and so are the number literals the CSV reader refuses
  (``0x1f``, ``0o7``, ``0b1``, ``1_000``, ``1j``): numbers are plain decimals;
- calls of allowed functions nest at most :data:`MAX_CALL_DEPTH` deep, sigmoid and
  softplus counting two (sympy's
  work on ``tanh(tanh(...))`` grows about 2-10 times per level: evaluation while
  building, assumptions, derivatives), and an expression holds at most
  :data:`MAX_PIECEWISE` calls of ``Max``, ``Min`` and ``Abs`` (the noise covariance
  multiplies their derivatives pairwise). Both are counted on the syntax tree,
  before any sympy object is built;
- the result must not be provably non-real: ``sqrt(-1)``, ``log(-1)``,
  ``(-1)**(1/2)`` are refused (the simulators are real).
"""
from __future__ import annotations

import ast
import io
import math
import re
import tokenize
import unicodedata
from fractions import Fraction
from typing import Mapping

import sympy as sp

__all__ = ["SpecError", "parse_expression", "ALLOWED_FUNCTIONS", "CONSTANTS", "MAX_TEXT", "MAX_NODES",
           "MAX_DEPTH", "MAX_TOKENS", "MAX_EXPONENT", "MAX_LITERAL_DIGITS", "MAX_NUMBER_BITS", "MAX_CALL_DEPTH",
           "MAX_PIECEWISE", "check_name", "non_real_part"]

MAX_TEXT = 20_000
MAX_TOKENS = 8_000
#: Depth of the syntax tree, estimated from the text before parsing. Python's parser nests a flat sum
#: one level per term, and where it gives up depends on a recursion limit that other code may change:
#: this bound (well below where it gives up) makes the outcome the same everywhere.
MAX_TREE_DEPTH = 2_000
MAX_NODES = 50_000
MAX_DEPTH = 64
MAX_EXPONENT = 1000
MAX_LITERAL_DIGITS = 30
MAX_NUMBER_BITS = 4096
#: Nesting of function calls, ``tanh(tanh(x))`` is 2. sympy's work grows geometrically with it (measured
#: on `smfsym derive --format text`: 3 s at 6 levels, 6.6 s at 7, minutes at 12).
MAX_CALL_DEPTH = 6
#: Allowed functions that are themselves two nested functions, and count two levels: sigmoid(z) is
#: 1/(1 + exp(-z)) and softplus(z) is log(1 + exp(z)) (`derive` of sigmoid^4: 18 s, sigmoid^6: over 5 min).
_CALL_WEIGHT = {"sigmoid": 2, "softplus": 2}
#: Calls of the piecewise functions Max, Min and Abs in one expression. Their derivatives are step
#: functions, and the noise covariance multiplies them pairwise: n calls give about n**2 piecewise
#: products to expand, simplify and print (`derive` took 7 s at 80 and minutes at 200).
MAX_PIECEWISE = 64
_PIECEWISE = ("Max", "Min", "Abs", "abs")


class SpecError(ValueError):
    """A specification is invalid; the message names the key (and the line when known)."""


ALLOWED_FUNCTIONS = {
    "exp": sp.exp, "log": sp.log, "sqrt": sp.sqrt, "sin": sp.sin, "cos": sp.cos, "tan": sp.tan,
    "tanh": sp.tanh, "sinh": sp.sinh, "cosh": sp.cosh, "atan": sp.atan, "Abs": sp.Abs, "abs": sp.Abs,
    "erf": sp.erf, "sigmoid": lambda z: 1 / (1 + sp.exp(-z)), "softplus": lambda z: sp.log(1 + sp.exp(z)),
    "Max": sp.Max, "Min": sp.Min,
}
CONSTANTS = {"pi": sp.pi, "E": sp.E}
# Names the generated models and code use themselves (eta: the learning rate, t: time).
_INTERNAL = {"eta", "t"}
_SUM_OPS = (ast.Add, ast.Sub)
_PROD_OPS = (ast.Mult, ast.Div)
_WORD = re.compile(r"\w+", re.UNICODE)
_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)
_OPERATOR = re.compile(r"\*\*|[-+*/(),]")
#: A plain decimal number, as the CSV reader accepts it (smfsym.spec.data_files), without its sign.
_DECIMAL = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def tree_depth(text: str) -> int:
    """An upper estimate of the syntax-tree depth of an arithmetic expression, from its operators alone.

    Within one parenthesised group, a chain of ``+ -`` nests one level per operator, and so do the
    ``* /`` chain of a term and the ``**`` chain of a factor; groups add up along their nesting.

    Examples
    --------
    >>> tree_depth("+".join(["x"] * 1000)) >= 999
    True
    >>> tree_depth("(" + " + ".join(["2*x**2"] * 1000) + ")") < 1010
    True
    """
    # per open group: [additive ops, mult ops in the current term, max mult, pow in factor, max pow, inner]
    stack = [[0, 0, 0, 0, 0, 0]]
    for op in _OPERATOR.findall(text):
        g = stack[-1]
        if op == "(":
            stack.append([0, 0, 0, 0, 0, 0])
        elif op in (")", ","):
            inner = g[0] + max(g[2], g[1]) + max(g[4], g[3]) + g[5]
            if op == ")" and len(stack) > 1:
                stack.pop()
                stack[-1][5] = max(stack[-1][5], inner + 1)
            else:
                g[:] = [0, 0, 0, 0, 0, inner]
        elif op in "+-":
            g[0] += 1
            g[2], g[1] = max(g[2], g[1]), 0
            g[4], g[3] = max(g[4], g[3]), 0
        elif op in "*/":
            g[1] += 1
            g[4], g[3] = max(g[4], g[3]), 0
        else:  # **
            g[3] += 1
    total = 0
    for g in stack:
        total += g[0] + max(g[2], g[1]) + max(g[4], g[3]) + g[5]
    return total
_REFUSED = {
    ast.Attribute: "attribute access", ast.Subscript: "subscripts", ast.Lambda: "lambdas",
    ast.ListComp: "comprehensions", ast.SetComp: "comprehensions", ast.DictComp: "comprehensions",
    ast.GeneratorExp: "comprehensions", ast.JoinedStr: "f-strings", ast.FormattedValue: "f-strings",
    ast.Starred: "starred arguments", ast.NamedExpr: "assignment expressions (walrus)",
    ast.Compare: "comparisons", ast.BoolOp: "boolean operators", ast.IfExp: "conditional expressions",
    ast.Tuple: "tuples", ast.List: "lists", ast.Dict: "dicts", ast.Set: "sets", ast.Await: "await",
    ast.Yield: "yield", ast.YieldFrom: "yield",
}


def _snippet(text: str, node: ast.AST | None = None, limit: int = 60) -> str:
    seg = ast.get_source_segment(text, node) if node is not None else text
    seg = seg if seg is not None else text
    return seg if len(seg) <= limit else seg[: limit - 3] + "..."


def check_name(name: object, what: str) -> str:
    """Check that ``name`` can be a symbol of a spec; return it.

    A name is an NFKC-normal Python identifier that is not a keyword, does not
    start with an underscore and does not shadow an allowed function, a
    constant (``pi``, ``E``) or a symbol the models use (``eta``, ``t``).

    >>> check_name("x0", "params")
    'x0'
    >>> check_name("exp", "params")
    Traceback (most recent call last):
    ...
    smfsym.spec.expr.SpecError: `params`: the name `exp` shadows an allowed function or constant; choose another name
    """
    import keyword

    if not isinstance(name, str):
        raise SpecError(f"`{what}`: expected a name (string); got {type(name).__name__} {name!r:.60}")
    if len(name) > 64 or not name.isidentifier():
        raise SpecError(f"`{what}`: {name[:64]!r} is not a valid identifier (letters, digits, _; at most 64)")
    folded = unicodedata.normalize("NFKC", name)
    if folded != name:
        raise SpecError(f"`{what}`: the name {name!r} is folded by Unicode NFKC normalisation into "
                        f"{folded!r}; use the plain spelling {folded!r}")
    if name.startswith("_"):
        raise SpecError(f"`{what}`: names may not start with an underscore; got {name!r}")
    if keyword.iskeyword(name) or keyword.issoftkeyword(name) or name in ("None", "True", "False"):
        raise SpecError(f"`{what}`: {name!r} is a Python keyword")
    if name in ALLOWED_FUNCTIONS or name in CONSTANTS:
        raise SpecError(f"`{what}`: the name `{name}` shadows an allowed function or constant; choose another name")
    if name in _INTERNAL:
        raise SpecError(f"`{what}`: the name `{name}` is used by the models (eta: learning rate, t: time); "
                        "choose another name")
    return name


def _check_raw_text(text: str, where: str) -> None:
    """Refuse what the Python parser would silently fold, drop or choke on, before parsing."""
    if "#" in text:
        i = text.index("#")
        raise SpecError(f"{where}: `#` is not allowed in an expression: Python would read "
                        f"{_snippet(text[i:], None, 40)!r} as a comment and drop it silently, keeping only "
                        f"{_snippet(text[:i].rstrip(), None, 40)!r}; remove the comment")
    for word in _WORD.findall(text):
        folded = unicodedata.normalize("NFKC", word)
        if folded != word:
            raise SpecError(f"{where}: the name {word!r} is folded by Unicode NFKC normalisation into "
                            f"{folded!r}; Python would read them as the same name. Use {folded!r}")
    depth = deepest = 0
    for ch in text:
        if ch in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in ")]}":
            depth -= 1
    if deepest > MAX_DEPTH:
        raise SpecError(f"{where}: brackets nested {deepest} deep; the limit is MAX_DEPTH = {MAX_DEPTH}")


def _number(value, text, node, where):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        kind = "complex" if isinstance(value, complex) else type(value).__name__
        raise SpecError(f"{where}: {kind} constants are not allowed (`{_snippet(text, node)}`)")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SpecError(f"{where}: the number `{_snippet(text, node)}` is not finite")
        # The shortest decimal that round-trips (0.1 -> 1/10), exactly; no string parsing by sympy.
        frac = Fraction(repr(value))
        return sp.Rational(frac.numerator, frac.denominator)
    if value.bit_length() > MAX_LITERAL_DIGITS * 3.33:
        raise SpecError(f"{where}: integer literal `{_snippet(text, node)}` is too large "
                        f"(at most {MAX_LITERAL_DIGITS} digits)")
    return sp.Integer(value)


def _bits(x: sp.Expr) -> float:
    """Bits needed by an exact rational number (0 for anything else)."""
    if isinstance(x, sp.Rational):
        return max(abs(x.p).bit_length(), abs(x.q).bit_length())
    return 0.0


def _power(base, exp, text, node, where):
    if exp.is_number:
        if exp.is_Rational:
            big = max(abs(exp.p), abs(exp.q))
        else:
            try:
                big = abs(float(exp))
            except (TypeError, ValueError):
                big = 0.0
        if big > MAX_EXPONENT:
            raise SpecError(f"{where}: the exponent in `{_snippet(text, node)}` is {_snippet(str(exp), None, 30)}; "
                            f"numeric exponents are limited to |p| <= MAX_EXPONENT = {MAX_EXPONENT}")
        if exp.is_Rational and base.is_Rational:
            est = _bits(base) * abs(exp.p)
            if est > MAX_NUMBER_BITS:
                raise SpecError(f"{where}: `{_snippet(text, node)}` would be a number of about {est:.0f} bits; "
                                f"the limit is MAX_NUMBER_BITS = {MAX_NUMBER_BITS}")
    elif base.is_number and _bits(base) > 64:
        raise SpecError(f"{where}: a large number raised to a symbolic power in `{_snippet(text, node)}`")
    return base**exp


def _check_literals(text: str, where: str) -> None:
    """Refuse number literals that are not plain decimals (``0x1f``, ``0o7``, ``0b1``, ``1_000``, ``1j``).

    Python reads them all as numbers; a spec (like a data file) takes decimals only, so that a number
    means the same to every reader. Runs on a text that :func:`ast.parse` accepted.
    """
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError):  # pragma: no cover - ast.parse accepted the text
        return
    for tok in tokens:
        if tok.type == tokenize.NUMBER and not _DECIMAL.fullmatch(tok.string):
            kind = ("an imaginary (complex) number" if tok.string[-1] in "jJ" else
                    "a number with `_` separators" if "_" in tok.string else
                    "a hexadecimal, octal or binary number" if tok.string[:2].lower() in ("0x", "0o", "0b") else
                    "not a plain decimal number")
            raise SpecError(f"{where}: the literal `{tok.string[:40]}` is {kind}; numbers must be plain "
                            "decimals such as 31, -2.5 or 3e-4 (as in data files)")


def _check_calls(tree: ast.AST, where: str) -> None:
    """Bound the nesting of function calls and the count of piecewise functions, on the syntax tree.

    Iterative (no recursion); nothing is built, so the refusal costs a walk of the tree.
    """
    stack = [(tree, 0)]
    piecewise = 0
    while stack:
        node, depth = stack.pop()
        if isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else ""
            depth += _CALL_WEIGHT.get(name, 1)
            if depth > MAX_CALL_DEPTH:
                raise SpecError(f"{where}: function calls nested {depth} deep (`{ast.unparse(node)[:60]}`; sigmoid "
                                f"and softplus count 2); the limit is MAX_CALL_DEPTH = {MAX_CALL_DEPTH}: the symbolic "
                                "work grows about 2-10 times with each level")
            if name in _PIECEWISE:
                piecewise += 1
        stack.extend((child, depth) for child in ast.iter_child_nodes(node))
    if piecewise > MAX_PIECEWISE:
        raise SpecError(f"{where}: {piecewise} calls of the piecewise functions Max, Min and Abs; the noise "
                        f"covariance would multiply their derivatives pairwise, about {piecewise ** 2:,} "
                        f"piecewise products to expand and print (estimate n**2); the limit is MAX_PIECEWISE = "
                        f"{MAX_PIECEWISE} calls")


def non_real_part(expr: sp.Expr) -> sp.Expr | None:
    """A sub-expression of ``expr`` that is provably not real (``I``, ``sqrt(-2)``, ``(-8)**(1/3)``), or None.

    Only numbers are judged: an expression in symbols (``sqrt(x - 1)``) may well be real where it is used.
    """
    if expr.has(sp.I):
        return sp.I
    for sub in sp.preorder_traversal(expr):
        if isinstance(sub, sp.Expr) and sub.is_number and not sub.is_Rational and sub.is_extended_real is False:
            return sub
    return None


def parse_expression(text, names: Mapping[str, sp.Expr], where: str = "expression") -> sp.Expr:
    """Translate ``text`` into sympy using only ``names``, numbers, arithmetic and allowed functions.

    Parameters
    ----------
    text : str or int or float
        The expression (numbers are accepted as they are, if finite).
    names : mapping str -> sympy expression
        The names the expression may use.
    where : str
        What to call the expression in error messages (the spec key).

    Raises
    ------
    SpecError
        For anything outside the allow-list or beyond a bound (module docstring).

    Examples
    --------
    >>> import sympy as sp
    >>> x = sp.Symbol("x")
    >>> parse_expression("exp(-x)**2 / 2", {"x": x})
    exp(-2*x)/2
    >>> parse_expression("__import__('os').system('true')", {"x": x})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    smfsym.spec.expr.SpecError: expression: attribute access is not allowed (`__import__('os').system`)
    >>> parse_expression("x**(10**10)", {"x": x})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    smfsym.spec.expr.SpecError: expression: the exponent in `x**(10**10)` is 10000000000; numeric exponents ...
    """
    if not isinstance(text, str):
        if isinstance(text, (int, float)) and not isinstance(text, bool):
            return _number(text, repr(text), None, where)
        raise SpecError(f"{where}: expected an expression string or a number; got {type(text).__name__} "
                        f"{text!r:.60}")
    tree = _parsed_tree(text, where)
    try:
        result = _Converter(text, names, where).convert(tree.body, 0)
    except RecursionError:
        raise SpecError(f"{where}: expression too deeply nested") from None
    if not isinstance(result, sp.Expr) or result.has(sp.zoo, sp.oo, -sp.oo, sp.nan):
        raise SpecError(f"{where}: `{_snippet(text)}` is not a finite expression (evaluates to {result})")
    bad = non_real_part(result)
    if bad is not None:
        raise SpecError(f"{where}: `{_snippet(text)}` is not real (`{_snippet(str(bad), None, 40)}` is complex: "
                        "a square root or a logarithm of a negative number?); expressions must be real")
    return result


def _parsed_tree(text: str, where: str) -> ast.Expression:
    """``text`` parsed by Python's parser once it is bounded (length, tokens, depth), then the tree
    bounded (nodes, literals, calls): nothing is evaluated."""
    if len(text) > MAX_TEXT:
        raise SpecError(f"{where}: expression too long ({len(text)} characters; the limit is MAX_TEXT = {MAX_TEXT})")
    if not text.strip():
        raise SpecError(f"{where}: empty expression")
    _check_raw_text(text, where)
    n_tokens = len(_TOKEN.findall(text))
    if n_tokens > MAX_TOKENS:
        raise SpecError(f"{where}: expression has {n_tokens} tokens; the limit is MAX_TOKENS = {MAX_TOKENS}")
    depth = tree_depth(text)
    if depth > MAX_TREE_DEPTH:
        raise SpecError(f"{where}: expression nests about {depth} levels deep (a chain of that many operators); "
                        f"the limit is MAX_TREE_DEPTH = {MAX_TREE_DEPTH}")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise SpecError(f"{where}: not a valid expression ({exc.msg}): {_snippet(text)!r}") from None
    except (RecursionError, MemoryError, ValueError):
        raise SpecError(f"{where}: expression too deeply nested or too large to parse") from None
    n_nodes = sum(1 for _ in ast.walk(tree))
    if n_nodes > MAX_NODES:
        raise SpecError(f"{where}: expression has {n_nodes} syntax nodes; the limit is MAX_NODES = {MAX_NODES}")
    _check_literals(text, where)
    _check_calls(tree, where)
    return tree


def _chain(node, ops) -> list:
    """The operands of a left-nested chain of ``ops``, with their operators, without recursion."""
    items = []
    while isinstance(node, ast.BinOp) and isinstance(node.op, ops):
        items.append((type(node.op), node.right))
        node = node.left
    items.append((None, node))
    items.reverse()
    return items


class _Converter:
    """The allow-list translation of a parsed expression into sympy: one method per allowed node kind
    (``_HANDLERS``); every other node is refused with its kind named."""

    def __init__(self, text: str, names: Mapping, where: str):
        self.text, self.names, self.where = text, names, where

    def convert(self, node, depth: int):
        if depth > MAX_DEPTH:
            raise SpecError(f"{self.where}: expression nested more than MAX_DEPTH = {MAX_DEPTH} deep")
        handler = _HANDLERS.get(type(node))
        if handler is not None:
            return handler(self, node, depth)
        kind = _REFUSED.get(type(node))
        where, snip = self.where, _snippet(self.text, node)
        if kind:
            raise SpecError(f"{where}: {kind} are not allowed (`{snip}`)"
                            if kind.endswith("s") else f"{where}: {kind} is not allowed (`{snip}`)")
        raise SpecError(f"{where}: `{snip}` is not allowed (only numbers, names, + - * / ** and allowed functions)")

    def constant(self, node, depth):
        return _number(node.value, self.text, node, self.where)

    def name(self, node, depth):
        where, names = self.where, self.names
        if node.id.startswith("__"):
            raise SpecError(f"{where}: dunder names are not allowed (`{node.id}`)")
        if node.id in names:
            return names[node.id]
        if node.id in CONSTANTS:
            return CONSTANTS[node.id]
        if node.id in ALLOWED_FUNCTIONS:
            raise SpecError(f"{where}: `{node.id}` is a function; call it, e.g. `{node.id}(x)`")
        raise SpecError(f"{where}: unknown name `{node.id}` (declare it as a parameter, data or constant; "
                        f"known: {', '.join(sorted(names)) or 'none'})")

    def binop(self, node, depth):
        if isinstance(node.op, _SUM_OPS):
            terms = []
            for op, sub in _chain(node, _SUM_OPS):
                v = self.convert(sub, depth + 1)
                terms.append(-v if op is ast.Sub else v)
            return sp.Add(*terms)
        if isinstance(node.op, _PROD_OPS):
            return self.product(node, depth)
        if isinstance(node.op, ast.Pow):
            return _power(self.convert(node.left, depth + 1), self.convert(node.right, depth + 1), self.text, node,
                          self.where)
        raise SpecError(f"{self.where}: operator `{type(node.op).__name__}` is not allowed in "
                        f"`{_snippet(self.text, node)}` (only + - * / **)")

    def product(self, node, depth):
        num, den = [], []
        for op, sub in _chain(node, _PROD_OPS):
            (den if op is ast.Div else num).append(self.convert(sub, depth + 1))
        numbers = [f for f in num + den if f.is_Rational]
        est = sum(_bits(f) for f in numbers)
        if est > MAX_NUMBER_BITS * 4:
            raise SpecError(f"{self.where}: product of numbers of about {est:.0f} bits; too large")
        if any(d == 0 for d in den):
            raise SpecError(f"{self.where}: division by zero in `{_snippet(self.text, node)}`")
        return sp.Mul(*num) / sp.Mul(*den)

    def unaryop(self, node, depth):
        if isinstance(node.op, (ast.USub, ast.UAdd)):
            v = self.convert(node.operand, depth + 1)
            return -v if isinstance(node.op, ast.USub) else v
        raise SpecError(f"{self.where}: operator `{type(node.op).__name__}` is not allowed in "
                        f"`{_snippet(self.text, node)}` (only unary + and -)")

    def call(self, node, depth):
        where, text = self.where, self.text
        if not isinstance(node.func, ast.Name):
            kind = _REFUSED.get(type(node.func), "calling this")
            raise SpecError(f"{where}: {kind} is not allowed (`{_snippet(text, node.func)}`)")
        fname = node.func.id
        if fname not in ALLOWED_FUNCTIONS:
            raise SpecError(f"{where}: calls are only allowed to {', '.join(ALLOWED_FUNCTIONS)} "
                            f"(not `{_snippet(text, node.func)}`)")
        if node.keywords:
            raise SpecError(f"{where}: keyword arguments are not allowed in `{fname}(...)`")
        if any(isinstance(a, ast.Starred) for a in node.args):
            raise SpecError(f"{where}: starred arguments are not allowed in `{fname}(...)`")
        args = [self.convert(a, depth + 1) for a in node.args]
        try:
            return ALLOWED_FUNCTIONS[fname](*args)
        except (TypeError, ValueError) as exc:
            raise SpecError(f"{where}: `{_snippet(text, node)}`: {str(exc)[:120]}") from None


#: The allowed node kinds and their translation (everything else is refused).
_HANDLERS = {ast.Constant: _Converter.constant, ast.Name: _Converter.name, ast.BinOp: _Converter.binop,
             ast.UnaryOp: _Converter.unaryop, ast.Call: _Converter.call}
