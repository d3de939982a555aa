"""Every mistake on the command line gets one line on stderr and exit code 2, never a traceback."""

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from conftest import mnist_dir
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinygan.backend import gpu_available
from tinygan.run.checkpoint import checkpoint_files
from tinygan.run.cli import main as cli
from tinygan.run.experiment import describe_data, main
from tinygan.run.folder_lock import LOCK_NAME
from tinygan.run.settings import RunSettings
from tinygan.run.train import Trainer


def data_flags(out):
    return ["--data-dir", str(mnist_dir()), "--split", "test", "--out", str(out), "--no-progress"]


def train(argv):
    """Exit code and stderr of ``tinygan train ARGV``."""
    try:
        return cli(["train", *argv])
    except SystemExit as stop:
        return stop.code


@pytest.fixture
def no_training(monkeypatch):
    """Everything up to the first step runs; the steps themselves are skipped."""
    monkeypatch.setattr(Trainer, "fit", lambda self, steps: self.history)


BAD_FLAGS = [
    (["--batch-size", "0"], "--batch-size: must be a positive integer, got 0"),
    (["--batch-size", "20000"], "--batch-size 20000 is larger than the 10000 images"),
    (["--subset", "10"], "--batch-size 64 is larger than --subset 10"),
    (["--subset", "10001"], "--subset 10001: there are only 10000 images"),
    (["--lr", "-1"], "--lr: must be a finite number > 0, got -1"),
    (["--lr", "nan"], "--lr: must be a finite number > 0, got 'nan'"),
    (["--seed", "-1"], "--seed: must be an integer from 0 to 2**63 - 1, got -1"),
    (["--sample-every", "0"], "--sample-every: must be a positive integer, got 0"),
    (["--log-every", "0"], "--log-every: must be a positive integer, got 0"),
    (["--iterations", "0"], "--iterations: must be a positive integer, got 0"),
    (["--iterations", "-5"], "--iterations: must be a positive integer, got -5"),
    (["--epochs", "-1"], "--epochs: must be a positive integer, got -1"),
    (["--iterations", "5", "--epochs", "1"], "not allowed with argument"),
    (["004", "--preset", "000"], "two presets given: mlp-book and --preset mlp-tf"),
    (["--preset", "001"], "--preset: must be one of mlp-tf (000), dcgan-keras (002), dcgan-tf"),
    (["--resume", "--overwrite"], "--resume continues the run in --out and --overwrite deletes"),
    (["--checkpoint-seconds", "inf"], "--checkpoint-seconds: must be a finite number >= 0"),
    (["--keep-checkpoints", "-2"], "--keep-checkpoints: must be an integer >= 0"),
    (["--ema", "1"], "--ema: must be a number between 0 and 1 (exclusive), e.g. 0.999, got 1"),
    (["--ema", "0"], "--ema: must be a number between 0 and 1 (exclusive)"),
    (["--pack", "0"], "--pack: must be a positive integer, got 0"),
    (["--pack", "2", "--subset", "100"], "--batch-size 64 with --pack 2 takes 128 images a step"),
    (["--modes-every", "10"], "--modes-every: preset mlp-tf trains on images"),
    (
        ["--ema", "nan"],
        "--ema: must be a number between 0 and 1 (exclusive), e.g. 0.999, got 'nan'",
    ),
]


@pytest.mark.parametrize(("flags", "message"), BAD_FLAGS, ids=[" ".join(f) for f, _ in BAD_FLAGS])
def test_bad_flags_give_one_line_and_exit_2(tmp_path, capsys, no_training, flags, message):
    assert train([*data_flags(tmp_path / "run"), *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("tinygan train: error: ") and message in err
    assert not (tmp_path / "run").exists()  # an early error leaves no empty --out behind


@pytest.mark.skipif(gpu_available(), reason="checks the message shown where no GPU is usable")
def test_gpu_without_cupy_is_a_one_line_error(tmp_path, capsys, no_training):
    assert train([*data_flags(tmp_path), "--device", "gpu"]) == 2
    err = capsys.readouterr().err
    assert "--device gpu needs CuPy" in err and 'pip install -e ".[gpu]"' in err  # as the README


@pytest.mark.parametrize("where", ["a file", "below a file", "not writable"])
def test_an_unusable_out_folder_fails_before_training(tmp_path, capsys, no_training, where):
    blocker = tmp_path / "file"
    blocker.write_text("")
    out = {"a file": blocker, "below a file": blocker / "run", "not writable": Path("/proc/x")}
    argv = [*data_flags(out[where]), "--iterations", "5"]
    assert train(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--out {out[where]}" in err


def test_a_second_run_into_a_used_folder_needs_resume_or_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    main([*data_flags(out), "--iterations", "3", "--seed", "1"])
    (out / "notes.txt").write_text("mine")
    assert train([*data_flags(out), "--iterations", "2"]) == 2
    assert "pass --resume to continue it, or --overwrite" in capsys.readouterr().err
    before = sorted(out.rglob("*"))
    assert train([*data_flags(out), "--iterations", "2", "--overwrite", "--subset", "10001"]) == 2
    assert sorted(out.rglob("*")) == before  # --overwrite deletes only once the new run is good

    trainer = main([*data_flags(out), "--iterations", "2", "--overwrite"])
    assert trainer.step == 2
    assert [p.name for p in checkpoint_files(out / "checkpoints")] == [
        "step_00000002.npz",
        "step_00000000.npz",
    ]
    assert (out / "notes.txt").read_text() == "mine"  # only the run's own files are deleted
    with (out / "log.csv").open() as handle:
        assert [line.split(",")[0] for line in handle][1:] == ["2"]


def test_resume_applies_or_refuses_every_flag_and_config_records_it(tmp_path, capsys):
    out = tmp_path / "run"
    main([*data_flags(out), "--iterations", "4", "--seed", "7", "--subset", "256"])
    config = json.loads((out / "config.json").read_text())
    assert config["seed"] == 7
    assert config["settings"]["subset"] == 256 and config["settings"]["data_dir"] == str(
        mnist_dir()
    )

    for flag, value in [("--subset", "128"), ("--seed", "8"), ("--batch-size", "32")]:
        assert train(["--resume", "--out", str(out), flag, value]) == 2
        err = capsys.readouterr().err
        assert f"{flag} {value}: the run in" in err and "was started with" in err

    trainer = main(["--resume", "--out", str(out), "--iterations", "6", "--lr", "0.05"])
    assert trainer.step == 6 and len(trainer.batches.data) == 256
    assert trainer.gan.g_optimizer.lr == trainer.gan.d_optimizer.lr == 0.05
    config = json.loads((out / "config.json").read_text())
    assert config["resumes"] == [{"step": 4, "changed": {"iterations": 6, "lr": 0.05}}]
    assert config["settings"]["lr"] == 0.05 and config["settings"]["seed"] == 7


INT_FLAGS = [
    "--iterations",
    "--epochs",
    "--batch-size",
    "--subset",
    "--sample-every",
    "--log-every",
    "--checkpoint-every",
    "--keep-checkpoints",
    "--seed",
    "--pack",
]
FLOAT_FLAGS = ["--lr", "--checkpoint-seconds"]
CHOICE_FLAGS = {
    "--preset": ["000", "002", "003", "004", "001", "999", "mlp-tf", "dcgan-tf", "gaussian-1d"],
    "--dataset": ["mnist", "fashion-mnist", "cifar"],
    "--split": ["train", "test", "validation"],
    "--device": ["cpu", "gpu", "tpu"],
}
ODD_TEXT = st.sampled_from(["", "x", "1.5", "1e3", "nan", "-inf", "0x10", "--", " 3", "٣"])
INTS = st.one_of(st.integers(-3, 300), st.integers(-(2**70), 2**70)).map(str)
FLOATS = st.floats(allow_nan=True, allow_infinity=True).map(repr)


@st.composite
def flag_values(draw):
    argv = []
    for flag in draw(st.lists(st.sampled_from(INT_FLAGS + FLOAT_FLAGS), max_size=4, unique=True)):
        argv += [flag, draw(st.one_of(INTS if flag in INT_FLAGS else FLOATS, ODD_TEXT))]
    for flag in draw(st.lists(st.sampled_from(sorted(CHOICE_FLAGS)), max_size=2, unique=True)):
        argv += [flag, draw(st.sampled_from(CHOICE_FLAGS[flag]))]
    switches = ["--resume", "--overwrite", "--no-progress"]
    argv += draw(st.lists(st.sampled_from(switches), max_size=2, unique=True))
    return argv


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(argv=flag_values())
def test_random_flags_exit_0_or_2_and_never_print_a_traceback(argv, no_training, capsys):
    with tempfile.TemporaryDirectory() as folder:
        flags = ["--data-dir", str(mnist_dir()), "--no-download", "--out", str(Path(folder) / "r")]
        code = train([*flags, *argv])
    err = capsys.readouterr().err
    assert code in (0, 2), (argv, code, err)
    assert "Traceback" not in err
    if code == 2:
        assert err.startswith("tinygan train: error: "), err


def test_sampling_a_damaged_checkpoint_names_the_file(tmp_path, capsys):
    out = tmp_path / "run"
    main([*data_flags(out), "--iterations", "2"])
    (checkpoint, *_) = checkpoint_files(out / "checkpoints")
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, weights=np.ones(3))
    text = tmp_path / "text.npz"
    text.write_text("hello")
    for path, problem in [
        (checkpoint, "truncated or damaged"),
        (foreign, "without tinygan's metadata"),
        (text, "not an .npz archive"),
    ]:
        for command in (["sample", str(path)], ["eval", str(path), "--n", "10"]):
            with pytest.raises(SystemExit) as stop:
                cli(command)
            err = capsys.readouterr().err
            assert stop.value.code != 0 and str(path) in str(stop.value.code) + err
            assert problem in str(stop.value.code) + err


def test_an_unexpected_error_is_one_line_unless_debug(tmp_path, capsys, monkeypatch):
    def broken(self, steps):
        raise RuntimeError("something\nunexpected")

    monkeypatch.setattr(Trainer, "fit", broken)
    assert train([*data_flags(tmp_path / "a"), "--iterations", "2"]) == 1
    err = capsys.readouterr().err
    assert err == "tinygan train: error: something unexpected (--debug shows the traceback)\n"
    with pytest.raises(RuntimeError, match="unexpected"):
        train([*data_flags(tmp_path / "b"), "--iterations", "2", "--debug"])
    monkeypatch.setenv("TINYGAN_DEBUG", "1")
    with pytest.raises(RuntimeError, match="unexpected"):
        train([*data_flags(tmp_path / "c"), "--iterations", "2"])


def test_a_run_on_the_bundled_digits_resumes_on_them(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TINYGAN_DATA", str(tmp_path / "empty"))
    out = tmp_path / "run"
    argv = ["--out", str(out), "--no-progress", "--no-download", "--subset", "128"]
    main([*argv, "--iterations", "2"])
    said = capsys.readouterr().out
    assert "bundled with tinygan" in said and "the first 128 bundled MNIST test digits" in said
    config = json.loads((out / "config.json").read_text())
    assert config["settings"]["bundled_data"] is True
    assert Path(config["settings"]["data_folder"]).name == "bundled"

    assert train(["--resume", "--out", str(out), "--data-dir", str(mnist_dir())]) == 2
    assert "trained on the MNIST test digits bundled with tinygan" in capsys.readouterr().err
    assert train(["--resume", "--out", str(out)]) == 2  # already at its last step
    assert "is at step 2 of 2; pass a larger --iterations" in capsys.readouterr().err
    assert main(["--resume", "--out", str(out), "--iterations", "4"]).step == 4


def test_an_early_error_removes_only_what_the_run_created(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    for out in (tmp_path / "new" / "deeper", mine):
        assert train([*data_flags(out), "--subset", "10001"]) == 2
        assert "--subset 10001: there are only" in capsys.readouterr().err
    assert sorted(tmp_path.iterdir()) == [mine] and list(mine.iterdir()) == []


def test_the_lock_file_of_a_dead_run_is_not_a_used_folder(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK_NAME).write_text('{"pid": 999999999, "started": "long ago"}\n')
    assert main([*data_flags(out), "--iterations", "2"]).step == 2
    assert json.loads((out / LOCK_NAME).read_text())["pid"] == os.getpid()


def test_a_relative_data_dir_is_stored_absolute_and_resumes_from_anywhere(
    tmp_path, monkeypatch, capsys
):
    (tmp_path / "here").mkdir()
    (tmp_path / "here" / "data").symlink_to(mnist_dir())
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    out = tmp_path / "run"
    main(
        ["--data-dir", "data", "--split", "test", "--out", str(out), "--no-progress"]
        + ["--iterations", "2", "--subset", "128"]
    )
    data = tmp_path / "here" / "data"
    assert f"the first 128 MNIST test images from {data}, 2 steps" in capsys.readouterr().out
    settings = json.loads((out / "config.json").read_text())["settings"]
    assert settings["data_dir"] == settings["data_folder"] == str(data)
    monkeypatch.chdir(tmp_path / "elsewhere")  # where "data" names nothing
    assert main(["--resume", "--out", str(out), "--iterations", "4"]).step == 4


def test_the_run_summary_names_the_data_actually_used():
    bundled = RunSettings(preset="mlp-tf", seed=0, bundled_data=True)
    assert describe_data(bundled, 10_000) == "10,000 bundled MNIST test digits"
    settings = RunSettings(
        preset="mlp-tf", seed=0, dataset="fashion-mnist", data_folder="/data/fashion"
    )
    assert describe_data(settings, 60_000) == "60,000 Fashion-MNIST train images from /data/fashion"
