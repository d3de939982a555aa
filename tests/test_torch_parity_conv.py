"""Conv2D and ConvTranspose2D against PyTorch autograd, in float64 (skipped without torch).

PyTorch has no asymmetric padding, so "same" is compared with an explicit ``F.pad`` of the input
(convolution) or of the output (transposed convolution; a negative pad crops).

The two libraries sum in their own orders; each result may differ by the rounding bound of its
sums (:mod:`tinygan.rounding`), in float64 about 1e-16 per term of the terms' magnitude, where a
wrong padding, flip or transposition is off by whole terms.
"""

import numpy as np
import pytest

from tinygan.init import normal
from tinygan.nn import Conv2D, ConvTranspose2D
from tinygan.rounding import (
    assert_within,
    assert_within_rounding,
    backward_magnitudes,
    forward_bound,
)

torch = pytest.importorskip("torch")
F = torch.nn.functional


def run_both(layer, torch_fn, x, rng):
    """Forward and backward through ``layer`` and through ``torch_fn(x, W, b)`` with one random
    upstream gradient; assert that the outputs and the gradients of x, W and b agree."""
    y, cache = layer.forward(x)
    dy = rng.standard_normal(y.shape)
    layer.zero_grad()
    dx = layer.backward(dy, cache)

    leaves = {"x": x, **layer.params}
    tensors = {k: torch.tensor(v, requires_grad=True) for k, v in leaves.items()}
    y_t = torch_fn(tensors["x"], tensors["W"], tensors.get("b"))
    y_t.backward(torch.tensor(dy))

    assert y.shape == tuple(y_t.shape)
    # the forward bound in float64 allows both sides their rounding (see forward_bound)
    assert_within(y_t.detach().numpy(), y, forward_bound(layer, x, dtype=np.float64)[1], "y")
    dx_magnitude, magnitudes = backward_magnitudes(layer, cache, dy)
    terms = dy.size + layer.params["W"].size  # more than any of the backward pass's sums has
    assert_within_rounding(dx, tensors["x"].grad.numpy(), dx_magnitude, terms, "dx")
    for name in layer.params:
        grad = tensors[name].grad.numpy()
        assert_within_rounding(layer.grads[name], grad, magnitudes[name], terms, name)


# (in, out, kernel, stride, padding, (H, W), N, bias)
CONV_CASES = [
    (3, 4, 3, 1, 1, (8, 8), 2, True),
    (2, 5, 5, 2, 2, (9, 7), 3, True),
    (3, 2, (2, 4), (3, 2), (1, 2), (10, 11), 1, False),
    (1, 3, 1, 3, 0, (7, 5), 2, True),
    (4, 2, 4, 2, 0, (6, 9), 1, True),
]


@pytest.mark.parametrize("cin, cout, kernel, stride, padding, hw, n, bias", CONV_CASES)
def test_conv2d_matches_torch(cin, cout, kernel, stride, padding, hw, n, bias):
    rng = np.random.default_rng(0)
    layer = Conv2D(
        cin, cout, kernel, stride, padding, bias, bias_init=normal(1.0), rng=rng, dtype=np.float64
    )
    x = rng.standard_normal((n, cin, *hw))
    run_both(layer, lambda x, W, b: F.conv2d(x, W, b, stride=stride, padding=padding), x, rng)


@pytest.mark.parametrize(
    "cin, cout, kernel, stride, hw",
    [(1, 4, 5, 2, (28, 28)), (3, 2, 4, 3, (8, 7)), (2, 3, (2, 5), (1, 2), (5, 6))],
)
def test_conv2d_same_matches_torch_with_explicit_padding(cin, cout, kernel, stride, hw):
    rng = np.random.default_rng(1)
    layer = Conv2D(
        cin, cout, kernel, stride, "same", bias_init=normal(1.0), rng=rng, dtype=np.float64
    )
    top, bottom, left, right = layer.padding_for(hw)
    x = rng.standard_normal((2, cin, *hw))

    def reference(x, W, b):
        return F.conv2d(F.pad(x, (left, right, top, bottom)), W, b, stride=stride)

    run_both(layer, reference, x, rng)


# (in, out, kernel, stride, padding, output_padding, (H, W), N, bias)
TRANSPOSE_CASES = [
    (3, 4, 3, 1, 1, 0, (6, 6), 2, True),
    (2, 5, 5, 2, 2, 1, (5, 4), 3, True),
    (3, 2, (2, 4), (3, 2), (1, 2), (2, 1), (4, 5), 1, False),
    (1, 3, 1, 3, 0, 2, (3, 4), 2, True),
    (4, 2, 4, 2, 0, 0, (3, 5), 1, True),
]


@pytest.mark.parametrize(
    "cin, cout, kernel, stride, padding, out_pad, hw, n, bias", TRANSPOSE_CASES
)
def test_conv_transpose2d_matches_torch(cin, cout, kernel, stride, padding, out_pad, hw, n, bias):
    rng = np.random.default_rng(2)
    layer = ConvTranspose2D(
        cin,
        cout,
        kernel,
        stride,
        padding,
        out_pad,
        bias,
        bias_init=normal(1.0),
        rng=rng,
        dtype=np.float64,
    )
    x = rng.standard_normal((n, cin, *hw))

    def reference(x, W, b):
        return F.conv_transpose2d(x, W, b, stride=stride, padding=padding, output_padding=out_pad)

    run_both(layer, reference, x, rng)


@pytest.mark.parametrize(
    "cin, cout, kernel, stride, hw",
    [
        (4, 2, 5, 2, (7, 7)),
        (3, 3, 5, 1, (7, 7)),
        (2, 1, (4, 3), (3, 2), (3, 4)),
        (2, 2, 1, 2, (3, 3)),
    ],
)
def test_conv_transpose2d_same_matches_torch_with_explicit_crop(cin, cout, kernel, stride, hw):
    rng = np.random.default_rng(3)
    layer = ConvTranspose2D(
        cin, cout, kernel, stride, "same", bias_init=normal(1.0), rng=rng, dtype=np.float64
    )
    (oh, ow), (top, _, left, _) = layer.output_geometry(hw)
    x = rng.standard_normal((2, cin, *hw))

    def reference(x, W, b):
        full = F.conv_transpose2d(x, W, stride=stride)
        # Negative padding crops; a positive one adds the rows no kernel reaches (kernel < stride).
        right = ow - (full.shape[3] - left)
        bottom = oh - (full.shape[2] - top)
        return F.pad(full, (-left, right, -top, bottom)) + b[None, :, None, None]

    run_both(layer, reference, x, rng)
