"""Checking the SDEs against SGD: weak-error studies and multi-point statistics.

MATH.md sections 2-5. Every estimate carries its standard error (or is exact),
fitted orders carry intervals, and only errors resolved above the noise enter
a fit.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import sympy as sp

from ._checks import numeric_values
from .compile import CompiledExprs
from .expectation import is_polynomial_in
from .exact import NotClosedError, PolynomialSpace, affine_in_params, exact_sde_mean, exact_sgd_mean
from .models import gradient_flow, sme, smf
from .persist import Order, StudyIO
from .problem import Problem
from .sgd import simulate_sgd
from .simulate import simulate

__all__ = ["weak_error", "WeakErrorStudy", "multipoint", "MultipointStudy", "build_model", "MODELS",
           "OrderWarning"]

MODELS = ("gf", "sme1", "sme2", "smf1", "smf2")


class OrderWarning(UserWarning):
    """A convergence order could not be resolved above the Monte Carlo noise."""


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


def _phi_function(phi, params, values):
    if callable(phi):
        return phi
    expr = sp.sympify(phi)
    ce = CompiledExprs([expr], params, values)
    return lambda X: ce.evaluate([X[..., i] for i in range(X.shape[-1])])[..., 0]


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


@dataclass
class WeakErrorStudy(StudyIO):
    """Result of :func:`weak_error`.

    ``rows``: one dict per (eta, model) with the SGD and model values, the error
    (model - SGD), its standard error (0 when exact), the method and, for Monte
    Carlo, the solver's own error estimate. ``orders``: model -> (slope, low,
    high, n_used).
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

    def _long_rows(self) -> list:
        out = []
        for r in self.rows:
            out.append((r["model"], r["eta"], "error", r["error"], r["se"], r["t"]))
            out.append((r["model"], r["eta"], "E phi (model)", r["value"], r["value_se"], r["t"]))
        for eta in self.etas:  # SGD once per eta
            r = next(r for r in self.rows if r["eta"] == eta)
            out.append(("sgd", eta, "E phi (SGD)", r["sgd"], r["sgd_se"], r["t"]))
        return out

    def errors(self, model: str) -> np.ndarray:
        return np.array([r["error"] for r in self.rows if r["model"] == model])

    def __repr__(self) -> str:
        lines = [f"{'eta':>8} {'model':>6} {'E phi SGD':>12} {'E phi model':>12} {'error':>11} {'s.e./exact':>11}"]
        for r in self.rows:
            se = "exact" if r["method"] == "exact" else f"{r['se']:.2e}"
            lines.append(f"{r['eta']:>8.4g} {r['model']:>6} {r['sgd']:>12.6g} {r['value']:>12.6g} "
                         f"{r['error']:>11.3e} {se:>11}")
        lines.append("fitted orders (slope of log|error| vs log eta, 95% interval):")
        for m, (s, lo, hi, n) in self.orders.items():
            lines.append(f"  {m:>6}: {s:.3f}  [{lo:.3f}, {hi:.3f}]  ({n} etas)")
        return "\n".join(lines)

    def plot(self, ax=None, path=None):
        """Log-log plot of |error| against eta with reference slopes 1 and 2."""
        import matplotlib

        if ax is None:
            matplotlib.use("Agg") if path is not None and matplotlib.get_backend() == "" else None
            import matplotlib.pyplot as plt

            fig, ax = plt.subplots(figsize=(5.5, 4))
        else:
            fig = ax.figure
        from matplotlib.ticker import NullFormatter

        etas = np.array(self.etas)
        style = {"gf": ("s", "-"), "sme1": ("o", "-"), "sme2": ("o", "-"), "smf1": ("x", "--"), "smf2": ("x", "--")}
        for m in self.models:
            rs = [r for r in self.rows if r["model"] == m]
            e = np.array([abs(r["error"]) for r in rs])
            se = np.array([r["se"] for r in rs])
            slope = self.orders[m][0]
            marker, ls = style.get(m, ("o", "-"))
            # SME and SMF share their one-point law, so their curves may coincide: dashed crosses on top
            ax.errorbar([r["eta"] for r in rs], e, yerr=2 * se if se.any() else None, marker=marker, ls=ls,
                        capsize=3, markersize=7 if marker == "x" else 5, label=f"{m} (slope {slope:.2f})")
        top = max(abs(r["error"]) for r in self.rows)
        for p, style in ((1, ":"), (2, "--")):
            ax.plot(etas, top * (etas / etas.max()) ** p, "k" + style, lw=1, label=f"slope {p}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(r"learning rate $\eta$")
        ax.set_ylabel(r"$|\mathbb{E}\,\varphi(X_{k\eta}) - \mathbb{E}\,\varphi(x_k)|$")
        ax.set_title("weak error against SGD")
        ax.legend(fontsize=8)
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=150)
        return fig

    def to_latex(self) -> str:
        """A booktabs table of the study."""
        head = " & ".join([r"$\eta$", r"$\mathbb{E}\varphi$ (SGD)"] + [f"{m} error" for m in self.models])
        lines = [r"\begin{tabular}{" + "r" * (2 + len(self.models)) + "}", r"\toprule", head + r" \\", r"\midrule"]
        for eta in self.etas:
            rs = {r["model"]: r for r in self.rows if r["eta"] == eta}
            first = next(iter(rs.values()))
            cells = [f"{eta:g}", f"{first['sgd']:.6g}"]
            for m in self.models:
                r = rs[m]
                cells.append(f"{r['error']:.3e}" if r["method"] == "exact" else f"{r['error']:.2e} $\\pm$ {r['se']:.1e}")
            lines.append(" & ".join(cells) + r" \\")
        lines.append(r"\midrule")
        lines.append(" & ".join(["order", ""] + [f"{self.orders[m][0]:.2f} [{self.orders[m][1]:.2f}, {self.orders[m][2]:.2f}]"
                                                  for m in self.models]) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}"]
        return "\n".join(lines)


def weak_error(problem: Problem, phi, x0, t_end: float, etas: Sequence[float], *,
               models: Sequence[str] = MODELS, method: str = "auto", seed=0, n_paths: int = 200_000,
               dt_fraction: float = 0.125, values: Mapping | None = None, progress: bool | None = None,
               resolve: float = 3.0) -> WeakErrorStudy:
    """Weak error of each model against SGD over a range of learning rates (MATH.md section 2).

    Parameters
    ----------
    problem : Problem
    phi : sympy expression in the parameters, or callable on states (P, d)
        The test function.
    x0 : array_like (d,)
    t_end : float
        Horizon; SGD runs k = round(t_end / eta) steps and models are compared at t = k eta.
    etas : sequence of float
    models : sequence of str
        Among "gf", "sme1", "sme2", "smf1", "smf2".
    method : {"auto", "exact", "montecarlo"}
        "auto" uses exact moments when they close (gradient affine in x, polynomial phi,
        batch size 1), Monte Carlo otherwise.
    seed, n_paths : Monte Carlo settings.
    dt_fraction : float
        Solver step as a fraction of eta (weak order-2 solver where the noise allows).
    resolve : float
        An error enters the order fit only if it exceeds ``resolve`` standard errors.

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
    if not isinstance(problem, Problem):
        raise TypeError(f"`problem` must be a smfsym.Problem; got {type(problem).__name__}.")
    if method not in ("auto", "exact", "montecarlo"):
        raise ValueError(f"`method` must be 'auto', 'exact' or 'montecarlo'; got {method!r}.")
    etas = sorted((float(e) for e in etas), reverse=True)
    if len(etas) < 2 or any(e <= 0 for e in etas):
        raise ValueError(f"`etas` must hold at least two positive learning rates; got {etas}.")
    from .sgd import problem_symbols

    vals = numeric_values(values, problem_symbols(problem))
    x0 = np.atleast_1d(np.asarray(x0, dtype=float))
    if x0.shape != (problem.dim,):
        raise ValueError(f"`x0` must have shape ({problem.dim},); got {x0.shape}.")
    sdes = {m: build_model(problem, m) for m in models}
    use_exact = False
    if method in ("auto", "exact"):
        phi_expr = None if callable(phi) else sp.sympify(phi)
        use_exact = (phi_expr is not None and not (phi_expr.free_symbols - set(problem.params))
                     and is_polynomial_in(phi_expr, problem.params) and affine_in_params(problem)
                     and problem.batch_size == 1 and problem.is_polynomial and not vals)
        if method == "exact" and not use_exact:
            raise NotClosedError("`method='exact'` needs grad f affine in x, a polynomial phi, batch size 1 "
                                 "and no numeric `values`; use method='montecarlo'.")
    space = (PolynomialSpace(problem.params, sp.Poly(sp.expand(phi), *problem.params).total_degree())
             if use_exact else None)
    rows, ts = [], []
    for i, eta in enumerate(etas):
        k = max(1, int(round(t_end / eta)))
        t = k * eta
        ts.append(t)
        if use_exact:
            sgd_val = exact_sgd_mean(problem, phi, x0, eta, k, space)
            for m, sde in sdes.items():
                val = exact_sde_mean(sde, phi, x0, eta, t, space)
                rows.append(dict(eta=eta, t=t, model=m, sgd=sgd_val, sgd_se=0.0, value=val, value_se=0.0,
                                 error=val - sgd_val, se=0.0, method="exact", solver_error=0.0))
            continue
        f = _phi_function(phi, problem.params, vals)
        ss = np.random.SeedSequence(seed).spawn(len(etas))[i]
        s_sgd, s_sde = ss.spawn(2)
        r = simulate_sgd(problem, x0, k, eta, n_paths=n_paths, seed=s_sgd, functions={"phi": f}, store=False,
                         values=vals, progress=progress)
        sgd_val, sgd_se = float(r.mean("phi")[-1]), float(r.sem("phi")[-1])
        for m, sde in sdes.items():
            scheme = default_scheme(sde)
            dt = eta * dt_fraction
            runs = []
            # a noise-free model (gradient flow) needs one path, not n_paths
            n_model = n_paths if sde.n_noise else 1
            for h in (dt, dt / 2):
                rr = simulate(sde, x0, t, eta=eta, dt=h, n_paths=n_model, scheme=scheme, seed=s_sde,
                              functions={"phi": f}, store=False, values=vals, progress=progress)
                runs.append((float(rr.mean("phi")[-1]), float(rr.sem("phi")[-1])))
            (v1, e1), (v2, e2) = [(v, 0.0 if not sde.n_noise else e) for v, e in runs]
            order = 2.0 if scheme == "weak2" else 1.0
            solver_err = abs(v1 - v2) / (2**order - 1)  # Richardson estimate of the error left at dt/2
            val, vse = v2, e2
            err_se = float(np.hypot(vse, sgd_se))
            rows.append(dict(eta=eta, t=t, model=m, sgd=sgd_val, sgd_se=sgd_se, value=val, value_se=vse,
                             error=val - sgd_val, se=err_se, method=f"montecarlo ({scheme}, dt={dt / 2:.3g})",
                             solver_error=solver_err))
    orders = {}
    for m in models:
        rs = [r for r in rows if r["model"] == m]
        if use_exact:
            keep = [r for r in rs if abs(r["error"]) > 1e-14 * max(1.0, abs(r["sgd"]))]
            s, lo, hi = fit_order([r["eta"] for r in keep], [r["error"] for r in keep])
        else:
            keep = [r for r in rs if abs(r["error"]) > resolve * r["se"]]
            s, lo, hi = fit_order([r["eta"] for r in keep], [r["error"] for r in keep], [r["se"] for r in keep])
            if len(keep) < 2:
                warnings.warn(
                    f"the order of {m} cannot be resolved: only {len(keep)} of {len(rs)} errors exceed "
                    f"{resolve} standard errors; raise `n_paths` or use larger etas.", OrderWarning, stacklevel=2)
        orders[m] = Order(s, lo, hi, len(keep))
    return WeakErrorStudy(problem, phi, etas, list(models), rows, orders, ts,
                          meta=dict(method="exact" if use_exact else "montecarlo", n_paths=n_paths, seed=seed))


# --------------------------------------------------------------------------- multi-point

def _mean_se(v):
    v = np.asarray(v, dtype=float)
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(v.size))


def _stat_product(X):
    return _mean_se(X[:, 0, 0] * X[:, 1, 0])


def _stat_sqdist(X):
    return _mean_se(((X[:, 0] - X[:, 1]) ** 2).sum(-1))


def _stat_covariance(X):
    # influence function of the sample covariance: (a - mean a)(b - mean b)
    a, b = X[:, 0, 0], X[:, 1, 0]
    return _mean_se((a - a.mean()) * (b - b.mean()))


def _stat_correlation(X):
    a, b = X[:, 0, 0], X[:, 1, 0]
    rho = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else float("nan")
    return rho, float((1 - rho**2) / np.sqrt(max(a.size - 3, 1)))  # Fisher's approximation


def _stat_same_sign(X):
    return _mean_se(np.sign(X[:, 0, 0]) == np.sign(X[:, 1, 0]))


#: Built-in statistics of the joint state (P, n, d): name -> (function returning (value, se), description).
PSI = {
    "product": (_stat_product, "E[X(x_1) X(x_2)] (first coordinate)"),
    "covariance": (_stat_covariance, "Cov(X(x_1), X(x_2)) (first coordinate)"),
    "correlation": (_stat_correlation, "Corr(X(x_1), X(x_2)) (first coordinate)"),
    "sqdist": (_stat_sqdist, "E|X(x_1) - X(x_2)|^2"),
    "same_sign": (_stat_same_sign, "P(sign X(x_1) = sign X(x_2))"),
}


def _z(v, s, ref, ref_se):
    if abs(v - ref) <= 1e-12 * max(1.0, abs(ref)):
        return 0.0  # equal up to rounding (e.g. correlations of exactly -1)
    den = float(np.hypot(s, ref_se))
    if den == 0:
        return 0.0 if v == ref else float("inf")
    return (v - ref) / den


@dataclass
class MultipointStudy(StudyIO):
    """Result of :func:`multipoint`: per statistic and model, value, standard error and z-score vs SGD."""

    rows: list
    starts: np.ndarray
    eta: float
    t: float

    @property
    def table(self):
        return self.rows

    def _long_rows(self) -> list:
        return [(r["model"], self.eta, r["psi"], r["value"], r["se"], self.t) for r in self.rows]

    def value(self, model, psi):
        return next(r for r in self.rows if r["model"] == model and r["psi"] == psi)

    def __repr__(self):
        lines = [f"{'statistic':>12} {'model':>18} {'value':>12} {'s.e.':>10} {'z vs SGD':>9}"]
        for r in self.rows:
            z = "" if r["model"] == "sgd" else f"{r['z']:.1f}"
            lines.append(f"{r['psi']:>12} {r['model']:>18} {r['value']:>12.5g} {r['se']:>10.2e} {z:>9}")
        return "\n".join(lines)

    def to_latex(self) -> str:
        psis = list(dict.fromkeys(r["psi"] for r in self.rows))
        models = list(dict.fromkeys(r["model"] for r in self.rows))
        lines = [r"\begin{tabular}{l" + "r" * len(psis) + "}", r"\toprule",
                 " & ".join(["model"] + [p.replace("_", r"\_") for p in psis]) + r" \\", r"\midrule"]
        for m in models:
            cells = [m.replace("_", r"\_")]
            for p in psis:
                r = self.value(m, p)
                cells.append(f"{r['value']:.4f} $\\pm$ {r['se']:.1e}")
            lines.append(" & ".join(cells) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}"]
        return "\n".join(lines)


def multipoint(problem: Problem, starts, *, eta: float, t_end: float,
               psi: Any = ("covariance", "correlation", "product", "sqdist"),
               models: Sequence[str] = ("sme2_shared", "sme2_independent", "smf2"), seed=0,
               n_paths: int = 100_000, dt_fraction: float = 0.125, values: Mapping | None = None,
               progress: bool | None = None) -> MultipointStudy:
    """Multi-point statistics: SGD runs sharing their samples against SDE n-point motions (MATH.md s.5).

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
    starts = np.asarray(starts, dtype=float)
    if starts.ndim != 2 or starts.shape[1] != problem.dim or starts.shape[0] < 2:
        raise ValueError(f"`starts` must have shape (n, {problem.dim}) with n >= 2; got {starts.shape}.")
    if isinstance(psi, str) or callable(psi):
        psi = [psi]
    fns = {}
    for p in (psi.items() if isinstance(psi, Mapping) else psi):
        name, fn = (p if isinstance(p, tuple) else (p if isinstance(p, str) else getattr(p, "__name__", f"psi{len(fns)}"), p))
        if isinstance(fn, str):
            if fn not in PSI:
                raise ValueError(f"`psi` names must be among {sorted(PSI)}; got {fn!r}.")
            fns[name] = PSI[fn][0]
        elif callable(fn):
            fns[name] = (lambda f: (lambda X: _mean_se(f(X))))(fn)
        else:
            raise TypeError(f"`psi` entries must be names or callables; got {fn!r}.")
    k = max(1, int(round(t_end / eta)))
    t = k * eta
    seeds = np.random.SeedSequence(seed).spawn(len(models) + 1)
    r = simulate_sgd(problem, starts, k, eta, n_paths=n_paths, seed=seeds[0], values=values, progress=progress)
    finals = {"sgd": r.states[-1]}
    for mi, model in enumerate(models):
        base, _, coupling = model.partition("_")
        if base not in ("sme1", "sme2", "smf1", "smf2") or coupling not in ("", "shared", "independent"):
            raise ValueError(
                f"`models` entries must be smf1/smf2 or sme1/sme2 with _shared/_independent; got {model!r}.")
        sde = build_model(problem, base)
        kw = dict(eta=eta, dt=eta * dt_fraction, n_paths=n_paths, scheme=default_scheme(sde), values=values,
                  progress=progress)
        if coupling == "independent":
            parts = [simulate(sde, x_start, t, seed=sj, **kw).states[-1]
                     for x_start, sj in zip(starts, seeds[mi + 1].spawn(len(starts)))]
            finals[model] = np.stack(parts, axis=1)
        else:
            finals[model] = simulate(sde, starts, t, seed=seeds[mi + 1], **kw).states[-1]
    rows = []
    ref = {name: fn(finals["sgd"]) for name, fn in fns.items()}
    for model, X in finals.items():
        for name, fn in fns.items():
            v, s = ref[name] if model == "sgd" else fn(X)
            rows.append(dict(psi=name, model=model, value=v, se=s, z=_z(v, s, *ref[name])))
    return MultipointStudy(rows, starts, eta, t)
