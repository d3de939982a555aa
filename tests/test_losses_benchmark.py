"""benchmarks/losses.py: the report from hand-made run folders (every row, refused ones included,
mean ± standard error, the figures), the commands a call would run, and one tiny real run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks import losses
from benchmarks.common import run_log, training_minutes
from tinygan.run import records

REFUSAL = (
    "--penalty wgan-gp: a gradient penalty needs the derivative of every layer's backward pass, "
    "and layer 3 of the discriminator, BatchNorm, has none"
)


def write_log(folder: Path, *lines: str) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    run_log(folder).write_text("tinygan: preset ...\n" + "".join(f"{line}\n" for line in lines))


def mixture_run(folder: Path, finals: tuple[int, float, float], seconds: int, steps=200) -> None:
    """A finished ring or grid run: two mode counts, a log.csv, and a log that counted seconds."""
    folder.mkdir(parents=True)
    records.trim_modes(folder / records.MODES_CSV, 0)
    records.trim_log(folder / records.LOG_CSV, 0)
    modes, high_quality, reverse_kl = finals
    for step, row in ((steps // 2, (2, 0.1, 1.5)), (steps, finals)):
        values = dict(zip(("modes", "high_quality", "reverse_kl"), row, strict=True))
        records.append_modes_row(folder / records.MODES_CSV, {"step": step, "epoch": 0, **values})
        records.append_log_row(folder / records.LOG_CSV, step, 0, [-0.5 * step, 0, 0, 0])
    write_log(
        folder, f"step {steps}/{steps}  epoch 0  d_loss 1.386  ({seconds} s)", "tinygan: done"
    )


def mnist_run(folder: Path, fid: float, seconds: int, **extra: float) -> None:
    """A finished dcgan-fast run: quality rows at steps 1,000 and 2,000 (with the ``extra``
    columns, as a newer tinygan's quality.csv would hold them)."""
    folder.mkdir(parents=True)
    if extra:  # rows go under the file's own header
        columns = [*records.QUALITY_COLUMNS[:-1], *extra, records.QUALITY_COLUMNS[-1]]
        (folder / records.QUALITY_CSV).write_text(",".join(columns) + "\n")
    records.trim_log(folder / records.LOG_CSV, 0)
    for step, step_fid in ((1000, 2 * fid), (2000, fid)):
        row = {"step": step, "epoch": 1, "n": 2000, "fid": step_fid, "inception_score": 7.0}
        row |= {"classes_hit": 10, "class_kl": 0.1, "precision": 0.5, "recall": 0.6, **extra}
        records.append_quality_row(folder / records.QUALITY_CSV, row)
        records.append_log_row(folder / records.LOG_CSV, step, 1, [-step / 1000, 0, 0, 0])
    write_log(folder, f"step 2000/2000  epoch 1  ({seconds} s)", "tinygan: done")


@pytest.fixture
def hand_made(tmp_path):
    out = tmp_path / "runs"
    folder = lambda name: out / name  # noqa: E731
    mixture_run(folder("ring_baseline_seed0"), (8, 0.9, 0.1), 60)
    mixture_run(folder("ring_baseline_seed1"), (6, 0.7, 0.3), 120)
    mixture_run(folder("ring_wgan-gp_seed0"), (7, 0.5, 0.25), 600)
    write_log(
        folder("ring_wgan-gp_seed1"), "tinygan train: error: boom (--debug shows the traceback)"
    )
    mixture_run(folder("grid_wgan-clip_seed0"), (20, 0.4, 0.5), 30)
    mixture_run(folder("grid_wgan-clip_seed1"), (22, 0.6, 0.7), 90)
    for seed, fid in ((1, 90.0), (2, 80.0)):
        mnist_run(folder(f"mnist_baseline_seed{seed}"), fid, 240)
        write_log(
            folder(f"mnist_wgan-gp_seed{seed}"),
            "tinygan: loading",
            f"tinygan train: error: {REFUSAL}",
        )
    mnist_run(folder("mnist_wgan-clip_seed1"), 150.0, 300)
    argv = ["--seeds", "2", "--iterations", "200", "--out", str(out)]
    argv += ["--report", str(tmp_path / "LOSSES.md"), "--report-only"]
    return tmp_path, argv


def report_of(tmp_path: Path, argv: list[str]) -> str:
    assert losses.main(argv) == 0
    return (tmp_path / "LOSSES.md").read_text()


def test_the_report_has_every_row_with_mean_and_standard_error(hand_made):
    tmp_path, argv = hand_made
    text = report_of(tmp_path, argv)
    assert text.startswith("# GAN losses and regularisers")
    assert "repeat with `python benchmarks/losses.py --seeds 2 --iterations 200 --out OUT " in text
    # seeds 0 and 1: modes 8 and 6 (7.0 ± 1.0), 90% and 70%, reverse KL 0.1 and 0.3; 1 and 2 min
    assert (
        "| non-saturating (baseline) | 2 of 2 | 7.0 ± 1.0 | 80.0 ± 10.0 | 0.20 ± 0.10 | 1.5 |"
        in text
    )
    # one run finished, the other failed: its value alone, and the failure named below the tables
    assert "| WGAN-GP | 1 of 2 | 7.0 | 50.0 | 0.25 | 10.0 |" in text
    assert "- ring, WGAN-GP, seed 1: failed: boom" in text
    assert "| least squares | 0 of 2 | not finished yet | - | - | - | - |" in text
    assert (
        "| WGAN, weight clipping | 2 of 2 | 21.0 ± 1.0 | 50.0 ± 10.0 | 0.60 ± 0.10 | 1.0 |" in text
    )
    mnist = text[text.index("## MNIST") : text.index("## The conditional")]
    assert (
        "| non-saturating (baseline) | 2 of 2 | 85.0 ± 5.0 | 7.00 ± 0.00 | 10.0 ± 0.0 | 0.500 ± 0.000 "
        "| 0.600 ± 0.000 | 4.0 |" in mnist
    )
    assert f"| WGAN-GP | 0 of 2 | **refused**: {REFUSAL} | - | - | - | - | - |" in mnist
    assert "| R1 penalty | 0 of 2 | not finished yet |" in mnist
    for reference in ("Mao et al. 2017", "Miyato et al. 2018", "Arjovsky et al. 2017"):
        assert reference in text
    assert "Gulrajani et al. 2017" in text and "Mescheder et al. 2018" in text
    # each target's variants against the baseline: ring modes 7.0 ± 1.0, MNIST FID 85.0 ± 5.0
    ring = text[text.index("## The ring") : text.index("## The grid")]
    assert (
        "Against the baseline (modes; the difference of the means ± its standard error): " in ring
    )
    assert "equal: WGAN-GP (+0.0 ± 1.0)." in ring
    assert "Against the baseline" not in text[text.index("## The grid") : text.index("## MNIST")]
    assert (
        "Against the baseline (FID; " in mnist
        and "worse: WGAN, weight clipping (+65.0 ± 5.0)." in mnist
    )


def test_the_report_shows_the_last_picture_of_each_variants_first_finished_run(hand_made):
    tmp_path, argv = hand_made
    text = report_of(tmp_path, argv)
    assert "## What each variant drew at the end" not in text  # the hand-made runs drew nothing
    import matplotlib.pyplot as plt

    out = tmp_path / "runs"
    for folder, steps in (("ring_wgan-gp_seed0", (100, 200)), ("mnist_baseline_seed2", (2000,))):
        for step in steps:
            (out / folder / "samples").mkdir(exist_ok=True)
            plt.imsave(out / folder / "samples" / f"step_{step:06d}.png", np.full((4, 4), step))
    args = losses.parse_args(argv)
    assert losses.last_frame("ring", "wgan-gp", args) == (
        0,
        out / "ring_wgan-gp_seed0" / "samples" / "step_000200.png",
    )
    assert losses.last_frame("mnist", "baseline", args)[0] == 2  # seed 1's run drew nothing
    assert losses.last_frame("ring", "hinge", args) is None
    text = report_of(tmp_path, argv)
    assert "## What each variant drew at the end" in text
    figure = tmp_path / "results" / "losses_last_frames.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "](results/losses_last_frames.png)" in text


def test_the_report_draws_the_modes_and_the_critic_loss_against_quality(hand_made):
    tmp_path, argv = hand_made
    text = report_of(tmp_path, argv)
    for name in ("losses_modes_over_time.png", "critic_loss_vs_quality.png"):
        figure = tmp_path / "results" / name
        assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert f"](results/{name})" in text
    # the Wasserstein runs that logged: WGAN-clip on the grid and on MNIST (WGAN-GP was refused)
    args = losses.parse_args(argv)
    titles = losses.critic_figure(args, tmp_path / "critic.png")
    assert titles == ["grid, WGAN, weight clipping", "mnist, WGAN, weight clipping"]
    args.variants = ["baseline", "wgan-gp"]
    assert losses.critic_figure(args, tmp_path / "none.png") == []
    assert not (tmp_path / "none.png").exists()
    steps, means = losses.mean_curve(
        [losses.critic_series(tmp_path / "runs" / f"grid_wgan-clip_seed{s}") for s in (0, 1)]
    )
    assert steps == [100, 200] and means == [50.0, 100.0]  # the negative of log.csv's d_loss


def judged_run(folder: Path, per_digit: list[float], fid: float = 40.0) -> None:
    """A finished conditional run with the eval.json that ``tinygan eval --json`` writes."""
    mnist_run(folder, 60.0, 300, class_accuracy=sum(per_digit) / 10, real_class_accuracy=0.99)
    write_evaluation(folder, per_digit, fid)


def write_evaluation(folder: Path, per_digit: list[float], fid: float) -> None:
    generated = {"class_accuracy": sum(per_digit) / 10, "class_accuracies": per_digit}
    generated |= {"fid": fid, "inception_score": 9.0}
    real = {"class_accuracy": 0.995, "class_accuracies": [0.995] * 10}
    (folder / losses.EVALUATION).write_text(json.dumps({"generated": generated, "real": real}))


def test_the_conditional_accuracy_per_digit_and_against_the_target(hand_made):
    tmp_path, argv = hand_made
    out = tmp_path / "runs"
    write_log(
        out / "mnist_conditional_seed1",
        "tinygan train: error: unrecognized arguments: --conditional",
    )
    text = report_of(tmp_path, argv)
    assert "| WGAN, weight clipping | 1 of 2 | 150.0 | 7.00 | 10.0 | 0.500 | 0.600 | 5.0 |" in text
    assert "Not measured yet: **refused**: unrecognized arguments: --conditional." in text
    mnist_run(out / "mnist_conditional_seed2", 70.0, 250)  # finished, not judged yet
    text = report_of(tmp_path, argv)
    assert "| 2 | not evaluated yet |" + " - |" * 14 in text
    assert "Against the target" not in text
    (out / "mnist_conditional_seed1.log").unlink()
    judged_run(out / "mnist_conditional_seed1", [0.97] * 9 + [0.80])  # digit 9 under 85%
    text = report_of(tmp_path, argv)
    digits = " | ".join(["97.0"] * 9 + ["80.0"])
    assert f"| 1 | 95.3 | 80.0 | {digits} | 40.0 | 9.00 | 5.0 |" in text
    assert "met by 0 of 1 runs (lowest mean 95.3%, lowest digit 80.0%)" in text
    assert "The classifier's own share on the real held-out digits: 99.5%." in text
    write_evaluation(out / "mnist_conditional_seed2", [0.99] * 10, fid=30.0)
    text = report_of(tmp_path, argv)
    assert "| 2 | 99.0 | 99.0 | " in text
    # the mean over the two runs: 97.15 ± 1.85 over the classes, digit 9 at 89.5 ± 9.5
    assert "| mean | 97.2 ± 1.9 | 89.5 ± 9.5 | 98.0 ± 1.0 |" in text
    assert "| 89.5 ± 9.5 | 35.0 ± 5.0 | 9.00 ± 0.00 | 4.6 |" in text  # 300 s and 250 s
    assert "met by 1 of 2 runs (lowest mean 95.3%, lowest digit 80.0%)" in text


def test_a_finished_conditional_run_is_judged_once_by_tinygan_eval(tmp_path, monkeypatch):
    out = tmp_path / "runs"
    args = losses.parse_args(["--out", str(out), "--data-dir", "/data/mnist"])
    calls = []
    monkeypatch.setattr(losses, "run_logged", lambda command, log: calls.append((command, log)))
    losses.evaluate_conditional(1, args)
    assert calls == []  # not trained yet
    folder = out / "mnist_conditional_seed1"
    mnist_run(folder, 60.0, 300)
    losses.evaluate_conditional(1, args)
    [(command, log)] = calls
    assert command == [
        sys.executable, "-m", "tinygan.run.cli", "eval",
        str(folder / "checkpoints" / "step_00002000.npz"),
        "--json", str(folder / "eval.json"), "--data-dir", "/data/mnist",
    ]  # fmt: skip
    assert log == run_log(folder)
    judged_run(out / "mnist_conditional_seed2", [0.99] * 10)
    losses.evaluate_conditional(2, args)
    assert len(calls) == 1  # its eval.json is there already


def test_a_reverse_kl_left_undefined_by_a_run_without_modes_is_said_so(tmp_path):
    finals = [{"reverse_kl": 0.5}, {"reverse_kl": float("nan")}, {"reverse_kl": 0.7}]
    assert losses.metric_cells(finals, [("reverse_kl", 1, 2)]) == ["0.60 ± 0.10 (1 undefined)"]
    assert losses.metric_cells(finals[1:2], [("reverse_kl", 1, 2)]) == ["undefined"]


def test_the_commands_a_call_would_run(tmp_path):
    out = tmp_path / "runs"
    args = losses.parse_args(["--seeds", "2", "--out", str(out), "--data-dir", "/data/mnist"])
    commands = losses.planned_commands(args)
    assert all(c[:3] == [sys.executable, "-m", "tinygan.run.cli"] for c in commands)
    argvs = [c[3:] for c in commands]
    # seeds outermost: every row's first seed before any second seed
    seeds = [argv[argv.index("--seed") + 1] for argv in argvs]
    assert seeds[: 8 + 8 + 8] == ["0"] * 16 + ["1"] * 8 and seeds[24:] == ["1"] * 16 + ["2"] * 8
    ring = {tuple(argv[6:-3]): argv for argv in argvs[:8]}
    wgan_gp = ("--loss", "wasserstein", "--penalty", "wgan-gp")
    assert list(ring) == [
        ("--modes-every", "500"),
        ("--modes-every", "500", "--loss", "least-squares"),
        ("--modes-every", "500", "--loss", "hinge"),
        ("--modes-every", "500", "--loss", "wasserstein"),
        ("--modes-every", "500", *wgan_gp),
        (
            "--modes-every",
            "500",
            *wgan_gp,
            "--penalty-weight",
            "0.1",
            "--lr",
            "1e-3",
            "--ema",
            "0.99",
        ),
        ("--modes-every", "500", "--penalty", "r1"),
        ("--modes-every", "500", "--loss", "hinge", "--spectral-norm"),
    ]
    # every ring run trains the default 10,000 iterations but the toy WGAN-GP, its own 3,000
    iterations = [ring_argv[5] for ring_argv in ring.values()]
    assert iterations == ["10000"] * 5 + ["3000"] + ["10000"] * 2
    assert argvs[0][:6] == ["train", "ring", "--seed", "0", "--iterations", "10000"]
    assert argvs[0][-3:] == ["--no-progress", "--out", str(out / "ring_baseline_seed0")]
    mnist = [argv for argv in argvs if argv[1] == "dcgan-fast"]
    assert len(mnist) == 2 * 8 and mnist[-1][-4:-3] == ["--conditional"]
    assert not any("wgan-gp-toy" in argv[-1] for argv in mnist)
    assert mnist[0][:12] == [
        "train", "dcgan-fast", "--seed", "1", "--split", "test", "--iterations", "2000",
        "--quality-every", "250", "--data-dir", "/data/mnist",
    ]  # fmt: skip
    assert not any("--conditional" in argv for argv in argvs if argv[1] != "dcgan-fast")
    # a finished run is left alone, a stopped one resumes, a refused one is tried again
    mixture_run(out / "ring_baseline_seed0", (8, 1.0, 0.0), 10, steps=10_000)
    mixture_run(out / "ring_wgan-gp-toy_seed0", (8, 1.0, 0.0), 10, steps=3_000)
    (out / "ring_hinge_seed0" / "checkpoints").mkdir(parents=True)
    write_log(out / "mnist_r1_seed1", f"tinygan train: error: {REFUSAL}")
    again = [c[3:] for c in losses.planned_commands(args)]
    assert len(again) == len(argvs) - 2
    for done in ("ring_baseline_seed0", "ring_wgan-gp-toy_seed0"):
        assert not any(argv[-1] == str(out / done) for argv in again)
    resumed = [argv for argv in again if str(out / "ring_hinge_seed0") in argv]
    assert resumed[0][-1] == "--resume"
    assert any(str(out / "mnist_r1_seed1") in argv for argv in again)


def test_a_tiny_real_run_end_to_end(tmp_path):
    out, report = tmp_path / "runs", tmp_path / "LOSSES.md"
    argv = ["--targets", "ring", "--variants", "baseline", "--seeds", "1", "--iterations", "100"]
    argv += ["--modes-every", "50", "--jobs", "1", "--out", str(out), "--report", str(report)]
    assert losses.main(argv) == 0
    measured = records.read_modes_csv(out / "ring_baseline_seed0" / records.MODES_CSV)
    assert [row["step"] for row in measured] == [0, 50, 100]
    final = measured[-1]
    text = report.read_text()
    row = f"| non-saturating (baseline) | 1 of 1 | {final['modes']:.1f} | "
    row += f"{100 * final['high_quality']:.1f} | {final['reverse_kl']:.2f} | "
    assert row in text
    assert (tmp_path / "results" / "losses_modes_over_time.png").is_file()
    assert "(none)" in text and "## MNIST" not in text


def test_the_grid_table_says_where_wgan_gp_stands_against_24_modes(hand_made):
    tmp_path, argv = hand_made
    out = tmp_path / "runs"
    assert "Against the target (WGAN-GP" not in report_of(tmp_path, argv)
    mixture_run(out / "grid_wgan-gp-toy_seed0", (25, 0.2, 0.1), 240, steps=3_000)
    mixture_run(out / "grid_wgan-gp-toy_seed1", (23, 0.1, 0.3), 300, steps=3_000)
    mixture_run(out / "grid_wgan-gp_seed0", (13, 0.05, 0.8), 900)
    text = report_of(tmp_path, argv)
    assert "| WGAN-GP, toy settings (3,000 iterations) | 2 of 2 | 24.0 ± 1.0 | 15.0 ± 5.0 |" in text
    assert (
        "Against the target (WGAN-GP holds at least 24 of the 25 modes on average): WGAN-GP: "
        "13.0 modes (1 of 2 runs; missed); WGAN-GP, toy settings (3,000 iterations): 24.0 ± 1.0 "
        "modes (2 of 2 runs; met)." in text
    )
    grid = text[text.index("## The grid") : text.index("## MNIST")]
    assert "Against the target (WGAN-GP" in grid
    mixture_run(out / "grid_baseline_seed0", (20, 0.5, 0.5), 60)
    grid = report_of(tmp_path, argv).split("## The grid")[1].split("## MNIST")[0]
    # grid baseline 20 modes: WGAN-clip's 21.0 ± 1.0 and the toy WGAN-GP's 24.0 ± 1.0 more
    assert (
        "better: WGAN, weight clipping (+1.0 ± 1.0), WGAN-GP, toy settings (3,000 iterations) "
        "(+4.0 ± 1.0); worse: WGAN-GP (-7.0 ± 0.0)." in grid
    )


def test_a_resumed_runs_minutes_add_up_over_its_invocations(tmp_path):
    """Each invocation of tinygan counts its seconds from 0: a run stopped at 158 s and resumed
    for 38 s trained 196 s."""
    folder = tmp_path / "run"
    assert training_minutes(folder) is None
    write_log(folder, "step 50/100  (1 s)", "step 76/100  (158 s)", "tinygan train: interrupted")
    assert training_minutes(folder) == pytest.approx(158 / 60)
    with open(run_log(folder), "a") as log:
        log.write(
            "tinygan: resumed from ... at step 76\nstep 86/100  (1 s)\nstep 100/100  (38 s)\n"
        )
    assert training_minutes(folder) == pytest.approx(196 / 60)
