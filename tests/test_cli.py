"""The smfsym command on the shipped specs, and the safe spec parser against hostile input."""
import json
import subprocess
import sys

import pytest

from smfsym.cli import main
from smfsym.spec import SpecError, load_spec, parse_expression


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "smfsym", *args], capture_output=True, text=True, cwd=cwd)


def test_derive_latex_and_text(tmp_path, capsys):
    main(["derive", "linear_regression", "-o", str(tmp_path / "d.tex")])
    tex = (tmp_path / "d.tex").read_text()
    assert tex.startswith(r"\documentclass") and "stochastic modified flow" in tex.lower()
    main(["derive", "rademacher", "--format", "text"])
    out = capsys.readouterr().out
    assert "Sigma = [[x**2]]" in out and "sqrt(eta)*Abs(x)" in out and "-sqrt(eta)*x" in out


def test_check_linear_regression_writes_table_figure_summary(tmp_path):
    res = run("check", "linear_regression", "-o", str(tmp_path / "out"))
    assert res.returncode == 0, res.stderr
    out = tmp_path / "out"
    for f in ("weak_error.txt", "weak_error.tex", "weak_error.png", "summary.json"):
        assert (out / f).stat().st_size > 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == "exact"
    assert abs(summary["orders"]["smf2"]["slope"] - 2) < 0.1
    assert abs(summary["orders"]["sme1"]["slope"] - 1) < 0.1


def test_codegen_from_spec_runs(tmp_path):
    res = run("codegen", "rademacher", "--eta", "0.1", "-o", str(tmp_path / "sim.py"))
    assert res.returncode == 0, res.stderr
    check = subprocess.run([sys.executable, "-c", "import sim; t, s = sim.simulate([1.0], 1.0, 100, 0); "
                            "print(s.shape)"], capture_output=True, text=True, cwd=tmp_path)
    assert check.stdout.strip() == "(1, 100, 1)"


HOSTILE = [
    "__import__('os').system('touch {marker}')",
    "().__class__.__bases__[0].__subclasses__()",
    "exec('open(\"{marker}\", \"w\")')",
    "eval('1')",
    "x.__globals__",
    "(lambda: open('{marker}', 'w'))()",
    "[c for c in ()]",
    "getattr(x, '__class__')",
    "x; import os",
]


@pytest.mark.parametrize("payload", HOSTILE)
def test_safe_parser_rejects_and_never_evaluates(tmp_path, payload):
    import sympy as sp

    marker = tmp_path / "pwned"
    with pytest.raises(SpecError):
        parse_expression(payload.format(marker=marker), {"x": sp.Symbol("x")})
    assert not marker.exists()


def _write(tmp_path, text):
    p = tmp_path / "spec.toml"
    p.write_text(text)
    return p


def test_hostile_loss_in_spec_names_key_and_line(tmp_path):
    marker = tmp_path / "pwned"
    p = _write(tmp_path, f'''[problem]
params = ["x"]
loss = "__import__('os').system('touch {marker}')"
''')
    with pytest.raises(SpecError, match=r"spec.toml:3: `\[problem\] loss`"):
        load_spec(p)
    assert not marker.exists()
    res = run("derive", str(p))
    assert res.returncode != 0 and "[problem] loss" in res.stderr and not marker.exists()


@pytest.mark.parametrize("text,match", [
    ('[problem]\nparams = ["x"]\nloss = "(x - z)**2"\n', r":3: `\[problem\] loss`: .*unknown name `z`"),
    ('[problem]\nparams = "x"\nloss = "x**2"\n', r":2: `\[problem\] params`"),
    ('[problem]\nparams = ["x"]\nloss = "(x - z)**2"\n[data.z]\nlaw = "cauchy"\n', r":5: `\[data.z\] law`: unknown law"),
    ('[problem]\nparams = ["x"]\nloss = "(x - z)**2"\n[data.z]\nlaw = "normal"\nsdt = 1\n', r":6: `\[data.z\] sdt`: not a parameter"),
    ('[problem]\nparams = ["x"]\nloss = "(x - z)**2"\n[data.z]\nlaw = "normal"\nstd = -1\n', r"`std` must be positive"),
    ('[problem]\nparams = ["x"]\n', r"`\[problem\] loss`: missing"),
    ("not toml = = 1", "not valid TOML"),
])
def test_bad_specs_name_the_key_and_line(tmp_path, text, match):
    with pytest.raises(SpecError, match=match):
        load_spec(_write(tmp_path, text))


def test_python_spec(tmp_path):
    p = tmp_path / "spec.py"
    p.write_text("import sympy as sp, smfsym\nx = sp.Symbol('x')\n"
                 "problem = smfsym.Problem((x - smfsym.normal('z')) ** 2 / 2, [x])\n")
    assert str(load_spec(p).problem.F) == "x**2/2 + 1/2"
