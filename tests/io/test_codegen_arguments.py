"""Arguments of generated simulators (numpy and array back-end modules) are checked as smfsym checks them.

A generated module copies smfsym's own checks (smfsym/io/codegen_checks.py): before any work, a bad
argument is refused naming it; a save point the run never reaches is refused (it used to come back
as uninitialised memory); a negative or zero step is refused (it used to return x0 as the state at
t_end); a run whose saved states would not fit is refused with its size, before allocating.
"""
import numpy as np
import pytest
import sympy as sp

import smfsym

x = sp.Symbol("x")
@pytest.fixture(scope="module", params=["numpy", "array_api_strict"])
def module(request):
    if request.param == "array_api_strict":
        pytest.importorskip("array_api_strict")
    problem = smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x])
    src = smfsym.codegen(smfsym.smf(problem, order=1), eta=0.1, problem=problem, backend=request.param)
    ns = {}
    exec(compile(src, "generated.py", "exec"), ns)  # our own generated module
    return ns


def test_valid_calls_run(module):
    t, st = module["simulate"]([1.0], 0.2, 50, 0, save_at=[0.1, 0.2])
    assert st.shape == (2, 50, 1) and np.all(np.isfinite(st)) and np.allclose(t, [0.1, 0.2])
    t, st = module["simulate_sgd"]([1.0], 3, 50, 0, save_at=[0, 3])
    assert st.shape == (2, 50, 1) and np.all(st[0] == 1.0) and not np.all(st[1] == 1.0)


@pytest.mark.parametrize("save_at, what", [
    ([5], r"`save_at` steps must lie in \[0, n_steps = 3\]; got \[5.0\]"),
    ([-1, 3], r"`save_at` steps must lie in \[0, n_steps = 3\]; got \[-1.0\]"),
    ([1.5], "`save_at` must hold integer step indices"),
    ([3, 1], "`save_at` must be strictly increasing"),
    ([float("nan")], "`save_at` must be finite"),
    ("3", "`save_at` must be a sequence of numbers"),
    ([True], "`save_at` must be a sequence of numbers"),
])
def test_sgd_refuses_save_points_it_never_reaches(module, save_at, what):
    with pytest.raises((ValueError, TypeError), match=what):
        module["simulate_sgd"]([1.0], 3, 10, 1, save_at=save_at)


@pytest.mark.parametrize("kwargs, what", [
    ({"dt": -0.01}, "`dt` must be positive and finite; got -0.01"),
    ({"dt": 0.0}, "`dt` must be positive and finite"),
    ({"dt": float("nan")}, "`dt` must be positive and finite"),
    ({"dt": "0.1"}, "`dt` must be a positive number"),
    ({"t_end": 0.0}, "`t_end` must be positive and finite"),
    ({"t_end": -1.0}, "`t_end` must be positive and finite"),
    ({"t_end": float("inf")}, "`t_end` must be positive and finite"),
    ({"save_at": [float("nan")]}, "`save_at` must be finite"),
    ({"save_at": [0.5]}, r"`save_at` times must lie in \[0, t_end = 0.2\]"),
    ({"save_at": [0.2, 0.1]}, "`save_at` must be strictly increasing"),
    ({"dt": 1e-12}, "steps, over the bound of"),
])
def test_simulate_refuses_bad_times(module, kwargs, what):
    args = {"t_end": 0.2, "dt": 0.01} | kwargs
    with pytest.raises((ValueError, TypeError), match=what):
        module["simulate"]([1.0], args.pop("t_end"), 10, 1, **args)


@pytest.mark.parametrize("n_paths, error", [(0, ValueError), (-5, ValueError), (2.5, TypeError), ("100", TypeError),
                                            (None, TypeError), (True, TypeError)])
@pytest.mark.parametrize("entry", ["simulate", "simulate_sgd"])
def test_n_paths_is_a_positive_integer(module, entry, n_paths, error):
    with pytest.raises(error, match="`n_paths` must be an integer"):
        module[entry]([1.0], 1, n_paths, 1)


@pytest.mark.parametrize("entry", ["simulate", "simulate_sgd"])
def test_a_run_that_does_not_fit_is_refused_before_it_starts(module, entry):
    with pytest.raises(ValueError, match=r"saved states would take 7.45e\+09 GiB .* `n_paths` = 1000000000000000000"):
        module[entry]([1.0], 1, 10**18, 1)


@pytest.mark.parametrize("kwargs, error, what", [
    ({"seed": -1}, ValueError, "`seed` must be a non-negative integer"),
    ({"seed": "a"}, TypeError, "`seed` must be an int"),
    ({"seed": 1.5}, TypeError, "`seed` must be an int"),
    ({"blowup_threshold": float("nan")}, ValueError, "`blowup_threshold` must be positive and finite"),
    ({"blowup_threshold": -1.0}, ValueError, "`blowup_threshold` must be positive and finite"),
    ({"on_nonfinite": "ignore"}, ValueError, "`on_nonfinite` must be 'raise' or 'mask'"),
    ({"x0": [1.0, 2.0]}, ValueError, r"`x0` must have shape \(1,\) or \(n, 1\) \(n starting points\); got \(2,\)"),
    ({"x0": [float("nan")]}, ValueError, "`x0` must be finite"),
    ({"x0": "1"}, TypeError, "`x0` must be numeric"),
    ({"x0": None}, TypeError, "`x0` must be numeric"),
    ({"x0": [True]}, TypeError, "`x0` must be numeric"),
    ({"x0": [None]}, TypeError, "`x0` must be numeric"),
])
@pytest.mark.parametrize("entry", ["simulate", "simulate_sgd"])
def test_every_other_argument_is_checked(module, entry, kwargs, error, what):
    args = {"x0": [1.0], "seed": 1} | kwargs
    with pytest.raises(error, match=what):
        module[entry](args.pop("x0"), 1, 10, args.pop("seed"), **args)


def test_sgd_eta_is_checked(module):
    with pytest.raises(ValueError, match="`eta` must be positive and finite; got -0.1"):
        module["simulate_sgd"]([1.0], 3, 10, 1, eta=-0.1)


def test_device_chunk_paths_is_checked():
    pytest.importorskip("array_api_strict")
    problem = smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x])
    ns = {}
    exec(compile(smfsym.codegen(problem, eta=0.1, backend="array_api_strict"), "generated.py", "exec"), ns)
    for bad, error in [(0, ValueError), (2.5, TypeError), ("8", TypeError)]:
        with pytest.raises(error, match="`chunk_paths` must be an integer"):
            ns["simulate_sgd"]([1.0], 3, 10, 1, chunk_paths=bad)


def test_arguments_are_not_mutated(module):
    x0 = np.array([[1.0], [-1.0]])
    save_at = np.array([0.1, 0.2])
    steps = np.array([1, 2])
    for a in (x0, save_at, steps):
        a.setflags(write=False)  # a write would raise
    module["simulate"](x0, 0.2, 20, 0, save_at=save_at)
    module["simulate_sgd"](x0, 2, 20, 0, save_at=steps)
    assert x0.tolist() == [[1.0], [-1.0]] and save_at.tolist() == [0.1, 0.2] and steps.tolist() == [1, 2]


@pytest.mark.parametrize("names", [("arg1", "numpy"), ("numpy", "arg0"), ("np", "arg0", "arg0_")])
def test_renamed_parameters_never_collide_with_given_names(names):
    """Audit 9, finding 3: `numpy` renamed to arg1 beside a parameter called arg1 gave `def _drift(arg1, arg1)`,
    a module that did not compile. The module must compile and give smfsym's numbers (1e-12, docs/theory.md)."""
    params = sp.symbols(names)
    xi = smfsym.normal("xi")
    loss = sum((p - (k + 1) * xi) ** 2 / 2 for k, p in enumerate(params)) + params[0] * params[-1] / 4
    problem = smfsym.Problem(loss, list(params))
    flow = smfsym.smf(problem, order=2)
    src = smfsym.codegen(flow, eta=0.1, problem=problem)
    ns = {}
    exec(compile(src, "generated.py", "exec"), ns)  # our own generated module
    x0 = [0.5] * len(params)
    _, generated = ns["simulate"](x0, 0.2, 20, 3)
    ours = smfsym.simulate(flow, x0, 0.2, eta=0.1, n_paths=20, seed=3).states[-1]
    np.testing.assert_allclose(generated[-1], ours, rtol=1e-12, atol=1e-14)


def test_names_equal_after_nfkc_get_distinct_arguments():
    """Audit 12: parameters x and the fullwidth x (one identifier to Python, which compares names after NFKC)
    gave `def drift(x, x)`, a module that did not compile."""
    import sympy as sp

    import smfsym

    x, wide = sp.Symbol("x"), sp.Symbol("\uff58")
    p = smfsym.Problem((x - wide - smfsym.normal("z")) ** 2 / 2, [x, wide])
    ns: dict = {}
    exec(compile(smfsym.codegen(smfsym.smf(p, order=1), eta=0.1), "generated", "exec"), ns)
    t, X = ns["simulate"]([1.0, 2.0], 0.2, 5, 0)
    assert X.shape == (1, 5, 2)
