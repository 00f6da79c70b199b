"""The per-process compile cache (issue 17, item 3): simulate, simulate_sgd, coupled runs and executors
compile an SDE or a gradient once; a hit gives bitwise the numbers of a fresh compilation."""
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import sympy as sp

import smfsym
from smfsym import engine
from smfsym.numerics.solvers import get_solver
from smfsym.studies.richardson import coupled_expectation

x, y = sp.symbols("x y")


def flow_and_problem():
    xi = smfsym.normal("xi", std=sp.Symbol("s", positive=True))
    p = smfsym.Problem((x - xi) ** 2 / 2 + (x * y - 1) ** 2 / 4 + y**2 / 2, [x, y])
    return smfsym.smf(p, order=2), p


@pytest.fixture
def fresh_cache():
    engine.cache_clear()
    yield
    engine.cache_clear()


def _sim(flow, **kw):
    args = dict(eta=0.1, n_paths=300, seed=5, save_at=[0.5, 1.0], values={"s": 0.8})
    args.update(kw)
    return smfsym.simulate(flow, [1.0, -0.5], 1.0, **args)


def test_second_simulate_is_a_cache_hit_with_identical_numbers(fresh_cache):
    flow, _ = flow_and_problem()
    first = _sim(flow)
    info = smfsym.simulation.sde.cache_info()
    assert info.misses == 1 and info.hits == 0 and info.currsize == 1
    second = _sim(flow)
    after = smfsym.simulation.sde.cache_info()
    assert after.misses == 1 and after.hits == 1  # nothing compiled again
    np.testing.assert_array_equal(first.states, second.states)
    # the weak order-2 plan compiles on the cached numeric SDE: no new entry, and equal numbers again
    w1 = _sim(flow, scheme="weak2")
    w2 = _sim(flow, scheme="weak2")
    assert smfsym.simulation.sde.cache_info().misses == 1
    np.testing.assert_array_equal(w1.states, w2.states)
    # values given by symbol rather than by name, and the problem's derived quantities computed meanwhile
    # (cached properties, left out of the key), still hit
    smfsym.sme(flow.problem)
    smfsym.simulate_sgd(flow.problem, [1.0, -0.5], 2, 0.1, n_paths=10, seed=0, values={"s": 0.8})
    third = _sim(flow, values={flow.problem.law_parameters[0]: 0.8})
    assert smfsym.simulation.sde.cache_info().misses == 2  # the SGD gradient, compiled once
    np.testing.assert_array_equal(first.states, third.states)


def test_a_hit_gives_the_numbers_of_a_fresh_compilation(fresh_cache):
    flow, _ = flow_and_problem()
    _sim(flow, seed=1)  # fills the cache (and runs the compiled plan once)
    hit = _sim(flow, scheme="weak2", increments="discrete")
    assert smfsym.simulation.sde.cache_info().hits >= 1
    smfsym.simulation.sde.cache_clear()
    assert smfsym.simulation.sde.cache_info() == engine.CacheInfo(0, 0, engine.COMPILE_CACHE_SIZE, 0)
    fresh = _sim(flow, scheme="weak2", increments="discrete")
    assert smfsym.simulation.sde.cache_info().misses == 1
    np.testing.assert_array_equal(hit.states, fresh.states)


def test_other_numbers_are_other_entries(fresh_cache):
    flow, _ = flow_and_problem()
    a = _sim(flow)
    b = _sim(flow, eta=0.05)  # eta is bound at compile time
    c = _sim(flow, values={"s": 0.3})
    assert smfsym.simulation.sde.cache_info().misses == 3
    assert not np.array_equal(a.states, b.states) and not np.array_equal(a.states, c.states)
    # the larger noise std spreads the paths more: the entries are not mixed up
    assert np.var(a.states[-1, :, 0]) > np.var(c.states[-1, :, 0])


def test_simulate_sgd_compiles_its_gradient_once_for_every_eta(fresh_cache):
    _, p = flow_and_problem()
    kw = dict(n_paths=200, seed=2, values={"s": 0.8})
    r1 = smfsym.simulate_sgd(p, [1.0, -0.5], 5, 0.1, **kw)
    assert smfsym.simulate_sgd.cache_info().misses == 1
    r2 = smfsym.simulate_sgd(p, [1.0, -0.5], 5, 0.1, **kw)
    smfsym.simulate_sgd(p, [1.0, -0.5], 5, 0.05, batch_size=3, **kw)
    info = smfsym.simulate_sgd.cache_info()
    assert info.misses == 1 and info.hits == 2
    np.testing.assert_array_equal(r1.states, r2.states)


def test_coupled_runs_and_thread_pools_reuse_the_compilation(fresh_cache):
    flow, _ = flow_and_problem()
    serial = _sim(flow, n_paths=engine.BLOCK + 10)
    kw = dict(eta=0.1, dt=0.01, n_paths=50, solver=get_solver("euler"), phi=lambda X: X[:, 0], seed=0,
              values={"s": 0.8}, options=smfsym.RunOptions(progress=False))
    coupled = coupled_expectation(flow, [1.0, -0.5], 1.0, **kw)
    assert smfsym.simulation.sde.cache_info().misses == 1  # the coupled step wraps the cached numeric SDE
    assert coupled_expectation(flow, [1.0, -0.5], 1.0, **kw) == coupled
    with ThreadPoolExecutor(2) as ex:
        threaded = _sim(flow, n_paths=engine.BLOCK + 10, executor=ex, chunk_size=engine.BLOCK)
    # the threads share this process's cache, where the run's own step was put: no task compiled
    assert threaded.extra["executor"]["compile_seconds"] == [0.0, 0.0]
    assert smfsym.simulation.sde.cache_info().misses == 1
    np.testing.assert_array_equal(serial.states, threaded.states)


def test_the_cache_is_bounded_lru(fresh_cache, monkeypatch):
    made = []

    def make(i):
        return lambda: made.append(i) or i

    n = engine.COMPILE_CACHE_SIZE
    for i in range(n + 5):
        assert engine.compiled(f"k{i}", make(i)) == i
        assert engine.cache_info().currsize == min(i + 1, n)
    assert engine.compiled("k5", make(-1)) == 5  # still there (the five oldest were dropped)
    assert engine.compiled("k0", make(-2)) == -2  # dropped: made again
    assert engine.cache_info().currsize == n
    assert made == list(range(n + 5)) + [-2]
    # a maker that raises caches nothing; the next request makes again
    with pytest.raises(ValueError, match="bad"):
        engine.compiled("bad", lambda: (_ for _ in ()).throw(ValueError("bad")))
    assert engine.compiled("bad", make(7)) == 7


def test_content_key_sees_every_difference():
    e = x**2 + y
    assert engine.content_key("a", e, [(x, 1.0)]) == engine.content_key("a", x**2 + y, [(x, 1.0)])
    assert engine.content_key("a", e, [(x, 1.0)]) != engine.content_key("a", e, [(x, 1.0 + 2**-52)])
    assert engine.content_key("a", e) != engine.content_key("a", x**2 + 2 * y)
    assert engine.content_key("a", e) != engine.content_key(("a", e))  # the parts are part of the key
    # symbols of the same name with other assumptions are other symbols
    assert engine.content_key(sp.Symbol("z")) != engine.content_key(sp.Symbol("z", positive=True))
    # a part's bytes do not depend on which objects another part shares with it
    z = sp.Symbol("z")
    z_copy = sp.Symbol.__xnew__(sp.Symbol, "z")  # equal, and (sympy's cache bypassed) another object
    assert z_copy == z and z_copy is not z
    assert engine.content_key([z, 1], [(z, 2.0)]) == engine.content_key([z, 1], [(z_copy, 2.0)])


@pytest.mark.filterwarnings("ignore::smfsym.OrderWarning")
def test_a_study_compiles_each_cell_once(fresh_cache):
    xi = smfsym.normal("xi", std=sp.Rational(1, 2))
    p = smfsym.Problem((x - xi) ** 2 / 2 + x**4 / 8, [x])
    # small runs: the orders are not resolved (OrderWarning), only the compilations are counted
    kw = dict(models=["sme1", "smf2"], method="montecarlo", n_paths=500, progress=False, seed=3)
    first = smfsym.weak_error(p, x**2, [0.5], 0.4, [0.2, 0.1], **kw)
    info = smfsym.simulation.sde.cache_info()
    # at most one compilation per (model, eta) cell and one SGD gradient, however many runs each cell made
    assert info.misses <= 2 * 2 + 1, info
    assert info.hits >= 1, info  # the cells' coupled runs and repeated runs reused their compilations
    again = smfsym.weak_error(p, x**2, [0.5], 0.4, [0.2, 0.1], **kw)
    assert smfsym.simulation.sde.cache_info().misses == info.misses  # the second study compiles nothing
    assert len(first.rows) == 4 and first.rows == again.rows  # and the same numbers


def test_what_does_not_pickle_is_compiled_every_time_and_never_shared(fresh_cache):
    from sympy.utilities.lambdify import implemented_function

    # two functions of one name, with other Python implementations: no content key can tell them apart
    f = implemented_function("f", lambda t: -t)
    g = implemented_function("f", lambda t: -3 * t)
    runs = [smfsym.simulate(smfsym.SDE([h(x)], [[0.1]], [x]), [1.0], 1.0, dt=0.1, n_paths=100, seed=0)
            for h in (f, g, f)]
    assert smfsym.simulation.sde.cache_info() == engine.CacheInfo(0, 3, engine.COMPILE_CACHE_SIZE, 0)
    np.testing.assert_array_equal(runs[0].states, runs[2].states)
    # Euler on dx = -c x dt: the means are (1 - 0.1 c)^10 (the noise is additive, mean zero)
    assert abs(runs[0].mean()[-1, 0] - 0.9**10) < 5 * runs[0].sem()[-1, 0]
    assert abs(runs[1].mean()[-1, 0] - 0.7**10) < 5 * runs[1].sem()[-1, 0]


def test_a_cached_worker_step_keeps_no_draw_buffers(fresh_cache):
    flow, _ = flow_and_problem()
    with ThreadPoolExecutor(1) as ex:
        r = _sim(flow, n_paths=engine.BLOCK, executor=ex)
        steps = [v for v in engine._COMPILED.values() if hasattr(v, "release_buffers")]
        assert len(steps) == 1  # the run's step, cached under the recipe's key
        assert ex.submit(lambda: getattr(steps[0]._local, "bufs", None)).result() is None
        assert _sim(flow, n_paths=engine.BLOCK, executor=ex).states.tobytes() == r.states.tobytes()
