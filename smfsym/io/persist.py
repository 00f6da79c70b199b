"""Saving and loading studies, and the xarray view of a simulation (the io layer).

The JSON format, its schemas and the :class:`StudyIO` mixin live in :mod:`smfsym.studies.storage`
(the studies layer, so that every study can save itself); this module adds what needs every study
kind at once, :func:`load_study`, and re-exports the rest under its old names.
"""
from __future__ import annotations

from pathlib import Path

from ..studies.registry import RESULTS
from ..montecarlo.result import simulation_to_xarray
from ..studies.storage import (
    FORMAT, MAX_ELEMENTS, MAX_NESTING, MAX_STUDY_BYTES, SCHEMAS, Order, StudyIO, _build, _read,
    atomic_write_text,
)

__all__ = ["FORMAT", "MAX_ELEMENTS", "MAX_NESTING", "MAX_STUDY_BYTES", "SCHEMAS", "Order", "StudyIO",
           "atomic_write_text", "load_study", "simulation_to_xarray"]


def load_study(path: str | Path):
    """Load any saved study, whatever its kind.

    Examples
    --------
    >>> import sympy as sp, smfsym, tempfile, os
    >>> x = sp.Symbol("x")
    >>> p = smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x])
    >>> st = smfsym.weak_error(p, x**2, [1.0], 1.0, [0.1, 0.05, 0.025], models=["sme2"])
    >>> path = os.path.join(tempfile.mkdtemp(), "study.json")
    >>> back = smfsym.load_study(st.save(path))
    >>> back.rows == st.rows and back.orders == st.orders
    True
    """
    doc = _read(path)
    kind = doc["kind"]
    # only the declared kinds, no other name
    cls = RESULTS.get(kind) if kind in SCHEMAS else None
    if not (isinstance(cls, type) and issubclass(cls, StudyIO)):
        raise ValueError(f"`path` holds an unknown study kind {kind[:60]!r}; known: {', '.join(SCHEMAS)}.")
    return _build(cls, doc)
