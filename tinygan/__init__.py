"""tinygan: a from-scratch GAN engine on NumPy/CuPy with hand-derived backpropagation.

The reading order is docs/tour.md: :mod:`tinygan.gan` (one training step), :mod:`tinygan.nn.layer`
(the layer contract), :mod:`tinygan.nn.dense`, :mod:`tinygan.losses`, :mod:`tinygan.nn.activations`,
:mod:`tinygan.nn.batchnorm`, :mod:`tinygan.nn.conv` and :mod:`tinygan.nn.conv_transpose`,
:mod:`tinygan.optim` (Adam), :mod:`tinygan.gradcheck` and :mod:`tinygan.theory`; then
:mod:`tinygan.run.train` (the loop made reusable), :mod:`tinygan.run.checkpoint` and :mod:`tinygan.models`
(the presets).
"""

from tinygan import _old_paths, init, losses, nn, optim, penalties
from tinygan.backend import get_array_module, make_rng, to_device, to_numpy
from tinygan.gan import GAN, StepStats
from tinygan.losses import sigmoid_cross_entropy
from tinygan.overrides import active_kernels, set_kernels

_old_paths.install()

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
    "penalties",
    "set_kernels",
    "sigmoid_cross_entropy",
    "to_device",
    "to_numpy",
]
