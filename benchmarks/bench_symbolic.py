"""Symbolic derivation speed (issues 2 and 17).

1. smfsym's moment-based expectation against sympy.stats.E on linear regression
   with Gaussian features at d = 3: F, grad F and Sigma, checked identical.
2. The whole derivation (F, grad F, Sigma, SME order 2, SMF order 2) of linear
   regression with d Gaussian features, each d in a fresh process.

3. ``--loss logistic``: the same stages for a logistic loss (Gaussian features, Rademacher labels), whose
   means are numeric (DataMean): every mean is built in its overflow-safe form, so this times that rewrite;
   plus compiling grad F and the SMF-2 drift and evaluating them at 4,096 states (quadrature, d <= 3).

Run: python benchmarks/bench_symbolic.py [--dims 5 10 20 30 50] [--loss logistic]
     python benchmarks/bench_symbolic.py --before /work/main   # old code side by side, results compared
     python benchmarks/bench_symbolic.py --profile [--before /work/main] [--dims 20]
         # moment conversions into the polynomial ring vs distinct monomials

With ``--before PATH`` every derivation runs twice, interleaved, in fresh processes: once with
the package at PATH and once with this checkout's, and the two results (F, grad F, Sigma, SME and
SMF drift and diffusion) are compared structurally (equal ``srepr``). The code at PATH gets
``max_products`` raised so that it is not refused at large d.
"""
import argparse
import cProfile
import hashlib
import json
import os
import pstats
import re
import subprocess
import sys
import time
from pathlib import Path

import sympy as sp

ROOT = Path(__file__).resolve().parent.parent


def linreg(d, limits=None):
    import smfsym

    x = sp.symbols(f"x0:{d}")
    a = smfsym.normal("a", d)
    eps = smfsym.normal("eps", std=sp.Rational(1, 2))
    kw = {} if limits is None else {"limits": limits}
    return x, smfsym.Problem((sum(ai * xi for ai, xi in zip(a, x)) - eps) ** 2 / 2, x, **kw)


def logistic(d, limits=None):
    import smfsym

    x = sp.symbols(f"x0:{d}")
    a, y = smfsym.normal("a", d), smfsym.rademacher("y")
    kw = {} if limits is None else {"limits": limits}
    return x, smfsym.Problem(sp.log(1 + sp.exp(-y * sum(ai * xi for ai, xi in zip(a, x)))), x, **kw)


LOSSES = {"regression": linreg, "logistic": logistic}


def evaluate(x, p, flow, times):
    """Compile grad F and the SMF drift and evaluate them at 4,096 states (the numeric means' cost)."""
    import numpy as np
    from smfsym.symbolic.lambdify import compile_exprs

    t = time.perf_counter()
    f = compile_exprs(list(p.grad_F) + list(flow.drift), x, values={flow.eta: 0.1})
    f(np.random.default_rng(0).normal(size=(4096, len(x))))
    times["evaluate"] = time.perf_counter() - t


_RULE_KEY = re.compile(r"Str\('[^']*#-?\d+#-?\d+'\)")


def derive(d, raise_limits=False, loss="regression"):
    """Time the derivation stage by stage; return the times and a digest of every result."""
    import smfsym

    limits = smfsym.Limits(max_products=10**9) if raise_limits else None
    times = {}
    t0 = time.perf_counter()
    x, p = LOSSES[loss](d, limits)
    times["problem"] = time.perf_counter() - t0
    out = {}
    for name in ("F", "grad_F", "sigma"):
        t = time.perf_counter()
        out[name] = getattr(p, name)
        times[name] = time.perf_counter() - t
    t = time.perf_counter()
    eq = smfsym.sme(p, order=2)
    times["sme"] = time.perf_counter() - t
    t = time.perf_counter()
    flow = smfsym.smf(p, order=2)
    times["smf"] = time.perf_counter() - t
    times["total"] = time.perf_counter() - t0
    if loss == "logistic" and d <= 3:  # a tensor Gauss rule over d coordinates: 16**d nodes to start
        evaluate(x, p, flow, times)
    diffusion = eq.diffusion.sigma if hasattr(eq.diffusion, "sigma") else eq.diffusion
    out.update(sme_drift=eq.drift, sme_diffusion=diffusion, smf_drift=flow.drift, smf_diffusion=flow.diffusion)
    # a data mean's rule key holds per-process tokens (a law's symbol token, the hash of its limits): compared
    # without them, so that "identical" means the same expressions, not the same process
    digests = {k: hashlib.sha256(_RULE_KEY.sub("Str(rule)", sp.srepr(v)).encode()).hexdigest() for k, v in out.items()}
    return {"d": d, "times": times, "digests": digests, "n_noise": flow.n_noise}


def run_worker(d, path, raise_limits=False, loss="regression"):
    """One derivation in a fresh process with the package at ``path`` first on sys.path."""
    env = dict(os.environ, PYTHONPATH=str(path))
    cmd = ([sys.executable, str(Path(__file__).resolve()), "--worker", str(d), "--loss", loss]
           + (["--raise-limits"] if raise_limits else []))
    res = subprocess.run(cmd, env=env, cwd="/", capture_output=True, text=True, check=False)
    if res.returncode:
        raise RuntimeError(f"worker d={d} with {path} failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def time_smfsym_fgs(d):
    t0 = time.perf_counter()
    x, p = linreg(d)
    out = (p.F, p.grad_F, p.sigma)
    return time.perf_counter() - t0, out


def time_sympy_stats(d):
    import sympy.stats as st

    x = sp.symbols(f"x0:{d}")
    t0 = time.perf_counter()
    a = [st.Normal(f"a{i}", 0, 1) for i in range(d)]
    eps = st.Normal("eps", 0, sp.Rational(1, 2))
    f = (sum(ai * xi for ai, xi in zip(a, x)) - eps) ** 2 / 2
    F = sp.expand(st.E(f))
    g = [sp.diff(f, v) for v in x]
    Eg = [sp.expand(st.E(gi)) for gi in g]
    S = sp.zeros(d, d)
    for i in range(d):
        for j in range(i, d):
            S[i, j] = S[j, i] = sp.expand(st.E(sp.expand(g[i] * g[j])) - Eg[i] * Eg[j])
    return time.perf_counter() - t0, (F, sp.Matrix(Eg), S)


def against_sympy_stats():
    import smfsym  # noqa: F401 - imported before the clock starts (linreg imports it lazily)

    d = 3
    t_ours, (F, gF, S) = time_smfsym_fgs(d)  # first call: cold caches
    t_warm = sorted(time_smfsym_fgs(d)[0] for _ in range(5))[2]  # median of 5, fresh symbols each
    t_ref, (F2, gF2, S2) = time_sympy_stats(d)
    same = sp.expand(F - F2) == 0 and (gF - gF2).is_zero_matrix and (S - S2).applyfunc(sp.expand).is_zero_matrix
    print("## expectation: smfsym vs sympy.stats.E (linear regression, Gaussian features, d = 3)")
    print("| quantity | smfsym first call (s) | smfsym median of 5 (s) | sympy.stats.E (s) | speed-up (first, median) | identical |")
    print("|---|---|---|---|---|---|")
    print(f"| F, grad F, Sigma | {t_ours:.4f} | {t_warm:.4f} | {t_ref:.2f} | {t_ref / t_ours:.0f}x, {t_ref / t_warm:.0f}x | {same} |")
    print()


def whole(dims, before, repeats, loss="regression"):
    print(f"## whole derivation (F, grad F, Sigma, SME order 2, SMF order 2) of the {loss} loss, fresh process per run")
    if before:
        print(f"before = {before}, after = {ROOT}; runs interleaved, best of {repeats}; "
              "identical = every result has the same srepr; evaluate = compile grad F and the SMF drift, "
              "evaluate at 4,096 states (logistic, d <= 3)")
        print("| d | before (s) | after (s) | before / after | Sigma before (s) | Sigma after (s) | evaluate before (s) "
              "| evaluate after (s) | SMF noise columns | identical |")
        print("|---|---|---|---|---|---|---|---|---|---|")
    else:
        print(f"best of {repeats}")
        print("| d | seconds | problem | F | grad F | Sigma | SME | SMF | SMF noise columns |")
        print("|---|---|---|---|---|---|---|---|---|")
    for d in dims:
        new, old = [], []
        for _ in range(repeats):
            if before:
                old.append(run_worker(d, before, raise_limits=True, loss=loss))
            new.append(run_worker(d, ROOT, loss=loss))
        bn = min(new, key=lambda r: r["times"]["total"])
        if before:
            bo = min(old, key=lambda r: r["times"]["total"])
            same = all(r["digests"] == bo["digests"] for r in new + old)
            tn, to = bn["times"], bo["times"]
            ev = [f"{min(r['times'].get('evaluate', float('nan')) for r in rs):.2f}" for rs in (old, new)]
            print(f"| {d} | {to['total']:.2f} | {tn['total']:.2f} | {to['total'] / tn['total']:.1f} | "
                  f"{to['sigma']:.2f} | {tn['sigma']:.2f} | {ev[0]} | {ev[1]} | {bn['n_noise']} | {same} |", flush=True)
        else:
            t = bn["times"]
            print(f"| {d} | {t['total']:.2f} | {t['problem']:.2f} | {t['F']:.2f} | {t['grad_F']:.2f} | "
                  f"{t['sigma']:.2f} | {t['sme']:.2f} | {t['smf']:.2f} | {bn['n_noise']} |", flush=True)
    print()


def profile_counts(d):
    """Moment conversions (sympy -> polynomial ring) against distinct monomials, under cProfile.

    Written against what both the old and the new code have: the calls of the polynomial
    ring's from_sympy and the problem's moment cache (one entry per distinct monomial).
    """
    import smfsym

    x, p = linreg(d)
    prof = cProfile.Profile()
    prof.enable()
    t0 = time.perf_counter()
    p.F, p.grad_F, p.sigma
    smfsym.sme(p, order=2)
    smfsym.smf(p, order=2)
    wall = time.perf_counter() - t0
    prof.disable()
    stats = pstats.Stats(prof)
    calls = {"from_sympy": 0, "lookups": 0}
    for (fname, _, func), (_, ncalls, *_rest) in stats.stats.items():
        if func == "from_sympy" and fname.endswith("polynomialring.py"):
            calls["from_sympy"] += ncalls
        if func in ("_moment_in", "in_ring") and fname.endswith("expectation.py"):
            calls["lookups"] = max(calls["lookups"], ncalls)  # in_ring is called by _moment_in or directly
    return {"wall": wall, "conversions": calls["from_sympy"], "lookups": calls["lookups"],
            "distinct": len(p._ring[3].cache), "package": smfsym.__file__}


def profile(d, before):
    sides = ([("before", before)] if before else []) + [("after", ROOT)]
    res = {}
    for name, path in sides:
        env = dict(os.environ, PYTHONPATH=str(path))
        cmd = [sys.executable, str(Path(__file__).resolve()), "--profile-worker", str(d)]
        out = subprocess.run(cmd, env=env, cwd="/", capture_output=True, text=True, check=True)
        res[name] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"## profile: linear regression d = {d} (F, grad F, Sigma, SME 2, SMF 2), under cProfile")
    print("| code | seconds (profiled) | moment look-ups | distinct monomials | ring conversions (from_sympy) | conversions per distinct monomial |")
    print("|---|---|---|---|---|---|")
    for name, r in res.items():
        print(f"| {name} ({Path(r['package']).parent.parent}) | {r['wall']:.2f} | {r['lookups']:,} | {r['distinct']:,} | "
              f"{r['conversions']:,} | {r['conversions'] / max(r['distinct'], 1):.2f} |")
    print()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dims", type=int, nargs="+", default=[5, 10, 20, 30, 50])
    ap.add_argument("--before", help="path of a checkout whose package to time side by side and compare")
    ap.add_argument("--repeats", type=int, default=1, help="runs per d and side (best is kept)")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--profile-worker", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--raise-limits", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--loss", choices=sorted(LOSSES), default="regression")
    args = ap.parse_args()
    if args.worker is not None:
        print(json.dumps(derive(args.worker, args.raise_limits, args.loss)))
        return
    if args.profile_worker is not None:
        print(json.dumps(profile_counts(args.profile_worker)))
        return
    if args.profile:
        for d in (args.dims if "--dims" in sys.argv else [20]):
            profile(d, args.before)
        return
    if not args.before and args.loss == "regression":
        against_sympy_stats()
    whole(args.dims, args.before, args.repeats, args.loss)


if __name__ == "__main__":
    main()
