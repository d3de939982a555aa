"""BatchNorm: gradients against central differences, running statistics, dtypes, errors."""

import numpy as np
import pytest

from tinygan.backend import to_device
from tinygan.gradcheck import check_layer
from tinygan.nn import BatchNorm
from tinygan.nn.batchnorm import batchnorm_backward, batchnorm_forward, batchnorm_moments
from tinygan.rounding import (
    assert_forward_within_rounding,
    assert_matches_plain,
    assert_within_rounding,
    recording_calls,
)

TOL = 1e-7


def make_layer(c, rng, device="cpu", **kwargs):
    """A float64 BatchNorm with gamma and beta away from their initial 1 and 0."""
    layer = BatchNorm(c, dtype=np.float64, **kwargs)
    layer.params["gamma"][...] = rng.uniform(0.5, 2.0, c)
    layer.params["beta"][...] = rng.standard_normal(c)
    return layer.to(device)


def make_input(shape, rng):
    """Per-channel offsets and scales, so that centring and scaling both matter."""
    c = shape[1]
    channel = (1, c) + (1,) * (len(shape) - 2)
    offset = rng.uniform(-3, 3, c).reshape(channel)
    scale = rng.uniform(0.5, 3, c).reshape(channel)
    return offset + scale * rng.standard_normal(shape)


@pytest.mark.parametrize(
    "shape", [(3, 4), (7, 5), (16, 2), (1, 3, 3, 4), (2, 3, 5, 3), (5, 2, 3, 3)]
)
@pytest.mark.parametrize("training", [True, False])
def test_gradients_match_finite_differences(device, shape, training):
    rng = np.random.default_rng(1)
    layer = make_layer(shape[1], rng, device)
    # Non-trivial running statistics, so that evaluation mode is not the identity map.
    layer.buffers["mean"][...] = to_device(rng.standard_normal(shape[1]), device)
    layer.buffers["var"][...] = to_device(rng.uniform(0.5, 2.0, shape[1]), device)
    x = to_device(make_input(shape, rng), device)
    errors = check_layer(layer, x, rng, training=training)
    assert set(errors) == {"x", "gamma", "beta"}
    assert max(errors.values()) < TOL, errors


def test_gradient_batch_of_two():
    # With two samples xhat = +-(x1 - x2) / sqrt((x1 - x2)^2 + 4 eps): for a small eps it is +-1
    # whatever x is, dx is O(eps) and a finite-difference check would only compare rounding noise.
    # A large eps keeps xhat, and therefore dx, a genuine function of x.
    rng = np.random.default_rng(2)
    layer = make_layer(3, rng, eps=1.0)
    errors = check_layer(layer, rng.standard_normal((2, 3)), rng)
    assert max(errors.values()) < TOL, errors


def test_all_ones_upstream_gradient_gives_zero_dx():
    # sum_i dy_i = M and sum_i xhat_i = 0, so the compact formula gives exactly dx = 0 for dy = 1:
    # the reason gradient checks must use a random upstream gradient.
    rng = np.random.default_rng(3)
    layer = make_layer(3, rng)
    x = make_input((6, 3, 2, 2), rng)
    y, cache = layer.forward(x)
    dx = layer.backward(np.ones_like(y), cache)
    assert np.abs(dx).max() < 1e-12
    np.testing.assert_allclose(layer.grads["beta"], 24.0)


def test_training_forward_standardises_each_channel():
    rng = np.random.default_rng(4)
    layer = BatchNorm(3, eps=1e-12, dtype=np.float64)
    x = make_input((8, 3, 5, 5), rng)
    y, _ = layer.forward(x)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0.0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1.0, rtol=1e-10)


@pytest.mark.parametrize("shape, axes", [((6, 3), (0,)), ((4, 3, 2, 5), (0, 2, 3))])
def test_running_statistics_update(shape, axes):
    rng = np.random.default_rng(5)
    layer = BatchNorm(3, momentum=0.3, dtype=np.float64)
    running_mean, running_var = layer.buffers["mean"], layer.buffers["var"]
    expected_mean, expected_var = np.zeros(3), np.ones(3)
    for _ in range(2):
        x = make_input(shape, rng)
        layer.forward(x, training=True)
        # PyTorch's convention, with the unbiased (ddof=1) batch variance.
        expected_mean = 0.7 * expected_mean + 0.3 * x.mean(axis=axes)
        expected_var = 0.7 * expected_var + 0.3 * x.var(axis=axes, ddof=1)
        np.testing.assert_allclose(layer.buffers["mean"], expected_mean, rtol=1e-12)
        np.testing.assert_allclose(layer.buffers["var"], expected_var, rtol=1e-12)
    # Updated in place: a checkpoint or a view taken earlier sees the new values.
    assert layer.buffers["mean"] is running_mean and layer.buffers["var"] is running_var


def test_evaluation_uses_running_statistics_and_leaves_them_alone():
    rng = np.random.default_rng(6)
    layer = make_layer(3, rng, eps=1e-3)
    layer.buffers["mean"][...] = [0.5, -1.0, 2.0]
    layer.buffers["var"][...] = [1.5, 0.25, 4.0]
    x = make_input((5, 3, 2, 2), rng)
    y, _ = layer.forward(x, training=False)
    c = (1, 3, 1, 1)
    expected = (x - layer.buffers["mean"].reshape(c)) / np.sqrt(
        layer.buffers["var"].reshape(c) + 1e-3
    ) * layer.params["gamma"].reshape(c) + layer.params["beta"].reshape(c)
    np.testing.assert_allclose(y, expected, rtol=1e-12)
    np.testing.assert_array_equal(layer.buffers["mean"], [0.5, -1.0, 2.0])
    np.testing.assert_array_equal(layer.buffers["var"], [1.5, 0.25, 4.0])
    # A batch of one is fine in evaluation mode.
    assert layer.forward(x[:1, :, 0, 0], training=False)[0].shape == (1, 3)


def test_backward_accumulates_and_can_skip_parameter_gradients():
    rng = np.random.default_rng(7)
    layer = make_layer(2, rng)
    x = make_input((5, 2), rng)
    dy = rng.standard_normal((5, 2))
    y, cache = layer.forward(x)
    dx = layer.backward(dy, cache)
    first = {k: v.copy() for k, v in layer.grads.items()}
    np.testing.assert_array_equal(layer.backward(dy, cache, param_grads=False), dx)
    np.testing.assert_array_equal(layer.grads["gamma"], first["gamma"])
    layer.backward(dy, cache)
    np.testing.assert_allclose(layer.grads["gamma"], 2 * first["gamma"])
    np.testing.assert_allclose(layer.grads["beta"], 2 * first["beta"])


def test_float32_keeps_dtype_and_agrees_with_float64():
    """Each step in float32 (moments, normalisation, backward) is within its rounding bound of the
    same step in float64 from the same inputs, and so is the forward pass as a whole."""
    rng = np.random.default_rng(8)
    x = make_input((16, 4, 6, 6), rng).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    layer32, layer64 = BatchNorm(4), BatchNorm(4, dtype=np.float64)
    with recording_calls("cpu") as calls:
        y32, cache32 = layer32.forward(x)
        dx32 = layer32.backward(dy, cache32)
    assert y32.dtype == dx32.dtype == np.float32
    assert layer32.grads["gamma"].dtype == layer32.buffers["var"].dtype == np.float32
    assert [call.name for call in calls] == [
        "batchnorm_moments",
        "batchnorm_forward",
        "batchnorm_backward",
    ]
    for call in calls:
        call.check()
    assert_forward_within_rounding(layer64, x, [y32], training=True)
    # the running variance: (1 - m) * 1 + m * var * M / (M - 1), positive terms all; the
    # variance's M squares and its division, then four more roundings
    layer64.forward(x.astype(np.float64))
    m = x.size // x.shape[1]
    var64 = layer64.buffers["var"]
    assert_within_rounding(layer32.buffers["var"], var64, var64, m + 7, "running variance")


def test_float64_input_through_float32_layer_stays_float64():
    rng = np.random.default_rng(9)
    layer = BatchNorm(3)
    y, cache = layer.forward(make_input((4, 3), rng))
    assert y.dtype == np.float64
    assert layer.backward(np.ones_like(y), cache).dtype == np.float64


def test_non_contiguous_input():
    rng = np.random.default_rng(10)
    x = make_input((3, 4, 5, 6), rng).transpose(0, 1, 3, 2)  # (3, 4, 6, 5), not C-contiguous
    assert not x.flags.c_contiguous
    layer_a, layer_b = BatchNorm(4, dtype=np.float64), BatchNorm(4, dtype=np.float64)
    y_view, _ = layer_a.forward(x)
    y_copy, _ = layer_b.forward(np.ascontiguousarray(x))
    np.testing.assert_allclose(y_view, y_copy, rtol=1e-12)


@pytest.mark.parametrize("shape", [(4,), (4, 3, 5), (4, 2), (4, 2, 3, 3), (2, 3, 3, 3, 3)])
def test_bad_shapes_raise_naming_the_layer(shape):
    with pytest.raises(
        ValueError, match=r"BatchNorm expects input of shape \(N, 3\) or \(N, 3, H, W\)"
    ):
        BatchNorm(3).forward(np.zeros(shape, dtype=np.float32))


def test_single_value_per_channel_in_training_raises():
    with pytest.raises(ValueError, match=r"BatchNorm needs more than one value.*\(1, 3\)"):
        BatchNorm(3).forward(np.zeros((1, 3), dtype=np.float32), training=True)


def test_integer_input_raises():
    with pytest.raises(TypeError, match="floating-point"):
        BatchNorm(3).forward(np.zeros((4, 3), dtype=np.int64))


@pytest.mark.parametrize("kwargs", [{"num_features": 0}, {"momentum": 1.5}, {"eps": 0.0}])
def test_bad_constructor_arguments(kwargs):
    with pytest.raises(ValueError, match="BatchNorm"):
        BatchNorm(**{"num_features": 3, **kwargs})


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(5, 3), (2, 3, 4, 5)])
def test_functions_keep_dtype_and_dispatch_matches_the_plain_function(dtype, shape):
    rng = np.random.default_rng(11)
    x = make_input(shape, rng).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    gamma, beta = np.full(3, 1.5, dtype), np.full(3, -0.5, dtype)
    mean, var = batchnorm_moments(x)
    assert_matches_plain("batchnorm_moments", (x,), (mean, var))
    y, xhat, inv_std = batchnorm_forward(x, mean, var, gamma, beta, 1e-5)
    assert_matches_plain("batchnorm_forward", (x, mean, var, gamma, beta, 1e-5), (y, xhat, inv_std))
    for batch_stats in (True, False):
        args = (dy, xhat, inv_std, gamma, batch_stats)
        results = batchnorm_backward(*args)
        assert all(result.dtype == dtype for result in results)
        assert_matches_plain("batchnorm_backward", args, results)
    for array in (mean, var, y, xhat, inv_std):
        assert array.dtype == dtype
    assert y.shape == xhat.shape == shape and mean.shape == var.shape == inv_std.shape == (3,)
