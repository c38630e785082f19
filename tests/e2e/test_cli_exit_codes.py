"""Exit codes as the README defines them, per-code failures logged once, partial predictions and JSON errors,
through the real ``hq`` on copies of the shared Qlib and Hikyuu stores."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
from pathlib import Path

import polars as pl
import pytest
from cli_support import copy_qlib, hq_env, run_hq, run_hq_here, truncate_bin

CODES = ["sh600000", "sh600004", "sh600009", "sh600010", "sh600011", "sh600015"]
DAMAGED = "SH600004"


def hq(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_hq("--log-format", "json", *args, env=hq_env(home))


def mentions(stderr: str, needle: str) -> int:
    """Lines of stderr (one JSON log record or one message each) that name ``needle``."""
    return sum(needle in line for line in stderr.splitlines())


@pytest.fixture(scope="module")
def damaged(qlib_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """(HQ_HOME, a Qlib copy of six codes with one bin of SH600004 truncated, a model trained before the damage:
    five rounds without early stopping, so that it is not degenerate)."""
    root = tmp_path_factory.mktemp("exit-codes")
    home = root / "home"
    store = copy_qlib(qlib_dir, root / "qlib", CODES)
    proc = run_hq_here(  # the setup, not under test: in this process
        "--log-format",
        "json",
        "model",
        "train",
        "--source",
        f"qlib:{store}",
        "--universe",
        "all",
        "--train",
        "2019-01-01:2019-12-31",
        "--num-boost-round",
        "5",
        "--threads",
        "1",
        "--format",
        "json",
        env=hq_env(home),
    )
    assert proc.returncode == 0, proc.stderr
    model_id = json.loads(proc.stdout)["model"]["id"]
    truncate_bin(store / "features" / DAMAGED.lower() / "close.day.bin")
    return home, store, model_id


def test_predict_writes_the_predictions_of_the_codes_that_load(
    damaged: tuple[Path, Path, str], tmp_path: Path
) -> None:
    home, store, model_id = damaged
    out = tmp_path / "preds.parquet"
    proc = hq(
        home,
        "predict",
        model_id,
        "--source",
        f"qlib:{store}",
        "--universe",
        "all",
        "--start",
        "2021-01-04",
        "--end",
        "2021-03-31",
        "--out",
        str(out),
        "--format",
        "json",
    )
    assert proc.returncode == 5, proc.stderr
    doc = json.loads(proc.stdout)
    assert list(doc["errors"]) == [DAMAGED] and "close.day.bin" in doc["errors"][DAMAGED]
    preds = pl.read_parquet(out)
    assert sorted(preds["code"].unique()) == sorted(c.upper() for c in CODES if c.upper() != DAMAGED)
    assert preds.height == doc["rows"] > 0 and preds["score"].is_finite().all()
    assert mentions(proc.stderr, DAMAGED) == 1  # logged once
    assert "Traceback" not in proc.stderr


def test_evaluate_reports_on_the_codes_that_load(damaged: tuple[Path, Path, str]) -> None:
    home, store, model_id = damaged
    proc = hq(
        home,
        "model",
        "evaluate",
        model_id,
        "--source",
        f"qlib:{store}",
        "--universe",
        "all",
        "--start",
        "2021-01-04",
        "--end",
        "2021-03-31",
        "--format",
        "json",
    )
    assert proc.returncode == 5, proc.stderr
    doc = json.loads(proc.stdout)
    assert list(doc["errors"]) == [DAMAGED] and doc["summary"]["days"] > 50


def test_train_refuses_a_universe_with_a_corrupt_code(damaged: tuple[Path, Path, str]) -> None:
    home, store, _ = damaged
    proc = hq(
        home,
        "model",
        "train",
        "--source",
        f"qlib:{store}",
        "--universe",
        "all",
        "--train",
        "2019-01-01:2019-12-31",
        "--num-boost-round",
        "5",
        "--threads",
        "1",
    )
    assert proc.returncode == 4, proc.stderr  # corrupt data, not a partial success: nothing was trained
    assert "--universe CODE,CODE" in proc.stderr and "Traceback" not in proc.stderr


def test_every_code_failing_exits_with_the_code_of_the_failure(
    damaged: tuple[Path, Path, str], hikyuu_dir: Path
) -> None:
    home, store, _ = damaged
    corrupt = hq(home, "data", "bars", DAMAGED, "--source", f"qlib:{store}")
    assert corrupt.returncode == 4, corrupt.stderr
    unknown = hq(home, "data", "bars", "SH999999", "--source", f"hikyuu:{hikyuu_dir}")
    assert unknown.returncode == 3, unknown.stderr
    malformed = hq(home, "data", "bars", "SH60000X", "--source", f"hikyuu:{hikyuu_dir}")
    assert malformed.returncode == 2, malformed.stderr
    mixed = hq(home, "data", "bars", "SH60000X", "SH999999", "--source", f"hikyuu:{hikyuu_dir}")
    assert mixed.returncode == 3, mixed.stderr  # the most severe of malformed (2) and unknown (3)
    partial = hq(
        home,
        "data",
        "bars",
        DAMAGED,
        "SH600000",
        "--source",
        f"qlib:{store}",
        "--start",
        "2021-01-04",
        "--end",
        "2021-01-08",
        "--format",
        "csv",
    )
    assert partial.returncode == 5, partial.stderr
    assert {row.split(",")[0] for row in partial.stdout.splitlines()[1:]} == {"SH600000"}


def test_each_failing_code_is_logged_once(hikyuu_dir: Path, tmp_path: Path) -> None:
    proc = hq(
        tmp_path,
        "data",
        "bars",
        "SH600000",
        "SH999999",
        "--source",
        f"hikyuu:{hikyuu_dir}",
        "--start",
        "2011-12-01",
        "--end",
        "2011-12-06",
        "--format",
        "csv",
    )
    assert proc.returncode == 5, proc.stderr
    assert mentions(proc.stderr, "SH999999") == 1, proc.stderr
    assert "1 of 2 codes failed" in proc.stderr


def make_registry(db: str) -> None:
    """Create an empty registry at ``db`` (read-only commands never create one)."""
    from hikyuu_qlib.app import open_registry

    open_registry(db, sync=True).open().close()


def test_json_errors_are_one_object_on_stdout(hikyuu_dir: Path, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'registry.db'}"
    make_registry(db)
    missing = hq(tmp_path, "model", "show", "01ZZZZZZZZZZZZZZZZZZZZZZZZ", "--db", db, "--format", "json")
    assert missing.returncode == 3
    doc = json.loads(missing.stdout)  # exactly one document: json.loads rejects anything after it
    assert set(doc) == {"error"} and set(doc["error"]) == {"type", "message", "exit_code"}
    assert doc["error"]["exit_code"] == 3 and doc["error"]["type"] == "ModelNotFoundError"
    assert "01ZZZZZZZZZZZZZZZZZZZZZZZZ" in doc["error"]["message"]
    every = hq(tmp_path, "data", "bars", "SH999999", "--source", f"hikyuu:{hikyuu_dir}", "--format", "json")
    assert every.returncode == 3
    assert json.loads(every.stdout)["error"]["exit_code"] == 3
    usage = hq(tmp_path, "data", "bars", "SH600000", "--concurrency", "0", "--format", "json")
    assert usage.returncode == 2
    error = json.loads(usage.stdout)["error"]
    assert error["exit_code"] == 2 and "--concurrency" in error["message"]


def test_the_readme_documents_exit_codes_and_json_errors() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Command line", 1)[1].split("\n## ", 1)[0]
    assert re.search(r'\{"error": \{"type": [^}]*"message": [^}]*"exit_code": \d+\}\}', section)
    for code in ("| 2 |", "| 3 |", "| 4 |", "| 5 |", "| 130 |"):
        assert code in section
    assert "most severe" in section


def test_rejected_training_leaves_no_registry_row(tmp_path: Path) -> None:
    db_file = tmp_path / "registry.db"
    db = f"sqlite:///{db_file}"
    source = "synthetic:5?stocks=20&years=2"
    make_registry(db)

    def rows() -> int:
        with sqlite3.connect(db_file) as conn:
            return int(conn.execute("SELECT count(*) FROM models").fetchone()[0])

    before = rows()
    for bad in (
        ["--seed", "-1"],
        ["--threads", "-1"],
        ["--num-boost-round", "0"],
        ["--train", "2030-01-01:2030-06-30"],
    ):
        args = ["--train", "2015-03-01:2015-12-31", *bad] if bad[0] != "--train" else bad
        proc = hq(tmp_path, "model", "train", "--source", source, "--db", db, *args)
        assert proc.returncode == 2, (bad, proc.stderr)
        assert "Traceback" not in proc.stderr, bad
    assert rows() == before


def test_bounded_predict_and_evaluate_leave_out_and_report_the_codes_that_fail(
    damaged: tuple[Path, Path, str], tmp_path: Path
) -> None:
    """Over the memory budget (603 MB leaves 3 MB for data: six codes over 15 months do not fit in memory),
    predictions and the IC report go through date blocks: the damaged code is reported as in memory, the
    others are predicted with the same scores."""
    home, store, model_id = damaged
    common = ["--source", f"qlib:{store}", "--universe", "all", "--start", "2020-01-02", "--end", "2021-03-31",
              "--format", "json"]  # fmt: skip
    blocks = home / "cache" / "features-blocks"
    preds, reports = {}, {}
    for name, budget in (("memory", "16GB"), ("bounded", "603MB")):
        out = tmp_path / f"{name}.parquet"
        proc = hq(home, "predict", model_id, *common, "--out", str(out), "--memory-budget", budget)
        assert proc.returncode == 5, proc.stderr
        doc = json.loads(proc.stdout)
        assert list(doc["errors"]) == [DAMAGED] and "close.day.bin" in doc["errors"][DAMAGED]
        assert mentions(proc.stderr, DAMAGED) == 1 and "Traceback" not in proc.stderr
        preds[name] = pl.read_parquet(out).sort("datetime", "code")
        assert doc["rows"] == preds[name].height > 0
        proc = hq(home, "model", "evaluate", model_id, *common, "--memory-budget", budget)
        assert proc.returncode == 5, proc.stderr
        reports[name] = json.loads(proc.stdout)
        assert list(reports[name]["errors"]) == [DAMAGED]
        # only the bounded runs write date blocks
        assert (blocks.is_dir() and any(blocks.iterdir())) == (name == "bounded")
    assert sorted(preds["bounded"]["code"].unique()) == sorted(
        c.upper() for c in CODES if c.upper() != DAMAGED
    )
    assert preds["bounded"].equals(preds["memory"])
    for key, value in reports["memory"]["summary"].items():
        assert reports["bounded"]["summary"][key] == pytest.approx(value, rel=1e-9, nan_ok=True), key
