"""Mean-field study (issue 8): table, slopes with intervals, relative errors, figure, LaTeX, bad input."""
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
    with pytest.raises(ValueError, match="must be multiples of every eta"):
        smfsym.meanfield_study(net, etas=[0.3], widths=[10], t_end=1.0, n_points=8)
    with pytest.raises(ValueError, match="give `theta0`"):
        smfsym.meanfield_study(net, etas=[0.1], t_end=1.0)
    with pytest.raises(ValueError, match="`etas` must be a positive number"):
        smfsym.meanfield_study(net, etas=[0.0], widths=[10], t_end=1.0)
    with pytest.raises(ValueError, match="`methods` must be a subset"):
        smfsym.meanfield_study(net, etas=[0.1], widths=[10], t_end=1.0, methods=["sme"])
