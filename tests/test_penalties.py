"""Gradient penalties by double backpropagation: the penalties' own derivatives, their parameter
gradients through whole discriminators against central differences of the penalty itself (float64),
the refusal of layers without a second pass, and PyTorch's ``create_graph`` autograd."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from tinygan.backend import to_device, to_numpy
from tinygan.gradcheck import numerical_gradient, rel_error
from tinygan.nn import (
    BatchNorm,
    Conv2D,
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
)
from tinygan.penalties import (
    PENALTIES,
    gradient_penalty,
    interpolates,
    penalty_backward,
    r1,
    wgan_gp,
)

TOLERANCE = 1e-6
PENALTY_FUNCTIONS = {"wgan-gp": wgan_gp, "r1": r1}


def randomised(network: Layer, seed: int) -> Layer:
    """``network`` in float64 with every parameter drawn N(0, 0.7^2), biases included (zero biases
    would hide a missing bias gradient)."""
    rng = np.random.default_rng(seed)
    network.astype(np.float64)
    for layer in network.walk():
        for value in layer.params.values():
            value[...] = 0.7 * rng.standard_normal(value.shape)
    return network


def mlp_critic(spectral: bool) -> Sequential:
    rng = np.random.default_rng(0)
    dense = SpectralDense if spectral else Dense
    return randomised(
        Sequential(
            Dense(3, 8, rng=rng),
            Tanh(),
            Maxout(8, 5, 3, rng=rng),
            LeakyReLU(0.2),
            Dropout(0.3, rng=np.random.default_rng(1)),
            dense(5, 4, rng=rng),
            Sigmoid(),
            MinibatchStd(),
            Dense(5, 1, rng=rng),
        ),
        seed=2,
    )


def conv_critic(spectral: bool) -> Sequential:
    rng = np.random.default_rng(3)
    conv = SpectralConv2D if spectral else Conv2D
    return randomised(
        Sequential(
            Reshape((1, 6, 6)),
            Conv2D(1, 3, 3, padding=1, rng=rng),
            LeakyReLU(0.2),
            MaxPool2D(2),
            conv(3, 4, 2, rng=rng),
            Tanh(),
            Flatten(),
            Dropout(0.25, rng=np.random.default_rng(4)),
            Dense(16, 1, rng=rng),
        ),
        seed=5,
    )


def reseed_dropout(network: Layer) -> Callable[[], None]:
    """A function that gives every Dropout layer of ``network`` the same generator again, so that
    each evaluation draws the masks of the first."""
    layers = [layer for layer in network.walk() if isinstance(layer, Dropout)]

    def reseed() -> None:
        for index, layer in enumerate(layers):
            layer.rng = np.random.default_rng(100 + index)

    return reseed


def penalty_only(network: Layer, points: Any, penalty: Callable, training: bool) -> float:
    """The penalty's value alone: forward, input gradient, penalty; no parameter gradient."""
    y, cache = network.forward(points, training=training)
    g, _ = network.input_gradient(np.ones_like(y), cache)
    return float(penalty(g)[0])


CRITICS = {"mlp": mlp_critic, "conv": conv_critic}


@pytest.mark.parametrize("kind", PENALTIES)
@pytest.mark.parametrize("spectral", [False, True], ids=["plain", "spectral"])
@pytest.mark.parametrize("critic", sorted(CRITICS))
def test_penalty_gradient_matches_central_differences_of_the_penalty(critic, spectral, kind):
    """Plain critics train with their dropout masks held; spectrally normalised ones are checked
    in evaluation mode, where the power-iteration vectors are constants."""
    network = CRITICS[critic](spectral)
    training = not spectral
    reseed = reseed_dropout(network)
    rng = np.random.default_rng(6)
    points = rng.uniform(-1, 1, size=(5, 3 if critic == "mlp" else 36))
    penalty = PENALTY_FUNCTIONS[kind]
    network.zero_grad()
    reseed()
    value, _ = penalty_backward(network, points, penalty, training=training)

    def evaluate() -> float:
        reseed()
        return penalty_only(network, points, penalty, training)

    assert abs(float(value) - evaluate()) <= 1e-15 * abs(float(value))
    errors = {}
    for path, layer in network.named_layers():
        for name, param in layer.params.items():
            errors[f"{path}{name}"] = rel_error(
                layer.grads[name], numerical_gradient(evaluate, param)
            )
    worst = max(errors, key=errors.get)
    assert errors[worst] <= TOLERANCE, f"{worst}: {errors[worst]:.2e} in {errors}"
    # every weight is reached; the last bias never is (no input gradient depends on it)
    assert all(layer.grads["W"].any() for layer in network.walk() if "W" in layer.grads)
    assert not network[-1].grads["b"].any()


@pytest.mark.parametrize("kind", PENALTIES)
def test_penalties_derivatives_match_central_differences(kind):
    g = np.random.default_rng(7).standard_normal((4, 2, 3))
    g[2] = 0  # WGAN-GP's norm has no derivative at a zero gradient: it takes 0 there
    penalty = PENALTY_FUNCTIONS[kind]
    value, dg = penalty(g, 3.0)
    assert dg.shape == g.shape and np.ndim(value) == 0
    numeric = numerical_gradient(lambda: penalty(g, 3.0)[0], g)
    if kind == "wgan-gp":
        assert not dg[2].any()
        dg, numeric = np.delete(dg, 2, axis=0), np.delete(numeric, 2, axis=0)
    assert rel_error(dg, numeric) < 1e-8


def test_a_linear_critic_by_hand():
    """D(x) = x w: every sample's gradient is w, so WGAN-GP is lambda (|w| - 1)^2 with the gradient
    2 lambda (|w| - 1) w / |w|, and R1 is gamma/2 |w|^2 with the gradient gamma w."""
    w = np.array([[0.6], [-1.2], [0.4]])
    norm = np.linalg.norm(w)
    x = np.random.default_rng(8).standard_normal((6, 3))
    for kind, expected_value, expected_grad in (
        ("wgan-gp", 10 * (norm - 1) ** 2, 20 * (norm - 1) * w / norm),
        ("r1", 5 * norm**2, 10 * w),
    ):
        critic = Dense(3, 1, dtype=np.float64)
        critic.params["W"][...] = w
        value, g = penalty_backward(critic, x, lambda g, kind=kind: PENALTY_FUNCTIONS[kind](g))
        np.testing.assert_allclose(g, np.tile(w.T, (6, 1)), rtol=1e-15)
        assert abs(float(value) - expected_value) < 1e-13
        np.testing.assert_allclose(critic.grads["W"], expected_grad, rtol=1e-13)
        assert not critic.grads["b"].any()


def test_interpolates_lie_on_the_segments_one_weight_per_sample():
    rng = np.random.default_rng(9)
    real, fake = rng.standard_normal((8, 2, 3, 3)), rng.standard_normal((8, 2, 3, 3))
    points = interpolates(real, fake, np.random.default_rng(10))
    eps = np.random.default_rng(10).random((8, 1, 1, 1))
    np.testing.assert_allclose(points, eps * real + (1 - eps) * fake, rtol=1e-15)
    assert np.unique(eps).size == 8 and eps.min() >= 0 and eps.max() < 1
    assert interpolates(real.astype(np.float32), fake.astype(np.float32), rng).dtype == np.float32
    with pytest.raises(ValueError, match=r"^interpolates: real \(8, 2, 3, 3\) and fake \(8, 18\)"):
        interpolates(real, fake.reshape(8, -1), rng)


def test_gradient_penalty_by_name():
    critic = mlp_critic(spectral=False)
    rng = np.random.default_rng(11)
    real, fake = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    reseed = reseed_dropout(critic)
    results = {}
    for how in ("by name", "by hand"):
        critic.zero_grad()
        reseed()
        if how == "by name":
            value = gradient_penalty(critic, real, fake, rng=np.random.default_rng(12))
        else:
            points = interpolates(real, fake, np.random.default_rng(12))
            value, _ = penalty_backward(critic, points, wgan_gp)  # lambda = 10 by default
        results[how] = [float(value)] + [
            g.copy() for lay in critic.walk() for g in lay.grads.values()
        ]
    for by_name, by_hand in zip(results["by name"], results["by hand"], strict=True):
        np.testing.assert_array_equal(by_name, by_hand)
    # R1 at the real batch; a fake batch given to it is not used
    critic.zero_grad()
    reseed()
    value = gradient_penalty(critic, real, fake, kind="r1", weight=2.0)
    reseed()
    assert float(value) == penalty_only(critic, real, lambda g: r1(g, 2.0), training=True)


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"kind": "gp"}, r"^kind must be one of \('wgan-gp', 'r1'\), got 'gp'$"),
        ({"fake": None}, r"^gradient_penalty: kind 'wgan-gp' needs the fake batch and an rng$"),
        ({"rng": None}, r"^gradient_penalty: kind 'wgan-gp' needs the fake batch and an rng$"),
        ({"weight": -1.0}, r"^gradient_penalty: weight must be a number >= 0, got -1\.0$"),
        ({"weight": "10"}, r"^gradient_penalty: weight must be a number >= 0, got '10'$"),
    ],
)
def test_gradient_penalty_refuses_bad_arguments(arguments, message):
    real = np.zeros((2, 3))
    call = {"fake": real, "rng": np.random.default_rng(0), **arguments}
    with pytest.raises(ValueError, match=message):
        gradient_penalty(Dense(3, 1), real, **call)


def test_a_layer_without_a_second_pass_is_refused_naming_it():
    critic = Sequential(Dense(3, 4), Sequential(ReLU(), BatchNorm(4)), Dense(4, 1))
    real = np.ones((4, 3), dtype=np.float32)
    with pytest.raises(ValueError) as info:
        gradient_penalty(critic, real, real, rng=np.random.default_rng(0))
    assert str(info.value) == (
        "a gradient penalty needs the derivative of every layer's backward pass, and layer 1.1 "
        "of the discriminator, BatchNorm, has none"
    )
    assert not any(g.any() for layer in critic.walk() for g in layer.grads.values())
    with pytest.raises(ValueError, match=r"and the discriminator, BatchNorm, has none$"):
        penalty_backward(BatchNorm(3), real, r1)


def test_the_points_are_constants_and_d_is_left_as_it_was():
    critic = mlp_critic(spectral=False)
    points = np.random.default_rng(13).standard_normal((5, 3))
    before = points.copy()
    params = [v.copy() for layer in critic.walk() for v in layer.params.values()]
    reseed = reseed_dropout(critic)
    reseed()
    _, g = penalty_backward(critic, points, r1)
    np.testing.assert_array_equal(points, before)
    for old, layer_param in zip(
        params, [v for layer in critic.walk() for v in layer.params.values()], strict=True
    ):
        np.testing.assert_array_equal(old, layer_param)
    reseed()
    y, cache = critic.forward(points)
    np.testing.assert_array_equal(g, critic.backward(np.ones_like(y), cache, param_grads=False))


def test_a_device_matches_the_cpu(device):
    points = np.random.default_rng(14).standard_normal((4, 36))
    results = []
    for where in ("cpu", device):
        critic = conv_critic(spectral=True).to(where)
        value, g = penalty_backward(critic, to_device(points, where), wgan_gp, training=False)
        grads = [to_numpy(v) for layer in critic.walk() for v in layer.grads.values()]
        results.append([np.asarray(to_numpy(value)), to_numpy(g), *grads])
    for cpu, other in zip(*results, strict=True):
        np.testing.assert_allclose(other, cpu, rtol=1e-12, atol=1e-14)


# -- PyTorch: autograd through its own backward graph ----------------------------------------------


def torch_twin(network: Sequential, torch: Any) -> tuple[Callable, dict[str, Any]]:
    """A function computing ``network`` in PyTorch from leaf tensors of its parameters (float64),
    for the layers the parity networks use, and those tensors by dotted path."""
    F = torch.nn.functional
    leaves = {
        f"{path}{name}": torch.tensor(value, requires_grad=True)
        for path, layer in network.named_layers()
        for name, value in layer.params.items()
    }

    def run(x: Any) -> Any:
        for index, layer in enumerate(network.layers):
            W, b = leaves.get(f"{index}.W"), leaves.get(f"{index}.b")
            if isinstance(layer, Dense):
                x = x @ W + b
            elif isinstance(layer, Conv2D):
                x = F.conv2d(x, W, b, stride=layer.stride, padding=layer.padding)
            elif isinstance(layer, LeakyReLU):
                x = F.leaky_relu(x, layer.alpha)
            elif isinstance(layer, Reshape):
                x = x.reshape(x.shape[0], *layer.shape)
            else:
                x = {Tanh: torch.tanh, Sigmoid: torch.sigmoid}[type(layer)](x)
        return x

    return run, leaves


PARITY_NETWORKS = {
    "mlp": lambda: Sequential(
        Dense(4, 6), Tanh(), Dense(6, 5), LeakyReLU(0.2), Dense(5, 3), Sigmoid(), Dense(3, 1)
    ),
    "conv": lambda: Sequential(
        Conv2D(2, 3, 3, padding=1),
        LeakyReLU(0.2),
        Conv2D(3, 2, 2, stride=2),
        Tanh(),
        Reshape((8,)),
        Dense(8, 1),
    ),
}


@pytest.mark.parametrize("kind", PENALTIES)
@pytest.mark.parametrize("name", sorted(PARITY_NETWORKS))
def test_matches_torch_autograd_with_create_graph(name, kind):
    torch = pytest.importorskip("torch")
    network = randomised(PARITY_NETWORKS[name](), seed=15)
    shape = (5, 4) if name == "mlp" else (3, 2, 4, 4)
    points = np.random.default_rng(16).standard_normal(shape)
    value, g = penalty_backward(network, points, PENALTY_FUNCTIONS[kind])

    run, leaves = torch_twin(network, torch)
    x = torch.tensor(points, requires_grad=True)
    (g_t,) = torch.autograd.grad(run(x).sum(), x, create_graph=True)
    norms = g_t.flatten(1).norm(dim=1)
    if kind == "wgan-gp":
        value_t = 10 * ((norms - 1) ** 2).mean()
    else:
        value_t = 10 / 2 * (norms**2).mean()
    value_t.backward()

    # float64 throughout: both sides agree to rounding, a few hundred operations deep
    tol = 1e-11
    assert rel_error(g, g_t.detach().numpy()) < tol
    assert abs(float(value) - value_t.item()) < tol * abs(value_t.item())
    for path, layer in network.named_layers():
        for key in layer.params:
            grad = leaves[f"{path}{key}"].grad  # None where the penalty does not depend on it
            expected = np.zeros_like(layer.grads[key]) if grad is None else grad.numpy()
            assert rel_error(layer.grads[key], expected) < tol, path + key


def r1_gradients_and_float32_bounds(
    x: np.ndarray, W1: np.ndarray, b1: np.ndarray, W2: np.ndarray, gamma: float
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """R1's parameter gradients for ``D(x) = tanh(x W1 + b1) W2 + b2``, exact (float64, from
    float32 inputs), each with a bound on the error of any float32 evaluation of the same steps.

    A running error analysis, to first order, with u = 2^-24 and gamma_n = n u / (1 - n u): a
    computed sum of n products differs from the exact one by at most gamma_n times the sum of the
    products' absolute values, plus the errors its factors carry, weighted by the other factors.
    The library tanh is taken to be within 4 ulp. The steps (those of the module docstring of
    tinygan.penalties, with a Tanh in the middle):

        a = x W1 + b1,  y = tanh(a),  t = 1 - y^2,  dh2 = 1 W2^T,  dh1 = t dh2,  g = dh1 W1^T,
        v = (gamma / N) g,  w = v W1,  u_a = -2 y t dh2 w,
        dW1 = v^T dh1 + x^T u_a,  db1 = sum_n u_a,  dW2 = (t w)^T 1.
    """
    unit = 2.0**-24

    def g_(n: int) -> float:
        return n * unit / (1 - n * unit)

    n, d = x.shape
    h = W1.shape[1]
    ax, aW1 = np.abs(x), np.abs(W1)
    a = x @ W1 + b1
    e_a = g_(d + 1) * (ax @ aW1 + np.abs(b1))
    y = np.tanh(a)
    t = 1 - y * y
    e_y = t * e_a + 4 * unit * np.abs(y)
    e_t = 2 * np.abs(y) * e_y + g_(2) * (1 + y * y)
    dh2 = np.ones((n, 1)) @ W2.T  # one product per entry: exact
    dh1 = t * dh2
    e_dh1 = np.abs(dh2) * e_t + unit * np.abs(dh1)
    g = dh1 @ W1.T
    e_g = e_dh1 @ aW1.T + g_(h) * np.abs(dh1) @ aW1.T
    scale = gamma / n
    v = scale * g
    e_v = scale * e_g + unit * np.abs(v)
    w = v @ W1
    e_w = e_v @ aW1 + g_(d) * np.abs(v) @ aW1
    fpp = -2 * y * t
    e_fpp = 2 * (e_y * t + np.abs(y) * e_t) + g_(3) * np.abs(fpp)
    u_a = fpp * dh2 * w
    e_ua = e_fpp * np.abs(dh2 * w) + np.abs(fpp * dh2) * e_w + g_(2) * np.abs(u_a)
    first = v.T @ dh1
    e_first = e_v.T @ np.abs(dh1) + np.abs(v).T @ e_dh1 + g_(n) * np.abs(v).T @ np.abs(dh1)
    second = x.T @ u_a
    e_second = ax.T @ e_ua + g_(n) * ax.T @ np.abs(u_a)
    dW1 = first + second
    e_dW1 = e_first + e_second + unit * (np.abs(first) + np.abs(second))
    tw = t * w
    e_tw = e_t * np.abs(w) + t * e_w + unit * np.abs(tw)
    return {
        "0.W": (dW1, e_dW1),
        "0.b": (u_a.sum(axis=0), e_ua.sum(axis=0) + g_(n) * np.abs(u_a).sum(axis=0)),
        "2.W": (
            tw.sum(axis=0)[:, None],
            (e_tw.sum(axis=0) + g_(n) * np.abs(tw).sum(axis=0))[:, None],
        ),
    }


def test_float32_matches_torch_within_a_bound_derived_from_the_computation():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(17)
    network = Sequential(Dense(4, 6, rng=rng), Tanh(), Dense(6, 1, rng=rng))  # float32
    network[0].params["b"][...] = rng.standard_normal(6)
    x = rng.standard_normal((8, 4)).astype(np.float32)
    penalty_backward(network, x, r1)  # gamma = 10

    run, leaves = torch_twin(network, torch)
    x_t = torch.tensor(x, requires_grad=True)
    (g_t,) = torch.autograd.grad(run(x_t).sum(), x_t, create_graph=True)
    (10 / 2 * (g_t.flatten(1).norm(dim=1) ** 2).mean()).backward()

    W1, b1, W2 = (
        network[i].params[k].astype(np.float64) for i, k in ((0, "W"), (0, "b"), (2, "W"))
    )
    exact = r1_gradients_and_float32_bounds(x.astype(np.float64), W1, b1, W2, 10.0)
    for key, (value, bound) in exact.items():
        layer, name = network[int(key[0])], key[2:]
        ours, theirs = layer.grads[name], leaves[key].grad.numpy()
        # a factor 2 over the first-order bound, for second-order terms and for the order in
        # which each side multiplies the elementwise factors
        assert np.all(np.abs(ours - value) <= 2 * bound), key
        assert np.all(np.abs(theirs - value) <= 2 * bound), key
        assert np.all(np.abs(ours - theirs) <= 4 * bound), key
        assert bound.max() < 1e-4 * np.abs(value).max()  # a bound that can still catch a slip
    assert not network[2].grads["b"].any() and leaves["2.b"].grad is None
