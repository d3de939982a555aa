"""benchmarks/quality_schedules.py: the targets it judges and the part of QUALITY.md it rewrites."""

import numpy as np

from benchmarks import quality_schedules as schedules


def row(run_name, label, fid, inception_score=5.0, classes_hit=10):
    run = next(run for run in schedules.RUNS if run.name == run_name)
    generated = {"fid": fid, "inception_score": inception_score, "classes_hit": classes_hit}
    return {"run": run, "label": label, "result": {"generated": generated}}


def test_targets_compare_the_ema_best_with_the_plain_schedules_best():
    rows = [
        row("mlp_tf_plain_s1", "step 10,000", 100.0),
        row("mlp_tf_plain_s1", "best.npz", 50.0),
        row("mlp_tf_ema_s1", "best.npz", 40.0),  # 20% below 50: enough
        row("mlp_tf_plain_s2", "step 10,000", 50.0),
        row("mlp_tf_ema_s2", "best.npz", 41.0),  # 18% below: not enough
        row("dcgan_fast_s1", "step 500", 200.0, inception_score=6.0),
        row("dcgan_fast_s1", "step 1,000", 150.0, inception_score=7.2),
        row("dcgan_fast_s2", "step 2,000", 150.0, inception_score=7.5, classes_hit=9),
        row("dcgan_fast_s2", "best.npz", 150.0, inception_score=9.0),  # not a step budget
    ]
    lines = schedules.targets(rows)
    assert "seed 1, best-keeping with EMA" in lines[0] and lines[0].endswith("**PASS**")
    assert "dcgan-fast seed 1" in lines[1] and "first at step 1,000" in lines[1]
    assert lines[1].endswith("**PASS**")
    assert "seed 2, best-keeping with EMA" in lines[2] and lines[2].endswith("**MISS**")
    assert "not reached" in lines[3] and lines[3].endswith("**MISS**")


def test_only_the_marked_section_is_replaced(tmp_path, monkeypatch):
    path = tmp_path / "QUALITY.md"
    monkeypatch.setattr(schedules, "QUALITY_MD", path)
    path.write_text("# head\n\ntable\n")
    schedules.write_section(f"{schedules.BEGIN}\nfirst\n{schedules.END}\n")
    schedules.write_section(f"{schedules.BEGIN}\nsecond\n{schedules.END}\n")
    text = path.read_text()
    assert text.startswith("# head\n\ntable\n") and "second" in text and "first" not in text
    assert text.count(schedules.BEGIN) == 1


def test_the_commands_are_the_ones_the_runs_use(tmp_path):
    args = schedules.parse_args(["--mnist-dir", "M", "--runs", str(tmp_path)])
    run = schedules.RUNS[1]
    argv = schedules.train_argv(run, args)
    assert argv[:2] == ["train", "mlp-tf"] and "--ema" in argv and "0.999" in argv
    assert argv[argv.index("--seed") + 1] == "1" and argv[-1] == str(tmp_path / run.name)


def test_dcgan_fast_candidates_build_time_and_tabulate(tmp_path, capsys, monkeypatch):
    from benchmarks.investigations import dcgan_fast_choice

    preset = dcgan_fast_choice.candidate_preset(8, 4)
    generator, _ = preset.build(np.random.default_rng(0))
    assert preset.batch_size == 4 and generator.layers[0].params["W"].shape == (100, 2 * 8 * 7 * 7)
    monkeypatch.setattr(dcgan_fast_choice, "CANDIDATES", [(8, 4, None), (8, 4, 0.9)])
    run = tmp_path / "w8_b4"
    run.mkdir()
    (run / "quality.csv").write_text(
        "step,fid,inception_score,classes_hit,recall\n500,12.5,7.1,10,0.5\n"
    )
    dcgan_fast_choice.main(["--data-dir", "x", "--runs", str(tmp_path), "--repeats", "1"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3  # the header, its rule, and the one run with a quality.csv
    assert (
        lines[2].startswith("| 8 | 4 | - |") and "| 500 | 12.5 | 7.10 | 10/10 | 0.500 |" in lines[2]
    )


def test_the_short_runs_report_keeps_the_schedules_section(tmp_path):
    from benchmarks import quality

    path = tmp_path / "QUALITY.md"
    section = f"{schedules.BEGIN}\nthe schedules\n{schedules.END}"
    path.write_text(f"# old short-run report\n\n{section}\n")
    assert quality.kept_sections(path) == f"\n{section}\n"
    assert quality.kept_sections(tmp_path / "absent.md") == ""
