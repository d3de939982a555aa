"""``--minibatch-std`` on every preset: where the layer goes in D, what it adds, how it composes with
packing, conditioning and the gradient penalties, and how a run records, resumes and reloads it."""

import json
from dataclasses import replace

import numpy as np
import pytest
from conftest import mnist_dir
from test_packing import by_hand, small_gan

from tinygan.gradcheck import numerical_gradient, rel_error
from tinygan.models import PRESETS, get_preset, minibatch_std_before_logit
from tinygan.nn import Dense, MinibatchStd, Sequential
from tinygan.run.checkpoint import checkpoint_files, load_for_inference, read_checkpoint
from tinygan.run.cli import main as cli_main
from tinygan.run.experiment import TRAIN_PRESETS
from tinygan.run.flags import training_parser


def parameter_count(network):
    return sum(value.size for layer in network.walk() for value in layer.params.values())


@pytest.mark.parametrize("pack", [1, 2])
@pytest.mark.parametrize("name", list(PRESETS))
def test_the_layer_goes_before_ds_last_dense_which_gains_one_zero_row(name, pack):
    plain = replace(get_preset(name), pack=pack)
    generator, discriminator = plain.networks(np.random.default_rng(0))
    spread_generator, spread = replace(plain, minibatch_std=True).networks(np.random.default_rng(0))
    last = max(i for i, layer in enumerate(discriminator.layers) if type(layer) is Dense)
    dense = discriminator.layers[last]
    assert type(spread.layers[last]) is MinibatchStd and len(spread) == len(discriminator) + 1
    wider = spread.layers[last + 1]
    assert (wider.in_features, wider.out_features) == (dense.in_features + 1, dense.out_features)
    # exactly the one extra row of the widened Dense, which starts at zero
    assert parameter_count(spread) == parameter_count(discriminator) + dense.out_features
    np.testing.assert_array_equal(wider.params["W"][:-1], dense.params["W"])
    assert not wider.params["W"][-1].any()
    # the same weights from the same draws: G and every other layer of D are the plain preset's
    for a, b in zip(generator.walk(), spread_generator.walk(), strict=True):
        for key, value in a.params.items():
            np.testing.assert_array_equal(value, b.params[key])
    for index, layer in enumerate(discriminator.layers):
        if index != last:
            for key, value in layer.params.items():
                twin = spread.layers[index + (index > last)].params[key]
                np.testing.assert_array_equal(value, twin)
    low, high = np.clip(plain.value_range, -1, 1)
    x = np.random.default_rng(1).uniform(low, high, (3, *plain.packed_shape)).astype(np.float32)
    assert spread.forward(x, training=False)[0].shape == (3, 1)


def layer_inputs(layer):
    """Record the shape of every input ``layer`` sees from now on."""
    seen = []
    forward = layer.forward
    layer.forward = lambda x, training=True: seen.append(x.shape) or forward(x, training)
    return seen


@pytest.mark.parametrize(
    ("name", "pack", "conditional"),
    [("mlp-tf", 1, False), ("mlp-tf", 2, True), ("dcgan-fast", 2, True), ("ring", 3, False)],
)
def test_a_preset_with_it_trains_and_the_statistic_is_over_the_batch_of_packs(
    name, pack, conditional
):
    preset = replace(get_preset(name), pack=pack, conditional=conditional, minibatch_std=True)
    gan = preset.make_gan(np.random.default_rng(0), np.random.default_rng(1))
    assert not gan.join_d_batches  # real and fake each get their own statistic
    layer = next(layer for layer in gan.discriminator.walk() if isinstance(layer, MinibatchStd))
    seen = layer_inputs(layer)
    low, high = np.clip(preset.value_range, -1, 1)
    real = np.random.default_rng(2).uniform(low, high, (pack * 4, *preset.data_shape))
    batch = real.astype(np.float32)
    if conditional:
        labels = np.arange(pack * 4) % 10
        stats = gan.train_step(lambda: (batch, labels))
    else:
        stats = gan.train_step(lambda: batch)
    assert all(np.isfinite(value) for value in stats.as_floats().values())
    # 4 packs a pass: real, fake, (real with wrong classes,) and the fakes of G's update, which
    # the simultaneous step (ring) takes from D's pass over the fakes
    passes = (2 if preset.simultaneous else 3) + conditional
    assert {shape[0] for shape in seen} == {4} and len(seen) == passes
    assert {len(shape) for shape in seen} == {2}  # flat: after Flatten in a convolutional D


@pytest.mark.parametrize("m", [1, 2])
def test_the_generators_gradient_through_the_statistic_matches_finite_differences(m):
    """G's parameter gradients through a (packed) D whose last Dense weighs the batch's spread,
    against central differences of the generator loss with the packs made by hand."""
    gan = small_gan(m, spread=True)
    generator, discriminator = gan.generator, gan.discriminator
    z = gan.sample_noise(5 * m)
    generator.zero_grad()
    gan.generator_loss_backward(z)

    def generator_loss():
        fake = generator.forward(z)[0]
        return gan.generator_loss_and_grad(discriminator.forward(by_hand(fake, m))[0])[0]

    for path, layer in generator.named_layers():
        for name, param in layer.params.items():
            error = rel_error(layer.grads[name], numerical_gradient(generator_loss, param))
            assert error < 1e-7, f"generator {path}{name}: relative error {error:.2e}"


def test_a_discriminator_without_a_dense_layer_of_its_own_is_refused():
    with pytest.raises(ValueError, match="minibatch_std: the discriminator has no Dense layer"):
        minibatch_std_before_logit(Sequential(Sequential(Dense(3, 1))))


def test_the_flag_and_its_negation_are_in_the_help():
    text = " ".join(training_parser("test", TRAIN_PRESETS, "mlp-tf").format_help().split())
    assert "--minibatch-std, --no-minibatch-std" in text
    assert "D's last Dense layer also sees the batch's spread" in text
    assert "after Flatten in a convolutional D" in text and "--resume keeps it" in text


def train(out, *flags):
    argv = ["train", "mlp-tf", "--subset", "64", "--batch-size", "8", "--split", "test"]
    argv += ["--data-dir", str(mnist_dir()), "--seed", "5", "--no-quality", "--no-progress"]
    return cli_main([*argv, "--out", str(out), "--log-every", "2", *flags])


def network_params(out):
    archive = read_checkpoint(checkpoint_files(out / "checkpoints")[0])
    return {key: value for key, value in archive.items() if key[:2] in ("G.", "D.")}


def test_a_run_records_it_resumes_exactly_and_reloads_the_same_discriminator(tmp_path, capsys):
    flags = ("--pack", "2", "--minibatch-std")
    assert train(tmp_path / "straight", "--iterations", "6", *flags) == 0
    assert "packs of 2, D sees each batch's spread (minibatch std)" in capsys.readouterr().out
    config = json.loads((tmp_path / "straight" / "config.json").read_text())
    assert config["settings"]["minibatch_std"] is True
    assert config["preset_settings"]["minibatch_std"] is True
    newest = checkpoint_files(tmp_path / "straight" / "checkpoints")[0]
    discriminator, preset, metadata = load_for_inference(newest, "discriminator")
    assert preset.minibatch_std and metadata["settings"]["minibatch_std"] is True
    assert isinstance(discriminator.layers[-2], MinibatchStd)
    assert discriminator.layers[-1].in_features == 129

    assert train(tmp_path / "halves", "--iterations", "3", *flags) == 0
    assert train(tmp_path / "halves", "--iterations", "6", "--resume") == 0
    straight, halves = network_params(tmp_path / "straight"), network_params(tmp_path / "halves")
    assert straight.keys() == halves.keys() and any(key.startswith("D.") for key in straight)
    for key, value in straight.items():
        np.testing.assert_array_equal(value, halves[key], err_msg=key)

    assert train(tmp_path / "halves", "--iterations", "7", "--resume", "--minibatch-std") == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        train(tmp_path / "halves", "--iterations", "8", "--resume", "--no-minibatch-std")
    assert stop.value.code == 2
    error = capsys.readouterr().err.strip()
    assert "--no-minibatch-std: the run in" in error
    assert "was started with --minibatch-std" in error and len(error.splitlines()) == 1


@pytest.mark.parametrize("penalty", ["wgan-gp", "r1"])
def test_a_penalty_run_takes_the_second_pass_through_it(tmp_path, penalty):
    flags = ("--iterations", "2", "--minibatch-std", "--penalty", penalty, "--loss", "wasserstein")
    assert train(tmp_path / penalty, *flags) == 0
    config = json.loads((tmp_path / penalty / "config.json").read_text())
    assert config["settings"]["minibatch_std"] and config["settings"]["penalty"] == penalty
    losses = (tmp_path / penalty / "log.csv").read_text().splitlines()
    assert len(losses) >= 2 and "nan" not in losses[-1].lower()
