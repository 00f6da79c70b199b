"""Every worked derivation runs (fast mode) and its key numbers are right."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_derivation(name, tmp_path):
    env = dict(os.environ, SMFSYM_FAST="1", SMFSYM_OUT=str(tmp_path), MPLBACKEND="Agg")
    res = subprocess.run([sys.executable, str(ROOT / "derivations" / f"{name}.py")], env=env,
                         capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert r"\begin{aligned}" in res.stdout  # prints its LaTeX
    return json.loads((tmp_path / name / "results.json").read_text()), tmp_path / name


def test_a_gaussian_quadratic(tmp_path):
    r, out = run_derivation("a_gaussian_quadratic", tmp_path)
    assert r["sgd_mean"] == pytest.approx(r["sgd_mean_closed"], rel=1e-12)
    assert r["sgd_var"] == pytest.approx(r["sgd_var_closed"], rel=1e-12)
    for m, target in {"gf": 1, "sme1": 1, "smf1": 1, "sme2": 2, "smf2": 2}.items():
        assert abs(r["orders"][m] - target) < 0.1
    assert (out / "weak_error.png").exists() and (out / "derivation.tex").exists()


def test_b_rademacher(tmp_path):
    r, out = run_derivation("b_rademacher", tmp_path)
    assert r["smf_pathwise_max_abs_sum"] < 1e-12
    assert r["sgd:correlation"][0] == pytest.approx(-1.0) and r["smf2:correlation"][0] == pytest.approx(-1.0)
    value, se, z = r["sme2_shared:covariance"]
    assert value > 4 * se  # wrong sign: SGD's covariance is negative
    assert r["sgd:covariance"][0] < -4 * r["sgd:covariance"][1]
    assert abs(r["smf2:product"][2]) < 4
    assert (out / "joint_law.png").exists()


def test_c_linear_regression(tmp_path):
    r, out = run_derivation("c_linear_regression", tmp_path)
    assert r["n_noise"] == 20
    for m, target in {"gf": 1, "sme1": 1, "smf1": 1, "sme2": 2, "smf2": 2}.items():
        assert abs(r["orders"][m] - target) < 0.1
    assert "Sigma" in (out / "derivation.tex").read_text()


def test_d_logistic_empirical(tmp_path):
    r, out = run_derivation("d_logistic_empirical", tmp_path)
    assert r["method"] == "montecarlo"
    assert all(row["se"] > 0 for row in r["rows"])
    gf = [row for row in r["rows"] if row["model"] == "gf"]
    # the gradient flow misses the noise: its error is resolved at every eta
    assert all(abs(row["error"]) > 4 * row["se"] for row in gf)
    smf = [row for row in r["rows"] if row["model"] == "smf1"]
    assert all(abs(s["error"]) < abs(g["error"]) for s, g in zip(smf, gf))


def test_e_meanfield(tmp_path):
    r, out = run_derivation("e_meanfield", tmp_path)
    assert abs(r["captured"]["ratio"] - 1) < 5 * r["captured"]["ratio_se"] + 0.01
    for row in r["rows"]:
        assert row["var_sgd"] > 4 * row["var_se_sgd"] and row["mean_limit"] > 0
        # leading order: the DD-SMF variance agrees with SGD's within 5 SE plus an O(eta) relative term
        assert abs(row["var_ddsmf"] - row["var_sgd"]) < 5 * np.hypot(row["var_se_sgd"], row["var_se_ddsmf"]) \
            + row["eta"] * row["var_sgd"]
        assert abs(row["mean_sgd"] - row["mean_limit"]) < 5 * row["sem_sgd"] + row["eta"] * 0.1
    for m in ("sgd", "ddsmf"):
        f = r["slopes"][m]
        assert abs(f["slope"] - 1) < 4 * f["se"]
    # SGD's fluctuations do not decay with N; the spread over initial draws does, like 1/N
    w = r["width"]
    assert 0.5 < w[-1]["var_sgd"] / w[0]["var_sgd"] < 2
    assert w[0]["var_over_draws"] / w[1]["var_over_draws"] > 3
    smallest = min(r["rows"], key=lambda row: row["eta"])
    assert abs(smallest["var_sgd"] / smallest["eta"] - r["linearised"]) < 5 * smallest["var_se_sgd"] / smallest["eta"] \
        + smallest["eta"] * r["linearised"] * 2
    assert (out / "meanfield_study.png").exists() and (out / "width.png").exists()
