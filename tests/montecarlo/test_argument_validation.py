"""Hostile arguments to the simulators and studies: a clear error naming the argument, before any work.

Each case is (keyword, bad value, exception, message pattern). Studies must refuse before simulating:
the fake simulators below fail the test if they are ever reached.
"""
import numpy as np
import pytest
import sympy as sp

import smfsym

x = sp.Symbol("x")
eta_sym = sp.Symbol("eta")
NAN, INF = float("nan"), float("inf")


def problem():
    return smfsym.Problem((x - smfsym.normal("xi", std=0.7)) ** 2 / 2, [x])


FLOW = smfsym.smf(problem())

POSITIVE = [(-1.0, ValueError), (0.0, ValueError), (NAN, ValueError), (INF, ValueError), (True, TypeError),
            ("0.1", TypeError), (None, TypeError), ([0.1], TypeError), (eta_sym, TypeError), (1 + 2 * sp.I, ValueError)]
INTEGER = [(0, ValueError), (-5, ValueError), (True, TypeError), (False, TypeError), (10.0, TypeError),
           (2.5, TypeError), ("100", TypeError), (None, TypeError), (np.float64(3), TypeError)]
SAVE_AT = [([0.5, 0.2], "strictly increasing"), ([0.5, 0.5], "strictly increasing"), ([NAN], "finite"),
           ([0.2, INF], "finite"), ([-0.1], r"must lie in \[0"), ([2.0], r"must lie in \[0"), ([], "non-empty"),
           ([[0.1, 0.2]], "1-d"), ("0.5", "sequence of numbers"), ([None], "finite|sequence")]
SEEDS = [(-1, ValueError), ("seed", TypeError), (1.5, TypeError), (True, TypeError), ([1, 2], TypeError)]
X0 = [([NAN], ValueError, "finite"), ([INF], ValueError, "finite"), ([1.0, 2.0], ValueError, "shape"),
      ([[[1.0]]], ValueError, "shape"), ("1.0", TypeError, "numeric"), (None, TypeError, "numeric"),
      ([], ValueError, "shape")]


def cases_simulate():
    out = []
    for name in ("t_end", "eta", "dt"):
        # eta and dt are optional (None: dt = eta / 10; this SDE needs eta)
        out += [(name, v, ValueError if v is None and name == "eta" else e, f"`{name}`") for v, e in POSITIVE
                if not (v is None and name == "dt")]
    for name in ("n_paths", "chunk_size", "max_steps"):
        out += [(name, v, e, f"`{name}`") for v, e in INTEGER if not (name == "chunk_size" and v is None)]
    out += [("save_at", v, (ValueError, TypeError), f"`save_at`.*({m})") for v, m in SAVE_AT]
    out += [("seed", v, e, "`seed`") for v, e in SEEDS]
    out += [("x0", v, e, f"`x0`.*{m}") for v, e, m in X0]
    out += [("on_nonfinite", v, ValueError, "`on_nonfinite`") for v in ("ignore", None, "MASK")]
    out += [("scheme", v, ValueError, "`scheme`") for v in ("rk4", None, 3)]
    out += [("blowup_threshold", v, e, "`blowup_threshold`") for v, e in POSITIVE if v is not None]
    out += [("functions", v, (TypeError, ValueError), "`functions") for v in ([len], {"a": 3}, {"state": len})]
    out += [("store", v, TypeError, "`store`") for v in ("yes", 1)]
    out += [("max_memory", v, e, "`max_memory`") for v, e in INTEGER]
    out += [("increments", v, ValueError, "`increments`") for v in ("bits", None, "Gaussian")]
    return out


@pytest.mark.parametrize("name,value,exc,pattern", cases_simulate())
def test_simulate_refuses(name, value, exc, pattern):
    kw = dict(x0=[1.0], t_end=1.0, eta=0.1, n_paths=10, seed=0)
    kw[name] = value
    with pytest.raises(exc, match=pattern):
        smfsym.simulate(FLOW, kw.pop("x0"), kw.pop("t_end"), **kw)


def cases_sgd():
    out = [("eta", v, e, "`eta`") for v, e in POSITIVE]
    out += [(name, v, e, f"`{name}`") for name in ("n_steps", "n_paths", "max_steps") for v, e in INTEGER]
    out += [("batch_size", v, ValueError, "`batch_size`") for v, _ in INTEGER if v is not None]
    out += [("save_at", v, (ValueError, TypeError), "`save_at`") for v in
            ([5, 2], [3, 3], [NAN], [-1], [11], [2.5], [], "3")]
    out += [("seed", v, e, "`seed`") for v, e in SEEDS]
    out += [("x0", v, e, f"`x0`.*{m}") for v, e, m in X0]
    return out


@pytest.mark.parametrize("name,value,exc,pattern", cases_sgd())
def test_simulate_sgd_refuses(name, value, exc, pattern):
    kw = dict(x0=[1.0], n_steps=10, eta=0.1, n_paths=10, seed=0)
    kw[name] = value
    with pytest.raises(exc, match=pattern):
        smfsym.simulate_sgd(problem(), kw.pop("x0"), kw.pop("n_steps"), kw.pop("eta"), **kw)


def test_limit_messages_name_arguments_that_exist():
    import inspect
    import re

    msgs = []
    for call in (lambda: smfsym.simulate(FLOW, [1.0], 1.0, eta=0.1, n_paths=10**9),
                 lambda: smfsym.simulate(FLOW, [1.0], 1.0, eta=0.1, dt=1e-12),
                 lambda: smfsym.simulate_sgd(problem(), [1.0], 10**10, 0.1)):
        with pytest.raises((MemoryError, ValueError)) as info:
            call()
        msgs.append(str(info.value))
    params = set(inspect.signature(smfsym.simulate).parameters) & set(inspect.signature(smfsym.simulate_sgd).parameters)
    for msg in msgs:
        raised = re.findall(r"raise `(\w+)`|or `(\w+)`", msg)
        names = {n for pair in raised for n in pair if n}
        # run settings live in `options` (RunOptions), what to save in `save_at` (SaveAt)
        fields = set(smfsym.RunOptions.__dataclass_fields__) | set(smfsym.SaveAt.__dataclass_fields__)
        assert names and names <= params | fields | {"dt", "n_steps"}, (msg, names)


def test_sympy_numbers_are_accepted_and_inputs_never_mutated():
    x0 = np.array([1.0])
    save = [0.5, 1.0]
    a = smfsym.simulate(FLOW, x0, sp.Integer(1), eta=sp.Rational(1, 10), n_paths=10, seed=0, save_at=save)
    b = smfsym.simulate(FLOW, x0, 1.0, eta=0.1, n_paths=10, seed=0, save_at=save)
    assert np.array_equal(a.states, b.states)
    assert x0.tolist() == [1.0] and save == [0.5, 1.0]
    with pytest.raises(TypeError, match="`eta` must be a number; got the symbolic eta"):
        smfsym.simulate(FLOW, [1.0], 1.0, eta=eta_sym)


@pytest.fixture
def no_simulation(monkeypatch):
    """Studies must refuse before any simulation: reaching a simulator fails the test."""
    import smfsym.studies.multipoint_study as mp
    import smfsym.studies.weak_error_study as we

    def boom(*a, **k):
        raise AssertionError("a simulation started before the arguments were checked")

    for mod in (we, mp):
        monkeypatch.setattr(mod, "simulate_sgd", boom)
    monkeypatch.setattr(we, "simulate", boom)
    monkeypatch.setattr(we, "coupled_expectation", boom)
    monkeypatch.setattr(mp, "coupled_run", boom)  # multipoint's SDE runs (coarse and fine together)
    monkeypatch.setattr(we, "exact_sgd_mean", boom)
    monkeypatch.setattr(we, "build_model", boom)


def cases_weak_error():
    out = [("t_end", v, e, "`t_end`") for v, e in POSITIVE]
    out += [("etas", v, e, "`etas`") for v, e in [
        ([], ValueError), ([0.1], ValueError), ([0.1, -0.05], ValueError), ([0.1, 0.1], ValueError),
        ([0.1, NAN], ValueError), ([0.1, INF], ValueError), ([0.1, 0.0], ValueError), (0.1, TypeError),
        ("0.1 0.05", TypeError), ([0.1, "0.05"], TypeError), ([0.1, True], TypeError), ([0.1, eta_sym], TypeError),
        (None, TypeError)]]
    out += [("models", v, e, "`models`") for v, e in [
        (["sme3"], ValueError), ([], ValueError), ("sme1", TypeError), (["sme1", "sme1"], ValueError),
        ([1], ValueError), (None, TypeError)]]
    out += [("n_paths", v, e, "`n_paths`") for v, e in INTEGER]
    out += [("seed", v, e, "`seed`") for v, e in SEEDS + [(np.random.default_rng(0), TypeError)]]
    out += [("dt_fraction", v, e, "`dt_fraction`") for v, e in POSITIVE + [(2.0, ValueError)]]
    out += [("x0", v, e, "`x0`") for v, e, _ in X0]
    out += [("phi", v, TypeError, "`phi`") for v in ("x**2", "__import__('os')", None, [x])]
    out += [("method", v, ValueError, "`method`") for v in ("magic", None)]
    out += [("scheme", v, ValueError, "`scheme`") for v in ("rk4", 3)]
    out += [("on_nonfinite", v, ValueError, "`on_nonfinite`") for v in ("skip", None)]
    out += [("resolve", v, ValueError, "`resolve`") for v in (-1, 0, NAN, True, "3")]
    out += [("blowup_threshold", v, e, "`blowup_threshold`") for v, e in POSITIVE if v is not None]
    out += [("t_end", v, ValueError, "`t_end`") for v in (0.01, 1e12)]  # no SGD step; over max_steps
    out += [("increments", v, ValueError, "`increments`") for v in ("bits", None)]
    return out


@pytest.mark.parametrize("name,value,exc,pattern", cases_weak_error())
def test_weak_error_refuses_before_running(no_simulation, name, value, exc, pattern):
    kw = dict(phi=x**2, x0=[1.0], t_end=1.0, etas=[0.1, 0.05], models=["sme1"], n_paths=100)
    kw[name] = value
    with pytest.raises(exc, match=pattern):
        smfsym.weak_error(problem(), kw.pop("phi"), kw.pop("x0"), kw.pop("t_end"), kw.pop("etas"), **kw)


def cases_multipoint():
    out = [(name, v, e, f"`{name}`") for name in ("t_end", "eta") for v, e in POSITIVE]
    out += [("starts", v, e, "`starts`") for v, e in [
        ([[1.0]], ValueError), ([1.0, 2.0], ValueError), ([[1.0], [NAN]], ValueError), ([[1.0, 2.0], [1.0, 2.0]], ValueError),
        ("[[1],[2]]", TypeError), (None, TypeError), ([[1.0], ["a"]], TypeError)]]
    out += [("models", v, e, "`models`") for v, e in [
        (["smf3"], ValueError), (["sme2_both"], ValueError), ([], TypeError), ("smf2", TypeError),
        (["smf2", "smf2"], ValueError), ([None], ValueError)]]
    out += [("psi", v, e, "`psi`") for v, e in [("kurtosis", ValueError), ([3], TypeError), ([], TypeError),
                                                 (None, TypeError)]]
    out += [("n_paths", v, e, "`n_paths`") for v, e in INTEGER]
    out += [("seed", v, e, "`seed`") for v, e in SEEDS]
    out += [("dt_fraction", v, e, "`dt_fraction`") for v, e in POSITIVE]
    out += [("scheme", v, ValueError, "`scheme`") for v in ("rk4",)]
    out += [("on_nonfinite", v, ValueError, "`on_nonfinite`") for v in ("skip",)]
    out += [("t_end", 0.01, ValueError, "`t_end`")]
    out += [("increments", v, ValueError, "`increments`") for v in ("bits", None)]
    return out


@pytest.mark.parametrize("name,value,exc,pattern", cases_multipoint())
def test_multipoint_refuses_before_running(no_simulation, name, value, exc, pattern):
    kw = dict(starts=[[-1.0], [1.0]], eta=0.1, t_end=1.0, n_paths=100, models=["smf2"], psi="covariance")
    kw[name] = value
    with pytest.raises(exc, match=pattern):
        smfsym.multipoint(problem(), kw.pop("starts"), **kw)


def test_count_of_hostile_inputs():
    """For the report: how many hostile inputs these tests try, by entry point."""
    counts = {"simulate": len(cases_simulate()), "simulate_sgd": len(cases_sgd()),
              "weak_error": len(cases_weak_error()), "multipoint": len(cases_multipoint())}
    assert all(n >= 40 for n in counts.values()), counts
