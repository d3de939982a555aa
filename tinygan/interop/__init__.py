"""Taking a trained network out of tinygan: to ONNX (:mod:`tinygan.interop.onnx_export`) and to
PyTorch (:mod:`tinygan.interop.torch_models`).

Both are optional: they need the ``onnx`` or ``torch`` extra (``pip install "tinygan[onnx]"``,
``"tinygan[torch]"``), which ``import tinygan`` never imports. This module holds what the two routes
share and needs NumPy alone: rebuilding a network from a checkpoint, walking its layers with their
shapes, and the facts about a preset that an exported file should carry.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinygan.models import Preset
from tinygan.nn import Layer, Sequential
from tinygan.run.checkpoint import load_for_inference


class NoCounterpartError(ValueError):
    """A layer kind that an export route has no counterpart for (ONNX nodes, a PyTorch module)."""


@dataclass(frozen=True)
class TracedLayer:
    """One leaf layer of a network with the shape of one sample going in and coming out."""

    layer: Layer
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]


def trace_layers(network: Layer, sample_shape: tuple[int, ...]) -> list[TracedLayer]:
    """The leaf layers of ``network`` in data-flow order, with their per-sample shapes.

    The shapes come from running every layer in evaluation mode on one zero sample, so they are the
    ones tinygan itself computes ("same" padding and transposed-convolution sizes depend on them);
    nested :class:`~tinygan.nn.Sequential` containers are flattened.
    """
    dtype = next((p.dtype for layer in network.walk() for p in layer.params.values()), np.float32)
    traced: list[TracedLayer] = []

    def visit(layer: Layer, x: Any) -> Any:
        if isinstance(layer, Sequential):
            for child in layer.layers:
                x = visit(child, x)
            return x
        if layer.sublayers():
            raise ValueError(f"cannot trace the container {type(layer).__name__}: not a chain")
        y, _ = layer.forward(x, training=False)
        traced.append(TracedLayer(layer, tuple(x.shape[1:]), tuple(y.shape[1:])))
        return y

    visit(network, np.zeros((1, *sample_shape), dtype=dtype))
    return traced


def input_shape(preset: Preset, network: str) -> tuple[int, ...]:
    """Shape of one input sample of the preset's generator (z, followed by the one-hot code of a
    class when conditional) or discriminator (an image with its class's code when conditional, or
    ``preset.pack`` of them side by side)."""
    if network == "generator":
        return (preset.latent_dim + (preset.classes or 0),)
    return preset.packed_shape


def load_network(path: str | os.PathLike, network: str = "generator") -> tuple[Layer, Preset]:
    """Rebuild the generator or discriminator saved in the checkpoint at ``path``, on the CPU.

    The generator gets its own weights, not their moving average (``--ema``).

    Raises
    ------
    FileNotFoundError, CheckpointError, NonFiniteCheckpointError
        As :func:`tinygan.run.checkpoint.load_for_inference` does.
    """
    layers, preset, _ = load_for_inference(path, network)
    return layers, preset


def export_metadata(preset: Preset, network: str) -> dict[str, str]:
    """What a program using the exported network needs to know, as strings.

    ``noise`` is ``uniform`` (z ~ U(-1, 1)) or ``normal`` (z ~ N(0, 1)); ``value_range`` is the
    generator's output range as JSON (``[-1.0, 1.0]``; ``[-Infinity, Infinity]`` for a linear
    output), and a discriminator outputs one logit per sample (``sigmoid(logit)`` = P(real)).
    """
    low, high = preset.value_range
    metadata = {
        "producer": "tinygan",
        "preset": preset.name,
        "network": network,
        "latent_dim": str(preset.latent_dim),
        "noise": preset.noise,
        "noise_description": "U(-1, 1)" if preset.noise == "uniform" else "N(0, 1)",
        "data_shape": "[" + ", ".join(str(n) for n in preset.data_shape) + "]",
        "value_range": f"[{_json_float(low)}, {_json_float(high)}]",
    }
    if preset.alias is not None:  # presets added after the numbered seeds have no alias
        metadata["preset_alias"] = preset.alias
    if preset.classes is not None:
        metadata["num_classes"] = str(preset.classes)
    if network == "generator":
        metadata["input"] = f"z: (batch, {preset.latent_dim}) float32"
        if preset.classes is not None:  # G(z, y) = G([z, onehot(y)])
            metadata["input"] = (
                f"z: (batch, {preset.latent_dim} + {preset.classes}) float32, the latent vector "
                "followed by the one-hot code of the class wanted"
            )
        metadata["output"] = "images: (batch, *data_shape) float32 in value_range"
    else:
        metadata["input"] = discriminator_input(preset)
        metadata["output"] = "logits: (batch, 1) float32; sigmoid(logit) = P(real)"
    return metadata


def discriminator_input(preset: Preset) -> str:
    """What the preset's discriminator takes, in words: samples, each with its class's one-hot
    code appended when conditional (features, or constant planes of an image), packed side by
    side (PacGAN) when ``pack`` > 1."""
    sample = "data_shape[0]" if preset.classes is None else f"(data_shape[0] + {preset.classes})"
    code = ""
    if preset.classes is not None:
        code = (
            f", each sample followed by the one-hot code of its class ({preset.classes} "
            "features, or planes of ones and zeros for an image)"
        )
    if preset.pack == 1 and preset.classes is None:
        return "x: (batch, *data_shape) float32 in value_range"
    if preset.pack == 1:
        return f"x: (batch, {sample}, *data_shape[1:]) float32 in value_range{code}"
    return (
        f"x: (batch, {preset.pack} * {sample}, *data_shape[1:]) float32 in value_range, "
        f"{preset.pack} samples side by side{code}"
    )


def _json_float(value: float) -> str:
    """A float as JSON writes it (``Infinity`` for inf), so ``json.loads`` reads it back."""
    if np.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(float(value))
