"""The WGAN-GP example trains the critic with its penalty and the plain GAN on the grid, and draws
them side by side."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tinygan.run.mixture_run import MODES_CSV, read_modes_csv

ROOT = Path(__file__).resolve().parents[1]


def load_example():
    path = ROOT / "examples" / "wgan_gp_grid.py"
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_trains_both_games_and_draws_them(tmp_path, capsys):
    argv = ["--iterations", "40", "--n-critic", "3", "--penalty-weight", "0.5", "--lr", "3e-4"]
    argv += ["--ema", "0.9", "--seed", "2", "--out", str(tmp_path), "--no-progress"]
    figure = load_example().main(argv)
    assert figure == tmp_path / "side_by_side.png" and figure.stat().st_size > 20_000
    assert str(figure) in capsys.readouterr().out
    # WGAN-GP's 40 generator steps of 3 critic updates, the GAN's 120 steps of one D update each
    runs = {"wgan-gp": (40, ["wasserstein", "wgan-gp", 0.5, 3])}
    runs["gan"] = (120, ["nonsaturating", "none", None, 1])
    for name, (steps, game) in runs.items():
        rows = read_modes_csv(tmp_path / name / MODES_CSV)
        assert rows[0]["step"] == 0 and rows[-1]["step"] == steps and len(rows) == 21
        assert all(0 <= row["modes"] <= 25 and 0 <= row["high_quality"] <= 1 for row in rows)
        assert (tmp_path / name / "training.gif").is_file()
        settings = json.loads((tmp_path / name / "config.json").read_text())["settings"]
        assert (settings["lr"], settings["ema"], settings["seed"]) == (3e-4, 0.9, 2)
        assert [settings[key] for key in ("loss", "penalty", "penalty_weight", "n_critic")] == game


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--iterations", "0", "--iterations and --n-critic must be at least 1"),
        ("--n-critic", "0", "--iterations and --n-critic must be at least 1"),
        ("--ema", "1", "--ema must be at least 0 and below 1"),
    ],
)
def test_the_example_refuses_bad_values_before_training(tmp_path, capsys, flag, value, message):
    with pytest.raises(SystemExit) as stop:
        load_example().main([flag, value, "--out", str(tmp_path)])
    assert stop.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "wgan-gp").exists()
