"""The old home of the Monte Carlo driver, kept as a thin re-export for one release.

Everything here now lives in :mod:`smfsym.montecarlo` (``driver``, ``blocks``, ``seeds``, ``grid``,
``cache``, ``checks``, ``result``, ``progress``, ``increments``, ``statistics``); import from there.
"""
from __future__ import annotations

from .montecarlo.blocks import run_blocks
from .montecarlo.cache import (
    COMPILE_CACHE_SIZE, CacheInfo, _COMPILED, cache_clear, cache_info, compiled, compiled_content,
    content_key, remember,
)
from .montecarlo.checks import DIVERGED, BlowUpError, check_int, check_positive
from .montecarlo.driver import CHUNK_BYTES, MAX_STORED_BYTES, _run as run  # the keyword form of before issue 16
from .montecarlo.grid import MAX_STEPS, StepGrid
from .montecarlo.increments import draw_discrete, draw_normal
from .montecarlo.progress import _progress
from .montecarlo.result import SimulationResult, simulation_to_xarray
from .montecarlo.seeds import BLOCK, block_generators, block_label, resolve_seed
from .montecarlo.statistics import block_stats

__all__ = ["SimulationResult", "BlowUpError", "BLOCK", "resolve_seed", "StepGrid", "check_int",
           "check_positive", "draw_discrete", "draw_normal", "run_blocks", "block_stats", "block_label",
           "block_generators", "content_key", "compiled", "compiled_content", "remember", "cache_info",
           "cache_clear", "CacheInfo", "COMPILE_CACHE_SIZE", "run", "MAX_STORED_BYTES", "CHUNK_BYTES", "MAX_STEPS",
           "DIVERGED", "simulation_to_xarray"]
