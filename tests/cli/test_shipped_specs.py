"""Every shipped spec runs end to end through the real command (issue 15): `derive` and `check` in a subprocess,
no stubs, with a small path count; the list of specs is read from smfsym/specs/, so a new spec is covered."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from smfsym.cli import SHIPPED
from smfsym.spec import load_spec
from smfsym.spec.checks import step_of

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
ENV.pop("SMFSYM_TRACEBACK", None)
SPECS = sorted(p.stem for p in SHIPPED.glob("*.toml"))
#: Monte Carlo paths of the end-to-end check (never more than the spec's own).
SMALL_PATHS = 4096


def run(*args, cwd):
    return subprocess.run([sys.executable, "-m", "smfsym", *args], capture_output=True, text=True, cwd=cwd,
                          env=ENV, timeout=600)


def test_the_specs_command_lists_every_shipped_spec(tmp_path):
    res = run("specs", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert [line.split()[0] for line in res.stdout.splitlines()] == SPECS
    assert len(SPECS) >= 6


@pytest.mark.parametrize("name", SPECS)
def test_shipped_learning_rates_divide_the_horizon(name):
    # SGD with step eta (momentum: h = sqrt(eta)) must land on t_end, or SGD and the SDEs end at different times
    spec = load_spec(SHIPPED / f"{name}.toml")
    for table, key in ((spec.check, "check"), (spec.meanfield_check, "meanfield.check")):
        if not table:
            continue
        sqrt = key == "check" and step_of(table) == "sqrt_eta"
        for eta in table["etas"]:
            steps = table["t_end"] / (math.sqrt(eta) if sqrt else eta)
            assert abs(steps - round(steps)) < 1e-9 * steps, (name, key, eta, steps)


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", SPECS)
def test_shipped_spec_derives_and_checks_end_to_end(tmp_path, name):
    spec = load_spec(SHIPPED / f"{name}.toml")
    for fmt, out in (("latex", "d.tex"), ("text", "d.txt")):
        res = run("derive", name, "--format", fmt, "-o", out, cwd=tmp_path)
        assert res.returncode == 0 and res.stdout.strip() == f"wrote {out}", res.stderr
    tex = (tmp_path / "d.tex").read_text()
    assert tex.startswith(r"\documentclass") and tex.rstrip().endswith(r"\end{document}")
    assert (tmp_path / "d.txt").stat().st_size > 0

    n_paths = min([SMALL_PATHS] + [t["n_paths"] for t in (spec.check, spec.meanfield_check) if t])
    res = run("check", name, "-o", "out", "--n-paths", str(n_paths), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    out = tmp_path / "out"
    expected = {".smfsym-check", "summary.json"}
    if spec.check:
        expected |= {"weak_error.txt", "weak_error.tex", "weak_error.png", "weak_error.json"}
        if spec.check.get("multipoint"):
            expected |= {"multipoint.txt", "multipoint.tex", "multipoint.json"}
    if spec.meanfield_check:
        expected |= {"meanfield.txt", "meanfield.tex", "meanfield.png", "meanfield.json"}
    assert {p.name for p in out.iterdir()} == expected
    for f in expected - {".smfsym-check"}:
        assert (out / f).stat().st_size > 0, f
    summary = json.loads((out / "summary.json").read_text())
    if spec.check:
        import smfsym

        study = smfsym.load_study(out / "weak_error.json")
        assert sorted(summary["orders"]) == sorted(study.orders)
        assert set(spec.check["models"]) <= set(summary["orders"])
        if summary["method"] != "exact":
            assert f"{n_paths:,} paths" in (out / "weak_error.txt").read_text()  # the override reached the study
        if spec.check.get("multipoint"):  # the override reached the multi-point study too
            assert smfsym.load_study(out / "multipoint.json").meta["n_paths"] == n_paths
    if spec.meanfield_check:
        assert summary["meanfield"]["meta"]["n_paths"] == n_paths
    # nothing but the outputs: no temporary left beside them
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.tex", "d.txt", "out"]
