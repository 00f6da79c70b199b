"""An order is not fitted across a sign change of the errors (audit 6, finding 1).

With error(h) = c2 h^2 + c3 h^3 and opposite signs, |error| dips to 0 where the two terms cancel and follows
no power of h near there; log|error| through points on both sides can still be nearly collinear and gave a
tight, wrong interval: momentum's order-2 SME on f = (x - xi)^2 / 2 (exact moments, etas 1/16, 1/64, 1/256)
read 1.26 [0.98, 1.55] while its order is 2 (the audit's exact errors at smaller h give local slopes 1.74,
1.89, 1.95). Now the points at the smallest steps that share one sign are fitted, with an OrderWarning.
"""
from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import smfsym
from smfsym.optimizers import Momentum
from smfsym.studies.common import fit_order


def test_a_fit_stops_where_the_errors_change_sign():
    h = np.array([0.4, 0.2, 0.1, 0.05, 0.025])
    err = h**2 - 3 * h**3  # changes sign at h = 1/3: the points at 0.4 are before the h^2 term dominates
    with pytest.warns(smfsym.OrderWarning, match=r"the errors of demo change sign between the steps 0.2 and 0.4"):
        fit = fit_order(h, err, what="demo")
    slope, low, high = fit
    assert fit.n_used == 4 and low < slope < high
    # the four kept points alone: the same fit, no warning
    assert fit == fit_order(h[1:], err[1:])


def test_one_point_of_one_sign_is_unresolved():
    with pytest.warns(smfsym.OrderWarning, match=r"fitted on the 1 point\(s\) .* and is unresolved"):
        fit = fit_order([0.1, 0.05, 0.025], [2e-2, -5e-3, 1.25e-3], what="demo")
    assert fit.n_used == 1 and np.isnan(fit[0])


def test_errors_of_one_sign_fit_as_before():
    fit = fit_order([0.1, 0.05, 0.025], [-2e-2, -5e-3, -1.25e-3])
    assert fit.n_used == 3 and fit[0] == pytest.approx(2.0, abs=1e-12)


def test_the_momentum_study_no_longer_reports_a_tight_wrong_order():
    x = sp.Symbol("x")
    problem = smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x])
    with pytest.warns(smfsym.OrderWarning, match="the errors of sme2 change sign"):
        study = smfsym.momentum_weak_error(problem, x**2, [1.0], 1.0, [1 / 16, 1 / 64, 1 / 256],
                                           Momentum(friction=1.5), models=("sme1", "sme2"))
    errors = [r["error"] for r in study.rows if r["model"] == "sme2"]
    assert errors[0] < 0 < errors[1] and errors[2] > 0  # the premise: one sign change, at the largest eta
    order = study.orders["sme2"]
    assert order.n_used == 2 and np.isnan(order.low) and np.isnan(order.high)
    assert "(no interval: 2 points)" in str(study)


def test_a_study_saved_with_the_earlier_rule_loads_refitted(tmp_path):
    """A file written before the one-sign rule holds the fit across the sign change (log|error| is all the old
    rule saw, so fitting |error| reproduces it); loading it refits on one sign and says so, not 'tampered'."""
    import json

    x = sp.Symbol("x")
    problem = smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x])
    with pytest.warns(smfsym.OrderWarning):
        study = smfsym.momentum_weak_error(problem, x**2, [1.0], 1.0, [1 / 16, 1 / 64, 1 / 256],
                                           Momentum(friction=1.5), models=("sme1", "sme2"))
    rows = [r for r in study.rows if r["model"] == "sme2"]
    legacy = fit_order([r["h"] for r in rows], [abs(r["error"]) for r in rows])
    assert legacy.n_used == 3
    path = tmp_path / "study.json"
    study.save(path)
    data = json.loads(path.read_text())
    data["fields"]["orders"]["sme2"] = {"__order__": [*map(float, legacy), 3]}
    path.write_text(json.dumps(data))
    with pytest.warns(smfsym.OrderWarning, match=r"`orders.sme2` was fitted on 3 points across a sign change"):
        loaded = smfsym.load_study(path)
    got, want = loaded.orders["sme2"], study.orders["sme2"]
    assert got.n_used == want.n_used == 2 and got[0] == want[0] and np.isnan(got[1]) and np.isnan(got[2])
    # any other difference is still refused
    data["fields"]["orders"]["sme1"] = {"__order__": [0.5, 0.4, 0.6, 3]}
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"orders.sme1.slope"):
        smfsym.load_study(path)
