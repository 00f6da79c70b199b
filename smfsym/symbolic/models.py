"""Gradient flow, stochastic modified equations and stochastic modified flows.

docs/theory.md §2 (SME, Li-Tai-E) and section 3 (SMF, Gess-Kassing-Konarovskyi).
"""
from __future__ import annotations

from typing import Any

import sympy as sp

from .._checks import as_number_or_expr
from ..data.means import DataMean
from .problem import Problem
from .model_names import MODEL_REGISTRY
from .sde import SDE, MatrixSqrt

__all__ = ["gradient_flow", "sme", "smf", "default_eta"]


def default_eta() -> sp.Symbol:
    """The learning-rate symbol used when none is given."""
    return sp.Symbol("eta", positive=True)


def _check(problem, order):
    if not isinstance(problem, Problem):
        raise TypeError(f"`problem` must be a smfsym.Problem; got {type(problem).__name__}.")
    if isinstance(order, bool) or order not in (1, 2):
        raise ValueError(f"`order` must be 1 or 2; got {order!r}.")


def _eta(eta):
    """The learning rate: a positive number (python, numpy or sympy) or a sympy expression."""
    return default_eta() if eta is None else as_number_or_expr(eta, "eta", positive=True)


def modified_drift(problem: Problem, order: int, eta: Any) -> sp.ImmutableMatrix:
    """-grad F (order 1) or -grad(F + eta/4 |grad F|^2) = -(grad F + eta/2 Hess F grad F) (order 2)."""
    g = problem.grad_F
    if order == 1:
        return sp.ImmutableMatrix(-g)
    Hg = problem.hessian * g
    expand = sp.expand if problem.is_polynomial else (lambda e: e)
    return sp.ImmutableMatrix([expand(-g[i] - eta / 2 * Hg[i]) for i in range(problem.dim)])


def gradient_flow(problem: Problem, order: int = 1, eta: Any = None) -> SDE:
    """The deterministic gradient flow dX = -grad F dt (order 1; order 2 adds the eta/4 term)."""
    _check(problem, order)
    eta = _eta(eta)
    return SDE(modified_drift(problem, order, eta), None, problem.params, eta=eta, model="gf",
               order=order, problem=problem)


def _sqrt_real(e, params):
    """sqrt(e) with the parameters treated as real, so sqrt(x**2) becomes |x|.

    Data means are held out of the factoring: sp.factor would rewrite their integrands (the overflow-safe
    1/(1 + exp(-a x)) into exp(a x)/(exp(a x) + 1), a square into three exponentials), which overflow to inf/inf
    at the far nodes of a rule (the SME's noise of a logistic loss was NaN beyond |x| = 10).
    """
    real = {p: sp.Symbol(p.name, real=True) for p in params}
    held = {m: sp.Dummy(f"mean{i}", real=True)  # real (a mean of real data), so sqrt(m**2) is |m|
            for i, m in enumerate(sorted(e.atoms(DataMean), key=sp.default_sort_key))}
    back = {v: k for k, v in real.items()}
    back.update({v: k for k, v in held.items()})
    return sp.sqrt(sp.factor(e.xreplace(held).xreplace(real))).xreplace(back)


def sme(problem: Problem, order: int = 2, eta: Any = None) -> SDE:
    r"""Stochastic modified equation of order 1 or 2 (docs/theory.md §2).

    dX = -grad(F + [order 2] eta/4 |grad F|^2) dt + sqrt(eta) Sigma^{1/2} dW.
    Sigma^{1/2} is given in closed form for d = 1 and diagonal Sigma, else as a
    numeric matrix square root marker (:class:`~smfsym.symbolic.sde.MatrixSqrt`).

    Examples
    --------
    docs/theory.md §5: the SME diffusion is |x|, not differentiable at 0.

    >>> import sympy as sp, smfsym
    >>> x = sp.Symbol("x")
    >>> r = smfsym.rademacher("r")
    >>> eq = smfsym.sme(smfsym.Problem((1 + r) * x**2 / 2, [x]), order=2)
    >>> eq.drift
    Matrix([[-eta*x/2 - x]])
    >>> eq.diffusion
    Matrix([[sqrt(eta)*Abs(x)]])
    >>> eq.nondifferentiable()
    [Abs(x)]
    """
    _check(problem, order)
    eta = _eta(eta)
    S = problem.sigma
    d = problem.dim
    root = sp.sqrt(eta)
    if d == 1 or all(S[i, j] == 0 for i in range(d) for j in range(d) if i != j):
        diffusion = sp.ImmutableMatrix(sp.diag(*[root * _sqrt_real(S[i, i], problem.params) for i in range(d)]))
    else:
        diffusion = MatrixSqrt(S, root)
    return SDE(modified_drift(problem, order, eta), diffusion, problem.params, eta=eta, model="sme",
               order=order, problem=problem)


def smf(problem: Problem, order: int = 2, eta: Any = None, degree: int | None = None) -> SDE:
    r"""Stochastic modified flow of order 1 or 2 (docs/theory.md §3).

    Drift as the SME's; noise -sqrt(eta / B) sum_k grad f_k(X) dbeta_k from the
    chaos expansion of the loss (exact for losses polynomial in the data,
    truncated at ``degree`` otherwise), or the M data-set columns.

    Examples
    --------
    >>> import sympy as sp, smfsym
    >>> x = sp.Symbol("x")
    >>> r = smfsym.rademacher("r")
    >>> flow = smfsym.smf(smfsym.Problem((1 + r) * x**2 / 2, [x]), order=2)
    >>> flow.diffusion
    Matrix([[-sqrt(eta)*x]])
    >>> flow.two_point_covariance([sp.Symbol("y")])
    Matrix([[eta*x*y]])
    """
    _check(problem, order)
    eta = _eta(eta)
    ce = problem.chaos(degree)
    scale = sp.sqrt(eta * problem.batch_factor)
    if ce.template is not None:
        return SDE(modified_drift(problem, order, eta), ce.template, problem.params, eta=eta, model="smf",
                   order=order, problem=problem, chaos=ce, noise_scale=scale)
    D = sp.ImmutableMatrix(-scale * ce.columns)
    return SDE(modified_drift(problem, order, eta), D, problem.params, eta=eta, model="smf", order=order,
               problem=problem, chaos=ce)


def build_model(problem: Problem, name: str, eta: Any = None) -> SDE:
    """The SDE a registered model name stands for (:data:`~smfsym.symbolic.model_names.MODEL_REGISTRY`).

    Examples
    --------
    >>> import sympy as sp, smfsym
    >>> from smfsym.symbolic.models import build_model
    >>> x = sp.Symbol("x")
    >>> build_model(smfsym.Problem((x - smfsym.normal("xi")) ** 2 / 2, [x]), "smf1").order
    1
    """
    if name not in MODEL_REGISTRY:
        raise ValueError(f"`models` entries must be among {list(MODEL_REGISTRY)}; got {name!r}.")
    family, order = MODEL_REGISTRY[name]
    return {"gf": gradient_flow, "sme": sme, "smf": smf}[family](problem, order, eta)
