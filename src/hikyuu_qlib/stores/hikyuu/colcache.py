"""The decoded-column cache of whole-store loads: one directory of numpy files per (source, data version,
ktype), memory-mapped on read.

A directory holds one ``.npy`` file per output column, ``lengths.npy`` (rows per table), ``names.json``
(the tables' codes) and ``manifest.json``: the format version, the row and table counts, every file's
size, and the CRC-32 of the two small files. A read checks the manifest against the files before any
column is used (sizes, checksums, shapes, dtypes and that the per-table lengths add up to the rows),
so a truncated, replaced or half-written directory is a miss: it is deleted and the store is decoded
again. The large columns are length-checked, not checksummed, to keep them mapped rather than read.
A directory is assembled under a temporary name and renamed into place.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from hikyuu_qlib.checksum import crc32
from hikyuu_qlib.stores.hikyuu.frames import Columns
from hikyuu_qlib.stores.hikyuu.h5tables import OUTPUT_COLUMNS

log = logging.getLogger(__name__)

FORMAT = "hq-hikyuu-columns"
VERSION = 1
_SMALL = ("names.json", "lengths.npy")


class DamagedCacheError(ValueError):
    """A cache directory whose files do not match its manifest."""


def _dtype(column: str) -> np.dtype[Any]:
    return np.dtype(np.int64) if column == "datetime" else np.dtype(np.float64)


def read_columns(target: Path) -> tuple[Columns, list[str], np.ndarray] | None:
    """The cached columns, table names and lengths in ``target``; None when there is no intact entry
    (a damaged one is deleted)."""
    if not target.exists():
        return None
    try:
        return _checked(target)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("decoded-column cache %s is damaged (%s): deleting it and decoding anew", target, exc)
        shutil.rmtree(target, ignore_errors=True)
        return None


def _checked(target: Path) -> tuple[Columns, list[str], np.ndarray]:
    try:
        manifest = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DamagedCacheError("no manifest.json (an older or unfinished entry)") from None
    if not isinstance(manifest, dict) or (manifest.get("format"), manifest.get("version")) != (
        FORMAT,
        VERSION,
    ):
        raise DamagedCacheError(f"manifest is not {FORMAT} version {VERSION}")
    files: dict[str, int] = manifest["files"]
    for name, size in files.items():
        actual = (target / name).stat().st_size
        if actual != size:
            raise DamagedCacheError(f"{name} is {actual} bytes, the manifest says {size}")
    small = {name: (target / name).read_bytes() for name in _SMALL}
    for name, data in small.items():
        if crc32(data) != manifest["crc32"][name]:
            raise DamagedCacheError(f"{name} does not match its checksum")
    names = json.loads(small["names.json"])
    lengths = np.load(target / "lengths.npy")
    rows, tables = int(manifest["rows"]), int(manifest["tables"])
    if (
        len(names) != tables
        or lengths.shape != (tables,)
        or int(lengths.sum()) != rows
        or (lengths < 0).any()
    ):
        raise DamagedCacheError("table names, lengths and the row count disagree")
    arrays = []
    for column in OUTPUT_COLUMNS:
        array = np.load(target / f"{column}.npy", mmap_mode="r")
        if array.shape != (rows,) or array.dtype != _dtype(column):
            raise DamagedCacheError(
                f"{column}.npy holds {array.dtype}{list(array.shape)}, expected {rows} rows"
            )
        arrays.append(array)
    return Columns(*arrays), names, lengths


def write_columns(target: Path, cols: Columns, names: list[str], lengths: np.ndarray) -> None:
    """Store a whole-store load under ``target`` (a failure to write is logged, never raised)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        for column in OUTPUT_COLUMNS:
            np.save(staging / f"{column}.npy", np.asarray(getattr(cols, column), dtype=_dtype(column)))
        np.save(staging / "lengths.npy", np.asarray(lengths, dtype=np.int64))
        (staging / "names.json").write_text(json.dumps(names), encoding="utf-8")
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "rows": int(np.sum(lengths)),
            "tables": len(names),
            "files": {p.name: p.stat().st_size for p in sorted(staging.iterdir())},
            "crc32": {name: crc32((staging / name).read_bytes()) for name in _SMALL},
        }
        (staging / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
        staging.rename(target)
        log.info("read_all: cached decoded columns at %s", target)
    except OSError as exc:
        log.warning("could not write the decoded-column cache %s: %s", target, exc)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
