"""Coupled Richardson extrapolation of a solver's weak error (Talay-Tubaro; docs/theory.md §9).

A weak-error study compares E phi(X_t) of a model with SGD at errors of size eta or eta^2.
A solver of weak order p adds its own error C dt^p; with dt = eta/16 and an Euler scheme on
an order-2 model that is comparable with the error being measured (double well, eta = 0.1:
a solver error of about 5e-4 against a model error of about 1.7e-3). Running the solver at dt
and dt/2 and extrapolating, E_fine + (E_fine - E_coarse) / (2^p - 1), removes the C dt^p term.

The coarse and the fine solution are simulated *together*: each coarse step uses the sum of
the two fine increments, (Z_1 + Z_2)/sqrt(2), so the two are strongly correlated and the
extrapolated estimator (1 + c) phi(X_fine) - c phi(X_coarse), c = 1/(2^p - 1), costs about the
standard error of the fine one alone.

The extrapolation needs more than the weak order of each run: the coarse and the fine error
must share their leading constant C, and C reads one more moment of the increments than the
order does (docs/theory.md §9). Gaussian sums are Gaussian: exact. Euler's C reads E Z^4: the
scaled sum of two +-1 variables has E Z^4 = 2 where the fine +-1 have 1 (dX = dW, phi = x^4:
both runs give 3 - dt, and so would the extrapolation), so a coupled Euler or tamed run with
``increments="discrete"`` draws three-point variables, whose scaled sums match the normal
moments up to order 5 like the variables themselves (:meth:`Solver.coupled`). Weak order 2's C
reads E Z^6 of the three-point dW (9; 13.5 for the sums; 15 for normals) and fourth moments of
its auxiliary two-point draws: with discrete increments the extrapolation removes the dt^2 term
up to O(|sigma|^6 dt^2). For the SMEs and SMFs, whose noise is sqrt(eta) small, that is
O(eta^3 dt^2), far below the model errors a study measures; for an SDE with noise of order one,
use ``increments="gaussian"`` (the default here).
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from .._checks import numeric_values
from ..montecarlo.driver import Job, Paths, run
from ..montecarlo.options import RunOptions, SaveAt, run_settings, user_stacklevel
from ..backends import get_backend
from ..montecarlo.increments import draw_device
from ..simulation.sde import SDETask, _known_symbols, device_stepper, time_grid

__all__ = ["coupled_expectation", "coupled_run"]


class CoupledTask:
    """Picklable recipe (for executors): the coupled coarse/fine step of an :class:`SDETask`."""

    def __init__(self, task: SDETask):
        self.task = task

    def build(self) -> "CoupledStepper":
        return CoupledStepper(self.task.build())


class CoupledStepper:
    """One coarse step of size h and two fine steps of size h/2 on states ``(P, 2, d)`` = (coarse, fine)."""

    def __init__(self, inner):
        self.inner = inner

    def __call__(self, X, h, gens, sizes):
        inner = self.inner
        solver, nsde, m, k, sub = inner.solver, inner.nsde, inner.m, inner.k, inner.sub
        out = np.empty_like(X)
        if not m:
            zero = np.zeros((X.shape[0], k, 0))
            out[:, 0] = solver.step(nsde, X[:, 0], h, zero)
            out[:, 1] = solver.step(nsde, solver.step(nsde, X[:, 1], h / 2, zero), h / 2, zero)
            return out
        lo = 0
        for g, s in zip(gens, sizes):
            for a in range(0, s, sub):
                q = min(sub, s - a)
                # the stepper's draw is a view of a buffer its next draw reuses: keep a copy (same layout)
                z1 = inner.draw(g, q).copy(order="K")
                z2 = inner.draw(g, q)
                fine = solver.step(nsde, X[lo:lo + q, 1], h / 2, z1)
                out[lo:lo + q, 1] = solver.step(nsde, fine, h / 2, z2)
                out[lo:lo + q, 0] = solver.step(nsde, X[lo:lo + q, 0], h, (z1 + z2) * np.sqrt(0.5))
                lo += q
        return out


class DeviceCoupledStepper:
    """:class:`CoupledStepper` on an array back end: each seed block draws its two fine increments in turn
    (so a block's numbers do not depend on its chunk); the coarse step takes their scaled sum."""

    def __init__(self, inner):
        self.inner = inner

    def __call__(self, X, h, gens, sizes):
        inner = self.inner
        dev, xp = inner.dev, inner.backend.xp
        step = getattr(dev, inner.scheme)
        z1 = z2 = None
        if inner.m:
            z1 = draw_device(inner.backend, gens, sizes, inner.k, inner.m, inner.discrete)
            z2 = draw_device(inner.backend, gens, sizes, inner.k, inner.m, inner.discrete)
        h = float(h)
        fine = step(step(X[:, 1, ...], h / 2, z1), h / 2, z2)
        coarse = step(X[:, 0, ...], h, None if z1 is None else (z1 + z2) * math.sqrt(0.5))
        return xp.stack([coarse, fine], axis=1)


class _Part:
    """phi of the fine state, and of the extrapolation / difference (picklable, for executors)."""

    def __init__(self, phi, c: float, kind: str):
        self.phi, self.c, self.kind = phi, c, kind

    def __call__(self, X):
        fine, coarse = self.phi(X[:, 1, ...]), self.phi(X[:, 0, ...])
        if self.kind == "fine":
            return fine
        if self.kind == "diff":
            return fine - coarse
        return (1.0 + self.c) * fine - self.c * coarse


def _coupled_settings(caller: str, options, save_at, legacy: dict) -> tuple:
    """``(RunOptions, SaveAt)`` of a coupled run from ``options``, ``save_at`` and the old keywords in
    ``legacy`` (checked by :func:`~smfsym.montecarlo.options.run_settings`; ``backend`` too). Nothing is
    stored unless asked (the default of the old ``store=False``)."""
    legacy = dict(legacy)
    backend = legacy.pop("backend", None)
    if backend is not None:
        if options is not None:
            raise TypeError("`backend` is given twice, as a keyword and in `options`; give it in `options`.")
        warnings.warn(f"{caller}(backend=...): run settings go in `options=smfsym.RunOptions(backend=...)`; the "
                      "keywords go in the next release.", DeprecationWarning, stacklevel=user_stacklevel())
    (chunk_size, max_memory, max_steps, on_nonfinite, blowup_threshold, executor, progress, at, functions,
     store) = run_settings(caller, options, save_at, legacy, backends=True)
    base = options if options is not None else RunOptions(backend="numpy" if backend is None else backend)
    run_options = base.replace(chunk_size=chunk_size, max_memory=max_memory, max_steps=max_steps,
                               on_nonfinite=on_nonfinite, blowup_threshold=blowup_threshold, executor=executor,
                               progress=progress)
    if not isinstance(save_at, SaveAt) and "store" not in legacy:
        store = False
    return run_options, SaveAt(at=at, functions=functions, store=store)


def coupled_run(sde, x0, t_end: float, *, eta: float, dt: float, n_paths: int, solver, seed, values=None,
                increments: str = "gaussian", save_at: SaveAt | None = None, options: RunOptions | None = None,
                **legacy):
    """The coupled coarse (``dt``) / fine (``dt/2``) run of ``sde`` from ``x0`` (see the module docstring).

    ``x0`` is one start ``(d,)`` or the starts of an n-point motion ``(n, d)``; the states are
    ``(P, 2, *x0.shape)`` with index 0 the coarse and 1 the fine solution, both driven by the same
    increments. ``save_at`` (a :class:`~smfsym.SaveAt`: times, streamed ``functions``, ``store``; by
    default the end, nothing stored) and ``options`` (a :class:`~smfsym.RunOptions`; its ``backend`` an
    array back end of :mod:`smfsym.backends`, whose arrays ``functions`` then get) as in
    :func:`smfsym.simulate`. The old keywords (``progress``, ``executor``, ``on_nonfinite``,
    ``blowup_threshold``, ``backend``, ``functions``, ``store``) still work for one release (a
    ``DeprecationWarning``, the same numbers). Returns the engine's :class:`~smfsym.engine.SimulationResult`.
    """
    run_options, save = _coupled_settings("coupled_run", options, save_at, legacy)
    if sde.n_noise and n_paths < 2:
        raise ValueError(f"`n_paths` must be at least 2 for a noisy model (a standard error needs two paths); "
                         f"got {n_paths!r}.")
    vals = numeric_values(values, _known_symbols(sde))
    vals[sde.eta] = float(eta)
    x0 = np.asarray(x0, dtype=float)
    grid = time_grid(t_end, dt, save.at, run_options.max_steps)
    if increments == "discrete":  # the kinds whose coarse sums keep the fine step's error constant
        solver = solver.coupled()
    task = CoupledTask(SDETask(sde, vals, solver, increments))
    stepper = task.build()
    inner = stepper.inner
    per_path = 2 * (8 * x0.size * 24 + 8 * inner.k * min(inner.m, inner.sub * inner.k * inner.m))
    job = Job(step=stepper, step_sizes=grid, save_index=grid.save_index, times=grid.times,
              scheme=f"{solver.name} coupled", dt_label=float(dt), task=task, per_path_bytes=per_path)
    backend = get_backend(run_options.backend)
    if backend.name != "numpy":
        inner = device_stepper(sde, vals, solver, increments, backend)
        # two fine increments and their sum, three steps: twice one path's bound on the stacked states
        job = job._replace(step=DeviceCoupledStepper(inner), task=None,
                           per_path_bytes=per_path + 2 * inner.dev.per_path_bytes(np.stack([x0, x0])))
    return run(job, np.stack([x0, x0]), paths=Paths(n_paths, seed),
               save=SaveAt(functions=save.functions, store=save.store), options=run_options)


def coupled_expectation(sde, x0, t_end: float, *, eta: float, dt: float, n_paths: int, solver, phi, seed,
                        values=None, increments: str = "gaussian", options: RunOptions | None = None,
                        **legacy) -> dict:
    """E phi(X_t) extrapolated from a coupled run at ``dt`` and ``dt/2`` (see the module docstring).

    ``x0`` is one starting point ``(d,)``; ``phi`` maps states ``(P, d)`` to ``(P,)``.
    Returns ``value``/``se`` (extrapolated), ``fine``/``fine_se`` (at dt/2),
    ``correction``/``correction_se`` (value - fine: the fine run's estimated solver error,
    removed) and ``lost`` (fraction of masked paths). ``options`` as for :func:`coupled_run` (the old
    keywords ``progress``, ``executor``, ``on_nonfinite``, ``blowup_threshold`` and ``backend`` still work
    for one release, with a ``DeprecationWarning``).

    Examples
    --------
    A noise-free linear ODE: Euler's error at dt/2 is O(dt), the extrapolation's O(dt^2).

    >>> import sympy as sp, smfsym
    >>> from smfsym.numerics.solvers import get_solver
    >>> x = sp.Symbol("x")
    >>> gf = smfsym.gradient_flow(smfsym.Problem(x**2 / 2 + 0 * smfsym.normal("z"), [x]))
    >>> r = coupled_expectation(gf, [1.0], 1.0, eta=0.1, dt=0.1, n_paths=1, solver=get_solver("euler"),
    ...                         phi=lambda X: X[:, 0], seed=0, options=smfsym.RunOptions(progress=False))
    >>> bool(abs(r["value"] - np.exp(-1)) < 0.1 * abs(r["fine"] - np.exp(-1)))
    True
    """
    bad = [k for k in legacy if k in ("functions", "store")]
    if bad:  # what a coupled expectation saves is its own
        raise TypeError(f"coupled_expectation() got an unexpected keyword argument {bad[0]!r}")
    run_options, _ = _coupled_settings("coupled_expectation", options, None, legacy)
    c = 1.0 / (2.0 ** solver.weak_order - 1.0)
    fns = {kind: _Part(phi, c, kind) for kind in ("value", "fine", "diff")}
    res = coupled_run(sde, x0, t_end, eta=eta, dt=dt, n_paths=n_paths, solver=solver, seed=seed, values=values,
                      increments=increments, save_at=SaveAt(functions=fns, store=False), options=run_options)
    # one path only for a noise-free model (coupled_run refuses it otherwise): its mean is exact
    sem = (lambda name: float(res.sem(name)[-1])) if n_paths > 1 else (lambda name: 0.0)
    return dict(value=float(res.mean("value")[-1]), se=sem("value"), fine=float(res.mean("fine")[-1]),
                fine_se=sem("fine"), correction=c * float(res.mean("diff")[-1]), correction_se=c * sem("diff"),
                lost=res.lost_fraction)
