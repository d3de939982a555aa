"""Quality over whole training schedules: what best-keeping, the EMA and dcgan-fast buy.

    python benchmarks/quality.py schedules --mnist-dir DIR --runs runs/schedules --train
    python benchmarks/quality.py schedules --mnist-dir DIR --runs runs/schedules   # evaluate only

Trains (with ``--train``; about an hour on 2 cores) and then scores with ``tinygan eval`` (N = 10,000,
its default) every checkpoint named in :data:`RUNS`: the mlp-tf (000) schedule of 100k iterations at
10k / 20k / 50k / 100k and its ``best.npz``, plain and with ``--ema 0.999``, and dcgan-fast at 500 /
1,000 / 2,000 steps, two seeds each; then dcgan-fast on Fashion-MNIST's train split
(``--fashion-dir``). The MNIST runs train on the MNIST test split (the one split many machines
have), and ``tinygan eval`` scores against the quality classifier's held-out images. The table,
the commands that reproduce each row, PASS / MISS per target and a sample grid per checkpoint go into the section of
``benchmarks/QUALITY.md`` between the markers below (the rest of the file is left alone), the grids
into ``benchmarks/results/schedules/``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
QUALITY_MD = HERE / "QUALITY.md"
GRIDS = HERE / "results" / "schedules"
BEGIN, END = "<!-- schedules:begin -->", "<!-- schedules:end -->"

MLP_FLAGS = (
    "--quality-every 5000 --checkpoint-every 10000 --keep-checkpoints 0 --checkpoint-seconds 0"
)
FAST_FLAGS = (
    "--quality-every 500 --checkpoint-every 500 --keep-checkpoints 0 --checkpoint-seconds 0"
)
MLP_STEPS = (10_000, 20_000, 50_000, 100_000)
FAST_STEPS = (500, 1000, 2000)


@dataclass(frozen=True)
class Run:
    """One training run and the checkpoints of it that get a row."""

    name: str
    label: str
    preset: str
    seed: int
    flags: str
    steps: tuple[int, ...]
    dataset: str = "mnist"
    split: str = "test"
    best: bool = True
    rows: list[str] = field(default_factory=list, compare=False)

    def checkpoints(self) -> list[tuple[str, str]]:
        """(row label, file name) per row."""
        files = [(f"step {step:,}", f"step_{step:08d}.npz") for step in self.steps]
        return files + ([("best.npz", "best.npz")] if self.best else [])


RUNS = [
    Run(f"mlp_tf_{variant}_s{seed}", label, "mlp-tf", seed, MLP_FLAGS + extra, MLP_STEPS)
    for seed in (1, 2)
    for variant, label, extra in (
        ("plain", "mlp-tf", ""),
        ("ema", "mlp-tf, EMA 0.999", " --ema 0.999"),
    )
] + [
    Run(f"dcgan_fast_s{seed}", "dcgan-fast", "dcgan-fast", seed, FAST_FLAGS, FAST_STEPS)
    for seed in (1, 2)
]
FASHION_RUN = Run(
    "dcgan_fast_fashion_s1",
    "dcgan-fast, Fashion-MNIST",
    "dcgan-fast",
    1,
    FAST_FLAGS,
    FAST_STEPS,
    dataset="fashion-mnist",
    split="train",
)
#: How the commands in QUALITY.md name this machine's folders.
PLACEHOLDERS = {"mnist_dir": "MNIST_DIR", "fashion_dir": "FASHION_DIR", "runs": "RUNS"}


def data_flags(run: Run, args: argparse.Namespace) -> list[str]:
    if run.dataset == "fashion-mnist":
        return ["--dataset", "fashion-mnist", "--data-dir", str(args.fashion_dir)]
    return ["--data-dir", str(args.mnist_dir)]


def train_argv(run: Run, args: argparse.Namespace) -> list[str]:
    out = ["--out", str(args.runs / run.name)]
    flags = ["--seed", str(run.seed), "--split", run.split, *shlex.split(run.flags)]
    return ["train", run.preset, *flags, *data_flags(run, args), *out]


def eval_argv(run: Run, checkpoint: Path, json_path: Path, args: argparse.Namespace) -> list[str]:
    return ["eval", str(checkpoint), *data_flags(run, args), "--json", str(json_path)]


def tinygan(argv: list[str]) -> None:
    """Run a ``tinygan`` command in this process; stop on failure."""
    from tinygan.run.cli import main

    code = main(argv)
    if code not in (0, None):
        sys.exit(f"tinygan {shlex.join(argv)} exited with {code}")


def train(run: Run, args: argparse.Namespace) -> None:
    """Train ``run`` and record its wall time in ``<run>/train_seconds.txt``."""
    start = time.perf_counter()
    tinygan([*train_argv(run, args), "--overwrite", "--no-progress"])
    (args.runs / run.name / "train_seconds.txt").write_text(f"{time.perf_counter() - start:.1f}\n")


def wall_minutes(run: Run, args: argparse.Namespace) -> str:
    """The run's recorded training wall time, in minutes, or "-"."""
    path = args.runs / run.name / "train_seconds.txt"
    return f"{float(path.read_text()) / 60:.1f}" if path.is_file() else "-"


def evaluate(run: Run, args: argparse.Namespace) -> list[dict[str, Any]]:
    """One scored row per checkpoint of ``run`` (those missing are skipped with a note)."""
    rows = []
    folder = args.runs / run.name / "checkpoints"
    for label, filename in run.checkpoints():
        path = folder / filename
        if not path.is_file():
            print(f"missing: {path}", file=sys.stderr)
            continue
        json_path = args.runs / run.name / f"eval_{filename.removesuffix('.npz')}.json"
        if not json_path.is_file() or args.train:
            tinygan(eval_argv(run, path, json_path, args))
        result = json.loads(json_path.read_text())
        grid = GRIDS / f"{run.name}_{filename.removesuffix('.npz')}"
        if not (grid / "grid.png").is_file() or args.train:
            tinygan(["sample", str(path), "--n", "64", "--grid", "8", "8", "--out", str(grid)])
            (grid / "latents.npy").unlink(missing_ok=True)  # latent seed 0 makes them again
        rows.append({"run": run, "label": label, "path": path, "result": result, "grid": grid})
    return rows


def best_step(path: Path) -> str:
    """The step a best.npz was kept at, from its metadata."""
    from tinygan.run.checkpoint import checkpoint_metadata, read_checkpoint

    metadata = checkpoint_metadata(read_checkpoint(path))
    best = metadata.get("best") or {}
    return f" (step {best['step']:,})" if "step" in best else ""


def table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| run | seed | checkpoint | N | FID (lower better) | IS | classes hit | precision | recall | grid |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        run, generated = row["run"], row["result"]["generated"]
        label = row["label"] + (best_step(row["path"]) if row["label"] == "best.npz" else "")
        grid = next(row["grid"].glob("*.png"), None)
        link = f"[grid]({grid.relative_to(HERE)})" if grid else "-"
        lines.append(
            f"| {run.label} | {run.seed} | {label} | {generated['n']} | "
            f"{generated['fid']:.2f} | {generated['inception_score']:.2f} | "
            f"{generated['classes_hit']:g}/10 | {generated['precision']:.3f} | "
            f"{generated['recall']:.3f} | {link} |"
        )
    return lines


def scores_of(rows: list[dict[str, Any]], run_name: str) -> list[dict[str, Any]]:
    """The generated-image scores of one run's rows, each with its row label."""
    return [
        r["result"]["generated"] | {"label": r["label"]} for r in rows if r["run"].name == run_name
    ]


def targets(rows: list[dict[str, Any]]) -> list[str]:
    """PASS / MISS of the two quality targets, per seed."""
    lines = []
    for seed in (1, 2):
        plain = scores_of(rows, f"mlp_tf_plain_s{seed}")
        ema = scores_of(rows, f"mlp_tf_ema_s{seed}")
        ema_best = next((s for s in ema if s["label"] == "best.npz"), None)
        if plain and ema_best:
            plain_best = min(s["fid"] for s in plain)
            ok = ema_best["classes_hit"] == 10 and ema_best["fid"] <= 0.8 * plain_best
            lines.append(
                f"- mlp-tf seed {seed}, best-keeping with EMA: FID {ema_best['fid']:.2f} vs the "
                f"plain schedule's best {plain_best:.2f} ({100 * (1 - ema_best['fid'] / plain_best):.0f}% "
                f"lower; target at least 20%), {ema_best['classes_hit']:g}/10 classes: "
                f"**{'PASS' if ok else 'MISS'}**"
            )
        fast = [s for s in scores_of(rows, f"dcgan_fast_s{seed}") if s["label"] != "best.npz"]
        if fast:
            reached = [s for s in fast if s["inception_score"] >= 7 and s["classes_hit"] == 10]
            best_is = max(s["inception_score"] for s in fast)
            lines.append(
                f"- dcgan-fast seed {seed}: IS >= 7 with 10/10 classes within 2,000 steps: "
                f"{'first at ' + reached[0]['label'] if reached else 'not reached'} (best IS "
                f"{best_is:.2f}): **{'PASS' if reached else 'MISS'}**"
            )
    return lines


def section(rows: list[dict[str, Any]], wall: dict[str, str], args: argparse.Namespace) -> str:
    runs = {row["run"].name: row["run"] for row in rows}
    shown = argparse.Namespace(**{key: Path(value) for key, value in PLACEHOLDERS.items()})
    commands = [f"tinygan {shlex.join(train_argv(run, shown))}" for run in runs.values()]
    commands.append(
        "tinygan eval RUNS/<run>/checkpoints/<checkpoint>.npz --data-dir MNIST_DIR "
        "--json RUNS/<run>/eval_<checkpoint>.json  # FASHION_DIR and --dataset for the clothes"
    )
    times = [f"{name} {minutes} min" for name, minutes in wall.items() if minutes != "-"]
    lines = [
        BEGIN,
        "## Whole schedules: best-keeping, EMA and dcgan-fast",
        "",
        "Written by `benchmarks/quality.py schedules`; repeat with",
        "",
        "    python benchmarks/quality.py schedules --mnist-dir MNIST_DIR --fashion-dir FASHION_DIR "
        "--runs RUNS --train",
        "",
        "Each row is `tinygan eval` (N = 10,000 samples, latent seed 0, against the quality "
        "classifier's 2,000 held-out MNIST test images, see the calibration row above; the "
        "Fashion-MNIST rows against its 10,000 test images, which that classifier never saw) of one "
        "checkpoint; `best.npz` is the checkpoint the run kept for its lowest FID measured during "
        "training (`--quality-every`, 2,000 samples), with the step it came from. The EMA runs' "
        "checkpoints are scored through their moving average, as `tinygan eval` does.",
        "",
        *table(rows),
        "",
        "Targets:",
        "",
        *targets(rows),
        "",
        "The runs, then one `tinygan eval` per checkpoint:",
        "",
        "```bash",
        *commands,
        "```",
        "",
    ]
    if times:
        lines += [
            "Training wall time as recorded, quality measurements included (other work may have "
            f"shared the cores; benchmarks/README.md has idle timings): {', '.join(times)}.",
            "",
        ]
    lines.append(END)
    return "\n".join(lines) + "\n"


def write_section(text: str) -> None:
    """Replace the marked section of QUALITY.md (or append it)."""
    current = QUALITY_MD.read_text() if QUALITY_MD.is_file() else ""
    if BEGIN in current and END in current:
        head, rest = current.split(BEGIN, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        current = head + text + tail
    else:
        current = current.rstrip("\n") + "\n\n" + text
    QUALITY_MD.write_text(current)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="quality.py schedules", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--mnist-dir", type=Path, required=True, help="folder with MNIST's IDX files"
    )
    parser.add_argument(
        "--fashion-dir", type=Path, help="folder with Fashion-MNIST's (adds its run)"
    )
    parser.add_argument("--runs", type=Path, required=True, help="where the runs are (or go)")
    parser.add_argument("--train", action="store_true", help="train the runs first (overwrites)")
    parser.add_argument("--only", nargs="+", help="names of the runs to handle (default: all)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Train (with ``--train``) and score the runs, rewrite their section of QUALITY.md, print it."""
    args = parse_args(argv)
    runs = RUNS + ([FASHION_RUN] if args.fashion_dir else [])
    if args.only:
        runs = [run for run in runs if run.name in args.only]
    rows: list[dict[str, Any]] = []
    for run in runs:
        if args.train:
            train(run, args)
        rows += evaluate(run, args)
    text = section(rows, {run.name: wall_minutes(run, args) for run in runs}, args)
    write_section(text)
    print(text)
