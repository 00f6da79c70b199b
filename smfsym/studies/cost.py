"""What a weak-error study will cost, measured before it runs (docs/theory.md §8).

Each simulator is compiled once and timed on a few steps of a few paths; the
time per path-step is then multiplied by the steps and paths the study will
run. Two probe lengths are timed and differenced so that the fixed cost of a
call (compilation, set-up) is not counted per step.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from .._checks import numeric_values
from ..engine import BLOCK
from ..sgd import problem_symbols, simulate_sgd
from ..simulate import prepare_x0, simulate
from .common import MODELS, _phi_function, build_model, check_common, check_phi, scheme_for

__all__ = ["estimate_cost", "CostEstimate"]

#: Paths and steps of the probes. A vectorised step costs about a + b P for P paths: the overhead a
#: dominates small probes (Euler at 512 paths: ~6x its per-path cost at 40,000), so two sizes are
#: timed and a and b fitted; a is then paid once per chunk of BLOCK paths.
PROBE_PATHS = (128, 1024)
PROBE_STEPS = (2, 6)
PROBE_REPEATS = 3


@dataclass
class CostEstimate:
    """Estimated wall time of a study, in seconds, with its parts.

    ``parts`` maps a run ("sgd", a model name) to its estimated seconds summed over the etas;
    ``per_path_step`` maps it to the measured seconds per path and step, ``per_step`` to the fixed
    seconds per step of a chunk (Python overhead); ``probe_seconds`` is what the measurement took. The estimate assumes one core and is good to a factor of about 2
    (a shared machine slows down; per-step overhead weighs less with more paths).
    """

    seconds: float
    parts: dict = field(default_factory=dict)
    per_path_step: dict = field(default_factory=dict)
    per_step: dict = field(default_factory=dict)
    probe_seconds: float = 0.0
    method: str = "montecarlo"

    def __str__(self) -> str:
        if self.method == "exact":
            return "estimated cost: exact moments (symbolic recursions; no Monte Carlo)"
        parts = ", ".join(f"{k} {_fmt(v)}" for k, v in self.parts.items())
        return f"estimated cost: {_fmt(self.seconds)} ({parts})"


def _fmt(s: float) -> str:
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def _step_costs(run) -> tuple:
    """(seconds per step of a chunk, seconds per path-step) from probes of two sizes and two lengths.

    Differencing two lengths removes the fixed cost of a call (compilation, set-up).
    """
    run(PROBE_PATHS[0], PROBE_STEPS[0])  # compile and warm up
    per = []
    for P in PROBE_PATHS:
        times = []
        for n in PROBE_STEPS:
            best = math.inf
            for _ in range(PROBE_REPEATS):  # the fastest of a few: other work on the machine only slows down
                t0 = time.perf_counter()
                run(P, n)
                best = min(best, time.perf_counter() - t0)
            times.append(best)
        # noise on a shared machine can make the difference tiny or negative: never below half the mean
        per.append(max((times[1] - times[0]) / (PROBE_STEPS[1] - PROBE_STEPS[0]), times[1] / PROBE_STEPS[1] / 2))
    b = (per[1] - per[0]) / (PROBE_PATHS[1] - PROBE_PATHS[0])
    if b <= 0:  # no measurable growth with paths (noise): charge the whole cost to the paths, an upper bound
        return 0.0, per[1] / PROBE_PATHS[1]
    return max(per[0] - b * PROBE_PATHS[0], 0.0), b


def _run_cost(costs: tuple, n_paths: int, steps: float) -> float:
    a, b = costs
    return steps * (a * -(-n_paths // BLOCK) + b * n_paths)


def estimate_cost(problem, phi, x0, t_end: float, etas: Sequence[float], *, models: Sequence[str] = MODELS,
                  method: str = "auto", n_paths: int = 200_000, dt_fraction: float = 0.125,
                  values: Mapping | None = None, scheme: Any = None) -> CostEstimate:
    """Estimate the wall time of :func:`weak_error` with the same arguments, before running it.

    Every simulator the study would use is compiled and timed on a few steps of a few
    paths; the time per step is multiplied by the study's steps (SGD: t_end / eta;
    a model: its solver at dt and dt/2, i.e. 3 t_end / (eta dt_fraction)) and paths.
    Where exact moments apply (``method`` "auto" or "exact"), no Monte Carlo runs.

    Returns
    -------
    CostEstimate
        ``seconds`` and ``parts`` (per run, summed over etas).

    Examples
    --------
    >>> import sympy as sp, smfsym
    >>> x = sp.Symbol("x")
    >>> p = smfsym.Problem(sp.log(1 + sp.exp(-smfsym.normal("a") * x)), [x])
    >>> c = smfsym.estimate_cost(p, x**2, [1.0], 1.0, [0.1, 0.05], models=["sme1"], n_paths=10_000)
    >>> sorted(c.parts), c.seconds > 0
    (['sgd', 'sme1'], True)
    """
    from .weak_error_study import check_etas, check_models, exact_applies

    c = check_common(problem, t_end=t_end, seed=0, n_paths=n_paths, dt_fraction=dt_fraction,
                     on_nonfinite="raise", scheme=scheme)
    t_end, n_paths, dt_fraction, solver = c["t_end"], c["n_paths"], c["dt_fraction"], c["solver"]
    etas = check_etas(etas)
    models = check_models(models, {"gf", "gf2", "sme1", "sme2", "smf1", "smf2"})
    phi = check_phi(phi, problem.params)
    vals = numeric_values(values, problem_symbols(problem))
    x0 = prepare_x0(x0, problem.dim)
    if method not in ("auto", "exact", "montecarlo"):
        raise ValueError(f"`method` must be 'auto', 'exact' or 'montecarlo'; got {method!r}.")
    if method != "montecarlo" and exact_applies(problem, phi, vals):
        return CostEstimate(0.0, method="exact")
    t0 = time.perf_counter()
    fun = {"phi": _phi_function(phi, problem.params, vals)}
    k_sum = sum(max(1, int(round(t_end / e))) for e in etas)
    costs = {"sgd": _step_costs(lambda P, n: simulate_sgd(
        problem, x0, n, etas[-1], n_paths=P, seed=0, functions=fun, store=False, values=vals, progress=False))}
    parts = {"sgd": _run_cost(costs["sgd"], n_paths, k_sum)}
    for m in models:
        sde = build_model(problem, m)
        slv = scheme_for(sde, solver)
        dt = etas[-1] * dt_fraction
        costs[m] = _step_costs(lambda P, n: simulate(
            sde, x0, n * dt, eta=etas[-1], dt=dt, n_paths=P, scheme=slv, seed=0, functions=fun,
            store=False, values=vals, progress=False))
        n_model = n_paths if sde.n_noise else 1
        # dt and dt/2 (Richardson): 1 + 2 = 3 times the steps of dt, over each eta's horizon k eta
        parts[m] = _run_cost(costs[m], n_model, 3 * k_sum / dt_fraction)
    return CostEstimate(float(sum(parts.values())), parts, {k: v[1] for k, v in costs.items()},
                        {k: v[0] for k, v in costs.items()}, time.perf_counter() - t0)
