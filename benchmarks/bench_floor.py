"""Time per path-step against the machine's floor (issue 9, part 6).

Floor of a step = (time of its random draws per path-step, measured alone)
                + (array operations per path-step of the compiled expressions the step evaluates,
                   counted with sympy's count_ops on the cse'd expressions actually lambdified,
                   plus the step's own combination arithmetic and, for data means, the integrand's
                   operations at the quadrature nodes) x (measured ns per element of that kind of
                   numpy operation - a product, an exp, a log, ... - on arrays of the shape the step
                   uses: one seed block of 4096 paths, times the directions stacked (pairs in weak order 2)).
Measured = time of one call of the simulator's step (draws included) on one seed block, per path.
The floor is what numpy could do with these expressions if every operation ran at the speed of a
lone `a * b`; the ratio measured / floor is the overhead left (temporaries, memory traffic, Python).

Cases: the d = 10 linear-regression SMF (65 noise columns; Euler and weak order 2, Gaussian and
discrete increments) and a data-mean problem (the order-2 SMF of the logistic loss
log(1 + exp(-a x)) with a ~ N(0, 1): its chaos coefficients are quadrature means).

Before/after: the same measurement with another checkout's smfsym (``--before PATH``, e.g. the
main worktree), run in a subprocess with PYTHONPATH=PATH; only the measured times are taken from it.

Run: PYTHONPATH=$PWD python benchmarks/bench_floor.py [--quick] [--before /work/main]
"""
import json
import os
import subprocess
import sys
import time

import numpy as np
import sympy as sp

import smfsym

BLOCK = 4096
ETA = 0.05
QUICK = "--quick" in sys.argv
REPEAT = 3 if QUICK else 7


def smf_d10():
    d = 10
    x = sp.symbols(f"x0:{d}")
    a = smfsym.normal("a", d)
    eps = smfsym.normal("eps", std=sp.Rational(1, 2))
    flow = smfsym.smf(smfsym.Problem((sum(ai * xi for ai, xi in zip(a, x)) - eps) ** 2 / 2, x), order=2)
    return flow, np.linspace(1.0, -1.0, d)


def logistic():
    a, x = smfsym.normal("a"), sp.Symbol("x")
    flow = smfsym.smf(smfsym.Problem(sp.log(1 + sp.exp(-a * x)), [x]), order=2)
    return flow, np.array([0.8])


PROBLEMS = {"linear regression SMF d=10": smf_d10, "logistic SMF (data means)": logistic}
CASES = [(p, s, inc) for p in PROBLEMS for s in ("euler", "weak2") for inc in ("gaussian", "discrete")]


def _best(fn, repeat=REPEAT):
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return min(out)


def measure(problem, scheme, increments, n_steps=10):
    """Seconds per path-step of the stepper on one seed block (any smfsym version with SDETask)."""
    from smfsym.engine import block_generators, resolve_seed
    from smfsym.simulation.sde import SDETask
    from smfsym.numerics.solvers import get_solver

    flow, x0 = PROBLEMS[problem]()
    stepper = SDETask(flow, {flow.eta: ETA}, get_solver(scheme), increments).build()
    X0 = np.tile(x0, (BLOCK, 1))
    h = ETA / 10

    def run():
        gens = block_generators(resolve_seed(1), 0, 1)
        X = X0
        for _ in range(n_steps):
            X = stepper(X, h, gens, [BLOCK])

    run()  # warm-up (first evaluation of lazily built pieces)
    return _best(run) / (n_steps * BLOCK)


def _ns_per_op(shape):
    a, b = np.random.default_rng(0).random((2,) + shape)
    n = int(np.prod(shape))
    def ops():
        for _ in range(200):
            a * b  # a fresh output each time, freed at once: what the lambdified code does

    return _best(ops, 5) / (200 * n) * 1e9


_FUNCS = {"EXP": np.exp, "LOG": np.log, "SIN": np.sin, "COS": np.cos, "TANH": np.tanh, "POW": lambda a: a ** 2.5,
          "ABS": np.abs, "SQRT": np.sqrt}


def _op_kinds(cse_out):
    """Operations by kind (sympy's count_ops(visual=True)) of a recorded cse output, constants folded."""
    repl, reduced = cse_out
    reduced = reduced if isinstance(reduced, (list, tuple)) else [reduced]
    kinds = {}
    for e in [r for _, r in repl] + list(reduced):
        v = sp.count_ops(e.evalf(), visual=True)
        for term in sp.Add.make_args(v):
            c, sym = term.as_coeff_Mul()
            if sym != 0:
                kinds[str(sym)] = kinds.get(str(sym), 0) + int(c)
    return kinds


def _ns_kind(kind, shape):
    """ns per element of one operation of this kind (a transcendental costs more than a product)."""
    fn = _FUNCS.get(kind)
    if fn is None:
        return _ns_per_op(shape)
    a = np.random.default_rng(0).random(shape) + 0.5

    def ops():
        for _ in range(50):
            fn(a)

    return _best(ops, 5) / (50 * a.size) * 1e9


def _ops_ns(ce, shape, per_point=1):
    """(operations, ns) per point of a CompiledExprs / mean evaluator, weighted by kind."""
    kinds = _op_kinds(ce._cse_out[-1]) if ce._cse_out else {}
    n = sum(kinds.values())
    return n * per_point, sum(c * _ns_kind(k, shape) for k, c in kinds.items()) * per_point


def floor(problem, scheme, increments):
    """(rng ns, flop ns, ops per path-step by term) per path-step for this checkout."""
    from smfsym.engine import block_generators, draw_discrete, resolve_seed
    from smfsym.numerics.compiled_sde import NumericSDE
    from smfsym.numerics.solvers import get_solver

    flow, _ = PROBLEMS[problem]()
    nsde = NumericSDE(flow, {flow.eta: ETA})
    solver = get_solver(scheme)
    solver.prepare(nsde)
    k, m = solver.n_draws, nsde.m
    g = block_generators(resolve_seed(1), 0, 1)[0]
    if increments == "gaussian":
        rng = _best(lambda: g.standard_normal((BLOCK, k, m))) / BLOCK * 1e9
    else:
        rng = _best(lambda: draw_discrete(g, BLOCK, solver.discrete, m)) / BLOCK * 1e9
    ops = solver.op_counts(nsde)
    plan = nsde.weak2_plan if scheme == "weak2" else nsde.euler_plan
    stacked = {"noise": 4 if scheme == "weak2" else 1, "dg": 3 if scheme == "weak2" else 1}
    ns = 0.0
    for term, n in ops.items():  # each term's operations priced by kind (exp, log, ... cost more)
        if term == "combine":
            ns += n * _ns_per_op((1, BLOCK))
            continue
        ce = plan.front if term == "front" else plan.backs[term]
        mult = stacked.get(term, 1)
        _, t = _ops_ns(ce, (min(mult, 2), BLOCK), mult)  # weak2 stacks pairs of directions
        ns += t
    # data means in the front: the integrand at the n- and 2n-point rules (the error check needs both)
    # plus the weighted sums (value and |value| scale: 5 operations per node)
    mean_ops = 0
    for _, ev in plan.front.means:
        levels = ev.mean._levels()[:2] if ev.mean.rule.is_quadrature else [ev.mean.rule.n_points]
        nodes = sum(ev.mean._rule(n)[0].shape[0] for n in levels)
        # priced on the (paths x nodes) grid the integrand is evaluated on
        n_int, t_int = _ops_ns(ev, (BLOCK, ev.mean._rule(levels[0])[0].shape[0]), nodes)
        mean_ops += n_int + 5 * nodes
        ns += t_int + 5 * nodes * _ns_per_op((1, BLOCK))
    if mean_ops:
        ops["means"] = mean_ops
    return rng, ns, ops


def main():
    if "--measure-json" in sys.argv:  # subprocess mode, any checkout
        print(json.dumps({f"{p}|{s}|{i}": measure(p, s, i) for p, s, i in CASES}))
        return
    before = None
    if "--before" in sys.argv:
        path = sys.argv[sys.argv.index("--before") + 1]
        env = dict(os.environ, PYTHONPATH=path)
        out = subprocess.run([sys.executable, __file__, "--measure-json"] + (["--quick"] if QUICK else []),
                             env=env, capture_output=True, text=True, check=True).stdout
        before = json.loads(out.strip().splitlines()[-1])
    print(f"## Time per path-step against the floor (one seed block of {BLOCK} paths, eta = {ETA}, dt = eta/10)")
    print(f"numpy {np.__version__}; ns per elementwise product: {_ns_per_op((1, BLOCK)):.3f} on {BLOCK} elements, "
          f"{_ns_per_op((2, BLOCK)):.3f} on 2 x {BLOCK}")
    head = "| problem | scheme | increments | RNG floor (ns) | ops per path-step | flop floor (ns) | floor (ns) | measured (ns) | measured / floor |"
    if before:
        head += " before (ns) | before / after |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for p, s, i in CASES:
        rng, ns, ops = floor(p, s, i)
        t = measure(p, s, i) * 1e9
        total = rng + ns
        line = (f"| {p} | {s} | {i} | {rng:.0f} | {sum(ops.values())} ({', '.join(f'{k} {v}' for k, v in ops.items())}) "
                f"| {ns:.0f} | {total:.0f} | {t:.0f} | {t / total:.2f} |")
        if before:
            tb = before[f"{p}|{s}|{i}"] * 1e9
            line += f" {tb:.0f} | {tb / t:.2f} |"
        print(line)


if __name__ == "__main__":
    main()
