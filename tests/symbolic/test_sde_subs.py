"""SDE.subs reaches every object the SDE derives, including those it reads from its problem."""
import numpy as np
import sympy as sp

import smfsym
from smfsym.symbolic.lambdify import compile_exprs

x = sp.Symbol("x")


def test_sde_subs_reaches_the_data_set_noise_it_reads_from_the_problem():
    """A data-set SMF's noise covariance, two-point covariance and generator come from the problem's Sigma;
    SDE.subs({c: 2}) left c in them while free_symbols said it was gone (audit 5)."""
    rows = np.array([[1.0, 1.0], [-2.0, 1.0], [0.5, -1.0], [0.3, 0.2]])
    z, y = smfsym.empirical(rows, "z y")
    c, x2 = sp.symbols("c x2")
    loss = lambda c_: c_ * (x * z - y) ** 2 / 2 + sp.log(1 + sp.exp(x * z))  # noqa: E731 - not polynomial
    p = smfsym.Problem(loss(c), params=[x], constants=[c])
    flow = smfsym.smf(p, order=1)
    sub = flow.subs({c: 2})
    assert sub.noise_kind == "template" and sub.free_symbols == {flow.eta}
    for e in (sub.noise_covariance()[0, 0], sub.two_point_covariance([x2])[0, 0], sub.generator(x**2)):
        assert c not in e.free_symbols, e
    # against the problem built with c = 2 from the start
    direct = smfsym.smf(smfsym.Problem(loss(2), params=[x]), order=1)
    f = compile_exprs([sub.noise_covariance()[0, 0], direct.noise_covariance()[0, 0],
                       sub.generator(x**2), direct.generator(x**2)], [x], values={flow.eta: 0.1})
    a, b, ga, gb = f(np.array([[0.3], [-1.2]]))
    np.testing.assert_allclose(a, b, rtol=1e-13)
    np.testing.assert_allclose(ga, gb, rtol=1e-13)
