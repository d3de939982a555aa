"""Generate images from a saved checkpoint, reproducibly.

A checkpoint records its preset, so the generator can be rebuilt and loaded without knowing what
trained it. Every batch of samples is written together with the latent vectors that produced it
(``latents.npy``): feeding that file back (``--latents``) regenerates the very same pictures, so one
image of a grid can be reproduced exactly, or the vectors edited and explored.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from tinygan.backend import to_device, to_numpy
from tinygan.checkpoint import checkpoint_metadata, load_networks, read_checkpoint
from tinygan.gan import draw_noise
from tinygan.models import Preset, get_preset
from tinygan.nn.layer import Layer
from tinygan.viz import save_image_grid


def load_generator(
    path: str | os.PathLike, device: str = "cpu"
) -> tuple[Layer, Preset, dict[str, Any]]:
    """Rebuild the generator of the checkpoint at ``path``; returns (generator, preset, metadata)."""
    archive = read_checkpoint(path)
    metadata = checkpoint_metadata(archive)
    if "preset" not in metadata:
        raise ValueError(
            f"{path} does not say which preset it belongs to; cannot rebuild its generator"
        )
    preset = get_preset(metadata["preset"])
    generator, _ = preset.build(np.random.default_rng(0))  # weights are overwritten just below
    load_networks(archive, generator)
    return generator.to(device), preset, metadata


def generate(
    generator: Layer,
    preset: Preset,
    n: int | None = None,
    seed: int | None = None,
    latents: np.ndarray | None = None,
    device: str = "cpu",
    batch_size: int = 256,
) -> tuple[np.ndarray, np.ndarray]:
    """Images in [0, 1] of shape (n, 28, 28) and the latent vectors (n, latent_dim) behind them.

    Give either ``latents`` or ``n`` (with an optional ``seed``). The generator runs in evaluation
    mode (running BatchNorm statistics), in batches of ``batch_size``.
    """
    if latents is None:
        if n is None or n < 1:
            raise ValueError("give a positive n, or latents")
        latents = draw_noise(
            np.random.default_rng(seed), n, preset.latent_dim, preset.noise, np.float32
        )
    latents = np.asarray(latents, dtype=np.float32)
    if latents.ndim != 2 or latents.shape[1] != preset.latent_dim:
        raise ValueError(
            f"latents must have shape (n, {preset.latent_dim}) for preset {preset.name}, got {latents.shape}"
        )
    low, high = preset.value_range
    images = []
    for start in range(0, len(latents), batch_size):
        chunk = latents[start : start + batch_size]
        # A matrix product may round differently for different batch sizes, so every chunk is padded
        # to the same size: an image then depends on its own latent vector alone, bit for bit.
        padded = np.zeros((batch_size, latents.shape[1]), dtype=np.float32)
        padded[: len(chunk)] = chunk
        images.append(to_numpy(generator(to_device(padded, device)))[: len(chunk)])
    pixels = (np.concatenate(images).reshape(len(latents), 28, 28) - low) / (high - low)
    return np.clip(pixels, 0.0, 1.0), latents


def write_samples(
    images: np.ndarray,
    latents: np.ndarray,
    out_dir: str | os.PathLike,
    grid: tuple[int, int] | None = None,
) -> list[Path]:
    """Save ``latents.npy`` and either one grid PNG (``grid=(rows, cols)``) or one PNG per image."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    np.save(out_dir / "latents.npy", latents)
    if grid is not None:
        return [save_image_grid(images, out_dir / "grid.png", *grid)]
    width = len(str(len(images) - 1))
    return [
        save_image_grid(image[None], out_dir / f"sample_{i:0{width}d}.png", 1, 1, padding=0)
        for i, image in enumerate(images)
    ]
