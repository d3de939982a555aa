"""Array backends: NumPy on the CPU, CuPy on an NVIDIA GPU, and an emulated device for testing.

tinygan never imports ``cupy`` at module level. Array code asks the array which module it belongs to
(``xp = get_array_module(x)``) and then writes ``xp.exp``, ``xp.zeros`` ... so one code path serves every
device. CuPy is imported lazily, the first time a GPU is asked for or a CuPy array is seen.

The ``"emulated"`` device (:mod:`tinygan.testing`) keeps NumPy arrays behind a wrapper that refuses
implicit conversion to the host, as CuPy's arrays do, and counts every explicit transfer and scalar
read: it runs the GPU code paths on the CPU, so the tests prove them without a GPU. It is imported only
when it is asked for, by name or by one of its arrays.

Randomness is explicit: every function that draws random numbers takes a generator made by
:func:`make_rng`; nothing touches NumPy's global random state. On the CPU that is a
``numpy.random.Generator``. On a device it is a :class:`DeviceGenerator`: CuPy's own generators cannot
save and restore their state, and a run must resume from a checkpoint with exactly the numbers it
would have drawn, so device randomness is drawn on the host by a NumPy bit generator, in large blocks
moved to the device at once, and turned into uniform or normal numbers there. Its saved state is the
host generator's state where the current block began plus the position in the block. Its stream is
not NumPy's: the same seed gives other numbers on the CPU than on a device (as CuPy's generators
would too), and the same numbers on every device.
"""

from __future__ import annotations

import importlib
import math
import os
import sys
from types import ModuleType
from typing import Any, TypeAlias

import numpy as np

#: An array on any device, ``numpy.ndarray``, ``cupy.ndarray`` or an emulated array. CuPy is
#: optional, so the alias cannot name its class; in a signature it says "an array" where ``Any``
#: would say nothing.
Array: TypeAlias = Any

DEVICES = ("cpu", "gpu", "emulated")

#: The module that implements the emulated device, imported on first use only.
EMULATOR_MODULE = "tinygan.testing"

_GPU_HELP = (
    "the 'gpu' device needs CuPy and an NVIDIA GPU with a working CUDA driver. "
    'Install CuPy with `pip install -e ".[gpu]"` (or the cupy-cudaXXx wheel matching your CUDA), '
    "or run on the CPU with device='cpu'."
)


def _cupy_if_loaded() -> ModuleType | None:
    """CuPy if something already imported it; never triggers the (slow) import itself."""
    return sys.modules.get("cupy")


def _emulator_if_loaded() -> ModuleType | None:
    """The emulator if something already imported it: its arrays cannot exist otherwise."""
    return sys.modules.get(EMULATOR_MODULE)


def _emulator() -> ModuleType:
    return importlib.import_module(EMULATOR_MODULE)


def get_array_module(*arrays: Any) -> Any:
    """The array module (``numpy``, ``cupy`` or the emulator's namespace) the given arrays belong to.

    Any device array among ``arrays`` selects its device's module; otherwise ``numpy``. Scalars and
    ``None`` are ignored.
    """
    cupy = _cupy_if_loaded()
    if cupy is not None:
        for array in arrays:
            if isinstance(array, cupy.ndarray):
                return cupy
    emulator = _emulator_if_loaded()
    if emulator is not None:
        for array in arrays:
            if isinstance(array, emulator.EmulatedArray):
                return emulator.xp
    return np


def device_of(array: Any) -> str:
    """``"gpu"`` for a CuPy array, ``"emulated"`` for an emulated one, ``"cpu"`` for anything else."""
    cupy = _cupy_if_loaded()
    if cupy is not None and isinstance(array, cupy.ndarray):
        return "gpu"
    emulator = _emulator_if_loaded()
    if emulator is not None and isinstance(array, emulator.EmulatedArray):
        return "emulated"
    return "cpu"


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
    """Return ``array`` on ``device`` (no copy when it is already there).

    An array on another device goes through the host: devices share no memory.
    """
    if check_device(device) == "cpu":
        return to_numpy(array)
    if device_of(array) == device:
        return array
    host = to_numpy(array)
    if device == "gpu":
        return _require_cupy().asarray(host)
    return _emulator().to_device(host)


def to_numpy(array: Any) -> np.ndarray:
    """Return a NumPy array, copying from the device when ``array`` lives on one."""
    device = device_of(array)
    if device == "gpu":
        return _cupy_if_loaded().asnumpy(array)
    if device == "emulated":
        return _emulator().to_host(array)
    return np.asarray(array)


class DeviceGenerator:
    """Random numbers on a device that can be saved and restored exactly.

    A NumPy PCG64 generator on the host draws raw 64-bit words in blocks of ``block_size`` (one
    transfer to the device per block, not one per draw); the device turns slices of the block into
    numbers: uniforms from the top bits (53 for float64, 24 for float32, NumPy's construction), normals
    by the Box-Muller transform. :meth:`state` is the host generator's state where the current block
    began and the position in it, so a restored generator redraws the block and continues with the
    very next number. The stream differs from ``numpy.random.default_rng(seed)``'s: the seed is
    derived (a spawned :class:`numpy.random.SeedSequence`) and normals are made differently.

    Parameters
    ----------
    seed : int or None
        The same seed gives the same numbers on every device.
    device : str
        Where the drawn arrays live (``"gpu"`` or ``"emulated"``).
    block_size : int
        Words per block (8 bytes each); a larger request draws a block of its own size.
    """

    def __init__(self, seed: int | None, device: str, block_size: int = 1 << 18) -> None:
        self.device, self.block_size = check_device(device), int(block_size)
        sequence = np.random.SeedSequence(seed, spawn_key=(1,))
        self.host = np.random.Generator(np.random.PCG64(sequence))
        self._block_start: dict[str, Any] = self.host.bit_generator.state
        self._block: Any = None
        self._block_length = self._position = 0

    def _words(self, n: int) -> Array:
        """The next ``n`` raw words, on the device."""
        if self._position + n > self._block_length:
            self._block_start = self.host.bit_generator.state
            self._block_length, self._position = max(self.block_size, n), 0
            self._block = to_device(
                self.host.bit_generator.random_raw(self._block_length), self.device
            )
        words = self._block[self._position : self._position + n]
        self._position += n
        return words

    def _uniform01(self, n: int, dtype: Any) -> Array:
        """``n`` numbers in [0, 1) in ``dtype``: the top 24 or 53 bits of words, scaled."""
        bits = 24 if np.dtype(dtype) == np.float32 else 53
        return (self._words(n) >> (64 - bits)).astype(dtype) * dtype.type(2.0**-bits)

    def random(self, size: int | tuple[int, ...] = (), dtype: Any = np.float64) -> Array:
        """Uniform numbers in [0, 1) of shape ``size``, float32 or float64."""
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"random draws float32 or float64, not {dtype}")
        shape = _shape(size)
        return self._uniform01(math.prod(shape), dtype).reshape(shape)

    def uniform(
        self, low: float = 0.0, high: float = 1.0, size: int | tuple[int, ...] = ()
    ) -> Array:
        """Uniform float64 numbers in [low, high) of shape ``size``."""
        return low + (high - low) * self.random(size)

    def standard_normal(self, size: int | tuple[int, ...] = (), dtype: Any = np.float64) -> Array:
        """N(0, 1) numbers of shape ``size``, by Box-Muller on pairs of float64 uniforms."""
        shape = _shape(size)
        n = math.prod(shape)
        pairs = (n + 1) // 2
        u = self._uniform01(2 * pairs, np.dtype(np.float64))
        xp = get_array_module(u)
        radius = xp.sqrt(-2.0 * xp.log1p(-u[:pairs]))  # log(1 - u): u < 1, so the radius is finite
        angle = (2 * math.pi) * u[pairs:]
        normals = xp.concatenate([radius * xp.cos(angle), radius * xp.sin(angle)])
        return normals[:n].astype(dtype, copy=False).reshape(shape)

    def spawn_seed(self) -> int:
        """A seed for another generator, drawn on the host; the rest of the block is skipped, so the
        state stays a block start and a position."""
        self._block_start = self.host.bit_generator.state
        self._block, self._block_length, self._position = None, 0, 0
        seed = int(self.host.integers(0, 2**31 - 1))
        self._block_start = self.host.bit_generator.state
        return seed

    def state(self) -> dict[str, Any]:
        """The state as JSON-serialisable data: where the block began, its length, the position."""
        return {
            "block_start": self._block_start,
            "block_length": self._block_length,
            "position": self._position,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state`: the block is redrawn, and the next number is the one that was next."""
        self.host.bit_generator.state = state["block_start"]
        self._block_start = self.host.bit_generator.state
        self._block_length, self._position = int(state["block_length"]), int(state["position"])
        self._block = None
        if self._block_length:
            raw = self.host.bit_generator.random_raw(self._block_length)
            self._block = to_device(raw, self.device)

    def __repr__(self) -> str:
        return f"DeviceGenerator(device={self.device!r})"


def _shape(size: int | tuple[int, ...]) -> tuple[int, ...]:
    return (int(size),) if np.isscalar(size) else tuple(int(s) for s in size)


def make_rng(seed: int | None = None, device: str = "cpu") -> Any:
    """A seeded random generator for ``device``: ``numpy.random.Generator`` or a
    :class:`DeviceGenerator`.

    The same seed on the same device gives the same numbers. The CPU's and the devices' generators
    use different streams, so the same seed gives *different* numbers on the CPU and on a device;
    that is why initial weights are always drawn on the CPU (see :mod:`tinygan.init`).
    """
    if check_device(device) == "cpu":
        return np.random.default_rng(seed)
    return DeviceGenerator(seed, device)


def rng_device(rng: Any) -> str:
    """Where the arrays ``rng`` draws live: a :class:`DeviceGenerator`'s device, ``"gpu"`` for a CuPy
    generator, ``"cpu"`` for NumPy's."""
    if isinstance(rng, DeviceGenerator):
        return rng.device
    return "gpu" if type(rng).__module__.split(".")[0] == "cupy" else "cpu"


def move_rng(rng: Any, device: str) -> Any:
    """A generator on ``device`` that continues ``rng``'s randomness.

    Returned unchanged when it already lives there; otherwise a new generator for ``device`` is seeded
    by one draw from ``rng``, so moving is deterministic (the same run moves to the same numbers).
    """
    if rng_device(rng) == check_device(device):
        return rng
    if isinstance(rng, DeviceGenerator):
        return make_rng(rng.spawn_seed(), device)
    return make_rng(int(rng.integers(0, 2**31 - 1)), device)


def rng_state(rng: Any) -> dict[str, Any]:
    """A generator's state as JSON-serialisable data, tagged with the kind of generator."""
    if isinstance(rng, DeviceGenerator):
        return {"kind": "device", **rng.state()}
    return {"kind": "numpy", "state": rng.bit_generator.state}


def restore_rng(rng: Any, state: dict[str, Any]) -> Any:
    """A generator on ``rng``'s device that continues the one whose :func:`rng_state` is ``state``.

    The state goes into ``rng`` itself (which is returned) when it is of the kind that saved it, so
    objects sharing the generator keep sharing it. A state saved on the other side of the CPU/device
    divide cannot continue the same stream there; the generator is then seeded by one draw from the
    saved one, as :func:`move_rng` does, so the result is still deterministic. A bare NumPy
    ``bit_generator.state`` (as checkpoints of earlier versions hold) is a NumPy generator's state.
    """
    kind = state.get("kind", "numpy")
    numpy_state = state.get("state", state)
    device = rng_device(rng)
    if kind == "device":
        if isinstance(rng, DeviceGenerator):
            rng.set_state(state)
            return rng
        saved = DeviceGenerator(None, "cpu")  # only its host generator is used, to draw the seed
        saved.set_state(state)
        return make_rng(saved.spawn_seed(), device)
    if device == "cpu":
        rng.bit_generator.state = numpy_state
        return rng
    saved = np.random.default_rng()
    saved.bit_generator.state = numpy_state
    return move_rng(saved, device)


def new_seed() -> int:
    """A fresh random seed from the operating system, small enough to print and type back."""
    return int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF
