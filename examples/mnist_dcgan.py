"""Train a DCGAN on MNIST (or Fashion-MNIST): the TensorFlow tutorial's (dcgan-tf), the Keras one's
(dcgan-keras), or dcgan-fast, which draws digits within minutes on a CPU.

Preset dcgan-tf (alias 003, the default): G Dense -> BN -> ReLU -> (64, 7, 7) -> ConvTranspose 64/32/1
k5 (7 -> 14 -> 28) with BN and ReLU between, tanh output; D Conv 64/128 k5 s2 with LeakyReLU and
Dropout 0.3, then Dense 1. z ~ N(0, 1) of 100, Adam 1e-4, batch 256, 150 epochs; a 4x4 grid from fixed
noise every epoch, a checkpoint every 15 epochs, and training.gif of the epoch images at the end.
Each step takes both updates from one forward of G, as the tutorial's train_step does
(--no-simultaneous alternates instead).

Preset dcgan-keras (alias 002): G Dense 512 -> Dense 128*7*7 -> BN -> UpSampling -> Conv 64 k5 tanh ->
UpSampling -> Conv 1 k5 tanh; D Conv 256/512 k5 with LeakyReLU, MaxPool and Dropout, Dense 256,
Dense 1. z ~ U(-1, 1), Adam 2e-4 (beta1 0.5), batch 128, one D update then five G updates per
iteration, real label 0.9; D's fakes come from G in inference mode, as the tutorial's G.predict
(--no-inference-fakes for training mode); loss curves and real-vs-generated pixel histograms
before and after training. It is heavy on a CPU (about 100 GFLOP per iteration): use --device gpu, or a short run.

Preset dcgan-fast (no tutorial: the common DCGAN recipe, sized for a CPU): G Dense -> BN -> ReLU ->
(64, 7, 7) -> ConvTranspose 32/1 k4 s2 with BN and ReLU between, tanh output; D Conv 32/64 k4 s2 with
LeakyReLU 0.2 and BatchNorm on the second; weights from N(0, 0.02), Adam 2e-4 (beta1 0.5), batch 128,
2,000 steps, alternating: D's update, then G's on fresh noise. --simultaneous plays each step as the
TensorFlow tutorial does (one G forward for both updates), --inference-fakes makes D's fake batch as
the Keras tutorial's G.predict does. docs/presets.md checks each preset against its tutorial.

    python examples/mnist_dcgan.py --epochs 5                          # dcgan-tf, 5 epochs, in runs/dcgan-tf
    python examples/mnist_dcgan.py --epochs 10 --resume                # continue it to 10 epochs
    python examples/mnist_dcgan.py --preset dcgan-keras --iterations 50 --batch-size 32
    python examples/mnist_dcgan.py --dataset fashion-mnist --data-dir /usr/share/datasets
    python examples/mnist_dcgan.py --preset dcgan-fast                 # digits in a few minutes
"""

from tinygan.run.experiment import main

if __name__ == "__main__":
    main(default_preset="dcgan-tf", presets=["dcgan-tf", "dcgan-keras", "dcgan-fast"])
