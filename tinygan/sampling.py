"""Generate images from a saved checkpoint, reproducibly.

A checkpoint records its preset (by name, or by alias for runs from before the presets had names),
so the generator can be rebuilt and loaded without knowing what trained it. Every batch of samples
is written together with the latent vectors that produced it (``latents.npy``): feeding that file
back (``--latents``) regenerates the very same pictures, bit for bit, on the same machine and
backend. One vector cut out of the file and generated alone gives its picture again to within
float32 rounding (about 1e-7), not always bit for bit: a matrix product may round a row differently
depending on where the row sits in the batch (see :func:`generate`). The vectors can also be edited
and explored.
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
    """Rebuild the generator of the checkpoint at ``path``; returns (generator, preset, metadata).

    A checkpoint of a run with ``--ema`` gives the moving average of G's weights: it makes steadier
    samples than the last iterate (see :mod:`tinygan.ema`).
    """
    archive = read_checkpoint(path)
    metadata = checkpoint_metadata(archive)
    if "preset" not in metadata:
        raise ValueError(
            f"{path} does not say which preset it belongs to; cannot rebuild its generator"
        )
    preset = get_preset(metadata["preset"])
    generator, _ = preset.build(np.random.default_rng(0))  # weights are overwritten just below
    load_networks(archive, generator, prefer_ema=True)
    return generator.to(device), preset, metadata


def check_latents(latents: Any, preset: Preset) -> np.ndarray:
    """``latents`` as a float32 array of shape (n, latent_dim), n >= 1, every value finite.

    Raises
    ------
    ValueError
        Wrong shape (with the expected one), no vectors at all, or NaN / inf values (a generator
        would turn them into meaningless pictures without complaint).
    """
    with np.errstate(over="ignore"):  # values beyond float32 become inf, reported below
        latents = np.asarray(latents, dtype=np.float32)
    if latents.ndim != 2 or latents.shape[1] != preset.latent_dim:
        raise ValueError(
            f"latents must have shape (n, {preset.latent_dim}) for preset {preset.name}, "
            f"got {latents.shape}"
        )
    if len(latents) == 0:
        raise ValueError(f"latents hold no vectors (shape {latents.shape}): give at least one")
    finite = np.isfinite(latents).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise ValueError(
            f"latents must be finite: {len(bad)} of {len(latents)} vectors hold NaN or inf "
            f"(or values too large for float32), the first is row {bad[0]}"
        )
    return latents


def load_latents(path: str | os.PathLike, preset: Preset) -> np.ndarray:
    """Read a ``latents.npy`` for ``preset``; see :func:`check_latents` for what it must hold.

    Returns
    -------
    numpy.ndarray
        float32, shape (n, latent_dim).

    Raises
    ------
    OSError
        The file cannot be opened.
    ValueError
        One line naming the file: not a ``.npy`` array (an ``.npz`` archive, pickled data, a
        damaged file), not floating point, or refused by :func:`check_latents`.
    """
    path = Path(path)
    try:
        latents = np.load(path, allow_pickle=False)  # never run code from a data file
    except (ValueError, EOFError) as error:
        raise ValueError(f"{path}: not a NumPy .npy array ({error})") from error
    if not isinstance(latents, np.ndarray):  # np.load opens an .npz archive instead
        latents.close()
        raise ValueError(f"{path}: an .npz archive, not a .npy array of latent vectors")
    if not np.issubdtype(latents.dtype, np.floating):
        raise ValueError(f"{path}: holds {latents.dtype} values, not floating-point latent vectors")
    try:
        return check_latents(latents, preset)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


def generate(
    generator: Layer,
    preset: Preset,
    n: int | None = None,
    seed: int | None = None,
    latents: np.ndarray | None = None,
    device: str = "cpu",
    batch_size: int = 256,
) -> tuple[np.ndarray, np.ndarray]:
    """Images in [0, 1] of shape (n, *preset.image_size) and the latents (n, latent_dim) behind them.

    Give either ``latents`` (checked by :func:`check_latents`) or ``n`` (with an optional
    ``seed``). The generator runs in evaluation mode (running BatchNorm statistics), in batches of
    ``batch_size``. The same latents give the same images bit for bit; one vector generated alone
    matches its image from a batch to within float32 rounding.
    """
    if latents is None:
        if n is None or n < 1:
            raise ValueError("give a positive n, or latents")
        latents = draw_noise(
            np.random.default_rng(seed), n, preset.latent_dim, preset.noise, np.float32
        )
    latents = check_latents(latents, preset)
    low, high = preset.value_range
    images = []
    for start in range(0, len(latents), batch_size):
        chunk = latents[start : start + batch_size]
        # A matrix product may round differently for different batch sizes, so every chunk is padded
        # to the same size: an image then depends only on its latent vector and its row in the
        # chunk. The row still matters in the last bit (BLAS kernels split a matrix into blocks of
        # rows and may round an edge block differently), so the same latents file reproduces its
        # images exactly, while a vector moved to another row may differ by float32 rounding.
        padded = np.zeros((batch_size, latents.shape[1]), dtype=np.float32)
        padded[: len(chunk)] = chunk
        images.append(to_numpy(generator(to_device(padded, device)))[: len(chunk)])
    pixels = (np.concatenate(images).reshape(len(latents), *preset.image_size) - low) / (high - low)
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
