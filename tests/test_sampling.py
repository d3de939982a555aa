"""`tinygan sample`: images from a checkpoint of any preset, reproducible from a seed or saved latents."""

import os
import pickle
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tinygan.models import PRESETS
from tinygan.rounding import assert_within, forward_bound, rounding_bound
from tinygan.run.checkpoint import save_checkpoint
from tinygan.run.cli import main as cli
from tinygan.run.sampling import (
    generate,
    generate_batches,
    load_generator,
    load_latents,
    physical_memory,
    write_sample_batches,
    write_samples,
)


@pytest.fixture(params=["mlp-tf", "dcgan-tf"])
def checkpoint(request, tmp_path):
    gan = PRESETS[request.param].make_gan(np.random.default_rng(0), np.random.default_rng(1))
    return save_checkpoint(tmp_path / "ck.npz", gan, metadata={"preset": request.param, "seed": 0})


def test_same_seed_same_images_and_latents_reproduce_them(checkpoint, tmp_path, device):
    generator, preset, _ = load_generator(checkpoint, device)
    images, latents = generate(generator, preset, n=5, seed=3, device=device)
    again, _ = generate(generator, preset, n=5, seed=3, device=device)
    assert images.shape == (5, 28, 28) and 0 <= images.min() and images.max() <= 1
    np.testing.assert_array_equal(images, again)
    write_samples(images, latents, tmp_path)  # the saved latents file gives the same images exactly
    from_file, _ = generate(
        generator, preset, latents=load_latents(tmp_path / "latents.npy", preset), device=device
    )
    np.testing.assert_array_equal(from_file, images)
    # Alone in its batch, a vector's picture may differ in the last float32 bits (a BLAS library
    # may sum the rows of another block in another order): both are within the bound of the
    # network's exact output, mapped to pixels by (y - low) / (high - low), two more roundings,
    # and clipped, which moves neither closer to the other.
    exact, bound = forward_bound(generator, latents)
    low, high = preset.value_range
    pixels = np.clip((exact - low) / (high - low), 0, 1).reshape(images.shape)
    bound = (bound + rounding_bound(abs(exact) + abs(low), 2, np.float32)) / (high - low)
    for k in range(5):
        alone, _ = generate(generator, preset, latents=latents[k : k + 1], device=device)
        for image in (alone[0], images[k]):
            assert_within(image, pixels[k], bound.reshape(images.shape)[k], f"image {k}")


def test_cli_writes_a_grid_or_single_pngs_with_their_latents(checkpoint, tmp_path):
    assert (
        cli(
            [
                "sample",
                str(checkpoint),
                "--n",
                "6",
                "--seed",
                "1",
                "--grid",
                "2",
                "3",
                "--out",
                str(tmp_path / "g"),
            ]
        )
        == 0
    )
    assert sorted(p.name for p in (tmp_path / "g").iterdir()) == ["grid.png", "latents.npy"]

    latents = tmp_path / "g" / "latents.npy"
    assert (
        cli(["sample", str(checkpoint), "--latents", str(latents), "--out", str(tmp_path / "s")])
        == 0
    )
    singles = sorted((tmp_path / "s").glob("sample_*.png"))
    assert len(singles) == 6
    assert Image.open(singles[0]).size == (56, 56)  # 28x28 at scale 2, no frame


def test_bad_latents_and_missing_files_fail_clearly(checkpoint, tmp_path):
    np.save(tmp_path / "bad.npy", np.zeros((2, 7)))
    with pytest.raises(SystemExit, match=r"latents must have shape \(n, "):
        cli(
            [
                "sample",
                str(checkpoint),
                "--latents",
                str(tmp_path / "bad.npy"),
                "--out",
                str(tmp_path),
            ]
        )
    with pytest.raises(SystemExit, match="no checkpoint"):
        cli(["sample", str(tmp_path / "missing.npz"), "--out", str(tmp_path)])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_and_empty_latents_are_refused(checkpoint, bad):
    generator, preset, _ = load_generator(checkpoint)
    latents = np.zeros((3, preset.latent_dim), np.float32)
    latents[1, 4] = bad
    with pytest.raises(ValueError, match=r"finite: 1 of 3 vectors .* row 1"):
        generate(generator, preset, latents=latents)
    with pytest.raises(ValueError, match="too large for float32"):
        generate(generator, preset, latents=np.full((1, preset.latent_dim), 1e39))
    with pytest.raises(ValueError, match=r"no vectors \(shape \(0, "):
        generate(generator, preset, latents=np.zeros((0, preset.latent_dim)))


def bad_latents_files(folder: Path, width: int) -> dict[str, tuple[Path, str]]:
    """Files that are not latents of the given width, and what the message must say about each."""
    files = {
        "nan": (np.full((2, width), np.nan, np.float32), "must be finite"),
        "empty": (np.zeros((0, width), np.float32), "hold no vectors"),
        "integers": (np.zeros((2, width), np.int64), "int64 values, not floating-point"),
        "3-D": (np.zeros((2, width, 1), np.float32), r"must have shape \(n, "),
        "narrow": (np.zeros((2, width - 1), np.float32), r"must have shape \(n, "),
    }
    paths = {}
    for name, (array, message) in files.items():
        np.save(folder / f"{name}.npy", array)
        paths[name] = (folder / f"{name}.npy", message)
    np.savez(folder / "archive.npz", latents=np.zeros((2, width), np.float32))
    paths["npz"] = (folder / "archive.npz", "an .npz archive")
    (folder / "pickled.npy").write_bytes(pickle.dumps([[0.0] * width]))
    paths["pickled"] = (folder / "pickled.npy", "not a NumPy .npy array")
    np.save(folder / "objects.npy", np.array([[0.0] * width], dtype=object), allow_pickle=True)
    paths["objects"] = (folder / "objects.npy", "not a NumPy .npy array")
    return paths


def test_bad_latents_files_get_one_line_naming_the_file(checkpoint, tmp_path):
    width = PRESETS[load_generator(checkpoint)[1].name].latent_dim
    for name, (path, message) in bad_latents_files(tmp_path, width).items():
        argv = ["sample", str(checkpoint), "--latents", str(path), "--out", str(tmp_path / "out")]
        with pytest.raises(SystemExit) as exit_info:
            cli(argv)
        text = str(exit_info.value.code)
        assert text.startswith(f"tinygan sample: {path}: "), name
        assert "\n" not in text, name
        assert re.search(message, text), (name, text)
    assert not (tmp_path / "out").exists()  # nothing written for refused latents


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--n", "0"], "argument --n: must be a positive integer, got 0"),
        (["--n", "-3"], "argument --n: must be a positive integer, got -3"),
        (["--grid", "0", "4"], "argument --grid: must be a positive integer, got 0"),
        (["--grid", "2", "-1"], "argument --grid: must be a positive integer, got -1"),
    ],
)
def test_non_positive_counts_are_usage_errors(checkpoint, tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as exit_info:
        cli(["sample", str(checkpoint), *flags, "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("tinygan sample: error: ") and message in line
    assert not (tmp_path / "out").exists()


def test_nan_latents_fail_the_command_without_a_traceback(tmp_path):
    gan = PRESETS["mlp-tf"].make_gan(np.random.default_rng(0), np.random.default_rng(1))
    checkpoint = save_checkpoint(tmp_path / "ck.npz", gan, metadata={"preset": "mlp-tf", "seed": 0})
    latents = tmp_path / "latents.npy"
    np.save(latents, np.full((4, PRESETS["mlp-tf"].latent_dim), np.nan, np.float32))
    root = str(Path(__file__).parents[1])  # this checkout, whatever else is installed
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "tinygan.run.cli", "sample", str(checkpoint)]
    command += ["--latents", str(latents), "--out", str(tmp_path / "out")]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert result.stderr.splitlines() == [
        f"tinygan sample: {latents}: latents must be finite: 4 of 4 vectors hold NaN or inf "
        "(or values too large for float32), the first is row 0"
    ]
    assert not (tmp_path / "out").exists()


def test_batches_give_the_images_of_generate_bit_for_bit(checkpoint):
    generator, preset, _ = load_generator(checkpoint)
    images, latents = generate(generator, preset, n=21, seed=5, batch_size=8)
    batches = list(generate_batches(generator, preset, n=21, seed=5, batch_size=8))
    assert [len(b) for b, _ in batches] == [8, 8, 5]
    np.testing.assert_array_equal(np.concatenate([b for b, _ in batches]), images)
    np.testing.assert_array_equal(np.concatenate([z for _, z in batches]), latents)
    again = generate_batches(generator, preset, latents=latents, batch_size=8)
    np.testing.assert_array_equal(np.concatenate([b for b, _ in again]), images)
    with pytest.raises(ValueError, match="give a positive n"):
        generate_batches(generator, preset, n=0)  # checked at the call, not at the first batch


def test_pngs_are_written_while_generating_and_latents_read_back(checkpoint, tmp_path):
    generator, preset, _ = load_generator(checkpoint)
    out = tmp_path / "out"

    def watched() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for k, batch in enumerate(generate_batches(generator, preset, n=10, seed=2, batch_size=4)):
            # every image of the earlier batches is on disk before the next batch is made
            assert len(list(out.glob("sample_*.png"))) == 4 * k
            yield batch

    paths = write_sample_batches(watched(), 10, out)
    assert [p.name for p in paths] == [f"sample_{i}.png" for i in range(10)]
    _, latents = generate(generator, preset, n=10, seed=2, batch_size=4)
    np.testing.assert_array_equal(load_latents(out / "latents.npy", preset), latents)


def test_a_stopped_run_leaves_a_latents_file_that_is_refused(checkpoint, tmp_path):
    generator, preset, _ = load_generator(checkpoint)

    def interrupted() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        yield next(generate_batches(generator, preset, n=8, seed=2, batch_size=4))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_sample_batches(interrupted(), 8, tmp_path)
    with pytest.raises(ValueError, match="latents.npy: not a NumPy .npy array"):
        load_latents(tmp_path / "latents.npy", preset)


def refusal(argv: list[str], capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> str:
    """The one line ``tinygan sample ARGV`` stops with (exit code 2), no image having been made."""

    def refuse_to_generate(*args: object) -> None:
        raise AssertionError("images were generated")

    monkeypatch.setattr("tinygan.run.sampling._images", refuse_to_generate)
    with pytest.raises(SystemExit) as stop:
        cli(["sample", *argv])
    assert stop.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("tinygan sample: error: ")
    return line


def test_a_grid_too_small_for_n_is_refused_before_generating(
    checkpoint, tmp_path, capsys, monkeypatch
):
    out = tmp_path / "out"
    argv = [str(checkpoint), "--n", "10000000", "--grid", "2", "2", "--out", str(out)]
    assert refusal(argv, capsys, monkeypatch).endswith(
        "a 2x2 grid has only 4 cells for 10000000 images"
    )
    latents = tmp_path / "latents.npy"  # with --latents, n is the number of vectors in the file
    np.save(latents, np.zeros((6, load_generator(checkpoint)[1].latent_dim), np.float32))
    argv = [str(checkpoint), "--latents", str(latents), "--grid", "2", "2", "--out", str(out)]
    assert refusal(argv, capsys, monkeypatch).endswith("a 2x2 grid has only 4 cells for 6 images")
    assert not out.exists()


@pytest.mark.skipif(physical_memory() is None, reason="the system does not report its memory")
def test_a_grid_too_large_for_memory_is_refused_before_generating(
    checkpoint, tmp_path, capsys, monkeypatch
):
    out = tmp_path / "out"
    argv = [str(checkpoint), "--n", "10", "--grid", "100000", "100000", "--out", str(out)]
    line = refusal(argv, capsys, monkeypatch)
    assert "a 100000x100000 grid of 10 images would take about" in line
    assert "TiB of memory, more than this machine's" in line
    assert not out.exists()


def test_an_n_too_large_for_the_disk_is_refused_before_generating(
    checkpoint, tmp_path, capsys, monkeypatch
):
    out = tmp_path / "out"
    line = refusal([str(checkpoint), "--n", str(10**12), "--out", str(out)], capsys, monkeypatch)
    assert "1000000000000 images need at least" in line
    assert "on disk (latents.npy and one PNG per image), and " in line and " free" in line
    assert not out.exists()
