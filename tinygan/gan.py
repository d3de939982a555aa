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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tinygan.backend import Array, get_array_module, move_rng
from tinygan.losses import GanLoss, clip_weights, gan_loss
from tinygan.nn.activations import sigmoid
from tinygan.nn.layer import Layer
from tinygan.optim import Optimizer
from tinygan.penalties import PENALTIES, check_second_passes, gradient_penalty

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
    ) -> None:
        if noise not in NOISE_KINDS:
            raise ValueError(f"noise must be one of {NOISE_KINDS}, got {noise!r}")
        loss = chosen_loss(loss, generator_loss, real_label, fake_label, generator_target)
        check_step_rules(discriminator, clip, penalty, d_steps, g_steps, simultaneous, pack)
        self.generator, self.discriminator = generator, discriminator
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer
        self.latent_dim, self.rng, self.noise = int(latent_dim), rng, noise
        self.loss, self.clip = loss, clip
        self.penalty, self.penalty_weight = penalty, penalty_weight
        self.d_steps, self.g_steps = int(d_steps), int(g_steps)
        self.simultaneous, self.inference_fakes = bool(simultaneous), bool(inference_fakes)
        self.reuse_noise, self.pack = bool(reuse_noise), pack
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

    def generate(self, z: Array, training: bool = False) -> Array:
        """G(z) in evaluation mode (running BatchNorm statistics, no dropout) by default."""
        return self.generator.forward(z, training=training)[0]

    def discriminator_loss_backward(self, real: Array, fake: Array) -> tuple[Array, Array, Array]:
        """L_D on a real and a fake batch of samples (packed here); adds its gradient into D's grads.

        Returns (L_D, mean D(x), mean D(G(z))). D's parameter gradients are the sum of both terms'.
        When no layer of D mixes the samples of a batch (no BatchNorm: ``join_d_batches``), each
        sample's logit depends on that sample alone, so one pass over the two batches stacked is
        the same math as a pass over each, and one matrix product over 2N rows costs less than two
        over N. With BatchNorm each batch keeps its own pass, normalised by its own statistics.
        """
        real, fake = pack_samples(real, self.pack), pack_samples(fake, self.pack)
        if not self.join_d_batches:
            logits_real, cache_real = self.discriminator.forward(real)
            logits_fake, cache_fake = self.discriminator.forward(fake)
            loss, dlogits_real, dlogits_fake = self.discriminator_loss(logits_real, logits_fake)
            # D's parameters are all this step updates: the gradient with respect to the images
            # is wanted by nobody (input_grad=False skips it).
            self.discriminator.backward(dlogits_real, cache_real, input_grad=False)
            self.discriminator.backward(dlogits_fake, cache_fake, input_grad=False)
        else:
            xp, n = get_array_module(real), real.shape[0]
            logits, cache = self.discriminator.forward(xp.concatenate([real, fake]))
            logits_real, logits_fake = logits[:n], logits[n:]
            loss, dlogits_real, dlogits_fake = self.discriminator_loss(logits_real, logits_fake)
            dlogits = xp.concatenate([dlogits_real, dlogits_fake])
            self.discriminator.backward(dlogits, cache, input_grad=False)
        return loss, self.mean_output(logits_real), self.mean_output(logits_fake)

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

    def penalty_backward(self, real: Array, fake: Array) -> Array:
        """The gradient penalty on D at the packs of ``real`` and ``fake``; adds its parameter
        gradient into D's grads, on top of the loss's."""
        real, fake = pack_samples(real, self.pack), pack_samples(fake, self.pack)
        return gradient_penalty(
            self.discriminator, real, fake, self.penalty, self.penalty_weight, self.rng
        )

    def update_discriminator(self) -> None:
        """D's optimizer step on the gradients gathered, then the weight clipping, if any."""
        self.d_optimizer.step()
        if self.clip is not None:
            clip_weights(self.discriminator, self.clip)

    def discriminator_step(self, real: Array, z: Array | None = None) -> tuple[Array, Array, Array]:
        """One update of D on a real batch and the fakes G(z) (G is not updated).

        ``z`` defaults to a fresh draw of one noise vector per real sample. The loss returned
        includes the gradient penalty.
        """
        if z is None:
            z = self.sample_noise(real.shape[0])
        fake = self.generate(z, training=not self.inference_fakes)
        self.d_optimizer.zero_grad()
        loss, d_real, d_fake = self.discriminator_loss_backward(real, fake)
        if self.penalty is not None:
            loss = loss + self.penalty_backward(real, fake)
        self.update_discriminator()
        return loss, d_real, d_fake

    def generator_loss_and_grad(self, logits_fake: Array) -> tuple[Array, Array]:
        """The generator's loss on D's outputs for G(z), and its gradient with respect to them."""
        return self.loss.generator(logits_fake)

    def generator_loss_backward(self, z: Array) -> Array:
        """L_G for the noise batch ``z``; adds its gradient into G's grads, leaving D's untouched.

        The chain rule runs through D: ``dfake = D.backward(dlogits, param_grads=False)`` is
        dL_G/dG(z) (for the packs, unpacked to one gradient per sample), and
        ``G.backward(dfake, input_grad=False)`` turns it into G's parameter gradients.
        """
        fake, cache_g = self.generator.forward(z)
        logits_fake, cache_d = self.discriminator.forward(pack_samples(fake, self.pack))
        loss, dlogits = self.generator_loss_and_grad(logits_fake)
        dpacks = self.discriminator.backward(dlogits, cache_d, param_grads=False)
        dfake = unpack_gradient(dpacks, self.pack)
        self.generator.backward(dfake, cache_g, input_grad=False)  # nobody needs dL/dz
        return loss

    def generator_step(self, batch_size: int, z: Array | None = None) -> Array:
        """One update of G through a frozen D on G(z); returns the generator loss.

        ``z`` defaults to a fresh draw of ``batch_size`` noise vectors (``batch_size`` samples:
        ``pack`` times the discriminator's batch).
        """
        if z is None:
            z = self.sample_noise(batch_size)
        self.g_optimizer.zero_grad()
        loss = self.generator_loss_backward(z)
        self.g_optimizer.step()
        if self.ema is not None:
            self.ema.update(self.generator)
        return loss

    def simultaneous_step(self, real: Array) -> StepStats:
        """Both updates from one G(z): D's gradient from L_D, G's through D as it was, then both step.

        The fake batch's D cache serves two backward passes: one for D's parameters (the L_D term)
        and one to the images for the generator loss, which leaves D's gradients alone.
        """
        fake, cache_g = self.generator.forward(self.sample_noise(real.shape[0]))
        logits_real, cache_real = self.discriminator.forward(pack_samples(real, self.pack))
        logits_fake, cache_fake = self.discriminator.forward(pack_samples(fake, self.pack))
        d_loss, dlogits_real, dlogits_fake = self.discriminator_loss(logits_real, logits_fake)
        g_loss, dlogits_g = self.generator_loss_and_grad(logits_fake)
        self.d_optimizer.zero_grad()
        self.g_optimizer.zero_grad()
        self.discriminator.backward(dlogits_real, cache_real, input_grad=False)
        self.discriminator.backward(dlogits_fake, cache_fake, input_grad=False)
        dpacks = self.discriminator.backward(dlogits_g, cache_fake, param_grads=False)
        self.generator.backward(unpack_gradient(dpacks, self.pack), cache_g, input_grad=False)
        if self.penalty is not None:
            d_loss = d_loss + self.penalty_backward(real, fake)
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
        per discriminator input, and G makes as many."""
        if self.simultaneous:
            return self.simultaneous_step(next_real_batch())
        for _ in range(self.d_steps):
            real = next_real_batch()
            z = self.sample_noise(real.shape[0])
            d_loss, d_real, d_fake = self.discriminator_step(real, z)
        for _ in range(self.g_steps):
            g_loss = self.generator_step(real.shape[0], z if self.reuse_noise else None)
        return StepStats(d_loss=d_loss, g_loss=g_loss, d_real=d_real, d_fake=d_fake)

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
