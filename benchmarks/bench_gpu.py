"""GPU back end throughput (issue 19), side by side in one run on one card.

Path-steps per second (paths x solver steps / wall seconds, after a warm-up run that compiles the
expressions and the kernels) of:

1. the d = 10 SMF of linear regression (benchmarks/bench_simulate.py: a ~ N(0, I), eps ~ N(0, 1/4),
   order-2 drift, 65 noise columns), Euler and weak order 2, Gaussian and discrete increments, on the
   chosen back end and on numpy (this machine's CPU, single process); on CuPy also with the
   experimental kernel fusion (``CupyBackend(fuse=True)``);
2. SGD on the same problem (batch 1);
3. the SMF of a logistic loss on a 1024-row data set (Euler; data means and row sums on the device);
4. a hand-written Euler loop of the same d = 10 SDE in the back end's namespace (one draw per step for
   the whole batch, the noise as (W + W^T) x / sqrt(2) from a d x d Gaussian W: the same law);
5. diffrax (JAX, float64) Euler on the same SDE, vmapped over paths, jitted, after compilation, if
   importable.
6. the mean-field DD-SMF (Euler, order 1) and mean-field SGD (batch 1) at N = 1000 particles of the
   teacher-student network a tanh(w z0 + v z1) on a 256-row data set (benchmarks/bench_meanfield.py):
   path-steps per second, one path being the whole N = 1000-particle system (particle-steps per second
   are 1000 times these).

Optionally (``--table N``) the weak-error table of the d = 3 regression study (smf1, smf2; etas 0.2,
0.1, 0.05) with N paths per run on the back end.

Run: python benchmarks/bench_gpu.py [--backend cupy|array_api_strict] [--paths P] [--quick] [--table N]
(``--backend array_api_strict --quick`` runs on the CPU: a smoke test of this script, not a benchmark).
"""
import argparse
import math
import os
import sys
import time

# JAX (the diffrax row) takes 75% of the card on its first use unless told not to; CuPy shares the card
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import numpy as np
import sympy as sp

import smfsym
from smfsym import RunOptions, SaveAt
from smfsym.backends import get_backend
from timing import regression as problem

ETA, S, T = 0.05, 0.5, 1.0





def square(X):
    return X * X


def timed(fn, backend):
    fn()  # warm-up: compiles sympy expressions and device kernels
    backend.synchronize()
    t0 = time.perf_counter()
    fn()
    backend.synchronize()
    return time.perf_counter() - t0


def smf_rate(flow, backend, scheme, increments, paths, n_steps, d):
    x0 = np.linspace(1.0, -1.0, d)
    dt = ETA / 10
    opts = RunOptions(backend=backend, progress=False)

    def go():
        smfsym.simulate(flow, x0=x0, t_end=n_steps * dt, dt=dt, eta=ETA, n_paths=paths, seed=1, scheme=scheme,
                        increments=increments, save_at=SaveAt(functions={"sq": square}, store=False), options=opts)

    return paths * n_steps / timed(go, get_backend(backend))


def sgd_rate(p, backend, paths, n_steps, d):
    opts = RunOptions(backend=backend, progress=False)

    def go():
        smfsym.simulate_sgd(p, x0=np.linspace(1.0, -1.0, d), n_steps=n_steps, eta=ETA, n_paths=paths, seed=1,
                            batch_size=1, save_at=SaveAt(functions={"sq": square}, store=False), options=opts)

    return paths * n_steps / timed(go, get_backend(backend))


def dataset_rate(backend, paths, n_steps, M=1024, d=10):
    rng = np.random.default_rng(0)
    data = np.column_stack([rng.normal(size=(M, d)), rng.choice([-1.0, 1.0], M)])
    syms = smfsym.empirical(data, [f"z{i}" for i in range(d)] + ["y"])
    z, y = syms[:d], syms[d]
    x = sp.symbols(f"x0:{d}")
    flow = smfsym.smf(smfsym.Problem(sp.log(1 + sp.exp(-y * sum(a * b for a, b in zip(x, z)))), x), order=1)

    def go():
        smfsym.simulate(flow, x0=np.zeros(d), t_end=n_steps * 0.01, dt=0.01, eta=0.1, n_paths=paths, seed=1,
                        save_at=SaveAt(functions={"sq": square}, store=False),
                        options=RunOptions(progress=False, backend=backend))

    return paths * n_steps / timed(go, get_backend(backend))


def hand_rate(backend, paths, n_steps, d):
    """The d = 10 SMF's Euler loop written by hand in the back end's namespace."""
    b = get_backend(backend)
    xp = b.xp
    g = b.generator(np.random.SeedSequence(5))
    dt = ETA / 10
    sq, c = math.sqrt(dt), math.sqrt(ETA)

    def go():
        X = b.zeros((paths, d)) + b.asarray(np.linspace(1.0, -1.0, d))
        for _ in range(n_steps):
            W = g.standard_normal((paths, d, d))
            e = g.standard_normal((paths, 1))
            Xc = xp.reshape(X, (paths, d, 1))
            Gx = xp.reshape(xp.matmul(W, Xc) + xp.matmul(xp.permute_dims(W, (0, 2, 1)), Xc), (paths, d))
            X = X - (1 + ETA / 2) * X * dt - c * sq * (Gx / math.sqrt(2.0) - S * e)
        return xp.sum(X * X)

    return paths * n_steps / timed(go, b)


def diffrax_run(n_steps, d):
    """diffrax's Euler on the d = 10 SMF (the hand loop's SDE), vmapped over PRNG keys and jitted."""
    import jax
    import jax.numpy as jnp
    import diffrax

    jax.config.update("jax_enable_x64", True)
    dt = ETA / 10
    eye = jnp.eye(d)

    def drift(t, x, args):
        return -(1 + ETA / 2) * x

    def diffusion(t, x, args):
        T_ = (eye[:, :, None] * x[None, None, :] + eye[:, None, :] * x[None, :, None]) / math.sqrt(2.0)
        return -math.sqrt(ETA) * jnp.concatenate([T_.reshape(d, d * d), -S * jnp.ones((d, 1))], axis=1)

    # no gradients are taken; diffrax's default (checkpointed) adjoint refuses UnsafeBrownianPath
    adjoint = diffrax.ForwardMode() if hasattr(diffrax, "ForwardMode") else diffrax.DirectAdjoint()

    def solve(key):
        bm = diffrax.UnsafeBrownianPath(shape=(d * d + 1,), key=key)
        terms = diffrax.MultiTerm(diffrax.ODETerm(drift), diffrax.ControlTerm(diffusion, bm))
        sol = diffrax.diffeqsolve(terms, diffrax.Euler(), 0.0, n_steps * dt, dt, jnp.linspace(1.0, -1.0, d),
                                  saveat=diffrax.SaveAt(t1=True), max_steps=n_steps + 1, adjoint=adjoint)
        return sol.ys[-1]

    return jax.jit(jax.vmap(solve))


def diffrax_keys(paths, seed=0):
    import jax

    return jax.random.split(jax.random.PRNGKey(seed), paths)


def diffrax_rate(paths, n_steps, d):
    import jax

    if jax.default_backend() != "gpu":  # a CPU JAX would take minutes on these paths and compare nothing
        raise RuntimeError(f"JAX runs on {jax.default_backend()!r} here, not on the GPU: not measured")
    run, keys = diffrax_run(n_steps, d), diffrax_keys(paths)
    run(keys).block_until_ready()
    t0 = time.perf_counter()
    run(keys).block_until_ready()
    return paths * n_steps / (time.perf_counter() - t0)


def meanfield_net(M=256):
    """The issue-8 teacher-student network of benchmarks/bench_meanfield.py on an M-row data set."""
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(M, 2))
    a, w, v, out = sp.symbols("a w v out")
    z0, z1, y = smfsym.empirical(np.column_stack([Z, np.tanh(Z[:, 0] - Z[:, 1])]), "z0 z1 y")
    return smfsym.MeanFieldProblem(a * sp.tanh(w * z0 + v * z1), (a, w, v), out, (out - y) ** 2 / 2)


def meanfield_rate(net, backend, method, paths, n_steps, N=1000):
    """Path-steps per second (a path: N particles) of the DD-SMF ("ddsmf") or mean-field SGD ("sgd")."""
    from smfsym.meanfield import MeanFieldOptions

    th = smfsym.particles(net, N, seed=0)
    opts = MeanFieldOptions(backend=backend, progress=False)

    def go():
        if method == "ddsmf":
            smfsym.simulate_ddsmf(net, th, eta=0.02, t_end=n_steps * 0.02, n_paths=paths, seed=1, options=opts)
        else:
            smfsym.simulate_meanfield_sgd(net, th, eta=0.02, n_steps=n_steps, n_paths=paths, seed=1, options=opts)

    return paths * n_steps / timed(go, get_backend(backend))


def table(backend, n_paths):
    p = problem(3)
    x = p.params
    t0 = time.perf_counter()
    st = smfsym.weak_error(p, sum(xi**2 for xi in x), [1.0, 0.5, -0.5], 1.0, [0.2, 0.1, 0.05],
                           models=["smf1", "smf2"], n_paths=n_paths, seed=7,
                           numerics=smfsym.Numerics(method="montecarlo"),
                           options=RunOptions(backend=backend, progress=False))
    print(f"\n## weak-error table, d = 3 regression, {n_paths:.3g} paths per run, backend {backend.name} "
          f"({time.perf_counter() - t0:.1f} s)")
    print("| model | eta | error | se |")
    print("|---|---|---|---|")
    for r in st.rows:
        print(f"| {r['model']} | {r['eta']:g} | {r['error']:.4g} | {r['se']:.2g} |")
    print("orders:", {m: round(o.slope, 3) for m, o in st.orders.items()})


def _attempt(fn):
    """fn() or, if it fails, the error as text (one failed measurement does not stop the others)."""
    if fn is None:
        return None
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - reported in the table
        return f"failed: {type(exc).__name__}: {str(exc)[:100]}"


def row(name, dev, ref=None):
    """One table row from two thunks (back end, numpy reference): rates, or the error of a failed one."""
    dev, ref = _attempt(dev), _attempt(ref)
    both = isinstance(dev, float) and isinstance(ref, float)
    fmt = lambda v: "-" if v is None else (f"{v:.3g}" if isinstance(v, float) else v)  # noqa: E731
    print(f"| {name} | {fmt(dev)} | {fmt(ref)} | {f'{dev / ref:.1f}' if both else ''} |", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="cupy")
    ap.add_argument("--paths", type=int, default=None, help="paths on the back end (default 2**20; quick 8192)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--table", type=int, default=0, help="also the weak-error table with this many paths")
    a = ap.parse_args(argv)
    d = 10
    P = a.paths or (8192 if a.quick else 2**20)
    Pn = 4096 if a.quick else 50_000  # numpy reference
    n = 5 if a.quick else 20
    b = get_backend(a.backend)
    free = b.free_memory()
    print(f"# bench_gpu: backend {b.name} ({b.dtype_name}), {P} paths x {n} steps; numpy {Pn} paths; "
          f"device free memory {'-' if free is None else f'{free / 2**30:.1f} GiB'}")
    try:
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(0)
        print(f"# card: {props['name'].decode() if isinstance(props['name'], bytes) else props['name']}")
    except Exception:  # noqa: BLE001
        print("# card: none (CPU)")
    flow, p = smfsym.smf(problem(d), order=2), problem(d)
    print("\n| path-steps / s | backend | numpy | ratio |")
    print("|---|---|---|---|")
    for scheme in ("euler", "weak2"):
        for inc in ("gaussian", "discrete"):
            steps = n if scheme == "euler" else max(2, n // 4)
            row(f"SMF d=10 {scheme} {inc}", lambda: smf_rate(flow, b, scheme, inc, P, steps, d),
                lambda: smf_rate(flow, "numpy", scheme, inc, Pn, steps, d))
    if b.name == "cupy":  # the experimental kernel fusion (cupy.fuse of each lambdified expression list)
        from smfsym.backends import CupyBackend

        fb = CupyBackend(fuse=True)
        for scheme in ("euler", "weak2"):
            steps = n if scheme == "euler" else max(2, n // 4)
            row(f"SMF d=10 {scheme} gaussian, fused", lambda: smf_rate(flow, fb, scheme, "gaussian", P, steps, d))
        print(f"# fuse: {fb.fuse_failures} lambdified functions ran unfused")
    row("SGD d=10 batch 1", lambda: sgd_rate(p, b, P, n, d), lambda: sgd_rate(p, "numpy", Pn, n, d))
    row("SMF 1024-row data set (logistic, d=10), euler", lambda: dataset_rate(b, max(4096, P // 8), 5),
        lambda: dataset_rate("numpy", max(512, Pn // 50), 5))
    row("hand-written Euler loop, same SDE", lambda: hand_rate(b, P, n, d), lambda: hand_rate("numpy", Pn, n, d))
    mf = meanfield_net()
    Pm, Pmn = (32, 8) if a.quick else (min(P, 4096), 32)  # a path holds 1000 particles x 256 data rows
    for method, label in (("ddsmf", "mean-field DD-SMF euler"), ("sgd", "mean-field SGD batch 1")):
        row(f"{label}, N=1000, 256-row data (path = 1000 particles)",
            lambda: meanfield_rate(mf, b, method, Pm, 2 if a.quick else 5),
            lambda: meanfield_rate(mf, "numpy", method, Pmn, 2 if a.quick else 3))
    # last: JAX compiles for tens of seconds and keeps its own memory pool on the card
    row("diffrax Euler (JAX, vmapped, jitted), same SDE", lambda: diffrax_rate(min(P, 2**18), n, d))
    if a.table:
        table(b, a.table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
