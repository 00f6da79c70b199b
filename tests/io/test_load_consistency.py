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
t = sp.Symbol("t")


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
        # audit 4, finding 9: the other writers of a WeakErrorStudy (their own order rules), Monte Carlo fits
        # with a stored `meta.resolve`
        "weak_mc_resolved": smfsym.weak_error(gauss, x**2, [1.0], 0.5, [0.25, 0.125], models=["gf", "smf1"],
                                              n_paths=4000, seed=7, options=QUIET,
                                              numerics=smfsym.Numerics(method="montecarlo", resolve=1.0)),
        "schedule": smfsym.schedule_weak_error(_regression(), smfsym.Schedule(1 / (1 + t), t), x**2 + y, [1.0, -0.5],
                                               0.4, [0.2, 0.1], models=["smf1", "smf2"]),
        "schedule_mc": smfsym.schedule_weak_error(gauss, smfsym.Schedule(1 / (1 + t), t), x**2, [1.0], 0.5,
                                                  [0.25, 0.125], models=["smf1"], n_paths=2000, seed=5,
                                                  numerics=smfsym.Numerics(method="montecarlo", resolve=1.0),
                                                  options=QUIET),
        "momentum": smfsym.momentum_weak_error(_regression(), x**2 + y, [1.0, -0.5], 0.4, [1 / 25, 1 / 100], 1.5,
                                               models=["smf1"]),
        "umap": smfsym.update_map_weak_error(smfsym.rmsprop(gauss), x**2, [1.0, 1.0], 0.25, [1 / 8, 1 / 16],
                                             models=["gf"], n_paths=500, seed=2, options=QUIET),
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


def _sgd(i, value):
    """An edit: row i's SGD value set to ``value``, its error made consistent (``value - sgd``)."""
    def edit(f):
        r = f["rows"][i]
        r.update(sgd=value, error=r["value"] - value)
    return edit


def _both(*edits):
    def edit(f):
        for e in edits:
            e(f)
    return edit


def _refit(which, key, **change):
    """An edit: the order ``key`` of the saved study with ``change`` (slope, low, high, n_used) applied."""
    names = ("slope", "low", "high", "n_used")

    def edit(f):
        holder, k = (f, "order") if key is None else (f["orders"], key)  # SVAG has one order
        o = dict(zip(names, holder[k]["__order__"]))
        o.update(change)
        holder[k] = _order(*(o[n] for n in names))
    return edit


REFITTED = r"refitted from the study's rows \(to a relative 1e-09\); got "
# audit 4, finding 9: well-typed, individually valid fields that contradict what the study computed from its rows
CASES += [
    # the audit's cases (exact weak error, three etas)
    ("weak", "an order's slope not the refit of its rows", _refit("weak", "sme1", slope=7.0, low=6.0, high=8.0),
     r"`orders\.sme1\.slope` must be [\d.e+-]+, the slope " + REFITTED + r"7\.0"),
    ("weak", "an order's interval not the refit's", _refit("weak", "sme2", high=9.0), r"`orders\.sme2\.high` must be"),
    ("weak", "n_used not the resolved points", _refit("weak", "sme1", n_used=2),
     r"`orders\.sme1\.n_used` must be 3, the points resolved in the study's rows; got 2"),
    ("weak", "one model's SGD value differs at one eta", _sgd(1, 0.9),
     r"`rows\[1\]\.sgd` must be [\d.e+-]+, as `rows\[0\]\.sgd` \(SGD runs once per eta, \(eta = 0\.2\)\); got 0\.9"),
    ("weak", "one model's sgd_se differs at one eta", _set(("rows", 3, "sgd_se"), 0.5),
     r"`rows\[3\]\.sgd_se` must be 0"),
    ("weak", "a row's t not the horizon", _set(("rows", 0, "t"), 7.0),
     r"`rows\[0\]\.t` must be 0\.4, the study's time `t\[0\]` at eta = 0\.2 \(to a relative 1e-08\); got 7\.0"),
    ("weak", "the times not t_end", _set(("t",), [7.0, 7.0, 7.0]),
     r"`t\[0\]` must be 0\.4, the study's horizon `meta\.t_end` \(to a relative 1e-08\); got 7\.0"),
    ("weak", "one time per eta", _set(("t",), [0.4]), r"`t` must be one time per eta \(3 of them\); got 1 times"),
    ("weak", "an unknown method", _set(("rows", 0, "method"), "bogus"),
     r"`rows\[0\]\.method` must be 'exact', 'montecarlo' or 'montecarlo \(<scheme, steps>\)'; got 'bogus'"),
    ("weak", "an exact row with a standard error", _set(("rows", 0, "se"), 5.0),
     r"`rows\[0\]\.se` must be 0 in an exact row \(method = 'exact': no Monte Carlo error\); got 5\.0"),
    ("weak", "an exact row's value_se", _set(("rows", 2, "value_se"), 1e-3), r"`rows\[2\]\.value_se` must be 0"),
    ("weak", "a row's method not meta.methods'", _set(("meta", "methods", "sme2"), "montecarlo"),
     r"`rows\[1\]\.method` must be a Monte Carlo method, as `meta\.methods\.sme2` says; got 'exact'"),
    # Monte Carlo weak error: refitted with the stored resolution rule
    ("weak_mc_resolved", "an order's slope not the refit",
     _refit("weak_mc_resolved", "gf", slope=1.5, low=1.5, high=1.5, n_used=2),
     r"`orders\.gf\.slope` must be .*" + REFITTED + r"1\.5"),
    ("weak_mc_resolved", "another resolution than the fit's", _set(("meta", "resolve"), 1e6),
     r"`orders\.(gf|smf1)\.slope` must be nan, the slope " + REFITTED),
    ("weak_mc_resolved", "the noise-free model's SGD lost fraction", _set(("rows", 0, "lost_sgd"), 0.5),
     r"`rows\[1\]\.lost_sgd` must be 0\.5, as `rows\[0\]\.lost_sgd`"),
    ("weak_mc_resolved", "a Monte Carlo method of another form", _set(("rows", 1, "method"), "montecarlo (euler"),
     r"`rows\[1\]\.method` must be 'exact', 'montecarlo'"),
    # schedules, momentum, update maps: each refitted by its own rule
    ("schedule", "an order's slope", _refit("schedule", "smf2", slope=5.0, n_used=2, low=NAN, high=NAN),
     r"`orders\.smf2\.slope` must be .*" + REFITTED + r"5\.0"),
    ("schedule", "a row's t", _set(("rows", 3, "t"), 0.3), r"`rows\[3\]\.t` must be 0\.4"),
    ("schedule", "one model's SGD value", _sgd(3, 0.9), r"`rows\[3\]\.sgd` must be"),
    ("schedule_mc", "an order's n_used", _refit("schedule_mc", "smf1", n_used=0, slope=NAN, low=NAN, high=NAN),
     r"`orders\.smf1\.slope` must be [\d.e+-]+, the slope " + REFITTED + "nan"),
    ("schedule_mc", "an exact row in a Monte Carlo study", _set(("rows", 0, "method"), "exact"),
     r"`rows\[0\]\.se` must be 0 in an exact row"),
    ("momentum", "an order's slope", _refit("momentum", "smf1", slope=3.0),
     r"`orders\.smf1\.slope` must be .*" + REFITTED + r"3\.0"),
    ("momentum", "h not sqrt(eta)", _set(("rows", 0, "h"), 0.5), r"`rows\[0\]\.h` must be sqrt\(eta\) = 0\.2"),
    ("momentum", "a row without h", lambda f: f["rows"][1].pop("h"), r"`rows\[1\]` must have a row with `h`"),
    ("umap", "an order's slope", _refit("umap", "gf", slope=0.5, low=0.5, high=0.5, n_used=2),
     r"`orders\.gf\.slope` must be .*" + REFITTED + r"0\.5"),
    ("umap", "a row's t", _set(("t",), [0.25, 0.5]), r"`t\[1\]` must be 0\.25"),
    # n-point rates (exact)
    ("rates", "an order's slope", _refit("rates", "smf1:product", slope=4.0, n_used=2, low=NAN, high=NAN),
     r"`orders\.smf1:product\.slope` must be .*" + REFITTED + r"4\.0"),
    ("rates", "SGD's value differs between models", _sgd(2, 0.25), r"`rows\[2\]\.sgd` must be .*\(SGD runs once per "
     r"eta, \(eta = 0\.2, psi = 'product'\)\); got 0\.25"),
    ("rates", "a row's t", _set(("rows", 0, "t"), 1.0), r"`rows\[0\]\.t` must be 0\.4"),
    ("rates", "the times not t_end", _set(("t",), [0.8, 0.8]), r"`t\[0\]` must be 0\.4, the study's horizon"),
    ("rates", "an unknown method", _set(("rows", 0, "method"), "bogus"), r"`rows\[0\]\.method` must be 'exact' or "
     r"'montecarlo'; got 'bogus'"),
    ("rates", "an exact row with a standard error", _set(("rows", 0, "se"), 5.0), r"`rows\[0\]\.se` must be 0 in an "
     r"exact row"),
    # multi-point, momentum two-point, SVAG
    ("multipoint", "t not the horizon", _set(("t",), 7.0), r"`t` must be 0\.2, the study's horizon `meta\.t_end`"),
    ("momentum_mp", "an order's slope", _refit("momentum_mp", "('smf1', 'product')", slope=9.0, low=NAN, high=NAN),
     r"`orders\.\(smf1, product\)\.slope` must be .*" + REFITTED + r"9\.0"),
    ("momentum_mp", "SGD's value differs between models",
     _both(_set(("models",), ["smf1", "smf2"]), lambda f: f["rows"].extend(
         dict(copy.deepcopy(r), model="smf2") for r in list(f["rows"])),
         lambda f: f["orders"].update({k.replace("smf1", "smf2"): v for k, v in list(f["orders"].items())}),
         _sgd(-1, 0.75)),
     r"`rows\[7\]\.sgd` must be .*SGD's moments are computed once per eta.*; got 0\.75"),
    ("momentum_mp", "a row's t", _set(("rows", 2, "t"), 9.0), r"`rows\[2\]\.t` must be 0\.4"),
    ("svag", "the reference differs between rows", _set(("rows", 1, "sme_se"), 0.5),
     r"`rows\[1\]\.sme_se` must be [\d.e+-]+, as `rows\[0\]\.sme_se` \(one reference for every l\); got 0\.5"),
    ("svag", "the order not the refit", _refit("svag", None, slope=2.0, low=NAN, high=NAN, n_used=2),
     r"`order\.slope` must be .*" + REFITTED + r"2\.0"),
    ("svag", "t not the horizon", _set(("t",), 2.0), r"`t` must be 1\.0, the study's horizon"),
]


@pytest.mark.parametrize("which, what, edit, match", CASES, ids=[f"{c[0]}: {c[1]}" for c in CASES])
def test_an_inconsistent_study_is_refused_naming_the_field(saved, tmp_path, which, what, edit, match):
    doc = copy.deepcopy(saved[which])
    edit(doc["fields"])
    with pytest.raises(ValueError, match=match) as exc:
        _load(tmp_path, doc)
    assert type(exc.value) is ValueError and str(exc.value).startswith("saved study: `")


@pytest.mark.parametrize("which", ["weak", "weak_mc", "rates", "multipoint", "momentum_mp", "scaling", "svag",
                                   "meanfield", "weak_mc_resolved", "schedule", "schedule_mc", "momentum", "umap"])
def test_the_untouched_studies_load(saved, tmp_path, which):
    assert type(_load(tmp_path, saved[which])).__name__ == saved[which]["kind"]


@pytest.mark.parametrize("which", ["weak_mc_resolved", "schedule_mc", "svag"])
def test_a_file_from_before_meta_resolve_loads_unrefitted(saved, tmp_path, which):
    """Monte Carlo orders depend on `resolve`, saved in `meta` since audit 4: older files load, not refitted."""
    doc = copy.deepcopy(saved[which])
    del doc["fields"]["meta"]["resolve"]
    assert type(_load(tmp_path, doc)).__name__ == saved[which]["kind"]


def test_nan_where_the_format_allows_it_still_loads(saved, tmp_path):
    """An unfitted order is NaN, a standard error that could not be estimated is NaN, a NaN value gives a NaN
    error: all of these are valid studies."""
    doc = copy.deepcopy(saved["weak"])
    # sme1's rows at eta = 0.2 (no standard error) and 0.1 (no value): one resolved error left, so its order is
    # unfitted, as a refit of these rows gives it (audit 4, finding 9: orders are refitted on load)
    doc["fields"]["orders"]["sme1"] = _order(NAN, NAN, NAN, 1)
    doc["fields"]["rows"][0]["se"] = NAN
    doc["fields"]["rows"][2].update(value=NAN, error=NAN)
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
