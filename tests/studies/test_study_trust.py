"""Studies that never mislead (issue #15): per-model exact/Monte Carlo choice, plots with a path or an
axis, one horizon per study, n_paths >= 2, infinite moments of phi refused, coupled solver errors in
`multipoint`, "unresolved" orders in figures, one order-fitting routine with one threshold."""
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import smfsym
from smfsym.simulation.exact import NotClosedError, PolynomialSpace, model_closes
from smfsym.io.persist import Order
from smfsym.numerics.solvers import get_solver
from smfsym.studies.common import EXACT_ZERO, Fit, fit_order, order_label, resolved
from smfsym.studies.richardson import coupled_expectation
from smfsym.studies.weak_error_study import WeakErrorStudy, choose_methods

QUIET = smfsym.RunOptions(progress=False)

x = sp.Symbol("x")  # not declared real: the SME's |x| must still give |x|^2 = x^2


@pytest.fixture(scope="module", autouse=True)
def _agg():
    import matplotlib

    matplotlib.use("Agg")


def rademacher_problem():
    return smfsym.Problem((1 + smfsym.rademacher("r")) * x**2 / 2, [x])


def gaussian_quadratic():
    return smfsym.Problem((x - smfsym.normal("xi", std=sp.Rational(7, 10))) ** 2 / 2, [x])


# ----------------------------------------------------------------------------- 1. auto choice per model


def test_rademacher_weak_error_is_exact_for_every_model_with_closed_forms():
    """docs/theory.md §5: f = (1 + r) x^2 / 2, r = +-1. The SME's noise is sqrt(eta) |x| (which made the
    exact path fail on Abs(x)**2); its generator only needs eta |x|^2 = eta x^2, so it closes.
    SGD: E x_k^2 = x0^2 (1 - 2 eta + 2 eta^2)^k; SME1/SMF1: dX = -X dt + sqrt(eta) |X| dW (in law), so
    E X_t^2 = x0^2 exp((eta - 2) t); order-2 models and gradient flow: x0^2 exp(-2 t) (the eta terms of
    the order-2 drift and the noise cancel in E X^2)."""
    p = rademacher_problem()
    assert smfsym.sme(p, 1).nondifferentiable()  # the |x| is there
    etas = [0.1, 0.05, 0.025]
    for method in ("auto", "exact"):
        st = smfsym.weak_error(p, x**2, [1.5], 1.0, etas, method=method, progress=False)
        assert st.meta["method"] == "exact"
        assert st.meta["methods"] == {m: "exact" for m in ("gf", "sme1", "sme2", "smf1", "smf2", "sgd")}
        for r in st.rows:
            k = round(1.0 / r["eta"])
            assert r["method"] == "exact" and r["se"] == 0
            assert r["sgd"] == pytest.approx(2.25 * (1 - 2 * r["eta"] + 2 * r["eta"] ** 2) ** k, rel=1e-12)
            target = np.exp((r["eta"] - 2) * 1.0) if r["model"] in ("sme1", "smf1") else np.exp(-2.0)
            assert r["value"] == pytest.approx(2.25 * target, rel=1e-12), r
        assert abs(st.orders["sme1"].slope - 1) < 0.1 and abs(st.orders["smf2"].slope - 2) < 0.15
        assert repr(st).splitlines()[0].endswith("exact moments")


def test_the_choice_is_made_per_model_and_reported():
    """A model whose generator leaves the polynomials (noise exp(x): a = exp(2x)) is simulated while SGD
    and the others stay exact; method='exact' refuses it by name."""
    p = gaussian_quadratic()
    odd = smfsym.SDE([-x], sp.Matrix([[sp.exp(x)]]), state=[x])
    space = PolynomialSpace([x], 2)
    assert model_closes(smfsym.smf(p, 2), space, 0.1) is None
    assert "not polynomial" in model_closes(odd, space, 0.1)
    sdes = {"smf2": smfsym.smf(p, 2), "odd": odd}
    sgd_exact, _, how = choose_methods(p, x**2, {}, sdes, "auto", 0.1)
    assert sgd_exact and how == {"smf2": "exact", "odd": "montecarlo"}
    with pytest.raises(NotClosedError, match="model odd"):
        choose_methods(p, x**2, {}, sdes, "exact", 0.1)
    assert choose_methods(p, sp.exp(x), {}, sdes, "auto", 0.1)[2] == {"smf2": "montecarlo", "odd": "montecarlo"}
    # a mixed study says which models were simulated, with their path count
    st = WeakErrorStudy(p, x**2, [0.1, 0.05], ["smf2", "odd"], [], {}, [1.0, 1.0],
                        meta=dict(method="mixed", methods={"smf2": "exact", "odd": "montecarlo", "sgd": "exact"},
                                  n_paths=5000, x0=[1.0], t_end=1.0))
    assert st.header().endswith("exact moments (SGD, smf2), 5,000 paths (odd)")


@pytest.mark.slow
def test_cli_check_rademacher_runs(tmp_path):
    """`smfsym check rademacher` (the shipped spec) used to end in PolynomialError: Abs(x)**2."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    out = subprocess.run([sys.executable, "-m", "smfsym", "check", "rademacher", "-o", str(tmp_path / "o"),
                          "--quiet", "--yes"], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "exact moments" in (tmp_path / "o" / "weak_error.txt").read_text().splitlines()[0]


# ----------------------------------------------------------------------------- 2. plot(path, ax)


def _check_plot(st, n_panels, tmp_path):
    import matplotlib.pyplot as plt

    f = tmp_path / "positional.png"
    fig = st.plot(str(f))  # a positional str is the path
    assert f.stat().st_size > 1000 and fig.axes
    g = tmp_path / "pathlike.png"
    st.plot(g)  # PathLike
    assert g.stat().st_size > 1000
    new, axes = plt.subplots(1, n_panels, squeeze=False)
    axes = list(axes[0])
    out = st.plot(ax=axes[0] if n_panels == 1 else axes)
    assert out is new and all(a.lines or a.collections for a in axes)  # drawn on the given axes
    if n_panels == 1:
        other, ax = plt.subplots()
        assert st.plot(ax) is other and ax.lines  # an axis passed first is the axis
    h = tmp_path / "both.png"
    assert st.plot(h, ax=axes[0] if n_panels == 1 else axes) is new and h.stat().st_size > 1000
    with pytest.raises(TypeError, match="`path`"):
        st.plot(3)
    with pytest.raises(TypeError, match="`ax`"):
        st.plot(ax="not an axis", path=tmp_path / "x.png")
    plt.close("all")


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
def test_weak_error_plot_takes_a_path_or_an_axis(tmp_path):
    st = smfsym.weak_error(gaussian_quadratic(), x**2, [1.0], 1.0, [0.1, 0.05], models=["sme1", "smf2"])
    _check_plot(st, 1, tmp_path)


def test_multipoint_plot_takes_a_path_or_axes(tmp_path):
    mp = smfsym.multipoint(rademacher_problem(), [[-1.0], [1.0]], eta=0.1, t_end=1.0, psi=["product", "covariance"],
                           models=["smf2"], n_paths=2000, seed=0, progress=False)
    _check_plot(mp, 2, tmp_path)
    import matplotlib.pyplot as plt

    with pytest.raises(ValueError, match="`ax` must hold 2 axes"):
        mp.plot(ax=plt.subplots()[1])
    title = mp.plot()._suptitle.get_text()
    assert "2,000 paths" in title and "t_end = 1" in title and "eta = 0.1" in title
    plt.close("all")


def test_multipoint_rates_plot_takes_a_path_or_an_axis(tmp_path):
    st = smfsym.multipoint_rates(rademacher_problem(), [[-1.0], [1.0]], [0.1, 0.05], 1.0, models=["smf2"],
                                 psi=["product"])
    assert st.meta["method"] == "exact"
    _check_plot(st, 1, tmp_path)
    assert st.header().endswith("t_end = 1, exact moments")  # not "100,000 paths"


# ----------------------------------------------------------------------------- 3. one horizon


def test_learning_rates_that_do_not_divide_t_end_are_refused():
    p = gaussian_quadratic()
    with pytest.raises(ValueError, match=r"`etas`: eta = 0.4 does not divide `t_end` = 1 \(t_end / eta = 2.5\)"):
        smfsym.weak_error(p, x**2, [1.0], 1.0, [0.4, 0.2])
    with pytest.raises(ValueError, match=r"`eta`: eta = 0.3 .*t_end / eta = 3.333333333"):
        smfsym.multipoint(p, [[-1.0], [1.0]], eta=0.3, t_end=1.0, n_paths=100)
    with pytest.raises(ValueError, match=r"`etas`: eta = 0.3 "):
        smfsym.multipoint_rates(p, [[-1.0], [1.0]], [0.3, 0.1], 1.0)
    # floating rounding is not a different horizon: 0.3 / 0.1 = 2.9999999999999996
    st = smfsym.weak_error(p, x**2, [1.0], 0.3, [0.1, 0.05], models=["sme1"])
    assert st.t == pytest.approx([0.3, 0.3], rel=1e-12)


# ----------------------------------------------------------------------------- 4. n_paths >= 2


def test_one_path_is_refused_where_a_standard_error_is_computed():
    p = gaussian_quadratic()
    with pytest.raises(ValueError, match="`n_paths` must be at least 2"):
        smfsym.weak_error(p, x, [1.0], 1.0, [0.2, 0.1], method="montecarlo", n_paths=1)
    for n_paths in (1, 0, -3):  # one message (and one reason) for 0 and negatives too
        with pytest.raises(ValueError, match="`n_paths` must be at least 2"):
            smfsym.multipoint(p, [[-1.0], [1.0]], eta=0.1, t_end=1.0, n_paths=n_paths)
    with pytest.raises(ValueError, match="`n_paths` must be at least 2"):
        smfsym.multipoint_rates(p, [[-1.0], [1.0]], [0.2, 0.1], 1.0, n_paths=1, method="montecarlo")
    with pytest.raises(ValueError, match="`n_paths` must be at least 2"):
        coupled_expectation(smfsym.sme(p, 1), [1.0], 1.0, eta=0.1, dt=0.05, n_paths=1, solver=get_solver("euler"),
                            phi=lambda X: X[:, 0], seed=0, options=QUIET)


# ----------------------------------------------------------------------------- 5. infinite moments


def test_exp_of_a_symbolic_multiple_of_a_student_t_variable_is_infinite():
    """E exp(x t), t ~ t(3): infinite for every x != 0 (it used to warn and return 59.3 at x = 0.3)."""
    from smfsym.data.means import expectation

    t = smfsym.student_t("t", 3)
    with pytest.raises(ValueError, match=r"infinite.*symbolic coefficient.*c != 0"):
        expectation(sp.exp(x * t))
    with pytest.raises(ValueError, match="is infinite"):
        smfsym.Problem(sp.exp(x * t) + x**2, [x])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert expectation(sp.exp(x * smfsym.normal("g"))).free_symbols  # Gaussian: finite for every x


def test_phi_whose_sgd_moment_is_infinite_is_refused():
    """grad f = a (a x - y) has degree 2 in a ~ t(5): E x_k^2 needs E a^4 (finite), E x_k^4 needs E a^8
    (infinite: only orders below 5 exist)."""
    from smfsym.data.tails import check_phi_tails

    p = smfsym.Problem((smfsym.student_t("a", 5) * x - smfsym.normal("y")) ** 2 / 2, [x])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_phi_tails(p, x**2)
    with pytest.raises(ValueError, match=r"E phi\(x_k\) is infinite for phi = x\*\*4.*order 8.*below 5"):
        smfsym.weak_error(p, x**4, [1.0], 1.0, [0.1, 0.05], method="montecarlo", n_paths=1000)


# ----------------------------------------------------------------------------- 6. coupled solver error


def _euler_product(a, b, eta, h, n):
    """E[X_n(a) X_n(b)] of Euler for dX = -X dt + sqrt(eta) dW, both starts driven by one noise."""
    v = 0.0
    for _ in range(n):
        v = (1 - h) ** 2 * v + eta * h
    return (1 - h) ** (2 * n) * a * b + v


def test_multipoint_solver_error_is_coupled_and_measures_the_solver():
    """SMF1 of (x - z)^2 / 2, z ~ N(0, 1): dX = -X dt + sqrt(eta) dW, starts 3 and 1 with one noise; Euler at
    dt = 0.25 and 0.125 (eta = 0.5, t = 1). The Richardson solver error (E_fine - E_coarse) / (2 - 1) of
    E[X(3) X(1)] is known from Euler's moment recursion (0.0321). The study's estimate from coupled runs
    agrees with it within 4.5 of its standard errors (stated tolerance), and that standard error is under
    a fifth of what two independent runs at dt and dt/2 give."""
    p = smfsym.Problem((x - smfsym.normal("z")) ** 2 / 2, [x])
    eta, n_paths, starts = 0.5, 20_000, [[3.0], [1.0]]
    mp = smfsym.multipoint(p, starts, eta=eta, t_end=1.0, psi="product", models=["smf1"], n_paths=n_paths, seed=4,
                           dt_fraction=0.5, scheme="euler", increments="gaussian", progress=False)
    row = mp.value("smf1", "product")
    truth = _euler_product(3.0, 1.0, eta, 0.125, 8) - _euler_product(3.0, 1.0, eta, 0.25, 4)
    assert truth > 0.03
    assert abs(row["solver_error"] - truth) < 4.5 * row["solver_error_se"]
    # the fine (dt/2) value itself is Euler at 0.125
    assert abs(row["value"] - _euler_product(3.0, 1.0, eta, 0.125, 8)) < 4.5 * row["se"]
    flow = smfsym.smf(p, 1)
    ses = []
    for h, seed in ((0.25, 1), (0.125, 2)):
        X = smfsym.simulate(flow, starts, 1.0, eta=eta, dt=h, n_paths=n_paths, seed=seed, scheme="euler",
                            progress=False).states[-1]
        prod = X[:, 0, 0] * X[:, 1, 0]
        ses.append(prod.std(ddof=1) / np.sqrt(n_paths))
    assert row["solver_error_se"] < 0.2 * np.hypot(*ses)


# ----------------------------------------------------------------------------- 7. figures and headers


@pytest.mark.filterwarnings("ignore::smfsym.OrderWarning")
def test_unresolved_orders_are_labelled_unresolved_not_nan():
    st = smfsym.weak_error(gaussian_quadratic(), x, [0.1], 0.2, [0.02, 0.01], models=["smf2"], method="montecarlo",
                           n_paths=2000, progress=False)
    assert st.orders["smf2"].n_used < 2
    labels = [t.get_text() for t in st.plot().axes[0].get_legend().get_texts()]
    assert "smf2 (unresolved)" in labels and not any("nan" in s for s in labels)
    assert "unresolved" in repr(st) and "nan" not in repr(st).split("fitted orders")[1]
    assert "unresolved" in st.to_latex()
    assert order_label(Order(1.98, 1.9, 2.1, 3)) == "slope 1.98"


def test_headers_name_phi_x0_t_end_and_paths():
    p = gaussian_quadratic()
    ex = smfsym.weak_error(p, x**2, [1.5], 0.5, [0.1, 0.05], models=["sme1"])
    assert repr(ex).splitlines()[0] == "weak error against SGD: phi = x**2, x0 = [1.5], t_end = 0.5, exact moments"
    mp = smfsym.multipoint(p, [[-1.0], [1.0]], eta=0.1, t_end=0.5, psi="product", models=["smf1"], n_paths=500,
                           progress=False)
    assert mp.header() == "psi = product, starts = [[-1], [1]], eta = 0.1, t_end = 0.5, 500 paths"


# ----------------------------------------------------------------------------- 8. one fit, one threshold


def test_fit_order_is_the_one_routine_with_one_threshold():
    f = fit_order([0.1, 0.05, 0.025], [2e-2, 5e-3, 1.25e-3])
    s, lo, hi = f  # unpacks as before
    assert isinstance(f, Fit) and f.n_used == 3 and s == pytest.approx(2.0) and (s, lo, hi) == tuple(f)
    # exact errors at or below EXACT_ZERO * max(1, |reference|) are rounding
    errs = [1e-3, 2.5e-4, 0.5 * EXACT_ZERO]
    assert fit_order([0.1, 0.05, 0.025], errs).n_used == 2
    assert resolved([1e-10], refs=[1e3]).tolist() == [False]  # threshold 1e-9 for a reference of 1e3
    assert resolved([1e-10], refs=[1.0]).tolist() == [True]
    # Monte Carlo errors: only those above `resolve` standard errors; too few -> NaN and a warning naming it
    assert fit_order([0.1, 0.05, 0.025], [1e-2, 3e-3, 1e-4], [1e-4, 1e-4, 1e-4]).n_used == 2
    with pytest.warns(smfsym.OrderWarning, match="the order of smf2 cannot be resolved: only 1 of 3"):
        f = fit_order([0.1, 0.05, 0.025], [1e-2, 2e-4, 1e-4], [1e-4] * 3, what="smf2")
    assert np.isnan(f[0]) and f.n_used == 1 and order_label(Order(*f, f.n_used)) == "unresolved"
    import pickle

    assert pickle.loads(pickle.dumps(f)).n_used == 1


@pytest.mark.filterwarnings("ignore::smfsym.OrderWarning")
def test_every_path_lost_under_mask_is_said_not_answered_with_mask():
    """With on_nonfinite='mask' in use, the warning advised passing on_nonfinite='mask'."""
    import warnings

    y, z = sp.Symbol("y"), smfsym.normal("z")
    p = smfsym.Problem((y * z) ** 4 / 4 + y**2 / 2, [y])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        st = smfsym.weak_error(p, y**2, [3.0], 1.0, [0.5, 0.25], models=("smf1",), n_paths=300,
                               numerics=smfsym.Numerics(method="montecarlo"),
                               options=smfsym.RunOptions(on_nonfinite="mask", progress=False))
    msgs = [str(w.message) for w in caught if issubclass(w.category, smfsym.studies.DivergenceWarning)]
    assert any("E phi of smf1 at eta = 0.5 = nan +- nan is not resolved: every path was lost" in m for m in msgs)
    assert not any("Pass on_nonfinite='mask'" in m for m in msgs)
    assert all(r["lost"] == 1.0 for r in st.rows if r["eta"] == 0.5)


def test_two_exact_points_give_a_slope_without_an_interval():
    """Two exact errors gave a zero-width "95% interval" ([1.181, 1.181] for a schedule whose four-eta interval is
    [1.12, 2.16]): nothing measures whether two errors are asymptotic. The bounds are NaN, and every table says so."""
    from smfsym.studies.common import fit_order

    t = sp.Symbol("t")
    p = smfsym.Problem((x - smfsym.normal("a", std=sp.Rational(1, 2))) ** 2 / 2, [x])
    st = smfsym.schedule_weak_error(p, smfsym.Schedule(1 / (1 + t), t), x**2, [1.0], 1.0, [0.5, 0.25])
    o = st.orders["smf2"]
    assert o.n_used == 2 and np.isfinite(o.slope) and np.isnan(o.low) and np.isnan(o.high)
    assert "(no interval: 2 points)" in repr(st) and "(no interval: 2 points)" in st.to_latex()
    three = fit_order([0.5, 0.25, 0.125], [1e-2, 3e-3, 1e-3])  # a third point measures the curvature
    assert three[1] < three[0] < three[2]
    # Monte Carlo: the noise alone gave an interval that read as the order (audit 10: 0.90 [0.85, 0.95] for an
    # order-1 model whose errors were pre-asymptotic); two points give none, whatever their errors
    noisy = fit_order([0.5, 0.25], [1e-2, 3e-3], [1e-4, 1e-4])
    assert np.isfinite(noisy[0]) and np.isnan(noisy[1]) and np.isnan(noisy[2]) and noisy.n_used == 2


def test_two_monte_carlo_points_give_no_interval_and_an_older_saved_one_loads_without_it(tmp_path):
    """Audit 10, F1: an order fitted on two Monte Carlo errors had an interval from their noise alone (here it
    would read 0.83 [0.78, 0.88] for an order-1 model). It has none; a study saved with one by an earlier
    smfsym loads with the same slope, no interval and a warning, and a changed slope is still refused."""
    import json

    p = smfsym.Problem((1 + smfsym.normal("a", std=sp.Rational(1, 2))) * x ** 2 / 2, [x])
    st = smfsym.weak_error(p, x ** 2, [1.0], 1.0, [0.5, 0.25], models=["sme1"], n_paths=20000, seed=0,
                           numerics=smfsym.Numerics(method="montecarlo"), options=smfsym.RunOptions(progress=False))
    o = st.orders["sme1"]
    assert o.n_used == 2 and np.isfinite(o.slope) and np.isnan(o.low) and np.isnan(o.high)
    assert "(no interval: 2 points)" in repr(st)
    path = tmp_path / "two.json"
    st.save(path)
    doc = json.loads(path.read_text())
    doc["fields"]["orders"]["sme1"]["__order__"][1:3] = [o.slope - 0.05, o.slope + 0.05]  # as an older smfsym
    path.write_text(json.dumps(doc))
    with pytest.warns(smfsym.OrderWarning, match="interval from two points"):
        loaded = smfsym.load_study(path)
    assert loaded.orders["sme1"].slope == o.slope and np.isnan(loaded.orders["sme1"].low)
    doc["fields"]["orders"]["sme1"]["__order__"][0] = o.slope + 0.1
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=r"orders\.sme1.*slope"):
        smfsym.load_study(path)


def test_a_study_names_the_optimizer_its_models_are_compared_with():
    """Audit 11, F8: RMSprop's and momentum's studies printed "weak error against SGD" and "E phi SGD"."""
    p = smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x])
    rms = smfsym.optimizers.rmsprop(p, c=1, eps=sp.Rational(1, 10))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", smfsym.OrderWarning)
        st = smfsym.update_map_weak_error(rms, x ** 2, [1.0, 4.0], 0.5, [0.1, 0.05], models=["smf1"], n_paths=500,
                                          seed=0)
    assert st.reference == "rmsprop" and repr(st).startswith("weak error against rmsprop: ")
    assert "E phi rmsprop" in repr(st) and r"$\mathbb{E}\varphi$ (rmsprop)" in st.to_latex()
    hb = smfsym.momentum_weak_error(p, x ** 2, [1.0], 1.0, [1 / 100, 1 / 400], smfsym.optimizers.Momentum(friction=1.0),
                                    models=["smf1"])
    assert repr(hb).startswith("weak error against heavy-ball SGD: ")
    sgd = smfsym.weak_error(p, x ** 2, [1.0], 1.0, [0.1, 0.05], models=["smf1"])
    assert sgd.reference == "SGD" and repr(sgd).startswith("weak error against SGD: ")


def test_the_old_interval_warning_points_at_the_callers_load(tmp_path):
    """Audit 12: the warning for an interval stored on two points pointed into smfsym/io/persist.py."""
    import json

    p = smfsym.Problem((1 + smfsym.normal("a", std=sp.Rational(1, 2))) * x ** 2 / 2, [x])
    st = smfsym.weak_error(p, x ** 2, [1.0], 1.0, [0.5, 0.25], models=["sme1"], n_paths=20000, seed=0,
                           numerics=smfsym.Numerics(method="montecarlo"), options=smfsym.RunOptions(progress=False))
    st.save(tmp_path / "two.json")
    doc = json.loads((tmp_path / "two.json").read_text())
    doc["fields"]["orders"]["sme1"]["__order__"][1:3] = [0.5, 1.5]
    (tmp_path / "two.json").write_text(json.dumps(doc))
    with pytest.warns(smfsym.OrderWarning, match="interval from two points") as record:
        smfsym.load_study(tmp_path / "two.json")
    assert [w.filename for w in record if "two points" in str(w.message)] == [__file__]
