"""Finite laws: Bernoulli, Rademacher, categorical (exact rational weights)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import sympy as sp

from ..._checks import require, to_float
from .base import UnivariateLaw, _s

__all__ = ["Finite"]



class Finite(UnivariateLaw):
    """A finite law: ``values`` with probabilities ``weights`` (Bernoulli, Rademacher, categorical)."""

    family = "Finite"
    is_finite = True

    def __init__(self, name: str, values: Sequence, weights: Sequence | None = None, family: str = "Finite"):
        vals = [_s(v, "values") for v in values]
        if len(vals) == 0:
            raise ValueError("`values` must hold at least one point; got an empty sequence.")
        if weights is None:
            weights = [sp.Rational(1, len(vals))] * len(vals)
        ws = [_s(w, "weights") for w in weights]
        if len(ws) != len(vals):
            raise ValueError(f"`weights` must have one entry per value ({len(vals)}); got {len(ws)}.")
        for w in ws:
            require(w >= 0, "weights", "non-negative", w)
        total = sp.simplify(sum(ws))
        require(sp.Eq(total, 1), "weights", "summing to 1", f"{list(weights)} (sum {total})")
        self.values, self.weights, self.family = tuple(vals), tuple(ws), family
        self._make_symbols([name])

    @property
    def parameters(self):
        return self.values + self.weights

    def _moment(self, n):
        return sp.expand(sum(w * v**n for v, w in zip(self.values, self.weights)))

    def max_basis_degree(self):
        return len(set(self.values)) - 1

    def _check_numeric(self, values) -> None:
        for w in self.weights:
            if w.free_symbols:
                value = to_float(w, values, f"a weight of {self.symbol}")
                if not value >= 0:  # the weights sum to 1 whatever the parameters: only their signs can fail
                    self._refuse_value("a weight", w, value, "non-negative (a probability)")

    def _quadrature(self, n_points=None, values=None):
        v = np.array([to_float(a, values, f"a value of {self.symbol}") for a in self.values])
        w = np.array([to_float(a, values, f"a weight of {self.symbol}") for a in self.weights])
        return v[:, None], w

    def _latex_law(self):
        if self.family == "Rademacher":
            return r"\mathrm{Rademacher}"
        if self.family == "Bernoulli":
            return r"\mathrm{Bernoulli}\left(" + sp.latex(self.weights[1]) + r"\right)"
        pairs = ", ".join(f"{sp.latex(v)}: {sp.latex(w)}" for v, w in zip(self.values, self.weights))
        return r"\mathrm{Cat}\left\{" + pairs + r"\right\}"
