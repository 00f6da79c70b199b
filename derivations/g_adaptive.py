# ---
# jupyter:
#   jupytext:
#     formats: py:percent
# ---

# %% [markdown]
# # (g) Adaptive optimizers: RMSprop and Adam as update maps
#
# docs/theory.md §10-11. An optimizer is a map $z \mapsto U(z, \xi; \eta)$ on its state (the
# parameters, a second-moment estimate $v$, a momentum $m$, the time $t$). smfsym expands
# $U - z = h A(z, \xi) + h^2 B(z, \xi) + O(h^3)$ and derives the SME and the SMF of orders 1 and 2:
# drift $a + h(b - \tfrac12 (Da) a)$ with $a = \mathbb E A$, $b = \mathbb E B$, and noise
# $\sqrt h\,\mathrm{Cov}(A)^{1/2} dW$ (SME) or $\sqrt h \sum_k A_k\, d\beta_k$ with the noise coefficients
# $A_k = \mathbb E[A e_k]$ (SMF). This notebook:
#
# 1. derives RMSprop's equations on a Gaussian quadratic and checks them against RMSprop itself
#    (weak error against the learning rate, fitted orders);
# 2. does the same for Adam on logistic regression (a non-polynomial loss: means by a Gauss rule);
# 3. checks the square-root scaling rule in Malladi et al.'s regime against the naive one;
# 4. runs SVAG, whose distance to the order-1 SME falls like $1/l$.

# %%
import json
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import sympy as sp

import smfsym
from smfsym.optimizers import adam, rmsprop
from smfsym.studies.scaling_rule_study import scaling_rule_study
from smfsym.studies.svag_study import svag_study

FAST = os.environ.get("SMFSYM_FAST") == "1"
OUT = Path(os.environ.get("SMFSYM_OUT", "out/derivations")) / "g_adaptive"
OUT.mkdir(parents=True, exist_ok=True)
results = {}

x, y = sp.symbols("x y")
a, b = smfsym.normal("a", std=sp.Rational(1, 2)), smfsym.normal("b", std=sp.Rational(1, 2))
quadratic = smfsym.Problem(((x - a) ** 2 + (y - b) ** 2) / 2, [x, y])
quadratic

# %% [markdown]
# ## 1. RMSprop on a Gaussian quadratic
#
# PyTorch's convention: $v \leftarrow v + c\eta(g^2 - v)$ first, then $x \leftarrow x - \eta g/(\sqrt v + \varepsilon)$,
# elementwise, with $1 - \beta = c\eta$ and time $t = k\eta$. The increments of orders $h$ and $h^2$:

# %%
rms = rmsprop(quadratic, c=sp.Rational(1, 4), eps=sp.Rational(1, 10))
rms.A

# %%
rms.B

# %% [markdown]
# The order-2 SMF on $(x, y, v_x, v_y)$ (its noise columns are those of the lifted loss $u \cdot A$):

# %%
flow = rms.smf(2)
flow

# %%
print(flow.latex())

# %% [markdown]
# Weak error of E φ at $t = 1/2$ against RMSprop itself, by Monte Carlo (the SDEs by coupled
# Richardson runs, so their own solver error is removed), φ = x² + y²:

# %%
z0 = [1.0, -0.5, 1.0, 1.0]
etas = [0.1, 0.05, 0.025]
n_paths = 100_000 if FAST else 400_000
st = smfsym.update_map_weak_error(rms, x**2 + y**2, z0, 0.5, etas, models=["gf", "smf1", "smf2"],
                                  n_paths=n_paths, seed=1, options=smfsym.RunOptions(progress=False))
st

# %%
st.plot(path=OUT / "rmsprop_weak_error.png")
plt.show()
print(st.to_latex())
results["rmsprop_orders"] = {m: st.orders[m].slope for m in st.models if np.isfinite(st.orders[m].slope)}
results["rmsprop_order_interval"] = {m: [st.orders[m].low, st.orders[m].high] for m in results["rmsprop_orders"]}
results["rmsprop_errors"] = {m: [abs(r["error"]) for r in st.rows if r["model"] == m] for m in st.models}
results["rmsprop_se"] = {m: [r["se"] for r in st.rows if r["model"] == m] for m in st.models}

# %% [markdown]
# The SMF of order 2 is an order of magnitude closer to RMSprop than the order-1 equations at
# every learning rate; its own slope needs more paths than two cores give in a few minutes.

# %% [markdown]
# ## 2. Adam on logistic regression
#
# $f(x, \xi) = \log(1 + e^{-y\,a x})$ on a data set of 64 rows (features $a \sim N(1, 1/4)$, fair labels
# $y = \pm 1$): not a polynomial, so the increments' means and noise coefficients are data-set sums,
# and the SMF has one noise column per row. Adam's state is $(x, m, v, t)$; the bias correction is
# singular at $t = 0$, so it starts at $t_0 = 1$ (with $m_0 = 0$, $v_0 = 1$, $x_0 = 2$ and $\varphi = x$; $c_2 = 1/4$
# keeps the SDE's $v$ well above 0, where its noise, unlike Adam's moving average, could push it below).

# %%
xl = sp.Symbol("x")
rng = np.random.default_rng(0)
feat, label = smfsym.empirical(np.column_stack([rng.normal(1.0, 0.5, 64), rng.choice([-1.0, 1.0], 64)]), "f s")
logistic = smfsym.Problem(sp.log(1 + sp.exp(-label * feat * xl)), [xl])
ad = adam(logistic, c1=1, c2=sp.Rational(1, 4), eps=sp.Rational(1, 10))
ad.A

# %%
n_paths_adam = 20_000 if FAST else 200_000
st_adam = smfsym.update_map_weak_error(ad, xl, [2.0, 0.0, 1.0, 1.0], 1.0, [0.25, 0.125, 0.0625],
                                       models=["gf", "smf1"], n_paths=n_paths_adam, seed=2,
                                       options=smfsym.RunOptions(progress=False))
st_adam

# %%
st_adam.plot(path=OUT / "adam_weak_error.png")
plt.show()
results["adam_orders"] = {m: st_adam.orders[m].slope for m in st_adam.models}
results["adam_order_interval"] = {m: [st_adam.orders[m].low, st_adam.orders[m].high] for m in st_adam.models}

# %% [markdown]
# ## 3. Scaling rules (Malladi et al.'s regime)
#
# With $1 - \beta = c\eta^2$, time $k\eta^2$ and gradient noise of scale $1/\eta$, a batch $k$ times larger
# keeps RMSprop's SDE if $\eta \to \sqrt k\,\eta$, $1 - \beta \to k(1 - \beta)$, $\varepsilon \to \varepsilon/\sqrt k$
# (the square-root rule). The study runs RMSprop at $k = 1, 4, 16$ with the rule and with the batch
# alone (naive), and reports how far E φ moves (in standard errors):

# %%
xs = sp.Symbol("x")
noisy = smfsym.Problem((xs - smfsym.normal("n", std=8)) ** 2 / 2, [xs])
scal = scaling_rule_study(noisy, xs**2, [1.0], 1.0, optimizer="rmsprop", eta=1 / 16,
                          hyper={"beta": 1 - 1 / 256, "eps": 8.0}, ks=[1, 4, 16],
                          n_paths=50_000 if FAST else 200_000, seed=3,
                          options=smfsym.RunOptions(progress=False))
scal

# %%
scal.plot(path=OUT / "scaling_rule.png")
plt.show()
shifts = {}
for r in scal.rows:
    if r["k"] != 1:
        shifts.setdefault(r["rule"], []).append(abs(r["shift"]) / r["shift_se"])
results["scaling_shift_in_se"] = shifts

# %% [markdown]
# With the rule, E φ stays within a few standard errors from $k = 1$ to $k = 16$ (256, 64 and 16 steps);
# with the batch alone the SDE's noise falls like $1/\sqrt k$ and E φ moves by tens of standard errors.

# %% [markdown]
# ## 4. SVAG
#
# SVAG (Li, Malladi, Arora 2021) runs $l$ steps of size $\eta/l$ per unit of $\eta$, each combining two
# samples with weights $(1 \pm \sqrt{2l - 1})/2$: the noise per unit time stays, the discretisation
# shrinks, and it converges weakly to the order-1 SME at rate $1/l$. For SGD on $f = (x - \xi)^2/2$
# the SME is an Ornstein-Uhlenbeck process and E X_1 = e^{-1} exactly:

# %%
ou = smfsym.Problem((xs - smfsym.normal("n")) ** 2 / 2, [xs])
sv = svag_study(ou, xs, [1.0], 1.0, 0.5, ls=[1, 2, 4, 8], reference=(float(np.exp(-1)), 0.0),
                n_paths=50_000 if FAST else 400_000, seed=4, options=smfsym.RunOptions(progress=False))
sv

# %%
sv.plot(path=OUT / "svag.png")
plt.show()
results["svag_order"] = [sv.order.slope, sv.order.low, sv.order.high]

# %%
(OUT / "derivation.tex").write_text(smfsym.export_tex(quadratic, [rms.sme(2), flow]))
(OUT / "results.json").write_text(json.dumps(results, indent=1, default=float))
results
