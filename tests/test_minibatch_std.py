"""MinibatchStd: gradients, known values, the batch coupling, a batch of one, PyTorch, float32."""

import numpy as np
import pytest

from tinygan.backend import to_device, to_numpy
from tinygan.gan import GAN
from tinygan.gradcheck import check_layer
from tinygan.nn import Dense, LeakyReLU, Maxout, MinibatchStd, Sequential
from tinygan.optim import Adam

# Features (N, F) and images (N, C, H, W): batches of one, odd sizes, one feature, 1x1 images.
SHAPES = [(7, 5), (2, 1), (1, 4), (3, 2, 3, 4), (5, 3, 1, 1), (1, 2, 2, 3), (4, 1, 5, 3)]


def reference(x, eps=1e-8):
    """The layer's output written out in float64: biased std per feature, averaged, appended."""
    x = np.asarray(x, dtype=np.float64)
    m = np.sqrt(x.var(axis=0) + eps).mean()
    return np.concatenate([x, np.full((x.shape[0], 1, *x.shape[2:]), m)], axis=1)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_gradients_match_finite_differences(device, rng, shape):
    x = to_device(rng.standard_normal(shape), device)
    errors = check_layer(MinibatchStd(), x, rng)
    assert errors["x"] < 1e-7, errors


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("training", [True, False])
def test_forward_appends_the_mean_feature_std_in_both_modes(device, rng, shape, training):
    x = rng.standard_normal(shape)
    y = to_numpy(MinibatchStd()(to_device(x, device), training=training))
    assert y.shape == (shape[0], shape[1] + 1, *shape[2:])
    np.testing.assert_array_equal(y[:, : shape[1]], x)
    np.testing.assert_allclose(y, reference(x), rtol=1e-14)


def test_a_hand_computed_batch():
    # Feature 0 takes 0 and 2 (std 1), feature 1 takes 0 and 4 (std 2): m = 1.5.
    y = MinibatchStd(eps=1e-12)(np.array([[0.0, 0.0], [2.0, 4.0]]))
    np.testing.assert_allclose(y, [[0, 0, 1.5], [2, 4, 1.5]], rtol=1e-12)


@pytest.mark.parametrize("shape", [(1, 4), (1, 2, 2, 3)], ids=str)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_a_batch_of_one_appends_sqrt_eps_and_passes_the_gradient_through(rng, shape, dtype):
    layer = MinibatchStd()
    x = rng.standard_normal(shape).astype(dtype)
    y, cache = layer.forward(x)
    assert y.dtype == dtype
    # sqrt(1e-8), then the mean of F equal values: F + 2 roundings at most
    features = int(np.prod(shape[1:]))
    rtol = (features + 2) * np.finfo(dtype).eps
    np.testing.assert_allclose(y[:, shape[1]].astype(np.float64), 1e-4, rtol=rtol)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = layer.backward(dy, cache)
    assert dx.dtype == dtype
    np.testing.assert_array_equal(dx, dy[:, : shape[1]])


def test_the_gradient_through_the_statistic_couples_the_batch_and_sums_to_zero(rng):
    layer = MinibatchStd()
    x = rng.standard_normal((5, 3, 2, 2))
    y, cache = layer.forward(x)
    dy = rng.standard_normal(y.shape)
    through_m = layer.backward(dy, cache) - dy[:, :3]
    # Shifting the whole batch leaves its spread alone: the shares of the samples cancel.
    np.testing.assert_allclose(through_m.sum(axis=0), 0, atol=1e-15)
    # Sample 0's gradient changes when only sample 4's upstream gradient for m does.
    dy[4, 3] += 1.0
    changed = layer.backward(dy, cache) - dy[:, :3]
    assert np.abs(changed[0] - through_m[0]).max() > 1e-3
    assert MinibatchStd.mixes_batch


def test_a_discriminator_with_it_sees_real_and_fake_batches_apart(rng):
    def gan(*discriminator):
        generator = Sequential(Dense(2, 8, rng=rng), LeakyReLU(), Dense(8, 2, rng=rng))
        d = Sequential(*discriminator)
        return GAN(generator, d, Adam([generator], 1e-3), Adam([d], 1e-3), 2, rng)

    plain = gan(Maxout(2, 4, 3, rng=rng), Dense(4, 1, rng=rng))
    with_std = gan(Maxout(2, 4, 3, rng=rng), MinibatchStd(), Dense(5, 1, rng=rng))
    assert plain.join_d_batches and not with_std.join_d_batches
    real = rng.standard_normal((16, 2)).astype(np.float32)
    for model in (plain, with_std):
        before = [p.copy() for p in model.discriminator.walk() for p in p.params.values()]
        stats = model.train_step(lambda: real)
        assert all(np.isfinite(v) for v in stats.as_floats().values())
        after = [p for p in model.discriminator.walk() for p in p.params.values()]
        assert all((a != b).any() for a, b in zip(after, before, strict=True))


def test_non_contiguous_input_gives_the_same_output_and_gradient(rng):
    x = rng.standard_normal((4, 3, 2, 5))
    view = np.moveaxis(np.moveaxis(x, 1, 3).copy(), 3, 1)  # same values, channels-last strides
    assert not view.flags.c_contiguous
    layer = MinibatchStd()
    dy = rng.standard_normal((4, 4, 2, 5))
    (y, cache), (y_view, cache_view) = layer.forward(x), layer.forward(view)
    # only the order of the mean's sum over features differs
    np.testing.assert_allclose(y_view, y, rtol=1e-14)
    np.testing.assert_allclose(layer.backward(dy, cache_view), layer.backward(dy, cache), 1e-14)


def test_float32_agrees_with_float64_within_the_rounding_bound(rng):
    n, c, h, w = 16, 3, 4, 4
    f, k = c * h * w, n * h * w  # features per sample; copies of m
    x = (2 + rng.standard_normal((n, c, h, w))).astype(np.float32)
    dy = rng.standard_normal((n, c + 1, h, w)).astype(np.float32)
    layer = MinibatchStd()
    y32, cache32 = layer.forward(x)
    dx32 = layer.backward(dy, cache32)
    y64, cache64 = layer.forward(x.astype(np.float64))  # the same values, exactly
    dx64 = layer.backward(dy.astype(np.float64), cache64)
    assert y32.dtype == dx32.dtype == np.float32

    # Each float32 step rounds by at most u (relative), and a sum of j terms by j * u * sum|terms|:
    # the mean over N moves mu by (N + 1) u max|x|, so each deviation c by dc = (N + 3) u max|x|;
    # s = sqrt(mean c^2 + eps) then moves by at most dc + (N + 5) u s (|ds/dc| <= 1 summed over the
    # batch), and m, a mean over F, by the mean of that plus (F + 1) u m.
    u = np.finfo(np.float32).eps
    x64 = x.astype(np.float64)
    centered = x64 - x64.mean(axis=0)
    s = np.sqrt((centered**2).mean(axis=0) + 1e-8)
    m = s.mean()
    dc = (n + 3) * u * np.abs(x64).max()
    m_bound = dc + (n + 5) * u * m + (f + 1) * u * m
    assert np.abs(y32[:, c] - y64[:, c]).max() <= m_bound
    np.testing.assert_array_equal(y32[:, :c], x)

    # dx = dy_x + g * dm_dx: g sums K copies; dm_dx = c / (N F s) carries the errors of c and s.
    g = dy[:, c:].astype(np.float64).sum()
    dm_dx = centered / (n * f * s)
    g_bound = k * u * np.abs(dy[:, c:]).astype(np.float64).sum()
    dm_dx_bound = (dc + np.abs(centered) * (dc / s + (n + 8) * u)) / (n * f * s)
    dx_bound = u * np.abs(dx64) + g_bound * np.abs(dm_dx) + abs(g) * dm_dx_bound
    assert np.all(np.abs(dx32 - dx64) <= dx_bound)


@pytest.mark.parametrize("shape", [(6, 5), (4, 3, 2, 5)], ids=str)
def test_matches_the_formula_in_torch(rng, shape):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal(shape)
    layer = MinibatchStd()
    y, cache = layer.forward(x)
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy, cache)

    x_t = torch.tensor(x, requires_grad=True)
    m = torch.sqrt(x_t.var(dim=0, unbiased=False) + 1e-8).mean()
    y_t = torch.cat([x_t, m.expand(shape[0], 1, *shape[2:])], dim=1)
    y_t.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, y_t.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, x_t.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_input_and_argument_checks():
    layer = MinibatchStd()
    with pytest.raises(ValueError, match=r"^MinibatchStd expects input of shape \(N, F\) or "):
        layer.forward(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match=r"^MinibatchStd: eps must be a number in \(0, inf\)"):
        MinibatchStd(eps=0.0)
    assert repr(MinibatchStd(1e-6)) == "MinibatchStd(eps=1e-06)"
