"""Seed blocks: block b of :data:`BLOCK` paths draws from ``SeedSequence(entropy, spawn_key=(b,))``, so the
numbers do not depend on how blocks are grouped into chunks or spread over workers."""
from __future__ import annotations

import numpy as np

__all__ = ["BLOCK", "resolve_seed", "block_generators", "block_label"]

#: Paths per random stream: chunk sizes are rounded up to whole blocks.
BLOCK = 4096


def resolve_seed(seed) -> np.random.SeedSequence:
    """An int, None, SeedSequence or Generator as a SeedSequence (recorded in results).

    A saved study records a SeedSequence as ``{"entropy": ..., "spawn_key": [...]}``; that form is taken
    back too. A Generator is drawn from (numpy's convention): the same Generator object gives other
    numbers the next time; pass an int or a SeedSequence to repeat a run.
    """
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, dict):
        return _from_record(seed)
    if isinstance(seed, np.random.Generator):
        return np.random.SeedSequence(seed.integers(0, 2**63, size=4).tolist())
    if isinstance(seed, (bool, np.bool_)):
        raise TypeError(f"`seed` must be an int, a SeedSequence or a Generator; got {seed!r} (bool).")
    if seed is None or isinstance(seed, (int, np.integer)):
        if seed is not None and seed < 0:
            raise ValueError(f"`seed` must be a non-negative integer; got {seed}.")
        return np.random.SeedSequence(None if seed is None else int(seed))
    raise TypeError(f"`seed` must be an int, a SeedSequence or a Generator; got {type(seed).__name__}.")


def _from_record(seed: dict) -> np.random.SeedSequence:
    """``{"entropy": int or [ints], "spawn_key": [ints]}``, as a saved study records a SeedSequence."""
    def natural(v):
        return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) and v >= 0

    entropy, key = seed.get("entropy"), seed.get("spawn_key")
    ok = (set(seed) == {"entropy", "spawn_key"} and isinstance(key, (list, tuple)) and all(map(natural, key))
          and (natural(entropy) or (isinstance(entropy, (list, tuple)) and entropy and all(map(natural, entropy)))))
    if not ok:
        raise TypeError("`seed` given as a mapping must be a saved study's record {'entropy': a non-negative int "
                        f"(or a list of them), 'spawn_key': a list of non-negative ints}}; got {dict(seed)!r:.120}.")
    entropy = int(entropy) if natural(entropy) else [int(e) for e in entropy]
    return np.random.SeedSequence(entropy, spawn_key=tuple(int(k) for k in key))


def block_generators(ss: np.random.SeedSequence, first: int, count: int) -> list:
    return [np.random.Generator(np.random.PCG64(
        np.random.SeedSequence(ss.entropy, spawn_key=tuple(ss.spawn_key) + (b,))))
        for b in range(first, first + count)]


def block_label(first: int, count: int, n_paths: int) -> str:
    """``"seed blocks a-b (paths p-q)"``: where in the run a chunk or a task lies."""
    last = first + count - 1
    blocks = f"seed block {first}" if count == 1 else f"seed blocks {first}-{last}"
    return f"{blocks} (paths {first * BLOCK}-{min(n_paths, (last + 1) * BLOCK) - 1})"
