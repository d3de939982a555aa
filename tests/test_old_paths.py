"""The modules that moved into tinygan.run and tinygan.quality still import from their old paths."""

import importlib
import subprocess
import sys

import pytest

from tinygan._old_paths import MOVED, new_path


@pytest.mark.parametrize("old", sorted(MOVED))
def test_an_old_path_gives_the_module_at_its_new_path(old: str) -> None:
    module = importlib.import_module(old)
    assert module is importlib.import_module(MOVED[old])
    assert module.__spec__.name == MOVED[old]


def test_a_module_inside_a_moved_package_moved_with_it() -> None:
    from tinygan.metrics.fid import frechet_distance  # noqa: F401
    from tinygan.quality.metrics import fid

    assert importlib.import_module("tinygan.metrics.fid") is fid
    assert new_path("tinygan.classifier.network") == "tinygan.quality.classifier.network"
    assert new_path("tinygan.metricsx") is None
    assert new_path("tinygan.gan") is None


def test_old_paths_work_in_a_fresh_process_in_either_order() -> None:
    # The new module first, then its old path, and the other way round: one module object each time.
    code = (
        "import tinygan.run.checkpoint as new\n"
        "import tinygan.checkpoint as old\n"
        "from tinygan.sampling import generate\n"
        "import tinygan.run.sampling as sampling\n"
        "assert old is new and generate is sampling.generate\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "ok", result.stderr


@pytest.mark.parametrize("module", ["tinygan", "tinygan.run.cli", "tinygan.cli"])
def test_python_dash_m_runs_the_command_line(module: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", module, "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert (result.stdout + result.stderr).startswith("usage: tinygan {presets, train, sample")
