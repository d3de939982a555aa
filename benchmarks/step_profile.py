"""Where one training iteration's time goes: per layer, per kernel, the optimizers, the rest.

    python benchmarks/speed.py profile mlp-tf
    python benchmarks/speed.py profile dcgan-tf --batch 256 --repeats 5

The GAN of the preset is built as :mod:`benchmarks.speed` times it and stepped on synthetic
batches, first plain (the iteration's median time, as the benchmark reports it), then with timers
put around

* every leaf layer's ``forward`` and ``backward`` (instance attributes, so only this GAN is touched);
* every overridable function (:mod:`tinygan.overrides`): the Numba kernel when one is registered,
  else the plain NumPy function, named by which of the two ran;
* the optimizers' ``zero_grad`` and ``step``, the loss, and the noise;

and one iteration runs under :mod:`tracemalloc` for the memory its temporaries take at the peak.

Kernels run inside layers and optimizers, so the kernel table is a second view of the same time,
not an addition to it. "Python and the rest" is the plain median minus everything timed at the top
level: container dispatch, argument checks, the statistics of the step. Every row is the median
over the iterations, so rows need not add up exactly. The timers cost a few
microseconds per call, so the instrumented total is a little above the plain one; the report shows
both.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from benchmarks.common import fresh_gan, synthetic_batches


class Stopwatch:
    """Seconds and calls accumulated per key while wrapped functions run."""

    def __init__(self) -> None:
        self.seconds: dict[tuple, float] = defaultdict(float)
        self.calls: dict[tuple, int] = defaultdict(int)

    def wrap(self, key: tuple, function: Callable[..., Any]) -> Callable[..., Any]:
        """``function`` with its time and calls added under ``key``."""

        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[key] += time.perf_counter() - start
                self.calls[key] += 1

        return timed

    def clear(self) -> None:
        self.seconds.clear()
        self.calls.clear()


def instrument_layers(watch: Stopwatch, network: Any, label: str) -> None:
    """Time each leaf layer of ``network`` under ("layer", label, path, repr, "forward"/"backward")."""
    for path, layer in network.named_layers():
        if layer.sublayers():
            continue
        for phase in ("forward", "backward"):
            key = ("layer", label, path.rstrip("."), repr(layer), phase)
            setattr(layer, phase, watch.wrap(key, getattr(layer, phase)))


def instrument_kernels(watch: Stopwatch) -> None:
    """Time every overridable function on CPU arrays, under ("kernel", name, "numba"/"plain")."""
    from tinygan import overrides

    overrides.active_kernels()
    for name in overrides.overridable_names():
        fast = overrides.replacement(name, "cpu")
        function, kind = (fast, "numba") if fast is not None else (overrides.plain(name), "plain")
        overrides.register(name, "cpu", watch.wrap(("kernel", name, kind), function))


def instrument_gan(watch: Stopwatch, gan: Any) -> None:
    """Time the layers, optimizers, loss and noise of ``gan``."""
    instrument_layers(watch, gan.generator, "G")
    instrument_layers(watch, gan.discriminator, "D")
    for label, optimizer in (("G", gan.g_optimizer), ("D", gan.d_optimizer)):
        for method in ("zero_grad", "step"):
            key = ("part", f"optimizer {label}.{method}")
            setattr(optimizer, method, watch.wrap(key, getattr(optimizer, method)))
    for method in ("discriminator", "generator"):  # the game's loss and its gradient
        key = ("part", f"loss ({gan.loss.name}, {method})")
        setattr(gan.loss, method, watch.wrap(key, getattr(gan.loss, method)))
    gan.sample_noise = watch.wrap(("part", "noise"), gan.sample_noise)


def median_ms(step: Callable[[], Any], repeats: int, watch: Stopwatch | None = None) -> tuple:
    """Median milliseconds of ``step``; with ``watch``, also each key's median ms and calls.

    Medians per key, not means: one iteration slowed by the machine must not skew a row.
    """
    times, per_key = [], defaultdict(list)
    for _ in range(repeats):
        if watch is not None:
            watch.clear()
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
        if watch is not None:
            for key, seconds in watch.seconds.items():
                per_key[key].append((seconds, watch.calls[key]))
    keys = {
        key: (1e3 * statistics.median(s for s, _ in runs), statistics.median(n for _, n in runs))
        for key, runs in per_key.items()
    }
    return 1e3 * statistics.median(times), keys


def peak_temporaries_mb(step: Callable[[], Any]) -> float:
    """Megabytes of memory one warm iteration holds at its peak beyond what it started with.

    tracemalloc sees NumPy's array memory; what is reused from step to step (parameters, moments,
    the kernels' workspaces) is already held at the start and does not count.
    """
    import tracemalloc

    tracemalloc.start()
    try:
        start, _ = tracemalloc.get_traced_memory()
        step()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return (peak - start) / 2**20


def profile(preset_name: str, batch: int | None, repeats: int, warmup: int) -> dict[str, Any]:
    """Profile ``repeats`` iterations of the preset; returns the tables' rows (ms per iteration)."""
    import itertools

    from tinygan.models import get_preset
    from tinygan.overrides import active_kernels

    preset = get_preset(preset_name)
    batch = batch or preset.batch_size
    gan = fresh_gan(preset)
    cycle = itertools.cycle(synthetic_batches(preset, batch, preset.d_steps))

    def step() -> None:
        gan.train_step(lambda: next(cycle))

    for _ in range(warmup):
        step()
    plain_ms, _ = median_ms(step, repeats)
    temporaries_mb = peak_temporaries_mb(step)
    watch = Stopwatch()
    instrument_gan(watch, gan)
    instrument_kernels(watch)
    step()
    instrumented_ms, medians = median_ms(step, repeats, watch)
    per_iteration = {key: ms for key, (ms, _) in medians.items()}
    calls = {key: n for key, (_, n) in medians.items()}

    layers = [
        {"network": key[1], "path": key[2], "layer": key[3], "phase": key[4], "ms": ms}
        for key, ms in per_iteration.items()
        if key[0] == "layer"
    ]
    parts = {key[1]: ms for key, ms in per_iteration.items() if key[0] == "part"}
    for network in ("G", "D"):
        for phase in ("forward", "backward"):
            parts[f"{network} {phase} (layers)"] = sum(
                row["ms"] for row in layers if (row["network"], row["phase"]) == (network, phase)
            )
    parts["Python and the rest"] = max(0.0, instrumented_ms - sum(parts.values()))
    kernels = [
        {"kernel": key[1], "implementation": key[2], "calls": calls[key], "ms": ms}
        for key, ms in per_iteration.items()
        if key[0] == "kernel"
    ]
    return {
        "preset": preset.name,
        "batch": batch,
        "repeats": repeats,
        "kernels_active": active_kernels(),
        "plain_ms": plain_ms,
        "temporaries_mb": temporaries_mb,
        "instrumented_ms": instrumented_ms,
        "parts": parts,
        "layers": layers,
        "kernels": kernels,
    }


def markdown(report: dict[str, Any]) -> str:
    """The profile as three Markdown tables: parts of the step, layers, kernels."""
    total = report["instrumented_ms"]

    def share(ms: float) -> str:
        return f"{100 * ms / total:.1f}%"

    lines = [
        f"## Profile of {report['preset']}, batch {report['batch']} "
        f"({report['kernels_active']} kernels, median of {report['repeats']} iterations)",
        "",
        f"One iteration: {report['plain_ms']:.3f} ms plain, {total:.3f} ms with the timers; "
        f"at its peak it holds {report['temporaries_mb']:.1f} MB of temporary arrays.",
        "",
        "| part of the iteration | ms | share |",
        "|---|---|---|",
    ]
    for name, ms in sorted(report["parts"].items(), key=lambda item: -item[1]):
        lines.append(f"| {name} | {ms:.3f} | {share(ms)} |")
    lines += ["", "| network | layer | forward ms | backward ms | share |", "|---|---|---|---|---|"]
    by_layer: dict[tuple, dict[str, float]] = defaultdict(dict)
    for row in report["layers"]:
        by_layer[(row["network"], row["path"], row["layer"])][row["phase"]] = row["ms"]
    for (network, path, layer), phases in by_layer.items():
        forward, backward = phases.get("forward", 0.0), phases.get("backward", 0.0)
        name = f"[{path}] {layer}"
        lines.append(
            f"| {network} | {name} | {forward:.3f} | {backward:.3f} | {share(forward + backward)} |"
        )
    lines += ["", "| kernel | runs as | calls | ms | share |", "|---|---|---|---|---|"]
    for row in sorted(report["kernels"], key=lambda row: -row["ms"]):
        lines.append(
            f"| {row['kernel']} | {row['implementation']} | {row['calls']:g} | {row['ms']:.3f} | "
            f"{share(row['ms'])} |"
        )
    return "\n".join(lines) + "\n"
