"""Train once, then load in a second: the classifier's weights cached in an ``.npz`` file.

:func:`load_classifier` looks for the file first and trains
(:func:`tinygan.quality.classifier.train_classifier`) only when it is missing or does not match. The file
goes beside the data, or in ``~/.cache/tinygan/classifiers/`` (:func:`user_cache_dir`) when the
data folder is read-only or is the MNIST copy bundled inside the package. Its name holds the MD5 of the image and label bytes and a
digest of the training settings: changed data or changed settings give another name, hence a fresh
training run, never a stale classifier.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from tinygan.atomic import write_atomically
from tinygan.data import bundled_mnist_dir
from tinygan.data.mnist import DISPLAY_NAMES, user_cache_root
from tinygan.quality.classifier.data_split import ClassifierData
from tinygan.quality.classifier.network import Classifier, build_classifier
from tinygan.quality.classifier.training import ClassifierSettings, train_classifier


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/tinygan/classifiers`` or ``~/.cache/tinygan/classifiers``."""
    return user_cache_root() / "classifiers"


def folder_is_writable(folder: Path) -> bool:
    """Whether new files may be put in ``folder``.

    A folder whose permission bits allow nobody to write counts as read-only even for root (who
    could write anyway): a dataset shared read-only is never modified behind its owner's back.
    """
    try:
        mode = folder.stat().st_mode
    except OSError:
        return False
    return bool(mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)) and os.access(folder, os.W_OK)


def cache_path(
    data: ClassifierData, settings: ClassifierSettings, cache_dir: str | os.PathLike | None = None
) -> Path:
    """Where the classifier for ``data`` and ``settings`` is cached.

    ``cache_dir`` if given; else the data folder when writable; else :func:`user_cache_dir`. The
    MNIST copy inside the package (:func:`tinygan.data.bundled_mnist_dir`) counts as read-only: an
    installed package is no place for caches. The name is
    ``classifier_<dataset>_<data md5[:12]>_<settings digest>.npz``.
    """
    if cache_dir is not None:
        folder = Path(cache_dir)
    elif folder_is_writable(data.folder) and data.folder.resolve() != bundled_mnist_dir():
        folder = data.folder
    else:
        folder = user_cache_dir()
    return folder / f"classifier_{data.dataset}_{data.checksum[:12]}_{settings.digest()}.npz"


def load_classifier(
    data: ClassifierData,
    settings: ClassifierSettings | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    verbose: bool = True,
) -> Classifier:
    """The classifier for ``data``: read from the cache, or trained (and cached) on first use.

    Parameters
    ----------
    data : ClassifierData
        From :func:`tinygan.quality.classifier.classifier_data`.
    settings : ClassifierSettings, optional
        Architecture and budget; the defaults unless given.
    cache_dir : path-like, optional
        Overrides the cache folder (see :func:`cache_path`).
    progress : bool
        Progress bar while training.
    verbose : bool
        Print where the classifier came from and its held-out accuracy.

    Returns
    -------
    Classifier
        In evaluation use on the CPU. ``classifier.info`` holds what
        :func:`tinygan.quality.classifier.train_classifier` records, and ``path`` (the cache file).
    """
    settings = settings or ClassifierSettings()
    path = cache_path(data, settings, cache_dir)
    classifier = _read_cached(path, data, settings)
    if classifier is None:
        if verbose:
            name = DISPLAY_NAMES[data.dataset]
            print(f"tinygan: training the {name} classifier ({data.description})")
        classifier = train_classifier(data, settings, progress)
        save_classifier(path, classifier)
    classifier.info["path"] = str(path)
    if verbose:
        info = classifier.info
        print(
            f"tinygan: classifier {path}: {100 * info['heldout_accuracy']:.2f}% accuracy on "
            f"{info['heldout_size']} held-out images ({info['description']})"
        )
    return classifier


def save_classifier(path: str | os.PathLike, classifier: Classifier) -> Path:
    """Write ``classifier``'s weights and ``info`` to ``path`` (an ``.npz``, written atomically)."""
    path = Path(path)
    state = {f"param.{k}": v for k, v in classifier.state_dict().items()}
    info = json.dumps({k: v for k, v in classifier.info.items() if k != "path"})
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, lambda file: np.savez_compressed(file, info=info, **state))
    return path


def read_classifier(path: str | os.PathLike) -> Classifier | None:
    """The classifier saved at ``path`` by :func:`save_classifier`; None when absent or unreadable.

    ``classifier.info`` is what was saved with it, plus ``path``.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            info: dict[str, Any] = json.loads(str(archive["info"]))
            state = {
                k[len("param.") :]: archive[k] for k in archive.files if k.startswith("param.")
            }
        recipe = info["settings"]
        # the initial weights are overwritten at once: any seed builds the right shapes
        classifier = build_classifier(
            np.random.default_rng(0), tuple(recipe["channels"]), int(recipe["hidden"])
        )
        classifier.load_state_dict(state)
    except (OSError, ValueError, KeyError, TypeError, EOFError):
        return None
    classifier.info = {**info, "path": str(path)}
    return classifier


def _read_cached(
    path: Path, data: ClassifierData, settings: ClassifierSettings
) -> Classifier | None:
    """The cached classifier at ``path``; None when absent, unreadable or not a match."""
    classifier = read_classifier(path)
    if classifier is None:
        return None
    # the name is only a prefix of the checksum: confirm the full key before trusting the file
    info = classifier.info
    settings_match = info.get("settings") == json.loads(json.dumps(asdict(settings)))
    if info.get("checksum") != data.checksum or not settings_match:
        return None
    return classifier
