"""tinygan's speed: time one training iteration against PyTorch, profile it, or count its floor.

    python benchmarks/speed.py time                     # everything (tens of minutes on 2 cores)
    python benchmarks/speed.py time --presets mlp-tf dcgan-tf --repeats 20
    python benchmarks/speed.py time --quick             # a smoke run: mlp-tf, batch 8, 2 runs
    python benchmarks/speed.py time --full-mlp-tf --data-dir ../shared/data/mnist --split test
    python benchmarks/speed.py time --threads 1         # every library on one thread
    python benchmarks/speed.py profile mlp-tf           # where one iteration's time goes
    python benchmarks/speed.py floor                    # product FLOPs, and their time at the peak

``time`` is the default command: ``python benchmarks/speed.py --quick`` is ``time --quick``.

One iteration is :meth:`tinygan.gan.GAN.train_step`: ``d_steps`` discriminator updates and ``g_steps``
generator updates on synthetic real batches (uniform in the preset's value range). Every
configuration -- one library, one preset, one batch size -- runs in a subprocess of its own, one after
the other, so the libraries' thread pools never compete for the cores and ``TINYGAN_NUMBA`` is read
fresh by each. The parent process imports nothing heavier than the standard library for the same
reason; the subprocesses are this script again, called with ``--worker SPEC``.

``time`` reports per configuration: median / min / max milliseconds, tinygan / PyTorch (medians),
achieved GFLOP/s and the ratio to the compute floor, i.e. the product FLOPs of one iteration
(``benchmarks/flops.py`` says exactly what is counted) divided by the float32 GEMM peak measured here
with a large NumPy matmul. Then the start-up costs (Numba's cold compile, ``import tinygan``), the
optional full mlp-tf run, and PASS / MISS per target. Tables go to stdout, and with the raw numbers
to ``<out>/benchmark.md`` and ``<out>/benchmark.json``. ``profile`` is :mod:`benchmarks.step_profile`
in a subprocess; ``floor`` prints the FLOP count and the floor alone.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__" and not __package__:  # run as a file: import as `python -m` would
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from importlib.metadata import PackageNotFoundError, version  # noqa: E402
from importlib.util import find_spec  # noqa: E402
from typing import Any  # noqa: E402

from benchmarks.common import (  # noqa: E402
    ROOT,
    SEED,
    cpu_count,
    shown_command,
    split_command,
    subprocess_env,
    thread_count,
    time_steps,
    timed,
    training_step,
)

HERE = Path(__file__).resolve().parent
COMMANDS = ("time", "profile", "floor")

#: Presets timed by default, and the batch sizes other than the preset's own (None).
DEFAULT_PLAN: dict[str, list[int | None]] = {
    "mlp-tf": [None],
    "mlp-book": [None],
    "dcgan-keras": [None],
    "dcgan-tf": [64, 256],
}

#: tinygan / PyTorch median ratios to reach: (preset, batch, at most).
RATIO_TARGETS = [("mlp-tf", 64, 0.5), ("dcgan-tf", 64, 0.8), ("dcgan-tf", 256, 0.8)]
COMPILE_TARGET_S = 20.0
IMPORT_TARGET_S = 1.0

#: Environment variables that cap the thread pools of NumPy's BLAS, Numba and PyTorch.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMBA_NUM_THREADS",
)

#: Batch size of the start-up measurement: compilation does not depend on it, so keep the steps cheap.
STARTUP_BATCH = 2
IMPORT_RUNS = 5


@dataclass(frozen=True)
class Library:
    """One contender: how the table names it, and the environment its subprocess runs in."""

    key: str
    label: str
    env: dict[str, str]


LIBRARIES = {
    library.key: library
    for library in (
        Library("tinygan-numba", "tinygan (Numba)", {"TINYGAN_NUMBA": "1"}),
        Library("tinygan-numpy", "tinygan (NumPy, TINYGAN_NUMBA=0)", {"TINYGAN_NUMBA": "0"}),
        # tinygan only builds and traces the networks there: keep Numba out of that process
        Library("torch", "PyTorch eager CPU", {"TINYGAN_NUMBA": "0"}),
    )
}


# -- workers: the code that runs inside the subprocesses ---------------------------------------------
# NumPy, tinygan and PyTorch are imported inside these functions: the parent must start no thread
# pool, and the start-up worker times those very imports.


def worker_peak(spec: dict[str, Any]) -> dict[str, Any]:
    """Best-of-``repeats`` GFLOP/s of an ``n x n`` float32 NumPy matmul, and the BLAS behind it."""
    import numpy as np

    n, repeats = spec["size"], spec["repeats"]
    rng = np.random.default_rng(SEED)
    a, b = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
    a @ b  # the first call starts the BLAS threads
    best = min(timed(lambda: a @ b) for _ in range(repeats))
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        blas_name = f"{blas.get('name')} {blas.get('version')}"
    except (TypeError, KeyError):  # NumPy < 1.26 prints its configuration only
        blas_name = "unknown"
    return {"gflops": 2 * n**3 / best / 1e9, "size": n, "repeats": repeats, "blas": blas_name}


def iteration_flops_of(preset: Any, batch: int) -> Any:
    """:func:`benchmarks.flops.iteration_flops` of the preset's networks (only their shapes count)."""
    import numpy as np

    from benchmarks.flops import iteration_flops

    return iteration_flops(preset, *preset.build(np.random.default_rng(SEED)), batch)


def worker_train(spec: dict[str, Any]) -> dict[str, Any]:
    """Time training iterations of one preset at one batch size in one library."""
    from tinygan.models import get_preset

    preset = get_preset(spec["preset"])
    batch = spec["batch"] or preset.batch_size
    step, info = training_step(spec["library"], preset, batch)
    times = time_steps(step, spec["warmup"], spec["repeats"], spec["min_repeats"], spec["budget_s"])
    flops = iteration_flops_of(preset, batch).total
    return {
        "times_s": times,
        "warmup": spec["warmup"],
        "preset": preset.name,
        "flops": flops,
        **info,
    }


def worker_startup(spec: dict[str, Any]) -> dict[str, Any]:
    """``import tinygan``, then the first and second training iteration of each preset, in seconds.

    Run with an empty ``NUMBA_CACHE_DIR`` the first iteration pays for compiling every kernel it
    meets; the second shows what the same work costs once compiled.
    """
    from benchmarks.common import fresh_gan, synthetic_batches

    start = time.perf_counter()
    import tinygan  # noqa: F401  (the import being timed)
    from tinygan.models import PRESETS
    from tinygan.overrides import active_kernels

    import_s = time.perf_counter() - start
    steps = {
        name: first_iterations(fresh_gan(preset), synthetic_batches(preset, spec["batch"], 1)[0])
        for name, preset in PRESETS.items()
    }
    kernels = active_kernels()
    return {"import_s": import_s, "steps_s": steps, "kernels": kernels, "batch": spec["batch"]}


def first_iterations(gan: Any, real: Any) -> list[float]:
    """Seconds of a fresh GAN's first and second training iteration on the batch ``real``."""
    return [timed(lambda: gan.train_step(lambda: real)) for _ in range(2)]


def worker_profile(spec: dict[str, Any]) -> dict[str, Any]:
    """Where one iteration's time goes (:mod:`benchmarks.step_profile`)."""
    from benchmarks.step_profile import profile

    return profile(spec["preset"], spec["batch"], spec["repeats"], spec["warmup"])


def worker_floor(spec: dict[str, Any]) -> dict[str, Any]:
    """The product FLOPs of one iteration of each planned (preset, batch)."""
    from tinygan.models import get_preset

    rows = []
    for name, batch in spec["plan"]:
        preset = get_preset(name)
        batch = batch or preset.batch_size
        count = iteration_flops_of(preset, batch)
        rows.append({"preset": preset.name, "batch": batch, "d_step": count.d_step})
        rows[-1].update(g_step=count.g_step, d_steps=count.d_steps, g_steps=count.g_steps)
        rows[-1]["total"] = count.total
    return {"rows": rows}


WORKERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "peak": worker_peak,
    "train": worker_train,
    "startup": worker_startup,
    "profile": worker_profile,
    "floor": worker_floor,
}


# -- the parent: plan, launch one subprocess per measurement, tabulate ------------------------------


class WorkerError(RuntimeError):
    """A measurement subprocess failed; the message ends with its stderr."""


def run_worker(spec: dict[str, Any], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run one measurement in a fresh Python process and return its JSON answer."""
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
    done = subprocess.run(
        command, env=subprocess_env(env or {}), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise WorkerError(f"{spec['kind']} worker failed:\n{done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def numba_kernels_present() -> bool:
    """Whether tinygan's Numba kernels exist and Numba is installed (found, not imported)."""
    return find_spec("numba") is not None and (ROOT / "tinygan/kernels/cpu_numba.py").exists()


def choose_libraries(requested: list[str], notes: list[str]) -> list[Library]:
    """The requested libraries that can run here; a note for each one left out."""
    chosen = []
    for key in requested:
        if key == "torch" and find_spec("torch") is None:
            notes.append("PyTorch is not installed: the PyTorch rows and ratios are absent.")
        elif key == "tinygan-numba" and not numba_kernels_present():
            notes.append(
                "tinygan's Numba kernels (tinygan/kernels/cpu_numba.py, numba) are not available: "
                "the Numba rows are absent."
            )
        else:
            chosen.append(LIBRARIES[key])
    return chosen


def plan(presets: list[str] | None, batches: list[int] | None) -> list[tuple[str, int | None]]:
    """(preset, batch) pairs to time; ``None`` stands for the preset's own batch size."""
    names = presets or list(DEFAULT_PLAN)
    if batches:
        return [(name, batch) for name in names for batch in batches]
    return [(name, batch) for name in names for batch in DEFAULT_PLAN.get(name, [None])]


def make_row(library: Library, result: dict[str, Any], peak_gflops: float) -> dict:
    """One table row from a train worker's answer: times in ms, GFLOP/s, ratio to the floor."""
    times_ms = [1e3 * t for t in result["times_s"]]
    median_ms = statistics.median(times_ms)
    floor_ms = 1e3 * result["flops"] / (peak_gflops * 1e9)
    return {
        "preset": result["preset"],
        "batch": result["batch"],
        "library": library.key,
        "label": library.label,
        "kernels": result["kernels"],
        "threads": result["threads"],
        "runs": len(times_ms),
        "warmup": result["warmup"],
        "times_ms": times_ms,
        "median_ms": median_ms,
        "min_ms": min(times_ms),
        "max_ms": max(times_ms),
        "flops": result["flops"],
        "gflops": result["flops"] / (median_ms * 1e6),
        "floor_ms": floor_ms,
        "floor_ratio": median_ms / floor_ms,
        "vs_torch": None,
    }


def add_torch_ratios(rows: list[dict]) -> None:
    """Set ``vs_torch`` (tinygan median / PyTorch median) on the tinygan rows that have a twin."""
    torch_ms = {(r["preset"], r["batch"]): r["median_ms"] for r in rows if r["library"] == "torch"}
    for row in rows:
        reference = torch_ms.get((row["preset"], row["batch"]))
        if row["library"] != "torch" and reference:
            row["vs_torch"] = row["median_ms"] / reference


def measure_speed(
    args: argparse.Namespace, libraries: list[Library], peak_gflops: float, notes: list[str]
) -> list[dict]:
    """Every (preset, batch, library) configuration, one subprocess each, one after the other."""
    rows = []
    for preset, batch in plan(args.presets, args.batches):
        for library in libraries:
            spec = {
                "kind": "train",
                "library": library.key,
                "preset": preset,
                "batch": batch,
                "warmup": args.warmup,
                "repeats": args.repeats,
                "min_repeats": args.min_repeats,
                "budget_s": args.budget,
            }
            try:
                result = run_worker(spec, library.env)
            except WorkerError as error:
                notes.append(
                    f"preset {preset}, batch {batch or 'default'}, {library.label}: {error}"
                )
                print(f"  {preset} {library.label}: FAILED", file=sys.stderr)
                continue
            if library.key == "tinygan-numba" and result["kernels"] != "numba":
                notes.append(f"tinygan-numba ran {result['kernels']}: Numba row dropped.")
                continue
            row = make_row(library, result, peak_gflops)
            rows.append(row)
            print(
                f"  {row['preset']} batch {row['batch']:>4} {library.label:<34} "
                f"median {row['median_ms']:10.1f} ms over {row['runs']} runs",
                file=sys.stderr,
            )
    add_torch_ratios(rows)
    return rows


def measure_startup(notes: list[str]) -> dict[str, Any]:
    """Numba's cold compile (fresh cache dir), a warm start from that cache, and warm import time."""
    snippet = "import time; t = time.perf_counter(); import tinygan; print(time.perf_counter() - t)"
    env = subprocess_env({})
    imports = []
    for _ in range(IMPORT_RUNS):
        done = subprocess.run(
            [sys.executable, "-c", snippet], env=env, capture_output=True, text=True, check=True
        )
        imports.append(float(done.stdout.strip().splitlines()[-1]))
    startup: dict[str, Any] = {"import_s": imports, "import_median_s": statistics.median(imports)}
    if not numba_kernels_present():
        notes.append("No Numba kernels: the compile-time measurement is skipped.")
        return startup
    with tempfile.TemporaryDirectory(prefix="tinygan-numba-cache-") as cache:
        spec = {"kind": "startup", "batch": STARTUP_BATCH}
        cold = run_worker(spec, {"NUMBA_CACHE_DIR": cache, "TINYGAN_NUMBA": "1"})
        warm = run_worker(spec, {"NUMBA_CACHE_DIR": cache, "TINYGAN_NUMBA": "1"})
    if cold["kernels"] != "numba":
        notes.append(f"The start-up runs used {cold['kernels']}: the compile time is not Numba's.")
    steady = sum(second for _, second in cold["steps_s"].values())
    cold_total = cold["import_s"] + sum(first for first, _ in cold["steps_s"].values())
    warm_total = warm["import_s"] + sum(first for first, _ in warm["steps_s"].values())
    startup.update(
        cold=cold,
        warm=warm,
        cold_start_s=cold_total,
        warm_start_s=warm_total,
        steady_steps_s=steady,
        compile_s=cold_total - steady,
    )
    return startup


def run_full_mlp_tf(args: argparse.Namespace) -> dict[str, Any]:
    """Wall time of the full mlp-tf run (``examples/mnist_mlp_gan.py``) with Numba on."""
    out = Path(args.out) / "full-mlp-tf-run"
    command = [
        sys.executable,
        str(ROOT / "examples/mnist_mlp_gan.py"),
        "--iterations",
        str(args.full_mlp_tf_iterations),
        "--seed",
        str(SEED),
        "--out",
        str(out),
        "--split",
        args.split,
        "--no-progress",
    ]
    if args.data_dir:
        command += ["--data-dir", str(args.data_dir)]
    start = time.perf_counter()
    done = subprocess.run(
        command, env=subprocess_env({"TINYGAN_NUMBA": "1"}), capture_output=True, text=True
    )
    return {
        "command": shown_command("examples/mnist_mlp_gan.py", command[2:]),
        "iterations": args.full_mlp_tf_iterations,
        "wall_s": time.perf_counter() - start,
        "returncode": done.returncode,
        "stderr_tail": done.stderr.strip()[-2000:] if done.returncode else "",
    }


def target(name: str, value: float | None, limit: float, unit: str, missing: str) -> dict:
    """A PASS/MISS verdict of ``value <= limit`` (``n/a`` with the reason when not measured)."""
    if value is None:
        return {
            "target": name,
            "value": None,
            "limit": limit,
            "unit": unit,
            "status": "n/a",
            "why": missing,
        }
    status = "PASS" if value <= limit else "MISS"
    return {
        "target": name,
        "value": value,
        "limit": limit,
        "unit": unit,
        "status": status,
        "why": "",
    }


def evaluate_targets(rows: list[dict], startup: dict[str, Any] | None) -> list[dict]:
    """The speed targets (tinygan with Numba where it ran, else NumPy) and the start-up targets."""
    verdicts = []
    for preset, batch, limit in RATIO_TARGETS:
        candidates = [r for r in rows if (r["preset"], r["batch"]) == (preset, batch)]
        best = next(
            (
                r
                for key in ("tinygan-numba", "tinygan-numpy")
                for r in candidates
                if r["library"] == key
            ),
            None,
        )
        ratio = best["vs_torch"] if best else None
        name = f"tinygan/PyTorch, preset {preset} batch {batch}"
        if best:
            name += f" ({best['label']})"
        verdicts.append(target(name, ratio, limit, "x", "not timed side by side with PyTorch"))
    startup = startup or {}
    verdicts.append(
        target(
            "Numba cold compile (import + first steps - steady steps)",
            startup.get("compile_s"),
            COMPILE_TARGET_S,
            "s",
            "not measured: --quick, --no-startup or no Numba kernels",
        )
    )
    verdicts.append(
        target(
            "warm `import tinygan` (median)",
            startup.get("import_median_s"),
            IMPORT_TARGET_S,
            "s",
            "not measured: --quick or --no-startup",
        )
    )
    return verdicts


def machine_description(peak: dict[str, Any]) -> dict[str, Any]:
    """CPU model, cores, memory, Python and library versions (read without importing them)."""
    cpu = platform.processor() or platform.machine()
    memory = None
    if Path("/proc/cpuinfo").exists():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    if Path("/proc/meminfo").exists():
        total_kb = Path("/proc/meminfo").read_text().split()[1]
        memory = f"{int(total_kb) / 2**20:.1f} GiB"
    versions = {}
    for package in ("numpy", "numba", "torch"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    return {
        "cpu": cpu,
        "cores": cpu_count(),
        "threads": thread_count(),
        "memory": memory,
        "python": platform.python_version(),
        "blas": peak["blas"],
        **versions,
    }


# -- reporting ---------------------------------------------------------------------------------------


def fmt(value: float | None, spec: str, suffix: str = "") -> str:
    """``value`` formatted, or a dash when absent."""
    return "-" if value is None else f"{value:{spec}}{suffix}"


def peak_line(peak: dict[str, Any]) -> str:
    """The measured GEMM peak, as the reports state it."""
    return (
        f"float32 GEMM peak: {peak['gflops']:.1f} GFLOP/s "
        f"(NumPy matmul {peak['size']}^2, best of {peak['repeats']})"
    )


def markdown(report: dict[str, Any]) -> str:
    """The whole report as Markdown tables."""
    m = report["machine"]
    lines = [
        "# tinygan benchmark",
        "",
        f"- Machine: {m['cpu']}, {m['cores']} cores ({m['threads']} threads per library), "
        f"{m['memory']}; Python {m['python']}, "
        f"numpy {m['numpy']} ({m['blas']}), numba {m['numba']}, torch {m['torch']}",
        f"- Command: `{report['command']}`",
        f"- {peak_line(report['peak'])}",
        "",
        *iteration_lines(report["rows"]),
        *target_lines(report["targets"]),
        *startup_lines(report.get("startup")),
        *full_run_lines(report.get("full_mlp_tf")),
    ]
    if report["notes"]:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in report["notes"]]
    return "\n".join(lines) + "\n"


def iteration_lines(rows: list[dict]) -> list[str]:
    """The table of training iterations, one row per (preset, batch, library)."""
    lines = [
        "## One training iteration (d_steps D updates + g_steps G updates)",
        "",
        "| preset | batch | library | median ms | min ms | max ms | runs | tinygan / PyTorch "
        "| GFLOP/s | x floor |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['preset']} | {r['batch']} | {r['label']} | {r['median_ms']:.1f} "
            f"| {r['min_ms']:.1f} | {r['max_ms']:.1f} | {r['runs']} | {fmt(r['vs_torch'], '.2f')} "
            f"| {r['gflops']:.1f} | {r['floor_ratio']:.1f} |"
        )
    return lines + [
        "",
        "x floor: median / (product FLOPs of the iteration / GEMM peak); 1.0 would be every "
        "matrix product at the peak and everything else free (benchmarks/flops.py).",
    ]


def target_lines(targets: list[dict]) -> list[str]:
    """The PASS / MISS table of the targets."""
    lines = ["", "## Targets", "", "| target | value | limit | result |", "|---|---:|---:|---|"]
    for t in targets:
        value = fmt(t["value"], ".2f", f" {t['unit']}")
        status = t["status"] if t["status"] != "n/a" else f"n/a, {t['why']}"
        lines.append(f"| {t['target']} | {value} | {t['limit']} {t['unit']} | {status} |")
    return lines


def startup_lines(startup: dict[str, Any] | None) -> list[str]:
    """The start-up section (none when it was not measured)."""
    if not startup:
        return []
    lines = [
        "",
        "## Start-up",
        "",
        f"- warm `import tinygan`: median {startup['import_median_s']:.3f} s over "
        f"{len(startup['import_s'])} fresh processes",
    ]
    if "cold" in startup:
        lines += [
            f"- cold start (empty NUMBA_CACHE_DIR): import + first iteration of every preset at "
            f"batch {startup['cold']['batch']}: {startup['cold_start_s']:.2f} s, of which "
            f"{startup['steady_steps_s']:.2f} s is the same iterations once compiled",
            f"- warm start (the cache that run left): {startup['warm_start_s']:.2f} s",
        ]
    return lines


def full_run_lines(full: dict[str, Any] | None) -> list[str]:
    """The full mlp-tf run's section (none when it did not run)."""
    if not full:
        return []
    outcome = "ok" if full["returncode"] == 0 else f"FAILED (exit {full['returncode']})"
    return [
        "",
        "## Full mlp-tf run",
        "",
        f"- {full['iterations']} iterations: {full['wall_s']:.1f} s wall ({outcome})",
        f"- `{full['command']}`",
    ]


def write_report(report: dict[str, Any], out: Path) -> None:
    """``benchmark.json`` (every number) and ``benchmark.md`` (the tables) in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "benchmark.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "benchmark.md").write_text(markdown(report))


def floor_markdown(peak: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """``floor``'s table: each iteration's product GFLOP and the milliseconds they take at the peak."""
    lines = [
        peak_line(peak),
        "",
        "| preset | batch | D step GFLOP | G step GFLOP | iteration GFLOP "
        "(d_steps x D + g_steps x G) | floor ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['preset']} | {r['batch']} | {r['d_step'] / 1e9:.3f} | {r['g_step'] / 1e9:.3f} "
            f"| {r['total'] / 1e9:.3f} ({r['d_steps']} x D + {r['g_steps']} x G) "
            f"| {1e3 * r['total'] / (peak['gflops'] * 1e9):.2f} |"
        )
    lines += ["", "What is counted: benchmarks/flops.py."]
    return "\n".join(lines) + "\n"


# -- the command line --------------------------------------------------------------------------------


def add_plan_flags(parser: argparse.ArgumentParser) -> None:
    """``--presets``, ``--batches`` and ``--threads``, shared by ``time`` and ``floor``."""
    parser.add_argument(
        "--presets",
        nargs="+",
        help="presets by name (default: mlp-tf mlp-book dcgan-keras dcgan-tf)",
    )
    parser.add_argument(
        "--batches",
        nargs="+",
        type=int,
        help="batch sizes for every preset (default: the preset's; dcgan-tf at 64 and 256)",
    )
    add_threads_flag(parser)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: mlp-tf at batch 8, 2 runs, small GEMM, no start-up measurements",
    )


def add_threads_flag(parser: argparse.ArgumentParser) -> None:
    """``--threads``, which every command passes on to its subprocesses."""
    parser.add_argument(
        "--threads",
        type=int,
        help="threads per library (default: every core; $OMP_NUM_THREADS if set)",
    )


def time_parser() -> argparse.ArgumentParser:
    """The ``time`` command's flags; ``--quick`` changes the defaults of the ones not given."""
    parser = argparse.ArgumentParser(
        prog="speed.py [time]",
        description=__doc__.splitlines()[0],
        epilog="other commands: speed.py profile PRESET ..., speed.py floor ... (each with --help)",
    )
    add_plan_flags(parser)
    parser.add_argument("--repeats", type=int, help="timed iterations per configuration (10)")
    parser.add_argument("--min-repeats", type=int, default=3, help="timed iterations at least (3)")
    parser.add_argument("--warmup", type=int, help="untimed iterations first (1)")
    parser.add_argument(
        "--budget",
        type=float,
        default=60.0,
        help="stop timing a configuration after this many seconds, once --min-repeats ran (60)",
    )
    parser.add_argument(
        "--libraries",
        nargs="+",
        choices=list(LIBRARIES),
        default=list(LIBRARIES),
        help="what to time (default: all three)",
    )
    parser.add_argument("--out", type=Path, default=HERE / "results", help="report folder")
    parser.add_argument(
        "--no-startup", action="store_true", help="skip the compile and import measurements"
    )
    parser.add_argument(
        "--full-mlp-tf", action="store_true", help="also time the full mlp-tf run (needs MNIST)"
    )
    parser.add_argument(
        "--full-mlp-tf-iterations", type=int, default=100_000, help=argparse.SUPPRESS
    )
    parser.add_argument("--data-dir", type=Path, help="MNIST folder for --full-mlp-tf")
    parser.add_argument(
        "--split", choices=["train", "test"], default="train", help="for --full-mlp-tf"
    )
    return parser


def profile_parser() -> argparse.ArgumentParser:
    """The ``profile`` command's flags."""
    parser = argparse.ArgumentParser(
        prog="speed.py profile",
        description="Where one training iteration of PRESET goes: per part, layer and kernel "
        "(Numba kernels unless TINYGAN_NUMBA=0).",
    )
    parser.add_argument("preset", help="the preset, by name")
    parser.add_argument("--batch", type=int, help="batch size (default: the preset's)")
    parser.add_argument("--repeats", type=int, default=10, help="timed iterations (10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed iterations first (2)")
    add_threads_flag(parser)
    return parser


def floor_parser() -> argparse.ArgumentParser:
    """The ``floor`` command's flags."""
    parser = argparse.ArgumentParser(
        prog="speed.py floor",
        description="The product FLOPs of one training iteration and the time they would take at "
        "the float32 GEMM peak measured here (benchmarks/flops.py says what is counted).",
    )
    add_plan_flags(parser)
    return parser


def parse_args(argv: list[str]) -> tuple[str, argparse.Namespace]:
    """The command and its flags; ``--quick`` changes the defaults of the flags not given."""
    command, rest = split_command(argv, COMMANDS)
    parsers = {"time": time_parser, "profile": profile_parser, "floor": floor_parser}
    args = parsers[command]().parse_args(rest)
    if command == "profile":
        return command, args
    if args.quick:
        args.presets = args.presets or ["mlp-tf"]
        args.batches = args.batches or [8]
    args.peak_size, args.peak_repeats = (512, 3) if args.quick else (2048, 10)
    if command == "time":
        if args.repeats is None:
            args.repeats = 2 if args.quick else 10
        if args.warmup is None:
            args.warmup = 1
        args.no_startup = args.no_startup or args.quick
    return command, args


def measure_peak(args: argparse.Namespace) -> dict[str, Any]:
    """The float32 GEMM peak, in a subprocess under the command's thread settings."""
    print("measuring the GEMM peak ...", file=sys.stderr)
    return run_worker({"kind": "peak", "size": args.peak_size, "repeats": args.peak_repeats})


def time_command(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    """Time the planned configurations; print the tables, write them, return the report."""
    notes: list[str] = []
    libraries = choose_libraries(args.libraries, notes)
    peak = measure_peak(args)
    rows = measure_speed(args, libraries, peak["gflops"], notes)
    startup = None
    if not args.no_startup:
        print("measuring start-up ...", file=sys.stderr)
        startup = measure_startup(notes)
    report: dict[str, Any] = {
        "command": shown_command("benchmarks/speed.py", ["time", *argv]),
        "machine": machine_description(peak),
        "peak": peak,
        "rows": rows,
        "startup": startup,
        "full_mlp_tf": run_full_mlp_tf(args) if args.full_mlp_tf else None,
        "targets": evaluate_targets(rows, startup),
        "notes": notes,
    }
    write_report(report, args.out)
    print(markdown(report))
    print(f"written: {args.out / 'benchmark.md'}, {args.out / 'benchmark.json'}", file=sys.stderr)
    return report


def profile_command(args: argparse.Namespace) -> dict[str, Any]:
    """Profile the preset in a subprocess and print the three tables."""
    from benchmarks.step_profile import markdown as profile_markdown

    spec = {"kind": "profile", "preset": args.preset, "batch": args.batch}
    spec.update(repeats=args.repeats, warmup=args.warmup)
    report = run_worker(spec)
    print(profile_markdown(report))
    return report


def floor_command(args: argparse.Namespace) -> dict[str, Any]:
    """Count the planned iterations' product FLOPs and print them beside the measured peak."""
    peak = measure_peak(args)
    rows = run_worker({"kind": "floor", "plan": plan(args.presets, args.batches)})["rows"]
    print(floor_markdown(peak, rows))
    return {"peak": peak, "rows": rows}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the command the arguments name; returns its report (empty for a worker)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        spec = json.loads(argv[1])
        print(json.dumps(WORKERS[spec["kind"]](spec)))
        return {}
    command, args = parse_args(argv)
    if args.threads:
        # inherited by every subprocess; read by OpenBLAS, Numba and (through thread_count) PyTorch
        for name in THREAD_VARIABLES:
            os.environ[name] = str(args.threads)
    if command == "profile":
        return profile_command(args)
    if command == "floor":
        return floor_command(args)
    return time_command(args, argv[1:] if argv[:1] == ["time"] else argv)


if __name__ == "__main__":
    main()
