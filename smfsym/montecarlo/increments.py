"""Random increments of the simulators, drawn block by block (docs/theory.md §9; the seed blocks: §8).

Gaussian increments are numpy's standard normals; discrete ones (Kloeden-Platen 14.1-14.2) are
exact two- and three-point variables built from random bytes. Both keep the engine's rule: a seed
block's stream depends only on the block and on how many numbers of each kind it draws.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["draw_discrete", "draw_normal", "draw_device"]


#: Two-point signs of the 8 bits of every byte: one random byte gives 8 increments, exactly +-1 w.p. 1/2.
_SIGNS = 1.0 - 2.0 * np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).astype(float)
#: Three-point values indexed by a uniform integer in [0, 6): +-sqrt(3) w.p. 1/6 each, 0 w.p. 2/3.
_THREE = np.array([-np.sqrt(3.0), np.sqrt(3.0), 0.0, 0.0, 0.0, 0.0])
#: Row b < 216: the three six-valued digits of b (base 6), each mapped by _THREE.
_TRIPLES = _THREE[np.stack([np.arange(216) // 36, np.arange(216) // 6 % 6, np.arange(216) % 6], axis=1)]


def draw_discrete(g: np.random.Generator, n: int, kinds: tuple, m: int, out: np.ndarray | None = None) -> np.ndarray:
    """Discrete stand-ins for standard normals, shape ``(n, len(kinds), m)`` (Kloeden-Platen 14.1, 14.2).

    ``kinds[j]`` is "two" (+-1, matching the normal moments up to order 3: enough for weak order
    1) or "three" (0 with probability 2/3, +-sqrt(3) with 1/6 each: up to order 5, for weak
    order 2). Both exact, from random bytes: a byte gives 8 signs; a byte below 216 = 6^3 gives
    three independent uniform six-valued digits (bytes from 216 up are discarded, so every digit
    is exactly uniform). Filled kind by kind, each kind column by column, in a fixed order: the
    stream depends only on n, kinds and m. The result is a view of a ``(len(kinds), m, n)``
    array, so every column is contiguous over the paths. ``out``, a float array of at least
    ``len(kinds) * m * n`` elements, is filled instead of a new array (a simulator reuses one
    buffer: fresh multi-megabyte arrays cost page faults every step).

    Examples
    --------
    >>> Z = draw_discrete(np.random.default_rng(0), 100_000, ("three", "two"), 1)
    >>> np.unique(np.round(Z[:, 0, 0] ** 2, 12)).tolist(), np.unique(Z[:, 1, 0]).tolist()
    ([0.0, 3.0], [-1.0, 1.0])
    """
    size = n * m
    out = np.empty((len(kinds), size)) if out is None else out.reshape(-1)[:len(kinds) * size].reshape(len(kinds), size)
    for j, kind in enumerate(kinds):
        if kind == "two":
            raw = np.frombuffer(g.bytes(-(-size // 8)), dtype=np.uint8)
            full = size // 8
            # mode="clip": with out= and the default mode="raise" numpy buffers the output (4x slower); the
            # indices are in range by construction
            np.take(_SIGNS, raw[:full], axis=0, out=out[j, :8 * full].reshape(full, 8), mode="clip")
            out[j, 8 * full:] = _SIGNS[raw[full:]].ravel()[:size - 8 * full]
        elif kind == "three":
            raw = _accepted_bytes(g, -(-size // 3), _TRIPLES.shape[0])
            full = size // 3
            np.take(_TRIPLES, raw[:full], axis=0, out=out[j, :3 * full].reshape(full, 3), mode="clip")
            out[j, 3 * full:] = _TRIPLES[raw[full:]].ravel()[:size - 3 * full]
        else:  # pragma: no cover - solvers declare their kinds
            raise ValueError(f"unknown discrete increment kind {kind!r}")
    return out.reshape(len(kinds), m, n).transpose(2, 0, 1)


def _accepted_bytes(g: np.random.Generator, count: int, below: int) -> np.ndarray:
    """``count`` random bytes uniform on {0, ..., below - 1}: bytes >= below are rejected (exact)."""
    # draw a little more than the expected need (so a second round is rare), keep the first `count`
    raw = np.frombuffer(g.bytes(int(count * 256 / below * 1.02) + 64), dtype=np.uint8)
    acc = raw[raw < below]
    while acc.size < count:
        more = np.frombuffer(g.bytes(int((count - acc.size) * 256 / below * 1.1) + 64), dtype=np.uint8)
        acc = np.concatenate([acc, more[more < below]])
    return acc[:count]


def draw_normal(gens, sizes, shape) -> np.ndarray:
    """Standard normals ``(sum(sizes),) + shape``, block by block."""
    return np.concatenate([g.standard_normal((s,) + tuple(shape)) for g, s in zip(gens, sizes)], axis=0)


def draw_device(backend, gens, sizes, k: int, m: int, discrete: tuple | None = None):
    """Increments of one step on an array back end, shape ``(k, m, sum(sizes))``, block by block.

    Each seed block's stream (``backend.generator``) draws its own ``(k, m, s)`` standard normals, or with
    ``discrete`` (one kind per draw, as :func:`draw_discrete`) ``(k, m, s)`` uniform integers on {0, ..., 5}
    in one call, mapped on the whole chunk: "two" by parity (+-1, each with probability 1/2 exactly),
    "three" to -sqrt(3), +sqrt(3) for 0, 1 and to 0 otherwise. One draw per block and step: the numbers of a
    block do not depend on the chunk it is in.
    """
    xp = backend.xp
    if discrete is None:
        parts = [g.standard_normal((k, m, s)) for g, s in zip(gens, sizes)]
        return parts[0] if len(parts) == 1 else xp.concat(parts, axis=-1)
    parts = [g.integers(6, (k, m, s)) for g, s in zip(gens, sizes)]
    i = parts[0] if len(parts) == 1 else xp.concat(parts, axis=-1)
    rows = []
    for j, kind in enumerate(discrete):
        ij = i[j, ...]
        if kind == "two":
            rows.append(1.0 - 2.0 * xp.astype(ij % 2, backend.dtype))
        elif kind == "three":
            rows.append(math.sqrt(3.0) * (xp.astype(ij == 1, backend.dtype) - xp.astype(ij == 0, backend.dtype)))
        else:  # pragma: no cover - solvers declare their kinds
            raise ValueError(f"unknown discrete increment kind {kind!r}")
    return rows[0][None, ...] if len(rows) == 1 else xp.stack(rows, axis=0)
