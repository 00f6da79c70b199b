"""Mean-field SGD of width N (docs/theory.md §6, docs/theory.md §6).

theta^i_{k+1} = theta^i_k - (eta / B) sum_b d_out l(Phi_k(z_b), y_b) grad_theta phi(theta^i_k, z_b):
one batch of B samples per step shared by all N neurons, per-neuron step eta
(learning rate eta N on the averaged loss), time t = k eta. Samples are drawn
exactly as :func:`smfsym.simulate_sgd` draws them (same samplers, same block
streams), so N = 1 reproduces it with the same seed.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from ..engine import run
from ..samplers import samplers_for
from .result import MeanFieldResult, check_work, finish, positive, setup

__all__ = ["simulate_meanfield_sgd", "save_steps"]


def save_steps(n_steps: int, eta: float, save_every, save_at) -> list:
    """Step indices to save: every ``save_every`` steps, at times ``save_at`` (multiples of eta), or the last."""
    if save_every is not None and save_at is not None:
        raise ValueError("give at most one of `save_every` and `save_at`.")
    if save_every is not None:
        if not isinstance(save_every, (int, np.integer)) or save_every < 1:
            raise ValueError(f"`save_every` must be a positive integer (steps); got {save_every!r}.")
        idx = list(range(0, n_steps + 1, int(save_every)))
        return idx if idx[-1] == n_steps else idx + [n_steps]
    if save_at is None:
        return [n_steps]
    t = np.atleast_1d(np.asarray(save_at, dtype=float))
    k = np.rint(t / eta).astype(int)
    bad = t[(np.abs(k * eta - t) > 1e-9 * np.maximum(1, np.abs(t))) | (k < 0) | (k > n_steps)]
    if bad.size:
        raise ValueError(f"`save_at` times must be multiples of eta = {eta} in [0, {n_steps * eta}]; got {bad.tolist()}.")
    return sorted(set(k.tolist()))


class _Sampler:
    """Batches of data as simulate_sgd draws them: columns (P, B) in ``net.data`` order."""

    def __init__(self, net, values, B):
        self.B = B
        self.samplers = samplers_for(net.laws, values)
        order = [s for smp in self.samplers for s in smp.symbols]
        self.perm = [order.index(s) for s in net.data]

    def __call__(self, gens, sizes) -> list:
        cols = []
        for smp in self.samplers:
            k = len(smp.symbols)
            arr = np.concatenate([smp(g, s * self.B).reshape(k, s, self.B) for g, s in zip(gens, sizes)], axis=1)
            cols += list(arr)
        return [cols[i] for i in self.perm]


def simulate_meanfield_sgd(net, theta0, eta: float, n_steps: int, *, n_paths: int = 64, seed=None,
                           save_every: int | None = None, save_at: Sequence[float] | None = None,
                           batch_size: int | None = None, values: Mapping | None = None,
                           observables: Sequence[str] = ("risk",), risk_rule=None, risk_points: int = 16,
                           inputs=None, store: bool = False, chunk_size: int | None = None,
                           progress: bool | None = None, max_work: float | None = None) -> MeanFieldResult:
    """Simulate mean-field SGD of width N = len(theta0) over ``n_paths`` independent sample streams.

    Parameters
    ----------
    net : MeanFieldProblem
    theta0 : array_like (N, p)
        Initial particles, the same on every path (the variance over paths is SGD's noise alone).
    eta : float
        Per-neuron step; time t = k eta.
    n_steps : int
    n_paths : int
    seed : int or SeedSequence
        Same seed, same numbers, however the paths are chunked.
    save_every, save_at : int or sequence of float, optional
        Save every k steps, or at these times (multiples of eta). Default: the last step.
    batch_size : int, optional
        Defaults to ``net.batch_size``.
    observables : sequence of {"risk", "output_at", "moments"}
    risk_rule : DataRule, optional
        Rule for the population risk (default: the data set, or a Gauss rule of ``risk_points``).
    inputs : array (Q, n_inputs), optional
        Inputs for "output_at".
    store : bool
        Keep every particle state (n_times x n_paths x N x p floats).
    max_work : float, optional
        Refuse runs of more than this many unit evaluations (default 1e12), before starting.

    Returns
    -------
    MeanFieldResult
        A blow-up raises :class:`smfsym.BlowUpError` naming the step and the fraction of paths.

    Examples
    --------
    >>> import sympy as sp, smfsym
    >>> a, w, out = sp.symbols("a w out")
    >>> z = smfsym.normal("z")
    >>> net = smfsym.MeanFieldProblem(a * sp.tanh(w * z), (a, w), out, (out - sp.tanh(2 * z)) ** 2 / 2)
    >>> th = smfsym.particles(net, 100, seed=0)
    >>> res = smfsym.simulate_meanfield_sgd(net, th, eta=0.05, n_steps=20, n_paths=8, seed=1)
    >>> res.observables["risk"].shape
    (1, 8, 1)
    """
    theta0, vals, kernel, obs = setup(net, theta0, values, observables, risk_rule, risk_points, inputs)
    eta = positive(eta, "eta")
    if not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise ValueError(f"`n_steps` must be a positive integer; got {n_steps!r}.")
    B = net.batch_size if batch_size is None else batch_size
    if not isinstance(B, (int, np.integer)) or isinstance(B, bool) or B < 1:
        raise ValueError(f"`batch_size` must be a positive integer; got {batch_size!r}.")
    idx = save_steps(int(n_steps), eta, save_every, save_at)
    check_work(int(n_steps), n_paths, theta0.shape[0], int(B), max_work, "mean-field SGD")
    sampler = _Sampler(net, vals, int(B))

    def step(X, h, gens, sizes):
        return X + kernel.sgd_increment(X, sampler(gens, sizes), eta)

    res = run(x0=theta0, n_paths=n_paths, step_sizes=np.full(int(n_steps), eta), save_index=idx,
              times=np.array(idx) * eta, step=step, seed=seed, chunk_size=chunk_size, functions=obs.functions(),
              store=store, on_nonfinite="raise", progress=progress, scheme="meanfield-sgd", dt_label=eta,
              time_label="step", step_times=np.arange(1, int(n_steps) + 1, dtype=float))
    return finish(res, obs, "sgd", eta, theta0.shape[0], batch_size=int(B), steps=np.array(idx))
