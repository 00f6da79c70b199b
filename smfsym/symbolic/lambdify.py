"""The one lambdify wrapper of smfsym.

``sympy.lambdify`` returns scalars (or ragged arrays) for constant entries and
knows nothing about :class:`~smfsym.data.means.DataMean`. Everything numeric in
smfsym goes through :func:`compile_exprs`, which
- binds numeric values for constants, law parameters and eta at compile time,
- turns every DataMean into a vectorised weighted sum over its rule's nodes,
- evaluates a batch of states ``(P, d)`` at once (and, if asked, a data axis),
- broadcasts every output to full shape.

Compile once per simulation, never inside a time loop.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import sympy as sp
from sympy.printing.numpy import NumPyPrinter

from .._checks import numeric_values
from ..data.means import DataMean, numpy_modules, refuse_dirac_deltas, refuse_law_derivatives
from .._checks import as_expr

__all__ = ["compile_exprs", "CompiledExprs", "HoistedExprs", "array_op_count"]


def _bind(expr, values):
    return expr.xreplace(values) if values else expr


def _cse(exprs):
    # sympy's default cse names temporaries x0, x1, ...: they would collide with
    # user symbols of the same name, so temporaries get names no user writes.
    return sp.cse(exprs, symbols=sp.numbered_symbols("_smfsym_cse"), list=isinstance(exprs, (list, tuple)))


def lambdify_safe(args, exprs, record: list | None = None, modules=None):
    """``sympy.lambdify`` with numpy, safe argument names and collision-free cse.

    ``record`` (a list) receives the cse output, ``(replacements, reduced)``: what was printed.
    ``modules`` (an array back end's :attr:`~smfsym.backends.Backend.lambdify_modules`): numpy's printer,
    fully qualified, with ``numpy`` resolving to that namespace.
    """
    # Fixed names, not Dummies: cse's grouping follows symbol hashes, and fresh Dummies would
    # make two compilations of one expression round differently (1-ulp noise between runs).
    dummies = [sp.Symbol(f"_smfsym_arg{i}") for i in range(len(args))]
    sub = dict(zip(args, dummies))
    if isinstance(exprs, (list, tuple)):
        exprs = [as_expr(e).xreplace(sub) for e in exprs]
    else:
        exprs = as_expr(exprs).xreplace(sub)
    def cse(e):
        out = _cse(e)
        if record is not None:
            record.append(out)
        return out

    if modules is None:
        modules = numpy_modules(exprs if isinstance(exprs, list) else [exprs])
        return sp.lambdify(dummies, exprs, modules=modules, cse=cse, dummify=False)
    printer = _DevicePrinter({"fully_qualified_modules": True, "inline": True, "allow_unknown_functions": True,
                              "user_functions": dict(DEVICE_USER_FUNCTIONS)})
    return sp.lambdify(dummies, exprs, modules=modules, cse=cse, dummify=False, printer=printer)


#: functions printed as ``numpy.<name>`` for an array back end (its namespace resolves them)
DEVICE_USER_FUNCTIONS = {"erf": "numpy.erf", "erfc": "numpy.erfc"}


class _DevicePrinter(NumPyPrinter):
    """numpy's printer with everything through ``numpy.<name>``, which an array back end's namespace resolves:
    Max/Min as nested maximum/minimum (sympy prints ``functools.reduce``, a module the namespace lacks), erf and
    erfc as ``numpy.erf`` (the back end's special functions, or a refusal naming them)."""

    def _nested(self, name, expr):
        args = [self._print(a) for a in expr.args]
        out = args[0]
        for a in args[1:]:
            out = f"numpy.{name}({out}, {a})"
        return out

    def _print_Max(self, expr):
        return self._nested("maximum", expr)

    def _print_Min(self, expr):
        return self._nested("minimum", expr)


def array_op_count(exprs) -> int:
    """Arithmetic operations on arrays in ``exprs``: sympy's ``count_ops`` after folding constants.

    Constant subterms (``sqrt(2)``) cost a scalar operation, not one per path, so they are
    folded to floats first; ``-a*b`` counts two (negation and product), as numpy evaluates it.

    Examples
    --------
    >>> import sympy as sp
    >>> a, b = sp.symbols("a b")
    >>> array_op_count([sp.sqrt(2) * a * b - a, -a * b])
    5
    """
    return int(sum(sp.count_ops(as_expr(e).evalf()) for e in exprs))


#: (state, node) pairs of one block of a data mean on an array back end (bounds its temporaries).
_DEVICE_MEAN_ELEMENTS = 2**24


class _DeviceExactMean:
    """E over an exact rule (a data set, a finite law) on an array back end: per state, the weighted
    sum of the integrand over the rule's nodes, in blocks of states (a row-wise reduction: a state's
    mean does not depend on its batch)."""

    def __init__(self, rule, fn, values, backend):
        nodes, weights = rule.nodes(values)
        self.fn, self.backend, self.Q = fn, backend, nodes.shape[0]
        self.nodes = [backend.asarray(nodes[None, :, j]) for j in range(nodes.shape[1])]
        self.weights = backend.asarray(weights)

    def __call__(self, cols):
        xp, Q = self.backend.xp, self.Q
        P = cols[0].shape[0] if cols else 1
        step = max(1, _DEVICE_MEAN_ELEMENTS // max(Q, 1))
        parts = []
        for lo in range(0, P, step):
            hi = min(P, lo + step)
            val = self.fn(*[xp.reshape(c[lo:hi], (hi - lo, 1)) for c in cols], *self.nodes)
            parts.append(xp.sum(self.backend.broadcast(val, (hi - lo, Q)) * self.weights, axis=1))
        return parts[0] if len(parts) == 1 else xp.concat(parts)


class _MeanEvaluator:
    """Numeric E over one DataMean's rule: inner(x, xi_nodes) @ weights."""

    def __init__(self, node: DataMean, state, values, backend=None):
        inner = _bind(node.expr, values)
        if inner.atoms(DataMean):
            raise NotImplementedError("nested data means are not supported")
        syms = node.data_symbols
        # the rule's nodes at the law parameters' values in this mean (substituted ones evaluated at `values`)
        rule_values = node.rule_values(values)
        free = inner.free_symbols - set(state) - set(syms)
        if free:
            raise ValueError(
                f"`values` must give numbers for {sorted(map(str, free))} (they appear inside {node})."
            )
        self._cse_out: list = []
        if backend is not None:
            if node.rule.is_quadrature:
                raise ValueError(f"`backend={backend.name!r}` evaluates data means over data sets and finite laws "
                                 f"(exact sums); this one is a quadrature over a continuous law "
                                 f"({node.rule.describe()}): use backend='numpy'.")
            self.fn = lambdify_safe(list(state) + list(syms), inner, self._cse_out, backend.lambdify_modules)
            self.mean = _DeviceExactMean(node.rule, self.fn, rule_values, backend)
            return
        self.fn = lambdify_safe(list(state) + list(syms), inner, self._cse_out)
        # the rule's evaluator chunks the (states x nodes) block and refines per state (error control)
        self.mean = node.rule.evaluator(self.fn, rule_values)

    def __call__(self, cols):
        return self.mean(cols)

    @property
    def op_count(self) -> int:
        """Array operations of the integrand per (state, node) pair (see :func:`array_op_count`)."""
        repl, reduced = self._cse_out[-1]
        reduced = reduced if isinstance(reduced, (list, tuple)) else [reduced]
        return array_op_count([r for _, r in repl] + list(reduced))


class CompiledExprs:
    """Numeric form of a list of sympy expressions in the state (and data) symbols.

    Calling it with states ``X`` of shape ``(P, d)`` returns ``(P, n)``; with
    ``data`` of shape ``(M, k)`` (one row per sample) it returns ``(P, M, n)``.
    """

    def __init__(self, exprs: Sequence, state: Sequence[sp.Symbol], values: Mapping | None = None,
                 data_symbols: Sequence[sp.Symbol] = (), backend=None):
        vals = {as_expr(k): sp.Float(v) for k, v in numeric_values(values).items()}
        refuse_law_derivatives(exprs)
        refuse_dirac_deltas(exprs)
        self.state = tuple(state)
        #: the array back end evaluated on (None: numpy; see :mod:`smfsym.backends`)
        self.backend = backend
        self.data_symbols = tuple(data_symbols)
        exprs = [_bind(as_expr(e), vals) for e in exprs]
        self.n = len(exprs)
        means = set()
        for e in exprs:
            means |= e.atoms(DataMean)
        self.means = []
        repl = {}
        #: the largest state index any data mean reads (-1: none), see :meth:`means_use_only`
        self._mean_reach = -1
        #: the (bound) DataMean of each entry of :meth:`mean_values`, to share values between compilations
        self.mean_nodes = []
        for i, node in enumerate(sorted(means, key=sp.default_sort_key)):
            dummy = sp.Dummy(f"mean{i}")
            repl[node] = dummy
            self.means.append((dummy, _MeanEvaluator(node, self.state, vals, backend)))
            self.mean_nodes.append(node)
            used = node.expr.free_symbols
            self._mean_reach = max([self._mean_reach] + [j for j, s in enumerate(self.state) if s in used])
        exprs = [e.xreplace(repl) if repl else e for e in exprs]
        allowed = set(self.state) | set(self.data_symbols) | {d for d, _ in self.means}
        free = set().union(*[e.free_symbols for e in exprs]) - allowed if exprs else set()
        if free:
            raise ValueError(
                f"`values` must give numbers for {sorted(map(str, free))}: they are not state variables."
            )
        args = list(self.state) + list(self.data_symbols) + [d for d, _ in self.means]
        self._cse_out: list = []
        self.fn = lambdify_safe(args, exprs, self._cse_out, None if backend is None else backend.lambdify_modules)
        if backend is not None:
            self.fn = backend.compile(self.fn)
        #: every output is the constant 0 (callers skip evaluating it)
        self.is_zero = all(e == 0 for e in exprs)

    @property
    def op_count(self) -> int:
        """Array operations per evaluation point of the lambdified code (cse replacements and
        reduced expressions, see :func:`array_op_count`); data means not included."""
        if not self._cse_out:
            return 0
        repl, reduced = self._cse_out[-1]
        reduced = reduced if isinstance(reduced, (list, tuple)) else [reduced]
        return array_op_count([r for _, r in repl] + list(reduced))

    def means_use_only(self, k: int) -> bool:
        """True when every data mean reads only the first ``k`` state symbols.

        Then means computed once at those columns serve every evaluation sharing them
        (the weak order-2 step evaluates one directional derivative at X along several
        directions: the data means, by far the dearest part, are the same each time).
        """
        return self._mean_reach < k

    def mean_values(self, state_cols: Sequence[np.ndarray], cache: dict | None = None) -> list:
        """The data means at the states (pass them to :meth:`evaluate` to reuse them over data chunks).

        ``cache`` (a dict owned by the caller, for one set of states) shares means between
        compilations: a DataMean already in it is not recomputed. Only for states whose columns
        every mean reads identically (see :meth:`means_use_only`).
        """
        if not self.means:
            return []
        if self.backend is not None:
            return self._device_mean_values(state_cols)
        state_cols = [np.asarray(c, dtype=float) for c in state_cols]
        sshape = np.broadcast_shapes(*[c.shape for c in state_cols])
        flat = [np.broadcast_to(c, sshape).ravel() for c in state_cols]
        if cache is None:
            return [ev(flat).reshape(sshape) for _, ev in self.means]
        out = []
        for node, (_, ev) in zip(self.mean_nodes, self.means):
            if node not in cache:
                cache[node] = ev(flat).reshape(sshape)
            out.append(cache[node])
        return out

    def _device_mean_values(self, state_cols) -> list:
        """:meth:`mean_values` on the back end (no cache: each compilation evaluates its own means)."""
        xp = self.backend.xp
        sshape = np.broadcast_shapes(*[tuple(c.shape) for c in state_cols])
        flat = [xp.reshape(xp.broadcast_to(c, sshape), (-1,)) for c in state_cols]
        return [xp.reshape(ev(flat), sshape) for _, ev in self.means]

    def evaluate(self, state_cols: Sequence[np.ndarray], data_cols: Sequence[np.ndarray] = (),
                 mean_vals: Sequence[np.ndarray] | None = None) -> np.ndarray:
        """Evaluate on columns that broadcast together; returns ``shape + (n,)``.

        ``mean_vals`` (from :meth:`mean_values` at the same states) skips recomputing the
        data means when one set of states is evaluated against a data set chunk by chunk.
        """
        state_cols = [np.asarray(c, dtype=float) for c in state_cols]
        data_cols = [np.asarray(c, dtype=float) for c in data_cols]
        shape = np.broadcast_shapes(*[c.shape for c in state_cols + data_cols]) if (state_cols or data_cols) else ()
        if mean_vals is None:
            mean_vals = self.mean_values(state_cols)
        outs = self.fn(*state_cols, *data_cols, *mean_vals)
        # fill one contiguous slab per output (fast), then view it with the output axis last
        res = np.empty((self.n,) + shape)
        for i, o in enumerate(outs):
            res[i] = o  # broadcasts constant entries
        return np.moveaxis(res, 0, -1)

    def evaluate_list(self, state_cols: Sequence[np.ndarray], mean_vals: Sequence[np.ndarray] | None = None,
                      shape: tuple | None = None) -> list:
        """The outputs as a list of arrays of the broadcast shape (constants as read-only views).

        No stacking into one array: the step functions combine outputs component by component.
        Outputs may be views of the inputs (an output that is an argument): never write into them.
        """
        if shape is None:
            shape = np.broadcast_shapes(*[np.shape(c) for c in state_cols]) if state_cols else ()
        if mean_vals is None:
            mean_vals = self.mean_values(state_cols)
        outs = self.fn(*state_cols, *mean_vals)
        if self.backend is not None:
            return [self.backend.broadcast(o, shape) for o in outs]
        return [o if np.shape(o) == shape else np.broadcast_to(o, shape) for o in outs]

    def __call__(self, X: np.ndarray, data: np.ndarray | None = None) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        cols = [X[:, j] for j in range(X.shape[1])]
        if data is None:
            return self.evaluate(cols)
        data = np.asarray(data, dtype=float)
        return self.evaluate([c[:, None] for c in cols], [data[None, :, j] for j in range(data.shape[1])])


def compile_exprs(exprs, state, values=None, data_symbols=()) -> "_ListView":
    """Compile ``exprs``; the result maps ``(P, d)`` states to a list of ``(P,)`` arrays.

    Examples
    --------
    >>> import numpy as np, sympy as sp
    >>> x, c = sp.symbols("x c")
    >>> f = compile_exprs([x**2, c], [x], values={c: 3.0})
    >>> [a.tolist() for a in f(np.array([[1.0], [2.0]]))]
    [[1.0, 4.0], [3.0, 3.0]]
    """
    ce = CompiledExprs(list(exprs), state, values, data_symbols)
    return _ListView(ce)


class _ListView:
    def __init__(self, ce):
        self.ce = ce

    def __call__(self, X, data=None):
        out = self.ce(X, data)
        return [out[..., i] for i in range(out.shape[-1])]


def _worth_hoisting(e) -> bool:
    # a bare symbol or a number costs nothing to pass along; anything else that reads the state does
    return not (e.is_Symbol or e.is_Number) and bool(e.free_symbols or e.atoms(DataMean))


class HoistedExprs:
    """Several lists of expressions in the state and per-list *direction* symbols, with every
    direction-free subterm hoisted into one state-only *front*.

    The front (one lambdify, cse'd over all lists: subterms shared between lists are computed
    once) is evaluated once per state; each list's *back* then sees the hoisted values as
    arguments and is evaluated on direction arrays that may carry extra leading axes (several
    directions stacked, e.g. ``(4, P)`` against states ``(P,)``): what depends on the state alone
    is never recomputed per direction. Hoisting regroups the factors of a
    product and the terms of a sum, so results agree with a direct evaluation up to
    floating-point reassociation.

    Parameters
    ----------
    terms : mapping name -> (expressions, direction symbols)
    state : sequence of sympy symbols
    values : mapping, optional
        Numbers for the other symbols (bound before hoisting).

    Examples
    --------
    >>> import numpy as np, sympy as sp
    >>> x, u = sp.symbols("x u")
    >>> h = HoistedExprs({"g": ([3 * sp.sin(x) * u + u**2], [u])}, [x])
    >>> H = h.front_values([np.array([0.5, 1.0])])
    >>> U = np.array([[1.0, 2.0], [0.0, 1.0]])  # two directions stacked on the path axis
    >>> np.allclose(h.term("g", [np.array([0.5, 1.0])], H, [U])[0], 3 * np.sin([0.5, 1.0]) * U + U**2)
    True
    """

    def __init__(self, terms: Mapping, state: Sequence[sp.Symbol], values: Mapping | None = None, backend=None):
        vals = {as_expr(k): sp.Float(v) for k, v in numeric_values(values).items()}
        refuse_law_derivatives([as_expr(e) for exprs, _ in terms.values() for e in exprs])
        refuse_dirac_deltas([as_expr(e) for exprs, _ in terms.values() for e in exprs])
        self.state = tuple(state)
        self.backend = backend
        front: list = []
        memo: dict = {}

        def hoist(e):
            if e not in memo:
                memo[e] = sp.Symbol(f"_smfsym_hoist{len(front)}")
                front.append(e)
            return memo[e]

        split = {}
        for name, (exprs, dirs) in terms.items():
            dset = set(dirs)
            split[name] = ([self._split(_bind(as_expr(e), vals), dset, hoist) for e in exprs], tuple(dirs))
        self.front = CompiledExprs(front, self.state, values, backend=backend)
        self.hoisted = tuple(memo[e] for e in front)
        index = {s: i for i, s in enumerate(self.hoisted)}
        self.backs, self._direct, self._used = {}, {}, {}
        for name, (exprs, dirs) in split.items():
            used = sorted({s for e in exprs for s in e.free_symbols if s in index}, key=index.get)
            self._used[name] = [index[s] for s in used]
            if all(e.is_Number or e in index or e in self.state for e in exprs):
                # each output is a number, a hoisted value or a state column: no call needed
                self._direct[name] = [float(e) if e.is_Number else e for e in exprs]
            self.backs[name] = CompiledExprs(exprs, self.state + dirs + tuple(used), values, backend=backend)
        self._index = index

    @classmethod
    def _split(cls, e, dirs, hoist):
        if not (e.free_symbols & dirs):
            return hoist(e) if _worth_hoisting(e) else e
        if e.is_Atom or isinstance(e, DataMean):
            return e
        if isinstance(e, (sp.Add, sp.Mul)):
            free = [a for a in e.args if not (a.free_symbols & dirs)]
            rest = [cls._split(a, dirs, hoist) for a in e.args if a.free_symbols & dirs]
            if free:
                g = e.func(*free)
                rest.insert(0, hoist(g) if _worth_hoisting(g) else g)
            return rest[0] if len(rest) == 1 else e.func(*rest, evaluate=False)
        return e.func(*[cls._split(a, dirs, hoist) for a in e.args])

    def is_zero(self, name: str) -> bool:
        return self.backs[name].is_zero

    def op_counts(self) -> dict:
        """Array operations per evaluation point: ``{"front": n, name: n, ...}`` (see :func:`array_op_count`)."""
        out = {"front": self.front.op_count}
        out.update({name: 0 if name in self._direct else b.op_count for name, b in self.backs.items()})
        return out

    def front_values(self, state_cols: Sequence[np.ndarray], mean_vals=None) -> list:
        """The hoisted values at the states (once per state, shared by every term)."""
        if not self.hoisted:
            return []
        return self.front.evaluate_list(state_cols, mean_vals)

    def term(self, name: str, state_cols: Sequence[np.ndarray], H: Sequence[np.ndarray],
             dir_cols: Sequence[np.ndarray] = ()) -> list:
        """The outputs of list ``name``, broadcast over the states and directions (views possible:
        never write into them)."""
        shape = np.broadcast_shapes(*[np.shape(c) for c in list(state_cols) + list(dir_cols)])
        direct = self._direct.get(name)
        if direct is not None:
            cols = dict(zip(self.state, state_cols))
            out = [o if isinstance(o, float) else (H[self._index[o]] if o in self._index else cols[o]) for o in direct]
            if self.backend is not None:
                return [self.backend.broadcast(o, shape) for o in out]
            return [o if np.shape(o) == shape else np.broadcast_to(o, shape) for o in out]
        used = [H[i] for i in self._used[name]]
        return self.backs[name].evaluate_list(list(state_cols) + list(dir_cols) + used, shape=shape)
