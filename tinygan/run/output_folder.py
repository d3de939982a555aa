"""A run's output folder: what a run writes there, and holding the folder for the run.

One folder holds one run. :func:`claim_output_folder` takes the folder's lock
(:mod:`tinygan.run.folder_lock`) before anything in it is read, deleted or written, refuses a folder
that holds another run unless ``--resume`` continues it or ``--overwrite`` replaces it, and leaves no
trace of a run refused before it wrote anything.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from tinygan.run.flags import check_writable_folder
from tinygan.run.folder_lock import LOCK_NAME, FolderInUseError, FolderLock
from tinygan.run.records import LOG_CSV, MODES_CSV, QUALITY_CSV, WARNINGS_CSV
from tinygan.run.settings import CONFIG_NAME, RunRefused

#: What a run writes into its folder; ``--overwrite`` deletes exactly these.
RUN_OUTPUTS = (
    CONFIG_NAME,
    LOG_CSV,
    QUALITY_CSV,
    MODES_CSV,
    WARNINGS_CSV,
    "losses.png",
    "discriminator_outputs.png",
    "pixel_histogram_before.png",
    "pixel_histogram_after.png",
    "training.gif",
    "samples",
    "checkpoints",
)


@contextlib.contextmanager
def claim_output_folder(
    prog: str, out_dir: Path, resume: bool, overwrite: bool
) -> Iterator[Callable[[], None]]:
    """Hold the output folder for the run inside this block: one run per folder.

    The folder's lock (:class:`~tinygan.run.folder_lock.FolderLock`) is taken before anything in it is
    read, deleted or written, so a second run on a folder in use is refused (:class:`RunRefused`)
    without touching it, ``--resume`` and ``--overwrite`` alike. A folder that holds another,
    finished run is refused too, unless ``--resume`` continues it or ``--overwrite`` replaces it:
    the block gets a function that deletes that run's outputs, to call once the new run's flags
    and data are good.

    A run that fails before writing anything (a mistake in the flags or the data) leaves no trace:
    the lock file it created goes, and so do the folders it created; a folder the user had stays.
    """
    if resume and overwrite:
        raise RunRefused("--resume continues the run in --out and --overwrite deletes it: not both")
    created = [folder for folder in (out_dir, *out_dir.parents) if not folder.exists()]
    check_writable_folder(prog, out_dir)
    made_lock_file = not (out_dir / LOCK_NAME).exists()
    lock = take_lock(out_dir)
    try:
        existing = [name for name in RUN_OUTPUTS if (out_dir / name).exists()]
        if existing and not resume and not overwrite:
            raise RunRefused(
                f"--out {out_dir} holds another run ({', '.join(existing)}): pass --resume to "
                "continue it, or --overwrite to delete it and start again"
            )

        def clear_old_run() -> None:
            for name in existing if overwrite else ():
                path = out_dir / name
                shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)

        yield clear_old_run
    except BaseException:
        if made_lock_file and not any((out_dir / name).exists() for name in RUN_OUTPUTS):
            lock.remove_file()  # still held: a run starting now takes a lock on a fresh file
            for folder in created:  # innermost first
                with contextlib.suppress(OSError):
                    folder.rmdir()
        raise
    finally:
        lock.release()


def take_lock(out_dir: Path) -> FolderLock:
    """The lock of ``out_dir``, or :class:`RunRefused` saying who holds it."""
    try:
        return FolderLock(out_dir)
    except FolderInUseError as error:
        kill = f" (kill {error.pid})" if error.pid else ""
        raise RunRefused(
            f"--out {error}; one folder holds one run: wait for it to end or stop it{kill}, or "
            "train into another --out"
        ) from None
    except OSError as error:
        raise RunRefused(f"--out {out_dir} is not writable ({error.strerror or error})") from None
