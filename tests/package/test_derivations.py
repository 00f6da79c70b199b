"""Every worked derivation runs as a real notebook (fast mode) and its key numbers are right.

Each percent-format script is converted with jupytext and executed by nbclient on
an ipykernel, as a researcher would run it in Jupyter: the problem and SDE cells
must render as LaTeX (``text/latex``) and the figures as images (``image/png``);
every exported ``.tex`` compiles with pdflatex; the executed notebooks are exported
to HTML (the documentation's gallery: set ``SMFSYM_GALLERY`` to keep them).
"""
import json
import os
from pathlib import Path

import jupytext
import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient
from nbconvert import HTMLExporter

from latex_tools import compile_tex

pytestmark = pytest.mark.slow  # notebooks / pdflatex: the slow tier (`python -m pytest -m slow`)

ROOT = Path(__file__).resolve().parents[2]


def _mime_types(nb) -> set:
    kinds = set()
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            kinds |= set(out.get("data", {}))
    return kinds


def run_derivation(name, tmp_path, *, figures=True):
    """Execute ``derivations/NAME.py`` as a notebook; return (results.json, output folder)."""
    nb = jupytext.read(ROOT / "derivations" / f"{name}.py")
    env = {"SMFSYM_FAST": "1", "SMFSYM_OUT": str(tmp_path), "PYTHONPATH": str(ROOT)}
    saved = {k: os.environ.get(k) for k in [*env, "MPLBACKEND"]}
    os.environ.update(env)
    os.environ.pop("MPLBACKEND", None)  # the kernel's inline backend must produce image/png outputs
    try:
        NotebookClient(nb, timeout=900, kernel_name="python3",
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    text = "".join(out.get("text", "") for cell in nb.cells for out in cell.get("outputs", []))
    assert r"\begin{aligned}" in text  # prints its LaTeX
    kinds = _mime_types(nb)
    assert "text/latex" in kinds, f"{name}: no cell rendered LaTeX ({sorted(kinds)})"
    if figures:
        assert "image/png" in kinds, f"{name}: no figure was displayed ({sorted(kinds)})"
    out = tmp_path / name
    for tex in sorted(out.glob("*.tex")):
        body = tex.read_text()
        if r"\documentclass" in body:
            compile_tex(body, out, tex.stem + "_compiled")
    gallery = Path(os.environ.get("SMFSYM_GALLERY", tmp_path / "gallery"))
    gallery.mkdir(parents=True, exist_ok=True)
    html, _ = HTMLExporter().from_notebook_node(nb)
    (gallery / f"{name}.html").write_text(html)
    nbformat.write(nb, gallery / f"{name}.ipynb")
    assert "<html" in html and len(html) > 10_000
    return json.loads((out / "results.json").read_text()), out


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
    assert abs(r["rates_orders"]["smf2:product"] - 2) < 0.15 and r["rates_orders"]["smf2:correlation"] is None
    assert min(r["rates_shared_correlation_errors"]) > 1.5 and abs(r["rates_orders"]["sme2_shared:correlation"]) < 0.1


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


def test_f_momentum_schedules(tmp_path):
    r, out = run_derivation("f_momentum_schedules", tmp_path)
    for key, target in {"gf": 1, "smf1": 1, "smf2": 2}.items():
        assert abs(r["schedule_orders"][key] - target) < 0.15
        for variant in ("heavy_ball", "nesterov"):
            assert abs(r["momentum_orders"][variant][key] - target) < 0.15
    corr = r["npoint_correlation"]
    assert corr["sgd"] == pytest.approx(-1.0) and corr["smf"] == pytest.approx(-1.0)
    assert corr["sme"] > 0.9  # one Brownian motion through |x|: the wrong sign
    no = r["npoint_orders"]
    assert abs(no["smf2:product"] - 2) < 0.15 and abs(no["smf2:covariance"] - 3) < 0.15
    assert abs(no["smf1:product"] - 1) < 0.15
    v = r["batch_variance"]
    assert all(a > b for a, b in zip(v, v[1:])) and abs(v[-1]) < 1e-12  # B = M is gradient descent
    mc, se, exact = r["batch3_mc"]
    assert abs(mc - exact) < 4 * se
    for png in ("schedule_weak_error.png", "momentum_weak_error.png", "momentum_joint_law.png"):
        assert (out / png).exists()


def test_g_adaptive(tmp_path):
    r, out = run_derivation("g_adaptive", tmp_path)
    # RMSprop on the Gaussian quadratic: the order-1 SMF's slope is 1 (Monte Carlo, 100,000 paths: the fit's
    # 95% interval, from the errors' standard errors, contains 1), and the order-2 SMF is closer to RMSprop
    # than the order-1 SMF at every eta by more than 4 standard errors of the difference
    low, high = r["rmsprop_order_interval"]["smf1"]
    assert low <= 1 <= high, r["rmsprop_order_interval"]
    for e1, e2, s1, s2 in zip(r["rmsprop_errors"]["smf1"], r["rmsprop_errors"]["smf2"], r["rmsprop_se"]["smf1"],
                              r["rmsprop_se"]["smf2"]):
        assert e1 - e2 > 4 * np.hypot(s1, s2)
    # Adam on logistic regression (a data set): order 1, its 95% interval containing 1
    low, high = r["adam_order_interval"]["smf1"]
    assert low <= 1 <= high, r["adam_order_interval"]
    # the square-root scaling rule keeps E phi within 4 SE where the batch alone moves it by more than 20
    assert max(r["scaling_shift_in_se"]["square_root"]) < 4 and min(r["scaling_shift_in_se"]["naive"]) > 20
    # SVAG: the weak distance to the SME falls like 1/l (fitted slope's interval contains 1)
    slope, low, high = r["svag_order"]
    assert low <= 1 <= high
    for png in ("rmsprop_weak_error.png", "adam_weak_error.png", "scaling_rule.png", "svag.png"):
        assert (out / png).exists()
