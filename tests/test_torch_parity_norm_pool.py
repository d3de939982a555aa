"""BatchNorm, MaxPool2D and UpSampling2D against PyTorch autograd, in float64 (skipped without torch)."""

import numpy as np
import pytest

from tinygan.nn import BatchNorm, MaxPool2D, UpSampling2D

torch = pytest.importorskip("torch")
F = torch.nn.functional

# Float64 with inputs of order 1 to 10: a sum of n terms in any order is off by at most
# n * 2**-53 times the sum of their magnitudes, here (n at most 120 values per channel) below 1e-12:
# a hundredth of this tolerance, which a wrong mean, variance or selected maximum exceeds by far.
TOL = dict(rtol=1e-10, atol=1e-10)


def torch_forward_backward(fn, x, dy):
    """PyTorch's ``fn(x)`` and the gradient of ``sum(fn(x) * dy)`` with respect to ``x``."""
    x_t = torch.tensor(x, requires_grad=True)
    y_t = fn(x_t)
    y_t.backward(torch.tensor(dy))
    return y_t.detach().numpy(), x_t.grad.numpy()


@pytest.mark.parametrize("shape", [(6, 4), (9, 3), (5, 3, 4, 6), (2, 2, 3, 3)])
@pytest.mark.parametrize("momentum", [0.1, 0.3])
def test_batchnorm_training_and_evaluation(shape, momentum):
    rng = np.random.default_rng(0)
    c = shape[1]
    layer = BatchNorm(c, momentum=momentum, eps=1e-5, dtype=np.float64)
    reference = (torch.nn.BatchNorm1d if len(shape) == 2 else torch.nn.BatchNorm2d)(
        c, momentum=momentum, eps=1e-5, dtype=torch.float64
    )
    gamma, beta = rng.uniform(0.5, 2, c), rng.standard_normal(c)
    layer.params["gamma"][...], layer.params["beta"][...] = gamma, beta
    with torch.no_grad():
        reference.weight.copy_(torch.tensor(gamma))
        reference.bias.copy_(torch.tensor(beta))

    for step in range(2):  # two steps: the second starts from updated running statistics
        x = 2 + 3 * rng.standard_normal(shape)
        dy = rng.standard_normal(shape)
        layer.zero_grad()
        reference.zero_grad()
        y, cache = layer.forward(x, training=True)
        dx = layer.backward(dy, cache)
        x_t = torch.tensor(x, requires_grad=True)
        y_t = reference.train()(x_t)
        y_t.backward(torch.tensor(dy))
        np.testing.assert_allclose(y, y_t.detach().numpy(), **TOL, err_msg=f"y, step {step}")
        np.testing.assert_allclose(dx, x_t.grad.numpy(), **TOL, err_msg=f"dx, step {step}")
        np.testing.assert_allclose(layer.grads["gamma"], reference.weight.grad.numpy(), **TOL)
        np.testing.assert_allclose(layer.grads["beta"], reference.bias.grad.numpy(), **TOL)
        np.testing.assert_allclose(layer.buffers["mean"], reference.running_mean.numpy(), **TOL)
        np.testing.assert_allclose(layer.buffers["var"], reference.running_var.numpy(), **TOL)

    x = rng.standard_normal(shape)
    dy = rng.standard_normal(shape)
    y, cache = layer.forward(x, training=False)
    dx = layer.backward(dy, cache, param_grads=False)
    x_t = torch.tensor(x, requires_grad=True)
    y_t = reference.eval()(x_t)
    y_t.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, y_t.detach().numpy(), **TOL)
    np.testing.assert_allclose(dx, x_t.grad.numpy(), **TOL)


@pytest.mark.parametrize(
    "shape, size, stride",
    [
        ((2, 3, 4, 4), 2, None),
        ((2, 2, 7, 9), 3, 2),
        ((1, 2, 5, 5), 3, 1),
        ((3, 1, 6, 7), (2, 3), (1, 2)),
    ],
)
@pytest.mark.parametrize("ties", [False, True])
def test_maxpool(shape, size, stride, ties):
    rng = np.random.default_rng(1)
    # Small integers make many ties: both libraries must then pick the first maximum.
    x = rng.integers(0, 3, shape).astype(np.float64) if ties else rng.standard_normal(shape)
    layer = MaxPool2D(size, stride)
    y, cache = layer.forward(x)
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy, cache)
    y_t, dx_t = torch_forward_backward(lambda t: F.max_pool2d(t, layer.size, layer.stride), x, dy)
    np.testing.assert_allclose(y, y_t, **TOL)
    np.testing.assert_allclose(dx, dx_t, **TOL)


@pytest.mark.parametrize("scale", [1, 2, 3, (2, 3)])
def test_upsampling_nearest(scale):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 4, 5))
    layer = UpSampling2D(scale)
    y, cache = layer.forward(x)
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy, cache)
    y_t, dx_t = torch_forward_backward(
        lambda t: F.interpolate(t, scale_factor=layer.scale, mode="nearest"), x, dy
    )
    np.testing.assert_allclose(y, y_t, **TOL)
    np.testing.assert_allclose(dx, dx_t, **TOL)
