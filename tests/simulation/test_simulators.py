"""Simulators: SGD moments, n-point motions, determinism, codegen, shapes, failures."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import sympy as sp

import smfsym

x, y = sp.symbols("x y")


def gaussian_quadratic(s=0.7):
    xi = smfsym.normal("xi", std=s)
    return smfsym.Problem((x - xi) ** 2 / 2, [x])


def rademacher_problem():
    r = smfsym.rademacher("r")
    return smfsym.Problem((1 + r) * x**2 / 2, [x])


def test_sgd_moments_match_math_section_3():
    s, eta, x0, K = 0.7, 0.1, 1.5, 15
    p = gaussian_quadratic(s)
    n = 200_000
    res = smfsym.simulate_sgd(p, [x0], K, eta, n_paths=n, seed=3, save_at=[5, K])
    for j, k in enumerate([5, K]):
        X = res.states[j, :, 0]
        mean = (1 - eta) ** k * x0
        var = eta * s**2 * (1 - (1 - eta) ** (2 * k)) / (2 - eta)
        # x_k is Gaussian: SE of the mean sqrt(var/n), of the sample variance var sqrt(2/(n-1))
        assert abs(X.mean() - mean) < 5 * np.sqrt(var / n)
        assert abs(X.var(ddof=1) - var) < 5 * var * np.sqrt(2 / (n - 1))
    assert np.allclose(res.t, [0.5, 1.5])


def test_sgd_n_point_rademacher_keeps_ratio():
    res = smfsym.simulate_sgd(rademacher_problem(), [[-1.0], [2.0], [0.5]], 10, 0.1, n_paths=500, seed=1)
    X = res.states[0, :, :, 0]  # (paths, points)
    ratio = X / np.array([-1.0, 2.0, 0.5])
    assert np.allclose(ratio, ratio[:, :1], rtol=0, atol=1e-14)
    assert ratio.std() > 0.01  # the paths are random


def test_smf_n_point_is_odd_but_shared_sme_is_not():
    p = rademacher_problem()
    starts = [[-1.0], [1.0]]
    flow = smfsym.smf(p)
    r = smfsym.simulate(flow, starts, 1.0, eta=0.1, n_paths=2000, seed=2, scheme="weak2")
    X = r.states[0, :, :, 0]
    assert np.max(np.abs(X[:, 0] + X[:, 1])) < 1e-12
    sme = smfsym.sme(p)
    r2 = smfsym.simulate(sme, starts, 1.0, eta=0.1, n_paths=2000, seed=2)
    X2 = r2.states[0, :, :, 0]
    # shared noise with coefficient |x|: both points receive the same kick, so X(-1) + X(1) != 0
    assert np.mean(np.abs(X2[:, 0] + X2[:, 1])) > 0.05


def test_same_seed_same_numbers_whatever_the_chunk_size():
    p = rademacher_problem()
    flow = smfsym.smf(p)
    from smfsym.engine import BLOCK

    n = 3 * BLOCK + 100  # four random-stream blocks
    kw = dict(eta=0.1, n_paths=n, seed=np.random.SeedSequence(42), save_at=[0.5, 1.0])
    a = smfsym.simulate(flow, [1.0], 1.0, chunk_size=1, **kw)
    b = smfsym.simulate(flow, [1.0], 1.0, chunk_size=10 * n, **kw)
    c = smfsym.simulate(flow, [1.0], 1.0, chunk_size=2 * BLOCK + 1, **kw)

    assert np.array_equal(a.states, b.states) and np.array_equal(a.states, c.states)
    s1 = smfsym.simulate_sgd(p, [1.0], 10, 0.1, n_paths=n, seed=5, chunk_size=BLOCK)
    s2 = smfsym.simulate_sgd(p, [1.0], 10, 0.1, n_paths=n, seed=5, chunk_size=10 * n)
    assert np.array_equal(s1.states, s2.states)
    d = smfsym.simulate(flow, [1.0], 1.0, eta=0.1, n_paths=300, seed=43)
    assert not np.array_equal(a.states[-1, :300], d.states[-1])


def test_streamed_statistics_equal_stored_ones():
    flow = smfsym.smf(gaussian_quadratic())
    res = smfsym.simulate(flow, [1.0], 1.0, eta=0.1, n_paths=3000, seed=0, chunk_size=512,
                          functions={"sq": lambda X: X[..., 0] ** 2})
    X = res.states[-1, :, 0]
    assert res.mean("sq")[-1] == pytest.approx(np.mean(X**2), rel=1e-12)
    assert res.mean()[-1, 0] == pytest.approx(X.mean(), rel=1e-12)
    assert res.sem()[-1, 0] == pytest.approx(X.std(ddof=1) / np.sqrt(X.size), rel=1e-9)
    streamed = smfsym.simulate(flow, [1.0], 1.0, eta=0.1, n_paths=3000, seed=0, store=False,
                               functions={"sq": lambda X: X[..., 0] ** 2})
    assert streamed.states is None and streamed.mean("sq")[-1] == pytest.approx(np.mean(X**2), rel=1e-12)


def test_generated_code_runs_without_smfsym(tmp_path):
    xs = sp.symbols("x0:2")
    a = smfsym.normal("a", 2)
    eps = smfsym.normal("eps", std=sp.Rational(1, 2))
    p = smfsym.Problem((a[0] * xs[0] + a[1] * xs[1] - eps) ** 2 / 2, xs)
    flow = smfsym.smf(p, order=2)
    path = tmp_path / "sim.py"
    smfsym.codegen(flow, eta=0.05, path=path)
    ref = smfsym.simulate(flow, [1.0, -2.0], 0.5, eta=0.05, n_paths=700, seed=9, save_at=[0.25, 0.5])
    ref_sgd = smfsym.simulate_sgd(p, [[1.0, -2.0], [0.0, 1.0]], 8, 0.05, n_paths=700, seed=9, save_at=[4, 8])
    script = textwrap.dedent(f"""
        import sys
        sys.modules["smfsym"] = None  # smfsym must not be importable here
        import numpy as np
        sys.path.insert(0, {str(tmp_path)!r})
        import sim
        t, st = sim.simulate([1.0, -2.0], 0.5, 700, 9, save_at=[0.25, 0.5])
        t2, st2 = sim.simulate_sgd([[1.0, -2.0], [0.0, 1.0]], 8, 700, 9, save_at=[4, 8])
        np.save({str(tmp_path / 'sde.npy')!r}, st)
        np.save({str(tmp_path / 'sgd.npy')!r}, st2)
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([sys.executable, "-c", script], check=True, cwd=tmp_path, env=env)
    # identical up to rounding of reordered constant factors
    assert np.allclose(np.load(tmp_path / "sde.npy"), ref.states, rtol=1e-12, atol=1e-12)
    assert np.allclose(np.load(tmp_path / "sgd.npy"), ref_sgd.states, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("d", [1, 20])
def test_shapes_for_d_1_and_20(d):
    xs = sp.symbols(f"x0:{d}")
    a = smfsym.normal("a", d)
    p = smfsym.Problem((sum(ai * xi for ai, xi in zip(a, xs)) - 1) ** 2 / 2, xs)
    flow = smfsym.smf(p, order=1)
    r = smfsym.simulate(flow, np.ones(d), 0.2, eta=0.1, n_paths=300, seed=0, save_at=[0.1, 0.2])
    assert r.states.shape == (2, 300, d)
    r2 = smfsym.simulate(flow, np.ones((3, d)), 0.2, eta=0.1, n_paths=300, seed=0)
    assert r2.states.shape == (1, 300, 3, d)
    s = smfsym.simulate_sgd(p, np.ones(d), 3, 0.1, n_paths=300, seed=0)
    assert s.states.shape == (1, 300, d)


def test_constant_drift_and_state_independent_diffusion():
    xs = sp.symbols("x0:2")
    sde = smfsym.SDE([1, 0], [[2, 0], [0, 0]], state=xs)
    r = smfsym.simulate(sde, [0.0, 0.0], 1.0, dt=0.1, n_paths=20_000, seed=1, scheme="weak2")
    X = r.states[0]
    assert np.all(X[:, 1] == 0.0)
    n = X.shape[0]
    assert abs(X[:, 0].mean() - 1.0) < 5 * 2 / np.sqrt(n)  # 5 SE; Var X_1 = 4
    assert abs(X[:, 0].var() - 4.0) < 5 * 4 * np.sqrt(2 / n)
    ode = smfsym.gradient_flow(gaussian_quadratic(), order=1)
    r3 = smfsym.simulate(ode, [1.0], 1.0, dt=0.01, n_paths=3, seed=0, scheme="weak2")
    # the order-2 Taylor step of x' = -x is x (1 - h + h^2/2), exactly
    assert np.allclose(r3.states[0, :, 0], (1 - 0.01 + 0.01**2 / 2) ** 100, rtol=1e-12)


def test_bad_arguments_are_named():
    flow = smfsym.smf(gaussian_quadratic())
    with pytest.raises(ValueError, match=r"`x0` must have shape \(1,\) or \(n, 1\)"):
        smfsym.simulate(flow, [[[1.0]]], 1.0, eta=0.1)
    with pytest.raises(ValueError, match="`eta` must be positive"):
        smfsym.simulate(flow, [1.0], 1.0, eta=-0.1)
    with pytest.raises(ValueError, match="`dt` must be positive"):
        smfsym.simulate(flow, [1.0], 1.0, eta=0.1, dt=-1.0)
    with pytest.raises(ValueError, match=r"`save_at` times must lie in \[0, t_end = 1.0\]; got \[1.5\]"):
        smfsym.simulate(flow, [1.0], 1.0, eta=0.1, save_at=[0.5, 1.5])
    with pytest.raises(ValueError, match="`eta` must be given"):
        smfsym.simulate(flow, [1.0], 1.0, dt=0.1)
    with pytest.raises(ValueError, match="`save_at` steps must lie in"):
        smfsym.simulate_sgd(gaussian_quadratic(), [1.0], 10, 0.1, save_at=[11])
    with pytest.raises(MemoryError, match="pass store=False"):
        smfsym.simulate(flow, [1.0], 1.0, eta=0.1, n_paths=10**9)
    with pytest.raises(ValueError, match="`values` must give numbers for"):
        s = sp.Symbol("s", positive=True)
        p = smfsym.Problem((x - smfsym.normal("xi", std=s)) ** 2 / 2, [x])
        smfsym.simulate(smfsym.smf(p), [1.0], 1.0, eta=0.1, n_paths=10)


def test_blow_up_is_reported_with_step_time_and_fraction():
    sde = smfsym.SDE([x**3], [[x]], state=[x])
    with pytest.raises(smfsym.BlowUpError, match=r"non-finite state at step \d+ \(t = [\d.e-]+\) in [\d.]+% of the paths"):
        smfsym.simulate(sde, [1.5], 5.0, dt=0.1, n_paths=400, seed=0)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # reported by smfsym, not by numpy warnings
        r = smfsym.simulate(sde, [0.2], 5.0, dt=0.1, n_paths=400, seed=0,
                            options=smfsym.RunOptions(on_nonfinite="mask"))
    assert not r.success and "were masked" in r.message and 0 < r.n_nonfinite < 400
    assert np.isnan(r.states).any() and np.isfinite(r.mean()).all()


def test_progress_bar_when_asked(capsys):
    flow = smfsym.smf(gaussian_quadratic())
    smfsym.simulate(flow, [1.0], 0.5, eta=0.1, n_paths=100, seed=0, progress=True)
    assert "euler" in capsys.readouterr().err  # the bar (tqdm writes to stderr)
    smfsym.simulate(flow, [1.0], 0.5, eta=0.1, n_paths=100, seed=0)
    assert capsys.readouterr().err == ""  # silent when not interactive


def test_minibatch_sgd_variance_scales_with_batch_size():
    s, eta, x0, K, B = 0.7, 0.1, 1.5, 15, 4
    xi = smfsym.normal("xi", std=s)
    p = smfsym.Problem((x - xi) ** 2 / 2, [x], batch_size=B)
    assert sp.simplify(p.sigma[0, 0] - sp.Rational(49, 100) / B) == 0
    n = 200_000
    X = smfsym.simulate_sgd(p, [x0], K, eta, n_paths=n, seed=4).states[-1, :, 0]
    var = eta * s**2 / B * (1 - (1 - eta) ** (2 * K)) / (2 - eta)  # docs/theory.md §3 with Sigma / B
    assert abs(X.mean() - (1 - eta) ** K * x0) < 5 * np.sqrt(var / n)
    assert abs(X.var(ddof=1) - var) < 5 * var * np.sqrt(2 / (n - 1))  # 5 SE of a Gaussian sample variance


def test_without_replacement_batches():
    data = np.array([[0.0], [1.0], [3.0], [4.0]])
    (z,) = smfsym.empirical(data, ["z"])
    eta, K = 0.1, 5
    full = smfsym.Problem((x - z) ** 2 / 2, [x], batch_size=4, sampling="without_replacement")
    X = smfsym.simulate_sgd(full, [5.0], K, eta, n_paths=50, seed=0).states[-1, :, 0]
    # a batch of all M points is full-batch gradient descent: x <- x - eta (x - mean)
    gd = 2.0 + (5.0 - 2.0) * (1 - eta) ** K
    assert np.allclose(X, gd, rtol=0, atol=1e-12)
    half = smfsym.Problem((x - z) ** 2 / 2, [x], batch_size=2, sampling="without_replacement")
    n = 100_000
    X1 = smfsym.simulate_sgd(half, [5.0], 1, eta, n_paths=n, seed=1).states[-1, :, 0]
    # one step: Var = eta^2 Var(batch mean) = eta^2 * Sigma (M - B) / (B (M - 1))
    var = eta**2 * float(half.sigma[0, 0])
    assert abs(X1.mean() - (5.0 - eta * (5.0 - 2.0))) < 5 * np.sqrt(var / n)
    assert abs(X1.var(ddof=1) - var) < 5 * np.sqrt((np.mean((X1 - X1.mean()) ** 4) - var**2) / n)
    # without replacement: the two points of a batch are distinct, so the batch mean is never 0 or 4
    assert not np.any(np.isclose(X1, 5.0 - eta * (5.0 - 0.0))) and not np.any(np.isclose(X1, 5.0 - eta))


def test_symbolic_law_parameters_get_values_at_simulation():
    s = sp.Symbol("s", positive=True)
    p = smfsym.Problem((x - smfsym.normal("xi", std=s)) ** 2 / 2, [x])
    flow = smfsym.smf(p)
    r = smfsym.simulate(flow, [0.0], 2.0, eta=0.1, n_paths=50_000, seed=0, values={s: 2.0}, scheme="weak2")
    X = r.states[-1, :, 0]
    var = 0.1 * 4.0 * (1 - np.exp(-2 * 2.0 * 1.05)) / (2 * 1.05)  # OU variance with drift -(1 + eta/2)
    assert abs(X.var(ddof=1) - var) < 5 * var * np.sqrt(2 / (X.size - 1))
    g = smfsym.simulate_sgd(p, [0.0], 3, 0.1, n_paths=1000, seed=0, values={"s": 2.0})
    assert g.success
