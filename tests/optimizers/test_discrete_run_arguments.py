"""The discrete simulators (SGD, update maps, SVAG, Malladi's regime) take `save_at` as SGD does and report a
blow-up in the unit of their `result.t` (audit 7, findings 3, 6 and 7).

`simulate_update_map(save_at=(0.25, 0.5))` returned the start state twice (t = [0, 0]); `simulate_svag`
sorted (10, 5), merged (5, 5, 10), took True for step 1 and 5.7 for step 5. SVAG and regime blow-ups
advised a `dt` and a tamed scheme they do not take, and every discrete run named the time of a loss in
steps ("step = 24") where `result.t` is in step x eta.
"""
from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import smfsym
from smfsym.optimizers.regimes import simulate_regime

x = sp.Symbol("x")
QUAD = smfsym.Problem((x - smfsym.normal("a", std=sp.Rational(1, 2))) ** 2 / 2, [x])
RMS = smfsym.rmsprop(QUAD, c=sp.Rational(1, 4), eps=0.1)
RUNS = {
    "sgd": lambda save_at: smfsym.simulate_sgd(QUAD, [1.0], 10, 0.05, n_paths=64, seed=1, save_at=save_at),
    "update_map": lambda save_at: smfsym.simulate_update_map(RMS, [1.0, 1.0], 10, 0.05, n_paths=64, seed=1,
                                                             save_at=save_at),
    "svag": lambda save_at: smfsym.simulate_svag(RMS, 2, [1.0, 1.0], 0.25, 0.05, n_paths=64, seed=1,
                                                 save_at=save_at),
    "regime": lambda save_at: simulate_regime(smfsym.malladi_rmsprop(QUAD), [1.0, 1.0], 10, 0.05, n_paths=64,
                                              seed=1, save_at=save_at),
}


@pytest.mark.parametrize("save_at, error", [
    ((0.25, 0.5), r"`save_at` must hold integer step indices; got \[0.25, 0.5\]"),
    ((5.7,), r"`save_at` must hold integer step indices; got \[5.7\]"),
    ((10, 5), r"`save_at` must be strictly increasing"),
    ((5, 5, 10), r"`save_at` must be strictly increasing"),
    ((True, 10), r"`save_at` must be a sequence of numbers"),
    ((11,), r"`save_at` steps must lie in \[0, n_steps = 10\]"),
])
@pytest.mark.parametrize("name", list(RUNS))
def test_save_at_is_checked_alike_everywhere(name, save_at, error):
    with pytest.raises((TypeError, ValueError), match=error):
        RUNS[name](save_at)


@pytest.mark.parametrize("name", list(RUNS))
def test_save_at_steps_are_saved(name):
    res = RUNS[name]((0, 5, 10))
    assert list(res.extra["steps"]) == [0, 5, 10] and res.t[0] == 0 and res.t[1] > 0


def test_a_discrete_blow_up_is_named_in_the_unit_of_result_t():
    """SGD on x^2/2 * (1 + a^2) with eta = 2.5 diverges; mask mode's first loss time equals step x eta."""
    a = smfsym.normal("a")
    problem = smfsym.Problem((1 + a**2) * x**2 / 2, [x])
    masked = smfsym.simulate_sgd(problem, [1.0], 40, 2.5, n_paths=256, seed=2, save_at=list(range(41)),
                                 options=smfsym.RunOptions(on_nonfinite="mask", blowup_threshold=1e6))
    step = masked.extra["first_nonfinite_step"]
    assert masked.extra["first_nonfinite_time"] == pytest.approx(step * 2.5, rel=1e-12)
    assert np.isnan(masked.states[step, :, 0]).any() and not np.isnan(masked.states[step - 1, :, 0]).any()
    assert f"(first at step {step}, t = {step * 2.5:.6g})" in masked.message
    with pytest.raises(smfsym.BlowUpError, match=rf"at step {step} \(t = {step * 2.5:.6g}\) .*; reduce `eta` or"):
        smfsym.simulate_sgd(problem, [1.0], 40, 2.5, n_paths=256, seed=2,
                            options=smfsym.RunOptions(blowup_threshold=1e6))


def test_svag_s_blow_up_advises_what_svag_takes():
    with pytest.raises(smfsym.BlowUpError) as err:
        smfsym.simulate_svag(RMS, 2, [1.0, 0.05], 30.0, 3.0, n_paths=512, seed=5,
                             options=smfsym.RunOptions(blowup_threshold=1e10))
    text = str(err.value)
    assert "reduce `eta` or pass on_nonfinite='mask'" in text and "tamed" not in text and "`dt`" not in text
    assert err.value.loss is not None and f"(t = {err.value.loss.time:.6g})" in text
