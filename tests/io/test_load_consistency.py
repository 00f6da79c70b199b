"""A saved study whose fields contradict each other is refused on load (audit 3, finding 8).

The schema (tests/spec/test_spec_hostile.py) checks each field alone; here real saved studies of every
kind are edited by hand so that each field is well typed but disagrees with the others: a row at an eta
the study did not run, an error that is not value - sgd, a negative standard error, an order outside its
own interval, etas that are not learning rates, ``n_paths = -5``, no rows at all, a key written twice.
Each must raise ``ValueError`` naming the field (before this, they loaded and ``to_latex``, ``plot`` or
``to_pandas`` crashed later with KeyError, StopIteration or matplotlib's negative ``yerr``).
"""
import copy
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import sympy as sp  # noqa: E402

import smfsym  # noqa: E402
from golden_numbers import _net, _rademacher, _regression, x, y  # noqa: E402
from smfsym import RunOptions  # noqa: E402
from smfsym.studies.registry import RESULTS  # noqa: E402

QUIET = RunOptions(progress=False)
NAN = {"__float__": "nan"}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """One small saved study of each kind (exact where the kind allows, a few hundred paths otherwise), as JSON."""
    import smfsym.studies.momentum_multipoint as mm
    import smfsym.studies.scaling_rule_study as sr
    import smfsym.studies.svag_study as sv

    d = tmp_path_factory.mktemp("consistency")
    gauss = smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x])
    studies = {
        "weak": smfsym.weak_error(_regression(), x**2 + y, [1.0, -0.5], 0.4, [0.2, 0.1, 0.05], models=["sme1", "sme2"]),
        "weak_mc": smfsym.weak_error(gauss, x**2, [1.0], 0.5, [0.25, 0.125], models=["smf1"], method="montecarlo",
                                     n_paths=256, seed=7, options=QUIET),
        "rates": smfsym.multipoint_rates(_regression(), [[1.0, -0.5], [-1.0, 0.5]], [0.2, 0.1], 0.4,
                                         models=["smf1", "smf2"], psi=["product", "sqdist"]),
        "multipoint": smfsym.multipoint(_rademacher(), [[1.0], [-1.0]], eta=0.1, t_end=0.2, n_paths=256, seed=13,
                                        models=["smf2"], options=QUIET),
        "momentum_mp": mm.momentum_multipoint(_rademacher(), [[1.0], [-1.0]], 0.4, [1 / 25, 1 / 100], 1.5,
                                              models=["smf1"], stats=["product", "sqdist"]),
        "scaling": sr.scaling_rule_study(gauss, x**2, [1.0], 0.5, optimizer="sgd", eta=0.125, ks=[1, 4],
                                         n_paths=200, seed=3, options=QUIET),
        "svag": sv.svag_study(gauss, x, [1.0], 1.0, 0.5, ls=[1, 2], n_paths=2000, seed=4, options=QUIET),
        "meanfield": smfsym.meanfield_study(_net(), etas=[0.1, 0.05], widths=[20], t_end=0.2, n_paths=8, seed=16,
                                            observe=smfsym.meanfield.Observe(n_saves=2),
                                            numerics=smfsym.meanfield.MeanFieldNumerics(n_points=8), options=QUIET),
    }
    return {k: json.loads(st.save(d / f"{k}.json").read_text()) for k, st in studies.items()}


def _load(tmp_path, doc):
    path = tmp_path / "study.json"
    path.write_text(json.dumps(doc))
    return smfsym.load_study(path)


def _order(*v):
    return {"__order__": list(v)}


def _set(path, value):
    """An edit: set the value at ``path`` (keys and indices below ``fields``)."""
    def edit(f):
        for p in path[:-1]:
            f = f[p]
        f[path[-1]] = value
    return edit


def _rename_result(old, new):
    def edit(f):
        f["results"][new] = f["results"].pop(old)
    return edit


# (study, what, edit of doc["fields"], the message it must raise (a regex))
CASES = [
    # weak error (exact): the audit's cases first
    ("weak", "order outside its interval, n_used > etas", _set(("orders", "sme1"), _order(5.0, 7.0, 3.0, 99)),
     r"`orders\.sme1\.n_used` must be at most the 3 points the study has; got 99"),
    ("weak", "slope above high", _set(("orders", "sme1"), _order(8.0, 4.0, 7.0, 3)),
     r"`orders\.sme1` must be an order with slope <= high; got slope = 8\.0, high = 7\.0"),
    ("weak", "low above slope", _set(("orders", "sme1"), _order(5.0, 7.0, 3.0, 3)),
     r"`orders\.sme1` must be an order with low <= slope"),
    ("weak", "a slope fitted on one point", _set(("orders", "sme1"), _order(1.0, 1.0, 1.0, 1)),
     r"`orders\.sme1\.slope` must be NaN \(unfitted\) when n_used = 1 < 2"),
    ("weak", "an order missing (to_latex's KeyError)", lambda f: f["orders"].pop("sme2"),
     r"`orders` must hold an order for each of \['sme1', 'sme2'\]; got none for 'sme2'"),
    ("weak", "an order of a model not run", _set(("orders", "gf"), _order(1.0, 1.0, 1.0, 3)),
     r"`orders\.gf` must be an order of one of the study's \['sme1', 'sme2'\]"),
    ("weak", "row at an eta not run", _set(("rows", 0, "eta"), 0.7),
     r"`rows\[0\]\.eta` must be one of the study's `etas` \[0\.2, 0\.1, 0\.05\]; got 0\.7"),
    ("weak", "row of a model not run", _set(("rows", 0, "model"), "smf1"),
     r"`rows\[0\]\.model` must be one of the study's `models`"),
    ("weak", "error not value - sgd", _set(("rows", 0, "error"), 123.0),
     r"`rows\[0\]\.error` must be `value` - `sgd` = .* \(to a relative 1e-09\); got 123\.0"),
    ("weak", "error NaN, value and sgd not", _set(("rows", 0, "error"), NAN), r"`rows\[0\]\.error` must be `value`"),
    ("weak", "negative standard error (matplotlib's yerr)", _set(("rows", 0, "se"), -1.0),
     r"`rows\[0\]\.se` must be at least 0 \(a standard error\) or NaN; got -1\.0"),
    ("weak", "negative sgd_se", _set(("rows", 1, "sgd_se"), -1e-3), r"`rows\[1\]\.sgd_se` must be at least 0"),
    ("weak", "lost fraction above 1", _set(("rows", 0, "lost"), 1.5),
     r"`rows\[0\]\.lost` must be a fraction of paths in \[0, 1\]; got 1\.5"),
    ("weak", "etas negative, zero, huge", _set(("etas",), [-1.0, 0.0, 1e308]),
     r"`etas\[0\]` must be a positive finite number; got -1\.0"),
    ("weak", "eta zero", _set(("etas",), [0.2, 0.0, 0.05]), r"`etas\[1\]` must be a positive finite number; got 0\.0"),
    ("weak", "eta infinite", _set(("etas",), [0.2, 0.1, {"__float__": "inf"}]), r"`etas\[2\]` must be a positive finite"),
    ("weak", "etas duplicated", _set(("etas",), [0.2, 0.1, 0.1]),
     r"`etas\[2\]` must be distinct from the other entries of `etas`; got 0\.1, as `etas\[1\]`"),
    ("weak", "etas empty", _set(("etas",), []), r"`etas` must be a non-empty array"),
    ("weak", "models duplicated", _set(("models",), ["sme1", "sme1"]), r"`models\[1\]` must be distinct"),
    ("weak", "n_paths negative", _set(("meta", "n_paths"), -5),
     r"`meta\.n_paths` must be an integer of at least 2 \(paths per Monte Carlo estimate\); got -5"),
    ("weak", "no rows (to_pandas' StopIteration)", _set(("rows",), []),
     r"`rows` must be a non-empty array \(every study of this kind has rows\); got \[\]"),
    ("weak", "a row twice", lambda f: f["rows"].append(copy.deepcopy(f["rows"][0])),
     r"`rows\[6\]` must be the only row of \(eta = 0\.2, model = 'sme1'\); got a second one \(also `rows\[0\]`\)"),
    ("weak", "a row missing (to_latex's KeyError)", lambda f: f["rows"].pop(),
     r"`rows` must hold a row for every \(eta, model\) of the study; got none for \(eta = 0\.05, model = 'sme2'\)"),
    # weak error (Monte Carlo)
    ("weak_mc", "n_paths 1", _set(("meta", "n_paths"), 1), r"`meta\.n_paths` must be an integer of at least 2"),
    ("weak_mc", "negative solver error", _set(("rows", 0, "solver_error"), -0.1), r"`rows\[0\]\.solver_error`"),
    ("weak_mc", "lost_sgd negative", _set(("rows", 1, "lost_sgd"), -0.5), r"`rows\[1\]\.lost_sgd` must be a fraction"),
    # n-point rates
    ("rates", "row of a statistic not run", _set(("rows", 0, "psi"), "covariance"),
     r"`rows\[0\]\.psi` must be one of the study's `psi` \['product', 'sqdist'\]; got 'covariance'"),
    ("rates", "error not value - sgd", _set(("rows", 2, "error"), 1.0), r"`rows\[2\]\.error` must be `value` - `sgd`"),
    ("rates", "order of a statistic not run", _set(("orders", "smf1:covariance"), _order(1.0, 1.0, 1.0, 2)),
     r"`orders\.smf1:covariance` must be an order of one of the study's"),
    ("rates", "an order missing", lambda f: f["orders"].pop("smf2:sqdist"),
     r"`orders` must hold an order for each of .*; got none for 'smf2:sqdist'"),
    ("rates", "n_used above the etas", _set(("orders", "smf1:product"), _order(1.0, 1.0, 1.0, 5)),
     r"`orders\.smf1:product\.n_used` must be at most the 2 points"),
    ("rates", "no rows", _set(("rows",), []), r"`rows` must be a non-empty array"),
    # multi-point
    ("multipoint", "SGD's rows missing (value()'s StopIteration)",
     lambda f: f.update(rows=[r for r in f["rows"] if r["model"] != "sgd"]),
     r"`rows` must hold a row for every \(psi, model\) of the study; got none for \(psi = 'covariance', model = 'sgd'\)"),
    ("multipoint", "negative standard error", _set(("rows", 0, "se"), -1.0), r"`rows\[0\]\.se` must be at least 0"),
    ("multipoint", "statistic not in meta.psi", _set(("rows", 0, "psi"), "other"),
     r"`rows\[0\]\.psi` must be one of the study's `meta\.psi`"),
    ("multipoint", "eta negative", _set(("eta",), -0.1), r"`eta` must be a positive finite number; got -0\.1"),
    ("multipoint", "n_paths 0", _set(("meta", "n_paths"), 0), r"`meta\.n_paths` must be an integer of at least 2"),
    ("multipoint", "no rows", _set(("rows",), []), r"`rows` must be a non-empty array"),
    # momentum two-point (exact)
    ("momentum_mp", "h not sqrt(eta)", _set(("rows", 0, "h"), 0.3), r"`rows\[0\]\.h` must be sqrt\(eta\) = 0\.2"),
    ("momentum_mp", "unknown statistic", _set(("stats",), ["product", "moment"]),
     r"`stats\[1\]` must be one of \['product', 'covariance', 'sqdist'\]"),
    ("momentum_mp", "error not value - sgd", _set(("rows", 1, "error"), 0.5), r"`rows\[1\]\.error` must be `value`"),
    ("momentum_mp", "an order of a model not run", _set(("orders", "('smf2', 'product')"), _order(1.0, 1.0, 1.0, 2)),
     r"`orders\.\('smf2', 'product'\)` must be an order of one of the study's"),
    ("momentum_mp", "a row of unknown keys", _set(("rows", 0, "code"), "import os"),
     r"`rows\[0\]` must have the keys .*unknown \['code'\]"),
    ("momentum_mp", "a row that is not an object", _set(("rows", 0), "import os"), r"`rows\[0\]` must be an object"),
    ("momentum_mp", "no rows", _set(("rows",), []), r"`rows` must be a non-empty array"),
    # scaling rule
    ("scaling", "shift not value - first value", _set(("rows", 1, "shift"), 9.0),
     r"`rows\[1\]\.shift` must be `value` - `first`"),
    ("scaling", "row at a k not run", _set(("rows", 0, "k"), 3.0), r"`rows\[0\]\.k` must be one of the study's `ks`"),
    ("scaling", "ks duplicated", _set(("ks",), [1.0, 1.0]), r"`ks\[1\]` must be distinct"),
    ("scaling", "negative shift_se", _set(("rows", 1, "shift_se"), -1.0), r"`rows\[1\]\.shift_se` must be at least 0"),
    ("scaling", "zero batch", _set(("rows", 0, "batch"), 0.0), r"`rows\[0\]\.batch` must be a positive finite number"),
    ("scaling", "no rows", _set(("rows",), []), r"`rows` must be a non-empty array"),
    # SVAG
    ("svag", "error not value - sme", _set(("rows", 0, "error"), 1.0), r"`rows\[0\]\.error` must be `value` - `sme`"),
    ("svag", "n_used above the ls", _set(("order",), _order(1.0, 0.5, 1.5, 9)),
     r"`order\.n_used` must be at most the 2 points"),
    ("svag", "l zero", _set(("ls",), [0, 2]), r"`ls\[0\]` must be a positive finite number; got 0"),
    ("svag", "row at an l not run", _set(("rows", 1, "l"), 3), r"`rows\[1\]\.l` must be one of the study's `ls`"),
    ("svag", "negative n_paths", _set(("meta", "n_paths"), -5), r"`meta\.n_paths`"),
    # mean field
    ("meanfield", "row at a width not run", _set(("rows", 0, "N"), 7), r"`rows\[0\]\.N` must be one of the study's `widths`"),
    ("meanfield", "negative standard error", _set(("rows", 0, "sem_sgd"), -1.0), r"`rows\[0\]\.sem_sgd` must be at least 0"),
    ("meanfield", "a result at an eta not run", _rename_result("sgd|0.1|20", "sgd|0.3|20"),
     r"`results\.sgd\|0\.3\|20` must be keyed by an eta among `etas`"),
    ("meanfield", "a row with a string", _set(("rows", 0, "mean_sgd"), "1.0"), r"`rows\[0\]\['mean_sgd'\]` must be a number"),
    ("meanfield", "etas duplicated", _set(("etas",), [0.1, 0.1]), r"`etas\[1\]` must be distinct"),
    ("meanfield", "n_paths 1", _set(("meta", "n_paths"), 1), r"`meta\.n_paths` must be an integer of at least 2"),
    ("meanfield", "no rows", _set(("rows",), []), r"`rows` must be a non-empty array"),
]


@pytest.mark.parametrize("which, what, edit, match", CASES, ids=[f"{c[0]}: {c[1]}" for c in CASES])
def test_an_inconsistent_study_is_refused_naming_the_field(saved, tmp_path, which, what, edit, match):
    doc = copy.deepcopy(saved[which])
    edit(doc["fields"])
    with pytest.raises(ValueError, match=match) as exc:
        _load(tmp_path, doc)
    assert type(exc.value) is ValueError and str(exc.value).startswith("saved study: `")


@pytest.mark.parametrize("which", ["weak", "weak_mc", "rates", "multipoint", "momentum_mp", "scaling", "svag",
                                   "meanfield"])
def test_the_untouched_studies_load(saved, tmp_path, which):
    assert type(_load(tmp_path, saved[which])).__name__ == saved[which]["kind"]


def test_nan_where_the_format_allows_it_still_loads(saved, tmp_path):
    """An unfitted order is NaN, a standard error that could not be estimated is NaN, a NaN value gives a NaN
    error: all of these are valid studies."""
    doc = copy.deepcopy(saved["weak"])
    doc["fields"]["orders"]["sme1"] = _order(NAN, NAN, NAN, 1)
    doc["fields"]["rows"][0]["se"] = NAN
    doc["fields"]["rows"][1].update(value=NAN, error=NAN)
    back = _load(tmp_path, doc)
    assert back.orders["sme1"].n_used == 1 and "unresolved" in back.to_latex()


def test_a_loaded_study_prints_tabulates_and_plots(saved, tmp_path):
    """What loads is consistent: the table, the frame and the figure work (these crashed on edited files)."""
    back = _load(tmp_path, saved["weak"])
    assert "tabular" in back.to_latex() and len(back.to_pandas()) == 3 * 6 + 3 and repr(back)
    plt.close(back.plot(path=tmp_path / "figure.png"))


@pytest.mark.parametrize("where", ["fields", "a row"])
def test_duplicate_json_keys_are_refused_naming_the_key(saved, tmp_path, where):
    """json keeps the last of two equal keys, other readers the first: the same file would hold two studies."""
    text = json.dumps(saved["weak"])
    if where == "fields":
        text = text.replace('"fields": {', '"fields": {"etas": [9.0], ', 1)
        key = "etas"
    else:
        text = text.replace('"rows": [{', '"rows": [{"se": 0.5, ', 1)
        key = "se"
    path = tmp_path / "dup.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=rf"saved study: the key `{key}` appears twice in one object"):
        smfsym.load_study(path)


def test_every_registered_kind_declares_its_own_validation():
    """The class is the registry of checks: each kind saved by the package defines ``_validate`` itself."""
    missing = [name for name, cls in RESULTS.items() if "_validate" not in vars(cls)]
    assert not missing, f"study kinds without their own _validate: {missing}"
