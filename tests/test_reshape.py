"""Reshape and Flatten: shapes, -1 inference, gradients, non-contiguous inputs, errors."""

import numpy as np
import pytest

from tinygan.gradcheck import check_layer
from tinygan.nn import Flatten, Reshape


@pytest.mark.parametrize(
    "layer, in_shape, out_shape",
    [
        (Reshape((64, 7, 7)), (2, 3136), (2, 64, 7, 7)),
        (Reshape((-1, 7, 7)), (3, 128 * 49), (3, 128, 7, 7)),
        (Reshape((4, -1)), (2, 2, 3, 4), (2, 4, 6)),
        (Flatten(), (5, 3, 4, 2), (5, 24)),
        (Flatten(), (5, 6), (5, 6)),
        (Flatten(), (0, 3, 4), (0, 12)),
        (Reshape((-1, 2)), (0, 6), (0, 3, 2)),
    ],
    ids=repr,
)
def test_shapes(layer, in_shape, out_shape):
    x = np.arange(np.prod(in_shape), dtype=np.float32).reshape(in_shape)
    y, cache = layer.forward(x)
    assert y.shape == out_shape and y.dtype == np.float32
    np.testing.assert_array_equal(y.ravel(), x.ravel())  # values in row-major order unchanged
    assert layer.backward(y, cache).shape == in_shape


@pytest.mark.parametrize(
    "layer, shape",
    [(Reshape((3, -1)), (2, 6, 2)), (Reshape((2, 2, 3)), (3, 12)), (Flatten(), (2, 3, 2, 2))],
)
def test_gradient_matches_finite_differences(layer, shape):
    rng = np.random.default_rng(1)
    errors = check_layer(layer, rng.standard_normal(shape), rng)
    assert errors["x"] < 1e-7, errors


@pytest.mark.parametrize("layer", [Reshape((6, 4)), Flatten()], ids=repr)
def test_non_contiguous_input(layer):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 4, 2, 3)).transpose(0, 3, 1, 2)  # (3, 3, 4, 2), a strided view
    assert not x.flags.c_contiguous
    y, cache = layer.forward(x)
    np.testing.assert_array_equal(y, layer.forward(np.ascontiguousarray(x))[0])
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy, cache)
    assert dx.shape == x.shape
    np.testing.assert_array_equal(dx, dy.reshape(x.shape))
    # The adjoint identity <dy, f(x)> = <f^T(dy), x> that makes this the right backward pass.
    np.testing.assert_allclose((dy * y).sum(), (dx * x).sum(), rtol=1e-12)


def test_wrong_size_raises_naming_the_layer():
    with pytest.raises(
        ValueError, match=r"Reshape to \(N, 64, 7, 7\) .* 3136 values .* \(2, 3000\)"
    ):
        Reshape((64, 7, 7)).forward(np.zeros((2, 3000)))
    with pytest.raises(ValueError, match=r"a multiple of 5 values per sample, got \(2, 3, 4\)"):
        Reshape((-1, 5)).forward(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match=r"Flatten expects a batch of shape \(N, \.\.\.\)"):
        Flatten().forward(np.float32(1.0))


@pytest.mark.parametrize("shape", [(-1, -1), (0, 4), (3, -2)])
def test_bad_target_shape_raises(shape):
    with pytest.raises(ValueError, match="Reshape: shape must be a tuple of positive ints"):
        Reshape(shape)


def test_repr():
    assert repr(Reshape((64, 7, 7))) == "Reshape((64, 7, 7))"
    assert repr(Flatten()) == "Flatten()"
