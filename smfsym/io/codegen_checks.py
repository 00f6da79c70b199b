"""Argument checks of generated modules: smfsym's own checks, copied into every generated module.

A generated simulator takes the arguments smfsym's ``simulate`` and ``simulate_sgd`` take, so it
checks them with the same functions (their source is copied by :func:`checks_source`: numpy only),
before any work: a bad argument is refused naming it, an unreachable save point is refused instead
of returning uninitialised memory, and a run whose saved states would not fit is refused with its
size.
"""
from __future__ import annotations

import inspect

import numpy as np

from ..montecarlo.checks import check_int, check_positive
from ..montecarlo.options import MAX_STEPS
from ..montecarlo.seeds import _from_record, resolve_seed
from ..simulation.sde import _holds_bool_or_none, check_save_at, check_save_steps, prepare_x0

__all__ = ["MAX_STATE_BYTES", "checks_source"]

#: Bytes of saved states one call of a generated simulator may return (8 GiB; the module's constant
#: of that name can be raised).
MAX_STATE_BYTES = 8 * 2**30


def _run_arguments(x0, dim, n_paths, seed, n_saves, on_nonfinite, blowup_threshold, chunk_paths=None):
    """(x0, n_paths, seed, blow-up bound, chunk_paths) checked; the saved states' size bounded first."""
    x0 = prepare_x0(x0, dim)
    n_paths = check_int(n_paths, "n_paths")
    seed = resolve_seed(seed)
    if on_nonfinite not in ("raise", "mask"):
        raise ValueError(f"`on_nonfinite` must be 'raise' or 'mask'; got {on_nonfinite!r}.")
    bound = check_positive(blowup_threshold, "blowup_threshold")
    if chunk_paths is not None:
        chunk_paths = check_int(chunk_paths, "chunk_paths")
    size = 8.0 * n_saves * n_paths * x0.size
    if size > MAX_STATE_BYTES:
        raise ValueError(f"the saved states would take {size / 2**30:.3g} GiB ({n_saves} save points x `n_paths` = "
                         f"{n_paths} x {x0.size} numbers x 8 bytes), over this module's MAX_STATE_BYTES = "
                         f"{MAX_STATE_BYTES / 2**30:.3g} GiB: lower `n_paths` or save fewer points.")
    return x0, n_paths, seed, bound, chunk_paths


def _time_arguments(t_end, dt, save_at):
    """(save times, dt) of ``simulate``: t_end and dt positive, save times in [0, t_end], steps bounded."""
    t_end = check_positive(t_end, "t_end")
    dt = check_positive(dt, "dt")
    saves = np.array([t_end]) if save_at is None else check_save_at(save_at, t_end)
    if t_end / dt > MAX_STEPS:
        raise ValueError(f"t_end / dt = {t_end / dt:.3g} steps, over the bound of {MAX_STEPS:.3g}: raise `dt`.")
    return saves, dt


def _step_arguments(n_steps, save_at, eta):
    """(n_steps, save indices, eta) of ``simulate_sgd``: integer steps in [0, n_steps], eta positive."""
    n_steps = check_int(n_steps, "n_steps")
    if n_steps > MAX_STEPS:
        raise ValueError(f"`n_steps` = {n_steps} is over the bound of {MAX_STEPS}.")
    eta = check_positive(eta, "eta")
    if save_at is None:
        return n_steps, [n_steps], eta
    return n_steps, check_save_steps(save_at, n_steps), eta


def checks_source() -> str:
    """The checks' source for a generated module (which imports math, numbers, sys and numpy as np)."""
    consts = (f"#: steps one call may take (as smfsym)\nMAX_STEPS = {MAX_STEPS}\n"
              f"#: bytes of saved states one call may return; raise it to allow larger runs\n"
              f"MAX_STATE_BYTES = {MAX_STATE_BYTES}")
    funcs = (check_int, check_positive, resolve_seed, _from_record, _holds_bool_or_none, check_save_at,
             check_save_steps, prepare_x0, _run_arguments, _time_arguments, _step_arguments)
    return consts + "\n\n\n" + "\n\n\n".join(_undocumented(inspect.getsource(f)).strip("\n") for f in funcs)


def _undocumented(src: str) -> str:
    """A function's source without its doctest examples (they name smfsym and sympy)."""
    head, sep, rest = src.partition("    Examples\n    --------\n")
    if not sep:
        return src
    return head.rstrip() + '\n    """' + rest.split('    """', 1)[1]
