"""MaxPool2D and UpSampling2D: gradients, brute-force forward, ties, overlap, dtypes, errors."""

import numpy as np
import pytest

from tinygan.backend import to_device
from tinygan.gradcheck import check_layer
from tinygan.nn import MaxPool2D, UpSampling2D
from tinygan.nn.pooling import (
    maxpool_backward,
    maxpool_forward,
    upsample_nearest,
    upsample_nearest_backward,
)
from tinygan.rounding import assert_within_rounding

# (input shape, size, stride): divisible, non-divisible, overlapping (stride < size), rectangular.
POOL_CASES = [
    ((2, 3, 4, 4), 2, None),
    ((2, 1, 5, 7), 2, None),
    ((2, 2, 7, 8), 3, 2),
    ((1, 1, 5, 5), 3, 1),
    ((3, 2, 6, 9), (2, 3), (1, 2)),
    ((1, 2, 4, 6), (3, 2), (1, 1)),
]


def distinct_values(shape, rng):
    """A random permutation of evenly spaced values: no ties, and neighbours 1/size apart, far more
    than the finite-difference step, so a perturbation never changes which entry is the maximum."""
    size = int(np.prod(shape))
    return rng.permutation(size).reshape(shape) / size - 0.5


def brute_force_maxpool(x, size, stride):
    (kh, kw), (sh, sw) = size, stride
    ho, wo = (x.shape[2] - kh) // sh + 1, (x.shape[3] - kw) // sw + 1
    y = np.empty(x.shape[:2] + (ho, wo), x.dtype)
    for p in range(ho):
        for q in range(wo):
            y[:, :, p, q] = x[:, :, p * sh : p * sh + kh, q * sw : q * sw + kw].max(axis=(2, 3))
    return y


@pytest.mark.parametrize("shape, size, stride", POOL_CASES)
def test_maxpool_gradient_matches_finite_differences(device, shape, size, stride):
    rng = np.random.default_rng(1)
    x = to_device(distinct_values(shape, rng), device)
    errors = check_layer(MaxPool2D(size, stride), x, rng)
    assert errors["x"] < 1e-7, errors


@pytest.mark.parametrize("shape, size, stride", POOL_CASES)
def test_maxpool_forward_matches_brute_force(shape, size, stride):
    layer = MaxPool2D(size, stride)
    x = distinct_values(shape, np.random.default_rng(2))
    y, _ = layer.forward(x)
    np.testing.assert_array_equal(y, brute_force_maxpool(x, layer.size, layer.stride))


def test_maxpool_overlapping_windows_accumulate():
    # The centre is the maximum of all four 2x2 windows of a 3x3 image (stride 1).
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 1, 1] = 1.0
    layer = MaxPool2D(2, 1)
    y, cache = layer.forward(x)
    dy = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    dx = layer.backward(dy, cache)
    expected = np.zeros_like(x)
    expected[0, 0, 1, 1] = 10.0
    np.testing.assert_array_equal(dx, expected)


def test_maxpool_ties_route_to_the_first_maximum():
    x = np.ones((1, 1, 4, 4))
    layer = MaxPool2D(2)
    y, cache = layer.forward(x)
    dx = layer.backward(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]), cache)
    expected = np.zeros_like(x)
    expected[0, 0, ::2, ::2] = [[1.0, 2.0], [3.0, 4.0]]  # top-left entry of each window
    np.testing.assert_array_equal(dx, expected)


def test_maxpool_ignored_border_gets_zero_gradient():
    x = distinct_values((1, 1, 5, 5), np.random.default_rng(3))
    x[0, 0, 4, :] = x[0, 0, :, 4] = 100.0  # largest values, but outside every 2x2 window
    layer = MaxPool2D(2)
    y, cache = layer.forward(x)
    dx = layer.backward(np.ones_like(y), cache)
    assert y.shape == (1, 1, 2, 2) and y.max() < 100
    assert not dx[0, 0, 4, :].any() and not dx[0, 0, :, 4].any()
    assert dx.sum() == 4


def test_maxpool_stride_defaults_to_size():
    assert MaxPool2D().size == MaxPool2D().stride == (2, 2)
    assert MaxPool2D(3).stride == (3, 3)
    assert MaxPool2D((2, 3), 1).stride == (1, 1)
    assert MaxPool2D(np.int64(2)).size == (2, 2)


@pytest.mark.parametrize("scale", [1, 2, 3, (2, 3), (3, 1)])
def test_upsampling_gradient_matches_finite_differences(device, scale):
    rng = np.random.default_rng(4)
    x = to_device(rng.standard_normal((2, 3, 3, 4)), device)
    errors = check_layer(UpSampling2D(scale), x, rng)
    assert errors["x"] < 1e-7, errors


@pytest.mark.parametrize("scale", [1, 2, 3, (2, 3)])
def test_upsampling_forward_and_backward_by_hand(scale):
    layer = UpSampling2D(scale)
    sh, sw = layer.scale
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 2, 3, 4))
    y, cache = layer.forward(x)
    np.testing.assert_array_equal(y, x.repeat(sh, axis=2).repeat(sw, axis=3))
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy, cache)
    for h in range(3):
        for w in range(4):
            block = dy[:, :, h * sh : (h + 1) * sh, w * sw : (w + 1) * sw]
            np.testing.assert_allclose(dx[:, :, h, w], block.sum(axis=(2, 3)), rtol=1e-12)


def test_non_contiguous_input():
    x = distinct_values((2, 3, 6, 8), np.random.default_rng(6)).transpose(0, 1, 3, 2)
    for layer in (MaxPool2D(2), UpSampling2D(2)):
        y_view, _ = layer.forward(x)
        y_copy, _ = layer.forward(np.ascontiguousarray(x))
        np.testing.assert_array_equal(y_view, y_copy)


@pytest.mark.parametrize("layer", [MaxPool2D(2), UpSampling2D(2)], ids=repr)
@pytest.mark.parametrize("shape", [(4, 4), (2, 4, 4), (1, 1, 2, 4, 4)])
def test_wrong_ndim_raises_naming_the_layer(layer, shape):
    name = type(layer).__name__
    with pytest.raises(ValueError, match=rf"{name} expects input of shape \(N, \*, \*, \*\), got"):
        layer.forward(np.zeros(shape, dtype=np.float32))


def test_maxpool_window_larger_than_input_raises():
    with pytest.raises(ValueError, match=r"MaxPool2D with a 3x3 window .* got \(1, 2, 2, 5\)"):
        MaxPool2D(3).forward(np.zeros((1, 2, 2, 5), dtype=np.float32))


@pytest.mark.parametrize("bad", [0, -1, (2,), (2, 0), (2, 2, 2), 1.5])
def test_bad_sizes_raise(bad):
    with pytest.raises((ValueError, TypeError)):
        MaxPool2D(bad)
    with pytest.raises((ValueError, TypeError)):
        UpSampling2D(bad)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_functions_keep_dtype_and_dispatch_matches_the_plain_function(dtype):
    rng = np.random.default_rng(7)
    x = distinct_values((2, 3, 7, 6), rng).astype(dtype)
    y, argmax = maxpool_forward(x, (3, 2), (2, 1))
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = maxpool_backward(dy, argmax, x.shape, (3, 2), (2, 1))
    up = upsample_nearest(x, (2, 3))
    dup = upsample_nearest_backward(up, (2, 3))
    assert y.dtype == dx.dtype == up.dtype == dup.dtype == dtype
    assert y.shape == argmax.shape == (2, 3, 3, 5) and dx.shape == x.shape
    assert up.shape == (2, 3, 14, 18) and dup.shape == x.shape
    ref_y, ref_argmax = maxpool_forward.plain(x, (3, 2), (2, 1))
    np.testing.assert_array_equal(y, ref_y)
    np.testing.assert_array_equal(argmax, ref_argmax)
    np.testing.assert_array_equal(
        dx, maxpool_backward.plain(dy, ref_argmax, x.shape, (3, 2), (2, 1))
    )
    np.testing.assert_array_equal(up, upsample_nearest.plain(x, (2, 3)))
    # a sum of six equal terms, in any order: six roundings of 6|x| at most
    assert_within_rounding(dup, 6 * x.astype(np.float64), 6 * abs(x.astype(np.float64)), 6)
