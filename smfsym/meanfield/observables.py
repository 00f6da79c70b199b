"""Observables of the particle cloud streamed at saved times (docs/theory.md §6).

- ``risk``: population risk R(mu) = E l(Phi_mu(z), y) on a rule of the data law
  (or on a held-out data set given as a rule),
- ``output_at``: the network output Phi_mu(z) at chosen inputs,
- ``moments``: particle means and second moments of every unit parameter.

Per-path values are kept (they are small: times x paths x k), so means and
variances over paths come with standard errors; the variance's standard error
uses the sample fourth central moment.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .data import DataRule

__all__ = ["Observables", "summarize", "OBSERVABLES"]

OBSERVABLES = ("risk", "output_at", "moments")


class Observables:
    """Builds the engine's streamed functions and records their per-path values."""

    def __init__(self, net, kernel, names: Sequence[str], risk_rule: DataRule | None, inputs=None):
        names = [names] if isinstance(names, str) else list(names)
        bad = [n for n in names if n not in OBSERVABLES]
        if bad:
            raise ValueError(f"`observables` must be among {list(OBSERVABLES)}; got {bad}.")
        self.net, self.kernel, self.names = net, kernel, names
        if "risk" in names and risk_rule is None:
            raise ValueError("`risk_rule` is needed for the observable 'risk'.")
        self.risk_rule = risk_rule
        if "output_at" in names:
            if inputs is None:
                raise ValueError(f"`inputs` must be given for 'output_at': an array (Q, {len(net.inputs)}) of inputs "
                                 f"{[str(s) for s in net.inputs]}.")
            arr = np.array(inputs, dtype=float)
            if arr.ndim == 1 and len(net.inputs) == 1:
                arr = arr[:, None]
            if arr.ndim != 2 or arr.shape[1] != len(net.inputs) or not np.all(np.isfinite(arr)):
                raise ValueError(f"`inputs` must be a finite array of shape (Q, {len(net.inputs)}); got shape {arr.shape}.")
            self.inputs = arr
        self.records: dict = {n: [] for n in names}

    # per-path values of each observable, states (P, N, p)

    def risk(self, X):
        rule = self.risk_rule
        z, d = self.kernel.rule_cols(rule.nodes)
        out = np.empty(X.shape[0])
        for sl in self.kernel.slices(X.shape[0], min(X.shape[1], 2**12), rule.size):
            Phi = self.kernel.output(X[sl], z)
            out[sl] = self.kernel.loss.evaluate([Phi], d)[..., 0] @ rule.weights
        return out

    def output_at(self, X):
        z = [np.ascontiguousarray(self.inputs[:, i])[None, None, :] for i in range(self.inputs.shape[1])]
        return self.kernel.output(X, z)

    @staticmethod
    def moments(X):
        return np.concatenate([X.mean(axis=1), (X * X).mean(axis=1)], axis=1)

    def functions(self) -> dict:
        def recorder(name):
            fn = getattr(self, name)

            def f(X):
                v = np.asarray(fn(X), dtype=float)
                self.records[name].append(v)
                return v
            return f
        return {name: recorder(name) for name in self.names}

    def values(self, nt: int) -> dict:
        """{name: (n_times, n_paths, k)} reassembled from the engine's chunk-by-chunk calls."""
        out = {}
        for name, rec in self.records.items():
            n_chunks = len(rec) // nt
            per_time = [np.concatenate([rec[c * nt + k].reshape(rec[c * nt + k].shape[0], -1)
                                        for c in range(n_chunks)], axis=0) for k in range(nt)]
            out[name] = np.stack(per_time)
        return out


def summarize(values: np.ndarray, coarse: np.ndarray | None = None, c: float = 0.0) -> dict:
    """Mean, variance over paths and their standard errors, per time and component.

    ``values`` has shape (n_times, n_paths, k). The variance is the unbiased sample
    variance; its standard error is sqrt((m4 - (n - 3)/(n - 1) s^4) / n).

    With ``coarse`` (the same paths on a coupled run at twice the step, see
    :func:`smfsym.simulate_ddsmf` with ``richardson=True``) both moments are extrapolated,
    E f -> (1 + c) E f(fine) - c E f(coarse) for f = R and R^2: the mean is that of the
    per-path values y = (1 + c) fine - c coarse, the variance mean(u) - mean(y)^2 + s_y^2 / n
    with u = (1 + c) fine^2 - c coarse^2 (unbiased: E mean(y)^2 = (E y)^2 + Var y / n), and its
    standard error comes from the influence function u - 2 mean(y) y (delta method).
    """
    v = np.asarray(values, dtype=float)
    n = v.shape[1]
    if coarse is not None:
        g = np.asarray(coarse, dtype=float)
        y = (1 + c) * v - c * g
        u = (1 + c) * v**2 - c * g**2
        mean = y.mean(axis=1)
        s2 = ((y - mean[:, None]) ** 2).sum(axis=1) / max(n - 1, 1)
        var = u.mean(axis=1) - mean**2 + s2 / n
        infl = u - 2 * mean[:, None] * y
        var_se = infl.std(axis=1, ddof=1) / np.sqrt(n) if n > 1 else np.zeros_like(var)
        return {"mean": mean, "sem": np.sqrt(s2 / n), "var": var, "var_se": var_se, "n": n}
    mean = v.mean(axis=1)
    c_ = v - mean[:, None]
    var = (c_**2).sum(axis=1) / max(n - 1, 1)
    m4 = (c_**4).mean(axis=1)
    var_se = np.sqrt(np.clip(m4 - (n - 3) / max(n - 1, 1) * var**2, 0, None) / n)
    return {"mean": mean, "sem": np.sqrt(var / n), "var": var, "var_se": var_se, "n": n}
