"""Array back ends of the Monte Carlo driver (issue 19): numpy (the default) and device array libraries.

A :class:`Backend` names an array namespace ``xp`` (the Python Array API, or a numpy-compatible GPU
library), what the lambdify wrapper targets for it (:attr:`Backend.lambdify_modules`), a random
stream per seed block (:meth:`Backend.generator`), the copy back to the host (:meth:`Backend.to_numpy`)
and the free memory of its device (:meth:`Backend.free_memory`). :func:`get_backend` takes a name of
:data:`BACKENDS` or a Backend instance, as ``scipy.integrate.solve_ivp`` takes its methods.

- ``"numpy"``: the engine's own path, bitwise unchanged (PCG64 streams per seed block).
- ``"cupy"``: CuPy on an NVIDIA GPU (``pip install "smfsym[gpu]"``), float64 by default; random
  streams from cuRAND's counter-based Philox4x32-10 generator, one per seed block, seeded from the
  block's ``SeedSequence``.
- ``"jax"``: JAX (``pip install "smfsym[jax]"``; its CUDA build for a GPU), float64 by default (JAX's
  64-bit mode is turned on); random streams from JAX's counter-based Threefry-2x32, one key per seed
  block, seeded from the block's ``SeedSequence``; each lambdified expression list compiled by
  ``jax.jit``. CI runs it on JAX's CPU wheel: a real second array library (immutable arrays).
- ``"array_api_strict"``: the Array API reference namespace on the CPU, the stand-in that CI runs
  the device code path on (it refuses implicit numpy conversions, so a hidden host copy in the loop
  fails there). Its streams are numpy's Philox from the same ``SeedSequence`` blocks.

Numbers differ between back ends (other generators, other reduction orders); on one back end and
device they are the same for a given seed whatever the chunking. They agree statistically (tested).

Examples
--------
>>> get_backend("numpy").name
'numpy'
>>> get_backend("numpyy")
Traceback (most recent call last):
...
ValueError: `backend` must be one of ['array_api_strict', 'cupy', 'jax', 'numpy'] or a smfsym.backends.Backend; got 'numpyy'.
"""
from __future__ import annotations

import importlib
import warnings

import numpy as np

__all__ = ["Backend", "NumpyBackend", "CupyBackend", "JaxBackend", "ArrayApiStrictBackend", "BACKENDS", "get_backend",
           "Float32Warning"]


class Float32Warning(UserWarning):
    """Single precision was asked for: weak errors below about 1e-5 are not resolved."""


class _Namespace:
    """What ``numpy.<name>`` resolves to in code lambdified for another namespace: ``xp.<name>``,
    with the few numpy spellings the Array API names otherwise."""

    _ALIASES = {"arcsin": "asin", "arccos": "acos", "arctan": "atan", "arctan2": "atan2", "arcsinh": "asinh",
                "arccosh": "acosh", "arctanh": "atanh", "power": "pow", "amax": "max", "amin": "min",
                "absolute": "abs"}

    def __init__(self, xp, dtype=None, special=None):
        self._xp, self._dtype, self._special = xp, dtype, special

    def __getattr__(self, name):
        xp = self._xp
        if name in ("erf", "erfc") and self._special is not None and hasattr(self._special, name):
            fn = self.__dict__[name] = getattr(self._special, name)
            return fn
        if name in _PIECEWISE:  # sympy prints Piecewise with numpy's select and logical_and.reduce
            fn = self.__dict__[name] = _PIECEWISE[name](xp, self._dtype)
            return fn
        fn = getattr(xp, name, None)
        if fn is None and self._ALIASES.get(name) is not None:
            fn = getattr(xp, self._ALIASES[name], None)
        if fn is not None:
            host = getattr(np, name, None)
            if callable(fn) and callable(host):
                fn = _scalars_on_host(fn, host)
            self.__dict__[name] = fn  # resolved once per name
            return fn
        raise AttributeError(f"the array namespace {getattr(xp, '__name__', xp)!r} has no {name!r}: this "
                             "expression cannot be evaluated on this back end")


class _Reducible:
    """``numpy.logical_and`` / ``logical_or`` as sympy prints them: called on two operands, or ``.reduce``
    over a tuple of conditions (a Piecewise's ``&`` and ``|``)."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, a, b):
        return self.fn(a, b)

    def reduce(self, items):
        items = list(items)
        out = items[0]
        for item in items[1:]:
            out = self.fn(out, item)
        return out


def _select(xp, dtype):
    """``numpy.select(condlist, choicelist, default)`` (how sympy prints a Piecewise) with the namespace's
    ``where`` only: the first true condition's choice, element by element; a literal True ends the list."""

    def select(condlist, choicelist, default=float("nan")):
        out = default
        for cond, choice in reversed(list(zip(condlist, choicelist))):
            if isinstance(cond, (bool, np.bool_, int, float)):  # a constant condition (host numbers: 1.0 or 0.0)
                out = choice if cond else out
                continue
            if isinstance(choice, (int, float)) and isinstance(out, (int, float)):
                choice = xp.zeros_like(cond, dtype=xp.float64 if dtype is None else dtype) + float(choice)
            out = xp.where(cond, choice, out)
        return out

    return select


_PIECEWISE = {"select": _select, "logical_and": lambda xp, dtype: _Reducible(xp.logical_and),
              "logical_or": lambda xp, dtype: _Reducible(xp.logical_or)}


def _scalars_on_host(fn, host):
    """``fn`` for arrays, numpy's ``host`` for plain numbers (constant subterms such as sqrt(2), which the
    Array API functions refuse): a Python float either way."""

    def call(*args):
        if all(isinstance(a, (int, float)) for a in args):
            return float(host(*args))
        return fn(*args)

    call.__name__ = getattr(fn, "__name__", "f")
    return call


class Backend:
    """An array back end: its namespace, random streams, host copies and device memory.

    Subclasses set :attr:`name` and :attr:`module` (the library imported on first use) and may
    override :meth:`generator`, :meth:`to_numpy` and :meth:`free_memory`. ``dtype`` is
    ``"float64"`` (default) or ``"float32"`` (with a :class:`Float32Warning`).
    """

    name = "backend"
    module = ""
    extra = "gpu"
    #: whether arrays live on an accelerator (chunk sizes then come from its free memory)
    device = False

    def __init__(self, dtype: str = "float64"):
        if isinstance(dtype, np.dtype) or (isinstance(dtype, type) and issubclass(dtype, np.generic)):
            dtype = np.dtype(dtype).name  # np.float32 or np.dtype("float32"): the name is what is looked up
        if not isinstance(dtype, str) or dtype not in ("float64", "float32"):
            raise ValueError(f"`dtype` must be 'float64' or 'float32'; got {dtype!r}.")
        if dtype == "float32":
            warnings.warn(f"backend {self.name!r} in float32: about 7 significant digits, so weak errors below "
                          "about 1e-5 and statistics of long horizons are not resolved; float64 is the default.",
                          Float32Warning, stacklevel=2)
        self.dtype_name = dtype
        self._xp = None

    def __repr__(self):
        return f"{type(self).__name__}(dtype={self.dtype_name!r})"

    def __getstate__(self):
        # the namespace is a module: imported again where the object is unpickled
        return {k: v for k, v in self.__dict__.items() if k not in ("_xp", "device_obj")}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._xp = None

    @property
    def xp(self):
        """The array namespace (imported on first use; ImportError naming the extra when missing)."""
        if self._xp is None:
            self._xp = self._import()
        return self._xp

    def _import(self):
        try:
            return importlib.import_module(self.module)
        except ImportError as exc:
            raise ImportError(f"backend={self.name!r} needs the {self.module!r} package, which is not installed "
                              f"({exc}): pip install \"smfsym[{self.extra}]\"") from None

    @property
    def dtype(self):
        return getattr(self.xp, self.dtype_name)

    #: the module of the back end's special functions (erf, erfc), imported when an expression needs one
    special_module = ""

    @property
    def lambdify_modules(self) -> list:
        """``modules=`` for ``sympy.lambdify`` with sympy's numpy printer: ``numpy.f`` resolves to ``xp.f``
        (``numpy.erf`` to the back end's special functions)."""
        special = None
        if self.special_module:
            try:
                special = importlib.import_module(self.special_module)
            except ImportError:
                special = None
        return [{"numpy": _Namespace(self.xp, self.dtype, special)}]

    #: the device arrays are made on (None: the namespace's default)
    device_obj = None

    def _kw(self) -> dict:
        self.xp  # imported first: importing may set the device
        return {} if self.device_obj is None else {"device": self.device_obj}

    def asarray(self, a):
        """A host array (or number) on the back end, in its dtype."""
        return self.xp.asarray(np.asarray(a, dtype=self.dtype_name), **self._kw())

    def zeros(self, shape, dtype=None):
        """Zeros on the back end's device (its float dtype unless ``dtype`` is given)."""
        return self.xp.zeros(shape, dtype=self.dtype if dtype is None else dtype, **self._kw())

    def full(self, shape, value, dtype=None):
        """``value`` everywhere, on the back end's device."""
        return self.xp.full(shape, value, dtype=self.dtype if dtype is None else dtype, **self._kw())

    def broadcast(self, value, shape):
        """An output of a lambdified expression (an array or a constant number) broadcast to ``shape``."""
        if isinstance(value, (int, float)):
            return self.full(shape, float(value))
        return value if tuple(value.shape) == tuple(shape) else self.xp.broadcast_to(value, shape)

    def to_numpy(self, a) -> np.ndarray:
        """A back-end array as a numpy array on the host (float64)."""
        return np.asarray(a, dtype=float)

    def generator(self, seed_sequence: np.random.SeedSequence):
        """The random stream of one seed block: ``standard_normal(shape)``, ``random(shape)`` (uniform on
        [0, 1)) and ``integers(high, shape)`` returning back-end arrays."""
        return _HostPhilox(self, seed_sequence)

    def free_memory(self) -> int | None:
        """Free bytes on the device (None: the host's memory, chunked as numpy is)."""
        return None

    def describe(self) -> dict:
        """What a saved study records of the back end: what, besides the seed, decides its numbers."""
        return {"backend": self.name, "dtype": self.dtype_name}

    @property
    def key(self) -> tuple:
        """What a compilation for this back end depends on (part of the compile cache's keys)."""
        return (self.name, self.dtype_name)

    def compile(self, fn):
        """A lambdified function as this back end runs it (as it is; ``CupyBackend(fuse=True)``: one fused
        kernel per call)."""
        return fn

    def synchronize(self) -> None:
        """Wait for queued device work (for timings)."""


class NumpyBackend(Backend):
    """numpy: the engine's own path (bitwise the numbers of every earlier release)."""

    name = "numpy"
    module = "numpy"

    def generator(self, seed_sequence):
        return np.random.Generator(np.random.PCG64(seed_sequence))


class ArrayApiStrictBackend(Backend):
    """The Array API reference namespace on the CPU: the device code path, checked in CI."""

    name = "array_api_strict"
    module = "array_api_strict"
    extra = "test"

    def _import(self):
        xp = super()._import()
        # arrays live on array_api_strict's stand-in device "device1": numpy refuses to convert them and
        # they do not mix with arrays made on the CPU, so a hidden host copy or host-made array fails
        self.device_obj = xp.Device("device1")
        return xp

    def to_numpy(self, a) -> np.ndarray:
        xp = self.xp
        cpu = xp.__array_namespace_info__().default_device()
        return np.array(np.from_dlpack(xp.asarray(a, dtype=xp.float64).to_device(cpu)), dtype=float)


class _ArrayAPINames:
    """A numpy-like module (CuPy 13) with the Array API names it lacks filled in from its own functions
    (``concat``, ``permute_dims``, ``astype``, ``bool``, ``pow``, ``matrix_transpose``); every other name is the
    module's."""

    _FILL = {"concat": lambda m: m.concatenate, "permute_dims": lambda m: m.transpose, "bool": lambda m: m.bool_,
             "pow": lambda m: m.power, "astype": lambda m: _astype,
             "matrix_transpose": lambda m: (lambda x: m.swapaxes(x, -1, -2))}

    def __init__(self, module):
        self._module = module
        self.__name__ = getattr(module, "__name__", "module")

    def __getattr__(self, name):
        module = self.__dict__["_module"]
        if hasattr(module, name):
            value = getattr(module, name)
        elif name in self._FILL:
            value = self._FILL[name](module)
        else:
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        self.__dict__[name] = value
        return value


def _astype(x, dtype, copy: bool = True):
    return x.astype(dtype, copy=copy)


class CupyBackend(Backend):
    """CuPy on an NVIDIA GPU: a cuRAND Philox4x32-10 stream per seed block, on the device."""

    name = "cupy"
    module = "cupy"
    special_module = "cupyx.scipy.special"
    device = True

    def __init__(self, dtype: str = "float64", fuse: bool = False):
        super().__init__(dtype)
        if not isinstance(fuse, (bool, np.bool_)):
            raise TypeError(f"`fuse` must be True or False; got {fuse!r}.")
        #: compile each lambdified expression list into one kernel with ``cupy.fuse`` (experimental: a
        #: function that CuPy cannot fuse runs unfused, counted in :attr:`fuse_failures`)
        self.fuse = bool(fuse)
        self.fuse_failures = 0

    def __repr__(self):
        return f"CupyBackend(dtype={self.dtype_name!r}, fuse={self.fuse})"

    @property
    def key(self) -> tuple:
        return (self.name, self.dtype_name, self.fuse)

    def compile(self, fn):
        return _Fused(fn, self) if self.fuse else fn

    def _import(self):
        xp = super()._import()
        try:
            if xp.cuda.runtime.getDeviceCount() < 1:
                raise RuntimeError("no CUDA device")
        except Exception as exc:  # noqa: BLE001 - cupy raises its own CUDARuntimeError
            raise RuntimeError(f"backend='cupy': CuPy is installed but no CUDA device is usable ({exc}); "
                               "use backend='numpy' on this machine.") from None
        return _ArrayAPINames(xp)

    def to_numpy(self, a) -> np.ndarray:
        return np.asarray(self.xp.asnumpy(a), dtype=float)

    def generator(self, seed_sequence):
        # cuRAND's host-API Philox4x32-10 (cupy.random.RandomState): a few bytes of state per seed block
        # and one kernel per draw of any size (CuPy's Generator keeps per-thread states of megabytes)
        xp = self.xp
        state = seed_sequence.generate_state(2, np.uint32)
        seed = (int(state[0]) | (int(state[1]) << 32)) & (2**63 - 1)
        return _CupyStream(xp.random.RandomState(seed, method=_PHILOX), self.dtype)

    def free_memory(self) -> int:
        # the driver's free bytes and the blocks CuPy's memory pool holds unused (freed arrays of an earlier run
        # stay in the pool, which memGetInfo counts as used: without them a second run would chunk smaller)
        xp = self.xp
        free = int(xp.cuda.runtime.memGetInfo()[0])
        try:
            free += int(xp.get_default_memory_pool().free_bytes())
        except Exception:  # noqa: BLE001 - a CuPy without the pool API (or with the pool disabled)
            pass
        return free

    def synchronize(self) -> None:
        self.xp.cuda.Stream.null.synchronize()


class JaxBackend(Backend):
    """JAX (``pip install "smfsym[jax]"``; a CUDA build of jaxlib puts it on the GPU): JAX's counter-based
    Threefry-2x32 stream per seed block, each lambdified expression list compiled by ``jax.jit`` (one XLA
    computation per list and array shape; ``jit=False`` dispatches op by op).

    JAX's 64-bit mode (``jax_enable_x64``), which JAX leaves off, is turned on for the whole process the first
    time a JAX back end imports JAX, whatever ``dtype``: float64 states need it, and with it the streams and the
    bookkeeping (int64 step counters, float64 statistics) do not depend on what ran before. A run that finds it
    turned off again refuses to start rather than run in another precision with other numbers. The device is
    JAX's default one (``jax.default_backend()``; choose with ``JAX_PLATFORMS`` or ``CUDA_VISIBLE_DEVICES``).

    Parameters
    ----------
    dtype : {"float64", "float32"}
        The states' precision; float32 warns (:class:`Float32Warning`).
    jit : bool
        True (default): each lambdified expression list is one XLA computation. False dispatches operation by
        operation (slower; the same draws, for debugging, e.g. with ``jax_debug_nans``).

    Examples
    --------
    >>> import warnings
    >>> from smfsym import RunOptions
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore", Float32Warning)
    ...     RunOptions(backend=JaxBackend(dtype="float32")).backend
    JaxBackend(dtype='float32', jit=True)
    """

    name = "jax"
    module = "jax.numpy"
    extra = "jax"
    special_module = "jax.scipy.special"

    def __init__(self, dtype: str = "float64", jit: bool = True):
        super().__init__(dtype)
        if not isinstance(jit, (bool, np.bool_)):
            raise TypeError(f"`jit` must be True or False; got {jit!r}.")
        self.jit = bool(jit)

    def __repr__(self):
        return f"JaxBackend(dtype={self.dtype_name!r}, jit={self.jit})"

    @property
    def key(self) -> tuple:
        return (self.name, self.dtype_name, self.jit)

    def _import(self):
        xp = super()._import()
        import jax

        global _JAX_X64_TURNED_ON
        if not _JAX_X64_TURNED_ON:  # once per process: turned off later, it stays off and runs refuse (generator)
            jax.config.update("jax_enable_x64", True)
            _JAX_X64_TURNED_ON = True
        return xp

    def describe(self) -> dict:
        # what else decides the numbers of a seed: JAX's version, its device, and its stream's settings
        jax = self.jax
        return {**super().describe(), "library": f"jax {jax.__version__}", "device": jax.default_backend(),
                "prng": "threefry2x32" + (", partitionable" if jax.config.jax_threefry_partitionable else "")}

    @property
    def jax(self):
        """The ``jax`` module (imported with the namespace)."""
        self.xp
        import jax

        return jax

    @property
    def device(self) -> bool:
        # on an accelerator the chunk sizes come from its free memory (read before any array is made)
        return self.jax.default_backend() != "cpu"

    def compile(self, fn):
        return self.jax.jit(_as_list(fn)) if self.jit else fn

    def to_numpy(self, a) -> np.ndarray:
        return np.asarray(self.jax.device_get(a), dtype=float)

    def generator(self, seed_sequence):
        jax = self.jax
        if not jax.config.jax_enable_x64:  # (every run draws: this is where a run starts on JAX)
            raise RuntimeError("backend='jax': JAX's 64-bit mode (jax_enable_x64) was turned off after smfsym turned "
                               "it on; in 32-bit mode a float64 run would silently run in float32, with other "
                               "numbers. Turn it on again (jax.config.update('jax_enable_x64', True)) before the run.")
        lo, hi = (int(w) for w in seed_sequence.generate_state(2, np.uint32))
        # 31 bits into the key (a Python int above int32 overflows when 64-bit mode is off), the rest folded in
        # Threefry named, not JAX's configurable default implementation (JAX_DEFAULT_PRNG_IMPL=rbg: other numbers)
        key = jax.random.key(lo & 0x7FFFFFFF, impl="threefry2x32")
        key = jax.random.fold_in(jax.random.fold_in(key, hi), lo >> 31)
        return _JaxStream(jax.random, key, self.dtype)

    def free_memory(self) -> int | None:
        if not self.device:
            return None
        stats = self.jax.devices()[0].memory_stats() or {}
        if "bytes_limit" not in stats:
            return None
        return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))

    def synchronize(self) -> None:
        # JAX has no device-wide barrier; every run ends by copying its statistics to the host, which waits
        self.jax.effects_barrier()


#: whether a JaxBackend turned on JAX's 64-bit mode in this process (it does so once)
_JAX_X64_TURNED_ON = False


class _JaxStream:
    """A seed block's JAX stream with the interface of :class:`_HostPhilox`: every draw takes a fresh
    subkey (``jax.random.split``), so the block's draws are a fixed sequence whatever the chunking."""

    def __init__(self, random, key, dtype):
        self.r, self.key, self.dtype = random, key, dtype

    def _next(self):
        self.key, sub = self.r.split(self.key)
        return sub

    def standard_normal(self, shape):
        return self.r.normal(self._next(), tuple(shape), dtype=self.dtype)

    def integers(self, high: int, shape):
        return self.r.randint(self._next(), tuple(shape), 0, high, dtype="int32")

    def random(self, shape):
        return self.r.uniform(self._next(), tuple(shape), dtype=self.dtype)


def _as_list(fn):
    def call(*args):
        out = fn(*args)
        return list(out) if isinstance(out, (list, tuple)) else out

    return call


class _HostPhilox:
    """A seed block's stream for a namespace without generators: numpy's Philox from the same
    SeedSequence, drawn on the host and copied in (array_api_strict, a CPU stand-in)."""

    def __init__(self, backend: Backend, seed_sequence):
        self.backend = backend
        self.g = np.random.Generator(np.random.Philox(seed_sequence))

    def standard_normal(self, shape):
        return self.backend.asarray(self.g.standard_normal(shape))

    def integers(self, high: int, shape):
        return self.backend.xp.asarray(self.g.integers(0, high, size=shape, dtype=np.int64), **self.backend._kw())

    def random(self, shape):
        return self.backend.asarray(self.g.random(shape))


class _Fused:
    """A lambdified function run as one ``cupy.fuse`` kernel; unfused (and counted) where CuPy refuses it."""

    def __init__(self, fn, backend):
        self.fn, self.backend = fn, backend
        self.fused = backend.xp.fuse(_as_tuple(fn))

    def __call__(self, *args):
        if self.fused is not None:
            try:
                return list(self.fused(*args))
            except Exception:  # noqa: BLE001 - CuPy's fusion refuses some code (constant outputs, ...)
                self.fused = None
                self.backend.fuse_failures += 1
        return self.fn(*args)


def _as_tuple(fn):
    def call(*args):
        return tuple(fn(*args))

    return call


#: cuRAND's ``CURAND_RNG_PSEUDO_PHILOX4_32_10`` (curand.h: 161; cupy_backends/cuda/libs/curand.pxd), the
#: ``method`` of ``cupy.random.RandomState`` (100 is cuRAND's default XORWOW; other numbers are refused).
_PHILOX = 161


class _CupyStream:
    """A seed block's CuPy stream with the interface of :class:`_HostPhilox`."""

    def __init__(self, rs, dtype):
        self.g, self.dtype = rs, dtype

    def standard_normal(self, shape):
        return self.g.standard_normal(size=shape, dtype=self.dtype)

    def integers(self, high: int, shape):
        return self.g.randint(0, high, size=shape)

    def random(self, shape):
        return self.g.random_sample(size=shape, dtype=self.dtype)


#: The back ends by name; :func:`get_backend` also takes an instance.
BACKENDS = {"numpy": NumpyBackend, "cupy": CupyBackend, "jax": JaxBackend, "array_api_strict": ArrayApiStrictBackend}


def get_backend(backend) -> Backend:
    """A :class:`Backend` from a name of :data:`BACKENDS` or an instance (returned as it is).

    The library is imported only when its namespace is first used, so naming a back end costs nothing;
    a missing library raises an ImportError naming the extra to install.
    """
    if isinstance(backend, Backend):
        return backend
    if isinstance(backend, type) and issubclass(backend, Backend) and backend.module:
        return backend()  # (the abstract Backend names no library: refused below)
    if isinstance(backend, str) and backend in BACKENDS:
        return BACKENDS[backend]()
    raise ValueError(f"`backend` must be one of {sorted(BACKENDS)} or a smfsym.backends.Backend; got {backend!r}.")
