"""The rounding bounds of :mod:`tinygan.rounding`: every summation order stays within them, and a
wrong result (a sign, a missing term, a pixel off by one, a skipped step) does not."""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import pytest

from tinygan import overrides
from tinygan.models import PRESETS
from tinygan.nn import Sequential, conv
from tinygan.rounding import (
    assert_forward_within_rounding,
    assert_matches_plain,
    assert_within_rounding,
    forward_bound,
    gamma,
    recording_calls,
    rounding_bound,
    unit_roundoff,
)


def summation_orders(terms: np.ndarray) -> dict[str, np.float32]:
    """One float32 sum of ``terms`` in each of several orders a library might take."""
    t = terms.astype(np.float32)

    def left_to_right(values: np.ndarray) -> np.float32:
        total = np.float32(0)
        for value in values:
            total = np.float32(total + value)
        return total

    return {
        "pairwise (NumPy)": t.sum(),
        "left to right": left_to_right(t),
        "right to left": left_to_right(t[::-1]),
        "largest first": left_to_right(t[np.argsort(-abs(t))]),
        "smallest first": left_to_right(t[np.argsort(abs(t))]),
        "positives, then negatives": left_to_right(np.concatenate([t[t > 0], t[t <= 0]])),
        "two threads": np.float32(left_to_right(t[::2]) + left_to_right(t[1::2])),
        "eight lanes": left_to_right(t.reshape(8, -1).sum(axis=0)),
    }


def cancelling_terms(n: int, seed: int) -> np.ndarray:
    """``n`` float32 terms of both signs whose sum is about a thousandth of their magnitude, as a
    bias gradient summed over a batch can be."""
    terms = np.random.default_rng(seed).standard_normal(n).astype(np.float32)
    terms[-1] -= np.float32(terms.astype(np.float64).sum() - 1e-3 * abs(terms).sum())
    return terms


@pytest.mark.parametrize("seed", range(5))
def test_every_summation_order_stays_within_the_bound(seed):
    terms = cancelling_terms(1024, seed)
    exact = math.fsum(terms.astype(np.float64))
    magnitude = float(abs(terms.astype(np.float64)).sum())
    sums = summation_orders(terms)
    for order, total in sums.items():
        assert_within_rounding(np.float32(total), np.float64(exact), magnitude, terms.size, order)
    # ...while a tolerance relative to the result, which cancelled, does not hold for every order
    relative = [abs(float(total) - exact) / abs(exact) for total in sums.values()]
    assert max(relative) > 1e-5


def test_the_bound_is_gamma_n_times_the_magnitude():
    u = unit_roundoff(np.float32)
    assert u == 2.0**-24 and unit_roundoff(np.float64) == 2.0**-53
    assert gamma(10, np.float32) == pytest.approx(10 * u / (1 - 10 * u), rel=1e-15)
    bound = rounding_bound(np.array([0.0, 2.0]), 10, np.float32)
    tiny = np.finfo(np.float32).smallest_subnormal
    np.testing.assert_allclose(bound, [10 * tiny, 2 * gamma(10, np.float32) + 10 * tiny])
    with pytest.raises(ValueError, match="no rounding bound"):
        gamma(2**24, np.float32)


def test_a_single_cancelled_sum_passes_and_a_dropped_term_fails():
    """D's last bias gradient: 16 terms, a sum a thousand times smaller than they are."""
    dy = cancelling_terms(16, 7)[:, None]
    exact = dy.astype(np.float64).sum(axis=0)
    for got in (dy.sum(axis=0), dy[::-1].sum(axis=0), np.float32(dy[::2].sum() + dy[1::2].sum())):
        assert_within_rounding(np.atleast_1d(got), exact, abs(dy).sum(axis=0), 16)
    with pytest.raises(AssertionError, match="beyond the rounding bound"):
        assert_within_rounding(dy[1:].sum(axis=0), exact, abs(dy).sum(axis=0), 16)


def conv_case(dtype: Any) -> tuple[Any, ...]:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 8, 9, 8)).astype(dtype)
    W = rng.standard_normal((4, 8, 3, 3)).astype(dtype)
    return x, W, rng.standard_normal(4).astype(dtype), (1, 1), (1, 1, 1, 1)


def wrong_convolutions(x, W, b, stride, padding) -> dict[str, np.ndarray]:
    """The convolution with one mistake each."""
    flipped, missing = W.copy(), W.copy()
    flipped[1, 3, 1, 1] *= -1
    missing[2, 5, 0, 2] = 0
    plain = conv.conv2d_forward.plain
    return {
        "one weight's sign flipped": plain(x, flipped, b, stride, padding),
        "one term missing": plain(x, missing, b, stride, padding),
        "input one pixel off": plain(np.roll(x, 1, axis=3), W, b, stride, padding),
        "no bias": plain(x, W, None, stride, padding),
    }


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_kernel_check_rejects_a_wrong_convolution(dtype):
    args = conv_case(dtype)
    assert_matches_plain("conv2d_forward", args, conv.conv2d_forward.plain(*args))
    for mistake, wrong in wrong_convolutions(*args).items():
        with pytest.raises(AssertionError, match="beyond the rounding bound"):
            assert_matches_plain("conv2d_forward", args, wrong, mistake)


def test_the_kernel_check_rejects_a_skipped_bias_correction_and_a_wrong_dtype():
    rng = np.random.default_rng(4)
    param, grad = (rng.standard_normal(20).astype(np.float32) for _ in range(2))
    m, v = np.zeros(20, np.float32), np.zeros(20, np.float32)
    args = (param, grad, m, v, 1e-3, 0.9, 0.999, 1e-8, 1)
    # step 1 without the bias corrections: m = 0.1 g and v = 0.001 g^2 used as they are
    m_raw, v_raw = 0.1 * grad, 0.001 * grad * grad
    uncorrected = param - 1e-3 * m_raw / (np.sqrt(v_raw) + 1e-8)
    with pytest.raises(AssertionError, match="result 0"):
        assert_matches_plain("adam_update", args, (uncorrected, m_raw, v_raw))
    y = conv.conv2d_forward.plain(*conv_case(np.float32))
    with pytest.raises(AssertionError, match="dtype"):
        assert_matches_plain("conv2d_forward", conv_case(np.float32), y.astype(np.float64))


def test_copies_must_be_exact():
    x = np.random.default_rng(5).standard_normal((1, 2, 5, 5)).astype(np.float32)
    cols = conv.im2col.plain(x, 3, 3, (1, 1), (1, 1, 1, 1))
    assert_matches_plain("im2col", (x, 3, 3, (1, 1), (1, 1, 1, 1)), cols)
    nudged = cols.copy()
    nudged[0, 0] = np.nextafter(nudged[0, 0], np.float32(np.inf))
    with pytest.raises(AssertionError):
        assert_matches_plain("im2col", (x, 3, 3, (1, 1), (1, 1, 1, 1)), nudged)


@pytest.mark.parametrize("name", ["dcgan-tf", "dcgan-keras", "mlp-tf"])
@pytest.mark.parametrize("training", [False, True])
def test_forward_passes_in_any_batching_stay_within_the_network_bound(name, training):
    """A float32 forward pass of a batch, of its rows one by one (other BLAS paths), and with the
    plain functions: each within the bound of the exact output."""
    generator, _ = PRESETS[name].build(np.random.default_rng(0))
    z = np.random.default_rng(1).standard_normal((6, PRESETS[name].latent_dim)).astype(np.float32)
    together = generator.forward(z, training=training)[0]
    outputs = [together]
    if not training:  # in training mode BatchNorm's statistics belong to the whole batch
        outputs.append(
            np.concatenate([generator.forward(row[None], training=False)[0] for row in z])
        )
    before = overrides.active_kernels()
    try:
        overrides.set_kernels("reference")
        outputs.append(generator.forward(z, training=training)[0])
    finally:
        overrides.set_kernels(before)
    assert_forward_within_rounding(generator, z, outputs, training=training)


def test_the_network_bound_rejects_a_changed_weight_and_the_wrong_statistics():
    generator, _ = PRESETS["mlp-tf"].build(np.random.default_rng(0))
    z = np.random.default_rng(1).uniform(-1, 1, (4, 100)).astype(np.float32)
    exact, bound = forward_bound(generator, z)
    assert np.all(bound < 1e-4 * np.abs(exact).max())  # a bound that still says something
    changed = copy.deepcopy(generator)
    changed.layers[2].params["W"][3] *= 1.001  # one row of weights off by a thousandth
    with pytest.raises(AssertionError, match="beyond the rounding bound"):
        assert_forward_within_rounding(generator, z, [changed.forward(z, training=False)[0]])
    # a Dense and a BatchNorm of dcgan-tf, normalising with the batch's statistics by mistake
    first, _ = PRESETS["dcgan-tf"].build(np.random.default_rng(0))
    head = Sequential(*first.layers[:2])
    z = np.random.default_rng(1).standard_normal((4, 100)).astype(np.float32)
    assert_forward_within_rounding(head, z, [head.forward(z, training=False)[0]])
    with pytest.raises(AssertionError, match="beyond the rounding bound"):
        assert_forward_within_rounding(head, z, [head.forward(z, training=True)[0]])


def test_recording_calls_sees_each_top_level_call_and_restores_the_kernels():
    before = overrides.active_kernels()
    x = np.random.default_rng(6).standard_normal((2, 3, 6, 6)).astype(np.float32)
    W = np.random.default_rng(7).standard_normal((4, 3, 3, 3)).astype(np.float32)
    with recording_calls("cpu") as calls:
        y = conv.conv2d_forward(x, W, None, (1, 1), (1, 1, 1, 1))
    assert [call.name for call in calls] == ["conv2d_forward"]  # not the im2col inside it
    assert calls[0].kernel == (before == "numba")
    np.testing.assert_array_equal(calls[0].results[0], y)
    calls[0].check()
    assert overrides.active_kernels() == before
