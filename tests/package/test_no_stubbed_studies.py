"""Tests run the real thing: no test replaces a study or a simulator (issue 15).

A source scan over tests/: every ``setattr``-like call (``monkeypatch.setattr``, ``setattr``,
``mock.patch``, ``mock.patch.object``) whose target names one of the studies or simulators fails,
whether the target is given as (object, "name") or as a dotted string. Exceptions are listed
with their reason.
"""
import ast
import re
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
PROTECTED = {"weak_error", "multipoint", "multipoint_rates", "meanfield_study", "simulate", "simulate_sgd",
             "schedule_weak_error", "momentum_weak_error"}
#: (file, patched name): why it is not a stub of what the test is about.
ALLOWED = {
    ("test_argument_validation.py", "simulate"):
        "a tripwire: argument-validation tests assert that no simulation starts before the arguments are "
        "checked (the replacement raises AssertionError); the studies' validation is what is tested",
    ("test_argument_validation.py", "simulate_sgd"): "the same tripwire, for the SGD simulator",
}
PATCHERS = {"setattr", "patch", "object", "setitem"}


def _patched_names(tree: ast.AST):
    """(line, name) of every attribute name a setattr/patch-like call replaces."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None
        if name not in PATCHERS:
            continue
        for arg in node.args[:2]:
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                yield node.lineno, arg.value.rsplit(".", 1)[-1]


def _scan(source: str, filename: str) -> list[str]:
    return [f"{filename}:{line}: replaces {name!r}" for line, name in _patched_names(ast.parse(source))
            if name in PROTECTED and (filename, name) not in ALLOWED]


def test_no_test_replaces_a_study_or_simulator():
    found = [hit for path in sorted(TESTS.rglob("*.py")) for hit in _scan(path.read_text(), path.name)]
    assert found == [], "\n".join(found)


@pytest.mark.parametrize("src", [
    "def test(monkeypatch):\n    monkeypatch.setattr(smfsym.studies, 'weak_error', lambda *a: 0)\n",
    "def test(monkeypatch):\n    monkeypatch.setattr('smfsym.meanfield.meanfield_study', None)\n",
    "with mock.patch('smfsym.optimizers.schedule_weak_error'):\n    pass\n",
    "with mock.patch.object(mod, 'momentum_weak_error', f):\n    pass\n",
    "setattr(mod, 'multipoint_rates', f)\n",
])
def test_the_scan_sees_each_way_of_patching(src):
    assert len(_scan(src, "test_x.py")) == 1
    assert _scan(re.sub(r"'([\w.]+)'", r"'\1_helper'", src), "test_x.py") == []  # another name is fine
