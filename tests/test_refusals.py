"""Sampling, evaluation and export refuse what would give garbage or cannot fit, in one line and
before any work: a checkpoint with a NaN or an infinity in any array (tinygan never writes one, so
the file was damaged or edited), and an ``eval --n`` whose features would not fit in memory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_classifier import TINY, bar_images, write_split

from tinygan.interop import load_network
from tinygan.models import PRESETS
from tinygan.quality.evaluate import evaluate_checkpoint
from tinygan.run.checkpoint import CheckpointError, NonFiniteCheckpointError, save_checkpoint
from tinygan.run.cli import main as cli
from tinygan.run.sampling import NoRoomError, load_generator, physical_memory


def saved_checkpoint(folder: Path, preset: str = "mlp-tf") -> Path:
    gan = PRESETS[preset].make_gan(np.random.default_rng(0), np.random.default_rng(1))
    metadata = {"preset": preset, "seed": 0, "dataset": "mnist", "split": "test"}
    return save_checkpoint(folder / "ck.npz", gan, metadata=metadata)


def with_bad_value(checkpoint: Path, key: str, value: float, name: str) -> Path:
    """A copy of ``checkpoint`` with ``value`` written into one element of the array ``key``."""
    with np.load(checkpoint) as archive:
        arrays = dict(archive)
    arrays[key] = arrays[key].copy()
    arrays[key].flat[arrays[key].size // 2] = value
    path = checkpoint.with_name(name)
    np.savez(path, **arrays)
    return path


def first_key(checkpoint: Path, prefix: str) -> str:
    with np.load(checkpoint) as archive:
        return next(key for key in archive.files if key.startswith(prefix) and key.endswith(".W"))


def tinygan(*argv: str) -> subprocess.CompletedProcess:
    """``python -m tinygan.run.cli ARGV`` in a fresh process, importing this checkout."""
    root = str(Path(__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "tinygan.run.cli", *argv]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("value", "found"), [(np.nan, "1 NaN"), (-np.inf, "1 infinite")])
@pytest.mark.parametrize("command", ["sample", "eval", "export"])
def test_the_commands_refuse_a_checkpoint_with_a_non_finite_weight(tmp_path, command, value, found):
    checkpoint = saved_checkpoint(tmp_path)
    key = first_key(checkpoint, "G.")
    bad = with_bad_value(checkpoint, key, value, "bad.npz")
    out = tmp_path / "out"
    flags = {
        "sample": ["--out", str(out)],
        "eval": ["--n", "10", "--data-dir", str(tmp_path / "no-data"), "--json", str(out)],
        "export": ["--out", str(out)],
    }[command]
    result = tinygan(command, str(bad), *flags)
    assert result.returncode == 2, result.stderr
    with np.load(checkpoint) as archive:
        size = archive[key].size
    assert result.stderr.splitlines() == [
        f"tinygan {command}: error: {bad}: array {key} is not finite ({found} of {size} values); "
        "networks loaded from it would compute NaN"
    ]
    assert not out.exists()  # nothing written


def test_every_loader_refuses_a_non_finite_array_anywhere_in_the_file(tmp_path):
    checkpoint = saved_checkpoint(tmp_path, "dcgan-fast")
    with np.load(checkpoint) as archive:  # a weight of each network and an optimizer moment
        keys = [first_key(checkpoint, "G."), first_key(checkpoint, "D.")]
        keys.append(next(key for key in archive.files if key.endswith(".m")))
    loaders = {
        "load_generator": load_generator,
        "export generator": lambda path: load_network(path, "generator"),
        "export discriminator": lambda path: load_network(path, "discriminator"),
        "evaluate_checkpoint": lambda path: evaluate_checkpoint(path, n=10, verbose=False),
    }
    for index, key in enumerate(keys):
        bad = with_bad_value(checkpoint, key, np.inf, f"bad{index}.npz")
        for name, load in loaders.items():
            with pytest.raises(NonFiniteCheckpointError) as error:
                load(bad)
            assert isinstance(error.value, CheckpointError)  # a ValueError, like other bad files
            assert str(error.value).startswith(f"{bad}: array {key} is not finite"), name
    load_network(checkpoint, "discriminator")  # the intact file loads


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    write_split(folder, "test", *bar_images(50, np.random.default_rng(0)))
    return folder


@pytest.mark.skipif(physical_memory() is None, reason="the system does not report its memory")
def test_eval_refuses_an_n_whose_features_cannot_fit_before_generating(
    tmp_path, data_dir, monkeypatch, capsys
):
    checkpoint = saved_checkpoint(tmp_path)

    def refuse_to_generate(*args: object) -> None:
        raise AssertionError("images were generated")

    monkeypatch.setattr("tinygan.run.sampling._images", refuse_to_generate)
    with pytest.raises(NoRoomError, match="the classifier features of 1000000000000 images would"):
        evaluate_checkpoint(
            checkpoint,
            n=10**12,
            data_dir=data_dir,
            classifier_cache=tmp_path / "cache",
            classifier_settings=TINY,
            verbose=False,
        )
    capsys.readouterr()  # the classifier's training, above
    # the command says so in one line, exit code 2 (the classifier is cached now)
    monkeypatch.setattr("tinygan.quality.classifier.cache.ClassifierSettings", lambda: TINY)
    argv = ["eval", str(checkpoint), "--n", str(10**12), "--data-dir", str(data_dir)]
    with pytest.raises(SystemExit) as stop:
        cli([*argv, "--classifier-cache", str(tmp_path / "cache")])
    assert stop.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("tinygan eval: error: the classifier features of 1000000000000 images")
    assert "of memory, more than this machine's" in line


def test_eval_scores_the_same_whether_or_not_the_images_are_kept(tmp_path, data_dir):
    """Scoring batch by batch (what evaluate_checkpoint does) gives the figures of scoring the
    whole set at once."""
    from tinygan.quality.classifier.network import build_classifier
    from tinygan.quality.evaluate import QualityEvaluator
    from tinygan.run.sampling import generate, generate_batches

    generator, preset, _ = load_generator(saved_checkpoint(tmp_path))
    model = build_classifier(np.random.default_rng(0), TINY.channels, TINY.hidden)
    evaluator = QualityEvaluator(model, bar_images(40, np.random.default_rng(1))[0], batch_size=16)
    images, _ = generate(generator, preset, 50, seed=3, batch_size=16)
    batches = (b for b, _ in generate_batches(generator, preset, 50, seed=3, batch_size=16))
    assert evaluator.score_batches(batches) == evaluator.score(images)
