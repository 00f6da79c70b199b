# ---
# jupyter:
#   jupytext:
#     formats: py:percent
# ---

# %% [markdown]
# # (c) Linear regression with Gaussian features, d = 5
#
# f(x; a, eps) = (a.x - eps)^2 / 2 with a ~ N(0, I_5) and eps ~ N(0, s^2). The whole
# derivation (F, grad F, Sigma, SME and SMF of order 2) is exact; Sigma(x) =
# (|x|^2 + s^2) I + x x^T has no closed-form square root, so the SME keeps a numeric
# one while the SMF's 20 noise columns are explicit polynomials. The weak-error
# study against SGD is exact (docs/theory.md §4).

# %%
import json
import os
import time
from pathlib import Path

import sympy as sp

import smfsym

OUT = Path(os.environ.get("SMFSYM_OUT", "out/derivations")) / "c_linear_regression"
OUT.mkdir(parents=True, exist_ok=True)

d = 5
x = sp.symbols(f"x0:{d}")
a = smfsym.normal("a", d)
s = sp.Symbol("s", positive=True)
eps = smfsym.normal("eps", std=s)
t0 = time.perf_counter()
problem = smfsym.Problem((sum(ai * xi for ai, xi in zip(a, x)) - eps) ** 2 / 2, x)
sme2, smf2 = smfsym.sme(problem, order=2), smfsym.smf(problem, order=2)
elapsed = time.perf_counter() - t0
print(f"derivation in {elapsed:.2f} s; SMF noise columns: {smf2.n_noise}")
print(problem.latex())
print(smf2.latex())

# %% [markdown]
# In a notebook, the problem and the flow render as LaTeX.

# %%
problem

# %%
smf2

# %%
(OUT / "derivation.tex").write_text(smfsym.export_tex(problem, [sme2, smf2]))

# %% [markdown]
# ## Weak error against SGD, exactly (s = 1/2)

# %%
half = {s: sp.Rational(1, 2)}
numeric = smfsym.Problem((sum(ai * xi for ai, xi in zip(a, x)) - smfsym.normal("e", std=sp.Rational(1, 2))) ** 2 / 2, x)
phi = x[0] ** 2 + x[1] * x[2] + x[3]
x0 = [1.0, -0.5, 0.5, 0.3, -1.0]
study = smfsym.weak_error(numeric, phi, x0, 1.0, [0.04 / 2**j for j in range(5)],
                          models=["gf", "sme1", "sme2", "smf1", "smf2"])
print(study)
print(study.to_latex())
study.plot(path=OUT / "weak_error.png")
json.dump({"derivation_seconds": elapsed, "n_noise": smf2.n_noise,
           "orders": {m: v[0] for m, v in study.orders.items()}}, open(OUT / "results.json", "w"), indent=2)
