"""Run a preset end to end: flags, seed, data, networks, optimizers, callbacks, training.

The example scripts and the ``tinygan train`` command are thin wrappers around :func:`main`, so they
accept the same flags (:mod:`tinygan.flags`) and produce the same files (``<out>`` is ``--out``, by
default ``runs/<preset name>``, e.g. ``runs/mlp-tf``)::

    <out>/config.json          every setting of the run (flags, data folder, subset, seed), and each resume
    <out>/log.csv              step, epoch and mean D loss, G loss, D(x), D(G(z)) per logging window
    <out>/samples/*.png        sample grids from a fixed noise batch
    <out>/checkpoints/*.npz    the newest few checkpoints (every minute, on the preset's schedule, at the end)
    <out>/checkpoints/best.npz the generator with the lowest FID so far (when quality is measured)
    <out>/quality.csv          FID, IS, coverage, precision, recall every --quality-every steps
                               (without it: 5 times in a run of 1,000 steps or more), judged by
                               the classifier shipped with tinygan or one trained on more data
    <out>/warnings.csv         collapse and "D is winning" warnings (each kind once per run)
    <out>/losses.png           loss curves, drawn at the end (also after Ctrl-C or divergence)
    <out>/discriminator_outputs.png    mean D(x) and D(G(z)) over training, drawn with the curves
    <out>/samples/best.png     the best generator's grid, drawn at the end (when quality is measured)

How a run ends, and its exit code: 0 done; 2 a mistake in the flags or the data, reported in one line
before training starts; 3 training diverged (rolled back to its last finite state, which is saved);
130 stopped by Ctrl-C or SIGTERM (at the end of the step in progress; a second Ctrl-C stops at once).
``--resume`` continues from the newest checkpoint that is intact and finite.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from tinygan.alarms import LossAlarm
from tinygan.atomic import write_atomically
from tinygan.backend import make_rng, new_seed, to_device
from tinygan.checkpoint import (
    Checkpoint,
    apply_state,
    checkpoint_metadata,
    find_resumable,
)
from tinygan.data import (
    BatchIterator,
    CorruptDatasetError,
    DatasetNotFoundError,
    OptionNames,
    bundled_mnist_dir,
    find_dataset_files,
    images_to_float,
    load_mnist_or_bundled,
)
from tinygan.ema import EMA
from tinygan.flags import (
    check_gpu,
    check_writable_folder,
    one_line_errors,
    training_parser,
    usage_error,
)
from tinygan.models import PRESETS, Preset, get_preset
from tinygan.train import (
    Callback,
    LossCurves,
    NonFiniteLossError,
    PixelHistograms,
    SampleGrid,
    Trainer,
)

#: Presets that train on 28x28 images (the 1-D Gaussian GAN has its own example script).
IMAGE_PRESETS = [name for name, preset in PRESETS.items() if preset.image_size == (28, 28)]

#: What a fresh run uses for a flag that was not given (the preset decides the rest).
DEFAULTS: dict[str, Any] = {
    "dataset": "mnist",
    "split": "train",
    "device": "cpu",
    "log_every": 50,
    "checkpoint_seconds": 60.0,
    "keep_checkpoints": 3,
}
#: Settings that make a run what it is: ``--resume`` refuses a different value for any of them.
RUN_IDENTITY = (
    "preset",
    "seed",
    "dataset",
    "split",
    "subset",
    "batch_size",
    "device",
    "ema",
    "simultaneous",
    "inference_fakes",
)
#: Settings ``--resume`` may change; config.json records the change.
ADJUSTABLE = (
    "iterations",
    "epochs",
    "lr",
    "data_dir",
    "no_download",
    "sample_every",
    "log_every",
    "checkpoint_every",
    "checkpoint_seconds",
    "keep_checkpoints",
    "quality_every",
    "no_quality",
    "no_progress",
)
#: What a run writes into its folder; ``--overwrite`` deletes exactly these.
RUN_OUTPUTS = (
    "config.json",
    "log.csv",
    "quality.csv",
    "warnings.csv",
    "losses.png",
    "discriminator_outputs.png",
    "pixel_histogram_before.png",
    "pixel_histogram_after.png",
    "training.gif",
    "samples",
    "checkpoints",
)
EXIT_DIVERGED, EXIT_INTERRUPTED = 3, 130


def configure(preset: Preset, settings: dict[str, Any]) -> Preset:
    """The preset with the settings that override it applied."""
    overrides: dict[str, Any] = {}
    if settings.get("batch_size") is not None:
        overrides["batch_size"] = settings["batch_size"]
    if settings.get("lr") is not None:
        overrides["g_lr"] = overrides["d_lr"] = settings["lr"]
    if settings.get("sample_every") is not None:
        overrides["sample_every"] = settings["sample_every"]
    for rule in ("simultaneous", "inference_fakes"):
        if settings.get(rule):
            overrides[rule] = True
    if settings.get("iterations") is not None:
        overrides.update(steps=settings["iterations"], epochs=None)
    if settings.get("epochs") is not None:
        overrides.update(epochs=settings["epochs"], steps=None)
    return replace(preset, **overrides)


def check_output_folder(prog: str, out_dir: Path, resume: bool, overwrite: bool) -> None:
    """Refuse an output folder that cannot be written, or that holds another run, before any work."""
    if resume and overwrite:
        usage_error(
            prog, "--resume continues the run in --out and --overwrite deletes it: not both"
        )
    check_writable_folder(prog, out_dir)
    existing = [name for name in RUN_OUTPUTS if (out_dir / name).exists()]
    if resume or not existing:
        return
    if not overwrite:
        usage_error(
            prog,
            f"--out {out_dir} holds another run ({', '.join(existing)}): pass --resume to continue "
            "it, or --overwrite to delete it and start again",
        )
    for name in existing:
        path = out_dir / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def recorded_settings(metadata: dict[str, Any]) -> dict[str, Any]:
    """The settings a checkpoint's run was started with (older checkpoints record fewer).

    Runs from before the presets had names record an alias ("003"); it is read as the name
    ("dcgan-tf"), so that ``--resume --preset dcgan-tf`` continues such a run.
    """
    if "settings" in metadata:
        settings = dict(metadata["settings"])
    else:
        keys = ("preset", "seed", "dataset", "split", "device")
        settings = {k: metadata[k] for k in keys if k in metadata}
    if settings.get("preset") in PRESETS:
        settings["preset"] = PRESETS[settings["preset"]].name
    return settings


def resume_settings(
    prog: str, given: dict[str, Any], recorded: dict[str, Any], source: Path
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Merge the flags given with ``--resume`` into the run's recorded settings.

    Returns the settings to continue with and the changes made (for config.json). A flag that would
    change what the run is (its seed, data or batch size) is refused with the reason.
    """
    for name in RUN_IDENTITY:
        value = given.get(name)
        if value is not None and name in recorded and value != recorded[name]:
            flag = "--" + name.replace("_", "-")
            usage_error(
                prog,
                f"{flag} {value}: the run in {source} was started with {recorded[name]}, and "
                f"--resume continues it as it was (train into another --out to change {flag})",
            )
    changes = {}
    for name in ADJUSTABLE:
        value = given.get(name)
        if value is not None and value is not False and value != recorded.get(name):
            changes[name] = value
    if recorded.get("bundled_data") and "data_dir" in changes:
        usage_error(
            prog,
            f"--data-dir {changes['data_dir']}: the run in {source} trained on the MNIST test digits "
            "bundled with tinygan, and --resume continues with them (train into another --out to "
            "use other data)",
        )
    settings = {**DEFAULTS, **recorded, **changes}
    if "iterations" in changes:
        settings["epochs"] = None
    if "epochs" in changes:
        settings["iterations"] = None
    return settings, changes


def fresh_settings(given: dict[str, Any]) -> dict[str, Any]:
    """The settings of a new run: the flags given, defaults for the rest, a fresh seed if none."""
    settings = {**given, **{k: v for k, v in DEFAULTS.items() if given.get(k) is None}}
    if settings.get("seed") is None:
        settings["seed"] = new_seed()
    return settings


#: How data messages name the options, from the command line.
DATA_FLAGS = OptionNames(
    data_dir="--data-dir DIR",
    split="--split {}",
    download_off="--no-download",
    download_on="leave out --no-download",
)


def load_training_data(prog: str, preset: Preset, settings: dict[str, Any]) -> np.ndarray:
    """Images of the chosen dataset and split, scaled to the generator's output range and shaped like it.

    Where MNIST is neither on disk nor downloadable and no ``--data-dir`` was named, the test split
    bundled with tinygan stands in (with a notice), and ``settings["bundled_data"]`` records it, so
    that ``--resume`` trains on the very same images.
    """
    data_dir, split = settings.get("data_dir"), settings["split"]
    if settings.get("bundled_data"):
        data_dir, split = bundled_mnist_dir(), "test"
    try:
        images, _, notice = load_mnist_or_bundled(
            split,
            data_dir,
            settings["dataset"],
            download=not settings.get("no_download"),
            allow_bundled=data_dir is None,
            option_names=DATA_FLAGS,
        )
    except DatasetNotFoundError as error:
        print(f"{prog}: error: {error.describe(DATA_FLAGS)}", file=sys.stderr)
        raise SystemExit(2) from None
    except CorruptDatasetError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    if notice is not None:
        print(f"tinygan: {notice}")
        settings["bundled_data"] = True
        folder = bundled_mnist_dir()
    else:
        folder = find_dataset_files(split, data_dir, settings["dataset"])[0].parent
    settings["data_folder"] = str(folder)
    subset = settings.get("subset")
    if subset is not None:
        if subset > len(images):
            usage_error(prog, f"--subset {subset}: there are only {len(images)} images")
        images = images[:subset]
    if preset.batch_size > len(images):
        source = f"--subset {subset}" if subset is not None else f"the {len(images)} images"
        usage_error(
            prog,
            f"--batch-size {preset.batch_size} is larger than {source}: one batch needs "
            f"{preset.batch_size} images",
        )
    data = images_to_float(images, preset.value_range)
    return data.reshape(len(data), *preset.data_shape)


#: Without ``--quality-every``, a run of at least this many steps measures quality on its own,
#: :data:`AUTO_QUALITY_TIMES` times (one measurement of 2,000 samples takes about a second on 2
#: cores, so five cost a few percent of such a run).
AUTO_QUALITY_MIN_STEPS = 1000
AUTO_QUALITY_TIMES = 5


def quality_interval(settings: dict[str, Any], steps: int) -> int | None:
    """Steps between quality measurements: ``--quality-every``, else a few per run when the run
    is long enough, else None."""
    if settings.get("no_quality"):
        return None
    if settings.get("quality_every"):
        return settings["quality_every"]
    if steps < AUTO_QUALITY_MIN_STEPS:
        return None
    every = -(-steps // AUTO_QUALITY_TIMES)
    print(
        f"tinygan: measuring sample quality {AUTO_QUALITY_TIMES} times, every {every} steps "
        "(--quality-every N to choose, --no-quality to skip)"
    )
    return every


def quality_data_dir(settings: dict[str, Any]) -> Any:
    """Where training found its data, for the quality classifier and its reference images."""
    return bundled_mnist_dir() if settings.get("bundled_data") else settings.get("data_dir")


def quality_callbacks(
    preset: Preset, settings: dict[str, Any], metadata: dict[str, Any], every: int, grid: SampleGrid
) -> tuple[Any, Any]:
    """Quality metrics every ``every`` steps, against real images the classifier never saw, and the
    best generator's grid at the end (a :class:`QualityCallback` and a :class:`BestGrid`)."""
    from tinygan.classifier import choose_classifier
    from tinygan.evaluate import BestGrid, QualityCallback, QualityEvaluator

    chosen = choose_classifier(settings["dataset"], quality_data_dir(settings))
    evaluator = QualityEvaluator(chosen.classifier, chosen.data.heldout_images)
    quality = QualityCallback(every, evaluator, preset, metadata=metadata)
    return quality, BestGrid(grid, quality)


def write_config(out_dir: Path, config: dict[str, Any]) -> None:
    text = json.dumps(config, indent=2, default=str) + "\n"
    write_atomically(out_dir / "config.json", lambda file: file.write(text.encode()))


def read_config(out_dir: Path) -> dict[str, Any]:
    """The run's config.json, or an empty dict when it is missing or unreadable."""
    try:
        config = json.loads((out_dir / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


@contextlib.contextmanager
def stop_at_step_end(trainer: Trainer) -> Iterator[None]:
    """Inside this block Ctrl-C and SIGTERM end training after the step in progress.

    A second signal stops at once (:class:`KeyboardInterrupt`); the trainer then rolls back to its
    last consistent state before saving, so a half-done step is never written.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set signal handlers
        return

    def request_stop(signum: int, frame: Any) -> None:
        if trainer.stop_requested:
            raise KeyboardInterrupt
        trainer.request_stop()
        # os.write, not print: a signal handler may interrupt a print in progress
        os.write(2, b"\ntinygan: stopping after this step (press Ctrl-C again to stop at once)\n")

    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, request_stop) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def newest_checkpoint_line(checkpoint_dir: Path) -> str:
    """Where the run can be resumed from, checked on disk (so it is true however the run ended)."""
    path, archive, _ = find_resumable(checkpoint_dir)
    if path is None:
        return "no checkpoint was saved"
    step = int(np.asarray(archive["trainer.step"])) if "trainer.step" in archive else "?"
    return f"the newest checkpoint is {path} (step {step}); continue with --resume"


def run(args: argparse.Namespace, prog: str = "tinygan") -> Trainer:
    """Train as the flags say; returns the trainer (its gan, step and out_dir).

    Mistakes in the flags, the data or the output folder end the process with a one-line message
    and exit code 2 (:class:`SystemExit`) before any training.
    """
    given = {
        key: str(value) if isinstance(value, Path) else value
        for key, value in vars(args).items()
        if key not in ("resume", "overwrite", "debug", "default_preset")
    }
    if given.get("quality_every") and given.get("no_quality"):
        usage_error(prog, f"--quality-every {given['quality_every']} and --no-quality: choose one")
    preset_name = get_preset(args.preset or args.default_preset).name
    out_dir = args.out or Path("runs") / preset_name
    check_output_folder(prog, out_dir, args.resume, args.overwrite)
    checkpoint_dir = out_dir / "checkpoints"
    archive = None
    if args.resume:
        resume_from, archive, skipped = find_resumable(checkpoint_dir)
        for line in skipped:
            print(f"{prog}: --resume: skipped {line}", file=sys.stderr)
        if archive is None:
            usage_error(prog, f"--resume: no usable checkpoint in {checkpoint_dir}")
        metadata = checkpoint_metadata(archive)
        recorded = recorded_settings(metadata)
        if args.preset is None:
            given["preset"] = recorded.get("preset", preset_name)
        settings, changes = resume_settings(prog, given, recorded, resume_from)
    else:
        given["preset"] = preset_name
        settings, changes = fresh_settings(given), {}
    preset = configure(get_preset(settings["preset"]), settings)
    if preset.simultaneous and (preset.d_steps, preset.g_steps) != (1, 1):
        usage_error(
            prog,
            f"--simultaneous: preset {preset.name} takes {preset.d_steps} discriminator and "
            f"{preset.g_steps} generator updates per step, and simultaneous updates take one each",
        )
    device, seed = settings["device"], settings["seed"]
    check_gpu(prog, device)
    print(f"tinygan: preset {preset.name} ({preset.description})")
    print(f"tinygan: seed {seed}  (pass --seed {seed} to repeat this run)")
    init_seed, data_seed, noise_seed, sample_seed = np.random.SeedSequence(seed).spawn(4)

    data = load_training_data(prog, preset, settings)
    # the dataset goes to the device once: the batches are then cut there, not copied every step
    batches = BatchIterator(
        to_device(data, device), preset.batch_size, np.random.default_rng(data_seed)
    )
    steps = preset.steps if preset.steps is not None else preset.epochs * batches.steps_per_epoch
    print(
        f"tinygan: {len(data)} {settings['dataset']} {settings['split']} images, {steps} steps of "
        f"batch {preset.batch_size}"
    )
    noise_rng = make_rng(int(noise_seed.generate_state(1)[0]), device)
    gan = preset.make_gan(np.random.default_rng(init_seed), noise_rng, device)
    if settings.get("ema") is not None:
        gan.ema = EMA(gan.generator, settings["ema"])  # a resume then loads the saved average

    metadata = {
        "preset": preset.name,
        "seed": seed,
        "device": device,
        "dataset": settings["dataset"],
        "split": settings["split"],
        "settings": settings,
    }
    sample_rng = np.random.default_rng(sample_seed)
    checkpoint = Checkpoint(
        preset.checkpoint_every,
        "epoch",
        metadata,
        every_steps=settings.get("checkpoint_every"),
        every_seconds=settings["checkpoint_seconds"] or None,
        keep=settings["keep_checkpoints"],
    )
    grid = SampleGrid(
        preset.sample_every,
        *preset.sample_grid,
        image_shape=preset.image_size,
        value_range=preset.value_range,
        rng=sample_rng,
        unit=preset.sample_unit,
        make_gif=preset.make_gif,
    )
    callbacks: list[Callback] = [
        LossCurves(),  # first: the curves are drawn even if a later callback's last write fails
        grid,
        checkpoint,
        LossAlarm(),
    ]
    quality = best_grid = None
    quality_every = quality_interval(settings, steps)
    if quality_every:
        quality, best_grid = quality_callbacks(preset, settings, metadata, quality_every, grid)
        callbacks += [quality, best_grid]
    if preset.pixel_histograms:
        real = data[sample_rng.choice(len(data), size=min(len(data), 256), replace=False)]
        callbacks.append(PixelHistograms(real, preset.value_range, sample_rng))
    trainer = Trainer(
        gan,
        batches,
        out_dir,
        device,
        callbacks,
        log_every=settings["log_every"],
        progress=not settings.get("no_progress"),
    )
    if archive is not None:
        try:
            apply_state(archive, gan, trainer)
        except (KeyError, ValueError) as error:
            usage_error(prog, f"--resume: {resume_from} does not fit this run ({error})")
        if "lr" in changes:
            gan.g_optimizer.lr = gan.d_optimizer.lr = changes["lr"]
        if trainer.step >= steps:
            usage_error(
                prog,
                f"--resume: the run in {out_dir} is at step {trainer.step} of {steps}; pass a larger "
                "--iterations or --epochs to train it further",
            )
        print(f"tinygan: resumed from {resume_from} at step {trainer.step} (epoch {trainer.epoch})")
        config = read_config(out_dir) or {"settings": recorded}
        config.setdefault("resumes", []).append({"step": trainer.step, "changed": changes})
        config.update(settings=settings, steps=steps)
    else:
        config = {
            "preset": preset.name,
            "seed": seed,
            "settings": settings,
            "steps": steps,
            "command": sys.argv,
            "preset_settings": {k: v for k, v in asdict(preset).items() if k != "build"},
        }
    write_config(out_dir, config)

    try:
        # a diverging run overflows before its NaN is caught; it is reported below, not as warnings
        with stop_at_step_end(trainer), np.errstate(over="ignore", invalid="ignore"):
            trainer.fit(steps)
    except KeyboardInterrupt:
        print(
            f"\n{prog}: interrupted at step {trainer.step}; {newest_checkpoint_line(checkpoint_dir)}",
            file=sys.stderr,
        )
        raise SystemExit(EXIT_INTERRUPTED) from None
    except NonFiniteLossError as error:
        kept = (
            f"rolled back to step {trainer.step}, the last finite state, saved as "
            f"{checkpoint.saved[-1]}"
            if checkpoint.saved and checkpoint.last_saved_step == trainer.step
            else newest_checkpoint_line(checkpoint_dir)
        )
        print(
            f"{prog}: {error}; {kept}. Logs, curves and samples are in {out_dir}. Continue with "
            f"--resume and a lower --lr (this run used {gan.g_optimizer.lr:g}).",
            file=sys.stderr,
        )
        raise SystemExit(EXIT_DIVERGED) from None
    print(f"tinygan: done, {trainer.step} steps; outputs in {out_dir}")
    best = quality.summary() if quality is not None else None
    if best:
        grid_line = f", drawn in {best_grid.path}" if best_grid.path else ""
        print(f"tinygan: {best}: {checkpoint_dir / 'best.npz'}{grid_line}")
    return trainer


def run_from_command_line(args: argparse.Namespace, prog: str) -> Trainer:
    """:func:`run`, with any unexpected error reported in one line (exit 1) unless ``--debug``."""
    with one_line_errors(prog, args.debug):
        return run(args, prog)


def main(
    argv: list[str] | None = None, default_preset: str = "mlp-tf", presets: list[str] | None = None
) -> Trainer:
    """Parse flags and run (the body of every example script); presets by name or alias."""
    presets = presets or IMAGE_PRESETS
    parser = training_parser(__doc__.splitlines()[0], presets, default_preset)
    return run_from_command_line(parser.parse_args(argv), parser.prog)
