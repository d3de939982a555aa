"""Datasets as NumPy arrays: MNIST / Fashion-MNIST loading, 1-D Gaussian targets, shuffled minibatches."""

from tinygan.data.batches import BatchIterator
from tinygan.data.gaussian import GaussianMixture
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

__all__ = [
    "DATASETS",
    "PYTHON_OPTIONS",
    "BatchIterator",
    "CorruptDatasetError",
    "DatasetNotFoundError",
    "GaussianMixture",
    "OptionNames",
    "bundled_mnist_dir",
    "default_data_dir",
    "find_dataset_files",
    "images_to_float",
    "load_mnist",
    "load_mnist_or_bundled",
    "read_idx",
    "search_folders",
]
