"""Volume from Qlib stores: traded shares with ``adjust=none`` and Qlib's adjusted volume otherwise, whichever
way the store keeps ``$volume``. The shared ``qlib_cn`` keeps the traded shares (it adjusts its prices
only); an ``hq data export-qlib`` store keeps Qlib's ``traded shares / $factor``. Both are checked against
the Hikyuu store's traded volume on the codes and days the stores share."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from hikyuu_qlib.app import open_store
from hikyuu_qlib.domain import Adjust, DateRange, InvalidInputError, StockCode, StockType
from hikyuu_qlib.settings import Settings
from hikyuu_qlib.stores.export import export_qlib
from hikyuu_qlib.stores.hikyuu import HikyuuStore
from hikyuu_qlib.stores.qlib import QlibStore

#: The days both shared stores cover.
SHARED_DAYS = DateRange.of("2010-01-04", "2011-12-06")


@pytest.fixture(scope="module")
def hikyuu(hikyuu_dir: Path) -> HikyuuStore:
    return HikyuuStore.open(hikyuu_dir)


@pytest.fixture(scope="module")
def qlib(qlib_dir: Path) -> QlibStore:
    return QlibStore.open(qlib_dir)


@pytest.fixture(scope="module")
def shared_codes(hikyuu: HikyuuStore, qlib: QlibStore) -> list[StockCode]:
    """The stocks (not indices) with bars in both stores."""
    ours = set(
        hikyuu.stocks(valid=None)
        .filter(pl.col("has_data") & (pl.col("type") != int(StockType.INDEX)))["code"]
        .to_list()
    )
    theirs = set(qlib.stocks(valid=None).filter(pl.col("has_data"))["code"].to_list())
    codes = sorted(ours & theirs)
    assert len(codes) >= 3, codes
    return [StockCode.parse(c) for c in codes]


def _traded(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.filter(pl.col("volume") > 0).select("datetime", "volume", "close")


def _against_hikyuu(bars: pl.DataFrame, hikyuu: HikyuuStore, code: StockCode) -> pl.DataFrame:
    """``bars`` joined with Hikyuu's traded bars of ``code`` on the days both traded (``*_h`` columns)."""
    traded = _traded(hikyuu.read_bars(code, dates=SHARED_DAYS))
    both = _traded(bars).join(traded, on="datetime", suffix="_h")
    assert both.height > 300, (code, both.height)
    return both


def test_qlib_cn_keeps_the_traded_volume(
    qlib: QlibStore, hikyuu: HikyuuStore, shared_codes: list[StockCode], qlib_dir: Path
) -> None:
    """What the shared data set holds: ``$volume`` is Hikyuu's traded volume, not divided by ``$factor``
    (off by up to 99 shares a day: SH600004 on 2010-02-08 has 7,534,401 against 7,534,500)."""
    stored = qlib.features(shared_codes, ["volume", "factor"], SHARED_DAYS).drop_nans()
    assert stored["factor"].min() > 1.05  # every day: Qlib's convention would differ from the traded volume
    for code in shared_codes:
        mine = stored.filter(pl.col("code") == str(code))
        both = _against_hikyuu(mine.with_columns(pl.lit(1.0).alias("close")), hikyuu, code)
        np.testing.assert_allclose(both["volume"].to_numpy(), both["volume_h"].to_numpy(), rtol=1e-4)
    assert qlib.volume_convention() == "traded"
    assert QlibStore.open(qlib_dir, volume="adjusted").volume_convention() == "adjusted"


def test_raw_volume_is_the_traded_volume(
    qlib: QlibStore, hikyuu: HikyuuStore, shared_codes: list[StockCode]
) -> None:
    many, errors = qlib.read_many(shared_codes, dates=SHARED_DAYS)
    assert errors == {}
    for code in shared_codes:
        bars = qlib.read_bars(code, dates=SHARED_DAYS)
        assert bars.equals(many.filter(pl.col("code") == str(code)))
        both = _against_hikyuu(bars, hikyuu, code)
        np.testing.assert_allclose(both["close"].to_numpy(), both["close_h"].to_numpy(), rtol=1e-3)
        np.testing.assert_allclose(both["volume"].to_numpy(), both["volume_h"].to_numpy(), rtol=1e-4)


def test_adjusted_volume_follows_qlibs_convention(qlib: QlibStore, shared_codes: list[StockCode]) -> None:
    """Adjusted volume = traded shares ÷ the factor relative to the adjustment's anchor bar (the last
    for forward, the first for backward): price × volume stays the day's turnover."""
    for code in shared_codes:
        raw = qlib.read_bars(code)
        factor = raw["factor"].to_numpy()
        for adjust, anchor in ((Adjust.FORWARD, factor[-1]), (Adjust.BACKWARD, factor[0])):
            bars = qlib.read_bars(code, adjust=adjust)
            expected = raw["volume"].to_numpy() * anchor / factor
            np.testing.assert_allclose(bars["volume"].to_numpy(), expected, rtol=1e-9)
            turnover = (raw["close"] * raw["volume"]).to_numpy()
            np.testing.assert_allclose((bars["close"] * bars["volume"]).to_numpy(), turnover, rtol=1e-9)
        many, _ = qlib.read_many([code], adjust=Adjust.FORWARD)
        assert many.equals(qlib.read_bars(code, adjust=Adjust.FORWARD))


def test_export_round_trip_keeps_qlibs_convention(
    hikyuu: HikyuuStore, shared_codes: list[StockCode], tmp_path: Path
) -> None:
    """``export-qlib`` writes ``$volume = traded shares / $factor``; the reader detects it and reads back
    Hikyuu's traded volume, raw and forward-adjusted as Qlib adjusts it."""
    export_qlib(hikyuu, tmp_path / "out", adjust=Adjust.FORWARD, codes=shared_codes)
    exported = QlibStore.open(tmp_path / "out")
    assert exported.volume_convention() == "adjusted"
    stored = exported.features(shared_codes, ["volume", "factor"]).drop_nans()
    assert stored["factor"].min() < 0.5  # splits in the history: the two conventions differ there
    for code in shared_codes:
        both = _against_hikyuu(exported.read_bars(code, dates=SHARED_DAYS), hikyuu, code)
        np.testing.assert_allclose(both["volume"].to_numpy(), both["volume_h"].to_numpy(), rtol=1e-6)


def test_the_setting_overrides_the_detection(
    qlib_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    code = StockCode.parse("SH600000")
    stored = QlibStore.open(qlib_dir).features([code], ["close", "volume", "factor"]).drop_nans()
    f64 = stored.with_columns(pl.col("volume", "factor").cast(pl.Float64))
    said = QlibStore.open(qlib_dir, volume="adjusted").read_bars(code)
    np.testing.assert_allclose(
        said["volume"].to_numpy(), (f64["volume"] * f64["factor"]).to_numpy(), rtol=1e-12
    )
    for setting in ("traded", "adjusted"):
        monkeypatch.setenv("HQ_QLIB_VOLUME", setting)
        store = open_store(f"qlib:{qlib_dir}", settings=Settings(home=tmp_path))
        assert isinstance(store, QlibStore) and store.volume_convention() == setting
    with pytest.raises(InvalidInputError, match="volume must be one of"):
        QlibStore.open(qlib_dir, volume="shares")  # type: ignore[arg-type]
