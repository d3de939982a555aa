"""Quality over whole training schedules: what best-keeping, the EMA and dcgan-fast buy.

    python benchmarks/quality.py schedules --mnist-dir DIR --runs runs/schedules --train
    python benchmarks/quality.py schedules --mnist-dir DIR --runs runs/schedules   # evaluate only
    python benchmarks/quality.py schedules --mnist-dir DIR --runs runs/schedules --group collapse

Trains (with ``--train``; about an hour on 2 cores) and then scores with ``tinygan eval`` (N = 10,000,
its default) every checkpoint named in :data:`RUNS`: the mlp-tf (000) schedule of 100k iterations at
10k / 20k / 50k / 100k and its ``best.npz``, plain and with ``--ema 0.999``, and dcgan-fast at 500 /
1,000 / 2,000 steps, two seeds each; then dcgan-fast on Fashion-MNIST's train split
(``--fashion-dir``). The MNIST runs train on the MNIST test split (the one split many machines
have), and ``tinygan eval`` scores against the quality classifier's held-out images. The table,
the commands that reproduce each row, PASS / MISS per target and a sample grid per checkpoint go into the section of
``benchmarks/QUALITY.md`` between the markers below (the rest of the file is left alone), the grids
into ``benchmarks/results/schedules/``.

The plain mlp-tf schedule ends at step 100,000 with few of the ten digits left. The ``collapse``
group (:data:`COLLAPSE_RUNS`, ``--group collapse``) trains the same schedule with one remedy each,
on the same seeds: ``--pack 2`` (PacGAN's packing) and ``--minibatch-std`` (ProGAN's minibatch
standard deviation). Its rows go into their own section (:data:`COLLAPSE_BEGIN`), beside the plain
rows read back from the schedules section of QUALITY.md, with whether the collapse at 100k goes
away. A section is rewritten only when some of its runs were scored, so scoring one group keeps
the other's section as it is.
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
COLLAPSE_BEGIN, COLLAPSE_END = "<!-- collapse:begin -->", "<!-- collapse:end -->"

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


def mlp_tf_runs(variants: tuple[tuple[str, str, str], ...]) -> list[Run]:
    """mlp-tf's 100k schedule on seeds 1 and 2 for each (name, label, extra flags) variant."""
    return [
        Run(f"mlp_tf_{variant}_s{seed}", label, "mlp-tf", seed, MLP_FLAGS + extra, MLP_STEPS)
        for seed in (1, 2)
        for variant, label, extra in variants
    ]


RUNS = mlp_tf_runs((("plain", "mlp-tf", ""), ("ema", "mlp-tf, EMA 0.999", " --ema 0.999"))) + [
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
#: The plain schedule with one remedy against its collapse at 100k each.
COLLAPSE_RUNS = mlp_tf_runs(
    (
        ("pack2", "mlp-tf, --pack 2", " --pack 2"),
        ("mbstd", "mlp-tf, --minibatch-std", " --minibatch-std"),
    )
)
#: The plain schedule's run label in the schedules section, which the collapse runs are set beside.
PLAIN_LABEL = "mlp-tf"
#: The checkpoint the collapse is judged at.
COLLAPSE_STEP = f"step {MLP_STEPS[-1]:,}"
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


def train_commands(rows: list[dict[str, Any]]) -> list[str]:
    """The ``tinygan train`` command of each run that has rows, with the folders as placeholders."""
    runs = {row["run"].name: row["run"] for row in rows}
    shown = argparse.Namespace(**{key: Path(value) for key, value in PLACEHOLDERS.items()})
    return [f"tinygan {shlex.join(train_argv(run, shown))}" for run in runs.values()]


#: How every checkpoint is scored, as the sections show it.
EVAL_COMMAND = (
    "tinygan eval RUNS/<run>/checkpoints/<checkpoint>.npz --data-dir MNIST_DIR "
    "--json RUNS/<run>/eval_<checkpoint>.json"
)


def wall_time_lines(wall: dict[str, str]) -> list[str]:
    """The paragraph on the runs' recorded training wall times (none when none is recorded)."""
    times = [f"{name} {minutes} min" for name, minutes in wall.items() if minutes != "-"]
    if not times:
        return []
    return [
        "Training wall time as recorded, quality measurements included (other work may have "
        f"shared the cores; benchmarks/README.md has idle timings): {', '.join(times)}.",
        "",
    ]


def section(rows: list[dict[str, Any]], wall: dict[str, str], args: argparse.Namespace) -> str:
    commands = train_commands(rows)
    commands.append(EVAL_COMMAND + "  # FASHION_DIR and --dataset for the clothes")
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
        *wall_time_lines(wall),
        END,
    ]
    return "\n".join(lines) + "\n"


def recorded_rows(text: str, run_label: str) -> dict[tuple[int, str], dict[str, float]]:
    """The rows of ``run_label`` in the schedules section of a QUALITY.md ``text``, by (seed,
    checkpoint): the checkpoint ``step 100,000`` or ``best.npz``; each row's FID, IS and classes
    hit. Empty when the section is missing."""
    if BEGIN not in text or END not in text:
        return {}
    rows = {}
    for line in text.split(BEGIN, 1)[1].split(END, 1)[0].splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 7 or cells[0] != run_label or not cells[1].isdigit():
            continue
        checkpoint = "best.npz" if cells[2].startswith("best.npz") else cells[2]
        rows[int(cells[1]), checkpoint] = {
            "fid": float(cells[4]),
            "inception_score": float(cells[5]),
            "classes_hit": float(cells[6].split("/")[0]),
        }
    return rows


def collapse_verdict(scores: dict[str, float] | None, plain: dict[str, float] | None) -> str:
    """Whether a run's :data:`COLLAPSE_STEP` checkpoint is rid of the plain run's collapse: gone
    when it hits all ten classes, smaller when it hits more than the plain run, else still there."""
    if scores is None:
        return "not scored yet"
    if scores["classes_hit"] == 10:
        return "the collapse is gone (all 10 classes)"
    if plain is None:
        return "not all 10 classes, and no plain row to compare with"
    if scores["classes_hit"] > plain["classes_hit"]:
        return "the collapse is smaller (more classes than the plain run) but not gone"
    return "the collapse is still there (no more classes than the plain run)"


def collapse_comparison(
    rows: list[dict[str, Any]], plain: dict[tuple[int, str], dict[str, float]]
) -> tuple[list[str], list[str]]:
    """The table of each collapse row beside the plain row of its seed and checkpoint, and one
    verdict line per run on its :data:`COLLAPSE_STEP` checkpoint."""
    table_lines = [
        "| run | seed | checkpoint | classes hit | plain mlp-tf | FID | plain mlp-tf |",
        "|---|---|---|---|---|---|---|",
    ]
    verdicts = []
    runs = {row["run"].name: row["run"] for row in rows}
    for run in runs.values():
        scores = {s["label"]: s for s in scores_of(rows, run.name)}
        for label, generated in scores.items():
            before = plain.get((run.seed, label))
            classes = f"{before['classes_hit']:g}/10" if before else "-"
            fid = f"{before['fid']:.2f}" if before else "-"
            table_lines.append(
                f"| {run.label} | {run.seed} | {label} | {generated['classes_hit']:g}/10 | "
                f"{classes} | {generated['fid']:.2f} | {fid} |"
            )
        now, before = scores.get(COLLAPSE_STEP), plain.get((run.seed, COLLAPSE_STEP))
        measured = f"{now['classes_hit']:g}/10 classes, FID {now['fid']:.2f}" if now else "-"
        plain_text = f"{before['classes_hit']:g}/10, FID {before['fid']:.2f}" if before else "-"
        verdicts.append(
            f"- {run.label}, seed {run.seed}, at {COLLAPSE_STEP}: {measured} (plain mlp-tf: "
            f"{plain_text}): {collapse_verdict(now, before)}"
        )
    return table_lines, verdicts


def remedy_summary(rows: list[dict[str, Any]]) -> list[str]:
    """Per remedy: on how many of its seeds scored the collapse at :data:`COLLAPSE_STEP` is gone."""
    lines = []
    for label in dict.fromkeys(run.label for run in COLLAPSE_RUNS):
        seeds = [run for run in COLLAPSE_RUNS if run.label == label]
        scored = [
            s for run in seeds for s in scores_of(rows, run.name) if s["label"] == COLLAPSE_STEP
        ]
        if not scored:
            continue
        gone = sum(s["classes_hit"] == 10 for s in scored)
        answer = "yes" if gone == len(scored) else ("no" if gone == 0 else "on some seeds only")
        missing = len(seeds) - len(scored)
        later = f"; {missing} not scored yet" if missing else ""
        lines.append(
            f"- {label}: does the collapse at {COLLAPSE_STEP} go away? **{answer}** (all 10 "
            f"classes on {gone} of the {len(scored)} seeds scored{later})"
        )
    return lines


def collapse_section(rows: list[dict[str, Any]], wall: dict[str, str], quality_md: str) -> str:
    """The section of the collapse runs, set beside the plain rows of ``quality_md`` (the text of
    QUALITY.md)."""
    plain = recorded_rows(quality_md, PLAIN_LABEL)
    comparison, verdicts = collapse_comparison(rows, plain)
    lines = [
        COLLAPSE_BEGIN,
        "## Against the collapse at 100k: packing and minibatch std on mlp-tf",
        "",
        "Written by `benchmarks/quality.py schedules --group collapse`; repeat with",
        "",
        "    python benchmarks/quality.py schedules --mnist-dir MNIST_DIR --runs RUNS "
        "--group collapse --train",
        "",
        "These runs are the plain mlp-tf schedule of the section above with one remedy each "
        f"against its loss of digits by {COLLAPSE_STEP}, on the same seeds: "
        "`--pack 2` (PacGAN's packing: D judges two digits at once, real or generated) and "
        "`--minibatch-std` (ProGAN's minibatch standard deviation: D's last layer also sees how "
        "varied its batch is). Rows scored as above (`tinygan eval`, N = 10,000).",
        "",
        *table(rows),
        "",
        "Beside the plain mlp-tf rows of the same seed and checkpoint, as the section above "
        "records them:",
        "",
        *comparison,
        "",
        f"Does the collapse at {COLLAPSE_STEP} go away? It is gone for a run that hits all 10 "
        f"classes at {COLLAPSE_STEP}:",
        "",
        *verdicts,
        "",
        "In short, remedy by remedy:",
        "",
        *remedy_summary(rows),
        "",
        "The runs, then one `tinygan eval` per checkpoint:",
        "",
        "```bash",
        *train_commands(rows),
        EVAL_COMMAND,
        "```",
        "",
        *wall_time_lines(wall),
        COLLAPSE_END,
    ]
    return "\n".join(lines) + "\n"


def write_section(text: str, begin: str = BEGIN, end: str = END) -> None:
    """Replace the section of QUALITY.md between ``begin`` and ``end`` (or append it)."""
    current = QUALITY_MD.read_text() if QUALITY_MD.is_file() else ""
    if begin in current and end in current:
        head, rest = current.split(begin, 1)
        tail = rest.split(end, 1)[1].lstrip("\n")
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
    parser.add_argument(
        "--group",
        choices=("schedules", "collapse"),
        help="only the runs of one section: the schedules (mlp-tf plain and EMA, dcgan-fast) or "
        "the remedies against mlp-tf's collapse at 100k (default: both)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Train (with ``--train``) and score the runs, rewrite the sections of QUALITY.md that have
    scored rows, print them."""
    args = parse_args(argv)
    groups = {
        "schedules": RUNS + ([FASHION_RUN] if args.fashion_dir else []),
        "collapse": COLLAPSE_RUNS,
    }
    for group, runs in groups.items():
        if args.group not in (None, group):
            continue
        runs = [run for run in runs if not args.only or run.name in args.only]
        rows: list[dict[str, Any]] = []
        for run in runs:
            if args.train:
                train(run, args)
            rows += evaluate(run, args)
        if not rows:  # nothing scored: the section stays as it is
            continue
        wall = {run.name: wall_minutes(run, args) for run in runs}
        if group == "schedules":
            text = section(rows, wall, args)
            write_section(text)
        else:
            recorded = QUALITY_MD.read_text() if QUALITY_MD.is_file() else ""
            text = collapse_section(rows, wall, recorded)
            write_section(text, COLLAPSE_BEGIN, COLLAPSE_END)
        print(text)
