"""Options objects of the mean-field simulators and study (issue 16), in place of two dozen keywords:

- :class:`Observe`: what is observed at the saved times (the observables, the inputs of "output_at", the
  rule of the population risk; the study's number of saves),
- :class:`MeanFieldNumerics`: how the DD-SMF and the limit are computed (drift order, Euler step,
  Richardson extrapolation, the data rule and its refinement, the limit's step),
- :class:`MeanFieldOptions`: a :class:`~smfsym.RunOptions` with the bound ``max_work`` on the unit
  evaluations of a run,
- :class:`InitialParticles`: how the study draws its initial particles for each width.

Like :func:`~smfsym.montecarlo.options.run_settings`, :func:`meanfield_settings` passes the values on as
given, so the simulators validate them as they always have and the old keywords give the same numbers
(they still work for one release, with a ``DeprecationWarning``).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, fields
from types import SimpleNamespace
from typing import Any, Mapping, Sequence

from ..backends import get_backend
from ..montecarlo.options import RunOptions, SaveAt, run_settings, user_stacklevel

__all__ = ["Observe", "MeanFieldNumerics", "MeanFieldOptions", "InitialParticles", "meanfield_settings",
           "initial_particles", "refuse_unused"]


@dataclass(frozen=True)
class Observe:
    """What a mean-field run observes at its saved times (per path, streamed).

    Parameters
    ----------
    observables : sequence of {"risk", "output_at", "moments"}
        The population risk, the network output at ``inputs``, the particle moments.
    inputs : array (Q, n_inputs), optional
        Inputs for "output_at".
    risk_points : int
        Gauss points per continuous data coordinate of the risk's rule.
    risk_rule : DataRule, optional
        Rule of the population risk (default: the data set, or a Gauss rule of ``risk_points``).
    n_saves : int, optional
        The study's saved times 0, t_end / n_saves, ..., t_end (default 5); the simulators save at
        ``save_at`` and refuse it.

    Examples
    --------
    >>> Observe(observables=["risk", "moments"]).observables
    ['risk', 'moments']
    """

    observables: Sequence[str] = ("risk",)
    inputs: Any = None
    risk_points: int = 16
    risk_rule: Any = None
    n_saves: int | None = None


@dataclass(frozen=True)
class MeanFieldNumerics:
    """How the DD-SMF and the deterministic limit are computed (see :func:`smfsym.simulate_ddsmf` and
    :func:`smfsym.meanfield_study`).

    Parameters
    ----------
    order : {1, 2}
        Drift of the DD-SMF: G (order 1) or G - (eta/2) DG G (order 2).
    dt : float, optional
        Euler step of the DD-SMF (default eta).
    richardson : bool, optional
        Coupled Richardson extrapolation of the Euler error (runs at dt and dt/2); default off for the
        simulator, and in the study on for ``order=2``.
    scheme : str
        The DD-SMF's scheme ("euler").
    n_points : int or "auto", optional
        Gauss points per continuous data coordinate of the data rule (the simulators' default:
        ``data_rule``'s; the study's: "auto", refined to ``rule_tol``).
    rule : DataRule, optional
        A data rule for the simulators (in place of ``n_points``).
    rule_tol, rule_budget : float, int, optional
        The study's rule refinement: relative tolerance and largest ``n_points`` (defaults of
        :mod:`smfsym.meanfield.refine`).
    limit_dt : float
        The study's RK4 step of the deterministic limit.

    Examples
    --------
    >>> MeanFieldNumerics(order=2).richardson is None
    True
    """

    order: int = 1
    dt: float | None = None
    richardson: bool | None = None
    scheme: str = "euler"
    n_points: Any = None
    rule: Any = None
    rule_tol: float | None = None
    rule_budget: int | None = None
    limit_dt: float = 0.02


@dataclass(frozen=True)
class MeanFieldOptions(RunOptions):
    """:class:`~smfsym.RunOptions` of a mean-field run, with a bound on its work.

    Parameters
    ----------
    max_work : float, optional
        Refuse, before it starts, a run of more than this many unit evaluations (steps x paths x
        particles x data nodes; default 1e12). The other fields are :class:`~smfsym.RunOptions`'.

    Examples
    --------
    >>> MeanFieldOptions(max_work=1e13, progress=False).max_work
    10000000000000.0
    """

    max_work: float | None = None

    def __post_init__(self):
        super().__post_init__()
        if self.max_work is not None:
            try:
                value = float(self.max_work)
            except (TypeError, ValueError):
                raise TypeError(f"`max_work` must be a positive number or None; got {self.max_work!r}.") from None
            if not value > 0:
                raise ValueError(f"`max_work` must be a positive number or None; got {self.max_work!r}.")
            object.__setattr__(self, "max_work", value)


@dataclass(frozen=True)
class InitialParticles:
    """How :func:`smfsym.meanfield_study` draws the initial particles of each width:
    ``smfsym.particles(net, N, law, seed=seed)``.

    Examples
    --------
    >>> InitialParticles(seed=3).seed
    3
    """

    law: Mapping | None = None
    seed: int = 0


OBSERVE_FIELDS = tuple(f.name for f in fields(Observe))
NUMERICS_FIELDS = tuple(f.name for f in fields(MeanFieldNumerics))


def _take(caller: str, legacy: dict, given, cls, names: Mapping[str, str], holder: str, wording: str):
    """``given`` (a ``cls``) or one made from the old keywords ``names`` (old -> field) popped from ``legacy``."""
    if given is not None and not isinstance(given, cls):
        raise TypeError(f"`{holder}` must be a smfsym.meanfield.{cls.__name__}; got {type(given).__name__}.")
    old = {names[k]: legacy.pop(k) for k in list(legacy) if k in names}
    if not old:
        return cls() if given is None else given
    key = next(k for k in names if names[k] in old)
    if given is not None:
        raise TypeError(f"`{key}` is given twice, as a keyword and in `{holder}`; give it in `{holder}`.")
    warnings.warn(f"{caller}({key}=...): {wording} in `{holder}=smfsym.meanfield.{cls.__name__}({names[key]}=...)`;"
                  " the keywords go in the next release.", DeprecationWarning, stacklevel=user_stacklevel())
    return cls(**old)


def refuse_unused(caller: str, obj, defaults, names: Sequence[str], holder: str) -> None:
    """Refuse the fields ``names`` of ``obj`` that ``caller`` does not take when they differ from ``defaults``'
    (never a setting silently ignored)."""
    for name in names:
        value, default = getattr(obj, name), getattr(defaults, name)
        try:
            same = value is default or bool(value == default)
        except (TypeError, ValueError):  # an array: not the default
            same = False
        if not same:
            raise ValueError(f"`{holder}.{name}`: {caller} does not take it; got {value!r}.")


def meanfield_settings(caller: str, legacy: Mapping, *, observe=None, save_at=None, options=None, numerics=None,
                       numerics_names: Mapping[str, str] | None = None, observe_names: Sequence[str] | None = None,
                       supported: Sequence[str] = ("chunk_size", "progress", "executor", "max_memory", "max_steps",
                                                   "blowup_threshold"), saves: bool = True,
                       backends: bool = False) -> SimpleNamespace:
    """The settings of one mean-field call, from its objects and the old keywords in ``legacy``.

    Returns a namespace: ``observe`` (:class:`Observe`), ``numerics`` (:class:`MeanFieldNumerics`),
    ``options`` (:class:`MeanFieldOptions`, ``on_nonfinite="raise"``), ``at`` (save times or None) and
    ``store`` (False unless asked: the old default). ``numerics_names`` maps the old keywords to the
    fields of :class:`MeanFieldNumerics` (None: the call takes none); ``observe_names`` are the fields of
    :class:`Observe` it takes (the rest must keep their defaults); ``supported`` its run settings; ``saves``
    whether it takes what to save (a study does not); ``backends`` whether it runs on the array back ends
    (``options.backend`` is then kept in ``options``; without it a back end other than numpy is refused
    naming ``caller``).

    Examples
    --------
    >>> s = meanfield_settings("f", {}, observe=Observe(observables=["moments"]), save_at=[1.0])
    >>> s.observe.observables, s.at, s.store, s.options.max_work
    (['moments'], [1.0], False, None)
    """
    legacy = dict(legacy)
    save_keys = [k for k in legacy if k in ("store", "functions")]
    if save_keys and not saves:  # a study saves what it needs
        raise TypeError(f"{caller}() got an unexpected keyword argument {save_keys[0]!r}")
    observe_names = OBSERVE_FIELDS[:-1] if observe_names is None else tuple(observe_names)
    obs = _take(caller, legacy, observe, Observe, {k: k for k in observe_names}, "observe", "what to save goes")
    refuse_unused(caller, obs, Observe(), [k for k in OBSERVE_FIELDS if k not in observe_names], "observe")
    num = _take(caller, legacy, numerics, MeanFieldNumerics, numerics_names or {}, "numerics",
                "run settings go")
    max_work = getattr(options, "max_work", None)
    if "max_work" in legacy:
        if options is not None:
            raise TypeError("`max_work` is given twice, as a keyword and in `options`; give it in `options`.")
        max_work = legacy.pop("max_work")
        warnings.warn(f"{caller}(max_work=...): run settings go in `options=smfsym.meanfield.MeanFieldOptions("
                      "max_work=...)`; the keywords go in the next release.", DeprecationWarning,
                      stacklevel=user_stacklevel())
    (chunk_size, max_memory, max_steps, on_nonfinite, blowup_threshold, executor, progress, at, functions,
     store) = run_settings(caller, options, save_at, legacy, supported=supported, backends=backends)
    if on_nonfinite != "raise":
        raise ValueError(f"`on_nonfinite`: {caller} raises on a blow-up (it keeps no masked paths); got "
                         f"{on_nonfinite!r}.")
    if functions is not None:
        raise ValueError(f"`save_at.functions`: {caller} streams its observables (give them in `observe`); "
                         f"got {sorted(functions)}.")
    backend = options.backend if backends and options is not None else "numpy"
    if executor is not None and get_backend(backend).name != "numpy":  # refused before anything is compiled
        raise ValueError(f"`executor`: {caller} on backend={get_backend(backend).name!r} runs in this process on "
                         "its device; pass executor=None (one process drives one device).")
    if not isinstance(save_at, SaveAt) and "store" not in legacy:
        store = False
    run = MeanFieldOptions(chunk_size=chunk_size, max_memory=max_memory, max_steps=max_steps, on_nonfinite="raise",
                           blowup_threshold=blowup_threshold, executor=executor, progress=progress, max_work=max_work,
                           backend=backend)
    return SimpleNamespace(observe=obs, numerics=num, options=run, at=at, store=store)


def initial_particles(caller: str, theta0, legacy: dict) -> tuple:
    """``(theta0 or None, InitialParticles)`` of a study: ``theta0`` may be the particles or an
    :class:`InitialParticles`; the old keywords ``particle_law``/``particle_seed`` are popped from ``legacy``."""
    old = {k[len("particle_"):]: legacy.pop(k) for k in ("particle_law", "particle_seed") if k in legacy}
    if isinstance(theta0, InitialParticles):
        if old:
            raise TypeError(f"`particle_{next(iter(old))}` is given twice, as a keyword and in `theta0`; give it "
                            "in `theta0`.")
        return None, theta0
    if old:
        key = next(iter(old))
        warnings.warn(f"{caller}(particle_{key}=...): the initial particles go in "
                      f"`theta0=smfsym.meanfield.InitialParticles({key}=...)`; the keywords go in the next release.",
                      DeprecationWarning, stacklevel=user_stacklevel())
    return theta0, InitialParticles(**old)
