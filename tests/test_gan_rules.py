"""The step's variants (one D pass over both batches, simultaneous updates, reused noise,
inference-mode fakes), each preset's defaults, and how runs record and keep them."""

import copy
import json
import shutil

import numpy as np
import pytest
from conftest import mnist_dir

from tinygan.backend import make_rng
from tinygan.gan import GAN
from tinygan.gradcheck import numerical_gradient, rel_error
from tinygan.losses import sigmoid_cross_entropy
from tinygan.models import get_preset
from tinygan.nn import BatchNorm, Dense, Dropout, LeakyReLU, Sequential, Tanh, sigmoid
from tinygan.optim import Adam
from tinygan.rounding import assert_within_rounding, backward_magnitudes
from tinygan.run.checkpoint import checkpoint_files, read_checkpoint, write_checkpoint
from tinygan.run.experiment import IMAGE_PRESETS, STEP_RULES
from tinygan.run.experiment import main as cli_main
from tinygan.run.train import Trainer


def small_gan(d_batchnorm=False, g_batchnorm=False, d_dropout=False, seed=0, **rules):
    rng = np.random.default_rng(seed)
    g_norm = [BatchNorm(6)] if g_batchnorm else []
    generator = Sequential(
        Dense(3, 6, rng=rng), *g_norm, LeakyReLU(0.2), Dense(6, 4, rng=rng), Tanh()
    )
    d_norm = [BatchNorm(7)] if d_batchnorm else []
    d_drop = [Dropout(0.3, rng=np.random.default_rng(seed + 1))] if d_dropout else []
    # a bias right before BatchNorm is cancelled by it (zero gradient): leave it out, as DCGANs do
    discriminator = Sequential(
        Dense(4, 7, bias=not d_batchnorm, rng=rng),
        *d_norm,
        LeakyReLU(0.2),
        *d_drop,
        Dense(7, 1, rng=rng),
    )
    generator.astype(np.float64)
    discriminator.astype(np.float64)
    return GAN(
        generator,
        discriminator,
        Adam([generator], lr=1e-2),
        Adam([discriminator], lr=1e-2),
        latent_dim=3,
        rng=make_rng(seed, "cpu"),
        real_label=0.9,
        fake_label=0.1,
        **rules,
    )


def gradients(network):
    return {
        f"{path}{name}": grad.copy()
        for path, layer in network.named_layers()
        for name, grad in layer.grads.items()
    }


def test_one_pass_over_both_batches_only_without_batchnorm():
    assert small_gan().join_d_batches
    assert small_gan(d_dropout=True).join_d_batches
    assert not small_gan(d_batchnorm=True).join_d_batches
    assert get_preset("mlp-tf").make_gan(np.random.default_rng(0), make_rng(0)).join_d_batches


#: Roundings allowed each result of the float64 comparison of one pass with two: several times
#: the longest chain behind one (the forward sums of 4 and 7 terms, the loss's sigmoid, a library
#: call, the backward products, the sum over 10 rows, and the logits' own error carried through
#: the sigmoid's slope): still 1e-13 of the terms' magnitude.
D_ROUNDINGS = 1000


def test_joined_pass_gives_the_same_loss_and_gradients_as_two_passes(rng):
    """One pass over both batches sums in another order than two: within the rounding bound of
    each result, relative to the magnitude of its terms (a bias gradient may cancel to nothing)."""
    joined = small_gan()
    apart = copy.deepcopy(joined)
    apart.join_d_batches = False
    real = rng.uniform(-1, 1, size=(6, 4))[:5]
    fake = joined.generate(joined.sample_noise(5))[:5]
    results = []
    for gan in (joined, apart):
        gan.discriminator.zero_grad()
        stats = gan.discriminator_loss_backward(real, fake)
        results.append(([float(v) for v in stats], gradients(gan.discriminator)))
    # the loss and the mean probabilities: sums of positive terms, their own magnitude
    losses = np.array(results[1][0])
    assert_within_rounding(np.array(results[0][0]), losses, abs(losses), D_ROUNDINGS, "losses")
    magnitudes = {}
    for batch, label in ((real, joined.real_label), (fake, joined.fake_label)):
        logits, cache = joined.discriminator.forward(batch)
        upstream = (sigmoid(logits) + abs(label)) / len(batch)  # the terms of BCE's gradient
        for name, magnitude in backward_magnitudes(joined.discriminator, cache, upstream)[
            1
        ].items():
            magnitudes[name] = magnitudes.get(name, 0) + magnitude
    for name, grad in results[0][1].items():
        assert_within_rounding(grad, results[1][1][name], magnitudes[name], D_ROUNDINGS, name)


def test_separate_passes_with_batchnorm_match_finite_differences(rng):
    gan = small_gan(d_batchnorm=True)
    real = rng.uniform(-1, 1, size=(6, 4))
    fake = gan.generate(gan.sample_noise(6))
    gan.discriminator.zero_grad()
    gan.discriminator_loss_backward(real, fake)

    def d_loss():
        real_term = sigmoid_cross_entropy(gan.discriminator.forward(real)[0], 0.9)[0]
        fake_term = sigmoid_cross_entropy(gan.discriminator.forward(fake)[0], 0.1)[0]
        return real_term + fake_term

    for path, layer in gan.discriminator.named_layers():
        for name, param in layer.params.items():
            error = rel_error(layer.grads[name], numerical_gradient(d_loss, param))
            assert error < 1e-7, f"discriminator {path}{name}: relative error {error:.2e}"


@pytest.mark.parametrize("d_dropout", [False, True])
def test_simultaneous_step_takes_both_gradients_from_one_generator_forward(rng, d_dropout):
    gan = small_gan(simultaneous=True, d_dropout=d_dropout)
    real = rng.uniform(-1, 1, size=(6, 4))
    before = copy.deepcopy(gan)
    z = before.sample_noise(6)  # the same draw the step makes: both generators are at one state
    for optimizer in (gan.d_optimizer, gan.g_optimizer):
        optimizer.step = lambda: None  # keep the gradients and weights to compare them
    stats = gan.train_step(lambda: real)

    # The same quantities by hand from the state before the step, on the same z and dropout masks.
    fake, cache_g = before.generator.forward(z)
    reference = copy.deepcopy(before)
    reference.discriminator.zero_grad()
    reference.join_d_batches = False
    d_loss, _, _ = reference.discriminator_loss_backward(real, fake)
    # the same operations in the same order as the step's: the same bits
    assert float(stats.d_loss) == float(d_loss)
    for name, grad in gradients(reference.discriminator).items():
        np.testing.assert_array_equal(gradients(gan.discriminator)[name], grad, err_msg=name)

    # G's gradient through D as it was before the step, against finite differences.
    def g_loss():
        fake_now = before.generator.forward(z)[0]
        before.discriminator.forward(real)  # keeps the dropout stream where the step had it
        logits = before.discriminator.forward(fake_now)[0]
        return before.generator_loss_and_grad(logits)[0]

    if not d_dropout:  # with dropout the masks move on every call; the check above covers D
        for path, layer in before.generator.named_layers():
            for name, param in layer.params.items():
                numeric = numerical_gradient(g_loss, param)
                error = rel_error(gradients(gan.generator)[f"{path}{name}"], numeric)
                assert error < 1e-7, f"generator {path}{name}: relative error {error:.2e}"
    assert float(stats.g_loss) > 0


def test_simultaneous_step_updates_both_networks(rng):
    gan = small_gan(simultaneous=True)
    g_before = copy.deepcopy(gan.generator.layers[0].params["W"])
    d_before = copy.deepcopy(gan.discriminator.layers[0].params["W"])
    gan.train_step(lambda: rng.uniform(-1, 1, size=(6, 4)))
    assert not np.array_equal(gan.generator.layers[0].params["W"], g_before)
    assert not np.array_equal(gan.discriminator.layers[0].params["W"], d_before)


def test_simultaneous_needs_one_update_each():
    with pytest.raises(ValueError, match="d_steps = g_steps = 1"):
        small_gan(simultaneous=True, d_steps=2)


@pytest.mark.parametrize("inference_fakes", [False, True])
def test_inference_fakes_leave_the_generators_batchnorm_statistics_alone(rng, inference_fakes):
    gan = small_gan(g_batchnorm=True, inference_fakes=inference_fakes)
    norm = gan.generator.layers[1]
    before = {name: value.copy() for name, value in norm.buffers.items()}
    gan.discriminator_step(rng.uniform(-1, 1, size=(6, 4)))
    unchanged = all(np.array_equal(before[name], norm.buffers[name]) for name in before)
    assert unchanged == inference_fakes


def data_flags():
    return ["--data-dir", str(mnist_dir()), "--split", "test", "--no-progress", "--no-download"]


def test_the_flags_reach_the_gan_and_a_resume_keeps_them(tmp_path):
    out = tmp_path / "run"
    flags = ["--iterations", "2", "--subset", "256", "--seed", "3", "--out", str(out)]
    trainer = cli_main(
        ["--preset", "dcgan-fast", "--simultaneous", "--inference-fakes", *flags, *data_flags()]
    )
    assert trainer.gan.simultaneous and trainer.gan.inference_fakes
    settings = json.loads((out / "config.json").read_text())["settings"]
    assert settings["simultaneous"] is True and settings["inference_fakes"] is True
    resumed = cli_main(["--resume", "--out", str(out), "--iterations", "3"])
    assert resumed.step == 3 and resumed.gan.simultaneous and resumed.gan.inference_fakes


def test_simultaneous_is_refused_for_a_preset_with_several_updates_per_step(tmp_path, capsys):
    flags = [
        "--preset",
        "dcgan-keras",
        "--simultaneous",
        "--iterations",
        "1",
        "--out",
        str(tmp_path),
    ]
    with pytest.raises(SystemExit) as stop:
        cli_main(flags + data_flags())
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert (
        err.count("\n") == 0 and "--simultaneous: preset dcgan-keras takes 1 discriminator" in err
    )


def test_dcgan_fast_follows_the_common_recipe():
    preset = get_preset("dcgan-fast")
    generator, discriminator = preset.build(np.random.default_rng(0))
    assert (preset.g_lr, preset.d_lr, preset.betas, preset.batch_size) == (
        2e-4,
        2e-4,
        (0.5, 0.999),
        128,
    )
    first, *rest = [layer for layer in discriminator.walk() if layer.params]
    norms = [layer for layer in discriminator.walk() if isinstance(layer, BatchNorm)]
    assert len(norms) == 1 and first.params.get("b") is not None  # no BatchNorm on the first layer
    z = np.random.default_rng(1).standard_normal((3, 100)).astype(np.float32)
    images = generator(z)
    assert images.shape == (3, 1, 28, 28) and np.abs(images).max() <= 1
    assert discriminator(images).shape == (3, 1)


@pytest.mark.parametrize("reuse_noise", [False, True])
def test_the_generator_update_takes_the_discriminators_noise_only_with_reuse_noise(
    rng, reuse_noise
):
    gan = small_gan(reuse_noise=reuse_noise)
    calls = record_generator_calls(gan)
    gan.train_step(lambda: rng.uniform(-1, 1, size=(6, 4)))
    (d_z, _), (g_z, _) = calls
    assert np.array_equal(d_z, g_z) == reuse_noise


def record_generator_calls(gan):
    """Make ``gan.generator.forward`` note each call's noise and ``training`` flag."""
    calls = []
    forward = gan.generator.forward

    def noted(z, training=True):
        calls.append((np.array(z, copy=True), training))
        return forward(z, training=training)

    gan.generator.forward = noted
    return calls


def real_batch(preset, n, rng):
    low, high = preset.value_range
    shape = (n, *preset.data_shape)
    if np.isfinite(low):
        return rng.uniform(low, high, size=shape).astype(np.float32)
    return rng.standard_normal(shape).astype(np.float32)


#: What one training step of each preset, built with its defaults, does with G: how many forward
#: passes, whether D's fakes come from G in training mode, and whether G's update reuses the noise
#: of D's update (None: one forward serves both updates). As each preset's tutorial does it.
TUTORIAL_STEPS = {
    "mlp-tf": (2, True, True),  # two session runs fed one batch_noise
    "gaussian-1d": (2, False, True),  # Generator.predict(bz), then GAN.train_on_batch(bz, ...)
    "dcgan-keras": (2, False, False),  # G.predict(z); train_G draws its own z
    "dcgan-tf": (1, True, None),  # one generator(noise, training=True) under two GradientTapes
    "mlp-book": (2, True, True),  # train_D and train_G fed one noise
    "dcgan-fast": (
        2,
        True,
        False,
    ),  # no tutorial: the alternating step its scores were measured with
}


@pytest.mark.parametrize("name", list(TUTORIAL_STEPS))
def test_a_default_built_preset_plays_its_tutorials_step(name, rng):
    """Fails if dcgan-tf goes back to two forwards of G per step, if dcgan-keras's D sees fakes made
    in training mode, or if an MLP preset's G update draws fresh noise."""
    preset = get_preset(name)
    # dcgan-keras's five G updates per step cost seconds; the rules are the same with one
    gan = preset.make_gan(np.random.default_rng(0), make_rng(1), g_steps=1)
    calls = record_generator_calls(gan)
    stats = gan.train_step(lambda: real_batch(preset, 2, rng))
    forwards, fakes_in_training_mode, reuses_noise = TUTORIAL_STEPS[name]
    assert len(calls) == forwards
    assert calls[0][1] is fakes_in_training_mode
    assert all(training for _, training in calls[1:])  # G's own update: always training mode
    if reuses_noise is not None:
        assert np.array_equal(calls[0][0], calls[1][0]) is reuses_noise
    assert gan.d_optimizer.step_count == gan.g_optimizer.step_count == 1
    assert np.isfinite(float(stats.d_loss)) and np.isfinite(float(stats.g_loss))


def test_dcgan_keras_leaves_the_generators_running_statistics_to_its_own_update(rng):
    preset = get_preset("dcgan-keras")
    gan = preset.make_gan(np.random.default_rng(0), make_rng(1))
    norm = next(layer for layer in gan.generator.walk() if isinstance(layer, BatchNorm))
    before = {name: value.copy() for name, value in norm.buffers.items()}
    gan.discriminator_step(real_batch(preset, 2, rng))
    for name, value in before.items():
        np.testing.assert_array_equal(norm.buffers[name], value, err_msg=name)


def rules_of(trainer, out):
    """The step rules the trainer's GAN plays, and those config.json records."""
    settings = json.loads((out / "config.json").read_text())["settings"]
    played = {rule: getattr(trainer.gan, rule) for rule in STEP_RULES}
    return played, {rule: settings[rule] for rule in STEP_RULES}


@pytest.fixture
def no_training(monkeypatch):
    """Everything up to the first step runs (config.json included); the steps are skipped."""
    monkeypatch.setattr(Trainer, "fit", lambda self, steps: self.history)


@pytest.mark.parametrize("name", IMAGE_PRESETS)
def test_a_run_records_its_presets_rules_and_each_is_one_flag_away(name, tmp_path, no_training):
    preset = get_preset(name)
    defaults = {rule: getattr(preset, rule) for rule in STEP_RULES}
    trainer = cli_main(["--preset", name, "--out", str(tmp_path / "default"), *data_flags()])
    assert rules_of(trainer, tmp_path / "default") == (defaults, defaults)

    # every rule the other way (simultaneous only where the preset takes one update of each)
    flipped = {rule: not value for rule, value in defaults.items()}
    if (preset.d_steps, preset.g_steps) != (1, 1):
        flipped["simultaneous"] = False
    flags = [
        f"--{'' if value else 'no-'}{rule.replace('_', '-')}" for rule, value in flipped.items()
    ]
    out = tmp_path / "flipped"
    trainer = cli_main(["--preset", name, *flags, "--out", str(out), *data_flags()])
    assert rules_of(trainer, out) == (flipped, flipped)


@pytest.mark.parametrize(
    ("name", "flag", "rule"),
    [
        ("dcgan-tf", "--no-simultaneous", "simultaneous"),
        ("mlp-tf", "--no-reuse-noise", "reuse_noise"),
    ],
)
def test_a_resume_keeps_the_rule_the_run_was_started_with(name, flag, rule, tmp_path, capsys):
    out = tmp_path / "run"
    start = ["--preset", name, flag, "--iterations", "1", "--batch-size", "8", "--subset", "16"]
    cli_main([*start, "--seed", "2", "--out", str(out), *data_flags()])
    resumed = cli_main(["--resume", "--out", str(out), "--iterations", "2"])
    assert resumed.step == 2 and getattr(resumed.gan, rule) is False
    assert json.loads((out / "config.json").read_text())["settings"][rule] is False
    calls = record_generator_calls(resumed.gan)
    resumed.gan.train_step(lambda: real_batch(get_preset(name), 2, np.random.default_rng(0)))
    assert len(calls) == 2 and not np.array_equal(calls[0][0], calls[1][0])

    assert cli_main(["--resume", "--out", str(out), "--iterations", "3", flag]).step == 3
    with pytest.raises(SystemExit) as stop:
        cli_main(["--resume", "--out", str(out), "--iterations", "4", "--" + flag[5:]])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert f"--{flag[5:]}: the run in" in err and f"was started with {flag}, and --resume" in err


def make_old(out, record):
    """Make the run in ``out`` look as if it was trained before the presets carried step rules:
    each rule recorded as ``record`` ("absent": not recorded at all)."""

    def age(settings):
        for rule in STEP_RULES:
            settings.pop(rule, None)
            if record != "absent":
                settings[rule] = record

    for path in checkpoint_files(out / "checkpoints"):
        archive = read_checkpoint(path)
        metadata = json.loads(str(archive["metadata"]))
        age(metadata["settings"])
        archive["metadata"] = json.dumps(metadata)
        write_checkpoint(path, archive)
    config = json.loads((out / "config.json").read_text())
    age(config["settings"])
    (out / "config.json").write_text(json.dumps(config))


@pytest.fixture(scope="module")
def dcgan_tf_run(tmp_path_factory):
    """A finished 1-step dcgan-tf run, to be copied and aged."""
    out = tmp_path_factory.mktemp("dcgan-tf") / "run"
    argv = ["--preset", "dcgan-tf", "--iterations", "1", "--batch-size", "8", "--subset", "16"]
    cli_main([*argv, "--seed", "4", "--out", str(out), *data_flags()])
    return out


@pytest.mark.parametrize("record", ["absent", None, False])
def test_a_run_recorded_before_the_rules_resumes_as_it_trained(dcgan_tf_run, tmp_path, record):
    out = tmp_path / "old"
    shutil.copytree(dcgan_tf_run, out)
    make_old(out, record)
    resumed = cli_main(["--resume", "--out", str(out), "--iterations", "2"])
    assert resumed.step == 2
    off = {rule: False for rule in STEP_RULES}
    assert rules_of(resumed, out) == (off, off)  # alternating, as dcgan-tf trained then
    with pytest.raises(SystemExit) as stop:
        cli_main(["--resume", "--out", str(out), "--iterations", "3", "--simultaneous"])
    assert stop.value.code == 2
    again = cli_main(["--resume", "--out", str(out), "--iterations", "3", "--no-simultaneous"])
    assert again.step == 3 and not again.gan.simultaneous


def test_mlp_book_draws_a_frame_after_its_first_epoch_as_its_tutorial(tmp_path):
    out = tmp_path / "run"
    flags = ["--preset", "mlp-book", "--epochs", "2", "--subset", "200", "--seed", "1"]
    cli_main([*flags, "--out", str(out), *data_flags()])
    frames = sorted(path.name for path in (out / "samples").iterdir())
    assert frames == ["epoch_000001.png", "step_000000.png", "step_000004.png"]
