"""Every layer's second pass (the derivative of its backward pass) against central differences of
<v, backward(dy, x)> in float64, its refusals, and the containers that chain it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from tinygan.backend import make_rng, to_device, to_numpy
from tinygan.gradcheck import check_second_pass
from tinygan.nn import (
    BatchNorm,
    Conv2D,
    ConvTranspose2D,
    Dense,
    Dropout,
    Flatten,
    Layer,
    LeakyReLU,
    Maxout,
    MaxPool2D,
    MinibatchStd,
    ReLU,
    Reshape,
    Sequential,
    Sigmoid,
    SpectralConv2D,
    SpectralDense,
    Tanh,
    UpSampling2D,
)

TOLERANCE = 1e-7
F64 = {"dtype": np.float64}


def seeded(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def away_from_zero(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Values with |x| >= 0.1, so no finite-difference step crosses a ReLU's kink."""
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.1, 2.0, size=shape)


def smooth_mlp() -> Sequential:
    """Smooth layers between affine ones: the second passes return vectors on the activations,
    which the container sends back through the layers below."""
    rng = seeded(3)
    return Sequential(
        Dense(5, 6, rng=rng, **F64),
        Tanh(),
        Maxout(6, 4, 2, rng=rng, **F64),
        Sigmoid(),
        Sequential(MinibatchStd(), Dense(5, 3, rng=rng, **F64)),
        LeakyReLU(0.2),
        SpectralDense(3, 1, rng=rng, **F64),
    )


def small_conv() -> Sequential:
    rng = seeded(4)
    return Sequential(
        Reshape((1, 6, 6)),
        Conv2D(1, 2, 3, padding="same", rng=rng, **F64),
        Tanh(),
        MaxPool2D(2),
        SpectralConv2D(2, 3, 2, stride=1, rng=rng, **F64),
        LeakyReLU(0.2),
        MinibatchStd(),
        Flatten(),
        Dense(16, 1, rng=rng, **F64),
    )


# (name, factory, input shape, training); the factory takes the device.
CASES: list[tuple[str, Callable[[str], Layer], tuple[int, ...], bool]] = [
    ("dense", lambda d: Dense(5, 3, rng=seeded(0), **F64).to(d), (4, 5), True),
    ("dense-no-bias", lambda d: Dense(4, 2, bias=False, rng=seeded(0), **F64).to(d), (1, 4), True),
    (
        "conv",
        lambda d: Conv2D(2, 3, 3, stride=2, padding="same", rng=seeded(0), **F64).to(d),
        (2, 2, 7, 6),
        True,
    ),
    ("conv-1x1", lambda d: Conv2D(3, 2, 1, rng=seeded(0), **F64).to(d), (1, 3, 2, 3), True),
    ("relu", lambda d: ReLU(), (3, 4), True),
    ("leaky-relu", lambda d: LeakyReLU(0.2), (3, 2, 2, 2), True),
    ("sigmoid", lambda d: Sigmoid(), (3, 4), True),
    ("tanh", lambda d: Tanh(), (2, 3, 2, 2), True),
    ("dropout-eval", lambda d: Dropout(0.5, rng=make_rng(5, d)), (3, 4), False),
    ("reshape", lambda d: Reshape((2, 6)), (3, 12), True),
    ("flatten", lambda d: Flatten(), (2, 3, 2, 2), True),
    ("maxout", lambda d: Maxout(5, 3, 4, rng=seeded(0), **F64).to(d), (4, 5), True),
    ("minibatch-std", lambda d: MinibatchStd(), (6, 4), True),
    ("minibatch-std-images", lambda d: MinibatchStd(), (4, 2, 2, 3), True),
    ("maxpool", lambda d: MaxPool2D(2), (2, 2, 4, 5), True),
    ("maxpool-overlapping", lambda d: MaxPool2D(3, stride=2), (1, 2, 5, 5), True),
    # Evaluation mode holds the power-iteration vectors: the function being differentiated
    # is then exactly W / (u^T M v) with u and v constant.
    ("spectral-dense", lambda d: SpectralDense(5, 3, rng=seeded(0), **F64).to(d), (4, 5), False),
    (
        "spectral-conv",
        lambda d: SpectralConv2D(2, 3, 3, stride=2, padding=1, rng=seeded(0), **F64).to(d),
        (2, 2, 5, 6),
        False,
    ),
    ("smooth-mlp", lambda d: smooth_mlp().to(d), (6, 5), False),
    ("conv-network", lambda d: small_conv().to(d), (3, 36), False),
]


@pytest.mark.parametrize("name, make, shape, training", CASES, ids=[c[0] for c in CASES])
def test_second_pass_matches_central_differences(device, name, make, shape, training):
    rng = seeded(1)
    layer = make(device)
    x = to_device(away_from_zero(rng, shape), device)
    errors = check_second_pass(layer, x, rng, training=training)
    params = {f"{path}{key}" for path, sub in layer.named_layers() for key in sub.params}
    assert set(errors) == {"x", "dy"} | params
    worst = max(errors, key=errors.get)
    assert errors[worst] < TOLERANCE, f"{worst}: {errors[worst]:.2e} in {errors}"


def test_dropout_second_pass_with_its_mask_held():
    layer = Dropout(0.4, rng=make_rng(7))

    def same_mask() -> None:
        layer.rng = make_rng(7)

    errors = check_second_pass(layer, away_from_zero(seeded(2), (4, 6)), before_forward=same_mask)
    assert max(errors.values()) < TOLERANCE, errors


def test_a_piecewise_linear_network_sends_nothing_to_its_biases():
    """Dense, ReLU, Dense: the input gradient does not depend on the biases (away from kinks), so
    neither does anything computed from it; with a Tanh in the middle it does."""
    rng = seeded(5)
    for middle, biases_move in ((ReLU(), False), (Tanh(), True)):
        net = Sequential(Dense(3, 5, rng=rng, **F64), middle, Dense(5, 1, rng=rng, **F64))
        net[0].params["b"][...] = rng.standard_normal(5)
        x = away_from_zero(rng, (4, 3))
        y, cache = net.forward(x)
        g, kept = net.input_gradient(np.ones_like(y), cache)
        net.zero_grad()
        net.second_pass(rng.standard_normal(g.shape), cache, kept, input_grad=False)
        assert bool(net[0].grads["b"].any()) is biases_move
        assert not net[2].grads["b"].any()  # the last bias never reaches a gradient
        assert net[0].grads["W"].any() and net[2].grads["W"].any()


def test_input_gradient_is_the_backward_pass_without_parameter_gradients():
    net = smooth_mlp()
    x = seeded(6).standard_normal((5, 5))
    y, cache = net.forward(x)
    dy = seeded(7).standard_normal(y.shape)
    net.zero_grad()
    dx, kept = net.input_gradient(dy, cache)
    assert not any(g.any() for layer in net.walk() for g in layer.grads.values())
    np.testing.assert_array_equal(dx, net.backward(dy, cache, param_grads=False))
    assert isinstance(kept, list) and len(kept) == len(net)
    assert kept[-1] is dy  # a layer keeps the upstream gradient of the pass being differentiated


def test_input_grad_false_gives_no_vector_and_the_same_parameter_gradients():
    net = smooth_mlp()
    x = seeded(8).standard_normal((5, 5))
    y, cache = net.forward(x)
    g, kept = net.input_gradient(np.ones_like(y), cache)
    v = seeded(9).standard_normal(g.shape)
    grads = []
    for input_grad in (True, False):
        net.zero_grad()
        v_dy, v_x = net.second_pass(v, cache, kept, input_grad=input_grad)
        assert (v_x is not None) is input_grad
        grads.append([g.copy() for layer in net.walk() for g in layer.grads.values()])
    for full, partial in zip(*grads, strict=True):
        np.testing.assert_array_equal(full, partial)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_second_pass_keeps_the_dtype(dtype):
    net = Sequential(
        Dense(4, 3, rng=seeded(0)), Tanh(), MinibatchStd(), SpectralDense(4, 1, rng=seeded(1))
    ).astype(dtype)
    x = seeded(2).standard_normal((5, 4)).astype(dtype)
    y, cache = net.forward(x)
    g, kept = net.input_gradient(np.ones_like(y), cache)
    v_dy, v_x = net.second_pass(g, cache, kept)
    assert g.dtype == v_dy.dtype == v_x.dtype == dtype


def test_layers_without_a_second_pass_say_so():
    for layer in (BatchNorm(2), ConvTranspose2D(2, 2, 3), UpSampling2D(2)):
        assert not layer.has_second_pass
    for case in CASES:
        assert all(layer.has_second_pass for layer in case[1]("cpu").walk()), case[0]
    layer = BatchNorm(3)
    x = np.ones((4, 3), dtype=np.float32)
    y, cache = layer.forward(x)
    with pytest.raises(NotImplementedError, match=r"^BatchNorm has no second pass \(the deriv"):
        layer.second_pass(x, cache, y)


def test_second_pass_checks_its_arguments_naming_the_layer():
    layer = Dense(4, 3)
    x = np.zeros((2, 4), dtype=np.float32)
    y, cache = layer.forward(x)
    with pytest.raises(ValueError) as info:
        layer.second_pass(np.zeros((2, 5), dtype=np.float32), cache, y)
    assert str(info.value) == "Dense.second_pass expects v of the input's shape (2, 4), got (2, 5)"
    with pytest.raises(ValueError, match=r"^Dense\.second_pass expects dy of the output's shape"):
        layer.second_pass(x, cache, y[:, :2])
    with pytest.raises(TypeError, match=r"^Dense\.second_pass expects a floating-point array"):
        layer.second_pass(x.astype(np.int64), cache, y)
    with pytest.raises(TypeError, match=r"^Dense\.backward needs the cache that this layer's "):
        layer.second_pass(x, None, y)
    assert not layer.grads["W"].any()  # refused before any work
    net = Sequential(Dense(4, 3), Tanh(), Dense(3, 1))
    y, cache = net.forward(x)
    _, kept = net.input_gradient(np.ones_like(y), cache)
    with pytest.raises(ValueError, match=r"^Sequential\[1\] \(Tanh\(\)\): Tanh\.second_pass"):
        net.second_pass(x, cache, [kept[0], kept[1][:, :2], kept[2]])
    with pytest.raises(TypeError, match=r"what its input_gradient kept, a list of 3 entries"):
        net.second_pass(x, cache, kept[:2])


@pytest.mark.parametrize("name, make, shape, training", CASES[:4], ids=[c[0] for c in CASES[:4]])
def test_second_pass_on_a_device_matches_the_cpu(device, name, make, shape, training):
    x = away_from_zero(seeded(10), shape)
    results: list[Any] = []
    for where in ("cpu", device):
        layer = make(where)
        y, cache = layer.forward(to_device(x, where), training=training)
        g, kept = layer.input_gradient(to_device(np.ones(y.shape), where), cache)
        layer.zero_grad()
        v_dy, _ = layer.second_pass(to_device(np.cos(to_numpy(g)), where), cache, kept)
        results.append([to_numpy(v_dy)] + [to_numpy(v) for v in layer.grads.values()])
    for cpu, other in zip(*results, strict=True):
        np.testing.assert_allclose(other, cpu, rtol=1e-12, atol=1e-14)
