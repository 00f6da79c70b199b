"""The block loop: simulate a range of seed blocks chunk by chunk, streaming statistics in block order."""
from __future__ import annotations

import contextlib

import numpy as np

from .checks import FirstLoss, blowup_error, check_per_path
from .seeds import BLOCK, block_generators
from .statistics import _Values

__all__ = ["run_blocks"]


def run_blocks(step, job: dict, first: int, count: int, chunk_blocks: int, accs: dict, states, bar=None,
               path_offset: int = 0, values: _Values | None = None):
    """Simulate seed blocks ``first .. first + count - 1`` chunk by chunk; the loop of :func:`run`.

    Statistics go to ``accs`` (merging :class:`_Acc` or recording :class:`_Recorder`) in block
    order; stored states to ``states[:, lo - path_offset : hi - path_offset]`` (per-path statistics to
    ``values`` at the same rows); ``bar`` advances by the chunk's paths at every step. Returns the number
    of paths lost and the first (step, time) of a loss.

    With ``on_nonfinite="raise"`` a loss at step n in one chunk ends that chunk; the chunks after it run to
    step n only, and :class:`~smfsym.montecarlo.checks.FirstLoss` keeps the earliest step over all of them:
    the error raised at the end names the same step and count whatever the chunk size.
    """
    x0, n_paths, ss = job["x0"], job["n_paths"], job["ss"]
    step_sizes, save_index, functions = job["step_sizes"], job["save_index"], job["functions"]
    store, on_nonfinite, diverged = job["store"], job["on_nonfinite"], job["diverged"]
    step_times = job["step_times"]
    state_shape = x0.shape
    nt = len(save_index)
    bad_total, first_bad = 0, None
    loss, limit = None, len(step_sizes)  # raise mode: the earliest loss found, and the steps still to follow
    for b0 in range(first, first + count, chunk_blocks):
        nb = min(chunk_blocks, first + count - b0)
        lo = b0 * BLOCK
        hi = min(n_paths, (b0 + nb) * BLOCK)
        sizes = [min(BLOCK, n_paths - (b0 + i) * BLOCK) for i in range(nb)]
        gens = block_generators(ss, b0, nb)
        X = np.broadcast_to(x0, (hi - lo,) + state_shape).copy()
        ok = np.ones(hi - lo, dtype=bool)

        def save(k):
            if store:
                states[k, lo - path_offset:hi - path_offset] = np.where(
                    ok.reshape((-1,) + (1,) * len(state_shape)), X, np.nan)
            accs["state"].add(k, X, ok, sizes)
            masked = functions and not ok.all()
            for name, fn in functions.items():
                # masked rows hold zeros, where 1/x warns for no kept path; a function failing on kept paths is
                # still named by the driver (its mean is not finite)
                with np.errstate(all="ignore") if masked else contextlib.nullcontext():
                    v = np.asarray(fn(X), dtype=float)
                check_per_path(name, v.shape, X.shape[0])
                accs[name].add(k, v, ok, sizes)
                if values is not None:
                    values.put(name, k, lo - path_offset, v, ok)

        si = 0
        while si < nt and save_index[si] == 0:
            save(si)
            si += 1
        for n, h in enumerate(step_sizes, start=1):
            if n > limit:
                break
            # blow-up is detected and reported below (step, time, fraction): numpy's own
            # overflow warnings would only repeat it less precisely
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                X = step(X, h, gens, sizes)
            # max |X| <= diverged, without an |X| temporary; NaN propagates into max/min, failing the test
            if X.size and not (X.max() <= diverged and X.min() >= -diverged):
                with np.errstate(invalid="ignore"):
                    bad = ~(np.abs(X) <= diverged).reshape(X.shape[0], -1).all(axis=1) & ok
                if bad.any():
                    t_bad = step_times(n) if step_times is not None else n
                    if on_nonfinite == "raise":
                        where = b0 + int(np.argmax(bad)) // BLOCK
                        loss = FirstLoss(n, t_bad, int(bad.sum()), where).earliest(loss)
                        limit = n
                        break
                    if first_bad is None or n < first_bad[0]:
                        first_bad = (n, t_bad)
                    bad_total += int(bad.sum())
                    ok &= ~bad
                X = np.where(ok.reshape((-1,) + (1,) * len(state_shape)), X, 0.0)  # masked paths: zeros, unused
            while si < nt and save_index[si] == n:
                save(si)
                si += 1
            if bar is not None:
                bar.update(hi - lo)
    if loss is not None:
        raise blowup_error(loss, job)
    return bad_total, first_bad
