"""MNIST and Fashion-MNIST: the splits, where their files are looked for, the bundled fallback.

Both datasets ship as four files with the same names (Fashion-MNIST is a drop-in replacement)::

    train-images-idx3-ubyte   60000 images, 28 x 28, uint8
    train-labels-idx1-ubyte   60000 labels, uint8 in 0..9
    t10k-images-idx3-ubyte    10000 images (the "test" split)
    t10k-labels-idx1-ubyte    10000 labels

usually gzip-compressed with a ``.gz`` suffix; either form is accepted. Their format is IDX
(:mod:`tinygan.data.idx`); missing files are fetched from the public mirrors
(:mod:`tinygan.data.download`).

Where the files are looked for
------------------------------
``data_dir`` (default :func:`default_data_dir`: ``$TINYGAN_DATA``, else ``$XDG_CACHE_HOME/tinygan``,
else ``~/.cache/tinygan``) itself, then ``data_dir/<dataset>/``. A download goes to
``data_dir/<dataset>/``, so MNIST and Fashion-MNIST never overwrite each other. A lookup or download
that fails leaves no new folder behind.

The bundled test split
----------------------
The MNIST test split (10,000 digits, 1.6 MB) ships inside the package, in :func:`bundled_mnist_dir`.
:func:`load_mnist` never uses it on its own; :func:`load_mnist_or_bundled` falls back to it when the
requested MNIST split can be neither found nor downloaded, and says so, so that a first training run
offline still sees real digits.

Error messages
--------------
:class:`DatasetNotFoundError` keeps the facts (folders searched, files present, download failures)
and words its advice through an :class:`OptionNames`: ``str(error)`` names :func:`load_mnist`'s
keyword arguments (``data_dir=...``, ``download=True``), while a program with options of its own
(a command line) prints ``error.describe(its_option_names)``: the same facts, advice in its terms.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# The IDX reader's and the downloads' public names are importable from this module too (__all__);
# CHECKSUMS, DOWNLOAD_TIMEOUT, download_file and IDX_DTYPES are imported only for that.
from tinygan.data.download import (
    CHECKSUMS,
    DOWNLOAD_TIMEOUT,
    MIRRORS,
    DownloadError,
    download_file,
    download_files,
)
from tinygan.data.idx import IDX_DTYPES, CorruptDatasetError, read_idx

__all__ = [
    "CHECKSUMS",
    "DATASETS",
    "DISPLAY_NAMES",
    "DOWNLOAD_TIMEOUT",
    "IDX_DTYPES",
    "IMAGE_SHAPE",
    "MIRRORS",
    "NUM_CLASSES",
    "PYTHON_OPTIONS",
    "SPLITS",
    "CorruptDatasetError",
    "DatasetNotFoundError",
    "OptionNames",
    "bundled_mnist_dir",
    "default_data_dir",
    "download_file",
    "find_dataset_files",
    "images_to_float",
    "load_mnist",
    "load_mnist_or_bundled",
    "read_idx",
    "search_folders",
    "user_cache_root",
]

DATASETS = ("mnist", "fashion-mnist")

SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10

DISPLAY_NAMES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}
"""How messages and reports spell each of :data:`DATASETS`."""


@dataclass(frozen=True)
class OptionNames:
    """How a message names the options that decide where data comes from.

    The defaults are :func:`load_mnist`'s keywords, the advice a Python caller can act on. A
    program with options of its own (a command line) builds an instance worded in them, so that
    its users read advice they can type.

    Attributes
    ----------
    data_dir : str
        How to name another data folder: ``"data_dir=..."``.
    split : str
        How to choose a split, ``{}`` standing for its name: ``'split="{}"'``.
    download_off : str
        What kept downloads off: ``"download=False"``.
    download_on : str
        What to do to allow them: ``"pass download=True"``.
    """

    data_dir: str = "data_dir=..."
    split: str = 'split="{}"'
    download_off: str = "download=False"
    download_on: str = "pass download=True"


PYTHON_OPTIONS = OptionNames()
"""The keyword arguments of :func:`load_mnist`: what ``str(DatasetNotFoundError)`` advises."""


class DatasetNotFoundError(FileNotFoundError):
    """The dataset's files are neither on disk nor downloadable; the message says where to put them.

    Parameters
    ----------
    split, data_dir, dataset
        As given to :func:`load_mnist`; the folders are searched again to record what they hold.
    failures : sequence of (url, reason), optional
        The failed downloads; None when nothing was downloaded because downloads were off.

    Attributes
    ----------
    split, dataset : str
    files : (str, str)
        Base names of the split's image and label files (each may also end in ``.gz``).
    folders : list of pathlib.Path
        The folders searched, in order (see :func:`search_folders`).
    partial : dict
        Folder -> (name of the file it holds, base name of the one it lacks), for the folders
        holding one of the split's two files but not the other.
    other_split : (str, pathlib.Path) or None
        The other split and a folder holding it completely, if any.
    failures : list of (url, reason), or None
    """

    def __init__(
        self,
        split: str,
        data_dir: str | os.PathLike | None,
        dataset: str,
        failures: Sequence[tuple[str, str]] | None = None,
    ) -> None:
        self.split, self.dataset, self.data_dir = split, dataset, data_dir
        self.files = _split_files(split, dataset)
        self.folders = search_folders(data_dir, dataset)
        self.partial: dict[Path, tuple[str, str]] = {}
        for folder in self.folders:
            paths = [_existing(folder, name) for name in self.files]
            if paths.count(None) == 1:
                (present,) = (path.name for path in paths if path is not None)
                (missing,) = (
                    name for name, path in zip(self.files, paths, strict=True) if path is None
                )
                self.partial[folder] = (present, missing)
        other = next(name for name in SPLITS if name != split)
        found = find_dataset_files(other, data_dir, dataset)
        self.other_split = None if found is None else (other, found[0].parent)
        self.failures = None if failures is None else list(failures)
        super().__init__(self.describe())

    def __reduce__(self) -> tuple:
        # The default would rebuild the error from its message alone, which is not a valid call.
        return type(self), (self.split, self.data_dir, self.dataset, self.failures)

    def describe(self, option_names: OptionNames = PYTHON_OPTIONS) -> str:
        """The message, its advice worded with ``option_names`` (a command passes its flags).

        Returns
        -------
        str
            Several lines: what is missing, the folders searched, the files to put there and where
            they are published, and what was or was not downloaded.
        """
        display = DISPLAY_NAMES[self.dataset]
        if self.partial:
            folder, (present, missing) = next(iter(self.partial.items()))
            headline = (
                f"{display} {self.split} split incomplete: {folder} holds {present} "
                f"but not {missing} (nor {missing}.gz)."
            )
        else:
            headline = f"{display} {self.split} split not found."
        lines = [f"{headline} Searched:"]
        for folder in self.folders:
            held = f"  (holds only {self.partial[folder][0]})" if folder in self.partial else ""
            lines.append(f"  {folder}{held}")
        if len(self.folders) == 1:
            lines.append(f"  (not {self.folders[0].parent} itself: its name is another dataset's)")
        lines += [
            "Put these files in one of those folders (as published, or uncompressed without .gz):",
            *(f"  {name}.gz" for name in self.files),
            f"They are published at {' or '.join(MIRRORS[self.dataset])}.",
            f"To read them from another folder, pass {option_names.data_dir} or set $TINYGAN_DATA.",
        ]
        if self.other_split is not None:
            other, folder = self.other_split
            lines.append(
                f"The {other} split is in {folder}: to use it instead, pass "
                f"{option_names.split.format(other)}."
            )
        if self.failures is None:
            lines.append(
                f"Nothing was downloaded ({option_names.download_off}): {option_names.download_on} to fetch them."
            )
        else:
            lines.append("The download failed:")
            lines += [f"  {url}: {reason}" for url, reason in self.failures]
        return "\n".join(lines)


def default_data_dir() -> Path:
    """The folder datasets are read from and downloaded to when no ``data_dir`` is given.

    Returns
    -------
    pathlib.Path
        ``$TINYGAN_DATA`` if set, else ``$XDG_CACHE_HOME/tinygan`` if ``XDG_CACHE_HOME`` is set,
        else ``~/.cache/tinygan``. The folder need not exist.
    """
    if os.environ.get("TINYGAN_DATA"):
        return Path(os.environ["TINYGAN_DATA"]).expanduser()
    return user_cache_root()


def user_cache_root() -> Path:
    """tinygan's folder in the user's cache: ``$XDG_CACHE_HOME/tinygan``, else ``~/.cache/tinygan``.

    The default home of downloaded datasets (:func:`default_data_dir`) and of anything else worth
    keeping between runs that has no better place (trained classifiers, for instance). The folder
    need not exist.
    """
    cache = os.environ.get("XDG_CACHE_HOME")
    return (Path(cache).expanduser() if cache else Path.home() / ".cache") / "tinygan"


def bundled_mnist_dir() -> Path:
    """The folder of the MNIST test split that ships inside the package.

    Returns
    -------
    pathlib.Path
        Holds ``t10k-images-idx3-ubyte.gz`` and ``t10k-labels-idx1-ubyte.gz`` (10,000 digits, the
        published files unchanged) and ``README.txt`` (their authors and license). Part of the
        installed package: read from it, never write to it.
    """
    return Path(__file__).resolve().parent / "bundled"


def find_dataset_files(
    split: str, data_dir: str | os.PathLike | None = None, dataset: str = "mnist"
) -> tuple[Path, Path] | None:
    """Locate the image and label files of one split on disk.

    Parameters
    ----------
    split : {"train", "test"}
    data_dir : str or os.PathLike, optional
        Defaults to :func:`default_data_dir`.
    dataset : {"mnist", "fashion-mnist"}

    Returns
    -------
    (images_path, labels_path) or None
        The first folder of :func:`search_folders` holding both files (each either raw or ``.gz``;
        the raw one wins when both are there), or None when no folder does.
    """
    image_name, label_name = _split_files(split, dataset)
    for folder in search_folders(data_dir, dataset):
        images, labels = _existing(folder, image_name), _existing(folder, label_name)
        if images is not None and labels is not None:
            return images, labels
    return None


def search_folders(data_dir: str | os.PathLike | None = None, dataset: str = "mnist") -> list[Path]:
    """The folders :func:`find_dataset_files` looks in, in order: ``data_dir``, ``data_dir/<dataset>``.

    Both datasets use the same file names, so nothing in a file tells MNIST from Fashion-MNIST:
    a ``data_dir`` named after the *other* dataset (``.../mnist`` when asking for
    ``"fashion-mnist"``) is not searched itself, only its ``<dataset>`` subfolder.
    """
    root = default_data_dir() if data_dir is None else Path(data_dir).expanduser()
    others = set(DATASETS) - {dataset}
    return ([] if root.name in others else [root]) + [root / dataset]


def load_mnist(
    split: str = "train",
    data_dir: str | os.PathLike | None = None,
    dataset: str = "mnist",
    download: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Load one split of MNIST or Fashion-MNIST, downloading it first if it is not on disk.

    Parameters
    ----------
    split : {"train", "test"}
        60000 training or 10000 test examples.
    data_dir : str or os.PathLike, optional
        Where to look (see :func:`search_folders`) and download to; default :func:`default_data_dir`.
    dataset : {"mnist", "fashion-mnist"}
    download : bool
        Fetch missing files into ``data_dir/<dataset>/`` from the public mirrors, checking their MD5.
        With False the network is never touched.

    Returns
    -------
    images : numpy.ndarray
        uint8 of shape (N, 28, 28), pixel values 0 (background) to 255.
    labels : numpy.ndarray
        uint8 of shape (N,), class indices 0..9.

    Raises
    ------
    ValueError
        Unknown ``split`` or ``dataset``.
    DatasetNotFoundError
        The files are not on disk and could not be downloaded (or ``download`` is False); the
        message lists the folders searched and the files to put there, and names the missing
        file of a folder holding only one of the two.
    CorruptDatasetError
        A file is malformed, or images and labels do not match (shape, dtype, count, range).
    """
    files = find_dataset_files(split, data_dir, dataset)
    if files is None:
        if not download:
            raise DatasetNotFoundError(split, data_dir, dataset)
        files = _download_split(split, data_dir, dataset)
    images_path, labels_path = files
    images, labels = read_idx(images_path), read_idx(labels_path)
    _check_split(images_path, images, labels_path, labels)
    return images, labels


def load_mnist_or_bundled(
    split: str = "train",
    data_dir: str | os.PathLike | None = None,
    dataset: str = "mnist",
    download: bool = True,
    allow_bundled: bool = True,
    option_names: OptionNames = PYTHON_OPTIONS,
) -> tuple[np.ndarray, np.ndarray, str | None]:
    """:func:`load_mnist` for training data: the bundled MNIST test split when nothing else is there.

    A first run on 10,000 real digits teaches more than an error does, so where the requested
    MNIST split can be neither found nor downloaded, the test split shipped with tinygan
    (:func:`bundled_mnist_dir`) stands in, and the returned notice says so.

    Parameters
    ----------
    split, data_dir, dataset, download
        As for :func:`load_mnist`.
    allow_bundled : bool
        Whether the bundled split may stand in. A caller that was told where the data is (a data
        folder named by the user) passes False: a wrong folder must be an error, not a quiet
        substitute.
    option_names : OptionNames
        How the notice names the options (a command passes its flags).

    Returns
    -------
    images : numpy.ndarray
        uint8 of shape (N, 28, 28).
    labels : numpy.ndarray
        uint8 of shape (N,).
    notice : str or None
        None when the requested split was loaded. Otherwise one line, without a newline, to
        print: the split is missing, the bundled 10,000 test digits are used instead, and how to
        get the requested split.

    Raises
    ------
    DatasetNotFoundError
        As :func:`load_mnist` does, when ``allow_bundled`` is False or ``dataset`` is not
        ``"mnist"`` (Fashion-MNIST has no bundled copy).
    CorruptDatasetError, ValueError
        As :func:`load_mnist` raises them: damaged files on disk are reported, never replaced.
    """
    try:
        images, labels = load_mnist(split, data_dir, dataset, download)
    except DatasetNotFoundError as error:
        bundled = bundled_mnist_dir()
        # A package installed without its data files behaves as if there were none to fall to.
        if not allow_bundled or dataset != "mnist" or find_dataset_files("test", bundled) is None:
            raise
        images, labels = load_mnist("test", bundled, download=False)
        return images, labels, _bundled_notice(error, len(images), option_names)
    return images, labels, None


def images_to_float(
    images: np.ndarray, value_range: tuple[float, float] = (0.0, 1.0), dtype=np.float32
) -> np.ndarray:
    r"""Scale uint8 pixels to floats in ``value_range``.

    Parameters
    ----------
    images : numpy.ndarray or cupy.ndarray
        uint8, any shape.
    value_range : (lo, hi)
        Where 0 and 255 land: (0, 1) for a sigmoid generator, (-1, 1) for tanh.
    dtype : dtype
        Floating output type.

    Returns
    -------
    array
        Same shape and array module as ``images``.

    Notes
    -----
    :math:`x = lo + (hi - lo) \cdot p / 255`. For (-1, 1) this is the familiar
    :math:`(p - 127.5) / 127.5`. Pixel 0 lands exactly on ``lo`` and 255 on ``hi`` (for
    ranges like (0, 1) and (-1, 1)).

    Raises
    ------
    TypeError
        ``images`` not uint8, or ``dtype`` not a floating type.
    ValueError
        ``value_range`` with ``lo >= hi``.
    """
    if images.dtype != np.uint8:
        raise TypeError(f"images_to_float expects uint8 pixels, got {images.dtype}")
    if not np.issubdtype(dtype, np.floating):
        raise TypeError(f"images_to_float produces floats, got dtype={np.dtype(dtype)}")
    lo, hi = (float(v) for v in value_range)
    if not lo < hi:
        raise ValueError(f"value_range must be (lo, hi) with lo < hi, got {value_range}")
    out = images.astype(dtype)
    out /= 255
    out *= hi - lo
    out += lo
    return out


def _split_files(split: str, dataset: str) -> tuple[str, str]:
    """The (images, labels) base names of ``split``, after validating both arguments."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {tuple(SPLITS)}, got {split!r}")
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    return SPLITS[split]


def _check_split(
    images_path: Path, images: np.ndarray, labels_path: Path, labels: np.ndarray
) -> None:
    """Raise :class:`CorruptDatasetError` unless the two files hold a split: shapes, dtypes, range."""
    if images.dtype != np.uint8 or images.shape[1:] != IMAGE_SHAPE:
        raise CorruptDatasetError(
            f"{images_path}: expected uint8 images of shape (N, 28, 28), "
            f"found {images.dtype} of shape {images.shape}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise CorruptDatasetError(
            f"{labels_path}: expected uint8 labels of shape (N,), "
            f"found {labels.dtype} of shape {labels.shape}"
        )
    if len(images) != len(labels):
        raise CorruptDatasetError(
            f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels"
        )
    if labels.size and labels.max() >= NUM_CLASSES:
        raise CorruptDatasetError(
            f"{labels_path}: label {labels.max()} out of range 0..{NUM_CLASSES - 1}"
        )


def _existing(folder: Path, name: str) -> Path | None:
    """``folder/name`` or ``folder/name.gz``, whichever is a file (raw first), else None."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _bundled_notice(error: DatasetNotFoundError, count: int, option_names: OptionNames) -> str:
    """The one line saying that the bundled test split stands in for the split ``error`` missed."""
    if error.partial:
        folder, (_, missing) = next(iter(error.partial.items()))
        absent = f"MNIST {error.split} split incomplete (no {missing} in {folder})"
    else:
        absent = f"MNIST {error.split} split not found in {error.folders[0]}"
    if error.failures is None:
        why = f"nothing was downloaded ({option_names.download_off})"
    else:
        why = f"the download failed ({' '.join(error.failures[-1][1].split())})"
    if error.split == "test":
        return f"{absent} and {why}: using the copy bundled with tinygan ({count:,} digits)"
    files = " and ".join(f"{name}.gz" for name in error.files)
    fix = f"put {files} in {error.folders[-1]} (or pass {option_names.data_dir})"
    fix = (
        f"{option_names.download_on} or {fix}"
        if error.failures is None
        else f"try again online or {fix}"
    )
    return (
        f"{absent} and {why}: training on the {count:,} MNIST test digits bundled with tinygan "
        f"instead of the 60,000 training digits; for all of them, {fix}"
    )


def _download_split(
    split: str, data_dir: str | os.PathLike | None, dataset: str
) -> tuple[Path, Path]:
    """Download the files of ``split`` missing from ``data_dir/<dataset>/``; return both paths."""
    folder = search_folders(data_dir, dataset)[-1]
    names = _split_files(split, dataset)
    missing = [f"{name}.gz" for name in names if _existing(folder, name) is None]
    try:
        download_files(dataset, missing, folder)
    except DownloadError as error:
        raise DatasetNotFoundError(split, data_dir, dataset, error.failures) from None
    images, labels = (_existing(folder, name) for name in names)
    return images, labels
