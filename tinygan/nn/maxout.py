r"""Maxout units: an affine map to ``units * pieces`` features, then the maximum over each unit's pieces.

A maxout unit (Goodfellow, Warde-Farley, Mirza, Courville, Bengio, "Maxout Networks", ICML 2013,
arXiv 1302.4389, Section 2) computes ``pieces`` affine functions of its input and keeps the largest:

.. math:: z_{njk} = \sum_i x_{ni} W_{ijk} + b_{jk}, \qquad y_{nj} = \max_{0 \le k < P} z_{njk}

for sample :math:`n`, unit :math:`j < U` and piece :math:`k < P`. One unit is a convex,
piecewise-linear function of its input, learnt rather than fixed as a ReLU's is (a ReLU is the
maxout of the two pieces :math:`w^\top x + b` and 0). The discriminators of the 2-D mixture
experiments of VEEGAN (Srivastava et al., NeurIPS 2017, arXiv 1705.07761) and PacGAN (Lin et al.,
NeurIPS 2018, arXiv 1712.04086) are stacks of maxout layers.

Backward. Away from ties the maximum of unit :math:`(n, j)` is attained by one piece
:math:`k^*(n, j)`, and a small enough perturbation keeps it there, so
:math:`\partial y_{nj} / \partial z_{njk} = [k = k^*(n, j)]`: the upstream gradient goes to the
winning piece, the others get none,

.. math:: \frac{\partial L}{\partial z_{njk}} = \delta_{nj}\, [k = k^*(n, j)],

and from :math:`\partial L / \partial z` on it is a Dense layer's backward pass:
:math:`\partial L/\partial x = \delta_z W^\top`, :math:`\partial L/\partial W = x^\top \delta_z`,
:math:`\partial L/\partial b = \sum_n \delta_z`. At a tie the maximum is not differentiable; the
layer takes the subgradient that routes the gradient to the *first* maximal piece
(``argmax``'s rule), as :class:`tinygan.nn.MaxPool2D` does within a window.

Second pass (:meth:`tinygan.nn.layer.Layer.second_pass`). With the winners :math:`k^*` held (they
do not change under a small perturbation of :math:`x` away from ties), the backward pass is
:math:`dx = B(\delta, x, W) = \delta_z W^\top` with :math:`(\delta_z)_{njk} = \delta_{nj} [k =
k^*(n, j)]`, linear in :math:`\delta` and independent of :math:`x` and :math:`b`. Along a vector
:math:`v` on :math:`dx`, :math:`\langle v, \delta_z W^\top \rangle = \langle v W, \delta_z
\rangle`, so

.. math::
    \frac{\partial}{\partial W} = v^\top \delta_z, \qquad
    \frac{\partial}{\partial \delta_{nj}} = (v W)_{n,\, j k^*(n, j)},

the second being the forward pass linearised at :math:`x`: the affine map of :math:`v` without
bias, read at each unit's winning piece (:func:`maxout_select`); nothing goes to :math:`x` or
:math:`b`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygan.backend import Array, get_array_module
from tinygan.init import Initializer
from tinygan.nn.dense import (
    add_affine_params,
    affine_backward,
    affine_second_pass,
    dense_forward,
)
from tinygan.nn.layer import Cache, Layer, has_kind, positive_int
from tinygan.overrides import overridable


@overridable
def maxout_forward(z: Array, pieces: int) -> tuple[Array, Array]:
    """The maximum over each unit's pieces of the affine features ``z`` (N, units * pieces).

    Feature ``j * pieces + k`` of ``z`` is piece ``k`` of unit ``j``: each unit's pieces are
    consecutive, so the split into (N, units, pieces) is a reshape, not a copy.

    Returns
    -------
    y : array, shape (N, units), z's dtype
        ``y[n, j] = max_k z[n, j * pieces + k]``.
    argmax : integer array, shape (N, units)
        The winning piece ``k`` of each unit; on ties the first (``argmax``'s rule). All the
        backward pass needs.
    """
    grouped = z.reshape(z.shape[0], -1, pieces)
    return grouped.max(axis=2), grouped.argmax(axis=2)


@overridable
def maxout_backward(dy: Array, argmax: Array, pieces: int) -> Array:
    """Route each unit's upstream gradient ``dy`` (N, units) to its winning piece.

    Returns ``dz`` of shape (N, units * pieces) and dy's dtype: ``dy[n, j]`` at feature
    ``j * pieces + argmax[n, j]``, zero at the unit's other pieces.
    """
    xp = get_array_module(dy)
    won = argmax[:, :, None] == xp.arange(pieces)  # (N, units, pieces), one True per unit
    return (dy[:, :, None] * won).reshape(dy.shape[0], -1)


@overridable
def maxout_input_grad(dy: Array, argmax: Array, W: Array, pieces: int) -> Array:
    r"""``dx = dz @ W.T`` of a maxout layer, with ``dz = maxout_backward(dy, argmax, pieces)``.

    Row by row, :math:`\partial L/\partial x_n = \sum_j \delta_{nj}\, W_{:,\, j P + k^*(n, j)}`:
    each unit's gradient flows back through the weights of its winning piece alone, so of the
    ``units * pieces`` columns of ``W`` only ``units`` reach each row of ``dx``.
    """
    return maxout_backward(dy, argmax, pieces) @ W.T


def maxout_select(z: Array, argmax: Array, pieces: int) -> Array:
    """Each unit's feature of ``z`` (N, units * pieces) at its winning piece ``argmax`` (N, units):
    the linearisation of :func:`maxout_forward` at a point whose winners are ``argmax``, and the
    adjoint of :func:`maxout_backward`."""
    xp = get_array_module(z)
    won = argmax[:, :, None] == xp.arange(pieces)
    return (z.reshape(z.shape[0], -1, pieces) * won).sum(axis=2)


class Maxout(Layer):
    r"""A layer of ``units`` maxout units of ``pieces`` affine pieces each.

    Parameters
    ----------
    in_features : int
        Size of the input feature axis.
    units : int
        Number of maxout units, the output's feature count.
    pieces : int
        Affine pieces per unit (5 in the VEEGAN and PacGAN discriminators; 1 makes the layer a
        plain Dense layer).
    bias : bool
        Whether to add ``b``.
    weight_init, bias_init : Initializer, optional
        Defaults: Glorot uniform for ``W`` with the fans of its (in, units * pieces) layout, as a
        Dense layer of ``units * pieces`` outputs; zeros for ``b``.
    rng : numpy.random.Generator, optional
        Source of the initial weights (always drawn on the CPU); a generator seeded with 0 when
        omitted.
    dtype : dtype
        Parameter dtype.

    Shapes
    ------
    x: (N, in_features) -> y: (N, units); ``params["W"]``: (in_features, units * pieces),
    ``params["b"]``: (units * pieces,).

    Notes
    -----
    The forward pass is :func:`~tinygan.nn.dense.dense_forward` then :func:`maxout_forward`;
    the backward pass :func:`maxout_backward` then a Dense layer's parameter gradients, and
    :func:`maxout_input_grad` for ``dx`` (the module's docstring derives both). The cache is the
    input ``x`` (for ``dW``) and the winning piece of every unit, (N, units) integers; the
    (N, units * pieces) features themselves are not kept.

    The layer owns its weights rather than wrapping a :class:`~tinygan.nn.Dense` child, so that
    one maxout layer is one layer: a network lists it, and its checkpoint names ``W`` and ``b``,
    as it lists a Dense layer. ``W`` is stored 2-D, (in, units * pieces), because that is what the
    matrix product reads; the paper's 3-D weight :math:`W_{ijk}` (in, units, pieces) is the view
    ``W.reshape(in_features, units, pieces)`` of the same memory, since each unit's pieces are
    consecutive columns. The same layout makes ``W.T`` the weight of a PyTorch
    ``Linear(in_features, units * pieces)`` whose output, viewed as (N, units, pieces) and maxed
    over the last axis, is this layer's.
    """

    def __init__(
        self,
        in_features: int,
        units: int,
        pieces: int,
        bias: bool = True,
        weight_init: Initializer | None = None,
        bias_init: Initializer | None = None,
        rng: np.random.Generator | None = None,
        dtype: Any = np.float32,
    ) -> None:
        super().__init__()
        self.in_features = positive_int(in_features, "in_features", "Maxout")
        self.units = positive_int(units, "units", "Maxout")
        self.pieces = positive_int(pieces, "pieces", "Maxout")
        width = self.units * self.pieces
        add_affine_params(self, self.in_features, width, bias, weight_init, bias_init, rng, dtype)

    def forward(self, x: Array, training: bool = True) -> tuple[Array, Cache]:
        self.check_input(x, ("N", self.in_features))
        z = dense_forward(x, self.param_as("W", x.dtype), self.param_as("b", x.dtype))
        y, argmax = maxout_forward(z, self.pieces)
        return y, (x, argmax)

    def backward(
        self, dy: Array, cache: Cache, param_grads: bool = True, input_grad: bool = True
    ) -> Array | None:
        x, argmax = self.cached_input_and_winners(cache)
        self.check_dy(dy, argmax.shape)
        if param_grads:
            dz = maxout_backward(dy, argmax, self.pieces)
            affine_backward(self, x, dz, param_grads=True, input_grad=False)
        if not input_grad:
            return None
        return maxout_input_grad(dy, argmax, self.param_as("W", dy.dtype), self.pieces)

    def second_pass(
        self, v: Array, cache: Cache, kept: Cache, input_grad: bool = True
    ) -> tuple[Array, Array | None]:
        x, argmax = self.cached_input_and_winners(cache)
        self.check_second_pass(v, kept, x.shape, argmax.shape)
        dz = maxout_backward(kept, argmax, self.pieces)
        return maxout_select(affine_second_pass(self, v, dz), argmax, self.pieces), None

    def cached_input_and_winners(self, cache: Cache) -> tuple[Array, Array]:
        """``(x, argmax)`` from ``cache``, once checked to be this layer's."""
        if not (
            isinstance(cache, tuple)
            and len(cache) == 2
            and has_kind(cache[0], "f")
            and cache[0].ndim == 2
            and cache[0].shape[1] == self.in_features
            and has_kind(cache[1], "i")
            and cache[1].shape == (cache[0].shape[0], self.units)
        ):
            raise self.foreign_cache(
                cache,
                f"the tuple (x, argmax), x of shape (N, {self.in_features}) and argmax of shape "
                f"(N, {self.units})",
            )
        return cache

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.units}, pieces={self.pieces}, bias={'b' in self.params}"
