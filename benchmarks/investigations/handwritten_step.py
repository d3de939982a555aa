"""mlp-tf's training iteration written out by hand, against ``GAN.train_step``: the framework's cost.

    python benchmarks/investigations/handwritten_step.py --iterations 2000

The hand-written iteration does the same arithmetic as preset 000's ``GAN.train_step`` -- one D
update on a real and a fake batch in one pass, one G update through D, Adam on both -- with the
same kernels (the Numba sigmoid, weight-gradient product and Adam of ``tinygan.kernels.cpu_numba``)
but no layers, containers, caches, argument checks or statistics. The two alternate in one process,
iteration by iteration; the difference of their medians is what tinygan's structure costs.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

if __name__ == "__main__" and not __package__:  # run as a file: import as `python -m` would
    sys.path[0] = str(Path(__file__).resolve().parents[2])

import numpy as np  # noqa: E402

from benchmarks.common import fresh_gan, synthetic_batches, timed  # noqa: E402

BATCH = 64


def handwritten_step(rng: np.random.Generator, real: np.ndarray) -> Callable[[], None]:
    """A closure running one mlp-tf iteration in plain NumPy (G 100-128-784, D 784-128-1)."""
    from tinygan.kernels import cpu_numba as kernels

    def weights(shape: tuple[int, ...]) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.05).astype(np.float32)

    params = [weights(s) for s in ((100, 128), (128,), (128, 784), (784,))]  # G
    params += [weights(s) for s in ((784, 128), (128,), (128, 1), (1,))]  # D
    g1, gb1, g2, gb2, d1, db1, d2, db2 = params
    grads = [np.zeros_like(p) for p in params]
    moments = [(np.zeros_like(p), np.zeros_like(p)) for p in params]
    labels = np.concatenate([np.ones((BATCH, 1), np.float32), np.zeros((BATCH, 1), np.float32)])
    step = itertools.count(1)

    def adam(indices: range, t: int) -> None:
        for i in indices:
            kernels.adam_update(params[i], grads[i], *moments[i], 1e-3, 0.9, 0.999, 1e-8, t)

    def generator(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        hidden = np.maximum(z @ g1 + gb1, 0)
        return hidden, kernels.sigmoid(hidden @ g2 + gb2)

    def discriminator(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        hidden = np.maximum(x @ d1 + db1, 0)
        return hidden, hidden @ d2 + db2

    def iteration() -> None:
        t = next(step)
        z = rng.uniform(-1, 1, (BATCH, 100)).astype(np.float32)
        x = np.concatenate([real, generator(z)[1]])
        hidden, logits = discriminator(x)
        dlogits = (kernels.sigmoid(logits) - labels) / BATCH
        for grad in grads[4:]:
            grad.fill(0)
        grads[6] += kernels.dense_weight_grad(hidden, dlogits)
        grads[7] += dlogits.sum(0)
        dhidden = (dlogits @ d2.T) * (hidden > 0)
        grads[4] += kernels.dense_weight_grad(x, dhidden)
        grads[5] += dhidden.sum(0)
        adam(range(4, 8), t)

        z = rng.uniform(-1, 1, (BATCH, 100)).astype(np.float32)
        g_hidden, fake = generator(z)
        hidden, logits = discriminator(fake)
        dlogits = (kernels.sigmoid(logits) - 1) / BATCH
        dfake = ((dlogits @ d2.T) * (hidden > 0)) @ d1.T
        dout = kernels.sigmoid_backward(dfake, fake)
        for grad in grads[:4]:
            grad.fill(0)
        grads[2] += kernels.dense_weight_grad(g_hidden, dout)
        grads[3] += dout.sum(0)
        dg_hidden = (dout @ g2.T) * (g_hidden > 0)
        grads[0] += kernels.dense_weight_grad(z, dg_hidden)
        grads[1] += dg_hidden.sum(0)
        adam(range(4), t)

    return iteration


def main(argv: list[str] | None = None) -> None:
    """Alternate the two iterations ``--iterations`` times and print each one's median."""
    from tinygan.models import get_preset

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=2000)
    args = parser.parse_args(argv)
    preset = get_preset("mlp-tf")
    real = synthetic_batches(preset, BATCH, 1)[0]
    gan = fresh_gan(preset)
    contenders = {
        "hand-written NumPy": handwritten_step(np.random.default_rng(0), real),
        "GAN.train_step": lambda: gan.train_step(lambda: real),
    }
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(20):
        for run in contenders.values():
            run()
    for _ in range(args.iterations):
        for name, run in contenders.items():
            times[name].append(timed(run))
    for name, samples in times.items():
        print(f"{name}: median {1e3 * statistics.median(samples):.3f} ms")


if __name__ == "__main__":
    main()
