"""2-D transposed convolution ("deconvolution"): the adjoint of :class:`~tinygan.nn.Conv2D`.

Its forward pass is a convolution's backward-to-input and its backward-to-input is a convolution, so
it runs on the same :func:`~tinygan.nn.conv.im2col`, :func:`~tinygan.nn.conv.col2im` and GEMMs as
:class:`~tinygan.nn.Conv2D`, with the roles swapped. The derivation is in
``docs/conv_transpose_adjoint.md``. Its functions take the arguments of their convolution
counterparts, written out again so that this file reads on its own.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygan.backend import Array
from tinygan.init import Initializer
from tinygan.nn.conv import (
    add_kernel_params,
    col2im,
    conv_layer_backward,
    from_pixel_rows,
    im2col,
    pixel_rows,
    setup_convolution,
    weight_from_matrix,
    weight_matrix,
)
from tinygan.nn.layer import Cache, Layer, int_pair
from tinygan.nn.padding import Padding, conv_transpose_geometry
from tinygan.overrides import overridable


@overridable
def conv_transpose2d_forward(
    x: Array,
    W: Array,
    b: Array | None,
    stride: tuple[int, int],
    padding: tuple[int, int, int, int],
    out_hw: tuple[int, int],
) -> Array:
    """Transposed convolution of ``x`` (N, I, H, W) with ``W`` (I, O, kh, kw), plus ``b`` (O,) or
    ``None``: the (N, O, OH, OW) output of size ``out_hw``, whose ``padding`` was cropped.

    One GEMM, ``C = pixel_rows(x) @ Wm`` (a patch row per input pixel), then ``col2im(C)`` adds the
    patches onto the output.
    """
    n = x.shape[0]
    _, o, kh, kw = W.shape
    cols = pixel_rows(x) @ weight_matrix(W)
    y = col2im(cols, (n, o, *out_hw), kh, kw, stride, padding)
    if b is not None:
        y += b[:, None, None]
    return y


@overridable
def conv_transpose2d_backward(
    dy: Array,
    x: Array,
    W: Array,
    stride: tuple[int, int],
    padding: tuple[int, int, int, int],
    param_grads: bool = True,
    input_grad: bool = True,
) -> tuple[Array | None, Array | None, Array | None]:
    """Gradients ``(dx, dW, db)`` of :func:`conv_transpose2d_forward` given ``dy`` (N, O, OH, OW).

    With ``G = im2col(dy)`` and ``X = pixel_rows(x)``: ``dx = G @ Wm.T`` (a convolution of ``dy``),
    ``dW = X.T @ G`` (back in W's layout) and ``db = dy.sum(axis=(0, 2, 3))``. Without
    ``param_grads`` ``dW`` and ``db`` are ``None`` and not computed; without ``input_grad``
    ``dx`` is.
    """
    n, _, h, w = x.shape
    kh, kw = W.shape[2:]
    G = im2col(dy, kh, kw, stride, padding)
    dx = from_pixel_rows(G @ weight_matrix(W).T, n, h, w) if input_grad else None
    if not param_grads:
        return dx, None, None
    dW = weight_from_matrix(pixel_rows(x).T @ G, W.shape)
    return dx, dW, dy.sum(axis=(0, 2, 3))


class ConvTranspose2D(Layer):
    r"""2-D transposed convolution over NCHW images (upsampling by ``stride``).

    Parameters
    ----------
    in_channels, out_channels : int
        ``I`` and ``O``.
    kernel_size : int or (int, int)
        ``(kh, kw)``.
    stride : int or (int, int)
        ``(sh, sw)``: the upsampling factor.
    padding : int, (int, int), "same" or "valid"
        An int ``p`` (or ``(ph, pw)``) has PyTorch's meaning: ``p`` rows are cropped from each side of
        the full output, ``OH = (H - 1) * sh - 2 * ph + kh + oph``. ``"valid"`` is 0:
        ``OH = (H - 1) * sh + kh + oph``. ``"same"`` (Keras' ``Conv2DTranspose``): ``OH = H * sh`` and
        ``OW = W * sw`` exactly, cropping ``max(kh - sh, 0)`` rows, the odd one at the bottom, as
        TensorFlow does (with ``kh < sh`` the last ``sh - kh`` rows are only bias).
    output_padding : int or (int, int)
        Extra rows/columns at the bottom/right, ``0 <= oph < sh``: picks one of the ``sh`` input sizes
        that a stride-``sh`` convolution maps to the same output size. Must be 0 with ``"same"``.
    bias : bool
        Whether to add a per-channel ``b``.
    weight_init, bias_init : Initializer, optional
        Defaults: Glorot uniform for ``W`` with ``fan_in = I * kh * kw`` and ``fan_out = O * kh * kw``
        (the direction this layer's forward pass runs; Keras and PyTorch compute the fans from the
        weight array as if it were a convolution's, which swaps them; Glorot is symmetric so its
        default is the same); zeros for ``b``.
    rng : numpy.random.Generator, optional
        Source of the initial weights (always drawn on the CPU); a generator seeded with 0 when
        omitted (:func:`tinygan.init.layer_rng`).
    dtype : dtype
        Parameter dtype.

    Shapes
    ------
    x: (N, I, H, W) -> y: (N, O, OH, OW); ``params["W"]``: (I, O, kh, kw) (PyTorch's layout);
    ``params["b"]``: (O,). The output has the input's dtype.

    Notes
    -----
    Every input pixel stamps a scaled copy of the kernel onto the output, ``stride`` apart; overlaps
    add up. With ``(top, left)`` the cropped rows and columns,

    .. math:: y_{nouv} = b_o + \sum_{i,p,q} x_{nipq}\, W_{io,\,u + top - p s_h,\,v + left - q s_w}

    (terms with a kernel index outside the kernel are 0). This is the adjoint of the convolution with
    the kernel ``W`` read as a ``Conv2D`` weight of ``O`` input and ``I`` output channels, same stride,
    padding ``(top, bottom, left, right)``. In matrices, with :math:`M` = ``weight_matrix(W)`` of shape
    ``(I, kh kw O)`` and ``X`` the input as pixel rows ``(N H W, I)``:

    * forward: :math:`C = X M` (one patch row per input pixel), then ``y = col2im(C)`` plus ``b``;
      the same two steps as ``Conv2D``'s input gradient.

    Backward, with ``dy = dL/dy``: the adjoint of col2im is im2col, so :math:`G = \mathrm{im2col}(dy)`
    (``(N H W, kh kw O)``) is :math:`\partial L/\partial C`, and as for any product :math:`C = X M`,

    * :math:`\partial L/\partial X = G M^\top`: ``dx`` is a *convolution* of ``dy`` with ``W``
      (``Conv2D``'s forward);
    * :math:`\partial L/\partial M = X^\top G`, reshaped back to ``W``'s layout;
    * :math:`\partial L/\partial b_o = \sum_{n,u,v} dy_{nouv}`.

    :func:`conv_transpose2d_forward` and :func:`conv_transpose2d_backward` compute these. The cache
    is the input ``x`` (kept, not copied; ``X`` is rebuilt from it for ``dW``), the padding and the
    output shape, which ``dy`` must have.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: Padding = 0,
        output_padding: int | tuple[int, int] = 0,
        bias: bool = True,
        weight_init: Initializer | None = None,
        bias_init: Initializer | None = None,
        rng: np.random.Generator | None = None,
        dtype: Any = np.float32,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        setup_convolution(self, in_channels, out_channels, kernel_size, stride, padding)
        self.output_padding = int_pair(output_padding, "output_padding", name, minimum=0)
        if any(op >= s for op, s in zip(self.output_padding, self.stride, strict=True)):
            raise ValueError(
                f"{name}: output_padding must be smaller than stride {self.stride}, "
                f"got {self.output_padding}"
            )
        if self.padding == "same" and self.output_padding != (0, 0):
            raise ValueError(
                f"{name}: padding='same' fixes the output size to input x stride; "
                f"output_padding must be 0, got {self.output_padding}"
            )
        add_kernel_params(self, "in_out", bias, weight_init, bias_init, rng, dtype)

    def output_geometry(
        self, size: tuple[int, int]
    ) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
        """Output ``(OH, OW)`` for an input of spatial size ``(H, W)``, and the cropped
        ``(top, bottom, left, right)``.

        Raises ``ValueError`` when the padding leaves no output.
        """
        out, pad = conv_transpose_geometry(
            self.padding, size, self.kernel_size, self.stride, self.output_padding
        )
        if min(out) < 1:
            raise ValueError(
                f"{type(self).__name__}: padding {self.padding} crops everything from an input of "
                f"(H, W) = {tuple(size)}: output size would be {out}"
            )
        return out, pad

    def forward(self, x: Array, training: bool = True) -> tuple[Array, Cache]:
        self.check_input(x, ("N", self.in_channels, "*", "*"))
        out_hw, pad = self.output_geometry(x.shape[2:])
        W, b = self.param_as("W", x.dtype), self.param_as("b", x.dtype)
        y = conv_transpose2d_forward(x, W, b, self.stride, pad, out_hw)
        return y, (x, pad, y.shape)

    def backward(
        self, dy: Array, cache: Cache, param_grads: bool = True, input_grad: bool = True
    ) -> Array | None:
        return conv_layer_backward(
            self, conv_transpose2d_backward, dy, cache, param_grads, input_grad
        )

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding!r}, "
            f"output_padding={self.output_padding}, bias={'b' in self.params}"
        )
