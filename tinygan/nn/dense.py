"""Fully connected (affine) layer."""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygan.backend import Array
from tinygan.init import Initializer, glorot_uniform, layer_rng, make_param, zeros
from tinygan.nn.layer import Cache, Layer, has_kind, positive_int
from tinygan.overrides import overridable


def dense_forward(x: Array, W: Array, b: Array | None) -> Array:
    """``y = x @ W + b`` for ``x`` (N, in), ``W`` (in, out) and ``b`` (out,) or ``None``."""
    y = x @ W
    if b is not None:
        y += b
    return y


@overridable
def dense_weight_grad(x: Array, dy: Array) -> Array:
    """``dW = x.T @ dy``: the weight gradient of :func:`dense_forward`, summed over the batch."""
    return x.T @ dy


class Dense(Layer):
    r"""Affine map ``y = x W + b``.

    Parameters
    ----------
    in_features, out_features : int
        Sizes of the input and output feature axes.
    bias : bool
        Whether to add ``b``.
    weight_init, bias_init : Initializer, optional
        Defaults: Glorot uniform for ``W`` (Keras' default), zeros for ``b``.
    rng : numpy.random.Generator, optional
        Source of the initial weights (always drawn on the CPU); a generator seeded with 0 when
        omitted (:func:`tinygan.init.layer_rng`).
    dtype : dtype
        Parameter dtype (float32 for training, float64 for gradient checks).

    Shapes
    ------
    x: (N, in_features) -> y: (N, out_features); ``params["W"]``: (in, out); ``params["b"]``: (out,).

    Notes
    -----
    Forward, row by row: :math:`y_{nj} = \sum_i x_{ni} W_{ij} + b_j`.

    Backward, by the chain rule with :math:`\delta = \partial L/\partial y`:

    * :math:`\partial L/\partial x_{ni} = \sum_j \delta_{nj} W_{ij}`, i.e. ``dx = dy @ W.T``;
    * :math:`\partial L/\partial W_{ij} = \sum_n x_{ni} \delta_{nj}`, i.e. ``dW = x.T @ dy``;
    * :math:`\partial L/\partial b_j = \sum_n \delta_{nj}`, i.e. ``db = dy.sum(axis=0)``.

    The cache is the input ``x``, needed for ``dW`` (:func:`dense_weight_grad`). With
    ``input_grad=False`` the product ``dy @ W.T`` is skipped and ``backward`` returns ``None``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        weight_init: Initializer | None = None,
        bias_init: Initializer | None = None,
        rng: np.random.Generator | None = None,
        dtype: Any = np.float32,
    ) -> None:
        super().__init__()
        self.in_features = positive_int(in_features, "in_features", "Dense")
        self.out_features = positive_int(out_features, "out_features", "Dense")
        rng = layer_rng(rng)
        fans = (self.in_features, self.out_features)
        shape = (self.in_features, self.out_features)
        self.add_param("W", make_param(weight_init or glorot_uniform(), shape, rng, *fans, dtype))
        if bias:
            b = make_param(bias_init or zeros(), (self.out_features,), rng, *fans, dtype)
            self.add_param("b", b)

    def forward(self, x: Array, training: bool = True) -> tuple[Array, Cache]:
        self.check_input(x, ("N", self.in_features))
        return dense_forward(x, self.param_as("W", x.dtype), self.param_as("b", x.dtype)), x

    def backward(
        self, dy: Array, cache: Cache, param_grads: bool = True, input_grad: bool = True
    ) -> Array | None:
        x = cache
        if not (has_kind(x, "f") and x.ndim == 2 and x.shape[1] == self.in_features):
            raise self.foreign_cache(
                cache, f"its input x, a float array of shape (N, {self.in_features})"
            )
        self.check_dy(dy, (x.shape[0], self.out_features))
        if param_grads:
            self.grads["W"] += dense_weight_grad(x, dy)
            if "b" in self.grads:
                self.grads["b"] += dy.sum(axis=0)
        if not input_grad:  # the first layer of a network: dx would be thrown away
            return None
        return dy @ self.param_as("W", dy.dtype).T

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, bias={'b' in self.params}"
