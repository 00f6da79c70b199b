"""Simulator speed (issue 3), measured side by side in one run.

Linear regression with Gaussian features a ~ N(0, I_d), label noise eps ~ N(0, s^2),
f = (a.x - eps)^2 / 2, eta = 0.05, horizon t = 1 (20 SGD steps; Euler step dt = eta/10).

1. SMF (Euler-Maruyama, order-2 drift) against a hand-written vectorised numpy loop
   of the same SDE, d = 10, 100,000 paths.
2. SGD simulator against a hand-written vectorised numpy SGD loop, d = 10, 100,000 paths.
3. SME with per-path matrix square roots against the SMF, d = 2, 5, 10, 20.
4. sdeint (one path per call) against smfsym on the same SMF, per path.
6. Discrete against Gaussian increments on the d = 10 SMF (Euler and weak order 2).
8. The coupled (Richardson) Euler run on the d = 10 SMF with two-point, three-point and Gaussian increments.
5. Bounded work: time to the first step of a 10**8-step horizon, and peak traced memory and
   time per step of the SMF of a logistic loss on an empirical data set of 50,000 rows.
7. Small runs and per-step overhead (issue 17), on the d = 10 SMF: the setup of a first and a
   second ``simulate`` call (1 path, 1 step; the second reuses the compiled SDE), a 2,048-path x
   10-step run against the hand-written loop of section 1, and the simulator's step on one seed
   block of 4096 paths (draws included) against its own random draws alone and against a
   hand-written row-by-row numpy Euler step (same draws in stream order, transposed so that
   every column is contiguous, then each coordinate accumulated in place). CPU times of this
   thread (``time.thread_time``, best of many: the machine is shared). ``--before PATH`` runs the
   same measurements with another checkout's smfsym (e.g. /work/main) in a subprocess.

Run: python benchmarks/bench_simulate.py [--quick] [--bounded | --discrete | --coupled | --small [--before PATH]]
(--bounded, --discrete, --coupled, --small: section 5, 6, 8 or 7 alone)
"""
import json
import os
import subprocess
import sys
import time

import numpy as np
import sympy as sp

import smfsym
from smfsym.symbolic.lambdify import compile_exprs
from timing import best, regression as problem, side_by_side  # noqa: F401 (best: the other scripts)

ETA, S, T = 0.05, 0.5, 1.0
QUICK = "--quick" in sys.argv
P = 20_000 if QUICK else 100_000





def hand_smf(d, n_paths, seed):
    """The same SMF, written by hand: noise -sqrt(eta) (G x - s dB_eps), G symmetric Gaussian."""
    rng = np.random.default_rng(seed)
    dt = ETA / 10
    n = int(round(T / dt))
    X = np.tile(np.linspace(1.0, -1.0, d), (n_paths, 1))
    iu = np.triu_indices(d, 1)
    sq = np.sqrt(dt)
    for _ in range(n):
        B = rng.standard_normal((n_paths, d * (d - 1) // 2 + 2 * d)) * sq
        G = np.zeros((n_paths, d, d))
        G[:, iu[0], iu[1]] = B[:, : len(iu[0])]
        G += G.transpose(0, 2, 1)
        k = len(iu[0])
        G[:, np.arange(d), np.arange(d)] = np.sqrt(2) * B[:, k:k + d]
        noise = np.einsum("pij,pj->pi", G, X) - S * B[:, k + d:]
        X = X - (1 + ETA / 2) * X * dt - np.sqrt(ETA) * noise
    return X


def hand_sgd(d, n_paths, n_steps, seed):
    rng = np.random.default_rng(seed)
    X = np.tile(np.linspace(1.0, -1.0, d), (n_paths, 1))
    for _ in range(n_steps):
        a = rng.standard_normal((n_paths, d))
        eps = S * rng.standard_normal(n_paths)
        r = np.einsum("pi,pi->p", a, X) - eps
        X = X - ETA * a * r[:, None]
    return X


def bounded():
    import tracemalloc

    from smfsym.engine import run
    from smfsym.simulation.sde import time_grid

    class First(Exception):
        pass

    def step(X, h, gens, sizes):
        raise First

    t0 = time.perf_counter()
    tracemalloc.start()
    grid = time_grid(1.0, 1e-8, [0.25, 0.5, 1.0])
    try:
        run(x0=np.zeros(1), n_paths=10, step_sizes=grid, save_index=grid.save_index, times=grid.times, step=step,
            seed=0, chunk_size=None, functions=None, store=False, on_nonfinite="raise", progress=False, scheme="-",
            dt_label=1e-8)
    except First:
        pass
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print("## 5. Bounded work")
    print("| case | time | peak traced memory |")
    print("|---|---|---|")
    print(f"| 10**8-step grid, to the first step | {1e3 * (time.perf_counter() - t0):.1f} ms | {peak / 2**10:.0f} KiB |")
    rng = np.random.default_rng(0)
    M = 50_000
    z = rng.normal(size=M)
    y = np.sign(rng.normal(size=M) + z)
    Zs, Ys = smfsym.empirical(np.c_[z, y], "z y")
    a, b = sp.symbols("a b")
    p = smfsym.Problem(sp.log(1 + sp.exp(-Ys * (a * Zs + b))), [a, b])
    flow = smfsym.smf(p, order=1)
    n_paths = 200 if QUICK else 1000
    tracemalloc.start()
    t0 = time.perf_counter()
    smfsym.simulate(flow, [0.5, 0.0], 0.1, eta=0.1, dt=0.05, n_paths=n_paths, seed=1,
                    save_at=smfsym.SaveAt(store=False))
    el = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    unchunked = n_paths * M * 2 * 8
    print(f"| logistic SMF, {M} rows ({flow.n_noise} noise columns), {n_paths} paths, 2 Euler steps | "
          f"{el / 2:.2f} s/step | {peak / 2**20:.0f} MiB (one unchunked column array: {unchunked / 2**20:.0f} MiB) |")
    print()


def discrete(d=10):
    flow = smfsym.smf(problem(d), order=2)
    x0 = np.linspace(1.0, -1.0, d)
    n = P // 5
    print(f"## 6. Discrete vs Gaussian increments, SMF d = {d} ({flow.n_noise} noise columns), {n} paths, t = {T}")
    print("| scheme | gaussian (s) | discrete (s) | speed-up | E|X|^2 gaussian | E|X|^2 discrete |")
    print("|---|---|---|---|---|---|")
    f = {"sq": lambda X: (X**2).sum(-1)}
    for scheme in ("euler", "weak2"):
        res = {}

        def go(inc):
            res[inc] = smfsym.simulate(flow, x0, T, eta=ETA, n_paths=n, seed=0, scheme=scheme, increments=inc,
                                       save_at=smfsym.SaveAt(store=False, functions=f))
        tg, td = side_by_side(lambda: go("gaussian"), lambda: go("discrete"), repeat=3)
        g, dd = res["gaussian"], res["discrete"]
        print(f"| {scheme} | {tg:.2f} | {td:.2f} | {tg / td:.2f} | {g.mean('sq')[-1]:.4f} +- {g.sem('sq')[-1]:.4f} | "
              f"{dd.mean('sq')[-1]:.4f} +- {dd.sem('sq')[-1]:.4f} |")
    print()


def coupled(d=10):
    """Section 8: the coupled coarse/fine run of Euler (a study's extrapolated row) with the +-1 increments it
    drew before audit 15 and the three-point ones it draws now (their sums keep Euler's error constant)."""
    import copy

    from smfsym.numerics.solvers import get_solver
    from smfsym.studies.richardson import coupled_expectation

    flow = smfsym.smf(problem(d), order=2)
    x0 = np.linspace(1.0, -1.0, d)
    n = P // 5
    two_point = copy.copy(get_solver("euler"))
    two_point.coupled_discrete = None  # the old draw: the coarse sums of +-1 have E Z^4 = 2
    print(f"## 8. Coupled Euler (dt and dt/2), SMF d = {d} ({flow.n_noise} noise columns), {n} paths, t = {T}")
    print("| increments | time (s) | against two-point | E|X|^2 extrapolated |")
    print("|---|---|---|---|")
    runs = {"two-point (before)": (two_point, "discrete"), "three-point (now)": (get_solver("euler"), "discrete"),
            "gaussian": (get_solver("euler"), "gaussian")}
    res, times = {}, {}

    def go(label):
        solver, inc = runs[label]
        res[label] = coupled_expectation(flow, x0, T, eta=ETA, dt=ETA / 5, n_paths=n, solver=solver,
                                         phi=lambda X: (X**2).sum(-1), seed=0, increments=inc,
                                         options=smfsym.RunOptions(progress=False))
    labels = list(runs)
    for _ in range(3):  # interleaved, best of 3 (the machine is shared)
        for lab in labels:
            t0 = time.perf_counter()
            go(lab)
            times[lab] = min(times.get(lab, np.inf), time.perf_counter() - t0)
    for lab in labels:
        r = res[lab]
        print(f"| {lab} | {times[lab]:.2f} | {times[lab] / times[labels[0]]:.2f} | "
              f"{r['value']:.4f} +- {r['se']:.4f} |")
    print()


def _cpu_best(fn, repeat):
    return best(fn, repeat, clock=time.thread_time)


def hand_euler_step(X, g, raw, Zt, tmp, rows, h):
    """The d = 10 SMF's Euler step by hand, row by row: noise_i = -sqrt(eta) (sum_j G_ij x_j - s dB_eps,i), the
    same arithmetic as smfsym's step (same draws, same output up to rounding: checked in small_measurements)."""
    g.standard_normal(out=raw)  # (paths, m) in the stream's order, as smfsym draws them
    Zt[...] = raw.T  # columns contiguous over the paths
    d = X.shape[1]
    xc = [np.ascontiguousarray(X[:, i]) for i in range(d)]
    out = np.empty_like(X)
    c = -np.sqrt(ETA) * np.sqrt(h)
    for i, terms in enumerate(rows):
        col0, j0, coef0 = terms[0]  # (the SMF's rows start with a state column)
        n = np.multiply(Zt[col0], xc[j0])
        if coef0 != 1.0:
            n *= coef0
        for col, j, coef in terms[1:]:
            if j is None:  # a constant column: coef Z
                n += coef * Zt[col]
                continue
            np.multiply(Zt[col], xc[j], out=tmp)
            if coef != 1.0:
                tmp *= coef
            n += tmp
        out[:, i] = xc[i] * (1 - (1 + ETA / 2) * h) + c * n
    return out


def _g_times(Zt, V, rows, constants=False):
    """sum over a row's terms of coef Z_col V_j (the noise action's state part; with ``constants`` also the
    constant columns' coef Z_col): (paths, d)."""
    out = np.zeros((Zt.shape[-1], len(rows)))
    tmp = np.empty(Zt.shape[-1])
    for i, terms in enumerate(rows):
        acc = out[:, i]
        for col, j, coef in terms:
            if j is None and not constants:
                continue
            if j is None:
                np.multiply(Zt[col], coef, out=tmp)
            else:
                np.multiply(Zt[col], V[j], out=tmp)
                if coef != 1.0:
                    tmp *= coef
            acc += tmp
    return out


def hand_weak2_step(X, g, raw, Zt, rows, h):
    """The d = 10 SMF's simplified weak Taylor 2.0 step by hand (the scheme of smfsym.numerics.solvers.WeakTaylor2,
    written out for this linear SDE): b = -c x, sigma(x) Z = -sqrt(eta) (G(Z) x - s Z_eps), so
    D_v b = -c v, D_v (sigma Z) = -sqrt(eta) G(Z) v, sum_j D_{sigma_j} sigma_j = eta (d + 1) x, no second
    derivatives; the Levy-area surrogate -sqrt(eta) (G(beta) sigma alpha - G(alpha) sigma beta)."""
    g.standard_normal(out=raw)  # (paths, 4, m) in the stream's order, as smfsym draws them
    Zt[...] = raw.transpose(1, 2, 0)
    d = X.shape[1]
    xc = [np.ascontiguousarray(X[:, i]) for i in range(d)]
    c, r, sq = 1 + ETA / 2, np.sqrt(ETA), np.sqrt(h)

    def sigma(Z):
        N = _g_times(Z, xc, rows, constants=True)
        N *= -r
        return N

    N0, Na, Nb = sigma(Zt[0]), sigma(Zt[2]), sigma(Zt[3])
    v = (-c * h) * X + sq * N0
    vc = [np.ascontiguousarray(v[:, i]) for i in range(d)]
    out = X + v
    out += (-0.5 * h * c) * v
    out += (-0.5 * sq * r) * _g_times(Zt[0], vc, rows)
    out += (-0.5 * h * ETA * (d + 1)) * X
    area = _g_times(Zt[3], [np.ascontiguousarray(Na[:, i]) for i in range(d)], rows)
    area -= _g_times(Zt[2], [np.ascontiguousarray(Nb[:, i]) for i in range(d)], rows)
    out += (-r * 0.5 * h / np.sqrt(2.0)) * area
    return out


def _hand_rows(flow):
    """Per coordinate i, the noise columns it reads, from the SMF's own matrix: (column, state index or None,
    factor) with entry = -sqrt(eta) factor x_j, or -sqrt(eta) factor for a constant column."""
    xs = list(flow.state)
    scale = -sp.sqrt(flow.eta)
    rows = []
    for i in range(flow.diffusion.shape[0]):
        terms = []
        for col in range(flow.diffusion.shape[1]):
            e = sp.simplify(flow.diffusion[i, col] / scale)
            if e == 0:
                continue
            j = next((n for n, x in enumerate(xs) if e.has(x)), None)
            terms.append((col, j, float(e if j is None else e / xs[j])))
        rows.append(terms)
    return rows


def small_measurements(repeat: int) -> dict:
    """Section 7's numbers with the smfsym on sys.path (also run for ``--before`` in a subprocess)."""
    from smfsym.engine import block_generators, resolve_seed
    from smfsym.simulation.sde import SDETask
    from smfsym.numerics.solvers import get_solver

    d, B = 10, 4096
    flow = smfsym.smf(problem(d), order=2)
    x0 = np.linspace(1.0, -1.0, d)
    h = ETA / 10
    out = {}

    def one_step():
        return smfsym.simulate(flow, x0, h, eta=ETA, n_paths=1, seed=0, save_at=smfsym.SaveAt(store=False))

    # the lazily imported modules of a first compilation (sympy's printers, numpy's namespace for lambdify)
    # load before the clock starts: the first call then times this SDE's compilation alone
    compile_exprs([sp.Symbol("w") ** 2], [sp.Symbol("w")])(np.ones((1, 1)))
    t0 = time.perf_counter()
    one_step()
    out["first_call_ms"] = 1e3 * (time.perf_counter() - t0)
    out["second_call_ms"] = 1e3 * _cpu_best(one_step, repeat)
    global T
    T_saved, T = T, 10 * h
    try:
        ours = _cpu_best(lambda: smfsym.simulate(flow, x0, 10 * h, eta=ETA, n_paths=2048, seed=0,
                                                 save_at=smfsym.SaveAt(store=False)),
                         repeat)
        hand = _cpu_best(lambda: hand_smf(d, 2048, 0), repeat)
    finally:
        T = T_saved
    out["small_run_ms"], out["small_hand_ms"] = 1e3 * ours, 1e3 * hand
    p = problem(d)
    ours = _cpu_best(lambda: smfsym.simulate_sgd(p, x0, 10, ETA, n_paths=2048, seed=0,
                                                 save_at=smfsym.SaveAt(store=False)), repeat)
    hand = _cpu_best(lambda: hand_sgd(d, 2048, 10, 0), repeat)
    out["sgd_run_ms"], out["sgd_hand_ms"] = 1e3 * ours, 1e3 * hand
    X = np.tile(x0, (B, 1))
    rows = _hand_rows(flow)
    for scheme in ("euler", "weak2"):
        stepper = SDETask(flow, {flow.eta: ETA}, get_solver(scheme), "gaussian").build()
        gens = block_generators(resolve_seed(1), 0, 1)
        raw = np.empty((B, stepper.k, stepper.m))
        step = _cpu_best(lambda: stepper(X, h, gens, [B]), 3 * repeat)
        rng = _cpu_best(lambda: gens[0].standard_normal(out=raw), 3 * repeat)
        out[f"{scheme}_step_ns"], out[f"{scheme}_rng_ns"] = 1e9 * step / B, 1e9 * rng / B
        if scheme == "euler":
            raw1, Zt, tmp = np.empty((B, stepper.m)), np.empty((stepper.m, B)), np.empty(B)
            ours_x = stepper(X, h, block_generators(resolve_seed(7), 0, 1), [B])
            hand_x = hand_euler_step(X, block_generators(resolve_seed(7), 0, 1)[0], raw1, Zt, tmp, rows, h)
            assert np.allclose(ours_x, hand_x, rtol=1e-12, atol=1e-12), np.abs(ours_x - hand_x).max()
            hand = _cpu_best(lambda: hand_euler_step(X, gens[0], raw1, Zt, tmp, rows, h), 3 * repeat)
            out["euler_hand_ns"] = 1e9 * hand / B
        elif "hand_weak2_step" in globals():  # (an older tree run by --before has none)
            Zt = np.empty((stepper.k, stepper.m, B))
            # the hand step is the same arithmetic: same draws, same output (up to rounding)
            ours_x = stepper(X, h, block_generators(resolve_seed(7), 0, 1), [B])
            hand_x = hand_weak2_step(X, block_generators(resolve_seed(7), 0, 1)[0], raw, Zt, rows, h)
            assert np.allclose(ours_x, hand_x, rtol=1e-12, atol=1e-12), np.abs(ours_x - hand_x).max()
            hand = _cpu_best(lambda: hand_weak2_step(X, gens[0], raw, Zt, rows, h), 3 * repeat)
            out["weak2_hand_ns"] = 1e9 * hand / B
    return out


def small():
    repeat = 5 if QUICK else 15
    if "--measure-json" in sys.argv:
        print(json.dumps(small_measurements(repeat)))
        return
    after = small_measurements(repeat)
    before = None
    if "--before" in sys.argv:
        path = sys.argv[sys.argv.index("--before") + 1]
        env = dict(os.environ, PYTHONPATH=path)
        args = [sys.executable, __file__, "--small", "--measure-json"] + (["--quick"] if QUICK else [])
        done = subprocess.run(args, env=env, capture_output=True, text=True, check=True)
        before = json.loads(done.stdout.strip().splitlines()[-1])
    print("## 7. Small runs and per-step overhead, SMF d = 10 (65 noise columns), CPU time of this thread")
    print("| measure | " + ("before | after |" if before else "value |"))
    print("|---|---|" + ("---|" if before else ""))

    def row(label, fn, fmt):
        vals = ([fn(before)] if before else []) + [fn(after)]
        print(f"| {label} | " + " | ".join(fmt.format(v) for v in vals) + " |")

    row("first simulate call, 1 path x 1 step: compiles (ms, wall)", lambda r: r["first_call_ms"], "{:.0f}")
    row("second call, same SDE (ms)", lambda r: r["second_call_ms"], "{:.2f}")
    row("2048 paths x 10 steps: smfsym (ms)", lambda r: r["small_run_ms"], "{:.1f}")
    row("2048 paths x 10 steps: hand-written loop (ms)", lambda r: r["small_hand_ms"], "{:.1f}")
    row("2048 paths x 10 steps: ratio", lambda r: r["small_run_ms"] / r["small_hand_ms"], "{:.2f}")
    row("SGD, 2048 paths x 10 steps: simulate_sgd (ms)", lambda r: r["sgd_run_ms"], "{:.1f}")
    row("SGD, 2048 paths x 10 steps: hand-written loop (ms)", lambda r: r["sgd_hand_ms"], "{:.1f}")
    row("SGD, 2048 paths x 10 steps: ratio", lambda r: r["sgd_run_ms"] / r["sgd_hand_ms"], "{:.2f}")
    for scheme in ("euler", "weak2"):
        row(f"{scheme} step, one block (ns per path-step)", lambda r: r[f"{scheme}_step_ns"], "{:.0f}")
        row(f"{scheme}: its random draws alone (ns)", lambda r: r[f"{scheme}_rng_ns"], "{:.0f}")
        row(f"{scheme}: step / draws", lambda r: r[f"{scheme}_step_ns"] / r[f"{scheme}_rng_ns"], "{:.2f}")
    row("hand-written row-by-row Euler step (ns)", lambda r: r["euler_hand_ns"], "{:.0f}")
    row("euler: step / hand-written step", lambda r: r["euler_step_ns"] / r["euler_hand_ns"], "{:.2f}")
    row("hand-written weak2 step, same arithmetic (ns)", lambda r: r.get("weak2_hand_ns", float("nan")), "{:.0f}")
    row("weak2: step / hand-written step",
        lambda r: r["weak2_step_ns"] / r.get("weak2_hand_ns", float("nan")), "{:.2f}")
    print()


def main():
    if "--small" in sys.argv:
        return small()
    if "--bounded" in sys.argv:
        return bounded()
    if "--discrete" in sys.argv:
        return discrete()
    if "--coupled" in sys.argv:
        return coupled()
    d = 10
    p = problem(d)
    flow = smfsym.smf(p, order=2)
    x0 = np.linspace(1.0, -1.0, d)
    t_ours, t_hand = side_by_side(lambda: smfsym.simulate(flow, x0, T, eta=ETA, n_paths=P, seed=0,
                                                          save_at=smfsym.SaveAt(store=False)),
                                  lambda: hand_smf(d, P, 0), repeat=3)
    print(f"## 1. SMF Euler-Maruyama, d = {d}, {P} paths, {int(T / (ETA / 10))} steps, {flow.n_noise} noise columns")
    print("| smfsym.simulate (s) | hand-written numpy (s) | ratio |")
    print("|---|---|---|")
    print(f"| {t_ours:.2f} | {t_hand:.2f} | {t_ours / t_hand:.2f} |")
    print()
    n_steps = 100
    t_sgd, t_hsgd = side_by_side(lambda: smfsym.simulate_sgd(p, x0, n_steps, ETA, n_paths=P, seed=0,
                                                             save_at=smfsym.SaveAt(store=False)),
                                 lambda: hand_sgd(d, P, n_steps, 0), repeat=7)
    print(f"## 2. SGD, d = {d}, {P} paths, {n_steps} steps")
    print("| smfsym.simulate_sgd (s) | hand-written numpy (s) | ratio |")
    print("|---|---|---|")
    print(f"| {t_sgd:.2f} | {t_hsgd:.2f} | {t_sgd / t_hsgd:.2f} |")
    print()
    P3 = P // 10
    print(f"## 3. SME (per-path eigh square root) vs SMF, Euler-Maruyama, {P3} paths")
    print("| d | SMF columns | SMF (s) | SME (s) | SME / SMF |")
    print("|---|---|---|---|---|")
    for dd in (2, 5, 10, 20):
        pp = problem(dd)
        fl, sm = smfsym.smf(pp, order=2), smfsym.sme(pp, order=2)
        y0 = np.linspace(1.0, -1.0, dd)
        t_f = best(lambda: smfsym.simulate(fl, y0, T, eta=ETA, n_paths=P3, seed=0,
                                           save_at=smfsym.SaveAt(store=False)), 2)
        t_s = best(lambda: smfsym.simulate(sm, y0, T, eta=ETA, n_paths=P3, seed=0,
                                           save_at=smfsym.SaveAt(store=False)), 2)
        print(f"| {dd} | {fl.n_noise} | {t_f:.2f} | {t_s:.2f} | {t_s / t_f:.1f} |")
    print()
    try:
        import sdeint
    except ImportError:
        print("## 4. sdeint not installed (pip install -e '.[bench]')\n")
        bounded()
        return discrete()
    from smfsym.numerics.compiled_sde import NumericSDE

    nsde = NumericSDE(flow, {flow.eta: ETA})
    m = nsde.m

    def f(yv, t):
        return nsde.drift(yv[None, :])[0]

    cols = compile_exprs(list(flow.diffusion.xreplace({flow.eta: ETA})), flow.state)

    def G(yv, t):
        return np.array([c[0] for c in cols(yv[None, :])]).reshape(d, m)

    tspan = np.linspace(0.0, T, int(round(T / (ETA / 10))) + 1)
    n_sdeint = 5
    t0 = time.perf_counter()
    for i in range(n_sdeint):
        sdeint.itoEuler(f, G, x0, tspan, generator=np.random.default_rng(i))
    t_sdeint = (time.perf_counter() - t0) / n_sdeint
    print(f"## 4. per path: sdeint.itoEuler (one path per call, {n_sdeint} paths) vs smfsym ({P} paths)")
    print("| sdeint (ms/path) | smfsym (ms/path) | ratio |")
    print("|---|---|---|")
    print(f"| {1e3 * t_sdeint:.2f} | {1e3 * t_ours / P:.5f} | {t_sdeint / (t_ours / P):.0f} |")
    print()
    bounded()
    discrete()


if __name__ == "__main__":
    main()
