"""A CPU stand-in for CuPy (issue 19): numpy underneath, but only the names and behaviours of the real library.

No GPU runs in CI, so smfsym's ``CupyBackend`` and the modules of ``codegen(..., backend="cupy")`` are exercised
here on :func:`make_fake_cupy`, a module that

- exposes exactly the top-level names of CuPy 13 (``version="13"``; ``"14"`` and ``"14.2"`` add what those
  releases added), read from CuPy's own ``cupy/__init__.py`` at the tags v13.0.0, v13.6.0, v14.0.0 and v14.2.0:
  an Array API-only name CuPy lacks (``concat``, ``permute_dims``, ``astype``, ``bool``, ``pow``,
  ``matrix_transpose``, ``acos``, ...) raises AttributeError as CuPy's module ``__getattr__`` does;
- returns its own array type (``cupy.ndarray``, a numpy subclass) from every function, reductions included (CuPy
  returns 0-d arrays, never numpy scalars), and refuses a plain numpy array as an operand of a function or an
  operator (CuPy: ``TypeError: Unsupported type <class 'numpy.ndarray'>``), so a host array that leaks into
  the device loop fails here; ``asarray``/``array`` copy host arrays in, ``asnumpy``/``ndarray.get`` copy back;
- has ``random.RandomState(seed, method)`` with cuRAND's method numbers (an unknown one is refused, as
  ``curandCreateGenerator`` refuses it), CuPy's method names and signatures (``standard_normal(size=None,
  dtype=float)``, ``random_sample(size=None, dtype=float)``: float32/float64 only; ``randint(low, high=None,
  size=None, dtype=int)``), streams from numpy's Philox seeded with the integer seed (other numbers than cuRAND's);
- ``linalg`` (CuPy 13's names; ``eigh`` batched over leading axes), ``fuse`` (records what it fused and returns
  it unfused), ``cuda.runtime.getDeviceCount/memGetInfo/getDeviceProperties``, ``cuda.Stream.null.synchronize``,
  ``cuda.curand`` (the ``CURAND_RNG_*`` constants of cupy_backends/cuda/libs/curand.pxd).

What it cannot show: kernel compilation, cuSOLVER/cuRAND failures, timings, and numbers (other generators).
"""
from __future__ import annotations

import sys
import types

import numpy as np
import pytest

#: CuPy 13's public top-level names (v13.0.0 and v13.6.0, union).
CUPY13_NAMES = frozenset("""
AxisError ComplexWarning DataSource ElementwiseKernel Inf Infinity ModuleDeprecationWarning NAN NINF NZERO NaN
PINF PZERO RankWarning RawKernel RawModule ReductionKernel TooHardError VisibleDeprecationWarning abs absolute
add all allclose alltrue amax amin angle any append apply_along_axis arange arccos arccosh arcsin arcsinh
arctan arctan2 arctanh argmax argmin argpartition argsort argwhere around array array2string array_equal
array_equiv array_repr array_split array_str asanyarray asarray asarray_chkfinite ascontiguousarray asfarray
asfortranarray asnumpy atleast_1d atleast_2d atleast_3d average bartlett base_repr binary_repr bincount
bitwise_and bitwise_not bitwise_or bitwise_xor blackman bool_ broadcast broadcast_arrays broadcast_shapes
broadcast_to byte byte_bounds c_ can_cast cbrt cdouble ceil cfloat choose clear_memo clip column_stack
common_type complex128 complex64 complex_ complexfloating compress concatenate conj conjugate convolve copy
copysign copyto corrcoef correlate cos cosh count_nonzero cov cross csingle cuda cumprod cumproduct cumsum
deg2rad degrees delete diag diag_indices diag_indices_from diagflat diagonal diff digitize
disable_experimental_feature_warning disp divide divmod dot double dsplit dstack dtype e ediff1d einsum empty
empty_like equal euler_gamma exp exp2 expand_dims expm1 extract eye fabs fft fill_diagonal find_common_type
finfo fix flatiter flatnonzero flip fliplr flipud float16 float32 float64 float_ float_power floating floor
floor_divide fmax fmin fmod format_float_positional format_float_scientific format_parser frexp fromDlpack
from_dlpack frombuffer fromfile fromfunction fromiter fromstring full full_like fuse gcd generic genfromtxt
get_array_module get_array_wrap get_default_memory_pool get_default_pinned_memory_pool get_printoptions
gradient greater greater_equal half hamming hanning heaviside histogram histogram2d histogramdd hsplit hstack
hypot i0 identity iinfo imag in1d index_exp indices inexact inf infty inner int16 int32 int64 int8 int_ intc
integer interp intersect1d intp invert is_available isclose iscomplex iscomplexobj isfinite isfortran isin
isinf isnan isneginf isposinf isreal isrealobj isscalar issctype issubclass_ issubdtype issubsctype iterable
ix_ kaiser kron lcm ldexp left_shift less less_equal lexsort linalg linspace load loadtxt log log10 log1p log2
logaddexp logaddexp2 logical_and logical_not logical_or logical_xor logspace longfloat longlong mask_indices
matmul max maximum may_share_memory mean median memoize meshgrid mgrid min min_scalar_type minimum mintypecode
mod modf moveaxis msort multiply nan nan_to_num nanargmax nanargmin nancumprod nancumsum nanmax nanmean
nanmedian nanmin nanprod nanstd nansum nanvar ndarray ndim ndindex negative newaxis nextafter nonzero
not_equal number obj2sctype ogrid ones ones_like outer packbits pad partition percentile pi piecewise place
poly poly1d polyadd polyfit polymul polynomial polysub polyval positive power printoptions prod product
promote_types ptp put putmask quantile r_ rad2deg radians random ravel ravel_multi_index real real_if_close
reciprocal remainder repeat require reshape resize result_type right_shift rint roll rollaxis roots rot90
round round_ row_stack s_ safe_eval save savetxt savez savez_compressed sctype2char searchsorted select
set_printoptions set_string_function setdiff1d setxor1d shape shares_memory short show_config sign signbit
signedinteger sin sinc single singlecomplex sinh size sometrue sort sort_complex sparse split sqrt square
squeeze stack std subtract sum swapaxes take take_along_axis tan tanh tensordot testing tile trace transpose
trapz tri tril tril_indices tril_indices_from trim_zeros triu triu_indices triu_indices_from true_divide trunc
typename ubyte ufunc uint uint16 uint32 uint64 uint8 uintc uintp ulonglong union1d unique unpackbits
unravel_index unsignedinteger unwrap ushort vander var vdot vectorize vsplit vstack where who zeros zeros_like
""".split())
#: Added by CuPy 14.0 (the Array API names among them).
CUPY14_ADDED = frozenset("""
acos acosh annotations apply_over_axes asin asinh astype atan atan2 atanh bitwise_count bitwise_invert
bitwise_left_shift bitwise_right_shift bool concat exceptions long permute_dims pow put_along_axis trapezoid
ulong unique_all unique_counts unique_inverse unique_values
""".split())
#: Added by CuPy 14.2.
CUPY142_ADDED = frozenset("""
cumulative_prod cumulative_sum isdtype make_aligned_dtype matrix_transpose
""".split())
#: cupy.linalg's names in CuPy 13 (14.2 adds cross, matmul, matrix_transpose, eig, eigvals, cond).
LINALG13 = frozenset("matrix_power cholesky qr svd eigh eigvalsh norm det matrix_rank slogdet solve tensorsolve lstsq "
                     "inv pinv tensorinv LinAlgError".split())
#: curandRngType_t (curand.h; cupy_backends/cuda/libs/curand.pxd).
CURAND = {"CURAND_RNG_PSEUDO_DEFAULT": 100, "CURAND_RNG_PSEUDO_XORWOW": 101, "CURAND_RNG_PSEUDO_MRG32K3A": 121,
          "CURAND_RNG_PSEUDO_MTGP32": 141, "CURAND_RNG_PSEUDO_MT19937": 142, "CURAND_RNG_PSEUDO_PHILOX4_32_10": 161}
#: functions that take host data (a copy to the device), not only device arrays
_HOST_IN = {"asarray", "array", "asanyarray", "ascontiguousarray", "asfortranarray", "zeros", "ones", "empty", "full",
            "arange", "linspace", "eye", "identity", "finfo", "iinfo", "dtype", "result_type", "can_cast",
            "promote_types", "isscalar", "ndim", "shape", "size"}


class ndarray(np.ndarray):
    """The stand-in's device array: a numpy array that refuses plain numpy operands."""

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        _refuse_host(inputs, ufunc.__name__)
        out = getattr(ufunc, method)(*_base(inputs), **_base(kwargs))
        return _wrap(out)

    def __array_function__(self, func, types_, args, kwargs):
        return _wrap(func(*_base(args), **_base(kwargs)))

    def get(self, stream=None, order="C", out=None, blocking=True):
        return np.array(self.view(np.ndarray), order=order)

    def __float__(self):
        return float(self.view(np.ndarray))

    def __int__(self):
        return int(self.view(np.ndarray))

    def __bool__(self):
        return bool(self.view(np.ndarray))


ndarray.__module__ = "cupy"


def _base(x):
    if isinstance(x, ndarray):
        return x.view(np.ndarray)
    if isinstance(x, (list, tuple)):
        return type(x)(_base(v) for v in x)
    if isinstance(x, dict):
        return {k: _base(v) for k, v in x.items()}
    return x


def _wrap(x):
    if isinstance(x, np.ndarray):
        return x if isinstance(x, ndarray) else x.view(ndarray)
    if isinstance(x, np.generic):
        return np.asarray(x).view(ndarray)
    if isinstance(x, tuple) and hasattr(x, "_fields"):  # numpy's named results: CuPy returns plain tuples
        return tuple(_wrap(v) for v in x)
    if isinstance(x, (list, tuple)):
        return type(x)(_wrap(v) for v in x)
    return x


def _refuse_host(args, name: str) -> None:
    for a in args:
        if isinstance(a, (list, tuple)):
            _refuse_host(a, name)
        elif isinstance(a, np.ndarray) and not isinstance(a, ndarray):
            raise TypeError(f"Unsupported type {type(a)} (cupy.{name}: a host numpy array where CuPy wants a device "
                            "array)")


def _device_fn(fn, name: str, host_in: bool = False):
    def call(*args, **kwargs):
        if not host_in:
            _refuse_host(args, name)
            _refuse_host(list(kwargs.values()), name)
        return _wrap(fn(*_base(args), **_base(kwargs)))

    call.__name__ = call.__qualname__ = name
    return call


class CURANDError(RuntimeError):
    pass


class RandomState:
    """cupy.random.RandomState on the host: numpy's Philox seeded with ``seed`` (not cuRAND's numbers)."""

    def __init__(self, seed=None, method=None):
        method = CURAND["CURAND_RNG_PSEUDO_DEFAULT"] if method is None else method
        if method not in CURAND.values():
            raise CURANDError(f"CURAND_STATUS_TYPE_ERROR: curandCreateGenerator refuses rng type {method!r}")
        if seed is not None:
            if np.asarray(seed).dtype.kind not in "biu":
                raise TypeError("Seed must be an integer.")
            if not 0 <= int(seed) < 2**64:
                raise ValueError("Seed must be an integer between 0 and 2**64 - 1")
        self.method = method
        self.g = np.random.Generator(np.random.Philox(seed))

    @staticmethod
    def _float(dtype):
        dtype = np.dtype(dtype)
        if dtype.char not in "fd":
            raise TypeError(f"cupy.random only supports float32 and float64; got {dtype}")
        return dtype

    def standard_normal(self, size=None, dtype=float):
        return _wrap(np.asarray(self.g.standard_normal(size, dtype=self._float(dtype))))

    def random_sample(self, size=None, dtype=float):
        return _wrap(np.asarray(self.g.random(size, dtype=self._float(dtype))))

    def randint(self, low, high=None, size=None, dtype=int):
        lo, hi = (0, low) if high is None else (low, high)
        if lo >= hi:
            raise ValueError("low >= high")
        return _wrap(np.asarray(self.g.integers(lo, hi, size=size)).astype(dtype, copy=False))


class _Module(types.ModuleType):
    """The stand-in module: CuPy's names only (AttributeError for the rest, as CuPy's module __getattr__)."""

    def __getattr__(self, name):
        if name.startswith("__") or name not in self._names or not hasattr(np, name):
            raise AttributeError(f"module 'cupy' has no attribute {name!r}")
        value = getattr(np, name)
        if callable(value) and not isinstance(value, type):
            value = _device_fn(value, name, name in _HOST_IN)
        setattr(self, name, value)
        return value


def _eigh(a, UPLO="L"):
    _refuse_host([a], "linalg.eigh")
    a = _base(a)
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise np.linalg.LinAlgError("Last 2 dimensions of the array must be square")
    return _wrap(np.linalg.eigh(a, UPLO=UPLO))


def make_fake_cupy(version: str = "13", free: int = 2**30) -> types.ModuleType:
    """A fresh stand-in module ``cupy`` of CuPy ``version`` ("13", "14" or "14.2"); ``mod.free[0]`` is the
    free device memory ``cuda.runtime.memGetInfo`` reports and ``mod.fused`` what ``fuse`` was given."""
    names = set(CUPY13_NAMES)
    if version in ("14", "14.2"):
        names |= CUPY14_ADDED
    if version == "14.2":
        names |= CUPY142_ADDED
    mod = _Module("cupy")
    mod._names = frozenset(names)
    mod.__version__ = {"13": "13.6.0", "14": "14.0.1", "14.2": "14.2.0"}[version]
    mod.ndarray = ndarray
    mod.free, mod.fused = [int(free)], []
    mod.asnumpy = lambda a, stream=None, order="C", out=None, blocking=True: (
        a.get(order=order) if isinstance(a, ndarray) else np.array(a, order=order))
    mod.get_array_module = lambda *args: mod
    mod.pool_free = [0]  # bytes CuPy's memory pool holds unused (counted as free by CupyBackend.free_memory)
    mod.get_default_memory_pool = lambda: types.SimpleNamespace(free_bytes=lambda: mod.pool_free[0],
                                                                used_bytes=lambda: 0, total_bytes=lambda: 0)

    def fuse(*args, **kwargs):
        def deco(fn):
            mod.fused.append(fn)
            return fn

        return deco(args[0]) if len(args) == 1 and callable(args[0]) and not kwargs else deco

    mod.fuse = fuse
    linalg = types.ModuleType("cupy.linalg")
    for n in LINALG13 | ({"cross", "matmul", "matrix_transpose", "eig", "eigvals", "cond"} if version == "14.2"
                         else set()):
        if hasattr(np.linalg, n):
            v = getattr(np.linalg, n)
            setattr(linalg, n, v if isinstance(v, type) else _device_fn(v, "linalg." + n))
    linalg.eigh = _eigh
    mod.linalg = linalg
    random = types.ModuleType("cupy.random")
    random.RandomState = RandomState
    mod.random = random
    NS = types.SimpleNamespace
    props = {"name": b"Stand-in (numpy)", "totalGlobalMem": 2**34}
    mod.cuda = NS(runtime=NS(getDeviceCount=lambda: 1, memGetInfo=lambda: (mod.free[0], 2**34),
                             getDeviceProperties=lambda i: dict(props)),
                  curand=NS(**CURAND), Stream=NS(null=NS(synchronize=lambda: None)), CURANDError=CURANDError)
    return mod


@pytest.fixture
def fake_cupy(monkeypatch):
    """The stand-in as ``sys.modules["cupy"]`` for one test; smfsym's compile cache is emptied before and after
    (compiled functions hold the namespace they were compiled for)."""
    from smfsym.montecarlo.cache import cache_clear

    cache_clear()
    mod = make_fake_cupy()
    monkeypatch.setitem(sys.modules, "cupy", mod)
    yield mod
    cache_clear()
