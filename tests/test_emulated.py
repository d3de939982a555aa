"""The emulated device: GPU-style arrays on the CPU, and what it proves about the GPU code paths."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import mnist_dir

import tinygan
from tinygan.backend import (
    DeviceGenerator,
    device_of,
    get_array_module,
    make_rng,
    move_rng,
    restore_rng,
    rng_state,
    to_device,
    to_numpy,
)
from tinygan.data import BatchIterator
from tinygan.gan import GAN
from tinygan.nn import Dense, Dropout, LeakyReLU, Sequential, Sigmoid
from tinygan.optim import Adam
from tinygan.run.checkpoint import read_checkpoint
from tinygan.run.experiment import main
from tinygan.run.train import Callback, Trainer
from tinygan.testing import NOT_IN_CUPY, TransferCounts, transfers, xp


def emulated(values):
    return to_device(np.asarray(values, dtype=np.float64), "emulated")


def test_numpy_functions_and_operators_stay_on_the_device():
    host = np.arange(6.0).reshape(2, 3)
    e = emulated(host)
    results = [e + 1, np.exp(e), e @ e.T, np.stack([e, e]), e.sum(), xp.zeros(3), e[0], e.T]
    assert all(device_of(result) == "emulated" for result in results)
    assert get_array_module(e) is xp and get_array_module(1.0, e) is xp
    np.testing.assert_array_equal(to_numpy(np.exp(e) @ e.T), np.exp(host) @ host.T)
    inplace = e.copy()
    inplace += 1
    inplace[:, 0] = 0.0
    np.testing.assert_array_equal(to_numpy(inplace), np.where([[0, 1, 1]] * 2, host + 1, 0))


@pytest.mark.parametrize(
    "mix",
    [
        np.asarray,
        lambda e: e + np.ones(3),
        lambda e: np.stack([e, np.ones((2, 3))]),
        lambda e: xp.maximum(e, np.ones(3)),
        lambda e: e[np.array([0, 1])],
        lambda e: e.__setitem__(..., np.zeros((2, 3))),
        lambda e: np.add(e, 1.0, out=np.empty((2, 3))),
    ],
)
def test_implicit_host_conversion_and_mixing_with_numpy_raise(mix):
    with pytest.raises(TypeError):
        mix(emulated(np.ones((2, 3))))


def test_scalars_and_0d_arrays_mix_freely():
    e = emulated([1.0, 2.0])
    for scalar in (2.0, 2, np.float32(2.0), np.asarray(2.0), e.sum() / 1.5):
        assert device_of(e * scalar) == "emulated"


def test_reads_and_transfers_are_counted():
    e = emulated(np.arange(6.0))
    with transfers.counting() as counts:
        float(e.sum()), int(e[1]), bool(e.any()), e.max().item(), f"{e.mean():.2f}"
        to_numpy(e)
        xp.asarray(np.ones(2))
    assert counts == TransferCounts(scalar_reads=5, to_host=1, to_device=1)


@pytest.mark.parametrize(
    "use",
    [
        lambda e: np.add.at(e, np.zeros(1, dtype=int), 1.0),
        lambda e: xp.add.at(e, 0, 1.0),
        lambda e: xp.errstate(over="ignore"),
    ],
)
def test_functions_cupy_lacks_fail_on_the_emulated_device(use):
    with pytest.raises(TypeError, match="not available on a GPU"):
        use(emulated(np.ones(3)))


def test_array_code_names_only_functions_cupy_provides():
    """Every ``xp.<name>`` in the package resolves on the emulator, which refuses what CuPy lacks,
    so code paths that no test runs on the emulated device are checked too."""
    package = Path(tinygan.__file__).parent
    names = set()
    for path in package.rglob("*.py"):
        names |= set(re.findall(r"\bxp\.([A-Za-z_][\w.]*)", path.read_text()))
    assert names, "the pattern must find the package's array code"
    for name in sorted(names):
        value = xp
        for part in name.strip(".").split("."):
            value = getattr(value, part)  # raises TypeError for NOT_IN_CUPY names
    assert "ufunc.at" in NOT_IN_CUPY


def test_device_generators_are_seeded_streams_of_their_own():
    a = to_numpy(make_rng(7, "emulated").standard_normal((3, 4)))
    b = to_numpy(make_rng(7, "emulated").standard_normal((3, 4)))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, np.random.default_rng(7).standard_normal((3, 4)))
    assert not np.allclose(a, to_numpy(make_rng(8, "emulated").standard_normal((3, 4))))
    assert not hasattr(make_rng(7, "emulated"), "bit_generator")
    assert not hasattr(xp.random.default_rng(7), "bit_generator")  # as CuPy's: nothing to save


def test_device_generator_draws_the_documented_distributions():
    rng = make_rng(11, "emulated")
    normals = to_numpy(rng.standard_normal(200_001))  # odd: half of a Box-Muller pair is dropped
    assert (
        normals.shape == (200_001,) and abs(normals.mean()) < 0.01 and abs(normals.std() - 1) < 0.01
    )
    uniforms = to_numpy(rng.uniform(-1.0, 1.0, size=(500, 200)))
    assert -1 <= uniforms.min() and uniforms.max() < 1 and abs(uniforms.mean()) < 0.01
    floats = rng.random((1000,), dtype=np.float32)
    assert floats.dtype == np.float32 and float(floats.max()) < 1.0


@pytest.mark.parametrize("block_size", [1 << 18, 10])
def test_device_generator_state_restores_the_next_numbers_exactly(block_size):
    rng = DeviceGenerator(3, "emulated", block_size=block_size)
    rng.standard_normal((5, 3))
    saved = json.loads(json.dumps(rng_state(rng)))  # what a checkpoint stores
    expected = [to_numpy(rng.uniform(-1, 1, size=7)), to_numpy(rng.random((2, 9)))]
    fresh = DeviceGenerator(99, "emulated", block_size=block_size)
    restored = restore_rng(fresh, saved)
    assert restored is fresh
    np.testing.assert_array_equal(to_numpy(restored.uniform(-1, 1, size=7)), expected[0])
    np.testing.assert_array_equal(to_numpy(restored.random((2, 9))), expected[1])


def test_generators_move_and_restore_across_devices_deterministically():
    first = move_rng(make_rng(5, "emulated"), "cpu")
    second = move_rng(make_rng(5, "emulated"), "cpu")
    assert isinstance(first, np.random.Generator)
    np.testing.assert_array_equal(first.random(4), second.random(4))
    device_state = rng_state(make_rng(5, "emulated"))
    on_cpu = [restore_rng(np.random.default_rng(0), device_state).random(3) for _ in range(2)]
    np.testing.assert_array_equal(*on_cpu)
    cpu_state = rng_state(np.random.default_rng(5))
    on_device = [restore_rng(make_rng(0, "emulated"), cpu_state) for _ in range(2)]
    assert all(isinstance(rng, DeviceGenerator) for rng in on_device)
    np.testing.assert_array_equal(*(to_numpy(rng.random(3)) for rng in on_device))


class TransferLog(Callback):
    """The transfer totals after every step."""

    def __init__(self):
        self.after_step = {}

    def on_step_end(self, trainer):
        self.after_step[trainer.step] = TransferCounts(**vars(transfers))


def test_training_steps_between_logging_windows_neither_transfer_nor_read_scalars(tmp_path):
    rng = np.random.default_rng(0)
    generator = Sequential(Dense(4, 16, rng=rng), LeakyReLU(), Dense(16, 9, rng=rng), Sigmoid())
    discriminator = Sequential(
        Dense(9, 16, rng=rng), LeakyReLU(), Dropout(0.3, make_rng(1)), Dense(16, 1, rng=rng)
    )
    gan = GAN(generator, discriminator, Adam([generator]), Adam([discriminator]), 4, make_rng(2))
    gan.to("emulated")
    data = to_device(rng.uniform(size=(80, 9)).astype(np.float32), "emulated")
    batches = BatchIterator(data, 8, np.random.default_rng(3))  # 10 steps an epoch
    log = TransferLog()
    trainer = Trainer(gan, batches, tmp_path, "emulated", [log], log_every=5, progress=False)
    assert not trainer.check_every_step
    trainer.fit(20)
    for step in range(2, 21):  # the first step draws the generators' first blocks
        before, after = log.after_step[step - 1], log.after_step[step]
        change = TransferCounts(
            *(b - a for a, b in zip(vars(before).values(), vars(after).values(), strict=True))
        )
        if step % 5 == 0:  # a logging window reads its statistics back in one transfer
            assert change.to_host == 1 and change.scalar_reads == 0, (step, change)
        else:
            assert change == TransferCounts(), (step, change)
    assert len(trainer.history["step"]) == 4 and np.isfinite(trainer.history["d_loss"]).all()


def final_parameters(out_dir):
    newest = max((out_dir / "checkpoints").glob("step_*.npz"))
    archive = read_checkpoint(newest)
    return {key: value for key, value in archive.items() if key[:2] in ("G.", "D.")}


def test_a_short_run_on_the_emulated_device_resumes_exactly(tmp_path):
    flags = ["--preset", "mlp-tf", "--seed", "4", "--split", "test", "--subset", "128"]
    flags += ["--batch-size", "16", "--device", "emulated", "--data-dir", str(mnist_dir())]
    flags += ["--no-download", "--no-progress", "--log-every", "5", "--sample-every", "1000"]
    main([*flags, "--iterations", "12", "--out", str(tmp_path / "straight")])
    main([*flags, "--iterations", "7", "--out", str(tmp_path / "resumed")])
    trainer = main([*flags, "--iterations", "12", "--out", str(tmp_path / "resumed"), "--resume"])
    first_layer = trainer.gan.generator.sublayers()[0]
    assert trainer.step == 12 and device_of(first_layer.params["W"]) == "emulated"
    straight, resumed = (
        final_parameters(tmp_path / "straight"),
        final_parameters(tmp_path / "resumed"),
    )
    assert straight.keys() == resumed.keys()
    for key, value in straight.items():
        np.testing.assert_array_equal(resumed[key], value, err_msg=key)
