"""Optimisers beyond constant-rate SGD: schedules, momentum, mini-batch exact moments (docs/theory.md §7, §4)."""
from .schedules import (
    TIME, Schedule, constant, cosine, exponential_decay, scheduled_latex, scheduled_model,
    simulate_sgd_schedule, step_decay, warmup, with_time,
)

__all__ = ["TIME", "Schedule", "constant", "cosine", "exponential_decay", "step_decay", "warmup",
           "scheduled_model", "scheduled_latex", "simulate_sgd_schedule", "with_time"]
from ..minibatch_exact import batch_sgd_operator, exact_batch_sgd_mean

__all__ += ["batch_sgd_operator", "exact_batch_sgd_mean"]
from .momentum import (
    DEFAULT_FRICTION, beta_for, friction, momentum_latex, momentum_model, simulate_momentum_sgd,
)

__all__ += ["DEFAULT_FRICTION", "beta_for", "friction", "momentum_latex", "momentum_model", "simulate_momentum_sgd"]
from .weak_orders import (
    exact_momentum_sgd_mean, exact_schedule_sgd_mean, exact_time_dependent_mean, momentum_weak_error,
    schedule_weak_error,
)
from .momentum_npoint import MomentumMultipoint, momentum_multipoint, npoint_model

__all__ += ["exact_momentum_sgd_mean", "exact_schedule_sgd_mean", "exact_time_dependent_mean",
            "momentum_weak_error", "npoint_model", "schedule_weak_error", "momentum_multipoint", "MomentumMultipoint"]
