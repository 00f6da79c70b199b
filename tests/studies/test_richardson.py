"""Coupled Richardson extrapolation of the solvers' weak error (smfsym/studies/richardson.py, docs/theory.md §9)."""
import numpy as np
import pytest
import sympy as sp

import smfsym
from smfsym.numerics.solvers import get_solver
from smfsym.studies.common import fit_order
from smfsym.studies.richardson import coupled_expectation, coupled_run

x = sp.Symbol("x")
QUIET = smfsym.RunOptions(progress=False)


def _gf():
    return smfsym.gradient_flow(smfsym.Problem((x - smfsym.normal("z")) ** 2 / 2, [x]))


@pytest.mark.parametrize("scheme, p", [("euler", 1), ("weak2", 2)])
def test_extrapolation_raises_the_order_by_one_on_an_ode(scheme, p):
    """dx = -x dt, x(0) = 1: the dt/2 value has error O(dt^p), the extrapolation O(dt^(p+1)) (fitted slopes)."""
    dts = [0.2, 0.1, 0.05, 0.025]
    fine, extra = [], []
    for dt in dts:
        r = coupled_expectation(_gf(), [1.0], 1.0, eta=0.1, dt=dt, n_paths=1, solver=get_solver(scheme),
                                phi=lambda X: X[:, 0], seed=0, options=QUIET)
        fine.append(r["fine"] - np.exp(-1.0))
        extra.append(r["value"] - np.exp(-1.0))
        assert r["se"] == 0 and r["correction"] == pytest.approx(r["value"] - r["fine"])
    assert fit_order(dts, fine)[0] == pytest.approx(p, abs=0.1)
    assert fit_order(dts, extra)[0] == pytest.approx(p + 1, abs=0.15)


def _euler_second_moment(n, h, eta, s2, x0):
    m2 = x0**2
    for _ in range(n):
        m2 = (1 - h) ** 2 * m2 + eta * s2 * h
    return m2


@pytest.mark.parametrize("increments", ["gaussian", "discrete"])
def test_extrapolated_second_moment_of_an_ou_process(increments):
    """SME1 of (x - z)^2/2, z ~ N(0, 1): dX = -X dt + sqrt(eta) dW, E X_1^2 known in closed form.

    At dt = 0.25 (fine 0.125) Euler's own bias is known exactly from its moment recursion; it is
    over 10 standard errors, and the coupled extrapolation removes it: the extrapolated value
    agrees with the exact E X_1^2 within 5 standard errors (stated tolerance). The coupling keeps
    the standard error near the fine run's (independent runs would multiply it by sqrt(5)).
    """
    eta, x0, n_paths = 0.5, 3.0, 100_000
    sde = smfsym.sme(smfsym.Problem((x - smfsym.normal("z")) ** 2 / 2, [x]), order=1)
    exact = x0**2 * np.exp(-2.0) + eta * (1 - np.exp(-2.0)) / 2
    r = coupled_expectation(sde, [x0], 1.0, eta=eta, dt=0.25, n_paths=n_paths, solver=get_solver("euler"),
                            phi=lambda X: X[:, 0] ** 2, seed=11, increments=increments, options=QUIET)
    fine_bias = _euler_second_moment(8, 0.125, eta, 1.0, x0) - exact
    # what the extrapolation leaves (O(dt^2), from the same recursions) is below one standard error
    left = 2 * _euler_second_moment(8, 0.125, eta, 1.0, x0) - _euler_second_moment(4, 0.25, eta, 1.0, x0) - exact
    assert abs(left) < r["se"]
    assert abs(fine_bias) > 10 * r["fine_se"]
    assert abs(r["fine"] - (exact + fine_bias)) < 5 * r["fine_se"]  # the fine run is Euler at dt = 0.125
    assert abs(r["value"] - exact) < 5 * r["se"]
    assert r["se"] < 1.3 * r["fine_se"]
    assert r["lost"] == 0


def test_discrete_increments_keep_the_error_constant_of_the_coarse_step():
    """Audit 15, F1: dX = dW, phi = x^4, E phi(X_1) = 3. With +-1 increments Euler gives 3 - 2h at step h
    (E Z^4 = 1), and the coarse step's scaled sum of two (E Z^4 = 2) gives 3 - h at h: fine (dt/2) and coarse
    (dt) both read 3 - dt and so did the extrapolation, 2.75 at dt = 0.25 (11 standard errors off). Coupled
    runs draw three-point increments, whose scaled sums have E Z^4 = 3 too: Euler is then exact on this SDE.
    Tolerance: 5 standard errors of each mean."""
    bm = smfsym.SDE([0], [[1]], state=[x])
    dt = 0.25
    r = coupled_expectation(bm, [0.0], 1.0, eta=0.1, dt=dt, n_paths=200_000, solver=get_solver("euler"),
                            phi=lambda X: X[:, 0] ** 4, seed=3, increments="discrete", options=QUIET)
    assert abs(r["value"] - 3.0) < 5 * r["se"] and r["se"] < 0.05, (r["value"], r["se"])
    assert abs(r["fine"] - 3.0) < 5 * r["fine_se"]
    # one coarse step: both states are sqrt(dt/2) (z1 + z2) with three-point z (0, +-sqrt 3, +-2 sqrt 3), not +-1
    one = coupled_run(bm, [0.0], dt, eta=0.1, dt=dt, n_paths=2000, solver=get_solver("euler"), seed=3,
                      increments="discrete", save_at=smfsym.SaveAt(store=True), options=QUIET).states[-1]
    assert np.allclose(one[:, 0], one[:, 1])
    seen = np.unique(np.round(one[:, 1, 0] / np.sqrt(dt / 2) / np.sqrt(3.0), 9))
    assert seen.tolist() == [-2.0, -1.0, 0.0, 1.0, 2.0]
    # uncoupled runs keep the cheaper two-point variables; tamed Euler reads E Z^4 as Euler does; weak order 2
    # keeps its kinds (the module docstring: a remainder O(|sigma|^6 dt^2))
    for scheme in ("euler", "tamed"):
        assert get_solver(scheme).coupled().discrete == ("three",) and get_solver(scheme).discrete == ("two",)
    assert get_solver("weak2").coupled().discrete == get_solver("weak2").discrete


@pytest.mark.slow
def test_weak_error_extrapolates_by_default_and_matches_a_fine_step_reference():
    """The study's sme2 value on the double well (Euler: sqrt Sigma = |x|/2 is not differentiable)
    agrees with an independent simulation at an 8 times finer step (whose own Euler bias, about
    1.6e-4, is half the tolerance) within 5 combined standard errors, while the correction it
    removed (the dt/2 run's solver error, about 6e-4) is over twice that combined standard error:
    without it the comparison would be off by a visible amount."""
    z = smfsym.normal("z", std=sp.Rational(1, 2))
    p = smfsym.Problem((x**2 - 1) ** 2 / 4 + x**2 * z / 2 - x / 5, [x])
    st = smfsym.weak_error(p, x, [0.5], 1.0, [0.2, 0.1], models=["sme2"], n_paths=300_000, seed=3,
                           method="montecarlo", progress=False)
    row = st.rows[-1]
    assert "extrapolated" in row["method"] and st.meta["extrapolate"] is True
    ref = smfsym.simulate(smfsym.sme(p, order=2), [0.5], 1.0, eta=0.1, dt=0.1 / 64, n_paths=300_000, seed=9,
                          functions={"phi": lambda X: X[:, 0]}, store=False, increments="discrete", progress=False)
    ref_val, ref_se = float(ref.mean("phi")[-1]), float(ref.sem("phi")[-1])
    tol = np.hypot(row["value_se"], ref_se)
    assert abs(row["value"] - ref_val) < 5 * tol
    assert row["solver_error"] > 2 * tol


def test_extrapolate_is_validated_and_can_be_switched_off():
    p = smfsym.Problem((x - smfsym.normal("z")) ** 2 / 2, [x])
    with pytest.raises(TypeError, match="`extrapolate`"):
        smfsym.weak_error(p, x, [1.0], 1.0, [0.2, 0.1], extrapolate="yes", method="montecarlo")
    with pytest.warns(smfsym.OrderWarning):  # 1000 paths resolve nothing; only the method is looked at
        st = smfsym.weak_error(p, x**2, [1.0], 1.0, [0.2, 0.1], models=["sme1"], extrapolate=False,
                               method="montecarlo", n_paths=1000, progress=False)
    assert st.meta["extrapolate"] is False and "extrapolated" not in st.rows[0]["method"]


def test_old_keywords_warn_and_give_the_numbers_of_the_options_objects():
    """coupled_run / coupled_expectation take ``save_at=SaveAt(...)`` and ``options=RunOptions(...)`` (issue 16);
    the old keywords still work for one release, with a DeprecationWarning, and give bitwise the same numbers."""
    sde = smfsym.sme(smfsym.Problem((x - smfsym.normal("z")) ** 2 / 2 + x**4 / 20, [x]), order=1)
    kw = dict(eta=0.2, dt=0.1, n_paths=300, solver=get_solver("euler"), seed=4)
    with pytest.warns(DeprecationWarning, match=r"options=smfsym\.RunOptions\(progress=\.\.\.\)"):
        old = coupled_run(sde, [1.0], 0.5, progress=False, on_nonfinite="mask", functions={"sq": np.square},
                          store=True, backend="numpy", **kw)
    new = coupled_run(sde, [1.0], 0.5, save_at=smfsym.SaveAt(functions={"sq": np.square}, store=True),
                      options=smfsym.RunOptions(progress=False, on_nonfinite="mask"), **kw)
    assert np.array_equal(old.states, new.states) and np.array_equal(old.mean("sq"), new.mean("sq"))
    assert coupled_run(sde, [1.0], 0.5, options=QUIET, **kw).states is None  # nothing stored unless asked
    with pytest.warns(DeprecationWarning, match=r"RunOptions\(backend=\.\.\.\)"):
        old = coupled_expectation(sde, [1.0], 0.5, phi=lambda X: X[:, 0] ** 2, backend="numpy", **kw)
    with pytest.warns(DeprecationWarning, match=r"RunOptions\(progress=\.\.\.\)"):
        old_p = coupled_expectation(sde, [1.0], 0.5, phi=lambda X: X[:, 0] ** 2, progress=False,
                                    blowup_threshold=1e6, **kw)
    new = coupled_expectation(sde, [1.0], 0.5, phi=lambda X: X[:, 0] ** 2, options=QUIET.replace(blowup_threshold=1e6),
                              **kw)
    assert old == new == old_p
    with pytest.raises(TypeError, match="`backend` is given twice"):
        coupled_run(sde, [1.0], 0.5, backend="numpy", options=QUIET, **kw)
    with pytest.raises(TypeError, match="unexpected keyword argument 'store'"):
        coupled_expectation(sde, [1.0], 0.5, phi=lambda X: X[:, 0], store=True, **kw)
