"""What the cache stores: a damaged value under a real key (garbage, a pickle, another schema version) is
a miss and is deleted; L1 stays within its byte bound; every Redis key carries a TTL; no pickle anywhere."""

from __future__ import annotations

import io
import pickle
import re
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
import redis
from tests.cache_support import drop_prefix, unique_prefix

from hikyuu_qlib.app import open_cache, open_market, open_registry
from hikyuu_qlib.cache.codec import FRAME
from hikyuu_qlib.cache.envelope import Encoding, seal
from hikyuu_qlib.cache.keys import bars_key, features_key
from hikyuu_qlib.cache.memory import MemoryTier
from hikyuu_qlib.cache.tiered import TieredCache
from hikyuu_qlib.cache.values import LOAD_RESULT
from hikyuu_qlib.domain import Adjust, DateRange, KType
from hikyuu_qlib.domain.cache import CacheKey, Tier
from hikyuu_qlib.domain.model import Model
from hikyuu_qlib.settings import Settings

REPO = Path(__file__).resolve().parents[2]
CODES = ["SH600000", "SZ000001"]


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    name = unique_prefix("values")
    yield name
    drop_prefix(redis_url, name)


def _stream(frame: pl.DataFrame) -> bytes:
    out = io.BytesIO()
    frame.write_ipc_stream(out)
    return out.getvalue()


def _damaged(kind: str, frame: pl.DataFrame) -> bytes:
    if kind == "garbage":
        return b"\x00\xffnot a cached value" * 10
    if kind == "pickle":
        return pickle.dumps({"frame": frame.to_dict(as_series=False)})
    # a well-formed value of the next schema version (a newer release's format)
    return seal(LOAD_RESULT.name, LOAD_RESULT.schema + 1, Encoding.ARROW_STREAM, _stream(frame))


@pytest.mark.parametrize("kind", ["garbage", "pickle", "schema"])
def test_a_damaged_redis_value_under_a_real_key_is_a_miss_and_deleted(
    qlib_dir: Path, tmp_path: Path, redis_url: str, prefix: str, kind: str
) -> None:
    settings = Settings(home=tmp_path, cache_url=redis_url, cache_key_prefix=prefix, cache_memory_bytes=0)
    cache = open_cache(settings)
    with open_market(f"qlib:{qlib_dir}", settings=settings, cache=cache) as md:
        key = bars_key(md.store.source, md.store.data_version(), CODES, KType.DAY, Adjust.NONE, None)
        client = redis.Redis.from_url(redis_url)
        client.set(prefix + key.name, _damaged(kind, pl.DataFrame({"x": [1.0]})), px=60_000)
        assert cache.get(key, LOAD_RESULT) is None  # a miss …
        assert not client.exists(prefix + key.name)  # … and deleted
        assert cache.counters().tiers[Tier.REDIS].corrupt == 1
        client.set(prefix + key.name, _damaged(kind, pl.DataFrame({"x": [1.0]})), px=60_000)
        frame = md.bars(CODES)  # the request computes the real bars and stores them intact
        assert frame.columns[:2] == ["code", "datetime"] and frame.height > 1000
        assert md.bars(CODES).equals(frame) and cache.counters().tiers[Tier.REDIS].hits == 1
        client.close()
    cache.close()


@pytest.mark.parametrize("kind", ["garbage", "pickle", "schema"])
def test_a_damaged_disk_value_under_a_real_key_is_a_miss_and_deleted(tmp_path: Path, kind: str) -> None:
    cache = open_cache(Settings(home=tmp_path, cache_memory_bytes=0))
    key = features_key(
        "qlib:/x",
        "1",
        universe="u",
        factor_set="alpha158",
        engine="e",
        dates=DateRange.of("2020-01-01", "2020-02-01"),
        label=True,
    )
    assert cache.disk is not None
    path = cache.disk.path(key.name)
    path.parent.mkdir(parents=True)
    frame = pl.DataFrame({"x": [1.0, 2.0]})
    data = _damaged(kind, frame)
    if kind == "schema":
        file = io.BytesIO()
        frame.write_ipc(file)
        data = seal(FRAME.name, FRAME.schema + 1, Encoding.ARROW_FILE, file.getvalue())
    path.write_bytes(data)
    assert cache.get(key, FRAME) is None and not path.exists()
    assert cache.counters().tiers[Tier.DISK].corrupt == 1
    assert cache.get_or_compute(key, lambda: frame, FRAME).equals(frame)
    assert cache.get(key, FRAME).equals(frame)  # type: ignore[union-attr]


def test_l1_stays_within_its_byte_bound() -> None:
    bound = 2_000_000
    cache = TieredCache(memory=MemoryTier(bound))
    frames = [pl.DataFrame({"x": pl.arange(i, i + 25_000, eager=True).cast(pl.Float64)}) for i in range(40)]
    keys = [CacheKey.of("evict", source="t", data_version="1", schema=1, params={"i": i}) for i in range(40)]
    assert cache.memory is not None
    for key, frame in zip(keys, frames, strict=True):
        cache.put(key, frame, FRAME)
        assert cache.memory.nbytes <= bound
    assert 0 < len(cache.memory) < 40
    assert cache.get(keys[-1], FRAME).equals(frames[-1])  # type: ignore[union-attr]
    assert cache.get(keys[0], FRAME) is None  # the least recently used went first
    huge = pl.DataFrame({"x": pl.arange(0, 1_000_000, eager=True).cast(pl.Float64)})
    cache.put(keys[0], huge, FRAME)  # larger than the bound: not kept
    assert cache.get(keys[0], FRAME) is None and cache.memory.nbytes <= bound


def test_every_redis_key_has_a_ttl(qlib_dir: Path, tmp_path: Path, redis_url: str, prefix: str) -> None:
    settings = Settings(home=tmp_path, cache_url=redis_url, cache_key_prefix=prefix, cache_ttl_s=600)
    cache = open_cache(settings)
    with open_market(f"qlib:{qlib_dir}", settings=settings, cache=cache) as md:
        md.bars(CODES, start="2016-01-01")
        md.stocks()
    with open_registry(f"sqlite:///{tmp_path / 'r.db'}", settings=settings, sync=True, cache=cache) as reg:
        model = reg.save(Model.new("ttl", "lightgbm"))
        reg.get(model.id)
        reg.resolve(model.id[:6])
    assert cache.redis is not None
    ttls = cache.redis.ttls()
    assert {name.split(":")[3] for name in ttls} >= {"bars", "stocks", "model", "model-prefix", "gen"}
    assert all(0 < ttl <= 600_000 for ttl in ttls.values()), ttls
    cache.close()


def test_nothing_is_pickled() -> None:
    uses = [
        f"{path.relative_to(REPO)}:{n}"
        for path in sorted((REPO / "src").rglob("*.py"))
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if PICKLING.search(line)
    ]
    assert uses == []


PICKLING = re.compile(
    r"^\s*(import|from)\s+(c?pickle|dill|cloudpickle|joblib|marshal|shelve)\b"  # the modules
    r"|\b(c?pickle|dill|cloudpickle|joblib|marshal|shelve)\.\w+\("  # their calls
    r"|allow_pickle\s*=\s*True|read_pickle|to_pickle"  # numpy's and pandas' pickling
)


def test_the_scan_finds_pickling() -> None:
    for line in (
        "import pickle",
        "from pickle import loads",
        "x = pickle.loads(b)",
        "np.load(p, allow_pickle=True)",
    ):
        assert PICKLING.search(line), line
    assert not PICKLING.search("a pickled object is refused (docstring)")
