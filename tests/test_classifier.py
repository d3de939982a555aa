"""Softmax cross-entropy and the quality classifier: its network, training, data split and cache
(tiny synthetic data), one section per module of tinygan.quality.classifier."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest
from test_mnist import idx_bytes

import tinygan.quality.classifier
from tinygan.backend import to_device
from tinygan.gradcheck import check_layer, numerical_gradient, rel_error
from tinygan.losses import log_softmax, softmax_cross_entropy
from tinygan.nn import Sequential
from tinygan.quality.classifier import cache as cache_module
from tinygan.quality.classifier.cache import cache_path, load_classifier
from tinygan.quality.classifier.data_split import classifier_data
from tinygan.quality.classifier.network import Classifier, as_classifier_input, build_classifier
from tinygan.quality.classifier.training import ClassifierSettings, fit_classifier
from tinygan.rounding import LIBRARY_ULPS, assert_within, forward_bound, rounding_bound

# ------------------------------------------------------------------------------------------------
# softmax_cross_entropy
# ------------------------------------------------------------------------------------------------


def test_softmax_cross_entropy_matches_the_textbook_formula(rng):
    logits = rng.standard_normal((7, 5)) * 3
    labels = rng.integers(0, 5, size=7)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    loss, _ = softmax_cross_entropy(logits, labels)
    assert abs(float(loss) - np.mean(-np.log(p[np.arange(7), labels]))) < 1e-12


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_cross_entropy_is_exact_and_finite_at_extreme_logits(dtype):
    logits = np.array([[1e4, 0.0, -1e4], [-1e4, 1e4, 0.0]], dtype=dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        loss, grad = softmax_cross_entropy(logits, np.array([0, 0]))
    # row 0 is right with certainty (cost 0), row 1 wrong by 2e4 nats: mean 1e4
    assert float(loss) == 1e4 and loss.dtype == dtype
    np.testing.assert_array_equal(grad, np.array([[0, 0, 0], [-0.5, 0.5, 0]], dtype=dtype))


def test_uniform_logits_cost_log_k():
    loss, grad = softmax_cross_entropy(np.zeros((4, 10)), np.arange(4))
    assert abs(float(loss) - np.log(10)) < 1e-15
    np.testing.assert_allclose(grad.sum(axis=1), 0.0, atol=1e-16)  # softmax minus one-hot


def test_softmax_cross_entropy_gradient_matches_central_differences(device, rng):
    logits = to_device(rng.standard_normal((6, 4)) * 4, device)
    labels = to_device(rng.integers(0, 4, size=6), device)
    _, analytic = softmax_cross_entropy(logits, labels)
    numeric = numerical_gradient(lambda: softmax_cross_entropy(logits, labels)[0], logits)
    assert rel_error(analytic, numeric) < 1e-8


def test_log_softmax_normalises_and_survives_huge_logits():
    logits = np.array([[1e4, 1e4 - 1.0, -1e4], [0.0, 0.0, 0.0]])
    log_p = log_softmax(logits)
    np.testing.assert_allclose(np.exp(log_p).sum(axis=1), 1.0)
    np.testing.assert_allclose(log_p[0, :2], [-np.log1p(np.exp(-1.0)), -1 - np.log1p(np.exp(-1))])


def test_softmax_cross_entropy_rejects_bad_labels():
    with pytest.raises(ValueError, match="labels must lie"):
        softmax_cross_entropy(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match="integer labels"):
        softmax_cross_entropy(np.zeros((2, 3)), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"shape \(N, K\)"):
        softmax_cross_entropy(np.zeros(3), np.array([0]))


# ------------------------------------------------------------------------------------------------
# The network
# ------------------------------------------------------------------------------------------------


def tiny_classifier(dtype=np.float32, seed: int = 0) -> Classifier:
    return build_classifier(np.random.default_rng(seed), (2, 3), 6, dtype=dtype)


def exact_embedding(model: Classifier, images: np.ndarray) -> tuple[np.ndarray, ...]:
    """The exact features and log-probabilities of ``images`` (float64 from the float32 weights),
    and how far a float32 forward pass in any summation order may be from each.

    The features' bound is :func:`tinygan.rounding.forward_bound`'s. A log-probability
    ``l_i - LSE(l)`` moves by at most its logit's error plus the largest one (LSE moves by at most
    the largest change of its arguments), plus the rounding of a float32 log-softmax: the shift
    by the largest logit, two library calls (exp, log) and a sum of K terms.
    """
    x = as_classifier_input(images)
    features, feature_bound = forward_bound(model.features, x)
    logits, logit_bound = forward_bound(Sequential(model.features, model.head), x)
    k = logits.shape[1]
    carried = logit_bound + logit_bound.max(axis=1, keepdims=True)
    magnitude = 2 * (abs(logits) + abs(logits).max(axis=1, keepdims=True)) + 1 + np.log(k)
    rounding = rounding_bound(magnitude, 4 * LIBRARY_ULPS + k + 3, np.float32)
    return features, feature_bound, log_softmax(logits), carried + rounding


def test_embed_gives_penultimate_features_and_probabilities(rng):
    model = tiny_classifier()
    pixels = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    features, probabilities = model.embed(pixels, batch_size=2)  # several batches
    assert features.shape == (5, 6) and probabilities.shape == (5, 10)
    assert features.min() >= 0  # the output of the hidden ReLU
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    # in batches of 2 and all at once: each within float32 rounding of the exact values
    exact_features, feature_bound, exact_log_p, log_p_bound = exact_embedding(model, pixels)
    logits = model(as_classifier_input(pixels))
    for log_p in (np.log(probabilities), log_softmax(logits)):
        assert_within(log_p, exact_log_p, log_p_bound, "log-probabilities")
    # the same images as flat rows, as (N, 1, 28, 28) floats: the same answers
    floats = pixels.astype(np.float32) / 255
    for layout in (floats.reshape(5, 784), floats.reshape(5, 1, 28, 28), pixels):
        assert_within(model.embed(layout)[0], exact_features, feature_bound, "features")


def test_embed_rejects_images_of_the_wrong_size():
    with pytest.raises(ValueError, match="28, 28"):
        tiny_classifier().embed(np.zeros((2, 27, 27), dtype=np.float32))


def test_classifier_backward_matches_central_differences(rng):
    model = tiny_classifier(np.float64)
    x = rng.uniform(0.05, 1.0, size=(1, 1, 28, 28))
    errors = check_layer(model, x, rng)
    assert max(errors.values()) < 1e-6, errors


# ------------------------------------------------------------------------------------------------
# Training
# ------------------------------------------------------------------------------------------------


def bar_images(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Class c is a bright horizontal bar in rows 2c+4..2c+5, on faint noise."""
    labels = rng.integers(0, 10, size=n)
    images = rng.integers(0, 60, size=(n, 28, 28)).astype(np.uint8)
    for i, c in enumerate(labels):
        images[i, 2 * c + 4 : 2 * c + 6, 4:24] = 255
    return images, labels.astype(np.uint8)


def test_fit_classifier_learns_a_separable_task(rng):
    images, labels = bar_images(400, rng)
    model = tiny_classifier()
    loss = fit_classifier(model, images, labels, 80, rng, batch_size=32, lr=1e-2, progress=False)
    test_images, test_labels = bar_images(200, np.random.default_rng(1))
    assert loss < 0.5
    assert model.accuracy(test_images, test_labels) > 0.9


# ------------------------------------------------------------------------------------------------
# Data split
# ------------------------------------------------------------------------------------------------

NAMES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
TINY = ClassifierSettings(channels=(2, 3), hidden=6, steps=3, batch_size=16)


def write_split(folder: Path, split: str, images: np.ndarray, labels: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in zip(NAMES[split], (images, labels), strict=True):
        (folder / name).write_bytes(gzip.compress(idx_bytes(array)))


@pytest.fixture
def lone_test_split(tmp_path: Path) -> Path:
    images, labels = bar_images(50, np.random.default_rng(0))
    write_split(tmp_path / "data", "test", images, labels)
    return tmp_path / "data"


def test_a_lone_split_is_cut_deterministically_into_disjoint_parts(lone_test_split):
    data = classifier_data("mnist", lone_test_split)
    assert (len(data.train_images), len(data.heldout_images)) == (40, 10)
    assert data.train_split == data.heldout_split == "test"
    assert "test split only: 40 images for training, 10 held out" in data.description
    rows = {bytes(image) for image in data.train_images}
    assert not any(bytes(image) in rows for image in data.heldout_images)
    again = classifier_data("mnist", lone_test_split)
    np.testing.assert_array_equal(again.heldout_images, data.heldout_images)
    assert again.checksum == data.checksum


def test_both_splits_give_train_for_training_and_test_held_out(tmp_path):
    rng = np.random.default_rng(0)
    write_split(tmp_path, "train", *bar_images(30, rng))
    write_split(tmp_path, "test", *bar_images(20, rng))
    data = classifier_data("mnist", tmp_path)
    assert (len(data.train_images), len(data.heldout_images)) == (30, 20)
    assert (data.train_split, data.heldout_split) == ("train", "test")


# ------------------------------------------------------------------------------------------------
# Cache
# ------------------------------------------------------------------------------------------------


def test_classifier_is_trained_once_then_read_from_the_cache(lone_test_split, monkeypatch):
    data = classifier_data("mnist", lone_test_split)
    first = load_classifier(data, TINY, progress=False, verbose=False)
    path = Path(first.info["path"])
    assert path.parent == lone_test_split and path.is_file()  # beside the data
    assert first.info["train_size"] == 40 and 0 <= first.info["heldout_accuracy"] <= 1

    def no_training(*args, **kwargs):
        raise AssertionError("the cached classifier should have been used")

    monkeypatch.setattr(cache_module, "train_classifier", no_training)
    second = load_classifier(data, TINY, progress=False, verbose=False)
    for key, value in first.state_dict().items():
        np.testing.assert_array_equal(second.state_dict()[key], value)
    assert second.info["checksum"] == data.checksum


def test_changed_data_or_settings_retrain(lone_test_split):
    data = classifier_data("mnist", lone_test_split)
    original = cache_path(data, TINY)
    images, labels = bar_images(50, np.random.default_rng(99))
    write_split(lone_test_split, "test", images, labels)
    changed = classifier_data("mnist", lone_test_split)
    assert changed.checksum != data.checksum and cache_path(changed, TINY) != original
    other_settings = ClassifierSettings(channels=(2, 3), hidden=6, steps=4, batch_size=16)
    assert cache_path(data, other_settings) != original


def test_a_stale_cache_file_under_the_right_name_is_not_trusted(lone_test_split):
    data = classifier_data("mnist", lone_test_split)
    path = cache_path(data, TINY)
    path.write_bytes(b"not an npz")
    model = load_classifier(data, TINY, progress=False, verbose=False)  # retrains, overwrites
    assert Path(model.info["path"]) == path and model.info["checksum"] == data.checksum


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX permissions")
def test_a_read_only_data_folder_sends_the_cache_to_the_user_cache(
    lone_test_split, tmp_path, monkeypatch
):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    data = classifier_data("mnist", lone_test_split)
    lone_test_split.chmod(0o555)
    try:
        model = load_classifier(data, TINY, progress=False, verbose=False)
    finally:
        lone_test_split.chmod(0o755)
    path = Path(model.info["path"])
    assert path.parent == tmp_path / "cache" / "tinygan" / "classifiers" and path.is_file()
    assert sorted(p.name for p in lone_test_split.iterdir()) == sorted(NAMES["test"])


def test_embedding_is_the_same_on_every_device(device, rng):
    images = rng.random((3, 784), dtype=np.float32)
    model = tiny_classifier().to(device)
    assert model.device == device
    features, probabilities = model.embed(to_device(images, device))
    assert isinstance(features, np.ndarray)  # always returned on the host
    exact_features, feature_bound, exact_log_p, log_p_bound = exact_embedding(model, images)
    assert_within(features, exact_features, feature_bound, "features")
    # p = exp(log p): |dp| <= p * |d log p| * e^|d log p|, and the bound on d log p is far below 1
    p_bound = np.exp(exact_log_p) * log_p_bound * np.exp(log_p_bound)
    assert_within(probabilities, np.exp(exact_log_p), p_bound, "probabilities")


def test_the_package_offers_the_modules_names():
    assert tinygan.quality.classifier.classifier_data is classifier_data
    assert tinygan.quality.classifier.load_classifier is load_classifier
    assert tinygan.quality.classifier.Classifier is Classifier
    assert tinygan.quality.classifier.ClassifierSettings is ClassifierSettings
