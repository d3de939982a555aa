"""The ``tinygan`` command.

* ``tinygan presets`` lists the presets: name, alias and what each one trains.
* ``tinygan train PRESET [flags]`` trains an image preset (by name or alias, ``mlp-tf`` or ``000``),
  exactly like the example scripts, or a 2-D mixture preset (``ring``, ``grid``).
* ``tinygan sample CHECKPOINT [flags]`` writes images from a checkpoint of any image preset (or
  from a run folder's best generator).
* ``tinygan eval CHECKPOINT [flags]`` measures a checkpoint's samples (FID, Inception Score, mode
  coverage, precision / recall) beside the same figures for real images.
* ``tinygan classifier [--data-dir DIR]`` trains the quality classifier on your own data; it
  replaces the shipped one when it learnt from more images.
* ``tinygan export CHECKPOINT --format onnx|torch`` writes a checkpoint's generator (or
  discriminator) as an ONNX model or a PyTorch state dict.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinygan.models import PRESETS, Preset
from tinygan.nn.layer import Layer
from tinygan.run.experiment import TRAIN_PRESETS, run_from_command_line
from tinygan.run.flags import (
    DATA_FLAGS_OPT_IN,
    DEVICE_NAMES,
    FlagParser,
    add_debug_flag,
    check_gpu,
    non_negative_int,
    one_line_errors,
    positive_int,
    preset_argument,
    seed_int,
    training_parser,
    usage_error,
)


def presets_command(argv: list[str]) -> int:
    """Print the presets, one a line: name, alias, description and how to train it."""
    argparse.ArgumentParser(prog="tinygan presets", description="List the presets.").parse_args(
        argv
    )
    width = max(len(name) for name in PRESETS)
    print(f"{'name':<{width}}  alias  description")
    for name, preset in PRESETS.items():
        how = f"tinygan train {name}" if name in TRAIN_PRESETS else "examples/gaussian_1d_gan.py"
        print(f"{name:<{width}}  {preset.alias or '-':<5}  {preset.description}  [{how}]")
    return 0


def train_command(argv: list[str]) -> int:
    """``tinygan train PRESET [flags]``."""
    parser = training_parser(
        "Train a tinygan preset: images, or the points of a 2-D mixture.",
        TRAIN_PRESETS,
        "mlp-tf",
        prog="tinygan train",
    )
    parser.add_argument(
        "preset_name",
        nargs="?",
        metavar="PRESET",
        type=preset_argument(TRAIN_PRESETS),
        help="the same as --preset",
    )
    args = parser.parse_args(argv)
    if args.preset_name and args.preset and args.preset_name != args.preset:
        usage_error(
            parser.prog, f"two presets given: {args.preset_name} and --preset {args.preset}"
        )
    args.preset = args.preset or args.preset_name
    del args.preset_name
    run_from_command_line(args, parser.prog)
    return 0


CHECKPOINT_HELP = (
    "a .npz written during training, or a run folder (its checkpoints/best.npz when the run kept "
    "one, else its newest checkpoint)"
)


def chosen_checkpoint(path: Path) -> Path:
    """The checkpoint file that ``path`` names (a run folder offers one); says which it took."""
    from tinygan.run.checkpoint import checkpoint_in

    path, note = checkpoint_in(path)
    if note:
        print(f"tinygan: {note}")
    return path


def sample_command(argv: list[str]) -> int:
    """``tinygan sample CHECKPOINT``: images from a seed or from saved latent vectors."""
    from tinygan.run.checkpoint import NonFiniteCheckpointError
    from tinygan.run.sampling import (
        NoRoomError,
        check_room,
        generate_batches,
        load_generator,
        load_latents,
        write_sample_batches,
    )

    parser = sample_parser()
    args = parser.parse_args(argv)
    check_gpu(parser.prog, args.device)
    try:
        generator, preset, _ = load_generator(chosen_checkpoint(args.checkpoint), args.device)
        latents = load_latents(args.latents, preset) if args.latents else None
        request = sample_request(parser.prog, args, preset, latents)
        check_room(request.n, preset, args.out, request.grid)  # before anything is generated
    except (NonFiniteCheckpointError, NoRoomError) as error:
        usage_error(parser.prog, str(error))
    except (OSError, ValueError, KeyError) as error:
        raise SystemExit(f"tinygan sample: {error}") from None
    n, grid = request.n, request.grid
    batches = generate_batches(
        generator, preset, n, args.seed, request.latents, args.device, labels=request.labels
    )
    paths = write_sample_batches(batches, n, args.out, grid)
    print(
        f"tinygan: {n} images of preset {preset.name}{request.what} -> {args.out} "
        f"({len(paths)} PNG, latents.npy)"
    )
    return 0


def sample_parser() -> FlagParser:
    """The flags of ``tinygan sample``."""
    parser = FlagParser(prog="tinygan sample", description=sample_command.__doc__)
    parser.add_argument("checkpoint", type=Path, help=CHECKPOINT_HELP)
    parser.add_argument(
        "--n",
        type=positive_int,
        help="number of images (default: 64, or 8 per class for a conditional checkpoint "
        "without --label; ignored with --latents)",
    )
    parser.add_argument("--seed", type=seed_int, default=0, help="seed of the latent vectors")
    parser.add_argument(
        "--latents", type=Path, help="a latents.npy written by an earlier sample run"
    )
    parser.add_argument("--out", type=Path, default=Path("samples"), help="output folder")
    parser.add_argument(
        "--grid",
        type=positive_int,
        nargs=2,
        metavar=("ROWS", "COLS"),
        help="one grid PNG instead of single PNGs",
    )
    parser.add_argument(
        "--label",
        type=non_negative_int,
        metavar="CLASS",
        help="a conditional checkpoint's class (a digit): every image of that class. Without "
        "it, a conditional checkpoint gives one grid, one row per class, the same latent vector "
        "down each column",
    )
    parser.add_argument("--device", choices=DEVICE_NAMES, default="cpu")
    add_debug_flag(parser)
    return parser


@dataclass(frozen=True)
class SampleRequest:
    """What ``tinygan sample`` generates: ``n`` images, from ``latents`` (None: drawn from the
    seed), for ``labels`` (None: unconditional), into ``grid`` (None: one PNG each); ``what``
    says which classes, for the last line."""

    n: int
    latents: Any
    labels: Any
    grid: tuple[int, int] | None
    what: str = ""


def sample_request(
    prog: str, args: argparse.Namespace, preset: Preset, latents: Any
) -> SampleRequest:
    """The images ``tinygan sample``'s flags ask of ``preset``'s generator; ``--label`` refused
    in one line for an unconditional checkpoint or a class the preset does not have.

    A conditional checkpoint without ``--label`` gives its class grid: one row per class, each row
    from the same latent vectors (:func:`tinygan.run.sampling.class_rows`), ``--n`` a multiple of
    the number of classes (or the rows of a ``--latents`` file, as a class grid wrote them).
    """
    from tinygan.gan import draw_noise
    from tinygan.run.sampling import class_rows

    grid = tuple(args.grid) if args.grid else None
    classes, label = preset.classes, args.label
    if classes is None and label is not None:
        usage_error(
            prog,
            f"--label {label}: {args.checkpoint} is of an unconditional {preset.name} run, "
            "which takes no class (train with --conditional for one that does)",
        )
    if classes is None or label is not None:
        if label is not None and label >= classes:
            usage_error(
                prog, f"--label {label}: preset {preset.name}'s classes are 0 to {classes - 1}"
            )
        n = (args.n or 64) if latents is None else len(latents)
        what = "" if label is None else f", class {label}"
        return SampleRequest(n, latents, label, grid, what)
    n = (args.n or 8 * classes) if latents is None else len(latents)
    if n % classes:
        source = f"--n {n}" if latents is None else f"--latents {args.latents} ({n} vectors)"
        usage_error(
            prog,
            f"{source}: without --label, a conditional checkpoint draws one row per class; give "
            f"a multiple of {classes}, or --label",
        )
    if latents is None:
        row = draw_noise(
            np.random.default_rng(args.seed),
            n // classes,
            preset.latent_dim,
            preset.noise,
            np.float32,
        )
        latents, labels = class_rows(row, classes)
    else:
        labels = np.repeat(np.arange(classes), n // classes)
    what = f", one row per class (0 to {classes - 1})"
    return SampleRequest(n, latents, labels, grid or (classes, n // classes), what)


def eval_command(argv: list[str]) -> int:
    """``tinygan eval CHECKPOINT``: quality metrics of generated images, with real-data calibration."""
    import json

    from tinygan.data import DatasetNotFoundError
    from tinygan.quality.evaluate import evaluate_checkpoint
    from tinygan.run.checkpoint import NonFiniteCheckpointError
    from tinygan.run.sampling import NoRoomError

    parser = FlagParser(prog="tinygan eval", description=eval_command.__doc__)
    parser.add_argument("checkpoint", type=Path, help=CHECKPOINT_HELP)
    parser.add_argument("--n", type=positive_int, default=10_000, help="images to generate")
    parser.add_argument("--seed", type=seed_int, default=0, help="seed of the latent vectors")
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="folder with the IDX files (default: $TINYGAN_DATA or ~/.cache/tinygan)",
    )
    parser.add_argument(
        "--dataset",
        choices=["mnist", "fashion-mnist"],
        help="real data to compare with (default: the dataset the checkpoint was trained on)",
    )
    parser.add_argument(
        "--split",
        choices=["train", "test"],
        help="compare with this whole split (default: the classifier's held-out images)",
    )
    parser.add_argument("--device", choices=DEVICE_NAMES, default="cpu")
    parser.add_argument("--download", action="store_true", help="download missing dataset files")
    parser.add_argument(
        "--classifier-cache", type=Path, help="folder for the trained classifier's weights"
    )
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    if args.n < 2:
        usage_error(parser.prog, "argument --n: must be at least 2")
    check_gpu(parser.prog, args.device)
    try:
        result = evaluate_checkpoint(
            chosen_checkpoint(args.checkpoint),
            n=args.n,
            data_dir=args.data_dir,
            dataset=args.dataset,
            split=args.split,
            seed=args.seed,
            device=args.device,
            download=args.download,
            classifier_cache=args.classifier_cache,
        )
    except DatasetNotFoundError as error:
        raise SystemExit(f"tinygan eval: {error.describe(DATA_FLAGS_OPT_IN)}") from None
    except (NonFiniteCheckpointError, NoRoomError) as error:
        usage_error(parser.prog, str(error))
    except (OSError, ValueError, KeyError) as error:  # corrupt data, missing checkpoints too
        raise SystemExit(f"tinygan eval: {error}") from None
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return 0


def classifier_command(argv: list[str]) -> int:
    """``tinygan classifier``: train the quality classifier on your own data, and cache it."""
    from tinygan.data import DatasetNotFoundError
    from tinygan.quality.classifier import choose_classifier, classifier_data, load_classifier

    parser = FlagParser(
        prog="tinygan classifier",
        description=(
            "Train the classifier behind the quality metrics on the data found (the train split "
            "when it is there, for training, and the test split held out) and cache its weights. "
            "Quality measurements then use it instead of the classifier shipped with tinygan "
            "when it learnt from more images."
        ),
    )
    parser.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default="mnist")
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="folder with the IDX files (default: $TINYGAN_DATA or ~/.cache/tinygan)",
    )
    parser.add_argument("--download", action="store_true", help="download missing dataset files")
    parser.add_argument(
        "--classifier-cache", type=Path, help="folder for the weights (default: beside the data)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    try:
        data = classifier_data(args.dataset, args.data_dir, args.download)
        load_classifier(data, cache_dir=args.classifier_cache, progress=not args.no_progress)
        choose_classifier(args.dataset, args.data_dir, args.classifier_cache)
    except DatasetNotFoundError as error:
        raise SystemExit(f"{parser.prog}: {error.describe(DATA_FLAGS_OPT_IN)}") from None
    return 0


EXPORT_FORMATS = {"onnx": ".onnx", "torch": ".pt"}

EXPORT_EPILOG = """\
onnx: one ONNX model (opset 17, batch axis dynamic), input "z" and output "images" for the generator,
"x" and "logits" for the discriminator; its metadata holds preset, latent_dim, noise (uniform:
U(-1, 1), normal: N(0, 1)) and value_range. Needs: pip install "tinygan[onnx]".

torch: the state dict of the network's PyTorch twin. Rebuild the module and load it with
  from tinygan.interop.torch_models import build_generator  # or build_discriminator
  g = build_generator("dcgan-tf"); g.load_state_dict(torch.load("g.pt")); g.eval()
Needs: pip install "tinygan[torch]".
"""


def export_command(argv: list[str]) -> int:
    """``tinygan export CHECKPOINT``: a trained network as ONNX or as a PyTorch state dict."""
    parser = export_parser()
    args = parser.parse_args(argv)
    out = args.out or Path(f"{args.network}{EXPORT_FORMATS[args.format]}")
    # checked before the checkpoint is read, so a missing extra or a bad path costs nothing
    check_export_target(parser.prog, args.format, out)

    from tinygan.interop import NoCounterpartError, load_network
    from tinygan.run.checkpoint import NonFiniteCheckpointError

    try:
        network, preset = load_network(args.checkpoint, args.network)
    except NonFiniteCheckpointError as error:
        usage_error(parser.prog, str(error))
    except (OSError, ValueError, KeyError) as error:
        raise SystemExit(f"tinygan export: {error}") from None
    try:
        how = write_export(network, preset, args.network, args.format, out)
    except NoCounterpartError as error:
        usage_error(parser.prog, f"{error}: this checkpoint's {args.network} cannot be exported")
    except OSError as error:
        raise SystemExit(f"tinygan export: cannot write {out}: {error.strerror or error}") from None
    print(f"tinygan: {args.network} of preset {preset.name} -> {out} ({how})")
    return 0


def export_parser() -> FlagParser:
    """The flags of ``tinygan export``."""
    parser = FlagParser(
        prog="tinygan export",
        description="Export a checkpoint's generator or discriminator to ONNX or PyTorch.",
        epilog=EXPORT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("checkpoint", type=Path, help="a .npz written during training")
    parser.add_argument(
        "--format", choices=list(EXPORT_FORMATS), default="onnx", help="default: onnx"
    )
    parser.add_argument(
        "--network",
        choices=["generator", "discriminator"],
        default="generator",
        help="default: generator",
    )
    parser.add_argument(
        "--out", type=Path, help="file to write (default: <network>.onnx or <network>.pt)"
    )
    add_debug_flag(parser)
    return parser


def check_export_target(prog: str, export_format: str, out: Path) -> None:
    """Stop with one line when the format's package is missing or ``out`` cannot be written."""
    import importlib.util

    module = "onnx" if export_format == "onnx" else "torch"
    if importlib.util.find_spec(module) is None:
        usage_error(
            prog,
            f"--format {export_format} needs the {module} package: pip install "
            f'"tinygan[{export_format}]"',
        )
    if out.is_dir():
        usage_error(prog, f"--out {out} is a folder; give a file name")
    # The file's folder may be missing (it is created when the file is written), but the nearest
    # folder that exists must accept files, and nothing on the way may be a file.
    existing = next(parent for parent in out.absolute().parents if parent.exists())
    if not existing.is_dir():
        usage_error(prog, f"--out {out} is below the file {existing}")
    if not os.access(existing, os.W_OK | os.X_OK):
        usage_error(prog, f"--out {out} is not writable ({existing} is read-only)")


def write_export(network: Layer, preset: Preset, which: str, export_format: str, out: Path) -> str:
    """Write ``network`` (the preset's ``which``) to ``out``; returns how to load the file."""
    if export_format == "onnx":
        from tinygan.interop.onnx_export import export_onnx

        export_onnx(network, preset, which, out)
        return "run it with onnxruntime.InferenceSession"
    from tinygan.interop.torch_models import export_torch

    export_torch(network, preset, which, out)
    build = "build_generator" if which == "generator" else "build_discriminator"
    conditional = ", conditional=True" if preset.conditional else ""
    return (
        f"load it with tinygan.interop.torch_models.{build}({preset.name!r}{conditional})"
        f".load_state_dict(torch.load({str(out)!r}))"
    )


COMMANDS = {
    "presets": presets_command,
    "train": train_command,
    "sample": sample_command,
    "eval": eval_command,
    "export": export_command,
    "classifier": classifier_command,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``tinygan`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        names = ", ".join(COMMANDS)
        print(
            f"usage: tinygan {{{names}}} ...  (tinygan COMMAND --help for its flags)",
            file=sys.stderr,
        )
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    command, rest = argv[0], argv[1:]
    with one_line_errors(f"tinygan {command}", debug="--debug" in rest):
        return COMMANDS[command](rest)


if __name__ == "__main__":
    raise SystemExit(main())
