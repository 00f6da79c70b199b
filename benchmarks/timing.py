"""What the benchmark scripts share: timing helpers and the d-parameter linear regression they run.

Imported as ``timing`` by the scripts of this folder (run as ``python benchmarks/NAME.py``, so the
folder is on ``sys.path``).
"""
import time

import sympy as sp

import smfsym


def best(fn, repeat=3, clock=time.perf_counter):
    """Best time of ``repeat`` calls; ``clock=time.thread_time``: CPU time of this thread, less disturbed
    by other jobs on a shared machine than wall time."""
    times = []
    for _ in range(repeat):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return min(times)


def side_by_side(f1, f2, repeat=5):
    """Interleaved runs (the machine is shared and noisy): best time of each."""
    t1, t2 = [], []
    for _ in range(repeat):
        for fn, ts in ((f1, t1), (f2, t2)):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    return min(t1), min(t2)


def regression(d, noise="eps"):
    """Linear regression with d Gaussian features and label noise N(0, 1/4): f = (<a, x> - noise)^2 / 2."""
    x = sp.symbols(f"x0:{d}")
    a = smfsym.normal("a", d)
    eps = smfsym.normal(noise, std=sp.Rational(1, 2))
    return smfsym.Problem((sum(ai * xi for ai, xi in zip(a, x)) - eps) ** 2 / 2, x)
