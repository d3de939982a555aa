r"""The original GAN's theory in numbers: the game's value, the best discriminator, divergences.

Goodfellow et al. (2014) let a discriminator :math:`D` and a generator :math:`G` play

.. math:: \min_G \max_D V(D, G) = \mathbb{E}_{x \sim p_{data}}[\log D(x)]
                                 + \mathbb{E}_{z \sim p_z}[\log(1 - D(G(z)))].

*The optimal discriminator.* Writing the second expectation over :math:`x = G(z) \sim p_g`,

.. math:: V(D, G) = \int p_{data}(x) \log D(x) + p_g(x) \log(1 - D(x)) \, dx,

and :math:`D` may choose its output at every :math:`x` separately, so it maximises the integrand
pointwise. With :math:`a = p_{data}(x)`, :math:`b = p_g(x)` and :math:`y = D(x)`, the function
:math:`a \log y + b \log(1 - y)` has derivative :math:`a / y - b / (1 - y)`, which vanishes at
:math:`y = a / (a + b)`, and is concave, so that point is the maximum:

.. math:: D^*(x) = \frac{p_{data}(x)}{p_{data}(x) + p_g(x)}.

*The generator's criterion.* Putting :math:`D^*` back in gives
:math:`C(G) = \max_D V(D, G) = \mathbb{E}_{p_{data}}[\log \frac{p_{data}}{p_{data} + p_g}]
+ \mathbb{E}_{p_g}[\log \frac{p_g}{p_{data} + p_g}]`. With the mixture
:math:`m = \tfrac12 (p_{data} + p_g)` each denominator is :math:`2m`, and each fraction loses a
:math:`\log 2`:

.. math:: C(G) = -\log 4 + \mathrm{KL}(p_{data} \,\|\, m) + \mathrm{KL}(p_g \,\|\, m)
               = -\log 4 + 2\,\mathrm{JS}(p_{data}, p_g).

The Jensen-Shannon divergence is at least 0, and 0 only when :math:`p_g = p_{data}`: against the
best discriminator the generator's best value is :math:`-\log 4`, reached exactly when it reproduces
the data, where :math:`D^* \equiv 1/2`.

Sections
--------
*The game* -- :func:`value_function` (:math:`V` estimated from the discriminator's logits),
:func:`optimal_discriminator` and :func:`virtual_training_criterion` (:math:`C(G)`).

*Divergences* -- :func:`kl_divergence` and :func:`js_divergence` of discrete distributions, and the
closed-form :func:`gaussian_kl` that the estimates are checked against.

*Estimates from one-dimensional samples* -- what the 1-D examples measure: histogram estimates of KL
and JS, and a Gaussian kernel density estimate to draw :math:`p_g` as a curve and evaluate
:math:`D^*` with it.

Functions that take samples or densities accept NumPy or CuPy arrays and copy them to the host
(these are measured every few epochs, not every step); they return Python floats or NumPy arrays.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tinygan.backend import to_numpy
from tinygan.losses import sigmoid_cross_entropy

LOG_4 = math.log(4.0)
""":math:`\\log 4`: the game's value at its equilibrium is :math:`-\\log 4 \\approx -1.386`."""

# =================================================================================================
# The game
# =================================================================================================


def value_function(logits_real: Any, logits_fake: Any) -> float:
    r"""Sample estimate of the GAN objective :math:`V(D, G)` from the discriminator's logits.

    .. math:: \hat V = \frac1n \sum_i \log D(x_i) + \frac1m \sum_j \log(1 - D(G(z_j)))
              = -\mathrm{BCE}(\ell_{real}, 1) - \mathrm{BCE}(\ell_{fake}, 0)

    computed through :func:`tinygan.losses.sigmoid_cross_entropy`, so it stays finite for any
    logit. A discriminator that cannot tell the two apart (:math:`D \equiv 1/2`) scores
    :math:`2 \log \tfrac12 = -\log 4`, the value of the game at its equilibrium; any
    :math:`D` scores at most :math:`C(G) = -\log 4 + 2\,\mathrm{JS}(p_{data}, p_g)`.

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
    :math:`D^*(x) = p_{data}(x) / (p_{data}(x) + p_g(x))` (derived in the module docstring). With
    smoothed targets :math:`t_r, t_f` the pointwise objective becomes
    :math:`a[t_r \log y + (1 - t_r)\log(1 - y)] + b[t_f \log y + (1 - t_f)\log(1 - y)]`, whose
    derivative vanishes at

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


def virtual_training_criterion(p_data: Any, p_g: Any) -> float:
    r"""The generator's criterion :math:`C(G) = \max_D V(D, G)`, the game's value at :math:`D^*`.

    .. math:: C(G) = \sum_x p_{data}(x) \log D^*(x) + p_g(x) \log(1 - D^*(x))

    The paper calls :math:`C` the *virtual* training criterion: it is what the generator would
    minimise if the discriminator were trained to optimality before every generator step. It equals
    :math:`-\log 4 + 2\,\mathrm{JS}(p_{data}, p_g)` (module docstring), which the tests check
    against :func:`js_divergence`.

    Parameters
    ----------
    p_data, p_g : array, same shape
        Two discrete distributions (each sums to 1). For densities on a uniform grid of spacing
        :math:`\Delta`, pass :math:`p\,\Delta` (the probabilities of the grid cells): :math:`D^*` is
        unchanged by the common factor, and the sum becomes a Riemann sum of the integral.

    Returns
    -------
    float
        In :math:`[-\log 4, 0]`, in nats.

    Notes
    -----
    The logarithms are taken as :math:`\log D^* = \log p_{data} - \log(p_{data} + p_g)` and
    :math:`\log(1 - D^*) = \log p_g - \log(p_{data} + p_g)`, not of :math:`D^*` itself: where
    :math:`p_g \ll p_{data}`, :math:`D^*` rounds to 1 and :math:`p_g \log(1 - D^*)` would become
    :math:`-\infty` instead of a tiny number. Where :math:`p_{data}(x) = 0` the first term is
    :math:`0 \cdot \log 0 = 0`, and likewise the second where :math:`p_g(x) = 0`: the limits of
    :math:`p \log p`, taken explicitly rather than left to become NaN.
    """
    p_data = np.asarray(to_numpy(p_data), dtype=np.float64)
    p_g = np.asarray(to_numpy(p_g), dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_total = np.log(p_data + p_g)
        real = np.where(p_data > 0, p_data * (np.log(p_data) - log_total), 0.0)
        fake = np.where(p_g > 0, p_g * (np.log(p_g) - log_total), 0.0)
    return float(real.sum() + fake.sum())


# =================================================================================================
# Divergences
# =================================================================================================


def kl_divergence(p: Any, q: Any, eps: float = 0.0) -> float:
    r"""Kullback-Leibler divergence :math:`\mathrm{KL}(p \,\|\, q)` of discrete distributions (nats).

    .. math:: \mathrm{KL}_\epsilon(p \,\|\, q) = \sum_b p_b \left(\log(p_b + \epsilon)
              - \log(q_b + \epsilon)\right)

    Parameters
    ----------
    p, q : array
        Probabilities of the same shape (or shapes that broadcast). The sum runs over every entry,
        so for a batch of rows it is the sum of the rows' divergences.
    eps : float
        Smoothing. With 0 (the default) the divergence is exact: at least 0, 0 only for
        :math:`p = q`, and infinite when some :math:`p_b > 0 = q_b`. With :math:`\epsilon > 0`
        (the 1-D tutorial's histogram formula, see :data:`HISTOGRAM_EPS`) such a bin costs
        :math:`p_b \log(p_b / \epsilon)` -- large (about :math:`18\,p_b` nats for
        :math:`\epsilon = 10^{-8}`) but finite.

    Returns
    -------
    float

    Notes
    -----
    Bins with :math:`p_b = 0` contribute exactly 0 (the limit :math:`0 \log 0 = 0`), whatever
    :math:`q_b` is. Non-negativity is Gibbs' inequality: :math:`-\mathrm{KL} = \sum p \log(q/p)
    \le \log \sum p\,(q/p) \le \log 1 = 0` by the concavity of the logarithm.
    """
    p = np.asarray(to_numpy(p), dtype=np.float64)
    q = np.asarray(to_numpy(q), dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * (np.log(p + eps) - np.log(q + eps)), 0.0)
    return float(terms.sum())


def js_divergence(p: Any, q: Any, eps: float = 0.0) -> float:
    r"""Jensen-Shannon divergence of two discrete distributions, in nats.

    .. math:: \mathrm{JS}(p, q) = \tfrac12 \mathrm{KL}(p \,\|\, m) + \tfrac12 \mathrm{KL}(q \,\|\, m),
              \qquad m = \tfrac12 (p + q)

    Symmetric, 0 for :math:`p = q` and at most :math:`\log 2`, reached when the supports are
    disjoint. Here :math:`m_b \ge p_b / 2`, so every log ratio is at most :math:`\log 2` and finite
    without smoothing; ``eps`` enters as in :func:`kl_divergence` (the ratio
    :math:`(p_b + \epsilon)/(m_b + \epsilon)` stays at most 2, so the bound still holds).
    """
    p = np.asarray(to_numpy(p), dtype=np.float64)
    q = np.asarray(to_numpy(q), dtype=np.float64)
    m = 0.5 * (p + q)
    return 0.5 * kl_divergence(p, m, eps) + 0.5 * kl_divergence(q, m, eps)


def gaussian_kl(mean_p: float, std_p: float, mean_q: float, std_q: float) -> float:
    r"""Closed-form KL divergence of two normal distributions.

    :math:`\mathrm{KL}(\mathcal N(\mu_p, \sigma_p^2) \,\|\, \mathcal N(\mu_q, \sigma_q^2))`:


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
# Estimates from one-dimensional samples
# =================================================================================================

HISTOGRAM_EPS = 1e-8
"""The smoothing constant of the Keras 1-D Gaussian tutorial's histogram KL: added to each
histogram's total before normalising, and inside both logarithms, so that empty bins give finite
numbers."""

# Points x samples evaluated per chunk by gaussian_kde (bounds its memory to ~32 MB of float64).
_KDE_CHUNK = 4_000_000


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

    This is the Keras 1-D Gaussian tutorial's measure of training progress, with ``p`` the real
    data and ``q`` the generator's samples.

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
        :func:`kl_divergence`.

    Returns
    -------
    float
        The estimate in nats.

    Notes
    -----
    Each histogram is normalised by its own count in range,
    :math:`\hat p_b = n_b/(\sum n + \epsilon)`, then :func:`kl_divergence` is applied. With the
    default range, generated samples outside the real data's range are simply not counted: a
    generator with heavy tails is not penalised for them.

    As the bins shrink and the samples grow, the estimate tends to the continuous
    :math:`\int p \log(p/q)`: within a bin of width :math:`\Delta` the bin probabilities are
    :math:`p(x)\Delta` and :math:`q(x)\Delta`, and the :math:`\Delta` cancels in the ratio.
    With finite samples it is biased upwards, most where :math:`q` is small (a bin that happens to
    get no ``q`` sample costs :math:`p_b \log(p_b/\epsilon)`).
    """
    p_values, q_values = _finite_1d(p_samples), _finite_1d(q_samples)
    edges = _bin_edges(p_values, bins, range)
    return kl_divergence(
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
        Smoothing constant (see :func:`js_divergence`).

    Returns
    -------
    float
        In :math:`[0, \log 2]` (up to rounding); :math:`\log 2 \approx 0.693` for disjoint supports.

    Notes
    -----
    This is what the original GAN objective measures: against the optimal discriminator the
    game's value is :math:`C(G) = -\log 4 + 2\,\mathrm{JS}(p_{data}, p_g)` (module docstring).
    """
    p_values, q_values = _finite_1d(p_samples), _finite_1d(q_samples)
    edges = _bin_edges(np.concatenate([p_values, q_values]), bins, range)
    return js_divergence(
        histogram_probabilities(p_values, edges, eps),
        histogram_probabilities(q_values, edges, eps),
        eps,
    )


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

    The generator's density :math:`p_g` is known only through its samples; this turns them into a
    smooth curve that can be drawn beside :math:`p_{data}` and put into
    :func:`optimal_discriminator`.

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
