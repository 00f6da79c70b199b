"""The optimizer simulator of update maps (issue 18) against hand-written numpy RMSprop and Adam steps.

Linear regression with Gaussian features a ~ N(0, I_d), label noise e ~ N(0, 1/4), f = (a.x - e)^2 / 2,
d = 10, 100,000 paths, 100 steps at eta = 0.05; RMSprop (c = 1, eps = 0.1, PyTorch's convention: v updated
first, eps outside the root) and Adam (c1 = c2 = 1, eps = 0.1, bias correction on, started at t_0 = eta), both
from x_0 = linspace(1, -1, d), v_0 = 1, m_0 = 0. ``simulate_update_map`` (its compiled step, the driver, the
samplers) against a vectorised numpy loop of the same optimizer drawing its normals with one generator; the
whole call is timed (compilation is cached after the first call, which is not timed). Interleaved runs, best
of ``--repeat`` (default 5) wall times: the machine is shared.

With ``--backend NAME`` (an array back end: cupy, array_api_strict) it times instead, side by side on that
back end, the device step compiling the built-ins' unexpanded update (what it compiles) against the expanded
update (what it compiled before), 20,000 paths x 20 steps.

Run: python benchmarks/bench_update_map.py [--repeat N] [--quick] [--backend NAME]
"""
import sys

import numpy as np
import sympy as sp

from smfsym.optimizers.update_map import adam, rmsprop, simulate_update_map
from timing import regression, side_by_side

D, ETA, N_STEPS, C, EPS = 10, 0.05, 100, 1.0, 0.1
QUICK = "--quick" in sys.argv
P = 20_000 if QUICK else 100_000
REPEAT = int(sys.argv[sys.argv.index("--repeat") + 1]) if "--repeat" in sys.argv else 5
BACKEND = sys.argv[sys.argv.index("--backend") + 1] if "--backend" in sys.argv else None





def problem(d=D):
    return regression(d, noise="e")


def _gradient(rng, X):
    a = rng.standard_normal((X.shape[0], D))
    r = np.einsum("pi,pi->p", a, X) - 0.5 * rng.standard_normal(X.shape[0])
    return a * r[:, None]


def hand_rmsprop(seed):
    rng = np.random.default_rng(seed)
    X = np.tile(np.linspace(1.0, -1.0, D), (P, 1))
    V = np.ones((P, D))
    for _ in range(N_STEPS):
        g = _gradient(rng, X)
        V += C * ETA * (g * g - V)
        X -= ETA * g / (np.sqrt(V) + EPS)
    return X, V


def hand_adam(seed):
    rng = np.random.default_rng(seed)
    X = np.tile(np.linspace(1.0, -1.0, D), (P, 1))
    M, V = np.zeros((P, D)), np.ones((P, D))
    t = ETA
    for _ in range(N_STEPS):
        g = _gradient(rng, X)
        M += C * ETA * (g - M)
        V += C * ETA * (g * g - V)
        k = (t + ETA) / ETA
        bc1, bc2 = 1 - (1 - C * ETA) ** k, 1 - (1 - C * ETA) ** k
        X -= ETA * (M / bc1) / (np.sqrt(V / bc2) + EPS)
        t += ETA
    return X, M, V


def device_main(cases):
    """The device step with the unexpanded update against the expanded one, on BACKEND: the compiled steps
    alone (built once), 20 steps of 20,000 paths drawing from one seed block's stream per 4096 paths."""
    from smfsym.backends import get_backend
    from smfsym.montecarlo.device import device_generators
    from smfsym.optimizers.update_map import DeviceUpdateMapStep

    backend, paths = get_backend(BACKEND), 20_000
    sizes = [min(4096, paths - lo) for lo in range(0, paths, 4096)]
    print(f"backend {BACKEND}, d = {D}, {paths:,} paths, 20 steps, eta = {ETA}; best of {REPEAT} (wall s)")
    print("| optimizer | expanded update (s) | unexpanded update (s) | ratio |")
    print("|---|---|---|---|")
    for name, (umap, z0, _) in cases.items():
        compact = umap.step_update
        umap.step_update = None
        expanded = DeviceUpdateMapStep(umap, ETA, {}, backend)
        umap.step_update = compact
        unexpanded = DeviceUpdateMapStep(umap, ETA, {}, backend)
        X0 = backend.asarray(np.tile(z0, (paths, 1)))

        def run(step):
            gens = device_generators(backend, np.random.SeedSequence(0), 0, len(sizes))
            X = X0
            for _ in range(20):
                X = step(X, ETA, gens, sizes)
            backend.synchronize()

        t_exp, t_cmp = side_by_side(lambda: run(expanded), lambda: run(unexpanded), REPEAT)
        print(f"| {name} | {t_exp:.3f} | {t_cmp:.3f} | {t_exp / t_cmp:.2f}x |")


def main():
    p = problem()
    x0 = list(np.linspace(1.0, -1.0, D))
    cases = {"RMSprop": (rmsprop(p, c=1, eps=sp.Rational(1, 10)), x0 + [1.0] * D, hand_rmsprop),
             "Adam": (adam(p, c1=1, c2=1, eps=sp.Rational(1, 10)), x0 + [0.0] * D + [1.0] * D + [ETA], hand_adam)}
    if BACKEND is not None:
        return device_main(cases)
    print(f"d = {D}, {P:,} paths, {N_STEPS} steps, eta = {ETA}; best of {REPEAT} (wall s)")
    print("| optimizer | simulate_update_map (s) | hand-written numpy (s) | ratio |")
    print("|---|---|---|---|")
    for name, (umap, z0, hand) in cases.items():
        def ours():
            return simulate_update_map(umap, z0, N_STEPS, ETA, n_paths=P, seed=0)
        ours()  # compile (cached from here on)
        t_ours, t_hand = side_by_side(ours, lambda: hand(0), REPEAT)
        print(f"| {name} | {t_ours:.3f} | {t_hand:.3f} | {t_ours / t_hand:.2f} |")


if __name__ == "__main__":
    main()
