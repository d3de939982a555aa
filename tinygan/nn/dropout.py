"""Inverted dropout."""

from __future__ import annotations

from typing import Any

from tinygan.backend import Array, device_of, get_array_module, rng_device
from tinygan.nn.layer import Cache, Layer, has_kind, is_shape, number_in
from tinygan.overrides import overridable


@overridable
def dropout(x: Array, rate: float, rng: Any) -> tuple[Array, Array]:
    """Inverted dropout: keep each entry of ``x`` with probability ``1 - rate``, rescaled.

    Parameters
    ----------
    x : array
        Input, any shape.
    rate : float
        Probability of dropping an entry, in ``[0, 1)``.
    rng : numpy.random.Generator or tinygan.backend.DeviceGenerator
        Source of the uniform draws ``u``, one per entry, on x's device.

    Returns
    -------
    y : array, x's shape and dtype
        ``x * mask``.
    mask : array, x's shape and dtype
        ``1 / (1 - rate)`` (rounded to the dtype) where ``u >= rate``, else 0. The backward pass is
        ``dx = dy * mask``.
    """
    xp = get_array_module(x)
    # Generators draw float32 and float64 only; a float16 input compares float32 draws.
    u = rng.random(x.shape, dtype=xp.float32 if x.dtype == xp.float16 else x.dtype)
    mask = (u >= rate).astype(x.dtype) * x.dtype.type(1 / (1 - rate))
    return x * mask, mask


class Dropout(Layer):
    r"""Inverted dropout: zero each entry with probability ``rate`` and rescale the survivors.

    Parameters
    ----------
    rate : float
        Probability of dropping an entry, in ``[0, 1)``.
    rng : numpy.random.Generator or tinygan.backend.DeviceGenerator
        Source of the masks, e.g. ``tinygan.backend.make_rng(seed)``. It is the attribute ``rng``:
        ``layer.to("gpu")`` replaces it by a device generator seeded from it, and for device inputs
        one may also assign ``layer.rng = tinygan.backend.make_rng(seed, "gpu")``. Checkpoints save
        and restore it on either device (:func:`tinygan.backend.rng_state`).

    Shapes
    ------
    Any shape; y has x's shape and dtype.

    Notes
    -----
    Training: draw :math:`u \sim U[0, 1)` per entry and let :math:`m = [u \ge r] / (1 - r)`, so
    each entry of :math:`m` is :math:`1/(1 - r)` with probability :math:`1 - r` and 0 otherwise, and
    :math:`y = m \odot x` (:func:`dropout`). Since :math:`E[m] = 1`, :math:`E[y] = x`: the expected
    activation is the same in training and in evaluation, where the layer is the identity (the
    *inverted* scheme puts the rescaling in training so inference needs none).

    Backward: for a fixed mask :math:`y` is linear in :math:`x` with diagonal Jacobian :math:`m`, so
    :math:`\partial L/\partial x = m \odot \partial L/\partial y`. The mask is the cache: the backward
    pass must use the very mask the forward pass drew.

    Second pass (:meth:`Layer.second_pass`): with the mask held, :math:`dx = m \odot dy` is linear
    in :math:`dy` and does not read :math:`x`, so a vector :math:`v` on :math:`dx` becomes
    :math:`m \odot v` on :math:`dy` and nothing on :math:`x`. A gradient penalty through dropout
    therefore differentiates the network with one mask, the one its forward pass drew.

    The uniforms are drawn directly in the input's dtype (float32 or float64), so a float32 model
    makes no float64 temporaries. Random generators do not draw float16, so for a float16 input
    they are drawn in float32.

    In evaluation mode (or with ``rate = 0``) the layer is the identity and the cache is only the
    input's shape, which ``backward`` checks ``dy`` against.
    """

    def __init__(self, rate: float, rng: Any) -> None:
        super().__init__()
        self.rate = number_in(rate, "[0, 1)", "rate", "Dropout")
        self.rng = rng

    def forward(self, x: Array, training: bool = True) -> tuple[Array, Cache]:
        self.check_input(x)
        if not training or self.rate == 0:
            return x, x.shape
        if rng_device(self.rng) != device_of(x):
            raise TypeError(
                f"Dropout's rng draws {rng_device(self.rng)} arrays but the input is a "
                f"{device_of(x)} array; give the layer a generator on the input's device, e.g. "
                f"layer.rng = tinygan.backend.make_rng(seed, {device_of(x)!r})"
            )
        return dropout(x, self.rate, self.rng)

    def backward(
        self, dy: Array, cache: Cache, param_grads: bool = True, input_grad: bool = True
    ) -> Array | None:
        self.check_dy(dy, self.cached_shape(cache))
        if not input_grad:  # without parameters there is nothing else to compute
            return None
        return dy if isinstance(cache, tuple) else dy * cache

    def second_pass(
        self, v: Array, cache: Cache, kept: Cache, input_grad: bool = True
    ) -> tuple[Array, Array | None]:
        shape = self.cached_shape(cache)
        self.check_second_pass(v, kept, shape, shape)
        return (v if isinstance(cache, tuple) else v * cache), None

    def cached_shape(self, cache: Cache) -> tuple[int, ...]:
        """The input's shape, once ``cache`` is checked to be a mask or (evaluation) that shape."""
        identity = isinstance(cache, tuple)  # the input's shape: no mask was drawn
        if not (is_shape(cache) if identity else has_kind(cache, "f")):
            raise self.foreign_cache(
                cache, "the mask, a float array, or in evaluation mode the input's shape"
            )
        return cache if identity else cache.shape

    def extra_repr(self) -> str:
        return f"rate={self.rate}"
