"""Value objects, enumerations, errors and frame schemas: the language of the platform."""

from hikyuu_qlib.domain.codes import StockCode, parse_codes
from hikyuu_qlib.domain.dates import DateRange, parse_datetime
from hikyuu_qlib.domain.enums import Adjust, KType, Market, StockType
from hikyuu_qlib.domain.errors import (
    DataFormatError,
    HQError,
    InvalidCodeError,
    InvalidDateRangeError,
    InvalidInputError,
    InvalidSourceError,
    LoadErrors,
    NoBarsError,
    NotFoundError,
    StoreNotFoundError,
    UnknownCodeError,
    UnsupportedKTypeError,
)
from hikyuu_qlib.domain.segments import Segments

__all__ = [
    "Adjust",
    "DataFormatError",
    "DateRange",
    "HQError",
    "InvalidCodeError",
    "InvalidDateRangeError",
    "InvalidInputError",
    "InvalidSourceError",
    "KType",
    "LoadErrors",
    "Market",
    "NoBarsError",
    "NotFoundError",
    "Segments",
    "StockCode",
    "StockType",
    "StoreNotFoundError",
    "UnknownCodeError",
    "UnsupportedKTypeError",
    "parse_codes",
    "parse_datetime",
]
