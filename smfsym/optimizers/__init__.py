"""Optimisers beyond constant-rate SGD: schedules, momentum and update maps (docs/theory.md §7, §10),
Malladi et al.'s regime for adaptive methods and SVAG (docs/theory.md §11).

Their studies (weak error against the optimizer, n-point statistics) live in :mod:`smfsym.studies`;
exact mini-batch moments in :mod:`smfsym.simulation.minibatch_exact`.
"""
from ..simulation.minibatch_exact import batch_sgd_operator, exact_batch_sgd_mean
from .regimes import RegimeMap, malladi_adam, malladi_rmsprop, noisy_sgd, simulate_regime
from .svag import simulate_svag, svag_weights
from .update_map import UpdateMap, adam, momentum_map, rmsprop, schedule_map, sgd_map, simulate_update_map
from .momentum import (DEFAULT_FRICTION, Momentum, beta_for, friction, momentum_latex, momentum_model,
                       simulate_momentum_sgd)
from .schedules import (TIME, Schedule, constant, cosine, exponential_decay, scheduled_latex, scheduled_model,
                        simulate_sgd_schedule, step_decay, warmup, with_time)

__all__ = ["TIME", "Schedule", "constant", "cosine", "exponential_decay", "step_decay", "warmup",
           "scheduled_model", "scheduled_latex", "simulate_sgd_schedule", "with_time", "batch_sgd_operator",
           "exact_batch_sgd_mean", "DEFAULT_FRICTION", "Momentum",
           "beta_for", "friction", "momentum_latex", "momentum_model",
           "simulate_momentum_sgd", "RegimeMap", "malladi_rmsprop", "malladi_adam", "noisy_sgd", "simulate_regime",
           "simulate_svag", "svag_weights", "UpdateMap", "sgd_map", "schedule_map", "momentum_map", "rmsprop", "adam",
           "simulate_update_map"]
