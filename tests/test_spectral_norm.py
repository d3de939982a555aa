"""Spectral normalisation: the power iteration, the backward pass through sigma (float64, u and v
held), the buffers (saved, resumed exactly, untouched in evaluation), devices, and PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

from tinygan.backend import to_device, to_numpy
from tinygan.gradcheck import check_layer, rel_error
from tinygan.nn import Conv2D, Dense, Sequential, SpectralConv2D, SpectralDense
from tinygan.nn.spectral_norm import normalize, power_iteration

F64 = {"dtype": np.float64}


def make_dense(device: str = "cpu") -> SpectralDense:
    return SpectralDense(6, 4, rng=np.random.default_rng(0), **F64).to(device)


def make_conv(device: str = "cpu") -> SpectralConv2D:
    layer = SpectralConv2D(2, 3, 3, stride=2, padding=1, rng=np.random.default_rng(0), **F64)
    return layer.to(device)


LAYERS = [(make_dense, (5, 6)), (make_conv, (2, 2, 7, 6))]
IDS = ["dense", "conv"]


def weight_matrix(layer: SpectralDense | SpectralConv2D) -> np.ndarray:
    """The matrix whose spectral norm the layer divides by: W.T (out, in), or (O, C * kh * kw)."""
    W = to_numpy(layer.params["W"])
    return W.T if W.ndim == 2 else W.reshape(W.shape[0], -1)


@pytest.mark.parametrize("make, shape", LAYERS, ids=IDS)
def test_power_iteration_finds_the_largest_singular_value(make, shape):
    layer = make()
    x = np.random.default_rng(1).standard_normal(shape)
    for _ in range(400):
        layer.forward(x)  # one step per training forward
    _, (_, state) = layer.forward(x)
    top = np.linalg.svd(weight_matrix(layer), compute_uv=False)[0]
    assert abs(float(state.sigma) - top) < 1e-9 * top
    normalised = state.weight.T if state.weight.ndim == 2 else state.weight.reshape(3, -1)
    assert abs(np.linalg.svd(normalised, compute_uv=False)[0] - 1) < 1e-9


@pytest.mark.parametrize("make, shape", LAYERS, ids=IDS)
def test_one_step_per_training_forward_and_none_in_evaluation(make, shape):
    layer = make()
    x = np.random.default_rng(2).standard_normal(shape)
    u0 = layer.buffers["u"].copy()
    y_eval, _ = layer.forward(x, training=False)
    np.testing.assert_array_equal(layer.buffers["u"], u0)  # evaluation takes no step
    M = weight_matrix(layer)
    u1, v1 = power_iteration(M, u0, 1e-12)
    y, (_, state) = layer.forward(x)
    np.testing.assert_allclose(layer.buffers["u"], u1, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(layer.buffers["v"], v1, rtol=1e-13, atol=1e-15)
    assert abs(float(state.sigma) - float(u1 @ M @ v1)) < 1e-13 * float(state.sigma)
    # evaluation now uses the stored vectors: the same sigma as the training forward
    y_again, (_, eval_state) = layer.forward(x, training=False)
    np.testing.assert_array_equal(y_again, y)
    assert float(eval_state.sigma) == float(state.sigma)
    assert not np.array_equal(y_eval, y)


@pytest.mark.parametrize("make, shape", LAYERS, ids=IDS)
def test_backward_through_sigma_matches_central_differences(make, shape):
    """Evaluation mode holds u and v, so the layer is exactly x -> layer(x; W / (u^T M v))."""
    rng = np.random.default_rng(3)
    layer = make()
    x = rng.standard_normal(shape)
    for _ in range(2):
        layer.forward(x)  # u and v away from their initial values, not converged either
    errors = check_layer(layer, x, rng, training=False)
    assert set(errors) == {"x", "W", "b"}
    assert max(errors.values()) < 1e-7, errors


@pytest.mark.parametrize("make, shape", LAYERS, ids=IDS)
def test_a_training_backward_uses_the_vectors_of_its_own_forward(make, shape):
    rng = np.random.default_rng(4)
    layer = make()
    x = rng.standard_normal(shape)
    y, cache = layer.forward(x)  # steps
    layer.forward(x)  # steps again: the first cache must not see it
    dy = rng.standard_normal(y.shape)
    layer.zero_grad()
    dx = layer.backward(dy, cache)
    grads = {k: v.copy() for k, v in layer.grads.items()}
    layer.zero_grad()
    _, held = layer.forward(x, training=False)  # the vectors after the second step
    layer.backward(dy, held)
    assert rel_error(layer.grads["W"], grads["W"]) > 1e-9  # another sigma, another gradient
    # the first cache's gradient is that of W / sigma with the first step's u and v held
    state = cache[1]
    M = weight_matrix(layer)
    assert abs(float(state.u @ M @ state.v) - float(state.sigma)) < 1e-13 * float(state.sigma)
    assert dx.shape == x.shape


def test_the_gradient_by_hand_for_a_diagonal_weight():
    """W = diag(3, 1, 1/2): sigma = 3 with u = v = e_1, and W_SN = W / 3. Its top entry is 1 at
    any scale, so it has no gradient; the next one, W_11 / W_00, has 1/3 for W_11 and -1/9 for
    W_00."""
    layer = SpectralDense(3, 3, bias=False, rng=np.random.default_rng(5), **F64)
    layer.params["W"][...] = np.diag([3.0, 1.0, 0.5])
    x = np.eye(3)
    for _ in range(40):  # the error shrinks by (1/3)^2 a step
        layer.forward(x)
    _, cache = layer.forward(x, training=False)
    assert abs(float(cache[1].sigma) - 3) < 1e-15
    for entry, expected in ((0, np.zeros((3, 3))), (1, np.diag([-1 / 9, 1 / 3, 0]))):
        layer.zero_grad()
        layer.backward(np.eye(3)[:, [entry]] * np.eye(3)[[entry]], cache)  # dL/dW_SN = e_i e_i^T
        np.testing.assert_allclose(layer.grads["W"], expected, atol=1e-16)


@pytest.mark.parametrize("make, shape", LAYERS, ids=IDS)
def test_vectors_are_saved_and_a_resume_is_exact(make, shape):
    x = np.random.default_rng(6).standard_normal(shape)
    original = make()
    for _ in range(3):
        original.forward(x)
    state = original.state_dict()
    assert {"W", "b", "u", "v"} <= set(state)
    resumed = make()
    resumed.params["W"][...] += 1.0  # another layer's weights and vectors, all overwritten
    resumed.forward(x)
    resumed.load_state_dict(state)
    for _ in range(2):
        np.testing.assert_array_equal(resumed.forward(x)[0], original.forward(x)[0])
    np.testing.assert_array_equal(resumed.buffers["u"], original.buffers["u"])


def test_first_sigma_is_positive_before_any_step():
    layer = SpectralDense(5, 4, rng=np.random.default_rng(7))
    u, v = layer.buffers["u"], layer.buffers["v"]
    assert abs(float(np.linalg.norm(u)) - 1) < 1e-6 and abs(float(np.linalg.norm(v)) - 1) < 1e-6
    assert float(u @ layer.params["W"].T @ v) > 0
    np.testing.assert_array_equal(normalize(np.zeros(3), 1e-12), np.zeros(3))


@pytest.mark.parametrize("make, shape", LAYERS, ids=IDS)
def test_a_device_matches_the_cpu(device, make, shape):
    x = np.random.default_rng(8).standard_normal(shape)
    results = []
    for where in ("cpu", device):
        layer = make(where)
        y, cache = layer.forward(to_device(x, where))
        layer.backward(to_device(np.cos(to_numpy(y)), where), cache)
        results.append([to_numpy(y), to_numpy(layer.buffers["u"]), to_numpy(layer.grads["W"])])
    for cpu, other in zip(*results, strict=True):
        np.testing.assert_allclose(other, cpu, rtol=1e-12, atol=1e-14)


def test_the_exports_refuse_rather_than_drop_the_normalisation():
    pytest.importorskip("onnx")
    from tinygan.interop.onnx_export import to_onnx

    with pytest.raises(ValueError, match=r"^no ONNX export for SpectralDense$"):
        to_onnx(Sequential(SpectralDense(4, 1)), (4,))
    assert not isinstance(SpectralDense(4, 1), Dense) and not isinstance(make_conv(), Conv2D)


# -- PyTorch ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("make, shape", LAYERS, ids=IDS)
def test_matches_torch_spectral_norm(make, shape, training):
    """torch.nn.utils.spectral_norm takes the paper's step (v from u, then u from v) and keeps both
    vectors, as these layers do: given the same u and v the two agree, step and gradients."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(9)
    layer = make()
    layer.params["b"][...] = rng.standard_normal(layer.params["b"].shape)
    x = rng.standard_normal(shape)
    layer.forward(x)  # vectors that are not torch's initial ones
    W, b = layer.params["W"], layer.params["b"]
    if W.ndim == 2:
        module = torch.nn.Linear(W.shape[0], W.shape[1]).double()
        weight = W.T
    else:
        module = torch.nn.Conv2d(2, 3, 3, stride=2, padding=1).double()
        weight = W
    module = torch.nn.utils.spectral_norm(module)
    with torch.no_grad():
        module.weight_orig.copy_(torch.tensor(weight))
        module.bias.copy_(torch.tensor(b))
        module.weight_u.copy_(torch.tensor(layer.buffers["u"]))
        module.weight_v.copy_(torch.tensor(layer.buffers["v"]))
    module.train(training)
    x_t = torch.tensor(x, requires_grad=True)
    y_t = module(x_t)
    y, cache = layer.forward(x, training=training)
    dy = rng.standard_normal(y.shape)
    y_t.backward(torch.tensor(dy))
    layer.zero_grad()
    dx = layer.backward(dy, cache)
    tol = 1e-12
    assert rel_error(y, y_t.detach().numpy()) < tol
    assert rel_error(dx, x_t.grad.numpy()) < tol
    grad_w = module.weight_orig.grad.numpy()
    assert rel_error(layer.grads["W"], grad_w.T if W.ndim == 2 else grad_w) < tol
    assert rel_error(layer.grads["b"], module.bias.grad.numpy()) < tol
    assert rel_error(layer.buffers["u"], module.weight_u.numpy()) < tol
    assert rel_error(layer.buffers["v"], module.weight_v.numpy()) < tol
