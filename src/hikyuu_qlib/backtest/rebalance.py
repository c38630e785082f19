"""When a TopkDropout portfolio rebalances: every trading day (Qlib's), the first trading day of each
calendar week or month, or every N trading days.

A rebalance day runs the strategy's choice of sells and buys (on the previous trading day's
predictions, as every day does); on the other days nothing is traded and the holdings are carried, marked
to each day's close. The backtest's first day with predictions to trade always rebalances (the
portfolio is opened there); after it:

* ``"day"``: every day (the default; exactly Qlib's daily ``TopkDropoutStrategy``);
* ``"week"``: each day whose calendar week (Monday to Sunday) differs from the previous trading day's,
  i.e. the first trading day of each week of the exchange calendar;
* ``"month"``: the first trading day of each calendar month;
* ``N`` (a whole number ≥ 1): every N-th trading day counted from the first one (1 is ``"day"``).

A rebalance day without any prediction to trade does not trade (as any such day); the portfolio waits
for the next rebalance day.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

from hikyuu_qlib.domain import InvalidInputError

#: A rebalance rule: a calendar period or a number of trading days.
Rebalance = Literal["day", "week", "month"] | int
PERIODS = ("day", "week", "month")

Bool = npt.NDArray[np.bool_]
Dates = npt.NDArray[np.datetime64]


def check_rebalance(value: object) -> Rebalance:
    """``value`` as a rule; :class:`InvalidInputError` naming the accepted forms otherwise."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in PERIODS:
            return text  # type: ignore[return-value]
        if text.isdigit():
            value = int(text)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise InvalidInputError(
        f"rebalance must be day, week, month or a whole number of trading days >= 1, got {value!r}"
    )


def rebalance_days(dates: Dates, previous: Dates, has_signal: Bool, rule: Rebalance) -> Bool:
    """The rebalance days among ``dates`` (trading days; ``previous[i]`` is the trading day before
    ``dates[i]``, NaT when unknown), given the days ``has_signal`` that have predictions to trade."""
    n = len(dates)
    rule = check_rebalance(rule)
    if rule in ("day", 1):
        return np.ones(n, dtype=np.bool_)
    mask = np.zeros(n, dtype=np.bool_)
    signalled = np.flatnonzero(has_signal)
    if signalled.size == 0:
        return mask
    first = int(signalled[0])
    if isinstance(rule, int):
        mask[first::rule] = True
        return mask
    mask[:] = _period(dates, rule) != _period(previous, rule)
    mask[np.isnat(previous)] = True
    mask[:first] = False
    mask[first] = True
    return mask


def _period(days: Dates, rule: str) -> npt.NDArray[np.int64]:
    """The calendar period of each day: the Monday of its week, or its month, as an integer."""
    d = np.asarray(days).astype("datetime64[D]")
    if rule == "month":
        return d.astype("datetime64[M]").astype(np.int64)
    count = d.astype(np.int64)
    return count - (count + 3) % 7  # 1970-01-01 was a Thursday: (count + 3) % 7 is 0 on Mondays
