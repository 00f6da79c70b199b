"""Mean-field SGD and DD-SMF against hand-written numpy steps; peak memory; cost per step against N.

Teacher-student network phi = a tanh(w z0 + v z1) on an empirical data set of M = 256 rows,
square loss, N = 1000 particles, 64 paths (issue 8). The hand-written steps do the same
arithmetic with matmuls written out for this unit; both sides draw their random numbers.
Timings interleave the two sides and keep the best of ``REPEATS`` (the machine may be shared).

    PYTHONPATH=$PWD python benchmarks/bench_meanfield.py [--quick]
"""
from __future__ import annotations

import sys
import time
import tracemalloc

import numpy as np
import sympy as sp

import smfsym
from smfsym.meanfield import data_rule
from smfsym.meanfield.kernel import Kernel

QUICK = "--quick" in sys.argv
REPEATS = 2 if QUICK else 5
M, N, P, ETA = 256, 1000, 64, 0.02
STEPS = 10 if QUICK else 25

rng = np.random.default_rng(0)
Z = rng.normal(size=(M, 2))
Y = np.tanh(Z[:, 0] - Z[:, 1])
a, w, v, out = sp.symbols("a w v out")
z0, z1, y = smfsym.empirical(np.column_stack([Z, Y]), "z0 z1 y")
net = smfsym.MeanFieldProblem(a * sp.tanh(w * z0 + v * z1), (a, w, v), out, (out - y) ** 2 / 2)
rule = data_rule(net)
kernel = Kernel(net)
W8 = rule.weights


def lib_sgd(X, g):
    idx = g.choice(M, size=X.shape[0], p=W8)
    data = [np.ascontiguousarray(rule.nodes[idx, k])[:, None] for k in range(3)]
    return X + kernel.sgd_increment(X, data, ETA)


def hand_sgd(X, g):
    idx = g.choice(M, size=X.shape[0], p=W8)
    zz, yy = Z[idx], Y[idx]
    A, Wt = X[..., 0], X[..., 1:]
    t = np.tanh((Wt @ zz[:, :, None])[..., 0])
    dl = (A * t).mean(axis=1) - yy
    Xn = np.empty_like(X)
    Xn[..., 0] = A - ETA * dl[:, None] * t
    Xn[..., 1:] = Wt - ETA * (dl[:, None] * A * (1 - t * t))[..., None] * zz[:, None, :]
    return Xn


def lib_dd(X, g):
    db = np.sqrt(ETA) * g.standard_normal((X.shape[0], M))
    return X + kernel.ddsmf_increment(X, ETA, db, rule.nodes, W8, ETA)


def hand_dd(X, g, paths_per_slice=2):
    h = ETA
    db = np.sqrt(h) * g.standard_normal((X.shape[0], M))
    sw = np.sqrt(W8)
    Xn = np.empty_like(X)
    for lo in range(0, X.shape[0], paths_per_slice):  # a few paths at a time: the (P, N, M) grid stays in cache
        sl = slice(lo, lo + paths_per_slice)
        A, Wt = X[sl, :, 0], X[sl, :, 1:]
        T = np.tanh(Wt @ Z.T)  # (p, N, M)
        dl = (A[:, None, :] @ T)[:, 0, :] / X.shape[1] - Y
        S = db[sl] @ sw
        coef = (-h * W8 + np.sqrt(ETA) * (W8 * S[:, None] - sw * db[sl])) * dl
        Xn[sl, :, 0] = A + (T @ coef[..., None])[..., 0]
        Xn[sl, :, 1:] = Wt + A[..., None] * ((1 - T * T) @ (coef[..., None] * Z[None]))
    return Xn


def run(stepper, X0, steps, seed=1):
    g = np.random.default_rng(seed)
    X = X0.copy()
    t = time.perf_counter()
    for _ in range(steps):
        X = stepper(X, g)
    return time.perf_counter() - t, X


def best_of(pairs, X0, steps):
    best = {name: np.inf for name, _ in pairs}
    for _ in range(REPEATS):
        for name, fn in pairs:  # interleaved: both sides see the same machine load
            best[name] = min(best[name], run(fn, X0, steps)[0])
    return {k: v / steps for k, v in best.items()}


def peak(fn, X0, steps=3):
    tracemalloc.start()
    run(fn, X0, steps)
    _, pk = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return pk / 2**20


def main():
    th = smfsym.particles(net, N, law={"a": ("normal", 0, 0.1)}, seed=0)
    X0 = np.broadcast_to(th, (P,) + th.shape).copy()
    # same arithmetic: the library and the hand steps agree to rounding
    for lib, hand in ((lib_sgd, hand_sgd), (lib_dd, hand_dd)):
        d = np.abs(run(lib, X0, 3)[1] - run(hand, X0, 3)[1]).max()
        assert d < 1e-10, d
    print(f"# mean field, N = {N}, {P} paths, M = {M} rows, eta = {ETA}, best of {REPEATS} x {STEPS} steps\n")
    print("| step | smfsym (ms/step) | hand numpy (ms/step) | ratio | peak memory smfsym / hand (MiB) |")
    print("|---|---|---|---|---|")
    for label, lib, hand in (("mean-field SGD", lib_sgd, hand_sgd), ("DD-SMF Euler", lib_dd, hand_dd)):
        t = best_of([("lib", lib), ("hand", hand)], X0, STEPS)
        print(f"| {label} | {1e3 * t['lib']:.2f} | {1e3 * t['hand']:.2f} | {t['lib'] / t['hand']:.2f} | "
              f"{peak(lib, X0):.0f} / {peak(hand, X0):.0f} |")
    # order-2 drift: cost relative to the Euler step
    lib_dd2 = lambda X, g: X + kernel.ddsmf_increment(  # noqa: E731
        X, ETA, np.sqrt(ETA) * g.standard_normal((X.shape[0], M)), rule.nodes, W8, ETA, order=2)
    t = best_of([("o1", lib_dd), ("o2", lib_dd2)], X0, max(3, STEPS // 3))
    print(f"\nDD-SMF order-2 drift: {1e3 * t['o2']:.1f} ms/step ({t['o2'] / t['o1']:.2f}x the order-1 step)\n")

    widths = [100, 1000, 10_000] + ([] if QUICK else [100_000])
    Ps = 8
    print(f"cost per step against N ({Ps} paths, M = {M}):\n")
    print("| N | SGD (ms/step) | DD-SMF (ms/step) | DD-SMF peak memory (MiB) |")
    print("|---|---|---|---|")
    ts, td = [], []
    for n in widths:
        thn = smfsym.particles(net, n, law={"a": ("normal", 0, 0.1)}, seed=0)
        Xn = np.broadcast_to(thn, (Ps,) + thn.shape).copy()
        steps = 3 if n >= 100_000 else 5
        t = best_of([("sgd", lib_sgd), ("dd", lib_dd)], Xn, steps)
        ts.append(t["sgd"])
        td.append(t["dd"])
        print(f"| {n} | {1e3 * t['sgd']:.3f} | {1e3 * t['dd']:.2f} | {peak(lib_dd, Xn, 1):.0f} |")
    lw = np.log(widths[1:])
    print(f"\nfitted slope of log cost against log N over N >= 1000: SGD {np.polyfit(lw, np.log(ts[1:]), 1)[0]:.2f}, "
          f"DD-SMF {np.polyfit(lw, np.log(td[1:]), 1)[0]:.2f} (linear = 1)")


if __name__ == "__main__":
    main()
