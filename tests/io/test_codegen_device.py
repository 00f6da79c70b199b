"""Generated simulators on an array back end (issue 19): ``smfsym.codegen(..., backend="array_api_strict")``.

The generated module mirrors smfsym's device path operation for operation and draws seed block b's streams
as smfsym's back end does, so it reproduces ``smfsym.simulate(..., options=RunOptions(backend=...))`` and
``smfsym.simulate_sgd`` BITWISE from the same seed (``np.array_equal``: no tolerance). array_api_strict keeps
its arrays on a stand-in device that numpy refuses to convert, so a hidden host copy in the generated loop
fails these tests. The CuPy twin is in tests/montecarlo/test_backends_gpu.py.
"""
import ast
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import sympy as sp

import smfsym
from smfsym import RunOptions
from smfsym.studies import build_model

from backend_cases import X0, regression_problem
from fake_cupy import fake_cupy  # noqa: F401 (fixture)

pytest.importorskip("array_api_strict")

x = sp.Symbol("x")
AAS = RunOptions(backend="array_api_strict")


def _module(obj, eta=0.1, **data):
    src = smfsym.codegen(obj, eta=eta, backend="array_api_strict")
    ns = {}
    exec(compile(src, "generated.py", "exec"), ns)  # our own generated module
    if data:
        ns["set_data"](**data)
    return src, ns


def _same_sde(sde, ns, x0, t_end=0.2, n_paths=300, seed=4):
    t, st = ns["simulate"](x0, t_end, n_paths, seed, save_at=[t_end / 2, t_end])
    ref = smfsym.simulate(sde, x0, t_end, eta=0.1, n_paths=n_paths, seed=seed, save_at=[t_end / 2, t_end],
                          options=AAS)
    assert type(st) is np.ndarray and st.shape == ref.states.shape  # host numpy arrays come back
    assert np.all(np.isfinite(st)) and np.array_equal(t, ref.t)
    assert np.array_equal(st, ref.states)


def _same_sgd(problem, ns, x0, n_steps=3, n_paths=300, seed=4):
    t, st = ns["simulate_sgd"](x0, n_steps, n_paths, seed, save_at=[1, n_steps])
    ref = smfsym.simulate_sgd(problem, x0, n_steps, 0.1, n_paths=n_paths, seed=seed, save_at=[1, n_steps],
                              options=AAS)
    assert np.all(np.isfinite(st)) and np.allclose(t, ref.t)
    assert np.array_equal(st, ref.states)


def _data_problem(M, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=M)
    y = np.sign(rng.normal(size=M) + z)
    Z, Y = smfsym.empirical(np.c_[z, y], "z y")
    return smfsym.Problem((Z * x - Y) ** 2 / 2 + sp.log(1 + sp.exp(-Y * Z * x)), [x])


@pytest.fixture(scope="module")
def regression():
    p = regression_problem()
    return p, _module(smfsym.smf(p, order=1))


def test_regression_smf_and_its_sgd_are_smfsyms_numbers_bitwise(regression):
    p, (src, ns) = regression
    # 5000 paths: two seed blocks (4096 + 904), each drawing its own stream
    _same_sde(smfsym.smf(p, order=1), ns, X0, t_end=0.3, n_paths=5000, seed=3)
    _same_sgd(p, ns, X0, n_steps=4, n_paths=5000, seed=3)
    # chunks of whole seed blocks on the device: the same numbers whatever the chunking
    whole = ns["simulate"](X0, 0.3, 5000, 3, save_at=[0.15, 0.3])[1]
    assert np.array_equal(ns["simulate"](X0, 0.3, 5000, 3, save_at=[0.15, 0.3], chunk_paths=100)[1], whole)
    with pytest.raises(ValueError, match="`chunk_paths` must be an integer >= 1; got 0"):
        ns["simulate"](X0, 0.3, 10, 3, chunk_paths=0)
    # the n-point motion (one noise for all starts) and n SGD chains sharing their samples
    _same_sde(smfsym.smf(p, order=1), ns, [X0, [0.0, 1.0, 2.0]], n_paths=50)
    _same_sgd(p, ns, [X0, [0.0, 1.0, 2.0]], n_paths=50)


def test_the_module_draws_another_stream_than_numpy_and_agrees_statistically(regression):
    p, (_, ns) = regression
    n = 8192
    _, dev = ns["simulate_sgd"](X0, 4, n, 11)
    ref = smfsym.simulate_sgd(p, X0, 4, 0.1, n_paths=n, seed=11)
    assert not np.array_equal(dev, ref.states)  # Philox on the device, PCG64 on numpy
    # 5 standard errors of the difference of two independent means (a false alarm below 1e-5 over 3 entries)
    se = np.hypot(dev[-1].std(axis=0, ddof=1), ref.states[-1].std(axis=0, ddof=1)) / np.sqrt(n)
    assert np.all(np.abs(dev[-1].mean(axis=0) - ref.states[-1].mean(axis=0)) < 5 * se)


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
@pytest.mark.parametrize("model", ["sme1", "smf1", "smf2"])
def test_data_set_models_with_device_data_means_bitwise(model):
    p = _data_problem(7)
    sde = build_model(p, model)
    src, ns = _module(sde)
    assert sde.noise_kind == ("matrix" if model == "sme1" else "template")
    assert "_data0 = np.array(" in src and "_exact_mean" in src
    _same_sde(sde, ns, [0.5])
    _same_sde(sde, ns, [[0.5], [-1.0]], n_paths=40)
    _same_sgd(p, ns, [0.5])


@pytest.mark.parametrize("model", ["gf", "gf2"])
def test_a_flow_without_noise_runs_its_deterministic_euler_bitwise(model):
    sde = build_model(_data_problem(7), model)
    src, ns = _module(sde)
    assert "M = 0" in src
    _same_sde(sde, ns, [0.5], n_paths=20)


def test_a_large_data_set_is_bound_with_set_data_and_summed_in_row_chunks():
    p = _data_problem(1500)  # 3000 numbers: passed in; 1500 rows are two chunks of ROWS = 1024
    law = p.laws[0]
    sde = build_model(p, "smf1")
    src, ns = _module(sde)
    assert "_data0 = None" in src and len(src) < 80_000
    with pytest.raises(ValueError, match="call set_data"):
        ns["simulate"]([0.5], 0.1, 10, 5)
    ns["set_data"](_data0=law.data, _weights0=law.weights)
    _same_sde(sde, ns, [0.5], n_paths=60)
    _same_sgd(p, ns, [0.5], n_steps=2, n_paths=60)


def test_every_device_sampler_of_sgd_bitwise():
    xs = sp.symbols("x0:2")
    u = smfsym.uniform("u", -1, 2)
    e = smfsym.exponential("e", rate=sp.Rational(3, 2))
    r = smfsym.rademacher("r")
    c = smfsym.categorical("c", [0.5, 1.0, 3.0], [0.2, 0.3, 0.5])
    g = smfsym.normal("g", 2, cov=[[1.0, 0.3], [0.3, 0.5]])
    n = smfsym.normal("n", mean=sp.Symbol("m"), std=sp.Rational(1, 2))
    f = (xs[0] * u - e) ** 2 / 2 + r * c * xs[1] ** 2 / 2 + g[0] * xs[0] * xs[1] + g[1] * xs[1] + n * xs[0] ** 2 / 2
    p = smfsym.Problem(f, xs, batch_size=3)
    src = smfsym.codegen(p, eta=0.1, values={"m": 0.25}, backend="array_api_strict")
    assert "def simulate(" not in src and "def simulate_sgd(" in src
    ns = {}
    exec(compile(src, "generated.py", "exec"), ns)
    t, st = ns["simulate_sgd"]([0.3, -0.2], 3, 200, 7)
    ref = smfsym.simulate_sgd(p, [0.3, -0.2], 3, 0.1, n_paths=200, seed=7, values={"m": 0.25}, options=AAS)
    assert np.all(np.isfinite(st)) and np.array_equal(st, ref.states)


def test_blow_up_is_reported_as_smfsym_reports_it():
    p = smfsym.Problem(x**4 / 4 - smfsym.normal("a") * x, [x])
    _, ns = _module(p, eta=0.5)
    with pytest.raises(FloatingPointError, match=r"non-finite state at step \d+ \(t = [0-9.e+-]+\).*on_nonfinite='mask'"):
        ns["simulate_sgd"]([3.0], 8, 50, 0)
    with pytest.raises(smfsym.BlowUpError):
        smfsym.simulate_sgd(p, [3.0], 8, 0.5, n_paths=50, seed=0, options=AAS)
    with pytest.warns(RuntimeWarning, match="non-finite state at step"):
        _, st = ns["simulate_sgd"]([3.0], 8, 50, 0, on_nonfinite="mask")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = smfsym.simulate_sgd(p, [3.0], 8, 0.5, n_paths=50, seed=0,
                                  options=RunOptions(backend="array_api_strict", on_nonfinite="mask"))
    assert np.isnan(st).any() and np.array_equal(st, ref.states, equal_nan=True)
    # a path that stays finite but passes the threshold is lost as well
    with pytest.raises(FloatingPointError, match=r"\|state\| > 10"):
        ns["simulate_sgd"]([3.0], 8, 50, 0, blowup_threshold=10.0)


def test_what_the_device_path_refuses_is_refused_naming_it():
    p = regression_problem()
    with pytest.raises(ValueError, match=r"`backend='cupy'`: .*quadrature"):
        smfsym.codegen(smfsym.sme(smfsym.Problem(sp.log(1 + sp.exp(-smfsym.normal("a") * x)), [x])), eta=0.1,
                       backend="cupy")
    with pytest.raises(ValueError, match=r"`backend='array_api_strict'` has no device sampler for the Gamma law of k"):
        smfsym.codegen(smfsym.Problem((x - smfsym.gamma("k", 2)) ** 2 / 2, [x]), eta=0.1,
                       backend="array_api_strict")
    with pytest.raises(ValueError, match=r"`backend` must be one of \['numpy', 'cupy', 'array_api_strict'\]; "
                                         r"got 'torch'"):
        smfsym.codegen(p, eta=0.1, backend="torch")


def test_numpy_stays_the_default_and_its_source_is_unchanged():
    flow = smfsym.smf(regression_problem(), order=2)
    src = smfsym.codegen(flow, eta=0.1)
    assert smfsym.codegen(flow, eta=0.1, backend="numpy") == src
    assert "array_api_strict" not in src and "cupy" not in src


def _imports(src: str) -> set:
    out = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            out.add((node.module or "").split(".")[0])
    return out


def test_the_modules_import_only_their_library_and_numpy():
    flow = smfsym.smf(_data_problem(7), order=1)
    assert _imports(smfsym.codegen(flow, eta=0.1, backend="array_api_strict")) == {
        "math", "numbers", "sys", "warnings", "numpy", "array_api_strict"}
    cupy_src = smfsym.codegen(flow, eta=0.1, backend="cupy")  # written without CuPy installed
    # (cupyx ships with CuPy: its special functions are erf and erfc on the device, imported if present)
    assert _imports(cupy_src) == {"math", "numbers", "sys", "warnings", "numpy", "cupy", "cupyx"}
    assert "RandomState(seed, method=161)" in cupy_src  # CURAND_RNG_PSEUDO_PHILOX4_32_10


def test_generated_module_runs_in_a_subprocess_without_smfsym(tmp_path):
    p = _data_problem(1500, seed=1)
    law = p.laws[0]
    sde = build_model(p, "smf1")
    smfsym.codegen(sde, eta=0.1, path=tmp_path / "sim.py", backend="array_api_strict")
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
        assert not any(m == "smfsym" or m.startswith("smfsym.") for m in sys.modules if sys.modules[m] is not None)
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([sys.executable, "-c", script], check=True, cwd=tmp_path, env=env)
    ref = smfsym.simulate(sde, [0.5], 0.2, eta=0.1, n_paths=100, seed=8, options=AAS)
    assert np.array_equal(np.load(tmp_path / "sde.npy"), ref.states)
    ref = smfsym.simulate_sgd(p, [0.5], 2, 0.1, n_paths=100, seed=8, options=AAS)
    assert np.array_equal(np.load(tmp_path / "sgd.npy"), ref.states)


def test_cli_codegen_takes_a_backend(tmp_path, capsys):
    from smfsym.cli import main

    out = tmp_path / "sim.py"
    assert main(["codegen", "rademacher", "--eta", "0.1", "--backend", "array_api_strict", "-o", str(out)]) == 0
    assert "on array_api_strict" in capsys.readouterr().out
    src = out.read_text()
    assert "import array_api_strict as xp" in src and "smfsym" not in _imports(src)
    ns = {}
    exec(compile(src, str(out), "exec"), ns)
    t, st = ns["simulate"]([0.5], 0.1, 20, 1)
    assert st.shape[:2] == (1, 20) and np.all(np.isfinite(st))


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
def test_the_cupy_module_mirrors_smfsyms_cupy_path(fake_cupy):
    p = _data_problem(7)
    cupy = RunOptions(backend="cupy")
    for sde in (build_model(p, "smf1"), build_model(p, "sme1")):
        ns = {}
        exec(compile(smfsym.codegen(sde, eta=0.1, backend="cupy"), "generated_cupy.py", "exec"), ns)
        t, st = ns["simulate"]([0.5], 0.2, 300, 4, save_at=[0.1, 0.2])
        ref = smfsym.simulate(sde, [0.5], 0.2, eta=0.1, n_paths=300, seed=4, save_at=[0.1, 0.2], options=cupy)
        assert np.all(np.isfinite(st)) and np.array_equal(st, ref.states)
    for inc in ("gaussian", "discrete"):  # the matrix noise of sme1: weak2, and cuRAND's integers
        st = ns["simulate"]([0.5], 0.2, 300, 4, scheme="weak2", increments=inc)[1]
        ref = smfsym.simulate(sde, [0.5], 0.2, eta=0.1, n_paths=300, seed=4, scheme="weak2", increments=inc,
                              options=cupy)
        assert np.all(np.isfinite(st)) and np.array_equal(st, ref.states)
    t, st = ns["simulate_sgd"]([0.5], 3, 300, 4)
    ref = smfsym.simulate_sgd(p, [0.5], 3, 0.1, n_paths=300, seed=4, options=cupy)
    assert np.array_equal(st, ref.states)
    # and the streams are not array_api_strict's (seeded from the block's SeedSequence state, not the sequence)
    _, aas = _module(p)
    assert not np.array_equal(aas["simulate_sgd"]([0.5], 3, 300, 4)[1], st)


def test_hostile_symbol_names_cannot_inject_code(tmp_path):
    marker = tmp_path / "pwned"
    xe = sp.Symbol(f'x"""\nimport os; os.system("touch {marker}") #')
    # a data law's name must be an identifier (audit 3, 12): the hostile one is refused where it is made
    with pytest.raises(ValueError, match="`name` must be a Python identifier"):
        smfsym.normal(f'a\nimport os; os.system("touch {marker}")')
    ae = smfsym.normal("a_e")
    Z, = smfsym.empirical(np.linspace(-1, 1, 5)[:, None], "z")
    src, ns = _module(build_model(smfsym.Problem((xe - Z) ** 2 / 2 + xe**4 / 4, [xe]), "smf1"))
    src2, ns2 = _module(smfsym.Problem((xe - ae) ** 2 / 2, [xe]))
    assert "touch" in src and "touch" in src2  # the names are printed (in docstrings), defused
    ns["simulate"]([1.0], 0.05, 4, 0)
    ns2["simulate_sgd"]([1.0], 1, 4, 0)
    assert not marker.exists()


def test_a_piecewise_loss_prints_select_and_is_smfsyms_numbers_bitwise():
    """A Huber loss: its gradient is a Piecewise, which sympy prints with numpy's select and logical_and;
    the module carries smfsym's where-only versions of them (smfsym/backends.py) and so its numbers."""
    xr = sp.Symbol("x", real=True)
    a = smfsym.rademacher("a")
    r = xr - a
    with pytest.warns(smfsym.NonDifferentiableWarning):
        p = smfsym.Problem(sp.Piecewise((r**2 / 2, sp.Abs(r) < 1), (sp.Abs(r) - sp.Rational(1, 2), True)), [xr])
    flow = smfsym.smf(p, order=1)
    src, ns = _module(flow)
    assert "select(" in src
    with pytest.raises(ValueError, match=r"`scheme='weak2'`: .*not differentiable here"):  # smfsym's reason
        ns["simulate"]([0.3], 0.1, 10, 0, scheme="weak2")
    _same_sde(flow, ns, [0.3], n_paths=5000)
    _same_sgd(p, ns, [0.3], n_paths=5000)


def test_the_smes_numeric_root_is_smfsyms_numbers_bitwise(regression):
    """The SME's noise sqrt(eta) Sigma(x)^(1/2): a batched eigh per path on the device, as DeviceSDE.root."""
    p = regression[0]
    sme = smfsym.sme(p, order=1)
    src, ns = _module(sme)
    assert sme.noise_kind == "sqrt" and "xp.linalg.eigh(" in src
    _same_sde(sme, ns, X0, n_paths=300)
    _same_sde(sme, ns, [X0, [0.0, 1.0, 2.0]], n_paths=40)


def _sqrt_sde(entry):
    from smfsym.symbolic.sde import MatrixSqrt

    return smfsym.SDE([-x], MatrixSqrt(sp.Matrix([[entry]]), sp.Integer(1)), [x])


def test_the_numeric_root_refuses_and_reports_as_smfsym_does():
    # a clearly negative eigenvalue of Sigma: FloatingPointError naming it, on both
    sde = _sqrt_sde(x)
    _, ns = _module(sde)
    with pytest.raises(FloatingPointError, match=r"clearly negative eigenvalues \(min -1\).*'array_api_strict'"):
        ns["simulate"]([-1.0], 0.1, 20, 0)
    with pytest.raises(FloatingPointError, match="clearly negative eigenvalues"):
        smfsym.simulate(sde, [-1.0], 0.1, eta=0.1, n_paths=20, seed=0, options=AAS)
    # a non-finite Sigma (log of a negative state): NaN noise, reported as lost paths, the same ones
    sde = _sqrt_sde(1 + sp.log(1 + x))
    _, ns = _module(sde)
    with pytest.raises(FloatingPointError, match=r"non-finite state at step 1 "):
        ns["simulate"]([-2.0], 0.1, 20, 0)
    with pytest.warns(RuntimeWarning, match="non-finite state at step 1"):
        _, st = ns["simulate"]([-2.0], 0.1, 20, 0, on_nonfinite="mask")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = smfsym.simulate(sde, [-2.0], 0.1, eta=0.1, n_paths=20, seed=0,
                              options=RunOptions(backend="array_api_strict", on_nonfinite="mask"))
    assert np.isnan(st).all() and np.array_equal(st, ref.states, equal_nan=True)


def _same_scheme(sde, ns, x0, scheme, increments, n_paths=300, seed=4, t_end=0.2):
    t, st = ns["simulate"](x0, t_end, n_paths, seed, save_at=[t_end / 2, t_end], scheme=scheme, increments=increments)
    ref = smfsym.simulate(sde, x0, t_end, eta=0.1, n_paths=n_paths, seed=seed, save_at=[t_end / 2, t_end],
                          scheme=scheme, increments=increments, options=AAS)
    assert np.all(np.isfinite(st)) and np.array_equal(t, ref.t)
    assert np.array_equal(st, ref.states)
    return st


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
@pytest.mark.parametrize("increments", ["gaussian", "discrete"])
def test_weak2_and_discrete_increments_are_smfsyms_numbers_bitwise(regression, increments):
    p, (src, ns) = regression
    flow = smfsym.smf(p, order=1)
    assert "def weak2_step(" in src and "NO_WEAK2 = ''" in src
    st = _same_scheme(flow, ns, X0, "weak2", increments, n_paths=5000)  # two seed blocks
    assert not np.array_equal(st, _same_scheme(flow, ns, X0, "euler", increments, n_paths=5000))
    _same_scheme(flow, ns, [X0, [0.0, 1.0, 2.0]], "weak2", increments, n_paths=40)
    whole = ns["simulate"](X0, 0.2, 5000, 4, scheme="weak2", increments=increments)[1]
    assert np.array_equal(ns["simulate"](X0, 0.2, 5000, 4, scheme="weak2", increments=increments,
                                         chunk_paths=100)[1], whole)


@pytest.mark.slow  # 1.5 s: compiles second derivatives of data means
def test_weak2_with_second_derivatives_data_means_and_without_noise_bitwise():
    p = _data_problem(7)  # a logistic term: the drift and noise have second derivatives; data means on the device
    sme = build_model(p, "sme1")
    src, ns = _module(sme)
    assert sme.noise_kind == "matrix" and "_ZERO2 = []" in src
    for inc in ("gaussian", "discrete"):
        _same_scheme(sme, ns, [0.5], "weak2", inc)
    gf = build_model(p, "gf")
    src, ns = _module(gf)
    assert "M = 0" in src
    _same_scheme(gf, ns, [0.5], "weak2", "gaussian", n_paths=20)


def test_weak2_is_refused_where_the_module_has_none_naming_why(regression):
    _, ns = _module(smfsym.sme(regression[0], order=1))  # the numeric root: smfsym refuses weak2 too
    with pytest.raises(ValueError, match=r"`scheme='weak2'`: .*explicit"):
        ns["simulate"](X0, 0.1, 10, 0, scheme="weak2")
    _, ns = _module(build_model(_data_problem(7), "smf1"))
    with pytest.raises(ValueError, match=r"`scheme` must be one of \['euler', 'weak2'\]; got 'tamed'"):
        ns["simulate"]([0.5], 0.1, 10, 0, scheme="tamed")
    with pytest.raises(ValueError, match=r"`increments` must be 'gaussian' or 'discrete'; got 'sobol'"):
        ns["simulate"]([0.5], 0.1, 10, 0, increments="sobol")


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
@pytest.mark.parametrize("model", ["smf1", "smf2"])
def test_weak2_on_data_set_noise_is_smfsyms_numbers_bitwise(model):
    """DeviceSDE.weak2_template: the noise actions and their derivatives as data-set sums in row chunks."""
    p = _data_problem(7)
    sde = build_model(p, model)
    src, ns = _module(sde)
    assert sde.noise_kind == "template" and "def _action(" in src and "NO_WEAK2 = ''" in src
    for inc in ("gaussian", "discrete"):
        _same_scheme(sde, ns, [0.5], "weak2", inc, n_paths=60)
        _same_scheme(sde, ns, [[0.5], [-1.0]], "weak2", inc, n_paths=30)


def test_weak2_on_a_large_data_set_bound_with_set_data_sums_row_chunks_bitwise():
    p = _data_problem(1500)  # 1500 rows: two chunks of ROWS = 1024
    sde = build_model(p, "smf1")
    _, ns = _module(sde, _data0=p.laws[0].data, _weights0=p.laws[0].weights)
    _same_scheme(sde, ns, [0.5], "weak2", "discrete", n_paths=40, t_end=0.1)


def test_set_data_again_drops_the_device_copies_of_the_old_data():
    p = _data_problem(1500)
    law = p.laws[0]
    sde = build_model(p, "smf1")
    _, ns = _module(sde)
    ns["set_data"](_data0=law.data, _weights0=law.weights)
    _, first = ns["simulate"]([0.5], 0.1, 60, 5)
    other = {"_data0": law.data[::-1] * 1.5, "_weights0": law.weights[::-1]}
    ns["set_data"](**other)  # a stale device copy of the old rows would give `first` again
    _, again = ns["simulate"]([0.5], 0.1, 60, 5)
    _, fresh = _module(sde, **other)
    assert not np.array_equal(again, first)
    assert np.array_equal(again, fresh["simulate"]([0.5], 0.1, 60, 5)[1])
