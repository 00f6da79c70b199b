"""Standalone simulator code: a readable numpy-only module for an SDE (and its SGD).

The module mirrors smfsym's numerics (same expressions, same common
subexpressions, same block-wise random streams), so for the same seed it
reproduces :func:`smfsym.simulate` and :func:`smfsym.simulate_sgd` to
floating-point rounding: within 1e-12 relative (``docs/theory.md``), as the
test suite checks; the printed expressions may round differently, so
bitwise equality is not promised.
"""
from __future__ import annotations

import datetime
from typing import Mapping

import numpy as np
import sympy as sp
from sympy.printing.numpy import NumPyPrinter

from .._checks import numeric_values
from .._fs import check_new_file, write_new_file
from ..symbolic.lambdify import _cse
from ..montecarlo.seeds import BLOCK
from .codegen_checks import checks_source
from .codegen_means import (MeanContext, data_source, doc_safe, provenance, provenance_constant, provenance_source,
                            specs_source)
from .codegen_device import DEVICE_CODEGEN_BACKENDS, device_codegen
from ..data.means import DataMean, refuse_dirac_deltas, refuse_law_derivatives
from ..numerics.compiled_sde import NumericSDE
from ..symbolic.problem import Problem
from ..data.samplers import samplers_for
from ..symbolic.sde import SDE
from .._checks import as_expr
from ..montecarlo.increments import draw_discrete, draw_normal
from ..montecarlo.seeds import block_generators
from ..montecarlo.grid import step_runs
from ..simulation.sde import DRAW_BYTES, grid
from ..simulation.sgd import problem_symbols
from ..simulation.sde import _known_symbols
from ..numerics.linear_forms import KERNELS
from ..numerics.linear_forms import LA_ROWS
from ..numerics.compiled_sde import ROWS, TEMPLATE_BYTES

__all__ = ["codegen"]

#: Arrays up to this many numbers are written into generated code; larger data sets are passed in.
EMBED_LIMIT = 1000


def _function(name, args, exprs, doc, ctx=None, single=False):
    """Source of ``def name(args[, means]): ... return [exprs]`` with collision-free cse.

    Data means in ``exprs`` become extra arguments ``_mean<j>`` (computed by the caller with
    ``_means(...)``); ``ctx`` generates their integrands and rules once per module.
    Returns the source, and with ``ctx`` also the numbers of the means the function takes.
    """
    import keyword
    import unicodedata

    exprs = [as_expr(e) for e in exprs]
    refuse_law_derivatives(exprs)
    refuse_dirac_deltas(exprs)
    idx, mean_syms = [], []
    if any(e.atoms(DataMean) for e in exprs):
        if ctx is None:  # pragma: no cover - every caller with data means passes a context
            raise NotImplementedError("code generation of data means needs a MeanContext.")
        exprs, idx, mean_syms = ctx.replace(exprs, _function)
    # Python compares identifiers after NFKC normalisation (x and the fullwidth x are one name): so do we
    nfkc = lambda n: unicodedata.normalize("NFKC", n)  # noqa: E731
    names, seen = [], {"np", "numpy"} | {nfkc(str(m)) for m in mean_syms}
    given = {nfkc(str(a) if not isinstance(a, sp.Dummy) else str(a.name)) for a in args}
    for i, a in enumerate(args):
        n = str(a) if not isinstance(a, sp.Dummy) else str(a.name)
        if not n.isidentifier() or keyword.iskeyword(nfkc(n)) or nfkc(n) in seen or n.startswith("_"):
            n = f"arg{i}"
            while n in seen or n in given:  # a parameter may itself be called arg1 (audit 9, finding 3)
                n += "_"
        seen.add(nfkc(n))
        names.append(n)
    sub = {a: sp.Symbol(n) for a, n in zip(args, names)}
    exprs = [e.xreplace(sub) for e in exprs]
    printer = NumPyPrinter({"fully_qualified_modules": True, "inline": True, "allow_unknown_functions": False})
    reps, reduced = _cse(exprs)
    lines = [f"def {name}({', '.join(names + [str(m) for m in mean_syms])}):", f'    """{doc}"""']
    for sym, e in reps:
        lines.append(f"    {sym} = {printer.doprint(e)}")
    if single:
        lines.append("    return " + printer.doprint(reduced[0]))
    else:
        lines.append("    return [" + ", ".join(printer.doprint(e) for e in reduced) + "]")
    src = "\n".join(lines)
    return (src, idx) if ctx is not None and not single else src


_RUNTIME = '''
BLOCK = {block}


def _stack(outs, shape):
    res = np.empty(shape + (len(outs),))
    for i, o in enumerate(outs):
        res[..., i] = o
    return res


def _cols(X):
    return [X[..., i] for i in range(X.shape[-1])]


def _stack_last(outs, shape):
    """As smfsym.symbolic.lambdify: one contiguous slab per output, viewed with the output axis last."""
    res = np.empty((len(outs),) + shape)
    for i, o in enumerate(outs):
        res[i] = o
    return np.moveaxis(res, 0, -1)


def _ucols(U, X):
    extra = X.ndim - 2
    return [U[(slice(None), k) + (None,) * extra] for k in range(U.shape[1])]


class BlowUpError(FloatingPointError):
    """A path's state left |x| <= blowup_threshold (or stopped being finite)."""


def _run(x0, n_paths, seed, steps, index, step, on_nonfinite="raise", blowup_threshold=1e100, label="t",
         time_of=float):
    """Drive step(X, h, gens, sizes) over the step sizes, saving after the steps in ``index``.

    A path whose state leaves |x| <= blowup_threshold (or is not finite) is reported: BlowUpError with
    on_nonfinite="raise" (the default), NaN in the returned states and a RuntimeWarning with "mask".
    """
    if on_nonfinite not in ("raise", "mask"):
        raise ValueError(f"`on_nonfinite` must be 'raise' or 'mask'; got {{on_nonfinite!r}}.")
    bound = float(blowup_threshold)
    x0 = np.asarray(x0, dtype=float)
    n_blocks = -(-n_paths // BLOCK)
    sizes = [min(BLOCK, n_paths - b * BLOCK) for b in range(n_blocks)]
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    gens = block_generators(ss, 0, n_blocks)
    X = np.broadcast_to(x0, (n_paths,) + x0.shape).copy()
    states = np.empty((len(index), n_paths) + x0.shape)
    lost = np.zeros(n_paths, dtype=bool)
    first = None
    si = 0
    while si < len(index) and index[si] == 0:
        states[si] = X
        si += 1
    for n, h in enumerate(steps, start=1):
        with np.errstate(all="ignore"):  # a lost path is reported below, by step and share
            X = step(X, h, gens, sizes)
            bad = ~np.all(np.abs(X.reshape(n_paths, -1)) <= bound, axis=1) & ~lost
        if bad.any():
            msg = (f"non-finite state at step {{n}} ({{label}} = {{time_of(n):.6g}}) in {{int(bad.sum())}} of "
                   f"{{n_paths}} paths (|state| > {{bound:.3g}} counts as non-finite)")
            if on_nonfinite == "raise":
                raise BlowUpError(msg + "; reduce the step or pass on_nonfinite='mask' to drop those paths.")
            first = first or msg
            lost |= bad
            X[bad] = np.nan
        while si < len(index) and index[si] == n:
            states[si] = X
            si += 1
    if first is not None:
        warnings.warn(f"{{int(lost.sum())}} of {{n_paths}} paths lost, the first at {{first}}: they are NaN in the "
                      "returned states.", RuntimeWarning, stacklevel=3)
    return states
'''


def _runtime() -> str:
    """Shared helpers of a generated module: smfsym's own functions, copied verbatim."""
    import inspect

    from ..montecarlo import increments

    tables = [line for line in inspect.getsource(increments).splitlines()
              if line.startswith(("_SIGNS = ", "_THREE = ", "_TRIPLES = "))]
    own = "\n\n".join(inspect.getsource(f) for f in (block_generators, draw_normal, draw_discrete,
                                                     increments._accepted_bytes, step_runs, grid))
    return (_RUNTIME.format(block=BLOCK) + "\n\n" + "\n".join(tables) + "\n\n" + own + "\n\n"
            + checks_source())


def codegen(obj, *, eta: float | None = None, values: Mapping | None = None, problem: Problem | None = None,
            path=None, backend: str = "numpy", overwrite: bool = False, source: str | None = None) -> str:
    """Standalone Python source simulating an SDE (and SGD): numpy only, or on an array back end.

    Every compiled SDE can be exported: polynomial coefficients, data means (the
    integrand, and the quadrature rule with all its refinement levels and the
    refinement logic of smfsym, so the numbers are smfsym's; see
    :mod:`smfsym.io.codegen_means` and docs/theory.md §8), explicit noise matrices,
    numeric square roots of Sigma and data-set noise columns (docs/theory.md §3).
    The generated ``simulate`` is Euler-Maruyama by default (weak order 1; with an order-2
    *model* such as smf2 the model is O(eta^2) close to SGD and the solver adds
    O(dt)); ``simulate(..., scheme="weak2")`` is smfsym's simplified weak order-2 step for explicit
    noise columns and data-set noise (refused, naming smfsym's reason, on the numeric root), and
    ``increments="discrete"`` draws smfsym's two- and three-point increments. Data-set noise whose loss reads the parameters through linear forms of the row is
    stepped in smfsym's linear-algebra form (its kernels embedded verbatim: margins as one matmul,
    drift and noise as matmuls; :mod:`smfsym.numerics.linear_forms`). A data set of more than ``EMBED_LIMIT`` numbers is never written into
    the source: bind it with the module's ``set_data(_data0=..., _weights0=...)``
    (the law's ``data`` and ``weights``), for the SDE and the SGD sampler alike.

    Parameters
    ----------
    obj : SDE or Problem
        An SDE (its problem, if any, also gets an SGD step), or a Problem (SGD only).
    eta : float
        The learning rate, bound into the code.
    values : mapping, optional
        Numbers for constants and law parameters.
    path : str or Path, optional
        Also write the module there (atomically). An existing file is refused unless ``overwrite=True``; a
        directory, a symbolic link or a device is always refused (as by ``export_tex`` and ``StudyIO.save``).
    overwrite : bool
        Replace an existing regular file at ``path``.
    source : str, optional
        Where the problem came from (``smfsym codegen`` passes the spec and its SHA-256), recorded with
        the smfsym version, the model, the back end, the loss, the laws and the bound numbers in the module's
        docstring and its ``PROVENANCE`` dict.
    backend : {"numpy", "cupy", "array_api_strict"}
        The array library the module runs on (default numpy: the module described above). With
        ``"cupy"`` or ``"array_api_strict"`` the module imports only that library (and numpy on the host;
        never smfsym), keeps states, draws and steps on the device, draws seed block b's streams as
        smfsym's back end does, and reproduces ``smfsym.simulate(..., options=RunOptions(backend=...))``
        and ``simulate_sgd`` bitwise for the same seed (:mod:`smfsym.io.codegen_device`). Its
        ``simulate``/``simulate_sgd`` return host numpy arrays and report blow-up (``on_nonfinite``).
        The SME's numeric root sqrt(eta) Sigma(x)^(1/2) is DeviceSDE.root's batched eigh (its refusal of a
        clearly negative eigenvalue included). What smfsym's device path refuses is refused (quadrature
        means over continuous laws, laws without a device sampler), naming it.

    Returns
    -------
    str
        The module's source: ``drift``, ``noise``, ``diffusion`` (``sqrt_sigma`` for a
        numeric square root of Sigma, ``columns`` for data-set columns), ``sgd_step``,
        ``simulate`` and ``simulate_sgd``.

    Examples
    --------
    >>> import sympy as sp, smfsym
    >>> x = sp.Symbol("x")
    >>> xi = smfsym.normal("xi")
    >>> flow = smfsym.smf(smfsym.Problem((x - xi) ** 2 / 2, [x]))
    >>> src = smfsym.codegen(flow, eta=0.1)
    >>> "def simulate(" in src and "import smfsym" not in src
    True
    >>> dev = smfsym.codegen(flow, eta=0.1, backend="array_api_strict")  # states and draws on the device
    >>> "import array_api_strict as xp" in dev and "import smfsym" not in dev
    True
    >>> a = smfsym.normal("a")
    >>> logistic = smfsym.sme(smfsym.Problem(sp.log(1 + sp.exp(-a * x)), [x]), order=1)
    >>> "_RULE0 = " in smfsym.codegen(logistic, eta=0.1)  # the Gauss rule, embedded
    True
    """
    sde = obj if isinstance(obj, SDE) else None
    if path is not None:  # before the work, which may take a while; again when writing
        check_new_file(path, overwrite=overwrite)
    if backend not in ("numpy",) + DEVICE_CODEGEN_BACKENDS:
        why = (" (a generated module for JAX is not written: run the simulators with "
               "RunOptions(backend='jax'), or generate the numpy module)" if backend == "jax" else "")
        raise ValueError(f"`backend` must be one of {['numpy', *DEVICE_CODEGEN_BACKENDS]}; got {backend!r}{why}.")
    if sde is None and not isinstance(obj, Problem):
        raise TypeError(f"`obj` must be a smfsym.SDE or Problem; got {type(obj).__name__}.")
    problem = problem or (obj if isinstance(obj, Problem) else obj.problem)
    if eta is None or not np.isfinite(eta) or eta <= 0:
        raise ValueError(f"`eta` must be a positive number; got {eta!r}.")
    sgd_note = ""
    if problem is not None and not problem.batch_size.is_Integer:
        # SGD draws B samples a step: a symbolic B has no step (smfsym.simulate_sgd refuses it too)
        if sde is None:
            raise ValueError(f"`batch_size` must be a number to generate SGD; the problem's is symbolic "
                             f"({problem.batch_size}): build the Problem with an integer batch_size.")
        sgd_note = (f"\nsimulate_sgd is not generated: the batch size {problem.batch_size} is symbolic (build the "
                    "Problem with an integer batch_size for SGD).\n")
    elif problem is not None and problem.sampling != "iid":
        if sde is None:
            raise NotImplementedError("code generation of SGD with without-replacement batches is not supported "
                                      "yet; use smfsym.simulate_sgd.")
        # the SDE is exported; its SGD (batches drawn without replacement) is not
        sgd_note = ("\nsimulate_sgd is not generated: batches drawn without replacement are not supported in "
                    "generated code (use smfsym.simulate_sgd).\n")

    known = (_known_symbols(sde) if sde is not None else set()) | (problem_symbols(problem) if problem else set())
    vals = numeric_values(values, known)
    if sde is not None:
        vals[sde.eta] = float(eta)
    samplers = samplers_for(problem.laws, vals) if problem is not None else []
    info = provenance(sde, problem, vals, eta, backend, source)
    if backend != "numpy":
        return _written(device_codegen(sde, problem, vals, float(eta), backend, samplers, sgd_note, EMBED_LIMIT,
                                       info), path, overwrite)
    arrays, names = {}, {}
    for smp in samplers:
        arrays.update(smp.arrays)
        if smp.arrays:  # a data set's (rows, weights): the SDE's data means read the same arrays
            names[tuple(smp.symbols)] = tuple(sorted(smp.arrays, key=lambda k: not k.startswith("_data")))
    ctx = MeanContext(sde.state if sde is not None else (), {as_expr(k): sp.Float(v) for k, v in vals.items()},
                      names, arrays)
    title = doc_safe(sde.title) if sde is not None else "SGD"
    header = f'''"""Simulator generated by smfsym on {datetime.date.today().isoformat()}: {title}.

Needs only numpy. Learning rate eta = {eta!r} and all constants are bound below.
'''
    if sde is not None:
        header += "\nState: " + doc_safe(", ".join(map(str, sde.state))) + "\nDrift b(x):\n" + "\n".join(
            "    " + doc_safe(str(e)) for e in sde.drift) + "\n"
    header += sgd_note + provenance_source(info)
    body = []
    if sde is not None:
        body.append(_sde_code(sde, vals, ctx))
    if problem is not None and not sgd_note:
        body.append(_sgd_code(problem, vals, samplers))
    imports = '"""\nimport itertools\nimport math\nimport numbers\nimport sys\nimport warnings\n\nimport numpy\nimport numpy as np\n\nETA = '
    parts = [header + imports + repr(float(eta)) + provenance_constant(info), _runtime()]
    if ctx.arrays:
        parts.append(_data_code(ctx.arrays))
    if ctx.means:
        parts.append(ctx.source())
    else:
        parts.append('def _means(specs, cols):\n    """No data means in this module."""\n    return []')
    src = "\n\n\n".join(p.strip("\n") for p in parts + body) + "\n"
    return _written(src, path, overwrite)


def _written(src: str, path, overwrite: bool) -> str:
    """``src``, also written to ``path`` when one is given."""
    if path is not None:
        write_new_file(path, src, overwrite=overwrite)
    return src


def _data_code(arrays) -> str:
    """The data arrays (embedded when small, else None until ``set_data``) and ``set_data``."""
    clear = ('    globals().get("_NODE_CACHE", {}).clear()  # the rules of data means read the data set\n'
             '    globals().get("_LA_CACHE", {}).clear()  # and so do the matrices of the linear-algebra form')
    return data_source(arrays, EMBED_LIMIT, clear)


def _with_means(fn_src, idx, name):
    """The source of a generated function and the list of the data means it takes (maybe empty)."""
    return fn_src + "\n\n\n" + specs_source(name, idx)


_SDE_DRIFT = '''
def drift(X):
    """b(X) for states X of shape (..., D)."""
    cols = _cols(X)
    return _stack(_drift(*cols, *_means(_DRIFT_MEANS, cols)), X.shape[:-1])
'''

_SDE_MATRIX = '''
def noise(X, U):
    """sigma(X) U for increments U of shape (P, M)."""
    if M == 0:
        return np.zeros_like(X)
    cols = _cols(X)
    shape = np.broadcast_shapes(*[c.shape for c in cols], *[u.shape for u in _ucols(U, X)])
    return _stack(_noise(*cols, *_ucols(U, X), *_means(_NOISE_MEANS, cols)), shape)


def diffusion(X):
    """The d x m diffusion matrix at states X: shape (..., D, M)."""
    cols = _cols(X)
    out = _stack(_columns(*cols, *_means(_COLUMNS_MEANS, cols)), X.shape[:-1])
    return out.reshape(X.shape[:-1] + (M, D)).swapaxes(-1, -2)
'''

_SDE_SQRT = '''
def sqrt_sigma(X):
    """Symmetric square root of Sigma(X) by batched eigh (tiny negative eigenvalues clipped)."""
    cols = _cols(X)
    S = _stack(_sigma(*cols, *_means(_SIGMA_MEANS, cols)), X.shape[:-1]).reshape(X.shape[:-1] + (D, D))
    lam, V = np.linalg.eigh(S)
    return np.einsum("...ij,...j,...kj->...ik", V, np.sqrt(np.clip(lam, 0.0, None)), V)


def noise(X, U):
    """sqrt(eta) Sigma(X)^{1/2} U."""
    return SCALE * np.einsum("...ij,...j->...i", sqrt_sigma(X), U.reshape(U.shape[:1] + (1,) * (X.ndim - 2) + U.shape[1:]))
'''

_SDE_TEMPLATE = '''
#: Data rows per chunk and working-set target of a path sub-batch: smfsym's, so the sums are its sums.
ROWS = ROWS_VALUE
TEMPLATE_BYTES = BYTES_VALUE


def _noise_data():
    data, weights = DATA_NAME, WEIGHTS_NAME
    if data is None or weights is None:
        raise ValueError("the data set is not embedded in this module: call set_data() with BOTH_NAMES first")
    return data, weights


def columns(X):
    """Data-set noise columns grad F - grad f(x, xi_i) at states X, shape (..., M, D) (unscaled)."""
    data, _ = _noise_data()
    xc = [c[..., None] for c in _cols(X)]
    dc = [data[:, j] for j in range(data.shape[1])]
    shape = np.broadcast_shapes(*[c.shape for c in xc + dc])
    return _stack_last(_column(*xc, *dc, *_means(_COLUMN_MEANS, xc)), shape)


def noise(X, U):
    """SCALE * sum_i sqrt(w_i) U_i (grad F - grad f(X, xi_i)) for U of shape (P, M), rows in chunks."""
    data, weights = _noise_data()
    n_rows = data.shape[0]
    rows = min(n_rows, ROWS)
    per_path = max(1, int(np.prod(X.shape[1:-1]))) * rows * D * 8 * 4
    sub = max(1, TEMPLATE_BYTES // per_path)
    out = np.empty(X.shape)
    wU = U * np.sqrt(weights)
    for a in range(0, X.shape[0], sub):
        Xs = X[a:a + sub]
        xc = [c[..., None] for c in _cols(Xs)]
        means = _means(_COLUMN_MEANS, xc)  # once per sub-batch, not per row chunk
        acc = np.zeros(Xs.shape)
        for r0 in range(0, n_rows, rows):
            dc = [data[r0:r0 + rows, j] for j in range(data.shape[1])]
            shape = np.broadcast_shapes(*[c.shape for c in xc + dc])
            cols = _stack_last(_column(*xc, *dc, *means), shape)  # (p, [n,] R, D)
            Ub = wU[a:a + sub, r0:r0 + rows]
            Ub = Ub.reshape(Ub.shape[:1] + (1,) * (X.ndim - 2) + Ub.shape[1:])
            acc += np.einsum("...kd,...k->...d", cols, Ub)
        out[a:a + sub] = acc
    return SCALE * out
'''

_SDE_EULER = '''
def euler_step(X, dt, Z):
    """Euler-Maruyama (weak order 1)."""
    out = X + dt * drift(X)
    if M:
        out += noise(X, np.sqrt(dt) * Z[:, 0])
    return out


#: scheme -> (draws per step, the discrete kind of each draw), as smfsym's solvers declare them
_SCHEMES = {"euler": (1, ("two",)), "weak2": (4, ("three", "two", "two", "two"))}
#: bytes of one draw of a path sub-batch (smfsym's DRAW_BYTES: discrete draws are made per sub-batch)
DRAW_BYTES = DRAW_BYTES_VALUE


def _draw(gens, sizes, k, kinds):
    """(P, k, M) increments, block by block: standard normals, or smfsym's discrete ones (``kinds``)."""
    if kinds is None:
        return draw_normal(gens, sizes, (k, M))
    sub = max(1, DRAW_BYTES // max(1, 8 * k * M))
    return np.concatenate([draw_discrete(g, min(sub, s - a), kinds, M) for g, s in zip(gens, sizes)
                           for a in range(0, s, sub)], axis=0)


def simulate(x0, t_end, n_paths, seed, dt=ETA / 10, save_at=None, on_nonfinite="raise", blowup_threshold=1e100,
             scheme="euler", increments="gaussian"):
    """Paths of ``scheme``: (times, states of shape (n_times, n_paths, [n_points,] D)).

    ``scheme`` "euler" (Euler-Maruyama, weak order 1) or "weak2" (smfsym's simplified weak Taylor 2.0 step,
    where this module has it); ``increments`` "gaussian" or "discrete" (two-point for euler, three- and
    two-point for weak2). An (n, D) x0 runs the n-point motion (one noise for all points). A path beyond
    ``blowup_threshold`` (or not finite) raises BlowUpError, or with on_nonfinite="mask" is NaN (and a
    RuntimeWarning says how many).
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
    x0, n_paths, seed, blowup_threshold, _ = _run_arguments(x0, D, n_paths, seed, len(saves), on_nonfinite,
                                                            blowup_threshold)
    steps, index, times = grid(saves, dt)

    def step(X, h, gens, sizes):
        Z = _draw(gens, sizes, k, kinds) if M else np.zeros((X.shape[0], k, 0))
        return step_fn(X, h, Z)

    return times, _run(x0, n_paths, seed, steps, index, step, on_nonfinite, blowup_threshold, "t",
                       lambda n: float(np.sum(steps[:n])))
'''


_WEAK2_NUMPY = '''
def _dirs(fn, specs, X, V=None, U=None):
    """fn at states X along a direction V shaped like X, then increments U of shape (P, M)."""
    cols = _cols(X)
    args = ([] if V is None else _cols(V)) + ([] if U is None else _ucols(U, X))
    shape = np.broadcast_shapes(*[np.shape(c) for c in cols + args])
    return _stack(fn(*cols, *args, *_means(specs, cols)), shape)


def weak2_step(X, dt, Z):
    """smfsym's simplified weak Taylor 2.0 step (WeakTaylor2, the same terms; floating-point regrouping aside);
    Z of shape (P, 4, M): dW / sqrt(dt), zeta, alpha, beta."""
    b = drift(X)
    if M == 0:
        return X + dt * b + 0.5 * dt**2 * _dirs(_w2_da, _W2_DA_MEANS, X, b)
    sq = np.sqrt(dt)
    v = dt * b + sq * noise(X, Z[:, 0])  # dt b + sigma dW
    s_zeta = noise(X, Z[:, 1])
    out = X + v
    out = out + 0.5 * dt * _dirs(_w2_da, _W2_DA_MEANS, X, v)
    out = out + 0.5 * sq * _dirs(_w2_dg, _W2_DG_MEANS, X, v, Z[:, 0])
    out = out - 0.5 * dt * _dirs(_w2_ito, _W2_ITO_MEANS, X)
    out = out + 0.25 * dt**2 * _dirs(_w2_d2a, _W2_D2A_MEANS, X, s_zeta)
    out = out + 0.25 * dt * sq * _dirs(_w2_d2g, _W2_D2G_MEANS, X, s_zeta, Z[:, 0])
    # Levy-area surrogate D_{sigma alpha}(sigma beta) - D_{sigma beta}(sigma alpha)
    area = (_dirs(_w2_dg, _W2_DG_MEANS, X, noise(X, Z[:, 2]), Z[:, 3])
            - _dirs(_w2_dg, _W2_DG_MEANS, X, noise(X, Z[:, 3]), Z[:, 2]))
    return out + 0.5 * dt / np.sqrt(2.0) * area
'''


_WEAK2_TEMPLATE_NUMPY = '''
def _w2_rows(fn, specs, X, wU, dirs):
    """sum_i wU[:, i] r(X, [V,] xi_i) for a per-row expression list, rows in chunks of ROWS."""
    data, _ = _noise_data()
    xc = [c[..., None] for c in _cols(X) + list(dirs)]
    means = _means(specs, xc)
    acc = np.zeros(X.shape)
    for r0 in range(0, data.shape[0], ROWS):
        dc = [data[r0:r0 + ROWS, j] for j in range(data.shape[1])]
        shape = np.broadcast_shapes(*[c.shape for c in xc + dc])
        cols = _stack_last(fn(*xc, *dc, *means), shape)  # (P, [n,] R, D)
        Ub = wU[:, r0:r0 + ROWS]
        acc += np.einsum("...kd,...k->...d", cols, Ub.reshape(Ub.shape[:1] + (1,) * (X.ndim - 2) + Ub.shape[1:]))
    return acc


def _w2_action(X, U, order, V=None):
    """D^order_V (sigma(X) U) for data-set noise (smfsym's NumericSDE.dataset_action); U of shape (P, M)."""
    _, weights = _noise_data()
    fn, specs = _W2_C[order]
    C = _dirs(fn, specs, X, V)
    wU = U * np.sqrt(weights)
    total = np.sum(wU, axis=-1).reshape(X.shape[:1] + (1,) * (X.ndim - 1))
    rows = _w2_rows(*_W2_R[order], X, wU, [] if V is None else _cols(V))
    return SCALE * (C * total + rows)


def weak2_step(X, dt, Z):
    """smfsym's weak order-2 step on data-set noise (WeakTaylor2._step_dataset, the same terms); Z of shape
    (P, 4, M): dW / sqrt(dt), zeta, alpha, beta."""
    sq = np.sqrt(dt)
    N0, Nz, Na, Nb = (_w2_action(X, Z[:, k], 0) for k in range(4))
    v = dt * drift(X) + sq * N0  # dt b + sigma dW
    out = X + v
    out += 0.5 * dt * _dirs(_w2_da, _W2_DA_MEANS, X, v)
    out += 0.5 * sq * _w2_action(X, Z[:, 0], 1, v)
    out += -0.5 * dt * _dirs(_w2_ito, _W2_ITO_MEANS, X)
    out += 0.25 * dt**2 * _dirs(_w2_d2a, _W2_D2A_MEANS, X, Nz)
    out += 0.25 * dt * sq * _w2_action(X, Z[:, 0], 2, Nz)
    out += 0.5 * dt / np.sqrt(2.0) * (_w2_action(X, Z[:, 3], 1, Na) - _w2_action(X, Z[:, 2], 1, Nb))
    return out
'''


def _weak2_template_numpy(nsde, ctx, E, head: str) -> str:
    """The weak order-2 terms (row-free and per-row) and step of data-set noise in the numpy module."""
    terms = E["terms"]
    x, v, w = nsde.x, terms["da"][1], terms["d2a"][1]
    out = [head]
    for name, args, what in [("ito", x, "The Ito-Stratonovich vector scale^2 E[(D c) c]"), ("da", x + v, "D_v b"),
                             ("d2a", x + w, "D^2_w b"), ("c0", x, "The row-free part C0 of the noise column"),
                             ("dc0", x + v, "D_v C0"), ("d2c0", x + w, "D^2_w C0")]:
        out.append(_with_means(*_function(f"_w2_{name}", args, list(terms[name][0]), what + ", entry by entry.", ctx),
                               f"_W2_{name.upper()}_MEANS"))
    for k, (exprs, st) in enumerate(E["rows"]):
        out.append(_with_means(*_function(f"_w2_r{k}", tuple(st) + tuple(E["data"]), exprs,
                                          ("r", "D_v r", "D^2_w r")[k] + " per data row (data symbols last).", ctx),
                               f"_W2_R{k}_MEANS"))
    out.append("_W2_C = [(_w2_c0, _W2_C0_MEANS), (_w2_dc0, _W2_DC0_MEANS), (_w2_d2c0, _W2_D2C0_MEANS)]\n"
               "_W2_R = [(_w2_r0, _W2_R0_MEANS), (_w2_r1, _W2_R1_MEANS), (_w2_r2, _W2_R2_MEANS)]")
    out.append(_WEAK2_NUMPY.split("\n\n\ndef weak2_step")[0])  # _dirs
    out.append(_WEAK2_TEMPLATE_NUMPY)
    return "\n\n\n".join(o.strip("\n") for o in out)


def _weak2_numpy_code(nsde, ctx) -> str:
    """The weak order-2 terms and step of explicit noise columns or data-set noise, or ``NO_WEAK2``: why
    there are none (smfsym's own refusal)."""
    reason = ""
    try:
        E = nsde._dataset_weak2_exprs if nsde.kind == "template" else nsde._weak2_exprs
    except (ValueError, NotImplementedError) as e:  # smfsym refuses weak2 there too
        reason = str(e)
    head = f"#: why this module has no weak2 step (empty: it has one)\nNO_WEAK2 = {reason!r}"
    if reason:
        return head
    if nsde.kind == "template":
        return _weak2_template_numpy(nsde, ctx, E, head)
    x, u, v, w = nsde.x, nsde.u, E["v"], E["w"]
    out = [head]
    for name, args, what in [("ito", x, "The Ito-Stratonovich vector sum_j D_{sigma_j} sigma_j"),
                             ("da", x + v, "D_v b"), ("d2a", x + w, "D^2_w b"),
                             ("dg", x + v + u, "D_v (sigma u)"), ("d2g", x + w + u, "D^2_w (sigma u)")]:
        exprs = E[name] if any(e != 0 for e in E[name]) else [sp.S.Zero] * nsde.d
        out.append(_with_means(*_function(f"_w2_{name}", args, exprs, what + ", entry by entry.", ctx),
                               f"_W2_{name.upper()}_MEANS"))
    out.append(_WEAK2_NUMPY)
    return "\n\n\n".join(o.strip("\n") for o in out)


def _sde_code(sde, vals, ctx):
    nsde = NumericSDE(sde, vals)
    d, m = nsde.d, nsde.m
    out = [f"D = {d}  # state dimension\nM = {m}  # independent Brownian motions\n\n"]
    out.append(_with_means(*_function("_drift", nsde.x, nsde.drift_exprs, "Drift entries.", ctx), "_DRIFT_MEANS"))
    out.append(_SDE_DRIFT)
    if nsde.kind == "matrix":
        cols = [[nsde.diffusion_matrix[i, k] for i in range(d)] for k in range(m)]
        out.append(_with_means(*_function("_noise", nsde.x + nsde.u, nsde.noise_exprs,
                                          "sigma(x) u, entry by entry.", ctx), "_NOISE_MEANS"))
        out.append(_with_means(*_function("_columns", nsde.x, [e for c in cols for e in c],
                                          "The noise columns sigma_k(x), column by column.", ctx), "_COLUMNS_MEANS"))
        out.append(_SDE_MATRIX)
    elif nsde.kind == "sqrt":
        out.append(f"SCALE = {nsde.scale!r}")
        out.append(_with_means(*_function("_sigma", nsde.x, nsde.sigma_exprs, "Entries of Sigma(x), row by row.",
                                          ctx), "_SIGMA_MEANS"))
        out.append(_SDE_SQRT)
    else:
        out.append(_template_code(sde, nsde, ctx))
    out.append(_weak2_numpy_code(nsde, ctx))
    euler = _SDE_EULER.replace("DRAW_BYTES_VALUE", str(DRAW_BYTES))
    if nsde.kind == "template" and nsde.la is not None:
        out.append(_linear_algebra_code(nsde))
        euler = euler.replace(_EULER_GENERAL, _EULER_LA)
    out.append(euler)
    return "\n\n\n".join(o.strip("\n") for o in out)


_EULER_GENERAL = '''    """Euler-Maruyama (weak order 1)."""
    out = X + dt * drift(X)
    if M:
        out += noise(X, np.sqrt(dt) * Z[:, 0])
    return out'''

_EULER_LA = '''    """Euler-Maruyama (weak order 1): drift and data-set noise in one pass over the data."""
    b, N = drift_noise(X, Z[:, 0], np.sqrt(dt))
    return X + dt * b + N'''

_LA_RUNTIME = '''
#: The data-set sums in linear-algebra form (smfsym.numerics.linear_forms): margins of all rows as one matmul,
#: the per-row scalars once per (path, row), means and noise as matmuls; blocks of LA_BLOCK paths.
LA_BLOCK = BLOCK_VALUE
LA_ROWS = ROWS_VALUE
LA_Q = Q_VALUE
N_MEANS = N_MEANS_VALUE
_LA_CACHE = {}


def _la_plan():
    """The arrays of the linear-algebra form, built from the data set once (again after set_data)."""
    if not _LA_CACHE:
        data, weights = _noise_data()
        n_rows = data.shape[0]
        dcols = [data[:, j] for j in range(data.shape[1])]
        sqrt_w = np.sqrt(weights)[:, None]
        At = la_fill(_la_margin_coefs(*dcols), WHERE_A, (LA_Q, n_rows, D))
        _LA_CACHE.update(M=n_rows, q=LA_Q, block=LA_BLOCK, pool=_la_pool, sqrt_w=sqrt_w,
                         dcols=[c[None, :] for c in dcols], At=np.ascontiguousarray(At.reshape(LA_Q * n_rows, -1).T))
        _LA_CACHE["means"] = (la_output_mats(_la_means_coefs(*dcols), WHERE_MEANS, n_rows, N_MEANS, weights), N_MEANS)
        _LA_CACHE["rows0"] = (la_output_mats(_la_rows0_coefs(*dcols), WHERE_ROWS0, n_rows, D, sqrt_w[:, 0]), D)
        _LA_CACHE["chunks"] = la_chunks(_LA_CACHE, LA_ROWS, ["means", "rows0"])
    return _LA_CACHE


def drift_noise(X, Z0, factor=1.0):
    """Drift b(X) and the noise action sigma(X) (factor Z0) for Z0 of shape (P, M), in one pass."""
    return la_drift_noise(_la_plan(), X, Z0, factor, SCALE,
                          lambda X, mv: _stack_last(_la_drift_c0(*_cols(X), *mv), X.shape[:-1]))
'''


def _linear_algebra_code(nsde) -> str:
    """The Euler step's data-set sums in linear-algebra form: smfsym's kernels verbatim, its scalars
    and coefficient lists printed, the matrices built from the data set at run time."""
    import inspect


    la = nsde.la
    split = la.split
    data_syms = tuple(split.data_symbols)
    pool, _, outputs = la.stage_exprs["x"]
    mus = [sp.Symbol(f"_lamean{j}") for j in range(len(la.mean_nodes))]
    sub = dict(zip(la.mean_nodes, mus))
    parts = [inspect.getsource(f) for f in KERNELS]
    parts.append(_function("_la_pool", la.pool_args(), list(pool), "The per-row scalars (margins, data, state)."))
    a_entries, a_where = la.margin_coefficients()
    parts.append(_function("_la_margin_coefs", data_syms, a_entries, "Coefficients of the margins, per data row."))
    consts = [f"WHERE_A = {a_where!r}"]
    for name in ("means", "rows0"):
        entries, where = la.output_coefficients(outputs[name][0])
        parts.append(_function(f"_la_{name}_coefs", data_syms, entries, f"Coefficients of the {name}, per data row."))
        consts.append(f"WHERE_{name.upper()} = {where!r}")
    c0 = nsde._template_parts[0]
    parts.append(_function("_la_drift_c0", tuple(nsde.x) + tuple(mus),
                           [e.xreplace(sub) for e in list(nsde.drift_exprs) + list(c0)],
                           "Drift entries, then the noise column's row-free part C0(x) (grad F), on the data means."))

    runtime = (_LA_RUNTIME.replace("BLOCK_VALUE", str(la.block)).replace("ROWS_VALUE", str(LA_ROWS)).replace("N_MEANS_VALUE", str(len(la.mean_nodes)))
               .replace("Q_VALUE", str(la.q)))
    return "\n\n\n".join(p.strip("\n") for p in parts + ["\n".join(consts), runtime])


def _template_code(sde, nsde, ctx) -> str:
    """Data-set noise columns (docs/theory.md §3): contracted with the increments in chunks of rows."""

    law = sde.diffusion.law
    data_name, weights_name = ctx.data_arrays(law)
    fn, idx = _function("_column", tuple(nsde.x) + tuple(law.symbols), nsde.column_exprs,
                        "One noise column grad F(x) - grad f(x, xi) per data row (data symbols last).", ctx)
    body = (_SDE_TEMPLATE.replace("ROWS_VALUE", str(ROWS)).replace("BYTES_VALUE", str(TEMPLATE_BYTES))
            .replace("DATA_NAME", data_name).replace("WEIGHTS_NAME", weights_name)
            .replace("BOTH_NAMES", repr([data_name, weights_name])))
    return _with_means(fn, idx, "_COLUMN_MEANS") + f"\n\n\nSCALE = {nsde.scale!r}\n\n" + body


_SGD_STEP = '''
def sgd_step(X, gens, sizes, eta=ETA):
    """x <- x - eta * (batch mean of grad f); (P, n, DIM) states share their batch."""
    data = sample(gens, sizes)
    if X.ndim == 2:
        xc = [X[:, i, None] for i in range(DIM)]
        shape = np.broadcast_shapes(*[c.shape for c in xc], *[c.shape for c in data])
        g = _stack(_grad_f(*xc, *data), shape).mean(axis=1)
    else:
        xc = [X[:, :, i, None] for i in range(DIM)]
        dc = [c[:, None, :] for c in data]
        shape = np.broadcast_shapes(*[c.shape for c in xc], *[c.shape for c in dc])
        g = _stack(_grad_f(*xc, *dc), shape).mean(axis=2)
    return X - eta * g


def simulate_sgd(x0, n_steps, n_paths, seed, save_at=None, eta=ETA, on_nonfinite="raise", blowup_threshold=1e100):
    """SGD chains: (times, states of shape (n_times, n_paths, [n_points,] DIM)); blow-up as in ``simulate``."""
    n_steps, idx, eta = _step_arguments(n_steps, save_at, eta)
    x0, n_paths, seed, blowup_threshold, _ = _run_arguments(x0, DIM, n_paths, seed, len(idx), on_nonfinite,
                                                            blowup_threshold)
    states = _run(x0, n_paths, seed, np.full(n_steps, eta), idx,
                  lambda X, h, gens, sizes: sgd_step(X, gens, sizes, eta), on_nonfinite, blowup_threshold, "t",
                  lambda n: n * eta)
    return np.array(idx) * eta, states
'''


def _sgd_code(problem, vals, samplers):
    syms = [s for smp in samplers for s in smp.symbols]
    B = int(problem.batch_size)
    bound = {as_expr(k): sp.Float(v) for k, v in vals.items()}
    out = [_function("_grad_f", tuple(problem.params) + tuple(syms), [e.xreplace(bound) for e in problem.grad_f_compact],
                     "Per-sample gradient entries grad_x f(x, xi).")]
    arrays = sorted(k for smp in samplers for k in smp.arrays)
    lines = ["def sample(gens, sizes, B=BATCH):", '    """Data columns of shape (P, B), block by block (as smfsym.simulate_sgd)."""',
             "    cols = []"]
    if arrays:
        lines.append(f"    missing = [k for k in {arrays!r} if globals()[k] is None]")
        lines.append("    if missing:")
        lines.append("        raise ValueError(f'the data set is not embedded in this module: call set_data() with "
                     "{missing} first')")
    for smp in samplers:
        k = len(smp.symbols)
        lines.append(f"    # {doc_safe(', '.join(map(str, smp.symbols)))}")
        lines.append("    blocks = []")
        lines.append("    for g, s in zip(gens, sizes):")
        lines.append("        n = s * B")
        lines.append(f"        blocks.append(({smp.source}).reshape({k}, s, B))")
        lines.append("    cols += list(np.concatenate(blocks, axis=1))")
    lines.append("    return cols")
    out.append(f"BATCH = {B}\nDIM = {problem.dim}")
    out.append("\n".join(lines))
    out.append(_SGD_STEP)
    return "\n\n\n".join(o.strip("\n") for o in out)
