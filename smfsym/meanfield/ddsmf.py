"""The distribution-dependent SMF as an N-particle system (docs/theory.md §6).

dX^i = b(X)^i dt + sqrt(eta / B) sum_j sqrt(w_j) (grad V - grad v(., ., xi_j))(mu^N, X^i) dbeta_j,
one set of M Brownian motions shared by all particles, on a rule of the data law
(exact for a data set). The noise is applied as
sum_j (w_j S - sqrt(w_j) dbeta_j) d_out l_j grad phi(X^i, z_j), S = sum_k sqrt(w_k) dbeta_k:
the increments are contracted before any gradient is touched.

Drift: order 1, b = G = -grad V; order 2, b = G - (eta/2) DG G.

Weak orders: the Euler scheme has weak order 1 in its step dt (Kloeden-Platen 14.1).
Against SGD the flow is a weak approximation of order 1 (order=1) or 2 (order=2) in
eta; with dt = eta the Euler step reproduces one SGD step's mean and covariance
exactly, so the total error against SGD stays O(eta) for ``order=1``. The order-2
flow's advantage shows only when the solver error is smaller: ``richardson=True``
(coupled runs at dt and dt/2, extrapolated) leaves a solver error O(dt^2), so the
order-2 flow at dt = eta is order 2 against SGD.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from ..montecarlo.checks import MEANFIELD_REMEDY
from ..montecarlo.driver import Job, Paths, run
from ..montecarlo.options import RunOptions, SaveAt
from ..montecarlo.increments import draw_normal
from ..backends import get_backend
from .device import DeviceDDSMFStep, DeviceKernel, DeviceObservables
from .data import DataRule, data_rule
from .kernel import Kernel
from .observables import Observables
from .options import MeanFieldNumerics, Observe, refuse_unused, meanfield_settings
from .result import (
    COARSE, MeanFieldResult, PerBlock, check_meanfield_executor, check_work, finish, observables_recipe,
    positive, save_grid, setup,
)

__all__ = ["simulate_ddsmf", "SCHEMES"]

SCHEMES = {"euler": 1.0}

#: The DD-SMF's numerical keywords before :class:`MeanFieldNumerics` (issue 16) -> its fields.
DDSMF_KEYWORDS = {k: k for k in ("dt", "scheme", "order", "richardson", "rule", "n_points")}


def _rule(net, rule, n_points, vals):
    if rule is None:
        return data_rule(net, n_points, vals)
    if not isinstance(rule, DataRule):
        raise TypeError(f"`rule` must be a DataRule (smfsym.meanfield.data_rule); got {type(rule).__name__}.")
    if rule.nodes.shape[1] != len(net.data):
        raise ValueError(f"`rule` must have one column per data symbol {[str(s) for s in net.data]}; "
                         f"got {rule.nodes.shape[1]}.")
    return rule


class _DDSMFStep:
    """One Euler step of the DD-SMF on a chunk of paths; ``functions`` are the observables (per path).

    ``coupled``: the state is (P, 2, N, p), a coarse run (index 0) and a fine one (index 1); one
    step advances the fine run by two Euler steps of h/2 and the coarse one by one step of h driven
    by the sum of the same two Brownian increments (coupled Richardson extrapolation,
    :mod:`smfsym.studies.richardson`). Its ``functions`` give each observable of the fine run and,
    under ``name + "@coarse"``, of the coarse one.
    """

    def __init__(self, kernel, obs, nodes, weights, eta: float, order: int, batch_size: int,
                 coupled: bool = False):
        self.kernel, self.nodes, self.weights = kernel, nodes, weights
        self.eta, self.order, self.batch_size, self.coupled = eta, order, batch_size, coupled
        if coupled:
            self.functions = {}
            for name in obs.names:
                self.functions[name] = PerBlock(_Member(getattr(obs, name), 1))
                self.functions[name + COARSE] = PerBlock(_Member(getattr(obs, name), 0))
        else:
            self.functions = {name: PerBlock(getattr(obs, name)) for name in obs.names}

    def _euler(self, X, h, dbeta, sizes):
        out, lo = np.empty_like(X), 0
        for s in sizes:  # block by block: every path's numbers independent of the chunking (see PerBlock)
            out[lo:lo + s] = X[lo:lo + s] + self.kernel.ddsmf_increment(
                X[lo:lo + s], h, dbeta[lo:lo + s], self.nodes, self.weights, self.eta, order=self.order,
                batch_size=self.batch_size)
            lo += s
        return out

    def __call__(self, X, h, gens, sizes):
        M = self.nodes.shape[0]
        if not self.coupled:
            return self._euler(X, h, np.sqrt(h) * draw_normal(gens, sizes, (M,)), sizes)
        d1 = np.sqrt(h / 2) * draw_normal(gens, sizes, (M,))
        d2 = np.sqrt(h / 2) * draw_normal(gens, sizes, (M,))
        out = np.empty_like(X)
        fine = self._euler(np.ascontiguousarray(X[:, 1]), h / 2, d1, sizes)
        out[:, 1] = self._euler(fine, h / 2, d2, sizes)
        out[:, 0] = self._euler(np.ascontiguousarray(X[:, 0]), h, d1 + d2, sizes)
        return out


class _Member:
    """An observable of one member (0: coarse, 1: fine) of a coupled state (P, 2, N, p); picklable."""

    def __init__(self, fn, index: int):
        self.fn, self.index = fn, index

    def __call__(self, X):
        return self.fn(np.ascontiguousarray(X[:, self.index]))


class DDSMFTask:
    """Plain data from which a worker process compiles :class:`_DDSMFStep` once (see :mod:`smfsym.montecarlo.executors`)."""

    provides_functions = True

    def __init__(self, net, values: dict, obs_recipe: tuple, nodes, weights, eta: float, order: int,
                 batch_size: int, coupled: bool = False):
        self.net, self.values, self.obs_recipe = net, dict(values), obs_recipe
        self.nodes, self.weights, self.eta, self.order, self.batch_size = nodes, weights, eta, order, batch_size
        self.coupled = coupled

    def build(self) -> _DDSMFStep:
        kernel = Kernel(self.net, self.values)
        obs = Observables(self.net, kernel, *self.obs_recipe)
        return _DDSMFStep(kernel, obs, self.nodes, self.weights, self.eta, self.order, self.batch_size,
                          self.coupled)


def simulate_ddsmf(net, theta0, eta: float, t_end: float, *, n_paths: int = 64, seed=None, save_at=None,
                   batch_size: int | None = None, values: Mapping | None = None, observe: Observe | None = None,
                   numerics: MeanFieldNumerics | None = None, options: RunOptions | None = None,
                   **legacy) -> MeanFieldResult:
    """Simulate the DD-SMF particle system of width N = len(theta0).

    Parameters
    ----------
    net : MeanFieldProblem
    theta0 : array_like (N, p)
        Initial particles, the same on every path.
    eta : float
        Learning rate of the SGD it models (noise sqrt(eta), order-2 drift).
    t_end : float
    save_at : sequence of float or SaveAt, optional
        Times to save (default ``[t_end]``); a :class:`~smfsym.SaveAt` may also ask to ``store`` the states.
    numerics : MeanFieldNumerics, optional
        How the DD-SMF is computed (:class:`smfsym.meanfield.MeanFieldNumerics`), with the fields below.
    numerics.dt : float, optional
        Euler step (default eta: one step per SGD step).
    numerics.scheme : {"euler"}
        Euler-Maruyama, weak order 1 in dt.
    numerics.order : {1, 2}
        Drift G or G - (eta/2) DG G.
    numerics.richardson : bool
        Coupled Richardson extrapolation of the Euler scheme's error C dt (Talay-Tubaro): a coarse
        run at ``dt`` and a fine one at ``dt/2`` driven by the same Brownian increments, moments
        extrapolated as 2 E f(fine) - E f(coarse) (see :func:`~smfsym.meanfield.observables.summarize`);
        the solver error is then O(dt^2). Needed for the order-2 flow to be order 2 against SGD at
        ``dt = eta`` (its Euler error C eta would otherwise be of the order-1 size). About 3 times
        the cost of one run at ``dt`` (default off).
    numerics.rule, numerics.n_points : DataRule or int, optional
        The data rule of the noise and drift (default: ``data_rule(net, n_points)``).

    Other parameters are as for :func:`simulate_meanfield_sgd` (``options.executor`` too: bitwise the
    serial numbers on any executor; ``options.backend`` too: the particles of every path, the Brownian
    increments, the Euler steps, plain or Richardson-coupled, and the observables on the device, see
    :mod:`smfsym.meanfield.device`; the data rule is built on the host, once). The old keywords (``dt``, ``scheme``, ``order``, ``richardson``,
    ``rule``, ``n_points``, and those of :func:`simulate_meanfield_sgd`) still work for one release,
    with a ``DeprecationWarning`` and the same numbers.

    Examples
    --------
    >>> import sympy as sp, smfsym
    >>> a, w, out = sp.symbols("a w out")
    >>> z = smfsym.normal("z")
    >>> net = smfsym.MeanFieldProblem(a * sp.tanh(w * z), (a, w), out, (out - sp.tanh(2 * z)) ** 2 / 2)
    >>> th = smfsym.particles(net, 100, seed=0)
    >>> from smfsym.meanfield import MeanFieldNumerics
    >>> res = smfsym.simulate_ddsmf(net, th, eta=0.05, t_end=1.0, n_paths=8, seed=1,
    ...                             numerics=MeanFieldNumerics(n_points=12))
    >>> res.observables["risk"].shape, res.info["rule"]
    ((1, 8, 1), 'Gauss-Hermite(12)')
    """
    cfg = meanfield_settings("simulate_ddsmf", legacy, observe=observe, save_at=save_at, options=options,
                             numerics=numerics, numerics_names=DDSMF_KEYWORDS, backends=True)
    refuse_unused("simulate_ddsmf", cfg.numerics, MeanFieldNumerics(), ("rule_tol", "rule_budget", "limit_dt"),
                  "numerics")
    executor = check_meanfield_executor(cfg.options.executor)  # refused before anything is compiled
    o, nm = cfg.observe, cfg.numerics
    theta0, vals, kernel, obs = setup(net, theta0, values, o.observables, o.risk_rule, o.risk_points, o.inputs)
    scheme, order, richardson = nm.scheme, nm.order, False if nm.richardson is None else nm.richardson
    eta = positive(eta, "eta")
    dt = eta if nm.dt is None else positive(nm.dt, "dt")
    if scheme not in SCHEMES:
        raise ValueError(f"`scheme` must be one of {sorted(SCHEMES)}; got {scheme!r}.")
    if order not in (1, 2):
        raise ValueError(f"`order` must be 1 or 2; got {order!r}.")
    B = net.batch_size if batch_size is None else batch_size
    if not isinstance(B, (int, np.integer)) or isinstance(B, bool) or B < 1:
        raise ValueError(f"`batch_size` must be a positive integer; got {batch_size!r}.")
    rule = _rule(net, nm.rule, nm.n_points, vals)
    nodes, weights = rule.nodes, rule.weights
    with np.errstate(invalid="ignore", divide="ignore"):  # simulate.grid divides 0/0 for a save at t = 0
        steps, index, times = save_grid(t_end, dt, cfg.at)
    M = rule.size
    if not isinstance(richardson, (bool, np.bool_)):
        raise TypeError(f"`richardson` must be True or False; got {richardson!r}.")
    coupled = bool(richardson)
    check_work(len(steps), n_paths, theta0.shape[0], M * order * (3 if coupled else 1), cfg.options.max_work,
               "the DD-SMF")
    backend = get_backend(cfg.options.backend)
    if backend.name != "numpy":  # the particles, increments and observables on the device
        dk = DeviceKernel(net, vals, backend)
        step = DeviceDDSMFStep(dk, DeviceObservables(dk, obs), dk.rule(nodes, weights), eta, order, int(B),
                               coupled, COARSE, theta0.shape[0])
    else:
        step = _DDSMFStep(kernel, obs, nodes, weights, eta, order, int(B), coupled)
    task = (DDSMFTask(net, vals, observables_recipe(obs), nodes, weights, eta, order, int(B), coupled)
            if executor is not None else None)
    x0 = np.stack([theta0, theta0]) if coupled else theta0
    job = Job(step=step, step_sizes=steps, save_index=index, times=times,
              scheme=f"ddsmf-{scheme}" + ("-richardson" if coupled else ""),
              dt_label=float(steps.max()) if steps.size else float(dt), step_times=np.cumsum(steps),
              task=task, remedy=MEANFIELD_REMEDY)
    res = run(job, x0, paths=Paths(n_paths, seed),
              save=SaveAt(functions=step.functions, store=cfg.store, keep_values=True),
              options=cfg.options.replace(executor=executor))
    return finish(res, obs, "ddsmf", eta, theta0.shape[0], order=order, scheme=scheme,
                  weak_order=SCHEMES[scheme], rule=rule.description, rule_size=M, rule_exact=rule.exact,
                  batch_size=int(B), richardson=coupled,
                  **({"richardson_c": 1.0 / (2.0 ** SCHEMES[scheme] - 1.0)} if coupled else {}))
