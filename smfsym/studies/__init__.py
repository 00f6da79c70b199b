"""Checking the SDEs against SGD: weak-error studies and multi-point statistics.

docs/theory.md §2-§5. Every estimate carries its standard error (or is exact),
fitted orders carry intervals, only errors resolved above the noise enter a
fit, the solver's own error is reported, and so are paths lost to blow-ups.
"""
from .common import MODELS, DivergenceWarning, OrderWarning, build_model, default_scheme, fit_order
from .multipoint_study import PSI, MultipointStudy, multipoint
from .weak_error_study import WeakErrorStudy, weak_error
from .npoint_rates import NPOINT_PSI, MultipointRates, multipoint_rates
from .cost import CostEstimate, estimate_cost

__all__ = ["weak_error", "WeakErrorStudy", "multipoint", "MultipointStudy", "build_model", "MODELS",
           "OrderWarning", "fit_order", "default_scheme", "PSI", "DivergenceWarning",
           "estimate_cost", "CostEstimate"]
__all__ += ["multipoint_rates", "MultipointRates", "NPOINT_PSI"]
from .cost import estimate_multipoint_cost  # noqa: E402

__all__ += ["estimate_multipoint_cost"]
