"""Problems, SDEs, studies and simulation results survive pickling (executors and notebooks need it)."""
import pickle

import numpy as np
import sympy as sp

import smfsym


def test_studies_and_results_round_trip_through_pickle():
    x = sp.Symbol("x")
    p = smfsym.Problem((x - smfsym.normal("xi", std=sp.Rational(1, 2))) ** 2 / 2, [x])
    flow = smfsym.smf(p, order=2)
    st = smfsym.weak_error(p, x**2, [1.0], 1.0, [0.1, 0.05, 0.025], models=["smf2"])
    back = pickle.loads(pickle.dumps(st))
    assert back.rows == st.rows and back.orders == st.orders and back.problem.sigma == p.sigma
    res = smfsym.simulate(flow, x0=[1.0], t_end=0.5, eta=0.1, n_paths=64, seed=3)
    r2 = pickle.loads(pickle.dumps(res))
    assert np.array_equal(r2.states, res.states) and r2.seed.entropy == res.seed.entropy
    mp = smfsym.multipoint(smfsym.Problem((1 + smfsym.rademacher("r")) * x**2 / 2, [x]), [[-1.0], [1.0]],
                           eta=0.1, t_end=0.2, n_paths=512, seed=1, models=["smf2"])
    assert pickle.loads(pickle.dumps(mp)).rows == mp.rows
    # a flow rebuilt from its pickle simulates the same numbers
    f2 = pickle.loads(pickle.dumps(flow))
    res2 = smfsym.simulate(f2, x0=[1.0], t_end=0.5, eta=0.1, n_paths=64, seed=3)
    assert np.array_equal(res2.states, res.states)
