"""Problem specifications for the command line: TOML files (parsed safely) or Python files.

TOML expressions are parsed with :mod:`ast` and translated node by node into
sympy: numbers, declared names, + - * / ** and calls to an allow-list of
functions. Attribute access, subscripts, keywords, lambdas, dunder names and
anything else are rejected before anything is evaluated.
"""
from __future__ import annotations

import ast
import re
import runpy
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import sympy as sp

try:
    import tomllib
except ImportError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from . import laws as _laws
from .problem import Problem

__all__ = ["Spec", "SpecError", "load_spec", "parse_expression", "ALLOWED_FUNCTIONS"]

ALLOWED_FUNCTIONS = {
    "exp": sp.exp, "log": sp.log, "sqrt": sp.sqrt, "sin": sp.sin, "cos": sp.cos, "tan": sp.tan,
    "tanh": sp.tanh, "sinh": sp.sinh, "cosh": sp.cosh, "atan": sp.atan, "Abs": sp.Abs, "abs": sp.Abs,
    "erf": sp.erf, "sigmoid": lambda z: 1 / (1 + sp.exp(-z)), "softplus": lambda z: sp.log(1 + sp.exp(z)),
    "Max": sp.Max, "Min": sp.Min,
}
CONSTANTS = {"pi": sp.pi, "E": sp.E}
_BINOPS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
           ast.Div: lambda a, b: a / b, ast.Pow: lambda a, b: a**b}


class SpecError(ValueError):
    """A specification is invalid; the message names the key and the line."""


def parse_expression(text: str, names: dict, where: str = "expression") -> sp.Expr:
    """Translate ``text`` into sympy using only ``names``, numbers, arithmetic and allowed functions.

    Examples
    --------
    >>> import sympy as sp
    >>> x = sp.Symbol("x")
    >>> parse_expression("exp(-x)**2 / 2", {"x": x})
    exp(-2*x)/2
    >>> parse_expression("__import__('os').system('true')", {"x": x})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    smfsym.spec.SpecError: expression: calls are only allowed to exp, log, ... (not `__import__('os').system`)
    """
    if not isinstance(text, str):
        if isinstance(text, (int, float)):
            return sp.nsimplify(text, rational=True) if isinstance(text, float) else sp.Integer(text)
        raise SpecError(f"{where}: expected an expression string; got {text!r}")
    if len(text) > 10_000:
        raise SpecError(f"{where}: expression too long ({len(text)} characters)")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise SpecError(f"{where}: not a valid expression ({exc.msg}): {text!r}") from None

    def conv(node):
        if isinstance(node, ast.Expression):
            return conv(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return sp.nsimplify(node.value, rational=True) if isinstance(node.value, float) else sp.Integer(node.value)
        if isinstance(node, ast.Name):
            if node.id.startswith("__"):
                raise SpecError(f"{where}: dunder names are not allowed (`{node.id}`)")
            if node.id in names:
                return names[node.id]
            if node.id in CONSTANTS:
                return CONSTANTS[node.id]
            raise SpecError(f"{where}: unknown name `{node.id}` (declare it as a parameter, data or constant)")
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return _BINOPS[type(node.op)](conv(node.left), conv(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            v = conv(node.operand)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.Call):
            fname = node.func.id if isinstance(node.func, ast.Name) else None
            if fname is None or fname not in ALLOWED_FUNCTIONS:
                shown = fname or ast.unparse(node.func)
                raise SpecError(f"{where}: calls are only allowed to {', '.join(ALLOWED_FUNCTIONS)} "
                                f"(not `{shown}`)")
            if node.keywords:
                raise SpecError(f"{where}: keyword arguments are not allowed in `{fname}(...)`")
            return ALLOWED_FUNCTIONS[fname](*[conv(a) for a in node.args])
        if isinstance(node, ast.Attribute):
            raise SpecError(f"{where}: attribute access is not allowed (`{ast.unparse(node)}`)")
        raise SpecError(f"{where}: `{ast.unparse(node)}` is not allowed (only numbers, names, + - * / ** "
                        "and allowed functions)")

    return conv(tree)


def _line_of(text: str, key: str, section: str | None = None) -> int | None:
    lines = text.splitlines()
    in_section = section is None
    for i, line in enumerate(lines, start=1):
        stripped = line.strip()
        if stripped.startswith("["):
            in_section = section is not None and stripped.strip("[]").strip() == section
            continue
        if in_section and re.match(rf"^\s*{re.escape(key)}\s*=", line):
            return i
    return None


@dataclass
class Spec:
    """A parsed specification: the problem and the settings of the study."""

    problem: Problem
    symbols: dict
    check: dict = field(default_factory=dict)
    values: dict = field(default_factory=dict)
    source: str = ""


_LAW_KEYS = {
    "normal": {"dim", "mean", "std", "var", "cov"}, "uniform": {"dim", "a", "b"}, "bernoulli": {"dim", "p"},
    "rademacher": {"dim"}, "categorical": {"dim", "values", "weights"}, "exponential": {"dim", "rate"},
    "gamma": {"dim", "shape", "scale"}, "beta": {"dim", "a", "b"}, "student_t": {"dim", "nu"},
    "empirical": {"file", "columns", "weights_column"},
}


def load_spec(path) -> Spec:
    """Read a TOML spec (safe) or a Python file defining ``problem`` (run as code: trusted)."""
    path = Path(path)
    if not path.exists():
        raise SpecError(f"spec file {str(path)!r} does not exist")
    if path.suffix == ".py":
        ns = runpy.run_path(str(path))
        if not isinstance(ns.get("problem"), Problem):
            raise SpecError(f"{path}: a Python spec must define `problem = smfsym.Problem(...)`")
        return Spec(ns["problem"], {}, dict(ns.get("check", {})), dict(ns.get("values", {})), path.read_text())
    text = path.read_text()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: not valid TOML: {exc}") from None

    def err(section, key, msg):
        line = _line_of(text, key, section)
        where = f"[{section}] {key}" if section else key
        return SpecError(f"{path}:{line or '?'}: `{where}`: {msg}")

    prob = data.get("problem")
    if not isinstance(prob, dict):
        raise SpecError(f"{path}: missing the [problem] table (params, loss)")
    params_raw = prob.get("params")
    if not isinstance(params_raw, list) or not params_raw or not all(isinstance(p, str) and p.isidentifier()
                                                                      and not p.startswith("__") for p in params_raw):
        raise err("problem", "params", f"expected a list of parameter names; got {params_raw!r}")
    names: dict = {p: sp.Symbol(p) for p in params_raw}
    values: dict = {}
    consts = prob.get("constants", {})
    if not isinstance(consts, dict):
        raise err("problem", "constants", "expected a table name = number")
    for c, v in consts.items():
        if not c.isidentifier() or c.startswith("__"):
            raise err("problem", "constants", f"invalid name {c!r}")
        names[c] = sp.Symbol(c)
        if not isinstance(v, (int, float)):
            raise err("problem", "constants", f"`{c}` must be a number; got {v!r}")
        values[names[c]] = float(v)
    for name, law in (data.get("data") or {}).items():
        sec = f"data.{name}"
        if not isinstance(law, dict) or "law" not in law:
            raise err(sec, "law", "each [data.NAME] table needs `law = \"normal\"` (or uniform, ...)")
        kind = law["law"]
        if kind not in _LAW_KEYS:
            raise err(sec, "law", f"unknown law {kind!r}; supported: {sorted(_LAW_KEYS)}")
        extra = set(law) - _LAW_KEYS[kind] - {"law"}
        if extra:
            raise err(sec, sorted(extra)[0], f"not a parameter of a {kind} law (allowed: {sorted(_LAW_KEYS[kind])})")
        kw = {}
        for k, v in law.items():
            if k in ("law", "file", "columns", "weights_column", "dim"):
                continue
            try:
                kw[k] = ([[parse_expression(e, names, f"{sec}.{k}") for e in row] for row in v] if k == "cov"
                         else [parse_expression(e, names, f"{sec}.{k}") for e in v] if isinstance(v, list)
                         else parse_expression(v, names, f"{sec}.{k}"))
            except SpecError as exc:
                raise err(sec, k, str(exc)) from None
        try:
            if kind == "empirical":
                file = path.parent / law["file"]
                arr = np.loadtxt(file, delimiter=",", skiprows=1)
                header = file.read_text().splitlines()[0].split(",")
                cols = law.get("columns", header)
                idx = [header.index(c) for c in cols]
                syms = _laws.empirical(arr[:, idx], cols)
                for s in syms:
                    names[s.name] = s
                continue
            dim = law.get("dim")
            made = getattr(_laws, kind)(name, dim=dim, **kw) if kind != "normal" else _laws.normal(name, dim, **kw)
        except (ValueError, TypeError, OSError) as exc:
            raise err(sec, "law", str(exc)) from None
        if isinstance(made, tuple):
            for s in made:
                names[s.name] = s
            names[name] = made
        else:
            names[name] = made
    flat = {k: v for k, v in names.items() if isinstance(v, sp.Basic)}
    if "loss" not in prob:
        raise err("problem", "loss", "missing")
    try:
        loss = parse_expression(prob["loss"], flat, "[problem] loss")
    except SpecError as exc:
        raise err("problem", "loss", str(exc)) from None
    try:
        problem = Problem(loss, [names[p] for p in params_raw],
                          constants=[names[c] for c in consts], batch_size=prob.get("batch_size", 1))
    except (ValueError, TypeError) as exc:
        raise err("problem", "loss", str(exc)) from None
    check = dict(data.get("check", {}))
    if "phi" in check:
        try:
            check["phi"] = parse_expression(check["phi"], flat, "[check] phi")
        except SpecError as exc:
            raise err("check", "phi", str(exc)) from None
    return Spec(problem, flat, check, values, text)
