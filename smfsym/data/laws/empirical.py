"""Empirical data sets: M numeric rows with weights, never M symbolic terms."""
from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np
import sympy as sp

from ..._checks import finite_array
from .base import Law

__all__ = ["Empirical", "WEIGHT_RTOL"]

#: Weights within this relative spread are equal (normalising counts rounds them: 0.1 + 0.2 against 0.3).
WEIGHT_RTOL = 1e-12

def _refuse_non_numbers(data) -> None:
    """Strings and booleans are not data: numpy would turn ``"1"`` and ``True`` into 1.0 silently."""
    try:  # nested lists are read as objects, so that one True among floats is seen too
        raw = data if isinstance(data, np.ndarray) else np.asarray(data, dtype=object)
    except (TypeError, ValueError):
        return  # ragged or odd: the float conversion below says what is wrong
    kind = raw.dtype.kind
    if kind == "O":
        flat = raw.ravel()
        kinds = {("S" if isinstance(v, (str, bytes)) else "b") for v in flat
                 if isinstance(v, (str, bytes, bool, np.bool_))}
        kind = "S" if "S" in kinds else "b" if kinds else kind
    if kind in "USb":
        what = ("booleans (give the numbers 0.0 and 1.0)" if kind == "b"
                else "strings (give numbers, e.g. parsed with float)")
        raise TypeError(f"`data` must be an (M, k) array of numbers; got {what}.")


class Empirical(Law):
    """An empirical data set: M numeric samples (rows), columns named by symbols.

    It stays numeric: its means are weighted sums over the rows, never M
    symbolic terms. ``weights`` (finite, >= 0, positive sum) are normalised to
    sum to 1; at least 2 rows and 1 column; column names distinct.
    """

    family = "Empirical"
    is_finite = True

    def __init__(self, data, names: Sequence[str], weights=None):
        if isinstance(data, (str, bytes)):
            raise TypeError("`data` must be an (M, k) array of numbers; got a string.")
        _refuse_non_numbers(data)
        try:
            arr = np.array(data, dtype=float, copy=True)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"`data` must be an (M, k) array of numbers; {exc}.") from None
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2:
            raise ValueError(f"`data` must be an (M, k) array; got shape {arr.shape}.")
        names = list(names)
        bad = [n for n in names if not isinstance(n, str) or not n]
        if bad:
            raise TypeError(f"`names` must be non-empty strings; got {bad!r}.")
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"`names` must be distinct column names; repeated: {dup}.")
        if arr.shape[1] != len(names):
            raise ValueError(
                f"`names` must name every column of `data`: data has {arr.shape[1]} column(s), "
                f"names has {len(names)}."
            )
        if arr.shape[1] < 1:
            raise ValueError(f"`data` must have at least 1 column; got shape {arr.shape}.")
        if arr.shape[0] < 2:
            raise ValueError(
                f"`data` must hold at least 2 rows (samples); got {arr.shape[0]}: one sample has no "
                "gradient noise to model."
            )
        finite_array(arr, "data")
        if weights is None:
            w = np.full(arr.shape[0], 1.0 / arr.shape[0])
        else:
            if isinstance(weights, (str, bytes)):
                raise TypeError("`weights` must be an array of numbers; got a string.")
            try:
                w = finite_array(weights, "weights", ndim=1).copy()
            except (TypeError, ValueError) as exc:
                if "`weights`" in str(exc):
                    raise
                raise TypeError(f"`weights` must be an array of numbers; {exc}.") from None
            if w.shape[0] != arr.shape[0]:
                raise ValueError(f"`weights` must have one entry per row ({arr.shape[0]}); got {w.shape[0]}.")
            if np.any(w < 0):
                raise ValueError(f"`weights` must be non-negative; got {int(np.sum(w < 0))} negative value(s), "
                                 f"the smallest {float(w.min())!r}.")
            total = float(w.sum())
            if not total > 0:
                raise ValueError(f"`weights` must have a positive sum; got sum {total!r}.")
            # weights are relative: normalised to sum to 1 (sample counts or frequencies both work)
            w = w / total
        arr.setflags(write=False)
        w.setflags(write=False)
        self.data, self.weights = arr, w
        self.key = hashlib.sha1(arr.tobytes() + w.tobytes()).hexdigest()[:12]
        self._make_symbols(names, "names")
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
            with np.errstate(over="ignore", invalid="ignore"):
                v = float(self.weights @ np.prod(self.data ** np.array(powers), axis=1))
            if not np.isfinite(v):
                raise ValueError(
                    f"the moment {powers} of the data set {self!r} overflows float64 ({v}); rescale the data."
                )
            self._moments[powers] = sp.Float(v)
        return self._moments[powers]

    def _quadrature(self, n_points=None, values=None):
        return self.data, self.weights

    @property
    def is_weighted(self) -> bool:
        """True when the rows have unequal weights (then F, Sigma and the SGD sampler weight them)."""
        # one tolerance with Problem's equal-weight check (rounding of the normalised weights is not a weighting)
        return bool(np.ptp(self.weights) > WEIGHT_RTOL * np.max(self.weights))

    def _latex_law(self):
        # the weights change every derived number: a weighted data set must not print as the uniform one
        if self.is_weighted:
            return (r"\hat\nu^{w}_{" + str(self.size) + r"} = \textstyle\sum_{i=1}^{" + str(self.size)
                    + r"} w_i \delta_{\xi_i}\ (\text{weights from " + f"{self.weights.min():.3g} to "
                    + f"{self.weights.max():.3g}" + r"})")
        return r"\hat\nu_{" + str(self.size) + "}"

    def __repr__(self):
        weighted = f", weights from {self.weights.min():.3g} to {self.weights.max():.3g}" if self.is_weighted else ""
        return f"Empirical({', '.join(s.name for s in self.symbols)}; M={self.size}{weighted})"
