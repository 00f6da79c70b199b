"""The tail-growth rule (docs/theory.md §8) in every study that takes a test function phi, not only
`weak_error`: an infinite E phi under heavy-tailed data gave finite-looking Monte Carlo means (E v^3 of RMSprop
under Student-t(5) data: 10.18 +- 0.19) in update_map_weak_error, svag_study and scaling_rule_study."""
import warnings

import pytest
import sympy as sp

import smfsym
from smfsym.studies.svag_study import svag_study

x = sp.Symbol("x", real=True)
QUIET = smfsym.RunOptions(progress=False)


def _t5_regression():
    return smfsym.Problem((x - smfsym.student_t("s", 5)) ** 2 / 2, [x])  # moments below order 5


def test_update_map_study_refuses_an_infinite_moment_of_the_optimizer_state():
    rms = smfsym.rmsprop(_t5_regression(), c=sp.Rational(1, 4))
    v = rms.state[1]  # one step: v' = v + eta c (g^2 - v), g = x - s, so E v'^3 needs E s^6
    with pytest.raises(ValueError, match=r"E phi\(x_k\) is infinite for phi = v_x\*\*3 \(degree 3 in the state\)"):
        smfsym.update_map_weak_error(rms, v**3, [1.0, 2.0], 0.5, [0.25, 0.125], models=["gf"], n_paths=200, seed=0,
                                     options=QUIET)


def test_svag_study_refuses_an_infinite_moment():
    with pytest.raises(ValueError, match=r"E phi\(x_k\) is infinite for phi = x\*\*6"):
        svag_study(_t5_regression(), x**6, [1.0], 0.5, 0.1, ls=[2, 4], n_paths=200, seed=0, options=QUIET)


def test_scaling_rule_study_refuses_sgd_and_cannot_decide_for_adaptive_steps():
    """SGD's move eta (x - s) makes E x^6 infinite under t(5); RMSprop's move g / (eps + sqrt(u)) is bounded in s,
    so the rule, which bounds a reciprocal rather than measuring it, must not refuse: it says it cannot decide."""
    with pytest.raises(ValueError, match=r"E phi\(x_k\) is infinite for phi = x\*\*6"):
        smfsym.scaling_rule_study(_t5_regression(), x**6, [1.0], 1.0, optimizer="sgd", eta=0.25, ks=[1, 4],
                                  n_paths=200, options=QUIET)
    with pytest.warns(smfsym.TailWarning, match="cannot decide whether E phi.*reciprocal factors"):
        smfsym.scaling_rule_study(_t5_regression(), x**6, [1.0], 1.0, optimizer="rmsprop", eta=0.25, ks=[1, 4],
                                  n_paths=200, options=QUIET)


@pytest.mark.filterwarnings("ignore::smfsym.OrderWarning")  # 200 paths: the orders are not the point
@pytest.mark.parametrize("optimizer", ["sgd", "rmsprop", "adam"])
def test_light_tails_and_low_degrees_pass_without_a_warning(optimizer):
    """Gaussian data, and phi = x^2 under t(5): nothing to refuse, nothing undecided (the adaptive steps'
    1 / (eps + sigma sqrt(u)) is recognised as bounded)."""
    for law, phi in ((smfsym.normal("g"), x**6), (smfsym.student_t("s", 5), x**2)):
        p = smfsym.Problem((x - law) ** 2 / 2, [x])
        with warnings.catch_warnings():
            warnings.simplefilter("error", smfsym.TailWarning)
            smfsym.scaling_rule_study(p, phi, [1.0], 1.0, optimizer=optimizer, eta=0.25, ks=[1, 4], n_paths=200,
                                      options=QUIET)
    umap = {"sgd": smfsym.sgd_map, "rmsprop": smfsym.rmsprop, "adam": smfsym.adam}[optimizer](
        smfsym.Problem((x - smfsym.normal("n")) ** 2 / 2, [x]))
    with warnings.catch_warnings():
        warnings.simplefilter("error", smfsym.TailWarning)
        smfsym.update_map_weak_error(umap, umap.state[-1] ** 3, [1.0] * len(umap.state), 0.5, [0.25, 0.125],
                                     models=["gf"], n_paths=200, seed=0, options=QUIET)


def test_schedule_and_momentum_studies_blame_phi_not_the_loss():
    # their exact moments refused E x^6 under t(5) saying "the loss needs it for F, grad F or Sigma"
    t = sp.Symbol("t")
    p = _t5_regression()
    for run in (lambda: smfsym.schedule_weak_error(p, smfsym.Schedule(1 / (1 + t), t), x**6, [1.0], 1.0, [0.5, 0.25]),
                lambda: smfsym.momentum_weak_error(p, x**6, [1.0], 1.0, [1 / 4, 1 / 16],
                                                   smfsym.optimizers.Momentum(friction=1.0))):
        with pytest.raises(ValueError, match=r"E phi\(x_k\) is infinite for phi = x\*\*6 \(degree 6 in the parameters\)"):
            run()
