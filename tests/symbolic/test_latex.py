import sympy as sp

import smfsym


def _problem():
    x = sp.symbols("x0:2")
    a = smfsym.normal("a", 2)
    eps = smfsym.normal("eps", std=sp.Rational(1, 2))
    return smfsym.Problem((a[0] * x[0] + a[1] * x[1] - eps) ** 2 / 2, x)


def test_sde_latex_named_terms_and_environments():
    p = _problem()
    flow = smfsym.smf(p)
    tex = flow.latex()
    assert tex.startswith(r"\begin{aligned}") and tex.endswith(r"\end{aligned}")
    for name in (r"\mathrm{d}X_t", "b(x) &=", r"\sigma_{1}(x) &=", "exact", "stochastic modified flow, order 2"):
        assert name in tex
    assert flow.latex(None).count("&=") >= 3
    assert flow.latex("align").startswith(r"\begin{align}")
    assert flow._repr_latex_().startswith("$$")
    sme = smfsym.sme(p)
    assert "numeric matrix square root" in sme.latex()


def test_quadrature_is_named_in_latex():
    w = sp.Symbol("w")
    z = smfsym.normal("z")
    p = smfsym.Problem(sp.log(1 + sp.exp(-w * z)), [w])
    assert "Gauss-Hermite" in sp.latex(p.F)
    assert "truncated at degree 3" in smfsym.smf(p).latex()


def test_export_tex_writes_a_standalone_document(tmp_path):
    p = _problem()
    path = tmp_path / "derivation.tex"
    tex = smfsym.export_tex(p, [smfsym.gradient_flow(p), smfsym.sme(p, order=1), smfsym.smf(p)], path)
    assert path.read_text() == tex
    assert tex.count(r"\begin{align*}") == 4
    assert r"\Sigma(x) &=" in tex and r"\end{document}" in tex
    assert p._repr_latex_().startswith("$$")
