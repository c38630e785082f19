"""Source specs: the one way a market data source is named everywhere.

``hikyuu:PATH``  a Hikyuu data directory (or its ``hikyuu.ini``)
``qlib:PATH``    a Qlib provider directory
``synthetic``    the embedded synthetic market, optionally ``synthetic:SEED`` and
                 ``synthetic:SEED?stocks=N&years=Y&start=YYYY-MM-DD``
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl

from hikyuu_qlib.domain.errors import InvalidSourceError

SourceKind = Literal["hikyuu", "qlib", "synthetic"]
_KINDS: tuple[SourceKind, ...] = ("hikyuu", "qlib", "synthetic")


@dataclass(frozen=True, slots=True)
class SyntheticParams:
    """Size and seed of a synthetic market."""

    seed: int = 7
    stocks: int = 300
    years: int = 8
    start: dt.date = dt.date(2015, 1, 5)


@dataclass(frozen=True, slots=True)
class SourceSpec:
    kind: SourceKind
    path: Path | None = None
    synthetic: SyntheticParams = field(default_factory=SyntheticParams)

    @classmethod
    def parse(cls, text: str | SourceSpec) -> SourceSpec:
        if isinstance(text, SourceSpec):
            return text
        raw = text.strip()
        kind, sep, rest = raw.partition(":")
        kind = kind.lower()
        if kind not in _KINDS:
            raise InvalidSourceError(
                f"invalid source {text!r}: expected hikyuu:PATH, qlib:PATH or synthetic[:SEED]"
            )
        if kind == "synthetic":
            return cls("synthetic", None, _parse_synthetic(text, rest))
        if not sep or not rest:
            raise InvalidSourceError(
                f"invalid source {text!r}: {kind} needs a path, e.g. {kind}:/data/{kind}"
            )
        return cls(kind, Path(rest).expanduser())

    def canonical(self) -> str:
        """The spec with its path made canonical (absolute, symlinks resolved, relative to the current
        directory): what the store opened from it reports as ``source``. One store named relatively,
        absolutely or through a symlink has one canonical spec."""
        if self.path is None:
            return str(self)
        return f"{self.kind}:{self.path.expanduser().resolve()}"

    def __str__(self) -> str:
        if self.kind == "synthetic":
            p = self.synthetic
            default = SyntheticParams(seed=p.seed)
            if p == default:
                return f"synthetic:{p.seed}"
            return f"synthetic:{p.seed}?stocks={p.stocks}&years={p.years}&start={p.start:%Y-%m-%d}"
        return f"{self.kind}:{self.path}"


def _parse_synthetic(text: str, rest: str) -> SyntheticParams:
    seed_text, _, query = rest.partition("?")
    defaults = SyntheticParams()
    try:
        seed = int(seed_text) if seed_text else defaults.seed
        options = dict(parse_qsl(query, strict_parsing=True)) if query else {}
        unknown = set(options) - {"stocks", "years", "start"}
        if unknown:
            raise InvalidSourceError(
                f"invalid source {text!r}: unknown option(s) {sorted(unknown)}; known: stocks, years, start"
            )
        params = SyntheticParams(
            seed=seed,
            stocks=int(options.get("stocks", defaults.stocks)),
            years=int(options.get("years", defaults.years)),
            start=dt.date.fromisoformat(options["start"]) if "start" in options else defaults.start,
        )
    except ValueError as exc:
        raise InvalidSourceError(f"invalid source {text!r}: {exc}") from None
    if params.stocks < 1 or params.years < 1:
        raise InvalidSourceError(f"invalid source {text!r}: stocks and years must be positive")
    return params
