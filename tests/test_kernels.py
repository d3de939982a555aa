"""The Numba kernels against the plain functions they replace, the registry that chooses them, and
float32 training that stays float32 end to end.

Every kernel runs in float32 and float64 on several shapes: odd sizes, strides and paddings, batches
of one, non-contiguous inputs, and (for im2col/col2im) arrays large enough to take the multi-threaded
path. Copies and selections must equal the plain function's result bit for bit. Every other result,
the kernel's and the plain function's alike, is compared entry by entry with the plain function
evaluated in float64 on the same inputs, within the rounding bound of its computation
(:mod:`tinygan.rounding`): the terms' magnitude times the roundings they pass through, which holds
whatever order a BLAS library or Numba's threads sum in, so on any CPU and any thread count.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tinygan import overrides
from tinygan.nn import activations, batchnorm, conv, pooling
from tinygan.nn import dropout as dropout_layer
from tinygan.rounding import (
    IN_PLACE,
    assert_matches_plain,
    host_copy,
    recording_calls,
    results_of,
    step_signature,
)

cpu_numba = pytest.importorskip("tinygan.kernels.cpu_numba")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def numba_kernels():
    """Each test starts with the Numba kernels registered and leaves them so."""
    assert overrides.set_kernels("numba") == "numba"
    yield
    overrides.set_kernels("numba")


DTYPES = [np.float32, np.float64]


def check_kernel(name: str, *args: Any) -> tuple[Any, ...]:
    """Run the Numba kernel ``name`` and its plain function on ``args``; assert that each computes
    what the plain function computes in float64, within the rounding bound of the computation
    (:func:`tinygan.rounding.assert_matches_plain`). Returns the kernel's results as
    :func:`tinygan.rounding.results_of` lists them."""
    for function in (overrides.plain(name), getattr(cpu_numba, name)):
        work = [host_copy(a) for a in args] if name in IN_PLACE else list(args)
        results = results_of(name, work, function(*work))
        assert_matches_plain(name, args, results, f"{name} ({function.__module__})")
    return results


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
    np.testing.assert_array_equal(cols, conv.im2col.plain(x, *kernel, stride, padding))
    g = standard_normal(cols.shape, dtype, 1)
    (image,) = check_kernel("col2im", g, shape, *kernel, stride, padding)
    assert image.flags.c_contiguous


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
        conv.im2col.plain(np.ascontiguousarray(x), *kernel, stride, padding),
    )
    cols = non_contiguous(
        standard_normal(conv.im2col.plain(x, *kernel, stride, padding).shape, dtype, 3)
    )
    check_kernel("col2im", cols, shape, *kernel, stride, padding)


def conv_arguments(
    transposed: bool, dtype: Any, bias: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, tuple[int, int], tuple[int, int, int, int]]:
    """Input, weight, bias, stride and padding of a 5x5, stride-2 "same" (transposed) convolution."""
    rng = np.random.default_rng(23)
    x = rng.standard_normal((5, 3, 5, 4) if transposed else (5, 3, 9, 8)).astype(dtype)
    W = rng.standard_normal((3, 4, 5, 5) if transposed else (4, 3, 5, 5)).astype(dtype)
    b = rng.standard_normal(4).astype(dtype) if bias else None
    return x, W, b, (2, 2), (1, 2, 1, 2)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("chunk_bytes", [None, 1])  # the whole batch, and one image per chunk
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(
    ("param_grads", "input_grad"), [(True, True), (False, True), (True, False)]
)
def test_conv2d(monkeypatch, dtype, chunk_bytes, bias, param_grads, input_grad):
    if chunk_bytes is not None:
        monkeypatch.setattr(cpu_numba, "CHUNK_BYTES", chunk_bytes)
    x, W, b, stride, padding = conv_arguments(False, dtype, bias)
    (y,) = check_kernel("conv2d_forward", x, W, b, stride, padding)
    assert y.flags.c_contiguous
    dy = standard_normal(y.shape, dtype, 24)
    grads = check_kernel("conv2d_backward", dy, x, W, stride, padding, param_grads, input_grad)
    assert [g is None for g in grads] == [not input_grad, not param_grads, not param_grads]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("chunk_bytes", [None, 1])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(
    ("param_grads", "input_grad"), [(True, True), (False, True), (True, False)]
)
def test_conv_transpose2d(monkeypatch, dtype, chunk_bytes, bias, param_grads, input_grad):
    if chunk_bytes is not None:
        monkeypatch.setattr(cpu_numba, "CHUNK_BYTES", chunk_bytes)
    x, W, b, stride, padding = conv_arguments(True, dtype, bias)
    (y,) = check_kernel("conv_transpose2d_forward", x, W, b, stride, padding, (10, 8))
    dy = standard_normal(y.shape, dtype, 25)
    grads = check_kernel(
        "conv_transpose2d_backward", dy, x, W, stride, padding, param_grads, input_grad
    )
    assert [g is None for g in grads] == [not input_grad, not param_grads, not param_grads]


def test_reused_workspaces_never_leak_into_results():
    """Two convolutions of different sizes in turn, twice: each result stays what it was, and
    no result shares memory with the scratch buffers the next call overwrites."""
    first = conv_arguments(False, np.float32, True)
    rng = np.random.default_rng(5)
    second_x = rng.standard_normal((2, 3, 12, 11)).astype(np.float32)
    second = (second_x, *first[1:])
    results = [cpu_numba.conv2d_forward(*arguments) for arguments in (first, second, first)]
    np.testing.assert_array_equal(results[0], results[2])
    assert_matches_plain("conv2d_forward", second, results[1])
    dy = standard_normal(results[0].shape, np.float32, 6)
    grads = cpu_numba.conv2d_backward(dy, first[0], first[1], *first[3:])
    cpu_numba.conv2d_backward(dy[:2] * 2, first[0][:2], first[1], *first[3:])
    assert_matches_plain("conv2d_backward", (dy, first[0], first[1], *first[3:]), grads)
    buffers = cpu_numba.WORKSPACE._local.buffers.values()
    for result in (*results, *grads):
        assert not any(np.shares_memory(result, buffer) for buffer in buffers)


def test_convolutions_allocate_no_patch_matrix_once_warm():
    """In the steady state the only large allocations are the results: the patch matrices and the
    products made from them live in reused workspaces (measured with tracemalloc, which sees
    NumPy's array memory)."""
    import tracemalloc

    rng = np.random.default_rng(8)
    x = rng.standard_normal((16, 8, 14, 14)).astype(np.float32)
    W = rng.standard_normal((16, 8, 5, 5)).astype(np.float32)
    geometry = ((2, 2), (1, 2, 1, 2))
    patch_bytes = 16 * 7 * 7 * 8 * 5 * 5 * 4
    dy = rng.standard_normal((16, 16, 7, 7)).astype(np.float32)

    def step():
        cpu_numba.conv2d_forward(x, W, None, *geometry)
        cpu_numba.conv2d_backward(dy, x, W, *geometry)

    step()  # the workspaces grow to size here
    tracemalloc.start()
    try:
        step()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    largest_result = x.nbytes  # dx; y and the weight gradient are smaller
    assert largest_result < patch_bytes
    assert peak < largest_result + patch_bytes // 4, f"peak {peak} bytes"


def test_batch_chunks_cover_the_batch(monkeypatch):
    monkeypatch.setattr(cpu_numba, "CHUNK_BYTES", 2 * 8 * 10)  # two float64 images of 10 entries
    chunks = cpu_numba.batch_chunks(np.zeros((5, 1)), 10)
    assert chunks == [slice(0, 2), slice(2, 4), slice(4, 5)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("n_in", "n_out"), [(7, 3), (3, 7)])  # both orientations of the product
def test_dense_weight_grad(dtype, n_in, n_out):
    x, dy = standard_normal((5, n_in), dtype, 26), standard_normal((5, n_out), dtype, 27)
    check_kernel("dense_weight_grad", x, dy)


# -- pooling, maxout and upsampling -------------------------------------------------------------


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
    ref_y, ref_argmax = pooling.maxpool_forward.plain(x, size, stride)
    np.testing.assert_array_equal(y, ref_y)
    np.testing.assert_array_equal(argmax, ref_argmax)
    assert y.dtype == dtype and argmax.dtype == ref_argmax.dtype
    dy = standard_normal(y.shape, dtype, 5)
    check_kernel("maxpool_backward", non_contiguous(dy), argmax, shape, size, stride)


def test_maxpool_propagates_nan_like_numpy():
    x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    x[0, 0, 0, 1] = x[0, 0, 1, 0] = np.nan  # two NaNs in the first window: the first one wins
    for got, want in zip(
        cpu_numba.maxpool_forward(x, (2, 2), (2, 2)),
        pooling.maxpool_forward.plain(x, (2, 2), (2, 2)),
        strict=True,
    ):
        np.testing.assert_array_equal(got, want)


# (N, units, pieces, in_features): odd sizes, a batch of one, units that are not a multiple of the
# kernel's four, one piece, and the ring discriminator's layer
MAXOUT_CASES = [(5, 3, 2, 7), (1, 6, 5, 3), (7, 9, 3, 11), (4, 5, 1, 6), (100, 200, 5, 200)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("n", "units", "pieces", "width"), MAXOUT_CASES)
def test_maxout(dtype, n, units, pieces, width):
    # values on a coarse grid make ties common: both must pick the first maximum
    z = np.round(standard_normal((n, units * pieces), dtype, 30) * 2) / 2
    _, argmax = check_kernel("maxout_forward", non_contiguous(z), pieces)
    dy = standard_normal((n, units), dtype, 31)
    check_kernel("maxout_backward", non_contiguous(dy), argmax, pieces)
    W = standard_normal((width, units * pieces), dtype, 32)
    check_kernel("maxout_input_grad", non_contiguous(dy), argmax, W, pieces)


def test_maxout_propagates_nan_like_numpy():
    z = np.arange(12, dtype=np.float64).reshape(2, 6)
    z[0, 1] = z[0, 2] = z[1, 5] = np.nan  # two NaNs in one unit: the first one wins
    check_kernel("maxout_forward", z, 3)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("shape", "scale"), [((2, 3, 4, 5), (2, 2)), ((1, 2, 3, 1), (3, 2))])
def test_upsample(dtype, shape, scale):
    x = standard_normal(shape, dtype, 6)
    up = cpu_numba.upsample_nearest(non_contiguous(x), scale)
    np.testing.assert_array_equal(up, pooling.upsample_nearest.plain(x, scale))
    check_kernel("upsample_nearest_backward", standard_normal(up.shape, dtype, 7), scale)


# -- batch normalisation -------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5, 3), (2, 3, 4, 5), (1, 4, 3, 3), (64, 3136), (8, 8, 32, 32)])
def test_batchnorm(dtype, shape):
    c = shape[1]
    # An offset far from 0 tests that the variance is a two-pass mean of squared deviations.
    x = standard_normal(shape, dtype, 8) * dtype(2) + dtype(5)
    mean, var = check_kernel("batchnorm_moments", x)
    gamma, beta = standard_normal((c,), dtype, 9), standard_normal((c,), dtype, 10)
    _, xhat, inv_std = check_kernel("batchnorm_forward", x, mean, var, gamma, beta, 1e-3)
    dy = standard_normal(shape, dtype, 11)
    for batch_stats in (True, False):
        check_kernel("batchnorm_backward", dy, xhat, inv_std, gamma, batch_stats)


@pytest.mark.parametrize("dtype", DTYPES)
def test_batchnorm_takes_non_contiguous_inputs(dtype):
    x = non_contiguous(standard_normal((4, 3, 5, 6), dtype, 12))
    dy = non_contiguous(standard_normal((4, 3, 5, 6), dtype, 13))
    mean, var = check_kernel("batchnorm_moments", x)
    ones, zeros = np.ones(3, dtype), np.zeros(3, dtype)
    _, xhat, inv_std = batchnorm.batchnorm_forward.plain(x, mean, var, ones, zeros, 1e-5)
    check_kernel("batchnorm_backward", dy, non_contiguous(xhat), inv_std, ones)


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
    with np.errstate(invalid="ignore"):  # the plain function computes 0 * inf where it keeps x
        ref_y, ref_mask = activations.leaky_relu.plain(x, alpha)
    np.testing.assert_array_equal(y, ref_y)  # one multiplication or none: bit for bit
    np.testing.assert_array_equal(mask, ref_mask)
    assert y.dtype == dtype and mask.dtype == np.bool_
    dy = standard_normal(shape, dtype, 15)
    dx = cpu_numba.leaky_relu_backward(dy, mask, alpha)
    np.testing.assert_array_equal(dx, activations.leaky_relu_backward.plain(dy, ref_mask, alpha))
    assert dx.dtype == dtype


@pytest.mark.parametrize("dtype", DTYPES)
def test_leaky_relu_takes_non_contiguous_inputs(dtype):
    x = non_contiguous(standard_normal((6, 5), dtype, 16))
    y, mask = cpu_numba.leaky_relu(x, 0.2)
    np.testing.assert_array_equal(y, activations.leaky_relu.plain(x, 0.2)[0])
    dy = non_contiguous(standard_normal((6, 5), dtype, 17))
    np.testing.assert_array_equal(
        cpu_numba.leaky_relu_backward(dy, non_contiguous(mask), 0.2),
        activations.leaky_relu_backward.plain(dy, mask, 0.2),
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", ELEMENTWISE_SHAPES)
def test_sigmoid_and_its_gradient(dtype, shape):
    # The bound is relative to each entry, so it holds where sigmoid is tiny (exp(-30) ~ 1e-13).
    x = standard_normal(shape, dtype, 18) * dtype(6)
    (y,) = check_kernel("sigmoid", x)
    dy = standard_normal(shape, dtype, 19)
    check_kernel("sigmoid_backward", dy, y)
    check_kernel("tanh_backward", dy, np.tanh(x))


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_extremes(dtype):
    x = with_special_values(np.zeros(10, dtype))
    with np.errstate(over="raise"):  # exp never overflows
        y = cpu_numba.sigmoid(x)
    np.testing.assert_array_equal(y[:6], np.array([0.5, 0.5, 1.0, 0.0, 1.0, 0.0], dtype))
    check_kernel("sigmoid", x)
    assert cpu_numba.sigmoid(non_contiguous(x)).flags.c_contiguous


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", ELEMENTWISE_SHAPES)
@pytest.mark.parametrize("rate", [0.3, 0.5])
def test_dropout(dtype, shape, rate):
    x = standard_normal(shape, dtype, 20)
    y, mask = cpu_numba.dropout(x, rate, np.random.default_rng(21))
    ref_y, ref_mask = dropout_layer.dropout.plain(x, rate, np.random.default_rng(21))
    np.testing.assert_array_equal(y, ref_y)
    np.testing.assert_array_equal(mask, ref_mask)
    assert y.dtype == mask.dtype == dtype


# -- optimizer updates ---------------------------------------------------------------------------

OPTIMIZER_SHAPES = [(3, 5), (129, 31)]


def check_updates(name: str, shape: tuple[int, ...], dtype: Any, n_state: int, **settings: Any):
    """Three updates of a random parameter with fresh random gradients, each checked from the same
    parameter and state (:func:`check_kernel`); the kernel's results start the next one."""
    rng = np.random.default_rng(22)
    param = rng.standard_normal(shape).astype(dtype)
    state = [np.zeros(shape, dtype) for _ in range(n_state)]
    for step in (1, 2, 3):
        grad = rng.standard_normal(shape).astype(dtype)
        if "step" in settings:
            settings["step"] = step
        param, *state = check_kernel(name, param, grad, *state, *settings.values())


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
    check_updates(name, shape, dtype, n_state, **settings)


@pytest.mark.parametrize("dtype", DTYPES)
def test_plain_sgd_and_non_contiguous_parameters(dtype):
    rng = np.random.default_rng(22)
    param, grad = (rng.standard_normal((4, 3)).astype(dtype) for _ in range(2))
    assert check_kernel("sgd_update", param, grad, None, 0.1, 0.0)[1] is None
    # A strided parameter is still updated in place (through the plain function).
    wide = np.ones((4, 6), dtype)
    param, grad = wide[:, ::2], np.ones((4, 3), dtype)
    m, v = np.zeros((4, 3), dtype), np.zeros((4, 3), dtype)
    cpu_numba.adam_update(param, grad, m, v, 0.5, 0.9, 0.999, 1e-8, 1)
    np.testing.assert_allclose(wide[:, ::2], 0.5, rtol=1e-6)
    np.testing.assert_array_equal(wide[:, 1::2], 1.0)


# -- the registry ----------------------------------------------------------------------------------


def test_every_numba_kernel_is_registered_and_active():
    """A kernel the module defines but does not list, or lists under a name no plain function has,
    would silently never run: both fail here."""
    assert overrides.active_kernels() == "numba"
    names = set(overrides.overridable_names())
    for function in cpu_numba.OVERRIDES:
        assert function.__name__ in names, function.__name__
        assert overrides.replacement(function.__name__, "cpu") is function
    defined = {
        name
        for name, value in vars(cpu_numba).items()
        if callable(value) and getattr(value, "__module__", None) == cpu_numba.__name__
    }
    assert defined & names == {function.__name__ for function in cpu_numba.OVERRIDES}


def test_reference_registers_nothing_and_runs_the_plain_functions():
    x = np.linspace(-2, 2, 9)
    assert overrides.set_kernels("reference") == "reference"
    assert overrides.active_kernels() == "reference"
    for name in overrides.overridable_names():
        assert overrides.replacement(name, "cpu") is None
    np.testing.assert_array_equal(activations.sigmoid(x), activations.sigmoid.plain(x))


def test_only_float32_and_float64_numpy_arrays_use_cpu_kernels():
    calls = []
    overrides.register("sigmoid", "cpu", lambda array: calls.append(array.dtype) or array)
    for dtype in (np.float32, np.float64, np.float16, np.int64):
        activations.sigmoid(np.zeros(2, dtype))
    assert calls == [np.float32, np.float64]
    np.testing.assert_allclose(activations.sigmoid(np.array([0, 1])), [0.5, 1 / (1 + np.exp(-1))])


def test_a_misspelt_kernel_is_refused():
    with pytest.raises(KeyError, match="sigmod"):
        overrides.register("sigmod", "cpu", np.tanh)
    with pytest.raises(ValueError, match="kind"):
        overrides.register("sigmoid", "tpu", np.tanh)
    with pytest.raises(ValueError, match="kernels"):
        overrides.set_kernels("fast")


def test_kernels_that_cannot_load_warn_once_and_leave_the_plain_functions(monkeypatch):
    monkeypatch.setitem(overrides.KERNEL_MODULES, "numba", "tinygan.kernels.not_there")
    with pytest.warns(RuntimeWarning, match=r"numba kernels could not be loaded.*not_there"):
        assert overrides.set_kernels("numba") == "reference"
    assert overrides.replacement("sigmoid", "cpu") is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert overrides.set_kernels("numba") == "reference"  # said once is enough


def run_python(code: str, **env: str) -> list[str]:
    """The words ``code`` prints, run in a fresh interpreter with this checkout first on the path."""
    environment = {k: v for k, v in os.environ.items() if k != "TINYGAN_NUMBA"}
    environment["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**environment, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.split()


def test_the_environment_chooses_at_first_use_and_import_stays_light():
    code = (
        "import sys, numpy as np, tinygan\n"
        "print('numba' in sys.modules)\n"
        "tinygan.nn.sigmoid(np.zeros(2))\n"
        "print(tinygan.active_kernels(), 'numba' in sys.modules)"
    )
    assert run_python(code) == ["False", "numba", "True"]
    assert run_python(code, TINYGAN_NUMBA="0") == ["False", "reference", "False"]


@pytest.mark.parametrize("preset_name", ["000", "003", "ring"])
def test_a_training_step_with_the_kernels_computes_what_the_plain_functions_compute(preset_name):
    """Kernels change the speed, not the results: one iteration from the same seeds, both ways,
    makes the same calls (the optimizers' updates over flat buffers with the kernels, one
    parameter at a time without: the same entries either way), and every kernel call returns what
    the plain function computes from the same arguments, within the rounding bound of its
    computation.

    Each call is checked from its own arguments rather than the two runs' gradients against each
    other: the runs' values drift apart by rounding carried through every layer after it, which
    Adam's first step, ``lr * g / (|g| + eps)``, turns into a visible difference for a gradient near
    ``eps``.
    """
    from tinygan.models import get_preset

    preset = get_preset(preset_name)
    real = np.random.default_rng(2).random((8, *preset.data_shape), dtype=np.float32)
    runs = []
    for kernels in ("reference", "numba"):
        assert overrides.set_kernels(kernels) == kernels
        gan = preset.make_gan(np.random.default_rng(0), np.random.default_rng(1))
        with recording_calls("cpu") as calls:
            gan.train_step(lambda: real)
        runs.append(calls)
    plain_calls, kernel_calls = runs
    assert step_signature(kernel_calls) == step_signature(plain_calls)
    assert all(call.kernel for call in kernel_calls)
    assert {"adam_update", "dense_weight_grad", "sigmoid"} <= {c.name for c in kernel_calls}
    for call in kernel_calls:
        call.check()


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


@pytest.mark.parametrize("preset_name", ["000", "003", "ring"])
def test_float32_training_stays_float32(preset_name):
    """One training iteration in float32: every overridable function's inputs and outputs, every
    layer's output, input gradient and cache, every parameter, gradient and optimizer state is
    float32."""
    from tinygan.models import get_preset

    def checked(function: Callable[..., Any], where: str) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            assert_no_float64((args, kwargs), f"{where} input")
            result = function(*args, **kwargs)
            assert_no_float64(result, f"{where} output")
            return result

        return wrapper

    for name in overrides.overridable_names():
        function = overrides.replacement(name, "cpu") or overrides.plain(name)
        overrides.register(name, "cpu", checked(function, name))
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
