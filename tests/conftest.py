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
