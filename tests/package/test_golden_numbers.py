"""Bitwise golden numbers of every simulator and study kind (issue 16's safety net).

The numbers come from ``tests/golden_numbers.py`` (tiny fixed-seed runs) and are stored as
``float.hex`` in ``tests/golden/numbers.json``: equality is exact, so a refactoring that moves
any number by one bit fails here. A change that is meant to move numbers regenerates the file
(``OPENBLAS_CORETYPE=Haswell python tests/golden_numbers.py --write``) in the same commit and says why.

The stored numbers are those of OpenBLAS's Haswell (AVX2) kernels, which ``tests/conftest.py``
pins before numpy loads wherever the CPU runs them. Where it cannot (no AVX2, not Linux, another
BLAS), the same products round differently by an ulp or two (measured on an AVX-512 machine:
at most 1.3e-15 absolute, 1.1e-13 relative, on numbers of order 1e-2 to 1), so there the test
compares to ``NEAR`` instead and says so in a warning: a restructuring that changes what is
computed moves numbers far more than that.
"""
import json
import math
import os
import sys
import warnings
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import golden_numbers  # noqa: E402

STORED = json.loads(golden_numbers.GOLDEN.read_text())
PINNED = os.environ.get("OPENBLAS_CORETYPE", "").lower() == golden_numbers.KERNEL.lower()
#: (relative, absolute) tolerance where the kernel is not pinned: 100x the measured kernel differences
NEAR = (1e-11, 1e-13)


def test_every_case_is_stored():
    assert sorted(STORED) == sorted(golden_numbers.CASES)


@pytest.mark.parametrize("name", sorted(golden_numbers.CASES))
def test_numbers_unchanged(name):
    got = [v.hex() for v in golden_numbers.compute(name)]
    want = STORED[name]
    assert len(got) == len(want), f"{name}: {len(got)} numbers, stored {len(want)}"
    if PINNED:
        moved = [i for i, (g, w) in enumerate(zip(got, want)) if g != w]
        how = "bitwise"
    else:
        warnings.warn(f"OpenBLAS's {golden_numbers.KERNEL} kernels are not pinned here: the golden numbers are "
                      f"compared to rel {NEAR[0]:g} / abs {NEAR[1]:g}, not bitwise", UserWarning)
        moved = [i for i, (g, w) in enumerate(zip(got, want))
                 if not math.isclose(float.fromhex(g), float.fromhex(w), rel_tol=NEAR[0], abs_tol=NEAR[1])]
        how = f"rel {NEAR[0]:g} / abs {NEAR[1]:g}"
    assert not moved, (f"{name}: {len(moved)} of {len(want)} numbers moved ({how}), first at {moved[0]}: "
                       f"{float.fromhex(got[moved[0]])!r} vs stored {float.fromhex(want[moved[0]])!r}; "
                       f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')!r}")
