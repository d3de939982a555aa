r"""One GAN training step, written to mirror the math.

The discriminator :math:`D` (which outputs a logit; :math:`D(x) = \sigma(\text{logit})`) and the
generator :math:`G` play the minimax game

.. math:: \min_G \max_D V(D, G) = \mathbb{E}_{x \sim p_{data}}[\log D(x)]
                                 + \mathbb{E}_{z \sim p_z}[\log(1 - D(G(z)))].

*Discriminator step.* Maximising :math:`V` over :math:`D` is minimising the binary cross-entropy with
target 1 on real data and 0 on generated data (or smoothed targets such as 0.9 / 0.1):
:math:`L_D = \mathrm{BCE}(D(x), 1) + \mathrm{BCE}(D(G(z)), 0)`.

*Generator step.* The minimax generator minimises :math:`\log(1 - D(G(z)))`, i.e. maximises
:math:`\mathrm{BCE}(D(G(z)), 0)`. Early in training :math:`D(G(z)) \approx 0` and that loss is flat
(its gradient vanishes), so the usual *non-saturating* generator minimises
:math:`-\log D(G(z)) = \mathrm{BCE}(D(G(z)), 1)` instead: same fixed point, strong gradients early.

The generator's gradient flows *through* the discriminator: ``dfake = D.backward(dlogits,
param_grads=False)`` gives :math:`\partial L_G / \partial G(z)` without touching D's weight gradients,
then ``G.backward(dfake, input_grad=False)`` gives G's parameter gradients (and not the gradient
with respect to the noise, which nothing uses; the discriminator step likewise skips D's gradient
with respect to the images).

*Why this game works.* Against a fixed generator the best discriminator is
:math:`D^*(x) = p_{data}(x) / (p_{data}(x) + p_g(x))`, and with it the game's value becomes
:math:`C(G) = -\log 4 + 2\,\mathrm{JS}(p_{data}, p_g)`, smallest exactly when :math:`p_g = p_{data}`.
:mod:`tinygan.theory` derives both and computes them (with :math:`V(D, G)` on samples and the
divergences), so a training run can be checked against the theory.

*Alternating or simultaneous.* By default a step alternates: D is updated on a fresh fake batch,
then G is updated against the D just updated, with a new G(z). Three rules change how (each
preset sets them as its tutorial did; ``docs/presets.md``):

* ``simultaneous=True``: G(z) is computed once and both gradients come from that one forward, D's
  from its loss and G's through D *before* D's update, then both networks step (the TensorFlow
  DCGAN tutorial's ``train_step``). That is simultaneous gradient descent on the game, one G and
  one D forward cheaper per step.
* ``reuse_noise=True``: the generator update uses the noise batch z of the discriminator update
  before it instead of a new draw (the TensorFlow 1 and Keras MLP tutorials feed one ``noise`` to
  both updates). With D updated in between, G's update sees the same fakes through the new D.
* ``inference_fakes=True``: the discriminator update's fakes come from G in inference mode
  (BatchNorm's running statistics, no dropout), as the Keras DCGAN tutorial's ``G.predict(z)``.

*Other games* (:mod:`tinygan.losses`). ``loss`` takes any :class:`~tinygan.losses.GanLoss`:
least squares, the hinge or the Wasserstein critic in place of the cross-entropy, each a pair
of functions of D's raw outputs and their gradients, so the step itself does not change. Three
additions keep D in check, each applied inside the discriminator update: ``clip`` clips every
weight of D to ``[-c, c]`` after each of its optimizer steps (the Wasserstein GAN's critic);
``penalty`` adds a gradient penalty (:mod:`tinygan.penalties`, WGAN-GP or R1), whose parameter
gradient is added to D's after its loss's backward pass and before its optimizer step, and
whose value is part of the reported D loss; spectral normalisation lives in D's layers
(:mod:`tinygan.nn.spectral_norm`). ``d_steps`` is the critic's ``n_critic``.

*Packing* (PacGAN: Lin, Khetan, Fanti, Oh, NeurIPS 2018, arXiv 1712.04086). With ``pack = m`` the
discriminator judges ``m`` samples at once: ``m`` real samples side by side, or ``m`` generated
ones, never a mix; it still answers with one logit, "these m are real" or "these m are fake". A
step then takes ``m`` times the batch of real samples and G makes ``m`` times the batch of fakes,
and :func:`pack_samples` puts each ``m`` consecutive samples into one input of D: flat samples
(N, F) along the feature axis, images (N, C, H, W) along the channel axis (PacDCGAN). Only D's
first layer changes: it takes ``m`` times the inputs. Packing is a reshape, a linear map that only
renames entries, so its adjoint is the reshape back (:func:`unpack_gradient`): each generated
sample receives the gradient of the slot it filled in its pack, and the generator is trained
through D exactly as without packing.

Why it works: a hypothesis test on products. The best discriminator is the best test of "these
are data" against "these are fakes", and what the generator pays for a difference between
:math:`p_{data}` and :math:`p_g` is what that test can detect: sample by sample, a generator that
drops a set of modes holding mass :math:`\epsilon` of the data, and puts that mass on the others,
is only :math:`\epsilon` away in total variation, and for small :math:`\epsilon` the test sees
almost nothing. A discriminator that judges ``m`` samples at once tests the *product*
distributions instead, :math:`p_{data}^m` against :math:`p_g^m`.

Products pull mode-dropping generators away from the data. A pack of ``m`` real samples holds a
sample of the dropped modes with probability :math:`1 - (1 - \epsilon)^m`, and a pack of fakes
never does, so the total variation between the products is at least :math:`1 - (1 - \epsilon)^m`:
about :math:`m \epsilon` for small :math:`\epsilon`, and towards 1 as ``m`` grows. PacGAN's
theorems make the comparison exact: among pairs of distributions at the same total variation, the
pairs with mode collapse move apart under packing much faster than the pairs without it. So the
packed discriminator's loss penalises the generators that drop modes most, and the generator's
gradient through it pushes mass back onto the modes it missed.

*Conditioning* (Mirza and Osindero, "Conditional Generative Adversarial Nets", 2014, arXiv
1411.1784). With ``num_classes = K`` both players are told a class :math:`y` of the data, and the
game becomes

.. math:: \min_G \max_D \mathbb{E}_{(x, y) \sim p_{data}}[\log D(x, y)]
          + \mathbb{E}_{z \sim p_z,\, y \sim p(y)}[\log(1 - D(G(z, y), y))]:

D judges whether :math:`x` is a real sample *of class* :math:`y`, so the generator must learn
:math:`p_{data}(x \mid y)` for every :math:`y`, and a user can ask it for a given digit.

tinygan conditions by concatenation, as the paper did. :math:`G(z, y) = G([z, \mathrm{onehot}(y)])`:
the one-hot code of the class is appended to the noise. :math:`D(x, y)` sees :math:`x` with the
code appended: flat samples (N, F) gain K features, images (N, C, H, W) gain K channels, plane
``k`` all ones when the sample is of class ``k`` and all zeros otherwise (the conditional DCGAN's
way: every position the first convolution visits sees the class). The networks themselves are
plain networks whose first layer takes K more inputs; the step builds their conditioned inputs
(:func:`condition_samples`). Appending a constant, :math:`x \mapsto [x, c]`, has the slice as the
adjoint of its linear part: the gradient reaching :math:`x` is the first C rows (or channels) of
the gradient with respect to D's input, and the part on the code is dropped, since labels are
data, not something trained (:func:`drop_label_gradient`).

Why concatenation: it adds nothing to either network but the width of its first layer, works the
same for an MLP and a convolutional network, and its backward pass is a slice; ten classes of
28x28 digits need no more. The alternative is the *projection* discriminator (Miyato and Koyama,
"cGANs with Projection Discriminator", ICLR 2018, arXiv 1802.05637): :math:`D(x, y) =
\psi(\phi(x)) + e_y^\top \phi(x)`, an inner product of D's top features :math:`\phi(x)` with a
learned embedding :math:`e_y` of the class. It comes from splitting the best discriminator's
logit, :math:`\log p_{data}(x, y) / p_g(x, y) = \log p_{data}(y \mid x) / p_g(y \mid x) + \log
p_{data}(x) / p_g(x)`, and modelling both class posteriors as softmaxes over the same features
:math:`\phi(x)`: the first term becomes :math:`e_y^\top \phi(x)` (plus a term in :math:`x` alone),
the second :math:`\psi(\phi(x))`. It conditions where D's features are abstract instead of at its
raw input, and it is what scales to ImageNet's thousand classes, at the price of a new layer (the
embedding) and a D split into a feature extractor and a head.

*Which classes the fakes get.* The expectation over :math:`y` in the game is over the data's
label distribution :math:`p(y)`. A step makes its fakes for the labels of its real batch: a draw
from :math:`p(y)` without having to know it (MNIST's digits are not exactly balanced), and D then
sees each class as often among fakes as among real samples, so the class mix tells it nothing.
Drawing no labels leaves the noise generator's stream as it is without conditioning (the
matching-aware discriminator below draws its wrong classes from it), and it makes
WGAN-GP's interpolates well defined: :math:`\hat x = \epsilon x + (1 - \epsilon) G(z, y)` lies
between two samples of the same class. The generator updates use the labels of the step's last
real batch too.

*A discriminator that checks the class* (``matching_aware``; the matching-aware discriminator of
Reed, Akata, Yan, Logeswaran, Schiele and Lee, "Generative Adversarial Text to Image Synthesis",
ICML 2016, arXiv 1605.05396). With the code concatenated and nothing else, D learns what the
class means only through the fakes: early in training the fakes are poor whatever their class, D
rejects them on looks alone, and the code is an input it need not read: G makes the class it was
asked for only as well as D happens to check it (a conditional ``dcgan-fast`` made 87% to 90% of
its samples in the asked-for class after its 2,000 steps, most of the misses 8s and 9s). The
matching-aware discriminator is also shown real samples with a wrong class, as fakes: each real
sample again, its label moved to one of the other ``K - 1`` classes at random, :math:`y' = (y + s)
\bmod K` with :math:`s` uniform in :math:`1 .. K - 1`. Its loss takes them into the fake side,
whose mean is then over the generated and the mismatched pairs alike (the conditional
``dcgan-fast`` then made 96.9% and 95.4% of its samples in the asked-for class after its 2,000
steps, seeds 1 and 2, every digit at 88% or more, with a lower FID than without):

.. math:: L_D = \mathrm{BCE}(D(x, y), 1) + \tfrac12 \mathrm{BCE}(D(G(z, y), y), 0)
          + \tfrac12 \mathrm{BCE}(D(x, y'), 0),

and for the other losses the same average of their fake terms. "Does :math:`x` look like a
:math:`y`?" is then D's question from the first step, and G's gradient through D carries it. The
best discriminator against generated and mismatched pairs is :math:`D^* = p / (p + \frac12 p_g +
\frac12 q)`, where :math:`q(x, y') = \sum_{y \ne y'} p(x, y) / (K - 1)` is the distribution of
the mismatched pairs. Where the classes do not overlap, :math:`q` is 0 wherever :math:`p` is not,
and the generator's best answer is still :math:`p_g = p`; where they do (a digit halfway between
a 4 and a 9), D calls the pair fake more often, so G leans towards samples typical of their class:
a little less variety at the borders between classes, in exchange for the class asked for. The
conditional presets play this game (:meth:`tinygan.models.Preset.make_gan`); the wrong classes
are drawn from the GAN's noise generator, so a seeded run stays deterministic and resumes exactly.

*Conditioning and packing* compose: the code is appended to each sample before the samples are
packed, so a pack is ``m`` (sample, class) pairs side by side, and D's first layer takes
``m * (F + K)`` features or ``m * (C + K)`` channels. The packed D tests :math:`p_{data}(x, y)^m`
against the generator's joint distribution to the power ``m``, and since the fakes take the real
batch's labels, a fake pack holds the classes of the real pack at the same place.

*Conditioning and the gradient penalties.* A penalty constrains D's gradient with respect to the
samples alone: the code's entries of D's input gradient are masked out before the penalty sees it
(:meth:`GAN.penalty_backward`). R1 on the code's entries would push D to ignore the class, and
WGAN-GP's Lipschitz constraint is about moving :math:`x`, not about moving between classes.

*Labels* are integer arrays of shape (N,) with values in ``[0, K)``, refused otherwise
(:func:`check_labels`). NumPy labels are checked in full and moved to the parameters' device.
Labels already on a device are checked for their dtype and shape only: reading their smallest and
largest values back would synchronise with the device at every step, which a training loop avoids;
check labels on the host (:func:`check_labels`) before moving them there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import accumulate
from numbers import Real
from typing import Any

import numpy as np

from tinygan.backend import Array, device_of, get_array_module, move_rng, to_device
from tinygan.losses import GanLoss, clip_weights, gan_loss
from tinygan.nn.activations import sigmoid
from tinygan.nn.layer import Layer
from tinygan.optim import Optimizer
from tinygan.penalties import (
    PENALTIES,
    check_second_passes,
    gradient_penalty,
    interpolates,
    penalty_backward,
    r1,
    wgan_gp,
)

NOISE_KINDS = ("uniform", "normal")
GENERATOR_LOSSES = ("nonsaturating", "minimax")


def pack_samples(samples: Array, pack: int) -> Array:
    """Put each ``pack`` consecutive samples side by side, as one input of the discriminator.

    Flat samples (pack * N, F) become (N, pack * F): row ``n`` is samples ``n * pack`` to
    ``n * pack + pack - 1`` concatenated along the features. Images (pack * N, C, H, W) become
    (N, pack * C, H, W), concatenated along the channels (PacDCGAN). In C order both are one
    reshape (a view, no copy): the samples of a pack are consecutive blocks of memory, and their
    concatenation lays them out in the same order.
    """
    if samples.shape[0] % pack:
        raise ValueError(
            f"a batch of {samples.shape[0]} samples does not split into packs of {pack}"
        )
    return samples.reshape(samples.shape[0] // pack, pack * samples.shape[1], *samples.shape[2:])


def unpack_gradient(dpacked: Array, pack: int) -> Array:
    """The gradient with respect to the samples, from the one with respect to their packs.

    :func:`pack_samples` moves every entry to one place and changes none, so its adjoint is the
    reshape back: each sample receives the gradient of the slot it filled in its pack.
    """
    rest = dpacked.shape[2:]
    return dpacked.reshape(dpacked.shape[0] * pack, dpacked.shape[1] // pack, *rest)


def check_labels(labels: Any, n: int, num_classes: int) -> Array:
    """``labels`` as an integer array of shape (n,) with values in ``[0, num_classes)``.

    A list or a NumPy array is checked in full and returned as a NumPy array; an array on a device
    only for its dtype and shape (see the module docstring: its range would be a synchronisation).

    Raises
    ------
    ValueError
        One line saying what is wrong: no integers, the wrong shape, or a class out of range.
    """
    if device_of(labels) == "cpu":
        labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be integers (class indices), got {labels.dtype} values")
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), one class per sample, got {labels.shape}")
    if device_of(labels) == "cpu" and n and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)]
        raise ValueError(
            f"labels must be classes in [0, {num_classes}); {len(bad)} of {n} are not, the "
            f"first is {bad[0]}"
        )
    return labels


def one_hot(labels: Array, num_classes: int, dtype: Any) -> Array:
    """(N,) class indices as (N, num_classes) rows of ``dtype``: 1 in column ``labels[n]``, else 0."""
    xp = get_array_module(labels)
    return (labels[:, None] == xp.arange(num_classes)).astype(dtype)


def append_code(samples: Array, code: Array) -> Array:
    """``samples`` (N, F) or (N, C, ...) with the rows of ``code`` (N, K) appended along axis 1.

    Images get K constant planes, plane ``k`` filled with ``code[n, k]`` for sample ``n``.
    """
    xp = get_array_module(samples)
    if samples.ndim > 2:
        planes = code.reshape(*code.shape, *(1,) * (samples.ndim - 2))
        code = xp.broadcast_to(planes, (*code.shape, *samples.shape[2:]))
    return xp.concatenate([samples, code.astype(samples.dtype, copy=False)], axis=1)


def condition_samples(samples: Array, labels: Any, num_classes: int) -> Array:
    """The samples with their classes' one-hot codes appended (see the module docstring).

    Flat samples (N, F) become (N, F + K): the generator's input ``[z, onehot(y)]`` and an MLP
    discriminator's. Images (N, C, H, W) become (N, C + K, H, W), plane ``C + k`` all ones for the
    samples of class ``k``. ``labels`` are checked by :func:`check_labels` and moved to the
    samples' device.
    """
    labels = to_device(check_labels(labels, samples.shape[0], num_classes), device_of(samples))
    return append_code(samples, one_hot(labels, num_classes, samples.dtype))


def drop_label_gradient(dconditioned: Array, num_classes: int) -> Array:
    """The gradient with respect to the samples, from the one with respect to their conditioned
    form: the adjoint of :func:`condition_samples` in the samples is the slice that keeps their
    own features or channels (the code is a constant, and its gradient goes nowhere)."""
    xp = get_array_module(dconditioned)
    return xp.ascontiguousarray(dconditioned[:, : dconditioned.shape[1] - num_classes])


def draw_noise(rng: Any, n: int, latent_dim: int, kind: str, dtype: Any) -> Array:
    """A (n, latent_dim) batch of z ~ U(-1, 1) (``kind="uniform"``) or N(0, 1) (``"normal"``)."""
    if kind not in NOISE_KINDS:
        raise ValueError(f"noise must be one of {NOISE_KINDS}, got {kind!r}")
    shape = (n, latent_dim)
    z = rng.uniform(-1.0, 1.0, size=shape) if kind == "uniform" else rng.standard_normal(size=shape)
    return z.astype(dtype, copy=False)


@dataclass
class StepStats:
    r"""What one training step reports, as 0-d arrays (read them with ``float`` when logging).

    d_loss is :math:`L_D` (real + fake terms, plus the gradient penalty if any), g_loss the generator
    loss being minimised, d_real the mean of :math:`D(x)` and d_fake the mean of :math:`D(G(z))` over
    the discriminator's last batch: of the probability :math:`\sigma(\text{logit})` for a
    cross-entropy loss, of the raw score for the others.
    """

    d_loss: Any
    g_loss: Any
    d_real: Any
    d_fake: Any

    def as_floats(self) -> dict[str, float]:
        """The four numbers as Python floats (synchronises with the GPU)."""
        return {name: float(value) for name, value in vars(self).items()}


def chosen_loss(
    loss: GanLoss | None,
    generator_loss: str,
    real_label: float,
    fake_label: float,
    generator_target: float,
) -> GanLoss:
    """The game's loss: ``loss`` when given, else the cross-entropy game its other arguments name.

    Raises ``ValueError`` when both are given, since one of them would be silently ignored.
    """
    if generator_loss not in GENERATOR_LOSSES:
        raise ValueError(
            f"generator_loss must be one of {GENERATOR_LOSSES}, got {generator_loss!r}"
        )
    cross_entropy = (generator_loss, real_label, fake_label, generator_target)
    if loss is None:
        return gan_loss(
            generator_loss,
            real_label=real_label,
            fake_label=fake_label,
            generator_target=generator_target,
        )
    if cross_entropy != ("nonsaturating", 1.0, 0.0, 1.0):
        raise ValueError(
            "give either loss or the cross-entropy's generator_loss and labels, not both"
        )
    if not isinstance(loss, GanLoss):
        raise ValueError(f"loss must be a GanLoss, got {type(loss).__name__}")
    return loss


def check_step_rules(
    discriminator: Layer,
    clip: float | None,
    penalty: str | None,
    penalty_weight: float | None,
    d_steps: int,
    g_steps: int,
    simultaneous: bool,
    pack: int,
) -> None:
    """Refuse, with a ``ValueError`` naming the argument, a combination no step can play."""
    if clip is not None and not clip > 0:
        raise ValueError(f"clip must be a positive number or None, got {clip!r}")
    if penalty is not None:
        if penalty not in PENALTIES:
            raise ValueError(f"penalty must be one of {PENALTIES} or None, got {penalty!r}")
        check_second_passes(discriminator)
        if penalty_weight is not None and not (
            isinstance(penalty_weight, Real)
            and not isinstance(penalty_weight, bool)
            and penalty_weight >= 0
        ):
            raise ValueError(f"penalty_weight must be a number >= 0, got {penalty_weight!r}")
    if d_steps < 1 or g_steps < 1:
        raise ValueError("d_steps and g_steps must be at least 1")
    if isinstance(pack, bool) or not isinstance(pack, int) or pack < 1:
        raise ValueError(f"pack must be a positive int, got {pack!r}")
    if simultaneous and (d_steps, g_steps) != (1, 1):
        raise ValueError(
            f"simultaneous updates take d_steps = g_steps = 1, got {d_steps} and {g_steps}"
        )


class GAN:
    """A generator, a discriminator, their optimizers, and the rules of the game.

    Parameters
    ----------
    generator : Layer
        Maps noise (N, latent_dim) to samples shaped like the data.
    discriminator : Layer
        Maps samples to logits of shape (N, 1).
    g_optimizer, d_optimizer : Optimizer
        Built over ``generator`` and ``discriminator`` respectively.
    latent_dim : int
        Size of the noise vector z.
    rng : Generator
        Draws the noise, on the parameters' device: a ``numpy.random.Generator`` on the CPU, a
        :class:`tinygan.backend.DeviceGenerator` on a device (made by
        :func:`tinygan.backend.make_rng`; :meth:`to` moves it). A device generator's stream differs
        from NumPy's for the same seed, as CuPy's would; unlike CuPy's, its state can be saved, so a
        device run resumes from a checkpoint exactly.
    noise : {"uniform", "normal"}
        z ~ U(-1, 1) or z ~ N(0, 1).
    loss : GanLoss, optional
        The game's losses (:func:`tinygan.losses.gan_loss`). When omitted, the cross-entropy game
        of the next four arguments, which are only for that case.
    generator_loss : {"nonsaturating", "minimax"}
        ``-log D(G(z))`` or ``log(1 - D(G(z)))``.
    real_label, fake_label : float
        Discriminator targets (0.9 / 0.1 for label smoothing).
    generator_target : float
        Target for D(G(z)) in the non-saturating generator loss (1.0; the Keras 1-D Gaussian tutorial uses 0.9).
    clip : float, optional
        Clip D's parameters to ``[-clip, clip]`` after every update of D (the Wasserstein GAN's
        0.01, :data:`tinygan.losses.WEIGHT_CLIP`); None: no clipping.
    penalty : {"wgan-gp", "r1"}, optional
        A gradient penalty on D (:func:`tinygan.penalties.gradient_penalty`; its interpolation
        weights come from ``rng``). Every layer of D needs a second pass: a D with BatchNorm is
        refused here.
    penalty_weight : float, optional
        Its lambda or gamma (10 for either when omitted).
    d_steps, g_steps : int
        Discriminator and generator updates per training step (n_iter_D, n_iter_G).
    simultaneous : bool
        Update both networks from one forward of G (the TensorFlow DCGAN tutorial's step; see the
        module docstring). Needs ``d_steps = g_steps = 1``.
    reuse_noise : bool
        Give the generator update the noise batch of the discriminator update before it, instead
        of a fresh draw (the TensorFlow 1 and Keras MLP tutorials' step). A simultaneous step uses
        one noise batch for both updates anyway.
    inference_fakes : bool
        Make the discriminator step's fake batch with G in inference mode (BatchNorm's running
        statistics, no dropout), as the Keras DCGAN tutorial's ``G.predict(z)`` does. G's own step
        always runs G in training mode.
    pack : int
        Samples the discriminator judges at once (PacGAN's packing, see the module docstring; 1:
        off). D's first layer must take ``pack`` times the inputs of one sample, and every batch
        of samples, real or generated, ``pack`` times the discriminator's batch.
    num_classes : int, optional
        Condition both networks on a class in ``[0, num_classes)`` (see the module docstring):
        G's first layer must take ``latent_dim + num_classes`` inputs and D's the samples' features
        or channels plus ``num_classes`` (times ``pack``). Every step and :meth:`generate` then
        take integer ``labels``, and :meth:`train_step`'s batches are (samples, labels) pairs.
        None: unconditional.
    matching_aware : bool
        A conditional GAN's discriminator also judges each real sample with a wrong class, as a
        fake (see the module docstring).
    """

    def __init__(
        self,
        generator: Layer,
        discriminator: Layer,
        g_optimizer: Optimizer,
        d_optimizer: Optimizer,
        latent_dim: int,
        rng: Any,
        noise: str = "uniform",
        loss: GanLoss | None = None,
        generator_loss: str = "nonsaturating",
        real_label: float = 1.0,
        fake_label: float = 0.0,
        generator_target: float = 1.0,
        clip: float | None = None,
        penalty: str | None = None,
        penalty_weight: float | None = None,
        d_steps: int = 1,
        g_steps: int = 1,
        simultaneous: bool = False,
        inference_fakes: bool = False,
        reuse_noise: bool = False,
        pack: int = 1,
        num_classes: int | None = None,
        matching_aware: bool = False,
    ) -> None:
        if noise not in NOISE_KINDS:
            raise ValueError(f"noise must be one of {NOISE_KINDS}, got {noise!r}")
        loss = chosen_loss(loss, generator_loss, real_label, fake_label, generator_target)
        check_step_rules(
            discriminator, clip, penalty, penalty_weight, d_steps, g_steps, simultaneous, pack
        )
        if num_classes is not None and (
            isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2
        ):
            raise ValueError(f"num_classes must be an int >= 2 or None, got {num_classes!r}")
        if matching_aware and num_classes is None:
            raise ValueError("matching_aware judges samples with wrong classes: give num_classes")
        self.generator, self.discriminator = generator, discriminator
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer
        self.latent_dim, self.rng, self.noise = int(latent_dim), rng, noise
        self.loss, self.clip = loss, clip
        self.penalty, self.penalty_weight = penalty, penalty_weight
        self.d_steps, self.g_steps = int(d_steps), int(g_steps)
        self.simultaneous, self.inference_fakes = bool(simultaneous), bool(inference_fakes)
        self.reuse_noise, self.pack = bool(reuse_noise), pack
        self.num_classes, self.matching_aware = num_classes, bool(matching_aware)
        #: One discriminator pass over the real and fake batches stacked, instead of one each:
        #: the same math when no layer of D mixes the samples of a batch (see
        #: :meth:`discriminator_loss_backward`).
        self.join_d_batches = not any(layer.mixes_batch for layer in discriminator.walk())
        self.dtype = next(iter(g_optimizer.slots()))[2].dtype
        #: A moving average of G's weights (:class:`tinygan.ema.EMA`), updated after every generator
        #: step when set; it only reads G, so the game itself is unchanged.
        self.ema: Any = None

    @property
    def real_label(self) -> float:
        """D's target on real data in the cross-entropy game."""
        return self.loss.real_label

    @property
    def fake_label(self) -> float:
        """D's target on fakes in the cross-entropy game."""
        return self.loss.fake_label

    def sample_noise(self, n: int, rng: Any = None) -> Array:
        """Draw a (n, latent_dim) batch of z in the parameters' dtype, from ``rng`` or the GAN's own."""
        rng = self.rng if rng is None else rng
        return draw_noise(rng, n, self.latent_dim, self.noise, self.dtype)

    def generate(self, z: Array, labels: Any = None, training: bool = False) -> Array:
        """G(z), or G(z, y) for the ``labels`` y of a conditional GAN, in evaluation mode (running
        BatchNorm statistics, no dropout) by default."""
        return self.generator.forward(self.conditioned(z, labels), training=training)[0]

    def conditioned(self, samples: Array, labels: Any) -> Array:
        """``samples`` (or noise) with their labels' codes appended (:func:`condition_samples`);
        unchanged for an unconditional GAN, which takes no labels."""
        if self.num_classes is None:
            if labels is not None:
                raise ValueError("labels given to an unconditional GAN (num_classes is None)")
            return samples
        if labels is None:
            raise ValueError(
                f"a conditional GAN needs labels: an integer array of {samples.shape[0]} classes "
                f"in [0, {self.num_classes})"
            )
        return condition_samples(samples, labels, self.num_classes)

    def discriminator_input(self, samples: Array, labels: Any = None) -> Array:
        """What D is shown of a batch of samples: conditioned on their labels, then packed."""
        return pack_samples(self.conditioned(samples, labels), self.pack)

    def sample_gradient(self, dinput: Array) -> Array:
        """The adjoint of :meth:`discriminator_input`: the gradient with respect to D's input,
        unpacked to one per sample, less the part on the labels' code."""
        dsamples = unpack_gradient(dinput, self.pack)
        if self.num_classes is None:
            return dsamples
        return drop_label_gradient(dsamples, self.num_classes)

    def discriminator_loss_backward(
        self, real: Array, fake: Array, labels: Any = None
    ) -> tuple[Array, Array, Array]:
        """L_D on a real and a fake batch of samples (conditioned on ``labels``, the classes of
        both, and packed here); adds its gradient into D's grads. A matching-aware D also judges
        the real samples with wrong classes, on the fake side (see the module docstring).

        Returns (L_D, mean D(x), mean D(G(z))). D's parameter gradients are the sum of every
        batch's terms. When no layer of D mixes the samples of a batch (no BatchNorm:
        ``join_d_batches``), each sample's logit depends on that sample alone, so one pass over the
        batches stacked is the same math as a pass over each, and one matrix product over 2N rows
        costs less than two over N. With BatchNorm each batch keeps its own pass, normalised by its
        own statistics.
        """
        batches = [self.discriminator_input(real, labels), self.discriminator_input(fake, labels)]
        if self.matching_aware:
            batches.append(self.discriminator_input(real, self.mismatched_labels(labels, real)))
        xp = get_array_module(batches[0])
        if not self.join_d_batches:
            passes = [self.discriminator.forward(batch) for batch in batches]
            logits = [output for output, _ in passes]
            loss, dlogits = self.judged_loss(logits)
            # D's parameters are all this step updates: the gradient with respect to the images
            # is wanted by nobody (input_grad=False skips it).
            for d, (_, cache) in zip(dlogits, passes, strict=True):
                self.discriminator.backward(d, cache, input_grad=False)
        else:
            joined, cache = self.discriminator.forward(xp.concatenate(batches))
            ends = list(accumulate(batch.shape[0] for batch in batches))
            logits = [joined[start:end] for start, end in zip([0, *ends[:-1]], ends, strict=True)]
            loss, dlogits = self.judged_loss(logits)
            self.discriminator.backward(xp.concatenate(dlogits), cache, input_grad=False)
        return loss, self.mean_output(logits[0]), self.mean_output(logits[1])

    def judged_loss(self, logits: list[Array]) -> tuple[Array, list[Array]]:
        """L_D on D's outputs for the real batch, the fake batch and, for a matching-aware D, the
        real batch with wrong classes (which joins the fakes: their loss term is the mean over
        both); returns it and its gradient with respect to each batch's outputs."""
        logits_real, *fakes = logits
        if len(fakes) == 1:
            loss, dlogits_real, dlogits_fake = self.discriminator_loss(logits_real, fakes[0])
            return loss, [dlogits_real, dlogits_fake]
        xp, n = get_array_module(logits_real), fakes[0].shape[0]
        loss, dlogits_real, dfakes = self.discriminator_loss(logits_real, xp.concatenate(fakes))
        return loss, [dlogits_real, dfakes[:n], dfakes[n:]]

    def mismatched_labels(self, labels: Any, samples: Array) -> Array:
        """Each label moved to one of the other classes, uniformly: :math:`(y + s) \bmod K`, with
        :math:`s` drawn from the GAN's noise generator uniformly in ``1 .. K - 1``; on the
        samples' device."""
        k = self.num_classes
        labels = to_device(check_labels(labels, samples.shape[0], k), device_of(samples))
        # floor(u * (K - 1)) for u uniform in [0, 1) is uniform in 0 .. K - 2
        shift = 1 + (self.rng.random(labels.shape[0]) * (k - 1)).astype(labels.dtype)
        return (labels + shift) % k

    def mean_output(self, outputs: Array) -> Array:
        r"""What the log reports of D's outputs on a batch: the mean probability
        :math:`\sigma(\text{logit})` when they are logits, else the mean raw score."""
        return sigmoid(outputs).mean() if self.loss.outputs_are_logits else outputs.mean()

    def discriminator_loss(
        self, logits_real: Array, logits_fake: Array
    ) -> tuple[Array, Array, Array]:
        """L_D on D's outputs for a real and a fake batch (``self.loss``), and its gradient with
        respect to each batch's outputs."""
        return self.loss.discriminator(logits_real, logits_fake)

    def penalty_backward(self, real: Array, fake: Array, labels: Any = None) -> Array:
        """The gradient penalty on D at the packs of ``real`` and ``fake``; adds its parameter
        gradient into D's grads, on top of the loss's.

        A conditional GAN's penalty is on the gradient with respect to the samples alone (see
        the module docstring): its points are the real samples (R1) or the interpolates of the
        real and fake packs, one weight per pack as without labels (WGAN-GP), each conditioned
        on its class, and the code's entries of D's input gradient are masked out.
        """
        if self.num_classes is None:
            real, fake = pack_samples(real, self.pack), pack_samples(fake, self.pack)
            return gradient_penalty(
                self.discriminator, real, fake, self.penalty, self.penalty_weight, self.rng
            )
        if self.penalty == "r1":
            points, penalty = real, r1
        else:
            packs = interpolates(
                pack_samples(real, self.pack), pack_samples(fake, self.pack), self.rng
            )
            points, penalty = unpack_gradient(packs, self.pack), wgan_gp
        weight = {} if self.penalty_weight is None else {"weight": self.penalty_weight}
        xp = get_array_module(points)
        code = xp.zeros((points.shape[0], self.num_classes), dtype=points.dtype)
        mask = pack_samples(append_code(xp.ones_like(points), code), self.pack)

        def on_samples(g: Array) -> tuple[Array, Array]:
            value, dg = penalty(g * mask, **weight)
            return value, dg * mask

        inputs = self.discriminator_input(points, labels)
        return penalty_backward(self.discriminator, inputs, on_samples)[0]

    def update_discriminator(self) -> None:
        """D's optimizer step on the gradients gathered, then the weight clipping, if any."""
        self.d_optimizer.step()
        if self.clip is not None:
            clip_weights(self.discriminator, self.clip)

    def discriminator_step(
        self, real: Array, z: Array | None = None, labels: Any = None
    ) -> tuple[Array, Array, Array]:
        """One update of D on a real batch and the fakes G(z) (G is not updated).

        ``z`` defaults to a fresh draw of one noise vector per real sample. A conditional GAN
        takes the real samples' ``labels`` and makes its fakes G(z, y) for the same labels. The
        loss returned includes the gradient penalty.
        """
        if z is None:
            z = self.sample_noise(real.shape[0])
        fake = self.generate(z, labels, training=not self.inference_fakes)
        self.d_optimizer.zero_grad()
        loss, d_real, d_fake = self.discriminator_loss_backward(real, fake, labels)
        if self.penalty is not None:
            loss = loss + self.penalty_backward(real, fake, labels)
        self.update_discriminator()
        return loss, d_real, d_fake

    def generator_loss_and_grad(self, logits_fake: Array) -> tuple[Array, Array]:
        """The generator's loss on D's outputs for G(z), and its gradient with respect to them."""
        return self.loss.generator(logits_fake)

    def generator_loss_backward(self, z: Array, labels: Any = None) -> Array:
        """L_G for the noise batch ``z`` (and ``labels``, for a conditional GAN); adds its gradient
        into G's grads, leaving D's untouched.

        The chain rule runs through D: ``dfake = D.backward(dlogits, param_grads=False)`` is
        dL_G/dG(z) (for the packs, unpacked to one gradient per sample, and for conditioned
        inputs, less the part on the code), and ``G.backward(dfake, input_grad=False)`` turns it
        into G's parameter gradients.
        """
        fake, cache_g = self.generator.forward(self.conditioned(z, labels))
        logits_fake, cache_d = self.discriminator.forward(self.discriminator_input(fake, labels))
        loss, dlogits = self.generator_loss_and_grad(logits_fake)
        dinput = self.discriminator.backward(dlogits, cache_d, param_grads=False)
        dfake = self.sample_gradient(dinput)
        self.generator.backward(dfake, cache_g, input_grad=False)  # nobody needs dL/dz
        return loss

    def generator_step(self, batch_size: int, z: Array | None = None, labels: Any = None) -> Array:
        """One update of G through a frozen D on G(z); returns the generator loss.

        ``z`` defaults to a fresh draw of ``batch_size`` noise vectors (``batch_size`` samples:
        ``pack`` times the discriminator's batch). A conditional GAN takes ``batch_size``
        ``labels``, the classes of its fakes G(z, y).
        """
        if z is None:
            z = self.sample_noise(batch_size)
        self.g_optimizer.zero_grad()
        loss = self.generator_loss_backward(z, labels)
        self.g_optimizer.step()
        if self.ema is not None:
            self.ema.update(self.generator)
        return loss

    def simultaneous_step(self, real: Array, labels: Any = None) -> StepStats:
        """Both updates from one G(z): D's gradient from L_D, G's through D as it was, then both step.

        The fake batch's D cache serves two backward passes: one for D's parameters (the L_D term)
        and one to the images for the generator loss, which leaves D's gradients alone. A
        conditional GAN takes the real samples' ``labels``, and its fakes are made for them.
        """
        z = self.conditioned(self.sample_noise(real.shape[0]), labels)
        fake, cache_g = self.generator.forward(z)
        batches = [self.discriminator_input(real, labels), self.discriminator_input(fake, labels)]
        if self.matching_aware:  # the real samples with wrong classes, on the fake side
            batches.append(self.discriminator_input(real, self.mismatched_labels(labels, real)))
        passes = [self.discriminator.forward(batch) for batch in batches]
        (logits_real, _), (logits_fake, cache_fake) = passes[:2]
        d_loss, dlogits = self.judged_loss([output for output, _ in passes])
        g_loss, dlogits_g = self.generator_loss_and_grad(logits_fake)
        self.d_optimizer.zero_grad()
        self.g_optimizer.zero_grad()
        for d, (_, cache) in zip(dlogits, passes, strict=True):
            self.discriminator.backward(d, cache, input_grad=False)
        dinput = self.discriminator.backward(dlogits_g, cache_fake, param_grads=False)
        self.generator.backward(self.sample_gradient(dinput), cache_g, input_grad=False)
        if self.penalty is not None:
            d_loss = d_loss + self.penalty_backward(real, fake, labels)
        self.update_discriminator()
        self.g_optimizer.step()
        if self.ema is not None:
            self.ema.update(self.generator)
        d_real, d_fake = self.mean_output(logits_real), self.mean_output(logits_fake)
        return StepStats(d_loss=d_loss, g_loss=g_loss, d_real=d_real, d_fake=d_fake)

    def train_step(self, next_real_batch: Callable[[], Any]) -> StepStats:
        """``d_steps`` discriminator updates (each on a new real batch and noise batch), then
        ``g_steps`` generator updates (on fresh noise, or the last D update's with ``reuse_noise``);
        or one simultaneous update of both (``simultaneous``). A real batch holds ``pack`` samples
        per discriminator input, and G makes as many.

        For a conditional GAN ``next_real_batch()`` returns a pair (samples, labels); every update
        makes its fakes for the labels of its real batch, the generator updates for those of the
        last one."""
        if self.simultaneous:
            return self.simultaneous_step(*self.split_batch(next_real_batch()))
        for _ in range(self.d_steps):
            real, labels = self.split_batch(next_real_batch())
            z = self.sample_noise(real.shape[0])
            d_loss, d_real, d_fake = self.discriminator_step(real, z, labels)
        for _ in range(self.g_steps):
            g_loss = self.generator_step(real.shape[0], z if self.reuse_noise else None, labels)
        return StepStats(d_loss=d_loss, g_loss=g_loss, d_real=d_real, d_fake=d_fake)

    def split_batch(self, batch: Any) -> tuple[Array, Any]:
        """(samples, labels) of a batch: a conditional GAN's batches are such pairs, an
        unconditional GAN's are the samples alone (labels None)."""
        if self.num_classes is None:
            return batch, None
        if not (isinstance(batch, tuple | list) and len(batch) == 2):
            raise ValueError(
                "a conditional GAN trains on (samples, labels) pairs, got a batch of "
                f"{type(batch).__name__}"
            )
        return batch[0], batch[1]

    def layers(self) -> list[Layer]:
        """Generator and discriminator, for moving or saving both."""
        return [self.generator, self.discriminator]

    def to(self, device: str) -> GAN:
        """Move both networks, both optimizers' state and the noise generator to ``device``."""
        self.rng = move_rng(self.rng, device)
        for layer in self.layers():
            layer.to(device)
        self.g_optimizer.to(device)
        self.d_optimizer.to(device)
        if self.ema is not None:
            self.ema.to(device)
        return self
