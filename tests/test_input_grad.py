"""``backward(..., input_grad=False)``: the same parameter gradients, no input gradient."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import KERNEL_SETS

from tinygan import overrides
from tinygan.gradcheck import check_layer
from tinygan.models import get_preset
from tinygan.nn import (
    BatchNorm,
    Conv2D,
    ConvTranspose2D,
    Dense,
    Dropout,
    Flatten,
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
from tinygan.nn.layer import Layer


def layer_cases() -> list[tuple[str, Any, tuple[int, ...]]]:
    """``(name, factory, input shape)`` for every kind of layer, built in float64."""
    f64 = {"dtype": np.float64}
    return [
        ("dense", lambda: Dense(5, 3, **f64), (4, 5)),
        ("dense-no-bias", lambda: Dense(5, 3, bias=False, **f64), (4, 5)),
        ("conv", lambda: Conv2D(2, 3, 3, stride=2, padding="same", **f64), (2, 2, 7, 6)),
        (
            "conv-transpose",
            lambda: ConvTranspose2D(2, 3, 4, stride=2, padding=1, **f64),
            (2, 2, 3, 4),
        ),
        ("batchnorm", lambda: BatchNorm(3, dtype=np.float64), (4, 3, 2, 2)),
        ("relu", ReLU, (3, 4)),
        ("leaky-relu", LeakyReLU, (3, 4)),
        ("sigmoid", Sigmoid, (3, 4)),
        ("tanh", Tanh, (3, 4)),
        ("dropout", lambda: Dropout(0.5, rng=np.random.default_rng(3)), (3, 4)),
        ("maxpool", lambda: MaxPool2D(2, 2), (2, 1, 4, 4)),
        ("upsampling", lambda: UpSampling2D(2), (2, 1, 2, 3)),
        ("reshape", lambda: Reshape((2, 2)), (3, 4)),
        ("flatten", Flatten, (2, 1, 2, 3)),
        ("maxout", lambda: Maxout(5, 3, 4, **f64), (4, 5)),
        ("minibatch-std", MinibatchStd, (3, 2, 2, 2)),
        ("spectral-dense", lambda: SpectralDense(5, 3, **f64), (4, 5)),
        (
            "spectral-conv",
            lambda: SpectralConv2D(2, 3, 3, stride=2, padding=1, **f64),
            (2, 2, 5, 6),
        ),
        (
            "sequential",
            lambda: Sequential(
                Reshape((1, 4, 4)),
                Conv2D(1, 2, 3, padding=1, **f64),
                LeakyReLU(),
                Flatten(),
                Dense(32, 1, **f64),
            ),
            (3, 16),
        ),
    ]


CASES = layer_cases()


@pytest.fixture(autouse=True)
def restore_kernels() -> Any:
    before = overrides.active_kernels()
    yield
    overrides.set_kernels(before)


def run_backward(layer: Layer, x: np.ndarray, **flags: bool) -> tuple[Any, list[np.ndarray]]:
    """``layer.backward``'s result and the parameter gradients it adds, from zero gradients.

    The layer's buffers are restored afterwards, so the next run starts from the same state: a
    spectrally normalised layer takes a power-iteration step in each training forward pass.
    """
    state = layer.state_dict()
    y, cache = layer.forward(x, training=True)
    dy = np.random.default_rng(1).standard_normal(y.shape)
    layer.zero_grad()
    dx = layer.backward(dy, cache, **flags)
    layer.load_state_dict(state)
    return dx, [g.copy() for sub in layer.walk() for g in sub.grads.values()]


@pytest.mark.parametrize(("name", "make", "shape"), CASES, ids=[case[0] for case in CASES])
@pytest.mark.parametrize("kernels", KERNEL_SETS)
def test_parameter_gradients_do_not_depend_on_input_grad(name, make, shape, kernels):
    assert overrides.set_kernels(kernels) == kernels
    x = np.random.default_rng(0).standard_normal(shape)
    layer = make()
    dx, grads = run_backward(layer, x)
    skipped, skipped_grads = run_backward(layer, x, input_grad=False)
    assert dx is not None and skipped is None
    for full, partial in zip(grads, skipped_grads, strict=True):
        np.testing.assert_array_equal(partial, full)
    # Both flags off: nothing to compute, nothing added.
    nothing, untouched = run_backward(layer, x, param_grads=False, input_grad=False)
    assert nothing is None and not any(g.any() for g in untouched)


def test_sequential_skips_the_children_below_its_first_parameters():
    calls: list[tuple[str, bool]] = []

    class Spy(Layer):
        """A parameterless identity that records the ``input_grad`` it was asked for."""

        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

        def forward(self, x: np.ndarray, training: bool = True) -> tuple[np.ndarray, None]:
            return x, None

        def backward(
            self, dy: Any, cache: Any, param_grads: bool = True, input_grad: bool = True
        ) -> Any:
            calls.append((self.name, input_grad))
            return dy if input_grad else None

    model = Sequential(Spy("a"), Sequential(Spy("b"), Dense(3, 2)), Spy("c"))
    y, cache = model.forward(np.ones((2, 3), dtype=np.float32))
    assert model.backward(np.ones_like(y), cache, input_grad=False) is None
    assert calls == [("c", True)]  # "a" and "b" never run, the Dense gives no dx
    calls.clear()
    model.backward(np.ones_like(y), cache)
    assert calls == [("c", True), ("b", True), ("a", True)]
    calls.clear()
    assert model.backward(np.ones_like(y), cache, param_grads=False, input_grad=False) is None
    assert calls == []


@pytest.mark.parametrize(("name", "make", "shape"), CASES[:5], ids=[c[0] for c in CASES[:5]])
def test_gradient_checks_are_unchanged(name, make, shape):
    x = np.random.default_rng(4).standard_normal(shape)
    errors = check_layer(make(), x)
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("preset_name", ["000", "003"])
def test_a_gan_step_matches_one_that_computes_every_input_gradient(preset_name):
    """The GAN asks its networks for no input gradient; asking for all of them changes nothing."""
    preset = get_preset(preset_name)
    real = np.random.default_rng(2).random((4, *preset.data_shape), dtype=np.float32)
    runs = []
    for wanted in (False, True):
        gan = preset.make_gan(np.random.default_rng(0), np.random.default_rng(1))
        if wanted:
            for network in (gan.generator, gan.discriminator):
                network.backward = always_input_grad(network)
        stats = gan.train_step(lambda: real)
        networks = (gan.generator, gan.discriminator)
        state = [
            v.copy() for net in networks for layer in net.walk() for v in layer.params.values()
        ]
        state += [
            v.copy() for net in networks for layer in net.walk() for v in layer.grads.values()
        ]
        runs.append((stats.as_floats(), state))
    (stats_a, state_a), (stats_b, state_b) = runs
    assert stats_a == stats_b
    for a, b in zip(state_a, state_b, strict=True):
        np.testing.assert_array_equal(a, b)


def always_input_grad(network: Layer) -> Any:
    """``network.backward`` with ``input_grad`` forced on (the behaviour before the flag)."""
    backward = network.backward

    def wrapper(dy: Any, cache: Any, param_grads: bool = True, input_grad: bool = True) -> Any:
        dx = backward(dy, cache, param_grads=param_grads, input_grad=True)
        assert dx is not None
        return dx if input_grad else None

    return wrapper
