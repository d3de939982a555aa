"""Array backends: NumPy on the CPU, CuPy on an NVIDIA GPU.

tinygan never imports ``cupy`` at module level. Array code asks the array which module it belongs to
(``xp = get_array_module(x)``) and then writes ``xp.exp``, ``xp.zeros`` ... so one code path serves both
devices. CuPy is imported lazily, the first time a GPU is asked for or a CuPy array is seen.

Randomness is explicit: every function that draws random numbers takes a ``numpy.random.Generator``
(or CuPy's) made by :func:`make_rng`; nothing touches NumPy's global random state.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType
from typing import Any, TypeAlias

import numpy as np

#: An array on either device, ``numpy.ndarray`` or ``cupy.ndarray``. CuPy is optional, so the alias
#: cannot name its class; in a signature it says "an array" where ``Any`` would say nothing.
Array: TypeAlias = Any

DEVICES = ("cpu", "gpu")

_GPU_HELP = (
    "the 'gpu' device needs CuPy and an NVIDIA GPU with a working CUDA driver. "
    "Install CuPy with `pip install tinygan[gpu]` (or the cupy-cudaXXx wheel matching your CUDA), "
    "or run on the CPU with device='cpu'."
)


def _cupy_if_loaded() -> ModuleType | None:
    """CuPy if something already imported it; never triggers the (slow) import itself."""
    return sys.modules.get("cupy")


def get_array_module(*arrays: Any) -> ModuleType:
    """The array module (``numpy`` or ``cupy``) that the given arrays belong to.

    Any CuPy array among ``arrays`` selects ``cupy``; otherwise ``numpy``. Scalars and ``None`` are ignored.
    """
    cupy = _cupy_if_loaded()
    if cupy is not None:
        for array in arrays:
            if isinstance(array, cupy.ndarray):
                return cupy
    return np


def device_of(array: Any) -> str:
    """``"gpu"`` for a CuPy array, ``"cpu"`` for anything else."""
    return "gpu" if get_array_module(array) is not np else "cpu"


def check_device(device: str) -> str:
    """Validate a device name and, for ``"gpu"``, that CuPy and a GPU are usable. Returns the name."""
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; expected one of {DEVICES}")
    if device == "gpu":
        _require_cupy()
    return device


def _require_cupy() -> ModuleType:
    try:
        import cupy
    except ImportError as error:
        raise RuntimeError(f"CuPy is not installed: {_GPU_HELP}") from error
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            raise RuntimeError("no CUDA device found")
    except Exception as error:  # CuPy raises its own CUDARuntimeError types
        raise RuntimeError(f"no usable GPU ({error}): {_GPU_HELP}") from error
    return cupy


def gpu_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    try:
        _require_cupy()
    except RuntimeError:
        return False
    return True


def to_device(array: Any, device: str) -> Any:
    """Return ``array`` on ``device`` (no copy when it is already there)."""
    if check_device(device) == "cpu":
        return to_numpy(array)
    cupy = _require_cupy()
    return cupy.asarray(array)


def to_numpy(array: Any) -> np.ndarray:
    """Return a NumPy array, copying from the GPU when ``array`` is a CuPy array."""
    cupy = _cupy_if_loaded()
    if cupy is not None and isinstance(array, cupy.ndarray):
        return cupy.asnumpy(array)
    return np.asarray(array)


def make_rng(seed: int | None = None, device: str = "cpu") -> Any:
    """A seeded random generator for ``device``: ``numpy.random.Generator`` or CuPy's.

    The same seed on the same device gives the same numbers. NumPy's and CuPy's generators use
    different streams, so the same seed gives *different* numbers on the CPU and on the GPU; that is
    why initial weights are always drawn on the CPU (see :mod:`tinygan.init`).
    """
    if check_device(device) == "gpu":
        return _require_cupy().random.default_rng(seed)
    return np.random.default_rng(seed)


def rng_device(rng: Any) -> str:
    """``"gpu"`` for a CuPy generator, ``"cpu"`` for NumPy's: where the arrays it draws live."""
    return "gpu" if type(rng).__module__.split(".")[0] == "cupy" else "cpu"


def move_rng(rng: Any, device: str) -> Any:
    """A generator on ``device`` that continues ``rng``'s randomness.

    Returned unchanged when it already lives there; otherwise a new generator for ``device`` is seeded
    by one draw from ``rng``, so moving is deterministic (the same run moves to the same numbers).
    """
    if rng_device(rng) == check_device(device):
        return rng
    return make_rng(int(rng.integers(0, 2**31 - 1)), device)


def new_seed() -> int:
    """A fresh random seed from the operating system, small enough to print and type back."""
    return int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF
