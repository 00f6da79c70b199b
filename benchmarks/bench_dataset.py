"""Data-set SMF speed (issue 17 item 1), measured side by side in one run.

Logistic regression on a data set of M rows (features z ~ N(0, I_d), labels y = +-1, uniform
weights), f = log(1 + exp(-y <z, x>)), the SMF of order 1 with its M explicit noise columns,
Euler-Maruyama, 512 paths, eta = 0.1, dt = 0.01. For d = 2 and 10 and M = 64, 256, 1024, 4096:

- smfsym: the compiled Euler step (``EulerMaruyama().step`` on a ``NumericSDE``: the linear-algebra
  path, margins as one matmul, per-row scalars once, drift and noise as matmuls);
- gen: the generated standalone module's ``euler_step`` (``smfsym.codegen``);
- simulate: ``smfsym.simulate`` as a user calls it (engine, seed blocks, statistics; its compile is a
  fixed cost of about a second, so this column is noisier);
- general: the compiled step with ``linear_algebra=False`` (the general per-row evaluation), M <= 1024;
- hand: a hand-written numpy step with the same arithmetic: margins m = X A^T (one matmul,
  A = y z), s = 1 / (1 + exp(m)), drift s @ (w A), noise sqrt(eta) (grad F (U @ sqrt(w)) +
  (s * U) @ (sqrt(w) A)).

The step columns (hand, smfsym, gen, general) run the same loop: normals drawn by numpy, then one
step. Marginal cost: (time(2N steps) - time(N steps)) / N, so compile and setup do not count; the
columns are timed in turn, round after round, each keeping its best of ``REPEAT`` runs. BLAS runs
single-threaded for every column alike (OPENBLAS_NUM_THREADS=1, set before numpy loads): on a
shared 2-core machine a threaded BLAS spins against the other processes and times its own
contention, not the arithmetic.

Run: python benchmarks/bench_dataset.py [--quick]
"""
import os

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import sys  # noqa: E402
import time  # noqa: E402
import types  # noqa: E402

import numpy as np  # noqa: E402
import sympy as sp  # noqa: E402

import smfsym  # noqa: E402

ETA, DT, P = 0.1, 0.01, 512
QUICK = "--quick" in sys.argv
N = 10 if QUICK else 40
REPEAT = 2 if QUICK else 4


def make(d, M, seed=0):
    rng = np.random.default_rng(seed)
    data = np.column_stack([rng.normal(size=(M, d)), rng.choice([-1.0, 1.0], M)])
    syms = smfsym.empirical(data, [f"z{i}" for i in range(d)] + ["y"])
    z, y = syms[:d], syms[d]
    x = sp.symbols(f"x0:{d}")
    p = smfsym.Problem(sp.log(1 + sp.exp(-y * sum(a * b for a, b in zip(x, z)))), x)
    return p, smfsym.smf(p, order=1), data


def hand_stepper(data, d):
    """The same SDE's Euler step by hand (see the module docstring)."""
    M = data.shape[0]
    A = data[:, :d] * data[:, d:]  # rows y_i z_i
    w = np.full(M, 1.0 / M)
    Aw, Asw, sw = A * w[:, None], A * np.sqrt(w)[:, None], np.sqrt(w)[:, None]
    At = np.ascontiguousarray(A.T)
    sq, se = np.sqrt(DT), np.sqrt(ETA)

    def step(X, Z):
        U = Z[:, 0]
        s = 1.0 / (1.0 + np.exp(X @ At))
        b = s @ Aw  # -grad F
        noise = se * ((U @ sw) * -b + (s * U) @ Asw)
        return X + DT * b + sq * noise

    return step


def looped(step, d, M):
    """n Euler steps of ``step(X, Z)`` on P paths, normals drawn by numpy for every column alike."""
    def run(n):
        rng = np.random.default_rng(1)
        X = np.tile(np.linspace(0.5, -0.5, d), (P, 1))
        for _ in range(n):
            X = step(X, rng.standard_normal((P, 1, M)))
        return X

    return run


def marginals(fns):
    """Seconds per step beyond the fixed cost, (t(2N) - t(N)) / N, for each of ``fns``: the columns
    are timed in turn, round after round (a load spike on the shared machine hits all of them), and
    each keeps its best t(N) and t(2N)."""
    for fn in fns:
        fn(2)  # warm: compile, caches
    best = np.full((len(fns), 2), np.inf)
    for _ in range(REPEAT):
        for i, fn in enumerate(fns):
            for j, n in enumerate((N, 2 * N)):
                t0 = time.perf_counter()
                fn(n)
                best[i, j] = min(best[i, j], time.perf_counter() - t0)
    return [max(b2 - b1, 1e-12) / N for b1, b2 in best]


def main():
    rows = []
    print(f"logistic SMF (order 1), Euler, {P} paths, dt = {DT}: microseconds per step (marginal), "
          f"ratio to hand-written", flush=True)
    head = (f"{'d':>3} {'M':>5} {'hand':>9} {'smfsym':>9} {'gen':>9} {'simulate':>9} {'general':>9} "
            f"{'smfsym/hand':>12} {'gen/hand':>9} {'simulate/hand':>13} {'general/hand':>13}")
    print(head)
    for d in (2, 10):
        for M in (64, 256, 1024, 4096):
            p, flow, data = make(d, M)
            x0 = np.linspace(0.5, -0.5, d)
            src = smfsym.codegen(flow, eta=ETA)
            mod = types.ModuleType(f"gen_{d}_{M}")
            exec(compile(src, mod.__name__, "exec"), mod.__dict__)  # the generated module, as a user runs it
            if getattr(mod, "_data0", 0) is None:
                mod.set_data(_data0=flow.diffusion.law.data, _weights0=flow.diffusion.law.weights)

            from smfsym.numerics.compiled_sde import NumericSDE
            from smfsym.numerics.solvers import EulerMaruyama

            e = EulerMaruyama()
            nsde = {la: NumericSDE(flow, {flow.eta: ETA}, linear_algebra=la) for la in (None, False)}
            fns = [looped(hand_stepper(data, d), d, M),
                   looped(lambda X, Z: e.step(nsde[None], X, DT, Z), d, M),
                   looped(lambda X, Z: mod.euler_step(X, DT, Z), d, M),
                   lambda n: smfsym.simulate(flow, x0, n * DT, eta=ETA, dt=DT, n_paths=P, seed=1,
                                             save_at=smfsym.SaveAt(store=False))]
            if M <= 1024:
                fns.append(looped(lambda X, Z: e.step(nsde[False], X, DT, Z), d, M))
            t_hand, t_sm, t_gen, t_simulate, t_gl = (marginals(fns) + [np.nan])[:5]
            rows.append((d, M, t_hand, t_sm, t_gen, t_simulate, t_gl))
            print(f"{d:>3} {M:>5} {t_hand * 1e6:>9.0f} {t_sm * 1e6:>9.0f} {t_gen * 1e6:>9.0f} {t_simulate * 1e6:>9.0f} "
                  f"{t_gl * 1e6:>9.0f} {t_sm / t_hand:>12.2f} {t_gen / t_hand:>9.2f} {t_simulate / t_hand:>13.2f} "
                  f"{t_gl / t_hand:>13.2f}", flush=True)
    return rows


if __name__ == "__main__":
    main()
