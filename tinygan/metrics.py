r"""How close are generated samples to real ones? Numbers to watch while a GAN trains.

Sections
--------
*Divergences between sample sets* -- histogram estimates of the Kullback-Leibler and Jensen-Shannon
divergences for one-dimensional samples (the 1-D Gaussian GAN), with the closed forms they are
checked against.

*The GAN objective in numbers* -- the value :math:`V(D, G)` estimated on samples, and the optimal
discriminator of the GAN paper's Proposition 1.

*Density estimates* -- a Gaussian kernel density estimate, to draw :math:`p_g` as a smooth curve and
to evaluate the optimal discriminator :math:`D^*(x) = p_{data}(x) / (p_{data}(x) + p_g(x))`.

*Image quality through a classifier* -- Inception Score, Frechet distance of feature Gaussians
(FID), mode coverage and k-nearest-neighbour precision / recall, computed from the outputs of the
classifier in :mod:`tinygan.classifier`; :mod:`tinygan.evaluate` applies them to checkpoints.

All functions accept NumPy or CuPy arrays and copy them to the host: metrics are computed every few
epochs, not every step, and histograms are simplest on the CPU. They return Python floats or NumPy
arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinygan.backend import to_numpy
from tinygan.losses import sigmoid_cross_entropy

# =================================================================================================
# Divergences between sample sets
# =================================================================================================

#: The smoothing constant of seed 001's histogram KL: added to each histogram's total before
#: normalising, and inside both logarithms, so that empty bins give finite numbers.
HISTOGRAM_EPS = 1e-8


def _finite_1d(samples: Any) -> np.ndarray:
    """Samples flattened to float64 on the host, non-finite values dropped."""
    flat = np.asarray(to_numpy(samples), dtype=np.float64).ravel()
    return flat[np.isfinite(flat)]


def histogram_probabilities(
    samples: Any, edges: np.ndarray, eps: float = HISTOGRAM_EPS
) -> np.ndarray:
    r"""Fraction of ``samples`` in each bin: :math:`\hat p_b = n_b / (\sum_c n_c + \epsilon)`.

    Parameters
    ----------
    samples : array of any shape
        Values, flattened; NaN and infinities, and values outside the edges, fall in no bin.
    edges : numpy.ndarray, shape (B + 1,)
        Increasing bin edges (the last bin includes its right edge, as in :func:`numpy.histogram`).
    eps : float
        Keeps the division finite when no sample falls in any bin (then every :math:`\hat p_b = 0`).

    Returns
    -------
    numpy.ndarray, shape (B,)
        Sums to 1 up to :math:`\epsilon`, or to 0 if no sample is in range.
    """
    counts, _ = np.histogram(_finite_1d(samples), bins=edges)
    return counts / (counts.sum() + eps)


def discrete_kl(p: np.ndarray, q: np.ndarray, eps: float = HISTOGRAM_EPS) -> float:
    r"""Smoothed KL divergence of two probability vectors, seed 001's formula.

    .. math:: \mathrm{KL}_\epsilon(p \,\|\, q) = \sum_b p_b \left(\log(p_b + \epsilon)
              - \log(q_b + \epsilon)\right)

    Without :math:`\epsilon` a bin with :math:`p_b > 0 = q_b` makes the divergence infinite; with
    it, such a bin costs :math:`p_b \log(p_b / \epsilon)` -- large (about :math:`18\,p_b` nats for
    :math:`\epsilon = 10^{-8}`) but finite. Bins with :math:`p_b = 0` contribute exactly 0.
    """
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    return float(np.sum(p * (np.log(p + eps) - np.log(q + eps))))


def discrete_js(p: np.ndarray, q: np.ndarray, eps: float = HISTOGRAM_EPS) -> float:
    r"""Jensen-Shannon divergence of two probability vectors, in nats.

    .. math:: \mathrm{JS}(p, q) = \tfrac12 \mathrm{KL}(p \,\|\, m) + \tfrac12 \mathrm{KL}(q \,\|\, m),
              \qquad m = \tfrac12 (p + q)

    Symmetric, 0 for :math:`p = q` and at most :math:`\log 2`, reached when the supports are
    disjoint. Here :math:`m_b \ge p_b / 2`, so every log ratio is finite without smoothing; ``eps``
    enters as in :func:`discrete_kl` (the ratio :math:`(p_b + \epsilon)/(m_b + \epsilon)` stays at
    most 2, so the bound :math:`\log 2` still holds).
    """
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    m = 0.5 * (p + q)
    return 0.5 * discrete_kl(p, m, eps) + 0.5 * discrete_kl(q, m, eps)


def _bin_edges(values: np.ndarray, bins: int, range: tuple[float, float] | None) -> np.ndarray:
    if values.size == 0 and range is None:
        raise ValueError("no finite samples to take the histogram range from; pass range=")
    return np.histogram_bin_edges(values, bins=bins, range=range)


def histogram_kl(
    p_samples: Any,
    q_samples: Any,
    bins: int = 100,
    range: tuple[float, float] | None = None,
    eps: float = HISTOGRAM_EPS,
) -> float:
    r"""KL divergence :math:`\mathrm{KL}(p \,\|\, q)` estimated from two sample sets by histograms.

    This is seed 001's measure of training progress, with ``p`` the real data and ``q`` the
    generator's samples.

    Parameters
    ----------
    p_samples, q_samples : array of any shape
        Samples of :math:`p` and :math:`q` (flattened; non-finite values are ignored).
    bins : int
        Number of equal-width bins.
    range : tuple of float, optional
        ``(low, high)`` of the bins. Default: the range of ``p_samples``, as the tutorial does
        (``np.histogram(P, bins=100)``, then ``Q`` binned on the same edges).
    eps : float
        Smoothing constant, :data:`HISTOGRAM_EPS` = 1e-8 as in the tutorial; see
        :func:`discrete_kl`.

    Returns
    -------
    float
        The estimate in nats.

    Notes
    -----
    Each histogram is normalised by its own count in range, :math:`\hat p_b = n_b/(\sum n + \epsilon)`,
    then :func:`discrete_kl` is applied. With the default range, generated samples outside the real
    data's range are simply not counted: a generator with heavy tails is not penalised for them.

    As the bins shrink and the samples grow, the estimate tends to the continuous
    :math:`\int p \log(p/q)`: within a bin of width :math:`\Delta` the bin probabilities are
    :math:`p(x)\Delta` and :math:`q(x)\Delta`, and the :math:`\Delta` cancels in the ratio.
    With finite samples it is biased upwards, most where :math:`q` is small (a bin that happens to
    get no ``q`` sample costs :math:`p_b \log(p_b/\epsilon)`).
    """
    p_values, q_values = _finite_1d(p_samples), _finite_1d(q_samples)
    edges = _bin_edges(p_values, bins, range)
    return discrete_kl(
        histogram_probabilities(p_values, edges, eps),
        histogram_probabilities(q_values, edges, eps),
        eps,
    )


def histogram_js(
    p_samples: Any,
    q_samples: Any,
    bins: int = 100,
    range: tuple[float, float] | None = None,
    eps: float = HISTOGRAM_EPS,
) -> float:
    r"""Jensen-Shannon divergence of two sample sets, estimated by histograms, in nats.

    Parameters
    ----------
    p_samples, q_samples : array of any shape
        Samples of the two distributions (flattened; non-finite values are ignored).
    bins : int
        Number of equal-width bins.
    range : tuple of float, optional
        ``(low, high)`` of the bins. Default: the range of both sample sets together, so that the
        estimate is symmetric in its arguments and sees all of both supports.
    eps : float
        Smoothing constant (see :func:`discrete_js`).

    Returns
    -------
    float
        In :math:`[0, \log 2]` (up to rounding); :math:`\log 2 \approx 0.693` for disjoint supports.

    Notes
    -----
    The JS divergence is what the original GAN objective measures: with the optimal discriminator,
    :math:`\max_D V(D, G) = -\log 4 + 2\,\mathrm{JS}(p_{data}, p_g)`, so the generator's best
    possible value :math:`-\log 4` is reached exactly when :math:`p_g = p_{data}`.
    """
    p_values, q_values = _finite_1d(p_samples), _finite_1d(q_samples)
    edges = _bin_edges(np.concatenate([p_values, q_values]), bins, range)
    return discrete_js(
        histogram_probabilities(p_values, edges, eps),
        histogram_probabilities(q_values, edges, eps),
        eps,
    )


def gaussian_kl(mean_p: float, std_p: float, mean_q: float, std_q: float) -> float:
    r"""Closed-form :math:`\mathrm{KL}(\mathcal N(\mu_p, \sigma_p^2) \,\|\, \mathcal N(\mu_q, \sigma_q^2))`.

    .. math:: \mathrm{KL} = \log\frac{\sigma_q}{\sigma_p}
              + \frac{\sigma_p^2 + (\mu_p - \mu_q)^2}{2 \sigma_q^2} - \frac12

    (take the expectation under :math:`p` of the log ratio of the two densities; it uses
    :math:`E_p[(x - \mu_q)^2] = \sigma_p^2 + (\mu_p - \mu_q)^2`). Used to check
    :func:`histogram_kl`.
    """
    if std_p <= 0 or std_q <= 0:
        raise ValueError(f"standard deviations must be positive, got {std_p} and {std_q}")
    return math.log(std_q / std_p) + (std_p**2 + (mean_p - mean_q) ** 2) / (2.0 * std_q**2) - 0.5


# =================================================================================================
# The GAN objective in numbers
# =================================================================================================


def value_function(logits_real: Any, logits_fake: Any) -> float:
    r"""Sample estimate of the GAN objective :math:`V(D, G)` from the discriminator's logits.

    .. math:: \hat V = \frac1n \sum_i \log D(x_i) + \frac1m \sum_j \log(1 - D(G(z_j)))
              = -\mathrm{BCE}(\ell_{real}, 1) - \mathrm{BCE}(\ell_{fake}, 0)

    computed through :func:`tinygan.losses.sigmoid_cross_entropy`, so it stays finite for any
    logit. A discriminator that cannot tell the two apart (:math:`D \equiv 1/2`) scores
    :math:`2 \log \tfrac12 = -\log 4`, the value of the game at its equilibrium; any
    :math:`D` scores at most :math:`-\log 4 + 2\,\mathrm{JS}(p_{data}, p_g)`.

    Parameters
    ----------
    logits_real : array, shape (n, 1)
        :math:`D`'s logits on real samples.
    logits_fake : array, shape (m, 1)
        :math:`D`'s logits on generated samples.
    """
    loss_real, _ = sigmoid_cross_entropy(logits_real, 1.0)
    loss_fake, _ = sigmoid_cross_entropy(logits_fake, 0.0)
    return -float(loss_real) - float(loss_fake)


def optimal_discriminator(
    p_data: Any, p_g: Any, real_label: float = 1.0, fake_label: float = 0.0
) -> np.ndarray:
    r"""The best discriminator against a fixed generator, from the two densities.

    For targets 1 (real) and 0 (fake) this is the GAN paper's Proposition 1,

    .. math:: D^*(x) = \frac{p_{data}(x)}{p_{data}(x) + p_g(x)}:

    at each :math:`x`, :math:`D` maximises :math:`a \log y + b \log(1 - y)` with
    :math:`a = p_{data}(x)`, :math:`b = p_g(x)`; the derivative :math:`a/y - b/(1 - y)` vanishes at
    :math:`y = a / (a + b)`. With smoothed targets :math:`t_r, t_f` the integrand becomes
    :math:`a[t_r \log y + (1 - t_r)\log(1 - y)] + b[t_f \log y + (1 - t_f)\log(1 - y)]`, maximised at

    .. math:: D^*(x) = \frac{t_r\, p_{data}(x) + t_f\, p_g(x)}{p_{data}(x) + p_g(x)}
              = t_f + (t_r - t_f) \frac{p_{data}(x)}{p_{data}(x) + p_g(x)},

    which is why label smoothing keeps :math:`D` inside :math:`[t_f, t_r]`.

    Parameters
    ----------
    p_data, p_g : array
        The two densities at the same points (same shape).
    real_label, fake_label : float
        The discriminator's targets :math:`t_r, t_f`.

    Returns
    -------
    numpy.ndarray, shape of ``p_data``
        :math:`D^*`; NaN where both densities are 0 (off both supports :math:`D^*` is undefined).
    """
    p_data = np.asarray(to_numpy(p_data), dtype=np.float64)
    p_g = np.asarray(to_numpy(p_g), dtype=np.float64)
    total = p_data + p_g
    weighted = real_label * p_data + fake_label * p_g
    return np.divide(weighted, total, out=np.full_like(total, np.nan), where=total > 0)


# =================================================================================================
# Density estimates
# =================================================================================================

# Points x samples evaluated per chunk by gaussian_kde (bounds its memory to ~32 MB of float64).
_KDE_CHUNK = 4_000_000


def silverman_bandwidth(samples: Any) -> float:
    r"""Silverman's rule-of-thumb kernel width for a 1-D Gaussian KDE.

    .. math:: h = 0.9 \min\left(\hat\sigma, \frac{\mathrm{IQR}}{1.34}\right) n^{-1/5}

    Near-optimal for roughly Gaussian data; the interquartile range keeps it from being inflated
    by a few outliers (or by a second mode far away). Returns 0 when the samples have no spread.
    """
    values = _finite_1d(samples)
    if values.size < 2:
        raise ValueError("a bandwidth needs at least two finite samples")
    q25, q75 = np.percentile(values, [25, 75])
    # an IQR of 0 (over half the samples equal) falls back to the standard deviation
    spread = min(values.std(ddof=1), (q75 - q25) / 1.34) or values.std(ddof=1)
    return float(0.9 * spread * values.size ** (-0.2))


def gaussian_kde(samples: Any, points: Any, bandwidth: float | None = None) -> np.ndarray:
    r"""Kernel density estimate :math:`\hat p(x) = \frac{1}{n h} \sum_i \varphi((x - x_i) / h)`.

    Parameters
    ----------
    samples : array of any shape
        The :math:`n` samples :math:`x_i` (flattened; non-finite values are ignored).
    points : array of any shape
        Where to evaluate the density.
    bandwidth : float, optional
        Kernel standard deviation :math:`h`; default :func:`silverman_bandwidth`.

    Returns
    -------
    numpy.ndarray, shape of ``points``
        Density values (float64); the estimate integrates to 1 over the real line.

    Raises
    ------
    ValueError
        The bandwidth is not positive (e.g. every sample is identical and none was given).
    """
    values = _finite_1d(samples)
    h = silverman_bandwidth(values) if bandwidth is None else float(bandwidth)
    if not h > 0:
        raise ValueError(
            f"the kernel bandwidth must be positive, got {h} (samples without spread need an "
            f"explicit bandwidth=)"
        )
    x = np.asarray(to_numpy(points), dtype=np.float64)
    flat = x.ravel()
    density = np.empty_like(flat)
    rows = max(1, _KDE_CHUNK // max(1, values.size))
    norm = values.size * h * math.sqrt(2.0 * math.pi)
    for start in range(0, flat.size, rows):
        u = (flat[start : start + rows, np.newaxis] - values[np.newaxis, :]) / h
        density[start : start + rows] = np.exp(-0.5 * u**2).sum(axis=1) / norm
    return density.reshape(x.shape)


# =================================================================================================
# Image quality through a classifier
# =================================================================================================
#
# These take what a classifier says about a set of images (see tinygan.classifier): its class
# probabilities p(y | x), shape (N, K), and its penultimate features, shape (N, F). Every figure
# depends on the number of samples, so reports state N beside each one.


def _probability_rows(probabilities: Any) -> np.ndarray:
    """Class probabilities as float64 rows on the host, checked to be an (N, K) stochastic matrix."""
    p = np.asarray(to_numpy(probabilities), dtype=np.float64)
    if p.ndim != 2 or len(p) == 0:
        raise ValueError(f"expected class probabilities of shape (N, K) with N >= 1, got {p.shape}")
    if p.min() < 0 or not np.allclose(p.sum(axis=1), 1.0, atol=1e-6):
        raise ValueError("each row of class probabilities must be non-negative and sum to 1")
    return p


def _kl_rows(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    r""":math:`\sum_k p_k \log(p_k / q_k)` along the last axis, exactly (no smoothing), with
    :math:`0 \log 0 = 0`."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * (np.log(p) - np.log(q)), 0.0)
    return terms.sum(axis=-1)


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
    return float(np.exp(_kl_rows(p, p.mean(axis=0)).mean()))


def gaussian_statistics(features: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean (F,) and unbiased covariance (F, F) of features (N, F), in float64, N >= 2."""
    x = np.asarray(to_numpy(features), dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"expected features of shape (N, F) with N >= 2, got {x.shape}")
    return x.mean(axis=0), np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix, by eigendecomposition."""
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(
    mean_a: np.ndarray, cov_a: np.ndarray, mean_b: np.ndarray, cov_b: np.ndarray
) -> float:
    r"""Frechet (2-Wasserstein) distance between two Gaussians, squared.

    .. math:: d^2 = \lVert \mu_a - \mu_b \rVert^2 + \operatorname{tr}\Sigma_a + \operatorname{tr}\Sigma_b
              - 2 \operatorname{tr}\big((\Sigma_a \Sigma_b)^{1/2}\big)

    Parameters
    ----------
    mean_a, mean_b : array, shape (F,)
    cov_a, cov_b : array, shape (F, F)
        Symmetric positive semi-definite.

    Returns
    -------
    float
        Non-negative (rounding below 0 is clipped); 0 for identical Gaussians.

    Notes
    -----
    :math:`\Sigma_a \Sigma_b` is not symmetric, and a general matrix square root
    (``scipy.linalg.sqrtm``) can return complex noise for it. Only the trace of the root is needed,
    and with :math:`R = \Sigma_a^{1/2}`,

    .. math:: \Sigma_a \Sigma_b = R\,(R\,\Sigma_b R)\,R^{-1}

    is similar to the symmetric positive semi-definite :math:`M = R\,\Sigma_b R`: both have the same
    eigenvalues :math:`\lambda_i \ge 0`, so
    :math:`\operatorname{tr}(\Sigma_a \Sigma_b)^{1/2} = \sum_i \sqrt{\lambda_i(M)}` (by continuity
    also when :math:`\Sigma_a` is singular). Two symmetric eigendecompositions in float64, with the
    tiny negative eigenvalues of rounding clipped to 0, make this stable. For commuting (say
    diagonal) covariances it reduces to :math:`\lVert \mu_a - \mu_b \rVert^2 +
    \sum_i (\sigma_{a,i} - \sigma_{b,i})^2`.

    Applied to a classifier's penultimate features of real and generated images this is the FID
    ("Frechet Inception Distance", with tinygan's classifier in Inception's place).
    """
    mean_a, mean_b = (np.asarray(m, dtype=np.float64) for m in (mean_a, mean_b))
    cov_a, cov_b = (np.asarray(c, dtype=np.float64) for c in (cov_a, cov_b))
    root_a = _psd_sqrt(cov_a)
    middle = root_a @ cov_b @ root_a
    eigenvalues = np.linalg.eigvalsh(0.5 * (middle + middle.T))  # symmetrise away rounding
    trace_root = np.sqrt(np.clip(eigenvalues, 0.0, None)).sum()
    difference = mean_a - mean_b
    value = difference @ difference + np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_root
    return float(max(value, 0.0))


def feature_frechet_distance(features_a: Any, features_b: Any) -> float:
    """:func:`frechet_distance` between Gaussians fitted to two feature sets (N_a, F) and (N_b, F).

    The estimate is biased upwards by roughly :math:`\\operatorname{tr}\\Sigma\\,(1/N_a + 1/N_b)`
    terms: two samples of one distribution do not score 0, which is why tinygan prints a real-vs-real
    figure beside every model figure.
    """
    return frechet_distance(*gaussian_statistics(features_a), *gaussian_statistics(features_b))


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
    kl = float(_kl_rows(share, np.full(num_classes, 1.0 / num_classes)))
    return ModeCoverage(counts=counts, classes_hit=hit, kl_to_uniform=max(kl, 0.0))


# Rows of the pairwise-distance matrix computed at a time (bounds memory to chunk x N floats).
_DISTANCE_CHUNK = 1024


def _squared_distances(a: np.ndarray, b: np.ndarray, b_norms: np.ndarray) -> np.ndarray:
    r""":math:`\lVert a_i - b_j \rVert^2 = \lVert a_i\rVert^2 + \lVert b_j\rVert^2 - 2 a_i \cdot b_j`
    (one matrix product), clipped at 0 against rounding."""
    d = (a * a).sum(axis=1)[:, None] + b_norms[None, :] - 2.0 * (a @ b.T)
    return np.maximum(d, 0.0)


def knn_radii(features: Any, k: int = 3) -> np.ndarray:
    """Distance from each point to its k-th nearest *other* point of the same set.

    Parameters
    ----------
    features : array, shape (N, F), N > k
    k : int

    Returns
    -------
    numpy.ndarray, shape (N,), float64
    """
    x = np.asarray(to_numpy(features), dtype=np.float64)
    if not 1 <= k < len(x):
        raise ValueError(f"k-nearest-neighbour radii need 1 <= k < N, got k={k}, N={len(x)}")
    norms = (x * x).sum(axis=1)
    radii = np.empty(len(x))
    for start in range(0, len(x), _DISTANCE_CHUNK):
        d = _squared_distances(x[start : start + _DISTANCE_CHUNK], x, norms)
        # each row's smallest entry is the point itself (distance 0), so order statistic k
        # (counting from 0) is the k-th nearest other point
        radii[start : start + _DISTANCE_CHUNK] = np.partition(d, k, axis=1)[:, k]
    return np.sqrt(radii)


def manifold_coverage(points: Any, centres: Any, radii: Any) -> float:
    """Fraction of ``points`` (N, F) inside at least one ball ``|x - centres[j]| <= radii[j]``."""
    x = np.asarray(to_numpy(points), dtype=np.float64)
    c = np.asarray(to_numpy(centres), dtype=np.float64)
    r2 = np.asarray(to_numpy(radii), dtype=np.float64) ** 2
    norms = (c * c).sum(axis=1)
    inside = np.zeros(len(x), dtype=bool)
    for start in range(0, len(x), _DISTANCE_CHUNK):
        d = _squared_distances(x[start : start + _DISTANCE_CHUNK], c, norms)
        inside[start : start + _DISTANCE_CHUNK] = (d <= r2[None, :]).any(axis=1)
    return float(inside.mean())


def precision_recall(real_features: Any, fake_features: Any, k: int = 3) -> tuple[float, float]:
    r"""Improved precision and recall of a generated set (Kynkaanniemi et al., 2019).

    Parameters
    ----------
    real_features, fake_features : array, shapes (N_r, F) and (N_f, F)
        Features of real and of generated images; use equal sizes (the balls' radii shrink as a
        set grows, so unequal sizes favour one side).
    k : int
        Neighbourhood size: 3, as in the paper.

    Returns
    -------
    precision, recall : float
        Each in [0, 1].

    Notes
    -----
    Each set's manifold is estimated as the union of balls around its points, each ball reaching to
    the point's k-th nearest neighbour in the same set. *Precision* is the fraction of generated
    points inside the real manifold (are the samples realistic?); *recall* the fraction of real
    points inside the generated manifold (is all of the data's variety produced?). A collapsed
    generator can have high precision and low recall; IS and FID mix the two.
    """
    real = np.asarray(to_numpy(real_features), dtype=np.float64)
    fake = np.asarray(to_numpy(fake_features), dtype=np.float64)
    precision = manifold_coverage(fake, real, knn_radii(real, k))
    recall = manifold_coverage(real, fake, knn_radii(fake, k))
    return precision, recall
