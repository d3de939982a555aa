"""Warnings that a run is failing in the usual GAN ways, each given once per run.

Two kinds of evidence are watched:

* **Quality** (with ``--quality-every``): the samples' class coverage falls below ``min_classes`` (8 of
  MNIST's 10) after having reached it (mode collapse: G has dropped digits), or recall falls below
  half of its best so far (the samples cover less and less of the data). See :class:`CollapseWatch`.
* **Losses** (every log window, no extra measurement): D(x) pinned near 1 while the generator loss
  climbs above twice its median so far, for 3 windows in a row: D has won and G's gradients are
  weak or useless. See :class:`LossAlarm`.

A warning is one line on stderr naming the step, what was seen and the best checkpoint so far. It
is also recorded in ``<out>/warnings.csv`` (``step, kind, message``; ``log.csv``'s columns stay
those of every run) and, for the quality alarms, in the ``warning`` column of ``quality.csv``.
Each kind fires once per run, also across ``--resume`` (``warnings.csv`` remembers).
"""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from tinygan.atomic import appending
from tinygan.run.checkpoint import BEST_NAME, best_checkpoint_info
from tinygan.run.train import Callback, Trainer

WARNINGS_FILE = "warnings.csv"


def best_so_far_line(trainer: Trainer, folder: str = "checkpoints") -> str:
    """Where the best generator so far is, for a warning."""
    best = best_checkpoint_info(trainer.out_dir / folder)
    if best is None:
        return "no best checkpoint yet (use --quality-every to keep one)"
    return (
        f"best checkpoint so far: {trainer.out_dir / folder / BEST_NAME} "
        f"(step {best['step']}, FID {best['fid']:.2f})"
    )


def fired_kinds(out_dir: Path, up_to_step: int) -> set[str]:
    """The kinds of warning already given in this run, up to ``up_to_step`` (read on a resume)."""
    path = out_dir / WARNINGS_FILE
    if not path.is_file():
        return set()
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {
        row["kind"]
        for row in rows
        if row.get("step", "").isdigit() and int(row["step"]) <= up_to_step
    }


def give_warning(trainer: Trainer, kind: str, message: str) -> str:
    """Print the warning line and append it to ``warnings.csv``; returns the line."""
    line = f"tinygan: warning: step {trainer.step}: {message}; {best_so_far_line(trainer)}"
    print(line, file=sys.stderr, flush=True)
    path = trainer.out_dir / WARNINGS_FILE
    new_file = not path.is_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with appending(path) as handle:
        writer = csv.writer(handle)
        if new_file:
            writer.writerow(["step", "kind", "message"])
        writer.writerow([trainer.step, kind, message])
    return line


class CollapseWatch:
    """Decides, from one quality row after another, when coverage or recall has collapsed.

    Parameters
    ----------
    min_classes : int
        Coverage floor (8 suits 10-class data such as MNIST).
    recall_fraction : float
        Recall below this fraction of its best so far counts as a collapse.
    """

    def __init__(self, min_classes: int = 8, recall_fraction: float = 0.5) -> None:
        self.min_classes, self.recall_fraction = int(min_classes), float(recall_fraction)
        self.reached_classes = 0  # the most classes covered so far
        self.best_recall = 0.0
        self.fired: set[str] = set()

    def observe(self, row: dict[str, Any]) -> None:
        """Take a row into account without judging it (rows of a run being resumed)."""
        classes, recall = float(row["classes_hit"]), float(row["recall"])
        if math.isfinite(classes):
            self.reached_classes = max(self.reached_classes, int(classes))
        if math.isfinite(recall):
            self.best_recall = max(self.best_recall, recall)

    def check(self, row: dict[str, Any]) -> list[tuple[str, str]]:
        """``(kind, message)`` for each alarm this row sets off for the first time; then observe it."""
        found = []
        classes, recall = float(row["classes_hit"]), float(row["recall"])
        if (
            "coverage" not in self.fired
            and self.reached_classes >= self.min_classes
            and classes < self.min_classes
        ):
            found.append(
                (
                    "coverage",
                    f"the samples cover {classes:g} classes, down from {self.reached_classes} "
                    f"(below {self.min_classes}: mode collapse?)",
                )
            )
        if (
            "recall" not in self.fired
            and self.best_recall > 0
            and recall < self.recall_fraction * self.best_recall
        ):
            found.append(
                (
                    "recall",
                    f"recall fell to {recall:.3f}, under {self.recall_fraction:g} of its best "
                    f"{self.best_recall:.3f} (the samples cover less of the data: mode collapse?)",
                )
            )
        self.fired |= {kind for kind, _ in found}
        self.observe(row)
        return found


class LossAlarm(Callback):
    """Warn once when D(x) stays near 1 while G's loss climbs, ``windows`` log windows in a row.

    Parameters
    ----------
    d_real_above : float
        D(x) (the window mean) above this counts as pinned.
    g_loss_factor : float
        G's loss above this multiple of its median over the run so far counts as climbing.
    windows : int
        Consecutive log windows both must hold for.
    """

    KIND = "d_wins"

    def __init__(
        self, d_real_above: float = 0.99, g_loss_factor: float = 2.0, windows: int = 3
    ) -> None:
        self.d_real_above, self.g_loss_factor, self.windows = d_real_above, g_loss_factor, windows
        self.streak = 0
        self.fired = False

    def on_train_begin(self, trainer: Trainer) -> None:
        self.streak = 0
        self.fired = self.KIND in fired_kinds(trainer.out_dir, trainer.step)

    def on_log(self, trainer: Trainer) -> None:
        history = trainer.history
        if self.fired or not history["g_loss"]:
            return
        d_real, g_loss = history["d_real"][-1], history["g_loss"][-1]
        median = float(np.median(history["g_loss"]))
        # a median <= 0 (the minimax loss is negative) gives no meaningful "twice as large"
        climbing = median > 0 and g_loss > self.g_loss_factor * median
        self.streak = self.streak + 1 if d_real > self.d_real_above and climbing else 0
        if self.streak >= self.windows:
            self.fired = True
            give_warning(
                trainer,
                self.KIND,
                f"D(x) has stayed above {self.d_real_above:g} and the generator loss above "
                f"{self.g_loss_factor:g}x its median ({g_loss:.3f} vs {median:.3f}) for "
                f"{self.windows} log windows: the discriminator is winning",
            )
