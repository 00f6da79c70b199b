"""Simulating SDEs (gradient flow, SME, SMF) and their n-point motions."""
from __future__ import annotations

import threading
from typing import Any, Mapping

import numpy as np
import sympy as sp

from .._checks import numeric_values
from ..montecarlo.cache import cache_clear, cache_info, compiled_content
from ..montecarlo.checks import check_int, check_positive
from ..montecarlo.driver import Job, Paths, run
from ..montecarlo.executors import checked_executor
from ..montecarlo.grid import MAX_STEPS, StepGrid, step_runs
from ..montecarlo.increments import draw_device, draw_discrete
from ..montecarlo.options import RunOptions, SaveAt, run_settings
from ..montecarlo.result import SimulationResult
from ..montecarlo.seeds import resolve_seed
from ..numerics.compiled_sde import NumericSDE
from ..symbolic.sde import SDE
from ..numerics.solvers import EulerMaruyama, TamedEuler, WeakTaylor2, get_solver
from ..numerics.device_sde import DEVICE_SCHEMES, DeviceSDE
from ..backends import get_backend
from ..symbolic.noise_expansion import warn_if_low

__all__ = ["simulate", "prepare_x0", "time_grid", "check_save_at", "numeric_sde", "cache_info", "cache_clear"]

#: Bytes of normal draws per sub-batch of paths inside a block (bounds the memory of SMFs with many
#: noise columns; the random stream does not depend on it).
DRAW_BYTES = 16 * 2**20


def _holds_bool_or_none(a) -> bool:
    """Whether ``a`` (an array, or nested sequences of numbers) holds booleans or None, which numpy's float
    conversion turns silently into 1.0, 0.0 and nan."""
    if isinstance(a, np.ndarray):
        return a.dtype.kind == "b" or (a.dtype.kind == "O" and _holds_bool_or_none(a.tolist()))
    if isinstance(a, (list, tuple)):
        return any(_holds_bool_or_none(v) for v in a)
    return a is None or isinstance(a, (bool, np.bool_))


def prepare_x0(x0, d: int, name: str = "x0", *, single: bool = False) -> np.ndarray:
    """``x0`` as (d,) or (n, d) float array, validated (a copy: the caller's array is never touched).

    ``name`` is the argument named in errors; ``single=True`` allows only one starting point (d,).
    """
    shapes = f"({d},)" if single else f"({d},) or (n, {d})"
    if isinstance(x0, (str, bytes)) or x0 is None:
        raise TypeError(f"`{name}` must be numeric, of shape {shapes}; got {x0!r}.")
    if getattr(x0, "is_Matrix", False) and tuple(x0.shape) == (d, 1):  # a sympy column vector is one start
        x0 = list(x0)
    try:
        arr = np.array(x0, dtype=float)
    except (TypeError, ValueError, RuntimeError):
        if hasattr(x0, "__array_namespace__"):  # an array on a device: numpy cannot read it
            raise TypeError(f"`{name}` must be on the host (a numpy array or a sequence); got an array of "
                            f"{type(x0).__module__.split('.')[0]} on its device: copy it to the host first (CuPy: "
                            f"{name}.get()).") from None
        raise TypeError(f"`{name}` must be numeric, of shape {shapes}; got {x0!r}.") from None
    if _holds_bool_or_none(x0):  # float(True) is 1.0 and float(None) is nan: neither is a starting point
        raise TypeError(f"`{name}` must be numeric, of shape {shapes}; got {x0!r}.")
    if d == 1 and arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim not in ((1,) if single else (1, 2)) or arr.shape[-1] != d or arr.size == 0:
        raise ValueError(f"`{name}` must have shape {shapes}" + ("" if single else " (n starting points)")
                         + f"; got {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` must be finite; got {int(np.size(arr) - np.isfinite(arr).sum())} NaN or "
                         "infinite entries.")
    return arr


def check_save_at(save_at, end: float, name: str = "save_at", unit: str = "t_end", what: str = "times") -> np.ndarray:
    """``save_at`` as a strictly increasing 1-d float array inside [0, end]; no silent sorting or merging."""
    if isinstance(save_at, (str, bytes)):
        raise TypeError(f"`{name}` must be a sequence of numbers; got {save_at!r}.")
    try:
        arr = np.atleast_1d(np.array(save_at, dtype=float))
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be a sequence of numbers; got {save_at!r}.") from None
    if _holds_bool_or_none(save_at):
        raise TypeError(f"`{name}` must be a sequence of numbers; got {save_at!r}.")
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"`{name}` must be a non-empty 1-d sequence; got shape {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` must be finite; got {arr.tolist()}.")
    out = arr[(arr < 0) | (arr > end * (1 + 1e-12))]
    if out.size:
        raise ValueError(f"`{name}` {what} must lie in [0, {unit} = {end}]; got {out.tolist()}.")
    if np.any(np.diff(arr) <= 0):
        raise ValueError(f"`{name}` must be strictly increasing (sorted, no duplicates); got {arr.tolist()}.")
    return np.clip(arr, 0, end)


def check_save_steps(save_at, n_steps: int) -> list:
    """``save_at`` of a discrete run (SGD, an optimizer's map): strictly increasing integer step numbers in
    [0, n_steps], as ints; 5.7 is refused, not saved at step 5 (no silent rounding, sorting or merging)."""
    steps = check_save_at(save_at, n_steps, "save_at", "n_steps", "steps")
    if np.any(steps != np.round(steps)):
        raise ValueError(f"`save_at` must hold integer step indices; got {steps.tolist()}.")
    return [int(k) for k in steps]


def time_grid(t_end: float, dt: float, save_at, max_steps: int = MAX_STEPS) -> StepGrid:
    """The lazy grid: equal steps <= dt between consecutive save times (refuses > ``max_steps`` steps)."""
    t_end = check_positive(t_end, "t_end")
    dt = check_positive(dt, "dt")
    saves = np.array([t_end]) if save_at is None else check_save_at(save_at, t_end)
    estimate = t_end / dt
    if estimate > max_steps:
        raise ValueError(
            f"t_end / dt = {estimate:.3g} solver steps, over the bound of {max_steps:.3g}: raise `dt` or "
            "`max_steps`."
        )
    return StepGrid.from_saves(saves, dt)


def grid(saves, dt):
    """Equal steps <= dt between consecutive sorted save times (``step_runs``); the save indices (also in
    generated code)."""
    runs, index = step_runs(saves, dt)
    return np.array([h for n, h, _ in runs for _ in range(n)]), index, saves


def numeric_sde(sde: SDE, values: Mapping) -> NumericSDE:
    """The compiled :class:`~smfsym.numerics.compiled_sde.NumericSDE` of ``sde`` with ``values``, once per process.

    Cached by content (:func:`smfsym.engine.compiled`, keyed by the SHA-256 of the pickled SDE and
    numbers): every later call with an equal SDE and equal numbers (another ``simulate`` call, another
    cell of a study, a coupled run, another scheme) reuses its compiled expressions and plans instead
    of lambdifying them again. The numbers are bound at compile time, so each eta is its own entry.
    """
    vals, items = values_key(values)
    return compiled_content(("NumericSDE", sde, items), lambda: NumericSDE(sde, vals))


def values_key(values: Mapping) -> tuple:
    """``values`` normalised (symbol -> float) and as sorted pairs for a cache key: the key must not
    depend on the order in which the caller's mapping was filled."""
    vals = numeric_values(values)
    return vals, sorted(vals.items(), key=lambda kv: sp.default_sort_key(kv[0]))


class SDETask:
    """What a worker needs to rebuild one simulation step: picklable data, no closure.

    ``build()`` compiles the SDE (with its numbers) for the scheme and returns the step
    ``stepper(X, h, gens, sizes)``; an executor's worker calls it once per process. The compiled
    SDE comes from the process's compile cache (:func:`numeric_sde`): only the first build of an
    SDE with given numbers compiles.
    """

    def __init__(self, sde: SDE, values: dict, solver, increments: str):
        self.sde, self.values, self.solver, self.increments = sde, dict(values), solver, increments

    def build(self) -> "_SDEStepper":
        return _SDEStepper(numeric_sde(self.sde, self.values), self.solver, self.increments)


class _SDEStepper:
    """One compiled step of a solver on all paths of a chunk, drawing each block's increments.

    Its draw buffers are its own (the compiled ``nsde`` may be shared through the cache)."""

    def __init__(self, nsde: NumericSDE, solver, increments):
        self.solver = solver
        self.nsde = nsde
        solver.prepare(self.nsde)
        self.m, self.k = self.nsde.m, solver.n_draws
        self.discrete = increments == "discrete"
        # sub-batches of paths inside a block: the normal draws of an SMF with thousands of noise columns
        # stay within DRAW_BYTES; the random stream (filled in order) and every per-path number are the same
        self.sub = max(1, DRAW_BYTES // max(1, 8 * self.k * self.m))
        # data-set noise contracts each path's M increments with the data (a matmul): rows, as drawn
        self.rows = self.nsde.kind == "template"
        self._local = threading.local()

    def _buffers(self, q):
        # per thread (a threaded executor may share this stepper), reused step after step: a fresh
        # multi-megabyte array costs page faults on every step
        n = self.k * self.m * q
        bufs = getattr(self._local, "bufs", None)
        if bufs is None or bufs[0].size < n:
            bufs = self._local.bufs = (np.empty(n), np.empty(n))
        return bufs[0][:n], bufs[1][:n]

    def draw(self, g, q):
        """``(q, k, m)`` increments laid out as ``(k, m, q)`` in memory: each column is contiguous over
        the paths, which is how the compiled expressions read them (a strided column costs 4-8x).
        A view of a buffer reused by the next draw of this thread."""
        buf, raw = self._buffers(q)
        if self.discrete:
            return draw_discrete(g, q, self.solver.discrete, self.m, out=buf)
        raw = raw.reshape(q, self.k, self.m)
        g.standard_normal(out=raw)  # the stream's order: unchanged
        if self.rows:
            return raw
        buf = buf.reshape(self.k, self.m, q)
        buf[...] = raw.transpose(1, 2, 0)
        return buf.transpose(2, 0, 1)

    def release_buffers(self) -> None:
        """Drop the draw buffers of every thread (an executor worker calls it after each task: a step kept
        in the compile cache then holds its compiled code only, not megabytes of increments)."""
        self._local = threading.local()

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_local", None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._local = threading.local()

    def __call__(self, X, h, gens, sizes):
        solver, nsde, m, k, sub = self.solver, self.nsde, self.m, self.k, self.sub
        if not m:
            return solver.step(nsde, X, h, np.zeros((X.shape[0], k, 0)))
        if len(sizes) == 1 and sizes[0] <= sub:
            # one block in one draw (small runs, executor tasks of one block): the step's own output is
            # the result, no copy into a second array
            out = solver.step(nsde, X, h, self.draw(gens[0], sizes[0]))
            if not (isinstance(out, np.ndarray) and out.shape == X.shape and out.dtype == X.dtype):
                full = np.empty_like(X)
                full[...] = out  # what the assignment below makes of a custom solver's output
                out = full
            return out
        # one block (or memory sub-batch) at a time: its draws are still in cache when the step reads
        # them; every per-path number is the same as stepping the whole chunk at once
        out = np.empty_like(X)
        lo = 0
        for g, s in zip(gens, sizes):
            for a in range(0, s, sub):
                q = min(sub, s - a)
                out[lo:lo + q] = solver.step(nsde, X[lo:lo + q], h, self.draw(g, q))
                lo += q
        return out


class _DeviceStepper:
    """One step of ``euler``, ``weak2`` or ``tamed`` on an array back end: the chunk's increments drawn block by block
    on the device (:func:`~smfsym.montecarlo.increments.draw_device`), then the device step."""

    def __init__(self, dev: DeviceSDE, solver, increments: str):
        self.dev, self.backend = dev, dev.backend
        self.scheme = solver.name
        self.k, self.m = solver.n_draws, dev.m
        self.discrete = solver.discrete if increments == "discrete" else None

    def __call__(self, X, h, gens, sizes):
        Z = draw_device(self.backend, gens, sizes, self.k, self.m, self.discrete) if self.m else None
        h = float(h)
        return getattr(self.dev, self.scheme)(X, h, Z)


def device_stepper(sde: SDE, vals: dict, solver, increments: str, backend) -> _DeviceStepper:
    """The step of ``solver`` on ``backend`` (its compiled plans cached by content, per back end and dtype)."""
    if type(solver) not in (EulerMaruyama, WeakTaylor2, TamedEuler):
        raise ValueError(f"`scheme`: backend={backend.name!r} runs {list(DEVICE_SCHEMES)}; got {solver!r}.")
    nsde = numeric_sde(sde, vals)
    _, items = values_key(vals)

    def build():
        dev = DeviceSDE(nsde, backend)
        dev.prepare(solver.name)
        return dev

    key = ("DeviceSDE", sde, items, backend.key, solver.name)
    # a Backend object with the same key shares the compilation (and draws through the cached one's namespace)
    return _DeviceStepper(compiled_content(key, build), solver, increments)


def _known_symbols(sde) -> set:
    known = set(sde.free_symbols)
    if isinstance(sde.eta, sp.Symbol):
        known.add(sde.eta)
    if sde.problem is not None:
        known |= set(sde.problem.law_parameters) | set(sde.problem.constants)
    return known


def simulate(sde: SDE, x0, t_end: float, *, eta: float | None = None, n_paths: int = 10_000,
             dt: float | None = None, scheme: Any = "euler", seed=None, save_at=None,
             values: Mapping | None = None, increments: str = "gaussian", options: RunOptions | None = None,
             **legacy) -> SimulationResult:
    """Simulate an SDE (or its n-point motion) by Monte Carlo.

    Parameters
    ----------
    sde : SDE
        From :func:`smfsym.sme`, :func:`smfsym.smf`, :func:`smfsym.gradient_flow` or built by hand.
    x0 : array_like, shape (d,) or (n, d)
        Start; an (n, d) array runs the n-point motion: n starts driven by the same noise.
    t_end : float
        Horizon (SGD step k corresponds to t = k eta).
    eta : float, optional
        The learning rate, substituted for ``sde.eta``.
    n_paths : int
        Number of paths. Path p belongs to seed block p // 4096, which has its own
        random stream; at each step a block draws the noise of all its paths at
        once. So, for a fixed seed, scheme and grid, the paths of a *full* block
        are the same in every run that contains that whole block: with
        n_paths = 4096 q + r, the first 4096 q paths are those of any longer run.
        The last, partial block (r paths) draws a different share of its stream
        per step, so its paths change whenever r does (they are not a prefix of a
        longer run's). ``chunk_size`` and ``store`` never change any number, and
        streamed ``stats`` are bitwise identical for every ``chunk_size`` (merged
        per block, in block order).
    dt : float, optional
        Solver step, independent of eta (default eta / 10).
    scheme : str, Solver class or instance
        "euler" (weak order 1), "weak2" (weak order 2) or "tamed" (increment-tamed
        Euler, weak order 1, for stiff / superlinearly growing coefficients).
    seed : int, SeedSequence or Generator
        Same seed, same numbers, whatever ``chunk_size``.
    save_at : sequence of float, optional
        Strictly increasing times in [0, t_end] to save (default ``[t_end]``); the grid
        is adapted to hit them: equal steps <= dt between saves, and one step size throughout when
        every save lies on the grid of ``t_end`` alone (so a save added there changes no other
        number). Unsorted, duplicated or non-finite times are refused.
    values : mapping, optional
        Numbers for constants and law parameters.
    options : smfsym.RunOptions, optional
        How the run is carried out, never what it computes: the run settings below
        (``RunOptions(chunk_size=..., executor=...)``). What to save beyond the times goes in
        ``save_at=smfsym.SaveAt(at=..., functions=..., store=...)``. The settings as keywords
        are still accepted for one release, with a ``DeprecationWarning``. ``RunOptions(backend="cupy")``
        runs on an NVIDIA GPU (:mod:`smfsym.backends`; "euler", "weak2" and "tamed" on explicit noise
        columns, "euler" and "weak2" on a data set, "euler" and "tamed" with the SME's numeric root): ``functions`` then receive the back end's arrays (write them
        with array operators).
    functions : mapping name -> callable, optional
        Statistics streamed at every saved time: ``f(states)`` with states of shape
        ``(P, [n,] d)`` returning ``(P,)`` or ``(P, k)``.
    store : bool
        Keep all states (bounded by memory; stream with ``store=False``).
    on_nonfinite : {"raise", "mask"}
    progress : bool or None
        None (default): a tqdm bar on an interactive terminal or in a notebook (widgets via
        ``tqdm.auto``), shown only for runs longer than about 2 s; True: always; False: never.
        Logs get the studies' per-model, per-eta lines instead.
    max_steps : int
        Refuse grids of more than this many steps (t_end / dt, estimated before starting).
        The grid itself is streamed, never stored, so long horizons cost no memory.
    blowup_threshold : float, optional
        A path with an entry beyond this magnitude counts as blown up like inf/NaN (default
        1e100): raised, or masked and counted with ``on_nonfinite='mask'``. Lower it to drop
        paths that diverge slowly (e.g. SGD past its stability region) instead of averaging them.
    max_memory : int
        Bound in bytes on the stored states (``store=True``; default 4 GiB).
    increments : {"gaussian", "discrete"}
        "discrete" replaces the Gaussian increments by two-point (+-sqrt(dt); euler, tamed)
        or three-point (weak2) variables with the moments the weak order needs (Kloeden-Platen
        14.1-14.2), drawn from random bits: faster, same weak order, but the paths are not
        Brownian. Use it for expectations only, never for pathwise statistics.
    executor : concurrent.futures.Executor or dask.distributed.Client, optional
        Run groups of whole seed blocks on it (``smfsym.process_pool(2)``, ``Client(...)``); the
        numbers are bitwise those of the serial run. Workers compile the SDE once per process;
        ``functions`` must then be module-level functions (they are pickled). ``chunk_size``, if
        given, is the paths per task (default: the run cut into about 16 tasks);
        ``result.extra["executor"]`` records the tasks' compile, run and CPU seconds. See
        :mod:`smfsym.montecarlo.executors`.

    Notes
    -----
    The SDE is compiled once per process for given numbers (``values`` and ``eta``): later calls with
    the same SDE object and numbers (another seed, horizon, scheme, a study's repeated and coupled
    runs) reuse the compilation from a bounded cache (:func:`smfsym.engine.compiled`, keyed by
    content), with bitwise the same numbers. ``smfsym.simulation.sde.cache_info()`` reports its hits and
    misses, ``smfsym.simulation.sde.cache_clear()`` empties it.

    Examples
    --------
    >>> import sympy as sp, smfsym
    >>> x = sp.Symbol("x")
    >>> xi = smfsym.normal("xi")
    >>> flow = smfsym.smf(smfsym.Problem((x - xi) ** 2 / 2, [x]), order=2)
    >>> res = smfsym.simulate(flow, x0=[1.0], t_end=1.0, eta=0.1, n_paths=2000, seed=1)
    >>> res.states.shape, res.success
    ((1, 2000, 1), True)
    """
    (chunk_size, max_memory, max_steps, on_nonfinite, blowup_threshold, executor, progress, save_at, functions,
     store) = run_settings("simulate", options, save_at, legacy, backends=True)
    backend = get_backend(options.backend if options is not None else "numpy")
    if not isinstance(sde, SDE):
        raise TypeError(f"`sde` must be a smfsym.SDE; got {type(sde).__name__}.")
    # every argument is checked before anything is compiled or simulated
    n_paths = check_int(n_paths, "n_paths")
    if chunk_size is not None:
        chunk_size = check_int(chunk_size, "chunk_size")
    max_steps = check_int(max_steps, "max_steps")
    if on_nonfinite not in ("raise", "mask"):
        raise ValueError(f"`on_nonfinite` must be 'raise' or 'mask'; got {on_nonfinite!r}.")
    seed = resolve_seed(seed)
    max_memory = check_int(max_memory, "max_memory")
    if increments not in ("gaussian", "discrete"):
        raise ValueError(f"`increments` must be 'gaussian' or 'discrete'; got {increments!r}.")
    if blowup_threshold is not None:
        blowup_threshold = check_positive(blowup_threshold, "blowup_threshold")
    vals = numeric_values(values, _known_symbols(sde))
    eta = check_positive(eta, "eta", allow_none=True)
    if eta is not None:
        vals[sde.eta] = eta
    elif isinstance(sde.eta, sp.Symbol) and sde.eta in sde.free_symbols:
        raise ValueError(f"`eta` must be given: the SDE's coefficients contain {sde.eta}.")
    if dt is None:
        if eta is None:
            raise ValueError("`dt` must be given when `eta` is not (the default dt is eta / 10).")
        dt = eta / 10
    x0 = prepare_x0(x0, sde.dim)
    grid_ = time_grid(t_end, dt, save_at, max_steps)
    solver = get_solver(scheme)
    if increments == "discrete" and solver.discrete is None:
        raise ValueError(f"`increments='discrete'` is not valid for the scheme {solver.name!r} (it declares no "
                         "discrete increments); use increments='gaussian'.")
    executor = checked_executor(executor, functions)
    task = SDETask(sde, vals, solver, increments)
    stepper = task.build()  # compiled here too: every error shows up before any work is sent out
    m, k, sub = stepper.m, stepper.k, stepper.sub
    if backend.name != "numpy":
        stepper, task = device_stepper(sde, vals, solver, increments, backend), None
        sub = m  # the device draws a chunk's increments at once
    if sde.chaos is not None and not sde.chaos.exact:

        warn_if_low(sde.chaos, np.atleast_2d(x0), vals)
    per_path = 8 * int(np.prod(x0.shape)) * 24 + 8 * k * min(m, sub * k * m)
    if backend.name != "numpy":
        per_path += stepper.dev.per_path_bytes(x0)
    job = Job(step=stepper, step_sizes=grid_, save_index=grid_.save_index, times=grid_.times,
              scheme=solver.name, dt_label=grid_.max_step if len(grid_) else float(dt), task=task,
              per_path_bytes=per_path)
    run_options = RunOptions(chunk_size=chunk_size, on_nonfinite=on_nonfinite, progress=progress,
                             max_memory=max_memory, blowup_threshold=blowup_threshold, executor=executor,
                             backend=backend)
    res = run(job, x0, paths=Paths(n_paths, seed), save=SaveAt(functions=functions, store=store),
              options=run_options)
    res.extra.update(model=sde.model, order=sde.order, weak_order=solver.weak_order, increments=increments)
    return res


# the compile cache seen from the function, as ``functools.lru_cache`` shows its own:
# ``smfsym.simulation.sde.cache_info()`` (hits, misses, maxsize, currsize) and ``smfsym.simulation.sde.cache_clear()``
simulate.cache_info = cache_info
simulate.cache_clear = cache_clear
