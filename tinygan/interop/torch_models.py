"""The presets in PyTorch: the same networks and weights, and the same training step.

Rather than restating each architecture, :func:`to_torch` translates a built tinygan network layer by
layer (tracing the per-sample shapes with :func:`tinygan.interop.trace_layers`) and copies its
weights, so the PyTorch model cannot drift from the preset: same layer sizes, activations, BatchNorm
settings, dropout rates and weights. It is what ``tinygan export --format torch`` saves the state
dict of, and :func:`build_generator` / :func:`build_discriminator` rebuild the module that state dict
loads into::

    import torch
    from tinygan.interop.torch_models import build_generator

    g = build_generator("dcgan-tf")
    g.load_state_dict(torch.load("g.pt"))
    images = g.eval()(torch.randn(16, 100))  # evaluation mode: BatchNorm's running statistics

:class:`TorchGAN` runs :meth:`tinygan.gan.GAN.train_step`'s algorithm with PyTorch's own tools
(autograd, ``torch.optim.Adam`` with the preset's settings, ``binary_cross_entropy_with_logits``)
for the side-by-side timings in ``benchmarks/``.

Keras' ``"same"`` padding may be asymmetric (the odd row after), which ``torch.nn.Conv2d`` cannot
express: such a convolution gets an explicit ``ZeroPad2d`` in front, and such a transposed convolution
a :class:`Crop2d` behind (both are what tinygan computes too: the padded im2col, the full col2im).

Needs the ``torch`` extra; importing this module imports ``torch`` (``import tinygan`` does not).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tinygan.atomic import write_atomically
from tinygan.backend import to_numpy
from tinygan.interop import NoCounterpartError, input_shape, trace_layers
from tinygan.models import Preset, get_preset
from tinygan.nn import (
    BatchNorm,
    Conv2D,
    ConvTranspose2D,
    Dense,
    Dropout,
    Layer,
    LeakyReLU,
    Maxout,
    MaxPool2D,
    ReLU,
    Reshape,
    Sigmoid,
    Tanh,
    UpSampling2D,
)


class Crop2d(nn.Module):
    """Drop ``(top, bottom, left, right)`` rows and columns from the border of NCHW images (a view)."""

    def __init__(self, top: int, bottom: int, left: int, right: int) -> None:
        super().__init__()
        self.top, self.bottom, self.left, self.right = top, bottom, left, right

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        return x[..., self.top : height - self.bottom, self.left : width - self.right]


class View(nn.Module):
    """Reshape every sample to ``shape`` (``-1`` allowed), like :class:`tinygan.nn.Reshape`."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.shape = shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.shape)


class PieceMax(nn.Module):
    """The maximum over each unit's ``pieces`` consecutive features, as :class:`tinygan.nn.Maxout`
    takes it after its affine map."""

    def __init__(self, pieces: int) -> None:
        super().__init__()
        self.pieces = pieces

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1, self.pieces).amax(dim=2)


def _copy(target: torch.Tensor, source: np.ndarray) -> None:
    """Overwrite a parameter or buffer with a NumPy array of the same shape."""
    with torch.no_grad():
        target.copy_(torch.from_numpy(np.ascontiguousarray(to_numpy(source), dtype=np.float32)))


def _dense(layer: Dense) -> nn.Module:
    module = nn.Linear(layer.in_features, layer.out_features, bias="b" in layer.params)
    _copy(module.weight, layer.params["W"].T)  # tinygan stores (in, out), PyTorch (out, in)
    if module.bias is not None:
        _copy(module.bias, layer.params["b"])
    return module


def _maxout(layer: Maxout) -> nn.Module:
    width = layer.units * layer.pieces
    linear = nn.Linear(layer.in_features, width, bias="b" in layer.params)
    _copy(linear.weight, layer.params["W"].T)
    if linear.bias is not None:
        _copy(linear.bias, layer.params["b"])
    return nn.Sequential(linear, PieceMax(layer.pieces))


def _copy_conv_params(module: nn.Module, layer: Layer) -> None:
    _copy(module.weight, layer.params["W"])  # both libraries share the weight layout
    if module.bias is not None:
        _copy(module.bias, layer.params["b"])


def _conv(layer: Conv2D, input_shape: tuple[int, ...]) -> nn.Module:
    top, bottom, left, right = layer.padding_for(input_shape[1:])
    symmetric = top == bottom and left == right
    module = nn.Conv2d(
        layer.in_channels,
        layer.out_channels,
        layer.kernel_size,
        stride=layer.stride,
        padding=(top, left) if symmetric else 0,
        bias="b" in layer.params,
    )
    _copy_conv_params(module, layer)
    return module if symmetric else nn.Sequential(nn.ZeroPad2d((left, right, top, bottom)), module)


def _conv_transpose(layer: ConvTranspose2D, input_shape: tuple[int, ...]) -> nn.Module:
    out, (top, _, left, _) = layer.output_geometry(input_shape[1:])
    # the rows and columns every input pixel's kernel stamp covers, before any cropping
    full = [
        (n - 1) * s + k
        for n, s, k in zip(input_shape[1:], layer.stride, layer.kernel_size, strict=True)
    ]
    # PyTorch crops `padding` from both sides and may add `output_padding < stride` at the end
    output_padding = [o - f + 2 * c for o, f, c in zip(out, full, (top, left), strict=True)]
    native = all(0 <= op < s for op, s in zip(output_padding, layer.stride, strict=True))
    module = nn.ConvTranspose2d(
        layer.in_channels,
        layer.out_channels,
        layer.kernel_size,
        stride=layer.stride,
        padding=(top, left) if native else 0,
        output_padding=tuple(output_padding) if native else 0,
        bias="b" in layer.params,
    )
    _copy_conv_params(module, layer)
    if native:
        return module
    bottom, right = full[0] - top - out[0], full[1] - left - out[1]
    if min(bottom, right) < 0:
        raise NoCounterpartError(
            f"{layer!r}: an output past the kernel's reach has no PyTorch twin here"
        )
    return nn.Sequential(module, Crop2d(top, bottom, left, right))


def _batchnorm(layer: BatchNorm, input_shape: tuple[int, ...]) -> nn.Module:
    norm = nn.BatchNorm1d if len(input_shape) == 1 else nn.BatchNorm2d
    module = norm(layer.num_features, eps=layer.eps, momentum=layer.momentum)
    _copy(module.weight, layer.params["gamma"])
    _copy(module.bias, layer.params["beta"])
    _copy(module.running_mean, layer.buffers["mean"])
    _copy(module.running_var, layer.buffers["var"])
    return module


#: Layers translated from their attributes alone (no shapes, no weights).
_SIMPLE: dict[type, Callable[[Layer], nn.Module]] = {
    ReLU: lambda layer: nn.ReLU(),
    LeakyReLU: lambda layer: nn.LeakyReLU(layer.alpha),
    Sigmoid: lambda layer: nn.Sigmoid(),
    Tanh: lambda layer: nn.Tanh(),
    Dropout: lambda layer: nn.Dropout(layer.rate),
    MaxPool2D: lambda layer: nn.MaxPool2d(layer.size, layer.stride),
    UpSampling2D: lambda layer: nn.Upsample(scale_factor=layer.scale, mode="nearest"),
    Reshape: lambda layer: View(layer.shape),  # Flatten is Reshape((-1,))
}


def to_torch(network: Layer, sample_shape: tuple[int, ...]) -> nn.Sequential:
    """A PyTorch twin of a tinygan network, with a copy of its current parameters and buffers.

    Parameters
    ----------
    network : Layer
        A tinygan layer or (nested) Sequential built from the layers of :mod:`tinygan.nn`.
    sample_shape : tuple of int
        Shape of one input sample (needed to resolve ``"same"`` padding).

    Returns
    -------
    torch.nn.Sequential
        One module per leaf layer, float32, in training mode.
    """
    modules = []
    for traced in trace_layers(network, sample_shape):
        layer, shape = traced.layer, traced.input_shape
        if isinstance(layer, Dense):
            modules.append(_dense(layer))
        elif isinstance(layer, Maxout):
            modules.append(_maxout(layer))
        elif isinstance(layer, Conv2D):
            modules.append(_conv(layer, shape))
        elif isinstance(layer, ConvTranspose2D):
            modules.append(_conv_transpose(layer, shape))
        elif isinstance(layer, BatchNorm):
            modules.append(_batchnorm(layer, shape))
        else:
            simple = next((make for kind, make in _SIMPLE.items() if isinstance(layer, kind)), None)
            if simple is None:
                raise NoCounterpartError(f"no PyTorch twin for {type(layer).__name__}")
            modules.append(simple(layer))
    return nn.Sequential(*modules).float().train()


def _build(preset_name: str, network: str, conditional: bool) -> nn.Sequential:
    preset = replace(get_preset(preset_name), conditional=conditional)
    # the initial weights do not matter: the module is a shape for a state dict to load into
    generator, discriminator = preset.networks(np.random.default_rng(0))
    layers = generator if network == "generator" else discriminator
    return to_torch(layers, input_shape(preset, network)).eval()


def build_generator(preset_name: str, conditional: bool = False) -> nn.Sequential:
    """The PyTorch twin of a preset's generator (by name or alias), in evaluation mode.

    Its weights are a fresh draw; load the ones of ``tinygan export --format torch`` with
    ``g.load_state_dict(torch.load("g.pt"))``. Input z: (batch, latent_dim), or for a conditional
    run's generator (``conditional=True``) z followed by the one-hot code of the class wanted;
    output as tinygan's.
    """
    return _build(preset_name, "generator", conditional)


def build_discriminator(preset_name: str, conditional: bool = False) -> nn.Sequential:
    """The PyTorch twin of a preset's discriminator (by name or alias), in evaluation mode; see
    :func:`build_generator`. It outputs one logit per sample."""
    return _build(preset_name, "discriminator", conditional)


def export_torch(
    network: Layer, preset: Preset, network_kind: str, path: str | os.PathLike
) -> nn.Sequential:
    """Save the state dict of ``network``'s PyTorch twin to ``path`` (``torch.save``), atomically.

    ``build_generator(preset.name)`` (or ``build_discriminator``) rebuilds the module it loads into.
    Returns the twin, in evaluation mode.
    """
    twin = to_torch(network, input_shape(preset, network_kind)).eval()
    buffer = io.BytesIO()
    torch.save(twin.state_dict(), buffer)
    write_atomically(Path(path), lambda file: file.write(buffer.getvalue()))
    return twin


class TorchGAN:
    """The training step of :class:`tinygan.gan.GAN` in PyTorch, for one preset.

    Parameters
    ----------
    preset : Preset
        Latent size and noise, labels, generator loss, Adam settings, ``d_steps`` / ``g_steps``
        and the step rules (``simultaneous``, ``reuse_noise``, ``inference_fakes``).
    generator, discriminator : Layer
        tinygan networks built by ``preset.build``; translated with :func:`to_torch`.
    seed : int
        Seed of the noise generator.
    """

    def __init__(self, preset: Preset, generator: Layer, discriminator: Layer, seed: int) -> None:
        others = (preset.clip, preset.penalty, preset.spectral_norm, preset.optimizer != "adam")
        if preset.generator_loss not in ("nonsaturating", "minimax") or any(others):
            raise ValueError(
                f"TorchGAN plays the cross-entropy game with Adam, as the presets do; preset "
                f"{preset.name} as configured plays {preset.generator_loss} with "
                f"{preset.optimizer}, clip {preset.clip}, penalty {preset.penalty}, spectral "
                f"norm {preset.spectral_norm}"
            )
        self.preset = preset
        self.generator = to_torch(generator, (preset.latent_dim,))
        self.discriminator = to_torch(discriminator, preset.data_shape)
        self.g_optimizer = torch.optim.Adam(
            self.generator.parameters(), lr=preset.g_lr, betas=preset.betas, eps=preset.eps
        )
        self.d_optimizer = torch.optim.Adam(
            self.discriminator.parameters(), lr=preset.d_lr, betas=preset.betas, eps=preset.eps
        )
        self.noise = torch.Generator().manual_seed(seed)

    def sample_noise(self, n: int) -> torch.Tensor:
        """z ~ U(-1, 1) or N(0, 1), shaped (n, latent_dim), as the preset says."""
        z = torch.empty(n, self.preset.latent_dim)
        if self.preset.noise == "uniform":
            return z.uniform_(-1.0, 1.0, generator=self.noise)
        return z.normal_(generator=self.noise)

    @staticmethod
    def bce(logits: torch.Tensor, target: float) -> torch.Tensor:
        """Mean sigmoid cross-entropy of the logits against a constant target."""
        return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))

    def discriminator_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """L_D = BCE(D(real), real_label) + BCE(D(fake), fake_label)."""
        return self.bce(self.discriminator(real), self.preset.real_label) + self.bce(
            self.discriminator(fake), self.preset.fake_label
        )

    def generator_loss(self, z: torch.Tensor) -> torch.Tensor:
        """-log D(G(z)) as BCE against ``generator_target`` (non-saturating), or log(1 - D(G(z)))."""
        return self.generator_loss_of_logits(self.discriminator(self.generator(z)))

    def generator_loss_of_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """The generator loss on D's logits for the fakes."""
        if self.preset.generator_loss == "nonsaturating":
            return self.bce(logits, self.preset.generator_target)
        return -self.bce(logits, 0.0)

    def discriminator_step(self, real: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """One Adam update of D on ``real`` and G(z) (z fresh unless given); returns L_D."""
        z = self.sample_noise(real.shape[0]) if z is None else z
        with torch.no_grad():  # the fake batch is data for this step: no graph through G
            self.generator.train(not self.preset.inference_fakes)
            fake = self.generator(z)
            self.generator.train()
        self.d_optimizer.zero_grad()
        loss = self.discriminator_loss(real, fake)
        loss.backward()
        self.d_optimizer.step()
        return loss

    def generator_step(self, batch_size: int, z: torch.Tensor | None = None) -> torch.Tensor:
        """One Adam update of G through D on G(z) (z fresh unless given); D's weight gradients are
        never computed."""
        z = self.sample_noise(batch_size) if z is None else z
        self.g_optimizer.zero_grad()
        loss = self.generator_loss(z)
        # backward only towards G's parameters: autograd skips D's weight-gradient products
        loss.backward(inputs=list(self.generator.parameters()))
        self.g_optimizer.step()
        return loss

    def simultaneous_step(self, real: torch.Tensor) -> None:
        """Both updates from one G(z): D's gradient from L_D, G's through D as it was, then both step."""
        fake = self.generator(self.sample_noise(real.shape[0]))
        logits_real, logits_fake = self.discriminator(real), self.discriminator(fake)
        d_loss = self.bce(logits_real, self.preset.real_label) + self.bce(
            logits_fake, self.preset.fake_label
        )
        g_loss = self.generator_loss_of_logits(logits_fake)
        self.d_optimizer.zero_grad()
        self.g_optimizer.zero_grad()
        # each loss only towards its own network's parameters; the fake batch's graph serves both
        d_loss.backward(inputs=list(self.discriminator.parameters()), retain_graph=True)
        g_loss.backward(inputs=list(self.generator.parameters()))
        self.d_optimizer.step()
        self.g_optimizer.step()

    def train_step(self, next_real_batch: Callable[[], torch.Tensor]) -> None:
        """``d_steps`` discriminator updates, each on a new real batch, then ``g_steps`` G updates
        (on the last D update's noise with ``reuse_noise``); or one simultaneous update."""
        if self.preset.simultaneous:
            self.simultaneous_step(next_real_batch())
            return
        for _ in range(self.preset.d_steps):
            real = next_real_batch()
            z = self.sample_noise(real.shape[0])
            self.discriminator_step(real, z)
        for _ in range(self.preset.g_steps):
            self.generator_step(real.shape[0], z if self.preset.reuse_noise else None)
