"""Mean field, symbolic side (issue 8): hand derivations, Parseval, order 2 at N = 1, LaTeX, bad input."""
import numpy as np
import pytest
import sympy as sp

import smfsym
from smfsym.symbolic.models import modified_drift

a, w, out = sp.symbols("a w out")
s = sp.Symbol("s", positive=True)


def quadratic_net():
    # quadratic unit, square loss, Gaussian input and label noise: y = z + eps
    z = smfsym.normal("z")
    eps = smfsym.normal("eps", std=s)
    return smfsym.MeanFieldProblem(a * w * z, (a, w), out, (out - z - eps) ** 2 / 2), z, eps


def test_polynomial_case_matches_hand_derivation():
    net, z, eps = quadratic_net()
    (m,) = net.order_parameters
    assert net.order_parameters[m] == a * w  # Phi_mu(z) = m z, m = <a w, mu>
    assert sp.simplify(net.output_expr - m * z) == 0
    assert sp.simplify(net.first_variation - (m * z - z - eps) * a * w * z) == 0
    # V = E[(m z - z - eps) a w z] = (m - 1) a w
    assert sp.simplify(net.V - (m - 1) * a * w) == 0
    assert sp.simplify(net.drift - sp.Matrix([-(m - 1) * w, -(m - 1) * a])) == sp.zeros(2, 1)
    # noise grad(V - v) = (w, a) [(m - 1)(1 - z^2) + eps z]
    hand = sp.Matrix([w, a]) * ((m - 1) * (1 - z**2) + eps * z)
    assert sp.simplify(net.noise - hand) == sp.zeros(2, 1)
    # Cov = (w, a)(w, a)^T [2 (m - 1)^2 + s^2]
    cov = sp.Matrix([w, a]) * sp.Matrix([[w, a]]) * (2 * (m - 1) ** 2 + s**2)
    assert sp.simplify(net.noise_covariance - cov) == sp.zeros(2, 2)


def test_parseval_of_the_noise():
    net, z, eps = quadratic_net()
    ce = net.frozen_problem().chaos()
    assert ce.exact
    assert sp.simplify(ce.columns * ce.columns.T - net.noise_covariance) == sp.zeros(2, 2)
    # and numerically against a Monte Carlo covariance of the noise coefficient at a point
    pt = {a: 0.7, w: -1.3, list(net.order_parameters)[0]: 0.4, s: 0.5}
    rng = np.random.default_rng(0)
    zz, ee = rng.standard_normal(400_000), 0.5 * rng.standard_normal(400_000)
    f = sp.lambdify([z, eps], list(net.noise.xreplace(pt)))
    g = np.array([np.broadcast_to(c, zz.shape) for c in f(zz, ee)])
    C = np.array(net.noise_covariance.xreplace(pt), dtype=float)
    mc, se = (g[:, None] * g[None]).mean(-1), (g[:, None] * g[None]).std(-1) / np.sqrt(zz.size)
    assert np.all(np.abs(mc - C) < 5 * se)  # 5 standard errors of the Monte Carlo mean


def test_order2_drift_reduces_to_the_finite_dimensional_one_at_N1():
    net, z, eps = quadratic_net()
    eta = sp.Symbol("eta", positive=True)
    single = {mm: c for mm, c in net.order_parameters.items()}
    dirs = {nn: e.xreplace(single) for nn, e in net.output_direction_parameters().items()}
    mf2 = net.order2_drift(eta).xreplace(dirs).xreplace(single)
    fd2 = modified_drift(net.single_neuron_problem(), 2, eta)
    assert sp.simplify(mf2 - fd2) == sp.zeros(2, 1)
    assert sp.simplify(net.drift.xreplace(single) + net.single_neuron_problem().grad_F) == sp.zeros(2, 1)


def test_latex_shows_the_output_as_an_integral_and_order_2():
    net, _, _ = quadratic_net()
    tex = net.latex()
    assert tex.startswith(r"\begin{aligned}") and tex.endswith(r"\end{aligned}")
    assert r"\mu_t(\mathrm{d}\vartheta)" in tex and r"DG\,G" in tex and r"W(\mathrm{d}\xi, \mathrm{d}t)" in tex
    z = smfsym.normal("z", 2)
    tanh_net = smfsym.MeanFieldProblem(a * sp.tanh(w * z[0]), (a, w), out, (out - sp.tanh(z[0] + z[1])) ** 2 / 2)
    assert not tanh_net.is_polynomial
    assert r"\Phi{\left(z_{0} \right)} &= \int" in tanh_net.latex()


def test_bad_input_names_the_argument():
    z = smfsym.normal("z")
    with pytest.raises(ValueError, match="`unit` must depend on the unit parameters"):
        smfsym.MeanFieldProblem(sp.tanh(z), (a, w), out, (out - z) ** 2)
    with pytest.raises(ValueError, match="`loss` must contain the output symbol"):
        smfsym.MeanFieldProblem(a * sp.tanh(w * z), (a, w), out, (a - z) ** 2)
    with pytest.raises(ValueError, match="`loss` must depend on the parameters only through the output"):
        smfsym.MeanFieldProblem(a * sp.tanh(w * z), (a, w), out, (out - a * z) ** 2)
    with pytest.raises(ValueError, match="`unit` contains symbols"):
        smfsym.MeanFieldProblem(a * sp.tanh(w * z) + sp.Symbol("c"), (a, w), out, (out - z) ** 2)
    with pytest.raises(TypeError, match="`output` must be a plain sympy Symbol"):
        smfsym.MeanFieldProblem(a * sp.tanh(w * z), (a, w), "out", (out - z) ** 2)
    with pytest.raises(ValueError, match="`unit` must depend on input data symbols"):
        smfsym.MeanFieldProblem(a * w, (a, w), out, (out - z) ** 2)
    with pytest.raises(TypeError, match="`unit` must be a sympy expression, not a string"):
        smfsym.MeanFieldProblem("a*tanh(w*z)", (a, w), out, (out - z) ** 2)
    with pytest.raises(TypeError, match="`loss` must be a scalar sympy expression"):
        smfsym.MeanFieldProblem(a * sp.tanh(w * z), (a, w), out, sp.Matrix([out]))
    with pytest.raises(ValueError, match="`batch_size` must be a positive integer"):
        smfsym.MeanFieldProblem(a * sp.tanh(w * z), (a, w), out, (out - z) ** 2, batch_size=0)


def test_latex_labels_each_data_mean_once_with_its_rule():
    """Audit 11, F14: the teacher network's LaTeX wrote every numeric mean in full with its rule as a superscript,
    the rule's name 15 times in one formula and means nested inside means. Each mean is now a label m_k defined
    once, with its rule, and a mean inside a mean's integrand is a label too."""
    from pathlib import Path

    from smfsym.spec import load_spec

    net = load_spec(Path(smfsym.__file__).parent / "specs" / "meanfield_teacher.toml").meanfield
    tex = net.latex()
    definitions = [line for line in tex.splitlines() if line.startswith("m_{")]
    assert len(definitions) >= 3 and all("Gauss-Hermite" in line for line in definitions)
    assert tex.count("Gauss-Hermite") == len(definitions)  # the rule once per mean, never inside a formula
    assert r"\mathbb{E}^{" not in tex and "m_{1}" in tex.split("m_{1} &=")[0]  # used above its definition
