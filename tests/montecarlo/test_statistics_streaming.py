"""Engine: streamed statistics bitwise across chunk sizes, lazy grids, bounded memory on data sets."""
import tracemalloc

import numpy as np
import pytest
import sympy as sp

import smfsym
from smfsym.montecarlo.driver import Job, Paths, run
from smfsym.montecarlo.grid import StepGrid
from smfsym.montecarlo.options import RunOptions, SaveAt
from smfsym.montecarlo.seeds import BLOCK
from smfsym.numerics.compiled_sde import NumericSDE

x, a, b = sp.symbols("x a b")


def rademacher_problem():
    return smfsym.Problem((1 + smfsym.rademacher("r")) * x**2 / 2, [x])


def _stats_bits(res):
    return {k: {f: v[f].tobytes() for f in ("mean", "sem", "n")} for k, v in res.stats.items()}


@pytest.mark.parametrize("kind", ["sde", "sgd", "sde_masked"])
def test_streamed_stats_bitwise_identical_across_chunk_sizes(kind):
    n = 2 * BLOCK + 333  # three seed blocks, the last one partial
    fns = {"x2": lambda X: X[..., 0] ** 2, "pair": lambda X: np.stack([X[..., 0], np.cos(X[..., 0])], -1)}
    if kind == "sgd":
        def go(c):
            return smfsym.simulate_sgd(rademacher_problem(), [1.0], 12, 0.1, n_paths=n, seed=5, store=False,
                                       functions=fns, chunk_size=c, save_at=[0, 6, 12])
    else:
        sde = smfsym.smf(rademacher_problem(), order=2)
        if kind == "sde_masked":  # a drift that blows up some paths: masking must not break the bits either
            sde = smfsym.SDE([x**3], [[x]], state=[x])

        def go(c):
            return smfsym.simulate(sde, [1.0], 1.0, eta=0.1, dt=0.02, n_paths=n, seed=5, store=False, functions=fns,
                                   chunk_size=c, save_at=[0.5, 1.0],
                                   on_nonfinite="mask" if kind == "sde_masked" else "raise")
    runs = [go(c) for c in (1, 1000, BLOCK, 100_000)]
    ref = _stats_bits(runs[0])
    for r in runs[1:]:
        assert _stats_bits(r) == ref
    if kind == "sde_masked":
        assert 0 < runs[0].n_nonfinite < n and runs[0].lost_fraction == runs[0].n_nonfinite / n
        counts = runs[0].stats["state"]["n"]
        assert counts[-1] == n - runs[0].n_nonfinite and counts[0] >= counts[-1]  # paths lost by each time


def test_streamed_stats_agree_with_stored_states():
    r = smfsym.simulate_sgd(rademacher_problem(), [1.0], 10, 0.1, n_paths=5000, seed=1)
    X = r.states[-1, :, 0]
    assert r.mean()[-1, 0] == pytest.approx(X.mean(), rel=1e-13)
    assert r.sem()[-1, 0] == pytest.approx(X.std(ddof=1) / np.sqrt(X.size), rel=1e-10)


def test_n_paths_rule_whole_blocks_are_kept():
    """The documented rule: the paths of every full seed block are the same in any run that holds that
    whole block; a partial last block draws a different share of its stream at each step."""
    flow = smfsym.smf(rademacher_problem())
    kw = dict(eta=0.1, seed=9, save_at=[0.5, 1.0])
    long = smfsym.simulate(flow, [1.0], 1.0, n_paths=2 * BLOCK + 50, **kw)
    for n in (BLOCK, BLOCK + 10, 2 * BLOCK):
        short = smfsym.simulate(flow, [1.0], 1.0, n_paths=n, **kw)
        full = (n // BLOCK) * BLOCK
        assert np.array_equal(short.states[:, :full], long.states[:, :full])
    partial = smfsym.simulate(flow, [1.0], 1.0, n_paths=BLOCK + 10, **kw)
    assert not np.array_equal(partial.states[:, BLOCK:], long.states[:, BLOCK:BLOCK + 10])
    sgd_long = smfsym.simulate_sgd(rademacher_problem(), [1.0], 5, 0.1, n_paths=BLOCK + 50, seed=9)
    sgd_short = smfsym.simulate_sgd(rademacher_problem(), [1.0], 5, 0.1, n_paths=BLOCK + 3, seed=9)
    assert np.array_equal(sgd_short.states[:, :BLOCK], sgd_long.states[:, :BLOCK])


def test_long_horizon_streams_without_materialising_the_grid():
    from smfsym.simulation.sde import time_grid

    grid = time_grid(1.0, 1e-8, [0.25, 0.5, 1.0])
    assert isinstance(grid, StepGrid) and len(grid) == 10**8 and grid.save_index[-1] == 10**8
    assert grid.time(10**8) == pytest.approx(1.0) and grid.time(25_000_001) == pytest.approx(0.25 + 1e-8)

    class Enough(Exception):
        pass

    seen = []

    def step(X, h, gens, sizes):
        seen.append(h)
        if len(seen) == 5:
            raise Enough
        return X

    tracemalloc.start()
    with pytest.raises(Enough):
        run(Job(step=step, step_sizes=grid, save_index=grid.save_index, times=grid.times, scheme="t", dt_label=1e-8),
            np.zeros(1), paths=Paths(10, 0), save=SaveAt(store=False), options=RunOptions(progress=False))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2**20  # an array of 10**8 step sizes alone would be 800 MB
    assert seen == [pytest.approx(1e-8)] * 5
    with pytest.raises(ValueError, match=r"1e\+12 solver steps, over the bound of 1e\+09: raise `dt` or `max_steps`"):
        smfsym.simulate(smfsym.smf(rademacher_problem()), [1.0], 1.0, eta=0.1, dt=1e-12)


def test_sgd_long_run_is_lazy_and_refused_over_max_steps():
    with pytest.raises(ValueError, match="`n_steps` = 10000000000 is over the bound of 1000000000: raise `max_steps`"):
        smfsym.simulate_sgd(rademacher_problem(), [1.0], 10**10, 0.1)


def _logistic(M, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=M)
    y = np.sign(rng.normal(size=M) + z)
    Z, Y = smfsym.empirical(np.c_[z, y], "z y")
    return smfsym.Problem(sp.log(1 + sp.exp(-Y * (a * Z + b))), [a, b])


def test_data_set_noise_action_is_chunked_and_exact():
    """Row chunks and path sub-batches give the direct sum_i sqrt(w_i) U_i column_i (to rounding)."""
    p = _logistic(2500)  # more rows than one chunk
    flow = smfsym.smf(p, order=1)
    ns = NumericSDE(flow, {flow.eta: 0.1})
    rng = np.random.default_rng(1)
    X = rng.normal(size=(7, 2))
    U = rng.normal(size=(7, 2500))
    direct = ns.scale * np.einsum("pkd,pk->pd", ns.columns(X), U * ns.sqrt_w)
    assert np.allclose(ns.noise(X, U), direct, rtol=1e-12, atol=1e-14)
    # per-path numbers do not depend on how many paths are passed at once
    assert np.array_equal(ns.noise(X[:3], U[:3]), ns.noise(X, U)[:3])


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
def test_logistic_on_50000_rows_runs_within_the_memory_bound():
    p = _logistic(50_000)
    flow = smfsym.smf(p, order=1)
    assert flow.n_noise == 50_000
    tracemalloc.start()
    r = smfsym.simulate(flow, [0.5, 0.0], 0.05, eta=0.1, dt=0.05, n_paths=600, seed=1, store=False)
    sgd = smfsym.simulate_sgd(p, [0.5, 0.0], 3, 0.1, n_paths=2000, seed=1, store=False, batch_size=4)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # unchunked, one (600 paths x 50,000 rows x 2) array of noise columns alone is 480 MB
    assert peak < 200 * 2**20, peak / 2**20
    assert r.success and sgd.success and np.all(np.isfinite(r.mean()))


def test_without_replacement_batches_on_a_large_data_set():
    rng = np.random.default_rng(2)
    (z,) = smfsym.empirical(rng.normal(size=(50_000, 1)), "z")
    p = smfsym.Problem((x - z) ** 2 / 2, [x], batch_size=16, sampling="without_replacement")
    tracemalloc.start()
    r = smfsym.simulate_sgd(p, [1.0], 2, 0.1, n_paths=600, seed=3, store=False)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 64 * 2**20  # (600 x 50,000) uniforms at once would be 240 MB
    assert r.success
    # the batch is the 16 smallest of the row's uniforms in increasing order, as a full argsort gives
    from smfsym.simulation.sgd import SGDStep

    st = SGDStep(p, 0.1, 16, {})
    gens = smfsym.engine.block_generators(np.random.SeedSequence(4), 0, 1)
    gens2 = smfsym.engine.block_generators(np.random.SeedSequence(4), 0, 1)
    cols = st.sample(gens, [3])
    ref = np.argsort(gens2[0].random((3, 50_000)), axis=1)[:, :16]
    assert np.array_equal(cols[0], p.laws[0].data[ref][..., 0])


def test_generated_sgd_code_takes_the_data_set_as_an_argument(tmp_path):
    p = _logistic(5000)
    src = smfsym.codegen(p, eta=0.1)
    assert len(src) < 40_000  # the module itself is about 21,000 characters; 10,000 numbers printed add ~200,000
    ns = {}
    exec(compile(src, "gen.py", "exec"), ns)  # our own generated module
    with pytest.raises(ValueError, match="call set_data"):
        ns["simulate_sgd"]([0.5, 0.0], 3, 50, 7)
    law = p.laws[0]
    ns["set_data"](_data0=law.data, _weights0=law.weights)
    t, states = ns["simulate_sgd"]([0.5, 0.0], 3, 50, 7)
    ref = smfsym.simulate_sgd(p, [0.5, 0.0], 3, 0.1, n_paths=50, seed=7)
    assert np.allclose(states, ref.states, rtol=1e-13, atol=1e-15)
    with pytest.raises(ValueError, match="must have shape"):
        ns["set_data"](_data0=law.data[:10])
