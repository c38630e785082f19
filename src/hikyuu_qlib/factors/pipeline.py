"""From a feature source, a universe and dates to a features frame (Alpha158 or Alpha360 + label), optionally
cached.

The source is a :class:`~hikyuu_qlib.ports.FeatureSource` (a Qlib store, or any store's bars through
:class:`~hikyuu_qlib.modelling.bars_source.BarsFeatureSource`); ``VWAP0`` is computed when every member
with data serves ``vwap`` (its ``fields``), else it is NaN, as Qlib loads a missing field.

:func:`compute_features` needs every member: a code that fails to load fails the call (``LoadErrors``).
:func:`compute_features_partial` leaves the failing codes out and returns their errors with the frame of
the rest (each failure logged once); a partial frame is never cached.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from hikyuu_qlib.cache.codec import FRAME
from hikyuu_qlib.cache.keys import features_key
from hikyuu_qlib.domain import DateRange
from hikyuu_qlib.domain.errors import InvalidInputError, LoadErrors
from hikyuu_qlib.domain.schema import DATETIME
from hikyuu_qlib.factors import alpha158, alpha360
from hikyuu_qlib.factors.alpha158 import sorted_by_code_date
from hikyuu_qlib.factors.grouped import group_starts
from hikyuu_qlib.factors.label import LABEL, label_expr
from hikyuu_qlib.factors.universe import Universe
from hikyuu_qlib.ports import Cache, FeatureSource

log = logging.getLogger(__name__)

#: Bump when the definitions or the engine change the numbers, so that cached features recompute.
ENGINE_VERSION = "alpha158-2"


@dataclass(frozen=True, slots=True)
class FactorSet:
    """One named feature set: the raw fields it reads, the history it needs and how it is computed."""

    name: str
    inputs: tuple[str, ...]
    #: trading days of history loaded before the start date (Qlib's extended window)
    lookback: int
    #: ``compute(bars, keep, start)``: ``code, datetime`` and the features of the kept rows; ``start`` is the
    #: request's start date (where Qlib's queries of rolling expressions begin, less their windows)
    compute: Callable[[pl.DataFrame, pl.Series | None, dt.datetime | None], pl.DataFrame]
    #: part of the cache key: bump when the numbers change
    engine: str
    #: how many feature columns it computes
    width: int


FACTOR_SETS: dict[str, FactorSet] = {
    "alpha158": FactorSet(
        "alpha158",
        alpha158.INPUTS,
        alpha158.LOOKBACK,
        alpha158.alpha158,
        ENGINE_VERSION,
        len(alpha158.alpha158_names()),
    ),
    "alpha360": FactorSet(
        "alpha360",
        alpha360.INPUTS,
        alpha360.LOOKBACK,
        alpha360.alpha360,
        "alpha360-1",
        len(alpha360.alpha360_names()),
    ),
}
#: The label reads two rows past the end date (``Ref($close, -2)``).
LOOKAHEAD = alpha158.LOOKAHEAD


def get_factor_set(name: str) -> FactorSet:
    """The feature set called ``name`` (``alpha158``, ``alpha360``)."""
    try:
        return FACTOR_SETS[name]
    except KeyError:
        known = ", ".join(FACTOR_SETS)
        raise InvalidInputError(f"unknown factor set {name!r}: expected one of {known}") from None


@dataclass(frozen=True)
class PartialFrame:
    """The rows of every code that loaded, and the error of every code that did not."""

    frame: pl.DataFrame
    errors: dict[str, BaseException] = field(default_factory=dict)

    def raise_for_errors(self) -> pl.DataFrame:
        """The frame, or :class:`LoadErrors` when any code failed."""
        if self.errors:
            raise LoadErrors(self.errors)
        return self.frame


class _Uncacheable(Exception):
    """Carries a partial result past the feature cache, which must not store it."""

    def __init__(self, result: PartialFrame) -> None:
        super().__init__("partial features are not cached")
        self.result = result


def extended_dates(calendar: pl.Series, dates: DateRange, lookback: int = alpha158.LOOKBACK) -> DateRange:
    """``dates`` widened by Qlib's extended window: ``lookback`` trading days before (60 for Alpha158), 2
    after (for the label)."""
    cal = calendar.to_numpy()
    inside = dates.calendar_slice(cal)
    lo, hi = inside.start, inside.stop - 1
    if lo > hi:
        raise InvalidInputError(f"no trading day in {dates}")
    start = calendar[max(0, lo - lookback)]
    end = calendar[min(len(cal) - 1, hi + LOOKAHEAD)]
    return DateRange(start, end)


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
    store: FeatureSource,
    universe: Universe,
    dates: DateRange,
    factor_set: str = "alpha158",
    *,
    label: bool = True,
    cache: Cache | None = None,
) -> pl.DataFrame:
    """Features of each date's members within ``dates``: ``code, datetime``, the factors and ``LABEL0``.

    ``factor_set`` is ``alpha158`` or ``alpha360``. Each member's history is loaded from 60 (Alpha158) or
    59 (Alpha360) trading days before ``dates.start`` (Qlib's extended window) to two days after
    ``dates.end`` (for the label, which, like Qlib's, reads past the end date). Features are computed per
    code over that whole history, then each date keeps only that date's members. With ``cache``, a second call with the same inputs (and the same data
    version) reads the cached frame (memory, or the disk tier's memory-mapped Arrow file), and
    concurrent identical calls compute it once.
    A member that fails to load raises :class:`LoadErrors` (with every failing member).
    """
    return _features(store, universe, dates, factor_set, label=label, cache=cache, skip_failed=False).frame


def compute_features_partial(
    store: FeatureSource,
    universe: Universe,
    dates: DateRange,
    factor_set: str = "alpha158",
    *,
    label: bool = True,
    cache: Cache | None = None,
) -> PartialFrame:
    """:func:`compute_features` of the members that load; the others are left out with their errors.

    Raises :class:`LoadErrors` only when every member failed.
    """
    return _features(store, universe, dates, factor_set, label=label, cache=cache, skip_failed=True)


def _features(
    store: FeatureSource,
    universe: Universe,
    dates: DateRange,
    factor_set: str,
    *,
    label: bool,
    cache: Cache | None,
    skip_failed: bool,
) -> PartialFrame:
    chosen = get_factor_set(factor_set)

    def compute() -> pl.DataFrame:
        result = _compute(store, universe, dates, chosen, label=label, skip_failed=skip_failed)
        if result.errors:
            raise _Uncacheable(result)
        return result.frame

    try:
        if cache is None:
            return PartialFrame(compute())
        key = features_key(
            store.source,
            store.data_version(),
            universe=universe.fingerprint(),
            factor_set=factor_set,
            engine=chosen.engine,
            dates=dates,
            label=label,
        )
        return PartialFrame(cache.get_or_compute(key, compute, FRAME))
    except _Uncacheable as partial:
        return partial.result


def _compute(
    store: FeatureSource,
    universe: Universe,
    dates: DateRange,
    chosen: FactorSet,
    *,
    label: bool,
    skip_failed: bool = False,
) -> PartialFrame:
    calendar = store.calendar()
    span = extended_dates(calendar, dates, chosen.lookback)
    codes = universe.members_between(dates)
    fields = [*chosen.inputs, *(["vwap"] if codes and "vwap" in store.fields(codes) else [])]
    bars, errors = load_fields(store, codes, fields, span, skip_failed)
    if not sorted_by_code_date(bars):
        bars = bars.sort("code", "datetime")
    log.info("computing %s for %d codes, %d rows", chosen.name, len(codes) - len(errors), bars.height)
    in_dates = pl.col("datetime").is_between(dates.start, dates.end)
    keep = bars.select(in_dates).to_series() & member_mask(universe, bars)
    frame = chosen.compute(bars, keep, dates.start)
    if label:
        labels = bars.select(label_expr()).to_series().filter(keep)
        frame = frame.with_columns(labels.alias(LABEL))
    return PartialFrame(frame, errors)


def load_fields(
    store: FeatureSource, codes: list[str], fields: list[str], span: DateRange, skip_failed: bool
) -> tuple[pl.DataFrame, dict[str, BaseException]]:
    """The raw fields of ``codes`` and the errors of the codes left out: with ``skip_failed``, read again
    without the codes that failed (:class:`LoadErrors` when every one fails); else :class:`LoadErrors`."""
    errors: dict[str, BaseException] = {}
    todo = list(codes)
    while True:
        try:
            frame = store.features(todo, fields, span)
        except LoadErrors as exc:
            failed = {code: err for code, err in exc.errors.items() if code in todo}
            if not skip_failed or not failed:
                raise
            errors.update(failed)
            todo = [code for code in todo if code not in failed]
            if not todo:
                raise LoadErrors(errors) from None
            continue
        for code, err in sorted(errors.items()):
            log.warning("features: left out %s: %s", code, err)
        return frame, errors
