"""The 2-D ring and grid: their modes, their draws, and the fixed and fresh batches a run trains on."""

import numpy as np
import pytest

from tinygan.backend import device_of, to_numpy
from tinygan.data import (
    MIXTURES,
    POINTS_PER_RUN,
    BatchIterator,
    FreshBatches,
    GaussianMixture2D,
    grid_mixture,
    mixture_batches,
    ring_mixture,
)


def test_the_ring_is_eight_modes_evenly_on_the_unit_circle():
    ring = MIXTURES["ring"]
    assert ring.num_modes == 8 and ring.std == 0.01 and ring.name == "ring"
    np.testing.assert_allclose(np.hypot(*ring.centres.T), 1.0, rtol=1e-15)
    angles = np.sort(np.arctan2(ring.centres[:, 1], ring.centres[:, 0]) % (2 * np.pi))
    np.testing.assert_allclose(angles, np.arange(8) * np.pi / 4, atol=1e-15)


def test_the_grid_is_twenty_five_modes_two_apart():
    grid = MIXTURES["grid"]
    assert grid.num_modes == 25 and grid.std == 0.05 and grid.name == "grid"
    want = {(float(a), float(b)) for a in (-4, -2, 0, 2, 4) for b in (-4, -2, 0, 2, 4)}
    assert {tuple(c) for c in grid.centres.tolist()} == want


def test_centres_are_read_only():
    with pytest.raises(ValueError):
        MIXTURES["ring"].centres[0, 0] = 5.0


@pytest.mark.parametrize("mixture", [ring_mixture(), grid_mixture()], ids=repr)
def test_draws_pick_modes_uniformly_and_spread_by_std(mixture):
    n = 40_000
    points, modes = mixture.sample_with_modes(n, np.random.default_rng(0), np.float64)
    assert points.shape == (n, 2) and points.dtype == np.float64
    counts = np.bincount(modes, minlength=mixture.num_modes)
    share = 1 / mixture.num_modes
    # each count is binomial(n, 1/K): within 5 standard deviations
    assert np.abs(counts - n * share).max() < 5 * np.sqrt(n * share * (1 - share))
    noise = (points - mixture.centres[modes]) / mixture.std
    assert abs(noise.mean()) < 5 / np.sqrt(2 * n)
    assert abs(noise.std() - 1) < 0.02
    # the distance to the own mode is Rayleigh: 1 - exp(-9/2) = 98.9% within three stds
    within = (np.hypot(*noise.T) <= 3).mean()
    assert abs(within - (1 - np.exp(-4.5))) < 5 * np.sqrt(0.011 * 0.989 / n)


def test_sample_is_seeded_and_float32_by_default():
    a = MIXTURES["grid"].sample(5, np.random.default_rng(3))
    b = MIXTURES["grid"].sample(5, np.random.default_rng(3))
    assert a.dtype == np.float32
    np.testing.assert_array_equal(a, b)


def test_a_fixed_set_of_points_shuffled_each_epoch():
    batches = mixture_batches(MIXTURES["ring"], 100, np.random.default_rng(0))
    assert isinstance(batches, BatchIterator)
    assert len(batches.data) == POINTS_PER_RUN and batches.steps_per_epoch == 1000
    same = mixture_batches(MIXTURES["ring"], 100, np.random.default_rng(0))
    np.testing.assert_array_equal(batches.data, same.data)  # the seed fixes the set
    first = np.concatenate([next(batches) for _ in range(1000)])
    second = np.concatenate([next(batches) for _ in range(1000)])
    assert batches.epoch == 2
    # every epoch is the whole set, in a new order
    np.testing.assert_array_equal(np.sort(first, axis=0), np.sort(batches.data, axis=0))
    np.testing.assert_array_equal(np.sort(second, axis=0), np.sort(batches.data, axis=0))
    assert not np.array_equal(first, second)


def test_fresh_batches_are_new_points_counted_in_epochs_and_resume_exactly():
    batches = mixture_batches(
        MIXTURES["grid"], 64, np.random.default_rng(1), num_points=640, fresh=True
    )
    assert isinstance(batches, FreshBatches) and batches.steps_per_epoch == 10
    drawn = [next(batches) for _ in range(13)]
    assert batches.epoch == 1 and all(batch.shape == (64, 2) for batch in drawn)
    assert len(np.unique(np.concatenate(drawn), axis=0)) == 13 * 64  # no point served twice
    state = batches.state_dict()
    ahead = [next(batches) for _ in range(9)]
    resumed = mixture_batches(
        MIXTURES["grid"], 64, np.random.default_rng(99), num_points=640, fresh=True
    )
    resumed.load_state_dict({key: np.asarray(value) for key, value in state.items()})
    assert resumed.epoch == 1
    for want in ahead:
        np.testing.assert_array_equal(next(resumed), want)
    assert resumed.epoch == batches.epoch == 2


def test_batches_live_on_the_requested_device():
    for fresh in (False, True):
        batches = mixture_batches(
            MIXTURES["ring"], 10, np.random.default_rng(0), 100, fresh, device="emulated"
        )
        assert device_of(next(batches)) == "emulated"
        assert to_numpy(next(batches)).dtype == np.float32


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: GaussianMixture2D([[0, 0, 0]], 0.1, "x"), r"centres must have shape \(K, 2\)"),
        (lambda: GaussianMixture2D(np.zeros((0, 2)), 0.1, "x"), r"K >= 1, got \(0, 2\)"),
        (lambda: GaussianMixture2D([[0, np.nan]], 0.1, "x"), "centres must be finite"),
        (lambda: GaussianMixture2D([[0, 0]], 0.0, "x"), "std must be a positive finite number"),
        (lambda: GaussianMixture2D([[0, 0]], np.inf, "x"), "std must be a positive finite"),
        (lambda: MIXTURES["ring"].sample(-1, np.random.default_rng(0)), "n must be >= 0"),
        (
            lambda: FreshBatches(MIXTURES["ring"], 101, np.random.default_rng(0), 100),
            r"batch_size must be between 1 and epoch_size \(100\), got 101",
        ),
    ],
)
def test_bad_arguments_raise_one_line_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_a_saved_position_outside_an_epoch_is_refused():
    batches = FreshBatches(MIXTURES["ring"], 10, np.random.default_rng(0), 100)
    state = batches.state_dict() | {"position": 10}
    with pytest.raises(ValueError, match="saved position 10 is not within an epoch of 10"):
        batches.load_state_dict(state)
