"""Bitwise golden numbers of every simulator and study kind (issue 16's safety net).

The numbers come from ``tests/golden_numbers.py`` (tiny fixed-seed runs) and are stored as
``float.hex`` in ``tests/golden/numbers.json``: equality is exact, so a refactoring that moves
any number by one bit fails here. A change that is meant to move numbers regenerates the file
(``python tests/golden_numbers.py --write``) in the same commit and says why.
"""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import golden_numbers  # noqa: E402

STORED = json.loads(golden_numbers.GOLDEN.read_text())


def test_every_case_is_stored():
    assert sorted(STORED) == sorted(golden_numbers.CASES)


@pytest.mark.parametrize("name", sorted(golden_numbers.CASES))
def test_numbers_unchanged(name):
    got = [v.hex() for v in golden_numbers.compute(name)]
    want = STORED[name]
    assert len(got) == len(want), f"{name}: {len(got)} numbers, stored {len(want)}"
    moved = [i for i, (g, w) in enumerate(zip(got, want)) if g != w]
    assert not moved, (f"{name}: {len(moved)} of {len(want)} numbers moved, first at {moved[0]}: "
                       f"{float.fromhex(got[moved[0]])!r} vs stored {float.fromhex(want[moved[0]])!r}")
