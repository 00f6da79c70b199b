"""Optimizers as update maps (docs/theory.md §10): SGD comes back, and the modified equations of
RMSprop and Adam match the optimizer's one-step moments to O(h^3), checked by an independent route
(a series of E phi(U(z, xi; eta)) in eta against the SDE's generator expansion)."""
import numpy as np
import pytest
import sympy as sp

import smfsym
from smfsym.symbolic.sde import MatrixSqrt
from smfsym.optimizers.update_map import UpdateMap, adam, rmsprop, sgd_map, simulate_update_map

x, y = sp.symbols("x y")
ETA = smfsym.symbolic.models.default_eta()


@pytest.fixture(scope="module")
def quartic():
    return smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2 + x**4 / 20, [x])


@pytest.mark.parametrize("order", [1, 2])
def test_sgd_map_gives_smfsyms_sme_and_smf(regression, order):
    m = sgd_map(regression)
    for mine, ref in ((m.smf(order), smfsym.smf(regression, order)), (m.sme(order), smfsym.sme(regression, order))):
        assert (mine.drift - ref.drift).applyfunc(sp.expand) == sp.zeros(2, 1)
    cov = lambda s: (s.diffusion * s.diffusion.T).applyfunc(sp.expand)  # noqa: E731
    assert cov(m.smf(order)) == cov(smfsym.smf(regression, order))
    assert (m.covariance - regression.sigma).applyfunc(sp.expand) == sp.zeros(2, 2)


def test_rmsprop_increments_are_the_published_ones(quartic):
    """MATH.md §7: A_x = -g/(sqrt v + eps), A_v = c (g^2 - v), B_x = c g (g^2 - v) / (2 sqrt v (sqrt v + eps)^2)."""
    c, eps = sp.Rational(3, 2), sp.Rational(1, 10)
    m = rmsprop(quartic, c=c, eps=eps)
    v = m.state[1]
    g = quartic.grad_f[0]
    want_A = [-g / (sp.sqrt(v) + eps), c * (g**2 - v)]
    want_B = [c * g * (g**2 - v) / (2 * sp.sqrt(v) * (sp.sqrt(v) + eps) ** 2), 0]
    for got, want in zip(list(m.A) + list(m.B), want_A + want_B):
        assert sp.simplify(got - want) == 0


def _optimizer_moment(umap, phi, h, point):
    """E phi(U(z, xi; eta = h)) at a rational state, to O(h^3): sympy's series of the *exact* update
    (not the map's A and B), then the mean over the data of each coefficient."""
    new = {z: u.xreplace({ETA: h}).xreplace(point) for z, u in zip(umap.state, umap.update)}
    ser = sp.series(phi.xreplace(new), h, 0, 3).removeO()
    return [umap.problem.mean(sp.expand(ser.coeff(h, k))) for k in range(3)]


def _sde_moment(sde, phi, h, point):
    """E phi(Z_h) = phi + h b0.grad phi + h^2 (b1.grad phi + C:Hess phi / 2 + L0^2 phi / 2) + O(h^3)
    for dZ = (b0 + h b1) dt + D dW with D D^T = h C, eta = h (the generator's expansion)."""
    state = sde.state
    b = sde.drift.xreplace({sde.eta: h})
    b0, b1 = b.xreplace({h: 0}), sp.diff(b, h).xreplace({h: 0})
    if isinstance(sde.diffusion, MatrixSqrt):
        C = sde.diffusion.sigma * (sde.diffusion.scale.xreplace({sde.eta: h}) ** 2 / h)
    else:
        D = sde.diffusion.xreplace({sde.eta: h})
        C = (D * D.T) / h
    grad = [sp.diff(phi, s) for s in state]
    L0 = lambda f: sum(bi * sp.diff(f, s) for bi, s in zip(b0, state))  # noqa: E731
    n = len(state)
    second = (sum(b1[i] * grad[i] for i in range(n))
              + sum(C[i, j] * sp.diff(grad[i], state[j]) for i in range(n) for j in range(n)) / 2
              + L0(L0(phi)) / 2)
    return [phi.xreplace(point), L0(phi).xreplace(point), second.xreplace(point)]


def _close(a, b):
    return abs(float(sp.N(a - b, 30))) < 1e-20


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
@pytest.mark.parametrize("kind", ["smf", "sme"])
def test_rmsprop_one_step_moments_match_to_order_h3(quartic, kind):
    """Mean and second moments of one step: order 2 agrees at h and h^2, order 1 only at h
    (exact arithmetic at two rational states; the difference would be O(1) if a term were wrong)."""
    h = sp.Symbol("h", positive=True)
    m = rmsprop(quartic, c=sp.Rational(3, 2), eps=sp.Rational(1, 10))
    X, V = m.state
    two, one = getattr(m, kind)(2), getattr(m, kind)(1)
    for point in ({X: sp.Rational(1, 2), V: sp.Rational(9, 4)}, {X: sp.Rational(-3, 2), V: sp.Rational(1, 4)}):
        for phi in (X, V, X**2, X * V, V**2):
            opt = _optimizer_moment(m, phi, h, point)
            sde2, sde1 = _sde_moment(two, phi, h, point), _sde_moment(one, phi, h, point)
            for k in range(3):
                assert _close(opt[k], sde2[k]), (phi, point, k, opt[k], sde2[k])
            assert _close(opt[1], sde1[1])
            if phi in (X, V):  # the order-1 drift misses the h^2 term of the mean
                assert not _close(opt[2], sde1[2])


def test_adam_first_order_increment_is_the_bias_corrected_one(quartic):
    """MATH.md §7: A_x = -(m / (1 - exp(-c1 t))) / (sqrt(v / (1 - exp(-c2 t))) + eps), A_t = 1."""
    c1, c2, eps = 1, 2, sp.Rational(1, 10)
    m = adam(quartic, c1=c1, c2=c2, eps=eps)
    X, M, V, T = m.state
    want = -(M / (1 - sp.exp(-c1 * T))) / (sp.sqrt(V / (1 - sp.exp(-c2 * T))) + eps)
    pt = {X: sp.Rational(1, 2), M: sp.Rational(1, 3), V: 2, T: sp.Rational(1, 2)}
    assert abs(float((m.A[0] - want).xreplace(pt))) < 1e-14
    assert list(m.A[1:]) == [c1 * (quartic.grad_f[0] - M), c2 * (quartic.grad_f[0] ** 2 - V), 1]


def test_adam_exact_step_is_pytorchs(quartic):
    """Audit 16, M1: the map's whole step against a hand-written PyTorch Adam step (beta_i = 1 - c_i eta, bias
    corrections with the step count after the update, s = t / eta + 1 = 6 at t = 1/2, eta = 1/10; eps outside
    the root), exactly: a step count off by one survived every test (they compare models derived from the map)."""
    c1, c2, eps, eta = 1, 2, sp.Rational(1, 10), sp.Rational(1, 10)
    m = adam(quartic, c1=c1, c2=c2, eps=eps)
    X, M, V, T = m.state
    pt = {X: sp.Rational(1, 2), M: sp.Rational(1, 3), V: 2, T: sp.Rational(1, 2), m.eta: eta}
    g = quartic.grad_f[0].xreplace(pt)
    b1, b2, s = 1 - c1 * eta, 1 - c2 * eta, 6
    m_new = b1 * pt[M] + (1 - b1) * g
    v_new = b2 * pt[V] + (1 - b2) * g**2
    x_new = pt[X] - eta * (m_new / (1 - b1**s)) / (sp.sqrt(v_new / (1 - b2**s)) + eps)
    got = [u.xreplace(pt) for u in m.update]
    assert [sp.simplify(a - b) for a, b in zip(got, [x_new, m_new, v_new, pt[T] + eta])] == [0, 0, 0, 0]


def _optimizer_taylor_numeric(umap, phi, point, eps=sp.Rational(1, 10**6)):
    """(c0, c1, c2) of E phi(U(z, xi; eta)) = c0 + c1 eta + c2 eta^2 + O(eta^3), by an independent
    route: the exact update integrated against the normal law with mpmath (50 digits) at
    eta = eps, 2 eps, 3 eps, 4 eps, and a cubic through the four values (error O(eps^2) in c2)."""
    import mpmath

    xi = umap.problem.data[0]
    new = {z: u.xreplace(point) for z, u in zip(umap.state, umap.update)}
    f = sp.lambdify((xi, ETA), phi.xreplace(new), modules="mpmath")
    with mpmath.workdps(50):
        etas = [mpmath.mpf(k) * mpmath.mpf(eps.p) / eps.q for k in (1, 2, 3, 4)]
        vals = [mpmath.quad(lambda s, e=e: f(s, e) * mpmath.npdf(s), [-mpmath.inf, 0, mpmath.inf]) for e in etas]
        coef = mpmath.lu_solve(mpmath.matrix([[e**j for j in range(4)] for e in etas]), mpmath.matrix(vals))
        return [float(coef[j]) for j in range(3)]


@pytest.mark.slow  # a few seconds: the slow tier (CI runs both)
def test_adam_one_step_moments_match_to_order_h3(quartic):
    """Adam with bias correction (state x, m, v, t), at a state with t > 0: the order-2 SMF's one-step
    moments equal Adam's to O(h^3) (and the order-1 drift misses the h^2 term of x's mean)."""
    h = sp.Symbol("h", positive=True)
    m = adam(quartic, c1=1, c2=2, eps=sp.Rational(1, 10))
    X, M, V, T = m.state
    point = {X: sp.Rational(1, 2), M: sp.Rational(1, 3), V: sp.Rational(2), T: sp.Rational(1, 2)}
    two, one = m.smf(2), m.smf(1)
    for phi in (X, M, V, X**2, X * M):
        opt = _optimizer_taylor_numeric(m, phi, point)
        sde = [float(c) for c in _sde_moment(two, phi, h, point)]
        assert np.allclose(opt, sde, rtol=1e-8, atol=1e-9), (phi, opt, sde)
    opt = _optimizer_taylor_numeric(m, X, point)
    assert abs(opt[2] - float(_sde_moment(one, X, h, point)[2])) > 1e-3


def test_update_map_refusals(quartic):
    with pytest.raises(ValueError, match="start with the problem's parameters"):
        UpdateMap(quartic, [y], [y])
    with pytest.raises(ValueError, match="one entry per state"):
        UpdateMap(quartic, [x], [x, x])
    with pytest.raises(ValueError, match="does not reduce"):
        UpdateMap(quartic, [x], [2 * x + ETA])
    with pytest.raises(ValueError, match="neither state"):
        UpdateMap(quartic, [x], [x - ETA * sp.Symbol("q")])
    with pytest.raises(ValueError, match="`expansion`"):
        UpdateMap(quartic, [x], [x - ETA * x], expansion="eta2")
    with pytest.raises(ValueError, match="must start above 0"):
        simulate_update_map(adam(quartic), [1.0, 0.0, 1.0, 0.0], 3, 0.1, n_paths=10)


def test_simulated_rmsprop_equals_a_hand_written_loop(quartic):
    """The compiled optimizer step against a plain numpy RMSprop on the same samples."""
    m = rmsprop(quartic, c=sp.Rational(3, 2), eps=sp.Rational(1, 10))
    res = simulate_update_map(m, [1.0, 0.5], 5, 0.1, n_paths=64, seed=3, save_at=[5])
    # the samples: smfsym draws xi per step from the path block's generator; redraw them the same way
    ss = np.random.SeedSequence(3)
    g = np.random.default_rng(ss.spawn(1)[0])
    xs = np.full(64, 1.0)
    vs = np.full(64, 0.5)
    for _ in range(5):
        xi = g.standard_normal(64)
        grad = xs - xi + xs**3 / 5
        vs = vs + 0.15 * (grad**2 - vs)
        xs = xs - 0.1 * grad / (np.sqrt(vs) + 0.1)
    assert np.allclose(res.states[-1, :, 0], xs, rtol=1e-13, atol=1e-14)
    assert np.allclose(res.states[-1, :, 1], vs, rtol=1e-13, atol=1e-14)


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
def test_a_truncated_noise_expansion_is_checked_on_the_state_not_the_lifted_multipliers():
    """Adam on a logistic loss with a Gauss rule: the SMF's columns are a truncated expansion of the lifted
    problem (frozen data-free subterms). `simulate` checks the captured share of trace Cov A at the start; it
    is computed on the optimizer's state (it crashed on the frozen symbols before), lies in (0, 1], and its
    denominator is trace Cov A(z, xi), checked against Monte Carlo within 5 standard errors."""
    import numpy as np

    from smfsym.optimizers.update_map import adam, _StateExpansion

    x = sp.Symbol("x")
    f, s = smfsym.normal("f", mean=1, std=sp.Rational(1, 2)), smfsym.rademacher("s")
    p = smfsym.Problem(sp.log(1 + sp.exp(-s * f * x)), [x], n_points=12)
    m = adam(p, c1=1, c2=1, eps=sp.Rational(1, 10))
    flow = m.smf(1)
    z = [0.5, 0.1, 0.5, 1.0]
    assert isinstance(flow.chaos, _StateExpansion)
    frac = flow.chaos.captured_fraction(z)
    assert 0.5 < frac <= 1 + 1e-9
    r = smfsym.simulate(flow, z, 0.01, eta=0.01, n_paths=100, seed=0)  # runs its check, then one step
    assert np.isfinite(r.mean()).all()
    # trace Cov A(z, xi) by Monte Carlo
    rng = np.random.default_rng(5)
    fs, ss = rng.normal(1.0, 0.5, 400_000), rng.choice([-1.0, 1.0], 400_000)
    A = sp.lambdify([*m.state, f, s], list(m.A), "numpy")
    cols = [np.broadcast_to(np.asarray(c, dtype=float), fs.shape) for c in A(*z, fs, ss)]
    tr = sum(c.var() for c in cols)
    tr_se = np.sqrt(sum(((c - c.mean()) ** 2).var() for c in cols) / fs.size)
    from smfsym.symbolic.lambdify import compile_exprs

    den = float(np.ravel(compile_exprs([sp.trace(m.covariance)], m.state)(np.array([z]))[0])[0])
    assert abs(den - tr) < 5 * tr_se, (den, tr, tr_se)


def test_an_update_maps_models_have_titles_that_typeset(quartic):
    """A map named with TeX's special characters: its models' titles say what they are and are escaped in
    the LaTeX (an unescaped `_` stopped pdflatex: 'Missing $ inserted')."""
    p = quartic
    x = p.params[0]
    eta = sp.Symbol("eta", positive=True)
    m = UpdateMap(p, [x], [x - eta * p.grad_f[0]], eta=eta, name="my_sgd&co")
    flow = m.smf(1)
    assert flow.title == "my_sgd&co stochastic modified flow, order 1"
    tex = smfsym.export_tex(p, [flow])
    assert r"y\_sgd\&co stochastic modified flow" in tex and "y_sgd" not in tex
    assert rmsprop(p).smf(2).title == "rmsprop stochastic modified flow, order 2"


def test_data_set_noise_of_an_update_map_has_its_covariances():
    """An update map over a data set with a loss not polynomial in the data has template noise (one column per
    row) and no problem's Sigma: its noise_covariance, two_point_covariance and generator raised AttributeError on
    None (audit 6, finding 2). They are h Cov A(z, xi) and h Cov(A(z, xi), A(y, xi)), checked here against the
    covariance of the increments A at the 16 rows, computed with numpy."""
    rng = np.random.default_rng(0)
    rows = np.column_stack([rng.normal(1.0, 0.5, 16), rng.choice([-1.0, 1.0], 16)])
    feat, lab = smfsym.empirical(rows, "f s")
    x, y, w = sp.symbols("x y w")
    umap = smfsym.rmsprop(smfsym.Problem(sp.log(1 + sp.exp(-lab * feat * x)), [x]), c=1, eps=sp.Rational(1, 10))
    flow = umap.smf(2)
    assert flow.noise_kind == "template"
    v = umap.state[1]
    eta = 0.01
    z, zy = {x: 0.3, v: 1.0}, {y: -0.7, w: 2.0}
    increments = sp.lambdify([x, v, feat, lab], list(umap.A), "numpy")

    def rows_of(xv, vv):
        return np.column_stack([np.broadcast_to(a, (16,)) for a in increments(xv, vv, rows[:, 0], rows[:, 1])])

    A, B = rows_of(0.3, 1.0), rows_of(-0.7, 2.0)
    A, B = A - A.mean(0), B - B.mean(0)
    two = flow.two_point_covariance([y, w]).subs({flow.eta: eta, **z, **zy})
    assert np.allclose(np.array(two, dtype=float), eta * A.T @ B / 16, rtol=1e-10, atol=1e-15)
    own = A.T @ A / 16
    cov = flow.noise_covariance().subs({flow.eta: eta, **z})
    assert np.allclose(np.array(cov, dtype=float), eta * own, rtol=1e-10, atol=1e-15)
    # the generator's second-order part is (1/2) tr(a Hess phi): for phi = x^2 it is a_xx
    gen = flow.generator(x**2) - (flow.drift.T * sp.Matrix([2 * x, 0]))[0, 0]
    assert float(gen.subs({flow.eta: eta, **z})) == pytest.approx(eta * own[0, 0], rel=1e-10)
    # and a substituted copy keeps its source
    assert np.allclose(np.array(flow.subs({flow.eta: eta}).noise_covariance().subs(z), dtype=float), eta * own,
                       rtol=1e-10, atol=1e-15)
