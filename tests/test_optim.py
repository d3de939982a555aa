"""Optimizers against their update formulas, worked out by hand on tiny parameters."""

import re

import numpy as np
import pytest

from tinygan.nn import Dense, Dropout, Flatten, ReLU, Sequential, Tanh
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


# -- argument checks -------------------------------------------------------------------------------

# A maker per optimizer taking the keyword to set; every other argument keeps a good value.
MAKERS = {
    "SGD": lambda **kw: SGD([Dense(1, 1)], **{"lr": 0.1, **kw}),
    "Adam": lambda **kw: Adam([Dense(1, 1)], **kw),
    "RMSprop": lambda **kw: RMSprop([Dense(1, 1)], **kw),
}
# A number is shown as the float it was read as (0 as 0.0), anything else as given.
BAD_NUMBERS = [0.0, -1e-3, float("nan"), float("inf"), "1e-3", True, None, [1e-3]]


@pytest.mark.parametrize("name", MAKERS)
@pytest.mark.parametrize("value", BAD_NUMBERS, ids=repr)
def test_bad_lr_raises_naming_lr_and_the_value(name, value):
    match = rf"^{name}: lr must be a number in \(0, inf\), got {re.escape(repr(value))}$"
    with pytest.raises(ValueError, match=match):
        MAKERS[name](lr=value)


RULE_CONSTANTS = [
    ("SGD", "momentum", "[0, 1)"),
    ("Adam", "beta1", "[0, 1)"),
    ("Adam", "beta2", "[0, 1)"),
    ("Adam", "eps", "(0, inf)"),
    ("RMSprop", "rho", "[0, 1)"),
    ("RMSprop", "eps", "(0, inf)"),
]
OUTSIDE = {
    "[0, 1)": [-0.1, 1.0, 1.5, float("nan"), float("inf"), "0.9", False],
    "(0, inf)": [0.0, -1e-8, float("nan"), float("inf"), "1e-8", False],
}


@pytest.mark.parametrize(
    "name, argument, interval, value",
    [(*case, value) for case in RULE_CONSTANTS for value in OUTSIDE[case[2]]],
    ids=repr,
)
def test_bad_rule_constants_raise_naming_the_argument(name, argument, interval, value):
    match = (
        rf"^{name}: {argument} must be a number in {re.escape(interval)}, "
        rf"got {re.escape(repr(value))}$"
    )
    with pytest.raises(ValueError, match=match):
        MAKERS[name](**{argument: value})


def test_edge_values_are_accepted_and_stored_as_floats():
    sgd = SGD([Dense(1, 1)], lr=1, momentum=0)
    assert (sgd.lr, sgd.momentum) == (1.0, 0.0) and type(sgd.lr) is float
    adam = Adam([Dense(1, 1)], lr=np.float32(2e-4), beta1=0, beta2=np.float64(0.99), eps=1e-12)
    assert (adam.beta1, adam.beta2) == (0.0, 0.99) and type(adam.lr) is float
    assert RMSprop([Dense(1, 1)], rho=0).rho == 0.0


@pytest.mark.parametrize("value", [-1e-3, float("nan"), float("inf"), "1e-3", True, None])
def test_setting_a_bad_lr_later_raises_and_keeps_the_old_one(value):
    optimizer = Adam([Dense(1, 1)], lr=1e-3)
    match = rf"^Adam: lr must be a number in \[0, inf\), got {re.escape(repr(value))}$"
    with pytest.raises(ValueError, match=match):
        optimizer.lr = value
    assert optimizer.lr == 1e-3


def test_a_schedule_may_set_lr_down_to_zero_and_the_state_keeps_it():
    layer = one_weight_layer(1.0, 0.5)
    optimizer = SGD([layer], lr=0.1)
    optimizer.lr = np.float64(0.0)  # the last step of a cosine schedule
    assert type(optimizer.lr) is float
    optimizer.step()
    assert layer.params["W"][0, 0] == 1.0
    restored = SGD([one_weight_layer()], lr=0.5)
    restored.load_state_dict(optimizer.state_dict())
    assert restored.lr == 0.0


def test_a_restored_state_with_a_bad_lr_is_refused():
    optimizer = Adam([Dense(1, 1)], lr=1e-3)
    saved = {**optimizer.state_dict(), "lr": np.float64(np.nan)}
    with pytest.raises(ValueError, match=r"^Adam: lr must be a number in \[0, inf\), got nan$"):
        optimizer.load_state_dict(saved)


@pytest.mark.parametrize(
    "make, got",
    [
        (lambda: [], "an empty list"),
        (lambda: [ReLU()], "ReLU, which has none"),
        (lambda: Sequential(ReLU(), Flatten()), "Sequential, which has none"),
        (lambda: (x for x in [Tanh(), Dropout(0.5, None)]), "Tanh, Dropout, none of which has any"),
    ],
    ids=["empty", "relu", "sequential", "generator"],
)
@pytest.mark.parametrize("optimizer", [SGD, Adam, RMSprop])
def test_layers_without_parameters_are_refused(optimizer, make, got):
    name = optimizer.__name__
    match = rf"^{name} needs layers with parameters to update, got {re.escape(got)}$"
    with pytest.raises(ValueError, match=match):
        optimizer(make(), lr=1e-3)


def test_parameters_in_some_layers_only_are_enough():
    # An activation of its own next to a network: nothing to update there, but the list has work.
    dense = Dense(2, 1)
    optimizer = Adam([ReLU(), Sequential(Tanh(), dense)], lr=1e-3)
    assert [layer for layer, _, _, _ in optimizer.slots()] == [dense, dense]
    assert Adam(dense).layers == [dense]  # one Layer stands for a list of one


@pytest.mark.parametrize(
    "layers, got",
    [
        ([Dense(1, 1), "Dense(1, 1)"], "str at position 1"),
        (Dense(1, 1).params, "str at position 0"),  # the parameter dict, not the layer
        (3, "int"),
        (None, "NoneType"),
    ],
    ids=["string", "params-dict", "int", "none"],
)
def test_something_other_than_layers_is_refused(layers, got):
    match = rf"^Adam takes a Layer or a list of Layer objects, got {got}$"
    with pytest.raises(TypeError, match=match):
        Adam(layers, lr=1e-3)
