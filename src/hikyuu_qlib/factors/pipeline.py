"""From a store, a universe and dates to a features frame (Alpha158 + label), optionally cached."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import polars as pl

from hikyuu_qlib.domain import DateRange
from hikyuu_qlib.domain.errors import InvalidInputError
from hikyuu_qlib.domain.schema import DATETIME
from hikyuu_qlib.factors.alpha158 import INPUTS, LOOKAHEAD, LOOKBACK, alpha158, sorted_by_code_date
from hikyuu_qlib.factors.cache import FeatureCache
from hikyuu_qlib.factors.grouped import group_starts
from hikyuu_qlib.factors.label import LABEL, label_expr
from hikyuu_qlib.factors.universe import Universe

log = logging.getLogger(__name__)

FACTOR_SETS = ("alpha158",)
#: Bump when the definitions or the engine change the numbers, so that cached features recompute.
ENGINE_VERSION = "alpha158-1"


class FeatureStore(Protocol):
    """What the pipeline needs from a store: Qlib-style raw fields (see ``QlibStore.features``)."""

    @property
    def source(self) -> str: ...

    def data_version(self) -> str: ...

    def calendar(self, *, dates: DateRange | None = None) -> pl.Series: ...

    def features(
        self, instruments: Sequence[str], fields: Sequence[str], dates: DateRange | None = None
    ) -> pl.DataFrame: ...


def extended_dates(calendar: pl.Series, dates: DateRange) -> DateRange:
    """``dates`` widened by Qlib's extended window: 60 trading days before, 2 after (for the label)."""
    cal = calendar.to_numpy()
    lo = int(np.searchsorted(cal, np.datetime64(dates.start, "ms"), side="left"))
    hi = int(np.searchsorted(cal, np.datetime64(dates.end, "ms"), side="right")) - 1
    if lo > hi:
        raise InvalidInputError(f"no trading day in {dates}")
    start = calendar[max(0, lo - LOOKBACK)]
    end = calendar[min(len(cal) - 1, hi + LOOKAHEAD)]
    return DateRange(start, end)


def _has_vwap(store: FeatureStore, code: str) -> bool:
    root = getattr(store, "root", None)
    return isinstance(root, Path) and (root / "features" / code.lower() / "vwap.day.bin").is_file()


def member_mask(universe: Universe, bars: pl.DataFrame) -> pl.Series:
    """``universe.mask(bars)`` for a frame sorted by (code, datetime), from the spans alone.

    Each membership span marks its rows by two binary searches in its code's dates, instead of
    joining every row with the spans.
    """
    n = bars.height
    if n == 0:
        return universe.mask(bars)
    starts = group_starts(bars["code"])
    first = {code: g for g, code in enumerate(bars["code"].gather(starts[:-1]).to_list())}
    when = bars["datetime"].cast(DATETIME).to_numpy().view(np.int64)
    spans = universe.membership.drop_nulls().filter(pl.col("code").is_in(list(first)))
    edges = np.zeros(n + 1, dtype=np.int64)
    begins = spans["start"].to_numpy().view(np.int64)
    ends = spans["end"].to_numpy().view(np.int64)
    for code, lo_t, hi_t in zip(spans["code"].to_list(), begins, ends, strict=True):
        g = first[code]
        s, e = int(starts[g]), int(starts[g + 1])
        lo = s + int(np.searchsorted(when[s:e], lo_t, side="left"))
        hi = s + int(np.searchsorted(when[s:e], hi_t, side="right"))
        if lo < hi:
            edges[lo] += 1
            edges[hi] -= 1
    return pl.Series("member", np.cumsum(edges[:n]) > 0)


def compute_features(
    store: FeatureStore,
    universe: Universe,
    dates: DateRange,
    factor_set: str = "alpha158",
    *,
    label: bool = True,
    cache: FeatureCache | None = None,
) -> pl.DataFrame:
    """Features of each date's members within ``dates``: ``code, datetime``, the factors and ``LABEL0``.

    Each member's history is loaded from 60 trading days before ``dates.start`` (Qlib's extended
    window for Alpha158) to two days after ``dates.end`` (for the label, which, like Qlib's, reads
    past the end date). Features are computed per code over that whole history, then each date keeps
    only that date's members. With ``cache``, a second call with the same inputs reads from disk.
    """
    if factor_set not in FACTOR_SETS:
        known = ", ".join(FACTOR_SETS)
        raise InvalidInputError(f"unknown factor set {factor_set!r}: expected one of {known}")

    def compute() -> pl.DataFrame:
        return _compute(store, universe, dates, label=label)

    if cache is None:
        return compute()
    parts = {
        "source": store.source,
        "data_version": store.data_version(),
        "universe": universe.fingerprint(),
        "factor_set": factor_set,
        "engine": ENGINE_VERSION,
        "dates": str(dates) + f"/{dates.start.isoformat()}/{dates.end.isoformat()}",
        "label": str(label),
    }
    return cache.get_or_compute(parts, compute)


def _compute(store: FeatureStore, universe: Universe, dates: DateRange, *, label: bool) -> pl.DataFrame:
    calendar = store.calendar()
    span = extended_dates(calendar, dates)
    codes = universe.members_between(dates)
    fields = [*INPUTS, *(["vwap"] if codes and _has_vwap(store, codes[0]) else [])]
    bars = store.features(codes, fields, span)
    if not sorted_by_code_date(bars):
        bars = bars.sort("code", "datetime")
    log.info("computing alpha158 for %d codes, %d rows", len(codes), bars.height)
    in_dates = pl.col("datetime").is_between(dates.start, dates.end)
    keep = bars.select(in_dates).to_series() & member_mask(universe, bars)
    frame = alpha158(bars, keep=keep)
    if label:
        labels = bars.select(label_expr()).to_series().filter(keep)
        frame = frame.with_columns(labels.alias(LABEL))
    return frame
