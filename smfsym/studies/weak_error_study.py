"""Weak error of the models against SGD over a range of learning rates (docs/theory.md §2, §4).

Every estimate carries its standard error (or is exact), fitted orders carry
intervals, only errors resolved above the noise enter a fit, the solver's own
error is estimated (Richardson) and lost paths are reported per model and eta.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Mapping, Sequence

import numpy as np
import sympy as sp

from .._checks import numeric_values
from ..montecarlo.checks import BlowUpError
from ..montecarlo.executors import check_executor, check_picklable_functions
from ..montecarlo.options import RunOptions, SaveAt
from ..backends import get_backend
from ..montecarlo.grid import MAX_STEPS
from ..simulation.exact import (
    NotClosedError, PolynomialSpace, affine_in_params, exact_sde_mean, exact_sgd_mean, model_closes,
)
from ..data.means import is_polynomial_in
from . import storage as _sv
from .storage import Order, StudyIO
from ..symbolic.model_names import MODEL_REGISTRY
from ..symbolic.latex import _text as latex_text  # an optimizer's name in LaTeX text mode (it may hold _ or &)
from ..symbolic.problem import Problem
from ..simulation.sgd import problem_symbols, simulate_sgd
from ..simulation.sde import prepare_x0, simulate
from ..data.tails import check_phi_tails
from .options import Numerics, study_settings
from .common import (_across_signs, 
    backend_label,
    backend_meta,
    MODELS, ProgressLines, _phi_function, bind_for_exact, build_model, check_common, check_horizon, check_increments,
    check_phi, check_study_work, finish_figure, fit_order, increments_for, interval_text, lost_cell, order_label,
    orders_from_rows,
    plot_target, scheme_for, study_seed, seed_record, warn_if_unresolved, with_context,
)
from .richardson import coupled_expectation
from ..data.laws import Empirical

__all__ = ["weak_error", "WeakErrorStudy", "check_etas", "choose_methods"]


def check_etas(etas) -> list:
    """At least two distinct positive finite learning rates, largest first."""
    if isinstance(etas, (str, bytes)) or not hasattr(etas, "__iter__"):
        raise TypeError(f"`etas` must be a sequence of learning rates; got {etas!r}.")
    out = []
    for e in etas:
        if isinstance(e, (bool, np.bool_)):
            raise TypeError(f"`etas` must hold numbers; got {e!r}.")
        if isinstance(e, sp.Basic):
            if e.free_symbols:
                raise TypeError(f"`etas` must hold numbers; got the symbolic {e}.")
            e = float(e)
        if not isinstance(e, (numbers.Real, np.floating, np.integer)):
            raise TypeError(f"`etas` must hold numbers; got {e!r} ({type(e).__name__}).")
        if not math.isfinite(float(e)) or float(e) <= 0:
            raise ValueError(f"`etas` must hold positive finite learning rates; got {e!r}.")
        out.append(float(e))
    if len(out) < 2:
        raise ValueError(f"`etas` must hold at least two positive learning rates; got {out}.")
    if len(set(out)) != len(out):
        raise ValueError(f"`etas` must be distinct; got {out}.")
    return sorted(out, reverse=True)


def exact_route(problem, phi, vals, sdes: dict, method: str) -> tuple:
    """``(problem, phi, vals, sdes)`` for :func:`choose_methods`: where ``vals`` binds the constants of the
    loss and nothing else (a spec's ``constants``), the problem and phi with them substituted and the
    problem's models, whose moments are then numbers (:func:`~.common.bind_for_exact`); otherwise the
    arguments as given."""
    if method == "montecarlo":
        return problem, phi, vals, sdes
    bound = bind_for_exact(problem, phi, vals)
    if bound is None or not exact_applies(*bound, {}):
        return problem, phi, vals, sdes
    return bound[0], bound[1], {}, {m: build_model(bound[0], m) for m in sdes}


def exact_applies(problem, phi, vals) -> bool:
    """Exact moments close: grad f affine in x, polynomial phi, a numeric batch size, no numeric values
    (:func:`exact_route` binds the values it can first).

    Batches of size B > 1 are exact too: i.i.d. always, without replacement from one equally
    weighted data set (docs/theory.md §4).
    """
    phi_expr = phi if isinstance(phi, sp.Expr) else None
    B = problem.batch_size
    batch_ok = B == 1 or (B.is_Integer and (problem.sampling == "iid" or _equal_weight_data_set(problem)))
    return bool(phi_expr is not None and not (phi_expr.free_symbols - set(problem.params))
                and is_polynomial_in(phi_expr, problem.params) and affine_in_params(problem)
                and batch_ok and problem.is_polynomial and not vals)


def choose_methods(problem, phi, vals, sdes, method, eta) -> tuple:
    """Exact or Monte Carlo, for SGD and per model: ``(sgd_exact, space, {model: "exact"|"montecarlo"})``.

    SGD's moments close when :func:`exact_applies`; a model's when, in addition, its generator
    maps the polynomials of phi's degree into themselves (:func:`smfsym.simulation.exact.model_closes`).
    A model is never exact against a simulated SGD: its error would be no more exact than SGD.
    """
    sgd_exact = method != "montecarlo" and exact_applies(problem, phi, vals)
    if method == "exact" and not sgd_exact:
        raise NotClosedError("`method='exact'` needs grad f affine in x, a polynomial phi, a numeric batch size "
                             "and `values` that bind only constants of the loss (not a law's parameters); use "
                             "method='montecarlo'.")
    if not sgd_exact:
        return False, None, {m: "montecarlo" for m in sdes}
    space = PolynomialSpace(problem.params, sp.Poly(sp.expand(phi), *problem.params).total_degree())
    how = {}
    for m, sde in sdes.items():
        why = model_closes(sde, space, eta)
        if why is not None and method == "exact":
            raise NotClosedError(f"`method='exact'`: the moments of model {m} do not close ({why}); use "
                                 "method='auto' (which simulates that model) or method='montecarlo'.")
        how[m] = "exact" if why is None else "montecarlo"
    return True, space, how


def _equal_weight_data_set(problem) -> bool:

    if len(problem.laws) != 1 or not isinstance(problem.laws[0], Empirical):
        return False
    w = problem.laws[0].weights
    return float(max(w) - min(w)) <= 1e-12 * float(max(w))


def check_models(models, allowed) -> list:
    if isinstance(models, str) or not hasattr(models, "__iter__"):
        raise TypeError(f"`models` must be a sequence of model names among {sorted(allowed)}; got {models!r}.")
    models = list(models)
    bad = [m for m in models if not isinstance(m, str) or m not in allowed]
    if bad or not models:
        raise ValueError(f"`models` entries must be among {sorted(allowed)}; got {bad or models!r}.")
    if len(set(models)) != len(models):
        raise ValueError(f"`models` must not repeat a model; got {models}.")
    return models


@dataclass
class WeakErrorStudy(StudyIO):
    """Result of :func:`weak_error`.

    ``rows``: one dict per (eta, model) with the SGD and model values, the error
    (model - SGD), its standard error (0 when exact), the method, for Monte
    Carlo the solver's own error estimate, and the fractions of paths lost to
    blow-ups (``lost`` for the model, ``lost_sgd`` for SGD; 0 unless
    ``on_nonfinite='mask'``). ``orders``: model -> (slope, low, high, n_used), NaN (shown as
    "unresolved") when fewer than two errors are resolved. ``meta["methods"]``: "exact" or
    "montecarlo" per model and for "sgd"; ``meta["method"]``: "exact", "montecarlo" or "mixed".
    """

    problem: Any
    phi: Any
    etas: list
    models: list
    rows: list
    orders: dict
    t: list
    meta: dict = field(default_factory=dict)

    @property
    def table(self) -> list:
        return self.rows

    def _validate(self) -> None:
        """Refuse a loaded study whose fields disagree (:meth:`smfsym.studies.storage.StudyIO._validate`).

        ``etas`` positive, finite and distinct; ``models`` distinct; one row per (eta, model) and no other;
        standard errors >= 0 or NaN, lost fractions in [0, 1]; ``error == value - sgd``; one order per
        model, consistent and fitted on at most ``len(etas)`` points; ``meta.n_paths`` >= 2. Then what the
        study computed once: ``method`` one the studies write (exact rows with no standard error, as
        ``meta.methods`` says where stored), SGD's ``sgd``, ``sgd_se`` and ``lost_sgd`` the same in every row
        of one eta (SGD runs once per eta), one time ``t`` per eta at the horizon ``meta.t_end``, and each
        order the refit of its rows (:meth:`_refit_orders`).
        """
        _sv.check_grid(self.etas, "etas")
        _sv.check_names(self.models, "models")
        _sv.check_rows(self.rows)
        allowed = {"eta": ("etas", self.etas), "model": ("models", self.models)}
        for i, r in enumerate(self.rows):
            _sv.check_members(r, i, allowed)
            _sv.check_nonnegative(r, i, ("sgd_se", "value_se", "se", "solver_error"))
            _sv.check_fractions(r, i, ("lost", "lost_sgd"))
            _sv.check_difference(r, i)
        _sv.check_complete(self.rows, ("eta", "model"), [(e, m) for e in self.etas for m in self.models])
        _sv.check_order_keys(self.orders, self.models)
        for m, o in self.orders.items():
            _sv.check_order(o, f"orders.{m}", len(self.etas))
        _sv.check_n_paths(self.meta)
        meta = self.meta if isinstance(self.meta, dict) else {}
        methods = meta.get("methods") if isinstance(meta.get("methods"), dict) else {}
        for i, r in enumerate(self.rows):
            _sv.check_method(r, i)
            # momentum and sqrt_eta update maps fit in the chain's step h = sqrt(eta): the refit reads it
            if "h" in r and not abs(r["h"] - math.sqrt(r["eta"])) <= 1e-12 * math.sqrt(r["eta"]):
                _sv.refuse(f"rows[{i}].h", f"sqrt(eta) = {math.sqrt(r['eta'])!r}", r["h"])
            if "h" not in r and "friction" in meta:
                _sv.refuse(f"rows[{i}]", "a row with `h` = sqrt(eta) (a momentum study fits in h)", "none", "have")
            how = methods.get(r["model"])
            if how in ("exact", "montecarlo") and (r["method"] == "exact") != (how == "exact"):
                _sv.refuse(f"rows[{i}].method", f"{'exact' if how == 'exact' else 'a Monte Carlo method'}, as "
                           f"`meta.methods.{r['model']}` says", repr(r["method"]))
        _sv.check_shared(self.rows, ("eta",), ("sgd", "sgd_se", "lost_sgd"), "SGD runs once per eta")
        _sv.check_times(self.t, self.etas, self.rows, meta)
        for m, refit in self._refit_orders().items():
            self.orders[m] = _sv.check_refit(self.orders[m], refit, f"orders.{m}",
                                             legacy=lambda m=m: _across_signs(self._refit_orders)[m])

    def _refit_orders(self) -> dict:
        """model -> the order refitted from the rows by the rule of the study that wrote them, for the models whose
        rule is known from the file: weak_error and update_map_weak_error fit with :func:`fit_order` (resolution
        by ``resolved``), schedule_weak_error and momentum_weak_error (``meta.schedule`` / ``meta.friction``)
        with their ``_orders`` (a first cut at ``resolve`` standard errors, in h = sqrt(eta) for momentum).
        A Monte Carlo fit needs ``meta.resolve``; files written before it was saved are not refitted there
        (an exact fit does not depend on it)."""
        import warnings

        meta = self.meta if isinstance(self.meta, dict) else {}
        resolve = meta.get("resolve")
        resolve = resolve if isinstance(resolve, (int, float)) and not isinstance(resolve, bool) and resolve > 0 \
            else None
        out = {}
        if "schedule" in meta or "friction" in meta:
            exact = meta.get("method") == "exact"
            if meta.get("method") not in ("exact", "montecarlo") or (resolve is None and not exact):
                return out  # the rule's branch or its resolution unknown: not refitted
            with warnings.catch_warnings():  # the study warned when it ran; a load only compares
                warnings.simplefilter("ignore")
                return dict(orders_from_rows(self.rows, self.models, exact, resolve if resolve is not None else 3.0,
                                    xkey="h" if "friction" in meta else "eta"))
        for m in self.models:
            rs = [r for r in self.rows if r["model"] == m]
            ses = [r["se"] for r in rs]
            if resolve is None and any(s > 0 for s in ses):
                continue  # Monte Carlo errors, resolution unknown (a file from before meta.resolve): not refitted
            # the study's own call (weak_error; update_map_weak_error passes the ses as they are: the same fit)
            fit = fit_order([r.get("h", r["eta"]) for r in rs], [r["error"] for r in rs], ses if any(ses) else None,
                            refs=[r["sgd"] for r in rs], resolve=resolve if resolve is not None else 3.0)
            out[m] = Order(*fit, fit.n_used)
        return out

    def _long_rows(self) -> list:
        out = []
        for r in self.rows:
            out.append((r["model"], r["eta"], "error", r["error"], r["se"], r["t"]))
            out.append((r["model"], r["eta"], "E phi (model)", r["value"], r["value_se"], r["t"]))
            out.append((r["model"], r["eta"], "lost paths", r["lost"], 0.0, r["t"]))
        for eta in self.etas:  # SGD once per eta
            r = next(r for r in self.rows if r["eta"] == eta)
            out.append(("sgd", eta, "E phi (SGD)", r["sgd"], r["sgd_se"], r["t"]))
        return out

    def errors(self, model: str) -> np.ndarray:
        return np.array([r["error"] for r in self.rows if r["model"] == model])

    def header(self, sep: str = ", ") -> str:
        """What was compared: phi, x0, t_end and the number of paths (the figure's title, the table's head)."""
        phi = getattr(self.phi, "__name__", None) if callable(self.phi) and not isinstance(self.phi, sp.Basic) else None
        x0 = self.meta.get("x0")
        x0 = "?" if x0 is None else "[" + ", ".join(f"{v:g}" for v in np.ravel(x0)) + "]"
        t_end = self.meta.get("t_end")
        return sep.join([f"phi = {phi or self.phi}", f"x0 = {x0}",
                         f"t_end = {t_end:g}" if t_end is not None else "t_end = ?", self._how()])

    def _how(self) -> str:
        """"exact moments", "200,000 paths", or for a mixed study which models are which."""
        n = self.meta.get("n_paths")
        paths = f"{n:,} paths" if isinstance(n, numbers.Integral) else "Monte Carlo"
        paths += backend_label(self.meta)  # other streams, other numbers: say where they came from
        method = self.meta.get("method")
        if method == "exact":
            return "exact moments"
        methods = self.meta.get("methods")
        if method != "mixed" or not isinstance(methods, Mapping):
            return paths
        exact = ["SGD"] * (methods.get("sgd") == "exact") + [m for m, how in methods.items()
                                                             if how == "exact" and m != "sgd"]
        mc = [m for m, how in methods.items() if how != "exact" and m != "sgd"]
        return f"exact moments ({', '.join(exact)}), {paths} ({', '.join(mc)})"

    @property
    def reference(self) -> str:
        """What the models are compared with: "SGD", or the optimizer the study ran (``meta``: an update map's
        name, momentum SGD, SGD with a schedule), as the tables and figures say."""
        meta = self.meta if isinstance(self.meta, dict) else {}
        if meta.get("optimizer"):
            return str(meta["optimizer"])
        if "friction" in meta:
            return "Nesterov SGD" if meta.get("nesterov") else "heavy-ball SGD"
        if meta.get("schedule"):
            return "scheduled SGD"
        return "SGD"

    def __repr__(self) -> str:
        ref = self.reference
        w, wl = max(12, len("E phi " + ref)), max(8, len("lost " + ref))
        lines = [f"weak error against {ref}: {self.header()}",
                 f"{'eta':>8} {'model':>6} {'E phi ' + ref:>{w}} {'E phi model':>12} {'error':>11} {'s.e./exact':>11} "
                 f"{'solver err':>10} {'lost ' + ref:>{wl}} {'lost':>8}"]
        for r in self.rows:
            se = "exact" if r["method"] == "exact" else f"{r['se']:.2e}"
            lines.append(f"{r['eta']:>8.4g} {r['model']:>6} {r['sgd']:>{w}.6g} {r['value']:>12.6g} "
                         f"{r['error']:>11.3e} {se:>11} {r['solver_error']:>10.1e} {lost_cell(r['lost_sgd']):>{wl}} "
                         f"{lost_cell(r['lost']):>8}")
        wrt = self.meta.get("orders_in")  # momentum: orders are fitted in h = sqrt(eta)
        wrt = f"log {wrt.split(' = ')[0]} ({wrt})" if wrt else "log eta"
        lines.append(f"fitted orders (slope of log|error| vs {wrt}, 95% interval):")
        for m, (s, lo, hi, n) in self.orders.items():
            lines.append(f"  {m:>6}: " + (f"{s:.3f}  {interval_text(self.orders[m])}  ({n} etas)" if order_label(self.orders[m])
                                          != "unresolved" else f"unresolved ({n} etas resolved)"))
        return "\n".join(lines)

    @property
    def n_panels(self) -> int:
        """Axes :meth:`plot` draws on."""
        return 1

    def plot(self, path=None, ax=None):
        """Log-log plot of |error| against eta (momentum: h = sqrt(eta)) with reference slopes 1 and 2.

        ``path`` (also positional): write the figure there; ``ax``: draw on that axis.
        Returns the figure.
        """
        fig, (ax,), path, own = plot_target(path, ax)
        from matplotlib.ticker import NullFormatter

        # momentum studies fit their orders in h = sqrt(eta) (the chain's step): plot and slope in the same variable
        xkey = "h" if self.rows and "h" in self.rows[0] else "eta"
        xs = np.array(sorted({r[xkey] for r in self.rows}, reverse=True))
        style = {"gf": ("s", "-"), "sme1": ("o", "-"), "sme2": ("o", "-"), "smf1": ("x", "--"), "smf2": ("x", "--")}
        for m in self.models:
            rs = [r for r in self.rows if r["model"] == m]
            e = np.array([abs(r["error"]) for r in rs])
            se = np.array([r["se"] for r in rs])
            marker, ls = style.get(m, ("o", "-"))
            # SME and SMF share their one-point law, so their curves may coincide: dashed crosses on top
            ax.errorbar([r[xkey] for r in rs], e, yerr=2 * se if se.any() else None, marker=marker, ls=ls,
                        capsize=3, markersize=7 if marker == "x" else 5,
                        label=f"{m} ({order_label(self.orders[m])})")
        top = max(abs(r["error"]) for r in self.rows)
        for p, style in ((1, ":"), (2, "--")):
            ax.plot(xs, top * (xs / xs.max()) ** p, "k" + style, lw=1, label=f"slope {p}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        # every eta labelled: they are the study's design, not a decoration
        ax.set_xticks(list(xs))
        ax.set_xticklabels([f"{e:g}" for e in xs], rotation=45 if len(xs) > 5 else 0)
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(r"$h = \sqrt{\eta}$" if xkey == "h" else r"learning rate $\eta$")
        step = "kh" if xkey == "h" else r"k\eta"
        ax.set_ylabel(rf"$|\mathbb{{E}}\,\varphi(X_{{{step}}}) - \mathbb{{E}}\,\varphi(x_k)|$")
        # the optimizer's name may come from a saved file or a user's UpdateMap: a "$" must not start mathtext
        ax.set_title(f"weak error against {self.reference.replace('$', chr(92) + '$')}\n"
                     + self.header().replace("**", "^"), fontsize=9)
        ax.legend(fontsize=8)
        return finish_figure(fig, path, own=own)

    def to_latex(self) -> str:
        """A booktabs table of the study."""
        head = " & ".join([r"$\eta$", r"$\mathbb{E}\varphi$ (" + latex_text(self.reference) + ")"]
                          + [f"{m} error" for m in self.models]
                          + ["lost paths"])
        lines = [r"\begin{tabular}{" + "r" * (3 + len(self.models)) + "}", r"\toprule", head + r" \\", r"\midrule"]
        for eta in self.etas:
            rs = {r["model"]: r for r in self.rows if r["eta"] == eta}
            first = next(iter(rs.values()))
            cells = [f"{eta:g}", f"{first['sgd']:.6g}"]
            for m in self.models:
                r = rs[m]
                cells.append(f"{r['error']:.3e}" if r["method"] == "exact" else f"{r['error']:.2e} $\\pm$ {r['se']:.1e}")
            lost = [f"{latex_text(self.reference)} {lost_cell(first['lost_sgd'])}"] + [f"{m} {lost_cell(rs[m]['lost'])}" for m in self.models
                                                              if rs[m]["lost"]]
            cells.append(", ".join(lost).replace("%", r"\%"))
            lines.append(" & ".join(cells) + r" \\")
        lines.append(r"\midrule")
        lines.append(" & ".join(["order", ""] + [_order_cell(self.orders[m]) for m in self.models] + [""]) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}"]
        return "\n".join(lines)


def _order_cell(order) -> str:
    """A fitted order in a LaTeX table: "2.01 [1.95, 2.07]", or "unresolved"."""
    if order_label(order) == "unresolved":
        return "unresolved"
    return f"{order[0]:.2f} {interval_text(order, 2)}"


def _mc_method(scheme: str, increments: str, dt: float, extrapolate: bool) -> str:
    """The ``method`` cell of a Monte Carlo row, e.g. "montecarlo (euler, discrete, dt=0.0125|0.00625 extrapolated)"."""
    inc = ", discrete" if increments == "discrete" else ""
    steps = f"dt={dt:.3g}|{dt / 2:.3g} extrapolated" if extrapolate else f"dt={dt / 2:.3g}"
    return f"montecarlo ({scheme}{inc}, {steps})"


def weak_error(problem: Problem, phi, x0, t_end: float, etas: Sequence[float], *,
               models: Sequence[str] = MODELS, seed=0, n_paths: int = 200_000, values: Mapping | None = None,
               numerics: Numerics | None = None, options: RunOptions | None = None, **legacy) -> WeakErrorStudy:
    """Weak error of each model against SGD over a range of learning rates (docs/theory.md §2).

    Parameters
    ----------
    problem : Problem
    phi : sympy expression in the parameters, or callable on states (P, d)
        The test function.
    x0 : array_like (d,)
    t_end : float
        Horizon; SGD runs k = t_end / eta steps and the models are compared with it at t_end.
        Every eta must divide ``t_end`` (otherwise rows at different times would enter one
        fit): others are refused.
    etas : sequence of float
    models : sequence of str
        Among "gf", "gf2" (the gradient flow of the modified loss F + eta/4 |grad F|^2), "sme1", "sme2", "smf1",
        "smf2" (smfsym.symbolic.model_names.MODEL_REGISTRY).
    numerics, options : smfsym.Numerics, smfsym.RunOptions, optional
        How each error is computed and how the runs are carried out: the settings below (as
        keywords they still work for one release, with a ``DeprecationWarning``).
    method : {"auto", "exact", "montecarlo"}
        "auto" decides per model: SGD's moments are exact when they close (gradient affine
        in x, polynomial phi, any numeric batch size), and so is each model whose generator
        maps polynomials of phi's degree into themselves (the state is real: an SME noise
        |x| has |x|^2 = x^2); the other models are simulated and compared with the exact
        SGD values, and everything is simulated when SGD's moments do not close. The rows'
        ``method`` and ``meta["methods"]`` say which was used per model ("exact" and
        "montecarlo"; ``meta["method"]`` is "exact", "montecarlo" or "mixed"). "exact"
        refuses (:class:`~smfsym.simulation.exact.NotClosedError`) where any of them does not close.
    seed, n_paths : Monte Carlo settings.
        Each eta draws from the child of ``seed`` at its position in ``etas`` (SGD and every model of that
        eta share it): a model added or dropped changes no number, but one eta in another list of etas gets
        other, equally valid, draws; rerun the same ``etas`` to reproduce a row.
        :func:`estimate_cost` tells what a choice will cost before running it.
    dt_fraction : float
        Solver step as a fraction of eta (weak order-2 solver where the noise allows).
    resolve : float
        An error enters the order fit only if it exceeds ``resolve`` standard errors.
    scheme : str, Solver or None
        Solver for every model (Monte Carlo); None picks weak2 where its derivatives
        exist, else euler. "tamed" survives stiff drifts (quartic losses at large eta).
    on_nonfinite : {"raise", "mask"}
        Passed to the simulators (SGD and models). With "mask", paths that blow up are
        dropped and their fraction is reported in the ``lost`` / ``lost_sgd`` columns.
    blowup_threshold : float, optional
        Paths with an entry beyond it count as blown up (default 1e100); lower it when
        SGD diverges slowly past its stability region, so that such paths are masked and
        counted rather than averaged (a :class:`DivergenceWarning` flags that case).
    progress : bool or None
        None: tqdm bars on a terminal or in a notebook, and one line per model and eta on
        stderr (for logs); False: silent; True: bars always, and the lines.
    increments : {"auto", "discrete", "gaussian"}
        Increments of the SDE solvers (docs/theory.md §9). A weak error needs only
        expectations, so "auto" (and "discrete") use the two-/three-point increments a
        scheme declares (same weak order, cheaper; Kloeden-Platen 14.1-14.2) and Gaussian
        ones where it declares none; "gaussian" always draws normals. The ``method``
        column names what was used. Bounded increments also change which paths blow up.
    extrapolate : bool
        True (default): each model runs at dt = eta * dt_fraction coupled with dt/2 (shared
        increments) and reports the Richardson (Talay-Tubaro) extrapolation, which removes
        the solver's leading weak error C dt^p (docs/theory.md §9); ``solver_error`` is the
        size of the correction removed. False: the dt/2 value, with ``solver_error`` the
        Richardson estimate of the error it still carries (an Euler scheme on an order-2
        model then biases the error at small eta).
    executor : concurrent.futures.Executor or dask.distributed.Client, optional
        Run the Monte Carlo simulations on it (see :func:`smfsym.simulate`): same numbers
        as without it. A callable ``phi`` must then be a module-level function.
    max_path_steps : float (a field of ``options``)
        Bound on the Monte Carlo work, paths x steps: SGD's steps (unless exact) and each simulated
        model's coupled dt and dt/2 steps, over the etas (exact rows cost nothing; default 1e11).
        Estimated before anything runs; more is refused with the estimate.

    All arguments are checked before anything runs.

    Examples
    --------
    >>> import sympy as sp, smfsym
    >>> x = sp.Symbol("x")
    >>> xi = smfsym.normal("xi")
    >>> p = smfsym.Problem((x - xi) ** 2 / 2, [x])
    >>> st = smfsym.weak_error(p, x**2, [1.0], 1.0, [0.1, 0.05, 0.025], models=["sme1", "sme2"])
    >>> round(st.orders["sme1"][0]), round(st.orders["sme2"][0])
    (1, 2)
    """
    settings = study_settings("weak_error", numerics, options, legacy)
    a = _checked_arguments(problem, phi, x0, t_end, etas, models, seed, n_paths, values, settings)
    problem, phi, x0, etas, models, seed = a.problem, a.phi, a.x0, a.etas, a.models, seed
    t_end, n_paths, solver, blow, vals, resolve = a.t_end, a.n_paths, a.solver, a.blow, a.vals, a.resolve
    increments, extrapolate = a.increments, a.extrapolate
    sdes = {m: build_model(problem, m) for m in models}
    # the exact rows' problem and models: the constants `values` binds substituted (Monte Carlo rows bind them)
    exact_problem, exact_phi, exact_vals, exact_sdes = exact_route(problem, phi, vals, sdes, a.method)
    sgd_exact, space, how = choose_methods(exact_problem, exact_phi, exact_vals, exact_sdes, a.method, etas[0])
    exact_models = [m for m in models if how[m] == "exact"]
    # the Monte Carlo work, before anything runs: SGD's steps (unless exact) and each simulated model's coupled
    # dt / dt/2 steps on n_paths paths per eta (a noise-free model runs one path; exact rows cost nothing)
    check_study_work(settings["max_path_steps"], n_paths, a.steps,
                     [m for m in models if how[m] != "exact" and sdes[m].n_noise], a.dt_fraction,
                     chain=not sgd_exact,
                     remedy="lower `n_paths`, use larger etas, a shorter `t_end` or fewer `models`, or raise "
                            "`options=smfsym.RunOptions(max_path_steps=...)`")
    rows, ts = [], []
    mc_runs = len(etas) * (0 if sgd_exact else 1) + len(etas) * (len(sdes) - len(exact_models))
    # exact moments take a moment: lines only for Monte Carlo runs
    say = ProgressLines("weak_error", mc_runs, a.progress if mc_runs else False)
    f = None if sgd_exact and not mc_runs else _phi_function(phi, problem.params, vals, a.backend)
    root = study_seed(seed)
    per_eta = root.spawn(len(etas))
    for i, (eta, k) in enumerate(zip(etas, a.steps)):
        t = k * eta
        ts.append(t)
        s_sgd, s_sde = per_eta[i].spawn(2)
        if sgd_exact:
            sgd = (exact_sgd_mean(exact_problem, exact_phi, x0, eta, k, space), 0.0, 0.0)
        else:
            say(f"sgd eta={eta:g} ({k} steps, {n_paths} paths)")
            try:
                r = simulate_sgd(problem, x0, k, eta, n_paths=n_paths, seed=s_sgd, values=vals,
                                 save_at=SaveAt(functions={"phi": f}, store=False), options=a.run)
            except BlowUpError as exc:
                raise with_context(exc, f"SGD at eta = {eta:g}") from None
            sgd = (float(r.mean("phi")[-1]), float(r.sem("phi")[-1]), r.lost_fraction)
        for m, sde in sdes.items():
            if how[m] == "exact":
                val = exact_sde_mean(exact_sdes[m], exact_phi, x0, eta, t, space)
                rows.append(dict(eta=eta, t=t, model=m, sgd=sgd[0], sgd_se=sgd[1], value=val, value_se=0.0,
                                 error=val - sgd[0], se=sgd[1], method="exact", solver_error=0.0, lost=0.0,
                                 lost_sgd=sgd[2]))
            else:
                rows.append(_model_row(m, sde, eta, t, sgd, sgd_exact, f, s_sde, a, say))
    orders = {}
    for m in models:
        rs = [r for r in rows if r["model"] == m]
        ses = [r["se"] for r in rs]
        fit = fit_order([r["eta"] for r in rs], [r["error"] for r in rs], ses if any(ses) else None,
                        refs=[r["sgd"] for r in rs], resolve=resolve, what=m, stacklevel=2)
        orders[m] = Order(*fit, fit.n_used)
    overall = ("exact" if sgd_exact and len(exact_models) == len(models)
               else "montecarlo" if not exact_models and not sgd_exact else "mixed")
    return WeakErrorStudy(problem, phi, etas, list(models), rows, orders, ts,
                          meta=dict(method=overall, methods=dict(how, sgd="exact" if sgd_exact else "montecarlo"),
                                    n_paths=n_paths, seed=seed_record(root),
                                    x0=x0.tolist(), t_end=t_end,
                                    scheme=None if solver is None else solver.name, increments=increments,
                                    extrapolate=bool(extrapolate),
                                    # the resolution rule of the order fits (load_study refits them with it)
                                    **({} if overall == "exact" else {"resolve": float(resolve)}),
                                    **blow, **(backend_meta(a.backend) if mc_runs else {})))


def _checked_arguments(problem, phi, x0, t_end, etas, models, seed, n_paths, values, s: dict):
    """Every argument of :func:`weak_error` checked (nothing runs before this returns), as a namespace."""
    c = check_common(problem, t_end=t_end, seed=seed, n_paths=n_paths, dt_fraction=s["dt_fraction"],
                     on_nonfinite=s["on_nonfinite"], scheme=s["scheme"], blowup_threshold=s["blowup_threshold"])
    a = SimpleNamespace(problem=problem, t_end=c["t_end"], n_paths=c["n_paths"], dt_fraction=c["dt_fraction"],
                        solver=c["solver"], progress=s["progress"], method=s["method"],
                        blow=dict(on_nonfinite=s["on_nonfinite"], blowup_threshold=c["blowup_threshold"]))
    executor = s["executor"]
    if executor is not None:
        executor = check_executor(executor)
        if callable(phi) and not isinstance(phi, sp.Basic):
            check_picklable_functions({"phi": phi}, argument="phi")
    a.executor, a.run = executor, RunOptions(progress=a.progress, executor=executor, backend=s["backend"], **a.blow)
    a.backend = get_backend(s["backend"])
    if a.backend.name == "numpy":
        a.backend = None
    a.increments = check_increments(s["increments"])
    a.extrapolate = s["extrapolate"]
    if not isinstance(a.extrapolate, (bool, np.bool_)):
        raise TypeError(f"`extrapolate` must be True or False; got {a.extrapolate!r}.")
    if a.method not in ("auto", "exact", "montecarlo"):
        raise ValueError(f"`method` must be 'auto', 'exact' or 'montecarlo'; got {a.method!r}.")
    a.etas = check_etas(etas)
    short = [e for e in a.etas if round(a.t_end / e) < 1]
    if short:
        raise ValueError(f"`t_end` = {a.t_end:g} is under half a step of the learning rates {short}: SGD would "
                         "take no step; raise `t_end` or lower `etas`.")
    n_max = round(a.t_end / a.etas[-1])
    if n_max > MAX_STEPS:
        raise ValueError(f"`t_end` / min(`etas`) = {n_max:.3g} SGD steps, over the bound of {MAX_STEPS:.3g}: raise "
                         "the smallest of `etas` or lower `t_end`.")
    a.steps = check_horizon(a.t_end, a.etas)
    a.models = check_models(models, set(MODEL_REGISTRY))
    a.phi = phi = check_phi(phi, problem.params)
    if isinstance(phi, sp.Expr) and phi.free_symbols - set(problem.params):
        extra = phi.free_symbols - set(problem.params)
        known = {str(s_) for s_ in problem.law_parameters} | {str(s_) for s_ in problem.constants}
        if not {str(s_) for s_ in extra} <= known | {str(k) for k in (values or {})}:
            raise ValueError(f"`phi` must be an expression in the parameters {list(problem.params)}; it also "
                             f"contains {sorted(map(str, extra))}.")
    a.resolve = resolve = s["resolve"]
    if isinstance(resolve, bool) or not isinstance(resolve, numbers.Real) or not resolve > 0:
        raise ValueError(f"`resolve` must be a positive number of standard errors; got {resolve!r}.")
    a.vals = numeric_values(values, problem_symbols(problem))
    a.x0 = prepare_x0(x0, problem.dim)
    if a.x0.shape != (problem.dim,):
        raise ValueError(f"`x0` must have shape ({problem.dim},); got {a.x0.shape}.")
    check_phi_tails(problem, phi)
    return a


def _model_row(m, sde, eta, t, sgd: tuple, sgd_exact: bool, f, s_sde, a, say) -> dict:
    """One Monte Carlo row of :func:`weak_error`: model ``m`` at ``eta`` against SGD's ``(value, se, lost)``."""
    slv = scheme_for(sde, a.solver)
    scheme = slv.name
    dt = eta * a.dt_fraction
    inc = increments_for(slv, a.increments) if sde.n_noise else "gaussian"
    say(f"{m} eta={eta:g} ({scheme}, {inc} increments, dt={dt:.3g} and {dt / 2:.3g})")
    # a noise-free model (gradient flow) needs one path, not n_paths
    n_model = a.n_paths if sde.n_noise else 1
    if a.extrapolate:
        try:
            cr = coupled_expectation(sde, a.x0, t, eta=eta, dt=dt, n_paths=n_model, solver=slv, phi=f,
                                     seed=s_sde, values=a.vals, increments=inc,
                                     options=RunOptions(progress=a.progress, executor=a.executor, **a.blow,
                                                        backend="numpy" if a.backend is None else a.backend))
        except BlowUpError as exc:
            raise with_context(exc, f"model {m} ({scheme}, dt = {dt:g} coupled with {dt / 2:g}) "
                                    f"at eta = {eta:g}") from None
        val, vse, lost = cr["value"], cr["se"], cr["lost"]
        solver_err = abs(cr["correction"])  # the fine run's solver error, removed from val
    else:
        runs, lost = [], 0.0
        for h in (dt, dt / 2):
            try:
                rr = simulate(sde, a.x0, t, eta=eta, dt=h, n_paths=n_model, scheme=slv, seed=s_sde,
                              values=a.vals, increments=inc, save_at=SaveAt(functions={"phi": f}, store=False),
                              options=a.run)
            except BlowUpError as exc:
                raise with_context(exc, f"model {m} ({scheme}, dt = {h:g}) at eta = {eta:g}") from None
            runs.append((float(rr.mean("phi")[-1]), float(rr.sem("phi")[-1])))
            lost = max(lost, rr.lost_fraction)
        (v1, e1), (v2, e2) = [(v, 0.0 if not sde.n_noise else e) for v, e in runs]
        solver_err = abs(v1 - v2) / (2**slv.weak_order - 1)  # Richardson estimate of the error left at dt/2
        val, vse = v2, e2
    sgd_val, sgd_se, lost_sgd = sgd
    if sde.n_noise:
        masked = a.run.on_nonfinite == "mask"
        if not sgd_exact:
            warn_if_unresolved(f"E phi of SGD at eta = {eta:g}", sgd_val, sgd_se, vse, lost_sgd, masked)
        warn_if_unresolved(f"E phi of {m} at eta = {eta:g}", val, vse, sgd_se if not sgd_exact else vse,
                           lost, masked)
    return dict(eta=eta, t=t, model=m, sgd=sgd_val, sgd_se=sgd_se, value=val, value_se=vse,
                error=val - sgd_val, se=float(np.hypot(vse, sgd_se)),
                method=_mc_method(scheme, inc, dt, a.extrapolate), solver_error=solver_err, lost=lost,
                lost_sgd=lost_sgd)


