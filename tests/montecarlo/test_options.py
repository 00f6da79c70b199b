"""Run settings as objects (issue 16): ``options=RunOptions(...)`` and ``save_at=SaveAt(...)`` give every
simulator bitwise the numbers of the old keywords, which still work for one release with a warning."""
import numpy as np
import pytest
import sympy as sp

import smfsym
from smfsym import RunOptions, SaveAt

x = sp.Symbol("x")
PROBLEM = smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2 + x**4 / 20, [x])
phi = np.square  # a module-level function: it travels to executor workers


def runs():
    """(name, call taking the run settings as keywords) for every SGD-side and SDE simulator."""
    flow = smfsym.smf(PROBLEM, order=2)
    rms = smfsym.rmsprop(PROBLEM)
    return [
        ("simulate", lambda **kw: smfsym.simulate(flow, [1.0], 0.5, eta=0.1, n_paths=64, seed=3, **kw)),
        ("simulate_sgd", lambda **kw: smfsym.simulate_sgd(PROBLEM, [1.0], 5, 0.1, n_paths=64, seed=3, **kw)),
        ("simulate_sgd_schedule", lambda **kw: smfsym.simulate_sgd_schedule(
            PROBLEM, smfsym.Schedule(1 / (1 + sp.Symbol("t")), sp.Symbol("t")), [1.0], 5, 0.1, n_paths=64, seed=3,
            **kw)),
        ("simulate_momentum_sgd", lambda **kw: smfsym.simulate_momentum_sgd(PROBLEM, [1.0], 5, 0.1, 0.8, n_paths=64,
                                                                            seed=3, **kw)),
        ("simulate_update_map", lambda **kw: smfsym.simulate_update_map(rms, [1.0, 0.0], 5, 0.1, n_paths=64,
                                                                        seed=3, **kw)),
    ]


@pytest.mark.parametrize("name,call", runs(), ids=[r[0] for r in runs()])
def test_options_give_the_numbers_of_the_old_keywords(name, call):
    with pytest.warns(DeprecationWarning, match=r"options=smfsym\.RunOptions\(chunk_size=\.\.\.\)"):
        old = call(chunk_size=4096, on_nonfinite="mask", functions={"phi": phi}, store=False)
    new = call(options=RunOptions(chunk_size=4096, on_nonfinite="mask"),
               save_at=SaveAt(functions={"phi": phi}, store=False))
    assert old.states is None and new.states is None
    assert np.array_equal(old.mean("phi"), new.mean("phi")) and np.array_equal(old.sem("phi"), new.sem("phi"))


@pytest.mark.parametrize("name,call", runs(), ids=[r[0] for r in runs()])
def test_settings_given_twice_or_misspelt_are_refused(name, call):
    with pytest.raises(TypeError, match="`chunk_size` is given twice"):
        call(chunk_size=4096, options=RunOptions(chunk_size=8192))
    with pytest.raises(TypeError, match=f"{name}\\(\\) got an unexpected keyword argument 'chunk_sise'"):
        call(chunk_sise=4096)
    with pytest.raises(TypeError, match="`options` must be a smfsym.RunOptions; got dict"):
        call(options={"chunk_size": 4096})
    with pytest.raises(TypeError, match="`store` is given twice"):
        call(save_at=SaveAt(store=False), store=True)


def test_a_setting_a_simulator_lacks_is_refused_not_ignored():
    from smfsym.montecarlo.options import run_settings
    with pytest.raises(ValueError, match="`max_steps`: simulate_x does not take it; got 100"):
        run_settings("simulate_x", RunOptions(max_steps=100), None, {}, supported=("chunk_size",))


def test_update_map_simulators_take_max_steps():
    """`max_steps` was refused by simulate_update_map, so its default bound was never applied (audit 3, 7)."""
    with pytest.raises(ValueError, match="`n_steps` = 5 is over the bound of 4: raise `max_steps`"):
        smfsym.simulate_update_map(smfsym.rmsprop(PROBLEM), [1.0, 0.0], 5, 0.1, n_paths=8,
                                   options=RunOptions(max_steps=4))


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
@pytest.mark.parametrize("name", ["simulate_sgd_schedule", "simulate_momentum_sgd"])
def test_schedule_and_momentum_runs_have_every_driver_setting(name):
    """One SGD step with optimizer rules (picklable, no closures): the schedule and momentum simulators
    run on a process pool with bitwise the serial numbers, and refuse long grids and oversized runs."""
    call = dict(runs())[name]
    save = SaveAt(functions={"phi": phi}, store=False)
    serial = call(options=RunOptions(chunk_size=4096), save_at=save)
    with smfsym.process_pool(2) as pool:
        pooled = call(options=RunOptions(executor=pool), save_at=save)
    assert np.array_equal(serial.mean("phi"), pooled.mean("phi"))
    assert np.array_equal(serial.sem("phi"), pooled.sem("phi"))
    with pytest.raises(ValueError, match="`n_steps` = 5 is over the bound of 4"):
        call(options=RunOptions(max_steps=4))
    with pytest.raises(ValueError, match="over the `max_memory` bound"):
        call(options=RunOptions(max_memory=1000))


def test_rules_are_picklable():
    import pickle

    from smfsym.simulation.sgd import ConstantRate, MomentumRule, ScheduledRate, SGDTask

    for rule in (ConstantRate(), ScheduledRate(), MomentumRule(0.9, 0.1, True, 0.3, 1)):
        task = SGDTask(PROBLEM, 0.1, 1, {}, rule)
        back = pickle.loads(pickle.dumps(task))
        assert type(back.rule) is type(rule) and vars(back.rule) == vars(rule)


def test_the_driver_takes_six_parameters_at_most():
    """The one driver: ``run(job, x0, *, paths, save, options)`` (the 22 keywords of engine.run are
    grouped into Job, Paths, SaveAt and RunOptions; ``smfsym.engine.run`` keeps the keyword form)."""
    import inspect

    from smfsym.montecarlo import driver

    assert list(inspect.signature(driver.run).parameters) == ["job", "x0", "paths", "save", "options"]
    import smfsym.engine

    assert smfsym.engine.run is driver._run


@pytest.mark.parametrize("backend", ["numpy", "array_api_strict"])
def test_stored_states_over_max_memory_are_refused_in_readable_units(backend):
    """max_memory=100 read "needs 0.00 GiB, over the 0.00 GiB bound"."""
    pytest.importorskip(backend)
    with pytest.raises(MemoryError, match=r"storing 1 x 50 x \(1,\) states needs 400 bytes, over the 100 bytes "
                                          r"bound \(`max_memory`\)"):
        smfsym.simulate(smfsym.smf(PROBLEM), [1.0], 0.1, eta=0.1, n_paths=50, seed=0,
                        options=RunOptions(max_memory=100, backend=backend))
