"""The per-process cache of compiled objects, keyed by content (a study compiles each SDE once)."""
from __future__ import annotations

import functools
import hashlib
import io
import pickle
import threading
from collections import OrderedDict, namedtuple
from typing import Any, Callable

__all__ = ["content_key", "compiled", "compiled_content", "remember", "cache_info", "cache_clear", "CacheInfo",
           "COMPILE_CACHE_SIZE"]

#: Compiled objects kept per process (least recently used dropped first): numeric SDEs and compiled
#: gradients in the calling process, whole compiled steps on executor workers. A study's cells (models x
#: etas, each with its coupled run) fit many times over.
COMPILE_CACHE_SIZE = 32
_COMPILED: "OrderedDict[str, Any]" = OrderedDict()
_COMPILED_LOCK = threading.Lock()
_COUNTS = {"hits": 0, "misses": 0}
CacheInfo = namedtuple("CacheInfo", ["hits", "misses", "maxsize", "currsize"])


@functools.lru_cache(maxsize=None)
def _cached_properties(cls) -> frozenset:
    return frozenset(name for klass in cls.__mro__ for name, attr in vars(klass).items()
                     if isinstance(attr, functools.cached_property))


class _KeyPickler(pickle.Pickler):
    """Pickles for keys: an object's ``functools.cached_property`` values are left out (they are functions
    of the rest of its state), so a Problem whose derived quantities were computed meanwhile keeps its key.
    The bytes are hashed, never unpickled."""

    def reducer_override(self, obj):
        names = _cached_properties(type(obj)) if hasattr(obj, "__dict__") else frozenset()
        if not names:
            return NotImplemented
        state = obj.__getstate__()
        if not isinstance(state, dict):
            return NotImplemented
        return type(obj), (), {k: v for k, v in state.items() if k not in names}


def content_key(*parts, payload: bytes | None = None) -> str:
    """SHA-256 of ``parts``, each pickled on its own (or of ``payload``, a recipe already pickled): the cache
    key of what they compile to.

    Sympy expressions, numbers and data arrays pickle by value, so a difference anywhere gives another
    key and a cache hit is always the same computation. Pickle also records which objects are shared
    (the same symbol object in two places is written once): each part is pickled alone, so an equal but
    not identical object in one part (a symbol given in ``values``) cannot change another part's bytes.
    One object keeps its key (cached properties are not part of the content, see :class:`_KeyPickler`);
    an equal SDE built again may not, which costs one compilation more.
    """
    digest = hashlib.sha256()
    if payload is not None:
        digest.update(payload)
    for part in parts:
        buf = io.BytesIO()
        _KeyPickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(part)
        digest.update(len(buf.getbuffer()).to_bytes(8, "little"))
        digest.update(buf.getbuffer())
    return digest.hexdigest()


def compiled(key: str, make: Callable[[], Any]):
    """The object cached under ``key``, made by ``make()`` on the first request (LRU, :data:`COMPILE_CACHE_SIZE`).

    The one compile cache of smfsym: :func:`smfsym.simulate` and :func:`smfsym.simulate_sgd` keep their
    compiled SDEs and gradients here, executor workers their compiled steps (:mod:`smfsym.montecarlo.executors`).
    Keys come from :func:`content_key`; a cached object must not change with use (it is shared by
    every later call with the same key, and by threads). A ``make()`` that raises caches nothing.

    Examples
    --------
    >>> cache_clear()
    >>> compiled("k", lambda: [1]) is compiled("k", lambda: [2])
    True
    >>> cache_info()
    CacheInfo(hits=1, misses=1, maxsize=32, currsize=1)
    >>> cache_clear()
    """
    with _COMPILED_LOCK:
        if key in _COMPILED:
            _COMPILED.move_to_end(key)
            _COUNTS["hits"] += 1
            return _COMPILED[key]
    obj = make()  # outside the lock: compiling may take seconds and may itself use the cache
    with _COMPILED_LOCK:
        _COUNTS["misses"] += 1
    return remember(key, obj)


def compiled_content(parts: tuple, make: Callable[[], Any]):
    """``compiled(content_key(*parts), make)``; ``make()`` uncached (counted as a miss) when a part does not
    pickle (a sympy ``implemented_function`` carries a Python callable): without its content no key
    could tell two such objects apart, so they are never shared."""
    try:
        key = content_key(*parts)
    except Exception:  # noqa: BLE001 - any pickling failure means the same: no content key
        obj = make()
        with _COMPILED_LOCK:
            _COUNTS["misses"] += 1
        return obj
    return compiled(key, make)


def remember(key: str, obj):
    """Put ``obj`` in the compile cache under ``key`` (not counted as a miss); returns the cached object,
    which is the one already there if another thread made it meanwhile."""
    with _COMPILED_LOCK:
        obj = _COMPILED.setdefault(key, obj)
        _COMPILED.move_to_end(key)
        while len(_COMPILED) > COMPILE_CACHE_SIZE:
            _COMPILED.popitem(last=False)
    return obj


def cache_info() -> CacheInfo:
    """Hits, misses, size bound and current size of the compile cache (as ``functools.lru_cache``)."""
    with _COMPILED_LOCK:
        return CacheInfo(_COUNTS["hits"], _COUNTS["misses"], COMPILE_CACHE_SIZE, len(_COMPILED))


def cache_clear() -> None:
    """Empty the compile cache and reset its counters."""
    with _COMPILED_LOCK:
        _COMPILED.clear()
        _COUNTS.update(hits=0, misses=0)
