"""Mean field: the distribution-dependent SMF of wide two-layer networks (docs/theory.md §6)."""
from .data import DataRule, captured_noise_variance, data_rule
from .options import InitialParticles, MeanFieldNumerics, MeanFieldOptions, Observe
from .ddsmf import simulate_ddsmf
from .limit import simulate_meanfield_limit
from .particles import particles
from .problem import MeanFieldProblem
from .result import MeanFieldResult
from .sgd import simulate_meanfield_sgd
from .refine import RuleResolutionWarning, refine_rule
from .study import CapturedNoiseWarning, MeanFieldStudy, meanfield_study
from .linearisation import linearised_variance
from .cost import estimate_meanfield_cost

__all__ = ["MeanFieldProblem", "DataRule", "data_rule", "captured_noise_variance", "particles",
           "simulate_meanfield_sgd", "simulate_ddsmf", "simulate_meanfield_limit", "MeanFieldResult",
           "meanfield_study", "MeanFieldStudy", "CapturedNoiseWarning", "linearised_variance",
           "RuleResolutionWarning", "refine_rule", "estimate_meanfield_cost", "Observe", "MeanFieldNumerics",
           "MeanFieldOptions", "InitialParticles"]
