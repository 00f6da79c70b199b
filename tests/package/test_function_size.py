"""Size bounds on the code (issue 16): no function in smfsym/ over 80 lines (docstring excluded), no public
function with more than 12 parameters (``**legacy``, the old keywords kept for one release, not counted).
Read from the source with ``ast``. ``OVER_12`` lists today's exceptions; it may only shrink."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "smfsym"

#: Public functions still over 12 parameters (module, function); it may only shrink. Empty since issue 16: the
#: settings travel as objects (RunOptions, SaveAt, Numerics; Momentum; the mean field's Observe, MeanFieldNumerics,
#: MeanFieldOptions and InitialParticles).
OVER_12: set = set()


def functions():
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield str(path.relative_to(PACKAGE)), node


def code_lines(node) -> int:
    first = node.body[0]
    has_doc = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str)
    start = first.end_lineno + 1 if has_doc else node.lineno
    return node.end_lineno - start + 1


def n_parameters(node) -> int:
    a = node.args
    names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs] + ([a.vararg.arg] if a.vararg else [])
    return len([n for n in names if n not in ("self", "cls")])


def test_no_function_over_80_lines():
    long = [(f, n.name, code_lines(n)) for f, n in functions() if code_lines(n) > 80]
    assert not long, long


def test_public_functions_have_at_most_12_parameters():
    over = {(f, n.name) for f, n in functions() if not n.name.startswith("_") and n_parameters(n) > 12}
    assert over <= OVER_12, f"new public functions over 12 parameters: {sorted(over - OVER_12)}"
    assert not OVER_12 - over, f"these are down to 12 parameters: delete them from OVER_12: {sorted(OVER_12 - over)}"


def test_the_checks_see_a_long_function():
    node = ast.parse("def f(a, b, *, c, **k):\n    '''doc'''\n" + "    x = 1\n" * 81).body[0]
    assert code_lines(node) == 81 and n_parameters(node) == 3
