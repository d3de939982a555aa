"""The best generator of a run: kept while it trains, named in warnings, drawn at the end.

A run that measures quality (:class:`tinygan.quality.evaluate.QualityCallback`) hands every row of
scores to :class:`KeepBest`, which keeps the generator of the lowest FID so far as
``<out>/checkpoints/best.npz``: a whole checkpoint (it loads and resumes like any other), whose
metadata's ``best`` holds the step and the scores. It is never rotated away and never picked by
``--resume`` (it may be older than the newest state). :class:`BestGrid` draws it at the end as
``<out>/samples/best.png``, and :func:`best_so_far_line` tells a warning where it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tinygan.backend import to_numpy
from tinygan.run.callbacks import Callback, RowListener, TrainerView
from tinygan.run.checkpoint import (
    BEST_NAME,
    best_checkpoint_info,
    capture_state,
    non_finite_entry,
    write_checkpoint,
)
from tinygan.run.records import CLASS_ACCURACY, QUALITY_METRICS
from tinygan.run.sampling import load_generator
from tinygan.run.train import SampleGrid
from tinygan.viz import save_image_grid


def best_so_far_line(trainer: TrainerView, folder: str = "checkpoints") -> str:
    """Where the best generator so far is, for a warning."""
    best = best_checkpoint_info(trainer.out_dir / folder)
    if best is None:
        return "no best checkpoint yet (use --quality-every to keep one)"
    return (
        f"best checkpoint so far: {trainer.out_dir / folder / BEST_NAME} "
        f"(step {best['step']}, FID {best['fid']:.2f})"
    )


class KeepBest(RowListener):
    """Write ``<out>/<folder>/best.npz`` whenever a quality row has a lower FID than the best so far.

    Parameters
    ----------
    metadata : dict, optional
        The run's checkpoint metadata, stored in ``best.npz`` too (so it loads like any checkpoint).
    folder : str
        Where in the run folder, beside the rotating checkpoints.

    Notes
    -----
    A resumed run carries on with the best FID of the run so far (read back from ``best.npz``), so
    it never overwrites a better generator. A state holding a NaN or an infinity is never kept,
    however it scores, and neither is a row whose FID is not finite.
    """

    def __init__(self, metadata: dict[str, Any] | None = None, folder: str = "checkpoints") -> None:
        self.metadata, self.folder = metadata or {}, folder
        self.best: dict[str, Any] | None = None  # step and scores of the best generator so far

    def path(self, trainer: TrainerView) -> Path:
        return Path(trainer.out_dir) / self.folder / BEST_NAME

    def on_start(self, trainer: TrainerView, earlier: list[dict[str, str]]) -> None:
        self.best = best_checkpoint_info(Path(trainer.out_dir) / self.folder)

    def on_row(self, trainer: TrainerView, row: dict[str, Any]) -> None:
        self.keep_if_best(trainer, row)

    def keep_if_best(self, trainer: TrainerView, row: dict[str, Any]) -> bool:
        """Write ``best.npz`` when ``row`` has a lower FID than the best so far; whether it did."""
        fid = float(row["fid"])
        if not np.isfinite(fid):
            return False
        if self.best is not None and not fid < float(self.best["fid"]):
            return False
        best = {"step": trainer.step, "epoch": trainer.epoch, "n": row["n"]}
        best |= {key: float(row[key]) for key in QUALITY_METRICS}
        if CLASS_ACCURACY in row:  # a conditional run's
            best[CLASS_ACCURACY] = float(row[CLASS_ACCURACY])
        archive = capture_state(trainer.gan, trainer, {**self.metadata, "best": best})
        if non_finite_entry(archive) is not None:
            return False
        path = self.path(trainer)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_checkpoint(path, archive)
        self.best = best
        return True

    def summary(self) -> str | None:
        """One line on the best generator kept, or None."""
        if self.best is None:
            return None
        best = self.best
        classes = ""
        if CLASS_ACCURACY in best:
            classes = f", {100 * best[CLASS_ACCURACY]:.1f}% of the asked-for class"
        return (
            f"best generator: step {best['step']}, FID {best['fid']:.2f}, IS "
            f"{best['inception_score']:.2f}, {best['classes_hit']:g} classes, precision "
            f"{best['precision']:.3f}, recall {best['recall']:.3f}{classes}"
        )


class BestGrid(Callback):
    """At the end of a run, draw the best generator kept as ``<out>/samples/best.png``.

    It uses the run's own fixed noise (that of ``grid``, and its classes, one row each, for a
    conditional GAN), so ``best.png`` compares with every frame of ``samples/``; it is drawn whenever ``best.npz`` exists, also when a resumed run found no
    better generator.

    Parameters
    ----------
    grid : SampleGrid
        The run's sample frames: their noise, layout, image shape and value range.
    best : KeepBest
        Knows where the best checkpoint is. Place this callback after the quality callback that
        feeds ``best``, so that the measurement at the end of the run counts.
    """

    def __init__(self, grid: SampleGrid, best: KeepBest) -> None:
        self.grid, self.best = grid, best
        self.path: Path | None = None  # the PNG, once written

    def on_train_end(self, trainer: TrainerView) -> None:
        best = self.best.path(trainer)
        if not best.is_file() or self.grid.noise is None:
            return
        generator, _, _ = load_generator(best, trainer.device)
        images = to_numpy(generator(self.grid.generator_input(trainer.device)))
        self.path = trainer.out_dir / self.grid.folder / "best.png"
        save_image_grid(
            images.reshape(-1, *self.grid.image_shape),
            self.path,
            self.grid.rows,
            self.grid.cols,
            value_range=self.grid.value_range,
        )
