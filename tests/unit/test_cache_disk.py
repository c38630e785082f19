"""The disk tier (L3) as the feature cache: a second run reads the file; changing any input computes anew;
a damaged file is a miss, deleted, and rebuilt."""

from __future__ import annotations

import io
from pathlib import Path

import polars as pl
import pytest
from tests.cache_support import disk_cache, entries

from hikyuu_qlib.cache.codec import FRAME
from hikyuu_qlib.cache.disk import DiskTier
from hikyuu_qlib.cache.envelope import HEADER
from hikyuu_qlib.domain import DateRange
from hikyuu_qlib.domain.cache import CacheKey
from hikyuu_qlib.factors.pipeline import compute_features
from hikyuu_qlib.factors.universe import Universe


def _name(path: Path) -> str:
    return f"{path.parent.name}:{path.stem}"


def test_second_run_reads_and_inputs_change_the_key(qlib_dir: Path, tmp_path: Path) -> None:
    from hikyuu_qlib.stores.qlib.store import QlibStore

    store = QlibStore.open(qlib_dir)
    cache = disk_cache(tmp_path)
    universe = Universe.from_codes(["SH600000", "SZ000001"])
    dates = DateRange.of("2019-01-01", "2019-03-31")
    first = compute_features(store, universe, dates, cache=cache)
    files = entries(tmp_path)
    assert len(files) == 1
    size = files[0].stat().st_size
    second = compute_features(store, universe, dates, cache=cache)
    assert second.equals(first)
    assert cache.counters().computed == 1 and files[0].stat().st_size == size  # read, not rewritten
    # store another frame under the key on purpose: the next run must read it back (proving it is read)
    marked = first.with_columns(pl.lit(123.0, pl.Float32).alias("KMID"))
    assert cache.disk is not None
    cache.disk.put(_name(files[0]), marked, FRAME)
    assert compute_features(store, universe, dates, cache=cache)["KMID"].unique().to_list() == [123.0]
    compute_features(store, universe, DateRange.of("2019-01-01", "2019-04-30"), cache=cache)
    compute_features(store, Universe.from_codes(["SH600000"]), dates, cache=cache)
    compute_features(store, universe, dates, cache=cache, label=False)
    assert len(entries(tmp_path)) == 4


def test_key_covers_every_part() -> None:
    base = {"source": "qlib:/a", "data_version": "1", "schema": 1}
    params = {"universe": "u", "factor_set": "alpha158", "dates": ("a", "b")}
    keys = {CacheKey.of("features", params=params, **base).digest}  # type: ignore[arg-type]
    keys.add(CacheKey.of("bars", params=params, **base).digest)  # type: ignore[arg-type]
    for part in base:
        changed = {**base, part: 2 if part == "schema" else "x"}
        keys.add(CacheKey.of("features", params=params, **changed).digest)  # type: ignore[arg-type]
    for part in params:
        keys.add(CacheKey.of("features", params={**params, part: "y"}, **base).digest)  # type: ignore[arg-type]
    assert len(keys) == 2 + len(base) + len(params)
    reordered = dict(reversed(list(params.items())))
    assert CacheKey.of("features", params=reordered, **base).digest in keys  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="cache key parameter 'when'"):
        CacheKey.of("features", params={"when": object()}, **base)  # type: ignore[arg-type]


def _damages(entry: bytes, frame: pl.DataFrame) -> dict[str, bytes]:
    middle = len(entry) // 2
    bare = io.BytesIO()
    frame.with_columns(pl.lit(123.0, pl.Float32).alias("KMID")).write_ipc(bare)
    return {
        "truncated on a 4-byte boundary": entry[: len(entry) - 8],
        "one byte flipped": entry[:middle] + bytes([entry[middle] ^ 0x01]) + entry[middle + 1 :],
        "extended": entry + b"\0" * 16,
        "header only": entry[: HEADER.size],
        "empty": b"",
        "a bare Arrow file (no header)": bare.getvalue(),
    }


@pytest.mark.parametrize("damage", list(_damages(b"x" * 64, pl.DataFrame({"KMID": [1.0]}))))
def test_a_damaged_entry_is_a_miss_and_is_rebuilt(qlib_dir: Path, tmp_path: Path, damage: str) -> None:
    from hikyuu_qlib.stores.qlib.store import QlibStore

    store = QlibStore.open(qlib_dir)
    cache = disk_cache(tmp_path)
    universe = Universe.from_codes(["SH600000", "SZ000001"])
    dates = DateRange.of("2019-01-01", "2019-02-28")
    first = compute_features(store, universe, dates, cache=cache)
    (entry,) = entries(tmp_path)
    intact = entry.read_bytes()
    entry.write_bytes(_damages(intact, first)[damage])
    again = compute_features(store, universe, dates, cache=cache)
    assert again.equals(first)
    assert cache.counters().tiers[cache.disk.usage().tier].corrupt == 1  # type: ignore[union-attr]
    assert cache.counters().computed == 2  # the damaged file was never served
    assert entry.read_bytes() == intact  # rebuilt intact


def test_the_disk_tier_stays_within_its_bound(tmp_path: Path) -> None:
    frame = pl.DataFrame({"x": pl.arange(0, 50_000, eager=True).cast(pl.Float64)})
    tier = DiskTier(tmp_path, max_bytes=1_000_000)
    for i in range(6):
        tier.put(f"frames:{i:040d}", frame, FRAME)
    usage = tier.usage()
    assert usage.bytes <= 1_000_000 and usage.entries == 2  # 400 kB each: the two most recent stay
    assert tier.get(f"frames:{5:040d}", FRAME).equals(frame)
    assert tier.get(f"frames:{0:040d}", FRAME) is None
