"""Stacked MNIST: three independent digits per image, 1,000 modes, and the measures of its samples."""

import numpy as np
import pytest
from conftest import mnist_dir

from tinygan.data import (
    STACKED_MODES,
    images_to_float,
    load_mnist,
    load_stacked_mnist,
    stack_digits,
    stacked_labels,
)
from tinygan.quality.classifier import build_classifier
from tinygan.quality.metrics import stacked_mnist_digits, stacked_mnist_modes


class Oracle:
    """A perfect classifier for a set of known digits: it looks each image up."""

    def __init__(self, images, labels):
        self.labels = {
            image.tobytes(): int(label) for image, label in zip(images, labels, strict=True)
        }
        self.calls = []

    def predict(self, images):
        self.calls.append(images.shape)
        return np.array([self.labels[image.tobytes()] for image in images], dtype=np.int64)


class Brightness:
    """Reads digit d from a constant image of value d / 10: a classifier with known answers."""

    def predict(self, images):
        return np.rint(np.asarray(images).reshape(len(images), -1).mean(axis=1) * 10).astype(int)


def constant_images(digits):
    """Stacked images whose channel c is the constant digits[n, c] / 10, (N, 3, 28, 28)."""
    digits = np.asarray(digits, dtype=np.float32)
    return np.broadcast_to(digits[:, :, None, None] / 10, (len(digits), 3, 28, 28)).copy()


@pytest.fixture(scope="module")
def test_digits():
    return load_mnist("test", mnist_dir(), download=False)


def test_labels_put_channel_zero_in_the_hundreds():
    assert stacked_labels(np.array([[1, 2, 3], [0, 0, 7], [9, 9, 9]])).tolist() == [123, 7, 999]


def test_stacked_images_are_three_source_digits_and_their_mode(test_digits):
    images, labels = test_digits
    stacked, modes = stack_digits(images, labels, 500, np.random.default_rng(0))
    assert stacked.shape == (500, 3, 28, 28) and stacked.dtype == np.uint8
    assert modes.dtype == np.int64 and modes.min() >= 0 and modes.max() < STACKED_MODES
    oracle = Oracle(images, labels)
    digits = np.array([oracle.predict(image) for image in stacked])  # (500, 3), channel by channel
    np.testing.assert_array_equal(digits @ [100, 10, 1], modes)


def test_the_same_seed_gives_the_same_data_set(test_digits):
    images, labels = test_digits
    a = stack_digits(images, labels, 50, np.random.default_rng(7))
    b = stack_digits(images, labels, 50, np.random.default_rng(7))
    c = stack_digits(images, labels, 50, np.random.default_rng(8))
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])


def test_the_three_channels_are_drawn_independently(test_digits):
    images, labels = test_digits
    _, modes = stack_digits(images, labels, 30_000, np.random.default_rng(1))
    digits = np.stack([modes // 100, modes // 10 % 10, modes % 10], axis=1)
    share = np.bincount(labels, minlength=10) / len(labels)
    for channel in range(3):  # each channel follows the source's class shares
        got = np.bincount(digits[:, channel], minlength=10) / len(modes)
        assert np.abs(got - share).max() < 5 * np.sqrt(0.25 / len(modes))
    # Independence: the pair (channel 0, channel 2) follows the product of the shares.
    pairs = np.bincount(digits[:, 0] * 10 + digits[:, 2], minlength=100) / len(modes)
    assert np.abs(pairs - np.outer(share, share).ravel()).max() < 5 * np.sqrt(0.02 / len(modes))
    assert len(np.unique(modes)) > 990  # nearly every one of the 1,000 modes in 30,000 draws


def test_loading_falls_back_to_the_bundled_digits(tmp_path):
    images, modes, notice = load_stacked_mnist(
        np.random.default_rng(0), data_dir=tmp_path, download=False
    )
    assert images.shape == (10_000, 3, 28, 28) and modes.shape == (10_000,)
    assert notice is not None and "10000" in notice.replace(",", "")
    few, _, _ = load_stacked_mnist(np.random.default_rng(0), 20, "test", mnist_dir(), False)
    assert few.shape == (20, 3, 28, 28)


def test_measures_of_real_stacked_digits_with_a_perfect_classifier(test_digits):
    images, labels = test_digits
    stacked, modes = stack_digits(images, labels, 2000, np.random.default_rng(2))
    oracle = Oracle(images_to_float(images), labels)
    result = stacked_mnist_modes(images_to_float(stacked), oracle)
    assert oracle.calls == [(6000, 28, 28)]  # every channel in one call
    np.testing.assert_array_equal(result.counts, np.bincount(modes, minlength=1000))
    assert result.modes_captured == len(np.unique(modes))
    assert result.num_samples == 2000 and result.high_quality is None
    p = result.counts / 2000
    want = np.sum(p[p > 0] * np.log(1000 * p[p > 0]))
    assert result.reverse_kl == pytest.approx(want, rel=1e-12)


def test_one_mode_and_every_mode():
    collapsed = stacked_mnist_modes(constant_images([[4, 0, 2]] * 30), Brightness())
    assert collapsed.modes_captured == 1 and collapsed.counts[402] == 30
    assert collapsed.reverse_kl == pytest.approx(np.log(1000), rel=1e-15)
    every = [[a, b, c] for a in range(10) for b in range(10) for c in range(10)]
    full = stacked_mnist_modes(constant_images(every), Brightness())
    assert full.modes_captured == 1000 and full.reverse_kl == 0.0
    assert (full.counts == 1).all()


def test_a_tinygan_classifier_reads_each_channel_as_an_mnist_digit(test_digits):
    images, labels = test_digits
    stacked, _ = stack_digits(images, labels, 40, np.random.default_rng(3))
    stacked = images_to_float(stacked)
    classifier = build_classifier(np.random.default_rng(0), channels=(2, 4), hidden=8)
    digits = stacked_mnist_digits(stacked, classifier)
    assert len(np.unique(digits)) > 1  # untrained, but not constant: the order is tested
    for channel in range(3):
        np.testing.assert_array_equal(digits[:, channel], classifier.predict(stacked[:, channel]))


def test_channel_digits_come_back_per_sample():
    digits = stacked_mnist_digits(constant_images([[1, 2, 3], [7, 0, 9]]), Brightness())
    assert digits.tolist() == [[1, 2, 3], [7, 0, 9]]


class Wrong:
    def __init__(self, answer):
        self.answer = answer

    def predict(self, images):
        return self.answer(len(images))


@pytest.mark.parametrize(
    "images, classifier, match",
    [
        (np.zeros((2, 28, 28)), Brightness(), r"shape \(N, 3, 28, 28\), got \(2, 28, 28\)"),
        (np.zeros((2, 1, 28, 28)), Brightness(), r"got \(2, 1, 28, 28\)"),
        (np.zeros((0, 3, 28, 28)), Brightness(), "at least one image"),
        (constant_images([[1, 2, 3]]), Wrong(lambda n: np.zeros(n - 1, int)), "must return 3"),
        (constant_images([[1, 2, 3]]), Wrong(lambda n: np.zeros(n)), "integer digits"),
        (constant_images([[1, 2, 3]]), Wrong(lambda n: np.full(n, 10)), r"digits in 0\.\.9"),
    ],
)
def test_bad_input_raises(images, classifier, match):
    with pytest.raises(ValueError, match=match):
        stacked_mnist_modes(images, classifier)


def test_stack_digits_checks_its_arguments(test_digits):
    images, labels = test_digits
    with pytest.raises(ValueError, match="count must be >= 0"):
        stack_digits(images, labels, -1, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"images \(M, H, W\) and labels \(M,\)"):
        stack_digits(images, labels[:5], 3, np.random.default_rng(0))
