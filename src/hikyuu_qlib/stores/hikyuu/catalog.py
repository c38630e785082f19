"""Which codes a Hikyuu store knows and which of them hold bars.

A store knows the codes of ``stock.db`` and the codes that have a table in its HDF5 files. The two
disagree on real data both ways:

* ``stock.db`` lists every security of the exchanges (4,729 in Hikyuu's test data) while the HDF5 files
  hold tables for some of them (8 there). A listed code without a table has no bars: it is "without
  bars" (:class:`~hikyuu_qlib.domain.NoBarsError`), not a failure, and ``stocks()`` says so in its
  ``has_data`` column.
* A table whose code is missing from ``stock.db`` is still data: it is readable, listed with
  ``has_data`` true and its type inferred from the code rules (:mod:`.coderules`); one warning gives
  the count of such codes. A table whose code no rule types is left out (and counted in that warning).

"Has data" looks at the store's base kind: day tables when the store has a day file, else 5-minute,
else 1-minute. A file whose tables cannot be listed counts every listed code of its market as having
data, so that reading them reports the damage instead of hiding it as "without bars".
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from hikyuu_qlib.domain import DataFormatError, Market, StockCode
from hikyuu_qlib.stores.hikyuu.basedb import StockRow
from hikyuu_qlib.stores.hikyuu.coderules import stock_type_of
from hikyuu_qlib.stores.hikyuu.h5 import H5File

log = logging.getLogger(__name__)

#: Base kinds in order of preference for deciding which codes have data.
BASE_KINDS: tuple[str, ...] = ("day", "min5", "min")

#: ``stockid`` of codes that are not in ``stock.db`` (no weight rows can match it).
NO_STOCKID = -1


@dataclass(frozen=True, slots=True)
class Catalog:
    """The codes of a store: ``rows`` (stock.db's and the orphans'), which hold data, which are orphans."""

    rows: dict[StockCode, StockRow]
    with_data: frozenset[StockCode]
    orphans: tuple[StockCode, ...]
    kind: str | None

    def has_data(self, code: StockCode) -> bool:
        return code in self.with_data


def base_kind(kinds: Iterable[str]) -> str | None:
    """The kind of table that decides whether a code has data (``None``: the store has no HDF5 file)."""
    present = set(kinds)
    return next((k for k in BASE_KINDS if k in present), None)


def build_catalog(
    listed: dict[StockCode, StockRow],
    kind: str | None,
    h5: Callable[[Market, str], H5File | None],
    where: Path,
) -> Catalog:
    """Join the codes of ``stock.db`` (``listed``) with the tables of kind ``kind``."""
    with_data: set[StockCode] = set()
    rows = dict(listed)
    orphans: list[StockCode] = []
    untyped: list[str] = []
    for market in sorted(Market, key=lambda m: m.value):
        handle = h5(market, kind) if kind is not None else None
        if handle is None:
            continue
        try:
            names = handle.names("data")
        except DataFormatError as exc:
            log.warning("%s; its %s codes are taken to have data", exc, market.value)
            with_data |= {c for c in listed if c.market is market}
            continue
        for name in names:
            try:
                code = StockCode.parse(name)
            except ValueError:
                continue
            if code.market is not market:
                continue
            if code not in listed:
                stype = stock_type_of(code)
                if stype is None:
                    untyped.append(str(code))
                    continue
                rows[code] = StockRow(NO_STOCKID, code, int(stype), True)
                orphans.append(code)
            with_data.add(code)
    if orphans or untyped:
        log.warning(
            "Hikyuu store %s: %d code(s) have %s tables but are not in stock.db: read with types inferred "
            "from the code rules%s",
            where,
            len(orphans) + len(untyped),
            kind,
            f"; {len(untyped)} left out, no rule gives their type ({', '.join(untyped[:5])})"
            if untyped
            else "",
        )
    return Catalog(rows, frozenset(with_data), tuple(sorted(orphans)), kind)
