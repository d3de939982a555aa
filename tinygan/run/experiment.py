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
choose or score images are refused for it. ``stacked-mnist`` (``Preset.stacked``) trains on Stacked
MNIST images, drawn in colour, and counts their 1,000 modes into ``modes.csv`` too
(:mod:`tinygan.run.stacked_run`); ``--modes-every`` is refused for the other image presets.

How a run ends, and its exit code: 0 done; 2 a mistake in the flags or the data, or an ``--out`` in
use by another run, reported in one line before training starts; 3 training diverged (rolled back
to its last finite state, which is saved); 4 a file could not be written (a full disk, a read-only
folder: the line names the file, the step and the newest intact checkpoint, and nothing intact is
deleted); 130 stopped by Ctrl-C, SIGTERM or SIGHUP (at the end of the step in progress; a second
Ctrl-C stops at once). ``--resume`` continues from the newest checkpoint that is intact and finite.
One run at a time holds ``<out>`` (a lock the operating system releases when the process ends).

A run reads top to bottom in :func:`train_in_folder`: the flags are resolved once into a frozen
:class:`~tinygan.run.settings.RunSettings` (:mod:`tinygan.run.settings` checks them and owns
config.json), :func:`~tinygan.run.build.build_run` makes the data, the GAN, its callbacks and the
trainer from it, the loop trains (:func:`train`), and :func:`training_outcomes` turns how training
ended into the exit code. :mod:`tinygan.run.output_folder` holds ``<out>`` for the run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from tinygan.models import get_preset
from tinygan.run.build import (
    AUTO_QUALITY_MIN_STEPS,
    AUTO_QUALITY_TIMES,
    DATA_FLAGS,
    RunParts,
    build_run,
    describe_data,
    find_resume_point,
    load_training_data,
    quality_interval,
    resume_run,
)
from tinygan.run.checkpoint import find_resumable
from tinygan.run.flags import one_line_errors, training_parser, usage_error
from tinygan.run.output_folder import RUN_OUTPUTS, claim_output_folder
from tinygan.run.settings import (
    ADJUSTABLE,
    DEFAULTS,
    IMAGE_FLAGS,
    IMAGE_PRESETS,
    LOSS_SETTINGS,
    MIXTURE_PRESETS,
    RUN_IDENTITY,
    STEP_RULES,
    TRAIN_PRESETS,
    WGAN_LR,
    WGAN_N_CRITIC,
    RunRefused,
    RunSettings,
    check_flags,
    configure,
    describe_game,
    flags_given,
    loss_overrides,
    read_config,
    recorded_settings,
    resolve_settings,
    resumed_config,
    write_config,
)
from tinygan.run.train import NonFiniteLossError, Trainer

# The names this module held before the run was split into settings, build and output folder
# modules; scripts and tests import them from here.
__all__ = [
    "ADJUSTABLE",
    "AUTO_QUALITY_MIN_STEPS",
    "AUTO_QUALITY_TIMES",
    "DATA_FLAGS",
    "DEFAULTS",
    "EXIT_DIVERGED",
    "EXIT_INTERRUPTED",
    "EXIT_WRITE_FAILED",
    "IMAGE_FLAGS",
    "IMAGE_PRESETS",
    "LOSS_SETTINGS",
    "MIXTURE_PRESETS",
    "RUN_IDENTITY",
    "RUN_OUTPUTS",
    "STEP_RULES",
    "TRAIN_PRESETS",
    "WGAN_LR",
    "WGAN_N_CRITIC",
    "claim_output_folder",
    "configure",
    "describe_data",
    "describe_game",
    "load_training_data",
    "loss_overrides",
    "main",
    "quality_interval",
    "read_config",
    "recorded_settings",
    "run",
    "run_from_command_line",
    "write_config",
]

EXIT_DIVERGED, EXIT_WRITE_FAILED, EXIT_INTERRUPTED = 3, 4, 130


def main(
    argv: list[str] | None = None, default_preset: str = "mlp-tf", presets: list[str] | None = None
) -> Trainer:
    """Parse flags and run (the body of every example script); presets by name or alias."""
    presets = presets or IMAGE_PRESETS
    parser = training_parser(__doc__.splitlines()[0], presets, default_preset)
    return run_from_command_line(parser.parse_args(argv), parser.prog)


def run_from_command_line(args: argparse.Namespace, prog: str) -> Trainer:
    """:func:`run`, with any unexpected error reported in one line (exit 1) unless ``--debug``."""
    with one_line_errors(prog, args.debug):
        return run(args, prog)


def run(args: argparse.Namespace, prog: str = "tinygan") -> Trainer:
    """Train as the flags say; returns the trainer (its gan, step and out_dir).

    Mistakes in the flags, the data or the output folder end the process with a one-line message
    and exit code 2 (:class:`SystemExit`) before any training; how training ends sets the exit
    code as the module's docstring says (:func:`training_outcomes`).
    """
    try:
        given = flags_given(args)
        check_flags(given, args.resume)
        preset_name = get_preset(args.preset or args.default_preset).name
        out_dir = args.out or Path("runs") / preset_name
        with claim_output_folder(prog, out_dir, args.resume, args.overwrite) as clear_old_run:
            return train_in_folder(prog, given, preset_name, out_dir, args.resume, clear_old_run)
    except RunRefused as error:
        usage_error(prog, str(error))


def train_in_folder(
    prog: str,
    given: dict[str, Any],
    preset_name: str,
    out_dir: Path,
    resume: bool,
    clear_old_run: Callable[[], None],
) -> Trainer:
    """The run, top to bottom, once this process holds ``out_dir`` (:func:`claim_output_folder`
    gives ``clear_old_run``): settings, parts, checkpoint, config.json, training, summary."""
    point = find_resume_point(prog, out_dir / "checkpoints") if resume else None
    if point is None:
        settings, changes = resolve_settings(given, preset_name)
    else:
        settings, changes = resolve_settings(given, preset_name, point.recorded, point.path)
    announce(settings)
    parts = build_run(settings, out_dir)
    if point is None:
        config = parts.settings.to_config(parts.steps, sys.argv)
    else:
        resume_run(parts, point, changes)
        step = parts.trainer.step
        config = resumed_config(read_config(out_dir), parts.settings, parts.steps, step, changes)
    clear_old_run()  # --overwrite: only now that the new run's flags and data are good
    with training_outcomes(prog, parts):
        write_config(out_dir, config)
        train(parts)
    report_done(parts)
    return parts.trainer


def announce(settings: RunSettings) -> None:
    """The run's first lines: its preset, its seed (to repeat it) and a game beyond the tutorials'."""
    preset = settings.configured_preset
    print(f"tinygan: preset {preset.name} ({preset.description})")
    print(f"tinygan: seed {settings.seed}  (pass --seed {settings.seed} to repeat this run)")
    beyond_tutorials = (preset.clip, preset.penalty, preset.spectral_norm)
    if preset.generator_loss not in ("nonsaturating", "minimax") or any(beyond_tutorials):
        print(f"tinygan: {describe_game(preset)}")


def train(parts: RunParts) -> None:
    """The training loop, to the run's last step; a signal ends it at the end of a step."""
    # a diverging run overflows before its NaN is caught; it is reported as such, not as warnings
    with stop_at_step_end(parts.trainer), np.errstate(over="ignore", invalid="ignore"):
        parts.trainer.fit(parts.steps)


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


@contextlib.contextmanager
def training_outcomes(prog: str, parts: RunParts) -> Iterator[None]:
    """How training ended, as the process's exit code with one line on stderr: interrupted (130),
    diverged (3) or a file that could not be written (4), each saying where to resume from."""
    trainer = parts.trainer
    checkpoint_dir = trainer.out_dir / "checkpoints"
    try:
        yield
    except KeyboardInterrupt:
        with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone
            print(
                f"\n{prog}: interrupted at step {trainer.step}{final_write_failure(trainer)}; "
                f"{newest_checkpoint_line(checkpoint_dir)}",
                file=sys.stderr,
            )
        raise SystemExit(EXIT_INTERRUPTED) from None
    except NonFiniteLossError as error:
        print(
            f"{prog}: {error}{final_write_failure(trainer)}; {divergence_line(parts)}",
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


def divergence_line(parts: RunParts) -> str:
    """What a diverged run kept, and how to continue it."""
    trainer, checkpoint = parts.trainer, parts.callbacks.checkpoint
    kept = (
        f"rolled back to step {trainer.step}, the last finite state, saved as "
        f"{checkpoint.saved[-1]}"
        if checkpoint.saved and checkpoint.last_saved_step == trainer.step
        else newest_checkpoint_line(trainer.out_dir / "checkpoints")
    )
    return (
        f"{kept}. Logs, curves and samples are in {trainer.out_dir}. Continue with --resume and a "
        f"lower --lr (this run used {parts.gan.g_optimizer.lr:g})."
    )


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


def report_done(parts: RunParts) -> None:
    """The last lines of a finished run: its outputs, its mode counts or its best generator."""
    trainer, callbacks = parts.trainer, parts.callbacks
    modes = f"; {callbacks.measures.summary()}" if callbacks.measures is not None else ""
    print(f"tinygan: done, {trainer.step} steps; outputs in {trainer.out_dir}{modes}")
    best = callbacks.best_grid.best.summary() if callbacks.best_grid is not None else None
    if best:
        path = callbacks.best_grid.path
        grid_line = f", drawn in {path}" if path else ""
        print(f"tinygan: {best}: {trainer.out_dir / 'checkpoints' / 'best.npz'}{grid_line}")
