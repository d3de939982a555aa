"""The 1-D GAN example and the GAN-theory example run end to end in short mode."""

import csv
import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_example(name):
    spec = importlib.util.spec_from_file_location(
        f"tinygan_example_{name}", EXAMPLES / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gaussian_1d():
    return load_example("gaussian_1d_gan")


@pytest.fixture(scope="module")
def gan_theory():
    return load_example("gan_theory")


def assert_png(path: Path, min_size: int = 200) -> None:
    assert path.is_file(), f"{path.name} was not written"
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert min(image.size) >= min_size


def test_gaussian_1d_gan_short_run(gaussian_1d, tmp_path, capsys):
    argv = ["--epochs", "12", "--seed", "0", "--out", str(tmp_path), "--no-progress"]
    history = gaussian_1d.main([*argv, "--eval-samples", "2000"])
    printed = capsys.readouterr().out
    assert "seed 0" in printed
    for epoch in (0, 10, 12):
        assert f"epoch {epoch:5d}" in printed
    assert history["epoch"] == [0, 10, 12]
    assert history["step"] == [0, 30, 36]
    assert all(math.isfinite(value) and value >= 0 for value in history["kl"] + history["js"])
    for name in ("histogram.png", "divergence.png", "losses.png", "discriminator_outputs.png"):
        assert_png(tmp_path / name)
    with (tmp_path / "log.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    # one log row per printed line: windows of 10 epochs, then the rest
    assert [int(row["step"]) for row in rows] == [30, 36]
    assert all(math.isfinite(float(row["d_loss"])) for row in rows)


def test_gaussian_1d_gan_mixture_is_reproducible(gaussian_1d, tmp_path, capsys):
    argv = ["--mixture=-2:0.5,2:0.5", "--epochs", "2", "--seed", "5", "--no-progress"]
    first = gaussian_1d.main([*argv, "--out", str(tmp_path / "a"), "--eval-samples", "500"])
    second = gaussian_1d.main([*argv, "--out", str(tmp_path / "b"), "--eval-samples", "500"])
    assert "equal mixture of N(-2, 0.5^2) + N(2, 0.5^2)" in capsys.readouterr().out
    assert first == second
    assert_png(tmp_path / "a" / "histogram.png")


@pytest.mark.parametrize(
    "argv",
    [
        ["--mixture=0:1", "--mean", "1"],
        ["--mixture", "0:1:2"],
        ["--std", "-1"],
        ["--epochs", "0"],
    ],
)
def test_gaussian_1d_gan_rejects_bad_flags(gaussian_1d, tmp_path, argv):
    with pytest.raises(SystemExit) as error:
        gaussian_1d.main([*argv, "--out", str(tmp_path)])
    assert error.value.code == 2


def test_gan_theory_short_run(gan_theory, tmp_path, capsys):
    argv = ["--epochs", "6", "--seed", "0", "--out", str(tmp_path), "--no-progress"]
    history = gan_theory.main([*argv, "--moments", "0,6", "--eval-samples", "2000"])
    assert "seed 0" in capsys.readouterr().out
    for name in ("minimax.png", "theory_curves.png", "losses.png"):
        assert_png(tmp_path / name)
    for epoch in (0, 6):
        assert_png(tmp_path / f"moment_epoch_{epoch:04d}.png")
    assert not (tmp_path / "moment_epoch_0003.png").exists()
    assert history["epoch"] == list(range(7))
    assert all(0.0 <= js <= math.log(2.0) + 1e-9 for js in history["js"])
    # V(D, G) <= 0 always (two logs of probabilities), and here the generator is still far off
    assert all(value < 0 for value in history["value"])
    assert history["js"][0] > 0.5  # the generator starts near 0, the target is N(2, 0.5^2)
    d = np.array(history["d_real"] + history["d_fake"])
    assert np.all((d > 0) & (d < 1))


def test_gan_theory_moments(gan_theory, tmp_path):
    assert gan_theory.default_moments(300) == {0, 30, 150, 300}
    assert gan_theory.default_moments(1) == {0, 1}
    assert gan_theory.parse_moments("0, 5,5,20", 20) == {0, 5, 20}
    for text in ("0,21", "-1", "a,b"):
        with pytest.raises(ValueError):
            gan_theory.parse_moments(text, 20)
    with pytest.raises(SystemExit) as error:
        gan_theory.main(["--epochs", "5", "--moments", "9", "--out", str(tmp_path)])
    assert error.value.code == 2
