"""The mean-field problem of a wide two-layer network (docs/theory.md §6).

A network of width N with units phi(theta, z) has output Phi_mu(z) = <phi(., z), mu>,
mu the empirical measure of the N unit parameters. :class:`MeanFieldProblem`
derives from the unit, the per-sample loss l(out, y) and the data law

- the first variation v(mu, theta, xi) = d_out l(Phi_mu(z), y) phi(theta, z),
- its theta-gradient and mean V(mu, theta) = E v,
- the DD-SMF: drift -grad_theta V and noise coefficient grad_theta (V - v) acting on a
  cylindrical Wiener process on L^2(nu),
- the order-2 drift G - (eta/2) DG G, with DG including the interaction through the output.

The measure enters only through the output. When the unit is a polynomial in the
inputs, phi = sum_a c_a(theta) z^a, the output is sum_a m_a z^a with *order
parameters* m_a = <c_a, mu> (symbols), and everything is explicit; otherwise the
output is the undefined function Phi(z) and the means stay unevaluated.
"""
from __future__ import annotations

from functools import cached_property
from typing import Any, Iterable

import sympy as sp

from .._checks import as_symbol_tuple
from ..data.means import covariance, data_symbols, expectation, is_polynomial_in, laws_of
from ..data.laws import DataSymbol
from ..symbolic.problem import Problem
from .._checks import as_expr
from ..data.tails import check_tails
from .latex import meanfield_latex

__all__ = ["MeanFieldProblem"]


def _expr(e, name):
    if isinstance(e, str):  # strings are never parsed here: a spec's text goes through smfsym.spec
        raise TypeError(f"`{name}` must be a sympy expression, not a string; got {e!r}.")
    try:
        e = sp.sympify(e, strict=True)
    except (sp.SympifyError, TypeError) as exc:
        raise TypeError(f"`{name}` must be a sympy expression; got {e!r}.") from exc
    if not isinstance(e, sp.Expr) or isinstance(e, (sp.MatrixBase, sp.MatrixExpr)):
        raise TypeError(f"`{name}` must be a scalar sympy expression; got {type(e).__name__}.")
    return e


class MeanFieldProblem:
    r"""Two-layer network in the mean-field scaling: unit, loss, data law.

    Parameters
    ----------
    unit : sympy expression
        The unit phi(theta, z) in the unit parameters and the input data symbols
        (made with :func:`smfsym.normal`, :func:`smfsym.empirical`, ...).
    params : sequence of sympy.Symbol
        The unit parameters theta (p of them).
    output : sympy.Symbol
        The symbol standing for the network output in ``loss``.
    loss : sympy expression
        Per-sample loss l(out, y); labels are data symbols, or a teacher g(z)
        written in the input symbols (e.g. ``(out - sp.tanh(z0)) ** 2 / 2``).
    constants : sequence of sympy.Symbol, optional
        Other symbols allowed in unit and loss (need ``values`` when simulating).
    batch_size : int, default 1
        Samples per SGD step; the noise is divided by sqrt(B).

    Examples
    --------
    docs/theory.md §6. A linear-in-z unit: the output is m z with m = <a w, mu>.

    >>> import sympy as sp, smfsym
    >>> a, w, out = sp.symbols("a w out")
    >>> z = smfsym.normal("z")
    >>> net = smfsym.MeanFieldProblem(a * w * z, (a, w), out, (out - z) ** 2 / 2)
    >>> net.output_expr
    z*m_0
    >>> net.drift.T
    Matrix([[-w*(m_0 - 1), -a*(m_0 - 1)]])
    """

    def __init__(self, unit: Any, params: Iterable[sp.Symbol], output: sp.Symbol, loss: Any, *,
                 constants: Iterable[sp.Symbol] = (), batch_size: int = 1):
        self.unit = _expr(unit, "unit")
        self.loss = _expr(loss, "loss")
        self.params = as_symbol_tuple(params, "params")
        if not self.params:
            raise ValueError("`params` must name at least one unit parameter; got an empty sequence.")
        if any(isinstance(p, DataSymbol) for p in self.params):
            raise ValueError(f"`params` must be ordinary symbols, not data symbols; got {self.params!r}.")
        if not isinstance(output, sp.Symbol) or isinstance(output, DataSymbol):
            raise TypeError(f"`output` must be a plain sympy Symbol; got {output!r}.")
        if output in self.params:
            raise ValueError(f"`output` ({output}) must not be one of `params`.")
        self.output = output
        self.constants = as_symbol_tuple(constants, "constants")
        if not (self.unit.free_symbols & set(self.params)):
            raise ValueError(f"`unit` must depend on the unit parameters {self.params}; got {self.unit}.")
        if output in self.unit.free_symbols:
            raise ValueError(f"`unit` must not contain the output symbol {output}; got {self.unit}.")
        if output not in self.loss.free_symbols:
            raise ValueError(f"`loss` must contain the output symbol `output` = {output}; got {self.loss}.")
        if self.loss.free_symbols & set(self.params):
            raise ValueError(f"`loss` must depend on the parameters only through the output {output}; "
                             f"it contains {sorted(map(str, self.loss.free_symbols & set(self.params)))}.")
        self.inputs = data_symbols(self.unit)
        if not self.inputs:
            raise ValueError(f"`unit` must depend on input data symbols (smfsym.normal, empirical, ...); got {self.unit}.")
        # the single-neuron loss fixes the order of data symbols and laws (as smfsym.Problem does)
        self.data = data_symbols(self.single_loss)
        self.labels = tuple(s for s in self.data if s not in self.inputs)
        self.laws = laws_of(self.data)
        law_params: set = set()
        for law in self.laws:
            law_params |= law.free_symbols
        self.law_parameters = tuple(sorted(law_params, key=sp.default_sort_key))
        allowed = set(self.params) | set(self.data) | set(self.constants) | law_params
        for name, e, extra in (("unit", self.unit, set()), ("loss", self.loss, {output})):
            unknown = e.free_symbols - allowed - extra
            if unknown:
                raise ValueError(f"`{name}` contains symbols that are neither parameters, data, the output nor "
                                 f"declared constants: {', '.join(sorted(map(str, unknown)))}.")
        try:
            B = int(batch_size)
        except (TypeError, ValueError):
            raise TypeError(f"`batch_size` must be a positive integer; got {batch_size!r}.") from None
        if B != batch_size or B < 1:
            raise ValueError(f"`batch_size` must be a positive integer; got {batch_size!r}.")
        self.batch_size = B
        # The means below contain the output Phi(z), an average of units: the tail rule cannot bound an
        # unknown function, so the moments are checked once on the width-1 loss l(phi(theta, z), y),
        # whose growth in the data bounds that of every first variation (docs/theory.md §8).

        check_tails(self.single_loss, [sp.diff(self.single_loss, t) for t in self.params], self.data)

    # ------------------------------------------------------------------ basics

    @property
    def n_params(self) -> int:
        return len(self.params)

    @cached_property
    def single_loss(self) -> sp.Expr:
        """l(phi(theta, z), y): the per-sample loss of a width-1 network."""
        return self.loss.xreplace({self.output: self.unit})

    def single_neuron_problem(self) -> Problem:
        """The finite-dimensional problem of width N = 1 (docs/theory.md §6: N = 1 is plain SGD)."""
        return Problem(self.single_loss, self.params, constants=self.constants, batch_size=self.batch_size)

    @cached_property
    def dloss(self) -> sp.Expr:
        """d_out l(out, y)."""
        return sp.diff(self.loss, self.output)

    @cached_property
    def d2loss(self) -> sp.Expr:
        """d_out^2 l(out, y)."""
        return sp.diff(self.loss, self.output, 2)

    @cached_property
    def unit_gradient(self) -> sp.ImmutableMatrix:
        """grad_theta phi(theta, z), p x 1."""
        return sp.ImmutableMatrix([sp.diff(self.unit, t) for t in self.params])

    @cached_property
    def unit_hessian(self) -> sp.ImmutableMatrix:
        return sp.ImmutableMatrix(sp.hessian(self.unit, self.params))

    @cached_property
    def is_polynomial(self) -> bool:
        """True when the unit is a polynomial in the inputs: the output has finitely many order parameters."""
        return is_polynomial_in(self.unit, self.inputs)

    @cached_property
    def _decomposition(self):
        """[(monomial z^a, c_a(theta), m_a)] with phi = sum c_a z^a, or None."""
        if not self.is_polynomial:
            return None
        poly = sp.Poly(self.unit, *self.inputs)
        out = []
        for i, (monom, coeff) in enumerate(sorted(poly.terms(), key=lambda t: t[0], reverse=True)):
            zmon = sp.Mul(*[s**k for s, k in zip(self.inputs, monom)])
            out.append((zmon, sp.expand(coeff), sp.Symbol(f"m_{i}", real=True)))
        return out

    @cached_property
    def order_parameters(self) -> dict:
        """{m_a: c_a(theta)}: the output is sum_a m_a z^a with m_a = <c_a, mu> (polynomial units only)."""
        if self._decomposition is None:
            return {}
        return {m: c for _, c, m in self._decomposition}

    @cached_property
    def output_expr(self) -> sp.Expr:
        """The output Phi_mu(z): sum_a m_a z^a, or the undefined function Phi(z)."""
        if self._decomposition is None:
            return sp.Function("Phi")(*self.inputs)
        return sp.Add(*[m * zm for zm, _, m in self._decomposition])

    @cached_property
    def _output_direction(self) -> sp.Expr:
        """delta Phi(z) = <grad phi(., z) . G, mu>: the output's derivative along the particle field G."""
        if self._decomposition is None:
            return sp.Function("dPhi")(*self.inputs)
        return sp.Add(*[sp.Symbol(f"n_{i}", real=True) * zm for i, (zm, _, _) in enumerate(self._decomposition)])

    # ------------------------------------------------------------------ the flow

    @cached_property
    def first_variation(self) -> sp.Expr:
        """v(mu, theta, xi) = d_out l(Phi_mu(z), y) phi(theta, z)."""
        return self.dloss.xreplace({self.output: self.output_expr}) * self.unit

    @cached_property
    def grad_v(self) -> sp.ImmutableMatrix:
        """grad_theta v = d_out l(Phi_mu(z), y) grad_theta phi(theta, z)."""
        dl = self.dloss.xreplace({self.output: self.output_expr})
        return sp.ImmutableMatrix([dl * g for g in self.unit_gradient])

    @cached_property
    def V(self) -> sp.Expr:
        """V(mu, theta) = E_xi v(mu, theta, xi) (unevaluated for non-polynomial units)."""
        return expectation(self.first_variation, check_tails=False)  # tails: checked in __init__

    @cached_property
    def grad_V(self) -> sp.ImmutableMatrix:
        if self.is_polynomial:
            return sp.ImmutableMatrix([sp.expand(sp.diff(self.V, t)) for t in self.params])
        return sp.ImmutableMatrix([expectation(g, check_tails=False) for g in self.grad_v])

    @cached_property
    def drift(self) -> sp.ImmutableMatrix:
        """-grad_theta V(mu, theta): the particle field G (order 1), in factored form."""
        return sp.ImmutableMatrix([sp.factor(-g) if self.is_polynomial else -g for g in self.grad_V])

    @cached_property
    def noise(self) -> sp.ImmutableMatrix:
        """grad_theta (V - v)(mu, theta, xi): the coefficient of the cylindrical noise W(dxi, dt)."""
        return sp.ImmutableMatrix([self.grad_V[i] - self.grad_v[i] for i in range(self.n_params)])

    @cached_property
    def noise_covariance(self) -> sp.ImmutableMatrix:
        """Sigma(mu, theta) = Cov_xi(grad_theta v), batch-scaled."""
        S = covariance(list(self.grad_v))
        return S if self.batch_size == 1 else sp.ImmutableMatrix(S / self.batch_size)

    def frozen_problem(self) -> Problem:
        """The first variation as a finite-dimensional loss in theta with the order parameters frozen.

        Its F is V, its Sigma the noise covariance and its chaos expansion the
        noise's basis coefficients (Parseval). Polynomial units only.
        """
        if not self.is_polynomial:
            raise ValueError("`frozen_problem` needs a unit polynomial in the inputs (finitely many order parameters).")
        return Problem(self.first_variation, self.params,
                       constants=tuple(self.order_parameters) + self.constants, batch_size=self.batch_size)

    def order2_drift(self, eta: Any = None) -> sp.ImmutableMatrix:
        r"""G - (eta/2) DG G (docs/theory.md §6), DG through both theta and the output.

        (DG G)(theta) = -E[d_out l(Phi) Hess phi(theta, z) G(theta) + d_out^2 l(Phi) dPhi(z) grad phi(theta, z)]
        with dPhi(z) = <grad phi(., z) . G, mu> (symbols n_a for polynomial units).
        """
        eta = sp.Symbol("eta", positive=True) if eta is None else as_expr(eta)
        return sp.ImmutableMatrix([self.drift[i] - eta / 2 * self.DG_G[i] for i in range(self.n_params)])

    @cached_property
    def DG_G(self) -> sp.ImmutableMatrix:
        G = self.drift
        Phi = self.output_expr
        dl = self.dloss.xreplace({self.output: Phi})
        d2l = self.d2loss.xreplace({self.output: Phi})
        HG = self.unit_hessian * G
        inner = [-(dl * HG[i] + d2l * self._output_direction * self.unit_gradient[i]) for i in range(self.n_params)]
        if self.is_polynomial:
            return sp.ImmutableMatrix([sp.expand(expectation(sp.expand(e), check_tails=False)) for e in inner])
        return sp.ImmutableMatrix([expectation(e, check_tails=False) for e in inner])

    def output_direction_parameters(self) -> dict:
        """{n_a: grad c_a(theta) . G(theta)}: the per-particle integrands of dPhi (polynomial units)."""
        if self._decomposition is None:
            return {}
        G = self.drift
        out = {}
        for i, (_, c, _) in enumerate(self._decomposition):
            out[sp.Symbol(f"n_{i}", real=True)] = sp.expand(sum(sp.diff(c, t) * G[k] for k, t in enumerate(self.params)))
        return out

    # ------------------------------------------------------------------ display

    def latex(self, eta: Any = None) -> str:
        """The whole DD-SMF as an ``aligned`` block, the output written as an integral against mu_t."""

        return meanfield_latex(self, eta)

    def _repr_latex_(self) -> str:
        return "$$" + self.latex() + "$$"

    def __repr__(self) -> str:
        return (f"MeanFieldProblem(unit={self.unit}, params={self.params}, output={self.output}, loss={self.loss}, "
                f"data=[{', '.join(repr(l) for l in self.laws)}], batch_size={self.batch_size})")
