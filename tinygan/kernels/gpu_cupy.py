"""CuPy kernels for GPU arrays: the hot plain functions as single CUDA kernels.

Every public function here has the name and signature of an overridable plain function in
:mod:`tinygan.nn` or :mod:`tinygan.optim` and returns what it returns (shapes, dtypes, C-contiguous
outputs), equal up to floating-point rounding; :func:`register` puts them in the registry of
:mod:`tinygan.overrides` for CuPy arrays (kind ``"gpu"``), and ``tests/test_gpu_kernels.py`` checks
each one against its plain function in float32 and float64 on a GPU. Read the plain function for
*what* a kernel computes; this module is about computing it in one launch.

Why these kernels
-----------------
On a GPU the plain functions are already correct and already run on the device: CuPy evaluates
each NumPy-style expression as its own kernel. What they cost is memory traffic and launches. An
expression such as ``dy * y * (1 - y)`` launches three kernels and writes two temporaries the size
of the activation; a DCGAN step is dominated by such passes over memory, not by arithmetic, and on
small batches by the launches themselves. So:

* **Elementwise kernels** (``cupy.ElementwiseKernel``) fuse a whole formula into one pass that reads
  each input once and writes each output once: :func:`leaky_relu` (``y`` and the mask together),
  :func:`leaky_relu_backward`, :func:`sigmoid` (the stable form, one ``exp`` of a non-positive
  number), :func:`sigmoid_backward`, :func:`tanh_backward`, the BatchNorm normalise-and-scale
  (:func:`batchnorm_forward`: ``xhat`` and ``y`` in one pass) and the elementwise part of its
  backward (:func:`batchnorm_backward`, whose per-channel sums stay CuPy reductions).
  Per-channel vectors are passed as ``(1, C, 1, 1)`` views and broadcast by the kernel itself.
* **Optimizer updates in place** (:func:`sgd_update`, :func:`adam_update`, :func:`rmsprop_update`):
  the plain Adam rule is about ten array operations per parameter, each a launch and several a
  temporary; here the parameter and its moments are kernel *outputs* passed in, so one launch reads
  the gradient and state once and updates them where they are. The kernels follow the plain
  functions' order of operations, and scalars are cast to the parameter's dtype as NumPy and CuPy
  cast Python floats, so float32 training stays float32.
* **im2col / col2im** (``cupy.RawKernel``): the plain functions pad a copy of the input, then copy
  one strided slice per kernel offset (25 launches for a 5x5 kernel, plus the padded buffer). One
  thread per output element does it in one launch with no buffer. :func:`col2im` is written as a
  *gather*: one thread per image pixel sums the patch entries that cover it, in the same order as
  the plain function's loop over kernel offsets. No two threads write the same place, so there are
  no atomic additions, the result does not depend on thread scheduling, and float64 stays exact
  enough for gradient checks (atomics would also make float64 slow on many GPUs). The source is
  one text compiled once per dtype (float32 and float64) on first use; other dtypes run the plain
  function.
* **Not here**: matrix products stay ``@`` (cuBLAS), which no hand-written kernel beats; functions
  without a replacement here (the convolutions themselves, pooling, dropout) run their plain CuPy
  code, which calls :func:`im2col` and :func:`col2im` through the registry and so gets them.

NVRTC may contract a multiply and an add into one fused multiply-add, so a result can differ from
the plain function's in the last bit: "equal up to rounding", as for the Numba kernels. Like those,
the kernels serve float32 and float64 arrays only: :mod:`tinygan.overrides` sends every other dtype
(float16, say) to the plain function.

CuPy is imported at module level: :mod:`tinygan.overrides` imports this module only when CuPy can be
imported, and only when the kernels are enabled.
"""

from __future__ import annotations

import functools
from typing import Any

import cupy
import numpy as np

from tinygan import overrides
from tinygan.kernels.flat import fused_update
from tinygan.nn.padding import conv_output_size

#: Threads per block of the RawKernels: a multiple of the warp size that every GPU accepts.
THREADS_PER_BLOCK = 256

#: The C type of each dtype the RawKernels are compiled for.
_C_TYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}


# ------------------------------------------------------------------------------------------------
# Convolution: im2col / col2im as RawKernels, one thread per output element.
# cols[(n, p, q), (i * kw + j) * C + c] = xpad[n, c, p * sh + i, q * sw + j] (see tinygan.nn.conv).
# Indices are 64-bit: a large batch's patch matrix can pass 2**31 entries. The two sources open
# alike (a grid-stride loop, an index taken apart); each is kept whole to read as one CUDA kernel.
# ------------------------------------------------------------------------------------------------

_IM2COL_SOURCE = r"""
extern "C" __global__ void im2col(
    const real_t* x, real_t* cols, long long total,
    int c, int h, int w, int kh, int kw, int sh, int sw, int top, int left, int oh, int ow)
{
    long long index = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long step = (long long)blockDim.x * gridDim.x;
    for (; index < total; index += step) {
        // channel fastest, then kernel column, kernel row, output column, output row, image:
        // consecutive threads write consecutive entries of cols
        long long t = index;
        int ch = (int)(t % c); t /= c;
        int j = (int)(t % kw); t /= kw;
        int i = (int)(t % kh); t /= kh;
        int q = (int)(t % ow); t /= ow;
        int p = (int)(t % oh); t /= oh;
        long long n = t;
        int row = p * sh + i - top;
        int col = q * sw + j - left;
        real_t value = 0;
        if (row >= 0 && row < h && col >= 0 && col < w) {
            value = x[((n * c + ch) * h + row) * w + col];
        }
        cols[index] = value;
    }
}
"""

_COL2IM_SOURCE = r"""
extern "C" __global__ void col2im(
    const real_t* cols, real_t* x, long long total,
    int c, int h, int w, int kh, int kw, int sh, int sw, int top, int left, int oh, int ow)
{
    long long index = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long step = (long long)blockDim.x * gridDim.x;
    long long patch = (long long)kh * kw * c;
    for (; index < total; index += step) {
        long long t = index;
        int col = (int)(t % w); t /= w;
        int row = (int)(t % h); t /= h;
        int ch = (int)(t % c); t /= c;
        long long n = t;
        int hp = row + top;   // position in the padded image
        int wp = col + left;
        real_t sum = 0;
        // Kernel row i covers padded row hp from output row p = (hp - i) / sh when that divides:
        // i runs over hp mod sh, hp mod sh + sh, ... (ascending, as the plain function's loop
        // over kernel offsets, so the additions happen in the same order).
        for (int i = hp % sh; i < kh && i <= hp; i += sh) {
            int p = (hp - i) / sh;
            if (p >= oh) continue;
            for (int j = wp % sw; j < kw && j <= wp; j += sw) {
                int q = (wp - j) / sw;
                if (q >= ow) continue;
                sum += cols[((n * oh + p) * ow + q) * patch + (long long)(i * kw + j) * c + ch];
            }
        }
        x[index] = sum;
    }
}
"""


@functools.cache
def _raw_kernel(source: str, name: str, dtype: np.dtype) -> Any:
    """The RawKernel ``name`` of ``source`` with ``real_t`` the C type of ``dtype`` (compiled by
    CuPy on its first launch, and cached on disk by CuPy for later processes)."""
    return cupy.RawKernel(f"typedef {_C_TYPES[dtype]} real_t;\n{source}", name)


def _launch(kernel: Any, total: int, *args: Any) -> None:
    """Launch ``kernel`` over ``total`` elements: a grid-stride loop, so the grid can stay bounded
    (at most 65,535 blocks of :data:`THREADS_PER_BLOCK`, which every GPU accepts in x)."""
    if total == 0:
        return
    blocks = min((total + THREADS_PER_BLOCK - 1) // THREADS_PER_BLOCK, 65_535)
    kernel((blocks,), (THREADS_PER_BLOCK,), (*args[:2], np.int64(total), *args[2:]))


def _geometry(
    shape: tuple[int, int, int, int],
    kh: int,
    kw: int,
    stride: tuple[int, int],
    padding: tuple[int, int, int, int],
) -> tuple[int, int, tuple[np.int32, ...]]:
    """``OH``, ``OW`` and the int arguments shared by both kernels, as 32-bit C ints."""
    _, c, h, w = shape
    top, bottom, left, right = padding
    oh = conv_output_size(h, kh, stride[0], top, bottom)
    ow = conv_output_size(w, kw, stride[1], left, right)
    ints = (c, h, w, kh, kw, stride[0], stride[1], top, left, oh, ow)
    return oh, ow, tuple(np.int32(v) for v in ints)


def im2col(
    x: Any, kh: int, kw: int, stride: tuple[int, int], padding: tuple[int, int, int, int]
) -> Any:
    x = cupy.ascontiguousarray(x)
    n = x.shape[0]
    oh, ow, ints = _geometry(x.shape, kh, kw, stride, padding)
    cols = cupy.empty((n * oh * ow, kh * kw * x.shape[1]), dtype=x.dtype)
    _launch(_raw_kernel(_IM2COL_SOURCE, "im2col", x.dtype), cols.size, x, cols, *ints)
    return cols


def col2im(
    cols: Any,
    x_shape: tuple[int, int, int, int],
    kh: int,
    kw: int,
    stride: tuple[int, int],
    padding: tuple[int, int, int, int],
) -> Any:
    cols = cupy.ascontiguousarray(cols)
    shape = tuple(int(v) for v in x_shape)
    _, _, ints = _geometry(shape, kh, kw, stride, padding)
    x = cupy.empty(shape, dtype=cols.dtype)
    _launch(_raw_kernel(_COL2IM_SOURCE, "col2im", cols.dtype), x.size, cols, x, *ints)
    return x


# ------------------------------------------------------------------------------------------------
# Activations: one pass each, no temporaries. Scalars are passed in the arrays' dtype, as the plain
# functions cast them (``x.dtype.type(alpha)``, or Python floats acting as weak scalars).
# ------------------------------------------------------------------------------------------------

_leaky_relu_kernel = cupy.ElementwiseKernel(
    "T x, T alpha",
    "T y, bool mask",
    "mask = x > 0; y = mask ? x : x * alpha;",
    "tinygan_leaky_relu",
)

_leaky_relu_backward_kernel = cupy.ElementwiseKernel(
    "T dy, bool mask, T alpha",
    "T dx",
    "dx = mask ? dy : dy * alpha;",
    "tinygan_leaky_relu_backward",
)

# exp(-|x|) never overflows: 1 / (1 + e) where x >= 0, e / (1 + e) elsewhere.
_sigmoid_kernel = cupy.ElementwiseKernel(
    "T x",
    "T y",
    "T e = exp(-fabs(x)); T r = (T)1 / ((T)1 + e); y = x >= 0 ? r : e * r;",
    "tinygan_sigmoid",
)

_sigmoid_backward_kernel = cupy.ElementwiseKernel(
    "T dy, T y", "T dx", "dx = dy * y * ((T)1 - y);", "tinygan_sigmoid_backward"
)

_tanh_backward_kernel = cupy.ElementwiseKernel(
    "T dy, T y", "T dx", "dx = dy * ((T)1 - y * y);", "tinygan_tanh_backward"
)


def leaky_relu(x: Any, alpha: float) -> tuple[Any, Any]:
    return _leaky_relu_kernel(x, x.dtype.type(alpha))


def leaky_relu_backward(dy: Any, mask: Any, alpha: float) -> Any:
    return _leaky_relu_backward_kernel(dy, mask.astype(bool, copy=False), dy.dtype.type(alpha))


def sigmoid(x: Any) -> Any:
    return _sigmoid_kernel(x)


def sigmoid_backward(dy: Any, y: Any) -> Any:
    return _sigmoid_backward_kernel(dy, y)


def tanh_backward(dy: Any, y: Any) -> Any:
    return _tanh_backward_kernel(dy, y)


# ------------------------------------------------------------------------------------------------
# Batch normalisation: the per-channel sums are CuPy reductions (one fused product-sum for dgamma);
# everything the size of the activation is one elementwise pass with per-channel vectors broadcast.
# ------------------------------------------------------------------------------------------------

_batchnorm_forward_kernel = cupy.ElementwiseKernel(
    "T x, T mean, T inv_std, T gamma, T beta",
    "T y, T xhat",
    "T h = (x - mean) * inv_std; xhat = h; y = h * gamma + beta;",
    "tinygan_batchnorm_forward",
)

_batchnorm_dx_kernel = cupy.ElementwiseKernel(
    "T dy, T xhat, T factor, T dbeta, T dgamma, T m",
    "T dx",
    "dx = factor * (m * dy - dbeta - xhat * dgamma);",
    "tinygan_batchnorm_dx",
)

# sum(dy * xhat) over the reduced axes without materialising the product
_product_sum = cupy.ReductionKernel(
    "T u, T w", "T total", "u * w", "a + b", "total = a", "0", "tinygan_product_sum"
)


def _per_channel(v: Any, ndim: int) -> Any:
    """A (C,) vector as (1, C, 1, ...), which the elementwise kernels broadcast along axis 1."""
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def _reduce_axes(ndim: int) -> tuple[int, ...]:
    return (0, *range(2, ndim))


def batchnorm_forward(
    x: Any, mean: Any, var: Any, gamma: Any, beta: Any, eps: float
) -> tuple[Any, Any, Any]:
    # C values: the plain function's own expression, so that inv_std agrees to the last bit.
    inv_std = 1 / cupy.sqrt(var + eps)
    channel = functools.partial(_per_channel, ndim=x.ndim)
    y, xhat = _batchnorm_forward_kernel(
        x, channel(mean), channel(inv_std), channel(gamma), channel(beta)
    )
    return y, xhat, inv_std


def batchnorm_backward(
    dy: Any, xhat: Any, inv_std: Any, gamma: Any, batch_stats: bool = True
) -> tuple[Any, Any, Any]:
    axes = _reduce_axes(dy.ndim)
    dbeta = dy.sum(axis=axes)
    dgamma = _product_sum(dy, xhat, axis=axes)
    scale = gamma * inv_std
    if not batch_stats:
        return dy * _per_channel(scale, dy.ndim), dgamma, dbeta
    m = dy.size // dy.shape[1]
    channel = functools.partial(_per_channel, ndim=dy.ndim)
    dx = _batchnorm_dx_kernel(
        dy, xhat, channel(scale / m), channel(dbeta), channel(dgamma), dy.dtype.type(m)
    )
    return dx, dgamma, dbeta


# ------------------------------------------------------------------------------------------------
# Optimizer updates, in place: the parameter and its state are the kernels' outputs, passed in, so
# CuPy writes them where they are (any layout). A gradient of another dtype than its parameter --
# which training never makes -- goes to the plain function, whose casting rules then apply
# (fused_update).
# ------------------------------------------------------------------------------------------------

_sgd_kernel = cupy.ElementwiseKernel(
    "T grad, T lr", "T param", "param -= lr * grad;", "tinygan_sgd"
)

_sgd_momentum_kernel = cupy.ElementwiseKernel(
    "T grad, T lr, T momentum",
    "T param, T velocity",
    "T b = velocity * momentum + grad; velocity = b; param -= lr * b;",
    "tinygan_sgd_momentum",
)

# m_hat and v_hat are never stored: the bias corrections c1 = 1 - beta1**t and c2 = 1 - beta2**t
# divide the fresh moments inside the expression, in the plain function's order.
_adam_kernel = cupy.ElementwiseKernel(
    "T grad, T lr, T beta1, T beta2, T one_minus_beta1, T one_minus_beta2, T c1, T c2, T eps",
    "T param, T m, T v",
    """
    T mi = m * beta1 + one_minus_beta1 * grad;
    T vi = v * beta2 + one_minus_beta2 * (grad * grad);
    m = mi;
    v = vi;
    param -= lr * (mi / c1) / (sqrt(vi / c2) + eps);
    """,
    "tinygan_adam",
)

_rmsprop_kernel = cupy.ElementwiseKernel(
    "T grad, T lr, T rho, T one_minus_rho, T eps",
    "T param, T v",
    """
    T vi = v * rho + one_minus_rho * (grad * grad);
    v = vi;
    param -= lr * grad / (sqrt(vi) + eps);
    """,
    "tinygan_rmsprop",
)


def _same_dtype(param: Any, *others: Any) -> bool:
    return all(other is None or other.dtype == param.dtype for other in others)


@fused_update(_same_dtype)
def sgd_update(param: Any, grad: Any, velocity: Any | None, lr: float, momentum: float) -> None:
    if velocity is None:
        _sgd_kernel(grad, param.dtype.type(lr), param)
    else:
        t = param.dtype.type
        _sgd_momentum_kernel(grad, t(lr), t(momentum), param, velocity)


@fused_update(_same_dtype)
def adam_update(
    param: Any,
    grad: Any,
    m: Any,
    v: Any,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    step: int,
) -> None:
    t = param.dtype.type
    scalars = (lr, beta1, beta2, 1 - beta1, 1 - beta2, 1 - beta1**step, 1 - beta2**step, eps)
    _adam_kernel(grad, *(t(s) for s in scalars), param, m, v)


@fused_update(_same_dtype)
def rmsprop_update(param: Any, grad: Any, v: Any, lr: float, rho: float, eps: float) -> None:
    t = param.dtype.type
    _rmsprop_kernel(grad, t(lr), t(rho), t(1 - rho), t(eps), param, v)


#: Every replacement this module provides, registered by :func:`register` under its own name.
OVERRIDES = (
    im2col,
    col2im,
    batchnorm_forward,
    batchnorm_backward,
    leaky_relu,
    leaky_relu_backward,
    sigmoid,
    sigmoid_backward,
    tanh_backward,
    sgd_update,
    adam_update,
    rmsprop_update,
)


def register() -> None:
    """Register every function of :data:`OVERRIDES` for CuPy arrays (kind ``"gpu"``)."""
    for function in OVERRIDES:
        overrides.register(function.__name__, "gpu", function)
