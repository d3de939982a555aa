"""The classifiers that ship with tinygan, so that quality is measured from the very first run.

Training a classifier takes minutes, and a run that has none keeps no best generator and raises no
collapse alarm. So tinygan carries two, trained by its own code with the default
:class:`~tinygan.quality.classifier.ClassifierSettings`, next to the bundled digits in
``tinygan/data/bundled/``:

=============================  ======================================================================
``classifier_mnist.npz``       trained on 8,000 of the 10,000 bundled MNIST test digits, the other
                               2,000 held out (the fixed cut of
                               :func:`~tinygan.quality.classifier.classifier_data`): MNIST's train split
                               cannot ship with the package
``classifier_fashion-mnist``   trained on Fashion-MNIST's 60,000 train images, its 10,000 test
``.npz``                       images held out
=============================  ======================================================================

Each file records how it was made and its held-out accuracy (``info``). Regenerate them, and see
their accuracy, with::

    python -m tinygan.quality.classifier.shipped --fashion-dir /usr/share/datasets

A classifier you train yourself on more data (``tinygan classifier --data-dir DIR``) is cached and
wins over the shipped one (:func:`tinygan.quality.classifier.choose_classifier`).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from tinygan.data import bundled_mnist_dir
from tinygan.data.mnist import DISPLAY_NAMES
from tinygan.quality.classifier.cache import read_classifier, save_classifier
from tinygan.quality.classifier.data_split import ClassifierData, classifier_data
from tinygan.quality.classifier.network import Classifier
from tinygan.quality.classifier.training import ClassifierSettings, train_classifier

SHIPPED_DATASETS = ("mnist", "fashion-mnist")


def shipped_path(dataset: str) -> Path:
    """Where the shipped classifier of ``dataset`` lives inside the package."""
    return bundled_mnist_dir() / f"classifier_{dataset}.npz"


def load_shipped(dataset: str) -> Classifier | None:
    """The shipped classifier of ``dataset``; None for a dataset without one, or a missing file."""
    if dataset not in SHIPPED_DATASETS:
        return None
    return read_classifier(shipped_path(dataset))


def shipped_training_data(
    dataset: str, data_dir: str | os.PathLike | None = None
) -> ClassifierData:
    """The images a shipped classifier is trained and checked on.

    MNIST: the bundled test digits, cut 8,000 / 2,000 (the same on every machine, ``data_dir`` is
    not read). Fashion-MNIST: the train split for training and the test split held out, from
    ``data_dir`` (both splits must be there).
    """
    if dataset == "mnist":
        return classifier_data("mnist", bundled_mnist_dir(), download=False)
    data = classifier_data(dataset, data_dir, download=False)
    if data.train_split == data.heldout_split:
        raise ValueError(
            f"the shipped {DISPLAY_NAMES[dataset]} classifier trains on the train split and is "
            f"checked on the test split; only the {data.train_split} split is in {data.folder}"
        )
    return data


def regenerate(
    dataset: str,
    data_dir: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    progress: bool = True,
) -> Classifier:
    """Train ``dataset``'s shipped classifier from scratch and write it to ``out``.

    Parameters
    ----------
    dataset : {"mnist", "fashion-mnist"}
    data_dir : path-like, optional
        The Fashion-MNIST folder (unused for MNIST, see :func:`shipped_training_data`).
    out : path-like, optional
        Default: :func:`shipped_path`, replacing the file the package ships.
    progress : bool
        Progress bar while training.

    Returns
    -------
    Classifier
        Its ``info`` holds the held-out accuracy, measured with the weights as written.
    """
    data = shipped_training_data(dataset, data_dir)
    classifier = train_classifier(data, ClassifierSettings(), progress)
    path = save_classifier(out or shipped_path(dataset), classifier)
    written = read_classifier(path)
    assert written is not None, f"{path} could not be read back"
    written.info["heldout_accuracy"] = written.accuracy(data.heldout_images, data.heldout_labels)
    return written


def main(argv: list[str] | None = None) -> int:
    """Regenerate the shipped classifiers and print their held-out accuracy."""
    parser = argparse.ArgumentParser(
        prog="python -m tinygan.quality.classifier.shipped", description=main.__doc__
    )
    parser.add_argument(
        "--dataset",
        choices=[*SHIPPED_DATASETS, "all"],
        default="all",
        help="which classifier to train (default: both)",
    )
    parser.add_argument(
        "--fashion-dir",
        type=Path,
        help="folder with Fashion-MNIST's four IDX files (or a fashion-mnist/ folder inside)",
    )
    parser.add_argument("--out-dir", type=Path, help="write here instead of into the package")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    datasets = SHIPPED_DATASETS if args.dataset == "all" else (args.dataset,)
    for dataset in datasets:
        out = args.out_dir / shipped_path(dataset).name if args.out_dir else None
        classifier = regenerate(dataset, args.fashion_dir, out, not args.no_progress)
        info = classifier.info
        print(
            f"{info['path']}: {100 * info['heldout_accuracy']:.2f}% accuracy on "
            f"{info['heldout_size']} held-out images; {info['description']}; trained in "
            f"{info['train_seconds']} s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
