"""Simulating SGD itself from a Problem (MATH.md section 1), vectorised over paths.

Data are drawn with numpy's Generator methods from each law; mini-batches are
i.i.d., or without replacement from an empirical data set. In the n-point mode
every start uses the same samples at each step.
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np

from ._checks import numeric_values
from .compile import CompiledExprs
from .engine import SimulationResult, run
from .problem import Problem
from .samplers import samplers_for
from .simulate import prepare_x0

__all__ = ["simulate_sgd", "SGDStep"]


class SGDStep:
    """One compiled SGD step x <- x - eta * mean_batch grad f(x, xi)."""

    def __init__(self, problem: Problem, eta: float, batch_size: int, values: Mapping):
        self.problem = problem
        self.eta = float(eta)
        self.B = int(batch_size)
        self.values = values
        self.laws = problem.laws
        self.without = problem.sampling == "without_replacement"
        self.samplers = [] if self.without else samplers_for(self.laws, values)
        syms = ([s for law in self.laws for s in law.symbols] if self.without
                else [s for smp in self.samplers for s in smp.symbols])
        self.grad = CompiledExprs(list(problem.grad_f_compact), problem.params, values, syms)
        if self.without and self.B > self.laws[0].size:
            raise ValueError(f"`batch_size` must be at most the data set size {self.laws[0].size}; got {self.B}.")

    def sample(self, gens, sizes) -> list:
        """Data columns, each of shape (P, B)."""
        cols = []
        if self.without:
            law = self.laws[0]
            idx = np.concatenate([np.argsort(g.random((s, law.size)), axis=1)[:, : self.B]
                                  for g, s in zip(gens, sizes)], axis=0)
            arr = law.data[idx]
            return [arr[..., j] for j in range(law.dim)]
        for smp in self.samplers:
            k = len(smp.symbols)
            arr = np.concatenate([smp(g, s * self.B).reshape(k, s, self.B) for g, s in zip(gens, sizes)], axis=1)
            cols += list(arr)
        return cols

    def __call__(self, X, gens, sizes):
        """One step on states (P, [n,] d); works coordinate-major so every column read is contiguous.

        The returned states are a view of a (d, P, [n]) array: the next step's
        ``moveaxis`` is then free.
        """
        data = self.sample(gens, sizes)  # each (P, B)
        XT = np.moveaxis(X, -1, 0)  # (d, P, [n])
        if X.ndim == 2:
            xc = [c[:, None] for c in XT]  # (P, 1) against data (P, B)
            dc = data
        else:
            xc = [c[..., None] for c in XT]  # (P, n, 1) against data (P, 1, B)
            dc = [c[:, None, :] for c in data]
        g = np.moveaxis(self.grad.evaluate(xc, dc), -1, 0)  # (d, P, [n,] B), contiguous
        g = g[..., 0] if self.B == 1 else g.mean(axis=-1)
        return np.moveaxis(XT - self.eta * g, 0, -1)


def problem_symbols(problem: Problem) -> set:
    """Symbols a user may give ``values`` for: law parameters and constants."""
    return set(problem.law_parameters) | set(problem.constants)


def simulate_sgd(problem: Problem, x0, n_steps: int, eta: float, *, n_paths: int = 10_000, seed=None,
                 save_at: Sequence[int] | None = None, batch_size: int | None = None,
                 values: Mapping | None = None, chunk_size: int | None = None,
                 functions: Mapping[str, Callable] | None = None, store: bool = True,
                 on_nonfinite: str = "raise", progress: bool | None = None) -> SimulationResult:
    """Simulate SGD x_{k+1} = x_k - eta * mean over a batch of grad f(x_k, xi).

    Parameters
    ----------
    problem : Problem
    x0 : array_like, shape (d,) or (n, d)
        An (n, d) start runs n SGD chains that share their samples.
    n_steps : int
    eta : float
    save_at : sequence of int, optional
        Step indices to save (default ``[n_steps]``); ``result.t`` is step * eta.
    batch_size : int, optional
        Defaults to the problem's batch size.

    Other parameters are as for :func:`smfsym.simulate`.

    Examples
    --------
    MATH.md section 3: the mean is (1 - eta)^k x_0.

    >>> import sympy as sp, smfsym
    >>> x = sp.Symbol("x")
    >>> xi = smfsym.normal("xi")
    >>> p = smfsym.Problem((x - xi) ** 2 / 2, [x])
    >>> res = smfsym.simulate_sgd(p, x0=[1.0], n_steps=10, eta=0.1, n_paths=4000, seed=0)
    >>> bool(abs(res.mean()[0, 0] - 0.9**10) < 5 * res.sem()[0, 0])
    True
    """
    if not isinstance(problem, Problem):
        raise TypeError(f"`problem` must be a smfsym.Problem; got {type(problem).__name__}.")
    if not np.isfinite(eta) or eta <= 0:
        raise ValueError(f"`eta` must be positive; got {eta!r}.")
    if not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise ValueError(f"`n_steps` must be a positive integer; got {n_steps!r}.")
    B = problem.batch_size if batch_size is None else batch_size
    try:
        B = int(B)
    except TypeError:
        raise ValueError(f"`batch_size` must be a number; the problem's is symbolic ({B}).") from None
    if B < 1:
        raise ValueError(f"`batch_size` must be a positive integer; got {B}.")
    idx = [n_steps] if save_at is None else sorted(set(int(k) for k in np.atleast_1d(save_at)))
    bad = [k for k in idx if k < 0 or k > n_steps]
    if bad:
        raise ValueError(f"`save_at` steps must lie in [0, n_steps = {n_steps}]; got {bad}.")
    vals = numeric_values(values, problem_symbols(problem))
    x0 = prepare_x0(x0, problem.dim)
    stepper = SGDStep(problem, eta, B, vals)

    def step(X, h, gens, sizes):
        return stepper(X, gens, sizes)

    res = run(x0=x0, n_paths=n_paths, step_sizes=np.full(n_steps, eta), save_index=idx,
              times=np.array(idx) * eta, step=step, seed=seed, chunk_size=chunk_size, functions=functions,
              store=store, on_nonfinite=on_nonfinite, progress=progress, scheme="sgd", dt_label=eta,
              time_label="step", step_times=np.arange(1, n_steps + 1, dtype=float))
    res.extra.update(steps=np.array(idx), batch_size=B)
    return res
