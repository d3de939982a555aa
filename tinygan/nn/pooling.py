"""Spatial resampling layers on NCHW images: max pooling down, nearest-neighbour upsampling up."""

from __future__ import annotations

from tinygan.backend import Array, get_array_module
from tinygan.nn.layer import Cache, Layer, has_kind, int_pair, is_shape
from tinygan.nn.padding import window_offsets
from tinygan.overrides import overridable


@overridable
def maxpool_forward(
    x: Array, size: tuple[int, int], stride: tuple[int, int]
) -> tuple[Array, Array]:
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
        ``Ho = (H - kh) // sh + 1``, ``Wo = (W - kw) // sw + 1``.
    argmax : integer array, shape (N, C, Ho, Wo)
        Row-major index ``i * kw + j`` of the maximum inside each window; on ties the *first*
        maximum (``numpy.argmax``'s rule).
    """
    xp = get_array_module(x)
    (kh, kw), (sh, sw) = size, stride
    out_hw = ((x.shape[2] - kh) // sh + 1, (x.shape[3] - kw) // sw + 1)
    # windows[k] holds offset k of every window, so the reductions run over axis 0.
    windows = xp.stack(
        [x[:, :, rows, cols] for _, rows, cols in window_offsets(size, stride, out_hw)]
    )
    return windows.max(axis=0), windows.argmax(axis=0)


@overridable
def maxpool_backward(
    dy: Array,
    argmax: Array,
    x_shape: tuple[int, ...],
    size: tuple[int, int],
    stride: tuple[int, int],
) -> Array:
    """Route each window's upstream gradient ``dy`` (N, C, Ho, Wo) to its maximum.

    Returns ``dx`` of shape ``x_shape`` and dy's dtype: zero except at the maxima, where an entry
    that is the maximum of several overlapping windows receives the sum of their gradients.
    """
    xp = get_array_module(dy)
    dx = xp.zeros(x_shape, dtype=dy.dtype)
    for k, rows, cols in window_offsets(size, stride, dy.shape[2:]):
        # One offset never visits an entry twice, so this += has no repeated indices; overlapping
        # windows reach the same entry through *different* offsets, and the loop sums them.
        dx[:, :, rows, cols] += dy * (argmax == k)
    return dx


def maxpool_select(
    v: Array, argmax: Array, size: tuple[int, int], stride: tuple[int, int]
) -> Array:
    """Each window's entry of ``v`` (N, C, H, W) at the window's maximum ``argmax`` (N, C, Ho, Wo):
    max pooling linearised at a point whose maxima are ``argmax``, and the adjoint of
    :func:`maxpool_backward`."""
    xp = get_array_module(v)
    y = xp.zeros(argmax.shape, dtype=v.dtype)
    for k, rows, cols in window_offsets(size, stride, argmax.shape[2:]):
        y += v[:, :, rows, cols] * (argmax == k)
    return y


@overridable
def upsample_nearest(x: Array, scale: tuple[int, int]) -> Array:
    """Every pixel of ``x`` (N, C, H, W) as an ``sh x sw`` block: ``y[n, c, u, v] = x[n, c, u // sh,
    v // sw]``, shape (N, C, H * sh, W * sw)."""
    xp = get_array_module(x)
    n, c, h, w = x.shape
    sh, sw = scale
    blocks = xp.broadcast_to(x[:, :, :, None, :, None], (n, c, h, sh, w, sw))
    return blocks.reshape(n, c, h * sh, w * sw)


@overridable
def upsample_nearest_backward(dy: Array, scale: tuple[int, int]) -> Array:
    """Adjoint of :func:`upsample_nearest`: the sum of ``dy`` over each ``sh x sw`` block."""
    n, c, hs, ws = dy.shape
    sh, sw = scale
    return dy.reshape(n, c, hs // sh, sh, ws // sw, sw).sum(axis=(3, 5))


class MaxPool2D(Layer):
    r"""Max pooling over ``kh x kw`` windows with ``'valid'`` padding.

    Parameters
    ----------
    size : int or (int, int)
        Window ``(kh, kw)``.
    stride : int or (int, int), optional
        Step ``(sh, sw)`` between windows; defaults to ``size`` (non-overlapping windows, as in Keras
        and PyTorch). ``stride < size`` gives overlapping windows.

    Shapes
    ------
    x: (N, C, H, W) -> y: (N, C, Ho, Wo) with ``Ho = (H - kh) // sh + 1`` and
    ``Wo = (W - kw) // sw + 1``; trailing rows and columns that no whole window covers are ignored
    (and get zero gradient).

    Notes
    -----
    Forward: :math:`y_{pq} = \max_{0 \le i < k_h,\, 0 \le j < k_w} x_{p s_h + i,\, q s_w + j}`
    (per sample and channel).

    Backward: away from ties each output equals exactly one input entry, the window's maximum
    :math:`a(p, q)`, and stays equal to it under a small perturbation, so
    :math:`\partial y_{pq}/\partial x_{uv} = [\,(u, v) = a(p, q)\,]`. Summing over the outputs,

    .. math:: \frac{\partial L}{\partial x_{uv}} = \sum_{(p, q):\ a(p, q) = (u, v)} \delta_{pq},

    i.e. each window's gradient goes to its maximum, and an entry that is the maximum of several
    overlapping windows collects the sum of their gradients. At a tie the maximum is not
    differentiable; the layer takes the subgradient that routes the gradient to the *first* maximal
    entry of the window in row-major order (``numpy.argmax``'s rule, and PyTorch's on the CPU). The
    cache is these positions (``argmax``) and the input shape.

    Second pass (:meth:`Layer.second_pass`): with the maxima held (away from ties a small
    perturbation keeps them), the backward pass is linear in :math:`\delta` and reads no input
    value, so a vector :math:`v` on :math:`dx` goes to :math:`dy` as :math:`v` read at each window's
    maximum, :math:`v_{a(p, q)}` (:func:`maxpool_select`), and nothing goes to :math:`x`.
    """

    def __init__(
        self, size: int | tuple[int, int] = 2, stride: int | tuple[int, int] | None = None
    ) -> None:
        super().__init__()
        self.size = int_pair(size, "size", "MaxPool2D", minimum=1)
        self.stride = int_pair(size if stride is None else stride, "stride", "MaxPool2D", minimum=1)

    def forward(self, x: Array, training: bool = True) -> tuple[Array, Cache]:
        self.check_input(x, ("N", "*", "*", "*"))
        kh, kw = self.size
        if x.shape[2] < kh or x.shape[3] < kw:
            raise ValueError(
                f"MaxPool2D with a {kh}x{kw} window expects input of shape (N, C, H, W) with "
                f"H >= {kh} and W >= {kw}, got {tuple(x.shape)}"
            )
        y, argmax = maxpool_forward(x, self.size, self.stride)
        return y, (argmax, tuple(x.shape))

    def backward(
        self, dy: Array, cache: Cache, param_grads: bool = True, input_grad: bool = True
    ) -> Array | None:
        argmax, x_shape = self.cached_maxima(cache)
        self.check_dy(dy, argmax.shape)
        if not input_grad:  # without parameters there is nothing else to compute
            return None
        return maxpool_backward(dy, argmax, x_shape, self.size, self.stride)

    def second_pass(
        self, v: Array, cache: Cache, kept: Cache, input_grad: bool = True
    ) -> tuple[Array, Array | None]:
        argmax, x_shape = self.cached_maxima(cache)
        self.check_second_pass(v, kept, x_shape, argmax.shape)
        return maxpool_select(v, argmax, self.size, self.stride), None

    def cached_maxima(self, cache: Cache) -> tuple[Array, tuple[int, ...]]:
        """``(argmax, input shape)`` from ``cache``, once checked to be that pair."""
        if not (
            isinstance(cache, tuple)
            and len(cache) == 2
            and has_kind(cache[0], "i")
            and is_shape(cache[1])
        ):
            raise self.foreign_cache(cache, "the tuple (argmax, input shape)")
        return cache

    def extra_repr(self) -> str:
        return f"size={self.size}, stride={self.stride}"


class UpSampling2D(Layer):
    r"""Nearest-neighbour upsampling: each pixel becomes an ``sh x sw`` block of copies.

    Parameters
    ----------
    scale : int or (int, int)
        Factors ``(sh, sw)`` for height and width.

    Shapes
    ------
    x: (N, C, H, W) -> y: (N, C, H * sh, W * sw).

    Notes
    -----
    Forward: :math:`y_{uv} = x_{\lfloor u/s_h \rfloor, \lfloor v/s_w \rfloor}`.

    Backward: :math:`\partial y_{uv}/\partial x_{hw} = 1` exactly when :math:`(u, v)` lies in the
    block of :math:`(h, w)`, so

    .. math:: \frac{\partial L}{\partial x_{hw}} = \sum_{a < s_h,\ b < s_w} \delta_{h s_h + a,\, w s_w + b},

    the sum of the upstream gradient over each block. The cache is only the output shape, which
    ``dy`` must have.
    """

    def __init__(self, scale: int | tuple[int, int] = 2) -> None:
        super().__init__()
        self.scale = int_pair(scale, "scale", "UpSampling2D", minimum=1)

    def forward(self, x: Array, training: bool = True) -> tuple[Array, Cache]:
        self.check_input(x, ("N", "*", "*", "*"))
        y = upsample_nearest(x, self.scale)
        return y, y.shape

    def backward(
        self, dy: Array, cache: Cache, param_grads: bool = True, input_grad: bool = True
    ) -> Array | None:
        if not (is_shape(cache) and len(cache) == 4):
            raise self.foreign_cache(cache, "its output's shape, a tuple of 4 ints")
        self.check_dy(dy, cache)
        if not input_grad:  # without parameters there is nothing else to compute
            return None
        return upsample_nearest_backward(dy, self.scale)

    def extra_repr(self) -> str:
        return f"scale={self.scale}"
