"""The whole GAN: generator gradients *through* the discriminator, against finite differences."""

import numpy as np
import pytest

from tinygan.backend import make_rng, to_device
from tinygan.gan import GAN
from tinygan.gradcheck import numerical_gradient, rel_error
from tinygan.losses import sigmoid_cross_entropy
from tinygan.nn import Dense, LeakyReLU, Sequential, Tanh
from tinygan.optim import Adam


def tiny_gan(device, generator_loss="nonsaturating", real_label=1.0, fake_label=0.0, seed=0):
    rng = np.random.default_rng(seed)
    generator = Sequential(Dense(3, 6, rng=rng), LeakyReLU(0.2), Dense(6, 4, rng=rng), Tanh())
    discriminator = Sequential(Dense(4, 7, rng=rng), LeakyReLU(0.2), Dense(7, 1, rng=rng))
    generator.astype(np.float64)
    discriminator.astype(np.float64)
    gan = GAN(
        generator,
        discriminator,
        Adam([generator], lr=1e-2),
        Adam([discriminator], lr=1e-2),
        latent_dim=3,
        rng=make_rng(seed, device),
        generator_loss=generator_loss,
        real_label=real_label,
        fake_label=fake_label,
    )
    return gan.to(device)


def generator_loss_only(gan, z):
    fake = gan.generator.forward(z)[0]
    return gan.generator_loss_and_grad(gan.discriminator.forward(fake)[0])[0]


@pytest.mark.parametrize("generator_loss", ["nonsaturating", "minimax"])
def test_generator_gradients_through_the_discriminator(device, generator_loss):
    gan = tiny_gan(device, generator_loss)
    z = gan.sample_noise(5)
    gan.generator.zero_grad()
    gan.discriminator.zero_grad()
    gan.generator_loss_backward(z)
    for path, layer in gan.generator.named_layers():
        for name, param in layer.params.items():
            numeric = numerical_gradient(lambda: generator_loss_only(gan, z), param)
            error = rel_error(layer.grads[name], numeric)
            assert error < 1e-7, f"generator {path}{name}: relative error {error:.2e}"
    for layer in gan.discriminator.walk():
        for grad in layer.grads.values():
            assert not grad.any(), "the generator step must not touch D's gradients"


@pytest.mark.parametrize("labels", [(1.0, 0.0), (0.9, 0.1)])
def test_discriminator_gradients_on_real_and_fake(device, rng, labels):
    gan = tiny_gan(device, real_label=labels[0], fake_label=labels[1])
    real = to_device(rng.uniform(-1, 1, size=(6, 4)), device)
    fake = gan.generate(gan.sample_noise(6))
    gan.discriminator.zero_grad()
    gan.discriminator_loss_backward(real, fake)

    def d_loss():
        real_term = sigmoid_cross_entropy(gan.discriminator.forward(real)[0], labels[0])[0]
        fake_term = sigmoid_cross_entropy(gan.discriminator.forward(fake)[0], labels[1])[0]
        return real_term + fake_term

    for path, layer in gan.discriminator.named_layers():
        for name, param in layer.params.items():
            error = rel_error(layer.grads[name], numerical_gradient(d_loss, param))
            assert error < 1e-7, f"discriminator {path}{name}: relative error {error:.2e}"


def test_minimax_loss_is_log_one_minus_d():
    gan = tiny_gan("cpu", "minimax")
    logits = np.array([[-2.0], [0.5]])
    loss, _ = gan.generator_loss_and_grad(logits)
    d = 1 / (1 + np.exp(-logits))
    assert float(loss) == pytest.approx(np.mean(np.log(1 - d)), abs=1e-14)


def test_steps_move_each_network_the_right_way(rng):
    gan = tiny_gan("cpu")
    real = rng.uniform(0.5, 1.0, size=(32, 4))
    z = gan.sample_noise(32)

    def d_gap():
        fake = gan.generate(z)
        return float(gan.discriminator(real).mean() - gan.discriminator(fake).mean())

    before = d_gap()
    for _ in range(5):
        gan.discriminator_step(real)
    assert d_gap() > before  # D separates real from fake better

    fooled_before = float(gan.discriminator(gan.generate(z)).mean())
    for _ in range(5):
        gan.generator_step(32)
    assert float(gan.discriminator(gan.generate(z)).mean()) > fooled_before  # G fools D more


def test_train_step_reports_four_finite_statistics(rng):
    gan = tiny_gan("cpu")
    real = rng.uniform(-1, 1, size=(8, 4))
    stats = gan.train_step(lambda: real).as_floats()
    assert set(stats) == {"d_loss", "g_loss", "d_real", "d_fake"}
    assert all(np.isfinite(v) for v in stats.values())
    assert 0 < stats["d_real"] < 1 and 0 < stats["d_fake"] < 1


def test_k_discriminator_steps_draw_k_real_batches(rng):
    gan = tiny_gan("cpu")
    gan.d_steps, gan.g_steps = 3, 2
    drawn = []

    def next_batch():
        drawn.append(1)
        return rng.uniform(-1, 1, size=(4, 4))

    gan.train_step(next_batch)
    assert len(drawn) == 3
    assert gan.d_optimizer.step_count == 3 and gan.g_optimizer.step_count == 2


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="noise"):
        GAN(
            Dense(1, 1),
            Dense(1, 1),
            Adam([Dense(1, 1)], 1e-3),
            Adam([Dense(1, 1)], 1e-3),
            1,
            None,
            noise="gauss",
        )
