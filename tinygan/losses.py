r"""Sigmoid cross-entropy on logits: the loss of every GAN in tinygan.

For a logit :math:`x` (the discriminator's raw output), :math:`p = \sigma(x)` and a target
:math:`t \in [0, 1]` (1 = real, 0 = fake, 0.9 with label smoothing), binary cross-entropy is

.. math:: \ell(x, t) = -t \log \sigma(x) - (1 - t) \log(1 - \sigma(x)).

Evaluated literally it breaks: :math:`\sigma(-40)` is 4e-18 in float64 and :math:`\sigma(20) = 1` in
float32, so the logs give ``-inf`` and the gradients NaN. Using :math:`\log\sigma(x) = -\log(1 + e^{-x})`
and :math:`\log(1 - \sigma(x)) = -x - \log(1 + e^{-x})`,

.. math:: \ell(x, t) = (1 - t)\,x + \log(1 + e^{-x}),

and rewriting :math:`\log(1 + e^{-x}) = \max(-x, 0) + \log(1 + e^{-|x|})` gives the form computed here,

.. math:: \ell(x, t) = \max(x, 0) - t\,x + \operatorname{log1p}(e^{-|x|}),

in which ``exp`` only ever sees a non-positive argument (no overflow) and ``log1p`` keeps full precision
when :math:`e^{-|x|}` is tiny. For :math:`x = \pm 10^4` the values are exact: 0 or :math:`10^4`.

The gradient is remarkably simple: :math:`\partial \ell / \partial x = \sigma(x) - t`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygan.backend import get_array_module
from tinygan.nn.activations import sigmoid


def sigmoid_cross_entropy(logits: Any, targets: Any) -> tuple[Any, Any]:
    r"""Mean binary cross-entropy of ``sigmoid(logits)`` against ``targets``, and its gradient.

    Parameters
    ----------
    logits : array, shape (N, ...)
        Raw scores; any finite value is safe.
    targets : float or array broadcastable to ``logits``
        Target probabilities: 1.0 for real, 0.0 for fake, 0.9 / 0.1 for smoothed labels.

    Returns
    -------
    loss : 0-d array
        :math:`L = \frac{1}{M}\sum_i \ell(x_i, t_i)` over all :math:`M` entries (the batch mean for
        a discriminator's (N, 1) output). A 0-d array, not a Python float, so that on a GPU reading it
        (and synchronising) is left to whoever logs it.
    dlogits : array, like ``logits``
        :math:`\partial L/\partial x_i = (\sigma(x_i) - t_i) / M`.

    Notes
    -----
    Stable form :math:`\ell = \max(x, 0) - t x + \operatorname{log1p}(e^{-|x|})`; see the module
    docstring for the derivation.
    """
    xp = get_array_module(logits)
    if not xp.issubdtype(logits.dtype, xp.floating):
        raise ValueError(f"sigmoid_cross_entropy expects floating logits, got {logits.dtype}")
    targets = xp.asarray(targets, dtype=logits.dtype)
    try:
        broadcast = np.broadcast_shapes(targets.shape, logits.shape)
    except ValueError:
        broadcast = None
    if broadcast != tuple(logits.shape):
        raise ValueError(
            f"sigmoid_cross_entropy: targets of shape {tuple(targets.shape)} do not broadcast to "
            f"logits of shape {tuple(logits.shape)}"
        )
    count = logits.size
    elementwise = xp.maximum(logits, 0) - targets * logits + xp.log1p(xp.exp(-xp.abs(logits)))
    loss = elementwise.sum() / count
    dlogits = (sigmoid(logits) - targets) / logits.dtype.type(count)
    return loss, dlogits
