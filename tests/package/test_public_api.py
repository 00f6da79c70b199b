"""Snapshot of the public API: the names of ``smfsym.__all__`` and the signatures of the entry points.

A change of the public surface shows up here as a diff against ``tests/golden/api.json``; when it
is intended (a new name, a new keyword), regenerate the file in the same commit::

    python tests/package/test_public_api.py --write
"""
import inspect
import json
import sys
from pathlib import Path

import smfsym

SNAPSHOT = Path(__file__).resolve().parents[1].joinpath("golden") / "api.json"


def surface() -> dict:
    out = {}
    for name in sorted(smfsym.__all__):
        obj = getattr(smfsym, name)
        if inspect.isclass(obj):
            try:
                sig = str(inspect.signature(obj))
            except (TypeError, ValueError):
                sig = "(...)"
            out[name] = f"class{sig}"
        elif callable(obj):
            out[name] = f"def{inspect.signature(obj)}"
        else:
            out[name] = type(obj).__name__
    return out


def test_every_public_name_resolves():
    for name in smfsym.__all__:
        assert getattr(smfsym, name) is not None


def test_public_api_matches_the_snapshot():
    stored = json.loads(SNAPSHOT.read_text())
    now = surface()
    assert sorted(now) == sorted(stored), (f"added: {sorted(set(now) - set(stored))}, "
                                           f"removed: {sorted(set(stored) - set(now))}")
    changed = {k: (stored[k], now[k]) for k in now if now[k] != stored[k]}
    assert not changed, f"signatures changed (regenerate with `python tests/package/test_public_api.py --write`): {changed}"


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit(__doc__)
    SNAPSHOT.write_text(json.dumps(surface(), indent=1, sort_keys=True) + "\n")


def test_the_namespace_is_curated():
    """About fifty names, each exported once, from a module of its own layer; one user-facing name per
    law (the factories, sympy.stats style: the classes live in smfsym.data.laws)."""
    names = smfsym.__all__
    assert len(names) == len(set(names)) and 40 <= len(names) <= 65, len(names)
    assert "normal" in names and "Normal" not in names and "Law" not in names


def test_former_top_level_names_warn_and_resolve():
    import importlib
    import warnings

    for name, module in smfsym._FORMER.items():
        assert name not in smfsym.__all__
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value = getattr(smfsym, name)
        assert value is getattr(importlib.import_module("smfsym" + module), name)
        assert any(issubclass(w.category, DeprecationWarning) and f"smfsym{module}" in str(w.message)
                   for w in caught), name
