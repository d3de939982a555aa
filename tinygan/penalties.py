r"""Gradient penalties by double backpropagation: WGAN-GP and R1.

A gradient penalty constrains the discriminator through its gradient with respect to its input,
:math:`g(x) = \nabla_x D(x)`. Gulrajani et al. ("Improved Training of Wasserstein GANs", NeurIPS
2017, arXiv 1704.00028, Algorithm 1) keep the critic close to 1-Lipschitz by penalising
:math:`\lambda\, \mathbb E[(\|g(\hat x)\|_2 - 1)^2]` at random interpolates
:math:`\hat x = \epsilon x + (1 - \epsilon) G(z)`, :math:`\epsilon \sim U[0, 1]` per sample,
:math:`\lambda = 10`. Mescheder, Geiger and Nowozin ("Which Training Methods for GANs do actually
Converge?", ICML 2018, arXiv 1801.04406) penalise :math:`\frac\gamma2 \mathbb E[\|g(x)\|^2]`
on real data alone (R1): D is pushed to be flat on the data, where a perfect generator's samples
would lie, under which they prove the game converges locally.

Both need :math:`\partial P / \partial \theta` for D's parameters :math:`\theta`, and :math:`g` is
itself the result of a backward pass: the gradient of a gradient. Frameworks get it by running
autograd over their own backward graph (``create_graph=True``); here it is assembled by hand from
each layer's *second pass* (:meth:`tinygan.nn.layer.Layer.second_pass`, derived in every layer's
file).

**The computation being differentiated.** For :math:`D = f_K \circ \dots \circ f_1`: the forward
pass :math:`h_k = f_k(h_{k-1}; \theta_k)` from :math:`h_0 = x`, then the backward pass from the
seed :math:`dh_K = 1`,

.. math:: dh_{k-1} = B_k(dh_k, h_{k-1}, \theta_k), \quad k = K, \dots, 1, \qquad g = dh_0,

and the penalty :math:`P(g)`. The seed of ones makes :math:`g` the gradient of
:math:`\sum_n D(x_n)`, whose row :math:`n` is sample :math:`n`'s own input gradient when no layer
mixes the batch (with :class:`~tinygan.nn.MinibatchStd` it is still exactly what an autograd
framework computes with ``grad_outputs`` of ones). :math:`\theta_k` reaches :math:`P` three ways:
directly through :math:`B_k`, through :math:`dh_k` (made by the layers above it), and through the
activation :math:`h_k` that the backward passes above it read. Reverse mode over this whole
computation:

1. :math:`v_0 = \partial P / \partial g`, the penalty's own derivative (below).
2. For :math:`k = 1, \dots, K`: forward order, since the backward pass ran from :math:`K` down to
   1 and its reverse runs up. Layer :math:`k`'s second pass takes :math:`v_{k-1}` on
   :math:`dh_{k-1}` and differentiates :math:`\langle v_{k-1}, B_k \rangle`: it adds the part for
   :math:`\theta_k` to the gradients, hands :math:`v_k` (its part for :math:`dh_k`) to layer
   :math:`k + 1`, and returns :math:`u_{k-1}`, its part for the activation :math:`h_{k-1}`.
3. The :math:`u`'s are gradients on activations of the forward pass. One ordinary backward pass
   from the top, adding :math:`u_{k-1}` at the input of layer :math:`k` as it goes by, adds the
   rest of every parameter's gradient.

:meth:`tinygan.nn.Sequential.second_pass` runs steps 2 and 3; :func:`penalty_backward` wraps them
around the forward pass, the first backward pass and the penalty.

**Worked through: Dense, ReLU, Dense.** :math:`D(x) = \mathrm{relu}(x W_1 + b_1) W_2 + b_2` on
rows :math:`x`, with :math:`W_1` (d, h) and :math:`W_2` (h, 1). Forward: :math:`a = x W_1 + b_1`
and the mask :math:`m = [a > 0]`. Backward from the seed :math:`\delta = 1` (N, 1):

.. math:: dh_2 = \delta W_2^\top, \qquad dh_1 = m \odot dh_2, \qquad g = dh_1 W_1^\top,

so :math:`g_n = (m_n \odot W_2^\top) W_1^\top`. Given :math:`v = \partial P / \partial g` (N, d),
the second passes, in forward order:

* Dense 1, :math:`\langle v, dh_1 W_1^\top \rangle`: :math:`v^\top dh_1` for :math:`W_1`,
  :math:`v W_1` on to :math:`dh_1`, nothing for :math:`x` or :math:`b_1`;
* ReLU, :math:`\langle v W_1, m \odot dh_2 \rangle`: :math:`m \odot v W_1` on to :math:`dh_2`,
  nothing for :math:`a` (the mask is constant almost everywhere);
* Dense 2, :math:`\langle m \odot v W_1, \delta W_2^\top \rangle`: :math:`(m \odot v W_1)^\top
  \delta` for :math:`W_2`; the vector on the seed is dropped (the seed is a constant).

Hence

.. math::
    \frac{\partial P}{\partial W_1} = v^\top (m \odot \delta W_2^\top), \qquad
    \frac{\partial P}{\partial W_2} = (m \odot v W_1)^\top \delta, \qquad
    \frac{\partial P}{\partial b_1} = \frac{\partial P}{\partial b_2} = 0,

and step 3 has nothing to carry: a ReLU network is piecewise linear, its input gradient is
constant on each piece, and the biases only choose the pieces. By hand: :math:`g_n = \sum_j W_{2j}
m_{nj} W_{1,:j}^\top`, so perturbing :math:`W_1` changes :math:`P` by :math:`\sum_n v_n \cdot
(m_n \odot W_2^\top) dW_1^\top = \langle v^\top (m \odot \delta W_2^\top), dW_1 \rangle`, as
above. With a Tanh in the ReLU's place the middle pass also returns
:math:`u = \tanh''(a) \odot dh_2 \odot v W_1` on :math:`a`, and step 3 sends it back through
Dense 1: :math:`\partial P/\partial W_1` gains :math:`x^\top u` and :math:`\partial P/\partial b_1`
gains :math:`\sum_n u_n`.

**The penalties and their derivatives**, over :math:`N` samples with :math:`g_n` sample
:math:`n`'s input gradient flattened to a vector:

* WGAN-GP, :func:`wgan_gp`: :math:`P = \frac\lambda N \sum_n (\|g_n\| - 1)^2`,
  :math:`\partial P / \partial g_n = \frac{2\lambda}{N} (\|g_n\| - 1)\, g_n / \|g_n\|` (0 where
  :math:`g_n = 0`, where the norm has no derivative);
* R1, :func:`r1`: :math:`P = \frac{\gamma}{2N} \sum_n \|g_n\|^2`,
  :math:`\partial P / \partial g_n = \gamma g_n / N`.

**What is held constant.** The points at which :math:`g` is taken: the data for R1 and, for
WGAN-GP, the interpolates :math:`\hat x`, treated as constants as in the paper's implementation
(the penalty trains the critic only; no gradient reaches G through :math:`\hat x`, nor
:math:`\epsilon`). The seed. And the forward pass's discrete choices (ReLU masks, max-pool and
maxout winners, dropout masks), which every backward pass holds.

**Which layers.** Every layer of D needs a second pass. BatchNorm has none: its output for one
sample depends on the batch, so a per-sample input gradient is not what the penalty means (the
WGAN-GP paper drops batch normalisation from the critic for this reason). A discriminator holding
such a layer is refused before any work, by :func:`check_second_passes`.
"""

from __future__ import annotations

from collections.abc import Callable
from numbers import Real
from typing import Any

from tinygan.backend import Array, get_array_module
from tinygan.nn.layer import Layer, check_floating

#: The gradient penalties :func:`gradient_penalty` knows, by name.
PENALTIES = ("wgan-gp", "r1")
#: lambda of WGAN-GP (Gulrajani et al. 2017, Algorithm 1).
WGAN_GP_WEIGHT = 10.0
#: gamma of R1 when none is given (the paper tunes it per data set; 10 is a common choice).
R1_WEIGHT = 10.0

#: A penalty on the input gradient: ``g -> (P, dP/dg)``.
Penalty = Callable[[Array], tuple[Array, Array]]


def rows_and_norms(g: Array) -> tuple[Array, Array]:
    """``g`` (N, ...) as rows (N, D), one per sample, and their Euclidean norms (N, 1)."""
    xp = get_array_module(g)
    rows = g.reshape(g.shape[0], -1)
    return rows, xp.sqrt((rows * rows).sum(axis=1, keepdims=True))


def wgan_gp(g: Array, weight: float = WGAN_GP_WEIGHT) -> tuple[Array, Array]:
    r"""The WGAN-GP penalty on input gradients ``g`` (N, ...), and its gradient with respect to them.

    Returns
    -------
    value : 0-d array
        :math:`P = \frac{\lambda}{N} \sum_n (\|g_n\|_2 - 1)^2`.
    dg : array, like ``g``
        :math:`\frac{2\lambda}{N} (\|g_n\| - 1)\, g_n / \|g_n\|`, and 0 for a row
        :math:`g_n = 0` (the subgradient PyTorch's norm takes there too).
    """
    xp = get_array_module(g)
    rows, norms = rows_and_norms(g)
    count, lam = g.dtype.type(g.shape[0]), g.dtype.type(weight)
    gap = norms - 1
    safe = xp.where(norms > 0, norms, 1)
    direction = xp.where(norms > 0, rows / safe, 0)
    dg = (2 * lam / count) * gap * direction
    return lam * (gap * gap).sum() / count, dg.astype(g.dtype, copy=False).reshape(g.shape)


def r1(g: Array, weight: float = R1_WEIGHT) -> tuple[Array, Array]:
    r"""The R1 penalty on input gradients ``g`` (N, ...), and its gradient with respect to them.

    Returns
    -------
    value : 0-d array
        :math:`P = \frac{\gamma}{2N} \sum_n \|g_n\|_2^2`.
    dg : array, like ``g``
        :math:`\gamma\, g_n / N`.
    """
    count, gamma = g.dtype.type(g.shape[0]), g.dtype.type(weight)
    return gamma * (g * g).sum() / (2 * count), (gamma / count) * g


def interpolates(real: Array, fake: Array, rng: Any) -> Array:
    r"""WGAN-GP's points :math:`\hat x = \epsilon x + (1 - \epsilon) \tilde x`, one
    :math:`\epsilon \sim U[0, 1)` per sample, in ``real``'s dtype.

    ``rng`` is a NumPy generator for NumPy arrays, a device generator
    (:func:`tinygan.backend.make_rng`) for device arrays.
    """
    if real.shape != fake.shape:
        raise ValueError(
            f"interpolates: real {tuple(real.shape)} and fake {tuple(fake.shape)} batches must "
            "have one shape"
        )
    shape = (real.shape[0],) + (1,) * (real.ndim - 1)
    eps = rng.random(shape).astype(real.dtype, copy=False)
    return eps * real + (1 - eps) * fake


def check_second_passes(discriminator: Layer) -> None:
    """Raise ``ValueError``, in one line naming it, for the first layer of ``discriminator`` that
    has no second pass (BatchNorm), before any work is done."""
    for path, layer in discriminator.named_layers():
        if not layer.has_second_pass:
            where = (
                f"layer {path.rstrip('.')} of the discriminator" if path else "the discriminator"
            )
            raise ValueError(
                f"a gradient penalty needs the derivative of every layer's backward pass, and "
                f"{where}, {type(layer).__name__}, has none"
            )


def penalty_backward(
    discriminator: Layer, points: Array, penalty: Penalty, training: bool = True
) -> tuple[Array, Array]:
    """The penalty on D's input gradient at ``points``; adds its parameter gradient into D's grads.

    Runs D forward, backward from a seed of ones (no parameter gradients) to the input gradient
    ``g``, ``penalty(g) -> (P, dP/dg)``, then D's second pass (the module docstring derives the
    steps). Nothing flows to ``points``: they are constants.

    Parameters
    ----------
    discriminator : Layer
        Every layer must have a second pass (:func:`check_second_passes`).
    points : array
        Where the gradient is taken: a batch shaped like D's input.
    penalty : callable
        ``g -> (value, dvalue/dg)``, e.g. :func:`wgan_gp` or :func:`r1`.
    training : bool
        Mode of D's forward pass (a Dropout layer draws one mask, held by every pass after it; a
        spectrally normalised layer takes a power-iteration step, as in any training forward).

    Returns
    -------
    value : 0-d array
        The penalty.
    g : array, like ``points``
        D's input gradient at ``points``.
    """
    check_second_passes(discriminator)
    check_floating(points, "penalty_backward")
    outputs, cache = discriminator.forward(points, training=training)
    g, kept = discriminator.input_gradient(get_array_module(outputs).ones_like(outputs), cache)
    value, v = penalty(g)
    discriminator.second_pass(v, cache, kept, input_grad=False)
    return value, g


def gradient_penalty(
    discriminator: Layer,
    real: Array,
    fake: Array | None = None,
    kind: str = "wgan-gp",
    weight: float | None = None,
    rng: Any = None,
    training: bool = True,
) -> Array:
    """A gradient penalty chosen by name; adds its parameter gradient into D's grads.

    Parameters
    ----------
    discriminator : Layer
        D (a critic for WGAN-GP), every layer with a second pass.
    real : array
        A batch of real data.
    fake : array, optional
        A batch of generated samples of ``real``'s shape: needed by ``"wgan-gp"``, unused by
        ``"r1"``.
    kind : {"wgan-gp", "r1"}
        :func:`wgan_gp` at :func:`interpolates` of ``real`` and ``fake``, or :func:`r1` at ``real``.
    weight : float, optional
        lambda or gamma; :data:`WGAN_GP_WEIGHT` or :data:`R1_WEIGHT` (both 10) when omitted.
    rng : Generator, optional
        Draws the interpolation weights (``"wgan-gp"`` only).
    training : bool
        Mode of D's forward pass (see :func:`penalty_backward`).

    Returns
    -------
    0-d array
        The penalty's value, to add to D's loss when reporting it.
    """
    if kind not in PENALTIES:
        raise ValueError(f"kind must be one of {PENALTIES}, got {kind!r}")
    default = WGAN_GP_WEIGHT if kind == "wgan-gp" else R1_WEIGHT
    weight = default if weight is None else weight
    if not (isinstance(weight, Real) and not isinstance(weight, bool) and weight >= 0):
        raise ValueError(f"gradient_penalty: weight must be a number >= 0, got {weight!r}")
    if kind == "r1":
        points, penalty = real, lambda g: r1(g, weight)
    else:
        if fake is None or rng is None:
            raise ValueError("gradient_penalty: kind 'wgan-gp' needs the fake batch and an rng")
        points, penalty = interpolates(real, fake, rng), lambda g: wgan_gp(g, weight)
    return penalty_backward(discriminator, points, penalty, training)[0]
