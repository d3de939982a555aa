"""Exported networks compute what tinygan computes: ONNX Runtime and PyTorch against tinygan's forward
in evaluation mode, for every preset's generator and discriminator, and the ``tinygan export``
command from a saved checkpoint to a file another runtime runs.

How close is close enough is derived from each layer's computation, not chosen. The two sides are
compared layer by layer: the runtime's output of layer ``l - 1`` goes into tinygan's layer ``l``, and
the two outputs of layer ``l`` may differ only by float32 rounding of that one layer. A float32 sum
of n terms is off the exact sum by at most about ``n * eps / 2 * sum |terms|``, whatever order it is
summed in (so whatever the CPU, the thread count or the BLAS), hence two implementations differ by
at most ``n * eps * sum |terms|``, element by element. Compared end to end instead, the bound would
have to follow every layer's rounding through all later weights, and for the DCGANs it grows to the
size of the outputs themselves: it would test nothing.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from tinygan.checkpoint import save_checkpoint
from tinygan.cli import main as cli
from tinygan.interop import TracedLayer, input_shape, load_network, trace_layers
from tinygan.models import PRESETS
from tinygan.nn import BatchNorm, Conv2D, ConvTranspose2D, Dense, Layer, LeakyReLU, Sigmoid, Tanh

NETWORKS = ["generator", "discriminator"]
BATCHES = (1, 2)
EPS = float(np.finfo(np.float32).eps)


def float32_bound(n: np.ndarray | float, abs_sum: np.ndarray | float) -> np.ndarray | float:
    """How far two float32 evaluations of a sum of ``n`` terms may be apart: ``n * eps * sum|terms|``
    (each is within about ``n * eps / 2`` of the exact sum, relative to ``sum |terms|``)."""
    return n * EPS * np.asarray(abs_sum, dtype=np.float64)


def with_params(layer: Layer, value: object) -> Layer:
    """A float64 copy of ``layer`` whose every parameter ``p`` is replaced by ``value(p)``."""
    twin = copy.deepcopy(layer)
    for key, param in twin.params.items():
        twin.params[key] = np.asarray(value(param), dtype=np.float64)
    return twin


def layer_tolerance(layer: Layer, x: np.ndarray) -> np.ndarray | float:
    """How far two float32 implementations of ``layer`` may be apart on the input ``x``, per element.

    * Dense and convolutions: each output is a sum of products plus the bias. Run on ones with unit
      weights, the layer counts those terms (n, per output: fewer at a padded border); run on ``|x|``
      with ``|W|`` and ``|b|``, it gives ``sum |terms|``.
    * BatchNorm: ``s * x - s * mean + beta`` with ``s = gamma / sqrt(var + eps)``: three terms, and
      ``s`` carries up to four roundings of its own (add, square root, divide, multiply): 7 in all.
    * LeakyReLU: ``alpha * x``, one product with a rounded constant: 2 roundings of ``|y|``.
    * Tanh and sigmoid are no sums: each library approximates them to a few units of float32 rounding
      on the scale of their range, 1 (NumPy validates its float32 tanh to 2 ulp; ONNX Runtime's
      rational approximations are accurate in absolute, not relative, terms). 4 units per side.
    * ReLU, max pooling, upsampling, reshaping and dropout in evaluation mode select or copy values:
      exact, so no difference at all is allowed.
    """
    if isinstance(layer, (Dense, Conv2D, ConvTranspose2D)):
        # the count is the same for every sample: one of ones is enough
        ones = with_params(layer, np.ones_like).forward(np.ones((1, *x.shape[1:])), False)[0]
        terms = with_params(layer, np.abs).forward(np.abs(x.astype(np.float64)), training=False)[0]
        return float32_bound(ones, terms)
    if isinstance(layer, BatchNorm):
        shape = (1, -1) + (1,) * (x.ndim - 2)  # per channel
        gamma, beta = (np.abs(layer.params[k]).astype(np.float64) for k in ("gamma", "beta"))
        mean, var = (layer.buffers[k].astype(np.float64) for k in ("mean", "var"))
        scale = (gamma / np.sqrt(var + layer.eps)).reshape(shape)
        terms = scale * (np.abs(x) + np.abs(mean).reshape(shape)) + beta.reshape(shape)
        return float32_bound(7, terms)
    if isinstance(layer, LeakyReLU):
        return float32_bound(2, np.abs(layer.forward(x, training=False)[0]))
    if isinstance(layer, (Tanh, Sigmoid)):
        return 2 * 4 * EPS
    return 0.0


def assert_each_layer_matches(
    traced: list[TracedLayer], x: np.ndarray, outputs: list[np.ndarray], runtime: str
) -> None:
    """``outputs[l]``, a runtime's output of layer ``l``, is tinygan's layer ``l`` applied to the
    runtime's output of layer ``l - 1`` (``x`` for the first), to within :func:`layer_tolerance`."""
    assert len(outputs) == len(traced), (runtime, len(outputs), len(traced))
    layer_input = x
    for index, (item, actual) in enumerate(zip(traced, outputs, strict=True)):
        expected = item.layer.forward(layer_input, training=False)[0]
        assert actual.shape == expected.shape and actual.dtype == np.float32, (runtime, index)
        excess = np.abs(actual.astype(np.float64) - expected) - layer_tolerance(
            item.layer, layer_input
        )
        assert excess.max() <= 0, (
            f"{runtime}: layer {index} ({type(item.layer).__name__}) differs from tinygan's by "
            f"{excess.max():.3g} more than float32 rounding allows"
        )
        layer_input = actual


def onnx_layer_outputs(path: Path, traced: list[TracedLayer], x: np.ndarray) -> list[np.ndarray]:
    """Every layer's output when ONNX Runtime runs the model at ``path`` on ``x``.

    The exporter names a layer's output tensor ``<index>.<layer kind>`` (the last one is the graph's
    output); the intermediate ones are made graph outputs too, so that the runtime returns them.
    """
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    model = onnx.load(path)
    names = [f"{i}.{type(item.layer).__name__.lower()}" for i, item in enumerate(traced[:-1])]
    for name in names:
        model.graph.output.append(
            onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
        )
    names.append(model.graph.output[0].name)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(names, {model.graph.input[0].name: x})


def torch_layer_outputs(module: object, x: np.ndarray) -> list[np.ndarray]:
    """Every layer's output of a PyTorch twin (one child module per tinygan layer) on ``x``."""
    import torch

    outputs, value = [], torch.from_numpy(x)
    with torch.no_grad():
        for child in module:
            value = child(value)
            outputs.append(value.numpy())
    return outputs


@cache
def networks(name: str) -> tuple[Layer, Layer]:
    """A preset's networks with random weights and BatchNorm layers that do something: running
    statistics and affine parameters away from their initial 0 / 1, so that using the wrong ones (or
    the batch's) shows."""
    rng = np.random.default_rng(7)
    generator, discriminator = PRESETS[name].build(rng)
    for layer in [*generator.walk(), *discriminator.walk()]:
        if isinstance(layer, BatchNorm):
            n = layer.num_features
            layer.buffers["mean"][...] = rng.normal(0.0, 0.5, n)
            layer.buffers["var"][...] = rng.uniform(0.2, 3.0, n)
            layer.params["gamma"][...] = rng.uniform(0.5, 1.5, n)
            layer.params["beta"][...] = rng.normal(0.0, 0.3, n)
    return generator, discriminator


def traced_network(name: str, kind: str) -> tuple[Layer, list[TracedLayer]]:
    network = networks(name)[NETWORKS.index(kind)]
    return network, trace_layers(network, input_shape(PRESETS[name], kind))


def inputs(name: str, kind: str, batch: int) -> np.ndarray:
    shape = (batch, *input_shape(PRESETS[name], kind))
    return np.random.default_rng(batch).uniform(-1.0, 1.0, size=shape).astype(np.float32)


@pytest.mark.parametrize("name", list(PRESETS))
def test_tinygans_float32_layers_are_within_half_the_bound_of_the_exact_ones(name):
    """One side of the comparison against the exact (float64) layers: within half of
    :func:`layer_tolerance`, as its derivation says, or the bound would be wrong."""
    for kind in NETWORKS:
        _, traced = traced_network(name, kind)
        x = inputs(name, kind, 1)
        for item in traced:
            exact = with_params(item.layer, np.asarray).forward(x.astype(np.float64), False)[0]
            y = item.layer.forward(x, training=False)[0]
            assert (np.abs(y - exact) <= layer_tolerance(item.layer, x) / 2).all(), item.layer
            x = y


# -- ONNX --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", NETWORKS)
@pytest.mark.parametrize("name", list(PRESETS))
def test_onnx_runtime_computes_tinygans_forward(name, kind, tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from tinygan.interop.onnx_export import export_onnx

    network, traced = traced_network(name, kind)
    path = tmp_path / "net.onnx"
    export_onnx(network, PRESETS[name], kind, path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (graph_input,) = session.get_inputs()
    assert graph_input.shape[0] == "batch"  # one file for every batch size
    for batch in BATCHES:
        x = inputs(name, kind, batch)
        assert_each_layer_matches(traced, x, onnx_layer_outputs(path, traced, x), "onnxruntime")


@pytest.mark.parametrize("kind", NETWORKS)
def test_onnx_model_is_valid_and_says_what_it_holds(kind, tmp_path):
    onnx = pytest.importorskip("onnx")
    from tinygan.interop.onnx_export import export_onnx

    preset = PRESETS["dcgan-tf"]
    model = export_onnx(networks("dcgan-tf")[NETWORKS.index(kind)], preset, kind, tmp_path / "m")
    onnx.checker.check_model(onnx.load(tmp_path / "m"), full_check=True)
    metadata = {prop.key: prop.value for prop in model.metadata_props}
    assert metadata["preset"] == "dcgan-tf"
    assert metadata["network"] == kind
    assert int(metadata["latent_dim"]) == 100
    assert metadata["noise"] == "normal"
    assert json.loads(metadata["value_range"]) == [-1.0, 1.0]
    assert json.loads(metadata["data_shape"]) == [1, 28, 28]
    ops = {node.op_type for node in model.graph.node}
    if kind == "generator":
        assert {"Gemm", "BatchNormalization", "ConvTranspose", "Tanh"} <= ops
        assert [i.name for i in model.graph.input] == ["z"]
        assert [o.name for o in model.graph.output] == ["images"]
    else:
        assert {"Conv", "LeakyRelu", "Identity", "Flatten", "Gemm"} <= ops
        assert [o.name for o in model.graph.output] == ["logits"]


def test_unbounded_value_range_is_json():
    from tinygan.interop import export_metadata

    metadata = export_metadata(PRESETS["gaussian-1d"], "generator")
    assert json.loads(metadata["value_range"]) == [-np.inf, np.inf]


def test_the_alias_is_recorded_when_the_preset_has_one():
    from tinygan.interop import export_metadata

    assert export_metadata(PRESETS["dcgan-tf"], "generator")["preset_alias"] == "003"
    assert PRESETS["dcgan-fast"].alias is None
    assert "preset_alias" not in export_metadata(PRESETS["dcgan-fast"], "discriminator")


# -- PyTorch -----------------------------------------------------------------------------------------


def rebuilt_twin(preset_name: str, kind: str, path: Path) -> object:
    """The module ``build_generator`` / ``build_discriminator`` makes, with the state dict at ``path``
    loaded, in evaluation mode: what a PyTorch user of an exported file runs."""
    import torch

    from tinygan.interop.torch_models import build_discriminator, build_generator

    module = (build_generator if kind == "generator" else build_discriminator)(preset_name)
    module.load_state_dict(torch.load(path))
    return module.eval()


@pytest.mark.parametrize("kind", NETWORKS)
@pytest.mark.parametrize("name", list(PRESETS))
def test_torch_state_dict_loads_into_the_rebuilt_module(name, kind, tmp_path):
    pytest.importorskip("torch")
    from tinygan.interop.torch_models import export_torch

    network, traced = traced_network(name, kind)
    path = tmp_path / "net.pt"
    export_torch(network, PRESETS[name], kind, path)
    module = rebuilt_twin(PRESETS[name].alias or name, kind, path)  # by alias as well as by name
    for batch in BATCHES:
        x = inputs(name, kind, batch)
        assert_each_layer_matches(traced, x, torch_layer_outputs(module, x), "torch")


# -- the command -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A dcgan-tf checkpoint after one training step (so BatchNorm's statistics have moved)."""
    preset = PRESETS["dcgan-tf"]
    gan = preset.make_gan(np.random.default_rng(0), np.random.default_rng(1))
    real = np.random.default_rng(2).uniform(-1, 1, size=(4, 1, 28, 28)).astype(np.float32)
    gan.train_step(iter([real]).__next__)
    path = tmp_path_factory.mktemp("export") / "ck.npz"
    return save_checkpoint(path, gan, metadata={"preset": "003", "seed": 0})


def run_cli(argv: list[str]) -> int:
    try:
        return cli(argv)
    except SystemExit as stop:
        return stop.code


def test_cli_onnx_export_samples_like_tinygan(checkpoint, tmp_path, capsys):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    out = tmp_path / "new" / "g.onnx"  # a missing folder is created
    assert run_cli(["export", str(checkpoint), "--format", "onnx", "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out

    # the README's snippet, as written there: everything it needs comes from the file
    namespace = {}
    exec(readme_snippet().replace('"g.onnx"', repr(str(out))), namespace)
    images, pixels, z = namespace["images"], namespace["pixels"], namespace["z"]
    assert images.shape == (16, 1, 28, 28)
    assert 0 <= pixels.min() and pixels.max() <= 1

    generator, _ = load_network(checkpoint)
    traced = trace_layers(generator, (100,))
    z = z.astype(np.float32)
    assert_each_layer_matches(traced, z, onnx_layer_outputs(out, traced, z), "onnxruntime")


def readme_snippet() -> str:
    """The Python block of the README's Export section that samples with ONNX Runtime."""
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    export = readme[readme.index("## Export") :]
    return export.split("```python\n")[1].split("```")[0]


def test_cli_exports_the_discriminator(checkpoint, tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    out = tmp_path / "d.onnx"
    argv = ["export", str(checkpoint), "--network", "discriminator", "--out", str(out)]
    assert run_cli(argv) == 0  # --format onnx is the default
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(3).uniform(-1, 1, (3, 1, 28, 28)).astype(np.float32)
    (logits,) = session.run(None, {"x": x})
    assert logits.shape == (3, 1)


def test_cli_torch_export_loads_into_the_twin(checkpoint, tmp_path, capsys):
    pytest.importorskip("torch")
    out = tmp_path / "g.pt"
    assert run_cli(["export", str(checkpoint), "--format", "torch", "--out", str(out)]) == 0
    assert "build_generator('dcgan-tf')" in capsys.readouterr().out
    module = rebuilt_twin("dcgan-tf", "generator", out)
    z = np.random.default_rng(4).standard_normal((2, 100)).astype(np.float32)
    generator, _ = load_network(checkpoint)
    assert_each_layer_matches(
        trace_layers(generator, (100,)), z, torch_layer_outputs(module, z), "torch"
    )


def test_cli_exports_both_networks_of_a_preset_without_alias_in_both_formats(tmp_path, capsys):
    """dcgan-fast, the recommended CPU preset, has a name and no number; every preset's networks go
    through the same export functions in the tests above."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("torch")
    name = "dcgan-fast"
    gan = PRESETS[name].make_gan(np.random.default_rng(0), np.random.default_rng(1))
    path = save_checkpoint(tmp_path / "ck.npz", gan, metadata={"preset": name, "seed": 0})
    for kind in NETWORKS:
        for fmt, suffix in (("onnx", ".onnx"), ("torch", ".pt")):
            out = tmp_path / f"{kind}{suffix}"
            argv = ["export", str(path), "--network", kind, "--format", fmt, "--out", str(out)]
            assert run_cli(argv) == 0, (kind, fmt, capsys.readouterr().err)
            assert f"{kind} of preset {name} -> {out}" in capsys.readouterr().out
        model = onnx.load(tmp_path / f"{kind}.onnx")
        assert {p.key: p.value for p in model.metadata_props}["preset"] == name
        rebuilt_twin(name, kind, tmp_path / f"{kind}.pt")  # the state dict fits the twin


def test_cli_default_output_name(checkpoint, tmp_path, monkeypatch):
    pytest.importorskip("onnx")
    monkeypatch.chdir(tmp_path)
    assert run_cli(["export", str(checkpoint)]) == 0
    assert (tmp_path / "generator.onnx").is_file()


def bad_checkpoints(tmp_path: Path) -> list[tuple[Path, str]]:
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    text = tmp_path / "text.npz"
    text.write_text("hello")
    return [
        (tmp_path / "missing.npz", "no checkpoint at"),
        (empty, "the file is empty"),
        (text, "not an .npz archive"),
    ]


def test_bad_checkpoints_get_one_line(tmp_path, capsys):
    pytest.importorskip("onnx")  # without the extra the command stops earlier, naming it
    for path, message in bad_checkpoints(tmp_path):
        code = run_cli(["export", str(path), "--format", "onnx", "--out", str(tmp_path / "g")])
        # the message goes to stderr through SystemExit's text
        assert code not in (0, None)
        text = str(code)
        assert message in text and "\n" not in text
        assert not (tmp_path / "g").exists()


def test_bad_flags_and_outputs_get_one_line_and_exit_code_2(checkpoint, tmp_path, capsys):
    pytest.importorskip("onnx")  # without the extra the command stops earlier, naming it
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    cases = [
        (["--format", "tflite"], "invalid choice: 'tflite'"),
        (["--network", "critic"], "invalid choice: 'critic'"),
        (["--out", str(tmp_path)], "is a folder; give a file name"),
        (["--out", str(blocker / "g.onnx")], "is below the file"),
    ]
    for flags, message in cases:
        assert run_cli(["export", str(checkpoint), *flags]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err


def test_missing_extra_is_named_in_one_line(checkpoint, tmp_path, capsys, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name in ("onnx", "torch") else find_spec(name, *args),
    )
    for fmt, extra in (("onnx", "tinygan[onnx]"), ("torch", "tinygan[torch]")):
        assert run_cli(["export", str(checkpoint), "--format", fmt]) == 2
        err = capsys.readouterr().err
        assert extra in err and err.count("\n") == 1, err
    assert not list(tmp_path.iterdir())


def test_import_tinygan_imports_neither_onnx_nor_torch():
    code = (
        "import sys, tinygan, tinygan.cli, tinygan.interop, tinygan.sampling\n"
        "assert not {'onnx', 'onnxruntime', 'torch'} & set(sys.modules), sorted(sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
