"""The README's self-contained Python snippets run as written, each as a script of its own.

The ```python blocks are read from README.md. The ones run here are those that define everything they use
and finish in seconds: the update-map block (its own Gaussian quadratic and a 20,000-path study) and the
scaling-out block (its own 1-D problem, 200,000 paths on a two-process pool, under the
``if __name__ == "__main__":`` guard it shows). The others either reuse the Quickstart's names, take
tens of seconds (the Quickstart's 100,000 paths, the mean-field snippet), or need a Dask scheduler at
``tcp://scheduler:8786``; they are listed in ``NOT_RUN`` so that a new block has to be classified here.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"

#: Blocks run as scripts, by the section heading they sit under and their first line.
RUN = {
    ("Any optimizer as an update map", "import sympy as sp, smfsym"),
    ("Scaling out", "import numpy as np, sympy as sp, smfsym"),
}
#: Blocks not run here, and why.
NOT_RUN = {
    ("Quickstart (notebook or script)", "import sympy as sp"): "100,000 paths: about 25 s",
    ("Mean field", "import sympy as sp, smfsym"): "about 9 s",
    ("Schedules and momentum", "t = sp.Symbol(\"t\")"): "uses the Quickstart's names",
    ("Scaling out", "import sympy as sp, smfsym"): "needs a Dask scheduler at tcp://scheduler:8786",
}


def python_blocks() -> list[tuple[str, str, str]]:
    """(heading, first line, code) of every ```python block of the README."""
    blocks, heading = [], ""
    for part in re.split(r"(?m)^(```python\n.*?^```)$", README.read_text(encoding="utf-8"), flags=re.S):
        if part.startswith("```python\n"):
            code = part[len("```python\n"):-3]
            blocks.append((heading, code.splitlines()[0], code))
        else:
            heads = re.findall(r"(?m)^## (.+)$", part)
            heading = heads[-1] if heads else heading
    return blocks


def test_every_block_is_classified():
    keys = [(h, first) for h, first, _ in python_blocks()]
    assert len(keys) == len(set(keys))
    assert set(keys) == RUN | set(NOT_RUN), set(keys) ^ (RUN | set(NOT_RUN))


@pytest.mark.slow
@pytest.mark.parametrize("key", sorted(RUN), ids=lambda k: k[0])
def test_snippet_runs_as_a_script(key, tmp_path):
    code = next(c for h, first, c in python_blocks() if (h, first) == key)
    script = tmp_path / "snippet.py"
    script.write_text(code, encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               MPLBACKEND="Agg")
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
