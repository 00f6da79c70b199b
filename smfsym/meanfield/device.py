"""The mean-field simulators on an array back end other than numpy (issue 19; :mod:`smfsym.backends`).

What runs on the device, per seed block of paths: the particle states (paths x N x p, or paths x 2 x N x p
for a Richardson-coupled DD-SMF), the factored unit and its derivatives (:class:`DeviceFactored`: the
lambdified factors of :mod:`.factored` for the back end's namespace, contracted by batched matmuls), the
loss derivatives on the data rule, the Brownian increments (``standard_normal`` of each seed block's
stream) or the SGD batches (the device samplers of :mod:`smfsym.simulation.device_sgd`), and the
observables (risk, output at inputs, particle moments). The driver's device loop
(:func:`~smfsym.montecarlo.device.run_blocks_device`) keeps the blow-up checks there and brings back, at
the saved times, each seed block's ``(count, mean, M2)`` and the per-path values of the observables (k
numbers per path: the :class:`~smfsym.meanfield.result.MeanFieldResult` keeps them for its variance
standard errors and the Richardson extrapolation). The particle states never come back unless
``store=True`` asks for them.

Every evaluation is made seed block by seed block (4096 paths), in slices of paths that depend on the block
alone, so a path's numbers do not depend on the chunking. The numbers differ from numpy's (other random
streams) and agree statistically (tests/meanfield/test_meanfield_backends.py).

Examples
--------
>>> import sympy as sp, smfsym
>>> from smfsym.meanfield import MeanFieldNumerics, MeanFieldOptions
>>> a, w, out = sp.symbols("a w out")
>>> z = smfsym.normal("z")
>>> net = smfsym.MeanFieldProblem(a * sp.tanh(w * z), (a, w), out, (out - sp.tanh(2 * z)) ** 2 / 2)
>>> th = smfsym.particles(net, 50, seed=0)
>>> res = smfsym.simulate_ddsmf(net, th, eta=0.05, t_end=0.5, n_paths=8, seed=1,
...                             numerics=MeanFieldNumerics(n_points=8),
...                             options=MeanFieldOptions(backend="array_api_strict"))
>>> res.sim.extra["backend"], res.observables["risk"].shape
('array_api_strict', (1, 8, 1))
"""
from __future__ import annotations

import math

import numpy as np

from ..symbolic.lambdify import CompiledExprs
from ..simulation.device_sgd import _DeviceSampler
from ..montecarlo.device import DEVICE_SHARE
from ..montecarlo.seeds import BLOCK
from .factored import FactoredExprs

__all__ = ["DeviceFactored", "DeviceKernel", "DeviceRule", "DeviceObservables", "DeviceDDSMFStep",
           "DeviceMeanFieldSGDStep"]

#: Elements of one (paths, particles, nodes) grid per evaluation on a device (paths of a block are
#: taken in slices of at most this many grid elements per factor).
DEVICE_SLAB = 2**24


def _concat(xp, parts, axis=0):
    return parts[0] if len(parts) == 1 else xp.concat(parts, axis=axis)


class DeviceFactored(FactoredExprs):
    """:class:`~smfsym.meanfield.factored.FactoredExprs` on an array back end: the same factors, lambdified
    for ``backend``'s namespace, and its contractions as batched matmuls there."""

    def __init__(self, exprs, params, inputs, values, backend):
        super().__init__(exprs, params, inputs, values, backend=backend)
        self.backend, self.xp = backend, backend.xp

    def _out(self, ce, cols, shape):
        return [self.backend.broadcast(o, shape) for o in ce.fn(*cols)]

    def evaluate(self, X, zcols, zcols_flat):
        """Factor values A (P, N), B (P, N, M), C (P or 1, M) on the device (see FactoredExprs.evaluate)."""
        xp = self.xp
        th = [X[..., r] for r in range(X.shape[-1])]
        PN = tuple(X.shape[:2])
        flat_shape = np.broadcast_shapes(*[tuple(c.shape) for c in zcols_flat]) if zcols_flat else (1, 1)
        M = flat_shape[-1]
        A = self._out(self._A, th, PN) if self._A is not None else None
        C = self._out(self._C, zcols_flat, flat_shape) if self._C is not None else None
        B = None
        if self._B is not None:
            lins = []
            for ca, cc in self._lin:
                a = xp.stack(self._out(ca, th, PN), axis=-1)  # (P, N, k)
                c = xp.stack(self._out(cc, zcols_flat, flat_shape), axis=-2)  # (P or 1, k, M)
                lins.append(xp.matmul(a, c))
            B = self._out(self._B, [t[..., None] for t in th] + lins + list(zcols), PN + (M,))
        return A, B, C

    def mean_over_particles(self, r, vals, weights=None):
        """(1/N) sum_i weights_i e_r(theta_i, z_j): (P, M)."""
        A, B, C = vals
        xp = self.xp
        P, N = A[0].shape[0], A[0].shape[1]
        out = self.backend.zeros((P, max(c.shape[-1] for c in C)))
        for a, b, c in self.terms[r]:
            wa = A[a] if weights is None else A[a] * weights
            s = xp.sum(wa, axis=1)[:, None] if b is None else xp.matmul(wa[:, None, :], B[b])[:, 0, :]
            out = out + s * C[c]
        return out / N

    def contract(self, r, vals, coef):
        """sum_j e_r(theta_i, z_j) coef[P, j]: (P, N)."""
        A, B, C = vals
        xp = self.xp
        out = 0.0
        for a, b, c in self.terms[r]:
            cc = C[c] * coef  # (P, M)
            s = xp.sum(cc, axis=1)[:, None] if b is None else xp.matmul(B[b], cc[:, :, None])[..., 0]
            out = out + A[a] * s
        return self.backend.broadcast(out, tuple(A[0].shape[:2]))


class DeviceRule:
    """A data rule's columns on the device: inputs ``z`` (1, 1, M) and ``zf`` (1, M), data ``d`` (1, M),
    weights ``w`` and their square roots ``sw`` (M,)."""

    def __init__(self, kernel: "DeviceKernel", nodes, weights):
        b = kernel.backend
        nodes = np.asarray(nodes, dtype=float)
        self.M = nodes.shape[0]
        self.d = [b.asarray(nodes[None, :, i]) for i in range(nodes.shape[1])]
        self.zf = [self.d[i] for i in kernel.input_index]
        self.z = [b.asarray(nodes[None, None, :, i]) for i in kernel.input_index]
        self.w = b.asarray(weights)
        self.sw = b.asarray(np.sqrt(np.asarray(weights, dtype=float)))


class DeviceKernel:
    """:class:`~smfsym.meanfield.kernel.Kernel` on an array back end: the DD-SMF and SGD increments and the
    network output, for one seed block of paths at a time (in slices of paths bounded by
    :data:`DEVICE_SLAB`; a single path's (particles x nodes) grid is not split)."""

    def __init__(self, net, values, backend):
        self.net, self.backend, self.xp = net, backend, backend.xp
        self.p = net.n_params
        self.vals = dict(values or {})
        self.input_index = [net.data.index(s) for s in net.inputs]
        self.g0 = DeviceFactored([net.unit], net.params, net.inputs, self.vals, backend)
        self.g1 = DeviceFactored([net.unit, *net.unit_gradient], net.params, net.inputs, self.vals, backend)
        self._g2 = None
        out = net.output
        self.dl = CompiledExprs([net.dloss], (out,), self.vals, net.data, backend=backend)
        self.loss = CompiledExprs([net.loss], (out,), self.vals, net.data, backend=backend)
        self._d2l = None

    @property
    def g2(self) -> DeviceFactored:
        if self._g2 is None:
            H = self.net.unit_hessian
            self._g2 = DeviceFactored([self.net.unit, *self.net.unit_gradient,
                                       *[H[r, s] for r in range(self.p) for s in range(self.p)]],
                                      self.net.params, self.net.inputs, self.vals, self.backend)
        return self._g2

    def d2l(self, Phi, d):
        if self._d2l is None:
            self._d2l = CompiledExprs([self.net.d2loss], (self.net.output,), self.vals, self.net.data,
                                      backend=self.backend)
        return self._d2l.evaluate_list([Phi, *d], mean_vals=[], shape=tuple(Phi.shape))[0]

    def rule(self, nodes, weights) -> DeviceRule:
        return DeviceRule(self, nodes, weights)

    def check_fits(self, N: int, M: int, order: int = 1) -> None:
        """MemoryError, before a run, when one path's (particles x nodes) grids do not fit on the device
        (they are not split: a path is the smallest slice)."""
        free = self.backend.free_memory()
        fx = self.g1 if order == 1 else self.g2
        need = 8 * N * M * (fx.nB + len(fx._lin) + 4)
        if free is not None and need > DEVICE_SHARE * free:
            raise MemoryError(f"one path of N = {N} particles on {M} data nodes needs about {need / 2**30:.2f} GiB of "
                              f"grids on backend {self.backend.name!r}, over the {DEVICE_SHARE * free / 2**30:.2f} GiB "
                              "available: reduce N or the data rule's nodes, or use backend='numpy' (which splits "
                              "the particles).")

    def slices(self, P: int, N: int, M: int, factors: int) -> list:
        step = max(1, DEVICE_SLAB // max(1, N * M * factors))
        return [slice(lo, min(P, lo + step)) for lo in range(0, P, step)]

    def _fn(self, ce, Phi, d):
        return ce.evaluate_list([Phi, *d], mean_vals=[], shape=tuple(Phi.shape))[0]

    def _grads(self, fx, vals, coef):
        return self.xp.stack([fx.contract(1 + r, vals, coef) for r in range(self.p)], axis=-1)

    def output(self, X, zcols):
        """Network output Phi(z_j) (P, M) at states (P, N, p); ``zcols`` (1, 1, M)."""
        zf = [c[:, 0, :] for c in zcols]
        P, N, M = X.shape[0], X.shape[1], zf[0].shape[-1]
        parts = [self.g0.mean_over_particles(0, self.g0.evaluate(X[sl, ...], zcols, zf))
                 for sl in self.slices(P, N, M, self.g0.nB + 1)]
        return _concat(self.xp, parts)

    def ddsmf_increment(self, X, h: float, dbeta, rule: DeviceRule, eta: float, order: int = 1,
                        batch_size: int = 1):
        """Euler increment of the DD-SMF (see Kernel.ddsmf_increment) of one seed block; ``dbeta`` (P, M)."""
        fx = self.g1 if order == 1 else self.g2
        parts = [self._ddsmf_slice(X[sl, ...], h, dbeta[sl, ...], rule, eta, order, batch_size, fx)
                 for sl in self.slices(X.shape[0], X.shape[1], rule.M, fx.nB + 1)]
        return _concat(self.xp, parts)

    def _ddsmf_slice(self, X, h, db, rule, eta, order, batch_size, fx):
        xp = self.xp
        vals = fx.evaluate(X, rule.z, rule.zf)
        Phi = fx.mean_over_particles(0, vals)  # (Ps, M)
        dl = self._fn(self.dl, Phi, rule.d)
        S = xp.matmul(db, rule.sw)  # (Ps,)
        scale = math.sqrt(eta / batch_size)
        coef = -h * rule.w * dl + scale * (rule.w * S[:, None] - rule.sw * db) * dl
        out = self._grads(fx, vals, coef)
        if order == 1:
            return out
        # G - (eta/2) DG G = G + (eta/2) sum_j w_j [dl_j H G + d2l_j dPhi_j grad phi]
        G = self._grads(fx, vals, -rule.w * dl)
        return out + self._second(fx, vals, G, rule.w, dl, self.d2l(Phi, rule.d), h * eta / 2)

    def _second(self, fx, vals, G, w, dl, d2l, scale):
        """scale * sum_j w_j [dl_j Hess phi(X_i, z_j) G_i + d2l_j dPhi_j grad phi(X_i, z_j)], dPhi along G."""
        p, xp = self.p, self.xp
        dPhi = sum(fx.mean_over_particles(1 + r, vals, weights=G[..., r]) for r in range(p))
        first = self._grads(fx, vals, scale * w * d2l * dPhi)
        cw = scale * w * dl
        cols = []
        for r in range(p):
            col = first[..., r]
            for s_ in range(p):
                col = col + G[..., s_] * fx.contract(1 + p + r * p + s_, vals, cw)
            cols.append(col)
        return xp.stack(cols, axis=-1)

    def sgd_increment(self, X, data: list, eta: float):
        """-eta/B sum_b dl(Phi(z_b), y_b) grad phi(theta_i, z_b) of one seed block; ``data`` (P, B) columns."""
        B = data[0].shape[1]
        parts = []
        for sl in self.slices(X.shape[0], X.shape[1], B, self.g1.nB + 1):
            ds = [c[sl, ...] for c in data]
            zf = [ds[i] for i in self.input_index]
            vals = self.g1.evaluate(X[sl, ...], [c[:, None, :] for c in zf], zf)
            dl = self._fn(self.dl, self.g1.mean_over_particles(0, vals), ds)
            parts.append(self._grads(self.g1, vals, -(eta / B) * dl))
        return _concat(self.xp, parts)


class DeviceObservables:
    """The observables of :class:`~smfsym.meanfield.observables.Observables` (``obs``: names, risk rule,
    inputs) computed on the device; each returns a back-end array per path."""

    def __init__(self, kernel: DeviceKernel, obs):
        self.kernel, self.names = kernel, list(obs.names)
        rr = obs.risk_rule
        self.rule = None if rr is None else kernel.rule(rr.nodes, rr.weights)
        inputs = getattr(obs, "inputs", None)
        self.z_in = (None if inputs is None else
                     [kernel.backend.asarray(inputs[None, None, :, i]) for i in range(inputs.shape[1])])

    def risk(self, X):
        k, r = self.kernel, self.rule
        loss = k._fn(k.loss, k.output(X, r.z), r.d)  # (P, M)
        return k.xp.matmul(loss, r.w)

    def output_at(self, X):
        return self.kernel.output(X, self.z_in)

    def moments(self, X):
        xp = self.kernel.xp
        return xp.concat([xp.mean(X, axis=1), xp.mean(X * X, axis=1)], axis=1)


class _PerBlock:
    """``fn(X)`` seed block by seed block on the device (member ``index`` of a coupled state, if given)."""

    def __init__(self, fn, xp, index=None):
        self.fn, self.xp, self.index = fn, xp, index

    def __call__(self, X):
        if self.index is not None:
            X = X[:, self.index, ...]
        P = X.shape[0]
        parts = [self.fn(X[lo:min(P, lo + BLOCK), ...]) for lo in range(0, P, BLOCK)]
        return _concat(self.xp, parts)


def device_functions(dobs: DeviceObservables, coupled: bool, coarse: str) -> dict:
    """The streamed functions of a run: each observable (of the fine run and, coupled, ``name + coarse``)."""
    xp = dobs.kernel.xp
    if not coupled:
        return {name: _PerBlock(getattr(dobs, name), xp) for name in dobs.names}
    out = {}
    for name in dobs.names:
        out[name] = _PerBlock(getattr(dobs, name), xp, 1)
        out[name + coarse] = _PerBlock(getattr(dobs, name), xp, 0)
    return out


def _blocks(X, sizes):
    lo = 0
    for i, s in enumerate(sizes):
        yield i, X[lo:lo + s, ...]
        lo += s


class DeviceDDSMFStep:
    """One Euler step of the DD-SMF on the device (the driver's ``step(X, h, gens, sizes)``); coupled:
    states (P, 2, N, p), the fine run (1) two steps of h/2, the coarse one (0) one step of h on their sum."""

    def __init__(self, kernel: DeviceKernel, dobs: DeviceObservables, rule: DeviceRule, eta: float, order: int,
                 batch_size: int, coupled: bool, coarse: str, N: int):
        self.kernel, self.rule, self.xp = kernel, rule, kernel.xp
        self.eta, self.order, self.batch_size, self.coupled = float(eta), order, batch_size, coupled
        self.functions = device_functions(dobs, coupled, coarse)
        kernel.check_fits(N, rule.M, order)

    def _euler(self, X, h, db):
        return X + self.kernel.ddsmf_increment(X, h, db, self.rule, self.eta, self.order, self.batch_size)

    def __call__(self, X, h, gens, sizes):
        h, M, parts = float(h), self.rule.M, []
        for i, Xb in _blocks(X, sizes):
            g, s = gens[i], sizes[i]
            if not self.coupled:
                parts.append(self._euler(Xb, h, math.sqrt(h) * g.standard_normal((s, M))))
                continue
            d1 = math.sqrt(h / 2) * g.standard_normal((s, M))
            d2 = math.sqrt(h / 2) * g.standard_normal((s, M))
            fine = self._euler(self._euler(Xb[:, 1, ...], h / 2, d1), h / 2, d2)
            parts.append(self.xp.stack([self._euler(Xb[:, 0, ...], h, d1 + d2), fine], axis=1))
        return _concat(self.xp, parts)


class DeviceMeanFieldSGDStep:
    """One mean-field SGD step on the device: each seed block draws its (paths, B) batch columns from its
    stream (the laws :mod:`smfsym.simulation.device_sgd` samples; others are refused naming the law)."""

    def __init__(self, kernel: DeviceKernel, dobs: DeviceObservables, net, values, batch_size: int, eta: float):
        self.kernel, self.xp, self.B, self.eta = kernel, kernel.xp, int(batch_size), float(eta)
        self.samplers = [_DeviceSampler(law, values, kernel.backend) for law in net.laws]
        order = [s for smp in self.samplers for s in smp.symbols]
        self.perm = [order.index(s) for s in net.data]
        self.functions = device_functions(dobs, False, "")

    def sample(self, g, s: int) -> list:
        """A seed block's batch: one (s, B) column per data symbol, in ``net.data`` order."""
        cols = []
        for smp in self.samplers:
            arr = smp(g, s, self.B)  # (k, s, B)
            cols += [arr[j, ...] for j in range(arr.shape[0])]
        return [cols[i] for i in self.perm]

    def __call__(self, X, h, gens, sizes):
        parts = [Xb + self.kernel.sgd_increment(Xb, self.sample(gens[i], sizes[i]), self.eta)
                 for i, Xb in _blocks(X, sizes)]
        return _concat(self.xp, parts)
