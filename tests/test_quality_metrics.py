"""Quality evaluation through the classifier: the metrics rank real above blurred above noise on
real MNIST, and the entry points (QualityEvaluator, QualityCallback, evaluate_checkpoint,
``tinygan eval``) report them."""

from __future__ import annotations

import csv
import functools
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import mnist_dir
from test_classifier import TINY, bar_images, write_split

from tinygan.data import BatchIterator, load_mnist
from tinygan.init import he_uniform
from tinygan.models import PRESETS
from tinygan.nn import Dense, Flatten, ReLU, Sequential
from tinygan.quality.classifier.network import Classifier, build_classifier
from tinygan.quality.classifier.training import fit_classifier
from tinygan.quality.evaluate import METRICS, QualityCallback, QualityEvaluator, evaluate_checkpoint
from tinygan.run.checkpoint import save_checkpoint
from tinygan.run.cli import main as cli_main
from tinygan.run.train import Trainer

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
    expected = (PRESETS["000"].name, 7, "mnist")
    assert (result["preset"], result["run_seed"], result["dataset"]) == expected
    assert result["generated"]["n"] == 24 and result["generated"]["reference_n"] == 10
    assert result["real"]["n"] == 5  # half of the 10 held-out images
    assert "10 held-out MNIST images" in result["reference"]
    assert "test split only" in result["classifier"]["description"]
    again = evaluate(batch_size=10)
    assert again["generated"] == result["generated"]  # same seed, same images, same figures
    whole = evaluate(split="test")
    assert whole["generated"]["reference_n"] == 50
    assert "the classifier trained on some of them" in whole["reference"]


def test_tinygan_eval_prints_the_table_and_writes_json(checkpoint_and_data, tmp_path, capsys):
    path, data_dir = checkpoint_and_data
    # no classifier is cached for these images: the shipped one judges, against its own held-out
    # digits (2,000, so the calibration compares two halves of 1,000)
    out = tmp_path / "result.json"
    argv = ["eval", str(path), "--n", "12", "--data-dir", str(data_dir), "--json", str(out)]
    assert cli_main([*argv, "--classifier-cache", str(tmp_path / "cache")]) == 0
    printed = capsys.readouterr().out
    assert "quality classifier: the shipped MNIST classifier" in printed
    assert "Inception Score" in printed and "real, calibration (N=1000)" in printed
    assert json.loads(out.read_text())["generated"]["n"] == 12


def test_tinygan_eval_reports_a_missing_checkpoint_cleanly(tmp_path):
    with pytest.raises(SystemExit, match="tinygan eval: no checkpoint"):
        cli_main(["eval", str(tmp_path / "missing.npz")])
