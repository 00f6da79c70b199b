"""Hostile-input suite for the spec layer: every key of the schema gets hostile values.

The keys are taken from the schema itself (smfsym.spec.SCHEMA and LAWS), so a
new section or key is fuzzed without touching this file. Each generated spec
must be refused with a SpecError that names the key, and the canary file that
the payloads try to create must never exist. Hypothesis runs derandomized
(fixed examples in CI). Every key gets every payload deterministically plus 60
generated wrappings: about 11,000 specs in all. Issue #15 §3 added the classes comment, evaluation-heavy,
printer-heavy, complex value and literal form (in every key, and in every expression key of a TOML file,
whose error must name key and line: about 400 files), and tampered fields of saved studies of every kind
(about 4,500 files, each must raise ValueError naming the field).
Set SMFSYM_FUZZ_REPORT=path to write the counts by kind.
"""
import copy
import datetime as dt
import json
import os
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smfsym.spec import LAWS, SCHEMA, SpecError, load_spec, spec_from_dict

CANARY_DIR = Path(__file__).parent / "_canary_never_created"
CANARY = CANARY_DIR / "CANARY"
C = str(CANARY)
COUNTS: Counter = Counter()

PAYLOADS = {
    "import": [f"__import__('os').system('touch {C}')", f"__import__('pathlib').Path('{C}').touch()",
               "import os", f"x; __import__('os').system('touch {C}')", "\nimport os"],
    "builtin call": [f"open('{C}', 'w')", f"exec(\"open('{C}','w')\")", "eval('1')", "compile('1','','eval')",
                     "getattr(x, 'real')", "globals()", "breakpoint()", "input()"],
    "attribute chain": ["().__class__.__bases__[0].__subclasses__()", "x.__class__", "x.func.__globals__",
                        "exp.__module__", "(1).real"],
    "lambda": [f"(lambda: open('{C}', 'w'))()", "lambda x: x"],
    "format string": [f"f'{{open(\"{C}\", \"w\")}}'", "'{0.__class__}'.format(x)", "'%s' % x"],
    "comprehension": [f"[open('{C}','w') for _ in 'a']", "{c for c in 'ab'}", "(c for c in 'ab')"],
    "dunder": ["__builtins__", "__loader__", "x + __name__", "__import__"],
    "walrus/compare/bool": [f"(c := open('{C}', 'w'))", "x < 1", "x and x", "not x", "x if x else x"],
    "constant type": ["None", "True", "'s'", "1j", "b'x'", "..."],
    "deep nesting": ["(" * 300 + "x" + ")" * 300, "-" * 3000 + "x", "x**" * 500 + "x", "exp(" * 100 + "x" + ")" * 100],
    "very long": ["x+" * 15_000 + "x", "+".join(["x"] * 5000), "1" * 25_000],
    "huge number": ["9**9**9", "2**(10**10)", "x**(10**10)", "1" * 60, "1e999", "(10**30)**1000", "x/0"],
    "unicode look-alike": ["\uff58 + 1", "x\u2080", "\U0001d431", "\uff45\uff58\uff50(1)"],
    "unknown name": ["os", "sys.modules", "Symbol('x')"],
}
NON_SCALARS = {
    "bool": [True, False],
    "datetime": [dt.datetime(2020, 1, 1, 12, 0), dt.date(2020, 1, 1), dt.time(12, 0)],
    "non-finite": [float("nan"), float("inf"), float("-inf")],
}


def _payload():
    return st.sampled_from(sorted(PAYLOADS)).flatmap(
        lambda kind: st.tuples(st.just(kind), st.sampled_from(PAYLOADS[kind]),
                               st.sampled_from(["", "x + ", "2*(", "exp(", " "]),
                               st.sampled_from(["", " * x", ")", " "])).map(
            lambda t: (t[0], t[2] + t[1] + t[3])))


def _scalar_bad():
    return st.sampled_from(sorted(NON_SCALARS)).flatmap(
        lambda kind: st.sampled_from(NON_SCALARS[kind]).map(lambda v: ("TOML " + kind, v)))


def hostile_values():
    """(kind, value) pairs that no key of the schema accepts."""
    leaf = st.one_of(_payload(), _scalar_bad())
    arrays = st.lists(leaf, min_size=1, max_size=3).map(lambda xs: ("TOML array of " + xs[0][0], [v for _, v in xs]))
    nested = leaf.map(lambda kv: ("TOML nested array", [[kv[1]], [kv[1]]]))
    tables = st.tuples(_payload(), leaf).map(lambda t: ("TOML table", {t[0][1]: t[1][1]}))
    table_bad_value = leaf.map(lambda kv: ("TOML table", {"c": kv[1]}))
    return st.one_of(leaf, leaf, arrays, nested, tables, table_bad_value,
                     st.just(("TOML empty array", [])))


def base_doc(law=None):
    """A valid spec using every section, with data `w` of the given law (normal by default)."""
    doc = {
        "problem": {"params": ["x", "y"], "loss": "(x - w)**2 / 2 + c * y**2", "batch_size": 2,
                    "sampling": "iid", "constants": {"c": 0.5}},
        "data": {"w": {"law": "normal", "std": 0.5}},
        "check": {"phi": "x**2 + y", "x0": [1.0, -1.0], "t_end": 1.0, "etas": [0.1, 0.05], "models": ["sme1"],
                  "method": "auto", "seed": 3, "n_paths": 1000, "scheme": "auto", "increments": "auto",
                  "schedule": "1 / (1 + t)", "optimizer": "sgd", "friction": 1.0,
                  "multipoint": {"starts": [[0.0, 1.0], [1.0, 0.0]], "eta": 0.05, "t_end": 1.0, "n_paths": 1000}},
        "meanfield": {"params": ["a", "b"], "output": "out", "unit": "a * tanh(b * w)", "loss": "(out - w)**2 / 2",
                      "batch_size": 1, "particles": {"a": ["normal", 0.0, 0.1], "b": ["uniform", -1.0, 1.0]},
                      "check": {"etas": [0.1, 0.05], "t_end": 1.0, "widths": [10, 20], "n_paths": 8, "n_saves": 2,
                                "seed": 0, "particle_seed": 1, "observables": ["risk"],
                                "methods": ["sgd", "ddsmf", "limit"], "ddsmf_order": 1, "n_points": 8,
                                "risk_points": 8}},
    }
    minimal = {"normal": {}, "uniform": {}, "bernoulli": {}, "rademacher": {}, "categorical": {"values": [-1, 2]},
               "exponential": {}, "gamma": {"shape": 2}, "beta": {"a": 2, "b": 3}, "student_t": {"nu": 7},
               "empirical": {"file": "data.csv"}}
    if law is not None:
        doc["data"] = {"w": {"law": law, **minimal[law]}}
    return doc


#: The sections of optimizers written as update maps are fuzzed on their own base document (batch size 1, no
#: schedule, no multi-point study): [check.adaptive] under the optimizer that reads the key, [update_map] under
#: optimizer = "update_map".
MAP_SECTIONS = ("check.adaptive", "update_map")


def map_doc(section, key):
    doc = base_doc()
    doc["problem"]["batch_size"] = 1
    check = doc["check"]
    for k in ("schedule", "multipoint"):
        del check[k]
    if section == "check.adaptive":
        check["optimizer"] = "rmsprop" if key in ("c", "eps", "v0") else "adam"
        check["adaptive"] = {key: {"c1": 1.5, "c2": 1.5, "m0": 0.5, "t0": 0.5}.get(key, 0.5)}
    else:
        check["optimizer"] = "update_map"
        doc["update_map"] = {"state": ["v"], "start": {"v": 1.0}, "expansion": "eta",
                             "update": {"v": "v + eta * (g_x**2 - v)", "x": "x - eta * g_x / sqrt(v + 1)",
                                        "y": "y - eta * g_y"}}
    return doc


def keys_of_schema():
    out = []
    for section, keys in SCHEMA.items():
        for key in keys:
            out.append((section, key, None))
    for law, keys in LAWS.items():
        for key in keys:
            if key != "law" or law == "normal":  # the `law` key itself is fuzzed once
                out.append(("data.w", key, law))
    return out


ALL_KEYS = keys_of_schema()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    (d / "data.csv").write_text("w,q\n1.0,1\n-2.0,2\n0.5,1\n")
    yield d
    if os.environ.get("SMFSYM_FUZZ_REPORT"):
        Path(os.environ["SMFSYM_FUZZ_REPORT"]).write_text(json.dumps(dict(COUNTS), indent=1, sort_keys=True))


def _set(doc, section, key, value):
    if section == "check.adaptive":
        doc["check"]["adaptive"][key] = value
    elif section == "check.multipoint":
        doc["check"]["multipoint"][key] = value
    elif section == "meanfield.check":
        doc["meanfield"]["check"][key] = value
    elif section.startswith("data."):
        doc["data"][section[5:]][key] = value
    else:
        doc[section][key] = value


@pytest.mark.parametrize("law", [None, *LAWS])
def test_base_documents_are_valid(data_dir, law):
    """Without this the fuzz below would pass on an invalid base."""
    doc = base_doc(law)
    if law in ("student_t", "gamma", "beta", "exponential"):
        doc["check"]["method"] = "montecarlo"
    spec = spec_from_dict(doc, base_dir=data_dir)
    assert spec.check["multipoint"]["eta"] == 0.05
    assert spec.meanfield is not None and spec.meanfield_check["widths"] == [10, 20]


@pytest.mark.parametrize("section,key", [(s, k) for s in MAP_SECTIONS for k in SCHEMA[s]])
def test_update_map_base_documents_are_valid(data_dir, section, key):
    spec = spec_from_dict(map_doc(section, key), base_dir=data_dir)
    assert spec.check["update_map"].name == spec.check["optimizer"]


LEAVES = [(kind, v) for kind, vs in PAYLOADS.items() for v in vs] + \
         [("TOML " + kind, v) for kind, vs in NON_SCALARS.items() for v in vs]
KEY_IDS = [f"{s}:{k}:{l or ''}" for s, k, l in ALL_KEYS]


def _refused(data_dir, section, key, law, kind, value):
    doc = map_doc(section, key) if section in MAP_SECTIONS else base_doc(law)
    _set(doc, section, key, copy.deepcopy(value))
    with pytest.raises(SpecError) as exc:
        spec_from_dict(doc, base_dir=data_dir)
    msg = str(exc.value)
    named = [f"[{section}] {key}"]
    if section == "check.multipoint":
        named.append("[check] multipoint")
    if section == "meanfield.check":
        named.append("[meanfield] check")
    sub = SCHEMA.get(section, {}).get(key)
    if sub is not None and sub.section:  # a sub-table: its own keys name themselves
        named.append(f"[{sub.section}]")
    assert any(n in msg for n in named), f"{kind} {value!r:.80}: error does not name `[{section}] {key}`: {msg[:300]}"
    assert "\n" not in msg and len(msg) < 2000
    assert not CANARY.exists()
    COUNTS[kind] += 1


@pytest.mark.timeout(120)
@pytest.mark.parametrize("section,key,law", ALL_KEYS, ids=KEY_IDS)
def test_every_key_refuses_every_payload(data_dir, section, key, law):
    """Deterministic: each payload and each wrong TOML type, as the value itself, in every key."""
    for kind, value in LEAVES:
        _refused(data_dir, section, key, law, kind, value)


@pytest.mark.slow  # a few seconds: the slow tier (CI runs both)
@pytest.mark.timeout(120)
@pytest.mark.parametrize("section,key,law", ALL_KEYS, ids=KEY_IDS)
def test_every_key_refuses_generated_hostile_values(data_dir, section, key, law):
    """Hypothesis (derandomized): payloads wrapped in prefixes, arrays, nested arrays and tables."""

    @settings(derandomize=True, max_examples=60, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(hostile_values())
    def run(kv):
        _refused(data_dir, section, key, law, *kv)

    run()


@pytest.mark.parametrize("payload", [p for kind in ("import", "builtin call", "lambda", "format string")
                                     for p in PAYLOADS[kind]])
def test_hostile_strings_in_toml_files_name_key_and_line(tmp_path, payload):
    """End to end through TOML text: each string-valued key on its own line, error names key and line."""
    for section, key, _ in ALL_KEYS:
        if section.startswith("data.") or section in ("check.multipoint", *MAP_SECTIONS):
            continue  # (the update-map sections: test_hostile_update_map_strings_in_toml_files)
        doc = base_doc()
        lines = []
        for sec in ("problem", "check", "meanfield", "meanfield.check"):
            table = doc["meanfield"]["check"] if sec == "meanfield.check" else doc[sec]
            lines.append(f"[{sec}]")
            for k, v in table.items():
                if isinstance(v, dict):
                    continue
                v = payload if (sec, k) == (section, key) else v
                lines.append(f"{k} = {json.dumps(v)}")
        lines += ["[problem.constants]", "c = 0.5", "[data.w]", 'law = "normal"',
                  "[check.multipoint]", "starts = [[0.0, 1.0], [1.0, 0.0]]", "eta = 0.05"]
        if (section, key) in (("problem", "constants"), ("check", "multipoint"), ("check", "adaptive"),
                              ("meanfield", "particles"), ("meanfield", "check")):
            continue
        text = "\n".join(lines) + "\n"
        p = tmp_path / "s.toml"
        p.write_text(text)
        line = next(i for i, l in enumerate(lines, 1) if l.startswith(f"{key} =") and
                    lines[max(j for j in range(i) if lines[j].startswith("["))] == f"[{section}]")
        with pytest.raises(SpecError, match=rf"s.toml:{line}: `\[{section}\] {key}"):
            load_spec(p)
        assert not CANARY.exists()


@pytest.mark.parametrize("payload", [p for kind in ("import", "builtin call", "lambda", "format string")
                                     for p in PAYLOADS[kind]])
def test_hostile_update_map_strings_in_toml_files(tmp_path, payload):
    """The string keys of an [update_map] (each state's update) through TOML text: refused naming the key."""
    for name in ("x", "v"):
        update = {"v": "v + eta * (g_x**2 - v)", "x": "x - eta * g_x / sqrt(v + 1)", name: payload}
        text = "\n".join(['[problem]', 'params = ["x"]', 'loss = "(x - w)**2 / 2"', '[data.w]', 'law = "normal"',
                          '[update_map]', 'state = ["v"]', 'start = { v = 1.0 }',
                          "update = { " + ", ".join(f"{k} = {json.dumps(e)}" for k, e in update.items()) + " }",
                          '[check]', 'optimizer = "update_map"', 'phi = "x**2"', 'x0 = [1.0]', 'etas = [0.1, 0.05]'])
        p = tmp_path / "s.toml"
        p.write_text(text + "\n")
        with pytest.raises(SpecError, match=rf"s.toml:9: `\[update_map\] update.{name}`"):
            load_spec(p)
        assert not CANARY.exists()


# ----------------------------------------------------------------------------------------------------------------
# Issue #15 §3: comments, evaluation-heavy functions, printer-heavy sums, complex values and literal forms in every
# expression key of a TOML file (the error names key and line), and tampered fields of saved studies.

NEW_PAYLOADS = {
    "comment": ["x**2/2 # note + z*x", "1 # ", "w#", "x + 1  # 'quoted'"],
    "evaluation-heavy": ["tanh(" * 12 + "x*w" + ")" * 12, "exp(sin(" * 5 + "w" + "))" * 5,
                         "sigmoid(" * 7 + "w" + ")" * 7],
    "printer-heavy": [" + ".join(f"Max(x*w, {i})" for i in range(200)), " + ".join(f"Abs(w - {i})" for i in range(65)),
                      " + ".join(f"Min(w, {i})" for i in range(100))],
    "complex value": ["x + sqrt(-1)", "log(-1)", "(-1)**(1/2)", "w*sqrt(-2)", "(-8)**(1/3)"],
    "literal form": ["0x1f", "0o7*w", "0b1", "1_000", "1j + w", "2J"],
}
PAYLOADS.update(NEW_PAYLOADS)  # every key of the schema gets these too (the deterministic and generated tests)
LEAVES += [(kind, v) for kind, vs in NEW_PAYLOADS.items() for v in vs]

#: Every key whose value is an expression string, with the names it may use (a payload is refused whatever they are).
EXPRESSION_KEYS = [("problem", "loss", None), ("check", "phi", None), ("check", "schedule", None),
                   ("meanfield", "unit", None), ("meanfield", "loss", None),
                   ("data.w", "mean", "normal"), ("data.w", "std", "normal"), ("data.w", "var", "normal"),
                   ("data.w", "a", "uniform"), ("data.w", "b", "uniform"), ("data.w", "p", "bernoulli"),
                   ("data.w", "values", "categorical"), ("data.w", "weights", "categorical"),
                   ("data.w", "rate", "exponential"), ("data.w", "shape", "gamma"), ("data.w", "scale", "gamma"),
                   ("data.w", "a", "beta"), ("data.w", "b", "beta"), ("data.w", "nu", "student_t")]


def _toml_value(v):
    return json.dumps(v)  # TOML basic strings, arrays and numbers are written as JSON writes them


def _toml_text(doc) -> str:
    """A TOML file of a base document (tables in a fixed order, one key per line)."""
    lines = []

    def table(name, t):
        lines.append(f"[{name}]")
        subs = []
        for k, v in t.items():
            if isinstance(v, dict):
                subs.append((f"{name}.{k}", v))
            else:
                lines.append(f"{k} = {_toml_value(v)}")
        for sub in subs:
            table(*sub)

    for sec in ("problem", "check", "meanfield"):
        table(sec, doc[sec])
    for name, t in doc["data"].items():
        table(f"data.{name}", t)
    return "\n".join(lines) + "\n"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("section,key,law", EXPRESSION_KEYS, ids=[f"{s}:{k}:{l or ''}" for s, k, l in EXPRESSION_KEYS])
def test_new_payload_classes_in_expression_keys_name_key_and_line(data_dir, section, key, law):
    """Each new payload, as the value of an expression key in a TOML file, is refused naming the key and line,
    and quickly: the evaluation- and printer-heavy ones are counted on the syntax tree, before sympy works."""
    import time

    for kind, payload in ((k, p) for k, ps in NEW_PAYLOADS.items() for p in ps):
        doc = base_doc(law)
        if law in ("student_t", "gamma", "beta", "exponential"):
            doc["check"]["method"] = "montecarlo"
        value = [payload, "1"] if key in ("values", "weights") else payload
        _set(doc, section, key, value)
        text = _toml_text(doc)
        p = data_dir / "s.toml"
        p.write_text(text)
        lines = text.splitlines()
        sec_line = lines.index(f"[{section}]")
        line = next(i for i, l in enumerate(lines, 1) if i > sec_line and l.startswith(f"{key} ="))
        t0 = time.perf_counter()
        with pytest.raises(SpecError, match=rf"s.toml:{line}: `\[{section}\] {key}"):
            load_spec(p)
        assert time.perf_counter() - t0 < 5, f"{kind} {payload[:40]!r} in [{section}] {key} took too long"
        COUNTS[f"TOML file, {kind}"] += 1


# ---------------------------------------------------------------------------------------- tampered study fields

@pytest.fixture(scope="module")
def saved_studies(tmp_path_factory):
    """One saved study of each kind: weak error (exact and Monte Carlo), schedule, momentum, multi-point, rates."""
    import sympy as sp

    import smfsym
    from smfsym.optimizers import cosine
    from smfsym.studies import multipoint_rates

    d = tmp_path_factory.mktemp("studies")
    x = sp.Symbol("x")
    p = smfsym.Problem((x - smfsym.normal("xi", std=sp.Rational(1, 2))) ** 2 / 2, [x])
    pr = smfsym.Problem((1 + smfsym.rademacher("r")) * x**2 / 2, [x])
    seq = __import__("numpy").random.SeedSequence(5)
    studies = {
        "weak_exact": smfsym.weak_error(p, x**2, [1.0], 1.0, [0.1, 0.05], models=["sme2"]),
        "weak_mc": smfsym.weak_error(p, x**2, [1.0], 0.5, [0.25, 0.125], models=["smf1"], method="montecarlo",
                                     n_paths=256, seed=seq),
        "schedule": smfsym.schedule_weak_error(p, cosine(1.0), x**2, [1.0], 1.0, [0.1, 0.05], models=["smf1"]),
        "momentum": smfsym.momentum_weak_error(p, x**2, [1.0], 1.0, [1 / 100, 1 / 400], 1.0, models=["smf1"]),
        "multipoint": smfsym.multipoint(pr, [[-1.0], [1.0]], eta=0.1, t_end=0.3, n_paths=256, seed=1,
                                        models=["smf2"], progress=False),
        "rates": multipoint_rates(pr, [[-1.0], [1.0]], [0.1, 0.05], 0.3, models=["smf1"]),
    }
    return {k: json.loads(st.save(d / f"{k}.json").read_text()) for k, st in studies.items()}


_RAW = "@@RAW@@"  # marks where a raw JSON literal replaces a string after dumping
RAW_LITERALS = {"NaN literal": "NaN", "Infinity literal": "Infinity", "-Infinity literal": "-Infinity",
                "float overflow": "1e400", "400-digit integer": "9" * 400, "deep nesting": "[" * 5000 + "]" * 5000,
                "deep nesting (objects)": '{"a": ' * 3000 + "1" + "}" * 3000}


def _wrong_values(v):
    """JSON values of another type than ``v`` (what the saved field held), and huge numbers of its type."""
    if isinstance(v, bool):
        return {"wrong type": [1, "true", None, [True]]}
    if isinstance(v, int):
        return {"wrong type": [3.5, "7", True, [v], {"a": v}], "huge number": [10**60, -(10**60)]}
    if isinstance(v, float) or isinstance(v, dict) and "__float__" in v:  # a number, or a tagged NaN
        return {"wrong type": ["0.1", "import os", True, None, [v], {"a": v}], "huge number": [2**60, 10**30]}
    if isinstance(v, str):
        return {"wrong type": [3.5, True, [v], {"a": v}]}
    if isinstance(v, list):
        return {"wrong type": ["import os", 1.0, {"a": 1}, None]}
    if isinstance(v, dict):
        return {"wrong type": ["import os", [1], 1.0, None]}
    return {}  # None: optional; only the raw literals below are wrong whatever the field's type


def _sites(doc):
    """(label, path) of every field of a saved study and of the values inside it (rows, orders, arrays, meta)."""
    out = []
    for name, v in doc["fields"].items():
        out.append((name, ("fields", name)))
        if isinstance(v, list) and v:
            out.append((f"{name}[0]", ("fields", name, 0)))
            if isinstance(v[0], dict):
                out += [(f"{name}[0].{k}", ("fields", name, 0, k)) for k in v[0]]
        elif isinstance(v, dict) and "__ndarray__" in v:
            out += [(f"{name}.{k}", ("fields", name, k)) for k in v]
            out.append((f"{name} data", ("fields", name, "__ndarray__", 0)))
        elif isinstance(v, dict) and v:
            first = next(iter(v))
            out += [(f"{name}.{k}", ("fields", name, k)) for k in v]
            if isinstance(v[first], dict) and "__order__" in v[first]:
                out += [(f"{name}.{first}[{i}]", ("fields", name, first, "__order__", i)) for i in range(4)]
    return out


def _get(doc, path):
    for p in path:
        doc = doc[p]
    return doc


def _put(doc, path, value):
    _get(doc, path[:-1])[path[-1]] = value


TAGGED = {"bad tag": [{"__ndarray__": [["__import__('os')"]], "dtype": "object", "shape": [1, 1]},
                      {"__ndarray__": [None], "dtype": "float64", "shape": [1]},
                      {"__ndarray__": [1.0], "dtype": "float64", "shape": [10**9]},
                      {"__order__": "import os"}, {"__order__": [1, 2]}, {"__float__": "1.0"},
                      {"__float__": "nan", "extra": 1}, {"__seed__": 5}, {"__text__": ["x"], "type": "str"}]}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("which", ["weak_exact", "weak_mc", "schedule", "momentum", "multipoint", "rates"])
def test_every_field_of_a_tampered_study_is_refused_with_a_value_error(saved_studies, which, tmp_path):
    """Wrong types, huge numbers, NaN/Infinity literals, overflowing numbers, deep nesting and malformed tags in
    every field (and every row key, order entry, array part and meta key): ValueError naming the field, always."""
    import smfsym

    base = saved_studies[which]
    assert type(smfsym.load_study(_dump(tmp_path, base))).__name__ == base["kind"]  # the untouched file loads
    n = 0
    for label, path in _sites(base):
        original = _get(base, path)
        cases = [(k, v) for k, vs in {**_wrong_values(original), **TAGGED}.items() for v in vs
                 if not (v is None and label == "meta.seed")]  # seed=None (fresh entropy) is a valid study seed
        cases += [(k, _RAW + lit) for k, lit in RAW_LITERALS.items()]
        for kind, value in cases:
            if kind == "bad tag" and path[-1] in ("__ndarray__", "dtype", "shape") or isinstance(path[-1], int) and \
                    len(path) > 3 and path[-2] == "__order__" and isinstance(value, dict) and "__float__" in value:
                continue  # a tag inside a tag's own slot is malformed too, but counted under wrong type
            doc = copy.deepcopy(base)
            _put(doc, path, value)
            file = _dump(tmp_path, doc)
            with pytest.raises(ValueError) as exc:
                smfsym.load_study(file)
                pytest.fail(f"{label} <- {kind} {str(value)[:80]!r} loaded")
            msg = str(exc.value)
            assert type(exc.value) is ValueError, f"{label} <- {kind}: {type(exc.value).__name__}: {msg[:200]}"
            top = path[1]
            assert f"`{top}" in msg, f"{label} <- {kind} {str(value)[:60]!r}: does not name `{top}`: {msg[:200]}"
            COUNTS[f"tampered study, {kind}"] += 1
            n += 1
    assert n > 150


def _dump(tmp_path, doc):
    """Write ``doc`` as JSON, with each string _RAW + literal replaced by the literal itself (NaN, 1e400, ...)."""
    import re

    text = re.sub(r'"' + _RAW + r'((?:[^"\\]|\\.)*)"', lambda m: json.loads('"' + m.group(1) + '"'),
                  json.dumps(doc, indent=1))
    file = tmp_path / "study.json"
    file.write_text(text)
    return file


def test_study_documents_themselves_are_checked(saved_studies, tmp_path):
    import smfsym

    base = saved_studies["weak_exact"]
    for change, match in ((lambda d: d.update(fields=[1]), "`fields` must be an object"),
                          (lambda d: d.update(kind=["WeakErrorStudy"]), "`kind` must be a string"),
                          (lambda d: d.update(kind="CostEstimate"), "unknown study kind 'CostEstimate'"),
                          (lambda d: d.update(kind="__class__"), "unknown study kind '__class__'"),
                          (lambda d: d.update(versions={"numpy": 2}), "`versions` must be"),
                          (lambda d: d["fields"].update(extra=1), r"unknown field\(s\) \['extra'\]"),
                          (lambda d: d["fields"].pop("rows"), "the field `rows` .* is missing"),
                          (lambda d: d["fields"]["rows"][0].update(code="import os"), r"unknown \['code'\]"),
                          (lambda d: d["fields"]["rows"][0].pop("eta"), r"missing \['eta'\]")):
        doc = copy.deepcopy(base)
        change(doc)
        with pytest.raises(ValueError, match=match):
            smfsym.load_study(_dump(tmp_path, doc))
        COUNTS["tampered study, document"] += 1
