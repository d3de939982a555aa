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


def add_affine_params(
    layer: Layer,
    in_features: int,
    out_features: int,
    bias: bool,
    weight_init: Initializer | None,
    bias_init: Initializer | None,
    rng: np.random.Generator | None,
    dtype: Any,
) -> None:
    """Give ``layer`` the parameters of ``x @ W + b``: ``W`` (in, out), Glorot uniform by default,
    and unless ``bias`` is False ``b`` (out,), zeros by default; fans ``(in, out)``."""
    rng = layer_rng(rng)
    fans = (in_features, out_features)
    layer.add_param("W", make_param(weight_init or glorot_uniform(), fans, rng, *fans, dtype))
    if bias:
        layer.add_param("b", make_param(bias_init or zeros(), (out_features,), rng, *fans, dtype))


def affine_backward(
    layer: Layer, x: Array, dy: Array, param_grads: bool, input_grad: bool
) -> Array | None:
    """The backward pass of ``y = x @ W + b`` with ``layer``'s parameters, from its input ``x`` and
    ``dy = dL/dy`` (checked by the caller): adds ``dW = x.T @ dy`` (and ``db``, the sum of ``dy``
    over the batch) into ``layer.grads`` when ``param_grads``, and returns ``dx = dy @ W.T`` when
    ``input_grad`` (else ``None``)."""
    if param_grads:
        layer.grads["W"] += dense_weight_grad(x, dy)
        if "b" in layer.grads:
            layer.grads["b"] += dy.sum(axis=0)
    if not input_grad:  # the first layer of a network: dx would be thrown away
        return None
    return dy @ layer.param_as("W", dy.dtype).T


def dense_second_pass(v: Array, dy: Array, W: Array) -> tuple[Array, Array]:
    """The second pass of the input gradient ``dx = dy @ W.T``, along ``v`` (N, in).

    Returns ``(dW, v_dy)``: ``dW = v.T @ dy``, the gradient of ``<v, dy @ W.T>`` with respect to
    ``W``, and ``v_dy = v @ W``, its gradient with respect to ``dy`` (the :class:`Dense` notes
    derive both). ``dx`` does not depend on ``x`` or ``b``: nothing for them.
    """
    return dense_weight_grad(v, dy), v @ W


def affine_second_pass(layer: Layer, v: Array, dy: Array) -> Array:
    """:func:`dense_second_pass` with ``layer``'s weight: adds ``dW`` into ``layer.grads["W"]``
    and returns ``v_dy``."""
    dW, v_dy = dense_second_pass(v, dy, layer.param_as("W", v.dtype))
    layer.grads["W"] += dW
    return v_dy


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

    Second pass (:meth:`Layer.second_pass`), the derivative of the backward pass
    :math:`dx = B(\delta, x, W) = \delta W^\top` along a vector :math:`v` on :math:`dx`. The
    scalar :math:`\langle v, \delta W^\top \rangle = \sum_{n,i,j} v_{ni} \delta_{nj} W_{ij}` is
    bilinear in :math:`\delta` and :math:`W`, so

    * :math:`\partial/\partial W_{ij} = \sum_n v_{ni} \delta_{nj}`, i.e. ``dW += v.T @ dy``: the
      weight gradient with ``v`` in the place of ``x``;
    * :math:`\partial/\partial \delta_{nj} = \sum_i v_{ni} W_{ij}`, i.e. ``v_dy = v @ W``: the
      forward pass of ``v`` without the bias;
    * nothing for :math:`x` and :math:`b`, which :math:`B` does not read (:func:`dense_second_pass`).
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
        add_affine_params(
            self, self.in_features, self.out_features, bias, weight_init, bias_init, rng, dtype
        )

    def forward(self, x: Array, training: bool = True) -> tuple[Array, Cache]:
        self.check_input(x, ("N", self.in_features))
        return dense_forward(x, self.param_as("W", x.dtype), self.param_as("b", x.dtype)), x

    def backward(
        self, dy: Array, cache: Cache, param_grads: bool = True, input_grad: bool = True
    ) -> Array | None:
        x = self.cached_input(cache)
        self.check_dy(dy, (x.shape[0], self.out_features))
        return affine_backward(self, x, dy, param_grads, input_grad)

    def second_pass(
        self, v: Array, cache: Cache, kept: Cache, input_grad: bool = True
    ) -> tuple[Array, Array | None]:
        x = self.cached_input(cache)
        self.check_second_pass(v, kept, x.shape, (x.shape[0], self.out_features))
        return affine_second_pass(self, v, kept), None

    def cached_input(self, cache: Cache) -> Array:
        """The input ``x`` that ``cache`` is, once checked to be a float batch of this layer's."""
        if not (has_kind(cache, "f") and cache.ndim == 2 and cache.shape[1] == self.in_features):
            raise self.foreign_cache(
                cache, f"its input x, a float array of shape (N, {self.in_features})"
            )
        return cache

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, bias={'b' in self.params}"
