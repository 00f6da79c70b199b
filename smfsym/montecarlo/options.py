"""Options objects of a Monte Carlo run (diffrax's ``SaveAt`` style): what to save, and how to run.

Every simulator and study takes ``save_at=`` (a sequence of times or a :class:`SaveAt`) and
``options=`` (a :class:`RunOptions`), in place of a dozen keyword arguments each. The objects are
frozen and validated when made, so a bad value is refused before any work starts, with the name of
the field in backticks.
"""
from __future__ import annotations

import numbers
import os
import sys
import warnings
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping, Sequence

from ..backends import get_backend

__all__ = ["RunOptions", "SaveAt", "ON_NONFINITE", "MAX_STORED_BYTES", "MAX_STEPS", "MAX_PATH_STEPS", "run_settings",
           "RUN_FIELDS", "user_stacklevel"]

#: Default bound on stored states (bytes); larger requests are refused.
MAX_STORED_BYTES = 4 * 2**30
#: Default bound on the number of solver steps.
MAX_STEPS = 10**9
#: Default bound on a study's Monte Carlo work in path-steps (paths x steps over all its runs; about 2e7
#: path-steps a second on one core, so the default is over an hour).
MAX_PATH_STEPS = 1e11
#: What a run does when a path becomes non-finite or diverges.
ON_NONFINITE = ("raise", "mask")


def _positive_int(value, name: str, allow_none: bool = False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer{' or None' if allow_none else ''}; got {value!r}.")
    return int(value)


def _positive_float(value, name: str, allow_none: bool = False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (0 < float(value) < float("inf")):
        raise ValueError(f"`{name}` must be a positive finite number{' or None' if allow_none else ''}; got {value!r}.")
    return float(value)


@dataclass(frozen=True)
class RunOptions:
    """How a Monte Carlo run is carried out: never what it computes.

    Two runs that differ only in their options give the same numbers (bitwise, on one back end),
    except that ``on_nonfinite="mask"`` keeps a run going where ``"raise"`` stops it.

    Parameters
    ----------
    chunk_size : int, optional
        Paths simulated at once (rounded up to whole seed blocks); by default chosen from the
        memory a path needs.
    max_memory : int
        Bound in bytes on stored states; a larger request is refused with the size.
    max_steps : int
        Bound on the number of solver steps; a longer grid is refused before it starts.
    on_nonfinite : {"raise", "mask"}
        On a non-finite or diverged path: raise :class:`smfsym.BlowUpError` naming the first step
        at which any path was lost and the fraction of paths lost then (the same whatever the chunk
        size), or drop the path from the statistics and report it in the result.
    blowup_threshold : float, optional
        A state beyond this magnitude counts as diverged (default ``1e100``).
    executor : concurrent.futures.Executor or dask Client, optional
        Runs groups of seed blocks in parallel; the numbers equal the serial run's.
    progress : bool, optional
        Progress bar: True always, False never, None when a run lasts more than a few seconds.
    backend : str or smfsym.backends.Backend
        The array library the run uses: ``"numpy"`` (default, the numbers of every earlier release),
        ``"cupy"`` (an NVIDIA GPU, ``pip install "smfsym[gpu]"``), ``"jax"`` (JAX's device,
        ``pip install "smfsym[jax]"``) or ``"array_api_strict"`` (the CPU stand-in CI tests the device path
        on); see :mod:`smfsym.backends`. Numbers differ between back
        ends (other random streams) and agree statistically; on one back end they do not depend on
        ``chunk_size``.
    max_path_steps : float
        Bound on a study's whole Monte Carlo work, paths x steps over all its runs (default 1e11),
        estimated and refused before anything runs (the optimizer studies; a simulator bounds its
        steps with ``max_steps`` and refuses this field when set).

    Examples
    --------
    >>> RunOptions(chunk_size=8192).chunk_size
    8192
    >>> RunOptions(backend="cupy").backend  # checked by name; CuPy is imported when a run starts
    'cupy'
    >>> RunOptions(on_nonfinite="ignore")
    Traceback (most recent call last):
    ...
    ValueError: `on_nonfinite` must be 'raise' or 'mask'; got 'ignore'.
    """

    chunk_size: int | None = None
    max_memory: int = MAX_STORED_BYTES
    max_steps: int = MAX_STEPS
    on_nonfinite: str = "raise"
    blowup_threshold: float | None = None
    executor: Any = None
    progress: bool | None = None
    backend: Any = "numpy"
    max_path_steps: float = MAX_PATH_STEPS

    def __post_init__(self):
        set_ = object.__setattr__
        set_(self, "chunk_size", _positive_int(self.chunk_size, "chunk_size", allow_none=True))
        set_(self, "max_memory", _positive_int(self.max_memory, "max_memory"))
        set_(self, "max_steps", _positive_int(self.max_steps, "max_steps"))
        if not isinstance(self.on_nonfinite, str) or self.on_nonfinite not in ON_NONFINITE:
            raise ValueError(f"`on_nonfinite` must be 'raise' or 'mask'; got {self.on_nonfinite!r}.")
        set_(self, "blowup_threshold", _positive_float(self.blowup_threshold, "blowup_threshold", allow_none=True))
        if self.progress is not None and not isinstance(self.progress, bool):
            raise TypeError(f"`progress` must be True, False or None; got {self.progress!r}.")
        get_backend(self.backend)  # a known name or a Backend; its library is imported when a run starts
        set_(self, "max_path_steps", _positive_float(self.max_path_steps, "max_path_steps"))

    def replace(self, **changes) -> "RunOptions":
        """A copy with ``changes`` applied (validated again)."""
        return replace(self, **changes)


@dataclass(frozen=True)
class SaveAt:
    """What a run saves, and when.

    Parameters
    ----------
    at : sequence of float or int, optional
        When to save, in the simulator's own unit (times for SDEs, step indices for optimizers);
        by default the start and the end.
    functions : mapping of str to callable, optional
        Statistics streamed at every save, ``{name: f(states) -> array}``: their means and
        standard errors are kept without storing the states.
    store : bool
        Keep every state at every save (refused beyond ``RunOptions.max_memory``).
    keep_values : bool
        Also keep the per-path values of every streamed statistic.

    Examples
    --------
    >>> SaveAt(at=[0.5, 1.0], store=False).at
    (0.5, 1.0)
    >>> SaveAt(functions={"state": abs})
    Traceback (most recent call last):
    ...
    ValueError: `functions` keys must be names other than 'state'; got 'state'.
    """

    at: Sequence[float] | None = None
    functions: Mapping[str, Callable] | None = None
    store: bool = True
    keep_values: bool = False

    def __post_init__(self):
        set_ = object.__setattr__
        if self.at is not None:
            if isinstance(self.at, (str, bytes)) or not hasattr(self.at, "__iter__"):
                raise TypeError(f"`at` must be a sequence of times or steps; got {type(self.at).__name__}.")
            set_(self, "at", tuple(self.at.tolist() if hasattr(self.at, "tolist") else self.at))
        if self.functions is not None:
            if not isinstance(self.functions, Mapping):
                raise TypeError(f"`functions` must be a mapping name -> callable; got {type(self.functions).__name__}.")
            for name, fn in self.functions.items():
                if not isinstance(name, str) or name == "state":
                    raise ValueError(f"`functions` keys must be names other than 'state'; got {name!r}.")
                if not callable(fn):
                    raise TypeError(f"`functions[{name!r}]` must be callable; got {type(fn).__name__}.")
            set_(self, "functions", dict(self.functions))
        for name in ("store", "keep_values"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"`{name}` must be True or False; got {getattr(self, name)!r}.")

    @classmethod
    def of(cls, save_at) -> "SaveAt":
        """``save_at`` as given to a simulator (None, a sequence of times, or a SaveAt) as a SaveAt."""
        if save_at is None:
            return cls()
        return save_at if isinstance(save_at, cls) else cls(at=save_at)


def user_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning raised by the caller point at the first frame outside smfsym
    (the user's call), however deep in the package the old keyword was read."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1
    return level


#: The run settings a simulator took as keywords before :class:`RunOptions` (issue 16), in the order
#: :func:`run_settings` returns them; still accepted for one release, with a ``DeprecationWarning``.
RUN_FIELDS = ("chunk_size", "max_memory", "max_steps", "on_nonfinite", "blowup_threshold", "executor", "progress")
_SAVE_FIELDS = ("functions", "store")


def run_settings(caller: str, options, save_at, legacy: Mapping, supported=RUN_FIELDS, backends: bool = False) -> tuple:
    """The settings of one simulator call: ``options`` (a :class:`RunOptions`), ``save_at`` (times, or a
    :class:`SaveAt`) and the old keywords in ``legacy``, as the tuple ``(*RUN_FIELDS, save_at, functions,
    store)`` the simulator's body reads.

    The values are passed on as given (the simulator validates them as it always has), so a call with
    the old keywords and one with ``options`` give the same numbers and the same errors. A setting the
    simulator does not support (not in ``supported``) is refused when it is not the default, and so is a
    back end other than numpy unless ``backends`` (the caller reads ``options.backend`` itself): never a
    silent run on the CPU.

    Examples
    --------
    >>> run_settings("simulate", RunOptions(chunk_size=8192), [1.0], {})[0]
    8192
    >>> run_settings("simulate", None, SaveAt(at=[0.5], store=False), {})[-3:]
    ([0.5], None, False)
    >>> run_settings("simulate", None, None, {"chunk_sise": 4})
    Traceback (most recent call last):
    ...
    TypeError: simulate() got an unexpected keyword argument 'chunk_sise'
    """
    unknown = [k for k in legacy if k not in RUN_FIELDS and k not in _SAVE_FIELDS]
    if unknown:
        raise TypeError(f"{caller}() got an unexpected keyword argument {unknown[0]!r}")
    if options is not None and not isinstance(options, RunOptions):
        raise TypeError(f"`options` must be a smfsym.RunOptions; got {type(options).__name__}.")
    run_keys = [k for k in legacy if k in RUN_FIELDS]
    if run_keys:
        if options is not None:
            raise TypeError(f"`{run_keys[0]}` is given twice, as a keyword and in `options`; give it in `options`.")
        warnings.warn(f"{caller}({run_keys[0]}=...): run settings go in `options=smfsym.RunOptions("
                      f"{run_keys[0]}=...)`; the keywords go in the next release.", DeprecationWarning,
                      stacklevel=user_stacklevel())
    base = options if options is not None else RunOptions()
    if not backends and get_backend(base.backend).name != "numpy":
        raise ValueError(f"`backend`: {caller} runs on numpy only so far (the array back ends run simulate, "
                         f"simulate_sgd and the studies built on them); got {base.backend!r}.")
    values = tuple(legacy.get(k, getattr(base, k)) for k in RUN_FIELDS)
    default = RunOptions()
    if base.max_path_steps != default.max_path_steps:
        raise ValueError(f"`max_path_steps`: {caller} does not take it (a study's bound on its whole work; a "
                         f"simulator's steps are bounded by `max_steps`); got {base.max_path_steps!r}.")
    for k, v in zip(RUN_FIELDS, values):
        if k not in supported and v is not getattr(default, k) and v != getattr(default, k):
            raise ValueError(f"`{k}`: {caller} does not take it; got {v!r}.")
    if isinstance(save_at, SaveAt):
        clash = [k for k in _SAVE_FIELDS if k in legacy]
        if clash:
            raise TypeError(f"`{clash[0]}` is given twice, as a keyword and in `save_at`; give it in `save_at`.")
        if save_at.keep_values:
            raise ValueError(f"`save_at.keep_values`: {caller} does not keep per-path values; got True.")
        return (*values, None if save_at.at is None else list(save_at.at), save_at.functions, save_at.store)
    if any(k in legacy for k in _SAVE_FIELDS):
        key = next(k for k in _SAVE_FIELDS if k in legacy)
        warnings.warn(f"{caller}({key}=...): what to save goes in `save_at=smfsym.SaveAt(at=..., {key}=...)`; "
                      "the keywords go in the next release.", DeprecationWarning, stacklevel=user_stacklevel())
    return (*values, save_at, legacy.get("functions"), legacy.get("store", True))
