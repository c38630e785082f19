"""Scores to BUY/SELL/HOLD signals: each method's selection, the transitions and the strength, by hand."""

from __future__ import annotations

import datetime as dt
import math

import polars as pl
import pytest

from hikyuu_qlib import SignalMethod, SignalRule, to_signals
from hikyuu_qlib.domain import InvalidInputError
from hikyuu_qlib.signals import SIGNAL_SCHEMA, signal_counts

D1, D2, D3 = dt.datetime(2020, 1, 2), dt.datetime(2020, 1, 3), dt.datetime(2020, 1, 6)


def frame(rows: list[tuple[dt.datetime, str, float | None]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows, schema={"datetime": pl.Datetime("ms"), "code": pl.String, "score": pl.Float64}, orient="row"
    )


#: Three dates of four codes. Day 1 ranks A > B > C > D, day 2 C > A > D > B, day 3 D > C (A, B unscored).
PREDS = frame(
    [
        (D1, "SH600000", 0.4), (D1, "SH600001", 0.3), (D1, "SH600002", 0.2), (D1, "SH600003", 0.1),
        (D2, "SH600000", 0.5), (D2, "SH600001", -0.2), (D2, "SH600002", 0.9), (D2, "SH600003", 0.0),
        (D3, "SH600000", None), (D3, "SH600002", 0.1), (D3, "SH600003", 0.2), (D3, "SH600001", float("nan")),
    ]
)  # fmt: skip
A, B, C, DD = "SH600000", "SH600001", "SH600002", "SH600003"


def as_dict(signals: pl.DataFrame) -> dict[tuple[dt.datetime, str], tuple[str, float]]:
    return {
        (d, c): (s, round(x, 6))
        for d, c, s, x in signals.select("datetime", "code", "signal", "strength").iter_rows()
    }


def test_topk_buys_on_entry_holds_while_selected_sells_on_exit() -> None:
    out = to_signals(PREDS, SignalRule.topk(2))
    assert out.schema == pl.Schema(SIGNAL_SCHEMA)
    # strength: (n − rank) / (n − 1) with n = 4 on days 1 and 2 and n = 2 on day 3
    assert as_dict(out) == {
        (D1, A): ("BUY", 1.0), (D1, B): ("BUY", round(2 / 3, 6)),
        (D2, A): ("HOLD", round(2 / 3, 6)), (D2, B): ("SELL", 1.0), (D2, C): ("BUY", 1.0),
        (D3, A): ("SELL", 1.0),  # no score on day 3: it leaves the selection, at full strength
        (D3, C): ("HOLD", 0.0), (D3, DD): ("BUY", 1.0),
    }  # fmt: skip
    assert signal_counts(out) == {"BUY": 4, "SELL": 2, "HOLD": 2}
    assert out["strength"].is_between(0.0, 1.0).all()


def test_threshold_selects_scores_strictly_above() -> None:
    out = as_dict(to_signals(PREDS, SignalRule.above(0.2)))
    assert out == {
        (D1, A): ("BUY", 1.0), (D1, B): ("BUY", round(2 / 3, 6)),
        (D2, A): ("HOLD", round(2 / 3, 6)), (D2, B): ("SELL", 1.0), (D2, C): ("BUY", 1.0),
        (D3, A): ("SELL", 1.0), (D3, C): ("SELL", 1.0),
    }  # fmt: skip


def test_percentile_takes_the_ceiling_of_the_fraction() -> None:
    out = as_dict(to_signals(PREDS, SignalRule.percentile(0.3)))  # ceil(0.3 × 4) = 2, ceil(0.3 × 2) = 1
    assert {k for k, v in out.items() if v[0] != "SELL"} == {(D1, A), (D1, B), (D2, A), (D2, C), (D3, DD)}
    assert out[(D3, C)] == ("SELL", 1.0)  # the worse of two on day 3: 1 − 0


def test_ties_are_ordered_by_code_and_one_code_has_full_strength() -> None:
    tied = frame([(D1, "SZ000002", 1.0), (D1, "SZ000001", 1.0), (D2, "SZ000001", 3.0)])
    out = as_dict(to_signals(tied, SignalRule.topk(1)))
    assert out == {(D1, "SZ000001"): ("BUY", 1.0), (D2, "SZ000001"): ("HOLD", 1.0)}


def test_rules_and_bad_predictions_are_refused() -> None:
    assert SignalRule("threshold", threshold=0.1).method is SignalMethod.threshold  # type: ignore[arg-type]
    assert SignalRule.topk(5).describe() == "topk:5"
    bad_rules = [
        lambda: SignalRule("best", k=3),  # type: ignore[arg-type]
        lambda: SignalRule(SignalMethod.topk),
        lambda: SignalRule(SignalMethod.topk, k=0),
        lambda: SignalRule(SignalMethod.topk, k=3, pct=0.1),
        lambda: SignalRule.above(math.inf),
        lambda: SignalRule.percentile(10.0),
        lambda: SignalRule.percentile(0.0),
    ]
    for make in bad_rules:
        with pytest.raises(InvalidInputError):
            make()
    with pytest.raises(InvalidInputError, match="score"):
        to_signals(PREDS.rename({"score": "prediction"}), SignalRule.topk(1))
    with pytest.raises(InvalidInputError, match="more than one score"):
        to_signals(pl.concat([PREDS, PREDS.head(1)]), SignalRule.topk(1))
    with pytest.raises(InvalidInputError, match="numeric"):
        to_signals(PREDS.with_columns(pl.col("score").cast(pl.String)), SignalRule.topk(1))
