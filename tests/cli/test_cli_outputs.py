"""The command's outputs, signals and failures (issue 15): --force never destroys what is not an smfsym output,
SIGTERM cleans up like Ctrl-C, outputs respect the umask, overrides are honoured or refused, user input fails in
one line, and --help imports nothing heavy."""
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from smfsym.cli import main

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
ENV.pop("SMFSYM_TRACEBACK", None)

LOSS_OK = '[problem]\nparams = ["x"]\nloss = "x**2 * (1 + z)"\n[data.z]\nlaw = "normal"\n'
SMALL_CHECK = LOSS_OK + '[check]\nphi = "x"\nx0 = [1.0]\netas = [0.1, 0.05]\nmodels = ["sme1"]\nmethod = "exact"\n'
MEANFIELD = ('[meanfield]\nparams = ["a", "w"]\noutput = "out"\nunit = "a * tanh(w * z)"\n'
             'loss = "(out - tanh(2*z))**2 / 2"\n[meanfield.check]\netas = [0.25]\nt_end = 0.5\nwidths = [20]\n'
             'n_paths = 64\nn_saves = 1\nn_points = 4\nrisk_points = 4\nmethods = ["sgd", "limit"]\n'
             '[data.z]\nlaw = "normal"\n')


def run(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "smfsym", *args], capture_output=True, text=True, cwd=cwd,
                          env=env or ENV, timeout=300)


def _one_line(err: str, *fragments) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("smfsym: "), err
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]


# ------------------------------------------------------------------------------------------ --force


def _fifo(d):
    os.mkfifo(d / "target")
    return d / "target", "FIFO"


def _symlink_to_file(d):
    (d / "real.txt").write_text("precious")
    os.symlink(d / "real.txt", d / "target")
    return d / "target", "symbolic link"


def _dangling_symlink(d):
    os.symlink(d / "nowhere", d / "target")
    return d / "target", "symbolic link"


def _socket(d):
    sock = socket.socket(socket.AF_UNIX)
    sock.bind("target")  # relative: a Unix socket path is limited to ~100 bytes (the test runs in d)
    return d / "target", "socket"


def _plain_dir(d):
    (d / "target").mkdir()
    (d / "target" / "notes.txt").write_text("mine")
    return d / "target", "directory"


@pytest.mark.parametrize("make", [_fifo, _symlink_to_file, _dangling_symlink, _socket, _plain_dir])
@pytest.mark.parametrize("command", [["derive", "rademacher", "--format", "text"], ["codegen", "rademacher"]])
def test_force_replaces_only_regular_files(tmp_path, monkeypatch, capsys, make, command):
    monkeypatch.chdir(tmp_path)
    target, kind = make(tmp_path)
    before = sorted((p.name, os.lstat(p).st_mode) for p in tmp_path.iterdir())
    assert main([*command, "-o", str(target), "--force"]) == 2
    _one_line(capsys.readouterr().err, str(target), kind)
    assert sorted((p.name, os.lstat(p).st_mode) for p in tmp_path.iterdir()) == before
    if (tmp_path / "real.txt").exists():
        assert (tmp_path / "real.txt").read_text() == "precious"


@pytest.mark.parametrize("make", [_fifo, _symlink_to_file, _dangling_symlink, _socket, _plain_dir])
def test_check_force_replaces_only_a_previous_check_directory(tmp_path, monkeypatch, capsys, make):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.toml").write_text(SMALL_CHECK)
    target, kind = make(tmp_path)
    before = sorted((p.name, os.lstat(p).st_mode) for p in tmp_path.iterdir())
    assert main(["check", str(tmp_path / "s.toml"), "-o", str(target), "--force"]) == 2
    line = _one_line(capsys.readouterr().err, str(target))
    assert kind in line or "not an smfsym check output" in line
    assert sorted((p.name, os.lstat(p).st_mode) for p in tmp_path.iterdir()) == before


def _dir_named_like_a_plot(out):
    (out / ".smfsym-check").write_text("smfsym check output\n")
    (out / "weak_error.png").mkdir()
    (out / "weak_error.png" / "notes.txt").write_text("precious")


def _marker_is_a_directory(out):
    (out / ".smfsym-check").mkdir()
    (out / ".smfsym-check" / "notes.txt").write_text("precious")


def _marker_with_other_text(out):
    (out / ".smfsym-check").write_text("precious")
    (out / "summary.json").write_text("precious")


@pytest.mark.parametrize("fill", [_dir_named_like_a_plot, _marker_is_a_directory, _marker_with_other_text])
def test_check_force_never_removes_a_directory_that_only_looks_like_a_check(tmp_path, capsys, fill):
    """Audit 9, finding 2: names alone made a user's folder 'a previous check' and --force removed it."""
    (tmp_path / "s.toml").write_text(SMALL_CHECK)
    out = tmp_path / "out"
    out.mkdir()
    fill(out)
    before = sorted((str(p.relative_to(out)), p.is_dir()) for p in out.rglob("*"))
    assert main(["check", str(tmp_path / "s.toml"), "-o", str(out), "--force", "--quiet"]) == 2
    _one_line(capsys.readouterr().err, "not an smfsym check output")
    assert sorted((str(p.relative_to(out)), p.is_dir()) for p in out.rglob("*")) == before
    assert "precious" in [p.read_text() for p in out.rglob("*") if p.is_file()]


def test_check_force_refuses_a_symlink_to_a_previous_check_and_a_regular_file(tmp_path, capsys):
    (tmp_path / "s.toml").write_text(SMALL_CHECK)
    assert main(["check", str(tmp_path / "s.toml"), "-o", str(tmp_path / "out"), "--quiet"]) == 0
    capsys.readouterr()
    os.symlink(tmp_path / "out", tmp_path / "link")
    listing = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert main(["check", str(tmp_path / "s.toml"), "-o", str(tmp_path / "link"), "--force"]) == 2
    _one_line(capsys.readouterr().err, "link", "symbolic link")
    assert (tmp_path / "link").is_symlink() and sorted(p.name for p in (tmp_path / "out").iterdir()) == listing
    (tmp_path / "file").write_text("precious")
    assert main(["check", str(tmp_path / "s.toml"), "-o", str(tmp_path / "file"), "--force"]) == 2
    _one_line(capsys.readouterr().err, "file", "regular file")
    assert (tmp_path / "file").read_text() == "precious"
    # the previous check output itself is replaced
    assert main(["check", str(tmp_path / "s.toml"), "-o", str(tmp_path / "out"), "--force", "--quiet"]) == 0


def _device(tmp_path) -> Path:
    """A character device to aim --force at. As root (who could replace /dev/null: an earlier --force did) a
    null device made in tmp_path, so that a regression cannot break the machine; otherwise /dev/null itself."""
    if os.geteuid() != 0:
        return Path("/dev/null")
    dev = tmp_path / "dev" / "null"
    dev.parent.mkdir()
    try:
        os.mknod(dev, stat.S_IFCHR | 0o666, os.stat("/dev/null").st_rdev)
    except OSError as exc:  # no CAP_MKNOD: never aim the test at the real /dev/null as root
        pytest.skip(f"cannot create a device node as root here ({exc})")
    return dev


@pytest.mark.parametrize("command", [["derive", "rademacher"], ["codegen", "rademacher"], ["check", "rademacher"]])
def test_force_on_a_device_is_refused_and_the_device_survives(tmp_path, command):
    dev = _device(tmp_path)
    rdev = os.stat(dev).st_rdev
    (tmp_path / "cwd").mkdir()
    res = run(*command, "-o", str(dev), "--force", cwd=tmp_path / "cwd")
    assert res.returncode == 2, res.stderr
    _one_line(res.stderr, str(dev), "character device")
    assert stat.S_ISCHR(os.lstat(dev).st_mode) and os.stat(dev).st_rdev == rdev
    assert stat.S_ISCHR(os.lstat("/dev/null").st_mode)
    assert list((tmp_path / "cwd").iterdir()) == [] and sorted(p.name for p in dev.parent.iterdir()) == [dev.name]


# ------------------------------------------------------------------------------------------ signals


def _terminate_check(cwd: Path, env: dict) -> tuple[int, str]:
    """Start `check double_well`, send SIGTERM once its temporary output exists; return (status, stderr)."""
    proc = subprocess.Popen([sys.executable, "-m", "smfsym", "check", "double_well", "-o", "out", "--yes"],
                            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # the temporary output directory appears once the spec is loaded and the study starts
    while not any(p.name.startswith(".out.") for p in cwd.iterdir()):
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
@pytest.mark.timeout(120)
def test_sigterm_during_check_is_one_line_and_leaves_no_results(tmp_path):
    code, err = _terminate_check(tmp_path, ENV)
    assert code == 143, err
    assert err.strip().splitlines()[-1] == "smfsym: terminated" and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_sigterm_with_smfsym_traceback_shows_where_and_still_cleans_up(tmp_path):
    code, err = _terminate_check(tmp_path, {**ENV, "SMFSYM_TRACEBACK": "1"})
    assert code == 1 and "Traceback" in err and "Terminated" in err, err
    assert list(tmp_path.iterdir()) == []


def test_sigterm_handler_and_warning_format_are_restored_after_main(tmp_path):
    import warnings

    before = signal.getsignal(signal.SIGTERM), warnings.formatwarning
    assert main(["derive", "rademacher", "--format", "text", "-o", str(tmp_path / "d.txt")]) == 0
    assert (signal.getsignal(signal.SIGTERM), warnings.formatwarning) == before


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
def test_warnings_are_one_line_each(tmp_path):
    res = run("check", "double_well", "-o", "out", "--n-paths", "300", "--etas", "0.5,0.25", "--quiet",
              cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    lines = res.stderr.strip().splitlines()
    # 300 paths cannot resolve the orders: the study warns (OrderWarning today)
    assert any(ln.endswith("Warning)") for ln in lines), res.stderr
    assert all(ln.startswith("smfsym: warning: ") for ln in lines), res.stderr


# ------------------------------------------------------------------------------------------ permissions


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_every_output_respects_the_umask(tmp_path, capsys, umask):
    (tmp_path / "s.toml").write_text(SMALL_CHECK)
    old = os.umask(umask)
    try:
        assert main(["derive", str(tmp_path / "s.toml"), "-o", str(tmp_path / "d.tex")]) == 0
        assert main(["codegen", str(tmp_path / "s.toml"), "--model", "sme1", "-o", str(tmp_path / "sim.py")]) == 0
        assert main(["check", str(tmp_path / "s.toml"), "-o", str(tmp_path / "out"), "--quiet"]) == 0
        # a replaced output gets the umask's mode too, not the old file's nor a temporary's
        os.chmod(tmp_path / "d.tex", 0o600)
        assert main(["derive", str(tmp_path / "s.toml"), "-o", str(tmp_path / "d.tex"), "--force"]) == 0
    finally:
        os.umask(old)
    files = [tmp_path / "d.tex", tmp_path / "sim.py", *(tmp_path / "out").iterdir()]
    assert {f.name for f in files} >= {"weak_error.json", "summary.json", "weak_error.png", ".smfsym-check"}
    for f in files:
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o666 & ~umask, f
    assert stat.S_IMODE(os.stat(tmp_path / "out").st_mode) == 0o777 & ~umask


# ------------------------------------------------------------------------------------------ overrides


def test_n_paths_reaches_the_meanfield_study(tmp_path, capsys):
    (tmp_path / "mf.toml").write_text(MEANFIELD)
    assert main(["check", str(tmp_path / "mf.toml"), "-o", str(tmp_path / "out"), "--quiet", "--n-paths", "8"]) == 0
    assert json.loads((tmp_path / "out" / "meanfield.json").read_text())["meta"]["n_paths"] == 8
    capsys.readouterr()
    # validated against [meanfield.check]'s own range, and the [check]-only overrides are refused, not ignored
    assert main(["check", str(tmp_path / "mf.toml"), "-o", str(tmp_path / "o2"), "--n-paths", "1"]) == 2
    _one_line(capsys.readouterr().err, "`--n-paths`", "[2, 1000000]")
    for flag, value in (("--etas", "0.1"), ("--models", "sme1"), ("--scheme", "euler")):
        assert main(["check", str(tmp_path / "mf.toml"), "-o", str(tmp_path / "o2"), flag, value]) == 2
        _one_line(capsys.readouterr().err, flag, "no [check] table")
    assert main(["codegen", str(tmp_path / "mf.toml"), "--eta", "0.1", "-o", str(tmp_path / "sim.py")]) == 2
    _one_line(capsys.readouterr().err, "only [meanfield]")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mf.toml", "out"]


def test_overrides_meet_the_spec_work_bound_batch_included(tmp_path, capsys):
    spec = LOSS_OK.replace("params", "batch_size = 1000\nparams") + (
        '[check]\nphi = "x"\nx0 = [1.0]\netas = [0.001, 0.002]\nmodels = ["sme1"]\nmethod = "montecarlo"\n'
        'n_paths = 100\n')
    (tmp_path / "s.toml").write_text(spec)
    # 1,500 SGD steps x 10**6 paths = 1.5e9 steps, but each draws 1000 samples: 1.5e12 > MAX_WORK = 1e11
    assert main(["check", str(tmp_path / "s.toml"), "-o", str(tmp_path / "out"), "--n-paths", "1000000"]) == 2
    _one_line(capsys.readouterr().err, "--n-paths", "batch_size", "1.5e+12", "MAX_WORK")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.toml"]


# ------------------------------------------------------------------------------------------ failures


SCHEDULE = LOSS_OK + ('[check]\nphi = "x**2"\nx0 = [1.0]\nt_end = 1.0\netas = [0.04, 0.02]\nmodels = ["smf1"]\n'
                      'schedule = "exp(1000*t)"\n')


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
@pytest.mark.timeout(120)
def test_an_exploding_schedule_is_one_line(tmp_path):
    (tmp_path / "s.toml").write_text(SCHEDULE)
    res = run("check", "s.toml", "-o", "out", "--quiet", cwd=tmp_path)  # quiet: no estimate nor progress lines
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    lines = res.stderr.strip().splitlines()
    assert lines[-1].startswith("smfsym: ") and "schedule" in lines[-1], res.stderr
    # numpy's overflow warnings on the way are one line each too, never the generated code's source line
    assert all(ln.startswith("smfsym: ") for ln in lines), res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.toml"]  # nothing left behind
    # SMFSYM_TRACEBACK=1 keeps the traceback for a developer
    res = run("check", "s.toml", "-o", "out", cwd=tmp_path, env={**ENV, "SMFSYM_TRACEBACK": "1"})
    assert res.returncode == 1 and "Traceback" in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.toml"]


BLOW_UP = ('[problem]\nparams = ["x"]\nloss = "x**4 / 4 + x * z"\n[data.z]\nlaw = "normal"\n[check]\nphi = "x"\n'
           'x0 = [10.0]\netas = [0.5, 0.25]\nmodels = ["sme1"]\nmethod = "montecarlo"\nn_paths = 1000\n')


def test_a_blow_up_is_one_line_naming_the_step(tmp_path, capsys):
    (tmp_path / "s.toml").write_text(BLOW_UP)  # SGD from x0 = 10 at eta = 0.5 on x**4/4 diverges in a few steps
    assert main(["check", str(tmp_path / "s.toml"), "-o", str(tmp_path / "out"), "--quiet"]) == 2
    _one_line(capsys.readouterr().err, "non-finite state at step", "of the paths")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.toml"]


@pytest.mark.timeout(300)
def test_a_huge_schedule_ends_in_one_line_not_a_hang(tmp_path):
    # schedule = "10**6" once hung `check` with no cost estimate (the exact moment solver crawled)
    (tmp_path / "s.toml").write_text(SCHEDULE.replace('"exp(1000*t)"', '"10**6"'))
    res = run("check", "s.toml", "-o", "out", cwd=tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("smfsym: "), res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.toml"]


def test_a_bug_is_not_disguised_as_a_user_error(tmp_path, monkeypatch):
    import smfsym.cli as cli

    def bug(args):
        raise KeyError("internal")

    monkeypatch.setattr(cli, "cmd_specs", bug)  # the command's dispatch, not a study
    with pytest.raises(KeyError):
        main(["specs"])


@pytest.mark.parametrize("argv,fragments", [
    ([], ("the following arguments are required: command", "`smfsym --help`")),
    (["check"], ("check: the following arguments are required: spec", "`smfsym check --help`")),
    (["check", "x", "--n-paths", "1e3"], ("--n-paths: invalid int value: '1e3'",)),
    (["derive", "x", "--format", "pdf"], ("invalid choice: 'pdf'", "'latex', 'text'")),
    (["codegen", "x", "--eta", "-1", "-o", "s.py"], ("positive finite number", "-1")),
])
def test_argument_errors_are_one_line(capsys, argv, fragments):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    _one_line(capsys.readouterr().err, *fragments)


# ------------------------------------------------------------------------------------------ start-up

HEAVY = ("sympy", "numpy", "scipy", "matplotlib")
BARE = ("import runpy, sys, types\n"
        "pkg = types.ModuleType('smfsym'); pkg.__path__ = [{path!r}]; pkg.__version__ = '0'\n"
        "sys.modules['smfsym'] = pkg  # the package's own __init__ is not what this measures\n"
        "sys.argv = ['smfsym', *{args!r}]\n"
        "try:\n    runpy.run_module('smfsym.__main__', run_name='__main__')\n"
        "except SystemExit as exc:\n    code = exc.code\n"
        "print(code, sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r} or m.startswith('smfsym.')),"
        " file=sys.stderr)\n")


@pytest.mark.parametrize("args,code", [(["--help"], 0), (["check", "--help"], 0), (["check"], 2),
                                       (["derive", "x", "--format", "pdf"], 2), (["frobnicate"], 2)])
def test_cli_and_main_import_nothing_heavy_for_help_and_argument_errors(args, code):
    src = BARE.format(path=str(ROOT / "smfsym"), args=args, heavy=HEAVY)
    res = subprocess.run([sys.executable, "-c", src], capture_output=True, text=True, env=ENV, timeout=60)
    last = res.stderr.strip().splitlines()[-1]
    # the model registry is a table of names (no sympy): --help lists the models from it
    assert last == f"{code} ['smfsym._fs', 'smfsym.cli', 'smfsym.symbolic', 'smfsym.symbolic.model_names']", res.stderr


def _init_imports_sympy() -> bool:
    res = subprocess.run([sys.executable, "-c", "import sys, smfsym; print('sympy' in sys.modules)"],
                         capture_output=True, text=True, env=ENV, timeout=60)
    return res.stdout.strip() == "True"


@pytest.mark.skipif(_init_imports_sympy(), reason="needs the lazy smfsym/__init__.py (issue 17, H7's branch)")
def test_python_m_smfsym_help_does_not_import_sympy():
    src = ("import runpy, sys\nsys.argv = ['smfsym', '--help']\n"
           "try:\n    runpy.run_module('smfsym', run_name='__main__', alter_sys=True)\nexcept SystemExit:\n    pass\n"
           f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}), file=sys.stderr)\n")
    res = subprocess.run([sys.executable, "-c", src], capture_output=True, text=True, env=ENV, timeout=60)
    assert "usage: smfsym" in res.stdout and res.stderr.strip().splitlines()[-1] == "[]", res.stderr


def test_a_missing_gpu_library_is_one_line_before_any_work(tmp_path, capsys):
    """`check --backend cupy` without CuPy used to run the exact studies, then die in a traceback (exit 1)."""
    try:
        import cupy  # noqa: F401
        pytest.skip("CuPy is installed here")
    except ImportError:
        pass
    assert main(["check", "rademacher", "--backend", "cupy", "-o", str(tmp_path / "out")]) == 2
    out, err = capsys.readouterr()
    _one_line(err, "--backend cupy", 'pip install "smfsym[gpu]"')
    assert out == "" and not (tmp_path / "out").exists() and list(tmp_path.iterdir()) == []


def test_n_paths_sets_the_multipoint_study_too_and_is_bounded(tmp_path, capsys):
    """--n-paths used to leave [check.multipoint] at the spec's 100,000 paths."""
    import argparse

    from smfsym.cli import _check_overrides
    from smfsym.spec import load_spec

    spec = load_spec(Path(__file__).resolve().parents[2] / "smfsym" / "specs" / "rademacher.toml")
    before = dict(spec.check["multipoint"])
    args = argparse.Namespace(n_paths=1000, models=None, etas=None, scheme=None, spec="rademacher")
    c, _ = _check_overrides(spec.check, {}, args, spec.problem)
    assert c["n_paths"] == 1000 and c["multipoint"]["n_paths"] == 1000
    assert spec.check["multipoint"] == before  # the spec is not touched
    # the multi-point study's own bound: 10**9 paths x 200 steps (eta = 0.005) = 2e11 > MAX_WORK = 1e11,
    # where the weak-error study's 10**9 x (2 + 4) steps are under it
    c = dict(spec.check, etas=[0.5, 0.25], multipoint=dict(before, eta=0.005))
    args.n_paths = 10**9
    with pytest.raises(Exception, match=r"2e\+11 gradient evaluations for the \[check.multipoint\] study"):
        _check_overrides(c, {}, args, spec.problem)


def test_check_help_lists_exactly_the_models_check_takes(capsys):
    """`check --help` listed gf2 while [check] models refused it (it now takes it, as weak_error does)."""
    import re

    from smfsym.spec.schema import SCHEMA

    with pytest.raises(SystemExit):
        main(["check", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    listed = re.search(r"overrides \[check\] models: ([\w, ]+?) --", text).group(1).split(", ")
    assert SCHEMA["check"]["models"].check(listed, "--models") == listed
    assert "gf2" in listed
    with pytest.raises(Exception, match="--models"):
        SCHEMA["check"]["models"].check(["gf3"], "--models")


def test_summary_is_strict_json_when_an_order_is_unresolved(tmp_path, capsys):
    """Audit 9, finding 7: sme2 at two learning rates and few paths leaves its order unresolved and summary.json held bare
    NaN, which strict parsers refuse; an unresolved number is null there (weak_error.json keeps its own tags)."""
    import json

    out = tmp_path / "A"
    with pytest.warns(UserWarning):  # OrderWarning: the order of sme2 cannot be resolved
        assert main(["check", "double_well", "--n-paths", "2000", "--etas", "0.25,0.125", "--models", "sme2",
                 "--quiet", "-o", str(out)]) == 0
    text = (out / "summary.json").read_text()

    def refuse(constant):
        raise AssertionError(f"summary.json holds the non-JSON constant {constant}")

    summary = json.loads(text, parse_constant=refuse)
    assert "null" in text, text  # the unresolved bounds are there, as null
    assert summary


@pytest.mark.parametrize("target", [".", "..", "CWD", "/"])
def test_check_refuses_the_current_directory_or_above_before_running(tmp_path, target):
    """Audit 9, finding 5: `check -o .` in an empty directory ran the whole study, then failed naming a temporary
    folder (the output is built beside DIR and moved in place, so DIR needs a name and a parent)."""
    work = tmp_path / "empty"
    work.mkdir()
    res = run("check", "double_well", "--n-paths", "2000", "-o", str(work) if target == "CWD" else target, cwd=work)
    assert res.returncode == 2, (res.returncode, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("smfsym: -o ") and "current directory" in lines[0], res.stderr
    assert list(work.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["empty"]
    assert "wrote" not in res.stdout


def test_check_seed_sets_the_seed_of_the_study(tmp_path, capsys):
    """Audit 9: the seed came only from the spec; `--seed` sets it (recorded in the saved study) and is validated
    like the spec's key."""
    import json

    def rows(seed, name):
        argv = ["check", "double_well", "--n-paths", "2000", "--models", "sme1", "--etas", "0.25,0.125", "--quiet",
                "-o", str(tmp_path / name)] + ([] if seed is None else ["--seed", str(seed)])
        assert main(argv) == 0
        fields = json.loads((tmp_path / name / "weak_error.json").read_text())["fields"]
        return fields["meta"]["seed"], [(r["eta"], r["model"], r["value"]) for r in fields["rows"]]

    seed5, five = rows(5, "a")
    assert seed5 == 5 and rows(5, "b") == (5, five)  # the same seed, the same numbers
    from smfsym.cli import _load

    spec_seed, spec_rows = rows(None, "c")
    assert spec_seed == _load("double_well").check["seed"] != 5 and spec_rows != five
    for bad in ("-1", str(2**63), "1.5", "abc"):
        res = run("check", "double_well", "--seed", bad, "-o", str(tmp_path / "d"))
        assert res.returncode == 2 and "--seed" in res.stderr and "Traceback" not in res.stderr, res.stderr
        assert len(res.stderr.strip().splitlines()) == 1 and not (tmp_path / "d").exists()


def test_a_spec_with_constants_runs_exact_moments(tmp_path):
    """Audit 14, F1, end to end: [problem] constants reached the study as numeric `values`, which switched exact
    moments off (Monte Carlo estimated at minutes, orders unresolved); they are bound into the problem now."""
    (tmp_path / "s.toml").write_text(
        '[problem]\nparams = ["x"]\nloss = "e * (x - g)**2 / 2 + lam * x**2 / 2"\nconstants = { lam = 0.1 }\n'
        'batch_size = 4\n\n[data.e]\nlaw = "exponential"\nrate = 2\n\n[data.g]\nlaw = "gamma"\nshape = 3\n'
        'scale = 0.5\n\n[check]\nphi = "x**2"\nx0 = [-1.0]\netas = [0.1, 0.05]\nmodels = ["smf2"]\n')
    assert main(["check", str(tmp_path / "s.toml"), "-o", str(tmp_path / "out"), "--quiet"]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["method"] == "exact" and {r["method"] for r in summary["rows"]} == {"exact"}, summary
    assert all(r["se"] == 0 for r in summary["rows"]) and summary["orders"]["smf2"]["slope"] > 1.8
