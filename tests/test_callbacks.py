"""The callback contracts: listeners of a measuring callback, and what a callback's module imports."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from test_best_ema_alarms import TOY_PRESET, ScriptedEvaluator
from test_checkpoint import fresh_run

from tinygan.quality.evaluate import QualityCallback
from tinygan.run import callbacks
from tinygan.run.callbacks import RowListener
from tinygan.run.records import QUALITY_COLUMNS


class Recorder(RowListener):
    """Notes what it is told, and marks each row with its name."""

    def __init__(self, name: str, seen: list[tuple[str, Any]]) -> None:
        self.name, self.seen = name, seen

    def on_start(self, trainer: Any, earlier: list[dict[str, str]]) -> None:
        self.seen.append((self.name, [row["step"] for row in earlier]))

    def on_row(self, trainer: Any, row: dict[str, Any]) -> None:
        self.seen.append((self.name, row["step"], row.get("warning")))
        row["warning"] = f"{row.get('warning') or ''}{self.name}"


def measured_run(out_dir: Path, fids: list[float], seen: list[tuple[str, Any]]) -> Any:
    trainer = fresh_run(out_dir)
    listeners = [Recorder("a", seen), Recorder("b", seen)]
    trainer.callbacks.append(
        QualityCallback(2, ScriptedEvaluator(fids), TOY_PRESET, n=20, listeners=listeners)
    )
    return trainer


def test_listeners_get_each_row_in_order_and_what_they_add_is_recorded(tmp_path):
    seen: list[tuple[str, Any]] = []
    measured_run(tmp_path, [50.0, 40.0, 30.0], seen).fit(5)
    assert seen == [
        ("a", []),
        ("b", []),
        *[entry for step in (2, 4, 5) for entry in (("a", step, None), ("b", step, "a"))],
    ]
    with (tmp_path / "quality.csv").open(newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert tuple(reader.fieldnames) == QUALITY_COLUMNS
    assert [(row["step"], row["fid"], row["warning"]) for row in rows] == [
        ("2", "50.0", "ab"),
        ("4", "40.0", "ab"),
        ("5", "30.0", "ab"),
    ]


def test_a_resumed_run_hands_its_listeners_the_rows_up_to_its_step(tmp_path):
    measured_run(tmp_path, [50.0, 40.0, 30.0], []).fit(5)
    seen: list[tuple[str, Any]] = []
    resumed = measured_run(tmp_path, [20.0], seen)
    resumed.step = 4  # as if resumed from a checkpoint of step 4: the row of step 5 came after it
    resumed.callbacks[-1].on_train_begin(resumed)
    assert seen == [("a", ["2", "4"]), ("b", ["2", "4"])]


def test_loading_a_checkpoint_sampling_or_evaluating_does_not_import_the_training_loop():
    code = (
        "import sys, tinygan.run.checkpoint, tinygan.run.sampling, tinygan.quality.evaluate; "
        "print('tinygan.run.train' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert done.stdout.strip() == "False"


def test_the_loop_module_offers_the_same_callback_classes():
    from tinygan.run import train
    from tinygan.run.checkpoint import Checkpoint

    assert train.Callback is callbacks.Callback and train.Periodic is callbacks.Periodic
    assert train.NonFiniteLossError is callbacks.NonFiniteLossError
    assert issubclass(Checkpoint, callbacks.Periodic)
