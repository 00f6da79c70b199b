"""Cost estimates against measured wall time, for the shipped specs at reduced paths.

For each study kind the estimate (``smfsym.estimate_cost``, ``estimate_multipoint_cost``,
``estimate_meanfield_cost``: compile, probe a few steps, multiply) is printed next to the
wall time of the real study with the same arguments, run right after it:

- weak error, Monte Carlo: ``double_well`` (sme1, sme2; 3 etas), a logistic loss with
  Gaussian data (data means, sme1 + smf1), and a logistic loss on a 569-row data set (issue 15: its
  estimate took 48.6 s; data sets are now sized with two timed calls per simulator) at ``--paths``
  paths (default 20,000; the spec has 400,000);
- multi-point: ``rademacher``'s [check.multipoint] at ``--paths`` paths;
- mean field: ``meanfield_teacher``'s [meanfield.check] with 48 paths (the spec has 192).

The ratio estimate / measured is what the CLI's refusal threshold rests on.

    PYTHONPATH=$PWD python benchmarks/bench_cost.py [--paths N]
"""
from __future__ import annotations

import os
import platform
import sys
import time
import warnings

import numpy as np
import sympy as sp

import smfsym
from smfsym.meanfield import InitialParticles, MeanFieldNumerics, Observe, estimate_meanfield_cost
from smfsym.studies import estimate_multipoint_cost
from smfsym.cli import SHIPPED
from smfsym.spec import load_spec

N_PATHS = int(sys.argv[sys.argv.index("--paths") + 1]) if "--paths" in sys.argv else 20_000


def timed(fn):
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = fn()
    return out, time.perf_counter() - t0


def weak(name, problem, c, values=None):
    kw = dict(models=c["models"], n_paths=N_PATHS, values=values, scheme=None if c["scheme"] == "auto" else c["scheme"])
    est, probe = timed(lambda: smfsym.estimate_cost(problem, c["phi"], c["x0"], c["t_end"], c["etas"],
                                                    method="montecarlo", **kw))
    _, real = timed(lambda: smfsym.weak_error(problem, c["phi"], c["x0"], c["t_end"], c["etas"], method="montecarlo",
                                              seed=c["seed"], progress=False, **kw))
    return name, f"weak error, {len(c['etas'])} etas, {'+'.join(c['models'])}, {N_PATHS} paths", est, probe, real


def main():
    rows = []
    spec = load_spec(SHIPPED / "double_well.toml")
    rows.append(weak("double_well", spec.problem, spec.check, spec.values or None))
    x = sp.Symbol("x")
    logistic = smfsym.Problem(sp.log(1 + sp.exp(-smfsym.normal("a") * x)), [x])
    rows.append(weak("logistic (Gauss rule)", logistic,
                     dict(phi=x**2, x0=[1.0], t_end=1.0, etas=[0.2, 0.1], models=["sme1", "smf1"], scheme="euler",
                          seed=0)))
    rng = np.random.default_rng(0)
    data = np.column_stack([rng.normal(size=569), rng.normal(size=569), rng.choice([-1.0, 1.0], size=569)])
    a0, a1, lab = smfsym.empirical(data, ["a0", "a1", "lab"])
    x0, x1 = sp.symbols("x0 x1")
    rows_569 = smfsym.Problem(sp.log(1 + sp.exp(-lab * (a0 * x0 + a1 * x1))) + (x0**2 + x1**2) / 20, [x0, x1])
    rows.append(weak("logistic (569-row data set)", rows_569,
                     dict(phi=x0**2 + x1, x0=[0.5, -0.5], t_end=0.5, etas=[0.25, 0.125], models=["sme1", "smf1"],
                          scheme="euler", seed=0)))
    spec = load_spec(SHIPPED / "rademacher.toml")
    mp = spec.check["multipoint"]
    est, probe = timed(lambda: estimate_multipoint_cost(spec.problem, mp["starts"], eta=mp["eta"],
                                                               t_end=mp["t_end"], n_paths=N_PATHS))
    _, real = timed(lambda: smfsym.multipoint(spec.problem, mp["starts"], eta=mp["eta"], t_end=mp["t_end"],
                                              n_paths=N_PATHS, progress=False))
    rows.append(("rademacher", f"multipoint, {len(mp['starts'])} starts, 3 models, {N_PATHS} paths", est, probe, real))
    spec = load_spec(SHIPPED / "meanfield_teacher.toml")
    m = dict(spec.meanfield_check)
    m["n_paths"] = 48
    start = InitialParticles(law=spec.particles or None, seed=m["particle_seed"])
    kw = dict(etas=m["etas"], t_end=m["t_end"], widths=m["widths"], n_paths=m["n_paths"], methods=m["methods"],
              observe=Observe(observables=m["observables"], n_saves=m["n_saves"], risk_points=m["risk_points"]),
              numerics=MeanFieldNumerics(order=m["ddsmf_order"], n_points=m["n_points"]))
    est, probe = timed(lambda: estimate_meanfield_cost(spec.meanfield, start, **kw))
    _, real = timed(lambda: smfsym.meanfield_study(spec.meanfield, start, seed=m["seed"], **kw))
    rows.append(("meanfield_teacher", f"mean field, widths {m['widths']}, {m['n_paths']} paths", est, probe, real))

    print(f"smfsym cost estimates vs measured ({time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()})\n")
    print(f"| spec | study | estimate (s) | measured (s) | estimate / measured | probing (s) |")
    print("|---|---|---|---|---|---|")
    for name, what, est, probe, real in rows:
        print(f"| {name} | {what} | {est.seconds:.2f} | {real:.2f} | {est.seconds / real:.2f} | {probe:.2f} |")


if __name__ == "__main__":
    main()
