"""Processors against pyqlib's processors on real Alpha158 features, and the no-look-ahead guarantee."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

from hikyuu_qlib.domain import DateRange
from hikyuu_qlib.factors.label import LABEL
from hikyuu_qlib.factors.pipeline import compute_features
from hikyuu_qlib.factors.processors import (
    CSRankNorm,
    CSZScoreNorm,
    DropnaLabel,
    Fillna,
    ProcessInf,
    ProcessorChain,
    RobustZScoreNorm,
    ZScoreNorm,
)
from hikyuu_qlib.factors.universe import Universe

COLUMNS = ["KMID", "ROC5", "STD20", "RSQR10", "CORD30", "VSTD5", "IMXD60", "WVMA20"]
FIT = DateRange.of("2018-01-01", "2018-06-30")


@pytest.fixture(scope="module")
def frame(qlib_dir: Path) -> pl.DataFrame:
    from hikyuu_qlib.stores.qlib.store import QlibStore

    store = QlibStore.open(qlib_dir)
    codes = store.instruments("csi300")[::20][:35]
    features = compute_features(store, Universe.from_codes(codes), DateRange.of("2018-01-01", "2018-12-31"))
    return features.select("code", "datetime", *COLUMNS, LABEL).with_columns(pl.col(COLUMNS).cast(pl.Float64))


def _pandas(frame: pl.DataFrame) -> pd.DataFrame:
    df = frame.to_pandas().set_index(["datetime", "code"]).sort_index()
    df.index.names = ["datetime", "instrument"]
    df.columns = pd.MultiIndex.from_tuples([("label" if c == LABEL else "feature", c) for c in df.columns])
    return df


def _assert_same(ours: pl.DataFrame, theirs: pd.DataFrame) -> None:
    theirs = theirs.copy()
    theirs.columns = [c[1] for c in theirs.columns]
    expected = pl.from_pandas(theirs.reset_index()).rename({"instrument": "code"}).sort("code", "datetime")
    ours = ours.sort("code", "datetime")
    assert ours.select("code", "datetime").equals(expected.select("code", "datetime"))
    for c in COLUMNS:
        a = ours[c].cast(pl.Float64).fill_null(np.nan).to_numpy()
        b = expected[c].cast(pl.Float64).fill_null(np.nan).to_numpy()
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9, equal_nan=True, err_msg=c)


def test_robust_zscore_matches_qlib(pyqlib: object, frame: pl.DataFrame) -> None:
    from qlib.data.dataset.processor import RobustZScoreNorm as QRobust

    theirs = QRobust(fit_start_time=FIT.start, fit_end_time=FIT.end, fields_group="feature")
    df = _pandas(frame)
    theirs.fit(df)
    ours = ProcessorChain([RobustZScoreNorm(COLUMNS)]).fit(frame, FIT).transform(frame)
    _assert_same(ours, theirs(df.copy()))


def test_zscore_matches_qlib(pyqlib: object, frame: pl.DataFrame) -> None:
    """Alpha360's default normaliser on float32 features (as Qlib loads them): the fit window's mean and
    population std; a constant column (std 0) stays as it is."""
    from qlib.data.dataset.processor import ZScoreNorm as QZScore

    columns = [*COLUMNS, "FLAT"]
    flat = frame.with_columns(pl.lit(2.5).alias("FLAT")).select("code", "datetime", *columns, LABEL)
    flat = flat.with_columns(pl.col(columns).cast(pl.Float32))
    theirs = QZScore(fit_start_time=FIT.start, fit_end_time=FIT.end, fields_group="feature")
    df = _pandas(flat)
    theirs.fit(df)
    expected = theirs(df.copy())
    expected.columns = [c[1] for c in expected.columns]
    expected_pl = (
        pl.from_pandas(expected.reset_index()).rename({"instrument": "code"}).sort("code", "datetime")
    )
    step = ZScoreNorm(columns)
    ours = ProcessorChain([step]).fit(flat, FIT).transform(flat).sort("code", "datetime")
    assert step.mean["FLAT"] == 0.0 and step.std["FLAT"] == 1.0
    assert (ours["FLAT"] == 2.5).all()
    for c in columns:
        assert ours[c].dtype == pl.Float32
        a = ours[c].cast(pl.Float64).fill_null(np.nan).to_numpy()
        b = expected_pl[c].cast(pl.Float64).fill_null(np.nan).to_numpy()
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, equal_nan=True, err_msg=c)


@pytest.mark.parametrize("name", ["CSZScoreNorm", "CSRankNorm", "ProcessInf", "Fillna"])
def test_cross_sectional_matches_qlib(pyqlib: object, frame: pl.DataFrame, name: str) -> None:
    from qlib.data.dataset import processor as qp

    planted = frame.with_columns(  # infinities, so that ProcessInf has work
        pl.when(pl.col("code") == frame["code"][0])
        .then(float("inf"))
        .otherwise(pl.col("VSTD5"))
        .alias("VSTD5")
    )
    ours_proc = {
        "CSZScoreNorm": CSZScoreNorm,
        "CSRankNorm": CSRankNorm,
        "ProcessInf": ProcessInf,
        "Fillna": Fillna,
    }
    theirs_proc = getattr(qp, name)(fields_group="feature") if name != "ProcessInf" else qp.ProcessInf()
    df = _pandas(planted)
    if name == "Fillna":
        df = df.drop(columns=[("label", LABEL)])
        planted = planted.drop(LABEL)
    ours = ProcessorChain([ours_proc[name](COLUMNS)]).fit(planted, FIT).transform(planted)
    _assert_same(ours, theirs_proc(df.copy()))


def test_dropna_label_drops_only_missing_labels(frame: pl.DataFrame) -> None:
    out = DropnaLabel().transform(frame)
    assert out.height == frame.height - frame[LABEL].is_nan().sum() - frame[LABEL].null_count()
    assert out[LABEL].is_nan().sum() == 0


def test_a_planted_future_value_cannot_leak(frame: pl.DataFrame) -> None:
    """A huge value after the fit window changes nothing fitted, nor any other date's output."""
    future = dt.datetime(2018, 10, 10)
    code = frame["code"][0]
    where = (pl.col("code") == code) & (pl.col("datetime") == future)
    assert frame.filter(where).height == 1
    planted = frame.with_columns([pl.when(where).then(1e12).otherwise(pl.col(c)).alias(c) for c in COLUMNS])

    def chain() -> ProcessorChain:
        return ProcessorChain(
            [ProcessInf(COLUMNS), RobustZScoreNorm(COLUMNS), CSZScoreNorm(COLUMNS), Fillna(COLUMNS)]
        )

    clean, dirty = chain().fit(frame, FIT), chain().fit(planted, FIT)
    robust_clean, robust_dirty = clean.steps[1], dirty.steps[1]
    assert isinstance(robust_clean, RobustZScoreNorm) and isinstance(robust_dirty, RobustZScoreNorm)
    assert robust_clean.median == robust_dirty.median and robust_clean.scale == robust_dirty.scale
    a = clean.transform(frame).filter(pl.col("datetime") != future)
    b = dirty.transform(planted).filter(pl.col("datetime") != future)
    assert a.equals(b)
    # the planted value itself is visible where it lives, so the test can fail if it leaked nowhere
    assert (
        dirty.transform(planted).filter(where)["KMID"].item()
        != clean.transform(frame).filter(where)["KMID"].item()
    )
    # a fit window that includes the planted date does move the statistics (the check has teeth)
    wide = chain().fit(planted, DateRange.of("2018-01-01", "2018-12-31")).steps[1]
    assert isinstance(wide, RobustZScoreNorm)
    assert wide.scale != robust_clean.scale or wide.median != robust_clean.median
