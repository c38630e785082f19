"""Stock codes: one canonical form, many accepted spellings."""

from __future__ import annotations

import re
from dataclasses import dataclass

from hikyuu_qlib.domain.enums import Market
from hikyuu_qlib.domain.errors import InvalidCodeError

_PREFIXED = re.compile(r"^(?P<market>[A-Za-z]{2})\.?(?P<symbol>[0-9]{6})$")
_SUFFIXED = re.compile(r"^(?P<symbol>[0-9]{6})\.(?P<market>[A-Za-z]{2})$")


@dataclass(frozen=True, slots=True, order=True)
class StockCode:
    """A security on an A-share exchange, e.g. ``SH600000``.

    Accepted spellings: ``sh600000``, ``SH600000``, ``600000.SH``, ``SH.600000``.
    The canonical form (``str(code)``) is the market in upper case followed by the six-digit symbol,
    which is also Hikyuu's table name and Qlib's instrument name.
    """

    market: Market
    symbol: str

    def __post_init__(self) -> None:
        if not isinstance(self.market, Market):
            raise InvalidCodeError(f"invalid market {self.market!r} in stock code")
        if len(self.symbol) != 6 or not self.symbol.isdigit():
            raise InvalidCodeError(f"invalid symbol {self.symbol!r}: expected 6 digits such as 600000")

    @classmethod
    def parse(cls, text: str | StockCode) -> StockCode:
        """Parse any accepted spelling; raise :class:`InvalidCodeError` quoting the input otherwise."""
        if isinstance(text, StockCode):
            return text
        if not isinstance(text, str):
            raise InvalidCodeError(f"stock code must be a string, got {text!r}")
        raw = text.strip()
        match = _PREFIXED.match(raw) or _SUFFIXED.match(raw)
        if match is None:
            raise InvalidCodeError(
                f"invalid stock code {text!r}: expected forms like SH600000, sh600000, 600000.SH or SH.600000"
            )
        market_text = match.group("market").upper()
        try:
            market = Market(market_text)
        except ValueError:
            raise InvalidCodeError(
                f"invalid stock code {text!r}: unknown market {market_text!r} (expected SH, SZ or BJ)"
            ) from None
        return cls(market, match.group("symbol"))

    def __str__(self) -> str:
        return f"{self.market.value}{self.symbol}"

    @property
    def hikyuu_table(self) -> str:
        """The table name under ``/data`` in Hikyuu's HDF5 files."""
        return str(self)

    @property
    def qlib_instrument(self) -> str:
        """The instrument name in Qlib's instruments files."""
        return str(self)

    @property
    def qlib_folder(self) -> str:
        """The folder name under Qlib's ``features`` directory."""
        return str(self).lower()

    @property
    def tdx_name(self) -> str:
        """The file stem of a TDX ``.day`` file (``sh600000``)."""
        return str(self).lower()


def parse_codes(texts: str | StockCode | list[str] | list[StockCode] | tuple[str, ...]) -> list[StockCode]:
    """Parse one code or a sequence of codes; the first bad one raises."""
    if isinstance(texts, str | StockCode):
        return [StockCode.parse(texts)]
    return [StockCode.parse(t) for t in texts]
