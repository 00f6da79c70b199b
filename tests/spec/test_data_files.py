"""Empirical data files in specs (weights honoured, bounded strict CSV) and name collisions at the spec layer."""
import os

import numpy as np
import pytest
import sympy as sp

from smfsym.spec import SpecError, load_spec

HEAD = '[problem]\nparams = ["x"]\nloss = "(x - y)**2 / 2"\n'


def spec(tmp_path, body, csv=None, name="data.csv"):
    if isinstance(csv, bytes):
        (tmp_path / name).write_bytes(csv)
    elif csv is not None:
        (tmp_path / name).write_text(csv)
    p = tmp_path / "s.toml"
    p.write_text(HEAD + body)
    return p


def test_weights_column_is_honoured_against_a_hand_weighted_sum(tmp_path):
    ys, ws = [0.0, 1.0, 3.0], [1.0, 2.0, 5.0]
    csv = "y,w\n" + "".join(f"{y},{w}\n" for y, w in zip(ys, ws))
    p = spec(tmp_path, '[data.d]\nlaw = "empirical"\nfile = "data.csv"\nweights_column = "w"\n', csv)
    F = load_spec(p).problem.F
    x = sp.Symbol("x")
    w = np.array(ws) / sum(ws)
    m1, m2 = float(w @ ys), float(w @ np.square(ys))
    expected = x**2 / 2 - m1 * x + m2 / 2
    diff = sp.expand(F - expected)
    assert all(abs(float(c)) < 1e-12 for c in sp.Poly(diff, x).all_coeffs())
    # Unweighted F differs: the weights change the numbers.
    p2 = spec(tmp_path, '[data.d]\nlaw = "empirical"\nfile = "data.csv"\ncolumns = ["y"]\n')
    F2 = load_spec(p2).problem.F
    assert abs(float(sp.Poly(F2, x).all_coeffs()[1]) + np.mean(ys)) < 1e-12


def test_single_column_file_is_a_one_dimensional_data_set(tmp_path):
    p = spec(tmp_path, '[data.d]\nlaw = "empirical"\nfile = "data.csv"\n', "y\n1\n3\n")
    x = sp.Symbol("x")
    assert sp.simplify(load_spec(p).problem.F - (x**2 / 2 - 2 * x + 5 / 2)) == 0


@pytest.mark.parametrize("csv,match", [
    ("y\n1\n", "1 data row"),
    ("y\n", "0 data row"),
    ("", "empty"),
    ("1,2\n3,4\n5,6\n", "header"),
    ("y,y\n1,2\n3,4\n", "duplicate column names"),
    ("y\n1\nnan\n", r"line 3, column 1 \(y\): 'nan'"),
    ("y\n1\ninf\n", "line 3, column 1"),
    ("y\n1\n1e999\n", "overflows"),
    ("y\n1\n__import__('os')\n", "line 3, column 1"),
    ("y\n1\n1_000\n", "line 3, column 1"),
    ("y\n1\n0x10\n", "line 3, column 1"),
    ("y\n1\n\"\"\n", "line 3, column 1"),
    ("y,z\n1,2\n3\n", "line 3 has 1 cells"),
    ("y\n1\n2\n".encode("utf-16"), "not UTF-8"),
    (b"y\n1\n\xff\n", "not UTF-8"),
])
def test_bad_data_files_are_refused_with_row_and_column(tmp_path, csv, match):
    p = spec(tmp_path, '[data.d]\nlaw = "empirical"\nfile = "data.csv"\n', csv)
    with pytest.raises(SpecError, match=match) as exc:
        load_spec(p)
    assert "[data.d] file" in str(exc.value)


@pytest.mark.parametrize("csv,body,match", [
    ("y,w\n1,1\n2,-1\n", 'weights_column = "w"', ">= 0"),
    ("y,w\n1,0\n2,0\n", 'weights_column = "w"', "positive finite sum"),
    ("y,w\n1,1\n2,1\n", 'weights_column = "v"', "not a column"),
    ("y,w\n1,1\n2,1\n", 'weights_column = "w"\ncolumns = ["y", "w"]', "cannot also be a data column"),
    ("y,w\n1,1\n2,1\n", 'columns = ["q"]', r"\['q'\] not in"),
    ("y,exp\n1,1\n2,1\n", '', "shadows an allowed function"),
    ("y,x\n1,1\n2,1\n", '', "`x` is already used by `\\[problem\\] params`"),
    ("y,_w\n1,1\n2,1\n", '', "underscore"),
])
def test_weights_and_columns(tmp_path, csv, body, match):
    p = spec(tmp_path, f'[data.d]\nlaw = "empirical"\nfile = "data.csv"\n{body}\n', csv)
    with pytest.raises(SpecError, match=match):
        load_spec(p)


@pytest.mark.parametrize("file,match", [
    ("/etc/passwd", "absolute path"), ("../data.csv", "leaves the spec's directory"),
    ("sub/../../data.csv", "leaves"), ("missing.csv", "cannot read"), (".", "not a regular file"),
    ("link.csv", "outside the spec's directory"),
])
def test_data_paths_stay_inside_the_spec_directory(tmp_path, file, match):
    inner = tmp_path / "inner"
    inner.mkdir()
    (tmp_path / "data.csv").write_text("y\n1\n2\n")
    os.symlink(tmp_path / "data.csv", inner / "link.csv")
    p = inner / "s.toml"
    p.write_text(HEAD + f'[data.d]\nlaw = "empirical"\nfile = "{file}"\n')
    with pytest.raises(SpecError, match=match):
        load_spec(p)


@pytest.mark.timeout(30)
def test_fifo_data_file_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "data.csv")
    p = spec(tmp_path, '[data.d]\nlaw = "empirical"\nfile = "data.csv"\n')
    with pytest.raises(SpecError, match="not a regular file"):
        load_spec(p)


@pytest.mark.timeout(30)
def test_oversized_data_file_is_refused_before_reading(tmp_path, monkeypatch):
    from smfsym.spec import data_files

    monkeypatch.setattr(data_files, "MAX_BYTES", 100)
    p = spec(tmp_path, '[data.d]\nlaw = "empirical"\nfile = "data.csv"\n', "y\n" + "1\n" * 100)
    with pytest.raises(SpecError, match="MAX_BYTES = 100"):
        load_spec(p)
    monkeypatch.setattr(data_files, "MAX_BYTES", 10**6)
    monkeypatch.setattr(data_files, "MAX_ROWS", 10)
    with pytest.raises(SpecError, match="MAX_ROWS = 10"):
        load_spec(p)


# ----------------------------------------------------------------------------- name collisions

P = '[problem]\nparams = {params}\nloss = "{loss}"\n'


@pytest.mark.parametrize("text,match", [
    (P.format(params='["x", "x"]', loss="x**2") , r"duplicate names \['x'\]"),
    (P.format(params='["x"]', loss="x**2*z") + '[problem.constants]\nz = 1\n[data.z]\nlaw = "normal"\n',
     r"`z` is already used by `\[problem\] constants.z`"),
    (P.format(params='["x"]', loss="x**2") + '[problem.constants]\nx = 1\n', r"`x` is already used by `\[problem\] params`"),
    (P.format(params='["x"]', loss="x**2*a0") + '[problem.constants]\na0 = 1\n[data.a]\nlaw = "normal"\ndim = 2\n',
     r"`a0` is already used by `\[problem\] constants.a0`"),
    (P.format(params='["x"]', loss="x**2*a0") + '[problem.constants]\na = 1\n[data.a]\nlaw = "normal"\ndim = 2\n',
     r"`a` is already used"),
    (P.format(params='["x"]', loss="x**2*a1") + '[data.a]\nlaw = "normal"\ndim = 2\n[data.a1]\nlaw = "normal"\n',
     r"`a1` is already used by `\[data.a\]` \(component a1\)"),
    (P.format(params='["exp"]', loss="x**2"), "shadows an allowed function"),
    (P.format(params='["pi"]', loss="x**2"), "shadows"),
    (P.format(params='["E"]', loss="x**2"), "shadows"),
    (P.format(params='["eta"]', loss="eta**2"), "used by the models"),
    (P.format(params='["lambda"]', loss="x**2"), "keyword"),
    (P.format(params='["\uff58"]', loss="x**2"), r"NFKC.*'x'"),
    (P.format(params='["x", "\uff58"]', loss="x**2"), r"NFKC.*'x'"),
    (P.format(params='["x"]', loss="x**2") + '[problem.constants]\n"\uff58" = 1\n', r"NFKC.*'x'"),
    (P.format(params='["x"]', loss="x**2*z") + '[data.z]\nlaw = "normal"\nstd = "x"\n',
     r"`\[data.z\] std`: unknown name `x`.*numbers and constants only"),
    (P.format(params='["x"]', loss="x**2*z") + '[data.z]\nlaw = "normal"\nstd = "z"\n', "unknown name `z`"),
])
def test_name_collisions_and_shadowing_are_refused_naming_both(tmp_path, text, match):
    p = tmp_path / "s.toml"
    p.write_text(text)
    with pytest.raises(SpecError, match=match):
        load_spec(p)


def test_law_parameter_may_use_a_constant(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text(P.format(params='["x"]', loss="(x - z)**2/2") + '[problem.constants]\ns = 0.5\n'
                 '[data.z]\nlaw = "normal"\nstd = "s"\n')
    spec_ = load_spec(p)
    s = sp.Symbol("s")
    assert sp.simplify(spec_.problem.F - (sp.Symbol("x") ** 2 / 2 + s**2 / 2)) == 0
    assert spec_.values == {s: 0.5}


@pytest.mark.parametrize("check,match", [
    ('etas = [1e-7, 0.1]', "MAX_SGD_STEPS"),
    ('etas = [0.001, 0.002]\nn_paths = 1000000000', "MAX_WORK"),
    ('etas = [0.1, 0.1]', "distinct"),
    ('etas = [2.0]', "<= t_end"),
    ('etas = [0.1]\nseed = -1', r"`\[check\] seed`"),
    ('etas = [0.1]\nseed = 9223372036854775807\nn_paths = 0', r"`\[check\] n_paths`"),
    ('etas = [0.1]\nx0 = [1.0, 2.0]', "expected 1 numbers"),
    ('etas = [0.1]\n[check.multipoint]\nstarts = [[1.0], [2.0, 3.0]]\neta = 0.1', r"point 1 has 2 numbers"),
    ('etas = [0.1]\n[check.multipoint]\nstarts = [[1.0], [2.0]]\neta = 0.1\nt_end = -2.0', r"multipoint\] t_end"),
])
def test_check_values_are_validated_before_any_study(tmp_path, check, match):
    p = tmp_path / "s.toml"
    x0 = "" if "x0" in check else "x0 = [1.0]\n"
    p.write_text(HEAD + '[data.y]\nlaw = "normal"\n[check]\nphi = "x"\n' + x0 + check + "\n")
    with pytest.raises(SpecError, match=match):
        load_spec(p)


@pytest.mark.parametrize("law,match", [
    ('law = "normal"\nstd = "s"', r"`\[data.z\] std`"),
    ('law = "uniform"\na = 1\nb = "s"', r"`\[data.z\] (a|b|law)`"),
    ('law = "exponential"\nrate = "s"', r"`\[data.z\] (rate|law)`"),
])
def test_law_ranges_are_checked_with_constant_values(tmp_path, law, match):
    p = tmp_path / "s.toml"
    p.write_text(P.format(params='["x"]', loss="(x - z)**2/2") + '[problem.constants]\ns = -1\n[data.z]\n' + law + "\n")
    with pytest.raises(SpecError, match=match):
        load_spec(p)
