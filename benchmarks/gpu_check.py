"""Check tinygan on a GPU in one run of under eight minutes: tests, two trainings, step timings.

    PYTHONPATH=$PWD python3 benchmarks/gpu_check.py --data-dir /path/to/mnist --out gpu-check
    python3 benchmarks/gpu_check.py --data-dir /path/to/mnist --out gpu-check --dry-run

Three parts, each in subprocesses with a time limit of its own, so that one that hangs or fails
leaves the others' results; the summary is rewritten after every part:

1. **Tests**: ``pytest -q -k gpu tests/``, i.e. the CuPy kernels against the plain functions, the
   float64 gradient checks on the GPU and every test parametrised with the ``gpu`` device.
2. **Training**: ``dcgan-tf`` for 20 epochs and ``mlp-tf`` for 20,000 iterations on the
   MNIST test split, with ``--device gpu``, through ``examples/mnist_dcgan.py`` and
   ``examples/mnist_mlp_gan.py``; their run folders (sample grids, loss curves, logs) are kept.
3. **Timing**: one training iteration of mlp-tf at batch 64 and of dcgan-tf at batches 64 and 256,
   for tinygan on CuPy and for PyTorch CUDA eager (the twins of ``tinygan.interop.torch_models``), each
   library in one process of its own; a markdown table names the GPU.

Everything goes under ``--out``: ``summary.md`` (the table, and each part's status and time),
``summary.json``, ``<part>.log`` (each command's output) and ``train-<preset>/`` (the runs). Needs no
network and no installed tinygan: the working tree is put first on ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SEED = 0

#: (preset, batch) configurations timed, in this order.
TIMED = [("mlp-tf", 64), ("dcgan-tf", 64), ("dcgan-tf", 256)]
#: Contenders: key -> table label.
LIBRARIES = {"tinygan": "tinygan (CuPy kernels)", "torch": "PyTorch CUDA eager"}
WARMUP, REPEATS = 3, 20

#: Seconds each part may take; the sum stays below eight minutes with room for start-up.
TIME_LIMITS = {
    "tests": 130,
    "train-dcgan-tf": 100,
    "train-mlp-tf": 120,
    "time-tinygan": 40,
    "time-torch": 40,
}


@dataclass
class Part:
    """One command of the check: what runs, its time limit, and what happened."""

    name: str
    command: list[str]
    limit_s: int
    status: str = "not run"
    seconds: float = 0.0
    result: dict[str, Any] = field(default_factory=dict)


# -- the timing workers (run as subprocesses of this script) -----------------------------------------


def synchronize(library: str) -> None:
    """Wait for the GPU: kernels are launched asynchronously, so a step ends when the device is done."""
    if library == "torch":
        import torch

        torch.cuda.synchronize()
    else:
        import cupy

        cupy.cuda.Device().synchronize()


def gpu_name() -> str:
    try:
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(0)
        name = props["name"]
        return name.decode() if isinstance(name, bytes) else str(name)
    except Exception:  # the name is decoration: a table without it is still a result
        import torch

        return torch.cuda.get_device_name(0)


def step_for(library: str, preset_name: str, batch: int) -> Any:
    """A closure running one training iteration of ``preset_name`` at ``batch`` on the GPU."""
    import itertools

    import numpy as np

    from tinygan.backend import make_rng
    from tinygan.models import get_preset

    preset = get_preset(preset_name)
    rng = np.random.default_rng(SEED + 1)
    low, high = preset.value_range
    shape = (batch, *preset.data_shape)
    reals = [rng.uniform(low, high, size=shape).astype(np.float32) for _ in range(preset.d_steps)]
    if library == "torch":
        import torch

        from tinygan.interop.torch_models import TorchGAN

        class CudaTorchGAN(TorchGAN):
            """The twin with its networks and noise on the GPU (the timed code is TorchGAN's)."""

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                self.generator.cuda()  # in place: the optimizers keep the same parameters
                self.discriminator.cuda()
                self.noise = torch.Generator(device="cuda").manual_seed(SEED)

            def sample_noise(self, n: int) -> torch.Tensor:
                z = torch.empty(n, self.preset.latent_dim, device="cuda")
                if self.preset.noise == "uniform":
                    return z.uniform_(-1.0, 1.0, generator=self.noise)
                return z.normal_(generator=self.noise)

        cpu_gan = preset.make_gan(np.random.default_rng(SEED), np.random.default_rng(SEED + 2))
        model: Any = CudaTorchGAN(preset, cpu_gan.generator, cpu_gan.discriminator, seed=SEED)
        batches: list[Any] = [torch.from_numpy(real).cuda() for real in reals]
    else:
        import cupy

        model = preset.make_gan(np.random.default_rng(SEED), make_rng(SEED + 2, "gpu"), "gpu")
        batches = [cupy.asarray(real) for real in reals]
    cycle = itertools.cycle(batches)
    return lambda: model.train_step(lambda: next(cycle))


def worker(library: str) -> dict[str, Any]:
    """Median, min and max milliseconds per iteration of every :data:`TIMED` configuration."""
    from tinygan.overrides import active_kernels

    rows = []
    for preset_name, batch in TIMED:
        step = step_for(library, preset_name, batch)
        for _ in range(WARMUP):  # compiles kernels, grows the memory pools
            step()
        synchronize(library)
        times = []
        for _ in range(REPEATS):
            start = time.perf_counter()
            step()
            synchronize(library)
            times.append(time.perf_counter() - start)
        ms = [1000 * t for t in times]
        rows.append(
            {
                "preset": preset_name,
                "batch": batch,
                "median_ms": statistics.median(ms),
                "min_ms": min(ms),
                "max_ms": max(ms),
            }
        )
    kernels = active_kernels() if library == "tinygan" else "torch"
    return {"library": library, "gpu": gpu_name(), "kernels": kernels, "rows": rows}


# -- the parent ------------------------------------------------------------------------------------


def plan(args: argparse.Namespace) -> list[Part]:
    """The commands of the check, in order."""
    python, out = sys.executable, args.out.resolve()
    data = ["--data-dir", str(args.data_dir), "--split", "test", "--no-download", "--no-progress"]
    common = ["--device", "gpu", *data, "--seed", str(SEED), "--overwrite"]
    train = {
        "train-dcgan-tf": [str(ROOT / "examples/mnist_dcgan.py"), "--preset", "dcgan-tf"]
        + ["--epochs", str(args.epochs_dcgan_tf)],
        "train-mlp-tf": [str(ROOT / "examples/mnist_mlp_gan.py"), "--preset", "mlp-tf"]
        + ["--iterations", str(args.iterations_mlp_tf)],
    }
    parts = [Part("tests", [python, "-m", "pytest", "-q", "-k", "gpu", str(ROOT / "tests")], 0)]
    for name, command in train.items():
        parts.append(Part(name, [python, *command, *common, "--out", str(out / name)], 0))
    for library in LIBRARIES:
        parts.append(
            Part(f"time-{library}", [python, str(Path(__file__).resolve()), "--worker", library], 0)
        )
    for part in parts:
        part.limit_s = int(TIME_LIMITS[part.name] * args.time_scale)
    return parts


def environment(data_dir: Path) -> dict[str, str]:
    """This environment with the working tree first on the import path and the MNIST folder set."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["TINYGAN_DATA"] = str(data_dir)
    env.setdefault("MPLBACKEND", "Agg")
    return env


def run_part(part: Part, out: Path, env: dict[str, str]) -> None:
    """Run one part under its time limit; its output goes to ``<out>/<name>.log``."""
    log = out / f"{part.name}.log"
    start = time.perf_counter()
    with log.open("w") as handle:
        handle.write(f"$ {shlex.join(part.command)}\n\n")
        handle.flush()
        try:
            done = subprocess.run(
                part.command,
                cwd=ROOT,
                env=env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                timeout=part.limit_s,
                check=False,
            )
            part.status = "ok" if done.returncode == 0 else f"failed (exit {done.returncode})"
        except subprocess.TimeoutExpired:
            part.status = f"stopped at its {part.limit_s} s limit"
        except OSError as error:
            part.status = f"could not start ({error})"
    part.seconds = time.perf_counter() - start
    if part.name.startswith("time-") and part.status == "ok":
        lines = log.read_text().strip().splitlines()
        try:
            part.result = json.loads(lines[-1])
        except (IndexError, json.JSONDecodeError):
            part.status = "ok, but no result line"


def table(parts: list[Part]) -> str:
    """The timing table in markdown: one row per configuration, a column per library."""
    results = {p.result["library"]: p.result for p in parts if p.result}
    gpu = next((r["gpu"] for r in results.values()), "unknown GPU")
    lines = [
        f"One training iteration on {gpu} (median of {REPEATS} after {WARMUP} warm-up, ms; "
        "min-max in brackets)",
        "",
        "| preset | batch | " + " | ".join(LIBRARIES.values()) + " | tinygan / PyTorch |",
        "|---|---|" + "---|" * len(LIBRARIES) + "---|",
    ]
    for preset_name, batch in TIMED:
        cells, medians = [], {}
        for library in LIBRARIES:
            row = next(
                (
                    r
                    for r in results.get(library, {}).get("rows", [])
                    if (r["preset"], r["batch"]) == (preset_name, batch)
                ),
                None,
            )
            if row is None:
                cells.append("n/a")
                continue
            medians[library] = row["median_ms"]
            cells.append(f"{row['median_ms']:.2f} ({row['min_ms']:.2f}-{row['max_ms']:.2f})")
        ratio = (
            f"{medians['tinygan'] / medians['torch']:.2f}"
            if len(medians) == len(LIBRARIES) and medians["torch"] > 0
            else "n/a"
        )
        lines.append(f"| {preset_name} | {batch} | " + " | ".join(cells) + f" | {ratio} |")
    return "\n".join(lines)


def summary(parts: list[Part]) -> str:
    lines = [
        "# tinygan GPU check",
        "",
        "| part | status | seconds | command |",
        "|---|---|---|---|",
    ]
    for part in parts:
        lines.append(
            f"| {part.name} | {part.status} | {part.seconds:.0f} | `{shlex.join(part.command)}` |"
        )
    return "\n".join([*lines, "", table(parts), ""])


def write_summary(parts: list[Part], out: Path) -> None:
    (out / "summary.md").write_text(summary(parts))
    records = [
        {k: getattr(p, k) for k in ("name", "command", "limit_s", "status", "seconds", "result")}
        for p in parts
    ]
    (out / "summary.json").write_text(json.dumps(records, indent=2))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir", type=Path, help="folder with the MNIST test split (IDX files)"
    )
    parser.add_argument("--out", type=Path, help="folder for logs, runs, table (created)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    parser.add_argument(
        "--parts", nargs="+", choices=list(TIME_LIMITS), help="run only these parts (default: all)"
    )
    # the preset numbers' spellings of the two flags are kept for commands written before names
    parser.add_argument(
        "--epochs-dcgan-tf", "--epochs-003", type=int, default=20, help="dcgan-tf epochs (20)"
    )
    parser.add_argument(
        "--iterations-mlp-tf",
        "--iterations-000",
        type=int,
        default=20_000,
        help="mlp-tf iterations",
    )
    parser.add_argument(
        "--time-scale", type=float, default=1.0, help="multiply every part's time limit"
    )
    parser.add_argument("--worker", choices=list(LIBRARIES), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is None and (args.data_dir is None or args.out is None):
        parser.error("--data-dir and --out are required")
    if args.worker is None and args.time_scale <= 0:
        parser.error("--time-scale must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker is not None:
        print(json.dumps(worker(args.worker)), flush=True)
        return 0
    parts = [p for p in plan(args) if args.parts is None or p.name in args.parts]
    if args.dry_run:
        for part in parts:
            print(f"# {part.name} (at most {part.limit_s} s)\n{shlex.join(part.command)}")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    env = environment(args.data_dir.resolve())
    write_summary(parts, args.out)
    for part in parts:
        print(f"{part.name}: running (at most {part.limit_s} s)", flush=True)
        run_part(part, args.out, env)
        print(f"{part.name}: {part.status} in {part.seconds:.0f} s", flush=True)
        write_summary(parts, args.out)  # after every part: a later failure keeps what is done
    print(summary(parts))
    return 0 if all(part.status == "ok" for part in parts) else 1


if __name__ == "__main__":
    sys.exit(main())
