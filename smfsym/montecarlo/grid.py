"""The time grid, never materialised: runs of equal steps yielded lazily."""
from __future__ import annotations

import math
from typing import Iterator

import numpy as np

__all__ = ["StepGrid", "MAX_STEPS", "step_runs"]

#: Default bound on the number of solver steps (``max_steps`` raises it).
MAX_STEPS = 10**9


def step_runs(saves, dt: float) -> tuple:
    """Runs ``(count, step, start)`` of equal steps <= dt between consecutive sorted save times, and the
    number of steps before each save (its index).

    Where every save lies on the grid of ``t_end / N`` steps, ``N = ceil(t_end / dt)`` (the grid a
    run saving at ``t_end`` alone takes), that one step size is used throughout: the per-segment sizes
    ``(s - prev) / n`` equal it up to the last bit, and would make a save point added on the grid change
    the numbers at the others by rounding. Otherwise each segment has its own size.

    Examples
    --------
    >>> step_runs([0.1, 0.2, 0.3], 0.05)
    ([(6, 0.049999999999999996, 0.0)], [2, 4, 6])
    >>> step_runs([0.25, 1.0], 0.2)  # 0.25 is off the grid of 1/5
    ([(2, 0.125, 0.0), (4, 0.1875, 0.25)], [2, 6])
    """
    runs, index, prev, total = [], [], 0.0, 0
    for s in saves:
        s = float(s)
        n = int(math.ceil((s - prev) / dt - 1e-9)) if s > prev else 0
        if n:
            runs.append((n, (s - prev) / n, prev))
        total += n
        index.append(total)
        prev = s
    if len(runs) > 1:
        h = prev / total
        if all(abs(k * h - float(s)) <= 1e-12 * max(abs(float(s)), h) for s, k in zip(saves, index)):
            return [(total, h, 0.0)], index  # every save on the uniform grid
    return runs, index


class StepGrid:
    """A lazy time grid: runs of equal steps, one run between consecutive save times.

    Iterating yields the step sizes; ``len`` is the number of steps; :meth:`time`
    is the time after step n. Nothing of size n_steps is ever allocated.

    Examples
    --------
    >>> g = StepGrid.from_saves([0.5, 1.0], 0.2)
    >>> len(g), g.save_index, [round(h, 6) for h in g]
    (6, [3, 6], [0.166667, 0.166667, 0.166667, 0.166667, 0.166667, 0.166667])
    >>> round(g.time(4), 12)
    0.666666666667
    """

    def __init__(self, runs, save_index, times):
        self.runs = [(int(n), float(h), float(t0)) for n, h, t0 in runs]  # (count, step, start time)
        self.save_index = list(save_index)
        self.times = np.asarray(times, dtype=float)
        self._n = sum(n for n, _, _ in self.runs)

    @classmethod
    def from_saves(cls, saves, dt: float) -> "StepGrid":
        """Equal steps <= dt between consecutive sorted save times (:func:`step_runs`, the rule of
        ``simulate.grid``)."""
        return cls(*step_runs(saves, dt), saves)

    @classmethod
    def uniform(cls, n_steps: int, h: float, save_index) -> "StepGrid":
        """``n_steps`` equal steps h (SGD); times are step * h."""
        return cls([(n_steps, h, 0.0)] if n_steps else [], save_index, np.asarray(save_index, dtype=float) * h)

    def __len__(self) -> int:
        return self._n

    def __iter__(self) -> Iterator[float]:
        for n, h, _ in self.runs:
            for _ in range(n):
                yield h

    @property
    def max_step(self) -> float:
        return max((h for _, h, _ in self.runs), default=0.0)

    def time(self, n: int) -> float:
        """Time after step n (1-based), without summing step sizes."""
        done = 0
        for cnt, h, t0 in self.runs:
            if n <= done + cnt:
                return t0 + (n - done) * h
            done += cnt
        return self.runs[-1][2] + self.runs[-1][0] * self.runs[-1][1] if self.runs else 0.0
