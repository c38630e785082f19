"""Suite ``cache``: the cache tiers against their source, on the real Qlib store and the real Redis.

1. Bar query, 100 CSI300 stocks × 6 years (2015–2020): the store (an uncached client) against the warm
   L1 of the same client (p50 of each; goal L1 ≤ 0.5 ms), and L2 read by another process whose L1 is off
   (p50; goal ≤ 15 ms).
2. Alpha158 + label, CSI300 2010–2020: the cold build (a fresh process, no cache) against the warm L3
   read in another fresh process (goal ratio ≥ 20, Qlib's dataset cache against its own cold build).
3. Model record get: the registry (SQLite, PostgreSQL) against the cached get (with Redis, and embedded
   without Redis), p50 of each.
4. ``hq run`` of the example workflow, then again with ``--force`` (only the model is retrained): the
   re-run's cache counters (hit ratio) and the time saved.
5. Stampede: 100 concurrent identical requests (threads and tasks in 4 processes) — the number of source
   computations (goal 1).

Redis keys use a prefix of their own, deleted at the end. ``--quick``: fewer repetitions, Alpha158 over
one year, the workflow over shortened segments.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import REPO, Result, data_root

log = logging.getLogger("bench.cache")
REDIS_URL = os.environ.get("HQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PG_URL = os.environ.get("HQ_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
EXAMPLE = REPO / "examples" / "workflow_lightgbm_alpha158_csi300.yaml"
BARS = ("2015-01-01", "2020-12-31")


def _env(home: Path, prefix: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HQ_")}
    env.update({"HQ_HOME": str(home), "HQ_CACHE_URL": REDIS_URL, "HQ_CACHE_KEY_PREFIX": prefix, **extra})
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO / "benchmarks")])
    return env


def _worker(env: dict[str, str], *args: str, timeout: float = 3600) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "worker", *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0:
        raise RuntimeError(f"worker {args[0]} failed:\n{proc.stderr[-3000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def _p50(samples: list[float]) -> float:
    return statistics.median(samples)


# --- workers (each in a fresh process) ---------------------------------------------------------------


def _codes(store: Any) -> list[str]:
    members = store.members("csi300")
    return sorted(members["code"].unique().to_list())[:100]


def worker_bars_l2(repeat: int) -> dict[str, Any]:
    """p50 of bar queries served by L2 (this process's L1 is off)."""
    from hikyuu_qlib.app import open_cache, open_market
    from hikyuu_qlib.settings import load_settings

    settings = load_settings().model_copy(update={"cache_memory_bytes": 0})
    cache = open_cache(settings)
    with open_market(f"qlib:{data_root() / 'qlib_cn'}", settings=settings, cache=cache) as md:
        codes = _codes(md.store)
        samples = []
        for _ in range(repeat):
            started = time.perf_counter()
            md.bars(codes, start=BARS[0], end=BARS[1])
            samples.append(time.perf_counter() - started)
    counters = cache.counters()
    return {
        "p50_s": _p50(samples),
        "l2_hits": counters.tiers[_tier("l2")].hits,
        "computed": counters.computed,
    }


def _tier(name: str) -> Any:
    from hikyuu_qlib.domain.cache import Tier

    return Tier.parse(name)


def worker_features(mode: str, start: str, end: str) -> dict[str, Any]:
    """``cold``: Alpha158 + label built without a cache, then stored in L3 (untimed); ``warm``: the same
    call through the cache, in a new process."""
    from hikyuu_qlib.app import open_cache, open_store
    from hikyuu_qlib.domain import DateRange
    from hikyuu_qlib.factors.pipeline import compute_features
    from hikyuu_qlib.factors.universe import Universe
    from hikyuu_qlib.settings import load_settings

    settings = load_settings()
    cache = open_cache(settings)
    store = open_store(f"qlib:{data_root() / 'qlib_cn'}", settings=settings)
    dates = DateRange.of(start, end)
    universe = Universe.from_store(store, "csi300", dates)  # type: ignore[arg-type]
    started = time.perf_counter()
    frame = compute_features(store, universe, dates, cache=None if mode == "cold" else cache)  # type: ignore[arg-type]
    seconds = time.perf_counter() - started
    if mode == "cold":
        from hikyuu_qlib.cache.codec import FRAME
        from hikyuu_qlib.cache.keys import features_key
        from hikyuu_qlib.factors.pipeline import ENGINE_VERSION

        key = features_key(
            store.source,
            store.data_version(),
            universe=universe.fingerprint(),
            factor_set="alpha158",
            engine=ENGINE_VERSION,
            dates=dates,
            label=True,
        )
        cache.put(key, frame, FRAME)
    counters = cache.counters()
    cache.close()
    return {
        "seconds": seconds,
        "rows": frame.height,
        "columns": frame.width,
        "l3_hits": counters.tiers[_tier("l3")].hits,
        "computed": counters.computed,
    }


def worker_stampede(start_at: float, threads: int, tasks: int) -> dict[str, Any]:
    import asyncio
    import threading

    import polars as pl
    import redis

    from hikyuu_qlib.app import open_cache
    from hikyuu_qlib.cache.codec import FRAME
    from hikyuu_qlib.domain.cache import CacheKey
    from hikyuu_qlib.settings import load_settings

    settings = load_settings()
    counter = redis.Redis.from_url(REDIS_URL)
    name = settings.cache_key_prefix + "bench-computations"
    cache = open_cache(settings)
    key = CacheKey.of("stampede", source="bench", data_version="1", schema=1, params={"run": start_at})

    def compute() -> pl.DataFrame:
        counter.incr(name)
        counter.pexpire(name, 600_000)
        time.sleep(0.5)
        return pl.DataFrame({"x": list(range(1000))})

    async def acompute() -> pl.DataFrame:
        return await asyncio.to_thread(compute)

    results: list[int] = []
    time.sleep(max(0.0, start_at - time.time()))
    pool = [
        threading.Thread(target=lambda: results.append(cache.get_or_compute(key, compute, FRAME).height))
        for _ in range(threads)
    ]
    for t in pool:
        t.start()

    async def gather() -> list[pl.DataFrame]:
        return await asyncio.gather(*(cache.aget_or_compute(key, acompute, FRAME) for _ in range(tasks)))

    results.extend(f.height for f in asyncio.run(gather()))
    for t in pool:
        t.join()
    return {"answered": len(results), "computed": cache.counters().computed}


# --- scenarios ---------------------------------------------------------------------------------------


def bars(quick: bool, home: Path, prefix: str) -> list[Result]:
    from hikyuu_qlib.app import open_cache, open_market
    from hikyuu_qlib.settings import Settings

    settings = Settings(home=home, cache_url=REDIS_URL, cache_key_prefix=prefix)
    source = f"qlib:{data_root() / 'qlib_cn'}"
    cache = open_cache(settings)
    with (
        open_market(source, settings=settings) as plain,
        open_market(source, settings=settings, cache=cache) as md,
    ):
        codes = _codes(plain.store)
        plain.bars(codes, start=BARS[0], end=BARS[1])  # the page cache holds the bins for both
        source_samples = []
        for _ in range(5 if quick else 15):
            started = time.perf_counter()
            frame = plain.bars(codes, start=BARS[0], end=BARS[1])
            source_samples.append(time.perf_counter() - started)
        assert md.bars(codes, start=BARS[0], end=BARS[1]).equals(frame)
        l1 = []
        for _ in range(100 if quick else 1000):
            started = time.perf_counter()
            md.bars(codes, start=BARS[0], end=BARS[1])
            l1.append(time.perf_counter() - started)
    cache.close()
    l2 = _worker(_env(home, prefix), "bars_l2", str(20 if quick else 100))
    src, hit1, hit2 = _p50(source_samples), _p50(l1), l2["p50_s"]
    shape = {"codes": len(codes), "rows": frame.height, "dates": f"{BARS[0]}:{BARS[1]}"}
    return [
        Result(
            "bar query 100 CSI300 × 6 y: warm L1 vs the store (p50)",
            hit1,
            "the store, uncached client (p50)",
            src,
            extra={**shape, "l1_p50_ms": round(hit1 * 1e3, 4), "goal_ms": 0.5, "goal_met": hit1 <= 0.0005},
        ),
        Result(
            "bar query 100 CSI300 × 6 y: L2 (Redis) from another process vs the store (p50)",
            hit2,
            "the store, uncached client (p50)",
            src,
            extra={
                **shape,
                "l2_p50_ms": round(hit2 * 1e3, 3),
                "goal_ms": 15.0,
                "goal_met": hit2 <= 0.015,
                "l2_hits": l2["l2_hits"],
                "computed_in_reader": l2["computed"],
            },
        ),
    ]


def features(quick: bool, home: Path, prefix: str) -> list[Result]:
    start, end = ("2019-01-01", "2019-12-31") if quick else ("2010-01-01", "2020-12-31")
    env = _env(home, prefix)
    cold = _worker(env, "features", "cold", start, end)
    warm = min((_worker(env, "features", "warm", start, end) for _ in range(2)), key=lambda r: r["seconds"])
    return [
        Result(
            f"Alpha158 + label CSI300 {start[:4]}–{end[:4]}: warm L3 read in a new process vs cold build",
            warm["seconds"],
            "cold build in a new process (no cache)",
            cold["seconds"],
            goal_ratio=20.0,
            extra={
                "rows": cold["rows"],
                "columns": cold["columns"],
                "l3_hits": warm["l3_hits"],
                "computed_when_warm": warm["computed"],
                "goal_met": warm["computed"] == 0,
            },
        )
    ]


def records(quick: bool, home: Path, prefix: str) -> list[Result]:
    from hikyuu_qlib.app import open_cache, open_registry
    from hikyuu_qlib.domain.model import Model
    from hikyuu_qlib.settings import Settings

    n = 500 if quick else 3000
    out: list[Result] = []
    backends = {"sqlite": f"sqlite:///{home / 'bench-registry.db'}", "postgresql": PG_URL}
    for backend, url in backends.items():
        for mode, redis_url in (("redis", REDIS_URL), ("embedded", None)):
            settings = Settings(home=home / mode, cache_url=redis_url, cache_key_prefix=prefix)
            cache = open_cache(settings)
            with open_registry(url, settings=settings, sync=True) as plain:
                model = plain.save(Model.new("bench-cache", "lightgbm", status="trained"))
                with open_registry(url, settings=settings, sync=True, cache=cache) as cached:
                    runs: dict[str, list[float]] = {"registry": [], "cached": []}
                    for reg, name in ((plain, "registry"), (cached, "cached")):
                        reg.get(model.id)
                        for _ in range(n):
                            started = time.perf_counter()
                            reg.get(model.id)
                            runs[name].append(time.perf_counter() - started)
                plain.delete(model.id)
            cache.close()
            ours, anchor = _p50(runs["cached"]), _p50(runs["registry"])
            out.append(
                Result(
                    f"model record get ({backend}): cached ({mode}) vs the registry (p50)",
                    ours,
                    f"{backend} registry get (p50)",
                    anchor,
                    extra={"cached_p50_us": round(ours * 1e6, 2), "registry_p50_us": round(anchor * 1e6, 2)},
                )
            )
    return out


def workflow(quick: bool, home: Path, prefix: str) -> list[Result]:
    runs = home / "runs"
    env = _env(
        home,
        prefix,
        HQ_QLIB_DIR=str(data_root() / "qlib_cn"),
        HQ_RUNS_DIR=str(runs),
        HQ_DATABASE_URL=f"sqlite:///{home / 'workflow.db'}",
    )
    if quick:
        env.update(
            HQ_TRAIN="2016-01-01:2016-12-31",
            HQ_VALID="2017-01-01:2017-06-30",
            HQ_TEST="2017-07-01:2017-12-31",
        )
    docs = []
    for extra in ([], ["--force"]):
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "hikyuu_qlib", "run", str(EXAMPLE), "--format", "json", *extra],
            env=env,
            capture_output=True,
            text=True,
            timeout=7200,
            cwd=REPO,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"hq run failed:\n{proc.stderr[-3000:]}")
        doc = json.loads(proc.stdout)
        doc["wall_s"] = time.perf_counter() - started
        docs.append(doc)
    first, again = docs
    return [
        Result(
            "hq run example workflow: re-run with --force (model retrained) vs the first run",
            again["wall_s"],
            "first run (empty cache)",
            first["wall_s"],
            extra={
                "time_saved_s": round(first["wall_s"] - again["wall_s"], 2),
                "rerun_cache": again["cache"],
                "rerun_hit_ratio": again["cache"]["hit_ratio"],
                "first_timings": first["timings"],
                "rerun_timings": again["timings"],
                "retrained": not again["reused_model"],
                "quick_segments": quick,
            },
        )
    ]


def stampede(quick: bool, home: Path, prefix: str) -> list[Result]:
    import redis

    start_at = time.time() + 4.0
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "worker", "stampede", str(start_at), "13", "12"],
            env=_env(home, prefix),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        if p.returncode != 0:
            raise RuntimeError(err[-3000:])
        outs.append(json.loads(out.strip().splitlines()[-1]))
    client = redis.Redis.from_url(REDIS_URL)
    count = int(client.get(prefix + "bench-computations") or 0)
    client.close()
    return [
        Result(
            "stampede: 100 concurrent identical requests (threads + tasks in 4 processes)",
            time.perf_counter() - started,
            "goal: one source computation",
            extra={
                "computations": count,
                "answered": sum(o["answered"] for o in outs),
                "goal_met": count == 1,
            },
        )
    ]


def run(quick: bool) -> list[Result]:
    import redis

    prefix = f"hqbench:{uuid.uuid4().hex[:8]}:"
    results: list[Result] = []
    try:
        with tempfile.TemporaryDirectory(prefix="hq-bench-cache-") as tmp:
            home = Path(tmp)
            for scenario in (bars, features, records, workflow, stampede):
                log.info("scenario %s", scenario.__name__)
                results.extend(scenario(quick, home / scenario.__name__, prefix))
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
    return results


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "worker":
    kind, args = sys.argv[2], sys.argv[3:]
    if kind == "bars_l2":
        doc = worker_bars_l2(int(args[0]))
    elif kind == "features":
        doc = worker_features(*args)
    elif kind == "stampede":
        doc = worker_stampede(float(args[0]), int(args[1]), int(args[2]))
    else:
        raise SystemExit(f"unknown worker {kind}")
    print(json.dumps(doc))
