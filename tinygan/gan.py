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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tinygan.backend import Array, move_rng
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
    ) -> None:
        if noise not in NOISE_KINDS:
            raise ValueError(f"noise must be one of {NOISE_KINDS}, got {noise!r}")
        if generator_loss not in GENERATOR_LOSSES:
            raise ValueError(
                f"generator_loss must be one of {GENERATOR_LOSSES}, got {generator_loss!r}"
            )
        if d_steps < 1 or g_steps < 1:
            raise ValueError("d_steps and g_steps must be at least 1")
        self.generator, self.discriminator = generator, discriminator
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer
        self.latent_dim, self.rng, self.noise = int(latent_dim), rng, noise
        self.generator_loss = generator_loss
        self.real_label, self.fake_label = float(real_label), float(fake_label)
        self.generator_target = float(generator_target)
        self.d_steps, self.g_steps = int(d_steps), int(g_steps)
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

        Returns (L_D, mean D(x), mean D(G(z))). Each batch keeps its own cache, and D's parameter
        gradients accumulate over both backward passes, as the sum in L_D asks.
        """
        logits_real, cache_real = self.discriminator.forward(real)
        logits_fake, cache_fake = self.discriminator.forward(fake)
        loss_real, dlogits_real = sigmoid_cross_entropy(logits_real, self.real_label)
        loss_fake, dlogits_fake = sigmoid_cross_entropy(logits_fake, self.fake_label)
        # D's parameters are all this step updates: the gradient with respect to the images is
        # wanted by nobody (input_grad=False skips it).
        self.discriminator.backward(dlogits_real, cache_real, input_grad=False)
        self.discriminator.backward(dlogits_fake, cache_fake, input_grad=False)
        return loss_real + loss_fake, sigmoid(logits_real).mean(), sigmoid(logits_fake).mean()

    def discriminator_step(self, real: Array) -> tuple[Array, Array, Array]:
        """One update of D on a real batch and a fresh fake batch (G is not updated)."""
        fake = self.generate(self.sample_noise(real.shape[0]), training=True)
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

    def generator_step(self, batch_size: int) -> Array:
        """One update of G through a frozen D; returns the generator loss."""
        self.g_optimizer.zero_grad()
        loss = self.generator_loss_backward(self.sample_noise(batch_size))
        self.g_optimizer.step()
        if self.ema is not None:
            self.ema.update(self.generator)
        return loss

    def train_step(self, next_real_batch: Callable[[], Any]) -> StepStats:
        """``d_steps`` discriminator updates (each on a new real batch), then ``g_steps`` generator updates."""
        for _ in range(self.d_steps):
            real = next_real_batch()
            d_loss, d_real, d_fake = self.discriminator_step(real)
        for _ in range(self.g_steps):
            g_loss = self.generator_step(real.shape[0])
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
