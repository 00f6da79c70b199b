"""The JAX back end (``backend="jax"``, smfsym.backends.JaxBackend) on the JAX that is installed: its CPU wheel in
CI (the test extra), a CUDA build on a GPU machine (benchmarks/gpu_check.sh runs this file there too). JAX is a
real second array library, not a stand-in: immutable arrays, its own counter-based Threefry streams, each
lambdified expression list compiled by ``jax.jit``. Statistics are compared with numpy's within ``Z_MAX`` = 5
standard errors of the difference (independent streams: the numbers differ between back ends by design); on one
back end a seed gives the same numbers whatever the chunking (compared exactly)."""
import pickle
import warnings

import numpy as np
import pytest
import sympy as sp

import smfsym
from smfsym import RunOptions, SaveAt
from smfsym.backends import Float32Warning, JaxBackend, get_backend

from backend_cases import flow, problem  # noqa: F401 (fixtures)
from backend_cases import Z_MAX, assert_weak_error_agrees, run_sgd, run_smf, square, zscores

jax = pytest.importorskip("jax")


def test_jax_backend_basics():
    b = get_backend("jax")
    assert isinstance(b, JaxBackend) and b.name == "jax" and b.jit
    x = b.asarray([1.0, 2.0])
    assert type(x).__module__.startswith("jax") and x.dtype == np.float64  # 64-bit mode is on
    assert b.to_numpy(x * 2).tolist() == [2.0, 4.0]
    assert b.device == (jax.default_backend() != "cpu")
    if not b.device:
        assert b.free_memory() is None  # the host's memory: chunked as numpy is
    c = pickle.loads(pickle.dumps(RunOptions(backend=b))).backend
    assert isinstance(c, JaxBackend) and c.to_numpy(c.asarray([3.0])).tolist() == [3.0]
    with pytest.raises(TypeError, match="`jit` must be True or False; got 'yes'"):
        JaxBackend(jit="yes")


def test_missing_jax_names_the_extra(monkeypatch):
    import importlib

    real = importlib.import_module

    def fake(name, *args):
        if name.startswith("jax"):
            raise ImportError("No module named 'jax'")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", fake)
    with pytest.raises(ImportError, match=r"backend='jax' needs the 'jax.numpy' package.*smfsym\[jax\]"):
        JaxBackend().xp


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
def test_simulate_on_jax_agrees_with_numpy_and_ignores_chunking(flow):
    n = 2 * 4096 + 100  # three seed blocks: in three chunks, then in one
    a = run_smf(flow, "jax", n_paths=n, chunk_size=4096, store=True)
    b = run_smf(flow, "jax", n_paths=n, chunk_size=3 * 4096, store=True)
    assert b.success and b.extra["backend"] == "jax"
    np.testing.assert_array_equal(a.states, b.states)
    z = zscores(run_smf(flow, "numpy", n_paths=n), b)
    assert z.max() < Z_MAX, z


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
@pytest.mark.parametrize("scheme,increments", [("euler", "discrete"), ("weak2", "gaussian"), ("weak2", "discrete"),
                                               ("tamed", "gaussian")])
def test_every_scheme_on_jax_agrees_with_numpy(flow, scheme, increments):
    dev = run_smf(flow, "jax", scheme, increments, n_paths=50_000)
    z = zscores(run_smf(flow, "numpy", scheme, increments, n_paths=50_000), dev)
    assert dev.success and z.max() < Z_MAX, z


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
def test_sgd_and_the_sme_root_on_jax_agree_with_numpy(problem):
    z = zscores(run_sgd(problem, "numpy", n_paths=50_000), run_sgd(problem, "jax", n_paths=50_000))
    assert z.max() < Z_MAX, z
    sme = smfsym.sme(problem, order=1)  # noise sqrt(eta) Sigma(x)^{1/2}: JAX's batched eigh
    assert sme.noise_kind == "sqrt"
    z = zscores(run_smf(sme, "numpy", n_paths=50_000), run_smf(sme, "jax", n_paths=50_000))
    assert z.max() < Z_MAX, z


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
def test_weak_error_study_and_update_maps_on_jax():
    assert_weak_error_agrees("jax", n_paths=100_000)
    x = sp.Symbol("x")
    rms = smfsym.rmsprop(smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x]), c=sp.Rational(1, 4))
    runs = [smfsym.simulate_update_map(rms, [1.0, 0.5], 8, 0.05, n_paths=50_000, seed=4,
                                       save_at=SaveAt(functions={"sq": square}, store=False),
                                       options=RunOptions(backend=b, progress=False)) for b in ("numpy", "jax")]
    z = zscores(*runs)
    assert z.max() < Z_MAX, z


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
def test_meanfield_ddsmf_on_jax_agrees_with_numpy():
    from smfsym.meanfield import MeanFieldNumerics, MeanFieldOptions

    a, w, out = sp.symbols("a w out")
    z = smfsym.normal("z")
    net = smfsym.MeanFieldProblem(a * sp.tanh(w * z), (a, w), out, (out - sp.tanh(2 * z)) ** 2 / 2)
    th = smfsym.particles(net, 50, seed=0)

    def go(backend):
        return smfsym.simulate_ddsmf(net, th, eta=0.1, t_end=0.5, n_paths=4000, seed=2,
                                     options=MeanFieldOptions(backend=backend, progress=False),
                                     numerics=MeanFieldNumerics(n_points=8))

    dev, ref = go("jax"), go("numpy")
    sd, sr = dev.summary("risk"), ref.summary("risk")
    for stat, se in (("mean", "sem"), ("var", "var_se")):
        assert abs(sd[stat][-1, 0] - sr[stat][-1, 0]) < Z_MAX * np.hypot(sd[se][-1, 0], sr[se][-1, 0]), stat


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
def test_jit_changes_no_statistic_and_float32_warns(flow):
    eager = run_smf(flow, JaxBackend(jit=False), n_paths=4096, store=True)
    jitted = run_smf(flow, JaxBackend(), n_paths=4096, store=True)
    # the same draws; XLA may fuse (and so round) differently from op-by-op dispatch
    np.testing.assert_allclose(eager.states, jitted.states, rtol=1e-12, atol=1e-12)
    with pytest.warns(Float32Warning):
        b32 = JaxBackend(dtype="float32")
    r = run_smf(flow, b32, n_paths=50_000)
    z = zscores(run_smf(flow, "numpy", n_paths=50_000), r)
    assert r.success and z.max() < Z_MAX, z


def test_a_run_refuses_when_64_bit_mode_was_turned_off(flow):
    """Turned off after smfsym turned it on, JAX would run a float64 back end in float32 with another stream
    (states 0.89 apart for one seed): the run refuses instead."""
    JaxBackend().xp
    jax.config.update("jax_enable_x64", False)
    try:
        for b in (JaxBackend(), "jax"):  # a new back end object does not turn it on again behind the user's back
            with pytest.raises(RuntimeError, match=r"64-bit mode \(jax_enable_x64\) was turned off"):
                run_smf(flow, b, n_paths=100)
    finally:
        jax.config.update("jax_enable_x64", True)
    meta = get_backend("jax").describe()  # what a saved study records: what decides a seed's numbers on JAX
    assert meta["backend"] == "jax" and meta["library"].startswith("jax ") and meta["prng"].startswith("threefry")


_FRESH = """
import json, sys, warnings
import numpy as np, sympy as sp, smfsym
from smfsym import RunOptions, SaveAt
from smfsym.backends import JaxBackend
warnings.simplefilter("ignore")
x = sp.Symbol("x")
flow = smfsym.smf(smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x]), order=2)
def f32(**kw):
    return smfsym.simulate(flow, x0=[1.0], t_end=0.5, eta=0.1, n_paths=3000, seed=1, increments="discrete",
                           save_at=SaveAt(store=True), options=RunOptions(backend=JaxBackend(dtype="float32"), **kw))
first = f32().states
smfsym.simulate(flow, x0=[1.0], t_end=0.5, eta=0.1, n_paths=3000, seed=1, options=RunOptions(backend="jax"))
again = f32().states
wild = smfsym.smf(smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2 - x**4 / 4, [x]), order=1)
lost = smfsym.simulate(wild, x0=[1.0], t_end=2.0, eta=0.5, n_paths=2000, seed=1,
                       options=RunOptions(backend=JaxBackend(dtype="float32"), on_nonfinite="mask"))
print(json.dumps(dict(same=bool(np.array_equal(first, again)), lost=lost.lost_fraction, ok=bool(lost.success))))
"""


@pytest.mark.slow  # a fresh process (JAX's 64-bit mode is process-wide)
def test_float32_in_a_fresh_process_does_not_depend_on_earlier_runs_and_masks_lost_paths():
    """In a process where JAX's 64-bit mode was never on, float32 discrete draws came from int32 bits (other numbers
    after a float64 run), and a lost path crashed the blow-up bookkeeping (an int64 sentinel in an int32 array)."""
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _FRESH], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["same"] and 0 < res["lost"] < 1, res


def test_max_min_and_erf_evaluate_on_the_device_back_ends():
    """sympy printed Max/Min as functools.reduce and erf as math.erf, names a back end's namespace lacks: SGD on a
    loss with Max crashed with a NameError on JAX and array_api_strict (smfsym check --backend jax included). They
    now print as nested maximum/minimum and the back end's erf (jax.scipy.special, cupyx.scipy.special); a back end
    without one (array_api_strict) refuses by name."""
    from smfsym.symbolic.lambdify import CompiledExprs

    x = sp.Symbol("x", real=True)
    exprs = [sp.Max(x, 0) ** 2, sp.Min(x, 1, x**2), sp.erf(x), sp.erfc(x) / 2]
    X = np.array([[-1.0], [0.5], [2.0]])
    ref = np.asarray(CompiledExprs(exprs, [x])(X)).reshape(3, -1).T  # (output, state)

    def on(b, some):  # the device call the steps make: columns on the device, a list of device arrays back
        return np.array([b.to_numpy(v) for v in CompiledExprs(some, [x], backend=b).evaluate_list([b.asarray(X[:, 0])])])

    np.testing.assert_allclose(on(get_backend("jax"), exprs), ref, rtol=1e-14, atol=1e-15)
    strict = get_backend("array_api_strict")
    np.testing.assert_allclose(on(strict, exprs[:2]), ref[:2], rtol=1e-14)
    with pytest.raises(AttributeError, match="'array_api_strict' has no 'erfc?'"):  # (which first: set order)
        on(strict, exprs[2:])


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
def test_sgd_on_a_loss_with_max_and_erf_agrees_with_numpy():
    x = sp.Symbol("x", real=True)
    p = smfsym.Problem(sp.Max(x, 0) ** 2 + x * sp.erf(x) + (x - smfsym.normal("xi")) ** 2 / 2, [x])
    runs = [smfsym.simulate_sgd(p, [1.0], 4, 0.1, n_paths=50_000, seed=3, save_at=SaveAt(functions={"sq": square}),
                                options=RunOptions(backend=b, progress=False)) for b in ("numpy", "jax")]
    z = zscores(*runs)
    assert z.max() < Z_MAX, z


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
def test_sgd_batches_give_the_same_numbers_whatever_the_chunking(problem):
    """The batch mean was xp.mean, whose summation order XLA picks by the array's shape: a path's SGD state moved
    in the last bit with the size of its chunk (1.1e-16 at batch 3). It is now summed in halves, in an order fixed
    by the batch size (smfsym.simulation.device_sgd.batch_mean)."""
    n = 4096 + 100
    a = run_sgd(problem, "jax", n_paths=n, chunk_size=4096, batch_size=3)
    b = run_sgd(problem, "jax", n_paths=n, batch_size=3)
    for name in ("state", "sq"):
        np.testing.assert_array_equal(a.stats[name]["mean"], b.stats[name]["mean"])
    from smfsym.simulation.device_sgd import batch_mean

    g = np.arange(1.0, 8.0)[None, :] ** 2  # 7 entries: the odd tail is carried to the next halving
    assert batch_mean(np, g)[0] == np.sum(np.arange(1.0, 8.0) ** 2) / 7


_SEEDED = """
import numpy as np, sympy as sp, smfsym
x = sp.Symbol("x")
flow = smfsym.smf(smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x]), order=2)
r = smfsym.simulate(flow, x0=[1.0], t_end=0.3, eta=0.1, n_paths=500, seed=7, increments="discrete",
                    save_at=smfsym.SaveAt(store=True), options=smfsym.RunOptions(backend="jax"))
print(repr(float(np.sum(r.states))))
"""


@pytest.mark.slow  # two fresh processes
def test_a_seed_gives_the_same_numbers_whatever_jaxs_default_prng():
    """JAX_DEFAULT_PRNG_IMPL=rbg changed a seed's numbers (0.59163 against 0.59073): the key names Threefry."""
    import os
    import subprocess
    import sys

    def run(**env):
        out = subprocess.run([sys.executable, "-c", _SEEDED], capture_output=True, text=True, timeout=300,
                             env={**os.environ, **env})
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout.strip().splitlines()[-1]

    assert run() == run(JAX_DEFAULT_PRNG_IMPL="rbg")
