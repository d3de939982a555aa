"""How dcgan-fast's width and batch size were chosen: train the candidates, compare quality and time.

    python benchmarks/investigations/dcgan_fast_choice.py --data-dir ../shared/data/mnist \
        --runs runs/choice --train
    python benchmarks/investigations/dcgan_fast_choice.py --data-dir ../shared/data/mnist \
        --runs runs/choice

Each candidate is the dcgan-fast recipe (:func:`tinygan.models.dcgan_builder`) at one width and batch
size (and optionally an EMA of G), trained for 2,000 steps on the MNIST test split with seed 1 and
the quality measured every 500 steps during training (2,000 samples; ``quality.csv``). With
``--train`` the runs are made first (about 25 minutes on 2 cores); without it, existing runs are read.
The time per iteration of each candidate is measured in this process, the candidates taking turns
(three rounds), so that a machine whose speed drifts slows them all alike. The EMA costs the same
per iteration as its network without it (one extra pass over G's weights). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

if __name__ == "__main__" and not __package__:  # run as a file: import as `python -m` would
    sys.path[0] = str(Path(__file__).resolve().parents[2])

from benchmarks.common import time_steps, training_step  # noqa: E402

#: (width, batch size, EMA decay or None)
CANDIDATES = [(32, 64, None), (64, 64, None), (32, 128, None), (32, 64, 0.99)]


def name(width: int, batch: int, ema: float | None) -> str:
    """The candidate's run folder name, e.g. ``w32_b64_ema0.99``."""
    return f"w{width}_b{batch}" + (f"_ema{ema}" if ema else "")


def candidate_preset(width: int, batch: int) -> Any:
    """dcgan-fast at another width and batch size (a :class:`tinygan.models.Preset`)."""
    from tinygan.models import dcgan_builder, get_preset

    return replace(get_preset("dcgan-fast"), build=dcgan_builder(width), batch_size=batch)


def train(width: int, batch: int, ema: float | None, args: argparse.Namespace) -> None:
    """Train one candidate for 2,000 steps through ``tinygan train``'s code."""
    from tinygan import models
    from tinygan.run.experiment import main

    table = models.PRESETS._by_name  # the candidate stands in for dcgan-fast during its run
    original = table["dcgan-fast"]
    table["dcgan-fast"] = candidate_preset(width, batch)
    try:
        flags = ["--preset", "dcgan-fast", "--iterations", "2000", "--seed", "1", "--split", "test"]
        flags += ["--data-dir", str(args.data_dir), "--quality-every", "500", "--no-progress"]
        flags += ["--out", str(args.runs / name(width, batch, ema)), "--overwrite"]
        main(flags + (["--ema", str(ema)] if ema else []))
    finally:
        table["dcgan-fast"] = original


def step_ms(candidates: list[tuple[int, int]], repeats: int, rounds: int = 3) -> list[float]:
    """Median milliseconds of one training iteration of each (width, batch), synthetic batches.

    The candidates take turns, ``repeats`` iterations each per round, so that a machine whose speed
    drifts (a shared VM) slows them all alike.
    """
    steps = [training_step("tinygan", candidate_preset(w, b), b)[0] for w, b in candidates]
    for step in steps:
        time_steps(step, 3, 0, 0, math.inf)  # warm: kernels compiled, buffers allocated
    times: list[list[float]] = [[] for _ in candidates]
    for _ in range(rounds):
        for step, samples in zip(steps, times, strict=True):
            samples += time_steps(step, 0, repeats, repeats, math.inf)
    return [1e3 * statistics.median(samples) for samples in times]


def main(argv: list[str] | None = None) -> None:
    """Train the candidates (``--train``), time them, and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="MNIST folder")
    parser.add_argument("--runs", type=Path, required=True, help="where the candidate runs go")
    parser.add_argument("--train", action="store_true", help="train the candidates first")
    parser.add_argument(
        "--repeats",
        type=int,
        default=10,
        help="timed iterations per candidate and round (3 rounds)",
    )
    args = parser.parse_args(argv)
    print(
        "| width | batch | EMA | ms / iteration | 2,000 steps | step | FID | IS | classes | recall |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    if args.train:
        for width, batch, ema in CANDIDATES:
            train(width, batch, ema, args)
    networks = list(dict.fromkeys((width, batch) for width, batch, _ in CANDIDATES))
    timing = dict(zip(networks, step_ms(networks, args.repeats), strict=True))
    for width, batch, ema in CANDIDATES:
        ms = timing[(width, batch)]
        path = args.runs / name(width, batch, ema) / "quality.csv"
        rows = list(csv.DictReader(path.open())) if path.is_file() else []
        for row in rows:
            print(
                f"| {width} | {batch} | {ema or '-'} | {ms:.0f} | {2000 * ms / 60e3:.1f} min | "
                f"{row['step']} | {float(row['fid']):.1f} | {float(row['inception_score']):.2f} | "
                f"{row['classes_hit']}/10 | {float(row['recall']):.3f} |"
            )


if __name__ == "__main__":
    main()
