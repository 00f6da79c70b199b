"""LaTeX of the distribution-dependent SMF (docs/theory.md §6)."""
from __future__ import annotations

import sympy as sp

from ..symbolic.latex import _m, _Printer, wrap
from .._checks import as_expr

__all__ = ["meanfield_latex"]


def meanfield_latex(net, eta=None, environment: str | None = "aligned") -> str:
    """Unit, loss, output as an integral against mu_t, first variation, V, drift, noise and order-2 drift."""
    eta = sp.Symbol("eta", positive=True) if eta is None else as_expr(eta)
    th = _m(sp.Matrix(net.params).T) if net.n_params > 1 else sp.latex(net.params[0])
    z = ", ".join(sp.latex(s) for s in net.inputs)
    out = sp.latex(net.output)
    lines = [r"&\text{distribution-dependent SMF of a two-layer network (mean field)}",
             r"\theta &= " + th,
             r"\phi(\theta, " + z + r") &= " + sp.latex(net.unit),
             r"\ell(" + out + r", \xi) &= " + sp.latex(net.loss)]
    for law in net.laws:
        lines.append(r"& " + law.latex())
    integral = r"\int \phi(\vartheta, " + z + r")\,\mu_t(\mathrm{d}\vartheta)"
    if net.order_parameters:
        lines.append(r"\Phi_{\mu_t}(" + z + r") &= " + integral + " = " + sp.latex(net.output_expr))
        for m, c in net.order_parameters.items():
            lines.append(sp.latex(m) + r" &= \int " + sp.latex(c.xreplace(dict(zip(net.params, _vartheta(net)))))
                         + r"\,\mu_t(\mathrm{d}\vartheta)")
    else:
        lines.append(sp.latex(net.output_expr) + r" &= " + integral)
    # numeric data means are labelled m_k and defined once below (their rule printed there, not in every entry);
    # no symbols given: the network's print as sympy prints them, as in the lines above
    p = _Printer((), argument="")
    lines.append(r"v(\mu_t, \theta, \xi) &= " + sp.latex(net.first_variation))
    lines.append(r"V(\mu_t, \theta) &= \mathbb{E}_\xi\, v = " + p(net.V))
    lines.append(r"\mathrm{d}X_t &= -\nabla_\theta V(\mu_t, X_t)\,\mathrm{d}t + \sqrt{" + sp.latex(eta)
                 + r"}\int \nabla_\theta (V - v)(\mu_t, X_t, \xi)\,W(\mathrm{d}\xi, \mathrm{d}t),"
                 r"\quad \mu_t = \mathrm{Law}(X_t)")
    lines.append(r"G(\mu, \theta) = -\nabla_\theta V &= " + p.matrix(net.drift))
    lines.append(r"\nabla_\theta (V - v) &= " + p.matrix(net.noise))
    if net.batch_size != 1:
        lines.append(r"B &= " + str(net.batch_size) + r"\quad\text{(noise divided by } \sqrt{B}\text{)}")
    lines.append(r"&\text{order 2: } G - \tfrac{" + sp.latex(eta) + r"}{2}\,DG\,G,\quad \delta\Phi(" + z
                 + r") = \int \nabla_\theta\phi(\vartheta, " + z + r")\cdot G(\mu_t, \vartheta)\,\mu_t(\mathrm{d}\vartheta)")
    lines.append(r"(DG\,G)(\theta) &= " + p.matrix(net.DG_G))
    return wrap(lines + p.definitions(), environment)


def _vartheta(net):
    return [sp.Symbol(r"\vartheta_{" + sp.latex(p) + "}") for p in net.params]
