"""The SDE object shared by gradient flow, SME and SMF.

dX = drift(X) dt + diffusion(X) dW, with the diffusion in one of three forms:
- an explicit d x m sympy matrix (m independent Brownian motions);
- :class:`MatrixSqrt`: sqrt(eta) Sigma(x)^{1/2}, the symmetric root computed
  numerically per state (SME where sympy has no closed form);
- :class:`~smfsym.symbolic.noise_expansion.NoiseTemplate`: M numeric columns of a data set (SMF).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import sympy as sp

from .._checks import as_number_or_expr, as_symbol_tuple
from .noise_expansion import NoiseTemplate
from .._checks import as_expr
from .problem import _NONSMOOTH
from .latex import sde_lines, wrap

__all__ = ["SDE", "MatrixSqrt"]


@dataclass(frozen=True)
class MatrixSqrt:
    """Marker for ``scale * Sigma(x)^{1/2}``: evaluated numerically (batched eigh).

    Sigma^{1/2} is in general not differentiable where Sigma is singular
    (docs/theory.md §2), which is why it is kept as a marker.
    """

    sigma: sp.ImmutableMatrix
    scale: sp.Expr

    def latex(self) -> str:
        return sp.latex(self.scale) + r"\,\Sigma(x)^{1/2}"


def _as_column(drift, d):
    M = sp.ImmutableMatrix(drift)
    if M.shape == (1, d) and d != 1:
        M = M.T
    if M.shape != (d, 1):
        raise ValueError(f"`drift` must have {d} entries (one per state variable); got shape {M.shape}.")
    return M


class SDE:
    r"""A stochastic differential equation dX = b(X) dt + sigma(X) dW.

    Parameters
    ----------
    drift : sequence or sympy Matrix
        b(x), one entry per state variable.
    diffusion : sympy Matrix (d x m), MatrixSqrt, NoiseTemplate, or None
        sigma(x); ``None`` for an ODE. A d-vector is read as one column.
    state : sequence of sympy.Symbol
        The state variables x.
    eta : sympy.Symbol or number, optional
        The learning rate symbol appearing in the coefficients. The default is
        ``Symbol("eta", positive=True)``, which sympy holds distinct from a plain
        ``Symbol("eta")``: substitute through this attribute, ``sde.drift.subs(sde.eta, 0.1)``.
    model, order : str, int
        What the SDE is ("gf", "sme", "smf", or "custom") and its weak order
        as an approximation of SGD.

    Examples
    --------
    An Ornstein-Uhlenbeck process:

    >>> import sympy as sp, smfsym
    >>> x = sp.Symbol("x")
    >>> ou = smfsym.SDE([-x], [[1]], state=[x])
    >>> ou.generator(x**2)
    1 - 2*x**2
    """

    def __init__(self, drift: Any, diffusion: Any, state: Sequence[sp.Symbol], *, eta: Any = None,
                 model: str = "custom", order: int | None = None, problem: Any = None, chaos: Any = None,
                 noise_scale: Any = None):
        self.state = as_symbol_tuple(state, "state")
        d = len(self.state)
        self.drift = _as_column(drift, d)
        if diffusion is None:
            diffusion = sp.ImmutableMatrix.zeros(d, 0)
        if isinstance(diffusion, (MatrixSqrt, NoiseTemplate)):
            if isinstance(diffusion, NoiseTemplate) and noise_scale is None:
                raise ValueError("a NoiseTemplate diffusion needs `noise_scale`.")
        else:
            D = sp.ImmutableMatrix(diffusion)
            if D.shape[0] != d and D.shape == (1, d):
                D = D.T
            if D.shape[0] != d:
                raise ValueError(
                    f"`diffusion` must have {d} rows (one per state variable); got shape {D.shape}."
                )
            diffusion = D
        self.diffusion = diffusion
        self.eta = as_number_or_expr(eta, "eta", positive=True) if eta is not None \
            else sp.Symbol("eta", positive=True)
        self.model, self.order = model, order
        self.problem, self.chaos = problem, chaos
        self.noise_scale = as_number_or_expr(noise_scale, "noise_scale") if noise_scale is not None else None
        #: the substitutions :meth:`subs` made, in order: data-set noise reads Sigma from the problem, to which
        #: they are applied when read (noise_covariance, two_point_covariance, generator)
        self._substitutions: tuple = ()
        #: an optimizer's update map whose data-set noise this is (set by UpdateMap): its covariance S(z) and
        #: cross-covariance stand in for the problem's Sigma, which it does not have
        self.update_map = None

    # ------------------------------------------------------------------ structure

    @property
    def dim(self) -> int:
        return len(self.state)

    @property
    def noise_kind(self) -> str:
        """'matrix', 'sqrt' (numeric Sigma^{1/2}) or 'template' (data-set columns)."""
        if isinstance(self.diffusion, MatrixSqrt):
            return "sqrt"
        if isinstance(self.diffusion, NoiseTemplate):
            return "template"
        return "matrix"

    @property
    def n_noise(self) -> int:
        """Number of independent Brownian motions driving the SDE."""
        if self.noise_kind == "sqrt":
            return self.dim
        if self.noise_kind == "template":
            return self.diffusion.n_columns
        return self.diffusion.shape[1]

    @property
    def free_symbols(self) -> set:
        out = set(self.drift.free_symbols)
        if self.noise_kind == "matrix":
            out |= self.diffusion.free_symbols
        elif self.noise_kind == "sqrt":
            out |= self.diffusion.sigma.free_symbols | self.diffusion.scale.free_symbols
        else:
            out |= (self.diffusion.column.free_symbols - set(self.diffusion.law.symbols)) | self.noise_scale.free_symbols
        return out - set(self.state)

    def noise_covariance(self) -> sp.ImmutableMatrix:
        """a(x) = sigma(x) sigma(x)^T (for SME and SMF: eta Sigma(x) when exact)."""
        if self.noise_kind == "sqrt":
            return sp.ImmutableMatrix(self.diffusion.sigma * self.diffusion.scale**2)
        if self.noise_kind == "template":
            if self.problem is None:  # an update map's: Cov A(z, xi)
                return self._substituted(self._template_source().covariance * self.noise_scale**2)
            L = self._template_lift("noise_covariance")
            S = sp.Matrix(self.problem.sigma) / self.problem.batch_factor
            return self._substituted((S if L is None else L * S * L.T) * self.noise_scale**2)
        D = self.diffusion
        return sp.ImmutableMatrix((D * D.T).applyfunc(sp.expand))

    def two_point_covariance(self, y: Sequence[sp.Symbol]):
        """sigma(x) sigma(y)^T: the covariance of the noise seen by two points driven by one W.

        For the SMF this is eta Sigma(x, y) (docs/theory.md §3); for an SME it is
        eta Sigma(x)^{1/2} Sigma(y)^{1/2}, which differs (docs/theory.md §5). A
        numeric matrix square root gives an unevaluated matrix product.
        """
        ys = as_symbol_tuple(y, "y")
        if len(ys) != self.dim:
            raise ValueError(f"`y` must have {self.dim} symbols; got {len(ys)}.")
        sub = dict(zip(self.state, ys))
        if self.noise_kind == "matrix":
            D = self.diffusion
            return sp.ImmutableMatrix((D * D.xreplace(sub).T).applyfunc(sp.expand))
        if self.noise_kind == "template":
            if self.problem is None:
                return self._substituted(self._template_source().cross_covariance(ys) * self.noise_scale**2)
            L = self._template_lift("two_point_covariance")
            # the problem's parameters lead the state (a schedule's time, momentum's velocity follow)
            S = sp.Matrix(self.problem.cross_covariance(ys[:self.problem.dim])) / self.problem.batch_factor
            M = S if L is None else L * S * L.xreplace(sub).T
            return self._substituted(M * self.noise_scale**2)
        S = self.diffusion.sigma
        half = sp.Rational(1, 2)
        return self.diffusion.scale**2 * sp.MatMul(sp.MatPow(S, half, evaluate=False),
                                                   sp.MatPow(S.xreplace(sub), half, evaluate=False),
                                                   evaluate=False)

    def _substituted(self, M) -> sp.ImmutableMatrix:
        for vals in self._substitutions:
            M = M.xreplace(vals)
        return sp.ImmutableMatrix(M)

    def generator(self, phi: Any) -> sp.Expr:
        r"""L phi = b . grad phi + 1/2 tr(sigma sigma^T Hess phi) (docs/theory.md §4)."""
        phi = as_expr(phi)
        x = self.state
        grad = sp.Matrix([sp.diff(phi, v) for v in x])
        out = (self.drift.T * grad)[0, 0]
        a = self.noise_covariance()
        out += sp.Rational(1, 2) * sum(a[i, j] * sp.diff(phi, x[i], x[j])
                                       for i in range(self.dim) for j in range(self.dim) if a[i, j] != 0)
        return sp.expand(out)

    def nondifferentiable(self) -> list:
        """Pieces of the coefficients that are not differentiable in the state (e.g. |x|)."""

        out = []
        if self.noise_kind == "sqrt":
            out.append("Sigma(x)^{1/2} (numeric square root: not differentiable where Sigma is singular)")
        mats = [self.drift] + ([self.diffusion] if self.noise_kind == "matrix" else [])
        for M in mats:
            for a in sorted(set().union(*[e.atoms(*_NONSMOOTH) for e in M]), key=str):
                if a.free_symbols & set(self.state):
                    out.append(a)
        return out

    def subs(self, values) -> "SDE":
        """A copy with ``values`` substituted (e.g. a numeric learning rate)."""
        vals = {}
        for k, v in dict(values).items():
            if not isinstance(k, sp.Symbol):
                raise TypeError(f"`values` keys must be sympy symbols; got {k!r}.")
            vals[k] = as_number_or_expr(v, f"values[{k}]")
        diff = self.diffusion
        if self.noise_kind == "matrix":
            diff = diff.xreplace(vals)
        elif self.noise_kind == "sqrt":
            diff = MatrixSqrt(diff.sigma.xreplace(vals), diff.scale.xreplace(vals))
        else:
            lift = diff.lift.xreplace(vals) if isinstance(diff.lift, sp.MatrixBase) else diff.lift
            diff = NoiseTemplate(diff.column.xreplace(vals), diff.law, lift)
        scale = self.noise_scale.xreplace(vals) if self.noise_scale is not None else None
        out = SDE(self.drift.xreplace(vals), diff, self.state, eta=self.eta.xreplace(vals), model=self.model,
                  order=self.order, problem=self.problem, chaos=self.chaos, noise_scale=scale)
        out._substitutions = self._substitutions + (vals,)
        out.update_map = self.update_map
        return out

    def _template_lift(self, what: str):
        """The data-free L with column = L (grad F - grad f) of a data-set noise built on a problem's (None: L = I)."""
        L = self.diffusion.lift
        if L is False or (L is None and self.dim != self.problem.dim):
            raise NotImplementedError(
                f"{what}: this model's data-set noise columns ({self.model}) are not a data-free linear map of "
                "grad F - grad f(x, xi) (the noise correction differentiates them along the state), so its "
                "covariance has no closed form here; its simulations use the columns themselves.")
        return None if L is None else sp.Matrix(L)

    def _template_source(self):
        if self.update_map is None:
            raise ValueError("this SDE's data-set noise has neither a problem nor an update map to read its "
                             "covariance from; build it with smfsym.smf(problem) or an UpdateMap's smf().")
        return self.update_map

    # ------------------------------------------------------------------ display

    @property
    def title(self) -> str:
        names = {"gf": "gradient flow", "sme": "stochastic modified equation",
                 "smf": "stochastic modified flow", "custom": "SDE"}
        prefix, _, kind = self.model.rpartition("_")
        # an optimizer's models are named "<optimizer>_<kind>" (rmsprop_smf): "rmsprop stochastic modified flow"
        t = f"{prefix} {names[kind]}" if prefix and kind in names else names.get(self.model, self.model)
        return t + (f", order {self.order}" if self.order else "")

    def latex(self, environment: str | None = "aligned") -> str:
        """LaTeX of the SDE with named terms.

        ``environment="aligned"`` (default) gives a block for math mode;
        ``"align"`` a display environment for a document; ``None`` the bare
        ``&=`` lines for an existing align.
        """

        return wrap(sde_lines(self), environment)

    def _repr_latex_(self) -> str:
        return "$$" + self.latex("aligned") + "$$"

    def __repr__(self) -> str:
        return f"SDE({self.title}, d={self.dim}, noise={self.noise_kind} x {self.n_noise})"
