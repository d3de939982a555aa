"""The classifier's network: a LeNet-style convolutional net and the image layout it reads.

::

    Conv 1->16 5x5 same, ReLU, MaxPool 2      28x28 -> 14x14
    Conv 16->32 5x5 same, ReLU, MaxPool 2     14x14 -> 7x7
    Flatten, Dense 1568->128, ReLU            the 128 features
    Dense 128->10                             the logits

The 128 features are where the Frechet distance and the precision / recall manifolds live; the
softmax of the logits gives the class probabilities of the Inception Score and of mode coverage.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tinygan.backend import device_of, get_array_module, to_device, to_numpy
from tinygan.data import images_to_float
from tinygan.data.mnist import IMAGE_SHAPE as MNIST_IMAGE_SHAPE
from tinygan.data.mnist import NUM_CLASSES
from tinygan.init import he_uniform
from tinygan.losses import log_softmax
from tinygan.nn import Conv2D, Dense, Flatten, Layer, MaxPool2D, ReLU, Sequential

IMAGE_SHAPE = (1, *MNIST_IMAGE_SHAPE)
"""One image as the network reads it: one channel of 28 x 28 (NCHW without the N)."""


class Classifier(Sequential):
    """A feature extractor followed by a linear head: ``logits = head(features(x))``.

    Parameters
    ----------
    features : Layer
        Maps images ``(N, 1, 28, 28)`` to the penultimate activations ``(N, F)`` (the space of the
        Frechet distance and of the precision / recall manifolds).
    head : Layer
        Maps ``(N, F)`` to class logits ``(N, K)``.
    info : dict, optional
        What it was trained on and how well it does (filled by
        :func:`tinygan.quality.classifier.train_classifier`).

    Notes
    -----
    It is a two-child :class:`~tinygan.nn.Sequential`, so the forward pass, the backward pass, the
    optimizers, ``state_dict`` and ``to(device)`` all work unchanged; :meth:`embed` adds batched
    inference that returns both the features and the class probabilities in one pass.
    """

    def __init__(self, features: Layer, head: Layer, info: dict[str, Any] | None = None) -> None:
        super().__init__(features, head)
        self.info: dict[str, Any] = dict(info or {})

    @property
    def features(self) -> Layer:
        return self.layers[0]

    @property
    def head(self) -> Layer:
        return self.layers[1]

    @property
    def device(self) -> str:
        """``"cpu"`` or ``"gpu"``: where the parameters live (inputs are moved there)."""
        first = next((p for layer in self.walk() for p in layer.params.values()), None)
        return "cpu" if first is None else device_of(first)

    def embed(self, images: Any, batch_size: int = 500) -> tuple[np.ndarray, np.ndarray]:
        """Penultimate features and class probabilities of ``images``, in evaluation mode.

        Parameters
        ----------
        images : array, shape (N, 28, 28), (N, 784) or (N, 1, 28, 28)
            uint8 pixels, or floats in [0, 1] (see :func:`as_classifier_input`).
        batch_size : int
            Images per forward pass (bounds the memory of the convolutions' patch matrices).

        Returns
        -------
        features : numpy.ndarray, shape (N, F), float64
        probabilities : numpy.ndarray, shape (N, K), float64
            Softmax of the logits; each row sums to 1.
        """
        x = as_classifier_input(images)
        if len(x) == 0:
            raise ValueError("embed needs at least one image")
        device, features, probabilities = self.device, [], []
        for start in range(0, len(x), batch_size):
            f = self.features(to_device(x[start : start + batch_size], device))
            # the softmax in float64, so that rows sum to 1 to double precision
            logits = self.head(f).astype(get_array_module(f).float64)
            features.append(to_numpy(f).astype(np.float64))
            probabilities.append(np.exp(to_numpy(log_softmax(logits))))
        return np.concatenate(features), np.concatenate(probabilities)

    def predict(self, images: Any, batch_size: int = 500) -> np.ndarray:
        """Most probable class of each image: int64 array of shape (N,)."""
        return self.embed(images, batch_size)[1].argmax(axis=1)

    def accuracy(self, images: Any, labels: Any, batch_size: int = 500) -> float:
        """Fraction of ``images`` whose predicted class equals ``labels``."""
        labels = np.asarray(labels)
        return float(np.mean(self.predict(images, batch_size) == labels)) if len(labels) else 0.0


def as_classifier_input(images: Any) -> Any:
    """Images as the float32 ``(N, 1, 28, 28)`` batch a classifier reads, values in [0, 1].

    uint8 pixels are scaled by 1/255; floating images are taken to be in [0, 1] already (generated
    images mapped from the generator's range, as :func:`tinygan.run.sampling.generate` returns them).
    Flat ``(N, 784)`` rows and ``(N, 28, 28)`` stacks are reshaped. The array stays on its device.
    """
    xp = get_array_module(images)
    images = xp.asarray(images)
    if images.dtype == np.uint8:
        images = images_to_float(images)
    elif not xp.issubdtype(images.dtype, xp.floating):
        raise TypeError(f"images must be uint8 or floating, got {images.dtype}")
    if images.ndim < 2 or math.prod(images.shape[1:]) != math.prod(IMAGE_SHAPE):
        raise ValueError(
            f"expected images of shape (N, 28, 28), (N, 784) or (N, 1, 28, 28), got {images.shape}"
        )
    return images.reshape(len(images), *IMAGE_SHAPE).astype(np.float32, copy=False)


def build_classifier(
    rng: np.random.Generator,
    channels: tuple[int, int] = (16, 32),
    hidden: int = 128,
    num_classes: int = NUM_CLASSES,
    dtype: Any = np.float32,
) -> Classifier:
    """The LeNet-style network of the module docstring, with He-uniform weights (ReLU layers).

    Parameters
    ----------
    rng : numpy.random.Generator
        Draws the initial weights.
    channels : (int, int)
        Output channels of the two convolutions.
    hidden : int
        Size of the feature layer.
    num_classes : int
    dtype : dtype
    """
    c1, c2 = channels
    weights = he_uniform()
    features = Sequential(
        Conv2D(1, c1, 5, padding="same", weight_init=weights, rng=rng, dtype=dtype),
        ReLU(),
        MaxPool2D(2),
        Conv2D(c1, c2, 5, padding="same", weight_init=weights, rng=rng, dtype=dtype),
        ReLU(),
        MaxPool2D(2),
        Flatten(),
        Dense(c2 * 7 * 7, hidden, weight_init=weights, rng=rng, dtype=dtype),
        ReLU(),
    )
    return Classifier(features, Dense(hidden, num_classes, rng=rng, dtype=dtype))
