"""Point-in-time universes: each date uses that date's members, as Qlib's instruments spans say."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from hikyuu_qlib.domain import DateRange
from hikyuu_qlib.factors.pipeline import compute_features
from hikyuu_qlib.factors.universe import Universe

DATES = DateRange.of("2018-05-15", "2018-07-15")  # spans the June 2018 CSI300 rebalance


def test_rows_are_each_dates_members_as_in_qlib(pyqlib: object, qlib_dir: Path) -> None:
    from qlib.data import D

    from hikyuu_qlib.stores.qlib.store import QlibStore

    store = QlibStore.open(qlib_dir)
    universe = Universe.from_store(store, "csi300", DATES)
    ours = compute_features(store, universe, DATES, label=False).select("code", "datetime")
    ref = D.features(D.instruments("csi300"), ["$close"], "2018-05-15", "2018-07-15").reset_index()
    expected = pl.DataFrame(
        {"code": ref["instrument"].astype(str).tolist(), "datetime": ref["datetime"].tolist()}
    )
    expected = expected.with_columns(pl.col("datetime").cast(pl.Datetime("ms"))).sort("code", "datetime")
    assert ours.sort("code", "datetime").equals(expected)
    # membership really changes inside the range: some codes leave and some join
    first = set(universe.members_on("2018-05-15"))
    last = set(universe.members_on("2018-07-13"))
    assert first - last and last - first
    left = sorted(first - last)[0]
    assert ours.filter(pl.col("code") == left)["datetime"].max() < DATES.end


def test_static_universe_and_mask() -> None:
    universe = Universe.from_codes(["sh600000", "000001.SZ"])
    assert universe.codes() == ["SH600000", "SZ000001"]
    day = dt.datetime(2018, 1, 2)
    frame = pl.DataFrame({"code": ["SH600000", "SZ000002"], "datetime": [day, day]})
    assert universe.mask(frame).to_list() == [True, False]
    assert universe.fingerprint() != Universe.from_codes(["SH600000"]).fingerprint()


def test_member_mask_equals_the_join_mask(qlib_dir: Path) -> None:
    from hikyuu_qlib.factors.pipeline import member_mask
    from hikyuu_qlib.stores.qlib.store import QlibStore

    store = QlibStore.open(qlib_dir)
    dates = DateRange.of("2014-01-01", "2019-12-31")
    universe = Universe.from_store(store, "csi300", dates)
    bars = store.features(universe.codes(), ["$close"], dates).sort("code", "datetime")
    fast = member_mask(universe, bars)
    assert fast.equals(universe.mask(bars).alias(fast.name))
    assert 0 < fast.sum() < bars.height  # members leave and join in these years
