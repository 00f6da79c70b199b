"""The [meanfield] section of a TOML spec, and `smfsym derive` / `smfsym check` on it."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import smfsym
from smfsym.meanfield import InitialParticles, MeanFieldNumerics, Observe
from smfsym.spec import SpecError, load_spec

from latex_tools import compile_tex

SHIPPED = Path(smfsym.__file__).parent / "specs" / "meanfield_teacher.toml"


def run(*args):
    return subprocess.run([sys.executable, "-m", "smfsym", *args], capture_output=True, text=True)


def test_shipped_spec_builds_the_same_network_as_the_python_api():
    spec = load_spec(SHIPPED)
    assert spec.problem is None and spec.meanfield is not None
    net = spec.meanfield
    a, w, out = sp.symbols("a w out")
    z = net.inputs[0]
    by_hand = smfsym.MeanFieldProblem(a * sp.tanh(w * z), (a, w), out, (out - sp.tanh(2 * z)) ** 2 / 2)
    assert sp.simplify(net.first_variation - by_hand.first_variation) == 0
    assert (net.drift - by_hand.drift).applyfunc(sp.simplify) == sp.zeros(2, 1)
    assert spec.particles == {"a": ("normal", 0.0, 0.1), "w": ("normal", 0.0, 1.0)}
    th = smfsym.particles(net, 50, law=spec.particles, seed=spec.meanfield_check["particle_seed"])
    # a sample s.d. of 50 normal draws has standard error 0.1 / sqrt(2 * 49) = 0.0101: 0.05 is 5 of them
    assert th.shape == (50, 2) and abs(th[:, 0].std() - 0.1) < 0.05


@pytest.mark.parametrize("edit,match", [
    ({"output": "y"}, r"\[meanfield\] output"),
    ({"unit": "a * tanh(w * q)"}, r"\[meanfield\] unit"),
    ({"params": ["a", "w", "a"]}, r"\[meanfield\] params"),
    ({"particles": {"b": ["normal", 0, 1]}}, r"\[meanfield\] particles"),
    ({"particles": {"a": ["normal", 0, -1]}}, r"\[meanfield\] particles"),
    ({"particles": {"a": ["gumbel", 0, 1]}}, r"\[meanfield\] particles"),
    ({"check": {"etas": [0.3], "t_end": 1.0, "n_saves": 2}}, r"\[meanfield.check\] etas"),
    ({"check": {"etas": [0.1], "widths": [0]}}, r"\[meanfield.check\] widths"),
    ({"check": {"etas": [0.05], "widths": [10**6], "n_paths": 10**6}}, r"MAX_WORK"),
    ({"check": {"etas": [0.05], "methods": ["ddsmf"]}}, r"\[meanfield.check\] methods.*sgd"),
    ({"check": {"etas": [0.1], "n_paths": True}}, r"\[meanfield.check\] n_paths"),
])
def test_bad_meanfield_tables_are_refused_naming_the_key(edit, match):
    from smfsym.spec import spec_from_dict

    doc = {"meanfield": {"params": ["a", "w"], "output": "out", "unit": "a * tanh(w * z)",
                         "loss": "(out - tanh(2*z))**2 / 2"}, "data": {"z": {"law": "normal"}}}
    doc["meanfield"].update(edit)
    with pytest.raises(SpecError, match=match):
        spec_from_dict(doc)


def test_check_needs_a_problem_and_names_clash_across_sections():
    from smfsym.spec import spec_from_dict

    with pytest.raises(SpecError, match=r"\[check\]"):
        spec_from_dict({"meanfield": {"params": ["a"], "output": "o", "unit": "a*z", "loss": "(o - z)**2"},
                        "data": {"z": {"law": "normal"}}, "check": {"phi": "a", "x0": [0.0], "etas": [0.1]}})
    with pytest.raises(SpecError, match="already used"):
        spec_from_dict({"problem": {"params": ["a"], "loss": "(a - z)**2"},
                        "meanfield": {"params": ["a"], "output": "o", "unit": "a*z", "loss": "(o - z)**2"},
                        "data": {"z": {"law": "normal"}}})


def test_derive_writes_a_document_that_compiles(tmp_path):
    res = run("derive", "meanfield_teacher", "-o", str(tmp_path / "mf.tex"))
    assert res.returncode == 0, res.stderr
    tex = (tmp_path / "mf.tex").read_text()
    assert r"\section*{Mean-field flow}" in tex and r"\mu_t" in tex
    compile_tex(tex, tmp_path, "mf")
    res = run("derive", "meanfield_teacher", "--format", "text")
    assert res.returncode == 0 and "first variation v =" in res.stdout


@pytest.mark.slow  # over 10 s on a shared 2-core machine
def test_check_runs_the_study_and_writes_its_files(tmp_path):
    out = tmp_path / "mf"
    res = run("check", "meanfield_teacher", "-o", str(out))
    assert res.returncode == 0, res.stderr
    for f in ("meanfield.txt", "meanfield.tex", "meanfield.png", "meanfield.json", "summary.json"):
        assert (out / f).stat().st_size > 0
    d = json.loads((out / "meanfield.json").read_text())
    spec = load_spec(SHIPPED)
    assert d["etas"] == spec.meanfield_check["etas"] and d["widths"] == spec.meanfield_check["widths"]
    rows = [r for r in d["rows"] if r["t"] == spec.meanfield_check["t_end"]]
    assert rows and all(r["var_sgd"] > 0 for r in rows)
    # the deterministic limit has no fluctuations; SGD's Var[R] is resolved (> 4 SE)
    assert all(r["var_sgd"] > 4 * r["var_se_sgd"] for r in rows)
    compile_tex((out / "meanfield.tex").read_text(), tmp_path, "table")
    rule = d["meta"]["rule"]  # the spec's n_points, checked against the next finer rule: settled
    assert rule["n_points"] == spec.meanfield_check["n_points"] and rule["converged"] is True
    assert max(rule["changes"][0].values()) <= rule["tol"]
    for r in rows:  # the DD-SMF's fluctuations match SGD's: within 5 SE plus an O(eta) relative term
        assert abs(r["var_ddsmf"] - r["var_sgd"]) < 5 * np.hypot(r["var_se_sgd"], r["var_se_ddsmf"]) + r["eta"] * r["var_sgd"]
    assert np.isfinite([r["mean_limit"] for r in rows]).all()


def test_a_rule_too_small_for_the_noise_is_reported():
    spec = load_spec(SHIPPED)
    with pytest.warns(smfsym.CapturedNoiseWarning, match="raise `n_points`"):
        st = smfsym.meanfield_study(spec.meanfield, InitialParticles(law=spec.particles), etas=[0.1], t_end=0.2,
                                    widths=[20], n_paths=4, observe=Observe(n_saves=1),
                                    numerics=MeanFieldNumerics(n_points=3), methods=["sgd", "ddsmf"])
    assert st.meta["rule"]["converged"] is False and max(st.meta["rule"]["changes"][0].values()) > 0.02


@pytest.mark.slow  # runs check end to end (about 4 s; keeps the default tier under 3 minutes)
def test_a_spec_takes_n_points_auto_by_default_as_the_python_study_does(tmp_path):
    """Audit 11, F5: a spec's [meanfield.check] n_points was a fixed 12 (the Python default is "auto"), which left
    the teacher network's rule 43% off, and the warning's advice, n_points = 'auto', was refused by the schema. The
    default is "auto" now: the rule is refined, the cost estimate refines it first too, and check runs."""
    from smfsym.meanfield.cost import estimate_meanfield_cost

    text = SHIPPED.read_text()
    assert "\nn_points = 48" in text
    text = (text.replace("\nn_points = 48", "\n#").replace("n_paths = 192", "n_paths = 16")
            .replace("widths = [300]", "widths = [40]"))
    spec_path = tmp_path / "auto.toml"
    spec_path.write_text(text)
    spec = load_spec(spec_path)
    m = spec.meanfield_check
    assert m["n_points"] == "auto"
    est = estimate_meanfield_cost(spec.meanfield, etas=m["etas"], t_end=m["t_end"], widths=m["widths"], n_paths=16,
                                  numerics=MeanFieldNumerics(n_points="auto"))
    assert est.seconds > 0 and "captured noise" in est.parts
    res = run("check", str(spec_path), "-o", str(tmp_path / "out"))
    assert res.returncode == 0, res.stderr
    assert "RuleResolutionWarning" not in res.stderr and "n_points = 48 (settled" in res.stdout


@pytest.mark.parametrize("bad", ['"Auto"', '"auto "', '"12"', '""', "1.5", "true", "1", "65", "-3", "[8]",
                                 "{ n = 8 }", "nan", "inf"])
def test_meanfield_n_points_refuses_everything_but_an_integer_or_auto(tmp_path, bad):
    """The key takes "auto" (the default) or an integer in [2, 64]; every other value (TOML text here) is refused
    naming it."""
    text = SHIPPED.read_text().replace("\nn_points = 48", f"\nn_points = {bad}")
    (tmp_path / "s.toml").write_text(text)
    with pytest.raises(SpecError, match=r"`\[meanfield\.check\] n_points`: expected an integer in \[2, 64\]"):
        load_spec(tmp_path / "s.toml")
    (tmp_path / "s.toml").write_text(SHIPPED.read_text().replace("\nn_points = 48", '\nn_points = "auto"'))
    assert load_spec(tmp_path / "s.toml").meanfield_check["n_points"] == "auto"
