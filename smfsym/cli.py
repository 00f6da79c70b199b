"""The ``smfsym`` command: derive, check and generate code from a spec.

    smfsym derive SPEC [--format latex|text] [-o FILE] [--force]
    smfsym check SPEC [-o DIR] [--force] [--n-paths N] [--seed S] [--models m1,m2] [--etas e1,e2]
                      [--scheme S] [--quiet] [--yes] [--workers N | --scheduler ADDRESS]
    smfsym codegen SPEC [--model smf2] [--eta 0.05] [--backend numpy|cupy|array_api_strict] -o sim.py [--force]

SPEC is a TOML file (data: validated, never executed), a Python file (a name
ending in .py, any case: run as code, trusted files only) or the name of a
shipped spec (``smfsym specs`` lists them).

Outputs are never overwritten without ``--force`` and are written atomically
(a temporary file or directory in the same place, renamed at the end), so an
interrupted or failed run leaves no result that looks valid. ``--force``
replaces only a regular file (``derive``, ``codegen``) or a previous check
output directory (``check``, marked by ``.smfsym-check``): a symbolic link, FIFO,
device, socket or any other directory is refused. Outputs get the modes of
``open`` and ``mkdir`` (0666 and 0777 less the umask). User mistakes end with
one line ``smfsym: ...`` on stderr and exit status 2; Ctrl-C ends with
``smfsym: interrupted`` and status 130, SIGTERM with ``smfsym: terminated`` and
status 143, the temporaries removed in every case (set ``SMFSYM_TRACEBACK=1`` for
the traceback instead of the line).

This module imports only the standard library at module level: ``--help`` and
argument errors never load sympy, numpy or the rest of smfsym.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import re
import shutil
import signal
import sys
import threading
import warnings
from pathlib import Path

from ._fs import path_kind, temp_dir
from .symbolic.model_names import MODEL_REGISTRY

__all__ = ["main"]

SHIPPED = Path(__file__).parent / "specs"
CHECK_FILES = ("weak_error.txt", "weak_error.tex", "weak_error.png", "weak_error.json", "multipoint.txt",
               "multipoint.tex", "multipoint.json", "meanfield.txt", "meanfield.tex", "meanfield.png",
               "meanfield.json", "summary.json")
CHECK_MARKER = ".smfsym-check"
_MARKER_TEXT = "smfsym check output\n"
MODEL_CHOICES = tuple(MODEL_REGISTRY)
#: ``check`` refuses studies estimated above this many seconds in total unless ``--yes``.
COST_LIMIT = 600.0
_TRUST = ("Python spec files (names ending in .py, any case) are run as code: load only files you trust. "
          "Every other spec is read as TOML, validated, and never executed.")


class UsageError(Exception):
    """A user mistake outside the spec (arguments, output paths): one line, exit status 2."""


class Terminated(BaseException):
    """Raised in the main process on SIGTERM, so that temporaries are removed as on Ctrl-C (status 143)."""


#: Failures that come from the user's input (SpecError and ResourceLimitError are ValueErrors, BlowUpError a
#: FloatingPointError): one line and status 2. Anything else is a bug and keeps its traceback.
USER_ERRORS = (UsageError, ValueError, TypeError, OSError, MemoryError, ArithmeticError, NotImplementedError,
               RecursionError)


def _resolve(spec: str) -> Path:
    p = Path(spec)
    if p.exists() or p.is_symlink() or os.sep in spec or "/" in spec:
        return p
    shipped = SHIPPED / (spec if spec.endswith(".toml") else spec + ".toml")
    if shipped.is_file():
        return shipped
    names = ", ".join(sorted(q.stem for q in SHIPPED.glob("*.toml")))
    raise UsageError(f"no spec file {spec!r} (shipped specs: {names})")


def _load(spec):
    from .spec import load_spec

    return load_spec(_resolve(spec))


def _check_output_file(path: Path, force: bool) -> None:
    """An output file may be new, or (with --force) a regular file; nothing else is ever replaced."""
    kind = path_kind(path)
    if kind == "regular file" and not force:
        raise UsageError(f"output {str(path)!r} exists; pass --force to overwrite it")
    if kind not in (None, "regular file"):
        raise UsageError(f"output {str(path)!r} is a {kind}; refused (only a regular file is ever replaced, "
                         "with --force)")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"the directory of the output {str(path)!r} does not exist")


def _atomic_write(path: Path, data: str | bytes, force: bool) -> None:
    """Write ``path`` through a temporary file in the same directory and ``os.replace``."""
    path = Path(path)
    _check_output_file(path, force)  # again: the run may have taken a while
    from .io.persist import atomic_write_text

    atomic_write_text(path, data)


def _model_list(text: str) -> list[str]:
    names = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in names if m not in MODEL_CHOICES]
    if bad or not names:
        raise UsageError(f"--models: unknown model(s) {bad or [text]}; valid models: {', '.join(MODEL_CHOICES)}")
    return names


def cmd_derive(args):
    from . import export_tex
    import sympy as sp

    from .data.means import refuse_dirac_deltas
    from .spec.checks import check_models
    from .symbolic.latex import derivation_text

    names = _model_list(args.models)
    if args.output:
        _check_output_file(Path(args.output), args.force)
    spec = _load(args.spec)
    p, net = spec.problem, spec.meanfield
    c = spec.check or {}
    # the models `smfsym check` compares with the spec's optimizer (RMSprop's, momentum's, a schedule's), not
    # plain SGD's whatever the spec checks (audit 11, finding 1)
    models = list(check_models(spec, c, names).values()) if p is not None else []
    for sde in models:  # a model check and codegen refuse (a kink's Dirac delta) is not printed as if it stood
        diffusion = getattr(sde.diffusion, "sigma", sde.diffusion)
        refuse_dirac_deltas(list(sde.drift) + (list(diffusion) if isinstance(diffusion, sp.MatrixBase) else []))
    plain = c.get("optimizer", "sgd") == "sgd" and c.get("schedule") is None
    if args.format == "latex":
        out = export_tex(p, models) if p is not None else _empty_document()
        if net is not None:
            section = "\\section*{Mean-field flow}\n\\[\n" + net.latex() + "\n\\]\n"
            out = out.replace("\\end{document}", section + "\\end{document}")
    else:
        out = (derivation_text(p, models, x_ref=c.get("x0") if plain else None, values=spec.values or None)
               if p is not None else "")
        if net is not None:
            out += (f"mean-field network: {net!r}\nfirst variation v = {net.first_variation}\n"
                    f"drift = {list(net.drift)}\n")
    if args.output:
        _atomic_write(Path(args.output), out, args.force)
        print(f"wrote {args.output}")
    else:
        sys.stdout.write(out)


def _empty_document() -> str:
    return "\n".join([r"\documentclass{article}", r"\usepackage{amsmath,amssymb}", r"\usepackage[margin=2cm]{geometry}",
                      r"\allowdisplaybreaks", r"\begin{document}", r"\end{document}", ""])


def _strict_json(v):
    """``v`` for strict JSON: an unresolved number (NaN, an infinity) is null, as any parser reads it (a bare
    NaN is not JSON; audit 9, finding 7)."""
    if isinstance(v, dict):
        return {k: _strict_json(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_strict_json(x) for x in v]
    if isinstance(v, (bool, str, int)) or v is None:
        return v
    f = float(v)
    return f if math.isfinite(f) else None


def _is_marker(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(64) == _MARKER_TEXT.encode()
    except OSError:
        return False


def _check_output_dir(out: Path, force: bool) -> None:
    """Refuse to mix runs: DIR must be new, empty, or (with --force) a previous check output.

    The output is written beside DIR and moved into place, so DIR must have a name and a parent: the current
    directory (``-o .``), one above it (``-o ..``) or ``/`` is refused here, before the study runs (it failed
    at the very end, naming a temporary folder).
    """
    here = Path(os.path.realpath(os.getcwd()))
    real = Path(os.path.realpath(out))
    if out.name in ("", ".", "..") or real == here or real in here.parents:
        raise UsageError(f"-o {str(out)!r}: the output must be a directory smfsym can create or replace, not the "
                         "current directory or one above it; name a new one (e.g. -o check_out)")
    kind = path_kind(out)
    if kind not in (None, "directory"):
        raise UsageError(f"output {str(out)!r} is a {kind}; refused (-o needs a new or empty directory, or a "
                         "previous check output with --force)")
    if kind == "directory":
        content = sorted(p.name for p in out.iterdir())
        if not content:
            return
        # a check output holds only regular files smfsym writes, the marker with its own text: anything else
        # (a directory named weak_error.png, a link) is the user's and --force must never remove it
        foreign = [n for n in content if n not in CHECK_FILES and n != CHECK_MARKER
                   or path_kind(out / n) != "regular file"]
        if foreign or CHECK_MARKER not in content or not _is_marker(out / CHECK_MARKER):
            raise UsageError(f"output directory {str(out)!r} is not empty and is not an smfsym check output "
                             f"(it holds {', '.join(content[:5])}{', ...' if len(content) > 5 else ''}); "
                             "choose another -o")
        if not force:
            raise UsageError(f"output directory {str(out)!r} holds a previous check; pass --force to replace it")


def cmd_check(args):
    import matplotlib

    matplotlib.use("Agg")

    out = Path(args.output)
    _check_output_dir(out, args.force)
    spec = _load(args.spec)
    c = spec.check
    if not c and not spec.meanfield_check:
        raise UsageError(f"the spec {args.spec!r} has no [check] table (phi, x0, etas) nor [meanfield.check] "
                         "table for `smfsym check`")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"the directory of the output {str(out)!r} does not exist")
    if args.backend != "numpy" and (args.workers or args.scheduler):
        raise UsageError("--backend runs the Monte Carlo on one device in this process: drop --workers/--scheduler")
    _require_backend(args.backend)
    c, m = _check_overrides(c or {}, spec.meanfield_check or {}, args, spec.problem)
    if m:
        spec = dataclasses.replace(spec, meanfield_check=m)  # --n-paths: the study and its estimate see it
    _check_cost(spec, c, args)
    tmp = temp_dir(parent, f".{out.name}.")
    try:
        with _executor(args) as executor:
            summary = _weak_error_files(spec, c, tmp, executor, args.quiet, args.backend) if c else {}
            if spec.meanfield_check:
                summary["meanfield"] = _meanfield_files(spec, tmp, executor, args.quiet, args.backend)
        (tmp / "summary.json").write_text(json.dumps(_strict_json(summary), indent=2, allow_nan=False) + "\n")
        # The marker is written last: a directory without it is not a finished check.
        (tmp / CHECK_MARKER).write_text(_MARKER_TEXT)
        _check_output_dir(out, args.force)  # again: the run may have taken a while
        old = None
        if out.exists():
            old = temp_dir(parent, f".{out.name}.old.")
            os.replace(out, old / "d")
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    files = ", ".join(sorted(p.name for p in out.iterdir() if p.name != CHECK_MARKER))
    print(f"wrote {out}/: {files}")


def _executor(args):
    """``--workers N``: smfsym's process pool (a lost worker is rerun); ``--scheduler ADDRESS``: a Dask client."""
    import contextlib

    workers, address = getattr(args, "workers", None), getattr(args, "scheduler", None)
    if workers is not None:
        from .montecarlo.executors import process_pool

        return process_pool(workers)
    if address is not None:
        try:
            from distributed import Client
        except ImportError:
            raise UsageError("--scheduler needs Dask: pip install \"smfsym[dask]\"") from None
        try:
            return Client(address, timeout="30s")
        except (OSError, TimeoutError) as exc:
            raise UsageError(f"--scheduler: cannot reach the Dask scheduler at {address!r} ({exc})") from None
    return contextlib.nullcontext()


def _workers(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of processes from 1 to 1024; got {text!r}") from None
    if not 1 <= v <= 1024:
        raise argparse.ArgumentTypeError(f"expected a number of processes from 1 to 1024; got {text!r}")
    return v


def _check_overrides(c: dict, m: dict, args, problem=None) -> tuple[dict, dict]:
    """[check] and [meanfield.check] with the command's overrides applied, validated like the spec.

    ``--n-paths`` sets the paths of every study ([check], [check.multipoint], [meanfield.check]) and ``--seed``
    their seed; ``--models``, ``--etas`` and ``--scheme``
    belong to [check] and are refused for a spec without one (never silently ignored).
    """
    from .spec.load import MAX_WORK
    from .spec.schema import SCHEMA

    c, m = dict(c), dict(m)
    # each SGD step of each path draws batch_size samples (a symbolic B: no bound)
    b = getattr(problem, "batch_size", 1)
    batch = int(b) if isinstance(b, int) or getattr(b, "is_Integer", False) else 1
    if not c:
        given = [flag for flag, v in (("--models", args.models), ("--etas", args.etas), ("--scheme", args.scheme))
                 if v is not None]
        if given:
            raise UsageError(f"{', '.join(given)}: the spec {args.spec!r} has no [check] table (its [meanfield.check] "
                             "takes --n-paths only; change its etas in the spec)")
    if args.n_paths is not None:
        if c:
            c["n_paths"] = SCHEMA["check"]["n_paths"].check(args.n_paths, "--n-paths")
        if c.get("multipoint"):
            mp = c["multipoint"] = dict(c["multipoint"])
            mp["n_paths"] = SCHEMA["check.multipoint"]["n_paths"].check(args.n_paths, "--n-paths")
            work = mp["n_paths"] * round(mp["t_end"] / mp["eta"]) * batch
            if work > MAX_WORK:
                raise UsageError(f"--n-paths: n_paths x SGD steps x batch_size = {work:.3g} gradient evaluations for "
                                 f"the [check.multipoint] study; the limit is MAX_WORK = {MAX_WORK:.0e}")
        if m:
            m["n_paths"] = SCHEMA["meanfield.check"]["n_paths"].check(args.n_paths, "--n-paths")
            # the loader's bound on the network study's work, for the new path count
            work = m["n_paths"] * max(m["widths"]) * m["t_end"] / min(m["etas"]) * len(m["etas"])
            if work > MAX_WORK:
                raise UsageError(f"--n-paths: n_paths x width x steps = {work:.3g} particle-steps for the "
                                 f"[meanfield.check] study; the limit is MAX_WORK = {MAX_WORK:.0e}")
    seed = getattr(args, "seed", None)
    if seed is not None:
        if c:
            c["seed"] = SCHEMA["check"]["seed"].check(seed, "--seed")
        if m:
            m["seed"] = SCHEMA["meanfield.check"]["seed"].check(seed, "--seed")
    if not c:
        return c, m
    keys = SCHEMA["check"]
    if args.models is not None:
        c["models"] = keys["models"].check([m.strip() for m in args.models.split(",") if m.strip()], "--models")
    if args.etas is not None:
        try:
            etas = [float(e) for e in args.etas.split(",")]  # an empty entry ("0.1,,0.05") is refused, not dropped
        except ValueError:
            raise UsageError(f"`--etas`: expected comma-separated numbers; got {args.etas!r}") from None
        c["etas"] = keys["etas"].check(etas, "--etas")
        if max(c["etas"]) > c["t_end"]:
            raise UsageError(f"--etas: learning rates must be <= the spec's t_end = {c['t_end']:g}; got {c['etas']}")
    if args.scheme is not None:
        c["scheme"] = keys["scheme"].check(args.scheme, "--scheme")
    # the loader's bound for the new paths and etas
    work = sum(round(c["t_end"] / e) for e in c["etas"]) * c["n_paths"] * batch
    if work > MAX_WORK:
        raise UsageError(f"--n-paths/--etas: n_paths x SGD steps x batch_size = {work:.3g} gradient evaluations; "
                         f"the limit is MAX_WORK = {MAX_WORK:.0e}")
    return c, m


def _check_cost(spec, c: dict, args) -> None:
    """Estimate the cost of every study of the check (weak error, schedule or momentum, multi-point, mean
    field), print it, refuse above COST_LIMIT in total without --yes."""
    from .meanfield import estimate_meanfield_cost
    from .meanfield.options import MeanFieldNumerics
    from .spec.checks import estimate_check_cost
    from .studies import estimate_multipoint_cost
    from .studies.cost import _fmt

    ests = []
    if c:
        ests.append(("weak-error", estimate_check_cost(spec, c)))
    mp = c.get("multipoint") if c else None
    if mp:
        ests.append(("multi-point", estimate_multipoint_cost(spec.problem, mp["starts"], eta=mp["eta"],
                                                             t_end=mp["t_end"], n_paths=mp["n_paths"],
                                                             values=spec.values or None,
                                                             scheme=None if c["scheme"] == "auto" else c["scheme"],
                                                             increments=c.get("increments", "auto"))))
    m = spec.meanfield_check
    if m:
        ests.append(("mean-field", estimate_meanfield_cost(
            spec.meanfield, _particles(spec), etas=m["etas"], t_end=m["t_end"], widths=m["widths"],
            n_paths=m["n_paths"], methods=m["methods"], observe=_observe(m),
            numerics=MeanFieldNumerics(order=m["ddsmf_order"], n_points=m["n_points"]))))
    # exact moments (or no estimate): nothing worth printing
    ests = [(name, est) for name, est in ests if est is not None and est.method != "exact"]
    if not args.quiet:
        for name, est in ests:
            label = "" if name == "weak-error" else f"{name} study: "
            print(f"smfsym check: {label}{est}", file=sys.stderr, flush=True)
    total = sum(est.seconds for _, est in ests)
    if total > COST_LIMIT and not args.yes:
        if len(ests) == 1:
            what = f"the {ests[0][0]} study's {ests[0][1]}"
        else:
            parts = ", ".join(f"{name} {_fmt(est.seconds)}" for name, est in ests)
            what = f"the {' and '.join(n for n, _ in ests)} studies' estimated cost: {_fmt(total)} ({parts})"
        hints = {"weak-error": "--n-paths, --models, --etas or --scheme euler",
                 "multi-point": "--n-paths",
                 "mean-field": "--n-paths, or widths or etas of the spec's [meanfield.check]"}
        device = ("" if args.backend == "numpy" else f" (the estimate is numpy's on this machine's CPU: on --backend "
                  f"{args.backend} the run is usually far shorter)")
        raise UsageError(f"{what} is over {COST_LIMIT / 60:g} min{device}; pass --yes to run it, or lower it with "
                         + "; ".join(hints[n] for n, _ in ests))


def _require_backend(name: str) -> None:
    """Refuse, before any work, a back end whose library or device is missing (not after the exact studies)."""
    from .backends import get_backend

    try:
        get_backend(name).xp  # imports the library and finds its device
    except (ImportError, RuntimeError) as exc:
        raise UsageError(f"--backend {name}: {exc}") from None


def _weak_error_files(spec, c: dict, tmp: Path, executor=None, quiet: bool = False, backend: str = "numpy") -> dict:
    """The weak-error (and multi-point) study of [check]: text, standalone LaTeX, figure, JSON; its Monte Carlo
    on the array back end ``backend`` (``--backend``; every optimizer's study, schedules and momentum included;
    exact moments run no Monte Carlo)."""
    from .symbolic.latex import standalone_table
    from .montecarlo.options import RunOptions
    from .studies import multipoint
    from .studies.common import backend_label
    from .studies.options import Numerics

    scheme = None if c["scheme"] == "auto" else c["scheme"]
    study = _check_study(spec, c, RunOptions(executor=executor, progress=False if quiet else None, backend=backend))
    print(study)
    (tmp / "weak_error.txt").write_text(repr(study) + "\n")
    (tmp / "weak_error.tex").write_text(standalone_table(
        study.to_latex(), f"weak error against {study.reference}, phi = {c['phi']}{backend_label(study.meta)}"))
    study.plot(path=tmp / "weak_error.png")
    study.save(tmp / "weak_error.json")
    summary = {"method": study.meta["method"],
               "orders": {m: {"slope": s, "low": lo, "high": hi, "n_etas": n}
                          for m, (s, lo, hi, n) in study.orders.items()},
               "rows": study.rows}
    mp_spec = c.get("multipoint")
    if mp_spec:
        mp = multipoint(spec.problem, mp_spec["starts"], eta=mp_spec["eta"], t_end=mp_spec["t_end"],
                        seed=c["seed"], n_paths=mp_spec["n_paths"], values=spec.values or None,
                        numerics=Numerics(scheme=scheme, increments=c.get("increments", "auto")),
                        options=RunOptions(executor=executor, progress=False if quiet else None, backend=backend))
        print(mp)
        (tmp / "multipoint.txt").write_text(repr(mp) + "\n")
        (tmp / "multipoint.tex").write_text(standalone_table(mp.to_latex(), "multi-point statistics"
                                                             + backend_label(mp.meta)))
        mp.save(tmp / "multipoint.json")
        summary["multipoint"] = mp.rows
    return summary


def _check_study(spec, c: dict, options):
    """The weak-error study of [check], as its optimizer's entry in ``spec.checks.CHECK_OPTIMIZERS`` runs it."""
    from .spec.checks import run_check_study

    try:
        return run_check_study(spec, c, options)
    except RuntimeError as exc:
        if isinstance(exc, RecursionError) or os.environ.get("SMFSYM_TRACEBACK"):
            raise
        # the exact moment ODE of a stiff or huge schedule (exp(-1000 t), 10**6) fails numerically: the input's
        # doing, not a bug of the command
        what = f"schedule u(t) = {c['schedule'].expr}" if c.get("schedule") is not None else c["optimizer"]
        raise UsageError(f"the study of the {what} failed: {exc} (try other etas or a milder schedule)") from None


def _particles(spec):
    """The initial particles of [meanfield.check]: drawn per width from the spec's laws and seed."""
    from .meanfield.options import InitialParticles

    return InitialParticles(law=spec.particles or None, seed=spec.meanfield_check["particle_seed"])


def _observe(m: dict):
    """What [meanfield.check] observes."""
    from .meanfield.options import Observe

    return Observe(observables=m["observables"], n_saves=m["n_saves"], risk_points=m["risk_points"])


def _meanfield_files(spec, tmp: Path, executor=None, quiet: bool = False, backend: str = "numpy") -> dict:
    """The mean-field study of [meanfield.check]: SGD, DD-SMF and the limit for every (eta, N) (on ``executor``;
    SGD and the DD-SMF on the array back end ``backend``, ``--backend``)."""
    from .symbolic.latex import standalone_table
    from .meanfield import meanfield_study
    from .studies.common import backend_label
    from .meanfield.options import MeanFieldNumerics
    from .montecarlo.options import RunOptions

    m = spec.meanfield_check
    study = meanfield_study(spec.meanfield, _particles(spec), etas=m["etas"], t_end=m["t_end"], widths=m["widths"],
                            n_paths=m["n_paths"], seed=m["seed"], methods=m["methods"], observe=_observe(m),
                            numerics=MeanFieldNumerics(order=m["ddsmf_order"], n_points=m["n_points"]),
                            options=RunOptions(executor=executor, progress=False if quiet else None,
                                               backend=backend))
    cap = study.meta.get("captured")
    note = (f"noise rule {cap['rule']}: captures {cap['ratio']:.1%} +- {cap['ratio_se']:.1%} of the noise variance "
            "at the initial particles\n") if cap else ""
    print(note + study.table)
    (tmp / "meanfield.txt").write_text(note + study.table + "\n")
    where = backend_label(study.meta)
    (tmp / "meanfield.tex").write_text(standalone_table(study.to_latex(), "mean-field study"
                                                        + (f", SGD and the DD-SMF{where}" if where else "")))
    study.plot(path=tmp / "meanfield.png")
    d = study.to_dict()
    (tmp / "meanfield.json").write_text(json.dumps(d, indent=1, default=float) + "\n")
    return d


def cmd_codegen(args):
    from .io.codegen import codegen
    from .studies import build_model

    out = Path(args.output)
    _check_output_file(out, args.force)
    spec = _load(args.spec)
    if spec.problem is None:
        raise UsageError(f"codegen writes a simulator of a [problem] table; the spec {args.spec!r} has only "
                         "[meanfield] (use `smfsym check` for the network)")
    optimizer = (spec.check or {}).get("optimizer", "sgd")
    if optimizer != "sgd" or (spec.check or {}).get("schedule") is not None:
        # generated modules simulate constant-rate SGD and its SDEs; writing them for this spec would simulate
        # another optimizer than the one `smfsym check` compares (audit 9, finding 1)
        what = (f"the schedule u(t) = {spec.check['schedule'].expr}" if spec.check.get("schedule") is not None
                else f"the optimizer {optimizer!r}")
        raise UsageError(f"codegen writes constant-rate SGD and its SDEs; the spec's [check] names {what}, which a "
                         "generated module does not simulate (use `smfsym check`, or the Python API's simulators)")
    if args.eta is not None:
        eta, origin = args.eta, "from --eta"
    elif spec.check.get("etas"):
        eta, origin = float(spec.check["etas"][-1]), "the last entry of the spec's [check] etas; pass --eta to choose"
    else:
        raise UsageError("codegen needs a learning rate: pass --eta (the spec has no [check] etas)")
    sde = build_model(spec.problem, args.model)
    digest = hashlib.sha256((spec.source or "").encode("utf-8", "replace")).hexdigest()
    src = codegen(sde, eta=eta, values=spec.values or None, backend=args.backend,
                  source=f"spec {args.spec} (sha256 of its text {digest}), model {args.model}, eta {origin}")
    _atomic_write(out, src, args.force)
    on = "" if args.backend == "numpy" else f", on {args.backend}"
    print(f"wrote {args.output} ({sde.title}, eta = {eta}: {origin}{on})")
    unbound = [line.split(" = None")[0] for line in src.splitlines() if line.endswith("=...)") and " = None  #" in line]
    if unbound:  # a large data set is an argument of the module, never text in it
        print(f"the data set is not embedded: call set_data({', '.join(k + '=...' for k in unbound)}) with the "
              "data rows and weights before simulating")
    if "def simulate_sgd(" not in src:
        print("simulate_sgd is not generated (batches drawn without replacement): use smfsym.simulate_sgd")


def cmd_specs(args):
    for q in sorted(SHIPPED.glob("*.toml")):
        print(f"{q.stem:24s} {_first_sentence(q.read_text())}")


def _first_sentence(text: str) -> str:
    r"""The spec's opening comment up to its first full stop (joined over lines, never cut mid-sentence).

    >>> _first_sentence("# RMSprop on a quadratic: the optimizer's\n# SME and SMF. More.\n[problem]")
    "RMSprop on a quadratic: the optimizer's SME and SMF."
    """
    words = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        words += line.lstrip("# ").split()
    out = " ".join(words)
    m = re.search(r"\.(\s|$)", out)
    return out[:m.start() + 1] if m else out


def _eta(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive finite number; got {text!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"expected a positive finite number; got {text!r}")
    return v


class _Parser(argparse.ArgumentParser):
    """argparse with its errors in the command's form: one line ``smfsym: ...``, exit status 2 (not the usage
    block; ``--help`` shows that)."""

    def error(self, message: str):
        where = self.prog.removeprefix("smfsym").strip()
        self.exit(2, f"smfsym: {where + ': ' if where else ''}{' '.join(message.split())}; "
                     f"see `{self.prog} --help`\n")


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    ap = _Parser(prog="smfsym", description="Stochastic modified equations and flows of SGD.",
                                 epilog=_TRUST)
    ap.add_argument("--version", action="version", version=f"smfsym {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)
    d = sub.add_parser("derive", help="print or write F, Sigma and the SME and SMF that check compares (the optimizer's own for RMSprop, Adam, momentum, schedules and update maps)", epilog=_TRUST)
    d.add_argument("spec", help="TOML spec, Python spec (.py: run as code, trusted only) or shipped name")
    d.add_argument("--format", choices=["latex", "text"], default="latex")
    d.add_argument("--models", default="sme2,smf2", help=f"comma-separated: {', '.join(MODEL_CHOICES)}")
    d.add_argument("-o", "--output", help="write to this file (refused if it exists, unless --force)")
    d.add_argument("--force", action="store_true", help="overwrite an existing output")
    d.set_defaults(fn=cmd_derive)
    c = sub.add_parser("check", help="weak-error study against SGD: table and figure", epilog=_TRUST)
    c.add_argument("spec", help="TOML spec, Python spec (.py: run as code, trusted only) or shipped name")
    c.add_argument("-o", "--output", default="smfsym-check",
                   help="output directory (new or empty; a previous check output only with --force)")
    c.add_argument("--force", action="store_true", help="replace a previous check output")
    par = c.add_mutually_exclusive_group()
    par.add_argument("--workers", type=_workers, metavar="N",
                     help="run the Monte Carlo on N local processes (same numbers as serial)")
    par.add_argument("--scheduler", metavar="ADDRESS",
                     help="run the Monte Carlo on a Dask cluster, e.g. tcp://scheduler:8786 (pip install smfsym[dask])")
    c.add_argument("--backend", default="numpy", choices=["numpy", "cupy", "jax", "array_api_strict"],
                   help="array back end of the weak-error and multi-point Monte Carlo and of the mean-field "
                        "study's SGD and DD-SMF: cupy runs it on an NVIDIA "
                        "GPU (pip install \"smfsym[gpu]\"), jax on JAX's device (pip install \"smfsym[jax]\"); "
                        "numbers differ from numpy's within standard errors")
    c.add_argument("--n-paths", type=int,
                   help="Monte Carlo paths (overrides n_paths of [check] and of [meanfield.check])")
    c.add_argument("--seed", type=int, help="Monte Carlo seed of every study (overrides the spec's [check] and "
                   "[meanfield.check] seed; the initial particles keep particle_seed)")
    c.add_argument("--models", help=f"comma-separated, overrides [check] models: {', '.join(MODEL_CHOICES)}")
    c.add_argument("--etas", help="comma-separated learning rates (overrides [check] etas)")
    c.add_argument("--scheme", help="SDE solver (overrides [check] scheme): auto, euler, weak2, tamed")
    c.add_argument("--quiet", action="store_true", help="no progress lines nor cost estimate on stderr")
    c.add_argument("--yes", action="store_true",
                   help=f"run even if the estimated cost exceeds {COST_LIMIT / 60:g} minutes")
    c.set_defaults(fn=cmd_check)
    g = sub.add_parser("codegen", help="write a standalone simulator (numpy, or an array back end)", epilog=_TRUST)
    g.add_argument("spec", help="TOML spec, Python spec (.py: run as code, trusted only) or shipped name")
    g.add_argument("--model", default="smf2", choices=MODEL_CHOICES)
    g.add_argument("--eta", type=_eta, help="learning rate (default: the last of the spec's [check] etas)")
    g.add_argument("-o", "--output", required=True, help="the file to write (refused if it exists, unless --force)")
    g.add_argument("--force", action="store_true", help="overwrite an existing output")
    g.add_argument("--backend", default="numpy", choices=["numpy", "cupy", "array_api_strict"],
                   help="the array library the simulator runs on (default numpy; cupy: an NVIDIA GPU)")
    g.set_defaults(fn=cmd_codegen)
    s = sub.add_parser("specs", help="list the shipped specs")
    s.set_defaults(fn=cmd_specs)
    return ap


def main(argv=None) -> int:
    """Run the command line; return the exit status (0 ok, 2 user mistake, 130 interrupted, 143 terminated).

    >>> main(["derive", "rademacher", "--format", "text", "--models", "sme1"])  # doctest: +ELLIPSIS
    loss f = x**2*(r + 1)/2
    ...
    0
    """
    with _sigterm_raises(), _one_line_warnings():
        try:
            args = _parser().parse_args(_glue_number_lists(sys.argv[1:] if argv is None else list(argv)))
            args.fn(args)
        except (KeyboardInterrupt, Terminated, *USER_ERRORS) as exc:
            if os.environ.get("SMFSYM_TRACEBACK"):  # a developer's view: where it stopped (temporaries are gone)
                raise
            if isinstance(exc, KeyboardInterrupt):
                return _fail("interrupted", 130)
            if isinstance(exc, Terminated):
                return _fail("terminated", 143)
            return _fail(" ".join(str(exc).split()) or type(exc).__name__, 2)
    return 0


#: flags whose value is a comma-separated list of numbers (it may start with a minus sign)
_NUMBER_LISTS = ("--etas",)
_NUMBER_LIST = re.compile(r"-[0-9.][0-9.eE+-]*(,[0-9.eE+-]*)*")


def _glue_number_lists(argv: list) -> list:
    """``--etas -0.1,0.05`` as ``--etas=-0.1,0.05``: argparse takes a value that starts with '-' (and is not one
    plain negative number) for a flag, and says "expected one argument" instead of checking the learning rates.

    >>> _glue_number_lists(["check", "x.toml", "--etas", "-0.1,0.05", "--models", "sme1"])
    ['check', 'x.toml', '--etas=-0.1,0.05', '--models', 'sme1']
    """
    out, i = [], 0
    while i < len(argv):
        if argv[i] in _NUMBER_LISTS and i + 1 < len(argv) and _NUMBER_LIST.fullmatch(argv[i + 1]):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
            continue
        out.append(argv[i])
        i += 1
    return out


def _fail(message: str, status: int) -> int:
    print(f"smfsym: {message}", file=sys.stderr)
    return status


class _one_line_warnings:
    """While a command runs, a warning prints as one line ``smfsym: warning: ... (Category)``, without the
    source line Python adds (for numpy's warnings inside generated code, a screenful of expression)."""

    def __enter__(self):
        self.old = warnings.formatwarning
        warnings.formatwarning = lambda message, category, *rest: \
            f"smfsym: warning: {' '.join(str(message).split())} ({category.__name__})\n"
        return self

    def __exit__(self, *exc):
        warnings.formatwarning = self.old
        return False


class _sigterm_raises:
    """While a command runs, SIGTERM raises :class:`Terminated` in this process (the temporaries are removed on
    the way out, as on Ctrl-C); the previous handler is restored afterwards (``main`` may be called in-process).

    Worker processes forked meanwhile inherit the handler: there it restores the default action and
    re-sends the signal, so a pool that terminates its workers still can. A second SIGTERM is ignored
    while the first one's clean-up runs.
    """

    def __enter__(self):
        self.pid, self.old = os.getpid(), None
        if threading.current_thread() is threading.main_thread():
            self.old = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum, frame):
        if os.getpid() != self.pid:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated()

    def __exit__(self, *exc):
        if self.old is not None:
            signal.signal(signal.SIGTERM, self.old)
        return False


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
