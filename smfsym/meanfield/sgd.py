"""Mean-field SGD of width N (docs/theory.md §6).

theta^i_{k+1} = theta^i_k - (eta / B) sum_b d_out l(Phi_k(z_b), y_b) grad_theta phi(theta^i_k, z_b):
one batch of B samples per step shared by all N neurons, per-neuron step eta
(learning rate eta N on the averaged loss), time t = k eta. Samples are drawn
exactly as :func:`smfsym.simulate_sgd` draws them (same samplers, same block
streams), so N = 1 reproduces it with the same seed.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from ..montecarlo.checks import MEANFIELD_REMEDY
from ..montecarlo.driver import Job, Paths, run
from ..montecarlo.options import RunOptions, SaveAt
from ..data.samplers import samplers_for
from ..backends import get_backend
from .device import DeviceKernel, DeviceMeanFieldSGDStep, DeviceObservables
from .kernel import Kernel
from .observables import Observables
from .options import Observe, meanfield_settings
from .result import (
    MeanFieldResult, PerBlock, check_meanfield_executor, check_work, finish, observables_recipe, positive,
    setup,
)

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


class _SGDStep:
    """One mean-field SGD step on a chunk of paths; ``functions`` are the observables (per path)."""

    def __init__(self, kernel, obs, sampler, eta: float):
        self.kernel, self.sampler, self.eta = kernel, sampler, eta
        self.functions = {name: PerBlock(getattr(obs, name)) for name in obs.names}

    def __call__(self, X, h, gens, sizes):
        data = self.sampler(gens, sizes)
        out, lo = np.empty_like(X), 0
        for s in sizes:  # block by block: every path's numbers independent of the chunking (see PerBlock)
            out[lo:lo + s] = X[lo:lo + s] + self.kernel.sgd_increment(X[lo:lo + s], [c[lo:lo + s] for c in data],
                                                                      self.eta)
            lo += s
        return out


class SGDTask:
    """Plain data from which a worker process compiles :class:`_SGDStep` once (see :mod:`smfsym.montecarlo.executors`)."""

    provides_functions = True

    def __init__(self, net, values: dict, obs_recipe: tuple, batch_size: int, eta: float):
        self.net, self.values, self.obs_recipe = net, dict(values), obs_recipe
        self.batch_size, self.eta = batch_size, eta

    def build(self) -> _SGDStep:
        kernel = Kernel(self.net, self.values)
        obs = Observables(self.net, kernel, *self.obs_recipe)
        return _SGDStep(kernel, obs, _Sampler(self.net, self.values, self.batch_size), self.eta)


def simulate_meanfield_sgd(net, theta0, eta: float, n_steps: int, *, n_paths: int = 64, seed=None,
                           save_every: int | None = None, save_at=None, batch_size: int | None = None,
                           values: Mapping | None = None, observe: Observe | None = None,
                           options: RunOptions | None = None, **legacy) -> MeanFieldResult:
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
    save_every : int, optional
        Save every k steps.
    save_at : sequence of float or SaveAt, optional
        Save at these times (multiples of eta; default: the last step); a :class:`~smfsym.SaveAt` may
        also ask to ``store`` every particle state (n_times x n_paths x N x p floats; default not).
    batch_size : int, optional
        Defaults to ``net.batch_size``.
    observe : Observe, optional
        What is observed (:class:`smfsym.meanfield.Observe`: ``observables`` among "risk", "output_at",
        "moments", ``inputs`` for "output_at", ``risk_rule`` or ``risk_points``; default the risk).
    options : RunOptions or MeanFieldOptions, optional
        ``chunk_size``, ``progress``, ``executor``, ``max_memory``, ``max_steps``, ``blowup_threshold``
        and, in a :class:`smfsym.meanfield.MeanFieldOptions`, ``max_work`` (refuse runs of more than this
        many unit evaluations, default 1e12, before starting). An ``executor``
        (``smfsym.process_pool(2)``, a Dask ``Client``) runs groups of whole seed blocks: each worker
        compiles the network once per process (cached by a content hash of the recipe) and sends back
        per-block statistics and per-path observables, merged in block order, so every number is
        bitwise that of the serial run. ``chunk_size``, if given, is the paths per task. Work is split
        by seed blocks of 4096 paths (a block's paths share one random stream), so a run of at most
        4096 paths is one task. See :mod:`smfsym.montecarlo.executors`. ``backend`` (``"cupy"``,
        ``"array_api_strict"``; :mod:`smfsym.backends`) runs the particles of every path, the batches
        (drawn from each seed block's device stream; Normal, multivariate normal, uniform, exponential,
        finite and empirical laws, others refused naming the law) and the observables on the device
        (:mod:`smfsym.meanfield.device`): per-block statistics and the per-path observables come back at
        the saved times, the states only with ``store``. Numbers differ from numpy's and agree
        statistically; on one back end they do not depend on ``chunk_size``. Not with an ``executor``.
    **legacy
        The old keywords (``observables``, ``risk_rule``, ``risk_points``, ``inputs``, ``store``,
        ``chunk_size``, ``progress``, ``max_work``, ``executor``) still work for one release, with a
        ``DeprecationWarning`` and the same numbers.

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
    cfg = meanfield_settings("simulate_meanfield_sgd", legacy, observe=observe, save_at=save_at, options=options,
                             backends=True)
    executor = check_meanfield_executor(cfg.options.executor)  # refused before anything is compiled
    o = cfg.observe
    theta0, vals, kernel, obs = setup(net, theta0, values, o.observables, o.risk_rule, o.risk_points, o.inputs)
    eta = positive(eta, "eta")
    if not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise ValueError(f"`n_steps` must be a positive integer; got {n_steps!r}.")
    B = net.batch_size if batch_size is None else batch_size
    if not isinstance(B, (int, np.integer)) or isinstance(B, bool) or B < 1:
        raise ValueError(f"`batch_size` must be a positive integer; got {batch_size!r}.")
    idx = save_steps(int(n_steps), eta, save_every, cfg.at)
    check_work(int(n_steps), n_paths, theta0.shape[0], int(B), cfg.options.max_work, "mean-field SGD")
    backend = get_backend(cfg.options.backend)
    if backend.name != "numpy":  # the particles, batches and observables on the device
        dk = DeviceKernel(net, vals, backend)
        step = DeviceMeanFieldSGDStep(dk, DeviceObservables(dk, obs), net, vals, int(B), eta)
    else:
        step = _SGDStep(kernel, obs, _Sampler(net, vals, int(B)), eta)
    task = SGDTask(net, vals, observables_recipe(obs), int(B), eta) if executor is not None else None
    job = Job(step=step, step_sizes=np.full(int(n_steps), eta), save_index=idx, times=np.array(idx) * eta,
              scheme="meanfield-sgd", dt_label=eta, time_label="t",
              step_times=np.arange(1, int(n_steps) + 1, dtype=float) * eta, task=task, remedy=MEANFIELD_REMEDY)
    res = run(job, theta0, paths=Paths(n_paths, seed),
              save=SaveAt(functions=step.functions, store=cfg.store, keep_values=True),
              options=cfg.options.replace(executor=executor))
    return finish(res, obs, "sgd", eta, theta0.shape[0], batch_size=int(B), steps=np.array(idx))
