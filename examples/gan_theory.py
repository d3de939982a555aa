r"""The GAN paper's first figure, drawn from a real training run of the 1-D GAN.

Goodfellow et al. (2014) explain the game with four sketches on a line: the data density p_data,
the generator's density p_g, and the discriminator D(x). (a) p_g is somewhere else; (b) D learns
to tell them apart; (c) guided by D, the generator moves p_g towards p_data; (d) at the end
p_g = p_data and D(x) = 1/2 everywhere: it cannot do better than a coin.

The theory behind the sketches (Proposition 1 and Theorem 1 of the paper):

* For a fixed generator, the discriminator that maximises
  V(D, G) = E_x~p_data[log D(x)] + E_z[log(1 - D(G(z)))] is
  D*(x) = p_data(x) / (p_data(x) + p_g(x)).
* With that discriminator the game's value is C(G) = max_D V(D, G) = -log 4 + 2 JS(p_data, p_g),
  so the generator's best possible value is -log 4 ~ -1.386, reached exactly when p_g = p_data.

Both are derived in :mod:`tinygan.theory`, which computes every quantity drawn here.

This script trains the gaussian-1d preset's networks and optimizers (1 -> 32 -> 1 discriminator,
16 -> 32 -> 1 generator, Adam 1e-3 / 5e-4, batches of 333 out of 1,000 samples) with the paper's targets 1 and 0:
label smoothing would move the optimum to 0.1 + 0.8 D*(x) (see
:func:`tinygan.theory.optimal_discriminator`). The target defaults to N(2, 0.5^2): the untrained
generator sits near 0 with a spread of about 0.4, so it has somewhere to go, as in the paper's
sketches. It writes, in ``--out`` (default runs/gan_theory):

    minimax.png              log(x) and log(1 - x) on (0, 1): the two terms of V as functions of
                             D's output; both equal log(1/2) at D = 1/2, summing to -log 4
    moment_epoch_NNNN.png    at each of --moments: p_data, p_g (histogram and kernel density
                             estimate), the trained D(x) and the optimal D*(x) for the current G
    theory_curves.png        over training: the JS estimate; V(D, G) on samples with its ceiling
                             C(G) and the optimum -log 4; mean D on real and on generated samples

    python examples/gan_theory.py                        # 300 epochs, about 10 s
    python examples/gan_theory.py --epochs 20 --seed 0   # a short run, a few seconds
    python examples/gan_theory.py --mean 0 --std 1 --moments 0,5,50,300

The trained D lags behind D*: it takes one Adam step per generator step, not the inner loop to
convergence that Proposition 1 assumes. Where both densities are negligible D* is undefined (0/0)
and is not drawn; there D(x) is whatever the network extrapolates.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from tinygan.backend import new_seed, to_numpy
from tinygan.data import BatchIterator, GaussianMixture
from tinygan.models import PRESETS
from tinygan.nn import sigmoid
from tinygan.run.flags import (
    FlagParser,
    check_writable_folder,
    finite_float,
    positive_float,
    positive_int,
    seed_int,
)
from tinygan.run.train import Callback, LossCurves, Trainer
from tinygan.theory import (
    LOG_4,
    gaussian_kde,
    histogram_js,
    optimal_discriminator,
    silverman_bandwidth,
    value_function,
)
from tinygan.viz import new_figure, save_figure

NUM_SAMPLES = 1000  # training data, as in the 1-D GAN tutorial
GRID_POINTS = 400
# D* is drawn only where p_data + p_g exceeds this fraction of its peak: elsewhere it is 0/0.
DSTAR_SUPPORT = 1e-3

DATA_STYLE = {"color": "black", "linestyle": "--", "label": "p_data (the target)"}
GENERATOR_COLOR = "tab:green"
D_STYLE = {"color": "tab:blue", "linestyle": ":", "linewidth": 2.5, "label": "D(x), the network"}
DSTAR_STYLE = {"color": "tab:red", "linewidth": 1.5, "label": "D*(x) = p_data / (p_data + p_g)"}
HALF_STYLE = {"color": "gray", "linewidth": 0.8, "linestyle": "-."}


def figure_of_size(width: float, height: float) -> Figure:
    """A figure of ``width`` x ``height`` inches at 100 dpi, laid out automatically."""
    return new_figure((width, height), 100, layout="constrained")


def draw_minimax(path: Path) -> Path:
    """log(x) and log(1 - x) on (0, 1), the two terms of V(D, G) as functions of D's output."""
    x = np.linspace(1e-3, 1.0 - 1e-3, 999)
    figure = figure_of_size(7.0, 4.5)
    axes = figure.add_subplot()
    axes.plot(x, np.log(x), label="log D(x): the real-data term; D maximises it")
    axes.plot(
        x,
        np.log1p(-x),
        label="log(1 - D(G(z))): the generated-data term; D maximises it, G minimises it",
    )
    axes.axvline(0.5, **HALF_STYLE, label="D = 1/2")
    axes.plot([0.5], [-math.log(2.0)], "o", color="black")
    axes.annotate(
        "both = log(1/2): V = -log 4",
        (0.5, -math.log(2.0)),
        xytext=(0.55, -2.2),
        arrowprops={"arrowstyle": "->"},
    )
    axes.set_xlim(0.0, 1.0)
    axes.set_ylim(-5.0, 0.3)
    axes.set_xlabel("discriminator output D (probability of 'real')")
    axes.set_ylabel("log-likelihood")
    axes.set_title("The minimax game: min over G, max over D of V(D, G)")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower center")
    return save_figure(figure, path)


def draw_moment(
    path: Path,
    x: np.ndarray,
    p_data: np.ndarray,
    fake: np.ndarray,
    p_g: np.ndarray,
    d_of_x: np.ndarray,
    d_star: np.ndarray,
    title: str,
) -> Path:
    """One panel of the paper's figure: densities on the left axis, D and D* on the right."""
    figure = figure_of_size(8.0, 4.5)
    densities = figure.add_subplot()
    edges = np.linspace(x[0], x[-1], 81)
    densities.hist(
        fake,
        bins=edges,
        density=True,
        alpha=0.3,
        color=GENERATOR_COLOR,
        label="p_g, histogram of G(z)",
    )
    densities.plot(x, p_g, color=GENERATOR_COLOR, label="p_g, kernel density estimate")
    densities.plot(x, p_data, **DATA_STYLE)
    densities.set_xlim(x[0], x[-1])
    densities.set_ylim(bottom=0.0)
    densities.set_xlabel("x")
    densities.set_ylabel("density")
    probability = densities.twinx()
    probability.plot(x, d_of_x, **D_STYLE)
    probability.plot(x, d_star, **DSTAR_STYLE)
    probability.axhline(0.5, **HALF_STYLE)
    probability.set_ylim(0.0, 1.0)
    probability.set_ylabel("probability of 'real'")
    handles = densities.get_legend_handles_labels()
    more = probability.get_legend_handles_labels()
    densities.legend(handles[0] + more[0], handles[1] + more[1], loc="upper left", fontsize=8)
    densities.set_title(title)
    return save_figure(figure, path)


class TheoryRecorder(Callback):
    """Measures the game during training and draws the paper's figure at chosen epochs.

    Parameters
    ----------
    target : GaussianMixture
        The data distribution; its exact density is p_data in D*.
    moments : set of int
        Epochs at which to draw ``moment_epoch_NNNN.png`` (0 is before training).
    every : int
        Epochs between measurements for ``theory_curves.png``.
    num_samples : int
        Fresh real and generated samples per measurement: the expectations in V and the JS
        histograms are taken over them.
    rng : numpy.random.Generator
        Draws those samples, apart from the training's own randomness.
    """

    def __init__(
        self,
        target: GaussianMixture,
        moments: set[int],
        every: int,
        num_samples: int,
        rng: np.random.Generator,
    ) -> None:
        self.target, self.moments, self.every = target, moments, every
        self.num_samples, self.rng = num_samples, rng
        self.history: dict[str, list[float]] = {
            name: [] for name in ("epoch", "js", "value", "d_real", "d_fake")
        }
        self.figures: list[Path] = []

    def discriminate(self, trainer: Trainer, x: np.ndarray) -> np.ndarray:
        """D's logits for a column of samples."""
        x = x.astype(trainer.gan.dtype, copy=False)
        return to_numpy(trainer.gan.discriminator.forward(x, training=False)[0])

    def observe(self, trainer: Trainer) -> None:
        """Measure JS, V(D, G) and mean D now; draw the figure too if this epoch is a moment."""
        gan = trainer.gan
        real = self.target.sample(self.num_samples, self.rng)
        fake = to_numpy(gan.generate(gan.sample_noise(self.num_samples, rng=self.rng)))
        logits_real, logits_fake = (
            self.discriminate(trainer, real),
            self.discriminate(trainer, fake),
        )
        values = {
            "epoch": trainer.epoch,
            "js": histogram_js(real, fake),
            "value": value_function(logits_real, logits_fake),
            "d_real": float(sigmoid(logits_real).mean()),
            "d_fake": float(sigmoid(logits_fake).mean()),
        }
        for name, value in values.items():
            self.history[name].append(value)
        if trainer.epoch in self.moments:
            self.draw(trainer, fake, values)

    def draw(self, trainer: Trainer, fake: np.ndarray, values: dict[str, float]) -> None:
        # The plotted range holds the target and (almost all of) the generator's samples.
        low, high = self.target.interval(4.0)
        fake_low, fake_high = np.percentile(fake, [0.5, 99.5])
        x = np.linspace(min(low, fake_low), max(high, fake_high), GRID_POINTS)
        # A collapsed generator has no spread: keep the kernel at least one grid step wide.
        bandwidth = max(silverman_bandwidth(fake), x[1] - x[0])
        p_data, p_g = self.target.pdf(x), gaussian_kde(fake, x, bandwidth)
        d_star = optimal_discriminator(p_data, p_g)
        total = p_data + p_g
        d_star[total < DSTAR_SUPPORT * total.max()] = np.nan
        d_of_x = sigmoid(self.discriminate(trainer, x[:, np.newaxis]))[:, 0]
        title = (
            f"Epoch {trainer.epoch}: JS = {values['js']:.3f}, V(D, G) = {values['value']:.3f} "
            f"(optimum -log 4 = {-LOG_4:.3f})"
        )
        path = trainer.out_dir / f"moment_epoch_{trainer.epoch:04d}.png"
        self.figures.append(draw_moment(path, x, p_data, fake, p_g, d_of_x, d_star, title))

    def on_train_begin(self, trainer: Trainer) -> None:
        self.observe(trainer)

    def on_epoch_end(self, trainer: Trainer) -> None:
        if trainer.epoch % self.every == 0 or trainer.epoch in self.moments:
            self.observe(trainer)

    def on_train_end(self, trainer: Trainer) -> None:
        if self.history["epoch"][-1] != trainer.epoch:
            self.observe(trainer)
        self.figures.append(self.draw_curves(trainer.out_dir / "theory_curves.png"))

    def draw_curves(self, path: Path) -> Path:
        """JS, V(D, G) against -log 4, and mean D against 1/2, over the epochs."""
        epoch = np.asarray(self.history["epoch"])
        js = np.asarray(self.history["js"])
        figure = figure_of_size(8.0, 9.0)
        top, middle, bottom = figure.subplots(3, 1, sharex=True)

        top.plot(epoch, js, color="tab:purple", label="JS(p_data, p_g), histogram estimate")
        top.axhline(math.log(2.0), color="gray", linestyle=":", label="log 2: disjoint supports")
        top.axhline(0.0, color="black", linewidth=0.8)
        top.set_ylabel("nats")
        top.set_title("Jensen-Shannon divergence between data and generator")

        middle.plot(epoch, self.history["value"], label="V(D, G), estimated on samples")
        middle.plot(epoch, 2.0 * js - LOG_4, linestyle="--", label="C(G) = max_D V = -log 4 + 2 JS")
        middle.axhline(-LOG_4, color="tab:red", label=f"optimum -log 4 = {-LOG_4:.3f}")
        middle.set_ylabel("V")
        middle.set_title("The value of the game")

        bottom.plot(epoch, self.history["d_real"], label="mean D(x) on real samples")
        bottom.plot(epoch, self.history["d_fake"], label="mean D(G(z)) on generated samples")
        bottom.axhline(0.5, **HALF_STYLE, label="1/2: D cannot tell them apart")
        bottom.set_ylim(0.0, 1.0)
        bottom.set_ylabel("D")
        bottom.set_xlabel("epoch")
        bottom.set_title("What the discriminator says")

        for axes in (top, middle, bottom):
            for moment in sorted(self.moments):
                axes.axvline(moment, color="gray", alpha=0.25, linewidth=0.8)
            axes.grid(alpha=0.3)
            axes.legend(fontsize=8)
        return save_figure(figure, path)


def parse_moments(text: str, epochs: int) -> set[int]:
    """``"0,30,150,300"`` -> {0, 30, 150, 300}; each must lie in [0, epochs]."""
    try:
        moments = {int(part) for part in text.split(",")}
    except ValueError:
        raise ValueError(f"--moments takes comma-separated epochs, got {text!r}") from None
    if not all(0 <= moment <= epochs for moment in moments):
        raise ValueError(f"--moments must lie between 0 and --epochs ({epochs}), got {text!r}")
    return moments


def default_moments(epochs: int) -> set[int]:
    """Before training, early (D has learned something, G has barely moved), middle, end."""
    return {0, max(1, epochs // 10), epochs // 2, epochs}


def build_parser() -> argparse.ArgumentParser:
    parser = FlagParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--epochs",
        type=positive_int,
        default=300,
        help="passes over the 1,000 samples (default 300)",
    )
    parser.add_argument("--seed", type=seed_int, help="random seed (default: a fresh one, printed)")
    parser.add_argument("--out", type=Path, default=Path("runs/gan_theory"), help="output folder")
    parser.add_argument(
        "--mean", type=finite_float, default=2.0, help="mean of the Gaussian target"
    )
    parser.add_argument(
        "--std", type=positive_float, default=0.5, help="standard deviation of the target"
    )
    parser.add_argument(
        "--moments",
        help="comma-separated epochs to draw (default: 0, epochs/10, epochs/2, epochs)",
    )
    parser.add_argument(
        "--eval-samples",
        type=positive_int,
        default=20_000,
        help="fresh real and generated samples per measurement",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def main(argv: list[str] | None = None) -> dict[str, list[float]]:
    """Train, measure and draw; returns the measured curves (epoch, js, value, d_real, d_fake)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.eval_samples < 2:
        parser.error("argument --eval-samples: must be at least 2")
    check_writable_folder(parser.prog, args.out)
    try:
        target = GaussianMixture.normal(args.mean, args.std)
        moments = (
            default_moments(args.epochs)
            if args.moments is None
            else parse_moments(args.moments, args.epochs)
        )
    except ValueError as error:
        parser.error(str(error))
    preset = PRESETS["gaussian-1d"]
    seed = new_seed() if args.seed is None else args.seed
    print(f"tinygan: seed {seed}  (pass --seed {seed} to repeat this run)")
    data_seed, init_seed, noise_seed, batch_seed, eval_seed = np.random.SeedSequence(seed).spawn(5)

    data = target.sample(NUM_SAMPLES, np.random.default_rng(data_seed))
    batches = BatchIterator(data, preset.batch_size, np.random.default_rng(batch_seed))
    # the paper's game: targets 1 and 0, so that D's optimum is exactly D*
    gan = preset.make_gan(
        np.random.default_rng(init_seed),
        np.random.default_rng(noise_seed),
        real_label=1.0,
        fake_label=0.0,
        generator_target=1.0,
    )
    print(
        f"tinygan: the gaussian-1d preset's networks on {NUM_SAMPLES} samples of {target}, {args.epochs} "
        f"epochs; drawing epochs {sorted(moments)}"
    )

    draw_minimax(args.out / "minimax.png")
    recorder = TheoryRecorder(
        target,
        moments,
        every=max(1, args.epochs // 100),
        num_samples=args.eval_samples,
        rng=np.random.default_rng(eval_seed),
    )
    trainer = Trainer(
        gan,
        batches,
        args.out,
        callbacks=[recorder, LossCurves()],
        log_every=batches.steps_per_epoch * max(1, args.epochs // 100),
        progress=not args.no_progress,
    )
    trainer.fit(args.epochs * batches.steps_per_epoch)
    history = recorder.history
    print(
        f"tinygan: at epoch {history['epoch'][-1]}: JS {history['js'][-1]:.4f}, "
        f"V(D, G) {history['value'][-1]:.3f} (optimum {-LOG_4:.3f}), mean D on real "
        f"{history['d_real'][-1]:.3f} and on generated {history['d_fake'][-1]:.3f} (1/2 at the "
        f"equilibrium); figures in {args.out}"
    )
    return history


if __name__ == "__main__":
    main()
