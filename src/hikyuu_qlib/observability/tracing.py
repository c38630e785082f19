"""OpenTelemetry traces, configured from the standard ``OTEL_*`` variables; off unless configured.

Tracing is on when ``OTEL_TRACES_EXPORTER`` names an exporter (``otlp``, ``console``, ``jsonl``, several
separated by commas; ``none`` keeps it off) or when an OTLP endpoint is set
(``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, which means ``otlp``);
``OTEL_SDK_DISABLED=true`` turns it off whatever else is set. Unlike the SDK's own default (``otlp``),
nothing is exported when nothing is said, so a laptop run never waits on a collector that is not there.

- ``otlp``: over HTTP (``http/protobuf``, the default) or gRPC (``grpc``), chosen by
  ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` or ``OTEL_EXPORTER_OTLP_PROTOCOL``, to
  ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_ENDPOINT`` (+ ``/v1/traces`` over HTTP;
  default ``localhost:4318``/``4317``); the exporter reads its headers, timeout and certificate variables.
- ``console``: one JSON document per span on stderr (stdout belongs to ``--format json``).
- ``jsonl``: one JSON object per span and line, appended to ``HQ_TRACES_FILE``.

The service name is ``OTEL_SERVICE_NAME`` (or ``service.name`` in ``OTEL_RESOURCE_ATTRIBUTES``), else
``hq``; the sampler is ``OTEL_TRACES_SAMPLER``/``OTEL_TRACES_SAMPLER_ARG`` (the SDK reads them).

:class:`Tracing` owns its ``TracerProvider`` (the global one is left alone). Switched off, :meth:`Tracing.span`
returns one shared do-nothing context manager: no span object, no context switch. Jobs carry the trace
across processes with :func:`inject_context` (into a dict that travels with the job) and
:func:`attached_context` (in the worker).
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hikyuu_qlib.domain.errors import InvalidInputError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

EXPORTERS = ("otlp", "console", "jsonl", "none")
_OFF: AbstractContextManager[None] = nullcontext()
AttributeValue = str | bool | int | float | Sequence[str] | Sequence[int] | Sequence[float]


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def exporter_names(environ: Mapping[str, str]) -> list[str]:
    """The trace exporters the environment asks for (empty: tracing off)."""
    if _truthy(environ.get("OTEL_SDK_DISABLED")):
        return []
    named = environ.get("OTEL_TRACES_EXPORTER", "").strip()
    if not named:
        endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        )
        return ["otlp"] if endpoint else []
    names = [n.strip().lower() for n in named.split(",") if n.strip()]
    unknown = [n for n in names if n not in EXPORTERS]
    if unknown:
        raise InvalidInputError(
            f"OTEL_TRACES_EXPORTER={named!r}: unknown exporter {unknown[0]!r} (use {', '.join(EXPORTERS)})"
        )
    return [n for n in names if n != "none"]


class JsonLinesSpanExporter:
    """Appends each finished span as one JSON object a line to a file (the SDK's own JSON of a span)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        lines = "".join(json.dumps(json.loads(span.to_json(indent=None))) + "\n" for span in spans)
        with self._lock, self.path.open("a", encoding="utf-8") as out:
            out.write(lines)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def _otlp_exporter(environ: Mapping[str, str]) -> SpanExporter:
    """The OTLP exporter ``environ`` asks for; its endpoint from ``environ``, its other settings (headers,
    timeout, certificates, compression) from the process environment, where the exporter reads them."""
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or ""
    ).strip() or "http/protobuf"
    traces_endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    base = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter(endpoint=traces_endpoint or base)
    if protocol in ("http/protobuf", "http"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

        endpoint = traces_endpoint or (base.rstrip("/") + "/v1/traces" if base else None)
        return HttpExporter(endpoint=endpoint)
    raise InvalidInputError(f"OTLP protocol {protocol!r} is not supported: use http/protobuf or grpc")


class Tracing:
    """Spans of hq's operations, through a tracer provider this object owns (or none: off)."""

    def __init__(self, provider: TracerProvider | None = None) -> None:
        self.provider = provider
        self.enabled = provider is not None
        self._tracer: Tracer | None = provider.get_tracer("hikyuu_qlib") if provider is not None else None
        self._instrumented: list[Any] = []

    @classmethod
    def disabled(cls) -> Tracing:
        return cls(None)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str], *, version: str = "unknown", traces_file: Path | None = None
    ) -> Tracing:
        """Tracing as the ``OTEL_*`` variables of ``environ`` say (see the module); off when they say nothing."""
        names = exporter_names(environ)
        if not names:
            return cls.disabled()
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

        exporters: list[Any] = []
        for name in names:
            if name == "otlp":
                exporters.append(_otlp_exporter(environ))
            elif name == "console":
                exporters.append(ConsoleSpanExporter(out=sys.stderr))
            else:
                if traces_file is None:
                    raise InvalidInputError(
                        "OTEL_TRACES_EXPORTER=jsonl needs HQ_TRACES_FILE (the file to append to)"
                    )
                exporters.append(JsonLinesSpanExporter(traces_file))
        resource = Resource.create({"service.version": version})
        if environ.get("OTEL_SERVICE_NAME"):
            resource = resource.merge(Resource({"service.name": environ["OTEL_SERVICE_NAME"]}))
        elif str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
            resource = resource.merge(Resource({"service.name": "hq"}))
        provider = TracerProvider(resource=resource)
        for exporter in exporters:
            provider.add_span_processor(BatchSpanProcessor(exporter))
        return cls(provider)

    def span(
        self, name: str, attributes: Mapping[str, AttributeValue] | None = None
    ) -> AbstractContextManager[Any]:
        """A current span around a block (yields it; yields ``None`` when tracing is off). An exception
        leaving the block is recorded on the span and sets its status to error."""
        if self._tracer is None:
            return _OFF
        return self._tracer.start_as_current_span(name, attributes=attributes)

    # --- instrumentations of libraries (only when tracing is on) ---------------------------------------

    def instrument_engine(self, engine: Any) -> None:
        """Spans of the statements SQLAlchemy runs on ``engine`` (an async engine: its sync engine)."""
        if self.provider is None:
            return
        from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
        from opentelemetry.metrics import NoOpMeterProvider

        sync_engine = getattr(engine, "sync_engine", engine)
        usage = (
            NoOpMeterProvider().get_meter("hikyuu_qlib").create_up_down_counter("db.client.connections.usage")
        )
        tracer = self.provider.get_tracer("opentelemetry.instrumentation.sqlalchemy")
        EngineTracer(tracer, sync_engine, usage)  # type: ignore[no-untyped-call]

    def instrument_redis(self) -> None:
        """Spans of redis-py commands (patches redis-py's client classes until :meth:`shutdown`)."""
        if self.provider is None:
            return
        from opentelemetry.instrumentation.redis import RedisInstrumentor

        instrumentor = RedisInstrumentor()
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(tracer_provider=self.provider)
            self._instrumented.append(instrumentor)

    def instrument_fastapi(self, app: Any, excluded_urls: str = "/metrics,/healthz,/readyz") -> None:
        """Server spans of a FastAPI app's requests (named by route template)."""
        if self.provider is None:
            return
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        # no span per ASGI message (``http send``/``http receive``): one server span a request
        FastAPIInstrumentor.instrument_app(
            app, tracer_provider=self.provider, excluded_urls=excluded_urls, exclude_spans=["receive", "send"]
        )

    def shutdown(self) -> None:
        """Export the spans still buffered and stop the exporters (and the library instrumentations)."""
        for instrumentor in self._instrumented:
            instrumentor.uninstrument()
        self._instrumented.clear()
        if self.provider is not None:
            self.provider.shutdown()


def set_attributes(span: Span | None, attributes: Mapping[str, AttributeValue]) -> None:
    """Set attributes on ``span`` when there is one (tracing on)."""
    if span is not None:
        span.set_attributes(dict(attributes))


def inject_context(carrier: dict[str, str] | None = None) -> dict[str, str]:
    """The current trace context as string headers (W3C ``traceparent``/``tracestate``) in ``carrier``: store
    them with a job so that its worker continues the trace (:func:`attached_context`)."""
    from opentelemetry import propagate

    out: dict[str, str] = {} if carrier is None else carrier
    propagate.inject(out)
    return out


@contextmanager
def detached_context() -> Iterator[None]:
    """No current span in the block: what starts in it begins traces of its own. A server runs in one
    (``hq serve``'s command span would otherwise be the parent of every request it ever serves)."""
    from opentelemetry import context

    token = context.attach(context.Context())
    try:
        yield
    finally:
        context.detach(token)


@contextmanager
def attached_context(carrier: Mapping[str, str] | None) -> Iterator[None]:
    """Make the trace context of ``carrier`` (from :func:`inject_context`) current for the block: the spans
    started in it are children of the span that injected it."""
    if not carrier:
        yield
        return
    from opentelemetry import context, propagate

    token = context.attach(propagate.extract(dict(carrier)))
    try:
        yield
    finally:
        context.detach(token)
