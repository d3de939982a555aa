"""What has the GAN learned? Classifier-based quality metrics for checkpoints and training runs.

A :class:`QualityEvaluator` holds a classifier (:mod:`tinygan.quality.classifier`) and the classifier's view of
a fixed set of real images, the *reference*. It scores any set of images against that reference with
the metrics of :mod:`tinygan.quality.metrics`:

=====================  ================================================================  ============
metric                 what it says                                                      better
=====================  ================================================================  ============
``fid``                Frechet distance of feature Gaussians, generated vs reference      lower
``inception_score``    confident *and* varied classes, exp E[KL(p(y|x) || p(y))], 1..K     higher
``classes_hit``        classes holding at least 1/10 of a uniform share of the samples    K
``class_kl``           KL of the predicted-class histogram to uniform, nats               lower
``precision``          share of samples inside the real feature manifold (k = 3)          higher
``recall``             share of real images inside the samples' manifold (k = 3)          higher
``class_accuracy``     a conditional generator's samples in the class asked for, mean     higher
                       over the classes (real images: the classifier's accuracy)
=====================  ================================================================  ============

Every figure depends on the classifier and on the sample counts, so none is printed alone:
:meth:`QualityEvaluator.calibration` scores real images the same way (one half of the reference
against the other half), and reports put that beside the model's figures. A generator is as good as
real data on a metric when it matches the real column, not when it reaches 0 or 10.

:func:`evaluate_checkpoint` (the ``tinygan eval`` command) rebuilds a checkpoint's generator, draws N
images and prints the table; :class:`QualityCallback` measures the same numbers while a run trains,
hands each row to its listeners (keeping the best generator, raising alarms: each its own
:class:`~tinygan.run.callbacks.RowListener`) and logs it to ``<out>/quality.csv``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tinygan.data import load_mnist
from tinygan.data.mnist import DISPLAY_NAMES
from tinygan.ema import averaged_generator
from tinygan.models import Preset
from tinygan.quality.classifier import (
    Classifier,
    ClassifierData,
    ClassifierSettings,
    choose_classifier,
    classifier_data,
    load_classifier,
)
from tinygan.quality.metrics import (
    class_accuracy,
    feature_frechet_distance,
    frechet_distance,
    gaussian_statistics,
    inception_score,
    mode_coverage,
    precision_recall,
)
from tinygan.run.callbacks import Periodic, RowListener, TrainerView
from tinygan.run.records import (
    CLASS_ACCURACY,
    QUALITY_CSV,
    QUALITY_METRICS,
    append_quality_row,
    read_quality_rows,
)
from tinygan.run.sampling import (
    check_memory,
    generate,
    generate_batches,
    load_generator,
    spread_labels,
)

#: The metrics, in the order of their columns in ``quality.csv`` (:mod:`tinygan.run.records`).
METRICS = QUALITY_METRICS


class QualityEvaluator:
    """Scores image sets against a fixed reference set of real images, through one classifier.

    Parameters
    ----------
    classifier : Classifier
        Supplies the features (FID, precision / recall) and class probabilities (IS, coverage).
    reference_images : array, shape (M, 28, 28)
        Real images, uint8 or floats in [0, 1]; ideally ones the classifier never trained on.
    k : int
        Neighbourhood size of precision and recall.
    batch_size : int
        Images per classifier forward pass.
    seed : int
        Shuffles the reference once (which images are used for precision / recall, and the two
        halves of the calibration), so reports are reproducible.
    reference_labels : array, shape (M,), optional
        The classes of the reference images: the calibration then reports the classifier's own
        class accuracy on real images, beside a conditional generator's.

    Attributes
    ----------
    reference_features : numpy.ndarray, shape (M, F)
    reference_probabilities : numpy.ndarray, shape (M, K)
    """

    def __init__(
        self,
        classifier: Classifier,
        reference_images: Any,
        k: int = 3,
        batch_size: int = 500,
        seed: int = 0,
        reference_labels: Any = None,
    ) -> None:
        self.classifier, self.k, self.batch_size = classifier, int(k), int(batch_size)
        features, probabilities = classifier.embed(reference_images, self.batch_size)
        order = np.random.default_rng(seed).permutation(len(features))
        self.reference_features = features[order]
        self.reference_probabilities = probabilities[order]
        self.reference_labels = None
        if reference_labels is not None:
            self.reference_labels = np.asarray(reference_labels)[order]
        self.reference_statistics = gaussian_statistics(self.reference_features)
        self._calibration: dict[str, Any] | None = None

    @property
    def num_classes(self) -> int:
        return self.reference_probabilities.shape[1]

    def score(self, images: Any, labels: Any = None) -> dict[str, Any]:
        """All metrics of ``images`` (N, 28, 28), uint8 or [0, 1] floats, against the reference.

        ``labels`` (N,), for a conditional generator's images: the class each was generated for.

        Returns
        -------
        dict
            The :data:`METRICS`, plus ``n`` (images scored), ``reference_n`` (reference size, the
            other side of the FID), ``pr_n`` (images per side in precision / recall: the first
            ``min(n, reference_n)`` of each, equal sizes as the method asks), ``k`` and
            ``num_classes``; with ``labels``, ``class_accuracy`` and ``class_accuracies`` (per
            class, a list of K; see :func:`tinygan.quality.metrics.class_accuracy`).
        """
        return self.score_batches([images], labels)

    def score_batches(self, batches: Iterable[Any], labels: Any = None) -> dict[str, Any]:
        """:meth:`score` of the images of several batches together, embedded one batch at a time
        (``labels``: the classes of all of them, in order).

        Only the classifier's features and probabilities are kept, never the images: with
        :func:`tinygan.run.sampling.generate_batches` the memory grows by ``bytes_per_image`` per image.
        """
        embedded = [self.classifier.embed(images, self.batch_size) for images in batches]
        features = np.concatenate([f for f, _ in embedded])
        probabilities = np.concatenate([p for _, p in embedded])
        del embedded  # the pieces, before the covariance makes its centred copy
        fid = frechet_distance(*gaussian_statistics(features), *self.reference_statistics)
        scores = self._score(features, probabilities, self.reference_features, fid)
        if labels is not None:
            scores |= self._class_accuracy(probabilities, labels)
        return scores

    def _class_accuracy(self, probabilities: np.ndarray, labels: Any) -> dict[str, Any]:
        accuracy = class_accuracy(probabilities.argmax(axis=1), labels, self.num_classes)
        return {CLASS_ACCURACY: accuracy.mean, "class_accuracies": accuracy.per_class.tolist()}

    @property
    def bytes_per_image(self) -> int:
        """Memory :meth:`score_batches` needs per image scored: its float64 features and class
        probabilities, held twice at the most (in pieces and joined; joined and centred for the
        covariance)."""
        return 2 * 8 * (self.reference_features.shape[1] + self.num_classes)

    def calibration(self) -> dict[str, Any]:
        """The same metrics for real images: the reference's first half scored against its second.

        This is what a perfect generator would score with as many samples as the half holds (the
        real-vs-real FID is above 0 only because both halves are finite samples). Computed once.
        """
        if self._calibration is None:
            half = len(self.reference_features) // 2
            first, second = self.reference_features[:half], self.reference_features[half:]
            fid = feature_frechet_distance(first, second)
            probabilities = self.reference_probabilities[:half]
            self._calibration = self._score(first, probabilities, second, fid)
            if self.reference_labels is not None:
                labels = self.reference_labels[:half]
                self._calibration |= self._class_accuracy(probabilities, labels)
        return self._calibration

    def _score(
        self, features: np.ndarray, probabilities: np.ndarray, reference: np.ndarray, fid: float
    ) -> dict[str, Any]:
        coverage = mode_coverage(probabilities.argmax(axis=1), self.num_classes)
        m = min(len(features), len(reference))
        precision, recall = precision_recall(reference[:m], features[:m], self.k)
        return {
            "n": len(features),
            "reference_n": len(reference),
            "fid": fid,
            "inception_score": inception_score(probabilities),
            "classes_hit": coverage.classes_hit,
            "num_classes": self.num_classes,
            "class_kl": coverage.kl_to_uniform,
            "precision": precision,
            "recall": recall,
            "pr_n": m,
            "k": self.k,
        }


def reference_images(
    data: ClassifierData,
    split: str | None = None,
    data_dir: str | os.PathLike | None = None,
    download: bool = False,
) -> tuple[np.ndarray, str]:
    """The real images to compare against, and a sentence saying which they are.

    ``split=None`` (the default) takes the classifier's held-out images; ``"train"`` or ``"test"``
    takes that whole split, with a warning in the sentence when the classifier trained on some of it
    (its features and confidence are then a little optimistic for those images).
    """
    images, _, description = labelled_reference(data, split, data_dir, download)
    return images, description


def labelled_reference(
    data: ClassifierData,
    split: str | None = None,
    data_dir: str | os.PathLike | None = None,
    download: bool = False,
) -> tuple[np.ndarray, np.ndarray, str]:
    """:func:`reference_images` with the images' labels: (images, labels, description)."""
    name = DISPLAY_NAMES[data.dataset]
    if split is None:
        images = data.heldout_images
        description = f"{len(images)} held-out {name} images the classifier never saw"
        return images, data.heldout_labels, description
    images, labels = load_mnist(split, data_dir, data.dataset, download=download)
    description = f"all {len(images)} {name} {split} images"
    if split == data.train_split:
        description += " (the classifier trained on some of them)"
    return images, labels, description


def _figure(key: str, scores: dict[str, Any]) -> str:
    if key not in scores:
        return "-"
    value = scores[key]
    if key == CLASS_ACCURACY:
        return f"{100 * value:.1f}%"
    if key == "classes_hit":
        return f"{value}/{scores['num_classes']}"
    if key == "fid":
        return f"{value:.2f} ({scores['n']} vs {scores['reference_n']})"
    if key in ("precision", "recall"):
        return f"{value:.3f} ({scores['pr_n']} vs {scores['pr_n']})"
    return f"{value:.4f}" if key == "class_kl" else f"{value:.2f}"


_LABELS = {
    "fid": "FID (lower is better)",
    "inception_score": "Inception Score",
    "classes_hit": "classes hit",
    "class_kl": "class KL to uniform",
    "precision": "precision (k=3)",
    "recall": "recall (k=3)",
    CLASS_ACCURACY: "class accuracy (asked-for class)",
}


def format_table(generated: dict[str, Any], real: dict[str, Any]) -> str:
    """A plain-text table: each metric for the generated images beside the real calibration."""
    rows = [("metric", f"generated (N={generated['n']})", f"real, calibration (N={real['n']})")]
    keys = [*METRICS, CLASS_ACCURACY] if CLASS_ACCURACY in generated else METRICS
    rows += [(_LABELS[key], _figure(key, generated), _figure(key, real)) for key in keys]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows)
    return "\n".join(line.rstrip() for line in lines)


def evaluate_checkpoint(
    path: str | os.PathLike,
    n: int = 10_000,
    data_dir: str | os.PathLike | None = None,
    dataset: str | None = None,
    split: str | None = None,
    seed: int = 0,
    device: str = "cpu",
    download: bool = False,
    classifier_cache: str | os.PathLike | None = None,
    classifier_settings: ClassifierSettings | None = None,
    batch_size: int = 500,
    verbose: bool = True,
) -> dict[str, Any]:
    """Generate ``n`` images from a checkpoint and measure them against real images.

    Parameters
    ----------
    path : path-like
        A checkpoint written by ``tinygan train`` (its metadata names the preset).
    n : int
        Images to generate (the N of every generated figure).
    data_dir : path-like, optional
        Where the dataset's IDX files are.
    dataset : {"mnist", "fashion-mnist"}, optional
        Default: the dataset the checkpoint was trained on (its metadata), else MNIST.
    split : {"train", "test"}, optional
        Compare against this whole split instead of the classifier's held-out images.
    seed : int
        Seed of the latent vectors (the same seed gives the same images).
    device : {"cpu", "gpu"}
        Where the generator runs.
    download : bool
        Allow downloading missing dataset files.
    classifier_cache : path-like, optional
        Folder for the cached classifier (see :func:`tinygan.quality.classifier.cache.cache_path`).
    classifier_settings : ClassifierSettings, optional
        A classifier recipe of your own (trained on first use, then cached). Default: the shipped
        classifier, or a cached one trained on more images (:func:`choose_classifier`).
    batch_size : int
        Images per forward pass of the generator and the classifier.
    verbose : bool
        Print the table.

    Returns
    -------
    dict
        ``checkpoint``, ``preset``, ``run_seed``, ``sample_seed``, ``dataset``, ``reference`` (which
        real images), ``classifier`` (its ``info``), ``generated`` and ``real`` (the score dicts of
        :meth:`QualityEvaluator.score` and :meth:`QualityEvaluator.calibration`) and ``seconds``.

    Raises
    ------
    NonFiniteCheckpointError
        The checkpoint holds a NaN or an infinity (see :func:`tinygan.run.sampling.load_generator`).
    ValueError
        The checkpoint is of a preset that makes 2-D points or Stacked MNIST images.
    NoRoomError
        The features of ``n`` images would not fit in this machine's memory; checked before any
        image is generated (the images themselves are scored a batch at a time, never all kept).
    """
    start = time.perf_counter()
    generator, preset, metadata = load_generator(path, device)
    if preset.stacked:  # the classifier reads one digit, not three
        raise ValueError(
            f"{path}: preset {preset.name} makes Stacked MNIST images, which are scored by their "
            "modes: its run folder holds them (modes.csv)"
        )
    dataset = dataset or metadata.get("dataset", "mnist")
    classifier, data = _quality_classifier(
        dataset, data_dir, download, classifier_cache, classifier_settings, verbose
    )
    reference, reference_labels, description = labelled_reference(data, split, data_dir, download)
    evaluator = QualityEvaluator(
        classifier, reference, batch_size=batch_size, reference_labels=reference_labels
    )
    check_memory(n * evaluator.bytes_per_image, f"the classifier features of {n} images")
    # a conditional generator is asked for every class in turn, as many images of each
    labels = None if preset.classes is None else spread_labels(n, preset.classes)
    batches = generate_batches(
        generator, preset, n, seed, device=device, batch_size=batch_size, labels=labels
    )
    result = {
        "checkpoint": str(path),
        "preset": preset.name,
        "run_seed": metadata.get("seed"),
        "sample_seed": seed,
        "dataset": dataset,
        "reference": description,
        "classifier": classifier.info,
        "generated": evaluator.score_batches((images for images, _ in batches), labels),
        "real": evaluator.calibration(),
    }
    result["seconds"] = round(time.perf_counter() - start, 1)
    if verbose:
        print(format_report(result))
    return result


def _quality_classifier(
    dataset: str,
    data_dir: str | os.PathLike | None = None,
    download: bool = False,
    cache: str | os.PathLike | None = None,
    settings: ClassifierSettings | None = None,
    verbose: bool = True,
) -> tuple[Classifier, ClassifierData]:
    """The classifier that judges ``dataset``'s images, and its data (held-out images included).

    Without ``settings``: the shipped classifier, or a cached one trained on more images
    (:func:`~tinygan.quality.classifier.choose_classifier`). With them: a recipe of the caller's
    own, trained on first use, then cached in ``cache``.
    """
    if settings is None:
        chosen = choose_classifier(dataset, data_dir, cache, verbose=verbose)
        return chosen.classifier, chosen.data
    data = classifier_data(dataset, data_dir, download)
    return load_classifier(data, settings, cache, verbose=verbose), data


def format_report(result: dict[str, Any]) -> str:
    """The header lines and table of an :func:`evaluate_checkpoint` result."""
    info = result["classifier"]
    return "\n".join(
        [
            f"checkpoint {result['checkpoint']} (preset {result['preset']}, run seed "
            f"{result['run_seed']}), {result['generated']['n']} samples from seed "
            f"{result['sample_seed']}",
            f"classifier: {100 * info['heldout_accuracy']:.2f}% held-out accuracy; "
            f"{info['description']}",
            f"reference: {result['reference']}; real column = one half of it against the other",
            format_table(result["generated"], result["real"]),
            *per_class_lines(result["generated"], result["real"]),
        ]
    )


def per_class_lines(generated: dict[str, Any], real: dict[str, Any]) -> list[str]:
    """A conditional generator's class accuracy class by class (and the classifier's on real
    images, when known), for :func:`format_report`; none for an unconditional one."""
    if "class_accuracies" not in generated:
        return []

    def line(accuracies: list[float]) -> str:
        return "  ".join(f"{k}: {100 * a:.1f}%" for k, a in enumerate(accuracies))

    lines = [
        "class accuracy by asked-for class:",
        f"  generated  {line(generated['class_accuracies'])}",
    ]
    if "class_accuracies" in real:
        lines.append(f"  real       {line(real['class_accuracies'])}")
    return lines


class QualityCallback(Periodic):
    """Measure the quality of fresh samples every ``every`` steps: one row of scores each time,
    handed to the ``listeners`` and appended to ``<out>/quality.csv``.

    Parameters
    ----------
    every : int
        Interval, in ``unit``; the end of training is always measured too.
    evaluator : QualityEvaluator
        Classifier and real reference (build it once: embedding the reference takes seconds).
    preset : Preset
        The run's preset (latent size, noise, output range).
    n : int
        Samples per measurement: fewer than :func:`evaluate_checkpoint`'s 10,000 to keep training
        fast; the CSV records N in every row.
    seed : int
        Seed of the latent vectors: the same vectors at every measurement, so rows are comparable.
    unit : {"step", "epoch"}
    filename : str
    listeners : sequence of RowListener
        What else is done with each row, in this order, before it is recorded: a run keeps the best
        generator (:class:`tinygan.run.best.KeepBest`), then raises the collapse alarms
        (:class:`tinygan.run.alarms.CollapseAlarm`, which fills the ``warning`` column).

    Notes
    -----
    Each row holds ``step``, ``epoch``, ``n``, the :data:`METRICS` for the samples, the same
    metrics for real images (``real_fid`` ...; constant, from :meth:`QualityEvaluator.calibration`)
    so that the file reads on its own, and ``warning`` (see
    :data:`tinygan.run.records.QUALITY_COLUMNS`). A resumed run appends to the existing file, and
    its listeners start from the rows recorded up to the step it resumes from. The samples come
    from the generator's moving average when the run keeps one (``--ema``).

    A conditional preset's samples are made for every class in turn (:func:`spread_labels`), and
    its rows add ``class_accuracy``, the share of samples the classifier puts in the class asked
    for (mean over the classes), and ``real_class_accuracy``, the classifier's own on real images
    (:func:`tinygan.run.records.quality_columns`).
    """

    def __init__(
        self,
        every: int,
        evaluator: QualityEvaluator,
        preset: Preset,
        n: int = 2000,
        seed: int = 0,
        unit: str = "step",
        filename: str = QUALITY_CSV,
        listeners: Sequence[RowListener] = (),
    ) -> None:
        super().__init__(every, unit)
        if n < 2:
            raise ValueError(f"n must be at least 2, got {n}")
        self.evaluator, self.preset = evaluator, preset
        self.n, self.seed, self.filename = int(n), int(seed), filename
        self.listeners = list(listeners)
        self.rows: list[dict[str, Any]] = []

    def path(self, trainer: TrainerView) -> Path:
        return Path(trainer.out_dir) / self.filename

    def on_train_begin(self, trainer: TrainerView) -> None:
        earlier = read_quality_rows(self.path(trainer), trainer.step)
        for listener in self.listeners:
            listener.on_start(trainer, earlier)

    def act(self, trainer: TrainerView) -> None:
        self.measure(trainer)

    def on_train_end(self, trainer: TrainerView) -> None:
        if trainer.step and (not self.rows or self.rows[-1]["step"] != trainer.step):
            self.measure(trainer)

    def score(self, trainer: TrainerView) -> dict[str, Any]:
        """The row of ``n`` samples of the generator as it is now (listeners add to it)."""
        classes = self.preset.classes  # a conditional generator makes every class in turn
        labels = None if classes is None else spread_labels(self.n, classes)
        with averaged_generator(trainer.gan) as generator:
            images, _ = generate(
                generator, self.preset, self.n, self.seed, device=trainer.device, labels=labels
            )
        if labels is None:
            scores, keys = self.evaluator.score(images), METRICS
        else:
            scores, keys = self.evaluator.score(images, labels), (*METRICS, CLASS_ACCURACY)
        real = self.evaluator.calibration()
        row = {"step": trainer.step, "epoch": trainer.epoch, "n": scores["n"]}
        row |= {key: scores[key] for key in keys}
        row |= {f"real_{key}": real[key] for key in keys if key in real}
        return row

    def measure(self, trainer: TrainerView) -> dict[str, Any]:
        """Score the generator, hand the row to the listeners, record it, and return it."""
        row = self.score(trainer)
        for listener in self.listeners:
            listener.on_row(trainer, row)
        append_quality_row(self.path(trainer), row)
        self.rows.append(row)
        return row
