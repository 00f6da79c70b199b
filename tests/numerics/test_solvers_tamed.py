"""The tamed scheme: weak order measured, survival where explicit schemes blow up, studies that report it."""
import numpy as np
import pytest
import sympy as sp

import smfsym
from smfsym.numerics.solvers import EulerMaruyama, SOLVERS, TamedEuler
from linear_sde import exact_moments, fitted_order, linear_sde, scheme_moments
from test_solvers import CASES, phi

x = sp.Symbol("x")


def _f(X):
    return (X**2).sum(-1) + X.sum(-1)


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
@pytest.mark.parametrize("case", sorted(CASES))
def test_tamed_weak_order_fitted_slope(case):
    """Error = (exact Euler error) + E[phi(tamed) - phi(Euler)], the latter by common random numbers.

    The tamed step is not affine in X, so its moments are not closed; but driven by the same Gaussians as
    Euler its paths differ little, so the difference has a small standard error (checked below: every
    error is resolved above 5 of them)."""
    A, a, Bs, bs, x0 = CASES[case]
    sde = linear_sde(A, a, Bs, bs)
    T = 1.0
    ref = phi(*exact_moments(np.array(A), np.array(a), [np.array(B) for B in Bs], [np.array(b) for b in bs],
                             np.array(x0), T))
    dts, errs = [], []
    for n in (4, 8, 16, 32):
        euler_err = phi(*scheme_moments(EulerMaruyama(), sde, x0, T, n)) - ref
        kw = dict(dt=T / n, n_paths=50_000, seed=3)
        diff = _f(smfsym.simulate(sde, x0, T, scheme="tamed", **kw).states[-1]) - _f(
            smfsym.simulate(sde, x0, T, scheme="euler", **kw).states[-1])
        err = euler_err + diff.mean()
        assert abs(err) > 5 * diff.std(ddof=1) / np.sqrt(diff.size)
        dts.append(T / n)
        errs.append(abs(err))
    slope = fitted_order(dts, errs)
    assert abs(slope - TamedEuler.weak_order) < 0.3, (case, slope, errs)


def quartic():
    return smfsym.Problem((x - smfsym.normal("xi")) ** 4 / 4, [x])


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
def test_tamed_survives_the_quartic_sme_where_euler_blows_up():
    sde = smfsym.sme(quartic(), 2)  # drift -x^3 - 3x - O(eta x^5), noise ~ x^2
    kw = dict(eta=0.1, n_paths=20_000, seed=2, store=False, functions={"x2": lambda X: X[..., 0] ** 2})
    h = 0.0125
    with pytest.raises(smfsym.BlowUpError, match=r"non-finite state at step \d+ .*scheme='tamed'"):
        smfsym.simulate(sde, [1.0], 1.0, dt=h, scheme="euler", **kw)
    tamed = smfsym.simulate(sde, [1.0], 1.0, dt=h, scheme="tamed", **kw)
    tamed2 = smfsym.simulate(sde, [1.0], 1.0, dt=h / 2, scheme="tamed", **kw)
    assert tamed.success and tamed.n_nonfinite == 0
    # Euler at 4 and 8 times smaller steps is stable on these paths: the reference. Both schemes are weak order 1,
    # so each Richardson value 2 v(h/2) - v(h) has an O(h^2) bias; the four runs draw independent streams, and
    # the two extrapolations agree within 5 standard errors of their difference (audit 16: the tolerance was
    # 5 s.e. plus twice the tamed scheme's own error estimate, which grows with the error it should bound)
    fine, finer = (smfsym.simulate(sde, [1.0], 1.0, dt=dt, scheme="euler", **kw) for dt in (h / 4, h / 8))
    assert fine.success and finer.success
    (v, s), (v2, s2), (e, se), (e2, se2) = ((r.mean("x2")[-1], r.sem("x2")[-1]) for r in (tamed, tamed2, fine, finer))
    assert abs((2 * v2 - v) - (2 * e2 - e)) < 5 * np.hypot(np.hypot(2 * s2, s), np.hypot(2 * se2, se))


@pytest.mark.slow  # seconds: the slow tier (CI runs both)
@pytest.mark.filterwarnings("ignore::smfsym.OrderWarning")  # 6000 paths, two etas: orders are not the point
def test_weak_error_study_survives_the_quartic_case_and_reports_lost_paths():
    p = quartic()
    args = (p, x**2, [1.0], 1.0, [0.1, 0.05])
    kw = dict(models=["sme2", "smf2"], n_paths=6000, seed=1, method="montecarlo")
    with pytest.raises(smfsym.BlowUpError, match=r"SGD at eta = 0.1: .*on_nonfinite='mask'"):
        smfsym.weak_error(*args, **kw)
    # SGD past |x| ~ sqrt(2 / eta) diverges, but slowly: finite paths of 1e90 are not averaged silently
    with pytest.warns(smfsym.studies.DivergenceWarning, match="E phi of SGD at eta = 0.1 .* not resolved"):
        smfsym.weak_error(*args, scheme="tamed", on_nonfinite="mask", **kw)
    st = smfsym.weak_error(*args, scheme="tamed", on_nonfinite="mask", blowup_threshold=10.0, **kw)
    assert st.meta["scheme"] == "tamed" and st.meta["blowup_threshold"] == 10.0
    rows = {(r["eta"], r["model"]): r for r in st.rows}
    assert all(r["lost"] == 0 for r in st.rows)  # the tamed scheme loses no path
    assert rows[0.1, "sme2"]["lost_sgd"] > 0  # SGD diverges on some paths at eta = 0.1: counted ...
    for r in st.rows:  # ... and the rest compares: finite values and standard errors
        assert np.isfinite(r["error"]) and 0 < r["se"] < 0.1
    assert "lost SGD" in repr(st) and "%" in repr(st)
    tex = st.to_latex()
    assert "lost paths" in tex and r"SGD " in tex and r"\%" in tex
    # masking an explicit scheme reports the model's own losses too
    # (Gaussian increments: the bounded two-point ones of the default keep these paths finite)
    st2 = smfsym.weak_error(p, x**2, [1.0], 1.0, [0.1, 0.05], models=["sme2"], n_paths=6000, seed=1,
                            method="montecarlo", scheme="euler", dt_fraction=0.5, on_nonfinite="mask",
                            blowup_threshold=10.0, increments="gaussian")
    assert any(r["lost"] > 0 for r in st2.rows)


def test_multipoint_reports_solver_error_and_lost_paths():
    r = smfsym.rademacher("r")
    p = smfsym.Problem((1 + r) * x**2 / 2, [x])
    mp = smfsym.multipoint(p, [[-1.0], [1.0]], eta=0.1, t_end=1.0, psi=["product"], models=["smf2", "sme1_shared"],
                           n_paths=8000, seed=0)
    for row in mp.rows:
        assert row["lost"] == 0 and row["solver_error"] >= 0
    # the solver's error is small against the statistic (weak order 2 at dt = eta / 16) ...
    smf = mp.value("smf2", "product")
    assert smf["solver_error"] < 0.05 * abs(smf["value"])
    assert "solver err" in repr(mp) and "solver" in mp.to_latex() and "lost paths" in mp.to_latex()
    # ... and a coarse Euler step shows up in it, rather than as a model error
    coarse = smfsym.multipoint(p, [[-1.0], [1.0]], eta=0.1, t_end=1.0, psi=["product"], models=["smf2"],
                               n_paths=8000, seed=0, scheme="euler", dt_fraction=1.0)
    assert coarse.value("smf2", "product")["solver_error"] > 5 * smf["solver_error"]
    mq = smfsym.multipoint(quartic(), [[-1.0], [1.0]], eta=0.1, t_end=0.5, psi=["covariance"], models=["smf2"],
                           n_paths=4000, seed=0, scheme="tamed", on_nonfinite="mask", blowup_threshold=10.0)
    assert mq.value("smf2", "covariance")["lost"] == 0 and np.isfinite(mq.value("smf2", "covariance")["value"])


def test_tamed_is_registered_with_its_order():
    assert isinstance(smfsym.numerics.solvers.get_solver("tamed"), TamedEuler)
    assert SOLVERS["tamed"].weak_order == 1.0
