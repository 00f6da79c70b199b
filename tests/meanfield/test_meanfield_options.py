"""The mean field's settings as objects (issue 16): ``observe=Observe(...)``, ``numerics=MeanFieldNumerics(...)``,
``options=MeanFieldOptions(...)``, ``save_at=SaveAt(...)`` and ``theta0=InitialParticles(...)`` give bitwise the
numbers of the old keywords, which still work for one release with a DeprecationWarning."""
import numpy as np
import pytest
import sympy as sp

import smfsym
from smfsym import RunOptions, SaveAt
from smfsym.meanfield import InitialParticles, MeanFieldNumerics, MeanFieldOptions, Observe, estimate_meanfield_cost

a, w, out = sp.symbols("a w out")
DEPRECATED = DeprecationWarning


def _net():
    z = smfsym.normal("z")
    return smfsym.MeanFieldProblem(a * sp.tanh(w * z), (a, w), out, (out - sp.tanh(2 * z)) ** 2 / 2)


NET = _net()
TH = smfsym.particles(NET, 12, seed=0)
INPUTS = [[0.5], [-1.0]]


def _same(old, new):
    assert np.array_equal(old.t, new.t) and sorted(old.observables) == sorted(new.observables)
    for name in old.observables:
        assert np.array_equal(old.observables[name], new.observables[name]), name
    if old.sim is not None and old.sim.states is not None:
        assert np.array_equal(old.sim.states, new.sim.states)
    assert sorted(old.info) == sorted(new.info)
    for k, v in old.info.items():
        if k != "coarse":
            assert np.array_equal(v, new.info[k]) if isinstance(v, np.ndarray) else v == new.info[k], k


def test_simulate_meanfield_sgd_old_keywords_give_the_numbers_of_the_objects():
    kw = dict(n_paths=12, seed=3, save_at=[0.2, 0.4])
    with pytest.warns(DEPRECATED, match=r"observe=smfsym\.meanfield\.Observe\(observables=\.\.\.\)"):
        old = smfsym.simulate_meanfield_sgd(NET, TH, 0.1, 4, observables=["risk", "output_at", "moments"],
                                            inputs=INPUTS, risk_points=8, store=True, chunk_size=4096,
                                            progress=False, max_work=1e9, **kw)
    new = smfsym.simulate_meanfield_sgd(
        NET, TH, 0.1, 4, observe=Observe(observables=["risk", "output_at", "moments"], inputs=INPUTS, risk_points=8),
        options=MeanFieldOptions(chunk_size=4096, progress=False, max_work=1e9), **{**kw, "save_at": SaveAt(
            at=[0.2, 0.4], store=True)})
    _same(old, new)
    assert new.sim.states.shape == (2, 12, 12, 2)


def test_simulate_ddsmf_old_keywords_give_the_numbers_of_the_objects():
    kw = dict(n_paths=10, seed=5, save_at=[0.1, 0.2])
    with pytest.warns(DEPRECATED, match=r"numerics=smfsym\.meanfield\.MeanFieldNumerics\(dt=\.\.\.\)"):
        old = smfsym.simulate_ddsmf(NET, TH, 0.1, 0.2, order=2, richardson=True, dt=0.05, n_points=6,
                                    observables=["risk", "moments"], progress=False, max_work=1e9, **kw)
    new = smfsym.simulate_ddsmf(NET, TH, 0.1, 0.2, numerics=MeanFieldNumerics(order=2, richardson=True, dt=0.05,
                                                                               n_points=6),
                                observe=Observe(observables=["risk", "moments"]),
                                options=MeanFieldOptions(progress=False, max_work=1e9), **kw)
    _same(old, new)
    assert np.array_equal(old.info["coarse"]["risk"], new.info["coarse"]["risk"])
    assert np.array_equal(old.summary("risk")["var"], new.summary("risk")["var"])


def test_simulate_meanfield_limit_old_keywords_give_the_numbers_of_the_objects():
    with pytest.warns(DEPRECATED, match=r"what to save goes in `observe="):
        old = smfsym.simulate_meanfield_limit(NET, TH, 0.4, dt=0.1, save_at=[0.0, 0.4], n_points=6,
                                              observables=["risk", "output_at"], inputs=INPUTS, store=True,
                                              max_work=1e9)
    new = smfsym.simulate_meanfield_limit(NET, TH, 0.4, dt=0.1, save_at=SaveAt(at=[0.0, 0.4], store=True),
                                          n_points=6, observe=Observe(observables=["risk", "output_at"], inputs=INPUTS),
                                          options=MeanFieldOptions(max_work=1e9))
    _same(old, new)


def test_meanfield_study_old_keywords_give_the_numbers_of_the_objects():
    kw = dict(etas=[0.1, 0.05], t_end=0.2, widths=[8], n_paths=6, seed=2)
    with pytest.warns(DEPRECATED) as record:
        old = smfsym.meanfield_study(NET, **kw, observables=["risk", "moments"], n_saves=2, risk_points=8,
                                     ddsmf_order=2, n_points=6, rule_tol=0.5, limit_dt=0.05, progress=False,
                                     max_work=1e10, particle_law={"a": ("normal", 0, 2)}, particle_seed=4)
    messages = " ".join(str(r.message) for r in record)
    for part in ("Observe(observables=...)", "MeanFieldNumerics(order=...)", "MeanFieldOptions(max_work=...)",
                 "InitialParticles(law=...)"):
        assert part in messages, (part, messages)
    new = smfsym.meanfield_study(NET, InitialParticles(law={"a": ("normal", 0, 2)}, seed=4), **kw,
                                 observe=Observe(observables=["risk", "moments"], n_saves=2, risk_points=8),
                                 numerics=MeanFieldNumerics(order=2, n_points=6, rule_tol=0.5, limit_dt=0.05),
                                 options=MeanFieldOptions(progress=False, max_work=1e10))
    assert sorted(old.results) == sorted(new.results) and old.meta == new.meta and old.rows == new.rows
    for key in old.results:
        _same(old.results[key], new.results[key])
    assert repr(old.slopes) == repr(new.slopes)  # (NaN bounds of two-eta fits compare by their text)


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
def test_estimate_meanfield_cost_takes_the_objects():
    kw = dict(etas=[0.1, 0.05], t_end=0.2, widths=[8], n_paths=4)
    with pytest.warns(DEPRECATED) as record:
        old = estimate_meanfield_cost(NET, **kw, n_points=6, risk_points=8, particle_seed=1)
    messages = " ".join(str(r.message) for r in record)
    assert "MeanFieldNumerics(n_points=...)" in messages and "InitialParticles(seed=...)" in messages
    new = estimate_meanfield_cost(NET, InitialParticles(seed=1), **kw, numerics=MeanFieldNumerics(n_points=6),
                                  observe=Observe(risk_points=8))
    assert sorted(old.parts) == sorted(new.parts) == ["captured noise", "ddsmf N=8", "limit N=8", "sgd N=8"]


@pytest.mark.parametrize("call,exc,match", [
    (lambda: smfsym.simulate_meanfield_sgd(NET, TH, 0.1, 2, observables=["risk"], observe=Observe()), TypeError,
     "`observables` is given twice"),
    (lambda: smfsym.simulate_meanfield_sgd(NET, TH, 0.1, 2, max_work=10, options=RunOptions()), TypeError,
     "`max_work` is given twice"),
    (lambda: smfsym.simulate_meanfield_sgd(NET, TH, 0.1, 2, observe={"observables": ["risk"]}), TypeError,
     "`observe` must be a smfsym.meanfield.Observe"),
    (lambda: smfsym.simulate_meanfield_sgd(NET, TH, 0.1, 2, observables_=["risk"]), TypeError,
     r"simulate_meanfield_sgd\(\) got an unexpected keyword argument 'observables_'"),
    (lambda: smfsym.simulate_meanfield_sgd(NET, TH, 0.1, 2, observe=Observe(n_saves=3)), ValueError,
     "`observe.n_saves`: simulate_meanfield_sgd does not take it"),
    (lambda: smfsym.simulate_meanfield_sgd(NET, TH, 0.1, 2, options=RunOptions(on_nonfinite="mask")), ValueError,
     "`on_nonfinite`: simulate_meanfield_sgd does not take it"),
    (lambda: smfsym.simulate_meanfield_sgd(NET, TH, 0.1, 2, save_at=SaveAt(functions={"f": np.sum})), ValueError,
     "`save_at.functions`"),
    (lambda: smfsym.simulate_ddsmf(NET, TH, 0.1, 0.2, numerics=MeanFieldNumerics(rule_tol=0.1)), ValueError,
     "`numerics.rule_tol`: simulate_ddsmf does not take it"),
    (lambda: smfsym.simulate_ddsmf(NET, TH, 0.1, 0.2, order=2, numerics=MeanFieldNumerics()), TypeError,
     "`order` is given twice"),
    (lambda: smfsym.simulate_meanfield_limit(NET, TH, 0.2, options=RunOptions(executor=object())), ValueError,
     "`executor`: simulate_meanfield_limit does not take it"),
    (lambda: smfsym.meanfield_study(NET, InitialParticles(), etas=[0.1], t_end=0.2, widths=[4], particle_seed=1),
     TypeError, "`particle_seed` is given twice"),
    (lambda: smfsym.meanfield_study(NET, TH, etas=[0.1], t_end=0.2, observe=Observe(risk_rule=object())),
     ValueError, "`observe.risk_rule`: meanfield_study does not take it"),
    (lambda: smfsym.meanfield_study(NET, TH, etas=[0.1], t_end=0.2, store=True), TypeError,
     "unexpected keyword argument 'store'"),
    (lambda: smfsym.meanfield_study(NET, TH, etas=[0.1], t_end=0.2, observe=Observe(risk_rule=np.ones(3))),
     ValueError, "`observe.risk_rule`: meanfield_study does not take it"),
    (lambda: MeanFieldOptions(max_work=-1), ValueError, "`max_work` must be a positive number"),
])
def test_settings_given_twice_misspelt_or_not_taken_are_refused(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_no_mean_field_entry_point_has_more_than_twelve_parameters():
    import inspect

    for fn in (smfsym.simulate_meanfield_sgd, smfsym.simulate_ddsmf, smfsym.simulate_meanfield_limit,
               smfsym.meanfield_study, estimate_meanfield_cost):
        params = [p for p in inspect.signature(fn).parameters.values() if p.kind is not p.VAR_KEYWORD]
        assert len(params) <= 12, (fn.__name__, len(params))


def test_the_warnings_point_at_the_callers_line():
    """However deep in the package an old keyword is read, its warning names the user's call."""
    with pytest.warns(DEPRECATED) as record:
        smfsym.meanfield_study(NET, TH, etas=[0.1], t_end=0.1, n_paths=2, n_saves=1, n_points=4, progress=False,
                               max_work=1e9, methods=["sgd"])
    assert len(record) >= 3 and {r.filename for r in record} == {__file__}, [(r.filename, str(r.message))
                                                                           for r in record]
