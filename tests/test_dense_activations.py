"""Gradient checks for Dense, the activations and Sequential (float64, central differences)."""

import numpy as np
import pytest

from tinygan.backend import to_device, to_numpy
from tinygan.gradcheck import check_layer
from tinygan.nn import Dense, LeakyReLU, ReLU, Sequential, Sigmoid, Tanh
from tinygan.rounding import assert_forward_within_rounding

TOLERANCE = 1e-7


def away_from_zero(rng, shape, margin=0.1):
    """Random values with |x| >= margin, so no finite-difference step crosses a kink at 0."""
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(margin, 2.0, size=shape)


def assert_all_below(errors, tolerance=TOLERANCE):
    worst = max(errors, key=errors.get)
    assert errors[worst] < tolerance, f"{worst}: relative error {errors[worst]:.2e} in {errors}"


@pytest.mark.parametrize("batch", [1, 7])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("sizes", [(3, 5), (8, 1), (1, 4)])
def test_dense_gradients(device, rng, batch, bias, sizes):
    layer = Dense(*sizes, bias=bias, rng=rng, dtype=np.float64).to(device)
    x = to_device(rng.standard_normal((batch, sizes[0])), device)
    errors = check_layer(layer, x, rng)
    assert set(errors) == {"x", "W"} | ({"b"} if bias else set())
    assert_all_below(errors)


@pytest.mark.parametrize(
    "layer", [ReLU(), LeakyReLU(0.2), LeakyReLU(0.01), Sigmoid(), Tanh()], ids=repr
)
def test_activation_gradients(device, rng, layer):
    x = to_device(away_from_zero(rng, (4, 6)), device)
    assert_all_below(check_layer(layer, x, rng))


def test_relu_negative_side_is_zero_and_leaky_side_is_scaled():
    x = np.array([[-2.0, -0.5, 0.5, 3.0]])
    np.testing.assert_array_equal(ReLU()(x), [[0, 0, 0.5, 3.0]])
    np.testing.assert_allclose(LeakyReLU(0.2)(x), [[-0.4, -0.1, 0.5, 3.0]])
    dy = np.ones_like(x)
    _, cache = LeakyReLU(0.2).forward(x)
    np.testing.assert_allclose(LeakyReLU(0.2).backward(dy, cache), [[0.2, 0.2, 1, 1]])


def test_sigmoid_is_stable_for_huge_inputs():
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = Sigmoid()(np.array([-1e4, -40.0, 0.0, 40.0, 1e4]))
    assert y[0] == 0.0 and y[-1] == 1.0 and y[2] == 0.5
    assert 0 < y[1] < 1e-17


def test_sequential_mlp_gradients_through_every_layer(device, rng):
    model = Sequential(
        Dense(5, 8, rng=rng), LeakyReLU(0.2), Dense(8, 6, rng=rng), Tanh(), Dense(6, 1, rng=rng)
    ).astype(np.float64)
    model.to(device)
    errors = check_layer(model, to_device(rng.standard_normal((9, 5)), device), rng)
    assert set(errors) == {"x", "0.W", "0.b", "2.W", "2.b", "4.W", "4.b"}
    assert_all_below(errors)


def test_non_contiguous_input_gives_the_same_output(rng):
    layer = Dense(4, 3, rng=rng, dtype=np.float64)
    x = rng.standard_normal((4, 6))
    view = x.T[::2]  # (3, 4), not contiguous
    assert not view.flags.c_contiguous
    # a strided input may take another product routine, summing in another order: both are
    # within the layer's rounding bound of the exact output (tinygan.rounding)
    outputs = [layer(view), layer(np.ascontiguousarray(view))]
    assert_forward_within_rounding(layer, view, outputs)


def test_param_grads_false_leaves_parameter_gradients_alone(rng):
    layer = Dense(3, 2, rng=rng, dtype=np.float64)
    y, cache = layer.forward(rng.standard_normal((4, 3)))
    dx = layer.backward(np.ones_like(y), cache, param_grads=False)
    assert dx.shape == (4, 3)
    assert not layer.grads["W"].any() and not layer.grads["b"].any()


def test_backward_accumulates_until_zero_grad(rng):
    layer = Dense(3, 2, rng=rng, dtype=np.float64)
    x = rng.standard_normal((4, 3))
    y, cache = layer.forward(x)
    layer.backward(np.ones_like(y), cache)
    once = layer.grads["W"].copy()
    layer.backward(np.ones_like(y), cache)
    np.testing.assert_allclose(layer.grads["W"], 2 * once)
    layer.zero_grad()
    assert not layer.grads["W"].any()


def test_float32_stays_float32(rng):
    model = Sequential(Dense(4, 3, rng=rng), ReLU(), Dense(3, 2, rng=rng), Sigmoid())
    x = rng.standard_normal((5, 4)).astype(np.float32)
    y, cache = model.forward(x)
    assert y.dtype == np.float32
    assert model.backward(np.ones_like(y), cache).dtype == np.float32
    assert model[0].grads["W"].dtype == np.float32


@pytest.mark.parametrize(
    "bad, error, message",
    [
        (np.zeros((2, 5)), ValueError, r"Dense expects input of shape \(N, 4\), got \(2, 5\)"),
        (np.zeros(4), ValueError, r"Dense expects input of shape \(N, 4\), got \(4,\)"),
        (np.zeros((2, 4), dtype=np.uint8), TypeError, "Dense expects a floating-point array"),
    ],
)
def test_dense_rejects_bad_input_with_a_clear_message(bad, error, message):
    with pytest.raises(error, match=message):
        Dense(4, 3).forward(bad)


def test_state_dict_round_trip_and_mismatch(rng):
    a = Sequential(Dense(3, 4, rng=rng), ReLU(), Dense(4, 1, rng=rng))
    b = Sequential(Dense(3, 4, rng=rng), ReLU(), Dense(4, 1, rng=rng))
    b.load_state_dict(a.state_dict())
    x = rng.standard_normal((2, 3)).astype(np.float32)
    np.testing.assert_array_equal(to_numpy(a(x)), to_numpy(b(x)))
    with pytest.raises(KeyError, match="missing"):
        Sequential(Dense(3, 4), ReLU(), Dense(4, 1), ReLU(), Dense(1, 1)).load_state_dict(
            a.state_dict()
        )
    with pytest.raises(ValueError, match="shape"):
        Sequential(Dense(3, 5), ReLU(), Dense(4, 1)).load_state_dict(a.state_dict())
