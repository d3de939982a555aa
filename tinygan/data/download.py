"""Downloading the published dataset files: mirrors, checksums, atomic writes, a progress bar.

Each dataset is published as gzip files (:data:`CHECKSUMS` names them) on one or more mirrors
(:data:`MIRRORS`). A file is fetched from the first mirror that delivers it intact:

* every read waits at most :data:`DOWNLOAD_TIMEOUT` seconds on the network, so that a dead
  connection fails instead of hanging;
* the bytes go to a temporary file beside the destination, which is renamed into place only once
  their MD5 is the published one (:func:`tinygan.atomic.write_atomically`): an interrupted or
  tampered transfer leaves nothing behind that could later be read as data;
* a progress bar shows the bytes received;
* a folder created for a download that then fails is removed again, so that no empty folder is
  left looking like a dataset's home.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from http.client import HTTPException
from pathlib import Path
from typing import IO
from urllib.request import urlopen

from tqdm import tqdm

from tinygan.atomic import write_atomically
from tinygan.data.idx import CorruptDatasetError

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

_CHUNK_BYTES = 1 << 16


class DownloadError(OSError):
    """No mirror delivered a file intact.

    Attributes
    ----------
    failures : list of (url, reason)
        Each mirror tried, in order, and why it failed.
    """

    def __init__(self, failures: Sequence[tuple[str, str]]) -> None:
        self.failures = list(failures)
        super().__init__("; ".join(f"{url}: {reason}" for url, reason in self.failures))

    def __reduce__(self) -> tuple:
        # The default would rebuild the error from its message, not from its failures.
        return type(self), (self.failures,)


def download_files(dataset: str, filenames: Sequence[str], folder: str | os.PathLike) -> None:
    """Fetch the published files ``filenames`` of ``dataset`` into ``folder``, in turn.

    A folder this creates (``folder`` and any missing parent) is removed again if a download fails
    and leaves it empty; a file already fetched stays.

    Raises
    ------
    DownloadError
        No mirror delivered one of the files; its ``failures`` are that file's.
    """
    folder = Path(folder)
    created = [path for path in (folder, *folder.parents) if not path.exists()]
    try:
        for filename in filenames:
            _download_from_mirrors(dataset, filename, folder)
    except BaseException:
        for path in created:  # deepest first; a folder holding a finished file stays
            try:
                path.rmdir()
            except OSError:
                break
        raise


def _download_from_mirrors(dataset: str, filename: str, folder: Path) -> None:
    """Try each mirror in turn; the first verified download wins."""
    failures = []
    for mirror in MIRRORS[dataset]:
        url = mirror + filename
        try:
            download_file(url, folder / filename, CHECKSUMS[dataset][filename])
        except (OSError, HTTPException, CorruptDatasetError) as error:
            failures.append((url, str(error)))
        else:
            return
    raise DownloadError(failures)


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
