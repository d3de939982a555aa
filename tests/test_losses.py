"""Sigmoid cross-entropy (exact values, stability at extreme logits, its gradient) and the GAN
losses on D's outputs (gradients, known values, selection by name, weight clipping)."""

import numpy as np
import pytest

from tinygan.backend import to_device, to_numpy
from tinygan.gradcheck import numerical_gradient, rel_error
from tinygan.losses import (
    GAN_LOSSES,
    WEIGHT_CLIP,
    clip_weights,
    gan_loss,
    sigmoid_cross_entropy,
)
from tinygan.nn import Dense, LeakyReLU, Sequential


def naive_bce(x, t):
    p = 1 / (1 + np.exp(-x))
    return np.mean(-t * np.log(p) - (1 - t) * np.log(1 - p))


def test_matches_the_textbook_formula_for_moderate_logits(rng):
    x = rng.standard_normal((16, 1)) * 3
    t = rng.uniform(0, 1, size=(16, 1))
    loss, _ = sigmoid_cross_entropy(x, t)
    assert abs(float(loss) - naive_bce(x, t)) < 1e-12


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_logits_are_exact_and_finite(dtype):
    x = np.array([[1e4], [-1e4]], dtype=dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        loss_real, grad_real = sigmoid_cross_entropy(x, 1.0)
        loss_fake, grad_fake = sigmoid_cross_entropy(x, 0.0)
    # target 1: the first logit costs 0, the second 1e4; the mean is 5e3 (and symmetric for target 0)
    assert float(loss_real) == 5e3 and float(loss_fake) == 5e3
    np.testing.assert_array_equal(grad_real, np.array([[0.0], [-0.5]], dtype=dtype))
    np.testing.assert_array_equal(grad_fake, np.array([[0.5], [0.0]], dtype=dtype))
    assert loss_real.dtype == dtype and grad_real.dtype == dtype


def test_zero_logit_costs_log_two():
    loss, grad = sigmoid_cross_entropy(np.zeros((4, 1)), 1.0)
    assert abs(float(loss) - np.log(2)) < 1e-15
    np.testing.assert_allclose(grad, -0.125)


@pytest.mark.parametrize("targets", [1.0, 0.0, 0.9, "array"])
def test_gradient_matches_central_differences(device, rng, targets):
    x = rng.standard_normal((6, 1)) * 4
    t = rng.uniform(0, 1, size=(6, 1)) if targets == "array" else targets
    x, t = to_device(x, device), to_device(np.asarray(t), device)
    _, analytic = sigmoid_cross_entropy(x, t)
    numeric = numerical_gradient(lambda: sigmoid_cross_entropy(x, t)[0], x)
    assert rel_error(analytic, numeric) < 1e-8


def test_label_smoothing_minimum_sits_at_the_target():
    # d/dx mean BCE(x, 0.9) = sigmoid(x) - 0.9 vanishes at x = logit(0.9)
    x = np.array([[np.log(0.9 / 0.1)]])
    _, grad = sigmoid_cross_entropy(x, 0.9)
    assert abs(float(to_numpy(grad)[0, 0])) < 1e-15


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="floating logits"):
        sigmoid_cross_entropy(np.zeros((2, 1), dtype=np.int64), 1.0)
    with pytest.raises(ValueError, match="do not broadcast"):
        sigmoid_cross_entropy(np.zeros((4, 1)), np.zeros(3))


# -- the GAN losses ---------------------------------------------------------------------------------


def outputs_off_the_kinks(rng, shape):
    """Scores at least 0.1 away from the hinge's kinks at -1 and 1."""
    x = rng.uniform(-3, 3, size=shape)
    near = np.abs(np.abs(x) - 1) < 0.1
    return np.where(near, x + 0.3 * np.sign(x), x)


@pytest.mark.parametrize("name", sorted(GAN_LOSSES))
def test_every_gan_loss_gradient_matches_central_differences(device, rng, name):
    loss = gan_loss(name)
    real = to_device(outputs_off_the_kinks(rng, (6, 1)), device)
    fake = to_device(outputs_off_the_kinks(rng, (5, 1)), device)  # batches may differ in size
    _, d_real, d_fake = loss.discriminator(real, fake)
    assert d_real.shape == real.shape and d_fake.shape == fake.shape
    assert (
        rel_error(d_real, numerical_gradient(lambda: loss.discriminator(real, fake)[0], real))
        < 1e-7
    )
    assert (
        rel_error(d_fake, numerical_gradient(lambda: loss.discriminator(real, fake)[0], fake))
        < 1e-7
    )
    _, g_fake = loss.generator(fake)
    assert rel_error(g_fake, numerical_gradient(lambda: loss.generator(fake)[0], fake)) < 1e-7


@pytest.mark.parametrize("name", sorted(GAN_LOSSES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gan_losses_keep_the_dtype_and_return_0d_values(name, dtype):
    loss = gan_loss(name)
    out = np.linspace(-2, 2, 8, dtype=dtype).reshape(8, 1)
    value, d_real, d_fake = loss.discriminator(out, out[::-1].copy())
    g_value, g_fake = loss.generator(out)
    assert np.ndim(value) == np.ndim(g_value) == 0
    assert value.dtype == g_value.dtype == d_real.dtype == d_fake.dtype == g_fake.dtype == dtype


def test_least_squares_uses_the_papers_targets_and_half_factor():
    loss = gan_loss("least-squares")  # a = 0, b = c = 1
    real, fake = np.array([[1.0], [3.0]]), np.array([[0.0], [-2.0]])
    value, d_real, d_fake = loss.discriminator(real, fake)
    # 1/2 mean((r - 1)^2) + 1/2 mean(f^2) = 1/2 * 2 + 1/2 * 2
    assert float(value) == 2.0
    np.testing.assert_array_equal(d_real, [[0.0], [1.0]])  # (r - b) / N
    np.testing.assert_array_equal(d_fake, [[0.0], [-1.0]])
    g_value, g_fake = loss.generator(fake)
    assert float(g_value) == 0.5 * (1 + 9) / 2
    np.testing.assert_array_equal(g_fake, [[-0.5], [-1.5]])
    # the chi-square coding of the paper's Eq. 8 is one argument away
    chi2 = gan_loss("least-squares", a=-1, b=1, c=0)
    assert float(chi2.discriminator(np.ones((3, 1)), -np.ones((3, 1)))[0]) == 0.0


def test_hinge_values_and_its_margin():
    loss = gan_loss("hinge")
    real, fake = np.array([[0.5], [2.0]]), np.array([[-3.0], [0.5]])
    value, d_real, d_fake = loss.discriminator(real, fake)
    # mean(relu(1 - r)) = (0.5 + 0) / 2, mean(relu(1 + f)) = (0 + 1.5) / 2
    assert float(value) == 1.0
    np.testing.assert_array_equal(d_real, [[-0.5], [0.0]])  # past the margin: no gradient
    np.testing.assert_array_equal(d_fake, [[0.0], [0.5]])
    g_value, g_fake = loss.generator(fake)
    assert float(g_value) == 1.25
    np.testing.assert_array_equal(g_fake, [[-0.5], [-0.5]])
    # at the kinks the subgradient 0 is taken
    _, at_real, at_fake = loss.discriminator(np.ones((1, 1)), -np.ones((1, 1)))
    assert not at_real.any() and not at_fake.any()


def test_wasserstein_critic_loss_is_the_negated_difference_of_means(rng):
    loss = gan_loss("wasserstein")
    real, fake = rng.standard_normal((8, 1)) + 2.0, rng.standard_normal((4, 1))
    value, d_real, d_fake = loss.discriminator(real, fake)
    assert abs(float(value) - (fake.mean() - real.mean())) < 1e-15
    np.testing.assert_array_equal(d_real, np.full((8, 1), -1 / 8))
    np.testing.assert_array_equal(d_fake, np.full((4, 1), 1 / 4))
    g_value, g_fake = loss.generator(fake)
    assert float(g_value) == -fake.mean()
    np.testing.assert_array_equal(g_fake, np.full((4, 1), -1 / 4))


def test_cross_entropy_losses_are_the_original_games(rng):
    real, fake = rng.standard_normal((5, 1)), rng.standard_normal((5, 1))
    smoothed = gan_loss("nonsaturating", real_label=0.9)
    value, d_real, d_fake = smoothed.discriminator(real, fake)
    expected_real, grad_real = sigmoid_cross_entropy(real, 0.9)
    expected_fake, grad_fake = sigmoid_cross_entropy(fake, 0.0)
    assert float(value) == float(expected_real + expected_fake)
    np.testing.assert_array_equal(d_real, grad_real)
    np.testing.assert_array_equal(d_fake, grad_fake)
    assert smoothed.outputs_are_logits and not gan_loss("hinge").outputs_are_logits
    # non-saturating G: -log sigmoid(f); minimax G: log(1 - sigmoid(f))
    p = 1 / (1 + np.exp(-fake))
    assert abs(float(gan_loss("nonsaturating").generator(fake)[0]) + np.log(p).mean()) < 1e-12
    assert abs(float(gan_loss("minimax").generator(fake)[0]) - np.log(1 - p).mean()) < 1e-12


def test_gan_loss_by_name_and_its_refusals():
    assert {name: type(gan_loss(name)).name for name in GAN_LOSSES} == {n: n for n in GAN_LOSSES}
    assert repr(gan_loss("least-squares")) == "LeastSquaresLoss(a=0.0, b=1.0, c=1.0)"
    with pytest.raises(ValueError, match=r"^loss must be one of \['hinge', .*, got 'wgan'$"):
        gan_loss("wgan")
    with pytest.raises(ValueError, match=r"^signed_mean expects a floating-point array .*int64$"):
        gan_loss("wasserstein").generator(np.zeros((2, 1), dtype=np.int64))
    with pytest.raises(ValueError, match=r"^margin_hinge expects a floating-point array .*list$"):
        gan_loss("hinge").discriminator([[1.0]], np.zeros((1, 1)))


def test_clip_weights_clips_every_parameter_in_place(rng):
    critic = Sequential(Dense(3, 4, rng=rng), LeakyReLU(), Dense(4, 1, rng=rng))
    for layer in critic.walk():
        for value in layer.params.values():
            value[...] = rng.standard_normal(value.shape)
    weight = critic[0].params["W"]
    clip_weights(critic)
    assert critic[0].params["W"] is weight  # the same array, clipped where it lies
    for layer in critic.walk():
        for value in layer.params.values():
            assert np.abs(value).max() == np.float32(WEIGHT_CLIP)
    clip_weights(critic, 0.5)
    assert np.abs(weight).max() == np.float32(0.01)  # inside [-0.5, 0.5]: unchanged
    with pytest.raises(ValueError, match=r"^clip_weights: c must be a positive number, got 0$"):
        clip_weights(critic, 0)
