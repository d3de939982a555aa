"""``benchmarks/gpu_check.py`` without a GPU: its commands, time limits, failure handling and table."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gpu_check():
    from benchmarks import gpu_check

    return gpu_check


def test_the_dry_run_lists_every_command(gpu_check, capsys, tmp_path):
    assert gpu_check.main(["--data-dir", "mnist", "--out", str(tmp_path / "o"), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert not (tmp_path / "o").exists()  # a dry run writes nothing
    assert "-m pytest -q -k gpu" in printed
    for script, length in (
        ("mnist_dcgan.py", "--epochs 20"),
        ("mnist_mlp_gan.py", "--iterations 20000"),
    ):
        line = next(line for line in printed.splitlines() if script in line)
        assert length in line
        for flag in ("--device gpu", "--data-dir mnist", "--split test", "--no-download"):
            assert flag in line
        assert "--no-progress" in line and str(tmp_path / "o" / "train-") in line
    assert printed.count("--worker") == 2


def test_the_parts_fit_in_eight_minutes(gpu_check):
    assert sum(gpu_check.TIME_LIMITS.values()) <= 7.5 * 60


def test_the_folders_are_required(gpu_check):
    with pytest.raises(SystemExit) as error:
        gpu_check.main(["--out", "x"])
    assert error.value.code == 2


def test_a_part_that_fails_or_hangs_is_recorded_and_the_rest_kept(gpu_check, tmp_path):
    result = {"library": "tinygan", "gpu": "Test GPU", "kernels": "numba", "rows": []}
    parts = [
        gpu_check.Part(
            "time-tinygan", [sys.executable, "-c", f"print({json.dumps(json.dumps(result))})"], 10
        ),
        gpu_check.Part("tests", [sys.executable, "-c", "raise SystemExit(3)"], 10),
        gpu_check.Part("train-mlp-tf", [sys.executable, "-c", "import time; time.sleep(30)"], 1),
    ]
    for part in parts:
        gpu_check.run_part(part, tmp_path, {})
    assert [part.status for part in parts] == [
        "ok",
        "failed (exit 3)",
        "stopped at its 1 s limit",
    ]
    assert parts[0].result == result
    gpu_check.write_summary(parts, tmp_path)
    text = (tmp_path / "summary.md").read_text()
    assert "stopped at its 1 s limit" in text and "Test GPU" in text
    assert json.loads((tmp_path / "summary.json").read_text())[1]["status"] == "failed (exit 3)"
    assert (tmp_path / "tests.log").read_text().startswith("$ ")


def test_the_table_has_a_row_per_configuration_and_the_ratio(gpu_check):
    def rows(ms):
        return [
            {"preset": p, "batch": b, "median_ms": ms, "min_ms": ms - 1, "max_ms": ms + 1}
            for p, b in gpu_check.TIMED
        ]

    parts = [
        gpu_check.Part(
            "time-tinygan", [], 1, "ok", 1.0, {"library": "tinygan", "gpu": "H", "rows": rows(4.0)}
        ),
        gpu_check.Part(
            "time-torch", [], 1, "ok", 1.0, {"library": "torch", "gpu": "H", "rows": rows(2.0)}
        ),
    ]
    table = gpu_check.table(parts).splitlines()
    assert "on H" in table[0]
    assert table[4] == "| mlp-tf | 64 | 4.00 (3.00-5.00) | 2.00 (1.00-3.00) | 2.00 |"
    assert len(table) == 4 + len(gpu_check.TIMED)
    parts[1].result = {}
    assert gpu_check.table(parts).splitlines()[4].endswith("| n/a | n/a |")
