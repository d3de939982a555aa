r"""Elementwise activations: ReLU, LeakyReLU, Sigmoid, Tanh.

Each is a layer with no parameters. For an elementwise :math:`y = f(x)` the backward pass is the
elementwise product :math:`\partial L/\partial x = f'(x) \odot \partial L/\partial y`; each class
caches whatever makes :math:`f'` cheapest.

Second pass (:meth:`tinygan.nn.layer.Layer.second_pass`). The backward pass
:math:`dx = B(dy, x) = f'(x) \odot dy` is differentiated along a vector :math:`v` on :math:`dx`:
:math:`\langle v, B \rangle = \sum_i v_i f'(x_i)\, dy_i`, so

.. math::
    \frac{\partial \langle v, B \rangle}{\partial\, dy} = f'(x) \odot v, \qquad
    \frac{\partial \langle v, B \rangle}{\partial x} = f''(x) \odot dy \odot v.

The first is the backward pass applied to :math:`v` (an elementwise Jacobian is symmetric). The
second needs :math:`f''`: zero for the ReLU and the leaky ReLU away from the kink at 0 (their
slope is constant on each side, so ``v_x`` is ``None``); from the cached output for the others,

.. math::
    \sigma'' = (\sigma (1 - \sigma))' = \sigma'(1 - 2\sigma) = y (1 - y)(1 - 2y), \qquad
    \tanh'' = (1 - \tanh^2)' = -2 \tanh \tanh' = -2 y (1 - y^2).

A network of ReLUs and affine layers is piecewise linear: its input gradient is piecewise
constant in the input, and a penalty on it reaches the biases only through which pieces are
active, i.e. not at all almost everywhere. Sigmoid and Tanh are the layers whose :math:`f''`
makes the second pass's ``v_x`` matter.
"""

from __future__ import annotations

from collections.abc import Callable

from tinygan.backend import Array, get_array_module
from tinygan.nn.layer import Cache, Layer, has_kind, number_in
from tinygan.overrides import overridable


@overridable
def leaky_relu(x: Array, alpha: float) -> tuple[Array, Array]:
    """Leaky ReLU ``y = x`` where ``x > 0`` and ``alpha * x`` elsewhere; ``alpha = 0`` is the ReLU.

    Returns ``y`` (x's shape and dtype) and the boolean ``mask = x > 0``, where the slope is 1: all
    the backward pass needs. ``alpha`` is applied in x's dtype.
    """
    xp = get_array_module(x)
    mask = x > 0
    return xp.where(mask, x, x * x.dtype.type(alpha)), mask


@overridable
def leaky_relu_backward(dy: Array, mask: Array, alpha: float) -> Array:
    """Gradient of :func:`leaky_relu`: ``dx = dy`` where ``mask`` and ``alpha * dy`` elsewhere."""
    xp = get_array_module(dy)
    return xp.where(mask, dy, dy * dy.dtype.type(alpha))


@overridable
def sigmoid(x: Array) -> Array:
    r"""Numerically stable logistic function :math:`\sigma(x) = 1 / (1 + e^{-x})`.

    Written as :math:`\sigma(x) = \exp(-\operatorname{softplus}(-x))` with
    ``softplus(t) = logaddexp(0, t)``, which never evaluates ``exp`` of a large positive number: no
    overflow warning for ``x = -1e4`` (the result underflows cleanly to 0) and exactly 1 for large ``x``.
    """
    xp = get_array_module(x)
    return xp.exp(-xp.logaddexp(0, -x))


@overridable
def sigmoid_backward(dy: Array, y: Array) -> Array:
    r"""Gradient of the logistic function from its output: ``dx = dy * y * (1 - y)``.

    :math:`\sigma' = e^{-x} / (1 + e^{-x})^2 = \sigma (1 - \sigma)`, so the output ``y`` is enough.
    """
    return dy * y * (1 - y)


@overridable
def tanh_backward(dy: Array, y: Array) -> Array:
    r"""Gradient of :math:`\tanh` from its output: ``dx = dy * (1 - y**2)``, as
    :math:`\tanh' = 1 - \tanh^2`."""
    return dy * (1 - y * y)


def sigmoid_second_derivative(y: Array) -> Array:
    r""":math:`\sigma''(x) = y (1 - y)(1 - 2y)` from the output :math:`y = \sigma(x)`."""
    return y * (1 - y) * (1 - 2 * y)


def tanh_second_derivative(y: Array) -> Array:
    r""":math:`\tanh''(x) = -2 y (1 - y^2)` from the output :math:`y = \tanh(x)`."""
    return -2 * y * (1 - y * y)


def checked_mask(layer: Layer, cache: Cache) -> Array:
    """The boolean mask ``x > 0`` that ``cache`` is, once checked; else ``layer``'s cache error."""
    if not has_kind(cache, "b"):
        raise layer.foreign_cache(cache, "the boolean mask x > 0")
    return cache


def checked_output(layer: Layer, cache: Cache) -> Array:
    """The float output ``y`` that ``cache`` is, once checked; else ``layer``'s cache error."""
    if not has_kind(cache, "f"):
        raise layer.foreign_cache(cache, "its output y, a float array")
    return cache


def slope_second_pass(
    layer: Layer, v: Array, cache: Cache, dy: Array, alpha: float
) -> tuple[Array, None]:
    """The second pass of a (leaky) ReLU of negative slope ``alpha``: ``v_dy`` is the backward pass
    applied to ``v``; ``v_x`` is ``None``, as the slope does not change away from 0."""
    mask = checked_mask(layer, cache)
    layer.check_second_pass(v, dy, mask.shape, mask.shape)
    return leaky_relu_backward(v, mask, alpha), None


def curved_second_pass(
    layer: Layer,
    v: Array,
    cache: Cache,
    dy: Array,
    backward: Callable[[Array, Array], Array],
    second_derivative: Callable[[Array], Array],
    input_grad: bool,
) -> tuple[Array, Array | None]:
    """The second pass of a smooth activation cached by its output ``y``: ``v_dy = f'(x) * v``
    (``backward(v, y)``) and ``v_x = f''(x) * dy * v`` (from ``second_derivative(y)``)."""
    y = checked_output(layer, cache)
    layer.check_second_pass(v, dy, y.shape, y.shape)
    v_x = second_derivative(y) * dy * v if input_grad else None
    return backward(v, y), v_x


class ReLU(Layer):
    r"""Rectified linear unit :math:`y = \max(x, 0)`.

    Notes
    -----
    :math:`f'(x) = 1` for :math:`x > 0` and 0 otherwise (the subgradient 0 is taken at the kink
    :math:`x = 0`). The cache is the boolean mask :math:`x > 0`. It is :func:`leaky_relu` with
    slope 0.
    """

    def forward(self, x: Array, training: bool = True) -> tuple[Array, Cache]:
        self.check_input(x)
        return leaky_relu(x, 0.0)

    def backward(
        self, dy: Array, cache: Cache, param_grads: bool = True, input_grad: bool = True
    ) -> Array | None:
        self.check_dy(dy, checked_mask(self, cache).shape)
        if not input_grad:  # without parameters there is nothing else to compute
            return None
        return leaky_relu_backward(dy, cache, 0.0)

    def second_pass(
        self, v: Array, cache: Cache, kept: Cache, input_grad: bool = True
    ) -> tuple[Array, Array | None]:
        return slope_second_pass(self, v, cache, kept, 0.0)


class LeakyReLU(Layer):
    r"""Leaky ReLU :math:`y = x` for :math:`x > 0`, :math:`y = \alpha x` otherwise.

    Parameters
    ----------
    alpha : float
        Slope of the negative side, any finite number (0.2 as in the DCGAN papers; Keras' default
        is 0.3).

    Notes
    -----
    :math:`f'(x) = 1` for :math:`x > 0` and :math:`\alpha` otherwise, so
    ``dx = dy * where(x > 0, 1, alpha)``. The cache is the mask :math:`x > 0`.
    """

    def __init__(self, alpha: float = 0.2) -> None:
        super().__init__()
        self.alpha = number_in(alpha, "(-inf, inf)", "alpha", "LeakyReLU")

    def forward(self, x: Array, training: bool = True) -> tuple[Array, Cache]:
        self.check_input(x)
        return leaky_relu(x, self.alpha)

    def backward(
        self, dy: Array, cache: Cache, param_grads: bool = True, input_grad: bool = True
    ) -> Array | None:
        self.check_dy(dy, checked_mask(self, cache).shape)
        if not input_grad:  # without parameters there is nothing else to compute
            return None
        return leaky_relu_backward(dy, cache, self.alpha)

    def second_pass(
        self, v: Array, cache: Cache, kept: Cache, input_grad: bool = True
    ) -> tuple[Array, Array | None]:
        return slope_second_pass(self, v, cache, kept, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class Sigmoid(Layer):
    r"""Logistic function :math:`y = \sigma(x) = 1 / (1 + e^{-x})`.

    Notes
    -----
    Differentiating, :math:`\sigma'(x) = e^{-x} / (1 + e^{-x})^2 = \sigma(x)\,(1 - \sigma(x))`, so
    the output alone is enough: the cache is ``y`` and ``dx = dy * y * (1 - y)``.
    For a discriminator, prefer raw logits with
    :func:`tinygan.losses.sigmoid_cross_entropy`, which is stable where ``log(sigmoid(x))`` is not.
    """

    def forward(self, x: Array, training: bool = True) -> tuple[Array, Cache]:
        self.check_input(x)
        y = sigmoid(x)
        return y, y

    def backward(
        self, dy: Array, cache: Cache, param_grads: bool = True, input_grad: bool = True
    ) -> Array | None:
        self.check_dy(dy, checked_output(self, cache).shape)
        if not input_grad:  # without parameters there is nothing else to compute
            return None
        return sigmoid_backward(dy, cache)

    def second_pass(
        self, v: Array, cache: Cache, kept: Cache, input_grad: bool = True
    ) -> tuple[Array, Array | None]:
        return curved_second_pass(
            self, v, cache, kept, sigmoid_backward, sigmoid_second_derivative, input_grad
        )


class Tanh(Layer):
    r"""Hyperbolic tangent :math:`y = \tanh(x)`.

    Notes
    -----
    :math:`\tanh'(x) = 1 - \tanh^2(x)`, so the cache is ``y`` and ``dx = dy * (1 - y**2)``.
    """

    def forward(self, x: Array, training: bool = True) -> tuple[Array, Cache]:
        self.check_input(x)
        y = get_array_module(x).tanh(x)
        return y, y

    def backward(
        self, dy: Array, cache: Cache, param_grads: bool = True, input_grad: bool = True
    ) -> Array | None:
        self.check_dy(dy, checked_output(self, cache).shape)
        if not input_grad:  # without parameters there is nothing else to compute
            return None
        return tanh_backward(dy, cache)

    def second_pass(
        self, v: Array, cache: Cache, kept: Cache, input_grad: bool = True
    ) -> tuple[Array, Array | None]:
        return curved_second_pass(
            self, v, cache, kept, tanh_backward, tanh_second_derivative, input_grad
        )
