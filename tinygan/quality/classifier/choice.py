"""Which classifier judges the samples: the one shipped with tinygan, or one trained on more data.

Every dataset with a shipped classifier (:mod:`tinygan.quality.classifier.shipped`) is measured from the
first run on, with no training. A classifier the user trained (``tinygan classifier``, cached by
:func:`tinygan.quality.classifier.load_classifier`) on the data in use replaces it when it learnt from more
images, e.g. MNIST's 60,000 train digits against the shipped one's 8,000. One line says which is
used. A dataset with neither gets a classifier trained on first use, as before.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from tinygan.data import DatasetNotFoundError
from tinygan.data.mnist import DISPLAY_NAMES
from tinygan.quality.classifier.cache import _read_cached, cache_path, load_classifier
from tinygan.quality.classifier.data_split import ClassifierData, classifier_data
from tinygan.quality.classifier.network import Classifier
from tinygan.quality.classifier.shipped import load_shipped, shipped_training_data
from tinygan.quality.classifier.training import ClassifierSettings


@dataclass
class ChosenClassifier:
    """A classifier and the real images it was trained and checked on.

    Attributes
    ----------
    classifier : Classifier
    data : ClassifierData
        Its training and held-out images; the held-out ones are the reference of the metrics.
    origin : str
        ``"shipped"``, ``"cached"`` or ``"trained"``.
    line : str
        One sentence for the user: which classifier, and its held-out accuracy.
    """

    classifier: Classifier
    data: ClassifierData
    origin: str
    line: str


def choose_classifier(
    dataset: str,
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    verbose: bool = True,
) -> ChosenClassifier:
    """The classifier that measures samples of ``dataset``: cached if trained on more, else shipped.

    Parameters
    ----------
    dataset : {"mnist", "fashion-mnist"}
    data_dir : path-like, optional
        The data in use (see :func:`tinygan.data.load_mnist`); a classifier cached for it may win.
    cache_dir : path-like, optional
        Where cached classifiers are looked for (see :func:`tinygan.quality.classifier.cache_path`).
    verbose : bool
        Print :attr:`ChosenClassifier.line`.

    Raises
    ------
    tinygan.data.DatasetNotFoundError
        No shipped classifier and no data to train one on.
    """
    shipped = load_shipped(dataset)
    try:
        data: ClassifierData | None = classifier_data(dataset, data_dir, download=False)
    except DatasetNotFoundError:
        if shipped is None:
            raise
        data = None
    cached = None
    if data is not None:
        settings = ClassifierSettings()
        cached = _read_cached(cache_path(data, settings, cache_dir), data, settings)
    if cached is not None and (shipped is None or _trained_on(cached) > _trained_on(shipped)):
        chosen = ChosenClassifier(cached, data, "cached", _describe(cached, "cached"))
        if shipped is not None:
            chosen.line += (
                f", trained on more images than the shipped one ({_trained_on(shipped):,})"
            )
    elif shipped is not None:
        reference_data = _shipped_reference_data(shipped, data, data_dir)
        chosen = ChosenClassifier(shipped, reference_data, "shipped", _describe(shipped, "shipped"))
    else:
        classifier = load_classifier(data, cache_dir=cache_dir, verbose=False)
        chosen = ChosenClassifier(classifier, data, "trained", _describe(classifier, "trained"))
    if verbose:
        print(f"tinygan: {chosen.line}")
    return chosen


def _trained_on(classifier: Classifier) -> int:
    return int(classifier.info.get("train_size", 0))


def _describe(classifier: Classifier, origin: str) -> str:
    info = classifier.info
    name = DISPLAY_NAMES[info["dataset"]]
    where = f"the shipped {name} classifier" if origin == "shipped" else info["path"]
    return (
        f"quality classifier: {where}, {100 * info['heldout_accuracy']:.2f}% accuracy on "
        f"{info['heldout_size']:,} held-out images ({info['train_size']:,} training images)"
    )


def _shipped_reference_data(
    shipped: Classifier, data: ClassifierData | None, data_dir: str | os.PathLike | None
) -> ClassifierData:
    """The shipped classifier's own training and held-out images, found from ``data_dir``.

    Where they cannot be had (Fashion-MNIST with one split on disk), the data in use stands in.
    """
    dataset = shipped.info["dataset"]
    if data is not None and data.checksum == shipped.info["checksum"]:
        return data  # the data in use is the shipped classifier's own: no second read
    try:
        own = shipped_training_data(dataset, data_dir)
    except (DatasetNotFoundError, ValueError):
        own = None
    if own is not None and own.checksum == shipped.info["checksum"]:
        return own
    if data is None:  # nothing on disk to compare samples with
        raise DatasetNotFoundError("test", data_dir, dataset)
    return data
