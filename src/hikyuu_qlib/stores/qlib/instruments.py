"""Qlib instruments files: ``instruments/<universe>.txt``, tab-separated ``instrument start end``.

An instrument may have several rows (membership spans, both ends inclusive). ``all.txt`` lists every
instrument of the store. Frames returned here follow ``MEMBERSHIP_SCHEMA`` (code, start, end) with the
code in canonical form (``SH600000``); the instrument name as written in the file is kept in ``name``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import polars as pl

from hikyuu_qlib.domain import DataFormatError, InvalidInputError, StockCode
from hikyuu_qlib.domain.errors import InvalidCodeError
from hikyuu_qlib.domain.schema import DATETIME, MEMBERSHIP_SCHEMA
from hikyuu_qlib.stores.qlib._io import write_atomic

SPANS_SCHEMA: dict[str, pl.DataType] = {**MEMBERSHIP_SCHEMA, "name": pl.String()}


def instruments_dir(root: Path) -> Path:
    return root / "instruments"


def universe_path(root: Path, name: str) -> Path:
    """``instruments/<name>.txt``; :class:`InvalidInputError` when ``name`` is not a plain file name.

    A universe name is a name, not a path: one with ``/``, ``\\``, ``..``, a NUL or a drive colon could
    reach a file outside ``instruments/`` and is refused before any file is touched.
    """
    clean = name.strip().lower()
    seps = {"/", "\\", "\x00", ":", os.sep, os.altsep or "/"}
    if not clean or ".." in clean or any(sep in clean for sep in seps) or clean.startswith("."):
        raise InvalidInputError(
            f"invalid universe name {name!r}: expected the name of a file in {instruments_dir(root)} "
            "(such as csi300), without '/', '\\' or '..'"
        )
    return instruments_dir(root) / f"{clean}.txt"


def universes(root: Path) -> list[str]:
    """Names of the instruments files of a store (``all``, ``csi300`` …), sorted."""
    folder = instruments_dir(root)
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.txt"))


def canonical(name: str) -> str:
    """The canonical code of a Qlib instrument name; names that are not stock codes are upper-cased."""
    try:
        return str(StockCode.parse(name))
    except InvalidCodeError:
        return name.strip().upper()


def read_instruments(path: Path) -> pl.DataFrame:
    """Parse an instruments file into (code, start, end, name), in file order."""
    try:
        raw = pl.read_csv(
            path,
            separator="\t",
            has_header=False,
            new_columns=["name", "start", "end"],
            columns=[0, 1, 2],
            schema_overrides={"name": pl.String, "start": pl.String, "end": pl.String},
        )
    except FileNotFoundError:
        raise
    except (pl.exceptions.PolarsError, OSError) as exc:
        if path.is_file() and path.stat().st_size == 0:
            return pl.DataFrame(schema=SPANS_SCHEMA)
        raise DataFormatError(f"cannot parse instruments file {path}: {exc}") from exc
    try:
        frame = raw.select(
            pl.col("name").str.strip_chars(),
            pl.col("start").str.strip_chars().str.to_datetime(strict=True, time_unit="ms"),
            pl.col("end").str.strip_chars().str.to_datetime(strict=True, time_unit="ms"),
        )
    except pl.exceptions.PolarsError as exc:
        raise DataFormatError(
            f"instruments file {path} has a start or end that is not a date: {exc}"
        ) from exc
    names = frame["name"].to_list()
    mapping = {n: canonical(n) for n in set(names)}
    codes = pl.Series("code", [mapping[n] for n in names], dtype=pl.String)
    return frame.with_columns(codes).select(list(SPANS_SCHEMA)).cast({"start": DATETIME, "end": DATETIME})


def format_instruments(spans: pl.DataFrame) -> bytes:
    """Render spans (code, start, end) the way Qlib writes them: ``CODE\\tYYYY-MM-DD\\tYYYY-MM-DD``."""
    if spans.height == 0:
        return b""
    out = spans.sort(["code", "start"]).select(
        pl.col("code"),
        pl.col("start").dt.strftime("%Y-%m-%d"),
        pl.col("end").dt.strftime("%Y-%m-%d"),
    )
    lines = out.select(pl.concat_str(["code", "start", "end"], separator="\t"))["code"].to_list()
    return ("\n".join(lines) + "\n").encode()


def merge_spans(spans: pl.DataFrame, calendar: np.ndarray) -> pl.DataFrame:
    """Merge overlapping spans of the same code, and spans that meet on consecutive trading days."""
    if spans.height == 0:
        return spans.select(list(MEMBERSHIP_SCHEMA))
    ordered = spans.select(list(MEMBERSHIP_SCHEMA)).sort(["code", "start", "end"])
    ends = ordered["end"].to_numpy().astype("datetime64[ms]")
    nxt = np.searchsorted(calendar, ends, side="right")
    reach = np.where(nxt < len(calendar), calendar[np.minimum(nxt, len(calendar) - 1)], ends)
    ordered = ordered.with_columns(pl.Series("reach", reach).cast(DATETIME))
    return (
        ordered.with_columns(
            pl.col("reach").cum_max().shift(1).over("code").alias("prev_reach"),
        )
        .with_columns(
            (pl.col("prev_reach").is_null() | (pl.col("start") > pl.col("prev_reach")))
            .cum_sum()
            .over("code")
            .alias("group")
        )
        .group_by(["code", "group"], maintain_order=True)
        .agg(pl.col("start").min(), pl.col("end").max())
        .select(list(MEMBERSHIP_SCHEMA))
        .sort(["code", "start"])
    )


def write_instruments(path: Path, spans: pl.DataFrame) -> None:
    write_atomic(path, format_instruments(spans))
