r"""The compute floor of one GAN training iteration: its matrix-product FLOPs, counted from the layers.

Dense layers and convolutions are matrix products, and everything else in a training step
(activations, BatchNorm, pooling, the loss, Adam) is elementwise or a reduction: linear in the size
of the activations, negligible next to the products, and memory-bound. The floor counted here is
therefore the FLOPs of the products alone, with one multiply-add counted as 2 FLOPs.

Per layer and per sample, one product (``gemm_flops``):

* ``Dense(I, O)``: :math:`2 I O`;
* ``Conv2D`` with weight ``(O, I, kh, kw)`` and output ``(OH, OW)``: :math:`2\, OH\, OW\, O\, I\, kh\, kw`
  -- the GEMM of the im2col lowering, so the taps that fall on padding zeros are counted too;
* ``ConvTranspose2D`` with weight ``(I, O, kh, kw)`` and input ``(H, W)``: :math:`2\, H\, W\, I\, O\, kh\, kw`
  -- every input pixel stamps the whole kernel, including the rows and columns that ``"same"``
  padding crops afterwards;
* every other layer: 0.

Its backward pass has two more products of exactly the same size: the gradient with respect to the
input (``dx = dy W^T``, or col2im of ``dy W^T``) and the one with respect to the weight
(``dW = x^T dy``). The floor counts only the products a minimal implementation cannot skip:

* weight gradients only where the step updates the network;
* an input gradient only where something needs it: the network's input (the generator step needs
  :math:`\partial L_G / \partial G(z)` through D), or a layer with parameters further upstream. So the
  first layer's input gradient is never counted in a network's own update (nothing upstream of the
  data or of the noise learns).

One iteration, per :meth:`tinygan.gan.GAN.train_step`, with ``F_net`` the forward products:

* a discriminator step (``d_steps`` of them): G forward on the noise, then D forward and backward
  (weight gradients and the input gradients behind them) on the real batch and on the fake batch;
* a generator step (``g_steps`` of them): G forward, D forward, D backward to its input only (no D
  weight gradients), G backward (weight gradients and the input gradients behind them).

A simultaneous step (``preset.simultaneous``, dcgan-tf's) is the discriminator step plus the
generator step's backward products: its generator update reuses the discriminator update's
forward passes of G and of D on the fakes.

Everything scales linearly with the batch size ``N``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinygan.interop import trace_layers
from tinygan.models import Preset
from tinygan.nn import Conv2D, ConvTranspose2D, Dense, Layer


@dataclass(frozen=True)
class LayerCost:
    """One leaf layer of a network, its per-sample shapes and its per-sample product FLOPs.

    ``gemm_flops`` is the cost of one of the layer's three products (forward, input gradient,
    weight gradient), which are all the same size; 0 for layers without a product.
    """

    layer: Layer
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    gemm_flops: int

    @property
    def has_params(self) -> bool:
        """Whether the layer learns something (so the gradient must reach it)."""
        return bool(self.layer.params)


@dataclass(frozen=True)
class IterationFlops:
    """Product FLOPs of one training iteration at one batch size (see the module docstring).

    In a simultaneous step ``g_step`` is what the generator update adds to the discriminator's.
    """

    d_step: int
    g_step: int
    d_steps: int
    g_steps: int

    @property
    def total(self) -> int:
        """``d_steps * d_step + g_steps * g_step``."""
        return self.d_steps * self.d_step + self.g_steps * self.g_step


def gemm_flops(layer: Layer, input_shape: tuple[int, ...], output_shape: tuple[int, ...]) -> int:
    """FLOPs of one of ``layer``'s products for one sample of the given shapes (0 if it has none).

    Parameters
    ----------
    layer : Layer
        A leaf layer.
    input_shape, output_shape : tuple of int
        Per-sample shapes, without the batch axis: ``(features,)`` or ``(C, H, W)``.

    Returns
    -------
    int
        ``2 * multiply-adds``: ``2 I O`` for Dense, ``2 OH OW * W.size`` for Conv2D,
        ``2 H W * W.size`` for ConvTranspose2D.
    """
    if isinstance(layer, Dense):
        return 2 * int(layer.params["W"].size)
    if isinstance(layer, Conv2D):
        return 2 * int(np.prod(output_shape[1:])) * int(layer.params["W"].size)
    if isinstance(layer, ConvTranspose2D):
        return 2 * int(np.prod(input_shape[1:])) * int(layer.params["W"].size)
    return 0


def trace(network: Layer, sample_shape: tuple[int, ...]) -> list[LayerCost]:
    """The leaf layers of ``network`` in data-flow order, with their per-sample shapes and costs.

    Shapes come from :func:`tinygan.interop.trace_layers`: each layer runs in evaluation mode on a
    batch of one zero sample, so any layer type is traced correctly.

    Parameters
    ----------
    network : Layer
        A leaf layer or a (nested) Sequential of them.
    sample_shape : tuple of int
        Shape of one input sample.

    Returns
    -------
    list of LayerCost
    """
    return [
        LayerCost(
            t.layer,
            t.input_shape,
            t.output_shape,
            gemm_flops(t.layer, t.input_shape, t.output_shape),
        )
        for t in trace_layers(network, sample_shape)
    ]


def forward_flops(costs: list[LayerCost]) -> int:
    """Per-sample FLOPs of the forward products."""
    return sum(cost.gemm_flops for cost in costs)


def backward_flops(costs: list[LayerCost], input_grad: bool, weight_grads: bool) -> int:
    """Per-sample FLOPs of the backward products a minimal implementation needs.

    Parameters
    ----------
    costs : list of LayerCost
        From :func:`trace`.
    input_grad : bool
        Whether the gradient with respect to the network's input is wanted.
    weight_grads : bool
        Whether the network's weight gradients are wanted.

    Returns
    -------
    int
        The weight-gradient products (if wanted) plus each layer's input-gradient product when
        ``input_grad`` or when a layer with parameters lies upstream of it and ``weight_grads``.
    """
    total = 0
    learner_upstream = False
    for cost in costs:
        if weight_grads and cost.has_params:
            total += cost.gemm_flops
        if input_grad or (weight_grads and learner_upstream):
            total += cost.gemm_flops
        learner_upstream = learner_upstream or cost.has_params
    return total


def iteration_flops(
    preset: Preset, generator: Layer, discriminator: Layer, batch_size: int
) -> IterationFlops:
    """Product FLOPs of one training iteration of ``preset`` at ``batch_size``.

    Parameters
    ----------
    preset : Preset
        Gives the latent size, the data shape, ``d_steps`` / ``g_steps`` and ``simultaneous``.
    generator, discriminator : Layer
        The preset's networks (only their shapes matter).
    batch_size : int
        Real (and fake) samples per step.

    Returns
    -------
    IterationFlops
    """
    g = trace(generator, (preset.latent_dim,))
    d = trace(discriminator, preset.data_shape)
    g_fwd, d_fwd = forward_flops(g), forward_flops(d)
    d_learn = backward_flops(d, input_grad=False, weight_grads=True)
    d_step = g_fwd + 2 * (d_fwd + d_learn)
    g_backward = backward_flops(d, input_grad=True, weight_grads=False) + backward_flops(
        g, input_grad=False, weight_grads=True
    )
    g_step = g_backward if preset.simultaneous else g_fwd + d_fwd + g_backward
    return IterationFlops(
        d_step=batch_size * d_step,
        g_step=batch_size * g_step,
        d_steps=preset.d_steps,
        g_steps=preset.g_steps,
    )
