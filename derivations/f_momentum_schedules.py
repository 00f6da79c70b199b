# ---
# jupyter:
#   jupytext:
#     formats: py:percent
# ---

# %% [markdown]
# # (f) Learning-rate schedules, momentum and mini-batches
#
# docs/theory.md §7 and §4. Three additions to plain constant-rate SGD, each with its
# continuous model and an exact check of the weak order:
#
# 1. **Schedules** $\eta_k = \eta\,u(k\eta)$: the SME/SMF become time-inhomogeneous, and the
#    order-2 drift picks up the schedule's derivative,
#    $b = -(u - \tfrac{\eta}{2}u')\nabla F - \tfrac{\eta}{2}u^2\nabla^2F\,\nabla F$.
# 2. **Momentum** (heavy ball and Nesterov) in the scaling $1-\beta = \lambda\sqrt\eta$,
#    $t = k\sqrt\eta$: an underdamped SDE on $(x, p)$, $p = v/\sqrt\eta$, with the SMF's cylindrical
#    noise in the velocity equation; its two-point motions share the noise as SGD's share samples.
# 3. **Mini-batches** $B > 1$ in exact mode, i.i.d. and without replacement.

# %%
import json
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import sympy as sp

import smfsym
from smfsym.optimizers import Momentum, beta_for, cosine, exact_batch_sgd_mean, momentum_latex, momentum_model, scheduled_latex, scheduled_model, simulate_momentum_sgd
from smfsym.studies.optimizer_weak_error import momentum_weak_error, schedule_weak_error

FAST = os.environ.get("SMFSYM_FAST") == "1"
OUT = Path(os.environ.get("SMFSYM_OUT", "out/derivations")) / "f_momentum_schedules"
OUT.mkdir(parents=True, exist_ok=True)
results = {}

x, y = sp.symbols("x y")
a = smfsym.normal("a", mean=1, std=sp.Rational(1, 2))
z = smfsym.normal("z")
problem = smfsym.Problem((a * x + y - z) ** 2 / 2 + y**2 / 4, [x, y])
problem

# %% [markdown]
# ## 1. A cosine schedule
#
# The order-2 SMF on the augmented state $(x, t)$ (the last coordinate is time, $\dot t = 1$):

# %%
schedule = cosine(2, sp.Rational(1, 5))
flow = scheduled_model(problem, schedule, "smf", order=2)
print(scheduled_latex(flow, schedule))

# %%
flow

# %% [markdown]
# Exact weak errors (no Monte Carlo: the loss is quadratic in the parameters, so SGD's operator
# and the model's moment equations close on polynomials):

# %%
etas = [0.04, 0.02, 0.01, 0.005]
st = schedule_weak_error(problem, schedule, x**2 + x * y, [1.0, -0.5], 1.0, etas, models=["gf", "smf1", "smf2"])
print(st)
print(st.to_latex())
fig = st.plot()
fig.axes[0].set_title("cosine schedule: weak error against SGD")
fig.savefig(OUT / "schedule_weak_error.png", dpi=150)
results["schedule_orders"] = {m: st.orders[m].slope for m in st.models}

# %% [markdown]
# ## 2. Momentum: heavy ball and Nesterov
#
# $v_{k+1} = \beta v_k - \eta\nabla f(x_k, \xi_{k+1})$, $x_{k+1} = x_k + v_{k+1}$ with
# $\beta = 1 - \lambda\sqrt\eta$. The order-2 momentum SMF:

# %%
lam = sp.Rational(3, 2)
mflow = momentum_model(problem, "smf", order=2, lam=lam)
print(momentum_latex(mflow))

# %%
mflow

# %%
m_etas = [1 / 100, 1 / 400, 1 / 1600, 1 / 6400]
mom = {}
for nesterov in (False, True):
    # the start (x, P) = (1, -0.5, 0.5, 0): the models' state, with the scaled velocity P = v / sqrt(eta)
    s = momentum_weak_error(problem, x**2 + y, [1.0, -0.5, 0.5, 0.0], 1.0, m_etas,
                            Momentum(friction=1.5, nesterov=nesterov), models=["gf", "smf1", "smf2"])
    mom["nesterov" if nesterov else "heavy_ball"] = s
    print("Nesterov" if nesterov else "heavy ball")
    print(s)
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
for ax, (name, s) in zip(axes, mom.items()):
    for m in s.models:
        rs = [r for r in s.rows if r["model"] == m]
        ax.loglog([r["h"] for r in rs], [abs(r["error"]) for r in rs], "o-",
                  label=f"{m} (slope {s.orders[m].slope:.2f})")
    hs = np.sqrt(m_etas)
    ax.loglog(hs, 0.5 * hs**2 / hs[0] ** 2 * abs(rs[0]["error"]), "k--", lw=1, label="slope 2")
    ax.set_xlabel(r"$h = \sqrt{\eta}$")
    ax.set_title(name.replace("_", " "))
    ax.legend(fontsize=8)
axes[0].set_ylabel("exact weak error")
fig.tight_layout()
fig.savefig(OUT / "momentum_weak_error.png", dpi=150)
results["momentum_orders"] = {k: {m: s.orders[m].slope for m in s.models} for k, s in mom.items()}

# %% [markdown]
# ## 3. Two starts, shared samples (Rademacher example of §5)
#
# With momentum, SGD from $x = \pm 1$ on one sample stream still keeps $X(-1) = -X(1)$. The momentum
# SMF does the same; a momentum SME driven by one Brownian motion through $|x|$ does not.

# %%
r = smfsym.rademacher("r")
rad = smfsym.Problem((1 + r) * x**2 / 2, [x])
eta = 1 / 400
h = np.sqrt(eta)
k = int(round(1 / h))
n = 4000 if FAST else 40_000
starts = [[-1.0], [1.0]]
sgd = simulate_momentum_sgd(rad, starts, k, eta, beta_for(1.0, eta), n_paths=n, seed=1).states[-1, :, :, 0]
z0 = [[-1.0, 0.0], [1.0, 0.0]]
smf_m = momentum_model(rad, "smf", 2, lam=1)
sme_m = momentum_model(rad, "sme", 1, lam=1)
fl = smfsym.simulate(smf_m, z0, k * h, eta=eta, dt=h / 8, scheme="weak2", n_paths=n, seed=2).states[-1, :, :, 0]
sm = smfsym.simulate(sme_m, z0, k * h, eta=eta, dt=h / 8, scheme="euler", n_paths=n, seed=3).states[-1, :, :, 0]
fig, axes = plt.subplots(1, 3, figsize=(10, 3.3), sharex=True, sharey=True)
for ax, (name, X) in zip(axes, [("momentum SGD (shared samples)", sgd), ("momentum SMF", fl),
                                ("momentum SME (one Brownian motion)", sm)]):
    ax.plot(X[:, 1], X[:, 0], ".", ms=2, alpha=0.5)
    ax.set_title(name, fontsize=9)
    ax.set_xlabel(r"$X_1(+1)$")
axes[0].set_ylabel(r"$X_1(-1)$")
fig.tight_layout()
fig.savefig(OUT / "momentum_joint_law.png", dpi=150)
corr = {name: float(np.corrcoef(X[:, 0], X[:, 1])[0, 1]) for name, X in [("sgd", sgd), ("smf", fl), ("sme", sm)]}
print("correlation of X(-1) and X(+1):", corr)
results["npoint_correlation"] = corr

# %% [markdown]
# Exact two-point statistics where $\Sigma(x, y)$ is not a product of square roots
# ($f = (ax - z)^2/2$, $\Sigma(x, y) = \frac98 xy + \frac54$): the order-2 momentum SMF's product error is
# $O(h^2)$, its covariance error $O(h^3)$ (the covariance itself is $O(h)$).

# %%
from smfsym.studies.momentum_multipoint import momentum_multipoint

np_problem = smfsym.Problem((a * x - z) ** 2 / 2, [x])
two = momentum_multipoint(np_problem, [[1.0], [-2.0]], 1.0, [1 / 100, 1 / 400, 1 / 1600], lam=1.0,
                          models=["smf1", "smf2"], stats=["product", "covariance"])
print(two)
results["npoint_orders"] = {f"{m}:{s}": o.slope for (m, s), o in two.orders.items()}

# %% [markdown]
# ## 4. Mini-batches in exact mode
#
# Without replacement from a data set of $M = 6$ rows, the one-step covariance carries the finite-population
# factor $(M - B)/(B(M - 1))$; the exact moments need no enumeration of the $\binom{M}{B}$ batches.

# %%
rng = np.random.default_rng(0)
zd, yd = smfsym.empirical(rng.normal(size=(6, 2)), "z_d y_d")
data_problem = smfsym.Problem((x * zd - yd) ** 2 / 2, [x])
rows = []
for B in range(1, 7):
    m1 = exact_batch_sgd_mean(data_problem, x, [2.0], 0.2, 10, batch_size=B, sampling="without_replacement")
    m2 = exact_batch_sgd_mean(data_problem, x**2, [2.0], 0.2, 10, batch_size=B, sampling="without_replacement")
    rows.append((B, m1, m2 - m1**2))
    print(f"B = {B}:  E x_10 = {m1:.10f}   Var x_10 = {m2 - m1**2:.3e}")
results["batch_variance"] = [v for _, _, v in rows]
pw = smfsym.Problem(data_problem.loss, [x], batch_size=3, sampling="without_replacement")
mc = smfsym.simulate_sgd(pw, [2.0], 10, 0.2, n_paths=20_000 if FAST else 200_000, seed=4,
                         save_at=smfsym.SaveAt(store=False, functions={"x2": lambda s: s[..., 0] ** 2}))
results["batch3_mc"] = [float(mc.mean("x2")[-1]), float(mc.sem("x2")[-1]), rows[2][2] + rows[2][1] ** 2]
print("B = 3, E x^2: Monte Carlo", results["batch3_mc"][:2], "exact", results["batch3_mc"][2])
json.dump(results, open(OUT / "results.json", "w"), indent=2)
