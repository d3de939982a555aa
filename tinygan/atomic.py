"""Atomic file writes: a file is either its old self or completely new, never half written.

Everything tinygan saves (sample grids, curves, checkpoints, classifier caches, downloaded datasets)
goes through :func:`write_atomically`: the bytes go to a temporary file in the target's own folder,
which is renamed onto the target only once it is complete. The rename is atomic on POSIX and Windows
within one file system, hence the temporary file beside the target. On any error, Ctrl-C included,
the temporary file is removed and an existing target is left untouched.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


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
