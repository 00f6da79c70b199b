"""Data-set SMF speed (issue 17 item 1), measured side by side in one run.

Logistic regression on a data set of M rows (features z ~ N(0, I_d), labels y = +-1, uniform
weights), f = log(1 + exp(-y <z, x>)), the SMF of order 1 with its M explicit noise columns,
Euler-Maruyama, 512 paths, eta = 0.1, dt = 0.01. For d = 2 and 10 and M = 64, 256, 1024, 4096:

- smfsym: ``smfsym.simulate`` (linear-algebra path: margins as one matmul, per-row scalars once,
  drift and noise as matmuls), and the same with ``linear_algebra=False`` (the general per-row
  evaluation, for reference, M <= 1024);
- gen: the generated standalone module (``smfsym.codegen``), its ``simulate``;
- hand: a hand-written numpy step with the same arithmetic: margins m = X A^T (one matmul,
  A = y z), s = 1 / (1 + exp(m)), drift s @ (w A), noise sqrt(eta) (grad F (U @ sqrt(w)) +
  (s * U) @ (sqrt(w) A)), normals drawn by numpy as well.

Marginal cost: time(2N steps) - time(N steps), per step, so compile and setup do not count;
the columns are timed in turn, round after round, each keeping its best of ``REPEAT`` runs. BLAS runs single-threaded for every column alike
(OPENBLAS_NUM_THREADS=1, set before numpy loads): on a shared 2-core machine a threaded BLAS
spins against the other processes and times its own contention, not the arithmetic.

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
N = 10 if QUICK else 20
REPEAT = 2 if QUICK else 4


def make(d, M, seed=0):
    rng = np.random.default_rng(seed)
    data = np.column_stack([rng.normal(size=(M, d)), rng.choice([-1.0, 1.0], M)])
    syms = smfsym.empirical(data, [f"z{i}" for i in range(d)] + ["y"])
    z, y = syms[:d], syms[d]
    x = sp.symbols(f"x0:{d}")
    p = smfsym.Problem(sp.log(1 + sp.exp(-y * sum(a * b for a, b in zip(x, z)))), x)
    return p, smfsym.smf(p, order=1), data


def hand_simulate(data, d, n_steps, seed):
    """The same SDE by hand (see the module docstring)."""
    M = data.shape[0]
    A = data[:, :d] * data[:, d:]  # rows y_i z_i
    w = np.full(M, 1.0 / M)
    Aw, Asw, sw = A * w[:, None], A * np.sqrt(w)[:, None], np.sqrt(w)[:, None]
    rng = np.random.default_rng(seed)
    X = np.tile(np.linspace(0.5, -0.5, d), (P, 1))
    sq, se = np.sqrt(DT), np.sqrt(ETA)
    for _ in range(n_steps):
        U = rng.standard_normal((P, M))
        s = 1.0 / (1.0 + np.exp(X @ A.T))
        b = s @ Aw  # -grad F
        noise = se * ((U @ sw) * -b + (s * U) @ Asw)
        X = X + DT * b + sq * noise
    return X


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
    head = f"{'d':>3} {'M':>5} {'hand':>9} {'smfsym':>9} {'gen':>9} {'general':>9} {'smfsym/hand':>12} {'gen/hand':>9} {'general/hand':>13}"
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

            def sm(n, la=None):
                if la is None:
                    return smfsym.simulate(flow, x0, n * DT, eta=ETA, dt=DT, n_paths=P, seed=1, store=False)
                from smfsym.numeric import NumericSDE
                from smfsym.solvers import EulerMaruyama
                ns = NumericSDE(flow, {flow.eta: ETA}, linear_algebra=la)
                rng = np.random.default_rng(1)
                X = np.tile(x0, (P, 1))
                e = EulerMaruyama()
                for _ in range(n):
                    X = e.step(ns, X, DT, rng.standard_normal((P, 1, M)))
                return X

            fns = [lambda n: hand_simulate(data, d, n, 1), sm, lambda n: mod.simulate(x0, n * DT, P, 1, dt=DT)]
            if M <= 1024:
                fns.append(lambda n: sm(n, la=False))
            t_hand, t_sm, t_gen, t_gl = (marginals(fns) + [np.nan])[:4]
            rows.append((d, M, t_hand, t_sm, t_gen, t_gl))
            print(f"{d:>3} {M:>5} {t_hand * 1e6:>9.0f} {t_sm * 1e6:>9.0f} {t_gen * 1e6:>9.0f} {t_gl * 1e6:>9.0f} "
                  f"{t_sm / t_hand:>12.2f} {t_gen / t_hand:>9.2f} {t_gl / t_hand:>13.2f}", flush=True)
    return rows


if __name__ == "__main__":
    main()
