"""Source specs: the one way a market data source is named everywhere.

``hikyuu:PATH``  a Hikyuu data directory (or its ``hikyuu.ini``)
``qlib:PATH``    a Qlib provider directory
``synthetic``    the embedded synthetic market, optionally ``synthetic:SEED`` and
                 ``synthetic:SEED?stocks=N&years=Y&start=YYYY-MM-DD``
``PATH``         a bare directory: Hikyuu when it holds ``stock.db`` or ``hikyuu.ini`` (or is a
                 ``hikyuu.ini``), Qlib when it holds ``calendars/``; any other layout is refused
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
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
        bare_dir = (
            not sep and kind != "synthetic" and _holds(Path(raw).expanduser().is_dir)
        )  # ``hikyuu`` the folder
        if kind not in _KINDS or bare_dir:
            if raw and _looks_like_path(raw):
                return cls(detect_kind(Path(raw).expanduser(), text), Path(raw).expanduser())
            raise InvalidSourceError(
                f"invalid source {text!r}: expected hikyuu:PATH, qlib:PATH, synthetic[:SEED] or a directory"
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


def _holds(check: Callable[[], bool]) -> bool:
    """A file-system check that is false, not an error, for a name the OS refuses (too long, bad bytes)."""
    try:
        return check()
    except (OSError, ValueError):
        return False


def _looks_like_path(text: str) -> bool:
    """A spec without a known kind is a path when it names something that exists or is spelled like one."""
    return (
        _holds(Path(text).expanduser().exists) or text.startswith((".", "~")) or "/" in text or "\\" in text
    )


def detect_kind(path: Path, text: str | None = None) -> Literal["hikyuu", "qlib"]:
    """The kind of store in the bare directory ``path``: ``hikyuu`` when it holds ``stock.db`` or
    ``hikyuu.ini`` (or is a ``hikyuu.ini``), ``qlib`` when it holds a ``calendars`` directory; anything else
    is an :class:`InvalidSourceError` saying what was looked for."""
    named = text if text is not None else str(path)
    if _holds(path.is_file) and path.name == "hikyuu.ini":
        return "hikyuu"
    if not _holds(path.is_dir):
        what = "not a directory" if _holds(path.exists) else "no such directory"
        raise InvalidSourceError(
            f"invalid source {named!r}: {what} (a bare path must be a Hikyuu or Qlib data directory; "
            "or name the kind: hikyuu:PATH, qlib:PATH)"
        )
    if (path / "stock.db").is_file() or (path / "hikyuu.ini").is_file():
        return "hikyuu"
    if (path / "calendars").is_dir():
        return "qlib"
    raise InvalidSourceError(
        f"invalid source {named!r}: cannot tell the kind of store in {path}: looked for stock.db or "
        "hikyuu.ini (a Hikyuu data directory) and for calendars/ (a Qlib provider directory), found "
        "neither; name the kind: hikyuu:PATH or qlib:PATH"
    )


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
