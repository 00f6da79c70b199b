"""Study settings as objects (issue 16): ``numerics=Numerics(...)`` and ``options=RunOptions(...)`` give
every study the numbers of the old keywords, which still work for one release with a warning."""
import pytest
import sympy as sp

import smfsym
from smfsym import Numerics, RunOptions

x = sp.Symbol("x")
PROBLEM = smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2 + x**4 / 20, [x])


def test_weak_error_objects_equal_keywords():
    args = (PROBLEM, x**2, [1.0], 0.5, [0.1, 0.05])
    common = dict(models=["sme1"], n_paths=2000, seed=4)
    with pytest.warns(DeprecationWarning, match=r"numerics=smfsym\.Numerics\(method=\.\.\.\)"):
        old = smfsym.weak_error(*args, method="montecarlo", dt_fraction=0.25, extrapolate=False, progress=False,
                                **common)
    new = smfsym.weak_error(*args, numerics=Numerics(method="montecarlo", dt_fraction=0.25, extrapolate=False),
                            options=RunOptions(progress=False), **common)
    assert old.rows == new.rows and repr(old.orders) == repr(new.orders)  # repr: an unresolved slope is nan


def test_multipoint_objects_equal_keywords():
    kw = dict(eta=0.1, t_end=0.3, models=["smf2"], n_paths=2000, seed=2)
    with pytest.warns(DeprecationWarning, match="run settings go in"):
        old = smfsym.multipoint(PROBLEM, [[-1.0], [1.0]], dt_fraction=0.5, progress=False, **kw)
    new = smfsym.multipoint(PROBLEM, [[-1.0], [1.0]], numerics=Numerics(dt_fraction=0.5),
                            options=RunOptions(progress=False), **kw)
    assert old.rows == new.rows


def test_study_settings_refusals():
    args = (PROBLEM, x**2, [1.0], 0.5, [0.1, 0.05])
    with pytest.raises(TypeError, match=r"weak_error\(\) got an unexpected keyword argument 'dt_fractoin'"):
        smfsym.weak_error(*args, dt_fractoin=0.5)
    with pytest.raises(TypeError, match="`dt_fraction` is given twice"):
        smfsym.weak_error(*args, dt_fraction=0.5, numerics=Numerics())
    with pytest.raises(TypeError, match="`numerics` must be a smfsym.Numerics; got dict"):
        smfsym.weak_error(*args, numerics={"method": "exact"})
    # a setting a study does not take is refused, not ignored
    with pytest.raises(ValueError, match="`executor`: estimate_cost does not take it"):
        smfsym.estimate_cost(*args, options=RunOptions(executor=object()))
    with pytest.raises(ValueError, match="`extrapolate`: schedule_weak_error does not take it"):
        smfsym.schedule_weak_error(PROBLEM, smfsym.Schedule(sp.Integer(1), sp.Symbol("t")), x**2, [1.0], 0.5,
                                   [0.1, 0.05], numerics=Numerics(extrapolate=False))


@pytest.mark.parametrize("field,value", [("chunk_size", 8192), ("max_memory", 2**30), ("max_steps", 10**6)])
def test_run_options_a_study_does_not_pass_on_are_refused(field, value):
    """A study sizes its runs' chunks and bounds their steps itself: these RunOptions fields used to be dropped
    without a word; now they are refused before anything runs, on every study entry point."""
    args = (PROBLEM, x**2, [1.0], 0.5, [0.1, 0.05])
    opts = RunOptions(**{field: value})
    calls = [lambda: smfsym.weak_error(*args, options=opts),
             lambda: smfsym.multipoint(PROBLEM, [[-1.0], [1.0]], eta=0.1, t_end=0.3, options=opts),
             lambda: smfsym.schedule_weak_error(PROBLEM, smfsym.Schedule(sp.Integer(1), sp.Symbol("t")), x**2, [1.0],
                                                0.5, [0.1, 0.05], options=opts)]
    for call in calls:
        with pytest.raises(ValueError, match=rf"`options.{field}`: \w+ sizes the chunks and steps of its runs itself"):
            call()


def test_every_study_entry_point_has_at_most_twelve_parameters():
    """The run and numerics settings travel as objects; ``**legacy`` (the old keywords, for one release)
    is not counted."""
    import inspect

    for fn in (smfsym.weak_error, smfsym.multipoint, smfsym.multipoint_rates, smfsym.estimate_cost,
               smfsym.schedule_weak_error, smfsym.update_map_weak_error, smfsym.simulate, smfsym.simulate_sgd,
               smfsym.simulate_sgd_schedule, smfsym.simulate_update_map, smfsym.simulate_momentum_sgd,
               smfsym.momentum_weak_error):
        params = [p for p in inspect.signature(fn).parameters.values() if p.kind is not p.VAR_KEYWORD]
        assert len(params) <= 12, (fn.__name__, len(params))


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
@pytest.mark.parametrize("which", ["schedule", "momentum"])
def test_schedule_and_momentum_studies_on_a_process_pool_give_the_serial_numbers(which):
    """Monte Carlo rows (SGD and the models) of the optimizer studies run on executors now that every SGD
    simulator goes through the one picklable SGD step: bitwise the serial rows."""
    t = sp.Symbol("t")
    if which == "schedule":
        def run(options):
            return smfsym.schedule_weak_error(PROBLEM, smfsym.Schedule(1 / (1 + t), t), x**2, [1.0], 0.2,
                                              [0.1, 0.05], models=["smf1"], n_paths=3000, seed=5,
                                              numerics=Numerics(method="montecarlo"), options=options)
    else:
        def run(options):
            return smfsym.momentum_weak_error(PROBLEM, x**2, [1.0], 0.2, [1 / 25, 1 / 100], 1.5, models=["smf1"],
                                              n_paths=3000, seed=5, numerics=Numerics(method="montecarlo"),
                                              options=options)
    serial = run(RunOptions(progress=False))
    with smfsym.process_pool(2) as pool:
        pooled = run(RunOptions(progress=False, executor=pool))
    assert repr(serial.rows) == repr(pooled.rows)
    assert serial.meta["method"] == "montecarlo"
