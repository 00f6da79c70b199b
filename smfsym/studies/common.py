"""What the studies share: model names, order fits and argument checks.

Every argument of a study is validated here before any simulation starts
(docs/theory.md §8): a bad horizon must not produce a bogus order table.
"""
from __future__ import annotations

import contextvars
import numbers
import warnings
import sys
import time
from collections.abc import Mapping

import numpy as np
import sympy as sp

from ..symbolic.lambdify import CompiledExprs
from .storage import OrderWarning  # noqa: F401 - defined beside Order (storage refits orders); re-exported
from ..montecarlo.checks import CHAIN_REMEDY, SDE_REMEDY, BlowUpError, check_int, check_positive
from ..montecarlo.options import MAX_PATH_STEPS  # the default bound of check_path_steps (RunOptions.max_path_steps)
from ..montecarlo.seeds import resolve_seed
from ..symbolic.model_names import DEFAULT_MODELS
from ..symbolic.models import build_model
from ..symbolic.problem import Problem, exact_rationals
from .._checks import as_expr
from ..numerics.solvers import get_solver

__all__ = ["build_model", "MODELS", "OrderWarning", "fit_order", "Fit", "EXACT_ZERO", "RESOLVE", "resolved",
           "order_label", "plot_target", "finish_figure", "check_horizon", "default_scheme", "check_common",
           "MAX_PATH_STEPS", "check_path_steps", "check_study_work"]

MODELS = DEFAULT_MODELS


class DivergenceWarning(UserWarning):
    """A Monte Carlo estimate is dominated by diverging or heavy-tailed paths."""


def default_scheme(sde) -> str:
    """weak2 where its derivatives exist (explicit, smooth noise), else euler."""
    return "weak2" if sde.noise_kind == "matrix" and not sde.nondifferentiable() else "euler"


def bind_for_exact(problem, phi, vals: Mapping):
    """``(problem, phi)`` with ``vals`` substituted, for the exact moments, or None where they cannot serve.

    They serve where the loss is polynomial in the data with grad f affine in x and ``vals`` binds every
    constant of the loss (in ``phi`` too) and nothing else: no law parameter, no symbolic batch size, none
    left symbolic. The numbers enter as the exact rationals of the doubles the simulators use
    (:func:`~smfsym.symbolic.problem.exact_rationals`). Otherwise None: the study simulates, binding ``vals``
    (and saying there what is missing).
    """
    from ..simulation.exact import affine_in_params

    if (callable(phi) and not isinstance(phi, sp.Basic)) or not vals:
        return None
    if not (problem.is_polynomial and affine_in_params(problem)):  # the structure first: nothing is rebuilt
        return None
    if set(vals) != set(problem.constants) or problem.law_parameters:
        return None
    try:
        rationals = exact_rationals(vals)
    except TypeError:  # NaN or infinite: the simulation's checks say so
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the problem's own warnings were given when it was built
        bound = problem.bind_constants(rationals)
    return bound, as_expr(phi).xreplace(rationals)


def check_phi(phi, params):
    """``phi`` must be a callable or a sympy expression in the parameters (strings are refused:
    parsing them would evaluate code)."""
    if callable(phi) and not isinstance(phi, sp.Basic):
        return phi
    if isinstance(phi, (int, float)) and not isinstance(phi, bool):
        phi = sp.Float(phi)
    if not isinstance(phi, sp.Expr):
        raise TypeError(f"`phi` must be a sympy expression in {list(params)} or a callable on states; "
                        f"got {phi!r} ({type(phi).__name__}).")
    return phi


def _phi_function(phi, params, values, backend=None):
    if callable(phi) and not isinstance(phi, sp.Basic):
        return phi
    return PhiFunction(phi, params, values, backend)


class PhiFunction:
    """A sympy test function compiled on states (P, [n,] d) -> (P, [n]); pickles as its expression.

    Executors' workers receive the expression and compile it once on first use (a compiled
    function itself does not pickle).
    """

    def __init__(self, phi, params, values, backend=None):
        self.phi, self.params, self.values = phi, tuple(params), dict(values or {})
        self._ce = CompiledExprs([phi], self.params, self.values)
        #: compiled for an array back end too (``RunOptions(backend=...)``): states stay on the device
        self._dev = None if backend is None else CompiledExprs([phi], self.params, self.values, backend=backend)

    def __getstate__(self):
        return {"phi": self.phi, "params": self.params, "values": self.values, "_dev": None}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._ce = None

    def __call__(self, X):
        if self._dev is not None and type(X) is not np.ndarray:  # a device array (the CPU stand-in of CuPy's too)
            return self._dev.evaluate_list([X[..., i] for i in range(X.shape[-1])])[0]
        if self._ce is None:
            self._ce = CompiledExprs([self.phi], self.params, self.values)
        return self._ce.evaluate([X[..., i] for i in range(X.shape[-1])])[..., 0]


def check_scheme(scheme):
    """None (automatic) or a solver name / class / instance, resolved now so a typo fails first."""
    return None if scheme is None else get_solver(scheme)


def scheme_for(sde, solver):
    """The solver a study uses for ``sde``: the given one, else :func:`default_scheme`."""
    return get_solver(default_scheme(sde)) if solver is None else solver


INCREMENTS = ("auto", "discrete", "gaussian")


def check_increments(increments) -> str:
    """The `increments` argument of a study: "auto" (the default), "discrete" or "gaussian"."""
    if not isinstance(increments, str) or increments not in INCREMENTS:
        raise ValueError(f"`increments` must be one of {', '.join(map(repr, INCREMENTS))}; got {increments!r}.")
    return increments


def increments_for(solver, increments: str) -> str:
    """Increments a study gives ``solver`` (docs/theory.md §9).

    A weak error or a multi-point statistic is an expectation, so the two-/three-point
    increments a scheme declares (Kloeden-Platen 14.1, 14.2) give the same weak order at
    a lower cost: "auto" and "discrete" use them wherever the scheme declares them, and
    Gaussian increments elsewhere; "gaussian" always draws normals.

    Examples
    --------
    >>> from smfsym.numerics.solvers import get_solver
    >>> increments_for(get_solver("weak2"), "auto"), increments_for(get_solver("euler"), "gaussian")
    ('discrete', 'gaussian')
    """
    return "discrete" if increments != "gaussian" and solver.discrete else "gaussian"


def check_common(problem, *, t_end, seed, n_paths, dt_fraction, on_nonfinite, scheme,
                 blowup_threshold=None) -> dict:
    """Checks shared by :func:`weak_error` and :func:`multipoint`; returns the normalised values."""
    if not isinstance(problem, Problem):
        raise TypeError(f"`problem` must be a smfsym.Problem; got {type(problem).__name__}.")
    try:
        n_paths_checked = check_int(n_paths, "n_paths", minimum=2)
    except ValueError:  # one message for 0, 1 and negatives: the reason is the same
        raise ValueError(f"`n_paths` must be at least 2: a Monte Carlo standard error needs two paths (with one it "
                         f"would read 0 and count the point as resolved); got {n_paths!r}.") from None
    out = dict(t_end=check_positive(t_end, "t_end"), n_paths=n_paths_checked,
               dt_fraction=check_positive(dt_fraction, "dt_fraction"))
    if out["dt_fraction"] > 1:
        raise ValueError(f"`dt_fraction` must be in (0, 1] (solver step as a fraction of eta); got {dt_fraction!r}.")
    study_seed(seed)
    if on_nonfinite not in ("raise", "mask"):
        raise ValueError(f"`on_nonfinite` must be 'raise' or 'mask'; got {on_nonfinite!r}.")
    out["solver"] = check_scheme(scheme)
    out["blowup_threshold"] = check_positive(blowup_threshold, "blowup_threshold", allow_none=True)
    return out


def warn_if_unresolved(what: str, value: float, se: float, peer_se: float, lost: float = 0.0,
                       masked: bool = False) -> None:
    """Warn when an estimate is non-finite or its s.e. is far above its peer's (SGD against model: the
    models approximate SGD's law, so comparable standard errors are expected). ``lost`` is the fraction
    of paths dropped and ``masked`` whether the run dropped them (on_nonfinite='mask'): the warning then
    says what happened instead of advising the option already in use."""
    if not (np.isfinite(value) and np.isfinite(se)) or (peer_se > 0 and se > 10 * peer_se):
        if masked:  # the option is in use: say what happened, not "pass on_nonfinite='mask'"
            how = ("every path was lost (on_nonfinite='mask' dropped them): lower eta or use the tamed scheme."
                   if lost >= 1 else
                   f"diverging or heavy-tailed paths dominate it ({lost:.2%} of the paths already dropped): a lower "
                   "`blowup_threshold` drops the paths that diverge without overflowing (counted in the `lost` "
                   "columns).")
            warnings.warn(f"{what} = {value:.6g} +- {se:.3g} is not resolved: {how}", DivergenceWarning, stacklevel=3)
            return
        warnings.warn(
            f"{what} = {value:.6g} +- {se:.3g} is not resolved (standard error {se / peer_se if peer_se else float('inf'):.3g} "
            "times the compared run's): diverging or heavy-tailed paths dominate it. Pass on_nonfinite='mask' with a "
            "`blowup_threshold` to drop diverging paths (they are counted in the `lost` columns).",
            DivergenceWarning, stacklevel=3)


def backend_meta(backend) -> dict:
    """What a saved Monte Carlo study records of its back end: nothing on numpy (the default), else the back
    end and its precision, since other random streams give other numbers from the same seed."""
    from ..backends import get_backend

    b = get_backend("numpy" if backend is None else backend)
    return {} if b.name == "numpy" else b.describe()


def backend_label(meta) -> str:
    """``" on jax (gpu, float64)"`` for a study whose Monte Carlo ran on another back end than numpy, else ``""``:
    the tables, figures and LaTeX captions say where their numbers came from (the same seed gives other
    numbers there).

    Examples
    --------
    >>> backend_label({"backend": "jax", "dtype": "float64", "device": "gpu"})
    ' on jax (gpu, float64)'
    >>> backend_label({"backend": "numpy"}) == backend_label({}) == ""
    True
    """
    name = meta.get("backend") if isinstance(meta, Mapping) else None
    if not isinstance(name, str) or name == "numpy":
        return ""
    details = [str(meta[k]) for k in ("device", "dtype") if isinstance(meta.get(k), str)]
    return f" on {name}" + (f" ({', '.join(details)})" if details else "")


def study_seed(seed) -> np.random.SeedSequence:
    """A study's root seed: a new SeedSequence with the entropy and spawn key of ``seed`` and no spawn history.

    A study spawns its streams from this copy, never from the caller's object (``spawn`` advances a
    SeedSequence: a second study from the same object would get other streams), so an int, the
    SeedSequence of that int and a saved study's record of it give the same numbers, every time.
    ``None`` draws fresh entropy; :func:`seed_record` is what the study records of it, so that the run can
    be repeated.

    Examples
    --------
    >>> import numpy as np
    >>> ss = np.random.SeedSequence(3)
    >>> [c.spawn_key for c in study_seed(ss).spawn(2)], ss.n_children_spawned
    ([(0,), (1,)], 0)
    """
    if isinstance(seed, np.random.Generator):
        raise TypeError("`seed` must be an int or a SeedSequence (a study spawns streams from it); got a Generator.")
    ss = resolve_seed(seed)
    return np.random.SeedSequence(ss.entropy, spawn_key=ss.spawn_key, pool_size=ss.pool_size)


def seed_record(ss: np.random.SeedSequence):
    """What a study records of its root seed (``meta["seed"]``): the int a plain seed was (also the entropy
    that ``seed=None`` drew), else the SeedSequence; either can be given back as ``seed=``."""
    plain = not ss.spawn_key and isinstance(ss.entropy, (int, np.integer))
    return int(ss.entropy) if plain else ss


#: The ways out of a blow-up in a study that takes a solver and drops lost paths (weak error, multi-point).
TAME_OR_MASK = ("pass numerics=smfsym.Numerics(scheme='tamed') and/or "
                "options=smfsym.RunOptions(on_nonfinite='mask') (lost paths are then reported per model and eta).")
#: ... in a study that takes a solver but keeps every path (update maps).
TAME = "pass numerics=smfsym.Numerics(scheme='tamed') where the drift is stiff, or lower eta."
#: ... in a study that takes neither (SVAG, scaling rules).
SMALLER = "lower eta or the horizon."


def with_context(exc: BlowUpError, what: str, ways: str = TAME_OR_MASK) -> BlowUpError:
    """A blow-up inside a study, naming the run and the ways out that this study takes (``ways``): they replace
    the driver's general advice, which may name settings the study does not take."""
    head = str(exc)
    for remedy in (SDE_REMEDY, CHAIN_REMEDY):  # the driver's general advice, replaced by `ways`
        head = head.replace(f"; {remedy}", "")
    head = head.rstrip(".")
    err = BlowUpError(f"{what}: {head}. In this study: {ways}")
    err.loss = exc.loss
    return err


def lost_cell(frac: float) -> str:
    """A lost-path fraction for tables: '0' when none were lost."""
    return "0" if frac == 0 else f"{frac:.2%}"


#: An exact error at or below ``EXACT_ZERO * max(1, |reference|)`` is rounding (40-digit moments read
#: as doubles), not a resolved point: the one threshold of every order fit (:func:`fit_order`).
EXACT_ZERO = 1e-12

#: Default number of standard errors a Monte Carlo error must exceed to enter an order fit.
RESOLVE = 3.0


class Fit(tuple):
    """``(slope, low, high)`` from :func:`fit_order`, with ``n_used`` (the resolved points fitted).

    A 3-tuple (it unpacks as ``s, lo, hi``); a study stores ``Order(*fit, fit.n_used)``
    (:class:`~smfsym.io.persist.Order`).
    """

    def __new__(cls, slope: float, low: float, high: float, n_used: int):
        obj = super().__new__(cls, (float(slope), float(low), float(high)))
        obj.n_used = int(n_used)
        return obj

    def __getnewargs__(self):
        return (*self, self.n_used)


def resolved(errs, ses=None, refs=None, resolve: float = RESOLVE) -> np.ndarray:
    """Which errors enter an order fit: finite, and above the noise.

    A point with a standard error > 0 (Monte Carlo) must exceed ``resolve`` standard errors; one
    without (exact) must exceed ``EXACT_ZERO * max(1, |ref|)`` (``ref``: the SGD value it is
    compared with; 0 when not given).

    Examples
    --------
    >>> resolved([1e-3, 2e-4, 1e-15], ses=[1e-4, 1e-4, 0.0]).tolist()
    [True, False, False]
    """
    e = np.abs(np.asarray(errs, dtype=float))
    s = np.zeros_like(e) if ses is None else np.asarray(ses, dtype=float)
    r = np.zeros_like(e) if refs is None else np.abs(np.asarray(refs, dtype=float))
    exact_floor = EXACT_ZERO * np.maximum(1.0, np.nan_to_num(r))
    return np.isfinite(e) & np.isfinite(s) & np.where(s > 0, e > resolve * s, e > exact_floor)


def fit_order(etas, errs, ses=None, *, refs=None, resolve: float = RESOLVE, what: str | None = None,
              stacklevel: int = 2) -> Fit:
    """Slope of log|err| against log eta on the resolved points, with a 95% interval.

    The one order fit of every study (weak errors, n-point rates, schedules, momentum): points
    are kept by :func:`resolved` (one threshold, :data:`EXACT_ZERO`, for exact errors;
    ``resolve`` standard errors for Monte Carlo ones). With standard errors, points are weighted
    by (|err| / se)^2 (delta method). The half-width is the larger of 1.96 noise-based standard
    errors and a Student-t (n - 2 degrees of freedom) multiple of the residual-based one, so
    curvature in the errors (pre-asymptotic etas) widens the interval honestly; exact errors use
    the residual scatter alone; two points give the slope between them and no interval (NaN bounds:
    nothing measures whether those errors are asymptotic yet, and for Monte Carlo errors an interval from
    the noise alone read as the order: a secant slope 0.90 [0.85, 0.95] for an order-1 model whose errors
    were still pre-asymptotic, audit 10). Fewer than two resolved points give NaNs, and with ``what``
    (e.g. ``"sme1"``) an :class:`OrderWarning` naming it when the errors are Monte Carlo ones. With
    ``refs`` (the SGD values) and ``what``, an error as large as the statistic itself at every fitted
    point (the model wrong by 100% or more, e.g. of the wrong sign) warns: for a statistic whose size
    scales with eta the slope then measures that size, not convergence.

    Returns
    -------
    Fit
        ``(slope, low, high)`` with ``n_used``.

    Examples
    --------
    >>> f = fit_order([0.1, 0.05, 0.025], [2e-2, 5e-3, 1.25e-3])
    >>> round(f[0], 6), f.n_used
    (2.0, 3)
    >>> f = fit_order([0.1, 0.05], [2e-2, 5e-3])  # two points: a slope, no interval
    >>> round(f[0], 6), f[1:], f.n_used
    (2.0, (nan, nan), 2)
    >>> fit_order([0.1, 0.05], [2e-2, 5e-3], [1e-4, 1e-4])[1:]  # Monte Carlo ones too
    (nan, nan)
    """
    from scipy.stats import t as student_t

    etas, errs = np.asarray(etas, float), np.asarray(errs, float)
    keep = resolved(errs, ses, refs, resolve)
    keep, changed = _one_sign(etas, errs, keep, what, stacklevel + 1)
    n = int(keep.sum())
    if n < 2:  # (a sign change that left fewer than two points has said so)
        if not changed and what is not None and ses is not None and np.any(np.asarray(ses, float) > 0):
            warnings.warn(f"the order of {what} cannot be resolved: only {n} of {len(errs)} errors exceed {resolve} "
                          "standard errors; raise `n_paths` or use larger etas.", OrderWarning, stacklevel=stacklevel)
        return Fit(float("nan"), float("nan"), float("nan"), n)
    x, y = np.log(etas[keep]), np.log(np.abs(errs[keep]))
    s = None if ses is None else np.asarray(ses, float)[keep]
    noisy = s is not None and bool(np.all(s > 0))
    w = (np.abs(errs[keep]) / s) ** 2 if noisy else np.ones(n)
    xm = np.sum(w * x) / w.sum()
    sxx = np.sum(w * (x - xm) ** 2)
    slope = np.sum(w * (x - xm) * (y - np.sum(w * y) / w.sum())) / sxx
    resid = y - (np.sum(w * y) / w.sum() + slope * (x - xm))
    if refs is not None and what is not None:
        rel = np.abs(errs[keep]) / np.maximum(np.abs(np.asarray(refs, float)[keep]), np.finfo(float).tiny)
        if np.all(rel >= 1):
            warnings.warn(f"the error of {what} is as large as the statistic itself at every fitted step (relative "
                          f"error {rel.min():.3g} to {rel.max():.3g}; the model may have the wrong sign): the slope "
                          f"{slope:.3g} follows the size of the statistic, not convergence; compare the values.",
                          OrderWarning, stacklevel=stacklevel)
    if n == 2:  # an interval from two points reads as an order: the noise is measured, the curvature is not
        return Fit(float(slope), float("nan"), float("nan"), n)
    se_res = np.sqrt(np.sum(w * resid**2) / max(n - 2, 1) / sxx) if n > 2 else 0.0
    se_noise = np.sqrt(1.0 / sxx) if noisy else 0.0
    half = max(1.96 * se_noise, (student_t.ppf(0.975, n - 2) * se_res) if n > 2 else 0.0)
    return Fit(slope, slope - half, slope + half, n)


#: Set (by :func:`_across_signs`) to refit orders as smfsym did before the one-sign rule.
_ACROSS_SIGNS = contextvars.ContextVar("smfsym_fit_across_sign_changes", default=False)


def _across_signs(refit):
    """``refit()`` by the order rule of earlier versions (:func:`fit_order` on every resolved point, across sign
    changes), its warnings silenced: what a loaded study's stored order may legitimately be."""
    token = _ACROSS_SIGNS.set(True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return refit()
    finally:
        _ACROSS_SIGNS.reset(token)


def _one_sign(etas, errs, keep, what, stacklevel):
    """The resolved points an order is fitted on, cut where the errors change sign.

    An error c_p eta^p + c_q eta^q (q > p) with opposite signs crosses zero at some eta: near it |error|
    dips and follows no power of eta, and a fit across it (in log|error|) can give a tight interval around
    a wrong slope (momentum's sme2: 1.26 [0.98, 1.55] for order 2, audit 6). Only the points at the
    smallest etas that share the smallest eta's sign are kept (the others are before the leading term
    dominates), with an :class:`OrderWarning`; returns ``(keep, whether points were dropped)``.
    """
    idx = [i for i in np.argsort(etas, kind="stable") if keep[i]]
    signs = np.sign(errs[idx])
    if len(idx) < 2 or np.all(signs == signs[0]) or _ACROSS_SIGNS.get():
        return keep, False
    cut = int(np.argmax(signs != signs[0]))
    kept = np.zeros_like(keep)
    kept[idx[:cut]] = True
    warnings.warn(f"the errors of {what or 'the fit'} change sign between the steps {etas[idx[cut - 1]]:.4g} and "
                  f"{etas[idx[cut]]:.4g}: |error| follows no power of the step across the change (the leading term "
                  f"does not dominate yet at the larger steps), so the order is fitted on the {cut} point(s) at the "
                  "smallest steps with one sign" + (" and is unresolved" if cut < 2 else "") + "; add smaller steps.",
                  OrderWarning, stacklevel=stacklevel + 1)
    return kept, True


def order_label(order) -> str:
    """How a figure names a fitted order: "slope 1.98", or "unresolved" (fewer than two resolved points).

    Examples
    --------
    >>> order_label((2.013, 1.9, 2.1, 4)), order_label((float("nan"), float("nan"), float("nan"), 1))
    ('slope 2.01', 'unresolved')
    """
    slope = order[0]
    n_used = order[3] if len(order) > 3 else getattr(order, "n_used", 2)
    return f"slope {slope:.2f}" if n_used >= 2 and np.isfinite(slope) else "unresolved"


def interval_text(order, digits: int = 3) -> str:
    """A fitted order's 95% interval as tables print it: "[1.950, 2.070]", or "(no interval: 2 points)"
    where the fit has none.

    Examples
    --------
    >>> interval_text((2.01, 1.95, 2.07, 4), 2), interval_text((2.0, float("nan"), float("nan"), 2))
    ('[1.95, 2.07]', '(no interval: 2 points)')
    """
    low, high = order[1], order[2]
    if np.isfinite(low) and np.isfinite(high):
        return f"[{low:.{digits}f}, {high:.{digits}f}]"
    n_used = order[3] if len(order) > 3 else getattr(order, "n_used", 2)
    return f"(no interval: {n_used} points)" if n_used >= 2 and np.isfinite(order[0]) else "(unresolved)"


def plot_target(path=None, ax=None, *, n_panels: int = 1, figsize=(5.5, 4)):
    """The figure and axes a study's ``plot(path=None, ax=None)`` draws on.

    Every study plots through this: ``plot("file.png")`` (a positional str or PathLike is the
    path), ``plot(ax=ax)`` draws on a given axis (or a sequence of ``n_panels`` axes), and an
    axis passed first (``plot(ax)``) is taken as the axis. Returns ``(fig, axes, path, own)`` with
    ``axes`` a list of ``n_panels`` axes and ``own`` True when the figure was made here (then
    its layout is the study's to tidy); pass them to :func:`finish_figure`.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> fig, axes, path, own = plot_target("f.png")
    >>> len(axes), str(path), own
    (1, 'f.png', True)
    >>> plot_target(path=3)
    Traceback (most recent call last):
    ...
    TypeError: `path` must be a file name (str or os.PathLike); got 3 (int).
    """
    import os

    if path is not None and ax is None and _is_axes(path) or (
            ax is not None and path is None and isinstance(ax, (str, os.PathLike))):
        path, ax = ax, path  # plot(ax) or plot(ax="f.png"): each where it belongs
    if path is not None and not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"`path` must be a file name (str or os.PathLike); got {path!r} ({type(path).__name__}).")
    if ax is None:
        import matplotlib.pyplot as plt

        width, height = figsize
        fig, axes = plt.subplots(1, n_panels, figsize=(width * n_panels, height), squeeze=False)
        return fig, list(axes[0]), path, True
    axes = [ax] if _is_axes(ax) else list(ax) if hasattr(ax, "__iter__") and not isinstance(ax, str) else None
    if axes is None or not all(_is_axes(a) for a in axes):
        raise TypeError(f"`ax` must be a matplotlib Axes (or a sequence of {n_panels}); got {type(ax).__name__}.")
    if len(axes) != n_panels:
        raise ValueError(f"`ax` must hold {n_panels} axes (one per panel); got {len(axes)}.")
    return axes[0].figure, axes, path, False


def _is_axes(obj) -> bool:
    try:
        from matplotlib.axes import Axes
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        return False
    return isinstance(obj, Axes)


def finish_figure(fig, path=None, *, own: bool = True):
    """Lay out a study's figure (when it made it) and write it to ``path`` (when given); returns it."""
    if own:
        fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=150)
    return fig


def check_path_steps(max_path_steps, work: float, detail: str,
                     remedy: str = "lower `n_paths`, use larger etas, or raise `max_path_steps`") -> None:
    """Refuse, before anything runs, a study's Monte Carlo work of ``work`` path-steps over ``max_path_steps``:
    the one work bound of the studies (``detail`` says how ``work`` was counted).

    Examples
    --------
    >>> check_path_steps(1e11, 2e6, "100 paths x 20000 steps")
    >>> check_path_steps(1e11, 2e12, "10^6 paths x 2 x 10^6 steps")
    Traceback (most recent call last):
    ...
    ValueError: the Monte Carlo work is 2e+12 path-steps (10^6 paths x 2 x 10^6 steps), over `max_path_steps` = 1e+11: lower `n_paths`, use larger etas, or raise `max_path_steps`.
    """
    if isinstance(max_path_steps, bool) or not isinstance(max_path_steps, numbers.Real) or not max_path_steps > 0:
        raise ValueError(f"`max_path_steps` must be a positive number; got {max_path_steps!r}.")
    if work > max_path_steps:
        raise ValueError(f"the Monte Carlo work is {work:.3g} path-steps ({detail}), over `max_path_steps` = "
                         f"{max_path_steps:.3g}: {remedy}.")


def check_study_work(max_path_steps, n_paths: int, steps, models, dt_fraction: float, *, n_starts: int = 1,
                     chain: bool = True, what: str = "SGD", remedy: str | None = None) -> None:
    """:func:`check_path_steps` for a study that runs, per learning rate, the optimizer's chain (``chain``) for
    ``steps`` steps and each simulated model in ``models`` with step dt = ``dt_fraction`` x the chain's step,
    coupled with dt/2 (3 / dt_fraction model steps per chain step), on ``n_paths`` paths from ``n_starts``
    starts; ``remedy`` (optional) replaces the default ways out in the message.

    Examples
    --------
    >>> check_study_work(1e6, 10**8, [65536, 131072], ["smf1"], 0.125)
    Traceback (most recent call last):
    ...
    ValueError: the Monte Carlo work is 4.92e+14 path-steps (100000000 paths x 196608 SGD steps over the etas, models ['smf1'] at dt and dt/2), over `max_path_steps` = 1e+06: lower `n_paths`, use larger etas, or raise `max_path_steps`.
    """
    n_paths, dt_fraction = check_int(n_paths, "n_paths"), check_positive(dt_fraction, "dt_fraction")
    n_steps = sum(int(k) for k in steps)
    models = list(models)
    work = n_paths * n_starts * n_steps * ((1 if chain else 0) + len(models) * 3 / dt_fraction)
    starts = f" x {n_starts} starts" if n_starts != 1 else ""
    detail = f"{n_paths} paths{starts} x {n_steps} {what} steps over the etas, models {models} at dt and dt/2"
    if remedy is None:
        check_path_steps(max_path_steps, work, detail)
    else:
        check_path_steps(max_path_steps, work, detail, remedy)


def check_horizon(t_end: float, etas, argument: str = "etas") -> list:
    """Steps ``k = t_end / eta`` per learning rate; refuses learning rates that do not divide ``t_end``.

    SGD runs whole steps, so with ``t_end / eta`` not an integer it would stop at
    ``round(t_end / eta) eta != t_end``: rows at different times, one order fitted across
    them, and titles that say ``t_end``. Floating rounding (relative 1e-9) is tolerated.

    Examples
    --------
    >>> check_horizon(1.0, [0.1, 0.05])
    [10, 20]
    >>> check_horizon(1.0, [0.4])
    Traceback (most recent call last):
    ...
    ValueError: `etas`: eta = 0.4 does not divide `t_end` = 1 (t_end / eta = 2.5): SGD would stop at 2 steps, t = 0.8, not t_end, and errors at different times would be compared. Use learning rates with t_end / eta an integer (e.g. t_end / 2^j).
    """
    out = []
    for eta in etas:
        q = t_end / eta
        k = int(round(q))
        if k < 1 or abs(q - k) > 1e-9 * q:
            raise ValueError(
                f"`{argument}`: eta = {eta:g} does not divide `t_end` = {t_end:g} (t_end / eta = {q:.10g}): SGD would "
                f"stop at {k} steps, t = {k * eta:g}, not t_end, and errors at different times would be compared. "
                "Use learning rates with t_end / eta an integer (e.g. t_end / 2^j).")
        out.append(k)
    return out


class ProgressLines:
    """Per-model, per-eta progress lines on stderr, for logs and non-interactive runs.

    ``progress=False`` silences them (the CLI's ``--quiet``); otherwise each unit of work prints
    one line such as ``weak_error: smf2 eta=0.05 (3/8), 12.3 s elapsed`` when it starts.

    Examples
    --------
    >>> lines = ProgressLines("weak_error", 2, progress=False)
    >>> lines("sgd eta=0.1")  # silent
    """

    def __init__(self, study: str, total: int, progress):
        self.study, self.total, self.on = study, total, progress is not False
        self.done, self.t0 = 0, time.perf_counter()

    def __call__(self, what: str) -> None:
        self.done += 1
        if self.on:
            print(f"{self.study}: {what} ({self.done}/{self.total}), {time.perf_counter() - self.t0:.1f} s elapsed",
                  file=sys.stderr, flush=True)


def orders_from_rows(rows, models, exact, resolve, xkey="eta"):
    """model -> :class:`~smfsym.studies.storage.Order` of a schedule or momentum study's rows: exact errors above
    rounding, or Monte Carlo ones above ``resolve`` standard errors, fitted against ``xkey`` (eta, or h for
    momentum). The studies fit with it, and a loaded study is checked against it."""
    from .storage import Order

    out = {}
    for m in models:
        rs = [r for r in rows if r["model"] == m]
        # exact rows have se 0: resolved() keeps those above EXACT_ZERO * max(1, |sgd|), Monte Carlo ones above
        # `resolve` standard errors, and fit_order names a model it cannot resolve
        fit = fit_order([r[xkey] for r in rs], [r["error"] for r in rs], None if exact else [r["se"] for r in rs],
                        refs=[r["sgd"] for r in rs], resolve=resolve, what=m, stacklevel=3)
        out[m] = Order(*fit, fit.n_used)  # n_used: the points fitted (fewer where the errors change sign)
    return out
