"""The shipped classifiers: what they score, which one judges a run, and quality from the first run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
from conftest import mnist_dir

from tinygan.data import bundled_mnist_dir
from tinygan.quality.classifier import (
    ClassifierSettings,
    build_classifier,
    cache_path,
    choose_classifier,
    classifier_data,
    load_shipped,
    random_shift,
    save_classifier,
    shipped_path,
)
from tinygan.quality.classifier.shipped import shipped_training_data
from tinygan.run.checkpoint import BEST_NAME, checkpoint_in, checkpoint_metadata, read_checkpoint
from tinygan.run.cli import main as cli_main

REPO = Path(__file__).resolve().parents[1]
FASHION_DIR = Path("/usr/share/datasets")


def fashion_on_disk() -> bool:
    return any((FASHION_DIR / "fashion-mnist").glob("train-images-idx3-ubyte*"))


# ------------------------------------------------------------------------------------------------
# The files in the package
# ------------------------------------------------------------------------------------------------


def test_the_shipped_mnist_classifier_scores_what_it_records_on_digits_it_never_saw():
    classifier = load_shipped("mnist")
    assert classifier is not None, f"{shipped_path('mnist')} is missing"
    assert shipped_path("mnist").parent == bundled_mnist_dir()  # next to the bundled digits
    assert shipped_path("mnist").stat().st_size <= 1_100_000
    data = shipped_training_data("mnist")
    info = classifier.info
    assert info["checksum"] == data.checksum  # trained on exactly this cut of the bundled digits
    assert (info["train_size"], info["heldout_size"]) == (8000, 2000)
    assert info["settings"] == json.loads(json.dumps(asdict(ClassifierSettings())))
    accuracy = classifier.accuracy(data.heldout_images, data.heldout_labels)
    assert accuracy == pytest.approx(info["heldout_accuracy"], abs=1 / 2000)
    assert accuracy >= 0.99


def test_the_shipped_fashion_classifier_records_its_training_and_accuracy():
    classifier = load_shipped("fashion-mnist")
    assert classifier is not None, f"{shipped_path('fashion-mnist')} is missing"
    assert shipped_path("fashion-mnist").stat().st_size <= 1_100_000
    info = classifier.info
    assert (
        "train split (60000 images) for training, test split (10000 images) held out"
        in (info["description"])
    )
    assert (info["train_size"], info["heldout_size"]) == (60_000, 10_000)
    assert info["settings"] == json.loads(json.dumps(asdict(ClassifierSettings())))
    assert info["heldout_accuracy"] >= 0.9


@pytest.mark.skipif(not fashion_on_disk(), reason="needs Fashion-MNIST in /usr/share/datasets")
def test_the_shipped_fashion_classifier_scores_what_it_records_on_the_test_split():
    classifier = load_shipped("fashion-mnist")
    data = shipped_training_data("fashion-mnist", FASHION_DIR)
    info = classifier.info
    assert info["checksum"] == data.checksum
    accuracy = classifier.accuracy(data.heldout_images, data.heldout_labels)
    assert accuracy == pytest.approx(info["heldout_accuracy"], abs=1 / 10_000)


def test_a_dataset_without_a_shipped_classifier_has_none():
    assert load_shipped("cifar10") is None


def test_random_shift_moves_each_image_by_its_own_offset_and_fills_with_zeros():
    rng = np.random.default_rng(3)
    images = rng.uniform(1.0, 2.0, size=(200, 1, 6, 7))  # no zero inside: zeros come from the fill
    shifted = random_shift(images, 2, np.random.default_rng(0))
    assert shifted.shape == images.shape
    offsets = set()
    for before, after in zip(images[:, 0], shifted[:, 0], strict=True):
        # find the offset (dy, dx) that explains the image: after[r, c] = before[r + dy, c + dx]
        matches = [
            (dy, dx)
            for dy in range(-2, 3)
            for dx in range(-2, 3)
            if np.array_equal(
                after[max(0, -dy) : 6 - max(0, dy), max(0, -dx) : 7 - max(0, dx)],
                before[max(0, dy) : 6 - max(0, -dy), max(0, dx) : 7 - max(0, -dx)],
            )
        ]
        assert len(matches) == 1
        (dy, dx) = matches[0]
        assert (after == 0).sum() == 6 * 7 - (6 - abs(dy)) * (7 - abs(dx))
        offsets.add((dy, dx))
    assert len(offsets) == 25  # every offset of -2..2 in both directions occurs
    assert np.array_equal(random_shift(images, 0, np.random.default_rng(0)), images)


# ------------------------------------------------------------------------------------------------
# Which classifier judges
# ------------------------------------------------------------------------------------------------


def cached_classifier(data, train_size: int, cache_dir: Path) -> Path:
    """A classifier file where the cache would put one trained on ``data`` (``train_size`` told)."""
    classifier = build_classifier(np.random.default_rng(0))
    classifier.info = {
        "dataset": data.dataset,
        "description": "trained by the user",
        "checksum": data.checksum,
        "settings": asdict(ClassifierSettings()),
        "train_size": train_size,
        "heldout_size": len(data.heldout_images),
        "heldout_accuracy": 0.995,
        "train_seconds": 1.0,
    }
    return save_classifier(cache_path(data, ClassifierSettings(), cache_dir), classifier)


def test_the_shipped_classifier_judges_when_nothing_is_cached(tmp_path, capsys):
    chosen = choose_classifier("mnist", mnist_dir(), cache_dir=tmp_path)
    assert chosen.origin == "shipped"
    assert chosen.data.checksum == load_shipped("mnist").info["checksum"]
    assert len(chosen.data.heldout_images) == 2000
    line = capsys.readouterr().out.strip()
    assert line.count("\n") == 0 and "the shipped MNIST classifier" in line and "99." in line


def test_a_cached_classifier_trained_on_more_images_wins_over_the_shipped_one(tmp_path, capsys):
    data = classifier_data("mnist", mnist_dir())
    cached_classifier(data, 60_000, tmp_path)
    chosen = choose_classifier("mnist", mnist_dir(), cache_dir=tmp_path)
    assert chosen.origin == "cached" and chosen.classifier.info["train_size"] == 60_000
    line = capsys.readouterr().out.strip()
    assert "trained on more images than the shipped one (8,000)" in line
    assert str(tmp_path) in line


def test_a_cached_classifier_trained_on_fewer_images_does_not(tmp_path):
    data = classifier_data("mnist", mnist_dir())
    cached_classifier(data, 8000, tmp_path)
    assert choose_classifier("mnist", mnist_dir(), tmp_path, verbose=False).origin == "shipped"


def test_the_classifier_command_trains_caches_and_says_which_classifier_is_used(
    tmp_path, monkeypatch, capsys
):
    tiny = replace(ClassifierSettings(), channels=(2, 3), hidden=6, steps=3, batch_size=16)
    monkeypatch.setattr("tinygan.quality.classifier.cache.ClassifierSettings", lambda: tiny)
    argv = ["classifier", "--data-dir", str(mnist_dir()), "--classifier-cache", str(tmp_path)]
    assert cli_main([*argv, "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "training the MNIST classifier" in printed
    assert len(list(tmp_path.glob("classifier_mnist_*.npz"))) == 1
    # the same 8,000 images as the shipped one: the shipped one stays in use
    assert "quality classifier: the shipped MNIST classifier" in printed


def test_the_classifier_command_says_which_data_is_missing(tmp_path):
    with pytest.raises(SystemExit) as stop:
        cli_main(["classifier", "--dataset", "fashion-mnist", "--data-dir", str(tmp_path)])
    first_line = str(stop.value.code).splitlines()[0]
    assert first_line.startswith("tinygan classifier: Fashion-MNIST train split not found")


# ------------------------------------------------------------------------------------------------
# Quality from the first run, and run folders as arguments
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def first_run(tmp_path_factory) -> tuple[Path, str]:
    """A new user's first run: fresh HOME, no classifier anywhere, no network; 1,000 steps."""
    root = tmp_path_factory.mktemp("first_run")
    home, out = root / "home", root / "run"
    home.mkdir()
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "PYTHONPATH": str(REPO),
        "MPLBACKEND": "Agg",
    }
    env.pop("TINYGAN_DATA", None)
    command = [
        sys.executable,
        str(REPO / "examples" / "mnist_mlp_gan.py"),
        "--iterations",
        "1000",
        "--no-download",
        "--no-progress",
        "--out",
        str(out),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return out, done.stdout


def test_a_first_run_measures_quality_with_the_shipped_classifier(first_run):
    out, printed = first_run
    assert "training the" not in printed  # no classifier was trained
    assert "quality classifier: the shipped MNIST classifier" in printed
    rows = (out / "quality.csv").read_text().splitlines()
    assert len(rows) == 1 + 5  # a header and five measurements
    best = checkpoint_metadata(read_checkpoint(out / "checkpoints" / BEST_NAME))["best"]
    assert best["step"] in {200, 400, 600, 800, 1000}
    assert (out / "samples" / "best.png").is_file()
    last = printed.strip().splitlines()[-1]
    assert f"step {best['step']}" in last and "best.npz" in last and "best.png" in last


def test_sample_and_eval_take_a_run_folder_and_use_its_best_generator(first_run, tmp_path, capsys):
    out, _ = first_run
    assert checkpoint_in(out)[0] == out / "checkpoints" / BEST_NAME
    assert cli_main(["sample", str(out), "--n", "4", "--out", str(tmp_path / "picks")]) == 0
    printed = capsys.readouterr().out
    assert f"using the best generator of {out}" in printed
    assert len(list((tmp_path / "picks").glob("*.png"))) == 4
    result = tmp_path / "eval.json"
    assert cli_main(["eval", str(out), "--n", "200", "--json", str(result)]) == 0
    printed = capsys.readouterr().out
    assert f"using the best generator of {out}" in printed
    assert "held-out accuracy" in printed
    assert json.loads(result.read_text())["classifier"]["train_size"] == 8000


def test_a_run_folder_without_best_offers_its_newest_checkpoint(first_run, tmp_path):
    out, _ = first_run
    copy = tmp_path / "run"
    (copy / "checkpoints").mkdir(parents=True)
    newest = sorted((out / "checkpoints").glob("step_*.npz"))[-1]
    (copy / "checkpoints" / newest.name).write_bytes(newest.read_bytes())
    path, note = checkpoint_in(copy)
    assert path == copy / "checkpoints" / newest.name and "newest checkpoint" in note
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="holds no checkpoint"):
        checkpoint_in(empty)


def test_the_package_data_lists_the_shipped_classifiers():
    # an installed (non-editable) package must carry the .npz files too
    text = (REPO / "pyproject.toml").read_text()
    assert '"bundled/*.npz"' in text
