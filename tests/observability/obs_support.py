"""What the observability tests share: a small FastAPI app with hq's HTTP metrics and ``/metrics``, run by
uvicorn in its own processes (one or several workers), and free loopback ports.

The app stands in for ``hq serve`` until the service lands: :func:`serve` is the one place that starts the
process a test scrapes, so pointing the tests at ``hq serve`` is a change of its command line.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def create_app() -> object:
    """A FastAPI app: ``GET /v1/models/{model_id}`` (404 for ids starting with ``missing``), ``GET /v1/boom``
    (500), ``POST /v1/jobs`` (its trace context travels in the job), ``/metrics``."""
    from fastapi import FastAPI, HTTPException

    from hikyuu_qlib.app import open_telemetry
    from hikyuu_qlib.observability.asgi import MetricsMiddleware
    from hikyuu_qlib.observability.exposition import MetricsEndpoint
    from hikyuu_qlib.observability.metrics import PrometheusMetrics
    from hikyuu_qlib.observability.tracing import inject_context

    telemetry = open_telemetry(metrics=True)
    metrics = telemetry.metrics
    assert isinstance(metrics, PrometheusMetrics)
    app = FastAPI()

    @app.get("/v1/models/{model_id}")
    def get_model(model_id: str) -> dict[str, object]:
        if model_id.startswith("missing"):
            raise HTTPException(404, "no such model")
        return {"id": model_id, "pid": os.getpid()}

    @app.get("/v1/boom")
    def boom() -> dict[str, object]:
        raise HTTPException(500, "boom")

    @app.post("/v1/jobs")
    def submit() -> dict[str, object]:
        metrics.job_started("train")
        metrics.job_finished("train", "succeeded", 1.5)
        return {"carrier": inject_context(), "pid": os.getpid()}

    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_route("/metrics", MetricsEndpoint(metrics))
    telemetry.tracing.instrument_fastapi(app)
    return app


@contextmanager
def serve(workers: int = 1, env: dict[str, str] | None = None) -> Iterator[str]:
    """The app under uvicorn on a free loopback port; yields its base URL once it answers."""
    port = free_port()
    cmd = [
        sys.executable, "-m", "uvicorn", "obs_app:app", "--host", "127.0.0.1", "--port", str(port),
        "--workers", str(workers), "--log-level", "warning", "--app-dir", str(HERE),
    ]  # fmt: skip
    full_env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(HERE)]), **(env or {})}
    proc = subprocess.Popen(cmd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"uvicorn exited: {proc.stdout.read() if proc.stdout else ''}")
            try:
                if httpx.get(f"{url}/metrics", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start in 60 s")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def hq_serve(home: Path, workers: int = 1) -> Iterator[str]:
    """A real ``hq serve --public-read`` on the synthetic market (registry and metrics under ``home``) on a
    free loopback port; yields its base URL once ``/v1/health`` answers."""
    port = free_port()
    cmd = [
        sys.executable, "-m", "hikyuu_qlib", "serve", "--host", "127.0.0.1", "--port", str(port),
        "--workers", str(workers), "--public-read",
    ]  # fmt: skip
    env = {**os.environ, "HQ_HOME": str(home), "HQ_SOURCE": "synthetic", "HQ_DATABASE_URL": ""}
    env.pop("HQ_DATABASE_URL")
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = open(home / "serve.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"hq serve exited: {(home / 'serve.log').read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("hq serve did not start in 90 s")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of an exposition (0 when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total
