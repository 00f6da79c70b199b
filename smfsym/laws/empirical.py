"""Empirical data sets: M numeric rows with weights, never M symbolic terms."""
from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np
import sympy as sp

from .._checks import finite_array
from .base import Law

__all__ = ["Empirical"]

class Empirical(Law):
    """An empirical data set: M numeric samples (rows), columns named by symbols.

    It stays numeric: its means are weighted sums over the rows, never M
    symbolic terms.
    """

    family = "Empirical"
    is_finite = True

    def __init__(self, data, names: Sequence[str], weights=None):
        arr = np.array(data, dtype=float, copy=True)
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2:
            raise ValueError(f"`data` must be an (M, k) array; got shape {arr.shape}.")
        if arr.shape[1] != len(names):
            raise ValueError(
                f"`names` must name every column of `data`: data has {arr.shape[1]} column(s), "
                f"names has {len(names)}."
            )
        if arr.shape[0] == 0:
            raise ValueError("`data` must hold at least one sample; got 0 rows.")
        finite_array(arr, "data")
        if weights is None:
            w = np.full(arr.shape[0], 1.0 / arr.shape[0])
        else:
            w = finite_array(weights, "weights", ndim=1).copy()
            if w.shape[0] != arr.shape[0]:
                raise ValueError(f"`weights` must have one entry per row ({arr.shape[0]}); got {w.shape[0]}.")
            if np.any(w < 0):
                raise ValueError("`weights` must be non-negative.")
            if abs(w.sum() - 1.0) > 1e-10:
                raise ValueError(f"`weights` must sum to 1; got sum {w.sum()!r}.")
        arr.setflags(write=False)
        w.setflags(write=False)
        self.data, self.weights = arr, w
        self.key = hashlib.sha1(arr.tobytes() + w.tobytes()).hexdigest()[:12]
        self._make_symbols(names)
        self._moments: dict = {}

    @property
    def size(self) -> int:
        return self.data.shape[0]

    @property
    def parameters(self):
        return ()

    def moment(self, powers: tuple) -> sp.Expr:
        powers = tuple(int(p) for p in powers)
        if powers not in self._moments:
            v = float(self.weights @ np.prod(self.data ** np.array(powers), axis=1))
            self._moments[powers] = sp.Float(v)
        return self._moments[powers]

    def quadrature(self, n_points=None, values=None):
        return self.data, self.weights

    def _latex_law(self):
        return r"\hat\nu_{" + str(self.size) + "}"

    def __repr__(self):
        return f"Empirical({', '.join(s.name for s in self.symbols)}; M={self.size})"
