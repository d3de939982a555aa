"""Save and resume a training run in one ``.npz`` file.

A checkpoint holds everything that decides what the next step computes: both networks' parameters and
buffers, both optimizers' state, every random generator's state (the noise generator, Dropout layers'
generators, the data shuffler), the step count and the logged loss history, plus a little JSON metadata
(preset, seed, flags). Resuming from it continues the run exactly: N steps straight and N/2 + resume +
N/2 give identical parameters on the CPU.

Files are written atomically: the archive goes to a temporary file in the same folder, is flushed to
disk, and only then renamed over the target, so a crash mid-save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from tinygan.atomic import write_atomically
from tinygan.backend import to_numpy
from tinygan.gan import GAN
from tinygan.nn.layer import Layer
from tinygan.train import Periodic, Trainer

CHECKPOINT_PATTERN = re.compile(r"step_(\d+)\.npz$")


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


def rng_state(rng: Any) -> str:
    """A generator's state as JSON (NumPy's ``bit_generator.state``)."""
    return json.dumps(rng.bit_generator.state)


def set_rng_state(rng: Any, state: str) -> None:
    """Restore :func:`rng_state`."""
    rng.bit_generator.state = json.loads(state)


def save_checkpoint(
    path: str | os.PathLike,
    gan: GAN,
    trainer: Trainer | None = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write the run's state to ``path`` atomically; returns the path.

    Parameters
    ----------
    path : path-like
        Target ``.npz`` file; parent folders are created.
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
    for name, owner in _rng_owners(gan).items():
        archive[f"rng.{name}"] = np.asarray(rng_state(owner.rng))
    if trainer is not None:
        archive |= _flatten("trainer", trainer.state_dict())
        if hasattr(trainer.batches, "state_dict"):
            archive |= _flatten("batches", trainer.batches.state_dict())
    archive["metadata"] = np.asarray(json.dumps(metadata or {}, default=str))

    write_atomically(path, lambda file: np.savez(file, **archive), durable=True)
    return Path(path)


def read_checkpoint(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All arrays of a checkpoint, with a clear error for a missing or unreadable file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError) as error:
        raise ValueError(f"{path} is not a readable tinygan checkpoint: {error}") from error


def checkpoint_metadata(archive: dict[str, np.ndarray]) -> dict[str, Any]:
    """The JSON metadata stored with a checkpoint."""
    return json.loads(str(archive["metadata"]))


def load_networks(
    archive: dict[str, np.ndarray], generator: Layer, discriminator: Layer | None = None
) -> None:
    """Copy saved parameters and buffers into freshly built networks of the same architecture."""
    generator.load_state_dict(_section(archive, "G"))
    if discriminator is not None:
        discriminator.load_state_dict(_section(archive, "D"))


def restore_checkpoint(
    path: str | os.PathLike, gan: GAN, trainer: Trainer | None = None
) -> dict[str, Any]:
    """Load a checkpoint into a freshly built ``gan`` (and ``trainer``); returns its metadata."""
    archive = read_checkpoint(path)
    load_networks(archive, gan.generator, gan.discriminator)
    gan.g_optimizer.load_state_dict(_section(archive, "g_opt"))
    gan.d_optimizer.load_state_dict(_section(archive, "d_opt"))
    for name, owner in _rng_owners(gan).items():
        key = f"rng.{name}"
        if key not in archive:
            raise KeyError(f"checkpoint {path} has no random state for {name}")
        set_rng_state(owner.rng, str(archive[key]))
    if trainer is not None:
        trainer.load_state_dict(_section(archive, "trainer"))
        if hasattr(trainer.batches, "load_state_dict"):
            trainer.batches.load_state_dict(_section(archive, "batches"))
    return checkpoint_metadata(archive)


def latest_checkpoint(folder: str | os.PathLike) -> Path | None:
    """The ``step_<N>.npz`` with the largest N in ``folder``, or None."""
    folder = Path(folder)
    found = [
        (int(m.group(1)), p)
        for p in folder.glob("step_*.npz")
        if (m := CHECKPOINT_PATTERN.search(p.name))
    ]
    return max(found)[1] if found else None


class Checkpoint(Periodic):
    """Save ``<out>/checkpoints/step_<N>.npz`` every ``every`` epochs (or steps) and when training ends.

    Saving at the end covers interruptions too: Ctrl-C still leaves a checkpoint to ``--resume`` from.
    """

    def __init__(
        self,
        every: int,
        unit: str = "epoch",
        metadata: dict[str, Any] | None = None,
        folder: str = "checkpoints",
    ) -> None:
        super().__init__(every, unit)
        self.metadata, self.folder = metadata or {}, folder
        self.saved: list[Path] = []

    def save(self, trainer: Trainer) -> Path:
        path = trainer.out_dir / self.folder / f"step_{trainer.step:08d}.npz"
        self.saved.append(save_checkpoint(path, trainer.gan, trainer, self.metadata))
        return path

    def act(self, trainer: Trainer) -> None:
        self.save(trainer)

    def on_train_end(self, trainer: Trainer) -> None:
        if not self.saved or self.saved[-1].name != f"step_{trainer.step:08d}.npz":
            self.save(trainer)
