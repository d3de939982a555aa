"""Train an MLP GAN on MNIST and watch digits appear in runs/<preset>/samples/.

Preset mlp-tf (alias 000, the default) is the TensorFlow tutorial's GAN: G 100-128-784 with a sigmoid
output, D 784-128-1, z ~ U(-1, 1), Adam 1e-3, batch 64, an 8x8 sample grid every 500 iterations, 100k
iterations. Preset mlp-book (alias 004) is the TensorFlow book's variant: hidden 256, z ~ N(0, 1) of
size 128, Adam 2e-4, batch 100, a 1x10 strip every 10 epochs, 100 epochs.

    python examples/mnist_mlp_gan.py                                  # mlp-tf, full run, in runs/mlp-tf
    python examples/mnist_mlp_gan.py --iterations 5000 --seed 1       # a short run
    python examples/mnist_mlp_gan.py --preset mlp-book --epochs 20
    python examples/mnist_mlp_gan.py --data-dir ../shared/data/mnist --split test

One training step, in tinygan/gan.py, is the whole algorithm: a discriminator update on a real and a
generated batch, then a generator update through the frozen discriminator. This script only wires a
preset, the data and the callbacks together (tinygan/run/experiment.py, which builds them in
tinygan/run/build.py); examples/train_loop.py writes the same training out as one plain loop.
"""

from tinygan.run.experiment import main

if __name__ == "__main__":
    main(default_preset="mlp-tf", presets=["mlp-tf", "mlp-book"])
