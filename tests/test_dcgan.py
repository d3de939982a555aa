"""The two DCGAN presets end to end on real MNIST, in miniature, and an exact resume through the CLI path."""

import numpy as np
from conftest import mnist_dir
from PIL import Image

from tinygan.run.checkpoint import read_checkpoint
from tinygan.run.experiment import main


def dcgan_argv(out, *extra):
    argv = ["--split", "test", "--data-dir", str(mnist_dir()), "--out", str(out), "--no-progress"]
    return argv + ["--no-download", "--seed", "11", *extra]


def run_dcgan(out, *extra):
    return main(
        dcgan_argv(out, *extra), default_preset="dcgan-tf", presets=["dcgan-tf", "dcgan-keras"]
    )


def test_preset_dcgan_tf_writes_epoch_images_checkpoints_and_a_gif(tmp_path):
    trainer = run_dcgan(tmp_path, "--subset", "96", "--batch-size", "32", "--epochs", "2")
    assert trainer.step == 6 and trainer.epoch == 2
    samples = sorted(p.name for p in (tmp_path / "samples").iterdir())
    assert samples == ["epoch_000001.png", "epoch_000002.png", "step_000000.png"]
    assert Image.open(tmp_path / "training.gif").n_frames == 2
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "step_00000000.npz",
        "step_00000006.npz",
    ]
    assert (tmp_path / "losses.png").exists()


def test_preset_dcgan_keras_draws_pixel_histograms_before_and_after(tmp_path):
    trainer = run_dcgan(
        tmp_path,
        "--preset",
        "dcgan-keras",
        "--subset",
        "32",
        "--batch-size",
        "8",
        "--iterations",
        "2",
    )
    assert trainer.gan.d_optimizer.step_count == 2 and trainer.gan.g_optimizer.step_count == 10
    for name in ("pixel_histogram_before.png", "pixel_histogram_after.png", "losses.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_resume_continues_exactly_with_dropout_and_batchnorm(tmp_path):
    common = ("--subset", "64", "--batch-size", "16", "--log-every", "2")
    run_dcgan(tmp_path / "straight", *common, "--epochs", "2")
    run_dcgan(tmp_path / "resumed", *common, "--epochs", "1")
    resumed = run_dcgan(tmp_path / "resumed", *common, "--epochs", "2", "--resume")
    assert resumed.step == 8

    straight = read_checkpoint(tmp_path / "straight" / "checkpoints" / "step_00000008.npz")
    again = read_checkpoint(tmp_path / "resumed" / "checkpoints" / "step_00000008.npz")
    for key, value in straight.items():
        if key.startswith(("G.", "D.", "g_opt.", "d_opt.", "rng.")):
            np.testing.assert_array_equal(again[key], value, err_msg=key)
