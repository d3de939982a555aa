"""Run a preset end to end: flags, seed, data, networks, optimizers, callbacks, training.

The example scripts and the ``tinygan train`` command are thin wrappers around :func:`main`, so they
accept the same flags (:mod:`tinygan.run.flags`) and produce the same files (``<out>`` is ``--out``, by
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

A preset of points on a 2-D mixture (``ring``, ``grid``: ``Preset.mixture`` names it) trains on that
mixture's points instead of images, draws its frames as scatter plots and counts modes into
``<out>/modes.csv`` instead of measuring image quality (:mod:`tinygan.run.mixture_run`); the flags that
choose or score images are refused for it, and ``--modes-every`` for the image presets.

How a run ends, and its exit code: 0 done; 2 a mistake in the flags or the data, or an ``--out`` in
use by another run, reported in one line before training starts; 3 training diverged (rolled back
to its last finite state, which is saved); 4 a file could not be written (a full disk, a read-only
folder: the line names the file, the step and the newest intact checkpoint, and nothing intact is
deleted); 130 stopped by Ctrl-C, SIGTERM or SIGHUP (at the end of the step in progress; a second
Ctrl-C stops at once). ``--resume`` continues from the newest checkpoint that is intact and finite.
One run at a time holds ``<out>`` (a lock the operating system releases when the process ends).
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
from collections.abc import Callable, Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from tinygan.atomic import write_atomically
from tinygan.backend import make_rng, new_seed, to_device
from tinygan.data import (
    MIXTURES,
    POINTS_PER_RUN,
    BatchIterator,
    CorruptDatasetError,
    DatasetNotFoundError,
    OptionNames,
    bundled_mnist_dir,
    find_dataset_files,
    images_to_float,
    load_mnist_or_bundled,
    mixture_batches,
)
from tinygan.data.mnist import DISPLAY_NAMES
from tinygan.ema import EMA
from tinygan.losses import WEIGHT_CLIP
from tinygan.models import PRESETS, Preset, get_preset
from tinygan.penalties import R1_WEIGHT, WGAN_GP_WEIGHT
from tinygan.run.alarms import LossAlarm
from tinygan.run.checkpoint import (
    Checkpoint,
    apply_state,
    checkpoint_metadata,
    find_resumable,
)
from tinygan.run.flags import (
    check_gpu,
    check_writable_folder,
    one_line_errors,
    training_parser,
    usage_error,
)
from tinygan.run.folder_lock import LOCK_NAME, FolderInUseError, FolderLock
from tinygan.run.mixture_run import MODES_CSV, MODES_EVERY, ModeMeasures, ScatterFrames
from tinygan.run.train import (
    Callback,
    LossCurves,
    NonFiniteLossError,
    PixelHistograms,
    SampleGrid,
    Trainer,
)

#: Presets that train on 28x28 images (the 1-D Gaussian GAN has its own example script).
IMAGE_PRESETS = [
    name for name, preset in PRESETS.items() if preset.image_size == (28, 28) and not preset.mixture
]
#: Presets that train on the points of a 2-D mixture.
MIXTURE_PRESETS = [name for name, preset in PRESETS.items() if preset.mixture]
#: What ``tinygan train`` trains.
TRAIN_PRESETS = IMAGE_PRESETS + MIXTURE_PRESETS
#: Flags that choose or score images: a run on a 2-D mixture refuses them.
IMAGE_FLAGS = ("dataset", "split", "subset", "data_dir", "no_download", "quality_every")

#: What a fresh run uses for a flag that was not given (the preset decides the rest).
DEFAULTS: dict[str, Any] = {
    "dataset": "mnist",
    "split": "train",
    "device": "cpu",
    "log_every": 50,
    "checkpoint_seconds": 60.0,
    "keep_checkpoints": 3,
}
#: How a step is played (:class:`tinygan.gan.GAN`): each preset has a default, a flag turns it on or
#: off, and config.json records the value the run resolved to.
STEP_RULES = ("simultaneous", "reuse_noise", "inference_fakes")
#: The game and what keeps D in check (:func:`loss_overrides`): config.json records the values a
#: run resolved to, and ``--resume`` keeps them.
LOSS_SETTINGS = ("loss", "n_critic", "clip", "penalty", "penalty_weight", "spectral_norm")
#: The Wasserstein GAN paper's learning rate (RMSprop, both networks; Algorithm 1).
WGAN_LR = 5e-5
#: The Wasserstein GAN paper's critic updates per generator update (Algorithm 1).
WGAN_N_CRITIC = 5
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
    "pack",
    *STEP_RULES,
    *LOSS_SETTINGS,
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
    "modes_every",
    "no_progress",
)
#: What a run writes into its folder; ``--overwrite`` deletes exactly these.
RUN_OUTPUTS = (
    "config.json",
    "log.csv",
    "quality.csv",
    MODES_CSV,
    "warnings.csv",
    "losses.png",
    "discriminator_outputs.png",
    "pixel_histogram_before.png",
    "pixel_histogram_after.png",
    "training.gif",
    "samples",
    "checkpoints",
)
EXIT_DIVERGED, EXIT_WRITE_FAILED, EXIT_INTERRUPTED = 3, 4, 130


def loss_overrides(preset: Preset, settings: dict[str, Any]) -> dict[str, Any]:
    """The preset fields that ``--loss``, ``--n-critic``, ``--clip``, ``--penalty``,
    ``--penalty-weight`` and ``--spectral-norm`` set.

    The Wasserstein loss brings the WGAN paper's recipe with it unless the flags say otherwise:
    :data:`WGAN_N_CRITIC` critic updates per generator update and, without a gradient penalty
    (which replaced them), weight clipping at :data:`~tinygan.losses.WEIGHT_CLIP` and RMSprop at
    :data:`WGAN_LR` for both networks. More than one D update per step alternates the updates,
    on a preset that steps simultaneously too, unless ``--simultaneous`` is given.
    """
    overrides: dict[str, Any] = {}
    loss = settings.get("loss") or preset.generator_loss
    penalty = settings.get("penalty") or "none"
    wgan = loss == "wasserstein"
    clipping = wgan and penalty == "none"
    if settings.get("loss") is not None:
        overrides["generator_loss"] = loss
    n_critic = settings.get("n_critic") or (WGAN_N_CRITIC if wgan else preset.d_steps)
    overrides["d_steps"] = n_critic
    if n_critic > 1 and settings.get("simultaneous") is None:
        overrides["simultaneous"] = False
    clip = settings.get("clip")
    overrides["clip"] = clip if clip is not None else (WEIGHT_CLIP if clipping else preset.clip)
    if clipping:
        overrides.update(optimizer="rmsprop", g_lr=WGAN_LR, d_lr=WGAN_LR)
    if penalty != "none":
        default = WGAN_GP_WEIGHT if penalty == "wgan-gp" else R1_WEIGHT
        weight = settings.get("penalty_weight")
        overrides.update(penalty=penalty, penalty_weight=default if weight is None else weight)
    if settings.get("spectral_norm") is not None:
        overrides["spectral_norm"] = bool(settings["spectral_norm"])
    return overrides


def describe_game(preset: Preset) -> str:
    """The loss, the D updates per G update and what keeps D in check, in words."""
    parts = [f"loss {preset.generator_loss}", f"{preset.d_steps} D update(s) per G update"]
    if preset.clip is not None:
        parts.append(f"D's weights clipped to [-{preset.clip:g}, {preset.clip:g}]")
    if preset.penalty is not None:
        parts.append(f"{preset.penalty} penalty weighted {preset.penalty_weight:g}")
    if preset.spectral_norm:
        parts.append("spectral norm in D")
    parts.append(f"{preset.optimizer} lr {preset.g_lr:g} (G) / {preset.d_lr:g} (D)")
    return ", ".join(parts)


def configure(preset: Preset, settings: dict[str, Any]) -> Preset:
    """The preset with the settings that override it applied."""
    overrides = loss_overrides(preset, settings)
    if settings.get("batch_size") is not None:
        overrides["batch_size"] = settings["batch_size"]
    if settings.get("lr") is not None:
        overrides["g_lr"] = overrides["d_lr"] = settings["lr"]
    if settings.get("sample_every") is not None:
        overrides["sample_every"] = settings["sample_every"]
    if settings.get("pack") is not None:
        overrides["pack"] = settings["pack"]
    for rule in STEP_RULES:
        if settings.get(rule) is not None:
            overrides[rule] = bool(settings[rule])
    if settings.get("iterations") is not None:
        overrides.update(steps=settings["iterations"], epochs=None)
    if settings.get("epochs") is not None:
        overrides.update(epochs=settings["epochs"], steps=None)
    return replace(preset, **overrides)


@contextlib.contextmanager
def claim_output_folder(
    prog: str, out_dir: Path, resume: bool, overwrite: bool
) -> Iterator[Callable[[], None]]:
    """Hold the output folder for the run inside this block: one run per folder.

    The folder's lock (:class:`~tinygan.run.folder_lock.FolderLock`) is taken before anything in it is
    read, deleted or written, so a second run on a folder in use is refused (exit 2) without
    touching it, ``--resume`` and ``--overwrite`` alike. A folder that holds another, finished run
    is refused too, unless ``--resume`` continues it or ``--overwrite`` replaces it: the block gets
    a function that deletes that run's outputs, to call once the new run's flags and data are good.

    A run that fails before writing anything (a mistake in the flags or the data) leaves no trace:
    the lock file it created goes, and so do the folders it created; a folder the user had stays.
    """
    if resume and overwrite:
        usage_error(
            prog, "--resume continues the run in --out and --overwrite deletes it: not both"
        )
    created = [folder for folder in (out_dir, *out_dir.parents) if not folder.exists()]
    check_writable_folder(prog, out_dir)
    made_lock_file = not (out_dir / LOCK_NAME).exists()
    try:
        lock = FolderLock(out_dir)
    except FolderInUseError as error:
        usage_error(
            prog,
            f"--out {error}; one folder holds one run: wait for it to end or stop it"
            f"{f' (kill {error.pid})' if error.pid else ''}, or train into another --out",
        )
    except OSError as error:
        usage_error(prog, f"--out {out_dir} is not writable ({error.strerror or error})")
    try:
        existing = [name for name in RUN_OUTPUTS if (out_dir / name).exists()]
        if existing and not resume and not overwrite:
            usage_error(
                prog,
                f"--out {out_dir} holds another run ({', '.join(existing)}): pass --resume to "
                "continue it, or --overwrite to delete it and start again",
            )

        def clear_old_run() -> None:
            for name in existing if overwrite else ():
                path = out_dir / name
                shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)

        yield clear_old_run
    except BaseException:
        if made_lock_file and not any((out_dir / name).exists() for name in RUN_OUTPUTS):
            lock.remove_file()  # still held: a run starting now takes a lock on a fresh file
            for folder in created:  # innermost first
                with contextlib.suppress(OSError):
                    folder.rmdir()
        raise
    finally:
        lock.release()


def recorded_settings(metadata: dict[str, Any]) -> dict[str, Any]:
    """The settings a checkpoint's run was started with (older checkpoints record fewer).

    Runs from before the presets had names record an alias ("003"); it is read as the name
    ("dcgan-tf"), so that ``--resume --preset dcgan-tf`` continues such a run. Runs from before the
    presets carried their tutorials' step rules record a rule as off (``false``), ``null`` (flag
    not given) or not at all: all three mean off, which is how those runs trained. Runs from before
    ``--pack`` trained unpacked: pack 1.
    """
    if "settings" in metadata:
        settings = dict(metadata["settings"])
    else:
        keys = ("preset", "seed", "dataset", "split", "device")
        settings = {k: metadata[k] for k in keys if k in metadata}
    if settings.get("preset") in PRESETS:
        settings["preset"] = PRESETS[settings["preset"]].name
    for rule in STEP_RULES:
        settings[rule] = bool(settings.get(rule))
    settings["pack"] = settings.get("pack") or 1
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
            if isinstance(value, bool):  # a step rule: name the flag of each value
                on, off = flag, "--no-" + flag[2:]
                given_text, started = (on, off) if value else (off, on)
            else:
                given_text, started = f"{flag} {value}", recorded[name]
            usage_error(
                prog,
                f"{given_text}: the run in {source} was started with {started}, and "
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
    settings["data_folder"] = os.path.abspath(folder)
    subset = settings.get("subset")
    if subset is not None:
        if subset > len(images):
            usage_error(prog, f"--subset {subset}: there are only {len(images)} images")
        images = images[:subset]
    if preset.batch_size * preset.pack > len(images):
        source = f"--subset {subset}" if subset is not None else f"the {len(images)} images"
        if preset.pack == 1:
            usage_error(
                prog,
                f"--batch-size {preset.batch_size} is larger than {source}: one batch needs "
                f"{preset.batch_size} images",
            )
        usage_error(
            prog,
            f"--batch-size {preset.batch_size} with --pack {preset.pack} takes "
            f"{preset.batch_size * preset.pack} images a step, more than {source}",
        )
    data = images_to_float(images, preset.value_range)
    return data.reshape(len(data), *preset.data_shape)


def check_flags_fit_data(prog: str, preset: Preset, given: dict[str, Any]) -> None:
    """Refuse, in one line, the flags given that do not apply to what ``preset`` trains on: the
    image flags for a 2-D mixture, ``--modes-every`` for images."""
    if preset.mixture:
        for name in IMAGE_FLAGS:
            if given.get(name) not in (None, False):
                usage_error(
                    prog,
                    f"--{name.replace('_', '-')}: preset {preset.name} trains on the points of "
                    "its 2-D mixture, not on images",
                )
    elif given.get("modes_every") is not None:
        usage_error(
            prog,
            f"--modes-every: preset {preset.name} trains on images; modes are counted for the "
            f"2-D mixture presets ({', '.join(MIXTURE_PRESETS)})",
        )


def mixture_training_batches(
    prog: str, preset: Preset, settings: dict[str, Any], rng: np.random.Generator
) -> Any:
    """The batches of a run on a 2-D mixture: the authors' fixed set of points, shuffled each
    epoch, ``pack`` points per discriminator input (records the data in ``settings``)."""
    settings.update(dataset=preset.mixture, split=None)
    batch = preset.batch_size * preset.pack
    if batch > POINTS_PER_RUN:
        usage_error(
            prog,
            f"--batch-size {preset.batch_size} with --pack {preset.pack} takes {batch:,} points a "
            f"step, more than the {POINTS_PER_RUN:,} of the data set",
        )
    return mixture_batches(MIXTURES[preset.mixture], batch, rng, device=settings["device"])


def describe_data(settings: dict[str, Any], count: int) -> str:
    """The images a run trains on, in words: "10,000 bundled MNIST test digits", "the first 512
    MNIST train images from /data/mnist" (after :func:`load_training_data`); "100,000 points of
    the 2-D ring (8 Gaussians, standard deviation 0.01)" for a mixture."""
    if settings.get("dataset") in MIXTURES:
        mixture = MIXTURES[settings["dataset"]]
        return (
            f"{count:,} points of the 2-D {mixture.name} ({mixture.num_modes} Gaussians, standard "
            f"deviation {mixture.std:g})"
        )
    first = "the first " if settings.get("subset") is not None else ""
    if settings.get("bundled_data"):
        return f"{first}{count:,} bundled MNIST test digits"
    name = DISPLAY_NAMES[settings["dataset"]]
    return f"{first}{count:,} {name} {settings['split']} images from {settings['data_folder']}"


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
    """Quality metrics every ``every`` steps, against real images the classifier never saw, each
    row keeping the best generator and raising the collapse alarms, and the best generator's grid
    at the end (a :class:`QualityCallback` and a :class:`BestGrid`)."""
    from tinygan.quality.classifier import choose_classifier
    from tinygan.quality.evaluate import QualityCallback, QualityEvaluator
    from tinygan.run.alarms import CollapseAlarm
    from tinygan.run.best import BestGrid, KeepBest

    chosen = choose_classifier(settings["dataset"], quality_data_dir(settings))
    evaluator = QualityEvaluator(chosen.classifier, chosen.data.heldout_images)
    best = KeepBest(metadata)
    quality = QualityCallback(every, evaluator, preset, listeners=[best, CollapseAlarm()])
    return quality, BestGrid(grid, best)


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
    """Inside this block Ctrl-C, SIGTERM and SIGHUP end training after the step in progress.

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
        # os.write, not print: a signal handler may interrupt a print in progress; after SIGHUP
        # the terminal may be gone, and the run must still stop cleanly
        with contextlib.suppress(OSError):
            os.write(
                2, b"\ntinygan: stopping after this step (press Ctrl-C again to stop at once)\n"
            )

    # SIGHUP: the terminal closed (an ssh session dropped); Windows has none
    names = ("SIGINT", "SIGTERM", "SIGHUP")
    signals = [getattr(signal, name) for name in names if hasattr(signal, name)]
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
    return f"the newest intact checkpoint is {path} (step {step}); continue with --resume"


def write_failure(error: OSError, step: int) -> str:
    """One line on a file that could not be written (the error names it) at ``step``."""
    where = error.filename if error.filename is not None else "an output file"
    return f"could not write {where} at step {step} ({error.strerror or error})"


def final_write_failure(trainer: Trainer) -> str:
    """What a run that stopped (interrupted, diverged) could not write as it ended, if anything."""
    if not trainer.end_errors:
        return ""
    error = trainer.end_errors[0]
    if isinstance(error, OSError):
        return f" ({write_failure(error, trainer.step)})"
    return f" (its final outputs failed: {' '.join(str(error).split()) or type(error).__name__})"


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
    if given.get("data_dir") is not None:  # so that --resume from another directory reads it
        given["data_dir"] = os.path.abspath(given["data_dir"])
    no_penalty = given.get("penalty") in (None, "none")
    if given.get("penalty_weight") is not None and no_penalty and not args.resume:
        usage_error(prog, "--penalty-weight weighs a gradient penalty: give --penalty too")
    if given.get("quality_every") and given.get("no_quality"):
        usage_error(prog, f"--quality-every {given['quality_every']} and --no-quality: choose one")
    preset_name = get_preset(args.preset or args.default_preset).name
    out_dir = args.out or Path("runs") / preset_name
    with claim_output_folder(prog, out_dir, args.resume, args.overwrite) as clear_old_run:
        return train_in_folder(args, prog, given, preset_name, out_dir, clear_old_run)


def train_in_folder(
    args: argparse.Namespace,
    prog: str,
    given: dict[str, Any],
    preset_name: str,
    out_dir: Path,
    clear_old_run: Callable[[], None],
) -> Trainer:
    """The body of :func:`run`, once this process holds ``out_dir`` (see
    :func:`claim_output_folder`, which gives ``clear_old_run``)."""
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
    for rule in STEP_RULES:  # what the run plays, recorded (config.json, checkpoints) and kept
        settings[rule] = getattr(preset, rule)
    settings["pack"] = preset.pack
    settings.update(
        loss=preset.generator_loss,
        n_critic=preset.d_steps,
        clip=preset.clip,
        penalty=preset.penalty or "none",
        penalty_weight=preset.penalty_weight,
        spectral_norm=preset.spectral_norm,
    )
    check_flags_fit_data(prog, preset, given)
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
    beyond_tutorials = (preset.clip, preset.penalty, preset.spectral_norm)
    if preset.generator_loss not in ("nonsaturating", "minimax") or any(beyond_tutorials):
        print(f"tinygan: {describe_game(preset)}")
    init_seed, data_seed, noise_seed, sample_seed = np.random.SeedSequence(seed).spawn(4)

    data_rng = np.random.default_rng(data_seed)
    if preset.mixture:
        batches = mixture_training_batches(prog, preset, settings, data_rng)
        count = len(batches.data)
    else:
        data = load_training_data(prog, preset, settings)
        # the dataset goes to the device once: the batches are then cut there, not copied every step
        batches = BatchIterator(to_device(data, device), preset.batch_size * preset.pack, data_rng)
        count = len(data)
    steps = preset.steps if preset.steps is not None else preset.epochs * batches.steps_per_epoch
    packs = f" packs of {preset.pack}" if preset.pack > 1 else ""
    print(
        f"tinygan: {describe_data(settings, count)}, {steps} steps of batch {preset.batch_size}"
        f"{packs}"
    )
    noise_rng = make_rng(int(noise_seed.generate_state(1)[0]), device)
    try:
        gan = preset.make_gan(np.random.default_rng(init_seed), noise_rng, device)
    except ValueError as error:
        if preset.penalty is None:
            raise
        usage_error(prog, f"--penalty {preset.penalty}: {error}")  # a layer without a second pass
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
    if preset.mixture:
        mixture = MIXTURES[preset.mixture]
        frames: SampleGrid = ScatterFrames(
            preset.sample_every,
            mixture,
            sample_rng,
            unit=preset.sample_unit,
            make_gif=preset.make_gif,
        )
        # a generator of its own with the frames' seed: the measures count the points drawn
        modes_every = settings.get("modes_every") or MODES_EVERY
        measures = ModeMeasures(modes_every, mixture, np.random.default_rng(sample_seed))
    else:
        frames = SampleGrid(
            preset.sample_every,
            *preset.sample_grid,
            image_shape=preset.image_size,
            value_range=preset.value_range,
            rng=sample_rng,
            unit=preset.sample_unit,
            make_gif=preset.make_gif,
            first=preset.sample_first,
        )
    checkpoint = Checkpoint(
        preset.checkpoint_every,
        "epoch",
        metadata,
        every_steps=settings.get("checkpoint_every"),
        every_seconds=settings["checkpoint_seconds"] or None,
        keep=settings["keep_checkpoints"],
    )
    callbacks: list[Callback] = [
        LossCurves(),  # first: the curves are drawn even if a later callback's last write fails
        frames,
        checkpoint,
        LossAlarm(),
    ]
    if preset.mixture:
        callbacks.append(measures)
    quality = best_grid = None
    quality_every = None if preset.mixture else quality_interval(settings, steps)
    if quality_every:
        quality, best_grid = quality_callbacks(preset, settings, metadata, quality_every, frames)
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
    clear_old_run()  # --overwrite: only now that the new run's flags and data are good
    try:
        write_config(out_dir, config)
        # a diverging run overflows before its NaN is caught; it is reported below, not as warnings
        with stop_at_step_end(trainer), np.errstate(over="ignore", invalid="ignore"):
            trainer.fit(steps)
    except KeyboardInterrupt:
        with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone
            print(
                f"\n{prog}: interrupted at step {trainer.step}{final_write_failure(trainer)}; "
                f"{newest_checkpoint_line(checkpoint_dir)}",
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
            f"{prog}: {error}{final_write_failure(trainer)}; {kept}. Logs, curves and samples are in "
            f"{out_dir}. Continue with --resume and a lower --lr (this run used "
            f"{gan.g_optimizer.lr:g}).",
            file=sys.stderr,
        )
        raise SystemExit(EXIT_DIVERGED) from None
    except OSError as error:
        print(
            f"{prog}: error: {write_failure(error, trainer.step)}; "
            f"{newest_checkpoint_line(checkpoint_dir)}",
            file=sys.stderr,
        )
        raise SystemExit(EXIT_WRITE_FAILED) from None
    modes = f"; {measures.summary()}" if preset.mixture else ""
    print(f"tinygan: done, {trainer.step} steps; outputs in {out_dir}{modes}")
    best = best_grid.best.summary() if best_grid is not None else None
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
