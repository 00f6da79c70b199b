# ---
# jupyter:
#   jupytext:
#     formats: py:percent
# ---

# %% [markdown]
# # (d) Logistic regression on an empirical data set (Monte Carlo study)
#
# f(w; z, y) = log(1 + exp(-y w.z)) on M samples (z, y). The loss is not polynomial
# in the data, so F, grad F and Sigma are data means kept numeric (never M symbolic
# terms), the SMF's noise is the M data columns sqrt(1/M)(grad F - grad f(., xi_i)),
# and the weak-error study is Monte Carlo, with standard errors on every number.

# %%
import json
import os
from pathlib import Path

import numpy as np
import sympy as sp

import smfsym

FAST = os.environ.get("SMFSYM_FAST") == "1"
OUT = Path(os.environ.get("SMFSYM_OUT", "out/derivations")) / "d_logistic_empirical"
OUT.mkdir(parents=True, exist_ok=True)

rng = np.random.default_rng(2024)
M = 40
Z = rng.normal(size=(M, 2))
w_true = np.array([1.5, -1.0])
Y = np.where(rng.random(M) < 1 / (1 + np.exp(-Z @ w_true)), 1.0, -1.0)
z0, z1, yy = smfsym.empirical(np.column_stack([Z, Y]), "z0 z1 y")
w = sp.symbols("w0:2")
problem = smfsym.Problem(sp.log(1 + sp.exp(-yy * (w[0] * z0 + w[1] * z1))), w)
smf1 = smfsym.smf(problem, order=1)
print(problem.F)
print(smf1.latex())

# %% [markdown]
# In a notebook, the problem and the flow render as LaTeX.

# %%
problem

# %%
smf1

# %%

# %%
n_paths = 10_000 if FAST else 25_000
etas = [0.4, 0.2, 0.1]
study = smfsym.weak_error(problem, w[0] ** 2 + w[1] ** 2, [0.5, -0.5], 1.0, etas, models=["gf", "smf1"],
                          method="montecarlo", n_paths=n_paths, seed=3)
print(study)
study.plot(path=OUT / "weak_error.png")
json.dump({"method": study.meta["method"], "rows": study.rows,
           "orders": {m: list(v) for m, v in study.orders.items()}},
          open(OUT / "results.json", "w"), indent=2, default=float)
