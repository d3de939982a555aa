r"""The Frechet distance between feature Gaussians: FID with tinygan's classifier as the eye.

Fit a Gaussian :math:`\mathcal N(\mu, \Sigma)` to a classifier's penultimate features of real images
and another to those of generated images; the squared Frechet (2-Wasserstein) distance between the
two is the FID ("Frechet Inception Distance", with the digit classifier of
:mod:`tinygan.quality.classifier` in Inception's place). It is 0 only when the two feature Gaussians agree,
and it grows both when the samples look wrong (the means move apart) and when they lack variety
(the covariances differ).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygan.backend import to_numpy


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
