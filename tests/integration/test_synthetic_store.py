"""The synthetic market store: MarketData contract, realism properties and the planted signal."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from hikyuu_qlib.domain import (
    Adjust,
    DateRange,
    InvalidCodeError,
    InvalidInputError,
    KType,
    Market,
    NotFoundError,
    StockCode,
    StockType,
    UnknownCodeError,
    UnsupportedKTypeError,
)
from hikyuu_qlib.domain.schema import BAR_SCHEMA, MEMBERSHIP_SCHEMA, STOCK_SCHEMA, WEIGHT_SCHEMA
from hikyuu_qlib.ports import MarketData
from hikyuu_qlib.stores.source import SyntheticParams
from hikyuu_qlib.stores.synthetic import SyntheticStore

SMALL = SyntheticParams(seed=11, stocks=80, years=3, start=dt.date(2016, 1, 4))


@pytest.fixture(scope="module")
def store() -> SyntheticStore:
    """The default market (300 stocks x 8 years)."""
    return SyntheticStore(SyntheticParams())


@pytest.fixture(scope="module")
def bars(store: SyntheticStore) -> pl.DataFrame:
    """Raw bars of the stocks (not the index) with the previous close and the stock's daily limit."""
    limits = (
        store.stocks(valid=None)
        .filter(pl.col("type") != int(StockType.INDEX))
        .select("code", pl.when(pl.col("type").is_in([8, 9])).then(0.2).otherwise(0.1).alias("limit"))
    )
    return (
        store.frame()
        .with_columns(pl.col("close").shift(1).over("code").alias("prev"))
        .join(limits, on="code", how="inner")
    )


def _ex_dates(store: SyntheticStore) -> pl.DataFrame:
    return store.all_weights().select("code", pl.col("date").alias("datetime"), pl.lit(True).alias("ex"))


# --- contract -------------------------------------------------------------------------------------


def test_implements_the_market_data_port(store: SyntheticStore) -> None:
    assert isinstance(store, MarketData)
    assert store.source == "synthetic:7"
    assert SyntheticStore(SMALL).source == "synthetic:11?stocks=80&years=3&start=2016-01-04"
    assert store.markets() == [Market.SH, Market.SZ]
    assert store.ktypes() == frozenset(
        {KType.DAY, KType.WEEK, KType.MONTH, KType.QUARTER, KType.HALFYEAR, KType.YEAR}
    )


def test_data_version_depends_on_params_only() -> None:
    a, b = SyntheticStore(SMALL), SyntheticStore(SMALL)
    assert a.data_version() == b.data_version()
    other = SyntheticStore(SyntheticParams(seed=12, stocks=80, years=3, start=dt.date(2016, 1, 4)))
    assert other.data_version() != a.data_version()
    assert a._market is None  # version and source need no generation


def test_frame_schema_and_order(store: SyntheticStore) -> None:
    frame = store.frame()
    assert frame.schema == pl.Schema(BAR_SCHEMA)
    assert frame.height > 400_000
    assert frame.equals(frame.sort("code", "datetime"))
    assert frame.select(pl.struct("code", "datetime").is_duplicated().any()).item() is False
    assert frame.null_count().sum_horizontal().item() == 0
    codes = store.stocks(valid=None).get_column("code")
    assert frame.get_column("code").unique(maintain_order=True).to_list() == codes.to_list()


def test_read_bars_is_the_codes_slice_of_the_frame(store: SyntheticStore) -> None:
    one = store.read_bars(StockCode.parse("SZ000001"))
    assert one.schema == pl.Schema(BAR_SCHEMA)
    assert_frame_equal(one, store.frame().filter(pl.col("code") == "SZ000001"))
    dates = DateRange.of("2018-03-01", "2018-03-31")
    march = store.read_bars(StockCode.parse("sz000001"), dates=dates)
    assert march.height > 15
    assert march.get_column("datetime").min() >= dt.datetime(2018, 3, 1)  # type: ignore[operator]
    assert march.get_column("datetime").max() <= dt.datetime(2018, 3, 31)  # type: ignore[operator]


def test_same_params_give_identical_frames_and_other_seeds_differ() -> None:
    a, b = SyntheticStore(SMALL), SyntheticStore(SMALL)
    assert_frame_equal(a.frame(), b.frame())
    assert_frame_equal(a.stocks(valid=None), b.stocks(valid=None))
    assert_frame_equal(a.frame(Adjust.FORWARD), b.frame(Adjust.FORWARD))
    other = SyntheticStore(SyntheticParams(seed=12, stocks=80, years=3, start=dt.date(2016, 1, 4)))
    assert not other.frame().equals(a.frame())


def test_lazy_generation_is_shared_across_threads() -> None:
    fresh = SyntheticStore(SMALL)
    assert fresh._market is None
    with ThreadPoolExecutor(4) as pool:
        frames = list(pool.map(lambda _: fresh.frame(), range(8)))
    assert all(f is frames[0] for f in frames)
    fresh.close()
    assert fresh._market is None
    assert_frame_equal(fresh.frame(), frames[0])


# --- stock list, calendar, universes ------------------------------------------------------------------


def test_stock_list(store: SyntheticStore) -> None:
    listed = store.stocks(valid=None)
    assert listed.schema == pl.Schema(STOCK_SCHEMA)
    assert listed.filter(pl.col("type") == int(StockType.INDEX))["code"].to_list() == ["SH000001"]
    everything = listed.filter(pl.col("type") != int(StockType.INDEX))
    assert everything.height == 300
    assert {"SH600000", "SZ000001", "SZ300001", "SH688001"} <= set(everything.get_column("code"))
    chinext = everything.filter(pl.col("code").str.starts_with("SZ30"))
    assert chinext.get_column("type").unique().to_list() == [int(StockType.CHINEXT)]
    star = everything.filter(pl.col("code").str.starts_with("SH68"))
    assert star.get_column("type").unique().to_list() == [int(StockType.STAR)]
    assert set(star.get_column("lot")) == {200}
    delisted = everything.filter(~pl.col("valid"))
    assert delisted.height > 0
    assert delisted.get_column("end_date").null_count() == 0
    assert (
        everything.filter(pl.col("valid")).get_column("end_date").null_count()
        == everything.height - delisted.height
    )
    assert everything.filter(pl.col("start_date") > dt.date(2015, 1, 5)).height > 10  # listed late
    assert store.stocks().height == everything.height - delisted.height + 1  # and the index
    sz = store.stocks(market=Market.SZ, types=[StockType.CHINEXT], valid=None)
    assert sz.height == chinext.height
    assert everything.get_column("name").str.len_chars().min() >= 4  # type: ignore[operator]


def test_delisted_and_late_stocks_trade_only_while_listed(store: SyntheticStore) -> None:
    spans = (
        store.frame()
        .group_by("code")
        .agg(pl.col("datetime").min().alias("first"), pl.col("datetime").max().alias("last"))
    )
    info = store.stocks(valid=None).join(spans, on="code")
    gone = info.filter(~pl.col("valid"))
    assert (gone.get_column("last").dt.date() == gone.get_column("end_date")).all()
    late = info.filter(pl.col("start_date") > dt.date(2015, 1, 5))
    assert (late.get_column("first").dt.date() == late.get_column("start_date")).all()


def test_calendar_has_weekdays_without_holidays(store: SyntheticStore) -> None:
    days = store.calendar()
    assert days.dtype == pl.Datetime("ms")
    assert days.is_sorted() and days.n_unique() == days.len()
    assert (days.dt.weekday() <= 5).all()
    dates = set(days.dt.date().to_list())
    for closed in (dt.date(2016, 1, 1), dt.date(2017, 10, 2), dt.date(2018, 5, 1), dt.date(2016, 2, 8)):
        assert closed not in dates  # New Year, National Day, Labour Day, Spring Festival 2016
    assert dt.date(2016, 2, 15) in dates  # the Monday after the Spring Festival week
    per_year = days.dt.year().alias("year").value_counts().filter(pl.col("year") < 2022).get_column("count")
    assert per_year.min() >= 235 and per_year.max() <= 250  # type: ignore[operator]
    window = store.calendar(dates=DateRange.of("2019-01-01", "2019-01-31"))
    assert window.len() == 22


def test_period_calendars_and_bars_use_period_end_labels(store: SyntheticStore) -> None:
    weeks = store.calendar(ktype=KType.WEEK)
    assert (weeks.dt.weekday() == 5).all()  # Fridays
    months = store.calendar(ktype=KType.MONTH)
    assert (months.dt.offset_by("1d").dt.day() == 1).all()
    assert store.calendar(ktype=KType.YEAR).dt.date().to_list()[:2] == [
        dt.date(2015, 12, 31),
        dt.date(2016, 12, 31),
    ]
    code = StockCode.parse("SH600000")
    day = store.read_bars(code, dates=DateRange.of("2019-06-03", "2019-06-07"))
    week = store.read_bars(code, ktype=KType.WEEK, dates=DateRange.of("2019-06-01", "2019-06-09"))
    assert week.height == 1
    row = week.row(0, named=True)
    assert row["datetime"] == dt.datetime(2019, 6, 7)
    assert row["open"] == day.get_column("open")[0] and row["close"] == day.get_column("close")[-1]
    assert row["high"] == day.get_column("high").max() and row["low"] == day.get_column("low").min()
    assert row["volume"] == pytest.approx(day.get_column("volume").sum())
    midweek = store.read_bars(code, ktype=KType.WEEK, dates=DateRange.of("2019-06-05", "2019-06-07"))
    assert_frame_equal(midweek, week)  # whole periods, not the days inside the range only
    half = store.read_bars(code, ktype=KType.HALFYEAR)
    assert set(half.get_column("datetime").dt.strftime("%m-%d")) == {"06-30", "12-31"}


def test_universes_are_point_in_time(store: SyntheticStore) -> None:
    spans = store.members("csi100")
    assert spans.schema == pl.Schema(MEMBERSHIP_SCHEMA)
    assert (spans.get_column("start") <= spans.get_column("end")).all()
    days = store.calendar()
    members_per_day = [
        spans.filter((pl.col("start") <= d) & (pl.col("end") >= d)).height for d in days.gather_every(60)
    ]
    assert max(members_per_day) == 100 and min(members_per_day) >= 95
    assert spans.get_column("code").n_unique() > 100  # constituents change over time
    everything = store.members("all")
    assert everything.height == 300
    stocks = store.frame().filter(pl.col("code") != "SH000001")  # the index belongs to no universe
    frame_span = stocks.group_by("code").agg(pl.col("datetime").min().alias("start"))
    assert_frame_equal(everything.select("code", "start"), frame_span.sort("code"), check_row_order=True)
    window = store.members("CSI300", DateRange.of("2020-01-01", "2020-01-31"))
    assert (window.get_column("start") <= dt.datetime(2020, 1, 31, 23, 59, 59)).all()
    assert (window.get_column("end") >= dt.datetime(2020, 1, 1)).all()
    with pytest.raises(NotFoundError, match="'sp500'"):  # as on the Hikyuu and Qlib stores
        store.members("sp500")


# --- realism ------------------------------------------------------------------------------------


def test_ohlc_consistency_ticks_volume_and_amount(bars: pl.DataFrame) -> None:
    assert (bars.get_column("low") > 0).all()
    bad = bars.filter(
        (pl.col("low") > pl.min_horizontal("open", "close"))
        | (pl.col("high") < pl.max_horizontal("open", "close"))
    )
    assert bad.height == 0
    prices = bars.select("open", "high", "low", "close").to_numpy() * 100.0
    assert np.abs(prices - np.round(prices)).max() < 1e-6
    volume = bars.get_column("volume").to_numpy()
    assert (volume >= 100).all() and (volume % 100 == 0).all()
    vwap = bars.get_column("amount") / bars.get_column("volume")
    assert ((vwap >= bars.get_column("low") - 0.005) & (vwap <= bars.get_column("high") + 0.005)).all()


def test_price_levels_and_fat_tails(store: SyntheticStore, bars: pl.DataFrame) -> None:
    first = bars.group_by("code").agg(pl.col("close").first()).get_column("close")
    assert first.min() >= 2.5 and first.max() <= 110  # type: ignore[operator]
    stocks = store.frame(Adjust.FORWARD).filter(pl.col("code") != "SH000001")
    ret = stocks.select(pl.col("close").pct_change().over("code")).drop_nulls()
    r = ret.get_column("close").to_numpy()
    assert 0.012 < r.std() < 0.04
    kurtosis = float(((r - r.mean()) ** 4).mean() / r.var() ** 2)
    assert kurtosis > 4.0  # fat tails (a normal has 3)
    big = np.abs(r) > 0.05
    assert np.corrcoef(big[:-1], big[1:])[0, 1] > 0.02  # volatility clusters


def test_limits_per_board(store: SyntheticStore, bars: pl.DataFrame) -> None:
    plain = (
        bars.join(_ex_dates(store), on=["code", "datetime"], how="left")
        .filter(pl.col("ex").is_null() & pl.col("prev").is_not_null())
        .with_columns((pl.col("close") / pl.col("prev") - 1).alias("ret"))
    )
    assert (plain.get_column("ret").abs() <= plain.get_column("limit") + 1e-9).all()
    main = plain.filter(pl.col("limit") == 0.1)
    wide = plain.filter(pl.col("limit") == 0.2)
    assert main.filter(pl.col("ret") > 0.095).height > 100  # days at the limit-up
    assert main.filter(pl.col("ret") < -0.095).height > 50
    assert wide.filter(pl.col("ret").abs() > 0.11).height > 20  # moves only the wide boards allow
    sealed = plain.filter((pl.col("high") == pl.col("low")) & (pl.col("ret").abs() > 0.095))
    assert sealed.height > 20  # one-price limit bars


def test_equal_weight_market_index(store: SyntheticStore, bars: pl.DataFrame) -> None:
    """SH000001 is an index listed with the stocks, with a bar every day, in no universe; it moves by
    the mean return of the stocks that trade (checked on days without listings or ex-dates)."""
    listed = store.stocks(types=[StockType.INDEX])
    assert listed["code"].to_list() == ["SH000001"] and listed["valid"].to_list() == [True]
    index = store.read_bars(StockCode.parse("SH000001"))
    assert index["datetime"].to_list() == store.calendar().to_list()
    ohlc = index.select(
        (pl.col("low") <= pl.min_horizontal("open", "close")).all(),
        (pl.col("high") >= pl.max_horizontal("open", "close")).all(),
    )
    assert ohlc.row(0) == (True, True)
    for universe in ("all", "csi100", "csi300"):
        assert "SH000001" not in store.members(universe)["code"].to_list()
    special = pl.concat(
        [_ex_dates(store).select("datetime"), bars.filter(pl.col("prev").is_null()).select("datetime")]
    )
    mean = (
        bars.filter(pl.col("prev").is_not_null())
        .group_by("datetime")
        .agg((pl.col("close") / pl.col("prev") - 1).mean().alias("mean"))
    )
    moves = index.select("datetime", (pl.col("close") / pl.col("close").shift(1) - 1).alias("ret"))
    plain = moves.join(mean, on="datetime").join(special, on="datetime", how="anti").drop_nulls()
    assert plain.height > 1000
    assert (plain["ret"] - plain["mean"]).abs().max() < 2e-5  # the index is rounded to 0.01 around 1000
    assert 0.005 < plain["ret"].std() < 0.03  # type: ignore[operator]


def test_suspensions_leave_gaps(store: SyntheticStore) -> None:
    calendar = store.calendar().to_frame("datetime").with_row_index("day")
    gaps = (
        store.frame()
        .join(calendar, on="datetime")
        .with_columns((pl.col("day") - pl.col("day").shift(1)).over("code").alias("step"))
        .filter(pl.col("step") > 1)
    )
    assert gaps.get_column("code").n_unique() > 50
    assert (gaps.get_column("step") > 20).any()  # some long suspensions
    code, day = gaps.row(0)[0], gaps.row(0)[1]
    missing = calendar.filter(pl.col("datetime") < day).get_column("datetime")[-1]
    assert missing not in store.read_bars(StockCode.parse(code)).get_column("datetime").to_list()


def test_weights_and_continuous_forward_adjusted_prices(store: SyntheticStore, bars: pl.DataFrame) -> None:
    weights = store.weights(StockCode.parse("SH600000"))
    assert weights.schema == pl.Schema(WEIGHT_SCHEMA)
    assert weights.height >= 3 and weights.get_column("date").is_sorted()
    assert (weights.get_column("bonus") > 0).any()
    assert_frame_equal(weights, store.all_weights().filter(pl.col("code") == "SH600000").drop("code"))
    assert store.frame(Adjust.FORWARD).get_column("low").min() > 0.5  # type: ignore[operator]
    everything = _ex_dates(store)
    assert everything.height > 1000
    raw = bars.join(everything, on=["code", "datetime"]).with_columns(
        (pl.col("close") / pl.col("prev") - 1).alias("ret")
    )
    assert (raw.get_column("ret") < -0.2).sum() > 5  # bonus shares drop the raw price beyond any limit
    # Forward adjustment relative to a window ending on the ex-date (Hikyuu adjusts within the window
    # read) maps the previous close onto the ex-right price: the ex-date return stays within the limit
    # (up to the ex-right price's rounding to the tick).
    sample = raw.sort("code", "datetime").gather_every(7)
    assert sample.height > 100
    for code, day, limit in sample.select("code", "datetime", "limit").iter_rows():
        window = store.read_bars(StockCode.parse(code), adjust=Adjust.FORWARD, dates=DateRange.of(None, day))
        prev, last = window.get_column("close")[-2], window.get_column("close")[-1]
        assert abs(last / prev - 1) <= limit + 0.006 / prev, (code, day)
    # Backward adjustment over the whole span adds cash back to later prices: never a jump either.
    backward = (
        store.frame(Adjust.BACKWARD)
        .with_columns((pl.col("close") / pl.col("close").shift(1) - 1).over("code").alias("ret"))
        .join(everything, on=["code", "datetime"])
        .join(bars.select("code", "datetime", "limit", "prev"), on=["code", "datetime"])
    )
    assert backward.height == everything.height
    tolerance = backward.get_column("limit") + 0.006 / backward.get_column("prev")
    assert (backward.get_column("ret").abs() <= tolerance).all()
    one = store.read_bars(StockCode.parse("SH600000"), adjust=Adjust.FORWARD)
    assert_frame_equal(one, store.frame(Adjust.FORWARD).filter(pl.col("code") == "SH600000"))


# --- planted signal -------------------------------------------------------------------------------


def _mean_rank_ic(frame: pl.DataFrame, predictor: pl.Expr) -> float:
    daily = (
        frame.with_columns(predictor.alias("p"))
        .drop_nulls(["p", "fwd"])
        .group_by("datetime")
        .agg(pl.corr(pl.col("p").rank(), pl.col("fwd").rank()).alias("ic"), pl.len().alias("n"))
        .filter(pl.col("n") >= 30)
    )
    return float(daily.get_column("ic").mean())  # type: ignore[arg-type]


def test_planted_signal_is_learnable_from_past_bars(store: SyntheticStore) -> None:
    frame = (
        store.frame(Adjust.FORWARD)
        .with_columns(
            (pl.col("close") / pl.col("close").shift(5) - 1).over("code").alias("r5"),
            (pl.col("close").shift(-1) / pl.col("close") - 1).over("code").alias("fwd"),
        )
        .with_columns(pl.int_range(pl.len()).shuffle(seed=3).cast(pl.Float64).alias("noise"))
    )
    planted = _mean_rank_ic(frame, -pl.col("r5"))  # uses bars up to the day only
    random = _mean_rank_ic(frame, pl.col("noise"))
    assert planted > 0.02
    assert abs(random) < 0.01


# --- errors ---------------------------------------------------------------------------------------


def test_bad_codes_and_ktypes(store: SyntheticStore) -> None:
    with pytest.raises(UnknownCodeError, match="SH609999"):
        store.read_bars(StockCode.parse("SH609999"))
    with pytest.raises(UnknownCodeError, match="SZ399001"):
        store.weights(StockCode.parse("SZ399001"))
    with pytest.raises(InvalidCodeError, match="'60000'"):
        store.read_bars("60000")
    with pytest.raises(UnsupportedKTypeError, match="min5"):
        store.read_bars(StockCode.parse("SH600000"), ktype=KType.MIN5)
    with pytest.raises(UnsupportedKTypeError, match="min"):
        store.calendar(ktype=KType.MIN)
    with pytest.raises(InvalidInputError, match="1 to 20000 stocks, got 0"):
        SyntheticStore(SyntheticParams(stocks=0)).frame()
