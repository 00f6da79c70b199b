"""The one lambdify wrapper: broadcasting, bound values, data means, name safety."""
import numpy as np
import pytest
import sympy as sp

import smfsym
from smfsym.symbolic.lambdify import CompiledExprs, compile_exprs


def test_cse_temporaries_do_not_collide_with_user_symbols():
    # sympy's default cse temporaries are named x0, x1, ...: the same names as typical parameters
    x0, x1 = sp.symbols("x0 x1")
    exprs = [(x0 + x1) ** 2 + sp.sin(x0 + x1), x1 * (x0 + x1)]
    out = compile_exprs(exprs, [x0, x1])(np.array([[1.0, 2.0], [0.5, -1.0]]))
    assert np.allclose(out[0], [9 + np.sin(3.0), 0.25 + np.sin(-0.5)])
    assert np.allclose(out[1], [6.0, 0.5])


def test_constant_entries_are_broadcast_and_values_bound():
    x, c = sp.symbols("x c")
    ce = CompiledExprs([sp.S(2), c, x * c], [x], values={c: 3.0})
    out = ce(np.arange(4.0)[:, None])
    assert out.shape == (4, 3)
    assert np.all(out[:, 0] == 2) and np.all(out[:, 1] == 3) and np.allclose(out[:, 2], 3 * np.arange(4.0))


def test_unbound_symbols_are_named():
    x, c = sp.symbols("x c")
    with pytest.raises(ValueError, match=r"`values` must give numbers for \['c'\]"):
        CompiledExprs([x * c], [x])


def test_data_mean_over_data_set_and_data_axis():
    rng = np.random.default_rng(0)
    data = rng.normal(size=(40, 1))
    (z,) = smfsym.empirical(data, ["z"])
    x = sp.Symbol("x")
    F = smfsym.expectation(sp.exp(-x * z))
    out = CompiledExprs([F], [x])(np.array([[0.3], [1.0]]))
    assert np.allclose(out[:, 0], [np.mean(np.exp(-0.3 * data)), np.mean(np.exp(-data))], rtol=1e-13)
    per_row = CompiledExprs([sp.exp(-x * z)], [x], data_symbols=[z])(np.array([[0.3]]), data)
    assert per_row.shape == (1, 40, 1) and np.allclose(per_row[0, :, 0], np.exp(-0.3 * data[:, 0]))
