"""Simulating SGD itself from a Problem (docs/theory.md §1), vectorised over paths.

Data are drawn with numpy's Generator methods from each law; mini-batches are
i.i.d., or without replacement from an empirical data set. In the n-point mode
every start uses the same samples at each step.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from .._checks import numeric_values
from ..symbolic.lambdify import CompiledExprs
from ..montecarlo.cache import cache_clear, cache_info, compiled_content
from ..montecarlo.checks import CHAIN_REMEDY, check_int, check_positive, check_steps
from ..montecarlo.driver import Job, Paths, run
from ..montecarlo.executors import checked_executor
from ..montecarlo.grid import StepGrid
from ..montecarlo.options import RunOptions, SaveAt, run_settings
from ..montecarlo.result import SimulationResult
from ..montecarlo.seeds import resolve_seed
from ..symbolic.problem import Problem
from ..data.samplers import samplers_for
from .sde import check_save_steps, prepare_x0, values_key
from ..montecarlo.driver import CHUNK_BYTES
from ..montecarlo.seeds import BLOCK
from ..backends import get_backend
from .device_sgd import DeviceSGDRun, DeviceSGDStep

__all__ = ["simulate_sgd", "run_rule", "SGDStep", "SGDRun", "SGDTask", "ConstantRate", "ScheduledRate", "MomentumRule",
           "compiled_gradient"]

#: Uniforms per sub-batch when drawing without-replacement batches (bounds memory on large data sets).
_WOR_ELEMENTS = 2**21


def compiled_gradient(problem: Problem, values: Mapping, data_symbols) -> CompiledExprs:
    """grad f(x, xi) of ``problem`` compiled with ``values`` bound, once per process.

    Cached by content (:func:`smfsym.engine.compiled`: the SHA-256 of the pickled gradient, parameters,
    data symbols and numbers), so every ``simulate_sgd`` call on the same problem and numbers, whatever
    its eta, batch size or seed, reuses one compilation.
    """
    vals, items = values_key(values)
    exprs, params, syms = list(problem.grad_f_compact), tuple(problem.params), tuple(data_symbols)
    return compiled_content(("SGD gradient", exprs, params, syms, items), lambda: CompiledExprs(exprs, params, vals, syms))


class SGDStep:
    """One compiled SGD step x <- x - eta * mean_batch grad f(x, xi)."""

    def __init__(self, problem: Problem, eta: float, batch_size: int, values: Mapping):
        self.problem = problem
        self.eta = float(eta)
        self.B = int(batch_size)
        self.values = values
        self.laws = problem.laws
        self.without = problem.sampling == "without_replacement"
        self.samplers = [] if self.without else samplers_for(self.laws, values)
        syms = ([s for law in self.laws for s in law.symbols] if self.without
                else [s for smp in self.samplers for s in smp.symbols])
        self.grad = compiled_gradient(problem, values, syms)
        if self.without and self.B > self.laws[0].size:
            raise ValueError(f"`batch_size` must be at most the data set size {self.laws[0].size}; got {self.B}.")

    def per_path_bytes(self, x0) -> int:
        """Working memory of one path in one step: gradients on a batch, and the uniforms of
        without-replacement sampling (drawn in bounded sub-batches, so not counted in full)."""
        n = x0.shape[0] if x0.ndim == 2 else 1
        return 8 * self.B * n * (self.problem.dim + len(self.grad.data_symbols)) * 6

    def sample(self, gens, sizes) -> list:
        """Data columns, each of shape (P, B)."""
        cols = []
        if self.without:
            law = self.laws[0]
            # a batch is the B smallest of M uniforms, in increasing order (a uniform random B-subset in
            # random order); drawn in sub-batches of paths so the (paths, M) uniforms stay small for
            # large data sets: the stream is filled in order, so the indices do not depend on the split
            M, B = law.size, self.B
            rows = max(1, _WOR_ELEMENTS // M)
            parts = []
            for g, s in zip(gens, sizes):
                for a in range(0, s, rows):
                    u = g.random((min(rows, s - a), M))
                    if B < M:
                        part = np.argpartition(u, B - 1, axis=1)[:, :B]
                        order = np.argsort(np.take_along_axis(u, part, axis=1), axis=1)
                        parts.append(np.take_along_axis(part, order, axis=1))
                    else:
                        parts.append(np.argsort(u, axis=1))
            idx = np.concatenate(parts, axis=0)
            arr = law.data[idx]
            return [arr[..., j] for j in range(law.dim)]
        for smp in self.samplers:
            k = len(smp.symbols)
            arr = np.concatenate([smp(g, s * self.B).reshape(k, s, self.B) for g, s in zip(gens, sizes)], axis=1)
            cols += list(arr)
        return cols

    def __call__(self, X, gens, sizes):
        """One step on states (P, [n,] d); works coordinate-major so every column read is contiguous.

        The returned states are a view of a (d, P, [n]) array: the next step's
        ``moveaxis`` is then free.
        """
        XT, g = self.gradient(X, gens, sizes)
        return np.moveaxis(XT - self.eta * g, 0, -1)

    def gradient(self, X, gens, sizes) -> tuple:
        """``(XT, g)``: the states and the batch-mean gradient at them, coordinate-major (d, P, [n]),
        on a fresh batch. Every optimizer rule evaluates its gradients here."""
        data = self.sample(gens, sizes)  # each (P, B)
        XT = np.moveaxis(X, -1, 0)  # (d, P, [n])
        if X.ndim == 2:
            xc = [c[:, None] for c in XT]  # (P, 1) against data (P, B)
            dc = data
        else:
            xc = [c[..., None] for c in XT]  # (P, n, 1) against data (P, 1, B)
            dc = [c[:, None, :] for c in data]
        g = np.moveaxis(self.grad.evaluate(xc, dc), -1, 0)  # (d, P, [n,] B), contiguous
        g = g[..., 0] if self.B == 1 else g.mean(axis=-1)
        return XT, g


# -- optimizer rules: how one step uses the batch gradient (picklable, no closures). A new optimizer
# -- that needs only gradients is one more rule here.

class ConstantRate:
    """Plain SGD, x <- x - eta g, with the fixed learning rate of the step."""

    def __call__(self, stepper: SGDStep, X, h, gens, sizes):
        return stepper(X, gens, sizes)


class ScheduledRate:
    """SGD with a learning-rate schedule: the driver hands each step its rate eta_k = eta u(k eta) as the
    step size ``h`` (docs/theory.md §7)."""

    def __call__(self, stepper: SGDStep, X, h, gens, sizes):
        stepper.eta = h
        return stepper(X, gens, sizes)


class MomentumRule:
    """Heavy-ball (or Nesterov) momentum on the state (x, v / unit): v <- beta v - eta g(y),
    x <- x + v, with y = x + beta v for Nesterov and y = x otherwise (docs/theory.md §7)."""

    def __init__(self, beta: float, eta: float, nesterov: bool, unit: float, dim: int):
        self.beta, self.eta, self.nesterov, self.unit, self.dim = beta, eta, nesterov, unit, dim

    def __call__(self, stepper: SGDStep, Z, h, gens, sizes):
        d = self.dim
        X, V = Z[..., :d], Z[..., d:] * self.unit
        Y = X + self.beta * V if self.nesterov else X
        _, g = stepper.gradient(Y, gens, sizes)
        V = self.beta * V - self.eta * np.moveaxis(g, 0, -1)
        return np.concatenate([X + V, V / self.unit], axis=-1)


class SGDRun:
    """The driver's step of every SGD simulator: the one compiled :class:`SGDStep` and an optimizer rule."""

    def __init__(self, stepper: SGDStep, rule):
        self.stepper, self.rule = stepper, rule

    def __call__(self, X, h, gens, sizes):
        return self.rule(self.stepper, X, h, gens, sizes)


class SGDTask:
    """What a worker needs to rebuild an SGD step: picklable data (the Problem, numbers and the rule),
    no closure."""

    def __init__(self, problem: Problem, eta: float, batch_size: int, values: dict, rule=None):
        self.problem, self.eta, self.batch_size, self.values = problem, eta, batch_size, dict(values)
        self.rule = ConstantRate() if rule is None else rule

    def build(self) -> SGDRun:
        return SGDRun(SGDStep(self.problem, self.eta, self.batch_size, self.values), self.rule)


def run_rule(task: SGDTask, z0, step_sizes, save_index: list, times, settings: dict) -> SimulationResult:
    """Run the SGD step of ``task`` (any optimizer rule) on the driver, with the step sizes handed to the
    rule one step at a time: the path of the schedule and momentum simulators, executors included.

    ``settings``: n_paths, seed, the run settings of :data:`~smfsym.montecarlo.options.RUN_FIELDS`,
    ``functions``, ``store``, the ``scheme`` label and ``dt_label``, and optionally ``backend``.
    """
    s = dict(settings)
    n_steps = len(step_sizes)
    check_steps(n_steps, s.pop("max_steps"))
    if s["blowup_threshold"] is not None:
        s["blowup_threshold"] = check_positive(s["blowup_threshold"], "blowup_threshold")
    s["max_memory"] = check_int(s["max_memory"], "max_memory")
    s["executor"] = checked_executor(s["executor"], s["functions"])
    backend = get_backend(s.pop("backend", "numpy"))
    step = task.build()  # compiled here too: every error shows up before any work is sent out
    per_path = step.stepper.per_path_bytes(z0) * (2 if isinstance(task.rule, MomentumRule) else 1)
    _check_chunk_memory(per_path, s["n_paths"], s["chunk_size"], task.batch_size, s["max_memory"])
    if backend.name != "numpy":
        step = DeviceSGDRun(DeviceSGDStep(task.problem, task.eta, task.batch_size, task.values, backend), task.rule)
    job = Job(step=step, step_sizes=np.asarray(step_sizes, dtype=float), save_index=save_index, times=times,
              scheme=s["scheme"], dt_label=s["dt_label"], time_label="t",  # the time of `times`: step x unit
              step_times=np.arange(1, n_steps + 1, dtype=float) * s["dt_label"], task=task, per_path_bytes=per_path,
              remedy=CHAIN_REMEDY)
    run_options = RunOptions(chunk_size=s["chunk_size"], on_nonfinite=s["on_nonfinite"], progress=s["progress"],
                             max_memory=s["max_memory"], blowup_threshold=s["blowup_threshold"], executor=s["executor"],
                             backend=backend)
    return run(job, z0, paths=Paths(s["n_paths"], s["seed"]),
               save=SaveAt(functions=s["functions"], store=s["store"]), 
               options=run_options)


def _check_chunk_memory(per_path: int, n_paths: int, chunk_size: int | None, batch_size: int,
                        max_memory: int) -> None:
    """Refuse, before allocating, a chunk whose batch gradients would not fit in ``max_memory``.

    The engine runs whole blocks of BLOCK paths; one chunk holds paths x batch x (dimension + data)
    numbers several times over (``SGDStep.per_path_bytes``). ``batch_size = 10**9`` ended in numpy's
    "Unable to allocate 745 GiB".
    """

    wanted = chunk_size if chunk_size is not None else max(BLOCK, CHUNK_BYTES // max(per_path, 1))
    paths = min(n_paths, BLOCK * max(1, -(-wanted // BLOCK)))
    need = paths * per_path
    if need > max_memory:
        raise ValueError(f"`batch_size` = {batch_size}: one chunk of {paths} paths needs about {need / 2**30:.3g} GiB "
                         f"of batch gradients (paths x batch x (dimension + data) x 48 bytes), over the "
                         f"`max_memory` bound of {max_memory / 2**30:.3g} GiB; lower `batch_size` (or `n_paths` "
                         f"below one block of {BLOCK}), or raise `max_memory` if the machine has the memory.")


def problem_symbols(problem: Problem) -> set:
    """Symbols a user may give ``values`` for: law parameters and constants."""
    return set(problem.law_parameters) | set(problem.constants)


def simulate_sgd(problem: Problem, x0, n_steps: int, eta: float, *, n_paths: int = 10_000, seed=None,
                 save_at=None, batch_size: int | None = None, values: Mapping | None = None,
                 options: RunOptions | None = None, **legacy) -> SimulationResult:
    """Simulate SGD x_{k+1} = x_k - eta * mean over a batch of grad f(x_k, xi).

    Parameters
    ----------
    problem : Problem
    x0 : array_like, shape (d,) or (n, d)
        An (n, d) start runs n SGD chains that share their samples.
    n_steps : int
    eta : float
    save_at : sequence of int, optional
        Strictly increasing step indices in [0, n_steps] to save (default ``[n_steps]``);
        ``result.t`` is step * eta. Unsorted or duplicated indices are refused.
    batch_size : int, optional
        Defaults to the problem's batch size.

    Other parameters are as for :func:`smfsym.simulate` (including ``RunOptions(backend=...)``: batches
    drawn and gradients evaluated on the device, for laws with a device sampler; and what ``n_paths``
    keeps: the paths of every full block of 4096, not those of a partial last block, and
    ``executor``: the Problem is pickled to the workers, compiled once per process, and the
    numbers are bitwise those of the serial run).

    Examples
    --------
    docs/theory.md §3: the mean is (1 - eta)^k x_0.

    >>> import sympy as sp, smfsym
    >>> x = sp.Symbol("x")
    >>> xi = smfsym.normal("xi")
    >>> p = smfsym.Problem((x - xi) ** 2 / 2, [x])
    >>> res = smfsym.simulate_sgd(p, x0=[1.0], n_steps=10, eta=0.1, n_paths=4000, seed=0)
    >>> bool(abs(res.mean()[0, 0] - 0.9**10) < 5 * res.sem()[0, 0])
    True
    """
    (chunk_size, max_memory, max_steps, on_nonfinite, blowup_threshold, executor, progress, save_at, functions,
     store) = run_settings("simulate_sgd", options, save_at, legacy, backends=True)
    backend = get_backend(options.backend if options is not None else "numpy")
    if not isinstance(problem, Problem):
        raise TypeError(f"`problem` must be a smfsym.Problem; got {type(problem).__name__}.")
    eta = check_positive(eta, "eta")
    n_steps = check_int(n_steps, "n_steps")
    check_steps(n_steps, max_steps)
    n_paths = check_int(n_paths, "n_paths")
    if chunk_size is not None:
        chunk_size = check_int(chunk_size, "chunk_size")
    if on_nonfinite not in ("raise", "mask"):
        raise ValueError(f"`on_nonfinite` must be 'raise' or 'mask'; got {on_nonfinite!r}.")
    seed = resolve_seed(seed)
    max_memory = check_int(max_memory, "max_memory")
    if blowup_threshold is not None:
        blowup_threshold = check_positive(blowup_threshold, "blowup_threshold")
    if batch_size is None:
        B = problem.batch_size
        try:
            B = int(B)
        except TypeError:
            raise ValueError(f"`batch_size` must be a number; the problem's is symbolic ({B}).") from None
        if B < 1:
            raise ValueError(f"`batch_size` must be a positive integer; got {B}.")
    else:
        try:
            B = check_int(batch_size, "batch_size")
        except (TypeError, ValueError):
            raise ValueError(f"`batch_size` must be a positive integer; got {batch_size!r}.") from None
    idx = [n_steps] if save_at is None else check_save_steps(save_at, n_steps)
    vals = numeric_values(values, problem_symbols(problem))
    x0 = prepare_x0(x0, problem.dim)
    executor = checked_executor(executor, functions)
    task = SGDTask(problem, eta, B, vals)
    step = task.build()  # compiled here too: every error shows up before any work is sent out
    stepper = step.stepper
    _check_chunk_memory(stepper.per_path_bytes(x0), n_paths, chunk_size, B, max_memory)
    if backend.name != "numpy":
        step = DeviceSGDStep(problem, eta, B, vals, backend)

    grid = StepGrid.uniform(n_steps, eta, idx)
    job = Job(step=step, step_sizes=grid, save_index=idx, times=grid.times, scheme="sgd", dt_label=eta,
              time_label="t", task=task, per_path_bytes=stepper.per_path_bytes(x0),
              remedy=CHAIN_REMEDY)
    run_options = RunOptions(chunk_size=chunk_size, on_nonfinite=on_nonfinite, progress=progress,
                             max_memory=max_memory, blowup_threshold=blowup_threshold, executor=executor,
                             backend=backend)
    res = run(job, x0, paths=Paths(n_paths, seed), save=SaveAt(functions=functions, store=store),
              options=run_options)
    res.extra.update(steps=np.array(idx), batch_size=B)
    return res


# the compile cache seen from the function (as ``functools.lru_cache`` shows its own); the same cache as
# ``smfsym.simulation.sde.cache_info()``
simulate_sgd.cache_info = cache_info
simulate_sgd.cache_clear = cache_clear
