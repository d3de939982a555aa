r"""Stacked MNIST: three MNIST digits in the three channels of one image, 1,000 modes.

Each image stacks three digits drawn independently, one per colour channel, so its class is the
three-digit number :math:`100 d_0 + 10 d_1 + d_2` and the data has 1,000 modes, nearly equally
likely (MNIST's ten classes are close to, not exactly, balanced).
It measures mode collapse in Metz, Poole, Pfau and Sohl-Dickstein ("Unrolled Generative
Adversarial Networks", ICLR 2017, arXiv 1611.02163), VEEGAN (Srivastava et al.,
NeurIPS 2017, arXiv 1705.07761) and PacGAN (Lin et al., NeurIPS 2018, arXiv 1712.04086); a
generator's modes are counted by classifying each channel with an MNIST classifier
(:func:`tinygan.quality.metrics.stacked_mnist_modes`).

The digits come from whichever MNIST split is on disk (:func:`tinygan.data.load_mnist_or_bundled`),
the 10,000 test digits bundled with tinygan when nothing else is. Either holds about a thousand
digits of every class, so the stacked images vary within each mode as well as across modes.
"""

from __future__ import annotations

import operator
import os

import numpy as np

from tinygan.data.mnist import PYTHON_OPTIONS, OptionNames, load_mnist_or_bundled

#: Modes of Stacked MNIST: three digits, ten classes each.
STACKED_MODES = 1000
#: Weights that turn the three channels' digits into the mode's number ``100 d0 + 10 d1 + d2``.
DIGIT_PLACES = np.array([100, 10, 1], dtype=np.int64)


def stacked_labels(digits: np.ndarray) -> np.ndarray:
    """The mode of each stacked image from its channels' digits (N, 3): int64 (N,), 0..999."""
    digits = np.asarray(digits)
    if digits.ndim != 2 or digits.shape[1] != 3:
        raise ValueError(f"digits must have shape (N, 3), got {digits.shape}")
    return digits.astype(np.int64) @ DIGIT_PLACES


def stack_digits(
    images: np.ndarray, labels: np.ndarray, count: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``count`` stacked images from single digits.

    Parameters
    ----------
    images : numpy.ndarray, shape (M, 28, 28)
        Source digits, any dtype (uint8 pixels as :func:`tinygan.data.load_mnist` returns them).
    labels : numpy.ndarray, shape (M,)
        Their classes, 0..9.
    count : int
        Stacked images to make, >= 0.
    rng : numpy.random.Generator
        Picks the ``3 * count`` source digits, independently and uniformly with replacement.

    Returns
    -------
    stacked : numpy.ndarray, shape (count, 3, 28, 28), images' dtype
        Channel ``c`` of image ``n`` is source digit ``picks[n, c]``.
    modes : numpy.ndarray, shape (count,), int64
        ``100 * labels[picks[:, 0]] + 10 * labels[picks[:, 1]] + labels[picks[:, 2]]``.
    """
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim != 3 or labels.shape != (len(images),) or len(images) == 0:
        raise ValueError(
            f"stack_digits needs images (M, H, W) and labels (M,) with M >= 1, got "
            f"{images.shape} and {labels.shape}"
        )
    count = operator.index(count)
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    picks = rng.integers(len(images), size=(count, 3))
    return images[picks], stacked_labels(labels[picks])


def load_stacked_mnist(
    rng: np.random.Generator,
    count: int | None = None,
    split: str = "train",
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    allow_bundled: bool = True,
    option_names: OptionNames = PYTHON_OPTIONS,
) -> tuple[np.ndarray, np.ndarray, str | None]:
    """Stacked MNIST built from the MNIST ``split`` on disk (or the bundled test digits).

    Parameters
    ----------
    rng : numpy.random.Generator
        Picks the digits (:func:`stack_digits`): the same seed gives the same data set.
    count : int, optional
        Stacked images to make; by default as many as the split has digits (60,000 for the
        training split, 10,000 for the bundled test digits).
    split, data_dir, download, allow_bundled, option_names
        As for :func:`tinygan.data.load_mnist_or_bundled`.

    Returns
    -------
    images : numpy.ndarray
        uint8 of shape (count, 3, 28, 28) (NCHW; :func:`tinygan.data.images_to_float` scales it).
    modes : numpy.ndarray
        int64 of shape (count,), 0..999.
    notice : str or None
        The notice of :func:`~tinygan.data.load_mnist_or_bundled` when the bundled digits stood in.
    """
    digits, labels, notice = load_mnist_or_bundled(
        split, data_dir, "mnist", download, allow_bundled, option_names
    )
    images, modes = stack_digits(digits, labels, len(digits) if count is None else count, rng)
    return images, modes, notice
