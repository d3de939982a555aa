"""The best generator is kept, collapse is warned about once, and G's moving average is exact."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from test_checkpoint import fresh_run

from tinygan.ema import EMA, check_decay
from tinygan.models import PRESETS
from tinygan.nn import BatchNorm, Dense, Sequential
from tinygan.quality.evaluate import METRICS, QualityCallback
from tinygan.rounding import assert_within_rounding
from tinygan.run.alarms import CollapseAlarm, CollapseWatch, LossAlarm
from tinygan.run.best import KeepBest
from tinygan.run.checkpoint import (
    BEST_NAME,
    Checkpoint,
    checkpoint_files,
    checkpoint_metadata,
    find_resumable,
    read_checkpoint,
    restore_checkpoint,
    save_checkpoint,
)
from tinygan.run.cli import main as cli_main
from tinygan.run.sampling import load_generator

# ------------------------------------------------------------------------------------------------
# A scripted evaluator: the scores are decided by the test, no classifier is trained
# ------------------------------------------------------------------------------------------------


class ScriptedEvaluator:
    """Returns the next scripted scores at every measurement."""

    def __init__(self, fids: list[float], classes: list[int] | None = None) -> None:
        classes = classes or [10] * len(fids)
        self.rows: Iterator[dict[str, Any]] = iter(
            {
                "n": 20,
                "fid": fid,
                "inception_score": 9.0 - fid / 100,
                "classes_hit": hit,
                "class_kl": 0.01,
                "precision": 0.7,
                "recall": 0.6,
            }
            for fid, hit in zip(fids, classes, strict=True)
        )

    def score(self, images: np.ndarray) -> dict[str, Any]:
        return next(self.rows)

    def calibration(self) -> dict[str, Any]:
        return {"n": 10, **{key: 0.0 for key in METRICS}}


#: The checkpoint tests' toy run's G maps 4 numbers to 9 pixels: a 3x3 "preset" for sampling.
TOY_PRESET = SimpleNamespace(
    latent_dim=4,
    noise="uniform",
    value_range=(0.0, 1.0),
    image_size=(3, 3),
    image_shape=(3, 3),
    classes=None,
)


def quality_run(out_dir: Path, fids: list[float], classes: list[int] | None = None):
    """The checkpoint tests' small run, measured every step by scripted scores."""
    trainer = fresh_run(out_dir)
    checkpoint = Checkpoint(every_steps=1, keep=1, metadata={"preset": "toy"})
    best = KeepBest(metadata={"preset": "toy"})
    evaluator = ScriptedEvaluator(fids, classes)
    quality = QualityCallback(1, evaluator, TOY_PRESET, n=20, listeners=[best, CollapseAlarm()])
    trainer.callbacks += [checkpoint, quality]
    return trainer, best


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_best_checkpoint_follows_the_lowest_fid_survives_rotation_and_is_not_resumed(tmp_path):
    trainer, best_kept = quality_run(tmp_path, [50.0, 40.0, 45.0, 30.0, 35.0])
    trainer.fit(5)
    folder = tmp_path / "checkpoints"
    best = checkpoint_metadata(read_checkpoint(folder / BEST_NAME))["best"]
    assert best["step"] == 4 and best["fid"] == 30.0 and best["inception_score"] == 8.7
    assert best_kept.summary().startswith("best generator: step 4, FID 30.00")
    assert [p.name for p in checkpoint_files(folder)] == ["step_00000005.npz"]  # keep=1
    assert (folder / BEST_NAME).is_file()  # rotation leaves it alone
    assert find_resumable(folder)[0].name == "step_00000005.npz"  # --resume takes the newest

    # a resumed run knows the best FID so far: a worse one does not replace it, a better one does
    resumed, _ = quality_run(tmp_path, [32.0, 20.0])
    restore_checkpoint(folder / "step_00000005.npz", resumed.gan, resumed)
    resumed.fit(6)
    assert checkpoint_metadata(read_checkpoint(folder / BEST_NAME))["best"]["step"] == 4
    resumed.fit(7)
    assert checkpoint_metadata(read_checkpoint(folder / BEST_NAME))["best"]["step"] == 7


def test_best_checkpoint_is_never_written_with_non_finite_scores(tmp_path):
    trainer, best_kept = quality_run(tmp_path, [float("nan"), float("nan")])
    trainer.fit(2)
    assert best_kept.best is None and not (tmp_path / "checkpoints" / BEST_NAME).exists()


def test_tinygan_sample_loads_best_npz(tmp_path):
    gan = PRESETS["000"].make_gan(np.random.default_rng(0), np.random.default_rng(1))
    best = {"step": 3, "fid": 12.0}
    path = save_checkpoint(tmp_path / BEST_NAME, gan, metadata={"preset": "000", "best": best})
    assert cli_main(["sample", str(path), "--n", "4", "--out", str(tmp_path / "s")]) == 0
    assert len(list((tmp_path / "s").glob("sample_*.png"))) == 4


# ------------------------------------------------------------------------------------------------
# Collapse alarms
# ------------------------------------------------------------------------------------------------


def test_coverage_collapse_warns_once_with_the_step_and_marks_quality_csv(tmp_path, capsys):
    trainer, _ = quality_run(tmp_path, [50.0, 40.0, 45.0, 48.0, 47.0], [9, 10, 6, 5, 9])
    trainer.fit(5)
    err = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(err) == 1
    assert err[0].startswith("tinygan: warning: step 3: the samples cover 6 classes, down from 10")
    assert "--minibatch-std or --pack 2" in err[0]  # the warning names the remedies
    assert f"{tmp_path / 'checkpoints' / BEST_NAME} (step 2, FID 40.00)" in err[0]
    rows = read_rows(tmp_path / "quality.csv")
    assert [row["warning"] for row in rows] == ["", "", "coverage", "", ""]
    assert [row["kind"] for row in read_rows(tmp_path / "warnings.csv")] == ["coverage"]


def test_coverage_that_never_reached_the_floor_does_not_warn():
    watch = CollapseWatch()
    rows = [{"classes_hit": c, "recall": 0.5} for c in (3, 5, 7, 4)]
    assert [watch.check(row) for row in rows] == [[], [], [], []]


def test_recall_collapse_below_half_its_best_warns_once():
    watch = CollapseWatch()
    kinds = [
        [kind for kind, _ in watch.check({"classes_hit": 10, "recall": recall})]
        for recall in (0.4, 0.6, 0.35, 0.29, 0.1)
    ]
    assert kinds == [[], [], [], ["recall"], []]


def test_loss_alarm_fires_once_after_three_windows_of_d_winning(tmp_path, capsys):
    history: dict[str, list[float]] = {"step": [], "g_loss": [], "d_real": []}
    trainer = SimpleNamespace(history=history, out_dir=tmp_path, step=0)
    alarm = LossAlarm()
    alarm.on_train_begin(trainer)
    for window, g_loss in enumerate([1, 1, 1, 1, 5, 5, 5, 6, 7], start=1):
        trainer.step = 50 * window
        history["g_loss"].append(float(g_loss))
        history["d_real"].append(0.995)
        alarm.on_log(trainer)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("tinygan: warning: step 350: D(x) has stayed above")
    assert [row["step"] for row in read_rows(tmp_path / "warnings.csv")] == ["350"]
    again = LossAlarm()  # a resumed run remembers that the warning was given
    again.on_train_begin(trainer)
    assert again.fired


# ------------------------------------------------------------------------------------------------
# Generator EMA
# ------------------------------------------------------------------------------------------------


def test_ema_after_k_updates_equals_the_closed_form():
    rng = np.random.default_rng(0)
    network = Sequential(Dense(2, 3, rng=rng))
    weights = next(layer for _, layer in network.named_layers() if "W" in layer.params).params["W"]
    decay, iterates = 0.9, [weights.copy()]
    ema = EMA(network, decay)
    for _ in range(5):
        weights += rng.standard_normal(weights.shape).astype(weights.dtype)
        iterates.append(weights.copy())
        ema.update(network)
    k = len(iterates) - 1
    weights = [decay**k] + [(1 - decay) * decay ** (k - i) for i in range(1, k + 1)]
    closed = sum(w * iterate for w, iterate in zip(weights, iterates, strict=True))
    magnitude = sum(
        w * abs(iterate.astype(np.float64)) for w, iterate in zip(weights, iterates, strict=True)
    )
    key = next(key for key in ema.params if key.endswith("W"))
    # both in float32: the update rounds d, 1 - d, a product and a sum per step (k steps); the
    # closed form rounds a weight and a product per term, then sums k + 1 terms
    assert_within_rounding(ema.params[key], closed, magnitude, 4 * k + 3)


def test_ema_copies_batchnorm_statistics_and_swaps_back():
    rng = np.random.default_rng(0)
    network = Sequential(Dense(2, 3, rng=rng), BatchNorm(3))
    ema = EMA(network, 0.5)
    network.forward(rng.standard_normal((8, 2)).astype(np.float32), training=True)
    ema.update(network)
    own = network.state_dict()
    assert all(np.array_equal(ema.buffers[k], own[k]) for k in ema.buffers)
    ema.params[next(iter(ema.params))] += 1.0
    with ema.applied(network):
        assert not np.array_equal(
            network.state_dict()[next(iter(ema.params))], own[next(iter(ema.params))]
        )
    assert all(np.array_equal(network.state_dict()[k], own[k]) for k in own)


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.5, 1.5])
def test_ema_decay_must_lie_strictly_between_0_and_1(decay):
    with pytest.raises(ValueError, match="between 0 and 1"):
        check_decay(decay)


def test_ema_is_saved_and_restored_exactly_across_a_resume(tmp_path):
    straight = fresh_run(tmp_path / "straight")
    straight.gan.ema = EMA(straight.gan.generator, 0.8)
    straight.fit(8)

    first = fresh_run(tmp_path / "split")
    first.gan.ema = EMA(first.gan.generator, 0.8)
    first.callbacks.append(Checkpoint(every_steps=4))
    first.fit(4)
    resumed = fresh_run(tmp_path / "split", seed=9)  # other initial weights: all must come back
    resumed.gan.ema = EMA(resumed.gan.generator, 0.8)
    restore_checkpoint(
        tmp_path / "split" / "checkpoints" / "step_00000004.npz", resumed.gan, resumed
    )
    assert all(
        np.array_equal(value, first.gan.ema.state_dict()[key])
        for key, value in resumed.gan.ema.state_dict().items()
    )
    resumed.fit(8)
    for key, value in straight.gan.ema.state_dict().items():
        np.testing.assert_array_equal(resumed.gan.ema.state_dict()[key], value)


def test_load_generator_prefers_the_ema_weights_and_old_checkpoints_still_load(tmp_path):
    gan = PRESETS["000"].make_gan(np.random.default_rng(0), np.random.default_rng(1))
    old = save_checkpoint(tmp_path / "old.npz", gan, metadata={"preset": "000"})
    gan.ema = EMA(gan.generator, 0.99)
    for value in gan.ema.params.values():
        value += 0.5
    new = save_checkpoint(tmp_path / "new.npz", gan, metadata={"preset": "000"})
    loaded, _, _ = load_generator(new)
    for key, value in gan.ema.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[key], value)
    loaded_old, _, _ = load_generator(old)
    for key, value in gan.generator.state_dict().items():
        np.testing.assert_array_equal(loaded_old.state_dict()[key], value)
    # a run without --ema resumes from a checkpoint with an average: the average is ignored
    restore_checkpoint(
        new, PRESETS["000"].make_gan(np.random.default_rng(2), np.random.default_rng(3))
    )


def test_quality_is_measured_a_few_times_per_long_run_by_default(capsys):
    from tinygan.run.experiment import AUTO_QUALITY_TIMES, quality_interval
    from tinygan.run.settings import RunSettings

    settings = RunSettings(preset="mlp-tf", seed=0, dataset="mnist")
    assert quality_interval(settings, 999) is None  # short runs: no measuring, no message
    assert capsys.readouterr().out == ""
    assert quality_interval(settings, 10_000) == 10_000 // AUTO_QUALITY_TIMES
    # the end of the run is the fifth measurement
    assert quality_interval(settings, 1001) == -(-1001 // AUTO_QUALITY_TIMES)
    assert f"measuring sample quality {AUTO_QUALITY_TIMES} times" in capsys.readouterr().out
    assert quality_interval(replace(settings, quality_every=7), 10) == 7
    both = replace(settings, quality_every=7, no_quality=True)
    assert quality_interval(both, 10**5) is None
    assert quality_interval(replace(settings, no_quality=True), 10**5) is None


def test_quality_every_and_no_quality_together_are_refused_in_one_line(tmp_path, capsys):
    flags = ["--quality-every", "5", "--no-quality", "--iterations", "1", "--out", str(tmp_path)]
    with pytest.raises(SystemExit) as stop:
        cli_main(["train", "mlp-tf", *flags])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--quality-every 5 and --no-quality: choose one" in err
    assert not any(tmp_path.iterdir())  # refused before anything was written
