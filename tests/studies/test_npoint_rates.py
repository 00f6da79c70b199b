"""n-point rate study (docs/theory.md §5): SMF joint statistics converge at order 2, shared-SME correlations do not.

Exact errors (matrix powers / exponentials on the polynomials of degree 2 of the two-point state) carry no
noise, so the fitted slopes are compared with the declared order within 0.15; Monte Carlo agreement uses
5 standard errors.
"""
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import smfsym
from smfsym.simulation.exact import NotClosedError
from smfsym.spec import load_spec
from smfsym.studies import MultipointRates, OrderWarning, multipoint_rates

x = sp.Symbol("x")


@pytest.fixture(scope="module")
def rademacher():
    return load_spec(Path(smfsym.__file__).parent / "specs" / "rademacher.toml").problem


@pytest.fixture(scope="module")
def skewed():
    # Sigma(x, y) = (x/2 - 1)(y/2 - 1): its sign differs from Sigma(x)^{1/2} Sigma(y)^{1/2} = |x/2 - 1||y/2 - 1|
    # when the starts straddle x = 2, and the loss has no x -> -x symmetry
    xi = smfsym.normal("xi")
    return smfsym.Problem((x - xi) ** 2 / 2 + x**2 * xi / 4, [x])


@pytest.fixture(scope="module")
def rademacher_study(rademacher):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OrderWarning)
        return multipoint_rates(rademacher, [[-1.0], [1.0]], [0.1, 0.05, 0.025], 1.0,
                                models=["smf1", "smf2", "sme2_shared", "sme2_independent"],
                                psi=["product", "covariance", "correlation", "sqdist"],
                                n_paths=4000, dt_fraction=0.25, seed=1)


def test_rademacher_one_call(rademacher_study):
    st = rademacher_study
    assert st.meta["method"] == "exact" and "sme2_shared" not in st.meta["exact_models"]  # |x| does not close
    for psi in ("product", "sqdist", "covariance"):
        assert abs(st.order("smf2", psi).slope - 2) < 0.15, (psi, st.order("smf2", psi))
    assert abs(st.order("smf1", "product").slope - 1) < 0.15
    # SGD and SMF both have correlation exactly -1 (X(-1) = -X(1)): nothing to fit
    assert np.all(np.abs(st.errors("smf2", "correlation")) < 1e-12)
    # shared SME: correlation e^{-eta t} against -1, an error near 2 at every eta, resolved and flat
    err = st.errors("sme2_shared", "correlation")
    rows = [r for r in st.rows if r["model"] == "sme2_shared" and r["psi"] == "correlation"]
    assert all(abs(r["error"]) > 5 * r["se"] for r in rows)
    np.testing.assert_allclose(err, [1 + math.exp(-r["eta"] * r["t"]) for r in rows], atol=5 * max(r["se"] for r in rows))
    assert abs(st.order("sme2_shared", "correlation").slope) < 0.1


def test_rademacher_closed_forms(rademacher_study):
    # docs/theory.md §5: SGD product -(1 - 2 eta + 2 eta^2)^k, SMF2 product -e^{-2t}; independent SMEs: Cov = 0
    for r in rademacher_study.rows:
        k = round(r["t"] / r["eta"])
        if r["psi"] == "product" and r["model"] == "smf2":
            assert r["sgd"] == pytest.approx(-(1 - 2 * r["eta"] + 2 * r["eta"] ** 2) ** k, rel=1e-12)
            assert r["value"] == pytest.approx(-math.exp(-2 * r["t"]), rel=1e-12)
        if r["psi"] == "covariance" and r["model"] == "sme2_independent":
            assert abs(r["value"]) < 1e-14


def test_skewed_one_call(skewed):
    xs, ys = sp.symbols("x_s y_s", real=True)
    S_xy = sp.expand(skewed.cross_covariance([ys]).xreplace({x: xs})[0, 0]) if hasattr(skewed, "cross_covariance") else None
    assert S_xy is None or S_xy.subs({xs: 3, ys: -1}) < 0  # SGD noise of the two starts anti-aligned
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OrderWarning)  # the shared SME's product/sqdist errors are O(eta): small
        st = multipoint_rates(skewed, [[3.0], [-1.0]], [0.05, 0.025, 0.0125], 1.0, models=["smf2", "sme2_shared"],
                              psi=["product", "correlation", "sqdist"], n_paths=6000, dt_fraction=0.25, seed=2)
    for psi in ("product", "sqdist"):
        assert abs(st.order("smf2", psi).slope - 2) < 0.15, (psi, st.order("smf2", psi))
    # the SMF's correlation error decays (a ratio of O(eta) quantities with O(eta^2) errors: order 1) ...
    assert abs(st.order("smf2", "correlation").slope - 1) < 0.15
    # ... the shared SME's does not: resolved at every eta and flat
    rows = [r for r in st.rows if r["model"] == "sme2_shared" and r["psi"] == "correlation"]
    assert all(abs(r["error"]) > 5 * r["se"] and abs(r["error"]) > 0.2 for r in rows)
    o = st.order("sme2_shared", "correlation")
    assert o.n_used == 3 and abs(o.slope) < 0.3


def test_exact_matches_montecarlo(skewed):
    kw = dict(models=["smf2", "sme2_independent"], psi=["product", "covariance", "sqdist"], dt_fraction=0.25)
    ex = multipoint_rates(skewed, [[3.0], [-1.0]], [0.2, 0.1], 1.0, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OrderWarning)
        mc = multipoint_rates(skewed, [[3.0], [-1.0]], [0.2, 0.1], 1.0, method="montecarlo", n_paths=20000,
                              seed=3, **kw)
    assert ex.meta["exact_models"] == ["smf2", "sme2_independent"] and mc.meta["method"] == "montecarlo"
    pairs = 0
    for a, b in zip(ex.rows, mc.rows):
        assert (a["eta"], a["model"], a["psi"]) == (b["eta"], b["model"], b["psi"])
        if a["eta"] != 0.2:
            continue
        # 5 s.e.: the model's value (plus the solver error left at dt/2) and SGD's value
        assert abs(b["value"] - a["value"]) <= 5 * b["value_se"] + b["solver_error"], (a, b)
        assert abs(b["sgd"] - a["sgd"]) <= 5 * b["sgd_se"], (a, b)
        pairs += 1
    assert pairs == 6


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
def test_persistence_table_latex_plot(rademacher_study, tmp_path):
    st = rademacher_study
    back = smfsym.load_study(st.save(tmp_path / "rates.json"))
    assert isinstance(back, MultipointRates)
    assert back.rows == st.rows and back.etas == st.etas
    assert repr(back.orders) == repr(st.orders)  # NaN slopes (unresolved) compare by their text
    assert isinstance(back.problem, str)
    tex = st.to_latex()
    assert r"\toprule" in tex and r"\bottomrule" in tex and "sme2\\_shared" in tex
    assert tex.count(r"\\") == 1 + 4 * 4  # header + statistic x model rows
    assert "smf2:product" in repr(st)
    pytest.importorskip("pandas")
    df = st.to_pandas()
    assert set(df["model"]) >= {"sgd", "smf2", "sme2_shared"}
    fig = st.plot(path=tmp_path / "rates.png")
    assert (tmp_path / "rates.png").stat().st_size > 0 and len(fig.axes) == 4


def test_user_statistic_is_montecarlo(rademacher):
    def same_sign(X):
        return (np.sign(X[:, 0, 0]) == np.sign(X[:, 1, 0])).astype(float)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OrderWarning)
        st = multipoint_rates(rademacher, [[-1.0], [1.0]], [0.1, 0.05], 1.0, models=["smf2", "sme2_shared"],
                              psi={"same_sign": same_sign}, n_paths=2000, dt_fraction=0.25)
    assert st.meta["method"] == "montecarlo" and st.meta["exact_refused"]
    # SGD and the SMF keep opposite signs; the shared SME keeps the starts' signs too (|x| noise)
    assert np.all(np.abs(st.errors("smf2", "same_sign")) < 1e-12)
    with pytest.raises(NotClosedError, match="user-supplied"):
        multipoint_rates(rademacher, [[-1.0], [1.0]], [0.1, 0.05], 1.0, psi=[same_sign], method="exact")


@pytest.mark.parametrize("kw, exc, match", [
    (dict(starts=[[1.0]]), ValueError, "`starts`"),
    (dict(starts="1,2"), TypeError, "`starts`"),
    (dict(starts=[[1.0], [np.nan]]), ValueError, "finite"),
    (dict(etas=[0.1]), ValueError, "`etas`"),
    (dict(etas=[0.1, -0.05]), ValueError, "`etas`"),
    (dict(etas=[0.1, 0.1]), ValueError, "distinct"),
    (dict(models=["sme2"]), ValueError, "`models`"),
    (dict(models="smf2"), TypeError, "`models`"),
    (dict(models=["smf2", "smf2"]), ValueError, "repeat"),
    (dict(psi="kurtosis"), ValueError, "`psi`"),
    (dict(psi=[3]), TypeError, "`psi`"),
    (dict(psi=[]), TypeError, "`psi`"),
    (dict(method="symbolic"), ValueError, "`method`"),
    (dict(resolve=0), ValueError, "`resolve`"),
    (dict(resolve=True), ValueError, "`resolve`"),
    (dict(t_end=-1.0), ValueError, "`t_end`"),
    (dict(t_end=0.01), ValueError, "half a step"),
    (dict(n_paths=0), ValueError, "`n_paths`"),
    (dict(values=[1, 2]), TypeError, "`values`"),
    (dict(values={"c": 0.25}), TypeError, "`values` keys"),
    (dict(values={sp.Symbol("c"): float("nan")}), ValueError, "`values`"),
    (dict(values={sp.Symbol("c"): "1/4"}), ValueError, "`values`"),
    (dict(problem="x**2"), TypeError, "`problem`"),
    (dict(etas=[1e-9, 2e-9]), ValueError, "path-steps"),  # ~1e9 steps of the |x| SME: refused up front
    (dict(max_path_steps=0), ValueError, "`max_path_steps`"),
    # the bound as the other studies take it (audit 3, 7): in RunOptions; given twice is refused
    (dict(numerics=smfsym.Numerics(method="montecarlo"), options=smfsym.RunOptions(max_path_steps=10.0)), ValueError,
     r"path-steps .*over `max_path_steps` = 10"),
    (dict(max_path_steps=1e3, options=smfsym.RunOptions(max_path_steps=10.0)), TypeError, "given twice"),
    (dict(seed=np.random.default_rng(0)), TypeError, "`seed`"),
    (dict(dt_fraction=2.0), ValueError, "`dt_fraction`"),
    (dict(t_end=float("inf")), ValueError, "`t_end`"),
    (dict(psi={"a": "product", "b": 3}), TypeError, "`psi`"),
])
def test_bad_input(rademacher, kw, exc, match):
    args = dict(problem=rademacher, starts=[[-1.0], [1.0]], etas=[0.1, 0.05], t_end=1.0)
    args.update(kw)
    with pytest.raises(exc, match=match):
        multipoint_rates(args.pop("problem"), args.pop("starts"), args.pop("etas"), args.pop("t_end"), **args)


def test_exact_refused_when_not_closed():
    xi = smfsym.normal("xi")
    p = smfsym.Problem((x - xi) ** 4 / 4, [x])  # gradient cubic in x
    with pytest.raises(NotClosedError, match="affine"):
        multipoint_rates(p, [[-1.0], [1.0]], [0.1, 0.05], 1.0, method="exact")


def test_renamed_statistics_and_overflow(rademacher):
    st = multipoint_rates(rademacher, [[-1.0], [1.0]], [0.1, 0.05], 1.0, models=["smf2"],
                          psi={"E[X(-1)X(1)]": "product", "again": "product"})
    assert np.array_equal(st.errors("smf2", "E[X(-1)X(1)]"), st.errors("smf2", "again"))
    with pytest.raises(FloatingPointError, match="overflow"):
        multipoint_rates(rademacher, [[-1e200], [1e200]], [0.1, 0.05], 1.0, models=["smf2"])


def test_constants_need_values():
    c, xi = sp.Symbol("c"), smfsym.normal("xi")
    p = smfsym.Problem((x - xi) ** 2 / 2 + c * x**2 * xi, [x], constants=[c])
    with pytest.raises(NotClosedError, match="`values`"):
        multipoint_rates(p, [[3.0], [-1.0]], [0.1, 0.05], 1.0, models=["smf2"])
    st = multipoint_rates(p, [[3.0], [-1.0]], [0.1, 0.05], 1.0, models=["smf2"], psi="product", values={c: 0.25})
    assert st.meta["exact_models"] == ["smf2"] and st.order("smf2", "product").n_used == 2


def test_large_dimension_refuses_exact_with_the_size():
    xs = sp.symbols("x0:11")
    a = smfsym.normal("a", 11)
    p = smfsym.Problem((sum(ai * v for ai, v in zip(a, xs))) ** 2 / 2, list(xs))
    with pytest.raises(NotClosedError, match="276 monomials"):
        multipoint_rates(p, np.eye(11)[:2], [0.1, 0.05], 1.0, method="exact")


def test_inputs_not_mutated(rademacher):
    starts, etas, models = [[-1.0], [1.0]], [0.1, 0.05], ["smf2"]
    multipoint_rates(rademacher, starts, etas, 1.0, models=models, psi="product")
    assert starts == [[-1.0], [1.0]] and etas == [0.1, 0.05] and models == ["smf2"]


def test_montecarlo_cells_run_on_an_array_back_end(rademacher):
    """The Monte Carlo cells (SGD with shared samples and the shared SME, whose |x| root is not polynomial) run
    on the back end: other random streams, so other numbers, within 5 combined standard errors of numpy's."""
    pytest.importorskip("array_api_strict")

    def same_sign(X):
        return (np.sign(X[:, 0, 0]) == np.sign(X[:, 1, 0])).astype(float)

    def run(backend):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OrderWarning)
            return multipoint_rates(rademacher, [[-1.0], [0.5]], [0.2, 0.1], 1.0, models=["sme1_shared"],
                                    psi={"same_sign": same_sign, "p": "product"}, n_paths=3000, dt_fraction=0.5,
                                    seed=3, options=smfsym.RunOptions(backend=backend))

    ref, dev = run("numpy"), run("array_api_strict")
    pairs = [(a, b) for a, b in zip(ref.rows, dev.rows) if a["method"] != "exact"]
    assert pairs
    for a, b in pairs:
        assert (a["model"], a["psi"], a["eta"]) == (b["model"], b["psi"], b["eta"])
        for key, se in (("sgd", "sgd_se"), ("value", "value_se"), ("error", "se")):
            assert abs(a[key] - b[key]) <= 5 * math.hypot(a[se], b[se]) + 1e-12, (key, a, b)
    assert any(a["sgd"] != b["sgd"] for a, b in pairs)  # SGD really ran on the back end: other streams


def test_an_error_as_large_as_the_statistic_at_every_eta_is_not_read_as_convergence():
    """Audit 10, F2: the shared SME's two-point covariance has the wrong sign at every eta (relative error 2), yet
    the covariance itself is O(eta), so log|error| has slope ~1 and the summary read like order-1 convergence. The
    fit now warns, and the summary line says so."""
    x = sp.Symbol("x")
    z = smfsym.normal("z", std=sp.Rational(1, 2))
    p = smfsym.Problem((x ** 2 - 1) ** 2 / 4 + x ** 2 * z / 2 - sp.Rational(1, 5) * x, [x])
    with pytest.warns(smfsym.OrderWarning, match="as large as the statistic itself at every fitted step"):
        mr = smfsym.multipoint_rates(p, [[0.5], [-0.3]], [0.25, 0.125, 0.0625], 1.0, models=("sme2_shared",),
                                     psi=("covariance",), n_paths=4000, seed=2)
    rows = [r for r in mr.rows if r["psi"] == "covariance"]
    assert all(np.sign(r["value"]) != np.sign(r["sgd"]) for r in rows)  # the wrong sign, at 4000 paths:
    assert all(abs(r["error"]) > abs(r["sgd"]) + 5 * r["se"] for r in rows)  # |error| - |SGD| beyond 5 s.e.
    assert "not convergence" in repr(mr)
    with warnings.catch_warnings(record=True) as caught:  # the model of the right sign is not flagged
        warnings.simplefilter("always")
        right = smfsym.multipoint_rates(p, [[0.5], [-0.3]], [0.25, 0.125, 0.0625], 1.0, models=("smf2",),
                                        psi=("covariance",), n_paths=4000, seed=2)
    assert not [w for w in caught if "as large as the statistic" in str(w.message)]
    assert "not convergence" not in repr(right)
