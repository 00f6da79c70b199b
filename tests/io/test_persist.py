"""Studies and simulations save, reload and travel: exact JSON round-trips, pandas and xarray views."""
import json

import numpy as np
import pytest
import sympy as sp

import smfsym
from smfsym.studies import MultipointStudy
from smfsym.io.persist import FORMAT, Order


@pytest.fixture(scope="module")
def gaussian():
    x = sp.Symbol("x")
    return smfsym.Problem((x - smfsym.normal("xi", std=sp.Rational(1, 2))) ** 2 / 2, [x]), x


@pytest.fixture(scope="module")
def exact_study(gaussian):
    p, x = gaussian
    return smfsym.weak_error(p, x**2 + x, [1.0], 1.0, [0.1, 0.05, 0.025], models=["gf", "sme2", "smf2"])


@pytest.fixture(scope="module")
def mc_study(gaussian):
    p, x = gaussian
    return smfsym.weak_error(p, x**2, [1.0], 0.5, [0.25, 0.125], models=["smf1"], method="montecarlo",
                             n_paths=4096, seed=7)


def _same(a, b):
    """Equal to the bit, NaN included."""
    if isinstance(a, float) and isinstance(b, float):
        return (np.isnan(a) and np.isnan(b)) or a == b
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


@pytest.mark.parametrize("which", ["exact_study", "mc_study"])
def test_weak_error_study_round_trips_exactly(which, request, tmp_path):
    st = request.getfixturevalue(which)
    path = st.save(tmp_path / "study.json")
    back = smfsym.load_study(path)
    assert type(back) is type(st)
    assert _same(back.rows, st.rows) and _same(back.orders, st.orders)
    assert back.etas == st.etas and back.models == st.models
    assert all(isinstance(o, Order) for o in back.orders.values())
    doc = json.loads(path.read_text())
    assert doc["format"] == FORMAT and set(doc["versions"]) == {"smfsym", "numpy", "scipy", "sympy"}
    assert back.problem == str(st.problem) and back.phi == str(st.phi)  # text, never re-parsed
    assert back.meta["versions"]["smfsym"] == smfsym.__version__


def test_orders_are_named_tuples(exact_study):
    o = exact_study.orders["sme2"]
    assert isinstance(o, Order) and o.slope == o[0] and o.n_used == 3
    assert abs(o.slope - 2) < 0.15


def test_multipoint_round_trip_and_long_table(tmp_path):
    x = sp.Symbol("x")
    p = smfsym.Problem((1 + smfsym.rademacher("r")) * x**2 / 2, [x])
    mp = smfsym.multipoint(p, [[-1.0], [1.0]], eta=0.1, t_end=0.3, n_paths=2048, seed=1, models=["smf2"])
    back = MultipointStudy.load(mp.save(tmp_path / "mp.json"))
    assert _same(back.rows, mp.rows) and np.array_equal(back.starts, mp.starts)
    df = mp.to_pandas()
    assert list(df.columns) == ["model", "eta", "statistic", "value", "se", "t"]
    assert len(df) == len(mp.rows) and set(df["model"]) == {r["model"] for r in mp.rows}


def test_to_pandas_long_format(exact_study):
    df = exact_study.to_pandas()
    assert list(df.columns) == ["model", "eta", "statistic", "value", "se", "t"]
    # three statistics per (eta, model), plus SGD's value once per eta
    assert len(df) == 3 * len(exact_study.rows) + len(exact_study.etas)
    err = df[(df.model == "sme2") & (df.statistic == "error")].sort_values("eta", ascending=False)
    np.testing.assert_array_equal(err["value"].to_numpy(), exact_study.errors("sme2"))


def test_save_refuses_to_overwrite_and_load_refuses_foreign_files(exact_study, tmp_path):
    path = exact_study.save(tmp_path / "s.json")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        exact_study.save(path)
    exact_study.save(path, overwrite=True)
    (tmp_path / "other.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ValueError, match="not a saved smfsym study"):
        smfsym.load_study(tmp_path / "other.json")
    with pytest.raises(ValueError, match="MultipointStudy"):
        MultipointStudy.load(path)
    doc = json.loads(path.read_text())
    doc["fields"]["rows"] = {"__ndarray__": [["__import__('os')"]], "dtype": "object", "shape": [1, 1]}
    (tmp_path / "hostile.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="numeric"):
        smfsym.load_study(tmp_path / "hostile.json")
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporary files


def test_simulation_to_xarray(gaussian):
    xr = pytest.importorskip("xarray")
    p, x = gaussian
    flow = smfsym.smf(p)
    res = smfsym.simulate(flow, x0=[[1.0], [-1.0]], t_end=0.5, eta=0.1, n_paths=64, seed=3, save_at=[0.25, 0.5])
    ds = res.to_xarray()
    assert isinstance(ds, xr.Dataset)
    assert ds["state"].dims == ("time", "path", "point", "coord") and ds["state"].shape == (2, 64, 2, 1)
    np.testing.assert_array_equal(ds["state"].values, res.states)
    np.testing.assert_array_equal(ds["time"].values, res.t)
    assert ds.attrs["n_paths"] == 64


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
@pytest.mark.timeout(60)
def test_load_study_bounds_memory_before_parsing(exact_study, tmp_path):
    """Issue #15 §3.6: a 46 MiB file peaked at 747 MB (16x) in json. Now the size and the count of JSON
    values are checked on the text first: over them, the peak is at most the text twice (raw and blanked)."""
    import tracemalloc

    from smfsym.io.persist import MAX_ELEMENTS, MAX_STUDY_BYTES

    doc = json.loads(exact_study.save(tmp_path / "s.json").read_text())
    for n, match in ((MAX_STUDY_BYTES // 4, "MAX_STUDY_BYTES"), (MAX_ELEMENTS + 10, "MAX_ELEMENTS")):
        doc["fields"]["etas"] = [0.1] * n
        path = tmp_path / "big.json"
        path.write_text(json.dumps(doc))
        size = path.stat().st_size
        tracemalloc.start()
        with pytest.raises(ValueError, match=match):
            smfsym.load_study(path)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 2.5 * size, f"{match}: peak {peak / 2**20:.1f} MiB for a {size / 2**20:.1f} MiB file"
        if match == "MAX_STUDY_BYTES":
            assert peak < 2**20  # refused from the file's size, before reading it
