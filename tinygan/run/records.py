"""The tables a run writes into its folder: each format is defined here, and only here.

=================  ======================================================  =========================
file               one row per                                             written by
=================  ======================================================  =========================
``log.csv``        logging window: ``step, epoch`` and the window means    :class:`~tinygan.run.
                   of :data:`STAT_NAMES`                                   train.Trainer`
``quality.csv``    quality measurement: :data:`QUALITY_COLUMNS`            :class:`~tinygan.quality.
                                                                           evaluate.QualityCallback`
``warnings.csv``   warning given: ``step, kind, message``                  :mod:`tinygan.run.alarms`
``modes.csv``      mode count of a 2-D mixture or Stacked MNIST run:       :class:`~tinygan.run.
                   :data:`MODES_COLUMNS`                                   mixture_run.ModeMeasures`
=================  ======================================================  =========================

Whoever reads one back (the loss curves, the alarms of a resumed run, plots, benchmark tables) goes
through the functions here, so a column is named in one place. The four tables live in one module
because they share their mechanics: rows are appended a line at a time as the run goes
(:func:`tinygan.atomic.appending`, which names the file when a write fails); a resumed run reads or
keeps only the rows up to the step it resumes from, since a run that was killed may have written
further than its last checkpoint; and a line that does not parse (the last one of a run killed
while writing it) is left out when reading.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from tinygan.atomic import appending, naming_failures, write_atomically

LOG_CSV = "log.csv"
#: The per-step statistics of :class:`tinygan.gan.StepStats` that ``log.csv`` averages per window.
STAT_NAMES = ("d_loss", "g_loss", "d_real", "d_fake")
LOG_COLUMNS = ("step", "epoch", *STAT_NAMES)

QUALITY_CSV = "quality.csv"
#: The metrics of a quality row (what :class:`tinygan.quality.evaluate.QualityEvaluator` reports).
QUALITY_METRICS = ("fid", "inception_score", "classes_hit", "class_kl", "precision", "recall")
#: A quality row: when, how many samples, their metrics, the same metrics for real images
#: (``real_fid`` ...: constant over a run, so that the file reads on its own), and the kinds of
#: alarm the row set off (usually none).
#: A conditional run's quality rows add this metric (the share of samples the classifier puts in
#: the class they were made for, mean over the classes) after the others, for the samples and for
#: real images (:func:`quality_columns`).
CLASS_ACCURACY = "class_accuracy"


def quality_columns(conditional: bool = False) -> tuple[str, ...]:
    """The columns of a quality row: :data:`QUALITY_COLUMNS`, or a conditional run's, which add
    :data:`CLASS_ACCURACY` and ``real_class_accuracy`` after the other metrics of each side."""
    metrics = (*QUALITY_METRICS, CLASS_ACCURACY) if conditional else QUALITY_METRICS
    return ("step", "epoch", "n", *metrics, *(f"real_{key}" for key in metrics), "warning")


QUALITY_COLUMNS = quality_columns()

WARNINGS_CSV = "warnings.csv"
WARNINGS_COLUMNS = ("step", "kind", "message")

MODES_CSV = "modes.csv"
#: ``modes`` (modes with at least one high-quality sample), ``high_quality`` (their share of the
#: samples, 0 to 1) and ``reverse_kl`` (nats; ``nan`` when no sample is of high quality). A
#: Stacked MNIST run has no high-quality share (the classifier gives every sample a mode): its
#: ``high_quality`` is blank, and read back as None.
MODES_COLUMNS = ("step", "epoch", "modes", "high_quality", "reverse_kl")


def _is_int(text: str | None) -> bool:
    return text is not None and text.strip().lstrip("-").isdigit()


def _number(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value


def _dict_rows(path: Path, up_to_step: int | None = None) -> list[dict[str, str]]:
    """The rows of a table with a header, as text, whose ``step`` is at most ``up_to_step``."""
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [
        row
        for row in rows
        if _is_int(row.get("step")) and (up_to_step is None or int(row["step"]) <= up_to_step)
    ]


# ------------------------------------------------------------------------------------------------
# log.csv
# ------------------------------------------------------------------------------------------------


def trim_log(path: str | Path, step: int) -> None:
    """Make ``log.csv`` hold exactly the windows up to ``step``, under its header.

    A resumed run continues from its checkpoint's step, and the rows a killed or diverged run
    logged after that step would otherwise be repeated; a fresh run (step 0) starts with just the
    header.
    """
    path, rows = Path(path), []
    if path.exists():
        with path.open(newline="") as handle:
            rows = list(csv.reader(handle))[1:]
        rows = [row for row in rows if row and _is_int(row[0]) and int(row[0]) <= step]
    with naming_failures(path), path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(LOG_COLUMNS)
        writer.writerows(rows)


def append_log_row(path: str | Path, step: int, epoch: int, means: Any) -> None:
    """Add one window: its last step, the epoch and the means of :data:`STAT_NAMES`."""
    with appending(path) as handle:
        csv.writer(handle).writerow([_number(v) for v in (step, epoch, *map(float, means))])


def read_log_rows(path: str | Path, up_to_step: int | None = None) -> list[dict[str, str]]:
    """The windows of a ``log.csv`` (values as text) up to ``up_to_step``; none without a file."""
    return _dict_rows(Path(path), up_to_step)


# ------------------------------------------------------------------------------------------------
# quality.csv
# ------------------------------------------------------------------------------------------------


def append_quality_row(path: str | Path, row: dict[str, Any]) -> None:
    """Add a row of :data:`QUALITY_COLUMNS` (a missing ``warning`` is empty), creating the file;
    a row with a :data:`CLASS_ACCURACY` has a conditional run's columns (:func:`quality_columns`).

    An existing file keeps its own header (an older one has no ``warning`` column): the row is
    written under it.
    """
    path = Path(path)
    new_file = not path.is_file()
    columns = list(quality_columns(CLASS_ACCURACY in row))
    if not new_file:
        with path.open(newline="") as handle:
            columns = next(csv.reader(handle), None) or columns
    path.parent.mkdir(parents=True, exist_ok=True)
    with appending(path) as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, restval="", extrasaction="ignore")
        if new_file:
            writer.writeheader()
        writer.writerow(row)


def read_quality_rows(path: str | Path, up_to_step: int | None = None) -> list[dict[str, str]]:
    """The rows of a ``quality.csv`` (values as text) up to ``up_to_step``; none without a file."""
    return _dict_rows(Path(path), up_to_step)


def read_fid(path: str | Path, up_to_step: int) -> tuple[list[int], list[float]] | None:
    """The steps and FIDs of the measurements of a ``quality.csv`` up to ``up_to_step``, or None
    when there is none."""
    rows = [row for row in read_quality_rows(path, up_to_step) if row.get("fid")]
    if not rows:
        return None
    return [int(row["step"]) for row in rows], [float(row["fid"]) for row in rows]


# ------------------------------------------------------------------------------------------------
# warnings.csv
# ------------------------------------------------------------------------------------------------


def append_warning(path: str | Path, step: int, kind: str, message: str) -> None:
    """Add one warning to ``warnings.csv``, creating it (and its folder) when needed."""
    path = Path(path)
    new_file = not path.is_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with appending(path) as handle:
        writer = csv.writer(handle)
        if new_file:
            writer.writerow(WARNINGS_COLUMNS)
        writer.writerow([step, kind, message])


def warning_kinds(path: str | Path, up_to_step: int) -> set[str]:
    """The kinds of warning a ``warnings.csv`` records up to ``up_to_step``; none without a file."""
    return {row["kind"] for row in _dict_rows(Path(path), up_to_step)}


# ------------------------------------------------------------------------------------------------
# modes.csv
# ------------------------------------------------------------------------------------------------


def read_modes_csv(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a ``modes.csv``, oldest first: ``step``, ``epoch`` and ``modes`` as ints,
    ``high_quality`` (None where blank) and ``reverse_kl`` as floats.

    A line that does not parse (the last one of a run killed while writing it) is left out.
    """
    rows = []
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            try:
                rows.append(
                    {
                        "step": int(row["step"]),
                        "epoch": int(row["epoch"]),
                        "modes": int(row["modes"]),
                        "high_quality": float(row["high_quality"]) if row["high_quality"] else None,
                        "reverse_kl": float(row["reverse_kl"]),
                    }
                )
            except (KeyError, TypeError, ValueError):
                continue
    return rows


def _modes_line(row: dict[str, Any]) -> str:
    text = io.StringIO()
    csv.writer(text).writerow([_number(row[column]) for column in MODES_COLUMNS])
    return text.getvalue()


def trim_modes(path: str | Path, step: int) -> list[dict[str, Any]]:
    """Rewrite ``modes.csv`` (atomically) with only its rows up to ``step``, and return them; a
    fresh file holds just the header."""
    path = Path(path)
    rows = [row for row in read_modes_csv(path) if row["step"] <= step] if path.is_file() else []
    text = ",".join(MODES_COLUMNS) + "\n" + "".join(_modes_line(row) for row in rows)
    write_atomically(path, lambda file: file.write(text.encode()))
    return rows


def append_modes_row(path: str | Path, row: dict[str, Any]) -> None:
    """Add one measurement (a dict of :data:`MODES_COLUMNS`) to ``modes.csv``."""
    with appending(path) as handle:
        handle.write(_modes_line(row))
