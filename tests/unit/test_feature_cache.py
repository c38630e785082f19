"""The feature cache: a second run reads the file; changing any input computes anew."""

from __future__ import annotations

import io
from pathlib import Path

import polars as pl
import pytest

from hikyuu_qlib.domain import DateRange
from hikyuu_qlib.factors.cache import FeatureCache, cache_key, read_entry, write_entry
from hikyuu_qlib.factors.pipeline import compute_features
from hikyuu_qlib.factors.universe import Universe


def test_second_run_reads_and_inputs_change_the_key(qlib_dir: Path, tmp_path: Path) -> None:
    from hikyuu_qlib.stores.qlib.store import QlibStore

    store = QlibStore.open(qlib_dir)
    cache = FeatureCache(tmp_path)
    universe = Universe.from_codes(["SH600000", "SZ000001"])
    dates = DateRange.of("2019-01-01", "2019-03-31")
    first = compute_features(store, universe, dates, cache=cache)
    files = sorted(tmp_path.glob("*.arrow"))
    assert len(files) == 1
    stamp = files[0].stat().st_mtime_ns
    second = compute_features(store, universe, dates, cache=cache)
    assert second.equals(first)
    assert files[0].stat().st_mtime_ns == stamp  # read, not rewritten
    # corrupt the entry on purpose: the next run must read it back (proving it is read)
    marked = first.with_columns(pl.lit(123.0, pl.Float32).alias("KMID"))
    cache.put(files[0].stem, marked)
    assert compute_features(store, universe, dates, cache=cache)["KMID"].unique().to_list() == [123.0]
    compute_features(store, universe, DateRange.of("2019-01-01", "2019-04-30"), cache=cache)
    compute_features(store, Universe.from_codes(["SH600000"]), dates, cache=cache)
    compute_features(store, universe, dates, cache=cache, label=False)
    assert len(list(tmp_path.glob("*.arrow"))) == 4


def test_key_covers_every_part() -> None:
    base = {"source": "qlib:/a", "data_version": "1", "universe": "u", "factor_set": "alpha158", "dates": "d"}
    keys = {cache_key(base)}
    for part in base:
        keys.add(cache_key({**base, part: base[part] + "x"}))
    assert len(keys) == len(base) + 1
    assert cache_key(dict(reversed(list(base.items())))) == cache_key(base)


def _damages(entry: bytes, frame: pl.DataFrame) -> dict[str, bytes]:
    middle = len(entry) // 2
    legacy = io.BytesIO()
    frame.with_columns(pl.lit(123.0, pl.Float32).alias("KMID")).write_ipc(legacy, compression="lz4")
    return {
        "truncated on a 4-byte boundary": entry[: len(entry) - 8],
        "one byte flipped": entry[:middle] + bytes([entry[middle] ^ 0x01]) + entry[middle + 1 :],
        "extended": entry + b"\0" * 16,
        "header only": entry[:24],
        "empty": b"",
        "a bare Arrow file (no header)": legacy.getvalue(),
    }


@pytest.mark.parametrize("damage", list(_damages(b"x" * 64, pl.DataFrame({"KMID": [1.0]}))))
def test_a_damaged_entry_is_a_miss_and_is_rebuilt(qlib_dir: Path, tmp_path: Path, damage: str) -> None:
    from hikyuu_qlib.stores.qlib.store import QlibStore

    store = QlibStore.open(qlib_dir)
    cache = FeatureCache(tmp_path)
    universe = Universe.from_codes(["SH600000", "SZ000001"])
    dates = DateRange.of("2019-01-01", "2019-02-28")
    first = compute_features(store, universe, dates, cache=cache)
    (entry,) = tmp_path.glob("*.arrow")
    entry.write_bytes(_damages(entry.read_bytes(), first)[damage])
    assert cache.get(entry.stem) is None
    assert not entry.exists()  # deleted, never served
    write_entry(entry, first)
    entry.write_bytes(_damages(entry.read_bytes(), first)[damage])
    again = compute_features(store, universe, dates, cache=cache)
    assert again.equals(first)
    assert read_entry(entry).equals(first)  # rebuilt intact
