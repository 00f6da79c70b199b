"""The mean-field simulators on an array back end (issue 19 item 3), on ``array_api_strict``'s stand-in device
(numpy refuses to convert its arrays: a hidden host copy in the loop fails here).

- the device kernel's increments equal numpy's kernel's on the same inputs (to rounding: 1e-12 relative),
- DD-SMF (plain and Richardson-coupled order 2) and mean-field SGD statistics agree with numpy's within
  ``Z_MAX`` = 5 standard errors of the difference of two independent estimates (different random streams
  by design; 5 SE over the few entries compared puts a false alarm below 1e-5),
- identical numbers whatever the chunking on one back end, blow-up reported, refusals named,
- the study and ``smfsym check --backend`` run end to end.
"""
import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import sympy as sp

import smfsym
from smfsym.backends import get_backend
from smfsym.cli import main
from smfsym.meanfield import MeanFieldNumerics, MeanFieldOptions, Observe, data_rule
from smfsym.meanfield.device import DeviceKernel, DeviceObservables
from smfsym.meanfield.kernel import Kernel
from smfsym.meanfield.observables import Observables

AAS = "array_api_strict"
Z_MAX = 5.0
a, w, v, out = sp.symbols("a w v out")


def teacher_net():
    z = smfsym.normal("z")
    return smfsym.MeanFieldProblem(a * sp.tanh(w * z), (a, w), out, (out - sp.tanh(2 * z)) ** 2 / 2)


def data_net(M=12, seed=0, batch_size=2):
    """Two inputs (a bilinear form w z0 + v z1 inside tanh) on a data set."""
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(M, 2))
    Y = np.tanh(Z[:, 0] - Z[:, 1]) + 0.1 * rng.normal(size=M)
    z0, z1, y = smfsym.empirical(np.column_stack([Z, Y]), "z0 z1 y")
    return smfsym.MeanFieldProblem(a * sp.tanh(w * z0 + v * z1), (a, w, v), out, (out - y) ** 2 / 2,
                                   batch_size=batch_size)


@pytest.fixture(scope="module")
def teacher():
    net = teacher_net()
    return net, smfsym.particles(net, 12, seed=0)


def zs(r_a, r_b, names=("risk", "moments")):
    """|difference| / SE of the difference of the means and variances over paths of each observable."""
    out = []
    for name in names:
        sa, sb = r_a.summary(name), r_b.summary(name)
        for stat, se in (("mean", "sem"), ("var", "var_se")):
            with np.errstate(invalid="ignore"):  # 0/0 at t = 0 (no variance yet): NaN, left out by the callers
                out.append(np.abs(sa[stat] - sb[stat]).ravel() / np.hypot(sa[se], sb[se]).ravel())
    return np.concatenate(out)


# -- the kernel: same inputs, same numbers (to rounding)

@pytest.mark.parametrize("make", [teacher_net, data_net])
def test_device_kernel_is_numpy_kernel(make):
    net = make()
    b = get_backend(AAS)
    th = smfsym.particles(net, 7, seed=1)
    rng = np.random.default_rng(0)
    X = th[None] + 0.2 * rng.normal(size=(5,) + th.shape)
    rule = data_rule(net, 6)
    K, D = Kernel(net), DeviceKernel(net, {}, b)
    db = 0.3 * rng.normal(size=(5, rule.size))
    r = D.rule(rule.nodes, rule.weights)
    for order in (1, 2):
        ref = K.ddsmf_increment(X, 0.1, db, rule.nodes, rule.weights, 0.05, order=order, batch_size=2)
        dev = b.to_numpy(D.ddsmf_increment(b.asarray(X), 0.1, b.asarray(db), r, 0.05, order=order, batch_size=2))
        np.testing.assert_allclose(dev, ref, rtol=1e-12, atol=1e-14 * np.abs(ref).max())
    batch = [rng.choice(rule.nodes[:, j], size=(5, 3)) for j in range(rule.nodes.shape[1])]
    ref = K.sgd_increment(X, batch, 0.1)
    dev = b.to_numpy(D.sgd_increment(b.asarray(X), [b.asarray(c) for c in batch], 0.1))
    np.testing.assert_allclose(dev, ref, rtol=1e-12, atol=1e-14 * np.abs(ref).max())
    obs = Observables(net, K, ["risk", "moments"], rule)
    dobs = DeviceObservables(D, obs)
    for name in ("risk", "moments"):
        np.testing.assert_allclose(b.to_numpy(getattr(dobs, name)(b.asarray(X))), getattr(obs, name)(X),
                                   rtol=1e-12)


# -- statistics against numpy

def _ddsmf(net, th, backend, n_paths=1500, seed=3, chunk_size=None, **numerics):
    numerics = {"n_points": 6, **numerics}
    return smfsym.simulate_ddsmf(net, th, eta=0.1, t_end=0.6, n_paths=n_paths, seed=seed, save_at=[0.3, 0.6],
                                 observe=Observe(observables=["risk", "moments"]),
                                 numerics=MeanFieldNumerics(**numerics),
                                 options=MeanFieldOptions(backend=backend, chunk_size=chunk_size, progress=False))


@pytest.mark.slow  # multi-second (keeps the default tier under 3 minutes)
@pytest.mark.parametrize("numerics", [{}, {"order": 2, "richardson": True}], ids=["order1", "order2-richardson"])
@pytest.mark.parametrize("make", [teacher_net, data_net])
def test_ddsmf_agrees_with_numpy(make, numerics):
    net = make()
    th = smfsym.particles(net, 12, seed=0)
    if make is data_net:  # the data set itself is the rule (exact): no n_points
        numerics = {**numerics, "n_points": None}
    dev = _ddsmf(net, th, AAS, **numerics)
    coupled = "richardson" in numerics
    assert dev.sim.extra["backend"] == AAS and dev.info["richardson"] == coupled and ("coarse" in dev.info) == coupled
    z = zs(_ddsmf(net, th, "numpy", **numerics), dev)
    assert z.size == 2 * 2 * (1 + 2 * net.n_params) and z.max() < Z_MAX, z.max()


@pytest.mark.parametrize("make", [teacher_net, data_net])
def test_meanfield_sgd_agrees_with_numpy(make):
    net = make()
    th = smfsym.particles(net, 10, seed=2)

    def go(backend):
        return smfsym.simulate_meanfield_sgd(net, th, eta=0.1, n_steps=6, n_paths=1500, seed=4, save_every=3,
                                             observe=Observe(observables=["risk", "moments"]),
                                             options=MeanFieldOptions(backend=backend, progress=False))

    dev = go(AAS)
    assert dev.sim.extra["backend"] == AAS and dev.observables["risk"].shape == (3, 1500, 1)
    z = zs(go("numpy"), dev)
    assert np.isfinite(z[3 * 2:]).all() and np.nanmax(z) < Z_MAX, np.nanmax(z)  # t = 0: no variance (0/0)


# -- reproducibility, blow-up, refusals

def test_same_numbers_whatever_the_chunking(teacher):
    net, _ = teacher
    th = smfsym.particles(net, 4, seed=5)
    kw = dict(n_paths=4096 + 37, seed=9, order=2, richardson=True)
    one, two = (_ddsmf(net, th, AAS, chunk_size=c, **kw) for c in (4096, 8192))
    assert one.sim.extra["chunk_paths"] == 4096 and two.sim.extra["chunk_paths"] == 8192
    for name in ("risk", "moments"):
        assert np.array_equal(one.observables[name], two.observables[name])
        assert np.array_equal(one.info["coarse"][name], two.info["coarse"][name])
    assert np.array_equal(one.sim.stats["state"]["mean"], two.sim.stats["state"]["mean"])
    sgd = [smfsym.simulate_meanfield_sgd(net, th, eta=0.1, n_steps=3, n_paths=4096 + 5, seed=1,
                                         options=MeanFieldOptions(backend=AAS, chunk_size=c, progress=False))
           for c in (4096, 8192)]
    assert np.array_equal(sgd[0].observables["risk"], sgd[1].observables["risk"])


def test_blowup_is_reported_not_returned(teacher):
    net, th = teacher
    # a path beyond the threshold counts as blown up, as inf and NaN do
    with pytest.raises(smfsym.BlowUpError, match=r"non-finite state at step 1 .*backend 'array_api_strict'"):
        smfsym.simulate_ddsmf(net, th, eta=0.1, t_end=0.3, n_paths=16, seed=0, numerics=MeanFieldNumerics(n_points=4),
                              options=MeanFieldOptions(backend=AAS, blowup_threshold=1e-3, progress=False))
    quartic = smfsym.MeanFieldProblem(a * w * smfsym.normal("z"), (a, w), out, out**4)
    with pytest.raises(smfsym.BlowUpError, match="non-finite state"):  # a real overflow of SGD
        smfsym.simulate_meanfield_sgd(quartic, np.full((3, 2), 3.0), eta=5.0, n_steps=40, n_paths=8, seed=0,
                                      options=MeanFieldOptions(backend=AAS, progress=False))


def test_refusals_are_named(teacher):
    net, th = teacher
    with pytest.raises(ValueError, match="`backend`: simulate_meanfield_limit runs on numpy only"):
        smfsym.simulate_meanfield_limit(net, th, 0.5, options=MeanFieldOptions(backend=AAS))
    with ThreadPoolExecutor(1) as pool:
        for run in (lambda o: smfsym.simulate_ddsmf(net, th, eta=0.1, t_end=0.2, n_paths=4, options=o),
                    lambda o: smfsym.meanfield_study(net, etas=[0.1], widths=[4], t_end=0.2, options=o)):
            with pytest.raises(ValueError, match="`executor`: .* on backend='array_api_strict'"):
                run(MeanFieldOptions(backend=AAS, executor=pool))
    small = get_backend(AAS).__class__()
    small.free_memory = lambda: 4096  # a device of 4 KiB: one path's grids do not fit, said before the run
    with pytest.raises(MemoryError, match=r"one path of N = 12 particles on 6 data nodes .*backend='numpy'"):
        smfsym.simulate_ddsmf(net, th, eta=0.1, t_end=0.2, n_paths=4, numerics=MeanFieldNumerics(n_points=6),
                              options=MeanFieldOptions(backend=small))
    zg = smfsym.gamma("zg", 2.0)
    gnet = smfsym.MeanFieldProblem(a * sp.tanh(w * zg), (a, w), out, (out - zg) ** 2 / 2)
    with pytest.raises(ValueError, match="no device sampler for the .*zg"):
        smfsym.simulate_meanfield_sgd(gnet, th, eta=0.1, n_steps=2, n_paths=4, options=MeanFieldOptions(backend=AAS))


# -- the study and the command

@pytest.mark.filterwarnings("ignore::smfsym.meanfield.RuleResolutionWarning")  # a small rule: fast
def test_study_runs_on_the_backend(teacher):
    net, _ = teacher

    def go(backend):
        return smfsym.meanfield_study(net, etas=[0.2, 0.1], widths=[8], t_end=0.4, n_paths=600, seed=1,
                                      observe=Observe(n_saves=1), numerics=MeanFieldNumerics(n_points=12),
                                      options=MeanFieldOptions(backend=backend, progress=False))

    dev = go(AAS)
    assert dev.meta["backend"] == AAS and "SGD and the DD-SMF ran on array_api_strict (float64)" in dev.table
    assert {k[0]: r.sim.extra.get("backend") for k, r in dev.results.items()} == {"sgd": AAS, "ddsmf": AAS,
                                                                                  "limit": None}
    ref = go("numpy")
    assert "backend" not in ref.meta and "backend" not in ref.table
    for key, r in dev.results.items():
        if key[0] != "limit":
            z = zs(ref.results[key], r, names=("risk",))[1::2]  # the final time (at t = 0 no variance)
            assert z.max() < Z_MAX, (key, z.max())


MEANFIELD_SPEC = ('[meanfield]\nparams = ["a", "w"]\noutput = "out"\nunit = "a * tanh(w * z)"\n'
                  'loss = "(out - tanh(2*z))**2 / 2"\n[meanfield.check]\netas = [0.25]\nt_end = 0.5\nwidths = [8]\n'
                  'n_paths = 16\nn_saves = 1\nn_points = 4\nrisk_points = 4\nmethods = ["sgd", "ddsmf", "limit"]\n'
                  '[data.z]\nlaw = "normal"\n')


@pytest.mark.slow  # multi-second: the CLI end to end; the default tier keeps the simulators' agreement tests
@pytest.mark.filterwarnings("ignore::smfsym.meanfield.RuleResolutionWarning")
def test_cli_check_backend_runs_the_meanfield_study(tmp_path, capsys):
    (tmp_path / "mf.toml").write_text(MEANFIELD_SPEC)
    assert main(["check", str(tmp_path / "mf.toml"), "-o", str(tmp_path / "out"), "--quiet",
                 "--backend", AAS]) == 0
    d = json.loads((tmp_path / "out" / "meanfield.json").read_text())
    assert d["meta"]["backend"] == AAS and len(d["rows"]) == 1 and "mean_ddsmf" in d["rows"][0]
    capsys.readouterr()


def test_complex_or_device_particles_are_named(teacher):
    xp = pytest.importorskip("array_api_strict")
    net, th = teacher
    with pytest.raises(TypeError, match="`theta0` must be real; got complex values"):
        smfsym.simulate_meanfield_sgd(net, th + 1j, 0.05, 2, n_paths=2)
    with pytest.raises(TypeError, match=r"`theta0` must be on the host .* array_api_strict on its device"):
        smfsym.simulate_meanfield_sgd(net, xp.asarray(th, device=xp.Device("device1")), 0.05, 2, n_paths=2)
