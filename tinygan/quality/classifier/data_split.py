"""Which real images the classifier learns from, and which it never sees.

:func:`classifier_data` takes the dataset's train split for training and holds out the test split.
Where only one split is on disk (the MNIST test split alone, say) and nothing may be downloaded,
that split is cut deterministically into 80% for training and 20% held out (8,000 / 2,000 for a test
split), and every report says so. The held-out images are the real images the metrics are calibrated
on: the classifier has never seen them, so its confidence on them is the confidence real data earns.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinygan.data import find_dataset_files, load_mnist
from tinygan.data.mnist import DISPLAY_NAMES

HELDOUT_FRACTION = 0.2
"""Share of a lone split held out when the other split is missing (2,000 of MNIST's 10,000 test
images)."""

SPLIT_SEED = 20240229
"""Seed of the permutation that cuts a lone split into training and held-out parts (fixed: the cut
must be the same in every run, or the cached classifier would have seen the held-out images)."""


@dataclass
class ClassifierData:
    """Labelled images to train a classifier on, and held-out images to check and calibrate it.

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
    if len(present) == 1 and not download:
        (split,) = present
        return cut_lone_split(dataset, split, data_dir, on_disk[split][0].parent)
    train_images, train_labels = load_mnist("train", data_dir, dataset, download=download)
    heldout_images, heldout_labels = load_mnist("test", data_dir, dataset, download=download)
    description = (
        f"{DISPLAY_NAMES[dataset]} train split ({len(train_images)} images) for training, "
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


def cut_lone_split(
    dataset: str, split: str, data_dir: str | os.PathLike | None, folder: Path
) -> ClassifierData:
    """The only split on disk, cut 80 / 20 by a fixed permutation into training and held-out parts."""
    images, labels = load_mnist(split, data_dir, dataset, download=False)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(images))
    cut = len(images) - round(HELDOUT_FRACTION * len(images))
    train, heldout = order[:cut], order[cut:]
    description = (
        f"{DISPLAY_NAMES[dataset]} {split} split only: {len(train)} images for training, "
        f"{len(heldout)} held out (fixed random cut, seed {SPLIT_SEED})"
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
        folder,
    )
