"""Dropout: fixed-mask gradients, mask statistics, evaluation identity, reproducibility."""

import numpy as np
import pytest

from tinygan.backend import get_array_module, make_rng, to_device, to_numpy
from tinygan.gradcheck import check_layer
from tinygan.nn import Dropout


@pytest.mark.parametrize("shape", [(1, 7), (4, 6), (3, 2, 4, 5)])
def test_gradient_with_a_fixed_mask(device, shape):
    layer = Dropout(0.4, rng=make_rng(7, device))

    def same_mask():  # re-seeding before every forward pass makes every evaluation use one mask
        layer.rng = make_rng(7, device)

    rng = np.random.default_rng(1)
    x = to_device(rng.standard_normal(shape), device)
    same_mask()
    y, mask = layer.forward(x)
    assert 0 < int((to_numpy(mask) == 0).sum()) < mask.size  # something is dropped, not everything
    errors = check_layer(layer, x, rng, before_forward=same_mask)
    assert errors["x"] < 1e-7, errors


def test_backward_is_upstream_times_the_cached_mask():
    layer = Dropout(0.5, rng=np.random.default_rng(2))
    x = np.random.default_rng(3).standard_normal((6, 8))
    y, mask = layer.forward(x)
    dy = np.random.default_rng(4).standard_normal(x.shape)
    np.testing.assert_array_equal(layer.backward(dy, mask), dy * mask)
    np.testing.assert_array_equal(y == 0, mask == 0)
    np.testing.assert_allclose(y[mask != 0], 2 * x[mask != 0])


def test_mask_statistics():
    layer = Dropout(0.3, rng=np.random.default_rng(5))
    x = np.ones((200, 500), dtype=np.float32)
    y, mask = layer.forward(x)
    zeros = float((y == 0).mean())
    assert abs(zeros - 0.3) < 0.01  # 1e5 Bernoulli(0.3) draws: standard deviation 0.0015
    assert abs(float(y.mean(dtype=np.float64)) - 1.0) < 0.01  # inverted dropout keeps the mean
    np.testing.assert_array_equal(np.unique(y), np.array([0, 1 / 0.7], dtype=np.float32))


def test_evaluation_and_rate_zero_are_the_identity():
    x = np.random.default_rng(6).standard_normal((3, 4))
    rng = np.random.default_rng(7)
    for layer, training in ((Dropout(0.5, rng), False), (Dropout(0.0, rng), True)):
        y, cache = layer.forward(x, training=training)
        np.testing.assert_array_equal(y, x)
        dy = np.full_like(x, 3.0)
        np.testing.assert_array_equal(layer.backward(dy, cache), dy)


def test_reproducible_with_a_seed():
    x = np.ones((10, 10))
    first = Dropout(0.5, rng=np.random.default_rng(8)).forward(x)[1]
    second = Dropout(0.5, rng=np.random.default_rng(8)).forward(x)[1]
    other = Dropout(0.5, rng=np.random.default_rng(9)).forward(x)[1]
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, other)
    # One layer draws a fresh mask on every call.
    layer = Dropout(0.5, rng=np.random.default_rng(8))
    assert not np.array_equal(layer.forward(x)[1], layer.forward(x)[1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_keeps_dtype(device, dtype):
    layer = Dropout(0.25, rng=make_rng(0, device))
    x = to_device(np.ones((4, 5), dtype=dtype), device)
    y, mask = layer.forward(x)
    assert y.dtype == mask.dtype == layer.backward(y, mask).dtype == dtype
    assert get_array_module(y) is get_array_module(x)


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5])
def test_rate_outside_unit_interval_raises(rate):
    with pytest.raises(ValueError, match=r"Dropout: rate must be a number in \[0, 1\)"):
        Dropout(rate, np.random.default_rng(0))
