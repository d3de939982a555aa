"""An emulated device: GPU-style arrays on the CPU, to test the GPU code paths without a GPU.

CuPy arrays compute with NumPy's functions and operators, but refuse to become NumPy arrays
implicitly, and every number read back to Python is a synchronisation with the device. Code that works
on NumPy can therefore still fail on a GPU (a NumPy array mixed into a device computation, a host
library handed a device array) or be slow there (a scalar read or a transfer in every step). The
emulated device reproduces exactly that, on NumPy:

* :class:`EmulatedArray` wraps a NumPy array. NumPy's functions and ufuncs called on it dispatch to
  the emulator (``__array_function__`` / ``__array_ufunc__``, as CuPy's arrays do) and return emulated
  arrays, reductions included (0-d arrays, as on a GPU).
* ``np.asarray(e)`` raises ``TypeError``, and so does mixing an emulated array with a NumPy array in an
  operator, a function or an index; Python scalars and 0-d NumPy arrays mix freely.
* Data moves only explicitly: :func:`tinygan.backend.to_device` (``device="emulated"``) and
  :func:`tinygan.backend.to_numpy`. Both are counted in :data:`transfers`, and so are scalar reads
  (``float(e)``, ``int(e)``, ``bool(e)``, ``e.item()``, formatting a 0-d array).
* :data:`xp`, what ``get_array_module`` returns for emulated arrays, offers NumPy's functions on
  emulated arrays, except those CuPy lacks (:data:`NOT_IN_CUPY`): code that uses one fails on the
  emulated device as it would on a GPU.

Examples
--------
>>> import numpy as np
>>> from tinygan.backend import to_device, to_numpy
>>> e = to_device(np.arange(3.0), "emulated")
>>> with transfers.counting() as counts:
...     total = float((e * 2).sum())
>>> total, counts.scalar_reads
(6.0, 1)
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin

#: NumPy names that CuPy does not provide, with what to use instead. Reaching one through the
#: emulator's namespace, or calling it on an emulated array, raises ``TypeError`` with the reason.
NOT_IN_CUPY: dict[str, str] = {
    "ufunc.at": "CuPy's ufuncs have no unbuffered in-place .at; use cupyx.scatter_add",
    "errstate": "CuPy has no floating-point error state; use numpy.errstate around host code only",
    "seterr": "CuPy has no floating-point error state",
    "nditer": "CuPy has no element iterator; write the loop as array operations",
    "frompyfunc": "CuPy cannot run Python functions per element; use cupy.ElementwiseKernel",
    "piecewise": "CuPy's piecewise takes no callables; use where",
}


@dataclasses.dataclass
class TransferCounts:
    """How often data crossed between the emulated device and the host."""

    #: ``float``, ``int``, ``bool``, ``.item()``, ``.tolist()`` or formatting of an emulated array
    scalar_reads: int = 0
    #: copies of emulated arrays to NumPy (:func:`tinygan.backend.to_numpy`)
    to_host: int = 0
    #: copies of host data to the emulated device (``to_device``, ``xp.asarray`` of host data)
    to_device: int = 0


class TransferCounter(TransferCounts):
    """The running totals, with :meth:`counting` to count within a block."""

    @contextlib.contextmanager
    def counting(self) -> Iterator[TransferCounts]:
        """Yield counts that, when the block ends, hold what happened inside it."""
        start = dataclasses.replace(self)
        counts = TransferCounts()
        try:
            yield counts
        finally:
            for field in dataclasses.fields(TransferCounts):
                name = field.name
                setattr(counts, name, getattr(self, name) - getattr(start, name))


#: Every transfer and scalar read of the emulated device since the process started.
transfers = TransferCounter()


def to_device(host: Any) -> EmulatedArray:
    """A copy of host data on the emulated device (what ``to_device(x, "emulated")`` does)."""
    if isinstance(host, EmulatedArray):
        return host
    transfers.to_device += 1
    return EmulatedArray(np.array(host, copy=True))


def to_host(array: EmulatedArray) -> np.ndarray:
    """A NumPy copy of an emulated array (what ``to_numpy`` does)."""
    transfers.to_host += 1
    return array.data.copy()


def _refuse_host_array(value: np.ndarray) -> None:
    raise TypeError(
        f"a NumPy array of shape {value.shape} cannot be mixed with emulated (device) arrays; move it "
        "with tinygan.backend.to_device first, as CuPy requires"
    )


def _unwrap(value: Any) -> Any:
    """The NumPy data behind emulated arrays in ``value`` (nested in lists, tuples and dicts).

    Raises ``TypeError`` for a NumPy array with dimensions: a device computation cannot read host
    memory. 0-d NumPy arrays and scalars pass, as CuPy takes them as scalars.
    """
    if isinstance(value, EmulatedArray):
        return value.data
    if isinstance(value, np.ndarray):
        if value.ndim:
            _refuse_host_array(value)
        return value
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap(item) for item in value)
    if isinstance(value, dict):
        return {key: _unwrap(item) for key, item in value.items()}
    return value


def _wrap(value: Any) -> Any:
    """Emulated arrays for the arrays (and NumPy scalars, which a GPU returns as 0-d arrays) in
    ``value``."""
    if isinstance(value, np.ndarray):
        return EmulatedArray(value)
    if isinstance(value, np.generic) and value.dtype.kind in "biufc":
        return EmulatedArray(np.asarray(value))
    if isinstance(value, (list, tuple)):
        return type(value)(_wrap(item) for item in value)
    return value


def _call(function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return _wrap(function(*_unwrap(args), **_unwrap(kwargs)))


def _check_available(name: str) -> None:
    if name in NOT_IN_CUPY:
        raise TypeError(f"numpy.{name} is not available on a GPU: {NOT_IN_CUPY[name]}")


class EmulatedArray(NDArrayOperatorsMixin):
    """A NumPy array on the emulated device (see the module's description).

    The NumPy data is the attribute ``data``; reading it bypasses the emulator (and its counters),
    which only tests of the emulator itself should do.
    """

    __slots__ = ("data",)

    def __init__(self, data: np.ndarray) -> None:
        self.data = data

    # -- NumPy's dispatch ------------------------------------------------------------------------
    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        if method == "at":
            _check_available("ufunc.at")
        out = kwargs.get("out")
        if out is not None and not all(isinstance(o, EmulatedArray) for o in out):
            raise TypeError("the out= of a computation on emulated arrays must be emulated arrays")
        result = getattr(ufunc, method)(*_unwrap(inputs), **_unwrap(kwargs))
        if out is not None:  # in place: the emulated arrays given, as NumPy returns its out
            return out[0] if len(out) == 1 else out
        return _wrap(result)

    def __array_function__(
        self, func: Callable[..., Any], types: Any, args: Any, kwargs: dict[str, Any]
    ) -> Any:
        _check_available(func.__name__)
        return _call(func, args, kwargs)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise TypeError(
            "implicit conversion of an emulated (device) array to a NumPy array is not allowed, as "
            "with CuPy; use tinygan.backend.to_numpy to copy it to the host explicitly"
        )

    # -- reads back to the host, counted ---------------------------------------------------------
    def _scalar(self) -> Any:
        transfers.scalar_reads += 1
        return self.data

    def __float__(self) -> float:
        return float(self._scalar())

    def __int__(self) -> int:
        return int(self._scalar())

    def __bool__(self) -> bool:
        return bool(self._scalar())

    def __complex__(self) -> complex:
        return complex(self._scalar())

    def __format__(self, spec: str) -> str:
        return format(self.item() if self.data.ndim == 0 else self._scalar(), spec)

    def item(self, *args: Any) -> Any:
        return self._scalar().item(*args)

    def tolist(self) -> Any:
        return self._scalar().tolist()

    def get(self) -> np.ndarray:
        """A NumPy copy, as ``cupy.ndarray.get`` (counted as a transfer to the host)."""
        return to_host(self)

    # -- what describes the array, without reading it (the commonest lookups, made direct) ---------
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    # -- indexing --------------------------------------------------------------------------------
    def __getitem__(self, key: Any) -> Any:
        return _wrap(self.data[_unwrap(key)])

    def __setitem__(self, key: Any, value: Any) -> None:
        # Stricter than CuPy, which copies host data assigned into a device array implicitly: that
        # is a transfer, and transfers must be visible.
        self.data[_unwrap(key)] = _unwrap(value)

    def __len__(self) -> int:
        return len(self.data)

    def __iter__(self) -> Iterator[Any]:
        return (_wrap(row) for row in self.data)

    # -- everything else: NumPy's attributes and methods, on emulated arrays ---------------------
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # copy and pickle probe these on instances not yet filled
            raise AttributeError(name)
        value = getattr(self.data, name)
        if callable(value):
            return lambda *args, **kwargs: _call(value, args, kwargs)
        return _wrap(value)

    def __repr__(self) -> str:
        return f"emulated {self.data!r}"


class _Namespace:
    """A NumPy (sub)module whose functions take and return emulated arrays."""

    def __init__(self, module: ModuleType) -> None:
        self._module = module

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        _check_available(name)
        value = getattr(self._module, name)
        if isinstance(value, ModuleType):
            wrapped: Any = _Namespace(value)
        elif isinstance(value, np.ufunc):
            wrapped = _UFunc(value)
        elif value is np.ndarray:
            wrapped = EmulatedArray
        elif isinstance(value, type) or not callable(value):
            wrapped = value  # dtypes, exception classes, constants
        else:

            def wrapped(*args: Any, **kwargs: Any) -> Any:
                return _call(value, args, kwargs)

            wrapped.__name__ = wrapped.__qualname__ = name
        setattr(self, name, wrapped)  # looked up once
        return wrapped


class _UFunc:
    """A NumPy ufunc on emulated arrays: called, or through ``reduce``, ``outer`` and the like."""

    def __init__(self, ufunc: np.ufunc) -> None:
        self._ufunc = ufunc
        self.__name__ = ufunc.__name__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return _call(self._ufunc, args, kwargs)

    def __getattr__(self, name: str) -> Any:
        if name == "at":
            _check_available("ufunc.at")
        value = getattr(self._ufunc, name)
        if callable(value):
            return lambda *args, **kwargs: _call(value, args, kwargs)
        return value


class EmulatedNamespace(_Namespace):
    """``get_array_module``'s answer for emulated arrays: NumPy's API on the emulated device.

    ``asarray`` and ``array`` also take host data, as ``cupy.asarray`` does, copying it to the device
    (counted). ``random.default_rng`` makes generators that draw emulated arrays from another stream
    than NumPy's for the same seed and, like CuPy's, cannot save their state.
    """

    def __init__(self) -> None:
        super().__init__(np)
        self.random = _EmulatedRandom()

    def asarray(self, value: Any, dtype: Any = None) -> EmulatedArray:
        """``value`` on the device in ``dtype``: host data is copied there."""
        if isinstance(value, EmulatedArray):
            return value if dtype is None else value.astype(dtype, copy=False)
        return to_device(np.asarray(value, dtype=dtype))

    def array(self, value: Any, dtype: Any = None, copy: bool = True) -> EmulatedArray:
        """A copy of ``value`` on the device."""
        if isinstance(value, EmulatedArray):
            return value.astype(value.dtype if dtype is None else dtype, copy=copy)
        return to_device(np.asarray(value, dtype=dtype))


class _EmulatedRandom(_Namespace):
    def __init__(self) -> None:
        super().__init__(np.random)

    def default_rng(self, seed: int | None = None) -> EmulatedGenerator:
        return EmulatedGenerator(seed)


class EmulatedGenerator:
    """A generator of emulated arrays, as ``cupy.random.default_rng`` makes.

    Its stream differs from NumPy's for the same seed (it is seeded from a derived
    :class:`numpy.random.SeedSequence`), and it has no ``bit_generator.state`` to save, as CuPy's
    generators have none: code that relies on either fails on the emulated device.
    """

    def __init__(self, seed: int | None = None) -> None:
        self._host = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2,)))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name == "bit_generator":
            raise AttributeError(
                f"the emulated device's generator has no {name}, as CuPy's has not"
            )
        method = getattr(self._host, name)
        return lambda *args, **kwargs: _wrap(method(*_unwrap(args), **_unwrap(kwargs)))


#: The emulated device's array namespace (``get_array_module`` of an emulated array).
xp = EmulatedNamespace()
