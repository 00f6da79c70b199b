"""Data means and data sets in generated code (used by :func:`smfsym.codegen`).

A data mean E_xi[g(x, xi)] (docs/theory.md §8) is written out as three things:

- its integrand ``g`` as a numpy function of the state and the data symbols;
- its rule: for every law of the rule, the nodes and weights of *every* refinement
  level the rule may use (n, 2n, 4n, ... points per coordinate up to the caps of
  the rule's :class:`~smfsym.Limits`), embedded as numpy arrays; a data set is not
  embedded (unless small, as the SGD sampler does) but named, and bound with
  ``set_data()``;
- the refinement logic of :class:`~smfsym.data.quadrature.AdaptiveMean`, copied: every
  state starts on the n-point rule and is refined while the n- and 2n-point values
  differ by more than ``quad_atol + quad_rtol E|g|``, or, where the mean cancels, the 2n- and
  (2n - 1)-point values do (:func:`~smfsym.data.quadrature.confirm_cancelling`, embedded verbatim).

So the generated module refines exactly where smfsym refines, and gives the same
numbers as :func:`smfsym.simulate` (the final rule of a state depends on the state
alone, so embedding only the final rule of one run would not do). The tensor
product of the laws' rules is formed in the generated module, so a rule over k
independent scalar laws embeds k one-dimensional rules, not n^k nodes.
"""
from __future__ import annotations

import inspect
from typing import Mapping

import numpy as np
import sympy as sp

from ..data.means import DataMean
from ..data.quadrature import _CHUNK_ELEMENTS, CANCELLATION, confirm_cancelling, rule_sums
from ..data.laws import Empirical

__all__ = ["MeanContext", "MEAN_RUNTIME", "RULE_EMBED_LIMIT", "data_source", "doc_safe"]

#: Numbers of quadrature nodes and weights a generated module may embed (about 20 characters each).
RULE_EMBED_LIMIT = 500_000

_SET_DATA = '''
def set_data(**arrays):
    """Bind the data arrays (the ones smfsym used: law.data and law.weights)."""
    shapes = SHAPES
    for k, v in arrays.items():
        if k not in shapes:
            raise ValueError(f"unknown data array {k!r}; expected {sorted(shapes)}")
        v = np.ascontiguousarray(v, dtype=float)
        if v.shape != shapes[k]:
            raise ValueError(f"`{k}` must have shape {shapes[k]}; got {v.shape}")
        globals()[k] = v
CLEAR
'''


def data_source(arrays: Mapping[str, np.ndarray], embed_limit: int, clear: str) -> str:
    """The data arrays of a generated module and its ``set_data``.

    An array of at most ``embed_limit`` numbers is written into the source; a larger one (a data
    set) is an argument of the module, never text in it: ``None`` until ``set_data`` binds it.
    ``clear`` is the body's last lines (indented), which drop what the module derived from the data.
    """
    consts = []
    for name, arr in arrays.items():
        if arr.size <= embed_limit:
            consts.append(f"{name} = np.array({arr.tolist()!r})")
        else:
            consts.append(f"{name} = None  # shape {arr.shape}: pass it with set_data({name}=...)")
    shapes = {k: v.shape for k, v in arrays.items()}
    set_data = _SET_DATA.replace("SHAPES", repr(shapes)).replace("CLEAR", clear.rstrip("\n"))
    return "\n".join(consts) + "\n\n" + set_data


#: Copied into every generated module that has data means: smfsym.data.quadrature.AdaptiveMean, standalone.
MEAN_RUNTIME = '''
#: Elements of one (states x nodes) block evaluated at once (as smfsym.data.quadrature).
_CHUNK_ELEMENTS = 4_000_000
_NODE_CACHE = {}


def _law_rule(law, n):
    """(nodes (Q, k), weights (Q,)) of one law at n points: embedded, or a data set bound by set_data()."""
    if isinstance(law, tuple):
        data, weights = (globals()[k] for k in law)
        if data is None or weights is None:
            raise ValueError(f"the data set is not embedded in this module: call set_data() with {list(law)} first")
        return data, weights
    return law[n] if n in law else law[None]


def _rule_nodes(rule, n):
    """Tensor-product nodes and weights of a rule at n points per coordinate (positive weights only)."""
    key = (id(rule), n)
    if key not in _NODE_CACHE:
        rules = [_law_rule(law, n) for law in rule["laws"]]
        nodes = [np.asarray(r[0], dtype=float) for r in rules]
        weights = [np.asarray(r[1], dtype=float) for r in rules]
        idx = np.array(list(itertools.product(*[range(len(w)) for w in weights])))
        cols = [nd[idx[:, i]] for i, nd in enumerate(nodes)]
        w = np.prod(np.stack([wt[idx[:, i]] for i, wt in enumerate(weights)]), axis=0)
        nodes = np.concatenate(cols, axis=1)
        keep = w > 0  # far Gauss nodes whose weight underflowed: 0 * inf must not make NaN
        _NODE_CACHE[key] = (nodes[keep], w[keep])
    return _NODE_CACHE[key]


def _eval_rule(fn, rule, cols, n):
    nodes, weights = _rule_nodes(rule, n)
    out, scale, bad = rule_sums(fn, nodes, weights, cols, rule["quadrature"])
    if bad:
        warnings.warn(f"the integrand of a data mean overflowed or was undefined at some nodes for {bad} of "
                      f"{out.shape[0]} finite state(s): the mean is NaN there.", RuntimeWarning, stacklevel=3)
    return out, scale


def _mean(fn, rule, cols):
    """E over the rule for each state, refined per state as smfsym.data.quadrature.AdaptiveMean does."""
    levels = rule["levels"]
    est, scale = _eval_rule(fn, rule, cols, levels[0])
    if len(levels) == 1:
        if rule["quadrature"] and not rule.get("warned"):
            rule["warned"] = True
            warnings.warn("a quadrature mean cannot be error-checked (its caps allow no refinement).",
                          RuntimeWarning, stacklevel=3)
        return est
    todo = np.arange(est.shape[0])
    err = np.full(est.shape, np.inf)
    atol, rtol = rule["atol"], rule["rtol"]
    for n in levels[1:]:
        sub = [c[todo] for c in cols]
        fine, fscale = _eval_rule(fn, rule, sub, n)
        e = np.abs(fine - est[todo])
        est[todo] = fine
        err[todo] = e
        scale[todo] = fscale
        done = ~(e > atol + rtol * fscale)  # NaN counts as done (warned)
        e, done = confirm_cancelling(lambda c, m: _eval_rule(fn, rule, c, m), sub, n, fine, fscale, e, done,
                                     atol, rtol)
        err[todo] = e
        todo = todo[~done]
        if todo.size == 0 or not cols:
            break
    missed = np.isfinite(est) & (err > atol + rtol * scale)
    if np.any(missed):
        warnings.warn(f"a quadrature mean refined to {levels[-1]} points per coordinate missed its tolerance at "
                      f"{int(missed.sum())} of {est.size} state(s).", RuntimeWarning, stacklevel=3)
    return est


def _means(specs, cols):
    """The data means (integrand, rule) at the states ``cols``, each of their broadcast shape."""
    if not specs:
        return []
    cols = [np.asarray(c, dtype=float) for c in cols]
    sshape = np.broadcast_shapes(*[c.shape for c in cols])
    flat = [np.broadcast_to(c, sshape).ravel() for c in cols]
    return [_mean(fn, rule, flat).reshape(sshape) for fn, rule in specs]
'''

# the row sums and the cancellation check are smfsym's own functions, embedded verbatim: same numbers by
# construction
MEAN_RUNTIME = (MEAN_RUNTIME.replace("_CHUNK_ELEMENTS = 4_000_000", f"_CHUNK_ELEMENTS = {_CHUNK_ELEMENTS}\n"
                                     f"CANCELLATION = {CANCELLATION!r}")
                + "\n\n" + inspect.getsource(rule_sums) + "\n\n" + inspect.getsource(confirm_cancelling))


def doc_safe(text: str) -> str:
    """Printed expressions for a docstring of generated code: no quote or backslash can end it early."""
    return "".join(ch if ch.isprintable() else " " for ch in text).replace("\\", "/").replace('"', "'")


def provenance(sde, problem, vals: dict, eta: float, backend: str, source: str | None) -> dict:
    """What a generated module was made from, written into it as ``PROVENANCE`` (and its docstring), so a
    module found later says which smfsym, model, problem, numbers and back end it simulates."""
    from .._version import __version__

    out = {"smfsym": __version__, "model": sde.title if sde is not None else "SGD", "backend": backend,
           "eta": float(eta)}
    if problem is not None:
        out["loss"] = str(problem.loss)
        out["params"] = [str(p) for p in problem.params]
        out["data"] = [repr(law) for law in problem.laws]
        out["batch_size"] = str(problem.batch_size)
        out["sampling"] = problem.sampling
    # a non-finite number is kept as its name ("inf", "nan"): repr(float("inf")) is no Python literal
    out["values"] = {str(k): _literal(float(v)) for k, v in sorted(vals.items(), key=lambda kv: str(kv[0]))
                     if sde is None or k != sde.eta}
    if source is not None:
        out["source"] = str(source)
    return out


def _literal(v: float):
    return v if np.isfinite(v) else str(v)


def provenance_source(info: dict) -> str:
    """The docstring lines of a generated module's provenance (what :func:`provenance_constant` also binds)."""
    lines = ["", "Provenance (also PROVENANCE below):"]
    for key, value in info.items():
        lines.append(f"    {key}: " + doc_safe(value if isinstance(value, str) else repr(value)))
    return "\n".join(lines) + "\n"


def provenance_constant(info: dict) -> str:
    """The module-level ``PROVENANCE`` assignment (``repr`` of plain data: no text in it can run as code)."""
    return "\n#: what this module was generated from\nPROVENANCE = " + repr(info)


def _array(a) -> str:
    return f"np.array({np.asarray(a, dtype=float).tolist()!r})"


class MeanContext:
    """Everything about data means and data sets that one generated module shares.

    ``data_names`` maps a data set's law (by its symbols) to the names of its two arrays
    (rows, weights) in the module: the SGD sampler's names when the law is one of the
    problem's, so a single ``set_data()`` binds both.
    """

    def __init__(self, state, values: Mapping, sampler_arrays: Mapping[tuple, tuple] = (), arrays=None):
        self.state = tuple(state)
        self.values = values
        self.arrays: dict = dict(arrays or {})
        self.data_names: dict = dict(sampler_arrays)
        self.means: list = []  # (DataMean node, integrand source, rule number)
        self.rules: dict = {}  # rule key -> (rule number, rule source): means over one rule share it
        self._index: dict = {}
        self.embedded_numbers = 0

    # ------------------------------------------------------------------ data sets

    def data_arrays(self, law: Empirical) -> tuple:
        """Names of (rows, weights) of a data set in the module, registering it if new."""
        key = tuple(law.symbols)
        if key not in self.data_names:
            i = len(self.arrays) // 2
            while f"_data{i}" in self.arrays:
                i += 1
            self.arrays[f"_data{i}"] = np.ascontiguousarray(law.data, dtype=float)
            self.arrays[f"_weights{i}"] = np.asarray(law.weights, dtype=float)
            self.data_names[key] = (f"_data{i}", f"_weights{i}")
        return self.data_names[key]

    # ------------------------------------------------------------------ means

    def index(self, node: DataMean, function) -> int:
        """The module-wide number of a (bound) data mean; its integrand and rule are generated once."""
        if node in self._index:
            return self._index[node]
        inner = node.expr
        if inner.atoms(DataMean):
            raise NotImplementedError("code generation of nested data means is not supported.")
        syms = node.data_symbols
        free = inner.free_symbols - set(self.state) - set(syms)
        if free:
            raise ValueError(f"`values` must give numbers for {sorted(map(str, free))} (they appear inside {node}).")
        j = len(self.means)
        src = function(f"_integrand{j}", self.state + tuple(syms), [inner],
                       f"The integrand of data mean {j}: {doc_safe(str(node)[:200])}.", single=True)
        values = node.rule_values(self.values)
        key = (node.rule.key, tuple(values.get(p) for p in node.law_parameters))  # one rule per law values
        if key not in self.rules:
            self.rules[key] = (len(self.rules), self._rule_source(node, len(self.rules), values))
        self.means.append((node, src, self.rules[key][0]))
        self._index[node] = j
        return j

    def _rule_source(self, node, r, values) -> str:
        """The source of rule ``r``: its laws' nodes and weights at ``values`` (the mean's law parameters)."""
        rule = node.rule
        levels = rule.levels()
        laws = []
        for law in rule.laws:
            if isinstance(law, Empirical):
                laws.append(repr(self.data_arrays(law)))
                continue
            # a finite law's rule is its support whatever n: embed it once; a continuous one at every level
            # and at the other-parity n - 1 points a cancelling mean is confirmed with (confirm_cancelling)
            ns = [None] if law.is_finite else sorted(set(levels) | {n - 1 for n in levels[1:]})
            entries = []
            for n in ns:
                nodes, w = law.quadrature(levels[0] if n is None else n, values)
                self.embedded_numbers += np.size(nodes) + np.size(w)
                entries.append(f"{n!r}: ({_array(nodes)}, {_array(w)})")
            laws.append("{" + ", ".join(entries) + "}")
        if self.embedded_numbers > RULE_EMBED_LIMIT:
            raise ValueError(
                f"the quadrature rules of the data means need {self.embedded_numbers:,} embedded numbers "
                f"(limit {RULE_EMBED_LIMIT:,}); lower `Limits.max_quad_points` or `Limits.max_nodes` of the "
                "problem, or use a data set.")
        lim = rule.limits
        return (f"_RULE{r} = {{  # {rule.describe()}\n"
                f"    \"levels\": {levels!r}, \"quadrature\": {rule.is_quadrature!r}, "
                f"\"atol\": {float(lim.quad_atol)!r}, \"rtol\": {float(lim.quad_rtol)!r},\n"
                f"    \"laws\": [{', '.join(laws)}],\n}}")

    def replace(self, exprs, function) -> tuple:
        """``exprs`` with each data mean replaced by a symbol, and the numbers of those means in order."""
        found = set()
        for e in exprs:
            found |= e.atoms(DataMean)
        ordered = sorted(found, key=sp.default_sort_key)  # as smfsym.symbolic.lambdify.CompiledExprs
        idx = [self.index(node, function) for node in ordered]
        syms = {node: sp.Symbol(f"_mean{j}") for node, j in zip(ordered, idx)}
        return [e.xreplace(syms) for e in exprs], idx, [syms[n] for n in ordered]

    def source(self) -> str:
        """Integrands and rules of every data mean of the module (empty when there are none)."""
        if not self.means:
            return ""
        parts = [MEAN_RUNTIME.strip("\n")]
        parts += [src for _, src in self.rules.values()]
        parts += [integrand for _, integrand, _ in self.means]
        parts.append("#: (integrand, rule) of each data mean, by number\n_MEAN_RULES = ["
                     + ", ".join(f"(_integrand{j}, _RULE{r})" for j, (_, _, r) in enumerate(self.means)) + "]")
        return "\n\n\n".join(parts)


def specs_source(name: str, idx) -> str:
    """``NAME = [(_integrand_j, _RULE_j), ...]``: the data means one generated function needs."""
    return f"{name} = [" + ", ".join(f"_MEAN_RULES[{j}]" for j in idx) + "]"
