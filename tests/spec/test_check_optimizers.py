"""`[check] optimizer` for optimizers written as update maps (issue 18, item 6): rmsprop, adam and a spec's own
`[update_map]`, read through the allow-list parser, every new key refused with its name when wrong, and the
check-optimizer registry that the command line reads (issue 16, item 4)."""
import copy
import json

import pytest
import sympy as sp

import smfsym
from smfsym.cli import main
from smfsym.optimizers.update_map import UpdateMap, adam, rmsprop
from smfsym.spec import SpecError, load_spec, spec_from_dict
from smfsym.spec.checks import CHECK_OPTIMIZERS, estimate_check_cost, step_of
from smfsym.spec.schema import CHECK_OPTIMIZER_NAMES, SCHEMA
from smfsym.studies.cost import CostEstimate
from smfsym.studies.registry import STUDIES

BASE = {"problem": {"params": ["x"], "loss": "(x - a)**2 / 2", "constants": {"c": 0.5}},
        "data": {"a": {"law": "normal", "std": 0.5}},
        "check": {"phi": "x**2", "x0": [1.0], "t_end": 0.5, "etas": [0.125, 0.0625], "models": ["smf1"],
                  "n_paths": 2000}}
CUSTOM = {"state": ["v"], "start": {"v": 1.0},
          "update": {"v": "v + c * eta * (g_x**2 - v)", "x": "x - eta * g_x / sqrt(v + 1/100)"}}


def doc(optimizer="rmsprop", adaptive=None, update_map=None, **check):
    d = copy.deepcopy(BASE)
    d["check"].update(optimizer=optimizer, **check)
    if adaptive is not None:
        d["check"]["adaptive"] = adaptive
    if update_map is not None:
        d["update_map"] = update_map
    return d


def test_the_registry_covers_the_schema_and_names_registered_studies():
    assert tuple(CHECK_OPTIMIZERS) == CHECK_OPTIMIZER_NAMES
    assert SCHEMA["check"]["optimizer"].range == " | ".join(CHECK_OPTIMIZER_NAMES)
    for name, entry in CHECK_OPTIMIZERS.items():
        assert entry.name == name and entry.study in STUDIES and entry.step in ("eta", "sqrt_eta", "map")


def test_rmsprop_and_adam_from_a_spec_are_the_library_maps():
    s = spec_from_dict(doc("rmsprop", {"c": 0.25, "eps": 0.5, "v0": 2.0}, phi="x**2 + v_x"))
    umap, p = s.check["update_map"], s.problem
    ref = rmsprop(p, c=sp.Rational(1, 4), eps=sp.Rational(1, 2))
    assert umap.state == ref.state and umap.A == ref.A and umap.B == ref.B
    assert s.check["z0"] == [1.0, 2.0]
    assert s.check["phi"] == sp.Symbol("x") ** 2 + ref.state[1]
    s = spec_from_dict(doc("adam", {"c1": 2.0, "m0": -0.5, "t0": 0.25}))
    ref = adam(s.problem, c1=2, c2=1, eps=sp.Rational(1, 10))
    assert s.check["update_map"].A == ref.A and s.check["update_map"].state == ref.state
    assert s.check["z0"] == [1.0, -0.5, 1.0, 0.25]  # x, m, v, t
    assert step_of(s.check) == "eta"


def test_a_spec_update_map_is_the_map_written_in_python():
    s = spec_from_dict(doc("update_map", update_map=CUSTOM, phi="x**2 + v"))
    p, x, a = s.problem, sp.Symbol("x"), s.symbols["a"]
    v, eta, c = sp.Symbol("v", real=True), sp.Symbol("eta", positive=True), s.symbols["c"]
    g = x - a
    ref = UpdateMap(p, [x, v], [x - eta * g / sp.sqrt(v + sp.Rational(1, 100)), v + c * eta * (g**2 - v)], eta=eta)
    assert s.check["update_map"].A == ref.A and s.check["update_map"].B == ref.B
    assert s.check["z0"] == [1.0, 1.0] and step_of(s.check) == "eta"
    s = spec_from_dict(doc("update_map", update_map=dict(CUSTOM, expansion="sqrt_eta")))
    assert step_of(s.check) == "sqrt_eta"


HOSTILE = [
    # [check.adaptive]: types, ranges, unknown keys and keys the optimizer does not read
    (dict(adaptive={"c": -1.0}), r"\[check.adaptive\] c"),
    (dict(adaptive={"c": float("nan")}), r"\[check.adaptive\] c"),
    (dict(adaptive={"eps": "0.1"}), r"\[check.adaptive\] eps"),
    (dict(adaptive={"v0": True}), r"\[check.adaptive\] v0"),
    (dict(adaptive={"v0": 0.0}), r"\[check.adaptive\] v0"),
    (dict(adaptive={"beta": 0.9}), r"\[check.adaptive\] beta"),
    (dict(adaptive={"c1": 1.0}), r"\[check.adaptive\] c1"),  # rmsprop reads c, eps, v0
    (dict(optimizer="adam", adaptive={"c": 1.0}), r"\[check.adaptive\] c"),
    (dict(optimizer="adam", adaptive={"t0": 0.0}), r"\[check.adaptive\] t0"),
    (dict(optimizer="adam", adaptive={"m0": float("inf")}), r"\[check.adaptive\] m0"),
    (dict(optimizer="sgd", adaptive={"c": 1.0}), r"\[check.adaptive\] c"),
    (dict(adaptive=[1.0]), r"\[check\] adaptive"),
    (dict(optimizer="lion"), r"\[check\] optimizer"),
    (dict(optimizer=3), r"\[check\] optimizer"),
    # the optimizer's own refusals
    (dict(method="exact"), r"\[check\] method"),
    (dict(multipoint={"starts": [[1.0], [0.0]], "eta": 0.1}), r"\[check.multipoint\]"),
    (dict(phi="x**2 + v"), r"\[check\] phi"),  # rmsprop's state is v_x
    (dict(phi="x + __import__('os')"), r"\[check\] phi"),
    # [update_map]
    (dict(optimizer="update_map"), r"\[check\] optimizer.*\[update_map\]"),
    (dict(optimizer="sgd", update_map=CUSTOM), r"\[update_map\]"),
    (dict(optimizer="update_map", update_map=[1]), r"\[update_map\]"),
    (dict(optimizer="update_map", update_map=dict(CUSTOM, state="v")), r"\[update_map\] state"),
    (dict(optimizer="update_map", update_map=dict(CUSTOM, state=["v", "v"])), r"\[update_map\] state"),
    (dict(optimizer="update_map", update_map=dict(CUSTOM, state=["1v"])), r"\[update_map\] state"),
    (dict(optimizer="update_map", update_map=dict(CUSTOM, state=["x"], start={"x": 1.0})), r"`x`"),
    (dict(optimizer="update_map", update_map=dict(CUSTOM, state=["a"], start={"a": 1.0})), r"`a`"),
    (dict(optimizer="update_map", update_map=dict(CUSTOM, state=["c"], start={"c": 1.0})), r"`c`"),
    (dict(optimizer="update_map", update_map=dict(CUSTOM, state=["eta"], start={"eta": 1.0})), r"`eta`"),
    (dict(optimizer="update_map", update_map=dict(CUSTOM, state=["g_x"], start={"g_x": 1.0})), r"`g_x`"),
    (dict(optimizer="update_map", update_map=dict(CUSTOM, state=["v"] * 200)), r"\[update_map\] state"),
    (dict(optimizer="update_map", update_map=dict(CUSTOM, update={"x": "x - eta * g_x"})),
     r"\[update_map\] update.*missing.*v"),
    (dict(optimizer="update_map", update_map=dict(CUSTOM, update={**CUSTOM["update"], "w": "w"})),
     r"\[update_map\] update"),
    (dict(optimizer="update_map", update_map=dict(CUSTOM, update="x - eta * g_x")), r"\[update_map\] update"),
    (dict(optimizer="update_map", update_map=dict(CUSTOM, update={**CUSTOM["update"], "v": 1.5})),
     r"\[update_map\] update.v"),
    (dict(optimizer="update_map", update_map=dict(CUSTOM, update={**CUSTOM["update"], "v": "v.__class__"})),
     r"\[update_map\] update.v"),
    (dict(optimizer="update_map", update_map=dict(CUSTOM, update={**CUSTOM["update"], "v": "v**(10**10)"})),
     r"\[update_map\] update.v"),
    (dict(optimizer="update_map", update_map=dict(CUSTOM, update={**CUSTOM["update"], "v": "v + w * eta"})),
     r"\[update_map\] update.v"),
    (dict(optimizer="update_map", update_map=dict(CUSTOM, update={**CUSTOM["update"], "v": "v + 1"})),
     r"\[update_map\] update.*identity"),
    (dict(optimizer="update_map", update_map=dict(CUSTOM, update={**CUSTOM["update"], "v": "v + sqrt(-1) * eta"})),
     r"\[update_map\] update.v"),
    (dict(optimizer="update_map", update_map=dict(CUSTOM, update={**CUSTOM["update"], "v": "x" * 30000})),
     r"\[update_map\] update.v"),
    (dict(optimizer="update_map", update_map=dict(CUSTOM, start={})), r"\[update_map\] start"),
    (dict(optimizer="update_map", update_map=dict(CUSTOM, start={"v": 1.0, "w": 2.0})), r"\[update_map\] start"),
    (dict(optimizer="update_map", update_map=dict(CUSTOM, start={"v": "1"})), r"\[update_map\] start"),
    (dict(optimizer="update_map", update_map=dict(CUSTOM, start={"v": float("nan")})), r"\[update_map\] start"),
    (dict(optimizer="update_map", update_map=dict(CUSTOM, expansion="eta2")), r"\[update_map\] expansion"),
    (dict(optimizer="update_map", update_map=dict(CUSTOM, name="x")), r"\[update_map\] name"),
]


@pytest.mark.parametrize("kw,match", HOSTILE)
def test_hostile_optimizer_keys_are_refused_naming_the_key(kw, match):
    kw = dict(kw)
    d = doc(kw.pop("optimizer", "rmsprop"), kw.pop("adaptive", None), kw.pop("update_map", None), **kw)
    before = copy.deepcopy(d)
    with pytest.raises(SpecError, match=match):
        spec_from_dict(d)
    assert d == before  # the document is not touched


def test_batch_size_above_one_is_refused_for_an_update_map():
    d = doc("rmsprop")
    d["problem"]["batch_size"] = 4
    with pytest.raises(SpecError, match=r"\[problem\] batch_size.*one sample"):
        spec_from_dict(d)


def test_a_python_spec_checks_rmsprop_too(tmp_path):
    f = tmp_path / "s.py"
    f.write_text("import sympy as sp, smfsym\nx = sp.Symbol('x')\n"
                 "problem = smfsym.Problem((x - smfsym.normal('a')) ** 2 / 2, [x])\n"
                 "check = dict(phi='x**2 + v_x', x0=[1.0], etas=[0.1, 0.05], optimizer='rmsprop')\n")
    s = load_spec(f)
    assert s.check["z0"] == [1.0, 1.0] and s.check["update_map"].name == "rmsprop"


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
@pytest.mark.parametrize("name", CHECK_OPTIMIZER_NAMES)
def test_every_check_optimizer_has_a_cost_estimate(name):
    extra = {"update_map": CUSTOM} if name == "update_map" else {}
    etas = [0.25, 0.0625] if CHECK_OPTIMIZERS[name].step == "sqrt_eta" else [0.125, 0.0625]
    s = spec_from_dict(doc(name, update_map=extra.get("update_map"), etas=etas, method="montecarlo"))
    est = estimate_check_cost(s, s.check)
    assert isinstance(est, CostEstimate) and est.seconds > 0 and "sgd" in est.parts


def _run_check(spec_name, tmp_path):
    out = tmp_path / "out"
    assert main(["check", spec_name, "-o", str(out), "--quiet", "--models", "smf1", "--n-paths", "8192"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == "montecarlo"
    assert smfsym.load_study(out / "weak_error.json").meta["optimizer"] == spec_name
    return summary


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
def test_check_runs_the_shipped_rmsprop_spec(tmp_path):
    """The real command (smf1 only, 8192 paths): the SMF's slope-1 error is resolved at these etas, so the
    fitted 95% interval of the order must contain 1."""
    summary = _run_check("rmsprop", tmp_path)
    slope, low, high, n = (summary["orders"]["smf1"][k] for k in ("slope", "low", "high", "n_etas"))
    assert n >= 2 and low <= 1 <= high, summary["orders"]


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
def test_check_runs_the_shipped_update_map_spec_on_the_optimizer_it_states(tmp_path):
    """The optimizer the command simulated from the spec's text is the one the spec states: E phi at t_end
    agrees with a hand-written numpy loop of the same update (independent streams) within 5 standard errors
    of the difference, at every eta."""
    import numpy as np

    summary = _run_check("update_map", tmp_path)
    c, eps, t_end = 0.5, 0.01, 0.5
    rng = np.random.default_rng(12345)
    for row in summary["rows"]:
        eta, n = row["eta"], 200_000
        x, v = np.full(n, 1.0), np.full(n, 1.0)
        for _ in range(round(t_end / eta)):
            g = x - rng.normal(0.0, 0.5, n)
            v = v + c * eta * (g**2 - v)
            x = x - eta * g / np.sqrt(v + eps)
        phi = x**2 + v
        se = np.hypot(row["sgd_se"], phi.std(ddof=1) / np.sqrt(n))
        assert abs(row["sgd"] - phi.mean()) < 5 * se, (eta, row["sgd"], phi.mean(), se)
