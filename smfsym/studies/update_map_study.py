r"""Weak error of an optimizer's modified equations, the optimizer written as an update map (docs/theory.md §10).

For each learning rate eta the optimizer z_{k+1} = U(z_k, xi_{k+1}; eta) runs k = t_end / h steps
(h = eta, or sqrt(eta) for ``expansion="sqrt_eta"``) by Monte Carlo (:func:`simulate_update_map`),
and each model (the gradient flows, SMEs and SMFs of :class:`UpdateMap`) is compared with it at
t = k h through E phi(Z_t), the model's solver error removed by coupled Richardson extrapolation
(:func:`smfsym.studies.richardson.coupled_expectation`, docs/theory.md §9). Errors carry standard
errors; orders are slopes of log|error| against log h (:func:`smfsym.studies.fit_order`), fitted on the
errors resolved above ``resolve`` standard errors. The result is a :class:`smfsym.studies.WeakErrorStudy`.
"""
from __future__ import annotations

import numbers
from typing import Mapping, Sequence

import numpy as np
import sympy as sp

from .._checks import numeric_values
from ..backends import get_backend
from ..symbolic.model_names import MODEL_REGISTRY
from ..data.tails import check_step_phi_tails
from ..montecarlo.checks import BlowUpError, check_int, check_positive
from ..montecarlo.options import RunOptions, SaveAt
from ..montecarlo.grid import MAX_STEPS
from .options import Numerics, study_settings
from .common import backend_meta, check_study_work, fit_order
from .weak_error_study import WeakErrorStudy
from .common import (
    _phi_function, check_increments, check_phi, check_scheme, increments_for, scheme_for, study_seed, seed_record,
    warn_if_unresolved, with_context, TAME,
)
from ..simulation.sde import prepare_x0
from .richardson import coupled_expectation
# Order (the persisted fit) through the study module: this module is a study (tests/package/test_layers.py), and
# persistence sits a layer above the studies
from .weak_error_study import Order, _mc_method, check_models
from ..optimizers.update_map import UpdateMap, simulate_update_map
from .optimizer_weak_error import study_steps

__all__ = ["update_map_weak_error", "UPDATE_MAP_MODELS"]

#: Model name -> (kind, order) of the :class:`UpdateMap` model it names.
UPDATE_MAP_MODELS = {name: ({"gf": "gradient_flow"}.get(family, family), order)
                     for name, (family, order) in MODEL_REGISTRY.items()}


def update_map_models(umap: UpdateMap, models) -> dict:
    """The SDEs :func:`update_map_weak_error` compares with the optimizer, by model name (``smfsym derive``
    prints them for a spec whose ``[check]`` names an update map)."""
    models = check_models(models, set(UPDATE_MAP_MODELS))
    return {m: getattr(umap, kind)(order) for m, (kind, order) in UPDATE_MAP_MODELS.items() if m in models}


def _check_phi(phi, umap: UpdateMap, known: set):
    """A callable on states, or a sympy expression in the state (and in constants given numbers)."""
    phi = check_phi(phi, umap.state)
    if isinstance(phi, sp.Expr):
        extra = {str(s) for s in phi.free_symbols} - {str(s) for s in umap.state} - known
        if extra:
            raise ValueError(f"`phi` must be an expression in the state {list(umap.state)}; it also contains "
                             f"{sorted(extra)} (give constants numbers with `values`).")
    return phi


def update_map_weak_error(umap: UpdateMap, phi, z0, t_end: float, etas: Sequence[float], *,
                          models: Sequence[str] = ("gf", "sme1", "sme2", "smf1", "smf2"),
                          n_paths: int = 200_000, seed=0, values: Mapping | None = None,
                          numerics: Numerics | None = None, options: RunOptions | None = None, **legacy) -> WeakErrorStudy:
    r"""Weak error of an update map's models against the optimizer itself (docs/theory.md §10).

    Parameters
    ----------
    umap : UpdateMap
        The optimizer (:func:`~smfsym.optimizers.update_map.rmsprop`, ``adam``, ``sgd_map`` or a custom map).
    phi : sympy expression in ``umap.state``, or callable on states (P, dim) -> (P,)
        The test function.
    z0 : array_like (dim,)
        The starting state (parameters, then the auxiliary variables).
    t_end : float
        Horizon in the models' time t = k h; every eta's step h must divide it.
    etas : sequence of float
        At least two distinct learning rates.
    models : sequence of str
        Among "gf", "gf2", "sme1", "sme2", "smf1", "smf2".
    n_paths, seed : Monte Carlo settings (the optimizer and the models run on independent streams
        spawned from ``seed``; n_paths >= 2).
    numerics, options : smfsym.Numerics, smfsym.RunOptions, optional
        How each error is computed and how the runs are carried out: the settings below (as
        keywords they still work for one release, with a ``DeprecationWarning``).
    dt_fraction : float in (0, 1]
        Solver step as a fraction of h (each model runs at dt and dt/2, coupled, extrapolated).
    values : mapping, optional
        Numbers for the map's symbolic constants and law parameters.
    max_path_steps : float (a field of ``options``)
        Bound on the Monte Carlo work, paths x steps over all etas (the optimizer once, each model with
        noise at dt and dt/2), as in :func:`smfsym.multipoint_rates`: estimated and refused before anything runs.
    scheme : solver name, class or instance, optional
        None: weak2 where the noise is explicit and smooth (the SMF's columns), else euler (an SME
        with a numeric matrix square root).
    increments : {"auto", "discrete", "gaussian"}
        As in :func:`smfsym.weak_error`.
    progress : bool or None
    resolve : float
        An error enters the order fit only if it exceeds ``resolve`` standard errors.

    Returns
    -------
    WeakErrorStudy
        Orders fitted in h; with ``expansion="sqrt_eta"`` the rows carry ``h`` and
        ``meta["orders_in"]`` says so.

    Examples
    --------
    >>> import sympy as sp, smfsym
    >>> from smfsym.optimizers.update_map import rmsprop
    >>> x = sp.Symbol("x")
    >>> p = smfsym.Problem((x - smfsym.normal("xi", std=sp.Rational(1, 2))) ** 2 / 2, [x])
    >>> st = update_map_weak_error(rmsprop(p, c=1), sp.Symbol("x")**2, [1.0, 1.0], 0.25, [0.125, 0.0625],
    ...                            models=["smf1"], n_paths=1000, progress=False)
    >>> len(st.rows), st.meta["optimizer"]
    (2, 'rmsprop')
    """
    settings = study_settings("update_map_weak_error", numerics, options, legacy,
                              supported=("scheme", "increments", "dt_fraction", "resolve", "progress", "backend",
                                         "max_path_steps"))
    (scheme, increments, dt_fraction, resolve, progress, backend, max_path_steps) = settings.values()
    device = get_backend(backend)
    run = RunOptions(progress=progress, backend=backend)
    if not isinstance(umap, UpdateMap):
        raise TypeError(f"`umap` must be a smfsym UpdateMap (e.g. rmsprop(problem)); got {type(umap).__name__}.")
    sqrt = umap.expansion == "sqrt_eta"
    t_end, etas, steps = study_steps(t_end, etas, "h" if sqrt else "eta")
    if steps[-1] > MAX_STEPS:
        raise ValueError(f"`etas`: {steps[-1]:,} optimizer steps at eta = {etas[-1]:g} exceed the bound "
                         f"{MAX_STEPS:,}; raise the smallest of `etas` or lower `t_end`.")
    n_paths = check_int(n_paths, "n_paths")
    if n_paths < 2:
        raise ValueError(f"`n_paths` must be at least 2 (a standard error needs two paths); got {n_paths!r}.")
    dt_fraction = check_positive(dt_fraction, "dt_fraction")
    if dt_fraction > 1:
        raise ValueError(f"`dt_fraction` must be in (0, 1] (solver step as a fraction of h); got {dt_fraction!r}.")
    root = study_seed(seed)
    if isinstance(resolve, bool) or not isinstance(resolve, numbers.Real) or not resolve > 0:
        raise ValueError(f"`resolve` must be a positive number of standard errors; got {resolve!r}.")
    solver = check_scheme(scheme)
    increments = check_increments(increments)
    models = check_models(models, set(UPDATE_MAP_MODELS))
    known = set(umap.problem.law_parameters) | set(umap.problem.constants) | set(umap.constants)
    vals = numeric_values(values, known)
    phi = _check_phi(phi, umap, {str(s) for s in vals})
    # an infinite E phi(z_k) gives finite-looking Monte Carlo means (E v^3 of RMSprop under Student-t(5) data)
    check_step_phi_tails(umap.problem, phi, umap.state, umap.update)
    z0 = prepare_x0(z0, len(umap.state), "z0", single=True)  # a copy: the caller's is not touched
    sdes = update_map_models(umap, models)
    check_study_work(max_path_steps, n_paths, steps, [m for m in models if sdes[m].n_noise], dt_fraction,
                     what=f"{umap.name}")
    f = _phi_function(phi, umap.state, vals, None if device.name == "numpy" else device)
    rows, ts = [], []
    per_eta = root.spawn(len(etas))
    for i, (eta, k) in enumerate(zip(etas, steps)):
        h = float(np.sqrt(eta)) if sqrt else eta
        t = k * h
        ts.append(t)
        s_opt, s_sde = per_eta[i].spawn(2)
        try:
            r = simulate_update_map(umap, z0, k, eta, n_paths=n_paths, seed=s_opt, values=vals,
                                    save_at=SaveAt(functions={"phi": f}, store=False), options=run)
        except BlowUpError as exc:
            raise with_context(exc, f"{umap.name} at eta = {eta:g}", TAME) from None
        opt_val, opt_se = float(r.mean("phi")[-1]), float(r.sem("phi")[-1])
        for m in models:
            rows.append(_model_row(sdes[m], m, z0, t, eta, h, f, n_paths, s_sde, dt_fraction, vals, solver,
                                   increments, run, (opt_val, opt_se), sqrt))
    orders = {}
    for m in models:
        rs = [r for r in rows if r["model"] == m]
        fit = fit_order([_h_of(r) for r in rs], [r["error"] for r in rs], [r["se"] for r in rs],
                        refs=[r["sgd"] for r in rs], resolve=resolve, what=m, stacklevel=2)
        orders[m] = Order(*fit, fit.n_used)
    meta = dict(method="montecarlo", methods=dict({m: "montecarlo" for m in models}, sgd="montecarlo"),
                n_paths=n_paths, seed=seed_record(root), x0=z0.tolist(), t_end=t_end,
                scheme=None if solver is None else solver.name, increments=increments, extrapolate=True,
                dt_fraction=dt_fraction, resolve=float(resolve), optimizer=umap.name, expansion=umap.expansion,
                backend=device.name, **{k: v for k, v in backend_meta(device).items() if k == "dtype"})
    if sqrt:
        meta["orders_in"] = "h = sqrt(eta)"
    return WeakErrorStudy(umap.problem, phi, etas, list(models), rows, orders, ts, meta=meta)


def _positivity_hint(sde) -> str:
    """Why an update map's model can leave its domain: a positive state variable (a second moment v) under a
    square root, which the model's noise, unlike the optimizer's moving average, can push below 0."""
    umap = getattr(sde, "update_map", None)
    pos = [z for z in (umap.state if umap is not None else ()) if z.is_positive
           and z != getattr(umap, "time_symbol", None)]
    if not pos:
        return ""
    return (f" The {umap.name} map's {', '.join(map(str, pos))} must stay above 0 (sqrt(v) is undefined below "
            "it); the model's noise, unlike the optimizer's moving average, can push it there when v is near 0 "
            "or its noise is large: start v further from 0, or lower eta.")


def _h_of(row: dict) -> float:
    """The expansion parameter of a row: its ``h`` when recorded (sqrt_eta maps), else eta."""
    return row.get("h", row["eta"])


def _model_row(sde, m, z0, t, eta, h, f, n_paths, seed, dt_fraction, vals, solver, increments, run, opt,
               sqrt) -> dict:
    """One row: model m's E phi(Z_t) (coupled dt / dt/2, extrapolated) against the optimizer's (value, se)."""
    slv = scheme_for(sde, solver)
    dt = h * dt_fraction
    inc = increments_for(slv, increments) if sde.n_noise else "gaussian"
    try:
        cr = coupled_expectation(sde, z0, t, eta=eta, dt=dt, n_paths=n_paths if sde.n_noise else 1, solver=slv,
                                 phi=f, seed=seed, values=vals, increments=inc, options=run)
    except BlowUpError as exc:
        where = f"model {m} ({slv.name}, dt = {dt:g} coupled with {dt / 2:g}) at eta = {eta:g}"
        hint = _positivity_hint(sde)  # first where it applies: a tamed scheme does not keep v above 0
        raise with_context(exc, where, f"{hint.strip()} If v stayed positive: {TAME}" if hint else TAME) from None
    opt_val, opt_se = opt
    if sde.n_noise:
        warn_if_unresolved(f"E phi of {m} at eta = {eta:g}", cr["value"], cr["se"], opt_se)
    row = dict(eta=eta, t=t, model=m, sgd=opt_val, sgd_se=opt_se, value=cr["value"], value_se=cr["se"],
               error=cr["value"] - opt_val, se=float(np.hypot(cr["se"], opt_se)),
               method=_mc_method(slv.name, inc, dt, True), solver_error=abs(cr["correction"]), lost=cr["lost"],
               lost_sgd=0.0)  # blow-ups raise: nothing is masked
    if sqrt:
        row["h"] = h
    return row
