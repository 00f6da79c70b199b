r"""Scaling rules as a study: which change of the hyper-parameters keeps an optimizer's SDE when the batch
size B becomes k B, and how far E phi at a fixed time moves with and without it (docs/theory.md §11).

The rule is derived from the SDE's parameters (:func:`sde_parameters`; :func:`rule_exponents` solves for the
powers of k that keep them):

- SGD, t = n eta: dX = -grad F dt + sqrt(eta / B) Sigma^{1/2} dW depends on eta / B only: the *linear
  rule* eta -> k eta (Goyal et al. 2017; Li, Malladi, Arora 2021).
- RMSprop and Adam in Malladi et al.'s regime (t = n eta^2, :mod:`smfsym.optimizers.regimes`): the SDE
  depends on sigma0 = eta / sqrt(B), c = (1 - beta) / eta^2 and eps0 = eps eta only: the *square-root
  rule* eta -> sqrt(k) eta, 1 - beta_i -> k (1 - beta_i), eps -> eps / sqrt(k) (Malladi, Lyu, Panigrahi,
  Arora 2022; for Adam both betas scale).

Under either rule the number of steps to a time t falls by k. The study runs the optimizer at each k with
the rule and with the naive change (B -> k B only, the same steps) and reports E phi with standard errors.

A batch of B samples is modelled by the problem's per-sample gradient with its noise scaled by 1/sqrt(B),
grad F + (grad f - grad F) / sqrt(B) (:func:`smfsym.optimizers.regimes.noisy_sgd`): the mean and the
covariance of a batch mean, which is all the SDE sees, and exactly the law of a batch mean when the gradient
is affine in Gaussian data. It needs no change of the update maps (one sample a step) and lets B be any
positive number.
"""
from __future__ import annotations

import math
from functools import lru_cache
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import sympy as sp

from ..data.tails import check_step_phi_tails
from ..montecarlo.checks import BlowUpError, check_int, check_positive
from ..backends import get_backend
from ..montecarlo.options import RunOptions, SaveAt
from ..optimizers.regimes import RegimeMap, malladi_adam, malladi_rmsprop, noisy_sgd, simulate_regime
from ..simulation.sde import prepare_x0
from ..symbolic.problem import Problem
from .common import (_phi_function, backend_meta, check_path_steps, check_phi, finish_figure,
                     plot_target, study_seed, seed_record, with_context, SMALLER)
from .options import study_settings
from . import storage as _sv
from .storage import StudyIO

__all__ = ["ScalingRuleStudy", "scaling_rule_study", "scaling_rule", "rule_exponents", "sde_parameters",
           "SCALING_RULES", "OPTIMIZER_HYPER"]

#: optimizer -> the rule that keeps its SDE.
SCALING_RULES = {"sgd": "linear", "rmsprop": "square_root", "adam": "square_root"}
#: optimizer -> its hyper-parameters besides eta and the batch size, with defaults (PyTorch's).
OPTIMIZER_HYPER = {"sgd": {}, "rmsprop": {"beta": 0.99, "eps": 1e-8},
                   "adam": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8}}


def _check_optimizer(optimizer) -> str:
    if optimizer not in SCALING_RULES:
        raise ValueError(f"`optimizer` must be one of {sorted(SCALING_RULES)}; got {optimizer!r}.")
    return optimizer


_K = sp.Symbol("k", positive=True)


def _raw_symbols(optimizer: str) -> dict:
    """hyper-parameter name -> the positive symbol the SDE sees it through (1 - beta for a beta)."""
    names = ["eta", "batch"] + list(OPTIMIZER_HYPER[optimizer])
    return {n: sp.Symbol(f"1-{n}" if n.startswith("beta") else n, positive=True) for n in names}


def _invariants(optimizer: str) -> dict:
    """The SDE's parameters as expressions in the raw symbols (module docstring)."""
    r = _raw_symbols(optimizer)
    if optimizer == "sgd":
        return {"eta/B": r["eta"] / r["batch"]}
    out = {"sigma0": r["eta"] / sp.sqrt(r["batch"])}
    betas = [n for n in r if n.startswith("beta")]
    for i, b in enumerate(betas):
        out["c" if len(betas) == 1 else f"c{i + 1}"] = r[b] / r["eta"] ** 2
    out["eps0"] = r["eps"] * r["eta"]
    return out


def rule_exponents(optimizer: str) -> dict:
    r"""The scaling rule derived from the SDE: the powers of k by which each hyper-parameter (``1-beta`` for a
    beta) must change when the batch grows k-fold so that every SDE parameter (:func:`sde_parameters`) keeps
    its value. A linear system in the exponents, solved by sympy; the solution must be unique.

    Examples
    --------
    >>> rule_exponents("sgd")
    {'eta': 1}
    >>> rule_exponents("adam")
    {'eta': 1/2, '1-beta1': 1, '1-beta2': 1, 'eps': -1/2}
    """
    return dict(_solve_rule(_check_optimizer(optimizer)))


@lru_cache(maxsize=None)
def _solve_rule(optimizer: str) -> tuple:
    raw = {n: s for n, s in _raw_symbols(optimizer).items() if n != "batch"}
    exps = {n: sp.Symbol(f"e_{n}") for n in raw}
    scaled = {s: s * _K ** exps[n] for n, s in raw.items()}
    scaled[_raw_symbols(optimizer)["batch"]] = _raw_symbols(optimizer)["batch"] * _K
    equations = [sp.expand_log(sp.log(sp.powsimp(e.xreplace(scaled) / e, force=True)), force=True) / sp.log(_K)
                 for e in _invariants(optimizer).values()]
    sol = sp.solve([sp.simplify(q) for q in equations], list(exps.values()), dict=True)
    if len(sol) != 1 or set(sol[0]) != set(exps.values()):  # pragma: no cover - a new optimizer's invariants
        raise ValueError(f"no unique scaling rule keeps the SDE of {optimizer}: {sol}")
    return tuple((str(raw[n]), sol[0][exps[n]]) for n in raw)


def sde_parameters(optimizer: str, hyper: Mapping) -> dict:
    """The parameters the optimizer's SDE depends on, from its raw hyper-parameters.

    ``hyper`` holds ``eta``, ``batch`` and the optimizer's own (:data:`OPTIMIZER_HYPER`). SGD: eta / B (and
    the time per step eta); RMSprop, Adam: sigma0 = eta / sqrt(B), c_i = (1 - beta_i) / eta^2 and
    eps0 = eps eta (Malladi et al.'s regime).

    Examples
    --------
    >>> sde_parameters("sgd", {"eta": 0.1, "batch": 2})
    {'eta/B': 0.05}
    >>> p = sde_parameters("rmsprop", {"eta": 0.1, "batch": 4, "beta": 0.99, "eps": 1.0})
    >>> {k: round(v, 12) for k, v in p.items()}
    {'sigma0': 0.05, 'c': 1.0, 'eps0': 0.1}
    """
    optimizer = _check_optimizer(optimizer)
    vals = {s: sp.Float(1 - float(hyper[n]) if n.startswith("beta") else float(hyper[n]), 17)
            for n, s in _raw_symbols(optimizer).items()}
    return {name: float(e.xreplace(vals)) for name, e in _invariants(optimizer).items()}


def scaling_rule(optimizer: str, hyper: Mapping, k: float, rule: str = "scaled") -> dict:
    """The hyper-parameters for the batch size k B: by the rule of :func:`rule_exponents` (``rule="scaled"``)
    or only the batch changed (``rule="naive"``).

    Examples
    --------
    >>> scaling_rule("sgd", {"eta": 0.1, "batch": 8}, 4)
    {'eta': 0.4, 'batch': 32.0}
    >>> h = scaling_rule("adam", {"eta": 0.01, "batch": 8, "beta1": 0.9, "beta2": 0.99, "eps": 1e-8}, 4)
    >>> round(h["eta"], 12), round(1 - h["beta1"], 12), round(1 - h["beta2"], 12), h["eps"]
    (0.02, 0.4, 0.04, 5e-09)
    """
    optimizer = _check_optimizer(optimizer)
    k = check_positive(k, "k")
    if rule not in ("scaled", "naive"):
        raise ValueError(f"`rule` must be 'scaled' or 'naive'; got {rule!r}.")
    out = dict(hyper)
    out["batch"] = float(hyper["batch"]) * k
    if rule == "naive":
        return out
    exps = rule_exponents(optimizer)
    for n in _raw_symbols(optimizer):
        if n == "batch":
            continue
        if not n.startswith("beta"):
            out[n] = float(hyper[n]) * k ** float(exps[n])
            continue
        one_minus = (1 - float(hyper[n])) * k ** float(exps[f"1-{n}"])
        if not 0 < one_minus < 1:
            raise ValueError(f"`k` = {k:g}: the square-root rule gives 1 - {n} = {one_minus:g}, outside (0, 1); "
                             f"start from a {n} nearer 1.")
        out[n] = 1 - one_minus
    return out


def _check_hyper(optimizer: str, eta, batch, hyper: Mapping | None) -> dict:
    own = dict(OPTIMIZER_HYPER[optimizer])
    unknown = sorted(set(hyper or {}) - set(own))
    if unknown:
        raise ValueError(f"`hyper` for {optimizer} takes {sorted(own) or 'nothing'}; got {unknown}.")
    own.update(hyper or {})
    out = {"eta": check_positive(eta, "eta"), "batch": check_positive(batch, "batch")}
    for name, v in own.items():
        v = check_positive(v, f"hyper[{name!r}]")
        if name.startswith("beta") and not v < 1:
            raise ValueError(f"`hyper[{name!r}]` must be in (0, 1); got {v!r}.")
        out[name] = v
    return out


def _regime(problem: Problem, optimizer: str) -> RegimeMap:
    """The optimizer with its SDE parameters left symbolic (given per run as values)."""
    if optimizer == "sgd":
        return noisy_sgd(problem, sigma=sp.Symbol("sigma", positive=True))
    names = ("c", "sigma0", "eps0") if optimizer == "rmsprop" else ("c1", "c2", "sigma0", "eps0")
    syms = {n: sp.Symbol(n, positive=True) for n in names}
    return (malladi_rmsprop if optimizer == "rmsprop" else malladi_adam)(problem, **syms)


def _run(rmap, optimizer, hyper, phi_f, x0, t_end, n_paths, seed, run: RunOptions) -> dict:
    """E phi at t_end of one run from x0 (auxiliary state 0, PyTorch's start)."""
    eta = hyper["eta"]
    h = rmap.step_time(eta)
    steps = int(round(t_end / h))
    if steps < 1 or abs(steps * h - t_end) > 1e-9 * t_end:
        raise ValueError(f"`t_end` = {t_end:g} must be a multiple of the time per step {h:g} (eta = {eta:g}) for "
                         f"every k; choose eta and t_end so that it is.")
    if optimizer == "sgd":
        values = {"sigma": 1 / math.sqrt(hyper["batch"])}
    else:
        values = {sp.Symbol(n, positive=True): v for n, v in sde_parameters(optimizer, hyper).items()}
    z0 = np.concatenate([x0, np.zeros(len(rmap.state) - len(x0))])
    try:
        r = simulate_regime(rmap, z0, steps, eta, n_paths=n_paths, seed=seed, values=values,
                            save_at=SaveAt(functions={"phi": phi_f}, store=False),
                            options=run)
    except BlowUpError as exc:
        raise with_context(exc, f"{optimizer} at eta = {eta:g}, batch = {hyper['batch']:g}", SMALLER) from None
    return dict(steps=steps, value=float(r.mean("phi")[-1]), se=float(r.sem("phi")[-1]))


@dataclass
class ScalingRuleStudy(StudyIO):
    """Result of :func:`scaling_rule_study`: one row per (rule, k) with the hyper-parameters, the steps to
    ``t``, E phi and its standard error, and ``shift`` = E phi - E phi at k = 1 (``shift_se`` its standard
    error). ``rule`` is the optimizer's (``"linear"`` or ``"square_root"``) or ``"naive"`` (batch only)."""

    optimizer: str
    problem: object
    phi: object
    ks: list
    rows: list
    t: float
    meta: dict = field(default_factory=dict)

    @property
    def n_panels(self) -> int:
        """Axes :meth:`plot` draws on."""
        return 1

    def _validate(self) -> None:
        """Refuse a loaded study whose fields disagree (:meth:`smfsym.studies.storage.StudyIO._validate`).

        ``ks`` positive, finite and distinct, ``t`` positive and finite; at least one row, one per (rule, k)
        of the rows' rules and ``ks``; positive ``eta`` and ``batch``, ``steps`` >= 0, standard errors >= 0 or
        NaN; ``shift`` = ``value`` - the value of the rule's row at ``ks[0]``; ``meta.n_paths`` >= 2.
        """
        _sv.check_grid(self.ks, "ks")
        _sv.check_positive(self.t, "t")
        _sv.check_rows(self.rows)
        for i, r in enumerate(self.rows):
            _sv.check_members(r, i, {"k": ("ks", self.ks)})
            for key in ("eta", "batch"):
                _sv.check_positive(r[key], f"rows[{i}].{key}")
            if r["steps"] < 0:
                _sv.refuse(f"rows[{i}].steps", "a count >= 0", r["steps"])
            _sv.check_nonnegative(r, i, ("se", "shift_se"))
        rules = list(dict.fromkeys(r["rule"] for r in self.rows))
        _sv.check_complete(self.rows, ("rule", "k"), [(ru, k) for ru in rules for k in self.ks])
        first = {r["rule"]: r["value"] for r in self.rows if r["k"] == self.ks[0]}
        for i, r in enumerate(self.rows):  # the shift is measured from the same rule's first k
            _sv.check_difference({"shift": r["shift"], "value": r["value"], "first": first[r["rule"]]}, i,
                                 "shift", "value", "first")
        _sv.check_n_paths(self.meta)

    def rule_rows(self, rule: str) -> list:
        """The rows of one rule, in the order of ``ks``."""
        return [r for r in self.rows if r["rule"] == rule]

    def max_shift(self, rule: str) -> tuple:
        """(largest |shift| / shift_se over k > 1, the |shift| there): how far E phi moves in standard errors."""
        rs = [r for r in self.rule_rows(rule) if r["k"] != self.ks[0]]
        z = [abs(r["shift"]) / r["shift_se"] if r["shift_se"] > 0 else math.inf for r in rs]
        i = int(np.argmax(z))
        return float(z[i]), abs(rs[i]["shift"])

    def __repr__(self) -> str:
        lines = [f"{self.optimizer}: E phi at t = {self.t:g} as the batch grows k-fold",
                 f"{'rule':>12} {'k':>5} {'eta':>10} {'batch':>8} {'steps':>7} {'E phi':>12} {'se':>10} "
                 f"{'shift':>11} {'shift/se':>9}"]
        for r in self.rows:
            z = r["shift"] / r["shift_se"] if r["shift_se"] > 0 else 0.0
            lines.append(f"{r['rule']:>12} {r['k']:>5g} {r['eta']:>10.4g} {r['batch']:>8.4g} {r['steps']:>7d} "
                         f"{r['value']:>12.6g} {r['se']:>10.2e} {r['shift']:>11.3e} {z:>9.2f}")
        return "\n".join(lines)

    @property
    def table(self) -> str:
        return repr(self)

    def _long_rows(self) -> list:
        return [(r["rule"], r["eta"], f"E phi (k = {r['k']:g})", r["value"], r["se"], self.t) for r in self.rows]

    def to_latex(self) -> str:
        """The table as a LaTeX ``tabular``."""
        body = [f"{r['rule'].replace('_', ' ')} & {r['k']:g} & {r['eta']:.4g} & {r['batch']:.4g} & {r['steps']} & "
                f"{r['value']:.6g} & {r['se']:.2e} & {r['shift']:.3e} \\\\" for r in self.rows]
        return ("\\begin{tabular}{lrrrrrrr}\nrule & $k$ & $\\eta$ & $B$ & steps & "
                "$\\mathbb{E}\\varphi$ & s.e. & shift \\\\\n\\hline\n" + "\n".join(body) + "\n\\end{tabular}")

    def plot(self, path=None, ax=None):
        """E phi against k (log scale) with 2-standard-error bars, one line per rule. Returns the figure."""
        fig, axes, path, own = plot_target(path, ax, figsize=(4.8, 3.8))
        ax_ = axes[0]
        for rule in dict.fromkeys(r["rule"] for r in self.rows):
            rs = self.rule_rows(rule)
            ax_.errorbar([r["k"] for r in rs], [r["value"] for r in rs], yerr=[2 * r["se"] for r in rs],
                         marker="o", capsize=3, label=rule.replace("_", " ") + (" rule" if rule != "naive" else
                                                                                  " (batch only)"))
        ax_.set_xscale("log", base=2)
        ax_.set_xlabel("batch size multiplier $k$")
        ax_.set_ylabel(rf"$\mathbb{{E}}\,\varphi$ at $t = {self.t:g}$")
        ax_.set_title(f"{self.optimizer}: scaling rules", fontsize=9)
        ax_.legend(fontsize=7)
        return finish_figure(fig, path, own=own)


def _check_study_args(problem, optimizer, t_end, ks, n_paths, x0) -> tuple:
    if not isinstance(problem, Problem):
        raise TypeError(f"`problem` must be a smfsym.Problem; got {type(problem).__name__}.")
    optimizer = _check_optimizer(optimizer)
    t_end = check_positive(t_end, "t_end")
    ks = [check_positive(k, "ks") for k in ks]
    if len(ks) < 2 or ks[0] != 1 or any(b <= a for a, b in zip(ks, ks[1:])):
        raise ValueError(f"`ks` must start at 1 and increase, with at least two entries; got {ks}.")
    n_paths = check_int(n_paths, "n_paths")
    if n_paths < 2:
        raise ValueError(f"`n_paths` must be at least 2 (a standard error needs two paths); got {n_paths!r}.")
    x0 = prepare_x0(x0, len(problem.params), "x0", single=True)
    return optimizer, t_end, ks, n_paths, x0


def scaling_rule_study(problem: Problem, phi, x0, t_end: float, *, optimizer: str = "rmsprop", eta: float,
                       batch: float = 1, hyper: Mapping | None = None, ks: Sequence[float] = (1, 4, 16),
                       n_paths: int = 20_000, seed=0, options: RunOptions | None = None,
                       **legacy) -> ScalingRuleStudy:
    r"""Run ``optimizer`` at batch sizes k B with its scaling rule and with the batch alone changed, and
    report E phi at ``t_end`` (module docstring).

    Parameters
    ----------
    problem : Problem
        Per-sample loss and data law (batch size 1; the batch is the noise scale 1/sqrt(B)).
    phi : sympy expression in ``problem.params``, or callable on states
        The test function (a callable sees the optimizer's whole state: parameters first).
    x0 : array_like (d,)
        Start of the parameters; the optimizer's other state starts at 0 (PyTorch's start).
    t_end : float
        The time, n eta (SGD) or n eta^2 (RMSprop, Adam); every run's time per step must divide it.
    optimizer : {"sgd", "rmsprop", "adam"}
    eta, batch : float
        Learning rate and batch size at k = 1.
    hyper : mapping, optional
        ``beta`` and ``eps`` (RMSprop) or ``beta1``, ``beta2``, ``eps`` (Adam) at k = 1
        (:data:`OPTIMIZER_HYPER` gives the defaults).
    ks : sequence of float
        Batch multipliers, increasing from 1.
    n_paths, seed : Monte Carlo settings (independent streams spawned from ``seed`` per run).
    options : RunOptions, optional
        ``progress``, ``executor`` and ``backend`` (every run on an array back end, :mod:`smfsym.backends`);
        the old keyword ``progress=`` still works for one release (a ``DeprecationWarning``).
        ``max_path_steps`` bounds the Monte Carlo work, paths x steps over every run, as in
        :func:`smfsym.multipoint_rates`: estimated and refused before anything runs.

    Returns
    -------
    ScalingRuleStudy

    Examples
    --------
    >>> import sympy as sp, smfsym
    >>> x = sp.Symbol("x")
    >>> p = smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x])
    >>> st = scaling_rule_study(p, x**2, [1.0], 1.0, optimizer="sgd", eta=0.125, ks=[1, 4], n_paths=200,
    ...                         options=smfsym.RunOptions(progress=False))
    >>> [(r["rule"], r["k"], r["steps"]) for r in st.rows]
    [('linear', 1.0, 8), ('linear', 4.0, 2), ('naive', 1.0, 8), ('naive', 4.0, 8)]
    """
    settings = study_settings("scaling_rule_study", None, options, legacy,
                              supported=("executor", "progress", "backend", "max_path_steps"))
    max_path_steps = settings.pop("max_path_steps")  # the study's work bound (its runs do not take it)
    run = RunOptions(**settings)
    optimizer, t_end, ks, n_paths, x0 = _check_study_args(problem, optimizer, t_end, ks, n_paths, x0)
    base = _check_hyper(optimizer, eta, batch, hyper)
    rmap = _regime(problem, optimizer)
    phi = check_phi(phi, problem.params)
    if isinstance(phi, sp.Expr) and not phi.free_symbols <= set(problem.params):
        raise ValueError(f"`phi` must be an expression in {list(problem.params)}; it also contains "
                         f"{sorted(map(str, phi.free_symbols - set(problem.params)))}.")
    check_step_phi_tails(problem, phi, rmap.state, rmap.update)
    device = get_backend(run.backend)
    phi_f = _phi_function(phi, rmap.state, {}, None if device.name == "numpy" else device)
    hypers = [scaling_rule(optimizer, base, k, "scaled" if rule != "naive" else "naive")
              for rule in (SCALING_RULES[optimizer], "naive") for k in ks[1:]]
    n_steps = sum(t_end / rmap.step_time(h["eta"]) for h in [base] + hypers)
    check_path_steps(max_path_steps, n_paths * n_steps,
                     f"{n_paths} paths x {n_steps:.3g} steps of t_end / (time per step) over the {1 + len(hypers)} "
                     "runs", "lower `n_paths` or `t_end`, raise `eta`, or raise `max_path_steps`")
    root = study_seed(seed)
    seeds = root.spawn(2 * len(ks))
    first = _run(rmap, optimizer, base, phi_f, x0, t_end, n_paths, seeds[0], run)
    rows = []
    for j, rule in enumerate((SCALING_RULES[optimizer], "naive")):
        for i, k in enumerate(ks):
            hyper_k = scaling_rule(optimizer, base, k, "scaled" if rule != "naive" else "naive")
            out = first if i == 0 else _run(rmap, optimizer, hyper_k, phi_f, x0, t_end, n_paths,
                                            seeds[j * len(ks) + i], run)
            shift_se = float(np.hypot(out["se"], first["se"])) if i else 0.0
            rows.append(dict(rule=rule, k=float(k), eta=hyper_k["eta"], batch=hyper_k["batch"],
                             hyper={n: float(v) for n, v in hyper_k.items()}, sde=sde_parameters(optimizer, hyper_k),
                             steps=out["steps"], value=out["value"], se=out["se"],
                             shift=out["value"] - first["value"], shift_se=shift_se))
    meta = dict(n_paths=n_paths, seed=seed_record(root), x0=x0.tolist(), t_end=t_end, rule=SCALING_RULES[optimizer],
                batch_model="gradient noise scaled by 1/sqrt(B)")
    meta.update(backend_meta(device))
    return ScalingRuleStudy(optimizer, problem, phi, [float(k) for k in ks], rows, t_end, meta)
