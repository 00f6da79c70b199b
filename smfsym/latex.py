"""LaTeX for problems and SDEs, and the export of a whole derivation."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import sympy as sp

__all__ = ["export_tex", "derivation_latex"]


def _m(M) -> str:
    return sp.latex(M, mat_delim="", mat_str="pmatrix")


def wrap(lines: list[str], environment: str | None) -> str:
    body = " \\\\\n".join(lines)
    if environment is None:
        return body
    return f"\\begin{{{environment}}}\n{body}\n\\end{{{environment}}}"


def sde_lines(sde) -> list[str]:
    """Named ``&=`` lines of an SDE: the equation, the drift, the diffusion."""
    x = _m(sp.Matrix(sde.state).T) if sde.dim > 1 else sp.latex(sde.state[0])
    lines = [r"&\text{" + sde.title + "}"]
    if sde.model in ("sme", "smf", "gf") and sde.order == 2:
        bname = r"-\nabla\left(F + \tfrac{" + sp.latex(sde.eta) + r"}{4}|\nabla F|^2\right)(x)"
    elif sde.model in ("sme", "smf", "gf"):
        bname = r"-\nabla F(x)"
    else:
        bname = "b(x)"
    kind = sde.noise_kind
    if sde.n_noise == 0:
        lines.append(r"\mathrm{d}X_t &= b(X_t)\,\mathrm{d}t")
    elif sde.model == "smf" and kind == "template":
        lines.append(r"\mathrm{d}X_t &= b(X_t)\,\mathrm{d}t + \sum_{i=1}^{M} \sigma_i(X_t)\,\mathrm{d}\beta^i_t")
    elif sde.model == "smf":
        lines.append(r"\mathrm{d}X_t &= b(X_t)\,\mathrm{d}t + \sum_{k=1}^{" + str(sde.n_noise)
                     + r"} \sigma_k(X_t)\,\mathrm{d}\beta^k_t, \qquad W = \textstyle\sum_k e_k \beta^k")
    else:
        lines.append(r"\mathrm{d}X_t &= b(X_t)\,\mathrm{d}t + \sigma(X_t)\,\mathrm{d}W_t")
    lines.append(r"x &= " + x)
    lines.append(r"b(x) &= " + bname + " = " + _m(sde.drift))
    if sde.n_noise == 0:
        return lines
    if kind == "sqrt":
        lines.append(r"\sigma(x) &= " + sde.diffusion.latex() + r" \quad\text{(numeric matrix square root)}")
        lines.append(r"\Sigma(x) &= " + _m(sde.diffusion.sigma))
    elif kind == "template":
        law = sde.diffusion.law
        lines.append(r"\sigma_i(x) &= " + sp.latex(sde.noise_scale) + r"\sqrt{w_i}\,\big(\nabla F(x) - \nabla f(x, \xi_i)\big),"
                     r"\quad i = 1, \dots, " + str(law.size) + r"\quad\text{(data set, numeric)}")
    else:
        lines.append(r"\sigma(x) &= " + _m(sde.diffusion))
        if sde.model == "smf" and sde.chaos is not None:
            ce = sde.chaos
            note = "exact" if ce.exact else f"truncated at degree {ce.degree}"
            lines.append(r"&\text{noise columns } \sigma_k = -\sqrt{" + sp.latex(sde.eta) + r"}\,\nabla f_k,\ f_k = \mathbb{E}[f\,e_k]\ \text{(" + note + ")}")
    bad = sde.nondifferentiable()
    if bad:
        lines.append(r"&\text{not differentiable in } x\text{: } "
                     + ", ".join(sp.latex(b) if isinstance(b, sp.Basic) else r"\Sigma^{1/2}" for b in bad))
    return lines


def problem_lines(problem) -> list[str]:
    lines = [r"f(x, \xi) &= " + sp.latex(problem.loss)]
    for law in problem.laws:
        lines.append(r"& " + law.latex())
    if problem.batch_size != 1:
        lines.append(r"B &= " + sp.latex(problem.batch_size) + r"\quad\text{(" + problem.sampling.replace("_", " ") + ")}")
    lines.append(r"F(x) &= " + sp.latex(problem.F))
    lines.append(r"\nabla F(x) &= " + _m(problem.grad_F))
    lines.append(r"\Sigma(x) &= " + _m(problem.sigma))
    return lines


def problem_latex(problem, environment: str | None = "aligned") -> str:
    return wrap(problem_lines(problem), environment)


def derivation_latex(problem, sdes: Iterable = ()) -> str:
    """A standalone LaTeX document: the problem, F, grad F, Sigma and each SDE."""
    parts = [r"\documentclass{article}", r"\usepackage{amsmath,amssymb}",
             r"\usepackage[margin=2cm]{geometry}", r"\allowdisplaybreaks", r"\begin{document}",
             r"\section*{Problem}", wrap(problem_lines(problem), "align*")]
    for sde in sdes:
        parts.append(r"\section*{" + sde.title[0].upper() + sde.title[1:] + "}")
        parts.append(wrap(sde_lines(sde), "align*"))
    parts.append(r"\end{document}")
    return "\n".join(parts) + "\n"


def export_tex(problem, sdes: Iterable = (), path: str | Path | None = None) -> str:
    """Write (if ``path`` is given) and return a standalone ``.tex`` of a whole derivation.

    Examples
    --------
    >>> import sympy as sp, smfsym
    >>> x = sp.Symbol("x")
    >>> xi = smfsym.normal("xi")
    >>> p = smfsym.Problem((x - xi) ** 2 / 2, [x])
    >>> tex = smfsym.export_tex(p, [smfsym.sme(p), smfsym.smf(p)])
    >>> tex.startswith(r"\\documentclass")
    True
    """
    tex = derivation_latex(problem, list(sdes))
    if path is not None:
        Path(path).write_text(tex)
    return tex
