"""Reference kernels in plain NumPy (CuPy-compatible through ``get_array_module``).

These are the readable definitions: the Numba and CuPy versions must agree with them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from tinygan.backend import get_array_module

# ------------------------------------------------------------------------------------------------
# Pooling and upsampling (NCHW)
# ------------------------------------------------------------------------------------------------


def _window_offsets(
    size: tuple[int, int], stride: tuple[int, int], out_hw: tuple[int, int]
) -> Iterator[tuple[int, slice, slice]]:
    """Yield ``(k, rows, cols)`` for every offset ``(i, j)`` inside a pooling window.

    ``k = i * kw + j`` is the offset's row-major index in the window, and ``x[:, :, rows, cols]`` is
    the ``(N, C, Ho, Wo)`` array of the entries at that offset in every window: entry ``(p, q)`` of it
    is ``x[:, :, p * sh + i, q * sw + j]``. Looping over the ``kh * kw`` offsets instead of the
    ``Ho * Wo`` windows keeps every step a whole-array operation.
    """
    (kh, kw), (sh, sw), (ho, wo) = size, stride, out_hw
    for i in range(kh):
        for j in range(kw):
            yield i * kw + j, slice(i, i + sh * ho, sh), slice(j, j + sw * wo, sw)


def maxpool_forward(x: Any, size: tuple[int, int], stride: tuple[int, int]) -> tuple[Any, Any]:
    """Max pooling with ``'valid'`` padding; also returns where each maximum was found.

    Parameters
    ----------
    x : array, shape (N, C, H, W)
        Input, with ``H >= kh`` and ``W >= kw``.
    size, stride : (int, int)
        Window ``(kh, kw)`` and step ``(sh, sw)``.

    Returns
    -------
    y : array, shape (N, C, Ho, Wo), x's dtype
        ``Ho = (H - kh) // sh + 1``, ``Wo = (W - kw) // sw + 1``; rows and columns that no whole
        window reaches are dropped.
    argmax : integer array, shape (N, C, Ho, Wo)
        Row-major index ``i * kw + j`` of the maximum inside each window. On ties it is the *first*
        maximum in row-major order (``numpy.argmax``'s rule); every implementation must agree.
    """
    xp = get_array_module(x)
    (kh, kw), (sh, sw) = size, stride
    out_hw = ((x.shape[2] - kh) // sh + 1, (x.shape[3] - kw) // sw + 1)
    windows = xp.stack(
        [x[:, :, rows, cols] for _, rows, cols in _window_offsets(size, stride, out_hw)]
    )
    argmax = windows.argmax(axis=0)
    return windows.max(axis=0), argmax


def maxpool_backward(
    dy: Any,
    argmax: Any,
    x_shape: tuple[int, ...],
    size: tuple[int, int],
    stride: tuple[int, int],
) -> Any:
    """Route each window's upstream gradient to the input entry that was its maximum.

    Parameters
    ----------
    dy : array, shape (N, C, Ho, Wo)
        Gradient with respect to the pooled output.
    argmax : integer array, shape (N, C, Ho, Wo)
        As returned by :func:`maxpool_forward`.
    x_shape : tuple
        ``(N, C, H, W)``, the input's shape.
    size, stride : (int, int)
        As in the forward pass.

    Returns
    -------
    dx : array, shape x_shape, dy's dtype
        Zero except at the maxima; an entry that is the maximum of several overlapping windows
        (``stride < size``) receives the sum of their gradients.
    """
    xp = get_array_module(dy)
    dx = xp.zeros(x_shape, dtype=dy.dtype)
    for k, rows, cols in _window_offsets(size, stride, dy.shape[2:]):
        # One offset never visits an entry twice, so this += has no repeated indices; overlapping
        # windows reach the same entry through *different* offsets, and the loop sums them.
        dx[:, :, rows, cols] += dy * (argmax == k)
    return dx


def upsample_nearest(x: Any, scale: tuple[int, int]) -> Any:
    """Nearest-neighbour upsampling: every pixel becomes an ``sh x sw`` block of copies.

    Parameters
    ----------
    x : array, shape (N, C, H, W)
    scale : (int, int)
        ``(sh, sw)``.

    Returns
    -------
    y : array, shape (N, C, H * sh, W * sw), x's dtype
        ``y[n, c, u, v] = x[n, c, u // sh, v // sw]``.
    """
    xp = get_array_module(x)
    n, c, h, w = x.shape
    sh, sw = scale
    blocks = xp.broadcast_to(x[:, :, :, None, :, None], (n, c, h, sh, w, sw))
    return blocks.reshape(n, c, h * sh, w * sw)


def upsample_nearest_backward(dy: Any, scale: tuple[int, int]) -> Any:
    """Adjoint of :func:`upsample_nearest`: sum the gradient over each ``sh x sw`` block.

    Parameters
    ----------
    dy : array, shape (N, C, H * sh, W * sw)
    scale : (int, int)

    Returns
    -------
    dx : array, shape (N, C, H, W), dy's dtype
    """
    n, c, hs, ws = dy.shape
    sh, sw = scale
    return dy.reshape(n, c, hs // sh, sh, ws // sw, sw).sum(axis=(3, 5))


# ------------------------------------------------------------------------------------------------
# Batch normalisation: statistics per channel (axis 1) over every other axis
# ------------------------------------------------------------------------------------------------


def _reduce_axes(x: Any) -> tuple[int, ...]:
    """Every axis but the channel axis 1: ``(0,)`` for (N, C), ``(0, 2, 3)`` for (N, C, H, W)."""
    return (0, *range(2, x.ndim))


def _per_channel(v: Any, ndim: int) -> Any:
    """View a (C,) vector as (1, C, 1, ...) so that it broadcasts along axis 1 of an ndim array."""
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def batchnorm_moments(x: Any) -> tuple[Any, Any]:
    """Per-channel mean and *biased* variance of ``x`` over every axis but 1.

    Parameters
    ----------
    x : array, shape (N, C) or (N, C, H, W)

    Returns
    -------
    mean, var : arrays, shape (C,), x's dtype
        ``var = mean((x - mean)**2)``, divided by ``M = x.size / C``.

    Notes
    -----
    Two passes (the mean first, then the mean squared deviation) rather than
    ``E[x^2] - E[x]^2``, which cancels catastrophically when ``|mean| >> std`` (a ReLU output, say).
    The sums run in ``x``'s dtype: with two passes float32 statistics stay within about ``1e-6``
    relative of float64 ones for the 10^4 to 10^5 values per channel of a DCGAN batch.
    """
    axes = _reduce_axes(x)
    mean = x.mean(axis=axes)
    centered = x - _per_channel(mean, x.ndim)
    return mean, (centered * centered).mean(axis=axes)


def batchnorm_forward(
    x: Any, mean: Any, var: Any, gamma: Any, beta: Any, eps: float
) -> tuple[Any, Any, Any]:
    """Normalise with the given per-channel statistics, then scale and shift.

    Parameters
    ----------
    x : array, shape (N, C) or (N, C, H, W)
    mean, var : arrays, shape (C,)
        Batch statistics (training) or running statistics (evaluation), in x's dtype.
    gamma, beta : arrays, shape (C,)
        Scale and shift, in x's dtype.
    eps : float
        Added to the variance before the square root.

    Returns
    -------
    y : array, x's shape and dtype
        ``gamma * xhat + beta``.
    xhat : array, x's shape and dtype
        ``(x - mean) * inv_std``, kept for the backward pass.
    inv_std : array, shape (C,)
        ``1 / sqrt(var + eps)``.
    """
    inv_std = 1 / get_array_module(x).sqrt(var + eps)
    xhat = (x - _per_channel(mean, x.ndim)) * _per_channel(inv_std, x.ndim)
    return xhat * _per_channel(gamma, x.ndim) + _per_channel(beta, x.ndim), xhat, inv_std


def batchnorm_backward(
    dy: Any, xhat: Any, inv_std: Any, gamma: Any, batch_stats: bool = True
) -> tuple[Any, Any, Any]:
    """Gradients of batch normalisation with respect to its input, ``gamma`` and ``beta``.

    Parameters
    ----------
    dy : array, shape (N, C) or (N, C, H, W)
        Upstream gradient.
    xhat, inv_std : arrays
        As returned by :func:`batchnorm_forward`.
    gamma : array, shape (C,), dy's dtype
    batch_stats : bool
        True when the forward pass normalised with the batch's own statistics (training), so the
        gradient also flows through the mean and the variance; False for running statistics.

    Returns
    -------
    dx : array, dy's shape and dtype
    dgamma, dbeta : arrays, shape (C,)
        ``sum(dy * xhat)`` and ``sum(dy)`` over every axis but 1.

    Notes
    -----
    With ``M`` values per channel and ``dxhat = gamma * dy`` the training-mode gradient is
    ``dx = inv_std / M * (M * dxhat - sum(dxhat) - xhat * sum(dxhat * xhat))``
    (derived in ``docs/batchnorm_backward.md``). Since ``sum(dxhat) = gamma * dbeta`` and
    ``sum(dxhat * xhat) = gamma * dgamma``, the two reductions the parameters need anyway are the only
    ones ``dx`` needs. With fixed (running) statistics the map is affine and ``dx = gamma * inv_std * dy``.
    """
    ndim = dy.ndim
    axes = _reduce_axes(dy)
    dbeta = dy.sum(axis=axes)
    dgamma = (dy * xhat).sum(axis=axes)
    scale = _per_channel(gamma * inv_std, ndim)
    if not batch_stats:
        return dy * scale, dgamma, dbeta
    m = dy.size // dy.shape[1]
    centered = m * dy - _per_channel(dbeta, ndim) - xhat * _per_channel(dgamma, ndim)
    return (scale / m) * centered, dgamma, dbeta


# ------------------------------------------------------------------------------------------------
# Convolution: im2col / col2im (NCHW in and out; patch matrix in channels-last order)
# ------------------------------------------------------------------------------------------------


def conv_output_size(size: int, kernel: int, stride: int, before: int, after: int) -> int:
    """Number of positions of a ``kernel``-wide window stepping by ``stride`` along an axis of length
    ``size`` padded with ``before`` and ``after`` zeros: ``(size + before + after - kernel) // stride + 1``.

    Positions that a whole window does not reach (at the end, when ``stride`` does not divide the
    remainder) are dropped, as in every framework. Not positive when the kernel is longer than the
    padded axis; callers check.
    """
    return (size + before + after - kernel) // stride + 1


def im2col(
    x: Any, kh: int, kw: int, stride: tuple[int, int], padding: tuple[int, int, int, int]
) -> Any:
    """Unfold every ``kh x kw`` patch of the zero-padded input into one row of a matrix.

    Parameters
    ----------
    x : array, shape (N, C, H, W)
        Input images, any memory layout (a transposed view is fine).
    kh, kw : int
        Kernel height and width.
    stride : (int, int)
        ``(sh, sw)``.
    padding : (int, int, int, int)
        Zeros added ``(top, bottom, left, right)``; the padded image must be at least ``kh x kw``.

    Returns
    -------
    cols : array, shape (N * OH * OW, kh * kw * C), x's dtype, C-contiguous
        ``OH = conv_output_size(H, kh, sh, top, bottom)`` and likewise ``OW``. Row ``(n * OH + p) * OW
        + q`` is the patch under output pixel ``(p, q)`` of image ``n``, ordered kernel row, kernel
        column, channel::

            cols[(n, p, q), (i * kw + j) * C + c] = xpad[n, c, p * sh + i, q * sw + j]

    Notes
    -----
    A convolution is then one matrix product, ``cols @ Wm.T``, with the weight ``(O, C, kh, kw)``
    permuted to ``Wm`` of shape ``(O, kh * kw * C)``; its result ``(N * OH * OW, O)`` is the output in
    NHWC order. Why this layout: ``cols`` is filled by one strided copy per kernel offset
    ``(i, j)``, and with channels last each copied run is ``C`` contiguous values instead of ``OW``
    values ``sh`` apart. On a DCGAN layer (C = 64, OW = 7) that makes ``im2col`` and ``col2im`` about
    1.5x faster than the classic ``(C * kh * kw, N * OH * OW)`` layout, for the same GEMM.
    """
    xp = get_array_module(x)
    n, c, h, w = x.shape
    top, bottom, left, right = padding
    oh = conv_output_size(h, kh, stride[0], top, bottom)
    ow = conv_output_size(w, kw, stride[1], left, right)
    # One channels-last copy of the padded input, so that every copy below moves runs of C values.
    xpad = xp.zeros((n, h + top + bottom, w + left + right, c), dtype=x.dtype)
    xpad[:, top : top + h, left : left + w, :] = x.transpose(0, 2, 3, 1)
    cols = xp.empty((n, oh, ow, kh * kw, c), dtype=x.dtype)
    for k, rows, columns in _window_offsets((kh, kw), stride, (oh, ow)):
        cols[:, :, :, k, :] = xpad[:, rows, columns, :]
    return cols.reshape(n * oh * ow, kh * kw * c)


def col2im(
    cols: Any,
    x_shape: tuple[int, int, int, int],
    kh: int,
    kw: int,
    stride: tuple[int, int],
    padding: tuple[int, int, int, int],
) -> Any:
    """Adjoint of :func:`im2col`: add every patch row back onto the image it was taken from.

    Parameters
    ----------
    cols : array, shape (N * OH * OW, kh * kw * C)
        In :func:`im2col`'s layout, with ``OH``, ``OW`` computed from ``x_shape`` as there.
    x_shape : (int, int, int, int)
        ``(N, C, H, W)``, the shape of the image the patches live on.
    kh, kw, stride, padding
        As in :func:`im2col`.

    Returns
    -------
    x : array, shape x_shape, cols' dtype, C-contiguous (a new array)
        ``x[n, c, h, w]`` is the sum of every entry of ``cols`` that :func:`im2col` would have copied
        from position ``(h, w)`` of channel ``c`` of image ``n``; entries that fall in the padding are
        dropped, and pixels that no patch covers are 0.

    Notes
    -----
    ``im2col`` is linear, ``x -> cols = P x`` with ``P`` a 0/1 matrix that copies (and crops nothing,
    pads with zeros). Its adjoint ``P^T`` sends each entry of ``cols`` back to where it came from and
    sums the entries that overlapping patches share: ``<P x, G> = <x, P^T G>``. That is the input
    gradient of a convolution and the forward pass of a transposed convolution. One ``+=`` per kernel
    offset never touches a pixel twice (its window positions are ``sh`` apart), so there is no
    scatter with repeated indices and no ``add.at``: overlaps are summed by the loop. This is about
    6x faster than ``numpy.add.at`` on the DCGAN shapes.
    """
    xp = get_array_module(cols)
    n, c, h, w = x_shape
    top, bottom, left, right = padding
    oh = conv_output_size(h, kh, stride[0], top, bottom)
    ow = conv_output_size(w, kw, stride[1], left, right)
    patches = cols.reshape(n, oh, ow, kh * kw, c)
    xpad = xp.zeros((n, h + top + bottom, w + left + right, c), dtype=cols.dtype)
    for k, rows, columns in _window_offsets((kh, kw), stride, (oh, ow)):
        xpad[:, rows, columns, :] += patches[:, :, :, k, :]
    # Cropping is the adjoint of zero padding; the copy returns to NCHW.
    return xp.ascontiguousarray(xpad[:, top : top + h, left : left + w, :].transpose(0, 3, 1, 2))


# ------------------------------------------------------------------------------------------------
# Elementwise activations and dropout (any shape; the output has the input's shape and dtype)
# ------------------------------------------------------------------------------------------------


def leaky_relu(x: Any, alpha: float) -> tuple[Any, Any]:
    """Leaky ReLU ``y = x`` where ``x > 0`` and ``alpha * x`` elsewhere; ``alpha = 0`` is the ReLU.

    Parameters
    ----------
    x : array
        Input, any shape.
    alpha : float
        Slope of the negative side, applied in ``x``'s dtype.

    Returns
    -------
    y : array, x's shape and dtype
    mask : bool array, x's shape
        ``x > 0``: where the slope is 1. It is all the backward pass needs.
    """
    xp = get_array_module(x)
    mask = x > 0
    return xp.where(mask, x, x * x.dtype.type(alpha)), mask


def leaky_relu_backward(dy: Any, mask: Any, alpha: float) -> Any:
    """Gradient of :func:`leaky_relu`: ``dx = dy`` where ``mask`` and ``alpha * dy`` elsewhere.

    Parameters
    ----------
    dy : array
        Upstream gradient.
    mask : bool array, dy's shape
        As returned by :func:`leaky_relu`.
    alpha : float

    Returns
    -------
    dx : array, dy's shape and dtype
    """
    xp = get_array_module(dy)
    return xp.where(mask, dy, dy * dy.dtype.type(alpha))


def sigmoid(x: Any) -> Any:
    r"""Logistic function :math:`\sigma(x) = 1 / (1 + e^{-x})`, stable for any ``x``.

    Returns
    -------
    y : array, x's shape and dtype

    Notes
    -----
    Computed as :math:`\exp(-\operatorname{softplus}(-x))` with ``softplus(t) = logaddexp(0, t)``,
    which never evaluates ``exp`` of a large positive number: ``x = -1e4`` underflows cleanly to 0
    (no overflow warning) and large ``x`` gives exactly 1.
    """
    xp = get_array_module(x)
    return xp.exp(-xp.logaddexp(0, -x))


def sigmoid_backward(dy: Any, y: Any) -> Any:
    r"""Gradient of the logistic function from its output: ``dx = dy * y * (1 - y)``.

    :math:`\sigma' = e^{-x} / (1 + e^{-x})^2 = \sigma (1 - \sigma)`, so the output ``y`` is enough.
    Returns an array of dy's shape and dtype.
    """
    return dy * y * (1 - y)


def tanh_backward(dy: Any, y: Any) -> Any:
    r"""Gradient of :math:`\tanh` from its output: ``dx = dy * (1 - y**2)`` (:math:`\tanh' = 1 - \tanh^2`).

    Returns an array of dy's shape and dtype.
    """
    return dy * (1 - y * y)


def dropout(x: Any, u: Any, rate: float) -> tuple[Any, Any]:
    """Inverted dropout with the given uniform draws: keep ``x`` where ``u >= rate``, rescaled.

    Parameters
    ----------
    x : array
        Input, any shape.
    u : array, x's shape and dtype
        Uniform draws on ``[0, 1)``, one per entry. A scratch array: implementations may overwrite
        it (the Numba kernel writes the mask into it), so the caller must not reuse it.
    rate : float
        Probability of dropping an entry, in ``[0, 1)``.

    Returns
    -------
    y : array, x's shape and dtype
        ``x * mask``.
    mask : array, x's shape and dtype
        ``1 / (1 - rate)`` (rounded to the dtype) where ``u >= rate``, else 0. The backward pass is
        ``dx = dy * mask``.
    """
    mask = (u >= rate).astype(x.dtype)
    mask *= 1 / (1 - rate)
    return x * mask, mask


# ------------------------------------------------------------------------------------------------
# Optimizer updates, in place. Scalars are applied in the parameter's dtype, in the order written.
# ------------------------------------------------------------------------------------------------


def sgd_update(param: Any, grad: Any, velocity: Any, lr: float, momentum: float) -> None:
    r"""One SGD step in place: :math:`b \leftarrow \mu b + g`, :math:`p \leftarrow p - \eta b`.

    Parameters
    ----------
    param, grad : arrays of one shape and dtype
        The parameter (updated in place) and its gradient.
    velocity : array like param, or None
        The momentum buffer :math:`b`, updated in place; ``None`` for plain SGD
        (:math:`p \leftarrow p - \eta g`).
    lr, momentum : float
        :math:`\eta` and :math:`\mu`.
    """
    step = grad
    if velocity is not None:
        velocity *= momentum
        velocity += grad
        step = velocity
    param -= param.dtype.type(lr) * step


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
    r"""One Adam step in place (PyTorch's form), at step ``t = step >= 1``.

    Parameters
    ----------
    param, grad : arrays of one shape and dtype
        The parameter (updated in place) and its gradient.
    m, v : arrays like param
        First and second moment estimates, updated in place.
    lr, beta1, beta2, eps : float
        :math:`\eta, \beta_1, \beta_2, \epsilon`.
    step : int
        :math:`t`, counting from 1, for the bias corrections.

    Notes
    -----
    :math:`m \leftarrow \beta_1 m + (1 - \beta_1) g`, :math:`v \leftarrow \beta_2 v + (1 - \beta_2) g^2`,
    :math:`p \leftarrow p - \eta\, \hat m / (\sqrt{\hat v} + \epsilon)` with
    :math:`\hat m = m / c_1`, :math:`\hat v = v / c_2`, :math:`c_i = 1 - \beta_i^t`. Both corrections
    are folded into two scalars, :math:`\eta \hat m / (\sqrt{\hat v} + \epsilon) =
    (\eta / c_1)\, m / (\sqrt{v} / \sqrt{c_2} + \epsilon)`, so no array is divided by :math:`c_i`.
    """
    xp = get_array_module(param)
    m *= beta1
    m += (1 - beta1) * grad
    v *= beta2
    v += (1 - beta2) * (grad * grad)
    c1, c2 = 1 - beta1**step, 1 - beta2**step
    denom = xp.sqrt(v) * param.dtype.type(1 / math.sqrt(c2))
    denom += eps
    param -= param.dtype.type(lr / c1) * m / denom


def rmsprop_update(param: Any, grad: Any, v: Any, lr: float, rho: float, eps: float) -> None:
    r"""One RMSprop step in place (Keras' form).

    :math:`v \leftarrow \rho v + (1 - \rho) g^2`, :math:`p \leftarrow p - \eta\, g / (\sqrt{v} + \epsilon)`.

    Parameters
    ----------
    param, grad : arrays of one shape and dtype
        The parameter (updated in place) and its gradient.
    v : array like param
        Running mean of squared gradients, updated in place.
    lr, rho, eps : float
        :math:`\eta, \rho, \epsilon`.
    """
    xp = get_array_module(param)
    v *= rho
    v += (1 - rho) * (grad * grad)
    param -= param.dtype.type(lr) * grad / (xp.sqrt(v) + eps)
