"""Numeric data samplers for SGD: parameters bound once, numpy Generator methods only.

Each sampler is a Python expression in ``g`` (a Generator) and ``n`` (how many
samples) returning a ``(k, n)`` array: one contiguous row per data coordinate,
which is how the compiled gradient reads them. The same source is evaluated here and
written out by :func:`smfsym.codegen`, so generated code draws the very same
numbers. Independent scalar Gaussian coordinates are drawn together in one call.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from .._checks import to_float

__all__ = ["Sampler", "samplers_for"]


@dataclass
class Sampler:
    """Draws ``(k, n)`` samples of the data symbols ``symbols`` (one row each)."""

    symbols: tuple
    source: str
    #: Arrays the source refers to by name (data sets): passed in, never printed into the source.
    arrays: dict = field(default_factory=dict)

    def __post_init__(self):
        # our own generated source; only literals of numbers and the names in `arrays` appear in it
        self.fn = eval("lambda g, n: " + self.source, {"np": np, **self.arrays})  # noqa: S307

    def __call__(self, g: np.random.Generator, n: int) -> np.ndarray:
        return self.fn(g, n)


def _is(law, kind: str) -> bool:
    """``isinstance(law, laws.<kind>)`` by class name: the laws import this module to sample, so it
    cannot import them back."""
    return any(cls.__name__ == kind for cls in type(law).__mro__)


def _law_source(law, values, arrays: dict) -> str:
    # Named by family and symbol, never by the law's repr: that prints every parameter, and building it
    # once per parameter made a 256-value categorical quadratic (93 s to set up).
    what = f"a parameter of the {law.family} law of {', '.join(s.name for s in law.symbols[:4])}"
    f = lambda e: repr(to_float(e, values, what))  # noqa: E731
    if _is(law, "Uniform"):
        return f"g.uniform({f(law.a)}, {f(law.b)}, n)[None, :]"
    if _is(law, "Exponential"):
        return f"g.exponential(1.0 / {f(law.rate)}, n)[None, :]"
    if _is(law, "Gamma"):
        return f"g.gamma({f(law.shape)}, {f(law.scale)}, n)[None, :]"
    if _is(law, "Beta"):
        return f"g.beta({f(law.a)}, {f(law.b)}, n)[None, :]"
    if _is(law, "StudentT"):
        return f"g.standard_t({f(law.nu)}, n)[None, :]"
    if _is(law, "Finite"):
        v = [to_float(a, values, what) for a in law.values]
        w = np.array([to_float(a, values, what) for a in law.weights])
        return f"np.array({v!r})[g.choice({len(v)}, size=n, p=np.array({(w / w.sum()).tolist()!r}))][None, :]"
    if _is(law, "MultivariateNormal"):
        mu = [to_float(m, values, what) for m in law.mean]
        cov = np.array([[to_float(c, values, what) for c in row] for row in law.cov.tolist()])
        L = np.linalg.cholesky(cov).tolist()
        return f"np.array({mu!r})[:, None] + np.array({L!r}) @ g.standard_normal(({law.dim}, n))"
    if _is(law, "Empirical"):
        i = len(arrays) // 2
        arrays[f"_data{i}"] = np.ascontiguousarray(law.data, dtype=float)
        arrays[f"_weights{i}"] = np.asarray(law.weights, dtype=float)
        return f"np.ascontiguousarray(_data{i}[g.choice({law.size}, size=n, p=_weights{i})].T)"
    raise NotImplementedError(f"no sampler for {law!r}")  # pragma: no cover


def samplers_for(laws, values: Mapping | None = None) -> list:
    """Samplers covering ``laws``: scalar Gaussians grouped into one draw, then one per law."""
    values = values or {}
    for law in laws:  # numbers given to symbolic parameters, checked as the law's factory checks its arguments
        law.check_values(values)
    normals = [l for l in laws if _is(l, "Normal")]
    out = []
    if normals:
        mu = [to_float(l.mean, values, f"the mean of {l.symbol}") for l in normals]
        sd = [to_float(l.std, values, f"the std of {l.symbol}") for l in normals]
        k = len(normals)
        src = f"g.standard_normal(({k}, n))"
        if any(s != 1.0 for s in sd):
            src = f"np.array({sd!r})[:, None] * {src}"
        if any(mu):
            src = f"np.array({mu!r})[:, None] + {src}"
        out.append(Sampler(tuple(l.symbol for l in normals), src))
    arrays: dict = {}
    for law in laws:
        if not _is(law, "Normal"):
            before = set(arrays)
            src = _law_source(law, values, arrays)
            out.append(Sampler(law.symbols, src, {k: arrays[k] for k in set(arrays) - before}))
    return out
