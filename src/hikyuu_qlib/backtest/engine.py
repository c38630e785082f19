"""Run a TopkDropout backtest: predictions and market arrays in, a :class:`BacktestResult` out.

The numbers reproduce pyqlib's ``backtest_daily`` with ``TopkDropoutStrategy`` (see :mod:`.kernel`
and :mod:`.topk`); the daily report follows Qlib's ``PortfolioMetrics``: ``return`` is the change of
the account value plus the day's cost, over the previous day's value (so it is before cost), ``cost``
and ``turnover`` are the day's cost and traded value over the previous day's value.

Intended differences from pyqlib:

* Qlib switches the whole exchange to fractional amounts (no trade unit) when any ``$factor`` is NaN
  where ``$close`` is not, over every instrument of the store; here the check covers the backtest's own
  codes only.
* ``stamp_tax`` (sells only, no minimum) is an extension; with the default 0 the costs are Qlib's.
* Equal scores are ranked as pandas ranks them for a signal sorted by instrument (Qlib's datasets
  produce it so); a pyqlib signal in another order within a day may rank its ties otherwise.
* ``zero_volume_suspended`` (default off) is an extension for stores that carry the close through a
  suspension with zero volume (this project's Qlib data does): Qlib only knows NaN closes.
* ``limit_threshold`` is a fraction (0.095 = 9.5 %) on every store: ``$change`` is read as a fraction
  whatever unit the store keeps it in (the :class:`~hikyuu_qlib.ports.FeatureSource` contract), while
  pyqlib compares its threshold with ``$change`` as stored (on a percent store, pyqlib's equivalent of
  0.095 is 9.5). Like pyqlib, which compares its Float32 ``$change`` with the threshold in Float32, the
  Float32 fraction is compared with the threshold rounded to Float32: on a percent store that gives
  exactly pyqlib's limits with the threshold in percent (a stored 9.5 % is at the limit of 0.095).
"""

from __future__ import annotations

import logging

import numpy as np
import numpy.typing as npt
import polars as pl

from hikyuu_qlib.backtest.config import BacktestConfig
from hikyuu_qlib.backtest.kernel import run_days
from hikyuu_qlib.backtest.market import MarketArrays, load_market
from hikyuu_qlib.backtest.rebalance import rebalance_days
from hikyuu_qlib.backtest.result import BacktestResult
from hikyuu_qlib.backtest.rules import board_thresholds, close_change, deal_prices, limit_flags, suspended
from hikyuu_qlib.domain import DateRange, InvalidInputError
from hikyuu_qlib.domain.schema import DATETIME
from hikyuu_qlib.ports import FeatureSource

log = logging.getLogger(__name__)

F64 = npt.NDArray[np.float64]
Bool = npt.NDArray[np.bool_]
PREDICTION_COLUMNS = ("datetime", "code", "score")


def run_topk_backtest(
    predictions: pl.DataFrame,
    market: MarketArrays | FeatureSource,
    config: BacktestConfig,
    dates: DateRange | None = None,
) -> BacktestResult:
    """Backtest TopkDropout on ``predictions`` (``datetime, code, score``; one score per code and day).

    ``market`` is either prepared arrays (:func:`load_market`; they must cover every predicted code) or
    a feature source, read for the predicted codes over ``dates`` (default: the predictions' first to
    last day). The prediction of a day is traded on the next trading day, as in Qlib.
    """
    preds = _check_predictions(predictions)
    if not isinstance(market, MarketArrays):
        if dates is None:
            lo, hi = preds["datetime"].min(), preds["datetime"].max()
            dates = DateRange.of(lo, hi)  # type: ignore[arg-type]
        market = load_market(market, preds["code"].unique().to_list(), dates, config.benchmark)
    elif dates is not None:
        raise InvalidInputError("dates applies to a feature source; MarketArrays already fix their dates")
    score, present, has_signal = score_grid(preds, market)
    return run_on_grid(score, present, has_signal, market, config)


def run_on_grid(
    score: F64, present: Bool, has_signal: Bool, market: MarketArrays, config: BacktestConfig
) -> BacktestResult:
    """Run on scores already laid out as day × stock arrays (see :func:`score_grid`); for sweeps.

    Only the rebalance days of ``config.rebalance`` trade (:mod:`.rebalance`; every day by default)."""
    has_signal = has_signal & rebalance_days(market.dates, market.signal_dates, has_signal, config.rebalance)
    no_buy, no_sell = _limits(market, config)
    quoted = market.open if config.deal_price == "open" else market.close
    buy_price = sell_price = deal_prices(quoted, market.close)
    unit = 0.0
    if config.trade_unit is not None:
        if np.any(np.isnan(market.factor) & ~np.isnan(market.close)):
            log.warning("$factor is missing where $close is not: trading fractional amounts, as Qlib does")
        else:
            unit = float(config.trade_unit)
    raw = run_days(
        score, present, has_signal, market.close, buy_price, sell_price, market.factor, no_buy, no_sell,
        config.topk, config.n_drop, config.risk_degree, config.hold_thresh, config.only_tradable,
        config.forbid_all_trade_at_limit, config.open_cost, config.close_cost, config.min_cost,
        config.stamp_tax, unit, config.account,
    )  # fmt: skip
    return BacktestResult.from_arrays(market, config, raw, unit)


def score_grid(predictions: pl.DataFrame, market: MarketArrays) -> tuple[F64, Bool, Bool]:
    """``(score, present, has_signal)``: the prediction traded on each day, per stock.

    A prediction stamped anywhere in ``[signal_dates[i], dates[i])`` is traded on ``dates[i]`` (the last
    one per code wins, as Qlib resamples with ``last``); a day without any prediction does not trade.
    """
    preds = _check_predictions(predictions)
    index = market.code_index()
    unknown = preds.filter(~pl.col("code").is_in(list(index)))["code"].unique().sort()
    if len(unknown):
        raise InvalidInputError(
            f"{len(unknown)} predicted code(s) are not in the market arrays, e.g. {unknown.head(5).to_list()}"
        )
    n_days, n_codes = len(market.dates), len(market.codes)
    edges = np.append(market.signal_dates, market.dates[-1]).astype("datetime64[ms]").astype(np.int64)
    if np.isnat(market.signal_dates[0]):
        edges[0] = -(2**62)  # no previous trading day: nothing is traded on day 0
    stamps = preds["datetime"].cast(DATETIME).to_numpy().astype("datetime64[ms]").astype(np.int64)
    slot = np.searchsorted(edges, stamps, side="right") - 1
    if np.isnat(market.signal_dates[0]):
        slot[slot == 0] = -1
    frame = (
        preds.with_columns(
            pl.Series("slot", slot), pl.col("code").replace_strict(index, return_dtype=pl.Int64).alias("col")
        )
        .filter((pl.col("slot") >= 0) & (pl.col("slot") < n_days))
        .sort("datetime", maintain_order=True)
        .unique(subset=["slot", "col"], keep="last", maintain_order=True)
    )
    score = np.full((n_days, n_codes), np.nan)
    present = np.zeros((n_days, n_codes), dtype=np.bool_)
    rows = frame["slot"].to_numpy()
    cols = frame["col"].to_numpy()
    score[rows, cols] = frame["score"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    present[rows, cols] = True
    has_signal = np.zeros(n_days, dtype=np.bool_)
    has_signal[rows] = True
    return score, present, has_signal


def _check_predictions(predictions: pl.DataFrame) -> pl.DataFrame:
    missing = [c for c in PREDICTION_COLUMNS if c not in predictions.columns]
    if missing:
        raise InvalidInputError(
            f"predictions lack column(s) {missing}: expected {list(PREDICTION_COLUMNS)}, "
            f"got {predictions.columns}"
        )
    dtype = predictions.schema["score"]
    if not dtype.is_numeric():
        raise InvalidInputError(f"predictions.score must be numeric, got {dtype}")
    if not isinstance(predictions.schema["datetime"], pl.Datetime | pl.Date):
        got = predictions.schema["datetime"]
        raise InvalidInputError(f"predictions.datetime must be a date or datetime, got {got}")
    if predictions.is_empty():
        raise InvalidInputError("predictions are empty")
    return predictions.select(
        pl.col("datetime").cast(DATETIME), pl.col("code").cast(pl.String).str.to_uppercase(), pl.col("score")
    )


def _limits(market: MarketArrays, config: BacktestConfig) -> tuple[Bool, Bool]:
    """Qlib's ``limit_buy`` / ``limit_sell`` (suspension included), by ``$change`` or by board."""
    halted = suspended(market.close, market.volume, config.zero_volume_suspended)
    if config.limit_threshold is None:
        return limit_flags(market.change, halted, None)
    if market.has_change:  # Float32 fractions against the Float32 threshold, as pyqlib compares them
        return limit_flags(market.change, halted, float(np.float32(config.limit_threshold)))
    change = close_change(market.close, market.prev_close)
    return limit_flags(change, halted, board_thresholds(market.codes, market.dates))
