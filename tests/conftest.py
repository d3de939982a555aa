"""Shared fixtures: devices to run on, seeded generators, and the location of real MNIST files."""

from __future__ import annotations

import os
from importlib.util import find_spec
from pathlib import Path

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
