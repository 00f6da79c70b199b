"""Argument checks of the Monte Carlo layer and the blow-up error."""
from __future__ import annotations

import math
import numbers
import sys
from dataclasses import dataclass

import numpy as np

__all__ = ["BlowUpError", "FirstLoss", "blowup_error", "check_int", "check_positive", "check_per_path", "check_steps",
           "DIVERGED"]

#: A state beyond this magnitude counts as blown up, like inf and NaN: a path there has diverged, and
#: averaging it would give a finite but meaningless number (phi = x^2 of it already overflows).
DIVERGED = 1e100


#: What a blow-up report of an SDE run advises (a run of another kind names its own ways out: ``Job.remedy``).
SDE_REMEDY = "reduce `dt`/`eta`, use a tamed scheme (scheme='tamed') or pass on_nonfinite='mask' to drop those paths"
#: ... of a discrete chain (SGD, an optimizer's update): no `dt`, no scheme
CHAIN_REMEDY = "reduce `eta` or pass on_nonfinite='mask' to drop those paths"
#: ... of a mean-field simulator, which keeps every path
MEANFIELD_REMEDY = "reduce `eta` (and `dt`), or start the particles nearer the data's scale"


class BlowUpError(FloatingPointError):
    """A simulation produced non-finite states.

    Raised by the Monte Carlo driver, it carries ``loss``, the :class:`FirstLoss` it reports (None where a
    study re-raised it with its own words)."""

    loss: FirstLoss | None = None


@dataclass(frozen=True)
class FirstLoss:
    """The first step at which any path of a run was lost (``on_nonfinite="raise"``), and how many paths then.

    A loss found in one chunk of paths is not yet the run's first: another chunk may lose paths earlier. The
    driver therefore runs every other chunk up to the step found (not beyond: the report needs no more) and
    keeps the earliest, so the report is the same whatever the chunk size or executor, and ``count`` is the
    number of paths lost at ``step`` among all of the run's paths, all of which were followed that far.

    Examples
    --------
    >>> FirstLoss(7, 0.7, 3, 2).earliest(FirstLoss(7, 0.7, 2, 0))
    FirstLoss(step=7, time=0.7, count=5, block=0)
    >>> FirstLoss(7, 0.7, 3, 2).earliest(FirstLoss(4, 0.4, 1, 5)).step
    4
    """

    step: int
    time: float
    count: int  # paths lost at `step`
    block: int  # the first seed block holding such a path

    def earliest(self, other: FirstLoss | None) -> FirstLoss:
        if other is None or self.step < other.step:
            return self
        if other.step < self.step:
            return other
        return FirstLoss(self.step, self.time, self.count + other.count, min(self.block, other.block))


def blowup_error(loss: FirstLoss, job: dict, backend_name: str | None = None) -> BlowUpError:
    """The driver's report of a raise-mode blow-up: step, time, share of all paths, where, what to do.

    Examples
    --------
    >>> job = dict(n_paths=10_000, time_label="t", diverged=1e100, remedy="reduce `eta`")
    >>> print(blowup_error(FirstLoss(12, 0.6, 25, 1), job))  # doctest: +ELLIPSIS
    non-finite state at step 12 (t = 0.6) in 0.25% of the paths (25 of 10000, the first in seed block 1; ...
    """
    n_paths = job["n_paths"]
    on = "" if backend_name is None else f"; backend {backend_name!r}"
    exc = BlowUpError(
        f"non-finite state at step {loss.step} ({job['time_label']} = {loss.time:.6g}) in {loss.count / n_paths:.2%} "
        f"of the paths ({loss.count} of {n_paths}, the first in seed block {loss.block}; none was lost earlier; "
        f"|state| > {job['diverged']:.3g} counts as non-finite{on}); {job.get('remedy', SDE_REMEDY)}.")
    exc.loss = loss
    return exc


def check_int(value, name: str, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``; bools, floats and strings are refused.

    Examples
    --------
    >>> check_int(3, "n_paths")
    3
    >>> check_int(True, "n_paths")
    Traceback (most recent call last):
    ...
    TypeError: `n_paths` must be an integer; got True (bool).
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"`{name}` must be an integer; got {value!r} ({type(value).__name__}).")
    if value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}; got {value!r}.")
    return int(value)


def check_positive(value, name: str, allow_none: bool = False):
    """``value`` as a positive finite float; sympy numbers are converted, symbolic ones refused.

    Examples
    --------
    >>> import sympy as sp
    >>> check_positive(sp.Rational(1, 10), "eta")
    0.1
    >>> check_positive(-1.0, "t_end")
    Traceback (most recent call last):
    ...
    ValueError: `t_end` must be positive and finite; got -1.0.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or isinstance(value, (str, bytes)):
        raise TypeError(f"`{name}` must be a positive number; got {value!r} ({type(value).__name__}).")
    try:
        sp = sys.modules.get("sympy")  # a sympy number has sympy loaded; generated modules run without it
        if sp is not None and isinstance(value, sp.Basic):
            if value.free_symbols:
                raise TypeError(f"`{name}` must be a number; got the symbolic {value} (give a numeric value).")
            value = complex(value)
            if value.imag != 0:
                raise ValueError(f"`{name}` must be a real number; got {value}.")
            value = value.real
        out = float(value)
    except (TypeError, ValueError) as exc:
        if str(exc).startswith(f"`{name}`"):
            raise
        raise TypeError(f"`{name}` must be a positive number; got {value!r} ({type(value).__name__}).") from None
    if not math.isfinite(out) or out <= 0:
        raise ValueError(f"`{name}` must be positive and finite; got {value!r}.")
    return out


def check_steps(n_steps, max_steps, name: str = "n_steps", remedy: str = "raise `max_steps`"):
    """Refuse, before anything is allocated or run, a run of more than ``max_steps`` steps
    (:attr:`smfsym.RunOptions.max_steps`, default 10^9): the one step bound of every simulator.

    ``n_steps`` is the step count, or its estimate (a float) where the count itself would be huge;
    ``name`` is what the message calls it (an argument, or how it follows from the arguments).

    Examples
    --------
    >>> check_steps(10, 10**9)
    10
    >>> check_steps(10**12, 10**9)
    Traceback (most recent call last):
    ...
    ValueError: `n_steps` = 1000000000000 is over the bound of 1000000000: raise `max_steps`.
    """
    max_steps = check_int(max_steps, "max_steps")
    if n_steps > max_steps:
        shown = n_steps if isinstance(n_steps, (numbers.Integral, np.integer)) else f"{n_steps:.3g}"
        label = f"`{name}`" if name.isidentifier() else name
        raise ValueError(f"{label} = {shown} is over the bound of {max_steps}: {remedy}.")
    return n_steps


def check_per_path(name: str, shape: tuple, n_paths: int) -> None:
    """A streamed function's values must hold one entry per path (leading axis ``n_paths``)."""
    if len(shape) == 0 or shape[0] != n_paths:
        raise ValueError(f"`functions[{name!r}]` must return one value per path, an array of shape ({n_paths}, ...) "
                         f"for states of {n_paths} paths; got shape {tuple(shape)}.")
