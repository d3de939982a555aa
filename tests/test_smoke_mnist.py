"""End to end on real MNIST: a few hundred iterations of preset mlp-tf through the example's code path.

After 600 iterations (seeds 0, 3, 7 measured) the generated mean intensity is 0.18-0.20, down from ~0.5
untrained toward the data's 0.13, and the per-pixel spread across samples is about 0.02.
"""

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import mnist_dir

from tinygan.backend import to_numpy
from tinygan.run.experiment import main

DATA_MEAN = 0.13  # mean pixel intensity of MNIST digits in [0, 1]


def test_preset_mlp_tf_learns_the_pixel_statistics_of_digits(tmp_path):
    argv = ["--preset", "mlp-tf", "--iterations", "600", "--seed", "3", "--split", "test"]
    argv += [
        "--data-dir",
        str(mnist_dir()),
        "--out",
        str(tmp_path),
        "--no-progress",
        "--no-download",
    ]
    argv += ["--sample-every", "200", "--log-every", "50"]
    trainer = main(argv)

    with (tmp_path / "log.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 12
    assert all(np.isfinite(float(r[k])) for r in rows for k in ("d_loss", "g_loss"))

    gan = trainer.gan
    untrained_mean = 0.5  # sigmoid outputs of a fresh generator sit near 0.5
    samples = to_numpy(gan.generate(gan.sample_noise(256)))
    assert samples.std(axis=0).mean() > 0.01, "samples must not all be the same image"
    assert abs(samples.mean() - DATA_MEAN) < 0.5 * abs(untrained_mean - DATA_MEAN)
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == [
        f"step_{s:06d}.png" for s in (0, 200, 400, 600)
    ]
    assert (tmp_path / "losses.png").exists() and (tmp_path / "config.json").exists()


def test_preset_mlp_book_runs_by_epochs(tmp_path):
    argv = [
        "--preset",
        "mlp-book",
        "--epochs",
        "2",
        "--batch-size",
        "500",
        "--seed",
        "0",
        "--split",
        "test",
    ]
    argv += [
        "--data-dir",
        str(mnist_dir()),
        "--out",
        str(tmp_path),
        "--no-progress",
        "--sample-every",
        "1",
    ]
    trainer = main(argv)
    assert trainer.step == 40 and trainer.epoch == 2
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == [
        "epoch_000001.png",
        "epoch_000002.png",
        "step_000000.png",
    ]


def test_missing_data_in_a_named_folder_is_an_error_not_a_fallback(tmp_path, capsys):
    argv = ["--iterations", "1", "--data-dir", str(tmp_path), "--no-download"]
    with pytest.raises(SystemExit) as stop:
        main([*argv, "--out", str(tmp_path / "run")])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "train-images-idx3-ubyte" in err and "--data-dir" in err and "bundled" not in err
    assert "Traceback" not in err and "data_dir=" not in err


def test_the_first_command_trains_on_a_machine_without_network(tmp_path):
    """The README's first command, on a fresh home folder and with every connection refused."""
    env = {k: v for k, v in os.environ.items() if k not in ("TINYGAN_DATA", "XDG_CACHE_HOME")}
    refused = "http://127.0.0.1:9"  # the discard port: nothing listens there
    env.update(HOME=str(tmp_path), http_proxy=refused, https_proxy=refused, TINYGAN_NUMBA="0")
    example = Path(__file__).parents[1] / "examples" / "mnist_mlp_gan.py"
    finished = subprocess.run(
        [sys.executable, str(example), "--iterations", "20", "--no-progress"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert finished.returncode == 0, finished.stderr
    assert "training on the 10,000 MNIST test digits bundled with tinygan" in finished.stdout
    samples = tmp_path / "runs" / "mlp-tf" / "samples"
    assert sorted(p.name for p in samples.iterdir()) == ["step_000000.png", "step_000020.png"]
    assert not (tmp_path / ".cache" / "tinygan").exists()  # a failed download leaves no folders
