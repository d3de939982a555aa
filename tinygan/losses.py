r"""The losses of tinygan: sigmoid cross-entropy on logits, the GAN losses built on a
discriminator's raw outputs, and softmax cross-entropy for the quality classifier.

*Sigmoid cross-entropy.* For a logit :math:`x` (the discriminator's raw output),
:math:`p = \sigma(x)` and a target :math:`t \in [0, 1]` (1 = real, 0 = fake, 0.9 with label
smoothing), binary cross-entropy is

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

*The GAN losses* (:class:`GanLoss`): what the discriminator and the generator minimise, as
functions of D's raw outputs on a real batch, :math:`r_i = D(x_i)`, and on a fake batch,
:math:`f_i = D(G(z_i))`. Each returns its value and its gradient with respect to those outputs,
which the GAN step sends back through D. Besides the cross-entropy game (non-saturating and
minimax) there are three that the field turned to after it: least squares (:class:`LeastSquaresLoss`),
the hinge (:class:`HingeLoss`) and the Wasserstein critic (:class:`WassersteinLoss`, with
:func:`clip_weights`); :func:`gan_loss` picks one by name. Every mean is over all the entries of
its batch, as in :func:`sigmoid_cross_entropy`.

:func:`softmax_cross_entropy` is the same idea as the sigmoid cross-entropy for :math:`K` classes
(the loss of the classifier behind the quality metrics in :mod:`tinygan.quality.metrics`), made stable by
the log-sum-exp identity.
"""

from __future__ import annotations

from numbers import Real

import numpy as np

from tinygan.backend import Array, get_array_module
from tinygan.nn.activations import sigmoid
from tinygan.nn.layer import Layer


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


def check_outputs(outputs: Array, name: str) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``outputs`` is a floating-point array."""
    dtype = getattr(outputs, "dtype", None)
    if dtype is None or getattr(dtype, "kind", None) != "f":
        got = dtype if dtype is not None else type(outputs).__name__
        raise ValueError(f"{name} expects a floating-point array of D's outputs, got {got}")


def squared_error(outputs: Array, target: float) -> tuple[Array, Array]:
    r"""Half the mean squared distance of ``outputs`` from ``target``, and its gradient.

    :math:`L = \frac{1}{2M} \sum_i (x_i - t)^2` over the :math:`M` entries, so
    :math:`\partial L / \partial x_i = (x_i - t) / M`: the least-squares GAN's terms.
    """
    check_outputs(outputs, "squared_error")
    count = outputs.dtype.type(outputs.size)
    error = outputs - outputs.dtype.type(target)
    return (error * error).sum() / (2 * count), error / count


def margin_hinge(outputs: Array, sign: float) -> tuple[Array, Array]:
    r"""Mean hinge :math:`L = \frac1M \sum_i \max(0, 1 - s x_i)` for ``sign`` :math:`s = \pm 1`,
    and its gradient :math:`\partial L / \partial x_i = -s\,[1 - s x_i > 0] / M`.

    ``sign = 1`` asks for outputs of at least 1 (real samples), ``sign = -1`` for outputs of at
    most -1 (fakes). At the kink :math:`s x_i = 1` the subgradient 0 is taken.
    """
    check_outputs(outputs, "margin_hinge")
    xp = get_array_module(outputs)
    one, s = outputs.dtype.type(1), outputs.dtype.type(sign)
    count = outputs.dtype.type(outputs.size)
    gap = one - s * outputs
    return xp.maximum(gap, 0).sum() / count, xp.where(gap > 0, -s / count, 0).astype(outputs.dtype)


def signed_mean(outputs: Array, sign: float) -> tuple[Array, Array]:
    r""":math:`L = \frac{s}{M} \sum_i x_i` for ``sign`` :math:`s`, and its constant gradient
    :math:`\partial L / \partial x_i = s / M`: the Wasserstein terms."""
    check_outputs(outputs, "signed_mean")
    xp = get_array_module(outputs)
    s, count = outputs.dtype.type(sign), outputs.dtype.type(outputs.size)
    return s * outputs.sum() / count, xp.full_like(outputs, s / count)


class GanLoss:
    r"""A GAN's pair of losses on the discriminator's raw outputs, selectable by :attr:`name`.

    ``discriminator(real_out, fake_out) -> (L_D, dL_D/d real_out, dL_D/d fake_out)`` is what D
    minimises on a real and a fake batch; ``generator(fake_out) -> (L_G, dL_G/d fake_out)`` is what
    G minimises through D. Every value is a 0-d array and every gradient has its outputs' shape
    and dtype; the GAN step sends the gradients back through D (and, for G's, on into G).

    Attributes
    ----------
    name : str
        The name :func:`gan_loss` knows it by.
    outputs_are_logits : bool
        Whether D's outputs are logits of the probability that a sample is real (the
        cross-entropy losses), so that ``sigmoid(output)`` is worth reporting; for the other
        losses D's output is an unbounded score.
    """

    name = ""
    outputs_are_logits = False

    def discriminator(self, real_out: Array, fake_out: Array) -> tuple[Array, Array, Array]:
        """D's loss on a real and a fake batch, and its gradient with respect to each batch's
        outputs."""
        raise NotImplementedError(f"{type(self).__name__} must implement discriminator")

    def generator(self, fake_out: Array) -> tuple[Array, Array]:
        """G's loss on D's outputs for a fake batch, and its gradient with respect to them."""
        raise NotImplementedError(f"{type(self).__name__} must implement generator")

    def __repr__(self) -> str:
        options = ", ".join(f"{key}={value!r}" for key, value in vars(self).items())
        return f"{type(self).__name__}({options})"


class NonSaturatingLoss(GanLoss):
    r"""The original GAN's cross-entropy game (Goodfellow et al. 2014) with the non-saturating
    generator.

    D: :math:`L_D = \mathrm{BCE}(r, t_{real}) + \mathrm{BCE}(f, t_{fake})`, the negative of the
    value function :math:`V` for targets 1 and 0. G: :math:`L_G = \mathrm{BCE}(f, t_G) = -\log
    \sigma(f)` for :math:`t_G = 1`, which keeps a strong gradient where D rejects the fakes with
    confidence. Gradients :math:`(\sigma(x) - t) / M` (:func:`sigmoid_cross_entropy`).

    Parameters
    ----------
    real_label, fake_label : float
        D's targets (0.9 / 0.1 for label smoothing).
    generator_target : float
        G's target for :math:`\sigma(f)` (1.0; 0.9 in the Keras 1-D Gaussian tutorial).
    """

    name = "nonsaturating"
    outputs_are_logits = True

    def __init__(
        self, real_label: float = 1.0, fake_label: float = 0.0, generator_target: float = 1.0
    ) -> None:
        self.real_label, self.fake_label = float(real_label), float(fake_label)
        self.generator_target = float(generator_target)

    def discriminator(self, real_out: Array, fake_out: Array) -> tuple[Array, Array, Array]:
        loss_real, d_real = sigmoid_cross_entropy(real_out, self.real_label)
        loss_fake, d_fake = sigmoid_cross_entropy(fake_out, self.fake_label)
        return loss_real + loss_fake, d_real, d_fake

    def generator(self, fake_out: Array) -> tuple[Array, Array]:
        return sigmoid_cross_entropy(fake_out, self.generator_target)


class MinimaxLoss(NonSaturatingLoss):
    r"""The cross-entropy game with the minimax generator of the value function itself.

    D as in :class:`NonSaturatingLoss`. G minimises :math:`\log(1 - \sigma(f)) =
    -\mathrm{BCE}(f, 0)`, gradient :math:`-\sigma(f) / M`: it vanishes where D rejects the
    fakes, which is why the non-saturating generator replaced it.
    """

    name = "minimax"

    def generator(self, fake_out: Array) -> tuple[Array, Array]:
        loss, d_fake = sigmoid_cross_entropy(fake_out, 0.0)
        return -loss, -d_fake


class LeastSquaresLoss(GanLoss):
    r"""Least-squares GAN (Mao et al., "Least Squares Generative Adversarial Networks", ICCV 2017,
    arXiv 1611.04076).

    D pulls its outputs on real data towards :math:`b` and on fakes towards :math:`a`; G pulls D's
    outputs on its fakes towards :math:`c`:

    .. math::
        L_D = \tfrac12 \mathbb E[(D(x) - b)^2] + \tfrac12 \mathbb E[(D(G(z)) - a)^2], \qquad
        L_G = \tfrac12 \mathbb E[(D(G(z)) - c)^2].

    The defaults are the paper's 0-1 coding, :math:`a = 0`, :math:`b = c = 1`, with the factor
    :math:`\tfrac12` of its equations (the coding of its experiments; :math:`a = -1, b = 1, c = 0`
    is the one under which, at the optimal D, G minimises the Pearson :math:`\chi^2` divergence). D's output is a raw
    score, no sigmoid. Gradients, from :func:`squared_error`: :math:`(r_i - b) / M` and
    :math:`(f_i - a) / M` for D, :math:`(f_i - c) / M` for G. Unlike the cross-entropy, the
    squared error keeps pulling fakes that D already places on the real side but far from
    :math:`b`, the paper's argument against vanishing gradients.
    """

    name = "least-squares"

    def __init__(self, a: float = 0.0, b: float = 1.0, c: float = 1.0) -> None:
        self.a, self.b, self.c = float(a), float(b), float(c)

    def discriminator(self, real_out: Array, fake_out: Array) -> tuple[Array, Array, Array]:
        loss_real, d_real = squared_error(real_out, self.b)
        loss_fake, d_fake = squared_error(fake_out, self.a)
        return loss_real + loss_fake, d_real, d_fake

    def generator(self, fake_out: Array) -> tuple[Array, Array]:
        return squared_error(fake_out, self.c)


class HingeLoss(GanLoss):
    r"""The hinge loss of Lim & Ye ("Geometric GAN", arXiv 1705.02894) and Miyato et al.
    ("Spectral Normalization for Generative Adversarial Networks", ICLR 2018, arXiv 1802.05957).

    .. math::
        L_D = \mathbb E[\max(0, 1 - D(x))] + \mathbb E[\max(0, 1 + D(G(z)))], \qquad
        L_G = -\mathbb E[D(G(z))].

    D is a margin classifier: a real sample scored above 1 or a fake below -1 costs nothing and
    sends no gradient, so D stops pushing samples it already separates. Gradients
    (:func:`margin_hinge`, :func:`signed_mean`): :math:`-[r_i < 1] / M` and :math:`[f_i > -1] / M`
    for D (0 at the kinks), :math:`-1 / M` for G.
    """

    name = "hinge"

    def discriminator(self, real_out: Array, fake_out: Array) -> tuple[Array, Array, Array]:
        loss_real, d_real = margin_hinge(real_out, 1.0)
        loss_fake, d_fake = margin_hinge(fake_out, -1.0)
        return loss_real + loss_fake, d_real, d_fake

    def generator(self, fake_out: Array) -> tuple[Array, Array]:
        return signed_mean(fake_out, -1.0)


#: The weight-clipping bound of the Wasserstein GAN paper (Algorithm 1, c = 0.01).
WEIGHT_CLIP = 0.01


class WassersteinLoss(GanLoss):
    r"""The Wasserstein GAN's critic (Arjovsky, Chintala and Bottou, "Wasserstein GAN", ICML 2017,
    arXiv 1701.07875, Algorithm 1).

    By the Kantorovich-Rubinstein duality the earth mover's distance is
    :math:`W(p_{data}, p_g) = \sup_{\|f\|_L \le 1} \mathbb E_{p_{data}}[f(x)] - \mathbb E_{p_g}[f(x)]`.
    The critic :math:`f = D` (no sigmoid) maximises that difference, i.e. minimises its negative,
    and the generator minimises the only term that depends on it:

    .. math:: L_D = \mathbb E[D(G(z))] - \mathbb E[D(x)], \qquad L_G = -\mathbb E[D(G(z))].

    Gradients (:func:`signed_mean`): :math:`-1/M` for each real output, :math:`+1/M` for each fake
    one, :math:`-1/M` for G. The gradients do not depend on the outputs at all: what keeps the
    critic near the Lipschitz ball is a constraint outside the loss, weight clipping
    (:func:`clip_weights` after every critic update, as in the paper), a gradient penalty
    (:mod:`tinygan.penalties`) or spectral normalisation. :math:`-L_D` estimates the distance (up
    to the critic's Lipschitz constant) and, unlike the cross-entropy game's losses, falls as the
    samples improve.
    """

    name = "wasserstein"

    def discriminator(self, real_out: Array, fake_out: Array) -> tuple[Array, Array, Array]:
        loss_real, d_real = signed_mean(real_out, -1.0)
        loss_fake, d_fake = signed_mean(fake_out, 1.0)
        return loss_real + loss_fake, d_real, d_fake

    def generator(self, fake_out: Array) -> tuple[Array, Array]:
        return signed_mean(fake_out, -1.0)


def clip_weights(network: Layer, c: float = WEIGHT_CLIP) -> None:
    """Clip every parameter of ``network`` (its descendants' too) to ``[-c, c]`` in place.

    The Wasserstein GAN's way of keeping the critic in a set of :math:`K`-Lipschitz functions
    (Algorithm 1: ``w <- clip(w, -c, c)`` after each critic update, for all of the critic's
    parameters, biases included, with ``c = 0.01``). The paper calls it "a clearly terrible way to
    enforce a Lipschitz constraint": too small a ``c`` makes gradients vanish, too large a one
    makes the critic slow to train; the gradient penalty replaced it.
    """
    if not (isinstance(c, Real) and c > 0):
        raise ValueError(f"clip_weights: c must be a positive number, got {c!r}")
    for layer in network.walk():
        for param in layer.params.values():
            # in place: an optimizer may hold views of the parameter
            param[...] = get_array_module(param).clip(param, -c, c)


#: Every :class:`GanLoss` by its name.
GAN_LOSSES: dict[str, type[GanLoss]] = {
    cls.name: cls
    for cls in (NonSaturatingLoss, MinimaxLoss, LeastSquaresLoss, HingeLoss, WassersteinLoss)
}


def gan_loss(name: str, **options: float) -> GanLoss:
    """The :class:`GanLoss` called ``name`` (a key of :data:`GAN_LOSSES`), built with ``options``
    (``gan_loss("nonsaturating", real_label=0.9)``, ``gan_loss("least-squares", a=-1, c=0)``)."""
    if name not in GAN_LOSSES:
        raise ValueError(f"loss must be one of {sorted(GAN_LOSSES)}, got {name!r}")
    return GAN_LOSSES[name](**options)


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
