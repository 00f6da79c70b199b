"""smfsym against peer SDE libraries on the CPU (issue 17): diffrax, torchsde, a hand-written jax loop.

The SDE is section 1 of ``bench_simulate.py``: the order-2 SMF of linear regression with Gaussian
features, d = 10 (65 noise columns), eta = 0.05, x0 = linspace(1, -1, 10), t_end = 1, Euler with
dt = eta / 10 (200 steps), float64 everywhere. Every peer evaluates the SAME coefficients: smfsym's
sympy drift and diffusion matrix (``sde.drift``, ``sde.diffusion`` at eta = 0.05) lambdified with
``sympy.lambdify`` to jax.numpy (per path, then ``jax.vmap``) or, for torch, to a batched function
(the same expressions, one array of paths per symbol).

Rows, side by side in one run, at 2,048 and 100,000 paths:

- **smfsym**: ``smfsym.simulate(..., scheme="euler")`` (Gaussian increments), warm: a first call
  compiles the SDE (cached), the timed calls reuse it;
- **diffrax**: ``diffeqsolve`` with ``Euler()``, ``MultiTerm(ODETerm, ControlTerm)``, fixed step, an
  ``UnsafeBrownianPath`` (fresh increments per step: the cheapest Brownian motion diffrax offers for a
  fixed-step solve; ``VirtualBrownianTree`` costs more; it needs ``adjoint=ForwardMode()``),
  ``jax.vmap`` over the paths' keys, ``jax.jit``;
  compile time (``.lower().compile()``) is reported apart from the compiled run;
- **jax scan**: a hand-written ``jax.lax.scan`` Euler loop on all paths at once, the increments drawn
  per step with ``jax.random.normal`` (jitted, compile reported apart);
- **jax scan, structured**: the same loop with the SDE written by hand from its structure, as
  ``bench_simulate.hand_smf`` (a symmetric Gaussian matrix times x, by small 0/1 matmuls), not from
  the lambdified matrix: what jax does with the least arithmetic;
- **torchsde**: ``torchsde.sdeint(method="euler")`` batched over paths, general noise (skipped when
  torch / torchsde are absent).

For each row: wall seconds, CPU seconds of the process (all threads: XLA and torch may use both
cores, numpy's elementwise work does not), path-steps per wall second, the ratio of wall time to
smfsym's, and E|X_1|^2 with its standard error; the script checks that every row's E|X_1|^2 agrees
with smfsym's within 4 standard errors of the difference.

The peers are NOT dependencies of smfsym: install them in a separate environment, e.g.
``python -m venv --system-site-packages /tmp/peers-venv && /tmp/peers-venv/bin/pip install jax diffrax``,
then ``PYTHONPATH=$PWD /tmp/peers-venv/bin/python benchmarks/bench_peers.py``. Without them the
script prints smfsym's rows and a note for each missing peer.

A last row times the scan's random draws alone (threefry normals in float64, 65 per path-step), which
tells how much of the jax rows is the generator rather than the Euler step.

Run: python benchmarks/bench_peers.py [--quick]   (--quick: 2,048 and 20,000 paths, one timed call;
otherwise best of 3 calls at 2,048 paths and one call at 100,000). XLA runs large operations on
several threads (CPU above wall in the table; ``XLA_FLAGS`` thread options had no effect with jaxlib
0.10); for one core each, as numpy's elementwise work, run it under ``taskset -c 0``.
"""
import os
import sys
import time

import numpy as np
import sympy as sp

import smfsym

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_simulate import ETA, S, T, problem  # noqa: E402  (the same SDE as section 1 there)

QUICK = "--quick" in sys.argv
D = 10
DT = ETA / 10
N_STEPS = int(round(T / DT))
SIZES = (2048, 20_000) if QUICK else (2048, 100_000)

def repeats(n_paths):
    """Timed calls per row: best of 3 for small runs, one call for the large ones (the run stays minutes)."""
    return 1 if QUICK or n_paths > 10_000 else 3

X0 = np.linspace(1.0, -1.0, D)


def coefficients():
    """The SMF and its drift (d,) and diffusion (d, m) at eta = ETA as sympy matrices of the state, numbers as
    floats (no ``sqrt(2)`` left for a backend to evaluate)."""
    flow = smfsym.smf(problem(D), order=2)
    sub = {flow.eta: ETA}
    return flow, flow.drift.xreplace(sub).evalf(), flow.diffusion.xreplace(sub).evalf()


def timed(fn):
    """Wall and process-CPU seconds of one call, and its value."""
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w, time.process_time() - c, out


def best_of(fn, repeat):
    """The call with the least wall time of ``repeat``: (wall, cpu, value)."""
    return min((timed(fn) for _ in range(repeat)), key=lambda r: r[0])


def moments(x_end):
    """E|X|^2 and its standard error from final states (paths, d)."""
    sq = np.sum(np.asarray(x_end, dtype=float) ** 2, axis=1)
    return sq.mean(), sq.std(ddof=1) / np.sqrt(len(sq))


def run_smfsym(flow, n_paths):
    def go():
        r = smfsym.simulate(flow, X0, T, eta=ETA, dt=DT, n_paths=n_paths, seed=0,
                            save_at=smfsym.SaveAt(store=False, functions={"sq": lambda X: (X ** 2).sum(-1)}))
        return r.mean("sq")[-1], r.sem("sq")[-1]

    # warm: a first (small) call compiles the SDE; the timed calls reuse the compiled SDE
    smfsym.simulate(flow, X0, DT, eta=ETA, dt=DT, n_paths=16, seed=0, save_at=smfsym.SaveAt(store=False))
    wall, cpu, (m, se) = best_of(go, repeats(n_paths))
    return {"wall": wall, "cpu": cpu, "mean": m, "sem": se}


def jax_rows(state, drift, diffusion, n_paths):
    """diffrax and the hand-written scan, or notes saying why not."""
    try:
        import jax
    except ImportError:
        return dict.fromkeys(("diffrax", "jax scan", "jax scan, structured", "jax draws alone"), "jax not installed")
    jax.config.update("jax_enable_x64", True)  # float64, as smfsym
    import jax.numpy as jnp

    f_drift = sp.lambdify([list(state)], list(drift), modules="jax")
    f_diff = sp.lambdify([list(state)], diffusion.tolist(), modules="jax")
    m = diffusion.shape[1]

    def b(y):  # per path: (d,) -> (d,)
        return jnp.stack([jnp.asarray(v, dtype=y.dtype) * jnp.ones((), y.dtype) for v in f_drift(y)])

    def sig(y):  # per path: (d,) -> (d, m)
        return jnp.stack([jnp.stack([jnp.asarray(v, dtype=y.dtype) * jnp.ones((), y.dtype) for v in row])
                          for row in f_diff(y)])

    x0 = jnp.asarray(X0)
    keys = jax.random.split(jax.random.PRNGKey(0), n_paths)
    rows = {}

    def report(fn, arg):
        t0 = time.perf_counter()
        compiled = jax.jit(fn).lower(arg).compile()
        comp = time.perf_counter() - t0
        wall, cpu, out = best_of(lambda: np.asarray(compiled(arg).block_until_ready()), repeats(n_paths))
        mean, se = moments(out)
        return {"wall": wall, "cpu": cpu, "mean": mean, "sem": se, "compile": comp}

    try:
        import diffrax
    except ImportError:
        rows["diffrax"] = "diffrax not installed"
    else:
        def one_path(key):
            bm = diffrax.UnsafeBrownianPath(shape=(m,), key=key)
            terms = diffrax.MultiTerm(diffrax.ODETerm(lambda t, y, a: b(y)),
                                      diffrax.ControlTerm(lambda t, y, a: sig(y), bm))
            sol = diffrax.diffeqsolve(terms, diffrax.Euler(), 0.0, T, DT, x0, saveat=diffrax.SaveAt(t1=True),
                                      max_steps=N_STEPS + 8, adjoint=diffrax.ForwardMode())
            return sol.ys[-1]

        rows["diffrax"] = report(jax.vmap(one_path), keys)

    vb, vsig = jax.vmap(b), jax.vmap(sig)
    sq = float(np.sqrt(DT))

    def scan(key):
        def step(X, k):
            dW = jax.random.normal(k, (n_paths, m), dtype=X.dtype) * sq
            return X + vb(X) * DT + jnp.einsum("pij,pj->pi", vsig(X), dW), None

        X, _ = jax.lax.scan(step, jnp.tile(x0, (n_paths, 1)), jax.random.split(key, N_STEPS))
        return X

    rows["jax scan"] = report(scan, jax.random.PRNGKey(1))

    # the same SDE written by hand from its structure (bench_simulate.hand_smf): noise
    # -sqrt(eta) (G x - s dB_eps) with G symmetric; column c of the upper triangle, entry (r, q), adds
    # dB_c x_q to coordinate r and dB_c x_r to coordinate q: 0/1 matrices pick and scatter by matmul
    # (cheaper than a gather on XLA's CPU backend), about 200 products per path-step instead of 650
    iu = np.triu_indices(D, 1)
    k = len(iu[0])
    pick_r, pick_q = np.eye(D)[:, iu[0]], np.eye(D)[:, iu[1]]  # (D, k): X @ pick_r = X[:, iu[0]]
    pick_r, pick_q = jnp.asarray(pick_r), jnp.asarray(pick_q)

    def structured(key):
        def step(X, kk):
            dB = jax.random.normal(kk, (n_paths, m), dtype=X.dtype) * sq
            up = dB[:, :k]
            noise = ((up * (X @ pick_q)) @ pick_r.T + (up * (X @ pick_r)) @ pick_q.T
                     + np.sqrt(2.0) * dB[:, k:k + D] * X - S * dB[:, k + D:])
            return X * (1 - (1 + ETA / 2) * DT) - np.sqrt(ETA) * noise, None

        X, _ = jax.lax.scan(step, jnp.tile(x0, (n_paths, 1)), jax.random.split(key, N_STEPS))
        return X

    rows["jax scan, structured"] = report(structured, jax.random.PRNGKey(3))

    def draws(key):  # the scan's random draws alone (threefry, float64), to read the rows above
        def step(X, k):
            return X + jax.random.normal(k, (n_paths, m), dtype=X.dtype)[:, :D] * sq, None

        X, _ = jax.lax.scan(step, jnp.tile(x0, (n_paths, 1)), jax.random.split(key, N_STEPS))
        return X

    t0 = time.perf_counter()
    compiled = jax.jit(draws).lower(jax.random.PRNGKey(2)).compile()
    comp = time.perf_counter() - t0
    wall, cpu, _ = best_of(lambda: compiled(jax.random.PRNGKey(2)).block_until_ready(), repeats(n_paths))
    rows["jax draws alone"] = {"wall": wall, "cpu": cpu, "compile": comp}
    return rows


def torch_row(state, drift, diffusion, n_paths):
    """torchsde, batched, general noise, or a note saying why not."""
    try:
        import torch
        import torchsde
    except ImportError:
        return "torch / torchsde not installed"
    torch.set_default_dtype(torch.float64)
    # batched: each symbol receives a (paths,) tensor; constants are broadcast below
    f_drift = sp.lambdify([list(state)], list(drift), modules="math")
    f_diff = sp.lambdify([list(state)], diffusion.tolist(), modules="math")

    def full(v, like):
        return v if torch.is_tensor(v) else torch.full_like(like, float(v))

    class SMF(torch.nn.Module):
        noise_type, sde_type = "general", "ito"

        def f(self, t, y):
            cols = list(y.T)
            return torch.stack([full(v, cols[0]) for v in f_drift(cols)], dim=1)

        def g(self, t, y):
            cols = list(y.T)
            return torch.stack([torch.stack([full(v, cols[0]) for v in row], dim=1) for row in f_diff(cols)], dim=1)

    torch.manual_seed(0)
    y0 = torch.tensor(X0).repeat(n_paths, 1)
    ts = torch.tensor([0.0, T])
    wall, cpu, out = best_of(lambda: torchsde.sdeint(SMF(), y0, ts, method="euler", dt=DT)[-1].numpy(),
                             repeats(n_paths))
    mean, se = moments(out)
    return {"wall": wall, "cpu": cpu, "mean": mean, "sem": se}


def versions():
    out = [f"smfsym {getattr(smfsym, '__version__', '?')}", f"numpy {np.__version__}", f"sympy {sp.__version__}"]
    for name in ("jax", "jaxlib", "diffrax", "equinox", "torch", "torchsde"):
        try:
            out.append(f"{name} {__import__(name).__version__}")
        except ImportError:
            pass
    return ", ".join(out)


def main():
    flow, drift, diffusion = coefficients()
    print(f"# smfsym vs peers: SMF d = {D} ({flow.n_noise} noise columns), Euler, dt = {DT:g}, {N_STEPS} steps, "
          f"t_end = {T:g}, float64")
    print(f"versions: {versions()}; CPUs usable: {len(os.sched_getaffinity(0))}; "
          f"load average {os.getloadavg()[0]:.2f}")
    print()
    print("| method | paths | steps | wall (s) | CPU (s) | compile (s) | path-steps / s | wall / smfsym | "
          "CPU / smfsym | E|X_1|^2 +- SE | agrees (4 SE) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
    notes, failures = set(), []
    for n in SIZES:
        rows = {"smfsym": run_smfsym(flow, n)}
        rows.update(jax_rows(flow.state, drift, diffusion, n))
        rows["torchsde"] = torch_row(flow.state, drift, diffusion, n)
        ref = rows["smfsym"]
        for name, r in rows.items():
            if isinstance(r, str):
                notes.add(f"{name}: {r}")
                continue
            comp = f"{r['compile']:.2f}" if "compile" in r else "-"
            check = "- | -"
            if "mean" in r:
                z = abs(r["mean"] - ref["mean"]) / np.hypot(r["sem"], ref["sem"]) if name != "smfsym" else 0.0
                if z > 4:
                    failures.append(f"{name} at {n} paths: {z:.1f} SE from smfsym")
                check = f"{r['mean']:.4f} +- {r['sem']:.4f} | {'yes' if z <= 4 else 'NO'} ({z:.1f} SE)"
            print(f"| {name} | {n} | {N_STEPS} | {r['wall']:.3f} | {r['cpu']:.3f} | {comp} | "
                  f"{n * N_STEPS / r['wall']:.3g} | {r['wall'] / ref['wall']:.2f} | {r['cpu'] / ref['cpu']:.2f} | "
                  f"{check} |")
    print()
    for note in sorted(notes):
        print(f"skipped: {note}")
    if failures:
        raise SystemExit("E|X_1|^2 disagrees: " + "; ".join(failures))


if __name__ == "__main__":
    main()
