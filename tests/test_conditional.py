"""Conditional GANs by concatenation: G(z, y) = G([z, onehot(y)]) and D(x, y) on x with the code
appended (features of a flat sample, constant planes of an image), checked in float64 against
inputs built by hand, and a class that controls what a trained generator makes."""

import copy
import json
import re
import tempfile
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import mnist_dir
from PIL import Image
from test_checkpoint import fresh_run

from tinygan.backend import device_of, make_rng, to_device, to_numpy
from tinygan.data import BatchIterator, LabelledBatches, load_mnist
from tinygan.gan import (
    GAN,
    check_labels,
    condition_samples,
    drop_label_gradient,
    one_hot,
)
from tinygan.gradcheck import numerical_gradient, rel_error
from tinygan.losses import gan_loss
from tinygan.models import get_preset
from tinygan.nn import (
    Conv2D,
    ConvTranspose2D,
    Dense,
    Flatten,
    LeakyReLU,
    Reshape,
    Sequential,
    Tanh,
)
from tinygan.optim import Adam
from tinygan.quality.classifier import choose_classifier
from tinygan.quality.evaluate import evaluate_checkpoint
from tinygan.quality.metrics import class_accuracy
from tinygan.run.best import KeepBest
from tinygan.run.build import load_labelled_training_data
from tinygan.run.checkpoint import best_checkpoint_info, read_checkpoint, save_checkpoint
from tinygan.run.cli import main as cli_main
from tinygan.run.sampling import generate, load_generator, spread_labels
from tinygan.run.settings import RunSettings
from tinygan.run.train import PixelHistograms, SampleGrid, Trainer
from tinygan.testing import transfers
from tinygan.viz import save_image_grid

K = 3  # classes of the tiny networks


def by_hand(samples, labels, m):
    """D's input written out: each sample followed by its one-hot code (K features, or K planes of
    ones and zeros), then ``m`` consecutive samples side by side along axis 1."""
    code = np.eye(K)[labels]
    if samples.ndim == 4:
        code = code[:, :, None, None] * np.ones((1, 1, *samples.shape[2:]))
    conditioned = np.concatenate([samples, code], axis=1)
    return np.concatenate([conditioned[i::m] for i in range(m)], axis=1)


def generator_input(z, labels):
    return np.concatenate([z, np.eye(K)[labels]], axis=1)


def mlp_networks(pack, rng):
    """G on noise of 2 and 4 features out; D on packs of (4 + K)-feature conditioned samples.
    Tanh in D so that its input gradient depends on its input (the penalties' second passes
    then carry a term back through the forward pass)."""
    generator = Sequential(Dense(2 + K, 6, rng=rng), LeakyReLU(0.2), Dense(6, 4, rng=rng), Tanh())
    discriminator = Sequential(Dense((4 + K) * pack, 7, rng=rng), Tanh(), Dense(7, 1, rng=rng))
    return generator, discriminator


def conv_networks(pack, rng):
    """A DCGAN in miniature: G to (1, 6, 6) images by a transposed convolution, D a strided
    convolution over (1 + K) * pack channels."""
    generator = Sequential(
        Dense(2 + K, 2 * 3 * 3, rng=rng),
        LeakyReLU(0.2),
        Reshape((2, 3, 3)),
        ConvTranspose2D(2, 1, 4, stride=2, padding=1, rng=rng),
        Tanh(),
    )
    discriminator = Sequential(
        Conv2D((1 + K) * pack, 3, 3, stride=2, padding=1, rng=rng),
        Tanh(),
        Flatten(),
        Dense(3 * 3 * 3, 1, rng=rng),
    )
    return generator, discriminator


NETWORKS = {"mlp": (mlp_networks, (4,)), "conv": (conv_networks, (1, 6, 6))}


def tiny_gan(kind, pack=1, seed=0, **rules):
    build, _ = NETWORKS[kind]
    generator, discriminator = build(pack, np.random.default_rng(seed))
    generator.astype(np.float64)
    discriminator.astype(np.float64)
    return GAN(
        generator,
        discriminator,
        Adam([generator], lr=1e-2),
        Adam([discriminator], lr=1e-2),
        latent_dim=2,
        rng=make_rng(seed, "cpu"),
        noise="normal",
        pack=pack,
        num_classes=K,
        **rules,
    )


def real_batch(kind, n, seed=5):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (n, *NETWORKS[kind][1])), rng.integers(0, K, n)


def test_the_code_is_appended_as_features_or_as_planes_of_ones():
    labels = np.array([2, 0, 1])
    flat = np.arange(6.0).reshape(3, 2)
    np.testing.assert_array_equal(
        condition_samples(flat, labels, K),
        [[0, 1, 0, 0, 1], [2, 3, 1, 0, 0], [4, 5, 0, 1, 0]],
    )
    images = np.random.default_rng(0).standard_normal((3, 2, 4, 5)).astype(np.float32)
    conditioned = condition_samples(images, labels, K)
    assert conditioned.shape == (3, 2 + K, 4, 5) and conditioned.dtype == np.float32
    np.testing.assert_array_equal(conditioned[:, :2], images)
    for n, label in enumerate(labels):
        for k in range(K):
            plane = conditioned[n, 2 + k]
            np.testing.assert_array_equal(plane, np.full((4, 5), float(k == label)))
    np.testing.assert_array_equal(one_hot(labels, K, np.float64), np.eye(K)[labels])


@pytest.mark.parametrize("shape", [(4, 3), (4, 2, 3, 3)])
def test_dropping_the_label_gradient_is_the_adjoint_of_appending_the_code(shape):
    """x -> [x, c] is affine with the slice as the adjoint of its linear part:
    <cond(x) - cond(0), v> = <x, drop(v)>, and the central differences of <cond(x), v> in x are
    drop(v)."""
    rng = np.random.default_rng(1)
    labels = rng.integers(0, K, shape[0])
    x = rng.standard_normal(shape)
    v = rng.standard_normal((shape[0], shape[1] + K, *shape[2:]))
    linear = condition_samples(x, labels, K) - condition_samples(np.zeros(shape), labels, K)
    assert np.sum(linear * v) == pytest.approx(np.sum(x * drop_label_gradient(v, K)), rel=1e-13)
    numeric = numerical_gradient(lambda: np.sum(condition_samples(x, labels, K) * v), x)
    assert rel_error(drop_label_gradient(v, K), numeric) < 1e-9
    assert drop_label_gradient(v, K).flags.c_contiguous


def assert_gradients_match(network, loss, what):
    for path, layer in network.named_layers():
        for name, param in layer.params.items():
            error = rel_error(layer.grads[name], numerical_gradient(loss, param))
            assert error < 1e-7, f"{what} {path}{name}: relative error {error:.2e}"


@pytest.mark.parametrize("pack", [1, 2])
@pytest.mark.parametrize("kind", ["mlp", "conv"])
def test_the_generators_gradient_through_a_conditional_discriminator(kind, pack):
    """G's parameter gradients from generator_loss_backward against central differences of the
    generator loss with G's and D's inputs concatenated (and packed) by hand."""
    gan = tiny_gan(kind, pack)
    z, labels = gan.sample_noise(4 * pack), np.random.default_rng(2).integers(0, K, 4 * pack)
    gan.generator.zero_grad()
    gan.discriminator.zero_grad()
    gan.generator_loss_backward(z, labels)

    def generator_loss():
        fake = gan.generator.forward(generator_input(z, labels))[0]
        logits = gan.discriminator.forward(by_hand(fake, labels, pack))[0]
        return gan.generator_loss_and_grad(logits)[0]

    assert_gradients_match(gan.generator, generator_loss, "generator")
    for layer in gan.discriminator.walk():
        assert not any(grad.any() for grad in layer.grads.values()), "D's grads must stay zero"


@pytest.mark.parametrize("pack", [1, 2])
@pytest.mark.parametrize("kind", ["mlp", "conv"])
@pytest.mark.parametrize("joined", [True, False])
def test_the_discriminators_gradient_on_a_conditional_batch(kind, pack, joined):
    """D's parameter gradients on a real and a fake batch of the same labels, one pass over both
    or one each, against central differences of L_D on inputs concatenated by hand."""
    gan = tiny_gan(kind, pack)
    gan.join_d_batches = joined
    real, labels = real_batch(kind, 4 * pack)
    fake = gan.generate(gan.sample_noise(4 * pack), labels)
    gan.discriminator.zero_grad()
    gan.discriminator_loss_backward(real, fake, labels)

    def discriminator_loss():
        logits_real = gan.discriminator.forward(by_hand(real, labels, pack))[0]
        logits_fake = gan.discriminator.forward(by_hand(fake, labels, pack))[0]
        return gan.discriminator_loss(logits_real, logits_fake)[0]

    assert_gradients_match(gan.discriminator, discriminator_loss, "discriminator")


def softplus(x):
    return np.logaddexp(0.0, x)


@pytest.mark.parametrize("pack", [1, 2])
@pytest.mark.parametrize("kind", ["mlp", "conv"])
@pytest.mark.parametrize("step", ["joined", "apart", "simultaneous"])
def test_a_matching_aware_discriminator_judges_real_samples_of_wrong_classes_as_fakes(
    kind, pack, step
):
    """D's parameter gradients of the alternating step (one pass over the three batches, or one
    pass each) and of the simultaneous step against central differences of
    L_D = -log D(x, y) - 1/2 log(1 - D(G(z, y), y)) - 1/2 log(1 - D(x, y')), written out, with the
    wrong classes y' drawn as the step draws them: (y + s) mod K, s uniform in 1 .. K - 1."""
    gan = tiny_gan(kind, pack, matching_aware=True, simultaneous=step == "simultaneous")
    gan.join_d_batches = step == "joined"
    gan.d_optimizer.lr = gan.g_optimizer.lr = 0.0  # the step leaves the weights where they are
    real, labels = real_batch(kind, 4 * pack)
    draws = copy.deepcopy(gan.rng)
    if step == "simultaneous":
        stats = gan.simultaneous_step(real, labels)
        loss = stats.d_loss
        z = draws.standard_normal((4 * pack, 2))
        fake = gan.generator.forward(generator_input(z, labels))[0]
    else:
        fake = gan.generate(gan.sample_noise(4 * pack), labels)
        draws = copy.deepcopy(gan.rng)
        gan.discriminator.zero_grad()
        loss = gan.discriminator_loss_backward(real, fake, labels)[0]
    wrong = (labels + 1 + np.floor(draws.random(4 * pack) * (K - 1)).astype(int)) % K
    assert (wrong != labels).all()

    def discriminator_loss():
        logits_real = gan.discriminator.forward(by_hand(real, labels, pack))[0]
        logits_fake = gan.discriminator.forward(by_hand(fake, labels, pack))[0]
        logits_wrong = gan.discriminator.forward(by_hand(real, wrong, pack))[0]
        fake_term = softplus(logits_fake).mean() + softplus(logits_wrong).mean()
        return softplus(-logits_real).mean() + fake_term / 2

    assert float(loss) == pytest.approx(discriminator_loss(), rel=1e-12)
    assert_gradients_match(gan.discriminator, discriminator_loss, f"matching-aware D, {step}")


def test_the_wrong_classes_are_spread_over_the_other_classes():
    gan = tiny_gan("mlp", matching_aware=True)
    labels = np.repeat(np.arange(K), 3000)
    wrong = gan.mismatched_labels(labels, np.zeros((len(labels), 4)))
    for k in range(K):
        counts = np.bincount(wrong[labels == k], minlength=K)
        assert counts[k] == 0
        others = counts[np.arange(K) != k]
        # each of the K - 1 others gets 3000 / 2 draws, give or take 4 standard deviations
        assert np.all(np.abs(others - 1500) < 4 * np.sqrt(3000 * 0.25)), counts
    with pytest.raises(ValueError, match="^matching_aware judges samples with wrong classes"):
        GAN(
            gan.generator,
            gan.discriminator,
            gan.g_optimizer,
            gan.d_optimizer,
            2,
            gan.rng,
            matching_aware=True,
        )


def penalty_by_hand(gan, points, labels, kind, weight):
    """The penalty on the samples' part of D's input gradient, over the packs of ``points``."""
    inputs = by_hand(points, labels, gan.pack)
    outputs, cache = gan.discriminator.forward(inputs)
    g = gan.discriminator.backward(np.ones_like(outputs), cache, param_grads=False)
    per_sample = g.reshape(g.shape[0] * gan.pack, g.shape[1] // gan.pack, *g.shape[2:])
    rows = per_sample[:, : per_sample.shape[1] - K].reshape(g.shape[0], -1)
    norms = np.sqrt((rows * rows).sum(axis=1))
    if kind == "r1":
        return weight / 2 * np.mean(norms**2)
    return weight * np.mean((norms - 1) ** 2)


@pytest.mark.parametrize("pack", [1, 2])
@pytest.mark.parametrize("kind", ["mlp", "conv"])
@pytest.mark.parametrize("penalty", ["r1", "wgan-gp"])
def test_a_conditional_gradient_penalty_is_on_the_samples_part_of_the_gradient(kind, pack, penalty):
    """The penalty's parameter gradient (double backprop through the conditioned input) against
    central differences of the penalty computed by hand on the samples' entries of D's input
    gradient, at the same points (the interpolation weights drawn once per pack)."""
    weight = 3.0
    gan = tiny_gan(kind, pack, loss=gan_loss("wasserstein"), penalty=penalty, penalty_weight=weight)
    real, labels = real_batch(kind, 4 * pack)
    fake = gan.generate(gan.sample_noise(4 * pack), labels)
    draws = copy.deepcopy(gan.rng)
    gan.discriminator.zero_grad()
    value = gan.penalty_backward(real, fake, labels)
    points = real
    if penalty == "wgan-gp":
        eps = np.repeat(draws.random((4,) + (1,) * (real.ndim - 1)), pack, axis=0)
        points = eps * real + (1 - eps) * fake
    by_hand_value = penalty_by_hand(gan, points, labels, penalty, weight)
    assert float(value) == pytest.approx(by_hand_value, rel=1e-12)
    assert by_hand_value > 1e-3  # a penalty that vanished would check nothing

    assert_gradients_match(
        gan.discriminator,
        lambda: penalty_by_hand(gan, points, labels, penalty, weight),
        f"{penalty} penalty",
    )


@pytest.mark.parametrize("kind", ["mlp", "conv"])
@pytest.mark.parametrize(
    "rules",
    [
        {},
        {"simultaneous": True},
        {"reuse_noise": True, "g_steps": 2},
        {"matching_aware": True},
        {"matching_aware": True, "simultaneous": True},
    ],
)
def test_a_seeded_conditional_step_is_deterministic_and_its_labels_matter(kind, rules):
    runs = []
    for labels_seed in (5, 5, 6):
        gan = tiny_gan(kind, 2, **rules)
        real, _ = real_batch(kind, 8)
        labels = np.random.default_rng(labels_seed).integers(0, K, 8)
        batch = (real, labels)
        stats = [gan.train_step(lambda b=batch: b).as_floats() for _ in range(2)]
        params = [p.copy() for layer in gan.generator.walk() for p in layer.params.values()]
        runs.append((stats, params))
    (stats_a, params_a), (stats_b, params_b), (_, params_other) = runs
    assert stats_a == stats_b
    for a, b in zip(params_a, params_b, strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, c) for a, c in zip(params_a, params_other, strict=True))


@pytest.mark.parametrize(
    "rules", [{}, {"simultaneous": True}, {"d_steps": 2, "g_steps": 2, "reuse_noise": True}]
)
def test_a_steps_fakes_are_made_for_its_real_batchs_labels(rules):
    """Every conditioned input of a step (G's noise, the real and fake samples shown to D) carries
    the labels of the real batch being used, the generator updates those of the last one."""
    gan = tiny_gan("mlp", **rules)
    served, seen = [], []
    conditioned = gan.conditioned

    def next_real_batch():
        served.append(real_batch("mlp", 4, seed=len(served)))
        return served[-1]

    def spy(samples, labels):
        seen.append(labels)
        return conditioned(samples, labels)

    gan.conditioned = spy
    gan.train_step(next_real_batch)
    assert len(served) == rules.get("d_steps", 1)
    # each D update conditions G's noise, the real and the fake samples; each G update its
    # noise and its fakes; the simultaneous step shares the noise and the fakes
    if rules.get("simultaneous"):
        expected = [served[0][1]] * 3
    else:
        expected = [labels for _, labels in served for _ in range(3)]
        expected += [served[-1][1]] * (2 * rules.get("g_steps", 1))
    assert len(seen) == len(expected) and all(a is b for a, b in zip(seen, expected, strict=True))


@pytest.mark.parametrize("matching_aware", [False, True])
def test_conditioning_on_a_device_reads_nothing_back(matching_aware):
    """A conditional step on the emulated device with labels already there: no scalar read, no
    transfer (a range check of device labels would be one; see tinygan.gan), also when the wrong
    classes of a matching-aware D are drawn."""
    gan = tiny_gan("mlp", 2, matching_aware=matching_aware).to("emulated")
    real, labels = real_batch("mlp", 8)
    batch = (to_device(real, "emulated"), to_device(labels, "emulated"))
    gan.train_step(lambda: batch)  # the first step draws the noise generator's first block
    with transfers.counting() as counts:
        stats = gan.train_step(lambda: batch)
    assert counts.scalar_reads == 0 and counts.to_host == 0 and counts.to_device == 0, counts
    assert all(np.isfinite(value) for value in stats.as_floats().values())
    host = gan.generate(to_device(gan.sample_noise(3), "emulated"), np.array([0, 1, 2]))
    assert to_numpy(host).shape == (3, 4)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (None, r"^a conditional GAN needs labels: an integer array of 4 classes in \[0, 3\)$"),
        (
            np.array([0, 1, 2, 3]),
            r"^labels must be classes in \[0, 3\); 1 of 4 are not, the first is 3$",
        ),
        (
            np.array([0, -1, 2, 1]),
            r"^labels must be classes in \[0, 3\); 1 of 4 are not, the first is -1$",
        ),
        (np.array([0, 1, 2]), r"^labels must have shape \(4,\), one class per sample, got \(3,\)$"),
        (
            np.zeros((4, 1), int),
            r"^labels must have shape \(4,\), one class per sample, got \(4, 1\)$",
        ),
        (
            np.array([0.0, 1.0, 2.0, 1.0]),
            r"^labels must be integers \(class indices\), got float64",
        ),
        (
            np.array([True, False, True, True]),
            r"^labels must be integers \(class indices\), got bool",
        ),
    ],
)
def test_bad_labels_are_refused_in_one_line(labels, message):
    gan = tiny_gan("mlp")
    real = real_batch("mlp", 4)[0]
    for call in (
        lambda: gan.discriminator_step(real, labels=labels),
        lambda: gan.generator_step(4, labels=labels),
        lambda: gan.generate(gan.sample_noise(4), labels),
    ):
        with pytest.raises(ValueError, match=message):
            call()


def test_labels_for_an_unconditional_gan_and_unpaired_batches_are_refused():
    gan = tiny_gan("mlp")
    with pytest.raises(ValueError, match=r"^a conditional GAN trains on \(samples, labels\) pairs"):
        gan.train_step(lambda: real_batch("mlp", 4)[0])
    plain = copy.deepcopy(gan)
    plain.num_classes = None
    with pytest.raises(ValueError, match=r"^labels given to an unconditional GAN"):
        plain.generate(plain.sample_noise(2), np.array([0, 1]))
    networks = (gan.generator, gan.discriminator, gan.g_optimizer, gan.d_optimizer, 2, gan.rng)
    for bad in (1, 0, 2.0, True, "10"):
        with pytest.raises(ValueError, match=r"^num_classes must be an int >= 2 or None"):
            GAN(*networks, num_classes=bad)
    # checked when the GAN is made: a conditional penalty is not computed by gradient_penalty,
    # which checks it too
    for bad in (-1.0, "10", True):
        with pytest.raises(ValueError, match=r"^penalty_weight must be a number >= 0, got"):
            GAN(*networks, num_classes=K, penalty="r1", penalty_weight=bad)


def test_check_labels_returns_host_labels_as_an_array():
    labels = check_labels([2, 0, 1], 3, 3)
    assert isinstance(labels, np.ndarray)
    np.testing.assert_array_equal(labels, [2, 0, 1])


CONDITIONAL_PRESETS = ["mlp-tf", "mlp-book", "dcgan-tf", "dcgan-keras", "dcgan-fast"]


@pytest.mark.parametrize("pack", [1, 2])
@pytest.mark.parametrize("name", CONDITIONAL_PRESETS)
def test_conditional_presets_widen_both_first_layers_and_train(name, pack):
    # one generator update a step: dcgan-keras' five would only make the test slower
    preset = replace(get_preset(name), conditional=True, pack=pack, g_steps=1)
    gan = preset.make_gan(np.random.default_rng(0), np.random.default_rng(1))
    assert gan.num_classes == preset.classes == 10 and gan.matching_aware
    first_g = next(layer for layer in gan.generator.walk() if layer.params)
    first_d = next(layer for layer in gan.discriminator.walk() if layer.params)
    assert first_g.in_features == preset.latent_dim + 10
    width = first_d.in_channels if isinstance(first_d, Conv2D) else first_d.in_features
    assert width == pack * (preset.data_shape[0] + 10) == preset.packed_shape[0]
    rng = np.random.default_rng(2)
    real = rng.uniform(0, 1, (3 * pack, *preset.data_shape)).astype(np.float32)
    stats = gan.train_step(lambda: (real, rng.integers(0, 10, 3 * pack))).as_floats()
    assert all(np.isfinite(value) for value in stats.values())


@pytest.mark.parametrize("name", ["gaussian-1d", "ring"])
def test_presets_without_classes_refuse_conditioning(name):
    preset = replace(get_preset(name), conditional=True)
    with pytest.raises(ValueError, match=r"^num_classes: the .* GAN's data have no classes"):
        preset.make_gan(np.random.default_rng(0), np.random.default_rng(1))


def test_generate_takes_one_label_for_all_or_one_per_image():
    preset = replace(get_preset("mlp-tf"), conditional=True)
    generator, _ = preset.networks(np.random.default_rng(0))
    sevens, latents = generate(generator, preset, 5, seed=3, labels=7)
    same, same_latents = generate(generator, preset, 5, seed=3, labels=np.full(5, 7))
    np.testing.assert_array_equal(sevens, same)
    np.testing.assert_array_equal(latents, same_latents)
    mixed, _ = generate(
        generator, preset, 5, seed=3, labels=np.array([7, 1, 7, 1, 7]), batch_size=2
    )
    np.testing.assert_allclose(mixed[0::2], sevens[0::2], atol=1e-6)
    assert not np.allclose(mixed[1::2], sevens[1::2], atol=1e-3)  # the class changes the image
    by_latents, _ = generate(generator, preset, latents=latents, labels=7)
    np.testing.assert_array_equal(by_latents, sevens)
    inputs = np.concatenate([latents, np.eye(10)[[7] * 5]], axis=1).astype(np.float32)
    np.testing.assert_allclose(sevens.reshape(5, -1), generator(inputs), atol=1e-6)


def test_generate_refuses_missing_bad_or_unwanted_labels():
    preset = replace(get_preset("mlp-tf"), conditional=True)
    generator, _ = preset.networks(np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"^preset mlp-tf is conditional: give labels"):
        generate(generator, preset, 4, seed=0)
    with pytest.raises(ValueError, match=r"^labels must be classes in \[0, 10\)"):
        generate(generator, preset, 4, seed=0, labels=10)
    with pytest.raises(ValueError, match=r"^labels must have shape \(4,\)"):
        generate(generator, preset, 4, seed=0, labels=[1, 2])
    plain = get_preset("mlp-tf")
    plain_generator, _ = plain.networks(np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"^labels given for preset mlp-tf, which is not cond"):
        generate(plain_generator, plain, 4, seed=0, labels=3)


def test_the_requested_class_controls_what_a_trained_generator_makes():
    """Two classes, two clusters: class 0 around (-2, 0), class 1 around (2, 0), standard
    deviation 0.2. After a few hundred steps, G(z, y) lands nearer its own class's centre than
    the other's for nearly every z, and close to it. An unconditional generator, or one ignoring
    y, would put half of each class's samples on the wrong side."""
    rng = np.random.default_rng(0)
    centres = np.array([[-2.0, 0.0], [2.0, 0.0]])
    generator = Sequential(Dense(2 + 2, 32, rng=rng), LeakyReLU(0.2), Dense(32, 2, rng=rng))
    discriminator = Sequential(Dense(2 + 2, 32, rng=rng), LeakyReLU(0.2), Dense(32, 1, rng=rng))
    gan = GAN(
        generator,
        discriminator,
        Adam([generator], lr=5e-3, beta1=0.5),
        Adam([discriminator], lr=5e-3, beta1=0.5),
        latent_dim=2,
        rng=make_rng(1, "cpu"),
        noise="normal",
        num_classes=2,
    )

    def batch():
        labels = rng.integers(0, 2, 64)
        points = centres[labels] + 0.2 * rng.standard_normal((64, 2))
        return points.astype(np.float32), labels

    for _ in range(400):
        gan.train_step(batch)
    z = gan.sample_noise(500, rng=np.random.default_rng(2))
    for label in (0, 1):
        points = gan.generate(z, np.full(500, label))
        distances = np.linalg.norm(points[:, None, :] - centres[None], axis=2)
        share = np.mean(distances.argmin(axis=1) == label)
        assert share > 0.95, f"class {label}: only {share:.0%} of its samples near its centre"
        # the untrained generator's samples lie about 2 from either centre, the data's 0.24
        median = np.median(distances[:, label])
        assert median < 1.0, f"class {label}: samples {median:.2f} from their centre"


# -- the conditional run: labelled batches, sample grids, quality, sample and eval -------------------


def test_labelled_batches_keep_each_label_with_its_sample_and_resume_exactly():
    """The batches of a BatchIterator over the same data and seed, each with its own labels; the
    state of a LabelledBatches continues the same batches."""
    data = np.arange(50.0).reshape(25, 2)
    labels = np.arange(25) % 7
    batches = LabelledBatches(data, labels, 4, np.random.default_rng(3))
    plain = BatchIterator(data, 4, np.random.default_rng(3))
    for _ in range(9):  # past the end of an epoch (6 steps)
        samples, classes = next(batches)
        np.testing.assert_array_equal(samples, next(plain))
        np.testing.assert_array_equal(classes, (samples[:, 0] // 2).astype(int) % 7)
    assert batches.epoch == plain.epoch == 1 and batches.steps_per_epoch == 6
    again = LabelledBatches(data, labels, 4, np.random.default_rng(99))
    again.load_state_dict(batches.state_dict())
    for _ in range(8):
        for a, b in zip(next(again), next(batches), strict=True):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"^labels must have shape \(25,\), one per example"):
        LabelledBatches(data, labels[:5], 4, np.random.default_rng(0))


def test_the_trainer_moves_a_labelled_batch_to_the_device():
    gan = tiny_gan("mlp").to("emulated")
    real, labels = real_batch("mlp", 8)
    trainer = Trainer(gan, LabelledBatches(real, labels, 4, np.random.default_rng(0)), "unused")
    trainer.device = "emulated"
    samples, classes = trainer.next_real_batch()
    assert device_of(samples) == device_of(classes) == "emulated"
    assert to_numpy(classes).dtype.kind == "i" and to_numpy(samples).shape == (4, 4)


def train_cli(out, *flags):
    argv = ["train", "mlp-tf", "--conditional", "--subset", "64", "--batch-size", "16"]
    argv += ["--split", "test", "--data-dir", str(mnist_dir()), "--seed", "3", "--no-quality"]
    return cli_main([*argv, "--out", str(out), "--no-progress", "--log-every", "2", *flags])


def generator_params(out):
    archive = read_checkpoint(sorted((out / "checkpoints").glob("step_*.npz"))[-1])
    return {key: value for key, value in archive.items() if key.startswith("G.")}


def test_a_conditional_run_is_recorded_resumed_exactly_and_kept_conditional(tmp_path, capsys):
    assert train_cli(tmp_path / "straight", "--iterations", "6") == 0
    assert "conditional on their 10 classes" in capsys.readouterr().out
    config = json.loads((tmp_path / "straight" / "config.json").read_text())
    assert config["settings"]["conditional"] is True
    assert config["preset_settings"]["conditional"] is True
    # 4 steps, then 2 more on --resume: the labels and their order continue exactly
    assert train_cli(tmp_path / "halves", "--iterations", "4") == 0
    assert train_cli(tmp_path / "halves", "--iterations", "6", "--resume") == 0
    straight, halves = (
        generator_params(tmp_path / "straight"),
        generator_params(tmp_path / "halves"),
    )
    assert straight.keys() == halves.keys()
    for key, value in straight.items():
        np.testing.assert_array_equal(value, halves[key], err_msg=key)
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        train_cli(tmp_path / "halves", "--iterations", "8", "--resume", "--no-conditional")
    assert stop.value.code == 2
    error = capsys.readouterr().err.strip()
    assert "--no-conditional: the run in" in error and "was started with --conditional" in error
    assert len(error.splitlines()) == 1


@pytest.mark.parametrize("preset", ["ring", "grid"])
def test_conditioning_is_refused_for_points_without_classes(preset, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        cli_main(["train", preset, "--conditional", "--out", str(tmp_path), "--iterations", "2"])
    assert stop.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.endswith(
        f"--conditional: preset {preset} trains on the points of its 2-D mixture, which have no "
        "classes to condition on"
    )
    assert len(error.splitlines()) == 1


def test_the_subset_keeps_each_label_with_its_image():
    folder = str(mnist_dir())
    settings = RunSettings(
        preset="mlp-tf", seed=0, split="test", subset=300, data_dir=folder, conditional=True
    )
    data, labels, _ = load_labelled_training_data(settings)
    images, all_labels = load_mnist("test", folder, download=False)
    assert data.shape == (300, 784) and labels.dtype == np.int64
    np.testing.assert_array_equal(labels, all_labels[:300])
    np.testing.assert_array_equal(data, images[:300].reshape(300, 784) / np.float32(255))


def conditional_preset(name="mlp-tf"):
    return replace(get_preset(name), conditional=True)


def test_the_sample_grid_has_a_row_per_class_and_a_noise_per_column(tmp_path):
    preset = conditional_preset()
    gan = preset.make_gan(np.random.default_rng(0), make_rng(1, "cpu"))
    grid = SampleGrid(1, 10, 3, (28, 28), (0.0, 1.0), np.random.default_rng(2), classes=10)
    trainer = SimpleNamespace(gan=gan, step=0, device="cpu", out_dir=tmp_path)
    grid.on_train_begin(trainer)  # writes the frame of step 0
    assert (tmp_path / "samples" / "step_000000.png").is_file()
    np.testing.assert_array_equal(grid.labels, np.repeat(np.arange(10), 3))
    for row in range(10):  # one noise vector per column, the same in every row
        np.testing.assert_array_equal(grid.noise[3 * row : 3 * row + 3], grid.noise[:3])
    expected = gan.generate(grid.noise, grid.labels).reshape(30, 28, 28)
    np.testing.assert_array_equal(grid.generate(trainer), expected)
    assert not np.allclose(expected[0], expected[3], atol=1e-3)  # row 1 is another class
    with pytest.raises(
        ValueError, match=r"^a grid of 10 classes has one row per class, got rows=8"
    ):
        SampleGrid(1, 8, 8, (28, 28), (0.0, 1.0), np.random.default_rng(2), classes=10)
    # the pixel histograms ask a conditional generator for every class in turn
    PixelHistograms(np.zeros((20, 784)), (0.0, 1.0), np.random.default_rng(3)).write(trainer, "x")
    assert (tmp_path / "pixel_histogram_x.png").is_file()


def test_class_accuracy_is_the_mean_over_the_classes_asked_for():
    requested = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
    predicted = np.array([0, 0, 0, 1, 1, 0, 2, 2, 2, 2])
    accuracy = class_accuracy(predicted, requested, 4)
    np.testing.assert_array_equal(accuracy.per_class[:3], [0.75, 0.5, 1.0])
    assert np.isnan(accuracy.per_class[3])  # class 3 was never asked for
    assert accuracy.mean == pytest.approx((0.75 + 0.5 + 1.0) / 3)
    np.testing.assert_array_equal(spread_labels(7, 3), [0, 1, 2, 0, 1, 2, 0])


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A conditional and an unconditional mlp-tf checkpoint, each after one training step."""
    folder, saved = tmp_path_factory.mktemp("conditional"), {}
    rng = np.random.default_rng(4)
    for conditional in (True, False):
        preset = replace(get_preset("mlp-tf"), conditional=conditional)
        gan = preset.make_gan(np.random.default_rng(0), make_rng(1, "cpu"))
        real = rng.uniform(0, 1, (16, 784)).astype(np.float32)
        batch = (real, rng.integers(0, 10, 16)) if conditional else real
        gan.train_step(lambda batch=batch: batch)
        settings = {"conditional": conditional}
        path = folder / f"conditional_{conditional}.npz"
        saved[conditional] = save_checkpoint(
            path, gan, metadata={"preset": "mlp-tf", "seed": 0, "settings": settings}
        )
    return saved


def test_sample_label_draws_one_class_and_no_label_one_row_per_class(checkpoints, tmp_path, capsys):
    generator, preset, _ = load_generator(checkpoints[True])
    assert preset.classes == 10 and generator.layers[0].in_features == 110
    out = tmp_path / "sevens"
    assert (
        cli_main(["sample", str(checkpoints[True]), "--label", "7", "--n", "5", "--out", str(out)])
        == 0
    )
    assert "5 images of preset mlp-tf, class 7 ->" in capsys.readouterr().out
    latents = np.load(out / "latents.npy")
    sevens, _ = generate(generator, preset, latents=latents, labels=np.full(5, 7))
    saved = np.stack([np.asarray(Image.open(out / f"sample_{i}.png")) for i in range(5)])
    saved = saved[:, ::2, ::2]  # each pixel drawn as 2x2
    np.testing.assert_allclose(saved / 255, sevens, atol=1 / 255)  # PNGs hold 8-bit pixels

    out = tmp_path / "rows"
    assert cli_main(["sample", str(checkpoints[True]), "--out", str(out)]) == 0
    assert "80 images of preset mlp-tf, one row per class (0 to 9) ->" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["grid.png", "latents.npy"]
    latents = np.load(out / "latents.npy")
    assert latents.shape == (80, 100)
    for row in range(10):  # the same vector down each column
        np.testing.assert_array_equal(latents[8 * row : 8 * row + 8], latents[:8])
    assert np.asarray(Image.open(out / "grid.png")).shape[:2] == grid_png_shape(10, 8)


def grid_png_shape(rows, cols):
    folder = Path(tempfile.mkdtemp())
    save_image_grid(np.zeros((rows * cols, 28, 28)), folder / "g.png", rows, cols)
    return np.asarray(Image.open(folder / "g.png")).shape[:2]


@pytest.mark.parametrize(
    ("conditional", "flags", "message"),
    [
        (
            False,
            ["--label", "3"],
            r"--label 3: .*conditional_False\.npz is of an unconditional mlp-tf run, which takes no "
            r"class \(train with --conditional for one that does\)$",
        ),
        (True, ["--label", "10"], r"--label 10: preset mlp-tf's classes are 0 to 9$"),
        (
            True,
            ["--n", "64"],
            r"--n 64: without --label, a conditional checkpoint draws one row per class; give a "
            r"multiple of 10, or --label$",
        ),
    ],
)
def test_sample_refuses_labels_it_cannot_draw_in_one_line(
    checkpoints, tmp_path, capsys, conditional, flags, message
):
    with pytest.raises(SystemExit) as stop:
        cli_main(["sample", str(checkpoints[conditional]), *flags, "--out", str(tmp_path)])
    assert stop.value.code == 2
    error = capsys.readouterr().err.strip()
    assert re.search(message, error) and len(error.splitlines()) == 1
    assert not (tmp_path / "latents.npy").exists()


def test_eval_reports_the_class_accuracy_of_each_class(checkpoints, capsys):
    """The accuracy figures against the classifier's own calls on the very images generated."""
    result = evaluate_checkpoint(checkpoints[True], n=40, data_dir=mnist_dir(), batch_size=20)
    generator, preset, _ = load_generator(checkpoints[True])
    labels = spread_labels(40, 10)
    images, _ = generate(generator, preset, 40, seed=0, batch_size=20, labels=labels)
    classifier = choose_classifier("mnist", mnist_dir(), verbose=False).classifier
    predicted = classifier.embed(images, 20)[1].argmax(axis=1)
    by_class = [np.mean(predicted[labels == k] == k) for k in range(10)]
    np.testing.assert_allclose(result["generated"]["class_accuracies"], by_class)
    assert result["generated"]["class_accuracy"] == pytest.approx(np.mean(by_class))
    assert result["real"]["class_accuracy"] > 0.95  # the classifier's own, on real digits
    report = capsys.readouterr().out
    assert "class accuracy (asked-for class)" in report
    assert "class accuracy by asked-for class:" in report
    assert f"9: {100 * by_class[9]:.1f}%" in report.splitlines()[-2]  # the generated line


def test_the_old_sampling_path_takes_labels(checkpoints):
    from tinygan.sampling import generate as old_generate

    generator, preset, _ = load_generator(checkpoints[True])
    threes, _ = old_generate(generator, preset, 3, seed=1, labels=[3, 3, 3])
    np.testing.assert_array_equal(threes, generate(generator, preset, 3, seed=1, labels=3)[0])


def test_the_best_generator_of_a_conditional_run_keeps_its_class_accuracy(tmp_path):
    trainer = fresh_run(tmp_path)
    keeper = KeepBest()
    row = {"n": 20, "fid": 40.0, "inception_score": 8.0, "classes_hit": 10, "class_kl": 0.01}
    row |= {"precision": 0.7, "recall": 0.6, "class_accuracy": 0.9625}
    assert keeper.keep_if_best(trainer, row)
    assert best_checkpoint_info(tmp_path / "checkpoints")["class_accuracy"] == 0.9625
    assert keeper.summary().endswith("recall 0.600, 96.2% of the asked-for class")
