"""Atomic file writes: a file is either its old self or completely new, never half written.

Everything tinygan saves (sample grids, curves, checkpoints, classifier caches, downloaded datasets)
goes through :func:`write_atomically`: the bytes go to a temporary file in the target's own folder,
which is renamed onto the target only once it is complete. The rename is atomic on POSIX and Windows
within one file system, hence the temporary file beside the target. On any error, Ctrl-C included,
the temporary file is removed and an existing target is left untouched.

A failed write (a full disk, a read-only folder) raises :class:`OSError` naming the file that could
not be written: the target, not the temporary file, even where the operating system names neither
(a ``write`` that fails). Files that grow by lines (``log.csv`` and the other tables) are appended to
through :func:`appending`, which names them the same way.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, TextIO


@contextlib.contextmanager
def naming_failures(
    path: str | os.PathLike, unless: str | os.PathLike | None = None
) -> Iterator[None]:
    """Make an :class:`OSError` raised inside the block name ``path``.

    An error that names no file, or names ``unless`` (a temporary file the user never sees), is
    raised again with ``path`` as its file name; its errno, and so its class, stays the same.
    """
    try:
        yield
    except OSError as error:
        shown = error.filename
        hidden = shown is None or (unless is not None and str(shown) == str(unless))
        if error.errno is None or not hidden:
            raise
        raise OSError(error.errno, error.strerror or os.strerror(error.errno), str(path)) from error


@contextlib.contextmanager
def appending(path: str | os.PathLike) -> Iterator[TextIO]:
    """Open a text table to add lines at its end; a failed write names ``path``."""
    with naming_failures(path), open(path, "a", newline="") as handle:
        yield handle


def write_atomically(
    path: str | os.PathLike, write: Callable[[IO[bytes]], Any], durable: bool = False
) -> Path:
    """Run ``write(file)`` on a temporary file next to ``path``, then rename it onto ``path``.

    Parameters
    ----------
    path : path-like
        The target; missing parent folders are created.
    write : callable
        Writes the content to the binary file object it is given. Raising aborts the write.
    durable : bool
        Also flush the data to the disk (``fsync``) before the rename, so that even a power cut
        leaves the old or the new file (checkpoints ask for this; pictures do not need it).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A unique name and exclusive creation ("x"): two writers never share a temporary file, and the
    # file gets the usual permissions (umask applied), unlike tempfile's private 0600.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with naming_failures(path, unless=temporary):
            with open(temporary, "xb") as file:
                write(file)
                if durable:
                    file.flush()
                    os.fsync(file.fileno())
            os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path
