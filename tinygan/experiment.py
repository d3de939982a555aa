"""Run a preset end to end: flags, seed, data, networks, optimizers, callbacks, training.

The example scripts and the ``tinygan train`` command are thin wrappers around :func:`build_parser` and
:func:`run`, so they accept the same flags and produce the same files::

    <out>/config.json      the preset, the flags and the seed (re-run with --seed to reproduce)
    <out>/log.csv          step, epoch and mean D loss, G loss, D(x), D(G(z)) per logging window
    <out>/samples/*.png    sample grids from a fixed noise batch
    <out>/losses.png       loss curves, drawn at the end (also after Ctrl-C or divergence)

A run stopped by Ctrl-C or by SIGTERM (``kill``, a job scheduler's time limit) saves a checkpoint and a
last sample frame before it exits, and ``--resume`` continues from there.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from tinygan.backend import check_device, make_rng, new_seed
from tinygan.checkpoint import (
    Checkpoint,
    checkpoint_metadata,
    latest_checkpoint,
    read_checkpoint,
    restore_checkpoint,
)
from tinygan.data import (
    BatchIterator,
    CorruptDatasetError,
    DatasetNotFoundError,
    images_to_float,
    load_mnist,
)
from tinygan.models import PRESETS, Preset, get_preset
from tinygan.train import Callback, PixelHistograms, SampleGrid, Trainer

#: presets that train on 28x28 images (the 1-D preset "001" has its own example script)
IMAGE_PRESETS = sorted(
    name for name, preset in PRESETS.items() if np.prod(preset.data_shape) == 28 * 28
)


def build_parser(
    description: str, presets: list[str], default_preset: str
) -> argparse.ArgumentParser:
    """The flags shared by every example and by ``tinygan train``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--preset", choices=presets, default=default_preset, help="seed system to train"
    )
    parser.add_argument(
        "--iterations", type=int, help="training steps (default: the preset's full run)"
    )
    parser.add_argument("--epochs", type=int, help="passes over the data (instead of --iterations)")
    parser.add_argument(
        "--batch-size", type=int, help="real images per step (default: the preset's)"
    )
    parser.add_argument(
        "--lr", type=float, help="learning rate of both networks (default: the preset's)"
    )
    parser.add_argument("--seed", type=int, help="random seed (default: a fresh one, printed)")
    parser.add_argument("--out", type=Path, help="output folder (default: runs/<preset>)")
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="folder with the IDX files (default: $TINYGAN_DATA or ~/.cache/tinygan)",
    )
    parser.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default="mnist")
    parser.add_argument(
        "--split", choices=["train", "test"], default="train", help="which split to train on"
    )
    parser.add_argument(
        "--subset", type=int, help="train on the first N images only (quick experiments)"
    )
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument(
        "--sample-every",
        type=int,
        help="sample-grid interval in the preset's unit (steps or epochs)",
    )
    parser.add_argument("--log-every", type=int, default=50, help="steps between log lines")
    parser.add_argument(
        "--resume", action="store_true", help="continue from the latest checkpoint in --out"
    )
    parser.add_argument(
        "--quality-every",
        type=int,
        help="log classifier FID, IS, coverage, precision and recall of 2,000 samples to quality.csv "
        "every N steps (the first use trains the dataset's classifier, which takes minutes)",
    )
    parser.add_argument("--no-download", action="store_true", help="never download the dataset")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def configure(preset: Preset, args: argparse.Namespace) -> Preset:
    """The preset with the flags that override it applied."""
    overrides: dict[str, Any] = {}
    if args.batch_size is not None:
        overrides["batch_size"] = args.batch_size
    if args.lr is not None:
        overrides["g_lr"] = overrides["d_lr"] = args.lr
    if args.sample_every is not None:
        overrides["sample_every"] = args.sample_every
    if args.iterations is not None and args.epochs is not None:
        raise SystemExit("give --iterations or --epochs, not both")
    if args.iterations is not None:
        overrides.update(steps=args.iterations, epochs=None)
    if args.epochs is not None:
        overrides.update(epochs=args.epochs, steps=None)
    return replace(preset, **overrides)


def load_training_data(preset: Preset, args: argparse.Namespace) -> np.ndarray:
    """Images of the chosen dataset and split, scaled to the generator's output range and shaped like it."""
    try:
        images, _ = load_mnist(
            args.split, args.data_dir, args.dataset, download=not args.no_download
        )
    except (DatasetNotFoundError, CorruptDatasetError) as error:
        raise SystemExit(f"tinygan: {error}") from None
    if args.subset is not None:
        if not 0 < args.subset <= len(images):
            raise SystemExit(
                f"tinygan: --subset must be between 1 and {len(images)}, got {args.subset}"
            )
        images = images[: args.subset]
    data = images_to_float(images, preset.value_range)
    return data.reshape(len(data), *preset.data_shape)


def quality_callback(preset: Preset, args: argparse.Namespace) -> Callback:
    """Quality metrics every ``--quality-every`` steps, against the dataset's held-out real images."""
    from tinygan.classifier import classifier_data, load_classifier
    from tinygan.evaluate import QualityCallback, QualityEvaluator, reference_images

    data = classifier_data(
        args.dataset, args.data_dir, download=False
    )  # what training found on disk
    reference, _ = reference_images(data, None, args.data_dir)
    evaluator = QualityEvaluator(load_classifier(data), reference)
    return QualityCallback(args.quality_every, evaluator, preset)


def resume_seed(checkpoint_dir: Path, preset: Preset, seed: int | None) -> tuple[Path, int]:
    """The latest checkpoint in ``checkpoint_dir`` and the seed its run used (checked against the flags)."""
    latest = latest_checkpoint(checkpoint_dir)
    if latest is None:
        raise SystemExit(f"tinygan: --resume: no checkpoint in {checkpoint_dir}")
    metadata = checkpoint_metadata(read_checkpoint(latest))
    if metadata.get("preset") != preset.name:
        raise SystemExit(
            f"tinygan: --resume: {latest} is a checkpoint of preset {metadata.get('preset')!r}"
        )
    if seed is not None and seed != metadata["seed"]:
        raise SystemExit(f"tinygan: --resume: the run used seed {metadata['seed']}, not {seed}")
    return latest, int(metadata["seed"])


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Inside this block SIGTERM stops training the way Ctrl-C does, so the run's state is saved."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set signal handlers
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(args: argparse.Namespace) -> Trainer:
    """Train ``args.preset`` as the flags say; returns the trainer (its gan, step and out_dir)."""
    preset = configure(get_preset(args.preset), args)
    device = check_device(args.device)
    out_dir = args.out or Path("runs") / preset.name
    checkpoint_dir = out_dir / "checkpoints"
    resume_from = None
    if args.resume:
        resume_from, seed = resume_seed(checkpoint_dir, preset, args.seed)
    else:
        seed = new_seed() if args.seed is None else args.seed
    print(f"tinygan: preset {preset.name} ({preset.description})")
    print(f"tinygan: seed {seed}  (pass --seed {seed} to repeat this run)")
    init_seed, data_seed, noise_seed, sample_seed = np.random.SeedSequence(seed).spawn(4)

    data = load_training_data(preset, args)
    batches = BatchIterator(data, preset.batch_size, np.random.default_rng(data_seed))
    steps = preset.steps if preset.steps is not None else preset.epochs * batches.steps_per_epoch
    print(
        f"tinygan: {len(data)} {args.dataset} {args.split} images, {steps} steps of batch {preset.batch_size}"
    )
    noise_rng = make_rng(int(noise_seed.generate_state(1)[0]), device)
    gan = preset.make_gan(np.random.default_rng(init_seed), noise_rng, device)

    out_dir.mkdir(parents=True, exist_ok=True)
    metadata = {
        "preset": preset.name,
        "seed": seed,
        "device": device,
        "dataset": args.dataset,
        "split": args.split,
    }
    config = {
        **metadata,
        "preset_settings": {k: v for k, v in asdict(preset).items() if k != "build"},
    }
    (out_dir / "config.json").write_text(json.dumps(config, indent=2, default=str) + "\n")

    sample_rng = np.random.default_rng(sample_seed)
    callbacks: list[Callback] = [
        SampleGrid(
            preset.sample_every,
            *preset.sample_grid,
            image_shape=(28, 28),
            value_range=preset.value_range,
            rng=sample_rng,
            unit=preset.sample_unit,
            make_gif=preset.make_gif,
        ),
        Checkpoint(preset.checkpoint_every, "epoch", metadata),
    ]
    if args.quality_every:
        callbacks.append(quality_callback(preset, args))
    if preset.pixel_histograms:
        real = data[sample_rng.choice(len(data), size=min(len(data), 256), replace=False)]
        callbacks.append(PixelHistograms(real, preset.value_range, sample_rng))
    trainer = Trainer(
        gan,
        batches,
        out_dir,
        device,
        callbacks,
        log_every=args.log_every,
        progress=not args.no_progress,
    )
    if resume_from is not None:
        restore_checkpoint(resume_from, gan, trainer)
        print(f"tinygan: resumed from {resume_from} at step {trainer.step} (epoch {trainer.epoch})")
    try:
        with sigterm_as_interrupt():
            trainer.fit(steps)
    except KeyboardInterrupt:
        print(
            f"\ntinygan: interrupted at step {trainer.step}; logs, samples and a checkpoint are in "
            f"{out_dir} (continue with --resume)",
            file=sys.stderr,
        )
        raise SystemExit(130) from None
    print(f"tinygan: done, {trainer.step} steps; outputs in {out_dir}")
    return trainer


def main(
    argv: list[str] | None = None, default_preset: str = "000", presets: list[str] | None = None
) -> Trainer:
    """Parse flags and run (the body of every example script)."""
    presets = presets or IMAGE_PRESETS
    parser = build_parser(__doc__.splitlines()[0], presets, default_preset)
    return run(parser.parse_args(argv))
