"""Maxout: gradients, the paper's formula, routing to the winning piece, PyTorch, float32, shapes."""

import numpy as np
import pytest

from tinygan.backend import to_device, to_numpy
from tinygan.gradcheck import check_layer
from tinygan.nn import Dense, Maxout
from tinygan.nn.maxout import maxout_backward, maxout_forward

# The finite-difference step (1e-6) moves a piece by at most about 1e-5 for these sizes; keeping the
# best piece of every unit this far ahead of the second means no step changes the winner.
MARGIN = 1e-3

# (batch, in_features, units, pieces): a batch of one, odd sizes, one unit, one piece.
CASES = [(1, 3, 2, 3), (7, 5, 3, 4), (4, 1, 1, 2), (5, 4, 2, 1), (3, 6, 5, 5)]


def gaps(layer, x):
    """The lead of each unit's best piece over its second, (N, units); inf with one piece."""
    z = to_numpy(x) @ to_numpy(layer.params["W"]) + to_numpy(layer.params.get("b", 0.0))
    ordered = np.sort(z.reshape(len(z), layer.units, layer.pieces), axis=2)
    return np.inf if layer.pieces == 1 else ordered[:, :, -1] - ordered[:, :, -2]


def untied_input(layer, batch, rng):
    """A standard normal input whose units all have a winner at least MARGIN ahead."""
    for _ in range(100):
        x = rng.standard_normal((batch, layer.in_features))
        if np.min(gaps(layer, x)) >= MARGIN:
            return x
    raise AssertionError("no input without near-ties found; use a smaller layer")


def weights_3d(layer):
    """The paper's weight W[i, j, k] and bias b[j, k] (unit j, piece k) as views of the layer's."""
    w, b = to_numpy(layer.params["W"]), to_numpy(layer.params["b"])
    return w.reshape(layer.in_features, layer.units, layer.pieces), b.reshape(layer.units, -1)


@pytest.mark.parametrize("batch, in_features, units, pieces", CASES)
@pytest.mark.parametrize("bias", [True, False])
def test_maxout_gradients_match_finite_differences(
    device, rng, batch, in_features, units, pieces, bias
):
    layer = Maxout(in_features, units, pieces, bias=bias, rng=rng, dtype=np.float64)
    x = untied_input(layer, batch, rng)
    layer.to(device)
    errors = check_layer(layer, to_device(x, device), rng)
    assert set(errors) == {"x", "W"} | ({"b"} if bias else set())
    assert max(errors.values()) < 1e-7, errors


def test_forward_is_the_papers_max_over_affine_pieces(rng):
    layer = Maxout(5, 3, 4, rng=rng, bias_init=lambda shape, *_: rng.standard_normal(shape))
    layer.astype(np.float64)
    x = rng.standard_normal((6, 5))
    w3, b3 = weights_3d(layer)
    want = np.empty((6, 3))
    for n in range(6):
        for j in range(3):
            want[n, j] = max(x[n] @ w3[:, j, k] + b3[j, k] for k in range(4))
    np.testing.assert_allclose(layer(x), want, rtol=1e-13, atol=1e-13)


def test_the_gradient_goes_to_the_winning_piece_only(rng):
    dy = rng.standard_normal((4, 3))
    argmax = rng.integers(5, size=(4, 3))
    dz = maxout_backward(dy, argmax, 5).reshape(4, 3, 5)
    want = np.zeros((4, 3, 5))
    for n in range(4):
        for j in range(3):
            want[n, j, argmax[n, j]] = dy[n, j]
    np.testing.assert_array_equal(dz, want)


def test_every_piece_wins_somewhere_in_the_gradient_check_inputs(rng):
    # Otherwise a routing bug confined to some pieces could pass the gradient checks.
    layer = Maxout(6, 5, 5, rng=rng, dtype=np.float64)
    _, argmax = layer.forward(untied_input(layer, 3, rng))[1]
    assert set(np.unique(argmax)) == set(range(5))


def test_ties_go_to_the_first_maximal_piece():
    z = np.array([[1.0, 3.0, 3.0, 2.0, 0.5, 0.5]])  # unit 0: pieces 1 and 2 tie; unit 1: 1 and 2
    y, argmax = maxout_forward(z, 3)
    np.testing.assert_array_equal(y, [[3.0, 2.0]])
    np.testing.assert_array_equal(argmax, [[1, 0]])
    np.testing.assert_array_equal(maxout_backward(np.ones((1, 2)), argmax, 3), [[0, 1, 0, 1, 0, 0]])


def test_one_piece_is_a_dense_layer(rng):
    maxout = Maxout(4, 3, 1, rng=np.random.default_rng(5), dtype=np.float64)
    dense = Dense(4, 3, rng=np.random.default_rng(5), dtype=np.float64)
    x, dy = rng.standard_normal((5, 4)), rng.standard_normal((5, 3))
    outputs = []
    for layer in (maxout, dense):
        y, cache = layer.forward(x)
        outputs.append((y, layer.grads["W"], layer.grads["b"], layer.backward(dy, cache)))
    (*got, got_dx), (*want, want_dx) = outputs
    for got_one, want_one in zip(got, want, strict=True):
        np.testing.assert_array_equal(got_one, want_one)
    # dx may sum its 3 products in another order (maxout_input_grad's kernel): rounding apart
    bound = 3 * np.finfo(np.float64).eps * (np.abs(dy) @ np.abs(dense.params["W"]).T)
    assert (np.abs(got_dx - want_dx) <= bound).all()


def test_parameters_are_a_dense_layer_of_units_times_pieces():
    layer = Maxout(6, 4, 5, rng=np.random.default_rng(0))
    assert layer.params["W"].shape == (6, 20) and layer.params["b"].shape == (20,)
    assert layer.params["W"].dtype == np.float32
    limit = np.sqrt(6 / (6 + 20))  # Glorot uniform with fans (6, 20)
    assert np.abs(layer.params["W"]).max() <= limit
    assert np.abs(layer.params["W"]).max() > 0.8 * limit  # 120 draws reach near the edge
    assert not layer.params["b"].any()
    assert repr(layer) == "Maxout(6, 4, pieces=5, bias=True)"


def test_non_contiguous_input_gives_the_same_output_and_gradients(rng):
    layer = Maxout(4, 3, 2, rng=rng, dtype=np.float64)
    x = untied_input(layer, 6, rng)
    wide = np.zeros((6, 8))
    wide[:, ::2] = x
    view = wide[:, ::2]
    assert not view.flags.c_contiguous
    dy = rng.standard_normal((6, 3))
    results = []
    for given in (view, x):
        layer.zero_grad()
        y, cache = layer.forward(given)
        results.append((y, layer.backward(dy, cache), layer.grads["W"].copy()))
    for got, want in zip(*results, strict=True):
        np.testing.assert_array_equal(got, want)


def test_float32_agrees_with_float64_within_the_rounding_bound(rng):
    n, d, units, pieces = 16, 30, 8, 5
    layer32 = Maxout(d, units, pieces, rng=np.random.default_rng(1))
    layer32.params["b"][...] = rng.standard_normal(units * pieces).astype(np.float32)
    layer64 = Maxout(d, units, pieces, dtype=np.float64)
    for name in ("W", "b"):  # the same float32 values, exactly, in float64
        layer64.params[name][...] = layer32.params[name]
    x = untied_input(layer64, n, rng).astype(np.float32)
    dy = rng.standard_normal((n, units)).astype(np.float32)
    w, b = layer64.params["W"], layer64.params["b"]
    u = np.finfo(np.float32).eps
    # A float32 sum of k products differs from the exact one by at most k * eps * sum|terms|.
    z_bound = (d + 1) * u * (np.abs(x.astype(np.float64)) @ np.abs(w) + np.abs(b))
    assert np.min(gaps(layer64, x)) > 2 * z_bound.max()  # both dtypes pick the same pieces
    results = {}
    for dtype, layer in ((np.float32, layer32), (np.float64, layer64)):
        y, cache = layer.forward(x.astype(dtype))
        dx = layer.backward(dy.astype(dtype), cache)
        results[dtype] = (y, dx, layer.grads["W"], layer.grads["b"], cache[1])
    y32, dx32, dw32, db32, arg32 = results[np.float32]
    y64, dx64, dw64, db64, arg64 = results[np.float64]
    assert y32.dtype == dx32.dtype == dw32.dtype == np.float32
    np.testing.assert_array_equal(arg32, arg64)
    dz = np.abs(maxout_backward(dy.astype(np.float64), arg64, pieces))
    winners = z_bound.reshape(n, units, pieces).max(axis=2)
    bounds = {
        "y": winners,
        "dx": units * pieces * u * (dz @ np.abs(w).T),
        "dW": n * u * (np.abs(x.astype(np.float64)).T @ dz),
        "db": n * u * dz.sum(axis=0),
    }
    for name, got, want in [("y", y32, y64), ("dx", dx32, dx64), ("dW", dw32, dw64)]:
        assert np.all(np.abs(got - want) <= bounds[name]), name
    assert np.all(np.abs(db32 - db64) <= bounds["db"])


def test_matches_a_torch_linear_viewed_as_pieces_and_maxed(rng):
    torch = pytest.importorskip("torch")
    n, d, units, pieces = 7, 5, 3, 4
    layer = Maxout(d, units, pieces, rng=rng, dtype=np.float64)
    layer.params["b"][...] = rng.standard_normal(units * pieces)
    x = untied_input(layer, n, rng)
    dy = rng.standard_normal((n, units))
    y, cache = layer.forward(x)
    dx = layer.backward(dy, cache)

    linear = torch.nn.Linear(d, units * pieces, dtype=torch.float64)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor(layer.params["W"].T))
        linear.bias.copy_(torch.tensor(layer.params["b"]))
    x_t = torch.tensor(x, requires_grad=True)
    y_t = linear(x_t).view(n, units, pieces).max(dim=2).values
    y_t.backward(torch.tensor(dy))
    tolerance = dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y, y_t.detach().numpy(), **tolerance)
    np.testing.assert_allclose(dx, x_t.grad.numpy(), **tolerance)
    np.testing.assert_allclose(layer.grads["W"], linear.weight.grad.numpy().T, **tolerance)
    np.testing.assert_allclose(layer.grads["b"], linear.bias.grad.numpy(), **tolerance)
