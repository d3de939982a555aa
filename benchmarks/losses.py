"""The GAN losses and regularisers side by side, on the 2-D ring and grid and on MNIST.

Each variant is a set of ``tinygan train`` flags (:data:`VARIANTS`): the non-saturating baseline,
least squares, hinge, the Wasserstein critic with weight clipping, WGAN-GP, R1 and spectral
normalisation with hinge, and the conditional GAN. Each run trains in a folder of its own under
``--out`` (``<target>_<variant>_seed<S>``, its output in ``<folder>.log`` beside it); this script
runs the missing ones (``--jobs`` at a time, one BLAS thread each; a run that was stopped continues
with ``--resume``), then writes ``benchmarks/LOSSES.md``: per target and variant the mean ± standard
error over seeds of the last measurement of each finished run, the minutes a run trained (from its
log), the variants' papers, the conditional GAN's class accuracy, and figures. The report is
rewritten after every finished run, so a long session keeps what it has measured.

    python benchmarks/losses.py --seeds 3 --mnist-seeds 2 --jobs 2 --data-dir DIR

On the ring and the grid a run's measures are the last row of its ``modes.csv`` (modes captured,
high-quality share, reverse KL of 2,500 samples); on MNIST ``dcgan-fast`` trains its 2,000 steps
and the measures are the last row of its ``quality.csv`` (FID, IS, classes hit, precision, recall
of 2,000 samples). A run that ``tinygan train`` refuses (a gradient penalty on dcgan-fast, whose D
has BatchNorm) keeps its one-line reason in its log, and the table shows the row as refused with
that reason. Each finished conditional run is then judged by ``tinygan eval`` of its final
checkpoint (10,000 samples, the ten digits asked for equally often), into ``eval.json`` in its
folder: the share of samples the quality classifier puts in the digit asked for, per digit.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__" and not __package__:  # run as a file: import as `python -m` would
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import re  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from functools import partial  # noqa: E402
from typing import Any  # noqa: E402

from benchmarks.common import (  # noqa: E402
    cli_command,
    cpu_count,
    mean_and_error,
    run_in_folder,
    run_jobs,
    run_log,
    run_logged,
    shown_command,
    training_minutes,
)
from tinygan.run.records import (  # noqa: E402
    LOG_CSV,
    MODES_CSV,
    QUALITY_CSV,
    read_log_rows,
    read_modes_csv,
    read_quality_rows,
)

HERE = Path(__file__).resolve().parent
MIXTURES = ("ring", "grid")
TARGETS = (*MIXTURES, "mnist")
MODES_OF = {"ring": 8, "grid": 25}
#: The MNIST runs: dcgan-fast's own schedule, on the test split as QUALITY.md's dcgan-fast rows
#: (the split every machine has), measured every 250 steps so that the figures have a curve.
MNIST_PRESET, MNIST_STEPS, MNIST_QUALITY_EVERY = "dcgan-fast", 2_000, 250
#: A conditional run's judgement (``tinygan eval`` of its final checkpoint), in its folder.
EVALUATION = "eval.json"
#: The conditional GAN's target: this share of samples in the class asked for, mean over the
#: classes, and no class under the second.
CLASS_ACCURACY_TARGET, LOWEST_CLASS_TARGET = 0.95, 0.85
#: How ``tinygan train`` ends a run it refuses: one line, exit code 2. An unexpected error ends
#: with :data:`UNEXPECTED` instead (exit code 1).
ERROR_LINE = re.compile(r"^tinygan train: error: (.*)$")
UNEXPECTED = "(--debug shows the traceback)"


@dataclass(frozen=True)
class Variant:
    """A loss or regulariser: the flags of ``tinygan train`` that choose it, and its paper;
    ``iterations``, a ring or grid schedule of its own (None: ``--iterations``)."""

    name: str
    label: str
    flags: tuple[str, ...]
    reference: str
    targets: tuple[str, ...] = TARGETS
    iterations: int | None = None


VARIANTS = {
    variant.name: variant
    for variant in (
        Variant(
            "baseline",
            "non-saturating (baseline)",
            (),
            "Goodfellow et al. 2014, Generative Adversarial Nets (the non-saturating G loss)",
        ),
        Variant(
            "least-squares",
            "least squares",
            ("--loss", "least-squares"),
            "LSGAN: Mao et al. 2017, Least Squares Generative Adversarial Networks",
        ),
        Variant(
            "hinge",
            "hinge",
            ("--loss", "hinge"),
            "hinge loss as in Miyato et al. 2018, Spectral Normalization for GANs",
        ),
        Variant(
            "wgan-clip",
            "WGAN, weight clipping",
            ("--loss", "wasserstein"),
            "WGAN: Arjovsky et al. 2017, Wasserstein GAN (n_critic 5, clipping at 0.01, "
            "RMSprop 5e-5)",
        ),
        Variant(
            "wgan-gp",
            "WGAN-GP",
            ("--loss", "wasserstein", "--penalty", "wgan-gp"),
            "WGAN-GP: Gulrajani et al. 2017, Improved Training of Wasserstein GANs (λ = 10)",
        ),
        Variant(
            "wgan-gp-toy",
            "WGAN-GP, toy settings (3,000 iterations)",
            (
                *("--loss", "wasserstein", "--penalty", "wgan-gp", "--penalty-weight", "0.1"),
                *("--lr", "1e-3", "--ema", "0.99"),
            ),
            "WGAN-GP with its authors' λ for 2-D targets (0.1) and `examples/wgan_gp_grid.py`'s "
            "faster schedule: Adam 1e-3, G's weights averaged (EMA 0.99), 3,000 iterations",
            targets=MIXTURES,
            iterations=3_000,
        ),
        Variant(
            "r1",
            "R1 penalty",
            ("--penalty", "r1"),
            "R1: Mescheder et al. 2018, Which Training Methods for GANs do actually Converge? "
            "(γ = 10)",
        ),
        Variant(
            "sn-hinge",
            "spectral norm + hinge",
            ("--loss", "hinge", "--spectral-norm"),
            "SN: Miyato et al. 2018, Spectral Normalization for Generative Adversarial Networks",
        ),
        Variant(
            "conditional",
            "conditional",
            ("--conditional",),
            "conditional GAN: Mirza & Osindero 2014, Conditional Generative Adversarial Nets",
            targets=("mnist",),
        ),
    )
}
#: The variants whose critic estimates the earth mover's distance (the critic-loss figure).
WASSERSTEIN = ("wgan-clip", "wgan-gp", "wgan-gp-toy")


@dataclass(frozen=True)
class Outcome:
    """Where a run stands: ``finished`` (``final`` is its last measurement), ``refused`` or
    ``failed`` (``message`` is tinygan's line), or ``pending`` (not started, or stopped early)."""

    state: str
    final: dict[str, Any] | None = None
    message: str = ""


def seeds_of(target: str, args: argparse.Namespace) -> list[int]:
    """The seeds a target trains: 0 .. N-1 on the mixtures (as ``modes.py``), 1 .. N on MNIST (as
    QUALITY.md's dcgan-fast rows)."""
    return list(range(1, args.mnist_seeds + 1)) if target == "mnist" else list(range(args.seeds))


def variants_of(target: str, args: argparse.Namespace) -> list[Variant]:
    """The variants asked for that apply to ``target`` (the conditional GAN needs classes)."""
    return [VARIANTS[name] for name in args.variants if target in VARIANTS[name].targets]


def run_folder(out: Path, target: str, variant: str, seed: int) -> Path:
    return out / f"{target}_{variant}_seed{seed}"


def steps_of(target: str, variant: str, args: argparse.Namespace) -> int:
    """The steps a run of ``variant`` on ``target`` trains."""
    if target == "mnist":
        return MNIST_STEPS
    return VARIANTS[variant].iterations or args.iterations


def train_argv(target: str, variant: str, seed: int, args: argparse.Namespace) -> list[str]:
    """The ``tinygan`` arguments of one run (``--out`` and ``--resume`` are added by
    :func:`benchmarks.common.cli_command`)."""
    if target == "mnist":
        argv = ["train", MNIST_PRESET, "--seed", str(seed), "--split", "test"]
        argv += ["--iterations", str(MNIST_STEPS), "--quality-every", str(MNIST_QUALITY_EVERY)]
        if args.data_dir is not None:
            argv += ["--data-dir", str(args.data_dir)]
    else:
        steps = steps_of(target, variant, args)
        argv = ["train", target, "--seed", str(seed), "--iterations", str(steps)]
        argv += ["--modes-every", str(args.modes_every)]
    return [*argv, *VARIANTS[variant].flags, "--no-progress"]


def last_measurement(folder: Path, target: str) -> dict[str, Any] | None:
    """The last row of a run's measures (modes.csv on a mixture, quality.csv on MNIST), or None."""
    if target == "mnist":
        rows: list[dict[str, Any]] = read_quality_rows(folder / QUALITY_CSV)
        return {**rows[-1], "step": int(rows[-1]["step"])} if rows else None
    path = folder / MODES_CSV
    rows = read_modes_csv(path) if path.is_file() else []
    return rows[-1] if rows else None


def ending_error(folder: Path) -> str | None:
    """tinygan's one-line error when the run's log ends with one, else None."""
    log = run_log(folder)
    lines = log.read_text().splitlines() if log.is_file() else []
    lines = [line for line in lines if line.strip()]
    found = ERROR_LINE.match(lines[-1]) if lines else None
    return found.group(1) if found else None


def outcome(target: str, variant: str, seed: int, args: argparse.Namespace) -> Outcome:
    """Where a run stands, from its folder's files and its log alone."""
    folder = run_folder(args.out, target, variant, seed)
    final = last_measurement(folder, target)
    if final is not None and final["step"] >= steps_of(target, variant, args):
        return Outcome("finished", final)
    message = ending_error(folder)
    if message is None:
        return Outcome("pending")
    if message.endswith(UNEXPECTED):
        return Outcome("failed", message=message.removesuffix(UNEXPECTED).strip())
    return Outcome("refused", message=message)


def planned_runs(args: argparse.Namespace) -> list[tuple[str, str, int]]:
    """The runs still to train, seeds outermost: every row gets its first runs before any row gets
    its last. A refused run is tried again (it costs seconds), so a tinygan that has learnt the
    combination since trains it."""
    runs = [
        (index, (target, variant.name, seed))
        for target in args.targets
        for variant in variants_of(target, args)
        for index, seed in enumerate(seeds_of(target, args))
        if outcome(target, variant.name, seed, args).state != "finished"
    ]
    return [run for _, run in sorted(runs, key=lambda pair: pair[0])]


def planned_commands(args: argparse.Namespace) -> list[list[str]]:
    """The commands a call would run now, in order (nothing is run)."""
    return [
        cli_command(train_argv(*run, args), run_folder(args.out, *run))
        for run in planned_runs(args)
    ]


def train(target: str, variant: str, seed: int, args: argparse.Namespace) -> Outcome:
    """Train one run (resuming a stopped one), its output in its log; how it ended."""
    folder = run_folder(args.out, target, variant, seed)
    # unbuffered: a refusal's line on stderr is then the log's last, after what stdout printed
    run_in_folder(train_argv(target, variant, seed, args), folder, {"PYTHONUNBUFFERED": "1"})
    if variant == "conditional":
        evaluate_conditional(seed, args)
    return outcome(target, variant, seed, args)


def evaluate_conditional(seed: int, args: argparse.Namespace) -> None:
    """``tinygan eval`` of a finished conditional run's final generator into its
    :data:`EVALUATION` (10,000 samples, the classes spread evenly; the output appended to the run's
    log), unless it is there already."""
    folder = run_folder(args.out, "mnist", "conditional", seed)
    if (folder / EVALUATION).is_file():
        return
    if outcome("mnist", "conditional", seed, args).state != "finished":
        return
    checkpoint = folder / "checkpoints" / f"step_{MNIST_STEPS:08d}.npz"
    argv = ["eval", str(checkpoint), "--json", str(folder / EVALUATION)]
    if args.data_dir is not None:
        argv += ["--data-dir", str(args.data_dir)]
    run_logged([sys.executable, "-m", "tinygan.run.cli", *argv], run_log(folder))


# -- the report -----------------------------------------------------------------------------------


def summary(target: str, variant: str, args: argparse.Namespace) -> dict[str, Any]:
    """A row of the tables: the finished runs' last measurements and minutes, and the others'
    outcomes by seed."""
    finals, minutes, others = [], [], {}
    for seed in seeds_of(target, args):
        result = outcome(target, variant, seed, args)
        if result.state == "finished":
            finals.append(result.final)
            minutes.append(training_minutes(run_folder(args.out, target, variant, seed)))
        else:
            others[seed] = result
    known = [m for m in minutes if m is not None]
    return {
        "finals": finals,
        "minutes": sum(known) / len(known) if known else math.nan,
        "others": others,
    }


def shown(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
    """Mean ± standard error of ``values`` (a single run: its value alone)."""
    mean, error = mean_and_error(values)
    text = f"{scale * mean:.{digits}f}"
    return text if len(values) < 2 else f"{text} ± {scale * error:.{digits}f}"


def minutes(row: dict[str, Any]) -> str:
    """The mean minutes a run of the row trained ("-" when no log counted them)."""
    return "-" if math.isnan(row["minutes"]) else f"{row['minutes']:.1f}"


def unmeasured(others: dict[int, Outcome], pending: str = "not finished yet") -> str:
    """Why a row has no finished run: the reason tinygan gave, else ``pending``."""
    for state, word in (("refused", "refused"), ("failed", "failed")):
        messages = [o.message for o in others.values() if o.state == state]
        if messages:
            return f"**{word}**: " + messages[0].replace("|", "\\|")
    return pending


def metric_cells(finals: list[dict[str, Any]], columns: list[tuple[str, float, int]]) -> list[str]:
    cells = []
    for key, scale, digits in columns:
        values = [float(f[key]) for f in finals if f.get(key) not in (None, "")]
        defined = [v for v in values if not math.isnan(v)]  # a reverse KL with no mode captured
        cell = shown(defined, scale, digits) if defined else "undefined" if values else "-"
        undefined = len(values) - len(defined)
        cells.append(f"{cell} ({undefined} undefined)" if defined and undefined else cell)
    return cells


def table(
    target: str, header: list[str], columns: list[tuple[str, float, int]], args: argparse.Namespace
) -> list[str]:
    """The rows of one target's table, every variant asked for, finished or not."""
    lines = [
        "| variant | runs | " + " | ".join(header) + " | min a run |",
        "|---" * (len(header) + 3) + "|",
    ]
    for variant in variants_of(target, args):
        if variant.name == "conditional":
            continue  # its own section
        row = summary(target, variant.name, args)
        runs = f"{len(row['finals'])} of {len(seeds_of(target, args))}"
        if row["finals"]:
            cells = [*metric_cells(row["finals"], columns), minutes(row)]
        else:
            cells = [unmeasured(row["others"]), *["-"] * len(columns)]
        lines.append(f"| {variant.label} | {runs} | " + " | ".join(cells) + " |")
    return lines


def failures(args: argparse.Namespace) -> list[str]:
    """A line per run that ended in an error while others of its row finished."""
    lines = []
    for target in args.targets:
        for variant in variants_of(target, args):
            row = summary(target, variant.name, args)
            if row["finals"]:
                for seed, other in row["others"].items():
                    if other.state in ("refused", "failed"):
                        lines.append(
                            f"- {target}, {variant.label}, seed {seed}: {other.state}: "
                            f"{other.message}"
                        )
    return lines


MIXTURE_COLUMNS = [("modes", 1, 1), ("high_quality", 100, 1), ("reverse_kl", 1, 2)]
MNIST_COLUMNS = [
    ("fid", 1, 1),
    ("inception_score", 1, 2),
    ("classes_hit", 1, 1),
    ("precision", 1, 3),
    ("recall", 1, 3),
]


def evaluation(seed: int, args: argparse.Namespace) -> dict[str, Any] | None:
    """The conditional run's :data:`EVALUATION` (what ``tinygan eval --json`` wrote), or None."""
    path = run_folder(args.out, "mnist", "conditional", seed) / EVALUATION
    return json.loads(path.read_text()) if path.is_file() else None


def accuracy_row(label: str, judged: list[dict[str, Any]], minutes: list[float]) -> str:
    """A row of the class-accuracy table over ``judged`` (eval's "generated" sections): the mean
    over the classes, the lowest class, each class, FID and IS (mean ± standard error over runs),
    and the mean of the runs' training ``minutes``."""
    columns = [
        [g["class_accuracy"] for g in judged],
        [min(g["class_accuracies"]) for g in judged],
        *zip(*(g["class_accuracies"] for g in judged), strict=True),
    ]
    cells = [shown(list(values), 100, 1) for values in columns]
    cells += [
        shown([g["fid"] for g in judged], 1, 1),
        shown([g["inception_score"] for g in judged]),
        f"{sum(minutes) / len(minutes):.1f}" if minutes else "-",
    ]
    return f"| {label} | " + " | ".join(cells) + " |"


def target_verdict(judged: list[dict[str, Any]]) -> str:
    """Where the evaluated conditional runs stand against the class-accuracy target."""
    met = [
        g
        for g in judged
        if g["class_accuracy"] >= CLASS_ACCURACY_TARGET
        and min(g["class_accuracies"]) >= LOWEST_CLASS_TARGET
    ]
    lowest_mean = min(g["class_accuracy"] for g in judged)
    lowest_class = min(min(g["class_accuracies"]) for g in judged)
    return (
        f"Against the target (at least {100 * CLASS_ACCURACY_TARGET:.0f}% on average over the "
        f"digits, every digit at {100 * LOWEST_CLASS_TARGET:.0f}% or more): met by {len(met)} of "
        f"{len(judged)} runs (lowest mean {100 * lowest_mean:.1f}%, lowest digit "
        f"{100 * lowest_class:.1f}%)."
    )


def conditional_section(args: argparse.Namespace) -> list[str]:
    """The conditional dcgan-fast's class accuracy per digit, or why it is not measured yet."""
    lines = [
        "## The conditional GAN's class accuracy",
        "",
        f"`{MNIST_PRESET} --conditional` at {MNIST_STEPS:,} steps, judged by `tinygan eval` of "
        f"each run's final checkpoint: 10,000 samples, each digit asked for 1,000 times (latent "
        f"seed 0), read by the quality classifier. The share of samples it puts in the digit "
        f"asked for, per digit, and their mean (each run's `{EVALUATION}`); FID and IS of the same "
        "10,000 samples.",
        "",
    ]
    if "mnist" not in args.targets or "conditional" not in args.variants:
        return [*lines, "Not measured yet: this call trained no conditional run.", ""]
    finished = [
        seed
        for seed in seeds_of("mnist", args)
        if outcome("mnist", "conditional", seed, args).state == "finished"
    ]
    if not finished:
        others = summary("mnist", "conditional", args)["others"]
        return [*lines, f"Not measured yet: {unmeasured(others, 'no run has finished')}.", ""]
    digits = " | ".join(str(digit) for digit in range(10))
    lines += [
        f"| seed | mean % | lowest digit % | {digits} | FID | IS | min a run |",
        "|---" * 16 + "|",
    ]
    judged, real, minutes = [], [], []
    for seed in finished:
        result = evaluation(seed, args)
        if result is None:
            lines.append(f"| {seed} | not evaluated yet |" + " - |" * 14)
            continue
        judged.append(result["generated"])
        real += [result["real"]["class_accuracy"]] if "class_accuracy" in result["real"] else []
        trained = training_minutes(run_folder(args.out, "mnist", "conditional", seed))
        counted = [] if trained is None else [trained]
        minutes += counted
        lines.append(accuracy_row(str(seed), [result["generated"]], counted))
    if len(judged) > 1:
        lines.append(accuracy_row("mean", judged, minutes))
    if judged:
        lines += ["", target_verdict(judged)]
    if real:
        lines.append(
            f"The classifier's own share on the real held-out digits: {shown(real, 100, 1)}%."
        )
    return [*lines, ""]


def mean_curve(series: list[list[tuple[int, float]]]) -> tuple[list[int], list[float]]:
    """The mean over runs at each step, from each run's (step, value) pairs."""
    per_step: dict[int, list[float]] = {}
    for points in series:
        for step, value in points:
            per_step.setdefault(step, []).append(value)
    steps = sorted(per_step)
    return steps, [sum(per_step[s]) / len(per_step[s]) for s in steps]


def modes_series(folder: Path) -> list[tuple[int, float]]:
    path = folder / MODES_CSV
    return [(r["step"], r["modes"]) for r in read_modes_csv(path)] if path.is_file() else []


def fid_series(folder: Path) -> list[tuple[int, float]]:
    rows = read_quality_rows(folder / QUALITY_CSV)
    return [(int(r["step"]), float(r["fid"])) for r in rows if r.get("fid")]


def critic_series(folder: Path) -> list[tuple[int, float]]:
    """The negative critic loss per logging window of a run (log.csv)."""
    return [(int(r["step"]), -float(r["d_loss"])) for r in read_log_rows(folder / LOG_CSV)]


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(figure: Any, path: Path) -> None:
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    pyplot().close(figure)


def modes_figure(args: argparse.Namespace, mixtures: list[str], path: Path) -> None:
    """Modes captured over the run, mean over the seeds, one line per variant, a panel per
    mixture."""
    plt = pyplot()
    figure, axes = plt.subplots(1, len(mixtures), figsize=(5.5 * len(mixtures), 3.8), squeeze=False)
    for axis, target in zip(axes[0], mixtures, strict=True):
        for variant in variants_of(target, args):
            folders = [
                run_folder(args.out, target, variant.name, s) for s in seeds_of(target, args)
            ]
            steps, means = mean_curve([modes_series(folder) for folder in folders])
            if steps:
                axis.plot(steps, means, label=variant.label)
        axis.axhline(MODES_OF[target], color="grey", linewidth=0.8, linestyle=":")
        axis.set_title(f"{target}: modes captured (mean over seeds)")
        axis.set_xlabel("iteration")
        if axis.get_lines()[:-1]:  # a variant's line besides the modes' level
            axis.legend(fontsize=7)
    save(figure, path)


def critic_figure(args: argparse.Namespace, path: Path) -> list[str]:
    """The negative critic loss and the sample quality over the Wasserstein runs, a panel per
    target (grid, MNIST) and variant (WGAN-clip, WGAN-GP) with a logged run; the panels' titles
    (none, and no figure, when no such run has logged)."""
    quality = {"grid": (modes_series, "modes captured"), "mnist": (fid_series, "FID")}
    panels = []
    for target in (t for t in ("grid", "mnist") if t in args.targets):
        for name in (v for v in WASSERSTEIN if v in args.variants):
            folders = [run_folder(args.out, target, name, s) for s in seeds_of(target, args)]
            critic = mean_curve([critic_series(folder) for folder in folders])
            measured = mean_curve([quality[target][0](folder) for folder in folders])
            if critic[0]:
                panels.append((target, VARIANTS[name].label, critic, measured))
    if not panels:
        return []
    plt = pyplot()
    figure, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 3.8), squeeze=False)
    for axis, (target, label, critic, measured) in zip(axes[0], panels, strict=True):
        axis.plot(*critic, color="C0")
        axis.set_ylabel("negative critic loss", color="C0")
        axis.set_xlabel("iteration")
        axis.set_title(f"{target}, {label}")
        other = axis.twinx()
        other.plot(*measured, color="C1", marker="o", markersize=3)
        other.set_ylabel(quality[target][1], color="C1")
    save(figure, path)
    return [axis.get_title() for axis in axes[0]]


def schedule(args: argparse.Namespace, command: str) -> list[str]:
    """The report's head: how to repeat it, what the runs trained, and the variants' flags."""
    lines = [
        "# GAN losses and regularisers side by side: the ring, the grid and MNIST",
        "",
        f"Written by `benchmarks/losses.py`; repeat with `{command}`.",
        "",
        "## Schedule",
        "",
    ]
    if any(target in MIXTURES for target in args.targets):
        lines.append(
            f"- ring and grid: {args.iterations:,} iterations a run unless the variant's name "
            f"says otherwise (generator updates; the Wasserstein critic takes 5 updates per "
            f"generator update), seeds 0 .. "
            f"{args.seeds - 1}, modes counted every {args.modes_every:,} steps on 2,500 samples "
            "(G in inference mode, fixed z); the tables hold each run's last count."
        )
    if "mnist" in args.targets:
        lines.append(
            f"- MNIST: `{MNIST_PRESET}`, its {MNIST_STEPS:,} steps on the MNIST test split (as "
            f"QUALITY.md's {MNIST_PRESET} rows), seeds 1 .. {args.mnist_seeds}, quality measured "
            f"every {MNIST_QUALITY_EVERY} steps on 2,000 samples against the classifier's "
            f"held-out digits; the table holds each run's last measurement (step {MNIST_STEPS:,})."
        )
    lines += [
        "- Every other setting is the preset's. Mean ± standard error over the finished runs "
        "(`runs`); a single run shows no standard error. `min a run`: the minutes one run "
        f"trained as its log counts them (the runs trained {args.jobs} at a time, one BLAS thread "
        f"each, on {cpu_count()} CPU cores, beside other work).",
        "",
        "## The variants",
        "",
        "| variant | flags of `tinygan train` | paper |",
        "|---|---|---|",
    ]
    for variant in (VARIANTS[name] for name in args.variants):
        flags = f"`{' '.join(variant.flags)}`" if variant.flags else "(none)"
        lines.append(f"| {variant.label} | {flags} | {variant.reference} |")
    return lines


#: The WGAN-GP target on the grid: at least this many of its 25 modes, on average over seeds.
GRID_MODES_TARGET = 24


def grid_verdict(args: argparse.Namespace) -> list[str]:
    """Where each WGAN-GP row on the grid stands against :data:`GRID_MODES_TARGET` (nothing when
    no WGAN-GP run on the grid has finished)."""
    words = []
    for name in (v for v in ("wgan-gp", "wgan-gp-toy") if v in args.variants):
        finals = summary("grid", name, args)["finals"]
        if finals:
            mean, _ = mean_and_error([float(final["modes"]) for final in finals])
            verdict = "met" if mean >= GRID_MODES_TARGET else "missed"
            words.append(
                f"{VARIANTS[name].label}: {shown([f['modes'] for f in finals], 1, 1)} modes "
                f"({len(finals)} of {args.seeds} runs; {verdict})"
            )
    if not words:
        return []
    return [
        "",
        f"Against the target (WGAN-GP holds at least {GRID_MODES_TARGET} of the 25 modes on "
        f"average): {'; '.join(words)}.",
    ]


#: What the "against the baseline" line compares per target: a column and whether higher is
#: better.
HEADLINE = {"ring": ("modes", True), "grid": ("modes", True), "mnist": ("fid", False)}


def against_baseline(target: str, args: argparse.Namespace) -> list[str]:
    """Which variants did better and which worse than the baseline on the target's headline
    measure (modes captured, FID): the difference of the means ± its standard error; nothing
    until the baseline and another variant have finished runs."""
    key, higher_is_better = HEADLINE[target]

    def mean_of(name: str) -> tuple[float, float] | None:
        finals = summary(target, name, args)["finals"] if name in args.variants else []
        return mean_and_error([float(final[key]) for final in finals]) if finals else None

    baseline = mean_of("baseline")
    groups: dict[str, list[str]] = {"better": [], "equal": [], "worse": []}
    for variant in variants_of(target, args):
        other = mean_of(variant.name) if variant.name not in ("baseline", "conditional") else None
        if baseline is None or other is None:
            continue
        difference = other[0] - baseline[0]
        said = f"{variant.label} ({difference:+.1f} ± {math.hypot(other[1], baseline[1]):.1f})"
        if difference == 0:
            groups["equal"].append(said)
        else:
            groups["better" if (difference > 0) == higher_is_better else "worse"].append(said)
    if not any(groups.values()):
        return []
    name = "modes" if key == "modes" else "FID"
    said = "; ".join(f"{group}: {', '.join(found)}" for group, found in groups.items() if found)
    return [
        "",
        f"Against the baseline ({name}; the difference of the means ± its standard error): {said}.",
    ]


def tables(args: argparse.Namespace) -> list[str]:
    """A table per target, then the runs that ended in an error beside finished ones."""
    lines = []
    for target in (t for t in args.targets if t in MIXTURES):
        lines += [
            "",
            f"## The {target} ({MODES_OF[target]} modes)",
            "",
            *table(target, ["modes", "high quality %", "reverse KL"], MIXTURE_COLUMNS, args),
            *against_baseline(target, args),
            *(grid_verdict(args) if target == "grid" else []),
        ]
    if "mnist" in args.targets:
        header = ["FID (lower better)", "IS", "classes hit", "precision", "recall"]
        lines += [
            "",
            f"## MNIST, {MNIST_PRESET} ({MNIST_STEPS:,} steps)",
            "",
            *table("mnist", header, MNIST_COLUMNS, args),
            *against_baseline("mnist", args),
        ]
    broken = failures(args)
    if broken:
        lines += ["", "Runs that ended in an error while others of their row finished:", ""]
        lines += broken
    return lines


def last_frame(target: str, variant: str, args: argparse.Namespace) -> tuple[int, Path] | None:
    """The seed and the last picture (``samples/step_*.png``: the scatter of a mixture's points,
    MNIST's sample grid) of the variant's first finished run on ``target``, or None."""
    for seed in seeds_of(target, args):
        if outcome(target, variant, seed, args).state == "finished":
            folder = run_folder(args.out, target, variant, seed)
            frames = sorted((folder / "samples").glob("step_*.png"))
            if frames:
                return seed, frames[-1]
    return None


def last_frames_figure(args: argparse.Namespace, path: Path) -> bool:
    """What each variant's first finished run drew at its end, a row per target and a column per
    variant; False (and no figure) before any run has finished."""
    frames = {
        (target, variant.name): last_frame(target, variant.name, args)
        for target in args.targets
        for variant in variants_of(target, args)
    }
    if not any(frames.values()):
        return False
    names = [name for name in args.variants if any(name == n for _, n in frames)]
    plt = pyplot()
    size = (3.0 * len(names), 3.3 * len(args.targets))
    figure, axes = plt.subplots(len(args.targets), len(names), figsize=size, squeeze=False)
    for row, target in enumerate(args.targets):
        for column, name in enumerate(names):
            axis = axes[row][column]
            axis.axis("off")
            found = frames.get((target, name))
            if found:
                picture = plt.imread(found[1])
                axis.imshow(picture, cmap="gray" if picture.ndim == 2 else None)
                axis.set_title(f"{VARIANTS[name].label}, seed {found[0]}", fontsize=8)
            elif (target, name) in frames:  # the variant applies: say why there is no picture
                others = summary(target, name, args)["others"].values()
                why = "refused" if any(o.state == "refused" for o in others) else "no picture yet"
                axis.text(0.5, 0.5, f"{target}, {VARIANTS[name].label}:\n{why}", ha="center")
    save(figure, path)
    from PIL import Image  # matplotlib's own dependency

    with Image.open(path) as drawn:  # a palette of 128 colours: a third of the bytes
        shrunk = drawn.convert("RGB").quantize(colors=128)
    shrunk.save(path, optimize=True)
    return True


def figures(args: argparse.Namespace, results: Path) -> list[str]:
    """Draw the figures into ``results`` and return the report's sections that show them."""
    lines = []
    if last_frames_figure(args, results / "losses_last_frames.png"):
        lines += [
            "## What each variant drew at the end",
            "",
            "The last picture of each variant's first finished run: its generator's points over "
            "the modes (red crosses) on the ring and the grid, its sample grid on MNIST.",
            "",
            "![the last pictures](results/losses_last_frames.png)",
            "",
        ]
    mixtures = [t for t in args.targets if t in MIXTURES]
    if mixtures:
        modes_figure(args, mixtures, results / "losses_modes_over_time.png")
        lines += [
            "## Modes over the run",
            "",
            "Modes captured, mean over the seeds, one line per variant:",
            "",
            "![modes over the run](results/losses_modes_over_time.png)",
            "",
        ]
    if not critic_figure(args, results / "critic_loss_vs_quality.png"):
        return [*lines, "No Wasserstein run on the grid or MNIST has logged yet.", ""]
    return [
        *lines,
        "## The critic's loss against sample quality",
        "",
        "The WGAN paper's observation: the critic's loss follows the quality of the samples. Each "
        "panel: the negative critic loss (log.csv's `d_loss`, window means; without a penalty "
        "it is the critic's estimate of the earth mover's distance, D(real) − D(fake); "
        "WGAN-GP's includes the penalty) and the quality measured over the same runs (modes "
        "captured on the grid, FID on MNIST), each the mean over the seeds.",
        "",
        "![critic loss against quality](results/critic_loss_vs_quality.png)",
        "",
    ]


def write_report(args: argparse.Namespace, command: str) -> None:
    """Write the report (``--report``) and its figures (``results/`` beside it)."""
    lines = [*schedule(args, command), *tables(args), "", *conditional_section(args)]
    lines += figures(args, args.report.parent / "results")
    args.report.write_text("\n".join(lines))


def count(text: str) -> int:
    """A count of runs or steps: a positive integer."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return int(text)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", nargs="+", choices=TARGETS, default=list(TARGETS))
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=list(VARIANTS),
        default=list(VARIANTS),
        metavar="NAME",
        help=f"variants to train (default: all of {', '.join(VARIANTS)})",
    )
    parser.add_argument(
        "--seeds", type=count, default=3, help="ring and grid runs per row: seeds 0 .. N-1"
    )
    parser.add_argument(
        "--mnist-seeds", type=count, default=2, help="MNIST runs per row: seeds 1 .. N"
    )
    parser.add_argument(
        "--iterations", type=count, default=10_000, help="iterations of a ring or grid run"
    )
    parser.add_argument("--modes-every", type=count, default=500, help="steps between mode counts")
    parser.add_argument("--jobs", type=count, default=2, help="runs trained at the same time")
    parser.add_argument("--out", type=Path, default=Path("runs/losses"), help="the runs' folders")
    parser.add_argument("--data-dir", type=Path, help="MNIST's IDX files (default: tinygan's)")
    parser.add_argument(
        "--report", type=Path, default=HERE / "LOSSES.md", help="the report to write"
    )
    parser.add_argument("--report-only", action="store_true", help="write the report from the runs")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    given = argv if argv is not None else sys.argv[1:]
    command = shown_command("benchmarks/losses.py", [a for a in given if a != "--report-only"])
    if not args.report_only:

        def finished(run: tuple[str, str, int], result: Outcome) -> None:
            target, variant, seed = run
            said = f": {result.message}" if result.message else ""
            print(f"{result.state}: {target} {variant} seed {seed}{said}", flush=True)
            write_report(args, command)

        jobs = {run: partial(train, *run, args) for run in planned_runs(args)}
        run_jobs(jobs, args.jobs, finished)
        if "mnist" in args.targets and "conditional" in args.variants:
            for seed in seeds_of("mnist", args):  # runs that finished before this call
                evaluate_conditional(seed, args)
    write_report(args, command)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
