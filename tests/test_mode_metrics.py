"""Modes captured, high-quality share and reverse KL on the 2-D mixtures, on point sets whose answers
are known by hand."""

import numpy as np
import pytest

from tinygan.backend import to_device
from tinygan.data import MIXTURES
from tinygan.quality.metrics import mixture_modes, nearest_modes, reverse_kl_to_uniform
from tinygan.quality.metrics.modes import MIXTURE_SAMPLES

RING, GRID = MIXTURES["ring"], MIXTURES["grid"]


def at_modes(mixture, modes, offset=(0.0, 0.0)):
    """One point at each listed mode (repeats allowed), moved by ``offset``."""
    return mixture.centres[np.asarray(modes)] + np.asarray(offset)


def measure(mixture, points):
    return mixture_modes(points, mixture.centres, mixture.std)


def test_every_sample_at_one_mode():
    result = measure(RING, at_modes(RING, [3] * 100))
    assert result.modes_captured == 1 and result.high_quality == 1.0
    assert result.num_samples == 100 and result.counts.tolist() == [0, 0, 0, 100, 0, 0, 0, 0]
    assert result.reverse_kl == pytest.approx(np.log(8), rel=1e-15)


@pytest.mark.parametrize("mixture", [RING, GRID], ids=lambda m: m.name)
def test_samples_spread_exactly_evenly_over_the_modes(mixture):
    result = measure(mixture, at_modes(mixture, np.repeat(np.arange(mixture.num_modes), 4)))
    assert result.modes_captured == mixture.num_modes
    assert result.high_quality == 1.0
    assert result.reverse_kl == 0.0


def test_samples_spread_evenly_over_some_modes():
    # Two of 25 grid modes, equally: KL = log(25 / 2).
    result = measure(GRID, at_modes(GRID, [0, 24] * 10))
    assert result.modes_captured == 2
    assert result.reverse_kl == pytest.approx(np.log(12.5), rel=1e-15)


def test_an_uneven_histogram():
    # Ring modes 0, 1, 2 with 2, 1, 1 samples: p = (1/2, 1/4, 1/4), KL = sum p log(8 p).
    result = measure(RING, at_modes(RING, [0, 0, 1, 2]))
    want = 0.5 * np.log(4) + 2 * 0.25 * np.log(2)
    assert result.reverse_kl == pytest.approx(want, rel=1e-15)


def test_the_high_quality_radius_is_three_stds():
    inside = at_modes(RING, [0, 1], offset=(0.0, 2.99 * RING.std))
    outside = at_modes(RING, [2, 3], offset=(3.01 * RING.std, 0.0))
    result = measure(RING, np.concatenate([inside, outside]))
    assert result.high_quality == 0.5
    assert result.modes_captured == 2 and result.counts[:4].tolist() == [1, 1, 0, 0]
    assert result.reverse_kl == pytest.approx(np.log(4), rel=1e-15)
    wider = mixture_modes(outside, RING.centres, RING.std, num_stds=3.05)
    assert wider.high_quality == 1.0 and wider.modes_captured == 2


def test_points_far_from_every_mode_are_not_high_quality():
    # The origin is the ring's centre, a unit away from every mode; (1, 1) lies between grid modes.
    far = [np.zeros((10, 2)), np.full((10, 2), 1.0)]
    for mixture, points in zip((RING, GRID), far, strict=True):
        result = measure(mixture, points)
        assert result.high_quality == 0.0 and result.modes_captured == 0
        assert not result.counts.any() and np.isnan(result.reverse_kl)


def test_far_samples_do_not_enter_the_histogram():
    # Six good samples on mode 5 and four far away: one mode, KL log 8, 60% high quality.
    points = np.concatenate([at_modes(RING, [5] * 6), np.full((4, 2), 3.0)])
    result = measure(RING, points)
    assert result.high_quality == 0.6 and result.modes_captured == 1
    assert result.reverse_kl == pytest.approx(np.log(8), rel=1e-15)


def test_non_finite_samples_are_counted_but_never_high_quality():
    points = np.concatenate([at_modes(GRID, [7, 8]), [[np.nan, 0.0], [np.inf, -np.inf]]])
    result = measure(GRID, points)
    assert result.num_samples == 4 and result.high_quality == 0.5
    assert result.modes_captured == 2


@pytest.mark.parametrize("mixture", [RING, GRID], ids=lambda m: m.name)
def test_real_samples_score_what_the_module_says_a_perfect_generator_scores(mixture):
    n = 20 * MIXTURE_SAMPLES
    result = measure(mixture, mixture.sample(n, np.random.default_rng(0)))
    assert result.modes_captured == mixture.num_modes
    # 1 - exp(-9/2) of the points within three stds, within 5 binomial standard deviations
    p = 1 - np.exp(-4.5)
    assert abs(result.high_quality - p) < 5 * np.sqrt(p * (1 - p) / n)
    # chance unevenness: about (K - 1) / (2 N) nats, and far below what losing a mode costs
    assert result.reverse_kl < 5 * (mixture.num_modes - 1) / (2 * n * p)


def test_nearest_modes_takes_the_closest_centre_and_its_distance(device):
    points = to_device(np.array([[0.9, 0.1], [-0.1, -4.2], [10.0, 0.0]]), device)
    index, distance = nearest_modes(points, np.array([[1.0, 0.0], [0.0, -4.0], [5.0, 0.0]]))
    assert index.tolist() == [0, 1, 2]
    np.testing.assert_allclose(distance, [np.sqrt(0.02), np.sqrt(0.05), 5.0], rtol=1e-14)


def test_samples_on_a_device_give_the_same_figures(device):
    points = GRID.sample(500, np.random.default_rng(1))
    on_device = measure(GRID, to_device(points, device))
    on_host = measure(GRID, points)
    assert on_device.counts.tolist() == on_host.counts.tolist()
    assert on_device.reverse_kl == on_host.reverse_kl


def test_reverse_kl_to_uniform_by_hand():
    assert reverse_kl_to_uniform([5, 0, 0, 0]) == pytest.approx(np.log(4), rel=1e-15)
    assert reverse_kl_to_uniform([3, 3, 3]) == 0.0
    assert np.isnan(reverse_kl_to_uniform([0, 0]))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: mixture_modes(np.zeros((0, 2)), RING.centres, 0.01), "at least one sample"),
        (lambda: mixture_modes(np.zeros((3, 3)), RING.centres, 0.01), "must share D"),
        (lambda: mixture_modes(np.zeros(3), RING.centres, 0.01), "must share D"),
        (lambda: mixture_modes(np.zeros((3, 2)), RING.centres, 0.0), "positive and finite"),
        (lambda: mixture_modes(np.zeros((3, 2)), RING.centres, 0.1, -3), "positive and finite"),
        (lambda: nearest_modes(np.zeros((3, 2)), np.zeros((0, 2))), "at least one centre"),
    ],
)
def test_bad_arguments_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()
