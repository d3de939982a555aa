"""ConvTranspose2D: gradients, brute-force forward, adjointness with Conv2D, "same" geometry, dtypes,
errors."""

import numpy as np
import pytest

from tinygan.backend import to_device
from tinygan.gradcheck import check_layer
from tinygan.init import normal
from tinygan.nn import Conv2D, ConvTranspose2D

# (in, out, kernel, stride, padding, output_padding, (H, W), N, bias)
CASES = [
    (1, 2, 1, 1, 0, 0, (3, 3), 1, True),
    (2, 3, 3, 1, 1, 0, (4, 5), 2, True),
    (2, 2, 3, 2, "same", 0, (3, 4), 1, False),
    (2, 2, (2, 4), (3, 2), "valid", (2, 1), (3, 2), 2, True),
    (3, 2, 5, 2, "same", 0, (3, 3), 1, True),
    (1, 2, (3, 1), (1, 3), (2, 0), (0, 2), (5, 3), 1, True),
    (2, 1, 4, 3, 1, 2, (3, 2), 2, False),
    (2, 2, 5, 1, "same", 0, (3, 4), 1, True),
    (1, 1, 2, 3, "same", 0, (3, 2), 1, True),  # kernel < stride: uncovered rows get only the bias
    (2, 3, (1, 3), 2, (0, 1), 1, (2, 3), 1, True),
]


def make_deconv(cin, cout, kernel, stride, padding, output_padding, bias, dtype=np.float64):
    return ConvTranspose2D(
        cin,
        cout,
        kernel,
        stride,
        padding,
        output_padding,
        bias=bias,
        bias_init=normal(1.0),
        rng=np.random.default_rng(0),
        dtype=dtype,
    )


def brute_force_conv_transpose(x, W, b, stride, out_size, pad):
    """Every input pixel stamps ``x * W`` onto the full (uncropped) output, then the crop."""
    (sh, sw), (top, _, left, _) = stride, pad
    n, _, h, w = x.shape
    _, o, kh, kw = W.shape
    full = np.zeros(
        (
            n,
            o,
            max((h - 1) * sh + kh, top + out_size[0]),
            max((w - 1) * sw + kw, left + out_size[1]),
        )
    )
    for p in range(h):
        for q in range(w):
            stamp = np.tensordot(x[:, :, p, q], W, axes=([1], [0]))  # (N, O, kh, kw)
            full[:, :, p * sh : p * sh + kh, q * sw : q * sw + kw] += stamp
    y = full[:, :, top : top + out_size[0], left : left + out_size[1]]
    return y if b is None else y + b[:, None, None]


@pytest.mark.parametrize("cin, cout, kernel, stride, padding, out_pad, hw, n, bias", CASES)
def test_gradients_match_finite_differences(
    device, cin, cout, kernel, stride, padding, out_pad, hw, n, bias
):
    rng = np.random.default_rng(1)
    layer = make_deconv(cin, cout, kernel, stride, padding, out_pad, bias).to(device)
    x = to_device(rng.standard_normal((n, cin, *hw)), device)
    errors = check_layer(layer, x, rng)
    assert set(errors) == ({"x", "W", "b"} if bias else {"x", "W"})
    assert max(errors.values()) <= 1e-7, errors


@pytest.mark.parametrize("cin, cout, kernel, stride, padding, out_pad, hw, n, bias", CASES)
def test_forward_matches_brute_force(cin, cout, kernel, stride, padding, out_pad, hw, n, bias):
    layer = make_deconv(cin, cout, kernel, stride, padding, out_pad, bias)
    x = np.random.default_rng(2).standard_normal((n, cin, *hw))
    out_size, pad = layer.output_geometry(hw)
    stride = layer.stride
    expected = brute_force_conv_transpose(
        x, layer.params["W"], layer.params.get("b"), stride, out_size, pad
    )
    y, _ = layer.forward(x)
    assert y.shape == (n, cout, *out_size)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    assert y.flags.c_contiguous


# Conv2D geometries (kernel, stride, padding, (H, W)); the transposed layer gets the output_padding
# that maps the conv's output size back to (H, W).
ADJOINT_CASES = [
    (3, 1, 1, (5, 6)),
    (3, 2, 0, (7, 8)),
    ((2, 4), (3, 2), (1, 2), (8, 9)),
    (5, 2, "same", (6, 8)),
    (4, 3, "same", (6, 9)),
    (2, 2, "valid", (5, 4)),
]


@pytest.mark.parametrize("kernel, stride, padding, hw", ADJOINT_CASES)
def test_is_the_adjoint_of_conv2d(kernel, stride, padding, hw):
    """<conv(x), y> = <x, conv_T(y)> with the same weights and no bias."""
    rng = np.random.default_rng(3)
    conv = Conv2D(2, 3, kernel, stride, padding, bias=False, rng=rng, dtype=np.float64)
    x = rng.standard_normal((2, 2, *hw))
    cx, _ = conv.forward(x)
    output_padding = 0
    if padding != "same":
        pad = conv.padding_for(hw)
        output_padding = tuple(
            (size + before + after - k) % s
            for size, before, after, k, s in zip(
                hw, pad[::2], pad[1::2], conv.kernel_size, conv.stride, strict=True
            )
        )
    deconv = ConvTranspose2D(3, 2, kernel, stride, padding, output_padding, bias=False)
    deconv.params["W"] = conv.params["W"]
    y = rng.standard_normal(cx.shape)
    ty, _ = deconv.forward(y)
    assert ty.shape == x.shape
    lhs, rhs = float((cx * y).sum()), float((x * ty).sum())
    assert abs(lhs - rhs) <= 1e-12 * (abs(lhs) + abs(rhs))


@pytest.mark.parametrize(
    "kernel, stride, hw",
    [
        (5, 1, (7, 7)),
        (5, 2, (7, 7)),
        (5, 2, (14, 14)),
        (3, 2, (3, 5)),
        (1, 3, (2, 3)),
        (4, 2, (3, 3)),
    ],
)
def test_same_output_is_input_times_stride(kernel, stride, hw):
    layer = make_deconv(2, 1, kernel, stride, "same", 0, bias=False)
    y, _ = layer.forward(np.random.default_rng(4).standard_normal((1, 2, *hw)))
    assert y.shape == (1, 1, hw[0] * stride, hw[1] * stride)


def test_same_crops_like_tensorflow():
    """k5 s2: the full output is 2H + 3; "same" keeps rows 1 .. 2H (one cropped at the top, two at
    the bottom), the split TensorFlow's conv2d_transpose makes."""
    same = make_deconv(2, 3, 5, 2, "same", 0, bias=True)
    valid = make_deconv(2, 3, 5, 2, "valid", 0, bias=True)
    x = np.random.default_rng(5).standard_normal((2, 2, 4, 3))
    y_same, _ = same.forward(x)
    y_valid, _ = valid.forward(x)
    assert y_valid.shape == (2, 3, 11, 9)
    np.testing.assert_allclose(y_same, y_valid[:, :, 1:9, 1:7], rtol=1e-12, atol=1e-12)


def test_dcgan_generator_shapes():
    rng = np.random.default_rng(6)
    layers = [
        ConvTranspose2D(64, 64, 5, 1, "same", rng=rng),
        ConvTranspose2D(64, 32, 5, 2, "same", rng=rng),
        ConvTranspose2D(32, 1, 5, 2, "same", rng=rng),
    ]
    h = rng.standard_normal((2, 64, 7, 7)).astype(np.float32)
    shapes = []
    for layer in layers:
        h, _ = layer.forward(h)
        shapes.append(h.shape)
    assert shapes == [(2, 64, 7, 7), (2, 32, 14, 14), (2, 1, 28, 28)]


def test_non_contiguous_input():
    layer = make_deconv(3, 2, (3, 2), (2, 1), 1, (1, 0), bias=True)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 5, 4)).transpose(0, 1, 3, 2)
    assert not x.flags.c_contiguous
    y, cache = layer.forward(x)
    y_ref, cache_ref = layer.forward(np.ascontiguousarray(x))
    np.testing.assert_array_equal(y, y_ref)
    dy = rng.standard_normal((2, 2, y.shape[3], y.shape[2])).transpose(0, 1, 3, 2)
    np.testing.assert_array_equal(layer.backward(dy, cache), layer.backward(dy.copy(), cache_ref))


@pytest.mark.parametrize("x_dtype", [np.float32, np.float64])
def test_output_keeps_input_dtype(x_dtype):
    layer = ConvTranspose2D(2, 3, 3, 2, "same", rng=np.random.default_rng(8))
    x = np.random.default_rng(9).standard_normal((2, 2, 3, 3)).astype(x_dtype)
    y, cache = layer.forward(x)
    assert y.dtype == x_dtype
    assert layer.backward(np.ones_like(y), cache).dtype == x_dtype
    assert layer.grads["W"].dtype == np.float32 and layer.grads["b"].dtype == np.float32


def test_param_grads_false_skips_parameter_gradients():
    layer = make_deconv(2, 3, 3, 2, 1, 1, bias=True)
    rng = np.random.default_rng(10)
    x = rng.standard_normal((2, 2, 3, 4))
    y, cache = layer.forward(x)
    dy = rng.standard_normal(y.shape)
    dx_only = layer.backward(dy, cache, param_grads=False)
    assert not layer.grads["W"].any() and not layer.grads["b"].any()
    np.testing.assert_array_equal(layer.backward(dy, cache), dx_only)
    assert layer.grads["W"].any() and layer.grads["b"].any()


def test_default_init():
    layer = ConvTranspose2D(8, 4, (3, 5), rng=np.random.default_rng(11))
    W = layer.params["W"]
    assert W.shape == (8, 4, 3, 5) and W.dtype == np.float32
    assert np.abs(W).max() <= np.sqrt(6.0 / (8 * 15 + 4 * 15))
    assert not layer.params["b"].any()


@pytest.mark.parametrize(
    "x_shape, match",
    [
        ((2, 3, 5), r"ConvTranspose2D expects input of shape \(N, 3, \*, \*\), got \(2, 3, 5\)"),
        (
            (2, 4, 5, 5),
            r"ConvTranspose2D expects input of shape \(N, 3, \*, \*\), got \(2, 4, 5, 5\)",
        ),
        ((1, 3, 1, 4), r"ConvTranspose2D: padding \(2, 2\) crops everything .* \(-1, 2\)"),
    ],
)
def test_bad_input_raises(x_shape, match):
    layer = ConvTranspose2D(3, 2, 3, padding=2, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match=match):
        layer.forward(np.zeros(x_shape, np.float32))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"kernel_size": 0}, "kernel_size must be >= 1"),
        ({"stride": (1, 0)}, "stride must be >= 1"),
        ({"padding": -2}, "padding must be >= 0"),
        ({"padding": "full"}, "padding must be an int, a pair of ints or one of"),
        (
            {"stride": 2, "output_padding": 2},
            r"output_padding must be smaller than stride \(2, 2\)",
        ),
        ({"output_padding": -1}, "output_padding must be >= 0"),
        (
            {"stride": 2, "padding": "same", "output_padding": 1},
            "padding=.same. fixes the output size",
        ),
        ({"in_channels": -3}, "in_channels must be a positive int"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    args = {"in_channels": 3, "out_channels": 2, "kernel_size": 3} | kwargs
    with pytest.raises(ValueError, match=f"ConvTranspose2D: {match}"):
        ConvTranspose2D(**args)
