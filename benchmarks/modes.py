"""Mode collapse measured as PacGAN measures it: GAN and PacGAN2/3/4 on the 2-D ring and grid.

Each run is ``tinygan train ring|grid --pack M --seed S --iterations N`` in a folder of its own
under ``--out``; its ``modes.csv`` holds the measures over the run (modes captured, high-quality
share, reverse KL of 2,500 samples: :func:`tinygan.quality.metrics.mixture_modes`). This script runs the
missing ones (``--jobs`` at a time; a run that was stopped continues with ``--resume``), then writes
``benchmarks/MODES.md``: the mean and standard error over seeds of each row's last measurement,
beside the paper's Table 1, with the schedule the runs had, their wall time and the command, and a
figure of the modes captured over the run, so a reader sees when the gap opens. The report is
rewritten after every finished run, so a long session keeps what it has measured.

    python benchmarks/modes.py --seeds 5 --iterations 20000 --jobs 2 --out runs/modes

The paper's protocol is 400 epochs of 100,000 points, batch 100: 400,000 iterations a run.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__" and not __package__:  # run as a file: import as `python -m` would
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
from functools import partial  # noqa: E402
from typing import Any  # noqa: E402

from benchmarks.common import (  # noqa: E402
    mean_and_error,
    run_in_folder,
    run_jobs,
    training_minutes,
)
from tinygan.run.mixture_run import MODES_CSV, read_modes_csv  # noqa: E402

HERE = Path(__file__).resolve().parent

#: PacGAN (Lin et al. 2018), Table 1: mean and standard error over 10 trials.
PAPER = {
    ("ring", 1): ("6.3 ± 0.5", "98.2 ± 0.2", "0.45 ± 0.09"),
    ("ring", 2): ("7.9 ± 0.1", "95.6 ± 2.0", "0.07 ± 0.03"),
    ("ring", 3): ("7.8 ± 0.1", "97.7 ± 0.3", "0.10 ± 0.02"),
    ("ring", 4): ("7.8 ± 0.1", "95.9 ± 1.4", "0.07 ± 0.02"),
    ("grid", 1): ("17.3 ± 0.8", "94.8 ± 0.7", "0.70 ± 0.07"),
    ("grid", 2): ("23.8 ± 0.7", "91.3 ± 0.8", "0.13 ± 0.04"),
    ("grid", 3): ("24.6 ± 0.4", "94.2 ± 0.4", "0.06 ± 0.02"),
    ("grid", 4): ("24.8 ± 0.2", "93.6 ± 0.6", "0.04 ± 0.01"),
}
MODES_OF = {"ring": 8, "grid": 25}


def run_folder(out: Path, target: str, pack: int, seed: int) -> Path:
    return out / f"{target}_pack{pack}_seed{seed}"


def finished_step(folder: Path) -> int:
    """The last measured step of a run folder (0 when nothing was measured)."""
    path = folder / MODES_CSV
    rows = read_modes_csv(path) if path.is_file() else []
    return rows[-1]["step"] if rows else 0


def train(folder: Path, target: str, pack: int, seed: int, args: argparse.Namespace) -> None:
    """Train one run to ``args.iterations`` (resuming a stopped one), its output in its log."""
    argv = ["train", target, "--pack", str(pack), "--seed", str(seed)]
    argv += ["--iterations", str(args.iterations), "--modes-every", str(args.modes_every)]
    done = run_in_folder([*argv, "--no-progress"], folder)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(done.args)} exited with {done.returncode}")


def summary_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    """One row per target and pack: the last measurement of each finished run, averaged."""
    rows = []
    for target in args.targets:
        for pack in args.packs:
            finals, minutes = [], []
            for seed in range(args.seeds):
                folder = run_folder(args.out, target, pack, seed)
                measured = (
                    read_modes_csv(folder / MODES_CSV) if (folder / MODES_CSV).is_file() else []
                )
                if measured and measured[-1]["step"] >= args.iterations:
                    finals.append(measured[-1])
                    minutes.append(training_minutes(folder))
            if finals:
                known = [m for m in minutes if m is not None]
                rows.append({"target": target, "pack": pack, "runs": len(finals)})
                rows[-1]["minutes"] = sum(known) / len(known) if known else math.nan
                for key in ("modes", "high_quality", "reverse_kl"):
                    rows[-1][key] = mean_and_error([float(f[key]) for f in finals])
    return rows


def curves_figure(args: argparse.Namespace, path: Path) -> None:
    """Modes captured over the run, mean over the seeds, one line per pack, one panel per target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(args.targets), figsize=(5 * len(args.targets), 3.6))
    for axis, target in zip(list(getattr(axes, "flat", [axes])), args.targets, strict=True):
        for pack in args.packs:
            per_step: dict[int, list[int]] = {}
            for seed in range(args.seeds):
                csv_path = run_folder(args.out, target, pack, seed) / MODES_CSV
                for row in read_modes_csv(csv_path) if csv_path.is_file() else []:
                    per_step.setdefault(row["step"], []).append(row["modes"])
            steps = sorted(per_step)
            if steps:
                label = "GAN" if pack == 1 else f"PacGAN{pack}"
                means = [sum(per_step[s]) / len(per_step[s]) for s in steps]
                axis.plot(steps, means, label=label)
        axis.axhline(MODES_OF[target], color="grey", linewidth=0.8, linestyle=":")
        axis.set_title(f"{target}: modes captured (mean over seeds)")
        axis.set_xlabel("iteration")
        axis.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_report(args: argparse.Namespace, command: str) -> None:
    figure = args.report.parent / "results" / "modes_over_time.png"
    curves_figure(args, figure)
    lines = [
        "# Mode collapse on the 2-D ring and grid, beside PacGAN's Table 1",
        "",
        f"Written by `benchmarks/modes.py`; repeat with `{command}`.",
        "",
        f"Schedule: {args.iterations:,} iterations a run (batch 100 packed samples; the paper trains "
        "400 epochs of 100,000 points, 400,000 iterations), measured on 2,500 samples (G in "
        "inference mode, fixed z) at the end of each run. tinygan: mean ± standard error over the "
        "runs counted in the `runs` column; paper: mean ± standard error over 10 trials.",
        "",
        "| target | D | runs | modes (tinygan) | modes (paper) | high quality % (tinygan) | "
        "high quality % (paper) | reverse KL (tinygan) | reverse KL (paper) | min a run |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows = summary_rows(args)
    for row in rows:
        name = "GAN" if row["pack"] == 1 else f"PacGAN{row['pack']}"

        def shown(key: str, scale: float, digits: int, row: dict[str, Any] = row) -> str:
            mean, error = row[key]
            text = f"{scale * mean:.{digits}f}"
            return text if row["runs"] < 2 else f"{text} ± {scale * error:.{digits}f}"

        paper = PAPER[(row["target"], row["pack"])]
        lines.append(
            f"| {row['target']} | {name} | {row['runs']} | {shown('modes', 1, 1)} | {paper[0]} | "
            f"{shown('high_quality', 100, 1)} | {paper[1]} | {shown('reverse_kl', 1, 2)} | "
            f"{paper[2]} | {row['minutes']:.1f} |"
        )
    if any(row["runs"] < args.seeds for row in rows):
        lines += [
            "",
            f"A row with fewer than {args.seeds} runs has runs that have not finished yet (a later "
            "call of the same command continues them); a single run shows no standard error.",
        ]
    lines += [
        "",
        f"`min a run`: the training time of one run as its log counts it (the runs trained "
        f"{args.jobs} at a time, one BLAS thread each, on {os.cpu_count()} CPU cores, beside "
        "other work).",
        "",
        "Modes captured over the run, mean over the seeds (one point per measurement):",
        "",
        f"![modes over time](results/{figure.name})",
        "",
    ]
    args.report.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", nargs="+", choices=["ring", "grid"], default=["ring", "grid"])
    parser.add_argument("--packs", nargs="+", type=int, default=[1, 2, 3, 4])
    parser.add_argument("--seeds", type=int, default=5, help="runs per row (seeds 0 .. N-1)")
    parser.add_argument("--iterations", type=int, default=400_000, help="iterations per run")
    parser.add_argument("--modes-every", type=int, default=1000, help="steps between measurements")
    parser.add_argument("--jobs", type=int, default=2, help="runs trained at the same time")
    parser.add_argument("--out", type=Path, default=Path("runs/modes"), help="the runs' folders")
    parser.add_argument(
        "--report", type=Path, default=HERE / "MODES.md", help="the report to write"
    )
    parser.add_argument("--report-only", action="store_true", help="write the report from the runs")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    given = argv if argv is not None else sys.argv[1:]
    shown = " ".join(["python benchmarks/modes.py", *(a for a in given if a != "--report-only")])
    # seeds outermost: every row gets its first runs before any row gets its last
    todo = [
        (target, pack, seed)
        for seed in range(args.seeds)
        for pack in args.packs
        for target in args.targets
        if finished_step(run_folder(args.out, target, pack, seed)) < args.iterations
    ]
    if not args.report_only:

        def finished(job: tuple[str, int, int], _: None) -> None:
            target, pack, seed = job
            print(f"done: {target} pack {pack} seed {seed}", flush=True)
            write_report(args, shown)

        jobs = {job: partial(train, run_folder(args.out, *job), *job, args) for job in todo}
        run_jobs(jobs, args.jobs, finished)
    write_report(args, shown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
