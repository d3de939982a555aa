"""Pictures of a training run: sample grids, scatter plots, loss curves, histograms and an animated
GIF.

Everything here renders off-screen. Figures are built from :class:`matplotlib.figure.Figure` with a
:class:`~matplotlib.backends.backend_agg.FigureCanvasAgg` attached directly, never through
``matplotlib.pyplot``: pyplot keeps a global list of open figures and a global backend choice, and
a library that only writes files has no business changing either (a user in a notebook keeps their
backend, a long run keeps no figures alive). Raw pixel grids skip matplotlib altogether and go
through Pillow, which is fast enough to call every few hundred training steps.

Inputs may be NumPy or CuPy arrays; they are copied to the host with
:func:`tinygan.backend.to_numpy`. Every writer creates the missing parent folders and writes
atomically (a temporary file in the same folder, then :func:`os.replace`), so a run interrupted
mid-write leaves either the previous file or the new one, never a truncated PNG.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from tinygan.atomic import write_atomically
from tinygan.backend import to_numpy

PathLike = str | os.PathLike

# Sample grids with a title are laid out in pixels. A power-of-two dpi makes ``pixels / dpi * dpi``
# exact in floating point, so the canvas gets exactly the intended size (with dpi=100, 29 px would
# come back as 28.999... and be truncated to 28).
_GRID_DPI = 64
_TITLE_PX = 14  # title font height in pixels
_TITLE_MARGIN_PX = 6  # space above and below the title

_PLOT_SIZE_INCHES = (8.0, 4.5)
_PLOT_DPI = 100

# Loss curves longer than this get a moving average drawn over the faint raw series.
_SMOOTH_ABOVE = 200


def tile_images(
    images: np.ndarray, rows: int, cols: int, padding: int = 2, pad_value: float = 1.0
) -> np.ndarray:
    """Arrange images on a ``rows x cols`` grid, row by row, separated by ``padding`` pixels.

    Parameters
    ----------
    images : array, shape (N, H, W), (N, 1, H, W), (N, 3, H, W) or (N, H*W)
        Images with values in [0, 1] (not checked: values are copied as they are). Flat rows of
        length ``H*W`` are taken as square images, ``H = W``.
    rows, cols : int
        Grid layout; image ``i`` goes to row ``i // cols``, column ``i % cols``. ``N`` may be
        smaller than ``rows * cols``: the remaining cells are filled with ``pad_value``.
    padding : int
        Pixels between cells and around the border.
    pad_value : float
        Value of the padding and of the empty cells (1.0: white).

    Returns
    -------
    grid : numpy.ndarray, shape (rows*(H+padding)+padding, cols*(W+padding)+padding)
        Float array; with 3-channel input it has a trailing channel axis of size 3 (channels last,
        as image files store them).

    Raises
    ------
    ValueError
        If ``N > rows * cols``, ``rows`` or ``cols`` is below 1, ``padding`` is negative, the
        channel count is not 1 or 3, or flat images do not have a square number of pixels.

    Notes
    -----
    Cell ``(r, c)`` occupies rows ``padding + r*(H+padding)`` to ``... + H`` and columns
    ``padding + c*(W+padding)`` to ``... + W`` of the grid.
    """
    images = _as_nhwc(to_numpy(images))
    if rows < 1 or cols < 1:
        raise ValueError(f"rows and cols must be >= 1, got rows={rows}, cols={cols}")
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    n, height, width, channels = images.shape
    if n > rows * cols:
        raise ValueError(f"{n} images do not fit on a {rows}x{cols} grid ({rows * cols} cells)")

    cell_h, cell_w = height + padding, width + padding
    dtype = np.result_type(images.dtype, np.float32)
    grid = np.full(
        (rows * cell_h + padding, cols * cell_w + padding, channels), pad_value, dtype=dtype
    )
    for i, image in enumerate(images):
        top = padding + (i // cols) * cell_h
        left = padding + (i % cols) * cell_w
        grid[top : top + height, left : left + width] = image
    return grid[..., 0] if channels == 1 else grid


def _as_nhwc(images: np.ndarray) -> np.ndarray:
    """Bring the accepted image layouts to (N, H, W, C) with C in {1, 3}."""
    if images.ndim == 2:
        n, size = images.shape
        side = math.isqrt(size)
        if side * side != size:
            raise ValueError(
                f"flat images of length {size} are not square ({side}^2 = {side * side}); "
                f"reshape them to (N, H, W) before tiling"
            )
        return images.reshape(n, side, side, 1)
    if images.ndim == 3:
        return images[..., np.newaxis]
    if images.ndim == 4:
        if images.shape[1] not in (1, 3):
            raise ValueError(
                f"images of shape {images.shape} have {images.shape[1]} channels; expected 1 or 3 "
                f"(layout N, C, H, W)"
            )
        return images.transpose(0, 2, 3, 1)
    raise ValueError(
        f"images must have shape (N, H, W), (N, C, H, W) or (N, H*W), got {images.shape}"
    )


def save_image_grid(
    images: Any,
    path: PathLike,
    rows: int,
    cols: int,
    value_range: tuple[float, float] = (0.0, 1.0),
    title: str | None = None,
    scale: int = 2,
    padding: int = 2,
) -> Path:
    r"""Write a grid of images as a PNG (grayscale, or RGB for 3-channel images).

    Parameters
    ----------
    images : array, shape (N, H, W), (N, 1, H, W), (N, 3, H, W) or (N, H*W)
        NumPy or CuPy array; see :func:`tile_images`.
    path : str or os.PathLike
        Output file; missing parent folders are created.
    rows, cols : int
        Grid layout (8x8, 4x4, or a 1x10 strip, ...).
    value_range : tuple of float
        ``(low, high)`` of the images: ``(0, 1)`` for a sigmoid output, ``(-1, 1)`` for tanh.
        ``low`` maps to black and ``high`` to white; values outside are clipped.
    title : str, optional
        Text rendered above the grid. Without it the pixels are written directly (no matplotlib).
    scale : int
        Integer upscaling with nearest neighbour, so that 28x28 digits stay visible and sharp.
    padding : int
        White pixels between and around the cells (0 for a single image without a frame).

    Returns
    -------
    pathlib.Path
        ``path``.

    Notes
    -----
    Intensities: :math:`u = \mathrm{clip}((x - low) / (high - low), 0, 1)`, stored as the byte
    :math:`\mathrm{round}(255 u)`. The padding between cells is white. With a title, the grid keeps
    exactly the same pixels, placed under a band holding the text (the figure is widened if the text
    is wider than the grid).
    """
    low, high = value_range
    if not high > low:
        raise ValueError(f"value_range must satisfy low < high, got {value_range}")
    if scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale}")
    unit = np.clip((to_numpy(images) - low) / (high - low), 0.0, 1.0)
    pixels = _to_bytes(tile_images(unit, rows, cols, padding=padding))
    pixels = pixels.repeat(scale, axis=0).repeat(scale, axis=1)
    if title is None:
        return _save_pixels(pixels, path)
    return save_figure(_titled_image_figure(pixels, title), path)


def grid_bytes(
    n: int,
    image_shape: tuple[int, ...],
    rows: int,
    cols: int,
    scale: int = 2,
    padding: int = 2,
) -> int:
    """About the most memory :func:`save_image_grid` holds at once for ``n`` float32 images.

    For refusing a grid that cannot fit before anything is generated. ``image_shape`` is one image's
    shape, in any layout :func:`tile_images` accepts. Counted: the images and their rescaled and
    clipped copies; the float32 canvas, its clipped and rounded copies and its bytes; the bytes
    repeated ``scale`` times down and across, and the image library's copy of them.
    """
    _, height, width, channels = _as_nhwc(np.empty((0, *image_shape))).shape
    canvas = (rows * (height + padding) + padding) * (cols * (width + padding) + padding) * channels
    images = n * height * width * channels * 4
    return 3 * images + canvas * (3 * 4 + 1) + canvas * (scale + 2 * scale**2)


def _to_bytes(image: np.ndarray) -> np.ndarray:
    """Map [0, 1] floats to uint8 0..255 (clipping values outside)."""
    return np.rint(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def _titled_image_figure(pixels: np.ndarray, title: str) -> Figure:
    """A figure showing ``pixels`` (uint8, H x W or H x W x 3) unresampled under a title band."""
    height, width = pixels.shape[:2]
    figure = new_figure((width / _GRID_DPI, height / _GRID_DPI), _GRID_DPI)
    text = figure.text(
        0.5, 1.0, title, ha="center", va="center", fontsize=_TITLE_PX * 72 / _GRID_DPI
    )
    extent = text.get_window_extent(renderer=figure.canvas.get_renderer())
    band = math.ceil(extent.height) + 2 * _TITLE_MARGIN_PX
    figure_w = max(width, math.ceil(extent.width) + 2 * _TITLE_MARGIN_PX)
    figure_h = height + band
    figure.set_size_inches(figure_w / _GRID_DPI, figure_h / _GRID_DPI)
    text.set_y(1.0 - band / 2 / figure_h)
    # figimage copies pixels 1:1 at an integer offset (no resampling, no axes). A grayscale image
    # is given as RGB so that no colormap lookup can shift a byte by one.
    rgb = pixels if pixels.ndim == 3 else np.repeat(pixels[..., np.newaxis], 3, axis=2)
    figure.figimage(rgb, xo=(figure_w - width) // 2, yo=0, origin="upper")
    return figure


def save_loss_curves(
    history: dict[str, Sequence[float]],
    path: PathLike,
    steps: Sequence[int] | None = None,
    title: str = "Losses",
    ylabel: str = "loss",
    xlabel: str = "step",
    beside: tuple[str, Sequence[int], Sequence[float]] | None = None,
) -> Path:
    r"""Plot one line per series (``d_loss``, ``g_loss``, ``d_real``, ``d_fake`` ...) against steps.

    Parameters
    ----------
    history : dict of str to sequence of float
        Series to plot, keyed by their legend label.
    path : str or os.PathLike
        Output PNG; missing parent folders are created.
    steps : sequence of int, optional
        x coordinates shared by all series (same length as each). Default: 0, 1, 2, ...
    title, ylabel, xlabel : str
        Figure title and axis labels.
    beside : (label, steps, values), optional
        A second panel to the right, e.g. the FID measured during training, so that the losses can be
        read against the quality they bought.

    Returns
    -------
    pathlib.Path
        ``path``.

    Notes
    -----
    GAN losses are noisy from step to step. A series longer than 200 points is drawn faintly, with a
    centred moving average of window :math:`w = \max(5, n / 50)` on top,
    :math:`\bar y_t = \frac{1}{w} \sum_{k=0}^{w-1} y_{t - \lfloor (w-1)/2 \rfloor + k}`, so the
    trend is readable while the raw spread stays visible.
    """
    if not history:
        raise ValueError("history is empty: nothing to plot")
    width, height = _PLOT_SIZE_INCHES
    figure = new_figure((width * (1.6 if beside else 1.0), height), _PLOT_DPI, layout="constrained")
    axes = figure.add_subplot(1, 2, 1) if beside else figure.add_subplot()
    if beside:
        label, at, values = beside
        side = figure.add_subplot(1, 2, 2)
        side.plot(np.asarray(at), np.asarray(values, dtype=np.float64), marker="o")
        side.set_xlabel(xlabel)
        side.set_title(label)
        side.grid(alpha=0.3)
    for name, values in history.items():
        _plot_series(axes, name, np.asarray(to_numpy(values), dtype=np.float64).ravel(), steps)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    return save_figure(figure, path)


def _plot_series(axes: Any, name: str, y: np.ndarray, steps: Sequence[int] | None) -> None:
    """One series of :func:`save_loss_curves`: as it is, or faint with its moving average on top."""
    if steps is None:
        x = np.arange(y.size)
    else:
        x = np.asarray(steps)
        if x.shape != y.shape:
            raise ValueError(
                f"series {name!r} has {y.size} values but steps has {x.size}; "
                f"they must have the same length"
            )
    if y.size <= _SMOOTH_ABOVE:
        axes.plot(x, y, label=name)
        return
    (raw,) = axes.plot(x, y, alpha=0.3, linewidth=0.8)
    window = max(5, y.size // 50)
    smooth = np.convolve(y, np.ones(window) / window, mode="valid")
    start = (window - 1) // 2
    axes.plot(
        x[start : start + smooth.size],
        smooth,
        color=raw.get_color(),
        label=f"{name} (moving average of {window})",
    )


def save_histograms(
    series: dict[str, np.ndarray],
    path: PathLike,
    bins: int = 50,
    title: str = "",
    range: tuple[float, float] | None = None,
    xlabel: str = "value",
) -> Path:
    r"""Overlay semi-transparent density histograms, e.g. real vs generated pixel intensities.

    Parameters
    ----------
    series : dict of str to array
        Samples of any shape (flattened), NumPy or CuPy, keyed by their legend label.
    path : str or os.PathLike
        Output PNG; missing parent folders are created.
    bins : int
        Number of bins, shared by all series.
    title, xlabel : str
        Figure title and x-axis label.
    range : tuple of float, optional
        ``(low, high)`` of the bins. Default: the smallest and largest finite value over all series.

    Returns
    -------
    pathlib.Path
        ``path``.

    Notes
    -----
    All series use the same bin edges, and each histogram is normalised to a density
    (:math:`\sum_b p_b \Delta_b = 1`), so series of different sizes are directly comparable.
    Non-finite values are left out.
    """
    if not series:
        raise ValueError("series is empty: nothing to plot")
    samples = {}
    for name, values in series.items():
        flat = np.asarray(to_numpy(values), dtype=np.float64).ravel()
        samples[name] = flat[np.isfinite(flat)]
    if range is None:
        pooled = np.concatenate(list(samples.values()))
        if pooled.size == 0:
            raise ValueError("no finite values to histogram")
        range = (float(pooled.min()), float(pooled.max()))
    edges = np.histogram_bin_edges(np.empty(0), bins=bins, range=range)

    figure = new_figure(_PLOT_SIZE_INCHES, _PLOT_DPI, layout="constrained")
    axes = figure.add_subplot()
    for name, flat in samples.items():
        axes.hist(flat, bins=edges, density=True, alpha=0.5, histtype="stepfilled", label=name)
    axes.set_xlabel(xlabel)
    axes.set_ylabel("density")
    if title:
        axes.set_title(title)
    axes.legend()
    return save_figure(figure, path)


def scatter_limits(centres: Any, margin: float = 0.25) -> tuple[float, float]:
    """One (low, high) for both axes of a scatter plot of a mixture: its centres' extent widened by
    ``margin`` times that extent (at least 1) on each side. Frames of a run share it, so a GIF of
    them does not jump."""
    centres = np.asarray(to_numpy(centres), dtype=np.float64)
    low, high = float(centres.min()), float(centres.max())
    pad = margin * max(high - low, 1.0)
    return low - pad, high + pad


def plot_points(
    axes: Any,
    points: Any,
    centres: Any = None,
    limits: tuple[float, float] | None = None,
    title: str = "",
) -> None:
    """Draw 2-D ``points`` (N, 2) as small dots on ``axes`` over ``centres`` (K, 2) marked as red
    crosses, on the square view ``limits`` (default: :func:`scatter_limits` of the centres, or the
    points' own range). Points outside the view are counted in the title."""
    points = np.asarray(to_numpy(points), dtype=np.float64).reshape(-1, 2)
    if limits is None:
        reference = centres if centres is not None else points[np.isfinite(points)]
        limits = scatter_limits(reference) if np.size(reference) else (-1.0, 1.0)
    low, high = limits
    inside = np.all((points >= low) & (points <= high), axis=1)
    if centres is not None:  # beneath the points: a mode the samples cover hides its cross
        centres = np.asarray(to_numpy(centres), dtype=np.float64)
        axes.scatter(centres[:, 0], centres[:, 1], s=40, marker="x", color="tab:red", lw=1.2)
    axes.scatter(points[inside, 0], points[inside, 1], s=2, alpha=0.4, color="tab:blue", lw=0)
    axes.set_xlim(low, high)
    axes.set_ylim(low, high)
    axes.set_aspect("equal")
    outside = len(points) - int(inside.sum())
    note = f" ({outside} of {len(points)} outside the view)" if outside else ""
    if title or note:
        axes.set_title(f"{title}{note}", fontsize=10)


def save_scatter(
    points: Any,
    path: PathLike,
    centres: Any = None,
    limits: tuple[float, float] | None = None,
    title: str = "",
) -> Path:
    """A square scatter plot of 2-D samples over the modes of their target (:func:`plot_points`),
    500x500 pixels, written atomically as a PNG; returns ``path``."""
    figure = new_figure((5.0, 5.0), _PLOT_DPI, layout="constrained")
    plot_points(figure.add_subplot(), points, centres, limits, title)
    return save_figure(figure, path)


def save_gif(
    frames: Sequence[PathLike | np.ndarray],
    path: PathLike,
    duration_ms: int = 200,
    loop: int = 0,
) -> Path:
    """Assemble frames (image files or arrays) into an animated GIF.

    Parameters
    ----------
    frames : sequence of path or array
        Image files (e.g. the PNGs written by :func:`save_image_grid`), or arrays with values in
        [0, 1] of shape (H, W) (grayscale) or (H, W, 3) (RGB), such as :func:`tile_images` returns.
    path : str or os.PathLike
        Output GIF; missing parent folders are created.
    duration_ms : int
        Display time of each frame in milliseconds (GIF stores hundredths of a second).
    loop : int
        Number of repetitions; 0 loops forever.

    Returns
    -------
    pathlib.Path
        ``path``.

    Notes
    -----
    Frames of different sizes are centred on a white canvas of the largest width and height. Pillow
    stores a frame identical to the one before it as a longer display of that frame, so the file may
    hold fewer frames than were given when some repeat.
    """
    if len(frames) == 0:
        raise ValueError("frames is empty: a GIF needs at least one frame")
    if duration_ms <= 0:
        raise ValueError(f"duration_ms must be positive, got {duration_ms}")
    pictures = [_frame_image(frame) for frame in frames]
    width = max(picture.width for picture in pictures)
    height = max(picture.height for picture in pictures)
    canvases = []
    for picture in pictures:
        canvas = Image.new("RGB", (width, height), "white")
        canvas.paste(picture, ((width - picture.width) // 2, (height - picture.height) // 2))
        canvases.append(canvas)

    def write(file: IO[bytes]) -> None:
        canvases[0].save(
            file,
            format="GIF",
            save_all=True,
            append_images=canvases[1:],
            duration=duration_ms,
            loop=loop,
        )

    return write_atomically(path, write)


def _frame_image(frame: PathLike | np.ndarray) -> Image.Image:
    """One GIF frame as an RGB Pillow image, from a file or a [0, 1] array."""
    if isinstance(frame, (str, os.PathLike)):
        with Image.open(frame) as picture:
            return picture.convert("RGB")  # convert() loads the pixels, so the file can close
    array = to_numpy(frame)
    if array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3):
        return Image.fromarray(_to_bytes(array)).convert("RGB")
    raise ValueError(f"array frames must have shape (H, W) or (H, W, 3), got {array.shape}")


def new_figure(size_inches: tuple[float, float], dpi: float, layout: str | None = None) -> Figure:
    """A figure with its own Agg canvas, unknown to pyplot (nothing global is created)."""
    figure = Figure(figsize=size_inches, dpi=dpi, layout=layout)
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Figure, path: PathLike) -> Path:
    """Write ``figure`` as a PNG, atomically, at the figure's own size and dpi."""
    # print_png renders at the figure's own size and dpi; savefig would apply the user's
    # rcParams["savefig.*"] (dpi, tight bbox) and change the pixel layout.
    return write_atomically(path, figure.canvas.print_png)


def _save_pixels(pixels: np.ndarray, path: PathLike) -> Path:
    image = Image.fromarray(pixels)  # uint8 (H, W) -> mode "L", (H, W, 3) -> "RGB"
    return write_atomically(path, lambda file: image.save(file, format="PNG"))
