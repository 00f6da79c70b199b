"""How a study is saved: the JSON format, its schemas, bounded reading and the ``StudyIO`` mixin.

A saved study is *data*: numbers, names and the text of the symbolic objects it
was computed from, together with the seed, the versions of smfsym, numpy, scipy
and sympy, and the time it was written. Loading never turns text back into
sympy (that would evaluate strings from a file): a loaded study has its numbers
bit for bit (floats are written in their shortest round-trip form, non-finite
values tagged) and its problem and test function as text.

A file is bounded before it is parsed (:data:`MAX_STUDY_BYTES`, :data:`MAX_ELEMENTS` JSON
values counted on the text, :data:`MAX_NESTING` levels of brackets), ``NaN`` and ``Infinity``
literals (which :meth:`StudyIO.save` never writes) and numbers that overflow a float are
refused, so is a key written twice in one object, every field is checked against the declared
schema of its study kind (:data:`SCHEMAS`: name -> type and shape), and then the fields against
each other by the kind's ``_validate`` (the ``check_*`` helpers below). Whatever is wrong, loading
raises ``ValueError`` naming the field.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import re
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..montecarlo.options import user_stacklevel
from .._version import __version__
from .._fs import atomic_write_text

__all__ = ["Order", "StudyIO", "FORMAT", "SCHEMAS", "MAX_STUDY_BYTES", "MAX_ELEMENTS", "MAX_NESTING"]

#: Format tag written into every saved study; loading refuses other formats.
FORMAT = "smfsym-study/1"
#: Largest study file read. Studies are small (a 32-eta, 5-model study is about 50 kB); parsing JSON
#: costs about 16 bytes of memory per byte of a file of small numbers, so this bounds the peak too.
MAX_STUDY_BYTES = 32 * 2**20
#: JSON values (numbers, strings, arrays, objects) a study file may hold, counted on its text before parsing.
MAX_ELEMENTS = 1_000_000
#: Nesting of arrays and objects (a saved study uses at most 5; json's parser recurses on it).
MAX_NESTING = 32


class OrderWarning(UserWarning):
    """A convergence order could not be resolved above the Monte Carlo noise, or was fitted on fewer points
    than given (errors that change sign)."""


class Order(NamedTuple):
    """A fitted convergence order: slope of log|error| against log eta with its 95% interval."""

    slope: float
    low: float
    high: float
    n_used: int


def _encode(v: Any) -> Any:
    if isinstance(v, Order):
        return {"__order__": [_encode(x) for x in v]}
    if isinstance(v, dict):
        return {str(k): _encode(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_encode(x) for x in v]
    if isinstance(v, np.ndarray):
        return {"__ndarray__": _encode(v.tolist()), "dtype": str(v.dtype), "shape": list(v.shape)}
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return f if np.isfinite(f) else {"__float__": repr(f)}
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, np.random.SeedSequence):
        return {"__seed__": {"entropy": _encode(v.entropy), "spawn_key": list(v.spawn_key)}}
    return {"__text__": str(v), "type": type(v).__name__}  # sympy objects and the like: text only


class _Bad(ValueError):
    """A malformed tagged value found by :func:`_decode`; :func:`_build` reports it with the field's name."""


def _tag(v: dict, tag: str, extra: tuple = ()) -> Any:
    if set(v) != {tag, *extra}:
        raise _Bad(f"a {tag} object must have exactly the keys {[tag, *extra]}; got {sorted(v)[:8]}")
    return v[tag]


def _decode(v: Any) -> Any:
    """JSON as written by :func:`_encode` back into Python; malformed tags raise :class:`_Bad`."""
    if isinstance(v, list):
        if not any(isinstance(x, (list, dict)) for x in v):
            return v  # numbers and strings: nothing to decode (the common, long case)
        return [_decode(x) for x in v]
    if not isinstance(v, dict):
        return v
    if "__float__" in v:
        text = _tag(v, "__float__")
        if text not in ("nan", "inf", "-inf"):
            raise _Bad(f"invalid non-finite float tag {text!r:.40}")
        return float(text)
    if "__order__" in v:
        items = _tag(v, "__order__")
        if not isinstance(items, list) or len(items) != 4:
            raise _Bad("an order must be [slope, low, high, n_used]")
        s, lo, hi, n = (_decode(x) for x in items)
        if not all(_is_number(x) for x in (s, lo, hi)) or not _is_int(n) or not 0 <= n <= 2**31:
            raise _Bad("an order must be three numbers and a count")
        return Order(float(s), float(lo), float(hi), int(n))
    if "__ndarray__" in v:
        data, dtype, shape = _tag(v, "__ndarray__", ("dtype", "shape")), v["dtype"], v["shape"]
        if dtype not in _DTYPES:
            raise _Bad(f"arrays must be numeric ({', '.join(_DTYPES)}); got dtype {str(dtype)[:40]!r}")
        if not (isinstance(shape, list) and len(shape) <= 8 and all(_is_int(n) and 0 <= n <= MAX_ELEMENTS
                                                                     for n in shape)):
            raise _Bad(f"an array shape must be at most 8 counts; got {str(shape)[:60]}")
        nested = _decode(data)
        leaf = (lambda x: isinstance(x, bool)) if dtype == "bool" else _is_int if "int" in dtype else _is_number
        stack = [nested]
        while stack:  # every leaf has the dtype's kind: numpy would turn None into NaN, "1" into 1.0
            x = stack.pop()
            if isinstance(x, list):
                stack.extend(x)
            elif not leaf(x):
                raise _Bad(f"an array of dtype {dtype} holds {_tname(x)} {str(x)[:40]!r}")
        arr = np.asarray(nested, dtype=np.dtype(dtype))
        if arr.size == 0 and math.prod(shape) == 0:
            arr = arr.reshape(shape)  # tolist() of an empty array loses its shape
        if list(arr.shape) != shape:
            raise _Bad(f"an array's data has shape {list(arr.shape)}, not the declared {shape}")
        return arr
    if "__seed__" in v:
        seed = _tag(v, "__seed__")
        if not isinstance(seed, dict) or set(seed) != {"entropy", "spawn_key"}:
            raise _Bad("a seed must be {entropy, spawn_key}")
        entropy, key = seed["entropy"], seed["spawn_key"]
        if not (entropy is None or _is_int(entropy) or (isinstance(entropy, list) and all(map(_is_int, entropy)))):
            raise _Bad("a seed's entropy must be an integer or a list of them")
        if not (isinstance(key, list) and all(_is_int(k) for k in key)):
            raise _Bad("a seed's spawn key must be a list of integers")
        return {"entropy": entropy, "spawn_key": key}
    if "__text__" in v:
        text = _tag(v, "__text__", ("type",))
        if not isinstance(text, str):
            raise _Bad("a text object must hold a string")
        return text
    return {k: _decode(x) for k, x in v.items()}


_DTYPES = ("float64", "float32", "int64", "int32", "uint64", "uint32", "bool")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    """A float, or an int of at most 2**53 (exact as a float); not a bool. Exact types: this runs per number."""
    t = type(v)
    if t is float or (t is int and -(2**53) <= v <= 2**53):
        return True
    return isinstance(v, float) or (_is_int(v) and abs(v) <= 2**53)  # subclasses (numpy scalars)


# ----------------------------------------------------------------------------- declared field schemas
# A spec is "str", "int", "num" (a finite or tagged non-finite float; an integer up to 2**53), "bool",
# "plain" (JSON values: what `meta` holds), "order", "seed", "meta" (`_META` for the keys it names, "plain"
# for others), ("opt", spec), ("list", spec), ("map", spec) (string keys), ("array", ndim) (a numeric
# array) or ("row", required, optional) (an object with exactly these keys).

def _row(required: dict, optional: dict | None = None) -> tuple:
    return ("row", required, optional or {})


_NUMS = ("list", "num")
_STRS = ("list", "str")
_WEAK_ROW = _row({"eta": "num", "t": "num", "model": "str", "sgd": "num", "sgd_se": "num", "value": "num",
                  "value_se": "num", "error": "num", "se": "num", "method": "str", "solver_error": "num",
                  "lost": "num", "lost_sgd": "num"}, {"h": "num"})
_RATES_ROW = _row({"eta": "num", "t": "num", "model": "str", "psi": "str", "sgd": "num", "sgd_se": "num",
                   "value": "num", "value_se": "num", "error": "num", "se": "num", "method": "str",
                   "solver_error": "num", "lost": "num"}, {"solver_error_se": "num"})
_MP_ROW = _row({"psi": "str", "model": "str", "value": "num", "se": "num", "z": "num", "solver_error": "num",
                "lost": "num"}, {"solver_error_se": "num"})
_SCALING_ROW = _row({"rule": "str", "k": "num", "eta": "num", "batch": "num", "hyper": ("map", "num"),
                     "sde": ("map", "num"), "steps": "int", "value": "num", "se": "num", "shift": "num",
                     "shift_se": "num"})
_SVAG_ROW = _row({"l": "int", "value": "num", "value_se": "num", "sme": "num", "sme_se": "num", "error": "num",
                  "se": "num"})
_MOMENTUM_MP_ROW = _row({"eta": "num", "h": "num", "t": "num", "model": "str", "stat": "str", "sgd": "num",
                         "value": "num", "error": "num"})
_MEANFIELD_ROW = _row({"N": "int", "eta": "num", "t": "num", "mean_sgd": "num", "sem_sgd": "num", "var_sgd": "num",
                       "var_se_sgd": "num"},
                      {"mean_ddsmf": "num", "sem_ddsmf": "num", "var_ddsmf": "num", "var_se_ddsmf": "num",
                       "rel_err_var": "num", "rel_err_var_se": "num", "mean_limit": "num"})
#: Keys of `meta` that the studies write and read back, with their types; other keys are plain JSON values.
_META = {"method": "str", "n_paths": "int", "seed": ("opt", "seed"), "x0": _NUMS, "t_end": "num",
         "scheme": ("opt", "str"), "increments": ("opt", "str"), "extrapolate": "bool", "on_nonfinite": "str",
         "blowup_threshold": ("opt", "num"), "schedule": "str", "friction": "num", "nesterov": "bool",
         "orders_in": "str", "exact_models": _STRS, "dt_fraction": "num", "resolve": "num",
         "exact_refused": ("opt", "str"), "methods": ("map", "str"), "models": _STRS, "psi": _STRS, "loaded_from": ("opt", "str"), "versions": ("opt", ("map", "str"))}
_TEXT = ("opt", "str")

#: Study kind -> field -> (spec, required). Every field of a saved study is checked against this on load.
SCHEMAS: dict = {
    "WeakErrorStudy": {"problem": (_TEXT, True), "phi": (_TEXT, True), "etas": (_NUMS, True),
                       "models": (_STRS, True), "rows": (("list", _WEAK_ROW), True),
                       "orders": (("map", "order"), True), "t": (_NUMS, True), "meta": ("meta", False)},
    "MultipointStudy": {"rows": (("list", _MP_ROW), True), "starts": (("array", 2), True), "eta": ("num", True),
                        "t": ("num", True), "meta": ("meta", False)},
    "MultipointRates": {"problem": (_TEXT, True), "starts": (("array", 2), True), "etas": (_NUMS, True),
                        "t": (_NUMS, True), "models": (_STRS, True), "psi": (_STRS, True),
                        "rows": (("list", _RATES_ROW), True), "orders": (("map", "order"), True),
                        "meta": ("meta", False)},
    "MomentumMultipoint": {"etas": (_NUMS, True), "models": (_STRS, True), "stats": (_STRS, True),
                           "rows": (("list", _MOMENTUM_MP_ROW), True), "orders": (("map", "order"), True)},
    "ScalingRuleStudy": {"optimizer": ("str", True), "problem": (_TEXT, True), "phi": (_TEXT, True),
                         "ks": (_NUMS, True), "rows": (("list", _SCALING_ROW), True), "t": ("num", True),
                         "meta": ("meta", False)},
    "SvagStudy": {"problem": (_TEXT, True), "phi": (_TEXT, True), "ls": (("list", "int"), True),
                  "rows": (("list", _SVAG_ROW), True), "order": ("order", True), "t": ("num", True),
                  "eta": ("num", True), "meta": ("meta", False)},
    # mean field: per-path observables and fits as plain JSON values, rebuilt (and checked) by the class
    "MeanFieldStudy": {"results": ("plain", True), "etas": (_NUMS, True), "widths": (("list", "int"), True),
                       "t": (("array", 1), True), "slopes": ("plain", False), "mean_orders": ("plain", False),
                       "rows": (("list", _MEANFIELD_ROW), False), "meta": ("plain", False)},
}


def _tname(v: Any) -> str:
    return type(v).__name__


_LEAF_TESTS = {"num": _is_number, "str": lambda x: isinstance(x, str),
               "int": lambda x: _is_int(x) and abs(x) <= 2**63}


def _check(v: Any, spec: Any, where: str, depth: int = 0) -> None:
    """Check a decoded value against a schema spec; raise ValueError naming ``where``."""
    def bad(expected: str):
        raise ValueError(f"saved study: `{where}` must be {expected}; got {_tname(v)} {str(v)[:60]!r}.")

    if isinstance(v, _Literal):
        raise ValueError(f"saved study: `{where}` holds {v.why}.")
    kind = spec[0] if isinstance(spec, tuple) else spec
    if kind == "str":
        isinstance(v, str) or bad("a string")
    elif kind == "int":
        (_is_int(v) and abs(v) <= 2**63) or bad("an integer")
    elif kind == "num":
        _is_number(v) or bad("a number (at most 2**53 if an integer)")
    elif kind == "bool":
        isinstance(v, bool) or bad("true or false")
    elif kind == "seed":  # an integer, or a SeedSequence as _decode returns it
        ((_is_int(v) and 0 <= v < 2**128) or (isinstance(v, dict) and set(v) == {"entropy", "spawn_key"})) or \
            bad("a seed (an integer in [0, 2**128) or {__seed__: {entropy, spawn_key}})")
    elif kind == "order":
        isinstance(v, Order) or bad("a fitted order {__order__: [slope, low, high, n_used]}")
    elif kind == "opt":
        if v is not None:
            _check(v, spec[1], where, depth)
    elif kind == "list":
        isinstance(v, list) or bad("an array")
        leaf = _LEAF_TESTS.get(spec[1]) if isinstance(spec[1], str) else None
        if leaf is not None:  # a long list of numbers or strings: one pass, a path only for the culprit
            i = next((i for i, x in enumerate(v) if not leaf(x)), None)
            if i is not None:
                _check(v[i], spec[1], f"{where}[{i}]", depth + 1)
            return
        for i, x in enumerate(v):
            _check(x, spec[1], f"{where}[{i}]", depth + 1)
    elif kind == "map":
        isinstance(v, dict) or bad("an object")
        for k, x in v.items():
            _check(x, spec[1], f"{where}[{k[:40]!r}]", depth + 1)
    elif kind == "array":
        (isinstance(v, np.ndarray) and v.ndim == spec[1]) or bad(f"a numeric array of {spec[1]} dimensions")
    elif kind == "row":
        isinstance(v, dict) or bad("an object")
        required, optional = spec[1], spec[2]
        missing = [k for k in required if k not in v]
        extra = [k for k in v if k not in required and k not in optional]
        if missing or extra:
            raise ValueError(f"saved study: `{where}` must have the keys {sorted(required)}"
                             f"{f' (and optionally {sorted(optional)})' if optional else ''}; "
                             + (f"missing {missing}" if missing else f"unknown {[k[:40] for k in extra][:5]}") + ".")
        for k, x in v.items():
            _check(x, required.get(k) or optional[k], f"{where}[{k!r}]", depth + 1)
    elif kind == "meta":
        isinstance(v, dict) or bad("an object")
        for k, x in v.items():
            _check(x, _META.get(k, "plain"), f"{where}[{k[:40]!r}]", depth + 1)
    elif kind == "plain":
        if isinstance(v, (list, dict)):
            for k, x in (enumerate(v) if isinstance(v, list) else v.items()):
                _check(x, "plain", f"{where}[{k!r:.40}]", depth + 1)
        elif not (v is None or isinstance(v, (str, bool)) or _is_number(v) or isinstance(v, (Order, np.ndarray))):
            bad("a plain value (number, string, true/false, null, array or object)")
    else:  # pragma: no cover - a schema error of ours
        raise AssertionError(f"unknown schema spec {spec!r}")


def _versions() -> dict:
    import scipy
    import sympy


    return {"smfsym": __version__, "numpy": np.__version__, "scipy": scipy.__version__, "sympy": sympy.__version__}


class StudyIO:
    """``save``/``load`` and ``to_pandas`` for the study dataclasses (mixed in)."""

    #: Fields written as text only (symbolic objects); a loaded study holds their text.
    _text_fields: tuple = ("problem", "phi")

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the study as JSON (atomic: a temporary file, then a rename).

        Parameters
        ----------
        path : str or Path
            The file to write (``.json``).
        overwrite : bool
            Refuse to replace an existing file unless True.
        """
        path = Path(path)
        if path.exists() and not overwrite:
            raise FileExistsError(f"`path` {str(path)!r} exists; pass overwrite=True to replace it.")
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        doc = {"format": FORMAT, "kind": type(self).__name__, "versions": _versions(),
               "written": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
               "fields": {k: (_encode(str(v)) if k in self._text_fields and v is not None else _encode(v))
                          for k, v in fields.items()}}
        atomic_write_text(path, json.dumps(doc, indent=1, allow_nan=False) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path):
        """Read a study written by :meth:`save` (numbers exact; symbolic fields as text)."""
        doc = _read(path)
        if doc.get("kind") != cls.__name__:
            raise ValueError(f"`path` holds a {doc.get('kind')!r}, not a {cls.__name__}.")
        return _build(cls, doc)

    def _validate(self) -> None:
        """Refuse a study whose fields contradict each other (``ValueError`` naming the field).

        :func:`_build` calls this on every study it reads, after the schema check of each field;
        each registered study kind overrides it next to its class (the class is the registry: no
        list of kinds here) with the checks of :class:`Consistency`. The default checks nothing,
        for classes outside the registry; ``tests/io/test_load_consistency.py`` asserts that every
        registered kind defines its own.
        """

    def to_pandas(self):
        """The table in long format: one row per (model, eta, statistic) with value and standard error.

        Columns: ``model, eta, statistic, value, se`` (plus ``t`` where the study has one).
        """
        try:
            import pandas as pd
        except ImportError:  # pragma: no cover - pandas is optional
            raise ImportError("`to_pandas` needs pandas: pip install pandas") from None
        return pd.DataFrame(self._long_rows(), columns=["model", "eta", "statistic", "value", "se", "t"])

    def _long_rows(self) -> list:  # pragma: no cover - each study defines its own
        raise NotImplementedError


class _Literal:
    """A JSON literal that save never writes (NaN, Infinity, a float overflow, a 300-digit integer).

    The parser keeps it as this marker so that the schema check can name the field that holds it.
    """

    def __init__(self, why: str):
        self.why = why

    def __str__(self) -> str:
        return self.why


def _parse_int(text: str):
    return int(text) if len(text) <= 300 else _Literal(f"an integer of {len(text)} digits")


def _parse_float(text: str):
    x = float(text)
    return x if x - x == 0 else _Literal(f"the number {text[:40]}, which overflows a float")


def _parse_constant(name: str):
    return _Literal(f"the literal {name} (save never writes one: non-finite numbers are tagged)")


_KEY_OR_BRACKET = re.compile(rb'"((?:[^"\\]|\\.)*)"(\s*:)?|[\[\]{}]')


def _nesting(raw: bytes, limit: int) -> tuple:
    """(depth, where): the nesting of arrays and objects outside strings, up to the first level beyond
    ``limit``, and the field of ``fields`` that reaches it (a slower scan, run only when the quick one,
    which counts brackets inside strings too, is over the limit)."""
    depth, deepest, top, fld = 0, 0, None, None
    for m in _KEY_OR_BRACKET.finditer(raw):
        t = m.group()
        if t in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
            if depth > limit:
                return deepest, f"`{fld}`" if top == "fields" and fld else "the file"
        elif t in (b"]", b"}"):
            depth -= 1
        elif m.group(2) is not None and depth == 1:
            top = m.group(1).decode("utf-8", "replace")
        elif m.group(2) is not None and depth == 2 and top == "fields":
            fld = m.group(1).decode("utf-8", "replace")[:40]
    return deepest, "the file"


class _DuplicateKey(ValueError):
    """A key written twice in one JSON object (raised by :func:`_unique_keys` while parsing)."""


def _unique_keys(pairs: list) -> dict:
    """``object_pairs_hook`` of :func:`_read`: the object as a dict, refusing a key written twice.

    json keeps the last of two equal keys silently, other readers may keep the first: the same file
    would hold different studies for smfsym and for them. :meth:`StudyIO.save` never writes one.
    """
    d = dict(pairs)
    if len(d) != len(pairs):
        seen = set()
        key = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise _DuplicateKey(f"the key `{key[:40]}` appears twice in one object; a saved study writes each "
                            "key once (JSON readers differ on which one they keep)")
    return d


def _read(path) -> dict:
    """The JSON document of a saved study, bounded before parsing (module docstring); ValueError if not one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"`path` {str(path)!r} is not a file.")
    where = f"`path` {str(path)!r}"
    size = path.stat().st_size
    if size > MAX_STUDY_BYTES:
        raise ValueError(f"{where} has {size} bytes; a saved study has at most MAX_STUDY_BYTES = "
                         f"{MAX_STUDY_BYTES} (studies are small): not a saved study.")
    with open(path, "rb") as fh:
        raw = fh.read(size + 1)  # (a buffer of the bound itself would be allocated in full)
    if len(raw) > MAX_STUDY_BYTES:
        raise ValueError(f"{where} is larger than MAX_STUDY_BYTES = {MAX_STUDY_BYTES}: not a saved study.")
    # Count values and nesting on the text, before json builds anything (its objects cost several times the
    # bytes of the text): commas and brackets bound the values from above (those inside strings count too).
    n = raw.count(b",") + raw.count(b"[") + raw.count(b"{") + 1
    if n > MAX_ELEMENTS:
        raise ValueError(f"{where} holds about {n} JSON values; a saved study has at most MAX_ELEMENTS = "
                         f"{MAX_ELEMENTS}: not a saved study.")
    depth = deepest = 0
    for b in re.findall(rb"[\[\]{}]", raw):  # single bytes: cached objects, the list is pointers
        depth += 1 if b in (b"[", b"{") else -1
        deepest = max(deepest, depth)
    if deepest > MAX_NESTING:  # perhaps brackets inside strings: count again, skipping strings, and name the field
        deepest, fld = _nesting(raw, MAX_NESTING)
        if deepest > MAX_NESTING:
            raise ValueError(f"saved study: {fld} nests arrays and objects more than MAX_NESTING = {MAX_NESTING} "
                             f"deep ({where}).")
    try:
        text = raw.decode("utf-8")
        del raw  # the peak is the text and the parsed objects, not two copies of the file besides
        doc = json.loads(text, parse_constant=_parse_constant, parse_float=_parse_float, parse_int=_parse_int,
                         object_pairs_hook=_unique_keys)
    except _DuplicateKey as exc:
        raise ValueError(f"saved study: {exc} ({where}).") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{where} is not JSON: {exc}") from None
    except (ValueError, RecursionError) as exc:  # e.g. an integer of more than 4300 digits
        raise ValueError(f"{where} is not a saved study: {str(exc)[:120]}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"{where} is not a saved smfsym study (format {FORMAT!r}).")
    for key, ok, what in (("kind", isinstance(doc.get("kind"), str), "a string"),
                          ("fields", isinstance(doc.get("fields"), dict), "an object"),
                          ("written", isinstance(doc.get("written", ""), str), "a string"),
                          ("versions", isinstance(doc.get("versions", {}), dict)
                           and all(isinstance(v, str) for v in doc.get("versions", {}).values()),
                           "an object of version strings")):
        if not ok:
            raise ValueError(f"saved study: `{key}` must be {what}; got {_tname(doc.get(key))}.")
    return doc


def _build(cls, doc):
    """The study of class ``cls`` from a document of :func:`_read`: every field checked against its schema."""
    names = [f.name for f in dataclasses.fields(cls)]
    schema = SCHEMAS.get(cls.__name__) or {n: ("plain", False) for n in names}
    unknown = [k for k in doc["fields"] if k not in schema]
    if unknown:
        raise ValueError(f"saved study: unknown field(s) {[k[:40] for k in unknown][:5]} for a {cls.__name__} "
                         f"(fields: {', '.join(schema)}).")
    fields = {}
    for name, (spec, required) in schema.items():
        if name not in doc["fields"]:
            if required:
                raise ValueError(f"saved study: the field `{name}` of a {cls.__name__} is missing.")
            continue
        try:
            value = _decode(doc["fields"][name])
        except _Bad as exc:
            raise ValueError(f"saved study: `{name}`: {exc}.") from None
        except (TypeError, ValueError, OverflowError) as exc:  # numpy on malformed array data
            raise ValueError(f"saved study: `{name}`: malformed value ({type(exc).__name__}: {str(exc)[:80]}).") \
                from None
        _check(value, spec, name)
        fields[name] = value
    if "meta" in names:
        meta = dict(fields.get("meta") or {})
        meta.update(loaded_from=doc.get("written"), versions=doc.get("versions"))
        fields["meta"] = meta
    try:
        study = cls(**fields)
    except (TypeError, KeyError, AttributeError, IndexError, ValueError) as exc:  # plain fields rebuilt by the class
        raise ValueError(f"saved study: a {cls.__name__} cannot be rebuilt from its fields "
                         f"({type(exc).__name__}: {str(exc)[:80]}).") from None
    # types and shapes are right; now the fields must agree with each other, or printing, plotting and the
    # tables would fail later (KeyError, StopIteration) or show numbers that no study computed
    study._validate()
    return study


# ----------------------------------------------------------------------------- consistency of a loaded study
# The schema above checks each field alone; these check that the fields agree with each other. Each study
# kind's ``_validate`` (next to its class) combines them; every refusal is a ValueError worded like the
# schema's: "saved study: `where` must be <expected>; got <given>."

#: Relative tolerance of a stored difference (``error = value - sgd``): the study computed it in floats
#: from the same two numbers, so only a different rounding (not a different number) may separate them.
DIFFERENCE_RTOL = 1e-9


def refuse(where: str, expected: str, got: Any, verb: str = "be") -> None:
    """Raise the ``ValueError`` of an inconsistent field: ``where`` (e.g. ``rows[0].eta``), what it must be, what it is.

    ``got`` is a number (written with ``repr``) or a description (written as is: pass ``repr`` of a string value).
    """
    got = got if isinstance(got, str) else repr(got)
    raise ValueError(f"saved study: `{where}` must {verb} {expected}; got {got[:80]}.")


def _nan(x: Any) -> bool:
    return isinstance(x, float) and math.isnan(x)


def check_positive(value: Any, where: str) -> None:
    """A positive finite number (a learning rate, a horizon)."""
    if not (math.isfinite(value) and value > 0):
        refuse(where, "a positive finite number", value)


def check_grid(values: list, where: str) -> None:
    """The values a study was run at (learning rates, batch factors, SVAG's l): positive, finite and distinct.

    Parameters
    ----------
    values : list of numbers
        The field, already checked for type by the schema.
    where : str
        Its name in messages, e.g. ``"etas"``.
    """
    if not values:
        refuse(where, "a non-empty array (the values the study was run at)", "[]")
    for i, v in enumerate(values):
        check_positive(v, f"{where}[{i}]")
    seen = {}
    for i, v in enumerate(values):
        if v in seen:
            refuse(f"{where}[{i}]", f"distinct from the other entries of `{where}`", f"{v!r}, as `{where}[{seen[v]}]`")
        seen[v] = i


def check_names(names: list, where: str) -> None:
    """A list of names (models, statistics, rules): no name twice (rows are keyed by it)."""
    for i, n in enumerate(names):
        if n in names[:i]:
            refuse(f"{where}[{i}]", f"distinct from the other entries of `{where}`", repr(n))


def check_rows(rows: list, where: str = "rows") -> None:
    """A study that always has rows: at least one (tables and figures take the first)."""
    if not rows:
        refuse(where, "a non-empty array (every study of this kind has rows)", "[]")


def check_members(row: dict, i: int, allowed: dict, where: str = "rows") -> None:
    """Each ``row[key]`` among ``allowed[key] = (field name, values)``: the study's etas, models, ...

    Parameters
    ----------
    row : dict
        One row.
    i : int
        Its index (messages name ``rows[i].key``).
    allowed : dict
        key -> (name of the field that lists the allowed values, those values).
    where : str
        The field holding the rows.
    """
    for key, (name, values) in allowed.items():
        if row[key] not in values:
            refuse(f"{where}[{i}].{key}", f"one of the study's `{name}` {list(values)[:8]}", repr(row[key]))


def check_complete(rows: list, keys: tuple, expected: list, where: str = "rows") -> None:
    """One row per combination of ``keys`` in ``expected`` (e.g. every (eta, model)), no more, no fewer.

    Tables index rows by these keys: a missing one is a ``KeyError`` there, a repeated one would hide a row.
    """
    seen = {}
    for i, r in enumerate(rows):
        k = tuple(r[key] for key in keys)
        if k in seen:
            refuse(f"{where}[{i}]", f"the only row of {_combo(keys, k)}", f"a second one (also `{where}[{seen[k]}]`)")
        seen[k] = i
    for k in expected:
        if k not in seen:
            refuse(where, f"a row for every ({', '.join(keys)}) of the study", f"none for {_combo(keys, k)}", "hold")


def _combo(keys: tuple, values: tuple) -> str:
    return "(" + ", ".join(f"{k} = {v!r}" for k, v in zip(keys, values)) + ")"


def check_nonnegative(row: dict, i: int, keys: tuple, where: str = "rows") -> None:
    """Standard errors (and other magnitudes) at least 0, or NaN where a study could not estimate one."""
    for key in keys:
        if key in row and not (_nan(row[key]) or row[key] >= 0):
            refuse(f"{where}[{i}].{key}", "at least 0 (a standard error) or NaN", row[key])


def check_fractions(row: dict, i: int, keys: tuple, where: str = "rows") -> None:
    """Fractions of paths (``lost``) in [0, 1], or NaN."""
    for key in keys:
        if key in row and not (_nan(row[key]) or 0 <= row[key] <= 1):
            refuse(f"{where}[{i}].{key}", "a fraction of paths in [0, 1]", row[key])


def check_difference(row: dict, i: int, diff: str = "error", a: str = "value", b: str = "sgd",
                     where: str = "rows") -> None:
    """``row[diff] == row[a] - row[b]`` up to rounding (:data:`DIFFERENCE_RTOL` of the larger of the two).

    A study stores the difference it computed from the two numbers beside them: a file where they disagree
    shows an error that no study computed. NaN where either number is NaN.
    """
    x, y, d = row[a], row[b], row[diff]
    want = x - y
    if _nan(want) or _nan(d):
        ok = _nan(want) and _nan(d)
    else:
        ok = d == want or (math.isfinite(want) and abs(d - want) <= DIFFERENCE_RTOL * max(abs(x), abs(y)))
    if not ok:
        refuse(f"{where}[{i}].{diff}", f"`{a}` - `{b}` = {want!r} (to a relative {DIFFERENCE_RTOL:g})", d)


def check_order(order: "Order", where: str, n_points: int) -> None:
    """A fitted order: low <= slope <= high where finite, ``n_used`` at most the ``n_points`` fitted, and a
    NaN slope (unfitted) when fewer than two points were used."""
    s, lo, hi, n = order
    if n > n_points:
        refuse(f"{where}.n_used", f"at most the {n_points} points the study has", n)
    for (na, x), (nb, y) in ((("low", lo), ("slope", s)), (("slope", s), ("high", hi)), (("low", lo), ("high", hi))):
        if not (_nan(x) or _nan(y)) and x > y:
            refuse(f"{where}", f"an order with {na} <= {nb}", f"{na} = {x!r}, {nb} = {y!r}")
    if n < 2 and not _nan(s):
        refuse(f"{where}.slope", f"NaN (unfitted) when n_used = {n} < 2", s)


def check_order_keys(orders: dict, expected: list, where: str = "orders") -> None:
    """The orders' keys are exactly ``expected`` (one per model, or per model and statistic)."""
    for k in orders:
        if k not in expected:
            refuse(f"{where}.{k}", f"an order of one of the study's {[str(e) for e in expected][:8]}",
                   "an order of something the study did not run")
    for k in expected:
        if k not in orders:
            refuse(where, f"an order for each of {[str(e) for e in expected][:8]}", f"none for {k!r}", "hold")


def check_n_paths(meta: Any, where: str = "meta") -> None:
    """``meta.n_paths``, where stored, at least 2 (a standard error needs two paths)."""
    n = meta.get("n_paths") if isinstance(meta, dict) else None
    if n is not None and not (_is_int(n) and n >= 2):
        refuse(f"{where}.n_paths", "an integer of at least 2 (paths per Monte Carlo estimate)", n)


#: Relative tolerance of a refitted order (:func:`check_refit`): the fit is deterministic, so a study's own rows
#: give its order back to rounding (a different order of the rows in the file, at most).
REFIT_RTOL = 1e-9
#: Relative tolerance of a row's time against the study's horizon: SGD stops at k eta with t_end / eta within
#: a relative 1e-9 of the integer k (:func:`smfsym.studies.common.check_horizon`), plus the product's rounding.
HORIZON_RTOL = 1e-8


def _close(x: Any, y: Any, rtol: float) -> bool:
    if _nan(x) or _nan(y):
        return _nan(x) and _nan(y)
    return x == y or (math.isfinite(x) and math.isfinite(y) and abs(x - y) <= rtol * max(abs(x), abs(y)))


def check_refit(order: "Order", refit: "Order", where: str, legacy=None) -> "Order":
    """A stored order is the fit of the study's own rows: ``slope``, ``low`` and ``high`` equal to the refit's
    (``refit``, by the same function and resolution rule) to :data:`REFIT_RTOL`, NaN where it is NaN, and the
    same ``n_used``. Returns the order the loaded study keeps.

    One difference is expected, not refused: smfsym fits an order only on the points at the smallest steps
    whose errors share one sign (``fit_order``); a study saved before that rule, whose errors change sign, was
    fitted on more points. Where the stored order is exactly ``legacy()`` (the refit by the earlier rule,
    ``common._across_signs``), the refit replaces it, with a warning. So does an interval stored for an order
    fitted on two Monte Carlo points (earlier versions gave one from the noise alone; the slope must agree).
    """
    if legacy is not None and int(refit[3]) < int(order[3]) and _same_order(order, legacy()):
        warnings.warn(f"saved study: `{where}` was fitted on {int(order[3])} points across a sign change of the "
                      f"errors (an earlier smfsym's rule); it is refitted on the {int(refit[3])} point(s) of one sign "
                      f"at the smallest steps: slope {float(refit[0]):.4g} instead of {float(order[0]):.4g}.",
                      OrderWarning, stacklevel=user_stacklevel())
        return refit
    if (int(order[3]) == int(refit[3]) == 2 and _close(order[0], float(refit[0]), REFIT_RTOL)
            and np.isnan(float(refit[1])) and np.isnan(float(refit[2])) and _is_number(order[1]) and _is_number(order[2])
            and np.isfinite(float(order[1])) and np.isfinite(float(order[2]))):
        # an earlier smfsym gave two Monte Carlo points an interval from their noise alone (audit 10): same slope
        warnings.warn(f"saved study: `{where}` was given a 95% interval from two points (an earlier smfsym's rule, "
                      "which measured the noise but not the curvature); it is kept without one.",
                      OrderWarning, stacklevel=user_stacklevel())
        return refit
    for name, got, want in zip(("slope", "low", "high"), order[:3], refit[:3]):
        if not _close(got, float(want), REFIT_RTOL):
            refuse(f"{where}.{name}", f"{float(want)!r}, the {name} refitted from the study's rows (to a relative "
                   f"{REFIT_RTOL:g})", got)
    if int(order[3]) != int(refit[3]):
        refuse(f"{where}.n_used", f"{int(refit[3])}, the points resolved in the study's rows", order[3])
    return order


def _same_order(a, b) -> bool:
    return int(a[3]) == int(b[3]) and all(_close(g, float(w), REFIT_RTOL) for g, w in zip(a[:3], b[:3]))


def check_shared(rows: list, keys: tuple, fields: tuple, what: str, where: str = "rows") -> None:
    """Values computed once per combination of ``keys`` (SGD's ``sgd`` and ``sgd_se`` per eta: SGD runs once
    per eta, every model is compared with that run) are the same in every row of that combination."""
    first = {}
    for i, r in enumerate(rows):
        k = tuple(r[key] for key in keys)
        if k not in first:
            first[k] = i
            continue
        j = first[k]
        for f in fields:
            if f in r or f in rows[j]:
                a, b = rows[j].get(f), r.get(f)
                if not (a == b or (_nan(a) and _nan(b))):
                    at = f", {_combo(keys, k)}" if keys else ""
                    refuse(f"{where}[{i}].{f}", f"{b if a is None else a!r}, as `{where}[{j}].{f}` ({what}{at})", b)


def check_time(value: Any, where: str, horizon: Any, what: str = "the study's horizon `meta.t_end`") -> None:
    """A row's (or a study's) time ``t`` equal to the horizon, to :data:`HORIZON_RTOL`: every eta's run stops at
    t_end (the studies refuse learning rates that do not divide it)."""
    if not _is_number(horizon) or isinstance(horizon, bool) or not math.isfinite(horizon):
        return
    if not _close(value, float(horizon), HORIZON_RTOL):
        refuse(where, f"{float(horizon)!r}, {what} (to a relative {HORIZON_RTOL:g})", value)


def check_times(t: list, etas: list, rows: list, meta: dict) -> None:
    """A study's times ``t`` (one per eta) all at the horizon ``meta.t_end``, and each row's ``t`` its eta's."""
    if len(t) != len(etas):
        refuse("t", f"one time per eta ({len(etas)} of them)", f"{len(t)} times")
    for j, tj in enumerate(t):
        check_time(tj, f"t[{j}]", meta.get("t_end"))
        check_time(tj, f"t[{j}]", t[0], "`t[0]`: every eta's run stops at the horizon")
    for i, r in enumerate(rows):
        j = etas.index(r["eta"])
        check_time(r["t"], f"rows[{i}].t", t[j], f"the study's time `t[{j}]` at eta = {r['eta']!r}")


#: The ``method`` of a row: exact moments, or Monte Carlo (alone, or naming the scheme, increments and steps:
#: "montecarlo (weak2, discrete, dt=0.0125|0.00625 extrapolated)").
_METHOD = re.compile(r"exact|montecarlo|montecarlo \([^()]*\)")


def check_method(row: dict, i: int, where: str = "rows") -> None:
    """``row["method"]`` is one the studies write (:data:`_METHOD`); an exact row has no standard error (0,
    or NaN where none was stored)."""
    m = row["method"]
    if not _METHOD.fullmatch(m):
        refuse(f"{where}[{i}].method", "'exact', 'montecarlo' or 'montecarlo (<scheme, steps>)'", repr(m))
    if m == "exact":
        for key in ("se", "value_se", "sgd_se"):
            if key in row and not (_nan(row[key]) or row[key] == 0):
                refuse(f"{where}[{i}].{key}", "0 in an exact row (method = 'exact': no Monte Carlo error)", row[key])
