"""Issue #15 §3.5: a huge mini-batch is refused with its estimate, before anything is allocated."""
import re

import pytest
import sympy as sp

import smfsym
from smfsym.spec import SpecError, spec_from_dict
from smfsym.spec.load import MAX_WORK

x = sp.Symbol("x")


def _problem(batch_size):
    return smfsym.Problem((x - smfsym.normal("z")) ** 2 / 2, [x], batch_size=batch_size)


@pytest.mark.timeout(20)
def test_simulate_sgd_refuses_a_chunk_beyond_max_memory_with_the_estimate():
    """batch_size = 10**9 ended in numpy's "Unable to allocate 745 GiB"."""
    with pytest.raises(ValueError, match=r"`batch_size` = 1000000000: one chunk of 1000 paths needs about "
                                         r"8.94e\+04 GiB .* `max_memory` bound of 4 GiB"):
        smfsym.simulate_sgd(_problem(10**9), x0=[1.0], n_steps=2, eta=0.1, n_paths=1000, seed=0)


@pytest.mark.timeout(20)
def test_the_chunk_bound_follows_max_memory_and_n_paths():
    # 48 bytes x 5000 x (1 + 1) per path: 64 paths need 31 MB, 4096 paths (one block) 1.97 GB
    p = _problem(5000)
    with pytest.raises(ValueError, match=r"4096 paths needs about 1.83 GiB.*bound of 1 GiB"):
        smfsym.simulate_sgd(p, x0=[1.0], n_steps=1, eta=0.1, n_paths=10_000, seed=0, max_memory=2**30)
    res = smfsym.simulate_sgd(p, x0=[1.0], n_steps=1, eta=0.1, n_paths=64, seed=0, max_memory=2**30)
    assert res.states.shape == (1, 64, 1)


def _doc(batch_size, n_paths=1000, multipoint=None):
    doc = {"problem": {"params": ["x"], "loss": "(x - z)**2 / 2", "batch_size": batch_size},
           "data": {"z": {"law": "normal"}},
           "check": {"phi": "x**2", "x0": [1.0], "etas": [0.1, 0.05], "n_paths": n_paths}}
    if multipoint:
        doc["check"]["multipoint"] = multipoint
    return doc


def test_spec_batch_size_range_and_work_bound():
    with pytest.raises(SpecError, match=r"`\[problem\] batch_size`: expected an integer in \[1, 1000000\]"):
        spec_from_dict(_doc(10**9))
    # 1000 paths x 30 steps x 10**6 = 3e10 is allowed; 10**5 paths make 3e12
    assert spec_from_dict(_doc(10**6)).problem.batch_size == 10**6
    expected = (r"`\[check\] n_paths` / `\[problem\] batch_size`: n_paths x SGD steps x batch_size = "
                r"100000 x 30 x 1000000 = 3e\+12 .*MAX_WORK = " + re.escape(f"{MAX_WORK:.0e}"))
    with pytest.raises(SpecError, match=expected):
        spec_from_dict(_doc(10**6, n_paths=10**5))
    mp = {"starts": [[0.0], [1.0]], "eta": 0.001, "n_paths": 10**5}
    with pytest.raises(SpecError, match=r"`\[check.multipoint\] n_paths` / `\[problem\] batch_size`: .*1e\+14"):
        spec_from_dict(_doc(10**6, multipoint=mp))


def test_spec_work_bound_names_the_line(tmp_path):
    from smfsym.spec import load_spec

    p = tmp_path / "s.toml"
    p.write_text('[problem]\nparams = ["x"]\nloss = "(x - z)**2 / 2"\nbatch_size = 1000000\n[data.z]\nlaw = "normal"\n'
                 '[check]\nphi = "x**2"\nx0 = [1.0]\netas = [0.1]\nn_paths = 1000000\n')
    with pytest.raises(SpecError, match=r"s.toml:11: `\[check\] n_paths` / `\[problem\] batch_size`"):
        load_spec(p)


def test_meanfield_batch_size_counts_in_the_work_bound():
    doc = {"data": {"z": {"law": "normal"}},
           "meanfield": {"params": ["a", "b"], "output": "out", "unit": "a * tanh(b * z)", "loss": "(out - z)**2 / 2",
                         "batch_size": 10**5, "check": {"etas": [0.125], "widths": [1000], "n_paths": 64}}}
    # 64 paths x 1000 particles x 8 steps = 5.12e5 particle-steps; with batches of 10**5: 5.12e10, allowed
    assert spec_from_dict(doc).meanfield.batch_size == 10**5
    doc["meanfield"]["batch_size"] = 10**6
    with pytest.raises(SpecError, match=r"`\[meanfield.check\] n_paths` / `\[meanfield\] batch_size`: n_paths x width "
                                        r"x steps x batch_size = 5.12e\+11 particle-gradients"):
        spec_from_dict(doc)
