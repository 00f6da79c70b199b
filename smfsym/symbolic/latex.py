"""LaTeX for problems and SDEs, and the export of a whole derivation.

Everything printed here must compile with a plain pdflatex (amsmath, amssymb,
geometry) whatever the size of the problem: matrices wider than amsmath's
column limit or than the page are printed entry by entry or column by column,
long sums are broken over lines, and the verified compact forms of
:mod:`smfsym.symbolic.compact` (``(|x|^2 + s^2) I + x x^T``) are shown where they exist.
"""
from __future__ import annotations

import contextlib
import re
import sys
from pathlib import Path
from typing import Iterable

import sympy as sp
from sympy.printing.conventions import split_super_sub

from .compact import bounded_below, compact_matrix, compact_vector
from .._checks import as_expr
from ..data.means import DataMean

__all__ = ["export_tex", "derivation_latex", "derivation_text", "latex_names", "standalone_table"]

#: Width budget of one displayed line, in rough characters of math (A4, 2 cm margins, 10 pt).
LINE = 80
#: amsmath's default MaxMatrixCols is 10: never print a wider matrix.
MAX_MATRIX_COLS = 8
#: Columns vectors taller than this are printed entry by entry.
MAX_MATRIX_ROWS = 12

_GREEK = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda",
          "mu", "nu", "xi", "omicron", "pi", "rho", "sigma", "tau", "upsilon", "phi", "chi", "psi", "omega",
          "lamda", "lambda"}
#: Common abbreviations a loss is typed with, and what a paper prints for them.
#: (Not ``lr``: \eta is the learning rate of every model, and a loss cannot hold the learning rate.)
_ABBREVIATIONS = {"eps": r"\varepsilon", "epsilon": r"\varepsilon", "lam": r"\lambda", "sig": r"\sigma",
                  "mu": r"\mu", "th": r"\theta"}



def _text(title: str) -> str:
    """A title for LaTeX text mode (a custom model or optimizer name may hold TeX's special characters)."""
    for ch in "\\{}":
        title = title.replace(ch, "")
    for ch in "_&%$#":
        title = title.replace(ch, "\\" + ch)
    return title.replace("^", "").replace("~", " ")


def latex_names(symbols: Iterable[sp.Symbol]) -> dict:
    r"""LaTeX names for symbols: Greek where the name is Greek or a known abbreviation, upright otherwise.

    sympy prints a multi-letter name such as ``eps`` as the product of italics
    :math:`eps`; a paper prints :math:`\varepsilon`, or :math:`\mathrm{loss}` for a
    name that is not a standard abbreviation. Subscripts (``a0``, ``x_1``) are kept.

    Examples
    --------
    >>> import sympy as sp
    >>> names = latex_names(sp.symbols("eps x0 noise_1 sigma"))
    >>> [names[s] for s in sp.symbols("eps noise_1")]
    ['\\varepsilon', '\\mathrm{noise}_{1}']
    >>> sp.Symbol("sigma") in names or sp.Symbol("x0") in names  # sympy prints these well
    False

    Two symbols never print alike: an abbreviation or Greek name that would look like another symbol
    (``lam`` beside ``lamda``, both \lambda) is printed upright under its own name instead.

    >>> names = latex_names(sp.symbols("lam lamda"))
    >>> names[sp.Symbol("lam")], sp.latex(sp.Symbol("lamda"))
    ('\\mathrm{lam}', '\\lambda')
    """
    symbols = sorted(set(symbols), key=sp.default_sort_key)
    out = {}
    for s in symbols:
        base, sups, subs = split_super_sub(s.name)
        if len(base) <= 1 or base.lower() in _GREEK:
            continue
        out[s] = _with_scripts(_ABBREVIATIONS.get(base, _upright(base)), sups, subs)
    # symbols that print alike (lam and lamda as \lambda, x1 and x_1 as x_{1}, a data symbol eta and the learning
    # rate): one keeps its form, the models' learning rate and time first, then a name sympy prints as written
    # (not an abbreviation of ours), then by name; the others are spelled out upright, underscores shown
    shown: dict = {}
    for s in symbols:
        shown.setdefault(out.get(s) or sp.latex(s), []).append(s)
    taken = set(shown)
    for same in shown.values():
        if len(same) < 2:
            continue
        keep = min(same, key=lambda s: (s not in _MODEL_SYMBOLS, s in out, s.name, sp.default_sort_key(s)))
        for s in same:
            if s is not keep:
                spelled = _upright(s.name)
                while spelled in taken:  # two symbols of one name (other assumptions): primes tell them apart
                    spelled += "'"
                out[s] = spelled
                taken.add(spelled)
    return out


#: the models' own symbols (learning rate, time), which keep their letters when a user's symbol looks alike
_MODEL_SYMBOLS = frozenset({sp.Symbol("eta", positive=True), sp.Symbol("t", nonnegative=True)})


def _upright(base: str) -> str:
    return r"\mathrm{" + base.replace("_", r"\_") + "}"


def _with_scripts(head: str, sups, subs) -> str:
    if subs:
        head += "_{" + ",".join(subs) + "}"
    if sups:
        head += "^{" + ",".join(sups) + "}"
    return head


class _Printer:
    """sp.latex with one set of symbol names; data means are printed as labels m_k(x), defined once
    (``argument``: what the labels are written as functions of, ``x`` for a problem's parameters)."""

    def __init__(self, symbols: Iterable[sp.Symbol], argument: str = "x"):
        symbols = list(symbols)
        self.names = latex_names(symbols)
        self.means: dict = {}  # DataMean -> label symbol, in order of first appearance
        # the vector the lines of a section are functions of (x, or bold x where a component prints as x:
        # :func:`_vector_name`, set per section by :meth:`section`); the data means' labels keep the problem's
        self.argument = self.label_argument = argument
        # a user's symbol m or m_1 would read as a mean's label m_1(x): the labels take another letter then
        printed = [self.names.get(s) or sp.latex(s) for s in symbols]
        self.head = r"\bar{m}" if any(re.match(r"m(_|$)", t) for t in printed) else "m"

    def _label(self, e):

        atoms = e.atoms(DataMean) if isinstance(e, (sp.Basic, sp.MatrixBase)) else set()
        if not atoms:
            return e
        for m in sorted(atoms, key=sp.default_sort_key):
            if m not in self.means:
                k = len(self.means) + 1
                sym = sp.Dummy(f"m{k}")
                self.means[m] = sym
                self.names[sym] = rf"{self.head}_{{{k}}}" + (f"({self.label_argument})" if self.label_argument else "")
        return e.xreplace(self.means)

    def __call__(self, e) -> str:
        return sp.latex(self._label(e), symbol_names=self.names)

    @contextlib.contextmanager
    def section(self, argument: str):
        """Lines written inside take ``argument`` as the vector they are functions of."""
        saved, self.argument = self.argument, argument
        try:
            yield self
        finally:
            self.argument = saved

    def matrix(self, M) -> str:
        return sp.latex(self._label(M), mat_delim="", mat_str="pmatrix", symbol_names=self.names)

    def definitions(self) -> list[str]:
        """``m_k(x) = E[...]`` lines for every data mean printed so far, each with its rule."""
        out, i = [], 0
        while i < len(self.means):  # a mean inside a mean's integrand (mean-field DG G) gets its own label
            m = list(self.means)[i]
            i += 1
            inner = self._label(m.expr)
            over = ",".join(sp.latex(s, symbol_names=self.names) for s in m.data_symbols)
            label = rf"{self.head}_{{{i}}}" + (f"({self.label_argument})" if self.label_argument else "")
            out.append(label + rf" &= \mathbb{{E}}_{{{over}}}\left[" + sp.latex(inner, symbol_names=self.names)
                       + r"\right] \quad\text{(" + m.describe_rule() + ")}")
        return out


def _m(M) -> str:
    """A small matrix as a pmatrix (callers that print one matrix, such as the mean-field block)."""
    return sp.latex(M, mat_delim="", mat_str="pmatrix")


def _width(tex: str) -> int:
    """A rough count of the characters a LaTeX string takes on the page (overestimates fractions)."""
    t = re.sub(r"\\(left|right|displaystyle|textstyle|,|;|!)", "", tex)
    t = re.sub(r"\\[A-Za-z]+", "x", t)
    return len(re.sub(r"[{}^_ ]", "", t))


def _expr_lines(lhs: str, e, p: _Printer) -> list[str]:
    """``lhs &= e``, broken after whole terms of a long sum."""
    tex = p(e)
    if _width(lhs + tex) <= LINE or not isinstance(e, sp.Add):
        return [lhs + " &= " + tex]
    terms = [p(t) for t in sp.Add.make_args(e)]
    pieces = [terms[0]] + [("- " + t[1:].lstrip()) if t.startswith("-") else "+ " + t for t in terms[1:]]
    lines = [pieces[0]]
    for piece in pieces[1:]:
        if _width(lines[-1] + piece) > LINE - 8:
            lines.append(piece)
        else:
            lines[-1] += " " + piece
    return [lhs + " &= " + lines[0]] + [r"&\quad " + ln for ln in lines[1:]]


def _fits(M, p: _Printer) -> bool:
    rows, cols = M.shape
    if cols > MAX_MATRIX_COLS or rows > MAX_MATRIX_ROWS:
        return False
    widths = [max(_width(p(M[i, j])) for i in range(rows)) for j in range(cols)]
    return sum(widths) + 2 * cols <= LINE - 10


def _matrix_lines(name: str, M, p: _Printer, *, symmetric: bool = False, arg: str | None = None) -> list[str]:
    """``name(x) = pmatrix`` when it fits the page, otherwise its non-zero entries one per line."""
    M = sp.Matrix(M)
    arg = f"({p.argument})" if arg is None else arg
    if _fits(M, p):
        return [name + arg + " &= " + p.matrix(M)]
    rows, cols = M.shape
    lines = []
    for i in range(rows):
        for j in range(cols):
            if (symmetric and j < i) or M[i, j] == 0:
                continue
            idx = f"{i + 1}" if cols == 1 else f"{i + 1}{j + 1}" if max(rows, cols) < 10 else f"{i + 1},{j + 1}"
            sub = name[:-1] + "," + idx + "}" if name.endswith("}") and "_{" in name else f"{name}_{{{idx}}}"
            lines += _expr_lines(sub + arg, M[i, j], p)
    note = "entries not shown are 0" if any(M[i, j] == 0 for i in range(rows) for j in range(cols)) else ""
    if symmetric:
        note = "symmetric" + ("; " + note if note else "")
    if note:
        lines.append(r"&\text{(" + note + ")}")
    return lines


def _state_lines(state, p: _Printer) -> list[str]:
    """``x = (w_0, w_1)``: what the vector x of f(x, xi), F(x) and b(x) stands for; none when it is x itself."""
    xs = [p(v) for v in state]
    if len(xs) == 1 and xs[0] == p.argument:
        return []
    if len(xs) > 6:
        xs = xs[:3] + [r"\dots"] + xs[-1:]
    return [p.argument + " &= " + (r"\left(" + ", ".join(xs) + r"\right)" if len(state) > 1 else xs[0])]


def _vector_lines(name: str, v, params, p: _Printer, prefix: str = "") -> list[str]:
    cf = compact_vector(v, params, u_name=p.argument)
    if cf is not None:
        lines = [name + f"({p.argument}) &= " + prefix + cf.latex(p)]
        if len(cf.u) <= 4 and _fits(sp.Matrix(v), p):
            lines[0] += " = " + p.matrix(sp.Matrix(v))
        return lines
    lines = _matrix_lines(name, v, p)
    if prefix:
        lines[0] = lines[0].replace(" &= ", " &= " + prefix, 1)
    return lines


def _covariance_lines(name: str, S, params, p: _Printer) -> list[str]:
    cf = compact_matrix(S, params, u_name=p.argument)
    if cf is not None:
        line = name + f"({p.argument}) &= " + cf.latex(p)
        return [line + (" = " + p.matrix(sp.Matrix(S)) if _fits(sp.Matrix(S), p) else "")]
    return _matrix_lines(name, S, p, symmetric=True)


def _printer_for(problem, sdes=()) -> _Printer:
    syms = set(problem.loss.free_symbols) | set(problem.params)
    for law in problem.laws:
        syms |= set(law.symbols) | set(law.free_symbols)  # the law's parameters print as the loss's symbols do
    for s in sdes:
        syms |= set(s.free_symbols) | set(s.state) | set(as_expr(s.eta).free_symbols)
    p = _Printer(syms)
    # the data means' labels are functions of the problem's vector (its names, once: the printer has them)
    p.argument = p.label_argument = _vector_name(problem.params, p.names, problem.data)
    return p


def _vector_name(state, names, others=()) -> str:
    r"""``x`` for the vector of f(x, xi), F(x) or b(x), or ``\boldsymbol{x}`` where ``x = (x, y)`` would name the
    vector and a component alike, or where another symbol of the problem (a data variable) prints as x."""
    printed = [names.get(v) or sp.latex(v) for v in state]
    if (len(printed) > 1 and "x" in printed) or any((names.get(v) or sp.latex(v)) == "x" for v in others):
        return r"\boldsymbol{x}"
    return "x"


def sde_lines(sde, title: bool = True, printer: _Printer | None = None) -> list[str]:
    """Named ``&=`` lines of an SDE: the equation, the drift, the diffusion.

    ``title=False`` leaves out the first line naming the model (a document
    section already names it).
    """
    own = printer is None
    if printer is None and sde.problem is None:
        printer = _Printer(set(sde.free_symbols) | set(sde.state))
    p = printer or _printer_for(sde.problem, [sde])
    with p.section(_vector_name(sde.state, p.names, sde.problem.data if sde.problem is not None else ())):
        lines = _sde_lines(sde, title, p)
    return lines + (p.definitions() if own else [])


def _sde_lines(sde, title: bool, p: _Printer) -> list[str]:
    lines = [r"&\text{" + _text(sde.title) + "}"] if title else []
    if sde.model in ("sme", "smf", "gf") and sde.order == 2:
        bname = r"-\nabla\left(F + \tfrac{" + p(sde.eta) + r"}{4}|\nabla F|^2\right)" + f"({p.argument})"
    elif sde.model in ("sme", "smf", "gf"):
        bname = r"-\nabla F" + f"({p.argument})"
    else:
        bname = ""
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
    lines += _state_lines(sde.state, p)
    lines += _vector_lines("b", sde.drift, sde.state, p, prefix=(bname + " = ") if bname else "")
    if sde.n_noise == 0:
        return lines
    if kind == "sqrt":
        x = p.argument
        lines.append(rf"\sigma({x}) &= " + p(sde.diffusion.scale) + rf"\,\Sigma({x})^{{1/2}} \quad\text{{(numeric matrix square root)}}")
        lines += _covariance_lines(r"\Sigma", sde.diffusion.sigma, sde.state, p)
    elif kind == "template":
        lines += _template_lines(sde, p)
    elif sde.model == "smf":
        D = sde.diffusion
        for k in range(D.shape[1]):
            lines += _matrix_lines(rf"\sigma_{{{k + 1}}}", D[:, k], p)
        if sde.chaos is not None:
            ce = sde.chaos
            note = "exact" if ce.exact else f"truncated at degree {ce.degree}"
            # the columns' own factor: sqrt(eta / B), times sqrt((M - B)/(M - 1)) without replacement
            factor = sde.problem.batch_factor if sde.problem is not None else 1
            scale = sp.sqrt(sde.eta * factor)
            lines.append(r"&\text{noise columns } \sigma_k = -" + p(scale) + r"\,\nabla f_k,\ f_k = \mathbb{E}[f\,e_k]\ \text{(" + note + ")}")
    else:
        lines += _matrix_lines(r"\sigma", sde.diffusion, p)
    lines += _smoothness_lines(sde, p)
    return lines


def _template_lines(sde, p: _Printer) -> list[str]:
    """The M data-set columns: the problem's centred gradients, a data-free lift L of them (a schedule's, momentum's),
    or, where neither applies (an update map's, the noise-corrected momentum SMF's), the column c(x, xi) itself."""
    D, x = sde.diffusion, p.argument
    head = rf"\sigma_i({x}) &= " + p(sde.noise_scale) + r"\sqrt{w_i}\,"
    tail = r",\quad i = 1, \dots, " + str(D.law.size) + r"\quad\text{(data set, numeric)}"
    centred = rf"\big(\nabla F({x}) - \nabla f({x}, \xi_i)\big)"
    if sde.problem is not None and D.lift is None and sde.dim == sde.problem.dim:
        return [head + centred + tail]
    if sde.problem is not None and isinstance(D.lift, sp.MatrixBase):
        return [head + "L" + centred + tail] + _matrix_lines("L", D.lift, p)
    return [head + rf"c({x}, \xi_i)" + tail] + _matrix_lines("c", D.column, p, arg=rf"({x}, \xi)")


def _smoothness_lines(sde, p: _Printer) -> list[str]:
    """State non-differentiability only where it is shown; say "smooth" where Sigma >= c I is proved."""
    shown = []
    for b in sde.nondifferentiable():
        if isinstance(b, sp.Basic):
            shown.append(p(b))
        elif sde.noise_kind == "sqrt" and not bounded_below(sde.diffusion.sigma, sde.state):
            shown.append(rf"\Sigma({p.argument})^{{1/2}} \text{{ where }} \Sigma({p.argument}) \text{{ is singular}}")
    if shown:
        return [r"&\text{not differentiable in } " + p.argument + r"\text{: } " + ", ".join(shown)]
    if sde.noise_kind == "sqrt":
        return [rf"&\text{{smooth: }} \Sigma({p.argument}) \succeq c\,I,\ c > 0"]
    return []


def _law_lines(laws, p: _Printer) -> list[str]:
    """One line per law; consecutive univariate laws with the same distribution are grouped (iid)."""
    lines, i = [], 0
    laws = list(laws)
    while i < len(laws):
        law = laws[i]
        desc = law._latex_law()
        j = i + 1
        if len(law.symbols) == 1:
            while j < len(laws) and len(laws[j].symbols) == 1 and laws[j]._latex_law() == desc:
                j += 1
        syms = [s for lw in laws[i:j] for s in lw.symbols]
        names = [p(s) for s in syms]
        if len(names) > 6:
            names = names[:2] + [r"\dots"] + names[-1:]
        rel = r" \overset{\text{iid}}{\sim} " if j - i > 1 else r" \sim "
        lines.append("& " + ", ".join(names) + rel + _relabel(desc, p))
        i = j
    return lines


def _relabel(desc: str, p: _Printer) -> str:
    """Law descriptions are printed by the laws with sympy's default names: apply ours."""
    for s, name in p.names.items():
        plain = sp.latex(s)
        if plain != name and len(plain) > 1:
            desc = re.sub(r"(?<![\\A-Za-z])" + re.escape(plain) + r"(?![A-Za-z])", lambda _m: name, desc)
    return desc


def problem_lines(problem, printer: _Printer | None = None) -> list[str]:
    own = printer is None
    p = printer or _printer_for(problem)
    with p.section(_vector_name(problem.params, p.names, problem.data)):
        lines = _expr_lines(rf"f({p.argument}, \xi)", problem.loss, p)
        lines += _state_lines(problem.params, p)
        lines += _law_lines(problem.laws, p)
        if problem.batch_size != 1:
            lines.append(r"B &= " + p(problem.batch_size) + r"\quad\text{(" + problem.sampling.replace("_", " ")
                         + ")}")
        lines += _expr_lines(f"F({p.argument})", problem.F, p)
        lines += _vector_lines(r"\nabla F", problem.grad_F, problem.params, p)
        lines += _covariance_lines(r"\Sigma", problem.sigma, problem.params, p)
    return lines + (p.definitions() if own else [])


def wrap(lines: list[str], environment: str | None) -> str:
    body = " \\\\\n".join(lines)
    if environment is None:
        return body
    return f"\\begin{{{environment}}}\n{body}\n\\end{{{environment}}}"


def problem_latex(problem, environment: str | None = "aligned") -> str:
    return wrap(problem_lines(problem), environment)


def derivation_latex(problem, sdes: Iterable = ()) -> str:
    """A standalone LaTeX document: the problem, F, grad F, Sigma and each SDE."""
    sdes = list(sdes)
    p = _printer_for(problem, sdes)
    parts = [r"\documentclass{article}", r"\usepackage{amsmath,amssymb}",
             r"\usepackage[margin=2cm]{geometry}", r"\allowdisplaybreaks", r"\begin{document}",
             r"\section*{Problem}", wrap(problem_lines(problem, p), "align*")]
    for sde in sdes:
        parts.append(r"\section*{" + _text(sde.title[0].upper() + sde.title[1:]) + "}")
        parts.append(wrap(sde_lines(sde, title=False, printer=p), "align*"))
    if p.means:
        parts.append(r"\section*{Data means}")
        parts.append("Means over the data that are not polynomial are computed numerically by the rule named "
                     "on each; every $m_k$ is defined once here.")
        parts.append(wrap(p.definitions(), "align*"))
    parts.append(r"\end{document}")
    return "\n".join(parts) + "\n"


def _is_a(obj, module: str, name: str) -> bool:
    """``isinstance(obj, smfsym.symbolic.<module>.<name>)`` without importing the module (problem and sde import
    this one): an object of the class exists only once its module is loaded."""
    mod = sys.modules.get(f"{__package__}.{module}")
    return mod is not None and isinstance(obj, getattr(mod, name))


def export_tex(problem, sdes: Iterable = (), path: str | Path | None = None, *, overwrite: bool = False) -> str:
    """Write (if ``path`` is given) and return a standalone ``.tex`` of a whole derivation.

    The document compiles with pdflatex for any problem size: wide matrices are
    printed entry by entry, noise columns one per line, long sums broken.

    Parameters
    ----------
    problem : Problem
    sdes : iterable of SDE
        The models to print after the problem (e.g. ``[smfsym.sme(p), smfsym.smf(p)]``).
    path : str or Path, optional
        The file to write (atomically, like :meth:`StudyIO.save <smfsym.studies.storage.StudyIO.save>`).
    overwrite : bool
        Refuse to replace an existing file unless True (the command line's ``--force``).

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
    from .._fs import check_new_file, write_new_file

    if not _is_a(problem, "problem", "Problem"):
        raise TypeError(f"`problem` must be a smfsym.Problem; got {type(problem).__name__}.")
    if isinstance(sdes, (str, bytes)) or _is_a(sdes, "sde", "SDE") or not isinstance(sdes, Iterable):
        raise TypeError(f"`sdes` must be a list of smfsym SDEs (e.g. [smfsym.sme(p)]); got {type(sdes).__name__}.")
    sdes = list(sdes)
    bad = [f"{i}: {type(m).__name__}" for i, m in enumerate(sdes) if not _is_a(m, "sde", "SDE")]
    if bad:
        raise TypeError(f"`sdes` must hold smfsym SDEs (e.g. smfsym.sme(p)); got entries {', '.join(bad)}.")
    if not isinstance(overwrite, bool):
        raise TypeError(f"`overwrite` must be True or False; got {overwrite!r}.")
    if path is not None:
        check_new_file(path, overwrite=overwrite)  # before the derivation, which may take a while
    tex = derivation_latex(problem, sdes)
    if path is not None:
        write_new_file(path, tex, overwrite=overwrite)
    return tex



def standalone_table(tabular: str, caption: str | None = None) -> str:
    r"""A compilable document around a ``tabular`` (booktabs), scaled down to the text width if wider.

    Examples
    --------
    >>> doc = standalone_table(r"\begin{tabular}{rr}\toprule a & b \\ \bottomrule\end{tabular}", "A table")
    >>> r"\resizebox" in doc and doc.rstrip().endswith(r"\end{document}")
    True
    """
    cap = ("\\caption*{" + caption.replace("_", r"\_") + "}\n") if caption else ""
    return "\n".join([
        r"\documentclass{article}", r"\usepackage{amsmath,amssymb,booktabs,graphicx,caption}",
        r"\usepackage[margin=2cm]{geometry}", r"\begin{document}", r"\begin{table}[h]\centering",
        cap + r"\resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}{%",
        tabular, "}", r"\end{table}", r"\end{document}", ""])


def _labelled_text(e, labels: dict) -> str:

    if isinstance(e, (list, tuple)):
        return "[" + ", ".join(_labelled_text(v, labels) for v in e) + "]"
    atoms = e.atoms(DataMean) if isinstance(e, (sp.Basic, sp.MatrixBase)) else set()
    for m in sorted(atoms, key=sp.default_sort_key):
        labels.setdefault(m, sp.Symbol(f"m{len(labels) + 1}(x)"))
    return str(e.xreplace(labels) if atoms else e)


def derivation_text(problem, sdes: Iterable = (), x_ref=None, values=None) -> str:
    """The derivation as plain text: data means labelled ``m1(x)`` and defined once, truncation stated.

    ``x_ref`` (a parameter point) is where the captured noise variance of a
    truncated chaos expansion is reported; without it the truncation degree alone is. ``values`` (numbers for
    the constants and law parameters) is what that evaluation needs where the columns hold them.
    """
    labels: dict = {}
    t = lambda e: _labelled_text(e, labels)  # noqa: E731
    lines = [f"loss f = {problem.loss}"]
    lines += [f"data: {law!r}" for law in problem.laws]
    lines += [f"F = {t(problem.F)}", f"grad F = {t(list(problem.grad_F))}", f"Sigma = {t(problem.sigma.tolist())}"]
    for m in sdes:
        lines.append(f"{m.title}: drift = {t(list(m.drift))}")
        if m.noise_kind == "matrix":
            lines.append(f"  diffusion ({m.diffusion.shape[0]} x {m.diffusion.shape[1]}) = {t(m.diffusion.tolist())}")
        else:
            lines.append(f"  diffusion: {m.noise_kind} ({m.n_noise} noise terms)")
        ce = getattr(m, "chaos", None)
        if m.model == "smf" and ce is not None and not ce.exact and ce.template is None:
            note = f"  noise expansion truncated at total degree {ce.degree} ({ce.n_columns} columns)"
            if x_ref is not None:
                note += f"; captured noise variance at x = {list(x_ref)}: {ce.captured_fraction(x_ref, values):.4%}"
            lines.append(note)
    if labels:
        lines.append("data means (computed numerically by the rule named):")
        for m, sym in labels.items():
            lines.append(f"  {sym} = E[{m.expr}] over {', '.join(map(str, m.data_symbols))} ({m.describe_rule()})")
    return "\n".join(lines) + "\n"
