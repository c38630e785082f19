"""A real Prometheus (the Debian ``prometheus`` binary, on a loopback port) scrapes a running process that
serves ``/metrics``, stores ``hq_http_requests_total``, and evaluates hq's alert rules and a test rule."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from obs_support import free_port, hq_serve

from conftest import require

REPO = Path(__file__).resolve().parents[2]
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"
REQUESTS = 7


@pytest.fixture(scope="module")
def metrics_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a running ``hq serve`` (its ``/metrics``), having answered ``REQUESTS`` requests
    of ``/v1/models/{model_id}`` (404s: the registry is empty)."""
    with hq_serve(tmp_path_factory.mktemp("hq-home")) as url:
        for i in range(REQUESTS):
            assert httpx.get(f"{url}/v1/models/M{i}").status_code == 404
        yield url


@pytest.fixture(scope="module")
def prometheus(metrics_target: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("prometheus")
    require(binary is not None, "prometheus not installed (Debian package prometheus)")
    assert binary is not None
    tmp = tmp_path_factory.mktemp("prometheus")
    test_rules = {
        "groups": [
            {
                "name": "hq-test",
                "rules": [
                    {
                        "record": "hq:http_requests:rate1m",
                        "expr": "sum by (job) (rate(hq_http_requests_total[1m]))",
                    },
                    {"alert": "HqTestRequestsServed", "expr": "sum by (job) (hq_http_requests_total) > 0"},
                ],
            }
        ]
    }
    (tmp / "test_rules.yml").write_text(yaml.safe_dump(test_rules))
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERTS), str(tmp / "test_rules.yml")],
        "scrape_configs": [
            {"job_name": "hq", "static_configs": [{"targets": [metrics_target.split("//")[1]]}]}
        ],
    }
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={tmp / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(tmp / "prometheus.log", "w"),  # noqa: SIM115 - closed with the process
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: httpx.get(f"{url}/-/ready", timeout=1).status_code == 200, "Prometheus ready", proc)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def wait_for(check: Any, what: str, proc: subprocess.Popen[Any] | None = None, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"prometheus exited with {proc.returncode}")
        try:
            value = check()
            if value:
                return value
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def query(url: str, promql: str) -> list[dict[str, Any]]:
    body = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=5).json()
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def test_prometheus_scrapes_the_request_count(prometheus: str) -> None:
    def scraped() -> list[dict[str, Any]]:
        return query(prometheus, 'hq_http_requests_total{route="/v1/models/{model_ref}",status="404"}')

    result = wait_for(scraped, "a scrape with hq_http_requests_total")
    assert result[0]["metric"]["job"] == "hq" and result[0]["metric"]["method"] == "GET"
    assert float(result[0]["value"][1]) == REQUESTS
    up = query(prometheus, 'up{job="hq"}')
    assert float(up[0]["value"][1]) == 1


def test_the_rules_evaluate(prometheus: str) -> None:
    rate = wait_for(lambda: query(prometheus, "hq:http_requests:rate1m"), "the recording rule's first value")
    assert float(rate[0]["value"][1]) >= 0

    def served_alert() -> list[dict[str, Any]]:
        alerts = httpx.get(f"{prometheus}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
        return [a for a in alerts if a["labels"]["alertname"] == "HqTestRequestsServed"]

    assert wait_for(served_alert, "the test alert")[0]["state"] == "firing"

    def evaluated() -> list[dict[str, Any]]:
        groups = httpx.get(f"{prometheus}/api/v1/rules", timeout=5).json()["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        return rules if all(r["health"] != "unknown" for r in rules) else []

    rules = wait_for(evaluated, "every rule evaluated once")
    assert {r["name"] for r in rules} >= {
        "HqRegistryLatencyHigh",
        "HqErrorBudgetBurnFast",
        "HqJobNotSucceeding",
    }
    assert all(r["health"] == "ok" for r in rules), [(r["name"], r.get("lastError")) for r in rules]
