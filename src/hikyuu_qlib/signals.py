"""Trading signals from prediction scores: BUY, SELL or HOLD per code and date, with a strength in [0, 1].

Each date, a rule selects codes from that date's scores (:class:`SignalRule`):

* ``topk``: the ``k`` best scores (equal scores in code order);
* ``threshold``: the scores strictly above ``threshold``;
* ``percentile``: the best ``ceil(pct × n)`` of the date's ``n`` scored codes (``pct`` in (0, 1]).

The signal of a code on a date compares its selection with the previous date of the predictions:

* ``BUY``: selected now, not on the previous date (it enters the selection; every selected code on
  the first date);
* ``HOLD``: selected now and on the previous date (it stays);
* ``SELL``: selected on the previous date, not now (it leaves; also when it has no score now).

Codes neither selected now nor on the previous date have no row: there is nothing to do with them.

``strength`` is the code's cross-sectional percentile rank on the date, ``(n − rank) / (n − 1)`` with
rank 1 the best of the ``n`` scored codes (1 for the best, 0 for the worst; 1 when ``n`` is 1): a
BUY or HOLD takes it as it is (the better the score, the stronger), a SELL takes ``1 − it`` (the worse
the score, the stronger; 1 when the code has no score on the date). Scores that are null or NaN are
not scored. A score dated ``t`` is known at ``t``'s close (Qlib's convention): a signal dated ``t`` is
traded on the next trading day.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import polars as pl

from hikyuu_qlib.domain import InvalidInputError
from hikyuu_qlib.domain.schema import DATETIME

BUY, SELL, HOLD = "BUY", "SELL", "HOLD"

#: The columns of a signals frame, sorted by datetime then code.
SIGNAL_SCHEMA: dict[str, pl.DataType] = {
    "datetime": DATETIME,
    "code": pl.String(),
    "score": pl.Float64(),
    "signal": pl.String(),
    "strength": pl.Float64(),
}


class SignalMethod(StrEnum):
    """How a date's codes are selected from their scores."""

    topk = "topk"
    threshold = "threshold"
    percentile = "percentile"


@dataclass(frozen=True, slots=True)
class SignalRule:
    """A selection rule: ``method`` with its one parameter (``k``, ``threshold`` or ``pct``)."""

    method: SignalMethod
    k: int | None = None
    threshold: float | None = None
    pct: float | None = None

    def __post_init__(self) -> None:
        try:
            method = SignalMethod(self.method)
        except ValueError:
            names = ", ".join(m.value for m in SignalMethod)
            raise InvalidInputError(f"unknown signal method {self.method!r}: expected {names}") from None
        object.__setattr__(self, "method", method)
        wanted = {SignalMethod.topk: "k", SignalMethod.threshold: "threshold", SignalMethod.percentile: "pct"}
        needed = wanted[method]
        extra = [
            name for name in ("k", "threshold", "pct") if name != needed and getattr(self, name) is not None
        ]
        if extra:
            raise InvalidInputError(f"signal method {method.value} takes {needed}, not {', '.join(extra)}")
        value = getattr(self, needed)
        if value is None:
            raise InvalidInputError(f"signal method {method.value} needs {needed} (--{needed})")
        if method is SignalMethod.topk and (
            not isinstance(value, int) or isinstance(value, bool) or value < 1
        ):
            raise InvalidInputError(f"topk needs k, a whole number >= 1, got {value!r}")
        if method is SignalMethod.threshold and not (isinstance(value, int | float) and math.isfinite(value)):
            raise InvalidInputError(f"threshold must be a finite number, got {value!r}")
        if method is SignalMethod.percentile and not (
            isinstance(value, int | float) and not isinstance(value, bool) and 0.0 < value <= 1.0
        ):
            raise InvalidInputError(
                f"percentile needs pct, a fraction in (0, 1] (0.1 for the best 10 %), got {value!r}"
            )

    @classmethod
    def topk(cls, k: int) -> SignalRule:
        return cls(SignalMethod.topk, k=k)

    @classmethod
    def above(cls, threshold: float) -> SignalRule:
        return cls(SignalMethod.threshold, threshold=threshold)

    @classmethod
    def percentile(cls, pct: float) -> SignalRule:
        return cls(SignalMethod.percentile, pct=pct)

    def describe(self) -> str:
        """``topk:10``, ``threshold:0.0`` or ``percentile:0.1``."""
        value = {SignalMethod.topk: self.k, SignalMethod.threshold: self.threshold}.get(self.method, self.pct)
        return f"{self.method.value}:{value}"


def to_signals(predictions: pl.DataFrame, rule: SignalRule) -> pl.DataFrame:
    """The signals (:data:`SIGNAL_SCHEMA`) of ``predictions`` (``datetime, code, score``) under ``rule``."""
    scored = _scored(predictions)
    ranked = scored.with_columns(
        pl.int_range(1, pl.len() + 1).over("datetime").alias("_rank"),
        pl.len().over("datetime").alias("_n"),
    ).with_columns(
        pl.when(pl.col("_n") > 1)
        .then((pl.col("_n") - pl.col("_rank")) / (pl.col("_n") - 1))
        .otherwise(1.0)
        .alias("_pct")
    )
    if rule.method is SignalMethod.topk:
        chosen = pl.col("_rank") <= rule.k
    elif rule.method is SignalMethod.threshold:
        chosen = pl.col("score") > rule.threshold
    else:
        assert rule.pct is not None
        chosen = pl.col("_rank") <= (pl.col("_n") * rule.pct).ceil()
    ranked = ranked.with_columns(chosen.alias("_now"))
    dates = predictions.select(pl.col("datetime").cast(DATETIME)).unique().sort("datetime")
    following = dates.with_columns(pl.col("datetime").shift(-1).alias("_next")).drop_nulls("_next")
    before = (
        ranked.filter(pl.col("_now"))
        .select("datetime", "code")
        .join(following, on="datetime", how="inner")
        .select(pl.col("_next").alias("datetime"), "code", pl.lit(True).alias("_before"))
    )
    both = ranked.join(before, on=["datetime", "code"], how="full", coalesce=True).with_columns(
        pl.col("_now").fill_null(False), pl.col("_before").fill_null(False)
    )
    signal = (
        pl.when(pl.col("_now") & ~pl.col("_before"))
        .then(pl.lit(BUY))
        .when(pl.col("_now"))
        .then(pl.lit(HOLD))
        .otherwise(pl.lit(SELL))
    )
    strength = pl.when(pl.col("_now")).then(pl.col("_pct")).otherwise((1.0 - pl.col("_pct")).fill_null(1.0))
    out = (
        both.filter(pl.col("_now") | pl.col("_before"))
        .with_columns(signal.alias("signal"), strength.alias("strength"))
        .sort("datetime", "code")
    )
    return out.select([pl.col(name).cast(dtype) for name, dtype in SIGNAL_SCHEMA.items()])


def signal_counts(signals: pl.DataFrame) -> dict[str, int]:
    """How many BUY, SELL and HOLD rows a signals frame holds."""
    counts = dict(signals.group_by("signal").len().iter_rows())
    return {name: int(counts.get(name, 0)) for name in (BUY, SELL, HOLD)}


def _scored(predictions: pl.DataFrame) -> pl.DataFrame:
    """The rows with a score, sorted by date, then best score first, then code."""
    missing = [c for c in ("datetime", "code", "score") if c not in predictions.columns]
    if missing:
        raise InvalidInputError(
            f"predictions lack column(s) {missing}: expected datetime, code, score; got {predictions.columns}"
        )
    if not predictions.schema["score"].is_numeric():
        raise InvalidInputError(f"predictions.score must be numeric, got {predictions.schema['score']}")
    try:
        frame = predictions.select(
            pl.col("datetime").cast(DATETIME),
            pl.col("code").cast(pl.String).str.to_uppercase(),
            pl.col("score").cast(pl.Float64),
        )
    except pl.exceptions.PolarsError as exc:
        raise InvalidInputError(f"predictions cannot be read as datetime, code, score: {exc}") from exc
    nulls = [c for c in ("datetime", "code") if frame[c].null_count()]
    if nulls:
        raise InvalidInputError(f"predictions have null values in {', '.join(nulls)}")
    if frame.select(pl.struct("datetime", "code").is_duplicated().any()).item():
        raise InvalidInputError("predictions hold more than one score for some (datetime, code)")
    return frame.filter(pl.col("score").is_not_null() & pl.col("score").is_not_nan()).sort(
        ["datetime", "score", "code"], descending=[False, True, False]
    )
