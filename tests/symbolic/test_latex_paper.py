"""LaTeX that compiles at any size and reads like a paper (compact forms checked against the expansion)."""
import re

import numpy as np
import pytest
import sympy as sp

import smfsym
from smfsym.data.means import DataMean
from smfsym.symbolic.compact import bounded_below, compact_matrix, compact_vector
from smfsym.symbolic.latex import latex_names

from latex_tools import compile_tex

pytestmark = pytest.mark.slow  # notebooks / pdflatex: the slow tier (`python -m pytest -m slow`)


def _regression(d, label_noise=True):
    x = sp.symbols(f"x0:{d}")
    a = smfsym.normal("a", d)
    eps = smfsym.normal("eps", std=sp.Rational(1, 2)) if label_noise else 0
    return smfsym.Problem((sum(ai * xi for ai, xi in zip(a, x)) - eps) ** 2 / 2, x), x


def _rademacher():
    x = sp.Symbol("x")
    r = smfsym.rademacher("r")
    return smfsym.Problem((1 + r) * x**2 / 2, [x])


def _logistic():
    w = sp.symbols("w0:2")
    z = smfsym.normal("z", 2)
    y = smfsym.rademacher("y")
    return smfsym.Problem(sp.log(1 + sp.exp(-y * (w[0] * z[0] + w[1] * z[1]))), w)


def _dataset():
    rng = np.random.default_rng(0)
    data = np.column_stack([rng.normal(size=12), rng.normal(size=12)])
    u, v = smfsym.empirical(data, ["u", "v"])
    x = sp.Symbol("x")
    return smfsym.Problem((x * u - v) ** 2 / 2, [x])


# ----------------------------------------------------------------------------- compact forms


@pytest.mark.parametrize("d", [2, 3, 6])
def test_regression_covariance_is_recognised_and_equals_the_expansion(d):
    p, x = _regression(d)
    cf = compact_matrix(p.sigma, x)
    assert cf is not None and cf.verified
    # independent check: the printed structure (|x|^2 + s^2) I + x x^T, built by hand
    xv = sp.Matrix(x)
    by_hand = (xv.dot(xv) + sp.Rational(1, 4)) * sp.eye(d) + xv * xv.T
    assert (cf.expand() - by_hand).applyfunc(sp.expand) == sp.zeros(d, d)
    assert (cf.expand() - p.sigma).applyfunc(sp.expand) == sp.zeros(d, d)
    assert cf.latex() == r"\left(|x|^2 + \frac{1}{4}\right) I_{" + str(d) + r"} + x x^{\top}"


def test_compact_forms_refuse_what_has_no_such_structure():
    x = sp.symbols("x0:2")
    S = sp.Matrix([[x[0] ** 2 + 1, x[0] * x[1]], [x[0] * x[1], x[1] ** 2 + 2]])  # alpha differs on the diagonal
    assert compact_matrix(S, x) is None
    assert compact_vector([x[0], 2 * x[1]], x) is None
    assert compact_vector([x[0] * (1 + x[1]), x[1] * (1 + x[1])], x).coeff == 1 + x[1]


def test_compact_drift_of_the_order_two_flow():
    p, x = _regression(3)
    flow = smfsym.smf(p, order=2)
    cf = compact_vector(flow.drift, x)
    assert cf is not None and sp.simplify(cf.coeff + 1 + flow.eta / 2) == 0
    assert (cf.expand() - flow.drift).applyfunc(sp.expand) == sp.zeros(3, 1)


def test_bounded_below_proofs_and_non_proofs():
    p, x = _regression(3)
    assert bounded_below(p.sigma, x)
    p0, x0 = _regression(2, label_noise=False)  # no label noise: Sigma(0) = 0
    assert not bounded_below(p0.sigma, x0)


# ----------------------------------------------------------------------------- what is printed


def test_names_and_laws_read_like_a_paper():
    p, _ = _regression(3)
    tex = p.latex()
    assert r"\varepsilon" in tex and not re.search(r"(?<!var)eps", tex)
    assert r"a_{0}, a_{1}, a_{2} \overset{\text{iid}}{\sim} \mathcal{N}\left(0, 1\right)" in tex
    assert r"\left( a_{0},\right)" not in tex  # no one-element tuples
    assert r"(|x|^2 + \frac{1}{4}\right) I_{3} + x x^{\top}" in tex
    names = latex_names(sp.symbols("lr loss_out w_out x0"))
    # (lr is no longer printed as eta: eta is the models' learning rate, and a loss cannot hold the learning rate)
    assert names[sp.Symbol("lr")] == r"\mathrm{lr}" and names[sp.Symbol("loss_out")] == r"\mathrm{loss}_{out}"
    assert sp.Symbol("w_out") not in names and sp.Symbol("x0") not in names  # sympy prints those well


def test_non_differentiability_is_stated_only_where_shown():
    p, _ = _regression(2)
    assert "smooth" in smfsym.sme(p).latex() and "not differentiable" not in smfsym.sme(p).latex()
    p0, _ = _regression(2, label_noise=False)
    tex0 = smfsym.sme(p0).latex()
    assert "not differentiable" in tex0 and "singular" in tex0
    rad = smfsym.sme(_rademacher()).latex()
    assert "not differentiable" in rad and r"\left|{x}\right|" in rad
    assert "not differentiable" not in smfsym.smf(_rademacher()).latex()


def test_export_has_no_repeated_titles(tmp_path):
    p, _ = _regression(2)
    tex = smfsym.export_tex(p, [smfsym.sme(p), smfsym.smf(p)])
    assert tex.count("stochastic modified flow, order 2") == 0  # the section title says it once
    assert tex.count(r"\section*{Stochastic modified flow, order 2}") == 1


# ----------------------------------------------------------------------------- pdflatex


@pytest.mark.parametrize("case", ["regression3", "regression20", "rademacher", "logistic", "dataset"])
def test_exported_documents_compile(case, tmp_path):
    if case.startswith("regression"):
        p, _ = _regression(int(case[len("regression"):]))
    else:
        p = {"rademacher": _rademacher, "logistic": _logistic, "dataset": _dataset}[case]()
    sdes = [smfsym.gradient_flow(p), smfsym.sme(p, order=2), smfsym.smf(p, order=2)]
    tex = smfsym.export_tex(p, sdes)
    if case == "regression20":
        assert sdes[2].n_noise >= 20  # the case that broke amsmath's 10-column limit
    log = compile_tex(tex, tmp_path, case)
    assert "Extra alignment tab" not in log


def test_data_means_are_labelled_once_and_defined(tmp_path):
    p = _logistic()
    tex = p.latex()
    n_means = len(set().union(*[e.atoms(DataMean) for e in [p.F, *p.grad_F, *p.sigma]]))
    defs = [ln for ln in tex.split("\\\\") if ln.strip().startswith("m_{") and "&=" in ln]
    assert len(defs) == n_means  # every data mean defined exactly once
    assert r"F(x) &= m_{1}(x)" in tex and "Gauss-Hermite" in tex
    doc = smfsym.export_tex(p, [smfsym.smf(p, order=1)])
    assert doc.count(r"\section*{Data means}") == 1
    compile_tex(doc, tmp_path, "means")


def test_text_derivation_labels_means_and_states_truncation():
    from smfsym.symbolic.latex import derivation_text

    p = _logistic()
    flow = smfsym.smf(p, order=1)
    text = derivation_text(p, [flow], x_ref=[0.5, -0.5])
    assert "F = m1(x)" in text and text.count(" = E[") == len(
        set().union(*[e.atoms(DataMean) for e in [p.F, *p.grad_F, *p.sigma, *flow.drift, *flow.diffusion]]))
    assert "truncated at total degree 3" in text
    frac = flow.chaos.captured_fraction([0.5, -0.5])
    assert f"{frac:.4%}" in text and 0.9 < frac < 1


def test_standalone_tables_compile(tmp_path):
    from smfsym.symbolic.latex import standalone_table

    x = sp.Symbol("x")
    p = smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x])
    etas = [0.2, 0.1, 0.05, 0.025, 0.0125, 0.00625, 0.003125]
    st = smfsym.weak_error(p, x**2, [1.0], 1.0, etas, models=["gf", "sme1", "sme2", "smf1", "smf2"])
    log = compile_tex(standalone_table(st.to_latex(), "weak error"), tmp_path, "table")
    assert "Overfull" not in log  # scaled to the text width
