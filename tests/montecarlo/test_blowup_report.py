"""A raise-mode blow-up report names the run's first loss, whatever the chunking (docs/theory.md §8).

The paths of dX = X^3 dt + sqrt(eta) dW from x0 = 1/2 (the order-1 SME of f = -x^4/4 + a x, a ~ N(0, 1))
leave |x| <= 10^6 at random steps. With seed 0 the three seed blocks first lose a path at different
steps, the earliest in the last block: a report taken from the first failing chunk (what the driver did
before) named a later step when each block was its own chunk. The truth is read off a masked run's stored
states (the same seed gives the same paths): the first step at which any path is NaN, how many paths
are NaN from that step on, and the first block holding one. Nothing here is statistical.
"""
from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import smfsym
from smfsym import RunOptions, SaveAt
from smfsym.engine import BLOCK

x = sp.Symbol("x")
A = smfsym.normal("a")
N_PATHS = 3 * BLOCK
SETTINGS = dict(x0=[0.5], t_end=1.0, dt=0.01, eta=0.1, n_paths=N_PATHS, seed=0)


@pytest.fixture(scope="module")
def sde():
    return smfsym.sme(smfsym.Problem(-x**4 / 4 + A * x, [x]), order=1)


def _truth(sde, backend="numpy"):
    """(first step of a loss, paths lost at it, its first block, each block's first loss step) from stored states."""
    masked = smfsym.simulate(sde, **SETTINGS, save_at=SaveAt(at=np.arange(1, 101) * 0.01, store=True),
                             options=RunOptions(on_nonfinite="mask", blowup_threshold=1e6, backend=backend))
    lost = np.isnan(masked.states[:, :, 0])
    step_lost = np.where(lost.any(axis=0), lost.argmax(axis=0) + 1, np.iinfo(np.int64).max)
    first = int(step_lost.min())
    at_first = step_lost == first
    per_block = [int(step_lost[b * BLOCK:(b + 1) * BLOCK].min()) for b in range(N_PATHS // BLOCK)]
    assert masked.extra["first_nonfinite_step"] == first
    return first, int(at_first.sum()), int(np.argmax(at_first)) // BLOCK, per_block


def _report(sde, chunk_size, backend="numpy", executor=None):
    with pytest.raises(smfsym.BlowUpError) as err:
        smfsym.simulate(sde, **SETTINGS, options=RunOptions(chunk_size=chunk_size, blowup_threshold=1e6,
                                                             backend=backend, executor=executor))
    return err.value


@pytest.mark.parametrize("backend", ["numpy", "array_api_strict"])
def test_the_report_names_the_first_loss_of_the_run_whatever_the_chunks(sde, backend):
    if backend != "numpy":
        pytest.importorskip("array_api_strict")
    step, count, block, per_block = _truth(sde, backend)
    if backend == "numpy":  # the premise: the first block's first loss comes later than the run's
        assert per_block[0] > step, per_block
    reports = [_report(sde, chunk_size, backend) for chunk_size in (BLOCK, 2 * BLOCK, None)]
    assert len({str(r) for r in reports}) == 1, [str(r) for r in reports]
    loss = reports[0].loss
    assert (loss.step, loss.count, loss.block) == (step, count, block)
    assert loss.time == pytest.approx(step * 0.01, rel=1e-12)
    assert (f"non-finite state at step {step} (t = {step * 0.01:.6g}) in {count / N_PATHS:.2%} of the paths "
            f"({count} of {N_PATHS}, the first in seed block {block}; none was lost earlier") in str(reports[0])


def test_a_process_pool_reports_the_serial_run_s_first_loss(sde):
    with smfsym.process_pool(2) as pool:
        remote = _report(sde, BLOCK, executor=pool)
    assert str(remote) == str(_report(sde, None))


def test_masked_runs_do_not_depend_on_the_chunks_either(sde):
    runs = [smfsym.simulate(sde, **SETTINGS, options=RunOptions(on_nonfinite="mask", blowup_threshold=1e6,
                                                                chunk_size=cs)) for cs in (BLOCK, None)]
    assert runs[0].message == runs[1].message and runs[0].n_nonfinite == runs[1].n_nonfinite > 0
    assert runs[0].extra["first_nonfinite_step"] == runs[1].extra["first_nonfinite_step"]
