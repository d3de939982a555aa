"""Fully connected (affine) layer."""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygan.init import Initializer, glorot_uniform, make_param, zeros
from tinygan.nn.layer import Layer, positive_int


def transposed_product(a: Any, b: Any) -> Any:
    """``a.T @ b`` for matrices ``a`` (M, A) and ``b`` (M, B): a weight gradient, summed over M rows.

    Computed as ``(b.T @ a).T`` when ``B > A``. The result is the same; the difference is speed.
    BLAS libraries such as OpenBLAS share a product among threads by rows of the result, and a result
    with few rows and many columns -- a convolution's ``(O, kh * kw * C)`` weight gradient -- was
    measured up to three times slower on two threads than its transpose.
    """
    return (b.T @ a).T if b.shape[1] > a.shape[1] else a.T @ b


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
        Source of the initial weights (always drawn on the CPU).
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

    The cache is the input ``x``, needed for ``dW``.
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
        fans = (self.in_features, self.out_features)
        shape = (self.in_features, self.out_features)
        self.add_param("W", make_param(weight_init or glorot_uniform(), shape, rng, *fans, dtype))
        if bias:
            b = make_param(bias_init or zeros(), (self.out_features,), rng, *fans, dtype)
            self.add_param("b", b)

    def forward(self, x: Any, training: bool = True) -> tuple[Any, Any]:
        self.check_input(x, ("N", self.in_features))
        W = self.params["W"].astype(x.dtype, copy=False)
        y = x @ W
        if "b" in self.params:
            y += self.params["b"].astype(x.dtype, copy=False)
        return y, x

    def backward(self, dy: Any, cache: Any, param_grads: bool = True) -> Any:
        x = cache
        self.check_dy(dy, (x.shape[0], self.out_features))
        if param_grads:
            self.grads["W"] += transposed_product(x, dy)
            if "b" in self.grads:
                self.grads["b"] += dy.sum(axis=0)
        return dy @ self.params["W"].astype(dy.dtype, copy=False).T

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, bias={'b' in self.params}"
