import sympy as sp
import pytest


def is_zero_matrix(M):
    """Exact symbolic check that every entry of M vanishes."""
    return all(sp.simplify(sp.expand(e)) == 0 for e in sp.Matrix(M))


@pytest.fixture
def zero():
    return is_zero_matrix
