r"""Spectral normalisation: Dense and Conv2D layers whose weight is divided by its largest
singular value.

Miyato, Kataoka, Koyama and Yoshida ("Spectral Normalization for Generative Adversarial
Networks", ICLR 2018, arXiv 1802.05957). A linear map's Lipschitz constant is its weight
matrix's spectral norm :math:`\sigma(M) = \max_{\|h\| = 1} \|M h\|`, the largest singular value.
Dividing every weight by it makes every layer 1-Lipschitz and, with 1-Lipschitz activations
(ReLU, leaky ReLU), the whole discriminator: a bound on how steep D can become, the constraint a
Wasserstein critic needs, with neither clipping nor a penalty.

**The matrix.** A Dense weight ``W`` (in, out) acts as :math:`M = W^\top` (out, in); a convolution's
``W`` (O, C, kh, kw) is normalised as the matrix :math:`M` = ``W.reshape(O, C * kh * kw)``, as in
the paper and in PyTorch (the convolution's own operator norm differs; this is the bounded one).

**Power iteration** (the paper's Algorithm 1). :math:`\sigma` is estimated, not computed: with a
unit vector :math:`u` (out,) kept from step to step, each training-mode forward pass takes one step

.. math::
    v \leftarrow M^\top u / \|M^\top u\|, \qquad u \leftarrow M v / \|M v\|, \qquad
    \sigma = u^\top M v \;(= \|M v\|),

and the layer computes with :math:`W_{SN} = W / \sigma`. The weights move little from one step to
the next, so :math:`u` stays close to the top left singular vector and one step keeps it there.
:math:`u` and :math:`v` live in ``layer.buffers``: saved with the model, restored by a resume,
so a resumed run takes exactly the steps it would have taken. Evaluation mode takes no step and
uses the stored :math:`u, v`: it reproduces the last training forward's :math:`\sigma` exactly. Every
training-mode forward steps, so a discriminator run on a real and a fake batch separately steps
twice per update, as PyTorch's does; a norm of :math:`10^{-12}` or less is not divided by
(:func:`normalize`, PyTorch's ``eps``).

**Backward.** With :math:`u, v` held constant, as the paper's implementation does (they are not
differentiated through the power iteration), :math:`\sigma = u^\top M v` is linear in :math:`M`
and :math:`\partial \sigma / \partial M = u v^\top`. For :math:`G = \partial L / \partial W_{SN}`,

.. math::
    dL = \Big\langle G, \frac{dM}{\sigma} - \frac{M\, d\sigma}{\sigma^2} \Big\rangle
       = \frac{\langle G, dM \rangle - \langle G, W_{SN} \rangle \langle u v^\top, dM \rangle}{\sigma},
    \qquad
    \frac{\partial L}{\partial M} = \frac{G - \langle G, W_{SN} \rangle\, u v^\top}{\sigma}

(:func:`spectral_norm_backward`): the plain layer's gradient over :math:`\sigma`, less its part
along :math:`u v^\top`, the direction that would only grow :math:`\sigma` (the paper reads the
subtracted term as an adaptive regularisation of the first singular component). At a converged :math:`u, v` it is the
exact derivative of :math:`M / \sigma(M)`: :math:`\sigma(M) = \max_{\|a\| = \|b\| = 1} a^\top M b`
has the derivative :math:`u v^\top` at its maximiser. The gradient checks run in evaluation mode,
where :math:`u, v` are constants and the formula is exact.

**Second pass** (:meth:`tinygan.nn.layer.Layer.second_pass`). The input gradient
:math:`dx = dy\, W_{SN}^\top` (Dense; a transposed convolution with :math:`W_{SN}` for Conv2D) is
the plain layer's with :math:`W_{SN}` in the place of :math:`W`. Its second pass gives the
gradient for :math:`W_{SN}` (:func:`~tinygan.nn.dense.dense_second_pass`,
:func:`~tinygan.nn.conv.conv2d_second_pass`), and the chain rule above turns it into the one for
:math:`W`; ``v_dy`` is the layer's linearised forward pass with :math:`W_{SN}`, and nothing goes to
:math:`x`. So gradient penalties work through spectrally normalised layers.

**A whole discriminator.** :func:`spectrally_normalized` rebuilds a network with every Dense
and Conv2D replaced by its spectrally normalised twin, holding the same weights: the way
``--spectral-norm`` turns a preset's discriminator into one whose every linear map is
1-Lipschitz.

**Why classes of their own.** :class:`SpectralDense` and :class:`SpectralConv2D` own their
parameter ``W`` (unnormalised, what the optimizer updates) and the buffers ``u`` and ``v``: one
layer is one layer in a network and in its checkpoint. They are not subclasses of Dense and
Conv2D, so that nothing that handles those (the ONNX and PyTorch exports) takes one for a plain
layer and ignores the normalisation.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from tinygan.backend import Array, get_array_module
from tinygan.init import Initializer, layer_rng
from tinygan.nn.conv import (
    Conv2D,
    add_kernel_params,
    check_conv_cache,
    conv2d_backward,
    conv2d_forward,
    conv2d_second_pass,
    setup_convolution,
)
from tinygan.nn.dense import (
    Dense,
    add_affine_params,
    dense_forward,
    dense_second_pass,
    dense_weight_grad,
)
from tinygan.nn.layer import Cache, Layer, has_kind, number_in, positive_int
from tinygan.nn.padding import Padding
from tinygan.nn.sequential import Sequential


def normalize(a: Array, eps: float) -> Array:
    """``a / max(||a||, eps)``: the unit vector along ``a``, and no division by (almost) zero."""
    xp = get_array_module(a)
    return a / xp.maximum(xp.sqrt((a * a).sum()), a.dtype.type(eps))


def power_iteration(M: Array, u: Array, eps: float) -> tuple[Array, Array]:
    """One step of power iteration on ``M`` (out, in) from ``u`` (out,): the new ``(u, v)``,
    ``v = normalize(M.T @ u)`` then ``u = normalize(M @ v)``."""
    v = normalize(M.T @ u, eps)
    return normalize(M @ v, eps), v


def spectral_norm_backward(dW_sn: Array, W_sn: Array, dsigma_dW: Array, sigma: Array) -> Array:
    """The gradient for ``W`` from the gradient ``dW_sn`` for ``W_sn = W / sigma``:
    ``(dW_sn - <dW_sn, W_sn> * dsigma_dW) / sigma``, with ``dsigma_dW`` (``u v^T`` in W's layout)
    held constant (the module docstring derives it)."""
    return (dW_sn - (dW_sn * W_sn).sum() * dsigma_dW) / sigma


class SpectralState(NamedTuple):
    """What one forward pass used: the normalised weight, the power-iteration vectors and sigma,
    kept in the cache so the backward pass uses the very ones (a later forward may step again)."""

    weight: Array
    u: Array
    v: Array
    sigma: Array


class SpectralNormalized(Layer):
    """The spectral normalisation shared by :class:`SpectralDense` and :class:`SpectralConv2D`:
    the buffers, the power-iteration step and the chain rule through sigma.

    A subclass has ``params["W"]`` and says how ``W`` is read as the matrix ``M`` (out, rest)
    (:meth:`as_matrix`) and how a matrix of that shape goes back to W's layout
    (:meth:`from_matrix`).
    """

    eps: float

    def as_matrix(self, W: Array) -> Array:
        """``W`` as the matrix ``M`` whose spectral norm is divided by (a view)."""
        raise NotImplementedError(f"{type(self).__name__} must implement as_matrix")

    def from_matrix(self, M: Array, shape: tuple[int, ...]) -> Array:
        """Inverse of :meth:`as_matrix`: a matrix of M's shape back in the layout ``shape``."""
        raise NotImplementedError(f"{type(self).__name__} must implement from_matrix")

    def add_power_vectors(self, rng: np.random.Generator | None, eps: float) -> None:
        """Register the buffers ``u`` (out,), a random unit vector, and ``v = normalize(M.T @ u)``,
        so that sigma ``= u^T M v`` is positive even before the first training step."""
        self.eps = number_in(eps, "(0, inf)", "eps", type(self).__name__)
        W = self.params["W"]
        M = self.as_matrix(W)
        u = layer_rng(rng).standard_normal(M.shape[0])
        u = normalize(get_array_module(W).asarray(u, dtype=W.dtype), self.eps)
        self.buffers["u"] = u
        self.buffers["v"] = normalize(M.T @ u, self.eps)

    def normalized_weight(self, dtype: Any, training: bool) -> SpectralState:
        """``W / sigma`` in ``dtype``, after one power-iteration step in training mode (which
        updates the buffers) and with the stored vectors in evaluation mode."""
        W = self.param_as("W", dtype)
        M = self.as_matrix(W)
        if training:
            u, v = power_iteration(M, self.buffers["u"].astype(dtype), self.eps)
            self.buffers["u"][...] = u
            self.buffers["v"][...] = v
        else:  # copies: a later training forward overwrites the buffers in place
            u, v = self.buffers["u"].astype(dtype), self.buffers["v"].astype(dtype)
        sigma = u @ (M @ v)
        return SpectralState(W / sigma, u, v, sigma)

    def weight_grad(self, dW_sn: Array, state: SpectralState) -> Array:
        """The gradient for ``W`` from the one for ``W_sn`` (:func:`spectral_norm_backward`)."""
        xp = get_array_module(dW_sn)
        dsigma_dW = self.from_matrix(xp.outer(state.u, state.v), dW_sn.shape)
        return spectral_norm_backward(dW_sn, state.weight, dsigma_dW, state.sigma)

    def checked_cache(self, cache: Cache) -> tuple[Cache, SpectralState]:
        """``(the plain layer's cache, SpectralState)``, once ``cache`` is checked to be that."""
        if not (
            isinstance(cache, tuple) and len(cache) == 2 and isinstance(cache[1], SpectralState)
        ):
            raise self.foreign_cache(cache, "the tuple (the plain layer's cache, SpectralState)")
        return cache


class SpectralDense(SpectralNormalized):
    r"""A Dense layer computing with ``W / sigma(W)``: :math:`y = x W / \sigma(W) + b`.

    Parameters
    ----------
    in_features, out_features, bias, weight_init, bias_init, dtype
        As for :class:`~tinygan.nn.Dense`.
    rng : numpy.random.Generator, optional
        Source of the initial weights and then of the first ``u``; a generator seeded with 0
        when omitted.
    eps : float
        Norms below it are not divided by in the power iteration (PyTorch's 1e-12).

    Shapes
    ------
    As Dense's; ``buffers["u"]``: (out,), ``buffers["v"]``: (in,), with :math:`M = W^\top`.

    Notes
    -----
    The module docstring derives the power iteration, the backward pass through :math:`\sigma`
    and the second pass. The cache is the input ``x`` and the :class:`SpectralState` of the
    forward pass.
    """

    extra_repr = Dense.extra_repr

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        weight_init: Initializer | None = None,
        bias_init: Initializer | None = None,
        rng: np.random.Generator | None = None,
        dtype: Any = np.float32,
        eps: float = 1e-12,
    ) -> None:
        super().__init__()
        self.in_features = positive_int(in_features, "in_features", "SpectralDense")
        self.out_features = positive_int(out_features, "out_features", "SpectralDense")
        rng = layer_rng(rng)
        add_affine_params(
            self, self.in_features, self.out_features, bias, weight_init, bias_init, rng, dtype
        )
        self.add_power_vectors(rng, eps)

    def as_matrix(self, W: Array) -> Array:
        return W.T

    def from_matrix(self, M: Array, shape: tuple[int, ...]) -> Array:
        return M.T

    def forward(self, x: Array, training: bool = True) -> tuple[Array, Cache]:
        self.check_input(x, ("N", self.in_features))
        state = self.normalized_weight(x.dtype, training)
        return dense_forward(x, state.weight, self.param_as("b", x.dtype)), (x, state)

    def backward(
        self, dy: Array, cache: Cache, param_grads: bool = True, input_grad: bool = True
    ) -> Array | None:
        x, state = self.checked_input(cache)
        self.check_dy(dy, (x.shape[0], self.out_features))
        if param_grads:
            self.add_grads(W=self.weight_grad(dense_weight_grad(x, dy), state), b=dy.sum(axis=0))
        return dy @ state.weight.T if input_grad else None

    def second_pass(
        self, v: Array, cache: Cache, kept: Cache, input_grad: bool = True
    ) -> tuple[Array, Array | None]:
        x, state = self.checked_input(cache)
        self.check_second_pass(v, kept, x.shape, (x.shape[0], self.out_features))
        dW_sn, v_dy = dense_second_pass(v, kept, state.weight)
        self.grads["W"] += self.weight_grad(dW_sn, state)
        return v_dy, None

    def checked_input(self, cache: Cache) -> tuple[Array, SpectralState]:
        """``(x, state)`` from ``cache``, once checked to be this layer's."""
        x, state = self.checked_cache(cache)
        if not (has_kind(x, "f") and x.ndim == 2 and x.shape[1] == self.in_features):
            raise self.foreign_cache(
                cache, f"the tuple (x, SpectralState), x of shape (N, {self.in_features})"
            )
        return x, state


class SpectralConv2D(SpectralNormalized):
    r"""A Conv2D layer computing with ``W / sigma(W)``, ``W`` read as the matrix (O, C * kh * kw).

    Parameters
    ----------
    in_channels, out_channels, kernel_size, stride, padding, bias, weight_init, bias_init, dtype
        As for :class:`~tinygan.nn.Conv2D`.
    rng : numpy.random.Generator, optional
        Source of the initial weights and then of the first ``u``; a generator seeded with 0
        when omitted.
    eps : float
        Norms below it are not divided by in the power iteration (PyTorch's 1e-12).

    Shapes
    ------
    As Conv2D's; ``buffers["u"]``: (O,), ``buffers["v"]``: (C * kh * kw,).

    Notes
    -----
    The module docstring derives the power iteration, the backward pass through :math:`\sigma`
    and the second pass. The cache is Conv2D's, ``(x, padding, output shape)``, and the
    :class:`SpectralState` of the forward pass.
    """

    padding_for = Conv2D.padding_for  # the same geometry as a plain convolution
    extra_repr = Conv2D.extra_repr

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: Padding = 0,
        bias: bool = True,
        weight_init: Initializer | None = None,
        bias_init: Initializer | None = None,
        rng: np.random.Generator | None = None,
        dtype: Any = np.float32,
        eps: float = 1e-12,
    ) -> None:
        super().__init__()
        setup_convolution(self, in_channels, out_channels, kernel_size, stride, padding)
        rng = layer_rng(rng)
        add_kernel_params(self, "out_in", bias, weight_init, bias_init, rng, dtype)
        self.add_power_vectors(rng, eps)

    def as_matrix(self, W: Array) -> Array:
        return W.reshape(W.shape[0], -1)

    def from_matrix(self, M: Array, shape: tuple[int, ...]) -> Array:
        return M.reshape(shape)

    def forward(self, x: Array, training: bool = True) -> tuple[Array, Cache]:
        self.check_input(x, ("N", self.in_channels, "*", "*"))
        pad = self.padding_for(x.shape[2:])
        state = self.normalized_weight(x.dtype, training)
        y = conv2d_forward(x, state.weight, self.param_as("b", x.dtype), self.stride, pad)
        return y, ((x, pad, y.shape), state)

    def backward(
        self, dy: Array, cache: Cache, param_grads: bool = True, input_grad: bool = True
    ) -> Array | None:
        (x, pad, y_shape), state = self.checked_conv_cache(cache)
        self.check_dy(dy, y_shape)
        dx, dW_sn, db = conv2d_backward(
            dy, x, state.weight, self.stride, pad, param_grads, input_grad
        )
        if param_grads:
            self.add_grads(W=self.weight_grad(dW_sn, state), b=db)
        return dx

    def second_pass(
        self, v: Array, cache: Cache, kept: Cache, input_grad: bool = True
    ) -> tuple[Array, Array | None]:
        (x, pad, y_shape), state = self.checked_conv_cache(cache)
        self.check_second_pass(v, kept, x.shape, y_shape)
        dW_sn, v_dy = conv2d_second_pass(v, kept, state.weight, self.stride, pad)
        self.grads["W"] += self.weight_grad(dW_sn, state)
        return v_dy, None

    def checked_conv_cache(self, cache: Cache) -> tuple[Cache, SpectralState]:
        """``((x, padding, output shape), state)`` from ``cache``, once checked."""
        conv_cache, state = self.checked_cache(cache)
        try:
            check_conv_cache(self, conv_cache)
        except TypeError:
            raise self.foreign_cache(  # noqa: B904 (the whole cache is described, not its part)
                cache,
                "the tuple ((x, padding, output shape), SpectralState), x of shape "
                f"(N, {self.in_channels}, H, W)",
            )
        return conv_cache, state


def spectral_twin(layer: Dense | Conv2D, rng: np.random.Generator, eps: float) -> Layer:
    """The :class:`SpectralDense` or :class:`SpectralConv2D` of ``layer``'s geometry, holding
    copies of its parameters, with ``u`` drawn from ``rng`` and ``v`` from them."""
    W = layer.params["W"]
    options = {"bias": "b" in layer.params, "rng": rng, "dtype": W.dtype, "eps": eps}
    if isinstance(layer, Dense):
        twin: SpectralNormalized = SpectralDense(layer.in_features, layer.out_features, **options)
    else:
        geometry = (layer.kernel_size, layer.stride, layer.padding)
        twin = SpectralConv2D(layer.in_channels, layer.out_channels, *geometry, **options)
    for name, param in layer.params.items():
        twin.params[name] = param.copy()
    twin.add_power_vectors(rng, eps)  # u and v of the copied weights, not of the drawn ones
    return twin


def spectrally_normalized(
    network: Sequential, rng: np.random.Generator | None = None, eps: float = 1e-12
) -> Sequential:
    """A new Sequential like ``network``, its Dense and Conv2D layers (nested Sequentials' too)
    replaced by :class:`SpectralDense` and :class:`SpectralConv2D` with copies of their
    parameters; every other layer is taken over as it is (the same object).

    ``rng`` draws the power iteration's first vectors (a generator seeded with 0 when omitted).
    """
    rng = layer_rng(rng)
    layers: list[Layer] = []
    for layer in network.layers:
        if isinstance(layer, Sequential):
            layers.append(spectrally_normalized(layer, rng, eps))
        elif type(layer) in (Dense, Conv2D):
            layers.append(spectral_twin(layer, rng, eps))
        else:
            layers.append(layer)
    return Sequential(*layers)
