"""The run's tables: each written and read back through tinygan.run.records."""

from __future__ import annotations

import math

from tinygan.run import records


def test_quality_rows_go_under_the_file_own_header_and_read_back_up_to_a_step(tmp_path):
    path = tmp_path / "quality.csv"
    old_header = "step,epoch,n,fid\n"  # a file from before the warning column
    path.write_text(old_header + "2,0,20,50.5\n")
    records.append_quality_row(path, {"step": 4, "epoch": 0, "n": 20, "fid": 40.25, "warning": "x"})
    records.append_quality_row(path, {"step": 6, "epoch": 1, "n": 20, "fid": 30.0})
    assert path.read_text() == old_header + "2,0,20,50.5\n4,0,20,40.25\n6,1,20,30.0\n"
    assert [row["step"] for row in records.read_quality_rows(path, 4)] == ["2", "4"]
    assert records.read_fid(path, 5) == ([2, 4], [50.5, 40.25])
    assert records.read_fid(tmp_path / "none.csv", 5) is None


def test_a_new_quality_file_has_every_column_and_a_missing_warning_is_empty(tmp_path):
    path = tmp_path / "run" / "quality.csv"
    row = {key: 1.5 for key in records.QUALITY_COLUMNS if key != "warning"}
    records.append_quality_row(path, {**row, "step": 3})
    header, line = path.read_text().splitlines()
    assert header.split(",") == list(records.QUALITY_COLUMNS)
    assert line.split(",")[0] == "3" and line.endswith(",")  # the warning column, empty


def test_a_conditional_run_adds_its_class_accuracy_after_each_sides_metrics(tmp_path):
    columns = records.quality_columns(conditional=True)
    assert records.quality_columns() == records.QUALITY_COLUMNS  # unconditional: unchanged
    metrics = [*records.QUALITY_METRICS, "class_accuracy"]
    assert columns == ("step", "epoch", "n", *metrics, *(f"real_{m}" for m in metrics), "warning")
    path = tmp_path / "quality.csv"
    row = {key: 0.5 for key in columns if key != "warning"}
    records.append_quality_row(path, {**row, "step": 2, "class_accuracy": 0.96})
    rows = records.read_quality_rows(path)
    assert list(rows[0]) == list(columns) and rows[0]["class_accuracy"] == "0.96"


def test_log_keeps_the_windows_up_to_the_resumed_step(tmp_path):
    path = tmp_path / "log.csv"
    records.trim_log(path, 0)
    for step in (3, 6, 9):
        records.append_log_row(path, step, 0, [0.5, 1.0 / 3.0, 0.25, 2.0])
    records.trim_log(path, 6)
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join(records.LOG_COLUMNS)
    assert lines[1:] == ["3,0,0.5,0.333333,0.25,2", "6,0,0.5,0.333333,0.25,2"]
    rows = records.read_log_rows(path)
    assert [(row["step"], row["d_loss"], row["d_fake"]) for row in rows] == [
        ("3", "0.5", "2"),
        ("6", "0.5", "2"),
    ]
    assert [row["step"] for row in records.read_log_rows(path, 4)] == ["3"]
    assert records.read_log_rows(tmp_path / "none.csv") == []


def test_warning_kinds_are_those_given_up_to_a_step(tmp_path):
    path = tmp_path / "warnings.csv"
    assert records.warning_kinds(path, 10) == set()
    records.append_warning(path, 4, "coverage", "the samples cover 6 classes, down from 10")
    records.append_warning(path, 8, "d_wins", "D(x), G's loss")  # a comma, quoted
    assert records.warning_kinds(path, 5) == {"coverage"}
    assert records.warning_kinds(path, 8) == {"coverage", "d_wins"}


def test_modes_rows_after_the_resumed_step_are_dropped_and_a_torn_line_skipped(tmp_path):
    path = tmp_path / "modes.csv"
    assert records.trim_modes(path, 0) == []
    for step in (0, 10, 20):
        row = {
            "step": step,
            "epoch": step // 10,
            "modes": 8,
            "high_quality": 0.5,
            "reverse_kl": math.nan,
        }
        records.append_modes_row(path, row)
    with path.open("a") as handle:
        handle.write("30,3,8,0.")  # killed while writing
    kept = records.trim_modes(path, 10)
    assert [row["step"] for row in kept] == [0, 10]
    assert [row["step"] for row in records.read_modes_csv(path)] == [0, 10]
    assert math.isnan(kept[0]["reverse_kl"])
