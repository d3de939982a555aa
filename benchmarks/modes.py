"""Mode collapse measured as PacGAN measures it: GAN and PacGAN2/3/4 on the 2-D ring and grid,
DCGAN and PacDCGAN2 on Stacked MNIST.

Each run is ``tinygan train ring|grid|stacked-mnist --pack M --seed S --iterations N`` in a folder
of its own under ``--out``; its ``modes.csv`` holds the measures over the run (modes captured,
high-quality share, reverse KL of 2,500 samples: :func:`tinygan.quality.metrics.mixture_modes`;
on Stacked MNIST modes captured of 1,000 and KL to uniform of 26,000 samples:
:func:`tinygan.quality.metrics.stacked_mnist_modes`). This script runs the missing ones
(``--jobs`` at a time; a run that was stopped continues with ``--resume``), then writes
``benchmarks/MODES.md``: the mean and standard error over seeds of each row's last measurement,
beside the paper's Table 1 (the mixtures) or Table 2 (Stacked MNIST), with the schedule the runs
had, their wall time and the command, and a figure (a table, for Stacked MNIST) of the modes
captured over the run, so a reader sees when the gap opens. The report is rewritten after every
finished run, so a long session keeps what it has measured; the mixtures and Stacked MNIST each
have a section of it, and a call that trains one of them keeps the other's section as it was.

    python benchmarks/modes.py --seeds 5 --iterations 20000 --jobs 2 --out runs/modes
    python benchmarks/modes.py --targets stacked-mnist --seeds 5 --jobs 2 --data-dir DIR

The paper's protocol is 400 epochs of 100,000 points, batch 100: 400,000 iterations a run on the
mixtures; 50 epochs of 128,000 images, batch 64: 100,000 iterations on Stacked MNIST, where tinygan
trains the ``stacked-mnist`` preset's length by default (``docs/presets.md``).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__" and not __package__:  # run as a file: import as `python -m` would
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
from functools import partial  # noqa: E402
from typing import Any  # noqa: E402

from benchmarks.common import (  # noqa: E402
    mean_and_error,
    run_in_folder,
    run_jobs,
    shown_command,
    training_minutes,
)
from tinygan.models import STACKED_STEPS  # noqa: E402
from tinygan.run.mixture_run import MODES_CSV, MODES_EVERY, read_modes_csv  # noqa: E402
from tinygan.run.stacked_run import STACKED_MODES_EVERY  # noqa: E402

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
#: The modes a PacGAN row should capture on average to stand beside the paper's, per target.
PACKED_TARGET = {"ring": 7.8, "grid": 23.5}
#: The paper's full schedule on the mixtures, in iterations.
PAPER_ITERATIONS = 400_000
STACKED = "stacked-mnist"
#: PacGAN (Lin et al. 2018), Table 2, on Stacked MNIST: modes captured (of 1,000) and KL to
#: uniform; the first four rows as PacGAN quotes them from VEEGAN's paper, its own DCGAN and
#: PacDCGAN2 as mean and standard error over 10 trials.
STACKED_PAPER = {
    "DCGAN (VEEGAN's)": ("99.0", "3.40"),
    "ALI": ("16.0", "5.40"),
    "Unrolled GAN": ("48.7", "4.32"),
    "VEEGAN": ("150.0", "2.95"),
    "DCGAN (PacGAN's)": ("78.9 ± 6.5", "4.50"),
    "PacDCGAN2": ("1000.0 ± 0.0", "0.06"),
}
#: The paper's row beside each of tinygan's, by pack.
STACKED_BESIDE = {1: "DCGAN (PacGAN's)", 2: "PacDCGAN2"}
#: The modes of 1,000 PacDCGAN2 should capture on average to stand beside the paper's.
STACKED_PACKED_TARGET = 990
#: The heading that starts the Stacked MNIST section of the report.
STACKED_HEADING = "# Mode collapse on Stacked MNIST"
#: Real Stacked MNIST images scored for the report's baseline row (the runs' measures' count).
REAL_SAMPLES = 26_000


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
    if target == STACKED:  # the MNIST digits it stacks
        argv += data_flags(args)
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
    if len(rows) < len(args.targets) * len(args.packs) or any(
        row["runs"] < args.seeds for row in rows
    ):
        lines += [
            "",
            f"A row with fewer than {args.seeds} runs has runs that have not finished yet (a later "
            "call of the same command continues them); a single run shows no standard error.",
        ]
    lines += ["", *mixture_verdicts(rows, args.iterations)]
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
    write_section(args.report, mixtures="\n".join(lines))


def mixture_verdicts(rows: list[dict[str, Any]], iterations: int) -> list[str]:
    """The table against its targets, read from ``rows`` (:func:`summary_rows`): each PacGAN row
    against :data:`PACKED_TARGET`, the gap between GAN and PacGAN2 beside the paper's, and what
    the paper's schedule would cost at the runs' speed."""
    lines = ["Against the targets (mean modes over the runs):", ""]
    by_key = {(row["target"], row["pack"]): row for row in rows}
    for (target, pack), row in by_key.items():
        if pack > 1:
            modes = row["modes"][0]
            verdict = "met" if modes >= PACKED_TARGET[target] else "**missed**"
            lines.append(
                f"- {target}, PacGAN{pack}: {modes:.1f} of {MODES_OF[target]} modes, target "
                f"{PACKED_TARGET[target]:g}: {verdict} (runs: {row['runs']})"
            )
    for target in MODES_OF:
        plain, packed = by_key.get((target, 1)), by_key.get((target, 2))
        if plain and packed:
            gap = packed["modes"][0] - plain["modes"][0]
            paper_gap = float(PAPER[(target, 2)][0].split()[0]) - float(
                PAPER[(target, 1)][0].split()[0]
            )
            lines.append(
                f"- {target}, the gap: PacGAN2 captures {gap:+.1f} modes against the GAN's "
                f"{plain['modes'][0]:.1f} (the paper: {paper_gap:+.1f})"
            )
    minutes = [row["minutes"] for row in rows if math.isfinite(row["minutes"])]
    if minutes and iterations < PAPER_ITERATIONS:
        hours = sum(minutes) / len(minutes) * PAPER_ITERATIONS / iterations / 60
        lines += [
            "",
            f"Each run here trains {iterations:,} of the paper's {PAPER_ITERATIONS:,} iterations. "
            f"At these runs' speed the paper's schedule takes about {hours:.0f} hours a run, "
            f"{hours * len(PAPER) * 5:.0f} core-hours for 5 runs of every row; a row still "
            "rising in the figure below at the end of its runs had not finished learning. "
            "A longer schedule continues these runs: the same command with a larger "
            "`--iterations` resumes each one from its last checkpoint.",
        ]
    return lines


def write_section(report: Path, mixtures: str | None = None, stacked: str | None = None) -> None:
    """Write the report with a new mixtures' or Stacked MNIST section, the other as it was."""
    text = report.read_text() if report.is_file() else ""
    head, found, tail = text.partition(STACKED_HEADING)
    sections = [mixtures or head, stacked or found + tail]
    report.write_text("\n\n".join(part.strip("\n") for part in sections if part.strip()) + "\n")


def data_flags(args: argparse.Namespace) -> list[str]:
    """The flags that name the MNIST digits a Stacked MNIST run stacks (none: tinygan's default)."""
    flags = [] if args.data_dir is None else ["--data-dir", str(args.data_dir)]
    return flags if args.split is None else [*flags, "--split", args.split]


def measured(folder: Path) -> list[dict[str, Any]]:
    """The ``modes.csv`` rows of a run folder; none before its first measurement."""
    path = folder / MODES_CSV
    return read_modes_csv(path) if path.is_file() else []


def stacked_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    """One row per pack of the Stacked MNIST runs: the last measurement of each finished run,
    averaged (mean and standard error over the runs), and the mean minutes of a run."""
    rows = []
    for pack in args.packs:
        folders = [run_folder(args.out, STACKED, pack, seed) for seed in range(args.seeds)]
        last = {folder: measured(folder)[-1:] for folder in folders}
        done = {f: end[0] for f, end in last.items() if end and end[0]["step"] >= args.iterations}
        if not done:
            continue
        minutes = [m for m in map(training_minutes, done) if m is not None]
        rows.append(
            {
                "pack": pack,
                "runs": len(done),
                "minutes": sum(minutes) / len(minutes) if minutes else math.nan,
                "modes": mean_and_error([float(r["modes"]) for r in done.values()]),
                "reverse_kl": mean_and_error([r["reverse_kl"] for r in done.values()]),
            }
        )
    return rows


def stacked_name(pack: int) -> str:
    """The name of a Stacked MNIST row: DCGAN unpacked, PacDCGAN2 for packs of 2."""
    return "DCGAN" if pack == 1 else f"PacDCGAN{pack}"


def with_error(value: tuple[float, float], runs: int, digits: int) -> str:
    """``mean ± error``, or the mean alone for a single run."""
    mean, error = value
    return f"{mean:.{digits}f}" if runs < 2 else f"{mean:.{digits}f} ± {error:.{digits}f}"


def real_stacked_counts(args: argparse.Namespace) -> tuple[Any, str]:
    """:data:`REAL_SAMPLES` real Stacked MNIST images (stacked with seed 0 from the digits the
    runs stack) scored as the runs' samples are, each channel read by the same classifier: their
    :class:`~tinygan.quality.metrics.ModeCounts`, and which classifier read them."""
    import numpy as np

    from tinygan.data import load_stacked_mnist
    from tinygan.quality.classifier import choose_classifier
    from tinygan.quality.metrics import stacked_mnist_modes

    rng = np.random.default_rng(0)
    split = args.split or "train"
    images, _, _ = load_stacked_mnist(
        rng, REAL_SAMPLES, split, args.data_dir, download=False, allow_bundled=args.data_dir is None
    )
    chosen = choose_classifier("mnist", args.data_dir, verbose=False)
    return stacked_mnist_modes(images, chosen.classifier), chosen.line


def stacked_source(args: argparse.Namespace) -> str:
    """The digits the runs stacked, as their config.json records them."""
    for seed in range(args.seeds):
        path = run_folder(args.out, STACKED, args.packs[0], seed) / "config.json"
        if path.is_file():
            settings = json.loads(path.read_text()).get("settings", {})
            if settings.get("bundled_data"):
                return "the 10,000 MNIST test digits bundled with tinygan"
            return f"MNIST's {settings.get('split', 'train')} digits"
    return f"MNIST's {args.split or 'train'} digits"


def modes_over_run(args: argparse.Namespace) -> list[str]:
    """A table of the modes captured at each measured step, mean over the seeds, one column per
    pack (every run that reached the step counts, finished or not)."""
    per_step: dict[int, dict[int, list[int]]] = {}
    for pack in args.packs:
        for seed in range(args.seeds):
            for row in measured(run_folder(args.out, STACKED, pack, seed)):
                per_step.setdefault(row["step"], {}).setdefault(pack, []).append(row["modes"])
    if not per_step:
        return ["No run has measured its modes yet."]
    header = "| step | " + " | ".join(stacked_name(pack) for pack in args.packs) + " |"
    lines = [header, "|---" * (len(args.packs) + 1) + "|"]
    for step in sorted(per_step):
        cells = [per_step[step].get(pack, []) for pack in args.packs]
        shown = [f"{sum(c) / len(c):.1f} ({len(c)})" if c else "-" for c in cells]
        lines.append(f"| {step:,} | " + " | ".join(shown) + " |")
    return lines


def write_stacked_report(args: argparse.Namespace, command: str) -> None:
    """The Stacked MNIST section of the report: tinygan's rows beside PacGAN's Table 2, the real
    images' row, the modes over the run; the mixtures' section is kept as it was."""
    if args.real_counts is None:  # scored once a call: it takes about half a minute
        args.real_counts = real_stacked_counts(args)
    real, classifier = args.real_counts
    lines = [
        f"{STACKED_HEADING}, beside PacGAN's Table 2",
        "",
        f"Written by `benchmarks/modes.py`; repeat with `{command}`.",
        "",
        "Network: the `stacked-mnist` preset is `dcgan-fast`'s network on three channels (G: z "
        "of 100, Dense to (64, 7, 7), transposed convolutions to 32 and then 3 channels, tanh; "
        "D: 4x4 stride-2 convolutions of 3m to 32 to 64 channels, a logit), not the papers' "
        "DCGAN (four 5x5 convolutions of 64 to 512 channels in each network), which is out of "
        "reach on a 2-core CPU. Otherwise the protocol of PacGAN's code: z ~ U(-1, 1) of 100, "
        "Adam 2e-4 with beta1 0.5, batch 64 (of packs of m images with `--pack m`), two G "
        "updates after each D update, on its noise.",
        "",
        f"Schedule: {args.iterations:,} iterations a run (the papers train 50 epochs of 128,000 "
        f"images, 100,000 iterations), on as many images as there are digits, stacked from "
        f"{stacked_source(args)}; measured on 26,000 samples (G in inference mode, fixed z) at "
        "the end of each run: modes captured of 1,000 (each channel read by tinygan's MNIST "
        "classifier) and the KL of the modes' histogram to uniform. tinygan: mean ± standard "
        "error over the runs counted in the `runs` column; paper: mean ± standard error over 10 "
        f"trials where it gives one. The {classifier}.",
        "",
        *stacked_table(args, real),
        "",
        "The paper's other rows (modes captured, KL), which PacGAN quotes from VEEGAN:",
        "",
        "| system | modes | KL |",
        "|---|---|---|",
    ]
    others = [name for name in STACKED_PAPER if name not in STACKED_BESIDE.values()]
    lines += [
        f"| {name} | {STACKED_PAPER[name][0]} | {STACKED_PAPER[name][1]} |" for name in others
    ]
    lines += [
        "",
        f"`min a run`: the training time of one run as its log counts it, its measurements "
        f"included (the runs trained {args.jobs} at a time, one BLAS thread each, on "
        f"{os.cpu_count()} CPU cores, beside other work).",
        "",
        "Modes captured over the run, mean over the seeds (in brackets: the runs measured):",
        "",
        *modes_over_run(args),
    ]
    write_section(args.report, stacked="\n".join(lines))


def stacked_table(args: argparse.Namespace, real: Any) -> list[str]:
    """tinygan's rows beside the paper's, and the real images' row (``real``: their counts)."""
    lines = [
        "| D | runs | modes (tinygan) | modes (paper) | KL (tinygan) | KL (paper) | min a run |",
        "|---|---|---|---|---|---|---|",
    ]
    rows = {row["pack"]: row for row in stacked_rows(args)}
    for pack in args.packs:
        paper = STACKED_PAPER.get(STACKED_BESIDE.get(pack, ""), ("-", "-"))
        row = rows.get(pack)
        if row is None:  # no run of it has finished yet
            lines.append(f"| {stacked_name(pack)} | 0 | - | {paper[0]} | - | {paper[1]} | - |")
            continue
        lines.append(
            f"| {stacked_name(pack)} | {row['runs']} | "
            f"{with_error(row['modes'], row['runs'], 1)} | {paper[0]} | "
            f"{with_error(row['reverse_kl'], row['runs'], 2)} | {paper[1]} | "
            f"{row['minutes']:.1f} |"
        )
    lines += [
        f"| real Stacked MNIST | - | {real.modes_captured} | - | {real.reverse_kl:.2f} | - | - |",
        "",
        f"`real Stacked MNIST`: {real.num_samples:,} real images (stacked with seed 0 from the "
        "same digits) scored the same way: what a generator that matched the data would score. "
        "A channel the classifier misreads moves its image to another mode, and even a perfectly "
        "even histogram of 26,000 samples has a KL of about 0.02 by chance.",
    ]
    if any(pack not in rows or rows[pack]["runs"] < args.seeds for pack in args.packs):
        lines += [
            "",
            f"A row with fewer than {args.seeds} runs has runs that have not finished yet (a later "
            "call of the same command continues them); a single run shows no standard error.",
        ]
    if 1 in rows and 2 in rows:
        plain, packed = rows[1]["modes"][0], rows[2]["modes"][0]
        paper_plain, paper_packed = (
            float(STACKED_PAPER[STACKED_BESIDE[pack]][0].split()[0]) for pack in (1, 2)
        )
        verdict = "met" if packed >= STACKED_PACKED_TARGET else "**missed**"
        lines += [
            "",
            f"Against the targets: PacDCGAN2 captures {packed:.1f} of 1,000 modes, target "
            f"{STACKED_PACKED_TARGET}: {verdict}; the gap to DCGAN is {packed - plain:+.1f} modes "
            f"(the paper: {paper_packed - paper_plain:+.1f}, its DCGAN having collapsed to "
            f"{paper_plain:.1f}).",
        ]
    return lines


def with_defaults(
    args: argparse.Namespace, targets: list[str], packs: list[int], iterations: int, every: int
) -> argparse.Namespace:
    """The flags for some of the targets, with their defaults where a flag was not given."""
    return argparse.Namespace(
        **{
            **vars(args),
            "targets": targets,
            "packs": args.packs or packs,
            "iterations": args.iterations or iterations,
            "modes_every": args.modes_every or every,
            "real_counts": None,
        }
    )


def target_groups(args: argparse.Namespace) -> list[tuple[argparse.Namespace, Any]]:
    """The mixtures' runs and Stacked MNIST's, each with its defaults and its report's writer."""
    groups = []
    mixtures = [target for target in args.targets if target in MODES_OF]
    if mixtures:
        group = with_defaults(args, mixtures, [1, 2, 3, 4], 400_000, MODES_EVERY)
        groups.append((group, write_report))
    if STACKED in args.targets:
        group = with_defaults(args, [STACKED], [1, 2], STACKED_STEPS, STACKED_MODES_EVERY)
        groups.append((group, write_stacked_report))
    return groups


def argument_parser() -> argparse.ArgumentParser:
    """The script's flags; a flag not given takes each target's default (:func:`with_defaults`)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--targets", nargs="+", choices=[*MODES_OF, STACKED], default=["ring", "grid"]
    )
    parser.add_argument(
        "--packs", nargs="+", type=int, help="default: 1 2 3 4 (ring, grid), 1 2 (stacked-mnist)"
    )
    parser.add_argument("--seeds", type=int, default=5, help="runs per row (seeds 0 .. N-1)")
    parser.add_argument(
        "--iterations",
        type=int,
        help=f"iterations per run (default: 400,000 on ring and grid, {STACKED_STEPS:,} on "
        "stacked-mnist)",
    )
    parser.add_argument(
        "--modes-every",
        type=int,
        help=f"steps between measurements (default: {MODES_EVERY} on ring and grid, "
        f"{STACKED_MODES_EVERY} on stacked-mnist)",
    )
    parser.add_argument("--jobs", type=int, default=2, help="runs trained at the same time")
    parser.add_argument("--out", type=Path, default=Path("runs/modes"), help="the runs' folders")
    parser.add_argument(
        "--report", type=Path, default=HERE / "MODES.md", help="the report to write"
    )
    parser.add_argument("--report-only", action="store_true", help="write the report from the runs")
    parser.add_argument(
        "--data-dir", type=Path, help="stacked-mnist: the MNIST folder (default: tinygan's)"
    )
    parser.add_argument(
        "--split", choices=["train", "test"], help="stacked-mnist: the split (default: train)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser()
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    given = argv if argv is not None else sys.argv[1:]
    shown = shown_command("benchmarks/modes.py", [a for a in given if a != "--report-only"])
    groups = target_groups(args)
    # seeds outermost: every row gets its first runs before any row gets its last
    todo = {
        (target, pack, seed): (group, writer)
        for seed in range(args.seeds)
        for group, writer in groups
        for pack in group.packs
        for target in group.targets
        if finished_step(run_folder(args.out, target, pack, seed)) < group.iterations
    }
    if not args.report_only:

        def finished(job: tuple[str, int, int], _: None) -> None:
            target, pack, seed = job
            print(f"done: {target} pack {pack} seed {seed}", flush=True)
            group, writer = todo[job]
            writer(group, shown)

        jobs = {
            job: partial(train, run_folder(args.out, *job), *job, group)
            for job, (group, _) in todo.items()
        }
        run_jobs(jobs, args.jobs, finished)
    for group, writer in groups:
        writer(group, shown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
