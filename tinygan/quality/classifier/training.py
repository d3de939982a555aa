r"""How the classifier learns: Adam on softmax cross-entropy, a cosine learning-rate schedule and
images shifted by a pixel or two.

:func:`fit_classifier` is the loop on any images and labels; :class:`ClassifierSettings` is the
recipe of the classifier behind the metrics (architecture, budget, seed), and
:func:`train_classifier` follows it on a :class:`~tinygan.quality.classifier.ClassifierData` and measures
the result on the held-out images.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from tinygan.backend import to_device
from tinygan.data import BatchIterator
from tinygan.losses import softmax_cross_entropy
from tinygan.optim import Adam
from tinygan.quality.classifier.data_split import ClassifierData
from tinygan.quality.classifier.network import Classifier, as_classifier_input, build_classifier


def fit_classifier(
    classifier: Classifier,
    images: np.ndarray,
    labels: np.ndarray,
    steps: int,
    rng: np.random.Generator,
    batch_size: int = 128,
    lr: float = 1e-3,
    progress: bool = True,
    max_shift: int = 0,
) -> float:
    r"""Train ``classifier`` in place with Adam on softmax cross-entropy; returns the last loss.

    Parameters
    ----------
    classifier : Classifier
    images : numpy.ndarray, shape (N, 28, 28)
        uint8 or [0, 1] floats.
    labels : numpy.ndarray, shape (N,)
        Classes in ``0 .. K-1``.
    steps : int
        Minibatch updates.
    rng : numpy.random.Generator
        Shuffles the data.
    batch_size : int
    lr : float
        Peak learning rate.
    progress : bool
        Show a progress bar.
    max_shift : int
        Shift each training image by up to this many pixels in each direction (see
        :func:`random_shift`); 0 trains on the images as they are.

    Returns
    -------
    float
        Mean training loss over the last 50 steps.

    Notes
    -----
    The learning rate follows a cosine from ``lr`` down to 0,
    :math:`\eta_t = \tfrac{\eta}{2}\,(1 + \cos(\pi t / T))`: large steps early, then small ones
    that settle into a minimum instead of rattling around it, which is worth a few tenths of a percent
    of accuracy for a short budget at no cost.
    """
    x = as_classifier_input(images)
    y = np.asarray(labels).astype(np.int64)
    device = classifier.device
    optimizer = Adam([classifier], lr=lr)
    batches = BatchIterator(np.arange(len(x)), min(batch_size, len(x)), rng)
    recent: deque[Any] = deque(maxlen=50)
    for step in tqdm(range(steps), disable=not progress, desc="classifier", unit="step"):
        optimizer.lr = 0.5 * lr * (1.0 + math.cos(math.pi * step / steps))
        index = next(batches)
        images_in_batch = random_shift(x[index], max_shift, rng) if max_shift else x[index]
        logits, cache = classifier.forward(to_device(images_in_batch, device), training=True)
        loss, dlogits = softmax_cross_entropy(logits, to_device(y[index], device))
        optimizer.zero_grad()
        classifier.backward(dlogits, cache)
        optimizer.step()
        recent.append(loss)
    return float(np.mean([float(value) for value in recent])) if recent else math.nan


def random_shift(images: np.ndarray, max_shift: int, rng: np.random.Generator) -> np.ndarray:
    """Each image moved by its own random offset of up to ``max_shift`` pixels along each axis.

    Parameters
    ----------
    images : numpy.ndarray, shape (N, C, H, W)
    max_shift : int
        Largest move, in pixels; offsets are drawn uniformly from ``-max_shift .. max_shift``.
    rng : numpy.random.Generator

    Returns
    -------
    numpy.ndarray, shape (N, C, H, W)
        Pixels moved in from outside the image are 0 (the background of MNIST digits and clothes).

    Notes
    -----
    A digit moved by two pixels is still the same digit. Showing the network such copies teaches it
    that position does not matter, which the 8,000 training images of the test split alone cannot
    teach; on the 2,000 held-out digits it takes the classifier past 99% accuracy.
    """
    n, _, height, width = images.shape
    padded = np.pad(images, ((0, 0), (0, 0), (max_shift, max_shift), (max_shift, max_shift)))
    top = rng.integers(0, 2 * max_shift + 1, n)
    left = rng.integers(0, 2 * max_shift + 1, n)
    rows = top[:, None] + np.arange(height)  # (N, H): the rows of the padded image to keep
    cols = left[:, None] + np.arange(width)
    picked = padded.transpose(0, 2, 3, 1)[
        np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]
    ]
    return np.ascontiguousarray(picked.transpose(0, 3, 1, 2))


@dataclass(frozen=True)
class ClassifierSettings:
    """Architecture and training recipe of the classifier behind the metrics.

    4,000 steps of 128 images is 64 epochs of an 8,000-image split or 8.5 epochs of MNIST's 60,000
    training images: several minutes on two CPU cores either way. Every image is shifted by up to
    ``max_shift`` pixels (:func:`random_shift`).
    """

    channels: tuple[int, int] = (16, 32)
    hidden: int = 128
    steps: int = 4000
    batch_size: int = 128
    lr: float = 2e-3
    seed: int = 0
    max_shift: int = 2

    def digest(self) -> str:
        """A short hash of the settings (the cache file name holds it: new settings, new file)."""
        return hashlib.md5(json.dumps(asdict(self)).encode(), usedforsecurity=False).hexdigest()[:8]


def train_classifier(
    data: ClassifierData, settings: ClassifierSettings, progress: bool = True
) -> Classifier:
    """A classifier trained on ``data``'s training images as ``settings`` say.

    Parameters
    ----------
    data : ClassifierData
        From :func:`tinygan.quality.classifier.classifier_data`.
    settings : ClassifierSettings
    progress : bool
        Progress bar while training.

    Returns
    -------
    Classifier
        On the CPU. ``classifier.info`` holds ``dataset``, ``description``, ``checksum``,
        ``settings``, ``train_size``, ``heldout_size``, ``heldout_accuracy`` (on the held-out
        images) and ``train_seconds``.
    """
    # the seed splits into one stream for the weights and one for the batch order
    init_seed, batch_seed = np.random.SeedSequence(settings.seed).spawn(2)
    classifier = build_classifier(
        np.random.default_rng(init_seed), settings.channels, settings.hidden
    )
    start = time.perf_counter()
    fit_classifier(
        classifier,
        data.train_images,
        data.train_labels,
        settings.steps,
        np.random.default_rng(batch_seed),
        settings.batch_size,
        settings.lr,
        progress,
        settings.max_shift,
    )
    classifier.info = {
        "dataset": data.dataset,
        "description": data.description,
        "checksum": data.checksum,
        "settings": asdict(settings),
        "train_size": len(data.train_images),
        "heldout_size": len(data.heldout_images),
        "heldout_accuracy": classifier.accuracy(data.heldout_images, data.heldout_labels),
        "train_seconds": round(time.perf_counter() - start, 1),
    }
    return classifier
