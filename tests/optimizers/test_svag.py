"""SVAG (Li, Malladi, Arora 2021) for any update map: its weights, its one-step moments (mean h a / l,
covariance h^2 S / l, the SME's per unit time), and its weak convergence to the order-1 SME like 1/l."""
import numpy as np
import pytest
import sympy as sp

import smfsym
from smfsym.optimizers.svag import simulate_svag, svag_weights
from smfsym.optimizers.update_map import adam, rmsprop
from smfsym.studies.common import fit_order

x = sp.Symbol("x")
QUIET = smfsym.RunOptions(progress=False)


@pytest.fixture(scope="module")
def quad():
    return smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x])


@pytest.mark.parametrize("l", [1, 2, 7, 100])
def test_weights_keep_the_mean_and_amplify_the_variance_l_times(l):
    wp, wm = svag_weights(l)
    assert abs(wp + wm - 1) < 1e-12 and abs(wp**2 + wm**2 - l) < 1e-9 * l


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
def test_svag_of_sgd_tends_to_the_sme_like_one_over_l(quad):
    """SGD on (x - xi)^2 / 2, xi ~ N(0, 1), eta = 1/2, x0 = 1: its SME1 is dX = -X dt + sqrt(eta) dW, so
    E X_1 = e^{-1} exactly. SVAG's mean is (1 - eta/l)^{l/eta} = e^{-1} (1 - eta / (2 l) + O(l^-2)):
    errors about 0.046, 0.024, 0.012, 0.006 at l = 2, 4, 8, 16 against a standard error of 7.5e-4
    (400,000 paths). Each error is resolved (> 5 SE) and within 5 SE of the exact discrete value, and
    the fitted slope of log|error| against log(1/l) is 1 within its 95% interval (or 0.15 of it)."""
    eta, errs, ses = 0.5, [], []
    ls = [2, 4, 8, 16]
    for l in ls:
        r = simulate_svag(quad, l, [1.0], 1.0, eta, n_paths=400_000, seed=l, options=QUIET,
                          save_at=smfsym.SaveAt(functions={"x": lambda Z: Z[:, 0]}, store=False))
        err, se = float(r.mean("x")[-1]) - np.exp(-1), float(r.sem("x")[-1])
        exact = (1 - eta / l) ** (l / eta) - np.exp(-1)
        assert abs(err) > 5 * se and abs(err - exact) < 5 * se, (l, err, exact, se)
        errs.append(err)
        ses.append(se)
    fit = fit_order([1 / l for l in ls], errs, ses)
    assert fit.n_used == 4 and abs(fit[0] - 1) < 0.15 and fit[2] < 2, fit  # and order 2 excluded


def test_one_svag_step_of_rmsprop_has_the_smes_moments(quad):
    """One step from z0 = (x, v) = (1, 1/2): mean (h / l) a(z0) and covariance (h^2 / l) S(z0) with the map's
    own a and S (RMSprop, c = 1, eps = 1/10, eta = 1/4, l = 8, 200,000 paths; 5 standard errors; the
    variance's SE from the fourth moment)."""
    m = rmsprop(quad, c=1, eps=sp.Rational(1, 10))
    eta, l = 0.25, 8
    z0 = {m.state[0]: 1, m.state[1]: sp.Rational(1, 2)}
    a = np.array([float(e.xreplace(z0)) for e in m.a])
    S = np.array(m.covariance.xreplace(z0).evalf(), dtype=float)
    r = simulate_svag(m, l, [1.0, 0.5], eta / l, eta, n_paths=200_000, seed=3, options=QUIET)
    D = r.states[-1] - np.array([1.0, 0.5])
    n = D.shape[0]
    mean_se = D.std(axis=0) / np.sqrt(n)
    assert np.all(np.abs(D.mean(axis=0) - eta / l * a) < 5 * mean_se)
    C = (D - D.mean(axis=0)).T @ (D - D.mean(axis=0)) / n
    for i in range(2):
        for j in range(2):
            prod = (D[:, i] - D[:, i].mean()) * (D[:, j] - D[:, j].mean())
            assert abs(C[i, j] - eta**2 / l * S[i, j]) < 5 * prod.std() / np.sqrt(n), (i, j, C, S)


def test_time_inputs_and_refusals(quad):
    m = adam(quad)
    z0 = np.array([1.0, 0.0, 1.0, 0.5])
    r = simulate_svag(m, 2, z0, 0.5, 0.25, n_paths=100, seed=0, save_at=[0, 2, 4], options=QUIET)
    assert np.allclose(r.t, [0.0, 0.25, 0.5]) and np.allclose(r.states[-1][:, 3], 1.0)
    assert np.array_equal(z0, [1.0, 0.0, 1.0, 0.5])
    again = simulate_svag(m, 2, z0, 0.5, 0.25, n_paths=100, seed=0, save_at=[0, 2, 4], options=QUIET)
    assert np.array_equal(r.states, again.states)
    with pytest.raises(TypeError, match="`umap_or_problem`"):
        simulate_svag("sgd", 2, [1.0], 1.0, 0.5)
    with pytest.raises(ValueError, match="`l`"):
        simulate_svag(quad, 0, [1.0], 1.0, 0.5)
    with pytest.raises(ValueError, match="`t_end` must be a multiple"):
        simulate_svag(quad, 2, [1.0], 0.3, 0.5)
    with pytest.raises(ValueError, match="`z0`.*above 0"):
        simulate_svag(m, 2, [1.0, 0.0, 1.0, 0.0], 0.5, 0.25)
    with pytest.raises(ValueError, match="`save_at`"):
        simulate_svag(quad, 2, [1.0], 1.0, 0.5, save_at=[9])
    with pytest.raises(smfsym.BlowUpError, match=r"non-finite state at step \d+ .* of the paths"):
        simulate_svag(quad, 1, [1.0], 1200.0, 3.0, n_paths=16, seed=0, options=QUIET)


def test_svag_reports_rmsprops_v_pushed_below_zero(quad):
    """SVAG's negative weight w_- can drive RMSprop's v below 0 (as the SME's noise can): a blow-up that names
    the cause, never NaN in the result; masked, the lost fraction is counted (about 1e-3 here)."""
    m = rmsprop(quad, c=1)
    with pytest.raises(smfsym.BlowUpError, match="SVAG of rmsprop with l = 4.*below 0"):
        simulate_svag(m, 4, [1.0, 1.0], 0.5, 0.125, n_paths=20_000, seed=0, options=QUIET)
    r = simulate_svag(m, 4, [1.0, 1.0], 0.5, 0.125, n_paths=20_000, seed=0,
                      options=smfsym.RunOptions(progress=False, on_nonfinite="mask"))
    assert 0 < r.lost_fraction < 0.01 and np.all(np.isfinite(r.mean()))


def test_svag_study_finds_order_one_against_the_smes_monte_carlo_value(quad):
    """svag_study with its own reference (the SME's E X_1 by coupled Richardson, 200,000 paths) on the case
    above: the reference agrees with e^{-1} within 5 SE, every error is resolved and the fitted order in 1/l
    is 1 within its interval (or 0.2 of it); a given exact reference gives the same errors shifted by the
    difference."""
    from smfsym.studies.svag_study import SvagStudy, svag_study

    st = svag_study(quad, x, [1.0], 1.0, 0.5, ls=[2, 4, 8], n_paths=200_000, seed=7, options=QUIET)
    assert isinstance(st, SvagStudy) and st.meta["reference"].startswith("sme1")
    ref, ref_se = st.rows[0]["sme"], st.rows[0]["sme_se"]
    assert abs(ref - np.exp(-1)) < 5 * ref_se
    o = st.order
    assert o.n_used == 3 and abs(o.slope - 1) < 0.2 and o.high < 2, o  # and order 2 excluded
    exact = svag_study(quad, x, [1.0], 1.0, 0.5, ls=[2, 4, 8], reference=(float(np.exp(-1)), 0.0),
                       n_paths=200_000, seed=7, options=QUIET)
    assert [r["value"] for r in exact.rows] == [r["value"] for r in st.rows] and exact.meta["reference"] == "given"
    with pytest.raises(ValueError, match="`ls` must hold at least two"):
        svag_study(quad, x, [1.0], 1.0, 0.5, ls=[2, 2])
    with pytest.raises(ValueError, match="`phi` must be an expression in the state"):
        svag_study(quad, x + sp.Symbol("q"), [1.0], 1.0, 0.5)


@pytest.mark.parametrize("reference,exc,match", [
    ((float("nan"), 0.0), ValueError, "`reference` value (the SME's E phi) must be finite; got nan"),
    ((float("inf"), 0.0), ValueError, "`reference` value"),
    ((1.0, -1.0), ValueError, "`reference` se must be finite and >= 0 (0 for an exact value); got -1.0"),
    ((1.0, float("nan")), ValueError, "`reference` se"),
    ((1.0,), TypeError, "`reference` must be a pair (value, se)"),
    ("1.0", TypeError, "`reference` must be a pair"),
    ((True, 0.0), TypeError, "its value is True"),
])
def test_svag_study_refuses_a_bad_reference(quad, reference, exc, match):
    """audit 3 (12): reference=(nan, 0) made every row's sme and error NaN; a negative se was accepted."""
    from smfsym.studies.svag_study import svag_study
    with pytest.raises(exc) as info:
        svag_study(quad, x, [1.0], 1.0, 0.5, ls=[2, 4], reference=reference, n_paths=100, options=QUIET)
    assert match in str(info.value), str(info.value)
