import re

import numpy as np
import pytest
import sympy as sp

import smfsym
from smfsym.symbolic.latex import derivation_latex, latex_names


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


def test_export_tex_refuses_bad_arguments_naming_them(tmp_path):
    """audit 3 (11): AttributeError / IsADirectoryError tracebacks before; (12): a file was overwritten silently."""
    p = _problem()
    sme = smfsym.sme(p, order=1)
    cases = [
        (lambda: smfsym.export_tex("loss", []), TypeError, "`problem` must be a smfsym.Problem; got str"),
        (lambda: smfsym.export_tex(p, [1, "x"]), TypeError, "`sdes` must hold smfsym SDEs (e.g. smfsym.sme(p)); "
                                                           "got entries 0: int, 1: str"),
        (lambda: smfsym.export_tex(p, sme), TypeError, "`sdes` must be a list of smfsym SDEs"),
        (lambda: smfsym.export_tex(p, "sme"), TypeError, "`sdes` must be a list"),
        (lambda: smfsym.export_tex(p, [sme], tmp_path), IsADirectoryError, "is a directory; give the path of a file"),
        (lambda: smfsym.export_tex(p, [sme], 3), TypeError, "`path` must be a file path"),
        (lambda: smfsym.export_tex(p, [sme], tmp_path / "no" / "d.tex"), FileNotFoundError, "does not exist"),
        (lambda: smfsym.export_tex(p, [sme], tmp_path / "d.tex", overwrite=1), TypeError, "`overwrite`"),
    ]
    for call, exc, text in cases:
        with pytest.raises(exc) as info:
            call()
        assert text in str(info.value), str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_export_tex_does_not_overwrite_without_overwrite_true(tmp_path):
    p = _problem()
    path = tmp_path / "existing.tex"
    path.write_text("precious")
    with pytest.raises(FileExistsError, match="exists; pass overwrite=True to replace it"):
        smfsym.export_tex(p, [smfsym.sme(p, order=1)], path)
    assert path.read_text() == "precious"
    tex = smfsym.export_tex(p, [smfsym.sme(p, order=1)], str(path), overwrite=True)
    assert path.read_text() == tex
    assert [f.name for f in tmp_path.iterdir()] == ["existing.tex"]  # no temporary left behind


def test_export_tex_writes_a_standalone_document(tmp_path):
    p = _problem()
    path = tmp_path / "derivation.tex"
    tex = smfsym.export_tex(p, [smfsym.gradient_flow(p), smfsym.sme(p, order=1), smfsym.smf(p)], path)
    assert path.read_text() == tex
    assert tex.count(r"\begin{align*}") == 4
    assert r"\Sigma(x) &=" in tex and r"\end{document}" in tex
    assert p._repr_latex_().startswith("$$")


@pytest.mark.parametrize("batch_size, sampling", [(1, "iid"), (4, "iid"), (2, "without_replacement")])
def test_smf_noise_note_states_the_columns_own_factor(batch_size, sampling):
    """Audit 8, finding 2: the note read sigma_k = -sqrt(eta) grad f_k whatever B; the columns are
    -sqrt(eta / B) grad f_k (times sqrt((M - B)/(M - 1)) without replacement). The factor printed is the ratio
    of the derived column to -grad f_k."""
    x = sp.Symbol("x")
    if sampling == "iid":
        a = smfsym.normal("a")
    else:
        (a,) = smfsym.empirical(np.array([[0.0], [1.0], [3.0], [5.0]]), "a")
    problem = smfsym.Problem((x - a) ** 2 / 2, [x], batch_size=batch_size, sampling=sampling)
    flow = smfsym.smf(problem, order=1)
    column = flow.diffusion[0, 0]
    grad_f1 = problem.chaos().columns[0, 0]
    scale = sp.simplify(-column / grad_f1)
    note = [line for line in flow.latex().splitlines() if "noise columns" in line]
    assert len(note) == 1
    assert r"\sigma_k = -" + sp.latex(sp.sqrt(flow.eta * problem.batch_factor)) + r"\," in note[0], note[0]
    eta = {flow.eta: 0.3}
    assert float(scale.subs(eta)) == pytest.approx(float(sp.sqrt(flow.eta * problem.batch_factor).subs(eta)), rel=1e-12)


def test_a_law_parameter_prints_as_the_loss_symbols_do():
    """Audit 8, finding 5: a multi-letter law parameter went to sympy's default, `rate` as the product r a t e."""
    x, rate = sp.Symbol("x"), sp.Symbol("rate", positive=True)
    tex = smfsym.Problem((x - smfsym.exponential("z", rate)) ** 2 / 2, [x]).latex()
    assert r"\mathrm{Exp}\left(\mathrm{rate}\right)" in tex and r"\frac{1}{\mathrm{rate}^{2}}" in tex
    assert "rate" not in tex.replace(r"\mathrm{rate}", "")


def test_no_two_symbols_of_a_derivation_print_alike():
    """Audit 8, finding 4: `lam` (abbreviation) and `lamda` (sympy's Greek) both printed \\lambda; a constant `lr`
    printed \\eta, the learning rate's letter."""
    x, lam, lamda, lr = sp.symbols("x lam lamda lr")
    p = smfsym.Problem((x - smfsym.normal("z")) ** 2 / 2 + lam * x + lamda * x ** 2 + lr * x ** 3, [x],
                       constants=[lam, lamda, lr])
    tex = derivation_latex(p, [smfsym.sme(p, order=1)])
    assert r"f(x, \xi) &= \mathrm{lam} x + \lambda x^{2} + \mathrm{lr} x^{3} + " in tex, tex
    eta = sp.Symbol("eta", positive=True)
    names = latex_names([lam, lamda, lr, eta])
    shown = [names.get(s) or sp.latex(s) for s in (lam, lamda, lr, eta)]
    assert len(set(shown)) == 4, shown


@pytest.mark.parametrize("role", ["constant", "param", "law parameter"])
@pytest.mark.parametrize("name", ["eta", "t"])
def test_a_loss_may_not_name_a_symbol_as_the_models_learning_rate_or_time(role, name):
    """A constant `eta` printed and compiled as the learning rate (two symbols named eta: one letter in the
    LaTeX, one argument name in generated code); the TOML spec refused it, the Python API did not."""
    x, s = sp.Symbol("x"), sp.Symbol(name, positive=True)
    with pytest.raises(ValueError, match=rf"`loss`: the name\(s\) \['{name}'\] are the models' own"):
        if role == "constant":
            smfsym.Problem((x - smfsym.normal("z")) ** 2 / 2 + s * x, [x], constants=[s])
        elif role == "param":
            smfsym.Problem((x - smfsym.normal("z")) ** 2 / 2 + s ** 2, [x, s])
        else:
            smfsym.Problem((x - smfsym.exponential("z", s)) ** 2 / 2, [x])


def test_a_weighted_data_set_does_not_print_as_the_uniform_one():
    """Audit 8, finding 6: weights change F and Sigma, yet a weighted data set printed as the uniform one."""
    rows = np.array([[0.0, 1.0], [2.0, -1.0], [1.0, 1.0]])
    x = sp.Symbol("x")
    z, y = smfsym.empirical(rows, "z y", weights=[1, 2, 1])
    weighted = smfsym.Problem((x * z - y) ** 2 / 2, [x])
    z, y = smfsym.empirical(rows, "z y")
    uniform = smfsym.Problem((x * z - y) ** 2 / 2, [x])
    assert r"\hat\nu^{w}_{3}" in weighted.latex() and "weights from 0.25 to 0.5" in weighted.latex()
    assert r"\hat\nu_{3}" in uniform.latex() and "weights" not in uniform.latex()
    assert "weights from 0.25 to 0.5" in repr(weighted.laws[0]) and "weights" not in repr(uniform.laws[0])


def test_the_parameter_vector_is_defined_and_the_gamma_law_names_its_parameters():
    """Audit 8, findings 7 and 8: with parameters w0, w1 the problem's lines used x undefined, a 1-d SDE printed
    `x = x`, and Gamma(3, 2) did not say shape-scale (its mean is 6, not 3/2)."""
    w0, w1, x = sp.symbols("w0 w1 x")
    two = smfsym.Problem((w0 * smfsym.normal("a") + w1 - smfsym.normal("y")) ** 2 / 2, [w0, w1])
    assert r"x &= \left(w_{0}, w_{1}\right)" in two.latex()
    one = smfsym.Problem((x - smfsym.gamma("g", 3, 2)) ** 2 / 2, [x])
    tex = derivation_latex(one, [smfsym.sme(one, order=1)])
    assert r"x &= x" not in tex and r"g \sim \Gamma\left(k = 3,\ \theta = 2\right)" in tex
    assert r"- 6 x" in tex  # F = x^2/2 - E[g] x + E[g^2]/2 with E[g] = k theta = 6
    shape = sp.Symbol("shape", positive=True)
    assert r"\Gamma\left(k = \mathrm{shape},\ \theta = 2\right)" in smfsym.Problem(
        (x - smfsym.gamma("g", shape, 2)) ** 2 / 2, [x]).latex()


def test_symbols_that_sympy_prints_alike_are_told_apart():
    """Audit 12, F2: x1 and x_1 both printed x_{1}; a constant m_1 read as a mean's label m_1(x); a data symbol
    named eta printed as the learning rate."""
    x1, x_1 = sp.symbols("x1 x_1")
    tex = smfsym.Problem((x1 - 2 * x_1 - smfsym.normal("z")) ** 2 / 2, [x1, x_1]).latex()
    assert r"x &= \left(x_{1}, \mathrm{x\_1}\right)" in tex
    x, m1 = sp.symbols("x m_1")
    tex = smfsym.Problem(sp.log(1 + sp.exp(-smfsym.normal("a") * x * m1)), [x], constants=[m1]).latex()
    assert r"\bar{m}_{1}(x) &= " in tex and r"m_{1}(x)" not in tex.replace(r"\bar{m}_{1}(x)", "")
    p = smfsym.Problem((x - smfsym.normal("eta")) ** 2 / 2, [x])
    doc = derivation_latex(p, [smfsym.sme(p, order=1)])
    assert r"\mathrm{eta} \sim" in doc and r"\sqrt{\eta}" in doc


def test_a_component_named_x_makes_the_parameter_vector_bold():
    """Audit 12, F8: with parameters (x, y) the problem read `x = (x, y)` and F(x) = x^4/4 + y^2/2, the vector
    and its first component alike; the vector is bold then, in the problem, the SDEs and the data means."""
    x, y = sp.symbols("x y", real=True)
    xi = smfsym.normal("xi")
    problem = smfsym.Problem((x ** 2 - 1) ** 2 / 4 + y ** 2 / 2 - xi * x * y, [x, y])
    tex = derivation_latex(problem, [smfsym.sme(problem, order=1), smfsym.smf(problem, order=2)])
    assert r"\boldsymbol{x} &= \left(x, y\right)" in tex and r"F(\boldsymbol{x}) &= " in tex
    assert r"f(\boldsymbol{x}, \xi)" in tex and r"\Sigma(\boldsymbol{x}) &= " in tex
    assert r"|\nabla F|^2\right)(\boldsymbol{x})" in tex and r"\sigma_{1}(\boldsymbol{x})" in tex
    assert not re.search(r"(?<![\\{])\bx &= |[FbΣ]\(x\)|\\Sigma\(x\)", tex)
    # one parameter named x is the vector itself: nothing changes
    one = smfsym.Problem((x - xi) ** 2 / 2, [x])
    assert r"\boldsymbol" not in derivation_latex(one, [smfsym.sme(one, order=2)])
    # a data mean's label is a function of the bold vector too
    w = smfsym.normal("w")
    logistic = smfsym.Problem(sp.log(1 + sp.exp(-w * (x + y))), [x, y])
    assert r"m_{1}(\boldsymbol{x})" in logistic.latex()
    # audit 17, F3: the compact forms name the vector as the lines do (they wrote a plain x for it)
    a = smfsym.normal("a", 2)
    reg = derivation_latex(smfsym.Problem((a[0] * x + a[1] * y - xi) ** 2 / 2, [x, y]), [])
    assert r"\nabla F(\boldsymbol{x}) &= \boldsymbol{x}" in reg
    assert r"\left(|\boldsymbol{x}|^2 + 1\right) I_{2} + \boldsymbol{x} \boldsymbol{x}^{\top}" in reg
    # audit 17, F4: each section decides for its own vector: a 1-d problem stays x, its momentum model's (x, p_x)
    # is bold
    from smfsym.optimizers import momentum_model
    tex = derivation_latex(one, [momentum_model(one, "smf", 1)])
    assert r"F(x) &= " in tex and r"\boldsymbol{x} &= x" not in tex
    assert r"\boldsymbol{x} &= \left(x, p_{x}\right)" in tex and r"b(\boldsymbol{x}) &= " in tex
    # audit 17, F5: a data variable named x (a parameter y): x = y beside x ~ N(0, 1) read alike
    z = smfsym.normal("x")
    tex = smfsym.Problem((y - z) ** 2 / 2, [y]).latex()
    assert r"\boldsymbol{x} &= y" in tex and r"x \sim \mathcal{N}" in tex


def test_data_set_noise_lines_show_the_models_own_columns():
    """Audit 17 (older): a scheduled or momentum SMF on a data set, and an update map's, printed the problem's
    columns sqrt(w_i)(grad F - grad f(x, xi_i)) whatever they were; they print the lift L (a schedule's u(t) and
    time row) or the column c(x, xi) itself (an update map's; the noise-corrected momentum SMF's)."""
    from smfsym.optimizers import Schedule, TIME, scheduled_model

    z, = smfsym.empirical(np.array([[0.5], [1.5], [-1.0]]), "z")
    x = sp.Symbol("x")
    p = smfsym.Problem(sp.log(1 + sp.exp(-z * x)), [x])
    plain = smfsym.smf(p, order=1).latex()
    assert r"\sigma_i(x) &= \sqrt{\eta}\sqrt{w_i}\,\big(\nabla F(x) - \nabla f(x, \xi_i)\big)" in plain
    sched = scheduled_model(p, Schedule(1 / (1 + TIME)), "smf", order=1).latex()
    assert r"\sqrt{w_i}\,L\big(\nabla F(\boldsymbol{x})" in sched
    assert r"L(\boldsymbol{x}) &= \begin{pmatrix}\frac{1}{t + 1}\\0\end{pmatrix}" in sched
    rms = smfsym.rmsprop(p).smf(order=1).latex()
    assert r"\sqrt{w_i}\,c(\boldsymbol{x}, \xi_i)" in rms and r"c(\boldsymbol{x}, \xi) &= " in rms
    assert r"\nabla f(" not in rms
