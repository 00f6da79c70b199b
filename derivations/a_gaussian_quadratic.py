# ---
# jupyter:
#   jupytext:
#     formats: py:percent
# ---

# %% [markdown]
# # (a) Gaussian quadratic: the Ornstein-Uhlenbeck case
#
# docs/theory.md §3: xi ~ N(0, s^2), f(x, xi) = (x - xi)^2 / 2. Then F = (x^2 + s^2)/2,
# Sigma = s^2, the SME and the SMF coincide (additive noise), and SGD has closed-form
# moments. An exact weak-error study (docs/theory.md §4, no Monte Carlo) recovers
# order 1 for gf/sme1/smf1 and order 2 for sme2/smf2.

# %%
import json
import os
from pathlib import Path

import sympy as sp

import smfsym

OUT = Path(os.environ.get("SMFSYM_OUT", "out/derivations")) / "a_gaussian_quadratic"
OUT.mkdir(parents=True, exist_ok=True)

x = sp.Symbol("x")
s = sp.Rational(7, 10)
xi = smfsym.normal("xi", std=s)
problem = smfsym.Problem((x - xi) ** 2 / 2, [x])
sme2, smf2 = smfsym.sme(problem, order=2), smfsym.smf(problem, order=2)
print(problem.latex())
print(smf2.latex())

# %% [markdown]
# In a notebook, the problem and the flow render as LaTeX.

# %%
problem

# %%
smf2

# %%
assert sme2.diffusion == smf2.diffusion  # additive noise: SME and SMF coincide

# %% [markdown]
# ## SGD against its closed form, and the exact weak-error study

# %%
eta, k, x0 = 0.1, 10, 1.5
from smfsym.simulation.exact import exact_sgd_mean

mean = exact_sgd_mean(problem, x, [x0], eta, k)
var = exact_sgd_mean(problem, x**2, [x0], eta, k) - mean**2
closed_mean = (1 - eta) ** k * x0
closed_var = eta * float(s) ** 2 * (1 - (1 - eta) ** (2 * k)) / (2 - eta)
print(f"E x_k = {mean:.15f} (closed form {closed_mean:.15f}); Var x_k = {var:.15f} (closed form {closed_var:.15f})")

etas = [0.1 / 2**j for j in range(6)]  # 0.1 down to 0.003125
study = smfsym.weak_error(problem, x**2 + x, [x0], 1.0, etas, models=["gf", "sme1", "sme2", "smf1", "smf2"])
print(study)
print(study.to_latex())
study.plot(path=OUT / "weak_error.png")
(OUT / "derivation.tex").write_text(smfsym.export_tex(problem, [sme2, smf2]))
json.dump({"sgd_mean": mean, "sgd_mean_closed": closed_mean, "sgd_var": var, "sgd_var_closed": closed_var,
           "orders": {m: v[0] for m, v in study.orders.items()}}, open(OUT / "results.json", "w"), indent=2)
