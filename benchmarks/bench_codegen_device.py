"""A generated device module against smfsym on the same back end (issue 19): ``codegen(..., backend=...)``.

The d = 3 regression SMF of order 2 (tests/backend_cases.py), 50 000 paths x 30 steps of the scheme (euler
by default, or weak2): wall seconds
(best of 3) of the generated module's ``simulate`` and of ``smfsym.simulate(..., RunOptions(backend=...))``,
and whether their numbers are bitwise equal.

Run: PYTHONPATH=. python benchmarks/bench_codegen_device.py [array_api_strict|cupy] [euler|weak2]
"""
import sys
import time
from pathlib import Path

import numpy as np

import smfsym
from smfsym import RunOptions

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from backend_cases import X0, regression_problem  # noqa: E402


def best(f, k=3):
    times, out = [], None
    for _ in range(k):
        t = time.perf_counter()
        out = f()
        times.append(time.perf_counter() - t)
    return min(times), out


def main(backend="array_api_strict", scheme="euler", n_paths=50_000):
    flow = smfsym.smf(regression_problem(), order=2)
    t_gen, src = best(lambda: smfsym.codegen(flow, eta=0.1, backend=backend), 1)
    ns = {}
    exec(compile(src, "generated.py", "exec"), ns)  # our own generated module
    opt = RunOptions(backend=backend)
    t_mod, a = best(lambda: ns["simulate"](X0, 0.3, n_paths, 1, scheme=scheme)[1])
    t_ref, b = best(lambda: smfsym.simulate(flow, X0, 0.3, eta=0.1, n_paths=n_paths, seed=1, scheme=scheme,
                                                options=opt).states)
    print(f"{backend}: codegen {t_gen:.2f} s; {n_paths} paths x 30 {scheme} steps: generated {t_mod:.2f} s, "
          f"smfsym {t_ref:.2f} s; bitwise equal: {np.array_equal(a, b)}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
