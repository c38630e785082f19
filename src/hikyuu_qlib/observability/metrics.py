"""The Prometheus metrics of hq: every name, its labels and its buckets, defined once.

:class:`PrometheusMetrics` owns a ``CollectorRegistry`` (never
prometheus-client's global one) on which it creates every metric; the composition root
(:func:`hikyuu_qlib.app.open_telemetry`) builds one per process entrypoint and passes it on. Nothing is
created at import time.

The recording API and its switched-off variant :class:`~hikyuu_qlib.observability.recording.Metrics` live
in :mod:`~hikyuu_qlib.observability.recording` (no Prometheus client imported when metrics are off).

Conventions: the ``hq_`` prefix, base units (seconds, bytes), counters end in ``_total``, and only labels of
bounded cardinality (operation, backend, store_kind, ktype, tier, result, stage, route, method, status,
kind, reason): never a stock code, a model id or a token.

Metrics (see also the README's "Operating hq"):

==========================================  =========  ==============================================
name                                        type       labels
==========================================  =========  ==============================================
hq_build_info                               gauge      version
hq_db_query_duration_seconds                histogram  operation, backend, status
hq_db_queries_total                         counter    operation, backend, status
hq_db_retries_total                         counter    backend, reason
hq_cache_requests_total                     counter    tier, result (hit, miss, stale, error)
hq_cache_bytes                              gauge      tier
hq_data_load_duration_seconds               histogram  store_kind, ktype
hq_data_bars_loaded_total                   counter    store_kind, ktype
hq_data_load_errors_total                   counter    store_kind, error_type
hq_stage_duration_seconds                   histogram  stage
hq_http_request_duration_seconds            histogram  method, route, status
hq_http_requests_total                      counter    method, route, status
hq_http_requests_in_flight                  gauge      (none)
hq_auth_failures_total                      counter    reason
hq_jobs_total                               counter    kind, status
hq_jobs_running                             gauge      kind
hq_job_duration_seconds                     histogram  kind, status
hq_job_last_success_timestamp_seconds       gauge      kind
hq_job_last_duration_seconds                gauge      kind
==========================================  =========  ==============================================

plus prometheus-client's process metrics (``process_*``, ``python_*``) on the scrape endpoint
(:mod:`hikyuu_qlib.observability.exposition`).

Multiprocess mode (``PROMETHEUS_MULTIPROC_DIR`` set before the process starts, as with several uvicorn
workers): values live in files of that directory and one scrape reads them all; gauges say how the
workers' values combine (``livesum`` for what is in progress and for bytes held, ``max`` for timestamps).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

from hikyuu_qlib.observability.latency import LatencyHistogram
from hikyuu_qlib.observability.recording import (
    CacheResult,
    DbTimer,
    JobStatus,
    Metrics,
    multiprocess_mode,
)

DB_BUCKETS = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
DATA_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
STAGE_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0)
HTTP_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
JOB_BUCKETS = (1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0)


def _latency_timer(histogram: LatencyHistogram, labels: tuple[str, str]) -> DbTimer:
    """One process: one cheap observation a call (the counter family is the histogram's count)."""
    return DbTimer(histogram.labels(*labels, "ok").observe, histogram.labels(*labels, "error").observe)


def _multiprocess_timer(histogram: Histogram, counter: Counter, labels: tuple[str, str]) -> DbTimer:
    """Multiprocess mode: prometheus-client's histogram and counter, whose values live in files."""

    def recorder(status: str) -> Callable[[float], None]:
        observed, counted = histogram.labels(*labels, status), counter.labels(*labels, status)

        def record(seconds: float) -> None:
            observed.observe(seconds)
            counted.inc()

        return record

    return DbTimer(recorder("ok"), recorder("error"))


class PrometheusMetrics(Metrics):
    """Every hq metric, on a registry this object owns (:attr:`registry`)."""

    enabled = True

    def __init__(self, version: str = "unknown", registry: CollectorRegistry | None = None) -> None:
        # no ``*_created`` series: in the text format Prometheus would take each for a gauge of its own
        # (a switch of prometheus-client for the whole process)
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.multiprocess = multiprocess_mode()
        r = self.registry

        self.build_info = Gauge(
            "hq_build_info",
            "hq's version (always 1).",
            ["version"],
            registry=r,
            multiprocess_mode="max",
        )
        self.build_info.labels(version).set(1)

        db_labels = ("operation", "backend", "status")
        db_help = "Time of model registry operations, retries included."
        db_count_help = "Model registry operations."
        self._db: LatencyHistogram | tuple[Histogram, Counter]
        if self.multiprocess:
            self._db = (
                Histogram("hq_db_query_duration_seconds", db_help, db_labels, registry=r, buckets=DB_BUCKETS),
                Counter("hq_db_queries_total", db_count_help, db_labels, registry=r),
            )
        else:
            self._db = LatencyHistogram(
                "hq_db_query_duration_seconds",
                db_help,
                db_labels,
                DB_BUCKETS,
                counter_name="hq_db_queries_total",
                counter_documentation=db_count_help,
            )
            r.register(self._db)
        self._db_timers: dict[tuple[str, str], DbTimer] = {}
        self.db_retries = Counter(
            "hq_db_retries_total",
            "Tries of registry operations repeated after a transient fault.",
            ["backend", "reason"],
            registry=r,
        )

        self.cache_requests = Counter(
            "hq_cache_requests_total", "Cache lookups by tier and result.", ["tier", "result"], registry=r
        )
        self.cache_bytes = Gauge(
            "hq_cache_bytes", "Bytes held by a cache tier.", ["tier"], registry=r, multiprocess_mode="livesum"
        )

        self.data_load_seconds = Histogram(
            "hq_data_load_duration_seconds",
            "Time of one load of bars from a market data store.",
            ["store_kind", "ktype"],
            registry=r,
            buckets=DATA_BUCKETS,
        )
        self.bars_loaded = Counter(
            "hq_data_bars_loaded_total",
            "Bars loaded from market data stores.",
            ["store_kind", "ktype"],
            registry=r,
        )
        self.data_load_errors = Counter(
            "hq_data_load_errors_total",
            "Codes that failed to load, by error type.",
            ["store_kind", "error_type"],
            registry=r,
        )

        self.stage_seconds = Histogram(
            "hq_stage_duration_seconds",
            "Time of one research workflow stage.",
            ["stage"],
            registry=r,
            buckets=STAGE_BUCKETS,
        )

        http_labels = ("method", "route", "status")
        self.http_seconds = Histogram(
            "hq_http_request_duration_seconds",
            "Time to serve an HTTP request, by route template.",
            http_labels,
            registry=r,
            buckets=HTTP_BUCKETS,
        )
        self.http_requests = Counter(
            "hq_http_requests_total", "HTTP requests served, by route template.", http_labels, registry=r
        )
        self.http_active = Gauge(
            "hq_http_requests_in_flight",
            "HTTP requests being served.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.auth_failures = Counter(
            "hq_auth_failures_total", "Refused credentials, by reason.", ["reason"], registry=r
        )

        self.jobs = Counter(
            "hq_jobs_total", "Finished jobs, by kind and status.", ["kind", "status"], registry=r
        )
        self.jobs_running = Gauge(
            "hq_jobs_running", "Jobs running now.", ["kind"], registry=r, multiprocess_mode="livesum"
        )
        self.job_seconds = Histogram(
            "hq_job_duration_seconds",
            "Time of one job, by kind and status.",
            ["kind", "status"],
            registry=r,
            buckets=JOB_BUCKETS,
        )
        self.job_last_success = Gauge(
            "hq_job_last_success_timestamp_seconds",
            "When a job of this kind last succeeded (Unix time).",
            ["kind"],
            registry=r,
            multiprocess_mode="max",
        )
        self.job_last_duration = Gauge(
            "hq_job_last_duration_seconds",
            "Time of the last finished job of this kind.",
            ["kind"],
            registry=r,
            multiprocess_mode="mostrecent",
        )

    def db_timer(self, operation: str, backend: str) -> DbTimer:
        key = (operation, backend)
        timer = self._db_timers.get(key)
        if timer is None:
            made = (
                _latency_timer(self._db, key)
                if isinstance(self._db, LatencyHistogram)
                else _multiprocess_timer(*self._db, key)
            )
            timer = self._db_timers.setdefault(key, made)
        return timer

    def db_retry(self, backend: str, reason: str) -> None:
        self.db_retries.labels(backend, reason).inc()

    def record_cache(self, tier: str, result: CacheResult) -> None:
        self.cache_requests.labels(tier, result).inc()

    def set_cache_bytes(self, tier: str, size: int) -> None:
        self.cache_bytes.labels(tier).set(size)

    def data_load(
        self, store_kind: str, ktype: str, seconds: float, bars: int, error_types: Iterable[str] = ()
    ) -> None:
        self.data_load_seconds.labels(store_kind, ktype).observe(seconds)
        self.bars_loaded.labels(store_kind, ktype).inc(bars)
        for error_type in error_types:
            self.data_load_errors.labels(store_kind, error_type).inc()

    def stage(self, stage: str, seconds: float) -> None:
        self.stage_seconds.labels(stage).observe(seconds)

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        code = str(status)
        self.http_seconds.labels(method, route, code).observe(seconds)
        self.http_requests.labels(method, route, code).inc()

    def http_in_flight(self, delta: int) -> None:
        self.http_active.inc(delta)

    def auth_failure(self, reason: str) -> None:
        self.auth_failures.labels(reason).inc()

    def job_started(self, kind: str) -> None:
        self.jobs_running.labels(kind).inc()

    def job_finished(self, kind: str, status: JobStatus, seconds: float) -> None:
        self.jobs_running.labels(kind).dec()
        self.jobs.labels(kind, status).inc()
        self.job_seconds.labels(kind, status).observe(seconds)
        self.job_last_duration.labels(kind).set(seconds)
        if status == "succeeded":
            self.job_last_success.labels(kind).set(time.time())
