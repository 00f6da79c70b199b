"""``import smfsym`` is lazy (issue 17, item 4): which modules an import loads, asserted as module sets in fresh
interpreters (never wall time), and every public name still resolves as it did when imported eagerly."""
import json
import os
import re
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

import smfsym

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ["sympy", "numpy", "scipy", "scipy.special", "matplotlib", "smfsym.studies", "smfsym.meanfield",
         "smfsym.optimizers", "smfsym.symbolic.noise_expansion", "smfsym.cli"]


def loaded_after(code: str) -> dict:
    """Which of HEAVY (and which smfsym modules) are in sys.modules after ``code`` in a fresh interpreter."""
    probe = "import json, sys\n" + code + "\n" + textwrap.dedent(f"""
        print(json.dumps({{"heavy": [m for m in {HEAVY!r} if m in sys.modules],
                          "smfsym": sorted(m for m in sys.modules if m.startswith("smfsym"))}}))
    """)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_smfsym_loads_nothing_heavy():
    got = loaded_after("import smfsym; smfsym.__version__; smfsym.__all__")
    assert got["heavy"] == []  # not even sympy or numpy
    assert got["smfsym"] == ["smfsym", "smfsym._aliases", "smfsym._version"]  # old module paths, version (stdlib only)


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
def test_first_use_loads_only_what_it_needs():
    # a simulation needs sympy and numpy, never the studies, the CLI, scipy.special or matplotlib
    got = loaded_after("import smfsym; smfsym.Problem, smfsym.normal, smfsym.smf, smfsym.simulate, "
                       "smfsym.simulate_sgd")
    assert set(got["heavy"]) == {"sympy", "numpy", "smfsym.symbolic.noise_expansion"}
    # a study loads the studies, still without matplotlib (plots import it when drawn)
    got = loaded_after("from smfsym import weak_error")
    assert "smfsym.studies" in got["heavy"] and "matplotlib" not in got["heavy"]
    assert "scipy.special" not in got["heavy"] and "smfsym.meanfield" not in got["heavy"]


def test_every_public_name_resolves_to_its_object():
    for name in smfsym.__all__:
        obj = getattr(smfsym, name)
        assert not isinstance(obj, types.ModuleType), name
    assert smfsym.simulate.__module__ == "smfsym.simulation.sde" and callable(smfsym.simulate)
    assert set(smfsym.__all__) <= set(dir(smfsym))
    # submodules stay reachable as attributes, as when __init__ imported them
    assert {"engine", "data", "symbolic", "numerics", "montecarlo", "simulation", "studies", "io"} <= set(dir(smfsym))
    assert smfsym.engine.BLOCK == 4096
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        smfsym.no_such_name


def test_submodule_imports_do_not_shadow_functions_of_the_same_name():
    # importing smfsym.simulate (the module) first must leave smfsym.simulate the function
    code = ("import smfsym.simulation.sde, smfsym.codegen, smfsym.expectation, types; import smfsym;"
            "assert all(callable(f) and not isinstance(f, types.ModuleType) for f in "
            "(smfsym.simulate, smfsym.codegen, smfsym.expectation)), (smfsym.simulate, smfsym.codegen);"
            "from smfsym.simulation.sde import prepare_x0")
    loaded_after(code)


def test_star_import_and_every_name_in_the_readme():
    names = set(re.findall(r"smfsym\.([A-Za-z_]\w*)", (ROOT / "README.md").read_text()))
    assert {"simulate", "weak_error", "Problem", "spec"} <= names
    code = ("import smfsym\nfrom smfsym import *\n"
            f"missing = [n for n in smfsym.__all__ if n not in globals()]\nassert not missing, missing\n"
            f"for n in {sorted(names)!r}:\n    getattr(smfsym, n)\n")
    loaded_after(code)
