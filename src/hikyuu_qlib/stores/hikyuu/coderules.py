"""Stock types from code prefixes, as Hikyuu's CodeRuleType table assigns them."""

from __future__ import annotations

from hikyuu_qlib.domain import Market, StockCode, StockType

# (market, prefix, type); the longest matching prefix wins.
CODE_RULES: tuple[tuple[Market, str, StockType], ...] = (
    (Market.SH, "000", StockType.INDEX),
    (Market.SH, "600", StockType.A_SHARE),
    (Market.SH, "601", StockType.A_SHARE),
    (Market.SH, "603", StockType.A_SHARE),
    (Market.SH, "605", StockType.A_SHARE),
    (Market.SH, "688", StockType.STAR),
    (Market.SH, "689", StockType.STAR),
    (Market.SH, "900", StockType.B_SHARE),
    (Market.SH, "510", StockType.ETF),
    (Market.SH, "51", StockType.ETF),
    (Market.SH, "56", StockType.ETF),
    (Market.SH, "58", StockType.ETF),
    (Market.SH, "50", StockType.FUND),
    (Market.SZ, "399", StockType.INDEX),
    (Market.SZ, "00", StockType.A_SHARE),
    (Market.SZ, "300", StockType.CHINEXT),
    (Market.SZ, "301", StockType.CHINEXT),
    (Market.SZ, "20", StockType.B_SHARE),
    (Market.SZ, "159", StockType.ETF),
    (Market.SZ, "15", StockType.FUND),
    (Market.SZ, "16", StockType.FUND),
    (Market.SZ, "18", StockType.FUND),
    (Market.BJ, "43", StockType.A_SHARE),
    (Market.BJ, "83", StockType.A_SHARE),
    (Market.BJ, "87", StockType.A_SHARE),
    (Market.BJ, "88", StockType.A_SHARE),
    (Market.BJ, "92", StockType.A_SHARE),
    (Market.BJ, "899", StockType.INDEX),
)


def stock_type_of(code: StockCode) -> StockType | None:
    """The type a code's prefix implies, or None when no rule matches."""
    best: tuple[int, StockType] | None = None
    for market, prefix, kind in CODE_RULES:
        if market is not code.market or not code.symbol.startswith(prefix):
            continue
        if best is None or len(prefix) > best[0]:
            best = (len(prefix), kind)
    return None if best is None else best[1]
