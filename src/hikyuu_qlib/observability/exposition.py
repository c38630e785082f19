"""Getting the metrics out: a scrape endpoint, a node_exporter textfile, a Pushgateway push.

- :func:`scrape_registry` is what a ``/metrics`` endpoint serves: hq's metrics and the process metrics
  (``process_*``, ``python_*``). In multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, several uvicorn
  workers) it reads the values every worker wrote into that directory, so one scrape, whichever worker
  answers it, counts the requests of all of them; the ``process_*`` figures are then those of the worker
  that answered.
- :class:`MetricsEndpoint` is that endpoint as an ASGI app (``app.add_route("/metrics", …)`` in FastAPI);
  :class:`MetricsServer` serves it on its own port from a thread (a process without an HTTP server).
- :func:`write_textfile` writes a batch command's metrics for node_exporter's textfile collector: in the
  text format, without timestamps, atomically (a temporary file in the same directory renamed over it).
- :func:`push` sends them to a Pushgateway (``HQ_PUSHGATEWAY_URL``), grouped by job.

For multiprocess mode the service empties the directory before the workers start
(:func:`prepare_multiprocess_dir`) and each worker calls :func:`worker_exited` as it stops, so the
gauges of live workers (``livesum``) forget it.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    make_asgi_app,
    pushadd_to_gateway,
    start_http_server,
    write_to_textfile,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from hikyuu_qlib.domain.errors import InvalidInputError
from hikyuu_qlib.observability.metrics import PrometheusMetrics
from hikyuu_qlib.observability.recording import multiprocess_mode

log = logging.getLogger(__name__)


class _Forward(Collector):
    """Serves the metrics of another registry from a scrape registry."""

    def __init__(self, source: CollectorRegistry) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        return iter(self._source.collect())


def scrape_registry(metrics: PrometheusMetrics) -> CollectorRegistry:
    """The registry a ``/metrics`` endpoint serves (see the module)."""
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_mode():
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        ProcessCollector(registry=registry)
        return registry
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    registry.register(_Forward(metrics.registry))
    return registry


class MetricsEndpoint:
    """An ASGI app serving :func:`scrape_registry` (text or OpenMetrics as the scraper asks, gzip when
    asked): ``app.add_route("/metrics", MetricsEndpoint(metrics))`` in FastAPI/Starlette (an object, so
    the router hands it the raw request instead of wrapping it as a view function)."""

    def __init__(self, metrics: PrometheusMetrics) -> None:
        self._app = make_asgi_app(registry=scrape_registry(metrics))

    async def __call__(self, scope: Any, receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        await self._app(scope, receive, send)


class MetricsServer:
    """``/metrics`` on ``host:port`` from a daemon thread (port 0: a free one, see :attr:`port`)."""

    def __init__(self, metrics: PrometheusMetrics, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server, self._thread = start_http_server(port, addr=host, registry=scrape_registry(metrics))
        self.host = host
        self.port = int(self._server.server_port)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def check_textfile_path(path: Path) -> None:
    """Refuse a metrics file that node_exporter would not read or that cannot be written (before the work)."""
    if path.suffix != ".prom":
        raise InvalidInputError(f"--metrics-file {path}: node_exporter reads only *.prom files")
    if path.is_dir():
        raise InvalidInputError(f"--metrics-file {path} is a directory: give a file name")
    if not path.parent.is_dir():
        raise InvalidInputError(f"--metrics-file {path}: directory {path.parent} does not exist")


def write_textfile(path: Path, metrics: PrometheusMetrics) -> None:
    """hq's metrics (no process metrics: the process is gone when node_exporter reads them) to ``path``,
    atomically: readers see the old file or the new one, never a part."""
    write_to_textfile(str(path), metrics.registry)
    log.info("wrote metrics to %s", path)


def push(
    gateway: str, job: str, metrics: PrometheusMetrics, grouping: Mapping[str, str] | None = None
) -> None:
    """Push hq's metrics to the Pushgateway at ``gateway`` under ``job`` (and ``grouping``), replacing the
    metrics of the same names in that group and keeping the others: a failed run leaves the group's
    ``hq_job_last_success_timestamp_seconds`` of the last run that succeeded in place."""
    pushadd_to_gateway(
        gateway, job=job, registry=metrics.registry, grouping_key=dict(grouping or {}), timeout=10
    )
    log.info("pushed metrics of job %s to %s", job, gateway)


def default_grouping() -> dict[str, str]:
    """The Pushgateway group of this machine's pushes: ``instance`` = the host name."""
    return {"instance": socket.gethostname()}


def prepare_multiprocess_dir(path: Path) -> None:
    """Empty (or create) the multiprocess directory before the workers start: values a previous run left
    there would be counted again."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)


def supervisor_metrics() -> PrometheusMetrics:
    """Metrics of a process that turned multiprocess mode on (``PROMETHEUS_MULTIPROC_DIR``) after
    prometheus-client was imported, as ``hq serve``'s supervisor does for its workers: prometheus-client
    chooses where values live when it is imported, so its choice is made again here (metrics made before
    this call keep their in-memory values)."""
    from prometheus_client import values

    from hikyuu_qlib.version import package_version

    if not multiprocess_mode():
        raise RuntimeError("supervisor_metrics() needs PROMETHEUS_MULTIPROC_DIR set")
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    return PrometheusMetrics(package_version())


def worker_exited(pid: int | None = None) -> None:
    """Tell multiprocess mode that a worker stopped (its ``livesum``/``liveall`` gauges are dropped)."""
    if not multiprocess_mode():
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(os.getpid() if pid is None else pid)  # type: ignore[no-untyped-call]
