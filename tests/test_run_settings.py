"""A run's settings are resolved once into a frozen RunSettings: fresh or resumed, they agree, a
resume refuses or takes each flag as the command line promises, and config.json round-trips them."""

import dataclasses
import json
from pathlib import Path

import pytest

from tinygan.models import get_preset
from tinygan.run.experiment import TRAIN_PRESETS
from tinygan.run.flags import training_parser
from tinygan.run.settings import (
    RunRefused,
    RunSettings,
    check_flags,
    configure,
    flags_given,
    read_config,
    recorded_settings,
    resolve_settings,
    resumed_config,
    write_config,
)

SOURCE = Path("runs/x/checkpoints/step_00000004.npz")


def given(*argv: str) -> dict:
    """The flags of ``tinygan train ARGV`` as the run reads them."""
    parser = training_parser("test", TRAIN_PRESETS, "mlp-tf")
    return flags_given(parser.parse_args(list(argv)))


def fresh(*argv: str) -> RunSettings:
    args = given(*argv)
    settings, changes = resolve_settings(args, args["preset"] or "mlp-tf")
    assert changes == {}
    return settings


def resumed(settings: RunSettings, *argv: str) -> tuple[RunSettings, dict]:
    """Resolve ``--resume ARGV`` against the checkpoint metadata ``settings`` would write."""
    metadata = json.loads(json.dumps(settings.checkpoint_metadata()))  # as a checkpoint stores it
    return resolve_settings(given(*argv), "mlp-tf", recorded_settings(metadata), SOURCE)


RUNS = [
    ["--seed", "3"],
    ["--seed", "3", "--subset", "256", "--split", "test", "--ema", "0.999", "--lr", "0.01"],
    ["--preset", "dcgan-tf", "--seed", "5", "--no-simultaneous", "--pack", "2"],
    ["--seed", "1", "--loss", "wasserstein"],
    ["--seed", "1", "--loss", "wasserstein", "--penalty", "wgan-gp", "--n-critic", "3"],
    ["--preset", "ring", "--seed", "2", "--pack", "4", "--modes-every", "50"],
    ["--preset", "dcgan-fast", "--seed", "4", "--conditional", "--pack", "2"],
    ["--preset", "ring", "--seed", "6", "--minibatch-std", "--penalty", "r1"],
]


@pytest.mark.parametrize("argv", RUNS, ids=[" ".join(argv) for argv in RUNS])
def test_a_resumed_run_has_the_settings_of_the_fresh_run(argv):
    started = fresh(*argv).trained_on("/data/mnist", bundled=False)
    again, changes = resumed(started)
    assert again == started and changes == {}
    assert again.configured_preset == started.configured_preset


def test_the_settings_are_frozen():
    settings = fresh("--seed", "3")
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.seed = 4
    bundled = settings.trained_on("/somewhere/bundled", bundled=True)
    assert (settings.bundled_data, settings.data_folder) == (False, None)  # a new object
    assert (bundled.bundled_data, bundled.data_folder) == (True, "/somewhere/bundled")


def test_a_fresh_run_resolves_what_the_preset_and_flags_play():
    settings = fresh("--seed", "1", "--loss", "wasserstein")
    # the WGAN paper's recipe: 5 critic updates, clipping, RMSprop at 5e-5, alternating updates
    assert (settings.loss, settings.n_critic, settings.clip, settings.penalty) == (
        "wasserstein",
        5,
        0.01,
        "none",
    )
    assert settings.simultaneous is False and settings.pack == 1
    preset = settings.configured_preset
    assert (preset.optimizer, preset.g_lr, preset.d_steps) == ("rmsprop", 5e-5, 5)
    assert preset == configure(get_preset("mlp-tf"), given("--loss", "wasserstein"))
    ring = fresh("--preset", "ring", "--seed", "1")
    assert (ring.dataset, ring.split) == ("ring", None)  # a mixture run's data is its mixture
    assert fresh().seed != fresh().seed  # no --seed: a fresh one each run
    conditional = fresh("--preset", "dcgan-fast", "--seed", "1", "--conditional")
    assert conditional.conditional and conditional.configured_preset.classes == 10
    assert fresh("--seed", "1").configured_preset.classes is None
    with pytest.raises(RunRefused, match="^--conditional: preset ring trains on the points"):
        fresh("--preset", "ring", "--conditional")


REFUSED = [
    (
        ["--seed", "8"],
        "--seed 8: the run in runs/x/checkpoints/step_00000004.npz was started with 3",
    ),
    (["--subset", "128"], "--subset 128: the run in"),
    (["--batch-size", "32"], "--batch-size 32: the run in"),
    (["--pack", "2"], "--pack 2: the run in"),
    (["--simultaneous"], "--simultaneous: the run in runs/x/checkpoints/step_00000004.npz was "),
    (["--loss", "hinge"], "--loss hinge: the run in"),
    (
        ["--conditional"],
        "--conditional: the run in runs/x/checkpoints/step_00000004.npz was started "
        "with --no-conditional",
    ),
    (["--preset", "dcgan-tf"], "--preset dcgan-tf: the run in"),
    (["--minibatch-std"], "--minibatch-std: the run in runs/x/checkpoints/step_00000004.npz was "),
]


@pytest.mark.parametrize(("argv", "message"), REFUSED, ids=[" ".join(a) for a, _ in REFUSED])
def test_a_resume_refuses_a_flag_that_changes_what_the_run_is(argv, message):
    started = fresh("--seed", "3", "--subset", "256").trained_on("/data", bundled=False)
    with pytest.raises(RunRefused, match="continues it as it was") as refusal:
        resumed(started, *argv)
    assert str(refusal.value).startswith(message)


def test_a_resume_names_the_step_rule_flags_of_both_values():
    started = fresh("--preset", "dcgan-tf", "--seed", "3")  # dcgan-tf steps simultaneously
    with pytest.raises(RunRefused) as refusal:
        resumed(started, "--no-simultaneous")
    assert str(refusal.value).startswith("--no-simultaneous: the run in")
    assert "was started with --simultaneous" in str(refusal.value)


def test_a_resume_takes_the_adjustable_flags_and_says_which_changed():
    started = fresh("--seed", "3", "--epochs", "2").trained_on("/data", bundled=False)
    settings, changes = resumed(started, "--iterations", "6", "--lr", "0.05", "--seed", "3")
    assert changes == {"iterations": 6, "lr": 0.05}  # the same seed is no change
    assert (settings.iterations, settings.epochs, settings.lr) == (6, None, 0.05)
    assert dataclasses.replace(settings, iterations=None, epochs=2, lr=None) == started
    assert settings.configured_preset.steps == 6 and settings.configured_preset.g_lr == 0.05


def test_a_run_on_the_bundled_digits_refuses_another_data_dir_on_resume(tmp_path):
    started = fresh("--seed", "3").trained_on("/somewhere/bundled", bundled=True)
    with pytest.raises(RunRefused, match="trained on the MNIST test digits bundled with tinygan"):
        resumed(started, "--data-dir", str(tmp_path))
    assert resumed(started)[0] == started


def test_flags_that_contradict_each_other_are_refused_before_anything_else():
    with pytest.raises(RunRefused, match="--penalty-weight weighs a gradient penalty"):
        check_flags(given("--penalty-weight", "3"), resume=False)
    check_flags(given("--penalty-weight", "3"), resume=True)  # the run's penalty is recorded
    with pytest.raises(RunRefused, match="--quality-every 5 and --no-quality: choose one"):
        check_flags(given("--quality-every", "5", "--no-quality"), resume=False)
    with pytest.raises(RunRefused, match="--subset: preset ring trains on the points"):
        resolve_settings(given("--preset", "ring", "--subset", "5"), "ring")


def test_records_of_older_runs_resume_with_what_they_trained_with():
    # no settings at all, an alias for the preset, no step rules, no packing
    old = {"preset": "000", "seed": 11, "dataset": "mnist", "split": "test", "device": "cpu"}
    settings, changes = resolve_settings(given(), "mlp-tf", recorded_settings(old), SOURCE)
    assert (settings.preset, settings.seed, settings.split, settings.pack) == (
        "mlp-tf",
        11,
        "test",
        1,
    )
    assert not (settings.simultaneous or settings.reuse_noise or settings.inference_fakes)
    assert settings.conditional is False  # and unconditional
    assert settings.minibatch_std is False  # and without the batch's spread
    assert changes == {} and settings.log_every == 50  # the defaults fill what was not recorded


@pytest.mark.parametrize("argv", RUNS, ids=[" ".join(argv) for argv in RUNS])
def test_config_json_round_trips_the_settings(tmp_path, argv):
    settings = fresh(*argv)
    if settings.split is not None:  # an image run records where its images were found
        settings = settings.trained_on("/somewhere/bundled", bundled="--ema" in argv)
    write_config(tmp_path, settings.to_config(123, ["tinygan", "train", *argv]))
    config = read_config(tmp_path)
    assert RunSettings.from_config(config) == settings
    assert config["steps"] == 123 and config["command"][2:] == argv
    assert config["preset_settings"]["d_steps"] == settings.configured_preset.d_steps
    assert config["settings"] == settings.checkpoint_metadata()["settings"]
    assert ("bundled_data" in config["settings"]) == settings.bundled_data  # only when true

    later = resumed_config(config, settings, 200, 123, {"iterations": 200})
    write_config(tmp_path, later)
    config = read_config(tmp_path)
    assert config["resumes"] == [{"step": 123, "changed": {"iterations": 200}}]
    assert RunSettings.from_config(config) == settings and config["steps"] == 200


def test_an_unreadable_config_reads_as_empty(tmp_path):
    assert read_config(tmp_path) == {}
    (tmp_path / "config.json").write_text("[1, 2")
    assert read_config(tmp_path) == {}
