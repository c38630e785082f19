"""Tracing: configured by OTEL_* only, exported over OTLP/HTTP, as JSON lines, the trace carried into another
process with a job, and trace ids in the logs."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from hikyuu_qlib.domain.errors import InvalidInputError
from hikyuu_qlib.observability.logs import configure_logging
from hikyuu_qlib.observability.tracing import Tracing, attached_context, exporter_names, inject_context

REPO = Path(__file__).resolve().parents[2]


def spans(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_tracing_is_off_unless_configured() -> None:
    assert exporter_names({}) == []
    assert not Tracing.from_env({}).enabled
    assert exporter_names({"OTEL_TRACES_EXPORTER": "none"}) == []
    assert exporter_names({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}) == ["otlp"]
    assert exporter_names({"OTEL_TRACES_EXPORTER": "otlp,console"}) == ["otlp", "console"]
    assert exporter_names({"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}) == []
    with pytest.raises(InvalidInputError, match="zipkin"):
        exporter_names({"OTEL_TRACES_EXPORTER": "zipkin"})
    with pytest.raises(InvalidInputError, match="HQ_TRACES_FILE"):
        Tracing.from_env({"OTEL_TRACES_EXPORTER": "jsonl"})
    off = Tracing.disabled()
    with off.span("anything") as span:
        assert span is None


class _Collector(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, str, bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, self.headers["Content-Type"], body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def collector() -> Iterator[tuple[str, list[tuple[str, str, bytes]]]]:
    server = HTTPServer(("127.0.0.1", 0), _Collector)
    _Collector.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", _Collector.received
    server.shutdown()
    server.server_close()


def test_spans_go_over_otlp_http_with_the_service_name(
    collector: tuple[str, list[tuple[str, str, bytes]]],
) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    endpoint, received = collector
    tracing = Tracing.from_env(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
        version="9.9",
    )
    with tracing.span("registry.get", {"db.system": "sqlite"}), tracing.span("inner"):
        pass
    tracing.shutdown()
    assert [(path, kind) for path, kind, _ in received] == [("/v1/traces", "application/x-protobuf")]
    request = ExportTraceServiceRequest.FromString(received[0][2])
    resource = request.resource_spans[0]
    attributes = {a.key: a.value.string_value for a in resource.resource.attributes}
    assert attributes["service.name"] == "hq" and attributes["service.version"] == "9.9"
    names = {s.name for scope in resource.scope_spans for s in scope.spans}
    assert names == {"registry.get", "inner"}


def test_a_job_carries_its_trace_into_another_process(tmp_path: Path) -> None:
    traces = tmp_path / "traces.jsonl"
    tracing = Tracing.from_env({"OTEL_TRACES_EXPORTER": "jsonl"}, traces_file=traces)
    with tracing.span("POST /v1/jobs"):
        carrier = inject_context()
    tracing.shutdown()
    assert "traceparent" in carrier
    worker = (
        "import json, sys; from pathlib import Path\n"
        "from hikyuu_qlib.observability.tracing import Tracing, attached_context\n"
        "t = Tracing.from_env({'OTEL_TRACES_EXPORTER': 'jsonl'}, traces_file=Path(sys.argv[1]))\n"
        "with attached_context(json.loads(sys.argv[2])), t.span('job train'):\n"
        "    pass\n"
        "t.shutdown()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", worker, str(traces), json.dumps(carrier)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    by_name = {str(s["name"]): s for s in spans(traces)}
    submit, job = by_name["POST /v1/jobs"], by_name["job train"]
    assert job["context"]["trace_id"] == submit["context"]["trace_id"]  # type: ignore[index]
    assert job["parent_id"] == submit["context"]["span_id"]  # type: ignore[index]
    with attached_context({}):  # no carrier: nothing attached
        pass


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_logs_carry_the_trace_and_span_ids(
    fmt: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tracing = Tracing.from_env({"OTEL_TRACES_EXPORTER": "jsonl"}, traces_file=tmp_path / "t.jsonl")
    configure_logging("INFO", fmt)  # type: ignore[arg-type]
    log = logging.getLogger("hikyuu_qlib.test")
    try:
        log.info("outside")
        with tracing.span("work") as span:
            log.info("inside")
            ids = (
                format(span.get_span_context().trace_id, "032x"),
                format(span.get_span_context().span_id, "016x"),
            )
    finally:
        tracing.shutdown()
        configure_logging("INFO", "text")
    lines = [line for line in capsys.readouterr().err.splitlines() if "side" in line]
    outside, inside = lines
    if fmt == "json":
        assert "trace_id" not in json.loads(outside)
        record = json.loads(inside)
        assert (record["trace_id"], record["span_id"]) == ids
    else:
        assert "trace_id" not in outside
        assert inside.endswith(f"inside trace_id={ids[0]} span_id={ids[1]}")


@pytest.mark.redis
def test_cache_lookups_and_redis_commands_are_spans(tmp_path: Path, redis_url: str) -> None:
    import polars as pl

    from hikyuu_qlib.app import open_cache
    from hikyuu_qlib.cache.codec import FRAME
    from hikyuu_qlib.domain.cache import CacheKey
    from hikyuu_qlib.observability.telemetry import Telemetry
    from hikyuu_qlib.settings import Settings

    traces = tmp_path / "spans.jsonl"
    tracing = Tracing.from_env({"OTEL_TRACES_EXPORTER": "jsonl"}, traces_file=traces)
    settings = Settings(
        home=tmp_path, cache_url=redis_url, cache_key_prefix=f"hq-test-{tmp_path.name}:", cache_disk_bytes=0
    )
    cache = open_cache(settings, telemetry=Telemetry(tracing=tracing))
    key = CacheKey("bars", "synthetic", "v1", (("n", 1),), 1)
    frame = pl.DataFrame({"x": [1.0, 2.0]})
    try:
        with tracing.span("request"):
            assert cache.get_or_compute(key, lambda: frame, FRAME).equals(frame)  # computed
            assert cache.get_or_compute(key, lambda: frame, FRAME).equals(frame)  # found in L1
            assert cache.get(key, FRAME) is not None
        cache.redis.delete(key.name)  # type: ignore[union-attr]
    finally:
        cache.close()
        tracing.shutdown()  # also removes the redis instrumentation
    spans = [json.loads(line) for line in traces.read_text().splitlines()]
    lookups = [s for s in spans if s["name"].startswith("cache.")]
    assert [(s["name"], s["attributes"].get("hq.cache.computed", s["attributes"].get("hq.cache.found")))
            for s in lookups] == [("cache.get_or_compute", True), ("cache.get_or_compute", False),
                                  ("cache.get", True)]  # fmt: skip
    assert all(s["attributes"]["hq.cache.op"] == "bars" for s in lookups)
    first = lookups[0]
    redis_spans = [s for s in spans if s["attributes"].get("db.system") == "redis"]
    assert any(s["parent_id"] == first["context"]["span_id"] for s in redis_spans)  # the miss asked Redis


def test_without_tracing_the_cache_makes_no_spans(tmp_path: Path) -> None:
    from hikyuu_qlib.app import open_cache
    from hikyuu_qlib.observability.telemetry import Telemetry
    from hikyuu_qlib.settings import Settings

    cache = open_cache(Settings(home=tmp_path), telemetry=Telemetry())
    assert cache._tracing is None
    cache.close()
