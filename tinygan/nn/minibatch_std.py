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

Second pass (:meth:`tinygan.nn.layer.Layer.second_pass`). The backward pass
:math:`dx = B(\delta, x) = \delta_x + g\, \partial m / \partial x` (with :math:`\delta_x` the
upstream gradient of the copies of :math:`x`) is differentiated along a vector :math:`v` on
:math:`dx`. Its scalar :math:`\langle v, \delta_x \rangle + g\, \phi` with
:math:`\phi = \sum_{nf} v_{nf} c_{nf} / (N F s_f)` gives:

* on :math:`\delta`: :math:`v` for the copies of :math:`x` and :math:`\phi` for every copy of
  :math:`m` (each adds into :math:`g`);
* on :math:`x`: :math:`g\, \partial \phi / \partial x`. With :math:`r_{nf} = c_{nf} / s_f`,
  :math:`\partial c_{nf} / \partial x_{kf} = [n = k] - 1/N` and
  :math:`\partial s_f / \partial x_{kf} = c_{kf} / (N s_f)`, one feature at a time:

.. math::
    \frac{\partial \phi}{\partial x_{kf}} = \frac{1}{N F s_f}
    \Big(v_{kf} - \bar v_f - \frac{r_{kf}}{N} \sum_n v_{nf} r_{nf}\Big),

the component of :math:`v` that neither shifts the feature (the mean :math:`\bar v_f` is removed)
nor scales it (the part along :math:`r` is removed), over :math:`N F s_f`. The cache keeps the
deviations :math:`s_f` beside :math:`\partial m / \partial x = r / (N F)` for this.
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
    std : array, x's shape without the batch axis, dm_dx's dtype
        Every feature's deviation ``s``, which the second pass needs besides.
    """
    xp = get_array_module(x)
    work = x.astype(np.promote_types(x.dtype, np.float32), copy=False)
    centered = work - work.mean(axis=0)
    std = xp.sqrt((centered * centered).mean(axis=0) + eps)  # (F,) or (C, H, W)
    extra = (x.shape[0], 1, *x.shape[2:])
    m = xp.broadcast_to(std.mean().astype(x.dtype), extra)
    return xp.concatenate([x, m], axis=1), centered / (x.shape[0] * std.size * std), std


@overridable
def minibatch_std_backward(dy: Array, dm_dx: Array) -> Array:
    """Gradient of :func:`minibatch_std_forward`: ``dx = dy[:, :C] + g * dm_dx``, where ``C`` is
    the input's feature (channel) count and ``g = dy[:, C:].sum()`` the gradient of ``m``, summed
    over its copies in every sample. Returns dy's dtype and ``dm_dx``'s shape."""
    channels = dm_dx.shape[1]
    g = dy[:, channels:].sum(dtype=dm_dx.dtype)
    return dy[:, :channels] + (g * dm_dx).astype(dy.dtype, copy=False)


def minibatch_std_second_pass(v: Array, dy: Array, dm_dx: Array, std: Array) -> tuple[Array, Array]:
    """The second pass of :func:`minibatch_std_backward` along ``v`` (x's shape); the module's
    docstring derives it.

    Returns ``v_dy`` (dy's shape: ``v``, then ``phi = <v, dm/dx>`` on every copy of ``m``) and
    ``v_x = g * dphi/dx`` (x's shape), both in v's dtype, with ``g = dy[:, C:].sum()``.
    """
    xp = get_array_module(v)
    n, channels = dm_dx.shape[:2]
    work = v.astype(dm_dx.dtype, copy=False)
    phi = (work * dm_dx).sum()
    extra = xp.broadcast_to(phi.astype(v.dtype), (n, dy.shape[1] - channels, *dy.shape[2:]))
    v_dy = xp.concatenate([v, extra], axis=1)
    r = dm_dx * (n * std.size)  # c / s
    g = dy[:, channels:].sum(dtype=dm_dx.dtype)
    along_r = (work * r).sum(axis=0) / n
    dphi_dx = (work - work.mean(axis=0) - r * along_r) / (n * std.size * std)
    return v_dy, (g * dphi_dx).astype(v.dtype, copy=False)


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
    The module's docstring derives the forward and backward passes and the second pass; the cache
    is :math:`\partial m / \partial x`, an array of the input's shape, so the backward pass is one
    sum and one multiply-add, and the features' deviations :math:`s_f` for the second pass.

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
        y, dm_dx, std = minibatch_std_forward(x, self.eps)
        return y, (dm_dx, std)

    def backward(
        self, dy: Array, cache: Cache, param_grads: bool = True, input_grad: bool = True
    ) -> Array | None:
        dm_dx, _ = self.cached_derivative(cache)
        self.check_dy(dy, self.output_shape(dm_dx))
        if not input_grad:  # without parameters there is nothing else to compute
            return None
        return minibatch_std_backward(dy, dm_dx)

    def second_pass(
        self, v: Array, cache: Cache, kept: Cache, input_grad: bool = True
    ) -> tuple[Array, Array | None]:
        dm_dx, std = self.cached_derivative(cache)
        self.check_second_pass(v, kept, dm_dx.shape, self.output_shape(dm_dx))
        v_dy, v_x = minibatch_std_second_pass(v, kept, dm_dx, std)
        return v_dy, (v_x if input_grad else None)

    def cached_derivative(self, cache: Cache) -> tuple[Array, Array]:
        """``(dm/dx, s)`` from ``cache``, once checked to be that pair."""
        if not (
            isinstance(cache, tuple)
            and len(cache) == 2
            and has_kind(cache[0], "f")
            and cache[0].ndim in (2, 4)
            and has_kind(cache[1], "f")
            and cache[1].shape == cache[0].shape[1:]
        ):
            raise self.foreign_cache(
                cache,
                "the tuple (dm/dx, s): dm/dx a float array of the input's shape, (N, F) or "
                "(N, C, H, W), s of its shape without the batch axis",
            )
        return cache

    @staticmethod
    def output_shape(dm_dx: Array) -> tuple[int, ...]:
        """The forward output's shape, from the input's (``dm_dx``'s): one more feature."""
        n, channels, *spatial = dm_dx.shape
        return (n, channels + 1, *spatial)

    def extra_repr(self) -> str:
        return f"eps={self.eps}"
