r"""A small convolutional digit classifier built from tinygan's own layers: the eye of the quality metrics.

The Inception Score and the Frechet Inception Distance judge images through a classifier trained on
real data: its class probabilities :math:`p(y \mid x)` say whether a sample looks like *some* digit
and whether all digits appear; its penultimate activations are the feature space in which real and
generated sets are compared (see the quality section of :mod:`tinygan.metrics`). ImageNet's
Inception network is the wrong eye for 28x28 digits, so tinygan trains a LeNet-style network on the
dataset itself::

    Conv 1->16 5x5 same, ReLU, MaxPool 2      28x28 -> 14x14
    Conv 16->32 5x5 same, ReLU, MaxPool 2     14x14 -> 7x7
    Flatten, Dense 1568->128, ReLU            the 128 features
    Dense 128->10                             the logits

trained with :func:`tinygan.losses.softmax_cross_entropy` and Adam.

Which images it learns from
---------------------------
:func:`classifier_data` takes the dataset's train split and holds out the test split. Where only one
split is on disk (the MNIST test split alone, say) and nothing may be downloaded, that split is cut
deterministically into 80% for training and 20% held out (8,000 / 2,000 for a test split), and every
report says so. The held-out images are the real images the metrics are calibrated on: the classifier
has never seen them, so its confidence on them is the confidence real data earns.

Caching
-------
Training takes minutes, so :func:`load_classifier` trains once and caches the weights in an ``.npz``
beside the data, or in ``~/.cache/tinygan/classifiers/`` when the data folder is read-only (or is the
MNIST copy bundled inside the package). The file name holds the MD5 of the image and label bytes and
a digest of the training settings: changed data or changed settings give another name, hence a fresh
training run, never a stale classifier.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import stat
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from tinygan.atomic import write_atomically
from tinygan.backend import device_of, get_array_module, to_device, to_numpy
from tinygan.data import (
    BatchIterator,
    bundled_mnist_dir,
    find_dataset_files,
    images_to_float,
    load_mnist,
)
from tinygan.init import he_uniform
from tinygan.losses import log_softmax, softmax_cross_entropy
from tinygan.nn import Conv2D, Dense, Flatten, Layer, MaxPool2D, ReLU, Sequential
from tinygan.optim import Adam

NUM_CLASSES = 10
IMAGE_SHAPE = (1, 28, 28)

HELDOUT_FRACTION = 0.2
"""Share of a lone split held out when the other split is missing (2,000 of MNIST's 10,000 test images)."""

SPLIT_SEED = 20240229
"""Seed of the permutation that cuts a lone split into training and held-out parts (fixed: the cut
must be the same in every run, or the cached classifier would have seen the held-out images)."""

_DISPLAY = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}


class Classifier(Sequential):
    """A feature extractor followed by a linear head: ``logits = head(features(x))``.

    Parameters
    ----------
    features : Layer
        Maps images ``(N, 1, 28, 28)`` to the penultimate activations ``(N, F)`` (the space of the
        Frechet distance and of the precision / recall manifolds).
    head : Layer
        Maps ``(N, F)`` to class logits ``(N, K)``.
    info : dict, optional
        What it was trained on and how well it does (filled by :func:`load_classifier`).

    Notes
    -----
    It is a two-child :class:`~tinygan.nn.Sequential`, so the forward pass, the backward pass, the
    optimizers, ``state_dict`` and ``to(device)`` all work unchanged; :meth:`embed` adds batched
    inference that returns both the features and the class probabilities in one pass.
    """

    def __init__(self, features: Layer, head: Layer, info: dict[str, Any] | None = None) -> None:
        super().__init__(features, head)
        self.info: dict[str, Any] = dict(info or {})

    @property
    def features(self) -> Layer:
        return self.layers[0]

    @property
    def head(self) -> Layer:
        return self.layers[1]

    @property
    def device(self) -> str:
        """``"cpu"`` or ``"gpu"``: where the parameters live (inputs are moved there)."""
        first = next((p for layer in self.walk() for p in layer.params.values()), None)
        return "cpu" if first is None else device_of(first)

    def embed(self, images: Any, batch_size: int = 500) -> tuple[np.ndarray, np.ndarray]:
        """Penultimate features and class probabilities of ``images``, in evaluation mode.

        Parameters
        ----------
        images : array, shape (N, 28, 28), (N, 784) or (N, 1, 28, 28)
            uint8 pixels, or floats in [0, 1] (see :func:`as_classifier_input`).
        batch_size : int
            Images per forward pass (bounds the memory of the convolutions' patch matrices).

        Returns
        -------
        features : numpy.ndarray, shape (N, F), float64
        probabilities : numpy.ndarray, shape (N, K), float64
            Softmax of the logits; each row sums to 1.
        """
        x = as_classifier_input(images)
        if len(x) == 0:
            raise ValueError("embed needs at least one image")
        device, features, probabilities = self.device, [], []
        for start in range(0, len(x), batch_size):
            f = self.features(to_device(x[start : start + batch_size], device))
            # the softmax in float64, so that rows sum to 1 to double precision
            logits = self.head(f).astype(get_array_module(f).float64)
            features.append(to_numpy(f).astype(np.float64))
            probabilities.append(np.exp(to_numpy(log_softmax(logits))))
        return np.concatenate(features), np.concatenate(probabilities)

    def predict(self, images: Any, batch_size: int = 500) -> np.ndarray:
        """Most probable class of each image: int64 array of shape (N,)."""
        return self.embed(images, batch_size)[1].argmax(axis=1)

    def accuracy(self, images: Any, labels: Any, batch_size: int = 500) -> float:
        """Fraction of ``images`` whose predicted class equals ``labels``."""
        labels = np.asarray(labels)
        return float(np.mean(self.predict(images, batch_size) == labels)) if len(labels) else 0.0


def as_classifier_input(images: Any) -> Any:
    """Images as the float32 ``(N, 1, 28, 28)`` batch a classifier reads, values in [0, 1].

    uint8 pixels are scaled by 1/255; floating images are taken to be in [0, 1] already (generated
    images mapped from the generator's range, as :func:`tinygan.sampling.generate` returns them).
    Flat ``(N, 784)`` rows and ``(N, 28, 28)`` stacks are reshaped. The array stays on its device.
    """
    xp = get_array_module(images)
    images = xp.asarray(images)
    if images.dtype == np.uint8:
        images = images_to_float(images)
    elif not xp.issubdtype(images.dtype, xp.floating):
        raise TypeError(f"images must be uint8 or floating, got {images.dtype}")
    if images.ndim < 2 or math.prod(images.shape[1:]) != math.prod(IMAGE_SHAPE):
        raise ValueError(
            f"expected images of shape (N, 28, 28), (N, 784) or (N, 1, 28, 28), got {images.shape}"
        )
    return images.reshape(len(images), *IMAGE_SHAPE).astype(np.float32, copy=False)


def build_classifier(
    rng: np.random.Generator,
    channels: tuple[int, int] = (16, 32),
    hidden: int = 128,
    num_classes: int = NUM_CLASSES,
    dtype: Any = np.float32,
) -> Classifier:
    """The LeNet-style network of the module docstring, with He-uniform weights (ReLU layers).

    Parameters
    ----------
    rng : numpy.random.Generator
        Draws the initial weights.
    channels : (int, int)
        Output channels of the two convolutions.
    hidden : int
        Size of the feature layer.
    num_classes : int
    dtype : dtype
    """
    c1, c2 = channels
    weights = he_uniform()
    features = Sequential(
        Conv2D(1, c1, 5, padding="same", weight_init=weights, rng=rng, dtype=dtype),
        ReLU(),
        MaxPool2D(2),
        Conv2D(c1, c2, 5, padding="same", weight_init=weights, rng=rng, dtype=dtype),
        ReLU(),
        MaxPool2D(2),
        Flatten(),
        Dense(c2 * 7 * 7, hidden, weight_init=weights, rng=rng, dtype=dtype),
        ReLU(),
    )
    return Classifier(features, Dense(hidden, num_classes, rng=rng, dtype=dtype))


def fit_classifier(
    classifier: Classifier,
    images: np.ndarray,
    labels: np.ndarray,
    steps: int,
    rng: np.random.Generator,
    batch_size: int = 128,
    lr: float = 1e-3,
    progress: bool = True,
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
        logits, cache = classifier.forward(to_device(x[index], device), training=True)
        loss, dlogits = softmax_cross_entropy(logits, to_device(y[index], device))
        optimizer.zero_grad()
        classifier.backward(dlogits, cache)
        optimizer.step()
        recent.append(loss)
    return float(np.mean([float(value) for value in recent])) if recent else math.nan


@dataclass(frozen=True)
class ClassifierSettings:
    """Architecture and training budget of the cached classifier (part of its cache key).

    1,500 steps of 128 images is 24 epochs of an 8,000-image split or 3.2 epochs of MNIST's 60,000
    training images: a few minutes on two CPU cores either way.
    """

    channels: tuple[int, int] = (16, 32)
    hidden: int = 128
    steps: int = 1500
    batch_size: int = 128
    lr: float = 2e-3
    seed: int = 0

    def digest(self) -> str:
        """A short hash of the settings, for the cache file name."""
        return hashlib.md5(json.dumps(asdict(self)).encode(), usedforsecurity=False).hexdigest()[:8]


@dataclass
class ClassifierData:
    """Labelled images for training a classifier and held-out images for checking and calibrating it.

    Attributes
    ----------
    dataset : str
        ``"mnist"`` or ``"fashion-mnist"``.
    train_images, heldout_images : numpy.ndarray, uint8, shape (N, 28, 28)
    train_labels, heldout_labels : numpy.ndarray, uint8, shape (N,)
    train_split, heldout_split : str
        The splits (``"train"`` or ``"test"``) the two parts come from; the same split when a lone
        split was cut in two.
    description : str
        Where both parts come from, e.g. "MNIST test split only: 8000 training / 2000 held out".
    folder : pathlib.Path
        The folder holding the dataset's files (where the cache goes if it is writable).
    checksum : str
        MD5 of the image and label bytes of both parts.
    """

    dataset: str
    train_images: np.ndarray
    train_labels: np.ndarray
    heldout_images: np.ndarray
    heldout_labels: np.ndarray
    train_split: str
    heldout_split: str
    description: str
    folder: Path
    checksum: str = field(init=False)

    def __post_init__(self) -> None:
        digest = hashlib.md5(usedforsecurity=False)
        for array in (
            self.train_images,
            self.train_labels,
            self.heldout_images,
            self.heldout_labels,
        ):
            digest.update(np.ascontiguousarray(array).tobytes())
        self.checksum = digest.hexdigest()


def classifier_data(
    dataset: str = "mnist", data_dir: str | os.PathLike | None = None, download: bool = False
) -> ClassifierData:
    """Training and held-out images for the quality classifier of ``dataset``.

    Parameters
    ----------
    dataset : {"mnist", "fashion-mnist"}
    data_dir : path-like, optional
        Where the IDX files are (see :func:`tinygan.data.load_mnist`).
    download : bool
        Fetch missing splits. With False (the default) a lone split on disk is cut
        deterministically into training and held-out parts instead.

    Returns
    -------
    ClassifierData
        The train split for training and the test split held out when both are available;
        otherwise the lone split cut 80 / 20 by a fixed permutation.

    Raises
    ------
    tinygan.data.DatasetNotFoundError
        Neither split is on disk and ``download`` is False (or the download failed).
    """
    on_disk = {split: find_dataset_files(split, data_dir, dataset) for split in ("train", "test")}
    present = [split for split, files in on_disk.items() if files is not None]
    name = _DISPLAY[dataset]
    if len(present) == 1 and not download:
        (split,) = present
        images, labels = load_mnist(split, data_dir, dataset, download=False)
        order = np.random.default_rng(SPLIT_SEED).permutation(len(images))
        cut = len(images) - round(HELDOUT_FRACTION * len(images))
        train, heldout = order[:cut], order[cut:]
        description = (
            f"{name} {split} split only: {len(train)} images for training, {len(heldout)} held out "
            f"(fixed random cut, seed {SPLIT_SEED})"
        )
        return ClassifierData(
            dataset,
            images[train],
            labels[train],
            images[heldout],
            labels[heldout],
            split,
            split,
            description,
            on_disk[split][0].parent,
        )
    train_images, train_labels = load_mnist("train", data_dir, dataset, download=download)
    heldout_images, heldout_labels = load_mnist("test", data_dir, dataset, download=download)
    description = (
        f"{name} train split ({len(train_images)} images) for training, "
        f"test split ({len(heldout_images)} images) held out"
    )
    folder = find_dataset_files("train", data_dir, dataset)[0].parent
    return ClassifierData(
        dataset,
        train_images,
        train_labels,
        heldout_images,
        heldout_labels,
        "train",
        "test",
        description,
        folder,
    )


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/tinygan/classifiers`` or ``~/.cache/tinygan/classifiers``."""
    cache = os.environ.get("XDG_CACHE_HOME")
    return (
        (Path(cache).expanduser() if cache else Path.home() / ".cache") / "tinygan" / "classifiers"
    )


def folder_is_writable(folder: Path) -> bool:
    """Whether new files may be put in ``folder``.

    A folder whose permission bits allow nobody to write counts as read-only even for root (who
    could write anyway): a dataset shared read-only is never modified behind its owner's back.
    """
    try:
        mode = folder.stat().st_mode
    except OSError:
        return False
    return bool(mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)) and os.access(folder, os.W_OK)


def cache_path(
    data: ClassifierData, settings: ClassifierSettings, cache_dir: str | os.PathLike | None = None
) -> Path:
    """Where the classifier for ``data`` and ``settings`` is cached.

    ``cache_dir`` if given; else the data folder when writable; else :func:`user_cache_dir`. The
    MNIST copy inside the package (:func:`tinygan.data.bundled_mnist_dir`) counts as read-only: an
    installed package is no place for caches. The name is
    ``classifier_<dataset>_<data md5[:12]>_<settings digest>.npz``.
    """
    if cache_dir is not None:
        folder = Path(cache_dir)
    elif folder_is_writable(data.folder) and data.folder.resolve() != bundled_mnist_dir():
        folder = data.folder
    else:
        folder = user_cache_dir()
    return folder / f"classifier_{data.dataset}_{data.checksum[:12]}_{settings.digest()}.npz"


def load_classifier(
    data: ClassifierData,
    settings: ClassifierSettings | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    verbose: bool = True,
) -> Classifier:
    """The classifier for ``data``: read from the cache, or trained (and cached) on first use.

    Parameters
    ----------
    data : ClassifierData
        From :func:`classifier_data`.
    settings : ClassifierSettings, optional
        Architecture and budget; the defaults unless given.
    cache_dir : path-like, optional
        Overrides the cache folder (see :func:`cache_path`).
    progress : bool
        Progress bar while training.
    verbose : bool
        Print where the classifier came from and its held-out accuracy.

    Returns
    -------
    Classifier
        In evaluation use on the CPU. ``classifier.info`` holds ``dataset``, ``description``,
        ``checksum``, ``settings``, ``train_size``, ``heldout_size``, ``heldout_accuracy``,
        ``train_seconds`` and ``path`` (the cache file).
    """
    settings = settings or ClassifierSettings()
    path = cache_path(data, settings, cache_dir)
    classifier = build_classifier(
        np.random.default_rng(settings.seed), settings.channels, settings.hidden
    )
    info = _read_cached(path, classifier, data, settings)
    if info is None:
        if verbose:
            print(f"tinygan: training the {_DISPLAY[data.dataset]} classifier ({data.description})")
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
        )
        info = {
            "dataset": data.dataset,
            "description": data.description,
            "checksum": data.checksum,
            "settings": asdict(settings),
            "train_size": len(data.train_images),
            "heldout_size": len(data.heldout_images),
            "heldout_accuracy": classifier.accuracy(data.heldout_images, data.heldout_labels),
            "train_seconds": round(time.perf_counter() - start, 1),
        }
        state = {f"param.{k}": v for k, v in classifier.state_dict().items()}
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, lambda file: np.savez(file, info=json.dumps(info), **state))
    classifier.info = {**info, "path": str(path)}
    if verbose:
        print(
            f"tinygan: classifier {path}: {100 * info['heldout_accuracy']:.2f}% accuracy on "
            f"{info['heldout_size']} held-out images ({info['description']})"
        )
    return classifier


def _read_cached(
    path: Path, classifier: Classifier, data: ClassifierData, settings: ClassifierSettings
) -> dict[str, Any] | None:
    """Load a cached classifier into ``classifier``; None when absent, unreadable or not a match."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            info = json.loads(str(archive["info"]))
            state = {
                k[len("param.") :]: archive[k] for k in archive.files if k.startswith("param.")
            }
        # the name is only a prefix of the checksum: confirm the full key before trusting the file
        settings_match = info.get("settings") == json.loads(json.dumps(asdict(settings)))
        if info.get("checksum") != data.checksum or not settings_match:
            return None
        classifier.load_state_dict(state)
    except (OSError, ValueError, KeyError, EOFError):
        return None
    return info
