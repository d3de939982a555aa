"""`tinygan sample`: images from a checkpoint of any preset, reproducible from a seed or saved latents."""

import numpy as np
import pytest
from PIL import Image

from tinygan.checkpoint import save_checkpoint
from tinygan.cli import main as cli
from tinygan.models import PRESETS
from tinygan.sampling import generate, load_generator


@pytest.fixture(params=["000", "003"])
def checkpoint(request, tmp_path):
    gan = PRESETS[request.param].make_gan(np.random.default_rng(0), np.random.default_rng(1))
    return save_checkpoint(tmp_path / "ck.npz", gan, metadata={"preset": request.param, "seed": 0})


def test_same_seed_same_images_and_latents_reproduce_them(checkpoint):
    generator, preset, _ = load_generator(checkpoint)
    images, latents = generate(generator, preset, n=5, seed=3)
    again, _ = generate(generator, preset, n=5, seed=3)
    assert images.shape == (5, 28, 28) and 0 <= images.min() and images.max() <= 1
    np.testing.assert_array_equal(images, again)
    for k in range(5):  # each picture regenerated alone, bit for bit
        alone, _ = generate(generator, preset, latents=latents[k : k + 1])
        np.testing.assert_array_equal(alone[0], images[k])


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
    with pytest.raises(SystemExit, match="cannot hold"):
        cli(["sample", str(checkpoint), "--n", "5", "--grid", "2", "2", "--out", str(tmp_path)])
