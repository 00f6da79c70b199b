r"""SVAG, the stochastic variance amplified gradient of Li, Malladi and Arora (NeurIPS 2021), for any update map.

For an integer l >= 1, SVAG runs the optimizer at step eta / l, l times as many steps, with a gradient that
combines two independent samples,

    g_l = w_+ g(xi) + w_- g(xi'),   w_+- = (1 +- sqrt(2 l - 1)) / 2,

so that its mean is that of one sample and its covariance l times as large (w_+ + w_- = 1,
w_+^2 + w_-^2 = l). Per unit of time the mean moves as before and the covariance is unchanged, while the
steps shrink: SVAG converges weakly to the order-1 SME, dX = -grad F dt + sqrt(eta) Sigma^{1/2} dW, with an
error O(1/l) at fixed eta. It is the paper's test of whether an SDE models SGD: the SDE is its l -> oo limit.

For a general update map z -> z + h A(z, xi) + h^2 B(z, xi) (docs/theory.md §10) the same construction on
the increment of order h,

    z <- z + (h / l) (w_+ A(z, xi) + w_- A(z, xi')),   t <- t + h / l,

has mean h a / l and covariance h^2 S / l per step, hence drift a and noise sqrt(h) S^{1/2}: the order-1
SME of the map. For SGD (A = -grad f) this is the paper's SVAG exactly; for RMSprop and Adam it uses the
first-order increment (v is not updated before the step at order h), which is what the order-1 SME models.
Its amplified noise can push v below 0 (w_- < 0), as the SME's noise can: such paths are reported as a
:class:`smfsym.BlowUpError` naming this, or masked and counted with ``RunOptions(on_nonfinite="mask")``.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import sympy as sp

from .._checks import numeric_values
from ..backends import get_backend
from ..data.samplers import samplers_for
from ..montecarlo.checks import CHAIN_REMEDY, BlowUpError, check_int, check_positive, check_steps
from ..montecarlo.driver import Job, Paths, run
from ..montecarlo.grid import StepGrid
from ..montecarlo.options import RunOptions, SaveAt, run_settings
from ..montecarlo.result import SimulationResult
from ..montecarlo.seeds import resolve_seed
from ..simulation.device_sgd import _DeviceSampler
from ..simulation.sde import check_save_steps, prepare_x0
from ..symbolic.lambdify import CompiledExprs
from ..symbolic.problem import Problem
from .update_map import EXPANSIONS, UpdateMap, sgd_map

__all__ = ["simulate_svag", "svag_weights"]


def svag_weights(l: int) -> tuple:
    """(w_+, w_-) = ((1 + sqrt(2l - 1)) / 2, (1 - sqrt(2l - 1)) / 2): sum 1, sum of squares l.

    Examples
    --------
    >>> svag_weights(1)
    (1.0, 0.0)
    >>> w = svag_weights(5); round(w[0] + w[1], 12), round(w[0]**2 + w[1]**2, 12)
    (1.0, 5.0)
    """
    l = check_int(l, "l")
    r = float(np.sqrt(2 * l - 1))
    return (1 + r) / 2, (1 - r) / 2


class SvagStep:
    """One SVAG step on a batch of states (picklable through :class:`SvagTask`)."""

    def __init__(self, umap: UpdateMap, h: float, l: int, values: Mapping):
        self.samplers = samplers_for(umap.problem.laws, values)
        first = [s for smp in self.samplers for s in smp.symbols]
        second = [sp.Symbol(f"_svag_{s.name}") for s in first]  # fixed names: reproducible compilation
        wp, wm = svag_weights(l)
        A2 = umap.A.xreplace(dict(zip(first, second)))
        k = sp.Float(h / l)
        new = [z + k * (sp.Float(wp) * a1 + sp.Float(wm) * a2) for z, a1, a2 in zip(umap.state, umap.A, A2)]
        self.update = CompiledExprs(new, umap.state, dict(values), first + second)

    def _draw(self, gens, sizes) -> list:
        cols = []
        for smp in self.samplers:
            k = len(smp.symbols)
            cols += list(np.concatenate([smp(g, s).reshape(k, s) for g, s in zip(gens, sizes)], axis=1))
        return cols

    def __call__(self, X, h, gens, sizes):
        cols = self._draw(gens, sizes) + self._draw(gens, sizes)  # xi, then an independent xi'
        if X.ndim == 3:  # n starts sharing their samples
            cols = [c[:, None] for c in cols]
        return self.update.evaluate(list(np.moveaxis(X, -1, 0)), cols)


class DeviceSvagStep:
    """:class:`SvagStep` on an array back end (:mod:`smfsym.backends`): the two independent samples of a step
    drawn on the device from each seed block's stream (xi, then xi'), the update lambdified for the back end."""

    def __init__(self, umap: UpdateMap, h: float, l: int, values: Mapping, backend):
        self.backend, self.xp = backend, backend.xp
        self.samplers = [_DeviceSampler(law, values, backend) for law in umap.problem.laws]
        first = [s for smp in self.samplers for s in smp.symbols]
        second = [sp.Symbol(f"_svag_{s.name}") for s in first]
        wp, wm = svag_weights(l)
        A2 = umap.A.xreplace(dict(zip(first, second)))
        k = sp.Float(h / l)
        new = [z + k * (sp.Float(wp) * a1 + sp.Float(wm) * a2) for z, a1, a2 in zip(umap.state, umap.A, A2)]
        self.update = CompiledExprs(new, umap.state, dict(values), first + second, backend=backend)

    def _draw(self, gens, sizes, ndim: int) -> list:
        xp, cols = self.xp, []
        for smp in self.samplers:
            parts = [smp(g, s, 1) for g, s in zip(gens, sizes)]  # (k, s, 1) each
            arr = parts[0] if len(parts) == 1 else xp.concat(parts, axis=1)
            cols += [arr[j, :, 0] if ndim == 2 else arr[j, ...] for j in range(arr.shape[0])]  # (P,) or (P, 1)
        return cols

    def __call__(self, X, h, gens, sizes):
        cols = self._draw(gens, sizes, X.ndim) + self._draw(gens, sizes, X.ndim)  # xi, then an independent xi'
        out = self.update.evaluate_list([X[..., i] for i in range(X.shape[-1])] + cols, mean_vals=[],
                                        shape=tuple(X.shape[:-1]))
        return self.xp.stack(out, axis=-1)


class SvagTask:
    """What a worker needs to rebuild the SVAG step."""

    def __init__(self, umap: UpdateMap, h: float, l: int, values: Mapping):
        self.umap, self.h, self.l, self.values = umap, h, l, dict(values)

    def build(self) -> SvagStep:
        return SvagStep(self.umap, self.h, self.l, self.values)


def _as_map(umap_or_problem) -> UpdateMap:
    if isinstance(umap_or_problem, UpdateMap):
        return umap_or_problem
    if isinstance(umap_or_problem, Problem):
        return sgd_map(umap_or_problem)
    raise TypeError(f"`umap_or_problem` must be a smfsym UpdateMap or Problem (SGD); got "
                    f"{type(umap_or_problem).__name__}.")


def simulate_svag(umap_or_problem: Any, l: int, z0, t_end: float, eta: float, *, n_paths: int = 10_000, seed=None,
                  save_at=None, values: Mapping | None = None, options: RunOptions | None = None) -> SimulationResult:
    r"""Simulate SVAG with parameter ``l`` up to time ``t_end`` (Li, Malladi, Arora 2021; module docstring).

    Parameters
    ----------
    umap_or_problem : UpdateMap or Problem
        The optimizer (a Problem means SGD, :func:`~smfsym.optimizers.update_map.sgd_map`).
    l : int
        The variance amplification, l >= 1 (l = 1 is the optimizer's first-order step itself).
    z0 : array_like (dim,) or (n, dim)
        Start (n starts share their samples).
    t_end : float
        Horizon in the map's time t = k h (h = eta, or sqrt(eta)); l t_end / h must be an integer.
    eta : float
        The learning rate of the map (its SME's eta); SVAG steps are h / l.
    n_paths, seed, values, options :
        As for :func:`smfsym.simulate_update_map` (``RunOptions(backend=...)`` included: the steps and both
        samples of each step on the back end's device). ``save_at``: step numbers, or a :class:`~smfsym.SaveAt`
        with ``at=`` step numbers and ``functions=``.

    Returns
    -------
    SimulationResult
        ``t`` in the map's time; ``extra`` records ``l``, ``eta`` and the steps.

    Examples
    --------
    >>> import sympy as sp, smfsym
    >>> x = sp.Symbol("x")
    >>> p = smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x])
    >>> r = simulate_svag(p, 4, [1.0], 1.0, 0.5, n_paths=1000, seed=0)
    >>> float(r.t[-1]), r.extra["l"], int(r.extra["steps"][-1])
    (1.0, 4, 8)
    """
    (chunk_size, max_memory, max_steps, on_nonfinite, blowup_threshold, executor, progress, save_at, functions,
     store) = run_settings("simulate_svag", options, save_at, {},
                           supported=("chunk_size", "max_memory", "max_steps", "on_nonfinite", "blowup_threshold",
                                      "executor", "progress"), backends=True)
    backend = get_backend(options.backend if options is not None else "numpy")
    umap = _as_map(umap_or_problem)
    l = check_int(l, "l")
    eta, t_end = check_positive(eta, "eta"), check_positive(t_end, "t_end")
    h = eta ** (1.0 / EXPANSIONS[umap.expansion])
    check_steps(l * t_end / h, max_steps, f"`l` * `t_end` / h (SVAG steps, l = {l}, h = {h:g})",
                "lower `l` or `t_end`, or raise `max_steps`")
    n_steps = int(round(l * t_end / h))
    if n_steps < 1 or abs(n_steps * h / l - t_end) > 1e-9 * max(1.0, t_end):
        raise ValueError(f"`t_end` must be a multiple of the SVAG step h / l = {h / l:g}; got {t_end!r}.")
    n_paths = check_int(n_paths, "n_paths")
    seed = resolve_seed(seed)
    known = set(umap.problem.law_parameters) | set(umap.problem.constants) | set(umap.constants)
    vals = numeric_values(values, known)
    z0 = prepare_x0(z0, len(umap.state), "z0")
    t_sym = getattr(umap, "time_symbol", None)
    if t_sym is not None and np.any(z0[..., umap.state.index(t_sym)] <= 0):
        raise ValueError(f"`z0`: the {umap.name} map's time {t_sym} must start above 0 (its first-order "
                         f"increment is singular at t = 0).")
    idx = [n_steps] if save_at is None else check_save_steps(save_at, n_steps)
    task = SvagTask(umap, h, l, vals)
    step = task.build()
    if backend.name != "numpy":
        step = DeviceSvagStep(umap, h, l, vals, backend)
    grid = StepGrid.uniform(n_steps, h / l, idx)
    per_path = 8 * 8 * (len(umap.state) + len(step.update.data_symbols)) * (z0.shape[0] if z0.ndim == 2 else 1)
    job = Job(step=step, step_sizes=grid, save_index=idx, times=grid.times, scheme=f"svag_{umap.name}",
              dt_label=h / l, time_label="t", task=task, per_path_bytes=per_path, remedy=CHAIN_REMEDY)
    opts = RunOptions(chunk_size=chunk_size, on_nonfinite=on_nonfinite, progress=progress, max_memory=max_memory,
                      blowup_threshold=blowup_threshold, executor=executor, backend=backend)
    try:
        res = run(job, z0, paths=Paths(n_paths, seed), save=SaveAt(functions=functions, store=store), options=opts)
    except BlowUpError as exc:
        err = BlowUpError(f"SVAG of {umap.name} with l = {l}: {exc} SVAG's weight w_- is negative for l > 1, so a "
                          "state that must stay positive (the v of RMSprop and Adam) can be pushed below 0, as by "
                          "the SME's noise; RunOptions(on_nonfinite='mask') drops and counts such paths.")
        err.loss = exc.loss
        raise err from None
    res.extra.update(steps=np.array(idx), eta=eta, l=l)
    return res
