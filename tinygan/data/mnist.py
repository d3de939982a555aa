"""MNIST and Fashion-MNIST: finding, downloading and reading the IDX files.

Both datasets ship as four files with the same names (Fashion-MNIST is a drop-in replacement)::

    train-images-idx3-ubyte   60000 images, 28 x 28, uint8
    train-labels-idx1-ubyte   60000 labels, uint8 in 0..9
    t10k-images-idx3-ubyte    10000 images (the "test" split)
    t10k-labels-idx1-ubyte    10000 labels

usually gzip-compressed with a ``.gz`` suffix; either form is accepted.

The IDX format
--------------
An IDX file is a header followed by one flat array in C (row-major) order, every number big-endian::

    byte 0, 1    0x00 0x00          magic: always zero
    byte 2       type code          0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
                                    0x0D float32, 0x0E float64
    byte 3       ndim               number of dimensions
    4 * ndim     d_0, ..., d_{ndim-1}   each size as a 4-byte big-endian unsigned integer
    then         d_0 * ... * d_{ndim-1} items of the declared type

So ``train-images-idx3-ubyte`` starts with ``00 00 08 03``, then 60000, 28, 28, then
60000 * 28 * 28 = 47,040,000 pixel bytes; the label file starts with ``00 00 08 01`` and 60000.
:func:`read_idx` checks every part of this (magic, type code, payload length) and raises
:class:`CorruptDatasetError` naming the file and the problem, rather than letting NumPy fail on
a malformed buffer.

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
:class:`DatasetNotFoundError` keeps the facts (folders searched, files present, download failures) and
words its advice through an :class:`OptionNames`: ``str(error)`` names :func:`load_mnist`'s keyword
arguments (``data_dir=...``, ``download=True``), while a command prints ``error.describe(flags)``,
the same facts with its own flags (``--data-dir DIR``, ``--download``).
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path
from typing import IO
from urllib.request import urlopen

import numpy as np
from tqdm import tqdm

from tinygan.atomic import write_atomically

DATASETS = ("mnist", "fashion-mnist")

SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

MIRRORS = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
}

# MD5 of the published .gz files. Only downloads are checked against them: copies that came another
# way (a Linux distribution's package, say) are often re-compressed, which changes the .gz bytes but
# not the data, so local files are checked by their IDX structure instead (see read_idx).
CHECKSUMS = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}

DOWNLOAD_TIMEOUT = 30.0
"""Seconds a download may wait on the network for any one read before it gives up."""

IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10

DISPLAY_NAMES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}
"""How messages and reports spell each of :data:`DATASETS`."""

_CHUNK_BYTES = 1 << 16


@dataclass(frozen=True)
class OptionNames:
    """How a message names the options that decide where data comes from.

    Library calls are advised in :func:`load_mnist`'s keywords (the defaults); a command passes its
    own flags, so that its users read advice they can type.

    Attributes
    ----------
    data_dir : str
        How to name another data folder: ``"data_dir=..."``; a command: ``"--data-dir DIR"``.
    split : str
        How to choose a split, ``{}`` standing for its name: ``'split="{}"'``; ``"--split {}"``.
    download_off : str
        What kept downloads off: ``"download=False"``; ``"--no-download"``.
    download_on : str
        What to do to allow them: ``"pass download=True"``; ``"leave out --no-download"``.
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


class CorruptDatasetError(ValueError):
    """A dataset file is malformed, truncated, or (for a download) fails its checksum."""


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


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (see the module docstring) into a NumPy array.

    Parameters
    ----------
    path : str or os.PathLike
        The file; a name ending in ``.gz`` is decompressed with gzip, anything else is read as is.

    Returns
    -------
    numpy.ndarray
        Shape and dtype from the header (e.g. uint8 of shape (60000, 28, 28)), in native byte
        order, writable.

    Raises
    ------
    CorruptDatasetError
        Bad gzip stream, a magic number other than ``00 00``, an unknown type code, or a payload
        shorter or longer than the header declares.
    """
    path = Path(path)
    compressed = path.name.endswith(".gz")
    # Reading the whole file first (MNIST's largest is 47 MB) bounds the memory by the real data:
    # a corrupt header that claims huge dimensions is caught by the length check, not by an
    # allocation that fails.
    try:
        with gzip.open(path, "rb") if compressed else open(path, "rb") as file:
            content = file.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise CorruptDatasetError(f"{path}: not a valid gzip file ({error})") from error

    if len(content) < 4:
        raise CorruptDatasetError(f"{path}: {len(content)} bytes, too short for an IDX header")
    if content[:2] != b"\x00\x00":
        hint = " (it looks gzip-compressed: name it *.gz)" if content[:2] == b"\x1f\x8b" else ""
        raise CorruptDatasetError(
            f"{path}: bad magic number {content[:4].hex(' ')}, an IDX file starts with 00 00{hint}"
        )
    type_code, ndim = content[2], content[3]
    if type_code not in IDX_DTYPES:
        known = ", ".join(f"0x{code:02X}" for code in IDX_DTYPES)
        raise CorruptDatasetError(
            f"{path}: unknown IDX type code 0x{type_code:02X} (known: {known})"
        )
    header_bytes = 4 + 4 * ndim
    if len(content) < header_bytes:
        raise CorruptDatasetError(
            f"{path}: header declares {ndim} dimensions but the file ends after {len(content)} bytes"
        )
    shape = struct.unpack(f">{ndim}I", content[4:header_bytes])
    dtype = IDX_DTYPES[type_code]
    expected = math.prod(shape) * dtype.itemsize
    found = len(content) - header_bytes
    if found != expected:
        problem = "truncated" if found < expected else "has trailing bytes"
        raise CorruptDatasetError(
            f"{path}: {problem}: header declares shape {shape} of {dtype.name} "
            f"({expected} bytes of data) but the file holds {found}"
        )
    array = np.frombuffer(content, dtype=dtype, offset=header_bytes).reshape(shape)
    return array.astype(dtype.newbyteorder("="))  # a native-order, writable copy


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
    """Download the missing files of ``split`` into ``data_dir/<dataset>/``; return both paths.

    A folder this creates (the target and any missing parent, the default cache included) is
    removed again if the download fails and leaves it empty: a failed attempt must not leave
    folders that look like a dataset's home but hold nothing.
    """
    target = search_folders(data_dir, dataset)[-1]
    created = [folder for folder in (target, *target.parents) if not folder.exists()]
    paths = []
    try:
        for name in _split_files(split, dataset):
            path = _existing(target, name)
            if path is None:
                path = _download_from_mirrors(split, data_dir, dataset, f"{name}.gz", target)
            paths.append(path)
    except BaseException:
        for folder in created:  # deepest first; a folder holding a finished file stays
            try:
                folder.rmdir()
            except OSError:
                break
        raise
    return paths[0], paths[1]


def _download_from_mirrors(
    split: str, data_dir: str | os.PathLike | None, dataset: str, filename: str, target: Path
) -> Path:
    """Try each mirror in turn; the first verified download wins."""
    failures = []
    for mirror in MIRRORS[dataset]:
        url = mirror + filename
        try:
            download_file(url, target / filename, CHECKSUMS[dataset][filename])
        except (OSError, HTTPException, CorruptDatasetError) as error:
            failures.append((url, str(error)))
        else:
            return target / filename
    raise DatasetNotFoundError(split, data_dir, dataset, failures)


def download_file(
    url: str, destination: str | os.PathLike, md5: str, timeout: float = DOWNLOAD_TIMEOUT
) -> None:
    """Fetch ``url`` to ``destination`` if and only if its MD5 is ``md5``.

    The bytes go to a temporary file in the destination folder, which is renamed into place
    (``os.replace``, atomic on one file system) only after the checksum matched. A transfer that
    fails or is interrupted, or a checksum mismatch, leaves no file behind; a URL that cannot be
    opened (no network, say) does not even create the destination folder.

    Raises
    ------
    OSError
        Network failure (``urllib.error.URLError``, ``TimeoutError``) or a file system error.
    CorruptDatasetError
        The downloaded bytes do not have the expected MD5.
    """

    # The connection is opened before write_atomically creates the destination folder.
    with urlopen(url, timeout=timeout) as response:

        def fetch(out: IO[bytes]) -> None:
            digest = hashlib.md5(usedforsecurity=False)
            size = response.headers.get("Content-Length")
            with tqdm(
                total=int(size) if size else None,
                unit="B",
                unit_scale=True,
                desc=Path(destination).name,
            ) as progress:
                while chunk := response.read(_CHUNK_BYTES):
                    out.write(chunk)
                    digest.update(chunk)
                    progress.update(len(chunk))
            if digest.hexdigest() != md5:  # raising here discards the temporary file
                raise CorruptDatasetError(
                    f"checksum mismatch: MD5 {digest.hexdigest()}, expected {md5}; "
                    "the file was discarded"
                )

        write_atomically(destination, fetch)
