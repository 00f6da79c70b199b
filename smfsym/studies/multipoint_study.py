"""Multi-point statistics: SGD runs that share their samples against SDE n-point motions.

docs/theory.md §5. Each SDE model is run at dt and dt/2 *coupled* (each coarse step
uses the sum of the two fine increments / sqrt 2, as in :mod:`.richardson`), so the
solver's own error (Richardson) is measured with little Monte Carlo noise and
reported, with its standard error, next to the model's deviation from SGD: a
discretisation bias is never read as a model error.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from ..montecarlo.checks import BlowUpError, check_positive
from ..montecarlo.options import RunOptions, SaveAt
from . import storage as _sv
from .storage import StudyIO
from ..symbolic.problem import Problem
from ..simulation.sgd import simulate_sgd
from .options import Numerics, study_settings
from .common import (
    backend_label,
    backend_meta,
    ProgressLines, build_model, check_common, check_horizon, check_increments, check_study_work, finish_figure,
    increments_for,
    lost_cell, plot_target, scheme_for, study_seed, seed_record, with_context,
)
from .richardson import coupled_run
from ..montecarlo.executors import check_executor

__all__ = ["multipoint", "MultipointStudy", "PSI"]

def _mean_se(v):
    v = np.asarray(v, dtype=float)
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(v.size))


def _first(X):
    return X[:, 0, 0], X[:, 1, 0]


def _product(X):
    a, b = _first(X)
    return a * b


def _sqdist(X):
    return ((X[:, 0] - X[:, 1]) ** 2).sum(-1)


def _same_sign(X):
    a, b = _first(X)
    return (np.sign(a) == np.sign(b)).astype(float)


def _centred_product(X):
    # influence function of the sample covariance: (a - mean a)(b - mean b)
    a, b = _first(X)
    return (a - a.mean()) * (b - b.mean())


def _stat_product(X):
    return _mean_se(_product(X))


def _stat_sqdist(X):
    return _mean_se(_sqdist(X))


def _stat_covariance(X):
    return _mean_se(_centred_product(X))


def _stat_correlation(X):
    a, b = _first(X)
    if not (a.std() > 0 and b.std() > 0):
        return float("nan"), float("nan")
    if a.size < 3:  # two paths: the correlation is +-1 whatever the law, and nothing measures its spread
        return float(np.corrcoef(a, b)[0, 1]), float("nan")
    # the delta method's standard error, from the paths' influences: Fisher's (1 - rho^2)/sqrt(n - 3) holds
    # for normal pairs only (2.3x too small on log-normal ones, which n-point motions produce)
    return float(np.corrcoef(a, b)[0, 1]), _mean_se(_correlation_influence(X))[1]


def _stat_same_sign(X):
    return _mean_se(_same_sign(X))


def _correlation_influence(X):
    """Per-path influence of the sample correlation (delta method): u v - rho (u^2 + v^2) / 2, u, v standardised."""
    a, b = _first(X)
    if not (a.std() > 0 and b.std() > 0):
        return np.full(a.shape, np.nan)
    u, v = (a - a.mean()) / a.std(), (b - b.mean()) / b.std()
    rho = float(np.mean(u * v))
    return u * v - rho * (u**2 + v**2) / 2


#: Built-in statistics of the joint state (P, n, d): name -> (function returning (value, se), description).
PSI = {
    "product": (_stat_product, "E[X(x_1) X(x_2)] (first coordinate)"),
    "covariance": (_stat_covariance, "Cov(X(x_1), X(x_2)) (first coordinate)"),
    "correlation": (_stat_correlation, "Corr(X(x_1), X(x_2)) (first coordinate)"),
    "sqdist": (_stat_sqdist, "E|X(x_1) - X(x_2)|^2"),
    "same_sign": (_stat_same_sign, "P(sign X(x_1) = sign X(x_2))"),
}

#: Per-path influence values of each built-in statistic: the statistic moves by their mean to first order,
#: so the standard error of a difference of one statistic on two coupled samples (the solver's coarse and
#: fine solutions) is the standard error of the mean of the paths' differences of influences.
_INFLUENCE = {"product": _product, "covariance": _centred_product, "correlation": _correlation_influence,
              "sqdist": _sqdist, "same_sign": _same_sign}


class _Statistic:
    """One statistic of the joint state: its value with a standard error, and per-path influences."""

    def __init__(self, value_se, influence):
        self.value_se, self.influence = value_se, influence

    def __call__(self, X):
        return self.value_se(X)

    def difference(self, fine, coarse) -> tuple:
        """(stat(fine) - stat(coarse), its standard error) on coupled samples (the same paths, in order)."""
        d = self.value_se(fine)[0] - self.value_se(coarse)[0]
        return float(d), _mean_se(self.influence(fine) - self.influence(coarse))[1]


def _user_statistic(f):
    return _Statistic(lambda X: _mean_se(f(X)), lambda X: np.asarray(f(X), dtype=float))


def _z(v, s, ref, ref_se):
    if abs(v - ref) <= 1e-12 * max(1.0, abs(ref)):
        return 0.0  # equal up to rounding (e.g. correlations of exactly -1)
    den = float(np.hypot(s, ref_se))
    if den == 0:
        return 0.0 if v == ref else float("inf")
    return (v - ref) / den


@dataclass
class MultipointStudy(StudyIO):
    """Result of :func:`multipoint`.

    ``rows``: per statistic and model, the value (at dt/2), its standard error, the
    z-score against SGD, the solver's own error (Richardson estimate from the coupled
    dt and dt/2 solutions; 0 for SGD) with its standard error (``solver_error_se``) and
    the fraction of paths lost to blow-ups (``lost``). ``meta``: the path count, horizon
    and seed.
    """

    rows: list
    starts: np.ndarray
    eta: float
    t: float
    meta: dict = field(default_factory=dict)

    @property
    def table(self):
        return self.rows

    def header(self, sep: str = ", ") -> str:
        """What was compared: the statistics, the starts, eta, t_end and the number of paths."""
        psis = list(dict.fromkeys(r["psi"] for r in self.rows))
        starts = "[" + ", ".join("[" + ", ".join(f"{v:g}" for v in np.ravel(p)) + "]" for p in self.starts) + "]"
        n = self.meta.get("n_paths")
        paths = f"{n:,} paths" if isinstance(n, (int, np.integer)) else "Monte Carlo"
        paths += backend_label(self.meta)  # other streams, other numbers: say where they came from
        return sep.join([f"psi = {', '.join(psis)}", f"starts = {starts}", f"eta = {self.eta:g}",
                         f"t_end = {self.meta.get('t_end', self.t):g}", paths])

    @property
    def n_panels(self) -> int:
        """Axes :meth:`plot` draws on (one per statistic)."""
        return len(dict.fromkeys(r["psi"] for r in self.rows))

    def plot(self, path=None, ax=None):
        """Each statistic per model with 2 standard errors, SGD's value as a band; one panel per statistic.

        ``path`` (also positional): write the figure there; ``ax``: an axis (one statistic) or a
        sequence of axes, one per statistic. Returns the figure.
        """
        psis = list(dict.fromkeys(r["psi"] for r in self.rows))
        models = [m for m in dict.fromkeys(r["model"] for r in self.rows) if m != "sgd"]
        fig, axes, path, own = plot_target(path, ax, n_panels=len(psis), figsize=(4.2, 3.8))
        for ax_, p in zip(axes, psis):
            sgd = self.value("sgd", p)
            ax_.axhspan(sgd["value"] - 2 * sgd["se"], sgd["value"] + 2 * sgd["se"], color="0.85", label="SGD +- 2 s.e.")
            ax_.axhline(sgd["value"], color="k", lw=1)
            for i, m in enumerate(models):
                r = self.value(m, p)
                ax_.errorbar([i], [r["value"]], yerr=[2 * r["se"]], marker="o", capsize=4, ls="none",
                             label=f"{m} (z = {r['z']:.1f})")
            ax_.set_xticks(range(len(models)))
            ax_.set_xticklabels(models, rotation=20, fontsize=8)
            ax_.set_title(p, fontsize=9)
            ax_.legend(fontsize=7)
        fig.suptitle("multi-point statistics against SGD\n" + self.header(), fontsize=9)
        return finish_figure(fig, path, own=own)

    def _validate(self) -> None:
        """Refuse a loaded study whose fields disagree (:meth:`smfsym.studies.storage.StudyIO._validate`).

        ``eta`` positive and finite, ``t`` finite and >= 0, ``starts`` finite; at least one row; one row per
        (statistic, model) of the rows, SGD's included (each model is compared with it), statistics and
        models among ``meta.psi`` and ``meta.models`` where stored; standard errors >= 0 or NaN, lost
        fractions in [0, 1]; ``meta.n_paths`` >= 2; ``t`` the horizon ``meta.t_end`` where stored.
        """
        _sv.check_positive(self.eta, "eta")
        if not (np.isfinite(self.t) and self.t >= 0):
            _sv.refuse("t", "a finite time >= 0", self.t)
        if not np.all(np.isfinite(self.starts)):
            _sv.refuse("starts", "finite points", "non-finite entries")
        _sv.check_rows(self.rows)
        meta = self.meta if isinstance(self.meta, dict) else {}
        allowed = {}
        if isinstance(meta.get("psi"), list):
            allowed["psi"] = ("meta.psi", meta["psi"])
        if isinstance(meta.get("models"), list):
            allowed["model"] = ("meta.models", ["sgd", *meta["models"]])
        for i, r in enumerate(self.rows):
            _sv.check_members(r, i, allowed)
            _sv.check_nonnegative(r, i, ("se", "solver_error", "solver_error_se"))
            _sv.check_fractions(r, i, ("lost",))
        psis = list(dict.fromkeys(r["psi"] for r in self.rows))
        models = list(dict.fromkeys(["sgd", *(r["model"] for r in self.rows)]))
        _sv.check_complete(self.rows, ("psi", "model"), [(p, m) for m in models for p in psis])
        _sv.check_n_paths(meta)
        _sv.check_time(self.t, "t", meta.get("t_end"))  # SGD's k eta steps reach t_end (eta divides it)
        # no orders here, and no `method`: the rows' values are Monte Carlo means with nothing to refit

    def _long_rows(self) -> list:
        return [(r["model"], self.eta, r["psi"], r["value"], r["se"], self.t) for r in self.rows]

    def value(self, model, psi):
        return next(r for r in self.rows if r["model"] == model and r["psi"] == psi)

    def __repr__(self):
        lines = [f"multi-point statistics against SGD: {self.header()}",
                 f"{'statistic':>12} {'model':>18} {'value':>12} {'s.e.':>10} {'z vs SGD':>9} {'solver err':>10} "
                 f"{'lost':>7}"]
        for r in self.rows:
            z = "" if r["model"] == "sgd" else f"{r['z']:.1f}"
            se = "" if r["model"] == "sgd" else f"{r['solver_error']:.1e}"
            lines.append(f"{r['psi']:>12} {r['model']:>18} {r['value']:>12.5g} {r['se']:>10.2e} {z:>9} {se:>10} "
                         f"{lost_cell(r['lost']):>7}")
        return "\n".join(lines)

    def to_latex(self) -> str:
        psis = list(dict.fromkeys(r["psi"] for r in self.rows))
        models = list(dict.fromkeys(r["model"] for r in self.rows))
        lines = [r"\begin{tabular}{l" + "r" * (len(psis) + 1) + "}", r"\toprule",
                 " & ".join(["model"] + [p.replace("_", r"\_") for p in psis] + ["lost paths"]) + r" \\",
                 r"\midrule"]
        for m in models:
            cells = [m.replace("_", r"\_")]
            for p in psis:
                r = self.value(m, p)
                cell = f"{r['value']:.4f} $\\pm$ {r['se']:.1e}"
                if m != "sgd":
                    cell += f" (solver {r['solver_error']:.0e})"
                cells.append(cell)
            cells.append(lost_cell(self.value(m, psis[0])["lost"]).replace("%", r"\%"))
            lines.append(" & ".join(cells) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}"]
        return "\n".join(lines)


def multipoint(problem: Problem, starts, *, eta: float, t_end: float,
               psi: Any = ("covariance", "correlation", "product", "sqdist"),
               models: Sequence[str] = ("sme2_shared", "sme2_independent", "smf2"), seed=0,
               n_paths: int = 100_000, values: Mapping | None = None, numerics: Numerics | None = None,
               options: RunOptions | None = None, **legacy) -> MultipointStudy:
    """Multi-point statistics: SGD runs sharing their samples against SDE n-point motions (docs/theory.md §5).

    Parameters
    ----------
    starts : array_like (n, d)
        The starting points.
    psi : str, callable, or sequence of them / mapping name -> callable
        Statistics of the final joint state ``(P, n, d)``: built in "covariance",
        "correlation", "product", "sqdist", "same_sign" (first two points, first
        coordinate); a callable maps states to per-path values ``(P,)``.
    models : sequence of str
        "smfK" (n-point SMF, one cylindrical noise), "smeK_shared" (one Brownian
        motion for all points), "smeK_independent" (independent Brownian motions), K = 1, 2.
    numerics, options : smfsym.Numerics, smfsym.RunOptions, optional
        How each error is computed and how the runs are carried out: the settings below (as
        keywords they still work for one release, with a ``DeprecationWarning``).
    scheme : str, Solver or None
        Solver for the SDE models (None: weak2 where possible, else euler; "tamed" for stiff drifts).
        Each model runs at dt = eta * dt_fraction and dt/2, coupled (shared increments); the dt/2
        values are reported with the Richardson estimate of the solver's error (``solver_error``,
        with its standard error ``solver_error_se``).
    on_nonfinite : {"raise", "mask"}
        Passed to the simulators; masked paths are left out and their fraction reported (``lost``).
    blowup_threshold : float, optional
        Passed to the simulators: paths beyond it count as blown up (default 1e100).
    increments : {"auto", "discrete", "gaussian"}
        Increments of the SDE solvers (docs/theory.md §9). The statistics are expectations
        of the joint final state (a weak quantity), so "auto" (and "discrete") use the
        two-/three-point increments a scheme declares and Gaussian ones elsewhere;
        "gaussian" always draws normals (use it to look at single paths).
    executor : concurrent.futures.Executor or dask.distributed.Client, optional
        Run the Monte Carlo simulations on it (see :func:`smfsym.simulate`): same numbers
        as without it. The statistics ``psi`` are computed here, from the final states.

    All arguments are checked before anything runs.

    Examples
    --------
    >>> import sympy as sp, smfsym
    >>> x = sp.Symbol("x")
    >>> r = smfsym.rademacher("r")
    >>> p = smfsym.Problem((1 + r) * x**2 / 2, [x])
    >>> mp = smfsym.multipoint(p, [[-1.0], [1.0]], eta=0.1, t_end=1.0, psi="covariance", n_paths=4000)
    >>> mp.value("sme2_shared", "covariance")["value"] > 0 > mp.value("smf2", "covariance")["value"]
    True
    """
    settings = study_settings("multipoint", numerics, options, legacy,
                              supported=("scheme", "increments", "dt_fraction", "on_nonfinite", "blowup_threshold",
                                         "executor", "progress", "backend", "max_path_steps"))
    (scheme, increments, dt_fraction, on_nonfinite, blowup_threshold, executor, progress,
     backend, max_path_steps) = settings.values()
    c = check_common(problem, t_end=t_end, seed=seed, n_paths=n_paths, dt_fraction=dt_fraction,
                     on_nonfinite=on_nonfinite, scheme=scheme, blowup_threshold=blowup_threshold)
    t_end, n_paths, dt_fraction, solver = c["t_end"], c["n_paths"], c["dt_fraction"], c["solver"]
    blow = dict(on_nonfinite=on_nonfinite, blowup_threshold=c["blowup_threshold"])
    if executor is not None:
        executor = check_executor(executor)
    increments = check_increments(increments)
    eta = check_positive(eta, "eta")  # it must divide t_end: checked below with the other arguments
    starts = _checked_starts(starts, problem.dim)
    fns = _statistics(psi)
    models = _checked_models(models)
    k = int(round(t_end / eta))
    if k < 1:
        raise ValueError(f"`t_end` = {t_end:g} is under half a step of `eta` = {eta:g}: SGD would take no step.")
    k, = check_horizon(t_end, [eta], "eta")
    t = k * eta
    # before anything runs: SGD's k steps and each model's coupled dt, dt/2 steps on n_paths paths of every start
    check_study_work(max_path_steps, n_paths, [k], models, dt_fraction, n_starts=len(starts),
                     remedy="lower `n_paths` or `t_end`, raise `eta`, use fewer `models` or `starts`, or raise "
                            "`options=smfsym.RunOptions(max_path_steps=...)`")
    root = study_seed(seed)
    seeds = root.spawn(len(models) + 1)
    say = ProgressLines("multipoint", 1 + len(models), progress)
    say(f"sgd eta={eta:g} ({k} steps, {n_paths} paths)")
    try:
        r = simulate_sgd(problem, starts, k, eta, n_paths=n_paths, seed=seeds[0], values=values,
                         options=RunOptions(progress=progress, executor=executor, backend=backend, **blow))
    except BlowUpError as exc:
        raise with_context(exc, f"SGD at eta = {eta:g}") from None
    finals = {"sgd": _finite(r.states[-1])}
    lost = {"sgd": r.lost_fraction}
    orders = {"sgd": 1.0}
    for mi, model in enumerate(models):
        base, _, coupling = model.partition("_")
        sde = build_model(problem, base)
        slv = scheme_for(sde, solver)
        orders[model] = slv.weak_order
        inc = increments_for(slv, increments)
        h = eta * dt_fraction
        say(f"{model} eta={eta:g} ({slv.name}, {inc} increments, dt={h:.3g} coupled with {h / 2:.3g})")
        # coarse (dt) and fine (dt/2) solutions driven by the same increments: their difference, the
        # solver's own error, is then measured with little Monte Carlo noise (docs/theory.md §9)
        kw = dict(eta=eta, dt=h, n_paths=n_paths, solver=slv, values=values, increments=inc,
                  save_at=SaveAt(store=True),
                  options=RunOptions(progress=progress, executor=executor, backend=backend, **blow))
        try:
            if coupling == "independent":
                parts = [coupled_run(sde, x_start, t, seed=sj, **kw)
                         for x_start, sj in zip(starts, seeds[mi + 1].spawn(len(starts)))]
                X = np.stack([p.states[-1] for p in parts], axis=2)  # (P, 2, n, d)
                lost[model] = max(p.lost_fraction for p in parts)
            else:
                rr = coupled_run(sde, starts, t, seed=seeds[mi + 1], **kw)
                X = rr.states[-1]
                lost[model] = rr.lost_fraction
        except BlowUpError as exc:
            raise with_context(exc, f"model {model} ({slv.name}, dt = {h:g} coupled with {h / 2:g}) "
                                    f"at eta = {eta:g}") from None
        finals[model] = _finite(X)  # (P, 2, n, d): index 0 coarse, 1 fine
    rows = []
    ref = {name: fn(finals["sgd"]) for name, fn in fns.items()}
    for model, X in finals.items():
        for name, fn in fns.items():
            if model == "sgd":
                (v, s), solver_err, solver_se = ref[name], 0.0, 0.0
            else:
                v, s = fn(X[:, 1])
                diff, diff_se = fn.difference(X[:, 1], X[:, 0])
                c = 1.0 / (2 ** orders[model] - 1)  # Richardson: the error left at dt/2
                solver_err, solver_se = abs(diff) * c, diff_se * c
            rows.append(dict(psi=name, model=model, value=v, se=s, z=_z(v, s, *ref[name]),
                             solver_error=float(solver_err), solver_error_se=float(solver_se), lost=lost[model]))
    return MultipointStudy(rows, starts, eta, t, meta=dict(n_paths=n_paths, t_end=t_end, seed=seed_record(root),
                                                           dt_fraction=dt_fraction, models=list(models),
                                                           psi=list(fns), **backend_meta(backend)))


def _checked_starts(starts, dim: int) -> np.ndarray:
    """``starts`` as a finite (n, d) array with n >= 2, or a clear error."""
    try:
        if isinstance(starts, (str, bytes)) or starts is None:
            raise TypeError
        starts = np.array(starts, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"`starts` must be numeric of shape (n, {dim}); got {starts!r}.") from None
    if starts.ndim != 2 or starts.shape[1] != dim or starts.shape[0] < 2:
        raise ValueError(f"`starts` must have shape (n, {dim}) with n >= 2; got {starts.shape}.")
    if not np.all(np.isfinite(starts)):
        raise ValueError(f"`starts` must be finite; got {starts.tolist()}.")
    return starts


def _statistics(psi) -> dict:
    """``psi`` (a name, a callable, or a sequence / mapping of them) as {name: statistic}."""
    if isinstance(psi, str) or callable(psi):
        psi = [psi]
    if not isinstance(psi, (Mapping, list, tuple)) or not len(psi):
        raise TypeError(f"`psi` must be a name, a callable, or a non-empty sequence / mapping of them; got {psi!r}.")
    fns = {}
    for p in (psi.items() if isinstance(psi, Mapping) else psi):
        name, fn = (p if isinstance(p, tuple) else (p if isinstance(p, str) else getattr(p, "__name__", f"psi{len(fns)}"), p))
        if isinstance(fn, str):
            if fn not in PSI:
                raise ValueError(f"`psi` names must be among {sorted(PSI)}; got {fn!r}.")
            fns[name] = _Statistic(PSI[fn][0], _INFLUENCE[fn])
        elif callable(fn):
            fns[name] = _user_statistic(fn)
        else:
            raise TypeError(f"`psi` entries must be names or callables; got {fn!r}.")
    return fns


def _checked_models(models) -> list:
    """The multi-point models: smf1/smf2, or sme1/sme2 with _shared/_independent noise, each once."""
    if isinstance(models, str) or not hasattr(models, "__iter__") or not list(models):
        raise TypeError(f"`models` must be a non-empty sequence of model names; got {models!r}.")
    models = list(models)
    for model in models:
        base, _, coupling = model.partition("_") if isinstance(model, str) else ("", "", "")
        if base not in ("sme1", "sme2", "smf1", "smf2") or coupling not in ("", "shared", "independent"):
            raise ValueError(
                f"`models` entries must be smf1/smf2 or sme1/sme2 with _shared/_independent; got {model!r}.")
    if len(set(models)) != len(models):
        raise ValueError(f"`models` must not repeat a model; got {models}.")
    return models


def _finite(X):
    """States of the paths that stayed finite (masked paths are NaN in stored states)."""
    return X[np.isfinite(X).reshape(X.shape[0], -1).all(axis=1)]
