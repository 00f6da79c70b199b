"""Old module paths keep working for one release (issue 16): ``smfsym.chaos`` is the module now at
``smfsym.symbolic.noise_expansion`` (the same object), and importing it by its old path warns."""
import contextlib
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from smfsym._aliases import MOVED

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("old, new", sorted(MOVED.items()))
def test_old_path_is_the_new_module(old, new):
    # an old path imported earlier in this session has warned already (sys.modules keeps it)
    warns = old not in sys.modules
    with pytest.warns(DeprecationWarning, match=new.replace(".", r"\.")) if warns else contextlib.nullcontext():
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)
    # relative imports inside the module read its spec: it stays the real one
    assert module.__spec__.name == new and module.__package__ == module.__spec__.parent


def test_old_paths_in_a_fresh_interpreter_warn_and_resolve():
    code = ("import json, warnings\nwarnings.simplefilter('error', DeprecationWarning)\nout = {}\n"
            "try:\n    from smfsym.chaos import chaos_expansion\nexcept DeprecationWarning as w:\n"
            "    out['warning'] = str(w)\nwarnings.simplefilter('ignore', DeprecationWarning)\n"
            "from smfsym.chaos import chaos_expansion\nfrom smfsym.laws.continuous import Normal\n"
            "import smfsym, pickle\n"
            "out['same'] = chaos_expansion is smfsym.chaos_expansion and Normal is smfsym.Normal\n"
            "out['pickle'] = pickle.loads(pickle.dumps(smfsym.normal('a').law)).family\n"
            "out['function'] = callable(smfsym.simulate) and not isinstance(smfsym.simulate, type(smfsym))\n"
            "print(json.dumps(out))")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert "smfsym.symbolic.noise_expansion" in out["warning"]
    assert out == {"warning": out["warning"], "same": True, "pickle": "Normal", "function": True}


def test_unknown_old_path_is_still_an_import_error():
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("smfsym.no_such_module")
