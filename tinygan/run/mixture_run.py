"""What a run on a 2-D mixture (the ``ring`` and ``grid`` presets) writes besides the usual files.

Such a run learns points, not images, so where an image run draws sample grids and measures FID it
draws scatter plots and counts modes::

    <out>/samples/step_*.png   2,500 generated points (a fixed z, G in inference mode) over the
                               mixture's modes (red crosses), on one view for the whole run
    <out>/training.gif         those frames, in order, at the end of the run
    <out>/modes.csv            modes captured, high-quality share and reverse KL of the same 2,500
                               points, every ``--modes-every`` steps (the measures of
                               :func:`tinygan.quality.metrics.mixture_modes`)

This module owns the format of ``modes.csv``: :data:`MODES_COLUMNS` and :func:`read_modes_csv`,
which anything that reads the measures back (plots, benchmark tables) should go through. One row a
measurement: ``step`` and ``epoch`` (passes over the run's points) when it was taken, ``modes``
(modes with at least one high-quality sample), ``high_quality`` (their share of the samples, from 0
to 1; the papers print it as a percentage) and ``reverse_kl`` (nats; ``nan`` when no sample is of
high quality). The frames and the measures use the same 2,500 latent vectors, so a frame shows
exactly the points its row counts.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from tinygan.atomic import appending, write_atomically
from tinygan.backend import to_device
from tinygan.data.mixtures import GaussianMixture2D
from tinygan.ema import averaged_generator
from tinygan.quality.metrics.modes import MIXTURE_SAMPLES, mixture_modes
from tinygan.run.train import Periodic, SampleGrid, Trainer
from tinygan.viz import save_scatter, scatter_limits

#: The measure file's name in the run folder.
MODES_CSV = "modes.csv"
#: Its columns, in order.
MODES_COLUMNS = ("step", "epoch", "modes", "high_quality", "reverse_kl")
#: Steps between measurements by default: one epoch of the authors' protocol (100,000 packed
#: examples in batches of 100), after which the papers measure.
MODES_EVERY = 1000


def read_modes_csv(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a ``modes.csv``, oldest first: ``step``, ``epoch`` and ``modes`` as ints,
    ``high_quality`` and ``reverse_kl`` as floats.

    A line that does not parse (the last one of a run killed while writing it) is left out.
    """
    rows = []
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            try:
                rows.append(
                    {
                        "step": int(row["step"]),
                        "epoch": int(row["epoch"]),
                        "modes": int(row["modes"]),
                        "high_quality": float(row["high_quality"]),
                        "reverse_kl": float(row["reverse_kl"]),
                    }
                )
            except (KeyError, TypeError, ValueError):
                continue
    return rows


def _csv_line(row: dict[str, Any]) -> str:
    text = io.StringIO()
    values = [f"{v:.6g}" if isinstance(v, float) else v for v in (row[c] for c in MODES_COLUMNS)]
    csv.writer(text).writerow(values)
    return text.getvalue()


class ModeMeasures(Periodic):
    """Count the modes of a fixed batch of generated points every ``every`` steps, into ``modes.csv``.

    Parameters
    ----------
    every : int
        Steps between measurements; the start (step 0) and the end of the run are measured too.
    mixture : GaussianMixture2D
        The target: its centres and standard deviation define the measures.
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

    def __init__(
        self,
        every: int,
        mixture: GaussianMixture2D,
        rng: np.random.Generator,
        n: int = MIXTURE_SAMPLES,
        filename: str = MODES_CSV,
    ) -> None:
        super().__init__(every, "step")
        self.mixture, self.rng, self.n, self.filename = mixture, rng, int(n), filename
        self.noise: np.ndarray | None = None
        self.rows: list[dict[str, Any]] = []

    def path(self, trainer: Trainer) -> Path:
        return trainer.out_dir / self.filename

    def on_train_begin(self, trainer: Trainer) -> None:
        if self.noise is None:
            self.noise = trainer.gan.sample_noise(self.n, rng=self.rng)
        path = self.path(trainer)
        earlier = read_modes_csv(path) if path.is_file() else []
        self.rows = [row for row in earlier if row["step"] <= trainer.step]
        text = ",".join(MODES_COLUMNS) + "\n" + "".join(_csv_line(row) for row in self.rows)
        write_atomically(path, lambda file: file.write(text.encode()))
        if trainer.step == 0:
            self.measure(trainer)

    def act(self, trainer: Trainer) -> None:
        self.measure(trainer)

    def on_train_end(self, trainer: Trainer) -> None:
        if not self.rows or self.rows[-1]["step"] != trainer.step:
            self.measure(trainer)

    def measure(self, trainer: Trainer) -> dict[str, Any]:
        """Measure the generator as it is now; append the row to the file and return it."""
        z = to_device(self.noise, trainer.device)
        with averaged_generator(trainer.gan):
            points = trainer.gan.generate(z)
        counts = mixture_modes(points, self.mixture.centres, self.mixture.std)
        row = {
            "step": trainer.step,
            "epoch": trainer.epoch,
            "modes": counts.modes_captured,
            "high_quality": float(counts.high_quality),
            "reverse_kl": float(counts.reverse_kl),
        }
        with appending(self.path(trainer)) as handle:
            handle.write(_csv_line(row))
        self.rows.append(row)
        return row

    def summary(self) -> str | None:
        """One line on the last measurement, or None before the first."""
        if not self.rows:
            return None
        row = self.rows[-1]
        kl = "undefined" if math.isnan(row["reverse_kl"]) else f"{row['reverse_kl']:.3f}"
        return (
            f"{row['modes']} of {self.mixture.num_modes} modes, {100 * row['high_quality']:.1f}% "
            f"high-quality samples, reverse KL {kl} at step {row['step']}"
        )


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
