"""No tracebacks: OS and database errors reaching ``hq`` are one line with their exit code; bad input is refused
before any work starts (through the real ``hq``)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from cli_support import hq_env, run_hq

SYNTHETIC = "synthetic:5?stocks=20&years=2"


def hq(home: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return run_hq(*args, env=hq_env(home), cwd=cwd)


def assert_one_line_error(proc: subprocess.CompletedProcess[str], code: int, needle: str) -> None:
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    assert needle in errors[0], errors[0]


@pytest.mark.parametrize(
    ("out", "code", "needle"),
    [
        ("{tmp}/missing/bars.csv", 3, "does not exist"),
        ("{tmp}", 2, "is a directory"),
        ("/dev/full", 1, "No space left on device"),
    ],
)
def test_unusable_out_files(hikyuu_dir: Path, tmp_path: Path, out: str, code: int, needle: str) -> None:
    target = out.format(tmp=tmp_path)
    proc = hq(
        tmp_path,
        "data",
        "bars",
        "SH600000",
        "--source",
        f"hikyuu:{hikyuu_dir}",
        "--start",
        "2011-12-01",
        "--out",
        target,
        "--format",
        "csv",
    )
    assert_one_line_error(proc, code, needle)
    assert target in proc.stderr


def test_export_qlib_out_that_is_a_file(hikyuu_dir: Path, tmp_path: Path) -> None:
    a_file = tmp_path / "not-a-dir"
    a_file.write_text("x")
    proc = hq(
        tmp_path,
        "data",
        "export-qlib",
        "--source",
        f"hikyuu:{hikyuu_dir}",
        "--code",
        "SH600000",
        "--out",
        str(a_file),
    )
    assert_one_line_error(proc, 2, "is a file, not a directory")
    assert a_file.read_text() == "x"


def test_db_that_is_not_a_database_or_cannot_be_reached(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("this is not a database\n" * 200)
    proc = hq(tmp_path, "model", "list", "--db", f"sqlite:///{text}")
    assert_one_line_error(proc, 4, "file is not a database")
    assert str(text) in proc.stderr
    unreachable = hq(tmp_path, "model", "list", "--db", f"sqlite:///{text}/registry.db")
    assert unreachable.returncode in (2, 3), unreachable.stderr
    assert_one_line_error(unreachable, unreachable.returncode, str(text))


def test_workflow_file_with_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"source: synthetic\nuniverse: \xff\xfe\n")
    proc = hq(tmp_path, "run", str(path))
    assert_one_line_error(proc, 2, "not UTF-8")
    assert str(path) in proc.stderr


def test_train_range_without_trading_days_is_refused_without_traceback(tmp_path: Path) -> None:
    proc = hq(tmp_path, "model", "train", "--source", SYNTHETIC, "--train", "2030-01-01:2030-06-30")
    assert_one_line_error(proc, 2, "no trading day")


def test_predict_refuses_an_unknown_extension_before_computing_features(tmp_path: Path) -> None:
    home = tmp_path / "home"
    trained = hq(
        home,
        "model",
        "train",
        "--source",
        SYNTHETIC,
        "--train",
        "2015-03-01:2015-12-31",
        "--num-boost-round",
        "3",
        "--threads",
        "1",
        "--format",
        "json",
    )
    assert trained.returncode == 0, trained.stderr
    model_id = json.loads(trained.stdout)["model"]["id"]
    proc = hq(
        home,
        "--log-level",
        "DEBUG",
        "predict",
        model_id,
        "--source",
        SYNTHETIC,
        "--start",
        "2016-01-01",
        "--end",
        "2016-03-31",
        "--out",
        str(tmp_path / "p.txt"),
    )
    assert_one_line_error(proc, 2, "'.txt'")
    assert "computing alpha158" not in proc.stderr and "loaded model" not in proc.stderr  # no work done
    assert not (tmp_path / "p.txt").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["data", "bars", "SH600000", "--concurrency", "0"],
        ["data", "bars", "SH600000", "--concurrency", "-2"],
        ["backtest", "run", "--predictions", "p.parquet", "--out", "bt", "--limit-threshold", "-1"],
        ["model", "train", "--train", "2015-03-01:2015-12-31", "--seed", "-1"],
        ["model", "train", "--train", "2015-03-01:2015-12-31", "--threads", "0"],
    ],
)
def test_negative_and_zero_counts_are_refused(tmp_path: Path, args: list[str]) -> None:
    proc = hq(tmp_path, *args, "--source", SYNTHETIC, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "registry.db").exists()  # nothing was opened, let alone registered


def test_workflow_with_a_negative_limit_threshold_is_refused_before_training(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(
        f"source: '{SYNTHETIC}'\n"
        "segments: {train: '2015-03-01:2015-09-30', valid: '2015-10-01:2015-12-31', test: '2016-01-01:2016-06-30'}\n"
        "backtest: {limit_threshold: -1}\n"
        f"outputs: {{dir: '{tmp_path / 'runs'}'}}\n"
    )
    proc = hq(tmp_path, "run", str(path))
    assert_one_line_error(proc, 2, "limit_threshold")
    assert not (tmp_path / "registry.db").exists()  # no model was trained or registered
