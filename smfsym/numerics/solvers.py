"""SDE solvers. Each declares its weak order and refuses SDEs it cannot handle.

Registry: :data:`SOLVERS` maps names to classes; :func:`get_solver` accepts a
name, a class or an instance (as ``scipy.integrate.solve_ivp`` does).
"""
from __future__ import annotations

import copy

import numpy as np

__all__ = ["Solver", "EulerMaruyama", "WeakTaylor2", "TamedEuler", "SOLVERS", "get_solver"]


class Solver:
    """Base class. ``n_draws`` standard normal vectors of length m are used per step."""

    name = "solver"
    weak_order = 0.0
    n_draws = 1
    #: With ``increments="discrete"``: the kind of each of the n_draws normal vectors ("two" or
    #: "three"-point variables matching the normal moments the weak order needs); None if not valid.
    discrete = None
    #: The kinds a coupled coarse/fine run (Richardson extrapolation, :mod:`smfsym.studies.richardson`)
    #: draws instead, where they differ: its coarse step takes the scaled sum of two fine increments,
    #: whose moments must match the normal ones as far as the error constant of the scheme reads them,
    #: not only as far as its order does (None: ``discrete``).
    coupled_discrete = None

    def coupled(self) -> "Solver":
        """This scheme as a coupled run draws it: ``discrete`` replaced by ``coupled_discrete``."""
        if self.coupled_discrete is None or self.coupled_discrete == self.discrete:
            return self
        twin = copy.copy(self)
        twin.discrete = self.coupled_discrete
        return twin

    def prepare(self, nsde) -> None:
        """Compile what the scheme needs; raise ValueError if it cannot handle the SDE."""

    def step(self, nsde, X: np.ndarray, dt: float, Z: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def op_counts(self, nsde) -> dict:
        """Array operations per path-step of the compiled expressions a step evaluates, by term
        (hoisted front once, each back times its stacked directions), and of the step's own
        combination arithmetic ("combine"); data means not included. For benchmarks/bench_floor.py."""
        raise NotImplementedError(f"{type(self).__name__} does not count its operations")

    def __repr__(self):
        return f"{type(self).__name__}(weak_order={self.weak_order})"


class EulerMaruyama(Solver):
    r"""Euler-Maruyama: X + b dt + sigma sqrt(dt) Z. Weak order 1 (Kloeden-Platen 14.1)."""

    name = "euler"
    weak_order = 1.0
    n_draws = 1
    discrete = ("two",)  # +-sqrt(dt): moments 1-3 of dW (Kloeden-Platen 14.1.7)
    # Euler's O(dt) error constant reads E dW^4 (docs/theory.md §9): the scaled sum of two +-1 has E Z^4 = 2, not
    # the fine step's 1, so coupled runs draw three-point increments (E Z^4 = 3 for them and for their sums)
    coupled_discrete = ("three",)

    def step(self, nsde, X, dt, Z):
        if nsde.kind == "template":
            # drift and data-set noise in one pass over the data (shared per-row scalars where the
            # linear-algebra form applies; the general path computes them one after the other)
            b, N = nsde.drift_noise(X, Z[:, 0], np.sqrt(dt))
            return X + dt * b + N
        if nsde.kind != "matrix" or not nsde.m:
            out = X + dt * nsde.drift(X)
            if nsde.m:
                out += nsde.noise(X, np.sqrt(dt) * Z[:, 0])
            return out
        # sigma(X) (sqrt(dt) Z) = sqrt(dt) sigma(X) Z: scale the d outputs, not the m inputs; the
        # state-only parts of drift and noise come from one hoisted front
        plan = nsde.euler_plan
        xc = nsde.state_cols(X)
        H = plan.front_values(xc, nsde.shared_means(plan.front, X, {}))
        b = plan.term("drift", xc, H)
        N = plan.term("noise", xc, H, nsde.dir_cols(Z[:, 0], X))
        sq = np.sqrt(dt)
        out = np.empty(X.shape)
        for i in range(nsde.d):
            out[..., i] = xc[i] + dt * b[i] + sq * N[i]
        return out


    def op_counts(self, nsde):
        if nsde.kind != "matrix" or not nsde.m:
            return super().op_counts(nsde)
        c = nsde.euler_plan.op_counts()
        return {"front": c["front"], "noise": c["noise"], "combine": 4 * nsde.d}


class WeakTaylor2(Solver):
    r"""Simplified weak Taylor 2.0 scheme (Kloeden-Platen 14.2.1) with symbolic derivatives.

    Why this scheme: smfsym has the coefficients symbolically, so the derivative
    terms L^0 b, L^j b, L^0 sigma^j and L^{j1} sigma^{j2} of the weak Taylor
    expansion cost a sympy ``diff`` at compile time, and handle general
    multi-dimensional, non-commuting Ito noise (Talay-Tubaro extrapolation would
    give only expectations, not paths; a Roessler Runge-Kutta scheme needs 2m+1
    diffusion stages, too many for an SMF with hundreds of columns).

    With dW ~ N(0, dt I_m), sigma dW the noise action and D_v the directional derivative,

        X' = X + b dt + sigma dW
             + dt^2/2 (D_b b + 1/2 D^2_{sigma zeta} b)
             + dt/2 (D_b (sigma dW) + 1/2 D^2_{sigma zeta}(sigma dW) + D_{sigma dW} b)
             + 1/2 (D_{sigma dW}(sigma dW) - dt sum_j D_{sigma_j} sigma_j
                    + dt/sqrt(2) (D_{sigma alpha}(sigma beta) - D_{sigma beta}(sigma alpha))).

    The generator's trace terms sum_k D^2_{sigma_k} are replaced by one Gaussian
    direction zeta ~ N(0, I_m), unbiased and entering at order dt^{3/2} or
    higher; the two-point variables V_{j1 j2} (j1 != j2) of the scheme are
    replaced by V = dt (alpha beta^T - beta alpha^T)/sqrt(2) with alpha, beta ~
    N(0, I_m): antisymmetric, mean zero, E V_{j1 j2}^2 = dt^2 and uncorrelated
    across pairs, the only moments weak order 2 needs. That turns the m(m-1)/2
    Lie-bracket terms into two directional derivatives. V_{jj} = -dt is kept
    exact through the Ito-Stratonovich vector sum_j D_{sigma_j} sigma_j.

    Weak order 2, verified in the tests by fitted slopes on SDEs with exact
    moments (non-commuting noise included). Needs explicit noise columns: a matrix, or the M
    columns of a data set (an SMF on an empirical law, :meth:`_step_dataset`), whose derivatives
    and Ito-Stratonovich vector are data-set sums; not a numeric square root of Sigma.
    """

    name = "weak2"
    weak_order = 2.0
    n_draws = 4
    # three-point dW (moments 1-5, Kloeden-Platen 14.2.3); zeta, alpha, beta need only their
    # second moments (the trace surrogate and E V_{j1 j2}^2 = dt^2): two-point
    discrete = ("three", "two", "two", "two")

    def prepare(self, nsde):
        # compiles, or raises for noise it cannot differentiate
        nsde.dataset_weak2_plan if nsde.kind == "template" else nsde.weak2_plan

    def step(self, nsde, X, dt, Z):
        if nsde.kind == "template":
            return self._step_dataset(nsde, X, dt, Z)
        # Every term is evaluated at X: the state-only parts of all of them (data means included)
        # come from one hoisted front, computed once per step. Linearity regroups
        # the formula above into fewer evaluations (exact algebra, floating-point reassociation only):
        #   dt^2/2 D_b b + dt/2 D_{sigma dW} b       = dt/2 D_v b,                 v = dt b + sigma dW
        #   dt/2 D_b(sigma dW) + 1/2 D_{sigma dW}(sigma dW) = sqrt(dt)/2 D_v(sigma Z0),  dW = sqrt(dt) Z0
        #   dt/4 D^2_{sigma zeta}(sigma dW)          = dt^{3/2}/4 D^2_{sigma zeta}(sigma Z0)
        # and the four noise actions sigma(Z0), sigma(zeta), sigma(alpha), sigma(beta) are two
        # evaluations on stacked pairs of directions, the two Levy-area derivatives one.
        plan = nsde.weak2_plan
        d = nsde.d
        xc = nsde.state_cols(X)
        H = plan.front_values(xc, nsde.shared_means(plan.front, X, {}))
        b = plan.term("drift", xc, H)
        out = np.empty(X.shape)
        if nsde.m == 0:
            Db_b = plan.term("da", xc, H, b)
            for i in range(d):
                out[..., i] = xc[i] + dt * b[i] + 0.5 * dt**2 * Db_b[i]
            return out
        sq = np.sqrt(dt)
        # the four noise actions in two stacked pairs: temporaries of 2 x 4096 paths stay under glibc's
        # 128 KiB mmap threshold (a 4 x 4096 one is a fresh mmap, page-faulted, wherever that
        # threshold is fixed, as in Dask's workers)
        z0 = nsde.dir_cols(Z[:, 0], X)
        second = not (plan.is_zero("d2a") and plan.is_zero("d2g"))
        if second:
            N01 = plan.term("noise", xc, H, nsde.dir_cols(Z[:, 0:2], X, axis=True))  # d arrays (2, P[, n])
            n0, s_zeta = [a[0] for a in N01], [a[1] for a in N01]
        else:  # zeta enters through second derivatives only: its noise action is not needed (a quarter of them)
            n0 = plan.term("noise", xc, H, z0)
        N23 = plan.term("noise", xc, H, nsde.dir_cols(Z[:, 2:4], X, axis=True))
        v = [dt * b[i] + sq * n0[i] for i in range(d)]  # dt b + sigma dW
        acc = [xc[i] + v[i] for i in range(d)]

        def add(c, terms):
            for i in range(d):
                acc[i] += c * terms[i]

        add(0.5 * dt, plan.term("da", xc, H, v))
        add(0.5 * sq, plan.term("dg", xc, H, v + z0))
        ito = plan.term("ito", xc, H)
        add(-0.5 * dt, ito)
        if not plan.is_zero("d2a"):
            add(0.25 * dt**2, plan.term("d2a", xc, H, s_zeta))
        if not plan.is_zero("d2g"):
            add(0.25 * dt * sq, plan.term("d2g", xc, H, s_zeta + z0))
        # Levy-area surrogate: D_{sigma alpha}(sigma beta) - D_{sigma beta}(sigma alpha) as one evaluation
        # on the directions (alpha, beta) against the increments (beta, alpha)
        area = plan.term("dg", xc, H, list(N23) + nsde.dir_cols(Z[:, 3:1:-1], X, axis=True))
        c = 0.5 * dt / np.sqrt(2.0)
        for i in range(d):
            out[..., i] = acc[i] + c * (area[i][0] - area[i][1])
        return out

    @staticmethod
    def _step_dataset(nsde, X, dt, Z):
        """The same scheme on data-set noise: the noise actions and their directional derivatives
        are data-set sums (:meth:`NumericSDE.dataset_action`), the rest as in :meth:`step`."""
        plan = nsde.dataset_weak2_plan
        xc = nsde.state_cols(X)
        H = nsde.dataset_front(X, xc)

        def term(name, V=None):
            dirs = [] if V is None else [V[..., j] for j in range(nsde.d)]
            return np.stack(plan.term(name, xc, H, dirs), axis=-1)

        sq = np.sqrt(dt)
        U = np.moveaxis(Z, 1, 0)  # (4, P, M): dW / sqrt(dt), zeta, alpha, beta
        N0, Nz, Na, Nb = nsde.dataset_action(X, xc, H, U, 0)
        b = term("drift")
        v = dt * b + sq * N0  # dt b + sigma dW
        # D_v(sigma Z0), D_{sigma alpha}(sigma beta), D_{sigma beta}(sigma alpha): one stacked call
        G1 = nsde.dataset_action(X, xc, H, U[[0, 3, 2]], 1, np.stack([v, Na, Nb]))
        G2 = nsde.dataset_action(X, xc, H, U[:1], 2, Nz[None])[0]
        out = X + v
        out += 0.5 * dt * term("da", v)
        out += 0.5 * sq * G1[0]
        out += -0.5 * dt * term("ito")
        out += 0.25 * dt**2 * term("d2a", Nz)
        out += 0.25 * dt * sq * G2
        out += 0.5 * dt / np.sqrt(2.0) * (G1[1] - G1[2])
        return out

    def op_counts(self, nsde):
        if not nsde.m:
            return super().op_counts(nsde)
        c = nsde.weak2_plan.op_counts()
        out = {"front": c["front"], "noise": 4 * c["noise"], "da": c["da"], "dg": 3 * c["dg"]}
        extra = 0
        for name, mult in (("d2a", 1), ("d2g", 1)):
            if not nsde.weak2_plan.is_zero(name):
                out[name] = mult * c[name]
                extra += 2
        # per component: v (3), acc (1), three scaled accumulations (6), area (3), and the d2 terms
        out["combine"] = nsde.d * (13 + extra)
        return out


class TamedEuler(Solver):
    r"""Increment-tamed Euler-Maruyama for stiff or superlinearly growing coefficients. Weak order 1.

    With the Euler increment D = b(X) dt + sigma(X) dW (dW ~ N(0, dt I_m)),

        X' = X + D / (1 + sqrt(dt) |D|).

    Every step moves at most 1/sqrt(dt), so a path can never overflow, whatever
    the growth of b and sigma (explicit Euler explodes on drifts like -x^3 or
    noise like x^2 once a path leaves the stable region; Hutzenthaler, Jentzen,
    Kloeden 2011 show the moments of explicit Euler then diverge). The taming of
    the whole increment follows Hutzenthaler and Jentzen's increment-tamed
    scheme (Mem. AMS 2015), which also covers superlinear diffusions, with the
    denominator 1 + sqrt(dt)|D| (Sabanis 2016 tames with sqrt(dt) as well).

    Why weak order 1 (docs/theory.md §9): D/(1 + sqrt(dt)|D|) = D - sqrt(dt)|D| D
    + O(dt^{5/2}); |D| D is odd in dW up to O(dt^{3/2}) so its mean is O(dt^{3/2})
    and the mean of the correction O(dt^2); its contribution to the second moment
    is sqrt(dt) E|D|^3 = O(dt^2). The local weak error is O(dt^2), the global one
    O(dt) - the order of explicit Euler, fitted in the tests. Where explicit
    Euler is stable the two differ by O(dt); where it is not, this scheme keeps
    every path finite and the study can report the result.
    """

    name = "tamed"
    weak_order = 1.0
    n_draws = 1
    discrete = ("two",)  # the order argument uses moments 1-3 of dW only
    coupled_discrete = ("three",)  # as Euler's: the error constant reads E dW^4

    def step(self, nsde, X, dt, Z):
        D = dt * nsde.drift(X)
        if nsde.m:
            D = D + nsde.noise(X, np.sqrt(dt) * Z[:, 0])
        norm = np.sqrt(np.einsum("...i,...i->...", D, D))[..., None]
        with np.errstate(invalid="ignore"):
            # an infinite increment (coefficients overflowing at a finite state) becomes its direction
            tamed = np.where(np.isinf(norm), np.sign(D) / np.sqrt(dt), D / (1.0 + np.sqrt(dt) * norm))
        return X + tamed


SOLVERS = {"euler": EulerMaruyama, "euler_maruyama": EulerMaruyama, "em": EulerMaruyama,
           "weak2": WeakTaylor2, "weak_taylor2": WeakTaylor2,
           "tamed": TamedEuler, "tamed_euler": TamedEuler}


def get_solver(scheme) -> Solver:
    """A solver instance from a name, a Solver class or an instance."""
    if isinstance(scheme, Solver):
        return scheme
    if isinstance(scheme, type) and issubclass(scheme, Solver):
        return scheme()
    if isinstance(scheme, str) and scheme.lower() in SOLVERS:
        return SOLVERS[scheme.lower()]()
    raise ValueError(f"`scheme` must be one of {sorted(SOLVERS)} or a Solver; got {scheme!r}.")
