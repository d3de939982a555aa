"""The training loop: logs, sample grids, and what is left behind when a run stops early."""

import csv

import numpy as np
import pytest

from tinygan.backend import make_rng
from tinygan.data import BatchIterator
from tinygan.gan import GAN
from tinygan.nn import Dense, LeakyReLU, Sequential, Sigmoid
from tinygan.optim import Adam
from tinygan.run.train import LossCurves, NonFiniteLossError, SampleGrid, Trainer


def small_gan(seed=0):
    rng = np.random.default_rng(seed)
    generator = Sequential(Dense(4, 16, rng=rng), LeakyReLU(), Dense(16, 9, rng=rng), Sigmoid())
    discriminator = Sequential(Dense(9, 16, rng=rng), LeakyReLU(), Dense(16, 1, rng=rng))
    return GAN(
        generator,
        discriminator,
        Adam([generator], 1e-3),
        Adam([discriminator], 1e-3),
        4,
        make_rng(seed),
    )


def batches(poison_at=None, interrupt_at=None):
    rng = np.random.default_rng(1)
    step = 0
    while True:
        step += 1
        if step == interrupt_at:
            raise KeyboardInterrupt
        batch = rng.uniform(0, 1, size=(8, 9)).astype(np.float32)
        if step == poison_at:
            batch[0, 0] = np.nan
        yield batch


def read_log(path):
    with path.open() as handle:
        return list(csv.DictReader(handle))


def sample_grid(every=5):
    return SampleGrid(
        every, 2, 3, image_shape=(3, 3), value_range=(0, 1), rng=np.random.default_rng(2)
    )


def test_fit_logs_every_window_and_writes_samples_and_curves(tmp_path):
    grid = sample_grid(every=5)
    callbacks = [grid, LossCurves()]
    trainer = Trainer(
        small_gan(), batches(), tmp_path, callbacks=callbacks, log_every=4, progress=False
    )
    history = trainer.fit(10)
    rows = read_log(tmp_path / "log.csv")
    assert [int(r["step"]) for r in rows] == [4, 8, 10]
    assert history["step"] == [4, 8, 10]
    assert all(
        np.isfinite(float(r[k])) for r in rows for k in ("d_loss", "g_loss", "d_real", "d_fake")
    )
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == [
        "step_000000.png",
        "step_000005.png",
        "step_000010.png",
    ]
    assert (tmp_path / "losses.png").stat().st_size > 0
    assert (tmp_path / "discriminator_outputs.png").stat().st_size > 0


def test_fixed_noise_makes_frames_comparable(tmp_path):
    grid = sample_grid()
    trainer = Trainer(small_gan(), batches(), tmp_path, callbacks=[grid], progress=False)
    trainer.fit(1)
    first_noise = grid.noise.copy()
    trainer.fit(6)
    np.testing.assert_array_equal(grid.noise, first_noise)


@pytest.mark.filterwarnings("ignore:invalid value encountered")  # the NaN is injected on purpose
def test_nan_stops_the_run_naming_the_step_and_keeps_the_outputs(tmp_path):
    trainer = Trainer(
        small_gan(),
        batches(poison_at=7),
        tmp_path,
        callbacks=[sample_grid(), LossCurves()],
        log_every=2,
        progress=False,
    )
    with pytest.raises(NonFiniteLossError, match=r"d_loss became nan at step 7"):
        trainer.fit(20)
    assert [int(r["step"]) for r in read_log(tmp_path / "log.csv")] == [2, 4, 6]
    assert (tmp_path / "losses.png").exists()
    # the frames before the divergence are kept; the NaN generator draws no final frame
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == [
        "step_000000.png",
        "step_000005.png",
    ]


def test_a_run_ending_between_frames_writes_a_last_frame(tmp_path):
    trainer = Trainer(
        small_gan(), batches(), tmp_path, callbacks=[sample_grid(every=5)], progress=False
    )
    trainer.fit(7)
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == [
        "step_000000.png",
        "step_000005.png",
        "step_000007.png",
    ]


def test_without_a_progress_bar_each_log_window_is_printed(tmp_path, capsys):
    Trainer(small_gan(), batches(), tmp_path, log_every=4, progress=False).fit(10)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["step", "4/10"],
        ["step", "8/10"],
        ["step", "10/10"],
    ]
    rows = read_log(tmp_path / "log.csv")
    assert f"d_loss {float(rows[-1]['d_loss']):.3f}" in lines[-1]


def test_interrupt_keeps_logs_and_curves(tmp_path):
    trainer = Trainer(
        small_gan(),
        batches(interrupt_at=9),
        tmp_path,
        callbacks=[LossCurves()],
        log_every=3,
        progress=False,
    )
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(100)
    assert trainer.step == 8
    assert [int(r["step"]) for r in read_log(tmp_path / "log.csv")] == [3, 6, 8]
    assert (tmp_path / "losses.png").exists()


def test_epoch_callbacks_follow_the_batch_iterator(tmp_path):
    data = np.random.default_rng(0).uniform(size=(32, 9)).astype(np.float32)
    iterator = BatchIterator(data, 8, np.random.default_rng(0))  # 4 steps per epoch
    grid = SampleGrid(
        2, 1, 2, (3, 3), (0, 1), np.random.default_rng(0), unit="epoch", at_start=False
    )
    Trainer(small_gan(), iterator, tmp_path, callbacks=[grid], progress=False).fit(16)
    assert [p.name for p in grid.frames] == ["epoch_000002.png", "epoch_000004.png"]


@pytest.mark.filterwarnings("ignore:invalid value encountered")  # the NaN is injected on purpose
def test_curves_are_drawn_even_when_the_first_step_diverges(tmp_path):
    trainer = Trainer(
        small_gan(), batches(poison_at=1), tmp_path, callbacks=[LossCurves()], progress=False
    )
    with pytest.raises(NonFiniteLossError, match=r"at step 1"):
        trainer.fit(5)
    assert trainer.history["step"] == []
    assert (tmp_path / "losses.png").stat().st_size > 0
    assert (tmp_path / "discriminator_outputs.png").stat().st_size > 0


def test_the_trainer_draws_nothing_itself(tmp_path):
    Trainer(small_gan(), batches(), tmp_path, log_every=2, progress=False).fit(4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.csv"]


def test_callbacks_roll_back_before_they_write_their_final_outputs(tmp_path):
    calls = []

    class Recorder(LossCurves):
        def on_rollback(self, trainer):
            calls.append("on_rollback")

        def on_train_end(self, trainer):
            calls.append("on_train_end")
            super().on_train_end(trainer)

    trainer = Trainer(
        small_gan(), batches(interrupt_at=3), tmp_path, callbacks=[Recorder()], progress=False
    )
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(10)
    assert calls == ["on_rollback", "on_train_end"]  # stopped mid-step: restore, then write
    assert (tmp_path / "losses.png").exists()


def test_the_loss_plot_shows_the_fid_beside_the_losses(tmp_path, monkeypatch):
    from tinygan.run import train as train_module

    drawn = {}

    def record(history, path, steps=None, beside=None, **kwargs):
        drawn[path.name] = beside
        path.write_bytes(b"png")
        return path

    monkeypatch.setattr(train_module, "save_loss_curves", record)
    (tmp_path / "quality.csv").write_text(
        "step,epoch,n,fid\n2,0,100,80.5\n4,0,100,60.25\n9,0,100,1\n"
    )
    Trainer(small_gan(), batches(), tmp_path, callbacks=[LossCurves()], progress=False).fit(5)
    label, steps, values = drawn["losses.png"]
    assert "FID" in label and steps == [2, 4] and values == [80.5, 60.25]  # not past the last step
    assert drawn["discriminator_outputs.png"] is None


def test_one_failed_final_write_does_not_stop_the_others(tmp_path):
    class DiskFull(LossCurves):
        def on_train_end(self, trainer):
            raise OSError(28, "No space left on device", str(trainer.out_dir / "x.png"))

    trainer = Trainer(
        small_gan(), batches(), tmp_path, callbacks=[DiskFull(), LossCurves()], progress=False
    )
    with pytest.raises(OSError, match="x.png"):
        trainer.fit(4)
    assert (tmp_path / "losses.png").exists()  # written by the callback after the failed one
    assert [str(e) for e in trainer.end_errors] == [
        f"[Errno 28] No space left on device: '{tmp_path / 'x.png'}'"
    ]

    # a run already failing (here: interrupted) keeps its own error; the write failure is kept
    trainer = Trainer(
        small_gan(), batches(interrupt_at=3), tmp_path, callbacks=[DiskFull()], progress=False
    )
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(10)
    assert len(trainer.end_errors) == 1
