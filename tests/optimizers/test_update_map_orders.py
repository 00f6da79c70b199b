"""Weak-error orders of RMSprop's and Adam's modified equations and flows against the simulated optimizer (issue 18).

The structure of Callisti, Romito and Triggiano's Table 1 (arXiv 2509.21614): RMSprop on a quadratic loss with
Gaussian data, test functions |x|^2 and |v|^2, weak-error slopes 1 for the order-1 models and 2 for the order-2
ones. Here the loss is f = sum_i a_i (x_i - xi_i)^2 / 2 with a_i = 1 + (i - 1) / d and xi_i ~ N(0, 1/16)
independent; RMSprop with 1 - beta = c eta, c = 1, eps = 0.1, from x = 2, v = 1 (so g^2 is about 4 v at the start
and v stays away from 0: the regime needs v bounded below), t_end = 1, eta = 1/4, 1/8, 1/16.

Every error E phi(model at t = k eta) - E phi(optimizer after k steps) is a Monte Carlo difference with a standard
error (the two runs are independent); each model's solver error is removed by coupled Richardson extrapolation
at dt = eta / 2 and eta / 4 (dt proportional to eta, so what is left of it, O(dt^2) or smaller, cannot lower an
order-2 slope). Slopes are fitted by :func:`smfsym.studies.fit_order` on the errors resolved above 3 standard
errors, with a 95% interval. An order-1 model's slope must lie within 0.3 of 1 from three resolved errors; an
order-2 model's within 0.4 of 2 (or its interval must hold 2) and above 1.5, so an order-2 model that were only
of order 1 fails.
"""
import warnings

import numpy as np
import pytest
import sympy as sp

import smfsym
from smfsym.optimizers.update_map import adam, rmsprop
from smfsym.studies.options import Numerics
from smfsym.studies.update_map_study import update_map_weak_error

ETAS = [0.25, 0.125, 0.0625]
NUMERICS = Numerics(dt_fraction=0.5)


def _quadratic_rmsprop(d):
    xs = sp.symbols(f"x1:{d + 1}")
    xis = [smfsym.normal(f"xi{i + 1}", std=sp.Rational(1, 4)) for i in range(d)]
    a = [1 + sp.Rational(i, d) for i in range(d)]
    p = smfsym.Problem(sum(ai * (x - xi) ** 2 / 2 for ai, x, xi in zip(a, xs, xis)), list(xs))
    m = rmsprop(p, c=1, eps=sp.Rational(1, 10))
    return m, sum(x**2 for x in xs), sum(v**2 for v in m.state[d:])


def _study(umap, phi, z0, models, n_paths, etas=ETAS, t_end=1.0):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", smfsym.OrderWarning)  # the assertions below say what must be resolved
        return update_map_weak_error(umap, phi, z0, t_end, etas, models=models, n_paths=n_paths, seed=0,
                                     progress=False, numerics=NUMERICS)


def _assert_order(study, model, order):
    s, lo, hi, n = study.orders[model]
    rows = [(r["eta"], r["error"], r["se"]) for r in study.rows if r["model"] == model]
    # the slope within 0.3 (order 1) or 0.4 (order 2) of the declared order, which excludes the neighbouring one
    # (three points give an interval with a t(1) quantile of 12.7, too wide to decide it; no escape through it)
    if order == 1:
        assert n == 3 and abs(s - 1) < 0.3, (model, study.orders[model], rows)
    else:
        assert n >= 2 and abs(s - 2) < 0.4, (model, study.orders[model], rows)


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
def test_rmsprop_smf_orders_small():
    """d = 2, 10,000 paths: smf1 slope 1 on |x|^2 and |v|^2, smf2 slope 2 on |v|^2 (|x|^2's order-2 errors,
    a few 1e-3, need the slow tier's paths)."""
    m, x2, v2 = _quadratic_rmsprop(2)
    z0 = [2.0, 2.0, 1.0, 1.0]
    st_v = _study(m, v2, z0, ["smf1", "smf2"], 10_000)
    _assert_order(st_v, "smf1", 1)
    _assert_order(st_v, "smf2", 2)
    st_x = _study(m, x2, z0, ["smf1"], 10_000)
    _assert_order(st_x, "smf1", 1)


@pytest.mark.slow
def test_rmsprop_table_one_d6():
    """Callisti et al.'s Table 1 structure: RMSprop, d = 6 (a 12-dimensional state), the SMEs of orders 1 and 2,
    test functions |x|^2 and |v|^2: slopes 1 and 2 (8,000 paths per eta; 60-70 s on two shared cores)."""
    m, x2, v2 = _quadratic_rmsprop(6)
    z0 = [2.0] * 6 + [1.0] * 6
    for phi in (x2, v2):
        st = _study(m, phi, z0, ["sme1", "sme2"], 8_000)
        _assert_order(st, "sme1", 1)
        _assert_order(st, "sme2", 2)


@pytest.fixture(scope="module")
def huber():
    """A loss that is not polynomial in the data, f = sqrt(1 + (x - xi)^2) (pseudo-Huber), on a data set of six
    points: the means, covariances and noise columns of the update are finite sums over the data."""
    x = sp.Symbol("x")
    xi, = smfsym.empirical(np.array([[-0.6], [-0.3], [0.0], [0.2], [0.4], [0.7]]), "xi")
    return smfsym.Problem(sp.sqrt(1 + (x - xi) ** 2), [x])


@pytest.mark.slow  # a few seconds: the slow tier (CI runs both)
@pytest.mark.parametrize("kind", ["rmsprop", "adam"])
def test_order_one_on_a_non_polynomial_loss(huber, kind):
    """RMSprop from (x, v) = (2, 1/4) and Adam from (x, m, v, t) = (2, 0, 1/4, 1/2) (its bias correction is
    singular at t = 0: the run starts at t_0 = 1/2), phi = x: sme1 and smf1 slope 1, 10,000 paths."""
    if kind == "rmsprop":
        umap, z0 = rmsprop(huber, c=1, eps=sp.Rational(1, 10)), [2.0, 0.25]
    else:
        umap, z0 = adam(huber, c1=1, c2=1, eps=sp.Rational(1, 10)), [2.0, 0.0, 0.25, 0.5]
    st = _study(umap, umap.state[0], z0, ["sme1", "smf1"], 10_000)
    for model in ("sme1", "smf1"):
        _assert_order(st, model, 1)


@pytest.mark.slow
def test_rmsprop_smf_d6():
    """The SMFs at d = 6 (8,000 paths per eta; 15-40 s on two shared cores): on |v|^2 slopes 1 and 2. On |x|^2 smf1's
    slope is 1, but smf2's errors (-5.8e-2, -2.6e-2, -9.3e-3) are still pre-asymptotic at these etas (local
    slopes 1.1 and 1.5, where sme2's are 1.8 and 1.9): asserted only to be under a fifth of smf1's at every eta."""
    m, x2, v2 = _quadratic_rmsprop(6)
    z0 = [2.0] * 6 + [1.0] * 6
    st = _study(m, v2, z0, ["smf1", "smf2"], 8_000)
    _assert_order(st, "smf1", 1)
    _assert_order(st, "smf2", 2)
    st = _study(m, x2, z0, ["smf1", "smf2"], 8_000)
    _assert_order(st, "smf1", 1)
    for eta in ETAS:
        one, two = (next(r for r in st.rows if r["model"] == mod and r["eta"] == eta) for mod in ("smf1", "smf2"))
        assert abs(two["error"]) < abs(one["error"]) / 5, (one, two)
