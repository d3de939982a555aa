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
=====================  ================================================================  ============

Every figure depends on the classifier and on the sample counts, so none is printed alone:
:meth:`QualityEvaluator.calibration` scores real images the same way (one half of the reference
against the other half), and reports put that beside the model's figures. A generator is as good as
real data on a metric when it matches the real column, not when it reaches 0 or 10.

:func:`evaluate_checkpoint` (the ``tinygan eval`` command) rebuilds a checkpoint's generator, draws N
images and prints the table; :class:`QualityCallback` logs the same numbers to ``<out>/quality.csv``
while a run trains.
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from tinygan.atomic import appending
from tinygan.backend import to_device, to_numpy
from tinygan.data import load_mnist
from tinygan.data.mnist import DISPLAY_NAMES
from tinygan.ema import averaged_generator
from tinygan.models import Preset
from tinygan.quality.classifier.cache import load_classifier
from tinygan.quality.classifier.choice import choose_classifier
from tinygan.quality.classifier.data_split import ClassifierData, classifier_data
from tinygan.quality.classifier.network import Classifier
from tinygan.quality.classifier.training import ClassifierSettings
from tinygan.quality.metrics.coverage import mode_coverage
from tinygan.quality.metrics.fid import (
    feature_frechet_distance,
    frechet_distance,
    gaussian_statistics,
)
from tinygan.quality.metrics.inception_score import inception_score
from tinygan.quality.metrics.precision_recall import precision_recall
from tinygan.run.alarms import CollapseWatch, fired_kinds, give_warning
from tinygan.run.checkpoint import (
    BEST_NAME,
    best_checkpoint_info,
    capture_state,
    non_finite_entry,
    write_checkpoint,
)
from tinygan.run.sampling import check_memory, generate, generate_batches, load_generator
from tinygan.run.train import Callback, Periodic, SampleGrid, Trainer
from tinygan.viz import save_image_grid

METRICS = ("fid", "inception_score", "classes_hit", "class_kl", "precision", "recall")


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
    ) -> None:
        self.classifier, self.k, self.batch_size = classifier, int(k), int(batch_size)
        features, probabilities = classifier.embed(reference_images, self.batch_size)
        order = np.random.default_rng(seed).permutation(len(features))
        self.reference_features = features[order]
        self.reference_probabilities = probabilities[order]
        self.reference_statistics = gaussian_statistics(self.reference_features)
        self._calibration: dict[str, Any] | None = None

    @property
    def num_classes(self) -> int:
        return self.reference_probabilities.shape[1]

    def score(self, images: Any) -> dict[str, Any]:
        """All metrics of ``images`` (N, 28, 28), uint8 or [0, 1] floats, against the reference.

        Returns
        -------
        dict
            The :data:`METRICS`, plus ``n`` (images scored), ``reference_n`` (reference size, the
            other side of the FID), ``pr_n`` (images per side in precision / recall: the first
            ``min(n, reference_n)`` of each, equal sizes as the method asks), ``k`` and
            ``num_classes``.
        """
        return self.score_batches([images])

    def score_batches(self, batches: Iterable[Any]) -> dict[str, Any]:
        """:meth:`score` of the images of several batches together, embedded one batch at a time.

        Only the classifier's features and probabilities are kept, never the images: with
        :func:`tinygan.run.sampling.generate_batches` the memory grows by ``bytes_per_image`` per image.
        """
        embedded = [self.classifier.embed(images, self.batch_size) for images in batches]
        features = np.concatenate([f for f, _ in embedded])
        probabilities = np.concatenate([p for _, p in embedded])
        del embedded  # the pieces, before the covariance makes its centred copy
        fid = frechet_distance(*gaussian_statistics(features), *self.reference_statistics)
        return self._score(features, probabilities, self.reference_features, fid)

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
            self._calibration = self._score(first, self.reference_probabilities[:half], second, fid)
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
    name = DISPLAY_NAMES[data.dataset]
    if split is None:
        images = data.heldout_images
        return images, f"{len(images)} held-out {name} images the classifier never saw"
    images, _ = load_mnist(split, data_dir, data.dataset, download=download)
    description = f"all {len(images)} {name} {split} images"
    if split == data.train_split:
        description += " (the classifier trained on some of them)"
    return images, description


def _figure(key: str, scores: dict[str, Any]) -> str:
    value = scores[key]
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
}


def format_table(generated: dict[str, Any], real: dict[str, Any]) -> str:
    """A plain-text table: each metric for the generated images beside the real calibration."""
    rows = [("metric", f"generated (N={generated['n']})", f"real, calibration (N={real['n']})")]
    rows += [(_LABELS[key], _figure(key, generated), _figure(key, real)) for key in METRICS]
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
        classifier, or a cached one trained on more images
        (:func:`tinygan.quality.classifier.choose_classifier`).
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
    NoRoomError
        The features of ``n`` images would not fit in this machine's memory; checked before any
        image is generated (the images themselves are scored a batch at a time, never all kept).
    """
    start = time.perf_counter()
    generator, preset, metadata = load_generator(path, device)
    dataset = dataset or metadata.get("dataset", "mnist")
    if classifier_settings is None:
        chosen = choose_classifier(dataset, data_dir, classifier_cache, verbose=verbose)
        classifier, data = chosen.classifier, chosen.data
    else:  # a recipe of the caller's own: trained on first use, then cached
        data = classifier_data(dataset, data_dir, download)
        classifier = load_classifier(data, classifier_settings, classifier_cache, verbose=verbose)
    reference, description = reference_images(data, split, data_dir, download)
    evaluator = QualityEvaluator(classifier, reference, batch_size=batch_size)
    check_memory(n * evaluator.bytes_per_image, f"the classifier features of {n} images")
    batches = generate_batches(generator, preset, n, seed, device=device, batch_size=batch_size)
    result = {
        "checkpoint": str(path),
        "preset": preset.name,
        "run_seed": metadata.get("seed"),
        "sample_seed": seed,
        "dataset": dataset,
        "reference": description,
        "classifier": classifier.info,
        "generated": evaluator.score_batches(images for images, _ in batches),
        "real": evaluator.calibration(),
    }
    result["seconds"] = round(time.perf_counter() - start, 1)
    if verbose:
        print(format_report(result))
    return result


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
        ]
    )


class QualityCallback(Periodic):
    """Append the quality metrics of fresh samples to ``<out>/quality.csv`` every ``every`` steps.

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
    best_folder : str, optional
        Keep the generator with the lowest FID so far as ``<out>/<best_folder>/best.npz`` (a whole
        checkpoint; its metadata's ``best`` holds the step and the scores). None: do not keep it.
    metadata : dict, optional
        The run's checkpoint metadata, stored in ``best.npz`` too (so it loads like any checkpoint).
    watch : CollapseWatch, optional
        Decides when coverage or recall has collapsed (default: 8 classes, half the best recall).

    Notes
    -----
    Each row holds ``step``, ``epoch``, ``n``, the :data:`METRICS` for the samples, the same
    metrics for real images (``real_fid`` ...; constant, from :meth:`QualityEvaluator.calibration`)
    so that the file reads on its own, and ``warning``: the kinds of collapse alarm this row set off
    (:mod:`tinygan.run.alarms`), usually empty. A resumed run appends to the existing file. The samples
    come from the generator's moving average when the run keeps one (``--ema``).
    """

    def __init__(
        self,
        every: int,
        evaluator: QualityEvaluator,
        preset: Preset,
        n: int = 2000,
        seed: int = 0,
        unit: str = "step",
        filename: str = "quality.csv",
        best_folder: str | None = "checkpoints",
        metadata: dict[str, Any] | None = None,
        watch: CollapseWatch | None = None,
    ) -> None:
        super().__init__(every, unit)
        if n < 2:
            raise ValueError(f"n must be at least 2, got {n}")
        self.evaluator, self.preset = evaluator, preset
        self.n, self.seed, self.filename = int(n), int(seed), filename
        self.best_folder, self.metadata = best_folder, metadata or {}
        self.watch = watch or CollapseWatch()
        self.rows: list[dict[str, Any]] = []
        self.best: dict[str, Any] | None = None  # step and scores of the best generator so far

    def best_path(self, trainer: Trainer) -> Path | None:
        if self.best_folder is None:
            return None
        return Path(trainer.out_dir) / self.best_folder / BEST_NAME

    def on_train_begin(self, trainer: Trainer) -> None:
        # a resumed run carries on with the best FID and the alarm state of the run so far, so it
        # neither overwrites a better best.npz nor repeats a warning
        if self.best_folder is not None:
            self.best = best_checkpoint_info(Path(trainer.out_dir) / self.best_folder)
        path = Path(trainer.out_dir) / self.filename
        if path.is_file():
            with open(path, newline="") as file:
                for row in csv.DictReader(file):
                    if row.get("step", "").isdigit() and int(row["step"]) <= trainer.step:
                        self.watch.observe(row)
        self.watch.fired |= fired_kinds(Path(trainer.out_dir), trainer.step)

    def act(self, trainer: Trainer) -> None:
        self.measure(trainer)

    def on_train_end(self, trainer: Trainer) -> None:
        if trainer.step and (not self.rows or self.rows[-1]["step"] != trainer.step):
            self.measure(trainer)

    def keep_if_best(self, trainer: Trainer, scores: dict[str, Any]) -> bool:
        """Write ``best.npz`` when ``scores`` has a lower FID than the best so far; whether it did."""
        path, fid = self.best_path(trainer), float(scores["fid"])
        if path is None or not np.isfinite(fid):
            return False
        if self.best is not None and not fid < float(self.best["fid"]):
            return False
        best = {"step": trainer.step, "epoch": trainer.epoch, "n": scores["n"]}
        best |= {key: float(scores[key]) for key in METRICS}
        archive = capture_state(trainer.gan, trainer, {**self.metadata, "best": best})
        if non_finite_entry(archive) is not None:  # never keep a broken state, however it scores
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        write_checkpoint(path, archive)
        self.best = best
        return True

    def measure(self, trainer: Trainer) -> dict[str, Any]:
        """Score ``n`` samples of the generator as it is now; append and return the row."""
        with averaged_generator(trainer.gan) as generator:
            images, _ = generate(generator, self.preset, self.n, self.seed, device=trainer.device)
        scores, real = self.evaluator.score(images), self.evaluator.calibration()
        row = {"step": trainer.step, "epoch": trainer.epoch, "n": scores["n"]}
        row |= {key: scores[key] for key in METRICS}
        row |= {f"real_{key}": real[key] for key in METRICS}
        self.keep_if_best(trainer, scores)
        alarms = self.watch.check(row)
        for kind, message in alarms:
            give_warning(trainer, kind, message)
        row["warning"] = " ".join(kind for kind, _ in alarms)
        path = Path(trainer.out_dir) / self.filename
        new_file = not path.is_file()
        fieldnames = list(row)
        if not new_file:  # append under the file's own header (an older file has no warning column)
            with open(path, newline="") as file:
                fieldnames = next(csv.reader(file), None) or fieldnames
        path.parent.mkdir(parents=True, exist_ok=True)
        with appending(path) as file:
            writer = csv.DictWriter(file, fieldnames=fieldnames, extrasaction="ignore")
            if new_file:
                writer.writeheader()
            writer.writerow(row)
        self.rows.append(row)
        return row

    def summary(self) -> str | None:
        """One line on the best generator kept, or None."""
        if self.best is None:
            return None
        best = self.best
        return (
            f"best generator: step {best['step']}, FID {best['fid']:.2f}, IS "
            f"{best['inception_score']:.2f}, {best['classes_hit']:g} classes, precision "
            f"{best['precision']:.3f}, recall {best['recall']:.3f}"
        )


class BestGrid(Callback):
    """At the end of a run, draw the best generator kept as ``<out>/samples/best.png``.

    It uses the run's own fixed noise (that of ``grid``), so ``best.png`` compares with every frame
    of ``samples/``; it is drawn whenever ``checkpoints/best.npz`` exists, also when a resumed run
    found no better generator.

    Parameters
    ----------
    grid : SampleGrid
        The run's sample frames: their noise, layout, image shape and value range.
    quality : QualityCallback
        Knows where the best checkpoint is (it runs first, so a last measurement counts).
    """

    def __init__(self, grid: SampleGrid, quality: QualityCallback) -> None:
        self.grid, self.quality = grid, quality
        self.path: Path | None = None  # the PNG, once written

    def on_train_end(self, trainer: Trainer) -> None:
        best = self.quality.best_path(trainer)
        if best is None or not best.is_file() or self.grid.noise is None:
            return
        generator, _, _ = load_generator(best, trainer.device)
        images = to_numpy(generator(to_device(self.grid.noise, trainer.device)))
        self.path = trainer.out_dir / self.grid.folder / "best.png"
        save_image_grid(
            images.reshape(-1, *self.grid.image_shape),
            self.path,
            self.grid.rows,
            self.grid.cols,
            value_range=self.grid.value_range,
        )
