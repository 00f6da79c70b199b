"""Loading a spec file: TOML (data, validated) or Python (code, trusted).

Which loader runs is decided by the file name alone, case-insensitively: a
name ending in ``.py`` (``.py``, ``.PY``, ...) is a Python spec and is *run as
code* - load only files you trust. Every other file is parsed as TOML and
nothing in it is ever executed; a ``.toml`` file holding Python is just
invalid TOML. Spec files must be regular files of at most :data:`MAX_SPEC_BYTES`.
"""
from __future__ import annotations

import os
import re
import runpy
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sympy as sp

try:
    import tomllib
except ImportError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from ..data import laws as _laws
from ..symbolic.problem import Problem
from .data_files import read_csv, resolve_data_path
from .expr import SpecError, check_name, non_real_part, parse_expression
from .schema import LAWS, SCHEMA, validate_section
from .checks import ADAPTIVE_KEYS, CHECK_OPTIMIZERS, update_map_for
from ..optimizers import Schedule
from ..optimizers.schedules import TIME
from ..data.laws import DataSymbol
from ..meanfield import MeanFieldProblem

__all__ = ["Spec", "load_spec", "spec_from_dict", "MAX_SPEC_BYTES", "MAX_SGD_STEPS", "MAX_WORK"]

MAX_SPEC_BYTES = 1 * 2**20
MAX_SGD_STEPS = 10**6
MAX_WORK = 10**11
_KEY_IN_MSG = re.compile(r"^`\[([^\]]+)\] ([^`\[ ]+)")


@dataclass
class Spec:
    """A parsed specification: the problem(s) and the validated settings of the studies.

    ``problem`` is the finite-dimensional problem of ``[problem]`` (None when the
    spec only has ``[meanfield]``); ``meanfield`` the network of ``[meanfield]``
    (a :class:`~smfsym.MeanFieldProblem`), with its initial-particle laws in
    ``particles`` and its study settings in ``meanfield_check``.
    """

    problem: Problem | None
    symbols: dict
    check: dict = field(default_factory=dict)
    values: dict = field(default_factory=dict)
    source: str = ""
    meanfield: Any = None
    meanfield_check: dict = field(default_factory=dict)
    particles: dict = field(default_factory=dict)


def _line_of(text: str, key: str, section: str | None = None) -> int | None:
    lines = text.splitlines()
    in_section = section is None
    for i, line in enumerate(lines, start=1):
        stripped = line.strip()
        if stripped.startswith("["):
            in_section = section is not None and stripped.strip("[]").strip() == section
            continue
        if in_section and re.match(rf"^\s*{re.escape(key)}\s*=", line):
            return i
    if "." in key:  # an entry of an inline table (`update.v`): the line of the table's key
        return _line_of(text, key.split(".")[0], section)
    return None


def _read_regular(path: Path) -> bytes:
    try:
        st = os.stat(path)
    except OSError as exc:
        raise SpecError(f"spec file {str(path)!r}: {exc.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise SpecError(f"spec file {str(path)!r} is a directory")
    if not stat.S_ISREG(st.st_mode):
        raise SpecError(f"spec file {str(path)!r} is not a regular file (FIFO, device or socket)")
    if st.st_size > MAX_SPEC_BYTES:
        raise SpecError(f"spec file {str(path)!r} has {st.st_size} bytes; the limit is MAX_SPEC_BYTES = {MAX_SPEC_BYTES}")
    with open(path, "rb") as fh:
        raw = fh.read(MAX_SPEC_BYTES + 1)
    if len(raw) > MAX_SPEC_BYTES:
        raise SpecError(f"spec file {str(path)!r} is larger than MAX_SPEC_BYTES = {MAX_SPEC_BYTES}")
    return raw


def is_python_spec(path) -> bool:
    """True when ``path`` names a Python spec (suffix ``.py`` in any case), which is run as code."""
    return Path(path).suffix.lower() == ".py"


def load_spec(path) -> Spec:
    """Read a spec file: TOML (validated, never executed) or, for a ``.py`` name, Python (run: trusted only).

    Examples
    --------
    >>> from pathlib import Path
    >>> import smfsym
    >>> spec = load_spec(Path(smfsym.__file__).parent / "specs" / "rademacher.toml")
    >>> spec.problem.sigma
    Matrix([[x**2]])
    >>> spec.check["etas"]
    [0.1, 0.05, 0.025, 0.0125]
    """
    path = Path(path)
    raw = _read_regular(path)
    if is_python_spec(path):
        ns = _run_python_spec(path)
        if not isinstance(ns.get("problem"), Problem):
            raise SpecError(f"{path}: a Python spec must define `problem = smfsym.Problem(...)`")
        try:
            check = _python_check(ns["problem"], ns.get("check"))
        except SpecError as exc:
            raise SpecError(f"{path}: {exc}") from None
        return Spec(ns["problem"], {}, check, dict(ns.get("values", {})), raw.decode("utf-8", "replace"))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not UTF-8 text (byte {exc.start}); a TOML spec is expected") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:
        raise SpecError(f"{path}: not valid TOML: nested too deeply") from None
    try:
        return spec_from_dict(data, base_dir=path.parent, source=text)
    except SpecError as exc:
        msg = str(exc)
        m = _KEY_IN_MSG.match(msg)
        line = _line_of(text, m.group(2), m.group(1)) if m else None
        raise SpecError(f"{path}:{line or '?'}: {msg}") from None


def _run_python_spec(path: Path) -> dict:
    """Run a Python spec (trusted by design: documented in the README and `smfsym --help`) and return its namespace.

    An exception the spec's own code raises is a mistake in the spec: it becomes a :class:`SpecError` naming the
    file, the line of the spec it came from and the original message, so the command line prints one line
    instead of a traceback through smfsym (``SMFSYM_TRACEBACK=1`` still shows the original as the cause).
    """
    try:
        return runpy.run_path(str(path))
    except (KeyboardInterrupt, MemoryError):
        raise
    except BaseException as exc:  # SystemExit too: a spec calling sys.exit() must not end the caller
        line = None
        if isinstance(exc, SyntaxError) and exc.filename == str(path):
            line = exc.lineno
        tb = exc.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == str(path):
                line = tb.tb_lineno
            tb = tb.tb_next
        where = f"{path}:{line}" if line else f"{path}"
        try:
            what = " ".join(str(exc).split())
        except Exception:  # an exception whose message itself fails: its type is what is left to say
            what = ""
        raise SpecError(f"{where}: running the Python spec raised {type(exc).__name__}"
                        + (f": {what}" if what else "")) from exc


def _python_check(problem: Problem, check: Any) -> dict:
    """The ``check`` dict of a Python spec, validated by the same schema as a TOML [check] table."""
    if check is None:
        return {}
    if not isinstance(check, dict):
        raise SpecError(f"`[check]`: a Python spec's `check` must be a dict; got {type(check).__name__}")
    import numpy as np

    raw = dict(check)
    for k in ("x0", "etas", "models"):
        if isinstance(raw.get(k), (tuple, np.ndarray)):
            raw[k] = np.asarray(raw[k]).tolist()
    mp = raw.get("multipoint")
    if isinstance(mp, dict) and isinstance(mp.get("starts"), (tuple, np.ndarray)):
        raw["multipoint"] = dict(mp, starts=np.asarray(mp["starts"]).tolist())
    phi = raw.get("phi")
    if isinstance(phi, sp.Expr):
        raw["phi"] = "0"  # already a sympy object: nothing to parse
    out = validate_section(raw, "check", SCHEMA["check"])
    names = {s.name: s for s in (*problem.params, *problem.constants)}
    if CHECK_OPTIMIZERS[out["optimizer"]].study == "update_map_weak_error":
        owner = {n: "the problem" for n in names}
        umap, z0, state_names = update_map_for(out, problem, names, None, lambda n, by: _claim(owner, n, by))
        out.update(update_map=umap, z0=z0)
        names.update(state_names)
    if isinstance(phi, sp.Expr):
        bad = non_real_part(phi)
        if bad is not None:  # as for a TOML phi: a complex phi fails only later, in `check`
            raise SpecError(f"`[check] phi`: {str(phi)[:60]} is not real (`{str(bad)[:40]}` is complex)")
        out["phi"] = phi
    else:
        out["phi"] = parse_expression(out["phi"], names, "`[check] phi`")
    if out["multipoint"] is None:
        del out["multipoint"]
    return out


def _free(v) -> bool:
    return any(_free(e) for e in v) if isinstance(v, list) else bool(v.free_symbols)


def _subs(v, values):
    return [_subs(e, values) for e in v] if isinstance(v, list) else v.xreplace(values)


def _law_error(sec: str, table: dict, exc: Exception) -> SpecError:
    msg = str(exc)
    for k in table:
        if f"`{k}`" in msg:
            return SpecError(f"`[{sec}] {k}`: {msg}")
    return SpecError(f"`[{sec}] law`: {msg}")


def _check_work(key: str, n_paths: int, steps: int, batch_size: int) -> None:
    """Refuse a study whose SGD draws n_paths x steps x batch_size samples beyond :data:`MAX_WORK`.

    The batch counts: each step of each path evaluates the gradient on ``batch_size`` samples.
    """
    work = n_paths * steps * batch_size
    if work > MAX_WORK:
        which = key if batch_size == 1 else f"{key}` / `[problem] batch_size"
        raise SpecError(f"`{which}`: n_paths x SGD steps x batch_size = {n_paths} x {steps} x {batch_size} = "
                        f"{work:.3g} gradient evaluations; the limit is MAX_WORK = {MAX_WORK:.0e}")


def _claim(owner: dict, name: str, by: str) -> None:
    if name in owner:
        raise SpecError(f"{by}: the name `{name}` is already used by {owner[name]}; rename one of them")
    owner[name] = by


def spec_from_dict(data: Any, *, base_dir=".", source: str = "") -> Spec:
    """Validate a parsed TOML document and build the :class:`Spec` (no file access but data files).

    Every section and key is checked against :data:`smfsym.spec.SCHEMA` before
    any expression is translated, any law is built or any study starts.
    """
    if not isinstance(data, dict):
        raise SpecError(f"a spec must be a table; got {type(data).__name__}")
    sections = [s for s in SCHEMA if "." not in s] + ["data"]
    unknown = [s for s in data if s not in sections]
    if unknown:
        raise SpecError(f"`[{str(unknown[0])[:64]}]`: unknown section; allowed sections: "
                        f"{', '.join(f'[{s}]' for s in sections)}")
    if "problem" not in data and "meanfield" not in data:
        raise SpecError("`[problem]`: missing the [problem] table (params, loss) or a [meanfield] table")
    if "check" in data and "problem" not in data:
        raise SpecError("`[check]`: a [check] table needs a [problem] table (use [meanfield.check] for a network)")
    has_problem = "problem" in data
    # a network-only spec has no trained parameters and no constants of its own
    prob = validate_section(data["problem"], "problem", SCHEMA["problem"]) if has_problem else \
        {"params": [], "constants": {}}
    mf = validate_section(data["meanfield"], "meanfield", SCHEMA["meanfield"]) if "meanfield" in data else None
    data_tables = data.get("data", {})
    if not isinstance(data_tables, dict):
        raise SpecError(f"`[data]`: expected tables [data.NAME]; got {type(data_tables).__name__}")
    laws_in = {name: _validated_law(name, table) for name, table in data_tables.items()}
    check = validate_section(data["check"], "check", SCHEMA["check"]) if "check" in data else None
    if check is not None:
        _check_check(check, prob)

    # Names: every name has exactly one owner; both owners are named on a clash.
    owner: dict[str, str] = {}
    for p in prob["params"]:
        _claim(owner, p, "`[problem] params`")
    if mf is not None:
        for p in mf["params"]:
            _claim(owner, p, "`[meanfield] params`")
        _claim(owner, mf["output"], "`[meanfield] output`")
    consts = prob["constants"]
    for c in consts:
        _claim(owner, c, f"`[problem] constants.{c}`")
    const_syms = {c: sp.Symbol(c) for c in consts}
    names: dict[str, sp.Expr] = {p: sp.Symbol(p) for p in prob["params"]}
    names.update(const_syms)
    values = {const_syms[c]: v for c, v in consts.items()}
    base_dir = Path(base_dir)
    for name, law in laws_in.items():
        if law["law"] == "empirical":
            _add_empirical(name, law, base_dir, owner, names)
            continue
        _add_law(name, law, const_syms, values, owner, names)
    flat = {k: v for k, v in names.items() if isinstance(v, sp.Basic)}
    net, particle_laws, mf_check = (_meanfield(mf, flat, names) if mf is not None else (None, {}, {}))
    if not has_problem:
        return Spec(None, flat, {}, values, source, net, mf_check, particle_laws)
    loss, real = _parse_real_where_needed(prob["loss"], flat, prob["params"], "`[problem] loss`")
    names.update(real)
    flat.update(real)
    if "update_map" in data and (check is None or check["optimizer"] != "update_map"):
        raise SpecError("`[update_map]`: an update map is checked with [check] optimizer = \"update_map\"")
    try:
        problem = Problem(loss, [names[p] for p in prob["params"]], constants=list(const_syms.values()),
                          batch_size=prob["batch_size"], sampling=prob["sampling"])
    except (ValueError, TypeError) as exc:
        msg = str(exc)
        key = next((k for k in ("batch_size", "sampling", "params", "constants") if f"`{k}`" in msg), "loss")
        raise SpecError(f"`[problem] {key}`: {msg}") from None
    check_out: dict = {}
    if check is not None:
        check_out = _check_table(check, problem, flat, {k: names[k] for k in [*prob["params"], *consts]},
                                 data.get("update_map"), lambda n, by: _claim(owner, n, by),
                                 set(data["check"].get("adaptive") or {}))
        check_out["schedule"] = _schedule(check, const_syms, values)
        if check_out["multipoint"] is None:
            del check_out["multipoint"]
    return Spec(problem, flat, check_out, values, source, net, mf_check, particle_laws)


#: functions whose derivative sympy evaluates only for a real argument (for a complex one it is Derivative(re(x), x))
_REAL_ONLY = (sp.Abs, sp.sign, sp.re, sp.im, sp.arg)


def _parse_real_where_needed(text: str, names: dict, symbols, what: str) -> tuple:
    """``text`` parsed against ``names``; where it holds abs, sign, ... of one of ``symbols`` (names), parsed again
    with those symbols real. sympy differentiates abs(x - z) only for a real x, and a spec cannot declare one;
    every other spec keeps the plain symbols it always had. Returns the expression and the real symbols by name
    (empty when none was needed)."""
    expr = parse_expression(text, names, what)
    plain = {names[s] for s in symbols}
    if not any(a.free_symbols & plain for a in expr.atoms(*_REAL_ONLY)):
        return expr, {}
    real = {s: sp.Symbol(s, real=True) for s in symbols}
    return parse_expression(text, {**names, **real}, what), real


def _check_table(check: dict, problem: Problem, flat: dict, phi_names: dict, map_table, claim, given: set) -> dict:
    """[check] with phi parsed, and for an optimizer written as an update map the map and its start z0
    (``given``: the [check.adaptive] keys the spec wrote)."""
    opt = check["optimizer"]
    unread = sorted(given - ADAPTIVE_KEYS.get(opt, set()))
    if unread:
        raise SpecError(f"`[check.adaptive] {unread[0]}`: not a setting of optimizer = {opt!r} (it reads "
                        f"{', '.join(sorted(ADAPTIVE_KEYS.get(opt, ()))) or 'none'})")
    out = dict(check)
    if CHECK_OPTIMIZERS[opt].study == "update_map_weak_error":
        if check["multipoint"] is not None:
            raise SpecError(f"`[check.multipoint]`: the multi-point study runs SGD; optimizer = {opt!r} has none")
        umap, z0, state_names = update_map_for(check, problem, flat, map_table, claim)
        phi_names = {**phi_names, **state_names}
        out.update(update_map=umap, z0=z0)
    out["phi"] = parse_expression(check["phi"], phi_names, "`[check] phi`")
    return out


def _schedule(check: dict, consts: dict, values: dict):
    """The learning-rate schedule of [check] as a :class:`smfsym.optimizers.Schedule` (or None)."""
    if check["schedule"] is None:
        return None

    if check["optimizer"] != "sgd":
        raise SpecError(f"`[check] schedule`: a schedule is checked with optimizer = \"sgd\" only; got "
                        f"optimizer = {check['optimizer']!r}")
    u = parse_expression(check["schedule"], {**consts, "t": TIME}, "`[check] schedule`").xreplace(values)
    try:
        return Schedule(u, TIME)
    except (ValueError, TypeError) as exc:
        raise SpecError(f"`[check] schedule`: {exc}") from None


def _meanfield(mf: dict, flat: dict, names: dict):
    """The network of a [meanfield] table: unit and loss parsed against its names and the data."""

    out = sp.Symbol(mf["output"])
    data = {k: v for k, v in flat.items() if isinstance(v, DataSymbol)}
    plain = {p: sp.Symbol(p) for p in mf["params"]}
    unit, real = _parse_real_where_needed(mf["unit"], {**data, **plain}, mf["params"], "`[meanfield] unit`")
    params = [{**plain, **real}[p] for p in mf["params"]]
    no_output = SpecError(f"`[meanfield] output`: the loss must contain the output symbol {mf['output']!r}; "
                          f"the loss is {mf['loss'][:80]!r}")
    try:  # (abs(out - y): the output is taken real)
        loss, real = _parse_real_where_needed(mf["loss"], {**data, out.name: out}, [out.name], "`[meanfield] loss`")
    except SpecError as exc:
        if "unknown name" in str(exc) and mf["output"] not in re.findall(r"\w+", mf["loss"]):
            # perhaps the loss names another output: point at the output key too
            raise SpecError(f"{exc}; note that the output symbol is `[meanfield] output` = {mf['output']!r}") from None
        raise
    out = real.get(out.name, out)
    if out not in loss.free_symbols:
        raise no_output
    unknown = sorted(set(mf["particles"]) - set(mf["params"]))
    if unknown:
        raise SpecError(f"`[meanfield] particles`: {unknown} are not unit parameters; they are {mf['params']}")
    try:
        net = MeanFieldProblem(unit, params, out, loss, batch_size=mf["batch_size"])
    except (ValueError, TypeError) as exc:
        msg = str(exc)
        key = next((k for k in ("unit", "loss", "params", "output", "batch_size") if f"`{k}`" in msg), "unit")
        raise SpecError(f"`[meanfield] {key}`: {msg}") from None
    check = mf["check"]
    if check is not None:
        t_end, n = check["t_end"], check["n_saves"]
        for e in check["etas"]:
            k = t_end / n / e
            if abs(k - round(k)) > 1e-9 * max(1.0, k) or round(k) < 1:
                raise SpecError(f"`[meanfield.check] etas`: every save time t_end/n_saves = {t_end / n:g} must be "
                                f"a whole number of SGD steps; {e} does not divide it")
        # each step of each particle evaluates its gradient on batch_size samples: the batch counts too
        work = (check["n_paths"] * max(check["widths"]) * t_end / min(check["etas"]) * len(check["etas"])
                * mf["batch_size"])
        if work > MAX_WORK:
            key = "[meanfield.check] n_paths" + ("" if mf["batch_size"] == 1 else "` / `[meanfield] batch_size")
            raise SpecError(f"`{key}`: n_paths x width x steps x batch_size = {work:.3g} particle-gradients; "
                            f"the limit is MAX_WORK = {MAX_WORK:.0e}")
    return net, dict(mf["particles"]), dict(check or {})


def _add_empirical(name: str, law: dict, base_dir: Path, owner: dict, names: dict) -> None:
    sec = f"data.{name}"
    path = resolve_data_path(law["file"], base_dir, f"[{sec}] file")
    header, arr = read_csv(path, f"[{sec}] file")
    wcol = law["weights_column"]
    if wcol is not None and wcol not in header:
        raise SpecError(f"`[{sec}] weights_column`: {wcol!r} is not a column of the file (header: {header})")
    cols = law["columns"] if law["columns"] is not None else [h for h in header if h != wcol]
    missing = [c for c in cols if c not in header]
    if missing:
        raise SpecError(f"`[{sec}] columns`: {missing} not in the file's header {header}")
    if wcol is not None and wcol in cols:
        raise SpecError(f"`[{sec}] columns`: the weights column {wcol!r} cannot also be a data column")
    if not cols:
        raise SpecError(f"`[{sec}] columns`: no data columns left (header {header})")
    for c in cols:
        check_name(c, f"[{sec}] columns ({c!r} from the file's header)")
        _claim(owner, c, f"`[{sec}]` (column {c})")
    weights = None
    if wcol is not None:
        w = arr[:, header.index(wcol)]
        if (w < 0).any():
            i = int((w < 0).argmax())
            raise SpecError(f"`[{sec}] weights_column`: weights must be >= 0; data row {i + 1} has {w[i]}")
        total = w.sum()
        if not total > 0 or not total < float("inf"):
            raise SpecError(f"`[{sec}] weights_column`: weights must have a positive finite sum; got {total}")
        weights = w / total
    data = arr[:, [header.index(c) for c in cols]]
    try:
        syms = _laws.empirical(data, list(cols), weights=weights)
    except (ValueError, TypeError) as exc:
        raise SpecError(f"`[{sec}] file`: {exc}") from None
    for s in syms:
        names[s.name] = s

def _validated_law(name, table) -> dict:
    """A ``[data.NAME]`` table checked against its law's keys."""
    check_name(name, f"[data.{str(name)[:64]}]")
    sec = f"data.{name}"
    if not isinstance(table, dict):
        raise SpecError(f"`[{sec}]`: expected a table with `law = ...`; got {type(table).__name__}")
    if "law" not in table:
        raise SpecError(f"`[{sec}] law`: missing; each [data.NAME] table needs `law = \"normal\"` "
                        f"(or {', '.join(list(LAWS)[1:])})")
    kind = table["law"]
    if not isinstance(kind, str) or kind not in LAWS:
        raise SpecError(f"`[{sec}] law`: unknown law {kind!r:.60}; supported: {', '.join(LAWS)}")
    for k in table:
        if k not in LAWS[kind]:
            raise SpecError(f"`[{sec}] {str(k)[:64]}`: not a parameter of a {kind} law "
                            f"(allowed: {', '.join(LAWS[kind])})")
    return validate_section(table, sec, LAWS[kind])


def _check_check(check: dict, prob: dict) -> None:
    """``[check]`` against the problem: x0's length, the horizon and the work, before anything runs."""
    n_params = len(prob["params"])
    if len(check["x0"]) != n_params:
        raise SpecError(f"`[check] x0`: expected {n_params} numbers (one per parameter); got {len(check['x0'])}")
    t_end = check["t_end"]
    for e in check["etas"]:
        if e > t_end:
            raise SpecError(f"`[check] etas`: every learning rate must be <= t_end = {t_end}; got {e}")
    steps = sum(round(t_end / e) for e in check["etas"])
    if t_end / min(check["etas"]) > MAX_SGD_STEPS:
        raise SpecError(f"`[check] etas`: t_end / min(etas) = {t_end / min(check['etas']):.3g} SGD steps; "
                        f"the limit is MAX_SGD_STEPS = {MAX_SGD_STEPS}")
    _check_work("[check] n_paths", check["n_paths"], steps, prob["batch_size"])
    mp = check["multipoint"]
    if mp is not None:
        for i, s in enumerate(mp["starts"]):
            if len(s) != n_params:
                raise SpecError(f"`[check.multipoint] starts`: point {i} has {len(s)} numbers; "
                                f"expected {n_params} (one per parameter)")
        if mp["eta"] > mp["t_end"]:
            raise SpecError(f"`[check.multipoint] eta`: must be <= t_end = {mp['t_end']}; got {mp['eta']}")
        if mp["t_end"] / mp["eta"] > MAX_SGD_STEPS:
            raise SpecError(f"`[check.multipoint] eta`: t_end / eta = {mp['t_end'] / mp['eta']:.3g} steps; "
                            f"the limit is MAX_SGD_STEPS = {MAX_SGD_STEPS}")
        _check_work("[check.multipoint] n_paths", mp["n_paths"], round(mp["t_end"] / mp["eta"]),
                    prob["batch_size"])


def _add_law(name: str, law: dict, const_syms: dict, values: dict, owner: dict, names: dict) -> None:
    """Build the law of ``[data.NAME]`` (parameters: numbers and constants only) and name its symbols."""
    sec = f"data.{name}"
    kind = law["law"]
    dim = law["dim"]
    generated = [name] if dim is None else [f"{name}{i}" for i in range(dim)]
    if dim is not None:
        _claim(owner, name, f"`[{sec}]` (vector name)")
    for g in generated:
        _claim(owner, g, f"`[{sec}]`" + (f" (component {g})" if dim is not None else ""))
    kw = {}
    for k, v in law.items():
        if k in ("law", "dim") or v is None:
            continue
        where = f"`[{sec}] {k}`"
        conv = (lambda e: parse_expression(e, const_syms, where))  # noqa: E731 - law parameters: constants only
        try:
            kw[k] = ([[conv(e) for e in row] for row in v] if k == "cov"
                     else [conv(e) for e in v] if isinstance(v, list) else conv(v))
        except SpecError as exc:
            if "unknown name" in str(exc):
                raise SpecError(f"{exc}. Law parameters may use numbers and constants only, not parameters "
                                "or data") from None
            raise
    factory = (lambda n, **k: _laws.normal(n, dim, **k)) if kind == "normal" else \
        (lambda n, **k: getattr(_laws, kind)(n, dim=dim, **k))
    try:
        made = factory(name, **kw)
        if values and any(_free(v) for v in kw.values()):
            # The law keeps the constants symbolic; check its ranges with their values too
            # (std = "s" with s = -1 must be refused here, not at simulation time).
            factory(name, **{k: _subs(v, values) for k, v in kw.items()})
    except (ValueError, TypeError, ZeroDivisionError) as exc:
        raise _law_error(sec, law, exc) from None
    for s in (made if isinstance(made, tuple) else (made,)):
        names[s.name] = s
