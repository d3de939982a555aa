"""tinygan's sample quality: short runs beside PyTorch, whole schedules, and what measuring costs.

    python benchmarks/quality.py table --data-dir ../shared/data/mnist --split test
    python benchmarks/quality.py table --presets mlp-tf mlp-book --n 5000 --no-torch
    python benchmarks/quality.py table --quick           # a smoke run: tiny budgets, 500 samples
    python benchmarks/quality.py schedules --mnist-dir DIR --runs runs/schedules [--train]
    python benchmarks/quality.py cost --data-dir DIR --presets mlp-tf dcgan-fast

``table`` is the default command (``python benchmarks/quality.py --quick`` is ``table --quick``);
``schedules`` is :mod:`benchmarks.quality_schedules` (quality over whole training schedules: the
best checkpoint, the EMA, dcgan-fast) and ``cost`` :mod:`benchmarks.quality_cost` (one quality
measurement against one training run). The rest of this docstring is ``table``'s: what do the
presets learn in a short run? Train each image preset for a stated budget, then measure it.

On a busy machine prefix ``OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1``: the small matrix products of
these networks run several times faster on one thread than with BLAS threads fighting over the cores.

Each preset trains through ``tinygan train``'s own code path (:func:`tinygan.run.experiment.main`, so the
checkpoint, seed handling and data loading are the ones users get) for the budget in :data:`BUDGETS`,
then ``N`` images are generated from the final checkpoint and scored by
:class:`tinygan.quality.evaluate.QualityEvaluator`: FID, Inception Score, classes hit, class KL, precision and
recall, all through the classifier of :mod:`tinygan.quality.classifier` (trained on first use and cached).

Where PyTorch is installed, the same preset is trained again in PyTorch (the twins of
:mod:`tinygan.interop.torch_models`:
the same layers, initial weights copied from a tinygan build with the run's seed, the same real
batches in the same order, PyTorch's own noise stream, autograd and ``torch.optim.Adam``) for the
same number of steps, and its samples (from the same latent vectors) are scored by the same
evaluator. The table puts both beside the real-data calibration.

The table goes to stdout and to ``benchmarks/QUALITY.md`` (``--report``); the raw numbers to
``<out>/quality.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__" and not __package__:  # run as a file: import as `python -m` would
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from importlib.util import find_spec  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks import quality_cost, quality_schedules  # noqa: E402
from benchmarks.common import SEED, shown_command, split_command  # noqa: E402
from tinygan.data import BatchIterator, images_to_float, load_mnist  # noqa: E402
from tinygan.models import Preset, get_preset  # noqa: E402
from tinygan.quality.classifier.choice import choose_classifier  # noqa: E402
from tinygan.quality.evaluate import QualityEvaluator, reference_images  # noqa: E402
from tinygan.run.checkpoint import latest_checkpoint  # noqa: E402
from tinygan.run.experiment import main as train_preset  # noqa: E402
from tinygan.run.sampling import generate, load_generator  # noqa: E402

HERE = Path(__file__).resolve().parent
COMMANDS = ("table", "schedules", "cost")

#: Training budget per preset: the ``tinygan train`` flag and its value. Small on purpose (minutes on
#: two cores): these are early snapshots of each preset, not its full published run.
BUDGETS: dict[str, tuple[str, int]] = {
    "mlp-tf": ("--iterations", 3000),
    "mlp-book": ("--iterations", 3000),
    "dcgan-tf": ("--epochs", 2),
    # each dcgan-keras step is 1 D + 5 G updates of a heavy network: minutes
    "dcgan-keras": ("--iterations", 2),
}
QUICK_BUDGETS: dict[str, tuple[str, int]] = {
    "mlp-tf": ("--iterations", 50),
    "mlp-book": ("--iterations", 50),
    "dcgan-tf": ("--iterations", 3),
    "dcgan-keras": ("--iterations", 1),
}


def train_tinygan(
    preset: Preset, flag: str, value: int, args: argparse.Namespace
) -> dict[str, Any]:
    """Train ``preset`` with ``tinygan train``'s code; returns its final checkpoint, steps and wall time."""
    out = args.out / preset.name / "tinygan"
    argv = [
        "--preset", preset.name, flag, str(value), "--seed", str(args.seed), "--out", str(out),
        "--split", args.split, "--dataset", args.dataset, "--no-download", "--no-progress",
        "--log-every", "100", "--overwrite",
    ]  # fmt: skip
    if args.data_dir is not None:
        argv += ["--data-dir", str(args.data_dir)]
    start = time.perf_counter()
    trainer = train_preset(argv, default_preset=preset.name)
    seconds = time.perf_counter() - start
    return {
        "checkpoint": latest_checkpoint(out / "checkpoints"),
        "steps": trainer.step,
        "seconds": seconds,
        "batch_size": trainer.batches.batch_size,
    }


def train_torch(preset: Preset, steps: int, args: argparse.Namespace) -> tuple[Any, float]:
    """The same preset, data and steps in PyTorch; returns (the trained generator, seconds).

    The networks start from a tinygan build with the seed ``tinygan train`` uses for its initial
    weights, and the batches come from a :class:`tinygan.data.BatchIterator` seeded as its data
    order is, so both engines see the same weights at step 0 and the same images at every step.
    """
    import torch

    from tinygan.interop.torch_models import TorchGAN

    init_seed, data_seed, noise_seed, _ = np.random.SeedSequence(args.seed).spawn(4)
    images, _ = load_mnist(args.split, args.data_dir, args.dataset, download=False)
    data = images_to_float(images, preset.value_range).reshape(len(images), *preset.data_shape)
    batches = BatchIterator(data, preset.batch_size, np.random.default_rng(data_seed))
    generator, discriminator = preset.build(np.random.default_rng(init_seed))
    gan = TorchGAN(preset, generator, discriminator, int(noise_seed.generate_state(1)[0]))
    start = time.perf_counter()
    for _ in range(steps):
        gan.train_step(lambda: torch.from_numpy(next(batches)))
    return gan.generator, time.perf_counter() - start


def torch_images(generator: Any, preset: Preset, n: int, seed: int) -> np.ndarray:
    """``n`` images in [0, 1] from a PyTorch generator, from the latent vectors tinygan would use.

    :func:`tinygan.run.sampling.generate` only calls ``generator(z)`` on NumPy batches, so a small
    adapter lets it drive the PyTorch model (in evaluation mode: running BatchNorm statistics).
    """
    import torch

    generator.eval()

    def forward(z: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return generator(torch.from_numpy(z)).numpy()

    return generate(forward, preset, n, seed)[0]


def markdown_table(rows: list[dict[str, Any]], real: dict[str, Any]) -> str:
    """One line per (preset, engine), then the real-data calibration."""
    header = (
        "| preset | engine | budget | steps x batch | seed | train wall (s) | N | FID (lower better) "
        "| IS | classes hit | class KL | precision | recall |"
    )
    lines = [header, "|" + "---|" * 13]
    for row in rows:
        lines.append(
            f"| {row['preset']} | {row['engine']} | {row['budget']} | "
            f"{row['steps']} x {row['batch_size']} | {row['seed']} | {row['seconds']:.0f} | "
            f"{row['n']} | {row['fid']:.2f} | {row['inception_score']:.2f} | "
            f"{row['classes_hit']}/{row['num_classes']} | {row['class_kl']:.3f} | "
            f"{row['precision']:.3f} | {row['recall']:.3f} |"
        )
    lines.append(
        f"| real held-out | calibration | - | - | - | - | {real['n']} | {real['fid']:.2f} | "
        f"{real['inception_score']:.2f} | {real['classes_hit']}/{real['num_classes']} | "
        f"{real['class_kl']:.3f} | {real['precision']:.3f} | {real['recall']:.3f} |"
    )
    return "\n".join(lines)


def classifier_lines(extra: list[tuple[str, Any, dict[str, Any]]]) -> list[str]:
    """One bullet per classifier: accuracy, what it trained on, and real-data IS / FID."""
    lines = []
    for name, model, real in extra:
        info = model.info
        lines.append(
            f"- {name}: **{100 * info['heldout_accuracy']:.2f}%** accuracy on "
            f"{info['heldout_size']} held-out images; {info['description']}; trained once in "
            f"{info['train_seconds']:.0f} s ({info['settings']['steps']} steps of "
            f"{info['settings']['batch_size']}). Real held-out images: IS "
            f"{real['inception_score']:.2f} (N={real['n']}), real-vs-real FID {real['fid']:.2f} "
            f"({real['n']} vs {real['reference_n']})."
        )
    return lines


def write_report(
    path: Path,
    args: argparse.Namespace,
    rows: list[dict[str, Any]],
    real: dict[str, Any],
    reference: str,
    classifiers: list[tuple[str, Any, dict[str, Any]]],
    seconds: float,
) -> None:
    """``QUALITY.md`` at ``path``: the command, the machine, the classifiers and the table."""
    threads = {v: os.environ.get(v, "unset") for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    covered = sorted({row["preset"] for row in rows if row["engine"] == "PyTorch"})
    torch_note = (
        f"PyTorch rows: presets {', '.join(covered)}, trained as described in `benchmarks/quality.py`."
        if covered
        else "No PyTorch rows (PyTorch not installed, or `--no-torch`)."
    )
    text = "\n".join(
        [
            "# Sample quality of short training runs",
            "",
            "Written by `benchmarks/quality.py`; repeat with",
            "",
            f"    {shown_command('benchmarks/quality.py', args.command)}",
            "",
            f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
            f"Python {platform.python_version()}, thread settings {threads}; total wall time "
            f"{seconds / 60:.1f} min.",
            "",
            "## Classifiers (the eye behind every figure)",
            "",
            *classifier_lines(classifiers),
            "",
            "## Generated images versus real ones",
            "",
            f"GANs trained on the {args.dataset} {args.split} split. Reference: {reference}. "
            f"Each model row scores N generated images (latent seed {args.seed}) against the whole "
            "reference (FID) and against as many reference images as precision / recall use on "
            "each side (min(N, reference)); the calibration row scores one half of the reference "
            "against the other, which is what a perfect generator would get with that many "
            "samples. Compare model rows with the calibration row, not with 0 or 10.",
            "",
            markdown_table(rows, real),
            "",
            torch_note,
            "",
            "Budgets are tiny next to the presets' full runs (100k iterations, 100 or 150 epochs):",
            "these are early snapshots. Precision rewards blurry averages (they sit in the dense",
            "middle of the real manifold); read it together with recall.",
            "",
        ]
    )
    path.write_text(text + kept_sections(path))


def kept_sections(path: Path) -> str:
    """The parts of the report that ``quality.py schedules`` writes (the schedules and the
    remedies against mlp-tf's collapse), kept as they are."""
    current = path.read_text() if path.is_file() else ""
    kept = ""
    for begin, end in (
        (quality_schedules.BEGIN, quality_schedules.END),
        (quality_schedules.COLLAPSE_BEGIN, quality_schedules.COLLAPSE_END),
    ):
        if begin in current and end in current:
            kept += "\n" + current[current.index(begin) : current.index(end) + len(end)] + "\n"
    return kept


def table_parser() -> argparse.ArgumentParser:
    """The ``table`` command's flags."""
    parser = argparse.ArgumentParser(
        prog="quality.py [table]",
        description="Train each image preset for a small budget, in tinygan and in PyTorch, and "
        "score both beside the real-data calibration.",
        epilog="other commands: quality.py schedules ..., quality.py cost ... (each with --help)",
    )
    parser.add_argument("--presets", nargs="+", default=list(BUDGETS), choices=list(BUDGETS))
    parser.add_argument("--n", type=int, default=10_000, help="generated images per model")
    parser.add_argument("--seed", type=int, default=SEED, help="training and latent seed")
    parser.add_argument("--data-dir", type=Path, help="MNIST folder (default: $TINYGAN_DATA ...)")
    parser.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default="mnist")
    parser.add_argument("--split", choices=["train", "test"], default="train")
    parser.add_argument(
        "--fashion-dir", type=Path, help="also report the Fashion-MNIST classifier from this folder"
    )
    parser.add_argument("--classifier-cache", type=Path, help="folder for cached classifiers")
    parser.add_argument("--out", type=Path, default=Path("runs/quality"), help="training runs")
    parser.add_argument("--report", type=Path, default=HERE / "QUALITY.md")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch runs")
    parser.add_argument("--quick", action="store_true", help="tiny budgets and 500 samples")
    return parser


def score_presets(
    args: argparse.Namespace, evaluator: QualityEvaluator, real: dict[str, Any]
) -> list[dict[str, Any]]:
    """Train and score each preset in tinygan (and PyTorch), printing the table as it grows."""
    budgets = QUICK_BUDGETS if args.quick else BUDGETS
    use_torch = not args.no_torch and find_spec("torch") is not None
    rows: list[dict[str, Any]] = []
    for name in args.presets:
        preset = get_preset(name)
        flag, value = budgets[name]
        budget = f"{flag.lstrip('-')} {value}"
        run = train_tinygan(preset, flag, value, args)
        generator, _, _ = load_generator(run["checkpoint"])
        facts = {"preset": name, "budget": budget, "steps": run["steps"], "seed": args.seed}
        facts["batch_size"] = run["batch_size"]
        images = generate(generator, preset, args.n, args.seed)[0]
        rows.append({**facts, "engine": "tinygan", "seconds": run["seconds"]})
        rows[-1] |= evaluator.score(images)
        if use_torch:
            torch_generator, seconds = train_torch(preset, run["steps"], args)
            images = torch_images(torch_generator, preset, args.n, args.seed)
            rows.append({**facts, "engine": "PyTorch", "seconds": seconds})
            rows[-1] |= evaluator.score(images)
        print(markdown_table(rows, real), flush=True)
    return rows


def table(argv: list[str], shown_argv: list[str]) -> int:
    """The ``table`` command: train, score, print, write ``QUALITY.md`` and ``quality.json``."""
    args = table_parser().parse_args(argv)
    args.command = shown_argv
    if args.quick:
        args.n = min(args.n, 500)
    start = time.perf_counter()

    chosen = choose_classifier(args.dataset, args.data_dir, args.classifier_cache)
    data, classifier = chosen.data, chosen.classifier
    reference, reference_description = reference_images(data)
    evaluator = QualityEvaluator(classifier, reference)
    real = evaluator.calibration()
    rows = score_presets(args, evaluator, real)

    classifiers = [(data.dataset, classifier, real)]
    if args.fashion_dir is not None and args.dataset != "fashion-mnist":
        fashion = choose_classifier("fashion-mnist", args.fashion_dir, args.classifier_cache)
        model = fashion.classifier
        fashion_real = QualityEvaluator(model, fashion.data.heldout_images).calibration()
        classifiers.append(("fashion-mnist", model, fashion_real))

    seconds = time.perf_counter() - start
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {"rows": rows, "real": real, "reference": reference_description}
    summary["classifiers"] = {name: model.info for name, model, _ in classifiers}
    (args.out / "quality.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    write_report(args.report, args, rows, real, reference_description, classifiers, seconds)
    print(f"wrote {args.report} and {args.out / 'quality.json'} ({seconds / 60:.1f} min)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command the arguments name (``table`` when they name none)."""
    argv = sys.argv[1:] if argv is None else argv
    command, rest = split_command(argv, COMMANDS)
    if command == "schedules":
        quality_schedules.main(rest)
    elif command == "cost":
        quality_cost.main(rest)
    else:
        return table(rest, argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
