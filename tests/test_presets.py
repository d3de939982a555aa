"""Presets have descriptive names, the tutorials' old numbers still work as aliases everywhere, and
each preset holds its tutorial's settings, networks and initial weights."""

import json

import numpy as np
import pytest
from conftest import mnist_dir

from tinygan.interop import trace_layers
from tinygan.models import PRESETS, get_preset
from tinygan.nn import BatchNorm, Conv2D, ConvTranspose2D, Dense, Dropout, LeakyReLU
from tinygan.run.checkpoint import checkpoint_files, read_checkpoint, write_checkpoint
from tinygan.run.cli import main as cli
from tinygan.run.experiment import IMAGE_PRESETS, main
from tinygan.run.flags import training_parser
from tinygan.run.train import Trainer

NAMES_AND_ALIASES = [
    ("mlp-tf", "000"),
    ("gaussian-1d", "001"),
    ("dcgan-keras", "002"),
    ("dcgan-tf", "003"),
    ("mlp-book", "004"),
]
#: Presets beyond the tutorials: no alias.
OWN_PRESETS = ["dcgan-fast", "ring", "grid", "stacked-mnist"]


def data_flags():
    return ["--data-dir", str(mnist_dir()), "--split", "test", "--no-progress", "--no-download"]


@pytest.fixture
def no_training(monkeypatch):
    """Everything up to the first step runs; the steps themselves are skipped."""
    monkeypatch.setattr(Trainer, "fit", lambda self, steps: self.history)


@pytest.mark.parametrize(("name", "alias"), NAMES_AND_ALIASES)
def test_a_name_and_its_alias_are_the_same_preset(name, alias):
    preset = get_preset(alias)
    assert preset is get_preset(name) is PRESETS[alias] is PRESETS[name]
    assert (preset.name, preset.alias) == (name, alias)
    assert alias in PRESETS and name in PRESETS


def test_the_table_lists_each_preset_once_under_its_name():
    assert list(PRESETS) == [name for name, _ in NAMES_AND_ALIASES] + OWN_PRESETS
    aliases = [a for _, a in NAMES_AND_ALIASES] + [None] * len(OWN_PRESETS)
    assert [preset.alias for preset in PRESETS.values()] == aliases
    assert IMAGE_PRESETS == [
        *["mlp-tf", "dcgan-keras", "dcgan-tf", "mlp-book", "dcgan-fast", "stacked-mnist"]
    ]
    assert all(PRESETS[name].image_size == (28, 28) for name in IMAGE_PRESETS)


def test_an_unknown_preset_lists_names_and_aliases():
    with pytest.raises(ValueError, match=r"unknown preset '005'; known presets: mlp-tf \(000\), "):
        get_preset("005")


def test_tinygan_presets_prints_name_alias_and_description(capsys):
    assert cli(["presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "alias", "description"]
    rows = NAMES_AND_ALIASES + [(name, "-") for name in OWN_PRESETS]
    for (name, alias), line in zip(rows, lines[1:], strict=True):
        assert line.split()[:2] == [name, alias]
        assert PRESETS[name].description in line
    assert lines[4].endswith("[tinygan train dcgan-tf]")
    assert lines[2].endswith("[examples/gaussian_1d_gan.py]")
    assert lines[7].endswith("[tinygan train ring]")


def test_the_flag_parses_an_alias_to_the_name_and_refuses_other_presets(capsys):
    parser = training_parser("MLP GANs", ["mlp-tf", "mlp-book"], "000")
    assert parser.parse_args(["--preset", "004"]).preset == "mlp-book"
    assert parser.parse_args(["--preset", "mlp-book"]).preset == "mlp-book"
    assert parser.parse_args([]).default_preset == "mlp-tf"
    with pytest.raises(SystemExit) as stop:
        parser.parse_args(["--preset", "003"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "--preset: must be one of mlp-tf (000), mlp-book (004), got '003'" in err


def test_a_run_by_alias_records_the_name_in_runs_name(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli(["train", "000", "--iterations", "1", "--subset", "64", *data_flags()]) == 0
    assert "tinygan: preset mlp-tf (" in capsys.readouterr().out
    out = tmp_path / "runs" / "mlp-tf"
    config = json.loads((out / "config.json").read_text())
    assert config["preset"] == config["settings"]["preset"] == "mlp-tf"
    metadata = json.loads(
        str(read_checkpoint(checkpoint_files(out / "checkpoints")[0])["metadata"])
    )
    assert metadata["preset"] == metadata["settings"]["preset"] == "mlp-tf"


def test_a_name_and_its_alias_given_together_are_one_preset(tmp_path, no_training):
    argv = ["train", "004", "--preset", "mlp-book", "--out", str(tmp_path), *data_flags()]
    assert cli(argv) == 0


def record_alias(out, alias):
    """Make the run in ``out`` look as if it was trained before the presets had names."""
    for path in checkpoint_files(out / "checkpoints"):
        archive = read_checkpoint(path)
        metadata = json.loads(str(archive["metadata"]))
        metadata["preset"] = metadata["settings"]["preset"] = alias
        archive["metadata"] = json.dumps(metadata)
        write_checkpoint(path, archive)
    config = json.loads((out / "config.json").read_text())
    config["preset"] = config["settings"]["preset"] = alias
    (out / "config.json").write_text(json.dumps(config))


@pytest.fixture
def old_run(tmp_path):
    """A finished 2-step mlp-tf run whose checkpoints and config.json say "000"."""
    out = tmp_path / "old"
    main(
        ["--preset", "mlp-tf", "--iterations", "2", "--subset", "64", "--seed", "1"]
        + data_flags()
        + ["--out", str(out)]
    )
    record_alias(out, "000")
    return out


@pytest.mark.parametrize("preset_flags", [[], ["--preset", "000"], ["--preset", "mlp-tf"]])
def test_an_old_run_resumes_by_name_or_alias(old_run, preset_flags):
    trainer = main(["--resume", "--out", str(old_run), "--iterations", "4", *preset_flags])
    assert trainer.step == 4
    newest = read_checkpoint(checkpoint_files(old_run / "checkpoints")[0])
    assert json.loads(str(newest["metadata"]))["preset"] == "mlp-tf"


def test_an_old_run_refuses_another_preset_on_resume(old_run, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--resume", "--out", str(old_run), "--iterations", "4", "--preset", "004"])
    assert stop.value.code == 2
    assert "--preset mlp-book: the run in" in capsys.readouterr().err


def test_an_old_checkpoint_samples_as_its_named_preset(old_run, tmp_path, capsys):
    (checkpoint, *_) = checkpoint_files(old_run / "checkpoints")
    assert cli(["sample", str(checkpoint), "--n", "4", "--out", str(tmp_path / "picks")]) == 0
    assert "4 images of preset mlp-tf" in capsys.readouterr().out
    assert len(list((tmp_path / "picks").glob("sample_*.png"))) == 4


# -- each preset against its tutorial's code (docs/presets.md names the lines) ---------------------

#: What a tutorial has unless its code says otherwise: the plain game with TensorFlow's Adam.
PLAIN = {
    "betas": (0.9, 0.999),
    "eps": 1e-8,  # tf.train.AdamOptimizer's
    "generator_loss": "nonsaturating",
    "real_label": 1.0,
    "fake_label": 0.0,
    "generator_target": 1.0,
    "d_steps": 1,
    "g_steps": 1,
    "simultaneous": False,
    "reuse_noise": False,
    "inference_fakes": False,
    "sample_first": False,
    "checkpoint_every": None,
}
#: The settings each tutorial's code gives, field by field, as the preset must hold them.
TUTORIAL_SETTINGS = {
    "mlp-tf": {
        **PLAIN,
        "latent_dim": 100,
        "noise": "uniform",
        "value_range": (0.0, 1.0),
        "batch_size": 64,
        "g_lr": 1e-3,
        "d_lr": 1e-3,
        "steps": 100_000,
        "epochs": None,
        "reuse_noise": True,
        "sample_every": 500,
        "sample_unit": "step",
        "sample_grid": (8, 8),
    },
    "gaussian-1d": {
        **PLAIN,
        "latent_dim": 16,
        "noise": "uniform",
        "batch_size": 333,
        "g_lr": 5e-4,
        "d_lr": 1e-3,
        "eps": 1e-7,  # Keras' Adam
        "steps": None,
        "epochs": 1000,
        "real_label": 0.9,
        "fake_label": 0.1,
        "generator_target": 0.9,
        "reuse_noise": True,
        "inference_fakes": True,
        "sample_every": 10,
        "sample_unit": "epoch",
    },
    "dcgan-keras": {
        **PLAIN,
        "latent_dim": 100,
        "noise": "uniform",
        "value_range": (-1.0, 1.0),
        "batch_size": 128,
        "g_lr": 2e-4,
        "d_lr": 2e-4,
        "betas": (0.5, 0.999),
        "eps": 1e-7,
        "steps": 1000,
        "epochs": None,
        "real_label": 0.9,
        "g_steps": 5,
        "inference_fakes": True,
        "sample_every": 20,
        "sample_unit": "step",
        "sample_first": True,
        "sample_grid": (1, 8),
        "pixel_histograms": True,
    },
    "dcgan-tf": {
        **PLAIN,
        "latent_dim": 100,
        "noise": "normal",
        "value_range": (-1.0, 1.0),
        "batch_size": 256,
        "g_lr": 1e-4,
        "d_lr": 1e-4,
        "steps": None,
        "epochs": 150,
        "simultaneous": True,
        "sample_every": 1,
        "sample_unit": "epoch",
        "sample_grid": (4, 4),
        "checkpoint_every": 15,
        "make_gif": True,
    },
    "mlp-book": {
        **PLAIN,
        "latent_dim": 128,
        "noise": "normal",
        "value_range": (0.0, 1.0),
        "batch_size": 100,
        "g_lr": 2e-4,
        "d_lr": 2e-4,
        "steps": None,
        "epochs": 100,
        "reuse_noise": True,
        "sample_every": 10,
        "sample_unit": "epoch",
        "sample_first": True,
        "sample_grid": (1, 10),
    },
}


@pytest.mark.parametrize("name", list(TUTORIAL_SETTINGS))
def test_a_preset_holds_its_tutorials_settings(name):
    preset = get_preset(name)
    held = {field: getattr(preset, field) for field in TUTORIAL_SETTINGS[name]}
    assert held == TUTORIAL_SETTINGS[name]


def test_dcgan_fast_keeps_the_step_its_scores_were_measured_with():
    preset = get_preset("dcgan-fast")
    assert (preset.simultaneous, preset.reuse_noise, preset.inference_fakes) == (False,) * 3


KERAS_BN = "momentum 0.01 eps 0.001"  # BatchNormalization(): 0.99 of the old value, epsilon 1e-3

#: Each network's leaf layers as :func:`describe_layers` writes them: kind, output shape, settings.
TUTORIAL_NETWORKS = {
    "mlp-tf": (
        ["Dense 128", "ReLU 128", "Dense 784", "Sigmoid 784"],
        ["Dense 128", "ReLU 128", "Dense 1"],
    ),
    "gaussian-1d": (["Dense 32", "ReLU 32", "Dense 1"], ["Dense 32", "ReLU 32", "Dense 1"]),
    "dcgan-keras": (
        [
            "Dense 512",
            "LeakyReLU 512 0.2",
            "Dense 6272",
            "LeakyReLU 6272 0.2",
            f"BatchNorm 6272 {KERAS_BN}",
            "Reshape 128x7x7",
            "UpSampling2D 128x14x14",
            "Conv2D 64x14x14 k5 s1",
            "Tanh 64x14x14",
            "UpSampling2D 64x28x28",
            "Conv2D 1x28x28 k5 s1",
            "Tanh 1x28x28",
        ],
        [
            "Conv2D 256x28x28 k5 s1",
            "LeakyReLU 256x28x28 0.2",
            "MaxPool2D 256x14x14",
            "Dropout 256x14x14 0.3",
            "Conv2D 512x14x14 k5 s1",
            "LeakyReLU 512x14x14 0.2",
            "MaxPool2D 512x7x7",
            "Dropout 512x7x7 0.3",
            "Flatten 25088",
            "Dense 256",
            "LeakyReLU 256 0.2",
            "Dropout 256 0.3",
            "Dense 1",
        ],
    ),
    "dcgan-tf": (
        [
            "Dense 3136 no bias",
            f"BatchNorm 3136 {KERAS_BN}",
            "ReLU 3136",
            "Reshape 64x7x7",
            "ConvTranspose2D 64x7x7 k5 s1 no bias",
            f"BatchNorm 64x7x7 {KERAS_BN}",
            "ReLU 64x7x7",
            "ConvTranspose2D 32x14x14 k5 s2 no bias",
            f"BatchNorm 32x14x14 {KERAS_BN}",
            "ReLU 32x14x14",
            "ConvTranspose2D 1x28x28 k5 s2 no bias",
            "Tanh 1x28x28",
        ],
        [
            "Conv2D 64x14x14 k5 s2",
            "LeakyReLU 64x14x14 0.2",
            "Dropout 64x14x14 0.3",
            "Conv2D 128x7x7 k5 s2",
            "LeakyReLU 128x7x7 0.2",
            "Dropout 128x7x7 0.3",
            "Flatten 6272",
            "Dense 1",
        ],
    ),
    "mlp-book": (
        ["Dense 256", "ReLU 256", "Dense 784", "Sigmoid 784"],
        ["Dense 256", "ReLU 256", "Dense 1"],
    ),
}


def describe_layers(network, sample_shape):
    """Each leaf layer in data-flow order as "<kind> <output shape> <its settings>"."""
    described = []
    for traced in trace_layers(network, sample_shape):
        layer = traced.layer
        words = [type(layer).__name__, "x".join(map(str, traced.output_shape))]
        if isinstance(layer, (Conv2D, ConvTranspose2D)):
            words += [f"k{layer.kernel_size[0]}", f"s{layer.stride[0]}"]
        if isinstance(layer, (Dense, Conv2D, ConvTranspose2D)) and "b" not in layer.params:
            words.append("no bias")
        if isinstance(layer, BatchNorm):
            words.append(f"momentum {layer.momentum} eps {layer.eps}")
        if isinstance(layer, Dropout):
            words.append(str(layer.rate))
        if isinstance(layer, LeakyReLU):
            words.append(str(layer.alpha))
        described.append(" ".join(words))
    return described


@pytest.mark.parametrize("name", list(TUTORIAL_NETWORKS))
def test_a_presets_networks_are_its_tutorials_layer_by_layer(name):
    preset = get_preset(name)
    generator, discriminator = preset.build(np.random.default_rng(0))
    expected_g, expected_d = TUTORIAL_NETWORKS[name]
    assert describe_layers(generator, (preset.latent_dim,)) == expected_g
    assert describe_layers(discriminator, preset.data_shape) == expected_d


GLOROT = "glorot"  # Keras' default kernel initializer: U(-a, a), a = sqrt(6 / (fan_in + fan_out))

#: The initial weights of each network's layers with parameters, in order: the weights'
#: distribution (N(0, std^2) as a number, or Glorot-uniform) and the biases' constant value.
TUTORIAL_INITS = {
    "mlp-tf": ([(0.05, 0.1)] * 2, [(0.05, 0.1)] * 2),  # random_normal(stddev=5e-2), constant(0.1)
    "gaussian-1d": ([(GLOROT, 0.0)] * 2, [(GLOROT, 0.0)] * 2),
    "dcgan-keras": (
        [(GLOROT, 0.0)] * 2 + [None] + [(GLOROT, 0.0)] * 2,  # None: the BatchNorm (gamma 1, beta 0)
        [(0.02, 0.0)] + [(GLOROT, 0.0)] * 3,  # RandomNormal(stddev=0.02) on the first convolution
    ),
    "dcgan-tf": ([(GLOROT, None), None] * 3 + [(GLOROT, None)], [(GLOROT, 0.0)] * 3),
    "mlp-book": ([(0.01, 0.0)] * 2, [(0.01, 0.0)] * 2),  # random_normal(stddev=0.01), zeros
}


def fans(layer):
    weight = layer.params["W"]
    if isinstance(layer, Dense):
        return weight.shape
    taps = weight.shape[2] * weight.shape[3]
    return layer.in_channels * taps, layer.out_channels * taps


@pytest.mark.parametrize("name", list(TUTORIAL_INITS))
def test_a_presets_initial_weights_follow_its_tutorials_initializers(name):
    """Each weight tensor's spread is checked to a few standard errors (fixed seed: deterministic)."""
    generator, discriminator = get_preset(name).build(np.random.default_rng(0))
    for network, expected in zip((generator, discriminator), TUTORIAL_INITS[name], strict=True):
        layers = [layer for layer in network.walk() if layer.params]
        assert len(layers) == len(expected)
        for layer, spec in zip(layers, expected, strict=True):
            if spec is None:
                assert isinstance(layer, BatchNorm)
                assert np.all(layer.params["gamma"] == 1) and np.all(layer.params["beta"] == 0)
                continue
            weights, bias = spec
            w = layer.params["W"].astype(np.float64)
            if weights == GLOROT:
                limit = np.sqrt(6.0 / sum(fans(layer)))
                assert np.abs(w).max() <= limit
                std = limit / np.sqrt(3.0)  # of U(-a, a)
            else:
                std = weights
            assert abs(w.std() / std - 1) < 4 / np.sqrt(w.size) + 1e-3, (name, layer)
            assert abs(w.mean()) < 4 * std / np.sqrt(w.size), (name, layer)
            if bias is None:
                assert "b" not in layer.params
            else:
                assert np.all(layer.params["b"] == np.float32(bias))
