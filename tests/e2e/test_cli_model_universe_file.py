"""``--universe-file`` on ``hq model train``, ``hq model evaluate`` and ``hq predict``: a Qlib instruments
file's members, each over its own spans, are what is trained, evaluated and predicted on (the real Hikyuu
store; a model trained on a file goes back to that file by default)."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import subprocess
from pathlib import Path
from typing import Any

import polars as pl
from cli_support import run_hq_here

from hikyuu_qlib.domain import DateRange, StockCode
from hikyuu_qlib.stores.hikyuu import HikyuuStore

SEGMENTS = ("--train", "2004-01-01:2008-12-31", "--valid", "2009-01-01:2009-06-30",
            "--test", "2009-07-01:2009-12-31")  # fmt: skip
# Qlib's regularisation grows no tree on a few stocks: smaller leaves and penalties, and fewer rounds
SMALL = ("--param", "lambda_l1=1", "--param", "lambda_l2=1", "--param", "num_leaves=15",
         "--param", "min_data_in_leaf=20", "--threads", "2", "--num-boost-round", "30")  # fmt: skip
#: Six codes of the store over all its dates; the store's seventh, SZ000002, joins the file's universe
#: only when the test segment starts.
SIX = ("SH600000", "SH600004", "SH600005", "SZ000001", "SZ000004", "SZ000005")
ALL_TIME = "".join(f"{code}\t2000-01-04\t2011-12-30\n" for code in SIX)


def same_metrics(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a.keys() == b.keys() and all(
        math.isclose(a[k], b[k], rel_tol=1e-9, abs_tol=1e-12) if isinstance(a[k], float) else a[k] == b[k]
        for k in a
    )


def within_span(store: HikyuuStore, got: set[dt.datetime], code: str, lo: str, hi: str) -> bool:
    """``got`` holds every day of ``code``'s bars in [lo, hi] and no day outside it (a suspended day of
    the calendar may be scored, from the features carried over)."""
    span = DateRange.of(lo, hi)
    bars = set(store.read_bars(StockCode.parse(code), dates=span)["datetime"].to_list())
    calendar = set(store.calendar(dates=span).to_list())
    return bool(bars) and bars <= got <= calendar


def test_train_predict_and_evaluate_on_an_instruments_file(hikyuu_dir: Path, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "HQ_HOME": str(tmp_path / "home"),
        "HQ_DATABASE_URL": f"sqlite:///{tmp_path / 'r.db'}",
    }
    source = ("--source", f"hikyuu:{hikyuu_dir}")

    def hq(*args: str) -> subprocess.CompletedProcess[str]:
        return run_hq_here(*args, env=env)

    def ok(*args: str) -> dict[str, Any]:
        proc = hq(*args, "--format", "json")
        assert proc.returncode == 0, (args, proc.stderr[-2000:])
        doc: dict[str, Any] = json.loads(proc.stdout)
        return doc

    mine = tmp_path / "mine.txt"
    mine.write_text(ALL_TIME + "SZ000002\t2009-07-01\t2011-12-30\n")
    on_file = ok("model", "train", *source, "--universe-file", str(mine), *SEGMENTS, *SMALL)
    on_six = ok("model", "train", *source, "--universe", ",".join(SIX), *SEGMENTS, *SMALL)
    model = on_file["model"]
    assert model["universe"] == "mine" and model["tags"]["universe_file"] == str(mine.resolve())
    # the train and valid segments hold the same rows as the six codes alone: the same model
    for segment in ("train", "valid"):
        assert same_metrics(on_file["metrics"][segment], on_six["metrics"][segment]), segment
    # the test segment adds SZ000002's days
    assert on_file["metrics"]["test"]["rows"] > on_six["metrics"]["test"]["rows"]

    # predict: by default on the model's file, each code over its spans
    store = HikyuuStore.open(hikyuu_dir)
    out = tmp_path / "p.parquet"
    doc = ok("predict", model["id"], "--start", "2009-06-01", "--end", "2009-08-31", "--out", str(out))
    preds = pl.read_parquet(out)
    assert doc["codes"] == 7 and doc["rows"] == preds.height
    for code, lo in [*((c, "2009-06-01") for c in SIX), ("SZ000002", "2009-07-01")]:
        got = set(preds.filter(pl.col("code") == code)["datetime"].to_list())
        assert within_span(store, got, code, lo, "2009-08-31"), code
    # another file: only its member, only over its span
    other = tmp_path / "other.txt"
    other.write_text("SZ000004\t2009-07-15\t2009-08-14\n")
    ok("predict", model["id"], "--universe-file", str(other), "--start", "2009-06-01", "--end", "2009-08-31",
       "--out", str(out))  # fmt: skip
    preds = pl.read_parquet(out)
    assert set(preds["code"]) == {"SZ000004"}
    assert within_span(store, set(preds["datetime"].to_list()), "SZ000004", "2009-07-15", "2009-08-14")

    # evaluate: by default the model's file over its test segment, as training measured it
    report = ok("model", "evaluate", model["id"])
    assert report["universe"] == "mine"
    assert report["summary"]["rows"] == on_file["metrics"]["test"]["rows"]
    assert math.isclose(report["summary"]["ic"], on_file["metrics"]["test"]["ic"], rel_tol=1e-9)
    six = tmp_path / "six.txt"
    six.write_text(ALL_TIME)
    report = ok("model", "evaluate", model["id"], "--universe-file", str(six))
    assert report["universe"] == "six" and report["summary"]["rows"] == on_six["metrics"]["test"]["rows"]

    # refusals, before any work
    refused = [
        ("model", "train", *source, "--universe", "csi300", "--universe-file", str(mine), *SEGMENTS),
        ("model", "train", "--features", str(out), "--label", "x", "--universe-file", str(mine), *SEGMENTS),
        ("predict", model["id"], "--universe", "all", "--universe-file", str(mine), "--start", "2009-07-01",
         "--end", "2009-07-31", "--out", str(tmp_path / "x.parquet")),
        ("model", "evaluate", model["id"], "--universe", "all", "--universe-file", str(mine)),
    ]  # fmt: skip
    for args in refused:
        proc = hq(*args, "--format", "json")
        assert proc.returncode == 2, (args, proc.stderr[-2000:])
        assert "--universe-file" in json.loads(proc.stdout)["error"]["message"], args
    mine.unlink()  # the model's file is gone: say so, and how to choose another universe
    proc = hq("predict", model["id"], "--start", "2009-07-01", "--end", "2009-07-31",
              "--out", str(tmp_path / "y.parquet"), "--format", "json")  # fmt: skip
    assert proc.returncode != 0
    message = json.loads(proc.stdout)["error"]["message"]
    assert str(mine.resolve()) in message and "--universe-file" in message
