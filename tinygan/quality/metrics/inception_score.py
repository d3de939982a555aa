r"""The Inception Score: are the samples recognisable, and are all classes there?

It reads only the classifier's class probabilities :math:`p(y \mid x)` of the generated images (no
real images), which makes it cheap and also blind: a generator that reproduces ten perfect
training images scores as well as one that has learned the data.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygan.backend import to_numpy
from tinygan.theory import kl_divergence


def _probability_rows(probabilities: Any) -> np.ndarray:
    """Class probabilities as float64 rows on the host, checked to be an (N, K) stochastic matrix."""
    p = np.asarray(to_numpy(probabilities), dtype=np.float64)
    if p.ndim != 2 or len(p) == 0:
        raise ValueError(f"expected class probabilities of shape (N, K) with N >= 1, got {p.shape}")
    if p.min() < 0 or not np.allclose(p.sum(axis=1), 1.0, atol=1e-6):
        raise ValueError("each row of class probabilities must be non-negative and sum to 1")
    return p


def inception_score(probabilities: Any) -> float:
    r"""Inception Score of a sample set from its class probabilities.

    .. math:: \mathrm{IS} = \exp\Big(\frac1N \sum_i \mathrm{KL}\big(p(y \mid x_i) \,\|\,
              \hat p(y)\big)\Big), \qquad \hat p(y) = \frac1N \sum_i p(y \mid x_i)

    Parameters
    ----------
    probabilities : array, shape (N, K)
        :math:`p(y \mid x_i)`, rows summing to 1.

    Returns
    -------
    float
        Between 1 and K.

    Notes
    -----
    The exponent is the mutual information between image and label,
    :math:`H(\hat p) - \frac1N \sum_i H(p(y \mid x_i))`: large when each image is classified
    confidently (low conditional entropy) *and* the labels are spread over many classes (high
    marginal entropy). Predictions that are all uniform score 1; confident one-hot predictions spread
    evenly over :math:`k` classes score exactly :math:`k`, so a score of 9.9 on 10 digits reads as
    "almost every digit, almost always recognisable". Real held-out MNIST scores about that with a
    good classifier; the score is only as meaningful as the classifier behind it.
    """
    p = _probability_rows(probabilities)
    # kl_divergence sums over every entry, rows included: divide by N for the mean over images
    return float(np.exp(kl_divergence(p, p.mean(axis=0)) / len(p)))
