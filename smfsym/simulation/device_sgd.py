"""SGD on an array back end other than numpy (issue 19; :mod:`smfsym.backends`).

The batch is drawn on the device from each seed block's stream (Gaussian, uniform, exponential,
finite and empirical-with-replacement laws), the gradient is lambdified for the back end's namespace,
and the step x <- x - eta mean_batch grad f(x, xi) runs there. Laws without a device sampler (gamma,
beta, Student t) and sampling without replacement are refused with a ValueError naming the back end.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from .._checks import to_float
from ..montecarlo.cache import compiled_content
from ..symbolic.lambdify import CompiledExprs
from ..symbolic.problem import Problem
from .sde import values_key

__all__ = ["DeviceSGDStep", "DeviceSGDRun"]


def _is(law, kind: str) -> bool:
    return any(cls.__name__ == kind for cls in type(law).__mro__)


class _DeviceSampler:
    """Draws ``(k, s, B)`` samples of one law's symbols per seed block on the device."""

    def __init__(self, law, values, backend):
        self.backend, self.symbols = backend, tuple(law.symbols)
        what = f"a parameter of the {law.family} law of {', '.join(s.name for s in law.symbols[:4])}"
        f = lambda e: to_float(e, values, what)  # noqa: E731
        self.kind, self.k = type(law).__name__, len(law.symbols)
        if _is(law, "Normal"):
            self.kind, self.mu, self.sd = "normal", f(law.mean), f(law.std)
        elif _is(law, "MultivariateNormal"):
            cov = np.array([[f(c) for c in row] for row in law.cov.tolist()])
            self.kind = "mvn"
            self.mu = backend.asarray([f(m) for m in law.mean])
            self.L = backend.asarray(np.linalg.cholesky(cov))
        elif _is(law, "Uniform"):
            self.kind, self.a, self.b = "uniform", f(law.a), f(law.b)
        elif _is(law, "Exponential"):
            self.kind, self.rate = "exponential", f(law.rate)
        elif _is(law, "Finite") or _is(law, "Empirical"):
            if _is(law, "Finite"):
                table = np.array([[f(a)] for a in law.values])
                w = np.array([f(a) for a in law.weights])
            else:
                table, w = np.asarray(law.data, dtype=float), np.asarray(law.weights, dtype=float)
            self.kind, self.table = "table", backend.asarray(table)
            self.cuts = backend.asarray(np.cumsum(w / w.sum())[:-1])  # row i: cuts[i-1] <= U < cuts[i]
        else:
            raise ValueError(f"`backend={backend.name!r}` has no device sampler for the {law.family} law of "
                             f"{', '.join(map(str, law.symbols))}; use backend='numpy'.")

    def __call__(self, g, s: int, B: int):
        xp, kind = self.backend.xp, self.kind
        if kind == "normal":
            return self.mu + self.sd * g.standard_normal((1, s, B))
        if kind == "mvn":
            z = g.standard_normal((self.k, s * B))
            return xp.reshape(self.mu[:, None] + self.L @ z, (self.k, s, B))
        if kind == "uniform":
            return self.a + (self.b - self.a) * g.random((1, s, B))
        if kind == "exponential":
            return -xp.log1p(-g.random((1, s, B))) / self.rate
        idx = xp.searchsorted(self.cuts, g.random((s * B,)), side="right")
        rows = xp.take(self.table, idx, axis=0)  # (s B, k)
        return xp.reshape(xp.permute_dims(rows, (1, 0)), (self.k, s, B))


class DeviceSGDStep:
    """One SGD step x <- x - eta mean_batch grad f(x, xi) on ``backend`` (the driver's step)."""

    def __init__(self, problem: Problem, eta: float, batch_size: int, values: Mapping, backend):
        if problem.sampling == "without_replacement":
            raise ValueError(f"`backend={backend.name!r}` samples batches with replacement only; this problem "
                             "samples without replacement: use backend='numpy'.")
        self.eta, self.B, self.backend, self.xp = float(eta), int(batch_size), backend, backend.xp
        self.samplers = [_DeviceSampler(law, values, backend) for law in problem.laws]
        syms = tuple(s for smp in self.samplers for s in smp.symbols)
        vals, items = values_key(values)
        exprs, params = list(problem.grad_f_compact), tuple(problem.params)
        key = ("SGD gradient", exprs, params, syms, items, backend.key)
        self.grad = compiled_content(key, lambda: CompiledExprs(exprs, params, vals, syms, backend=backend))
        self.d = problem.dim

    def per_path_bytes(self, x0) -> int:
        n = x0.shape[0] if x0.ndim == 2 else 1
        return 8 * self.B * n * (self.d + len(self.grad.data_symbols)) * 6

    def sample(self, gens, sizes) -> list:
        """Data columns on the device, each (P, B): every block draws its own rows."""
        xp, cols = self.xp, []
        for smp in self.samplers:
            parts = [smp(g, s, self.B) for g, s in zip(gens, sizes)]
            arr = parts[0] if len(parts) == 1 else xp.concat(parts, axis=1)
            cols += [arr[j, ...] for j in range(arr.shape[0])]
        return cols

    def gradient(self, X, gens, sizes) -> list:
        """The batch-mean gradient at states X (P, [n,] d) on a fresh batch: d arrays (P, [n])."""
        xp = self.xp
        data = self.sample(gens, sizes)
        xc = [X[..., i][..., None] for i in range(self.d)]  # (P, [n,] 1)
        dc = data if X.ndim == 2 else [xp.reshape(c, (c.shape[0], 1, c.shape[1])) for c in data]
        shape = tuple(X.shape[:-1]) + (self.B,)
        g = self.grad.evaluate_list(xc + dc, mean_vals=[], shape=shape)
        return [batch_mean(xp, gi) for gi in g]

    def __call__(self, X, h, gens, sizes):
        g = self.gradient(X, gens, sizes)
        return self.xp.stack([X[..., i] - self.eta * g[i] for i in range(self.d)], axis=-1)


def batch_mean(xp, g):
    """The mean over the last axis (a batch), summed in halves in an order fixed by the batch size alone.

    ``xp.mean`` leaves the order to the library, and XLA picks it by the whole array's shape: on JAX a path's
    SGD step then changed in the last bit with the number of paths in its chunk.
    """
    B = g.shape[-1]
    s = g
    while s.shape[-1] > 1:
        n = s.shape[-1]
        h = n // 2
        top = s[..., :h] + s[..., h:2 * h]
        s = top if n % 2 == 0 else xp.concat([top, s[..., 2 * h:]], axis=-1)
    return s[..., 0] / B


class DeviceSGDRun:
    """The driver's step of the SGD simulators on a back end: :class:`DeviceSGDStep` and an optimizer rule of
    :mod:`smfsym.simulation.sgd` (constant rate, schedule, heavy-ball or Nesterov momentum)."""

    def __init__(self, stepper: DeviceSGDStep, rule):
        kind = type(rule).__name__
        if kind not in ("ConstantRate", "ScheduledRate", "MomentumRule"):
            raise ValueError(f"`backend={stepper.backend.name!r}` runs the constant-rate, scheduled and momentum "
                             f"rules; got {kind}: use backend='numpy'.")
        self.stepper, self.rule, self.kind = stepper, rule, kind

    def __call__(self, X, h, gens, sizes):
        st = self.stepper
        if self.kind == "ScheduledRate":
            st.eta = float(h)
        if self.kind != "MomentumRule":
            return st(X, h, gens, sizes)
        r, xp = self.rule, st.xp
        d = r.dim
        Xs, V = X[..., :d], X[..., d:] * r.unit
        g = xp.stack(st.gradient(Xs + r.beta * V if r.nesterov else Xs, gens, sizes), axis=-1)
        V = r.beta * V - r.eta * g
        return xp.concat([Xs + V, V / r.unit], axis=-1)
