"""No string from a spec reaches a string evaluator: a static scan of the package and a dynamic trap.

Static: every call in smfsym/**/*.py to a function that can turn a string into
code or a sympy object (sympify, S, parse_expr, eval, exec, compile of source,
runpy, lambdify, __import__, sympy.symbols of a string) must be in ALLOWED,
each with the reason it never sees a spec string. A new call fails this test
until someone looks at it.

Dynamic: loading every shipped spec and a set of hostile specs with sympy's
string parser (which sympify(str) uses) replaced by a trap.
"""
import ast
from pathlib import Path

import pytest

import smfsym
from smfsym.spec import SpecError, load_spec

PKG = Path(smfsym.__file__).parent
EVALUATORS = {"sympify", "S", "parse_expr", "eval", "exec", "compile", "run_path", "run_module", "lambdify", "nsimplify",
              "__import__", "import_module", "symbols"}

# Why the spec layer never passes a string to each of these: the spec layer
# (smfsym/spec/load.py) hands the rest of the package only sympy objects built
# by parse_expression, Python ints/floats/strs-from-a-fixed-enum validated by
# smfsym/spec/schema.py, and numpy arrays read by smfsym/spec/data_files.py.
SPEC_OBJECTS = "receives sympy objects or validated numbers from the spec layer, never spec strings"
ALLOWED = {
    ("_checks.py", "as_expr", "sympify"): "the package's one sympify: refuses strings at any depth first (tested below)",
    ("_aliases.py", "_AliasLoader.create_module", "import_module"): "module names from the package's own MOVED table",
    ("symbolic/lambdify.py", "lambdify_safe", "lambdify"): "sympy expressions only; dummify=False on package symbols",
    ("simulation/polynomial_space.py", "rational", "nsimplify"): "numbers already converted by as_expr (strings refused there)",
    ("data/laws/factories.py", "empirical", "symbols"): "only when `names` is a str from the Python API; the spec layer "
                                                   "passes a list of names checked by check_name",
    ("data/samplers.py", "Sampler.__post_init__", "eval"): "source generated in samplers.py from the law's kind; data "
                                                      "and parameters are bound as arrays, never as text",
    ("optimizers/schedules.py", "Schedule.__init__", "lambdify"): "the schedule, converted by as_expr first",
    ("data/means.py", "DataMean._eval_evalf", "lambdify"): "a DataMean's integrand: a sympy expression (DataMean "
                                                           "converts it with as_expr), evaluated once it has no "
                                                           "free parameters",
    ("studies/optimizer_weak_error.py", "exact_schedule_sgd_mean", "lambdify"): "matrices the package built from sympy",
    ("studies/optimizer_weak_error.py", "MomentODE.__init__", "lambdify"): "matrices the package built from sympy",
    ("spec/expr.py", "", "compile"): "re.compile of a constant pattern",
    ("backends.py", "Backend._import", "import_module"): "the module name is a class attribute of a registered back end "
                                                         "(numpy, cupy, array_api_strict), never user text",
    ("backends.py", "Backend.lambdify_modules", "import_module"): "special_module, a class attribute of a registered "
                                                                  "back end (jax.scipy.special, cupyx.scipy.special)",
    ("symbolic/lambdify.py", "CompiledExprs.__init__", "compile"): "Backend.compile: wraps an already lambdified "
                                                                   "function (CuPy's kernel fusion), not Python's compile",
    ("spec/data_files.py", "", "compile"): "re.compile of a constant pattern",
    ("cli.py", "", "compile"): "re.compile of a constant pattern (a negative number list after --etas)",
    ("spec/load.py", "", "compile"): "re.compile of a constant pattern",
    ("studies/storage.py", "", "compile"): "re.compile of a constant pattern (the key/bracket scanner of load_study)",
    ("spec/load.py", "_run_python_spec", "run_path"): "Python specs (.py): run as code by design, documented as trusted",
    ("__init__.py", "__getattr__", "import_module"): "the lazy package imports its own modules: a name from its fixed "
                                                     "table, or a submodule of smfsym that find_spec found on disk",
}


def _calls():
    found = set()
    for f in sorted(PKG.rglob("*.py")):
        tree = ast.parse(f.read_text())
        scopes = {}
        for node in ast.walk(tree):
            for ch in ast.iter_child_nodes(node):
                scopes[ch] = node
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            fn = node.func
            name = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else None
            if name not in EVALUATORS:
                continue
            if name == "sympify" and any(k.arg == "strict" and isinstance(k.value, ast.Constant)
                                         and k.value.value is True for k in node.keywords):
                continue  # strict mode refuses strings

            qual, p = [], node
            while p in scopes:
                p = scopes[p]
                if isinstance(p, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    qual.append(p.name)
            found.add((f.relative_to(PKG).as_posix(), ".".join(reversed(qual)), name))
    return found


def test_allow_list_names_only_calls_that_exist():
    stale = sorted(set(ALLOWED) - _calls())
    assert not stale, f"allow-list entries with no call behind them (remove them): {stale}"


@pytest.mark.parametrize("value", ["x", ["1", 2], (1, ("exp(1)",)), {"a": "b"}, [[1.0], ["__import__('os')"]]])
def test_the_one_conversion_refuses_strings_at_any_depth(value):
    from smfsym._checks import as_expr

    with pytest.raises(TypeError, match="not a string"):
        as_expr(value, "probe")


def test_every_string_evaluator_call_is_allow_listed():
    unexpected = sorted(_calls() - set(ALLOWED))
    assert not unexpected, ("calls that may evaluate strings, not in the allow-list of "
                            f"tests/spec/test_no_string_evaluation.py (justify or remove): {unexpected}")


def test_the_spec_package_itself_evaluates_nothing():
    spec_calls = {c for c in _calls() if c[0].startswith("spec/")}
    assert {c for c in spec_calls if c[2] != "compile"} == {("spec/load.py", "_run_python_spec", "run_path")}


@pytest.fixture
def traps(monkeypatch):
    """sympy's string parser (what sympify(str) runs) raises if anything calls it."""
    import sympy.parsing.sympy_parser as sp_parser

    hits = []

    def trap(name, real):
        def f(src, *a, **k):
            if isinstance(src, str):
                hits.append((name, src))
                raise AssertionError(f"{name} called on a string: {src!r:.80}")
            return real(src, *a, **k)
        return f

    monkeypatch.setattr(sp_parser, "parse_expr", trap("parse_expr", sp_parser.parse_expr))
    # eval/exec are not trapped: sympy's polys exec their own generated monomial code.
    return hits


@pytest.mark.parametrize("name", ["linear_regression", "double_well", "rademacher"])
def test_shipped_specs_load_without_string_parsing(traps, name):
    spec = load_spec(PKG / "specs" / f"{name}.toml")
    spec.problem.F, spec.problem.sigma
    assert traps == []


@pytest.mark.parametrize("field,value", [
    ("batch_size", '"__import__(\'os\').system(\'touch CANARY\')"'),
    ("batch_size", '"2"'), ("batch_size", "2.0"), ("batch_size", "true"),
    ("sampling", '"__import__(\'os\')"'),
])
def test_problem_fields_never_reach_sympify(traps, tmp_path, monkeypatch, field, value):
    monkeypatch.chdir(tmp_path)
    p = tmp_path / "s.toml"
    p.write_text(f'[problem]\nparams = ["x"]\nloss = "x**2*z"\n{field} = {value}\n[data.z]\nlaw = "normal"\n')
    with pytest.raises(SpecError, match=rf"s.toml:4: `\[problem\] {field}`"):
        load_spec(p)
    assert traps == [] and not (tmp_path / "CANARY").exists()


def test_the_spec_reference_in_the_docs_is_the_schema():
    """docs/spec_reference.md is generated from the schema: regenerate it when a key changes."""
    from smfsym.spec import reference

    doc = (PKG.parent / "docs" / "spec_reference.md").read_text()
    assert doc.split("\n\n", 1)[0] == "# smfsym spec reference"
    assert reference() + "\n" in doc, "docs/spec_reference.md is stale: regenerate it from smfsym.spec.reference()"


def test_every_example_in_the_spec_reference_loads(tmp_path):
    """The per-law examples of docs/spec_reference.md are whole, valid specs."""
    import re

    doc = (PKG.parent / "docs" / "spec_reference.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", doc, flags=re.S)
    assert len(blocks) >= 7
    (tmp_path / "data.csv").write_text("z,y,w\n0.5,1,1\n-1.2,-1,2\n0.3,1,1\n")
    laws = set()
    for i, text in enumerate(blocks):
        path = tmp_path / f"example{i}.toml"
        path.write_text(text)
        spec = load_spec(path)
        for law in (spec.problem.laws if spec.problem is not None else spec.meanfield.laws):
            laws.add(type(law).__name__)
    assert {"Normal", "MultivariateNormal", "Uniform", "Finite", "Exponential", "Gamma", "Beta", "StudentT",
            "Empirical"} <= laws
