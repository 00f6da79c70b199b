"""The model registry: every model smfsym can build, by name, written once.

The studies, the spec schema and the command line all read :data:`MODEL_REGISTRY`; this module
imports nothing (the command line's ``--help`` reads it without loading sympy), and
:func:`smfsym.symbolic.models.build_model` turns a name into an SDE.
"""
from __future__ import annotations

from typing import NamedTuple

__all__ = ["ModelName", "MODEL_REGISTRY", "DEFAULT_MODELS", "check_model_names"]


class ModelName(NamedTuple):
    """What a model name stands for: the family (``"gf"`` gradient flow, ``"sme"``, ``"smf"``) and
    the order in the learning rate."""

    family: str
    order: int


#: name -> (family, order), in the order tables list them.
MODEL_REGISTRY = {
    "gf": ModelName("gf", 1),
    "gf2": ModelName("gf", 2),
    "sme1": ModelName("sme", 1),
    "sme2": ModelName("sme", 2),
    "smf1": ModelName("smf", 1),
    "smf2": ModelName("smf", 2),
}
#: What a weak-error study compares unless told (and the spec's ``models`` vocabulary): every model
#: but the order-2 gradient flow, which is a check of the drift alone.
DEFAULT_MODELS = ("gf", "sme1", "sme2", "smf1", "smf2")


def check_model_names(models, allowed=None) -> tuple:
    """``models`` as a tuple of registered names (among ``allowed`` when given), or a ``ValueError``
    naming the argument and the valid names."""
    allowed = tuple(MODEL_REGISTRY) if allowed is None else tuple(allowed)
    if isinstance(models, str) or not all(isinstance(m, str) for m in models):
        raise ValueError(f"`models` must be a sequence of model names among {list(allowed)}; got {models!r}.")
    bad = [m for m in models if m not in allowed]
    if bad:
        raise ValueError(f"`models` entries must be among {list(allowed)}; got {bad[0]!r}.")
    return tuple(models)
