"""What measuring quality during training costs: one measurement against one run, per preset.

    python benchmarks/quality.py cost --data-dir ../shared/data/mnist --presets mlp-tf dcgan-fast

Times one quality measurement as training makes it (:class:`tinygan.quality.evaluate.QualityCallback`:
2,000 samples from the generator, classifier features, FID, IS, coverage, precision and recall
against the held-out reference) and one training iteration of the preset, each the median of a few
runs, and prints what :data:`tinygan.run.experiment.AUTO_QUALITY_TIMES` measurements add to the
preset's full run. The classifier must be cached already (its one-time training is not a per-run
cost); the measurement uses the MNIST split the classifier holds out.
"""

from __future__ import annotations

import argparse
import math
import statistics
from pathlib import Path
from typing import Any

from benchmarks.common import fresh_gan, time_steps, training_step

#: Samples per measurement, as :class:`tinygan.quality.evaluate.QualityCallback` draws them.
SAMPLES = 2000


def median_seconds(function: Any, repeats: int) -> float:
    """Median seconds of ``repeats`` calls after one untimed call."""
    return statistics.median(time_steps(function, 1, repeats, repeats, math.inf))


def measure(preset_name: str, data_dir: Path, repeats: int) -> dict[str, Any]:
    """Seconds of one measurement and of one iteration, and the share five take of a full run."""
    from tinygan.models import get_preset
    from tinygan.quality.classifier import choose_classifier
    from tinygan.quality.evaluate import QualityEvaluator
    from tinygan.run.experiment import AUTO_QUALITY_TIMES
    from tinygan.run.sampling import generate

    preset = get_preset(preset_name)
    step, _ = training_step("tinygan", preset, preset.batch_size)
    # timed first: right after the classifier's big products, the small ones of a step run slower
    step_s = median_seconds(step, max(repeats, 200))
    chosen = choose_classifier("mnist", data_dir, verbose=False)
    evaluator = QualityEvaluator(chosen.classifier, chosen.data.heldout_images)
    gan = fresh_gan(preset)

    def one_measurement() -> None:  # what QualityCallback.measure computes, without the CSV row
        images, _ = generate(gan.generator, preset, SAMPLES, 0)
        evaluator.score(images)

    measure_s = median_seconds(one_measurement, repeats)
    steps = preset.steps or preset.epochs * (60_000 // preset.batch_size)
    run_s = steps * step_s
    return {
        "preset": preset.name,
        "measure_s": measure_s,
        "step_ms": 1e3 * step_s,
        "steps": steps,
        "run_min": run_s / 60,
        "share": AUTO_QUALITY_TIMES * measure_s / run_s,
    }


def main(argv: list[str] | None = None) -> None:
    """Measure each preset and print the table."""
    parser = argparse.ArgumentParser(prog="quality.py cost", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="MNIST folder")
    parser.add_argument("--presets", nargs="+", default=["mlp-tf", "dcgan-fast"])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    print("| preset | one measurement (s) | iteration (ms) | full run | 5 measurements |")
    print("|---|---|---|---|---|")
    for name in args.presets:
        r = measure(name, args.data_dir, args.repeats)
        print(
            f"| {r['preset']} | {r['measure_s']:.2f} | {r['step_ms']:.1f} | {r['steps']:,} steps, "
            f"{r['run_min']:.1f} min | {100 * r['share']:.1f}% of the run |"
        )
