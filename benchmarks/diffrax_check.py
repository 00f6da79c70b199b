"""Check that bench_gpu.py's diffrax row runs the SDE smfsym runs, on any JAX (a CPU JAX will do).

bench_gpu.py compares smfsym's throughput with diffrax's Euler "on the same SDE"; this script checks the
"same": E|X_T|^2 of the d = 10 SMF from diffrax (vmapped, jitted, float64) against smfsym's `simulate` (numpy,
Euler), both at 20 steps of dt = eta/10, within 5 standard errors of the difference. It also runs the diffrax
row's code path once, so an API change in diffrax shows here rather than on a lent GPU. Needs JAX and diffrax
(not smfsym dependencies): ``pip install jax diffrax``. Exit 0 when they agree, 1 when they do not.

    python benchmarks/diffrax_check.py [--paths 20000]
"""

import argparse
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import bench_gpu as B  # noqa: E402
import smfsym  # noqa: E402
from smfsym import RunOptions, SaveAt  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paths", type=int, default=20000)
    a = ap.parse_args()
    import diffrax
    import jax

    d, n, P = 10, 20, a.paths
    dt = B.ETA / 10
    X = np.asarray(B.diffrax_run(n, d)(B.diffrax_keys(P)))
    q = (X * X).sum(axis=1)
    m_dx, se_dx = q.mean(), q.std(ddof=1) / math.sqrt(P)
    r = smfsym.simulate(smfsym.smf(B.problem(d), order=2), x0=np.linspace(1.0, -1.0, d), t_end=n * dt, dt=dt,
                        eta=B.ETA, n_paths=P, seed=1, options=RunOptions(progress=False),
                        save_at=SaveAt(functions={"sq": lambda Y: (Y * Y).sum(axis=-1)}, store=False))
    m_sm, se_sm = float(r.mean("sq")[-1]), float(r.sem("sq")[-1])
    z = (m_dx - m_sm) / math.hypot(se_dx, se_sm)
    print(f"# jax {jax.__version__} ({jax.default_backend()}), diffrax {diffrax.__version__}; {P} paths, {n} steps")
    print(f"E|X_T|^2  diffrax {m_dx:.5f} +- {se_dx:.5f}   smfsym {m_sm:.5f} +- {se_sm:.5f}   difference {z:+.2f} s.e.")
    ok = abs(z) <= 5.0
    print("same SDE (within 5 s.e.)" if ok else "DIFFERENT SDEs: the diffrax row does not compare like with like")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
