"""Suite ``observability``: what metrics and tracing cost, on against off, in the same run.

- Registry ``get`` p50 (sync facade, and the async repository's point read) on a SQLite registry of 10 k
  models: one registry without telemetry and one recording Prometheus metrics, over the same file, timed
  alternately per id; each one's best p50 of ``ROUNDS`` rounds. Goal: metrics on cost at most 5 % more
  (ratio off/on ≥ 1/1.05).
- The bar query of the data suite (100 CSI300 stocks × 6 years from the Qlib store, ``load_many``):
  a client without telemetry and one recording metrics, alternately, best of ``ROUNDS``. Same goal.
- For information: the same gets with tracing on (spans to a JSON-lines file), no goal.

Tracing switched off costs nothing beyond the disabled path measured as "off" (no span object is made).
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from common import Result, data_root, work_dir
from hikyuu_qlib.domain.model import Model
from hikyuu_qlib.observability.metrics import PrometheusMetrics
from hikyuu_qlib.observability.telemetry import Telemetry
from hikyuu_qlib.observability.tracing import Tracing
from hikyuu_qlib.registry import AsyncModelRepository, ModelRegistry

ROUNDS = 7
OVERHEAD_GOAL = 1 / 1.05  # ratio off/on: metrics on cost at most 5 % more


def run(quick: bool) -> list[Result]:
    results = registry_gets(2_000 if quick else 10_000)
    results += bar_query(quick)
    return results


def _fill(path: Path, total: int) -> list[str]:
    with ModelRegistry(f"sqlite:///{path}") as reg:
        have = reg.count()
        if have < total:
            reg.save_many(
                [Model.new(f"bench-{i % 20}", "lightgbm", tags={"i": str(i)}) for i in range(have, total)]
            )
        return [m.id for m in reg.find(limit=1000).items]


def _alternating(contenders: dict[str, Any], ids: list[str]) -> dict[str, float]:
    """Each contender's best p50 over the rounds, timed alternately per id (the order turned every id, so
    that none always runs first)."""
    best = dict.fromkeys(contenders, float("inf"))
    order = list(contenders.items())
    for _ in range(ROUNDS):
        samples: dict[str, list[float]] = {k: [] for k in contenders}
        for n, i in enumerate(ids):
            for name, get in order[n % len(order) :] + order[: n % len(order)]:
                t = time.perf_counter()
                get(i)
                samples[name].append(time.perf_counter() - t)
        for name, values in samples.items():
            best[name] = min(best[name], statistics.median(values))
    return best


def registry_gets(total: int) -> list[Result]:
    path = work_dir() / f"observability-registry-{total}.db"
    ids = _fill(path, total)
    url = f"sqlite:///{path}"
    metrics = PrometheusMetrics("bench")
    traces = Path(tempfile.mkdtemp()) / "spans.jsonl"
    tracing = Tracing.from_env({"OTEL_TRACES_EXPORTER": "jsonl"}, traces_file=traces)
    off = ModelRegistry(url).open()
    on = ModelRegistry(url, telemetry=Telemetry(metrics)).open()
    traced = ModelRegistry(url, telemetry=Telemetry(metrics, tracing)).open()
    try:
        for reg in (off, on, traced):
            for i in ids[:100]:
                reg.get(i)
        sync = _alternating({"off": off.get, "on": on.get, "traced": traced.get}, ids)
    finally:
        for reg in (off, on, traced):
            reg.close()
    asynchronous = asyncio.run(_async_gets(url, ids, metrics))
    tracing.shutdown()
    return [
        _overhead(f"sqlite registry get p50 ({total // 1000}k), metrics on vs off", sync,
                  traced_p50_s=sync["traced"]),
        _overhead(f"sqlite async registry get p50 ({total // 1000}k), metrics on vs off", asynchronous),
    ]  # fmt: skip


async def _async_gets(url: str, ids: list[str], metrics: PrometheusMetrics) -> dict[str, float]:
    off = await AsyncModelRepository(url).open()
    on = await AsyncModelRepository(url, telemetry=Telemetry(metrics)).open()
    best = {"off": float("inf"), "on": float("inf")}
    try:
        for repo in (off, on):
            for i in ids[:100]:
                await repo.get(i)
        for _ in range(ROUNDS):
            samples: dict[str, list[float]] = {"off": [], "on": []}
            for n, i in enumerate(ids):
                for name, repo in (("off", off), ("on", on)) if n % 2 else (("on", on), ("off", off)):
                    t = time.perf_counter()
                    await repo.get(i)
                    samples[name].append(time.perf_counter() - t)
            for name, values in samples.items():
                best[name] = min(best[name], statistics.median(values))
    finally:
        await off.close()
        await on.close()
    return best


def _overhead(name: str, best: dict[str, float], **extra: Any) -> Result:
    result = Result(
        name,
        best["on"],
        "metrics off",
        best["off"],
        goal_ratio=round(OVERHEAD_GOAL, 4),
        extra={"overhead_pct": round((best["on"] / best["off"] - 1) * 100, 2), **extra},
    )
    return result


def bar_query(quick: bool) -> list[Result]:
    from hikyuu_qlib.app import open_market
    from hikyuu_qlib.settings import Settings

    qlib_dir = data_root() / "qlib_cn"
    settings = Settings(source=f"qlib:{qlib_dir}", home=work_dir() / "home")
    six = ("2019-01-01", "2020-12-31") if quick else ("2015-01-01", "2020-12-31")
    metrics = PrometheusMetrics("bench")
    with (
        open_market(settings=settings) as off,
        open_market(settings=settings, telemetry=Telemetry(metrics)) as on,
    ):
        codes = _codes(off.store, 100)
        best = {"off": float("inf"), "on": float("inf")}
        for n in range(ROUNDS):
            for name, md in (("off", off), ("on", on)) if n % 2 else (("on", on), ("off", off)):
                t = time.perf_counter()
                frame = md.load_many(codes, start=six[0], end=six[1]).raise_for_errors()
                best[name] = min(best[name], time.perf_counter() - t)
    return [_overhead(f"qlib 100 csi300 stocks x {six[0][:4]}-{six[1][:4]} bars, metrics on vs off", best,
                      rows=frame.height)]  # fmt: skip


def _codes(store: Any, n: int) -> list[str]:
    from hikyuu_qlib import DateRange

    stored = set(store.stocks(valid=None)["code"].to_list())
    members = store.members("csi300", DateRange.of("2015-01-01", "2020-12-31"))["code"].unique().sort()
    return [c for c in members.to_list() if c in stored][:n]
