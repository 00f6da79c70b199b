"""Weak order 2 on data means: seconds per path-step before/after (issue 11)."""
import sys, time
import numpy as np, sympy as sp, smfsym, smfsym.studies
from smfsym.studies import build_model
x = sp.Symbol("x")
a = smfsym.normal("a")
cases = {"gaussian": smfsym.Problem(sp.log(1 + sp.exp(-a * x)), [x])}
rng = np.random.default_rng(0)
(b,) = smfsym.empirical(rng.normal(size=(64, 1)), ["b"])
cases["empirical64"] = smfsym.Problem(sp.log(1 + sp.exp(-b * x)), [x])
P, n, dt = 4096, 10, 0.0125
out = {}
print(f"{'law':>12} {'model':>6} {'scheme':>6} {'us/path-step':>13}")
for law, p in cases.items():
    for m in ("sme1", "smf2"):
        sde = build_model(p, m)
        for sch in ("euler", "weak2"):
            if sch == "weak2" and smfsym.studies.default_scheme(sde) != "weak2":
                continue  # data-set SME noise is a template (no explicit matrix): Euler only
            smfsym.simulate(sde, [1.0], 2 * dt, eta=0.1, dt=dt, n_paths=64, scheme=sch, seed=0,
                            save_at=smfsym.SaveAt(store=False), options=smfsym.RunOptions(progress=False))
            best = np.inf
            for _ in range(2):
                t = time.perf_counter()
                r = smfsym.simulate(sde, [1.0], n * dt, eta=0.1, dt=dt, n_paths=P, scheme=sch, seed=0,
                                    save_at=smfsym.SaveAt(store=False, functions={"x": lambda X: X[:, 0]}),
                                    options=smfsym.RunOptions(progress=False))
                best = min(best, time.perf_counter() - t)
            out[(law, m, sch)] = r.mean("x")[-1]
            print(f"{law:>12} {m:>6} {sch:>6} {best / (P * n) * 1e6:>13.1f}", flush=True)
if len(sys.argv) > 1:
    np.save(sys.argv[1], np.array([out[k] for k in sorted(out)]))
