"""The Monte Carlo layer: how paths are run (options, saving, the driver), nothing about SGD or SDEs."""
from .options import RunOptions, SaveAt

__all__ = ["RunOptions", "SaveAt"]
