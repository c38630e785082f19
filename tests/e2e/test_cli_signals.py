"""``hq signals`` on both stores: predictions files and a registered model, every output format, one
JSON document on stdout, clear refusals."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from pathlib import Path

import polars as pl
import yaml
from cli_support import run_hq_here

from hikyuu_qlib import SignalRule, to_signals
from hikyuu_qlib.domain import DateRange
from hikyuu_qlib.stores.qlib import QlibStore

HIKYUU_CODES = ["SH600000", "SH600004", "SH600005", "SZ000001", "SZ000002", "SZ000004", "SZ000005"]
SMALL = {"lambda_l1": 1.0, "lambda_l2": 1.0, "num_leaves": 15, "min_data_in_leaf": 20, "learning_rate": 0.1}


def reversal_predictions(qlib_dir: Path, out: Path) -> pl.DataFrame:
    """Minus the 5-day return of the csi300 members, Q1 2020, as predictions."""
    close = QlibStore.open(qlib_dir).features("csi300", ["$close"], DateRange.of("2019-12-01", "2020-03-31"))
    reversal = -(pl.col("close") / pl.col("close").shift(5).over("code") - 1)
    preds = (
        close.with_columns(reversal.alias("score"))
        .drop_nulls("score")
        .filter(pl.col("datetime") >= pl.datetime(2020, 1, 1))
        .select("datetime", "code", "score")
    )
    preds.write_parquet(out)
    return preds


def test_signals_of_a_predictions_file_in_every_format(qlib_dir: Path, tmp_path: Path) -> None:
    preds = reversal_predictions(qlib_dir, tmp_path / "preds.parquet")
    expected = to_signals(preds, SignalRule.topk(10))
    for suffix in ("csv", "json", "parquet"):
        out = tmp_path / f"signals.{suffix}"
        proc = run_hq_here(
            "signals", str(tmp_path / "preds.parquet"), "--method", "topk", "--k", "10", "--out", str(out),
            "--format", "json",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        doc = json.loads(proc.stdout)
        if suffix == "csv":
            got = pl.read_csv(out, try_parse_dates=True).with_columns(
                pl.col("datetime").cast(pl.Datetime("ms"))
            )
        elif suffix == "json":
            got = pl.DataFrame(json.loads(out.read_text())["data"]).with_columns(
                pl.col("datetime").str.to_datetime(time_unit="ms")
            )
        else:
            got = pl.read_parquet(out)
        assert got.select(expected.columns).equals(expected), suffix
        assert doc["rows"] == expected.height and doc["method"] == "topk:10"
        counts = doc["signals"]
        assert counts["BUY"] == expected.filter(pl.col("signal") == "BUY").height > 10
        assert counts["HOLD"] > 0 and counts["SELL"] > 0
    # every date holds exactly ten BUY or HOLD rows: the selection of ten
    held = expected.filter(pl.col("signal") != "SELL").group_by("datetime").len()
    assert held["len"].unique().to_list() == [10]


def test_threshold_and_percentile_and_their_options(qlib_dir: Path, tmp_path: Path) -> None:
    preds = reversal_predictions(qlib_dir, tmp_path / "preds.parquet")
    out = tmp_path / "s.parquet"
    proc = run_hq_here("signals", str(tmp_path / "preds.parquet"), "--method", "percentile", "--pct", "0.05",
                  "--out", str(out), "--format", "json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert pl.read_parquet(out).equals(to_signals(preds, SignalRule.percentile(0.05)))
    proc = run_hq_here("signals", str(tmp_path / "preds.parquet"), "--method", "threshold", "--threshold", "0.05",
                  "--out", str(out), "--format", "json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert pl.read_parquet(out).equals(to_signals(preds, SignalRule.above(0.05)))
    refused = [
        (["--method", "topk", "--pct", "0.1"], "--pct"),
        (["--method", "percentile", "--pct", "5"], "fraction"),
        (["--model", "abc"], "one of them"),
    ]
    for extra, words in refused:
        proc = run_hq_here(
            "signals", str(tmp_path / "preds.parquet"), "--out", str(out), "--format", "json", *extra
        )
        assert proc.returncode == 2, (extra, proc.stderr[-2000:])
        assert words in json.loads(proc.stdout)["error"]["message"]
    proc = run_hq_here("signals", str(tmp_path / "preds.parquet"), "--out", str(tmp_path / "s.txt"))
    assert proc.returncode == 2 and ".csv" in proc.stderr


def test_signals_of_a_registered_model_on_the_hikyuu_store(hikyuu_dir: Path, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "HQ_HOME": str(tmp_path / "home"),
        "HQ_DATABASE_URL": f"sqlite:///{tmp_path / 'r.db'}",
    }

    def hq(*args: str) -> subprocess.CompletedProcess[str]:
        return run_hq_here(*args, env=env)

    workflow = tmp_path / "run.yaml"
    workflow.write_text(
        yaml.safe_dump(
            {  # Qlib's regularisation grows no tree on seven stocks: smaller leaves and penalties
                "source": f"hikyuu:{hikyuu_dir}",
                "universe": ",".join(HIKYUU_CODES),
                "model": {"name": "signals", "params": SMALL, "num_threads": 2},
                "segments": {
                    "train": "2004-01-01:2008-12-31",
                    "valid": "2009-01-01:2009-06-30",
                    "test": "2009-07-01:2009-12-31",
                },
                "backtest": {"benchmark": "SH000001"},
                "outputs": {"dir": str(tmp_path / "runs")},
            }
        )
    )
    trained = hq("run", str(workflow), "--format", "json")
    assert trained.returncode == 0, trained.stderr[-2000:]
    model_id = json.loads(trained.stdout)["model_id"]
    out = tmp_path / "signals.csv"
    proc = hq(
        "signals", "--model", model_id[:10], "--start", "2010-01-01", "--end", "2010-06-30",
        "--method", "topk", "--k", "2", "--out", str(out), "--format", "json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    assert doc["model_id"] == model_id and doc["source"] == f"hikyuu:{hikyuu_dir.resolve()}"
    predicted = tmp_path / "preds.parquet"
    made = hq("predict", model_id, "--start", "2010-01-01", "--end", "2010-06-30", "--out", str(predicted))
    assert made.returncode == 0, made.stderr[-2000:]
    expected = to_signals(pl.read_parquet(predicted), SignalRule.topk(2))
    got = pl.read_csv(out, try_parse_dates=True).with_columns(pl.col("datetime").cast(pl.Datetime("ms")))
    assert got.equals(expected)
    assert doc["signals"]["BUY"] > 0 and doc["rows"] == expected.height
    # the model's predictions limited to an instruments file: signals, and a backtest
    mine = tmp_path / "mine.txt"
    mine.write_text("SH600000\t2009-01-05\t2010-12-31\nSZ000002\t2009-01-05\t2010-03-31\n")
    proc = hq(
        "signals", "--model", model_id, "--universe-file", str(mine), "--start", "2010-01-01",
        "--end", "2010-06-30", "--k", "1", "--out", str(out), "--format", "json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["universe"] == "mine"
    shown = pl.read_csv(out, try_parse_dates=True)
    assert set(shown["code"]) == {"SH600000", "SZ000002"}
    assert shown.filter(pl.col("code") == "SZ000002")["datetime"].max() <= dt.datetime(2010, 4, 1)  # its span
    proc = hq(
        "backtest", "run", "--model", model_id, "--source", f"hikyuu:{hikyuu_dir}", "--universe-file", str(mine),
        "--start", "2010-01-01",
        "--end", "2010-06-30", "--topk", "1", "--n-drop", "1", "--benchmark", "SH000001",
        "--out", str(tmp_path / "bt"), "--format", "json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert set(pl.read_parquet(tmp_path / "bt" / "trades.parquet")["code"]) <= {"SH600000", "SZ000002"}
