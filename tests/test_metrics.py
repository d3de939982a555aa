"""Image-quality metrics (tinygan.quality.metrics): closed forms and constructed cases for FID, the
Inception Score, mode coverage and precision / recall, one section per module."""

from __future__ import annotations

import math

import numpy as np
import pytest

import tinygan.quality.metrics
from tinygan.backend import to_device
from tinygan.quality.metrics.coverage import mode_coverage
from tinygan.quality.metrics.fid import feature_frechet_distance, frechet_distance
from tinygan.quality.metrics.inception_score import inception_score
from tinygan.quality.metrics.precision_recall import knn_radii, precision_recall

# ------------------------------------------------------------------------------------------------
# Frechet distance
# ------------------------------------------------------------------------------------------------


def random_covariance(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.standard_normal((d, d))
    return a @ a.T + 0.1 * np.eye(d)


def test_frechet_distance_of_diagonal_gaussians_is_the_closed_form(rng):
    mean_a, mean_b = rng.standard_normal(4), rng.standard_normal(4)
    var_a, var_b = rng.uniform(0.5, 3, 4), rng.uniform(0.5, 3, 4)
    expected = np.sum((mean_a - mean_b) ** 2) + np.sum((np.sqrt(var_a) - np.sqrt(var_b)) ** 2)
    got = frechet_distance(mean_a, np.diag(var_a), mean_b, np.diag(var_b))
    assert abs(got - expected) < 1e-10


def test_frechet_distance_matches_the_eigenvalues_of_the_covariance_product(rng):
    # an independent route to tr sqrt(A B): A B is not symmetric, but its eigenvalues are real, >= 0
    cov_a, cov_b = random_covariance(rng, 5), random_covariance(rng, 5)
    mean_a, mean_b = rng.standard_normal(5), rng.standard_normal(5)
    trace_root = np.sqrt(np.linalg.eigvals(cov_a @ cov_b).real).sum()
    expected = np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root
    got = frechet_distance(mean_a, cov_a, mean_b, cov_b)
    assert abs(got - expected) < 1e-9 * max(1.0, expected)
    assert abs(frechet_distance(mean_b, cov_b, mean_a, cov_a) - got) < 1e-9 * max(1.0, got)


def test_frechet_distance_is_zero_for_equal_and_finite_for_singular_gaussians(rng):
    cov = random_covariance(rng, 6)
    assert frechet_distance(np.zeros(6), cov, np.zeros(6), cov) < 1e-9
    v = rng.standard_normal((6, 1))
    singular = v @ v.T  # rank 1
    value = frechet_distance(np.zeros(6), singular, np.ones(6), cov)
    assert np.isfinite(value) and value > 0


def test_frechet_distance_from_samples_approaches_the_analytic_value(rng):
    d = 3
    mean_a, mean_b = np.zeros(d), np.array([1.0, -0.5, 0.25])
    cov_a, cov_b = random_covariance(rng, d), random_covariance(rng, d)
    analytic = frechet_distance(mean_a, cov_a, mean_b, cov_b)
    n = 40_000
    a = rng.multivariate_normal(mean_a, cov_a, size=n)
    b = rng.multivariate_normal(mean_b, cov_b, size=n)
    # sampling error of order sqrt(tr cov / n) * scale; a few percent with these sizes
    assert abs(feature_frechet_distance(a, b) - analytic) < 0.05 * analytic + 0.05


# ------------------------------------------------------------------------------------------------
# Inception Score
# ------------------------------------------------------------------------------------------------


def test_inception_score_of_uniform_predictions_is_one():
    assert abs(inception_score(np.full((50, 10), 0.1)) - 1.0) < 1e-12


@pytest.mark.parametrize("k", [1, 3, 10])
def test_inception_score_of_confident_predictions_over_k_classes_is_k(k):
    probabilities = np.eye(10)[np.arange(20 * k) % k]  # one-hot, evenly spread over k classes
    assert abs(inception_score(probabilities) - k) < 1e-10


def test_inception_score_lies_between_one_and_the_number_of_classes(rng):
    logits = rng.standard_normal((200, 10)) * 3
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert 1.0 < inception_score(p) < 10.0


def test_inception_score_rejects_rows_that_are_not_distributions():
    with pytest.raises(ValueError, match="sum to 1"):
        inception_score(np.full((3, 4), 0.5))


# ------------------------------------------------------------------------------------------------
# Mode coverage
# ------------------------------------------------------------------------------------------------


def test_mode_coverage_of_constructed_histograms():
    balanced = mode_coverage(np.repeat(np.arange(10), 30), 10)
    assert balanced.classes_hit == 10 and balanced.kl_to_uniform < 1e-12
    np.testing.assert_array_equal(balanced.counts, np.full(10, 30))
    collapsed = mode_coverage(np.full(100, 7), 10)
    assert collapsed.classes_hit == 1 and abs(collapsed.kl_to_uniform - math.log(10)) < 1e-12
    # half the samples in one class, half in another: KL = log 10 - log 2
    two = mode_coverage(np.repeat([2, 5], 40), 10)
    assert two.classes_hit == 2 and abs(two.kl_to_uniform - math.log(5)) < 1e-12


def test_mode_coverage_ignores_a_few_stray_samples():
    # 1,000 samples of class 0 and one each of the others: below 1/10 of a uniform share (10.09)
    labels = np.concatenate([np.zeros(1000, dtype=int), np.arange(1, 10)])
    assert mode_coverage(labels, 10).classes_hit == 1
    assert mode_coverage(labels, 10, min_share=0).classes_hit == 10


# ------------------------------------------------------------------------------------------------
# Precision and recall
# ------------------------------------------------------------------------------------------------


def test_knn_radii_on_a_line():
    points = np.arange(6, dtype=float)[:, None]
    np.testing.assert_allclose(knn_radii(points, k=1), 1.0)
    np.testing.assert_allclose(knn_radii(points, k=3), [3, 2, 2, 2, 2, 3])


def test_precision_and_recall_of_identical_and_of_disjoint_sets(rng):
    real = rng.standard_normal((300, 4))
    assert precision_recall(real, real) == (1.0, 1.0)
    assert precision_recall(real, real + 100.0) == (0.0, 0.0)


def test_a_collapsed_generator_has_precision_but_not_recall(rng):
    centres = np.array([[-20.0, 0.0], [20.0, 0.0]])
    real = centres[rng.integers(0, 2, size=400)] + rng.standard_normal((400, 2))
    fake = centres[0] + rng.standard_normal((400, 2))  # only the left mode
    precision, recall = precision_recall(real, fake)
    assert precision > 0.9
    assert 0.35 < recall < 0.65  # the right half of the data is never produced


def test_metrics_accept_device_arrays(device, rng):
    features = to_device(rng.standard_normal((50, 3)), device)
    assert feature_frechet_distance(features, features) < 1e-9
    assert precision_recall(features, features) == (1.0, 1.0)


def test_the_package_re_exports_every_metric():
    for name in tinygan.quality.metrics.__all__:
        module = getattr(tinygan.quality.metrics, name).__module__
        assert module.startswith("tinygan.quality.metrics."), (name, module)
