"""Results that save, reload and travel: JSON files for studies, pandas and xarray views.

A saved study is *data*: numbers, names and the text of the symbolic objects it
was computed from, together with the seed, the versions of smfsym, numpy, scipy
and sympy, and the time it was written. Loading never turns text back into
sympy (that would evaluate strings from a file): a loaded study has its numbers
bit for bit (floats are written in their shortest round-trip form, non-finite
values tagged) and its problem and test function as text.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

__all__ = ["Order", "StudyIO", "load_study", "FORMAT"]

#: Format tag written into every saved study; loading refuses other formats.
FORMAT = "smfsym-study/1"


class Order(NamedTuple):
    """A fitted convergence order: slope of log|error| against log eta with its 95% interval."""

    slope: float
    low: float
    high: float
    n_used: int


def _encode(v: Any) -> Any:
    if isinstance(v, Order):
        return {"__order__": [_encode(x) for x in v]}
    if isinstance(v, dict):
        return {str(k): _encode(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_encode(x) for x in v]
    if isinstance(v, np.ndarray):
        return {"__ndarray__": _encode(v.tolist()), "dtype": str(v.dtype), "shape": list(v.shape)}
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return f if np.isfinite(f) else {"__float__": repr(f)}
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, np.random.SeedSequence):
        return {"__seed__": {"entropy": _encode(v.entropy), "spawn_key": list(v.spawn_key)}}
    return {"__text__": str(v), "type": type(v).__name__}  # sympy objects and the like: text only


def _decode(v: Any) -> Any:
    if isinstance(v, list):
        return [_decode(x) for x in v]
    if not isinstance(v, dict):
        return v
    if "__float__" in v:
        text = v["__float__"]
        if text not in ("nan", "inf", "-inf"):
            raise ValueError(f"saved study: invalid non-finite float tag {text!r}.")
        return float(text)
    if "__order__" in v:
        s, lo, hi, n = (_decode(x) for x in v["__order__"])
        return Order(s, lo, hi, int(n))
    if "__ndarray__" in v:
        dtype = np.dtype(v["dtype"])
        if dtype.kind not in "biuf":
            raise ValueError(f"saved study: arrays must be numeric; got dtype {dtype}.")
        return np.asarray(_decode(v["__ndarray__"]), dtype=dtype).reshape(v["shape"])
    if "__seed__" in v:
        return {"entropy": _decode(v["__seed__"]["entropy"]), "spawn_key": v["__seed__"]["spawn_key"]}
    if "__text__" in v:
        return v["__text__"]
    return {k: _decode(x) for k, x in v.items()}


def _versions() -> dict:
    import scipy
    import sympy

    from . import __version__

    return {"smfsym": __version__, "numpy": np.__version__, "scipy": scipy.__version__, "sympy": sympy.__version__}


def atomic_write_text(path: str | Path, text: str | bytes) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename.

    A reader never sees a half-written file, and an interrupted write leaves the old one.
    """
    from ._fs import temp_file

    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    # not tempfile.mkstemp: its 0600 would survive the rename; this file gets 0666 less the umask like open()
    tmp, fd = temp_file(parent, "." + path.name + ".")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(text.encode() if isinstance(text, str) else text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class StudyIO:
    """``save``/``load`` and ``to_pandas`` for the study dataclasses (mixed in)."""

    #: Fields written as text only (symbolic objects); a loaded study holds their text.
    _text_fields: tuple = ("problem", "phi")

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the study as JSON (atomic: a temporary file, then a rename).

        Parameters
        ----------
        path : str or Path
            The file to write (``.json``).
        overwrite : bool
            Refuse to replace an existing file unless True.
        """
        path = Path(path)
        if path.exists() and not overwrite:
            raise FileExistsError(f"`path` {str(path)!r} exists; pass overwrite=True to replace it.")
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        doc = {"format": FORMAT, "kind": type(self).__name__, "versions": _versions(),
               "written": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
               "fields": {k: (_encode(str(v)) if k in self._text_fields and v is not None else _encode(v))
                          for k, v in fields.items()}}
        atomic_write_text(path, json.dumps(doc, indent=1, allow_nan=False) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path):
        """Read a study written by :meth:`save` (numbers exact; symbolic fields as text)."""
        doc = _read(path)
        if doc.get("kind") != cls.__name__:
            raise ValueError(f"`path` holds a {doc.get('kind')!r}, not a {cls.__name__}.")
        return _build(cls, doc)

    def to_pandas(self):
        """The table in long format: one row per (model, eta, statistic) with value and standard error.

        Columns: ``model, eta, statistic, value, se`` (plus ``t`` where the study has one).
        """
        try:
            import pandas as pd
        except ImportError:  # pragma: no cover - pandas is optional
            raise ImportError("`to_pandas` needs pandas: pip install pandas") from None
        return pd.DataFrame(self._long_rows(), columns=["model", "eta", "statistic", "value", "se", "t"])

    def _long_rows(self) -> list:  # pragma: no cover - each study defines its own
        raise NotImplementedError


def _read(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"`path` {str(path)!r} is not a file.")
    if path.stat().st_size > 512 * 2**20:
        raise ValueError(f"`path` {str(path)!r} is larger than 512 MiB: not a saved study.")
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"`path` {str(path)!r} is not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"`path` {str(path)!r} is not a saved smfsym study (format {FORMAT!r}).")
    return doc


def _build(cls, doc):
    names = {f.name for f in dataclasses.fields(cls)}
    fields = {k: _decode(v) for k, v in doc["fields"].items() if k in names}
    meta = dict(fields.get("meta") or {})
    meta.update(loaded_from=doc.get("written"), versions=doc.get("versions"))
    if "meta" in names:
        fields["meta"] = meta
    obj = cls(**fields)
    return obj


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
    from . import meanfield, studies

    cls = getattr(studies, doc.get("kind", ""), None) or getattr(meanfield, doc.get("kind", ""), None)
    if not (isinstance(cls, type) and issubclass(cls, StudyIO)):
        raise ValueError(f"`path` holds an unknown study kind {doc.get('kind')!r}.")
    return _build(cls, doc)


def simulation_to_xarray(result):
    """A :class:`~smfsym.engine.SimulationResult` as an ``xarray.Dataset`` (xarray is optional).

    Dimensions: ``time``, ``path``, ``point`` (n-point runs only) and ``coord``;
    the streamed means and standard errors are variables over ``time`` (and the
    other non-path dimensions).
    """
    try:
        import xarray as xr
    except ImportError:  # pragma: no cover - optional
        raise ImportError("`to_xarray` needs xarray: pip install xarray") from None
    data_vars = {}
    if result.states is not None:
        dims = ("time", "path", "point", "coord") if result.states.ndim == 4 else ("time", "path", "coord")
        data_vars["state"] = (dims, result.states)
    for name, st in result.stats.items():
        mean = np.asarray(st["mean"])
        dims = ("time",) + tuple(f"{name}_dim{i}" for i in range(mean.ndim - 1))
        if name == "state":
            dims = ("time", "point", "coord") if mean.ndim == 3 else ("time", "coord")
        data_vars[f"{name}_mean"] = (dims, mean)
        data_vars[f"{name}_sem"] = (dims, np.asarray(st["sem"]))
    attrs = {"scheme": result.scheme, "dt": result.dt, "n_steps": result.n_steps, "n_paths": result.n_paths,
             "success": int(result.success), "message": result.message,
             "seed_entropy": str(result.seed.entropy), "seed_spawn_key": str(tuple(result.seed.spawn_key))}
    return xr.Dataset(data_vars, coords={"time": np.asarray(result.t)}, attrs=attrs)
