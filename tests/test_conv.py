"""Conv2D, im2col and col2im: gradients, brute-force forward, "same" padding, layouts,
dtypes, errors."""

import numpy as np
import pytest

from tinygan.backend import to_device, to_numpy
from tinygan.gradcheck import check_layer
from tinygan.init import normal
from tinygan.nn import Conv2D
from tinygan.nn.conv import col2im, im2col

# (in, out, kernel, stride, padding, (H, W), N, bias)
CASES = [
    (1, 2, 1, 1, 0, (3, 3), 1, True),
    (2, 3, 3, 1, 1, (5, 5), 2, True),
    (2, 2, 3, 2, "same", (7, 5), 1, False),
    (2, 2, (2, 4), (3, 2), "valid", (7, 9), 2, True),
    (3, 2, 5, 2, "same", (5, 6), 1, True),
    (1, 2, (3, 1), (1, 3), (2, 0), (4, 7), 1, True),
    (2, 1, 4, 3, "same", (8, 7), 2, False),
    (2, 2, 5, 3, 2, (9, 6), 1, True),
    (1, 1, 2, 2, "same", (5, 5), 1, True),
    (2, 2, 1, 3, "same", (7, 7), 1, True),
    (2, 3, (1, 3), 2, (1, 1), (3, 5), 1, True),
]


def make_conv(cin, cout, kernel, stride, padding, bias, seed=0, dtype=np.float64):
    """A layer with a non-zero random bias, so that the forward tests see it."""
    return Conv2D(
        cin,
        cout,
        kernel,
        stride,
        padding,
        bias=bias,
        bias_init=normal(1.0),
        rng=np.random.default_rng(seed),
        dtype=dtype,
    )


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def brute_force_conv(x, W, b, stride, pad):
    """The definition, one output pixel at a time."""
    (sh, sw), (top, bottom, left, right) = stride, pad
    xpad = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    o, _, kh, kw = W.shape
    oh = (xpad.shape[2] - kh) // sh + 1
    ow = (xpad.shape[3] - kw) // sw + 1
    y = np.zeros((x.shape[0], o, oh, ow))
    for p in range(oh):
        for q in range(ow):
            patch = xpad[:, :, p * sh : p * sh + kh, q * sw : q * sw + kw]
            y[:, :, p, q] = np.tensordot(patch, W, axes=([1, 2, 3], [1, 2, 3]))
    return y if b is None else y + b[:, None, None]


@pytest.mark.parametrize("cin, cout, kernel, stride, padding, hw, n, bias", CASES)
def test_gradients_match_finite_differences(
    device, cin, cout, kernel, stride, padding, hw, n, bias
):
    rng = np.random.default_rng(1)
    layer = make_conv(cin, cout, kernel, stride, padding, bias).to(device)
    x = to_device(rng.standard_normal((n, cin, *hw)), device)
    errors = check_layer(layer, x, rng)
    assert set(errors) == ({"x", "W", "b"} if bias else {"x", "W"})
    assert max(errors.values()) <= 1e-7, errors


@pytest.mark.parametrize("cin, cout, kernel, stride, padding, hw, n, bias", CASES)
def test_forward_matches_brute_force(cin, cout, kernel, stride, padding, hw, n, bias):
    layer = make_conv(cin, cout, kernel, stride, padding, bias)
    x = np.random.default_rng(2).standard_normal((n, cin, *hw))
    pad = layer.padding_for(hw)
    expected = brute_force_conv(x, layer.params["W"], layer.params.get("b"), pair(stride), pad)
    y, _ = layer.forward(x)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    assert y.flags.c_contiguous


@pytest.mark.parametrize(
    "size, kernel, stride, expected_pad",
    [
        (5, 3, 1, (1, 1)),
        (5, 4, 1, (1, 2)),  # the odd row goes to the bottom/right, as in TensorFlow
        (28, 5, 2, (1, 2)),
        (14, 5, 2, (1, 2)),
        (7, 5, 2, (2, 2)),
        (7, 1, 3, (0, 0)),  # stride > kernel: no padding needed
        (6, 2, 2, (0, 0)),
    ],
)
def test_same_padding_output_shape_and_split(size, kernel, stride, expected_pad):
    layer = make_conv(1, 1, (kernel, 1), (stride, 1), "same", bias=False)
    x = np.random.default_rng(3).standard_normal((1, 1, size, 3))
    y, _ = layer.forward(x)
    assert y.shape == (1, 1, -(-size // stride), 3)
    assert layer.padding_for((size, 3))[:2] == expected_pad
    top, bottom = expected_pad
    explicit = np.pad(x, ((0, 0), (0, 0), (top, bottom), (0, 0)))
    padded_layer = make_conv(1, 1, (kernel, 1), (stride, 1), 0, bias=False)
    padded_layer.params["W"][...] = layer.params["W"]
    np.testing.assert_allclose(y, padded_layer.forward(explicit)[0], rtol=1e-12, atol=1e-12)


def test_dcgan_discriminator_shapes():
    rng = np.random.default_rng(4)
    conv1 = Conv2D(1, 64, 5, 2, "same", rng=rng)
    conv2 = Conv2D(64, 128, 5, 2, "same", rng=rng)
    x = rng.standard_normal((2, 1, 28, 28)).astype(np.float32)
    h, _ = conv1.forward(x)
    y, _ = conv2.forward(h)
    assert h.shape == (2, 64, 14, 14)
    assert y.shape == (2, 128, 7, 7)


def test_non_contiguous_input():
    layer = make_conv(3, 2, (3, 2), (2, 1), 1, bias=True)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 6, 7)).transpose(0, 1, 3, 2)  # (2, 3, 7, 6), a view
    assert not x.flags.c_contiguous
    y, cache = layer.forward(x)
    y_ref, cache_ref = layer.forward(np.ascontiguousarray(x))
    np.testing.assert_array_equal(y, y_ref)
    dy = rng.standard_normal((2, 2, y.shape[3], y.shape[2])).transpose(0, 1, 3, 2)
    np.testing.assert_array_equal(layer.backward(dy, cache), layer.backward(dy.copy(), cache_ref))


@pytest.mark.parametrize("x_dtype", [np.float32, np.float64])
def test_output_keeps_input_dtype(x_dtype):
    layer = Conv2D(2, 3, 3, 2, "same", rng=np.random.default_rng(6))  # float32 parameters
    x = np.random.default_rng(7).standard_normal((2, 2, 5, 5)).astype(x_dtype)
    y, cache = layer.forward(x)
    assert y.dtype == x_dtype
    dx = layer.backward(np.ones_like(y), cache)
    assert dx.dtype == x_dtype
    assert layer.grads["W"].dtype == np.float32 and layer.grads["b"].dtype == np.float32


def test_backward_accumulates_and_param_grads_false_skips():
    layer = make_conv(2, 3, 3, 1, 1, bias=True)
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 2, 4, 5))
    y, cache = layer.forward(x)
    dy = rng.standard_normal(y.shape)
    dx_only = layer.backward(dy, cache, param_grads=False)
    assert not layer.grads["W"].any() and not layer.grads["b"].any()
    dx = layer.backward(dy, cache)
    once = {k: v.copy() for k, v in layer.grads.items()}
    layer.backward(dy, cache)
    np.testing.assert_array_equal(dx, dx_only)
    for name in once:
        np.testing.assert_allclose(layer.grads[name], 2 * once[name])


def test_default_init_is_glorot_uniform_with_receptive_field_fans():
    layer = Conv2D(8, 16, (3, 5), rng=np.random.default_rng(9))
    limit = np.sqrt(6.0 / (8 * 15 + 16 * 15))
    W = layer.params["W"]
    assert W.shape == (16, 8, 3, 5) and W.dtype == np.float32
    assert np.abs(W).max() <= limit and np.abs(W).max() > 0.9 * limit
    assert layer.params["b"].shape == (16,) and not layer.params["b"].any()
    again = Conv2D(8, 16, (3, 5), rng=np.random.default_rng(9))
    np.testing.assert_array_equal(W, again.params["W"])


# -- im2col and col2im -----------------------------------------------------------------------------

KERNEL_CASES = [
    ((2, 3, 5, 4), 3, 2, (1, 1), (0, 0, 0, 0)),
    ((1, 2, 6, 7), 2, 3, (2, 3), (1, 2, 0, 1)),
    ((3, 1, 4, 4), 4, 1, (1, 1), (2, 1, 2, 1)),
]


@pytest.mark.parametrize("shape, kh, kw, stride, pad", KERNEL_CASES)
def test_im2col_layout(shape, kh, kw, stride, pad):
    x = np.random.default_rng(10).standard_normal(shape)
    cols = im2col(x, kh, kw, stride, pad)
    top, bottom, left, right = pad
    xpad = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    n, c = shape[:2]
    oh = (xpad.shape[2] - kh) // stride[0] + 1
    ow = (xpad.shape[3] - kw) // stride[1] + 1
    assert cols.shape == (n * oh * ow, kh * kw * c) and cols.flags.c_contiguous
    for row, (b, p, q) in enumerate(np.ndindex(n, oh, ow)):
        for col, (i, j, ch) in enumerate(np.ndindex(kh, kw, c)):
            assert cols[row, col] == xpad[b, ch, p * stride[0] + i, q * stride[1] + j]


@pytest.mark.parametrize("shape, kh, kw, stride, pad", KERNEL_CASES)
def test_col2im_is_the_adjoint_of_im2col(device, shape, kh, kw, stride, pad):
    rng = np.random.default_rng(11)
    x = to_device(rng.standard_normal(shape), device)
    cols = im2col(x, kh, kw, stride, pad)
    g = to_device(rng.standard_normal(cols.shape), device)
    lhs = float((cols * g).sum())
    rhs = float((x * col2im(g, shape, kh, kw, stride, pad)).sum())
    assert abs(lhs - rhs) <= 1e-12 * (abs(lhs) + abs(rhs))
    assert to_numpy(col2im(g, shape, kh, kw, stride, pad)).flags.c_contiguous


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "x_shape, match",
    [
        ((2, 3, 5), r"Conv2D expects input of shape \(N, 3, \*, \*\), got \(2, 3, 5\)"),
        ((2, 4, 5, 5), r"Conv2D expects input of shape \(N, 3, \*, \*\), got \(2, 4, 5, 5\)"),
        ((1, 3, 2, 6), r"Conv2D: kernel \(3, 3\) is larger than the padded input \(2, 6\)"),
    ],
)
def test_bad_input_raises(x_shape, match):
    layer = Conv2D(3, 2, 3, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match=match):
        layer.forward(np.zeros(x_shape, np.float32))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"kernel_size": 0}, "kernel_size must be >= 1"),
        ({"kernel_size": (3, -1)}, "kernel_size must be >= 1"),
        ({"stride": 0}, "stride must be >= 1"),
        ({"padding": -1}, "padding must be >= 0"),
        ({"padding": "full"}, "padding must be an int, a pair of ints or one of"),
        ({"padding": (1, 2, 3)}, "padding must be an int or a pair of ints"),
        ({"in_channels": 0}, "in_channels must be a positive int"),
        ({"out_channels": 2.5}, "out_channels must be a positive int"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    args = {"in_channels": 3, "out_channels": 2, "kernel_size": 3} | kwargs
    with pytest.raises(ValueError, match=f"Conv2D: {match}"):
        Conv2D(**args)


def test_padding_string_is_case_insensitive_and_valid_is_zero():
    assert Conv2D(1, 1, 3, padding="SAME").padding == "same"
    assert Conv2D(1, 1, 3, padding="valid").padding == (0, 0)
