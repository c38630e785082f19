"""A real ``hq serve`` with tracing to a JSON-lines file: a job's spans continue the trace of the
``POST /v1/jobs`` request that queued it, across the job's worker process; the runner counts the job."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from service_support import TRAIN, Server, make_tokens

from hikyuu_qlib.client import Client


def _spans(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _sample(text: str, name: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


@pytest.mark.parametrize("workers", [1, 2], ids=["one-process", "supervisor"])
def test_a_job_continues_the_trace_of_the_request_that_queued_it(tmp_path: Path, workers: int) -> None:
    traces = tmp_path / "spans.jsonl"
    env = {"OTEL_TRACES_EXPORTER": "jsonl", "HQ_TRACES_FILE": str(traces), "OTEL_SERVICE_NAME": "hq-test"}
    server = Server(tmp_path, make_tokens(), workers=workers, extra_env=env).start()
    try:
        with Client(server.url, server.tokens.write) as client:
            job = client.submit("train", {**TRAIN, "model": {**TRAIN["model"], "name": f"traced-{workers}"}})
            done = client.wait(job, timeout=240, poll=0.3)
        assert done.result is not None
        # the runner counts a job when it reaps its process (its next poll after the job recorded its end)
        deadline = time.monotonic() + 30
        while True:
            scraped = httpx.get(f"{server.url}/metrics", headers=server.headers("read")).text
            if _sample(scraped, "hq_jobs_total", kind="train") or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        server.stop()
    spans = _spans(traces)  # the server's spans and the job process's

    submits = [s for s in spans if s["name"] == "POST /v1/jobs" and s["kind"] == "SpanKind.SERVER"]
    assert len(submits) == 1, [s["name"] for s in spans]
    submit = submits[0]
    trace_id = submit["context"]["trace_id"]
    jobs = [s for s in spans if s["name"] == "job train"]
    assert len(jobs) == 1
    job_span = jobs[0]
    assert job_span["context"]["trace_id"] == trace_id
    assert job_span["parent_id"] == submit["context"]["span_id"]
    assert job_span["attributes"]["hq.job.id"] == job.id
    assert job_span["status"]["status_code"] == "UNSET"
    # each request is a trace of its own, not a child of the ``hq serve`` command's span
    assert submit["parent_id"] is None
    assert not [s for s in spans if s["name"].endswith((" http send", " http receive"))]

    # the job's own work is in the same trace, under the job's span
    in_job = {s["context"]["span_id"]: s for s in spans if s["context"]["trace_id"] == trace_id}
    below: set[str] = set()
    for span in in_job.values():
        parent = span["parent_id"]
        while parent is not None and parent in in_job:
            if parent == job_span["context"]["span_id"]:
                below.add(span["name"])
                break
            parent = in_job[parent]["parent_id"]
    assert {"registry.save", "data.load"} <= below, below
    assert any(name.endswith(" models") for name in below), below  # the registry's statements, as spans

    # the runner counted the job (in the supervisor, through the workers' multiprocess directory)
    assert _sample(scraped, "hq_jobs_total", kind="train", status="succeeded") == 1
    assert _sample(scraped, "hq_jobs_running", kind="train") == 0
    assert _sample(scraped, "hq_job_last_success_timestamp_seconds", kind="train") > 0


def test_a_job_queued_without_tracing_has_no_trace_context(tmp_path: Path) -> None:
    from hikyuu_qlib.domain.jobs import JobKind
    from hikyuu_qlib.observability.tracing import Tracing, inject_context
    from hikyuu_qlib.registry import ModelRegistry
    from hikyuu_qlib.registry.jobs import JobStore

    with ModelRegistry(f"sqlite:///{tmp_path / 'r.db'}") as registry:
        store = JobStore(registry)
        plain = store.create(JobKind.TRAIN, {"x": 1})
        assert store.get(plain.id).trace_context is None
        tracing = Tracing.from_env({"OTEL_TRACES_EXPORTER": "jsonl"}, traces_file=tmp_path / "t.jsonl")
        with tracing.span("POST /v1/jobs"):
            carrier = inject_context()
        tracing.shutdown()
        traced = store.create(JobKind.TRAIN, {"x": 1}, carrier)
        assert store.get(traced.id).trace_context == carrier
        assert carrier["traceparent"].startswith("00-")
