"""What a run on Stacked MNIST (the ``stacked-mnist`` preset) writes besides the usual files.

Such a run trains on images of three MNIST digits, one in each colour channel
(:mod:`tinygan.data.stacked_mnist`), and is judged as VEEGAN and PacGAN judge it: by the modes its
samples fall in, not by FID (the quality classifier reads one digit, not three)::

    <out>/samples/step_*.png   sample grids from a fixed noise batch, in colour: the digits of the
                               red, green and blue channels overlap where their strokes cross
    <out>/modes.csv            modes captured (of 1,000) and KL to uniform of 26,000 samples from
                               one fixed noise, every ``--modes-every`` steps and at the end
                               (:func:`tinygan.quality.metrics.stacked_mnist_modes`)

``modes.csv`` has the mixtures' columns (:data:`tinygan.run.records.MODES_COLUMNS`), read back with
:func:`tinygan.run.records.read_modes_csv`; its ``high_quality`` is blank, since the classifier gives
every sample a mode. The mode of a sample is read by the quality classifier
(:func:`tinygan.quality.classifier.choose_classifier`), one channel at a time, so its errors count
too: real Stacked MNIST images scored the same way (``benchmarks/modes.py``) miss some modes and
stay a little above a KL of 0.

One measurement generates and classifies 26,000 samples, 78,000 digits: about 20 seconds on one
core, three quarters of them the classifier's. So a run measures every :data:`STACKED_MODES_EVERY`
steps and at its end, four times in the preset's 4,000 steps (a sixth of its time, an eighth
with packs of 2), and not at step 0, where G is untrained.
"""

from __future__ import annotations

import numpy as np

from tinygan.backend import get_array_module, to_device
from tinygan.data.stacked_mnist import STACKED_MODES, stacked_labels
from tinygan.ema import averaged_generator
from tinygan.quality.metrics.modes import (
    STACKED_MNIST_SAMPLES,
    DigitClassifier,
    ModeCounts,
    count_modes,
    stacked_mnist_digits,
)
from tinygan.run.mixture_run import ModeMeasures
from tinygan.run.records import MODES_CSV
from tinygan.run.train import Trainer

#: Steps between measurements by default: a quarter of the preset's run (PacGAN's code measures
#: after every epoch of its 128,000 images, 2,000 steps of its 100,000).
STACKED_MODES_EVERY = 1000
#: Samples generated at once during a measurement (bounds the memory of G's activations).
CHUNK = 1000


class StackedModeMeasures(ModeMeasures):
    """Count the Stacked MNIST modes of a fixed batch of generated images every ``every`` steps,
    into ``modes.csv``.

    Parameters
    ----------
    every : int
        Steps between measurements; the end of the run is measured too.
    classifier : DigitClassifier
        Reads the digit of each channel (the quality classifier).
    rng : numpy.random.Generator
        Draws the fixed latent vectors once (on the CPU, so they are the same on every device).
    value_range : tuple of float
        The generator's output range, mapped to the [0, 1] the classifier reads.
    n : int, optional
        Samples per measurement: by default :data:`~tinygan.quality.metrics.modes.
        STACKED_MNIST_SAMPLES`, the papers' 26,000.
    filename : str

    Notes
    -----
    G runs in inference mode (BatchNorm's population statistics), as the authors' ``sampler``
    does, and from its moving average when the run keeps one (``--ema``); a resumed run keeps the
    rows up to the step it resumes from (:class:`~tinygan.run.mixture_run.ModeMeasures`).
    """

    at_start = False

    def __init__(
        self,
        every: int,
        classifier: DigitClassifier,
        rng: np.random.Generator,
        value_range: tuple[float, float],
        n: int | None = None,
        filename: str = MODES_CSV,
    ) -> None:
        super().__init__(every, rng, STACKED_MNIST_SAMPLES if n is None else n, filename)
        self.classifier, self.value_range = classifier, value_range

    @property
    def num_modes(self) -> int:
        """Stacked MNIST's 1,000 modes."""
        return STACKED_MODES

    def counts(self, trainer: Trainer) -> ModeCounts:
        """Modes captured and KL to uniform of the ``n`` samples of the fixed noise, generated and
        classified :data:`CHUNK` at a time."""
        low, high = self.value_range
        digits = []
        with averaged_generator(trainer.gan):
            for start in range(0, self.n, CHUNK):
                z = to_device(self.noise[start : start + CHUNK], trainer.device)
                images = trainer.gan.generate(z)
                xp = get_array_module(images)
                unit = xp.clip((images - low) / (high - low), 0.0, 1.0)
                digits.append(stacked_mnist_digits(unit, self.classifier))
        return count_modes(stacked_labels(np.concatenate(digits)), STACKED_MODES, self.n, None)
