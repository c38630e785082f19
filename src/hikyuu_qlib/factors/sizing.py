"""How many feature rows a universe gives over some dates, told before any is computed: what the memory
plans of a run (in memory or bounded, groups and blocks, LightGBM's data) are sized by.

A universe's membership spans may name codes the source holds no data for (a Hikyuu store's ``all`` lists
every stock of stock.db, with or without bars) and days outside a code's data: neither gives a row. When
the source tells its data spans (:class:`~hikyuu_qlib.ports.DataSpans`), the spans are cut to them: a
code without data drops out, and a member's span is cut to its first and last day of data where the
source knows them. Otherwise every member-day counts (an upper bound).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import polars as pl

from hikyuu_qlib.domain.schema import DATETIME, MEMBERSHIP_SCHEMA
from hikyuu_qlib.factors.universe import Universe
from hikyuu_qlib.ports import DataSpans, FeatureSource


def members_per_day(universe: Universe, days: pl.Series) -> npt.NDArray[np.int64]:
    """How many codes are members on each of ``days`` (an upper bound of that day's rows)."""
    when = days.cast(DATETIME).to_numpy().astype("datetime64[ms]")
    spans = universe.membership.drop_nulls()
    lo = np.searchsorted(when, spans["start"].to_numpy().astype("datetime64[ms]"), side="left")
    hi = np.searchsorted(when, spans["end"].to_numpy().astype("datetime64[ms]"), side="right")
    edges = np.zeros(len(when) + 1, dtype=np.int64)
    np.add.at(edges, lo, 1)
    np.add.at(edges, hi, -1)
    return np.cumsum(edges[:-1])


def with_data(universe: Universe, store: FeatureSource) -> Universe:
    """``universe``'s spans cut to the data ``store`` holds (see the module docstring), for sizing only: it
    keeps the name but not the fingerprint of ``universe``, so it never keys a cache entry."""
    spans = store.data_spans() if isinstance(store, DataSpans) else None
    if spans is None:
        return universe
    data = spans.select(
        pl.col("code").cast(pl.String),
        pl.col("start").cast(MEMBERSHIP_SCHEMA["start"]).alias("_first"),
        pl.col("end").cast(MEMBERSHIP_SCHEMA["end"]).alias("_last"),
    ).unique("code")
    cut = (
        universe.membership.join(data, on="code", how="inner")
        .with_columns(
            pl.max_horizontal("start", pl.col("_first").fill_null(pl.col("start"))).alias("start"),
            pl.min_horizontal("end", pl.col("_last").fill_null(pl.col("end"))).alias("end"),
        )
        .filter(pl.col("start") <= pl.col("end"))
        .select(list(MEMBERSHIP_SCHEMA))
    )
    return Universe(universe.name, cut)


def rows_per_day(universe: Universe, store: FeatureSource, days: pl.Series) -> npt.NDArray[np.int64]:
    """An upper bound of each of ``days``' feature rows: its members with data on that day."""
    return members_per_day(with_data(universe, store), days)


def feature_rows(universe: Universe, store: FeatureSource, days: pl.Series) -> int:
    """An upper bound of the feature rows of ``universe`` over ``days``."""
    return int(rows_per_day(universe, store, days).sum())
