"""The time grid, never materialised: runs of equal steps yielded lazily."""
from __future__ import annotations

import math
from typing import Iterator

import numpy as np

__all__ = ["StepGrid", "MAX_STEPS"]

#: Default bound on the number of solver steps (``max_steps`` raises it).
MAX_STEPS = 10**9


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
        """Equal steps <= dt between consecutive sorted save times (the rule of ``simulate.grid``)."""
        runs, index, prev, total = [], [], 0.0, 0
        for s in saves:
            s = float(s)
            n = int(math.ceil((s - prev) / dt - 1e-9)) if s > prev else 0
            if n:
                runs.append((n, (s - prev) / n, prev))
            total += n
            index.append(total)
            prev = s
        return cls(runs, index, saves)

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
