"""The Numba kernels against the NumPy reference, the ``TINYGAN_NUMBA`` switch, and float32 training
that stays float32 end to end.

Every kernel runs in float32 and float64 on several shapes: odd sizes, strides and paddings, batches
of one, non-contiguous inputs, and (for im2col/col2im) arrays large enough to take the multi-threaded
path. Agreement is relative to the largest reference value: 1e-12 in float64 and 1e-5 in float32.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from tinygan import kernels
from tinygan.kernels import reference
from tinygan.nn import Conv2D, ConvTranspose2D, conv

cpu_numba = pytest.importorskip("tinygan.kernels.cpu_numba")

DTYPES = [np.float32, np.float64]
TOLERANCE = {np.float32: 1e-5, np.float64: 1e-12}


def assert_close(got: Any, want: Any, dtype: Any) -> None:
    """Same shape and dtype, and ``max|got - want| <= tol * max|want|`` (tol by dtype)."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape
    assert got.dtype == want.dtype == dtype
    scale = max(float(np.abs(want).max(initial=0.0)), np.finfo(dtype).tiny)
    error = float(np.abs(got.astype(np.float64) - want).max(initial=0.0))
    assert error <= TOLERANCE[dtype] * scale, f"max error {error:.3g} at scale {scale:.3g}"


def non_contiguous(a: np.ndarray) -> np.ndarray:
    """The same values as ``a`` in a strided view (every other entry of a larger array)."""
    wide = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), dtype=a.dtype)
    wide[..., ::2] = a
    view = wide[..., ::2]
    assert not view.flags.c_contiguous
    return view


def standard_normal(shape: tuple[int, ...], dtype: Any, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# -- convolution ---------------------------------------------------------------------------------

# (N, C, H, W), (kh, kw), stride, (top, bottom, left, right)
CONV_CASES = [
    ((2, 3, 7, 6), (3, 3), (1, 1), (1, 1, 1, 1)),
    ((1, 1, 5, 5), (5, 5), (2, 2), (2, 2, 2, 2)),
    ((3, 4, 9, 8), (4, 2), (3, 2), (0, 1, 2, 0)),  # asymmetric padding, rows the windows miss
    ((2, 5, 6, 7), (1, 1), (1, 1), (0, 0, 0, 0)),
    ((2, 3, 6, 6), (5, 5), (2, 2), (1, 2, 1, 2)),  # "same", stride 2: the odd padding after
    ((8, 16, 14, 14), (5, 5), (2, 2), (1, 2, 1, 2)),  # large enough for the parallel path
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("shape", "kernel", "stride", "padding"), CONV_CASES)
def test_im2col_and_col2im(dtype, shape, kernel, stride, padding):
    x = standard_normal(shape, dtype, 0)
    cols = cpu_numba.im2col(x, *kernel, stride, padding)
    assert cols.flags.c_contiguous
    # a pure copy: exactly equal
    np.testing.assert_array_equal(cols, reference.im2col(x, *kernel, stride, padding))
    g = standard_normal(cols.shape, dtype, 1)
    image = cpu_numba.col2im(g, shape, *kernel, stride, padding)
    assert image.flags.c_contiguous
    assert_close(image, reference.col2im(g, shape, *kernel, stride, padding), dtype)


def test_the_largest_conv_case_runs_on_several_threads():
    shape, kernel, _, _ = CONV_CASES[-1]
    patch_entries = shape[0] * 7 * 7 * kernel[0] * kernel[1] * shape[1]
    assert patch_entries >= cpu_numba.PARALLEL_MIN_WORK


@pytest.mark.parametrize("dtype", DTYPES)
def test_im2col_and_col2im_take_non_contiguous_inputs(dtype):
    shape, kernel, stride, padding = CONV_CASES[2]
    nhwc = standard_normal((shape[0], shape[2], shape[3], shape[1]), dtype, 2)
    x = nhwc.transpose(0, 3, 1, 2)  # an NCHW view of channels-last memory
    np.testing.assert_array_equal(
        cpu_numba.im2col(x, *kernel, stride, padding),
        reference.im2col(np.ascontiguousarray(x), *kernel, stride, padding),
    )
    cols = non_contiguous(
        standard_normal(reference.im2col(x, *kernel, stride, padding).shape, dtype, 3)
    )
    assert_close(
        cpu_numba.col2im(cols, shape, *kernel, stride, padding),
        reference.col2im(cols, shape, *kernel, stride, padding),
        dtype,
    )


@pytest.mark.parametrize(
    "make_layer",
    [
        lambda rng: Conv2D(3, 4, 5, stride=2, padding="same", rng=rng, dtype=np.float64),
        lambda rng: ConvTranspose2D(3, 4, 5, stride=2, padding="same", rng=rng, dtype=np.float64),
    ],
    ids=["Conv2D", "ConvTranspose2D"],
)
def test_convolutions_in_batch_chunks_match_the_whole_batch(monkeypatch, make_layer):
    """Large batches go through the convolutions in chunks of images (tinygan.nn.conv.batch_chunks):
    one image at a time gives the whole-batch output, input gradient and parameter gradients."""
    rng = np.random.default_rng(23)
    layer = make_layer(rng)
    x = rng.standard_normal((5, 3, 9, 8))
    results = []
    for chunk_bytes, chunks in ((conv.CHUNK_BYTES, 1), (1, 5)):
        monkeypatch.setattr(conv, "CHUNK_BYTES", chunk_bytes)
        assert len(conv.batch_chunks(x, 3 * 25 * 20)) == chunks
        layer.zero_grad()
        y, cache = layer.forward(x)
        dx = layer.backward(np.linspace(-1, 1, y.size).reshape(y.shape), cache)
        results.append((y, dx, *(g.copy() for g in layer.grads.values())))
    for chunked, whole in zip(*results, strict=True):
        assert_close(chunked, whole, np.float64)


def test_batch_chunks_cover_the_batch(monkeypatch):
    monkeypatch.setattr(conv, "CHUNK_BYTES", 2 * 8 * 10)  # two float64 images of 10 patch entries
    chunks = conv.batch_chunks(np.zeros((5, 1)), 10)
    assert chunks == [slice(0, 2), slice(2, 4), slice(4, 5)]


# -- pooling and upsampling ----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("shape", "size", "stride"),
    [
        ((2, 3, 8, 8), (2, 2), (2, 2)),
        ((1, 2, 7, 9), (3, 2), (2, 1)),  # overlapping windows, rows no window reaches
        ((2, 1, 5, 5), (5, 5), (1, 1)),
        ((4, 32, 32, 32), (2, 2), (2, 2)),
    ],
)
def test_maxpool(dtype, shape, size, stride):
    # Values on a coarse grid make ties common: both must pick the first maximum.
    x = np.round(standard_normal(shape, dtype, 4) * 2) / 2
    y, argmax = cpu_numba.maxpool_forward(x, size, stride)
    ref_y, ref_argmax = reference.maxpool_forward(x, size, stride)
    np.testing.assert_array_equal(y, ref_y)
    np.testing.assert_array_equal(argmax, ref_argmax)
    assert y.dtype == dtype and argmax.dtype == ref_argmax.dtype
    dy = standard_normal(y.shape, dtype, 5)
    assert_close(
        cpu_numba.maxpool_backward(non_contiguous(dy), argmax, shape, size, stride),
        reference.maxpool_backward(dy, ref_argmax, shape, size, stride),
        dtype,
    )


def test_maxpool_propagates_nan_like_numpy():
    x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    x[0, 0, 0, 1] = x[0, 0, 1, 0] = np.nan  # two NaNs in the first window: the first one wins
    for got, want in zip(
        cpu_numba.maxpool_forward(x, (2, 2), (2, 2)),
        reference.maxpool_forward(x, (2, 2), (2, 2)),
        strict=True,
    ):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("shape", "scale"), [((2, 3, 4, 5), (2, 2)), ((1, 2, 3, 1), (3, 2))])
def test_upsample(dtype, shape, scale):
    x = standard_normal(shape, dtype, 6)
    up = cpu_numba.upsample_nearest(non_contiguous(x), scale)
    np.testing.assert_array_equal(up, reference.upsample_nearest(x, scale))
    dy = standard_normal(up.shape, dtype, 7)
    assert_close(
        cpu_numba.upsample_nearest_backward(dy, scale),
        reference.upsample_nearest_backward(dy, scale),
        dtype,
    )


# -- batch normalisation -------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5, 3), (2, 3, 4, 5), (1, 4, 3, 3), (64, 3136), (8, 8, 32, 32)])
def test_batchnorm(dtype, shape):
    c = shape[1]
    # An offset far from 0 tests that the variance is a two-pass mean of squared deviations.
    x = standard_normal(shape, dtype, 8) * dtype(2) + dtype(5)
    mean, var = cpu_numba.batchnorm_moments(x)
    ref_mean, ref_var = reference.batchnorm_moments(x)
    assert_close(mean, ref_mean, dtype)
    assert_close(var, ref_var, dtype)
    gamma, beta = standard_normal((c,), dtype, 9), standard_normal((c,), dtype, 10)
    y, xhat, inv_std = cpu_numba.batchnorm_forward(x, ref_mean, ref_var, gamma, beta, 1e-3)
    for got, want in zip(
        (y, xhat, inv_std),
        reference.batchnorm_forward(x, ref_mean, ref_var, gamma, beta, 1e-3),
        strict=True,
    ):
        assert_close(got, want, dtype)
    dy = standard_normal(shape, dtype, 11)
    for batch_stats in (True, False):
        got = cpu_numba.batchnorm_backward(dy, xhat, inv_std, gamma, batch_stats)
        want = reference.batchnorm_backward(dy, xhat, inv_std, gamma, batch_stats)
        for got_one, want_one in zip(got, want, strict=True):
            assert_close(got_one, want_one, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_batchnorm_takes_non_contiguous_inputs(dtype):
    x = non_contiguous(standard_normal((4, 3, 5, 6), dtype, 12))
    dy = non_contiguous(standard_normal((4, 3, 5, 6), dtype, 13))
    for got, want in zip(
        cpu_numba.batchnorm_moments(x), reference.batchnorm_moments(x), strict=True
    ):
        assert_close(got, want, dtype)
    mean, var = reference.batchnorm_moments(x)
    ones, zeros = np.ones(3, dtype), np.zeros(3, dtype)
    _, xhat, inv_std = reference.batchnorm_forward(x, mean, var, ones, zeros, 1e-5)
    for got, want in zip(
        cpu_numba.batchnorm_backward(dy, non_contiguous(xhat), inv_std, ones),
        reference.batchnorm_backward(dy, xhat, inv_std, ones),
        strict=True,
    ):
        assert_close(got, want, dtype)


# -- elementwise ---------------------------------------------------------------------------------

ELEMENTWISE_SHAPES = [(7, 5), (3, 4, 5, 6), (4099,)]  # the last one: vector loop and remainder


def with_special_values(x: np.ndarray) -> np.ndarray:
    """``x`` with 0, -0, +-inf and extreme values in its first entries (a copy)."""
    x = x.copy()
    specials = np.array([0.0, -0.0, 1e4, -1e4, np.inf, -np.inf, 40.0, -40.0], dtype=x.dtype)
    x.reshape(-1)[: specials.size] = specials[: x.size]
    return x


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", ELEMENTWISE_SHAPES)
@pytest.mark.parametrize("alpha", [0.0, 0.2])
def test_leaky_relu(dtype, shape, alpha):
    x = with_special_values(standard_normal(shape, dtype, 14))
    y, mask = cpu_numba.leaky_relu(x, alpha)
    with np.errstate(invalid="ignore"):  # the reference computes 0 * inf where it then keeps x
        ref_y, ref_mask = reference.leaky_relu(x, alpha)
    np.testing.assert_array_equal(y, ref_y)  # one multiplication or none: bit for bit
    np.testing.assert_array_equal(mask, ref_mask)
    assert y.dtype == dtype and mask.dtype == np.bool_
    dy = standard_normal(shape, dtype, 15)
    dx = cpu_numba.leaky_relu_backward(dy, mask, alpha)
    np.testing.assert_array_equal(dx, reference.leaky_relu_backward(dy, ref_mask, alpha))
    assert dx.dtype == dtype


@pytest.mark.parametrize("dtype", DTYPES)
def test_leaky_relu_takes_non_contiguous_inputs(dtype):
    x = non_contiguous(standard_normal((6, 5), dtype, 16))
    y, mask = cpu_numba.leaky_relu(x, 0.2)
    np.testing.assert_array_equal(y, reference.leaky_relu(x, 0.2)[0])
    dy = non_contiguous(standard_normal((6, 5), dtype, 17))
    np.testing.assert_array_equal(
        cpu_numba.leaky_relu_backward(dy, non_contiguous(mask), 0.2),
        reference.leaky_relu_backward(dy, mask, 0.2),
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", ELEMENTWISE_SHAPES)
def test_sigmoid_and_its_gradient(dtype, shape):
    x = standard_normal(shape, dtype, 18) * dtype(6)
    y = cpu_numba.sigmoid(x)
    assert_close(y, reference.sigmoid(x), dtype)
    # Relative accuracy also where sigmoid is tiny (exp(-30) ~ 1e-13).
    np.testing.assert_allclose(y, reference.sigmoid(x), rtol=10 * TOLERANCE[dtype])
    dy = standard_normal(shape, dtype, 19)
    assert_close(cpu_numba.sigmoid_backward(dy, y), reference.sigmoid_backward(dy, y), dtype)
    t = np.tanh(x)
    assert_close(cpu_numba.tanh_backward(dy, t), reference.tanh_backward(dy, t), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_extremes(dtype):
    x = with_special_values(np.zeros(10, dtype))
    with np.errstate(over="raise"):  # exp never overflows
        y = cpu_numba.sigmoid(x)
    np.testing.assert_array_equal(y[:6], np.array([0.5, 0.5, 1.0, 0.0, 1.0, 0.0], dtype))
    np.testing.assert_allclose(y, reference.sigmoid(x), rtol=1e-5, atol=0)
    assert cpu_numba.sigmoid(non_contiguous(x)).flags.c_contiguous


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", ELEMENTWISE_SHAPES)
@pytest.mark.parametrize("rate", [0.3, 0.5])
def test_dropout(dtype, shape, rate):
    x = standard_normal(shape, dtype, 20)
    u = np.random.default_rng(21).random(shape, dtype=dtype)
    y, mask = cpu_numba.dropout(x, u.copy(), rate)
    ref_y, ref_mask = reference.dropout(x, u.copy(), rate)
    np.testing.assert_array_equal(y, ref_y)
    np.testing.assert_array_equal(mask, ref_mask)
    assert y.dtype == mask.dtype == dtype


# -- optimizer updates ---------------------------------------------------------------------------

OPTIMIZER_SHAPES = [(3, 5), (129, 31)]


def run_updates(
    update: Callable[..., None], shape: tuple[int, ...], dtype: Any, n_state: int, **settings: Any
) -> list[np.ndarray]:
    """Three updates of a random parameter with fresh random gradients; parameter and state after."""
    rng = np.random.default_rng(22)
    param = rng.standard_normal(shape).astype(dtype)
    state = [np.zeros(shape, dtype) for _ in range(n_state)]
    for step in (1, 2, 3):
        grad = rng.standard_normal(shape).astype(dtype)
        if "step" in settings:
            settings["step"] = step
        update(param, grad, *state, **settings)
    return [param, *state]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", OPTIMIZER_SHAPES)
@pytest.mark.parametrize(
    ("name", "n_state", "settings"),
    [
        ("sgd_update", 1, {"lr": 0.1, "momentum": 0.9}),
        ("adam_update", 2, {"lr": 1e-3, "beta1": 0.5, "beta2": 0.999, "eps": 1e-8, "step": 1}),
        ("rmsprop_update", 1, {"lr": 1e-3, "rho": 0.9, "eps": 1e-7}),
    ],
)
def test_optimizer_updates(dtype, shape, name, n_state, settings):
    got = run_updates(getattr(cpu_numba, name), shape, dtype, n_state, **settings)
    want = run_updates(getattr(reference, name), shape, dtype, n_state, **settings)
    for got_one, want_one in zip(got, want, strict=True):
        assert_close(got_one, want_one, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_plain_sgd_and_non_contiguous_parameters(dtype):
    got = run_updates(
        lambda p, g, *state: cpu_numba.sgd_update(p, g, None, 0.1, 0.0), (4, 3), dtype, 0
    )
    want = run_updates(
        lambda p, g, *state: reference.sgd_update(p, g, None, 0.1, 0.0), (4, 3), dtype, 0
    )
    assert_close(got[0], want[0], dtype)
    # A strided parameter is still updated in place (through the reference's NumPy path).
    wide = np.ones((4, 6), dtype)
    param, grad = wide[:, ::2], np.ones((4, 3), dtype)
    m, v = np.zeros((4, 3), dtype), np.zeros((4, 3), dtype)
    cpu_numba.adam_update(param, grad, m, v, 0.5, 0.9, 0.999, 1e-8, 1)
    np.testing.assert_allclose(wide[:, ::2], 0.5, rtol=1e-6)
    np.testing.assert_array_equal(wide[:, 1::2], 1.0)


# -- dispatch ------------------------------------------------------------------------------------


def test_tinygan_numba_switch_selects_the_implementation(monkeypatch):
    x = np.linspace(-2, 2, 9)
    calls = []

    def spy(array):
        calls.append(array)
        return np.zeros_like(array)

    monkeypatch.setenv("TINYGAN_NUMBA", "1")
    assert kernels.implementation_for(x) is cpu_numba
    assert kernels.numba_enabled()
    monkeypatch.setattr(reference, "sigmoid", spy)
    kernels.sigmoid(x)
    assert not calls  # Numba's sigmoid ran
    for off in ("0", "false", "off"):
        monkeypatch.setenv("TINYGAN_NUMBA", off)
        assert not kernels.numba_enabled()
        assert kernels.implementation_for(x) is reference
    np.testing.assert_array_equal(kernels.sigmoid(x), 0)
    assert len(calls) == 1 and calls[0] is x


def test_dtypes_numba_is_not_compiled_for_use_the_reference(monkeypatch):
    monkeypatch.setenv("TINYGAN_NUMBA", "1")
    for dtype in (np.float32, np.float64):
        assert kernels.implementation_for(np.zeros(2, dtype)) is cpu_numba
    for dtype in (np.float16, np.int64, np.bool_):
        assert kernels.implementation_for(np.zeros(2, dtype)) is reference
    np.testing.assert_allclose(kernels.sigmoid(np.array([0, 1])), [0.5, 1 / (1 + np.exp(-1))])


# -- float32 training stays float32 --------------------------------------------------------------


def arrays_in(value: Any) -> Iterator[np.ndarray]:
    """Every NumPy array inside nested tuples, lists and dicts."""
    if isinstance(value, np.ndarray):
        yield value
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from arrays_in(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from arrays_in(item)


def assert_no_float64(value: Any, where: str) -> None:
    for array in arrays_in(value):
        assert not np.issubdtype(array.dtype, np.floating) or array.dtype == np.float32, (
            f"{where}: {array.dtype} array of shape {array.shape}"
        )


@pytest.mark.parametrize("preset_name", ["000", "003"])
def test_float32_training_stays_float32(monkeypatch, preset_name):
    """One training iteration in float32: every kernel's inputs and outputs, every layer's output,
    input gradient and cache, every parameter, gradient and optimizer state is float32."""
    from tinygan.models import get_preset

    def checked(function: Callable[..., Any], where: str) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            assert_no_float64((args, kwargs), f"{where} input")
            result = function(*args, **kwargs)
            assert_no_float64(result, f"{where} output")
            return result

        return wrapper

    for name in dir(reference):
        if not name.startswith("_") and callable(getattr(kernels, name, None)):
            monkeypatch.setattr(kernels, name, checked(getattr(kernels, name), name))
    preset = get_preset(preset_name)
    gan = preset.make_gan(np.random.default_rng(0), np.random.default_rng(1))
    for network in (gan.generator, gan.discriminator):
        for path, layer in network.named_layers():
            where = f"{type(layer).__name__} {path}"
            layer.forward = checked(layer.forward, f"{where}.forward")
            layer.backward = checked(layer.backward, f"{where}.backward")
    real = np.random.default_rng(2).random((4, *preset.data_shape), dtype=np.float32)
    stats = gan.train_step(lambda: real)
    assert_no_float64(list(vars(stats).values()), "step statistics")
    for network in (gan.generator, gan.discriminator):
        for layer in network.walk():
            assert_no_float64((layer.params, layer.grads, layer.buffers), repr(layer))
    for optimizer in (gan.g_optimizer, gan.d_optimizer):
        assert_no_float64(optimizer.state, type(optimizer).__name__)
        assert optimizer.step_count == 1
