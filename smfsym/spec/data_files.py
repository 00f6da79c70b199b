"""Reading the CSV data file of an ``empirical`` law, with bounds and strict numbers.

The rules (docs/theory.md §8):

- the path is relative to the spec's directory and must stay inside it: absolute
  paths, ``..`` components and symbolic links that lead outside are refused;
- it must be a regular file of at most :data:`MAX_BYTES` bytes, UTF-8 text;
- the first row is a header of distinct names; at most :data:`MAX_COLUMNS`
  columns and between 2 and :data:`MAX_ROWS` data rows;
- every cell is a finite decimal number (``1``, ``-2.5``, ``3e-4``); ``nan``,
  ``inf``, empty cells, ``1_000`` and Python literals are refused with the row
  and column. Numbers are read with the :mod:`csv` module and ``float`` after
  a strict pattern match, never evaluated.
"""
from __future__ import annotations

import csv
import io
import math
import os
import re
import stat
from pathlib import Path

import numpy as np

from .expr import SpecError

__all__ = ["MAX_BYTES", "MAX_ROWS", "MAX_COLUMNS", "resolve_data_path", "read_csv"]

MAX_BYTES = 64 * 2**20
MAX_ROWS = 1_000_000
MAX_COLUMNS = 256
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def resolve_data_path(name: str, spec_dir: Path, key: str) -> Path:
    """The data file ``name`` inside ``spec_dir``, or a SpecError saying why not."""
    rel = Path(name)
    if rel.is_absolute() or name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise SpecError(f"`{key}`: {name!r} is an absolute path; data files must be given relative to the "
                        "spec's directory")
    if ".." in rel.parts:
        raise SpecError(f"`{key}`: {name!r} leaves the spec's directory (`..`); data files must be inside it")
    base = spec_dir.resolve()
    full = (base / rel).resolve()
    if full != base and base not in full.parents:
        raise SpecError(f"`{key}`: {name!r} resolves to {str(full)!r}, outside the spec's directory")
    try:
        st = os.stat(full)
    except OSError as exc:
        raise SpecError(f"`{key}`: cannot read data file {name!r}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise SpecError(f"`{key}`: {name!r} is not a regular file")
    if st.st_size > MAX_BYTES:
        raise SpecError(f"`{key}`: data file {name!r} has {st.st_size} bytes; the limit is MAX_BYTES = {MAX_BYTES}")
    return full


def read_csv(path: Path, key: str) -> tuple[list[str], np.ndarray]:
    """Header and (rows, columns) float array of a CSV data file (rules in the module docstring)."""
    with open(path, "rb") as fh:
        raw = fh.read(MAX_BYTES + 1)
    if len(raw) > MAX_BYTES:
        raise SpecError(f"`{key}`: data file has more than MAX_BYTES = {MAX_BYTES} bytes")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SpecError(f"`{key}`: data file is not UTF-8 text (byte {exc.start})") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise SpecError(f"`{key}`: data file is empty (a header row of column names is required)")
        header = [h.strip() for h in header]
        if len(header) > MAX_COLUMNS:
            raise SpecError(f"`{key}`: {len(header)} columns; the limit is MAX_COLUMNS = {MAX_COLUMNS}")
        if any(_NUMBER.fullmatch(h) for h in header) or any(not h for h in header):
            raise SpecError(f"`{key}`: the first row must be a header of column names; got {header[:8]}")
        dup = sorted({h for h in header if header.count(h) > 1})
        if dup:
            raise SpecError(f"`{key}`: duplicate column names {dup}")
        k = len(header)
        rows = np.empty((1024, k))
        n = 0
        for row in reader:
            line = reader.line_num
            if not row:  # a blank line; a line of empty cells is refused below
                continue
            if len(row) != k:
                raise SpecError(f"`{key}`: line {line} has {len(row)} cells; the header has {k}")
            if n >= MAX_ROWS:
                raise SpecError(f"`{key}`: more than MAX_ROWS = {MAX_ROWS} data rows")
            if n == rows.shape[0]:
                rows = np.resize(rows, (2 * n, k))
            for j, c in enumerate(row):
                c = c.strip()
                if not _NUMBER.fullmatch(c):
                    raise SpecError(f"`{key}`: line {line}, column {j + 1} ({header[j]}): {c[:40]!r} is not a "
                                    "finite decimal number")
                x = float(c)
                if not math.isfinite(x):
                    raise SpecError(f"`{key}`: line {line}, column {j + 1} ({header[j]}): {c[:40]!r} overflows")
                rows[n, j] = x
            n += 1
    except csv.Error as exc:
        raise SpecError(f"`{key}`: malformed CSV at line {reader.line_num}: {exc}") from None
    if n < 2:
        raise SpecError(f"`{key}`: data file has {n} data row(s); an empirical law needs at least 2")
    return header, rows[:n].copy()
