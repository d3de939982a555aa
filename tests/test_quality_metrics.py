"""Classifier-based quality metrics: closed forms, constructed cases, a ranking on real MNIST, and the
evaluation entry points (QualityEvaluator, QualityCallback, evaluate_checkpoint, ``tinygan eval``)."""

from __future__ import annotations

import csv
import functools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import mnist_dir
from test_classifier import TINY, bar_images, write_split

from tinygan.backend import to_device
from tinygan.checkpoint import save_checkpoint
from tinygan.classifier import Classifier, build_classifier, fit_classifier
from tinygan.cli import main as cli_main
from tinygan.data import BatchIterator, load_mnist
from tinygan.evaluate import METRICS, QualityCallback, QualityEvaluator, evaluate_checkpoint
from tinygan.init import he_uniform
from tinygan.metrics import (
    feature_frechet_distance,
    frechet_distance,
    inception_score,
    knn_radii,
    mode_coverage,
    precision_recall,
)
from tinygan.models import PRESETS
from tinygan.nn import Dense, Flatten, ReLU, Sequential
from tinygan.train import Trainer

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
# Inception Score and mode coverage
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


# ------------------------------------------------------------------------------------------------
# Real > blurred > noise, through a small classifier trained in the test on real MNIST
# ------------------------------------------------------------------------------------------------


def box_blur(images: np.ndarray, radius: int) -> np.ndarray:
    padded = np.pad(images, ((0, 0), (radius, radius), (radius, radius)))
    size = 2 * radius + 1
    windows = [padded[:, i : i + 28, j : j + 28] for i in range(size) for j in range(size)]
    return np.mean(windows, axis=0)


def test_metrics_rank_real_above_blurred_above_noise():
    images, labels = load_mnist("test", mnist_dir(), download=False)
    rng = np.random.default_rng(0)
    # a one-hidden-layer classifier trains in about a second and is a good enough eye for ranking
    model = Classifier(
        Sequential(Flatten(), Dense(784, 64, weight_init=he_uniform(), rng=rng), ReLU()),
        Dense(64, 10, rng=rng),
    )
    fit_classifier(model, images[:3000], labels[:3000], 300, rng, 64, 3e-3, progress=False)
    assert model.accuracy(images[8000:], labels[8000:]) > 0.8
    evaluator = QualityEvaluator(model, images[8000:9000])
    real = images[9000:].astype(np.float32) / 255
    scores = {
        "real": evaluator.score(real),
        "blurred": evaluator.score(box_blur(real, 2)),
        "noise": evaluator.score(rng.random((1000, 28, 28), dtype=np.float32)),
    }
    order = ["real", "blurred", "noise"]
    fid = [scores[name]["fid"] for name in order]
    inception = [scores[name]["inception_score"] for name in order]
    recall = [scores[name]["recall"] for name in order]
    assert fid == sorted(fid) and fid[0] < 10 < 100 < fid[2]
    assert inception == sorted(inception, reverse=True)
    assert recall == sorted(recall, reverse=True)
    # blur pulls features towards the dense middle of the real manifold: precision does not rank
    # blurred below real (that is what recall is for), but noise lies outside the manifold
    assert scores["noise"]["precision"] < 0.05 < scores["real"]["precision"]
    assert scores["noise"]["classes_hit"] < 10 == scores["real"]["classes_hit"]
    calibration = evaluator.calibration()
    assert calibration["n"] == 500 and calibration["reference_n"] == 500
    assert calibration["fid"] < fid[1]


# ------------------------------------------------------------------------------------------------
# Evaluator, callback, checkpoint evaluation and the command
# ------------------------------------------------------------------------------------------------


def tiny_evaluator(reference: np.ndarray) -> QualityEvaluator:
    model = build_classifier(np.random.default_rng(0), TINY.channels, TINY.hidden)
    return QualityEvaluator(model, reference, batch_size=16)


def test_evaluator_reports_every_metric_with_its_sample_counts(rng):
    reference, _ = bar_images(40, rng)
    evaluator = tiny_evaluator(reference)
    scores = evaluator.score(rng.random((30, 784), dtype=np.float32))
    assert set(METRICS) <= set(scores)
    assert (scores["n"], scores["reference_n"], scores["pr_n"], scores["k"]) == (30, 40, 30, 3)
    calibration = evaluator.calibration()
    assert (calibration["n"], calibration["reference_n"], calibration["pr_n"]) == (20, 20, 20)
    assert evaluator.calibration() is calibration  # computed once


def test_quality_callback_appends_rows_to_quality_csv(tmp_path, rng):
    preset = PRESETS["000"]
    gan = preset.make_gan(np.random.default_rng(0), np.random.default_rng(1))
    data = rng.random((64, 784), dtype=np.float32)
    evaluator = tiny_evaluator(bar_images(40, rng)[0])
    callback = QualityCallback(2, evaluator, preset, n=20)
    trainer = Trainer(
        gan, BatchIterator(data, 16, rng), tmp_path, callbacks=[callback], progress=False
    )
    trainer.fit(5)
    with open(tmp_path / "quality.csv") as file:
        rows = list(csv.DictReader(file))
    assert [int(row["step"]) for row in rows] == [2, 4, 5]  # every 2 steps, and the last one
    assert all(int(row["n"]) == 20 for row in rows)
    assert {f"real_{key}" for key in METRICS} <= set(rows[0])
    assert len({row["real_fid"] for row in rows}) == 1  # the calibration does not change
    assert float(rows[0]["fid"]) != float(rows[-1]["fid"])  # the generator does


@pytest.fixture
def checkpoint_and_data(tmp_path: Path) -> tuple[Path, Path]:
    data_dir = tmp_path / "data"
    write_split(data_dir, "test", *bar_images(50, np.random.default_rng(0)))
    gan = PRESETS["000"].make_gan(np.random.default_rng(0), np.random.default_rng(1))
    metadata = {"preset": "000", "seed": 7, "dataset": "mnist", "split": "test"}
    path = save_checkpoint(tmp_path / "run" / "step_00000000.npz", gan, metadata=metadata)
    return path, data_dir


def test_evaluate_checkpoint_scores_generated_and_real_images(checkpoint_and_data, tmp_path):
    path, data_dir = checkpoint_and_data
    evaluate = functools.partial(
        evaluate_checkpoint,
        path,
        n=24,
        data_dir=data_dir,
        classifier_cache=tmp_path / "cache",
        classifier_settings=TINY,
        verbose=False,
    )
    result = evaluate(batch_size=10)
    assert (result["preset"], result["run_seed"], result["dataset"]) == ("000", 7, "mnist")
    assert result["generated"]["n"] == 24 and result["generated"]["reference_n"] == 10
    assert result["real"]["n"] == 5  # half of the 10 held-out images
    assert "10 held-out MNIST images" in result["reference"]
    assert "test split only" in result["classifier"]["description"]
    again = evaluate(batch_size=10)
    assert again["generated"] == result["generated"]  # same seed, same images, same figures
    whole = evaluate(split="test")
    assert whole["generated"]["reference_n"] == 50
    assert "the classifier trained on some of them" in whole["reference"]


def test_tinygan_eval_prints_the_table_and_writes_json(
    checkpoint_and_data, tmp_path, monkeypatch, capsys
):
    path, data_dir = checkpoint_and_data
    # the command trains the default classifier; a tiny one keeps the test fast
    monkeypatch.setattr("tinygan.classifier.ClassifierSettings", lambda: TINY)
    out = tmp_path / "result.json"
    argv = ["eval", str(path), "--n", "12", "--data-dir", str(data_dir), "--json", str(out)]
    assert cli_main([*argv, "--classifier-cache", str(tmp_path / "cache")]) == 0
    printed = capsys.readouterr().out
    assert "Inception Score" in printed and "real, calibration (N=5)" in printed
    assert json.loads(out.read_text())["generated"]["n"] == 12


def test_tinygan_eval_reports_a_missing_checkpoint_cleanly(tmp_path):
    with pytest.raises(SystemExit, match="tinygan eval: no checkpoint"):
        cli_main(["eval", str(tmp_path / "missing.npz")])
