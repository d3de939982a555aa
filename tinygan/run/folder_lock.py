"""One training run per folder: an operating-system lock on a file inside the run's folder.

``tinygan train`` holds :class:`FolderLock` on its ``--out`` for the whole run. The lock is
``flock`` on an open file descriptor, so the operating system releases it when the process ends,
however it ends: ``kill -9`` or a crash leaves no stale lock, and the next run simply takes it. The
file itself (:data:`LOCK_NAME`) stays in the folder; it holds the PID and start time of the process
that last took the lock, which the refusal of a second run quotes while that process holds it.

Where the operating system has no ``fcntl`` (Windows), runs are not locked.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

#: The lock file inside a run folder (a hidden name: it is not one of the run's outputs).
LOCK_NAME = ".tinygan.lock"


class FolderInUseError(RuntimeError):
    """Another process holds the folder's lock; the message names it (PID and start time)."""

    def __init__(self, folder: Path, holder: dict[str, Any]) -> None:
        pid, started = holder.get("pid"), holder.get("started")
        who = f"PID {pid}" if pid is not None else "PID unknown"
        if started:
            who += f", started {started}"
        super().__init__(f"{folder} is in use by another training run ({who})")
        self.folder, self.pid = folder, pid


class FolderLock:
    """Hold ``folder`` for this process until :meth:`release` (or the process ends).

    Parameters
    ----------
    folder : path
        An existing folder; the lock file is created in it if missing.

    Raises
    ------
    FolderInUseError
        Another process holds the lock (it is not waited for).
    OSError
        The lock file cannot be created or opened (a read-only folder).
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.fd: int | None = None
        while self.fd is None:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                locked = self._lock(fd)
            except BaseException:
                os.close(fd)
                raise
            if locked:
                self.fd = fd
            else:
                os.close(fd)
        record = {"pid": os.getpid(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        try:
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, (json.dumps(record) + "\n").encode(), 0)
        except OSError:  # a full disk: no run can work here, so none holds the folder
            self.release()
            raise

    def _lock(self, fd: int) -> bool:
        """Lock ``fd``; False when the file was deleted or replaced between open and lock."""
        if fcntl is None:
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderInUseError(self.folder, _holder(fd)) from None
        # A holder that removes the file (see remove_file) does so while it holds the lock; a lock
        # taken on the removed file then guards nothing, so it is taken again on the file now there.
        try:
            return os.path.samestat(os.fstat(fd), os.stat(self.path))
        except FileNotFoundError:
            return False

    def remove_file(self) -> None:
        """Delete the lock file while still holding it (a folder about to be removed)."""
        self.path.unlink(missing_ok=True)

    def release(self) -> None:
        """Let another process take the folder (the file stays; closing the descriptor unlocks)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _holder(fd: int) -> dict[str, Any]:
    """What the lock's holder wrote into the file (empty if unknown).

    A holder writes its record just after taking the lock, so for a moment the file may still be
    empty or name an earlier, finished process: it is read again until it names a live one.
    """
    for _ in range(50):
        try:
            record = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        except (OSError, ValueError):
            record = {}
        if isinstance(record, dict) and _alive(record.get("pid")):
            return record
        time.sleep(0.02)
    return {}


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True
