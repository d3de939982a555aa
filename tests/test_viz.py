"""Tests for tinygan.viz: grid layout, PNG/GIF contents, atomic writes, no global pyplot state."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tinygan import viz
from tinygan.viz import save_gif, save_histograms, save_image_grid, save_loss_curves, tile_images


def constant_images(n: int, height: int, width: int) -> np.ndarray:
    """Image i is filled with the value (i + 1) / 10, so every cell is recognisable."""
    return np.stack([np.full((height, width), (i + 1) / 10) for i in range(n)])


def cell(grid: np.ndarray, r: int, c: int, height: int, width: int, padding: int) -> np.ndarray:
    top, left = padding + r * (height + padding), padding + c * (width + padding)
    return grid[top : top + height, left : left + width]


def read_png(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("L"), dtype=np.float64)


# ---------------------------------------------------------------- tile_images


def test_tile_layout_is_row_major_with_padding_between_and_around() -> None:
    height, width, padding = 4, 5, 1
    grid = tile_images(
        constant_images(6, height, width), rows=2, cols=3, padding=padding, pad_value=-1
    )
    assert grid.shape == (2 * (height + padding) + padding, 3 * (width + padding) + padding)
    for i in range(6):
        r, c = divmod(i, 3)
        np.testing.assert_array_equal(cell(grid, r, c, height, width, padding), (i + 1) / 10)
    # Padding pixels are exactly those outside every cell.
    mask = np.ones(grid.shape, dtype=bool)
    for r in range(2):
        for c in range(3):
            cell(mask, r, c, height, width, padding)[...] = False
    np.testing.assert_array_equal(grid[mask], -1)
    assert mask.sum() == grid.size - 6 * height * width


def test_tile_without_padding_is_plain_concatenation() -> None:
    images = np.random.default_rng(0).uniform(size=(4, 3, 2))
    grid = tile_images(images, rows=2, cols=2, padding=0)
    expected = np.block([[images[0], images[1]], [images[2], images[3]]])
    np.testing.assert_array_equal(grid, expected)


def test_tile_fewer_images_than_cells_fills_with_pad_value() -> None:
    grid = tile_images(constant_images(4, 3, 3), rows=2, cols=3, padding=2, pad_value=0.5)
    np.testing.assert_array_equal(cell(grid, 1, 0, 3, 3, 2), 0.4)
    np.testing.assert_array_equal(cell(grid, 1, 1, 3, 3, 2), 0.5)
    np.testing.assert_array_equal(cell(grid, 1, 2, 3, 3, 2), 0.5)


def test_tile_accepts_channel_axis_and_flat_square_vectors() -> None:
    images = np.random.default_rng(1).uniform(size=(5, 4, 4))
    expected = tile_images(images, rows=2, cols=3)
    np.testing.assert_array_equal(tile_images(images[:, np.newaxis], rows=2, cols=3), expected)
    np.testing.assert_array_equal(tile_images(images.reshape(5, 16), rows=2, cols=3), expected)


def test_tile_three_channels_puts_channels_last() -> None:
    images = np.zeros((2, 3, 4, 4))
    images[0, 0], images[1, 2] = 1.0, 0.25  # image 0 red, image 1 dark blue
    grid = tile_images(images, rows=1, cols=2, padding=1, pad_value=0.5)
    assert grid.shape == (6, 11, 3)
    np.testing.assert_array_equal(cell(grid, 0, 0, 4, 4, 1), np.broadcast_to([1, 0, 0], (4, 4, 3)))
    np.testing.assert_array_equal(
        cell(grid, 0, 1, 4, 4, 1), np.broadcast_to([0, 0, 0.25], (4, 4, 3))
    )
    np.testing.assert_array_equal(grid[0], 0.5)


@pytest.mark.parametrize(
    ("images", "rows", "cols", "padding", "message"),
    [
        (np.zeros((7, 4, 4)), 2, 3, 2, "do not fit"),
        (np.zeros((2, 15)), 1, 2, 2, "not square"),
        (np.zeros((2, 2, 4, 4)), 1, 2, 2, "channels"),
        (np.zeros((2, 4, 4)), 0, 2, 2, "rows and cols"),
        (np.zeros((2, 4, 4)), 1, 2, -1, "padding"),
        (np.zeros(16), 1, 1, 2, "shape"),
    ],
)
def test_tile_rejects_bad_input(images, rows, cols, padding, message) -> None:
    with pytest.raises(ValueError, match=message):
        tile_images(images, rows, cols, padding=padding)


# ---------------------------------------------------------------- save_image_grid


def test_image_grid_png_maps_value_range_to_black_and_white(tmp_path) -> None:
    # Cells: -1 (black), 1 (white), 0 (mid grey), out of range on both sides (clipped).
    values = [-1.0, 1.0, 0.0, 3.0, -5.0, 0.5]
    images = np.stack([np.full((3, 3), v) for v in values])
    path = save_image_grid(images, tmp_path / "grid.png", rows=2, cols=3, value_range=(-1, 1))
    with Image.open(path) as image:
        assert image.mode == "L"
        pixels = np.asarray(image)
    scale, padding = 2, 2
    assert pixels.shape == ((2 * 5 + 2) * scale, (3 * 5 + 2) * scale)
    upscaled = pixels[::scale, ::scale]
    np.testing.assert_array_equal(pixels, upscaled.repeat(scale, 0).repeat(scale, 1))
    expected = [0, 255, 128, 255, 0, 191]
    for i, byte in enumerate(expected):
        r, c = divmod(i, 3)
        np.testing.assert_array_equal(cell(upscaled, r, c, 3, 3, padding), byte)
    assert upscaled[0, 0] == 255  # white padding


def test_image_grid_flat_input_and_scale(tmp_path) -> None:
    images = np.random.default_rng(2).uniform(size=(10, 28 * 28))
    path = save_image_grid(images, tmp_path / "strip.png", rows=1, cols=10, scale=3)
    with Image.open(path) as image:
        assert image.size == ((10 * 30 + 2) * 3, 32 * 3)


def test_image_grid_rgb_input_writes_rgb(tmp_path) -> None:
    images = np.zeros((1, 3, 2, 2))
    images[0, 1] = 1.0
    path = save_image_grid(images, tmp_path / "rgb.png", rows=1, cols=1, scale=1)
    with Image.open(path) as image:
        assert image.mode == "RGB"
        assert image.getpixel((2, 2)) == (0, 255, 0)


def test_titled_grid_keeps_the_same_pixels_under_a_title(tmp_path) -> None:
    images = np.random.default_rng(3).uniform(size=(16, 8, 8))
    plain = read_png(save_image_grid(images, tmp_path / "plain.png", 4, 4))
    titled = read_png(save_image_grid(images, tmp_path / "titled.png", 4, 4, title="epoch 7"))
    height, width = plain.shape
    assert titled.shape[0] > height and titled.shape[1] >= width
    left = (titled.shape[1] - width) // 2
    np.testing.assert_array_equal(titled[-height:, left : left + width], plain)
    assert titled[:-height].std() > 0  # the title band holds some text


def test_titled_grid_widens_for_a_long_title(tmp_path) -> None:
    images = np.zeros((1, 4, 4))
    path = save_image_grid(
        images, tmp_path / "t.png", 1, 1, title="a title much wider than the image"
    )
    with Image.open(path) as image:
        assert image.width > 2 * (4 + 4)


def test_image_grid_rejects_empty_value_range(tmp_path) -> None:
    with pytest.raises(ValueError, match="low < high"):
        save_image_grid(np.zeros((1, 4, 4)), tmp_path / "x.png", 1, 1, value_range=(1, 1))


# ---------------------------------------------------------------- plots


def test_loss_curves_png_is_not_blank(tmp_path) -> None:
    rng = np.random.default_rng(4)
    steps = list(range(0, 3000, 10))  # 300 points: smoothed
    history = {"d_loss": rng.normal(0.7, 0.1, 300), "g_loss": rng.normal(1.5, 0.3, 300).tolist()}
    path = save_loss_curves(history, tmp_path / "deep" / "losses.png", steps=steps)
    pixels = read_png(path)
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert pixels.std() > 0
    assert [p.name for p in (tmp_path / "deep").iterdir()] == ["losses.png"]


def test_loss_curves_short_series_without_steps(tmp_path) -> None:
    path = save_loss_curves({"d_real": [0.9, 0.8, 0.7]}, tmp_path / "d.png", ylabel="D(.)")
    assert read_png(path).std() > 0


def test_loss_curves_reject_mismatched_steps_and_empty_history(tmp_path) -> None:
    with pytest.raises(ValueError, match="'g_loss' has 3 values but steps has 2"):
        save_loss_curves({"g_loss": [1.0, 2.0, 3.0]}, tmp_path / "x.png", steps=[0, 1])
    with pytest.raises(ValueError, match="empty"):
        save_loss_curves({}, tmp_path / "x.png")
    assert list(tmp_path.iterdir()) == []


def test_histograms_png_is_not_blank(tmp_path) -> None:
    rng = np.random.default_rng(5)
    series = {"real": rng.normal(size=(100, 28, 28)), "fake": rng.uniform(-1, 1, size=500)}
    path = save_histograms(series, tmp_path / "hist.png", bins=30, title="pixels", range=(-3, 3))
    assert read_png(path).std() > 0
    # Constant samples (zero-width default range) and non-finite values are handled.
    constant = {"x": np.array([2.0, 2.0, np.nan, np.inf])}
    assert read_png(save_histograms(constant, tmp_path / "const.png")).std() > 0


def test_histograms_reject_empty_input(tmp_path) -> None:
    with pytest.raises(ValueError, match="empty"):
        save_histograms({}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="finite"):
        save_histograms({"x": np.array([np.nan])}, tmp_path / "x.png")


# ---------------------------------------------------------------- GIF


def test_gif_from_files_and_arrays_pads_to_largest_frame(tmp_path) -> None:
    rng = np.random.default_rng(6)
    small = save_image_grid(rng.uniform(size=(4, 6, 6)), tmp_path / "small.png", 2, 2, scale=1)
    large = save_image_grid(rng.uniform(size=(6, 6, 6)), tmp_path / "large.png", 2, 3, scale=1)
    frames = [small, str(large), rng.uniform(size=(5, 30)), rng.uniform(size=(8, 8, 3))]
    path = save_gif(frames, tmp_path / "anim" / "training.gif", duration_ms=100)
    with Image.open(path) as gif:
        assert gif.n_frames == 4
        assert gif.size == (30, 18)  # widest (the array) x tallest (2 rows of 6 + padding)
        assert gif.info["duration"] == 100
        assert gif.info["loop"] == 0


def test_gif_rejects_empty_and_bad_frames(tmp_path) -> None:
    with pytest.raises(ValueError, match="empty"):
        save_gif([], tmp_path / "x.gif")
    with pytest.raises(ValueError, match="shape"):
        save_gif([np.zeros((2, 4, 4))], tmp_path / "x.gif")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- atomic writes, global state


def test_interrupted_write_keeps_the_old_file_and_no_temporary(tmp_path, monkeypatch) -> None:
    path = save_image_grid(np.zeros((1, 4, 4)), tmp_path / "grid.png", 1, 1)
    before = path.read_bytes()

    def write_half_then_interrupt(image, file, **kwargs):
        file.write(before[: len(before) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", write_half_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        save_image_grid(np.ones((1, 4, 4)), path, 1, 1)
    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]


def test_failed_rename_removes_the_temporary(tmp_path, monkeypatch) -> None:
    def failing_replace(source, target):
        raise OSError("disk full")

    monkeypatch.setattr(viz.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        save_loss_curves({"d_loss": [1.0, 0.5]}, tmp_path / "losses.png")
    assert list(tmp_path.iterdir()) == []


def test_overwrite_replaces_content(tmp_path) -> None:
    path = tmp_path / "grid.png"
    save_image_grid(np.zeros((1, 4, 4)), path, 1, 1)
    save_image_grid(np.ones((1, 4, 4)), path, 1, 1)
    np.testing.assert_array_equal(read_png(path), 255)
    assert list(tmp_path.iterdir()) == [path]


def test_no_pyplot_state_is_touched(tmp_path) -> None:
    # In a fresh interpreter, so that other tests importing pyplot cannot hide an import here.
    script = (
        "import sys, numpy as np\n"
        "from tinygan import viz\n"
        "viz.save_loss_curves({'a': [1.0, 2.0]}, sys.argv[1] + '/l.png')\n"
        "viz.save_histograms({'a': np.arange(5.0)}, sys.argv[1] + '/h.png')\n"
        "viz.save_image_grid(np.zeros((1, 4, 4)), sys.argv[1] + '/g.png', 1, 1, title='t')\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'\n"
    )
    package_root = str(Path(viz.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": package_root}
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr


def test_no_pyplot_figures_left_open(tmp_path) -> None:
    plt = pytest.importorskip("matplotlib.pyplot")
    open_before = plt.get_fignums()
    save_loss_curves({"a": [1.0, 2.0]}, tmp_path / "l.png")
    save_histograms({"a": np.arange(5.0)}, tmp_path / "h.png")
    save_image_grid(np.zeros((1, 4, 4)), tmp_path / "g.png", 1, 1, title="t")
    assert plt.get_fignums() == open_before


def test_loss_curves_with_a_panel_beside_them_are_wider(tmp_path):
    history = {"d_loss": [1.0, 0.8, 0.7], "g_loss": [2.0, 2.5, 2.2]}
    plain = save_loss_curves(history, tmp_path / "plain.png", steps=[1, 2, 3])
    wide = save_loss_curves(
        history, tmp_path / "wide.png", steps=[1, 2, 3], beside=("FID", [2, 3], [90.0, 70.0])
    )
    assert Image.open(wide).width > 1.5 * Image.open(plain).width
    assert Image.open(wide).height == Image.open(plain).height
