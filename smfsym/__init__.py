"""smfsym: symbolic-numeric stochastic modified equations and flows of SGD.

The mathematics is stated in ``docs/theory.md`` (sections cited as §N in the docstrings).
"""
from .chaos import ChaosExpansion, NoiseTemplate, TruncationWarning, chaos_expansion
from .compile import compile_exprs
from .expectation import DataMean, covariance, expectation
from .latex import export_tex
from .laws import (Beta, DataSymbol, Empirical, Exponential, Finite, Gamma, Law, MultivariateNormal, Normal,
                   StudentT, Uniform, bernoulli, beta, categorical, empirical, exponential, gamma, normal,
                   rademacher, student_t, uniform)
from .models import gradient_flow, sme, smf
from .problem import NonDifferentiableWarning, Problem
from .safeguards import Limits, QuadratureWarning, ResourceLimitError
from .tails import TailWarning
from .sde import SDE, MatrixSqrt
from .engine import BlowUpError, SimulationResult
from .simulate import simulate
from .codegen import codegen
from .studies import MultipointStudy, OrderWarning, WeakErrorStudy, multipoint, weak_error
from .sgd import simulate_sgd
from .persist import Order, load_study
from .solvers import SOLVERS, EulerMaruyama, Solver, WeakTaylor2
from .solvers import TamedEuler

__version__ = "0.1.0"

__all__ = [
    "Problem", "NonDifferentiableWarning",
    "SDE", "MatrixSqrt", "gradient_flow", "sme", "smf",
    "ChaosExpansion", "NoiseTemplate", "TruncationWarning", "chaos_expansion",
    "DataMean", "expectation", "covariance", "compile_exprs", "export_tex",
    "DataSymbol", "Law", "Normal", "MultivariateNormal", "Uniform", "Finite", "Exponential", "Gamma",
    "Beta", "StudentT", "Empirical",
    "normal", "uniform", "bernoulli", "rademacher", "categorical", "exponential", "gamma", "beta",
    "student_t", "empirical",
    "simulate", "simulate_sgd", "codegen",
    "weak_error", "WeakErrorStudy", "multipoint", "MultipointStudy", "OrderWarning", "SimulationResult", "BlowUpError",
    "Solver", "EulerMaruyama", "WeakTaylor2", "SOLVERS",
    "Order", "load_study",
    "TamedEuler",
    "__version__",
    "Limits", "ResourceLimitError", "QuadratureWarning", "TailWarning",
]
from .meanfield import (MeanFieldProblem, MeanFieldResult, captured_noise_variance, data_rule, particles,
                        simulate_ddsmf, simulate_meanfield_limit, simulate_meanfield_sgd)
from .meanfield import CapturedNoiseWarning, MeanFieldStudy, linearised_variance, meanfield_study
from .meanfield import DataRule

__all__ += ["MeanFieldProblem", "MeanFieldResult", "captured_noise_variance", "data_rule", "particles",
            "simulate_ddsmf", "simulate_meanfield_limit", "simulate_meanfield_sgd"]
__all__ += ["MeanFieldStudy", "CapturedNoiseWarning", "linearised_variance", "meanfield_study"]
__all__ += ["DataRule"]

# schedules, momentum and mini-batch exact moments (docs/theory.md §4, §7)
from .optimizers import (Schedule, batch_sgd_operator, exact_batch_sgd_mean, momentum_model, momentum_weak_error,
                         schedule_weak_error, scheduled_model, simulate_momentum_sgd, simulate_sgd_schedule,
                         momentum_multipoint)

__all__ += ["Schedule", "batch_sgd_operator", "exact_batch_sgd_mean", "momentum_model", "momentum_weak_error",
            "schedule_weak_error", "scheduled_model", "simulate_momentum_sgd", "simulate_sgd_schedule",
            "momentum_multipoint"]
from .studies import MultipointRates, multipoint_rates  # noqa: E402
__all__ += ["multipoint_rates", "MultipointRates"]

from .studies import CostEstimate, estimate_cost  # noqa: E402

__all__ += ["estimate_cost", "CostEstimate"]

from .executors import WorkerLostError, process_pool  # noqa: E402

__all__ += ["process_pool", "WorkerLostError"]

from .studies import estimate_meanfield_cost, estimate_multipoint_cost  # noqa: E402

__all__ += ["estimate_multipoint_cost", "estimate_meanfield_cost"]
