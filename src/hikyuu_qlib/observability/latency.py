"""A latency histogram for hot paths, cheaper per observation than prometheus-client's own.

prometheus-client's ``Histogram.observe`` takes two locks and walks the buckets (about 1.3 µs); a registry
``get`` on SQLite costs a few microseconds, so that alone would be far more than the 5 % the overhead goal
allows. :class:`LatencyHistogram` is a custom collector (the extension point prometheus-client documents).

An observation is one append to a queue (:class:`collections.deque`, whose ``append`` and ``popleft`` are
atomic: no lock on the hot path). Every ``FOLD_AT`` observations, and before every collection, the queue is
folded into per-bucket counts and a sum, under a lock and in one vectorised step (numpy ``searchsorted``
and ``bincount``): a few tens of nanoseconds per observation. Observations appended while a fold runs are
left for the next one, never lost (the fold pops only what was there when it began).

The family is exposed as a normal histogram, and its observation count once more as a ``_total`` counter
family (one observation, two names: the count of the histogram and the counter always agree).

Only for one process: a custom collector is invisible to prometheus-client's multiprocess mode, so
:class:`~hikyuu_qlib.observability.metrics.PrometheusMetrics` uses prometheus-client's own histogram and
counter there.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence

import numpy as np
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

#: observations queued before the observing call folds them into the counts
FOLD_AT = 1024


class LatencyChild:
    """The counts of one label set; :attr:`observe` records one duration in seconds."""

    __slots__ = ("_bounds", "_counts", "_lock", "_pending", "_sum", "observe")

    def __init__(self, bounds: Sequence[float]) -> None:
        self._bounds = np.asarray(bounds, dtype=np.float64)
        self._counts = np.zeros(len(bounds) + 1, dtype=np.int64)  # the last slot is +Inf
        self._sum = 0.0
        self._lock = threading.Lock()
        self._pending: deque[float] = deque()
        self.observe: Callable[[float], None] = self._observer()

    def _observer(self) -> Callable[[float], None]:
        # a closure over locals: no attribute lookups per call
        pending, append, fold = self._pending, self._pending.append, self.fold

        def observe(seconds: float) -> None:
            append(seconds)
            if len(pending) >= FOLD_AT:
                fold()

        return observe

    def fold(self) -> None:
        """Move the queued observations into the bucket counts and the sum."""
        with self._lock:
            self._fold_locked()

    def _fold_locked(self) -> None:
        pending = self._pending
        n = len(pending)  # others may append meanwhile: take only these n, leave the rest queued
        if not n:
            return
        popleft = pending.popleft
        values = np.fromiter((popleft() for _ in range(n)), dtype=np.float64, count=n)
        # bisect-left: a value equal to a bound belongs to that bound's bucket (Prometheus ``le``)
        self._counts += np.bincount(
            np.searchsorted(self._bounds, values, side="left"), minlength=len(self._counts)
        )
        self._sum += float(values.sum())

    def snapshot(self) -> tuple[list[int], float]:
        """Per-bucket counts (not cumulative; the last is +Inf) and the sum, everything observed so far."""
        with self._lock:
            self._fold_locked()
            return [int(c) for c in self._counts], self._sum


class LatencyHistogram(Collector):
    """A histogram family ``name`` (seconds) and the counter family ``counter_name`` of its observations."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        buckets: Sequence[float],
        *,
        counter_name: str,
        counter_documentation: str,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.bounds = sorted(float(b) for b in buckets if b != float("inf"))
        self.counter_name = counter_name.removesuffix("_total")
        self.counter_documentation = counter_documentation
        self._children: dict[tuple[str, ...], LatencyChild] = {}
        self._lock = threading.Lock()

    def labels(self, *values: str) -> LatencyChild:
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, got {values}")
        child = self._children.get(values)
        if child is None:
            with self._lock:
                child = self._children.setdefault(values, LatencyChild(self.bounds))
        return child

    def describe(self) -> list[Metric]:
        return [
            HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames),
            CounterMetricFamily(self.counter_name, self.counter_documentation, labels=self.labelnames),
        ]

    def collect(self) -> Iterator[Metric]:
        histogram = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        counter = CounterMetricFamily(self.counter_name, self.counter_documentation, labels=self.labelnames)
        with self._lock:
            children = list(self._children.items())
        for values, child in children:
            counts, total = child.snapshot()
            cumulative, buckets = 0, []
            for bound, count in zip([*self.bounds, float("inf")], counts, strict=True):
                cumulative += count
                buckets.append((floatToGoString(bound), float(cumulative)))  # type: ignore[no-untyped-call]
            histogram.add_metric(list(values), buckets, total)
            counter.add_metric(list(values), float(cumulative))
        yield histogram
        yield counter
