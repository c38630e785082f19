"""``$change`` is served as a fraction on every Qlib store: its unit is detected once (or set), and said.

The shared store keeps ``$change`` in percent; copies with ``$change`` rewritten as a fraction, or with too
few days to tell, show the other cases. Also: the backtest's market arrays and limits use fractions.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from hikyuu_qlib.app import open_store
from hikyuu_qlib.backtest import load_market
from hikyuu_qlib.domain import DateRange, InvalidInputError
from hikyuu_qlib.settings import Settings
from hikyuu_qlib.stores.qlib import QlibStore

LOGGER = "hikyuu_qlib.stores.qlib.store"
CODES = ("SH600000", "SH600036", "SZ000001")


def _ratio(frame: pl.DataFrame) -> float:
    """Median of ``change / (close / previous close - 1)`` over days that moved."""
    moved = frame.sort("code", "datetime").with_columns(
        (pl.col("close").cast(pl.Float64) / pl.col("close").cast(pl.Float64).shift(1).over("code") - 1).alias(
            "r"
        )
    )
    usable = moved.filter(pl.col("r").abs() > 0.002, pl.col("change").is_not_nan())
    return float((usable["change"].cast(pl.Float64) / usable["r"]).median())  # type: ignore[arg-type]


def _copy(qlib_dir: Path, root: Path, *, scale: float = 1.0, days: int | None = None) -> Path:
    """A store of three codes; ``change`` multiplied by ``scale``; only the last ``days`` of bins."""
    (root / "calendars").mkdir(parents=True)
    (root / "instruments").mkdir()
    shutil.copy(qlib_dir / "calendars" / "day.txt", root / "calendars" / "day.txt")
    lines = (qlib_dir / "instruments" / "all.txt").read_text().splitlines()
    (root / "instruments" / "all.txt").write_text("\n".join(ln for ln in lines if ln.split("\t")[0] in CODES))
    n_cal = len((qlib_dir / "calendars" / "day.txt").read_text().split())
    for code in CODES:
        target = root / "features" / code.lower()
        shutil.copytree(qlib_dir / "features" / code.lower(), target)
        for path in target.glob("*.day.bin"):
            data = np.fromfile(path, dtype="<f4")
            if path.name == "change.day.bin":
                data[1:] = (data[1:].astype(np.float64) * scale).astype("<f4")
            if days is not None:
                data = np.concatenate([[np.float32(n_cal - days)], data[-days:]]).astype("<f4")
            data.tofile(path)
    return root


def test_percent_store_is_detected_once_and_served_as_a_fraction(
    qlib_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = QlibStore.open(qlib_dir)
    dates = DateRange.of("2019-01-01", "2020-12-31")
    with caplog.at_level(logging.INFO, logger=LOGGER):
        served = store.features(list(CODES), ["close", "change"], dates)
        stored = store.features(list(CODES), ["close", "change"], dates, as_stored=True)
        assert store.change_unit() == "percent"
    said = [r for r in caplog.records if "$change" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.INFO  # once per store
    assert str(qlib_dir) in said[0].getMessage() and "percent" in said[0].getMessage()
    assert _ratio(served) == pytest.approx(1.0, abs=0.02)
    assert _ratio(stored) == pytest.approx(100.0, abs=2.0)
    expect = (stored["change"].cast(pl.Float64) / 100).cast(pl.Float32)
    assert served["change"].equals(expect) and served.drop("change").equals(stored.drop("change"))


def test_fraction_store_is_served_as_stored(
    qlib_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = _copy(qlib_dir, tmp_path / "q", scale=0.01)
    store = QlibStore.open(root)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert store.change_unit() == "fraction"
    assert any("fraction" in r.getMessage() and str(root) in r.getMessage() for r in caplog.records)
    served = store.features(list(CODES), ["close", "change"])
    assert served.equals(store.features(list(CODES), ["close", "change"], as_stored=True))
    assert _ratio(served) == pytest.approx(1.0, abs=0.02)


def test_the_setting_overrides_the_detection(qlib_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    said = QlibStore.open(qlib_dir, change_unit="fraction")
    assert said.change_unit() == "fraction"
    raw = said.features(["SH600000"], ["change"])
    assert raw.equals(said.features(["SH600000"], ["change"], as_stored=True))
    monkeypatch.setenv("HQ_QLIB_CHANGE_UNIT", "fraction")
    opened = open_store(f"qlib:{qlib_dir}", settings=Settings())
    assert isinstance(opened, QlibStore) and opened.change_unit() == "fraction"
    monkeypatch.setenv("HQ_QLIB_CHANGE_UNIT", "percent")
    assert open_store(f"qlib:{qlib_dir}", settings=Settings()).change_unit() == "percent"  # type: ignore[attr-defined]
    monkeypatch.delenv("HQ_QLIB_CHANGE_UNIT")
    assert open_store(f"qlib:{qlib_dir}", settings=Settings()).change_unit() == "percent"  # type: ignore[attr-defined]
    with pytest.raises(InvalidInputError, match="change_unit"):
        QlibStore.open(qlib_dir, change_unit="basis points")  # type: ignore[arg-type]


def test_an_inconclusive_sample_is_taken_as_a_fraction_and_said(
    qlib_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = _copy(qlib_dir, tmp_path / "q", days=8)  # a few days: too few moves to tell
    store = QlibStore.open(root)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert store.change_unit() == "fraction"
        store.change_unit()
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1
    message = warned[0].getMessage()
    assert str(root) in message and "cannot tell" in message and "HQ_QLIB_CHANGE_UNIT" in message


def test_a_store_without_change_bins_still_reads(qlib_dir: Path, tmp_path: Path) -> None:
    root = _copy(qlib_dir, tmp_path / "q")
    for path in root.glob("features/*/change.day.bin"):
        path.unlink()
    store = QlibStore.open(root)
    assert store.features(list(CODES), ["close"]).height > 3000
    assert store.change_unit() == "fraction"
    market = load_market(store, list(CODES), DateRange.of("2020-01-01", "2020-03-31"), benchmark=None)
    assert not market.has_change


def test_backtest_market_change_is_a_fraction(qlib_dir: Path) -> None:
    store = QlibStore.open(qlib_dir)
    codes = store.members("csi300", DateRange.of("2020-01-01", "2020-06-30"))["code"].unique().to_list()
    market = load_market(store, codes, DateRange.of("2020-01-01", "2020-06-30"))
    before = np.vstack([market.prev_close[None, :], market.close[:-1]])
    with np.errstate(divide="ignore", invalid="ignore"):
        moved = market.close / before - 1.0
    usable = np.isfinite(moved) & np.isfinite(market.change) & (np.abs(moved) > 0.002)
    assert usable.sum() > 10_000
    assert np.median(market.change[usable] / moved[usable]) == pytest.approx(1.0, abs=0.02)
    # the feature source's $change as served, a Float32 fraction (limits compare it in Float32, as pyqlib)
    served = store.features(codes, ["change"], DateRange.of("2020-01-01", "2020-06-30"))
    assert np.nanmax(market.change) == float(np.nanmax(served["change"].to_numpy()))
