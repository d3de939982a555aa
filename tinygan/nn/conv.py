"""2-D convolution (cross-correlation, as in every deep-learning framework), by im2col and one GEMM.

The module also holds the layout helpers that turn the convolution into matrix products; the
transposed convolution (:mod:`tinygan.nn.conv_transpose`) runs the same products in the other
direction.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygan import kernels
from tinygan.backend import get_array_module
from tinygan.init import Initializer, glorot_uniform, make_param, zeros
from tinygan.kernels.reference import conv_output_size
from tinygan.nn.dense import transposed_product
from tinygan.nn.layer import Layer, int_pair, positive_int
from tinygan.nn.padding import Padding, conv_padding, parse_padding


def pixel_rows(a: Any) -> Any:
    """An NCHW array as the matrix ``(N * H * W, C)``: one row per pixel, channels along the row.

    This is the layout of a convolution's output in the GEMM ``cols @ Wm.T`` (see
    :func:`tinygan.kernels.reference.im2col`). C-contiguous: a copy in general, a view when ``C == 1``.
    """
    return a.transpose(0, 2, 3, 1).reshape(-1, a.shape[1])


def from_pixel_rows(rows: Any, n: int, h: int, w: int) -> Any:
    """Inverse of :func:`pixel_rows`: ``(N * H * W, C)`` back to a C-contiguous ``(N, C, H, W)``."""
    xp = get_array_module(rows)
    return xp.ascontiguousarray(rows.reshape(n, h, w, -1).transpose(0, 3, 1, 2))


def weight_matrix(W: Any) -> Any:
    """A kernel ``(A, B, kh, kw)`` as the matrix ``(A, kh * kw * B)`` whose columns follow im2col's
    column order ``(i, j, b)``. A small copy (the weights, not the activations)."""
    return W.transpose(0, 2, 3, 1).reshape(W.shape[0], -1)


def weight_from_matrix(Wm: Any, shape: tuple[int, ...]) -> Any:
    """Inverse of :func:`weight_matrix`: ``(A, kh * kw * B)`` back to a view of shape ``(A, B, kh, kw)``."""
    a, b, kh, kw = shape
    return Wm.reshape(a, kh, kw, b).transpose(0, 3, 1, 2)


#: Largest patch matrix, in bytes, that one chunk of the batch may build on the CPU (see
#: :func:`batch_chunks`).
CHUNK_BYTES = 32 * 2**20


def batch_chunks(x: Any, patch_entries_per_image: int) -> list[slice]:
    """Slices of the batch axis of ``x`` for the convolutions to work through one at a time.

    On the CPU each chunk's patch matrix (``patch_entries_per_image`` values per image) stays within
    :data:`CHUNK_BYTES`; on the GPU the whole batch is one chunk.

    Why chunks: a patch matrix is ``kh * kw / (sh * sw)`` times larger than the layer's input -- 80 MB
    for a batch of 256 in a DCGAN's 5x5, stride-2, 64 -> 128 channel convolution -- and memory blocks
    that large are fresh pages from the operating system on every allocation (glibc's allocator
    recycles blocks of up to 32 MB), which it must map and zero: measured at a fifth of a training
    step at batch 256. Chunks of at most 32 MB are recycled. Smaller chunks would stay in the CPU's
    caches, but they make the matrix products less efficient on two threads, which costs more.
    """
    n = x.shape[0]
    if get_array_module(x) is not np:
        return [slice(0, n)]
    per_chunk = max(1, CHUNK_BYTES // max(1, patch_entries_per_image * x.dtype.itemsize))
    return [slice(lo, min(lo + per_chunk, n)) for lo in range(0, n, per_chunk)]


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
    and optionally ``b`` (out,), with fans ``in * kh * kw`` and ``out * kh * kw``."""
    kh, kw = layer.kernel_size
    channels = (layer.out_channels, layer.in_channels)
    shape = (*(channels if layout == "out_in" else channels[::-1]), kh, kw)
    fans = (layer.in_channels * kh * kw, layer.out_channels * kh * kw)
    layer.add_param("W", make_param(weight_init or glorot_uniform(), shape, rng, *fans, dtype))
    if bias:
        layer.add_param(
            "b", make_param(bias_init or zeros(), (layer.out_channels,), rng, *fans, dtype)
        )


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
        Source of the initial weights (always drawn on the CPU).
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

    The batch is processed in chunks of images (:func:`batch_chunks`), each with its own patch
    matrix: every row of ``X`` and ``Y`` belongs to one image, so the products split by rows and
    ``dW`` is the sum of the chunks' :math:`G^\top X`. The cache is the input ``x`` itself (kept, not
    copied; it must not be modified before ``backward``), from which ``backward`` rebuilds each
    chunk's ``X`` for ``dW``: cheaper than keeping a patch matrix ``kh kw / (sh sw)`` times the size of
    ``x``. The cache also holds the padding and the output shape, which ``dy`` must have. See
    ``docs/conv_transpose_adjoint.md`` for the input gradient as a transposed convolution.
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

    def forward(self, x: Any, training: bool = True) -> tuple[Any, Any]:
        self.check_input(x, ("N", self.in_channels, "*", "*"))
        xp = get_array_module(x)
        n, c, h, w = x.shape
        pad = self.padding_for((h, w))
        (kh, kw), stride = self.kernel_size, self.stride
        oh = conv_output_size(h, kh, stride[0], pad[0], pad[1])
        ow = conv_output_size(w, kw, stride[1], pad[2], pad[3])
        Wm_t = weight_matrix(self.params["W"].astype(x.dtype, copy=False)).T
        y = xp.empty((n, self.out_channels, oh, ow), dtype=x.dtype)
        for chunk in batch_chunks(x, oh * ow * kh * kw * c):
            rows = kernels.im2col(x[chunk], kh, kw, stride, pad) @ Wm_t
            if "b" in self.params:
                rows += self.params["b"].astype(x.dtype, copy=False)
            y[chunk] = rows.reshape(-1, oh, ow, self.out_channels).transpose(0, 3, 1, 2)
        return y, (x, pad, y.shape)

    def backward(self, dy: Any, cache: Any, param_grads: bool = True) -> Any:
        x, pad, y_shape = cache
        self.check_dy(dy, y_shape)
        xp = get_array_module(dy)
        W = self.params["W"]
        (kh, kw), stride = self.kernel_size, self.stride
        Wm = weight_matrix(W.astype(dy.dtype, copy=False))
        dx = xp.empty(x.shape, dtype=dy.dtype)
        for chunk in batch_chunks(x, dy.shape[2] * dy.shape[3] * Wm.shape[1]):
            dy_rows = pixel_rows(dy[chunk])
            if param_grads:
                cols = kernels.im2col(x[chunk], kh, kw, stride, pad)
                self.grads["W"] += weight_from_matrix(transposed_product(dy_rows, cols), W.shape)
                if "b" in self.grads:
                    self.grads["b"] += dy_rows.sum(axis=0)
            dx[chunk] = kernels.col2im(dy_rows @ Wm, dx[chunk].shape, kh, kw, stride, pad)
        return dx

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding!r}, bias={'b' in self.params}"
        )
