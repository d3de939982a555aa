"""The contracts between the training loop and everything that rides along with it.

The loop (:class:`tinygan.run.train.Trainer`) trains; anything else a run does (drawing frames,
saving checkpoints, measuring quality, keeping the best generator, raising alarms) is a callback
with **one job**, in the manner of PyTorch Lightning's callbacks. This module holds the contracts
only, so that a callback, and whatever imports one (loading a checkpoint does), never pulls in the
loop:

* :class:`Callback`: the hooks the trainer calls, in the order of its callback list.
* :class:`Periodic`: a callback that acts on a schedule of steps or epochs.
* :class:`RowListener`: what listens to a *measuring* callback. A measurement (the quality of the
  samples, :class:`tinygan.quality.evaluate.QualityCallback`) is one row of numbers; the callback
  that measures hands each row to its listeners, in order, and records it. Each listener does one
  thing with it: :class:`tinygan.run.best.KeepBest` keeps the generator of the lowest FID,
  :class:`tinygan.run.alarms.CollapseAlarm` warns when the samples collapse. A listener may add a
  column of its own verdict to the row (the alarm adds ``warning``); the listeners after it and
  the record see it.
* :class:`NonFiniteLossError`: how a callback (or the loop) stops a run that diverged.
* :class:`TrainerView`: what a callback may read of the trainer that calls it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from tinygan.gan import GAN


class TrainerView(Protocol):
    """What the hooks are given: :class:`tinygan.run.train.Trainer` is the one that calls them.

    Spelled out here so that the modules of callbacks (checkpoints, alarms, quality) name what they
    read without importing the loop.
    """

    gan: GAN  # networks, optimizers, the noise generator (and the moving average of G, if kept)
    batches: Any  # the real batches (their order is part of a checkpoint)
    out_dir: Path  # the run folder
    device: str
    step: int  # completed steps
    history: dict[str, list[float]]  # the logged window means, ``step`` and the STAT_NAMES

    @property
    def epoch(self) -> int:
        """Completed passes over the data."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Step and logged history, for checkpoints."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        ...


class NonFiniteLossError(RuntimeError):
    """A loss (or a weight) became NaN or infinite at ``step``; the message names both."""

    def __init__(self, step: int, quantity: str, value: float) -> None:
        super().__init__(f"{quantity} became {value} at step {step}: training diverged")
        self.step, self.quantity, self.value = step, quantity, value


class Callback:
    """Hooks called by :class:`~tinygan.run.train.Trainer`. Override the ones you need."""

    def on_train_begin(self, trainer: TrainerView) -> None:
        """Before the first step (also after a resume)."""

    def on_step_end(self, trainer: TrainerView) -> None:
        """After every step; ``trainer.step`` counts completed steps."""

    def on_epoch_end(self, trainer: TrainerView) -> None:
        """After the step that completed an epoch; ``trainer.epoch`` counts completed epochs."""

    def on_log(self, trainer: TrainerView) -> None:
        """After a logging window's losses were read back and found finite."""

    def on_rollback(self, trainer: TrainerView) -> None:
        """The run diverged or stopped mid-step: restore a consistent state (before ``on_train_end``)."""

    def on_train_end(self, trainer: TrainerView) -> None:
        """After the last step, and also when the run stops early (interrupt, divergence)."""


class Periodic(Callback):
    """A callback that acts every ``every`` steps or epochs (``every=None``: never on a schedule).

    Subclasses implement :meth:`act`; the end of training can be handled in ``on_train_end``.
    """

    def __init__(self, every: int | None, unit: str = "step") -> None:
        if unit not in ("step", "epoch"):
            raise ValueError(f"unit must be 'step' or 'epoch', got {unit!r}")
        if every is not None and every < 1:
            raise ValueError(f"every must be a positive number of {unit}s, got {every}")
        self.every, self.unit = every, unit

    def act(self, trainer: TrainerView) -> None:
        """What to do when the schedule fires."""
        raise NotImplementedError

    def due(self, index: int) -> bool:
        """Whether the schedule fires at the end of step or epoch ``index`` (counted from 1)."""
        return index % self.every == 0

    def on_step_end(self, trainer: TrainerView) -> None:
        if self.every and self.unit == "step" and self.due(trainer.step):
            self.act(trainer)

    def on_epoch_end(self, trainer: TrainerView) -> None:
        if self.every and self.unit == "epoch" and self.due(trainer.epoch):
            self.act(trainer)


class RowListener:
    """Listens to the rows of a measuring callback. Override the hooks you need.

    The measuring callback calls both hooks; a listener is given to it, not to the trainer.
    """

    def on_start(self, trainer: TrainerView, earlier: list[dict[str, str]]) -> None:
        """Training starts or resumes. ``earlier`` holds the rows the run recorded before, up to
        ``trainer.step``, as read back from its file (values are text; empty for a fresh run): a
        resumed run carries on from what they say."""

    def on_row(self, trainer: TrainerView, row: dict[str, Any]) -> None:
        """A new measurement: ``step``, ``epoch`` and the measured values, by name."""
