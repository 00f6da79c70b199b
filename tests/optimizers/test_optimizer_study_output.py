"""Schedule and momentum studies: validation of etas, tables and figures (issue #15, "Trust")."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import sympy as sp  # noqa: E402

import smfsym  # noqa: E402
from smfsym.optimizers import Schedule
from smfsym.studies.optimizer_weak_error import momentum_weak_error, schedule_weak_error  # noqa: E402

x = sp.Symbol("x")
t = sp.Symbol("t")


def _ou():
    return smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x])


@pytest.fixture(scope="module")
def studies():
    p = _ou()
    sch = schedule_weak_error(p, Schedule(1 / (1 + t), t), x**2, [0.5], 1.0, [0.1, 0.05, 0.025],
                              models=["gf", "smf2"])
    mom = momentum_weak_error(p, x**2, [0.5], 1.0, [1 / 100, 1 / 400, 1 / 1600],
                              smfsym.optimizers.Momentum(friction=1.0, nesterov=True), models=["smf1", "smf2"])
    return sch, mom


def test_tables_print_x0_t_end_and_exact_without_a_path_count(studies):
    for st in studies:
        head = repr(st).splitlines()[0]
        assert "x0 = [0.5], t_end = 1, exact moments" in head, head
        assert "paths" not in head and "?" not in head
        assert "n_paths" not in st.meta
    mc = momentum_weak_error(_ou(), x**2, [0.5], 1.0, [1 / 100, 1 / 400], 1.0, models=["smf1"], method="montecarlo",
                             n_paths=2_000, seed=3, progress=False)
    assert "x0 = [0.5], t_end = 1, 2,000 paths" in repr(mc).splitlines()[0]


@pytest.mark.parametrize("run", ["schedule", "momentum"])
def test_duplicate_etas_and_etas_off_the_horizon_are_refused(run):
    p = _ou()

    def call(etas):
        if run == "schedule":
            return schedule_weak_error(p, Schedule(1 / (1 + t), t), x**2, [0.5], 1.0, etas, models=["smf1"])
        return momentum_weak_error(p, x**2, [0.5], 1.0, etas, 1.0, models=["smf1"])

    with pytest.raises(ValueError, match="`etas` must be distinct"):
        call([0.01, 0.01, 0.0025])
    # schedule: 1 / 0.3 steps of eta; momentum: 1 / sqrt(0.02) steps of h; neither is whole
    bad = 0.3 if run == "schedule" else 0.02
    with pytest.raises(ValueError, match=r"`etas`: SGD's step .* must divide `t_end` = 1 .*these do not: 0\.\d+"):
        call([bad, 0.01])


def _lines(ax, label):
    return [ln for ln in ax.get_lines() if ln.get_label() == label]


def test_momentum_figure_is_in_h_with_reference_slopes_in_h(studies, tmp_path):
    _, mom = studies
    fig = mom.plot(path=tmp_path / "mom.png")
    assert (tmp_path / "mom.png").stat().st_size > 0
    ax = fig.axes[0]
    hs = np.array([0.1, 0.05, 0.025])
    assert "h" in ax.get_xlabel() and "sqrt" in ax.get_xlabel()
    np.testing.assert_allclose(sorted(ax.get_xticks()), sorted(hs))
    for p in (1, 2):
        (ref,) = _lines(ax, f"slope {p}")
        xs, ys = ref.get_data()
        np.testing.assert_allclose(xs, hs)
        np.testing.assert_allclose(ys[0] / ys[-1], (hs[0] / hs[-1]) ** p)
    # the data: |error| at each h, as the rows have them
    errs = sorted(abs(r["error"]) for r in mom.rows if r["model"] == "smf2")
    drawn = [c for c in ax.containers if c.get_label().startswith("smf2")][0]
    xs, ys = (np.asarray(v, dtype=float) for v in drawn.lines[0].get_data())
    np.testing.assert_allclose(xs, hs)
    np.testing.assert_allclose(sorted(ys), errs)
    plt.close(fig)


def test_plot_takes_a_path_or_an_axis(studies, tmp_path):
    sch, mom = studies
    fig, axes = plt.subplots(1, 2)
    for st, ax in zip(studies, axes):
        assert st.plot(ax=ax) is fig
    assert "eta" in axes[0].get_xlabel() and "sqrt" not in axes[0].get_xlabel()
    (ref,) = _lines(axes[0], "slope 1")
    np.testing.assert_allclose(ref.get_data()[0], [0.1, 0.05, 0.025])  # a schedule's step is eta
    plt.close(fig)
    out = sch.plot(str(tmp_path / "positional.png"))  # a positional str is a path
    assert (tmp_path / "positional.png").stat().st_size > 0
    plt.close(out)
    fig, ax = plt.subplots()
    assert mom.plot(ax) is fig and ax.get_lines()  # an axis passed first is the axis
    plt.close(fig)
