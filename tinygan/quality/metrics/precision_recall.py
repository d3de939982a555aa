r"""Improved precision and recall (Kynkaanniemi et al., 2019): realism and variety, measured apart.

FID and the Inception Score fold two questions into one number. Here each set of features gets a
manifold of its own -- the union of balls around its points, each reaching to the point's k-th
nearest neighbour -- and the two questions are asked separately: how many generated points lie on
the real manifold (*precision*: are the samples realistic?), and how many real points lie on the
generated one (*recall*: is all of the data's variety produced?).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygan.backend import to_numpy

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
    r"""Improved precision and recall of a generated set.

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
    *Precision* is :func:`manifold_coverage` of the generated points by the real balls, *recall*
    that of the real points by the generated balls (module docstring). A collapsed generator can
    have high precision and low recall; IS and FID mix the two.
    """
    real = np.asarray(to_numpy(real_features), dtype=np.float64)
    fake = np.asarray(to_numpy(fake_features), dtype=np.float64)
    precision = manifold_coverage(fake, real, knn_radii(real, k))
    recall = manifold_coverage(real, fake, knn_radii(fake, k))
    return precision, recall
