"""Inverted dropout."""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygan import kernels
from tinygan.backend import get_array_module
from tinygan.nn.layer import Layer, number_in


class Dropout(Layer):
    r"""Inverted dropout: zero each entry with probability ``rate`` and rescale the survivors.

    Parameters
    ----------
    rate : float
        Probability of dropping an entry, in ``[0, 1)``.
    rng : numpy.random.Generator, optional
        Source of the masks; a fresh unseeded generator when omitted. It is the attribute ``rng``:
        for CuPy inputs assign a CuPy generator, ``layer.rng = tinygan.backend.make_rng(seed, "gpu")``.

    Shapes
    ------
    Any shape; y has x's shape and dtype.

    Notes
    -----
    Training: draw :math:`u \sim U[0, 1)` per entry and let :math:`m = [u \ge r] / (1 - r)`, so
    each entry of :math:`m` is :math:`1/(1 - r)` with probability :math:`1 - r` and 0 otherwise, and
    :math:`y = m \odot x`. Since :math:`E[m] = 1`, :math:`E[y] = x`: the expected activation is the
    same in training and in evaluation, where the layer is the identity (the *inverted* scheme puts
    the rescaling in training so inference needs none).

    Backward: for a fixed mask :math:`y` is linear in :math:`x` with diagonal Jacobian :math:`m`, so
    :math:`\partial L/\partial x = m \odot \partial L/\partial y`. The mask is the cache: the backward
    pass must use the very mask the forward pass drew.

    The uniforms are drawn directly in the input's dtype (float32 or float64), so a float32 model
    makes no float64 temporaries. Random generators do not draw float16, so for a float16 input
    they are drawn in float32 and rounded.

    In evaluation mode (or with ``rate = 0``) the layer is the identity and the cache is only the
    input's shape, which ``backward`` checks ``dy`` against.
    """

    def __init__(self, rate: float, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        self.rate = number_in(rate, "[0, 1)", "rate", "Dropout")
        self.rng = rng if rng is not None else np.random.default_rng()

    def forward(self, x: Any, training: bool = True) -> tuple[Any, Any]:
        self.check_input(x)
        if not training or self.rate == 0:
            return x, x.shape
        xp = get_array_module(x)
        u = self.rng.random(x.shape, dtype=xp.float32 if x.dtype == xp.float16 else x.dtype)
        if get_array_module(u) is not xp:
            raise TypeError(
                f"Dropout's rng draws {get_array_module(u).__name__} arrays but the input is a "
                f"{xp.__name__} array; give the layer a generator on the input's device, e.g. "
                f"layer.rng = tinygan.backend.make_rng(seed, 'gpu')"
            )
        # The mask overwrites u: one pass, no temporaries.
        return kernels.dropout(x, u.astype(x.dtype, copy=False), self.rate)

    def backward(self, dy: Any, cache: Any, param_grads: bool = True) -> Any:
        identity = isinstance(cache, tuple)  # the input's shape: no mask was drawn
        self.check_dy(dy, cache if identity else cache.shape)
        return dy if identity else dy * cache

    def extra_repr(self) -> str:
        return f"rate={self.rate}"
