"""export_qlib from the real Hikyuu store; pyqlib reads the result back and trades on it."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from tests.conftest import require

from hikyuu_qlib.domain import Adjust, StockCode
from hikyuu_qlib.stores.export import ExportReport, export_qlib
from hikyuu_qlib.stores.hikyuu import HikyuuStore
from hikyuu_qlib.stores.qlib import QlibStore

CODES = [StockCode.parse(c) for c in ("SH600000", "SH600004", "SH000001", "SZ000001", "SZ000002")]
MISSING = StockCode.parse("SH600036")  # in stock.db, but no bars in the test data
FIELDS = ["open", "high", "low", "close", "volume", "factor", "change", "amount", "vwap"]


@pytest.fixture(scope="module")
def hikyuu(hikyuu_dir: Path) -> HikyuuStore:
    return HikyuuStore.open(hikyuu_dir)


@pytest.fixture(scope="module")
def exported(hikyuu: HikyuuStore, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ExportReport]:
    out = tmp_path_factory.mktemp("export") / "qlib"
    seen: list[tuple[int, int, str]] = []
    report = export_qlib(
        hikyuu, out, codes=[*CODES, MISSING], progress=lambda d, t, c: seen.append((d, t, c))
    )
    assert seen[-1] == (6, 6, "SH600036") and len(seen) == 6
    return out, report


def test_report(exported: tuple[Path, ExportReport], hikyuu: HikyuuStore) -> None:
    out, report = exported
    assert report.exported == [str(c) for c in CODES]
    assert report.failed == {} and report.without_bars == [str(MISSING)]  # listed, no bars: not a failure
    assert report.ok and report.fields == tuple(FIELDS)
    calendar = hikyuu.calendar().alias("datetime").to_frame()
    off = sum(hikyuu.read_bars(c).join(calendar, on="datetime", how="anti").height for c in CODES)
    # early-1990s Shenzhen sessions are missing from the SH000001 calendar: dropped and counted
    assert off == 32 and report.off_calendar_rows == off
    assert report.calendar_days == len(hikyuu.calendar())
    assert report.rows == sum(hikyuu.read_bars(c).height for c in CODES) - off
    assert (out / "instruments" / "sh.txt").is_file() and (out / "instruments" / "sz.txt").is_file()
    assert not (out / "instruments" / "bj.txt").exists()


def test_report_has_the_shape_of_every_batch_report(exported: tuple[Path, ExportReport]) -> None:
    """``ok`` (the codes done), ``failed`` (code -> "ErrorType: message") and ``to_dict()`` as plain values,
    like the TDX import report."""
    out, report = exported
    assert report.ok == report.exported == [str(c) for c in CODES] and report.empty == []
    doc = report.to_dict()
    assert doc["ok"] == report.ok and doc["failed"] == {} and doc["exported"] == report.exported
    assert doc["out"] == str(out) and doc["adjust"] == "forward" and doc["fields"] == FIELDS
    assert doc["without_bars"] == [str(MISSING)]


def test_values_follow_qlib_conventions(exported: tuple[Path, ExportReport], hikyuu: HikyuuStore) -> None:
    out, report = exported
    store = QlibStore.open(out)
    assert (store.calendar() == hikyuu.calendar()).all()
    # Hikyuu's (affine) forward adjustment takes SZ000002's 1990s prices below zero: rebased on backward
    assert report.rebased == ["SZ000002"]
    members = store.members("sz")
    assert members["code"].to_list() == ["SZ000001", "SZ000002"]
    for code in CODES:
        raw = hikyuu.read_bars(code)
        fwd = hikyuu.read_bars(code, adjust=Adjust.FORWARD)
        if str(code) in report.rebased:
            assert (fwd["close"] <= 0).any()
            bwd = hikyuu.read_bars(code, adjust=Adjust.BACKWARD)
            fwd = bwd.with_columns(pl.col("close") * (raw["close"][-1] / bwd["close"][-1]))
        got = store.features([code], FIELDS)
        raw = raw.join(store.calendar().alias("datetime").to_frame(), on="datetime", how="semi")
        # $change is against the code's previous bar in the source, even one off the calendar
        fwd = fwd.with_columns(pl.col("close").pct_change().alias("pct"))
        fwd = fwd.join(raw.select("datetime"), on="datetime", how="semi")
        traded = got.join(raw.select("datetime"), on="datetime", how="semi")
        # days inside the code's life without a bar are NaN rows
        assert got.height - traded.height == got["close"].is_nan().sum()
        assert traded.height == raw.height
        f64 = traded.with_columns(pl.col(FIELDS).cast(pl.Float64))
        np.testing.assert_allclose(f64["close"].to_numpy(), fwd["close"].to_numpy(), rtol=2e-7)
        np.testing.assert_allclose(
            (f64["close"] / f64["factor"]).to_numpy(), raw["close"].to_numpy(), rtol=5e-7
        )
        for name in ("open", "high", "low"):
            original = (f64[name] / f64["factor"]).to_numpy()
            np.testing.assert_allclose(original, raw[name].to_numpy(), rtol=5e-7)
        assert (f64["high"] >= f64["low"]).all() and (f64["factor"] > 0).all()
        assert f64["factor"][-1] == pytest.approx(1.0)
        np.testing.assert_allclose(
            (f64["volume"] * f64["factor"]).to_numpy(), raw["volume"].to_numpy(), rtol=5e-7
        )
        np.testing.assert_allclose(f64["amount"].to_numpy(), raw["amount"].to_numpy(), rtol=2e-7)
        pct = fwd["pct"].to_numpy()
        np.testing.assert_allclose(f64["change"].to_numpy()[1:], pct[1:], rtol=1e-5, atol=1e-7)
        assert np.isnan(f64["change"][0])
        vwap = (f64["amount"] / f64["volume"]).to_numpy()
        np.testing.assert_allclose(f64["vwap"].to_numpy(), vwap, rtol=1e-6)
    # SH600000 had splits and dividends: the factor moves, and the last bar's factor is 1 (forward)
    sh = store.features(["SH600000"], ["factor"])["factor"]
    assert sh[-1] == pytest.approx(1.0) and sh[0] < 0.5


def test_splits_are_not_crashes(exported: tuple[Path, ExportReport], hikyuu: HikyuuStore) -> None:
    out, _ = exported
    store = QlibStore.open(out)
    change = store.features(["SH600000"], ["change"]).drop_nans()["change"]
    raw_pct = hikyuu.read_bars(StockCode.parse("SH600000"))["close"].pct_change().drop_nulls()
    assert raw_pct.min() < -0.25  # the raw close drops on ex-dates (bonus shares) ...
    assert change.min() > -0.15  # ... the adjusted return does not (A-share limit is 10 %)


def test_extend_calendar_keeps_every_bar(hikyuu: HikyuuStore, tmp_path: Path) -> None:
    code = StockCode.parse("SZ000001")
    report = export_qlib(hikyuu, tmp_path / "ext", codes=[code], extend_calendar=True)
    assert report.off_calendar_rows == 0 and report.calendar_days == len(hikyuu.calendar()) + 16
    got = QlibStore.open(tmp_path / "ext").read_bars(code, adjust=Adjust.FORWARD)
    assert got["datetime"].to_list() == hikyuu.read_bars(code)["datetime"].to_list()


def test_adjust_none_has_unit_factor(hikyuu: HikyuuStore, tmp_path: Path) -> None:
    code = CODES[0]
    report = export_qlib(hikyuu, tmp_path / "raw", adjust=Adjust.NONE, codes=[code])
    assert report.ok
    got = QlibStore.open(tmp_path / "raw").read_bars(code)
    raw = hikyuu.read_bars(code)
    assert (got["factor"] == 1.0).all()
    np.testing.assert_allclose(got["close"].to_numpy(), raw["close"].to_numpy(), rtol=2e-7)
    np.testing.assert_allclose(got["volume"].to_numpy(), raw["volume"].to_numpy(), rtol=2e-7)
    np.testing.assert_allclose(got["amount"].to_numpy(), raw["amount"].to_numpy(), rtol=2e-7)


def test_any_market_data_store_exports(qlib_dir: Path, tmp_path: Path) -> None:
    """A Qlib store exported again keeps its traded prices: the factor round-trips."""
    source = QlibStore.open(qlib_dir)
    code = StockCode.parse("SH600000")
    report = export_qlib(source, tmp_path / "again", codes=[code])
    assert report.ok and report.fields == tuple(FIELDS[:7])  # no turnover in this store
    again = QlibStore.open(tmp_path / "again").read_bars(code)
    original = source.read_bars(code)
    np.testing.assert_allclose(again["close"].to_numpy(), original["close"].to_numpy(), rtol=1e-6)


PYQLIB_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import pandas as pd
    import qlib
    from qlib.data import D
    provider, out = sys.argv[1:3]
    qlib.init(provider_uri=provider, region="cn", kernels=1)
    fields = ["$close", "$close/$factor", "$volume*$factor", "$change", "$factor"]
    frame = D.features(["SH600000", "SZ000001"], fields, "2009-01-01", "2011-12-31")
    frame.columns = ["close", "raw_close", "raw_volume", "change", "factor"]
    frame = frame.reset_index()
    frame["datetime"] = frame["datetime"].dt.strftime("%Y-%m-%d")
    from qlib.backtest.exchange import Exchange
    ex = Exchange(freq="day", start_time="2011-06-01", end_time="2011-12-06", codes=["SH600000", "SZ000001"],
                  deal_price="close", limit_threshold=0.095)
    day = pd.Timestamp("2011-11-01")
    trade = {
        "deal_price": float(ex.get_deal_price("SH600000", day, day, direction=1)),
        "factor": float(ex.get_factor("SH600000", day, day)),
        "tradable": bool(ex.is_stock_tradable("SH600000", day, day)),
    }
    payload = {"frame": frame.astype({"instrument": str}).to_dict(orient="list"), "trade": trade}
    json.dump(payload, open(out, "w"))
    """
)


def test_pyqlib_reads_the_export_and_trades(
    exported: tuple[Path, ExportReport], hikyuu: HikyuuStore, tmp_path: Path
) -> None:
    require(importlib.util.find_spec("qlib") is not None, "pyqlib is not installed")
    out, _ = exported
    result = tmp_path / "pyqlib.json"
    done = subprocess.run(
        [sys.executable, "-c", PYQLIB_SCRIPT, str(out), str(result)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    payload = json.loads(result.read_text())
    got = pl.DataFrame(payload["frame"]).with_columns(
        pl.col("datetime").str.to_datetime("%Y-%m-%d", time_unit="ms")
    )
    window = (dt.datetime(2009, 1, 1), dt.datetime(2011, 12, 31))
    for code in ("SH600000", "SZ000001"):
        mine = got.filter((pl.col("instrument") == code) & pl.col("close").is_not_nan())
        raw = hikyuu.read_bars(StockCode.parse(code)).filter(pl.col("datetime").is_between(*window))
        fwd = hikyuu.read_bars(StockCode.parse(code), adjust=Adjust.FORWARD).filter(
            pl.col("datetime").is_between(*window)
        )
        assert mine["datetime"].to_list() == raw["datetime"].to_list()
        np.testing.assert_allclose(mine["raw_close"].to_numpy(), raw["close"].to_numpy(), rtol=5e-7)
        np.testing.assert_allclose(mine["close"].to_numpy(), fwd["close"].to_numpy(), rtol=2e-7)
        np.testing.assert_allclose(mine["raw_volume"].to_numpy(), raw["volume"].to_numpy(), rtol=5e-7)
        pct = fwd["close"].pct_change().to_numpy()
        np.testing.assert_allclose(mine["change"].to_numpy()[1:], pct[1:], rtol=1e-5, atol=1e-7)
    trade = payload["trade"]
    day_fwd = hikyuu.read_bars(StockCode.parse("SH600000"), adjust=Adjust.FORWARD).filter(
        pl.col("datetime") == dt.datetime(2011, 11, 1)
    )
    day_raw = hikyuu.read_bars(StockCode.parse("SH600000")).filter(
        pl.col("datetime") == dt.datetime(2011, 11, 1)
    )
    assert trade["deal_price"] == pytest.approx(day_fwd["close"].item(), rel=1e-6)
    assert trade["factor"] == pytest.approx(day_fwd["close"].item() / day_raw["close"].item(), rel=1e-6)
    assert trade["tradable"] is True
