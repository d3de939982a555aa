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

:func:`softmax_cross_entropy` is the same idea for :math:`K` classes (the loss of the classifier
behind the quality metrics in :mod:`tinygan.metrics`), made stable by the log-sum-exp identity.
"""

from __future__ import annotations

from numbers import Real

import numpy as np

from tinygan.backend import Array, get_array_module
from tinygan.nn.activations import sigmoid


def sigmoid_cross_entropy(logits: Array, targets: Array) -> tuple[Array, Array]:
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
    if isinstance(targets, Real):
        # a scalar stays a scalar: on a GPU it is a kernel argument, while an array made of it
        # would be one more copy from the host at every call
        targets = logits.dtype.type(targets)
    else:
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


def log_softmax(logits: Array) -> Array:
    r"""Log-probabilities of a softmax over the last axis, for any finite logits.

    Parameters
    ----------
    logits : array, shape (..., K)

    Returns
    -------
    array, like ``logits``
        :math:`\log p_k = z_k - \operatorname{LSE}(z)` (exponentiate for the probabilities).

    Notes
    -----
    :math:`\operatorname{LSE}(z) = \log \sum_j e^{z_j} = m + \log \sum_j e^{z_j - m}` for any
    :math:`m`; with :math:`m = \max_j z_j` every exponent is at most 0 (no overflow) and the largest
    term is exactly 1 (the sum cannot underflow to 0, so its log is finite).
    """
    xp = get_array_module(logits)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=-1, keepdims=True))


def softmax_cross_entropy(logits: Array, labels: Array) -> tuple[Array, Array]:
    r"""Mean cross-entropy of ``softmax(logits)`` against integer class labels, and its gradient.

    Parameters
    ----------
    logits : array, shape (N, K)
        Raw class scores; any finite values are safe.
    labels : integer array, shape (N,)
        The true class of each row, in ``0 .. K-1``.

    Returns
    -------
    loss : 0-d array
        :math:`L = -\frac1N \sum_n \log p_{n, y_n}`.
    dlogits : array, like ``logits``
        :math:`\partial L / \partial z_{nk} = (p_{nk} - [k = y_n]) / N`.

    Notes
    -----
    With :math:`p_{nk} = e^{z_{nk}} / \sum_j e^{z_{nj}}` the loss of one row is

    .. math:: \ell_n = -\log p_{n, y_n} = \operatorname{LSE}(z_n) - z_{n, y_n},

    computed through :func:`log_softmax`, so the exponentials never overflow and the logarithm never
    sees 0. Its derivative: :math:`\partial \operatorname{LSE}(z) / \partial z_k
    = e^{z_k} / \sum_j e^{z_j} = p_k` and :math:`\partial z_y / \partial z_k = [k = y]`, so
    :math:`\partial \ell_n / \partial z_{nk} = p_{nk} - [k = y_n]`: the predicted distribution
    minus the one-hot target, divided by :math:`N` for the mean. It is bounded by 1 in absolute value
    for any logits, which is why this loss trains so steadily.
    """
    xp = get_array_module(logits)
    if logits.ndim != 2 or not xp.issubdtype(logits.dtype, xp.floating):
        raise ValueError(
            f"softmax_cross_entropy expects floating logits of shape (N, K), got {logits.dtype} "
            f"of shape {tuple(logits.shape)}"
        )
    labels = xp.asarray(labels)
    count, classes = logits.shape
    if labels.shape != (count,) or not xp.issubdtype(labels.dtype, xp.integer):
        raise ValueError(
            f"softmax_cross_entropy expects integer labels of shape ({count},), got "
            f"{labels.dtype} of shape {tuple(labels.shape)}"
        )
    if count and (int(labels.min()) < 0 or int(labels.max()) >= classes):
        raise ValueError(f"softmax_cross_entropy: labels must lie in 0..{classes - 1}")
    log_p = log_softmax(logits)
    rows = xp.arange(count)
    loss = -log_p[rows, labels].sum() / count
    dlogits = xp.exp(log_p)
    dlogits[rows, labels] -= 1
    dlogits /= logits.dtype.type(count)
    return loss, dlogits
