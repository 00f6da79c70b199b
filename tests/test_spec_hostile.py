"""Hostile-input suite for the spec layer: every key of the schema gets hostile values.

The keys are taken from the schema itself (smfsym.spec.SCHEMA and LAWS), so a
new section or key is fuzzed without touching this file. Each generated spec
must be refused with a SpecError that names the key, and the canary file that
the payloads try to create must never exist. Hypothesis runs derandomized
(fixed examples in CI). Every key gets every payload deterministically plus 60
generated wrappings: about 6,000 specs in all. Set SMFSYM_FUZZ_REPORT=path to write the counts by kind.
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
    if section == "check.multipoint":
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


LEAVES = [(kind, v) for kind, vs in PAYLOADS.items() for v in vs] + \
         [("TOML " + kind, v) for kind, vs in NON_SCALARS.items() for v in vs]
KEY_IDS = [f"{s}:{k}:{l or ''}" for s, k, l in ALL_KEYS]


def _refused(data_dir, section, key, law, kind, value):
    doc = base_doc(law)
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
        if section.startswith("data.") or section == "check.multipoint":
            continue
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
        if (section, key) in (("problem", "constants"), ("check", "multipoint"), ("meanfield", "particles"),
                              ("meanfield", "check")):
            continue
        text = "\n".join(lines) + "\n"
        p = tmp_path / "s.toml"
        p.write_text(text)
        line = next(i for i, l in enumerate(lines, 1) if l.startswith(f"{key} =") and
                    lines[max(j for j in range(i) if lines[j].startswith("["))] == f"[{section}]")
        with pytest.raises(SpecError, match=rf"s.toml:{line}: `\[{section}\] {key}"):
            load_spec(p)
        assert not CANARY.exists()
