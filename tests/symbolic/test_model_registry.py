"""The model registry (smfsym/symbolic/model_names.py): every name builds the SDE it stands for."""
import pytest
import sympy as sp

import smfsym
from smfsym.symbolic.model_names import MODEL_REGISTRY, check_model_names
from smfsym.symbolic.models import build_model


@pytest.fixture(scope="module")
def problem():
    x = sp.Symbol("x")
    return smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2 + x**4 / 12, [x])


@pytest.mark.parametrize("name", list(MODEL_REGISTRY))
def test_every_name_builds_its_model(problem, name):
    family, order = MODEL_REGISTRY[name]
    built = build_model(problem, name)
    direct = {"gf": smfsym.gradient_flow, "sme": smfsym.sme, "smf": smfsym.smf}[family](problem, order)
    assert built.order == order
    assert sp.simplify(built.drift - direct.drift) == sp.zeros(*direct.drift.shape)
    assert (built.n_noise == 0) == (family == "gf")


def test_unknown_names_are_refused_with_the_valid_ones(problem):
    with pytest.raises(ValueError, match=r"`models` entries must be among .*'smf2'.*got 'smf3'"):
        build_model(problem, "smf3")
    with pytest.raises(ValueError, match="`models` must be a sequence"):
        check_model_names("smf1")
    with pytest.raises(ValueError, match="got 'sme1'"):
        check_model_names(["smf1", "sme1"], allowed=("smf1", "smf2"))
    assert check_model_names(["smf1", "gf"]) == ("smf1", "gf")
