"""The settings of a run, resolved once into a frozen :class:`RunSettings`.

A run's settings come from three places: the flags given (``None``: not given), the preset they
name, and, with ``--resume``, the settings the run recorded when it started. :func:`resolve_settings`
merges them once and checks them (a mistake is a :class:`RunRefused` naming the flag); building the
run (:mod:`tinygan.run.build`) and training read the typed fields of what it returns, never a dict.

The same object is the run's record: ``config.json`` (:meth:`RunSettings.to_config`,
:meth:`RunSettings.from_config`, :func:`write_config`, :func:`read_config`) and the metadata every
checkpoint carries (:meth:`RunSettings.checkpoint_metadata`). A record holds the values the run
resolved to (its step rules, its game, its packing), so ``--resume`` plays the run as it started,
whatever the preset's defaults have become since; :func:`recorded_settings` reads records of older
formats the same way.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from tinygan.atomic import write_atomically
from tinygan.backend import gpu_available, new_seed
from tinygan.data import POINTS_PER_RUN
from tinygan.losses import WEIGHT_CLIP
from tinygan.models import PRESETS, Preset, get_preset
from tinygan.penalties import R1_WEIGHT, WGAN_GP_WEIGHT
from tinygan.run.flags import GPU_NEEDED

#: Presets that train on 28x28 images (the 1-D Gaussian GAN has its own example script).
IMAGE_PRESETS = [
    name for name, preset in PRESETS.items() if preset.image_size == (28, 28) and not preset.mixture
]
#: Presets that train on the points of a 2-D mixture.
MIXTURE_PRESETS = [name for name, preset in PRESETS.items() if preset.mixture]
#: Presets that train on Stacked MNIST and count its modes.
STACKED_PRESETS = [name for name, preset in PRESETS.items() if preset.stacked]
#: What ``tinygan train`` trains.
TRAIN_PRESETS = IMAGE_PRESETS + MIXTURE_PRESETS
#: Flags that choose or score images: a run on a 2-D mixture refuses them.
IMAGE_FLAGS = ("dataset", "split", "subset", "data_dir", "no_download", "quality_every")
#: How a step is played (:class:`tinygan.gan.GAN`): each preset has a default, a flag turns it on or
#: off, and config.json records the value the run resolved to.
STEP_RULES = ("simultaneous", "reuse_noise", "inference_fakes")
#: The game and what keeps D in check (:func:`loss_overrides`): config.json records the values a
#: run resolved to, and ``--resume`` keeps them.
LOSS_SETTINGS = ("loss", "n_critic", "clip", "penalty", "penalty_weight", "spectral_norm")
#: The Wasserstein GAN paper's learning rate (RMSprop, both networks; Algorithm 1).
WGAN_LR = 5e-5
#: The Wasserstein GAN paper's critic updates per generator update (Algorithm 1).
WGAN_N_CRITIC = 5
#: Settings that make a run what it is: ``--resume`` refuses a different value for any of them.
RUN_IDENTITY = (
    "preset",
    "seed",
    "dataset",
    "split",
    "subset",
    "batch_size",
    "device",
    "ema",
    "pack",
    "minibatch_std",
    "conditional",
    *STEP_RULES,
    *LOSS_SETTINGS,
)
#: Settings ``--resume`` may change; config.json records the change.
ADJUSTABLE = (
    "iterations",
    "epochs",
    "lr",
    "data_dir",
    "no_download",
    "sample_every",
    "log_every",
    "checkpoint_every",
    "checkpoint_seconds",
    "keep_checkpoints",
    "quality_every",
    "no_quality",
    "modes_every",
    "no_progress",
)
#: The file in the run folder that records the settings, the length and every resume.
CONFIG_NAME = "config.json"


class RunRefused(Exception):
    """A run that cannot start as asked: a mistake in the flags, the data or the output folder.

    Its message is the one line the command line prints (exit code 2); nothing has trained yet.
    """


@dataclass(frozen=True, kw_only=True)
class RunSettings:
    """Every setting of one run, as resolved from the flags, the preset and a resumed run's record.

    The fields are the training flags (``None`` where a flag was not given and the preset decides),
    in the order ``--help`` lists them, with the values the run resolved to for its step rules,
    packing and game; then where the images were found (``bundled_data``, ``data_folder``), known
    once the data is loaded (:meth:`trained_on`). A 2-D mixture run records its mixture as
    ``dataset`` and no ``split``. ``out`` is ``--out`` as given (``None``: ``runs/<preset>``).
    """

    preset: str
    iterations: int | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    seed: int
    out: str | None = None
    data_dir: str | None = None
    dataset: str = "mnist"
    split: str | None = "train"
    subset: int | None = None
    device: str = "cpu"
    sample_every: int | None = None
    log_every: int = 50
    checkpoint_every: int | None = None
    checkpoint_seconds: float = 60.0
    keep_checkpoints: int = 3
    quality_every: int | None = None
    no_quality: bool = False
    pack: int = 1
    minibatch_std: bool = False
    modes_every: int | None = None
    ema: float | None = None
    conditional: bool = False
    simultaneous: bool = False
    reuse_noise: bool = False
    inference_fakes: bool = False
    loss: str = "nonsaturating"
    n_critic: int = 1
    clip: float | None = None
    penalty: str = "none"
    penalty_weight: float | None = None
    spectral_norm: bool = False
    no_download: bool = False
    no_progress: bool = False
    bundled_data: bool = False
    data_folder: str | None = None

    @cached_property
    def configured_preset(self) -> Preset:
        """The preset as this run trains it: the named preset with these settings applied."""
        return configure(get_preset(self.preset), asdict(self))

    def trained_on(self, folder: str, bundled: bool) -> RunSettings:
        """These settings with where the training images were found (recorded, so that
        ``--resume`` reads the same images: ``bundled`` the digits shipped with tinygan)."""
        return replace(self, data_folder=folder, bundled_data=self.bundled_data or bundled)

    def record(self) -> dict[str, Any]:
        """The settings as config.json and every checkpoint record them (plain JSON values)."""
        record = asdict(self)
        if not self.bundled_data:  # recorded only for a run on the bundled digits
            del record["bundled_data"]
        if self.data_folder is None:  # a mixture run reads no folder
            del record["data_folder"]
        return record

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> RunSettings:
        """Settings from a record (:meth:`record`); a key it lacks takes the field's default."""
        known = {field.name for field in fields(cls)}
        return cls(**{key: value for key, value in record.items() if key in known})

    def checkpoint_metadata(self) -> dict[str, Any]:
        """What each checkpoint of the run says about it (sampling and evaluation read the
        preset, the dataset and the packing from it; ``--resume`` the whole record)."""
        return {
            "preset": self.preset,
            "seed": self.seed,
            "device": self.device,
            "dataset": self.dataset,
            "split": self.split,
            "settings": self.record(),
        }

    def to_config(self, steps: int, command: list[str]) -> dict[str, Any]:
        """The config.json of a new run of ``steps`` steps started by ``command``."""
        preset = self.configured_preset
        return {
            "preset": self.preset,
            "seed": self.seed,
            "settings": self.record(),
            "steps": steps,
            "command": command,
            "preset_settings": {k: v for k, v in asdict(preset).items() if k != "build"},
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RunSettings:
        """The settings a config.json (:meth:`to_config`, :func:`resumed_config`) records."""
        return cls.from_record(config["settings"])


def resumed_config(
    config: dict[str, Any], settings: RunSettings, steps: int, step: int, changes: dict[str, Any]
) -> dict[str, Any]:
    """A run's config.json after a resume at ``step``: the settings it continues with and the
    flags that resume changed, appended to its list of resumes."""
    config = {**config, "resumes": [*config.get("resumes", []), {"step": step, "changed": changes}]}
    config.update(settings=settings.record(), steps=steps)
    return config


def write_config(out_dir: Path, config: dict[str, Any]) -> None:
    """Write ``<out_dir>/config.json`` atomically (a crash leaves the previous one whole)."""
    text = json.dumps(config, indent=2, default=str) + "\n"
    write_atomically(out_dir / CONFIG_NAME, lambda file: file.write(text.encode()))


def read_config(out_dir: Path) -> dict[str, Any]:
    """The run's config.json, or an empty dict when it is missing or unreadable."""
    try:
        config = json.loads((out_dir / CONFIG_NAME).read_text())
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


#: What a fresh run uses for a flag that was not given (the preset decides the rest).
DEFAULTS: dict[str, Any] = {
    name: getattr(RunSettings, name)
    for name in (
        "dataset",
        "split",
        "device",
        "log_every",
        "checkpoint_seconds",
        "keep_checkpoints",
    )
}


def flags_given(args: argparse.Namespace) -> dict[str, Any]:
    """The training flags as parsed, by setting name (``None``: not given), a path as text;
    ``--data-dir`` absolute, so that ``--resume`` from another directory reads the same folder."""
    names = {field.name for field in fields(RunSettings)}
    given = {
        key: str(value) if isinstance(value, Path) else value
        for key, value in vars(args).items()
        if key in names
    }
    if given.get("data_dir") is not None:
        given["data_dir"] = os.path.abspath(given["data_dir"])
    return given


def check_flags(given: Mapping[str, Any], resume: bool) -> None:
    """Refuse flags that contradict each other whatever the run (before ``--out`` is touched)."""
    no_penalty = given.get("penalty") in (None, "none")
    if given.get("penalty_weight") is not None and no_penalty and not resume:
        raise RunRefused("--penalty-weight weighs a gradient penalty: give --penalty too")
    if given.get("quality_every") and given.get("no_quality"):
        raise RunRefused(f"--quality-every {given['quality_every']} and --no-quality: choose one")


def resolve_settings(
    given: Mapping[str, Any],
    preset_name: str,
    recorded: Mapping[str, Any] | None = None,
    source: Path | None = None,
) -> tuple[RunSettings, dict[str, Any]]:
    """The settings of a run, resolved and checked once.

    Parameters
    ----------
    given : mapping
        The training flags by name, ``None`` where not given (``--data-dir`` absolute).
    preset_name : str
        The preset a fresh run trains (``--preset`` or the command's default).
    recorded : mapping, optional
        With ``--resume``: the settings the run recorded (:func:`recorded_settings`); the run
        then continues as it started, with the flags ``--resume`` may change.
    source : Path, optional
        The checkpoint ``recorded`` comes from, named in refusals.

    Returns
    -------
    settings : RunSettings
    changes : dict
        The settings a resume changed, by name (empty for a fresh run), for config.json.

    Raises
    ------
    RunRefused
        A flag that does not fit the run, in one line naming it.
    """
    if recorded is None:
        merged, changes = fresh_settings({**given, "preset": preset_name}), {}
    else:
        preset_given = given.get("preset") or recorded.get("preset", preset_name)
        merged, changes = resume_settings({**given, "preset": preset_given}, recorded, source)
    preset = configure(get_preset(merged["preset"]), merged)
    settings = RunSettings.from_record({**merged, **played_settings(preset)})
    check_fits_preset(preset, given)
    if settings.device == "gpu" and not gpu_available():
        raise RunRefused(GPU_NEEDED)
    return settings, changes


def fresh_settings(given: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of a new run: the flags given, defaults for the rest, a fresh seed if none."""
    settings = {**given, **{k: v for k, v in DEFAULTS.items() if given.get(k) is None}}
    if settings.get("seed") is None:
        settings["seed"] = new_seed()
    return settings


def resume_settings(
    given: Mapping[str, Any], recorded: Mapping[str, Any], source: Path | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Merge the flags given with ``--resume`` into the run's recorded settings.

    Returns the settings to continue with and the changes made (for config.json). A flag that would
    change what the run is (its seed, data or batch size) is refused with the reason.
    """
    for name in RUN_IDENTITY:
        value = given.get(name)
        if value is not None and name in recorded and value != recorded[name]:
            raise RunRefused(identity_refusal(name, value, recorded[name], source))
    changes = {}
    for name in ADJUSTABLE:
        value = given.get(name)
        if value is not None and value is not False and value != recorded.get(name):
            changes[name] = value
    if recorded.get("bundled_data") and "data_dir" in changes:
        raise RunRefused(
            f"--data-dir {changes['data_dir']}: the run in {source} trained on the MNIST test digits "
            "bundled with tinygan, and --resume continues with them (train into another --out to "
            "use other data)"
        )
    settings = {**DEFAULTS, **recorded, **changes}
    if "iterations" in changes:
        settings["epochs"] = None
    if "epochs" in changes:
        settings["iterations"] = None
    return settings, changes


def identity_refusal(name: str, value: Any, started: Any, source: Path | None) -> str:
    """Why ``--resume`` refuses ``value`` for the setting ``name`` the run started with."""
    flag = "--" + name.replace("_", "-")
    if isinstance(value, bool):  # a step rule: name the flag of each value
        on, off = flag, "--no-" + flag[2:]
        given_text, started = (on, off) if value else (off, on)
    else:
        given_text = f"{flag} {value}"
    return (
        f"{given_text}: the run in {source} was started with {started}, and "
        f"--resume continues it as it was (train into another --out to change {flag})"
    )


def recorded_settings(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The settings a checkpoint's run was started with (older checkpoints record fewer).

    Runs from before the presets had names record an alias ("003"); it is read as the name
    ("dcgan-tf"), so that ``--resume --preset dcgan-tf`` continues such a run. Runs from before the
    presets carried their tutorials' step rules record a rule as off (``false``), ``null`` (flag
    not given) or not at all: all three mean off, which is how those runs trained. Runs from before
    ``--pack`` trained unpacked: pack 1, runs from before ``--conditional`` unconditional, and runs
    from before ``--minibatch-std`` without it.
    """
    if "settings" in metadata:
        settings = dict(metadata["settings"])
    else:
        keys = ("preset", "seed", "dataset", "split", "device")
        settings = {k: metadata[k] for k in keys if k in metadata}
    if settings.get("preset") in PRESETS:
        settings["preset"] = PRESETS[settings["preset"]].name
    for rule in STEP_RULES:
        settings[rule] = bool(settings.get(rule))
    settings["pack"] = settings.get("pack") or 1
    settings["conditional"] = bool(settings.get("conditional"))
    settings["minibatch_std"] = bool(settings.get("minibatch_std"))
    return settings


def played_settings(preset: Preset) -> dict[str, Any]:
    """What the configured ``preset`` plays, recorded (config.json, checkpoints) and kept on
    ``--resume``: its step rules, packing, minibatch standard deviation, conditioning and game; a
    mixture run's data is its mixture."""
    played: dict[str, Any] = {rule: getattr(preset, rule) for rule in STEP_RULES}
    played.update(
        pack=preset.pack,
        minibatch_std=preset.minibatch_std,
        conditional=preset.conditional,
        loss=preset.generator_loss,
        n_critic=preset.d_steps,
        clip=preset.clip,
        penalty=preset.penalty or "none",
        penalty_weight=preset.penalty_weight,
        spectral_norm=preset.spectral_norm,
    )
    if preset.mixture:
        played.update(dataset=preset.mixture, split=None)
    return played


def check_fits_preset(preset: Preset, given: Mapping[str, Any]) -> None:
    """Refuse, in one line, the flags given that the configured ``preset`` cannot train with: the
    image flags for a 2-D mixture, ``--modes-every`` for images whose modes are not counted,
    ``--conditional`` for data without classes, what Stacked MNIST cannot take
    (:func:`check_fits_stacked`), simultaneous updates of more than one D or G update, and a
    mixture batch larger than its data."""
    if preset.conditional and preset.mixture:
        raise RunRefused(
            f"--conditional: preset {preset.name} trains on the points of its 2-D mixture, which "
            "have no classes to condition on"
        )
    if preset.mixture:
        for name in IMAGE_FLAGS:
            if given.get(name) not in (None, False):
                raise RunRefused(
                    f"--{name.replace('_', '-')}: preset {preset.name} trains on the points of "
                    "its 2-D mixture, not on images"
                )
    elif preset.stacked:
        check_fits_stacked(preset, given)
    elif given.get("modes_every") is not None:
        raise RunRefused(
            f"--modes-every: preset {preset.name} trains on images; modes are counted for the "
            f"2-D mixture presets ({', '.join(MIXTURE_PRESETS)}) and Stacked MNIST "
            f"({', '.join(STACKED_PRESETS)})"
        )
    if preset.simultaneous and (preset.d_steps, preset.g_steps) != (1, 1):
        raise RunRefused(
            f"--simultaneous: preset {preset.name} takes {preset.d_steps} discriminator and "
            f"{preset.g_steps} generator updates per step, and simultaneous updates take one each"
        )
    batch = preset.batch_size * preset.pack
    if preset.mixture and batch > POINTS_PER_RUN:
        raise RunRefused(
            f"--batch-size {preset.batch_size} with --pack {preset.pack} takes {batch:,} points a "
            f"step, more than the {POINTS_PER_RUN:,} of the data set"
        )


def check_fits_stacked(preset: Preset, given: Mapping[str, Any]) -> None:
    """Refuse, in one line, what a Stacked MNIST preset cannot train with: a dataset other than
    MNIST (it stacks MNIST digits), ``--conditional`` (its 1,000 modes are no classes a network
    is told) and ``--quality-every`` (FID's classifier reads one digit; the modes are counted
    instead)."""
    dataset = given.get("dataset")
    if dataset not in (None, "mnist"):
        raise RunRefused(
            f"--dataset {dataset}: preset {preset.name} stacks MNIST digits, three to an image"
        )
    if preset.conditional:
        raise RunRefused(
            f"--conditional: preset {preset.name} learns Stacked MNIST unconditionally; "
            "conditioning on its 1,000 modes is not supported"
        )
    if given.get("quality_every") is not None:
        raise RunRefused(
            f"--quality-every: preset {preset.name} counts the modes of its samples instead of "
            "measuring their quality (the quality classifier reads one digit, not three); "
            "--modes-every N chooses how often"
        )


def configure(preset: Preset, settings: Mapping[str, Any]) -> Preset:
    """The preset with the settings that override it applied (``None``: the preset's value)."""
    overrides = loss_overrides(preset, settings)
    if settings.get("batch_size") is not None:
        overrides["batch_size"] = settings["batch_size"]
    if settings.get("lr") is not None:
        overrides["g_lr"] = overrides["d_lr"] = settings["lr"]
    if settings.get("sample_every") is not None:
        overrides["sample_every"] = settings["sample_every"]
    if settings.get("pack") is not None:
        overrides["pack"] = settings["pack"]
    if settings.get("minibatch_std") is not None:
        overrides["minibatch_std"] = bool(settings["minibatch_std"])
    if settings.get("conditional") is not None:
        overrides["conditional"] = bool(settings["conditional"])
    for rule in STEP_RULES:
        if settings.get(rule) is not None:
            overrides[rule] = bool(settings[rule])
    if settings.get("iterations") is not None:
        overrides.update(steps=settings["iterations"], epochs=None)
    if settings.get("epochs") is not None:
        overrides.update(epochs=settings["epochs"], steps=None)
    return replace(preset, **overrides)


def loss_overrides(preset: Preset, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The preset fields that ``--loss``, ``--n-critic``, ``--clip``, ``--penalty``,
    ``--penalty-weight`` and ``--spectral-norm`` set.

    The Wasserstein loss brings the WGAN paper's recipe with it unless the flags say otherwise:
    :data:`WGAN_N_CRITIC` critic updates per generator update and, without a gradient penalty
    (which replaced them), weight clipping at :data:`~tinygan.losses.WEIGHT_CLIP` and RMSprop at
    :data:`WGAN_LR` for both networks. More than one D update per step alternates the updates,
    on a preset that steps simultaneously too, unless ``--simultaneous`` is given.
    """
    overrides: dict[str, Any] = {}
    loss = settings.get("loss") or preset.generator_loss
    penalty = settings.get("penalty") or "none"
    wgan = loss == "wasserstein"
    clipping = wgan and penalty == "none"
    if settings.get("loss") is not None:
        overrides["generator_loss"] = loss
    n_critic = settings.get("n_critic") or (WGAN_N_CRITIC if wgan else preset.d_steps)
    overrides["d_steps"] = n_critic
    if n_critic > 1 and settings.get("simultaneous") is None:
        overrides["simultaneous"] = False
    clip = settings.get("clip")
    overrides["clip"] = clip if clip is not None else (WEIGHT_CLIP if clipping else preset.clip)
    if clipping:
        overrides.update(optimizer="rmsprop", g_lr=WGAN_LR, d_lr=WGAN_LR)
    if penalty != "none":
        default = WGAN_GP_WEIGHT if penalty == "wgan-gp" else R1_WEIGHT
        weight = settings.get("penalty_weight")
        overrides.update(penalty=penalty, penalty_weight=default if weight is None else weight)
    if settings.get("spectral_norm") is not None:
        overrides["spectral_norm"] = bool(settings["spectral_norm"])
    return overrides


def describe_game(preset: Preset) -> str:
    """The loss, the D updates per G update and what keeps D in check, in words."""
    parts = [f"loss {preset.generator_loss}", f"{preset.d_steps} D update(s) per G update"]
    if preset.clip is not None:
        parts.append(f"D's weights clipped to [-{preset.clip:g}, {preset.clip:g}]")
    if preset.penalty is not None:
        parts.append(f"{preset.penalty} penalty weighted {preset.penalty_weight:g}")
    if preset.spectral_norm:
        parts.append("spectral norm in D")
    parts.append(f"{preset.optimizer} lr {preset.g_lr:g} (G) / {preset.d_lr:g} (D)")
    return ", ".join(parts)
