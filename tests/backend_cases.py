"""Shared cases of the array back-end tests (tests/montecarlo/test_backends.py on array_api_strict, CI;
tests/montecarlo/test_backends_gpu.py on CuPy, benchmarks/gpu_check.sh): a d = 3 linear-regression SMF
with state-dependent, non-commuting noise, its SGD, and the z-scores of two runs' streamed statistics."""
import numpy as np
import pytest
import sympy as sp

import smfsym
from smfsym import RunOptions, SaveAt

X0 = [1.0, 0.5, -0.5]
#: agreement bound, in standard errors of the difference of two independent estimates: 5 SE over the
#: 6-24 compared entries of a test puts a false alarm below 1e-5 (two-sided normal tail 5.7e-7 each)
Z_MAX = 5.0


def regression_problem(d: int = 3):
    x = sp.symbols(f"x0:{d}")
    a = smfsym.normal("a", d)
    eps = smfsym.normal("eps", std=sp.Rational(1, 2))
    return smfsym.Problem((sum(ai * xi for ai, xi in zip(a, x)) - eps) ** 2 / 2, x)


def square(X):
    """Streamed statistic X^2 (array operators only: runs on every back end)."""
    return X * X


def run_smf(flow, backend, scheme="euler", increments="gaussian", n_paths=8192, seed=1, chunk_size=None,
            x0=X0, store=False, t_end=0.3):
    return smfsym.simulate(flow, x0=x0, t_end=t_end, eta=0.1, n_paths=n_paths, seed=seed, scheme=scheme,
                           increments=increments, save_at=SaveAt(at=[t_end / 2, t_end], functions={"sq": square},
                                                                 store=store),
                           options=RunOptions(backend=backend, chunk_size=chunk_size))


def run_sgd(problem, backend, n_paths=8192, seed=2, chunk_size=None, batch_size=2):
    return smfsym.simulate_sgd(problem, x0=X0, n_steps=6, eta=0.1, n_paths=n_paths, seed=seed,
                               batch_size=batch_size, save_at=SaveAt(at=[3, 6], functions={"sq": square}, store=False),
                               options=RunOptions(backend=backend, chunk_size=chunk_size))


def assert_weak_error_agrees(backend, n_paths: int) -> None:
    """`weak_error` (smf1, Monte Carlo) on ``backend`` against numpy: every row's value within Z_MAX standard errors
    of the difference, and the back end recorded in the study's meta."""
    x = sp.Symbol("x")
    p = smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x])
    kw = dict(models=["smf1"], n_paths=n_paths, seed=3, numerics=smfsym.Numerics(method="montecarlo"))
    ref = smfsym.weak_error(p, x**2, [1.0], 1.0, [0.2, 0.1], options=RunOptions(progress=False), **kw)
    dev = smfsym.weak_error(p, x**2, [1.0], 1.0, [0.2, 0.1], options=RunOptions(progress=False, backend=backend), **kw)
    assert dev.meta["backend"] == backend
    for r0, r1 in zip(ref.rows, dev.rows):
        assert abs(r0["value"] - r1["value"]) < Z_MAX * np.hypot(r0["value_se"], r1["value_se"]), (r0, r1)


def zscores(a, b, names=("state", "sq")) -> np.ndarray:
    """|difference| / SE of the difference of every streamed mean of two independent runs."""
    out = []
    for name in names:
        ma, mb = a.stats[name]["mean"], b.stats[name]["mean"]
        se = np.hypot(a.stats[name]["sem"], b.stats[name]["sem"])
        out.append(np.abs(ma - mb).ravel() / se.ravel())
    return np.concatenate(out)


@pytest.fixture(scope="module")
def problem():
    """The d = 3 regression of the back-end tests (imported as a fixture by tests/montecarlo/test_backends*.py)."""
    return regression_problem()


@pytest.fixture(scope="module")
def flow(problem):
    """Its SMF of order 2."""
    return smfsym.smf(problem, order=2)
