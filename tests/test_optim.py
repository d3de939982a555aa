"""Optimizers against their update formulas, worked out by hand on tiny parameters."""

import numpy as np
import pytest

from tinygan.nn import Dense, Sequential
from tinygan.optim import SGD, Adam, RMSprop


def one_weight_layer(value=1.0, grad=0.5):
    layer = Dense(1, 1, bias=False, dtype=np.float64)
    layer.params["W"][...] = value
    layer.grads["W"][...] = grad
    return layer


def test_sgd_plain_step():
    layer = one_weight_layer(1.0, 0.5)
    SGD([layer], lr=0.1).step()
    assert layer.params["W"][0, 0] == pytest.approx(1.0 - 0.1 * 0.5)


def test_sgd_momentum_two_steps():
    layer = one_weight_layer(1.0, 0.5)
    opt = SGD([layer], lr=0.1, momentum=0.9)
    opt.step()  # b = 0.5, p = 1 - 0.05 = 0.95
    opt.step()  # b = 0.9 * 0.5 + 0.5 = 0.95, p = 0.95 - 0.095 = 0.855
    assert layer.params["W"][0, 0] == pytest.approx(0.855, abs=1e-15)


def test_adam_first_step_moves_by_lr_times_sign():
    # with bias correction, m_hat = g and v_hat = g^2, so the first step is lr * g / (|g| + eps)
    layer = one_weight_layer(1.0, -0.3)
    Adam([layer], lr=0.01).step()
    assert layer.params["W"][0, 0] == pytest.approx(1.0 + 0.01 * 0.3 / (0.3 + 1e-8), abs=1e-15)


def test_adam_two_steps_by_hand():
    layer = one_weight_layer(2.0, 0.4)
    opt = Adam([layer], lr=0.1, beta1=0.5, beta2=0.75, eps=1e-3)
    opt.step()
    layer.grads["W"][...] = -0.2
    opt.step()
    p, m, v = 2.0, 0.0, 0.0
    for t, g in ((1, 0.4), (2, -0.2)):
        m = 0.5 * m + 0.5 * g
        v = 0.75 * v + 0.25 * g * g
        m_hat, v_hat = m / (1 - 0.5**t), v / (1 - 0.75**t)
        p -= 0.1 * m_hat / (np.sqrt(v_hat) + 1e-3)
    assert layer.params["W"][0, 0] == pytest.approx(p, abs=1e-14)


def test_rmsprop_two_steps_by_hand():
    layer = one_weight_layer(1.0, 0.5)
    opt = RMSprop([layer], lr=0.01, rho=0.9, eps=1e-7)
    opt.step()
    opt.step()
    p, v = 1.0, 0.0
    for _ in range(2):
        v = 0.9 * v + 0.1 * 0.25
        p -= 0.01 * 0.5 / (np.sqrt(v) + 1e-7)
    assert layer.params["W"][0, 0] == pytest.approx(p, abs=1e-15)


def test_step_does_not_zero_gradients_and_zero_grad_does():
    layer = one_weight_layer()
    opt = Adam([layer], lr=0.1)
    opt.step()
    assert layer.grads["W"][0, 0] == 0.5
    opt.zero_grad()
    assert layer.grads["W"][0, 0] == 0.0


def test_sequential_brings_all_its_parameters():
    model = Sequential(Dense(2, 3), Dense(3, 1))
    names = [name for _, name, _, _ in Adam([model], lr=1e-3).slots()]
    assert names == ["W", "b", "W", "b"]


def test_state_dict_round_trip_continues_identically(rng):
    def make():
        layer = Dense(3, 2, rng=np.random.default_rng(0), dtype=np.float64)
        return layer, Adam([layer], lr=0.05)

    a, opt_a = make()
    for _ in range(3):
        a.grads["W"][...] = rng.standard_normal(a.grads["W"].shape)
        opt_a.step()
    b, opt_b = make()
    b.load_state_dict(a.state_dict())
    opt_b.load_state_dict(opt_a.state_dict())
    grad = rng.standard_normal(a.grads["W"].shape)
    for layer, opt in ((a, opt_a), (b, opt_b)):
        layer.grads["W"][...] = grad
        opt.step()
    np.testing.assert_array_equal(a.params["W"], b.params["W"])


def test_float32_parameters_stay_float32():
    layer = Dense(4, 4)
    layer.grads["W"][...] = 1.0
    Adam([layer], lr=1e-3).step()
    assert layer.params["W"].dtype == np.float32


def test_bad_arguments():
    with pytest.raises(ValueError, match="learning rate"):
        Adam([Dense(1, 1)], lr=0)
    with pytest.raises(TypeError, match="Layer"):
        Adam([], lr=1e-3)
