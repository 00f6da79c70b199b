"""The result of a mean-field simulation and the setup shared by the three simulators (docs/theory.md §6)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .._checks import numeric_values
from ..montecarlo.result import SimulationResult
from ..montecarlo.seeds import BLOCK
from .data import DataRule, data_rule
from .kernel import Kernel
from .observables import Observables, summarize
from .particles import check_particles
from .problem import MeanFieldProblem
from ..simulation.sde import check_save_at, grid
from ..montecarlo.executors import check_executor

__all__ = ["MeanFieldResult"]


@dataclass
class MeanFieldResult:
    """Per-path observables at saved times, with the engine's result underneath.

    Attributes
    ----------
    t : ndarray (n_times,)
    observables : dict name -> ndarray (n_times, n_paths, k)
    sim : SimulationResult
        Seeds, streamed state statistics, blow-up report, stored states if asked.
    method : str
        "sgd", "ddsmf" or "limit".
    info : dict
        How the run was made. A Richardson-coupled DD-SMF run keeps the fine run's per-path values in
        ``observables`` and the coarse run's in ``info["coarse"]``; :meth:`summary` extrapolates.
    """

    t: np.ndarray
    observables: dict
    sim: SimulationResult
    method: str
    eta: float | None
    width: int
    info: dict = field(default_factory=dict)

    def summary(self, name: str = "risk") -> dict:
        """Mean, sem, var, var_se over paths (see :func:`smfsym.meanfield.observables.summarize`)."""
        if name not in self.observables:
            raise KeyError(f"`name` must be one of the recorded observables {sorted(self.observables)}; got {name!r}.")
        coarse = self.info.get("coarse")
        if coarse is not None:  # a coupled Richardson run: extrapolated moments (see summarize)
            out = summarize(self.observables[name], coarse[name], self.info["richardson_c"])
        else:
            out = summarize(self.observables[name])
        if self.method != "limit" and out["n"] < 2:  # one random path: its spread is unknown, not 0
            out.update({k: np.full_like(out[k], np.nan) for k in ("sem", "var", "var_se")})
        return out

    def mean(self, name: str = "risk") -> np.ndarray:
        return self.summary(name)["mean"]

    def var(self, name: str = "risk") -> np.ndarray:
        return self.summary(name)["var"]

    def __repr__(self):
        return (f"MeanFieldResult(method={self.method!r}, eta={self.eta}, N={self.width}, "
                f"t={np.round(self.t, 6).tolist()}, observables={sorted(self.observables)}, "
                f"paths={next(iter(self.observables.values())).shape[1] if self.observables else 0})")


def check_net(net):
    if not isinstance(net, MeanFieldProblem):
        raise TypeError(f"`net` must be a smfsym.MeanFieldProblem; got {type(net).__name__}.")


def positive(x, name):
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be a positive number; got {x!r}.") from None
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"`{name}` must be a positive number; got {x!r}.")
    return v


#: Default bound on the grid evaluations of one simulation (steps x paths x particles x nodes).
MAX_WORK = 10**12


def check_work(n_steps: int, n_paths: int, N: int, M: int, max_work, what: str) -> None:
    """Refuse, with the estimate, a run whose grid evaluations exceed ``max_work`` (bounded before it starts)."""
    work = float(n_steps) * float(n_paths) * float(N) * float(M)
    bound = MAX_WORK if max_work is None else float(max_work)
    if work > bound:
        raise ValueError(
            f"{what} would evaluate the unit {work:.3g} times ({n_steps} steps x {n_paths} paths x {N} particles x "
            f"{M} data nodes; about {work * 1e-8 / 3600:.2g} h at 10 ns each), over `max_work` = {bound:.3g}: "
            "reduce the sizes or raise `max_work`.")


def setup(net, theta0, values, observables: Sequence[str], risk_rule, risk_points, inputs):
    """Validated particles, values, kernel and observables shared by every simulator."""
    check_net(net)
    theta0 = check_particles(theta0, net.n_params)
    vals = numeric_values(values, set(net.law_parameters) | set(net.constants))
    kernel = Kernel(net, vals)
    obs_names = [observables] if isinstance(observables, str) else list(observables)
    if "risk" in obs_names and risk_rule is None:
        risk_rule = data_rule(net, risk_points if any(not l.is_finite for l in net.laws) else None, vals)
    if risk_rule is not None and not isinstance(risk_rule, DataRule):
        raise TypeError(f"`risk_rule` must be a DataRule (smfsym.meanfield.data_rule); got {type(risk_rule).__name__}.")
    obs = Observables(net, kernel, obs_names, risk_rule, inputs)
    return theta0, vals, kernel, obs


#: Suffix of the coarse run's observables in a Richardson-coupled DD-SMF run.
COARSE = "@coarse"


def finish(res: SimulationResult, obs: Observables, method, eta, width, **info) -> MeanFieldResult:
    kept = res.extra.pop("values", None)  # engine.run(keep_values=True): (n_times, n_paths, ...) per observable
    if kept is not None:
        flat = {name: v.reshape(v.shape[:2] + (-1,)) for name, v in kept.items()}
        values = {name: flat[name] for name in obs.names}
        coarse = {name: flat[name + COARSE] for name in obs.names if name + COARSE in flat}
        if coarse:
            info["coarse"] = coarse
    else:
        values = obs.values(len(res.t))
    return MeanFieldResult(t=res.t, observables=values, sim=res, method=method, eta=eta, width=width, info=info)


def save_grid(t_end, dt, save_at):
    """Steps (materialised: ``check_work`` bounds their number first) between the save times."""

    t_end = positive(t_end, "t_end")
    dt = positive(dt, "dt")
    saves = np.array([t_end]) if save_at is None else check_save_at(save_at, t_end)
    return grid(saves, dt)


class PerBlock:
    """``fn(X)`` applied seed block by seed block (rows 0-4095, 4096-8191, ... of a chunk) and concatenated.

    The kernels take paths in slices whose floating-point sums (batched matmul) can differ in the
    last bit with the slice's size; a chunk always starts at a block boundary, so evaluating each
    block on its own makes every path's numbers independent of the chunking and of the executor.
    """

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, X, *args):
        if X.shape[0] <= BLOCK:
            return self.fn(X, *args)
        return np.concatenate([self.fn(X[lo:lo + BLOCK], *args) for lo in range(0, X.shape[0], BLOCK)], axis=0)


def observables_recipe(obs: Observables) -> tuple:
    """What rebuilds ``obs`` on a worker: ``Observables(net, kernel, *recipe)`` (plain data)."""
    return (list(obs.names), obs.risk_rule, getattr(obs, "inputs", None))


def check_meanfield_executor(executor):
    """``executor`` checked before any work (None: serial); see :mod:`smfsym.montecarlo.executors`."""
    if executor is None:
        return None

    return check_executor(executor)
