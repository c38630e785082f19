"""Registry operations are timed, counted by operation, backend and status, and their retries counted."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from hikyuu_qlib.domain.errors import ModelNotFoundError
from hikyuu_qlib.domain.model import Model
from hikyuu_qlib.observability.metrics import PrometheusMetrics
from hikyuu_qlib.observability.telemetry import Telemetry
from hikyuu_qlib.registry import AsyncModelRepository, ModelRegistry
from hikyuu_qlib.registry.retry import RetryPolicy, retry_sync


def value(metrics: PrometheusMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_sync_and_async_operations_are_counted(tmp_path: Path) -> None:
    import asyncio

    metrics = PrometheusMetrics("test")
    url = f"sqlite:///{tmp_path / 'r.db'}"
    with ModelRegistry(url, telemetry=Telemetry(metrics)) as reg:
        saved = reg.save(Model.new("m", "lightgbm"))
        for _ in range(3):
            reg.get(saved.id)
        with pytest.raises(ModelNotFoundError):
            reg.get("01ARZ3NDEKTSV4RRFFQ69G5FAV")  # absent: the read itself succeeded
        with pytest.raises(Exception):  # noqa: B017 - any refusal
            reg.transition(saved.id, "no-such-status")

    async def reads() -> None:
        async with AsyncModelRepository(url, telemetry=Telemetry(metrics)) as repo:
            await repo.get(saved.id)
            await repo.find()

    asyncio.run(reads())
    assert value(metrics, "hq_db_queries_total", operation="get", backend="sqlite", status="ok") == 6
    assert value(metrics, "hq_db_queries_total", operation="save", backend="sqlite", status="ok") == 1
    assert (
        value(metrics, "hq_db_queries_total", operation="transition", backend="sqlite", status="error") == 1
    )
    assert value(metrics, "hq_db_queries_total", operation="find", backend="sqlite", status="ok") == 1
    count = value(
        metrics, "hq_db_query_duration_seconds_count", operation="get", backend="sqlite", status="ok"
    )
    assert count == 6
    assert value(metrics, "hq_db_query_duration_seconds_bucket", operation="get", backend="sqlite", status="ok",
                 le="+Inf") == 6  # fmt: skip
    assert (
        0
        < value(metrics, "hq_db_query_duration_seconds_sum", operation="get", backend="sqlite", status="ok")
        < 1
    )


def test_a_registry_without_telemetry_records_nothing(tmp_path: Path) -> None:
    with ModelRegistry(f"sqlite:///{tmp_path / 'r.db'}") as reg:
        assert reg._observer is None
        reg.save(Model.new("m", "lightgbm"))


def test_retries_are_reported_with_their_reason() -> None:
    heard: list[str] = []
    tries = iter([sqlite3.OperationalError("database is locked")] * 2)

    def operation() -> str:
        error = next(tries, None)
        if error is not None:
            raise error
        return "done"

    policy = RetryPolicy(attempts=5, deadline=5, base=0.001, cap=0.002, on_retry=heard.append)
    assert retry_sync(operation, policy) == "done"
    assert heard == ["transient", "transient"]
    metrics = PrometheusMetrics("test")
    metrics.db_retry("sqlite", "transient")
    assert value(metrics, "hq_db_retries_total", backend="sqlite", reason="transient") == 1


def test_the_latency_histogram_counts_every_observation_in_its_bucket() -> None:
    import threading

    from hikyuu_qlib.observability.latency import FOLD_AT, LatencyHistogram

    histogram = LatencyHistogram(
        "hq_t_seconds", "t", ["op"], [0.001, 0.01, 0.1], counter_name="hq_t_total", counter_documentation="t"
    )
    child = histogram.labels("get")
    # a value equal to a bound is in that bound's bucket (Prometheus ``le``); above every bound: +Inf
    for seconds in (0.0005, 0.001, 0.002, 0.01, 0.05, 0.5):
        child.observe(seconds)
    counts, total = child.snapshot()  # the queued observations are folded first
    assert counts == [2, 2, 1, 1] and total == pytest.approx(0.5635)

    per_thread = 3 * FOLD_AT + 7  # several folds while other threads append: none lost, none twice

    def hammer() -> None:
        for _ in range(per_thread):
            child.observe(0.005)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    counts, total = child.snapshot()
    assert counts == [2, 2 + 4 * per_thread, 1, 1]
    assert total == pytest.approx(0.5635 + 4 * per_thread * 0.005)
    registry = CollectorRegistry()
    registry.register(histogram)
    assert registry.get_sample_value("hq_t_total", {"op": "get"}) == 6 + 4 * per_thread
    assert registry.get_sample_value("hq_t_seconds_bucket", {"op": "get", "le": "0.01"}) == 4 + 4 * per_thread
