"""What the studies share: model names, order fits and argument checks.

Every argument of a study is validated here before any simulation starts
(docs/theory.md §8): a bad horizon must not produce a bogus order table.
"""
from __future__ import annotations

import sys
import time

import numpy as np
import sympy as sp

from ..compile import CompiledExprs
from ..engine import BlowUpError, check_int, check_positive, resolve_seed
from ..models import gradient_flow, sme, smf
from ..problem import Problem
from ..solvers import get_solver

__all__ = ["build_model", "MODELS", "OrderWarning", "fit_order", "default_scheme", "check_common"]

MODELS = ("gf", "sme1", "sme2", "smf1", "smf2")


class OrderWarning(UserWarning):
    """A convergence order could not be resolved above the Monte Carlo noise."""


class DivergenceWarning(UserWarning):
    """A Monte Carlo estimate is dominated by diverging or heavy-tailed paths."""


def build_model(problem: Problem, name: str):
    """An SDE from a model name: gf, gf2, sme1, sme2, smf1, smf2."""
    table = {"gf": lambda: gradient_flow(problem, 1), "gf2": lambda: gradient_flow(problem, 2),
             "sme1": lambda: sme(problem, 1), "sme2": lambda: sme(problem, 2),
             "smf1": lambda: smf(problem, 1), "smf2": lambda: smf(problem, 2)}
    if name not in table:
        raise ValueError(f"`models` entries must be among {sorted(table)}; got {name!r}.")
    return table[name]()


def default_scheme(sde) -> str:
    """weak2 where its derivatives exist (explicit, smooth noise), else euler."""
    return "weak2" if sde.noise_kind == "matrix" and not sde.nondifferentiable() else "euler"


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


def _phi_function(phi, params, values):
    if callable(phi) and not isinstance(phi, sp.Basic):
        return phi
    return PhiFunction(phi, params, values)


class PhiFunction:
    """A sympy test function compiled on states (P, [n,] d) -> (P, [n]); pickles as its expression.

    Executors' workers receive the expression and compile it once on first use (a compiled
    function itself does not pickle).
    """

    def __init__(self, phi, params, values):
        self.phi, self.params, self.values = phi, tuple(params), dict(values or {})
        self._ce = CompiledExprs([phi], self.params, self.values)

    def __getstate__(self):
        return {"phi": self.phi, "params": self.params, "values": self.values}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._ce = None

    def __call__(self, X):
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
    >>> from smfsym.solvers import get_solver
    >>> increments_for(get_solver("weak2"), "auto"), increments_for(get_solver("euler"), "gaussian")
    ('discrete', 'gaussian')
    """
    return "discrete" if increments != "gaussian" and solver.discrete else "gaussian"


def check_common(problem, *, t_end, seed, n_paths, dt_fraction, on_nonfinite, scheme,
                 blowup_threshold=None) -> dict:
    """Checks shared by :func:`weak_error` and :func:`multipoint`; returns the normalised values."""
    if not isinstance(problem, Problem):
        raise TypeError(f"`problem` must be a smfsym.Problem; got {type(problem).__name__}.")
    out = dict(t_end=check_positive(t_end, "t_end"), n_paths=check_int(n_paths, "n_paths"),
               dt_fraction=check_positive(dt_fraction, "dt_fraction"))
    if out["dt_fraction"] > 1:
        raise ValueError(f"`dt_fraction` must be in (0, 1] (solver step as a fraction of eta); got {dt_fraction!r}.")
    if isinstance(seed, np.random.Generator):
        raise TypeError("`seed` must be an int or a SeedSequence (a study spawns streams from it); got a Generator.")
    resolve_seed(seed)
    if on_nonfinite not in ("raise", "mask"):
        raise ValueError(f"`on_nonfinite` must be 'raise' or 'mask'; got {on_nonfinite!r}.")
    out["solver"] = check_scheme(scheme)
    out["blowup_threshold"] = check_positive(blowup_threshold, "blowup_threshold", allow_none=True)
    return out


def warn_if_unresolved(what: str, value: float, se: float, peer_se: float) -> None:
    """Warn when an estimate is non-finite or its s.e. is far above its peer's (SGD against model: the
    models approximate SGD's law, so comparable standard errors are expected)."""
    if not (np.isfinite(value) and np.isfinite(se)) or (peer_se > 0 and se > 10 * peer_se):
        import warnings

        warnings.warn(
            f"{what} = {value:.6g} +- {se:.3g} is not resolved (standard error {se / peer_se if peer_se else float('inf'):.3g} "
            "times the compared run's): diverging or heavy-tailed paths dominate it. Pass on_nonfinite='mask' with a "
            "`blowup_threshold` to drop diverging paths (they are counted in the `lost` columns).",
            DivergenceWarning, stacklevel=3)


def seed_sequence(seed) -> np.random.SeedSequence:
    return seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)


def with_context(exc: BlowUpError, what: str) -> BlowUpError:
    """A blow-up inside a study, naming the run and the ways out."""
    return BlowUpError(f"{what}: {exc} In a study: pass scheme='tamed' and/or on_nonfinite='mask' "
                       "(lost paths are then reported per model and eta).")


def lost_cell(frac: float) -> str:
    """A lost-path fraction for tables: '0' when none were lost."""
    return "0" if frac == 0 else f"{frac:.2%}"


def fit_order(etas, errs, ses=None) -> tuple:
    """Slope of log|err| against log eta with a 95% interval.

    With standard errors, points are weighted by (|err| / se)^2 (delta method).
    The half-width is the larger of 1.96 noise-based standard errors and a
    Student-t (n - 2 degrees of freedom) multiple of the residual-based one, so
    curvature in the errors (pre-asymptotic etas) widens the interval honestly;
    exact errors use the residual scatter alone.
    """
    from scipy.stats import t as student_t

    x, y = np.log(np.asarray(etas, float)), np.log(np.abs(np.asarray(errs, float)))
    n = len(x)
    if n < 2:
        return float("nan"), float("nan"), float("nan")
    w = np.ones(n) if ses is None else (np.abs(errs) / np.maximum(ses, 1e-300)) ** 2
    xm = np.sum(w * x) / w.sum()
    sxx = np.sum(w * (x - xm) ** 2)
    slope = np.sum(w * (x - xm) * (y - np.sum(w * y) / w.sum())) / sxx
    resid = y - (np.sum(w * y) / w.sum() + slope * (x - xm))
    se_res = np.sqrt(np.sum(w * resid**2) / max(n - 2, 1) / sxx) if n > 2 else 0.0
    se_noise = 0.0 if ses is None else np.sqrt(1.0 / sxx)
    half = max(1.96 * se_noise, (student_t.ppf(0.975, n - 2) * se_res) if n > 2 else 0.0)
    return float(slope), float(slope - half), float(slope + half)




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
