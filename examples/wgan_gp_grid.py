"""WGAN-GP on the 25-mode grid: a Wasserstein critic held near 1-Lipschitz by a gradient penalty,
beside the plain GAN on the same grid.

The plain GAN's discriminator estimates the Jensen-Shannon divergence, whose gradient vanishes
once D tells the two distributions apart, and its generator is free to settle on the modes it has
(``examples/mode_collapse.py``). The WGAN-GP critic (Gulrajani et al. 2017) estimates the earth
mover's distance instead: it scores points, not probabilities, and the generator follows the
critic's gradient toward wherever mass is missing, however far away. The critic stays near
1-Lipschitz through the penalty :math:`\\lambda (\\|\\nabla_x D(\\hat x)\\| - 1)^2` at random
points between real and fake samples, whose gradient for D's weights is a gradient of a gradient
(``tinygan/penalties.py``, ``docs/tour.md`` stops 12 and 14).

Both runs use the ``grid`` preset's networks (BatchNorm MLP generator, maxout discriminator), data,
seed, learning rate and averaging; only the game differs. WGAN-GP trains with ``--loss wasserstein
--penalty wgan-gp`` and ``--n-critic`` critic updates per generator update; the plain GAN (the
preset's cross-entropy game) gets as many discriminator updates in all (``--n-critic`` times
``--iterations`` steps of one update each), so the two have seen the same data. The settings are
the WGAN-GP authors' toy ones where tinygan has a flag for them: 5 critic updates per generator
update and a penalty weight of 0.1 (their code for the 2-D targets: a smaller lambda than the
paper's 10 trains faster there). Two are changed to run in minutes rather than hours: the
learning rate is 1e-3 (they train 100,000 generator updates at 1e-4), and the points are drawn by
a moving average of the generator's weights over about the last 100 updates (``--ema 0.99``): at
that rate each iterate's points jitter around the modes, and the average sits on them
(``tinygan/ema.py`` explains why averaging helps a GAN; a longer average lags behind the BatchNorm
statistics it is read with). Adam's betas (0.5, 0.9) and the width of their networks have no flag:
the preset's Adam (beta1 0.8) and networks are used.

Each run writes its scatter frames, GIF and ``modes.csv``; this script draws both in
``<out>/side_by_side.png``: each generator's 2,500 points over the modes, the modes each holds
over the run, and the critic's estimate of the distance beside WGAN-GP's share of high-quality
samples (the WGAN paper's observation: the critic's loss follows the samples' quality). With the
defaults, WGAN-GP holds 24 or 25 of the 25 modes at the end on most seeds, with 10 to 25% of its
points of high quality (its points also fill the space between the modes thinly); the plain GAN's
points are sharper and hold fewer modes.

    python examples/wgan_gp_grid.py                      # about 8 minutes on 2 cores
    python examples/wgan_gp_grid.py --penalty-weight 10  # the paper's lambda for images
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from tinygan.data.mixtures import MIXTURES
from tinygan.ema import averaged_generator
from tinygan.quality.metrics.modes import MIXTURE_SAMPLES, mixture_modes
from tinygan.run.experiment import main as train
from tinygan.run.mixture_run import MODES_CSV, read_modes_csv
from tinygan.run.train import Trainer
from tinygan.viz import new_figure, plot_points, save_figure, scatter_limits

PRESET = "grid"


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=3000, help="WGAN-GP's generator updates")
    parser.add_argument("--n-critic", type=int, default=5, help="critic updates per G update")
    parser.add_argument("--penalty-weight", type=float, default=0.1, help="the penalty's lambda")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate, both runs")
    parser.add_argument(
        "--ema", type=float, default=0.99, help="decay of G's moving average, both runs (0: off)"
    )
    parser.add_argument("--seed", type=int, default=0, help="the same seed for both runs")
    parser.add_argument("--out", type=Path, default=Path("runs/wgan_gp_grid"))
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if min(args.iterations, args.n_critic) < 1:
        parser.error("--iterations and --n-critic must be at least 1")
    if not 0 <= args.ema < 1:
        parser.error("--ema must be at least 0 and below 1")
    return args


def train_on_grid(name: str, steps: int, game: list[str], args: argparse.Namespace) -> Trainer:
    """Train one of the two into ``<out>/<name>`` with the flags both share and its ``game``."""
    flags = ["--iterations", str(steps), "--seed", str(args.seed), "--lr", str(args.lr)]
    flags += ["--ema", str(args.ema)] if args.ema else []
    flags += ["--out", str(args.out / name), "--overwrite"]
    flags += ["--no-progress"] if args.no_progress else []
    flags += ["--modes-every", str(max(1, steps // 20)), "--sample-every", str(max(1, steps // 4))]
    return train(flags + game, default_preset=PRESET, presets=[PRESET])


def main(argv: list[str] | None = None) -> Path:
    args = parse(argv)
    game = ["--loss", "wasserstein", "--penalty", "wgan-gp", "--n-critic", str(args.n_critic)]
    game += ["--penalty-weight", str(args.penalty_weight)]
    runs = {  # each run's Trainer, and its D updates per step
        "WGAN-GP": (train_on_grid("wgan-gp", args.iterations, game, args), args.n_critic),
        "GAN": (train_on_grid("gan", args.n_critic * args.iterations, [], args), 1),
    }
    mixture = MIXTURES[PRESET]
    figure = new_figure((10.0, 9.5), 90, layout="constrained")
    axes = figure.subplots(2, 2)
    limits = scatter_limits(mixture.centres)
    for column, (name, (trainer, d_updates)) in enumerate(runs.items()):
        rows = read_modes_csv(trainer.out_dir / MODES_CSV)
        with averaged_generator(trainer.gan):  # the generator modes.csv measures
            points = trainer.gan.generate(trainer.gan.sample_noise(MIXTURE_SAMPLES))
        counts = mixture_modes(points, mixture.centres, mixture.std)
        title = f"{name}: {counts.modes_captured}/{mixture.num_modes} modes, "
        title += f"{counts.high_quality:.0%} HQ, reverse KL {counts.reverse_kl:.2f}"
        plot_points(axes[0, column], points, mixture.centres, limits, title)
        axes[1, 0].plot(
            [d_updates * r["step"] for r in rows], [r["modes"] for r in rows], label=name
        )
    axes[1, 0].axhline(mixture.num_modes, color="grey", linewidth=0.8, linestyle=":")
    axes[1, 0].set(title="modes captured", xlabel="discriminator (critic) updates")
    axes[1, 0].legend()
    plot_critic(axes[1, 1], *runs["WGAN-GP"])
    path = save_figure(figure, args.out / "side_by_side.png")
    print(f"tinygan: WGAN-GP and the plain GAN side by side: {path}")
    return path


def plot_critic(axes: Any, trainer: Trainer, d_updates: int) -> None:
    """WGAN-GP's critic estimate E[D(x)] - E[D(G(z))] of the earth mover's distance per logging
    window, and the share of high-quality samples on a second axis."""
    history = trainer.history
    steps = d_updates * np.asarray(history["step"])
    estimate = np.asarray(history["d_real"]) - np.asarray(history["d_fake"])
    axes.plot(steps, estimate, color="tab:purple", label="critic: E[D(x)] - E[D(G(z))]")
    axes.set(title="WGAN-GP: the critic's distance and the samples' quality")
    axes.set(xlabel="critic updates", ylabel="estimated distance")
    rows = read_modes_csv(trainer.out_dir / MODES_CSV)
    share = axes.twinx()
    share.plot(
        [d_updates * r["step"] for r in rows],
        [100 * r["high_quality"] for r in rows],
        color="tab:green",
        marker=".",
        label="high-quality samples (%)",
    )
    share.set(ylabel="high-quality samples (%)")
    lines = axes.get_lines() + share.get_lines()
    axes.legend(lines, [line.get_label() for line in lines], loc="upper right")


if __name__ == "__main__":
    main()
