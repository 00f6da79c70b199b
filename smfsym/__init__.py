"""smfsym: symbolic-numeric stochastic modified equations and flows of SGD.

The mathematics is stated in ``docs/theory.md`` (sections cited as §N in the docstrings); the
layers and where to extend them in ``docs/architecture.md``.

The namespace is curated: about sixty names in sections (problems and data laws, modified
equations, optimizers, simulation, studies, mean field, limits and warnings); everything else is
imported from its module (``smfsym.studies.WeakErrorStudy``, ``smfsym.data.laws.Normal``).
``import smfsym`` loads no submodule (not even sympy): each public name is imported from its module
on first use (PEP 562), so ``import smfsym`` and ``python -m smfsym --help`` start fast and a
script pays only for what it uses. ``__all__``, ``dir(smfsym)`` and every name below behave as if
imported eagerly.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import types

from . import _aliases

_aliases.install()

from ._version import __version__

#: The public namespace, by section: module -> the names it gives ``smfsym``. Each name is imported
#: from its module on first use.
_SOURCES = {
    # -- problems and the law of the data (one factory per law, sympy.stats style)
    ".symbolic.problem": ["Problem", "NonDifferentiableWarning"],
    ".data.laws": ["normal", "uniform", "bernoulli", "rademacher", "categorical", "exponential", "gamma", "beta",
                   "student_t", "empirical"],
    ".data.means": ["expectation", "covariance"],
    # -- modified equations and flows
    ".symbolic.sde": ["SDE"],
    ".symbolic.models": ["gradient_flow", "sme", "smf"],
    ".symbolic.noise_expansion": ["chaos_expansion", "TruncationWarning"],
    ".symbolic.latex": ["export_tex"],
    # -- optimizers
    ".optimizers": ["Schedule", "scheduled_model", "momentum_model"],
    ".optimizers.update_map": ["UpdateMap", "sgd_map", "schedule_map", "momentum_map", "rmsprop", "adam",
                               "simulate_update_map"],
    # -- simulation
    ".simulation.sde": ["simulate"],
    ".simulation.sgd": ["simulate_sgd"],
    ".optimizers.schedules": ["simulate_sgd_schedule"],
    ".optimizers.momentum": ["simulate_momentum_sgd"],
    ".montecarlo.options": ["RunOptions", "SaveAt"],
    ".montecarlo.result": ["SimulationResult"],
    ".montecarlo.executors": ["process_pool", "WorkerLostError"],
    ".io.codegen": ["codegen"],
    # -- studies
    ".studies": ["weak_error", "multipoint", "multipoint_rates", "estimate_cost"],
    ".studies.options": ["Numerics"],
    ".studies.optimizer_weak_error": ["schedule_weak_error", "momentum_weak_error"],
    ".studies.update_map_study": ["update_map_weak_error"],
    ".io.persist": ["load_study"],
    # -- mean field
    ".meanfield": ["MeanFieldProblem", "particles", "simulate_meanfield_sgd", "simulate_ddsmf",
                   "simulate_meanfield_limit", "meanfield_study", "CapturedNoiseWarning"],
    # -- limits, errors and warnings
    ".limits": ["Limits", "ResourceLimitError", "QuadratureWarning"],
    ".montecarlo.checks": ["BlowUpError"],
    ".data.tails": ["TailWarning"],
    ".studies.common": ["OrderWarning"],
}
_LAZY = {name: module for module, names in _SOURCES.items() for name in names}

#: Names ``smfsym`` gave before the curated namespace of issue 16, and where they live now: still
#: reachable for one release, with a ``DeprecationWarning`` naming the module to import from.
_FORMER = {
    **dict.fromkeys(["DataSymbol", "Law", "Normal", "MultivariateNormal", "Uniform", "Finite", "Exponential",
                     "Gamma", "Beta", "StudentT", "Empirical"], ".data.laws"),
    "DataMean": ".data.means", "MatrixSqrt": ".symbolic.sde", "ChaosExpansion": ".symbolic.noise_expansion",
    "NoiseTemplate": ".symbolic.noise_expansion", "compile_exprs": ".symbolic.lambdify",
    **dict.fromkeys(["Solver", "EulerMaruyama", "WeakTaylor2", "TamedEuler", "SOLVERS"], ".numerics.solvers"),
    **dict.fromkeys(["batch_sgd_operator", "exact_batch_sgd_mean"], ".simulation.minibatch_exact"),
"momentum_multipoint": ".studies.momentum_multipoint",
    **dict.fromkeys(["WeakErrorStudy", "MultipointStudy", "MultipointRates", "CostEstimate",
                     "estimate_multipoint_cost"], ".studies"), "estimate_meanfield_cost": ".meanfield",
    "Order": ".studies.storage",
    **dict.fromkeys(["MeanFieldResult", "MeanFieldStudy", "DataRule", "data_rule", "refine_rule",
                     "captured_noise_variance", "linearised_variance", "RuleResolutionWarning"], ".meanfield"),
}

__all__ = [name for names in _SOURCES.values() for name in names] + ["__version__"]


def __getattr__(name: str):
    """Import a public name (or a submodule, ``smfsym.studies``) on first use and keep it here."""
    module = _LAZY.get(name)
    if module is None and name in _FORMER:
        import warnings

        module = _FORMER[name]
        warnings.warn(f"`smfsym.{name}` is no longer in the curated namespace; import it from "
                      f"`smfsym{module}` (it goes in the next release).", DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(module, __name__), name)
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
