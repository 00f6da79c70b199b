"""Compile LaTeX with a real pdflatex (CI installs it; locally the tests skip without it)."""
import os
import shutil
import subprocess

import pytest


def compile_tex(tex: str, directory, name: str = "doc") -> str:
    """Compile ``tex`` in ``directory``; fail on any LaTeX error; return the log."""
    exe = shutil.which("pdflatex")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("pdflatex is missing in CI: .ci/run must install it (texlive-latex-base)")
        pytest.skip("pdflatex not installed (CI installs it)")
    (directory / f"{name}.tex").write_text(tex)
    res = subprocess.run([exe, "-interaction=nonstopmode", "-halt-on-error", f"{name}.tex"], cwd=directory,
                         capture_output=True, text=True, timeout=120)
    log = (directory / f"{name}.log").read_text(errors="replace")
    errors = [ln for ln in log.splitlines() if ln.startswith("!")]
    assert res.returncode == 0 and not errors, f"{name}: {errors[:5]}\n{res.stdout[-2000:]}"
    assert (directory / f"{name}.pdf").stat().st_size > 1000
    return log
