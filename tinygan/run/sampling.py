"""Generate images from a saved checkpoint, reproducibly.

A checkpoint records its preset (by name, or by alias for runs from before the presets had names),
so the generator can be rebuilt and loaded without knowing what trained it. Every batch of samples
is written together with the latent vectors that produced it (``latents.npy``): feeding that file
back (``--latents``) regenerates the very same pictures, bit for bit, on the same machine and
backend. One vector cut out of the file and generated alone gives its picture again to within
float32 rounding (about 1e-7), not always bit for bit: a matrix product may round a row differently
depending on where the row sits in the batch (see :func:`generate`). The vectors can also be edited
and explored.

Images are generated and written a batch at a time (:func:`generate_batches`,
:func:`write_sample_batches`), so memory does not grow with their number, and :func:`check_room`
refuses beforehand what would not fit: more images than grid cells, a grid larger than the
machine's memory, files larger than the free disk space.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from tinygan.backend import to_device, to_numpy
from tinygan.gan import check_labels, condition_samples, draw_noise
from tinygan.models import Preset
from tinygan.nn.layer import Layer
from tinygan.run.checkpoint import load_for_inference
from tinygan.viz import grid_bytes, save_image_grid


def load_generator(
    path: str | os.PathLike, device: str = "cpu"
) -> tuple[Layer, Preset, dict[str, Any]]:
    """Rebuild the generator of the checkpoint at ``path``; returns (generator, preset, metadata).

    A checkpoint of a run with ``--ema`` gives the moving average of G's weights: it makes steadier
    samples than the last iterate (see :mod:`tinygan.ema`).

    Raises
    ------
    FileNotFoundError, CheckpointError, NonFiniteCheckpointError
        As :func:`tinygan.run.checkpoint.load_for_inference` does: no file, an unusable one, or one
        holding a NaN or an infinity.
    ValueError
        The checkpoint is of a preset that makes 2-D points, not images.
    """
    generator, preset, metadata = load_for_inference(path, "generator", prefer_ema=True)
    if preset.mixture:
        raise ValueError(
            f"{path}: preset {preset.name} makes 2-D points, not images; its run folder holds "
            "their scatter plots (samples/) and mode counts (modes.csv)"
        )
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


def check_sample_labels(labels: Any, n: int, preset: Preset) -> np.ndarray | None:
    """The classes of ``n`` samples of ``preset`` as an integer array (n,), or None when
    unconditional.

    A conditional preset takes one class for all samples (an int) or one per sample (an integer
    array, checked by :func:`tinygan.gan.check_labels`); an unconditional one takes none.

    Raises
    ------
    ValueError
        One line: labels missing for a conditional preset, given for an unconditional one, or not
        ``n`` classes of the preset's.
    """
    if preset.classes is None:
        if labels is not None:
            raise ValueError(f"labels given for preset {preset.name}, which is not conditional")
        return None
    if labels is None:
        raise ValueError(
            f"preset {preset.name} is conditional: give labels, one class in "
            f"[0, {preset.classes}) for all samples or one per sample"
        )
    if isinstance(labels, int | np.integer) and not isinstance(labels, bool):
        labels = np.full(n, labels)
    return check_labels(labels, n, preset.classes)


def spread_labels(n: int, num_classes: int) -> np.ndarray:
    """Classes for ``n`` samples spread evenly over ``num_classes``: 0, 1, ..., K - 1, 0, 1, ...

    Every class gets ``n // K`` or one more samples: what a measurement of a conditional
    generator asks of it, so that each class is judged on as many samples as the others.
    """
    return np.arange(n) % num_classes


def class_rows(noise: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The latents and labels of a grid with one row per class: ``noise`` (cols, latent_dim)
    repeated in every row, row ``k`` of class ``k``.

    Returns (latents, labels) of ``num_classes * cols`` cells in row-major order: a column shows
    the same noise vector, one style, drawn as every class.
    """
    latents = np.tile(noise, (num_classes, 1))
    return latents, np.repeat(np.arange(num_classes), len(noise))


def generate_batches(
    generator: Layer,
    preset: Preset,
    n: int | None = None,
    seed: int | None = None,
    latents: np.ndarray | None = None,
    device: str = "cpu",
    batch_size: int = 256,
    labels: Any = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """:func:`generate`, one batch of ``batch_size`` at a time: memory stays bounded whatever ``n``.

    Yields (images, latents) pairs whose concatenation is what :func:`generate` returns, bit for bit.
    The arguments are checked at once, before the first batch is asked for.
    """
    if latents is not None:
        latents = check_latents(latents, preset)
        n = len(latents)
        chunks = (latents[i : i + batch_size] for i in range(0, n, batch_size))
    elif n is None or n < 1:
        raise ValueError("give a positive n, or latents")
    else:
        rng = np.random.default_rng(seed)
        # NumPy fills an array in order, so batch after batch draws the same numbers as one draw
        chunks = (
            draw_noise(rng, min(batch_size, n - i), preset.latent_dim, preset.noise, np.float32)
            for i in range(0, n, batch_size)
        )
    classes = check_sample_labels(labels, n, preset)
    return (
        (_images(generator, preset, chunk, device, batch_size, classes, start), chunk)
        for start, chunk in zip(range(0, n, batch_size), chunks, strict=True)
    )


def _images(
    generator: Layer,
    preset: Preset,
    latents: np.ndarray,
    device: str,
    batch_size: int,
    classes: np.ndarray | None,
    start: int,
) -> np.ndarray:
    # A matrix product may round differently for different batch sizes, so every chunk is padded to
    # the same size: an image then depends only on its latent vector and its row in the chunk. The
    # row still matters in the last bit (BLAS kernels split a matrix into blocks of rows and may
    # round an edge block differently), so the same latents file reproduces its images exactly,
    # while a vector moved to another row may differ by float32 rounding.
    padded = np.zeros((batch_size, latents.shape[1]), dtype=np.float32)
    padded[: len(latents)] = latents
    if classes is not None:  # G(z, y): the classes of the chunk's samples, class 0 in the padding
        padded_classes = np.zeros(batch_size, dtype=np.int64)
        padded_classes[: len(latents)] = classes[start : start + len(latents)]
        padded = condition_samples(padded, padded_classes, preset.classes)
    images = to_numpy(generator(to_device(padded, device)))[: len(latents)]
    low, high = preset.value_range
    pixels = (images.reshape(len(latents), *preset.image_shape) - low) / (high - low)
    return np.clip(pixels, 0.0, 1.0)


def generate(
    generator: Layer,
    preset: Preset,
    n: int | None = None,
    seed: int | None = None,
    latents: np.ndarray | None = None,
    device: str = "cpu",
    batch_size: int = 256,
    labels: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Images in [0, 1] of shape (n, *preset.image_shape) and the latents (n, latent_dim) behind them.

    Give either ``latents`` (checked by :func:`check_latents`) or ``n`` (with an optional
    ``seed``). A conditional preset's generator also needs ``labels``: the class of every image
    (an integer array of n classes) or of all of them (one int); an unconditional one takes none
    (:func:`check_sample_labels`). The generator runs in evaluation mode (running BatchNorm
    statistics), in batches of ``batch_size``. The same latents (and labels) give the same images
    bit for bit; one vector generated alone matches its image from a batch to within float32
    rounding. All ``n`` images are held at once: :func:`generate_batches` gives them a batch at a
    time.
    """
    batches = list(
        generate_batches(generator, preset, n, seed, latents, device, batch_size, labels)
    )
    return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])


class NoRoomError(ValueError):
    """Samples whose arrays would not fit in this machine's memory, or whose files not on its disk.

    Raised before anything is generated; the message says how much is needed and how much there is.
    """


def physical_memory() -> int | None:
    """Bytes of memory of this machine, or None where the operating system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows), or no such name
        return None


def check_memory(needed: int, what: str) -> None:
    """Raise :class:`NoRoomError` when ``needed`` bytes (for ``what``) exceed this machine's memory.

    The whole memory, not what is free now: only requests that cannot fit on this machine at all
    are refused, never one that a busy moment makes look large.
    """
    total = physical_memory()
    if total is not None and needed > total:
        raise NoRoomError(
            f"{what} would take about {_size(needed)} of memory, more than this machine's "
            f"{_size(total)}"
        )


def _size(count: float) -> str:
    """``count`` bytes in the largest binary unit that keeps the number at least 1."""
    units = ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB")
    power = min(int(math.log(max(count, 1), 1024)), len(units) - 1)
    return f"{count / 1024**power:.1f} {units[power]}"


def check_room(
    n: int, preset: Preset, out_dir: str | os.PathLike, grid: tuple[int, int] | None = None
) -> None:
    """Raise unless :func:`write_sample_batches` can write ``n`` images of ``preset`` to ``out_dir``.

    Checked: that the grid has a cell for every image, that the grid fits in memory
    (:func:`tinygan.viz.grid_bytes`), and that the disk has room for ``latents.npy`` and at least
    one block per PNG. Single PNGs are written a batch at a time, so they need no more memory
    however many there are.

    Raises
    ------
    NoRoomError
        With how much is needed and how much there is.
    """
    if grid is not None:
        rows, cols = grid
        if rows * cols < n:
            raise NoRoomError(f"a {rows}x{cols} grid has only {rows * cols} cells for {n} images")
        needed = grid_bytes(n, preset.image_shape, rows, cols)
        check_memory(needed, f"a {rows}x{cols} grid of {n} images")
    folder = next(
        p for p in (Path(out_dir).absolute(), *Path(out_dir).absolute().parents) if p.exists()
    )
    block = max(os.statvfs(folder).f_frsize, 1) if hasattr(os, "statvfs") else 1
    files, pngs = (1, "the grid PNG") if grid is not None else (n, "one PNG per image")
    needed = n * preset.latent_dim * 4 + files * block  # a file takes at least one block
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise NoRoomError(
            f"{n} images need at least {_size(needed)} on disk (latents.npy and {pngs}), "
            f"and {folder} has {_size(free)} free"
        )


def write_samples(
    images: np.ndarray,
    latents: np.ndarray,
    out_dir: str | os.PathLike,
    grid: tuple[int, int] | None = None,
) -> list[Path]:
    """Save ``latents.npy`` and either one grid PNG (``grid=(rows, cols)``) or one PNG per image."""
    return write_sample_batches([(images, latents)], len(images), out_dir, grid)


def write_sample_batches(
    batches: Iterable[tuple[np.ndarray, np.ndarray]],
    n: int,
    out_dir: str | os.PathLike,
    grid: tuple[int, int] | None = None,
) -> list[Path]:
    """:func:`write_samples` for ``n`` images arriving in batches (from :func:`generate_batches`).

    Each batch is written as it comes: the latent vectors appended to ``latents.npy``, the images
    as PNGs, so memory stays bounded; only a grid keeps its images until the end. A run stopped
    half-way leaves a ``latents.npy`` shorter than its header says, which NumPy refuses to load.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    width, written, kept, paths = len(str(n - 1)), 0, None, []
    with open(out_dir / "latents.npy", "wb") as file:
        for images, latents in batches:
            if file.tell() == 0:
                header = {"descr": "<f4", "fortran_order": False, "shape": (n, latents.shape[1])}
                np.lib.format.write_array_header_1_0(file, header)
            if written + len(latents) > n:
                raise ValueError(f"more than the {n} images announced")
            file.write(np.ascontiguousarray(latents, dtype="<f4").tobytes())
            if grid is not None:
                if kept is None:
                    kept = np.empty((n, *images.shape[1:]), dtype=np.float32)
                kept[written : written + len(images)] = images
            else:
                for i, image in enumerate(images, start=written):
                    name = f"sample_{i:0{width}d}.png"
                    paths.append(save_image_grid(image[None], out_dir / name, 1, 1, padding=0))
            written += len(latents)
    if written != n:
        raise ValueError(f"{written} images written, {n} announced")
    if grid is not None:
        paths.append(save_image_grid(kept, out_dir / "grid.png", *grid))
    return paths
