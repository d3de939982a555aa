"""Save and resume a training run in one ``.npz`` file.

A checkpoint holds everything that decides what the next step computes: both networks' parameters and
buffers, both optimizers' state, every random generator's state (the noise generator, Dropout layers'
generators, the data shuffler), the step count and the logged loss history, plus a little JSON metadata
(preset, seed, flags). Resuming from it continues the run exactly: N steps straight and N/2 + resume +
N/2 give identical parameters, on the CPU and on a device (whose generators are saved through
:func:`tinygan.backend.rng_state`, see :class:`tinygan.backend.DeviceGenerator`).

Every array is saved as a host (NumPy) copy, so a checkpoint written on one device loads on any other:
parameters and optimizer state are copied onto the device of the networks they are loaded into. A
random generator of the other side of the CPU/device divide cannot continue the same stream there; it
is replaced by one seeded from the saved state (:func:`tinygan.backend.restore_rng`).

What protects the work of a long run:

* **Atomic files.** The archive goes to a temporary file in the same folder, is flushed to disk, and
  only then renamed over the target, so a crash (even ``kill -9``) mid-save leaves the previous
  checkpoints intact.
* **A schedule by steps, epochs and wall time**, so a killed run loses at most one interval (a minute
  by default in the examples), and **rotation**: only the newest few files are kept.
* **Finite weights only.** A state with a NaN or an infinity is never written. The :class:`Checkpoint`
  callback also keeps the last state known to be good *in memory* (refreshed at every logging window,
  where the losses are read back anyway); when training diverges, or stops in the middle of a step, the
  run is rolled back to it before the final files are written.
* **Careful reading.** :func:`read_checkpoint` names the file and the problem in one line for a
  truncated, foreign or non-tinygan file, and :func:`find_resumable` skips damaged or non-finite files
  to resume from the newest good one. :func:`load_for_inference`, through which sampling, evaluation
  and export load their network, refuses a file holding a NaN or an infinity, naming the array.
"""

from __future__ import annotations

import json
import os
import re
import time
import zipfile
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from tinygan.atomic import write_atomically
from tinygan.backend import restore_rng, rng_state, to_numpy
from tinygan.gan import GAN
from tinygan.models import Preset, get_preset
from tinygan.nn.layer import Layer
from tinygan.nn.spectral_norm import spectrally_normalized
from tinygan.run.callbacks import NonFiniteLossError, Periodic, TrainerView

CHECKPOINT_PATTERN = re.compile(r"step_(\d+)\.npz$")
#: The generator with the lowest FID so far, beside the rotating ``step_*.npz`` files (never pruned,
#: never picked by ``--resume``: it may be older than the newest state).
BEST_NAME = "best.npz"
#: Prefix of the generator's moving average (``--ema``) in a checkpoint; absent in older files.
EMA_PREFIX = "G_ema"
#: Sections every training checkpoint has (sampling needs only ``G.`` and the metadata).
REQUIRED_PREFIXES = ("G.", "D.", "g_opt.", "d_opt.")
#: What :func:`load_for_inference` can rebuild.
NETWORKS = ("generator", "discriminator")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message names the file and the problem."""


class NonFiniteCheckpointError(CheckpointError):
    """A checkpoint with a NaN or an infinity in one of its arrays.

    tinygan never writes one, so such a file was damaged or edited. Networks loaded from it would
    compute NaN images and logits without complaint: sampling, evaluation and export refuse it.
    """


def _flatten(prefix: str, state: dict[str, Any]) -> dict[str, np.ndarray]:
    return {f"{prefix}.{key}": np.asarray(to_numpy(value)) for key, value in state.items()}


def _section(archive: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    start = prefix + "."
    return {key[len(start) :]: value for key, value in archive.items() if key.startswith(start)}


def _rng_owners(gan: GAN) -> dict[str, Any]:
    """Every object with a random generator that a step uses, by a stable name."""
    owners: dict[str, Any] = {"noise": gan}
    for network_name, network in (("G", gan.generator), ("D", gan.discriminator)):
        for path, layer in network.named_layers():
            if getattr(layer, "rng", None) is not None:
                owners[f"{network_name}.{path}"] = layer
    return owners


def capture_state(
    gan: GAN, trainer: TrainerView | None = None, metadata: dict[str, Any] | None = None
) -> dict[str, np.ndarray]:
    """The run's whole state as host (NumPy) arrays: what a checkpoint file holds.

    Parameters
    ----------
    gan : GAN
        Networks, optimizers and the noise generator.
    trainer : Trainer, optional
        Adds step, loss history and, when its batch iterator has ``state_dict``, the data order.
    metadata : dict, optional
        JSON-serialisable facts about the run (preset name, seed, flags).
    """
    archive: dict[str, np.ndarray] = {}
    archive |= _flatten("G", gan.generator.state_dict())
    archive |= _flatten("D", gan.discriminator.state_dict())
    archive |= _flatten("g_opt", gan.g_optimizer.state_dict())
    archive |= _flatten("d_opt", gan.d_optimizer.state_dict())
    if getattr(gan, "ema", None) is not None:
        archive |= _flatten(EMA_PREFIX, gan.ema.state_dict())
    for name, owner in _rng_owners(gan).items():
        archive[f"rng.{name}"] = np.asarray(json.dumps(rng_state(owner.rng)))
    if trainer is not None:
        archive |= _flatten("trainer", trainer.state_dict())
        if hasattr(trainer.batches, "state_dict"):
            archive |= _flatten("batches", trainer.batches.state_dict())
    archive["metadata"] = np.asarray(json.dumps(metadata or {}, default=str))
    return archive


def non_finite_entry(archive: dict[str, np.ndarray]) -> str | None:
    """The name of the first floating-point array holding a NaN or an infinity, or None."""
    for key, value in archive.items():
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            return key
    return None


def write_checkpoint(path: str | os.PathLike, archive: dict[str, np.ndarray]) -> Path:
    """Write an archive made by :func:`capture_state` to ``path``, atomically and durably."""
    write_atomically(path, lambda file: np.savez(file, **archive), durable=True)
    return Path(path)


def save_checkpoint(
    path: str | os.PathLike,
    gan: GAN,
    trainer: TrainerView | None = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write the run's state (:func:`capture_state`) to ``path`` atomically; returns the path.

    Raises
    ------
    ValueError
        A parameter, buffer or optimizer moment is NaN or infinite: such a state is never written.
    """
    archive = capture_state(gan, trainer, metadata)
    bad = non_finite_entry(archive)
    if bad is not None:
        raise ValueError(f"not saving {path}: {bad} is not finite")
    return write_checkpoint(path, archive)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def read_checkpoint(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All arrays of a tinygan checkpoint.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    CheckpointError
        The file is truncated or damaged, is not an ``.npz`` archive, or is an archive that tinygan
        did not write (no metadata); the one-line message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise CheckpointError(f"{path}: a single NumPy array, not a tinygan checkpoint")
        with loaded as archive:
            contents = {key: archive[key] for key in archive.files}
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError) as error:
        if path.stat().st_size == 0:
            problem = "the file is empty"
        elif zipfile.is_zipfile(path) or path.read_bytes()[:2] == b"PK":
            problem = f"truncated or damaged ({_one_line(error)})"
        else:
            problem = "not an .npz archive"
        raise CheckpointError(f"{path}: {problem}; not a readable tinygan checkpoint") from error
    if "metadata" not in contents:
        raise CheckpointError(
            f"{path}: an .npz archive without tinygan's metadata, not a checkpoint"
        )
    try:
        metadata = json.loads(str(contents["metadata"]))
    except ValueError as error:
        raise CheckpointError(f"{path}: its metadata is not valid JSON") from error
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{path}: its metadata is not a JSON object")
    if not any(key.startswith("G.") for key in contents):
        raise CheckpointError(f"{path}: holds no generator parameters, not a tinygan checkpoint")
    return contents


def checkpoint_metadata(archive: dict[str, np.ndarray]) -> dict[str, Any]:
    """The JSON metadata stored with a checkpoint."""
    return json.loads(str(archive["metadata"]))


def has_ema(archive: dict[str, np.ndarray]) -> bool:
    """Whether the checkpoint holds a moving average of the generator's weights (``--ema``)."""
    return any(key.startswith(EMA_PREFIX + ".") for key in archive)


def load_networks(
    archive: dict[str, np.ndarray],
    generator: Layer,
    discriminator: Layer | None = None,
    prefer_ema: bool = False,
) -> None:
    """Copy saved parameters and buffers into freshly built networks of the same architecture.

    With ``prefer_ema`` the generator gets the averaged weights when the checkpoint has them (what
    sampling and evaluation want), else G's own.
    """
    use_ema = prefer_ema and has_ema(archive)
    generator.load_state_dict(_section(archive, EMA_PREFIX if use_ema else "G"))
    if discriminator is not None:
        discriminator.load_state_dict(_section(archive, "D"))


def load_for_inference(
    path: str | os.PathLike, network: str = "generator", prefer_ema: bool = False
) -> tuple[Layer, Preset, dict[str, Any]]:
    """Rebuild the generator or discriminator saved in the checkpoint at ``path``, on the CPU.

    What sampling, evaluation and export all load through, so each refuses the same files.

    Parameters
    ----------
    path : path-like
        A checkpoint whose metadata names its preset.
    network : {"generator", "discriminator"}
    prefer_ema : bool
        Give the generator the moving average of its weights when the checkpoint has one.

    Returns
    -------
    network : Layer
    preset : Preset
    metadata : dict

    Raises
    ------
    FileNotFoundError, CheckpointError
        As :func:`read_checkpoint` does, and a ``CheckpointError`` when the checkpoint names no
        preset or holds no weights (or weights of other shapes) for the network asked for.
    NonFiniteCheckpointError
        An array of the checkpoint holds a NaN or an infinity; the message names the array.
    """
    if network not in NETWORKS:
        raise ValueError(f"network must be one of {NETWORKS}, got {network!r}")
    archive = read_checkpoint(path)
    _refuse_non_finite(path, archive)
    metadata = checkpoint_metadata(archive)
    preset = _trained_preset(path, metadata)
    if network == "discriminator" and not any(key.startswith("D.") for key in archive):
        raise CheckpointError(f"{path}: holds no discriminator parameters")
    # any initial weights: the saved ones are loaded below
    generator, discriminator = preset.networks(np.random.default_rng(0))
    if preset.spectral_norm:
        discriminator = spectrally_normalized(discriminator)
    try:
        if network == "generator":
            load_networks(archive, generator, prefer_ema=prefer_ema)
        else:
            discriminator.load_state_dict(_section(archive, "D"))
    except (KeyError, ValueError) as error:
        message = _one_line(error).strip("\"'")  # a KeyError's text comes quoted
        raise CheckpointError(f"{path}: does not fit preset {preset.name}: {message}") from None
    return (generator if network == "generator" else discriminator), preset, metadata


def _refuse_non_finite(path: str | os.PathLike, archive: dict[str, np.ndarray]) -> None:
    """Raise :class:`NonFiniteCheckpointError` naming the first array holding a NaN or an inf."""
    bad = non_finite_entry(archive)
    if bad is None:
        return
    values = archive[bad]
    counts = (("NaN", np.isnan(values).sum()), ("infinite", np.isinf(values).sum()))
    found = ", ".join(f"{count} {kind}" for kind, count in counts if count)
    raise NonFiniteCheckpointError(
        f"{path}: array {bad} is not finite ({found} of {values.size} values); "
        "networks loaded from it would compute NaN"
    )


def _trained_preset(path: str | os.PathLike, metadata: dict[str, Any]) -> Preset:
    """The preset a checkpoint's run trained, with the packing, conditioning, spectral norm and
    minibatch standard deviation it used."""
    if "preset" not in metadata:
        raise CheckpointError(f"{path} does not say which preset it belongs to; cannot rebuild it")
    # the run's packing (runs from before --pack had none) shapes the discriminator's first layer
    settings = metadata.get("settings", {})
    pack = int(settings.get("pack") or 1)
    spectral = bool(settings.get("spectral_norm"))  # D's layers as the run trained them
    conditional = bool(settings.get("conditional"))  # both first layers take the class's code
    spread = bool(settings.get("minibatch_std"))  # D's last Dense takes one more feature
    preset = get_preset(metadata["preset"])
    return replace(
        preset, pack=pack, spectral_norm=spectral, conditional=conditional, minibatch_std=spread
    )


def apply_state(
    archive: dict[str, np.ndarray], gan: GAN, trainer: TrainerView | None = None
) -> None:
    """Load an archive made by :func:`capture_state` into ``gan`` (and ``trainer``), in place."""
    missing = [prefix for prefix in REQUIRED_PREFIXES if not _section(archive, prefix[:-1])]
    if missing:
        raise KeyError(f"the checkpoint has no {', '.join(p[:-1] for p in missing)} section")
    load_networks(archive, gan.generator, gan.discriminator)
    gan.g_optimizer.load_state_dict(_section(archive, "g_opt"))
    gan.d_optimizer.load_state_dict(_section(archive, "d_opt"))
    if getattr(gan, "ema", None) is not None:
        if has_ema(archive):
            gan.ema.load_state_dict(_section(archive, EMA_PREFIX))
        else:  # a run that turns --ema on at a resume starts the average from the loaded G
            gan.ema.reset(gan.generator)
    for name, owner in _rng_owners(gan).items():
        key = f"rng.{name}"
        if key not in archive:
            raise KeyError(f"the checkpoint has no random state for {name}")
        owner.rng = restore_rng(owner.rng, json.loads(str(archive[key])))
    if trainer is not None:
        trainer.load_state_dict(_section(archive, "trainer"))
        if hasattr(trainer.batches, "load_state_dict"):
            trainer.batches.load_state_dict(_section(archive, "batches"))


def restore_checkpoint(
    path: str | os.PathLike, gan: GAN, trainer: TrainerView | None = None
) -> dict[str, Any]:
    """Load a checkpoint into a freshly built ``gan`` (and ``trainer``); returns its metadata."""
    archive = read_checkpoint(path)
    try:
        apply_state(archive, gan, trainer)
    except KeyError as error:
        raise CheckpointError(f"{path}: {_one_line(error).strip(chr(34) + chr(39))}") from error
    except ValueError as error:
        raise CheckpointError(f"{path}: {_one_line(error)}") from error
    return checkpoint_metadata(archive)


def checkpoint_files(folder: str | os.PathLike) -> list[Path]:
    """The ``step_<N>.npz`` files in ``folder``, newest (largest N) first."""
    found = [
        (int(m.group(1)), p)
        for p in Path(folder).glob("step_*.npz")
        if (m := CHECKPOINT_PATTERN.search(p.name))
    ]
    return [path for _, path in sorted(found, reverse=True)]


def latest_checkpoint(folder: str | os.PathLike) -> Path | None:
    """The ``step_<N>.npz`` with the largest N in ``folder``, or None (not checked: see find_resumable)."""
    files = checkpoint_files(folder)
    return files[0] if files else None


def best_checkpoint_info(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The ``best`` record (step, FID, other scores) of ``<folder>/best.npz``, or None.

    A missing, unreadable or non-finite file counts as none: a run then starts keeping the best
    again rather than trusting it.
    """
    try:
        archive = read_checkpoint(Path(folder) / BEST_NAME)
    except (CheckpointError, OSError):
        return None
    best = checkpoint_metadata(archive).get("best")
    if non_finite_entry(archive) is not None or not isinstance(best, dict) or "fid" not in best:
        return None
    return best


def checkpoint_in(path: str | os.PathLike) -> tuple[Path, str | None]:
    """The checkpoint that ``path`` names: a file as given, or the one a run folder offers.

    A run folder (or its ``checkpoints/`` folder) offers ``best.npz`` when the run measured quality
    and kept its best generator, else its newest ``step_*.npz``. Returns the file and, for a folder,
    a sentence saying which file was taken and why (None for a file).

    Raises
    ------
    FileNotFoundError
        A folder without any checkpoint.
    """
    path = Path(path)
    if not path.is_dir():
        return path, None
    folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    best = best_checkpoint_info(folder)
    if best is not None:
        return folder / BEST_NAME, (
            f"using the best generator of {path}: {folder / BEST_NAME} (step {best['step']}, "
            f"FID {best['fid']:.2f})"
        )
    newest = latest_checkpoint(folder)
    if newest is None:
        raise FileNotFoundError(f"{path} holds no checkpoint (no best.npz, no step_*.npz)")
    return newest, (
        f"using the newest checkpoint of {path}: {newest} (it holds no best.npz, which a run keeps "
        "when it measures quality)"
    )


def find_resumable(
    folder: str | os.PathLike,
) -> tuple[Path | None, dict[str, np.ndarray] | None, list[str]]:
    """The newest checkpoint in ``folder`` that reads cleanly and holds only finite numbers.

    Returns
    -------
    path, archive : Path and dict, or None and None
        The checkpoint to resume from and its contents; None when no file qualifies.
    skipped : list of str
        One line per newer file passed over, saying why.
    """
    skipped = []
    for path in checkpoint_files(folder):
        try:
            archive = read_checkpoint(path)
        except (CheckpointError, OSError) as error:
            skipped.append(str(error))
            continue
        bad = non_finite_entry(archive)
        if bad is not None:
            skipped.append(f"{path}: {bad} is not finite")
            continue
        return path, archive, skipped
    return None, None, skipped


class Checkpoint(Periodic):
    """Keep the run's state safe: on disk on a schedule, in memory at every logging window.

    Files are ``<out>/<folder>/step_<N>.npz``, written

    * when a fresh run starts (step 0),
    * every ``every`` epochs (or steps, per ``unit``; the preset's schedule, e.g. every 15 epochs),
    * every ``every_steps`` steps and whenever ``every_seconds`` of wall time have passed since the
      last write (so a killed run loses at most that much work),
    * when training ends, also by Ctrl-C, SIGTERM, SIGHUP or divergence.

    Only the ``keep`` newest files stay (``keep=0``: all). A state with a non-finite number is never
    written: :class:`~tinygan.run.callbacks.NonFiniteLossError` is raised instead.

    The in-memory copy is the last state whose losses were read back and found finite (the trainer's
    ``on_log``), or the last one written. When the run diverges, or stops in the middle of a step (an
    error, a second Ctrl-C), :meth:`on_rollback` restores it, so the final checkpoint, frame and
    curves describe a consistent, finite run.
    """

    def __init__(
        self,
        every: int | None = None,
        unit: str = "epoch",
        metadata: dict[str, Any] | None = None,
        folder: str = "checkpoints",
        every_steps: int | None = None,
        every_seconds: float | None = None,
        keep: int = 3,
    ) -> None:
        super().__init__(every, unit)
        if every_steps is not None and every_steps < 1:
            raise ValueError(f"every_steps must be at least 1, got {every_steps}")
        if every_seconds is not None and not every_seconds > 0:
            raise ValueError(f"every_seconds must be positive, got {every_seconds}")
        if keep < 0:
            raise ValueError(f"keep must be 0 (all) or positive, got {keep}")
        self.metadata, self.folder = metadata or {}, folder
        self.every_steps, self.every_seconds, self.keep = every_steps, every_seconds, keep
        self.saved: list[Path] = []
        self.snapshot: dict[str, np.ndarray] | None = None
        self.snapshot_step: int | None = None
        self._last_write = time.monotonic()

    def folder_path(self, trainer: TrainerView) -> Path:
        return trainer.out_dir / self.folder

    def capture(self, trainer: TrainerView) -> dict[str, np.ndarray]:
        """The trainer's state; a non-finite one stops training as a divergence."""
        archive = capture_state(trainer.gan, trainer, self.metadata)
        bad = non_finite_entry(archive)
        if bad is not None:
            values = archive[bad]
            raise NonFiniteLossError(trainer.step, bad, float(values[~np.isfinite(values)].flat[0]))
        self.snapshot, self.snapshot_step = archive, trainer.step
        return archive

    def save(self, trainer: TrainerView) -> Path:
        """Write the current state to ``step_<N>.npz`` and prune old files; returns the path."""
        archive = self.capture(trainer)
        path = write_checkpoint(self.folder_path(trainer) / f"step_{trainer.step:08d}.npz", archive)
        self.saved.append(path)
        self._last_write = time.monotonic()
        self.prune(trainer)
        return path

    def prune(self, trainer: TrainerView) -> None:
        """Delete all but the ``keep`` newest checkpoint files."""
        if self.keep:
            for old in checkpoint_files(self.folder_path(trainer))[self.keep :]:
                old.unlink(missing_ok=True)

    @property
    def last_saved_step(self) -> int | None:
        if not self.saved:
            return None
        return int(CHECKPOINT_PATTERN.search(self.saved[-1].name).group(1))

    def on_train_begin(self, trainer: TrainerView) -> None:
        folder = self.folder_path(trainer)
        for pattern in (".step_*.tmp", f".{BEST_NAME}.*.tmp"):  # left by a process killed mid-write
            for stale in folder.glob(pattern):
                stale.unlink(missing_ok=True)
        self._last_write = time.monotonic()
        if trainer.step == 0:  # a run killed before its first interval still resumes, from step 0
            self.save(trainer)
        else:
            self.capture(trainer)

    def on_log(self, trainer: TrainerView) -> None:
        self.capture(trainer)

    def act(self, trainer: TrainerView) -> None:
        if self.last_saved_step != trainer.step:
            self.save(trainer)

    def on_step_end(self, trainer: TrainerView) -> None:
        super().on_step_end(trainer)
        due_by_steps = self.every_steps and trainer.step % self.every_steps == 0
        due_by_time = (
            self.every_seconds is not None
            and time.monotonic() - self._last_write >= self.every_seconds
        )
        if due_by_steps or due_by_time:
            self.act(trainer)

    def on_rollback(self, trainer: TrainerView) -> None:
        if self.snapshot is not None:
            apply_state(self.snapshot, trainer.gan, trainer)

    def on_train_end(self, trainer: TrainerView) -> None:
        if self.last_saved_step == trainer.step:
            return
        if trainer.step == self.snapshot_step:  # just rolled back, or nothing changed since
            path = self.folder_path(trainer) / f"step_{trainer.step:08d}.npz"
            self.saved.append(write_checkpoint(path, self.snapshot))
            self.prune(trainer)
        else:
            self.save(trainer)
