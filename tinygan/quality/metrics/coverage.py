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
