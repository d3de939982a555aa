r"""Mode coverage: how the samples spread over the classes the classifier recognises.

A generator that has *collapsed* onto a few modes produces only some digits. Counting the
classifier's predicted class of each sample shows it directly, without features or real images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tinygan.backend import to_numpy
from tinygan.theory import kl_divergence


@dataclass(frozen=True)
class ModeCoverage:
    """How a sample set spreads over the classes (see :func:`mode_coverage`)."""

    counts: np.ndarray
    """Samples predicted in each class, shape (K,)."""
    classes_hit: int
    """Classes holding at least the minimum share of samples."""
    kl_to_uniform: float
    """:math:`\\mathrm{KL}(\\hat h \\,\\|\\, U_K)` of the class histogram, in nats."""


def mode_coverage(labels: Any, num_classes: int, min_share: float = 0.1) -> ModeCoverage:
    r"""Which classes a sample set covers, from each sample's predicted class.

    Parameters
    ----------
    labels : integer array, shape (N,)
        Predicted class of each sample (``probabilities.argmax(axis=1)``).
    num_classes : int
        :math:`K`.
    min_share : float
        A class counts as hit when it holds at least ``min_share`` of its uniform share
        :math:`N/K` (by default 10% of it: 1% of the samples for 10 classes). A threshold rather than
        "at least one sample", so that a collapsed generator does not get credit for the handful of
        blobs the classifier happens to call another digit.

    Returns
    -------
    ModeCoverage

    Notes
    -----
    With :math:`\hat h_k = n_k / N`,
    :math:`\mathrm{KL}(\hat h \,\|\, U_K) = \sum_k \hat h_k \log(K \hat h_k) = \log K - H(\hat h)`:
    0 for perfectly balanced classes, :math:`\log K` (2.30 nats for 10 classes) when every sample is
    one class. Real data is not perfectly balanced either (MNIST has 11% ones, 9% fives), so compare
    with the figure for real images.
    """
    labels = np.asarray(to_numpy(labels)).ravel()
    if labels.size == 0:
        raise ValueError("mode_coverage needs at least one label")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"labels must lie in 0..{num_classes - 1}")
    counts = np.bincount(labels.astype(np.int64), minlength=num_classes)
    share = counts / counts.sum()
    hit = int(np.count_nonzero(counts >= min_share * counts.sum() / num_classes))
    kl = kl_divergence(share, np.full(num_classes, 1.0 / num_classes))
    # rounding can leave a balanced histogram a hair below 0
    return ModeCoverage(counts=counts, classes_hit=hit, kl_to_uniform=max(kl, 0.0))


@dataclass(frozen=True)
class ClassAccuracy:
    """How often a conditional generator makes the class it is asked for (see
    :func:`class_accuracy`)."""

    per_class: np.ndarray
    """Share of the samples asked for class ``k`` that the classifier puts in class ``k``, shape
    (K,); NaN for a class no sample was asked for."""
    mean: float
    """The mean of ``per_class`` over the classes asked for: each class weighs the same, however
    many samples asked for it."""


def class_accuracy(predicted: Any, requested: Any, num_classes: int) -> ClassAccuracy:
    r"""The share of a conditional generator's samples that land in the class they were asked for.

    Parameters
    ----------
    predicted : integer array, shape (N,)
        The classifier's class of each sample (``probabilities.argmax(axis=1)``).
    requested : integer array, shape (N,)
        The class each sample was generated for, :math:`y` in :math:`G(z, y)`.
    num_classes : int
        :math:`K`.

    Returns
    -------
    ClassAccuracy

    Notes
    -----
    For class :math:`k` with :math:`N_k` samples asked for it,
    :math:`a_k = \frac{1}{N_k} \sum_{n: y_n = k} [\hat y_n = k]`, and the mean is over the classes
    with :math:`N_k > 0`. It measures the generator and the classifier together: real images score
    the classifier's own accuracy, not 1, so compare with the figure for real images.
    """
    predicted = np.asarray(to_numpy(predicted)).ravel().astype(np.int64)
    requested = np.asarray(to_numpy(requested)).ravel().astype(np.int64)
    if predicted.shape != requested.shape or predicted.size == 0:
        raise ValueError(
            f"class_accuracy needs as many requested classes as predicted ones, at least one; got "
            f"{requested.size} and {predicted.size}"
        )
    asked = np.bincount(requested, minlength=num_classes)
    right = np.bincount(requested[predicted == requested], minlength=num_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(asked > 0, right / np.maximum(asked, 1), np.nan)
    return ClassAccuracy(per_class=per_class, mean=float(np.nanmean(per_class)))
