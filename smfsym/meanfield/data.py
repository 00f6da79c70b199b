"""The data law as a finite rule: nodes xi_j with weights w_j (docs/theory.md §6).

The DD-SMF's drift E[...] and its cylindrical noise are represented on a rule
of M nodes; the noise then has M columns sqrt(w_j) (grad V - grad v(., xi_j))
(docs/theory.md §3, finite laws):

- an empirical data set: its M rows and weights. Exact.
- finite laws (Bernoulli, categorical, ...): their support. Exact.
- continuous laws: the tensor product of each law's Gauss rule with
  ``n_points`` nodes per coordinate (Gauss-Hermite for Gaussians, after the
  Cholesky map for correlated ones; Gauss-Legendre, -Laguerre, -Jacobi else).
  Why a Gauss rule and not the chaos basis: the unit is not polynomial in the
  data in general (tanh, ...), so a chaos expansion would be truncated anyway,
  and a rule turns the noise into a finite law with the *exact* Parseval
  identity of that law; it converges as n_points grows. What it captures is
  reported by :func:`captured_noise_variance` against a Monte Carlo sample of
  the law itself.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from .._checks import finite_array, numeric_values
from .kernel import Kernel
from .particles import check_particles
from ..data.quadrature import GAUSS_RULES
from ..data.samplers import samplers_for

__all__ = ["DataRule", "data_rule", "captured_noise_variance", "MAX_NODES"]

#: Largest rule built without ``max_nodes`` raised: the DD-SMF costs P N M per step.
MAX_NODES = 20_000


@dataclass(frozen=True)
class DataRule:
    """M nodes (rows, one column per data symbol of the problem) with weights summing to 1."""

    nodes: np.ndarray
    weights: np.ndarray
    exact: bool
    description: str

    @property
    def size(self) -> int:
        return self.nodes.shape[0]

    @classmethod
    def from_rows(cls, net, rows, weights=None) -> "DataRule":
        """A held-out sample as a rule (e.g. ``risk_rule`` for a test risk): one column per ``net.data`` symbol.

        Examples
        --------
        >>> import numpy as np, sympy as sp, smfsym
        >>> a, w, out = sp.symbols("a w out")
        >>> z = smfsym.normal("z")
        >>> net = smfsym.MeanFieldProblem(a * sp.tanh(w * z), (a, w), out, (out - z) ** 2 / 2)
        >>> from smfsym.meanfield import DataRule
        >>> DataRule.from_rows(net, np.random.default_rng(0).normal(size=(500, 1))).size
        500
        """
        arr = finite_array(rows, "rows", ndim=2).copy()
        if arr.shape[1] != len(net.data) or arr.shape[0] < 1:
            raise ValueError(f"`rows` must have shape (M, {len(net.data)}), one column per data symbol "
                             f"{[str(s) for s in net.data]}; got {arr.shape}.")
        if weights is None:
            w = np.full(arr.shape[0], 1.0 / arr.shape[0])
        else:
            w = finite_array(weights, "weights", ndim=1).copy()
            if w.shape[0] != arr.shape[0] or np.any(w < 0) or abs(w.sum() - 1) > 1e-10:
                raise ValueError(f"`weights` must be {arr.shape[0]} non-negative numbers summing to 1.")
        arr.setflags(write=False)
        w.setflags(write=False)
        return cls(arr, w, exact=False, description=f"held-out sample (M={arr.shape[0]})")


def _known(net):
    return set(net.law_parameters) | set(net.constants)


def data_rule(net, n_points: int | None = None, values: Mapping | None = None, *,
              max_nodes: int = MAX_NODES) -> DataRule:
    """The rule of the network's data law (see the module docstring).

    Parameters
    ----------
    net : MeanFieldProblem
    n_points : int, optional
        Gauss nodes per continuous coordinate (needed when the law has one).
    values : mapping, optional
        Numbers for symbolic law parameters.
    max_nodes : int
        Refuse larger tensor rules (the size is computed before anything is built).

    Examples
    --------
    >>> import sympy as sp, smfsym
    >>> a, w, out = sp.symbols("a w out")
    >>> z = smfsym.normal("z", 2)
    >>> net = smfsym.MeanFieldProblem(a * sp.tanh(w * z[0]), (a, w), out, (out - z[1]) ** 2 / 2)
    >>> from smfsym.meanfield import data_rule
    >>> rule = data_rule(net, n_points=8)
    >>> rule.size, rule.description
    (64, 'Gauss-Hermite(8) x Gauss-Hermite(8)')
    """
    vals = numeric_values(values, _known(net))
    continuous = [law for law in net.laws if not law.is_finite]
    if continuous and n_points is None:
        raise ValueError("`n_points` must be given: the data law has continuous coordinates "
                         f"({', '.join(repr(l) for l in continuous)}); it sets the Gauss rule per coordinate.")
    if n_points is not None and (not isinstance(n_points, (int, np.integer)) or isinstance(n_points, bool)
                                 or n_points < 1):
        raise ValueError(f"`n_points` must be a positive integer; got {n_points!r}.")
    sizes = []
    for law in net.laws:
        if law.family == "Empirical":
            sizes.append(law.size)
        elif law.is_finite:
            sizes.append(len(law.values))
        else:
            sizes.append(int(n_points) ** law.dim)
    total = int(np.prod(sizes, dtype=float))
    if total > max_nodes:
        raise ValueError(f"the data rule would have {total} nodes ({' x '.join(map(str, sizes))}), over "
                         f"`max_nodes` = {max_nodes}: lower `n_points` or raise `max_nodes`.")
    parts, descr = [], []
    for law in net.laws:
        if law.family == "Empirical":
            x, w = law.data, law.weights
            descr.append(f"data set (M={law.size})")
        elif law.is_finite:
            x, w = law.quadrature(None, vals)
            descr.append(f"support of {law.family}")
        else:
            x, w = law.quadrature(int(n_points), vals)
            descr.append(f"{GAUSS_RULES.get(law.family, 'Gauss')}({n_points})")  # a fixed rule, not refined
        parts.append((np.asarray(x, dtype=float).reshape(len(w), -1), np.asarray(w, dtype=float)))
    idx = np.array(list(itertools.product(*[range(len(w)) for _, w in parts])))
    nodes = np.concatenate([x[idx[:, i]] for i, (x, _) in enumerate(parts)], axis=1)
    weights = np.prod(np.stack([w[idx[:, i]] for i, (_, w) in enumerate(parts)]), axis=0)
    weights = weights / weights.sum()
    if not np.all(np.isfinite(nodes)):
        raise ValueError("the data rule has non-finite nodes; check the law parameters in `values`.")
    nodes.setflags(write=False)
    weights.setflags(write=False)
    return DataRule(nodes, weights, exact=not continuous, description=" x ".join(descr))


def captured_noise_variance(net, theta, rule: DataRule, *, n_samples: int = 20_000, seed=0,
                            values: Mapping | None = None) -> dict:
    """Total noise variance sum_i tr Sigma(mu, theta_i) on the rule against a Monte Carlo sample of the law.

    Returns ``{"rule", "monte_carlo", "sem", "ratio", "ratio_se"}``; the Monte Carlo
    value has standard error ``sem`` (batch means over 20 batches). A ratio far
    from 1 (beyond a few ``ratio_se``) says the rule is too small.
    """

    theta = check_particles(theta, net.n_params)
    vals = numeric_values(values, _known(net))
    ker = Kernel(net, vals)
    on_rule = ker.noise_variance(theta, rule.nodes, rule.weights)
    samplers = samplers_for(net.laws, vals)
    order = [s for smp in samplers for s in smp.symbols]
    g = np.random.default_rng(seed)
    cols = np.concatenate([smp(g, n_samples) for smp in samplers], axis=0)
    sample = np.stack([cols[order.index(s)] for s in net.data], axis=1)
    n_batches = 20
    # batch means of unbiased per-batch variances: an honest standard error without a 4th-moment formula
    per = [ker.noise_variance(theta, b, np.full(len(b), 1.0 / len(b))) * len(b) / (len(b) - 1)
           for b in np.array_split(sample, n_batches)]
    mc = float(np.mean(per))
    sem = float(np.std(per, ddof=1) / np.sqrt(n_batches))
    return {"rule": on_rule, "monte_carlo": mc, "sem": sem, "ratio": on_rule / mc, "ratio_se": on_rule * sem / mc**2}
