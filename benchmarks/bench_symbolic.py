"""Symbolic derivation speed (issue 2).

1. smfsym's moment-based expectation against sympy.stats.E on linear regression
   with Gaussian features at d = 3: F, grad F and Sigma, checked identical.
2. The whole derivation (F, grad F, Sigma, SME order 2, SMF order 2) at d = 5, 10, 20.

Run: python benchmarks/bench_symbolic.py
"""
import time

import sympy as sp
import sympy.stats as st

import smfsym


def linreg_smfsym(d):
    x = sp.symbols(f"x0:{d}")
    a = smfsym.normal("a", d)
    eps = smfsym.normal("eps", std=sp.Rational(1, 2))
    return x, smfsym.Problem((sum(ai * xi for ai, xi in zip(a, x)) - eps) ** 2 / 2, x)


def time_smfsym_fgs(d):
    t0 = time.perf_counter()
    x, p = linreg_smfsym(d)
    out = (p.F, p.grad_F, p.sigma)
    return time.perf_counter() - t0, out


def time_sympy_stats(d):
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


def main():
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
    print("## whole derivation (F, grad F, Sigma, SME order 2, SMF order 2)")
    print("| d | seconds | SMF noise columns |")
    print("|---|---|---|")
    for d in (5, 10, 20):
        t0 = time.perf_counter()
        x, p = linreg_smfsym(d)
        p.F, p.grad_F, p.sigma
        smfsym.sme(p, order=2)
        flow = smfsym.smf(p, order=2)
        print(f"| {d} | {time.perf_counter() - t0:.2f} | {flow.n_noise} |")


if __name__ == "__main__":
    main()
