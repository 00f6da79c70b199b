"""A streamed statistic that is NaN or infinite on kept paths is reported, not returned as a quiet NaN with
``success=True`` (audit 7, finding 2); and functions evaluated on a chunk with masked paths (held at zero)
do not warn for those paths (finding 9). docs/theory.md §8."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import sympy as sp

import smfsym
from smfsym import RunOptions, SaveAt

x = sp.Symbol("x")
#: a double well whose Euler paths at dt = 0.5 partly diverge (mask mode keeps the others)
FLOW = smfsym.smf(smfsym.Problem((x**2 - 1) ** 2 / 4 + smfsym.normal("xi") * x, [x]))
OU = smfsym.smf(smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x]))


def log_x(X):
    return np.log(X[..., 0])


def inverse(X):
    return 1.0 / X[..., 0]


@pytest.mark.filterwarnings("ignore:invalid value encountered in log:RuntimeWarning")  # numpy's, from log_x
def test_a_function_nan_on_finite_states_is_named():
    # from x0 = 0.1 with eta = 1 many paths reach x < 0: log x is NaN there while every state is finite
    with pytest.warns(RuntimeWarning, match=r"`functions\['log'\]` is NaN or infinite on paths whose states are "
                                            r"finite \(t = 0.5\)"):
        res = smfsym.simulate(OU, [0.1], 0.5, eta=1.0, n_paths=500, seed=1, save_at=SaveAt(functions={"log": log_x}))
    assert np.isnan(res.mean("log")[-1])
    assert res.n_nonfinite == 0 and not res.success and "`functions['log']`" in res.message
    # the state statistics are fine and unchanged
    clean = smfsym.simulate(OU, [0.1], 0.5, eta=1.0, n_paths=500, seed=1)
    assert clean.success and np.array_equal(clean.mean(), res.mean())


def test_a_finite_function_leaves_success_alone():
    res = smfsym.simulate(OU, [2.0], 0.5, eta=0.1, n_paths=500, seed=1, save_at=SaveAt(functions={"log": log_x}))
    assert res.success and res.message == "ok" and np.all(np.isfinite(res.mean("log")))


def test_masked_paths_do_not_warn_and_kept_ones_are_counted():
    opts = RunOptions(on_nonfinite="mask")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a divide-by-zero on the zeroed masked rows would fail here
        res = smfsym.simulate(FLOW, [1.5], 3.0, eta=1.0, dt=0.5, n_paths=300, seed=5,
                              save_at=SaveAt(functions={"inverse": inverse}, store=True), options=opts)
    assert 0 < res.n_nonfinite < 300 and not res.success
    kept = res.states[-1, :, 0]
    kept = kept[np.isfinite(kept)]
    assert res.mean("inverse")[-1] == pytest.approx(np.mean(1 / kept), rel=1e-12)
    assert "`functions[" not in res.message  # lost paths are not the function's failure
