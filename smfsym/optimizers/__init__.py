"""Optimisers beyond plain constant-rate SGD: schedules, momentum, mini-batch exact moments (docs/theory.md §7, §4)."""
from .schedules import (TIME, Schedule, constant, cosine, exponential_decay, scheduled_model, simulate_sgd_schedule,
                        step_decay, warmup, with_time)

__all__ = ["TIME", "Schedule", "constant", "cosine", "exponential_decay", "step_decay", "warmup",
           "scheduled_model", "simulate_sgd_schedule", "with_time"]
from .minibatch_exact import batch_sgd_operator, exact_batch_sgd_mean

__all__ += ["batch_sgd_operator", "exact_batch_sgd_mean"]
