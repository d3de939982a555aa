"""The hot paths behind one interface, with three implementations.

* :mod:`tinygan.kernels.reference` -- readable NumPy (written with ``xp = get_array_module(x)``, so it
  also runs on CuPy arrays). It is the specification the others are tested against.
* ``tinygan.kernels.cpu_numba`` -- the same functions compiled with Numba, for NumPy arrays.
* ``tinygan.kernels.gpu_cupy`` -- the same functions as CuPy kernels, for CuPy arrays.

Callers use the functions re-exported here; each call dispatches on the type of its first array and,
on the CPU, on whether Numba is installed and enabled (``TINYGAN_NUMBA=0`` turns it off). An
implementation module may provide a subset of the functions: the rest fall back to the reference.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from functools import cache
from types import ModuleType
from typing import Any

import numpy as np

from tinygan.backend import get_array_module
from tinygan.kernels import reference


def numba_enabled() -> bool:
    """True unless ``TINYGAN_NUMBA=0`` is set or Numba cannot be imported."""
    if os.environ.get("TINYGAN_NUMBA", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    return _optional_module("tinygan.kernels.cpu_numba") is not None


@cache
def _optional_module(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


#: The dtypes the Numba kernels are compiled for; any other (float16, integers) uses the reference.
NUMBA_DTYPES = (np.float32, np.float64)


def implementation_for(array: Any) -> ModuleType:
    """The kernel module that serves ``array``: CuPy's, Numba's or the reference."""
    if get_array_module(array) is not np:
        return _optional_module("tinygan.kernels.gpu_cupy") or reference
    if getattr(array, "dtype", None) in NUMBA_DTYPES and numba_enabled():
        return _optional_module("tinygan.kernels.cpu_numba") or reference
    return reference


def dispatch(name: str) -> Callable[..., Any]:
    """A function that forwards to ``name`` in the implementation chosen by its first argument."""

    def kernel(array: Any, *args: Any, **kwargs: Any) -> Any:
        module = implementation_for(array)
        function = getattr(module, name, None) or getattr(reference, name)
        return function(array, *args, **kwargs)

    kernel.__name__ = name
    kernel.__doc__ = getattr(reference, name).__doc__
    return kernel


# Pooling, upsampling and batch normalisation (tinygan.nn.pooling, tinygan.nn.batchnorm).
maxpool_forward = dispatch("maxpool_forward")
maxpool_backward = dispatch("maxpool_backward")
upsample_nearest = dispatch("upsample_nearest")
upsample_nearest_backward = dispatch("upsample_nearest_backward")
batchnorm_moments = dispatch("batchnorm_moments")
batchnorm_forward = dispatch("batchnorm_forward")
batchnorm_backward = dispatch("batchnorm_backward")
# Convolution (tinygan.nn.conv, tinygan.nn.conv_transpose).
im2col = dispatch("im2col")
col2im = dispatch("col2im")
# Elementwise activations and dropout (tinygan.nn.activations, tinygan.nn.dropout).
leaky_relu = dispatch("leaky_relu")
leaky_relu_backward = dispatch("leaky_relu_backward")
sigmoid = dispatch("sigmoid")
sigmoid_backward = dispatch("sigmoid_backward")
tanh_backward = dispatch("tanh_backward")
dropout = dispatch("dropout")
# Optimizer updates, in place (tinygan.optim); they dispatch on the parameter.
sgd_update = dispatch("sgd_update")
adam_update = dispatch("adam_update")
rmsprop_update = dispatch("rmsprop_update")
