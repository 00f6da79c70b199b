"""The ``smfsym`` command: derive, check and generate code from a spec.

    smfsym derive SPEC [--format latex|text] [-o FILE]
    smfsym check SPEC [-o DIR]
    smfsym codegen SPEC [--model smf2] [--eta 0.05] -o sim.py

SPEC is a TOML file, a Python file defining ``problem``, or the name of a
shipped spec (``smfsym specs`` lists them).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


__all__ = ["main"]

SHIPPED = Path(__file__).parent / "specs"


def _resolve(spec: str) -> Path:
    p = Path(spec)
    if p.exists():
        return p
    shipped = SHIPPED / (spec if spec.endswith(".toml") else spec + ".toml")
    if shipped.exists():
        return shipped
    names = ", ".join(sorted(q.stem for q in SHIPPED.glob("*.toml")))
    raise SystemExit(f"smfsym: no spec file {spec!r} (shipped specs: {names})")


def _load(spec):
    from .spec import SpecError, load_spec

    try:
        return load_spec(_resolve(spec))
    except SpecError as exc:
        raise SystemExit(f"smfsym: {exc}") from None


def cmd_derive(args):

    from . import export_tex
    from .studies import build_model

    spec = _load(args.spec)
    p = spec.problem
    models = [build_model(p, m) for m in args.models.split(",")]
    if args.format == "latex":
        out = export_tex(p, models)
    else:
        lines = [f"loss f = {p.loss}", *[f"data: {l!r}" for l in p.laws], f"F = {p.F}",
                 f"grad F = {list(p.grad_F)}", f"Sigma = {p.sigma.tolist()}"]
        for m in models:
            lines.append(f"{m.title}: drift = {list(m.drift)}")
            if m.noise_kind == "matrix":
                lines.append(f"  diffusion ({m.diffusion.shape[0]} x {m.diffusion.shape[1]}) = {m.diffusion.tolist()}")
            else:
                lines.append(f"  diffusion: {m.noise_kind} ({m.n_noise} noise terms)")
        out = "\n".join(lines) + "\n"
    if args.output:
        Path(args.output).write_text(out)
        print(f"wrote {args.output}")
    else:
        sys.stdout.write(out)


def cmd_check(args):
    import matplotlib

    matplotlib.use("Agg")
    from .studies import multipoint, weak_error

    spec = _load(args.spec)
    c = spec.check
    for key in ("phi", "x0", "etas"):
        if key not in c:
            raise SystemExit(f"smfsym: the spec needs `{key}` in its [check] table for `smfsym check`.")
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    study = weak_error(spec.problem, c["phi"], c["x0"], float(c.get("t_end", 1.0)), c["etas"],
                       models=c.get("models", ["gf", "sme1", "sme2", "smf1", "smf2"]),
                       method=c.get("method", "auto"), seed=int(c.get("seed", 0)),
                       n_paths=int(c.get("n_paths", 200_000)), values=spec.values or None)
    print(study)
    (out / "weak_error.txt").write_text(repr(study) + "\n")
    (out / "weak_error.tex").write_text(study.to_latex() + "\n")
    study.plot(path=out / "weak_error.png")
    summary = {"method": study.meta["method"],
               "orders": {m: {"slope": s, "low": lo, "high": hi, "n_etas": n} for m, (s, lo, hi, n) in study.orders.items()},
               "rows": study.rows}
    mp_spec = c.get("multipoint")
    if mp_spec:
        mp = multipoint(spec.problem, mp_spec["starts"], eta=float(mp_spec["eta"]),
                        t_end=float(mp_spec.get("t_end", 1.0)), seed=int(c.get("seed", 0)),
                        n_paths=int(mp_spec.get("n_paths", 100_000)))
        print(mp)
        (out / "multipoint.txt").write_text(repr(mp) + "\n")
        (out / "multipoint.tex").write_text(mp.to_latex() + "\n")
        summary["multipoint"] = mp.rows
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    print(f"wrote {out}/weak_error.txt, weak_error.tex, weak_error.png, summary.json")


def cmd_codegen(args):
    from .codegen import codegen
    from .studies import build_model

    spec = _load(args.spec)
    sde = build_model(spec.problem, args.model)
    eta = args.eta if args.eta is not None else float(spec.check.get("etas", [0.05])[-1])
    codegen(sde, eta=eta, values=spec.values or None, path=args.output)
    print(f"wrote {args.output} ({sde.title}, eta = {eta})")


def cmd_specs(args):
    for q in sorted(SHIPPED.glob("*.toml")):
        first = q.read_text().splitlines()[0].lstrip("# ")
        print(f"{q.stem:24s} {first}")


def main(argv=None):
    ap = argparse.ArgumentParser(prog="smfsym", description="Stochastic modified equations and flows of SGD.")
    sub = ap.add_subparsers(dest="command", required=True)
    d = sub.add_parser("derive", help="print or write F, Sigma, SME and SMF")
    d.add_argument("spec")
    d.add_argument("--format", choices=["latex", "text"], default="latex")
    d.add_argument("--models", default="sme2,smf2", help="comma-separated: gf, sme1, sme2, smf1, smf2")
    d.add_argument("-o", "--output")
    d.set_defaults(fn=cmd_derive)
    c = sub.add_parser("check", help="weak-error study against SGD: table and figure")
    c.add_argument("spec")
    c.add_argument("-o", "--output", default="smfsym-check")
    c.set_defaults(fn=cmd_check)
    g = sub.add_parser("codegen", help="write a standalone numpy simulator")
    g.add_argument("spec")
    g.add_argument("--model", default="smf2")
    g.add_argument("--eta", type=float)
    g.add_argument("-o", "--output", required=True)
    g.set_defaults(fn=cmd_codegen)
    s = sub.add_parser("specs", help="list the shipped specs")
    s.set_defaults(fn=cmd_specs)
    args = ap.parse_args(argv)
    args.fn(args)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
