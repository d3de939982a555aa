"""Flat parameter storage: one buffer per dtype, the layers holding views, the same numbers."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import KERNEL_SETS

from tinygan import overrides
from tinygan.backend import device_of, get_array_module, to_numpy
from tinygan.nn import BatchNorm, Conv2D, Dense, Flatten, LeakyReLU, Sequential
from tinygan.optim import SGD, Adam, Optimizer, RMSprop
from tinygan.rounding import assert_within_rounding, recording_calls


@pytest.fixture(autouse=True)
def restore_kernels() -> Any:
    before = overrides.active_kernels()
    yield
    overrides.set_kernels(before)


def make_model(dtype: Any = np.float32) -> Sequential:
    rng = np.random.default_rng(0)
    return Sequential(
        Conv2D(1, 2, 3, padding=1, rng=rng, dtype=dtype),
        BatchNorm(2, dtype=dtype),
        LeakyReLU(),
        Flatten(),
        Dense(32, 3, rng=rng, dtype=dtype),
    )


OPTIMIZERS = {
    "adam": lambda layers: Adam(layers, lr=0.01),
    "rmsprop": lambda layers: RMSprop(layers, lr=0.01),
    "sgd": lambda layers: SGD(layers, lr=0.01),
    "sgd-momentum": lambda layers: SGD(layers, lr=0.01, momentum=0.9),
}


def per_parameter(optimizer: Optimizer) -> Optimizer:
    """``optimizer`` made to run the update once per parameter, as before flat buffers."""
    optimizer.flat_groups = lambda: None  # type: ignore[method-assign]
    return optimizer


def train(model: Sequential, optimizer: Optimizer, steps: int = 3) -> list[np.ndarray]:
    xp = get_array_module(next(iter(model.layers[0].params.values())))
    rng = np.random.default_rng(5)
    for _ in range(steps):
        x = xp.asarray(rng.standard_normal((4, 1, 4, 4)).astype(np.float32))
        y, cache = model.forward(x)
        optimizer.zero_grad()
        model.backward(xp.asarray(rng.standard_normal(y.shape).astype(np.float32)), cache)
        optimizer.step()
    return [to_numpy(p) for layer in model.walk() for p in layer.params.values()]


@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("kernels", KERNEL_SETS)
def test_flat_updates_equal_per_parameter_updates(name, kernels):
    assert overrides.set_kernels(kernels) == kernels
    flat_model, plain_model = make_model(), make_model()
    flat = train(flat_model, OPTIMIZERS[name]([flat_model]))
    plain = train(plain_model, per_parameter(OPTIMIZERS[name]([plain_model])))
    for a, b in zip(flat, plain, strict=True):
        np.testing.assert_array_equal(a, b)


def test_parameters_and_gradients_are_views_of_one_buffer_per_dtype():
    model = make_model()
    before = [p.copy() for layer in model.walk() for p in layer.params.values()]
    optimizer = Adam([model], lr=0.01)
    (group,) = optimizer.flat_groups()
    after = [p for layer in model.walk() for p in layer.params.values()]
    for old, new in zip(before, after, strict=True):
        np.testing.assert_array_equal(old, new)  # values kept
        assert np.shares_memory(new, group.params)
    assert group.params.size == sum(p.size for p in after)
    for layer in model.walk():
        for grad in layer.grads.values():
            assert np.shares_memory(grad, group.grads)
    model.layers[-1].grads["W"][...] = 1.0
    optimizer.zero_grad()
    assert not group.grads.any()
    for moment in ("m", "v"):
        assert all(np.shares_memory(s[moment], group.state[moment]) for s in optimizer.state)


def test_two_dtypes_make_two_buffers():
    layers = [Dense(3, 2, dtype=np.float32), Dense(2, 2, dtype=np.float64)]
    groups = Adam(layers, lr=0.01).flat_groups()
    assert sorted(g.params.dtype.name for g in groups) == ["float32", "float64"]


def test_rebinding_a_parameter_flattens_again_and_keeps_the_moments():
    model = make_model()
    optimizer = Adam([model], lr=0.01)
    train(model, optimizer, steps=2)
    moments = [s["m"].copy() for s in optimizer.state]
    model.astype(np.float64)  # rebinds every parameter and gradient
    (group,) = optimizer.flat_groups()
    assert group.params.dtype == np.float64
    assert all(np.shares_memory(p, group.params) for p in model.layers[0].params.values())
    for old, state in zip(moments, optimizer.state, strict=True):
        assert state["m"].dtype == np.float64
        np.testing.assert_array_equal(state["m"], old)


def test_checkpoint_round_trip_writes_into_the_views():
    model, other = make_model(), make_model()
    optimizer, other_optimizer = Adam([model], lr=0.01), Adam([other], lr=0.01)
    train(model, optimizer)
    (group,) = other_optimizer.flat_groups()
    other.load_state_dict(model.state_dict())
    other_optimizer.load_state_dict(optimizer.state_dict())
    assert other_optimizer.flat_groups()[0] is group  # loaded in place: still the same buffers
    assert set(optimizer.state_dict()) >= {"0.m", "0.v", "5.m"}  # per-parameter keys, as before
    for a, b in zip(train(model, optimizer), train(other, other_optimizer), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_tied_weight_keeps_the_per_parameter_path():
    first, second = Dense(2, 2), Dense(2, 2)
    second.params["W"] = first.params["W"]
    optimizer = SGD([first, second], lr=0.1)
    assert optimizer.flat_groups() is None
    first.grads["W"][...] = 1.0
    second.grads["W"][...] = 1.0
    before = first.params["W"].copy()
    optimizer.step()
    # once per use: p - 0.1 * g - 0.1 * g, lr rounded, a product and a subtraction each time
    exact = before.astype(np.float64) - 0.2
    assert_within_rounding(first.params["W"], exact, abs(before) + 0.2, 6)
    assert second.params["W"] is first.params["W"]


def test_moving_to_a_device_flattens_there(device):
    # The conv bias before BatchNorm has a gradient of rounding noise alone, which Adam amplifies
    # to a whole step of either sign: only the same arithmetic gives the same parameters. The
    # emulated device runs the CPU's NumPy operations, in the same order: the same bits. A GPU sums
    # in other orders: there every call of the step is checked against the plain function in
    # float64 from the same arguments, within its rounding bound (tinygan.rounding).
    overrides.set_kernels("reference")
    model = make_model()
    optimizer = Adam([model], lr=0.01)
    reference = make_model()
    expected = train(reference, Adam([reference], lr=0.01))
    model.to(device)
    optimizer.to(device)
    with recording_calls("gpu") as calls:
        got = train(model, optimizer)
    (group,) = optimizer.flat_groups()
    assert device_of(group.params) == device and device_of(group.state["m"]) == device
    if device == "gpu":
        assert "adam_update" in {call.name for call in calls}
        for call in calls:
            call.check()
    else:
        for a, b in zip(got, expected, strict=True):
            np.testing.assert_array_equal(a, b)
