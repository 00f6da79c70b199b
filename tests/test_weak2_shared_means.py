"""The weak order-2 step computes each data mean once per step (issue 11): same numbers, fewer evaluations."""
import numpy as np
import sympy as sp

import smfsym
from smfsym.compile import CompiledExprs
from smfsym.expectation import expectation
from smfsym.numeric import NumericSDE
from smfsym.studies import build_model

x = sp.Symbol("x")


def _logistic():
    a = smfsym.normal("a")
    return smfsym.Problem(sp.log(1 + sp.exp(-a * x)), [x])


def test_shared_means_change_no_number_and_cut_mean_evaluations(monkeypatch):
    sde = build_model(_logistic(), "smf2")
    kw = dict(eta=0.1, dt=0.025, n_paths=300, scheme="weak2", seed=5, progress=False)
    calls = {"n": 0}
    orig = CompiledExprs.mean_values

    def counting(self, cols, cache=None):
        out = orig(self, cols, cache)
        calls["n"] += len(out) if cache is None else 0
        return out

    monkeypatch.setattr(CompiledExprs, "mean_values", counting)
    fast = smfsym.simulate(sde, [1.0], 0.2, **kw).states
    shared_calls = calls["n"]
    calls["n"] = 0
    monkeypatch.setattr(NumericSDE, "shared_means", lambda self, ce, X, cache=None: None)
    slow = smfsym.simulate(sde, [1.0], 0.2, **kw).states
    assert np.array_equal(fast, slow)  # bitwise: a mean at a state depends on that state only
    # per-direction recomputations are gone (the few left are outside the steps: checks at x0)
    assert 10 * shared_calls < calls["n"], (shared_calls, calls["n"])


def test_means_use_only_sees_every_state_symbol_a_mean_reads():
    a = smfsym.normal("a")
    v = sp.Symbol("v")
    only_x = CompiledExprs([v * expectation(sp.exp(-a * x) / (1 + a**2))], [x, v])
    reads_v = CompiledExprs([expectation(sp.exp(-a * x * v) / (1 + a**2))], [x, v])
    assert only_x.means_use_only(1) and not reads_v.means_use_only(1) and reads_v.means_use_only(2)
