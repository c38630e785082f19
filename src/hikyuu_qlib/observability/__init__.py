"""Logging, metrics and tracing.

- :mod:`.recording` — the recording API instrumented code calls (:class:`~.recording.Metrics`, switched
  off) and :mod:`.metrics` — every Prometheus metric, on a registry :class:`~.metrics.PrometheusMetrics`
  owns; :mod:`.latency` — the cheap histogram of registry operations.
- :mod:`.tracing` — OpenTelemetry from the ``OTEL_*`` variables, library instrumentations, and
  :func:`~.tracing.inject_context` / :func:`~.tracing.attached_context` for jobs.
- :mod:`.telemetry` — :class:`~.telemetry.Telemetry` (metrics + tracing), built by
  :func:`hikyuu_qlib.app.open_telemetry` and passed to the adapters.
- :mod:`.operations` (registry operations), :mod:`.statements` (spans of the registry's SQL statements),
  :mod:`.loads` (market data loads), :mod:`.asgi` (HTTP requests: :class:`~.asgi.MetricsMiddleware`).
- :mod:`.exposition` — ``/metrics`` (:class:`~.exposition.MetricsEndpoint`, multiprocess mode), the
  node_exporter textfile, the Pushgateway.
- :mod:`.logs` — log configuration, trace ids in records; :mod:`.redact` — passwords out of messages.

Wiring a service (one telemetry a worker process, from the composition root)::

    telemetry = open_telemetry(settings, metrics=True)
    app.add_middleware(MetricsMiddleware, metrics=telemetry.metrics)
    app.add_route("/metrics", MetricsEndpoint(telemetry.metrics))
    telemetry.tracing.instrument_fastapi(app)
    telemetry.tracing.instrument_redis()
    repo = open_registry(settings=settings, telemetry=telemetry)    # registry metrics and spans
    telemetry.metrics.auth_failure("invalid")                       # where a credential is refused
    carrier = inject_context()                                      # POST /v1/jobs: stored with the job
    JobRunner(settings, metrics=telemetry.metrics)                  # counts the jobs it runs
    # in the job's process (hikyuu_qlib.service.jobs.work.main):
    with attached_context(job.trace_context), telemetry.span("job train"):
        ...

and a cache tier: ``telemetry.metrics.record_cache("l2", "hit")`` per lookup, ``set_cache_bytes("l1", n)``.
"""
