"""2-D convolution (cross-correlation, as in every deep-learning framework), by im2col and one GEMM.

The module also holds what turns a convolution into matrix products: :func:`im2col`, which copies
every patch of the input into one row of a matrix, its adjoint :func:`col2im`, and the layout
helpers. The transposed convolution (:mod:`tinygan.nn.conv_transpose`) runs the same products in the
other direction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tinygan.backend import Array, get_array_module
from tinygan.init import Initializer, glorot_uniform, layer_rng, make_param, zeros
from tinygan.nn.layer import Cache, Layer, has_kind, int_pair, is_shape, positive_int
from tinygan.nn.padding import (
    Padding,
    conv_output_size,
    conv_padding,
    parse_padding,
    window_offsets,
)
from tinygan.overrides import overridable


@overridable
def im2col(
    x: Array, kh: int, kw: int, stride: tuple[int, int], padding: tuple[int, int, int, int]
) -> Array:
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
    permuted to ``Wm`` of shape ``(O, kh * kw * C)`` (:func:`weight_matrix`); its result
    ``(N * OH * OW, O)`` is the output in NHWC order. Why channels last: ``cols`` is filled by one
    strided copy per kernel offset ``(i, j)``, and each copied run is then ``C`` contiguous values
    instead of ``OW`` values ``sh`` apart. On a DCGAN layer (C = 64, OW = 7) that makes ``im2col``
    and ``col2im`` about 1.5x faster than the classic ``(C * kh * kw, N * OH * OW)`` layout, for the
    same GEMM.
    """
    xp = get_array_module(x)
    n, c, h, w = x.shape
    top, bottom, left, right = padding
    oh = conv_output_size(h, kh, stride[0], top, bottom)
    ow = conv_output_size(w, kw, stride[1], left, right)
    xpad = xp.zeros((n, h + top + bottom, w + left + right, c), dtype=x.dtype)
    xpad[:, top : top + h, left : left + w, :] = x.transpose(0, 2, 3, 1)
    cols = xp.empty((n, oh, ow, kh * kw, c), dtype=x.dtype)
    for k, rows, columns in window_offsets((kh, kw), stride, (oh, ow)):
        cols[:, :, :, k, :] = xpad[:, rows, columns, :]
    return cols.reshape(n * oh * ow, kh * kw * c)


@overridable
def col2im(
    cols: Array,
    x_shape: tuple[int, int, int, int],
    kh: int,
    kw: int,
    stride: tuple[int, int],
    padding: tuple[int, int, int, int],
) -> Array:
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
    ``im2col`` is linear, ``x -> cols = P x`` with ``P`` a 0/1 matrix that copies (and pads with
    zeros). Its adjoint ``P^T`` sends each entry of ``cols`` back to where it came from and sums the
    entries that overlapping patches share: ``<P x, G> = <x, P^T G>``. That is the input gradient of
    a convolution and the forward pass of a transposed convolution. One ``+=`` per kernel offset
    never touches a pixel twice (its window positions are ``sh`` apart), so there is no scatter with
    repeated indices and no ``add.at``: overlaps are summed by the loop, about 6x faster than
    ``numpy.add.at`` on the DCGAN shapes.
    """
    xp = get_array_module(cols)
    n, c, h, w = x_shape
    top, bottom, left, right = padding
    oh = conv_output_size(h, kh, stride[0], top, bottom)
    ow = conv_output_size(w, kw, stride[1], left, right)
    patches = cols.reshape(n, oh, ow, kh * kw, c)
    xpad = xp.zeros((n, h + top + bottom, w + left + right, c), dtype=cols.dtype)
    for k, rows, columns in window_offsets((kh, kw), stride, (oh, ow)):
        xpad[:, rows, columns, :] += patches[:, :, :, k, :]
    # Cropping is the adjoint of zero padding; the copy returns to NCHW.
    return xp.ascontiguousarray(xpad[:, top : top + h, left : left + w, :].transpose(0, 3, 1, 2))


def pixel_rows(a: Array) -> Array:
    """An NCHW array as the matrix ``(N * H * W, C)``: one row per pixel, channels along the row.

    This is the layout of a convolution's output in the GEMM ``cols @ Wm.T`` (see :func:`im2col`).
    C-contiguous: a copy in general, a view when ``C == 1``.
    """
    return a.transpose(0, 2, 3, 1).reshape(-1, a.shape[1])


def from_pixel_rows(rows: Array, n: int, h: int, w: int) -> Array:
    """Inverse of :func:`pixel_rows`: ``(N * H * W, C)`` back to a C-contiguous ``(N, C, H, W)``."""
    xp = get_array_module(rows)
    return xp.ascontiguousarray(rows.reshape(n, h, w, -1).transpose(0, 3, 1, 2))


def weight_matrix(W: Array) -> Array:
    """A kernel ``(A, B, kh, kw)`` as the matrix ``(A, kh * kw * B)`` whose columns follow im2col's
    column order ``(i, j, b)``. A small copy (the weights, not the activations)."""
    return W.transpose(0, 2, 3, 1).reshape(W.shape[0], -1)


def weight_from_matrix(Wm: Array, shape: tuple[int, ...]) -> Array:
    """Inverse of :func:`weight_matrix`: ``(A, kh * kw * B)`` back to a view of shape ``(A, B, kh, kw)``."""
    a, b, kh, kw = shape
    return Wm.reshape(a, kh, kw, b).transpose(0, 3, 1, 2)


@overridable
def conv2d_forward(
    x: Array, W: Array, b: Array | None, stride: tuple[int, int], padding: tuple[int, int, int, int]
) -> Array:
    """Convolve ``x`` (N, C, H, W) with ``W`` (O, C, kh, kw) and add ``b`` (O,) or ``None``.

    One GEMM on the patch matrix, ``Y = im2col(x) @ Wm.T + b``; ``Y`` is the output as pixel rows
    ``(N * OH * OW, O)``, returned as a C-contiguous (N, O, OH, OW) array.
    """
    n, _, h, w = x.shape
    kh, kw = W.shape[2:]
    oh = conv_output_size(h, kh, stride[0], padding[0], padding[1])
    ow = conv_output_size(w, kw, stride[1], padding[2], padding[3])
    rows = im2col(x, kh, kw, stride, padding) @ weight_matrix(W).T
    if b is not None:
        rows += b
    return from_pixel_rows(rows, n, oh, ow)


@overridable
def conv2d_backward(
    dy: Array,
    x: Array,
    W: Array,
    stride: tuple[int, int],
    padding: tuple[int, int, int, int],
    param_grads: bool = True,
    input_grad: bool = True,
) -> tuple[Array | None, Array | None, Array | None]:
    """Gradients ``(dx, dW, db)`` of :func:`conv2d_forward` given ``dy`` (N, O, OH, OW).

    With ``G = pixel_rows(dy)`` and ``X = im2col(x)``: ``dx = col2im(G @ Wm)``, ``dW = G.T @ X``
    (back in W's layout) and ``db = G.sum(axis=0)``. Without ``param_grads`` ``dW`` and ``db`` are
    ``None`` and not computed; without ``input_grad`` ``dx`` is (no product, no col2im).
    """
    kh, kw = W.shape[2:]
    G = pixel_rows(dy)
    dx = col2im(G @ weight_matrix(W), x.shape, kh, kw, stride, padding) if input_grad else None
    if not param_grads:
        return dx, None, None
    dW = weight_from_matrix(G.T @ im2col(x, kh, kw, stride, padding), W.shape)
    return dx, dW, G.sum(axis=0)


def conv2d_second_pass(
    v: Array, dy: Array, W: Array, stride: tuple[int, int], padding: tuple[int, int, int, int]
) -> tuple[Array, Array]:
    """The second pass of the input gradient of :func:`conv2d_forward`, along ``v`` (x's shape).

    Returns ``(dW, v_dy)``: the weight gradient that :func:`conv2d_backward` computes with ``v`` in
    the place of ``x``, and ``v_dy = conv2d_forward(v, W, None)``, the convolution of ``v`` without
    bias (the :class:`Conv2D` notes derive both).
    """
    _, dW, _ = conv2d_backward(dy, v, W, stride, padding, param_grads=True, input_grad=False)
    return dW, conv2d_forward(v, W, None, stride, padding)


def setup_convolution(
    layer: Layer,
    in_channels: int,
    out_channels: int,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int],
    padding: Padding,
) -> None:
    """Validate and store the geometry shared by Conv2D and ConvTranspose2D on ``layer``."""
    name = type(layer).__name__
    layer.in_channels = positive_int(in_channels, "in_channels", name)
    layer.out_channels = positive_int(out_channels, "out_channels", name)
    layer.kernel_size = int_pair(kernel_size, "kernel_size", name, minimum=1)
    layer.stride = int_pair(stride, "stride", name, minimum=1)
    layer.padding = parse_padding(padding, name)


def add_kernel_params(
    layer: Layer,
    layout: str,
    bias: bool,
    weight_init: Initializer | None,
    bias_init: Initializer | None,
    rng: np.random.Generator | None,
    dtype: Any,
) -> None:
    """Create ``W`` ((out, in, kh, kw) for ``layout="out_in"``, (in, out, kh, kw) for ``"in_out"``)
    and optionally ``b`` (out,), with fans ``in * kh * kw`` and ``out * kh * kw``, drawn from
    :func:`tinygan.init.layer_rng` of ``rng``."""
    rng = layer_rng(rng)
    kh, kw = layer.kernel_size
    channels = (layer.out_channels, layer.in_channels)
    shape = (*(channels if layout == "out_in" else channels[::-1]), kh, kw)
    fans = (layer.in_channels * kh * kw, layer.out_channels * kh * kw)
    layer.add_param("W", make_param(weight_init or glorot_uniform(), shape, rng, *fans, dtype))
    if bias:
        layer.add_param(
            "b", make_param(bias_init or zeros(), (layer.out_channels,), rng, *fans, dtype)
        )


def check_conv_cache(layer: Layer, cache: Cache) -> None:
    """Raise, naming ``layer``, unless ``cache`` has the layout a (transposed) convolution's forward
    returns: ``(x, padding, output shape)`` with ``x`` a float batch of ``layer.in_channels``."""
    channels = layer.in_channels
    if not (
        isinstance(cache, tuple)
        and len(cache) == 3
        and has_kind(cache[0], "f")
        and cache[0].ndim == 4
        and cache[0].shape[1] == channels
        and isinstance(cache[1], tuple)
        and is_shape(cache[2])
    ):
        raise layer.foreign_cache(
            cache, f"the tuple (x, padding, output shape), x of shape (N, {channels}, H, W)"
        )


def conv_layer_backward(
    layer: Layer,
    backward: Callable[..., tuple[Array | None, Array | None, Array | None]],
    dy: Array,
    cache: Cache,
    param_grads: bool,
    input_grad: bool,
) -> Array | None:
    """The backward pass of a convolution layer around its math: check ``cache`` and ``dy``, call
    ``backward`` (:func:`conv2d_backward`, or the transposed convolution's) with the layer's
    weight, add ``dW`` and ``db`` into ``layer.grads`` when ``param_grads``, and return ``dx``."""
    check_conv_cache(layer, cache)
    x, pad, y_shape = cache
    layer.check_dy(dy, y_shape)
    W = layer.param_as("W", dy.dtype)
    dx, dW, db = backward(dy, x, W, layer.stride, pad, param_grads, input_grad)
    if param_grads:
        layer.add_grads(W=dW, b=db)
    return dx


class Conv2D(Layer):
    r"""2-D convolution over NCHW images.

    Parameters
    ----------
    in_channels, out_channels : int
        ``C`` and ``O``.
    kernel_size : int or (int, int)
        ``(kh, kw)``.
    stride : int or (int, int)
        ``(sh, sw)``.
    padding : int, (int, int), "same" or "valid"
        Zeros added on each side (``p`` or ``(ph, pw)``, symmetric). ``"valid"`` is 0. ``"same"``
        (Keras/TensorFlow): output ``ceil(H / sh) x ceil(W / sw)``, total padding
        ``max((ceil(H / sh) - 1) * sh + kh - H, 0)`` with the odd row at the bottom (column at the right).
    bias : bool
        Whether to add a per-channel ``b``.
    weight_init, bias_init : Initializer, optional
        Defaults: Glorot uniform for ``W`` (Keras' default) with ``fan_in = C * kh * kw`` and
        ``fan_out = O * kh * kw``; zeros for ``b``.
    rng : numpy.random.Generator, optional
        Source of the initial weights (always drawn on the CPU); a generator seeded with 0 when
        omitted (:func:`tinygan.init.layer_rng`).
    dtype : dtype
        Parameter dtype.

    Shapes
    ------
    x: (N, C, H, W) -> y: (N, O, OH, OW) with ``OH = (H + top + bottom - kh) // sh + 1`` (likewise
    ``OW``); ``params["W"]``: (O, C, kh, kw); ``params["b"]``: (O,). The output has the input's dtype.

    Notes
    -----
    Forward, with ``xpad`` the zero-padded input:

    .. math:: y_{nopq} = b_o + \sum_{c,i,j} W_{ocij}\, \mathrm{xpad}_{nc,\,p s_h + i,\,q s_w + j}.

    im2col gathers the patches into ``X`` of shape ``(N OH OW, kh kw C)``,
    :math:`X_{(npq),(ijc)} = \mathrm{xpad}_{nc,\,ps_h+i,\,qs_w+j}`; with the kernel as the matrix
    :math:`M_{o,(ijc)} = W_{ocij}` the forward pass is one GEMM, :math:`Y = X M^\top + b` with
    ``Y`` of shape ``(N OH OW, O)`` (``y`` in NHWC order, transposed to NCHW).

    Backward, with :math:`G = \partial L/\partial Y` (``dy`` as pixel rows). ``Y`` is bilinear in
    ``X`` and ``M``, exactly as in a Dense layer:

    * :math:`\partial L/\partial M = G^\top X` (``O x kh kw C``, reshaped back to ``W``'s layout);
    * :math:`\partial L/\partial b_o = \sum_{npq} G_{(npq),o}`;
    * :math:`\partial L/\partial X = G M`. Every entry of ``xpad`` was copied into ``X`` once per
      patch covering it, so its gradient is the sum of the gradients of its copies: col2im
      (the adjoint of im2col) adds them back, and dropping the padding rows (the adjoint of padding
      with zeros) gives :math:`\partial L/\partial x`.

    :func:`conv2d_forward` and :func:`conv2d_backward` compute these. The cache is the input ``x``
    itself (kept, not copied; it must not be modified before ``backward``), from which ``backward``
    rebuilds ``X`` for ``dW``: cheaper than keeping a patch matrix ``kh kw / (sh sw)`` times the size
    of ``x``. The cache also holds the padding and the output shape, which ``dy`` must have. See
    ``docs/conv_transpose_adjoint.md`` for the input gradient as a transposed convolution.

    Second pass (:meth:`Layer.second_pass`), the derivative of the backward pass
    :math:`dx = B(G, x, M) = P^\top (G M)` (``col2im`` is :math:`P^\top`, the adjoint of
    im2col's :math:`P`) along a vector :math:`v` on :math:`dx`. Moving the adjoint across,
    :math:`\langle v, P^\top G M \rangle = \langle P v, G M \rangle = \langle V M^\top, G
    \rangle` with :math:`V = P v = \mathrm{im2col}(v)`: the scalar is bilinear in :math:`G` and
    :math:`M`, exactly as a Dense layer's, so

    * :math:`\partial/\partial M = G^\top V`: the weight gradient with ``v`` in the place of ``x``;
    * :math:`\partial/\partial G = V M^\top`: the convolution of ``v`` without the bias;
    * nothing for :math:`x` and :math:`b`, which :math:`B` does not read
      (:func:`conv2d_second_pass`).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: Padding = 0,
        bias: bool = True,
        weight_init: Initializer | None = None,
        bias_init: Initializer | None = None,
        rng: np.random.Generator | None = None,
        dtype: Any = np.float32,
    ) -> None:
        super().__init__()
        setup_convolution(self, in_channels, out_channels, kernel_size, stride, padding)
        add_kernel_params(self, "out_in", bias, weight_init, bias_init, rng, dtype)

    def padding_for(self, size: tuple[int, int]) -> tuple[int, int, int, int]:
        """``(top, bottom, left, right)`` for an input of spatial size ``(H, W)``.

        Raises ``ValueError`` when the kernel does not fit in the padded input.
        """
        pad = conv_padding(self.padding, size, self.kernel_size, self.stride)
        padded = (size[0] + pad[0] + pad[1], size[1] + pad[2] + pad[3])
        if padded[0] < self.kernel_size[0] or padded[1] < self.kernel_size[1]:
            raise ValueError(
                f"{type(self).__name__}: kernel {self.kernel_size} is larger than the padded input "
                f"{padded} (input (H, W) = {tuple(size)}, padding (top, bottom, left, right) = {pad})"
            )
        return pad

    def forward(self, x: Array, training: bool = True) -> tuple[Array, Cache]:
        self.check_input(x, ("N", self.in_channels, "*", "*"))
        pad = self.padding_for(x.shape[2:])
        W, b = self.param_as("W", x.dtype), self.param_as("b", x.dtype)
        y = conv2d_forward(x, W, b, self.stride, pad)
        return y, (x, pad, y.shape)

    def backward(
        self, dy: Array, cache: Cache, param_grads: bool = True, input_grad: bool = True
    ) -> Array | None:
        return conv_layer_backward(self, conv2d_backward, dy, cache, param_grads, input_grad)

    def second_pass(
        self, v: Array, cache: Cache, kept: Cache, input_grad: bool = True
    ) -> tuple[Array, Array | None]:
        check_conv_cache(self, cache)
        x, pad, y_shape = cache
        self.check_second_pass(v, kept, x.shape, y_shape)
        dW, v_dy = conv2d_second_pass(v, kept, self.param_as("W", v.dtype), self.stride, pad)
        self.grads["W"] += dW
        return v_dy, None

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding!r}, bias={'b' in self.params}"
        )
