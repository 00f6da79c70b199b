"""Edge cases a hostile review of the changes after 0e6d4fc found (audit 12); each failed before its fix."""
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import smfsym
from smfsym.cli import main

SPECS = Path(smfsym.__file__).parent / "specs"
x = sp.Symbol("x")


def test_a_non_finite_bound_value_keeps_the_generated_module_importable():
    """F1: PROVENANCE held a bare inf, and the module failed at import with NameError."""
    c = sp.Symbol("c")
    flow = smfsym.smf(smfsym.Problem((x - smfsym.normal("z")) ** 2 / 2 + c * x, [x], constants=[c]), order=1)
    for value in (math.inf, math.nan):
        ns: dict = {}
        exec(compile(smfsym.codegen(flow, eta=0.1, values={c: value}), "generated", "exec"), ns)
        assert ns["PROVENANCE"]["values"]["c"] == str(value)


def test_a_symbolic_batch_size_is_checked_and_generated_without_sgd():
    """F3: a batch size named eta passed the name check (LaTeX sqrt(eta)/sqrt(eta)); codegen with a symbolic
    batch size raised TypeError: Cannot convert symbols to int."""
    with pytest.raises(ValueError, match=r"`batch_size`: the name\(s\) \['eta'\]"):
        smfsym.Problem((x - smfsym.normal("z")) ** 2 / 2, [x], batch_size=sp.Symbol("eta", positive=True))
    B = sp.Symbol("B", positive=True, integer=True)
    p = smfsym.Problem((x - smfsym.normal("z")) ** 2 / 2, [x], batch_size=B)
    ns: dict = {}
    exec(compile(smfsym.codegen(smfsym.smf(p), eta=0.1, values={B: 4}), "generated", "exec"), ns)
    assert "simulate_sgd" not in ns and "batch size B is symbolic" in ns["__doc__"]
    t, X = ns["simulate"]([1.0], 0.2, 50, 0)
    assert np.isfinite(X).all()
    with pytest.raises(ValueError, match="`batch_size` must be a number to generate SGD"):
        smfsym.codegen(p, eta=0.1)


def _teacher(tmp_path, unit, extra=""):
    text = (SPECS / "meanfield_teacher.toml").read_text()
    text = (text.replace('unit = "a * tanh(w * z)"', f'unit = "{unit}"').replace("n_paths = 192", "n_paths = 8")
            .replace("widths = [300]", "widths = [20]").replace("n_points = 48", "n_points = 8" + extra))
    path = tmp_path / "net.toml"
    path.write_text(text)
    return path


def test_a_kinked_mean_field_unit_names_the_unit_and_what_runs(tmp_path, capsys):
    """F4, F5: a [meanfield] unit with abs failed with a sympy printer error (its parameters were complex); a kink
    in the unit was refused naming `loss` and advising --models sme1,smf1, which does not apply there."""
    spec = _teacher(tmp_path, "a * tanh(w * z) + abs(w) / 100")
    assert main(["check", str(spec), "--quiet", "-o", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "`[meanfield] unit`" in err and "DiracDelta(w)" in err and 'methods = ["sgd"]' in err
    assert "--models" not in err and "Traceback" not in err
    spec = _teacher(tmp_path, "a * tanh(w * z) + abs(w) / 100", '\nmethods = ["sgd"]')
    assert main(["check", str(spec), "--quiet", "-o", str(tmp_path / "b")]) == 0  # as the message says


def test_the_check_caption_and_a_hostile_optimizer_name_in_the_figure(tmp_path):
    """F6: weak_error.tex's caption said "against SGD" for RMSprop; F7: an optimizer name holding "$" (a saved
    study is untrusted) made plot() raise in matplotlib's mathtext."""
    assert main(["check", "rmsprop", "--n-paths", "400", "--etas", "0.1,0.05", "--models", "smf1", "--quiet",
                 "-o", str(tmp_path / "r")]) == 0
    assert r"\caption*{weak error against rmsprop," in (tmp_path / "r" / "weak_error.tex").read_text()
    doc = json.loads((tmp_path / "r" / "weak_error.json").read_text())
    doc["fields"]["meta"]["optimizer"] = r"$\frac{$"
    (tmp_path / "t.json").write_text(json.dumps(doc))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = smfsym.load_study(tmp_path / "t.json")
        study.plot(path=tmp_path / "t.png")
    assert (tmp_path / "t.png").stat().st_size > 0


def test_derive_text_evaluates_with_the_specs_constants(tmp_path, capsys):
    """F9: derive --format text failed ("`values` must give numbers for ['c']") for a spec with constants and
    numeric means when a truncated SMF was printed: the captured-variance note ignored the spec's values."""
    spec = tmp_path / "logistic.toml"
    spec.write_text('[problem]\nparams = ["w"]\nloss = "log(1 + exp(-c*z*w))"\nconstants = {c = 1.0}\n'
                    '[data.z]\nlaw = "normal"\n[check]\nphi = "w**2"\nx0 = [1.0]\netas = [0.1, 0.05]\n')
    assert main(["derive", str(spec), "--format", "text", "--models", "sme1,smf1"]) == 0
    assert "captured noise variance at x = [1.0]" in capsys.readouterr().out


def test_derive_refuses_an_order_2_model_that_check_refuses(tmp_path, capsys):
    """F10: for an L1 penalty abs(w) the order-2 drift holds DiracDelta(w); derive printed it while check and
    codegen refused it."""
    spec = tmp_path / "l1.toml"
    spec.write_text('[problem]\nparams = ["w"]\nloss = "abs(w) + (w - z)**2/2"\n[data.z]\nlaw = "normal"\n')
    with pytest.warns(smfsym.NonDifferentiableWarning):
        assert main(["derive", str(spec), "--format", "text"]) == 2
    assert "DiracDelta(w)" in capsys.readouterr().err
    with pytest.warns(smfsym.NonDifferentiableWarning):
        assert main(["derive", str(spec), "--format", "text", "--models", "sme1,smf1"]) == 0


def test_weights_equal_up_to_rounding_are_not_a_weighting():
    """F11: weights 0.1 + 0.2, 0.3, 0.3 printed "weights from 0.333 to 0.333" while Problem took them as equal."""
    z, = smfsym.empirical(np.array([[1.0], [2.0], [3.0]]), "z", weights=[0.1 + 0.2, 0.3, 0.3])
    assert not z.law.is_weighted and "weights" not in repr(z.law)
    smfsym.Problem((x - z) ** 2 / 2, [x], batch_size=2, sampling="without_replacement")  # equal: accepted
