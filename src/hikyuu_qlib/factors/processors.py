"""Processors over features frames (code, datetime, features…, LABEL0), with Qlib's semantics.

Learnable processors (``RobustZScoreNorm``) are fitted on the fit window only: ``ProcessorChain.fit``
hands each step the fit-window rows and nothing else, so no later value can shape the statistics.
Cross-sectional processors use only the rows of the same date. NaN is missing, as in pandas.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import polars as pl

from hikyuu_qlib.domain import DateRange
from hikyuu_qlib.domain.errors import InvalidInputError
from hikyuu_qlib.domain.numeric import EPS
from hikyuu_qlib.factors.cs_zscore import cs_zscore, date_order
from hikyuu_qlib.factors.label import LABEL

KEYS = ("code", "datetime")


class Processor(Protocol):
    def fit(self, frame: pl.DataFrame) -> None:
        """Learn statistics from ``frame`` (already limited to the fit window)."""
        ...

    def transform(self, frame: pl.DataFrame) -> pl.DataFrame: ...


def feature_columns(frame: pl.DataFrame) -> list[str]:
    """Every column but the keys and the label."""
    return [c for c in frame.columns if c not in KEYS and c != LABEL]


def _columns(frame: pl.DataFrame, columns: Sequence[str] | None) -> list[str]:
    return list(columns) if columns is not None else feature_columns(frame)


def _missing(name: str) -> pl.Expr:
    """The column with NaN as null (pandas skips NaN in statistics)."""
    return pl.col(name).fill_nan(None)


@dataclass
class DropnaLabel:
    """Drop the rows whose label is missing (for learning only)."""

    label: str = LABEL

    def fit(self, frame: pl.DataFrame) -> None:
        return None

    def transform(self, frame: pl.DataFrame) -> pl.DataFrame:
        return frame.filter(pl.col(self.label).is_not_null() & pl.col(self.label).is_not_nan())


@dataclass
class CSZScoreNorm:
    """Per date: ``(x - mean) / std`` (sample std) over the codes of that date, with pandas' arithmetic
    in the column's dtype (a float32 label stays float32, as Qlib's): see :mod:`.cs_zscore`."""

    columns: Sequence[str] | None = None

    def fit(self, frame: pl.DataFrame) -> None:
        return None

    def transform(self, frame: pl.DataFrame) -> pl.DataFrame:
        columns = _columns(frame, self.columns)
        if not columns:
            return frame
        order, starts = date_order(frame)
        return frame.with_columns([cs_zscore(frame.get_column(c), order, starts) for c in columns])


@dataclass
class CSRankNorm:
    """Per date: ``(percentile rank - 0.5) * 3.46`` (average ranks over the non-missing values)."""

    columns: Sequence[str] | None = None

    def fit(self, frame: pl.DataFrame) -> None:
        return None

    def transform(self, frame: pl.DataFrame) -> pl.DataFrame:
        def pct(c: str) -> pl.Expr:
            return _missing(c).rank("average").over("datetime") / _missing(c).count().over("datetime")

        exprs = [
            ((pct(c) - 0.5) * 3.46).fill_null(float("nan")).alias(c) for c in _columns(frame, self.columns)
        ]
        return frame.with_columns(exprs)


@dataclass
class RobustZScoreNorm:
    """``(x - median) / ((MAD + EPS) * 1.4826)``, clipped to ±3; median and MAD from the fit window."""

    columns: Sequence[str] | None = None
    clip_outlier: bool = True
    median: dict[str, float] = field(default_factory=dict)
    scale: dict[str, float] = field(default_factory=dict)

    def fit(self, frame: pl.DataFrame) -> None:
        cols = _columns(frame, self.columns)
        medians = frame.select([_missing(c).median().alias(c) for c in cols]).row(0, named=True)
        mads = frame.select([(_missing(c) - medians[c]).abs().median().alias(c) for c in cols]).row(
            0, named=True
        )
        self.median = {c: float("nan") if medians[c] is None else float(medians[c]) for c in cols}
        self.scale = {c: float("nan") if mads[c] is None else (float(mads[c]) + EPS) * 1.4826 for c in cols}

    def transform(self, frame: pl.DataFrame) -> pl.DataFrame:
        if not self.median:
            raise InvalidInputError("RobustZScoreNorm is not fitted: call fit (or ProcessorChain.fit) first")
        exprs = []
        for c, med in self.median.items():
            z = (pl.col(c).cast(pl.Float64) - med) / self.scale[c]
            if self.clip_outlier:
                z = pl.when(z.is_nan()).then(z).otherwise(z.clip(-3.0, 3.0))
            exprs.append(z.alias(c))
        return frame.with_columns(exprs)


@dataclass
class ZScoreNorm:
    """``(x - mean) / std`` with the fit window's mean and population std (NaN skipped), in float32.

    Qlib's ``ZScoreNorm``: NumPy's ``nanmean`` and ``nanstd`` over each float32 column of the fit window
    (in the frame's row order), and a column whose std is 0 is left unchanged (mean 0, std 1). A column
    without any value in the fit window becomes NaN.
    """

    columns: Sequence[str] | None = None
    mean: dict[str, float] = field(default_factory=dict)
    std: dict[str, float] = field(default_factory=dict)

    def fit(self, frame: pl.DataFrame) -> None:
        cols = _columns(frame, self.columns)
        self.mean, self.std = {}, {}
        for c in cols:  # column by column: one contiguous float32 array each, as NumPy reduces a column
            x = frame.get_column(c).cast(pl.Float32).fill_null(float("nan")).to_numpy()
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column: NaN, as in Qlib
                mean, std = np.nanmean(x), np.nanstd(x)
            if std == 0:
                mean, std = np.float32(0), np.float32(1)
            self.mean[c], self.std[c] = float(mean), float(std)

    def transform(self, frame: pl.DataFrame) -> pl.DataFrame:
        if not self.mean:
            raise InvalidInputError("ZScoreNorm is not fitted: call fit (or ProcessorChain.fit) first")
        exprs = [
            ((pl.col(c).cast(pl.Float32) - pl.lit(m, pl.Float32)) / pl.lit(self.std[c], pl.Float32)).alias(c)
            for c, m in self.mean.items()
        ]
        return frame.with_columns(exprs)


@dataclass
class Fillna:
    """Replace missing values (NaN and null) with ``value``."""

    columns: Sequence[str] | None = None
    value: float = 0.0

    def fit(self, frame: pl.DataFrame) -> None:
        return None

    def transform(self, frame: pl.DataFrame) -> pl.DataFrame:
        cols = _columns(frame, self.columns)
        return frame.with_columns([pl.col(c).fill_nan(self.value).fill_null(self.value) for c in cols])


@dataclass
class CSZFillna:
    """Per date, replace missing values (NaN and null) by the mean of that column's values on that date."""

    columns: Sequence[str] | None = None

    def fit(self, frame: pl.DataFrame) -> None:
        return None

    def transform(self, frame: pl.DataFrame) -> pl.DataFrame:
        exprs = [
            pl.col(c)
            .fill_nan(None)
            .fill_null(_missing(c).mean().over("datetime"))
            .fill_null(float("nan"))
            .alias(c)
            for c in _columns(frame, self.columns)
        ]
        return frame.with_columns(exprs)


@dataclass
class DropnaFeature:
    """Drop the rows with a missing value (NaN or null) in any of the columns (for learning only)."""

    columns: Sequence[str] | None = None

    def fit(self, frame: pl.DataFrame) -> None:
        return None

    def transform(self, frame: pl.DataFrame) -> pl.DataFrame:
        cols = _columns(frame, self.columns)
        if not cols:
            return frame
        return frame.filter(
            pl.all_horizontal([pl.col(c).is_not_null() & pl.col(c).is_not_nan() for c in cols])
        )


@dataclass
class ProcessInf:
    """Per date, replace ±inf by the mean of that column's finite values on that date."""

    columns: Sequence[str] | None = None

    def fit(self, frame: pl.DataFrame) -> None:
        return None

    def transform(self, frame: pl.DataFrame) -> pl.DataFrame:
        exprs = []
        for c in _columns(frame, self.columns):
            x = pl.col(c)
            finite_mean = pl.when(x.is_infinite()).then(None).otherwise(_missing(c)).mean().over("datetime")
            exprs.append(
                pl.when(x.is_infinite()).then(finite_mean.fill_null(float("nan"))).otherwise(x).alias(c)
            )
        return frame.with_columns(exprs)


@dataclass
class ProcessorChain:
    """Processors applied in order; ``fit`` sees only the fit window's rows."""

    steps: list[Processor]

    def fit(self, frame: pl.DataFrame, fit_dates: DateRange) -> ProcessorChain:
        window = frame.filter(pl.col("datetime").is_between(fit_dates.start, fit_dates.end))
        if window.is_empty():
            raise InvalidInputError(f"no rows in the fit window {fit_dates}")
        for step in self.steps:
            step.fit(window)
            window = step.transform(window)
        return self

    def transform(self, frame: pl.DataFrame) -> pl.DataFrame:
        for step in self.steps:
            frame = step.transform(frame)
        return frame
