"""Streamed statistics of the engine, per 4096-path seed block (docs/theory.md §8).

Each block's mean and sum of squared deviations are computed on its own and merged in
block order (Chan et al.'s pairwise update), so the statistics are bitwise the same however
the blocks are grouped into chunks or spread over workers.
"""
from __future__ import annotations

import numpy as np

__all__ = ["block_stats"]


class _Acc:
    """Streamed mean and sum of squared deviations of a statistic at ``nt`` saved times.

    Each seed block contributes its own count, mean and M2 (computed on a contiguous
    copy of that block's values alone); blocks are merged in block order with Chan's
    pairwise update. Both steps see the same numbers whatever the chunking, so the
    result is bitwise reproducible, and the variance is free of the cancellation of
    sum-of-squares formulas.
    """

    def __init__(self, nt: int):
        self.n = np.zeros(nt)
        self.mean = [None] * nt
        self.m2 = [None] * nt

    def add(self, k, vals, ok, sizes):
        for rec in block_stats(vals, ok, sizes):
            self.merge(k, rec)

    def merge(self, k, rec):
        """Merge one block's ``(count, mean, M2)`` (None: no finite path) into time ``k``."""
        if rec is None:
            return
        nb, mb, m2b = rec
        if self.mean[k] is None:
            self.mean[k], self.m2[k] = mb, m2b
        else:
            na = self.n[k]
            n = na + nb
            with np.errstate(over="ignore", invalid="ignore"):
                delta = mb - self.mean[k]
                self.mean[k] = self.mean[k] + delta * (nb / n)
                self.m2[k] = self.m2[k] + m2b + delta * delta * (na * nb / n)
        self.n[k] += nb

    def result(self):
        shape = next((np.shape(m) for m in self.mean if m is not None), ())
        nanv = np.full(shape, np.nan)
        mean = np.stack([nanv if m is None else np.asarray(m, float) for m in self.mean])
        m2 = np.stack([nanv if m is None else np.asarray(m, float) for m in self.m2])
        n = self.n.reshape((-1,) + (1,) * (mean.ndim - 1))
        with np.errstate(invalid="ignore", divide="ignore"):
            sem = np.sqrt(np.clip(m2, 0, None) / np.maximum(n - 1, 1) / n)
        # one path has no spread to estimate: its error is unknown, not 0
        sem = np.where(n < 2, np.nan, sem)
        return {"mean": mean, "sem": sem, "n": self.n.copy()}


class _Recorder:
    """Per-block ``(count, mean, M2)`` of a statistic, kept unmerged (what a worker sends back)."""

    def __init__(self, nt: int):
        self.records = [[] for _ in range(nt)]

    def add(self, k, vals, ok, sizes):
        self.records[k].extend(block_stats(vals, ok, sizes))


def block_stats(vals, ok, sizes) -> list:
    """``(count, mean, M2)`` of each seed block's finite paths (None for a block with none), in block order.

    Computed on a contiguous copy of the block's values alone, so the numbers do not depend on
    which chunk, process or machine the block was simulated in.
    """
    out, lo = [], 0
    for s in sizes:
        v = np.ascontiguousarray(vals[lo:lo + s])
        o = ok[lo:lo + s]
        lo += s
        nb = int(o.sum())
        if nb == 0:
            out.append(None)
            continue
        mask = o.reshape(o.shape + (1,) * (v.ndim - 1))
        with np.errstate(over="ignore", invalid="ignore"):  # exploding (finite) paths: infinite variance
            v = np.where(mask, v, 0.0)
            mb = v.sum(axis=0) / nb
            dev = np.where(mask, v - mb, 0.0)
            m2b = (dev * dev).sum(axis=0)
        out.append((nb, mb, m2b))
    return out


class _Values:
    """Per-path values of the streamed statistics at the saved times (``keep_values``); NaN on masked paths."""

    def __init__(self, nt: int, n_rows: int):
        self.nt, self.n_rows, self.arrays = nt, n_rows, {}

    def put(self, name: str, k: int, lo: int, vals: np.ndarray, ok: np.ndarray) -> None:
        arr = self.arrays.get(name)
        if arr is None:
            arr = self.arrays[name] = np.full((self.nt, self.n_rows) + vals.shape[1:], np.nan)
        arr[k, lo:lo + vals.shape[0]] = np.where(ok.reshape((-1,) + (1,) * (vals.ndim - 1)), vals, np.nan)

    def put_rows(self, name: str, lo: int, arr: np.ndarray) -> None:
        """A worker's values of paths ``lo ..`` at every saved time."""
        if name not in self.arrays:
            self.arrays[name] = np.full((self.nt, self.n_rows) + arr.shape[2:], np.nan)
        self.arrays[name][:, lo:lo + arr.shape[1]] = arr
