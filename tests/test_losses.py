"""Sigmoid cross-entropy: exact values, stability at extreme logits, and its gradient."""

import numpy as np
import pytest

from tinygan.backend import to_device, to_numpy
from tinygan.gradcheck import numerical_gradient, rel_error
from tinygan.losses import sigmoid_cross_entropy


def naive_bce(x, t):
    p = 1 / (1 + np.exp(-x))
    return np.mean(-t * np.log(p) - (1 - t) * np.log(1 - p))


def test_matches_the_textbook_formula_for_moderate_logits(rng):
    x = rng.standard_normal((16, 1)) * 3
    t = rng.uniform(0, 1, size=(16, 1))
    loss, _ = sigmoid_cross_entropy(x, t)
    assert abs(float(loss) - naive_bce(x, t)) < 1e-12


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_logits_are_exact_and_finite(dtype):
    x = np.array([[1e4], [-1e4]], dtype=dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        loss_real, grad_real = sigmoid_cross_entropy(x, 1.0)
        loss_fake, grad_fake = sigmoid_cross_entropy(x, 0.0)
    # target 1: the first logit costs 0, the second 1e4; the mean is 5e3 (and symmetric for target 0)
    assert float(loss_real) == 5e3 and float(loss_fake) == 5e3
    np.testing.assert_array_equal(grad_real, np.array([[0.0], [-0.5]], dtype=dtype))
    np.testing.assert_array_equal(grad_fake, np.array([[0.5], [0.0]], dtype=dtype))
    assert loss_real.dtype == dtype and grad_real.dtype == dtype


def test_zero_logit_costs_log_two():
    loss, grad = sigmoid_cross_entropy(np.zeros((4, 1)), 1.0)
    assert abs(float(loss) - np.log(2)) < 1e-15
    np.testing.assert_allclose(grad, -0.125)


@pytest.mark.parametrize("targets", [1.0, 0.0, 0.9, "array"])
def test_gradient_matches_central_differences(device, rng, targets):
    x = rng.standard_normal((6, 1)) * 4
    t = rng.uniform(0, 1, size=(6, 1)) if targets == "array" else targets
    x, t = to_device(x, device), to_device(np.asarray(t), device)
    _, analytic = sigmoid_cross_entropy(x, t)
    numeric = numerical_gradient(lambda: sigmoid_cross_entropy(x, t)[0], x)
    assert rel_error(analytic, numeric) < 1e-8


def test_label_smoothing_minimum_sits_at_the_target():
    # d/dx mean BCE(x, 0.9) = sigmoid(x) - 0.9 vanishes at x = logit(0.9)
    x = np.array([[np.log(0.9 / 0.1)]])
    _, grad = sigmoid_cross_entropy(x, 0.9)
    assert abs(float(to_numpy(grad)[0, 0])) < 1e-15


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="floating logits"):
        sigmoid_cross_entropy(np.zeros((2, 1), dtype=np.int64), 1.0)
    with pytest.raises(ValueError, match="do not broadcast"):
        sigmoid_cross_entropy(np.zeros((4, 1)), np.zeros(3))
