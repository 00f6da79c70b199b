"""Executors (issue 9): one process vs ProcessPoolExecutor(2) vs a 2-worker Dask LocalCluster.

SMF of order 2 (weak order 2 scheme) of the double-well problem of ``smfsym/specs/double_well.toml``,
eta = 0.1, t = 1, dt = eta / 8 (80 steps), statistics streamed (store=False), phi = x; 10^6 paths
(``--paths N`` to change; ``--quick``: 2 * 10^5 paths, 2 repeats). Each executor first runs cold
(fresh worker processes: the first task pays the compile), then warm runs keep the best of
``REPEATS`` (the machine may be shared). Per-task overhead is the worker time not spent simulating:
(workers * wall - sum of the tasks' compile and run seconds) / tasks. Every run's streamed mean and
standard error are checked bitwise against the serial run's. "CPU share" is CPU time / wall time of
the simulating processes: under 1.0 the machine was shared and the measured speed-up is bounded by it.
The idle-machine speed-up is a projection, not a measurement: two workers that each got a whole
core would finish in (their CPU-seconds) / 2, against the serial run's CPU-seconds. Dask is measured twice: with its
default worker environment (``MALLOC_TRIM_THRESHOLD_=65536``, which slows numpy's large temporaries:
see the comment in ``Dask``) and with that variable unset.

    PYTHONPATH=$PWD python benchmarks/bench_executors.py [--quick] [--paths N]

``--meanfield`` measures the mean-field simulators instead: the DD-SMF (Euler, order 1, 16-point
Gauss-Hermite noise rule) and mean-field SGD of a width-50 tanh network learning tanh(2 z), z ~ N(0, 1),
eta = 0.05 to t = 1 (20 steps), 2^16 paths (16 seed blocks; ``--quick``: 2^14), risk streamed
per path; serial vs ``smfsym.process_pool(2)`` vs a 2-worker Dask LocalCluster. Every run's per-path
risk is checked bitwise against the serial run's. A mean-field run is parallel across seed blocks of
4096 paths only: a run of at most 4096 paths is one task.

    PYTHONPATH=$PWD python benchmarks/bench_executors.py --meanfield [--quick]
"""
from __future__ import annotations

import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import sympy as sp

import smfsym
from smfsym.meanfield import MeanFieldNumerics, Observe
from smfsym.studies.common import PhiFunction

QUICK = "--quick" in sys.argv
REPEATS = 2 if QUICK else 4
N_PATHS = int(sys.argv[sys.argv.index("--paths") + 1]) if "--paths" in sys.argv else (200_000 if QUICK else 10**6)

x = sp.Symbol("x")
z = smfsym.normal("z", std=0.5)
PROBLEM = smfsym.Problem((x**2 - 1) ** 2 / 4 + x**2 * z / 2 - sp.Rational(1, 5) * x, [x])
FLOW = smfsym.smf(PROBLEM, order=2)
ETA = 0.1
KW = dict(x0=[0.5], t_end=1.0, eta=ETA, dt=ETA / 8, n_paths=N_PATHS, seed=1, scheme="weak2", store=False,
          functions={"phi": PhiFunction(x, [x], {})})


def run(executor=None):
    t0, c0 = time.perf_counter(), time.process_time()
    res = smfsym.simulate(FLOW, options=smfsym.RunOptions(executor=executor, **KW))
    res.extra["cpu_share"] = (time.process_time() - c0) / (time.perf_counter() - t0)
    return time.perf_counter() - t0, res


def cpu_share(info):
    """Fraction of a core the worker processes got while simulating (1.0 on an idle machine)."""
    return sum(info["cpu_seconds"]) / (sum(info["run_seconds"]) + sum(info["compile_seconds"]))


def overhead(wall, info, workers=2):
    busy = sum(info["compile_seconds"]) + sum(info["run_seconds"])
    return max(0.0, workers * wall - busy) / info["n_tasks"]


def main():
    serial_times, shares = [], []
    for _ in range(REPEATS):
        t, ref = run()
        serial_times.append(t)
        shares.append(ref.extra["cpu_share"])
    t1 = min(serial_times)
    cpu1 = t1 * shares[int(np.argmin(serial_times))]
    rows = [("1 process (serial)", t1, 1.0, float("nan"), float("nan"), "-", shares[int(np.argmin(serial_times))],
             cpu1, True)]
    print(f"  serial: {[round(v, 2) for v in serial_times]}", flush=True)

    def same(res):
        return all(np.array_equal(ref.stats[n][q], res.stats[n][q]) for n in ref.stats for q in ("mean", "sem", "n"))

    def measure(label, make, repeats=REPEATS):
        with make() as ex:
            executor = ex
            cold_wall, cold = run(executor)
            compile_first = max(cold.extra["executor"]["compile_seconds"])
            walls, ok = [], same(cold)
            best_info = None
            for _ in range(repeats):
                w, res = run(executor)
                ok &= same(res)
                if not walls or w < min(walls):
                    best_info = res.extra["executor"]
                walls.append(w)
            w = min(walls)
            rows.append((label, w, t1 / w, compile_first, overhead(w, best_info), f"{best_info['n_tasks']} x "
                         f"{best_info['blocks_per_task']} blocks", cpu_share(best_info),
                         sum(best_info["cpu_seconds"]), ok))
            print(f"  {label}: cold {cold_wall:.2f} s, warm {[round(v, 2) for v in walls]}", flush=True)

    measure("ProcessPoolExecutor(2)", lambda: ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")))
    measure("smfsym.process_pool(2)", lambda: smfsym.process_pool(2))

    measure("Dask LocalCluster(2 workers), MALLOC_TRIM_THRESHOLD_ unset", lambda: _Dask(trim=False))
    measure("Dask LocalCluster(2 workers), Dask's default env (1 warm run)", lambda: _Dask(trim=True), repeats=1)
    ceiling = hardware_ceiling()
    print(f"\n## SMF order 2 (weak2), double well, {N_PATHS} paths, 80 steps, streamed phi = x "
          f"(best of {REPEATS} warm runs)")
    print("| executor | wall (s) | speed-up vs 1 process | first-task compile (s) | overhead per task (s) | tasks | "
          "CPU share per process | simulation CPU-s | idle-machine speed-up (2 x serial CPU-s / CPU-s) | "
          "bitwise = serial |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for label, w, sp_, comp, over, tasks, share, cpu, ok in rows:
        fmt = (lambda v: "-" if v != v else f"{v:.3f}")
        proj = "-" if tasks == "-" else f"{2 * cpu1 / cpu:.2f}"
        print(f"| {label} | {w:.2f} | {sp_:.2f} | {fmt(comp)} | {fmt(over)} | {tasks} | {share:.2f} | {cpu:.2f} | "
              f"{proj} | {ok} |")
    one, halves = ceiling
    print(f"\nHardware ceiling, side by side (fresh processes, no executor): one process with all paths "
          f"{one:.2f} s; two concurrent processes with half the paths each {halves[0]:.2f} s and "
          f"{halves[1]:.2f} s: speed-up at most {one / max(halves):.2f}x on this machine now.")


_CEILING_CODE = """
import sys, time
sys.argv = ['bench', '--paths', '{n}']
sys.path.insert(0, {here!r})
import bench_executors as b
import smfsym
smfsym.simulate(b.FLOW, **dict(b.KW, n_paths=4096))  # compile and warm up
t0 = time.perf_counter()
smfsym.simulate(b.FLOW, **b.KW)
print(time.perf_counter() - t0)
"""


def hardware_ceiling(repeats: int = 3) -> tuple:
    """Best of ``repeats``: one fresh process simulating all paths, and two concurrent fresh processes
    simulating half each (what a perfect 2-way split could reach; both CPUs' contention included)."""
    import os
    import subprocess

    here = os.path.dirname(os.path.abspath(__file__))

    def start(n):
        return subprocess.Popen([sys.executable, "-c", _CEILING_CODE.format(n=n, here=here)], stdout=subprocess.PIPE,
                                text=True)

    ones, pairs = [], []
    for _ in range(repeats):
        ones.append(float(start(N_PATHS).communicate()[0]))
        ps = [start(N_PATHS // 2) for _ in range(2)]
        pairs.append(tuple(float(q.communicate()[0]) for q in ps))
    return min(ones), min(pairs, key=max)


class _Dask:
    """A 2-worker LocalCluster. Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which also
    freezes glibc's mmap threshold: every array over 128 KiB is then a fresh mmap (page faults on each
    step); ``trim=False`` (the default here) unsets it, as the README recommends."""

    def __init__(self, trim: bool = False):
        self.trim = trim

    def __enter__(self):
        import dask
        import distributed

        key = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"
        with dask.config.set({key: 65536 if self.trim else None}):
            self.cluster = distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                                    dashboard_address=None, silence_logs=40)
        self.client = distributed.Client(self.cluster)
        return self.client

    def __exit__(self, *exc):
        self.client.close()
        self.cluster.close()


def main_meanfield():
    a, w, out = sp.symbols("a w out")
    zz = smfsym.normal("z")
    net = smfsym.MeanFieldProblem(a * sp.tanh(w * zz), (a, w), out, (out - sp.tanh(2 * zz)) ** 2 / 2)
    theta = smfsym.particles(net, 50, seed=0)
    paths = 2**14 if QUICK else 2**16
    repeats = 2 if QUICK else 3
    eta = 0.05
    runs = {
        "DD-SMF (Euler, order 1, 16 nodes)": lambda ex: smfsym.simulate_ddsmf(
            net, theta, eta, 1.0, n_paths=paths, seed=1, numerics=MeanFieldNumerics(n_points=16),
            observe=Observe(risk_points=16), options=smfsym.RunOptions(executor=ex)),
        "mean-field SGD": lambda ex: smfsym.simulate_meanfield_sgd(
            net, theta, eta, 20, n_paths=paths, seed=1, observe=Observe(risk_points=16),
            options=smfsym.RunOptions(executor=ex)),
    }
    executors = [("1 process (serial)", None),
                 ("smfsym.process_pool(2)", lambda: smfsym.process_pool(2)),
                 ("Dask LocalCluster(2 workers), MALLOC_TRIM_THRESHOLD_ unset", _Dask)]
    rows = []
    for sim, fn in runs.items():
        ref = None
        for label, make in executors:
            ctx = make() if make is not None else None
            ex = ctx.__enter__() if ctx is not None else None
            try:
                cold = compile_first = None
                if ex is not None:
                    t0 = time.perf_counter()
                    res = fn(ex)  # fresh workers: the first task of each compiles the network
                    cold = time.perf_counter() - t0
                    compile_first = max(res.sim.extra["executor"]["compile_seconds"])
                walls, cpus, ok, info = [], [], True, None
                for _ in range(repeats):
                    t0, c0 = time.perf_counter(), time.process_time()
                    res = fn(ex)
                    wall = time.perf_counter() - t0
                    if ex is None:
                        cpu = time.process_time() - c0
                        ref = res if ref is None else ref
                    else:
                        cpu = sum(res.sim.extra["executor"]["cpu_seconds"])
                    ok &= bool(np.array_equal(res.observables["risk"], ref.observables["risk"]))
                    if not walls or wall < min(walls):
                        info = res.sim.extra.get("executor")
                    walls.append(wall)
                    cpus.append(cpu)
                k = int(np.argmin(walls))
                rows.append((sim, label, walls[k], cpus[k], cold, compile_first, info, ok))
                print(f"  {sim} / {label}: warm {[round(v, 2) for v in walls]}"
                      + ("" if cold is None else f", cold {cold:.2f} s"), flush=True)
            finally:
                if ctx is not None:
                    ctx.__exit__(None, None, None)
    print(f"\n## Mean field on executors: width 50, {paths} paths, 20 steps, risk per path (best of {repeats})")
    print("| simulator | executor | wall (s) | speed-up vs 1 process | CPU-s | idle-machine speed-up (2 x serial "
          "CPU-s / CPU-s) | cold run (s) | first-task compile (s) | tasks | bitwise = serial |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    base = {}
    for sim, label, wall, cpu, cold, compile_first, info, ok in rows:
        if info is None:
            base[sim] = (wall, cpu)
        w1, c1 = base[sim]
        proj = "-" if info is None else f"{2 * c1 / cpu:.2f}"
        comp = "-" if info is None else f"{compile_first:.3f}"
        tasks = "-" if info is None else f"{info['n_tasks']} x {info['blocks_per_task']} blocks"
        print(f"| {sim} | {label} | {wall:.2f} | {w1 / wall:.2f} | {cpu:.2f} | {proj} | "
              f"{'-' if cold is None else f'{cold:.2f}'} | {comp} | {tasks} | {ok} |")


if __name__ == "__main__":
    main_meanfield() if "--meanfield" in sys.argv else main()
