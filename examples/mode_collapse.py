"""Mode collapse, and packing as its cure: the 2-D ring of 8 Gaussians learnt by a GAN and by PacGAN.

The same generator, the same data, the same seed; only the discriminator differs. The plain GAN's
D judges one point at a time; PacGAN's D (``--pack 2``) judges two points drawn together, side by
side. A generator that drops modes still makes points that each look real, so one point at a time
cannot give it away; but two of its points together are twice as likely to land in the same modes
as two real points, and a D that sees pairs learns exactly that difference (tinygan/gan.py explains
the argument). Both runs write their scatter frames, GIF and ``modes.csv``, and this script puts
the two side by side in ``<out>/side_by_side.png``: each generator's 2,500 points over the modes,
and the modes it covered over its run.

    python examples/mode_collapse.py                       # 10,000 iterations each, a few minutes
    python examples/mode_collapse.py --iterations 30000 --seed 1 --pack 3
    python examples/mode_collapse.py --target grid          # the 25-mode grid

How often a plain GAN drops a mode depends on the seed and on how long it trains (the papers train
400,000 iterations): ``benchmarks/MODES.md`` counts it over many runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from tinygan.data.mixtures import MIXTURES  # noqa: E402
from tinygan.quality.metrics.modes import MIXTURE_SAMPLES  # noqa: E402
from tinygan.run.experiment import main as train  # noqa: E402
from tinygan.run.mixture_run import MODES_CSV, read_modes_csv  # noqa: E402
from tinygan.viz import plot_points, scatter_limits  # noqa: E402


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", choices=sorted(MIXTURES), default="ring")
    parser.add_argument("--iterations", type=int, default=10_000, help="iterations of each run")
    parser.add_argument("--pack", type=int, default=2, help="PacGAN's m for the second run")
    parser.add_argument("--seed", type=int, default=0, help="the same seed for both runs")
    parser.add_argument("--out", type=Path, default=Path("runs/mode_collapse"))
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.iterations < 1 or args.pack < 2:
        parser.error("--iterations must be at least 1 and --pack at least 2")
    return args


def main(argv: list[str] | None = None) -> Path:
    args = parse(argv)
    mixture = MIXTURES[args.target]
    runs = []
    for pack in (1, args.pack):
        folder = args.out / ("gan" if pack == 1 else f"pacgan{pack}")
        flags = ["--iterations", str(args.iterations), "--seed", str(args.seed)]
        flags += ["--pack", str(pack), "--out", str(folder), "--overwrite"]
        flags += ["--modes-every", str(max(1, args.iterations // 20))]
        flags += ["--no-progress"] if args.no_progress else []
        trainer = train(flags, default_preset=args.target, presets=[args.target])
        points = trainer.gan.generate(trainer.gan.sample_noise(MIXTURE_SAMPLES))
        runs.append(("GAN" if pack == 1 else f"PacGAN{pack}", points, folder))

    figure, axes = plt.subplots(2, 2, figsize=(10, 9.5))
    limits = scatter_limits(mixture.centres)
    for column, (name, points, folder) in enumerate(runs):
        rows = read_modes_csv(folder / MODES_CSV)
        last = rows[-1]
        title = f"{name}: {last['modes']}/{mixture.num_modes} modes, {last['high_quality']:.0%} HQ"
        plot_points(axes[0, column], points, mixture.centres, limits, title)
        axes[1, 0].plot([r["step"] for r in rows], [r["modes"] for r in rows], label=name)
        axes[1, 1].plot([r["step"] for r in rows], [r["reverse_kl"] for r in rows], label=name)
    axes[1, 0].axhline(mixture.num_modes, color="grey", linewidth=0.8, linestyle=":")
    axes[1, 0].set(title="modes captured", xlabel="iteration")
    axes[1, 1].set(title="reverse KL to the uniform mode histogram", xlabel="iteration")
    for axis in axes[1]:
        axis.legend()
    figure.tight_layout()
    path = args.out / "side_by_side.png"
    figure.savefig(path, dpi=90)
    plt.close(figure)
    print(f"tinygan: the two runs side by side: {path}")
    return path


if __name__ == "__main__":
    main()
