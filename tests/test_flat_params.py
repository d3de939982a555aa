"""The optimizers' fast path (tinygan.kernels.flat): one buffer per dtype, the layers holding views,
registered with the kernels and off without them, and the numbers of the per-parameter rule."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import KERNEL_SETS

from tinygan import optim, overrides
from tinygan.backend import device_of, get_array_module, to_numpy
from tinygan.nn import BatchNorm, Conv2D, Dense, Flatten, LeakyReLU, Sequential
from tinygan.optim import SGD, Adam, Optimizer, RMSprop
from tinygan.rounding import (
    assert_matches_plain,
    assert_within_rounding,
    recording_calls,
    results_of,
)

flat = pytest.importorskip("tinygan.kernels.flat")

LOOPS = ("update_parameters", "zero_gradients")


@pytest.fixture(autouse=True)
def restore_kernels() -> Any:
    before = overrides.active_kernels()
    yield
    overrides.set_kernels(before)


def use_flat_buffers(on: bool) -> None:
    """Run the optimizers' loops over flat buffers (``on``) or one parameter at a time, whatever
    the kernel set (which still chooses the update rules' kernels)."""
    for name in LOOPS:
        overrides.register(name, "any", getattr(flat, name) if on else overrides.plain(name))


def make_model(dtype: Any = np.float32) -> Sequential:
    rng = np.random.default_rng(0)
    return Sequential(
        Conv2D(1, 2, 3, padding=1, rng=rng, dtype=dtype),
        BatchNorm(2, dtype=dtype),
        LeakyReLU(),
        Flatten(),
        Dense(32, 3, rng=rng, dtype=dtype),
    )


def model_params(model: Sequential) -> list[Any]:
    return [p for layer in model.walk() for p in layer.params.values()]


OPTIMIZERS = {
    "adam": lambda layers: Adam(layers, lr=0.01),
    "rmsprop": lambda layers: RMSprop(layers, lr=0.01),
    "sgd": lambda layers: SGD(layers, lr=0.01),
    "sgd-momentum": lambda layers: SGD(layers, lr=0.01, momentum=0.9),
}


def train(model: Sequential, optimizer: Optimizer, steps: int = 3) -> list[np.ndarray]:
    xp = get_array_module(next(iter(model.layers[0].params.values())))
    rng = np.random.default_rng(5)
    for _ in range(steps):
        x = xp.asarray(rng.standard_normal((4, 1, 4, 4)).astype(np.float32))
        y, cache = model.forward(x)
        optimizer.zero_grad()
        model.backward(xp.asarray(rng.standard_normal(y.shape).astype(np.float32)), cache)
        optimizer.step()
    return [to_numpy(p) for p in model_params(model)]


def in_one_buffer(model: Sequential) -> bool:
    """Whether every parameter of ``model`` is a view of one and the same array."""
    homes = {id(p.base) if p.base is not None else id(p) for p in model_params(model)}
    return len(homes) == 1


@pytest.mark.parametrize("kernels", KERNEL_SETS)
def test_the_flat_buffers_come_with_the_kernels_and_go_without_them(kernels):
    assert overrides.set_kernels(kernels) == kernels
    for name in LOOPS:
        registered = overrides.replacement(name, "any")
        assert registered is (getattr(flat, name) if kernels == "numba" else None)
    model = make_model()
    train(model, Adam([model], lr=0.01), steps=1)
    assert in_one_buffer(model) == (kernels == "numba")


@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("kernels", KERNEL_SETS)
def test_flat_updates_equal_per_parameter_updates(name, kernels):
    """The same update rule (plain or kernel) over flat buffers and per parameter: the same bits,
    since every rule is elementwise."""
    assert overrides.set_kernels(kernels) == kernels
    flat_model, plain_model = make_model(), make_model()
    use_flat_buffers(True)
    flat_params = train(flat_model, OPTIMIZERS[name]([flat_model]))
    use_flat_buffers(False)
    plain_params = train(plain_model, OPTIMIZERS[name]([plain_model]))
    for a, b in zip(flat_params, plain_params, strict=True):
        np.testing.assert_array_equal(a, b)


def rule_call(optimizer: Optimizer, param: Any, grad: Any, state: dict[str, Any]) -> tuple:
    """The name and arguments of the call of ``optimizer``'s rule that its last step made for one
    parameter, given the parameter, gradient and state as they were before that step."""
    if isinstance(optimizer, Adam):
        settings = (optimizer.lr, optimizer.beta1, optimizer.beta2, optimizer.eps)
        args = (param, grad, state["m"], state["v"], *settings, optimizer.step_count)
        return "adam_update", args
    if isinstance(optimizer, RMSprop):
        return "rmsprop_update", (
            param,
            grad,
            state["v"],
            optimizer.lr,
            optimizer.rho,
            optimizer.eps,
        )
    velocity = state.get("velocity")
    return "sgd_update", (param, grad, velocity, optimizer.lr, optimizer.momentum)


def checked_steps(optimizer: Optimizer, steps: int = 3) -> None:
    """Train ``model`` for ``steps`` steps; after each, every parameter and state array must be
    what the plain rule computes in float64 from the values before the step, within the rounding
    bound of the rule (:func:`tinygan.rounding.assert_matches_plain`)."""
    rng = np.random.default_rng(7)
    for _ in range(steps):
        optimizer.zero_grad()
        for _, _, _, grad in optimizer.slots():
            grad += rng.standard_normal(grad.shape).astype(grad.dtype)
        before = [
            (param.copy(), grad.copy(), {k: v.copy() for k, v in state.items()})
            for (_, _, param, grad), state in zip(optimizer.slots(), optimizer.state, strict=True)
        ]
        optimizer.step()
        after = zip(optimizer.slots(), optimizer.state, strict=True)
        for values, ((_, _, param, grad), state) in zip(before, after, strict=True):
            name, args = rule_call(optimizer, *values)
            _, live = rule_call(optimizer, param, grad, state)
            assert_matches_plain(name, args, results_of(name, live, None), name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("kernels", KERNEL_SETS)
def test_both_paths_compute_the_plain_rule_within_rounding(kernels, name, dtype):
    """The fast path (flat buffers and fused kernels) and the plain one (the per-parameter rule in
    NumPy) each give every parameter what the rule computes in float64, within the rounding bound
    of the rule: so they agree with each other to twice that bound, float32 and float64 alike."""
    assert overrides.set_kernels(kernels) == kernels
    model = make_model(dtype)
    checked_steps(OPTIMIZERS[name]([model]))
    assert in_one_buffer(model) == (kernels == "numba")


def test_parameters_and_gradients_are_views_of_one_buffer_per_dtype():
    model = make_model()
    before = [p.copy() for p in model_params(model)]
    optimizer = Adam([model], lr=0.01)
    (group,) = flat.flat_groups(optimizer)
    after = model_params(model)
    for old, new in zip(before, after, strict=True):
        np.testing.assert_array_equal(old, new)  # values kept
        assert np.shares_memory(new, group.params)
    assert group.params.size == sum(p.size for p in after)
    for layer in model.walk():
        for grad in layer.grads.values():
            assert np.shares_memory(grad, group.grads)
    model.layers[-1].grads["W"][...] = 1.0
    flat.zero_gradients(optimizer)
    assert not group.grads.any()
    for moment in ("m", "v"):
        assert all(np.shares_memory(s[moment], group.state[moment]) for s in optimizer.state)


def test_two_dtypes_make_two_buffers():
    layers = [Dense(3, 2, dtype=np.float32), Dense(2, 2, dtype=np.float64)]
    groups = flat.flat_groups(Adam(layers, lr=0.01))
    assert sorted(g.params.dtype.name for g in groups) == ["float32", "float64"]


def test_rebinding_a_parameter_flattens_again_and_keeps_the_moments():
    use_flat_buffers(True)
    model = make_model()
    optimizer = Adam([model], lr=0.01)
    train(model, optimizer, steps=2)
    moments = [s["m"].copy() for s in optimizer.state]
    model.astype(np.float64)  # rebinds every parameter and gradient
    (group,) = flat.flat_groups(optimizer)
    assert group.params.dtype == np.float64
    assert all(np.shares_memory(p, group.params) for p in model.layers[0].params.values())
    for old, state in zip(moments, optimizer.state, strict=True):
        assert state["m"].dtype == np.float64
        np.testing.assert_array_equal(state["m"], old)


def test_rebinding_the_state_flattens_again():
    model = make_model()
    optimizer = Adam([model], lr=0.01)
    (group,) = flat.flat_groups(optimizer)
    optimizer.state[1]["m"] = np.full_like(optimizer.state[1]["m"], 3.0)  # as Optimizer.to does
    (again,) = flat.flat_groups(optimizer)
    assert again is not group
    assert all(np.shares_memory(s["m"], again.state["m"]) for s in optimizer.state)
    assert (optimizer.state[1]["m"] == 3.0).all() and not optimizer.state[0]["m"].any()


def test_checkpoint_round_trip_writes_into_the_views():
    use_flat_buffers(True)
    model, other = make_model(), make_model()
    optimizer, other_optimizer = Adam([model], lr=0.01), Adam([other], lr=0.01)
    train(model, optimizer)
    (group,) = flat.flat_groups(other_optimizer)
    other.load_state_dict(model.state_dict())
    other_optimizer.load_state_dict(optimizer.state_dict())
    assert flat.flat_groups(other_optimizer)[0] is group  # loaded in place: still the same buffers
    assert set(optimizer.state_dict()) >= {"0.m", "0.v", "5.m"}  # per-parameter keys, as before
    for a, b in zip(train(model, optimizer), train(other, other_optimizer), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_tied_weight_keeps_the_per_parameter_path():
    use_flat_buffers(True)
    first, second = Dense(2, 2), Dense(2, 2)
    second.params["W"] = first.params["W"]
    optimizer = SGD([first, second], lr=0.1)
    assert flat.flat_groups(optimizer) is None
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
    use_flat_buffers(True)
    model = make_model()
    optimizer = Adam([model], lr=0.01)
    reference = make_model()
    expected = train(reference, Adam([reference], lr=0.01))
    model.to(device)
    optimizer.to(device)
    with recording_calls("gpu") as calls:
        got = train(model, optimizer)
    (group,) = flat.flat_groups(optimizer)
    assert device_of(group.params) == device and device_of(group.state["m"]) == device
    if device == "gpu":
        assert "adam_update" in {call.name for call in calls}
        for call in calls:
            call.check()
    else:
        for a, b in zip(got, expected, strict=True):
            np.testing.assert_array_equal(a, b)


def test_the_plain_loops_are_the_specification():
    """What the fast path replaces: the rule once per parameter, the gradients zeroed one by one."""
    model = make_model()
    optimizer = SGD([model], lr=0.5)
    for _, _, _, grad in optimizer.slots():
        grad[...] = 2.0
    before = [param.copy() for _, _, param, _ in optimizer.slots()]
    optim.update_parameters.plain(optimizer)
    for old, (_, _, param, _) in zip(before, optimizer.slots(), strict=True):
        np.testing.assert_array_equal(param, old - np.float32(1.0))
    optim.zero_gradients.plain(optimizer)
    assert not any(grad.any() for _, _, _, grad in optimizer.slots())
