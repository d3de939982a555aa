"""Time ``GAN.train_step`` of two source trees in alternating processes: before and after a change.

    git worktree add ../before <commit>
    python benchmarks/investigations/alternate.py ../before . --preset mlp-tf --batch 64 \
        --iterations 1000 --rounds 3

A machine whose speed drifts (a shared VM that switches between a fast and a slow mode) cannot tell
a code change from a drift in one pass of ``speed.py time``; alternating the two trees, one fresh
process each, round after round, can. Each line is one process: the tree (as given), and the median
and minimum milliseconds of ``--iterations`` iterations after three untimed ones. The harness (the
step and its timing, :mod:`benchmarks.common`) is this tree's for both sides; only ``tinygan`` is
imported from the tree being timed.
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
from pathlib import Path

if __name__ == "__main__" and not __package__:  # run as a file: import as `python -m` would
    sys.path[0] = str(Path(__file__).resolve().parents[2])

from benchmarks.common import time_steps, training_step  # noqa: E402


def time_tree(tree: str, label: str, preset_name: str, batch: int, iterations: int) -> str:
    """One process's result line, naming the tree ``label`` (runs in the child, with ``tree``, an
    absolute path, first on the import path before tinygan is imported)."""
    sys.path.insert(0, tree)
    from tinygan.models import get_preset

    step, _ = training_step("tinygan", get_preset(preset_name), batch)
    times = time_steps(step, 3, iterations, iterations, math.inf)
    median, fastest = 1e3 * statistics.median(times), 1e3 * min(times)
    return f"{label}  {preset_name}@{batch}: median {median:.3f} ms  min {fastest:.3f} ms"


def main(argv: list[str] | None = None) -> None:
    """Alternate the two trees' processes, ``--rounds`` times, printing each one's line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs=2, help="two source trees (before, after)")
    parser.add_argument("--preset", default="mlp-tf", help="the preset, by name (mlp-tf)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(time_tree(*args.trees, args.preset, args.batch, args.iterations))
        return
    for _ in range(args.rounds):
        for tree in args.trees:
            flags = ["--preset", args.preset, "--batch", str(args.batch)]
            flags += ["--iterations", str(args.iterations), "--child"]
            command = [sys.executable, __file__, str(Path(tree).resolve()), tree, *flags]
            print(
                subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()
            )


if __name__ == "__main__":
    main()
