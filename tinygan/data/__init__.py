"""Datasets as NumPy arrays: MNIST / Fashion-MNIST loading, 1-D Gaussian targets, the 2-D ring and grid,
Stacked MNIST, shuffled minibatches.

MNIST loading is three files, one idea each: ``idx.py`` (the file format), ``download.py``
(mirrors, checksums, atomic writes) and ``mnist.py`` (the splits, where they are looked for, the
bundled fallback)."""

from tinygan.data.batches import BatchIterator, LabelledBatches
from tinygan.data.gaussian import GaussianMixture
from tinygan.data.mixtures import (
    MIXTURES,
    POINTS_PER_RUN,
    FreshBatches,
    GaussianMixture2D,
    grid_mixture,
    mixture_batches,
    ring_mixture,
)
from tinygan.data.mnist import (
    DATASETS,
    PYTHON_OPTIONS,
    CorruptDatasetError,
    DatasetNotFoundError,
    OptionNames,
    bundled_mnist_dir,
    default_data_dir,
    find_dataset_files,
    images_to_float,
    load_mnist,
    load_mnist_or_bundled,
    read_idx,
    search_folders,
)
from tinygan.data.stacked_mnist import (
    STACKED_MODES,
    load_stacked_mnist,
    stack_digits,
    stacked_labels,
)

__all__ = [
    "DATASETS",
    "MIXTURES",
    "POINTS_PER_RUN",
    "PYTHON_OPTIONS",
    "STACKED_MODES",
    "BatchIterator",
    "CorruptDatasetError",
    "DatasetNotFoundError",
    "FreshBatches",
    "GaussianMixture",
    "GaussianMixture2D",
    "LabelledBatches",
    "OptionNames",
    "bundled_mnist_dir",
    "default_data_dir",
    "find_dataset_files",
    "grid_mixture",
    "images_to_float",
    "load_mnist",
    "load_mnist_or_bundled",
    "load_stacked_mnist",
    "mixture_batches",
    "read_idx",
    "ring_mixture",
    "search_folders",
    "stack_digits",
    "stacked_labels",
]
