"""The weak order-2 step computes each data mean once per step (issue 11): same numbers, fewer evaluations."""
import numpy as np
import pytest
import sympy as sp

import smfsym
from smfsym.symbolic.lambdify import CompiledExprs
from smfsym.data.means import expectation
from smfsym.numerics.compiled_sde import NumericSDE
from smfsym.studies import build_model

x = sp.Symbol("x")


def _logistic():
    a = smfsym.normal("a")
    return smfsym.Problem(sp.log(1 + sp.exp(-a * x)), [x])


def test_shared_means_change_no_number():
    """Means computed once at X and handed to the step give bitwise the numbers the step gets by
    computing them itself (a mean at a state depends on that state only). How many times a step
    evaluates each mean (once) is counted in tests/numerics/test_compiled_sde_steps.py, since the hoisted front of the
    step (smfsym.symbolic.lambdify.HoistedExprs) now evaluates every mean once whether or not it is handed in."""
    sde = build_model(_logistic(), "smf2")
    kw = dict(eta=0.1, dt=0.025, n_paths=300, scheme="weak2", seed=5, progress=False)
    fast = smfsym.simulate(sde, [1.0], 0.2, **kw).states
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(NumericSDE, "shared_means", lambda self, ce, X, cache=None: None)
        slow = smfsym.simulate(sde, [1.0], 0.2, **kw).states
    assert np.array_equal(fast, slow)


def test_means_use_only_sees_every_state_symbol_a_mean_reads():
    a = smfsym.normal("a")
    v = sp.Symbol("v")
    only_x = CompiledExprs([v * expectation(sp.exp(-a * x) / (1 + a**2))], [x, v])
    reads_v = CompiledExprs([expectation(sp.exp(-a * x * v) / (1 + a**2))], [x, v])
    assert only_x.means_use_only(1) and not reads_v.means_use_only(1) and reads_v.means_use_only(2)
