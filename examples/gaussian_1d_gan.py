"""Train the smallest GAN: a generator that learns to imitate N(0, 1), one number at a time.

The gaussian-1d preset (alias 001) is the Keras tutorial's 1-D GAN: 1,000 draws of N(0, 1) are the
whole dataset; the discriminator is 1 -> 32 ReLU -> 1 (a logit: the sigmoid lives in the loss), the generator
16 -> 32 ReLU -> 1 linear, fed z ~ U(-1, 1)^16; Glorot-uniform weights and zero biases (Keras'
defaults); Adam 1e-3 for D and 5e-4 for G; label smoothing (targets 0.9 for real and 0.1 for fake,
and 0.9 for the generator's fakes); 3 minibatches per epoch for 1,000 epochs, the generator's update
on the noise batch of the discriminator's update before it, as in the tutorial. Every 10 epochs it
prints the losses and the KL divergence between histograms of real and generated samples.

    python examples/gaussian_1d_gan.py                          # the tutorial's run, ~10 s
    python examples/gaussian_1d_gan.py --epochs 50 --seed 1     # a short run
    python examples/gaussian_1d_gan.py --mean 3 --std 0.5       # another Gaussian
    python examples/gaussian_1d_gan.py --mixture=-2:0.5,2:0.5 --epochs 3000   # two modes
    python examples/gaussian_1d_gan.py --mixture=-2:0.5,2:0.5 --epochs 3000 --pack 2  # PacGAN

Write ``--mixture=...`` with an equals sign when the first mean is negative (otherwise the value
looks like a flag). With two well separated modes, watch the final histogram for *mode collapse*:
a generator that covers one bump, or spreads mass into the gap, and still fools the discriminator.
``--pack 2`` lets the discriminator judge two samples at once (PacGAN, :mod:`tinygan.gan`), which
penalises a generator that drops a bump.

Outputs in ``--out`` (default runs/gaussian-1d): ``histogram.png`` (real vs generated, at the end),
``divergence.png`` (KL and JS over training), and the trainer's ``log.csv``, ``losses.png`` and
``discriminator_outputs.png``.

Differences from the tutorial, none of which changes what is learned (docs/presets.md checks every
setting against the tutorial's code):

* Minibatches: 333 samples, reshuffled every epoch (:class:`tinygan.data.BatchIterator` with
  ``drop_last``): 3 equal batches, the one left-over sample sits that epoch out. The tutorial slices
  the unshuffled data into 333 + 333 + 334.
* Discriminator loss: the tutorial fits D on the concatenation of the real and fake batches, a mean
  over 2N samples; tinygan's loss is the *sum* of the real and the fake means. Same gradient
  direction, twice the scale, and Adam's update m / sqrt(v) does not see a constant scale of the
  gradient (up to its eps), so the training is the same; the printed D loss is twice Keras'.
* Printed losses are means over the last 10 epochs' steps (the tutorial prints the last batch's).
* The KL divergence is measured with ``--eval-samples`` generated samples (default 10,000) rather
  than 1,000: with 100 bins, 1,000 samples leave many tail bins empty by chance, and even a perfect
  generator then scores about 0.2. The run prints what a perfect generator scores at that sample
  size, as a reference.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from tinygan.backend import new_seed, to_numpy
from tinygan.data import BatchIterator, GaussianMixture
from tinygan.models import PRESETS
from tinygan.run.flags import (
    FlagParser,
    check_writable_folder,
    finite_float,
    positive_float,
    positive_int,
    seed_int,
)
from tinygan.run.train import Callback, LossCurves, Trainer
from tinygan.theory import histogram_js, histogram_kl
from tinygan.viz import save_histograms, save_loss_curves

NUM_SAMPLES = 1000  # the tutorial's dataset: realData = np.random.normal(size=1000)


def build_parser() -> argparse.ArgumentParser:
    parser = FlagParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mean", type=finite_float, help="mean of the Gaussian target (default 0)")
    parser.add_argument(
        "--std", type=positive_float, help="standard deviation of the target (default 1)"
    )
    parser.add_argument(
        "--mixture",
        help="equal mixture of Gaussians 'mean:std,mean:std,...', e.g. --mixture=-2:0.5,2:0.5",
    )
    parser.add_argument(
        "--epochs",
        type=positive_int,
        default=PRESETS["gaussian-1d"].epochs,
        help="passes over the 1,000 samples, 3 steps each (default 1000)",
    )
    parser.add_argument("--seed", type=seed_int, help="random seed (default: a fresh one, printed)")
    parser.add_argument(
        "--pack",
        type=positive_int,
        default=1,
        metavar="M",
        help="the discriminator judges M samples at once (PacGAN; default 1: off); a step takes "
        "M * 333 samples, so M is at most 3",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/gaussian-1d"), help="output folder")
    parser.add_argument(
        "--eval-samples",
        type=positive_int,
        default=10_000,
        help="generated samples per KL measurement (the tutorial used 1,000)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def target_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> GaussianMixture:
    """The target distribution named by ``--mixture``, or by ``--mean``/``--std``."""
    if args.mixture is not None:
        if args.mean is not None or args.std is not None:
            parser.error("give --mixture or --mean/--std, not both")
        try:
            return GaussianMixture.parse(args.mixture)
        except ValueError as error:
            parser.error(str(error))
    mean = 0.0 if args.mean is None else args.mean
    std = 1.0 if args.std is None else args.std
    try:
        return GaussianMixture.normal(mean, std)
    except ValueError as error:
        parser.error(str(error))


class DivergenceLog(Callback):
    """Every ``every`` epochs (and at the start and the end): losses, KL and JS, printed and kept.

    The KL divergence is the Keras 1-D Gaussian tutorial's, :math:`KL(real || generated)` between
    100-bin histograms on the real data's range; the JS divergence uses the range of both sample
    sets.

    Parameters
    ----------
    data : numpy.ndarray, shape (N, 1)
        The training data (the ``p`` of the KL divergence).
    every : int
        Epochs between measurements.
    num_samples : int
        Generated samples per measurement.
    rng : numpy.random.Generator
        Draws the evaluation noise, apart from the training noise, so that measuring more or less
        often does not change the training run.
    reference_kl : float
        What fresh samples of the target itself score: the floor a perfect generator would reach,
        drawn as a flat line on the divergence plot.
    """

    def __init__(
        self,
        data: np.ndarray,
        every: int,
        num_samples: int,
        rng: np.random.Generator,
        reference_kl: float,
    ) -> None:
        self.data, self.every, self.num_samples, self.rng = data, every, num_samples, rng
        self.reference_kl = reference_kl
        self.history: dict[str, list[float]] = {"epoch": [], "step": [], "kl": [], "js": []}

    def generated(self, trainer: Trainer) -> np.ndarray:
        """``num_samples`` fresh samples of the generator, on the host, shape (num_samples, 1)."""
        gan = trainer.gan
        return to_numpy(gan.generate(gan.sample_noise(self.num_samples, rng=self.rng)))

    def measure(self, trainer: Trainer) -> None:
        fake = self.generated(trainer)
        kl, js = histogram_kl(self.data, fake), histogram_js(self.data, fake)
        for name, value in zip(self.history, (trainer.epoch, trainer.step, kl, js), strict=True):
            self.history[name].append(value)
        logged = trainer.history
        losses = (
            f"D loss {logged['d_loss'][-1]:.3f}  G loss {logged['g_loss'][-1]:.3f}"
            if logged["step"]
            else "D loss   -    G loss   -  "
        )
        tqdm.write(f"epoch {trainer.epoch:5d}  {losses}  KL {kl:.3f}  JS {js:.4f}")

    def on_train_begin(self, trainer: Trainer) -> None:
        self.measure(trainer)

    def on_epoch_end(self, trainer: Trainer) -> None:
        if trainer.epoch % self.every == 0:
            self.measure(trainer)

    def on_train_end(self, trainer: Trainer) -> None:
        if self.history["step"][-1] != trainer.step:
            self.measure(trainer)
        fake = self.generated(trainer)
        save_histograms(
            {"real": self.data, "generated": fake},
            trainer.out_dir / "histogram.png",
            bins=100,
            title=f"Epoch {trainer.epoch}: real data vs generated samples",
            xlabel="x",
        )
        save_loss_curves(
            {
                "KL(real || generated)": self.history["kl"],
                "JS(real, generated)": self.history["js"],
                "KL of fresh target samples (a perfect generator)": [self.reference_kl]
                * len(self.history["kl"]),
            },
            trainer.out_dir / "divergence.png",
            steps=self.history["epoch"],
            title="Divergence between histograms of real and generated samples (100 bins)",
            ylabel="nats",
            xlabel="epoch",
        )


def main(argv: list[str] | None = None) -> dict[str, list[float]]:
    """Train the gaussian-1d preset on the chosen target; returns the KL/JS history (epoch, step, kl, js)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    target = target_from_args(args, parser)
    if args.eval_samples < 2:
        parser.error("argument --eval-samples: must be at least 2")
    preset = replace(PRESETS["gaussian-1d"], pack=args.pack)
    if preset.batch_size * preset.pack > NUM_SAMPLES:
        parser.error(
            f"argument --pack: {args.pack} packs of {preset.batch_size} samples are more than the "
            f"{NUM_SAMPLES} samples of the data set (at most {NUM_SAMPLES // preset.batch_size})"
        )
    check_writable_folder(parser.prog, args.out)
    seed = new_seed() if args.seed is None else args.seed
    print(f"tinygan: preset gaussian-1d ({preset.description})")
    print(f"tinygan: seed {seed}  (pass --seed {seed} to repeat this run)")
    data_seed, init_seed, noise_seed, batch_seed, eval_seed = np.random.SeedSequence(seed).spawn(5)

    data = target.sample(NUM_SAMPLES, np.random.default_rng(data_seed))
    batches = BatchIterator(
        data, preset.batch_size * preset.pack, np.random.default_rng(batch_seed)
    )
    gan = preset.make_gan(np.random.default_rng(init_seed), np.random.default_rng(noise_seed))

    eval_rng = np.random.default_rng(eval_seed)
    perfect = histogram_kl(data, target.sample(args.eval_samples, eval_rng))
    print(
        f"tinygan: target {target}, {NUM_SAMPLES} samples, {args.epochs} epochs of "
        f"{batches.steps_per_epoch} batches of {preset.batch_size}; KL measured with "
        f"{args.eval_samples} generated samples (fresh draws of the target itself score {perfect:.3f})"
    )
    log = DivergenceLog(data, preset.sample_every, args.eval_samples, eval_rng, perfect)
    trainer = Trainer(
        gan,
        batches,
        args.out,
        callbacks=[log, LossCurves()],
        # one log.csv row per printed line: the printed losses are the means over that window
        log_every=preset.sample_every * batches.steps_per_epoch,
        progress=not args.no_progress,
    )
    trainer.fit(args.epochs * batches.steps_per_epoch)
    best = int(np.argmin(log.history["kl"]))
    print(
        f"tinygan: final KL {log.history['kl'][-1]:.3f} (best {log.history['kl'][best]:.3f} at "
        f"epoch {log.history['epoch'][best]}); outputs in {args.out}"
    )
    return log.history


if __name__ == "__main__":
    main()
