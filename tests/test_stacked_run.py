"""The stacked-mnist preset: dcgan-fast's network on three channels, runs that train on Stacked MNIST,
draw colour grids, count the 1,000 modes into modes.csv and resume with them; the benchmark's
Stacked MNIST section."""

import json
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import mnist_dir
from PIL import Image

from tinygan.data import load_mnist
from tinygan.models import get_preset
from tinygan.nn import Conv2D
from tinygan.quality.classifier import choose_classifier
from tinygan.quality.metrics import stacked_mnist_modes
from tinygan.run import stacked_run
from tinygan.run.build import load_labelled_training_data
from tinygan.run.cli import main as cli
from tinygan.run.experiment import main
from tinygan.run.records import append_modes_row, read_modes_csv, trim_modes
from tinygan.run.settings import resolve_settings
from tinygan.run.stacked_run import CHUNK, StackedModeMeasures

#: Samples a measurement takes in these tests (the command line takes the papers' 26,000): more
#: than one chunk, the last one partial.
SAMPLES = CHUNK + 300


@pytest.fixture
def few_samples(monkeypatch):
    monkeypatch.setattr(stacked_run, "STACKED_MNIST_SAMPLES", SAMPLES)


def data_flags(out):
    return [
        *["--data-dir", str(mnist_dir()), "--split", "test", "--no-progress", "--no-download"],
        *["--out", str(out), "--subset", "256", "--batch-size", "8"],
    ]


def shapes(network):
    """Each layer of ``network`` (depth first) with the shapes of its parameters."""
    return [
        (type(layer).__name__, [p.shape for p in layer.params.values()]) for layer in network.walk()
    ]


@pytest.mark.parametrize("pack", [1, 2])
def test_the_preset_is_dcgan_fast_on_three_channels_and_trains_packed(pack):
    preset = replace(get_preset("stacked-mnist"), pack=pack, batch_size=4)
    assert preset.data_shape == (3, 28, 28) and preset.image_shape == (3, 28, 28)
    gan = preset.make_gan(np.random.default_rng(0), np.random.default_rng(1))
    # dcgan-fast's layers, with three channels out of G and 3 * pack into D
    fast_g, fast_d = (
        shapes(network) for network in get_preset("dcgan-fast").networks(np.random.default_rng(0))
    )
    g, d = shapes(gan.generator), shapes(gan.discriminator)
    assert g[:-2] == fast_g[:-2] and g[-2] == ("ConvTranspose2D", [(32, 3, 4, 4)])
    assert d[0] == fast_d[0] and d[2:] == fast_d[2:]
    assert d[1] == ("Conv2D", [(32, 3 * pack, 4, 4), (32,)])
    assert isinstance(gan.discriminator.layers[0], Conv2D)
    assert gan.generate(gan.sample_noise(5)).shape == (5, 3, 28, 28)
    real = np.random.default_rng(2).uniform(-1, 1, (4 * pack, 3, 28, 28)).astype(np.float32)
    seen = []
    forward = gan.discriminator.forward
    gan.discriminator.forward = lambda x, training=True: (
        seen.append(x.shape) or forward(x, training)
    )
    for _ in range(2):
        stats = gan.train_step(lambda: real).as_floats()
        assert all(np.isfinite(value) for value in stats.values())
    assert {shape[1:] for shape in seen} == {(3 * pack, 28, 28)}
    # per step: D on the real and fake packs, then two G updates through D on the same noise
    assert len(seen) == 2 * 4 and (gan.g_steps, gan.reuse_noise) == (2, True)


def test_the_training_images_stack_the_splits_digits_the_same_way_for_the_same_seed():
    given = {"data_dir": str(mnist_dir()), "split": "test", "no_download": True, "subset": 50}
    given["batch_size"] = 8
    digits, labels = load_mnist("test", mnist_dir(), download=False)
    stacks = {}
    for seed in (3, 3, 4):
        settings, _ = resolve_settings({**given, "seed": seed}, "stacked-mnist")
        images, modes, _ = load_labelled_training_data(settings)
        assert images.shape == (50, 3, 28, 28) and images.min() >= -1 and images.max() <= 1
        stacks.setdefault(seed, []).append((images, modes))
    (first, modes), (again, modes_again) = stacks[3]
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(modes, modes_again)
    assert not np.array_equal(first, stacks[4][0][0])
    # every channel is one of the split's digits, and the mode spells the three digits' classes
    pixels = np.rint((first + 1) * 127.5).astype(np.uint8)
    for image, mode in zip(pixels[:5], modes[:5], strict=True):
        classes = []
        for channel in image:
            (index,) = np.flatnonzero((digits == channel).all(axis=(1, 2)))[:1]
            classes.append(int(labels[index]))
        assert mode == 100 * classes[0] + 10 * classes[1] + classes[2]


def expected_counts(trainer, seed):
    """The measures recomputed from the trainer's generator: the run's fixed noise (the sample
    grids' seed), G in inference mode chunk by chunk, mapped to [0, 1], read by the classifier."""
    sample_seed = np.random.SeedSequence(seed).spawn(4)[3]
    z = trainer.gan.sample_noise(SAMPLES, rng=np.random.default_rng(sample_seed))
    images = np.concatenate(
        [trainer.gan.generate(z[start : start + CHUNK]) for start in range(0, SAMPLES, CHUNK)]
    )
    classifier = choose_classifier("mnist", mnist_dir(), verbose=False).classifier
    return stacked_mnist_modes(np.clip((images + 1) / 2, 0, 1), classifier)


@pytest.mark.parametrize("device", ["cpu", "emulated"])
def test_a_measurement_is_the_same_on_every_device(device, tmp_path):
    """GPU-style arrays reach the classifier through an explicit copy, and count as NumPy's do."""
    preset = get_preset("stacked-mnist")
    rows = []
    for index, where in enumerate(("cpu", device)):
        gan = preset.make_gan(np.random.default_rng(0), np.random.default_rng(1), device=where)
        out_dir = tmp_path / str(index)
        trainer = SimpleNamespace(gan=gan, device=where, out_dir=out_dir, step=0, epoch=0)
        out_dir.mkdir()
        classifier = choose_classifier("mnist", mnist_dir(), verbose=False).classifier
        measures = StackedModeMeasures(5, classifier, np.random.default_rng(2), (-1, 1), n=300)
        measures.on_train_begin(trainer)  # draws the noise; no measurement at step 0
        assert measures.rows == [] and read_modes_csv(trainer.out_dir / "modes.csv") == []
        trainer.step = 5
        measures.on_step_end(trainer)
        rows.append(read_modes_csv(trainer.out_dir / "modes.csv"))
    assert rows[0] == rows[1] and [row["step"] for row in rows[0]] == [5]
    assert rows[0][0]["high_quality"] is None and 1 <= rows[0][0]["modes"] <= 300


def test_a_run_counts_the_modes_into_modes_csv_and_draws_colour_grids(
    tmp_path, capsys, few_samples
):
    out = tmp_path / "run"
    flags = ["--iterations", "4", "--modes-every", "3", "--seed", "5", *data_flags(out)]
    trainer = main(["--preset", "stacked-mnist", *flags])
    rows = read_modes_csv(out / "modes.csv")
    # measured every 3 steps and at the end; not at step 0
    assert [row["step"] for row in rows] == [3, 4]
    header, *lines = (out / "modes.csv").read_text().splitlines()
    assert header == "step,epoch,modes,high_quality,reverse_kl" and lines[-1].count(",,") == 1
    counts = expected_counts(trainer, 5)
    last = rows[-1]
    assert last["high_quality"] is None
    assert last["modes"] == counts.modes_captured and 1 <= last["modes"] <= 1000
    assert last["reverse_kl"] == pytest.approx(counts.reverse_kl, rel=1e-5)
    out_text = capsys.readouterr().out
    assert "256 Stacked MNIST images of MNIST test digits" in out_text.replace("the first ", "")
    assert f"{last['modes']} of 1000 modes, reverse KL {last['reverse_kl']:.3f} at step 4" in (
        out_text
    )
    assert not (out / "quality.csv").exists()  # modes are counted instead
    grid = Image.open(out / "samples" / "step_000004.png")
    assert grid.mode == "RGB"
    pixels = np.asarray(grid).astype(int)
    assert np.abs(pixels[..., 0] - pixels[..., 1]).max() > 0  # the channels differ: colour
    # tinygan sample draws the checkpoint's images in colour too
    cli(["sample", str(out), "--n", "4", "--grid", "2", "2", "--out", str(tmp_path / "picks")])
    assert Image.open(tmp_path / "picks" / "grid.png").mode == "RGB"
    # and tinygan eval, whose classifier reads one digit, points to the mode counts
    with pytest.raises(SystemExit, match="makes Stacked MNIST images, which are scored by"):
        cli(["eval", str(out), "--n", "4", "--data-dir", str(mnist_dir())])


def test_a_resume_keeps_the_packing_and_the_measures(tmp_path, few_samples):
    out = tmp_path / "run"
    start = ["--pack", "2", "--modes-every", "2", "--seed", "2", *data_flags(out)]
    assert cli(["train", "stacked-mnist", "--iterations", "4", *start]) == 0
    before = read_modes_csv(out / "modes.csv")
    assert [row["step"] for row in before] == [2, 4]
    # a killed run may have measured past its last checkpoint: that row goes on resume
    append_modes_row(out / "modes.csv", {**before[-1], "step": 5})
    resume = ["--iterations", "6", "--resume", "--out", str(out), "--no-progress"]
    trainer = main(["--preset", "stacked-mnist", *resume])
    assert trainer.gan.pack == 2 and trainer.step == 6
    after = read_modes_csv(out / "modes.csv")
    assert [row["step"] for row in after] == [2, 4, 6]
    assert after[:2] == before
    assert json.loads((out / "config.json").read_text())["settings"]["pack"] == 2


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--conditional"], "--conditional: preset stacked-mnist learns Stacked MNIST"),
        (["--dataset", "fashion-mnist"], "--dataset fashion-mnist: preset stacked-mnist stacks"),
        (["--quality-every", "2"], "--quality-every: preset stacked-mnist counts the modes"),
    ],
)
def test_what_stacked_mnist_cannot_take_is_refused_in_one_line(flags, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        cli(["train", "stacked-mnist", *flags, *data_flags(tmp_path / "run")])
    error = capsys.readouterr().err
    assert stop.value.code == 2 and message in error and len(error.strip().splitlines()) == 1
    assert not (tmp_path / "run" / "config.json").exists()


def test_modes_every_is_still_refused_for_presets_whose_modes_are_not_counted(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli(["train", "dcgan-fast", "--modes-every", "5", *data_flags(tmp_path / "run")])
    assert "ring, grid) and Stacked MNIST (stacked-mnist)" in capsys.readouterr().err


def fake_run(folder, modes_kl, minutes, pack):
    """A finished run folder as the benchmark reads it: modes.csv, config.json, the log."""
    folder.mkdir(parents=True)
    trim_modes(folder / "modes.csv", 0)
    for step, (modes, kl) in zip((2000, 4000), modes_kl, strict=True):
        row = {"step": step, "epoch": 1, "modes": modes, "high_quality": None, "reverse_kl": kl}
        append_modes_row(folder / "modes.csv", row)
    settings = {"preset": "stacked-mnist", "pack": pack, "split": "test"}
    (folder / "config.json").write_text(json.dumps({"settings": settings}))
    log = folder.parent / f"{folder.name}.log"
    log.write_text(f"step 4000/4000  epoch 1  d_loss 1.0  ({round(60 * minutes)} s)\n")


@pytest.mark.filterwarnings("ignore:No artists with labels")  # the mixtures' empty figure
def test_the_benchmark_writes_a_stacked_mnist_section_beside_the_mixtures(tmp_path, monkeypatch):
    from benchmarks import modes

    monkeypatch.setattr(modes, "REAL_SAMPLES", 300)
    runs, report = tmp_path / "runs", tmp_path / "MODES.md"
    fake_run(runs / "stacked-mnist_pack1_seed0", [(300, 2.0), (100, 3.0)], 7.0, 1)
    fake_run(runs / "stacked-mnist_pack1_seed1", [(400, 1.5), (200, 2.0)], 9.0, 1)
    fake_run(runs / "stacked-mnist_pack2_seed0", [(900, 0.5), (990, 0.1)], 10.0, 2)
    mixtures = "# Mode collapse on the 2-D ring and grid, beside PacGAN's Table 1\n\nrows\n"
    report.write_text(mixtures)
    argv = ["--targets", "stacked-mnist", "--seeds", "2", "--out", str(runs), "--report-only"]
    argv += ["--data-dir", str(mnist_dir()), "--split", "test", "--report", str(report)]
    assert modes.main(argv) == 0
    text = report.read_text()
    assert text.startswith(mixtures + "\n# Mode collapse on Stacked MNIST, beside PacGAN's Table 2")
    # DCGAN: modes 100 and 200 (mean 150, standard error 50), KL 3.0 and 2.0
    assert "| DCGAN | 2 | 150.0 ± 50.0 | 78.9 ± 6.5 | 2.50 ± 0.50 | 4.50 | 8.0 |" in text
    assert "| PacDCGAN2 | 1 | 990.0 | 1000.0 ± 0.0 | 0.10 | 0.06 | 10.0 |" in text
    # 300 real images: about 260 modes, and a KL of at least log(1000 / modes)
    real = text.split("| real Stacked MNIST | - | ")[1].split(" | ")
    assert 200 <= int(real[0]) <= 300 and np.log(1000 / 300) <= float(real[2]) <= 2
    assert "| VEEGAN | 150.0 | 2.95 |" in text and "MNIST's test digits" in text
    assert (
        "| 2,000 | 350.0 (2) | 900.0 (1) |" in text and "| 4,000 | 150.0 (2) | 990.0 (1) |" in text
    )
    assert "4,000 iterations a run" in text  # the preset's length by default
    # PacDCGAN2's 990 meets the 990 target; the gap to DCGAN's 150 beside the paper's 921.1
    assert "captures 990.0 of 1,000 modes, target 990: met; the gap to DCGAN is +840.0" in text
    assert "(the paper: +921.1, its DCGAN having collapsed to 78.9)" in text
    # the mixtures' report, written again, keeps the Stacked MNIST section
    argv = ["--targets", "ring", "--seeds", "1", "--iterations", "10", "--out", str(runs)]
    assert modes.main([*argv, "--report-only", "--report", str(report)]) == 0
    again = report.read_text()
    assert again.startswith("# Mode collapse on the 2-D ring and grid")
    assert again.endswith(text[text.index("# Mode collapse on Stacked MNIST") :])
