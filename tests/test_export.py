"""Exported networks compute what tinygan computes: ONNX Runtime and PyTorch against tinygan's forward
in evaluation mode, for every preset's generator and discriminator, and the ``tinygan export``
command from a saved checkpoint to a file another runtime runs.

The runtimes compute in float32 and sum in their own orders, so nothing is compared bit for bit.
Each layer's output in the other runtime is compared with tinygan's layer applied, in float64, to
the input that runtime gave the layer, within the rounding bound of that layer's sums
(:func:`tinygan.rounding.forward_bound`): a bound that holds on any CPU, and a tight one, as the
layer starts from the same input. The network's final output is also compared with tinygan's exact
output, within the bound carried through every layer: always valid, but loose for a deep network,
whose worst case lets every rounding of every layer add up.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from conftest import torch_layer_outputs

from tinygan.interop import input_shape
from tinygan.models import PRESETS
from tinygan.nn import BatchNorm, Layer
from tinygan.rounding import assert_forward_within_rounding, assert_layers_within_rounding
from tinygan.run.checkpoint import save_checkpoint
from tinygan.run.cli import main as cli
from tinygan.run.sampling import load_generator

PRESET_NAMES = list(PRESETS)  # every preset, dcgan-fast (which has no alias) included
NETWORKS = ["generator", "discriminator"]
BATCHES = (1, 7)


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


def network_and_inputs(name: str, kind: str, batch: int) -> tuple[Layer, np.ndarray]:
    preset = PRESETS[name]
    network = networks(name)[NETWORKS.index(kind)]
    rng = np.random.default_rng(batch)
    x = rng.uniform(-1.0, 1.0, size=(batch, *input_shape(preset, kind))).astype(np.float32)
    return network, x


def onnx_layer_outputs(model_path: Path, x: np.ndarray) -> list[np.ndarray]:
    """Every layer's output for ``x`` from ONNX Runtime, running the exported graph with each
    layer's last node added to the graph's outputs (the exporter names nodes "<layer>.<kind>")."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(model_path)
    last_node = {int(node.name.split(".")[0]): node.output[0] for node in model.graph.node}
    final = model.graph.output[0].name
    names = [last_node[k] for k in sorted(last_node)]
    for name in names[:-1]:
        model.graph.output.append(
            onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
        )
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    assert names[-1] == final
    outputs = session.run(names, {session.get_inputs()[0].name: x})
    assert all(output.dtype == np.float32 for output in outputs)
    return outputs


# -- ONNX --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", NETWORKS)
@pytest.mark.parametrize("name", PRESET_NAMES)
def test_onnx_runtime_computes_tinygans_forward(name, kind, tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from tinygan.interop.onnx_export import export_onnx

    preset = PRESETS[name]
    path = tmp_path / "net.onnx"
    export_onnx(networks(name)[NETWORKS.index(kind)], preset, kind, path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (graph_input,) = session.get_inputs()
    assert graph_input.shape[0] == "batch"  # one file for every batch size
    for batch in BATCHES:
        network, x = network_and_inputs(name, kind, batch)
        (actual,) = session.run(None, {graph_input.name: x})
        what = f"{name} {kind}, batch {batch}"
        if batch == 1:  # the network's bound costs a few float64 passes of the whole network
            assert_forward_within_rounding(network, x, [actual], what=what)
        assert_layers_within_rounding(network, x, onnx_layer_outputs(path, x), what=what)


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


@pytest.mark.parametrize("kind", NETWORKS)
@pytest.mark.parametrize("name", PRESET_NAMES)
def test_torch_state_dict_loads_into_the_rebuilt_module(name, kind, tmp_path):
    torch = pytest.importorskip("torch")
    from tinygan.interop.torch_models import build_discriminator, build_generator, export_torch

    path = tmp_path / "net.pt"
    export_torch(networks(name)[NETWORKS.index(kind)], PRESETS[name], kind, path)
    build = build_generator if kind == "generator" else build_discriminator
    module = build(PRESETS[name].alias or name)  # by alias (where there is one) as well as by name
    module.load_state_dict(torch.load(path))
    module.eval()
    for batch in BATCHES:
        network, x = network_and_inputs(name, kind, batch)
        what = f"{name} {kind}, batch {batch}"
        outputs = torch_layer_outputs(module, x)
        if batch == 1:
            assert_forward_within_rounding(network, x, outputs[-1:], what=what)
        assert_layers_within_rounding(network, x, outputs, what=what)


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

    generator, _, _ = load_generator(checkpoint)
    z = z.astype(np.float32)
    assert_forward_within_rounding(generator, z, [images], what="the README's images")
    assert_layers_within_rounding(generator, z, onnx_layer_outputs(out, z), what="g.onnx")


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
    torch = pytest.importorskip("torch")
    from tinygan.interop.torch_models import build_generator

    out = tmp_path / "g.pt"
    assert run_cli(["export", str(checkpoint), "--format", "torch", "--out", str(out)]) == 0
    assert "build_generator('dcgan-tf')" in capsys.readouterr().out
    module = build_generator("dcgan-tf")
    module.load_state_dict(torch.load(out))
    z = np.random.default_rng(4).standard_normal((2, 100)).astype(np.float32)
    generator, _, _ = load_generator(checkpoint)
    outputs = torch_layer_outputs(module.eval(), z)
    assert_forward_within_rounding(generator, z, outputs[-1:], what="g.pt")
    assert_layers_within_rounding(generator, z, outputs, what="g.pt")


def test_cli_exports_both_networks_of_a_preset_without_alias_in_both_formats(tmp_path, capsys):
    """dcgan-fast, the recommended CPU preset, has a name and no number; every preset's networks go
    through the same export functions in the tests above."""
    onnx = pytest.importorskip("onnx")
    torch = pytest.importorskip("torch")
    from tinygan.interop.torch_models import build_discriminator, build_generator

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
        twin = (build_generator if kind == "generator" else build_discriminator)(name)
        twin.load_state_dict(torch.load(tmp_path / f"{kind}.pt"))  # the state dict fits the twin


def test_a_conditional_generator_takes_z_and_the_class_code_in_both_formats(tmp_path, capsys):
    """G(z, y) = G([z, onehot(y)]): the exported input is the latent vector with the class's code
    appended, as tinygan's generator takes it; the PyTorch twin is rebuilt conditional."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    torch = pytest.importorskip("torch")
    from tinygan.interop.torch_models import build_generator

    preset = replace(PRESETS["mlp-tf"], conditional=True)
    gan = preset.make_gan(np.random.default_rng(0), np.random.default_rng(1))
    metadata = {"preset": "mlp-tf", "seed": 0, "settings": {"conditional": True}}
    path = save_checkpoint(tmp_path / "ck.npz", gan, metadata=metadata)
    assert run_cli(["export", str(path), "--out", str(tmp_path / "g.onnx")]) == 0
    assert run_cli(["export", str(path), "--format", "torch", "--out", str(tmp_path / "g.pt")]) == 0
    assert "build_generator('mlp-tf', conditional=True)" in capsys.readouterr().out
    model = onnx.load(tmp_path / "g.onnx")
    props = {p.key: p.value for p in model.metadata_props}
    assert props["num_classes"] == "10" and props["input"].startswith("z: (batch, 100 + 10)")
    rng = np.random.default_rng(5)
    z = rng.uniform(-1, 1, (3, 100))
    x = np.concatenate([z, np.eye(10)[[7, 0, 3]]], axis=1).astype(np.float32)
    session = ort.InferenceSession(str(tmp_path / "g.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == ["batch", 110]
    (images,) = session.run(None, {"z": x})
    assert_forward_within_rounding(gan.generator, x, [images], what="conditional g.onnx")
    twin = build_generator("mlp-tf", conditional=True)
    twin.load_state_dict(torch.load(tmp_path / "g.pt"))
    outputs = torch_layer_outputs(twin.eval(), x)
    assert_forward_within_rounding(gan.generator, x, outputs[-1:], what="conditional g.pt")
    # D(x, y): the image's 784 pixels, then the class's code
    argv = ["export", str(path), "--network", "discriminator", "--out", str(tmp_path / "d.onnx")]
    assert run_cli(argv) == 0
    props = {p.key: p.value for p in onnx.load(tmp_path / "d.onnx").metadata_props}
    assert props["input"].startswith("x: (batch, (data_shape[0] + 10), *data_shape[1:])")
    assert "one-hot code of its class" in props["input"]
    session = ort.InferenceSession(str(tmp_path / "d.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == ["batch", 794]


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
        "import sys, tinygan, tinygan.run.cli, tinygan.interop, tinygan.run.sampling\n"
        "assert not {'onnx', 'onnxruntime', 'torch'} & set(sys.modules), sorted(sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("fmt", ["onnx", "torch"])
def test_a_layer_without_counterpart_is_refused_in_one_line(fmt, tmp_path, capsys):
    """A ``--minibatch-std`` discriminator has a layer neither route has; its generator exports."""
    pytest.importorskip(fmt)
    preset = replace(PRESETS["mlp-tf"], minibatch_std=True)
    gan = preset.make_gan(np.random.default_rng(0), np.random.default_rng(1))
    metadata = {"preset": "mlp-tf", "seed": 0, "settings": {"minibatch_std": True}}
    path = save_checkpoint(tmp_path / "ck.npz", gan, metadata=metadata)
    out = tmp_path / "d.out"
    argv = ["export", str(path), "--network", "discriminator", "--format", fmt, "--out", str(out)]
    assert run_cli(argv) == 2
    err = capsys.readouterr().err
    twin = "no ONNX export" if fmt == "onnx" else "no PyTorch twin"
    assert err == (
        f"tinygan export: error: {twin} for MinibatchStd: this checkpoint's discriminator cannot "
        "be exported\n"
    )
    assert not out.exists()
    argv = ["export", str(path), "--format", fmt, "--out", str(tmp_path / "g.out")]
    assert run_cli(argv) == 0
