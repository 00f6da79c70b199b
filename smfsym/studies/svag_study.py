r"""SVAG as a study: the weak distance of SVAG (:func:`smfsym.optimizers.svag.simulate_svag`) to the order-1
SME of its update map falls like 1/l (Li, Malladi, Arora 2021; docs/theory.md §11).

For each l, SVAG runs to ``t_end`` and E phi is estimated with its standard error; the reference is the SME's
E phi, given exactly by the caller (``reference=(value, 0)``) or computed by Monte Carlo with the solver's
error removed by coupled Richardson extrapolation (:func:`smfsym.studies.richardson.coupled_expectation`).
The order is the slope of log|error| against log(1/l) (:func:`smfsym.studies.fit_order`), expected 1.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import sympy as sp

from .._checks import numeric_values
from ..data.tails import check_step_phi_tails
from ..montecarlo.checks import BlowUpError, check_int, check_positive
from ..backends import get_backend
from ..montecarlo.options import RunOptions, SaveAt
from ..optimizers.svag import _as_map, simulate_svag
from ..optimizers.update_map import EXPANSIONS
from ..simulation.sde import prepare_x0
from .common import (_across_signs, _phi_function, backend_meta, check_path_steps, check_phi, finish_figure, fit_order,
                     increments_for, interval_text, order_label, plot_target, scheme_for, study_seed, seed_record,
                     with_context, SMALLER)
from .options import study_settings
from .richardson import coupled_expectation
from . import storage as _sv
from .storage import Order, StudyIO

__all__ = ["SvagStudy", "svag_study"]


@dataclass
class SvagStudy(StudyIO):
    """Result of :func:`svag_study`: rows (l, SVAG's E phi and SE, the SME's, error and its SE) and the
    order fitted in 1/l."""

    problem: object
    phi: object
    ls: list
    rows: list
    order: Order
    t: float
    eta: float
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.order, Order):
            self.order = Order(*self.order)

    def _validate(self) -> None:
        """Refuse a loaded study whose fields disagree (:meth:`smfsym.studies.storage.StudyIO._validate`).

        ``ls`` positive and distinct, ``t`` and ``eta`` positive and finite; at least one row, one per l and
        no other; standard errors >= 0 or NaN; ``error == value - sme``; the order consistent and fitted on
        at most ``len(ls)`` points; ``meta.n_paths`` >= 2; ``sme`` and ``sme_se`` the same in every row (one
        reference), ``t`` the horizon ``meta.t_end``, and the order the refit of the rows with ``meta.resolve``
        (files without it are not refitted).
        """
        _sv.check_grid(self.ls, "ls")
        _sv.check_positive(self.t, "t")
        _sv.check_positive(self.eta, "eta")
        _sv.check_rows(self.rows)
        for i, r in enumerate(self.rows):
            _sv.check_members(r, i, {"l": ("ls", self.ls)})
            _sv.check_nonnegative(r, i, ("value_se", "sme_se", "se"))
            _sv.check_difference(r, i, "error", "value", "sme")
        _sv.check_complete(self.rows, ("l",), [(l,) for l in self.ls])
        _sv.check_order(self.order, "order", len(self.ls))
        _sv.check_n_paths(self.meta)
        meta = self.meta if isinstance(self.meta, dict) else {}
        # one reference run (the SME's, or the one given) for every l
        _sv.check_shared(self.rows, (), ("sme", "sme_se"), "one reference for every l")
        _sv.check_time(self.t, "t", meta.get("t_end"))
        resolve = meta.get("resolve")
        if _sv._is_number(resolve) and not isinstance(resolve, bool) and resolve > 0:  # files before it: not refitted
            def refit():
                fit = fit_order([1 / r["l"] for r in self.rows], [r["error"] for r in self.rows],
                                [r["se"] for r in self.rows], refs=[r["sme"] for r in self.rows], resolve=resolve)
                return Order(*fit, fit.n_used)

            self.order = _sv.check_refit(self.order, refit(), "order", legacy=lambda: _across_signs(refit))

    @property
    def n_panels(self) -> int:
        """Axes :meth:`plot` draws on."""
        return 1

    def __repr__(self) -> str:
        lines = [f"SVAG against the order-1 SME at t = {self.t:g}, eta = {self.eta:g}",
                 f"{'l':>6} {'SVAG':>12} {'se':>10} {'SME':>12} {'error':>11} {'se':>10}"]
        for r in self.rows:
            lines.append(f"{r['l']:>6d} {r['value']:>12.6g} {r['value_se']:>10.2e} {r['sme']:>12.6g} "
                         f"{r['error']:>11.3e} {r['se']:>10.2e}")
        o = self.order
        lines.append(f"fitted order in 1/l: {o.slope:.3f}  {interval_text(o)} ({o.n_used} points)")
        return "\n".join(lines)

    @property
    def table(self) -> str:
        return repr(self)

    def _long_rows(self) -> list:
        return [("svag", self.eta, f"E phi (l = {r['l']})", r["value"], r["value_se"], self.t) for r in self.rows]

    def to_latex(self) -> str:
        """The table as a LaTeX ``tabular``."""
        body = [f"{r['l']} & {r['value']:.6g} & {r['value_se']:.2e} & {r['sme']:.6g} & {r['error']:.3e} & "
                f"{r['se']:.2e} \\\\" for r in self.rows]
        return ("\\begin{tabular}{rrrrrr}\n$l$ & SVAG & s.e. & SME & error & s.e. \\\\\n\\hline\n"
                + "\n".join(body) + "\n\\end{tabular}")

    def plot(self, path=None, ax=None):
        """|SVAG - SME| against l (log-log) with 2-SE bars and the slope -1 guide. Returns the figure."""
        fig, axes, path, own = plot_target(path, ax, figsize=(4.6, 3.8))
        ax_ = axes[0]
        ls = np.array([r["l"] for r in self.rows], float)
        err = np.abs([r["error"] for r in self.rows])
        ax_.errorbar(ls, err, yerr=[2 * r["se"] for r in self.rows], marker="o", capsize=3,
                     label=f"SVAG ({order_label(self.order)})")
        ax_.loglog(ls, err[0] * ls[0] / ls, "k:", label=r"$\propto 1/l$")
        ax_.set_xlabel("$l$")
        ax_.set_ylabel(rf"$|\mathbb{{E}}\varphi_{{\rm SVAG}} - \mathbb{{E}}\varphi_{{\rm SME}}|$ at $t = {self.t:g}$")
        ax_.set_title(f"SVAG, eta = {self.eta:g}", fontsize=9)
        ax_.legend(fontsize=7)
        return finish_figure(fig, path, own=own)


def _sme_reference(umap, z0, t_end, eta, f, n_paths, seed, vals, dt_fraction, run: RunOptions) -> tuple:
    sde = umap.sme(1)
    slv = scheme_for(sde, None)
    h = eta ** (1.0 / EXPANSIONS[umap.expansion])
    try:
        cr = coupled_expectation(sde, z0, t_end, eta=eta, dt=h * dt_fraction, n_paths=n_paths, solver=slv, phi=f,
                                 seed=seed, values=vals, increments=increments_for(slv, "auto"),
                                 options=run)
    except BlowUpError as exc:
        raise with_context(exc, f"the SME of {umap.name}", SMALLER) from None
    except ValueError as exc:
        if get_backend(run.backend).name == "numpy" or "backend" not in str(exc):
            raise
        raise ValueError(f"svag_study's reference, the SME of {umap.name}: {exc} Or give `reference=(value, se)`: "
                         "SVAG itself runs on the back end.") from None
    return cr["value"], cr["se"]


def _check_reference(reference) -> tuple:
    """``reference`` as ``(value, se)`` floats: a finite value and a finite se >= 0."""
    if isinstance(reference, (str, bytes)) or not hasattr(reference, "__len__") or len(reference) != 2:
        raise TypeError(f"`reference` must be a pair (value, se) of numbers; got {reference!r}.")
    out = []
    for x, what in zip(reference, ("value", "se")):
        if isinstance(x, (bool, np.bool_)) or not isinstance(x, (numbers.Real, sp.Number)):
            raise TypeError(f"`reference` must be a pair (value, se) of real numbers; its {what} is {x!r}.")
        out.append(float(x))
    if not np.isfinite(out[0]):
        raise ValueError(f"`reference` value (the SME's E phi) must be finite; got {out[0]!r}.")
    if not (np.isfinite(out[1]) and out[1] >= 0):
        raise ValueError(f"`reference` se must be finite and >= 0 (0 for an exact value); got {out[1]!r}.")
    return out[0], out[1]


def svag_study(umap_or_problem, phi, z0, t_end: float, eta: float, ls: Sequence[int] = (2, 4, 8, 16), *,
               reference: tuple | None = None, n_paths: int = 100_000, seed=0, values: Mapping | None = None,
               resolve: float = 3.0, options: RunOptions | None = None, **legacy) -> SvagStudy:
    r"""Weak distance of SVAG to the order-1 SME, for each ``l``, and its order in 1/l (module docstring).

    Parameters
    ----------
    umap_or_problem : UpdateMap or Problem (SGD)
    phi : sympy expression in the map's state, or callable on states (P, dim) -> (P,)
    z0 : array_like (dim,)
    t_end, eta : float
        Horizon (a multiple of h / l for every l) and learning rate.
    ls : sequence of int
        At least two distinct l >= 1.
    reference : (value, se), optional
        The SME's E phi(Z_t) when known exactly (se 0); else estimated (``n_paths`` paths, solver step
        h / 2 coupled with h / 4, Richardson-extrapolated).
        A given value must be finite and its se finite and >= 0.
    n_paths, seed, values : Monte Carlo settings and numbers for constants.
    options : RunOptions, optional
        ``progress``, ``executor`` and ``backend`` (SVAG and the SME's coupled runs on an array back end,
        :mod:`smfsym.backends`); the old keyword ``progress=`` still works for one release (a
        ``DeprecationWarning``). ``max_path_steps`` bounds the Monte Carlo work, paths x steps (SVAG's
        l t_end / h steps for every l, the SME reference at h / 2 and h / 4), as in
        :func:`smfsym.multipoint_rates`: estimated and refused before anything runs.
    resolve : float
        Errors enter the fit only above ``resolve`` standard errors.

    Examples
    --------
    >>> import sympy as sp, smfsym, numpy as np
    >>> x = sp.Symbol("x")
    >>> p = smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x])
    >>> st = svag_study(p, x, [1.0], 1.0, 0.5, ls=[2, 8], reference=(float(np.exp(-1)), 0.0), n_paths=20_000,
    ...                 options=smfsym.RunOptions(progress=False))
    >>> [r["l"] for r in st.rows], st.order.n_used
    ([2, 8], 2)
    """
    settings = study_settings("svag_study", None, options, legacy,
                              supported=("executor", "progress", "backend", "max_path_steps"))
    max_path_steps = settings.pop("max_path_steps")  # the study's work bound (its runs do not take it)
    run = RunOptions(**settings)
    umap = _as_map(umap_or_problem)
    t_end, eta = check_positive(t_end, "t_end"), check_positive(eta, "eta")
    ls = [check_int(l, "ls") for l in ls]
    if len(set(ls)) < 2:
        raise ValueError(f"`ls` must hold at least two distinct values of l; got {ls}.")
    n_paths = check_int(n_paths, "n_paths")
    if n_paths < 2:
        raise ValueError(f"`n_paths` must be at least 2 (a standard error needs two paths); got {n_paths!r}.")
    known = set(umap.problem.law_parameters) | set(umap.problem.constants) | set(umap.constants)
    vals = numeric_values(values, known)
    phi = check_phi(phi, umap.state)
    if isinstance(phi, sp.Expr) and not {str(s) for s in phi.free_symbols} <= {str(s) for s in umap.state}:
        raise ValueError(f"`phi` must be an expression in the state {list(umap.state)}.")
    check_step_phi_tails(umap.problem, phi, umap.state, umap.update)  # SVAG's moves grow as the map's
    device = get_backend(run.backend)
    f = _phi_function(phi, umap.state, vals, None if device.name == "numpy" else device)
    z0 = prepare_x0(z0, len(umap.state), "z0", single=True)
    if isinstance(resolve, bool) or not isinstance(resolve, (int, float)) or not resolve > 0:
        raise ValueError(f"`resolve` must be a positive number of standard errors; got {resolve!r}.")
    if reference is not None:
        reference = _check_reference(reference)
    h = eta ** (1.0 / EXPANSIONS[umap.expansion])
    svag_steps = sum(l * t_end / h for l in ls)
    ref_steps = 0.0 if reference is not None else 3 * t_end / (h * 0.5)
    check_path_steps(max_path_steps, n_paths * (svag_steps + ref_steps),
                     f"{n_paths} paths x ({svag_steps:.3g} SVAG steps l t_end / h over `ls`"
                     + (")" if reference is not None else f" + {ref_steps:.3g} steps of the SME reference)"),
                     "lower `n_paths`, the largest of `ls` or `t_end`, or raise `max_path_steps`")
    root = study_seed(seed)
    seeds = root.spawn(len(ls) + 1)
    given = reference is not None
    if reference is None:
        reference = _sme_reference(umap, z0, t_end, eta, f, n_paths, seeds[-1], vals, 0.5, run)
    ref, ref_se = float(reference[0]), float(reference[1])
    rows = []
    for l, s in zip(ls, seeds):
        r = simulate_svag(umap, l, z0, t_end, eta, n_paths=n_paths, seed=s, values=vals,
                          save_at=SaveAt(functions={"phi": f}, store=False), options=run)
        v, se = float(r.mean("phi")[-1]), float(r.sem("phi")[-1])
        rows.append(dict(l=l, value=v, value_se=se, sme=ref, sme_se=ref_se, error=v - ref,
                         se=float(np.hypot(se, ref_se))))
    fit = fit_order([1 / r["l"] for r in rows], [r["error"] for r in rows], [r["se"] for r in rows],
                    refs=[r["sme"] for r in rows], resolve=resolve, what="svag", stacklevel=2)
    meta = dict(n_paths=n_paths, seed=seed_record(root), x0=z0.tolist(), t_end=t_end, optimizer=umap.name,
                resolve=float(resolve),  # the order fit's rule, with which load_study refits it
                reference="given" if given else "sme1 (coupled Richardson)")
    meta.update(backend_meta(device))
    return SvagStudy(umap.problem, phi, ls, rows, Order(*fit, fit.n_used), t_end, eta, meta)
