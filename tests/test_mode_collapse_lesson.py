"""The mode-collapse lesson runs end to end: the side-by-side example and the benchmark's table."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tinygan.run.mixture_run import MODES_CSV, read_modes_csv

ROOT = Path(__file__).resolve().parents[1]


def load_script(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_trains_both_discriminators_and_draws_them_side_by_side(tmp_path):
    example = load_script(ROOT / "examples" / "mode_collapse.py")
    figure = example.main(["--iterations", "20", "--out", str(tmp_path), "--no-progress"])
    assert figure == tmp_path / "side_by_side.png" and figure.stat().st_size > 10_000
    for run in ("gan", "pacgan2"):
        rows = read_modes_csv(tmp_path / run / MODES_CSV)
        assert rows[0]["step"] == 0 and rows[-1]["step"] == 20
    assert '"pack": 2' in (tmp_path / "pacgan2" / "config.json").read_text()


def test_the_example_refuses_a_pack_that_packs_nothing(tmp_path, capsys):
    example = load_script(ROOT / "examples" / "mode_collapse.py")
    with pytest.raises(SystemExit) as stop:
        example.main(["--pack", "1", "--out", str(tmp_path)])
    assert stop.value.code == 2 and "--pack at least 2" in capsys.readouterr().err


def test_the_benchmark_puts_its_rows_beside_the_papers(tmp_path):
    from benchmarks import modes

    report = tmp_path / "MODES.md"
    argv = ["--targets", "ring", "--packs", "1", "2", "--seeds", "1", "--iterations", "10"]
    argv += ["--modes-every", "5", "--jobs", "2", "--out", str(tmp_path / "runs")]
    assert modes.main([*argv, "--report", str(report)]) == 0
    text = report.read_text()
    assert "| ring | GAN | 1 |" in text and "| 6.3 ± 0.5 |" in text  # tinygan's row, the paper's
    assert "| ring | PacGAN2 | 1 |" in text and "| 7.9 ± 0.1 |" in text
    assert (tmp_path / "results" / "modes_over_time.png").is_file()
    # the PacGAN row against its target, read from the run's last measurement
    packed = read_modes_csv(tmp_path / "runs" / "ring_pack2_seed0" / MODES_CSV)[-1]["modes"]
    verdict = "met" if packed >= 7.8 else "**missed**"
    assert f"- ring, PacGAN2: {packed:.1f} of 8 modes, target 7.8: {verdict} (runs: 1)" in text
    plain = read_modes_csv(tmp_path / "runs" / "ring_pack1_seed0" / MODES_CSV)[-1]["modes"]
    assert f"PacGAN2 captures {packed - plain:+.1f} modes against the GAN's {plain:.1f}" in text
    assert "(the paper: +1.6)" in text and "of the paper's 400,000 iterations" in text
    # a second call finds every run finished and only rewrites the report
    assert modes.main([*argv, "--report", str(report)]) == 0
    assert modes.mean_and_error([1.0, 3.0]) == (2.0, 1.0)
