"""smfsym: symbolic-numeric stochastic modified equations and flows of SGD.

The mathematics is stated in ``docs/theory.md`` (sections cited as §N in the docstrings).

``import smfsym`` loads no submodule (not even sympy): each public name is imported from its module
on first use (PEP 562), so ``import smfsym`` and ``python -m smfsym --help`` start fast and a
script pays only for what it uses (the studies, scipy.special and matplotlib stay unloaded until
needed). ``__all__``, ``dir(smfsym)`` and every name below behave as if imported eagerly.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import types

from . import _aliases

_aliases.install()

from ._version import __version__

#: Where each public name lives (the module it is imported from on first use).
_SOURCES = {
    ".symbolic.noise_expansion": ["ChaosExpansion", "NoiseTemplate", "TruncationWarning", "chaos_expansion"],
    ".symbolic.lambdify": ["compile_exprs"],
    ".data.means": ["DataMean", "covariance", "expectation"],
    ".symbolic.latex": ["export_tex"],
    ".data.laws": ["Beta", "DataSymbol", "Empirical", "Exponential", "Finite", "Gamma", "Law", "MultivariateNormal",
              "Normal", "StudentT", "Uniform", "bernoulli", "beta", "categorical", "empirical", "exponential",
              "gamma", "normal", "rademacher", "student_t", "uniform"],
    ".symbolic.models": ["gradient_flow", "sme", "smf"],
    ".symbolic.problem": ["NonDifferentiableWarning", "Problem"],
    ".limits": ["Limits", "QuadratureWarning", "ResourceLimitError"],
    ".data.tails": ["TailWarning"],
    ".symbolic.sde": ["SDE", "MatrixSqrt"],
    ".montecarlo.checks": ["BlowUpError"],
    ".montecarlo.result": ["SimulationResult"],
    ".simulation.sde": ["simulate"],
    ".io.codegen": ["codegen"],
    ".studies": ["MultipointStudy", "OrderWarning", "WeakErrorStudy", "multipoint", "weak_error", "MultipointRates",
                 "multipoint_rates", "CostEstimate", "estimate_cost", "estimate_meanfield_cost",
                 "estimate_multipoint_cost"],
    ".simulation.sgd": ["simulate_sgd"],
    ".io.persist": ["Order", "load_study"],
    ".numerics.solvers": ["SOLVERS", "EulerMaruyama", "Solver", "WeakTaylor2", "TamedEuler"],
    ".meanfield": ["MeanFieldProblem", "MeanFieldResult", "captured_noise_variance", "data_rule", "particles",
                   "simulate_ddsmf", "simulate_meanfield_limit", "simulate_meanfield_sgd", "CapturedNoiseWarning",
                   "MeanFieldStudy", "linearised_variance", "meanfield_study", "DataRule", "RuleResolutionWarning",
                   "refine_rule"],
    ".optimizers": ["Schedule", "batch_sgd_operator", "exact_batch_sgd_mean", "momentum_model", "scheduled_model",
                    "simulate_momentum_sgd", "simulate_sgd_schedule"],
    ".studies.optimizer_weak_error": ["momentum_weak_error", "schedule_weak_error"],
    ".studies.momentum_multipoint": ["momentum_multipoint"],
    ".montecarlo.executors": ["WorkerLostError", "process_pool"],
    ".optimizers.update_map": ["UpdateMap", "sgd_map", "rmsprop", "adam", "simulate_update_map"],
    ".studies.update_map_study": ["update_map_weak_error"],
}
_LAZY = {name: module for module, names in _SOURCES.items() for name in names}

__all__ = [
    # problems and data laws
    "Problem", "NonDifferentiableWarning", "DataSymbol", "Law", "Normal", "MultivariateNormal", "Uniform",
    "Finite", "Exponential", "Gamma", "Beta", "StudentT", "Empirical", "normal", "uniform", "bernoulli",
    "rademacher", "categorical", "exponential", "gamma", "beta", "student_t", "empirical", "DataMean",
    "expectation", "covariance",
    # limits and warnings
    "Limits", "ResourceLimitError", "QuadratureWarning", "TailWarning", "TruncationWarning", "OrderWarning",
    "BlowUpError", "WorkerLostError",
    # modified equations and flows
    "SDE", "MatrixSqrt", "gradient_flow", "sme", "smf", "ChaosExpansion", "NoiseTemplate", "chaos_expansion",
    # optimizers
    "UpdateMap", "sgd_map", "rmsprop", "adam", "Schedule", "scheduled_model", "momentum_model",
    "batch_sgd_operator", "exact_batch_sgd_mean",
    # simulation
    "simulate", "simulate_sgd", "simulate_update_map", "simulate_sgd_schedule", "simulate_momentum_sgd",
    "SimulationResult", "Solver", "EulerMaruyama", "WeakTaylor2", "TamedEuler", "SOLVERS", "compile_exprs",
    "process_pool",
    # studies
    "weak_error", "WeakErrorStudy", "schedule_weak_error", "momentum_weak_error", "update_map_weak_error", "multipoint",
    "MultipointStudy", "multipoint_rates", "MultipointRates", "momentum_multipoint", "Order", "estimate_cost",
    "estimate_multipoint_cost", "estimate_meanfield_cost", "CostEstimate", "load_study",
    # mean field
    "MeanFieldProblem", "MeanFieldResult", "MeanFieldStudy", "DataRule", "data_rule", "refine_rule",
    "captured_noise_variance", "particles", "simulate_meanfield_sgd", "simulate_ddsmf",
    "simulate_meanfield_limit", "meanfield_study", "linearised_variance", "CapturedNoiseWarning",
    "RuleResolutionWarning",
    # output
    "export_tex", "codegen", "__version__",
]

#: Public functions named like the submodule that defines them (``smfsym.simulate`` is the function).


def __getattr__(name: str):
    """Import a public name (or a submodule, ``smfsym.engine``) on first use and keep it here."""
    module = _LAZY.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module, __name__), name)
    elif not name.startswith("__") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list:
    import pkgutil

    submodules = {m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("__")}
    return sorted(set(globals()) | set(__all__) | submodules)


class _Package(types.ModuleType):
    """The package's module type: importing the submodule ``smfsym.simulate`` makes Python set the package
    attribute ``simulate`` to that module; the public name stays the function of that name, as the eager
    ``from .simulate import simulate`` left it."""

    def __setattr__(self, name, value):
        if name in _LAZY and isinstance(value, types.ModuleType):
            return  # a submodule (or the old path of one) never replaces the public name it shares
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
