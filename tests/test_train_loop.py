"""examples/train_loop.py, the training loop written out by hand, runs and leaves a usable generator."""

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import mnist_dir
from PIL import Image

from tinygan.run.sampling import generate, load_generator

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "train_loop.py"


@pytest.fixture(scope="module")
def train_loop():
    spec = importlib.util.spec_from_file_location("tinygan_example_train_loop", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_one_epoch_writes_grids_and_a_checkpoint_that_tinygan_sample_loads(train_loop, tmp_path):
    argv = ["--epochs", "1", "--subset", "256", "--split", "test", "--seed", "5"]
    argv += ["--data-dir", str(mnist_dir()), "--out", str(tmp_path), "--print-every", "2"]
    history = train_loop.main(argv)

    assert history["step"] == [2, 4]  # 256 images in batches of 64: 4 steps
    for name in ("d_loss", "g_loss", "d_real", "d_fake"):
        assert len(history[name]) == 2 and all(math.isfinite(v) for v in history[name]), name
    grids = sorted(p.name for p in (tmp_path / "samples").iterdir())
    assert grids == ["epoch_000.png", "epoch_001.png"]  # before training, after the epoch
    with Image.open(tmp_path / "samples" / "epoch_001.png") as grid:
        assert grid.width == grid.height > 8 * 28  # an 8x8 grid of digits

    generator, preset, metadata = load_generator(tmp_path / "checkpoint.npz")
    assert preset.name == "mlp-tf" and metadata["seed"] == 5
    images, _ = generate(generator, preset, n=4, seed=0)
    assert images.shape == (4, 28, 28) and np.isfinite(images).all()


def test_a_subset_smaller_than_a_batch_is_refused(train_loop, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        train_loop.main(["--subset", "10", "--out", str(tmp_path)])
    assert stop.value.code == 2
    assert "--subset 10 is smaller than one batch of 64" in capsys.readouterr().err
