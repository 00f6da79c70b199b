"""Mean-field study: SGD, the DD-SMF and the deterministic limit over several (eta, N) (docs/theory.md §6).

For every width N and learning rate eta: mean and variance over paths of each
observable at the saved times for the three methods, from the same initial
particles and seeds; fitted slopes of Var[R(mu_t)] against eta with intervals;
relative errors of the DD-SMF variance against SGD's; fitted orders of the mean
errors against SGD; a figure with bands and a LaTeX table. The DD-SMF's data rule is chosen
(or a given one checked) by what Var[R] depends on, before the runs (:mod:`.refine`); the
order-2 DD-SMF is Richardson-extrapolated by default so that it is order 2 against SGD.
A study saves and loads (:class:`smfsym.io.persist.StudyIO`, :func:`smfsym.load_study`).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from typing import Mapping, Sequence

import numpy as np

from .ddsmf import simulate_ddsmf
from .limit import simulate_meanfield_limit
from ..studies import storage as _sv
from ..studies.storage import StudyIO
from .particles import check_particle_bytes, check_particles, particles
from .refine import (
    RULE_BUDGET, RULE_TOL, CapturedNoiseWarning, RuleResolutionWarning, check_risk_rule, check_rule, refine_rule,
)
from .options import (
    MeanFieldNumerics, MeanFieldOptions, Observe, initial_particles, meanfield_settings,
    refuse_unused,
)
from .result import MeanFieldResult, check_net, positive
from .sgd import simulate_meanfield_sgd
from ..studies.common import RESOLVE, ProgressLines, backend_label, backend_meta, seed_record, study_seed
from ..montecarlo.executors import check_executor
from ..montecarlo.options import RunOptions
from ..data.means import KinkError

__all__ = ["meanfield_study", "MeanFieldStudy", "fit_slope", "RuleResolutionWarning", "CapturedNoiseWarning"]

METHODS = ("sgd", "ddsmf", "limit")


def fit_slope(x, y, se, *, resolve: float | None = None) -> dict:
    """Weighted least-squares slope of log y against log x, its standard error and 95% interval.

    Weights from the standard errors of y (delta method: SE of log y = se / y). With two points the
    slope is exact in the data: the SE is propagated the same way, and there is no 95% interval (NaN), as
    for every fitted order (``fit_order``: two points measure no curvature). ``resolve``: only values above
    that many standard errors enter (an error below its noise is no point of a power law), as ``fit_order``
    keeps only resolved errors.
    """
    x, y, se = (np.asarray(a, dtype=float) for a in (x, y, se))
    ok = (y > 0) & (se > 0) & np.isfinite(y) & np.isfinite(se)
    if resolve is not None:
        ok &= y > resolve * se
    if len(set(x[ok].tolist())) < 2:  # no slope: say why instead of printing nan +- nan
        what = (f"above {resolve:g} standard errors" if resolve is not None
                else "with a positive value and standard error")
        why = "one eta" if len(set(x.tolist())) < 2 else f"{int(ok.sum())} of {len(x)} etas {what}"
        return {"slope": float("nan"), "se": float("nan"), "ci95": (float("nan"), float("nan")),
                "unfitted": f"no slope: {why}"}
    lx, ly, s = np.log(x[ok]), np.log(y[ok]), se[ok] / y[ok]
    W = 1 / s**2
    xm = (W * lx).sum() / W.sum()
    sxx = (W * (lx - xm) ** 2).sum()
    b = float((W * (lx - xm) * ly).sum() / sxx)
    sb = float(np.sqrt(1 / sxx))
    if len(set(x[ok].tolist())) == 2:
        return {"slope": b, "se": sb, "ci95": (float("nan"), float("nan"))}
    return {"slope": b, "se": sb, "ci95": (b - 1.96 * sb, b + 1.96 * sb)}


@dataclass
class MeanFieldStudy(StudyIO):
    """Results of :func:`meanfield_study`.

    Attributes
    ----------
    results : dict (method, eta, N) -> MeanFieldResult (the limit under eta = None)
    slopes : dict (method, N) -> fit of Var[R(mu_T)] against eta (``fit_slope``)
    mean_orders : dict (method, N) -> fit of |E R_method - E R_sgd| against eta
    rows : list of dict, one per (N, eta) at the final time

    ``save``/``load`` (and :func:`smfsym.load_study`) keep every per-path observable, so a loaded
    study has the same summaries, table and figure; the engine's results underneath (``sim``) are
    not saved (a loaded result has ``sim=None``).
    """

    results: dict
    etas: list
    widths: list
    t: np.ndarray
    slopes: dict = field(default_factory=dict)
    mean_orders: dict = field(default_factory=dict)
    rows: list = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    @property
    def table(self) -> str:
        """Markdown table of the final-time risk statistics."""
        head = ("| N | eta | E R sgd | E R ddsmf | E R limit | Var R sgd | Var R ddsmf | rel. err. Var | "
                "Var/eta sgd |\n|---|---|---|---|---|---|---|---|---|")
        lines = [head]
        for r in self.rows:
            lines.append(f"| {r['N']} | {r['eta']:g} | {r['mean_sgd']:.5g} ± {r['sem_sgd']:.1e} | "
                         f"{_f(r.get('mean_ddsmf'))} | {_f(r.get('mean_limit'))} | "
                         f"{r['var_sgd']:.3e} ± {r['var_se_sgd']:.1e} | "
                         f"{_e(r.get('var_ddsmf'), r.get('var_se_ddsmf'))} | "
                         f"{_p(r.get('rel_err_var'), r.get('rel_err_var_se'))} | {r['var_sgd'] / r['eta']:.3e} |")
        lines.append("")
        for (m, N), f in self.slopes.items():
            interval = (f"95% [{f['ci95'][0]:.2f}, {f['ci95'][1]:.2f}]" if np.isfinite(f["ci95"][0])
                        else "no 95% interval: 2 etas")
            lines.append(f"slope of Var[R] against eta ({m}, N = {N}): " + (f.get("unfitted") or (
                f"{f['slope']:.3f} ± {f['se']:.3f} ({interval})")))
        for (m, N), f in self.mean_orders.items():
            lines.append(f"order of |E R {m} - E R sgd| in eta (N = {N}): "
                         + (f.get("unfitted") or f"{f['slope']:.2f} ± {f['se']:.2f}"))
        if self.meta.get("ddsmf_order") is not None and any(k[0] == "ddsmf" for k in self.results):
            dt = self.meta.get("ddsmf_dt")
            lines.append(f"DD-SMF: order {self.meta['ddsmf_order']}, Euler at dt = {'eta' if dt is None else f'{dt:g}'}"
                         + (", Richardson-extrapolated (dt and dt/2, coupled)" if self.meta.get("ddsmf_richardson")
                            else ""))
        if self.rule_note:
            lines.append(self.rule_note.rstrip("\n"))
        if self.meta.get("backend"):
            lines.append(f"SGD and the DD-SMF ran{backend_label(self.meta)} (the limit on numpy)")
        return "\n".join(lines)

    def __str__(self):
        return self.table

    def __post_init__(self):
        # a study read back by StudyIO.load / load_study holds plain data: rebuild the keyed objects
        self.t = np.asarray(self.t, dtype=float)
        self.results = {(_key(k) if isinstance(k, str) else k): (_result_from_plain(v) if isinstance(v, dict) else v)
                        for k, v in self.results.items()}
        for name in ("slopes", "mean_orders"):
            d = getattr(self, name)
            setattr(self, name, {(_fit_key(k) if isinstance(k, str) else k): _fit_from_plain(f) for k, f in d.items()})

    def _validate(self) -> None:
        """Refuse a loaded study whose fields disagree (:meth:`smfsym.studies.storage.StudyIO._validate`).

        ``etas`` and ``widths`` positive, finite and distinct; every result keyed by a method, an eta among
        ``etas`` (none for the limit) and a width among ``widths``; one row per (N, eta) and no other, with
        standard errors >= 0 or NaN; fits keyed by widths among ``widths``; ``meta.n_paths`` >= 2.
        """
        _sv.check_grid(self.etas, "etas")
        _sv.check_grid(self.widths, "widths")
        for (m, eta, N) in self.results:
            if m not in ("sgd", "ddsmf", "limit"):
                _sv.refuse(f"results.{m}|{eta}|{N}", "a result of 'sgd', 'ddsmf' or 'limit'", repr(m))
            if (eta is None) != (m == "limit") or (eta is not None and eta not in self.etas):
                _sv.refuse(f"results.{m}|{eta}|{N}", f"keyed by an eta among `etas` {self.etas[:8]} (none for "
                           "the limit)", eta)
            if N not in self.widths:
                _sv.refuse(f"results.{m}|{eta}|{N}", f"keyed by a width among `widths` {self.widths[:8]}", N)
        _sv.check_rows(self.rows)
        allowed = {"N": ("widths", self.widths), "eta": ("etas", self.etas)}
        for i, r in enumerate(self.rows):
            _sv.check_members(r, i, allowed)
            _sv.check_nonnegative(r, i, ("sem_sgd", "var_se_sgd", "sem_ddsmf", "var_se_ddsmf", "rel_err_var_se"))
            if ("sgd", r["eta"], r["N"]) not in self.results:  # the table's row summarises this result
                _sv.refuse(f"rows[{i}]", "the summary of a saved SGD result", f"no result sgd|{r['eta']}|{r['N']}")
        _sv.check_complete(self.rows, ("N", "eta"), [(N, e) for N in self.widths for e in self.etas])
        for name in ("slopes", "mean_orders"):
            for (m, N) in getattr(self, name):
                if N not in self.widths:
                    _sv.refuse(f"{name}.{m}|{N}", f"keyed by a width among `widths` {self.widths[:8]}", N)
        _sv.check_n_paths(self.meta)

    def save(self, path, *, overwrite: bool = False):
        """Write the study as JSON (see :class:`smfsym.io.persist.StudyIO`): per-path observables, rows, fits, meta."""
        plain = copy.copy(self)  # no __post_init__: the keyed objects become plain data only in the copy
        plain.results = {_key_text(k): _result_to_plain(r) for k, r in self.results.items()}
        plain.slopes = {f"{m}|{N}": f for (m, N), f in self.slopes.items()}
        plain.mean_orders = {f"{m}|{N}": f for (m, N), f in self.mean_orders.items()}
        return StudyIO.save(plain, path, overwrite=overwrite)

    def to_pandas(self):
        """Every saved time in long format: one row per (model, N, eta, t, observable, component, statistic).

        Columns ``model, N, eta, t, observable, component, statistic, value, se``; statistics
        ``mean`` and ``var`` over paths (the limit: ``mean`` only, its variance is 0).
        """
        try:
            import pandas as pd
        except ImportError:  # pragma: no cover - pandas is optional
            raise ImportError("`to_pandas` needs pandas: pip install pandas") from None
        return pd.DataFrame(self._long_rows(),
                            columns=["model", "N", "eta", "t", "observable", "component", "statistic", "value", "se"])

    def _long_rows(self) -> list:
        rows = []
        for (m, eta, N), res in self.results.items():
            for name in res.observables:
                s = res.summary(name)
                stats = (("mean", "sem"),) if m == "limit" else (("mean", "sem"), ("var", "var_se"))
                for k, t in enumerate(res.t):
                    for c in range(s["mean"].shape[1]):
                        for stat, se in stats:
                            rows.append((m, N, eta, float(t), name, c, stat, float(s[stat][k, c]),
                                         0.0 if m == "limit" else float(s[se][k, c])))
        return rows

    @property
    def rule_note(self) -> str:
        """One line on the DD-SMF's data rule: how it was chosen and how settled it is (empty if none)."""
        r = self.meta.get("rule")
        if not r:
            return ""
        if r.get("exact"):
            return "noise rule: the data law itself (exact)\n"
        ch = r["changes"][-1] if r.get("changes") else None
        moved = (f"; last refinement moved lim Var[R]/eta by {ch['lin_var']:.2%}, the limit's risk by {ch['risk']:.2%}"
                 if ch else "")
        state = {True: "settled", False: "NOT settled", None: "unchecked"}[r.get("converged")]
        return f"noise rule n_points = {r['n_points']} ({state} to {r['tol']:.1%}{moved})\n"

    def to_dict(self) -> dict:
        return {"etas": self.etas, "widths": self.widths, "t": self.t.tolist(), "rows": self.rows,
                "slopes": {f"{m}/N={N}": f for (m, N), f in self.slopes.items()},
                "mean_orders": {f"{m}/N={N}": f for (m, N), f in self.mean_orders.items()}, "meta": self.meta}

    def to_latex(self) -> str:
        """A ``tabular`` of the final-time table."""
        lines = [r"\begin{tabular}{rrrrrrr}", r"\hline",
                 r"$N$ & $\eta$ & $\mathbb{E}R$ SGD & $\mathbb{E}R$ DD-SMF & $\mathbb{E}R$ limit & "
                 r"$\mathrm{Var}R$ SGD & $\mathrm{Var}R$ DD-SMF \\", r"\hline"]
        for r in self.rows:
            lines.append(f"{r['N']} & {r['eta']:g} & {r['mean_sgd']:.5f} & {_f(r.get('mean_ddsmf'), 5)} & "
                         f"{_f(r.get('mean_limit'), 5)} & ${_tex_e(r['var_sgd'], r['var_se_sgd'])}$ & "
                         f"${_tex_e(r.get('var_ddsmf'), r.get('var_se_ddsmf'))}$ \\\\")
        lines += [r"\hline", r"\end{tabular}"]
        return "\n".join(lines)

    @property
    def n_panels(self) -> int:
        """Axes :meth:`plot` draws on (mean and Var/eta per width)."""
        return 2 * len(self.widths)

    def plot(self, path=None, observable: str = "risk", ax=None):
        """Mean (with 2 SE bands) and Var/eta (with 2 SE bands) of an observable against t.

        Parameters
        ----------
        path : str or Path, optional
            Save the figure there.
        observable : str
        ax : matplotlib Axes or array of them, optional
            Where to draw: two axes per width (mean, Var/eta), as an array of shape (n_widths, 2) or
            flat; default a new figure. Returns the figure drawn on.
        """
        import matplotlib.pyplot as plt

        nW = len(self.widths)
        if ax is None:
            fig, axes = plt.subplots(nW, 2, figsize=(10, 3.4 * nW), squeeze=False)
        else:
            flat = list(np.ravel(np.asarray(ax, dtype=object)))
            if len(flat) != 2 * nW or not all(hasattr(a, "fill_between") for a in flat):
                raise ValueError(f"`ax` must hold 2 matplotlib axes per width ({2 * nW} for widths {self.widths}: "
                                 f"mean and Var/eta); got {len(flat)} object(s).")
            axes = np.array(flat, dtype=object).reshape(nW, 2)
            fig = flat[0].figure
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for i, N in enumerate(self.widths):
            ax_m, ax_v = axes[i]
            lim = self.results.get(("limit", None, N))
            if lim is not None:
                ax_m.plot(lim.t, lim.mean(observable)[:, 0], "k-", lw=1.5, label="limit")
            for k, eta in enumerate(self.etas):
                c = colors[k % len(colors)]
                for m, ls in (("sgd", "-"), ("ddsmf", "--")):
                    res = self.results.get((m, eta, N))
                    if res is None:
                        continue
                    s = res.summary(observable)
                    mu, se = s["mean"][:, 0], s["sem"][:, 0]
                    ax_m.plot(res.t, mu, ls, color=c, label=f"{m} eta={eta:g}")
                    ax_m.fill_between(res.t, mu - 2 * se, mu + 2 * se, color=c, alpha=0.15)
                    v, vs = s["var"][:, 0] / eta, s["var_se"][:, 0] / eta
                    ax_v.plot(res.t, v, ls, color=c, label=f"{m} eta={eta:g}")
                    ax_v.fill_between(res.t, v - 2 * vs, v + 2 * vs, color=c, alpha=0.15)
            ax_m.set(title=f"mean {observable}, N = {N} (bands: 2 SE)", xlabel="t")
            ax_v.set(title=f"Var[{observable}] / eta, N = {N}", xlabel="t")
            ax_m.legend(fontsize=7)
            ax_v.legend(fontsize=7)
        if ax is None:
            fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=120)
            if ax is None:
                plt.close(fig)
        return fig


def _key_text(k) -> str:
    m, eta, N = k
    return f"{m}|{eta!r}|{N}"


def _key(text: str) -> tuple:
    m, eta, N = text.split("|")
    return (m, None if eta == "None" else float(eta), int(N))


def _fit_key(text: str) -> tuple:
    m, N = text.split("|")
    return (m, int(N))


def _fit_from_plain(f: dict) -> dict:
    return {**f, "ci95": tuple(f["ci95"])}


def _result_to_plain(r: MeanFieldResult) -> dict:
    return {"t": r.t, "observables": r.observables, "method": r.method, "eta": r.eta, "width": r.width,
            "info": r.info}


def _result_from_plain(d: dict) -> MeanFieldResult:
    info = dict(d.get("info") or {})
    if "coarse" in info:
        info["coarse"] = {k: np.asarray(v, dtype=float) for k, v in info["coarse"].items()}
    return MeanFieldResult(t=np.asarray(d["t"], dtype=float),
                           observables={k: np.asarray(v, dtype=float) for k, v in d["observables"].items()},
                           sim=None, method=d["method"], eta=d["eta"], width=int(d["width"]), info=info)


def _f(x, d=5):
    return "-" if x is None else f"{x:.{d}g}"


def _e(x, s):
    return "-" if x is None else f"{x:.3e} ± {s:.1e}"


def _p(x, s):
    if x is not None and not np.isfinite(x):
        return "n/a (a variance is 0)"
    return "-" if x is None else f"{100 * x:+.1f}% ± {100 * s:.1f}%"


def _tex_e(x, s):
    if x is None:
        return "-"
    e = int(np.floor(np.log10(abs(x)))) if x else 0
    return f"({x / 10**e:.2f} \\pm {s / 10**e:.2f})\\times 10^{{{e}}}"


def _resolve_rule(net, theta, n_points, values, t_end: float = 1.0, *, tol: float = RULE_TOL,
                  budget: int = RULE_BUDGET, risk_points: int = 16) -> dict:
    """The study's data rule: refined to ``tol`` (``n_points="auto"``) or the given one checked (refine.py).

    Both linearise the DD-SMF, which needs DG, the derivative of its drift: for a kinked unit (ReLU, abs) that
    holds a Dirac delta, refused here with what does run (:class:`~smfsym.data.means.KinkError`).
    """
    if not (n_points is None or (isinstance(n_points, str) and n_points == "auto")) and (
            not isinstance(n_points, (int, np.integer)) or isinstance(n_points, bool) or n_points < 1):
        raise ValueError(f"`n_points` must be a positive integer or 'auto'; got {n_points!r}.")
    try:
        if n_points is None or isinstance(n_points, str):
            return refine_rule(net, theta, t_end, tol=tol, max_points=budget, values=values,
                               risk_points=risk_points, stacklevel=4)
        return check_rule(net, theta, t_end, int(n_points), tol=tol, values=values, risk_points=risk_points,
                          stacklevel=4)
    except KinkError as exc:
        raise KinkError(
            f"`[meanfield] unit`: the derivative of the DD-SMF's drift (DG, which the rule check of the DD-SMF and "
            f"of the limit linearises, and the order-2 drift uses) holds a Dirac delta ({exc.deltas}), the "
            "derivative of a kink of the unit or loss (ReLU, abs); it has no numeric form, so it is refused. "
            "Mean-field SGD alone runs (methods = [\"sgd\"]); for the DD-SMF and the limit, smooth the kink "
            "(softplus for ReLU, sqrt(w**2 + eps**2) for abs(w)).", exc.deltas) from None


#: The former name of the study's rule diagnostic (kept for smfsym.studies.cost, which times it).
_captured = _resolve_rule


def meanfield_study(net, theta0=None, *, etas: Sequence[float], t_end: float, widths: Sequence[int] | None = None,
                    n_paths: int = 64, seed=0, methods: Sequence[str] = METHODS, values: Mapping | None = None,
                    observe: Observe | None = None, numerics: MeanFieldNumerics | None = None,
                    options: RunOptions | None = None, **legacy) -> MeanFieldStudy:
    """Run SGD, the DD-SMF and the deterministic limit for every (eta, N) and compare them.

    Parameters (plain data, so a spec file can drive it)
    ----------
    net : MeanFieldProblem
    theta0 : array (N, p) or InitialParticles, optional
        Initial particles; with ``widths`` the particles are drawn per width instead with
        :func:`particles`, as a :class:`smfsym.meanfield.InitialParticles` (``law``, ``seed``) says.
    etas : sequence of float
        Learning rates; every save time must be a multiple of each (SGD time is k eta).
    t_end : float
    widths : sequence of int, optional
    n_paths : int
        Paths per (eta, N) cell, at least 2 (a variance and its standard error need two).
    seed : int or SeedSequence
        Root seed; the cell (eta_i, N_j) uses its child ``spawn_key + (i, j)``, shared by SGD and the
        DD-SMF: both draw from the same stream, as different random variables (data samples against Gaussian
        increments), so their paths are not coupled (a measured correlation of their risks: 0.045 +- 0.058,
        audit 13); the standard error of a difference treats them as independent.
    methods : subset of ("sgd", "ddsmf", "limit")
    observe : Observe, optional
        What is observed (:class:`smfsym.meanfield.Observe`): ``observables`` among "risk", "output_at",
        "moments", ``inputs``, ``risk_points`` (Gauss points per continuous data coordinate of the
        risk), and ``n_saves``: saved times 0, t_end / n_saves, ..., t_end (default 5).
    numerics : MeanFieldNumerics, optional
        How the DD-SMF and the limit are computed (:class:`smfsym.meanfield.MeanFieldNumerics`):

        - ``order`` {1, 2}: drift of the DD-SMF, G (order 1) or G - (eta/2) DG G (order 2);
        - ``dt``: Euler step of the DD-SMF (default eta). At order 1 and dt = eta one Euler step has one
          SGD step's mean and covariance, so the run stays close to SGD; at order 2 the Euler error C dt
          is of the size of the order-1 model error unless it is extrapolated away (``richardson``);
        - ``richardson``: coupled Richardson extrapolation of the DD-SMF's Euler error (runs at dt and
          dt/2, see :func:`simulate_ddsmf`); default True for ``order=2`` (what makes it order 2
          against SGD at dt = eta), False for order 1;
        - ``n_points`` (int or "auto", the default): Gauss points per continuous data coordinate of the
          DD-SMF's and the limit's rule. "auto" refines the rule at the first width's particles until
          the linearised lim Var[R]/eta and the limit's risk at ``t_end`` settle to ``rule_tol``
          (:func:`smfsym.meanfield.refine.refine_rule`), warning (:class:`RuleResolutionWarning`) when
          ``rule_budget`` (the largest ``n_points`` tried) stops it first; a given number is checked
          against the next finer rule the same way (a warning when they differ by more than
          ``rule_tol``). Data sets and finite laws are used exactly (nothing to refine). What the study
          did is ``meta["rule"]``;
        - ``limit_dt``: the RK4 step of the deterministic limit.
    options : RunOptions or MeanFieldOptions, optional
        ``progress`` (False silences the progress lines, one per run on stderr, and the simulators'
        bars), ``executor`` (runs SGD and the DD-SMF of every cell on it; the deterministic limit, one
        path, stays here; every number is bitwise that of the serial study, see
        :mod:`smfsym.montecarlo.executors`) and, in a :class:`smfsym.meanfield.MeanFieldOptions`,
        ``max_work`` (the bound on the unit evaluations of each run, see :func:`simulate_meanfield_sgd`).
        ``backend`` (``"cupy"``, ``"array_api_strict"``; :mod:`smfsym.backends`) runs SGD and the DD-SMF of
        every cell on that array back end (the particles of all paths on the device, see
        :mod:`smfsym.meanfield.device`); the data rule's refinement and the deterministic limit (one path
        each, no per-path work) stay on the host with numpy. Not with an ``executor``.
    **legacy
        The old keywords (``observables``, ``n_saves``, ``risk_points``, ``inputs``; ``ddsmf_order``,
        ``ddsmf_dt``, ``ddsmf_richardson``, ``n_points``, ``rule_tol``, ``rule_budget``, ``limit_dt``;
        ``progress``, ``max_work``, ``executor``; ``particle_law``, ``particle_seed``) still work for one
        release, with a ``DeprecationWarning`` and the same numbers.

    Examples
    --------
    >>> import sympy as sp, smfsym
    >>> a, w, out = sp.symbols("a w out")
    >>> z = smfsym.normal("z")
    >>> net = smfsym.MeanFieldProblem(a * sp.tanh(w * z), (a, w), out, (out - sp.tanh(2 * z)) ** 2 / 2)
    >>> st = smfsym.meanfield_study(net, etas=[0.1, 0.05], widths=[50], t_end=0.5, n_paths=16,
    ...                            observe=smfsym.meanfield.Observe(n_saves=1))
    >>> sorted(st.slopes)
    [('ddsmf', 50), ('sgd', 50)]
    >>> st.meta["rule"]["converged"]
    True
    """
    cfg = _study_settings(net, theta0, etas, t_end, n_paths, methods, observe, numerics, options, legacy)
    etas, t_end, times, n_saves = cfg.etas, cfg.t_end, cfg.times, cfg.observe.n_saves
    widths, starts = _starts_per_width(net, cfg.theta0, widths, cfg.particles.law, cfg.particles.seed)
    nm, run = cfg.numerics, cfg.options
    # the rule first (cheap: deterministic, one path) so a bad one is reported before the long runs
    rule_info = (_resolve_rule(net, starts[widths[0]], nm.n_points, values, t_end, tol=cfg.rule_tol,
                               budget=cfg.rule_budget, risk_points=cfg.observe.risk_points)
                 if ("ddsmf" in methods or "limit" in methods) else None)
    n_points = rule_info["n_points"] if rule_info is not None else None
    obs_names = [cfg.observe.observables] if isinstance(cfg.observe.observables, str) else cfg.observe.observables
    if "risk" in obs_names and getattr(cfg.observe, "risk_rule", None) is None:
        # every E R and Var[R] below is evaluated on this rule: warn before the runs if it is coarse
        check_risk_rule(net, starts[widths[0]], cfg.observe.risk_points, values, stacklevel=3)
    observe = cfg.observe if n_saves is None else replace(cfg.observe, n_saves=None)  # the simulators' part
    # one child seed per (eta, N), shared by SGD and the DD-SMF: the estimates at different etas are
    # independent (a shared seed would replay the same sample prefix and correlate them), and any
    # (eta, N) cell is reproducible on its own
    root = study_seed(seed)
    cell_seed = {(i, j): np.random.SeedSequence(root.entropy, spawn_key=tuple(root.spawn_key) + (i, j))
                 for i in range(len(etas)) for j in range(len(widths))}

    say = ProgressLines("meanfield", len(widths) * (("limit" in methods) + len(etas) * (1 + ("ddsmf" in methods))),
                        run.progress)
    results = {}
    ddsmf_numerics = MeanFieldNumerics(order=nm.order, dt=cfg.ddsmf_dt, richardson=bool(cfg.richardson),
                                       n_points=n_points)
    for j, N in enumerate(widths):
        th = starts[N]
        if "limit" in methods:
            say(f"limit N={N}")
            results[("limit", None, N)] = simulate_meanfield_limit(
                net, th, t_end, dt=nm.limit_dt, save_at=times, n_points=n_points, values=values, observe=observe,
                options=MeanFieldOptions(max_work=run.max_work))
        for i, eta in enumerate(etas):
            n_steps = int(round(t_end / eta))
            cs = cell_seed[(i, j)]
            say(f"sgd eta={eta:g} N={N} ({n_paths} paths)")
            results[("sgd", eta, N)] = simulate_meanfield_sgd(net, th, eta, n_steps, n_paths=n_paths, seed=cs,
                                                              save_at=times, values=values, observe=observe,
                                                              options=run)
            if "ddsmf" in methods:
                say(f"ddsmf eta={eta:g} N={N} ({n_paths} paths)")
                results[("ddsmf", eta, N)] = simulate_ddsmf(net, th, eta, t_end, n_paths=n_paths, seed=cs,
                                                            save_at=times, values=values, observe=observe,
                                                            numerics=ddsmf_numerics, options=run)
    meta = {"t_end": t_end, "n_paths": n_paths, "ddsmf_order": nm.order, "ddsmf_richardson": bool(cfg.richardson),
            "ddsmf_dt": cfg.ddsmf_dt, "seed": str(seed_record(root)), "n_points": n_points}
    if rule_info is not None:
        meta["rule"] = rule_info
    meta.update(backend_meta(run.backend))  # SGD and the DD-SMF ran there (the limit on numpy)
    st = MeanFieldStudy(results=results, etas=etas, widths=widths, t=times, meta=meta)
    observables = cfg.observe.observables
    if "risk" not in (observables if not isinstance(observables, str) else [observables]):
        return st
    _fit_risk(st, results, etas, widths, methods, t_end)
    return st


#: The study's keywords before :class:`MeanFieldNumerics` (issue 16) -> its fields.
STUDY_NUMERICS = {"ddsmf_order": "order", "ddsmf_dt": "dt", "ddsmf_richardson": "richardson", "n_points": "n_points",
                  "rule_tol": "rule_tol", "rule_budget": "rule_budget", "limit_dt": "limit_dt"}


def _study_settings(net, theta0, etas, t_end, n_paths, methods, observe, numerics, options, legacy):
    """The settings of :func:`meanfield_study` from its objects and old keywords, checked before any work."""
    legacy = dict(legacy)
    theta0, drawn = initial_particles("meanfield_study", theta0, legacy)
    cfg = meanfield_settings("meanfield_study", legacy, observe=observe, options=options, numerics=numerics,
                             numerics_names=STUDY_NUMERICS, saves=False, backends=True,
                             observe_names=("observables", "inputs", "risk_points", "n_saves"))
    refuse_unused("meanfield_study", cfg.numerics, MeanFieldNumerics(), ("scheme", "rule"), "numerics")
    check_net(net)
    if cfg.options.executor is not None:
        cfg.options = cfg.options.replace(executor=check_executor(cfg.options.executor))
    try:
        etas = [positive(e, "etas") for e in etas]
    except TypeError:
        raise TypeError(f"`etas` must be a sequence of positive numbers; got {etas!r}.") from None
    if not etas:
        raise ValueError("`etas` must hold at least one learning rate.")
    if len(set(etas)) != len(etas):  # a fit over repeated etas divides by zero and looks resolved
        raise ValueError(f"`etas` must be distinct; got {etas}.")
    t_end = positive(t_end, "t_end")
    if not isinstance(n_paths, (int, np.integer)) or isinstance(n_paths, bool) or n_paths < 2:
        raise ValueError(f"`n_paths` must be an integer >= 2 (a variance over paths and its standard error need "
                         f"two); got {n_paths!r}.")
    nm = cfg.numerics
    if nm.order not in (1, 2) or isinstance(nm.order, bool):
        raise ValueError(f"`ddsmf_order` must be 1 or 2; got {nm.order!r}.")
    richardson = nm.order == 2 if nm.richardson is None else nm.richardson
    if not isinstance(richardson, (bool, np.bool_)):
        raise TypeError(f"`ddsmf_richardson` must be True, False or None; got {nm.richardson!r}.")
    ddsmf_dt = None if nm.dt is None else positive(nm.dt, "ddsmf_dt")
    bad = [m for m in methods if m not in METHODS]
    if bad or "sgd" not in methods:
        raise ValueError(f"`methods` must be a subset of {list(METHODS)} containing 'sgd'; got {list(methods)}.")
    n_saves = 5 if cfg.observe.n_saves is None else cfg.observe.n_saves
    if not isinstance(n_saves, (int, np.integer)) or n_saves < 1:
        raise ValueError(f"`n_saves` must be a positive integer; got {n_saves!r}.")
    times = np.linspace(0.0, t_end, n_saves + 1)
    for eta in etas:
        k = times / eta
        if np.any(np.abs(k - np.rint(k)) > 1e-9 * np.maximum(1, k)):
            raise ValueError(f"`etas`: the saved times, t_end * k / n_saves = {times.tolist()} (`t_end` = {t_end:g}, "
                             f"`n_saves` = {n_saves}), must be multiples of every eta, which SGD steps in; {eta:g} "
                             "does not divide them: choose etas that divide t_end / n_saves, or change "
                             "`observe.n_saves` or `t_end`.")
    cfg.__dict__.update(theta0=theta0, particles=drawn, etas=etas, t_end=t_end, times=times, richardson=richardson,
                        ddsmf_dt=ddsmf_dt, rule_tol=RULE_TOL if nm.rule_tol is None else nm.rule_tol,
                        rule_budget=RULE_BUDGET if nm.rule_budget is None else nm.rule_budget)
    return cfg


def _starts_per_width(net, theta0, widths, particle_law, particle_seed) -> tuple:
    """``(widths, {N: initial particles})``: the given particles, or particles drawn per width."""
    if widths is None:
        if theta0 is None:
            raise ValueError("give `theta0` (initial particles) or `widths` (particles drawn per width).")
        theta0 = check_particles(theta0, net.n_params)
        return [theta0.shape[0]], {theta0.shape[0]: theta0}
    if isinstance(widths, (str, bytes)) or not hasattr(widths, "__iter__"):
        raise TypeError(f"`widths` must be a sequence of positive integers; got {widths!r}.")
    widths = list(widths)
    if len(set(widths)) != len(widths):
        raise ValueError(f"`widths` must be distinct; got {widths!r}.")
    badw = [n for n in widths if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1]
    if badw or not widths:
        raise ValueError(f"`widths` must be positive integers; got {widths!r}.")
    for n in widths:
        check_particle_bytes(n, net.n_params, "`widths`:")
    return widths, {n: particles(net, n, particle_law, seed=particle_seed) for n in widths}


def _fit_risk(st: "MeanFieldStudy", results: dict, etas, widths, methods, t_end) -> None:
    """The risk's fits and table rows of a mean-field study: Var[R]/eta slopes, mean errors against SGD,
    and one row per (N, eta)."""
    for N in widths:
        lim = results.get(("limit", None, N))
        for m in ("sgd", "ddsmf"):
            if ("ddsmf" not in methods) and m == "ddsmf":
                continue
            sums = [results[(m, eta, N)].summary("risk") for eta in etas]
            st.slopes[(m, N)] = fit_slope(etas, [s["var"][-1, 0] for s in sums], [s["var_se"][-1, 0] for s in sums])
        for m in ("ddsmf", "limit"):
            if m not in methods:
                continue
            errs, ses = [], []
            for eta in etas:
                s = results[("sgd", eta, N)].summary("risk")
                if m == "limit":
                    o, os_ = lim.mean("risk")[-1, 0], 0.0
                else:
                    so = results[(m, eta, N)].summary("risk")
                    o, os_ = so["mean"][-1, 0], so["sem"][-1, 0]
                errs.append(abs(o - s["mean"][-1, 0]))
                ses.append(np.hypot(os_, s["sem"][-1, 0]))
            # only differences beyond their noise are a power of eta (fit_order's rule); the limit's SGD side is noisy
            st.mean_orders[(m, N)] = fit_slope(etas, errs, ses, resolve=RESOLVE)
        for eta in etas:
            s = results[("sgd", eta, N)].summary("risk")
            row = {"N": N, "eta": eta, "t": t_end, "mean_sgd": s["mean"][-1, 0], "sem_sgd": s["sem"][-1, 0],
                   "var_sgd": s["var"][-1, 0], "var_se_sgd": s["var_se"][-1, 0]}
            if "ddsmf" in methods:
                d = results[("ddsmf", eta, N)].summary("risk")
                row.update(mean_ddsmf=d["mean"][-1, 0], sem_ddsmf=d["sem"][-1, 0], var_ddsmf=d["var"][-1, 0],
                           var_se_ddsmf=d["var_se"][-1, 0])
                if row["var_sgd"] > 0 and row["var_ddsmf"] > 0:
                    rel = row["var_ddsmf"] / row["var_sgd"] - 1
                    row["rel_err_var"] = rel
                    row["rel_err_var_se"] = (1 + rel) * np.hypot(row["var_se_ddsmf"] / row["var_ddsmf"],
                                                                 row["var_se_sgd"] / row["var_sgd"])
                else:  # no relative error of a zero variance (a start at a stationary point): said, not nan%
                    row["rel_err_var"] = row["rel_err_var_se"] = float("nan")
            if lim is not None:
                row["mean_limit"] = lim.mean("risk")[-1, 0]
            st.rows.append({k: (float(v) if isinstance(v, (np.floating, float)) else v) for k, v in row.items()})
