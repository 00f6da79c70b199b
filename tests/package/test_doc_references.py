"""Every dotted smfsym name the README and docs/ write in backticks exists (audit 11, finding 4: theory.md named
`smfsym.optimizers.momentum_multipoint`, which is `smfsym.studies.momentum_multipoint`)."""
import importlib
import re
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: `smfsym.a.b` or `smfsym.a.b(...)` in backticks (a call or a name; options after the name are ignored)
NAME = re.compile(r"`(smfsym(?:\.[A-Za-z_][A-Za-z0-9_]*)+)")


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):  # the longest importable module, then attributes
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return False
        return True
    return False


def _names():
    out = {}
    for doc in DOCS:
        for i, line in enumerate(doc.read_text().splitlines(), 1):
            for m in NAME.finditer(line):
                out.setdefault(m.group(1), f"{doc.relative_to(ROOT)}:{i}")
    return sorted(out.items())


def test_the_docs_name_some_smfsym_objects():
    assert len(_names()) > 20  # the scan reads what it should (a broken pattern would pass vacuously)


@pytest.mark.parametrize("dotted, where", _names())
def test_every_smfsym_name_in_the_docs_exists(dotted, where):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # a name leaving the namespace still exists
        assert _resolves(dotted), f"{where}: `{dotted}` does not exist"
