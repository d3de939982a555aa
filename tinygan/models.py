"""Five tutorials' GANs as presets: architecture plus the hyperparameters they trained with.

A :class:`Preset` holds everything a run needs besides data and a seed. ``PRESETS["mlp-tf"].build(rng)``
returns a fresh ``(generator, discriminator)`` pair; the training script reads the rest (latent size,
noise, optimizer settings, batch size, how long to train and how often to draw samples).

Each preset has a descriptive name and, as an alias, the number its tutorial had when the presets were
numbered (``"dcgan-tf"`` is ``"003"``). Both are accepted wherever a preset is named (``PRESETS``,
:func:`get_preset`, the command line), so runs and checkpoints that recorded a number still load; new
runs record the name.

Three presets come from the mode-collapse literature rather than a tutorial: ``ring`` and ``grid``
train on points of a 2-D mixture of Gaussians with the networks and protocol of PacGAN's code
(:func:`build_mixture_gan`, :func:`mixture_preset`), and ``stacked-mnist`` trains a DCGAN on
Stacked MNIST's 1,000 modes with the protocol of PacGAN's code and ``dcgan-fast``'s network on
three channels (:func:`dcgan_builder`).

Discriminators end in a bare logit: the sigmoid lives inside the loss
(:func:`tinygan.losses.sigmoid_cross_entropy`), which is the numerically stable place for it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from tinygan import init
from tinygan.gan import GAN
from tinygan.losses import GAN_LOSSES, GanLoss, gan_loss
from tinygan.nn import (
    BatchNorm,
    Conv2D,
    ConvTranspose2D,
    Dense,
    Dropout,
    Flatten,
    Layer,
    LeakyReLU,
    Maxout,
    MaxPool2D,
    MinibatchStd,
    ReLU,
    Reshape,
    Sequential,
    Sigmoid,
    Tanh,
    UpSampling2D,
)
from tinygan.nn.spectral_norm import spectrally_normalized
from tinygan.optim import Adam, Optimizer, RMSprop

#: The optimizers a preset may train with, by name.
OPTIMIZERS = ("adam", "rmsprop")

#: ``build(rng, dtype=np.float32, pack=1, num_classes=None)``: a fresh ``(generator,
#: discriminator)``, the discriminator's first layer taking ``pack`` samples at once
#: (:mod:`tinygan.gan`'s packing); with ``num_classes``, both first layers also take the one-hot
#: code of a class (:mod:`tinygan.gan`'s conditioning): G's ``num_classes`` more inputs, D's
#: ``num_classes`` more features or channels per sample.
Builder = Callable[..., tuple[Layer, Layer]]

#: The classes of the data a conditional preset learns: MNIST's (and Fashion-MNIST's) ten.
MNIST_CLASSES = 10
#: The length of a ``stacked-mnist`` run: 7 minutes of training on one core, 10 with packs of 2
#: (``docs/presets.md``).
STACKED_STEPS = 4000


@dataclass(frozen=True)
class Preset:
    """A tutorial's GAN: how to build its networks and how it was trained.

    ``name`` is what runs record and print, ``alias`` the tutorial's number, accepted in its place
    (``None`` for a preset that is no tutorial's).
    ``steps`` or ``epochs`` (exactly one) says how long a full run is; ``sample_every`` is counted in
    ``sample_unit`` ("step" or "epoch"), and ``sample_first`` adds a frame after the first one.
    ``betas`` and ``eps`` are Adam's, as the tutorial's framework set them (TensorFlow's
    ``AdamOptimizer`` 1e-8, Keras' ``Adam`` 1e-7).

    ``simultaneous``, ``reuse_noise`` and ``inference_fakes`` are the tutorial's step rules
    (:class:`tinygan.gan.GAN`): one forward of G for both updates, the discriminator update's noise
    reused by the generator update, and D's fakes made in inference mode. ``docs/presets.md`` checks
    every field against the tutorial's code.

    ``pack`` is PacGAN's packing (:mod:`tinygan.gan`): the discriminator judges ``pack`` samples
    at once, and ``build`` gets it for D's first layer (1: off, every preset's default; the
    ``--pack`` flag sets it). ``mixture`` names the 2-D target of a preset that learns points
    rather than images (a key of :data:`tinygan.data.MIXTURES`): its runs train on that mixture's
    points, draw scatter plots and count the modes; ``None`` for the image presets. ``stacked``
    marks a preset that learns Stacked MNIST (:mod:`tinygan.data.stacked_mnist`): its runs train
    on three MNIST digits stacked in the channels of each image, draw its samples in colour and
    count its 1,000 modes instead of measuring image quality.

    ``generator_loss`` names the game (a key of :data:`tinygan.losses.GAN_LOSSES`): every
    tutorial plays the cross-entropy game, ``"nonsaturating"`` or ``"minimax"`` for its generator,
    with the targets ``real_label``, ``fake_label`` and ``generator_target``, which only that game
    reads; the ``--loss`` flag picks another. ``d_steps`` is a Wasserstein critic's
    ``n_critic``. ``clip`` (weight clipping of D after every update), ``penalty`` and
    ``penalty_weight`` (a gradient penalty) and ``spectral_norm`` (D's Dense and Conv2D layers
    spectrally normalised) keep D in check; every tutorial leaves them off. ``optimizer`` is
    ``"adam"`` (with ``betas`` and ``eps``) or ``"rmsprop"`` (tinygan's defaults for rho and eps).

    ``conditional`` makes the GAN conditional on the class of each sample, one of
    ``num_classes`` (:mod:`tinygan.gan`'s conditioning): G(z, y) and D(x, y), built with the
    wider first layers, D matching-aware (it also judges real samples with wrong classes, as
    fakes). Every preset is unconditional; the MLP and DCGAN presets can be made
    conditional (``replace(preset, conditional=True)``), the 1-D and 2-D ones have no classes
    and ``stacked-mnist`` refuses conditioning on its 1,000 modes.

    ``minibatch_std`` gives D ProGAN's minibatch standard deviation just before its last Dense
    layer (:func:`with_minibatch_std`), on any preset; off in all of them (the
    ``--minibatch-std`` flag sets it).
    """

    name: str
    alias: str | None
    description: str
    build: Builder
    latent_dim: int
    noise: str
    data_shape: tuple[int, ...]
    value_range: tuple[float, float]
    batch_size: int
    g_lr: float
    d_lr: float
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    steps: int | None = None
    epochs: int | None = None
    generator_loss: str = "nonsaturating"
    real_label: float = 1.0
    fake_label: float = 0.0
    generator_target: float = 1.0
    d_steps: int = 1
    g_steps: int = 1
    simultaneous: bool = False
    inference_fakes: bool = False
    reuse_noise: bool = False
    sample_every: int = 500
    sample_unit: str = "step"
    sample_first: bool = False
    sample_grid: tuple[int, int] = (8, 8)
    checkpoint_every: int | None = None
    make_gif: bool = False
    pixel_histograms: bool = False
    pack: int = 1
    mixture: str | None = None
    stacked: bool = False
    clip: float | None = None
    penalty: str | None = None
    penalty_weight: float | None = None
    spectral_norm: bool = False
    optimizer: str = "adam"
    conditional: bool = False
    num_classes: int = MNIST_CLASSES
    minibatch_std: bool = False

    @property
    def classes(self) -> int | None:
        """The number of classes the networks are conditioned on; None when unconditional."""
        return self.num_classes if self.conditional else None

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of one sample seen as a grayscale picture.

        A flat ``data_shape`` of (784,) is a square 28x28 image (as the MLPs see MNIST), and (1, 28, 28)
        is one channel of 28x28.
        """
        if len(self.data_shape) == 3:
            return self.data_shape[1], self.data_shape[2]
        side = math.isqrt(math.prod(self.data_shape))
        return side, side

    @property
    def image_shape(self) -> tuple[int, ...]:
        """The shape one sample is drawn in: :attr:`image_size` for a grayscale sample, (3, height,
        width) for a sample of three channels (Stacked MNIST's digits as red, green and blue)."""
        if len(self.data_shape) == 3 and self.data_shape[0] == 3:
            return self.data_shape
        return self.image_size

    @property
    def packed_shape(self) -> tuple[int, ...]:
        """The shape of one input of the discriminator: ``pack`` samples side by side, along the
        features of a flat sample or the channels of an image, each with its class's code
        appended when conditional."""
        width = self.data_shape[0] + (self.classes or 0)
        return (self.pack * width, *self.data_shape[1:])

    def networks(self, rng: np.random.Generator, dtype: Any = np.float32) -> tuple[Layer, Layer]:
        """A fresh ``(generator, discriminator)`` for this preset's packing, conditioning and
        minibatch standard deviation, weights drawn from ``rng``."""
        build = with_minibatch_std(self.build) if self.minibatch_std else self.build
        return build(rng, dtype, pack=self.pack, num_classes=self.classes)

    def make_gan(
        self, init_rng: np.random.Generator, noise_rng: Any, device: str = "cpu", **overrides: Any
    ) -> GAN:
        """Fresh networks (weights drawn on the CPU from ``init_rng``), optimizers and rules, on ``device``.

        ``noise_rng`` draws z during training (``make_rng(seed, device)``); ``overrides`` replace
        preset fields first (e.g. ``real_label=1.0``).
        """
        preset = replace(self, **overrides)
        generator, discriminator = preset.networks(init_rng)
        if preset.spectral_norm:
            discriminator = spectrally_normalized(discriminator, init_rng)
        g_optimizer, d_optimizer = preset.make_optimizers(generator, discriminator)
        gan = GAN(
            generator,
            discriminator,
            g_optimizer,
            d_optimizer,
            latent_dim=preset.latent_dim,
            rng=noise_rng,
            noise=preset.noise,
            loss=preset.make_loss(),
            clip=preset.clip,
            penalty=preset.penalty,
            penalty_weight=preset.penalty_weight,
            d_steps=preset.d_steps,
            g_steps=preset.g_steps,
            simultaneous=preset.simultaneous,
            inference_fakes=preset.inference_fakes,
            reuse_noise=preset.reuse_noise,
            pack=preset.pack,
            num_classes=preset.classes,
            matching_aware=preset.conditional,
        )
        return gan.to(device)

    def make_loss(self) -> GanLoss:
        """The game's :class:`~tinygan.losses.GanLoss`; the cross-entropy game's with this preset's
        targets."""
        if GAN_LOSSES[self.generator_loss].outputs_are_logits:
            return gan_loss(
                self.generator_loss,
                real_label=self.real_label,
                fake_label=self.fake_label,
                generator_target=self.generator_target,
            )
        return gan_loss(self.generator_loss)

    def make_optimizers(
        self, generator: Layer, discriminator: Layer
    ) -> tuple[Optimizer, Optimizer]:
        """Adam (with this preset's betas and eps) or RMSprop for each network, at this preset's
        learning rates."""
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.optimizer == "rmsprop":
            return RMSprop([generator], lr=self.g_lr), RMSprop([discriminator], lr=self.d_lr)
        beta1, beta2 = self.betas
        return (
            Adam([generator], lr=self.g_lr, beta1=beta1, beta2=beta2, eps=self.eps),
            Adam([discriminator], lr=self.d_lr, beta1=beta1, beta2=beta2, eps=self.eps),
        )


def with_minibatch_std(build: Builder) -> Builder:
    """``build`` with ProGAN's minibatch standard deviation in its discriminator, for any preset.

    The returned builder builds what ``build`` does, then puts a
    :class:`~tinygan.nn.MinibatchStd` layer right before the discriminator's last Dense layer
    (ProGAN appends it near the end of D) and gives that Dense one more input row, for the one
    feature the layer appends: the batch's feature deviation averaged over the features.

    One rule for every preset. D's last Dense layer takes a flat (N, F) input in every preset, after
    ``Flatten`` in a convolutional D, so the layer always adds one feature, never a channel: before
    ``Flatten`` it would add a constant channel of H x W copies of the same number (the average
    over the features is the same either way), weighted by H x W weights instead of one.

    The new row starts at zero, so at the first step the discriminator computes what the plain
    preset's does, with the same weights drawn from ``rng`` in the same order (the generator's too);
    its weight on the batch's spread is then learned. With packing the statistic is over the batch
    of packs; a conditional D's features include the class's code.
    """

    def build_with_minibatch_std(
        rng: np.random.Generator,
        dtype: Any = np.float32,
        pack: int = 1,
        num_classes: int | None = None,
    ) -> tuple[Layer, Layer]:
        generator, discriminator = build(rng, dtype, pack=pack, num_classes=num_classes)
        return generator, minibatch_std_before_logit(discriminator)

    build_with_minibatch_std.__name__ = f"{getattr(build, '__name__', 'build')}_minibatch_std"
    return build_with_minibatch_std


def minibatch_std_before_logit(discriminator: Layer) -> Sequential:
    """A new Sequential: ``discriminator``'s layers (the same objects), a
    :class:`~tinygan.nn.MinibatchStd` before its last Dense layer, and that Dense replaced by one
    with one more input row, zero, above a copy of its weights (and its bias)."""
    layers = discriminator.layers if isinstance(discriminator, Sequential) else []
    dense = [index for index, layer in enumerate(layers) if type(layer) is Dense]
    if not dense:
        raise ValueError(
            "minibatch_std: the discriminator has no Dense layer of its own to put the minibatch "
            "standard deviation before"
        )
    last = layers[dense[-1]]
    W = last.params["W"]
    wider = Dense(
        last.in_features + 1,
        last.out_features,
        bias="b" in last.params,
        weight_init=init.zeros(),
        bias_init=init.zeros(),
        dtype=W.dtype,
    )
    wider.params["W"][: last.in_features] = W
    if "b" in last.params:
        wider.params["b"][...] = last.params["b"]
    return Sequential(*layers[: dense[-1]], MinibatchStd(), wider, *layers[dense[-1] + 1 :])


def mlp(
    sizes: list[int],
    hidden: Callable[[], Layer],
    output: Layer | None,
    weight_init: init.Initializer,
    bias_init: init.Initializer,
    rng: np.random.Generator,
    dtype: Any,
) -> Sequential:
    """Dense layers of the given sizes with ``hidden()`` between them and ``output`` at the end."""
    layers: list[Layer] = []
    for index, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(
            Dense(n_in, n_out, weight_init=weight_init, bias_init=bias_init, rng=rng, dtype=dtype)
        )
        if index < len(sizes) - 2:
            layers.append(hidden())
    if output is not None:
        layers.append(output)
    return Sequential(*layers)


def build_mlp_tf(
    rng: np.random.Generator, dtype: Any = np.float32, pack: int = 1, num_classes: int | None = None
) -> tuple[Layer, Layer]:
    """The TensorFlow tutorial's MLP GAN: G 100-128-784 sigmoid, D 784-128-1, weights N(0, 0.05^2), biases 0.1."""
    weights, biases = init.normal(5e-2), init.constant(0.1)
    k = num_classes or 0
    generator = mlp([100 + k, 128, 784], ReLU, Sigmoid(), weights, biases, rng, dtype)
    discriminator = mlp([(784 + k) * pack, 128, 1], ReLU, None, weights, biases, rng, dtype)
    return generator, discriminator


def no_classes(num_classes: int | None, gan: str) -> None:
    """Refuse conditioning, in one line, for a builder whose ``gan`` learns data without classes."""
    if num_classes is not None:
        raise ValueError(f"num_classes: the {gan} GAN's data have no classes to condition on")


def build_gaussian_1d(
    rng: np.random.Generator, dtype: Any = np.float32, pack: int = 1, num_classes: int | None = None
) -> tuple[Layer, Layer]:
    """The Keras tutorial's 1-D Gaussian GAN: G 16-32-1 linear, D 1-32-1, Glorot-uniform weights, zero biases."""
    no_classes(num_classes, "1-D Gaussian")
    weights, biases = init.glorot_uniform(), init.zeros()
    generator = mlp([16, 32, 1], ReLU, None, weights, biases, rng, dtype)
    discriminator = mlp([pack, 32, 1], ReLU, None, weights, biases, rng, dtype)
    return generator, discriminator


def build_mlp_book(
    rng: np.random.Generator, dtype: Any = np.float32, pack: int = 1, num_classes: int | None = None
) -> tuple[Layer, Layer]:
    """The TensorFlow book's MLP GAN: G 128-256-784 sigmoid, D 784-256-1, weights N(0, 0.01^2), zero biases."""
    weights, biases = init.normal(1e-2), init.zeros()
    k = num_classes or 0
    generator = mlp([128 + k, 256, 784], ReLU, Sigmoid(), weights, biases, rng, dtype)
    discriminator = mlp([(784 + k) * pack, 256, 1], ReLU, None, weights, biases, rng, dtype)
    return generator, discriminator


def keras_batchnorm(num_features: int, dtype: Any) -> BatchNorm:
    """Keras' BatchNormalization defaults (momentum 0.99 of the old value, eps 1e-3) in tinygan's terms."""
    return BatchNorm(num_features, momentum=0.01, eps=1e-3, dtype=dtype)


def child_rng(rng: np.random.Generator) -> np.random.Generator:
    """An independent generator drawn from ``rng`` (for a Dropout layer's masks)."""
    return np.random.default_rng(rng.integers(2**63))


def build_dcgan_keras(
    rng: np.random.Generator, dtype: Any = np.float32, pack: int = 1, num_classes: int | None = None
) -> tuple[Layer, Layer]:
    """The Keras tutorial's DCGAN: upsampling + conv generator, conv + max-pool + dropout discriminator.

    Keras' defaults throughout (Glorot-uniform kernels, zero biases), except the discriminator's first
    convolution, initialised N(0, 0.02^2) as in the tutorial.
    """
    k = num_classes or 0
    generator = Sequential(
        Dense(100 + k, 512, rng=rng, dtype=dtype),
        LeakyReLU(0.2),
        Dense(512, 128 * 7 * 7, rng=rng, dtype=dtype),
        LeakyReLU(0.2),
        keras_batchnorm(128 * 7 * 7, dtype),
        Reshape((128, 7, 7)),
        UpSampling2D(2),
        Conv2D(128, 64, 5, padding="same", rng=rng, dtype=dtype),
        Tanh(),
        UpSampling2D(2),
        Conv2D(64, 1, 5, padding="same", rng=rng, dtype=dtype),
        Tanh(),
    )
    discriminator = Sequential(
        Conv2D(
            (1 + k) * pack,
            256,
            5,
            padding="same",
            weight_init=init.normal(0.02),
            rng=rng,
            dtype=dtype,
        ),
        LeakyReLU(0.2),
        MaxPool2D(2, 2),
        Dropout(0.3, rng=child_rng(rng)),
        Conv2D(256, 512, 5, padding="same", rng=rng, dtype=dtype),
        LeakyReLU(0.2),
        MaxPool2D(2, 2),
        Dropout(0.3, rng=child_rng(rng)),
        Flatten(),
        Dense(512 * 7 * 7, 256, rng=rng, dtype=dtype),
        LeakyReLU(0.2),
        Dropout(0.3, rng=child_rng(rng)),
        Dense(256, 1, rng=rng, dtype=dtype),
    )
    return generator, discriminator


def build_dcgan_tf(
    rng: np.random.Generator, dtype: Any = np.float32, pack: int = 1, num_classes: int | None = None
) -> tuple[Layer, Layer]:
    """The TensorFlow tutorial's DCGAN: Dense -> BN -> transposed convolutions 7 -> 14 -> 28, tanh output.

    The generator's layers carry no bias (BatchNorm's beta plays that role); Keras' Glorot-uniform
    kernels and BatchNormalization defaults.
    """
    k = num_classes or 0
    generator = Sequential(
        Dense(100 + k, 7 * 7 * 64, bias=False, rng=rng, dtype=dtype),
        keras_batchnorm(7 * 7 * 64, dtype),
        ReLU(),
        Reshape((64, 7, 7)),
        ConvTranspose2D(64, 64, 5, stride=1, padding="same", bias=False, rng=rng, dtype=dtype),
        keras_batchnorm(64, dtype),
        ReLU(),
        ConvTranspose2D(64, 32, 5, stride=2, padding="same", bias=False, rng=rng, dtype=dtype),
        keras_batchnorm(32, dtype),
        ReLU(),
        ConvTranspose2D(32, 1, 5, stride=2, padding="same", bias=False, rng=rng, dtype=dtype),
        Tanh(),
    )
    discriminator = Sequential(
        Conv2D((1 + k) * pack, 64, 5, stride=2, padding="same", rng=rng, dtype=dtype),
        LeakyReLU(0.2),
        Dropout(0.3, rng=child_rng(rng)),
        Conv2D(64, 128, 5, stride=2, padding="same", rng=rng, dtype=dtype),
        LeakyReLU(0.2),
        Dropout(0.3, rng=child_rng(rng)),
        Flatten(),
        Dense(128 * 7 * 7, 1, rng=rng, dtype=dtype),
    )
    return generator, discriminator


def dcgan_builder(width: int, channels: int = 1) -> Builder:
    """The common DCGAN recipe for 28x28 images of ``channels`` colour channels at ``width``
    feature channels, as a preset's builder.

    Generator: z -> Dense -> BatchNorm -> ReLU -> (2w, 7, 7) -> transposed convolutions 4x4, stride 2,
    to (w, 14, 14) and (c, 28, 28), BatchNorm and ReLU between, tanh out. Discriminator: 4x4 stride-2
    convolutions (c -> w -> 2w channels), LeakyReLU 0.2, BatchNorm on every layer but the first
    (normalising the raw images would hide their statistics from D), one logit from a Dense layer.
    Weights drawn from N(0, 0.02); no bias before a BatchNorm, whose beta plays that role.
    """

    def build(
        rng: np.random.Generator,
        dtype: Any = np.float32,
        pack: int = 1,
        num_classes: int | None = None,
    ) -> tuple[Layer, Layer]:
        weights = init.normal(0.02)
        k = num_classes or 0
        conv = {"kernel_size": 4, "stride": 2, "padding": 1, "weight_init": weights, "rng": rng}
        generator = Sequential(
            Dense(
                100 + k, 2 * width * 7 * 7, bias=False, weight_init=weights, rng=rng, dtype=dtype
            ),
            BatchNorm(2 * width * 7 * 7, dtype=dtype),
            ReLU(),
            Reshape((2 * width, 7, 7)),
            ConvTranspose2D(2 * width, width, bias=False, dtype=dtype, **conv),
            BatchNorm(width, dtype=dtype),
            ReLU(),
            ConvTranspose2D(width, channels, bias=False, dtype=dtype, **conv),
            Tanh(),
        )
        discriminator = Sequential(
            Conv2D((channels + k) * pack, width, dtype=dtype, **conv),
            LeakyReLU(0.2),
            Conv2D(width, 2 * width, bias=False, dtype=dtype, **conv),
            BatchNorm(2 * width, dtype=dtype),
            LeakyReLU(0.2),
            Flatten(),
            Dense(2 * width * 7 * 7, 1, weight_init=weights, rng=rng, dtype=dtype),
        )
        return generator, discriminator

    build.__name__ = f"build_dcgan_w{width}" + (f"_c{channels}" if channels != 1 else "")
    return build


def build_mixture_gan(
    rng: np.random.Generator, dtype: Any = np.float32, pack: int = 1, num_classes: int | None = None
) -> tuple[Layer, Layer]:
    """VEEGAN's and PacGAN's networks for the 2-D ring and grid, as PacGAN's code builds them.

    Generator 2 -> 400 -> 400 -> 400 -> 400 -> 2: each hidden layer a Dense map without bias (the
    BatchNorm's beta plays that role), BatchNorm (population statistics ``0.95 * old + 0.05 *
    batch``: momentum 0.05; eps 1e-4, as Blocks' layer) and ReLU; a linear output with bias.
    Discriminator: three maxout layers of 200 units of 5 pieces (the first takes ``pack`` points)
    and a Dense logit, no BatchNorm. Every weight drawn from N(0, 0.02^2), every bias 0.
    """
    no_classes(num_classes, "2-D mixture")
    weights, zeros = init.normal(0.02), init.zeros()
    dense = {"weight_init": weights, "bias_init": zeros, "rng": rng, "dtype": dtype}
    hidden: list[Layer] = []
    for n_in in (2, 400, 400, 400):
        hidden += [
            Dense(n_in, 400, bias=False, **dense),
            BatchNorm(400, momentum=0.05, eps=1e-4, dtype=dtype),
            ReLU(),
        ]
    generator = Sequential(*hidden, Dense(400, 2, **dense))
    discriminator = Sequential(
        Maxout(2 * pack, 200, 5, **dense),
        Maxout(200, 200, 5, **dense),
        Maxout(200, 200, 5, **dense),
        Dense(200, 1, **dense),
    )
    return generator, discriminator


def mixture_preset(mixture: str, description: str) -> Preset:
    """The protocol of VEEGAN's and PacGAN's tables on one 2-D mixture (``docs/presets.md``).

    Noise z ~ N(0, I_2); Adam 1e-4 with beta1 0.8 for both networks; batch 100 (of packs, with
    ``--pack``); both updates from one forward (the authors' code trains as ALI does: one graph,
    both losses, one update of each), D on the real and fake batches in one pass (it has no
    BatchNorm). 400 epochs of the authors' 100,000 packed examples are 400,000 steps at any
    packing; scatter frames every 10,000 steps.
    """
    return Preset(
        name=mixture,
        alias=None,
        description=description,
        build=build_mixture_gan,
        latent_dim=2,
        noise="normal",
        data_shape=(2,),
        value_range=(-np.inf, np.inf),  # a linear output layer
        batch_size=100,
        g_lr=1e-4,
        d_lr=1e-4,
        betas=(0.8, 0.999),
        steps=400_000,
        simultaneous=True,
        sample_every=10_000,
        sample_unit="step",
        make_gif=True,
        mixture=mixture,
    )


class PresetTable(Mapping[str, Preset]):
    """Presets by name, where an alias finds its preset too: ``PRESETS["003"] is PRESETS["dcgan-tf"]``.

    Iterating (``list(PRESETS)``, ``PRESETS.items()``) gives each preset once, under its name.
    """

    def __init__(self, *presets: Preset) -> None:
        self._by_name = {preset.name: preset for preset in presets}
        self._name_of_alias = {preset.alias: preset.name for preset in presets if preset.alias}

    def __getitem__(self, name: str) -> Preset:
        return self._by_name[self._name_of_alias.get(name, name)]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)


PRESETS = PresetTable(
    Preset(
        name="mlp-tf",
        alias="000",
        description="MLP GAN on MNIST (TensorFlow tutorial): uniform z, Adam 1e-3, batch 64, 100k iterations",
        build=build_mlp_tf,
        latent_dim=100,
        noise="uniform",
        data_shape=(784,),
        value_range=(0.0, 1.0),
        batch_size=64,
        g_lr=1e-3,
        d_lr=1e-3,
        steps=100_000,
        reuse_noise=True,  # both session runs are fed the same batch_noise
        sample_every=500,
        sample_unit="step",
        sample_grid=(8, 8),
    ),
    Preset(
        name="gaussian-1d",
        alias="001",
        description="1-D GAN on 1,000 draws of N(0, 1) (Keras tutorial): uniform z of 16, "
        "Adam 1e-3 (D) / 5e-4 (G), batch 333, label smoothing 0.9 / 0.1, 1,000 epochs",
        build=build_gaussian_1d,
        latent_dim=16,
        noise="uniform",
        data_shape=(1,),
        value_range=(-np.inf, np.inf),  # a linear output layer: any real number
        batch_size=333,  # 3 minibatches per epoch of the 1,000 samples
        g_lr=5e-4,
        d_lr=1e-3,
        eps=1e-7,  # Keras' Adam
        epochs=1000,
        # Keras fits D with targets 0.9 (real) / 0.1 (fake), and fits the combined G -> D model
        # with target 0.9 for the fakes: the non-saturating loss with a smoothed target.
        real_label=0.9,
        fake_label=0.1,
        generator_target=0.9,
        # D's fakes come from Generator.predict(bz) (the same for this G, which has neither
        # BatchNorm nor dropout), and G's update is fit on that same bz
        inference_fakes=True,
        reuse_noise=True,
        sample_every=10,  # print losses and the KL divergence every 10 epochs
        sample_unit="epoch",
    ),
    Preset(
        name="dcgan-keras",
        alias="002",
        description="Keras DCGAN: upsampling generator, max-pool discriminator, n_iter_D=1, n_iter_G=5, real label 0.9",
        build=build_dcgan_keras,
        latent_dim=100,
        noise="uniform",
        data_shape=(1, 28, 28),
        value_range=(-1.0, 1.0),
        batch_size=128,
        g_lr=2e-4,
        d_lr=2e-4,
        betas=(0.5, 0.999),
        eps=1e-7,  # Keras' Adam
        # the tutorial's "epoch" is one iteration of n_iter_D + n_iter_G updates; it ran 1000 of them
        steps=1000,
        real_label=0.9,
        d_steps=1,
        g_steps=5,
        inference_fakes=True,  # D's fakes come from G.predict(z): BatchNorm's running statistics
        sample_every=20,
        sample_unit="step",
        sample_first=True,  # the tutorial's first picture follows the first iteration
        sample_grid=(1, 8),
        pixel_histograms=True,
    ),
    Preset(
        name="dcgan-tf",
        alias="003",
        description="TensorFlow DCGAN: Dense-BN-ConvTranspose generator, tanh; Adam 1e-4, batch 256, 150 epochs",
        build=build_dcgan_tf,
        latent_dim=100,
        noise="normal",
        data_shape=(1, 28, 28),
        value_range=(-1.0, 1.0),
        batch_size=256,
        g_lr=1e-4,
        d_lr=1e-4,
        epochs=150,
        simultaneous=True,  # train_step takes both gradients from one generator(noise)
        sample_every=1,
        sample_unit="epoch",
        sample_grid=(4, 4),
        checkpoint_every=15,
        make_gif=True,
    ),
    Preset(
        name="mlp-book",
        alias="004",
        description="MLP GAN on MNIST (TensorFlow book): hidden 256, normal z of 128, Adam 2e-4, batch 100, 100 epochs",
        build=build_mlp_book,
        latent_dim=128,
        noise="normal",
        data_shape=(784,),
        value_range=(0.0, 1.0),
        batch_size=100,
        g_lr=2e-4,
        d_lr=2e-4,
        epochs=100,
        # The tutorial maximises log D(x) + log(1 - D(G(z))) for D and log D(G(z)) for G: the
        # non-saturating game, with its losses printed as those (negative) log-likelihoods.
        generator_loss="nonsaturating",
        reuse_noise=True,  # train_D and train_G are fed the same noise
        sample_every=10,
        sample_unit="epoch",
        sample_first=True,  # samples after epoch 1, then every 10
        sample_grid=(1, 10),
    ),
    Preset(
        name="dcgan-fast",
        alias=None,
        description="DCGAN for a CPU, not from the tutorials: the common recipe (4x4 stride-2 "
        "convolutions, BatchNorm, Adam 2e-4 beta1 0.5) at width 32, batch 128, 2,000 steps",
        build=dcgan_builder(32),
        latent_dim=100,
        noise="normal",
        data_shape=(1, 28, 28),
        value_range=(-1.0, 1.0),
        batch_size=128,
        g_lr=2e-4,
        d_lr=2e-4,
        betas=(0.5, 0.999),
        steps=2000,
        # the alternating step with training-mode fakes and fresh noise for G: the rules its quality
        # in benchmarks/QUALITY.md was measured with
        sample_every=200,
        sample_grid=(8, 8),
    ),
    mixture_preset(
        "ring",
        "2-D ring of 8 Gaussians (VEEGAN, PacGAN): BatchNorm MLP G, maxout D, Adam 1e-4 "
        "beta1 0.8, batch 100, 400,000 simultaneous steps",
    ),
    mixture_preset(
        "grid",
        "2-D grid of 25 Gaussians (VEEGAN, PacGAN): BatchNorm MLP G, maxout D, Adam 1e-4 "
        "beta1 0.8, batch 100, 400,000 simultaneous steps",
    ),
    Preset(
        name="stacked-mnist",
        alias=None,
        description="DCGAN on Stacked MNIST, 1,000 modes (VEEGAN, PacGAN): dcgan-fast's network "
        "on three channels (the papers' larger DCGAN is out of reach on a CPU); uniform z, "
        f"Adam 2e-4 beta1 0.5, batch 64, two G updates per D update, {STACKED_STEPS:,} steps",
        build=dcgan_builder(32, channels=3),
        latent_dim=100,
        noise="uniform",
        data_shape=(3, 28, 28),
        value_range=(-1.0, 1.0),
        batch_size=64,
        g_lr=2e-4,
        d_lr=2e-4,
        betas=(0.5, 0.999),
        steps=STACKED_STEPS,
        # PacGAN's code (after carpedm20's DCGAN-tensorflow) updates G twice after each D update,
        # both times on the noise batch of that D update
        g_steps=2,
        reuse_noise=True,
        sample_every=500,
        sample_grid=(8, 8),
        stacked=True,
    ),
)


def get_preset(name: str) -> Preset:
    """The preset called or aliased ``name`` ("dcgan-tf" or "003"), with an error listing the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(
            f"unknown preset {name!r}; known presets: {describe_presets(list(PRESETS))}"
        ) from None


def describe_presets(names: list[str]) -> str:
    """How messages list presets: ``"mlp-tf (000), mlp-book (004)"``."""
    return ", ".join(
        f"{PRESETS[name].name} ({PRESETS[name].alias})"
        if PRESETS[name].alias
        else PRESETS[name].name
        for name in names
    )
