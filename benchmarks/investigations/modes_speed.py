"""Milliseconds per training step of the 2-D mixture presets, for source trees in alternation.

    python benchmarks/investigations/modes_speed.py               # this tree: ring, pack 1 and 2
    git worktree add ../before <commit>
    python benchmarks/investigations/modes_speed.py ../before . --rounds 5   # before and after
    python benchmarks/investigations/modes_speed.py --threads 1   # one BLAS / Numba thread
    python benchmarks/investigations/modes_speed.py --profile     # where one step's time goes

Each cell is one fresh process (tree, pack): ``GAN.train_step`` of the preset at its batch of 100
(``pack`` times 100 real points), ``--warmup`` untimed steps, then the median of ``--iterations``
timed ones. Processes run strictly one after another, the trees and packings in turn, round after
round, so that a machine whose speed drifts (a shared VM, other jobs on its two cores) slows both
sides alike; the summary gives, per tree and packing, the median over rounds of the per-process
medians, and their range. The real batches are points of the mixture itself, drawn once.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SEED = 0


def time_steps(preset_name: str, pack: int, warmup: int, iterations: int) -> list[float]:
    """Seconds per ``train_step`` of ``preset_name`` at ``pack`` (runs in the child process)."""
    from dataclasses import replace

    import numpy as np

    from tinygan.data import MIXTURES
    from tinygan.models import get_preset

    preset = replace(get_preset(preset_name), pack=pack)
    gan = preset.make_gan(np.random.default_rng(SEED), np.random.default_rng(SEED + 1))
    rng = np.random.default_rng(SEED + 2)
    batches = [MIXTURES[preset.mixture].sample(preset.batch_size * pack, rng) for _ in range(16)]
    position = 0

    def next_batch() -> Any:
        nonlocal position
        position += 1
        return batches[position % len(batches)]

    for _ in range(warmup):
        gan.train_step(next_batch)
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        gan.train_step(next_batch)
        times.append(time.perf_counter() - start)
    return times


def profile_step(preset_name: str, pack: int, iterations: int) -> None:
    """Print the functions that take the most time over ``iterations`` steps (cProfile)."""
    import cProfile
    import pstats

    time_steps(preset_name, pack, 5, 5)  # compile and warm up outside the profile
    profiler = cProfile.Profile()
    profiler.enable()
    time_steps(preset_name, pack, 0, iterations)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


def child_environment(tree: Path, threads: int | None) -> dict[str, str]:
    """This environment with ``tree`` as the import path (its tinygan is timed) and ``threads``."""
    environment = {**os.environ, "PYTHONPATH": str(tree)}
    if threads is not None:
        for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            environment[name] = str(threads)
        environment["NUMBA_NUM_THREADS"] = str(threads)
    return environment


def main(argv: list[str] | None = None) -> None:
    """Time (or profile) the trees' steps in alternating processes and print the summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="*", default=["."], help="source trees (default: .)")
    parser.add_argument("--preset", default="ring", choices=["ring", "grid"])
    parser.add_argument("--packs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, help="BLAS and Numba threads (default: theirs)")
    parser.add_argument("--profile", action="store_true", help="cProfile one process instead")
    parser.add_argument("--child", nargs=2, metavar=("PACK", "ITER"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        pack, iterations = (int(value) for value in args.child)
        if args.profile:
            profile_step(args.preset, pack, iterations)
        else:
            times = time_steps(args.preset, pack, args.warmup, iterations)
            print(json.dumps({"median_ms": 1e3 * statistics.median(times)}))
        return
    trees = [Path(tree).resolve() for tree in args.trees]
    common = ["--preset", args.preset, "--warmup", str(args.warmup)]
    if args.profile:
        command = [sys.executable, __file__, *common, "--profile", "--child"]
        command += [str(args.packs[0]), str(args.iterations)]
        subprocess.run(command, env=child_environment(trees[0], args.threads), check=True)
        return
    medians: dict[tuple[str, int], list[float]] = {}
    for round_index in range(args.rounds):
        for tree, label in zip(trees, args.trees, strict=True):
            for pack in args.packs:
                command = [sys.executable, __file__, *common, "--child", str(pack)]
                command.append(str(args.iterations))
                result = subprocess.run(
                    command,
                    env=child_environment(tree, args.threads),
                    capture_output=True,
                    text=True,
                    check=True,
                )
                median = json.loads(result.stdout.splitlines()[-1])["median_ms"]
                medians.setdefault((label, pack), []).append(median)
                print(f"round {round_index + 1}  {label}  pack {pack}: {median:.2f} ms", flush=True)
    threads = args.threads if args.threads is not None else "default"
    print(f"\n{args.preset}, batch 100, {args.iterations} steps a process, threads {threads}")
    print("| tree | pack | median ms (over rounds) | range |")
    print("|---|---:|---:|---|")
    for (label, pack), values in medians.items():
        low, high = min(values), max(values)
        print(f"| {label} | {pack} | {statistics.median(values):.2f} | {low:.2f}-{high:.2f} |")


if __name__ == "__main__":
    main()
