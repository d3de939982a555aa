"""Presets have descriptive names, and the tutorials' old numbers still work as aliases everywhere."""

import json

import pytest
from conftest import mnist_dir

from tinygan.checkpoint import checkpoint_files, read_checkpoint, write_checkpoint
from tinygan.cli import main as cli
from tinygan.experiment import IMAGE_PRESETS, main
from tinygan.flags import training_parser
from tinygan.models import PRESETS, get_preset
from tinygan.train import Trainer

NAMES_AND_ALIASES = [
    ("mlp-tf", "000"),
    ("gaussian-1d", "001"),
    ("dcgan-keras", "002"),
    ("dcgan-tf", "003"),
    ("mlp-book", "004"),
]
#: Presets beyond the tutorials: no alias.
OWN_PRESETS = ["dcgan-fast"]


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
    assert IMAGE_PRESETS == ["mlp-tf", "dcgan-keras", "dcgan-tf", "mlp-book", "dcgan-fast"]
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
