r"""Mode collapse counted on targets whose modes are known: the 2-D mixtures and Stacked MNIST.

The measures of VEEGAN (Srivastava et al., NeurIPS 2017, arXiv 1705.07761, its experiments on
synthetic data and on Stacked MNIST) that PacGAN (Lin et al., NeurIPS 2018, arXiv 1712.04086)
reports for every method it compares:

* **2-D ring and grid** (:mod:`tinygan.data.mixtures`). A generated sample is *high quality* when
  it lies within three standard deviations of its nearest mode. A mode is *captured* when at least
  one high-quality sample is nearest to it. PacGAN adds the *reverse KL*: the Kullback-Leibler
  divergence :math:`\mathrm{KL}(\hat p \,\|\, U_K)` of the generator's mode histogram :math:`\hat p`
  from the uniform distribution over the :math:`K` modes (the true mixture's).
* **Stacked MNIST** (:mod:`tinygan.data.stacked_mnist`). Each of a sample's three channels is
  classified by an MNIST classifier; the three digits name one of 1,000 modes. A mode is captured
  when at least one sample falls in it; the KL is that of the 1,000-bin histogram from uniform.

Reverse KL, :math:`\mathrm{KL}(\hat p \,\|\, U_K) = \sum_k \hat p_k \log(K \hat p_k) = \log K -
H(\hat p)`, stays finite when the generator misses modes (an empty bin adds
:math:`0 \log 0 = 0`) and grows as the generator concentrates: 0 for a perfectly even histogram,
:math:`\log(K / m)` for samples spread evenly over :math:`m` modes, :math:`\log K` (2.08 nats for
8 modes, 3.22 for 25, 6.91 for 1,000) when every sample is one mode. The forward direction,
:math:`\mathrm{KL}(U_K \,\|\, \hat p)`, would be infinite for any missed mode.

Which histogram, exactly. For the mixtures this module counts the *high-quality* samples only, each
in the bin of its nearest mode, so that a sample far from every mode neither captures a mode nor
shifts the histogram: the high-quality share reports those samples separately. (Assigning every
sample to its nearest mode instead changes the figure only when many samples are far from all
modes.) With no high-quality sample the histogram is empty and its KL undefined: ``nan``, beside
0 modes and a 0% high-quality share. The reference is the uniform distribution itself, not the
histogram of a finite real sample.

Sample counts. Each figure depends on the number of samples: even a perfect generator's histogram
of :math:`N` samples is uneven by chance, with an expected KL of about :math:`(K - 1) / (2N)`
nats (0.0014 for the ring at :data:`MIXTURE_SAMPLES`, 0.019 for Stacked MNIST at
:data:`STACKED_MNIST_SAMPLES`), and a perfect generator scores a high-quality share of
:math:`1 - e^{-9/2} = 98.9\%` (the distance of a 2-D Gaussian draw from its centre is
Rayleigh-distributed). The protocol evaluates 2,500 generator samples on the mixtures and 26,000 on
Stacked MNIST; use those counts to stand next to the published tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from tinygan.backend import to_numpy
from tinygan.data.stacked_mnist import STACKED_MODES, stacked_labels
from tinygan.theory import kl_divergence

#: Generator samples per evaluation on the 2-D ring and grid.
MIXTURE_SAMPLES = 2_500
#: Generator samples per evaluation on Stacked MNIST.
STACKED_MNIST_SAMPLES = 26_000
#: A mixture sample is high quality within this many standard deviations of its nearest mode.
HIGH_QUALITY_STDS = 3.0


class DigitClassifier(Protocol):
    """What :func:`stacked_mnist_modes` needs of a classifier (:class:`tinygan.quality.classifier.Classifier`
    is one)."""

    def predict(self, images: Any) -> Any:
        """The digit, 0..9, of each image of ``images``, (N, 28, 28) floats in [0, 1]: shape (N,)."""


@dataclass(frozen=True)
class ModeCounts:
    """How a generator's samples fall on the modes of a known target.

    See :func:`mixture_modes` and :func:`stacked_mnist_modes`.
    """

    counts: np.ndarray
    """Samples counted in each mode, int64 (K,): the high-quality ones, for the mixtures."""
    modes_captured: int
    """Modes holding at least one counted sample."""
    reverse_kl: float
    """:math:`\\mathrm{KL}(\\hat p \\,\\|\\, U_K)` of the histogram ``counts`` in nats; ``nan`` when
    it is empty."""
    num_samples: int
    """Samples evaluated."""
    high_quality: float | None
    """Share of the samples within the high-quality radius of their nearest mode (mixtures only;
    ``None`` for Stacked MNIST, where the classifier gives every sample a mode)."""


def reverse_kl_to_uniform(counts: Any) -> float:
    r""":math:`\mathrm{KL}(\hat p \,\|\, U_K)` in nats of the histogram ``counts`` (K,), with
    :math:`\hat p = \text{counts} / \sum \text{counts}`; ``nan`` for an empty histogram.

    Empty bins add nothing (:math:`0 \log 0 = 0`), so the value is at most :math:`\log K`.
    """
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total == 0:
        return float("nan")
    k = counts.size
    # rounding can leave an even histogram a hair below 0
    return max(kl_divergence(counts / total, np.full(k, 1.0 / k)), 0.0)


def count_modes(
    modes: Any, num_modes: int, num_samples: int, high_quality: float | None
) -> ModeCounts:
    """The :class:`ModeCounts` of the mode indices ``modes`` (one per counted sample), 0..K-1."""
    modes = np.asarray(modes, dtype=np.int64).ravel()
    counts = np.bincount(modes, minlength=num_modes)
    return ModeCounts(
        counts=counts,
        modes_captured=int(np.count_nonzero(counts)),
        reverse_kl=reverse_kl_to_uniform(counts),
        num_samples=int(num_samples),
        high_quality=high_quality,
    )


def nearest_modes(samples: Any, centres: Any) -> tuple[np.ndarray, np.ndarray]:
    """Each sample's nearest centre and its Euclidean distance, in float64.

    Parameters
    ----------
    samples : array, shape (N, D)
    centres : array, shape (K, D)

    Returns
    -------
    index : numpy.ndarray, int64 (N,)
        The nearest centre (the first of equally near ones).
    distance : numpy.ndarray, float64 (N,)
        ``nan`` for a sample with a NaN coordinate.
    """
    samples = np.asarray(to_numpy(samples), dtype=np.float64)
    centres = np.asarray(centres, dtype=np.float64)
    if samples.ndim != 2 or centres.ndim != 2 or samples.shape[1] != centres.shape[1]:
        raise ValueError(
            f"samples (N, D) and centres (K, D) must share D, got {samples.shape} and "
            f"{centres.shape}"
        )
    if len(centres) == 0:
        raise ValueError("nearest_modes needs at least one centre")
    offsets = samples[:, None, :] - centres[None, :, :]
    squared = (offsets * offsets).sum(axis=2)  # (N, K)
    index = squared.argmin(axis=1)
    return index, np.sqrt(squared[np.arange(len(samples)), index])


def mixture_modes(
    samples: Any, centres: Any, std: float, num_stds: float = HIGH_QUALITY_STDS
) -> ModeCounts:
    r"""VEEGAN's and PacGAN's measures of a generator on a mixture of isotropic Gaussians.

    Parameters
    ----------
    samples : array, shape (N, D)
        Generated points (NumPy or CuPy), N >= 1; :data:`MIXTURE_SAMPLES` in the papers' protocol.
    centres : array, shape (K, D)
        The mixture's modes (``mixture.centres`` of a :class:`tinygan.data.GaussianMixture2D`).
    std : float
        The components' standard deviation (``mixture.std``).
    num_stds : float
        High-quality radius in standard deviations: 3 in the papers.

    Returns
    -------
    ModeCounts
        ``counts``: high-quality samples nearest to each mode; ``modes_captured``: modes with at
        least one; ``high_quality``: their share of all ``N`` samples; ``reverse_kl``: of
        ``counts`` from the uniform distribution over the K modes (``nan`` when no sample is of
        high quality).

    Notes
    -----
    Sample :math:`x` is high quality when :math:`\min_k \lVert x - \mu_k \rVert \le r \sigma`
    (``r = num_stds``); a sample with a NaN or infinite coordinate never is. The module's
    docstring gives the sources, the assumptions and the values a perfect generator scores.
    """
    if not (np.isfinite(std) and std > 0 and np.isfinite(num_stds) and num_stds > 0):
        raise ValueError(
            f"std and num_stds must be positive and finite, got std={std!r}, num_stds={num_stds!r}"
        )
    index, distance = nearest_modes(samples, centres)
    if len(index) == 0:
        raise ValueError("mixture_modes needs at least one sample")
    good = distance <= num_stds * std  # False for NaN distances
    return count_modes(index[good], len(centres), len(index), float(good.mean()))


def stacked_mnist_digits(images: Any, classifier: DigitClassifier) -> np.ndarray:
    """The digit the classifier reads in each channel of Stacked MNIST images: int64 (N, 3).

    Parameters
    ----------
    images : array, shape (N, 3, 28, 28)
        Floats in [0, 1] (or uint8 pixels, if the classifier reads them), NumPy or CuPy.
    classifier : DigitClassifier
        Its ``predict`` gets the 3N channels at once, as (3N, 28, 28) images, sample by sample.
    """
    if getattr(images, "ndim", 0) != 4 or tuple(images.shape[1:]) != (3, 28, 28):
        got = getattr(images, "shape", type(images).__name__)
        raise ValueError(f"Stacked MNIST images must have shape (N, 3, 28, 28), got {got}")
    n = images.shape[0]
    if n == 0:
        raise ValueError("Stacked MNIST measures need at least one image")
    digits = np.asarray(to_numpy(classifier.predict(images.reshape(3 * n, 28, 28))))
    if digits.shape != (3 * n,) or digits.dtype.kind not in "iu":
        raise ValueError(
            f"classifier.predict must return {3 * n} integer digits for {3 * n} images, got "
            f"{digits.dtype} of shape {digits.shape}"
        )
    if digits.size and (digits.min() < 0 or digits.max() > 9):
        raise ValueError("classifier.predict must return digits in 0..9")
    return digits.reshape(n, 3).astype(np.int64)


def stacked_mnist_modes(images: Any, classifier: DigitClassifier) -> ModeCounts:
    r"""Modes captured and KL to uniform of Stacked MNIST samples (VEEGAN's measures, PacGAN's table).

    Parameters
    ----------
    images : array, shape (N, 3, 28, 28)
        Generated images in [0, 1], N >= 1; :data:`STACKED_MNIST_SAMPLES` in the papers' protocol.
    classifier : DigitClassifier
        An MNIST classifier, applied to each channel (:func:`stacked_mnist_digits`).

    Returns
    -------
    ModeCounts
        ``counts`` (1000,): samples per mode :math:`100 d_0 + 10 d_1 + d_2`; ``modes_captured``:
        modes with at least one sample; ``reverse_kl``: of ``counts`` from the uniform distribution
        over the 1,000 modes; ``high_quality`` is None.

    Notes
    -----
    The figures include the classifier's errors: a channel it misreads moves the sample to another
    mode, so score real Stacked MNIST images the same way for the baseline.
    """
    digits = stacked_mnist_digits(images, classifier)
    return count_modes(stacked_labels(digits), STACKED_MODES, len(digits), None)
