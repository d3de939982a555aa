"""The whole GAN training loop in one file, top to bottom: an MLP GAN learns to draw MNIST digits.

Training alternates two updates on every batch of real images x:

1. Discriminator: draw z ~ U(-1, 1), make fakes G(z), and take one Adam step on
   L_D = -log D(x) - log(1 - D(G(z))): D learns to tell real (1) from fake (0).
2. Generator: with the same z, take one Adam step on L_G = -log D(G(z)) (the non-saturating loss):
   G learns to make D say "real" to the D just updated. Its gradient flows back through D, whose
   weights stay as they are. (The tutorial feeds one noise batch to both updates; a fresh z for
   the generator works as well.)

``gan.discriminator_step`` and ``gan.generator_step`` are those two updates; tinygan/gan.py shows
their forward and backward passes on one screen. Everything else here is bookkeeping: flags, data,
printing, pictures and a checkpoint. The networks and settings are those of the mlp-tf preset (the
TensorFlow tutorial's MLP GAN); examples/mnist_mlp_gan.py trains the same GAN through tinygan's
Trainer, which adds logs, curves, resumable checkpoints and Ctrl-C handling.

    python examples/train_loop.py --epochs 5                          # writes runs/train_loop/
    python examples/train_loop.py --data-dir ../shared/data/mnist --split test --subset 2000
    tinygan sample runs/train_loop/checkpoint.npz --grid 8 8 --out picks
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from tinygan import init
from tinygan.data import images_to_float, load_mnist_or_bundled
from tinygan.gan import GAN
from tinygan.nn import Dense, ReLU, Sequential, Sigmoid
from tinygan.optim import Adam
from tinygan.run.checkpoint import save_checkpoint
from tinygan.run.flags import positive_float, positive_int, seed_int
from tinygan.viz import save_image_grid

LATENT_DIM = 100  # the size of z
HIDDEN = 128  # units in the one hidden layer of each network
PIXELS = 28 * 28  # the MLPs see a digit as one row of 784 pixels
GRID = 8  # an 8x8 grid of samples after every epoch


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--epochs", type=positive_int, default=100, help="passes over the data (default: 100)"
    )
    parser.add_argument("--batch-size", type=positive_int, default=64, help="default: 64")
    parser.add_argument(
        "--lr",
        type=positive_float,
        default=1e-3,
        help="Adam's step size for G and D (default: 1e-3)",
    )
    parser.add_argument("--seed", type=seed_int, default=0, help="random seed (default: 0)")
    parser.add_argument("--out", type=Path, default=Path("runs/train_loop"), help="output folder")
    parser.add_argument("--data-dir", type=Path, help="folder with the MNIST files")
    parser.add_argument("--split", choices=["train", "test"], default="train")
    parser.add_argument("--subset", type=positive_int, help="train on the first N images only")
    parser.add_argument("--print-every", type=positive_int, default=100, help="steps per line")
    args = parser.parse_args(argv)
    if args.subset is not None and args.subset < args.batch_size:
        parser.error(f"--subset {args.subset} is smaller than one batch of {args.batch_size}")
    return args


def build_networks(rng: np.random.Generator) -> tuple[Sequential, Sequential]:
    """G: z (100) -> 128 ReLU -> 784 sigmoid pixels; D: 784 pixels -> 128 ReLU -> 1 logit.

    D ends in a bare logit, D(x) = sigmoid(logit): the sigmoid lives inside the loss, where it is
    computed stably. Weights start as N(0, 0.05^2) and biases at 0.1, as in the tutorial.
    """

    def dense(n_in: int, n_out: int) -> Dense:
        return Dense(
            n_in, n_out, weight_init=init.normal(0.05), bias_init=init.constant(0.1), rng=rng
        )

    generator = Sequential(dense(LATENT_DIM, HIDDEN), ReLU(), dense(HIDDEN, PIXELS), Sigmoid())
    discriminator = Sequential(dense(PIXELS, HIDDEN), ReLU(), dense(HIDDEN, 1))
    return generator, discriminator


def shuffled_batches(
    data: np.ndarray, batch_size: int, rng: np.random.Generator
) -> Iterator[np.ndarray]:
    """One epoch: the data in a new random order, in whole batches (the last partial one is dropped)."""
    order = rng.permutation(len(data))
    for start in range(0, len(data) - batch_size + 1, batch_size):
        yield data[order[start : start + batch_size]]


def main(argv: list[str] | None = None) -> dict[str, list[float]]:
    """Train; returns the printed losses and mean discriminator outputs, by step."""
    # Long: a whole GAN training read top to bottom in one function is what this example is for.
    args = parse_args(argv)
    rng = np.random.default_rng(args.seed)  # the one source of randomness: weights, order and z

    # uint8 digits (N, 28, 28) -> float32 rows of 784 pixels in [0, 1], the range of G's sigmoid.
    # Without --data-dir and offline, the 10,000 test digits bundled with tinygan stand in.
    images, _, notice = load_mnist_or_bundled(
        args.split, args.data_dir, allow_bundled=args.data_dir is None
    )
    if notice:
        print(notice)
    data = images_to_float(images[: args.subset]).reshape(-1, PIXELS)

    generator, discriminator = build_networks(rng)
    gan = GAN(
        generator,
        discriminator,
        Adam([generator], lr=args.lr),
        Adam([discriminator], lr=args.lr),
        latent_dim=LATENT_DIM,
        rng=rng,
        noise="uniform",
    )
    fixed_z = gan.sample_noise(GRID * GRID)  # the same z for every grid, so that grids compare

    def save_grid(epoch: int) -> None:
        samples = gan.generate(fixed_z).reshape(-1, 28, 28)
        save_image_grid(samples, args.out / "samples" / f"epoch_{epoch:03d}.png", GRID, GRID)

    print(
        f"{len(data)} images, {len(data) // args.batch_size} steps per epoch, {args.epochs} epochs"
    )
    save_grid(0)  # the untrained generator: noise
    history: dict[str, list[float]] = {
        k: [] for k in ("step", "d_loss", "g_loss", "d_real", "d_fake")
    }
    step, started = 0, time.perf_counter()
    for epoch in range(args.epochs):
        for real in shuffled_batches(data, args.batch_size, rng):
            z = gan.sample_noise(len(real))
            d_loss, d_real, d_fake = gan.discriminator_step(real, z)  # D: real -> 1, G(z) -> 0
            g_loss = gan.generator_step(len(real), z)  # G: make D(G(z)) -> 1
            step += 1
            if step % args.print_every == 0:
                stats = {"d_loss": d_loss, "g_loss": g_loss, "d_real": d_real, "d_fake": d_fake}
                history["step"].append(step)
                for name, value in stats.items():
                    history[name].append(float(value))
                # D(x) near 1 and D(G(z)) near 0 for long means D is winning; both near 0.5, a stand-off
                print(
                    f"epoch {epoch + 1} step {step}  D loss {float(d_loss):.3f}  G loss "
                    f"{float(g_loss):.3f}  D(x) {float(d_real):.2f}  D(G(z)) {float(d_fake):.2f}  "
                    f"({time.perf_counter() - started:.0f} s)"
                )
        save_grid(epoch + 1)

    # The checkpoint names the mlp-tf preset, whose generator has this very shape, so that
    # `tinygan sample` can rebuild the generator and draw from it.
    path = save_checkpoint(
        args.out / "checkpoint.npz", gan, metadata={"preset": "mlp-tf", "seed": args.seed}
    )
    print(f"done: {step} steps; samples in {args.out / 'samples'}, checkpoint {path}")
    return history


if __name__ == "__main__":
    main()
