"""Fixtures of the back-end tests (tests/montecarlo/test_backends*.py): the d = 3 regression and its SMF."""
import pytest

import smfsym
from backend_cases import regression_problem


@pytest.fixture(scope="module")
def problem():
    return regression_problem()


@pytest.fixture(scope="module")
def flow(problem):
    return smfsym.smf(problem, order=2)
