"""The spec's vocabularies are the library's registries (issue 16): a name accepted in a TOML spec
is a name the library knows, and every name the library knows can be written in a spec."""
import smfsym.numerics.solvers
import smfsym.studies.common
import smfsym.studies.update_map_study
import smfsym.studies.weak_error_study
import smfsym.meanfield.study
from smfsym.spec import schema


def test_models():
    """Model names are written once, in smfsym.symbolic.model_names; the spec, the command line and the
    studies read them from there."""
    from smfsym import cli
    from smfsym.symbolic.model_names import DEFAULT_MODELS, MODEL_REGISTRY

    assert tuple(smfsym.studies.common.MODELS) == tuple(schema.SCHEMA["check"]["models"].default) == DEFAULT_MODELS
    assert tuple(schema.MODEL_NAMES) == tuple(MODEL_REGISTRY)  # [check] takes every model weak_error takes
    assert set(DEFAULT_MODELS) <= set(MODEL_REGISTRY)
    assert tuple(cli.MODEL_CHOICES) == tuple(MODEL_REGISTRY)
    assert set(smfsym.studies.update_map_study.UPDATE_MAP_MODELS) == set(MODEL_REGISTRY)


def test_schemes_are_the_solvers_plus_auto():
    canonical = {cls.name for cls in set(smfsym.numerics.solvers.SOLVERS.values())}
    assert set(schema.SCHEMES) == canonical | {"auto"}


def test_meanfield_methods():
    assert tuple(schema.MF_METHODS) == tuple(smfsym.meanfield.study.METHODS)


def test_check_vocabularies_listed_in_the_schema_are_enforced():
    """The documented choices of `[check]` keys are exactly what the validators accept."""
    check = schema.SCHEMA["check"]
    for key in ("method", "scheme", "increments", "optimizer"):
        k = check[key]
        documented = [c.strip() for c in k.range.split("|")]
        for name in documented:
            assert k.check(name, key) == name


def test_increments():
    documented = [c.strip() for c in schema.SCHEMA["check"]["increments"].range.split("|")]
    for name in documented:
        assert smfsym.studies.common.check_increments(name) == name


def test_backends_of_the_command_line_are_the_registry():
    """`smfsym check --backend` offers exactly the back ends of smfsym.backends.BACKENDS (its choices are spelled in
    cli.py so that `--help` imports no numpy)."""
    import argparse

    from smfsym import cli
    from smfsym.backends import BACKENDS

    check = next(a for a in cli._parser()._subparsers._group_actions[0].choices["check"]._actions
                 if "--backend" in getattr(a, "option_strings", ()))
    assert isinstance(check, argparse.Action) and tuple(check.choices) == tuple(BACKENDS)


def test_check_optimizers_are_the_registry():
    from smfsym.spec.checks import CHECK_OPTIMIZERS

    assert tuple(schema.CHECK_OPTIMIZER_NAMES) == tuple(CHECK_OPTIMIZERS)
