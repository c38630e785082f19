"""What a run's memory plan is sized by: the rows of the members that have data, not the members listed.

A Hikyuu store's ``all`` lists every stock of stock.db (4,729 in the test store) though only a few have
day bars (8): the in-memory estimate must count those few, so such a universe takes the in-memory path.
A Qlib store tells each instrument's first and last day of data from its bins' headers.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal

from hikyuu_qlib.app import open_feature_source, open_store
from hikyuu_qlib.domain import DateRange
from hikyuu_qlib.factors.chunked import build_feature_blocks, estimate_in_memory
from hikyuu_qlib.factors.pipeline import compute_features
from hikyuu_qlib.factors.sizing import feature_rows, with_data
from hikyuu_qlib.factors.universe import Universe
from hikyuu_qlib.memory import MemoryBudget
from hikyuu_qlib.modelling.bars_source import BarsFeatureSource
from hikyuu_qlib.modelling.streaming import Bounded
from hikyuu_qlib.ports import DataSpans, FeatureSource
from hikyuu_qlib.stores.qlib import QlibStore

YEAR = DateRange.of("2011-01-01", "2011-12-31")


def test_a_hikyuu_universe_is_sized_by_its_codes_with_bars(hikyuu_dir: Path, tmp_path: Path) -> None:
    store = open_store(f"hikyuu:{hikyuu_dir}")
    features = open_feature_source(store)
    assert isinstance(features, BarsFeatureSource) and isinstance(features, DataSpans)
    universe = Universe.from_store(features, "all", YEAR)
    listed = set(universe.codes())
    with_bars = set(store.stocks(valid=None).filter(pl.col("has_data"))["code"].to_list())
    assert len(listed) > 1000 and 0 < len(listed & with_bars) <= 10  # thousands listed, a few with bars
    sized = with_data(universe, features)
    assert set(sized.codes()) == listed & with_bars
    assert sized.fingerprint() != universe.fingerprint()  # never a cache key of the universe itself
    days = features.calendar(dates=YEAR)
    rows = feature_rows(universe, features, days)
    computed = compute_features(features, universe, YEAR)
    assert computed.height > 0 and computed.height <= rows <= len(listed & with_bars) * days.len()
    # the in-memory path fits a small budget: its estimate is these rows, not thousands of listed codes
    assert estimate_in_memory(rows) < 100 << 20
    assert Bounded(MemoryBudget.of("1GB"), tmp_path).fits(features, universe, YEAR)
    # a bounded build plans (and loads) the codes with bars only, and gives the same rows
    blocks = build_feature_blocks(features, universe, YEAR, tmp_path, budget=MemoryBudget.of("1GB"))
    assert blocks.meta["codes"] == len(sized.members_between(YEAR))
    assert_frame_equal(blocks.frame().sort("code", "datetime"), computed, check_exact=True)


def test_qlib_data_spans_are_the_bins_first_and_last_days(qlib_dir: Path) -> None:
    store = QlibStore.open(qlib_dir)
    spans = store.data_spans()
    assert spans.height == len(list((qlib_dir / "features").iterdir()))
    assert spans["start"].null_count() == 0 and spans["end"].null_count() == 0
    sample = spans.sort("code").gather_every(max(1, spans.height // 12))
    for code, start, end in sample.iter_rows():
        days = store.features([code], ["close"])["datetime"]
        assert (days.min(), days.max()) == (start, end), code


def test_a_member_is_counted_within_its_data_only(qlib_dir: Path) -> None:
    store = QlibStore.open(qlib_dir)
    code, start = store.data_spans().sort("start", descending=True).select("code", "start").row(0)
    days = store.calendar()
    assert start > days[0]  # a code whose data begins after the calendar does
    static = Universe.from_codes([code])  # a member on every day
    assert feature_rows(static, store, days) == days.filter(days >= start).len()
    before = DateRange.of(days[0].date().isoformat(), (start - timedelta(days=1)).date().isoformat())
    assert feature_rows(static, store, store.calendar(dates=before)) == 0  # no data, no rows


def test_a_source_without_spans_counts_every_member_day(qlib_dir: Path, tmp_path: Path) -> None:
    store = QlibStore.open(qlib_dir)

    class Plain:  # a feature source that cannot tell its data spans
        source = store.source
        data_version = store.data_version
        calendar = store.calendar
        members = store.members
        fields = store.fields
        features = store.features

    plain = Plain()
    assert isinstance(plain, FeatureSource) and not isinstance(plain, DataSpans)
    universe = Universe.from_codes(["SH600000", "SH699999"])  # the second has no data
    days = store.calendar(dates=YEAR)
    assert feature_rows(universe, plain, days) == 2 * days.len()
    assert feature_rows(universe, store, days) == days.len()
    assert Bounded(MemoryBudget.of("1GB"), tmp_path).fits(store, universe, YEAR)
