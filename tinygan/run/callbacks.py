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
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: the loop imports this module, never the other way round
    from tinygan.run.train import Trainer


class NonFiniteLossError(RuntimeError):
    """A loss (or a weight) became NaN or infinite at ``step``; the message names both."""

    def __init__(self, step: int, quantity: str, value: float) -> None:
        super().__init__(f"{quantity} became {value} at step {step}: training diverged")
        self.step, self.quantity, self.value = step, quantity, value


class Callback:
    """Hooks called by :class:`~tinygan.run.train.Trainer`. Override the ones you need."""

    def on_train_begin(self, trainer: Trainer) -> None:
        """Before the first step (also after a resume)."""

    def on_step_end(self, trainer: Trainer) -> None:
        """After every step; ``trainer.step`` counts completed steps."""

    def on_epoch_end(self, trainer: Trainer) -> None:
        """After the step that completed an epoch; ``trainer.epoch`` counts completed epochs."""

    def on_log(self, trainer: Trainer) -> None:
        """After a logging window's losses were read back and found finite."""

    def on_rollback(self, trainer: Trainer) -> None:
        """The run diverged or stopped mid-step: restore a consistent state (before ``on_train_end``)."""

    def on_train_end(self, trainer: Trainer) -> None:
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

    def act(self, trainer: Trainer) -> None:
        """What to do when the schedule fires."""
        raise NotImplementedError

    def due(self, index: int) -> bool:
        """Whether the schedule fires at the end of step or epoch ``index`` (counted from 1)."""
        return index % self.every == 0

    def on_step_end(self, trainer: Trainer) -> None:
        if self.every and self.unit == "step" and self.due(trainer.step):
            self.act(trainer)

    def on_epoch_end(self, trainer: Trainer) -> None:
        if self.every and self.unit == "epoch" and self.due(trainer.epoch):
            self.act(trainer)


class RowListener:
    """Listens to the rows of a measuring callback. Override the hooks you need.

    The measuring callback calls both hooks; a listener is given to it, not to the trainer.
    """

    def on_start(self, trainer: Trainer, earlier: list[dict[str, str]]) -> None:
        """Training starts or resumes. ``earlier`` holds the rows the run recorded before, up to
        ``trainer.step``, as read back from its file (values are text; empty for a fresh run): a
        resumed run carries on from what they say."""

    def on_row(self, trainer: Trainer, row: dict[str, Any]) -> None:
        """A new measurement: ``step``, ``epoch`` and the measured values, by name."""
