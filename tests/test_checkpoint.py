"""Checkpoints: a resumed run continues exactly, and a crash mid-save never damages the last one."""

import errno
import os
from pathlib import Path

import numpy as np
import pytest

from tinygan.atomic import appending, write_atomically
from tinygan.backend import device_of, make_rng, rng_device, to_device
from tinygan.data import BatchIterator
from tinygan.gan import GAN
from tinygan.nn import Dense, LeakyReLU, Sequential, Sigmoid
from tinygan.optim import Adam
from tinygan.run.checkpoint import (
    Checkpoint,
    CheckpointError,
    checkpoint_files,
    find_resumable,
    latest_checkpoint,
    read_checkpoint,
    restore_checkpoint,
    save_checkpoint,
)
from tinygan.run.train import NonFiniteLossError, Trainer

DATA = np.random.default_rng(5).uniform(size=(40, 9)).astype(np.float32)


def fresh_run(out_dir, seed=0, device="cpu"):
    rng = np.random.default_rng(seed)
    generator = Sequential(Dense(4, 16, rng=rng), LeakyReLU(), Dense(16, 9, rng=rng), Sigmoid())
    discriminator = Sequential(Dense(9, 16, rng=rng), LeakyReLU(), Dense(16, 1, rng=rng))
    gan = GAN(
        generator,
        discriminator,
        Adam([generator], 1e-3),
        Adam([discriminator], 2e-3),
        4,
        make_rng(seed + 1),
    ).to(device)
    batches = BatchIterator(to_device(DATA, device), 8, np.random.default_rng(seed + 2))
    return Trainer(gan, batches, out_dir, device, log_every=3, progress=False)


def all_params(gan):
    return {
        **gan.generator.state_dict(),
        **{f"D{k}": v for k, v in gan.discriminator.state_dict().items()},
    }


def test_half_plus_resume_plus_half_equals_straight(tmp_path, device):
    straight = fresh_run(tmp_path / "straight", device=device)
    straight.fit(14)

    first = fresh_run(tmp_path / "resumed", device=device)
    first.fit(6)
    path = save_checkpoint(tmp_path / "ck.npz", first.gan, first, {"preset": "test"})
    second = fresh_run(tmp_path / "resumed", seed=0, device=device)
    # scramble the state so that only the checkpoint can make the runs agree
    second.gan.rng.standard_normal(10)
    next(second.batches)
    metadata = restore_checkpoint(path, second.gan, second)
    assert metadata == {"preset": "test"} and second.step == 6
    second.fit(14)

    for key, value in all_params(straight.gan).items():
        np.testing.assert_array_equal(all_params(second.gan)[key], value, err_msg=key)
    assert second.history["step"] == straight.history["step"]
    np.testing.assert_allclose(second.history["g_loss"], straight.history["g_loss"], rtol=1e-6)


@pytest.mark.parametrize("saved_on, loaded_on", [("emulated", "cpu"), ("cpu", "emulated")])
def test_a_checkpoint_of_one_device_loads_on_the_other(tmp_path, saved_on, loaded_on):
    saved = fresh_run(tmp_path / "saved", device=saved_on)
    saved.fit(5)
    path = save_checkpoint(tmp_path / "ck.npz", saved.gan, saved, {"preset": "test"})
    loaded = fresh_run(tmp_path / "loaded", seed=1, device=loaded_on)
    restore_checkpoint(path, loaded.gan, loaded)
    assert loaded.step == 5
    for key, value in all_params(saved.gan).items():
        np.testing.assert_array_equal(all_params(loaded.gan)[key], value, err_msg=key)
    for name, value in saved.gan.d_optimizer.state_dict().items():
        np.testing.assert_array_equal(loaded.gan.d_optimizer.state_dict()[name], value)
    assert device_of(loaded.gan.generator.sublayers()[0].params["W"]) == loaded_on
    assert rng_device(loaded.gan.rng) == loaded_on
    loaded.fit(8)  # and it trains on from there
    assert np.isfinite(loaded.history["g_loss"]).all()


def test_callback_saves_periodically_and_at_the_end(tmp_path):
    trainer = fresh_run(tmp_path)  # 5 steps per epoch
    trainer.callbacks.append(Checkpoint(every=2, unit="epoch"))
    trainer.fit(23)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["step_00000010.npz", "step_00000020.npz", "step_00000023.npz"]
    assert latest_checkpoint(tmp_path / "checkpoints").name == "step_00000023.npz"


def test_crash_during_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    trainer = fresh_run(tmp_path)
    trainer.fit(2)
    path = save_checkpoint(tmp_path / "ck.npz", trainer.gan, trainer)
    before = path.read_bytes()
    trainer.fit(4)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, trainer.gan, trainer)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_unreadable_or_mismatched_checkpoints_fail_clearly(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="not a readable tinygan checkpoint"):
        read_checkpoint(bad)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        read_checkpoint(tmp_path / "missing.npz")

    trainer = fresh_run(tmp_path)
    path = save_checkpoint(tmp_path / "ck.npz", trainer.gan, trainer)
    other = fresh_run(tmp_path)
    other.gan.generator = Sequential(Dense(4, 8), LeakyReLU(), Dense(8, 9), Sigmoid())
    with pytest.raises(ValueError, match="shape"):
        restore_checkpoint(path, other.gan, other)


def test_rotation_keeps_the_newest_files_and_time_triggers_a_save(tmp_path, monkeypatch):
    trainer = fresh_run(tmp_path)
    clock = iter(range(0, 10_000, 7))  # every call to the clock is 7 s later
    monkeypatch.setattr("tinygan.run.checkpoint.time.monotonic", lambda: next(clock))
    trainer.callbacks.append(Checkpoint(every_seconds=20, keep=2))
    trainer.fit(9)
    # step 0 at the start, then a save whenever 20 s passed; only the two newest stay
    assert [p.name for p in checkpoint_files(tmp_path / "checkpoints")] == [
        "step_00000009.npz",
        "step_00000006.npz",
    ]


def test_a_non_finite_state_is_never_written(tmp_path):
    trainer = fresh_run(tmp_path)
    trainer.gan.generator.layers[0].params["W"][0, 0] = np.inf
    with pytest.raises(ValueError, match="not finite"):
        save_checkpoint(tmp_path / "ck.npz", trainer.gan, trainer)
    assert not (tmp_path / "ck.npz").exists()
    trainer.callbacks.append(Checkpoint())
    with pytest.raises(NonFiniteLossError, match=r"G\.0\.W became inf at step 0"):
        trainer.fit(3)
    assert not checkpoint_files(tmp_path / "checkpoints")


def test_find_resumable_skips_damaged_and_non_finite_files(tmp_path):
    trainer = fresh_run(tmp_path)
    folder = tmp_path / "checkpoints"
    good = save_checkpoint(folder / "step_00000001.npz", trainer.gan, trainer)
    archive = read_checkpoint(good)
    archive["G.0.W"] = archive["G.0.W"].copy()
    archive["G.0.W"][0, 0] = np.nan
    np.savez(folder / "step_00000002.npz", **archive)
    (folder / "step_00000003.npz").write_bytes(good.read_bytes()[:500])
    path, loaded, skipped = find_resumable(folder)
    assert path == good and loaded is not None
    assert skipped == [
        f"{folder / 'step_00000003.npz'}: truncated or damaged (File is not a zip file); "
        "not a readable tinygan checkpoint",
        f"{folder / 'step_00000002.npz'}: G.0.W is not finite",
    ]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "the file is empty"),
        (b"hello", "not an .npz archive"),
        ("npy", "a single NumPy array"),
        ("foreign", "an .npz archive without tinygan's metadata"),
    ],
)
def test_unusable_files_are_named_with_their_problem(tmp_path, content, problem):
    path = tmp_path / "file.npz"
    if content == "npy":
        with path.open("wb") as handle:
            np.save(handle, np.ones(3))
    elif content == "foreign":
        np.savez(path, weights=np.ones(3))
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError) as error:
        read_checkpoint(path)
    assert str(error.value).startswith(f"{path}: {problem}")
    assert "\n" not in str(error.value)


def test_a_checkpoint_that_cannot_be_written_is_named_and_rotation_deletes_nothing(
    tmp_path, monkeypatch
):
    trainer = fresh_run(tmp_path)
    trainer.callbacks.append(Checkpoint(every=1, unit="step", keep=2))
    trainer.fit(3)
    folder = tmp_path / "checkpoints"
    kept = {path: path.read_bytes() for path in checkpoint_files(folder)}
    assert [path.name for path in kept] == ["step_00000003.npz", "step_00000002.npz"]

    def disk_full(file, **arrays):  # as a write() on a full disk: an error naming no file
        file.write(b"PK")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(np, "savez", disk_full)
    with pytest.raises(OSError) as error:
        trainer.fit(5)
    assert error.value.errno == errno.ENOSPC
    assert error.value.filename == str(folder / "step_00000004.npz")  # the file, not its .tmp
    assert trainer.step == 4
    assert {path: path.read_bytes() for path in folder.iterdir()} == kept


def test_write_failures_name_the_file_the_user_knows(tmp_path):
    def refuse(file):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), file.name)

    with pytest.raises(PermissionError) as error:  # the temporary file's name is not shown
        write_atomically(tmp_path / "grid.png", refuse)
    assert error.value.filename == str(tmp_path / "grid.png")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_appending_to_a_full_device_names_it():
    with pytest.raises(OSError) as error, appending("/dev/full") as handle:
        handle.write("step,epoch\n")  # /dev/full: every write fails with ENOSPC, in the kernel
    assert error.value.errno == errno.ENOSPC and error.value.filename == "/dev/full"
