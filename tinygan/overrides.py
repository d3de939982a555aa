"""Optional fast replacements for named plain functions, chosen once per process.

The math of tinygan is written as plain functions (``xp = get_array_module(x)``, then NumPy/CuPy
code) beside the layers and optimizers that use them. They are the specification, and they are what
runs unless a replacement is registered. A function marked :func:`overridable` can be replaced for
one kind of array by a function registered under the same name, with the same signature and the
same results up to rounding:

* ``"cpu"``: NumPy arrays of float32 or float64 (the dtypes compiled kernels are built for);
* ``"gpu"``: CuPy arrays of float32 or float64;
* ``"any"``: whatever the first argument is. This is for fast paths written in plain array code
  that serve every device and dtype alike: the optimizers' flat buffers
  (:mod:`tinygan.kernels.flat`), which replace :func:`tinygan.optim.update_parameters` and
  :func:`tinygan.optim.zero_gradients`, whose first argument is the optimizer.

The kind is read from the first argument, and a replacement for its kind wins over one for
``"any"``; any other array (float16, integers, the emulated device's arrays of
:mod:`tinygan.testing`) has no kernels of its own: the emulated device exists to check the plain
array code that a GPU runs, whatever kernels are registered.

Which replacements are registered is decided once, at the first call of an overridable function,
from the environment: ``TINYGAN_NUMBA=0`` (or ``false``, ``no``, ``off``) registers nothing,
anything else loads the Numba kernels of :mod:`tinygan.kernels` and the flat buffers, and its
CuPy kernels too when CuPy can be imported (without CuPy there is no GPU array for them to run on,
so their absence says nothing). :func:`set_kernels` decides explicitly and may be called again to
switch. Kernels that were asked for and cannot load (Numba not installed, or CuPy present but unable
to build its kernels) warn once with the reason, and the plain functions run. The
``tinygan.kernels`` package is optional: when it is absent and nothing asked for it, the plain
functions run quietly.
"""

from __future__ import annotations

import functools
import importlib
import os
import warnings
from collections.abc import Callable
from importlib.util import find_spec
from typing import Any, TypeVar

import numpy as np

from tinygan.backend import device_of

F = TypeVar("F", bound=Callable[..., Any])

#: The kernel sets :func:`set_kernels` accepts, and the module that registers each one.
KERNEL_MODULES: dict[str, str | None] = {
    "numba": "tinygan.kernels.cpu_numba",
    "reference": None,
}
#: The module that registers a kernel set's GPU kernels, loaded after :data:`KERNEL_MODULES`' one
#: only where CuPy can be imported.
GPU_KERNEL_MODULES: dict[str, str] = {"numba": "tinygan.kernels.gpu_cupy"}
#: The module that registers a kernel set's fast paths for every kind (``"any"``), loaded once its
#: CPU kernels have loaded: with the kernels off, the plain per-parameter optimizer runs.
ANY_KIND_MODULES: dict[str, str] = {"numba": "tinygan.kernels.flat"}
KINDS = ("cpu", "gpu", "any")

_plain: dict[str, Callable[..., Any]] = {}
# Filled and emptied in place, never rebound: every dispatcher holds a reference to these dicts.
_replacements: dict[str, dict[str, Callable[..., Any]]] = {kind: {} for kind in KINDS}
_active: str | None = None
_warned: set[str] = set()


def overridable(plain: F) -> F:
    """Mark ``plain`` as replaceable by a kernel registered under its name.

    The returned function runs the replacement registered for its first argument's kind, else
    ``plain`` itself, which stays reachable as the attribute ``.plain``.
    """
    name = plain.__name__
    if name in _plain:
        raise ValueError(f"two overridable functions are named {name!r}")
    _plain[name] = plain
    cpu, gpu, anything = _replacements["cpu"], _replacements["gpu"], _replacements["any"]

    @functools.wraps(plain)
    def dispatch(first: Any, *args: Any, **kwargs: Any) -> Any:
        if _active is None:
            _choose(_from_environment(), requested=False)
        if isinstance(first, np.ndarray):
            function = cpu.get(name) if first.dtype.char in "fd" else None
        else:
            gpu_float = device_of(first) == "gpu" and first.dtype.char in "fd"
            function = gpu.get(name) if gpu_float else None
        return (function or anything.get(name) or plain)(first, *args, **kwargs)

    dispatch.plain = plain  # type: ignore[attr-defined]
    return dispatch  # type: ignore[return-value]


def register(name: str, kind: str, function: Callable[..., Any]) -> None:
    """Run ``function`` instead of the overridable function ``name`` on arrays of ``kind``.

    Raises ``KeyError`` when no overridable function has that name: a misspelt kernel would
    otherwise never run, silently.
    """
    if name not in _plain:
        raise KeyError(f"no overridable function is named {name!r}")
    if kind not in KINDS:
        raise ValueError(f"unknown array kind {kind!r}; expected one of {KINDS}")
    _replacements[kind][name] = function


def replacement(name: str, kind: str) -> Callable[..., Any] | None:
    """The function registered for ``name`` on arrays of ``kind``, or ``None``."""
    active_kernels()
    return _replacements[kind].get(name)


def plain(name: str) -> Callable[..., Any]:
    """The plain function of the overridable function ``name``: the specification."""
    return _plain[name]


def overridable_names() -> list[str]:
    """Names of every function marked overridable so far (those of imported modules)."""
    return sorted(_plain)


def set_kernels(kernels: str) -> str:
    """Use the kernel set ``kernels``: ``"numba"`` or ``"reference"`` (the plain functions only).

    Replaces whatever was registered before. Returns the set now active: ``kernels``, or
    ``"reference"`` when the requested set could not load (a warning then says why).
    """
    if kernels not in KERNEL_MODULES:
        raise ValueError(f"unknown kernels {kernels!r}; expected one of {tuple(KERNEL_MODULES)}")
    return _choose(kernels, requested=True)


def active_kernels() -> str:
    """The kernel set in use, choosing it from the environment if nothing has yet."""
    if _active is None:
        _choose(_from_environment(), requested=False)
    return _active  # type: ignore[return-value]


def _from_environment() -> str:
    off = os.environ.get("TINYGAN_NUMBA", "1").strip().lower() in ("0", "false", "no", "off")
    return "reference" if off else "numba"


def _choose(kernels: str, requested: bool) -> str:
    global _active
    for table in _replacements.values():
        table.clear()
    _active = "reference"
    module_name = KERNEL_MODULES[kernels]
    if module_name is None:
        return _active
    explicit = requested or "TINYGAN_NUMBA" in os.environ
    if not explicit and find_spec("tinygan.kernels") is None:
        return _active
    if not _load(module_name, f"{kernels} kernels", "NumPy", KINDS):
        return _active
    _active = kernels
    any_kind_module = ANY_KIND_MODULES.get(kernels)
    if any_kind_module is not None:
        _load(any_kind_module, "flat parameter buffers", "per-parameter", ("any",))
    gpu_module = GPU_KERNEL_MODULES.get(kernels)
    if gpu_module is not None and _cupy_importable():
        # The CPU kernels stay when these fail: each set serves its own kind of array.
        _load(gpu_module, "CuPy kernels", "CuPy", ("gpu",))
    return _active


def _load(module_name: str, what: str, plain_library: str, kinds: tuple[str, ...]) -> bool:
    """Import ``module_name`` and call its ``register()``. On any failure, empty the tables of
    ``kinds``, warn once with the reason and return False: the plain functions run."""
    try:
        importlib.import_module(module_name).register()
    except Exception as error:  # any failure to load leaves the plain functions, said once
        for kind in kinds:
            _replacements[kind].clear()
        reason = f"{type(error).__name__}: {error}"
        if reason not in _warned:
            _warned.add(reason)
            warnings.warn(
                f"tinygan: the {what} could not be loaded ({reason}); "
                f"the plain {plain_library} functions run instead",
                RuntimeWarning,
                stacklevel=4,
            )
        return False
    return True


def _cupy_importable() -> bool:
    """Whether ``import cupy`` can be attempted, decided without importing it."""
    try:
        return find_spec("cupy") is not None
    except (ImportError, ValueError):  # a stand-in module without a spec is not CuPy
        return False
