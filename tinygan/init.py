"""Weight initializers.

An initializer is a callable ``init(shape, rng, fan_in, fan_out) -> numpy.ndarray`` (float64). Layers
call it with the fans of their weight layout and cast the result to their dtype. Weights are always drawn
on the CPU from a ``numpy.random.Generator``, so the same seed gives the same initial model on every device.

==================  ===========================================  ==========================
name                distribution                                 used by
==================  ===========================================  ==========================
``normal(std)``     N(0, std^2)                                  the MLP GAN tutorials
``glorot_uniform``  U(-a, a), a = sqrt(6 / (fan_in + fan_out))   Keras' default
``he_uniform``      U(-a, a), a = sqrt(6 / fan_in)               ReLU networks
``zeros``           0
``constant(c)``     c                                            bias 0.1 in the TensorFlow
                                                                 MLP GAN tutorial
==================  ===========================================  ==========================
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Initializer = Callable[[tuple[int, ...], np.random.Generator, int, int], np.ndarray]


def normal(std: float = 0.02, mean: float = 0.0) -> Initializer:
    """Gaussian N(mean, std^2), independent of the fans."""

    def draw(shape: tuple[int, ...], rng: np.random.Generator, fan_in: int, fan_out: int):
        return rng.normal(mean, std, size=shape)

    return draw


def _uniform(limit: Callable[[int, int], float]) -> Initializer:
    def draw(shape: tuple[int, ...], rng: np.random.Generator, fan_in: int, fan_out: int):
        a = limit(fan_in, fan_out)
        return rng.uniform(-a, a, size=shape)

    return draw


def glorot_uniform() -> Initializer:
    """Glorot/Xavier uniform: keeps activation variance across layers (Keras' default)."""
    return _uniform(lambda fan_in, fan_out: float(np.sqrt(6.0 / (fan_in + fan_out))))


def he_uniform() -> Initializer:
    """He/Kaiming uniform: variance 2 / fan_in, for ReLU layers."""
    return _uniform(lambda fan_in, fan_out: float(np.sqrt(6.0 / fan_in)))


def constant(value: float) -> Initializer:
    """Every entry equal to ``value``."""

    def draw(shape: tuple[int, ...], rng: np.random.Generator, fan_in: int, fan_out: int):
        return np.full(shape, float(value))

    return draw


def zeros() -> Initializer:
    """All zeros (the usual bias)."""
    return constant(0.0)


def make_param(
    init: Initializer,
    shape: tuple[int, ...],
    rng: np.random.Generator,
    fan_in: int,
    fan_out: int,
    dtype: np.dtype | type = np.float32,
) -> np.ndarray:
    """Draw a parameter with ``init`` from ``rng`` on the CPU and cast it to ``dtype``."""
    return np.asarray(init(tuple(shape), rng, fan_in, fan_out), dtype=dtype)


def layer_rng(rng: np.random.Generator | None) -> np.random.Generator:
    """The generator a layer draws its initial weights from: ``rng``, or one seeded with 0.

    A layer built without a generator (``Dense(4, 3)`` in a quick experiment) still gets the same
    weights on every run; models pass one seeded generator through all their layers.
    """
    return rng if rng is not None else np.random.default_rng(0)
