"""Module paths from before the run and quality machinery moved into subpackages.

tinygan's top level holds the learner's core; the command line, the training loop's callbacks and
checkpoints live in :mod:`tinygan.run`, the metrics, the classifier and evaluation in
:mod:`tinygan.quality`. Code written against the old paths keeps working: ``import tinygan.checkpoint``
or ``from tinygan.metrics.fid import fid`` returns the module at its new path. It is the same module
object, not a copy, so classes compare equal and module state is shared.

New code should use the new paths; this table only keeps old imports alive.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import ModuleType

MOVED = {
    "tinygan.alarms": "tinygan.run.alarms",
    "tinygan.checkpoint": "tinygan.run.checkpoint",
    "tinygan.cli": "tinygan.run.cli",
    "tinygan.experiment": "tinygan.run.experiment",
    "tinygan.flags": "tinygan.run.flags",
    "tinygan.folder_lock": "tinygan.run.folder_lock",
    "tinygan.mixture_run": "tinygan.run.mixture_run",
    "tinygan.sampling": "tinygan.run.sampling",
    "tinygan.train": "tinygan.run.train",
    "tinygan.classifier": "tinygan.quality.classifier",
    "tinygan.evaluate": "tinygan.quality.evaluate",
    "tinygan.metrics": "tinygan.quality.metrics",
    "tinygan.nn.flat": "tinygan.kernels.flat",  # the optimizers' flat buffers, a fast path
}


def new_path(name: str) -> str | None:
    """Where module ``name`` lives now, or None when it did not move.

    A module inside a moved package moved with it: ``tinygan.metrics.fid`` is now
    ``tinygan.quality.metrics.fid``.
    """
    for old, new in MOVED.items():
        if name == old or name.startswith(old + "."):
            return new + name[len(old) :]
    return None


class OldPathFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers imports of an old path with the module at its new path."""

    def __init__(self) -> None:
        self._real_specs: dict[str, importlib.machinery.ModuleSpec] = {}

    def find_spec(self, name: str, path: object = None, target: object = None):  # noqa: ANN201
        if new_path(name) is None:
            return None
        return importlib.util.spec_from_loader(name, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module = importlib.import_module(new_path(spec.name))
        self._real_specs[module.__name__] = module.__spec__
        return module

    def get_code(self, name: str):  # noqa: ANN201
        """The new module's code, for ``python -m OLD.PATH`` (runpy runs it as ``__main__``)."""
        spec = importlib.util.find_spec(new_path(name))
        return spec.loader.get_code(spec.name)

    def exec_module(self, module: ModuleType) -> None:
        # The import system stamped the old path's spec onto the module: give it back its own.
        module.__spec__ = self._real_specs[module.__name__]


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (once), ahead of the file finders."""
    if not any(isinstance(finder, OldPathFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, OldPathFinder())
