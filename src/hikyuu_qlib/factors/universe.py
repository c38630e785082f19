"""Point-in-time universes: a membership table of spans, so that each date uses that date's members."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import polars as pl

from hikyuu_qlib.domain import DateRange, StockCode
from hikyuu_qlib.domain.errors import InvalidInputError, NotFoundError
from hikyuu_qlib.domain.schema import DATETIME, MEMBERSHIP_SCHEMA

_FOREVER = DateRange()


class MembershipSource(Protocol):
    def members(self, universe: str, dates: DateRange | None = None) -> pl.DataFrame: ...


@dataclass(frozen=True, slots=True)
class Universe:
    """A named universe and its membership spans (``MEMBERSHIP_SCHEMA``: code, start, end inclusive)."""

    name: str
    membership: pl.DataFrame

    @classmethod
    def from_store(cls, store: MembershipSource, name: str, dates: DateRange | None = None) -> Universe:
        """The spans of ``name`` in ``store`` (Qlib: ``instruments/<name>.txt``) overlapping ``dates``."""
        return cls(name, _conform(store.members(name, dates)))

    @classmethod
    def from_codes(cls, codes: Sequence[str | StockCode], name: str | None = None) -> Universe:
        """A static universe: the codes are members on every date."""
        canonical = sorted({str(StockCode.parse(c)) for c in codes})
        if not canonical:
            raise InvalidInputError("a universe needs at least one code")
        count = len(canonical)
        spans = {"code": canonical, "start": [_FOREVER.start] * count, "end": [_FOREVER.end] * count}
        frame = pl.DataFrame(spans)
        return cls(name or ",".join(canonical), _conform(frame))

    @classmethod
    def from_file(cls, path: Path, name: str | None = None) -> Universe:
        """A Qlib instruments file (``CODE<TAB>START<TAB>END`` per span, e.g. ``csi300.txt``), named
        after its stem."""
        from hikyuu_qlib.stores.qlib.instruments import read_instruments

        path = Path(path)
        if not path.is_file():
            raise NotFoundError(f"instruments file not found: {path}")
        spans = read_instruments(path)
        if spans.height == 0:
            raise InvalidInputError(f"instruments file {path} lists no instrument")
        return cls(name or path.stem, _conform(spans))

    def codes(self) -> list[str]:
        """Every code that is a member at some time, sorted."""
        return sorted(set(self.membership["code"].to_list()))

    def members_between(self, dates: DateRange) -> list[str]:
        """The codes that are members on at least one date of ``dates``."""
        hit = self.membership.filter((pl.col("start") <= dates.end) & (pl.col("end") >= dates.start))
        return sorted(set(hit["code"].to_list()))

    def members_on(self, when: DateRange | str) -> list[str]:
        """The codes that are members on one date (a ``YYYY-MM-DD`` string or a one-day range)."""
        day = DateRange.of(when, when) if isinstance(when, str) else when
        hit = self.membership.filter((pl.col("start") <= day.end) & (pl.col("end") >= day.start))
        return sorted(set(hit["code"].to_list()))

    def mask(self, frame: pl.DataFrame) -> pl.Series:
        """True for the rows of ``frame`` (code, datetime) whose code is a member on that row's date."""
        rows = frame.select("code", pl.col("datetime").cast(DATETIME)).with_row_index("_row")
        hits = (
            rows.join(self.membership, on="code", how="inner")
            .filter(pl.col("datetime").is_between(pl.col("start"), pl.col("end")))
            .get_column("_row")
            .to_numpy()
        )
        mask = np.zeros(frame.height, dtype=bool)
        mask[hits] = True
        return pl.Series("member", mask)

    def fingerprint(self) -> str:
        """A digest of the name and the spans, for cache keys."""
        digest = hashlib.sha256(self.name.encode())
        ordered = self.membership.sort("code", "start", "end")
        for column in ("code", "start", "end"):
            digest.update(ordered[column].cast(pl.String).str.join("|").item().encode())
        return digest.hexdigest()[:16]


def _conform(frame: pl.DataFrame) -> pl.DataFrame:
    missing = [c for c in MEMBERSHIP_SCHEMA if c not in frame.columns]
    if missing:
        raise InvalidInputError(f"membership table lacks column(s) {', '.join(missing)}")
    return frame.select([pl.col(c).cast(t) for c, t in MEMBERSHIP_SCHEMA.items()])
