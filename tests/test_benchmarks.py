"""The benchmark harness: exact FLOP counts, the PyTorch twins of the presets, a smoke run, and the
folder itself (every module imports, none imports another back, the README names every script).

The smoke run times mlp-tf at batch 8 for two iterations per library, in subprocesses, and checks
the reports it writes; no timing is asserted.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from benchmarks import flops, speed
from benchmarks.common import shown_command
from tinygan.models import PRESETS
from tinygan.nn import Conv2D, ConvTranspose2D, Dense, ReLU, Sequential, sigmoid
from tinygan.rounding import (
    assert_forward_within_rounding,
    assert_layers_within_rounding,
    assert_within_rounding,
    backward_magnitudes,
)

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"

HAS_TORCH = importlib.util.find_spec("torch") is not None
requires_torch = pytest.mark.skipif(not HAS_TORCH, reason="PyTorch is not installed")


# -- FLOP counting -----------------------------------------------------------------------------------


def test_gemm_flops_of_known_layers(rng):
    dense = flops.trace(Dense(784, 128, rng=rng), (784,))
    assert dense[0].gemm_flops == 2 * 784 * 128
    # "same" stride-2 convolution 28 -> 14: every output pixel is a 5x5x1 window per output channel
    conv = flops.trace(Conv2D(1, 64, 5, stride=2, padding="same", rng=rng), (1, 28, 28))
    assert conv[0].output_shape == (64, 14, 14)
    assert conv[0].gemm_flops == 2 * 14 * 14 * 64 * 1 * 25
    # transposed 7 -> 14: every input pixel stamps a 5x5 kernel into each of 32 output channels
    deconv = flops.trace(ConvTranspose2D(64, 32, 5, stride=2, padding="same", rng=rng), (64, 7, 7))
    assert deconv[0].output_shape == (32, 14, 14)
    assert deconv[0].gemm_flops == 2 * 7 * 7 * 64 * 32 * 25
    assert flops.trace(ReLU(), (10,))[0].gemm_flops == 0


def test_backward_skips_the_first_input_gradient_unless_asked(rng):
    costs = flops.trace(Sequential(Dense(3, 4, rng=rng), ReLU(), Dense(4, 5, rng=rng)), (3,))
    first, second = 2 * 3 * 4, 2 * 4 * 5
    assert flops.forward_flops(costs) == first + second
    assert flops.backward_flops(costs, input_grad=False, weight_grads=True) == first + 2 * second
    assert flops.backward_flops(costs, input_grad=True, weight_grads=False) == first + second
    assert flops.backward_flops(costs, input_grad=True, weight_grads=True) == 2 * (first + second)


def test_iteration_flops_of_mlp_tf_by_hand():
    preset = PRESETS["mlp-tf"]
    generator, discriminator = preset.build(np.random.default_rng(0))
    n = 64
    g1, g2 = 2 * 100 * 128, 2 * 128 * 784  # G 100-128-784
    d1, d2 = 2 * 784 * 128, 2 * 128 * 1  # D 784-128-1
    # D step: G forward; on real and on fake D forward, weight grads, input grad of layer 2 only.
    # G step: G forward, D forward, D input grads (both layers), G weight grads, G's layer-2 input grad.
    count = flops.iteration_flops(preset, generator, discriminator, n)
    assert count.d_step == n * (g1 + g2 + 2 * (2 * d1 + 3 * d2))
    assert count.g_step == n * (2 * g1 + 3 * g2 + 2 * d1 + 2 * d2)
    assert count.total == n * (3 * g1 + 4 * g2 + 6 * d1 + 8 * d2)


def test_iteration_flops_count_every_generator_step():
    preset = PRESETS["dcgan-keras"]
    assert (preset.d_steps, preset.g_steps) == (1, 5)
    generator, discriminator = preset.build(np.random.default_rng(0))
    count = flops.iteration_flops(preset, generator, discriminator, 2)
    assert count.total == count.d_step + 5 * count.g_step
    assert count.d_step > 0 and count.g_step > 0


def test_a_simultaneous_iteration_saves_the_generator_updates_forward_passes():
    preset = PRESETS["mlp-tf"]
    generator, discriminator = preset.build(np.random.default_rng(0))
    n = 64
    g1, g2 = 2 * 100 * 128, 2 * 128 * 784
    d1, d2 = 2 * 784 * 128, 2 * 128 * 1
    alternating = flops.iteration_flops(preset, generator, discriminator, n)
    simultaneous = replace(preset, simultaneous=True)
    count = flops.iteration_flops(simultaneous, generator, discriminator, n)
    assert count.d_step == alternating.d_step
    assert count.g_step == alternating.g_step - n * (g1 + g2 + d1 + d2)  # no G or D forward
    dcgan_tf = PRESETS["dcgan-tf"]  # a simultaneous step by default
    assert dcgan_tf.simultaneous
    networks = dcgan_tf.build(np.random.default_rng(0))
    count = flops.iteration_flops(dcgan_tf, *networks, 2)
    as_alternating = flops.iteration_flops(replace(dcgan_tf, simultaneous=False), *networks, 2)
    g_costs, d_costs = flops.trace(networks[0], (100,)), flops.trace(networks[1], (1, 28, 28))
    forwards = flops.forward_flops(g_costs) + flops.forward_flops(d_costs)
    assert count.total == as_alternating.total - 2 * forwards


# -- targets and plan --------------------------------------------------------------------------------


def row(preset, batch, library, median_ms, vs_torch=None):
    label = speed.LIBRARIES[library].label
    return {
        "preset": preset,
        "batch": batch,
        "library": library,
        "label": label,
        "median_ms": median_ms,
        "vs_torch": vs_torch,
    }


def test_reported_commands_name_no_folder_of_the_machine():
    argv = ["--data-dir", "/srv/data/mnist", "--out=/tmp/x", "--report", str(BENCHMARKS / "Q.md")]
    argv += ["--split", "test", "../rel"]
    assert shown_command("benchmarks/quality.py", argv) == (
        "python benchmarks/quality.py --data-dir DATA_DIR --out=OUT --report benchmarks/Q.md "
        "--split test ../rel"
    )


def test_targets_prefer_numba_and_say_pass_miss_or_na():
    rows = [
        row("mlp-tf", 64, "tinygan-numpy", 30.0, vs_torch=0.6),
        row("mlp-tf", 64, "tinygan-numba", 10.0, vs_torch=0.4),
        row("mlp-tf", 64, "torch", 25.0),
        row("dcgan-tf", 64, "tinygan-numpy", 200.0, vs_torch=1.2),
        row("dcgan-tf", 64, "torch", 170.0),
    ]
    startup = {"compile_s": 25.0, "import_median_s": 0.4}
    verdicts = {t["target"].split(" (")[0]: t for t in speed.evaluate_targets(rows, startup)}
    assert verdicts["tinygan/PyTorch, preset mlp-tf batch 64"]["status"] == "PASS"
    assert verdicts["tinygan/PyTorch, preset mlp-tf batch 64"]["value"] == 0.4
    assert verdicts["tinygan/PyTorch, preset dcgan-tf batch 64"]["status"] == "MISS"
    assert verdicts["tinygan/PyTorch, preset dcgan-tf batch 256"]["status"] == "n/a"
    assert verdicts["Numba cold compile"]["status"] == "MISS"
    assert verdicts["warm `import tinygan`"]["status"] == "PASS"


def test_torch_ratios_pair_rows_by_preset_and_batch():
    rows = [row("dcgan-tf", 64, "tinygan-numpy", 90.0), row("dcgan-tf", 64, "torch", 100.0)]
    rows.append(row("dcgan-tf", 256, "tinygan-numpy", 300.0))
    speed.add_torch_ratios(rows)
    assert rows[0]["vs_torch"] == pytest.approx(0.9)
    assert rows[1]["vs_torch"] is None and rows[2]["vs_torch"] is None


def test_default_plan_and_batch_override():
    assert speed.plan(None, None) == [
        ("mlp-tf", None),
        ("mlp-book", None),
        ("dcgan-keras", None),
        ("dcgan-tf", 64),
        ("dcgan-tf", 256),
    ]
    assert speed.plan(["mlp-tf", "dcgan-tf"], [8]) == [("mlp-tf", 8), ("dcgan-tf", 8)]


# -- the PyTorch twins -------------------------------------------------------------------------------


@requires_torch
@pytest.mark.parametrize("name", ["mlp-tf", "mlp-book", "dcgan-keras", "dcgan-tf"])
def test_torch_twin_computes_the_same_networks(name):
    """Each layer of the twin computes, from the input the twin gave it, what the tinygan layer
    computes, within the rounding bound of that layer; both networks' outputs are within the bound
    of the whole network (:mod:`tinygan.rounding`)."""
    from conftest import torch_layer_outputs

    from tinygan.interop.torch_models import to_torch

    preset = PRESETS[name]
    generator, discriminator = preset.build(np.random.default_rng(1))
    rng = np.random.default_rng(2)
    z = rng.standard_normal((2, preset.latent_dim)).astype(np.float32)
    x = rng.uniform(-1, 1, size=(2, *preset.data_shape)).astype(np.float32)
    # training mode (for G only): BatchNorm on batch statistics (the generators have no dropout)
    for network, inputs, sample_shape, training in (
        (generator, z, (preset.latent_dim,), False),
        (discriminator, x, preset.data_shape, False),
        (generator, z, (preset.latent_dim,), True),
    ):
        twin = to_torch(network, sample_shape).train(training)
        outputs = torch_layer_outputs(twin, inputs)
        what = f"{name} {'training' if training else 'evaluation'}"
        assert_layers_within_rounding(network, inputs, outputs, training, what=what)
        ours = network.forward(inputs, training=training)[0]
        assert_forward_within_rounding(network, inputs, [ours, outputs[-1]], training, what=what)


#: Roundings allowed each gradient entry of the float64 comparison below: ten times the longest
#: chain of operations behind one (about a thousand: G's and D's sums of 784 and 128 terms, the
#: batch, the loss), so that errors one layer hands the next, which a count along one chain does
#: not follow, have room. In float64 that is still 1e-12 of the terms' magnitude, where a wrong
#: label, loss or layer is off by the magnitude itself.
GAN_ROUNDINGS = 10_000


def bce_magnitude(logits: np.ndarray, target: float) -> np.ndarray:
    """Per logit, the magnitude of the terms of BCE's gradient ``(sigmoid(l) - t) / N``."""
    return (sigmoid(logits) + abs(target)) / len(logits)


def assert_twin_agrees(what, loss, torch_loss, loss_magnitude, layer, module, magnitude) -> None:
    """A network's loss and its first layer's weight gradient, tinygan's against the twin's."""
    assert_within_rounding(float(loss), torch_loss.item(), loss_magnitude, GAN_ROUNDINGS, what)
    grad = module.weight.grad.numpy().T
    assert_within_rounding(layer.grads["W"], grad, magnitude, GAN_ROUNDINGS, f"{what}, weights")


@requires_torch
def test_torch_gan_losses_and_gradients_match_tinygan():
    """The twin's losses and gradients in float64, where its rounding and tinygan's, in whatever
    order each sums, stay 10^12 times below the magnitude of the terms (GAN_ROUNDINGS)."""
    import torch

    from tinygan.interop.torch_models import TorchGAN

    preset = PRESETS["mlp-tf"]
    gan = preset.make_gan(np.random.default_rng(3), np.random.default_rng(4))
    G, D = gan.generator.astype(np.float64), gan.discriminator.astype(np.float64)
    twin = TorchGAN(preset, G, D, seed=0)
    twin.generator.double()
    twin.discriminator.double()
    rng = np.random.default_rng(5)
    real = rng.uniform(0, 1, size=(6, 784))
    z = gan.sample_noise(6).astype(np.float64)
    fake = gan.generate(z, training=True)

    gan.d_optimizer.zero_grad()
    d_loss = gan.discriminator_loss_backward(real, fake)[0]
    torch_d_loss = twin.discriminator_loss(torch.from_numpy(real), torch.from_numpy(fake))
    torch_d_loss.backward()
    magnitude, loss_magnitude = 0.0, 0.0
    for batch, label in ((real, preset.real_label), (fake, preset.fake_label)):
        logits, cache = D.forward(batch)
        magnitude += backward_magnitudes(D, cache, bce_magnitude(logits, label))[1]["0.W"]
        loss_magnitude += float(np.mean(abs(logits) + 1))  # softplus(l) <= |l| + log 2
    assert_twin_agrees(
        "D", d_loss, torch_d_loss, loss_magnitude, D[0], twin.discriminator[0], magnitude
    )

    gan.g_optimizer.zero_grad()
    g_loss = gan.generator_loss_backward(z)
    twin.discriminator.zero_grad(set_to_none=True)
    torch_g_loss = twin.generator_loss(torch.from_numpy(z))
    torch_g_loss.backward(inputs=list(twin.generator.parameters()))
    images, g_cache = G.forward(z)
    logits, d_cache = D.forward(images)
    dfake, _ = backward_magnitudes(D, d_cache, bce_magnitude(logits, preset.generator_target))
    magnitude = backward_magnitudes(G, g_cache, dfake)[1]["0.W"]
    loss_magnitude = float(np.mean(abs(logits) + 1))
    assert_twin_agrees(
        "G", g_loss, torch_g_loss, loss_magnitude, G[0], twin.generator[0], magnitude
    )
    assert all(p.grad is None for p in twin.discriminator.parameters())
    group = twin.g_optimizer.param_groups[0]
    assert (group["lr"], group["betas"], group["eps"]) == (preset.g_lr, preset.betas, preset.eps)


@requires_torch
def test_torch_gan_plays_a_simultaneous_step_as_tinygan_does():
    import torch

    from tinygan.interop.torch_models import TorchGAN

    preset = replace(PRESETS["mlp-tf"], simultaneous=True)
    gan = preset.make_gan(np.random.default_rng(3), np.random.default_rng(4))
    twin = TorchGAN(preset, gan.generator, gan.discriminator, seed=0)
    rng = np.random.default_rng(5)
    real = rng.uniform(0, 1, size=(6, 784)).astype(np.float32)
    z = gan.sample_noise(6)
    gan.sample_noise = lambda n, rng=None: z
    twin.sample_noise = lambda n: torch.from_numpy(z)
    for optimizer in (gan.d_optimizer, gan.g_optimizer, twin.d_optimizer, twin.g_optimizer):
        optimizer.step = lambda: None  # compare the gradients the step computed
    gan.train_step(lambda: real)
    twin.train_step(lambda: torch.from_numpy(real))
    for mine, theirs in ((gan.discriminator, twin.discriminator), (gan.generator, twin.generator)):
        np.testing.assert_allclose(mine[0].grads["W"], theirs[0].weight.grad.numpy().T, atol=1e-6)
        np.testing.assert_allclose(mine[2].grads["W"], theirs[2].weight.grad.numpy().T, atol=1e-6)


@requires_torch
@pytest.mark.parametrize("reuse_noise", [False, True])
@pytest.mark.parametrize("inference_fakes", [False, True])
def test_torch_gan_follows_the_presets_noise_and_fake_rules(reuse_noise, inference_fakes):
    import torch

    from tinygan.interop.torch_models import TorchGAN

    preset = replace(
        PRESETS["dcgan-fast"], reuse_noise=reuse_noise, inference_fakes=inference_fakes
    )
    generator, discriminator = preset.build(np.random.default_rng(0))
    twin = TorchGAN(preset, generator, discriminator, seed=0)
    seen = []  # (input, training mode) of each generator call
    twin.generator.register_forward_hook(
        lambda module, inputs, output: seen.append((inputs[0].clone(), module.training))
    )
    real = torch.from_numpy(np.random.default_rng(1).uniform(-1, 1, (2, 1, 28, 28)))
    twin.train_step(lambda: real.float())
    (d_z, d_training), (g_z, g_training) = seen
    assert d_training is not inference_fakes and g_training
    assert torch.equal(d_z, g_z) is reuse_noise


# -- the harness end to end --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    libraries = ["tinygan-numpy"] + (["torch"] if HAS_TORCH else [])
    report = speed.main(["time", "--quick", "--libraries", *libraries, "--out", str(out)])
    return report, out


def test_quick_run_writes_json_and_markdown(quick_report):
    report, out = quick_report
    saved = json.loads((out / "benchmark.json").read_text())
    assert saved["rows"] == report["rows"]
    tinygan_rows = [r for r in saved["rows"] if r["library"] == "tinygan-numpy"]
    assert len(tinygan_rows) == 1
    r = tinygan_rows[0]
    assert (r["preset"], r["batch"], r["runs"], r["kernels"]) == (
        "mlp-tf",
        8,
        2,
        "reference",
    )
    assert r["min_ms"] <= r["median_ms"] <= r["max_ms"]
    assert r["flops"] == 8 * (
        3 * 2 * 100 * 128 + 4 * 2 * 128 * 784 + 6 * 2 * 784 * 128 + 8 * 2 * 128
    )
    assert r["floor_ratio"] > 0 and saved["peak"]["gflops"] > 0
    text = (out / "benchmark.md").read_text()
    assert "| mlp-tf | 8 | tinygan (NumPy, TINYGAN_NUMBA=0) |" in text
    assert "Command: `python benchmarks/speed.py time --quick --libraries" in text
    assert "## Targets" in text and saved["machine"]["cores"] >= 1


@requires_torch
def test_quick_run_times_pytorch_side_by_side(quick_report):
    report, _ = quick_report
    torch_rows = [r for r in report["rows"] if r["library"] == "torch"]
    assert len(torch_rows) == 1 and torch_rows[0]["threads"] >= 1
    tinygan_row = next(r for r in report["rows"] if r["library"] == "tinygan-numpy")
    assert tinygan_row["vs_torch"] == pytest.approx(
        tinygan_row["median_ms"] / torch_rows[0]["median_ms"]
    )


def test_missing_pytorch_is_noted_not_fatal(monkeypatch):
    monkeypatch.setattr(speed, "find_spec", lambda name: None)
    notes: list[str] = []
    chosen = speed.choose_libraries(["tinygan-numpy", "torch"], notes)
    assert [library.key for library in chosen] == ["tinygan-numpy"]
    assert any("PyTorch is not installed" in note for note in notes)


def test_profile_accounts_for_every_layer_and_the_optimizers(capsys):
    report = speed.main(["profile", "mlp-tf", "--batch", "8", "--repeats", "3"])
    text = capsys.readouterr().out
    assert (report["preset"], report["batch"], report["repeats"]) == ("mlp-tf", 8, 3)
    layers = {(row["network"], row["path"], row["phase"]) for row in report["layers"]}
    for network, count in (("G", 4), ("D", 3)):
        for index in range(count):
            assert (network, str(index), "forward") in layers
    assert report["parts"]["optimizer G.step"] > 0 and report["parts"]["optimizer D.step"] > 0
    assert report["plain_ms"] > 0 and report["temporaries_mb"] > 0
    assert (
        "## Profile of mlp-tf, batch 8" in text and "| G | [2] Dense(128, 784, bias=True) |" in text
    )
    assert any(row["kernel"] == "dense_weight_grad" for row in report["kernels"])


def test_the_floor_counts_each_planned_iteration_beside_the_measured_peak(capsys):
    report = speed.main(["floor", "--quick", "--presets", "000", "dcgan-tf", "--batches", "8"])
    text = capsys.readouterr().out
    mlp_tf, dcgan_tf = report["rows"]
    assert (mlp_tf["preset"], mlp_tf["batch"], dcgan_tf["preset"]) == ("mlp-tf", 8, "dcgan-tf")
    g1, g2, d1, d2 = 2 * 100 * 128, 2 * 128 * 784, 2 * 784 * 128, 2 * 128
    assert mlp_tf["total"] == 8 * (3 * g1 + 4 * g2 + 6 * d1 + 8 * d2)
    floor_ms = 1e3 * mlp_tf["total"] / (report["peak"]["gflops"] * 1e9)
    assert f"| mlp-tf | 8 | {mlp_tf['d_step'] / 1e9:.3f} |" in text
    assert text.splitlines()[4].endswith(f"| {floor_ms:.2f} |")


def test_the_mixture_speed_script_times_packed_steps():
    from benchmarks.investigations import modes_speed

    times = modes_speed.time_steps("grid", 2, warmup=1, iterations=2)
    assert len(times) == 2 and all(t > 0 for t in times)


# -- the folder --------------------------------------------------------------------------------------


def benchmark_modules() -> dict[str, Path]:
    """Every module of the benchmarks package by its dotted name, scripts included."""
    modules = {}
    for path in sorted(BENCHMARKS.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imported_modules(path: Path, modules: dict[str, Path]) -> set[str]:
    """The benchmarks modules ``path`` imports anywhere in its code (functions included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name in modules}


@pytest.mark.parametrize("name", list(benchmark_modules()))
def test_every_benchmark_module_imports_without_running(name):
    module = importlib.import_module(name)
    assert module.__doc__, f"{name} says what it is for"


def test_no_benchmark_module_imports_another_back():
    modules = benchmark_modules()
    graph = {name: imported_modules(path, modules) for name, path in modules.items()}
    assert graph["benchmarks.common"] == set(), "common imports nothing from benchmarks"

    def cycle_from(name: str, trail: list[str]) -> list[str] | None:
        if name in trail:
            return trail[trail.index(name) :] + [name]
        return next(
            (c for c in (cycle_from(n, [*trail, name]) for n in graph[name]) if c is not None),
            None,
        )

    for name in graph:
        assert cycle_from(name, []) is None, f"import cycle: {' -> '.join(cycle_from(name, []))}"


def test_common_imports_only_the_standard_library():
    """The speed benchmark's parent process imports it and must start no thread pool."""
    heavy = ("numpy", "numba", "torch", "matplotlib", "tinygan")
    code = f"import sys, benchmarks.common; print([m for m in {heavy!r} if m in sys.modules])"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


def test_scripts_import_their_helpers_through_the_package():
    """A bare ``import run`` works only because Python puts a script's folder on the path."""
    stems = {path.stem for path in BENCHMARKS.rglob("*.py")} - {"__init__"}
    for path in BENCHMARKS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            bare = [name for name in names if name.split(".")[0] in stems]
            assert not bare, f"{path.relative_to(ROOT)} imports {bare} by bare name"


def test_the_readme_names_every_script():
    readme = (BENCHMARKS / "README.md").read_text()
    for path in BENCHMARKS.rglob("*.py"):
        if path.name != "__init__.py":
            assert f"`{path.relative_to(BENCHMARKS)}`" in readme, f"README misses {path.name}"


@pytest.mark.parametrize(
    "script",
    [
        "speed.py",
        "quality.py",
        "modes.py",
        "losses.py",
        "investigations/alternate.py",
        "investigations/handwritten_step.py",
        "investigations/dcgan_fast_choice.py",
    ],
)
def test_a_script_finds_the_package_when_run_as_a_file(script):
    """Run from another folder with no PYTHONPATH: the script puts the repository on the path."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--help"],
        cwd="/",
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage:")
