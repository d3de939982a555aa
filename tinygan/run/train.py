"""The training loop: steps, progress bar, logs, and callbacks for samples, curves and checkpoints.

The loop itself is small: draw real batches, call :meth:`tinygan.gan.GAN.train_step`, and every
``log_every`` steps read the step statistics back (one host synchronisation on a GPU), check that they
are finite, append them to ``log.csv`` (its format is :mod:`tinygan.run.records`') and show them on
the progress bar (or print them as a line, when the bar is off). Everything else (sample grids, loss
curves, checkpoints, metrics) is a :class:`Callback`; the callback contracts live in
:mod:`tinygan.run.callbacks` (and are importable from here too), so that a callback's module need
not import the loop. ``examples/train_loop.py`` writes the same loop out by hand, without callbacks.

Divergence is caught at the step it happens: on the CPU each step's losses are checked (reading four
host scalars costs nothing); on a GPU they are checked when the logging window reads them back, which
still names the exact step without a synchronisation per step. A run stops with
:class:`NonFiniteLossError`, after callbacks have rolled it back to its last finite state
(:meth:`Callback.on_rollback`, see :class:`tinygan.run.checkpoint.Checkpoint`).

A stop request (:meth:`Trainer.request_stop`, which the command line's Ctrl-C, SIGTERM and SIGHUP
handlers call) ends the run at the next step boundary, so the saved state is always that of a whole
step.
An interrupted, diverged or failed run still writes its logs and calls ``on_train_end`` (where
callbacks write their final outputs: curves, a last frame, a checkpoint) before the exception
propagates, so nothing produced so far is lost; one output that cannot be written (a full disk)
does not keep the others from being written.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from tinygan.backend import get_array_module, to_device, to_numpy
from tinygan.ema import averaged_generator
from tinygan.gan import GAN, condition_samples
from tinygan.run.callbacks import Callback, NonFiniteLossError, Periodic
from tinygan.run.records import LOG_CSV, QUALITY_CSV, STAT_NAMES, append_log_row, read_fid, trim_log
from tinygan.run.sampling import class_rows, spread_labels
from tinygan.viz import save_gif, save_histograms, save_image_grid, save_loss_curves


def all_finite(stats: Any) -> bool:
    """Whether every statistic of one step is finite (reads them back to the host)."""
    return all(math.isfinite(float(value)) for value in vars(stats).values())


class Trainer:
    """Runs a :class:`~tinygan.gan.GAN` on endless real batches.

    Parameters
    ----------
    gan : GAN
        Networks, optimizers and step rules, already on ``device``.
    batches : iterator of arrays, or of (samples, labels) pairs for a conditional GAN
        Real batches (a :class:`tinygan.data.BatchIterator`, or a
        :class:`tinygan.data.LabelledBatches`); its ``epoch`` attribute, when present,
        drives ``on_epoch_end``. Give it the dataset on ``device`` (``to_device(data, device)``, as
        :mod:`tinygan.run.experiment` does): host batches would be copied to the device at every step.
    out_dir : path
        Where ``log.csv`` and the callbacks' files go.
    device : {"cpu", "gpu", "emulated"}
        Where the GAN's parameters live; a batch that is not there yet is moved there.
    callbacks : sequence of Callback
    log_every : int
        Steps between reading statistics back, logging them and updating the progress bar.
    progress : bool
        Show a tqdm progress bar; without it, each log window is printed as one line.
    """

    def __init__(
        self,
        gan: GAN,
        batches: Iterator[Any],
        out_dir: str | Path,
        device: str = "cpu",
        callbacks: Sequence[Callback] = (),
        log_every: int = 50,
        progress: bool = True,
    ) -> None:
        if log_every < 1:
            raise ValueError("log_every must be at least 1")
        self.gan, self.batches, self.device = gan, batches, device
        self.out_dir = Path(out_dir)
        self.callbacks = list(callbacks)
        self.log_every, self.progress = int(log_every), progress
        self.step = 0
        self.history: dict[str, list[float]] = {"step": [], **{name: [] for name in STAT_NAMES}}
        self._pending: list[Any] = []  # per-step stats not yet read back from the device
        # reading four scalars is free on the CPU, a synchronisation on a GPU: check per step or per window
        self.check_every_step = device == "cpu"
        self.stop_requested = False
        self.end_errors: list[Exception] = []  # what the final writes of the last fit could not do

    @property
    def epoch(self) -> int:
        """Completed passes over the data."""
        return int(getattr(self.batches, "epoch", 0))

    @property
    def log_path(self) -> Path:
        return self.out_dir / LOG_CSV

    def next_real_batch(self) -> Any:
        """The next real batch, on the training device (moved there, unless it already is): an
        array, or a conditional GAN's (samples, labels) pair, each moved."""
        batch = next(self.batches)
        if isinstance(batch, tuple):
            return tuple(to_device(part, self.device) for part in batch)
        return to_device(batch, self.device)

    def request_stop(self) -> None:
        """Stop after the step in progress (safe to call from a signal handler)."""
        self.stop_requested = True

    def fit(self, steps: int) -> dict[str, list[float]]:
        """Train until ``self.step == steps`` (a resumed trainer continues from its step).

        Raises
        ------
        NonFiniteLossError
            A loss became NaN or infinite; callbacks have rolled the run back to its last finite state.
        KeyboardInterrupt
            :meth:`request_stop` was called (or Ctrl-C arrived mid-step); the outputs are written.
        OSError
            A file could not be written (a full disk, a read-only folder); the error names it. The
            other callbacks still write their final outputs (see :meth:`finish`).
        """
        self.out_dir.mkdir(parents=True, exist_ok=True)
        trim_log(self.log_path, self.step)
        bar = tqdm(total=steps, initial=self.step, disable=not self.progress, unit="step")
        started = time.perf_counter()
        self.stop_requested = False
        mid_step = diverged = failed = False
        for callback in self.callbacks:
            callback.on_train_begin(self)
        try:
            while self.step < steps:
                if self.stop_requested:
                    raise KeyboardInterrupt
                epoch_before = self.epoch
                mid_step = True
                stats = self.gan.train_step(self.next_real_batch)
                self.step += 1
                mid_step = False
                self._after_step(stats, epoch_before, steps, bar, started)
        except NonFiniteLossError:
            diverged = failed = True
            raise
        except BaseException:
            failed = True
            raise
        finally:
            bar.close()
            self.finish(rollback=mid_step or diverged, failing=failed)
        return self.history

    def _after_step(
        self, stats: Any, epoch_before: int, steps: int, bar: Any, started: float
    ) -> None:
        """Log the window when it is complete (or the step is not finite, or the last), then call
        the callbacks' step and epoch hooks."""
        self._pending.append(stats)
        if (
            len(self._pending) >= self.log_every
            or self.step == steps
            or (self.check_every_step and not all_finite(stats))
        ):
            means = self.flush_log()
            for callback in self.callbacks:
                callback.on_log(self)
            if self.progress:
                bar.set_postfix(means, refresh=False)
            else:
                print(self.log_line(means, steps, time.perf_counter() - started), flush=True)
        for callback in self.callbacks:
            callback.on_step_end(self)
        if self.epoch != epoch_before:
            for callback in self.callbacks:
                callback.on_epoch_end(self)
        bar.update(1)

    def flush_log(self) -> dict[str, str]:
        """Read pending statistics back, check them, log their window means; return them formatted.

        Raises :class:`NonFiniteLossError` naming the first step with a non-finite value, after logging
        the finite steps before it.
        """
        if not self._pending:
            return {}
        xp = get_array_module(self._pending[0].d_loss)
        values = to_numpy(
            xp.stack([xp.stack([getattr(s, n) for n in STAT_NAMES]) for s in self._pending])
        ).astype(np.float64)
        last_step = self.step
        first_step = last_step - len(self._pending) + 1
        self._pending = []
        bad_rows, bad_cols = np.nonzero(~np.isfinite(values))
        finite = values[: bad_rows[0]] if bad_rows.size else values
        means = finite.mean(axis=0) if len(finite) else None
        if means is not None:
            logged_step = first_step + len(finite) - 1
            self.history["step"].append(logged_step)
            for name, value in zip(STAT_NAMES, means, strict=True):
                self.history[name].append(float(value))
            append_log_row(self.log_path, logged_step, self.epoch, means)
        if bad_rows.size:
            name, value = STAT_NAMES[bad_cols[0]], values[bad_rows[0], bad_cols[0]]
            raise NonFiniteLossError(first_step + int(bad_rows[0]), name, float(value))
        return {name: f"{value:.3f}" for name, value in zip(STAT_NAMES, means, strict=True)}

    def log_line(self, means: dict[str, str], steps: int, seconds: float) -> str:
        """One line of progress for a console without a progress bar."""
        stats = "  ".join(f"{name} {value}" for name, value in means.items())
        return f"step {self.step}/{steps}  epoch {self.epoch}  {stats}  ({seconds:.0f} s)"

    def finish(self, rollback: bool = False, failing: bool = False) -> None:
        """Log what is pending, then let callbacks write their final outputs.

        Called on every exit from :meth:`fit`. With ``rollback`` (the run diverged or stopped in the
        middle of a step), or when the pending window turns out non-finite, callbacks first restore
        the last consistent state (:meth:`Callback.on_rollback`).

        One failure (a file that cannot be written) does not keep the other callbacks from writing
        theirs: the errors are kept in ``end_errors``, and the first is raised at the end, unless the
        run is already ``failing``: its own error, on its way out, says what went wrong first.
        """
        self.end_errors = []
        try:
            self.flush_log()
        except NonFiniteLossError:
            rollback = True
        except Exception as error:
            self.end_errors.append(error)
        if rollback:
            for callback in self.callbacks:
                callback.on_rollback(self)
        for callback in self.callbacks:
            try:
                callback.on_train_end(self)
            except Exception as error:
                self.end_errors.append(error)
        if self.end_errors and not failing:
            raise self.end_errors[0]

    def state_dict(self) -> dict[str, Any]:
        """Step and logged history, for checkpoints."""
        return {
            "step": self.step,
            **{f"history.{k}": np.asarray(v) for k, v in self.history.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.step = int(state["step"])
        for name in self.history:
            cast = int if name == "step" else float
            self.history[name] = [cast(v) for v in np.asarray(state[f"history.{name}"])]


class SampleGrid(Periodic):
    """Write a grid of G(z) for a fixed z every ``every`` steps (or epochs), so frames are comparable.

    Parameters
    ----------
    every : int
        Interval, in ``unit``.
    rows, cols : int
        Grid layout (8x8 for the TensorFlow tutorial's MLP GAN, 1x10 for the TensorFlow book's,
        4x4 for the TensorFlow DCGAN).
    image_shape : tuple
        Shape of one sample, e.g. (28, 28) or (1, 28, 28), to reshape G's flat output.
    value_range : tuple
        Range of G's output ((0, 1) for a sigmoid, (-1, 1) for tanh).
    unit : {"step", "epoch"}
    rng : numpy.random.Generator
        Draws the fixed noise once (on the CPU, so it is the same on every device).
    at_start : bool
        Also write a frame before training (step 0), as the TensorFlow MLP tutorial does.
    first : bool
        Also write a frame after the first step or epoch, as the Keras DCGAN and the TensorFlow
        book's MLP tutorials do.
    make_gif : bool
        At the end, assemble every frame of this run's folder and unit into ``<out>/training.gif``.
    classes : int, optional
        A conditional GAN's number of classes: row ``k`` of the grid shows class ``k`` (``rows``
        must be ``classes``), and every row is made from the same ``cols`` noise vectors, so a
        column shows one style across the classes.

    A run that ends between scheduled frames (a short run, an interrupt) also writes a last frame,
    ``step_<n>.png``, so the final generator is always on disk.
    """

    def __init__(
        self,
        every: int,
        rows: int,
        cols: int,
        image_shape: tuple[int, ...],
        value_range: tuple[float, float],
        rng: np.random.Generator,
        unit: str = "step",
        at_start: bool = True,
        folder: str = "samples",
        make_gif: bool = False,
        first: bool = False,
        classes: int | None = None,
    ) -> None:
        super().__init__(every, unit)
        if classes is not None and rows != classes:
            raise ValueError(f"a grid of {classes} classes has one row per class, got rows={rows}")
        self.rows, self.cols, self.classes = rows, cols, classes
        self.image_shape, self.value_range = tuple(image_shape), value_range
        self.rng, self.at_start, self.folder, self.make_gif = rng, at_start, folder, make_gif
        self.first = first
        self.noise: np.ndarray | None = None
        self.labels: np.ndarray | None = None  # the class of each cell, for a conditional GAN
        self.frames: list[Path] = []
        self.last_step: int | None = None  # the step of the newest frame

    def due(self, index: int) -> bool:
        return super().due(index) or (self.first and index == 1)

    def on_train_begin(self, trainer: Trainer) -> None:
        if self.noise is None and self.classes is None:
            self.noise = trainer.gan.sample_noise(self.rows * self.cols, rng=self.rng)
        elif self.noise is None:
            row = trainer.gan.sample_noise(self.cols, rng=self.rng)
            self.noise, self.labels = class_rows(row, self.classes)
        if self.at_start and trainer.step == 0:
            self.write(trainer, "step", 0)

    def act(self, trainer: Trainer) -> None:
        self.write(trainer, self.unit, trainer.step if self.unit == "step" else trainer.epoch)

    def on_train_end(self, trainer: Trainer) -> None:
        if trainer.step != self.last_step:
            # a run that stops between scheduled frames (short, interrupted) still shows where it ended;
            # a diverged generator has nothing to show
            images = self.generate(trainer)
            if np.isfinite(images).all():
                self.save(images, trainer, "step", trainer.step)
        if self.make_gif:
            # frames written before a resume count too, so read them from the folder
            frames = sorted((trainer.out_dir / self.folder).glob(f"{self.unit}_*.png"))
            if frames:
                save_gif(frames, trainer.out_dir / "training.gif")

    def generate(self, trainer: Trainer) -> np.ndarray:
        """G(z) for the fixed noise (G(z, y) for each cell's class y), on the CPU, shaped as
        images (from G's moving average, if kept)."""
        with averaged_generator(trainer.gan) as generator:  # the averaged weights, if kept
            images = generator(self.generator_input(trainer.device))
        return to_numpy(images).reshape(-1, *self.image_shape)

    def generator_input(self, device: str) -> Any:
        """What the generator is given for the grid, on ``device``: the fixed noise, with each
        cell's class code appended for a conditional GAN (:func:`tinygan.gan.condition_samples`)."""
        if self.labels is None:
            return to_device(self.noise, device)
        return to_device(condition_samples(self.noise, self.labels, self.classes), device)

    def save(self, images: np.ndarray, trainer: Trainer, unit: str, index: int) -> Path:
        """Save ``images`` as ``<out>/<folder>/<unit>_<index>.png``."""
        path = trainer.out_dir / self.folder / f"{unit}_{index:06d}.png"
        self.draw(images, path, trainer)
        self.frames.append(path)
        self.last_step = trainer.step
        return path

    def draw(self, images: np.ndarray, path: Path, trainer: Trainer) -> None:
        """Write one frame of ``images`` to ``path``: here a grid of pictures."""
        save_image_grid(images, path, self.rows, self.cols, value_range=self.value_range)

    def write(self, trainer: Trainer, unit: str, index: int) -> Path:
        """Generate from the fixed noise and save ``<out>/<folder>/<unit>_<index>.png``."""
        return self.save(self.generate(trainer), trainer, unit, index)


class LossCurves(Callback):
    """Draw the logged history when training ends, however it ends (also after Ctrl-C or divergence).

    ``<out>/losses.png`` shows D's and G's losses (and, beside them, the FID of every quality
    measurement in ``quality.csv`` up to the final step, when there is one), and
    ``<out>/discriminator_outputs.png`` the mean of D(x) and of D(G(z)): one point per logging window. They are drawn in ``on_train_end``, which comes
    after any rollback (:meth:`Callback.on_rollback`), so a diverged run's curves end at the state it
    was rolled back to; a run that never finished a window gets empty axes rather than no file.
    """

    def on_train_end(self, trainer: Trainer) -> None:
        history, steps = trainer.history, trainer.history["step"]
        losses = {name: history[name] for name in ("d_loss", "g_loss")}
        save_loss_curves(
            losses, trainer.out_dir / "losses.png", steps=steps, beside=self.fid_curve(trainer)
        )
        probabilities = {name: history[name] for name in ("d_real", "d_fake")}
        save_loss_curves(
            probabilities,
            trainer.out_dir / "discriminator_outputs.png",
            steps=steps,
            title="Mean discriminator output",
            ylabel="D(.)",
        )

    @staticmethod
    def fid_curve(trainer: Trainer) -> tuple[str, list[int], list[float]] | None:
        """The FID column of ``quality.csv`` up to the trainer's step, or None without one."""
        curve = read_fid(trainer.out_dir / QUALITY_CSV, trainer.step)
        if curve is None:
            return None
        return "FID during training (lower is better)", *curve


class PixelHistograms(Callback):
    """Histograms of real versus generated pixel intensities, before and after training.

    The Keras DCGAN tutorial's diagnostic: a generator that has learned MNIST puts most of its pixels
    at the two ends of the range (background and stroke), as the data does; an untrained one puts
    them in the middle.

    Parameters
    ----------
    real : numpy.ndarray
        A batch of real images, already scaled to ``value_range``.
    value_range : tuple
        The histograms' range.
    rng : numpy.random.Generator
        Draws the noise for the generated batch (on the CPU).
    """

    def __init__(
        self, real: np.ndarray, value_range: tuple[float, float], rng: np.random.Generator
    ) -> None:
        self.real, self.value_range, self.rng = real, value_range, rng

    def write(self, trainer: Trainer, name: str) -> Path:
        gan = trainer.gan
        z = to_device(gan.sample_noise(len(self.real), rng=self.rng), trainer.device)
        # a conditional GAN's fakes of every class in turn, as many of each
        labels = None if gan.num_classes is None else spread_labels(len(z), gan.num_classes)
        fake = to_numpy(gan.generate(z, labels))
        return save_histograms(
            {"real": self.real.ravel(), "generated": fake.ravel()},
            trainer.out_dir / f"pixel_histogram_{name}.png",
            title=f"Pixel intensities {name} training (step {trainer.step})",
            range=self.value_range,
            xlabel="pixel value",
        )

    def on_train_begin(self, trainer: Trainer) -> None:
        if trainer.step == 0:
            self.write(trainer, "before")

    def on_train_end(self, trainer: Trainer) -> None:
        self.write(trainer, "after")
