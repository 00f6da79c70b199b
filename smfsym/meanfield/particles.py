"""Initial particles of the mean-field network (docs/theory.md §6)."""
from __future__ import annotations

from typing import Mapping

import numpy as np

from ..montecarlo.seeds import resolve_seed

__all__ = ["particles", "check_particles"]

_FAMILIES = ("normal", "uniform", "constant")


def check_particles(theta, p: int, argument: str = "theta0") -> np.ndarray:
    """``theta`` as a finite (N, p) float array (a copy), or a clear error naming ``argument``."""
    on_host = isinstance(theta, np.ndarray) or not hasattr(theta, "__array_namespace__")
    if on_host and np.iscomplexobj(theta):
        raise TypeError(f"`{argument}` must be real; got complex values.")
    try:
        arr = np.array(theta, dtype=float)
    except (TypeError, ValueError, RuntimeError):
        if hasattr(theta, "__array_namespace__"):  # an array on a device: numpy cannot read it
            raise TypeError(f"`{argument}` must be on the host (a numpy array or a sequence); got an array of "
                            f"{type(theta).__module__.split('.')[0]} on its device: copy it to the host first "
                            f"(CuPy: {argument}.get()).") from None
        raise TypeError(f"`{argument}` must be a numeric array of shape (N, {p}); got {type(theta).__name__}.") from None
    if arr.ndim != 2 or arr.shape[1] != p or arr.shape[0] < 1:
        raise ValueError(f"`{argument}` must have shape (N, {p}) with N >= 1 particles (one column per unit "
                         f"parameter); got shape {arr.shape}.")
    bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
    if bad:
        raise ValueError(f"`{argument}` must be finite; it holds {bad} NaN or infinite value(s).")
    return arr


#: Bytes one set of initial particles may take (16 GiB: a mean-field run holds several copies per path).
MAX_PARTICLE_BYTES = 16 * 2**30


def check_particle_bytes(n: int, p: int, named: str) -> None:
    """Refuse ``n`` particles of ``p`` parameters over MAX_PARTICLE_BYTES, with their size, before numpy's
    allocator is asked (``named`` says which argument gave n: "`n` =", "`widths`:")."""
    size = 8.0 * n * p
    if size > MAX_PARTICLE_BYTES:
        raise ValueError(f"{named} {n} particles of {p} parameters take {size / 2**30:.3g} GiB, over "
                         f"MAX_PARTICLE_BYTES = {MAX_PARTICLE_BYTES / 2**30:.3g} GiB.")


def particles(net, n: int, law: Mapping | None = None, seed=0) -> np.ndarray:
    """N i.i.d. initial particles, shape (n, p).

    Parameters
    ----------
    net : MeanFieldProblem
    n : int
        Width N >= 1.
    law : mapping, optional
        Per unit parameter (its name): ``("normal", mean, std)``, ``("uniform", lo, hi)`` or
        ``("constant", value)``; plain data, default ``("normal", 0, 1)`` for every parameter.
    seed : int or SeedSequence
        Particles are a deterministic function of ``(n, law, seed)``.

    Examples
    --------
    >>> import sympy as sp, smfsym
    >>> a, w, out = sp.symbols("a w out")
    >>> z = smfsym.normal("z")
    >>> net = smfsym.MeanFieldProblem(a * sp.tanh(w * z), (a, w), out, (out - z) ** 2 / 2)
    >>> smfsym.particles(net, 1000, law={"a": ("constant", 0.0)}, seed=0).shape
    (1000, 2)
    """
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ValueError(f"`n` must be a positive integer (the width N); got {n!r}.")
    check_particle_bytes(n, len(net.params), "`n` =")
    law = dict(law or {})
    names = [str(t) for t in net.params]
    unknown = sorted(set(map(str, law)) - set(names))
    if unknown:
        raise ValueError(f"`law` names {unknown}, which are not unit parameters; they are {names}.")
    g = np.random.default_rng(resolve_seed(seed))
    out = np.empty((int(n), len(names)))
    for r, name in enumerate(names):
        spec = law.get(name, ("normal", 0.0, 1.0))
        if not isinstance(spec, (tuple, list)) or not spec or spec[0] not in _FAMILIES:
            raise ValueError(f"`law[{name!r}]` must be ('normal', mean, std), ('uniform', lo, hi) or "
                             f"('constant', value); got {spec!r}.")
        try:
            args = [float(a) for a in spec[1:]]
        except (TypeError, ValueError):
            raise ValueError(f"`law[{name!r}]` parameters must be numbers; got {spec!r}.") from None
        need = 1 if spec[0] == "constant" else 2
        if len(args) != need or not np.all(np.isfinite(args)):
            raise ValueError(f"`law[{name!r}]` must give {need} finite number(s) after the family; got {spec!r}.")
        if spec[0] == "normal":
            if args[1] < 0:
                raise ValueError(f"`law[{name!r}]` std must be >= 0; got {args[1]}.")
            out[:, r] = args[0] + args[1] * g.standard_normal(n)
        elif spec[0] == "uniform":
            if args[1] < args[0]:
                raise ValueError(f"`law[{name!r}]` needs lo <= hi; got {spec!r}.")
            out[:, r] = g.uniform(args[0], args[1], n)
        else:
            out[:, r] = args[0]
    return out
