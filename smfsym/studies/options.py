"""How a study computes its errors (:class:`Numerics`) and how it runs (:class:`~smfsym.RunOptions`): the
options objects every study takes in place of a dozen keywords (issue 16).

Like the simulators' :func:`~smfsym.montecarlo.options.run_settings`, :func:`study_settings` passes the
values on as given, so a study validates them as it always has and the old keywords give the same
numbers (they still work for one release, with a ``DeprecationWarning``).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, fields
from typing import Any, Mapping

from ..montecarlo.options import RUN_FIELDS, RunOptions

__all__ = ["Numerics", "study_settings", "NUMERICS_FIELDS", "STUDY_RUN_FIELDS"]


@dataclass(frozen=True)
class Numerics:
    """How a study computes each error: the route, the scheme of the SDE runs and their step.

    Parameters
    ----------
    method : {"auto", "exact", "montecarlo"}
        Exact moments where they close ("auto": per model, Monte Carlo for the rest).
    scheme : str or Solver, optional
        The SDE scheme (default: weak order 2 where its derivatives exist, else Euler).
    increments : {"auto", "gaussian", "discrete"}
        The SDE runs' increments ("auto": discrete for expectations).
    dt_fraction : float
        The SDE step as a fraction of eta (or of h for momentum).
    extrapolate : bool
        Remove the SDE scheme's own weak error by coupled Richardson runs (dt and dt/2).
    resolve : float
        An error counts as resolved above this many standard errors (orders are fitted on those).

    Examples
    --------
    >>> Numerics(scheme="euler", dt_fraction=0.25).dt_fraction
    0.25
    """

    method: str = "auto"
    scheme: Any = None
    increments: str = "auto"
    dt_fraction: float = 0.125
    extrapolate: bool = True
    resolve: float = 3.0


#: The fields of Numerics and the run settings a study takes, in the order study_settings returns them.
NUMERICS_FIELDS = tuple(f.name for f in fields(Numerics))
STUDY_RUN_FIELDS = ("on_nonfinite", "blowup_threshold", "executor", "progress", "backend", "max_path_steps")
#: Study run settings that were never keywords of a study (only ``options=RunOptions(...)`` gives them).
_OPTIONS_ONLY = ("max_path_steps",)


def study_settings(caller: str, numerics, options, legacy: Mapping, supported=NUMERICS_FIELDS + STUDY_RUN_FIELDS,
                   defaults: Mapping | None = None) -> dict:
    """The numerics and run settings of one study call as ``{name: value}`` for every name in
    ``supported``: from ``numerics`` (a :class:`Numerics`), ``options`` (a :class:`RunOptions`) and
    the old keywords in ``legacy``; ``defaults`` are the study's own defaults where they differ from
    the objects'. A setting the study lacks is refused when it is not the default.

    Examples
    --------
    >>> study_settings("weak_error", Numerics(dt_fraction=0.25), None, {})["dt_fraction"]
    0.25
    >>> study_settings("weak_error", None, None, {"dt_fractoin": 0.25})
    Traceback (most recent call last):
    ...
    TypeError: weak_error() got an unexpected keyword argument 'dt_fractoin'
    """
    known = NUMERICS_FIELDS + STUDY_RUN_FIELDS
    unknown = [k for k in legacy if k not in known or k not in supported or k in _OPTIONS_ONLY]
    if unknown:
        raise TypeError(f"{caller}() got an unexpected keyword argument {unknown[0]!r}")
    for value, cls, name in ((numerics, Numerics, "numerics"), (options, RunOptions, "options")):
        if value is not None and not isinstance(value, cls):
            raise TypeError(f"`{name}` must be a smfsym.{cls.__name__}; got {type(value).__name__}.")
    for key in legacy:
        holder = "numerics" if key in NUMERICS_FIELDS else "options"
        if (numerics if holder == "numerics" else options) is not None:
            raise TypeError(f"`{key}` is given twice, as a keyword and in `{holder}`; give it in `{holder}`.")
    if legacy:
        key = next(iter(legacy))
        holder = "numerics=smfsym.Numerics" if key in NUMERICS_FIELDS else "options=smfsym.RunOptions"
        warnings.warn(f"{caller}({key}=...): run settings go in `{holder}({key}=...)`; the keywords go in the "
                      "next release.", DeprecationWarning, stacklevel=3)
    _refuse_chunking(caller, options)
    defaults = dict(defaults or {})
    out = {}  # in the order of NUMERICS_FIELDS + STUDY_RUN_FIELDS, the supported ones
    for key in known:
        source = numerics if key in NUMERICS_FIELDS else options
        default_obj = Numerics() if key in NUMERICS_FIELDS else RunOptions()
        if key in legacy:
            value = legacy[key]
        elif source is not None:
            value = getattr(source, key)
            if key in defaults and value == getattr(default_obj, key):
                value = defaults[key]  # the object left it at its default: the study's own default
        else:
            value = defaults.get(key, getattr(default_obj, key))
        if key not in supported:
            if value is not getattr(default_obj, key) and value != getattr(default_obj, key):
                raise ValueError(f"`{key}`: {caller} does not take it; got {value!r}.")
            continue
        out[key] = value
    return out



def _refuse_chunking(caller: str, options) -> None:
    """A study sizes the chunks and bounds the steps of its many runs itself: a ``RunOptions`` field it does not
    pass on (``chunk_size``, ``max_memory``, ``max_steps``) is refused when set, never silently dropped."""
    if options is None:
        return
    default = RunOptions()
    for key in (k for k in RUN_FIELDS if k not in STUDY_RUN_FIELDS):
        value = getattr(options, key)
        if value is not getattr(default, key) and value != getattr(default, key):
            raise ValueError(f"`options.{key}`: {caller} sizes the chunks and steps of its runs itself and does not "
                             f"take it; got {value!r} (the numbers do not depend on the chunking).")
