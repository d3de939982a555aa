"""Train an MLP GAN on MNIST and watch digits appear in runs/<preset>/samples/.

Preset 000 (default) is the TensorFlow tutorial's GAN: G 100-128-784 with a sigmoid output,
D 784-128-1, z ~ U(-1, 1), Adam 1e-3, batch 64, an 8x8 sample grid every 500 iterations, 100k
iterations. Preset 004 is the book's variant: hidden 256, z ~ N(0, 1) of size 128, Adam 2e-4,
batch 100, a 1x10 strip every 10 epochs, 100 epochs.

    python examples/mnist_mlp_gan.py                                  # preset 000, full run
    python examples/mnist_mlp_gan.py --iterations 5000 --seed 1       # a short run
    python examples/mnist_mlp_gan.py --preset 004 --epochs 20
    python examples/mnist_mlp_gan.py --data-dir ../shared/data/mnist --split test

One training step, in tinygan/gan.py, is the whole algorithm: a discriminator update on a real and a
generated batch, then a generator update through the frozen discriminator. This script only wires a
preset, the data and the callbacks together (tinygan/experiment.py).
"""

from tinygan.experiment import main

if __name__ == "__main__":
    main(default_preset="000", presets=["000", "004"])
