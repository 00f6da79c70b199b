"""Mean-field study (issue 8): table, slopes with intervals, relative errors, figure, LaTeX, bad input."""
import warnings

import numpy as np
import pytest
import sympy as sp

import smfsym
from smfsym.meanfield.study import fit_slope

a, w, out = sp.symbols("a w out")


@pytest.fixture(scope="module")
def net():
    z = smfsym.normal("z")
    return smfsym.MeanFieldProblem(a * sp.tanh(w * z), (a, w), out, (out - sp.tanh(2 * z)) ** 2 / 2)


def test_fit_slope_recovers_a_power_law():
    x = np.array([0.1, 0.05, 0.025])
    f = fit_slope(x, 3 * x**1.5, 0.01 * 3 * x**1.5)
    assert abs(f["slope"] - 1.5) < 1e-12 and f["ci95"][0] < 1.5 < f["ci95"][1]


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
def test_study_outputs(net, tmp_path):
    st = smfsym.meanfield_study(net, etas=[0.1, 0.05], widths=[40, 80], t_end=0.5, n_paths=32, n_points=40,
                                n_saves=5, observables=["risk", "moments"], seed=0)
    assert sorted(st.slopes) == [("ddsmf", 40), ("ddsmf", 80), ("sgd", 40), ("sgd", 80)]
    assert len(st.rows) == 4 and {"rel_err_var", "rel_err_var_se", "mean_limit"} <= set(st.rows[0])
    r = st.rows[0]
    assert np.isclose(r["rel_err_var"], r["var_ddsmf"] / r["var_sgd"] - 1)
    assert "slope of Var[R] against eta" in st.table
    tex = st.to_latex()
    assert tex.startswith(r"\begin{tabular}") and tex.count(r"\\") == len(st.rows) + 1
    st.plot(path=tmp_path / "mf.png")
    assert (tmp_path / "mf.png").stat().st_size > 10_000
    lim = st.results[("limit", None, 40)]
    assert np.all(lim.var("risk") == 0)
    d = st.to_dict()
    assert d["widths"] == [40, 80] and "sgd/N=40" in d["slopes"]


def test_study_bad_input(net):
    with pytest.raises(ValueError, match="`widths` must be positive integers"):
        smfsym.meanfield_study(net, etas=[0.1], widths=[0, 10], t_end=1.0, n_points=8)
    with pytest.raises(ValueError, match=r"`etas`: the saved times, .*\(`t_end` = 1, `n_saves` = 5\), must be multiples of every eta, .* 0.3 does not divide them"):
        smfsym.meanfield_study(net, etas=[0.3], widths=[10], t_end=1.0, n_points=8)
    with pytest.raises(ValueError, match="give `theta0`"):
        smfsym.meanfield_study(net, etas=[0.1], t_end=1.0)
    with pytest.raises(ValueError, match="`etas` must be a positive number"):
        smfsym.meanfield_study(net, etas=[0.0], widths=[10], t_end=1.0)
    with pytest.raises(ValueError, match="`methods` must be a subset"):
        smfsym.meanfield_study(net, etas=[0.1], widths=[10], t_end=1.0, methods=["sme"])


def test_repeated_etas_or_widths_are_refused(net):
    """etas = [0.04, 0.04] used to print a slope of -1.7e16 with a tight interval (a fit over one eta)."""
    opts = smfsym.RunOptions(progress=False)
    with pytest.raises(ValueError, match=r"`etas` must be distinct; got \[0.04, 0.04\]"):
        smfsym.meanfield_study(net, etas=[0.04, 0.04], t_end=0.2, widths=[20], n_paths=8, seed=0, options=opts)
    with pytest.raises(ValueError, match=r"`widths` must be distinct; got \[10, 10\]"):
        smfsym.meanfield_study(net, etas=[0.04], t_end=0.2, widths=[10, 10], n_paths=8, seed=0, options=opts)
    with pytest.raises(TypeError, match="`widths` must be a sequence of positive integers; got 10"):
        smfsym.meanfield_study(net, etas=[0.04], t_end=0.2, widths=10, n_paths=8, seed=0, options=opts)


def test_one_eta_says_it_has_no_slope_instead_of_nan(net):
    st = smfsym.meanfield_study(net, etas=[0.04], t_end=0.2, widths=[10], n_paths=8, n_points=8, seed=0,
                                options=smfsym.RunOptions(progress=False))
    assert "nan" not in st.table
    assert "slope of Var[R] against eta (sgd, N = 10): no slope: one eta" in st.table
    assert all(np.isnan(f["slope"]) and f["unfitted"] for f in st.slopes.values())


def test_fit_slope_names_why_it_cannot_fit():
    f = fit_slope([0.1, 0.05], [1e-3, 0.0], [1e-4, 1e-4])  # one eta with a positive value left
    assert np.isnan(f["slope"]) and f["unfitted"] == "no slope: 1 of 2 etas with a positive value and standard error"
    assert "unfitted" not in fit_slope([0.1, 0.05], [1e-3, 5e-4], [1e-4, 1e-4])


def test_one_random_path_has_unknown_spread_not_zero(net):
    """A one-path DD-SMF or SGD run used to report sem = var = var_se = 0: it looked exactly resolved."""
    th = smfsym.particles(net, 20, seed=0)
    opts = smfsym.RunOptions(progress=False)
    for run in (smfsym.simulate_ddsmf(net, th, 0.05, 0.1, n_paths=1, seed=1, n_points=8, options=opts),
                smfsym.simulate_meanfield_sgd(net, th, 0.05, 2, n_paths=1, seed=1, options=opts)):
        s = run.summary("risk")
        assert np.all(np.isfinite(s["mean"])) and all(np.all(np.isnan(s[k])) for k in ("sem", "var", "var_se"))
    two = smfsym.simulate_ddsmf(net, th, 0.05, 0.1, n_paths=2, seed=1, n_points=8, options=opts).summary("risk")
    assert np.all(np.isfinite(two["sem"])) and np.all(two["sem"][1:] > 0)
    # the deterministic limit has no spread at all: 0 is its exact variance
    lim = smfsym.simulate_meanfield_limit(net, th, 0.1, n_points=8)
    assert np.all(lim.var("risk") == 0)


def test_one_path_of_an_sde_has_an_unknown_standard_error():
    x = sp.Symbol("x")
    p = smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x])
    one = smfsym.simulate(smfsym.smf(p), [1.0], 0.1, eta=0.1, n_paths=1, seed=0)
    assert np.all(np.isnan(one.sem())) and np.all(np.isfinite(one.mean()))
    assert np.all(smfsym.simulate(smfsym.smf(p), [1.0], 0.1, eta=0.1, n_paths=2, seed=0).sem() > 0)


def test_a_width_too_large_is_refused_with_its_size_before_allocating(net):
    """10**12 particles were refused only by numpy's allocator (MemoryError, 14.6 TiB), the width not named."""
    with pytest.raises(ValueError, match=r"`n` = 1000000000000 particles of 2 parameters take 1.49e\+04 GiB"):
        smfsym.particles(net, 10**12)
    with pytest.raises(ValueError, match=r"`widths`: 1000000000000 particles of 2 parameters take 1.49e\+04 GiB"):
        smfsym.meanfield_study(net, etas=[0.04, 0.02], t_end=0.2, widths=[10, 10**12], n_paths=4,
                               options=smfsym.RunOptions(progress=False))


def test_two_etas_give_no_interval_and_unresolved_differences_no_order():
    """Audit 13, F2: "order of |E R ddsmf - E R sgd|: 2.93 +- 8.85" was fitted from differences below their own
    standard errors (0.85 and 0.18 of them), and Var[R] slopes had 95% intervals from two etas, which fit_order
    refuses (audit 10)."""
    f = fit_slope([0.1, 0.05], [1e-3, 5e-4], [1e-4, 1e-4])
    assert np.isfinite(f["slope"]) and all(np.isnan(f["ci95"]))
    f = fit_slope([0.1, 0.05, 0.025], [8.5e-4, 1.8e-4, 3e-3], [1e-3, 1e-3, 1e-4], resolve=3.0)
    assert np.isnan(f["slope"]) and f["unfitted"] == "no slope: 1 of 3 etas above 3 standard errors"
    three = fit_slope([0.1, 0.05, 0.025], [1e-2, 5e-3, 2.5e-3], [1e-4, 1e-4, 1e-4], resolve=3.0)
    assert abs(three["slope"] - 1) < 1e-12 and three["ci95"][0] < 1 < three["ci95"][1]


def test_a_coarse_risk_rule_is_reported_before_the_runs(net):
    """Audit 13, F1: the risk was evaluated on 16 Gauss points, which put the teacher network's E R 3-4% too high
    with nothing said (the noise rule was tuned to 2%, its 'risk moved by 0.01%' measured on the same rule)."""
    from smfsym.meanfield import Observe
    from smfsym.meanfield.refine import RuleResolutionWarning

    run = dict(etas=[0.1, 0.05], t_end=0.2, widths=[20], n_paths=8, seed=0, methods=("sgd",),
               options=smfsym.RunOptions(progress=False))
    with pytest.warns(RuleResolutionWarning, match=r"population risk's rule \(Gauss, 16 points per coordinate\) "
                                                   r"is not resolved"):
        smfsym.meanfield_study(net, observe=Observe(n_saves=2), **run)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        smfsym.meanfield_study(net, observe=Observe(risk_points=64, n_saves=2), **run)
    assert not [w for w in caught if "population risk's rule" in str(w.message)]


def test_a_stationary_start_says_n_a_instead_of_nan_percent(net, tmp_path):
    """Audit 13, F3: every particle at 0 (a stationary point: no noise) printed "+nan% ± nan%" and leaked numpy
    RuntimeWarnings; the relative error of a zero variance is said to be undefined, and the study saves."""
    from smfsym.meanfield import Observe

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        st = smfsym.meanfield_study(net, np.zeros((10, 2)), etas=[0.1, 0.05], t_end=0.2, n_paths=8, seed=0,
                                    observe=Observe(n_saves=2, risk_points=64),
                                    options=smfsym.RunOptions(progress=False))
    assert "nan" not in st.table and "n/a (a variance is 0)" in st.table
    st.save(tmp_path / "s.json")
    assert "n/a" in smfsym.load_study(tmp_path / "s.json").table
