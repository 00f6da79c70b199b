"""`smfsym check --backend array_api_strict --models sme1,sme2` on a spec whose SMEs have the numeric matrix
square root (a d = 2 regression with correlated features' gradients: Sigma(x) is not diagonal): the Monte Carlo
runs on the stand-in device and its rows agree with numpy's within 5 standard errors of the difference."""
import json

import numpy as np
import pytest

SPEC = """
[problem]
params = ["x0", "x1"]
loss = "(a0*x0 + a1*x1 - eps)**2 / 2"

[data.a]
law = "normal"
dim = 2

[data.eps]
law = "normal"
std = 0.5

[check]
phi = "x0**2 + x1"
x0 = [1.0, -0.5]
t_end = 0.4
etas = [0.2, 0.1]
models = ["gf"]
method = "montecarlo"
seed = 0
"""


@pytest.mark.slow  # 3 s: the CLI end to end; the SME device steps are checked in the default tier
@pytest.mark.filterwarnings("ignore::smfsym.OrderWarning")  # two etas, 4096 paths: orders unresolved
def test_check_runs_the_smes_on_the_back_end(tmp_path):
    from smfsym.cli import main

    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC)
    rows = {}
    for backend in ("numpy", "array_api_strict"):
        out = tmp_path / backend
        assert main(["check", str(spec), "--backend", backend, "--n-paths", "4096", "--models", "sme1,sme2",
                     "--quiet", "-o", str(out)]) in (0, None)
        summary = json.loads((out / "summary.json").read_text())
        rows[backend] = summary["rows"]
        assert all(r["method"].startswith("montecarlo") for r in summary["rows"])
    ref, dev = rows["numpy"], rows["array_api_strict"]
    assert [(r["model"], r["eta"]) for r in dev] == [(m, e) for e in (0.2, 0.1) for m in ("sme1", "sme2")]
    for r0, r1 in zip(ref, dev):
        assert r0["value"] != r1["value"]  # the device's own streams
        assert abs(r0["value"] - r1["value"]) < 5 * np.hypot(r0["value_se"], r1["value_se"]), (r0, r1)
    # the table, its LaTeX caption and the figure's title name where the numbers came from (only off numpy)
    for backend, named in (("numpy", False), ("array_api_strict", True)):
        text = (tmp_path / backend / "weak_error.txt").read_text()
        tex = (tmp_path / backend / "weak_error.tex").read_text()
        assert ("4,096 paths on array_api_strict (float64)" in text) is named, text
        assert ("on array\\_api\\_strict (float64)" in tex) is named, tex
