"""Datasets as NumPy arrays: MNIST / Fashion-MNIST loading, 1-D Gaussian targets, shuffled minibatches."""

from tinygan.data.batches import BatchIterator
from tinygan.data.gaussian import GaussianMixture
from tinygan.data.mnist import (
    DATASETS,
    CorruptDatasetError,
    DatasetNotFoundError,
    default_data_dir,
    find_dataset_files,
    images_to_float,
    load_mnist,
    read_idx,
    search_folders,
)

__all__ = [
    "DATASETS",
    "BatchIterator",
    "CorruptDatasetError",
    "DatasetNotFoundError",
    "GaussianMixture",
    "default_data_dir",
    "find_dataset_files",
    "images_to_float",
    "load_mnist",
    "read_idx",
    "search_folders",
]
