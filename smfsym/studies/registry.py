"""The study registry: every kind of study, its entry point and its result class, written once.

``load_study`` finds a saved study's class here, and ``tests/studies/test_study_registry.py`` runs
every registered kind through the same checks (it saves, loads, prints, plots to a path and to an
axis, converts to pandas and to LaTeX). A new study is one entry here (docs/architecture.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..meanfield.study import MeanFieldStudy, meanfield_study
from .momentum_multipoint import MomentumMultipoint, momentum_multipoint
from .multipoint_study import MultipointStudy, multipoint
from .npoint_rates import MultipointRates, multipoint_rates
from .optimizer_weak_error import momentum_weak_error, schedule_weak_error
from .scaling_rule_study import ScalingRuleStudy, scaling_rule_study
from .svag_study import SvagStudy, svag_study
from .update_map_study import update_map_weak_error
from .weak_error_study import WeakErrorStudy, weak_error

__all__ = ["StudyKind", "STUDIES", "RESULTS"]


@dataclass(frozen=True)
class StudyKind:
    """One kind of study: its entry point, the class of its result and what it measures."""

    function: Callable
    result: type
    measures: str


#: name -> kind (the name is the entry point's).
STUDIES = {
    "weak_error": StudyKind(weak_error, WeakErrorStudy, "weak error of SGD's models against SGD"),
    "schedule_weak_error": StudyKind(schedule_weak_error, WeakErrorStudy,
                                     "weak error of the scheduled models against SGD with a schedule"),
    "momentum_weak_error": StudyKind(momentum_weak_error, WeakErrorStudy,
                                     "weak error of the momentum models against momentum SGD"),
    "update_map_weak_error": StudyKind(update_map_weak_error, WeakErrorStudy,
                                       "weak error of an update map's models against the optimizer"),
    "multipoint": StudyKind(multipoint, MultipointStudy, "two-point statistics of runs sharing their samples"),
    "multipoint_rates": StudyKind(multipoint_rates, MultipointRates, "orders of the two-point statistics"),
    "momentum_multipoint": StudyKind(momentum_multipoint, MomentumMultipoint,
                                     "two-point statistics of the momentum models (exact)"),
    "meanfield_study": StudyKind(meanfield_study, MeanFieldStudy,
                                 "SGD, DD-SMF and the limit of a wide two-layer network"),
    "scaling_rule_study": StudyKind(scaling_rule_study, ScalingRuleStudy,
                                    "E phi of an optimizer as the batch grows, with and without its scaling rule"),
    "svag_study": StudyKind(svag_study, SvagStudy, "weak distance of SVAG to the order-1 SME as l grows"),
}
#: result class name (as saved) -> class.
RESULTS = {kind.result.__name__: kind.result for kind in STUDIES.values()}
