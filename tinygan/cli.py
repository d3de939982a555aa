"""The ``tinygan`` command: ``tinygan train PRESET [flags]`` runs a seed system like the examples do."""

from __future__ import annotations

import argparse
import sys

from tinygan.experiment import build_parser, run
from tinygan.models import PRESETS


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``tinygan`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="tinygan", description="tinygan: GANs with hand-derived backprop"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("train", help="train a preset (same flags as the examples)", add_help=False)
    commands.add_parser("presets", help="list the presets")
    known, rest = parser.parse_known_args(argv)
    if known.command == "presets":
        for name, preset in sorted(PRESETS.items()):
            print(f"{name}  {preset.description}")
        return 0
    train_parser = build_parser("Train a tinygan preset.", sorted(PRESETS), "000")
    train_parser.prog = "tinygan train"
    train_parser.add_argument("preset_name", nargs="?", metavar="PRESET", choices=sorted(PRESETS))
    args = train_parser.parse_args(rest)
    if args.preset_name:
        args.preset = args.preset_name
    run(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
