"""What the benchmark scripts share: seeds, synthetic batches, one timed training step, commands,
and the runs of ``tinygan train`` that the long benchmarks launch, each in a folder of its own.

Every other module of ``benchmarks`` may import this one; it imports none of them back. At import
time it needs only the standard library: the speed benchmark's parent process imports it and must
start no thread pool of NumPy, Numba or PyTorch, so those (and tinygan) are imported inside the
functions that use them.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any, TypeVar

#: The repository: the folder that holds ``benchmarks/`` and ``tinygan/``.
ROOT = Path(__file__).resolve().parents[1]
#: The benchmarks' fixed seed: initial weights, synthetic batches and noise derive from it.
SEED = 0
#: Thread pools that each launched run keeps to one thread: runs trained side by side share the
#: cores, and a BLAS spinning two threads per run slows every step many times over.
ONE_THREAD = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "NUMBA_NUM_THREADS")

Result = TypeVar("Result")


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


# -- runs of ``tinygan train``, one folder each -------------------------------------------------------


def run_log(folder: Path) -> Path:
    """Where the output of the run in ``folder`` goes: ``<folder>.log`` beside it, appended to by
    every call that trains it (so a resumed run's log continues)."""
    return folder.parent / f"{folder.name}.log"


def cli_command(argv: list[str], folder: Path) -> list[str]:
    """The command that runs ``tinygan ARGV`` into ``folder``: ``--out FOLDER``, and ``--resume``
    when the folder holds checkpoints of a run that was stopped."""
    command = [sys.executable, "-m", "tinygan.run.cli", *argv, "--out", str(folder)]
    if (folder / "checkpoints").is_dir():
        command.append("--resume")
    return command


def run_logged(
    command: list[str], log_path: Path, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run ``command`` with its output appended to ``log_path``, with one thread per library
    unless the environment says otherwise; return the finished process (its ``args`` and
    ``returncode``)."""
    env = subprocess_env({"MPLBACKEND": "Agg", **(extra_env or {})})
    for variable in ONE_THREAD:
        env.setdefault(variable, "1")
    with open(log_path, "a") as log:
        return subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT)


def run_in_folder(
    argv: list[str], folder: Path, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run ``tinygan ARGV`` into ``folder`` (:func:`cli_command`), its output appended to
    :func:`run_log` (:func:`run_logged`)."""
    return run_logged(cli_command(argv, folder), run_log(folder), extra_env)


def run_jobs(
    jobs: dict[Hashable, Callable[[], Result]],
    workers: int,
    finished: Callable[[Hashable, Result], None],
) -> None:
    """Run each job ``workers`` at a time and call ``finished(key, result)`` as each ends (in the
    order they end). A job that raises stops the loop at its turn, once the jobs still to run have
    run."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(job): key for key, job in jobs.items()}
        for future in as_completed(futures):
            finished(futures[future], future.result())


def training_minutes(folder: Path) -> float | None:
    """The minutes a run trained, as its own log counts them: the "(N s)" of its step lines counts
    from the start of each invocation (a resumed run starts again from 0), so the total is the
    last count of every invocation, summed; None before its first step line."""
    log = run_log(folder)
    counts = [int(n) for n in re.findall(r"\((\d+) s\)", log.read_text())] if log.is_file() else []
    if not counts:
        return None
    restarts = [before for before, after in itertools.pairwise(counts) if after < before]
    return (sum(restarts) + counts[-1]) / 60


def mean_and_error(values: list[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (0 for a single value)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    variance = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(variance / n)
