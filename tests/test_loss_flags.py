"""Choosing the game per run: --loss, --n-critic, --clip, --penalty, --penalty-weight and
--spectral-norm reach the GAN, config.json and the checkpoints, and --resume keeps them."""

import json
from dataclasses import replace

import numpy as np
import pytest
from conftest import mnist_dir

from tinygan.backend import make_rng
from tinygan.gan import GAN
from tinygan.gradcheck import numerical_gradient, rel_error
from tinygan.losses import GAN_LOSSES, WEIGHT_CLIP, HingeLoss, LeastSquaresLoss
from tinygan.models import get_preset
from tinygan.nn import Dense, LeakyReLU, Sequential, SpectralConv2D, SpectralDense, Tanh
from tinygan.nn.spectral_norm import spectrally_normalized
from tinygan.optim import Adam, RMSprop
from tinygan.run.checkpoint import checkpoint_files, load_for_inference, read_checkpoint
from tinygan.run.experiment import WGAN_LR, configure, main


def data_flags(out):
    return [
        *["--data-dir", str(mnist_dir()), "--split", "test", "--no-progress", "--no-download"],
        *["--out", str(out), "--subset", "64", "--batch-size", "8", "--seed", "3"],
    ]


def recorded(out):
    """The settings in config.json and in the newest checkpoint's metadata (they must agree)."""
    config = json.loads((out / "config.json").read_text())["settings"]
    newest = checkpoint_files(out / "checkpoints")[0]
    assert json.loads(str(read_checkpoint(newest)["metadata"]))["settings"] == config
    return config


@pytest.mark.parametrize("name", list(GAN_LOSSES))
def test_every_loss_trains_mlp_tf_and_is_recorded(tmp_path, capsys, name):
    out = tmp_path / name
    trainer = main(["--preset", "mlp-tf", "--loss", name, "--iterations", "4", *data_flags(out)])
    gan = trainer.gan
    assert gan.loss.name == name and recorded(out)["loss"] == name
    log = np.genfromtxt(out / "log.csv", delimiter=",", names=True)
    assert all(np.isfinite(log[column]).all() for column in log.dtype.names)
    if name == "wasserstein":  # the WGAN paper's recipe
        assert gan.d_steps == 5 and gan.clip == WEIGHT_CLIP
        assert isinstance(gan.d_optimizer, RMSprop) and gan.d_optimizer.lr == WGAN_LR
        assert isinstance(gan.g_optimizer, RMSprop) and gan.g_optimizer.lr == WGAN_LR
        said = "loss wasserstein, 5 D update(s) per G update, D's weights clipped to [-0.01, 0.01]"
        assert said in capsys.readouterr().out
    else:
        assert gan.d_steps == 1 and gan.clip is None and isinstance(gan.d_optimizer, Adam)


@pytest.mark.parametrize(
    "flags, penalty, weight",
    [(["--penalty", "wgan-gp"], "wgan-gp", 10.0), (["--penalty", "r1"], "r1", 10.0)]
    + [(["--penalty", "r1", "--penalty-weight", "0.5"], "r1", 0.5)],
)
def test_gradient_penalties_train_mlp_tf_and_are_recorded(tmp_path, flags, penalty, weight):
    out = tmp_path / "run"
    gan = main(["--preset", "mlp-tf", *flags, "--iterations", "3", *data_flags(out)]).gan
    assert (gan.penalty, gan.penalty_weight) == (penalty, weight)
    settings = recorded(out)
    assert (settings["penalty"], settings["penalty_weight"]) == (penalty, weight)


def test_spectral_norm_trains_mlp_tf_and_the_checkpoint_rebuilds_its_discriminator(tmp_path):
    out = tmp_path / "run"
    gan = main(["--preset", "mlp-tf", "--spectral-norm", "--iterations", "3", *data_flags(out)]).gan
    assert [type(layer) for layer in gan.discriminator.layers][::2] == [SpectralDense] * 2
    assert recorded(out)["spectral_norm"] is True
    newest = checkpoint_files(out / "checkpoints")[0]
    loaded, preset, _ = load_for_inference(newest, "discriminator")
    assert preset.spectral_norm
    for mine, theirs in zip(gan.discriminator.walk(), loaded.walk(), strict=True):
        assert type(mine) is type(theirs)
        for name, value in {**mine.params, **mine.buffers}.items():
            np.testing.assert_array_equal(value, {**theirs.params, **theirs.buffers}[name])


def test_resume_keeps_the_game_and_refuses_to_change_it(tmp_path, capsys):
    out = tmp_path / "run"
    flags = ["--loss", "hinge", "--n-critic", "2", "--clip", "0.5", "--penalty", "r1"]
    main(["--preset", "mlp-tf", *flags, "--spectral-norm", "--iterations", "2", *data_flags(out)])
    resumed = main(["--resume", "--out", str(out), "--iterations", "3"]).gan
    assert (resumed.loss.name, resumed.d_steps, resumed.clip) == ("hinge", 2, 0.5)
    assert (resumed.penalty, resumed.penalty_weight) == ("r1", 10.0)
    assert isinstance(resumed.discriminator.layers[0], SpectralDense)
    assert main(["--resume", "--out", str(out), "--iterations", "4", *flags]).step == 4
    changes = {
        "--loss least-squares": "started with hinge",
        "--n-critic 3": "started with 2",
        "--clip 0.1": "started with 0.5",
        "--penalty wgan-gp": "started with r1",
        "--penalty-weight 1.5": "started with 10.0",
        "--no-spectral-norm": "started with --spectral-norm",
    }
    for change, started in changes.items():
        with pytest.raises(SystemExit) as stop:
            main(["--resume", "--out", str(out), "--iterations", "5", *change.split()])
        assert stop.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and f"{change}: the run in" in err and started in err, err


def test_a_penalty_on_a_discriminator_with_batchnorm_is_refused_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--preset", "dcgan-fast", "--penalty", "wgan-gp", *data_flags(tmp_path / "run")])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--penalty wgan-gp:" in err and "BatchNorm" in err
    assert not (tmp_path / "run" / "config.json").exists()


def test_a_penalty_weight_without_a_penalty_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--preset", "mlp-tf", "--penalty-weight", "3", *data_flags(tmp_path / "run")])
    assert stop.value.code == 2 and "give --penalty too" in capsys.readouterr().err


def test_wasserstein_defaults_give_way_to_the_flags():
    mlp, ring = get_preset("mlp-tf"), get_preset("ring")
    wgan = configure(mlp, {"loss": "wasserstein"})
    assert (wgan.d_steps, wgan.clip, wgan.optimizer, wgan.d_lr) == (5, WEIGHT_CLIP, "rmsprop", 5e-5)
    given = configure(mlp, {"loss": "wasserstein", "lr": 1e-4, "n_critic": 2, "clip": 0.1})
    assert (given.d_steps, given.clip, given.optimizer, given.g_lr) == (2, 0.1, "rmsprop", 1e-4)
    # a gradient penalty replaces the clipping and the paper's optimizer
    gp = configure(mlp, {"loss": "wasserstein", "penalty": "wgan-gp"})
    assert (gp.d_steps, gp.clip, gp.optimizer, gp.d_lr) == (5, None, "adam", mlp.d_lr)
    assert gp.penalty_weight == 10.0
    # the critic's updates alternate with G's, unless --simultaneous insists (and is refused)
    assert not configure(ring, {"loss": "wasserstein"}).simultaneous
    assert configure(ring, {"loss": "wasserstein", "simultaneous": True}).simultaneous
    assert configure(ring, {"loss": "hinge"}) == replace(ring, generator_loss="hinge")
    assert configure(mlp, {}) == mlp


def tiny_gan(loss, **options):
    rng = np.random.default_rng(0)
    generator = Sequential(Dense(3, 6, rng=rng), LeakyReLU(0.2), Dense(6, 4, rng=rng), Tanh())
    discriminator = Sequential(Dense(4, 7, rng=rng), LeakyReLU(0.2), Dense(7, 1, rng=rng))
    generator.astype(np.float64)
    discriminator.astype(np.float64)
    optimizers = Adam([generator], lr=1e-2), Adam([discriminator], lr=1e-2)
    return GAN(generator, discriminator, *optimizers, 3, make_rng(0), loss=loss, **options)


@pytest.mark.parametrize("loss", [HingeLoss(), LeastSquaresLoss()], ids=repr)
def test_the_generators_gradient_through_the_discriminator_for_other_losses(loss):
    """G's parameter gradients from one generator step's backward pass match central
    differences of G's loss through D, in float64."""
    gan = tiny_gan(loss)
    z = gan.sample_noise(5)
    gan.generator.zero_grad()
    gan.generator_loss_backward(z)

    def generator_loss():
        fake = gan.generator.forward(z)[0]
        return gan.generator_loss_and_grad(gan.discriminator.forward(fake)[0])[0]

    for path, layer in gan.generator.named_layers():
        for name, param in layer.params.items():
            error = rel_error(layer.grads[name], numerical_gradient(generator_loss, param))
            assert error < 1e-7, f"generator {path}{name}: relative error {error:.2e}"


def test_the_discriminators_step_with_least_squares_and_r1_matches_finite_differences(rng):
    """D's gradient in a step is its loss's plus the penalty's: checked against central
    differences of L_D + P together, in float64."""
    gan = tiny_gan(LeastSquaresLoss(), penalty="r1", penalty_weight=3.0)
    real, fake = rng.uniform(-1, 1, (6, 4)), gan.generate(gan.sample_noise(6))
    gan.discriminator.zero_grad()
    loss = gan.discriminator_loss_backward(real, fake)[0] + gan.penalty_backward(real, fake)

    def total():
        outputs = gan.discriminator.forward(np.concatenate([real, fake]))[0]
        value = gan.discriminator_loss(outputs[:6], outputs[6:])[0]
        g = gan.discriminator.input_gradient(np.ones((6, 1)), gan.discriminator.forward(real)[1])
        return value + 1.5 * (g[0] ** 2).sum() / 6

    assert np.isclose(float(loss), total(), rtol=1e-12)
    for path, layer in gan.discriminator.named_layers():
        for name, param in layer.params.items():
            error = rel_error(layer.grads[name], numerical_gradient(total, param))
            assert error < 1e-7, f"discriminator {path}{name}: relative error {error:.2e}"


def test_weight_clipping_clips_the_discriminator_after_its_step(rng):
    gan = tiny_gan(HingeLoss(), clip=0.05)
    gan.d_optimizer.lr = gan.g_optimizer.lr = 0.5  # steps far past the bound
    before = [param.copy() for layer in gan.discriminator.walk() for param in layer.params.values()]
    gan.train_step(lambda: rng.uniform(-1, 1, (6, 4)))
    after = [param for layer in gan.discriminator.walk() for param in layer.params.values()]
    assert all(np.abs(param).max() <= 0.05 for param in after)
    assert any((np.abs(param) == 0.05).any() for param in after)  # the bound was hit
    assert not all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    generator = [p for layer in gan.generator.walk() for p in layer.params.values()]
    assert max(np.abs(param).max() for param in generator) > 0.05  # G is not clipped


def test_scores_are_reported_raw_and_logits_as_probabilities(rng):
    real, z = rng.uniform(-1, 1, (6, 4)), rng.uniform(-1, 1, (6, 3))
    for loss, report in ((HingeLoss(), lambda x: x), (None, lambda x: 1 / (1 + np.exp(-x)))):
        gan = tiny_gan(loss)
        fake = gan.generate(z)
        outputs_real = gan.discriminator.forward(real)[0]
        outputs_fake = gan.discriminator.forward(fake)[0]
        _, d_real, d_fake = gan.discriminator_loss_backward(real, fake)
        assert np.isclose(d_real, report(outputs_real).mean(), rtol=1e-12)
        assert np.isclose(d_fake, report(outputs_fake).mean(), rtol=1e-12)


def test_spectrally_normalized_swaps_the_linear_layers_and_keeps_their_weights():
    rng = np.random.default_rng(0)
    _, plain = get_preset("dcgan-tf").build(rng)
    swapped = spectrally_normalized(plain, np.random.default_rng(1))
    kinds = {type(a).__name__: type(b) for a, b in zip(plain.layers, swapped.layers, strict=True)}
    assert kinds["Conv2D"] is SpectralConv2D and kinds["Dense"] is SpectralDense
    for mine, theirs in zip(plain.layers, swapped.layers, strict=True):
        if not mine.params:
            assert mine is theirs
        for name, value in mine.params.items():
            np.testing.assert_array_equal(value, theirs.params[name])
            assert value is not theirs.params[name]
    # evaluation mode computes with W / (u^T M v) for the stored u, v of the copied weights
    dense = spectrally_normalized(Sequential(Dense(5, 3, rng=rng)), rng).layers[0]
    W, u, v = dense.params["W"], dense.buffers["u"], dense.buffers["v"]
    np.testing.assert_allclose(v, W @ u / np.linalg.norm(W @ u), rtol=1e-6)
    x = rng.standard_normal((4, 5)).astype(np.float32)
    expected = x @ (W / (u @ W.T @ v)) + dense.params["b"]
    np.testing.assert_allclose(dense.forward(x, training=False)[0], expected, rtol=1e-5)


def test_a_resumed_run_with_a_penalty_and_spectral_norm_repeats_the_uninterrupted_one(tmp_path):
    """The interpolation weights come from the saved noise generator, and u, v from the saved
    buffers: a run stopped and resumed ends with the same weights as one that never stopped."""
    flags = ["--preset", "mlp-tf", "--loss", "hinge", "--penalty", "wgan-gp", "--spectral-norm"]
    straight = main([*flags, "--iterations", "4", *data_flags(tmp_path / "straight")]).gan
    main([*flags, "--iterations", "2", *data_flags(tmp_path / "split")])
    resumed = main(["--resume", "--out", str(tmp_path / "split"), "--iterations", "4"]).gan
    for network in ("generator", "discriminator"):
        layers = zip(
            getattr(straight, network).walk(), getattr(resumed, network).walk(), strict=True
        )
        for mine, theirs in layers:
            for name, value in {**mine.params, **mine.buffers}.items():
                np.testing.assert_array_equal(value, {**theirs.params, **theirs.buffers}[name])


def test_the_torch_twin_refuses_a_game_it_does_not_play():
    pytest.importorskip("torch")
    from tinygan.interop.torch_models import TorchGAN

    preset = replace(get_preset("mlp-tf"), generator_loss="hinge")
    generator, discriminator = preset.build(np.random.default_rng(0))
    with pytest.raises(ValueError, match="cross-entropy game with Adam.*plays hinge"):
        TorchGAN(preset, generator, discriminator, seed=0)
