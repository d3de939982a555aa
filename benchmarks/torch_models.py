"""The presets in PyTorch, for the benchmarks: the twins live in :mod:`tinygan.interop.torch_models`.

The scripts here import ``torch_models`` from beside them; this module keeps that import working.
"""

from tinygan.interop.torch_models import Crop2d, TorchGAN, View, to_torch

__all__ = ["Crop2d", "TorchGAN", "View", "to_torch"]
