"""The ring and grid presets: the networks and settings of PacGAN's code, and runs that train on the
mixtures' points, draw scatter frames and a GIF, count modes into modes.csv, and resume exactly."""

import json

import numpy as np
import pytest
from PIL import Image

from tinygan.data import MIXTURES
from tinygan.models import get_preset
from tinygan.nn import BatchNorm, Dense, Maxout
from tinygan.run.checkpoint import checkpoint_files
from tinygan.run.cli import main as cli
from tinygan.run.mixture_run import MODES_COLUMNS, read_modes_csv

NAMES = ["ring", "grid"]


def describe(layer):
    if isinstance(layer, Maxout):
        return f"Maxout {layer.in_features}->{layer.units}x{layer.pieces}"
    if isinstance(layer, Dense):
        bias = "" if "b" in layer.params else " no bias"
        return f"Dense {layer.in_features}->{layer.out_features}{bias}"
    if isinstance(layer, BatchNorm):
        return f"BatchNorm {layer.num_features} momentum {layer.momentum} eps {layer.eps}"
    return type(layer).__name__


@pytest.mark.parametrize("pack", [1, 2, 4])
@pytest.mark.parametrize("name", NAMES)
def test_the_networks_are_pacgans(name, pack):
    generator, discriminator = get_preset(name).build(np.random.default_rng(0), pack=pack)
    hidden = ["BatchNorm 400 momentum 0.05 eps 0.0001", "ReLU"]
    assert [describe(layer) for layer in generator.layers] == [
        *["Dense 2->400 no bias", *hidden],
        *["Dense 400->400 no bias", *hidden] * 3,
        "Dense 400->2",
    ]
    assert [describe(layer) for layer in discriminator.layers] == [
        f"Maxout {2 * pack}->200x5",
        "Maxout 200->200x5",
        "Maxout 200->200x5",
        "Dense 200->1",
    ]


@pytest.mark.parametrize("name", NAMES)
def test_weights_are_drawn_from_n_0_0_02_and_biases_are_zero(name):
    """Each weight matrix's spread, to a few standard errors (fixed seed: deterministic)."""
    generator, discriminator = get_preset(name).build(np.random.default_rng(0), pack=2)
    for layer in [*generator.walk(), *discriminator.walk()]:
        if isinstance(layer, BatchNorm):
            assert np.all(layer.params["gamma"] == 1) and np.all(layer.params["beta"] == 0)
        elif "W" in layer.params:
            w = layer.params["W"].astype(np.float64)
            assert abs(w.std() / 0.02 - 1) < 4 / np.sqrt(w.size) + 1e-3, layer
            assert abs(w.mean()) < 4 * 0.02 / np.sqrt(w.size), layer
            assert "b" not in layer.params or not layer.params["b"].any(), layer


@pytest.mark.parametrize("name", NAMES)
def test_the_settings_are_the_protocols(name):
    preset = get_preset(name)
    held = {
        field: getattr(preset, field)
        for field in (
            "latent_dim",
            "noise",
            "batch_size",
            "g_lr",
            "d_lr",
            "betas",
            "eps",
            "steps",
            "epochs",
            "generator_loss",
            "real_label",
            "fake_label",
            "simultaneous",
            "reuse_noise",
            "inference_fakes",
            "pack",
            "mixture",
        )
    }
    assert held == {
        "latent_dim": 2,
        "noise": "normal",
        "batch_size": 100,
        "g_lr": 1e-4,
        "d_lr": 1e-4,
        "betas": (0.8, 0.999),
        "eps": 1e-8,
        "steps": 400_000,
        "epochs": None,
        "generator_loss": "nonsaturating",
        "real_label": 1.0,
        "fake_label": 0.0,
        "simultaneous": True,
        "reuse_noise": False,
        "inference_fakes": False,
        "pack": 1,
        "mixture": name,
    }
    gan = preset.make_gan(np.random.default_rng(0), np.random.default_rng(1))
    assert gan.join_d_batches  # no BatchNorm in D: real and fake may share one pass


def train(name, out, *flags):
    """Exit code of a short ``tinygan train NAME`` run into ``out``."""
    argv = ["train", name, "--out", str(out), "--seed", "3", "--no-progress", "--log-every", "10"]
    try:
        return cli([*argv, "--sample-every", "20", "--modes-every", "20", *flags])
    except SystemExit as stop:
        return stop.code


@pytest.mark.parametrize(("name", "pack"), [("ring", "1"), ("grid", "2")])
def test_a_short_run_writes_frames_a_gif_and_the_mode_counts(name, pack, tmp_path, capsys):
    out = tmp_path / name
    assert train(name, out, "--iterations", "50", "--pack", pack) == 0
    printed = capsys.readouterr().out
    assert f"100,000 points of the 2-D {name}" in printed
    assert f"of {MIXTURES[name].num_modes} modes" in printed
    frames = sorted(path.name for path in (out / "samples").iterdir())
    assert frames == ["step_000000.png", "step_000020.png", "step_000040.png", "step_000050.png"]
    with Image.open(out / "samples" / "step_000050.png") as frame:
        assert frame.size == (500, 500)
    with Image.open(out / "training.gif") as gif:
        assert gif.n_frames >= 2
    assert (out / "modes.csv").read_text().splitlines()[0] == ",".join(MODES_COLUMNS)
    rows = read_modes_csv(out / "modes.csv")
    assert [row["step"] for row in rows] == [0, 20, 40, 50]
    for row in rows:
        assert 0 <= row["modes"] <= MIXTURES[name].num_modes and 0 <= row["high_quality"] <= 1
        most = np.log(MIXTURES[name].num_modes) + 1e-5  # all in one mode; the file keeps 6 digits
        assert row["modes"] == 0 or 0 <= row["reverse_kl"] <= most
    settings = json.loads((out / "config.json").read_text())["settings"]
    assert (settings["dataset"], settings["pack"]) == (name, int(pack))


def test_a_resumed_run_is_the_straight_run(tmp_path):
    straight, halves = tmp_path / "straight", tmp_path / "halves"
    assert train("ring", straight, "--iterations", "40") == 0
    assert train("ring", halves, "--iterations", "20") == 0
    assert (
        cli(["train", "--resume", "--out", str(halves), "--iterations", "40", "--no-progress"]) == 0
    )
    assert (halves / "modes.csv").read_text() == (straight / "modes.csv").read_text()
    ends = [np.load(checkpoint_files(run / "checkpoints")[0]) for run in (straight, halves)]
    for key in ends[0].files:
        if key.startswith(("G.", "D.")):
            np.testing.assert_array_equal(ends[0][key], ends[1][key], err_msg=key)


def test_a_resume_drops_the_measures_a_killed_run_took_after_its_checkpoint(tmp_path):
    out = tmp_path / "run"
    assert train("ring", out, "--iterations", "20") == 0
    with (out / "modes.csv").open("a") as handle:  # measured, then killed before a checkpoint
        handle.write("30,0,8,0.9,0.01\n40,0,8,0.9")
    assert cli(["train", "--resume", "--out", str(out), "--iterations", "25", "--no-progress"]) == 0
    assert [row["step"] for row in read_modes_csv(out / "modes.csv")] == [0, 20, 25]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--split", "test"], "--split: preset ring trains on the points of its 2-D mixture"),
        (["--subset", "10"], "--subset: preset ring trains on the points of its 2-D mixture"),
        (["--quality-every", "5"], "--quality-every: preset ring trains on the points"),
        (["--pack", "1001"], "--batch-size 100 with --pack 1001 takes 100,100 points a step"),
    ],
)
def test_flags_about_images_are_refused_in_one_line(flags, message, tmp_path, capsys):
    assert train("ring", tmp_path / "run", "--iterations", "1", *flags) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "run").exists()


def test_sampling_images_from_a_ring_checkpoint_is_refused(tmp_path, capsys):
    assert train("ring", tmp_path / "run", "--iterations", "1") == 0
    checkpoint = checkpoint_files(tmp_path / "run" / "checkpoints")[0]
    with pytest.raises(SystemExit, match="preset ring makes 2-D points, not images"):
        cli(["sample", str(checkpoint), "--out", str(tmp_path / "picks")])
