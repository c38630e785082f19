"""All enumerations of the domain in one place."""

from __future__ import annotations

from enum import Enum, StrEnum

from hikyuu_qlib.domain.errors import InvalidInputError, UnsupportedKTypeError


class Market(StrEnum):
    """A-share exchanges."""

    SH = "SH"
    SZ = "SZ"
    BJ = "BJ"

    @classmethod
    def parse(cls, text: str) -> Market:
        try:
            return cls(text.strip().upper())
        except ValueError:
            raise InvalidInputError(f"unknown market {text!r}: expected one of SH, SZ, BJ") from None


class KType(StrEnum):
    """Bar periods, named as Hikyuu names them."""

    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"
    HALFYEAR = "halfyear"
    YEAR = "year"
    MIN = "min"
    MIN5 = "min5"
    MIN15 = "min15"
    MIN30 = "min30"
    MIN60 = "min60"

    @classmethod
    def parse(cls, text: str) -> KType:
        key = text.strip().lower()
        key = _KTYPE_ALIASES.get(key, key)
        try:
            return cls(key)
        except ValueError:
            names = ", ".join(k.value for k in cls)
            raise UnsupportedKTypeError(f"unknown ktype {text!r}: expected one of {names}") from None

    @property
    def is_intraday(self) -> bool:
        return self in _INTRADAY

    @property
    def is_period_of_day(self) -> bool:
        """Week, month, quarter, halfyear and year: periods built from day bars."""
        return self in _DAY_PERIODS


_KTYPE_ALIASES = {
    "d": "day",
    "daily": "day",
    "1d": "day",
    "w": "week",
    "m": "month",
    "1min": "min",
    "min1": "min",
    "5min": "min5",
    "15min": "min15",
    "30min": "min30",
    "60min": "min60",
}
_INTRADAY = frozenset({KType.MIN, KType.MIN5, KType.MIN15, KType.MIN30, KType.MIN60})
_DAY_PERIODS = frozenset({KType.WEEK, KType.MONTH, KType.QUARTER, KType.HALFYEAR, KType.YEAR})


class Adjust(StrEnum):
    """Price adjustment for splits and dividends (复权)."""

    NONE = "none"
    FORWARD = "forward"
    BACKWARD = "backward"

    @classmethod
    def parse(cls, text: str) -> Adjust:
        key = text.strip().lower()
        key = {"qfq": "forward", "hfq": "backward", "raw": "none", "no": "none"}.get(key, key)
        try:
            return cls(key)
        except ValueError:
            raise InvalidInputError(
                f"unknown adjustment {text!r}: expected one of none, forward, backward"
            ) from None


class StockType(int, Enum):
    """Security types as numbered in Hikyuu's StockTypeInfo table."""

    BLOCK = 0
    A_SHARE = 1
    INDEX = 2
    B_SHARE = 3
    FUND = 4
    ETF = 5
    GOV_BOND = 6
    OTHER_BOND = 7
    CHINEXT = 8
    STAR = 9

    @classmethod
    def parse(cls, text: str | int) -> StockType:
        if isinstance(text, int) or str(text).strip().isdigit():
            try:
                return cls(int(text))
            except ValueError:
                pass
        else:
            key = str(text).strip().upper().replace("-", "_")
            key = {"STOCK": "A_SHARE", "A": "A_SHARE", "GEM": "CHINEXT", "KCB": "STAR"}.get(key, key)
            if key in cls.__members__:
                return cls[key]
        names = ", ".join(m.name.lower() for m in cls)
        raise InvalidInputError(f"unknown stock type {text!r}: expected one of {names} or 0-9")
