"""The allow-list expression parser: bounds (flat sums, depth, exponents, literals) and refused constructs."""
import pytest
import sympy as sp

from smfsym.spec import SpecError, parse_expression
from smfsym.spec.expr import MAX_DEPTH, MAX_EXPONENT, MAX_TEXT, MAX_TOKENS

x, y = sp.symbols("x y")
NAMES = {"x": x, "x0": sp.Symbol("x0"), "y": y}


@pytest.mark.timeout(30)
def test_thousand_term_sum_and_product_parse_flat():
    s = " + ".join(f"{i}*x" for i in range(1, 1001))
    assert parse_expression(s, NAMES) == 500500 * x
    s = " - ".join(["x"] * 1000)
    assert parse_expression(s, NAMES) == -998 * x
    assert parse_expression("*".join(["x"] * 1000), NAMES) == x**1000
    assert parse_expression("/".join(["x"] * 1000), NAMES) == x**-998


def test_floats_are_exact_decimals_and_arithmetic_is_right():
    assert parse_expression("0.1*x + 2.5e-3", NAMES) == sp.Rational(1, 10) * x + sp.Rational(1, 400)
    assert parse_expression("sigmoid(x) - softplus(-x)", NAMES) == 1 / (1 + sp.exp(-x)) - sp.log(1 + sp.exp(-x))
    assert parse_expression("-(x - y)**2/2", NAMES) == -(x - y) ** 2 / 2
    assert parse_expression(3, NAMES) == 3 and parse_expression(0.25, NAMES) == sp.Rational(1, 4)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("text,match", [
    ("9**9**9", "exponent"), ("2**(10**10)", "exponent"), ("x0**(10**10)", "exponent"),
    ("x**1001", "exponent"), ("x**(-1001)", "exponent"), ("x**(1/1001)", "exponent"),
    ("(10**30)**1000", "bits"), ("(2**1000)**(1000)", "bits"),
    ("1" * 31, "too large"), ("1e999", "not finite"), ("x/0", "division by zero"), ("log(0)", "not a finite"),
    ("(" * (MAX_DEPTH + 1) + "x" + ")" * (MAX_DEPTH + 1), "nested"),
    ("-" * 200 + "x", "nested"), ("x**" * 100 + "x", "nested"),
    ("x+" * (MAX_TEXT // 2) + "x", "too long"), ("+".join(["x"] * (MAX_TOKENS // 2 + 1)), "tokens"),
    ("+".join(["x"] * 3000), "MAX_TREE_DEPTH"), ("*".join(["x"] * 2002), "MAX_TREE_DEPTH"),
    ("+".join(["x"] * 1500) + "+" + "*".join(["x"] * 1500), "MAX_TREE_DEPTH"),
    ("", "empty"), ("   ", "empty"),
], ids=lambda v: v[:40] if isinstance(v, str) else None)
def test_numeric_explosions_and_size_are_refused_before_evaluation(text, match):
    with pytest.raises(SpecError, match=match):
        parse_expression(text, NAMES)


def test_exponent_at_the_bound_is_allowed():
    assert parse_expression(f"x**{MAX_EXPONENT}", NAMES) == x**MAX_EXPONENT
    assert parse_expression("2**1000", NAMES) == sp.Integer(2) ** 1000


@pytest.mark.parametrize("text,match", [
    ("x.real", "attribute access"), ("x[0]", "subscripts"), ("(lambda: 1)()", "lambdas|calling"),
    ("lambda: 1", "lambdas"), ("[c for c in x]", "comprehensions"), ("{c for c in x}", "comprehensions"),
    ("(c for c in x)", "comprehensions"), ("f'{x}'", "f-strings"), ("exp(*x)", "starred"),
    ("exp(x=1)", "keyword"), ("(y := 1)", "walrus"), ("x < 1", "comparisons"), ("x and y", "boolean"),
    ("not x", "not allowed"), ("~x", "not allowed"), ("x // 2", "FloorDiv"), ("x % 2", "Mod"), ("x @ y", "MatMult"),
    ("x ^ 2", "BitXor"), ("True", "bool constants"), ("None", "NoneType constants"), ("1j", "complex"),
    ("'x'", "str constants"), ("b'x'", "bytes constants"), ("...", "ellipsis constants"),
    ("x if y else 1", "conditional"), ("(x, y)", "tuples"), ("[x]", "lists"), ("{x: 1}", "dicts"),
    ("__import__('os')", "calls are only allowed"), ("__builtins__", "dunder"), ("exp", "is a function"),
    ("open('f', 'w')", "calls are only allowed"), ("exp(x, y)", "exp"), ("unknown + x", "unknown name `unknown`"),
    ("x; import os", "not a valid expression"), ("import os", "not a valid expression"),
])
def test_refused_constructs(text, match):
    with pytest.raises(SpecError, match=match):
        parse_expression(text, NAMES)


@pytest.mark.parametrize("text,folded", [
    ("\uff58" + "0**2", "x0"),          # fullwidth x
    ("x\u2080 + 1", "x0"),              # subscript zero
    ("\U0001d431 * 2", "x"),            # mathematical bold x
    ("\ufb01 + x", "fi"),               # ligature fi
])
def test_nfkc_lookalikes_are_refused_naming_both_spellings(text, folded):
    with pytest.raises(SpecError) as exc:
        parse_expression(text, NAMES)
    msg = str(exc.value)
    assert "NFKC" in msg and repr(folded) in msg


def test_non_string_inputs():
    for bad in (True, None, [1], {"a": 1}, float("nan"), float("inf"), 1j):
        with pytest.raises(SpecError):
            parse_expression(bad, NAMES)


@pytest.mark.timeout(60)
def test_a_thousand_term_loss_loads_from_a_spec(tmp_path):
    from smfsym.spec import load_spec

    loss = "(1 + z) * (" + " + ".join(f"{i}*x**2" for i in range(1, 1001)) + ")"
    p = tmp_path / "s.toml"
    p.write_text(f'[problem]\nparams = ["x"]\nloss = "{loss}"\n[data.z]\nlaw = "normal"\n')
    assert len(loss) > 9_000
    assert load_spec(p).problem.F == 500500 * x**2


# ------------------------------------------------------------------ issue #15 §3: comments, literals, work, complex

@pytest.mark.parametrize("text", ["x**2/2 # note + y*x", "x # ", "#x", "x + 1  # 'quoted'"])
def test_a_comment_is_refused_not_dropped(text):
    """`#` would make Python drop the rest of the string: `x**2/2 # note + z*x` gave Sigma = 0."""
    with pytest.raises(SpecError, match="`#` is not allowed.*comment"):
        parse_expression(text, NAMES)


@pytest.mark.parametrize("text,kind", [
    ("0x1f*x", "hexadecimal"), ("0o7 + x", "octal"), ("0b1", "binary"), ("1_000*x", "separators"),
    ("x + 1j", "imaginary"), ("2J*x", "imaginary"), ("1_0.5", "separators"), ("1e1_0", "separators"),
])
def test_literals_the_csv_reader_refuses_are_refused(text, kind):
    with pytest.raises(SpecError, match=rf"literal `.*` is .*{kind}.*plain decimals"):
        parse_expression(text, NAMES)


def test_plain_decimal_literals_still_parse():
    assert parse_expression("1e-5*x + 5.*y + .5 + 2E+3", NAMES) == x / 100000 + 5 * y + sp.Rational(4001, 2)


def _nest(k, inner="x*y", f="tanh"):
    return f"{f}(" * k + inner + ")" * k


@pytest.mark.timeout(20)
@pytest.mark.parametrize("k", [7, 12, 40])
def test_deeply_nested_functions_are_refused_before_sympy_works(k):
    """A 12-deep tanh took minutes inside the parser; the bound is checked on the syntax tree."""
    from smfsym.spec.expr import MAX_CALL_DEPTH

    with pytest.raises(SpecError, match=rf"nested {MAX_CALL_DEPTH + 1} deep.*MAX_CALL_DEPTH = {MAX_CALL_DEPTH}"):
        parse_expression(_nest(k), NAMES)
    with pytest.raises(SpecError, match="MAX_CALL_DEPTH"):  # mixed functions count alike
        parse_expression("exp(" + _nest(k - 1, f="sin") + ")", NAMES)
    with pytest.raises(SpecError, match=rf"nested {MAX_CALL_DEPTH + 2} deep.*sigmoid and softplus count 2"):
        parse_expression(_nest(k, f="sigmoid"), NAMES)  # sigmoid^4 took 18 s in derive, sigmoid^6 minutes


@pytest.mark.timeout(20)
def test_nesting_at_the_bound_is_allowed():
    from smfsym.spec.expr import MAX_CALL_DEPTH

    e = parse_expression(_nest(MAX_CALL_DEPTH), NAMES)
    assert e.func == sp.tanh and sp.count_ops(e) >= MAX_CALL_DEPTH
    assert parse_expression(_nest(MAX_CALL_DEPTH // 2, f="softplus"), NAMES).func == sp.log
    with pytest.raises(SpecError, match="MAX_CALL_DEPTH"):
        parse_expression("exp(" + _nest(MAX_CALL_DEPTH // 2, f="softplus") + ")", NAMES)


@pytest.mark.timeout(20)
@pytest.mark.parametrize("f", ["Max", "Min", "Abs", "abs"])
def test_sums_of_many_piecewise_functions_are_refused_with_the_estimate(f):
    from smfsym.spec.expr import MAX_PIECEWISE

    n = 200
    terms = [f"{f}(x*y, {i})" if f in ("Max", "Min") else f"{f}(x - {i})" for i in range(n)]
    with pytest.raises(SpecError, match=rf"{n} calls of the piecewise.*about {n * n:,} piecewise products.*"
                                        rf"MAX_PIECEWISE = {MAX_PIECEWISE}"):
        parse_expression(" + ".join(terms), NAMES)
    ok = " + ".join(terms[:MAX_PIECEWISE])
    assert parse_expression(ok, NAMES).count(sp.Heaviside) == 0  # at the bound it parses


@pytest.mark.parametrize("text", ["x + sqrt(-1)", "log(-1)", "(-1)**(1/2)", "x*sqrt(-2)", "(-8)**(1/3)*x",
                                  "exp(x)*log(-3)", "sqrt(-pi)", "(-1)**0.5 + x"])
def test_provably_complex_expressions_are_refused(text):
    """`phi = x + sqrt(-1)` was accepted by derive and failed in check with a float conversion error."""
    with pytest.raises(SpecError, match="is not real"):
        parse_expression(text, NAMES)


@pytest.mark.parametrize("text", ["sqrt(x - 10)", "log(x)", "(-1)**2 * x", "sqrt(4) + log(2) + (-8)**(1/1)",
                                  "atan(-1)", "Abs(-2)*x"])
def test_real_or_possibly_real_expressions_are_accepted(text):
    parse_expression(text, NAMES)


def test_a_complex_phi_in_a_python_spec_is_refused_at_load(tmp_path):
    from smfsym.spec import load_spec

    p = tmp_path / "s.py"
    p.write_text("import sympy as sp, smfsym\nx = sp.Symbol('x')\n"
                 "problem = smfsym.Problem((x - smfsym.normal('z')) ** 2 / 2, [x])\n"
                 "check = dict(phi=x + sp.sqrt(-1), x0=[1.0], etas=[0.1])\n")
    with pytest.raises(SpecError, match=r"s.py: `\[check\] phi`: x \+ I is not real"):
        load_spec(p)
