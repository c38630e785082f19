"""The FeatureSource port on real stores: a Qlib store serves its own fields, any other store is read
through BarsFeatureSource (complete Qlib fields from bars, one batch pass per adjustment); the backtest's
price limits read ``$change`` as pyqlib does; a Hikyuu store is a RiskFreeSource."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl

from hikyuu_qlib.app import open_feature_source
from hikyuu_qlib.backtest import BacktestConfig, load_market
from hikyuu_qlib.backtest.engine import _limits
from hikyuu_qlib.domain import Adjust, DateRange, KType, Market, StockCode, StockType
from hikyuu_qlib.modelling.bars_source import BarsFeatureSource
from hikyuu_qlib.ports import FeatureSource, MarketData, RiskFreeSource
from hikyuu_qlib.research import ResearchContext
from hikyuu_qlib.settings import Settings
from hikyuu_qlib.stores.hikyuu import HikyuuStore
from hikyuu_qlib.stores.hikyuu.bonds import read_zh_bond10
from hikyuu_qlib.stores.qlib import QlibStore
from hikyuu_qlib.stores.synthetic import SyntheticStore

QLIB_FIELDS = {"open", "high", "low", "close", "volume", "factor", "change"}
ALL_FIELDS = QLIB_FIELDS | {"amount", "vwap"}


def _copy_codes(qlib_dir: Path, dest: Path, codes: list[str]) -> Path:
    """A provider directory at ``dest`` with the calendar, ``all.txt`` and the bins of ``codes``."""
    (dest / "calendars").mkdir(parents=True)
    (dest / "instruments").mkdir()
    shutil.copy(qlib_dir / "calendars" / "day.txt", dest / "calendars" / "day.txt")
    shutil.copy(qlib_dir / "instruments" / "all.txt", dest / "instruments" / "all.txt")
    for code in codes:
        shutil.copytree(qlib_dir / "features" / code.lower(), dest / "features" / code.lower())
    return dest


def _without_bars(store: MarketData, universe: str) -> str:
    """A member of ``universe`` that the store lists but holds no bars for."""
    members = store.members(universe)["code"].unique().sort()
    listed = store.stocks(valid=None).filter(pl.col("has_data"))["code"]
    return str(members.filter(~members.is_in(listed.to_list()))[0])


def test_a_qlib_store_is_its_own_feature_source(qlib_dir: Path, tmp_path: Path) -> None:
    store = QlibStore.open(qlib_dir)
    assert isinstance(store, FeatureSource) and open_feature_source(store) is store
    absent = _without_bars(store, "csi300")  # a delisted member without a features folder
    fields = store.fields(["SH600000", "SZ000001"])
    assert fields >= QLIB_FIELDS and "vwap" not in fields  # this store has no vwap bins
    assert store.fields(["SH600000", absent]) == store.fields(["SH600000"])  # no data: does not count
    assert store.fields([absent]) == frozenset()
    # one code without a $change bin: $change is not served for the pair, and the backtest says so
    copy = QlibStore.open(_copy_codes(qlib_dir, tmp_path / "q", ["SH600000", "SZ000001"]))
    (tmp_path / "q" / "features" / "sz000001" / "change.day.bin").unlink()
    assert "change" in copy.fields(["SH600000"]) and "change" not in copy.fields(["SH600000", "SZ000001"])
    dates = DateRange.of("2020-01-01", "2020-03-31")
    assert load_market(copy, ["SH600000"], dates, benchmark=None).has_change
    assert not load_market(copy, ["SH600000", "SZ000001"], dates, benchmark=None).has_change


def test_bars_source_serves_qlib_fields_from_hikyuu_bars(hikyuu_dir: Path) -> None:
    store = HikyuuStore.open(hikyuu_dir)
    source = open_feature_source(store)
    assert isinstance(source, BarsFeatureSource) and source.store is store
    assert source.source == store.source  # the market it reads; its version names the bridge too
    assert (
        source.data_version().startswith(store.data_version())
        and source.data_version() != store.data_version()
    )
    absent = _without_bars(store, "all")
    assert source.fields() == ALL_FIELDS == source.fields(["SH600000", absent])
    assert source.fields([absent]) == frozenset()
    assert source.members("all").equals(store.members("all"))
    frame = source.features(
        ["SH600000", absent], ["$close", "$factor", "$change", "$open", "$volume", "vwap", "amount"]
    )
    assert frame["code"].unique().to_list() == ["SH600000"]  # without bars: absent, as in Qlib
    assert all(frame[c].dtype == pl.Float32 for c in frame.columns[2:])
    raw = store.read_bars(StockCode.parse("SH600000"))
    back = store.read_bars(StockCode.parse("SH600000"), adjust=Adjust.BACKWARD)
    got = frame.join(raw, on=["code", "datetime"], suffix="_raw").join(
        back, on=["code", "datetime"], suffix="_back"
    )
    assert got.height == raw.height > 2000  # every bar (the shared store's days are all on its calendar)
    np.testing.assert_allclose(got["close"], got["close_back"], rtol=1e-6)  # backward-adjusted closes
    np.testing.assert_allclose(got["close"], got["close_raw"] * got["factor"], rtol=1e-6)
    np.testing.assert_allclose(got["open"], got["open_raw"] * got["factor"], rtol=1e-6)
    np.testing.assert_allclose(got["volume"], got["volume_raw"] / got["factor"], rtol=1e-6)
    np.testing.assert_allclose(got["vwap"], got["amount_raw"] / got["volume"], rtol=1e-5)
    # $change: a fraction against the previous bar's adjusted close, so an ex-date is no crash
    ratio = (back["close"] / back["close"].shift(1) - 1).to_numpy()[1:]
    raw_ratio = (raw["close"] / raw["close"].shift(1) - 1).to_numpy()[1:]
    change = got["change"].to_numpy().astype(np.float64)
    assert np.isnan(change[0])
    np.testing.assert_allclose(change[1:], ratio, rtol=1e-4, atol=1e-6)
    crashes = raw_ratio < -0.2  # ex-dates of bonus shares: the traded close falls, the adjusted one not
    assert crashes.sum() >= 3 and np.all(change[1:][crashes] > -0.11)


def test_bars_source_rows_span_each_code_s_whole_history_as_qlib_bins_do(hikyuu_dir: Path) -> None:
    """SZ000004 is suspended until 2010-02-11: a window starting before that has its NaN rows from the
    window's first day (as a Qlib bin, which spans the code's whole history), so the label of 2010-02-10
    is the same whatever the window; a window past a code's last bar has no row of it."""
    source = open_feature_source(HikyuuStore.open(hikyuu_dir))
    frame = source.features(["SZ000004"], ["close"], DateRange.of("2010-02-05", "2010-02-26"))
    assert frame["datetime"][0] == DateRange.of("2010-02-05").start and frame.height == 11
    assert frame["close"].is_nan().to_list()[:5] == [True, True, True, True, False]  # 02-11 trades again
    last = source.features(["SZ000004"], ["close"], None)["datetime"][-1]
    after = DateRange(last + (DateRange.of("2000-01-02").start - DateRange.of("2000-01-01").start))
    assert source.features(["SZ000004"], ["close"], after).is_empty()


class OneByOne:
    """A store without a batch reader: the same Hikyuu store, read one code at a time."""

    def __init__(self, store: HikyuuStore) -> None:
        self.inner = store

    @property
    def source(self) -> str:
        return self.inner.source

    def data_version(self) -> str:
        return self.inner.data_version()

    def markets(self) -> list[Market]:
        return self.inner.markets()

    def ktypes(self) -> frozenset[KType]:
        return self.inner.ktypes()

    def stocks(
        self, *, market: Market | None = None, types: list[StockType] | None = None, valid: bool | None = True
    ) -> pl.DataFrame:
        return self.inner.stocks(market=market, types=types, valid=valid)

    def calendar(self, *, ktype: KType = KType.DAY, dates: DateRange | None = None) -> pl.Series:
        return self.inner.calendar(ktype=ktype, dates=dates)

    def members(self, universe: str, dates: DateRange | None = None) -> pl.DataFrame:
        return self.inner.members(universe, dates)

    def read_bars(
        self,
        code: StockCode,
        *,
        ktype: KType = KType.DAY,
        adjust: Adjust = Adjust.NONE,
        dates: DateRange | None = None,
    ) -> pl.DataFrame:
        self.reads += 1
        return self.inner.read_bars(code, ktype=ktype, adjust=adjust, dates=dates)

    def weights(self, code: StockCode) -> pl.DataFrame:
        return self.inner.weights(code)

    def close(self) -> None:
        self.inner.close()

    reads = 0


def test_a_batch_read_gives_what_reads_one_code_at_a_time_give(hikyuu_dir: Path) -> None:
    store = HikyuuStore.open(hikyuu_dir)
    codes = store.stocks(valid=None).filter(pl.col("has_data"))["code"].to_list()
    fields = sorted(ALL_FIELDS)
    single = OneByOne(store)
    assert isinstance(store, MarketData) and isinstance(single, MarketData)
    expected = BarsFeatureSource(single).features(codes, fields, DateRange.of("2005-01-01", "2011-12-31"))
    assert single.reads >= 2 * len(codes)  # traded and backward-adjusted bars of every code
    batch = BarsFeatureSource(store).features(codes, fields, DateRange.of("2005-01-01", "2011-12-31"))
    assert batch.height > 10_000 and batch.equals(expected)


def test_limits_on_a_percent_store_are_pyqlib_s_with_the_threshold_in_percent(qlib_dir: Path) -> None:
    """This store keeps $change in percent and holds two days at exactly 9.5 %: pyqlib with its threshold
    9.5 calls them limit up, and so does 0.095 here (the Float32 fraction against the Float32 threshold)."""
    store = QlibStore.open(qlib_dir)
    for code, day in (("SH600595", "2015-09-16"), ("SH601865", "2020-09-11")):
        dates = DateRange.of(f"{day[:4]}-01-01", f"{day[:4]}-12-31")
        market = load_market(store, [code], dates, benchmark=None)
        no_buy, no_sell = _limits(market, BacktestConfig(topk=1, n_drop=0, limit_threshold=0.095))
        stored = store.features([code], ["change", "close"], dates, as_stored=True)
        when = market.dates.astype("datetime64[ms]")
        stored = stored.filter(pl.col("datetime").is_in(pl.Series(when).cast(pl.Datetime("ms")).to_list()))
        assert stored.height == len(when)
        change = pd.Series(stored["change"].to_numpy())  # pyqlib's quote: Float32 $change as stored
        halted = np.isnan(stored["close"].to_numpy())
        np.testing.assert_array_equal(no_buy[:, 0], change.ge(9.5).to_numpy() | halted)
        np.testing.assert_array_equal(no_sell[:, 0], change.le(-9.5).to_numpy() | halted)
        assert no_buy[np.flatnonzero(when == np.datetime64(day, "ms"))[0], 0]


def test_limits_on_a_fraction_store_are_pyqlib_s(qlib_dir: Path, tmp_path: Path) -> None:
    """A store keeping $change as a fraction, with days at exactly Float32 0.095 and -0.095 and one just
    below: pyqlib (``quote["$change"].ge(0.095)`` on Float32) calls the first two limits, not the third."""
    root = _copy_codes(qlib_dir, tmp_path / "q", ["SH600000"])
    path = root / "features" / "sh600000" / "change.day.bin"
    data = np.fromfile(path, dtype="<f4")
    data[1:] = (data[1:].astype(np.float64) / 100).astype(np.float32)  # percent -> fraction
    start = int(data[0])
    calendar = pl.read_csv(root / "calendars" / "day.txt", has_header=False, new_columns=["day"])["day"]
    days = {
        "2020-03-02": np.float32(0.095),
        "2020-03-03": np.float32(-0.095),
        "2020-03-04": np.nextafter(np.float32(0.095), np.float32(0)),
    }
    for day, value in days.items():
        data[1 + calendar.to_list().index(day) - start] = value
    data.tofile(path)
    store = QlibStore.open(root, change_unit="fraction")
    market = load_market(store, ["SH600000"], DateRange.of("2020-02-01", "2020-03-31"), benchmark=None)
    no_buy, no_sell = _limits(market, BacktestConfig(topk=1, n_drop=0, limit_threshold=0.095))
    rows = {day: int(np.flatnonzero(market.dates == np.datetime64(day, "ms"))[0]) for day in days}
    quote = pd.Series(np.array(list(days.values()), dtype=np.float32))
    assert quote.ge(0.095).tolist() == [True, False, False] and quote.le(-0.095).tolist() == [
        False,
        True,
        False,
    ]
    assert [bool(no_buy[rows[d], 0]) for d in days] == quote.ge(0.095).tolist()
    assert [bool(no_sell[rows[d], 0]) for d in days] == quote.le(-0.095).tolist()


def test_a_hikyuu_store_is_a_risk_free_source(hikyuu_dir: Path, qlib_dir: Path, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    hikyuu = HikyuuStore.open(hikyuu_dir)
    assert isinstance(hikyuu, RiskFreeSource)
    rates = hikyuu.risk_free()
    assert rates is not None and rates.columns == ["datetime", "rate"] and rates.height > 1000
    assert rates.equals(read_zh_bond10(hikyuu_dir / "stock.db"))
    with ResearchContext(settings, hikyuu) as ctx:
        got = ctx.risk_free()
        assert got is not None and got.equals(rates)
    for other in (QlibStore.open(qlib_dir), SyntheticStore()):
        assert not isinstance(other, RiskFreeSource)
        with ResearchContext(settings, other) as ctx:
            assert ctx.risk_free() is None
