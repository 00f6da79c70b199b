"""Data laws: the distribution nu of one data sample xi (docs/theory.md §1).

One class per law plus a short factory (as in ``sympy.stats``). A factory
returns the *data symbols* that stand for the sample's coordinates; they enter
the loss like ordinary sympy symbols and carry their law with them, so a
:class:`~smfsym.Problem` finds the data law from the loss alone.

Each law knows
- its moments (exactly, symbolically in its parameters) -- for fast expectations,
- an orthonormal polynomial basis of L^2(law) (Hermite, Legendre, Laguerre,
  Jacobi, discrete Gram-Schmidt) -- for the cylindrical-noise expansion, docs/theory.md §3,
- a numeric Gauss rule -- for expectations of non-polynomial expressions,
- a numpy sampler -- for SGD.

Parameters may be symbolic; they are checked only where a condition is provably
false, and need numeric ``values`` only when sampling or integrating numerically.

The subpackage is split by kind: :mod:`.base` (symbols and base classes),
:mod:`.continuous`, :mod:`.finite`, :mod:`.empirical`, and :mod:`.factories`.
"""
from .base import SUPPORTED_LAWS, DataSymbol, Law, UnivariateLaw
from .continuous import Beta, Exponential, Gamma, MultivariateNormal, Normal, StudentT, Uniform
from .empirical import Empirical
from .factories import (
    bernoulli, beta, categorical, empirical, exponential, gamma, law_from_sympy_stats, normal, rademacher,
    student_t, uniform,
)
from .finite import Finite

__all__ = [
    "DataSymbol",
    "Law",
    "UnivariateLaw",
    "Normal",
    "MultivariateNormal",
    "Uniform",
    "Finite",
    "Exponential",
    "Gamma",
    "Beta",
    "StudentT",
    "Empirical",
    "normal",
    "uniform",
    "bernoulli",
    "rademacher",
    "categorical",
    "exponential",
    "gamma",
    "beta",
    "student_t",
    "empirical",
    "law_from_sympy_stats",
    "SUPPORTED_LAWS",
]
