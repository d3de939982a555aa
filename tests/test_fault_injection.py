"""A run never loses more than one checkpoint interval: kill -9, damaged files, NaNs, Ctrl-C,
SIGTERM and SIGHUP, a second run on the same folder, and a file that cannot be written.

Every case runs the example script in a subprocess on real MNIST test digits, as a user would, and
then continues with ``--resume``. The NumPy kernels are used (``TINYGAN_NUMBA=0``) so that no test
waits for compilation.
"""

import csv
import errno
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

from tinygan.run.checkpoint import checkpoint_files, non_finite_entry, read_checkpoint
from tinygan.run.cli import main as cli
from tinygan.run.experiment import EXIT_WRITE_FAILED, main
from tinygan.run.folder_lock import LOCK_NAME, FolderInUseError, FolderLock

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
    said = re.search(r"the newest intact checkpoint is (\S+) \(step (\d+)\)", stderr)
    if said is None:
        assert "no checkpoint was saved" in stderr and not checkpoint_files(out / "checkpoints")
    else:
        archive = read_checkpoint(said.group(1))
        assert int(archive["trainer.step"]) == int(said.group(2))


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGHUP"])
def test_sigterm_or_sighup_stops_after_the_step_with_a_checkpoint_that_resumes(
    tmp_path, signal_name
):
    out = tmp_path / "run"
    process = start(out, "--iterations", "1000000", "--log-every", "20")
    wait_for(lambda: len(logged_steps(out)) >= 1, process)
    process.send_signal(getattr(signal, signal_name))
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130
    assert "interrupted at step" in stderr and "Traceback" not in stderr
    checkpoint = checkpoint_files(out / "checkpoints")[0]
    step = int(checkpoint.stem.split("_")[1])
    assert step >= 20
    assert (out / "samples" / f"step_{step:06d}.png").exists()  # the last frame
    assert resume(out, step + 5).step == step + 5


def snapshot(folder):
    """Every file under ``folder`` (hidden ones too): its modification time and its bytes."""
    return {
        path.relative_to(folder): (path.stat().st_mtime_ns, path.read_bytes())
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def train_command(argv):
    """Exit code of ``tinygan train ARGV``, run in this process."""
    try:
        return cli(["train", *argv])
    except SystemExit as stop:
        return stop.code


def test_a_folder_in_use_refuses_every_other_run_until_its_holder_is_killed(tmp_path, capsys):
    """Two real processes on one folder: the second is refused (plain, --resume, --overwrite) in one
    line naming the first, and changes nothing; after kill -9 of the first, --resume continues."""
    out = tmp_path / "run"
    holder = start(out, "--iterations", "100000", "--log-every", "1", "--checkpoint-every", "5")
    wait_for(lambda: len(checkpoint_files(out / "checkpoints")) >= 2, holder)
    holder.send_signal(signal.SIGSTOP)  # it still holds the folder, and its files stand still
    os.waitpid(holder.pid, os.WUNTRACED)
    before = snapshot(out)
    for extra in ([], ["--resume"], ["--overwrite"]):
        code = train_command(run_args(out, "--iterations", "50", *extra))
        err = capsys.readouterr().err
        assert code == 2, err
        assert err.count("\n") == 1 and err.startswith("tinygan train: error: --out ")
        assert f"is in use by another training run (PID {holder.pid}, started " in err
        assert f"(kill {holder.pid})" in err
    assert snapshot(out) == before  # nothing written, nothing deleted

    holder.kill()  # SIGKILL: the operating system drops the lock with the process
    holder.wait()
    newest = int(checkpoint_files(out / "checkpoints")[0].stem.split("_")[1])
    assert resume(out, newest + 3).step == newest + 3


def test_a_folder_lock_is_refused_while_held_and_free_once_released(tmp_path):
    held = FolderLock(tmp_path)
    with pytest.raises(
        FolderInUseError, match=rf"in use by another training run \(PID {os.getpid()}, "
    ):
        FolderLock(tmp_path)  # another open file description, as in another process
    held.release()
    FolderLock(tmp_path).release()
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_NAME]  # the file stays, unlocked


#: Runs the example with the file-size limit (RLIMIT_FSIZE) lowered to 500 kB right after the
#: checkpoint of step 10 is written.
LIMIT_AFTER_STEP_10 = (
    "import resource, runpy, sys\n"
    "import tinygan.run.checkpoint as checkpoint\n"
    "original = checkpoint.write_checkpoint\n"
    "def write_then_limit(path, archive):\n"
    "    written = original(path, archive)\n"
    "    if written.name == 'step_00000010.npz':\n"
    "        hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]\n"
    "        resource.setrlimit(resource.RLIMIT_FSIZE, (500_000, hard))\n"
    "    return written\n"
    "checkpoint.write_checkpoint = write_then_limit\n"
    "sys.argv = sys.argv[1:]\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
)


def test_a_failed_write_names_the_file_the_step_and_the_checkpoint_to_resume_from(tmp_path):
    """The write fails in the kernel, mid-file, as on a full disk: past the process's file-size
    limit, ``write`` fails with EFBIG where a full disk gives ENOSPC, through the same code. (A
    read-only folder does not stop root, whom CI runs as, and a small tmpfs needs privileges to
    mount.) Only the moment is chosen: the limit comes down after step 10's checkpoint, and the
    2.6 MB checkpoint of step 20 is the first file that no longer fits."""
    out = tmp_path / "run"
    argv = ("--iterations", "200", "--checkpoint-every", "10", "--log-every", "5")
    process = start(out, *argv, prefix=("-c", LIMIT_AFTER_STEP_10))
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == EXIT_WRITE_FAILED, stderr
    assert "Traceback" not in stderr and stderr.count("error") == 1
    folder = out / "checkpoints"
    message = stderr.strip().splitlines()[-1]
    assert f"could not write {folder / 'step_00000020.npz'} at step 20 (" in message
    assert os.strerror(errno.EFBIG) in message
    assert f"the newest intact checkpoint is {folder / 'step_00000010.npz'} (step 10)" in message
    # rotation deleted nothing for the files that failed, and no temporary file is left
    assert sorted(path.name for path in folder.iterdir()) == [
        "step_00000000.npz",
        "step_00000010.npz",
    ]
    assert all(non_finite_entry(read_checkpoint(path)) is None for path in folder.iterdir())
    assert (out / "losses.png").stat().st_size > 0  # the other final outputs were still written
    assert resume(out, 25).step == 25
