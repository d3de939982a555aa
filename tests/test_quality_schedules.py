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
    collapse = f"{schedules.COLLAPSE_BEGIN}\nthe remedies\n{schedules.COLLAPSE_END}"
    path.write_text(f"# old short-run report\n\n{section}\n\n{collapse}\n")
    assert quality.kept_sections(path) == f"\n{section}\n\n{collapse}\n"
    assert quality.kept_sections(tmp_path / "absent.md") == ""


def test_the_collapse_runs_are_the_plain_schedule_with_one_remedy_each(tmp_path):
    args = schedules.parse_args(["--mnist-dir", "M", "--runs", str(tmp_path)])
    names = [run.name for run in schedules.COLLAPSE_RUNS]
    assert sorted(names) == sorted(
        ["mlp_tf_pack2_s1", "mlp_tf_pack2_s2", "mlp_tf_mbstd_s1", "mlp_tf_mbstd_s2"]
    )
    pack2 = next(run for run in schedules.COLLAPSE_RUNS if run.name == "mlp_tf_pack2_s2")
    # the command the pack-2 runs were trained with
    assert schedules.train_argv(pack2, args) == [
        *["train", "mlp-tf", "--seed", "2", "--split", "test"],
        *schedules.MLP_FLAGS.split(),
        *["--pack", "2", "--data-dir", "M", "--out", str(tmp_path / "mlp_tf_pack2_s2")],
    ]
    mbstd = next(run for run in schedules.COLLAPSE_RUNS if run.name == "mlp_tf_mbstd_s1")
    assert schedules.train_argv(mbstd, args)[-5:-4] == ["--minibatch-std"]
    assert all(run.steps == schedules.MLP_STEPS and run.best for run in schedules.COLLAPSE_RUNS)


#: Fake scores at step 100,000 per collapse run (None: no such checkpoint yet).
FAKE_100K = {
    "mlp_tf_pack2_s1": (10, 150.0),
    "mlp_tf_pack2_s2": (7, 300.0),
    "mlp_tf_mbstd_s1": (4, 700.0),
    "mlp_tf_mbstd_s2": None,
}


def fake_evaluate(grids):
    """``evaluate`` without checkpoints: no rows for the schedules' runs (no longer on disk), and
    made-up scores for the collapse runs."""

    def evaluate(run, args):
        if run.name not in FAKE_100K:
            return []
        rows = []
        for label, _ in run.checkpoints():
            classes, fid = 10, 100.0
            if label == schedules.COLLAPSE_STEP:
                if FAKE_100K[run.name] is None:
                    continue
                classes, fid = FAKE_100K[run.name]
            generated = {"n": 10_000, "fid": fid, "inception_score": 5.0, "classes_hit": classes}
            generated |= {"precision": 0.5, "recall": 0.5}
            result = {"generated": generated}
            rows.append({"run": run, "label": label, "path": None, "result": result, "grid": grids})
        return rows

    return evaluate


def test_the_collapse_section_is_set_beside_the_plain_rows_and_keeps_the_rest(
    tmp_path, monkeypatch
):
    # the plain rows as QUALITY.md records them, seed 2's 100k row changed: the section must read
    # them from the file
    original = (schedules.QUALITY_MD).read_text()
    if schedules.COLLAPSE_BEGIN in original:
        original = original.split(schedules.COLLAPSE_BEGIN)[0].rstrip("\n") + "\n"
    seed2 = "| mlp-tf | 2 | step 100,000 | 10000 | 574.99 | 3.20 | 4/10 |"
    assert seed2 in original
    original = original.replace(
        seed2, "| mlp-tf | 2 | step 100,000 | 10000 | 500.00 | 3.20 | 6/10 |"
    )
    path = tmp_path / "QUALITY.md"
    path.write_text(original)
    monkeypatch.setattr(schedules, "QUALITY_MD", path)
    monkeypatch.setattr(schedules, "evaluate", fake_evaluate(tmp_path))
    monkeypatch.setattr(schedules, "best_step", lambda path: " (step 20,000)")

    schedules.main(["--mnist-dir", "M", "--runs", str(tmp_path)])  # every run: only these scored
    text = path.read_text()
    assert text.startswith(original) and text.count(schedules.COLLAPSE_BEGIN) == 1
    collapse = text[len(original) :]
    assert collapse.strip().startswith(schedules.COLLAPSE_BEGIN)
    assert collapse.strip().endswith(schedules.COLLAPSE_END)
    assert "## Against the collapse at 100k: packing and minibatch std on mlp-tf" in collapse
    lines = collapse.splitlines()

    def line(start):
        return next(line for line in lines if line.startswith(start))

    assert line("- mlp-tf, --pack 2, seed 1, at step 100,000:") == (
        "- mlp-tf, --pack 2, seed 1, at step 100,000: 10/10 classes, FID 150.00 (plain mlp-tf: "
        "4/10, FID 766.53): the collapse is gone (all 10 classes)"
    )
    assert line("- mlp-tf, --pack 2, seed 2, at").endswith(
        "7/10 classes, FID 300.00 (plain mlp-tf: 6/10, FID 500.00): the collapse is smaller "
        "(more classes than the plain run) but not gone"
    )
    assert line("- mlp-tf, --minibatch-std, seed 1, at").endswith(
        "(plain mlp-tf: 4/10, FID 766.53): the collapse is still there (no more classes than "
        "the plain run)"
    )
    assert line("- mlp-tf, --minibatch-std, seed 2, at").endswith(
        ": - (plain mlp-tf: 6/10, FID 500.00): not scored yet"
    )
    assert line("- mlp-tf, --pack 2: does the collapse").endswith(
        "**on some seeds only** (all 10 classes on 1 of the 2 seeds scored)"
    )
    assert line("- mlp-tf, --minibatch-std: does the collapse").endswith(
        "**no** (all 10 classes on 0 of the 1 seeds scored; 1 not scored yet)"
    )
    assert "| mlp-tf, --pack 2 | 1 | best.npz | 10/10 | 10/10 | 100.00 | 170.18 |" in lines
    assert "| mlp-tf, --pack 2 | 1 | step 100,000 | 10/10 | 4/10 | 150.00 | 766.53 |" in lines
    assert "--pack 2 --data-dir MNIST_DIR --out RUNS/mlp_tf_pack2_s1" in collapse

    # again, one run only: the section is replaced, and the rest still kept byte for byte
    FAKE_100K["mlp_tf_pack2_s1"] = (9, 160.0)
    try:
        schedules.main(["--mnist-dir", "M", "--runs", str(tmp_path), "--group", "collapse"])
    finally:
        FAKE_100K["mlp_tf_pack2_s1"] = (10, 150.0)
    again = path.read_text()
    assert again.startswith(original) and again.count(schedules.COLLAPSE_BEGIN) == 1
    assert "9/10 classes, FID 160.00 (plain mlp-tf: 4/10, FID 766.53)" in again
    schedules.main(["--mnist-dir", "M", "--runs", str(tmp_path), "--group", "schedules"])
    assert path.read_text() == again  # nothing scored: nothing rewritten
