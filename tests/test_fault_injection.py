"""A run never loses more than one checkpoint interval: kill -9, damaged files, NaNs and Ctrl-C.

Every case runs the example script in a subprocess on real MNIST test digits, as a user would, and
then continues with ``--resume``. The NumPy kernels are used (``TINYGAN_NUMBA=0``) so that no test
waits for compilation.
"""

import csv
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import mnist_dir

from tinygan.checkpoint import checkpoint_files, non_finite_entry, read_checkpoint
from tinygan.experiment import main

EXAMPLE = Path(__file__).parents[1] / "examples" / "mnist_mlp_gan.py"
CHECKPOINT_EVERY = 10
ENV = {**os.environ, "TINYGAN_NUMBA": "0"}


def run_args(out, *extra):
    return [
        *("--data-dir", str(mnist_dir()), "--split", "test", "--subset", "512"),
        *("--seed", "0", "--out", str(out), "--no-progress", "--no-download"),
        *extra,
    ]


def start(out, *extra, prefix=()):
    command = [sys.executable, *prefix, str(EXAMPLE), *run_args(out, *extra)]
    return subprocess.Popen(
        command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def logged_steps(out):
    path = out / "log.csv"
    if not path.exists():
        return []
    with path.open() as handle:
        return [int(row["step"]) for row in csv.DictReader(handle) if row.get("d_fake")]


def wait_for(condition, process, seconds=120):
    deadline = time.monotonic() + seconds
    while not condition():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.002)


def resume(out, steps):
    return main(["--resume", "--out", str(out), "--iterations", str(steps), "--no-progress"])


def test_kill_9_at_random_moments_loses_at_most_one_checkpoint_interval(tmp_path, capsys):
    """Five kills: four after a random number of steps, one while a checkpoint is being written."""
    rng = np.random.default_rng(2024)
    losses, hit_a_write = [], 0
    for trial in range(5):
        out = tmp_path / f"trial_{trial}"
        process = start(
            out, "--iterations", "100000", "--log-every", "1", "--checkpoint-every", "10"
        )
        if trial < 4:
            target = int(rng.integers(5, 45))
            wait_for(lambda out=out, target=target: len(logged_steps(out)) >= target, process)
        else:
            folder = out / "checkpoints"
            # a later write than step 0's, so that an older checkpoint exists to fall back on
            wait_for(
                lambda folder=folder: checkpoint_files(folder) and any(folder.glob(".step_*.tmp")),
                process,
            )
        process.kill()  # SIGKILL: no handler runs, nothing is flushed
        process.wait()
        hit_a_write += any((out / "checkpoints").glob(".step_*.tmp"))
        reached = max(logged_steps(out), default=0)

        trainer = resume(out, reached + 3)
        resumed_from = int(re.search(r"at step (\d+)", capsys.readouterr().out).group(1))
        assert trainer.step == reached + 3
        assert resumed_from % CHECKPOINT_EVERY == 0
        losses.append(reached - resumed_from)
        assert not list((out / "checkpoints").glob(".step_*.tmp")), "stale temporary files"
        assert logged_steps(out) == sorted(set(logged_steps(out))), "log.csv repeats steps"
    assert max(losses) <= CHECKPOINT_EVERY, losses
    print(f"steps lost per kill: {losses}; kills during a checkpoint write: {hit_a_write}")


def test_a_truncated_newest_checkpoint_is_skipped_on_resume(tmp_path, capsys):
    out = tmp_path / "run"
    main(run_args(out, "--iterations", "20", "--checkpoint-every", "5"))
    newest, older = checkpoint_files(out / "checkpoints")[:2]
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    capsys.readouterr()

    trainer = resume(out, 25)
    captured = capsys.readouterr()
    assert f"skipped {newest}: truncated or damaged" in captured.err
    assert f"resumed from {older} at step 15" in captured.out
    assert trainer.step == 25


def poisoned_run(out, step, *extra):
    """The example, with the real batch of training step ``step`` (1-based) poisoned by a NaN."""
    patch = (
        "import sys, runpy, tinygan.gan as gan\n"
        "original = gan.GAN.train_step\n"
        "calls = [0]\n"
        "def poisoned(self, next_batch):\n"
        "    calls[0] += 1\n"
        f"    if calls[0] != {step}:\n"
        "        return original(self, next_batch)\n"
        "    def bad():\n"
        "        batch = next_batch().copy()\n"
        "        batch[0, 0] = float('nan')\n"
        "        return batch\n"
        "    return original(self, bad)\n"
        "gan.GAN.train_step = poisoned\n"
        "sys.argv = sys.argv[1:]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n"
    )
    process = start(out, *extra, prefix=("-c", patch))
    _, stderr = process.communicate(timeout=300)
    return process.returncode, stderr


@pytest.mark.parametrize("bad_step", [1, 17])
def test_a_nan_stops_the_run_at_its_step_and_keeps_the_last_finite_state(tmp_path, bad_step):
    out = tmp_path / "run"
    code, stderr = poisoned_run(out, bad_step, "--iterations", "200", "--log-every", "5")
    assert code == 3
    assert "Traceback" not in stderr
    message = stderr.strip().splitlines()[-1]
    last_good = (bad_step - 1) // 5 * 5  # the last logging window before the NaN
    assert f"d_loss became nan at step {bad_step}" in message
    assert f"rolled back to step {last_good}" in message and "lower --lr" in message
    assert logged_steps(out) == list(range(5, bad_step, 5)) + (
        [bad_step - 1] if (bad_step - 1) % 5 else []
    )
    assert (out / "losses.png").stat().st_size > 0
    assert (out / "samples" / f"step_{last_good:06d}.png").exists()
    checkpoint = checkpoint_files(out / "checkpoints")[0]
    assert checkpoint.name == f"step_{last_good:08d}.npz"
    assert non_finite_entry(read_checkpoint(checkpoint)) is None

    trainer = resume(out, last_good + 10)
    assert trainer.step == last_good + 10
    assert np.isfinite(trainer.history["d_loss"]).all()


def test_ctrl_c_twice_gives_a_truthful_message(tmp_path):
    out = tmp_path / "run"
    process = start(out, "--iterations", "100000", "--log-every", "1", "--checkpoint-every", "7")
    wait_for(lambda: len(logged_steps(out)) >= 12, process)
    process.send_signal(signal.SIGINT)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130
    assert "Traceback" not in stderr
    said = re.search(r"the newest checkpoint is (\S+) \(step (\d+)\)", stderr)
    if said is None:
        assert "no checkpoint was saved" in stderr and not checkpoint_files(out / "checkpoints")
    else:
        archive = read_checkpoint(said.group(1))
        assert int(archive["trainer.step"]) == int(said.group(2))


def test_sigterm_stops_after_the_step_with_a_checkpoint_that_resumes(tmp_path):
    out = tmp_path / "run"
    process = start(out, "--iterations", "1000000", "--log-every", "20")
    wait_for(lambda: len(logged_steps(out)) >= 1, process)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130
    assert "interrupted at step" in stderr and "Traceback" not in stderr
    checkpoint = checkpoint_files(out / "checkpoints")[0]
    step = int(checkpoint.stem.split("_")[1])
    assert step >= 20
    assert (out / "samples" / f"step_{step:06d}.png").exists()  # the last frame
    assert resume(out, step + 5).step == step + 5
