"""The order fit (studies/common.py: fit_order) against independent routes (audit 16, M2): numpy's weighted
least squares and scipy's linear regression. Its weights, its interval's Student-t quantile and its noise-based
standard error each survived every other test (they only check that the interval holds the slope). The
comparisons are of the same arithmetic by other code, so the tolerance is rounding (rel 1e-10)."""
import numpy as np
import pytest
from scipy import stats

from smfsym.studies.common import fit_order

ETAS = np.array([0.2, 0.1, 0.05, 0.025, 0.0125])


def _weighted(errs, ses):
    x, y = np.log(ETAS), np.log(np.abs(errs))
    w = np.abs(errs) / ses  # polyfit squares its weights: (|e| / se)^2, the delta method's
    slope = np.polyfit(x, y, 1, w=w)[0]
    noise = np.sqrt(np.polyfit(x, y, 1, w=w, cov="unscaled")[1][0, 0])
    resid = np.sqrt(np.polyfit(x, y, 1, w=w, cov=True)[1][0, 0])  # scaled by chi^2 / (n - 2)
    return slope, max(1.96 * noise, stats.t.ppf(0.975, len(x) - 2) * resid)


@pytest.mark.parametrize("case", ["noise-dominated", "curvature-dominated"])
def test_weighted_fit_is_numpys_weighted_least_squares(case):
    rng = np.random.default_rng(7)
    errs = 0.3 * ETAS**2 * (1 + (0.002 if case == "noise-dominated" else 0.6) * rng.standard_normal(ETAS.size))
    ses = np.abs(errs) * (0.05 if case == "noise-dominated" else 0.01) * (1 + rng.random(ETAS.size))
    fit = fit_order(ETAS, errs, ses)
    slope, half = _weighted(errs, ses)
    assert fit.n_used == 5
    assert fit[0] == pytest.approx(slope, rel=1e-10)
    assert (fit[2] - fit[1]) / 2 == pytest.approx(half, rel=1e-10)
    noise_half = 1.96 * np.sqrt(np.polyfit(np.log(ETAS), np.log(errs), 1, w=errs / ses, cov="unscaled")[1][0, 0])
    # the two cases exercise the two branches of the half-width
    assert (half == pytest.approx(noise_half)) == (case == "noise-dominated")


def test_exact_fit_is_scipys_linear_regression():
    errs = 0.3 * ETAS**2 * (1 + 0.1 * np.cos(np.arange(ETAS.size)))  # exact errors, slightly curved
    fit = fit_order(ETAS, errs)
    reg = stats.linregress(np.log(ETAS), np.log(errs))
    assert fit[0] == pytest.approx(reg.slope, rel=1e-10)
    assert (fit[2] - fit[1]) / 2 == pytest.approx(stats.t.ppf(0.975, ETAS.size - 2) * reg.stderr, rel=1e-10)
