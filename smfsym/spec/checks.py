"""How a spec's ``[check]`` is carried out: one entry per optimizer name (docs/architecture.md).

``[check] optimizer`` names an entry of :data:`CHECK_OPTIMIZERS`. The entry says which study of
:data:`smfsym.studies.registry.STUDIES` checks it, how one optimizer step relates to the models'
time (h = eta, or h = sqrt(eta) for momentum in the underdamped scaling), and how its study and its
cost estimate are called with the spec's settings. The command line reads this table instead of
branching on names, and a new optimizer reaches specs by one entry here and its name in
``schema.CHECK_OPTIMIZER_NAMES`` (``tests/spec/test_check_optimizers.py`` ties the two).

The optimizers written as update maps (``rmsprop``, ``adam`` and a spec's own ``[update_map]``) are
built by :func:`update_map_for` when the spec is loaded, so a mistake in them is a
:class:`~smfsym.spec.SpecError` naming its key before anything runs.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable, Mapping

import sympy as sp

from ..montecarlo.options import RunOptions
from ..optimizers.momentum import Momentum
from ..optimizers.update_map import UpdateMap, adam, rmsprop
from ..studies.cost import estimate_cost, estimate_optimizer_cost, estimate_update_map_cost
from ..symbolic.models import build_model
from ..studies.optimizer_weak_error import momentum_models, schedule_models
from ..studies.update_map_study import update_map_models
from ..studies.options import Numerics
from ..studies.registry import STUDIES
from ..symbolic.models import default_eta
from .expr import SpecError, parse_expression
from .schema import CHECK_OPTIMIZER_NAMES, SCHEMA, validate_section

__all__ = ["CheckOptimizer", "CHECK_OPTIMIZERS", "ADAPTIVE_KEYS", "run_check_study", "estimate_check_cost", "update_map_for",
           "step_of", "check_models"]


@dataclass(frozen=True)
class CheckOptimizer:
    """One optimizer a spec can check: its study, its step in the models' time and how both are called.

    ``run(spec, check, options)`` returns the study's result; ``cost(spec, check)`` its
    :class:`~smfsym.studies.cost.CostEstimate` (or None where exact moments make it negligible);
    ``models(spec, check, names)`` the SDEs that study compares with the optimizer, by model name (what
    ``smfsym derive`` prints for the spec).
    """

    name: str
    study: str
    step: str
    run: Callable
    cost: Callable
    models: Callable
    help: str


def _numerics(c: Mapping, keys=("method", "scheme", "increments")) -> Numerics:
    """The study's numerics from the ``[check]`` keys it reads ("auto" scheme: the study's own choice)."""
    given = {k: c.get(k, "auto") for k in keys}
    if given.get("scheme") == "auto":
        given["scheme"] = None
    return Numerics(**given)


def _common(spec, c: Mapping) -> dict:
    return dict(models=c["models"], seed=c["seed"], n_paths=c["n_paths"], values=spec.values or None)


def _run_sgd(spec, c, options):
    if c.get("schedule") is not None:
        fn = STUDIES["schedule_weak_error"].function
        return fn(spec.problem, c["schedule"], c["phi"], c["x0"], c["t_end"], c["etas"], **_common(spec, c),
                  numerics=_numerics(c), options=options)
    return STUDIES["weak_error"].function(spec.problem, c["phi"], c["x0"], c["t_end"], c["etas"],
                                          **_common(spec, c), numerics=_numerics(c), options=options)


def _models_sgd(spec, c, names):
    if c.get("schedule") is not None:
        return schedule_models(spec.problem, c["schedule"], names)
    return {m: build_model(spec.problem, m) for m in names}


def _cost_sgd(spec, c):
    if c.get("schedule") is not None:
        return estimate_optimizer_cost(spec.problem, c, values=spec.values or None)
    return estimate_cost(spec.problem, c["phi"], c["x0"], c["t_end"], c["etas"], models=c["models"],
                         n_paths=c["n_paths"], values=spec.values or None, numerics=_numerics(c))


def _run_momentum(spec, c, options):
    return STUDIES["momentum_weak_error"].function(
        spec.problem, c["phi"], c["x0"], c["t_end"], c["etas"],
        Momentum(friction=c["friction"], nesterov=c["optimizer"] == "nesterov"), **_common(spec, c),
        numerics=_numerics(c), options=options)


def _models_momentum(spec, c, names):
    return momentum_models(spec.problem, names, Momentum(friction=c["friction"], nesterov=c["optimizer"] == "nesterov"))


def _cost_momentum(spec, c):
    return estimate_optimizer_cost(spec.problem, c, values=spec.values or None)


#: what an update-map study reads (it is Monte Carlo only: `method` is checked by the loader)
_MAP_KEYS = ("scheme", "increments")


def _run_update_map(spec, c, options):
    return STUDIES["update_map_weak_error"].function(c["update_map"], c["phi"], c["z0"], c["t_end"], c["etas"],
                                                     **_common(spec, c), numerics=_numerics(c, _MAP_KEYS), options=options)


def _models_update_map(spec, c, names):
    return update_map_models(c["update_map"], names)


def _cost_update_map(spec, c):
    return estimate_update_map_cost(c["update_map"], c["phi"], c["z0"], c["t_end"], c["etas"], models=c["models"],
                                    n_paths=c["n_paths"], values=spec.values or None, numerics=_numerics(c, _MAP_KEYS))


_SGD = dict(study="weak_error", step="eta", run=_run_sgd, cost=_cost_sgd, models=_models_sgd)
_MOMENTUM = dict(study="momentum_weak_error", step="sqrt_eta", run=_run_momentum, cost=_cost_momentum,
                 models=_models_momentum)
_MAP = dict(study="update_map_weak_error", run=_run_update_map, cost=_cost_update_map, models=_models_update_map)

#: ``[check] optimizer`` name -> how it is checked. ``step`` "map": the update map's own expansion.
CHECK_OPTIMIZERS = {
    "sgd": CheckOptimizer("sgd", **_SGD, help="plain SGD (with [check] schedule: a learning-rate schedule)"),
    "heavy_ball": CheckOptimizer("heavy_ball", **_MOMENTUM, help="heavy-ball momentum, beta = 1 - friction sqrt(eta)"),
    "nesterov": CheckOptimizer("nesterov", **_MOMENTUM, help="Nesterov momentum, beta = 1 - friction sqrt(eta)"),
    "rmsprop": CheckOptimizer("rmsprop", **_MAP, step="eta", help="RMSprop, 1 - beta = c eta ([check.adaptive])"),
    "adam": CheckOptimizer("adam", **_MAP, step="eta", help="Adam, 1 - beta_i = c_i eta ([check.adaptive])"),
    "update_map": CheckOptimizer("update_map", **_MAP, step="map", help="the spec's own [update_map]"),
}
assert tuple(CHECK_OPTIMIZERS) == CHECK_OPTIMIZER_NAMES
#: The [check.adaptive] keys each optimizer reads (any other given key is refused, never ignored).
ADAPTIVE_KEYS = {"rmsprop": {"c", "eps", "v0"}, "adam": {"c1", "c2", "eps", "v0", "m0", "t0"}}


def step_of(check: Mapping) -> str:
    """``"eta"`` or ``"sqrt_eta"``: the model time of one optimizer step of this ``[check]``."""
    entry = CHECK_OPTIMIZERS[check.get("optimizer", "sgd")]
    if entry.step == "map":
        umap = check.get("update_map")
        return umap.expansion if isinstance(umap, UpdateMap) else "eta"
    return entry.step


def run_check_study(spec, check: Mapping, options: RunOptions):
    """Run the weak-error study of a loaded spec's ``[check]`` (its optimizer's entry decides which)."""
    return CHECK_OPTIMIZERS[check.get("optimizer", "sgd")].run(spec, check, options)


def check_models(spec, check: Mapping, names) -> dict:
    """The SDEs the weak-error study of a loaded spec's ``[check]`` compares with its optimizer, by model name
    (plain SGD's models for a spec without ``[check]``)."""
    return CHECK_OPTIMIZERS[check.get("optimizer", "sgd")].models(spec, check, list(names))


def estimate_check_cost(spec, check: Mapping):
    """The cost estimate of the weak-error study of a loaded spec's ``[check]``."""
    return CHECK_OPTIMIZERS[check.get("optimizer", "sgd")].cost(spec, check)


# ---------------------------------------------------------------------- update maps from a spec


def _rational(x: float) -> sp.Rational:
    """A spec number as the nearest small rational (0.1 -> 1/10, not the binary float's 3602879701896397/2^55),
    so the equations print as written; no text is parsed."""
    f = Fraction(float(x)).limit_denominator(10**12)
    return sp.Rational(f.numerator, f.denominator)


def update_map_for(check: Mapping, problem, names: Mapping[str, Any], table: Any,
                   claim: Callable[[str, str], None]) -> tuple:
    """The update map, its start z0 and the names ``phi`` may use, for ``[check] optimizer`` (validated).

    ``names`` are the spec's names (params, constants, data); ``table`` the raw ``[update_map]``
    table (or None); ``claim(name, owner)`` registers a new name (a clash is refused naming both).
    """
    opt = check["optimizer"]
    if problem.batch_size != 1:
        raise SpecError(f"`[problem] batch_size`: the {opt} update map draws one sample per step; got "
                        f"batch_size = {problem.batch_size}")
    if check["method"] == "exact":
        raise SpecError(f"`[check] method`: {opt} is checked by Monte Carlo (\"auto\" or \"montecarlo\"); got "
                        "\"exact\"")
    x0 = list(check["x0"])
    if opt in ("rmsprop", "adam"):
        a = validate_section(check.get("adaptive") or {}, "check.adaptive", SCHEMA["check.adaptive"])
        if opt == "rmsprop":
            umap = rmsprop(problem, c=_rational(a["c"]), eps=_rational(a["eps"]))
            z0 = x0 + [a["v0"]] * problem.dim
        else:
            umap = adam(problem, c1=_rational(a["c1"]), c2=_rational(a["c2"]), eps=_rational(a["eps"]))
            z0 = x0 + [a["m0"]] * problem.dim + [a["v0"]] * problem.dim + [a["t0"]]
        for s in umap.state[problem.dim:]:
            claim(s.name, f"the {opt} state")
        return umap, z0, {s.name: s for s in umap.state}
    if table is None:
        raise SpecError("`[check] optimizer`: \"update_map\" needs an [update_map] table (state, update, start)")
    return _custom_map(problem, names, validate_section(table, "update_map", SCHEMA["update_map"]), x0, claim)


def _custom_map(problem, names: Mapping, um: dict, x0: list, claim) -> tuple:
    params = [p.name for p in problem.params]
    for s in um["state"]:
        claim(s, "`[update_map] state`")
    eta = default_eta()
    claim(eta.name, "the learning rate of [update_map]")
    grads = {f"g_{p}": g for p, g in zip(params, problem.grad_f)}
    for g in grads:
        claim(g, "the per-sample gradient of [update_map]")
    state = {s: sp.Symbol(s, real=True) for s in um["state"]}
    allowed = {**names, **state, eta.name: eta, **grads}
    order = params + um["state"]
    missing = [n for n in order if n not in um["update"]]
    extra = [n for n in um["update"] if n not in order]
    if missing or extra:
        what = f"missing the update of {missing}" if missing else f"{extra} are not params or state names"
        raise SpecError(f"`[update_map] update`: {what}; expected one entry per name of the params and of "
                        f"`[update_map] state`: {order}")
    bad_start = sorted(set(um["start"]) ^ set(um["state"]))
    if bad_start:
        raise SpecError(f"`[update_map] start`: expected one number per name of `[update_map] state` "
                        f"{um['state']}; {bad_start} differ")
    update = [parse_expression(um["update"][n], allowed, f"`[update_map] update.{n}`") for n in order]
    syms = list(problem.params) + list(state.values())
    try:
        umap = UpdateMap(problem, syms, update, expansion=um["expansion"], eta=eta, name="update_map")
    except (ValueError, TypeError) as exc:
        raise SpecError(f"`[update_map] update`: {exc}") from None
    z0 = x0 + [um["start"][s] for s in um["state"]]
    return umap, z0, {n: s for n, s in zip(order, syms)}
