"""A save point added on the step grid changes no other saved number (audit 7, finding 8): every save of
(0.1, ..., 0.5) with dt = 0.01 lies on the grid of 0.5 / 50, so the run takes that one step size, not the
per-segment sizes (s - prev) / 10 that differ from it in the last bit (the states at 0.5 moved by up to
9e-16). Saves off that grid keep their own segments, each of equal steps <= dt. docs/theory.md §9."""
from __future__ import annotations

import numpy as np
import sympy as sp

import smfsym
from smfsym import SaveAt
from smfsym.montecarlo.grid import StepGrid

x = sp.symbols("x0:2")
A = smfsym.normal("a", 2)
FLOW = smfsym.smf(smfsym.Problem((A[0] * x[0] + A[1] * x[1] - 1) ** 2 / 2 + x[0] ** 4 / 8, list(x)), order=2)


def _run(at, scheme="weak2"):
    return smfsym.simulate(FLOW, [1.0, -0.5], 0.5, eta=0.1, dt=0.01, n_paths=300, seed=4, scheme=scheme,
                           save_at=SaveAt(at=at, store=True))


def test_saves_on_the_grid_leave_the_other_numbers_bitwise_alone():
    for scheme in ("euler", "weak2"):
        alone = _run([0.5], scheme)
        many = _run([0.1, 0.2, 0.3, 0.33, 0.4, 0.5], scheme)
        assert np.array_equal(many.states[-1], alone.states[-1]), scheme
        # and the earlier saves are the states of the longer run's prefix
        assert np.array_equal(_run([0.33], scheme).states[-1][:, :], many.states[3])


def test_saves_off_the_grid_keep_equal_steps_within_each_segment():
    g = StepGrid.from_saves([0.25, 1.0], 0.2)
    assert g.save_index == [2, 6] and list(g) == [0.125, 0.125, 0.1875, 0.1875, 0.1875, 0.1875]
    assert g.time(2) == 0.25 and g.time(6) == 1.0
    on = StepGrid.from_saves([0.1, 0.2, 0.3], 0.05)
    assert on.save_index == [2, 4, 6] and len(set(on)) == 1 and on.max_step <= 0.05


def test_generated_modules_take_the_same_grid(tmp_path):
    import importlib.util
    path = tmp_path / "flow_sim.py"
    path.write_text(smfsym.codegen(FLOW, eta=0.1))
    spec = importlib.util.spec_from_file_location("flow_sim", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    _, alone = mod.simulate([1.0, -0.5], 0.5, 300, 4, dt=0.01, save_at=[0.5])
    _, many = mod.simulate([1.0, -0.5], 0.5, 300, 4, dt=0.01, save_at=[0.1, 0.2, 0.3, 0.33, 0.4, 0.5])
    assert np.array_equal(alone[-1], many[-1])


def test_a_sympy_column_vector_is_one_start():
    """sp.Matrix([1, -1/2]) is how sympy writes a point: it was refused ("got (2, 1)") (audit 7, cosmetic)."""
    column = smfsym.simulate(FLOW, sp.Matrix([1, sp.Rational(-1, 2)]), 0.1, eta=0.1, n_paths=64, seed=2)
    plain = smfsym.simulate(FLOW, [1.0, -0.5], 0.1, eta=0.1, n_paths=64, seed=2)
    assert np.array_equal(column.mean(), plain.mean()) and column.mean().shape == (1, 2)  # one save, d = 2
