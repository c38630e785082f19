"""The recording API that instrumented code calls, and its switched-off implementation.

:class:`Metrics` does nothing (``enabled`` is False): instrumented code costs a method call when metrics
are off, and importing this module imports no Prometheus client.
:class:`~hikyuu_qlib.observability.metrics.PrometheusMetrics` implements it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Literal

DbStatus = Literal["ok", "error"]
CacheResult = Literal["hit", "miss", "stale", "error"]
JobStatus = Literal["succeeded", "failed", "cancelled"]


def multiprocess_mode() -> bool:
    """Whether prometheus-client keeps values in ``PROMETHEUS_MULTIPROC_DIR`` (it decides at import)."""
    return "PROMETHEUS_MULTIPROC_DIR" in os.environ or "prometheus_multiproc_dir" in os.environ


def _ignore(seconds: float) -> None:
    return None


class DbTimer:
    """Records the outcomes of one kind of registry operation on one backend (bound once, used per call):
    ``ok(seconds)`` or ``error(seconds)``, each one observation."""

    __slots__ = ("error", "ok")

    def __init__(
        self, ok: Callable[[float], None] = _ignore, error: Callable[[float], None] = _ignore
    ) -> None:
        self.ok = ok
        self.error = error

    def record(self, status: DbStatus, seconds: float) -> None:
        """One operation that ended with ``status`` after ``seconds``."""
        (self.ok if status == "ok" else self.error)(seconds)


class Metrics:
    """Metrics switched off: every method does nothing (``enabled`` is False)."""

    enabled = False
    _NO_TIMER = DbTimer()

    # --- model registry --------------------------------------------------------------------------------
    def db_timer(self, operation: str, backend: str) -> DbTimer:
        """The recorder of ``operation`` on ``backend`` (``sqlite``, ``postgresql``)."""
        return self._NO_TIMER

    def db_retry(self, backend: str, reason: str) -> None:
        """One more try of a registry operation after a transient fault (``reason``: ``transient`` or
        ``commit_in_doubt``)."""

    # --- cache tiers -----------------------------------------------------------------------------------
    def record_cache(self, tier: str, result: CacheResult) -> None:
        """One cache lookup on ``tier`` (``l1``, ``l2``, ``l3``) and its result."""

    def set_cache_bytes(self, tier: str, size: int) -> None:
        """The bytes ``tier`` holds now (L1: this process's; shared tiers: set from one process)."""

    # --- market data -----------------------------------------------------------------------------------
    def data_load(
        self, store_kind: str, ktype: str, seconds: float, bars: int, error_types: Iterable[str] = ()
    ) -> None:
        """One load of bars from a store of ``store_kind`` (``hikyuu``, ``qlib``, ``synthetic``): its time,
        the bars it returned, and the error type of each code that failed."""

    # --- research stages -------------------------------------------------------------------------------
    def stage(self, stage: str, seconds: float) -> None:
        """One workflow stage (load, factors, train, predict, backtest, report) took ``seconds``."""

    # --- HTTP service ----------------------------------------------------------------------------------
    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """One HTTP request, by its route template (``/v1/models/{model_id}``, never the raw path)."""

    def http_in_flight(self, delta: int) -> None:
        """Requests being served: +1 when one starts, -1 when it ends."""

    def auth_failure(self, reason: str) -> None:
        """One refused credential (``reason``: ``missing``, ``invalid``, ``expired``, ``forbidden`` …)."""

    # --- jobs (service jobs and batch commands) --------------------------------------------------------
    def job_started(self, kind: str) -> None:
        """A job of ``kind`` started (``hq_jobs_running`` goes up)."""

    def job_finished(self, kind: str, status: JobStatus, seconds: float) -> None:
        """A job of ``kind`` that :meth:`job_started` announced ended with ``status`` after ``seconds``."""
