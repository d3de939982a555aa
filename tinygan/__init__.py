"""tinygan: a from-scratch GAN engine on NumPy/CuPy with hand-derived backpropagation.

Subpackages and modules, in reading order: :mod:`tinygan.backend` (NumPy or CuPy),
:mod:`tinygan.nn` (layers), :mod:`tinygan.losses`, :mod:`tinygan.optim`, :mod:`tinygan.gradcheck`,
:mod:`tinygan.gan` (one training step), :mod:`tinygan.train` (the loop), :mod:`tinygan.models` (presets).
"""

from tinygan import init, losses, nn, optim
from tinygan.backend import get_array_module, make_rng, to_device, to_numpy
from tinygan.gan import GAN, StepStats
from tinygan.losses import sigmoid_cross_entropy
from tinygan.overrides import active_kernels, set_kernels

__version__ = "0.1.0"

__all__ = [
    "GAN",
    "StepStats",
    "active_kernels",
    "get_array_module",
    "init",
    "losses",
    "make_rng",
    "nn",
    "optim",
    "set_kernels",
    "sigmoid_cross_entropy",
    "to_device",
    "to_numpy",
]
