"""HTTP metrics of an ASGI app under uvicorn: route templates, status codes, and several workers counted
as one (prometheus-client's multiprocess mode)."""

from __future__ import annotations

from pathlib import Path

import httpx
from obs_support import hq_serve, sample, serve

ROUTE = "/v1/models/{model_id}"


def test_requests_are_counted_by_route_template_and_status() -> None:
    with serve(workers=1) as url:
        for i in range(5):
            assert httpx.get(f"{url}/v1/models/M{i}").status_code == 200
        assert httpx.get(f"{url}/v1/models/missing-1").status_code == 404
        assert httpx.get(f"{url}/v1/boom").status_code == 500
        assert httpx.get(f"{url}/no/such/path").status_code == 404
        text = httpx.get(f"{url}/metrics").text
    assert sample(text, "hq_http_requests_total", route=ROUTE, status="200", method="GET") == 5
    assert sample(text, "hq_http_requests_total", route=ROUTE, status="404") == 1
    assert sample(text, "hq_http_requests_total", route="/v1/boom", status="500") == 1
    assert sample(text, "hq_http_requests_total", route="unmatched", status="404") == 1
    assert sample(text, "hq_http_request_duration_seconds_count", route=ROUTE, status="200") == 5
    assert "M0" not in text and "missing-1" not in text  # no id ever becomes a label
    assert sample(text, "hq_build_info") == 1
    assert sample(text, "process_resident_memory_bytes") > 0  # process metrics on the scrape endpoint


def test_several_workers_count_every_request(tmp_path: Path) -> None:
    """N requests spread over two worker processes read N, whichever worker answers the scrape."""
    multiproc = tmp_path / "prom"
    multiproc.mkdir()
    pids: set[int] = set()
    sent = 0
    with serve(workers=2, env={"PROMETHEUS_MULTIPROC_DIR": str(multiproc)}) as url:
        while sent < 40 or (len(pids) < 2 and sent < 400):
            with httpx.Client() as fresh:  # a new connection each time: the kernel spreads them
                response = fresh.get(f"{url}/v1/models/M{sent}")
            assert response.status_code == 200
            pids.add(response.json()["pid"])
            sent += 1
        job = httpx.post(f"{url}/v1/jobs")
        assert job.status_code == 200
        scrapes = [httpx.Client().get(f"{url}/metrics").text for _ in range(6)]
    assert len(pids) == 2, "the requests did not reach both workers"
    assert len(list(multiproc.glob("*.db"))) >= 2  # one set of value files per worker
    for text in scrapes:
        assert sample(text, "hq_http_requests_total", route=ROUTE, status="200") == sent
        assert sample(text, "hq_http_request_duration_seconds_count", route=ROUTE) == sent
        assert sample(text, "hq_jobs_total", kind="train", status="succeeded") == 1
        assert sample(text, "hq_jobs_running", kind="train") == 0
        assert sample(text, "hq_job_last_success_timestamp_seconds", kind="train") > 1.6e9
        assert sample(text, "hq_build_info") == 1


def test_hq_serve_with_two_workers_counts_every_request(tmp_path: Path) -> None:
    """The real server: requests spread over its two workers are all counted on every scrape."""
    home = tmp_path / "home"
    home.mkdir()
    sent = 0
    with hq_serve(home, workers=2) as url:
        multiproc = home / f"metrics-{url.rsplit(':', 1)[1]}"
        writers: set[str] = set()
        while sent < 40 or (len(writers) < 2 and sent < 400):
            with httpx.Client() as fresh:  # a new connection each time: the kernel spreads them
                assert fresh.get(f"{url}/v1/models/M{sent}").status_code == 404
            sent += 1
            writers = {path.stem.split("_", 1)[1] for path in multiproc.glob("counter_*.db")}
        scrapes = [httpx.Client().get(f"{url}/metrics").text for _ in range(6)]
    assert len(writers) >= 2, "the requests did not reach both workers"
    for text in scrapes:
        assert sample(text, "hq_http_requests_total", route="/v1/models/{model_ref}", status="404") == sent
        assert sample(text, "hq_build_info") == 1
