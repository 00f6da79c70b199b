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


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
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


# ----------------------------------------------------------------------------- hardening (issue 7)

def _one_line_error(res, *fragments):
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("smfsym: "), res.stderr
    for f in fragments:
        assert f in lines[0], (f, lines[0])


def test_version_and_trust_in_help(capsys):
    import smfsym

    res = run("--version")
    assert res.returncode == 0 and res.stdout.strip() == f"smfsym {smfsym.__version__}"
    for args in (["--help"], ["derive", "--help"], ["check", "--help"], ["codegen", "--help"]):
        with pytest.raises(SystemExit) as exc:
            main(args)
        out = " ".join(capsys.readouterr().out.split())
        assert exc.value.code == 0 and "run as code" in out and "trust" in out


def _one_line_error_inproc(capsys, argv, *fragments):
    """In-process twin of _one_line_error: main() returns 2 and prints one line (an escaping exception fails)."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("smfsym: "), err
    for f in fragments:
        assert f in lines[0], (f, lines[0])


LOSS_OK = '[problem]\nparams = ["x"]\nloss = "x**2 * (1 + z)"\n[data.z]\nlaw = "normal"\n'


@pytest.mark.parametrize("make,fragments", [
    (lambda d: d, ("is a directory",)),
    (lambda d: d / "missing.toml", ("No such file",)),
    (lambda d: (d / "s.toml").write_text("[problem\n") and d / "s.toml", ("not valid TOML",)),
    (lambda d: (d / "s.toml").write_text("import os\nos.system('true')\n") and d / "s.toml", ("not valid TOML",)),
    (lambda d: (d / "s.toml").write_bytes(b"\xff\xfe\x00") and d / "s.toml", ("not UTF-8",)),
    (lambda d: (d / "s.toml").write_text(LOSS_OK + "[check]\nphi = \"x\"\nx0 = [1.0]\nt_end = -1.0\netas = [0.1]\n")
     and d / "s.toml", ("`[check] t_end`", "positive")),
    (lambda d: (d / "s.toml").write_text(LOSS_OK + "std = nan\n") and d / "s.toml", ("`[data.z] std`", "finite")),
    (lambda d: (d / "s.toml").write_text(LOSS_OK.replace('"normal"', '"normal"\nstd = 1e400')) and d / "s.toml",
     ("`[data.z] std`", "finite")),
    (lambda d: (d / "s.toml").write_text(LOSS_OK + "[data.q]\nlaw = \"empirical\"\nfile = \"q.csv\"\n")
     and (d / "q.csv").write_text("q\n1\n") and d / "s.toml", ("`[data.q] file`", "1 data row")),
    (lambda d: (d / "s.toml").write_text(LOSS_OK.replace("params", "batch_size = 2.5\nparams")) and d / "s.toml",
     ("`[problem] batch_size`", "integer")),
    (lambda d: (d / "s.toml").write_text(LOSS_OK.replace("params", "batch_size = true\nparams")) and d / "s.toml",
     ("`[problem] batch_size`", "got bool")),
    (lambda d: (d / "s.toml").write_text(LOSS_OK + "[bogus_section]\nx = 1\n") and d / "s.toml",
     ("unknown section", "[problem], [check], [meanfield], [update_map], [data]")),
    (lambda d: (d / "s.toml").write_text(LOSS_OK.replace("params", "lr = 1\nparams")) and d / "s.toml",
     ("`[problem] lr`: unknown key", "allowed keys: params, loss")),
])
def test_user_mistakes_give_one_line_and_exit_2(tmp_path, capsys, make, fragments):
    _one_line_error_inproc(capsys, ["derive", str(make(tmp_path))], *fragments)


@pytest.mark.timeout(60)
def test_fifo_spec_is_refused_without_blocking(tmp_path):
    import os

    os.mkfifo(tmp_path / "spec.toml")
    _one_line_error(run("derive", str(tmp_path / "spec.toml")), "not a regular file")


def test_unknown_models_list_the_valid_ones(tmp_path):
    _one_line_error(run("derive", "rademacher", "--models", "sme2,foo"), "foo", "valid models: gf")
    res = run("codegen", "rademacher", "--model", "foo", "-o", str(tmp_path / "s.py"))
    assert res.returncode == 2 and "invalid choice: 'foo'" in res.stderr and "smf2" in res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "s.py").exists()


def test_loader_is_chosen_by_name_case_insensitively(tmp_path):
    py = "import sympy as sp, smfsym\nx = sp.Symbol('x')\nproblem = smfsym.Problem((x - smfsym.normal('z'))**2/2, [x])\n"
    (tmp_path / "a.PY").write_text(py)
    assert str(load_spec(tmp_path / "a.PY").problem.F) == "x**2/2 + 1/2"
    (tmp_path / "b.Toml").write_text(LOSS_OK)
    (tmp_path / "c").write_text(LOSS_OK)
    assert str(load_spec(tmp_path / "b.Toml").problem.F) == str(load_spec(tmp_path / "c").problem.F) == "x**2"
    marker = tmp_path / "pwned"
    (tmp_path / "d.toml").write_text(f"open({str(marker)!r}, 'w')\n")
    with pytest.raises(SpecError, match="not valid TOML"):
        load_spec(tmp_path / "d.toml")
    assert not marker.exists()


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
def test_derive_and_codegen_never_overwrite_without_force(tmp_path):
    out = tmp_path / "d.txt"
    out.write_text("precious")
    _one_line_error(run("derive", "rademacher", "--format", "text", "-o", str(out)), "exists", "--force")
    assert out.read_text() == "precious"
    assert run("derive", "rademacher", "--format", "text", "-o", str(out), "--force").returncode == 0
    assert out.read_text().startswith("loss f =")
    sim = tmp_path / "sim.py"
    sim.write_text("precious")
    _one_line_error(run("codegen", "rademacher", "-o", str(sim)), "exists")
    assert sim.read_text() == "precious"
    res = run("codegen", "rademacher", "-o", str(sim), "--force")
    assert res.returncode == 0 and "eta = 0.0125" in res.stdout and "[check] etas" in res.stdout
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_codegen_without_eta_or_etas_requires_eta(tmp_path):
    (tmp_path / "s.toml").write_text(LOSS_OK)
    _one_line_error(run("codegen", str(tmp_path / "s.toml"), "-o", str(tmp_path / "sim.py")), "--eta")
    res = run("codegen", str(tmp_path / "s.toml"), "--eta", "-1", "-o", str(tmp_path / "sim.py"))
    assert res.returncode == 2 and "positive finite" in res.stderr and not (tmp_path / "sim.py").exists()


SMALL_CHECK = LOSS_OK + '[check]\nphi = "x"\nx0 = [1.0]\netas = [0.1, 0.05]\nmodels = ["sme1"]\nmethod = "exact"\n'


def test_check_takes_every_model_the_python_study_takes(tmp_path, capsys):
    """`--models gf2` (and `models = ["gf2"]`) used to be refused by the command while weak_error takes it."""
    spec = tmp_path / "s.toml"
    spec.write_text(SMALL_CHECK.replace('models = ["sme1"]', 'models = ["gf2"]'))
    assert main(["check", str(spec), "-o", str(tmp_path / "a"), "--quiet"]) == 0
    assert main(["check", str(spec), "-o", str(tmp_path / "b"), "--quiet", "--models", "gf,gf2"]) == 0
    rows = json.loads((tmp_path / "b" / "summary.json").read_text())["rows"]
    assert sorted({r["model"] for r in rows}) == ["gf", "gf2"]
    _one_line_error_inproc(capsys, ["check", str(spec), "-o", str(tmp_path / "c"), "--models", "gf3"],
                           "--models", "gf2", "got 'gf3'")


def test_check_output_directory_rules(tmp_path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text(SMALL_CHECK)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    _one_line_error_inproc(capsys, ["check", str(spec), "-o", str(foreign), "--force"], "not an smfsym check output")
    assert (foreign / "notes.txt").read_text() == "mine"
    out = tmp_path / "out"
    assert main(["check", str(spec), "-o", str(out)]) == 0
    first = (out / "summary.json").read_text()
    assert sorted(p.name for p in out.iterdir()) == [".smfsym-check", "summary.json", "weak_error.json",
                                                     "weak_error.png", "weak_error.tex", "weak_error.txt"]
    _one_line_error_inproc(capsys, ["check", str(spec), "-o", str(out)], "previous check", "--force")
    assert main(["check", str(spec), "-o", str(out), "--force"]) == 0
    assert (out / "summary.json").read_text() == first  # same seed, same numbers
    assert sorted(p.name for p in tmp_path.iterdir()) == ["foreign", "out", "s.toml"]


def test_failed_check_leaves_nothing(tmp_path, capsys):
    # a real failure inside the study (no stub): the exact moments of an exploding schedule fail; Ctrl-C and
    # SIGTERM are sent to real processes below and in tests/cli/test_cli_outputs.py
    (tmp_path / "s.toml").write_text(LOSS_OK + '[check]\nphi = "x**2"\nx0 = [1.0]\netas = [0.04, 0.02]\n'
                                     'models = ["smf1"]\nschedule = "exp(1000*t)"\n')
    assert main(["check", str(tmp_path / "s.toml"), "-o", str(tmp_path / "out"), "--quiet"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("smfsym: ") and "schedule" in last
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.toml"]


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
@pytest.mark.timeout(120)
def test_ctrl_c_during_check_is_one_line_and_leaves_no_results(tmp_path):
    import signal
    import time

    proc = subprocess.Popen([sys.executable, "-m", "smfsym", "check", "double_well", "-o", "out", "--yes"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # The temporary output directory appears once the spec is loaded and the study starts.
    while not any(p.name.startswith(".out.") for p in tmp_path.iterdir()):
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err.strip().splitlines()[-1] == "smfsym: interrupted"
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_python_spec_check_table_is_validated_too(tmp_path):
    head = "import sympy as sp, smfsym\nx = sp.Symbol('x')\nproblem = smfsym.Problem((x - smfsym.normal('z'))**2/2, [x])\n"
    p = tmp_path / "spec.py"
    p.write_text(head + "check = {'phi': x**2, 'x0': (1.0,), 'etas': [0.1, 0.05]}\n")
    c = load_spec(p).check
    assert c["t_end"] == 1.0 and c["x0"] == [1.0] and str(c["phi"]) == "x**2"
    p.write_text(head + "check = {'phi': 'x', 'x0': [1.0], 'etas': [0.1], 't_end': -1}\n")
    with pytest.raises(SpecError, match=r"`\[check\] t_end`"):
        load_spec(p)


@pytest.mark.parametrize("body, kind, line", [
    ("x = sp.Symbol('x')\nproblem = smfsym.Problem(undefined_name ** 2, [x])\n", "NameError", 4),
    ("x = sp.Symbol('x')\nraise RuntimeError('my data file is missing')\n", "RuntimeError", 4),
    ("x = = 1\n", "SyntaxError", 3),
    ("import sys\nsys.exit(3)\n", "SystemExit", 4),
])
def test_a_python_spec_that_raises_is_one_line_naming_file_line_and_error(tmp_path, body, kind, line):
    """Audit 9, finding 6: a Python spec whose own code raised printed a traceback through smfsym (and sys.exit in
    it ended the command with the spec's status); the README promises one `smfsym:` line and status 2."""
    p = tmp_path / "spec.py"
    p.write_text("import sympy as sp\nimport smfsym\n" + body)
    res = run("derive", str(p))
    _one_line_error(res, f"{p}:{line}", kind)
    with pytest.raises(SpecError, match=kind) as info:
        load_spec(p)
    assert info.value.__cause__ is not None  # the spec's own exception stays reachable for a debugger


@pytest.mark.timeout(30)
def test_device_and_huge_spec_files_are_refused(tmp_path, monkeypatch):
    from smfsym.spec import load as spec_load

    _one_line_error(run("derive", "/dev/zero"), "not a regular file")
    monkeypatch.setattr(spec_load, "MAX_SPEC_BYTES", 64)
    (tmp_path / "s.toml").write_text(LOSS_OK + "#" * 100 + "\n")
    with pytest.raises(SpecError, match="MAX_SPEC_BYTES = 64"):
        load_spec(tmp_path / "s.toml")


def test_schema_defaults_are_not_shared(tmp_path):
    (tmp_path / "s.toml").write_text(LOSS_OK + '[check]\nphi = "x"\nx0 = [1.0]\netas = [0.1, 0.05]\n')
    a = load_spec(tmp_path / "s.toml").check
    a["models"].append("bogus")
    assert "bogus" not in load_spec(tmp_path / "s.toml").check["models"]


LOGISTIC = ('[problem]\nparams = ["x"]\nloss = "log(1 + exp(-a * x))"\n[data.a]\nlaw = "normal"\n'
            '[check]\nphi = "x"\nx0 = [1.0]\netas = [0.2, 0.1]\nmodels = ["sme1"]\n')


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
def test_codegen_of_a_non_polynomial_spec_names_its_eta_and_runs(tmp_path):
    import numpy as np

    (tmp_path / "s.toml").write_text(LOGISTIC)
    res = run("codegen", str(tmp_path / "s.toml"), "--model", "smf1", "-o", str(tmp_path / "sim.py"))
    assert res.returncode == 0, res.stderr
    assert "eta = 0.1: the last entry of the spec's [check] etas; pass --eta to choose" in res.stdout
    check = subprocess.run([sys.executable, "-c", "import sys; sys.modules['smfsym'] = None; import sim; "
                            "t, s = sim.simulate([1.0], 0.5, 64, 0); print(s.shape, sim.ETA)"],
                           capture_output=True, text=True, cwd=tmp_path)
    assert check.stdout.strip() == "(1, 64, 1) 0.1", check.stderr
    # a data set too large to embed is passed in: the command says how
    rng = np.random.default_rng(0)
    rows = "\n".join(f"{z:.6f},{1 if z + e > 0 else -1}" for z, e in rng.normal(size=(600, 2)))
    (tmp_path / "d.csv").write_text("z,y\n" + rows + "\n")
    (tmp_path / "d.toml").write_text('[problem]\nparams = ["x"]\nloss = "log(1 + exp(-y * z * x))"\n'
                                     '[data.d]\nlaw = "empirical"\nfile = "d.csv"\ncolumns = ["z", "y"]\n')
    res = run("codegen", str(tmp_path / "d.toml"), "--eta", "0.05", "-o", str(tmp_path / "sim2.py"))
    assert res.returncode == 0, res.stderr
    assert "eta = 0.05: from --eta" in res.stdout and "call set_data(_data0=...) with the data rows" in res.stdout


def test_codegen_still_unsupported_is_one_line(tmp_path, monkeypatch, capsys):
    import smfsym.io.codegen_means

    (tmp_path / "s.toml").write_text(LOGISTIC)
    monkeypatch.setattr(smfsym.io.codegen_means, "RULE_EMBED_LIMIT", 10)
    _one_line_error_inproc(capsys, ["codegen", str(tmp_path / "s.toml"), "-o", str(tmp_path / "sim.py")],
                           "embedded numbers", "max_quad_points")
    assert not (tmp_path / "sim.py").exists()


@pytest.mark.parametrize("spec, what", [("rmsprop", "optimizer 'rmsprop'"), ("heavy_ball", "optimizer 'heavy_ball'"),
                                        ("update_map", "optimizer 'update_map'"), ("cosine_schedule", "schedule u(t)")])
def test_codegen_refuses_a_spec_whose_check_is_another_optimizer(tmp_path, capsys, spec, what):
    """Audit 9, finding 1: codegen wrote plain constant-rate SGD for these specs, exit 0 (the module's
    simulate_sgd was 52 standard errors from the RMSprop that `check` compares); it is refused, nothing written."""
    _one_line_error_inproc(capsys, ["codegen", spec, "--eta", "0.1", "-o", str(tmp_path / "sim.py")], what,
                           "does not simulate")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("name, state", [("rmsprop", "v_x"), ("heavy_ball", "p_x0"), ("cosine_schedule", "t"),
                                         ("update_map", "v"), ("linear_regression", None)])
def test_derive_prints_the_models_check_compares(name, state, capsys):
    """Audit 11, finding 1: `derive rmsprop` printed plain SGD's SME and SMF, which `check` on the same spec does
    not compare (codegen refused the spec); it prints the optimizer's own models, with their extra state."""
    from pathlib import Path

    import sympy as sp

    import smfsym
    from smfsym.spec.checks import check_models
    from smfsym.symbolic.models import build_model

    assert main(["derive", name, "--format", "text", "--models", "sme1,smf2"]) == 0
    out = capsys.readouterr().out
    spec = load_spec(Path(smfsym.__file__).parent / "specs" / f"{name}.toml")
    sdes = check_models(spec, spec.check, ["sme1", "smf2"])
    for sde in sdes.values():
        assert f"{sde.title}: drift = " in out
        assert state is None or sp.Symbol(state, real=True) in sde.state or state in map(str, sde.state)
    plain = build_model(spec.problem, "smf2")
    assert (f"\n{plain.title}: drift = " in out) == (state is None)  # SGD's own model only for plain SGD


def test_specs_lists_whole_first_sentences(capsys):
    """Audit 11, F12: `smfsym specs` printed each spec's first comment line, cut mid-sentence ("...: the
    optimizer's")."""
    assert main(["specs"]) == 0
    lines = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines())
    assert lines["rmsprop"].endswith("against RMSprop itself (PyTorch's convention, eps outside the root, "
                                     "1 - beta = c eta, time t = k eta).")
    assert lines["update_map"].endswith("RMSprop with eps *inside* the root, z = (x, v).")
    assert all(d.rstrip().endswith(".") for d in lines.values()), lines  # each a whole sentence (audit 12)
