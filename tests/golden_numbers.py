"""Golden numbers: small fixed-seed runs of every simulator and study kind, stored bitwise.

The safety net of the redesign (issue 16): a restructuring must not move a single number. Each
case returns a flat list of floats; ``tests/golden/numbers.json`` stores them as ``float.hex``
strings, so the comparison in ``tests/package/test_golden_numbers.py`` is exact. When a change is *meant* to move
numbers (a bug fix), regenerate the file in the same commit and say why in its message::

    OPENBLAS_CORETYPE=Haswell python tests/golden_numbers.py --write

The numbers are those of OpenBLAS's AVX2 (Haswell) matrix-product kernels: its AVX-512 kernels
round sums differently by an ulp, so ``tests/conftest.py`` pins that kernel before numpy loads and
``--write`` refuses to run without the pin.

The runs are tiny (a few thousand paths, a handful of steps): they pin the arithmetic and the
random streams, not the statistics.
"""
from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import sympy as sp

import smfsym
from smfsym.studies.momentum_multipoint import momentum_multipoint

GOLDEN = Path(__file__).with_name("golden") / "numbers.json"
#: the OpenBLAS kernel family the stored numbers were computed with (set before numpy loads)
KERNEL = "Haswell"
x, y = sp.symbols("x y")


def _ou():
    return smfsym.Problem((x - smfsym.normal("xi", std=sp.Rational(1, 2))) ** 2 / 2, [x])


def _regression():
    a = smfsym.normal("a", mean=1, std=sp.Rational(1, 2))
    z = smfsym.normal("z")
    return smfsym.Problem((a * x + y - z) ** 2 / 2 + y**2 / 4, [x, y])


def _rademacher():
    r = smfsym.rademacher("r")
    return smfsym.Problem((1 + r) * x**2 / 2, [x])


def _logistic_data():
    rng = np.random.default_rng(3)
    data = np.column_stack([rng.normal(size=12), rng.choice([-1.0, 1.0], size=12)])
    u, lab = smfsym.empirical(data, ["u", "lab"])
    return smfsym.Problem(sp.log(1 + sp.exp(-lab * u * x)) + x**2 / 10, [x])


def _flat(*arrays) -> list:
    out = []
    for a in arrays:
        out.extend(float(v) for v in np.ravel(np.asarray(a, dtype=float)))
    return out


def _result(res) -> list:
    """Every stored state (or the streamed means) of a SimulationResult."""
    if res.states is not None:
        return _flat(res.t, res.states)
    return _flat(res.t, res.mean(), res.sem())


def _study(st) -> list:
    """The long-format table of a study: every value and standard error, in row order."""
    return _flat([[v, s] for (_, _, _, v, s, _) in st._long_rows()])


def case_simulate_euler():
    sde = smfsym.smf(_regression(), order=2)
    return _result(smfsym.simulate(sde, [1.0, -0.5], 0.3, eta=0.1, n_paths=300, dt=0.05, seed=1))


def case_simulate_weak2_discrete():
    sde = smfsym.smf(_regression(), order=2)
    return _result(smfsym.simulate(sde, [1.0, -0.5], 0.3, eta=0.1, n_paths=300, dt=0.05, seed=2,
                                   scheme="weak2", increments="discrete"))


def case_simulate_sme_sqrt():
    sde = smfsym.sme(_rademacher(), order=1)
    return _result(smfsym.simulate(sde, [1.0], 0.3, eta=0.1, n_paths=300, dt=0.05, seed=3))


def case_simulate_tamed_streamed():
    sde = smfsym.sme(_ou(), order=2)
    return _result(smfsym.simulate(sde, [1.0], 0.3, eta=0.1, n_paths=5000, dt=0.05, seed=4, scheme="tamed",
                                   store=False, chunk_size=1000))


def case_simulate_data_set_smf():
    sde = smfsym.smf(_logistic_data(), order=1)
    return _result(smfsym.simulate(sde, [0.5], 0.2, eta=0.1, n_paths=200, dt=0.05, seed=5))


def case_simulate_two_point():
    sde = smfsym.smf(_rademacher(), order=2)
    return _result(smfsym.simulate(sde, [[1.0], [-1.0]], 0.2, eta=0.1, n_paths=200, dt=0.05, seed=6))


def case_simulate_sgd():
    return _result(smfsym.simulate_sgd(_regression(), [1.0, -0.5], 4, 0.1, n_paths=300, seed=7))


def case_simulate_sgd_batch():
    return _result(smfsym.simulate_sgd(_regression(), [1.0, -0.5], 4, 0.1, n_paths=300, seed=8, batch_size=3))


def case_simulate_sgd_data_set():
    return _result(smfsym.simulate_sgd(_logistic_data(), [0.5], 4, 0.1, n_paths=300, seed=9))


def case_simulate_sgd_schedule():
    t = sp.Symbol("t")
    return _result(smfsym.simulate_sgd_schedule(_regression(), smfsym.Schedule(1 / (1 + t), t), [1.0, -0.5], 4,
                                                0.1, n_paths=300, seed=10))


def case_simulate_momentum_sgd():
    return _result(smfsym.simulate_momentum_sgd(_regression(), [1.0, -0.5], 4, 0.1, 0.5, n_paths=300, seed=11))


def case_weak_error_exact():
    return _study(smfsym.weak_error(_regression(), x**2 + y, [1.0, -0.5], 0.4, [0.2, 0.1], method="exact"))


def case_weak_error_montecarlo():
    return _study(smfsym.weak_error(_ou(), x**2, [1.0], 0.4, [0.2, 0.1], method="montecarlo", n_paths=2000,
                                    seed=12, progress=False, models=["gf", "sme2", "smf2"]))


def case_multipoint():
    return _study(smfsym.multipoint(_rademacher(), [[1.0], [-1.0]], eta=0.1, t_end=0.2, n_paths=2000, seed=13,
                                    progress=False))


def case_multipoint_rates():
    return _study(smfsym.multipoint_rates(_regression(), [[1.0, -0.5], [-1.0, 0.5]], [0.2, 0.1], 0.4,
                                          models=["smf1", "smf2"], psi=["product", "sqdist"]))


def case_schedule_weak_error():
    t = sp.Symbol("t")
    return _study(smfsym.schedule_weak_error(_regression(), smfsym.Schedule(1 / (1 + t), t), x**2 + y, [1.0, -0.5],
                                             0.4, [0.2, 0.1]))


def case_momentum_weak_error():
    return _study(smfsym.momentum_weak_error(_regression(), x**2 + y, [1.0, -0.5], 0.4, [1 / 25, 1 / 100], lam=1.5))


def case_momentum_multipoint():
    st = momentum_multipoint(_rademacher(), [[1.0], [-1.0]], 0.4, [1 / 25, 1 / 100], 1.5)
    return _flat([[r[k] for k in sorted(r) if isinstance(r[k], float)] for r in st.rows])


def _net():
    a, w, out = sp.symbols("a w out")
    z = smfsym.normal("z")
    return smfsym.MeanFieldProblem(a * sp.tanh(w * z), (a, w), out, (out - sp.tanh(2 * z)) ** 2 / 2)


def _theta():
    return smfsym.particles(_net(), 20, law={"a": ("normal", 0, 0.1)}, seed=0)


def _meanfield(res) -> list:
    return _flat(res.t, res.mean("risk"), res.var("risk"))


def case_meanfield_sgd():
    return _meanfield(smfsym.simulate_meanfield_sgd(_net(), _theta(), 0.1, 3, n_paths=16, seed=14, inputs=None))


def case_meanfield_ddsmf():
    return _meanfield(smfsym.simulate_ddsmf(_net(), _theta(), 0.1, 0.3, n_paths=16, seed=15, n_points=8))


def case_meanfield_limit():
    return _meanfield(smfsym.simulate_meanfield_limit(_net(), _theta(), 0.3, n_points=8, dt=0.05))


def case_meanfield_study():
    st = smfsym.meanfield_study(_net(), etas=[0.1, 0.05], widths=[20], t_end=0.2, n_paths=8, n_points=8, n_saves=2,
                                seed=16, progress=False)
    return _flat([[r[k] for k in sorted(r) if isinstance(r[k], float)] for r in st.rows])


def case_codegen_module():
    src = smfsym.codegen(smfsym.smf(_regression(), order=2), eta=0.1)
    ns: dict = {}
    exec(compile(src, "<codegen>", "exec"), ns)  # noqa: S102 - our own generated module
    t, s = ns["simulate"]([1.0, -0.5], 0.3, 100, 17)
    return _flat(t, s)


CASES = {name[5:]: fn for name, fn in sorted(globals().items()) if name.startswith("case_")}


def compute(name: str) -> list:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CASES[name]()


def main(argv: list) -> int:
    if argv != ["--write"]:
        print(__doc__)
        return 2
    if os.environ.get("OPENBLAS_CORETYPE", "").lower() != KERNEL.lower():
        print(f"set OPENBLAS_CORETYPE={KERNEL}: the stored numbers are those of OpenBLAS's {KERNEL} kernels")
        return 2
    numbers = {}
    for name in CASES:
        numbers[name] = [v.hex() for v in compute(name)]
        print(f"{name}: {len(numbers[name])} numbers")
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(numbers, indent=0, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
