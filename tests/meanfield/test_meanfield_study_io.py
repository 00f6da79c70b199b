"""MeanFieldStudy (issue 16): save/load through StudyIO and load_study, to_pandas, plot(path=) and plot(ax=);
the study's argument checks (n_paths >= 2, ddsmf_order, rule_tol)."""
import numpy as np
import pytest
import sympy as sp

import smfsym
from smfsym.meanfield import MeanFieldStudy

a, w, out = sp.symbols("a w out")


@pytest.fixture(scope="module")
def net():
    z = smfsym.normal("z")
    return smfsym.MeanFieldProblem(a * sp.tanh(w * z), (a, w), out, (out - sp.tanh(2 * z)) ** 2 / 2)


@pytest.fixture(scope="module")
def study(net):
    return smfsym.meanfield_study(net, etas=[0.1, 0.05], widths=[20, 30], t_end=0.4, n_paths=12, n_saves=2,
                                  observables=["risk", "moments"], seed=3, progress=False)


def _same_summaries(a_, b_):
    assert set(a_.results) == set(b_.results)
    for k, r in a_.results.items():
        for name in r.observables:
            sa, sb = r.summary(name), b_.results[k].summary(name)
            for stat in ("mean", "sem", "var", "var_se"):
                np.testing.assert_array_equal(sa[stat], sb[stat])


def test_save_load_round_trip_is_exact(study, tmp_path):
    path = study.save(tmp_path / "mf.json")
    for back in (smfsym.load_study(path), MeanFieldStudy.load(path)):
        assert isinstance(back, MeanFieldStudy)
        assert back.rows == study.rows and back.etas == study.etas and back.widths == study.widths
        # (by their text: a fit on two etas has NaN interval bounds, which == never equates)
        assert repr(back.slopes) == repr(study.slopes) and repr(back.mean_orders) == repr(study.mean_orders)
        np.testing.assert_array_equal(back.t, study.t)
        _same_summaries(study, back)
        assert back.table == study.table and back.to_latex() == study.to_latex()
        assert back.meta["rule"] == study.meta["rule"] and "versions" in back.meta
        assert all(r.sim is None for r in back.results.values())
        assert repr(back.results[("sgd", 0.1, 20)]) == repr(study.results[("sgd", 0.1, 20)])
    with pytest.raises(FileExistsError, match="`path`"):
        study.save(path)


def test_richardson_study_round_trips(net, tmp_path):
    st = smfsym.meanfield_study(net, etas=[0.1], widths=[10], t_end=0.2, n_paths=6, n_saves=1, ddsmf_order=2,
                                n_points=12, rule_tol=0.5, methods=["sgd", "ddsmf"], progress=False)
    back = smfsym.load_study(st.save(tmp_path / "r.json"))
    assert back.results[("ddsmf", 0.1, 10)].info["richardson"] is True
    _same_summaries(st, back)


def test_to_pandas_long_format(study):
    df = study.to_pandas()
    assert list(df.columns) == ["model", "N", "eta", "t", "observable", "component", "statistic", "value", "se"]
    row = study.rows[0]
    sel = df[(df.model == "ddsmf") & (df.N == row["N"]) & (df.eta == row["eta"]) & (df.t == row["t"])
             & (df.observable == "risk") & (df.statistic == "var")]
    assert len(sel) == 1 and sel.value.iloc[0] == row["var_ddsmf"] and sel.se.iloc[0] == row["var_se_ddsmf"]
    lim = df[df.model == "limit"]
    assert set(lim.statistic) == {"mean"} and (lim.se == 0).all()
    # moments: 2 parameters x (mean, second moment) = 4 components per time
    assert set(df[df.observable == "moments"].component) == {0, 1, 2, 3}


def test_plot_to_a_path_and_into_given_axes(study, tmp_path):
    import matplotlib.pyplot as plt

    study.plot(path=tmp_path / "a.png")
    assert (tmp_path / "a.png").stat().st_size > 10_000
    fig, axes = plt.subplots(2, 2)
    got = study.plot(ax=axes, path=tmp_path / "b.png")
    assert got is fig and (tmp_path / "b.png").stat().st_size > 10_000
    assert all(ax.lines for ax in axes.ravel())  # every panel drawn on
    plt.close(fig)
    fig, axes = plt.subplots(1, 2)
    with pytest.raises(ValueError, match="`ax` must hold 2 matplotlib axes per width"):
        study.plot(ax=axes)
    plt.close(fig)


def test_study_argument_checks(net):
    kw = dict(etas=[0.1], widths=[5], t_end=0.2, n_points=8, n_saves=1)
    for bad in (1, 0, 2.0, True):
        with pytest.raises(ValueError, match=r"`n_paths` must be an integer >= 2"):
            smfsym.meanfield_study(net, n_paths=bad, **kw)
    with pytest.raises(ValueError, match="`ddsmf_order` must be 1 or 2"):
        smfsym.meanfield_study(net, ddsmf_order=3, **kw)
    with pytest.raises(TypeError, match="`ddsmf_richardson` must be True, False or None"):
        smfsym.meanfield_study(net, ddsmf_richardson="yes", **kw)
    with pytest.raises(ValueError, match="`ddsmf_dt` must be a positive number"):
        smfsym.meanfield_study(net, ddsmf_dt=-1.0, **kw)
    with pytest.raises(ValueError, match="`rule_tol` must be a relative tolerance"):
        smfsym.meanfield_study(net, etas=[0.1], widths=[5], t_end=0.2, n_saves=1, rule_tol=2.0)
    with pytest.raises(ValueError, match="`n_points` must be a positive integer or 'auto'"):
        smfsym.meanfield_study(net, etas=[0.1], widths=[5], t_end=0.2, n_saves=1, n_points="many")
