"""The cache on real Redis: a hit is an equal frame from the nearest tier; a store changed by one
appended day is a new key; saving or promoting a model invalidates its cached record in another process."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.cache_support import drop_prefix, settings_env, unique_prefix

from hikyuu_qlib.app import open_cache, open_market, open_registry
from hikyuu_qlib.cache.tiered import TieredCache
from hikyuu_qlib.domain.cache import Tier
from hikyuu_qlib.domain.model import Model
from hikyuu_qlib.settings import Settings

REPO = Path(__file__).resolve().parents[2]
CODES = ["SH600000", "SH600036", "SZ000001"]


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    name = unique_prefix("hits")
    yield name
    drop_prefix(redis_url, name)


def _settings(tmp_path: Path, redis_url: str | None, prefix: str, **extra: object) -> Settings:
    return Settings(home=tmp_path / "home", cache_url=redis_url, cache_key_prefix=prefix, **extra)  # type: ignore[arg-type]


def test_a_hit_is_an_equal_frame_from_each_tier(
    qlib_dir: Path, tmp_path: Path, redis_url: str, prefix: str
) -> None:
    settings = _settings(tmp_path, redis_url, prefix)
    cache = open_cache(settings)
    with open_market(f"qlib:{qlib_dir}", settings=settings, cache=cache) as md:
        source = md.bars(CODES, start="2015-01-01", end="2016-12-31")
        assert cache.counters().computed == 1 and cache.counters().tiers[Tier.REDIS].writes == 1
        assert md.bars(list(reversed(CODES)), start="2015-01-01", end="2016-12-31").equals(source)
        assert cache.counters().tiers[Tier.MEMORY].hits == 1
        stocks = md.stocks()
        assert md.stocks().equals(stocks) and cache.counters().computed == 2
    other = open_cache(settings)  # another process's cache: empty L1, the same Redis
    with open_market(f"qlib:{qlib_dir}", settings=settings, cache=other) as md:
        assert md.bars(CODES, start="2015-01-01", end="2016-12-31").equals(source)
        assert md.load_many(CODES, start="2015-01-01", end="2016-12-31").frame.equals(source)
    counted = other.counters()
    assert (
        counted.computed == 0 and counted.tiers[Tier.REDIS].hits == 1 and counted.tiers[Tier.MEMORY].hits == 1
    )
    cache.close()
    other.close()


def test_a_result_with_errors_is_not_cached(
    qlib_dir: Path, tmp_path: Path, redis_url: str, prefix: str
) -> None:
    settings = _settings(tmp_path, redis_url, prefix)
    cache = open_cache(settings)
    with open_market(f"qlib:{qlib_dir}", settings=settings, cache=cache) as md:
        for _ in range(2):
            result = md.load_many(["SH600000", "SH999999"], start="2016-01-01", end="2016-03-31")
            assert set(result.errors) == {"SH999999"} and result.frame.height > 0
    assert cache.counters().computed == 2 and cache.counters().tiers[Tier.REDIS].writes == 0
    cache.close()


def _copy_store(qlib_dir: Path, target: Path) -> Path:
    (target / "features").mkdir(parents=True)
    shutil.copytree(qlib_dir / "calendars", target / "calendars")
    shutil.copytree(qlib_dir / "instruments", target / "instruments")
    for code in CODES:
        shutil.copytree(qlib_dir / "features" / code.lower(), target / "features" / code.lower())
    return target


def _append_a_day(store: Path) -> str:
    """One more trading day: the calendar's next weekday and a value in every bin of every code."""
    import datetime as dt

    days = (store / "calendars" / "day.txt").read_text().split()
    nxt = dt.date.fromisoformat(days[-1]) + dt.timedelta(days=1)
    while nxt.weekday() >= 5:
        nxt += dt.timedelta(days=1)
    with (store / "calendars" / "day.txt").open("a") as f:
        f.write(f"{nxt.isoformat()}\n")
    for code in CODES:
        for path in (store / "features" / code.lower()).glob("*.day.bin"):
            last = path.read_bytes()[-4:]
            with path.open("ab") as f:
                f.write(last if path.name != "change.day.bin" else struct.pack("<f", 0.0))
    return nxt.isoformat()


def test_appending_a_day_changes_the_key(qlib_dir: Path, tmp_path: Path, redis_url: str, prefix: str) -> None:
    store = _copy_store(qlib_dir, tmp_path / "qlib")
    settings = _settings(tmp_path, redis_url, prefix, cache_version_check_s=0)
    cache = open_cache(settings)
    with open_market(f"qlib:{store}", settings=settings, cache=cache) as md:
        before = md.bars(CODES)
        assert md.bars(CODES).equals(before) and cache.counters().computed == 1
        day = _append_a_day(store)
        after = md.bars(CODES)
    assert cache.counters().computed == 2  # a new data version: a new key, never the stale frame
    assert after.height == before.height + len(CODES)
    assert after["datetime"].max().date().isoformat() == day
    cache.close()


def _hq(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    full = {**{k: v for k, v in os.environ.items() if not k.startswith("HQ_")}, **env}
    full["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), full.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "hikyuu_qlib", *args], env=full, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("shared", ["redis", "embedded"])
def test_saving_or_promoting_in_another_process_invalidates_the_cached_record(
    tmp_path: Path, redis_url: str, prefix: str, shared: str
) -> None:
    url = redis_url if shared == "redis" else None
    db = f"sqlite:///{tmp_path / 'registry.db'}"
    settings = _settings(tmp_path, url, prefix)
    cache = open_cache(settings)
    with open_registry(db, settings=settings, sync=True, cache=cache) as reg:
        model = reg.save(Model.new("cached", "lightgbm", status="trained"))
        assert reg.get(model.id).status.value == "trained"
        assert reg.resolve(model.id[:10].lower()) == model.id
        computed = cache.counters().computed
        assert reg.get(model.id) == reg.get(model.id) and cache.counters().computed == computed  # hits
        env = {**settings_env(tmp_path / "home", url, prefix), "HQ_DATABASE_URL": db}
        proc = _hq(env, "model", "promote", model.id, "--to", "deployed", "--format", "json")
        assert proc.returncode == 0, proc.stderr
        assert reg.get(model.id).status.value == "deployed"  # the other process's write is seen
        proc = _hq(env, "model", "rm", model.id, "--format", "json")
        assert proc.returncode == 0, proc.stderr
        from hikyuu_qlib.domain.errors import ModelNotFoundError

        with pytest.raises(ModelNotFoundError):
            reg.get(model.id)
        # a save in this process is seen by another process's cache too
        second = reg.save(Model.new("second", "lightgbm"))
        other = open_cache(settings)
        with open_registry(db, settings=settings, sync=True, cache=other) as reader:
            assert reader.get(second.id).name == "second"
            reg.save(second.with_tags({"note": "changed"}))
            assert reader.get(second.id).tags == {"note": "changed"}
        other.close()
    cache.close()


def test_async_repository_shares_the_record_keys(tmp_path: Path, redis_url: str, prefix: str) -> None:
    import asyncio

    db = f"sqlite:///{tmp_path / 'registry.db'}"
    settings = _settings(tmp_path, redis_url, prefix)
    cache = open_cache(settings)

    async def main() -> None:
        async with open_registry(db, settings=settings, cache=cache) as repo:
            model = await repo.save(Model.new("async", "lightgbm", status="trained"))
            assert (await repo.get(model.id)).status.value == "trained"
            with open_registry(db, settings=settings, sync=True, cache=open_cache(settings)) as reg:
                reg.transition(model.id, "deployed")
            assert (await repo.get(model.id)).status.value == "deployed"
            assert await repo.resolve(model.id[:8]) == model.id

    asyncio.run(main())
    cache.close()


def test_hq_cache_commands(tmp_path: Path, redis_url: str, prefix: str, qlib_dir: Path) -> None:
    settings = _settings(tmp_path, redis_url, prefix)
    cache: TieredCache = open_cache(settings)
    with open_market(f"qlib:{qlib_dir}", settings=settings, cache=cache) as md:
        md.bars(CODES, start="2016-01-01", end="2016-12-31")
        md.bars(CODES, start="2016-01-01", end="2016-12-31")
    cache.close()  # records its counters
    env = settings_env(tmp_path / "home", redis_url, prefix)
    stats = json.loads(_hq(env, "cache", "stats", "--format", "json").stdout)
    tiers = {t["tier"]: t for t in stats["tiers"]}
    assert tiers["l2"]["available"] and tiers["l2"]["entries"] == 1 and tiers["l2"]["bytes"] > 0
    assert stats["counters"]["requests"] == 2 and stats["counters"]["computed"] == 1
    assert stats["counters"]["tiers"]["l1"]["hits"] == 1
    proc = _hq(env, "cache", "clear", "--tier", "l2", "--format", "json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["cleared"] == {"l2": 1}
    stats = json.loads(_hq(env, "cache", "stats", "--format", "json").stdout)
    assert {t["tier"]: t for t in stats["tiers"]}["l2"]["entries"] == 0
    bad = _hq(env, "cache", "clear", "--tier", "l9", "--format", "json")
    assert bad.returncode == 2 and "unknown cache tier" in json.loads(bad.stdout)["error"]["message"]
    down = {**env, "HQ_CACHE_URL": "redis://127.0.0.1:1/0"}
    proc = _hq(down, "cache", "stats", "--format", "json")
    assert (
        proc.returncode == 0
        and not {t["tier"]: t for t in json.loads(proc.stdout)["tiers"]}["l2"]["available"]
    )
