"""Every command in docs/tour.md runs and succeeds, as a reader would type it from the repository root."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
TOUR = ROOT / "docs" / "tour.md"
COMMANDS = re.findall(r"```bash\n(.*?)```", TOUR.read_text(), flags=re.DOTALL)


def test_the_tour_has_a_command_at_every_stop():
    stops = re.findall(r"^## ", TOUR.read_text(), flags=re.MULTILINE)
    assert len(stops) >= 10 and len(COMMANDS) >= len(stops)


@pytest.mark.parametrize("command", COMMANDS, ids=[c.split("\n")[0][:60] for c in COMMANDS])
def test_a_tour_command_runs(command, tmp_path):
    # The reader's working folder, with the repository's examples in it; outputs stay in tmp_path.
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "TINYGAN_NUMBA": "0",  # no compile wait; the commands check math, not speed
        "MPLBACKEND": "Agg",
    }
    finished = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", command],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
