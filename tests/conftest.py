"""Shared fixtures: devices to run on, seeded generators, and the location of real MNIST files."""

from __future__ import annotations

import os
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tinygan.backend import gpu_available
from tinygan.data import bundled_mnist_dir

#: The kernel sets a test can switch between; "numba" needs Numba and the optional tinygan.kernels.
KERNEL_SETS = [
    "reference",
    pytest.param(
        "numba",
        marks=pytest.mark.skipif(
            find_spec("numba") is None or find_spec("tinygan.kernels") is None,
            reason="needs Numba and tinygan.kernels",
        ),
    ),
]

DEVICES = [
    "cpu",
    "emulated",
    pytest.param(
        "gpu", marks=pytest.mark.skipif(not gpu_available(), reason="needs CuPy and a GPU")
    ),
]


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> str:
    """Each test using this fixture runs on the CPU, on the emulated device (GPU-style arrays that
    refuse implicit host conversion, :mod:`tinygan.testing`), and on the GPU where one is usable."""
    return request.param


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


def mnist_dir() -> Path:
    """A folder holding the MNIST test split: $TINYGAN_DATA's when it has the files, else the copy
    bundled with the package, so the tests on real digits always run."""
    folder = os.environ.get("TINYGAN_DATA")
    if folder:
        for candidate in (Path(folder), Path(folder) / "mnist"):
            if any(candidate.glob("t10k-images-idx3-ubyte*")):
                return candidate
    return bundled_mnist_dir()


def torch_layer_outputs(module: Any, x: np.ndarray) -> list[np.ndarray]:
    """The output of every child of a PyTorch ``module`` for the input ``x``, in order (a twin of a
    tinygan network has one child per leaf layer)."""
    import torch

    outputs: list[np.ndarray] = []
    hooks = [
        child.register_forward_hook(lambda _, __, out: outputs.append(out.detach().numpy().copy()))
        for child in module.children()
    ]
    try:
        with torch.no_grad():
            module(torch.from_numpy(x))
    finally:
        for hook in hooks:
            hook.remove()
    return outputs
