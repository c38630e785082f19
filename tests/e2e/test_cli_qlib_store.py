"""``hq`` on the real Qlib store as a user runs it: default limits trade as Qlib's workflow does (the store
keeps ``$change`` in percent), and universe names that are paths are refused."""

from __future__ import annotations

import json
import os
from pathlib import Path

import polars as pl
from cli_support import run_hq_here

from hikyuu_qlib.domain import DateRange
from hikyuu_qlib.stores.qlib import QlibStore


def _momentum_predictions(qlib_dir: Path, out: Path) -> Path:
    """A cheap deterministic score: 20-day momentum of every csi300 member, each trading day of 2020."""
    store = QlibStore.open(qlib_dir)
    close = store.features("csi300", ["$close"], DateRange.of("2019-10-01", "2020-12-31"))
    momentum = pl.col("close") / pl.col("close").shift(20).over("code") - 1
    preds = (
        close.sort("code", "datetime")
        .with_columns(momentum.cast(pl.Float64).alias("score"))
        .filter(pl.col("score").is_not_null() & pl.col("score").is_not_nan())
        .filter(pl.col("datetime") >= pl.datetime(2020, 1, 1))
        .select("datetime", "code", "score")
    )
    preds.write_parquet(out)
    return out


def test_backtest_with_default_options_trades_like_the_workflow(qlib_dir: Path, tmp_path: Path) -> None:
    """topk 50 / n_drop 5 over 2020 (243 days) with the default limit: over 1,000 trades.

    With 0.095 read in the store's percent units, every stock that moved 0.095 % was untradable and the
    backtest made 39 trades in a year.
    """
    preds = _momentum_predictions(qlib_dir, tmp_path / "preds.parquet")
    out = tmp_path / "bt"
    env = {**os.environ, "HQ_HOME": str(tmp_path / "home")}
    env.pop("HQ_QLIB_CHANGE_UNIT", None)
    proc = run_hq_here(
        "backtest", "run", "--predictions", str(preds), "--source", f"qlib:{qlib_dir}",
        "--out", str(out), "--format", "json", env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    assert doc["days"] == 243
    trades = pl.read_parquet(out / "trades.parquet")
    assert trades.height > 1000, f"{trades.height} trades"
    said = " ".join(proc.stderr.split())  # log lines may be wrapped
    assert said.count("keeps $change as a") == 1  # one log line names the store and the unit
    assert "keeps $change as a percent" in said and f"qlib:{qlib_dir}keeps" in "".join(said.split())


def test_universe_name_with_a_path_is_invalid_input(qlib_dir: Path, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "HQ_HOME": str(tmp_path / "home"),
        "HQ_DATABASE_URL": f"sqlite:///{tmp_path / 'r.db'}",
    }
    for name in ("../calendars/day", "../instruments/csi300"):
        proc = run_hq_here(
            "model", "train", "--source", f"qlib:{qlib_dir}", "--universe", name,
            "--train", "2016-01-01:2016-03-31", "--num-boost-round", "2", "--format", "json", env=env,
        )  # fmt: skip
        assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
        assert "universe name" in proc.stderr and name in proc.stderr
