r"""Two-point (n-point) motions of the momentum models against momentum SGD with shared samples.

docs/theory.md §5 and §7: the momentum SMF's noise columns are the same functions for every start, so
copies driven by one noise have velocity-block covariance sqrt(eta) Sigma(x^a, x^c), SGD's with shared
samples. Exact two-point statistics where the moments close (see :mod:`smfsym.studies.optimizer_weak_error`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import sympy as sp

from ..backends import get_backend
from ..montecarlo.checks import check_positive
from ..montecarlo.options import RunOptions
from ..simulation.exact import NotClosedError, PolynomialSpace, affine_in_params, exact_sde_mean, rational
from . import storage as _sv
from .storage import StudyIO
from ..symbolic.problem import Problem
from ..symbolic.sde import SDE
from .options import study_settings
from .common import RESOLVE, _across_signs, finish_figure, interval_text, order_label, orders_from_rows, plot_target
from ..optimizers.momentum import momentum_model
from .optimizer_weak_error import _momentum_step_map, _parse, exact_momentum_sgd_mean, study_steps

__all__ = ["npoint_model", "momentum_multipoint", "MomentumMultipoint"]


def npoint_model(sde: SDE, n: int) -> tuple:
    r"""The n-point motion of an SDE with explicit noise columns: n copies driven by the same noise.

    Returns (stacked SDE, list of per-point state tuples). For an SMF the blocks of its noise
    covariance are eta Sigma(x^a, x^c) (docs/theory.md §5); for an SME they are the products of
    square roots.
    """
    if sde.noise_kind != "matrix":
        raise ValueError(f"`sde` must have explicit noise columns for a symbolic n-point model; got "
                         f"'{sde.noise_kind}'.")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"`n` must be a positive integer; got {n!r}.")
    blocks, drift, rows = [], [], []
    for a in range(n):
        st = tuple(sp.Symbol(f"{s.name}__{a}", real=True) for s in sde.state)
        sub = dict(zip(sde.state, st))
        blocks.append(st)
        drift += [e.xreplace(sub) for e in sde.drift]
        rows.append(sde.diffusion.xreplace(sub))
    D = sp.Matrix.vstack(*rows)
    out = SDE(drift, D, [s for b in blocks for s in b], eta=sde.eta, model=f"{sde.model}, {n}-point",
              order=sde.order, problem=sde.problem)
    return out, blocks


_STATS = ("product", "covariance", "sqdist")


@dataclass
class MomentumMultipoint(StudyIO):
    """Result of :func:`momentum_multipoint`: rows (eta, h, model, stat, sgd, value, error) and
    orders[(model, stat)] fitted against h = sqrt(eta); saves, loads, plots and converts like every
    study."""

    etas: list
    models: list
    stats: list
    rows: list
    orders: dict

    _text_fields = ()

    def __post_init__(self):
        # a saved study writes the (model, statistic) keys as text: read them back as pairs
        self.orders = {_pair(k): v for k, v in self.orders.items()}

    def _validate(self) -> None:
        """Refuse a loaded study whose fields disagree (:meth:`smfsym.studies.storage.StudyIO._validate`).

        ``etas`` positive, finite and distinct, ``models`` distinct, ``stats`` distinct and known; at least one
        row, one per (eta, model, statistic) and no other, with ``h = sqrt(eta)`` and ``error == value - sgd``;
        one order per (model, statistic), consistent and fitted on at most ``len(etas)`` points; SGD's ``sgd``
        the same in every row of one (eta, statistic), every row's ``t`` the same horizon, and each order the
        refit of its rows (the study's ``_fit_orders``).
        """
        _sv.check_grid(self.etas, "etas")
        _sv.check_names(self.models, "models")
        _sv.check_names(self.stats, "stats")
        for i, s_ in enumerate(self.stats):
            if s_ not in _STATS:
                _sv.refuse(f"stats[{i}]", f"one of {list(_STATS)}", repr(s_))
        _sv.check_rows(self.rows)
        allowed = {"eta": ("etas", self.etas), "model": ("models", self.models), "stat": ("stats", self.stats)}
        for i, r in enumerate(self.rows):
            _sv.check_members(r, i, allowed)
            # the figure's abscissa: the study writes float(sqrt(eta)) for the step of the chain
            if not abs(r["h"] - math.sqrt(r["eta"])) <= 1e-12 * math.sqrt(r["eta"]):
                _sv.refuse(f"rows[{i}].h", f"sqrt(eta) = {math.sqrt(r['eta'])!r}", r["h"])
            _sv.check_difference(r, i)
        _sv.check_complete(self.rows, ("eta", "model", "stat"),
                           [(e, m, s_) for e in self.etas for m in self.models for s_ in self.stats])
        _sv.check_order_keys(self.orders, [(m, s_) for m in self.models for s_ in self.stats])
        for (m, s_), o in self.orders.items():
            _sv.check_order(o, f"orders.({m}, {s_})", len(self.etas))
        # computed once: SGD's value per (eta, statistic), every run stopping at the one horizon
        _sv.check_shared(self.rows, ("eta", "stat"), ("sgd",), "SGD's moments are computed once per eta")
        for i, r in enumerate(self.rows):
            _sv.check_time(r["t"], f"rows[{i}].t", self.rows[0]["t"],
                           "`rows[0].t`: every eta's run stops at the study's horizon")
        refit = _fit_orders(self.rows, self.models, self.stats)
        for (m, s_), o in list(self.orders.items()):
            self.orders[(m, s_)] = _sv.check_refit(
                o, refit[(m, s_)], f"orders.({m}, {s_})",
                legacy=lambda k=(m, s_): _across_signs(lambda: _fit_orders(self.rows, self.models, self.stats))[k])

    @property
    def table(self) -> str:
        return repr(self)

    @property
    def n_panels(self) -> int:
        """Axes :meth:`plot` draws on (one per statistic)."""
        return len(self.stats)

    def __repr__(self) -> str:
        lines = [f"{'eta':>10} {'model':>6} {'statistic':>11} {'SGD':>12} {'model':>12} {'error':>11}"]
        for r in self.rows:
            lines.append(f"{r['eta']:>10.4g} {r['model']:>6} {r['stat']:>11} {r['sgd']:>12.6g} {r['value']:>12.6g} "
                         f"{r['error']:>11.3e}")
        lines.append("fitted orders in h = sqrt(eta) (exact errors):")
        for (m, st), o in self.orders.items():
            lines.append(f"  {m:>6} {st:>11}: {o.slope:.3f}  {interval_text(o)}")
        return "\n".join(lines)

    def _long_rows(self) -> list:
        return [(r["model"], r["eta"], r["stat"], r["value"], 0.0, None) for r in self.rows]

    def to_latex(self) -> str:
        """The table as a LaTeX ``tabular`` (exact values: no standard errors)."""
        body = [f"{r['eta']:.4g} & {r['model']} & {r['stat']} & {r['sgd']:.6g} & {r['value']:.6g} & "
                f"{r['error']:.3e} \\\\" for r in self.rows]
        return ("\\begin{tabular}{rlrrrr}\n$\\eta$ & model & statistic & SGD & model & error \\\\\n\\hline\n"
                + "\n".join(body) + "\n\\end{tabular}")

    def plot(self, path=None, ax=None):
        """Log-log |error| against h = sqrt(eta), one panel per statistic. ``path``: write the figure
        there; ``ax``: an axis (one statistic) or a sequence of axes. Returns the figure."""
        fig, axes, path, own = plot_target(path, ax, n_panels=len(self.stats), figsize=(4.2, 3.8))
        for ax_, st in zip(axes, self.stats):
            for m in self.models:
                rs = [r for r in self.rows if r["model"] == m and r["stat"] == st and abs(r["error"]) > 0]
                if rs:
                    ax_.loglog([r["h"] for r in rs], [abs(r["error"]) for r in rs], "o-",
                               label=f"{m} ({order_label(self.orders[(m, st)])})")
            ax_.set_xlabel(r"$h = \sqrt{\eta}$")
            ax_.set_title(f"{st}: |model - momentum SGD|", fontsize=9)
            ax_.legend(fontsize=7)
        return finish_figure(fig, path, own=own)


def _pair(key):
    """``("smf2", "covariance")`` from itself or from its text ``"('smf2', 'covariance')"`` (never eval'd)."""
    if isinstance(key, tuple):
        return key
    parts = [q.strip().strip("'\"") for q in str(key).strip("()").split(",")]
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"saved study: `orders` keys must be (model, statistic) pairs; got {str(key)[:40]!r}.")
    return tuple(parts)


def _check_options(options) -> None:
    """Refuse run settings an exact study cannot use: a back end other than numpy (by name, with the reason)."""
    if options is not None and isinstance(options, RunOptions) and get_backend(options.backend).name != "numpy":
        raise ValueError(f"`backend`: momentum_multipoint computes exact moments on the host (40-digit matrix powers "
                         f"and exponentials, no Monte Carlo), so there is nothing to run on an array back end; got "
                         f"{options.backend!r}. Simulate both processes with simulate_momentum_sgd and "
                         "smfsym.simulate, which take it.")
    study_settings("momentum_multipoint", None, options, {}, supported=("progress",))


def momentum_multipoint(problem: Problem, starts, t_end: float, etas: Sequence[float], lam: float, *,
                        models: Sequence[str] = ("smf1", "smf2"), stats: Sequence[str] = _STATS,
                        nesterov: bool = False, options: RunOptions | None = None) -> MomentumMultipoint:
    r"""Exact two-point statistics of momentum SGD (shared samples) against the momentum models' two-point
    motions (one noise for both starts), docs/theory.md §5 and §7.

    ``starts`` is (2, d) (initial velocities 0). Statistics of the first coordinates: ``"product"``
    E[X(a) X(b)], ``"covariance"`` and ``"sqdist"`` E|X(a) - X(b)|^2. Needs the moments to close (loss
    quadratic in the parameters, polynomial in the data, batch size 1) and explicit noise columns (an
    SMF, or an SME with a polynomial square root); otherwise simulate both with
    :func:`simulate_momentum_sgd` and :func:`smfsym.simulate` from the two starts.

    Nothing is simulated: every number is a matrix power or exponential in 40-digit arithmetic on the host,
    so ``options`` (a :class:`~smfsym.RunOptions`, for the registry's uniform call) takes the defaults only,
    and ``RunOptions(backend=...)`` other than numpy is refused by name (the simulators named above take it).

    Examples
    --------
    >>> import sympy as sp, smfsym
    >>> from smfsym.studies.momentum_multipoint import momentum_multipoint
    >>> x = sp.Symbol("x")
    >>> p = smfsym.Problem((1 + smfsym.rademacher("r")) * x**2 / 2, [x])
    >>> st = momentum_multipoint(p, [[1.0], [-1.0]], 1.0, [1/100, 1/400, 1/1600], lam=1.0, models=["smf2"],
    ...                          stats=["covariance"])
    >>> round(st.orders[("smf2", "covariance")].slope)  # an O(h) quantity with relative error O(h^2)
    3
    """
    _check_options(options)
    if not isinstance(problem, Problem):
        raise TypeError(f"`problem` must be a smfsym.Problem; got {type(problem).__name__}.")
    starts = np.asarray(starts, dtype=float)
    d = problem.dim
    if starts.shape != (2, d) or not np.all(np.isfinite(starts)):
        raise ValueError(f"`starts` must be two finite points, shape (2, {d}); got {starts.shape}.")
    bad = [s for s in stats if s not in _STATS]
    if bad or not stats:
        raise ValueError(f"`stats` must be among {list(_STATS)}; got {list(stats)}.")
    # distinct etas whose h = sqrt(eta) divides t_end: rows at one horizon (they were fitted across t = 1.039,
    # 0.990 and 1.0), as in momentum_weak_error
    t_end, etas, steps = study_steps(t_end, etas, step="h")
    if len(etas) < 2:
        raise ValueError(f"`etas` must hold at least two learning rates (an order is fitted); got {etas}.")
    lam = check_positive(lam, "lam")
    if not (problem.is_polynomial and affine_in_params(problem) and problem.batch_size == 1):
        raise NotClosedError("exact two-point moments need grad f affine in x, a loss polynomial in the data and "
                             "batch size 1; simulate both processes instead.")
    lam_r = rational(lam)
    twos = {}
    for m in models:
        kind, order = _parse(m)
        M, blocks = npoint_model(momentum_model(problem, kind, order, nesterov=nesterov, lam=lam_r), 2)
        twos[m] = (M, blocks)
    z0 = np.concatenate([starts[0], np.zeros(d), starts[1], np.zeros(d)])
    rows = []
    for eta, k in zip(etas, steps):
        er = rational(eta)
        h_r = sp.sqrt(er)
        t = rational(k) * h_r if h_r.is_Rational else k * float(h_r)
        P = momentum_model(problem, "gf", 1).state[d:]
        maps, st = _momentum_step_map(problem, P, er, 1 - lam_r * h_r, nesterov, points=2)

        def stat_values(mean, xa, xb):
            out = {}
            if "product" in stats or "covariance" in stats:
                prod = mean(xa[0] * xb[0])
                out["product"] = prod
                if "covariance" in stats:
                    out["covariance"] = prod - mean(xa[0]) * mean(xb[0])
            if "sqdist" in stats:
                out["sqdist"] = mean(sum((u - v) ** 2 for u, v in zip(xa, xb)))
            return out

        sgd = stat_values(lambda phi: exact_momentum_sgd_mean(problem, phi, st, z0, er, 1 - lam_r * h_r, k,
                                                              step_map=maps), st[:d], st[2 * d: 3 * d])
        for m, (M, blocks) in twos.items():
            space = PolynomialSpace(M.state, 2)
            try:
                val = stat_values(lambda phi: exact_sde_mean(M, phi, z0, er, t, space), blocks[0][:d],
                                  blocks[1][:d])
            except sp.PolynomialError:
                raise NotClosedError(f"model {m!r}: its two-point generator is not polynomial (a square root "
                                     "Sigma^{1/2} in the noise); use an SMF, or simulate both processes.") from None
            for s_ in stats:
                rows.append(dict(eta=eta, h=float(h_r), t=float(t), model=m, stat=s_, sgd=sgd[s_], value=val[s_],
                                 error=val[s_] - sgd[s_]))
    return MomentumMultipoint(etas, list(models), list(stats), rows, _fit_orders(rows, models, stats))


def _fit_orders(rows, models, stats) -> dict:
    """(model, statistic) -> the order of its exact errors in h = sqrt(eta) (the study's fit, and load_study's
    refit of a saved one)."""
    orders = {}
    for s_ in stats:  # the exact fit of schedule and momentum studies, statistic by statistic
        fits = orders_from_rows([r for r in rows if r["stat"] == s_], models, True, RESOLVE, xkey="h")
        orders.update({(m, s_): o for m, o in fits.items()})
    return orders
