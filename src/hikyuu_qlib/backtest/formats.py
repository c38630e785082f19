"""How backtest figures print, by their kind: ratios as percentages, money in yuan, counts as integers.

One place for the CLI summaries and the report: :func:`format_measure` prints a statistic of
:mod:`.measures` by its name, :func:`format_cell` a cell of the positions and trades tables by its
column (``shares`` whole, ``*_yuan`` money, ``weight`` a percentage), :func:`format_number` any other
number (integers as integers).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

from hikyuu_qlib.backtest.measures import MEASURES, Kind

MISSING = "—"


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def format_number(value: Any) -> str:
    """A number without a known kind: integers (and integral counts) as integers, else 4 decimals."""
    if _is_missing(value):
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,d}"
    if isinstance(value, float):
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        return f"{value:,.4f}" if abs(value) < 1e6 else f"{value:,.0f}"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d") if value.time() == dt.time(0) else value.isoformat(" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def percent(value: float) -> str:
    """A fraction as a percentage: 2 decimals, 4 below 0.1 % (daily means)."""
    pct = value * 100.0
    return f"{pct:,.2f} %" if pct == 0.0 or abs(pct) >= 0.1 else f"{pct:.4f} %"


def yuan(value: float, unit: bool = True) -> str:
    text = f"{value + 0.0:,.2f}".replace("-0.00", "0.00") if abs(value) < 0.005 else f"{value:,.2f}"
    return f"{text} yuan" if unit else text


def format_kind(kind: Kind, value: Any, unit: str = "") -> str:
    """``value`` printed as a figure of ``kind``."""
    if _is_missing(value):
        return MISSING
    if kind is Kind.TEXT or (isinstance(value, str) and kind is not Kind.DATE):
        return str(value)
    if kind is Kind.DATE:
        return format_number(value)
    number = float(value)
    if math.isinf(number):
        return format_number(number)
    if kind is Kind.RATIO:
        return percent(number)
    if kind is Kind.MONEY:
        return yuan(number)
    if kind is Kind.COUNT:
        return f"{round(number):,d}"
    return f"{number:,.2f} {unit}" if unit else f"{number:,.4f}"


def format_measure(name: str, value: Any) -> str:
    """A statistic of :data:`~hikyuu_qlib.backtest.measures.MEASURES` printed by its kind."""
    found = MEASURES.get(name)
    if found is None:
        return format_number(value)
    return format_kind(found.kind, value, found.unit)


def column_kind(column: str) -> Kind | None:
    """The kind of a positions/trades column, from its name; ``None`` for other columns."""
    if column == "shares":
        return Kind.COUNT
    if column.endswith("_yuan"):
        return Kind.MONEY
    if column in ("weight", "cash_share"):
        return Kind.RATIO
    return None


def format_cell(column: str, value: Any) -> str:
    """A cell of a positions or trades table (the unit is in the column's name, not the cell)."""
    kind = column_kind(column)
    if kind is None or _is_missing(value):
        return format_number(value)
    if kind is Kind.MONEY:
        return yuan(float(value), unit=False)
    if kind is Kind.COUNT and isinstance(value, float) and not value.is_integer():
        return f"{value:,.4f}"  # fractional trading (no trade unit)
    return format_kind(kind, value)


#: How a group that is ``None`` in a statistics document prints.
ABSENT = {"benchmark": "none: the backtest ran without a benchmark (no excess-return figures)"}


def summary_rows(document: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """``(group, name, printed value)`` for every figure of a statistics document, in order, for the CLI
    summaries (the report prints the same figures with :func:`format_measure`)."""
    rows: list[tuple[str, str, str]] = []
    for group, values in document.items():
        if values is None:
            rows.append((group, "", ABSENT.get(group, "none")))
        elif isinstance(values, Mapping):
            rows += [(group, str(name), format_measure(str(name), v)) for name, v in values.items()]
        else:
            rows.append(("", group, format_measure(group, values)))
    return rows
