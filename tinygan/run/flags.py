"""Command-line flags: a parser whose mistakes cost one line, and value checks for every flag.

A wrong value is reported when the flags are parsed, before any data is read or any network built,
as one line on stderr naming the flag and what it accepts, with exit code 2::

    tinygan train: error: argument --batch-size: must be a positive integer, got 0

Every flag of the training commands defaults to ``None`` ("not given"): a fresh run then takes the
preset's value, and ``--resume`` takes the value the run was started with, so the two can tell a flag
the user typed from a default.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import NoReturn

from tinygan.data import OptionNames
from tinygan.losses import GAN_LOSSES, WEIGHT_CLIP
from tinygan.models import describe_presets, get_preset
from tinygan.penalties import PENALTIES, R1_WEIGHT, WGAN_GP_WEIGHT

DATASET_NAMES = ("mnist", "fashion-mnist")
#: ``emulated`` runs the GPU code paths on the CPU (:mod:`tinygan.testing`), to check them without one.
DEVICE_NAMES = ("cpu", "gpu", "emulated")
SPLIT_NAMES = ("train", "test")

#: How the training commands' data errors and notices name the options (in place of load_mnist's
#: keywords). These commands download missing data unless given --no-download.
DATA_FLAGS = OptionNames(
    data_dir="--data-dir DIR",
    split="--split {}",
    download_off="--no-download",
    download_on="leave out --no-download",
)
#: The same for the commands that download only when asked to (``tinygan eval``, ``tinygan
#: classifier``: --download).
DATA_FLAGS_OPT_IN = replace(DATA_FLAGS, download_off="no --download", download_on="pass --download")


class FlagParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that reports a mistake in one line (no usage block) and exits with 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _number_check(
    convert: Callable[[str], float], accept: Callable[[float], bool], wanted: str
) -> Callable[[str], float]:
    """An argparse ``type`` that converts a string and rejects values outside a range."""

    def check(text: str) -> float:
        try:
            value = convert(text)
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text}")
        return value

    check.__name__ = wanted  # argparse names the type in some messages
    return check


def preset_argument(names: list[str]) -> Callable[[str], str]:
    """An argparse ``type`` accepting one of the presets ``names`` by name or alias; gives the name.

    Turning an alias into the name as the flags are parsed means everything after (the output
    folder, ``--resume``'s comparison, what the run records) sees one spelling of each preset.
    """
    wanted = f"one of {describe_presets(names)}"

    def check(text: str) -> str:
        try:
            name = get_preset(text).name
        except ValueError:
            name = None
        if name not in names:
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}")
        return name

    check.__name__ = "preset"  # argparse names the type in some messages
    return check


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


positive_int = _number_check(int, lambda v: v >= 1, "a positive integer")
non_negative_int = _number_check(int, lambda v: v >= 0, "an integer >= 0")
seed_int = _number_check(int, lambda v: 0 <= v < 2**63, "an integer from 0 to 2**63 - 1")
finite_float = _number_check(_finite_float, lambda v: True, "a finite number")
positive_float = _number_check(_finite_float, lambda v: v > 0, "a finite number > 0")
non_negative_float = _number_check(_finite_float, lambda v: v >= 0, "a finite number >= 0")
unit_interval_open = _number_check(
    _finite_float, lambda v: 0 < v < 1, "a number between 0 and 1 (exclusive), e.g. 0.999"
)


@contextlib.contextmanager
def one_line_errors(prog: str, debug: bool = False) -> Iterator[None]:
    """Report an unexpected error in one line (exit 1) and Ctrl-C as "interrupted" (exit 130).

    Python's traceback is for developers: it is shown with ``debug`` (the ``--debug`` flag) or when
    the environment variable ``TINYGAN_DEBUG`` is set to anything but 0.
    """
    debug = debug or os.environ.get("TINYGAN_DEBUG", "") not in ("", "0")
    try:
        yield
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"\n{prog}: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    except Exception as error:
        if debug:
            raise
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"{prog}: error: {message} (--debug shows the traceback)", file=sys.stderr)
        raise SystemExit(1) from None


def usage_error(prog: str, message: str) -> NoReturn:
    """Stop with a one-line error about the flags and exit code 2, as the parser does."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


#: Why ``--device gpu`` is refused where no usable GPU is there.
GPU_NEEDED = '--device gpu needs CuPy and a working NVIDIA GPU (pip install -e ".[gpu]")'


def check_gpu(prog: str, device: str) -> None:
    """Stop with one line when ``--device gpu`` is asked for and no usable GPU is there."""
    from tinygan.backend import gpu_available

    if device == "gpu" and not gpu_available():
        usage_error(prog, GPU_NEEDED)


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--debug", action="store_true", help="show Python tracebacks (also: TINYGAN_DEBUG=1)"
    )


def check_writable_folder(prog: str, path: Path, flag: str = "--out") -> None:
    """Create ``path`` if needed and make sure files can be written in it, or stop with one line."""
    for parent in (path, *path.parents):
        if parent.exists() and not parent.is_dir():
            where = "is a file" if parent == path else f"is below the file {parent}"
            usage_error(prog, f"{flag} {path} {where}; give a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".tinygan-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        usage_error(prog, f"{flag} {path} is not writable ({error.strerror or error})")


def preset_defaults(presets: list[str], rule: str) -> str:
    """Which of ``presets`` turn the step rule ``rule`` on by default, for a flag's help."""
    on = [name for name in presets if getattr(get_preset(name), rule)]
    if not on:
        return "default: off"
    if len(on) == len(presets):
        return "default: on"
    named = on[0] if len(on) == 1 else f"{', '.join(on[:-1])} and {on[-1]}"
    return f"default: on for {named}; off for the others"


def training_parser(
    description: str, presets: list[str], default_preset: str, prog: str | None = None
) -> FlagParser:
    """The flags shared by every image example and by ``tinygan train``.

    ``presets`` and ``default_preset`` may be given by name or alias; ``--preset`` accepts either
    and parses to the name. The flags are added group by group, in the order ``--help`` lists them.
    """
    presets = [get_preset(name).name for name in presets]
    parser = FlagParser(prog=prog, description=description)
    add_preset_flag(parser, presets, get_preset(default_preset).name)
    add_length_flags(parser)
    add_output_flags(parser)
    add_data_flags(parser)
    add_schedule_flags(parser)
    add_extension_flags(parser)
    add_step_rule_flags(parser, presets)
    add_game_flags(parser)
    parser.add_argument("--no-download", action="store_true", help="never download the dataset")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_debug_flag(parser)
    return parser


def add_preset_flag(parser: argparse.ArgumentParser, presets: list[str], default: str) -> None:
    """``--preset`` (by name or alias); the preset trained without it is ``default``."""
    parser.add_argument(
        "--preset",
        type=preset_argument(presets),
        metavar="PRESET",
        help=f"system to train, by name or alias: {describe_presets(presets)} (default: {default})",
    )
    parser.set_defaults(default_preset=default)


def add_length_flags(parser: argparse.ArgumentParser) -> None:
    """How long and how fast a run trains, and its seed."""
    length = parser.add_mutually_exclusive_group()
    length.add_argument(
        "--iterations", type=positive_int, help="training steps (default: the preset's full run)"
    )
    length.add_argument(
        "--epochs", type=positive_int, help="passes over the data (instead of --iterations)"
    )
    parser.add_argument(
        "--batch-size", type=positive_int, help="real images per step (default: the preset's)"
    )
    parser.add_argument(
        "--lr",
        type=positive_float,
        help="learning rate of both networks (default: the preset's); with --resume it replaces "
        "the saved one",
    )
    parser.add_argument("--seed", type=seed_int, help="random seed (default: a fresh one, printed)")


def add_output_flags(parser: argparse.ArgumentParser) -> None:
    """Where the run writes, and whether an earlier run there may be deleted."""
    parser.add_argument("--out", type=Path, help="output folder (default: runs/<preset name>)")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="delete the outputs of an earlier run in --out before starting",
    )


def add_data_flags(parser: argparse.ArgumentParser) -> None:
    """The images a run trains on, and the device it trains on."""
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="folder with the IDX files (default: $TINYGAN_DATA or ~/.cache/tinygan)",
    )
    parser.add_argument("--dataset", choices=DATASET_NAMES, help="default: mnist")
    parser.add_argument("--split", choices=SPLIT_NAMES, help="split to train on (default: train)")
    parser.add_argument(
        "--subset", type=positive_int, help="train on the first N images only (quick experiments)"
    )
    parser.add_argument(
        "--device",
        choices=DEVICE_NAMES,
        help="default: cpu (emulated: GPU-style arrays on the CPU, to test the GPU code paths)",
    )


def add_schedule_flags(parser: argparse.ArgumentParser) -> None:
    """How often a run draws samples, logs and saves checkpoints, and ``--resume``."""
    parser.add_argument(
        "--sample-every",
        type=positive_int,
        help="sample-grid interval in the preset's unit (steps or epochs)",
    )
    parser.add_argument(
        "--log-every", type=positive_int, help="steps between log lines (default: 50)"
    )
    parser.add_argument(
        "--checkpoint-every",
        type=positive_int,
        help="also save a checkpoint every N steps (default: by time only, plus the preset's "
        "schedule)",
    )
    parser.add_argument(
        "--checkpoint-seconds",
        type=non_negative_float,
        help="save a checkpoint whenever this many seconds passed since the last (default: 60; "
        "0: off)",
    )
    parser.add_argument(
        "--keep-checkpoints",
        type=non_negative_int,
        help="how many of the newest checkpoints to keep (default: 3; 0: all)",
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue from the newest good checkpoint in --out"
    )


def add_extension_flags(parser: argparse.ArgumentParser) -> None:
    """What tinygan adds to the tutorials' runs: quality measurements, PacGAN's packing, ProGAN's
    minibatch standard deviation, mode counts, the generator's moving average and conditioning on
    the class."""
    parser.add_argument(
        "--quality-every",
        type=positive_int,
        help="log classifier FID, IS, coverage, precision and recall of 2,000 samples to quality.csv "
        "every N steps and keep the best generator (default: 5 times in a run of 1,000 steps or "
        "more; the classifier ships with tinygan)",
    )
    parser.add_argument(
        "--no-quality",
        action="store_true",
        help="never measure quality (not even the default few times per run)",
    )
    parser.add_argument(
        "--pack",
        type=positive_int,
        metavar="M",
        help="PacGAN's packing: the discriminator judges M samples at once, side by side (M "
        "real or M generated), and a step takes M times --batch-size real samples (default: 1, "
        "off); --resume keeps it",
    )
    parser.add_argument(
        "--minibatch-std",
        action=argparse.BooleanOptionalAction,
        help="ProGAN's minibatch standard deviation: D's last Dense layer also sees the batch's "
        "spread (each feature's standard deviation over the batch, averaged over the features), "
        "one more input feature, placed after Flatten in a convolutional D; with --pack, over "
        "the batch of packs (any preset; default: off); --resume keeps it",
    )
    parser.add_argument(
        "--modes-every",
        type=positive_int,
        metavar="N",
        help="2-D mixture presets (ring, grid): count the modes of 2,500 samples into modes.csv "
        "every N steps (default: 1000, an epoch of the authors' protocol); stacked-mnist: of "
        "26,000 samples (default: 1000, a quarter of its run)",
    )
    parser.add_argument(
        "--ema",
        type=unit_interval_open,
        metavar="DECAY",
        help="keep a moving average of the generator's weights with this decay (e.g. 0.999), "
        "saved in checkpoints and used for samples and quality (default: off)",
    )
    parser.add_argument(
        "--conditional",
        action=argparse.BooleanOptionalAction,
        help="a conditional GAN: G and D are told each sample's class (its digit), and D also "
        "judges real samples given a wrong class, as fakes; sample grids show one row per class "
        "and quality adds the share of samples of the class asked for (MLP and DCGAN presets; "
        "default: off); --resume keeps it",
    )


def add_step_rule_flags(parser: argparse.ArgumentParser, presets: list[str]) -> None:
    """How a training step is played; the help names the ``presets`` that play each rule."""
    rules = parser.add_argument_group(
        "step rules",
        "How a training step is played. Each preset's default is its tutorial's (docs/presets.md); "
        "config.json records the rules a run uses, and --resume keeps them.",
    )
    rules.add_argument(
        "--simultaneous",
        action=argparse.BooleanOptionalAction,
        help="take D's and G's updates from one forward of G, as the TensorFlow DCGAN tutorial "
        "does; --no-simultaneous alternates: D's update, then G's against the updated D "
        f"({preset_defaults(presets, 'simultaneous')})",
    )
    rules.add_argument(
        "--reuse-noise",
        action=argparse.BooleanOptionalAction,
        help="give G's update the noise batch of D's update before it, as the TensorFlow and Keras "
        "MLP tutorials do; --no-reuse-noise draws a fresh one "
        f"({preset_defaults(presets, 'reuse_noise')})",
    )
    rules.add_argument(
        "--inference-fakes",
        action=argparse.BooleanOptionalAction,
        help="make D's fake batch with G in inference mode (BatchNorm's running statistics), as "
        "the Keras tutorials' G.predict does; --no-inference-fakes uses training mode "
        f"({preset_defaults(presets, 'inference_fakes')})",
    )


def add_game_flags(parser: argparse.ArgumentParser) -> None:
    """The GAN loss and what keeps the discriminator in check."""
    game = parser.add_argument_group(
        "loss and regularisers",
        "What D and G minimise and what keeps D in check (default: the preset's cross-entropy "
        "game, none of them); config.json records them, and --resume keeps them.",
    )
    game.add_argument(
        "--loss",
        choices=list(GAN_LOSSES),
        help="the GAN loss (default: the preset's, the cross-entropy with its labels); "
        "wasserstein trains as the WGAN paper: no sigmoid, 5 critic updates per G update, D's "
        f"weights clipped to [-{WEIGHT_CLIP:g}, {WEIGHT_CLIP:g}] and RMSprop at lr 5e-5 for both "
        "networks unless --n-critic, --clip or --lr say otherwise (with --penalty: no clipping and "
        "the preset's optimizer and lr)",
    )
    game.add_argument(
        "--n-critic",
        type=positive_int,
        metavar="K",
        help="D updates per G update (default: the preset's; 5 with --loss wasserstein); on a "
        "preset that steps simultaneously, K > 1 alternates unless --simultaneous is given",
    )
    game.add_argument(
        "--clip",
        type=positive_float,
        metavar="C",
        help=f"clip D's weights to [-C, C] after each of its updates (default: {WEIGHT_CLIP:g} "
        "with --loss wasserstein and no --penalty, else off)",
    )
    game.add_argument(
        "--penalty",
        choices=("none", *PENALTIES),
        help="a gradient penalty on D by double backprop: wgan-gp on random interpolates of real "
        "and fake samples, r1 on real data (default: none); refused for a D with BatchNorm",
    )
    game.add_argument(
        "--penalty-weight",
        type=non_negative_float,
        metavar="W",
        help=f"the penalty's lambda (wgan-gp, default {WGAN_GP_WEIGHT:g}, the WGAN-GP paper's) or "
        f"gamma (r1, default {R1_WEIGHT:g}, as in the R1 paper's image experiments)",
    )
    game.add_argument(
        "--spectral-norm",
        action=argparse.BooleanOptionalAction,
        help="spectrally normalise D's Dense and Conv2D layers (default: off)",
    )
