r"""n-point rate study: joint statistics of SGD runs sharing their samples against SDE n-point motions, over etas.

docs/theory.md §5 (and §4 for the exact moments). The SMF started at several points with one noise has the
block covariance eta Sigma(x^a, x^c) of SGD with shared samples, so its joint statistics converge at its weak
order; an SME with one shared Brownian motion has eta Sigma(x^a)^{1/2} Sigma(x^c)^{1/2} instead, and its
correlation error does not decay. :func:`multipoint_rates` measures both over a list of learning rates.

Exact mode (losses quadratic in the parameters, polynomial statistics): the two-point SGD chain's second
moments are a matrix power of the one-step operator on polynomials of degree <= 2 in the stacked state, and
each model's a matrix exponential of its two-point generator (docs/theory.md §4, "Several starting points").
Models whose two-point generator is not polynomial (an SME with Sigma^{1/2} = |x|) are simulated.

What to expect: products and E|X(x) - X(y)|^2 are O(1) with errors O(eta^K) for the order-K SMF. Covariances
are O(eta) with errors O(eta^2), so the correlation, a ratio of O(eta) quantities, converges at order 1 even
for the SMF (unless it is exact, as the -1 of the Rademacher example). The shared SME's correlation error
stays O(1): its increments are perfectly correlated where SGD's are not.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import sympy as sp

from ..simulation.exact import NotClosedError, affine_in_params, rational
from . import storage as _sv
from .storage import Order, StudyIO
from ..symbolic.problem import Problem
from ..montecarlo.options import RunOptions
from .options import Numerics, study_settings
from .common import (_across_signs, 
    backend_label,
    MAX_PATH_STEPS, check_common, check_horizon, check_study_work, finish_figure, fit_order, interval_text, lost_cell,
    order_label, plot_target, study_seed, seed_record,
)
from .multipoint_study import _checked_starts, multipoint
from .npoint_exact import (
    MAX_EXACT_MONOMIALS, _exact_sde, _exact_sgd, _generator, _sgd_matrix, _stacked_symbols, _two_point_sde,
)
from .weak_error_study import check_etas, check_models

__all__ = ["multipoint_rates", "MultipointRates", "NPOINT_PSI"]

#: Joint statistics with an exact (polynomial-moment) route: first two starts; first coordinate except sqdist.
NPOINT_PSI = ("product", "covariance", "correlation", "sqdist")
_MODELS = tuple(f"{b}{k}{c}" for b in ("smf", "sme") for k in (1, 2)
                for c in (("",) if b == "smf" else ("_shared", "_independent")))


@dataclass
class MultipointRates(StudyIO):
    """Result of :func:`multipoint_rates` (docs/theory.md §5).

    ``rows``: one dict per (eta, model, statistic) with the SGD value and its standard error, the model's
    value and standard error, ``error`` (model - SGD) with ``se`` (0 when exact), ``method`` ("exact" or
    "montecarlo"), ``solver_error`` (Monte Carlo: Richardson estimate from dt and dt/2; 0 when exact) and
    ``lost`` (fraction of paths lost to blow-ups). ``orders``: "model:statistic" -> fitted
    :class:`~smfsym.io.persist.Order` on the resolved errors (exact: non-zero; Monte Carlo: above ``resolve``
    standard errors); a NaN slope when fewer than two are resolved (``n_used`` counts them).
    """

    problem: Any
    starts: np.ndarray
    etas: list
    t: list
    models: list
    psi: list
    rows: list
    orders: dict
    meta: dict = field(default_factory=dict)

    _text_fields = ("problem",)

    @property
    def table(self) -> list:
        return self.rows

    def order(self, model: str, psi: str) -> Order:
        """The fitted order of ``model``'s error in statistic ``psi``."""
        key = f"{model}:{psi}"
        if key not in self.orders:
            raise KeyError(f"no order for model {model!r} and statistic {psi!r}; have {sorted(self.orders)}.")
        return self.orders[key]

    def errors(self, model: str, psi: str) -> np.ndarray:
        """The errors (model - SGD), largest eta first."""
        return np.array([r["error"] for r in self.rows if r["model"] == model and r["psi"] == psi])

    def _validate(self) -> None:
        """Refuse a loaded study whose fields disagree (:meth:`smfsym.studies.storage.StudyIO._validate`).

        ``etas`` positive, finite and distinct, ``models`` and ``psi`` distinct, ``starts`` finite; one row
        per (eta, model, statistic) and no other; standard errors >= 0 or NaN, lost fractions in [0, 1];
        ``error == value - sgd``; one order per "model:statistic", consistent and fitted on at most
        ``len(etas)`` points; ``meta.n_paths`` >= 2. Then what the study computed once: ``method`` "exact" or
        "montecarlo" (exact rows with no standard error), SGD's ``sgd`` and ``sgd_se`` the same in every row of
        one (eta, statistic), one time ``t`` per eta at the horizon ``meta.t_end``, and each order the refit of
        its rows by :func:`fit_order` with ``meta.resolve`` (not refitted where Monte Carlo errors enter and
        ``meta.resolve`` is missing).
        """
        _sv.check_grid(self.etas, "etas")
        _sv.check_names(self.models, "models")
        _sv.check_names(self.psi, "psi")
        if not np.all(np.isfinite(self.starts)):
            _sv.refuse("starts", "finite points", "non-finite entries")
        _sv.check_rows(self.rows)
        allowed = {"eta": ("etas", self.etas), "model": ("models", self.models), "psi": ("psi", self.psi)}
        for i, r in enumerate(self.rows):
            _sv.check_members(r, i, allowed)
            _sv.check_nonnegative(r, i, ("sgd_se", "value_se", "se", "solver_error", "solver_error_se"))
            _sv.check_fractions(r, i, ("lost",))
            _sv.check_difference(r, i)
        _sv.check_complete(self.rows, ("eta", "model", "psi"),
                           [(e, m, p) for e in self.etas for m in self.models for p in self.psi])
        _sv.check_order_keys(self.orders, [f"{m}:{p}" for m in self.models for p in self.psi])
        for k, o in self.orders.items():
            _sv.check_order(o, f"orders.{k}", len(self.etas))
        _sv.check_n_paths(self.meta)
        meta = self.meta if isinstance(self.meta, dict) else {}
        for i, r in enumerate(self.rows):
            if r["method"] not in ("exact", "montecarlo"):
                _sv.refuse(f"rows[{i}].method", "'exact' or 'montecarlo'", repr(r["method"]))
            _sv.check_method(r, i)
        _sv.check_shared(self.rows, ("eta", "psi"), ("sgd", "sgd_se"), "SGD runs once per eta")
        _sv.check_times(self.t, self.etas, self.rows, meta)
        resolve = meta.get("resolve")
        resolve = resolve if _sv._is_number(resolve) and not isinstance(resolve, bool) and resolve > 0 else None
        for m in self.models:
            for n in self.psi:
                rs = [r for r in self.rows if r["model"] == m and r["psi"] == n]
                ses = [r["se"] for r in rs]
                if resolve is None and any(s_ > 0 for s_ in ses):
                    continue  # Monte Carlo errors and no `meta.resolve`: the resolution rule is unknown
                # the study's own fit (multipoint_rates)
                def refit(rs=rs, ses=ses):
                    fit = fit_order([r["eta"] for r in rs], [r["error"] for r in rs], ses if any(ses) else None,
                                    refs=[r["sgd"] for r in rs], resolve=resolve if resolve is not None else 3.0)
                    return Order(*fit, fit.n_used)

                self.orders[f"{m}:{n}"] = _sv.check_refit(self.orders[f"{m}:{n}"], refit(), f"orders.{m}:{n}",
                                                          legacy=lambda refit=refit: _across_signs(refit))

    def _long_rows(self) -> list:
        out = []
        for r in self.rows:
            out.append((r["model"], r["eta"], r["psi"], r["value"], r["value_se"], r["t"]))
            out.append((r["model"], r["eta"], f"{r['psi']} error", r["error"], r["se"], r["t"]))
        for eta in self.etas:
            for p in self.psi:
                r = next(r for r in self.rows if r["eta"] == eta and r["psi"] == p)
                out.append(("sgd", eta, p, r["sgd"], r["sgd_se"], r["t"]))
        return out

    def __repr__(self) -> str:
        lines = [f"n-point statistics against SGD: {self.header()}",
                 f"{'eta':>8} {'statistic':>12} {'model':>17} {'SGD':>11} {'model':>11} {'error':>11} "
                 f"{'s.e./exact':>10} {'solver err':>10} {'lost':>6}"]
        for r in self.rows:
            se = "exact" if r["method"] == "exact" else f"{r['se']:.2e}"
            lines.append(f"{r['eta']:>8.4g} {r['psi']:>12} {r['model']:>17} {r['sgd']:>11.5g} {r['value']:>11.5g} "
                         f"{r['error']:>11.3e} {se:>10} {r['solver_error']:>10.1e} {lost_cell(r['lost']):>6}")
        lines.append("fitted orders (slope of log|error| vs log eta on resolved points, 95% interval):")
        for key, (s, lo, hi, n) in self.orders.items():
            m, _, psi = key.partition(":")
            rs = [r for r in self.rows if r["model"] == m and r["psi"] == psi]
            # a statistic whose size scales with eta has slope ~1 also when the model is wrong by 100% at every eta
            wrong = " (error >= |SGD| at every eta: a slope of the statistic's size, not convergence)" if rs and all(
                abs(r["error"]) >= abs(r["sgd"]) for r in rs) else ""
            lines.append(f"  {key:>28}: " + (f"{s:.3f}  {interval_text((s, lo, hi, n))}  ({n} etas)" if n >= 2
                                                else f"unresolved ({n} etas resolved)") + wrong)
        return "\n".join(lines)

    def header(self, sep: str = ", ") -> str:
        """What was compared: the starts, t_end and the number of paths (or "exact moments")."""
        starts = "[" + ", ".join("[" + ", ".join(f"{v:g}" for v in np.ravel(p)) + "]" for p in self.starts) + "]"
        t_end = self.meta.get("t_end", self.t[0] if self.t else None)
        n = self.meta.get("n_paths")
        paths = f"{n:,} paths" if isinstance(n, (int, np.integer)) else "Monte Carlo"
        paths += backend_label(self.meta)  # other streams, other numbers: say where they came from
        exact = self.meta.get("exact_models") or []
        if self.meta.get("method") == "exact" and set(exact) >= set(self.models):
            how = "exact moments"
        elif self.meta.get("method") == "exact":
            mc = [m for m in self.models if m not in exact]
            how = f"exact moments (SGD{''.join(', ' + m for m in exact)}), {paths} ({', '.join(mc)})"
        else:
            how = paths
        return sep.join([f"starts = {starts}", f"t_end = {t_end:g}" if t_end is not None else "t_end = ?", how])

    @property
    def n_panels(self) -> int:
        """Axes :meth:`plot` draws on (one per statistic)."""
        return len(self.psi)

    def plot(self, path=None, ax=None):
        """Log-log figure of |error| against eta, one panel per statistic, with reference slopes 1 and 2.

        ``path`` (also positional): write the figure there; ``ax``: an axis (one statistic) or a
        sequence of axes, one per statistic. Returns the figure.
        """
        fig, axes, path, own = plot_target(path, ax, n_panels=len(self.psi), figsize=(4.2, 3.8))
        etas = np.array(self.etas)
        for ax, p in zip(axes, self.psi):
            top = 0.0
            for m in self.models:
                rs = [r for r in self.rows if r["model"] == m and r["psi"] == p and abs(r["error"]) > 0]
                if not rs:
                    continue
                e = np.array([abs(r["error"]) for r in rs])
                se = np.array([r["se"] for r in rs])
                top = max(top, e.max())
                lab = f"{m} ({order_label(self.orders[f'{m}:{p}'])})"
                ax.errorbar([r["eta"] for r in rs], e, yerr=2 * se if se.any() else None, marker="o",
                            ls="--" if m.startswith("smf") else "-", capsize=3, label=lab)
            if top > 0:
                for q, ls in ((1, ":"), (2, "-.")):
                    ax.plot(etas, top * (etas / etas.max()) ** q, "k" + ls, lw=1, label=f"slope {q}")
                ax.set_xscale("log")
                ax.set_yscale("log")
            ax.set_xlabel(r"learning rate $\eta$")
            ax.set_title(f"{p}: |model - SGD|", fontsize=9)
            ax.legend(fontsize=7)
        fig.suptitle("n-point statistics against SGD\n" + self.header(), fontsize=9)
        return finish_figure(fig, path, own=own)

    def to_latex(self) -> str:
        """A booktabs table: errors per eta, per statistic and model, and the fitted orders."""
        cols = len(self.etas) + 3
        lines = [r"\begin{tabular}{ll" + "r" * (cols - 2) + "}", r"\toprule",
                 " & ".join(["statistic", "model"] + [f"$\\eta = {e:g}$" for e in self.etas] + ["order"]) + r" \\",
                 r"\midrule"]
        for p in self.psi:
            for m in self.models:
                rs = {r["eta"]: r for r in self.rows if r["model"] == m and r["psi"] == p}
                cells = [p.replace("_", r"\_"), m.replace("_", r"\_")]
                for e in self.etas:
                    r = rs[e]
                    cells.append(f"{r['error']:.3e}" if r["method"] == "exact"
                                 else f"{r['error']:.2e} $\\pm$ {r['se']:.1e}")
                o = self.orders[f"{m}:{p}"]
                cells.append(f"{o.slope:.2f} {interval_text(o, 2)}" if o.n_used >= 2 else "--")
                lines.append(" & ".join(cells) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}"]
        return "\n".join(lines)


def _check_psi(psi):
    if isinstance(psi, str) or callable(psi):
        psi = [psi]
    if not isinstance(psi, (Mapping, list, tuple)) or not len(psi):
        raise TypeError(f"`psi` must be a name, a callable, or a non-empty sequence / mapping of them; got {psi!r}.")
    out = {}
    items = psi.items() if isinstance(psi, Mapping) else [
        (p, p) if isinstance(p, str) else (getattr(p, "__name__", f"psi{i}"), p) for i, p in enumerate(psi)]
    for name, fn in items:
        if not isinstance(name, str):
            raise TypeError(f"`psi` names must be strings; got {name!r}.")
        if isinstance(fn, str):
            if fn not in NPOINT_PSI:
                raise ValueError(f"`psi` names must be among {list(NPOINT_PSI)} or callables; got {fn!r}.")
        elif not callable(fn):
            raise TypeError(f"`psi` entries must be names or callables of the joint state (P, n, d); got {fn!r}.")
        if name in out:
            raise ValueError(f"`psi` must not repeat a statistic; got {name!r} twice.")
        out[name] = fn
    return out


def multipoint_rates(problem: Problem, starts, etas: Sequence[float], t_end: float, *,
                     models: Sequence[str] = ("smf1", "smf2", "sme2_shared", "sme2_independent"),
                     psi: Any = NPOINT_PSI, n_paths: int = 100_000, seed=0, values: Mapping | None = None,
                     max_path_steps: float = MAX_PATH_STEPS, numerics: Numerics | None = None,
                     options: RunOptions | None = None, **legacy) -> MultipointRates:
    r"""Rates of n-point statistics: joint statistics of SGD with shared samples against SDE n-point motions,
    over several learning rates, with fitted orders (docs/theory.md §5).

    Parameters
    ----------
    problem : Problem
    starts : array_like (n, d)
        Starting points (n >= 2); the built-in statistics use the first two.
    etas : sequence of float
        At least two distinct learning rates. Each runs k = round(t_end / eta) steps, t = k eta.
    t_end : float
    models : sequence of str
        "smf1"/"smf2" (one cylindrical noise for all points), "sme1"/"sme2" with "_shared" (one Brownian
        motion) or "_independent" (one per point).
    psi : str, callable, or sequence / mapping of them
        "product" E[X(x_1) X(x_2)], "covariance", "correlation" (first coordinate), "sqdist"
        E|X(x_1) - X(x_2)|^2, or callables mapping the joint states (P, n, d) to per-path values (Monte
        Carlo only).
    numerics, options : smfsym.Numerics, smfsym.RunOptions, optional
        How each error is computed and how the runs are carried out: the settings below (as
        keywords they still work for one release, with a ``DeprecationWarning``).
    method : {"auto", "exact", "montecarlo"}
        "exact" needs grad f affine in the parameters, a loss polynomial in the data, batch size 1 and
        built-in statistics; a model whose two-point generator is then not polynomial (an SME with
        Sigma^{1/2} = |x|) is simulated and compared against the exact SGD values (its ``method`` says so).
        "auto" is "exact" where that holds, else "montecarlo": SGD and the models simulated per eta by
        :func:`smfsym.multipoint` (shared samples across the starts, the solver at dt and dt/2).
    n_paths, seed, dt_fraction, values, scheme, on_nonfinite, blowup_threshold, progress, backend
        As in :func:`smfsym.multipoint` (each eta gets its own child of ``seed``; the Monte Carlo cells run
        on ``backend``, the exact ones need none).
    resolve : float
        A Monte Carlo error enters the order fit only if it exceeds ``resolve`` standard errors.
    max_path_steps : float
        Bound on the Monte Carlo work, counted as paths x starts x steps over all etas (SGD once, each
        simulated model at dt and dt/2). The estimate is made before anything runs and refused above the
        bound (about 2e7 path-steps a second on one core; the default is over an hour).

    Returns
    -------
    MultipointRates

    Examples
    --------
    docs/theory.md §5: on the Rademacher problem the SMF's product error has slope 2 while the shared SME
    gets the correlation's sign wrong at every eta.

    >>> import sympy as sp, smfsym
    >>> x = sp.Symbol("x")
    >>> p = smfsym.Problem((1 + smfsym.rademacher("r")) * x**2 / 2, [x])
    >>> st = smfsym.multipoint_rates(p, [[-1.0], [1.0]], [0.1, 0.05, 0.025], 1.0, models=["smf2", "sme2_shared"],
    ...                              psi=["product", "correlation"], n_paths=4000, dt_fraction=0.25)
    >>> round(st.order("smf2", "product").slope)
    2
    >>> bool(all(st.errors("sme2_shared", "correlation") > 1.5))
    True
    """
    settings = study_settings("multipoint_rates", numerics, options, legacy,
                              supported=("method", "scheme", "dt_fraction", "resolve", "on_nonfinite",
                                         "blowup_threshold", "progress", "backend", "max_path_steps"),
                              defaults={"progress": False})
    (method, scheme, dt_fraction, resolve, on_nonfinite, blowup_threshold, progress, backend,
     options_bound) = settings.values()
    c = check_common(problem, t_end=t_end, seed=seed, n_paths=n_paths, dt_fraction=dt_fraction,
                     on_nonfinite=on_nonfinite, scheme=scheme, blowup_threshold=blowup_threshold)
    t_end = c["t_end"]
    starts = _checked_starts(starts, problem.dim)
    etas = check_etas(etas)
    models = check_models(models, _MODELS)
    fns = _check_psi(psi)
    if method not in ("auto", "exact", "montecarlo"):
        raise ValueError(f"`method` must be 'auto', 'exact' or 'montecarlo'; got {method!r}.")
    if isinstance(resolve, bool) or not isinstance(resolve, numbers.Real) or not resolve > 0:
        raise ValueError(f"`resolve` must be a positive number of standard errors; got {resolve!r}.")
    _check_values(values)
    for eta in etas:
        if t_end / eta < 0.5:
            raise ValueError(f"`t_end` = {t_end:g} is under half a step of eta = {eta:g}: SGD would take no step.")
    steps = check_horizon(t_end, etas)
    names = list(fns)
    kinds = {n: fn for n, fn in fns.items() if isinstance(fn, str)}
    why_not = _why_not_exact(problem, fns)
    if method == "exact" and why_not:
        raise NotClosedError(f"`method` = 'exact': {why_not}; use method='montecarlo'.")
    use_exact = method != "montecarlo" and why_not is None
    blocks = _stacked_symbols(problem.params, 2)
    z0 = np.concatenate([starts[0], starts[1]])
    eta_sym = sp.Symbol("eta", positive=True)
    sgd_op, exact_models = _exact_operators(problem, models, values, blocks, eta_sym) if use_exact else (None, {})
    mc_models = [m for m in models if m not in exact_models]
    bound = _check_work((max_path_steps, options_bound), c, len(starts), steps, use_exact, mc_models)
    stat_of = {n: fn for n, fn in fns.items()}
    rows, ts = [], []
    root = study_seed(seed)
    seeds = root.spawn(len(etas))
    for i, (eta, k) in enumerate(zip(etas, steps)):
        t = k * eta
        ts.append(t)
        sgd = {}
        if use_exact:
            vals = _exact_sgd(sgd_op, blocks, z0, eta, k, kinds, eta_sym)
            sgd = {n: (v, 0.0) for n, v in vals.items()}
            tr = rational(k) * rational(eta)
            for m, gen in exact_models.items():
                mv = _exact_sde(gen, z0, eta, tr, kinds)
                for n in names:
                    rows.append(dict(eta=eta, t=t, model=m, psi=n, sgd=sgd[n][0], sgd_se=0.0, value=mv[n],
                                     value_se=0.0, error=mv[n] - sgd[n][0], se=0.0, method="exact",
                                     solver_error=0.0, lost=0.0))
        if mc_models:
            mp = multipoint(problem, starts, eta=eta, t_end=t, psi=stat_of, models=mc_models, seed=seeds[i],
                            n_paths=c["n_paths"], values=values,
                            numerics=Numerics(dt_fraction=c["dt_fraction"], scheme=scheme),
                            options=RunOptions(progress=progress, on_nonfinite=on_nonfinite,
                                               blowup_threshold=blowup_threshold, backend=backend,
                                               max_path_steps=bound if np.isfinite(bound) else np.finfo(float).max))
            for m in mc_models:
                for n in names:
                    r = mp.value(m, n)
                    ref, ref_se = sgd.get(n) or (mp.value("sgd", n)["value"], mp.value("sgd", n)["se"])
                    rows.append(dict(eta=eta, t=t, model=m, psi=n, sgd=ref, sgd_se=ref_se, value=r["value"],
                                     value_se=r["se"], error=r["value"] - ref, se=float(np.hypot(r["se"], ref_se)),
                                     method="montecarlo", solver_error=r["solver_error"],
                                     solver_error_se=r["solver_error_se"],
                                     lost=max(r["lost"], mp.value("sgd", n)["lost"])))
    orders = {}
    for m in models:
        for n in names:
            rs = [r for r in rows if r["model"] == m and r["psi"] == n]
            ses = [r["se"] for r in rs]
            fit = fit_order([r["eta"] for r in rs], [r["error"] for r in rs], ses if any(ses) else None,
                            refs=[r["sgd"] for r in rs], resolve=resolve, what=f"{m} in {n}", stacklevel=2)
            orders[f"{m}:{n}"] = Order(*fit, fit.n_used)
    return MultipointRates(problem, starts, etas, ts, models, names, rows, orders,
                           meta=dict(method="exact" if use_exact else "montecarlo", exact_models=list(exact_models),
                                     n_paths=c["n_paths"], seed=seed_record(root), dt_fraction=c["dt_fraction"], t_end=t_end,
                                     resolve=float(resolve), exact_refused=why_not))


def _check_values(values) -> None:
    """``values``: None or a mapping of sympy symbols to finite real numbers."""
    if values is not None and not isinstance(values, Mapping):
        raise TypeError(f"`values` must be a mapping symbol -> number; got {type(values).__name__}.")
    for key, v in (values or {}).items():
        if not isinstance(key, sp.Symbol):
            raise TypeError(f"`values` keys must be sympy symbols; got {key!r}.")
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)):
            raise ValueError(f"`values` must map to finite real numbers; got {key} = {v!r}.")


def _why_not_exact(problem, fns: dict) -> str | None:
    """Why the two-point moments have no exact route here (None when they do)."""
    if not all(isinstance(fn, str) for fn in fns.values()):
        return "user-supplied statistics have no exact route"
    if problem.batch_size != 1 or not problem.is_polynomial or not affine_in_params(problem):
        return ("exact n-point moments need grad f affine in the parameters, a loss polynomial in the data and "
                "batch size 1")
    n_mono = math.comb(2 * problem.dim + 2, 2)
    if n_mono > MAX_EXACT_MONOMIALS:
        return (f"the two-point moments of degree 2 in d = {problem.dim} span {n_mono} monomials, over the "
                f"exact limit of {MAX_EXACT_MONOMIALS}")
    return None


def _check_work(bounds: tuple, c: dict, n_starts: int, steps, use_exact: bool, mc_models: list) -> float:
    """Refuse, before it starts, Monte Carlo work over ``max_path_steps`` path-steps: ``bounds`` holds the
    keyword's and ``RunOptions.max_path_steps`` (as the other studies take it); one of them set. SGD is
    simulated wherever a model is (:func:`multipoint` runs it beside them), also when its moments are exact.
    Returns the bound used (passed on to :func:`multipoint`, which checks its one eta's share)."""
    max_path_steps, options_bound = bounds
    if options_bound != MAX_PATH_STEPS:
        if max_path_steps != MAX_PATH_STEPS:
            raise TypeError("`max_path_steps` is given twice, as a keyword and in `options`; give it in `options`.")
        max_path_steps = options_bound
    check_study_work(max_path_steps, c["n_paths"], steps, mc_models, c["dt_fraction"], n_starts=n_starts,
                     chain=bool(mc_models) or not use_exact)
    return max_path_steps


def _exact_operators(problem, models, values, blocks, eta_sym) -> tuple:
    """SGD's two-point operator and the generators of the models whose two-point moments close (the
    others are simulated)."""
    sgd_op = _sgd_matrix(problem, blocks, values, eta_sym)
    exact_models = {}
    for m in models:
        try:
            exact_models[m] = _generator(_two_point_sde(problem, m, values))
        except NotClosedError:
            pass  # simulated
    return sgd_op, exact_models
