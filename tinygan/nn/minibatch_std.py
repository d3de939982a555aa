r"""Minibatch standard deviation: the discriminator sees how varied its batch is.

A discriminator that judges one sample at a time cannot see that a generator gives the *same*
sample every time, only that each sample looks real. Karras, Aila, Laine and Lehtinen
("Progressive Growing of GANs for Improved Quality, Stability, and Variation", ICLR 2018,
arXiv 1710.10196, Section 3) give it one number about the whole batch: the standard deviation of
every feature over the batch, averaged over the features, appended to every sample as one more
feature (one more constant channel for images). A collapsed batch has a small spread, a real one
does not, and the discriminator can tell them apart by that feature alone.

Forward. Write the input as :math:`x \in \mathbb R^{N \times F}`, one row per sample (for an
(N, C, H, W) batch every :math:`(c, h, w)` is a feature, :math:`F = CHW`). Then

.. math::
    \mu_f = \frac1N \sum_n x_{nf}, \quad c_{nf} = x_{nf} - \mu_f, \quad
    v_f = \frac1N \sum_n c_{nf}^2, \quad s_f = \sqrt{v_f + \epsilon}, \quad
    m = \frac1F \sum_f s_f,

and the output is :math:`x` with :math:`m` appended: ``y = [x, m]``, (N, F + 1), or for images
(N, C + 1, H, W) with the new channel equal to :math:`m` everywhere. As in ProGAN the variance is
the biased one (divided by :math:`N`) and :math:`\epsilon = 10^{-8}` keeps the square root
differentiable where a feature does not vary.

Backward. The copies of :math:`x` pass their gradient straight through. The extra feature is the
one number :math:`m`, copied to every sample (and every pixel), so its gradient is the sum over all
copies, :math:`g = \sum \delta_m`. Since the deviations sum to zero, :math:`\sum_{n'} c_{n'f} = 0`,

.. math::
    \frac{\partial v_f}{\partial x_{nf}} = \frac2N \sum_{n'} c_{n'f}
    \Big([n' = n] - \frac1N\Big) = \frac{2 c_{nf}}{N}, \qquad
    \frac{\partial m}{\partial x_{nf}} = \frac1F \frac{1}{2 s_f} \frac{2 c_{nf}}{N}
    = \frac{c_{nf}}{N F s_f},

and so

.. math:: \frac{\partial L}{\partial x_{nf}} = \delta_{nf} + g\, \frac{c_{nf}}{N F s_f}.

The batch is coupled: :math:`g` sums the gradients of *every* sample's copy of :math:`m`, so what
sample :math:`n` receives depends on the other samples' upstream gradients, and its share is its
own deviation from the batch mean. The shares sum to zero over the batch (moving every sample by
the same amount leaves the spread unchanged). Because of this coupling a discriminator holding
this layer must see a real and a fake batch in separate passes (:attr:`MinibatchStd.mixes_batch`):
joined, each half's statistic would include the other half.
"""

from __future__ import annotations

import numpy as np

from tinygan.backend import Array, get_array_module
from tinygan.nn.layer import Cache, Layer, has_kind, number_in
from tinygan.overrides import overridable


@overridable
def minibatch_std_forward(x: Array, eps: float) -> tuple[Array, Array]:
    """Append the batch's mean feature standard deviation to ``x`` (N, F) or (N, C, H, W).

    The statistic is computed in float32 at least: float16 would round ``eps = 1e-8`` to zero and
    lose the small deviations of a nearly collapsed batch.

    Returns
    -------
    y : array, x's dtype
        (N, F + 1), or (N, C + 1, H, W) with channel ``C`` constant: ``x`` followed by ``m``.
    dm_dx : array, x's shape, float32 or x's dtype if wider
        ``c / (N * F * s)``, the derivative of ``m`` with respect to every entry of ``x``: all the
        backward pass needs.
    """
    xp = get_array_module(x)
    work = x.astype(np.promote_types(x.dtype, np.float32), copy=False)
    centered = work - work.mean(axis=0)
    std = xp.sqrt((centered * centered).mean(axis=0) + eps)  # (F,) or (C, H, W)
    extra = (x.shape[0], 1, *x.shape[2:])
    m = xp.broadcast_to(std.mean().astype(x.dtype), extra)
    return xp.concatenate([x, m], axis=1), centered / (x.shape[0] * std.size * std)


@overridable
def minibatch_std_backward(dy: Array, dm_dx: Array) -> Array:
    """Gradient of :func:`minibatch_std_forward`: ``dx = dy[:, :C] + g * dm_dx``, where ``C`` is
    the input's feature (channel) count and ``g = dy[:, C:].sum()`` the gradient of ``m``, summed
    over its copies in every sample. Returns dy's dtype and ``dm_dx``'s shape."""
    channels = dm_dx.shape[1]
    g = dy[:, channels:].sum(dtype=dm_dx.dtype)
    return dy[:, :channels] + (g * dm_dx).astype(dy.dtype, copy=False)


class MinibatchStd(Layer):
    r"""Append the batch's average feature standard deviation as one more feature or channel.

    Parameters
    ----------
    eps : float
        Added to each variance before the square root (:math:`10^{-8}` as in ProGAN).

    Shapes
    ------
    x: (N, F) -> y: (N, F + 1); x: (N, C, H, W) -> y: (N, C + 1, H, W). No parameters.

    Notes
    -----
    The module's docstring derives the forward and backward passes; the cache is
    :math:`\partial m / \partial x`, an array of the input's shape, so the backward pass is one sum
    and one multiply-add.

    The layer behaves the same in training and in evaluation mode: it keeps no running statistic,
    and a sample's output always depends on the batch it came with (ProGAN's layer does the same).

    A batch of one has no spread: every :math:`c_{nf} = 0`, the appended feature is
    :math:`\sqrt\epsilon` (:math:`10^{-4}` by default) and no gradient flows through it, so the
    layer passes a single sample through with a constant feature appended.

    ProGAN's released code computes the statistic over groups of at most 4 samples, one value per
    group; this layer uses the whole batch, as the paper's text describes it.
    """

    mixes_batch = True  # the appended statistic makes every output depend on the whole batch

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = number_in(eps, "(0, inf)", "eps", "MinibatchStd")

    def forward(self, x: Array, training: bool = True) -> tuple[Array, Cache]:
        self.check_input(x, ("N", "F"), ("N", "C", "H", "W"))
        return minibatch_std_forward(x, self.eps)

    def backward(
        self, dy: Array, cache: Cache, param_grads: bool = True, input_grad: bool = True
    ) -> Array | None:
        if not (has_kind(cache, "f") and cache.ndim in (2, 4)):
            raise self.foreign_cache(
                cache, "dm/dx, a float array of the input's shape, (N, F) or (N, C, H, W)"
            )
        n, channels, *spatial = cache.shape
        self.check_dy(dy, (n, channels + 1, *spatial))
        if not input_grad:  # without parameters there is nothing else to compute
            return None
        return minibatch_std_backward(dy, cache)

    def extra_repr(self) -> str:
        return f"eps={self.eps}"
