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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tinygan.backend import Array, get_array_module, move_rng
from tinygan.losses import sigmoid_cross_entropy
from tinygan.nn.activations import sigmoid
from tinygan.nn.layer import Layer
from tinygan.optim import Optimizer

NOISE_KINDS = ("uniform", "normal")
GENERATOR_LOSSES = ("nonsaturating", "minimax")


def draw_noise(rng: Any, n: int, latent_dim: int, kind: str, dtype: Any) -> Array:
    """A (n, latent_dim) batch of z ~ U(-1, 1) (``kind="uniform"``) or N(0, 1) (``"normal"``)."""
    if kind not in NOISE_KINDS:
        raise ValueError(f"noise must be one of {NOISE_KINDS}, got {kind!r}")
    shape = (n, latent_dim)
    z = rng.uniform(-1.0, 1.0, size=shape) if kind == "uniform" else rng.standard_normal(size=shape)
    return z.astype(dtype, copy=False)


@dataclass
class StepStats:
    """What one training step reports, as 0-d arrays (read them with ``float`` when logging).

    d_loss is :math:`L_D` (real + fake terms), g_loss the generator loss being minimised, d_real the mean
    of :math:`D(x)` and d_fake the mean of :math:`D(G(z))` over the discriminator's last batch.
    """

    d_loss: Any
    g_loss: Any
    d_real: Any
    d_fake: Any

    def as_floats(self) -> dict[str, float]:
        """The four numbers as Python floats (synchronises with the GPU)."""
        return {name: float(value) for name, value in vars(self).items()}


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
    generator_loss : {"nonsaturating", "minimax"}
        ``-log D(G(z))`` or ``log(1 - D(G(z)))``.
    real_label, fake_label : float
        Discriminator targets (0.9 / 0.1 for label smoothing).
    generator_target : float
        Target for D(G(z)) in the non-saturating generator loss (1.0; the Keras 1-D Gaussian tutorial uses 0.9).
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
        generator_loss: str = "nonsaturating",
        real_label: float = 1.0,
        fake_label: float = 0.0,
        generator_target: float = 1.0,
        d_steps: int = 1,
        g_steps: int = 1,
        simultaneous: bool = False,
        inference_fakes: bool = False,
        reuse_noise: bool = False,
    ) -> None:
        if noise not in NOISE_KINDS:
            raise ValueError(f"noise must be one of {NOISE_KINDS}, got {noise!r}")
        if generator_loss not in GENERATOR_LOSSES:
            raise ValueError(
                f"generator_loss must be one of {GENERATOR_LOSSES}, got {generator_loss!r}"
            )
        if d_steps < 1 or g_steps < 1:
            raise ValueError("d_steps and g_steps must be at least 1")
        if simultaneous and (d_steps, g_steps) != (1, 1):
            raise ValueError(
                f"simultaneous updates take d_steps = g_steps = 1, got {d_steps} and {g_steps}"
            )
        self.generator, self.discriminator = generator, discriminator
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer
        self.latent_dim, self.rng, self.noise = int(latent_dim), rng, noise
        self.generator_loss = generator_loss
        self.real_label, self.fake_label = float(real_label), float(fake_label)
        self.generator_target = float(generator_target)
        self.d_steps, self.g_steps = int(d_steps), int(g_steps)
        self.simultaneous, self.inference_fakes = bool(simultaneous), bool(inference_fakes)
        self.reuse_noise = bool(reuse_noise)
        #: One discriminator pass over the real and fake batches stacked, instead of one each:
        #: the same math when no layer of D mixes the samples of a batch (see
        #: :meth:`discriminator_loss_backward`).
        self.join_d_batches = not any(layer.mixes_batch for layer in discriminator.walk())
        self.dtype = next(iter(g_optimizer.slots()))[2].dtype
        #: A moving average of G's weights (:class:`tinygan.ema.EMA`), updated after every generator
        #: step when set; it only reads G, so the game itself is unchanged.
        self.ema: Any = None

    def sample_noise(self, n: int, rng: Any = None) -> Array:
        """Draw a (n, latent_dim) batch of z in the parameters' dtype, from ``rng`` or the GAN's own."""
        rng = self.rng if rng is None else rng
        return draw_noise(rng, n, self.latent_dim, self.noise, self.dtype)

    def generate(self, z: Array, training: bool = False) -> Array:
        """G(z) in evaluation mode (running BatchNorm statistics, no dropout) by default."""
        return self.generator.forward(z, training=training)[0]

    def discriminator_loss_backward(self, real: Array, fake: Array) -> tuple[Array, Array, Array]:
        """L_D on a real and a fake batch; adds its gradient into D's grads.

        Returns (L_D, mean D(x), mean D(G(z))). D's parameter gradients are the sum of both terms'.
        When no layer of D mixes the samples of a batch (no BatchNorm: ``join_d_batches``), each
        sample's logit depends on that sample alone, so one pass over the two batches stacked is
        the same math as a pass over each, and one matrix product over 2N rows costs less than two
        over N. With BatchNorm each batch keeps its own pass, normalised by its own statistics.
        """
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
        return loss, sigmoid(logits_real).mean(), sigmoid(logits_fake).mean()

    def discriminator_loss(
        self, logits_real: Array, logits_fake: Array
    ) -> tuple[Array, Array, Array]:
        """L_D = BCE(real logits, real label) + BCE(fake logits, fake label), and its gradient
        with respect to each batch's logits."""
        loss_real, dlogits_real = sigmoid_cross_entropy(logits_real, self.real_label)
        loss_fake, dlogits_fake = sigmoid_cross_entropy(logits_fake, self.fake_label)
        return loss_real + loss_fake, dlogits_real, dlogits_fake

    def discriminator_step(self, real: Array, z: Array | None = None) -> tuple[Array, Array, Array]:
        """One update of D on a real batch and the fakes G(z) (G is not updated).

        ``z`` defaults to a fresh draw of one noise vector per real sample.
        """
        if z is None:
            z = self.sample_noise(real.shape[0])
        fake = self.generate(z, training=not self.inference_fakes)
        self.d_optimizer.zero_grad()
        stats = self.discriminator_loss_backward(real, fake)
        self.d_optimizer.step()
        return stats

    def generator_loss_and_grad(self, logits_fake: Array) -> tuple[Array, Array]:
        """The generator's loss on D's logits for G(z), and its gradient with respect to them."""
        if self.generator_loss == "nonsaturating":
            return sigmoid_cross_entropy(logits_fake, self.generator_target)
        loss, dlogits = sigmoid_cross_entropy(logits_fake, 0.0)  # BCE(., 0) = -log(1 - D)
        return -loss, -dlogits

    def generator_loss_backward(self, z: Array) -> Array:
        """L_G for the noise batch ``z``; adds its gradient into G's grads, leaving D's untouched.

        The chain rule runs through D: ``dfake = D.backward(dlogits, param_grads=False)`` is
        dL_G/dG(z), and ``G.backward(dfake, input_grad=False)`` turns it into G's parameter
        gradients.
        """
        fake, cache_g = self.generator.forward(z)
        logits_fake, cache_d = self.discriminator.forward(fake)
        loss, dlogits = self.generator_loss_and_grad(logits_fake)
        dfake = self.discriminator.backward(dlogits, cache_d, param_grads=False)
        self.generator.backward(dfake, cache_g, input_grad=False)  # nobody needs dL/dz
        return loss

    def generator_step(self, batch_size: int, z: Array | None = None) -> Array:
        """One update of G through a frozen D on G(z); returns the generator loss.

        ``z`` defaults to a fresh draw of ``batch_size`` noise vectors.
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
        logits_real, cache_real = self.discriminator.forward(real)
        logits_fake, cache_fake = self.discriminator.forward(fake)
        d_loss, dlogits_real, dlogits_fake = self.discriminator_loss(logits_real, logits_fake)
        g_loss, dlogits_g = self.generator_loss_and_grad(logits_fake)
        self.d_optimizer.zero_grad()
        self.g_optimizer.zero_grad()
        self.discriminator.backward(dlogits_real, cache_real, input_grad=False)
        self.discriminator.backward(dlogits_fake, cache_fake, input_grad=False)
        dfake = self.discriminator.backward(dlogits_g, cache_fake, param_grads=False)
        self.generator.backward(dfake, cache_g, input_grad=False)
        self.d_optimizer.step()
        self.g_optimizer.step()
        if self.ema is not None:
            self.ema.update(self.generator)
        d_real, d_fake = sigmoid(logits_real).mean(), sigmoid(logits_fake).mean()
        return StepStats(d_loss=d_loss, g_loss=g_loss, d_real=d_real, d_fake=d_fake)

    def train_step(self, next_real_batch: Callable[[], Any]) -> StepStats:
        """``d_steps`` discriminator updates (each on a new real batch and noise batch), then
        ``g_steps`` generator updates (on fresh noise, or the last D update's with ``reuse_noise``);
        or one simultaneous update of both (``simultaneous``)."""
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
