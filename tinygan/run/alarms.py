"""Warnings that a run is failing in the usual GAN ways, each given once per run.

Two kinds of evidence are watched:

* **Quality** (with ``--quality-every``): the samples' class coverage falls below ``min_classes`` (8 of
  MNIST's 10) after having reached it (mode collapse: G has dropped digits), or recall falls below
  half of its best so far (the samples cover less and less of the data). :class:`CollapseWatch`
  decides; :class:`CollapseAlarm` listens to the quality rows (a
  :class:`~tinygan.run.callbacks.RowListener`) and gives the warnings.
* **Losses** (every log window, no extra measurement): D(x) pinned near 1 while the generator loss
  climbs above twice its median so far, for 3 windows in a row: D has won and G's gradients are
  weak or useless. See :class:`LossAlarm`.

A warning is one line on stderr naming the step, what was seen and the best checkpoint so far
(:func:`tinygan.run.best.best_so_far_line`). It is also recorded in ``<out>/warnings.csv``
(``step, kind, message``, through :mod:`tinygan.run.records`; ``log.csv``'s columns stay
those of every run) and, for the quality alarms, in the ``warning`` column of ``quality.csv``.
Each kind fires once per run, also across ``--resume`` (``warnings.csv`` remembers).
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np

from tinygan.run.best import best_so_far_line
from tinygan.run.callbacks import Callback, RowListener, TrainerView
from tinygan.run.records import WARNINGS_CSV, append_warning, warning_kinds

#: What the coverage and recall warnings suggest: the two remedies that kept all ten digits
#: through mlp-tf's 100k schedule where the plain run ended at four (benchmarks/QUALITY.md).
COLLAPSE_HINT = "mode collapse? --minibatch-std or --pack 2 counter it"


def given_kinds(trainer: TrainerView) -> set[str]:
    """The kinds of warning this run has given up to the trainer's step (read on a resume)."""
    return warning_kinds(trainer.out_dir / WARNINGS_CSV, trainer.step)


def give_warning(trainer: TrainerView, kind: str, message: str) -> str:
    """Print the warning line and append it to ``warnings.csv``; returns the line."""
    line = f"tinygan: warning: step {trainer.step}: {message}; {best_so_far_line(trainer)}"
    print(line, file=sys.stderr, flush=True)
    append_warning(trainer.out_dir / WARNINGS_CSV, trainer.step, kind, message)
    return line


class CollapseWatch:
    """Decides, from one quality row after another, when coverage or recall has collapsed.

    It only judges; :class:`CollapseAlarm` gives the warnings it finds.

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
                    f"(below {self.min_classes}: {COLLAPSE_HINT})",
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
                    f"{self.best_recall:.3f} (the samples cover less of the data: {COLLAPSE_HINT})",
                )
            )
        self.fired |= {kind for kind, _ in found}
        self.observe(row)
        return found


class CollapseAlarm(RowListener):
    """Listens to the quality rows: warns once per kind when coverage or recall collapses.

    The verdict goes into the row's ``warning`` column (the kinds this row set off, usually none),
    so ``quality.csv`` shows where each warning was given.

    Parameters
    ----------
    watch : CollapseWatch, optional
        Decides when coverage or recall has collapsed (default: 8 classes, half the best recall).
    """

    def __init__(self, watch: CollapseWatch | None = None) -> None:
        self.watch = watch or CollapseWatch()

    def on_start(self, trainer: TrainerView, earlier: list[dict[str, str]]) -> None:
        # a resumed run carries on with the coverage and recall reached so far, and does not
        # repeat a warning it gave
        for row in earlier:
            self.watch.observe(row)
        self.watch.fired |= given_kinds(trainer)

    def on_row(self, trainer: TrainerView, row: dict[str, Any]) -> None:
        alarms = self.watch.check(row)
        for kind, message in alarms:
            give_warning(trainer, kind, message)
        row["warning"] = " ".join(kind for kind, _ in alarms)


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

    def on_train_begin(self, trainer: TrainerView) -> None:
        self.streak = 0
        self.fired = self.KIND in given_kinds(trainer)

    def on_log(self, trainer: TrainerView) -> None:
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
