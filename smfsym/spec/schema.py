"""The typed schema of a TOML spec: section -> key -> (type, default, range, help).

Every key of every section is declared here; a spec key that is not declared
is refused with the list of allowed ones. Values are checked for their type
(a TOML boolean is not an integer, an integer is not a string, NaN and
infinities are not numbers) and range before anything is derived or
simulated. Expressions stay strings here; they become sympy objects only in
:func:`smfsym.spec.parse_expression`.

A new section (for example ``[meanfield]``) is added by declaring its keys in
:data:`SCHEMA`; the loader, the error messages, the reference in the docs and
the hostile-input tests pick it up from there.

Examples
--------
>>> SCHEMA["check"]["t_end"].range
'> 0, finite'
>>> sorted(LAWS["normal"])
['cov', 'dim', 'law', 'mean', 'std', 'var']
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Callable

from ..symbolic.model_names import DEFAULT_MODELS, MODEL_REGISTRY
from .expr import MAX_TEXT, SpecError, check_name

__all__ = ["MAX_WIDTH", "MF_OBSERVABLES", "MF_METHODS", "PARTICLE_LAWS", "Key", "SCHEMA", "LAWS", "REQUIRED", "MODEL_NAMES", "METHODS", "SCHEMES", "MAX_PARAMS", "MAX_DIM",
           "MAX_ETAS", "MAX_STARTS", "MAX_LIST", "validate_section", "reference"]

REQUIRED = object()
MAX_PARAMS = 64
MAX_DIM = 64
MAX_ETAS = 32
MAX_STARTS = 16
MAX_LIST = 256
MODEL_NAMES = tuple(MODEL_REGISTRY)  # what [check] models accepts (as the Python studies do)
MAX_WIDTH = 10**6
MF_OBSERVABLES = ("risk", "output_at", "moments")
MF_METHODS = ("sgd", "ddsmf", "limit")
PARTICLE_LAWS = {"normal": 2, "uniform": 2, "constant": 1}
METHODS = ("auto", "exact", "montecarlo")
SCHEMES = ("auto", "euler", "weak2", "tamed")
#: The optimizers a spec's [check] can name (``smfsym.spec.checks.CHECK_OPTIMIZERS`` says how each is checked).
CHECK_OPTIMIZER_NAMES = ("sgd", "heavy_ball", "nesterov", "rmsprop", "adam", "update_map")


def _tname(v: Any) -> str:
    return type(v).__name__


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _finite_real(v: Any, key: str) -> float:
    if not _is_real(v):
        raise SpecError(f"`{key}`: expected a number; got {_tname(v)} {v!r:.60}")
    if isinstance(v, int) and abs(v) > 2**53:
        raise SpecError(f"`{key}`: {v} is too large to be represented exactly as a float")
    if not math.isfinite(v):
        raise SpecError(f"`{key}`: expected a finite number; got {v!r}")
    return float(v)


def _list(v: Any, key: str, lo: int = 0, hi: int = MAX_LIST) -> list:
    if not isinstance(v, list):
        raise SpecError(f"`{key}`: expected an array; got {_tname(v)} {v!r:.60}")
    if not lo <= len(v) <= hi:
        raise SpecError(f"`{key}`: expected {lo} to {hi} entries; got {len(v)}")
    return v


# ----------------------------------------------------------------------------- validators by kind

def v_int(lo: int, hi: int) -> Callable:
    def check(v, key):
        if isinstance(v, bool) or not isinstance(v, int):
            raise SpecError(f"`{key}`: expected an integer in [{lo}, {hi}]; got {_tname(v)} {v!r:.60}")
        if not lo <= v <= hi:
            raise SpecError(f"`{key}`: expected an integer in [{lo}, {hi}]; got {v}")
        return v
    return check


def v_int_or_auto(lo: int, hi: int) -> Callable:
    """An integer in [lo, hi], or the string "auto" (the library chooses, as its Python default does)."""
    as_int = v_int(lo, hi)

    def check(v, key):
        if v == "auto" and isinstance(v, str):
            return v
        if isinstance(v, str):
            raise SpecError(f"`{key}`: expected an integer in [{lo}, {hi}] or \"auto\"; got str {v!r:.60}")
        return as_int(v, key)
    return check


def v_positive(v, key):
    x = _finite_real(v, key)
    if not x > 0:
        raise SpecError(f"`{key}`: expected a positive finite number; got {v!r}")
    return x


def v_etas(v, key):
    xs = [v_positive(e, f"{key}[{i}]") for i, e in enumerate(_list(v, key, 1, MAX_ETAS))]
    if len(set(xs)) != len(xs):
        raise SpecError(f"`{key}`: learning rates must be distinct; got {xs}")
    return xs


def v_point(v, key):
    return [_finite_real(e, f"{key}[{i}]") for i, e in enumerate(_list(v, key, 1, MAX_PARAMS))]


def v_points(v, key):
    pts = [v_point(p, f"{key}[{i}]") for i, p in enumerate(_list(v, key, 2, MAX_STARTS))]
    return pts


def v_enum(choices) -> Callable:
    def check(v, key):
        if not isinstance(v, str) or v not in choices:
            raise SpecError(f"`{key}`: expected one of {', '.join(choices)}; got {v!r:.60}")
        return v
    return check


def v_enums(choices) -> Callable:
    one = v_enum(choices)

    def check(v, key):
        out = [one(e, f"{key}[{i}]") for i, e in enumerate(_list(v, key, 1, len(choices)))]
        if len(set(out)) != len(out):
            raise SpecError(f"`{key}`: entries must be distinct; got {out}")
        return out
    return check


def v_names(lo: int = 1, hi: int = MAX_PARAMS) -> Callable:
    def check(v, key):
        out = [check_name(e, f"{key}[{i}]") for i, e in enumerate(_list(v, key, lo, hi))]
        dup = sorted({n for n in out if out.count(n) > 1})
        if dup:
            raise SpecError(f"`{key}`: duplicate names {dup}")
        return out
    return check


def v_name(v, key):
    return check_name(v, key)


def v_expr(v, key):
    """An expression: a string (parsed later, against the declared names) or a finite number."""
    if isinstance(v, str):
        return v
    return _finite_real(v, key)


def v_exprs(v, key):
    """An expression or an array of them (per coordinate)."""
    if isinstance(v, list):
        return [v_expr(e, f"{key}[{i}]") for i, e in enumerate(_list(v, key, 1, MAX_LIST))]
    return v_expr(v, key)


def v_matrix(v, key):
    rows = _list(v, key, 1, MAX_DIM)
    out = [[v_expr(e, f"{key}[{i}][{j}]") for j, e in enumerate(_list(r, f"{key}[{i}]", 1, MAX_DIM))]
           for i, r in enumerate(rows)]
    if any(len(r) != len(out) for r in out):
        raise SpecError(f"`{key}`: expected a square array of arrays; got rows of lengths {[len(r) for r in out]}")
    return out


def v_constants(v, key):
    if not isinstance(v, dict):
        raise SpecError(f"`{key}`: expected a table name = number; got {_tname(v)} {v!r:.60}")
    if len(v) > MAX_PARAMS:
        raise SpecError(f"`{key}`: at most {MAX_PARAMS} constants; got {len(v)}")
    return {check_name(n, f"{key}.{n}"): _finite_real(x, f"{key}.{n}") for n, x in v.items()}


def v_widths(v, key):
    out = [v_int(1, MAX_WIDTH)(e, f"{key}[{i}]") for i, e in enumerate(_list(v, key, 1, 8))]
    if len(set(out)) != len(out):
        raise SpecError(f"`{key}`: widths must be distinct; got {out}")
    return out


def v_particle_laws(v, key):
    """name = [kind, numbers...]: ["normal", mean, std], ["uniform", lo, hi] or ["constant", value]."""
    if not isinstance(v, dict):
        raise SpecError(f"`{key}`: expected a table name = [law, numbers...]; got {_tname(v)} {v!r:.60}")
    if len(v) > MAX_PARAMS:
        raise SpecError(f"`{key}`: at most {MAX_PARAMS} entries; got {len(v)}")
    out = {}
    for name, law in v.items():
        where = f"{key}.{name}"
        check_name(name, where)
        items = _list(law, where, 2, 3)
        kind = items[0]
        if not isinstance(kind, str) or kind not in PARTICLE_LAWS:
            raise SpecError(f"`{where}`: the first entry must be one of {', '.join(PARTICLE_LAWS)}; got {kind!r:.60}")
        if len(items) != 1 + PARTICLE_LAWS[kind]:
            raise SpecError(f"`{where}`: a {kind} law takes {PARTICLE_LAWS[kind]} number(s); got {len(items) - 1}")
        nums = [_finite_real(x, f"{where}[{i + 1}]") for i, x in enumerate(items[1:])]
        if kind == "normal" and not nums[1] > 0:
            raise SpecError(f"`{where}`: the standard deviation must be > 0; got {nums[1]}")
        if kind == "uniform" and not nums[0] < nums[1]:
            raise SpecError(f"`{where}`: expected lo < hi; got {nums}")
        out[name] = (kind, *nums)
    return out


def v_methods(v, key):
    out = v_enums(MF_METHODS)(v, key)
    if "sgd" not in out:
        raise SpecError(f"`{key}`: must contain \"sgd\" (everything is compared with SGD); got {out}")
    return out


def v_update(v, key):
    """name = expression string, one per state variable (checked against the state by the loader)."""
    if not isinstance(v, dict):
        raise SpecError(f"`{key}`: expected a table name = expression; got {_tname(v)} {v!r:.60}")
    if not 1 <= len(v) <= 2 * MAX_PARAMS:
        raise SpecError(f"`{key}`: expected 1 to {2 * MAX_PARAMS} entries; got {len(v)}")
    return {check_name(n, f"{key}.{n}"): v_string(e, f"{key}.{n}") for n, e in v.items()}


def v_path(v, key):
    if not isinstance(v, str) or not v or len(v) > 1024 or "\x00" in v:
        raise SpecError(f"`{key}`: expected a relative file path (string); got {_tname(v)} {v!r:.60}")
    return v


def v_string(v, key):
    if not isinstance(v, str):
        raise SpecError(f"`{key}`: expected a string; got {_tname(v)} {v!r:.60}")
    if len(v) > MAX_TEXT:
        raise SpecError(f"`{key}`: too long ({len(v)} characters; the limit is MAX_TEXT = {MAX_TEXT})")
    return v


@dataclass(frozen=True)
class Key:
    """One key of a section: its type, default, range and meaning."""

    type: str
    default: Any
    range: str
    help: str
    check: Callable
    section: str | None = None  # a key whose value is a sub-table validated as this section

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


_EXPR = "expression (string) or number"

SCHEMA: dict[str, dict[str, Key]] = {
    "problem": {
        "params": Key("array of names", REQUIRED, f"1..{MAX_PARAMS} distinct identifiers",
                      "the trained parameters x, in order", v_names()),
        "loss": Key("expression (string)", REQUIRED, "allow-list expression",
                    "the per-sample loss f(x, xi) in params, data and constants", v_string),
        "batch_size": Key("integer", 1, "[1, 10**6]; n_paths x steps x batch_size <= MAX_WORK",
                          "mini-batch size B (Sigma is divided by B)", v_int(1, 10**6)),
        "sampling": Key("string", "iid", "iid | without_replacement",
                        "how batches are drawn (without replacement needs one empirical data set with equal weights)",
                        v_enum(("iid", "without_replacement"))),
        "constants": Key("table name = number", {}, f"at most {MAX_PARAMS}, finite numbers",
                         "named numbers the loss may use (they stay symbolic in derivations)", v_constants),
    },
    "check": {
        "phi": Key("expression (string)", REQUIRED, "allow-list expression in params and constants",
                   "the test function phi(x)", v_string),
        "x0": Key("array of numbers", REQUIRED, "one finite number per parameter", "the starting point",
                  v_point),
        "t_end": Key("number", 1.0, "> 0, finite", "the horizon T", v_positive),
        "etas": Key("array of numbers", REQUIRED, f"1..{MAX_ETAS} distinct, > 0, finite, <= t_end",
                    "the learning rates", v_etas),
        "models": Key("array of strings", list(DEFAULT_MODELS), ", ".join(MODEL_NAMES),
                      "the models compared (gf2, the order-2 gradient flow, checks the drift alone)",
                      v_enums(MODEL_NAMES)),
        "method": Key("string", "auto", " | ".join(METHODS), "exact moments or Monte Carlo", v_enum(METHODS)),
        "seed": Key("integer", 0, "[0, 2**63 - 1]", "Monte Carlo seed", v_int(0, 2**63 - 1)),
        "n_paths": Key("integer", 200_000, "[2, 10**9]", "Monte Carlo paths per learning rate",
                       v_int(2, 10**9)),
        "scheme": Key("string", "auto", " | ".join(SCHEMES),
                      "SDE solver (auto: weak order 2 where the noise is an explicit, differentiable matrix; Euler "
                      "for a numeric square root, data-set noise or a kink, its error removed by the coupled "
                      "extrapolation)",
                      v_enum(SCHEMES)),
        "increments": Key("string", "auto", "auto | discrete | gaussian",
                          "SDE increments (auto: the scheme's two-/three-point ones, docs/theory.md §9)",
                          v_enum(("auto", "discrete", "gaussian"))),
        "schedule": Key("expression (string)", None, "allow-list expression in t and constants, > 0",
                        "learning-rate schedule u(t): SGD steps with eta u(k eta) (docs/theory.md §7)", v_string),
        "optimizer": Key("string", "sgd", " | ".join(CHECK_OPTIMIZER_NAMES),
                         "the optimizer whose modified equations are checked (momentum: docs/theory.md §7; "
                         "rmsprop, adam and a spec's own [update_map]: §10)",
                         v_enum(CHECK_OPTIMIZER_NAMES)),
        "adaptive": Key("table", None, "see [check.adaptive]", "hyper-parameters of rmsprop and adam",
                        lambda v, key: v, section="check.adaptive"),
        "friction": Key("number", 1.0, "> 0, finite",
                        "momentum friction lambda: beta = 1 - lambda sqrt(eta) (orders are fitted in h = sqrt(eta))",
                        v_positive),
        "multipoint": Key("table", None, "see [check.multipoint]", "optional multi-point study",
                          lambda v, key: v, section="check.multipoint"),
    },
    "meanfield": {
        "params": Key("array of names", REQUIRED, f"1..{MAX_PARAMS} distinct identifiers",
                      "the unit parameters theta, in order", v_names()),
        "output": Key("name", REQUIRED, "an identifier", "the symbol of the network output in `loss`", v_name),
        "unit": Key("expression (string)", REQUIRED, "allow-list expression in params and input data",
                    "the unit phi(theta, z)", v_string),
        "loss": Key("expression (string)", REQUIRED, "allow-list expression in output and data",
                    "the per-sample loss l(out, y) (a teacher: write y as a function of the inputs)", v_string),
        "batch_size": Key("integer", 1, "[1, 10**6]", "samples per SGD step", v_int(1, 10**6)),
        "particles": Key("table name = [law, numbers]", {}, "normal mean std | uniform lo hi | constant value",
                         "initial law of each unit parameter (default normal 0 1)", v_particle_laws),
        "check": Key("table", None, "see [meanfield.check]", "optional mean-field study (smfsym check)",
                     lambda v, key: v, section="meanfield.check"),
    },
    "meanfield.check": {
        "etas": Key("array of numbers", REQUIRED, f"1..{MAX_ETAS} distinct, > 0, finite; save times multiples",
                    "the learning rates", v_etas),
        "t_end": Key("number", 1.0, "> 0, finite", "the horizon T", v_positive),
        "widths": Key("array of integers", [1000], f"1..8 distinct in [1, {MAX_WIDTH}]", "network widths N",
                      v_widths),
        "n_paths": Key("integer", 64, "[2, 10**6]", "SGD sample streams (paths) per (eta, N)", v_int(2, 10**6)),
        "n_saves": Key("integer", 4, "[1, 1000]", "saved times t_end/n_saves, ..., t_end (4: binary learning "
                       "rates divide t_end/4; meanfield_study's default is 5)", v_int(1, 1000)),
        "seed": Key("integer", 0, "[0, 2**63 - 1]", "Monte Carlo seed", v_int(0, 2**63 - 1)),
        "particle_seed": Key("integer", 0, "[0, 2**63 - 1]", "seed of the initial particles", v_int(0, 2**63 - 1)),
        "observables": Key("array of strings", ["risk"], ", ".join(MF_OBSERVABLES), "observables streamed",
                           v_enums(MF_OBSERVABLES)),
        "methods": Key("array of strings", list(MF_METHODS), ", ".join(MF_METHODS) + " (sgd required)",
                       "what is simulated", v_methods),
        "ddsmf_order": Key("integer", 1, "1 | 2", "order of the DD-SMF drift", v_int(1, 2)),
        "n_points": Key("integer or \"auto\"", "auto", "[2, 64] | auto",
                        "Gauss points per continuous data coordinate (noise rule); auto: chosen by the observable "
                        "and checked, as meanfield_study's default", v_int_or_auto(2, 64)),
        "risk_points": Key("integer", 16, "[2, 64]", "Gauss points per coordinate for the population risk",
                           v_int(2, 64)),
    },
    "check.adaptive": {
        "c": Key("number", 1.0, "> 0, finite", "rmsprop: 1 - beta = c eta", v_positive),
        "c1": Key("number", 1.0, "> 0, finite", "adam: 1 - beta1 = c1 eta", v_positive),
        "c2": Key("number", 1.0, "> 0, finite", "adam: 1 - beta2 = c2 eta", v_positive),
        "eps": Key("number", 0.1, "> 0, finite", "the denominator's eps (outside the root, as in PyTorch)",
                   v_positive),
        "v0": Key("number", 1.0, "> 0, finite", "the second-moment estimate's start (every coordinate)",
                  v_positive),
        "m0": Key("number", 0.0, "finite", "adam: the first-moment estimate's start (every coordinate)",
                  _finite_real),
        "t0": Key("number", 1.0, "> 0, finite", "adam: the start time (its bias correction is singular at t = 0)",
                  v_positive),
    },
    "update_map": {
        "state": Key("array of names", [], f"0..{MAX_PARAMS} distinct identifiers",
                     "the optimizer's auxiliary state (momenta, second moments, time), after the params", v_names(0)),
        "update": Key("table name = expression", REQUIRED,
                      "one allow-list expression per param and state name",
                      "the next state U(z, xi; eta): in params, state, data, constants, eta and g_PARAM (the "
                      "per-sample gradient)", v_update),
        "start": Key("table name = number", {}, "one finite number per state name",
                     "the auxiliary state's start (the params start at [check] x0)", v_constants),
        "expansion": Key("string", "eta", "eta | sqrt_eta",
                         "the expansion parameter h, the time of one step (t = k h)", v_enum(("eta", "sqrt_eta"))),
    },
    "check.multipoint": {
        "starts": Key("array of arrays of numbers", REQUIRED, f"2..{MAX_STARTS} points, one number per parameter",
                      "the starting points of the n-point motion", v_points),
        "eta": Key("number", REQUIRED, "> 0, finite, <= t_end", "the learning rate", v_positive),
        "t_end": Key("number", 1.0, "> 0, finite", "the horizon", v_positive),
        "n_paths": Key("integer", 100_000, "[2, 10**9]", "Monte Carlo paths", v_int(2, 10**9)),
    },
}

_DIM = Key("integer", None, f"[1, {MAX_DIM}]", "vector length (names NAME0, NAME1, ...); scalar if absent",
           v_int(1, MAX_DIM))
_LAW = Key("string", REQUIRED, "a law name", "the law of this data variable", v_string)


def _law(**keys: Key) -> dict[str, Key]:
    return {"law": _LAW, **keys}


def _p(help_: str, default=REQUIRED, check=v_exprs, type_=_EXPR) -> Key:
    return Key(type_, default, "finite; may use constants, not params or data", help_, check)


LAWS: dict[str, dict[str, Key]] = {
    "normal": _law(dim=_DIM, mean=_p("mean (per coordinate if an array)", 0), std=_p("standard deviation", None),
                   var=_p("variance", None), cov=Key("array of arrays", None, "symmetric positive definite",
                                                     "covariance of a correlated vector", v_matrix)),
    "uniform": _law(dim=_DIM, a=_p("lower end", 0, v_expr), b=_p("upper end", 1, v_expr)),
    "bernoulli": _law(dim=_DIM, p=_p("P(1)", 0.5, v_expr)),
    "rademacher": _law(dim=_DIM),
    "categorical": _law(dim=_DIM, values=Key("array", REQUIRED, f"1..{MAX_LIST} expressions", "the values", v_exprs),
                        weights=Key("array", None, "non-negative, sum 1", "their probabilities", v_exprs)),
    "exponential": _law(dim=_DIM, rate=_p("rate", 1, v_expr)),
    "gamma": _law(dim=_DIM, shape=_p("shape", REQUIRED, v_expr), scale=_p("scale", 1, v_expr)),
    "beta": _law(dim=_DIM, a=_p("a", REQUIRED, v_expr), b=_p("b", REQUIRED, v_expr)),
    "student_t": _law(dim=_DIM, nu=_p("degrees of freedom", REQUIRED, v_expr)),
    "empirical": _law(file=Key("string", REQUIRED, "relative path inside the spec's directory",
                               "CSV file with a header row (smfsym.spec.data_files)", v_path),
                      columns=Key("array of names", None, "header names; default: all but weights_column",
                                  "the columns used as data variables", v_names(1, 256)),
                      weights_column=Key("string", None, "a header name", "per-row weights (>= 0, sum > 0)",
                                         v_name)),
}


def validate_section(table: Any, section: str, keys: dict[str, Key]) -> dict:
    """Check the keys and values of one table against ``keys``; return the values with defaults filled in."""
    if not isinstance(table, dict):
        raise SpecError(f"`[{section}]`: expected a table; got {_tname(table)} {table!r:.60}")
    unknown = [k for k in table if k not in keys]
    if unknown:
        raise SpecError(f"`[{section}] {str(unknown[0])[:64]}`: unknown key; allowed keys: {', '.join(keys)}")
    out = {}
    for name, key in keys.items():
        if name not in table:
            if key.required:
                raise SpecError(f"`[{section}] {name}`: missing ({key.type}: {key.help})")
            out[name] = copy.deepcopy(key.default)  # never hand out the schema's own list
            continue
        v = table[name]
        if key.section is not None:
            if not isinstance(v, dict):
                raise SpecError(f"`[{section}] {name}`: expected a table [{key.section}]; got {_tname(v)} {v!r:.60}")
            out[name] = validate_section(v, key.section, SCHEMA[key.section])
        else:
            out[name] = key.check(v, f"[{section}] {name}")
    return out


def reference() -> str:
    """The schema as a Markdown reference (for the docs).

    >>> print(reference().splitlines()[0])
    ### [problem]
    """
    lines = []
    titled = [(f"[{s}]", keys) for s, keys in SCHEMA.items()]
    titled += [(f'[data.NAME] with law = "{law}"', keys) for law, keys in LAWS.items()]
    for title, keys in titled:
        lines += [f"### {title}", "", "| key | type | default | range | meaning |",
                  "|---|---|---|---|---|"]
        for name, k in keys.items():
            d = "required" if k.required else ("-" if k.default is None else repr(k.default))
            cells = [f"`{name}`", k.type, d, k.range, k.help]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        lines.append("")
    return "\n".join(lines)
