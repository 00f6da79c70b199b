"""What a study will cost, measured before it runs (docs/theory.md §8).

Each simulator a study would run is compiled and timed on a few steps of a few
paths. A call of a simulator costs about

    c + n_steps * (a * n_chunks + b * n_paths)

where ``c`` is the set-up of one call (compilation, observables at the saves), ``a``
the Python overhead of one step of one chunk of paths and ``b`` the cost of one
path-step. Probes of two lengths and two path counts separate the three; ``n_chunks``
is the number of chunks :func:`smfsym.engine.run` cuts the paths into (chunks of
whole 4096-path seed blocks, as many blocks as fit its working-memory target), so a
small model whose 200,000 paths run in one chunk pays ``a`` once per step, not once
per block. Covers the weak-error study (:func:`estimate_cost`), the multi-point
study (:func:`estimate_multipoint_cost`) and the mean-field study
(:func:`smfsym.meanfield.estimate_meanfield_cost`).
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from .._checks import numeric_values
from ..montecarlo.checks import check_int, check_positive
from ..montecarlo.driver import CHUNK_BYTES
from ..montecarlo.options import RunOptions, SaveAt
from ..montecarlo.seeds import BLOCK
from ..data.laws import Empirical
from ..symbolic.model_names import MODEL_REGISTRY
from ..simulation.sgd import SGDTask, problem_symbols, simulate_sgd
from ..simulation.sde import DRAW_BYTES, prepare_x0, simulate
from . import optimizer_weak_error as wo
from .options import Numerics, study_settings
from .common import (
    MODELS, _phi_function, build_model, check_common, check_increments, check_phi, check_scheme, increments_for,
    scheme_for,
)
from .weak_error_study import check_etas, check_models, choose_methods, exact_route
from ..optimizers.momentum import Momentum, beta_for, simulate_momentum_sgd
from ..optimizers.schedules import _as_schedule, simulate_sgd_schedule, with_time
from ..optimizers.update_map import UpdateMap, simulate_update_map

__all__ = ["estimate_cost", "estimate_multipoint_cost", "estimate_optimizer_cost", "estimate_update_map_cost",
           "CostEstimate"]

#: The timing runs of the estimates: no progress bar.
QUIET = RunOptions(progress=False)

#: Probes: a small size, then the size at which a step would take PROBE_STEP_SECONDS if all of the
#: small size's step were per path (at least 8x larger, at most PROBE_MAX_PATHS and the study's
#: paths), grown 8x while the per-path cost is not yet resolved (a step under twice the small
#: one's). Large probes show the cache misses of large working sets (Euler costs ~1.5x more per
#: path on 200,000 paths than on 16,000, a data mean ~2x more per state on 20,000 states than on
#: 1,000). At each size a short and a long run (the long one about PROBE_RUN_SECONDS, so the
#: difference stands well above timer jitter, and never longer than one of the study's own runs)
#: are timed, the fastest of PROBE_REPEATS each: their difference is the cost of the extra steps,
#: with no set-up in it. Every call pays its set-up (compilation), so probing is kept to few calls.
PROBE_PATHS = 128
PROBE_MAX_PATHS = 65_536
PROBE_STEP_SECONDS = 0.05
PROBE_RUN_SECONDS = 0.1
PROBE_MAX_STEPS = 2000
PROBE_REPEATS = 3


@dataclass
class CostEstimate:
    """Estimated wall time of a study, in seconds, with its parts.

    ``parts`` maps a run ("sgd", a model name; for the mean-field study "sgd N=300", ...) to its
    estimated seconds summed over the etas; ``per_path_step`` maps it to the measured seconds per
    path and step, ``per_step`` to the fixed seconds per step of a chunk (Python overhead),
    ``per_call`` to the seconds of one call's set-up; ``probe_seconds`` is what the measurement
    took. The estimate assumes one core as quiet as during the probes; it is tested to be
    within a factor of 3 of small real runs (``tests/studies/test_cost_and_progress.py``) and is printed
    against measured times for the shipped specs by ``benchmarks/bench_cost.py``.
    """

    seconds: float
    parts: dict = field(default_factory=dict)
    per_path_step: dict = field(default_factory=dict)
    per_step: dict = field(default_factory=dict)
    probe_seconds: float = 0.0
    method: str = "montecarlo"
    per_call: dict = field(default_factory=dict)
    study: str = "weak_error"

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


def n_chunks(n_paths: int, state_size: int, per_path_bytes: int | None = None) -> int:
    """How many chunks :func:`smfsym.engine.run` cuts ``n_paths`` paths into (its own rule).

    >>> n_chunks(200_000, 1), n_chunks(200_000, 600)
    (1, 49)
    """
    per_path = max(state_size * 8 * 24, int(per_path_bytes or 0))
    chunk_blocks = max(1, -(-max(BLOCK, CHUNK_BYTES // per_path) // BLOCK))
    return -(-(-(-int(n_paths) // BLOCK)) // chunk_blocks)


def _sde_path_bytes(sde, solver, x0) -> int:
    """The working memory per path that :func:`smfsym.simulate` declares to the engine."""
    k, m = solver.n_draws, sde.n_noise
    sub = max(1, DRAW_BYTES // max(1, 8 * k * m))
    return 8 * int(np.prod(x0.shape)) * 24 + 8 * k * min(m, sub * k * m)


def _step_costs(run, n_paths: int, max_steps: int, p0: int = PROBE_PATHS) -> tuple:
    """(seconds per call, seconds per step of a chunk, seconds per path-step) from probes.

    ``run(P, n)`` runs n steps of P paths; ``max_steps`` is the length of the study's shortest
    run (probes never go further along the dynamics than the study does). Two lengths per
    size: their difference is the cost of the extra steps (no set-up), and what the short run
    costs beyond its steps is the set-up of a call. Two sizes (each a single chunk) separate
    the per-step overhead from the per-path cost.
    """
    max_steps = max(4, int(max_steps))

    def best(P, n):
        """The fastest of PROBE_REPEATS runs or more, until PROBE_RUN_SECONDS are spent (at most 20):
        other work on the machine only slows a run down, and short runs need many tries."""
        out, spent = math.inf, 0.0
        for r in range(20):
            t0 = time.perf_counter()
            quiet(P, n)
            t = time.perf_counter() - t0
            out, spent = min(out, t), spent + t
            if r + 1 >= PROBE_REPEATS and spent >= PROBE_RUN_SECONDS:
                break
        return out

    def quiet(P, n):
        with warnings.catch_warnings():  # the study itself warns (quadrature, captured noise ...): once
            warnings.simplefilter("ignore")
            run(P, n)

    def probe(P, per_guess):
        n2 = int(min(max_steps, PROBE_MAX_STEPS, max(4, math.ceil(PROBE_RUN_SECONDS / max(per_guess, 1e-7)))))
        n1 = max(1, n2 // 4)
        t1, t2 = best(P, n1), best(P, n2)
        # noise on a shared machine can make the difference tiny or negative: never below half the mean
        per = max((t2 - t1) / (n2 - n1), t2 / n2 / 2)
        return per, max(t1 - n1 * per, 0.0)

    def rough(P):
        """A first guess of a step's time at P paths, from one short and one longer run."""
        times = []
        for n in (1, 5):
            t0 = time.perf_counter()
            quiet(P, n)
            times.append(time.perf_counter() - t0)
        return max((times[1] - times[0]) / 4, times[1] / 50)

    p0 = max(1, min(int(p0), int(n_paths)))
    quiet(p0, 1)  # compile and warm up
    per0, c0 = probe(p0, rough(p0))
    cap = int(min(n_paths, PROBE_MAX_PATHS))
    p1, per1, c = p0, per0, c0
    nxt = int(min(cap, max(8 * p0, p0 * PROBE_STEP_SECONDS / max(per0, 1e-9))))
    while nxt > p1:
        per1, c1 = probe(nxt, rough(nxt))
        p1, c = nxt, min(c, c1)
        if per1 >= 2 * per0 or per1 >= PROBE_STEP_SECONDS:
            break
        nxt = int(min(cap, 8 * p1))
    if p1 == p0:  # the study's own size (or the cap): charge it all per step
        return c0, per0, 0.0
    b = (per1 - per0) / (p1 - p0)
    if b <= 0:  # no measurable growth with paths (noise): charge the whole cost to the paths, an upper bound
        return c, 0.0, per1 / p1
    return c, max(per0 - b * p0, 0.0), b


#: Steps of the longer quick probe (:func:`_timed_costs`), and its target duration in seconds.
QUICK_MAX_STEPS = 400
QUICK_RUN_SECONDS = 0.1


def _timed_costs(run, n_paths: int, max_steps: float, p0: int = PROBE_PATHS) -> tuple:
    """(seconds per call, per step of a chunk, per path-step) from two calls only, for studies whose
    simulators compile for a few tenths of a second per call (schedules, momentum).

    ``run(P, n, saves, functions)`` runs n steps of P paths and evaluates ``functions`` at the step
    indices ``saves``: a clock there times the steps between two saves inside one call, with no
    set-up in the difference, so one call per size suffices (instead of :func:`_step_costs`' repeats).
    One call at ``p0`` paths, one at the size where a step would take about 50 ms (at most
    PROBE_MAX_PATHS and the study's paths); a shared machine makes these single timings noisier.
    """
    stamps: list = []

    def clock(X):
        stamps.append(time.perf_counter())
        return np.zeros(X.shape[0])

    def timed(P, n):
        n = int(max(4, min(n, max_steps, QUICK_MAX_STEPS)))
        n1 = max(1, n // 4)
        stamps.clear()
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run(P, n, [n1, n], {"clock": clock})
        per = max((stamps[-1] - stamps[0]) / (n - n1), 1e-9)
        return per, max(stamps[0] - t0 - n1 * per, 0.0)

    p0 = max(1, min(int(p0), int(n_paths)))
    per0, c = timed(p0, 40)
    p1 = int(min(n_paths, PROBE_MAX_PATHS, max(8 * p0, p0 * PROBE_STEP_SECONDS / per0)))
    if p1 <= p0:
        return c, per0, 0.0
    per1, _ = timed(p1, QUICK_RUN_SECONDS / max(per0 * p1 / p0, 1e-7))
    b = (per1 - per0) / (p1 - p0)
    if b <= 0:  # no measurable growth with paths (noise): charge it all to the paths, an upper bound
        return c, 0.0, per1 / p1
    return c, max(per0 - b * p0, 0.0), b


def _warm_up() -> None:
    """Load what every study loads once per process (scipy.stats for its fits: ~1.5 s), so the probes'
    set-up and the study's measured time do not count it."""
    import scipy.stats  # noqa: F401


def _run_cost(costs: tuple, n_paths: int, steps: float, chunks: int = 1, calls: int = 0) -> float:
    c, a, b = costs
    return calls * c + steps * (a * chunks + b * n_paths)


def _estimate(costs: dict, parts: dict, t0: float, study: str) -> CostEstimate:
    return CostEstimate(float(sum(parts.values())), parts, {k: v[2] for k, v in costs.items()},
                        {k: v[1] for k, v in costs.items()}, time.perf_counter() - t0,
                        per_call={k: v[0] for k, v in costs.items()}, study=study)


def estimate_cost(problem, phi, x0, t_end: float, etas: Sequence[float], *, models: Sequence[str] = MODELS,
                  n_paths: int = 200_000, values: Mapping | None = None, numerics: Numerics | None = None,
                  options: RunOptions | None = None, **legacy) -> CostEstimate:
    """Estimate the wall time of :func:`weak_error` with the same arguments, before running it.

    Every simulator the study would use is compiled and timed on a few steps of a few
    paths; the time per step is multiplied by the study's steps (SGD: t_end / eta;
    a model: its solver at dt and dt/2, i.e. 3 t_end / (eta dt_fraction), coupled in one run
    when ``extrapolate``) and paths, with the increments the study would draw,
    with the per-step overhead paid once per chunk of paths (see the module docstring).
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
    >>> c = smfsym.estimate_cost(p, x**2, [1.0], 1.0, [0.1, 0.05], models=["sme1"], n_paths=2000,
    ...                          numerics=smfsym.Numerics(scheme="euler"))
    >>> sorted(c.parts), c.seconds > 0
    (['sgd', 'sme1'], True)
    """
    settings = study_settings("estimate_cost", numerics, options, legacy,
                              supported=("method", "scheme", "increments", "dt_fraction", "extrapolate"))
    (method, scheme, increments, dt_fraction, extrapolate) = settings.values()

    c = check_common(problem, t_end=t_end, seed=0, n_paths=n_paths, dt_fraction=dt_fraction,
                     on_nonfinite="raise", scheme=scheme)
    t_end, n_paths, dt_fraction, solver = c["t_end"], c["n_paths"], c["dt_fraction"], c["solver"]
    increments = check_increments(increments)
    etas = check_etas(etas)
    models = check_models(models, set(MODEL_REGISTRY))
    phi = check_phi(phi, problem.params)
    vals = numeric_values(values, problem_symbols(problem))
    x0 = prepare_x0(x0, problem.dim)
    if method not in ("auto", "exact", "montecarlo"):
        raise ValueError(f"`method` must be 'auto', 'exact' or 'montecarlo'; got {method!r}.")
    sdes = {m: build_model(problem, m) for m in models}
    # the study's own choice, per model (exact where the moments close, Monte Carlo otherwise)
    exact_problem, exact_phi, exact_vals, exact_sdes = exact_route(problem, phi, vals, sdes, method)
    sgd_exact, _, how = choose_methods(exact_problem, exact_phi, exact_vals, exact_sdes, method, etas[-1])
    simulated = [m for m in models if how[m] == "montecarlo"]
    if sgd_exact and not simulated:
        return CostEstimate(0.0, method="exact")
    t0 = time.perf_counter()
    _warm_up()
    fun = {"phi": _phi_function(phi, problem.params, vals)}
    k_sum = sum(max(1, int(round(t_end / e))) for e in etas)
    costs, parts = {}, {}
    # a data set's steps cost milliseconds and vary little: two timed calls size them (a second or two in all)
    quick = any(isinstance(law, Empirical) for law in problem.laws)
    if not sgd_exact:
        costs["sgd"] = (_timed_costs if quick else _step_costs)(
            lambda P, n, saves=None, functions=fun: simulate_sgd(
                problem, x0, n, etas[-1], n_paths=P, seed=0, values=vals, options=QUIET,
                save_at=SaveAt(at=saves, functions=functions, store=False)), n_paths, round(t_end / etas[0]))
        parts["sgd"] = _run_cost(costs["sgd"], n_paths, k_sum, _sgd_chunks(problem, etas[-1], vals, x0, n_paths),
                                 calls=len(etas))
    for m in simulated:
        slv = scheme_for(sdes[m], solver)
        _model_part(costs, parts, m, sdes[m], slv, x0, etas[-1], etas[-1] * dt_fraction,
                    t_end / etas[0] / dt_fraction, k_sum / dt_fraction, len(etas), n_paths, fun, vals, increments,
                    extrapolate, quick=quick)
    return _estimate(costs, parts, t0, "weak_error")


def _model_part(costs: dict, parts: dict, m: str, sde, slv, x0, eta: float, dt: float, max_steps: float,
                model_steps: float, calls: int, n_paths: int, fun, vals, increments: str,
                extrapolate: bool = True, quick: bool = False) -> None:
    """Probe one model at ``eta`` and step ``dt`` (at most ``max_steps`` steps), and charge it ``model_steps``
    steps at dt over all etas, run at dt and dt/2 (coupled when ``extrapolate``), ``calls`` runs of each.
    ``quick``: two timed calls (:func:`_timed_costs`) instead of :func:`_step_costs`' repeated ones."""
    n_model = n_paths if sde.n_noise else 1
    inc = increments_for(slv, increments) if sde.n_noise else "gaussian"
    # timed with the draws the study makes: a coupled run's discrete increments are the scheme's coupled kinds
    slv = slv.coupled() if extrapolate and inc == "discrete" else slv

    def run(P, n, saves=None, functions=fun):
        return simulate(sde, x0, n * dt, eta=eta, dt=dt, n_paths=P, scheme=slv, seed=0, values=vals, increments=inc,
                        options=QUIET, save_at=SaveAt(at=None if saves is None else [k * dt for k in saves],
                                                      functions=functions, store=False))

    costs[m] = (_timed_costs if quick else _step_costs)(run, n_model, max_steps)
    # the coupled run carries two states (coarse, fine) per path
    pair = 2 if extrapolate else 1
    chunks = n_chunks(n_model, pair * x0.size, pair * _sde_path_bytes(sde, slv, x0))
    # dt and dt/2 (Richardson): 1 + 2 = 3 times the steps of dt
    parts[m] = _run_cost(costs[m], n_model, 3 * model_steps, chunks, calls=(3 - pair) * calls)


def estimate_optimizer_cost(problem, check: Mapping, *, values: Mapping | None = None) -> CostEstimate:
    """Estimate the wall time of the schedule or momentum study of a spec's ``[check]`` (docs/theory.md §7).

    ``check`` is the validated ``[check]`` table (keys ``phi, x0, t_end, etas, models, method, n_paths``
    and ``schedule`` or ``optimizer`` / ``friction``; ``dt_fraction`` optional). Everything the study
    would refuse is refused here, before it runs. Exact moments: the moment ODEs of a schedule are built
    and sized and the SGD products' work bounded (a :class:`~smfsym.ResourceLimitError` names what is
    too large); the estimate has ``method="exact"``, its ``seconds`` from those sizes. Monte Carlo: SGD
    (with the schedule, or momentum SGD with beta = 1 - friction sqrt(eta)) and each model's solver are
    probed as in :func:`estimate_cost`; a momentum chain's step is h = sqrt(eta), t_end / h steps, and
    its models run at dt = h dt_fraction.

    Examples
    --------
    >>> import sympy as sp, smfsym
    >>> x = sp.Symbol("x")
    >>> p = smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x])
    >>> c = estimate_optimizer_cost(p, dict(phi=x**2, x0=[1.0], t_end=1.0, etas=[0.01, 0.0025], models=["smf1"],
    ...                                     optimizer="heavy_ball", friction=1.0, method="auto", n_paths=1000))
    >>> c.method, c.study
    ('exact', 'momentum')
    """
    if not isinstance(check, Mapping):
        raise TypeError(f"`check` must be the [check] table (a mapping); got {type(check).__name__}.")
    schedule, optimizer = check.get("schedule"), check.get("optimizer", "sgd")
    if schedule is None and optimizer not in ("heavy_ball", "nesterov"):
        raise ValueError(f"`check` must have a `schedule` or an `optimizer` 'heavy_ball' or 'nesterov'; got "
                         f"optimizer {optimizer!r} and no schedule (plain SGD: use estimate_cost).")
    momentum = schedule is None
    study = "momentum" if momentum else "schedule"
    phi, method = check["phi"], check.get("method", "auto")
    if method not in ("auto", "exact", "montecarlo"):
        raise ValueError(f"`method` must be 'auto', 'exact' or 'montecarlo'; got {method!r}.")
    n_paths = check_int(check.get("n_paths", 200_000), "n_paths")
    dt_fraction = check_positive(check.get("dt_fraction", 0.125), "dt_fraction")
    t_end, etas, steps = wo.study_steps(check["t_end"], check["etas"], "h" if momentum else "eta")
    models = wo.check_models(check.get("models", ("smf1", "smf2")), set(wo._MODELS))
    vals = numeric_values(values, problem_symbols(problem))
    x0 = wo._check_x0(check["x0"], problem.dim)
    route = wo.exact_problem(problem, phi, vals, method) if not momentum or problem.batch_size == 1 else None
    exact = route is not None
    built, phi = route if exact else (problem, phi)  # the exact route reads them with the constants bound
    t0 = time.perf_counter()
    if momentum:
        lam = check_positive(check.get("friction", 1.0), "friction")
        for e in etas:
            beta_for(lam, e)
        sdes = {m: wo.momentum_model(built, *wo._parse(m), nesterov=optimizer == "nesterov", lam=wo.rational(lam))
                for m in models}
    else:
        sch = _as_schedule(schedule)
        sdes = {m: wo.scheduled_model(built, sch, *wo._parse(m)) for m in models}
    if exact:
        parts = {}
        if momentum:
            if steps[-1] > wo.MAX_EXACT_STEPS:
                raise ValueError(f"`etas`: {steps[-1]:,} SGD steps at eta = {etas[-1]:g} exceed "
                                 f"{wo.MAX_EXACT_STEPS:,} in exact mode; raise the smallest of `etas` or use "
                                 "method='montecarlo'.")
            # one symbolic one-step operator (SGD) or generator (model) per eta on the monomials in (x, p)
            state = next(iter(sdes.values())).state
            n = len(wo.PolynomialSpace(state, wo._degree(wo._check_phi(phi, problem.params), state)).exps)
            wo.check_space_size(n, "momentum SGD's state space")
            for name in ["sgd"] + list(models):
                parts[name] = len(etas) * n * n * EXACT_MOMENTUM_SECONDS
        else:
            # builds and sizes every moment ODE (refusing one too stiff) and bounds every SGD product
            odes = wo._schedule_odes(built, sdes, phi, etas, steps, t_end)
            n = len(next(iter(odes.values())).space.exps)
            parts["sgd"] = sum(k * (n * n + 50) for k in steps) * SCHEDULE_WORK_SECONDS
            for m in models:
                parts[m] = sum(odes[m, e].work for e in etas) * ODE_STEP_SECONDS * n * n
        return CostEstimate(float(sum(parts.values())), parts, probe_seconds=time.perf_counter() - t0,
                            method="exact", study=study)
    _warm_up()
    fun = {"phi": wo._phi_on(phi, problem.params, vals, problem.dim)}
    costs, parts = {}, {}
    eta_min = etas[-1]
    if momentum:
        z0 = np.concatenate([x0, np.zeros(problem.dim)])
        beta = beta_for(lam, eta_min)
        costs["sgd"] = _timed_costs(lambda P, n, saves, functions: simulate_momentum_sgd(
            problem, x0, n, eta_min, Momentum(beta=beta, nesterov=optimizer == "nesterov"), n_paths=P, seed=0,
            values=vals,
            options=QUIET, save_at=SaveAt(at=saves, functions=functions, store=False)), n_paths, steps[0])
        start, dts = z0, [math.sqrt(e) * dt_fraction for e in etas]
    else:
        costs["sgd"] = _timed_costs(lambda P, n, saves, functions: simulate_sgd_schedule(
            problem, sch, x0, n, eta_min, n_paths=P, seed=0, values=vals, options=QUIET,
            save_at=SaveAt(at=saves, functions=functions, store=False)), n_paths, steps[0])
        start, dts = with_time(x0), [e * dt_fraction for e in etas]
    # SGD's state: (x, v) for momentum, x for a schedule
    parts["sgd"] = _run_cost(costs["sgd"], n_paths, sum(steps), n_chunks(n_paths, (2 if momentum else 1) * x0.size),
                             calls=len(etas))
    model_steps = sum(t_end / dt for dt in dts)
    scheme = check.get("scheme", "auto")  # the spec's "auto" is the study's None: its default_scheme
    solver = check_scheme(None if scheme == "auto" else scheme)
    increments = check_increments(check.get("increments", "auto"))
    for m, sde in sdes.items():
        _model_part(costs, parts, m, sde, scheme_for(sde, solver), start, eta_min, dts[-1], t_end / dts[0],
                    model_steps, len(etas), n_paths, fun, vals, increments, quick=True)
    return _estimate(costs, parts, t0, study)


def estimate_update_map_cost(umap: UpdateMap, phi, z0, t_end: float, etas: Sequence[float], *,
                             models: Sequence[str] = ("smf1", "smf2"), n_paths: int = 200_000,
                             values: Mapping | None = None, numerics: Numerics | None = None) -> CostEstimate:
    """Estimate the wall time of :func:`smfsym.studies.update_map_weak_error` with the same arguments.

    The optimizer (``simulate_update_map``) and each model's solver are timed on a few steps of a few
    paths (two timed calls each, :func:`_timed_costs`) and charged the study's steps: the optimizer
    t_end / h per eta, each model 3 t_end / (h dt_fraction) (dt and dt/2, coupled).

    Examples
    --------
    >>> import sympy as sp, smfsym
    >>> from smfsym.optimizers.update_map import rmsprop
    >>> x = sp.Symbol("x")
    >>> m = rmsprop(smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x]))
    >>> c = estimate_update_map_cost(m, x**2, [1.0, 1.0], 0.5, [0.125, 0.0625], models=["smf1"], n_paths=1000)
    >>> sorted(c.parts), c.study
    (['sgd', 'smf1'], 'update_map')
    """
    if not isinstance(umap, UpdateMap):
        raise TypeError(f"`umap` must be a smfsym UpdateMap; got {type(umap).__name__}.")
    numerics = Numerics() if numerics is None else numerics
    sqrt = umap.expansion == "sqrt_eta"
    t_end, etas, steps = wo.study_steps(t_end, etas, "h" if sqrt else "eta")
    models = check_models(models, set(MODEL_REGISTRY))
    n_paths = check_int(n_paths, "n_paths")
    known = set(umap.problem.law_parameters) | set(umap.problem.constants) | set(umap.constants)
    vals = numeric_values(values, known)
    z0 = prepare_x0(z0, len(umap.state), "z0", single=True)
    fun = {"phi": _phi_function(check_phi(phi, umap.state), umap.state, vals)}
    t0 = time.perf_counter()
    _warm_up()
    eta_min = etas[-1]
    hs = [math.sqrt(e) if sqrt else e for e in etas]
    costs, parts = {}, {}
    costs["sgd"] = _timed_costs(lambda P, n, saves, functions: simulate_update_map(
        umap, z0, n, eta_min, n_paths=P, seed=0, values=vals, options=QUIET,
        save_at=SaveAt(at=saves, functions=functions, store=False)), n_paths, steps[0])
    parts["sgd"] = _run_cost(costs["sgd"], n_paths, sum(steps), n_chunks(n_paths, z0.size), calls=len(etas))
    dts = [h * numerics.dt_fraction for h in hs]
    for m in models:
        family, order = MODEL_REGISTRY[m]
        sde = getattr(umap, {"gf": "gradient_flow"}.get(family, family))(order)
        slv = scheme_for(sde, check_scheme(numerics.scheme))
        _model_part(costs, parts, m, sde, slv, z0, eta_min, dts[-1], t_end / dts[0], sum(t_end / dt for dt in dts),
                    len(etas), n_paths, fun, vals, numerics.increments, quick=True)
    return _estimate(costs, parts, t0, "update_map")


#: Seconds per unit of an exact scheduled SGD product's work (steps x (monomials^2 + 50)), measured.
SCHEDULE_WORK_SECONDS = 1e-5
#: Seconds per DOP853 step of a moment ODE and squared monomial count (12 evaluations of A(t) m), measured.
ODE_STEP_SECONDS = 2e-5
#: Seconds per squared monomial count of one exact momentum SGD mean or model mean at one eta (the symbolic
#: one-step operator or generator dominates): measured 0.3-0.5 s on 15 monomials, 9-16 s on 70.
EXACT_MOMENTUM_SECONDS = 2.5e-3


def _sgd_chunks(problem, eta, vals, x0, n_paths) -> int:
    stepper = SGDTask(problem, eta, int(problem.batch_size), vals).build().stepper
    return n_chunks(n_paths, x0.size, stepper.per_path_bytes(x0))


def estimate_multipoint_cost(problem, starts, *, eta: float, t_end: float,
                             models: Sequence[str] = ("sme2_shared", "sme2_independent", "smf2"),
                             n_paths: int = 100_000, dt_fraction: float = 0.125, values: Mapping | None = None,
                             scheme: Any = None, increments: str = "auto") -> CostEstimate:
    """Estimate the wall time of :func:`multipoint` with the same arguments, before running it.

    SGD runs t_end / eta steps of the n-point chain; each model its solver at dt and dt/2
    (3 t_end / (eta dt_fraction) steps) on the n starts together, or, for ``_independent``
    couplings, once per start.

    Examples
    --------
    >>> import sympy as sp, smfsym
    >>> x = sp.Symbol("x")
    >>> p = smfsym.Problem((1 + smfsym.rademacher("r")) * x**2 / 2, [x])
    >>> from smfsym.studies import estimate_multipoint_cost
    >>> c = estimate_multipoint_cost(p, [[-1.0], [1.0]], eta=0.1, t_end=1.0, models=["smf1"], n_paths=4000)
    >>> sorted(c.parts), c.study
    (['sgd', 'smf1'], 'multipoint')
    """
    c = check_common(problem, t_end=t_end, seed=0, n_paths=n_paths, dt_fraction=dt_fraction,
                     on_nonfinite="raise", scheme=scheme)
    t_end, n_paths, dt_fraction, solver = c["t_end"], c["n_paths"], c["dt_fraction"], c["solver"]
    increments = check_increments(increments)
    starts = np.array(starts, dtype=float)
    if starts.ndim != 2 or starts.shape[1] != problem.dim or starts.shape[0] < 2:
        raise ValueError(f"`starts` must have shape (n, {problem.dim}) with n >= 2; got {starts.shape}.")
    if isinstance(models, str) or not list(models):
        raise TypeError(f"`models` must be a non-empty sequence of model names; got {models!r}.")
    vals = numeric_values(values, problem_symbols(problem))
    k = max(1, int(round(t_end / eta)))
    t0 = time.perf_counter()
    _warm_up()
    costs, parts = {}, {}
    costs["sgd"] = _step_costs(lambda P, n: simulate_sgd(
        problem, starts, n, eta, n_paths=P, seed=0, values=vals, options=QUIET, save_at=SaveAt(store=False)),
        n_paths, k)
    parts["sgd"] = _run_cost(costs["sgd"], n_paths, k, _sgd_chunks(problem, eta, vals, starts, n_paths), calls=1)
    for model in models:
        base, _, coupling = str(model).partition("_")
        sde = build_model(problem, base)
        slv = scheme_for(sde, solver)
        dt = eta * dt_fraction
        x = starts[0] if coupling == "independent" else starts
        inc = increments_for(slv, increments)
        coupled = slv.coupled() if inc == "discrete" else slv  # multipoint always runs coupled: its draws
        costs[model] = _step_costs(lambda P, n: simulate(
            sde, x, n * dt, eta=eta, dt=dt, n_paths=P, scheme=coupled, seed=0, values=vals, options=QUIET,
            save_at=SaveAt(store=False), increments=inc), n_paths, k / dt_fraction)
        runs = len(starts) if coupling == "independent" else 1
        chunks = n_chunks(n_paths, x.size, _sde_path_bytes(sde, slv, x))
        parts[model] = runs * _run_cost(costs[model], n_paths, 3 * k / dt_fraction, chunks, calls=2)
    return _estimate(costs, parts, t0, "multipoint")
