"""BatchIterator: each example once per epoch, reshuffled, seeded, and resumable to the same batch."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from tinygan.data import BatchIterator


def epoch_batches(batches: BatchIterator) -> list[np.ndarray]:
    """The batches of the current epoch, checking that the epoch counter moves only at its end."""
    epoch = batches.epoch
    out = []
    for _ in range(batches.steps_per_epoch):
        assert batches.epoch == epoch
        out.append(next(batches))
    assert batches.epoch == epoch + 1
    return out


@pytest.mark.parametrize(("n", "batch_size"), [(12, 4), (12, 12), (10, 1), (7, 3)])
def test_each_example_once_per_epoch_drop_last(n: int, batch_size: int) -> None:
    data = np.arange(n)
    batches = BatchIterator(data, batch_size, np.random.default_rng(0))
    assert batches.steps_per_epoch == n // batch_size
    for _ in range(3):
        seen = np.concatenate(epoch_batches(batches))
        assert all(len(b) == batch_size for b in np.split(seen, batches.steps_per_epoch))
        assert len(seen) == (n // batch_size) * batch_size
        assert len(np.unique(seen)) == len(seen)  # no repeats within an epoch


@pytest.mark.parametrize(("n", "batch_size"), [(12, 4), (7, 3), (5, 5), (9, 2)])
def test_each_example_exactly_once_per_epoch_keep_last(n: int, batch_size: int) -> None:
    batches = BatchIterator(np.arange(n), batch_size, np.random.default_rng(0), drop_last=False)
    assert batches.steps_per_epoch == -(-n // batch_size)
    for _ in range(3):
        epoch = epoch_batches(batches)
        assert [len(b) for b in epoch[:-1]] == [batch_size] * (len(epoch) - 1)
        assert len(epoch[-1]) == n - batch_size * (len(epoch) - 1)
        np.testing.assert_array_equal(np.sort(np.concatenate(epoch)), np.arange(n))


def test_dropped_examples_return_in_later_epochs() -> None:
    batches = BatchIterator(
        np.arange(10), 3, np.random.default_rng(1)
    )  # one example sits out each epoch
    seen = np.concatenate([next(batches) for _ in range(3 * 30)])
    assert set(seen.tolist()) == set(range(10))


def test_batches_are_copies_with_the_data_shape() -> None:
    data = np.arange(10 * 2 * 3, dtype=np.float32).reshape(10, 2, 3)
    batches = BatchIterator(data, 4, np.random.default_rng(0))
    batch = next(batches)
    assert batch.shape == (4, 2, 3) and batch.dtype == np.float32
    rows = batch[:, 0, 0].astype(int) // 6  # row i of data starts with 6 * i
    np.testing.assert_array_equal(data[rows], batch)
    batch[...] = -1
    assert data.min() >= 0


def test_reshuffled_each_epoch() -> None:
    batches = BatchIterator(np.arange(100), 10, np.random.default_rng(0))
    first = np.concatenate(epoch_batches(batches))
    second = np.concatenate(epoch_batches(batches))
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(np.sort(first), np.sort(second))


def test_deterministic_for_a_seed() -> None:
    def run(seed: int) -> np.ndarray:
        batches = BatchIterator(np.arange(50), 8, np.random.default_rng(seed))
        return np.stack(list(itertools.islice(batches, 20)))  # iterates as a plain iterator

    np.testing.assert_array_equal(run(3), run(3))
    assert not np.array_equal(run(3), run(4))


# 20 examples in batches of 3: 6 or 7 steps per epoch, so resume before, at and after an epoch's end.
@pytest.mark.parametrize("consumed", [0, 1, 5, 6, 7, 13])
@pytest.mark.parametrize("drop_last", [True, False])
def test_state_dict_resume_gives_identical_batches(
    consumed: int, drop_last: bool, tmp_path: Path
) -> None:
    data = np.arange(40).reshape(20, 2)
    original = BatchIterator(data, 3, np.random.default_rng(7), drop_last=drop_last)
    for _ in range(consumed):
        next(original)
    # Through an .npz file, as a checkpoint would store it: no pickling needed.
    np.savez(tmp_path / "state.npz", **original.state_dict())
    with np.load(tmp_path / "state.npz", allow_pickle=False) as saved:
        state = dict(saved)
    expected = [next(original) for _ in range(15)]  # runs over two epoch boundaries

    resumed = BatchIterator(data, 3, np.random.default_rng(999), drop_last=drop_last)
    resumed.load_state_dict(state)
    assert resumed.epoch == consumed // resumed.steps_per_epoch
    for want in expected:
        np.testing.assert_array_equal(next(resumed), want)
    assert resumed.epoch == original.epoch


def test_state_dict_is_a_snapshot() -> None:
    batches = BatchIterator(np.arange(6), 2, np.random.default_rng(0))
    state = batches.state_dict()
    saved = state["permutation"].copy()
    for _ in range(7):
        next(batches)
    np.testing.assert_array_equal(state["permutation"], saved)
    assert state["epoch"] == 0 and state["position"] == 0


def test_load_state_dict_rejects_a_state_from_other_data() -> None:
    state = BatchIterator(np.arange(10), 2, np.random.default_rng(0)).state_dict()
    with pytest.raises(ValueError, match="permutation"):
        BatchIterator(np.arange(12), 2, np.random.default_rng(0)).load_state_dict(state)
    with pytest.raises(ValueError, match="position"):
        BatchIterator(np.arange(10), 2, np.random.default_rng(0)).load_state_dict(
            {**state, "position": 3}
        )
    with pytest.raises(ValueError, match="position"):
        BatchIterator(np.arange(10), 2, np.random.default_rng(0)).load_state_dict(
            {**state, "position": 10}
        )


@pytest.mark.parametrize("batch_size", [0, -1, 11])
def test_batch_size_out_of_range(batch_size: int) -> None:
    with pytest.raises(ValueError, match="batch_size must be between 1 and the number of examples"):
        BatchIterator(np.zeros((10, 3)), batch_size, np.random.default_rng(0))


def test_bad_arguments() -> None:
    with pytest.raises(TypeError):
        BatchIterator(np.zeros(10), 2.5, np.random.default_rng(0))
    with pytest.raises(ValueError, match="leading example axis"):
        BatchIterator(np.float32(1.0), 1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="between 1"):
        BatchIterator(np.zeros((0, 3)), 1, np.random.default_rng(0))
