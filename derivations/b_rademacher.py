# ---
# jupyter:
#   jupytext:
#     formats: py:percent
# ---

# %% [markdown]
# # (b) The Rademacher example: |x| against a smooth flow
#
# docs/theory.md §5: xi = +-1, f = (1 + xi) x^2 / 2. Sigma(x) = x^2, so the SME's
# coefficient is sqrt(eta)|x| -- not differentiable at 0 -- while the SMF's noise
# column is -sqrt(eta) x. Each single-point law is the same; the joint law of two
# starts driven by one noise is not: SGD and the SMF keep X(-1) = -X(1), the SME
# with one shared Brownian motion makes the two points move together.

# %%
import json
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import sympy as sp

import smfsym

FAST = os.environ.get("SMFSYM_FAST") == "1"
OUT = Path(os.environ.get("SMFSYM_OUT", "out/derivations")) / "b_rademacher"
OUT.mkdir(parents=True, exist_ok=True)

x, y = sp.symbols("x y")
r = smfsym.rademacher("r")
problem = smfsym.Problem((1 + r) * x**2 / 2, [x])
sme2, smf2 = smfsym.sme(problem), smfsym.smf(problem)
print(sme2.latex())
print(smf2.latex())

# %% [markdown]
# In a notebook, the problem and the flow render as LaTeX.

# %%
problem

# %%
smf2

# %%
print("SME two-point noise covariance:", sme2.two_point_covariance([y]))
print("SMF two-point noise covariance:", smf2.two_point_covariance([y]), "= eta Sigma(x, y) =",
      problem.cross_covariance([y]))

# %% [markdown]
# ## Multi-point statistics from the starts -1 and +1

# %%
n_paths = 20_000 if FAST else 200_000
eta = 0.05
mp = smfsym.multipoint(problem, [[-1.0], [1.0]], eta=eta, t_end=1.0, n_paths=n_paths, seed=0,
                       psi=["covariance", "correlation", "product", "sqdist"],
                       models=["sme2_shared", "sme2_independent", "smf2"])
print(mp)
print(mp.to_latex())

# %%
k = int(round(1.0 / eta))
starts = [[-1.0], [1.0]]
sgd = smfsym.simulate_sgd(problem, starts, k, eta, n_paths=2000, seed=1).states[-1, :, :, 0]
fl = smfsym.simulate(smf2, starts, 1.0, eta=eta, n_paths=2000, seed=1, scheme="weak2").states[-1, :, :, 0]
sm = smfsym.simulate(sme2, starts, 1.0, eta=eta, n_paths=2000, seed=1).states[-1, :, :, 0]
fig, axes = plt.subplots(1, 3, figsize=(10, 3.3), sharex=True, sharey=True)
for ax, (name, X) in zip(axes, [("SGD (shared samples)", sgd), ("SMF (one cylindrical noise)", fl),
                                ("SME (one Brownian motion)", sm)]):
    ax.plot(X[:, 1], X[:, 0], ".", ms=2, alpha=0.5)
    ax.set_title(name, fontsize=10)
    ax.set_xlabel(r"$X_1(+1)$")
axes[0].set_ylabel(r"$X_1(-1)$")
fig.tight_layout()
fig.savefig(OUT / "joint_law.png", dpi=150)
# %% [markdown]
# ## Rates over eta: the SMF's joint statistics converge at order 2, the shared SME's correlation does not
# (docs/theory.md §5; exact two-point moments where they close, Monte Carlo for the |x| noise)

# %%
import warnings  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore", smfsym.OrderWarning)  # exact zero errors (correlation -1 for SGD and SMF)
    rates = smfsym.multipoint_rates(problem, starts, [0.1, 0.05, 0.025] if FAST else [0.1, 0.05, 0.025, 0.0125],
                                    1.0, models=["smf1", "smf2", "sme2_shared", "sme2_independent"],
                                    psi=["product", "covariance", "correlation", "sqdist"],
                                    n_paths=4000 if FAST else 100_000, seed=2,
                                    numerics=smfsym.Numerics(dt_fraction=0.25))
print(rates)
print(rates.to_latex())
rates.plot(path=OUT / "npoint_rates.png")

# %%
res = {row["model"] + ":" + row["psi"]: [row["value"], row["se"], row["z"]] for row in mp.rows}
res["smf_pathwise_max_abs_sum"] = float(np.max(np.abs(fl[:, 0] + fl[:, 1])))
res["rates_orders"] = {key: (o.slope if o.n_used >= 2 else None) for key, o in rates.orders.items()}
res["rates_shared_correlation_errors"] = rates.errors("sme2_shared", "correlation").tolist()
json.dump(res, open(OUT / "results.json", "w"), indent=2)
