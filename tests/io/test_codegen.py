"""Generated code for data means, data sets and data-set noise columns reproduces smfsym.simulation.sde.

The generated module embeds every refinement level of each Gauss rule and smfsym's per-state
refinement, so the numbers are smfsym's own: same seed, same paths, up to reordered rounding
(tolerance 1e-12 relative; measured differences are below 1e-15).
"""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import smfsym
from smfsym.studies import build_model

x = sp.Symbol("x")
RTOL = 1e-12


def _module(obj, eta, **data):
    src = smfsym.codegen(obj, eta=eta)
    assert "import smfsym" not in src and "from smfsym" not in src
    ns = {}
    exec(compile(src, "generated.py", "exec"), ns)  # our own generated module
    if data:
        ns["set_data"](**data)
    return src, ns


def _same(sde, ns, x0, t_end, eta, n_paths, seed):
    t, states = ns["simulate"](x0, t_end, n_paths, seed, save_at=[t_end / 2, t_end])
    ref = smfsym.simulate(sde, x0, t_end, eta=eta, n_paths=n_paths, seed=seed, save_at=[t_end / 2, t_end])
    assert np.allclose(t, ref.t)
    assert np.all(np.isfinite(states))
    np.testing.assert_allclose(states, ref.states, rtol=RTOL, atol=1e-15)
    return states


def _logistic_gaussian():
    a = smfsym.normal("a")
    return smfsym.Problem(sp.log(1 + sp.exp(-a * x)), [x])


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
@pytest.mark.parametrize("model", ["sme1", "smf1", "smf2"])
def test_logistic_loss_with_gaussian_data_gauss_rule(model):
    sde = build_model(_logistic_gaussian(), model)
    src, ns = _module(sde, 0.1)
    assert "_RULE0 = " in src and "adaptive Gauss-Hermite (16 to 512 points)" in src
    assert ns["_RULE0"]["levels"] == [16, 32, 64, 128, 256, 512]
    states = _same(sde, ns, [1.5], 0.3, 0.1, 300, 3)
    if model == "sme1":
        # the refinement matters here: with the first level alone the numbers differ (so the test above
        # checks the copied refinement, not just the 16-point rule)
        ns["_RULE0"]["levels"] = [16]
        ns["_NODE_CACHE"].clear()
        with pytest.warns(RuntimeWarning, match="cannot be error-checked"):
            _, coarse = ns["simulate"]([1.5], 0.3, 300, 3, save_at=[0.15, 0.3])
        assert np.max(np.abs(coarse - states)) > 1e-9


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
def test_two_gaussian_coordinates_sqrt_and_columns():
    xs = sp.symbols("x0:2")
    b = smfsym.normal("b", 2)
    p = smfsym.Problem(sp.log(1 + sp.exp(-(b[0] * xs[0] + b[1] * xs[1]))), xs)
    for model in ("sme1", "smf1"):
        sde = build_model(p, model)
        _, ns = _module(sde, 0.1)
        _same(sde, ns, [0.5, -0.3], 0.1, 0.1, 60, 6)
    assert "def sqrt_sigma(" in smfsym.codegen(build_model(p, "sme1"), eta=0.1)


def _data_problem(M, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=M)
    y = np.sign(rng.normal(size=M) + z)
    Z, Y = smfsym.empirical(np.c_[z, y], "z y")
    return smfsym.Problem((Z * x - Y) ** 2 / 2 + sp.log(1 + sp.exp(-Y * Z * x)), [x])


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
@pytest.mark.parametrize("model", ["sme1", "smf1", "smf2"])
def test_loss_on_a_small_embedded_data_set(model):
    p = _data_problem(7)
    sde = build_model(p, model)
    src, ns = _module(sde, 0.1)
    assert "_data0 = np.array(" in src  # 14 numbers: embedded, as the SGD sampler does
    assert sde.noise_kind == ("matrix" if model == "sme1" else "template")
    _same(sde, ns, [0.5], 0.3, 0.1, 300, 4)
    ref = smfsym.simulate_sgd(p, [0.5], 3, 0.1, n_paths=300, seed=4)
    np.testing.assert_allclose(ns["simulate_sgd"]([0.5], 3, 300, 4)[1], ref.states, rtol=RTOL, atol=1e-15)


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
def test_smf_data_set_noise_columns_bound_with_set_data_in_row_chunks():
    p = _data_problem(1500)  # 3000 numbers: passed in; 1500 rows are two chunks of ROWS = 1024
    law = p.laws[0]
    sde = build_model(p, "smf1")
    src, ns = _module(sde, 0.1)
    assert "_data0 = None" in src and len(src) < 80_000
    with pytest.raises(ValueError, match="call set_data"):
        ns["simulate"]([0.5], 0.1, 10, 5)
    ns["set_data"](_data0=law.data, _weights0=law.weights)
    _same(sde, ns, [0.5], 0.2, 0.1, 200, 5)
    # the n-point motion (one noise for all starts) too
    t, st = ns["simulate"]([[0.5], [-1.0]], 0.1, 50, 2)
    ref = smfsym.simulate(sde, [[0.5], [-1.0]], 0.1, eta=0.1, n_paths=50, seed=2)
    np.testing.assert_allclose(st, ref.states, rtol=RTOL, atol=1e-15)
    cols = ns["columns"](np.array([[0.3], [1.0]]))
    assert cols.shape == (2, 1500, 1)
    # the columns grad F - grad f(x, xi_i) have weighted mean zero over the data set
    assert np.allclose((cols * law.weights[:, None]).sum(axis=1), 0, atol=1e-12)


def test_generated_data_mean_module_runs_without_smfsym(tmp_path):
    p = _data_problem(1500, seed=1)
    law = p.laws[0]
    sde = build_model(p, "smf1")
    smfsym.codegen(sde, eta=0.1, path=tmp_path / "sim.py")
    np.save(tmp_path / "data.npy", law.data)
    np.save(tmp_path / "weights.npy", law.weights)
    script = textwrap.dedent(f"""
        import sys
        sys.modules["smfsym"] = None  # smfsym must not be importable here
        import numpy as np
        sys.path.insert(0, {str(tmp_path)!r})
        import sim
        sim.set_data(_data0=np.load("data.npy"), _weights0=np.load("weights.npy"))
        t, st = sim.simulate([0.5], 0.2, 100, 8)
        np.save("sde.npy", st)
        t, st = sim.simulate_sgd([0.5], 2, 100, 8)
        np.save("sgd.npy", st)
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([sys.executable, "-c", script], check=True, cwd=tmp_path, env=env)
    ref = smfsym.simulate(sde, [0.5], 0.2, eta=0.1, n_paths=100, seed=8)
    np.testing.assert_allclose(np.load(tmp_path / "sde.npy"), ref.states, rtol=RTOL, atol=1e-15)
    ref = smfsym.simulate_sgd(p, [0.5], 2, 0.1, n_paths=100, seed=8)
    np.testing.assert_allclose(np.load(tmp_path / "sgd.npy"), ref.states, rtol=RTOL, atol=1e-15)


def test_without_replacement_exports_the_sde_only_and_refuses_sgd_alone():
    Z, = smfsym.empirical(np.linspace(-1, 1, 9)[:, None], "z")
    p = smfsym.Problem(sp.log(1 + sp.exp(-Z * x)), [x], batch_size=3, sampling="without_replacement")
    sde = build_model(p, "smf1")
    src, ns = _module(sde, 0.1)
    assert "def simulate_sgd(" not in src and "simulate_sgd is not generated" in src
    _same(sde, ns, [0.2], 0.1, 0.1, 40, 1)
    with pytest.raises(NotImplementedError, match="without-replacement"):
        smfsym.codegen(p, eta=0.1)


def test_rules_too_large_to_embed_are_refused(monkeypatch):
    import smfsym.io.codegen_means as cm

    monkeypatch.setattr(cm, "RULE_EMBED_LIMIT", 100)
    with pytest.raises(ValueError, match=r"embedded numbers \(limit 100\).*max_quad_points"):
        smfsym.codegen(build_model(_logistic_gaussian(), "sme1"), eta=0.1)


def test_hostile_symbol_names_cannot_inject_code(tmp_path):
    marker = tmp_path / "pwned"
    evil = f'x"""\nimport os; os.system("touch {marker}") #'
    xe = sp.Symbol(evil)
    a = smfsym.normal("a")
    # a data law's name must be an identifier (audit 3, 12): the hostile one is refused where it is made
    with pytest.raises(ValueError, match="`name` must be a Python identifier"):
        smfsym.normal(f'a\nimport os; os.system("touch {marker}")')
    ae = smfsym.normal("a_e")
    p = smfsym.Problem(sp.log(1 + sp.exp(-a * xe)) + ae * xe, [xe])
    src = smfsym.codegen(build_model(p, "smf1"), eta=0.1)
    assert "touch" in src  # the names are printed (in docstrings and comments), defused
    ns = {}
    exec(compile(src, "generated.py", "exec"), ns)
    ns["simulate"]([1.0], 0.05, 4, 0)
    ns["simulate_sgd"]([1.0], 1, 4, 0)
    assert not marker.exists()


def test_numpy_module_reports_blow_up_as_smfsym_does():
    """The numpy module checks every step as smfsym's driver does: BlowUpError naming the step and share of
    paths (a FloatingPointError), or with on_nonfinite="mask" the lost paths NaN and a RuntimeWarning; the
    finite paths are smfsym's numbers either way."""
    p = smfsym.Problem(x**4 / 4 - smfsym.normal("a") * x, [x])
    _, ns = _module(p, eta=0.5)
    with pytest.raises(FloatingPointError, match=r"non-finite state at step \d+ \(t = [0-9.e+-]+\) in \d+ of 50 paths"):
        ns["simulate_sgd"]([3.0], 8, 50, 0)
    with pytest.warns(RuntimeWarning, match=r"\d+ of 50 paths lost, the first at non-finite state at step"):
        _, st = ns["simulate_sgd"]([2.0], 8, 50, 0, on_nonfinite="mask")
    ref = smfsym.simulate_sgd(p, [2.0], 8, 0.5, n_paths=50, seed=0,
                              options=smfsym.RunOptions(on_nonfinite="mask"), save_at=[8])
    # from x0 = 2 some paths (19 of 50 with this seed) pass eta x^2 > 2 and diverge, the others converge
    lost = np.isnan(st[-1, :, 0])
    assert 0 < lost.sum() < 50 and np.array_equal(lost, ~np.isfinite(ref.states[-1, :, 0]))
    np.testing.assert_allclose(st[-1, ~lost], ref.states[-1, ~lost], rtol=RTOL)
    with pytest.raises(FloatingPointError, match=r"\|state\| > 10"):
        ns["simulate_sgd"]([3.0], 8, 50, 0, blowup_threshold=10.0)
    flow = smfsym.smf(p, order=1)
    _, ns = _module(flow, eta=0.5)
    with pytest.raises(FloatingPointError, match=r"non-finite state at step \d+ \(t = [\d.]+\)"):
        ns["simulate"]([3.0], 4.0, 50, 0, dt=0.5)
    with pytest.raises(ValueError, match="`on_nonfinite` must be 'raise' or 'mask'"):
        ns["simulate"]([3.0], 1.0, 50, 0, on_nonfinite="ignore")


def _same_scheme(sde, ns, x0, scheme, increments, n_paths=300, seed=4, t_end=0.2, eta=0.1):
    t, st = ns["simulate"](x0, t_end, n_paths, seed, save_at=[t_end / 2, t_end], scheme=scheme, increments=increments)
    ref = smfsym.simulate(sde, x0, t_end, eta=eta, n_paths=n_paths, seed=seed, save_at=[t_end / 2, t_end],
                          scheme=scheme, increments=increments)
    assert np.allclose(t, ref.t) and np.all(np.isfinite(st))
    np.testing.assert_allclose(st, ref.states, rtol=RTOL, atol=1e-15)
    return st


@pytest.mark.parametrize("increments", [pytest.param("gaussian", marks=pytest.mark.slow), "discrete"])  # 1.5 s each
def test_weak2_and_discrete_increments_reproduce_smfsym(increments):
    """smfsym's simplified weak Taylor 2.0 step (WeakTaylor2) in the numpy module, from the same seed: a
    three-dimensional SMF (two seed blocks, the n-point motion), data means of a data set inside the
    derivative terms (sme1 of a logistic loss), quadrature means over a Gaussian law (smf1), no noise (gf)."""
    from backend_cases import X0, regression_problem

    flow = smfsym.smf(regression_problem(), order=1)
    _, ns = _module(flow, 0.1)
    st = _same_scheme(flow, ns, X0, "weak2", increments, n_paths=5000)
    assert not np.allclose(st, _same_scheme(flow, ns, X0, "euler", increments, n_paths=5000))
    _same_scheme(flow, ns, [X0, [0.0, 1.0, 2.0]], "weak2", increments, n_paths=40)
    for sde in (build_model(_data_problem(7), "sme1"), build_model(_logistic_gaussian(), "smf1"),
                build_model(_data_problem(7), "gf")):
        src, ns = _module(sde, 0.1)
        assert sde.noise_kind == "matrix" and "NO_WEAK2 = ''" in src
        _same_scheme(sde, ns, [0.5], "weak2", increments, n_paths=100)


def test_weak2_is_refused_where_the_module_has_none_naming_why():
    from backend_cases import X0, regression_problem

    _, ns = _module(smfsym.sme(regression_problem(), order=1), 0.1)  # the numeric root: smfsym refuses it too
    with pytest.raises(ValueError, match=r"`scheme='weak2'`: .*explicit matrix"):
        ns["simulate"](X0, 0.1, 10, 0, scheme="weak2")
    with pytest.raises(ValueError, match=r"explicit matrix"):
        smfsym.simulate(smfsym.sme(regression_problem(), order=1), X0, 0.1, eta=0.1, n_paths=10, seed=0,
                        scheme="weak2")
    _, ns = _module(build_model(_data_problem(7), "smf1"), 0.1)
    with pytest.raises(ValueError, match=r"`scheme` must be one of \['euler', 'weak2'\]; got 'milstein'"):
        ns["simulate"]([0.5], 0.1, 10, 0, scheme="milstein")
    with pytest.raises(ValueError, match=r"`increments` must be 'gaussian' or 'discrete'; got 'sobol'"):
        ns["simulate"]([0.5], 0.1, 10, 0, increments="sobol")


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
@pytest.mark.parametrize("model", ["smf1", "smf2"])
def test_weak2_on_data_set_noise_reproduces_smfsym(model):
    """WeakTaylor2._step_dataset: the noise actions and their derivatives as data-set sums, with discrete and
    Gaussian increments and the n-point motion."""
    sde = build_model(_data_problem(7), model)
    src, ns = _module(sde, 0.1)
    assert sde.noise_kind == "template" and "NO_WEAK2 = ''" in src and "def _w2_action(" in src
    for inc in ("gaussian", "discrete"):
        _same_scheme(sde, ns, [0.5], "weak2", inc, n_paths=40)
    _same_scheme(sde, ns, [[0.5], [-1.0]], "weak2", "gaussian", n_paths=20)


@pytest.mark.slow
def test_weak2_on_a_large_data_set_sums_rows_in_chunks():
    """1500 rows bound with set_data: two chunks of ROWS = 1024 in the weak order-2 sums."""
    p = _data_problem(1500)
    sde = build_model(p, "smf1")
    _, ns = _module(sde, 0.1, _data0=p.laws[0].data, _weights0=p.laws[0].weights)
    _same_scheme(sde, ns, [0.5], "weak2", "discrete", n_paths=40, t_end=0.05)


def test_set_data_again_drops_what_the_module_derived_from_the_old_data():
    p = _data_problem(1500)
    law = p.laws[0]
    sde = build_model(p, "smf1")
    _, ns = _module(sde, 0.1, _data0=law.data, _weights0=law.weights)
    _, first = ns["simulate"]([0.5], 0.1, 60, 5)
    other = {"_data0": law.data[::-1] * 1.5, "_weights0": law.weights[::-1]}
    ns["set_data"](**other)  # stale node or linear-algebra caches of the old rows would give `first` again
    _, again = ns["simulate"]([0.5], 0.1, 60, 5)
    _, fresh = _module(sde, 0.1, **other)
    assert not np.array_equal(again, first)
    assert np.array_equal(again, fresh["simulate"]([0.5], 0.1, 60, 5)[1])


def test_generated_module_confirms_cancelling_means_as_smfsym_does():
    """E tanh(50 (a - 0.1)) + x under N(0, 1) at x = 0: the 16- and 32-point rules agree on ~0 by symmetry
    (truth -0.0796); smfsym then checks the 31-point rule of the other parity and refines (audit 4, finding 3).
    The module embeds those odd rules and the very check, so it refines, warns and lands where smfsym does."""
    a = smfsym.normal("a")
    sde = build_model(smfsym.Problem(x * sp.tanh(50 * (a - sp.Rational(1, 10))) + x**2 / 2, [x]), "gf")
    src, ns = _module(sde, 0.1)
    rule = ns["_RULE0"]
    assert sorted(rule["laws"][0]) == [16, 31, 32, 63, 64, 127, 128, 255, 256, 511, 512]
    fn = ns["_MEAN_RULES"][0][0]
    with pytest.warns(RuntimeWarning, match="missed its tolerance"):
        got = ns["_mean"](fn, rule, [np.array([0.0])])
    from smfsym.symbolic.lambdify import compile_exprs
    with pytest.warns(smfsym.QuadratureWarning, match="missed its tolerance"):
        ref = compile_exprs([sde.drift[0]], [x])(np.array([[0.0]]))[0]  # drift = -E[x + tanh(...)]
    assert abs(float(got[0])) > 1e-3
    np.testing.assert_allclose(-np.ravel(ref), got, rtol=RTOL, atol=1e-15)


@pytest.mark.parametrize("backend", ["numpy", "array_api_strict"])
def test_codegen_path_refuses_existing_files_and_links(tmp_path, backend):
    """Audit 9, finding 4: codegen(path=...) overwrote files and wrote through a symbolic link (its target was
    replaced by generated code); export_tex and StudyIO.save refuse both, and so does codegen now."""
    if backend == "array_api_strict":
        pytest.importorskip("array_api_strict")
    x = sp.Symbol("x")
    flow = smfsym.smf(smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x]), order=1)
    precious = tmp_path / "precious.txt"
    precious.write_text("precious")
    os.symlink(precious, tmp_path / "link.py")
    with pytest.raises(FileExistsError, match="symbolic link"):
        smfsym.codegen(flow, eta=0.1, path=tmp_path / "link.py", backend=backend, overwrite=True)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        smfsym.codegen(flow, eta=0.1, path=precious, backend=backend)
    with pytest.raises(IsADirectoryError, match="`path`"):
        smfsym.codegen(flow, eta=0.1, path=tmp_path, backend=backend)
    assert precious.read_text() == "precious"
    src = smfsym.codegen(flow, eta=0.1, path=precious, backend=backend, overwrite=True)
    assert precious.read_text() == src
    new = tmp_path / "sim.py"
    assert smfsym.codegen(flow, eta=0.1, path=new, backend=backend) == new.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.py", "precious.txt", "sim.py"]  # no temporaries


def test_a_generated_module_says_what_it_was_generated_from(tmp_path):
    """Audit 9, finding 8: a module found later did not say which smfsym, model, problem, numbers or back end it
    simulates; its docstring and PROVENANCE say so, and `smfsym codegen` adds the spec and its SHA-256."""
    import hashlib
    import importlib.util

    from smfsym.cli import main

    x, c = sp.Symbol("x"), sp.Symbol("c")
    flow = smfsym.smf(smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2 + c * x, [x], constants=[c]))
    for backend in ("numpy", "array_api_strict"):
        src = smfsym.codegen(flow, eta=0.1, values={c: 0.5}, backend=backend, source="my notes")
        ns: dict = {}
        exec(compile(src, "generated", "exec"), ns)
        info = ns["PROVENANCE"]
        assert info["smfsym"] == smfsym.__version__ and info["backend"] == backend and info["eta"] == 0.1
        assert info["model"] == flow.title and info["loss"] == str(flow.problem.loss)
        assert info["values"] == {"c": 0.5} and info["data"] == ["Normal(xi; 0, 1)"] and info["source"] == "my notes"
        assert f"smfsym: {smfsym.__version__}" in ns["__doc__"] and "values: {'c': 0.5}" in ns["__doc__"]
    spec = Path(smfsym.__file__).parent / "specs" / "linear_regression.toml"
    out = tmp_path / "sim.py"
    assert main(["codegen", str(spec), "--eta", "0.05", "--model", "sme1", "-o", str(out)]) == 0
    module = importlib.util.module_from_spec(importlib.util.spec_from_file_location("sim", out))
    module.__spec__.loader.exec_module(module)
    digest = hashlib.sha256(spec.read_bytes()).hexdigest()
    assert digest in module.PROVENANCE["source"] and "model sme1" in module.PROVENANCE["source"]
    assert module.PROVENANCE["model"] == "stochastic modified equation, order 1"
