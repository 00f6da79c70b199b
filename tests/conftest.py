"""Shared fixtures; first of all, the OpenBLAS kernel the bitwise golden numbers were stored with.

OpenBLAS picks its matrix-product kernels by CPU: on an AVX-512 machine it takes the SkylakeX
kernels, which round the sums of a product differently (by an ulp or two) from the AVX2 (Haswell)
kernels that ``tests/golden/numbers.json`` was written with. The variable must be set before numpy
loads OpenBLAS, so it is set here, at the top of the first conftest pytest reads, and only where the
CPU runs the Haswell kernels (AVX2 and FMA). ``tests/package/test_golden_numbers.py`` compares
bitwise when the pin is in force and says what it compares otherwise.
"""
import os
import sys
from pathlib import Path


def _pin_openblas_kernel() -> None:
    if "numpy" in sys.modules or "OPENBLAS_CORETYPE" in os.environ:
        return
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:  # not Linux: no pin, the golden test says so
        return
    if {"avx2", "fma"} <= flags:
        os.environ["OPENBLAS_CORETYPE"] = "Haswell"


_pin_openblas_kernel()

import sympy as sp
import pytest

import smfsym


def is_zero_matrix(M):
    """Exact symbolic check that every entry of M vanishes."""
    return all(sp.simplify(sp.expand(e)) == 0 for e in sp.Matrix(M))


@pytest.fixture
def zero():
    return is_zero_matrix


@pytest.fixture(scope="module")
def regression():
    """f = (a x + y - z)^2 / 2 + y^2 / 4 with a ~ N(1, 1/4), z ~ N(0, 1): a quadratic loss in two
    parameters whose noise depends on the state (files may define their own ``regression``)."""
    x, y = sp.symbols("x y")
    a = smfsym.normal("a", mean=1, std=sp.Rational(1, 2))
    z = smfsym.normal("z")
    return smfsym.Problem((a * x + y - z) ** 2 / 2 + y**2 / 4, [x, y])
