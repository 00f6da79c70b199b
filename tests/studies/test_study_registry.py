"""Every kind of study in the registry (smfsym/studies/registry.py) behaves alike (issue 16): it runs,
prints, saves and loads back (through ``load_study``, any kind), plots to a path and to an axis, and
converts to pandas and to LaTeX. Small fixed-seed runs; the numbers themselves are pinned in
tests/package/test_golden_numbers.py."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import sympy as sp  # noqa: E402

import smfsym  # noqa: E402
from golden_numbers import _net, _rademacher, _regression, x, y  # noqa: E402
from smfsym import Numerics, RunOptions  # noqa: E402
from smfsym.studies.registry import RESULTS, STUDIES  # noqa: E402

QUIET = RunOptions(progress=False)
t = sp.Symbol("t")
SMALL = {
    "weak_error": lambda: smfsym.weak_error(_regression(), x**2 + y, [1.0, -0.5], 0.4, [0.2, 0.1],
                                            numerics=Numerics(method="exact")),
    "schedule_weak_error": lambda: smfsym.schedule_weak_error(
        _regression(), smfsym.Schedule(1 / (1 + t), t), x**2 + y, [1.0, -0.5], 0.4, [0.2, 0.1]),
    "momentum_weak_error": lambda: smfsym.momentum_weak_error(_regression(), x**2 + y, [1.0, -0.5], 0.4,
                                                              [1 / 25, 1 / 100], 1.5),
    "update_map_weak_error": lambda: smfsym.update_map_weak_error(
        smfsym.rmsprop(smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x])), x**2, [1.0, 1.0], 0.25,
        [1 / 8, 1 / 16], models=["gf"], n_paths=2000, options=QUIET),  # the SDEs of RMSprop can reach v < 0
    "multipoint": lambda: smfsym.multipoint(_rademacher(), [[1.0], [-1.0]], eta=0.1, t_end=0.2, n_paths=2000,
                                            seed=13, options=QUIET),
    "multipoint_rates": lambda: smfsym.multipoint_rates(_regression(), [[1.0, -0.5], [-1.0, 0.5]], [0.2, 0.1],
                                                        0.4, models=["smf1", "smf2"], psi=["product", "sqdist"]),
    "momentum_multipoint": lambda: smfsym.studies.momentum_multipoint.momentum_multipoint(
        _rademacher(), [[1.0], [-1.0]], 0.4, [1 / 25, 1 / 100], 1.5),
    "scaling_rule_study": lambda: smfsym.studies.scaling_rule_study.scaling_rule_study(
        smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x]), x**2, [1.0], 0.5, optimizer="sgd", eta=0.125,
        ks=[1, 4], n_paths=200, seed=3, options=QUIET),
    "svag_study": lambda: smfsym.studies.svag_study.svag_study(
        smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x]), x, [1.0], 1.0, 0.5, ls=[1, 2], n_paths=20_000,
        seed=4, options=QUIET),
    "meanfield_study": lambda: smfsym.meanfield_study(_net(), etas=[0.1, 0.05], widths=[20], t_end=0.2, n_paths=8,
                                                      seed=16, observe=smfsym.meanfield.Observe(n_saves=2),
                                                      numerics=smfsym.meanfield.MeanFieldNumerics(n_points=8),
                                                      options=QUIET),
}


def test_every_registered_study_is_exercised():
    assert set(SMALL) == set(STUDIES)
    assert set(RESULTS) == {k.result.__name__ for k in STUDIES.values()}


@pytest.fixture(scope="module", params=sorted(SMALL))
def study(request):
    import smfsym.studies.momentum_multipoint  # noqa: F401  (not in the curated namespace)
    import smfsym.studies.scaling_rule_study  # noqa: F401
    import smfsym.studies.svag_study  # noqa: F401

    result = SMALL[request.param]()
    assert isinstance(result, STUDIES[request.param].result)
    return result


def test_saves_and_loads_back(study, tmp_path):
    back = smfsym.load_study(study.save(tmp_path / "study.json"))
    assert type(back) is type(study)
    assert repr(back.rows) == repr(study.rows)  # repr: nan compares unequal to itself
    with pytest.raises(FileExistsError, match="overwrite=True"):
        study.save(tmp_path / "study.json")


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
def test_prints_plots_and_converts(study, tmp_path):
    assert str(study) and repr(study)
    fig = study.plot(path=tmp_path / "figure.png")
    assert (tmp_path / "figure.png").stat().st_size > 1000
    plt.close(fig)
    fig, axes = plt.subplots(1, study.n_panels, squeeze=False)  # an axis per panel the study draws
    axes = axes[0] if study.n_panels > 1 else axes[0][0]
    assert study.plot(ax=axes) is fig
    plt.close(fig)
    frame = study.to_pandas()
    assert len(frame) > 0 and {"model", "value"} <= set(frame.columns)
    assert "tabular" in study.to_latex()
