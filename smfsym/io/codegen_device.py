"""Generated simulators on an array back end (issue 19): :func:`smfsym.codegen` with ``backend="cupy"`` or
``backend="array_api_strict"``.

The module written here imports only the array library (and numpy on the host, for the seed sequences,
array_api_strict's Philox streams and the returned arrays; never smfsym). It mirrors smfsym's device path
(:mod:`smfsym.numerics.device_sde`, :mod:`smfsym.simulation.device_sgd`,
:mod:`smfsym.montecarlo.device`) operation for operation:

- every compiled expression list is printed from the very common-subexpression elimination that
  :class:`~smfsym.symbolic.lambdify.CompiledExprs` lambdifies (same argument names, same printer; ``numpy.f``
  resolves to ``xp.f`` through a copy of smfsym's namespace adapter), and the SDE's drift and noise keep
  the direction-free subterms hoisted as :class:`~smfsym.symbolic.lambdify.HoistedExprs` does;
- data means over data sets and finite laws are the same exact weighted sums on the device;
- seed block b draws from ``SeedSequence(entropy, spawn_key=(b,))`` as smfsym's device runs do (CuPy: a cuRAND
  Philox4x32-10 ``RandomState`` seeded from the block's sequence; array_api_strict: numpy's Philox copied onto
  the stand-in device), in the same shapes;
- blow-up is checked after every step as the device driver does (``on_nonfinite="raise"`` or ``"mask"``);
- ``simulate(..., scheme="weak2")`` is DeviceSDE.weak2 (explicit noise columns) or DeviceSDE.weak2_template
  (data-set noise: the actions and their derivatives as row-chunked data-set sums), term by term, and
  ``increments="discrete"`` maps each block's integers as smfsym's ``draw_device`` does.

So a generated module reproduces ``smfsym.simulate(..., options=RunOptions(backend=...))`` and
``smfsym.simulate_sgd`` bitwise from the same seed on the same back end (tested on array_api_strict).
The SME's numeric root sqrt(eta) Sigma(x)^(1/2) is :meth:`~smfsym.numerics.device_sde.DeviceSDE.root`
line by line (batched eigh, clipping, a FloatingPointError on a clearly negative eigenvalue, NaN noise for a
non-finite Sigma). What smfsym's device path refuses (quadrature means over continuous laws, laws without a
device sampler, batches drawn without replacement) is refused here too, naming it.
"""
from __future__ import annotations

import datetime
import inspect
import re
import types

import numpy as np

from .. import backends as _backends
from ..backends import _ArrayAPINames, _astype, _Namespace, _Reducible, _scalars_on_host, _select
from ..montecarlo.seeds import BLOCK
from ..numerics.compiled_sde import ROWS, NumericSDE
from ..simulation.device_sgd import _DeviceSampler, batch_mean
from ..montecarlo.grid import step_runs
from ..simulation.sde import grid
from ..symbolic.lambdify import _DEVICE_MEAN_ELEMENTS, DEVICE_USER_FUNCTIONS, CompiledExprs, HoistedExprs, _DevicePrinter
from .codegen_checks import checks_source
from .codegen_means import data_source, doc_safe, provenance_constant, provenance_source

__all__ = ["device_codegen", "DEVICE_CODEGEN_BACKENDS"]

#: The array back ends :func:`smfsym.codegen` writes modules for besides numpy.
DEVICE_CODEGEN_BACKENDS = ("cupy", "array_api_strict")


class _XpPrinter(_DevicePrinter):
    """smfsym's printer for an array back end (:func:`~smfsym.symbolic.lambdify.lambdify_safe`), with the
    module ``numpy`` written as ``_xpn`` (the namespace adapter of the generated module)."""

    def _module_format(self, fqn, register=True):
        s = super()._module_format(fqn, register)
        return "_xpn." + s[len("numpy."):] if s.startswith("numpy.") else s


def _printer():
    return _XpPrinter({"fully_qualified_modules": True, "inline": True, "allow_unknown_functions": True,
                       "user_functions": dict(DEVICE_USER_FUNCTIONS)})


def _printed(name: str, n_args: int, record, doc: str) -> str:
    """``def name(_smfsym_arg0, ...)`` from a cse record ``(replacements, reduced)`` of lambdify_safe: the
    lines smfsym lambdified, so the device evaluates the same operations in the same order."""
    reps, reduced = record
    p = _printer()
    args = ", ".join(f"_smfsym_arg{i}" for i in range(n_args))
    lines = [f"def {name}({args}):", f'    """{doc}"""']
    lines += [f"    {s} = {p.doprint(e)}" for s, e in reps]
    if isinstance(reduced, (list, tuple)):
        lines.append("    return [" + ", ".join(p.doprint(e) for e in reduced) + "]")
    else:
        lines.append("    return " + p.doprint(reduced))
    return "\n".join(lines)


class _Writer:
    """Collects the functions, host arrays and compiled-expression objects of one generated module."""

    def __init__(self, data_names: dict, arrays: dict, backend: str):
        self.parts: list = []
        self.backend = backend
        self.arrays = arrays  # name -> host array (embedded when small, else bound by set_data)
        self.data_names = data_names  # law symbols -> (rows name, weights name)
        self.n = 0

    def array(self, prefix: str, value) -> str:
        name = f"_{prefix}{self.n}"
        self.n += 1
        self.arrays[name] = np.asarray(value, dtype=float)
        return name

    def exprs(self, ce: CompiledExprs, name: str, what: str, values) -> str:
        """Source of ``_Exprs(fn, means)`` for a CompiledExprs (compiled for numpy: the same cse)."""
        n_args = len(ce.state) + len(ce.data_symbols) + len(ce.means)
        args = ", ".join(map(str, ce.state + ce.data_symbols)) + ", the data means" * bool(ce.means)
        self.parts.append(_printed(f"_{name}", n_args, ce._cse_out[-1], f"{doc_safe(what)} (arguments: "
                                                                     f"{doc_safe(args)})."))
        means = [self._mean(node, ev, f"{name}_mean{j}", values)
                 for j, (node, (_, ev)) in enumerate(zip(ce.mean_nodes, ce.means))]
        return f"_Exprs(_{name}, [{', '.join(means)}])"

    def _mean(self, node, ev, name: str, values) -> str:
        if node.rule.is_quadrature:
            _refuse(self.backend, f"a data mean over a continuous law, by quadrature ({node.rule.describe()}); the "
                    "device evaluates data means over data sets and finite laws (exact sums)")
        n_args = len(ev.fn.__code__.co_varnames[:ev.fn.__code__.co_argcount])
        self.parts.append(_printed(f"_{name}", n_args, ev._cse_out[-1],
                                   "Integrand of " + doc_safe(str(node)) + " (state, then data symbols)."))
        syms = tuple(node.data_symbols)
        if len(node.rule.laws) == 1 and syms in self.data_names:  # a data set: the arrays set_data binds
            rows, weights = self.data_names[syms]
        else:
            nodes, w = node.rule.nodes(values)
            rows, weights = self.array("nodes", nodes), self.array("nweights", w)
        return f"(_{name}, {rows!r}, {weights!r})"


# ---------------------------------------------------------------------------------------------- runtime

_HEADER = '''"""Simulator generated by smfsym on DATE for the array back end BACKEND: TITLE.

Needs only LIBRARY (and numpy on the host: seed sequences, the returned arrays and STREAMS).
Learning rate eta = ETA_REPR and all constants are bound below. States, random draws and steps stay
on the device; ``simulate``/``simulate_sgd`` return host numpy arrays (copied back at the saved times).
Seed block b (BLOCK paths) draws from SeedSequence(seed) with spawn key (b,), in smfsym's order, so the
numbers are those of smfsym.simulate(..., options=RunOptions(backend=BACKEND_REPR)) for the same seed.
A path whose state leaves |x| <= blowup_threshold (or is not finite) is reported: BlowUpError with
on_nonfinite="raise" (the default), NaN in the returned states and a RuntimeWarning with "mask".
'''

_RUNTIME_ARRAY_API_STRICT = '''
import array_api_strict as xp

#: array_api_strict's stand-in device: numpy refuses to convert its arrays, so no hidden host copy runs
_DEVICE = xp.Device("device1")
_KW = {"device": _DEVICE}


def to_numpy(a):
    """A device array as a host numpy array (float64)."""
    cpu = xp.__array_namespace_info__().default_device()
    return np.array(np.from_dlpack(xp.asarray(a, dtype=xp.float64).to_device(cpu)), dtype=float)


class _Stream:
    """Seed block stream: numpy's Philox from the block's SeedSequence, copied onto the device."""

    def __init__(self, ss):
        self.g = np.random.Generator(np.random.Philox(ss))

    def standard_normal(self, shape):
        return _asarray(self.g.standard_normal(shape))

    def random(self, shape):
        return _asarray(self.g.random(shape))

    def integers(self, high, shape):
        return xp.asarray(self.g.integers(0, high, size=shape, dtype=np.int64), **_KW)
'''

_RUNTIME_CUPY = '''
import cupy

_KW = {}


def to_numpy(a):
    """A device array as a host numpy array (float64)."""
    return np.asarray(cupy.asnumpy(a), dtype=float)


class _Stream:
    """Seed block stream: cuRAND's Philox4x32-10 (cupy.random.RandomState, method 161), seeded from the
    block's SeedSequence as smfsym's CupyBackend.generator seeds it."""

    def __init__(self, ss):
        state = ss.generate_state(2, np.uint32)
        seed = (int(state[0]) | (int(state[1]) << 32)) & (2**63 - 1)
        self.g = cupy.random.RandomState(seed, method=161)  # CURAND_RNG_PSEUDO_PHILOX4_32_10

    def standard_normal(self, shape):
        return self.g.standard_normal(size=shape, dtype=xp.float64)

    def random(self, shape):
        return self.g.random_sample(size=shape, dtype=xp.float64)

    def integers(self, high, shape):
        return self.g.randint(0, high, size=shape)
'''

_RUNTIME = '''
BLOCK = BLOCK_VALUE
#: (state, node) pairs of one block of a data mean on the device (as smfsym.symbolic.lambdify)
_MEAN_ELEMENTS = MEAN_ELEMENTS_VALUE
#: Data rows per chunk of the data-set noise sums (as smfsym.numerics.compiled_sde.ROWS)
ROWS = ROWS_VALUE
_DEV = {}


class BlowUpError(FloatingPointError):
    """A path left |x| <= blowup_threshold (or became non-finite)."""


def _asarray(a):
    return xp.asarray(np.asarray(a, dtype="float64"), **_KW)


def _full(shape, value, dtype=None):
    return xp.full(shape, value, dtype=xp.float64 if dtype is None else dtype, **_KW)


def _broadcast(value, shape):
    """An output of a compiled function (an array or a constant number) broadcast to ``shape``."""
    if isinstance(value, (int, float)):
        return _full(shape, float(value))
    return value if tuple(value.shape) == tuple(shape) else xp.broadcast_to(value, shape)


def _dev(name, kind="array"):
    """The device copy of a host array of this module (made once; again after set_data)."""
    key = (name, kind)
    if key not in _DEV:
        a = globals()[name]
        if a is None:
            raise ValueError(f"the data set is not embedded in this module: call set_data() with {name!r} first")
        if kind == "columns":  # nodes of a data mean, one (1, Q) array per data coordinate
            _DEV[key] = [_asarray(a[None, :, j]) for j in range(a.shape[1])]
        elif kind == "data":  # data rows, one (M,) column per coordinate
            _DEV[key] = [_asarray(a[:, j]) for j in range(a.shape[1])]
        elif kind == "sqrt":
            _DEV[key] = _asarray(np.sqrt(a))
        elif kind == "cuts":  # row i is drawn for cuts[i-1] <= U < cuts[i]
            _DEV[key] = _asarray(np.cumsum(a / a.sum())[:-1])
        else:
            _DEV[key] = _asarray(a)
    return _DEV[key]


def _exact_mean(fn, rows, weights, cols):
    """E over an exact rule (a data set, a finite law): per state, the weighted sum over its nodes."""
    nodes, w = _dev(rows, "columns"), _dev(weights)
    Q = w.shape[0]
    P = cols[0].shape[0] if cols else 1
    step = max(1, _MEAN_ELEMENTS // max(Q, 1))
    parts = []
    for lo in range(0, P, step):
        hi = min(P, lo + step)
        val = fn(*[xp.reshape(c[lo:hi], (hi - lo, 1)) for c in cols], *nodes)
        parts.append(xp.sum(_broadcast(val, (hi - lo, Q)) * w, axis=1))
    return parts[0] if len(parts) == 1 else xp.concat(parts)


class _Exprs:
    """A compiled expression list (smfsym.symbolic.lambdify.CompiledExprs on a back end) and its data means."""

    def __init__(self, fn, means=()):
        self.fn, self.means = fn, list(means)

    def mean_values(self, cols):
        if not self.means:
            return []
        sshape = np.broadcast_shapes(*[tuple(c.shape) for c in cols])
        flat = [xp.reshape(xp.broadcast_to(c, sshape), (-1,)) for c in cols]
        return [xp.reshape(_exact_mean(fn, rows, w, flat), sshape) for fn, rows, w in self.means]

    def evaluate_list(self, cols, mean_vals=None, shape=None):
        if shape is None:
            shape = np.broadcast_shapes(*[tuple(c.shape) for c in cols]) if cols else ()
        if mean_vals is None:
            mean_vals = self.mean_values(cols)
        return [_broadcast(o, shape) for o in self.fn(*cols, *mean_vals)]


class _Hoisted:
    """Expression lists in the state and direction symbols with their direction-free subterms hoisted into one
    front evaluated once per state (smfsym.symbolic.lambdify.HoistedExprs)."""

    def __init__(self, front, backs, direct, used):
        self.front, self.backs, self.direct, self.used = front, backs, direct, used

    def front_values(self, cols):
        return [] if self.front is None else self.front.evaluate_list(cols)

    def term(self, name, cols, H, dirs=()):
        shape = np.broadcast_shapes(*[tuple(c.shape) for c in list(cols) + list(dirs)])
        direct = self.direct.get(name)
        if direct is not None:  # each output a number, a hoisted value ("H", i) or a state column ("X", i)
            out = [o if isinstance(o, float) else (H[o[1]] if o[0] == "H" else cols[o[1]]) for o in direct]
            return [_broadcast(o, shape) for o in out]
        used = [H[i] for i in self.used[name]]
        return self.backs[name].evaluate_list(list(cols) + list(dirs) + used, shape=shape)


def _generators(ss, first, count):
    """The streams of seed blocks first .. first + count - 1."""
    return [_Stream(np.random.SeedSequence(ss.entropy, spawn_key=tuple(ss.spawn_key) + (b,)))
            for b in range(first, first + count)]


def _check(X, ok, lost_at, n, bound):
    """Mark paths beyond ``bound`` (or non-finite) after step n as lost, and zero them (as smfsym's device loop)."""
    fine = xp.all(xp.reshape(xp.abs(X) <= bound, (X.shape[0], -1)), axis=1)
    lost_at = xp.where(ok & ~fine, n, lost_at)
    ok = ok & fine
    X = xp.where(xp.reshape(ok, (ok.shape[0],) + (1,) * (X.ndim - 1)), X, 0.0)
    return X, ok, lost_at


def _losses(lost_at):
    """(paths lost, first step of a loss): one host copy of two numbers."""
    lost = lost_at > 0
    n_lost = int(xp.sum(xp.astype(lost, xp.int64)))
    return n_lost, (int(xp.min(xp.where(lost, lost_at, 2**62))) if n_lost else None)


def _report(n_lost, first, n_paths, on_nonfinite, label, time_of, bound):
    """Raise (or warn, with on_nonfinite="mask") when paths were lost."""
    if n_lost == 0:
        return
    msg = (f"non-finite state at step {first} ({label} = {time_of(first):.6g}) in {n_lost} of {n_paths} "
           f"paths (|state| > {bound:.3g} counts as non-finite)")
    if on_nonfinite == "raise":
        raise BlowUpError(msg + "; reduce the step or pass on_nonfinite='mask' to drop those paths.")
    warnings.warn(msg + ": they are NaN in the returned states.", RuntimeWarning, stacklevel=4)


def _run_chunk(x0, steps, index, step, gens, sizes, states, on_nonfinite, bound, label, time_of):
    """One chunk of seed blocks on the device; its saved states go into the host array ``states``."""
    P = sum(sizes)
    X = xp.zeros((P,) + tuple(x0.shape), dtype=xp.float64, **_KW) + x0
    ok = _full((P,), True, dtype=xp.bool)
    lost_at = _full((P,), 0, dtype=xp.int64)  # 0: alive; n: lost at step n

    def save(si):
        if on_nonfinite == "raise":
            _report(*_losses(lost_at), P, on_nonfinite, label, time_of, bound)
        states[si] = to_numpy(xp.where(xp.reshape(ok, (P,) + (1,) * x0.ndim), X, float("nan")))

    si = 0
    while si < len(index) and index[si] == 0:
        save(si)
        si += 1
    for n, h in enumerate(steps, start=1):
        X = step(X, h, gens, sizes)
        X, ok, lost_at = _check(X, ok, lost_at, n, bound)
        while si < len(index) and index[si] == n:
            save(si)
            si += 1
    return _losses(lost_at)


def _run(x0, n_paths, seed, steps, index, step, on_nonfinite="raise", blowup_threshold=1e100, label="t",
         time_of=float, chunk_paths=None):
    """Drive step(X, h, gens, sizes) on the device over the step sizes; host states after the steps in ``index``.

    Paths run in chunks of whole seed blocks (``chunk_paths`` rounded up to BLOCK; default: all at once):
    every block draws its own stream, so the numbers do not depend on the chunking.
    """
    if on_nonfinite not in ("raise", "mask"):
        raise ValueError(f"`on_nonfinite` must be 'raise' or 'mask'; got {on_nonfinite!r}.")
    bound = min(float(blowup_threshold), float(np.finfo(np.float64).max))
    x0 = _asarray(np.asarray(x0, dtype=float))
    n_blocks = -(-n_paths // BLOCK)
    per = n_blocks if chunk_paths is None else -(-int(chunk_paths) // BLOCK)
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    states = np.empty((len(index), n_paths) + tuple(x0.shape))
    n_lost, first = 0, None
    for b0 in range(0, n_blocks, per):
        nb = min(per, n_blocks - b0)
        lo, hi = b0 * BLOCK, min(n_paths, (b0 + nb) * BLOCK)
        sizes = [min(BLOCK, n_paths - b * BLOCK) for b in range(b0, b0 + nb)]
        lost, at = _run_chunk(x0, steps, index, step, _generators(ss, b0, nb), sizes, states[:, lo:hi],
                              on_nonfinite, bound, label, time_of)
        n_lost += lost
        first = at if first is None or (at is not None and at < first) else first
    _report(n_lost, first, n_paths, on_nonfinite, label, time_of, bound)
    return states
'''


def _runtime(backend: str, arrays: dict, embed_limit: int) -> str:
    if backend == "cupy":
        own = _RUNTIME_CUPY + "\n\n" + "\n\n".join(inspect.getsource(f) for f in (_ArrayAPINames, _astype))
        own += "\n\nxp = _ArrayAPINames(cupy)  # the Array API names CuPy lacks, filled in as smfsym does"
    else:
        own = _RUNTIME_ARRAY_API_STRICT
    adapter = "\n\n".join(inspect.getsource(f) for f in (_Namespace, _Reducible, _select, _scalars_on_host,
                                                          batch_mean))
    # the table of Piecewise helpers (sympy prints a Piecewise with numpy's select and logical_and.reduce)
    adapter += "\n\n" + re.search(r"^_PIECEWISE = \{.*?\}\n", inspect.getsource(_backends), re.S | re.M).group(0)
    special = ("\n\ntry:  # erf and erfc, as smfsym evaluates them on CuPy\n    import cupyx.scipy.special as _special\n"
               "except ImportError:\n    _special = None" if backend == "cupy" else "\n\n_special = None")
    adapter += special + ("\n\n#: what ``numpy.f`` in smfsym's printed expressions resolves to\n"
                          "_xpn = _Namespace(xp, None, _special)")
    body = (_RUNTIME.replace("BLOCK_VALUE", str(BLOCK)).replace("MEAN_ELEMENTS_VALUE", str(_DEVICE_MEAN_ELEMENTS))
            .replace("ROWS_VALUE", str(ROWS)))
    data = data_source(arrays, embed_limit, "    _DEV.clear()  # the device copies of the data arrays")
    grids = inspect.getsource(step_runs) + "\n\n" + inspect.getsource(grid)
    return "\n\n\n".join(p.strip("\n") for p in [own, adapter, body, grids, checks_source(), data])


# ---------------------------------------------------------------------------------------------- the SDE

_SDE_STEP = '''
def _cols(X):
    return [X[..., i] for i in range(D)]


def _dir_cols(Z, X):
    """Columns of increments Z (..., M, P) as M arrays broadcasting against the state columns of X (P, [n,] D)."""
    tail = (1,) * (X.ndim - 2)
    out = []
    for k in range(Z.shape[-2]):
        c = Z[..., k, :]
        out.append(xp.reshape(c, tuple(c.shape) + tail) if tail else c)
    return out


def _draw(gens, sizes, k=1, discrete=None):
    """One step's increments on the device, shape (k, M, P), block by block (smfsym's draw_device): standard
    normals, or with ``discrete`` (a kind per draw) uniform integers on {0, ..., 5} mapped to two-point
    (+-1 by parity) or three-point (+-sqrt(3) for 0, 1; 0 otherwise) variables."""
    if discrete is None:
        parts = [g.standard_normal((k, M, s)) for g, s in zip(gens, sizes)]
        return parts[0] if len(parts) == 1 else xp.concat(parts, axis=-1)
    parts = [g.integers(6, (k, M, s)) for g, s in zip(gens, sizes)]
    i = parts[0] if len(parts) == 1 else xp.concat(parts, axis=-1)
    rows = []
    for j, kind in enumerate(discrete):
        ij = i[j, ...]
        if kind == "two":
            rows.append(1.0 - 2.0 * xp.astype(ij % 2, xp.float64))
        else:
            rows.append(math.sqrt(3.0) * (xp.astype(ij == 1, xp.float64) - xp.astype(ij == 0, xp.float64)))
    return rows[0][None, ...] if len(rows) == 1 else xp.stack(rows, axis=0)


#: scheme -> (draws per step, the discrete kind of each draw), as smfsym's solvers declare them
_SCHEMES = {"euler": (1, ("two",)), "weak2": (4, ("three", "two", "two", "two"))}


def simulate(x0, t_end, n_paths, seed, dt=ETA / 10, save_at=None, on_nonfinite="raise", blowup_threshold=1e100,
             chunk_paths=None, scheme="euler", increments="gaussian"):
    """Paths on the device: (times, host states of shape (n_times, n_paths, [n_points,] D)).

    ``scheme`` "euler" (Euler-Maruyama, weak order 1) or "weak2" (smfsym's simplified weak Taylor 2.0 step,
    where this module has it); ``increments`` "gaussian" or "discrete" (two-point for euler, three- and
    two-point for weak2). An (n, D) x0 runs the n-point motion (one noise for all points). ``chunk_paths``
    bounds the paths on the device at once (whole seed blocks; the numbers do not depend on it).
    """
    if scheme not in _SCHEMES:
        raise ValueError(f"`scheme` must be one of {sorted(_SCHEMES)}; got {scheme!r}.")
    if scheme == "weak2" and NO_WEAK2:
        raise ValueError(f"`scheme='weak2'`: {NO_WEAK2}")
    if increments not in ("gaussian", "discrete"):
        raise ValueError(f"`increments` must be 'gaussian' or 'discrete'; got {increments!r}.")
    k, kinds = _SCHEMES[scheme]
    kinds = kinds if increments == "discrete" else None
    step_fn = euler_step if scheme == "euler" else globals()["weak2_step"]
    saves, dt = _time_arguments(t_end, dt, save_at)
    x0, n_paths, seed, blowup_threshold, chunk_paths = _run_arguments(x0, D, n_paths, seed, len(saves), on_nonfinite,
                                                                      blowup_threshold, chunk_paths)
    steps, index, times = grid(saves, dt)
    step_times = np.concatenate([[0.0], np.cumsum(steps)])

    def step(X, h, gens, sizes):
        return step_fn(X, float(h), _draw(gens, sizes, k, kinds) if M else None)

    return times, _run(x0, n_paths, seed, steps, index, step, on_nonfinite, blowup_threshold, "t",
                       lambda n: float(step_times[n]), chunk_paths)
'''

_EULER_MATRIX = '''
def drift(X):
    """b(X) on the device for states X of shape (..., D)."""
    xc = _cols(X)
    return xp.stack(_PLAN.term("drift", xc, _PLAN.front_values(xc)), axis=-1)


def euler_step(X, dt, Z):
    """Euler-Maruyama (weak order 1): X + b dt + sigma(X) sqrt(dt) Z[0], Z of shape (1, M, P)."""
    xc = _cols(X)
    H = _PLAN.front_values(xc)
    b = _PLAN.term("drift", xc, H)
    if not M:
        return xp.stack([xc[i] + dt * b[i] for i in range(D)], axis=-1)
    N = _PLAN.term("noise", xc, H, _dir_cols(Z[0, ...], X))
    sq = math.sqrt(dt)
    return xp.stack([xc[i] + dt * b[i] + sq * N[i] for i in range(D)], axis=-1)
'''

_EULER_TEMPLATE = '''
def drift(X):
    """b(X) on the device for states X of shape (..., D)."""
    return xp.stack(_FRONT.evaluate_list(_cols(X))[:D], axis=-1)


def euler_step(X, dt, Z):
    """Euler on data-set noise sigma(X) u = SCALE sum_i sqrt(w_i) u_i (C0(X) + r(X, xi_i)); Z of shape (1, M, P).
    Rows in chunks of ROWS (the sums accumulate in row order, as smfsym's device step)."""
    data, sw = _dev(DATA_NAME, "data"), _dev(WEIGHTS_NAME, "sqrt")
    xc = _cols(X)
    vals = _FRONT.evaluate_list(xc)
    b, C0 = vals[:D], vals[D:]
    P, M_rows = X.shape[0], sw.shape[0]
    tail = (1,) * (X.ndim - 2)
    wU = xp.permute_dims(Z[0, ...], (1, 0)) * sw  # (P, M)
    total = xp.reshape(xp.sum(wU, axis=1), (P,) + tail)
    xr = [xp.reshape(c, tuple(c.shape) + (1,)) for c in xc]  # (P, [n,] 1) against rows (R,)
    mv = [xp.reshape(v, tuple(v.shape) + (1,)) for v in _ROWS.mean_values(xc)] if _ROWS.means else []
    acc = [C0[i] * total for i in range(D)]
    for r0 in range(0, M_rows, ROWS):
        r1 = min(M_rows, r0 + ROWS)
        R = _ROWS.evaluate_list(xr + [c[r0:r1] for c in data], mean_vals=mv, shape=tuple(X.shape[:-1]) + (r1 - r0,))
        w = xp.reshape(wU[:, r0:r1], (P,) + tail + (r1 - r0,))
        acc = [acc[i] + xp.sum(R[i] * w, axis=-1) for i in range(D)]
    sq = math.sqrt(dt) * SCALE
    return xp.stack([xc[i] + dt * b[i] + sq * acc[i] for i in range(D)], axis=-1)
'''


_WEAK2_MATRIX = '''
def weak2_step(X, dt, Z):
    """The simplified weak Taylor 2.0 step (smfsym's WeakTaylor2, as DeviceSDE.weak2); Z of shape (4, M, P):
    dW / sqrt(dt), zeta, alpha, beta."""
    xc = _cols(X)
    H = _PLAN2.front_values(xc)
    b = _PLAN2.term("drift", xc, H)
    if not M:
        Db_b = _PLAN2.term("da", xc, H, b)
        return xp.stack([xc[i] + dt * b[i] + 0.5 * dt**2 * Db_b[i] for i in range(D)], axis=-1)
    sq = math.sqrt(dt)
    N01 = _PLAN2.term("noise", xc, H, _dir_cols(Z[0:2, ...], X))  # D arrays (2, P[, n])
    N23 = _PLAN2.term("noise", xc, H, _dir_cols(Z[2:4, ...], X))
    v = [dt * b[i] + sq * N01[i][0, ...] for i in range(D)]  # dt b + sigma dW
    z0 = _dir_cols(Z[0, ...], X)
    acc = [xc[i] + v[i] for i in range(D)]

    def add(c, terms):
        for i in range(D):
            acc[i] = acc[i] + c * terms[i]

    add(0.5 * dt, _PLAN2.term("da", xc, H, v))
    add(0.5 * sq, _PLAN2.term("dg", xc, H, v + z0))
    add(-0.5 * dt, _PLAN2.term("ito", xc, H))
    s_zeta = [N01[i][1, ...] for i in range(D)]
    if "d2a" not in _ZERO2:
        add(0.25 * dt**2, _PLAN2.term("d2a", xc, H, s_zeta))
    if "d2g" not in _ZERO2:
        add(0.25 * dt * sq, _PLAN2.term("d2g", xc, H, s_zeta + z0))
    # Levy-area surrogate: directions (sigma alpha, sigma beta) against increments (beta, alpha)
    swapped = xp.stack([Z[3, ...], Z[2, ...]], axis=0)
    area = _PLAN2.term("dg", xc, H, [N23[i] for i in range(D)] + _dir_cols(swapped, X))
    c = 0.5 * dt / math.sqrt(2.0)
    return xp.stack([acc[i] + c * (area[i][0, ...] - area[i][1, ...]) for i in range(D)], axis=-1)
'''


_WEAK2_TEMPLATE = '''
def _row_sums(ce, X, xc, wU, dirs=()):
    """sum_i wU[:, i] e(X, [V,] xi_i) for per-row expressions ce, rows in chunks of ROWS (in row order)."""
    data = _dev(_DATA_NAMES[0], "data")
    P, M_rows = wU.shape
    tail = (1,) * (X.ndim - 2)
    xr = [xp.reshape(c, tuple(c.shape) + (1,)) for c in list(xc) + list(dirs)]
    mv = [xp.reshape(v, tuple(v.shape) + (1,)) for v in ce.mean_values(list(xc) + list(dirs))] if ce.means else []
    acc = None
    for r0 in range(0, M_rows, ROWS):
        r1 = min(M_rows, r0 + ROWS)
        R = ce.evaluate_list(xr + [c[r0:r1] for c in data], mean_vals=mv, shape=tuple(X.shape[:-1]) + (r1 - r0,))
        w = xp.reshape(wU[:, r0:r1], (P,) + tail + (r1 - r0,))
        part = [xp.sum(R[i] * w, axis=-1) for i in range(D)]
        acc = part if acc is None else [acc[i] + part[i] for i in range(D)]
    return acc


def _action(X, xc, H, U, order, V=None):
    """D^order_V (sigma(X) U) for data-set noise (DeviceSDE.dataset_action); U of shape (M, P)."""
    sw = _dev(_DATA_NAMES[1], "sqrt")
    dirs = [] if order == 0 else list(V)
    C = _PLAN2.term(("c0", "dc0", "d2c0")[order], xc, H, dirs)
    wU = xp.permute_dims(U, (1, 0)) * sw  # (P, M)
    total = xp.reshape(xp.sum(wU, axis=1), (X.shape[0],) + (1,) * (X.ndim - 2))
    S = _row_sums(_ROWS2[order], X, xc, wU, dirs)
    return [SCALE * (C[i] * total + S[i]) for i in range(D)]


def weak2_step(X, dt, Z):
    """The weak order-2 step on data-set noise (DeviceSDE.weak2_template, the same terms in the same order);
    Z of shape (4, M, P): dW / sqrt(dt), zeta, alpha, beta."""
    xc = _cols(X)
    H = _PLAN2.front_values(xc)
    sq = math.sqrt(dt)
    N0, Nz, Na, Nb = (_action(X, xc, H, Z[k, ...], 0) for k in range(4))
    b = _PLAN2.term("drift", xc, H)
    v = [dt * b[i] + sq * N0[i] for i in range(D)]  # dt b + sigma dW
    G10 = _action(X, xc, H, Z[0, ...], 1, v)
    Gab = _action(X, xc, H, Z[3, ...], 1, Na)  # D_{sigma alpha}(sigma beta)
    Gba = _action(X, xc, H, Z[2, ...], 1, Nb)
    G2 = _action(X, xc, H, Z[0, ...], 2, Nz)
    da, ito, d2a = _PLAN2.term("da", xc, H, v), _PLAN2.term("ito", xc, H), _PLAN2.term("d2a", xc, H, Nz)
    c = 0.5 * dt / math.sqrt(2.0)
    out = []
    for i in range(D):
        o = xc[i] + v[i]
        o = o + 0.5 * dt * da[i]
        o = o + 0.5 * sq * G10[i]
        o = o + -0.5 * dt * ito[i]
        o = o + 0.25 * dt**2 * d2a[i]
        o = o + 0.25 * dt * sq * G2[i]
        out.append(o + c * (Gab[i] - Gba[i]))
    return xp.stack(out, axis=-1)
'''


_EULER_SQRT = '''
def drift(X):
    """b(X) on the device for states X of shape (..., D)."""
    return xp.stack(_SQRT.evaluate_list(_cols(X))[:D], axis=-1)


def root(S):
    """Symmetric square root of Sigma S (..., D, D) on the device (smfsym's DeviceSDE.root): a batched eigh,
    eigenvalues down to -1e-8 times the largest |eigenvalue| clipped to 0, a clearly negative one a
    FloatingPointError, a non-finite Sigma a NaN root (the path is then reported as lost)."""
    finite = xp.all(xp.isfinite(S), axis=(-2, -1))
    fin = xp.reshape(finite, tuple(finite.shape) + (1, 1))
    lam, V = xp.linalg.eigh(xp.where(fin, S, 0.0))
    scale = xp.max(xp.abs(lam), axis=-1, keepdims=True)
    tol = max(1e-8, 64 * float(xp.finfo(lam.dtype).eps))  # 1e-8 in float64
    neg = lam < -tol * xp.maximum(scale, 1e-300)
    if bool(xp.any(neg)):  # one host copy per step
        raise FloatingPointError(
            f"Sigma(x) has clearly negative eigenvalues (min {float(xp.min(lam)):.3g}) at some state: "
            f"it is not a covariance there (backend {BACKEND_REPR!r}).")
    R = xp.matmul(V * xp.sqrt(xp.maximum(lam, 0.0))[..., None, :], xp.matrix_transpose(V))
    return xp.where(fin, R, float("nan"))


def _drift_noise(X, xc, Z0):
    """Drift b(X) and noise SCALE Sigma(X)^(1/2) Z0 (D arrays each); Z0 of shape (M, P)."""
    vals = _SQRT.evaluate_list(xc)
    lead = tuple(X.shape[:-1])
    S = xp.reshape(xp.stack(vals[D:], axis=-1), lead + (D, D))
    z = xp.reshape(xp.permute_dims(Z0, (1, 0)), (X.shape[0],) + (1,) * (X.ndim - 2) + (D, 1))
    N = xp.matmul(root(S), z)[..., 0] * SCALE
    return vals[:D], [N[..., i] for i in range(D)]


def euler_step(X, dt, Z):
    """Euler-Maruyama (weak order 1): X + b dt + SCALE Sigma(X)^(1/2) sqrt(dt) Z[0], Z of shape (1, M, P)."""
    xc = _cols(X)
    b, N = _drift_noise(X, xc, Z[0, ...])
    sq = math.sqrt(dt)
    return xp.stack([xc[i] + dt * b[i] + sq * N[i] for i in range(D)], axis=-1)
'''


def _refuse(backend: str, what: str):
    raise ValueError(f"`backend={backend!r}`: {what}, which smfsym's device path does not simulate either; "
                     "generate the module with backend='numpy'.")


def _sde_device_code(sde, vals, w: _Writer, backend: str) -> str:
    """Constants, compiled plans and the Euler step of an SDE on the device (as DeviceSDE.euler)."""
    n = NumericSDE(sde, vals)
    out = [f"D = {n.d}  # state dimension\nM = {n.m}  # independent Brownian motions (data rows for data-set noise)"]
    if n.kind == "sqrt":
        fused = CompiledExprs(list(n.drift_exprs) + list(n.sigma_exprs), n.x, n.values)
        src = w.exprs(fused, "sqrt_plan", "Drift entries, then the D x D entries of Sigma(x) row by row", n.values)
        out.append(f"SCALE = {n.scale!r}  # the noise is SCALE * Sigma(x)^(1/2) dW\n_SQRT = {src}")
        out.append(_EULER_SQRT.replace("BACKEND_REPR", repr(backend)))
    elif n.kind == "template":
        law = sde.diffusion.law
        c0, r = n._template_parts
        front = w.exprs(CompiledExprs(list(n.drift_exprs) + list(c0), n.x, n.values), "front",
                        "Drift entries, then the row-free part C0(x) of the noise column", n.values)
        rows = CompiledExprs(r, n.x, n.values, law.symbols)
        if rows.means and not rows.means_use_only(n.d):  # pragma: no cover - refused by smfsym's device path too
            _refuse(backend, "a data mean inside a per-row term of the noise")
        rows_src = w.exprs(rows, "rows", "The per-row part r(x, xi) of the noise column", n.values)
        names = w.data_names.get(tuple(law.symbols))
        if names is None:
            names = (w.array("data", n.data), w.array("weights", np.asarray(law.weights, dtype=float)))
        out.append(f"SCALE = {n.scale!r}\n_FRONT = {front}\n_ROWS = {rows_src}\n_DATA_NAMES = {tuple(names)!r}")
        out.append(_EULER_TEMPLATE.replace("DATA_NAME", repr(names[0])).replace("WEIGHTS_NAME", repr(names[1])))
    else:
        plan = HoistedExprs({"drift": (n.drift_exprs, ()), "noise": (n.noise_exprs, n.u)}, n.x, n.values)
        out.append(_plan_code(plan, n, w))
        out.append(_EULER_MATRIX)
    no_weak2 = _weak2_code(n, w, out)
    out.append(f"#: why this module has no weak2 step (empty: it has one)\nNO_WEAK2 = {no_weak2!r}")
    out.append(_SDE_STEP)
    return "\n\n\n".join(o.strip("\n") for o in out)


def _weak2_code(n: NumericSDE, w: _Writer, out: list) -> str:
    """Append the weak order-2 plan and step of explicit noise columns to ``out`` (DeviceSDE.weak2_plan); the
    reason there is none otherwise (smfsym's own refusal, or data-set noise: not generated yet)."""
    try:
        E = n._dataset_weak2_exprs if n.kind == "template" else n._weak2_exprs
    except (ValueError, NotImplementedError) as e:  # the numeric root: smfsym refuses weak2 there too
        return str(e)
    if n.kind == "template":
        return _weak2_template_code(n, w, out, E)
    v, u = E["v"], n.u
    plan = HoistedExprs({"drift": (n.drift_exprs, ()), "ito": (E["ito"], ()), "noise": (n.noise_exprs, u),
                         "da": (E["da"], v), "d2a": (E["d2a"], E["w"]), "dg": (E["dg"], v + u),
                         "d2g": (E["d2g"], E["w"] + u)}, n.x, n.values)
    zero = sorted(k for k in ("d2a", "d2g") if plan.is_zero(k))
    out.append(_plan_code(plan, n, w, "_PLAN2", "w2_") + f"\n_ZERO2 = {zero!r}  # terms that vanish identically")
    out.append(_WEAK2_MATRIX)
    return ""


def _weak2_template_code(n: NumericSDE, w: _Writer, out: list, E: dict) -> str:
    """The weak order-2 plan and step of data-set noise (DeviceSDE.dataset_weak2_plan, weak2_template)."""
    plan = HoistedExprs(E["terms"], n.x, n.values)
    rows = []
    for k, (e, st) in enumerate(E["rows"]):
        ce = CompiledExprs(e, st, n.values, E["data"])
        if ce.means and not ce.means_use_only(n.d):  # pragma: no cover - refused by smfsym's device path too
            return "a data mean inside a per-row term of the noise's derivatives"
        rows.append(w.exprs(ce, f"w2_rows{k}", ("r", "D_v r", "D^2_w r")[k] + "(x, xi), the per-row part", n.values))
    out.append(_plan_code(plan, n, w, "_PLAN2", "w2_") + "\n_ROWS2 = [" + ", ".join(rows) + "]  # r, D_v r, D^2_w r")
    out.append(_WEAK2_TEMPLATE)
    return ""


_WHAT = {"c0": "The row-free part C0 of the noise column", "dc0": "D_v C0", "d2c0": "D^2_w C0",
         "drift": "The drift", "noise": "sigma(x) u", "ito": "The Ito-Stratonovich vector sum_j D_{sigma_j} sigma_j",
         "da": "D_v b", "d2a": "D^2_w b", "dg": "D_v (sigma u)", "d2g": "D^2_w (sigma u)"}


def _plan_code(plan: HoistedExprs, n, w: _Writer, var: str = "_PLAN", prefix: str = "") -> str:
    """``_PLAN = _Hoisted(...)``: the hoisted front and the backs (drift and noise; weak2's terms)."""
    front = w.exprs(plan.front, prefix + "front", "The direction-free subterms, once per state", n.values) \
        if plan.hoisted else "None"
    backs, direct = {}, {}
    for name in plan.backs:
        if name in plan._direct:
            direct[name] = [float(o) if isinstance(o, float) else
                            (("H", plan._index[o]) if o in plan._index else ("X", list(n.x).index(o)))
                            for o in plan._direct[name]]
        else:
            what = _WHAT[name] + " on the hoisted values"
            backs[name] = w.exprs(plan.backs[name], prefix + name, what, n.values)
    backs_src = "{" + ", ".join(f"{k!r}: {v}" for k, v in backs.items()) + "}"
    return f"{var} = _Hoisted({front}, {backs_src}, {direct!r}, {plan._used!r})"


# ---------------------------------------------------------------------------------------------- SGD

_SGD = '''
def sample(gens, sizes, B=BATCH):
    """Data columns on the device, each (P, B): every seed block draws its own rows (as smfsym)."""
    cols = []
    for draw in _LAWS:
        parts = [draw(g, s, B) for g, s in zip(gens, sizes)]
        arr = parts[0] if len(parts) == 1 else xp.concat(parts, axis=1)
        cols += [arr[j, ...] for j in range(arr.shape[0])]
    return cols


def sgd_step(X, gens, sizes, eta=ETA):
    """x <- x - eta * (batch mean of grad f) on the device; (P, n, DIM) states share their batch."""
    data = sample(gens, sizes)
    xc = [X[..., i][..., None] for i in range(DIM)]  # (P, [n,] 1)
    dc = data if X.ndim == 2 else [xp.reshape(c, (c.shape[0], 1, c.shape[1])) for c in data]
    g = _GRAD.evaluate_list(xc + dc, mean_vals=[], shape=tuple(X.shape[:-1]) + (BATCH,))
    g = [batch_mean(xp, gi) for gi in g]
    return xp.stack([X[..., i] - eta * g[i] for i in range(DIM)], axis=-1)


def simulate_sgd(x0, n_steps, n_paths, seed, save_at=None, eta=ETA, on_nonfinite="raise", blowup_threshold=1e100,
                 chunk_paths=None):
    """SGD chains on the device: (times, host states of shape (n_times, n_paths, [n_points,] DIM))."""
    n_steps, idx, eta = _step_arguments(n_steps, save_at, eta)
    x0, n_paths, seed, blowup_threshold, chunk_paths = _run_arguments(x0, DIM, n_paths, seed, len(idx), on_nonfinite,
                                                                      blowup_threshold, chunk_paths)
    states = _run(x0, n_paths, seed, np.full(n_steps, eta), idx, lambda X, h, gens, sizes: sgd_step(X, gens, sizes, eta),
                  on_nonfinite, blowup_threshold, "t", lambda n: n * eta, chunk_paths)
    return np.array(idx) * eta, states
'''


def _sampler_code(j: int, law, vals, w: _Writer, backend: str) -> str:
    """``def _law<j>(g, s, B)``: the (k, s, B) draws of one law from a seed block's stream (as smfsym)."""
    stub = types.SimpleNamespace(name=backend, asarray=lambda a: np.asarray(a, dtype=float))
    smp = _DeviceSampler(law, vals, stub)  # its refusals name the back end
    head = [f"def _law{j}(g, s, B):", f'    """{doc_safe(law.family)} law of '
            f'{doc_safe(", ".join(map(str, law.symbols)))}: shape ({smp.k}, s, B)."""']
    if smp.kind == "normal":
        body = [f"    return {smp.mu!r} + {smp.sd!r} * g.standard_normal((1, s, B))"]
    elif smp.kind == "mvn":
        mu, L = w.array("mu", smp.mu), w.array("chol", smp.L)
        body = [f"    z = g.standard_normal(({smp.k}, s * B))",
                f"    return xp.reshape(_dev({mu!r})[:, None] + _dev({L!r}) @ z, ({smp.k}, s, B))"]
    elif smp.kind == "uniform":
        body = [f"    return {smp.a!r} + ({smp.b!r} - {smp.a!r}) * g.random((1, s, B))"]
    elif smp.kind == "exponential":
        body = [f"    return -xp.log1p(-g.random((1, s, B))) / {smp.rate!r}"]
    else:
        names = w.data_names.get(tuple(law.symbols))
        if names is not None:  # a data set: the arrays set_data binds
            table, cuts = f"_dev({names[0]!r})", f"_dev({names[1]!r}, 'cuts')"
        else:
            table, cuts = f"_dev({w.array('table', smp.table)!r})", f"_dev({w.array('cuts', smp.cuts)!r})"
        body = [f"    idx = xp.searchsorted({cuts}, g.random((s * B,)), side='right')",
                f"    rows = xp.take({table}, idx, axis=0)  # (s B, k)",
                f"    return xp.reshape(xp.permute_dims(rows, (1, 0)), ({smp.k}, s, B))"]
    return "\n".join(head + body)


def _sgd_device_code(problem, vals, w: _Writer, backend: str) -> str:
    """The batch samplers, the compiled gradient and the SGD step on the device (as DeviceSGDStep)."""
    laws = [_sampler_code(j, law, vals, w, backend) for j, law in enumerate(problem.laws)]
    syms = tuple(s for law in problem.laws for s in law.symbols)
    grad = CompiledExprs(list(problem.grad_f_compact), tuple(problem.params), vals, syms)
    grad_src = w.exprs(grad, "grad_f", "Per-sample gradient entries grad_x f(x, xi)", vals)
    consts = (f"BATCH = {int(problem.batch_size)}\nDIM = {problem.dim}\n_LAWS = [{', '.join(f'_law{j}' for j in range(len(laws)))}]"
              f"\n_GRAD = {grad_src}")
    return "\n\n\n".join(p.strip("\n") for p in laws + [consts, _SGD])


# ---------------------------------------------------------------------------------------------- the module


def device_codegen(sde, problem, vals: dict, eta: float, backend: str, samplers, sgd_note: str,
                   embed_limit: int, info: dict | None = None) -> str:
    """The source of a generated module on an array back end (the work of ``smfsym.codegen(..., backend=)``).

    Parameters
    ----------
    sde : SDE or None
        The SDE whose Euler-Maruyama ``simulate`` is written (None: SGD only).
    problem : Problem or None
        The problem whose ``simulate_sgd`` is written (unless ``sgd_note`` says it is not).
    vals : dict
        Numbers of the constants, law parameters and eta (checked and bound by :func:`~smfsym.io.codegen.codegen`).
    eta : float
    backend : {"cupy", "array_api_strict"}
    samplers : list
        smfsym's numpy samplers of the problem's laws: their arrays name the data sets (``_data0``, ...),
        as the numpy module names them, so ``set_data`` takes the same arguments.
    sgd_note : str
        Empty, or why ``simulate_sgd`` is not generated (printed in the module's docstring).
    embed_limit : int
        Arrays of more numbers are not written into the source but bound with ``set_data``.

    Returns
    -------
    str
        The module's source.

    Examples
    --------
    >>> import sympy as sp, smfsym
    >>> x = sp.Symbol("x")
    >>> src = smfsym.codegen(smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x]), eta=0.1, backend="cupy")
    >>> "import cupy" in src and "def simulate_sgd(" in src
    True
    """
    arrays, names = {}, {}
    for smp in samplers:  # the data sets' arrays, named as the numpy module names them (set_data)
        arrays.update(smp.arrays)
        if smp.arrays:
            names[tuple(smp.symbols)] = tuple(sorted(smp.arrays, key=lambda k: not k.startswith("_data")))
    w = _Writer(names, arrays, backend)
    body = []
    if sde is not None:
        body.append(_sde_device_code(sde, vals, w, backend))
    if problem is not None and not sgd_note:
        body.append(_sgd_device_code(problem, vals, w, backend))
    library = {"cupy": "CuPy (an NVIDIA GPU)", "array_api_strict": "array_api_strict"}[backend]
    streams = {"cupy": "the seeds of cuRAND's Philox streams",
               "array_api_strict": "numpy's Philox streams, copied onto the stand-in device"}[backend]
    title = doc_safe(sde.title) if sde is not None else "SGD"
    header = (_HEADER.replace("DATE", datetime.date.today().isoformat()).replace("BACKEND_REPR", repr(backend))
              .replace("BACKEND", backend).replace("TITLE", title).replace("LIBRARY", library)
              .replace("STREAMS", streams).replace("ETA_REPR", repr(eta)).replace("BLOCK", str(BLOCK)))
    if sde is not None:
        header += "\nState: " + doc_safe(", ".join(map(str, sde.state))) + "\nDrift b(x):\n" + "\n".join(
            "    " + doc_safe(str(e)) for e in sde.drift) + "\n"
    header += sgd_note + (provenance_source(info) if info else "")
    header += '"""\nimport math\nimport numbers\nimport sys\nimport warnings\n\nimport numpy as np\n\nETA = ' + repr(float(eta))
    if info:
        header += provenance_constant(info)
    parts = [header, _runtime(backend, arrays, embed_limit)] + w.parts + body
    return "\n\n\n".join(p.strip("\n") for p in parts) + "\n"
