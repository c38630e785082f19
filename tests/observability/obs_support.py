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
import tempfile
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
def _running(
    cmd: list[str], env: dict[str, str], url: str, ready: str, log: Path, seconds: float
) -> Iterator[str]:
    """``cmd``, a server at ``url``, running with its output in ``log``; yields ``url`` once ``url + ready``
    answers 200, and stops the process at the end."""
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + seconds
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"{cmd[2]} exited: {log.read_text()[-3000:]}")
                try:
                    if httpx.get(url + ready, timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{cmd[2]} did not start in {seconds:.0f} s")
                time.sleep(0.2)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def serve(workers: int = 1, env: dict[str, str] | None = None) -> Iterator[str]:
    """The test app under uvicorn on a free loopback port; yields its base URL once it answers."""
    port = free_port()
    cmd = [
        sys.executable, "-m", "uvicorn", "obs_app:app", "--host", "127.0.0.1", "--port", str(port),
        "--workers", str(workers), "--log-level", "warning", "--app-dir", str(HERE),
    ]  # fmt: skip
    full_env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(HERE)]), **(env or {})}
    with (
        tempfile.TemporaryDirectory() as tmp,
        _running(cmd, full_env, f"http://127.0.0.1:{port}", "/metrics", Path(tmp) / "uvicorn.log", 60) as url,
    ):
        yield url


@contextmanager
def hq_serve(home: Path, workers: int = 1) -> Iterator[str]:
    """A real ``hq serve --public-read`` on the synthetic market (registry and metrics under ``home``) on a
    free loopback port; yields its base URL once ``/v1/health`` answers."""
    port = free_port()
    cmd = [
        sys.executable, "-m", "hikyuu_qlib", "serve", "--host", "127.0.0.1", "--port", str(port),
        "--workers", str(workers), "--public-read",
    ]  # fmt: skip
    env = {**os.environ, "HQ_HOME": str(home), "HQ_SOURCE": "synthetic"}
    env.pop("HQ_DATABASE_URL", None)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with _running(cmd, env, f"http://127.0.0.1:{port}", "/v1/health", home / "serve.log", 90) as url:
        yield url


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of an exposition (0 when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total
