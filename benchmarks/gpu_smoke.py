"""First look at a GPU machine (benchmarks/gpu_check.sh runs it before the tests; seconds): each CuPy call the
CuPy back end relies on, once, each reported on its own line (``ok`` or the error), so that a failing test
run still says which call failed.

Run: python benchmarks/gpu_smoke.py [--backend cupy]   (exit 1 when a check failed)
"""
import argparse
import sys
import time

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="cupy")
    a = ap.parse_args(argv)
    from smfsym.backends import CupyBackend, get_backend
    from smfsym.numerics.device_sde import EIGH_BATCH

    b = get_backend(a.backend)
    failed = []

    def check(label, fn):
        t0 = time.perf_counter()
        try:
            out = fn()
            b.synchronize()
            print(f"ok    {label}: {out} ({time.perf_counter() - t0:.2f} s)", flush=True)
        except Exception as exc:  # noqa: BLE001 - reported, the next check still runs
            failed.append(label)
            print(f"FAIL  {label}: {type(exc).__name__}: {exc}", flush=True)

    xp = b.xp
    check("library", lambda: f"{getattr(xp, '__name__', xp)} {getattr(sys.modules.get('cupy'), '__version__', '?')}")
    check("free memory", lambda: "host" if b.free_memory() is None else f"{b.free_memory() / 2**30:.1f} GiB")
    g = b.generator(np.random.SeedSequence(0))
    check("Philox normals (mean, std of 2**20)",
          lambda: (lambda z: (round(float(xp.mean(z)), 4), round(float(xp.std(z)), 4)))(g.standard_normal((2**20,))))
    check("uniforms in [0, 1)", lambda: (lambda u: (float(xp.min(u)) >= 0, float(xp.max(u)) < 1))(g.random((2**20,))))
    check("integers 0..5 (counts / 1e5)",
          lambda: b.to_numpy(xp.sum(xp.astype(xp.reshape(xp.astype(g.integers(6, (6 * 10**5,)), b.dtype), (-1, 1)) ==
                                              b.asarray(np.arange(6.0))[None, :], b.dtype), axis=0)).round(-3) / 1e5)
    check("Array API names (concat, permute_dims, astype, bool, pow, matrix_transpose)",
          lambda: [n for n in ("concat", "permute_dims", "astype", "bool", "pow", "matrix_transpose")
                   if getattr(xp, n, None) is None] or "all present")

    def eigh():
        from smfsym.numerics.device_sde import DeviceSDE

        A = g.standard_normal((EIGH_BATCH + 5, 3, 3))
        S = xp.matmul(A, xp.matrix_transpose(A))
        lam, V = DeviceSDE._eigh(type("D", (), {"xp": xp})(), S)
        err = float(xp.max(xp.abs(xp.matmul(V * lam[..., None, :], xp.matrix_transpose(V)) - S)))
        return f"{EIGH_BATCH + 5} 3x3 in batches of {EIGH_BATCH}, max |V L V^T - S| = {err:.2e}"

    check("batched eigh", eigh)
    def fused():
        fb = CupyBackend(fuse=True)
        out = b.to_numpy(fb.compile(lambda x: [x * 2.0 + 1.0])(fb.asarray([1.0, 2.0]))[0]).tolist()
        return f"{out}, {fb.fuse_failures} ran unfused"

    check("a fused kernel", fused if b.name == "cupy" else lambda: "-")
    check("a host copy", lambda: b.to_numpy(b.asarray([1.0, 2.0]) * 2).tolist())
    print("smoke:", "all ok" if not failed else f"{len(failed)} failed: {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
