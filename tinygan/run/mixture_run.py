"""What a run on a 2-D mixture (the ``ring`` and ``grid`` presets) writes besides the usual files.

Such a run learns points, not images, so where an image run draws sample grids and measures FID it
draws scatter plots and counts modes::

    <out>/samples/step_*.png   2,500 generated points (a fixed z, G in inference mode) over the
                               mixture's modes (red crosses), on one view for the whole run
    <out>/training.gif         those frames, in order, at the end of the run
    <out>/modes.csv            modes captured, high-quality share and reverse KL of the same 2,500
                               points, every ``--modes-every`` steps (the measures of
                               :func:`tinygan.quality.metrics.mixture_modes`)

The format of ``modes.csv`` is :mod:`tinygan.run.records`' (:data:`~tinygan.run.records.MODES_COLUMNS`,
:func:`~tinygan.run.records.read_modes_csv`, both importable from here too), through which
anything that reads the measures back (plots, benchmark tables) should go. One row a
measurement: ``step`` and ``epoch`` (passes over the run's points) when it was taken, ``modes``
(modes with at least one high-quality sample), ``high_quality`` (their share of the samples, from 0
to 1; the papers print it as a percentage) and ``reverse_kl`` (nats; ``nan`` when no sample is of
high quality). The frames and the measures use the same 2,500 latent vectors, so a frame shows
exactly the points its row counts.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from tinygan.backend import to_device
from tinygan.data.mixtures import GaussianMixture2D
from tinygan.ema import averaged_generator
from tinygan.quality.metrics.modes import MIXTURE_SAMPLES, ModeCounts, mixture_modes
from tinygan.run.callbacks import Periodic
from tinygan.run.records import MODES_COLUMNS as MODES_COLUMNS
from tinygan.run.records import MODES_CSV, append_modes_row, trim_modes
from tinygan.run.records import read_modes_csv as read_modes_csv
from tinygan.run.train import SampleGrid, Trainer
from tinygan.viz import save_scatter, scatter_limits

#: Steps between measurements by default: one epoch of the authors' protocol (100,000 packed
#: examples in batches of 100), after which the papers measure.
MODES_EVERY = 1000


class ModeMeasures(Periodic):
    """Count the modes of a fixed batch of generated samples every ``every`` steps, into
    ``modes.csv``: what every target's measures share. A target's subclass says how many modes it
    has (:attr:`num_modes`) and how the samples fall into them (:meth:`counts`):
    :class:`MixtureModeMeasures` for the 2-D mixtures,
    :class:`tinygan.run.stacked_run.StackedModeMeasures` for Stacked MNIST.

    Parameters
    ----------
    every : int
        Steps between measurements; the start (step 0, when :attr:`at_start`) and the end of the
        run are measured too.
    rng : numpy.random.Generator
        Draws the fixed latent vectors once (on the CPU, so they are the same on every device).
    n : int
        Points per measurement (2,500 in the papers' protocol).
    filename : str

    Notes
    -----
    G runs in inference mode (BatchNorm's population statistics), as in the authors' code, and
    from its moving average when the run keeps one (``--ema``). A resumed run first drops the rows
    after the step it resumes from (a killed run may have measured further than its last
    checkpoint), so the file holds each step once.
    """

    #: Whether a fresh run is measured before its first step too.
    at_start = True

    def __init__(
        self, every: int, rng: np.random.Generator, n: int, filename: str = MODES_CSV
    ) -> None:
        super().__init__(every, "step")
        self.rng, self.n, self.filename = rng, int(n), filename
        self.noise: np.ndarray | None = None
        self.rows: list[dict[str, Any]] = []

    @property
    def num_modes(self) -> int:
        """The modes of the target."""
        raise NotImplementedError

    def counts(self, trainer: Trainer) -> ModeCounts:
        """The measures of the generator as it is now, on the fixed noise."""
        raise NotImplementedError

    def path(self, trainer: Trainer) -> Path:
        return trainer.out_dir / self.filename

    def on_train_begin(self, trainer: Trainer) -> None:
        if self.noise is None:
            self.noise = trainer.gan.sample_noise(self.n, rng=self.rng)
        self.rows = trim_modes(self.path(trainer), trainer.step)
        if trainer.step == 0 and self.at_start:
            self.measure(trainer)

    def act(self, trainer: Trainer) -> None:
        self.measure(trainer)

    def on_train_end(self, trainer: Trainer) -> None:
        if not self.rows or self.rows[-1]["step"] != trainer.step:
            self.measure(trainer)

    def measure(self, trainer: Trainer) -> dict[str, Any]:
        """Measure the generator as it is now; append the row to the file and return it."""
        counts = self.counts(trainer)
        high_quality = counts.high_quality
        row = {
            "step": trainer.step,
            "epoch": trainer.epoch,
            "modes": counts.modes_captured,
            "high_quality": None if high_quality is None else float(high_quality),
            "reverse_kl": float(counts.reverse_kl),
        }
        append_modes_row(self.path(trainer), row)
        self.rows.append(row)
        return row

    def summary(self) -> str | None:
        """One line on the last measurement, or None before the first."""
        if not self.rows:
            return None
        row = self.rows[-1]
        kl = "undefined" if math.isnan(row["reverse_kl"]) else f"{row['reverse_kl']:.3f}"
        quality = row["high_quality"]
        shared = "" if quality is None else f", {100 * quality:.1f}% high-quality samples"
        return (
            f"{row['modes']} of {self.num_modes} modes{shared}, reverse KL {kl} at step "
            f"{row['step']}"
        )


class MixtureModeMeasures(ModeMeasures):
    """The modes of a 2-D Gaussian mixture captured by a fixed batch of generated points, their
    high-quality share and reverse KL (:func:`tinygan.quality.metrics.modes.mixture_modes`), every
    ``every`` steps into ``modes.csv`` (:class:`ModeMeasures`).

    Parameters
    ----------
    every : int
    mixture : GaussianMixture2D
        The target: its centres and standard deviation define the measures.
    rng : numpy.random.Generator
    n : int
        Points per measurement (2,500 in the papers' protocol).
    filename : str
    """

    def __init__(
        self,
        every: int,
        mixture: GaussianMixture2D,
        rng: np.random.Generator,
        n: int = MIXTURE_SAMPLES,
        filename: str = MODES_CSV,
    ) -> None:
        super().__init__(every, rng, n, filename)
        self.mixture = mixture

    @property
    def num_modes(self) -> int:
        """The mixture's modes."""
        return self.mixture.num_modes

    def counts(self, trainer: Trainer) -> ModeCounts:
        """The measures of the generator as it is now, on the fixed noise."""
        z = to_device(self.noise, trainer.device)
        with averaged_generator(trainer.gan):
            points = trainer.gan.generate(z)
        return mixture_modes(points, self.mixture.centres, self.mixture.std)


class ScatterFrames(SampleGrid):
    """:class:`~tinygan.run.train.SampleGrid`'s schedule, fixed noise, last frame and GIF, with each
    frame a scatter plot of ``n`` generated points over the mixture's modes.

    Every frame shares one view (:func:`tinygan.viz.scatter_limits` of the centres), so the GIF
    shows the points move, not the axes; points outside it are counted in the frame's title.
    """

    def __init__(
        self,
        every: int,
        mixture: GaussianMixture2D,
        rng: np.random.Generator,
        n: int = MIXTURE_SAMPLES,
        unit: str = "step",
        make_gif: bool = True,
    ) -> None:
        super().__init__(every, 1, n, (2,), (-math.inf, math.inf), rng, unit, make_gif=make_gif)
        self.mixture, self.limits = mixture, scatter_limits(mixture.centres)

    def draw(self, images: np.ndarray, path: Path, trainer: Trainer) -> None:
        title = f"{self.mixture.name}, step {trainer.step}"
        save_scatter(images, path, self.mixture.centres, self.limits, title)
