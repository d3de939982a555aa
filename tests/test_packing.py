"""PacGAN's packing: the discriminator sees ``m`` samples side by side, its gradient goes back to each
of them, every preset trains with it, and a run keeps it."""

import copy
import json
from dataclasses import replace

import numpy as np
import pytest
from conftest import mnist_dir

from tinygan.backend import make_rng
from tinygan.gan import GAN, pack_samples, unpack_gradient
from tinygan.gradcheck import numerical_gradient, rel_error
from tinygan.models import get_preset, minibatch_std_before_logit
from tinygan.nn import BatchNorm, Conv2D, Dense, Flatten, LeakyReLU, Maxout, Sequential, Tanh
from tinygan.optim import Adam
from tinygan.run.checkpoint import (
    checkpoint_files,
    load_for_inference,
    read_checkpoint,
    write_checkpoint,
)
from tinygan.run.experiment import IMAGE_PRESETS, MIXTURE_PRESETS, main


def by_hand(samples, m):
    """Pack ``m`` consecutive samples side by side with an explicit concatenation: input ``n`` of
    the discriminator is samples ``n*m .. n*m + m - 1`` along axis 1 (features or channels)."""
    return np.concatenate([samples[i::m] for i in range(m)], axis=1)


@pytest.mark.parametrize(
    ("shape", "m"), [((6, 3), 2), ((6, 3), 3), ((6, 2, 3, 4), 2), ((4, 1, 5, 5), 4), ((5, 2), 1)]
)
def test_packing_concatenates_consecutive_samples_and_unpacking_undoes_it(shape, m):
    samples = np.random.default_rng(0).standard_normal(shape)
    packed = pack_samples(samples, m)
    assert packed.shape == (shape[0] // m, m * shape[1], *shape[2:])
    np.testing.assert_array_equal(packed, by_hand(samples, m))
    assert np.shares_memory(packed, samples)  # a view: packing copies nothing
    np.testing.assert_array_equal(unpack_gradient(packed, m), samples)


def test_packing_is_its_own_adjoints_transpose():
    """<pack(x), y> = <x, unpack(y)> for random x and y: unpack is the adjoint of pack."""
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((8, 2, 3, 3)), rng.standard_normal((4, 4, 3, 3))
    assert np.sum(pack_samples(x, 2) * y) == pytest.approx(np.sum(x * unpack_gradient(y, 2)))


def test_a_batch_that_does_not_split_into_packs_is_refused():
    with pytest.raises(ValueError, match="a batch of 5 samples does not split into packs of 2"):
        pack_samples(np.zeros((5, 2)), 2)


def small_gan(pack, g_batchnorm=True, seed=0, spread=False, **rules):
    """A float64 GAN on 3-feature samples whose D takes ``pack`` of them; with ``spread``, D's
    logit also weighs the batch's spread (a minibatch standard deviation)."""
    rng = np.random.default_rng(seed)
    norm = [BatchNorm(6, dtype=np.float64)] if g_batchnorm else []
    # a bias right before BatchNorm is cancelled by it (zero gradient): leave it out
    generator = Sequential(
        Dense(2, 6, bias=not g_batchnorm, rng=rng),
        *norm,
        LeakyReLU(0.2),
        Dense(6, 3, rng=rng),
        Tanh(),
    )
    discriminator = Sequential(
        Maxout(3 * pack, 5, 3, rng=rng), LeakyReLU(0.2), Dense(5, 1, rng=rng)
    )
    generator.astype(np.float64)
    discriminator.astype(np.float64)
    if spread:
        discriminator = minibatch_std_before_logit(discriminator)
        discriminator.layers[-1].params["W"][-1] = 0.7  # a weight on the statistic, so it counts
    return GAN(
        generator,
        discriminator,
        Adam([generator], lr=1e-2),
        Adam([discriminator], lr=1e-2),
        latent_dim=2,
        rng=make_rng(seed, "cpu"),
        noise="normal",
        pack=pack,
        **rules,
    )


@pytest.mark.parametrize("m", [2, 3])
def test_the_generators_gradient_through_a_packed_discriminator_matches_finite_differences(m):
    """The whole GAN: G's parameter gradients, routed back through D and the unpacking to each
    generated sample, against central differences of the generator loss computed with the packs
    concatenated by hand."""
    gan = small_gan(m)
    z = gan.sample_noise(4 * m)
    gan.generator.zero_grad()
    gan.generator_loss_backward(z)

    def generator_loss():
        fake = gan.generator.forward(z)[0]
        logits = gan.discriminator.forward(by_hand(fake, m))[0]
        return gan.generator_loss_and_grad(logits)[0]

    for path, layer in gan.generator.named_layers():
        for name, param in layer.params.items():
            error = rel_error(layer.grads[name], numerical_gradient(generator_loss, param))
            assert error < 1e-7, f"generator {path}{name}: relative error {error:.2e}"


@pytest.mark.parametrize("joined", [True, False])
def test_a_packed_discriminator_step_is_the_unpacked_step_on_packs_made_by_hand(joined):
    """D with pack 2 on 2N samples gives the losses and gradients of the same D, unpacked, on the
    N pairs concatenated by hand (with one pass over real and fake, and with two)."""
    packed = small_gan(2)
    plain = copy.deepcopy(packed)
    plain.pack = 1
    packed.join_d_batches = plain.join_d_batches = joined
    rng = np.random.default_rng(3)
    real, fake = rng.standard_normal((8, 3)), rng.standard_normal((8, 3))
    packed.discriminator.zero_grad()
    plain.discriminator.zero_grad()
    got = packed.discriminator_loss_backward(real, fake)
    want = plain.discriminator_loss_backward(by_hand(real, 2), by_hand(fake, 2))
    np.testing.assert_allclose([float(v) for v in got], [float(v) for v in want], rtol=1e-14)
    for (path, layer), twin in zip(
        packed.discriminator.named_layers(), plain.discriminator.walk(), strict=True
    ):
        for name, grad in layer.grads.items():
            np.testing.assert_allclose(grad, twin.grads[name], rtol=1e-13, err_msg=path + name)


def test_images_are_packed_along_the_channels():
    """A convolutional D with pack 2 sees the two images of a pair as one image of two channels."""
    rng = np.random.default_rng(4)
    discriminator = Sequential(
        Conv2D(2, 3, 3, stride=2, padding=1, rng=rng), Flatten(), Dense(3 * 3 * 3, 1, rng=rng)
    )
    images = rng.standard_normal((6, 1, 5, 5)).astype(np.float32)
    paired = np.stack([np.concatenate([images[2 * n], images[2 * n + 1]]) for n in range(3)])
    np.testing.assert_array_equal(
        discriminator(pack_samples(images, 2)), discriminator(paired.astype(np.float32))
    )


def test_the_simultaneous_step_routes_the_same_generator_gradient(rng):
    """One simultaneous step with pack 2 gives G the gradient of generator_loss_backward on its z."""
    gan = small_gan(2, simultaneous=True)
    before = copy.deepcopy(gan)
    z = before.sample_noise(8)  # the draw the step will make
    for optimizer in (gan.d_optimizer, gan.g_optimizer):
        optimizer.step = lambda: None  # keep the gradients to compare them
    gan.train_step(lambda: rng.standard_normal((8, 3)))
    before.generator.zero_grad()
    before.generator_loss_backward(z)
    for layer, twin in zip(gan.generator.walk(), before.generator.walk(), strict=True):
        for name, grad in layer.grads.items():
            np.testing.assert_allclose(grad, twin.grads[name], rtol=1e-12, atol=1e-15)


def test_pack_must_be_a_positive_int():
    gan = small_gan(1)
    networks = (gan.generator, gan.discriminator, gan.g_optimizer, gan.d_optimizer, 2, gan.rng)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="pack must be a positive int"):
            GAN(*networks, pack=bad)


@pytest.mark.parametrize("name", [*IMAGE_PRESETS, "gaussian-1d", *MIXTURE_PRESETS])
def test_every_preset_builds_and_steps_with_pack_2(name):
    preset = replace(get_preset(name), pack=2)
    gan = preset.make_gan(np.random.default_rng(0), np.random.default_rng(1))
    assert gan.pack == 2
    first = next(layer for layer in gan.discriminator.walk() if layer.params)
    width = first.in_channels if isinstance(first, Conv2D) else first.in_features
    assert width == 2 * preset.data_shape[0]
    low, high = np.clip(preset.value_range, -1, 1)
    real = np.random.default_rng(2).uniform(low, high, (2 * 3, *preset.data_shape))
    seen = []
    forward = gan.discriminator.forward
    gan.discriminator.forward = lambda x, training=True: (
        seen.append(x.shape) or forward(x, training)
    )
    stats = gan.train_step(lambda: real.astype(np.float32)).as_floats()
    assert all(np.isfinite(value) for value in stats.values())
    # one pass over the 3 real packs, the 3 fake ones, or both together
    assert {shape[1:] for shape in seen} == {preset.packed_shape}
    assert {shape[0] for shape in seen} <= {3, 6}


def data_flags(out):
    return [
        *["--data-dir", str(mnist_dir()), "--split", "test", "--no-progress", "--no-download"],
        *["--out", str(out), "--subset", "64", "--batch-size", "8"],
    ]


def test_a_run_records_its_packing_and_a_resume_keeps_it(tmp_path, capsys):
    out = tmp_path / "run"
    trainer = main(["--preset", "mlp-tf", "--pack", "2", "--iterations", "2", *data_flags(out)])
    assert trainer.gan.pack == 2 and len(next(trainer.batches)) == 16
    assert json.loads((out / "config.json").read_text())["settings"]["pack"] == 2
    newest = checkpoint_files(out / "checkpoints")[0]
    assert json.loads(str(read_checkpoint(newest)["metadata"]))["settings"]["pack"] == 2
    discriminator, preset, _ = load_for_inference(newest, "discriminator")
    assert preset.pack == 2 and discriminator.layers[0].in_features == 2 * 784

    resumed = main(["--resume", "--out", str(out), "--iterations", "3"])
    assert resumed.step == 3 and resumed.gan.pack == 2
    assert main(["--resume", "--out", str(out), "--iterations", "4", "--pack", "2"]).step == 4
    with pytest.raises(SystemExit) as stop:
        main(["--resume", "--out", str(out), "--iterations", "5", "--pack", "3"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--pack 3: the run in" in err and "started with 2" in err


def test_a_run_from_before_packing_resumes_unpacked(tmp_path):
    out = tmp_path / "old"
    main(["--preset", "mlp-tf", "--iterations", "1", *data_flags(out)])
    for path in checkpoint_files(out / "checkpoints"):  # as written before --pack existed
        archive = read_checkpoint(path)
        metadata = json.loads(str(archive["metadata"]))
        del metadata["settings"]["pack"]
        archive["metadata"] = json.dumps(metadata)
        write_checkpoint(path, archive)
    assert main(["--resume", "--out", str(out), "--iterations", "2"]).gan.pack == 1
