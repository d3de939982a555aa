"""Sliding-window geometry shared by the convolutions and the pooling layer: output sizes, padding,
and the offsets of a window.

Along one axis a window of length ``k`` stepping by ``s`` over an input of length ``n`` padded with
``before`` and ``after`` zeros has ``(n + before + after - k) // s + 1`` positions
(:func:`conv_output_size`). In 2-D the padding is always resolved to ``(top, bottom, left, right)``,
the form :func:`tinygan.nn.conv.im2col` and :func:`tinygan.nn.conv.col2im` take.

Two meanings of ``"same"`` padding, both Keras/TensorFlow's:

* **convolution**: output length ``ceil(n / s)``, with total padding
  ``max((ceil(n / s) - 1) * s + k - n, 0)`` split ``total // 2`` before and the rest (the odd one) after;
* **transposed convolution**: output length ``n * s`` exactly. It is the adjoint of a ``"same"``
  convolution on an input of length ``n * s``, so it crops what that convolution pads.
"""

from __future__ import annotations

from collections.abc import Iterator

from tinygan.nn.layer import int_pair

#: A padding argument: an int, a ``(height, width)`` pair, ``"same"`` or ``"valid"``.
Padding = int | tuple[int, int] | str
PADDING_MODES = ("same", "valid")


def conv_output_size(size: int, kernel: int, stride: int, before: int, after: int) -> int:
    """Number of positions of a ``kernel``-wide window stepping by ``stride`` along an axis of length
    ``size`` padded with ``before`` and ``after`` zeros: ``(size + before + after - kernel) // stride + 1``.

    Positions that a whole window does not reach (at the end, when ``stride`` does not divide the
    remainder) are dropped, as in every framework. Not positive when the kernel is longer than the
    padded axis; callers check.
    """
    return (size + before + after - kernel) // stride + 1


def window_offsets(
    size: tuple[int, int], stride: tuple[int, int], out_hw: tuple[int, int]
) -> Iterator[tuple[int, slice, slice]]:
    """Yield ``(k, rows, cols)`` for every offset ``(i, j)`` inside a ``kh x kw`` window.

    ``k = i * kw + j`` is the offset's row-major index in the window, and indexing an image's two
    spatial axes with ``rows, cols`` gives the ``(Ho, Wo)`` grid of the entries at that offset in
    every window: entry ``(p, q)`` of ``x[:, :, rows, cols]`` is ``x[:, :, p * sh + i, q * sw + j]``.
    Looping over the ``kh * kw`` offsets instead of the
    ``Ho * Wo`` windows keeps every step a whole-array operation.
    """
    (kh, kw), (sh, sw), (ho, wo) = size, stride, out_hw
    for i in range(kh):
        for j in range(kw):
            yield i * kw + j, slice(i, i + sh * ho, sh), slice(j, j + sw * wo, sw)


def parse_padding(padding: Padding, layer: str) -> str | tuple[int, int]:
    """Validate a padding argument: ``"same"``, or ``(ph, pw)`` zeros on each side (``"valid"`` is
    ``(0, 0)``).

    Raises ``ValueError`` naming ``layer`` for an unknown string, a negative or non-integer size.
    """
    if isinstance(padding, str):
        mode = padding.lower()
        if mode not in PADDING_MODES:
            raise ValueError(
                f"{layer}: padding must be an int, a pair of ints or one of {PADDING_MODES}, "
                f"got {padding!r}"
            )
        return "same" if mode == "same" else (0, 0)
    return int_pair(padding, "padding", layer, minimum=0)


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """``(before, after)`` of a ``"same"`` convolution: output ``ceil(size / stride)``, the odd
    padding after (TensorFlow's split)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def conv_padding(
    padding: str | tuple[int, int],
    size: tuple[int, int],
    kernel: tuple[int, int],
    stride: tuple[int, int],
) -> tuple[int, int, int, int]:
    """Resolve a parsed padding to ``(top, bottom, left, right)`` for an input of ``size = (H, W)``."""
    if padding == "same":
        top, bottom = same_padding(size[0], kernel[0], stride[0])
        left, right = same_padding(size[1], kernel[1], stride[1])
        return top, bottom, left, right
    ph, pw = padding
    return ph, ph, pw, pw


def conv_transpose_geometry(
    padding: str | tuple[int, int],
    size: tuple[int, int],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    output_padding: tuple[int, int],
) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
    """Output size of a transposed convolution, and the padding of the convolution it is the adjoint of.

    Parameters
    ----------
    padding : "same" or (int, int)
        As returned by :func:`parse_padding`.
    size : (int, int)
        Input ``(H, W)``.
    kernel, stride, output_padding : (int, int)

    Returns
    -------
    out_size : (int, int)
        ``"same"``: ``(H * sh, W * sw)``. Integer padding ``p`` (PyTorch):
        ``(H - 1) * sh - 2 * ph + kh + oph`` and likewise for the width. May be non-positive for a large
        ``p``; the caller checks.
    conv_pad : (int, int, int, int)
        ``(top, bottom, left, right)`` such that a convolution with this kernel, stride and padding maps
        an image of ``out_size`` back to ``size``: the rows and columns the transposed convolution
        crops. Its output-padding rows lie past the last window and receive nothing.
    """
    if padding == "same":
        out = (size[0] * stride[0], size[1] * stride[1])
        return out, conv_padding("same", out, kernel, stride)
    ph, pw = padding
    out = (
        (size[0] - 1) * stride[0] - 2 * ph + kernel[0] + output_padding[0],
        (size[1] - 1) * stride[1] - 2 * pw + kernel[1] + output_padding[1],
    )
    return out, (ph, ph, pw, pw)
