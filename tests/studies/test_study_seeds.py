"""Same seed, same numbers, for studies too: an int, its SeedSequence and a saved study's record of it give
bitwise the same rows, every time, and the caller's SeedSequence is not advanced (audit 7, finding 1: the
studies spawned their streams from the caller's object, inside the per-eta loop). ``seed=None`` records
the entropy it drew, and that record (or the loaded study's) repeats the run (finding 4)."""
from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import smfsym

x = sp.Symbol("x")
XI = smfsym.normal("xi")
PROBLEM = smfsym.Problem((x - XI) ** 2 / 2 + x**4 / 20, [x])
#: 600 paths resolve no order: these tests compare numbers bitwise, not fits
pytestmark = pytest.mark.filterwarnings("ignore::smfsym.OrderWarning")
MC = smfsym.Numerics(method="montecarlo", scheme="euler")


def _weak(seed):
    return smfsym.weak_error(PROBLEM, x**2, [1.0], 0.4, [0.2, 0.1], models=["smf1"], n_paths=600, seed=seed,
                             numerics=MC, options=smfsym.RunOptions(progress=False))


def _update_map(seed):
    return smfsym.update_map_weak_error(smfsym.sgd_map(PROBLEM), x**2, [1.0], 0.4, [0.2, 0.1], models=["smf1"],
                                        n_paths=600, seed=seed, options=smfsym.RunOptions(progress=False))


def _multipoint(seed):
    return smfsym.multipoint(PROBLEM, [[-0.5], [0.5]], eta=0.2, t_end=0.4, psi="covariance", models=["smf1"],
                             n_paths=600, seed=seed, options=smfsym.RunOptions(progress=False))


def _numbers(study):
    return [(r["model"], r["value"], r["se"]) for r in study.rows]


@pytest.mark.parametrize("run", [_weak, _update_map, _multipoint], ids=["weak_error", "update_map", "multipoint"])
def test_an_int_and_its_seed_sequence_give_the_same_numbers_every_time(run):
    ss = np.random.SeedSequence(3)
    first, again = run(ss), run(ss)
    assert ss.n_children_spawned == 0  # not advanced
    assert _numbers(first) == _numbers(again) == _numbers(run(3))
    assert _numbers(run(4)) != _numbers(first)


def test_an_unseeded_study_records_what_repeats_it(tmp_path):
    study = _weak(None)
    seed = study.meta["seed"]
    assert isinstance(seed, int) and seed > 2**32  # the drawn entropy, not None
    assert _numbers(_weak(seed)) == _numbers(study)
    study.save(tmp_path / "s.json", overwrite=True)
    assert _numbers(_weak(smfsym.load_study(tmp_path / "s.json").meta["seed"])) == _numbers(study)


def test_a_loaded_study_s_seed_sequence_record_repeats_it(tmp_path):
    ss = np.random.SeedSequence(5, spawn_key=(2, 7))
    study = _weak(ss)
    study.save(tmp_path / "s.json", overwrite=True)
    record = smfsym.load_study(tmp_path / "s.json").meta["seed"]
    assert record == {"entropy": 5, "spawn_key": [2, 7]}
    assert _numbers(_weak(record)) == _numbers(study) == _numbers(_weak(ss))


@pytest.mark.parametrize("seed, error", [
    (np.random.default_rng(0), r"`seed` must be an int or a SeedSequence .*got a Generator"),
    ({"entropy": -1, "spawn_key": []}, r"`seed` given as a mapping must be a saved study's record"),
    ({"entropy": 3}, r"`seed` given as a mapping must be a saved study's record"),
    ({"entropy": 3, "spawn_key": ["a"]}, r"`seed` given as a mapping must be a saved study's record"),
    ("3", r"`seed` must be an int"),
])
def test_bad_seeds_are_refused_by_name(seed, error):
    with pytest.raises(TypeError, match=error):
        _weak(seed)
