"""Standalone simulator code: a readable numpy-only module for an SDE (and its SGD).

The module mirrors smfsym's numerics exactly (same expressions, same common
subexpressions, same block-wise random streams), so it reproduces
:func:`smfsym.simulate` and :func:`smfsym.simulate_sgd` for the same seed.
"""
from __future__ import annotations

import datetime
import textwrap
from typing import Mapping

import numpy as np
import sympy as sp
from sympy.printing.numpy import NumPyPrinter

from ._checks import numeric_values
from .compile import _cse
from .engine import BLOCK
from .expectation import DataMean
from .numeric import NumericSDE
from .problem import Problem
from .samplers import samplers_for
from .sde import SDE
from ._checks import as_expr

__all__ = ["codegen"]

#: Arrays up to this many numbers are written into generated code; larger data sets are passed in.
EMBED_LIMIT = 1000


def _function(name, args, exprs, doc):
    """Source of ``def name(args): ... return [exprs]`` with collision-free cse."""
    import keyword

    names, seen = [], {"np", "numpy"}
    for i, a in enumerate(args):
        n = str(a) if not isinstance(a, sp.Dummy) else str(a.name)
        if not n.isidentifier() or keyword.iskeyword(n) or n in seen or n.startswith("_"):
            n = f"arg{i}"
        seen.add(n)
        names.append(n)
    sub = {a: sp.Symbol(n) for a, n in zip(args, names)}
    exprs = [as_expr(e).xreplace(sub) for e in exprs]
    for e in exprs:
        if e.atoms(DataMean):
            raise NotImplementedError(
                "code generation of data means (non-polynomial losses, data sets) is not supported yet; "
                "use smfsym.simulate."
            )
    printer = NumPyPrinter({"fully_qualified_modules": True, "inline": True, "allow_unknown_functions": False})
    reps, reduced = _cse(exprs)
    lines = [f"def {name}({', '.join(names)}):", f'    """{doc}"""']
    for sym, e in reps:
        lines.append(f"    {sym} = {printer.doprint(e)}")
    lines.append("    return [" + ", ".join(printer.doprint(e) for e in reduced) + "]")
    return "\n".join(lines)


_RUNTIME = '''
BLOCK = {block}


def _stack(outs, shape):
    res = np.empty(shape + (len(outs),))
    for i, o in enumerate(outs):
        res[..., i] = o
    return res


def _cols(X):
    return [X[..., i] for i in range(X.shape[-1])]


def _ucols(U, X):
    extra = X.ndim - 2
    return [U[(slice(None), k) + (None,) * extra] for k in range(U.shape[1])]


def _run(x0, n_paths, seed, steps, index, step):
    """Drive step(X, h, gens, sizes) over the step sizes, saving after the steps in ``index``."""
    x0 = np.asarray(x0, dtype=float)
    n_blocks = -(-n_paths // BLOCK)
    sizes = [min(BLOCK, n_paths - b * BLOCK) for b in range(n_blocks)]
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    gens = block_generators(ss, 0, n_blocks)
    X = np.broadcast_to(x0, (n_paths,) + x0.shape).copy()
    states = np.empty((len(index), n_paths) + x0.shape)
    si = 0
    while si < len(index) and index[si] == 0:
        states[si] = X
        si += 1
    for n, h in enumerate(steps, start=1):
        X = step(X, h, gens, sizes)
        while si < len(index) and index[si] == n:
            states[si] = X
            si += 1
    return states
'''


def _runtime() -> str:
    """Shared helpers of a generated module: smfsym's own functions, copied verbatim."""
    import inspect

    from .engine import block_generators, draw_normal
    from .simulate import grid

    own = "\n\n".join(inspect.getsource(f) for f in (block_generators, draw_normal, grid))
    return _RUNTIME.format(block=BLOCK) + "\n\n" + own


def codegen(obj, *, eta: float | None = None, values: Mapping | None = None, problem: Problem | None = None,
            path=None) -> str:
    """Standalone numpy-only Python source simulating an SDE (and SGD).

    Parameters
    ----------
    obj : SDE or Problem
        An SDE (its problem, if any, also gets an SGD step), or a Problem (SGD only).
    eta : float
        The learning rate, bound into the code.
    values : mapping, optional
        Numbers for constants and law parameters.
    path : str or Path, optional
        Also write the module there.

    Returns
    -------
    str
        The module's source: ``drift``, ``noise``, ``diffusion``, ``sgd_step``,
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
    """
    sde = obj if isinstance(obj, SDE) else None
    if sde is None and not isinstance(obj, Problem):
        raise TypeError(f"`obj` must be a smfsym.SDE or Problem; got {type(obj).__name__}.")
    problem = problem or (obj if isinstance(obj, Problem) else obj.problem)
    if eta is None or not np.isfinite(eta) or eta <= 0:
        raise ValueError(f"`eta` must be a positive number; got {eta!r}.")
    from .sgd import problem_symbols
    from .simulate import _known_symbols

    known = (_known_symbols(sde) if sde is not None else set()) | (problem_symbols(problem) if problem else set())
    vals = numeric_values(values, known)
    parts = []
    title = sde.title if sde is not None else "SGD"
    header = f'''"""Simulator generated by smfsym on {datetime.date.today().isoformat()}: {title}.

Needs only numpy. Learning rate eta = {eta!r} and all constants are bound below.
'''
    if sde is not None:
        vals[sde.eta] = float(eta)
        header += "\nState: " + ", ".join(map(str, sde.state)) + "\nDrift b(x):\n" + "\n".join(
            "    " + str(e) for e in sde.drift) + "\n"
    parts.append(header + '"""\nimport numpy\nimport numpy as np\n\nETA = ' + repr(float(eta)))
    parts.append(_runtime())
    if sde is not None:
        parts.append(_sde_code(sde, vals))
    if problem is not None:
        parts.append(_sgd_code(problem, eta, vals))
    src = "\n\n\n".join(p.strip("\n") for p in parts) + "\n"
    if path is not None:
        from pathlib import Path

        Path(path).write_text(src)
    return src


def _sde_code(sde, vals):
    nsde = NumericSDE(sde, vals)
    d, m = nsde.d, nsde.m
    out = [f"D = {d}  # state dimension\nM = {m}  # independent Brownian motions\n\n"]
    out.append(_function("_drift", nsde.x, nsde.drift_exprs, "Drift entries."))
    out.append(textwrap.dedent('''
        def drift(X):
            """b(X) for states X of shape (..., D)."""
            return _stack(_drift(*_cols(X)), X.shape[:-1])
    '''))
    if nsde.kind == "matrix":
        cols = [[nsde.diffusion_matrix[i, k] for i in range(d)] for k in range(m)]
        out.append(_function("_noise", nsde.x + nsde.u, nsde.noise_exprs, "sigma(x) u, entry by entry."))
        out.append(_function("_columns", nsde.x, [e for c in cols for e in c],
                             "The noise columns sigma_k(x), column by column."))
        out.append(textwrap.dedent('''
            def noise(X, U):
                """sigma(X) U for increments U of shape (P, M)."""
                if M == 0:
                    return np.zeros_like(X)
                cols = _cols(X)
                shape = np.broadcast_shapes(*[c.shape for c in cols], *[u.shape for u in _ucols(U, X)])
                return _stack(_noise(*cols, *_ucols(U, X)), shape)


            def diffusion(X):
                """The d x m diffusion matrix at states X: shape (..., D, M)."""
                return _stack(_columns(*_cols(X)), X.shape[:-1]).reshape(X.shape[:-1] + (M, D)).swapaxes(-1, -2)
        '''))
    elif nsde.kind == "sqrt":
        out.append(f"SCALE = {nsde.scale!r}")
        out.append(_function("_sigma", nsde.x, nsde.sigma_exprs, "Entries of Sigma(x), row by row."))
        out.append(textwrap.dedent('''
            def sqrt_sigma(X):
                """Symmetric square root of Sigma(X) by batched eigh (tiny negative eigenvalues clipped)."""
                S = _stack(_sigma(*_cols(X)), X.shape[:-1]).reshape(X.shape[:-1] + (D, D))
                lam, V = np.linalg.eigh(S)
                return np.einsum("...ij,...j,...kj->...ik", V, np.sqrt(np.clip(lam, 0.0, None)), V)


            def noise(X, U):
                """sqrt(eta) Sigma(X)^{1/2} U."""
                return SCALE * np.einsum("...ij,...j->...i", sqrt_sigma(X), U.reshape(U.shape[:1] + (1,) * (X.ndim - 2) + U.shape[1:]))
        '''))
    else:
        raise NotImplementedError("code generation of data-set noise columns is not supported yet.")
    out.append(textwrap.dedent('''
        def euler_step(X, dt, Z):
            """Euler-Maruyama (weak order 1)."""
            out = X + dt * drift(X)
            if M:
                out += noise(X, np.sqrt(dt) * Z[:, 0])
            return out


        def simulate(x0, t_end, n_paths, seed, dt=ETA / 10, save_at=None):
            """Euler-Maruyama paths: (times, states of shape (n_times, n_paths, [n_points,] D)).

            An (n, D) x0 runs the n-point motion (one noise for all points).
            """
            saves = np.unique(np.clip(np.atleast_1d(np.asarray([t_end] if save_at is None else save_at, dtype=float)), 0, t_end))
            steps, index, times = grid(saves, float(dt))

            def step(X, h, gens, sizes):
                Z = draw_normal(gens, sizes, (1, M)) if M else np.zeros((X.shape[0], 1, 0))
                return euler_step(X, h, Z)

            return times, _run(x0, n_paths, seed, steps, index, step)
    '''))
    return "\n\n\n".join(o.strip("\n") for o in out)


def _sgd_code(problem, eta, vals):
    samplers = samplers_for(problem.laws, vals)
    syms = [s for smp in samplers for s in smp.symbols]
    B = int(problem.batch_size)
    if problem.sampling != "iid":
        raise NotImplementedError("code generation of without-replacement batches is not supported yet.")
    out = [_function("_grad_f", tuple(problem.params) + tuple(syms), [e.xreplace({as_expr(k): sp.Float(v) for k, v in vals.items()}) for e in problem.grad_f_compact],
                     "Per-sample gradient entries grad_x f(x, xi).")]
    arrays = {k: v for smp in samplers for k, v in smp.arrays.items()}
    consts = []
    for name, arr in arrays.items():
        if arr.size <= EMBED_LIMIT:
            consts.append(f"{name} = np.array({arr.tolist()!r})")
        else:  # a data set is an argument of the module, never text in it
            consts.append(f"{name} = None  # shape {arr.shape}: pass it with set_data({name}=...)")
    lines = ["def sample(gens, sizes, B=BATCH):", '    """Data columns of shape (P, B), block by block (as smfsym.simulate_sgd)."""',
             "    cols = []"]
    if arrays:
        lines.append(f"    missing = [k for k in {sorted(arrays)!r} if globals()[k] is None]")
        lines.append("    if missing:")
        lines.append("        raise ValueError(f'the data set is not embedded in this module: call set_data() with "
                     "{missing} first')")
    for smp in samplers:
        k = len(smp.symbols)
        lines.append(f"    # {', '.join(map(str, smp.symbols))}")
        lines.append("    blocks = []")
        lines.append("    for g, s in zip(gens, sizes):")
        lines.append("        n = s * B")
        lines.append(f"        blocks.append(({smp.source}).reshape({k}, s, B))")
        lines.append("    cols += list(np.concatenate(blocks, axis=1))")
    lines.append("    return cols")
    out.append(f"BATCH = {B}\nDIM = {problem.dim}")
    if arrays:
        out.append("\n".join(consts))
        shapes = {k: v.shape for k, v in arrays.items()}
        out.append(textwrap.dedent(f'''
            def set_data(**arrays):
                """Bind the data arrays (the ones smfsym used: law.data and law.weights)."""
                shapes = {shapes!r}
                for k, v in arrays.items():
                    if k not in shapes:
                        raise ValueError(f"unknown data array {{k!r}}; expected {{sorted(shapes)}}")
                    v = np.ascontiguousarray(v, dtype=float)
                    if v.shape != shapes[k]:
                        raise ValueError(f"`{{k}}` must have shape {{shapes[k]}}; got {{v.shape}}")
                    globals()[k] = v
        '''))
    out.append("\n".join(lines))
    out.append(textwrap.dedent('''
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


        def simulate_sgd(x0, n_steps, n_paths, seed, save_at=None, eta=ETA):
            """SGD chains: (times, states of shape (n_times, n_paths, [n_points,] DIM))."""
            idx = [n_steps] if save_at is None else sorted(set(int(k) for k in np.atleast_1d(save_at)))
            states = _run(x0, n_paths, seed, np.full(n_steps, eta), idx,
                          lambda X, h, gens, sizes: sgd_step(X, gens, sizes, eta))
            return np.array(idx) * eta, states
    '''))
    return "\n\n\n".join(o.strip("\n") for o in out)
