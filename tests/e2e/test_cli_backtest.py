"""``hq backtest run`` on real Qlib data: report files, one JSON document, clear errors."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import polars as pl
from cli_support import run_hq

from hikyuu_qlib.domain import DateRange
from hikyuu_qlib.stores.qlib import QlibStore


def hq(*args: str) -> subprocess.CompletedProcess[str]:
    return run_hq(*args)


def _predictions(qlib_dir: Path, out: Path) -> Path:
    store = QlibStore.open(qlib_dir)
    close = store.features("csi300", ["$close"], DateRange.of("2019-11-01", "2020-03-31"))
    reversal = -(pl.col("close") / pl.col("close").shift(5).over("code") - 1)
    preds = (
        close.with_columns(reversal.alias("score"))
        .drop_nulls("score")
        .filter(pl.col("datetime") >= pl.datetime(2020, 1, 1))
        .select("datetime", "code", "score")
    )
    preds.write_parquet(out)
    return out


def test_backtest_run_writes_the_report(qlib_dir: Path, tmp_path: Path) -> None:
    preds = _predictions(qlib_dir, tmp_path / "preds.parquet")
    out = tmp_path / "bt"
    proc = hq(
        "backtest",
        "run",
        "--predictions",
        str(preds),
        "--source",
        f"qlib:{qlib_dir}",
        "--topk",
        "20",
        "--n-drop",
        "2",
        "--limit-threshold",
        "0.095",
        "--out",
        str(out),
        "--format",
        "json",
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert Path(doc["report"]).is_file() and (out / "daily.parquet").is_file()
    assert list(out.glob("*.png"))
    daily = pl.read_parquet(out / "daily.parquet")
    assert daily.height == doc["days"] > 50
    assert 20 <= daily["holdings"].max() <= 22  # unsellable stocks can push past topk, as in Qlib
    stats = doc["statistics"]
    assert set(stats) >= {"excess_return_with_cost", "excess_return_without_cost", "portfolio", "trades"}
    assert stats["excess_return_with_cost"]["mean"] < stats["excess_return_without_cost"]["mean"]


def test_backtest_run_rejects_bad_predictions(qlib_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("datetime,code,prediction\n2020-01-02,SH600000,0.1\n")
    proc = hq(
        "backtest", "run", "--predictions", str(bad), "--source", f"qlib:{qlib_dir}", "--out", str(tmp_path)
    )
    assert proc.returncode == 2
    assert "score" in proc.stderr and str(bad) in proc.stderr
    proc = hq("backtest", "run", "--source", f"qlib:{qlib_dir}", "--out", str(tmp_path))
    assert proc.returncode == 2 and "--predictions" in proc.stderr


def test_backtest_of_a_registered_model_stores_its_summary(qlib_dir: Path, tmp_path: Path) -> None:
    import os

    env = {
        **os.environ,
        "HQ_HOME": str(tmp_path / "home"),
        "HQ_DATABASE_URL": f"sqlite:///{tmp_path / 'r.db'}",
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return run_hq(*args, env=env)

    trained = run(
        "model",
        "train",
        "--source",
        f"qlib:{qlib_dir}",
        "--universe",
        "csi300",
        "--train",
        "2016-01-01:2016-12-31",
        "--valid",
        "2017-01-01:2017-06-30",
        "--num-boost-round",
        "20",
        "--format",
        "json",
    )
    assert trained.returncode == 0, trained.stderr[-2000:]
    model_id = json.loads(trained.stdout)["model"]["id"]
    proc = run(
        "backtest",
        "run",
        "--model",
        model_id[:12],
        "--source",
        f"qlib:{qlib_dir}",
        "--start",
        "2018-01-01",
        "--end",
        "2018-03-31",
        "--topk",
        "20",
        "--n-drop",
        "2",
        "--limit-threshold",
        "0.095",
        "--out",
        str(tmp_path / "bt"),
        "--format",
        "json",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    assert doc["model_id"] == model_id and (tmp_path / "bt" / "report.html").is_file()
    shown = json.loads(run("model", "show", model_id, "--format", "json").stdout)
    stored = shown["metrics"]["backtest"]
    assert (
        stored["topk"] == 20
        and stored["portfolio.total_return"] == doc["statistics"]["portfolio"]["total_return"]
    )
