"""Old module paths of smfsym (before the layered layout of issue 16), kept working for one release.

``import smfsym.chaos`` (and ``from smfsym.chaos import ...``, pickles naming the old path, and
``mock.patch("smfsym.chaos.x")``) resolves to the module at its new path, the very same module
object, with a :class:`DeprecationWarning` naming the new path. Nothing is imported until an old
path is asked for.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

#: old dotted path -> new dotted path (packages map their submodules too).
MOVED: dict[str, str] = {
    "smfsym.safeguards": "smfsym.limits",
    "smfsym.laws": "smfsym.data.laws",
    "smfsym.samplers": "smfsym.data.samplers",
    "smfsym.tails": "smfsym.data.tails",
    "smfsym.quadrature": "smfsym.data.quadrature",
    "smfsym.expectation": "smfsym.data.means",
    "smfsym.compile": "smfsym.symbolic.lambdify",
    "smfsym.chaos": "smfsym.symbolic.noise_expansion",
    "smfsym.problem": "smfsym.symbolic.problem",
    "smfsym.compact": "smfsym.symbolic.compact",
    "smfsym.latex": "smfsym.symbolic.latex",
    "smfsym.sde": "smfsym.symbolic.sde",
    "smfsym.models": "smfsym.symbolic.models",
    "smfsym.numeric": "smfsym.numerics.compiled_sde",
    "smfsym.linear_forms": "smfsym.numerics.linear_forms",
    "smfsym.solvers": "smfsym.numerics.solvers",
    "smfsym.simulate": "smfsym.simulation.sde",
    "smfsym.sgd": "smfsym.simulation.sgd",
    "smfsym.exact": "smfsym.simulation.exact",
    "smfsym.polynomial_space": "smfsym.simulation.polynomial_space",
    "smfsym.minibatch_exact": "smfsym.simulation.minibatch_exact",
    "smfsym.optimizers.weak_orders": "smfsym.studies.optimizer_weak_error",
    "smfsym.optimizers.momentum_npoint": "smfsym.studies.momentum_multipoint",
    "smfsym.optimizers.update_map_study": "smfsym.studies.update_map_study",
    "smfsym.codegen": "smfsym.io.codegen",
    "smfsym.codegen_means": "smfsym.io.codegen_means",
    "smfsym.persist": "smfsym.io.persist",
    "smfsym.draws": "smfsym.montecarlo.increments",
    "smfsym.streaming": "smfsym.montecarlo.statistics",
    "smfsym.executors": "smfsym.montecarlo.executors",
    "smfsym.optimizers.minibatch_exact": "smfsym.simulation.minibatch_exact",
}


def _target(fullname: str) -> str | None:
    for old, new in MOVED.items():
        if fullname == old or fullname.startswith(old + "."):
            return new + fullname[len(old):]
    return None


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, new: str):
        self.new = new

    def create_module(self, spec):
        warnings.warn(f"`{spec.name}` moved to `{self.new}`; the old path goes in the next release.",
                      DeprecationWarning, stacklevel=2)
        module = importlib.import_module(self.new)
        self.spec = module.__spec__
        return module

    def exec_module(self, module):
        # The module is the new one, already executed; importlib stores it under the old name too, but
        # first sets its __spec__ to the alias's: put the real one back (relative imports read it).
        module.__spec__ = self.spec


class _AliasFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        new = _target(fullname)
        if new is None:
            return None
        is_pkg = importlib.util.find_spec(new).submodule_search_locations is not None
        return importlib.util.spec_from_loader(fullname, _AliasLoader(new), is_package=is_pkg)


def install() -> None:
    if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _AliasFinder())
