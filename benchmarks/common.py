"""What the benchmark scripts share: seeds, synthetic batches, one timed training step, commands.

Every other module of ``benchmarks`` may import this one; it imports none of them back. At import
time it needs only the standard library: the speed benchmark's parent process imports it and must
start no thread pool of NumPy, Numba or PyTorch, so those (and tinygan) are imported inside the
functions that use them.
"""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: The repository: the folder that holds ``benchmarks/`` and ``tinygan/``.
ROOT = Path(__file__).resolve().parents[1]
#: The benchmarks' fixed seed: initial weights, synthetic batches and noise derive from it.
SEED = 0


def split_command(argv: list[str], commands: tuple[str, ...]) -> tuple[str, list[str]]:
    """``(command, its arguments)`` of an entry point's ``argv``; the first command is the default.

    ``python benchmarks/quality.py --data-dir D`` is ``quality.py table --data-dir D``, so commands
    written before the entry points had subcommands still run.
    """
    if argv and argv[0] in commands:
        return argv[0], argv[1:]
    return commands[0], argv


def cpu_count() -> int:
    """Cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def thread_count() -> int:
    """Threads each library may use: ``$OMP_NUM_THREADS`` when set (``--threads``), else every core."""
    return int(os.environ.get("OMP_NUM_THREADS") or cpu_count())


def subprocess_env(extra: dict[str, str]) -> dict[str, str]:
    """This environment, with the repository first on the import path and ``extra`` applied."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


def fresh_gan(preset: Any) -> Any:
    """The preset's GAN with the benchmark's fixed seeds (the same initial weights everywhere)."""
    import numpy as np

    return preset.make_gan(np.random.default_rng(SEED), np.random.default_rng(SEED + 2))


def synthetic_batches(preset: Any, batch: int, count: int) -> list[Any]:
    """``count`` float32 real batches: uniform in the preset's value range (normal if unbounded)."""
    import numpy as np

    rng = np.random.default_rng(SEED + 1)
    low, high = preset.value_range
    shape = (batch, *preset.data_shape)
    if np.isfinite(low) and np.isfinite(high):
        return [rng.uniform(low, high, size=shape).astype(np.float32) for _ in range(count)]
    return [rng.standard_normal(shape, dtype=np.float32) for _ in range(count)]


def training_step(
    library: str, preset: Any, batch: int
) -> tuple[Callable[[], Any], dict[str, Any]]:
    """A closure running one training iteration of ``preset`` in ``library``, and facts about the run.

    ``library`` is ``"torch"`` for the PyTorch twin (:class:`tinygan.interop.torch_models.TorchGAN`),
    anything else for tinygan. Both start from the same weights (the tinygan networks, copied into
    PyTorch) and cycle through the same ``d_steps`` synthetic real batches.
    """
    import itertools

    from tinygan.overrides import active_kernels

    gan = fresh_gan(preset)
    batches = synthetic_batches(preset, batch, preset.d_steps)
    info: dict[str, Any] = {"batch": batch}
    if library == "torch":
        import torch

        from tinygan.interop.torch_models import TorchGAN

        torch.set_num_threads(thread_count())
        model: Any = TorchGAN(preset, gan.generator, gan.discriminator, seed=SEED)
        batches = [torch.from_numpy(real) for real in batches]
        info.update(kernels=f"torch {torch.__version__}", threads=torch.get_num_threads())
    else:
        model = gan
        info.update(kernels=active_kernels(), threads=thread_count())
    cycle = itertools.cycle(batches)
    return (lambda: model.train_step(lambda: next(cycle))), info


def timed(function: Callable[[], Any]) -> float:
    """Seconds one call of ``function`` takes."""
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def time_steps(
    step: Callable[[], Any], warmup: int, repeats: int, min_repeats: int, budget_s: float
) -> list[float]:
    """Seconds per call of ``step`` after ``warmup`` untimed calls.

    Stops after ``repeats`` calls, or earlier once ``min_repeats`` calls are done and ``budget_s``
    seconds of timed calls have passed (the large presets take seconds per iteration).
    """
    for _ in range(warmup):
        step()
    times: list[float] = []
    while len(times) < repeats:
        times.append(timed(step))
        if len(times) >= min_repeats and sum(times) > budget_s:
            break
    return times


def shown_command(script: str, argv: list[str]) -> str:
    """``python SCRIPT ARGV`` as a report shows it, naming no folder of this machine.

    A path inside the repository is shown relative to it; any other absolute path becomes a
    placeholder named after its flag (``--data-dir /srv/mnist`` becomes ``--data-dir DATA_DIR``).
    """
    shown, flag = [], None
    for arg in argv:
        if arg.startswith("-"):
            flag, _, value = arg.partition("=")
            shown.append(f"{flag}={portable_path(value, flag)}" if value else arg)
        else:
            shown.append(portable_path(arg, flag))
            flag = None
    return shlex.join(["python", script, *shown])


def portable_path(value: str, flag: str | None) -> str:
    """``value`` unchanged unless it is an absolute path: then relative to the repository, or a
    placeholder (see :func:`shown_command`)."""
    if not os.path.isabs(value):
        return value
    try:
        return str(Path(os.path.normpath(value)).relative_to(ROOT))
    except ValueError:
        return flag.lstrip("-").replace("-", "_").upper() if flag else "PATH"
