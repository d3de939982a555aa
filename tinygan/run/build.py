"""Build a run's parts from its settings: the data, the GAN (with its moving average), the
callbacks and the trainer; and, with ``--resume``, load the checkpoint into them.

Everything here reads the typed fields of a :class:`~tinygan.run.settings.RunSettings`. A mistake
that only the data or the checkpoint reveals (``--subset`` larger than the data, a checkpoint of
another shape) is a :class:`~tinygan.run.settings.RunRefused`, as a mistake in the flags is.

One seed makes the whole run: it is split into four independent streams (weights, data order,
noise, sample grids), so that, for instance, drawing more sample grids never changes the weights;
a Stacked MNIST run draws its images from a fifth (:func:`stacking_rng`).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinygan.backend import make_rng, to_device
from tinygan.data import (
    MIXTURES,
    BatchIterator,
    CorruptDatasetError,
    DatasetNotFoundError,
    LabelledBatches,
    bundled_mnist_dir,
    find_dataset_files,
    images_to_float,
    load_mnist_or_bundled,
    mixture_batches,
)
from tinygan.data.mnist import DISPLAY_NAMES
from tinygan.data.stacked_mnist import stack_digits
from tinygan.ema import EMA
from tinygan.gan import GAN
from tinygan.run.alarms import LossAlarm
from tinygan.run.checkpoint import Checkpoint, apply_state, checkpoint_metadata, find_resumable
from tinygan.run.flags import DATA_FLAGS
from tinygan.run.mixture_run import MODES_EVERY, MixtureModeMeasures, ModeMeasures, ScatterFrames
from tinygan.run.settings import RunRefused, RunSettings, recorded_settings
from tinygan.run.stacked_run import STACKED_MODES_EVERY, StackedModeMeasures
from tinygan.run.train import Callback, LossCurves, PixelHistograms, SampleGrid, Trainer

#: Without ``--quality-every``, a run of at least this many steps measures quality on its own,
#: :data:`AUTO_QUALITY_TIMES` times (one measurement of 2,000 samples takes about a second on 2
#: cores, so five cost a few percent of such a run).
AUTO_QUALITY_MIN_STEPS = 1000
AUTO_QUALITY_TIMES = 5


@dataclass(frozen=True)
class RunCallbacks:
    """The run's callbacks in the order the trainer calls them (``ordered``), and those the end
    of the run reports on."""

    ordered: list[Callback]
    checkpoint: Checkpoint
    quality: Any = None  # a QualityCallback when quality is measured
    best_grid: Any = None  # the BestGrid, whose KeepBest listens to the quality rows
    measures: ModeMeasures | None = None  # a 2-D mixture or Stacked MNIST run's mode counts


@dataclass
class RunParts:
    """A run ready to train: its settings (with where its data was found), length and parts."""

    settings: RunSettings
    steps: int
    gan: GAN
    trainer: Trainer
    callbacks: RunCallbacks


@dataclass(frozen=True)
class ResumePoint:
    """The checkpoint ``--resume`` continues from, and the settings its run recorded."""

    path: Path
    archive: dict[str, np.ndarray] = field(repr=False)
    recorded: dict[str, Any]


def build_run(settings: RunSettings, out_dir: Path) -> RunParts:
    """The data, the GAN, the callbacks and the trainer of a run, as ``settings`` say.

    Prints the data and the length of the run. Raises :class:`RunRefused` when the data does not
    fit the settings, or the network does not fit the chosen gradient penalty.
    """
    preset = settings.configured_preset
    init_seed, data_seed, noise_seed, sample_seed = np.random.SeedSequence(settings.seed).spawn(4)
    data_rng = np.random.default_rng(data_seed)
    images = None
    if preset.mixture:
        batch = preset.batch_size * preset.pack
        batches = mixture_batches(MIXTURES[preset.mixture], batch, data_rng, device=settings.device)
        count = len(batches.data)
    else:
        images, labels, settings = load_labelled_training_data(settings)
        # the dataset goes to the device once: the batches are then cut there, not copied every step
        device_images, batch = to_device(images, settings.device), preset.batch_size * preset.pack
        if preset.conditional:  # the labels go with the images, to the device and into each batch
            device_labels = to_device(labels, settings.device)
            batches = LabelledBatches(device_images, device_labels, batch, data_rng)
        else:
            batches = BatchIterator(device_images, batch, data_rng)
        count = len(images)
    steps = preset.steps if preset.steps is not None else preset.epochs * batches.steps_per_epoch
    packs = f" packs of {preset.pack}" if preset.pack > 1 else ""
    classes = f", conditional on their {preset.classes} classes" if preset.conditional else ""
    spread = ", D sees each batch's spread (minibatch std)" if preset.minibatch_std else ""
    print(
        f"tinygan: {describe_data(settings, count)}{classes}, {steps} steps of batch "
        f"{preset.batch_size}{packs}{spread}"
    )
    gan = build_gan(settings, init_seed, noise_seed)
    callbacks = make_callbacks(settings, steps, images, sample_seed)
    trainer = Trainer(
        gan,
        batches,
        out_dir,
        settings.device,
        callbacks.ordered,
        log_every=settings.log_every,
        progress=not settings.no_progress,
    )
    return RunParts(settings, steps, gan, trainer, callbacks)


def load_training_data(settings: RunSettings) -> tuple[np.ndarray, RunSettings]:
    """Images of the chosen dataset and split, scaled to the generator's output range and shaped
    like it, and the settings with where they were found (:meth:`RunSettings.trained_on`); see
    :func:`load_labelled_training_data`."""
    images, _, settings = load_labelled_training_data(settings)
    return images, settings


def load_labelled_training_data(
    settings: RunSettings,
) -> tuple[np.ndarray, np.ndarray, RunSettings]:
    """Images of the chosen dataset and split, scaled to the generator's output range and shaped
    like it, their labels (int64 classes, (N,)), and the settings with where they were found
    (:meth:`RunSettings.trained_on`). ``--subset`` keeps the first N of both.

    Where MNIST is neither on disk nor downloadable and no ``--data-dir`` was named, the test split
    bundled with tinygan stands in (with a notice), and the settings record it, so that
    ``--resume`` trains on the very same images. A Stacked MNIST preset stacks the split's digits
    into as many images, three at random to each (:func:`tinygan.data.stack_digits`, drawn from
    :func:`stacking_rng`), labelled with their modes, 0..999.
    """
    preset = settings.configured_preset
    images, labels, folder, bundled = read_training_images(settings)
    settings = settings.trained_on(os.path.abspath(folder), bundled)
    if preset.stacked:
        images, labels = stack_digits(images, labels, len(images), stacking_rng(settings.seed))
    subset = settings.subset
    if subset is not None:
        if subset > len(images):
            raise RunRefused(f"--subset {subset}: there are only {len(images)} images")
        images, labels = images[:subset], labels[:subset]
    if preset.batch_size * preset.pack > len(images):
        source = f"--subset {subset}" if subset is not None else f"the {len(images)} images"
        if preset.pack == 1:
            raise RunRefused(
                f"--batch-size {preset.batch_size} is larger than {source}: one batch needs "
                f"{preset.batch_size} images"
            )
        raise RunRefused(
            f"--batch-size {preset.batch_size} with --pack {preset.pack} takes "
            f"{preset.batch_size * preset.pack} images a step, more than {source}"
        )
    data = images_to_float(images, preset.value_range)
    return data.reshape(len(data), *preset.data_shape), labels.astype(np.int64), settings


def stacking_rng(seed: int) -> np.random.Generator:
    """The stream that stacks a Stacked MNIST run's digits: the fifth child of the run's seed,
    beside the four of :func:`build_run` (a spawned child does not depend on how many are
    spawned), so that the same seed, and ``--resume``, stack the same images."""
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(5)[4])


def read_training_images(settings: RunSettings) -> tuple[np.ndarray, np.ndarray, Path, bool]:
    """The split's images and labels as stored, the folder they came from, and whether they are
    the digits bundled with tinygan (which a run that started on them always reads)."""
    data_dir, split = settings.data_dir, settings.split
    if settings.bundled_data:
        data_dir, split = bundled_mnist_dir(), "test"
    try:
        images, labels, notice = load_mnist_or_bundled(
            split,
            data_dir,
            settings.dataset,
            download=not settings.no_download,
            allow_bundled=data_dir is None,
            option_names=DATA_FLAGS,
        )
    except DatasetNotFoundError as error:
        raise RunRefused(error.describe(DATA_FLAGS)) from None
    except CorruptDatasetError as error:
        raise RunRefused(str(error)) from None
    if notice is not None:
        print(f"tinygan: {notice}")
        return images, labels, bundled_mnist_dir(), True
    folder = find_dataset_files(split, data_dir, settings.dataset)[0].parent
    return images, labels, folder, False


def describe_data(settings: RunSettings, count: int) -> str:
    """The data a run trains on, in words: "10,000 bundled MNIST test digits", "the first 512
    MNIST train images from /data/mnist" (once the data is loaded); "100,000 points of the 2-D
    ring (8 Gaussians, standard deviation 0.01)" for a mixture."""
    if settings.dataset in MIXTURES:
        mixture = MIXTURES[settings.dataset]
        return (
            f"{count:,} points of the 2-D {mixture.name} ({mixture.num_modes} Gaussians, standard "
            f"deviation {mixture.std:g})"
        )
    first = "the first " if settings.subset is not None else ""
    if settings.configured_preset.stacked:
        source = f"MNIST {settings.split} digits from {settings.data_folder}"
        if settings.bundled_data:
            source = "bundled MNIST test digits"
        return f"{first}{count:,} Stacked MNIST images of {source}"
    if settings.bundled_data:
        return f"{first}{count:,} bundled MNIST test digits"
    name = DISPLAY_NAMES[settings.dataset]
    return f"{first}{count:,} {name} {settings.split} images from {settings.data_folder}"


def build_gan(settings: RunSettings, init_seed: Any, noise_seed: Any) -> GAN:
    """The networks, their optimizers and the noise generator, with the generator's moving
    average when ``--ema`` asks for one (the seeds: :class:`numpy.random.SeedSequence`)."""
    preset = settings.configured_preset
    noise_rng = make_rng(int(noise_seed.generate_state(1)[0]), settings.device)
    try:
        gan = preset.make_gan(np.random.default_rng(init_seed), noise_rng, settings.device)
    except ValueError as error:
        if preset.penalty is None:
            raise
        # a layer without the second backward pass the penalty needs
        raise RunRefused(f"--penalty {preset.penalty}: {error}") from None
    if settings.ema is not None:
        gan.ema = EMA(gan.generator, settings.ema)  # a resume then loads the saved average
    return gan


def make_callbacks(
    settings: RunSettings, steps: int, images: np.ndarray | None, sample_seed: Any
) -> RunCallbacks:
    """Every callback of the run, in the order the trainer calls them: the one place they are made.

    ``images`` are the training images (a mixture run has none), for the pixel histograms.
    """
    preset = settings.configured_preset
    metadata = settings.checkpoint_metadata()
    sample_rng = np.random.default_rng(sample_seed)
    measures = mode_measures(settings, sample_seed)
    if preset.mixture:
        mixture = MIXTURES[preset.mixture]
        unit, gif = preset.sample_unit, preset.make_gif
        frames: SampleGrid = ScatterFrames(
            preset.sample_every, mixture, sample_rng, unit=unit, make_gif=gif
        )
    else:
        rows, cols = preset.sample_grid
        frames = SampleGrid(
            preset.sample_every,
            preset.classes or rows,  # a conditional GAN's grid: one row per class
            cols,
            image_shape=preset.image_shape,
            value_range=preset.value_range,
            rng=sample_rng,
            unit=preset.sample_unit,
            make_gif=preset.make_gif,
            first=preset.sample_first,
            classes=preset.classes,
        )
    checkpoint = Checkpoint(
        preset.checkpoint_every,
        "epoch",
        metadata,
        every_steps=settings.checkpoint_every,
        every_seconds=settings.checkpoint_seconds or None,
        keep=settings.keep_checkpoints,
    )
    quality = best_grid = histograms = None
    counted = preset.mixture or preset.stacked  # modes are counted instead of quality measured
    quality_every = None if counted else quality_interval(settings, steps)
    if quality_every:
        from tinygan.quality.evaluate import QualityCallback
        from tinygan.run.alarms import CollapseAlarm
        from tinygan.run.best import BestGrid, KeepBest

        # each measured row goes to the best-keeper first, so that an alarm names the newest best
        best = KeepBest(metadata)
        evaluator = quality_evaluator(settings)
        quality = QualityCallback(
            quality_every, evaluator, preset, listeners=[best, CollapseAlarm()]
        )
        best_grid = BestGrid(frames, best)
    if preset.pixel_histograms:
        real = images[sample_rng.choice(len(images), size=min(len(images), 256), replace=False)]
        histograms = PixelHistograms(real, preset.value_range, sample_rng)
    # the loss curves first: they are drawn even if a later callback's last write fails
    made = (LossCurves(), frames, checkpoint, LossAlarm(), measures, quality, best_grid, histograms)
    ordered = [callback for callback in made if callback is not None]
    return RunCallbacks(ordered, checkpoint, quality, best_grid, measures)


def mode_measures(settings: RunSettings, sample_seed: Any) -> ModeMeasures | None:
    """The mode counts of a run on a 2-D mixture or on Stacked MNIST; None for the other runs.

    They draw their latent vectors from a generator of their own with the sample grids' seed, so
    that the frames show the first of the samples they count.
    """
    preset = settings.configured_preset
    rng = np.random.default_rng(sample_seed)
    if preset.mixture:
        every = settings.modes_every or MODES_EVERY
        return MixtureModeMeasures(every, MIXTURES[preset.mixture], rng)
    if preset.stacked:
        return stacked_measures(settings, rng)
    return None


def stacked_measures(settings: RunSettings, rng: np.random.Generator) -> StackedModeMeasures:
    """The mode counts of a Stacked MNIST run, every ``--modes-every`` steps (by default
    :data:`~tinygan.run.stacked_run.STACKED_MODES_EVERY`), each channel read by the quality
    classifier of MNIST (the shipped one, or one trained on more digits)."""
    from tinygan.quality.classifier import choose_classifier

    data_dir = bundled_mnist_dir() if settings.bundled_data else settings.data_dir
    classifier = choose_classifier("mnist", data_dir).classifier
    every = settings.modes_every or STACKED_MODES_EVERY
    return StackedModeMeasures(every, classifier, rng, settings.configured_preset.value_range)


def quality_interval(settings: RunSettings, steps: int) -> int | None:
    """Steps between quality measurements: ``--quality-every``, else a few per run when the run
    is long enough, else None."""
    if settings.no_quality:
        return None
    if settings.quality_every:
        return settings.quality_every
    if steps < AUTO_QUALITY_MIN_STEPS:
        return None
    every = -(-steps // AUTO_QUALITY_TIMES)
    print(
        f"tinygan: measuring sample quality {AUTO_QUALITY_TIMES} times, every {every} steps "
        "(--quality-every N to choose, --no-quality to skip)"
    )
    return every


def quality_evaluator(settings: RunSettings) -> Any:
    """What scores the samples: the chosen classifier, against real images it never saw, of the
    data the run trains on (the bundled digits for a run on them), with their labels (the real
    images' class accuracy, beside a conditional run's)."""
    from tinygan.quality.classifier import choose_classifier
    from tinygan.quality.evaluate import QualityEvaluator

    data_dir = bundled_mnist_dir() if settings.bundled_data else settings.data_dir
    chosen = choose_classifier(settings.dataset, data_dir)
    data = chosen.data
    return QualityEvaluator(
        chosen.classifier, data.heldout_images, reference_labels=data.heldout_labels
    )


def find_resume_point(prog: str, checkpoint_dir: Path) -> ResumePoint:
    """The newest intact, finite checkpoint in ``checkpoint_dir``; each one skipped is named on
    stderr. Raises :class:`RunRefused` when there is none."""
    path, archive, skipped = find_resumable(checkpoint_dir)
    for line in skipped:
        print(f"{prog}: --resume: skipped {line}", file=sys.stderr)
    if archive is None:
        raise RunRefused(f"--resume: no usable checkpoint in {checkpoint_dir}")
    return ResumePoint(path, archive, recorded_settings(checkpoint_metadata(archive)))


def resume_run(parts: RunParts, point: ResumePoint, changes: dict[str, Any]) -> None:
    """Load the checkpoint into the built run, with the learning rate a resume changed; refuses a
    checkpoint that does not fit, or a run already at its last step."""
    trainer = parts.trainer
    try:
        apply_state(point.archive, parts.gan, trainer)
    except (KeyError, ValueError) as error:
        raise RunRefused(f"--resume: {point.path} does not fit this run ({error})") from None
    if "lr" in changes:
        parts.gan.g_optimizer.lr = parts.gan.d_optimizer.lr = parts.settings.lr
    if trainer.step >= parts.steps:
        raise RunRefused(
            f"--resume: the run in {trainer.out_dir} is at step {trainer.step} of {parts.steps}; "
            "pass a larger --iterations or --epochs to train it further"
        )
    print(f"tinygan: resumed from {point.path} at step {trainer.step} (epoch {trainer.epoch})")
